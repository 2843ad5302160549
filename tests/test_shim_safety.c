// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libsockmig-preload.so inside servers that do unusual but legal things:
 * close a listener in a signal handler, become a daemon with daemon(3),
 * run setuid, close or replace the shim's private fds, meet a stopped
 * process that holds a group's lock, close two listeners at once while a
 * legacy drain waits. Each case drives one small program (below, built
 * with cc at run time, one mode per case) and has its baseline: the shim
 * of the main branch fails it.
 *
 * Program modes (stdout: one line per step, "WORD ..."):
 *   signal P N      N listeners on ports P.., closed one by one from a
 *                   SIGALRM handler while the main loop mallocs hard
 *   signalfrom P N  the same, all closed by one closefrom() in the handler
 *   daemon P        listen, daemon(1, 1), close in the daemon
 *   worker P FIRST  listen as root, fork a child that becomes uid 65534;
 *                   FIRST "parent": the parent closes, then the child;
 *                   "child": the child closes, the parent still listens
 *   setuid P SHIM   dlopen(SHIM), listen and close through its symbols
 *   unshare P       close_range(3, ~0U, CLOSE_RANGE_UNSHARE), then bind P
 *   dup2 P          dup2() a file onto fds 3..31, then bind P
 *   lock P          listen on P, close it; prints how long each took
 *   two P Q         listeners on P and Q; at "go", one thread closes P
 *                   and the main thread then closes Q; prints the times
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define PORT 34000

