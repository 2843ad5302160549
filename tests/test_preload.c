// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libsockmig-preload.so against real servers. The server is the small C
 * program below, compiled with cc at run time into a temporary directory:
 * a plain glibc program like the servers the shim is for (and never a
 * sanitizer build: the shim loaded is the normal build, found next to the
 * test runner or one directory up). Each server runs with LD_PRELOAD (or
 * without it, for the baselines), takes commands on its stdin and answers
 * on its stdout one line each, "ROLE PID WORD ...", ROLE being master or,
 * with -f, the worker it forks after listening (a pre-fork server sharing
 * its listeners). Its stderr is kept in a file: the shim writes there.
 * Clients are bursts (bench/burst.h), counted exactly.
 *
 * Server options: PORT [-R no SO_REUSEPORT] [-n LISTENERS] [-f fork a
 * worker] [-s serve at once] [-i FD use inherited listener FD] [-C close
 * every fd above 2 first, as daemons do]. Commands:
 * serve, pause, queue, dup, closeorig (close the listeners, keep their
 * dups), close, shutdown, reexec (execve() itself, keeping the listener
 * open), exit (exit() with what is still open), "w CMD" to the worker
 * only, "a CMD" to the worker and then the master.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gelf.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define PORT 33000

static const char server_src[] =
	"#define _GNU_SOURCE\n"
	"#include <errno.h>\n"
	"#include <fcntl.h>\n"
	"#include <netinet/in.h>\n"
	"#include <netinet/tcp.h>\n"
	"#include <poll.h>\n"
	"#include <stdarg.h>\n"
	"#include <stdio.h>\n"
	"#include <stdlib.h>\n"
	"#include <string.h>\n"
	"#include <sys/socket.h>\n"
	"#include <sys/time.h>\n"
	"#include <sys/wait.h>\n"
	"#include <unistd.h>\n"
	"\n"
	"#define MAXL 8\n"
	"static int lfd[MAXL], dfd[MAXL], nl = 1, serving, ctl, wpipe = -1, port;\n"
	"static char *prog;\n"
	"static pid_t worker;\n"
	"static const char *who = \"master\";\n"
	"\n"
	"static void say(const char *fmt, ...)\n"
	"{\n"
	"  char b[512];\n"
	"  va_list ap;\n"
	"  int n = snprintf(b, sizeof(b), \"%s %d \", who, (int)getpid());\n"
	"\n"
	"  va_start(ap, fmt);\n"
	"  n += vsnprintf(b + n, sizeof(b) - (size_t)n - 1, fmt, ap);\n"
	"  va_end(ap);\n"
	"  b[n++] = '\\n';\n"
	"  if (write(1, b, (size_t)n) < 0)\n"
	"    exit(3);\n"
	"}\n"
	"\n"
	"static const char *kept(void)\n"
	"{\n"
	"  return errno == 4242 ? \"kept\" : strerror(errno);\n"
	"}\n"
	"\n"
	"static int listener(int port, int reuse)\n"
	"{\n"
	"  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};\n"
	"  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;\n"
	"\n"
	"  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);\n"
	"  if (reuse)\n"
	"    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));\n"
	"  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {\n"
	"    say(\"error bind: %s\", strerror(errno));\n"
	"    exit(2);\n"
	"  }\n"
	"  errno = 4242;\n"
	"  if (listen(fd, 1024) < 0) {\n"
	"    say(\"error listen: %s\", strerror(errno));\n"
	"    exit(2);\n"
	"  }\n"
	"  if (errno != 4242) {\n"
	"    say(\"error listen changed errno: %s\", strerror(errno));\n"
	"    exit(2);\n"
	"  }\n"
	"  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);\n"
	"  return fd;\n"
	"}\n"
	"\n"
	"static int any_fd(int i)\n"
	"{\n"
	"  return lfd[i] >= 0 ? lfd[i] : dfd[i];\n"
	"}\n"
	"\n"
	"static int queue(void)\n"
	"{\n"
	"  struct tcp_info ti;\n"
	"  socklen_t len;\n"
	"  int q = 0;\n"
	"\n"
	"  for (int i = 0; i < nl; i++) {\n"
	"    len = sizeof(ti);\n"
	"    if (any_fd(i) >= 0 && getsockopt(any_fd(i), IPPROTO_TCP, TCP_INFO, &ti, &len) == 0)\n"
	"      q += (int)ti.tcpi_unacked;\n"
	"  }\n"
	"  return q;\n"
	"}\n"
	"\n"
	"static void handle(int c)\n"
	"{\n"
	"  static const char reply[] = \"HTTP/1.0 200 OK\\r\\n\\r\\nsockmig\\n\";\n"
	"  struct timeval tv = {1, 0};\n"
	"  char buf[256];\n"
	"  size_t got = 0;\n"
	"  ssize_t n;\n"
	"\n"
	"  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));\n"
	"  while (got < sizeof(buf) && (n = read(c, buf + got, sizeof(buf) - got)) > 0) {\n"
	"    got += (size_t)n;\n"
	"    if (memchr(buf, '\\n', got)) {\n"
	"      if (write(c, reply, sizeof(reply) - 1) < 0)\n"
	"        break;\n"
	"      break;\n"
	"    }\n"
	"  }\n"
	"  close(c);\n"
	"}\n"
	"\n"
	"static void closeall(int orig, int dups)\n"
	"{\n"
	"  errno = 4242;\n"
	"  for (int i = 0; i < nl; i++) {\n"
	"    if (orig && lfd[i] >= 0 && close(lfd[i]) == 0)\n"
	"      lfd[i] = -1;\n"
	"    if (dups && dfd[i] >= 0 && close(dfd[i]) == 0)\n"
	"      dfd[i] = -1;\n"
	"  }\n"
	"  say(\"closed errno=%s\", kept());\n"
	"}\n"
	"\n"
	"static void command(char *cmd)\n"
	"{\n"
	"  if (!strncmp(cmd, \"w \", 2) || !strncmp(cmd, \"a \", 2)) {\n"
	"    char line[256];\n"
	"    int n = snprintf(line, sizeof(line), \"%s\\n\", cmd + 2);\n"
	"\n"
	"    if (wpipe < 0 || write(wpipe, line, (size_t)n) != n)\n"
	"      say(\"error no worker\");\n"
	"    if (cmd[0] == 'a')\n"
	"      command(cmd + 2);\n"
	"  } else if (!strcmp(cmd, \"serve\")) {\n"
	"    serving = 1;\n"
	"    say(\"serving\");\n"
	"  } else if (!strcmp(cmd, \"pause\")) {\n"
	"    serving = 0;\n"
	"    say(\"paused\");\n"
	"  } else if (!strcmp(cmd, \"queue\")) {\n"
	"    say(\"queue %d\", queue());\n"
	"  } else if (!strcmp(cmd, \"dup\")) {\n"
	"    for (int i = 0; i < nl; i++)\n"
	"      dfd[i] = dup(lfd[i]);\n"
	"    say(\"dup\");\n"
	"  } else if (!strcmp(cmd, \"closeorig\")) {\n"
	"    closeall(1, 0);\n"
	"  } else if (!strcmp(cmd, \"close\")) {\n"
	"    closeall(1, 1);\n"
	"  } else if (!strcmp(cmd, \"shutdown\")) {\n"
	"    int r = 0;\n"
	"\n"
	"    errno = 4242;\n"
	"    for (int i = 0; i < nl; i++)\n"
	"      r |= shutdown(any_fd(i), SHUT_RDWR);\n"
	"    say(\"shutdown ret=%d errno=%s\", r, kept());\n"
	"  } else if (!strcmp(cmd, \"reexec\")) {\n"
	"    char p[16], f[16];\n"
	"\n"
	"    snprintf(p, sizeof(p), \"%d\", port);\n"
	"    snprintf(f, sizeof(f), \"%d\", lfd[0]);\n"
	"    execl(prog, prog, p, \"-i\", f, (char *)NULL);\n"
	"    say(\"error exec: %s\", strerror(errno));\n"
	"  } else if (!strcmp(cmd, \"exit\")) {\n"
	"    if (worker > 0) {\n"
	"      if (write(wpipe, \"exit\\n\", 5) != 5)\n"
	"        say(\"error no worker\");\n"
	"      waitpid(worker, NULL, 0);\n"
	"    }\n"
	"    say(\"exiting\");\n"
	"    exit(0); /* listeners still open are closed by exit */\n"
	"  } else {\n"
	"    say(\"error unknown command %s\", cmd);\n"
	"  }\n"
	"}\n"
	"\n"
	"int main(int argc, char **argv)\n"
	"{\n"
	"  int reuse = 1, prefork = 0, inherited = -1, closeall_first = 0, opt;\n"
	"  char buf[1024];\n"
	"  size_t len = 0;\n"
	"\n"
	"  prog = argv[0];\n"
	"  port = atoi(argv[1]);\n"
	"  while ((opt = getopt(argc - 1, argv + 1, \"Rn:fsi:C\")) != -1) {\n"
	"    if (opt == 'C')\n"
	"      closeall_first = 1;\n"
	"    else if (opt == 'i')\n"
	"      inherited = atoi(optarg);\n"
	"    else if (opt == 'R')\n"
	"      reuse = 0;\n"
	"    else if (opt == 'n')\n"
	"      nl = atoi(optarg);\n"
	"    else if (opt == 'f')\n"
	"      prefork = 1;\n"
	"    else if (opt == 's')\n"
	"      serving = 1;\n"
	"  }\n"
	"  if (closeall_first) {\n"
	"    close(3);\n"
	"    closefrom(3);\n"
	"  }\n"
	"  for (int i = 0; i < nl && i < MAXL; i++) {\n"
	"    lfd[i] = inherited >= 0 ? inherited : listener(port, reuse);\n"
	"    dfd[i] = -1;\n"
	"  }\n"
	"  say(\"ready errno=kept\");\n"
	"  if (prefork) {\n"
	"    int p[2];\n"
	"\n"
	"    if (pipe(p) < 0)\n"
	"      return 2;\n"
	"    worker = fork();\n"
	"    if (worker == 0) {\n"
	"      who = \"worker\";\n"
	"      worker = 0;\n"
	"      close(p[1]);\n"
	"      ctl = p[0];\n"
	"      say(\"ready\");\n"
	"    } else {\n"
	"      close(p[0]);\n"
	"      wpipe = p[1];\n"
	"    }\n"
	"  }\n"
	"  for (;;) {\n"
	"    struct pollfd pf[1 + MAXL];\n"
	"    int np = 1;\n"
	"    ssize_t n;\n"
	"    char *nlp;\n"
	"\n"
	"    pf[0].fd = ctl;\n"
	"    pf[0].events = POLLIN;\n"
	"    for (int i = 0; serving && i < nl; i++)\n"
	"      if (any_fd(i) >= 0) {\n"
	"        pf[np].fd = any_fd(i);\n"
	"        pf[np++].events = POLLIN;\n"
	"      }\n"
	"    if (poll(pf, (nfds_t)np, 100) < 0)\n"
	"      continue;\n"
	"    for (int i = 1; i < np; i++) {\n"
	"      int c;\n"
	"\n"
	"      if (pf[i].revents & POLLIN)\n"
	"        while ((c = accept(pf[i].fd, NULL, NULL)) >= 0)\n"
	"          handle(c);\n"
	"    }\n"
	"    if (!(pf[0].revents & (POLLIN | POLLHUP)))\n"
	"      continue;\n"
	"    n = read(ctl, buf + len, sizeof(buf) - len - 1);\n"
	"    if (n <= 0)\n"
	"      exit(0); /* the test went away */\n"
	"    len += (size_t)n;\n"
	"    buf[len] = '\\0';\n"
	"    while ((nlp = strchr(buf, '\\n'))) {\n"
	"      *nlp = '\\0';\n"
	"      command(buf);\n"
	"      len -= (size_t)(nlp + 1 - buf);\n"
	"      memmove(buf, nlp + 1, len + 1);\n"
	"    }\n"
	"  }\n"
	"}\n";

/* ---- the server, built and run ------------------------------------------ */

struct ctx {
	char dir[64];
	char server[128];
	char shim[PATH_MAX];
	unsigned long netns;
};

struct srv {
	char name[16];
	char err[128]; /* its stderr */
	pid_t pid;
	int in, out, status;
	size_t len;
	char buf[8192];
};

/* Does the file hold a sanitizer runtime's name? */
static bool sanitized(const char *path)
{
	static const char *const marks[] = {"libasan.so", "libubsan.so", "__asan_init"};
	struct stat st;
	bool found = false;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0 || !(buf = malloc((size_t)st.st_size + 1))) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	if (read(fd, buf, (size_t)st.st_size) == st.st_size)
		for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
			found |=
				memmem(buf, (size_t)st.st_size, marks[i], strlen(marks[i])) != NULL;
	free(buf);
	close(fd);
	return found;
}

/* The normal build of the shim: next to the runner (.output/) or, for the
 * sanitizer runner (.output/asan/), one directory up. */
static bool find_shim(char *out)
{
	char dir[PATH_MAX], cand[PATH_MAX + 32], *slash;
	ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);

	if (n <= 0)
		return false;
	dir[n] = '\0';
	for (int up = 0; up < 2; up++) {
		slash = strrchr(dir, '/');
		if (!slash)
			return false;
		*slash = '\0';
		snprintf(cand, sizeof(cand), "%s/libsockmig-preload.so", dir);
		if (access(cand, R_OK) == 0 && !sanitized(cand) && realpath(cand, out))
			return true;
	}
	return false;
}

static bool write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	bool ok = fd >= 0 && write(fd, data, len) == (ssize_t)len;

	if (fd >= 0)
		close(fd);
	return ok && chmod(path, mode) == 0;
}

static void ctx_cleanup(struct ctx *x)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (!x->dir[0])
		return;
	d = opendir(x->dir);
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", x->dir, de->d_name);
			unlink(path);
		}
	if (d)
		closedir(d);
	rmdir(x->dir);
	x->dir[0] = '\0';
}