static const char prog_src[] =
	"#define _GNU_SOURCE\n"
	"#include <dlfcn.h>\n"
	"#include <errno.h>\n"
	"#include <fcntl.h>\n"
	"#include <netinet/in.h>\n"
	"#include <poll.h>\n"
	"#include <pthread.h>\n"
	"#include <signal.h>\n"
	"#include <stdarg.h>\n"
	"#include <stdio.h>\n"
	"#include <stdlib.h>\n"
	"#include <string.h>\n"
	"#include <sys/auxv.h>\n"
	"#include <sys/prctl.h>\n"
	"#include <sys/socket.h>\n"
	"#include <sys/wait.h>\n"
	"#include <sys/time.h>\n"
	"#include <time.h>\n"
	"#include <unistd.h>\n"
	"#include <linux/close_range.h>\n"
	"\n"
	"static int (*do_listen)(int, int) = listen;\n"
	"static int (*do_close)(int) = close;\n"
	"static volatile sig_atomic_t nclosed, from;\n"
	"static int lfd[16], nl;\n"
	"\n"
	"static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));\n"
	"static void say(const char *fmt, ...)\n"
	"{\n"
	"  char b[256];\n"
	"  va_list ap;\n"
	"  int n;\n"
	"\n"
	"  va_start(ap, fmt);\n"
	"  n = vsnprintf(b, sizeof(b) - 1, fmt, ap);\n"
	"  va_end(ap);\n"
	"  b[n++] = '\\n';\n"
	"  if (write(1, b, (size_t)n) < 0)\n"
	"    _exit(3);\n"
	"}\n"
	"\n"
	"static long now_ms(void)\n"
	"{\n"
	"  struct timespec t;\n"
	"\n"
	"  clock_gettime(CLOCK_MONOTONIC, &t);\n"
	"  return t.tv_sec * 1000 + t.tv_nsec / 1000000;\n"
	"}\n"
	"\n"
	"static int sock(int port, int reuse, int do_bind)\n"
	"{\n"
	"  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};\n"
	"  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, r;\n"
	"\n"
	"  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);\n"
	"  if (reuse)\n"
	"    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));\n"
	"  if (!do_bind)\n"
	"    return fd;\n"
	"  r = bind(fd, (struct sockaddr *)&a, sizeof(a));\n"
	"  say(\"bind %d %s\", r, r ? strerror(errno) : \"ok\");\n"
	"  return r ? -1 : fd;\n"
	"}\n"
	"\n"
	"static int listener(int port)\n"
	"{\n"
	"  int fd = sock(port, 1, 1);\n"
	"\n"
	"  if (fd < 0 || do_listen(fd, 128) < 0) {\n"
	"    say(\"error listen: %s\", strerror(errno));\n"
	"    exit(2);\n"
	"  }\n"
	"  return fd;\n"
	"}\n"
	"\n"
	"static void wait_line(void)\n"
	"{\n"
	"  char c;\n"
	"\n"
	"  while (read(0, &c, 1) == 1 && c != '\\n')\n"
	"    ;\n"
	"}\n"
	"\n"
	"static void on_alarm(int sig)\n"
	"{\n"
	"  (void)sig;\n"
	"  if (from && nclosed < nl) {\n"
	"    closefrom(lfd[0]);\n"
	"    nclosed = nl;\n"
	"  } else if (nclosed < nl) {\n"
	"    close(lfd[nclosed]);\n"
	"    nclosed++;\n"
	"  }\n"
	"}\n"
	"\n"
	"/* blocks above the tcache and below the mmap threshold: every malloc\n"
	" * and free takes the arena's lock */\n"
	"static void malloc_hard(long until)\n"
	"{\n"
	"  void *keep[64] = {0};\n"
	"  unsigned int r = 1;\n"
	"\n"
	"  while (now_ms() < until) {\n"
	"    for (int i = 0; i < 64; i++) {\n"
	"      r = r * 1103515245u + 12345u;\n"
	"      free(keep[i]);\n"
	"      keep[i] = malloc(2048 + (r >> 8) % 60000);\n"
	"      if (keep[i])\n"
	"        memset(keep[i], 1, 64);\n"
	"    }\n"
	"    if (nclosed >= nl)\n"
	"      break;\n"
	"  }\n"
	"  for (int i = 0; i < 64; i++)\n"
	"    free(keep[i]);\n"
	"}\n"
	"\n"
	"static void *close_first(void *arg)\n"
	"{\n"
	"  long t0 = now_ms();\n"
	"\n"
	"  (void)arg;\n"
	"  close(lfd[0]);\n"
	"  say(\"closedA ms=%ld\", now_ms() - t0);\n"
	"  return NULL;\n"
	"}\n"
	"\n"
	"static void serve_one(int fd)\n"
	"{\n"
	"  struct pollfd p = {.fd = fd, .events = POLLIN};\n"
	"  int c = -1;\n"
	"\n"
	"  if (poll(&p, 1, 3000) == 1)\n"
	"    c = accept(fd, NULL, NULL);\n"
	"  say(\"accept %s\", c >= 0 ? \"ok\" : \"none\");\n"
	"}\n"
	"\n"
	"int main(int argc, char **argv)\n"
	"{\n"
	"  const char *mode = argc > 2 ? argv[1] : \"\";\n"
	"  int port = argc > 2 ? atoi(argv[2]) : 0, fd, r;\n"
	"  long t0;\n"
	"\n"
	"  if (!strcmp(mode, \"signal\") || !strcmp(mode, \"signalfrom\")) {\n"
	"    struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};\n"
	"    struct itimerval it = {{0, 20000}, {0, 20000}};\n"
	"\n"
	"    nl = atoi(argv[3]);\n"
	"    from = !strcmp(mode, \"signalfrom\");\n"
	"    for (int i = 0; i < nl; i++)\n"
	"      lfd[i] = listener(port + i);\n"
	"    sigaction(SIGALRM, &sa, NULL);\n"
	"    say(\"ready\");\n"
	"    setitimer(ITIMER_REAL, &it, NULL);\n"
	"    malloc_hard(now_ms() + 3000);\n"
	"    memset(&it, 0, sizeof(it));\n"
	"    setitimer(ITIMER_REAL, &it, NULL);\n"
	"    say(\"closed %d\", (int)nclosed);\n"
	"  } else if (!strcmp(mode, \"worker\")) {\n"
	"    int first = !strcmp(argv[3], \"parent\"), pp[2], v = 0;\n"
	"    socklen_t vl = sizeof(v);\n"
	"    char b;\n"
	"    pid_t c;\n"
	"\n"
	"    fd = listener(port);\n"
	"    if (pipe(pp) < 0 || (c = fork()) < 0)\n"
	"      return 2;\n"
	"    if (c == 0) {\n"
	"      if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)\n"
	"        say(\"error setuid: %s\", strerror(errno));\n"
	"      prctl(PR_SET_DUMPABLE, 1, 0, 0, 0); /* as nginx's workers */\n"
	"      if (first && read(pp[0], &b, 1) != 1)\n"
	"        return 2;\n"
	"      close(fd);\n"
	"      say(\"child closed\");\n"
	"      _exit(0);\n"
	"    }\n"
	"    if (first) {\n"
	"      close(fd);\n"
	"      say(\"parent closed\");\n"
	"      if (write(pp[1], \"x\", 1) != 1)\n"
	"        return 2;\n"
	"    }\n"
	"    waitpid(c, NULL, 0);\n"
	"    usleep(500000); /* the decision made for the child */\n"
	"    if (!first) {\n"
	"      getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl);\n"
	"      say(\"listening %d\", v);\n"
	"      close(fd);\n"
	"    }\n"
	"    say(\"done\");\n"
	"  } else if (!strcmp(mode, \"daemon\")) {\n"
	"    fd = listener(port);\n"
	"    say(\"ready\");\n"
	"    if (daemon(1, 1) < 0)\n"
	"      say(\"error daemon: %s\", strerror(errno));\n"
	"    say(\"daemon %d\", (int)getpid());\n"
	"    close(fd);\n"
	"    say(\"closed\");\n"
	"  } else if (!strcmp(mode, \"setuid\")) {\n"
	"    void *h = dlopen(argv[3], RTLD_NOW | RTLD_LOCAL);\n"
	"\n"
	"    if (!h || !(do_listen = (int (*)(int, int))dlsym(h, \"listen\")) ||\n"
	"        !(do_close = (int (*)(int))dlsym(h, \"close\"))) {\n"
	"      say(\"error dlopen: %s\", dlerror());\n"
	"      return 2;\n"
	"    }\n"
	"    fd = listener(port);\n"
	"    say(\"listened secure=%lu euid=%d\", getauxval(AT_SECURE), (int)geteuid());\n"
	"    wait_line();\n"
	"    do_close(fd);\n"
	"    say(\"closed\");\n"
	"  } else if (!strcmp(mode, \"unshare\") || !strcmp(mode, \"dup2\")) {\n"
	"    if (!strcmp(mode, \"unshare\")) {\n"
	"      r = close_range(3, ~0U, CLOSE_RANGE_UNSHARE);\n"
	"      for (int i = 0; i < 16; i++)\n"
	"        open(\"/dev/null\", O_RDONLY);\n"
	"    } else {\n"
	"      int log = open(\"/dev/null\", O_WRONLY);\n"
	"\n"
	"      r = 0;\n"
	"      for (int i = 3; i < 32; i++)\n"
	"        if (i != log && dup2(log, i) < 0)\n"
	"          r = -1;\n"
	"    }\n"
	"    say(\"cleared %d\", r);\n"
	"    fd = sock(port, 0, 1);\n"
	"    if (fd < 0)\n"
	"      return 2;\n"
	"    r = listen(fd, 128);\n"
	"    say(\"listen %d %s\", r, r ? strerror(errno) : \"ok\");\n"
	"    if (r == 0)\n"
	"      serve_one(fd);\n"
	"  } else if (!strcmp(mode, \"lock\")) {\n"
	"    t0 = now_ms();\n"
	"    fd = listener(port);\n"
	"    say(\"listened ms=%ld\", now_ms() - t0);\n"
	"    t0 = now_ms();\n"
	"    close(fd);\n"
	"    say(\"closed ms=%ld\", now_ms() - t0);\n"
	"  } else if (!strcmp(mode, \"two\")) {\n"
	"    pthread_t t;\n"
	"\n"
	"    lfd[0] = listener(port);\n"
	"    lfd[1] = listener(atoi(argv[3]));\n"
	"    say(\"ready\");\n"
	"    wait_line();\n"
	"    pthread_create(&t, NULL, close_first, NULL);\n"
	"    usleep(300000);\n"
	"    t0 = now_ms();\n"
	"    close(lfd[1]);\n"
	"    say(\"closedB ms=%ld\", now_ms() - t0);\n"
	"    pthread_join(t, NULL);\n"
	"  } else {\n"
	"    say(\"error mode\");\n"
	"    return 2;\n"
	"  }\n"
	"  say(\"bye\");\n"
	"  return 0;\n"
	"}\n";

/* ---- the program, built and run -------------------------------------------- */

struct ctx {
	char dir[64];
	char prog[128];
	char shim[PATH_MAX];
	unsigned long netns;
};

struct proc {
	pid_t pid;
	int in, out;
	char err[128];
	size_t len;
	char buf[4096];
};

/* The shim of the normal build: next to the runner, or one directory up
 * for the sanitizer runner (.output/asan/), whose own is never preloaded. */
static bool find_shim(char *out)
{
	char dir[PATH_MAX], cand[PATH_MAX + 32], *slash;
	ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);

	if (n <= 0)
		return false;
	dir[n] = '\0';
	slash = strrchr(dir, '/');
	if (!slash)
		return false;
	*slash = '\0';
	slash = strrchr(dir, '/');
	if (slash && strcmp(slash, "/asan") == 0)
		*slash = '\0';
	snprintf(cand, sizeof(cand), "%s/libsockmig-preload.so", dir);
	return access(cand, R_OK) == 0 && realpath(cand, out);
}

static void ctx_cleanup(struct ctx *x)
{
	char cmd[128];
	pid_t pid;

	if (!x->dir[0])
		return;
	snprintf(cmd, sizeof(cmd), "%s", x->dir);
	pid = fork();
	if (pid == 0) {
		execlp("rm", "rm", "-rf", cmd, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	x->dir[0] = '\0';
}

static int ctx_setup(struct ctx *x)
{
	char src[160];
	struct stat st;
	int status = 0, fd;
	pid_t pid;

	memset(x, 0, sizeof(*x));
	signal(SIGPIPE, SIG_IGN);
	if (!find_shim(x->shim))
		return SKIP("no libsockmig-preload.so of the normal build next to the runner");
	if (stat("/proc/self/ns/net", &st) < 0)
		return SM_FAIL;
	x->netns = st.st_ino;
	snprintf(x->dir, sizeof(x->dir), "/tmp/sockmig-shimsafe-XXXXXX");
	if (!mkdtemp(x->dir) || chmod(x->dir, 0755) < 0) {
		x->dir[0] = '\0';
		return SM_FAIL;
	}
	snprintf(src, sizeof(src), "%s/prog.c", x->dir);
	snprintf(x->prog, sizeof(x->prog), "%s/prog", x->dir);
	fd = open(src, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, prog_src, strlen(prog_src)) != (ssize_t)strlen(prog_src)) {
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	close(fd);
	pid = fork();
	if (pid == 0) {
		execlp("cc", "cc", "-O2", "-Wall", "-o", x->prog, src, "-ldl", "-lpthread",
		       (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		goto fail;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		ctx_cleanup(x);
		return SKIP("no C compiler (cc) to build the test program");
	}
	if (!ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "cc"))
		goto fail;
	return SM_PASS;
fail:
	ctx_cleanup(x);
	return SM_FAIL;
}

/*
 * Run @path with @args (space-separated), the shim preloaded when
 * @preload, the variables @env (NULL-terminated), as uid 65534 when
 * @nobody, with @fd3 as fd 3 when >= 0 (and LISTEN_FDS/LISTEN_PID).
 */
static bool proc_start(struct ctx *x, struct proc *p, const char *name, const char *path,
		       bool preload, bool nobody, const char *const *env, int fd3, const char *args)
{
	char argbuf[256], pre[PATH_MAX + 16], lpid[32], *argv[12], *envp[16], *save = NULL, *tok;
	int in[2], out[2], errfd, na = 0, ne = 0;

	memset(p, 0, sizeof(*p));
	p->in = p->out = -1;
	snprintf(p->err, sizeof(p->err), "%s/%s.stderr", x->dir, name);
	snprintf(argbuf, sizeof(argbuf), "%s", args);
	argv[na++] = (char *)path;
	for (tok = strtok_r(argbuf, " ", &save); tok && na < 11; tok = strtok_r(NULL, " ", &save))
		argv[na++] = tok;
	argv[na] = NULL;
	envp[ne++] = "PATH=/usr/bin:/bin";
	snprintf(pre, sizeof(pre), "LD_PRELOAD=%s", x->shim);
	if (preload)
		envp[ne++] = pre;
	for (int i = 0; env && env[i] && ne < 12; i++)
		envp[ne++] = (char *)env[i];
	envp[ne] = NULL;
	if (pipe2(in, O_CLOEXEC) < 0)
		return false;
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return false;
	}
	errfd = open(p->err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	p->pid = fork();
	if (p->pid == 0) {
		setpgid(0, 0);
		signal(SIGPIPE, SIG_DFL);
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(errfd, 2) < 0)
			_exit(126);
		if (fd3 >= 0) {
			if (dup2(fd3, 3) < 0)
				_exit(126);
			snprintf(lpid, sizeof(lpid), "LISTEN_PID=%d", (int)getpid());
			envp[ne++] = "LISTEN_FDS=1";
			envp[ne++] = lpid;
			envp[ne] = NULL;
		}
		if (nobody && (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
			       setresuid(65534, 65534, 65534) < 0))
			_exit(126);
		execve(path, argv, envp);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	if (errfd >= 0)
		close(errfd);
	p->in = in[1];
	p->out = out[0];
	return p->pid > 0;
}

/* Wait up to @ms for a line starting with @word; copy it to @line. */
static bool proc_expect(struct proc *p, const char *word, char *line, size_t len, int ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)ms, now;
	struct pollfd pf = {.fd = p->out, .events = POLLIN};
	char *nl;
	ssize_t n;

	for (;;) {
		while ((nl = memchr(p->buf, '\n', p->len))) {
			size_t l = (size_t)(nl - p->buf) + 1;
			bool match;

			*nl = '\0';
			printf("  | %s\n", p->buf);
			match = strncmp(p->buf, word, strlen(word)) == 0;
			if (match && line)
				snprintf(line, len, "%s", p->buf);
			p->len -= l;
			memmove(p->buf, p->buf + l, p->len);
			if (match)
				return true;
		}
		now = burst_now_ms();
		if (p->out < 0 || now >= end || poll(&pf, 1, (int)(end - now)) <= 0)
			break;
		n = read(p->out, p->buf + p->len, sizeof(p->buf) - p->len - 1);
		if (n <= 0)
			break;
		p->len += (size_t)n;
	}
	printf("  no '%s' line within %d ms\n", word, ms);
	return false;
}

static void proc_kill(struct proc *p)
{
	if (p->pid > 0) {
		kill(-p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		p->pid = 0;
	}
	if (p->in >= 0)
		close(p->in);
	if (p->out >= 0)
		close(p->out);
	p->in = p->out = -1;
}

/* Exit code within 5 s, or -1 (then killed). */
static int proc_wait(struct proc *p)
{
	unsigned long long end = burst_now_ms() + 5000;
	int status = 0;
	pid_t r;

	while ((r = waitpid(p->pid, &status, WNOHANG)) == 0 && burst_now_ms() < end)
		burst_sleep_ms(5);
	if (r != p->pid) {
		proc_kill(p);
		return -1;
	}
	p->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Lines of the stderr of @p holding @needle; all of it is printed. */
static int proc_stderr(struct proc *p, const char *needle)
{
	char buf[16384], *line, *save = NULL;
	int fd = open(p->err, O_RDONLY | O_CLOEXEC), count = 0;
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!needle)
			printf("  2> %s\n", line);
		else if (strstr(line, needle))
			count++;
	}
	return count;
}

/* ---- groups ---------------------------------------------------------------- */

static void group_name(const struct ctx *x, int port, char *name)
{
	struct in_addr lo = {htonl(INADDR_LOOPBACK)};

	sockmig_group_name_for(AF_INET, &lo, port, x->netns, name, SOCKMIG_NAME_MAX);
}

static bool group_exists(const struct ctx *x, int port)
{
	char name[SOCKMIG_NAME_MAX], path[PATH_MAX];
	struct stat st;

	group_name(x, port, name);
	snprintf(path, sizeof(path), "%s/%s", SOCKMIG_PIN_ROOT, name);
	return stat(path, &st) == 0;
}

static void group_cleanup(const struct ctx *x, int port)
{
	char name[SOCKMIG_NAME_MAX];
	struct sockmig_group *g;

	group_name(x, port, name);
	g = sockmig_group_open_name(name, NULL);
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
}

/* A holder of the test process in the group of @port (made @legacy). */
static int holder_start(int port, bool legacy, struct sockmig_group **g)
{
	SOCKMIG_OPTS(sockmig_group_opts, go,
		     .policy = legacy ? SOCKMIG_POLICY_LEGACY : SOCKMIG_POLICY_AUTO);
	SOCKMIG_OPTS(sockmig_member_opts, mo, .role = SOCKMIG_ROLE_HOLDER);
	int h = burst_listener(AF_INET, port, 128, 0);

	*g = NULL;
	if (h < 0)
		return -1;
	*g = sockmig_group_open(h, &go);
	if (!*g || sockmig_member_add(*g, h, &mo) < 0) {
		printf("holder: %s\n", sockmig_last_error());
		sockmig_group_close(*g);
		*g = NULL;
		close(h);
		return -1;
	}
	return h;
}

static void holder_stop(struct sockmig_group *g, int h)
{
	if (g) {
		sockmig_member_leave(g, h);
		sockmig_group_close(g);
	}
	if (h >= 0)
		close(h);
}

static int field_ms(const char *line)
{
	const char *p = strstr(line, "ms=");

	return p ? atoi(p + 3) : -1;
}

/* ---- the cases ------------------------------------------------------------- */

#define N_SIGNAL 4

/*
 * The server closes its N listeners from a SIGALRM handler, one per
 * alarm, while its main loop mallocs blocks that take the arena's lock.
 * An interposed close() that allocates in the handler waits for the lock
 * of the malloc() it interrupted: the server hangs. With the shim, every
 * close returns at once and the helper thread still drains each listener
 * (its last reference) and takes it out of its group.
 */
static int signal_case(const char *mode)
{
	static const char *const env[] = {"SOCKMIG_DEBUG=1", NULL};
	struct proc p = {.pid = 0, .in = -1, .out = -1};
	char args[64], line[128];
	struct ctx x;
	int ret = ctx_setup(&x), n = -1;

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "%s %d %d", mode, PORT, N_SIGNAL);
	if (!ASSERT_TRUE(proc_start(&x, &p, "signal", x.prog, true, false, env, -1, args),
			 "start") ||
	    !ASSERT_TRUE(proc_expect(&p, "ready", NULL, 0, 5000), "listening"))
		goto out;
	if (!ASSERT_TRUE(proc_expect(&p, "closed", line, sizeof(line), 6000),
			 "closes in the signal handler returned (no deadlock)"))
		goto out;
	sscanf(line, "closed %d", &n);
	if (!ASSERT_EQ(n, N_SIGNAL, "listeners closed by the handler") ||
	    !ASSERT_EQ(proc_wait(&p), 0, "exit code"))
		goto out;
	proc_stderr(&p, NULL);
	if (!ASSERT_EQ(proc_stderr(&p, "closed, last reference"), N_SIGNAL,
		       "each close decided by the helper: the last reference") ||
	    !ASSERT_EQ(proc_stderr(&p, "left group"), N_SIGNAL, "and out of its group"))
		goto out;
	for (int i = 0; i < N_SIGNAL; i++)
		if (!ASSERT_EQ(group_exists(&x, PORT + i), false, "no group left"))
			goto out;
	ret = SM_PASS;
out:
	proc_kill(&p);
	if (ret != SM_PASS) {
		proc_stderr(&p, NULL);
		for (int i = 0; i < N_SIGNAL; i++)
			group_cleanup(&x, PORT + i);
	}
	ctx_cleanup(&x);
	return ret;
}

SM_TEST(shim_signal_handler_close)
{
	return signal_case("signal");
}

/* The same, the handler closing every listener with one closefrom(): the
 * dups the helper is about to release stay open. */
SM_TEST(shim_signal_handler_closefrom)
{
	return signal_case("signalfrom");
}

/*
 * daemon(3) forks inside glibc, around the interposed fork(): the shim
 * must still see the daemon as the owner of its listeners, so that its
 * close drains the listener (the last reference) and takes it out of its
 * group. Without that the close is a plain close and the member stays.
 */
SM_TEST(shim_daemon3_registers)
{
	static const char *const env[] = {"SOCKMIG_DEBUG=1", NULL};
	struct proc p = {.pid = 0, .in = -1, .out = -1};
	char args[64], line[128];
	struct ctx x;
	int ret = ctx_setup(&x), dpid = -1;

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "daemon %d", PORT);
	if (!ASSERT_TRUE(proc_start(&x, &p, "daemon", x.prog, true, false, env, -1, args),
			 "start") ||
	    !ASSERT_TRUE(proc_expect(&p, "ready", NULL, 0, 5000), "listening") ||
	    !ASSERT_TRUE(group_exists(&x, PORT), "registered at listen()") ||
	    !ASSERT_TRUE(proc_expect(&p, "daemon", line, sizeof(line), 5000), "daemon"))
		goto out;
	sscanf(line, "daemon %d", &dpid);
	if (!ASSERT_TRUE(proc_expect(&p, "bye", NULL, 0, 5000), "closed in the daemon"))
		goto out;
	burst_sleep_ms(50); /* its exit */
	proc_stderr(&p, NULL);
	if (!ASSERT_EQ(proc_stderr(&p, "closed, last reference"), 1,
		       "the daemon decided at its close: the last reference") ||
	    !ASSERT_EQ(proc_stderr(&p, "left group"), 1, "and left the group") ||
	    !ASSERT_EQ(group_exists(&x, PORT), false, "no group left"))
		goto out;
	ret = SM_PASS;
out:
	if (dpid > 0 && ret != SM_PASS)
		kill(dpid, SIGKILL);
	proc_kill(&p);
	if (ret != SM_PASS)
		group_cleanup(&x, PORT);
	ctx_cleanup(&x);
	return ret;
}