/* Find the shim, build the server; SM_PASS, or SM_SKIP/SM_FAIL said. */
static int ctx_setup(struct ctx *x)
{
	char src[128], log[128], buf[4096];
	struct stat st;
	int status = 0, fd;
	ssize_t n;
	pid_t pid;

	memset(x, 0, sizeof(*x));
	signal(SIGPIPE, SIG_IGN);
	if (!find_shim(x->shim))
		return SKIP("no libsockmig-preload.so of the normal build next to the runner "
			    "(make all builds it; a sanitizer build is never preloaded)");
	printf("shim: %s\n", x->shim);
	if (stat("/proc/self/ns/net", &st) < 0)
		return SM_FAIL;
	x->netns = st.st_ino;
	snprintf(x->dir, sizeof(x->dir), "/tmp/sockmig-preload-XXXXXX");
	if (!mkdtemp(x->dir) || chmod(x->dir, 0755) < 0) {
		printf("mkdtemp: %s\n", strerror(errno));
		x->dir[0] = '\0';
		return SM_FAIL;
	}
	snprintf(src, sizeof(src), "%s/server.c", x->dir);
	snprintf(log, sizeof(log), "%s/cc.log", x->dir);
	snprintf(x->server, sizeof(x->server), "%s/server", x->dir);
	if (!write_file(src, server_src, strlen(server_src), 0644))
		goto fail;
	pid = fork();
	if (pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execlp("cc", "cc", "-O2", "-Wall", "-o", x->server, src, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		goto fail;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		ctx_cleanup(x);
		return SKIP("no C compiler (cc) to build the test server");
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("cc failed:\n");
		fd = open(log, O_RDONLY | O_CLOEXEC);
		while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
			fwrite(buf, 1, (size_t)n, stdout);
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	return SM_PASS;
fail:
	ctx_cleanup(x);
	return SM_FAIL;
}

/* A copy of the shim in the test directory (readable by any user). */
static bool copy_shim(struct ctx *x)
{
	char path[PATH_MAX];
	struct stat st;
	bool ok = false;
	char *buf;
	int fd = open(x->shim, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0 || !(buf = malloc((size_t)st.st_size))) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	snprintf(path, sizeof(path), "%s/libsockmig-preload.so", x->dir);
	if (read(fd, buf, (size_t)st.st_size) == st.st_size)
		ok = write_file(path, buf, (size_t)st.st_size, 0755);
	free(buf);
	close(fd);
	if (ok)
		snprintf(x->shim, sizeof(x->shim), "%s", path);
	return ok;
}

/* When >= 0, srv_start() hands this listener down as fd 3, with
 * LISTEN_FDS=1 and LISTEN_PID (what sockmig run --handoff does). */
static int srv_listen_fd = -1;

/*
 * Start the server @name with @args, the shim preloaded when @preload,
 * the environment variables @env (NULL-terminated, may be NULL) and,
 * with @nobody, as uid/gid 65534. In its own process group.
 */
static bool srv_start(struct ctx *x, struct srv *s, const char *name, bool preload, bool nobody,
		      const char *const *env, const char *args)
{
	char argbuf[128], pre[PATH_MAX + 16], *argv[16], *envp[20], *save = NULL, *tok;
	char lpid[32];
	int in[2], out[2], errfd, na = 0, ne = 0;

	memset(s, 0, sizeof(*s));
	s->pid = -1;
	s->in = s->out = -1;
	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(s->err, sizeof(s->err), "%s/%s.stderr", x->dir, name);
	snprintf(argbuf, sizeof(argbuf), "%s", args);
	argv[na++] = x->server;
	for (tok = strtok_r(argbuf, " ", &save); tok && na < 15; tok = strtok_r(NULL, " ", &save))
		argv[na++] = tok;
	argv[na] = NULL;
	envp[ne++] = "PATH=/usr/bin:/bin";
	snprintf(pre, sizeof(pre), "LD_PRELOAD=%s", x->shim);
	if (preload)
		envp[ne++] = pre;
	for (int i = 0; env && env[i] && ne < 15; i++)
		envp[ne++] = (char *)env[i];
	envp[ne] = NULL;
	if (pipe2(in, O_CLOEXEC) < 0)
		return false;
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return false;
	}
	errfd = open(s->err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	s->pid = fork();
	if (s->pid == 0) {
		setpgid(0, 0);
		signal(SIGPIPE, SIG_DFL);
		if (dup2(in[0], STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0 ||
		    dup2(errfd, STDERR_FILENO) < 0)
			_exit(126);
		if (nobody && (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
			       setresuid(65534, 65534, 65534) < 0))
			_exit(126);
		if (srv_listen_fd >= 0) {
			if (dup2(srv_listen_fd, 3) < 0)
				_exit(126);
			snprintf(lpid, sizeof(lpid), "LISTEN_PID=%d", (int)getpid());
			envp[ne++] = "LISTEN_FDS=1";
			envp[ne++] = lpid;
			envp[ne] = NULL;
		}
		execve(argv[0], argv, envp);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	if (errfd >= 0)
		close(errfd);
	s->in = in[1];
	s->out = out[0];
	if (s->pid < 0) {
		close(s->in);
		close(s->out);
		s->in = s->out = -1;
		return false;
	}
	return true;
}

/* Wait for the line "@role PID @word ..." (any role when NULL), 5 s at
 * most; every line read is printed (shown when the case fails). */
static bool srv_expect(struct srv *s, const char *role, const char *word, char *line, size_t len)
{
	unsigned long long end = burst_now_ms() + 5000, now;
	struct pollfd p = {.fd = s->out, .events = POLLIN};
	char r[16], w[32], *nl;
	bool match;
	ssize_t n;
	int pid;

	for (;;) {
		while ((nl = memchr(s->buf, '\n', s->len))) {
			size_t l = (size_t)(nl - s->buf) + 1;

			*nl = '\0';
			match = sscanf(s->buf, "%15s %d %31s", r, &pid, w) == 3 &&
				(!role || strcmp(r, role) == 0) && strcmp(w, word) == 0;
			printf("  %s| %s\n", s->name, s->buf);
			if (match && line)
				snprintf(line, len, "%s", s->buf);
			s->len -= l;
			memmove(s->buf, s->buf + l, s->len);
			if (match)
				return true;
		}
		now = burst_now_ms();
		if (s->out < 0 || now >= end || poll(&p, 1, (int)(end - now)) <= 0)
			break;
		n = read(s->out, s->buf + s->len, sizeof(s->buf) - s->len - 1);
		if (n <= 0)
			break;
		s->len += (size_t)n;
	}
	printf("  %s: no '%s ... %s' line\n", s->name, role ? role : "*", word);
	return false;
}

static bool srv_cmd(struct srv *s, const char *cmd)
{
	char line[128];
	int n = snprintf(line, sizeof(line), "%s\n", cmd);

	return s->in >= 0 && write(s->in, line, (size_t)n) == n;
}

/* The accept queue the server sees: "queue" or "w queue". */
static int srv_queue(struct srv *s, bool worker)
{
	char line[128];
	int q = -1;

	if (!srv_cmd(s, worker ? "w queue" : "queue") ||
	    !srv_expect(s, worker ? "worker" : "master", "queue", line, sizeof(line)))
		return -1;
	sscanf(strstr(line, "queue"), "queue %d", &q);
	return q;
}

/* Wait for the server to exit: its exit code, or -1. */
static int srv_wait(struct srv *s, int timeout_ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)timeout_ms;
	int status;
	pid_t r;

	if (s->pid <= 0)
		return s->status;
	while ((r = waitpid(s->pid, &status, WNOHANG)) == 0 && burst_now_ms() < end)
		burst_sleep_ms(5);
	if (r == 0) {
		printf("  %s: still running after %d ms, killed\n", s->name, timeout_ms);
		kill(-s->pid, SIGKILL);
		waitpid(s->pid, &status, 0);
		status = -1;
	}
	s->pid = 0;
	s->status = status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	return s->status;
}

/* "exit", and its exit code. */
static int srv_exit(struct srv *s)
{
	srv_cmd(s, "exit");
	return srv_wait(s, 5000);
}

/* Kill what is left of the server (its worker too) and close its pipes. */
static void srv_kill(struct srv *s)
{
	if (s->pid > 0) {
		kill(-s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
	if (s->in >= 0)
		close(s->in);
	if (s->out >= 0)
		close(s->out);
	s->in = s->out = -1;
}

/* Lines of the server's stderr that contain @needle (every line when
 * NULL); the whole of it is printed. */
static int srv_stderr(struct srv *s, const char *needle)
{
	char buf[16384], *line, *save = NULL;
	int fd = open(s->err, O_RDONLY | O_CLOEXEC), count = 0;
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!needle)
			printf("  %s 2> %s\n", s->name, line);
		if (!needle || strstr(line, needle))
			count++;
	}
	return count;
}

/* Start time (field 22 of /proc/PID/stat), the shim's default generation. */
static unsigned long long start_time(pid_t pid)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* ---- the group, seen from the test --------------------------------------- */

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

/* The members of the group of @port, or -ENOENT. */
static int group_members(const struct ctx *x, int port, struct sockmig_member_info *info, int max)
{
	char name[SOCKMIG_NAME_MAX];
	struct sockmig_group *g;
	int n;

	group_name(x, port, name);
	g = sockmig_group_open_name(name, NULL);
	if (!g)
		return -errno;
	n = sockmig_members(g, info, max);
	sockmig_group_close(g);
	return n;
}

/* Groups of this network namespace under the pin root. */
static int netns_groups(const struct ctx *x)
{
	char prefix[32];
	struct dirent *de;
	DIR *d = opendir(SOCKMIG_PIN_ROOT);
	int n = 0;

	snprintf(prefix, sizeof(prefix), "%lu-", x->netns);
	while (d && (de = readdir(d)))
		n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
	if (d)
		closedir(d);
	return n;
}

/* After a failure: remove what the servers left, so that the runner's
 * bpffs check reports the case once, not twice. */
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

/* A holder listener of the test process in the group of @port: it takes
 * SYNs only when no member is active, and migrations when no active member
 * is left, so it catches any drain of the server's listener. */
static int holder_start(int port, struct sockmig_group **g)
{
	SOCKMIG_OPTS(sockmig_member_opts, o, .role = SOCKMIG_ROLE_HOLDER);
	int h = burst_listener(AF_INET, port, 1024, 0);

	*g = NULL;
	if (h < 0)
		return h;
	*g = sockmig_group_open(h, NULL);
	if (!*g || sockmig_member_add(*g, h, &o) < 0) {
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

static struct burst *clients_new(void)
{
	return calloc(1, sizeof(struct burst));
}

/* Reset what is left (no TIME_WAIT) and free. */
static void clients_free(struct burst *c)
{
	struct linger lg = {1, 0};

	if (!c)
		return;
	for (int k = 0; k < c->n; k++)
		if (c->fd[k] >= 0)
			setsockopt(c->fd[k], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	burst_close(c);
	free(c);
}

/* @n more clients of @c connected (handshake done) to @port. */
static bool clients_connect(struct burst *c, int port, int n)
{
	int before = c->n;

	return burst_start(c, AF_INET, port, n, false) == 0 &&
	       burst_connected(c, 3000) == before + n;
}

/* ---- the cases ------------------------------------------------------------- */

#define N_RELOAD 40

/*
 * Generation 1 is a pre-fork server (master and worker share one
 * listener), paused with N clients in its accept queue; generation 2
 * starts and serves; both processes of generation 1 close the listener at
 * once and exit. Without the shim (tcp_migrate_req=0): N resets. With it:
 * the last of the two closes drains, N clients served by generation 2.
 * With @legacy (SOCKMIG_MODE=legacy: what a 4.19 to 5.13 kernel offers)
 * nothing migrates: the last close accepts every queued connection and
 * hands it over SCM_RIGHTS to generation 2's hand-off endpoint, which the
 * shim opened at its listen(); one connection steered to generation 2
 * wakes it, and its accept() returns the N hand-offs, then that one.
 */
static int prefork_reload(struct ctx *x, bool preload, bool legacy, int port)
{
	static const char *const native_env[] = {"SOCKMIG_DEBUG=1", NULL};
	static const char *const legacy_env[] = {"SOCKMIG_MODE=legacy", "SOCKMIG_DEBUG=1", NULL};
	const char *const *env = legacy ? legacy_env : native_env;
	char why[200];
	/* a kernel that cannot migrate gets legacy mode without being told:
	 * the shim's half is then the legacy one (SOCKMIG_MODE=legacy keeps
	 * the members' check below, which asks for the native layout) */
	bool as_legacy = legacy || !kernel_migrates(why, sizeof(why));
	struct sockmig_member_info info[4];
	struct sockmig_netstat ns0, ns1, d;
	struct srv old = {.pid = -1, .in = -1, .out = -1}, new = old;
	struct burst *c = clients_new();
	char args[32], label[64];
	int ret = SM_FAIL, n;

	printf("%s the shim%s:\n", preload ? "with" : "without", legacy ? ", legacy mode" : "");
	snprintf(args, sizeof(args), "%d -f", port);
	if (!c || !ASSERT_OK(burst_sysctl("net/ipv4/tcp_migrate_req", "0"), "sysctl") ||
	    !ASSERT_TRUE(srv_start(x, &old, "gen1", preload, false, env, args), "start gen 1") ||
	    !ASSERT_TRUE(srv_expect(&old, "master", "ready", NULL, 0), "gen 1 master ready") ||
	    !ASSERT_TRUE(srv_expect(&old, "worker", "ready", NULL, 0), "gen 1 worker ready"))
		goto out;
	if (!ASSERT_TRUE(clients_connect(c, port, N_RELOAD), "clients connected") ||
	    !ASSERT_EQ(srv_queue(&old, false), N_RELOAD, "queued on generation 1"))
		goto out;
	burst_sleep_ms(30); /* a later start time: 3 clock ticks at least */
	snprintf(args, sizeof(args), "%d -s", port);
	if (!ASSERT_TRUE(srv_start(x, &new, "gen2", preload, false, env, args), "start gen 2") ||
	    !ASSERT_TRUE(srv_expect(&new, "master", "ready", NULL, 0), "gen 2 ready"))
		goto out;
	if (preload && !legacy) {
		int i1, i2;

		n = group_members(x, port, info, 4);
		if (!ASSERT_EQ(n, 2, "members: one listener per generation"))
			goto out;
		i1 = info[0].pid == (uint32_t)old.pid ? 0 : 1;
		i2 = 1 - i1;
		printf("generation 1: %u (pid %u), generation 2: %u (pid %u)\n",
		       info[i1].generation, info[i1].pid, info[i2].generation, info[i2].pid);
		if (!ASSERT_EQ(info[i1].pid, old.pid, "gen 1 member's pid") ||
		    !ASSERT_EQ(info[i2].pid, new.pid, "gen 2 member's pid") ||
		    !ASSERT_EQ(info[i1].generation, (uint32_t)start_time(old.pid),
			       "gen 1 generation = its start time") ||
		    !ASSERT_EQ(info[i2].generation, (uint32_t)start_time(new.pid),
			       "gen 2 generation = its start time") ||
		    !ASSERT_TRUE(info[i1].generation < info[i2].generation, "gen 2 is newer") ||
		    !ASSERT_TRUE(info[i1].role == SOCKMIG_ROLE_ACTIVE &&
					 info[i2].role == SOCKMIG_ROLE_ACTIVE,
				 "both active"))
			goto out;
	}
	sockmig_netstat_read(&ns0);
	/* master and worker close at the same time */
	if (!ASSERT_TRUE(srv_cmd(&old, "a close"), "close") ||
	    !ASSERT_TRUE(srv_expect(&old, NULL, "closed", NULL, 0), "one closed") ||
	    !ASSERT_TRUE(srv_expect(&old, NULL, "closed", NULL, 0), "both closed") ||
	    !ASSERT_EQ(srv_exit(&old), 0, "gen 1 exit code"))
		goto out;
	burst_serve(c, NULL, 0, NULL, 5000);
	sockmig_netstat_read(&ns1);
	sockmig_netstat_delta(&ns0, &ns1, &d);
	snprintf(label, sizeof(label), "%s the shim", preload ? "with" : "without");
	burst_print(c, label);
	printf("TCPMigrateReqSuccess %llu, TCPMigrateReqFailure %llu\n",
	       (unsigned long long)d.migrate_success, (unsigned long long)d.migrate_failure);
	srv_stderr(&old, NULL);
	if (!preload) {
		if (!ASSERT_EQ(c->count[BURST_RESET], N_RELOAD,
			       "baseline: every queued client reset") ||
		    !ASSERT_EQ(c->count[BURST_OK], 0, "baseline: served") ||
		    !ASSERT_EQ(d.migrate_success, 0, "baseline: migrated"))
			goto out;
	} else if (as_legacy) {
		if (!legacy)
			printf("no native migration here (%s): legacy mode\n", why);
		if (!ASSERT_EQ(c->count[BURST_OK], N_RELOAD, "served by generation 2") ||
		    !ASSERT_EQ(c->count[BURST_RESET], 0, "resets") ||
		    !ASSERT_EQ(d.migrate_success, 0, "TCPMigrateReqSuccess: nothing migrated") ||
		    !ASSERT_EQ(srv_stderr(&old, "drained (legacy): 40 handed off, 0 refused, "
						"0 abandoned"),
			       1, "the last close handed the 40 off") ||
		    !ASSERT_EQ(srv_stderr(&new, "legacy group: hand-off endpoint open"), 1,
			       "gen 2 opened its endpoint") ||
		    !ASSERT_EQ(srv_stderr(&new, "handed off by a drain"), N_RELOAD,
			       "gen 2's accept() took the 40"))
			goto out;
	} else {
		if (!ASSERT_EQ(c->count[BURST_OK], N_RELOAD, "served by generation 2") ||
		    !ASSERT_EQ(c->count[BURST_RESET], 0, "resets") ||
		    !ASSERT_EQ(d.migrate_success, N_RELOAD, "TCPMigrateReqSuccess") ||
		    !ASSERT_EQ(d.migrate_failure, 0, "TCPMigrateReqFailure") ||
		    !ASSERT_EQ(srv_stderr(&old, "not the last reference"), 1,
			       "one of the two closes was not the last reference") ||
		    !ASSERT_EQ(srv_stderr(&old, "last reference: drained: 40 migrated"), 1,
			       "the other one drained the 40") ||
		    !ASSERT_EQ(srv_stderr(&old, "left group"), 1, "and left the group") ||
		    !ASSERT_EQ(group_members(x, port, info, 4), 1, "members left: generation 2"))
			goto out;
	}
	if (!ASSERT_EQ(srv_exit(&new), 0, "gen 2 exit code") ||
	    !ASSERT_EQ(group_exists(x, port), false, "group removed with its last member"))
		goto out;
	ret = SM_PASS;
out:
	srv_kill(&old);
	srv_kill(&new);
	clients_free(c);
	if (ret != SM_PASS)
		group_cleanup(x, port);
	return ret;
}

SM_TEST(preload_prefork_reload_no_resets)
{
	struct ctx x;
	int ret = ctx_setup(&x);

	if (ret != SM_PASS)
		return ret;
	ret = prefork_reload(&x, false, false, PORT);
	if (ret == SM_PASS)
		ret = prefork_reload(&x, true, false, PORT + 1);
	ctx_cleanup(&x);
	return ret;
}

/*
 * A dup'd listener fd is closed: the socket stays open through the dup,
 * so nothing is drained. A holder (in the test process) would take the
 * queue and the new SYNs of a drained member: it gets none. The close of
 * the dup, the last reference, drains.
 */
/* The same in legacy mode, after its baseline (without the shim). */
SM_TEST(preload_legacy_reload_hands_off)
{
	struct ctx x;
	int ret = ctx_setup(&x);

	if (ret != SM_PASS)
		return ret;
	ret = prefork_reload(&x, false, true, PORT);
	if (ret == SM_PASS)
		ret = prefork_reload(&x, true, true, PORT + 1);
	ctx_cleanup(&x);
	return ret;
}

SM_TEST(preload_dup_close_is_not_last)
{
	static const char *const env[] = {"SOCKMIG_DEBUG=1", NULL};
	struct srv s = {.pid = -1, .in = -1, .out = -1};
	struct sockmig_member_info info[4];
	struct sockmig_group *hg = NULL;
	struct burst *c = clients_new();
	struct ctx x;
	char args[32], why[200];
	int ret = ctx_setup(&x), h = -1, served[1] = {0}, n;

	if (ret != SM_PASS) {
		free(c);
		return ret;
	}
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "%d", PORT);
	if (!c || !ASSERT_TRUE(srv_start(&x, &s, "server", true, false, env, args), "start") ||
	    !ASSERT_TRUE(srv_expect(&s, "master", "ready", NULL, 0), "ready") ||
	    !ASSERT_OK(h = holder_start(PORT, &hg), "holder") ||
	    !ASSERT_TRUE(srv_cmd(&s, "dup") && srv_expect(&s, "master", "dup", NULL, 0), "dup"))
		goto out;
	if (!ASSERT_TRUE(clients_connect(c, PORT, 20), "20 clients") ||
	    !ASSERT_EQ(srv_queue(&s, false), 20, "server's queue") ||
	    !ASSERT_EQ(burst_accept_queue(h), 0, "holder's queue"))
		goto out;
	if (!ASSERT_TRUE(srv_cmd(&s, "closeorig"), "close the listener, keep the dup") ||
	    !ASSERT_TRUE(srv_expect(&s, "master", "closed", NULL, 0), "closed"))
		goto out;
	n = group_members(&x, PORT, info, 4);
	if (!ASSERT_EQ(n, 2, "members") ||
	    !ASSERT_EQ(srv_queue(&s, false), 20, "server's queue after the close") ||
	    !ASSERT_EQ(burst_accept_queue(h), 0, "holder's queue after the close"))
		goto out;
	for (int i = 0; i < n; i++)
		if (info[i].pid == (uint32_t)s.pid &&
		    (!ASSERT_EQ(info[i].role, SOCKMIG_ROLE_ACTIVE,
				"server's member still active") ||
		     !ASSERT_TRUE(info[i].listening, "and listening")))
			goto out;
	if (!ASSERT_TRUE(clients_connect(c, PORT, 20), "20 more clients") ||
	    !ASSERT_EQ(srv_queue(&s, false), 40, "server's queue: it still takes SYNs") ||
	    !ASSERT_EQ(burst_accept_queue(h), 0, "holder's queue"))
		goto out;
	if (!ASSERT_TRUE(srv_cmd(&s, "serve"), "serve"))
		goto out;
	burst_serve(c, &h, 1, served, 5000);
	burst_print(c, "served through the dup");
	if (!ASSERT_EQ(c->count[BURST_OK], 40, "served") ||
	    !ASSERT_EQ(served[0], 0, "by the holder"))
		goto out;
	if (!ASSERT_TRUE(srv_cmd(&s, "close"), "close the dup") ||
	    !ASSERT_TRUE(srv_expect(&s, "master", "closed", NULL, 0), "closed") ||
	    !ASSERT_EQ(srv_exit(&s), 0, "exit code"))
		goto out;
	srv_stderr(&s, NULL);
	if (!ASSERT_EQ(srv_stderr(&s, "not the last reference"), 1, "the first close") ||
	    !ASSERT_EQ(srv_stderr(&s, kernel_migrates(why, sizeof(why))
					      ? "last reference: drained: 0 migrated"
					      : "last reference: drained (legacy): 0 handed off"),
		       1, "the second") ||
	    !ASSERT_EQ(srv_stderr(&s, "left group"), 1, "left"))
		goto out;
	holder_stop(hg, h);
	hg = NULL;
	h = -1;
	if (!ASSERT_EQ(group_exists(&x, PORT), false, "group removed"))
		goto out;
	ret = SM_PASS;
out:
	srv_kill(&s);
	holder_stop(hg, h);
	clients_free(c);
	if (ret != SM_PASS)
		group_cleanup(&x, PORT);
	ctx_cleanup(&x);
	return ret;
}

/*
 * A pre-fork master closes the listener its worker still holds: not the
 * last reference, nothing drained, the worker keeps queue and SYNs. The
 * worker's close is the last: its queue migrates to the holder.
 */
SM_TEST(preload_fork_close_is_not_last)
{
	static const char *const env[] = {"SOCKMIG_DEBUG=1", NULL};
	struct srv s = {.pid = -1, .in = -1, .out = -1};
	struct sockmig_group *hg = NULL;
	struct burst *c = clients_new(), *c2 = clients_new();
	struct ctx x;
	char args[32], why[200];
	int ret = ctx_setup(&x), h = -1, served[1] = {0};
	bool early = false;

	if (ret != SM_PASS) {
		free(c);
		free(c2);
		return ret;
	}
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "%d -f", PORT);
	if (!c || !c2 ||
	    !ASSERT_TRUE(srv_start(&x, &s, "server", true, false, env, args), "start") ||
	    !ASSERT_TRUE(srv_expect(&s, "master", "ready", NULL, 0), "master ready") ||
	    !ASSERT_TRUE(srv_expect(&s, "worker", "ready", NULL, 0), "worker ready") ||
	    !ASSERT_OK(h = holder_start(PORT, &hg), "holder"))
		goto out;
	if (!ASSERT_TRUE(clients_connect(c, PORT, 20), "20 clients") ||
	    !ASSERT_EQ(srv_queue(&s, false), 20, "queue") ||
	    !ASSERT_TRUE(srv_cmd(&s, "close"), "the master closes") ||
	    !ASSERT_TRUE(srv_expect(&s, "master", "closed", NULL, 0), "closed") ||
	    !ASSERT_EQ(srv_queue(&s, true), 20, "worker's queue after the master's close") ||
	    !ASSERT_EQ(burst_accept_queue(h), 0, "holder's queue"))
		goto out;
	if (!ASSERT_TRUE(clients_connect(c, PORT, 20), "20 more clients") ||
	    !ASSERT_EQ(srv_queue(&s, true), 40, "worker's queue: it still takes SYNs") ||
	    !ASSERT_EQ(burst_accept_queue(h), 0, "holder's queue"))
		goto out;
	if (!ASSERT_TRUE(srv_cmd(&s, "w serve"), "serve"))
		goto out;
	burst_serve(c, &h, 1, served, 5000);
	burst_print(c, "served by the worker");
	if (!ASSERT_EQ(c->count[BURST_OK], 40, "served") ||
	    !ASSERT_EQ(served[0], 0, "by the holder"))
		goto out;
	if (!kernel_migrates(why, sizeof(why))) {
		/* a holder takes a queue only where the kernel migrates it: the
		 * worker's last close is preload_legacy_reload_hands_off's */
		printf("no native migration here (%s): the master's close was not the "
		       "last; the worker's, to a holder, is not tried\n",
		       why);
		srv_stderr(&s, NULL);
		if (ASSERT_EQ(srv_stderr(&s, "not the last reference"), 1, "the master's close") &&
		    ASSERT_EQ(srv_stderr(&s, "drained"), 0, "nothing drained"))
			ret = SM_PASS;
		/* the worker is killed with its member registered */
		early = true;
		goto out;
	}
	/* 15 more wait in the worker's queue; its close is the last reference */
	if (!ASSERT_TRUE(srv_cmd(&s, "w pause") && srv_expect(&s, "worker", "paused", NULL, 0),
			 "pause") ||
	    !ASSERT_TRUE(clients_connect(c2, PORT, 15), "15 clients") ||
	    !ASSERT_EQ(srv_queue(&s, true), 15, "worker's queue") ||
	    !ASSERT_TRUE(srv_cmd(&s, "w close"), "the worker closes") ||
	    !ASSERT_TRUE(srv_expect(&s, "worker", "closed", NULL, 0), "closed") ||
	    !ASSERT_EQ(burst_accept_queue(h), 15, "migrated to the holder"))
		goto out;
	burst_serve(c2, &h, 1, served, 5000);
	burst_print(c2, "after the worker's close");
	if (!ASSERT_EQ(c2->count[BURST_OK], 15, "served") ||
	    !ASSERT_EQ(served[0], 15, "by the holder") || !ASSERT_EQ(srv_exit(&s), 0, "exit code"))
		goto out;
	srv_stderr(&s, NULL);
	if (!ASSERT_EQ(srv_stderr(&s, "not the last reference"), 1, "the master's close") ||
	    !ASSERT_EQ(srv_stderr(&s, "last reference: drained: 15 migrated"), 1, "the worker's") ||
	    !ASSERT_EQ(srv_stderr(&s, "left group"), 1, "left"))
		goto out;
	holder_stop(hg, h);
	hg = NULL;
	h = -1;
	if (!ASSERT_EQ(group_exists(&x, PORT), false, "group removed"))
		goto out;
	ret = SM_PASS;
out:
	srv_kill(&s);
	holder_stop(hg, h);
	clients_free(c);
	clients_free(c2);
	if (ret != SM_PASS || early)
		group_cleanup(&x, PORT);
	ctx_cleanup(&x);
	return ret;
}

/*
 * An old server goes away with 25 clients in its queue while a new one
 * serves; the shim drains the old listener to the new one each way (@how):
 *   shutdown  shutdown(), which must still return 0 with errno kept;
 *   exit      exit() with the listener open;
 *   exec      execve() of itself keeping the listener (a binary upgrade),
 *             then close() in the new image, which never called listen().
 */
static int old_goes_away(const char *how)
{
	static const char *const env[] = {"SOCKMIG_DEBUG=1", NULL};
	struct srv old = {.pid = -1, .in = -1, .out = -1}, new = old;
	struct sockmig_netstat ns0, ns1, d;
	struct burst *c = clients_new();
	struct ctx x;
	char args[32], line[128], why[200];
	int ret = ctx_setup(&x);
	/* where nothing migrates the shim is in legacy mode by itself: the
	 * queue is handed off to the new server's endpoint instead */
	bool native = kernel_migrates(why, sizeof(why));

	if (ret != SM_PASS) {
		free(c);
		return ret;
	}
	ret = SM_FAIL;
	if (!native)
		printf("no native migration here (%s): legacy mode\n", why);
	snprintf(args, sizeof(args), "%d", PORT);
	if (!c || !ASSERT_TRUE(srv_start(&x, &old, "old", true, false, env, args), "start old") ||
	    !ASSERT_TRUE(srv_expect(&old, "master", "ready", NULL, 0), "old ready") ||
	    !ASSERT_TRUE(clients_connect(c, PORT, 25), "25 clients") ||
	    !ASSERT_EQ(srv_queue(&old, false), 25, "queued on old"))
		goto out;
	snprintf(args, sizeof(args), "%d -s", PORT);
	if (!ASSERT_TRUE(srv_start(&x, &new, "new", true, false, env, args), "start new") ||
	    !ASSERT_TRUE(srv_expect(&new, "master", "ready", NULL, 0), "new ready"))
		goto out;
	sockmig_netstat_read(&ns0);
	if (strcmp(how, "shutdown") == 0) {
		if (!ASSERT_TRUE(srv_cmd(&old, "shutdown"), "shutdown") ||
		    !ASSERT_TRUE(srv_expect(&old, "master", "shutdown", line, sizeof(line)),
				 "done") ||
		    !ASSERT_TRUE(strstr(line, "ret=0 errno=kept"),
				 "shutdown() returned 0, errno kept"))
			goto out;
	} else if (strcmp(how, "exec") == 0) {
		if (!ASSERT_TRUE(srv_cmd(&old, "reexec"), "reexec") ||
		    !ASSERT_TRUE(srv_expect(&old, "master", "ready", NULL, 0), "old ready again") ||
		    !ASSERT_EQ(srv_queue(&old, false), 25, "still queued on old") ||
		    !ASSERT_TRUE(srv_cmd(&old, "close"), "close") ||
		    !ASSERT_TRUE(srv_expect(&old, "master", "closed", NULL, 0), "closed"))
			goto out;
	} else if (!ASSERT_EQ(srv_exit(&old), 0, "old exits, listener open")) {
		goto out;
	}
	burst_serve(c, NULL, 0, NULL, 5000);
	sockmig_netstat_read(&ns1);
	sockmig_netstat_delta(&ns0, &ns1, &d);
	burst_print(c, how);
	if (!ASSERT_EQ(c->count[BURST_OK], 25, "served by new") ||
	    !ASSERT_EQ(c->count[BURST_RESET], 0, "resets") ||
	    !ASSERT_EQ(d.migrate_success, native ? 25 : 0, "TCPMigrateReqSuccess"))
		goto out;
	if (strcmp(how, "exit") != 0 && !ASSERT_EQ(srv_exit(&old), 0, "old exits"))
		goto out;
	srv_stderr(&old, NULL);
	if (strcmp(how, "exec") == 0 &&
	    !ASSERT_EQ(srv_stderr(&old, "inherited listener"), 1, "the new image tracks it"))
		goto out;
	if ((native && !ASSERT_EQ(srv_stderr(&old, "drained: 25 migrated"), 1, "drained")) ||
	    (!native && (!ASSERT_EQ(srv_stderr(&old, "drained (legacy): 25 handed off, 0 refused, "
						     "0 abandoned"),
				    1, "drained (legacy)") ||
			 !ASSERT_EQ(srv_stderr(&new, "handed off by a drain"), 25,
				    "new's accept() took the 25"))) ||
	    !ASSERT_EQ(srv_stderr(&old, "left group"), 1, "left") ||
	    !ASSERT_EQ(srv_exit(&new), 0, "new exits") ||
	    !ASSERT_EQ(group_exists(&x, PORT), false, "group removed"))
		goto out;
	ret = SM_PASS;
out:
	srv_kill(&old);
	srv_kill(&new);
	clients_free(c);
	if (ret != SM_PASS)
		group_cleanup(&x, PORT);
	ctx_cleanup(&x);
	return ret;
}

SM_TEST(preload_shutdown_drains)
{
	return old_goes_away("shutdown");
}

SM_TEST(preload_exit_drains)
{
	return old_goes_away("exit");
}

SM_TEST(preload_exec_inherited_listener_drains)
{
	return old_goes_away("exec");
}

/*
 * No BPF rights (uid 65534): the server works as without the shim, one
 * "inactive" line says why (not one per listener), nothing in bpffs;
 * SOCKMIG_QUIET=1 silences the line.
 */
SM_TEST(preload_unprivileged_fails_open)
{
	static const char *const quiet[] = {"SOCKMIG_QUIET=1", NULL};
	struct srv s = {.pid = -1, .in = -1, .out = -1};
	struct burst *c = NULL;
	struct ctx x;
	char args[32];
	int ret = ctx_setup(&x);

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "%d -n 2 -s", PORT);
	for (int round = 0; round < 2; round++) {
		c = clients_new();
		if (!c || !ASSERT_TRUE(copy_shim(&x), "copy the shim where uid 65534 reads it") ||
		    !ASSERT_TRUE(srv_start(&x, &s, round ? "quiet" : "nobody", true, true,
					   round ? quiet : NULL, args),
				 "start as uid 65534") ||
		    !ASSERT_TRUE(srv_expect(&s, "master", "ready", NULL, 0), "ready") ||
		    !ASSERT_OK(burst_start(c, AF_INET, PORT, 30, false), "clients"))
			goto out;
		burst_serve(c, NULL, 0, NULL, 5000);
		burst_print(c, "unprivileged");
		if (!ASSERT_EQ(c->count[BURST_OK], 30, "served") ||
		    !ASSERT_EQ(netns_groups(&x), 0, "groups in bpffs") ||
		    !ASSERT_EQ(srv_exit(&s), 0, "exit code"))
			goto out;
		if (round == 0 &&
		    (!ASSERT_EQ(srv_stderr(&s, NULL), 1, "lines on stderr") ||
		     !ASSERT_EQ(srv_stderr(&s, "sockmig-preload: inactive: "), 1, "the reason")))
			goto out;
		if (round == 1 && !ASSERT_EQ(srv_stderr(&s, NULL), 0, "lines with SOCKMIG_QUIET=1"))
			goto out;
		srv_kill(&s);
		clients_free(c);
		c = NULL;
	}
	ret = SM_PASS;
out:
	srv_kill(&s);
	clients_free(c);
	ctx_cleanup(&x);
	return ret;
}

/*
 * Servers that never set SO_REUSEPORT: two cannot bind one port, and the
 * shim leaves them alone; with SOCKMIG_REUSEPORT=1 both bind it, both
 * register, and the group's SYNs are shared between them.
 */
SM_TEST(preload_reuseport_env_joins_group)
{
	static const char *const env[] = {"SOCKMIG_REUSEPORT=1", NULL};
	struct srv a = {.pid = -1, .in = -1, .out = -1}, b = a;
	struct sockmig_member_info info[4];
	struct burst *c = clients_new();
	struct ctx x;
	char args[32], line[128];
	int ret = ctx_setup(&x), n;
	uint64_t steered = 0;

	if (ret != SM_PASS) {
		free(c);
		return ret;
	}
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "%d -R -s", PORT);
	/* without it */
	if (!c || !ASSERT_TRUE(srv_start(&x, &a, "a", true, false, NULL, args), "start a") ||
	    !ASSERT_TRUE(srv_expect(&a, "master", "ready", NULL, 0), "a ready") ||
	    !ASSERT_TRUE(srv_start(&x, &b, "b", true, false, NULL, args), "start b") ||
	    !ASSERT_TRUE(srv_expect(&b, "master", "error", line, sizeof(line)), "b fails") ||
	    !ASSERT_TRUE(strstr(line, "Address already in use"), "EADDRINUSE") ||
	    !ASSERT_EQ(srv_wait(&b, 5000), 2, "b's exit code") ||
	    !ASSERT_EQ(netns_groups(&x), 0, "no group without SO_REUSEPORT") ||
	    !ASSERT_EQ(srv_exit(&a), 0, "a exits"))
		goto out;
	srv_kill(&a);
	srv_kill(&b);
	/* with it */
	if (!ASSERT_TRUE(srv_start(&x, &a, "a", true, false, env, args), "start a") ||
	    !ASSERT_TRUE(srv_expect(&a, "master", "ready", NULL, 0), "a ready") ||
	    !ASSERT_TRUE(srv_start(&x, &b, "b", true, false, env, args), "start b") ||
	    !ASSERT_TRUE(srv_expect(&b, "master", "ready", NULL, 0), "b ready"))
		goto out;
	n = group_members(&x, PORT, info, 4);
	if (!ASSERT_EQ(n, 2, "members") ||
	    !ASSERT_TRUE((info[0].pid == (uint32_t)a.pid && info[1].pid == (uint32_t)b.pid) ||
				 (info[0].pid == (uint32_t)b.pid && info[1].pid == (uint32_t)a.pid),
			 "one member per server"))
		goto out;
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT, 40, false), "clients"))
		goto out;
	burst_serve(c, NULL, 0, NULL, 5000);
	burst_print(c, "two servers");
	n = group_members(&x, PORT, info, 4);
	for (int i = 0; i < n && i < 4; i++) {
		printf("member pid %u: steered %llu\n", info[i].pid,
		       (unsigned long long)info[i].counters.steered);
		steered += info[i].counters.steered;
	}
	if (!ASSERT_EQ(c->count[BURST_OK], 40, "served") ||
	    !ASSERT_EQ(steered, 40, "SYNs steered by the policy") ||
	    !ASSERT_EQ(srv_exit(&a), 0, "a exits") || !ASSERT_EQ(srv_exit(&b), 0, "b exits") ||
	    !ASSERT_EQ(group_exists(&x, PORT), false, "group removed"))
		goto out;
	ret = SM_PASS;
out:
	srv_kill(&a);
	srv_kill(&b);
	clients_free(c);
	if (ret != SM_PASS)
		group_cleanup(&x, PORT);
	ctx_cleanup(&x);
	return ret;
}

/* A supervisor's listener on @ip:@port (SO_REUSEPORT, as sockmig run's). */
static int supervisor_listener(const char *ip, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	inet_pton(AF_INET, ip, &a.sin_addr);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1024) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

#define N_HANDOFF 40

/*
 * SOCKMIG_HANDOFF=1 (sockmig run --handoff): the server is handed the
 * supervisor's listener as fd 3 (LISTEN_FDS) but does not know it: it
 * closes every fd above 2 (close(3), closefrom(3)), then binds the port
 * itself. With the shim its bind() gets the supervisor's listener: N
 * clients queue there, its shutdown() and close() of it close nothing, and
 * the next server, started after it exited, serves all N. Without the
 * shim (baseline) each server has a listener of its own beside the
 * supervisor's: the first one's queue dies with it, and what went to the
 * supervisor's is never accepted.
 */
static int handoff_restart(struct ctx *x, bool preload, int port)
{
	static const char *const env[] = {"SOCKMIG_HANDOFF=1", "SOCKMIG_DEBUG=1", NULL};
	struct srv old = {.pid = -1, .in = -1, .out = -1}, new = old;
	struct burst *c = clients_new();
	char args[32], line[128];
	int ret = SM_FAIL, lfd = supervisor_listener("127.0.0.1", port);

	printf("%s the shim:\n", preload ? "with" : "without");
	srv_listen_fd = lfd;
	snprintf(args, sizeof(args), "%d -C", port);
	if (!c || !ASSERT_GT(lfd, -1, "supervisor's listener") ||
	    !ASSERT_TRUE(srv_start(x, &old, "gen1", preload, false, env, args), "start gen 1") ||
	    !ASSERT_TRUE(srv_expect(&old, "master", "ready", NULL, 0), "gen 1 ready") ||
	    !ASSERT_TRUE(clients_connect(c, port, N_HANDOFF), "clients connected"))
		goto out;
	if (preload) {
		if (!ASSERT_EQ(srv_queue(&old, false), N_HANDOFF,
			       "queued on the listener gen 1 sees: the supervisor's") ||
		    !ASSERT_TRUE(srv_cmd(&old, "shutdown"), "shutdown") ||
		    !ASSERT_TRUE(srv_expect(&old, "master", "shutdown", line, sizeof(line)),
				 "shut down") ||
		    !ASSERT_TRUE(strstr(line, "ret=0 errno=kept") != NULL,
				 "shutdown succeeds, errno kept") ||
		    !ASSERT_EQ(srv_queue(&old, false), N_HANDOFF, "still queued after shutdown"))
			goto out;
	} else {
		if (!ASSERT_TRUE(srv_queue(&old, false) < N_HANDOFF,
				 "baseline: gen 1 has a listener of its own"))
			goto out;
		srv_cmd(&old, "shutdown");
	}
	if (!ASSERT_TRUE(srv_cmd(&old, "close"), "close") ||
	    !ASSERT_TRUE(srv_expect(&old, NULL, "closed", NULL, 0), "closed") ||
	    !ASSERT_EQ(srv_exit(&old), 0, "gen 1 exit code"))
		goto out;
	snprintf(args, sizeof(args), "%d -C -s", port);
	if (!ASSERT_TRUE(srv_start(x, &new, "gen2", preload, false, env, args), "start gen 2") ||
	    !ASSERT_TRUE(srv_expect(&new, "master", "ready", NULL, 0), "gen 2 ready"))
		goto out;
	burst_serve(c, NULL, 0, NULL, preload ? 5000 : 1500);
	burst_print(c, preload ? "with the shim" : "without the shim");
	srv_stderr(&old, NULL);
	if (!preload) {
		if (!ASSERT_TRUE(c->count[BURST_OK] < N_HANDOFF,
				 "baseline: not every client served"))
			goto out;
	} else if (!ASSERT_EQ(c->count[BURST_OK], N_HANDOFF, "served by gen 2") ||
		   !ASSERT_EQ(c->count[BURST_RESET], 0, "resets") ||
		   !ASSERT_EQ(srv_stderr(&old, "bind answered with the supervisor's listener"), 1,
			      "gen 1's bind answered") ||
		   !ASSERT_EQ(srv_stderr(&old, "shutdown of the shared listener not made"), 1,
			      "gen 1's shutdown not made") ||
		   !ASSERT_EQ(srv_stderr(&new, "bind answered with the supervisor's listener"), 1,
			      "gen 2's bind answered") ||
		   !ASSERT_EQ(netns_groups(x), 0, "no group: no BPF")) {
		goto out;
	}
	if (!ASSERT_EQ(srv_exit(&new), 0, "gen 2 exit code"))
		goto out;
	ret = SM_PASS;
out:
	srv_listen_fd = -1;
	if (lfd >= 0)
		close(lfd);
	srv_kill(&old);
	srv_kill(&new);
	clients_free(c);
	return ret;
}