/*
 * A root parent and a child that became uid 65534 (nginx's master and
 * workers) share a listener. The child cannot read the parent's fds in
 * /proc, so on its own it cannot tell whether its close is the last: it
 * hands the decision to the parent's shim. @first "parent": the parent
 * closed first, the child's close is the last reference and is drained
 * (the shim of the branch before this failed: "closed only", no drain).
 * "child": the parent still holds the socket, which must stay listening
 * and undrained until the parent's own close, its last reference.
 */
static int worker_case(const char *first)
{
	/* legacy: where the kernel migrates, a plain last close loses
	 * nothing and no decision is handed over */
	static const char *const env[] = {"SOCKMIG_DEBUG=1", "SOCKMIG_MODE=legacy", NULL};
	struct proc p = {.pid = 0, .in = -1, .out = -1};
	bool parent_first = !strcmp(first, "parent");
	char args[64];
	struct ctx x;
	int ret = ctx_setup(&x);

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "worker %d %s", PORT, first);
	if (!ASSERT_TRUE(proc_start(&x, &p, "worker", x.prog, true, false, env, -1, args),
			 "start") ||
	    !ASSERT_TRUE(proc_expect(&p, "child closed", NULL, 0, 5000), "the child closed") ||
	    (!parent_first &&
	     !ASSERT_TRUE(proc_expect(&p, "listening 1", NULL, 0, 5000), "still listening")) ||
	    !ASSERT_TRUE(proc_expect(&p, "done", NULL, 0, 5000), "done") ||
	    !ASSERT_EQ(proc_wait(&p), 0, "exit code"))
		goto out;
	proc_stderr(&p, NULL);
	if (!ASSERT_EQ(proc_stderr(&p, "handed to process"), 1,
		       "the child handed its close to the parent") ||
	    !ASSERT_EQ(proc_stderr(&p, "closed, last reference"), 1, "one last reference") ||
	    !ASSERT_EQ(proc_stderr(&p, "not the last reference"), 1,
		       "one close that was not the last") ||
	    !ASSERT_EQ(group_exists(&x, PORT), false, "no group left"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		proc_stderr(&p, NULL);
	proc_kill(&p);
	if (ret != SM_PASS)
		group_cleanup(&x, PORT);
	ctx_cleanup(&x);
	return ret;
}

SM_TEST(shim_root_parent_closed_first)
{
	return worker_case("parent");
}

SM_TEST(shim_root_parent_still_holds)
{
	return worker_case("child");
}

/*
 * A setuid-root program run by uid 65534 with SOCKMIG_* in its
 * environment. The loader ignores LD_PRELOAD paths in such a process, so
 * the program dlopen()s the shim itself (as a library loaded through
 * /etc/ld.so.preload would be) and listens through its listen(): the
 * shim's constructor and interposers run with AT_SECURE set. The shim
 * must stay out entirely: no group, no generation taken from the
 * caller's SOCKMIG_GENERATION, no line from SOCKMIG_DEBUG.
 */
SM_TEST(shim_setuid_inactive)
{
	static const char *const env[] = {"SOCKMIG_DEBUG=1", "SOCKMIG_GENERATION=7", NULL};
	struct proc p = {.pid = 0, .in = -1, .out = -1};
	char args[PATH_MAX + 64], suid[160];
	struct ctx x;
	int ret = ctx_setup(&x), src, dst;
	ssize_t n;
	char buf[65536];

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	/* a setuid-root copy of the program */
	snprintf(suid, sizeof(suid), "%s/prog-suid", x.dir);
	src = open(x.prog, O_RDONLY | O_CLOEXEC);
	dst = open(suid, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	while (src >= 0 && dst >= 0 && (n = read(src, buf, sizeof(buf))) > 0)
		if (write(dst, buf, (size_t)n) != n)
			break;
	if (src >= 0)
		close(src);
	if (dst >= 0)
		close(dst);
	if (!ASSERT_OK(chown(suid, 0, 0), "chown") || !ASSERT_OK(chmod(suid, 04755), "chmod"))
		goto out;
	snprintf(args, sizeof(args), "setuid %d %s", PORT, x.shim);
	if (!ASSERT_TRUE(proc_start(&x, &p, "setuid", suid, false, true, env, -1, args), "start") ||
	    !ASSERT_TRUE(proc_expect(&p, "listened secure=1 euid=0", NULL, 0, 5000),
			 "listening, setuid root, AT_SECURE"))
		goto out;
	if (!ASSERT_EQ(group_exists(&x, PORT), false, "no group made for the caller") ||
	    !ASSERT_TRUE(write(p.in, "go\n", 3) == 3, "go") ||
	    !ASSERT_TRUE(proc_expect(&p, "bye", NULL, 0, 5000), "closed") ||
	    !ASSERT_EQ(proc_wait(&p), 0, "exit code"))
		goto out;
	proc_stderr(&p, NULL);
	if (!ASSERT_EQ(proc_stderr(&p, "sockmig"), 0, "no line from the shim"))
		goto out;
	ret = SM_PASS;
out:
	proc_kill(&p);
	if (ret != SM_PASS)
		group_cleanup(&x, PORT);
	ctx_cleanup(&x);
	return ret;
}

/*
 * Hand-off: the supervisor's listener comes as fd 3 and the shim keeps a
 * private copy. The server then clears its fds (@mode "unshare":
 * close_range(3, ~0U, CLOSE_RANGE_UNSHARE) and new files; "dup2": a file
 * dup2()'d onto fds 3..31) and binds the supervisor's address itself: it
 * must get the supervisor's listener (bind and listen succeed, a client
 * connects and is accepted), never a file that took the private fd's
 * number (listen() failing with ENOTSOCK).
 */
static int handoff_case(const char *mode)
{
	static const char *const env[] = {"SOCKMIG_HANDOFF=1", "SOCKMIG_DEBUG=1", NULL};
	struct proc p = {.pid = 0, .in = -1, .out = -1};
	struct burst *c = calloc(1, sizeof(*c));
	char args[64];
	struct ctx x;
	int ret = ctx_setup(&x), l = -1;

	if (ret != SM_PASS) {
		free(c);
		return ret;
	}
	ret = SM_FAIL;
	l = burst_listener(AF_INET, PORT, 128, 0);
	snprintf(args, sizeof(args), "%s %d", mode, PORT);
	if (!c || !ASSERT_OK(l, "supervisor's listener") ||
	    !ASSERT_TRUE(proc_start(&x, &p, mode, x.prog, true, false, env, l, args), "start") ||
	    !ASSERT_TRUE(proc_expect(&p, "cleared 0", NULL, 0, 5000), "fds cleared") ||
	    !ASSERT_TRUE(proc_expect(&p, "bind 0 ok", NULL, 0, 5000), "bind") ||
	    !ASSERT_TRUE(proc_expect(&p, "listen 0 ok", NULL, 0, 5000),
			 "listen on the supervisor's listener"))
		goto out;
	/* the server accepts from the supervisor's listener itself */
	close(l);
	l = -1;
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT, 1, false), "connect") ||
	    !ASSERT_TRUE(proc_expect(&p, "accept ok", NULL, 0, 5000), "accepted") ||
	    !ASSERT_EQ(proc_wait(&p), 0, "exit code"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		proc_stderr(&p, NULL);
	proc_kill(&p);
	if (l >= 0)
		close(l);
	if (c) {
		burst_close(c);
		free(c);
	}
	ctx_cleanup(&x);
	return ret;
}

SM_TEST(shim_close_range_unshare_handoff)
{
	return handoff_case("unshare");
}

SM_TEST(shim_dup2_onto_private_fd)
{
	return handoff_case("dup2");
}

/*
 * A process holds the group's lock and is stopped (SIGSTOP). The
 * server's listen() and close() of a listener in that group wait for the
 * lock a bounded time, then go on without sockmig, and say so once.
 */
SM_TEST(shim_stopped_lock_holder_fails_open)
{
	struct proc p = {.pid = 0, .in = -1, .out = -1};
	char name[SOCKMIG_NAME_MAX], path[PATH_MAX], args[64], line[128];
	struct sockmig_group *g = NULL;
	struct ctx x;
	int ret = ctx_setup(&x), h = -1, status;
	pid_t locker = -1;

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	h = holder_start(PORT, false, &g);
	if (!ASSERT_OK(h, "group made by a holder"))
		goto out;
	group_name(&x, PORT, name);
	snprintf(path, sizeof(path), "%s/%s", SOCKMIG_PIN_ROOT, name);
	locker = fork();
	if (locker == 0) {
		int d = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (d < 0 || flock(d, LOCK_EX) < 0)
			_exit(1);
		raise(SIGSTOP);
		_exit(0);
	}
	if (!ASSERT_TRUE(locker > 0 && waitpid(locker, &status, WUNTRACED) == locker &&
				 WIFSTOPPED(status),
			 "lock holder stopped"))
		goto out;
	snprintf(args, sizeof(args), "lock %d", PORT);
	if (!ASSERT_TRUE(proc_start(&x, &p, "lock", x.prog, true, false, NULL, -1, args),
			 "start") ||
	    !ASSERT_TRUE(proc_expect(&p, "listened", line, sizeof(line), 5000),
			 "listen() returned") ||
	    !ASSERT_LE(field_ms(line), 2000, "listen() ms") ||
	    !ASSERT_TRUE(proc_expect(&p, "closed", line, sizeof(line), 5000), "close() returned") ||
	    !ASSERT_LE(field_ms(line), 2000, "close() ms") ||
	    !ASSERT_EQ(proc_wait(&p), 0, "exit code"))
		goto out;
	proc_stderr(&p, NULL);
	if (!ASSERT_EQ(proc_stderr(&p, "calls go on without sockmig"), 1, "said once") ||
	    !ASSERT_EQ(proc_stderr(&p, "sockmig"), 1, "and nothing else"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		proc_stderr(&p, NULL);
	proc_kill(&p);
	if (locker > 0) {
		kill(locker, SIGKILL);
		waitpid(locker, NULL, 0);
	}
	holder_stop(g, h);
	group_cleanup(&x, PORT);
	ctx_cleanup(&x);
	return ret;
}

/*
 * Legacy mode. Listener A (port P) has a handshake in flight whose final
 * ACK is dropped, so its drain at the last close waits; the server's
 * other thread then closes listener B (port Q). B's close must not wait
 * for A's drain (no process-wide lock across it), and A's close must end
 * at the shim's bound, not at the 63 s SYN+ACK retry budget.
 */
SM_TEST(shim_legacy_drain_bounded_unlocked)
{
	static const char *const env[] = {"SOCKMIG_MODE=legacy", "SOCKMIG_DEBUG=1", NULL};
	struct proc p = {.pid = 0, .in = -1, .out = -1};
	struct burst *c = calloc(1, sizeof(*c));
	struct ackdrop_bpf *ad = NULL;
	struct sockmig_group *g = NULL;
	char args[64], line[128];
	struct ctx x;
	int ret = ctx_setup(&x), h = -1;

	if (ret != SM_PASS) {
		free(c);
		return ret;
	}
	ret = SM_FAIL;
	h = holder_start(PORT, true, &g);
	snprintf(args, sizeof(args), "two %d %d", PORT, PORT + 1);
	if (!c || !ASSERT_OK(h, "holder") ||
	    !ASSERT_TRUE(proc_start(&x, &p, "two", x.prog, true, false, env, -1, args), "start") ||
	    !ASSERT_TRUE(proc_expect(&p, "ready", NULL, 0, 5000), "listening") ||
	    !ASSERT_TRUE(ad = tu_ackdrop_attach(PORT), "ACK dropper"))
		goto out;
	tu_ackdrop_set(ad, true);
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT, 1, false), "half-open client"))
		goto out;
	burst_sleep_ms(100);
	if (!ASSERT_GT(tu_ackdrop_dropped(ad), 0, "final ACK dropped") ||
	    !ASSERT_TRUE(write(p.in, "go\n", 3) == 3, "go") ||
	    !ASSERT_TRUE(proc_expect(&p, "closedB", line, sizeof(line), 3000),
			 "B's close returned while A drains") ||
	    !ASSERT_LE(field_ms(line), 500, "B's close ms") ||
	    !ASSERT_TRUE(proc_expect(&p, "closedA", line, sizeof(line), 6000),
			 "A's close returned") ||
	    !ASSERT_LE(field_ms(line), 4000, "A's close ms") ||
	    !ASSERT_EQ(proc_wait(&p), 0, "exit code"))
		goto out;
	proc_stderr(&p, NULL);
	if (!ASSERT_EQ(proc_stderr(&p, "1 abandoned"), 1, "A's drain ended at its bound"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		proc_stderr(&p, NULL);
	proc_kill(&p);
	if (ad)
		tu_ackdrop_detach(ad);
	if (c) {
		burst_close(c);
		free(c);
	}
	holder_stop(g, h);
	group_cleanup(&x, PORT);
	group_cleanup(&x, PORT + 1);
	ctx_cleanup(&x);
	return ret;
}