SM_TEST(preload_handoff_listener_survives_restarts)
{
	struct ctx x;
	int ret = ctx_setup(&x);

	if (ret != SM_PASS)
		return ret;
	ret = handoff_restart(&x, false, PORT);
	if (ret == SM_PASS)
		ret = handoff_restart(&x, true, PORT + 1);
	ctx_cleanup(&x);
	return ret;
}

/*
 * SOCKMIG_HANDOFF=1 where it cannot act, the server unharmed either way:
 * nothing handed down to this process (a child of the server: not a word);
 * LISTEN_FDS holding no listener (one line says so); a listener handed down
 * for another address (one line names both, and the server binds its own).
 */
SM_TEST(preload_handoff_says_why_not)
{
	static const char *const env[] = {"SOCKMIG_HANDOFF=1", NULL};
	struct srv a = {.pid = -1, .in = -1, .out = -1}, b = a;
	struct burst *c = clients_new();
	struct ctx x;
	char args[32];
	int ret = ctx_setup(&x), lfd = -1;

	if (ret != SM_PASS) {
		free(c);
		return ret;
	}
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "%d -s", PORT);
	if (!c || !ASSERT_TRUE(srv_start(&x, &a, "a", true, false, env, args), "start a") ||
	    !ASSERT_TRUE(srv_expect(&a, "master", "ready", NULL, 0), "a ready") ||
	    !ASSERT_OK(burst_start(c, AF_INET, PORT, 10, false), "clients"))
		goto out;
	burst_serve(c, NULL, 0, NULL, 5000);
	if (!ASSERT_EQ(c->count[BURST_OK], 10, "a serves") ||
	    !ASSERT_EQ(srv_exit(&a), 0, "a exits") ||
	    !ASSERT_EQ(srv_stderr(&a, NULL), 0, "a says nothing"))
		goto out;
	/* a UDP socket as fd 3 */
	lfd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	srv_listen_fd = lfd;
	srv_kill(&a);
	burst_close(c);
	memset(c, 0, sizeof(*c));
	if (!ASSERT_TRUE(srv_start(&x, &a, "a2", true, false, env, args), "start a2") ||
	    !ASSERT_TRUE(srv_expect(&a, "master", "ready", NULL, 0), "a2 ready") ||
	    !ASSERT_OK(burst_start(c, AF_INET, PORT, 10, false), "clients"))
		goto out;
	burst_serve(c, NULL, 0, NULL, 5000);
	if (!ASSERT_EQ(c->count[BURST_OK], 10, "a2 serves") ||
	    !ASSERT_EQ(srv_exit(&a), 0, "a2 exits") ||
	    !ASSERT_EQ(srv_stderr(&a, "inactive: SOCKMIG_HANDOFF is set but LISTEN_FDS=1 holds "
				      "no listening TCP socket"),
		       1, "a2 says why"))
		goto out;
	close(lfd);
	lfd = supervisor_listener("127.0.0.2", PORT + 1);
	srv_listen_fd = lfd;
	snprintf(args, sizeof(args), "%d -s", PORT + 1);
	if (!ASSERT_GT(lfd, -1, "listener on 127.0.0.2") ||
	    !ASSERT_TRUE(srv_start(&x, &b, "b", true, false, env, args), "start b") ||
	    !ASSERT_TRUE(srv_expect(&b, "master", "ready", NULL, 0), "b ready"))
		goto out;
	burst_close(c);
	memset(c, 0, sizeof(*c));
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT + 1, 10, false), "clients"))
		goto out;
	burst_serve(c, NULL, 0, NULL, 5000);
	if (!ASSERT_EQ(c->count[BURST_OK], 10, "b serves on its own listener") ||
	    !ASSERT_EQ(srv_exit(&b), 0, "b exits") ||
	    !ASSERT_EQ(srv_stderr(&b, "bind to 127.0.0.1 port 33001 is not the supervisor's "
				      "listener (127.0.0.2): not handed off (give sockmig run "
				      "--addr 127.0.0.1)"),
		       1, "b says why, once"))
		goto out;
	ret = SM_PASS;
out:
	srv_listen_fd = -1;
	if (lfd >= 0)
		close(lfd);
	srv_kill(&a);
	srv_kill(&b);
	clients_free(c);
	ctx_cleanup(&x);
	return ret;
}

/* SOCKMIG_DISABLE=1: no registration (no group), no SO_REUSEPORT either,
 * not a word on stderr even with SOCKMIG_DEBUG=1. */
SM_TEST(preload_disable_env)
{
	static const char *const env[] = {"SOCKMIG_DISABLE=1", "SOCKMIG_DEBUG=1",
					  "SOCKMIG_REUSEPORT=1", NULL};
	struct srv a = {.pid = -1, .in = -1, .out = -1}, b = a;
	struct burst *c = clients_new();
	struct ctx x;
	char args[32], line[128];
	int ret = ctx_setup(&x);

	if (ret != SM_PASS) {
		free(c);
		return ret;
	}
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "%d -s", PORT);
	if (!c || !ASSERT_TRUE(srv_start(&x, &a, "a", true, false, env, args), "start a") ||
	    !ASSERT_TRUE(srv_expect(&a, "master", "ready", NULL, 0), "a ready") ||
	    !ASSERT_EQ(netns_groups(&x), 0, "groups"))
		goto out;
	snprintf(args, sizeof(args), "%d -R -s", PORT);
	if (!ASSERT_TRUE(srv_start(&x, &b, "b", true, false, env, args), "start b") ||
	    !ASSERT_TRUE(srv_expect(&b, "master", "error", line, sizeof(line)), "b fails") ||
	    !ASSERT_TRUE(strstr(line, "Address already in use"), "SO_REUSEPORT not set for b") ||
	    !ASSERT_EQ(srv_wait(&b, 5000), 2, "b's exit code"))
		goto out;
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT, 20, false), "clients"))
		goto out;
	burst_serve(c, NULL, 0, NULL, 5000);
	burst_print(c, "disabled");
	if (!ASSERT_EQ(c->count[BURST_OK], 20, "served") ||
	    !ASSERT_EQ(netns_groups(&x), 0, "groups") || !ASSERT_EQ(srv_exit(&a), 0, "a exits") ||
	    !ASSERT_EQ(srv_stderr(&a, NULL), 0, "lines on a's stderr") ||
	    !ASSERT_EQ(srv_stderr(&b, "sockmig"), 0, "b's stderr"))
		goto out;
	ret = SM_PASS;
out:
	srv_kill(&a);
	srv_kill(&b);
	clients_free(c);
	ctx_cleanup(&x);
	return ret;
}

/* The shim's dynamic symbol table defines the interposers and nothing
 * else: libsockmig inside it must not leak into the server. */
SM_TEST(preload_exports_only_interposers)
{
	static const char *const want[] = {
		"accept", "accept4", "bind",  "close",	 "close_range", "closefrom", "dup",
		"dup2",	  "dup3",    "fcntl", "fcntl64", "fork",	"listen",    "shutdown"};
	const size_t nwant = sizeof(want) / sizeof(want[0]);
	char shim[PATH_MAX];
	bool seen[sizeof(want) / sizeof(want[0])] = {false};
	int fd, ret = SM_FAIL, extra = 0;
	Elf_Scn *scn = NULL;
	Elf *e = NULL;

	if (!find_shim(shim))
		return SKIP("no libsockmig-preload.so of the normal build next to the runner");
	fd = open(shim, O_RDONLY | O_CLOEXEC);
	if (!ASSERT_OK(fd, "open the shim") ||
	    !ASSERT_TRUE(elf_version(EV_CURRENT) != EV_NONE, "libelf") ||
	    !ASSERT_TRUE(e = elf_begin(fd, ELF_C_READ, NULL), "ELF"))
		goto out;
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *data;
		GElf_Sym sym;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM ||
		    !(data = elf_getdata(scn, NULL)))
			continue;
		for (size_t i = 0; sh.sh_entsize && i < sh.sh_size / sh.sh_entsize; i++) {
			const char *name;
			bool known = false;

			if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF ||
			    GELF_ST_BIND(sym.st_info) == STB_LOCAL)
				continue;
			name = elf_strptr(e, sh.sh_link, sym.st_name);
			if (!name || !*name)
				continue;
			for (size_t k = 0; k < nwant; k++)
				if (strcmp(name, want[k]) == 0)
					known = seen[k] = true;
			if (!known) {
				printf("exported but not an interposer: %s\n", name);
				extra++;
			}
		}
	}
	for (size_t k = 0; k < nwant; k++)
		if (!ASSERT_TRUE(seen[k], want[k]))
			goto out;
	if (!ASSERT_EQ(extra, 0,
		       "other exported symbols (link with "
		       "-Wl,--version-script=preload/preload.map)"))
		goto out;
	ret = SM_PASS;
out:
	if (e)
		elf_end(e);
	if (fd >= 0)
		close(fd);
	return ret;
}
