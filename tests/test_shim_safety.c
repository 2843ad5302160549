// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libsockmig-preload.so inside servers that do unusual but legal things:
 * close a listener in a signal handler, become a daemon with daemon(3),
 * run setuid, close or replace the shim's private fds, meet a stopped
 * process that holds a group's lock, close two listeners at once while a
 * legacy drain waits. Each case drives one small program
 * (tests/servers/shim_prog.c, built by make, one mode per case) and has its baseline: the shim
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
 *   handfork P      "worker parent", and the parent forks the moment its
 *                   shim holds the listener the child handed over
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
#include "preload.h"
#include "sockmig.h"
#include "util.h"

#define PORT 34000

/* ---- the program, run ------------------------------------------------------- */

static void ctx_cleanup(struct pl_ctx *x)
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

/* The shim, a temp dir, the program copied there as x->server. */
static int ctx_setup(struct pl_ctx *x)
{
	struct stat st;

	memset(x, 0, sizeof(*x));
	signal(SIGPIPE, SIG_IGN);
	if (!tp_find_shim(x->shim))
		return SKIP("no libsockmig-preload.so of the normal build next to the runner");
	if (stat("/proc/self/ns/net", &st) < 0)
		return SM_FAIL;
	x->netns = st.st_ino;
	snprintf(x->dir, sizeof(x->dir), "/tmp/sockmig-shimsafe-XXXXXX");
	if (!mkdtemp(x->dir) || chmod(x->dir, 0755) < 0) {
		x->dir[0] = '\0';
		return SM_FAIL;
	}
	snprintf(x->server, sizeof(x->server), "%s/prog", x->dir);
	if (!tp_server_copy("shim_prog", x->server)) {
		ctx_cleanup(x);
		return SM_FAIL;
	}
	return SM_PASS;
}

/* Run @path with @args, the shim preloaded when @preload: tp_proc_start(). */
static bool proc_start(struct pl_ctx *x, struct tp_proc *p, const char *name, const char *path,
		       bool preload, bool nobody, const char *const *env, int fd3, const char *args)
{
	return tp_proc_start(p, x->dir, name, path, preload ? x->shim : NULL, nobody, env, fd3,
			     args);
}

/* Wait up to @ms for a line starting with @word; copy it to @line. */
static bool proc_expect(struct tp_proc *p, const char *word, char *line, size_t len, int ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)ms;
	char got[sizeof(p->buf)];

	while (tp_proc_line(p, got, sizeof(got), end)) {
		printf("  | %s\n", got);
		if (strncmp(got, word, strlen(word)) == 0) {
			if (line)
				snprintf(line, len, "%s", got);
			return true;
		}
	}
	printf("  no '%s' line within %d ms\n", word, ms);
	return false;
}

/* Exit code within 5 s, or -1 (then killed). */
static int proc_wait(struct tp_proc *p)
{
	unsigned long long end = burst_now_ms() + 5000;
	int status = 0;
	pid_t r;

	while ((r = waitpid(p->pid, &status, WNOHANG)) == 0 && burst_now_ms() < end)
		burst_sleep_ms(5);
	if (r != p->pid) {
		tp_proc_kill(p);
		return -1;
	}
	p->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- groups ---------------------------------------------------------------- */

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
	struct tp_proc p = {.pid = 0, .in = -1, .out = -1};
	char args[64], line[128];
	struct pl_ctx x;
	int ret = ctx_setup(&x), n = -1;

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "%s %d %d", mode, PORT, N_SIGNAL);
	if (!ASSERT_TRUE(proc_start(&x, &p, "signal", x.server, true, false, env, -1, args),
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
	tp_proc_stderr(&p, NULL);
	if (!ASSERT_EQ(tp_proc_stderr(&p, "closed, last reference"), N_SIGNAL,
		       "each close decided by the helper: the last reference") ||
	    !ASSERT_EQ(tp_proc_stderr(&p, "left group"), N_SIGNAL, "and out of its group"))
		goto out;
	for (int i = 0; i < N_SIGNAL; i++)
		if (!ASSERT_EQ(pl_group_exists(&x, PORT + i), false, "no group left"))
			goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&p);
	if (ret != SM_PASS) {
		tp_proc_stderr(&p, NULL);
		for (int i = 0; i < N_SIGNAL; i++)
			pl_group_cleanup(&x, PORT + i);
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
	struct tp_proc p = {.pid = 0, .in = -1, .out = -1};
	char args[64], line[128];
	struct pl_ctx x;
	int ret = ctx_setup(&x), dpid = -1;

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "daemon %d", PORT);
	if (!ASSERT_TRUE(proc_start(&x, &p, "daemon", x.server, true, false, env, -1, args),
			 "start") ||
	    !ASSERT_TRUE(proc_expect(&p, "ready", NULL, 0, 5000), "listening") ||
	    !ASSERT_TRUE(pl_group_exists(&x, PORT), "registered at listen()") ||
	    !ASSERT_TRUE(proc_expect(&p, "daemon", line, sizeof(line), 5000), "daemon"))
		goto out;
	sscanf(line, "daemon %d", &dpid);
	if (!ASSERT_TRUE(proc_expect(&p, "bye", NULL, 0, 5000), "closed in the daemon"))
		goto out;
	burst_sleep_ms(50); /* its exit */
	tp_proc_stderr(&p, NULL);
	if (!ASSERT_EQ(tp_proc_stderr(&p, "closed, last reference"), 1,
		       "the daemon decided at its close: the last reference") ||
	    !ASSERT_EQ(tp_proc_stderr(&p, "left group"), 1, "and left the group") ||
	    !ASSERT_EQ(pl_group_exists(&x, PORT), false, "no group left"))
		goto out;
	ret = SM_PASS;
out:
	if (dpid > 0 && ret != SM_PASS)
		kill(dpid, SIGKILL);
	tp_proc_kill(&p);
	if (ret != SM_PASS)
		pl_group_cleanup(&x, PORT);
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
	struct tp_proc p = {.pid = 0, .in = -1, .out = -1};
	bool parent_first = !strcmp(first, "parent");
	char args[64];
	struct pl_ctx x;
	int ret = ctx_setup(&x);

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "worker %d %s", PORT, first);
	if (!ASSERT_TRUE(proc_start(&x, &p, "worker", x.server, true, false, env, -1, args),
			 "start") ||
	    !ASSERT_TRUE(proc_expect(&p, "child closed", NULL, 0, 5000), "the child closed") ||
	    (!parent_first &&
	     !ASSERT_TRUE(proc_expect(&p, "listening 1", NULL, 0, 5000), "still listening")) ||
	    !ASSERT_TRUE(proc_expect(&p, "done", NULL, 0, 5000), "done") ||
	    !ASSERT_EQ(proc_wait(&p), 0, "exit code"))
		goto out;
	tp_proc_stderr(&p, NULL);
	if (!ASSERT_EQ(tp_proc_stderr(&p, "handed to process"), 1,
		       "the child handed its close to the parent") ||
	    !ASSERT_EQ(tp_proc_stderr(&p, "closed, last reference"), 1, "one last reference") ||
	    !ASSERT_EQ(tp_proc_stderr(&p, "not the last reference"), 1,
		       "one close that was not the last") ||
	    !ASSERT_EQ(pl_group_exists(&x, PORT), false, "no group left"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		tp_proc_stderr(&p, NULL);
	tp_proc_kill(&p);
	if (ret != SM_PASS)
		pl_group_cleanup(&x, PORT);
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
 * The same hand-over, and the parent forks the moment its shim received the
 * child's listener (a master that reloads again while its old workers hand
 * their listeners over). The copy the shim decides on is in the fd table
 * that fork() copies: the branch before this left it in the new child,
 * whose holding made the shim's decision "not the last reference" (no
 * drain; the child's copy closed later, its queue reset). Now fork() waits
 * for the decision: the child holds no copy, the close is the last
 * reference, drained, and the group goes.
 */
SM_TEST(shim_fork_during_handover)
{
	static const char *const env[] = {"SOCKMIG_DEBUG=1", "SOCKMIG_MODE=legacy", NULL};
	struct tp_proc p = {.pid = 0, .in = -1, .out = -1};
	unsigned long long end;
	char args[64], line[256];
	int copy = -1, made = 0, done = 0;
	struct pl_ctx x;
	int ret = ctx_setup(&x);

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "handfork %d", PORT);
	if (!ASSERT_TRUE(proc_start(&x, &p, "handfork", x.server, true, false, env, -1, args),
			 "start"))
		goto out;
	/* the lines of the three processes come in any order */
	end = burst_now_ms() + 8000;
	while (!done && tp_proc_line(&p, line, sizeof(line), end)) {
		printf("  | %s\n", line);
		made |= !strcmp(line, "fork made");
		if (!strncmp(line, "copy ", 5))
			copy = atoi(line + 5);
		done = !strcmp(line, "done");
	}
	if (!ASSERT_TRUE(done, "done") || !ASSERT_EQ(proc_wait(&p), 0, "exit code") ||
	    !ASSERT_TRUE(made, "forked while the shim held the listener"))
		goto out;
	tp_proc_stderr(&p, NULL);
	if (!ASSERT_EQ(copy, 0, "the forked child holds no copy of the listener") ||
	    !ASSERT_EQ(tp_proc_stderr(&p, "handed to process"), 1,
		       "the child handed its close to the parent") ||
	    !ASSERT_EQ(tp_proc_stderr(&p, "closed, last reference"), 1, "one last reference") ||
	    !ASSERT_EQ(tp_proc_stderr(&p, "not the last reference"), 1,
		       "one close that was not the last (the parent's own)") ||
	    !ASSERT_EQ(pl_group_exists(&x, PORT), false, "no group left"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		tp_proc_stderr(&p, NULL);
	tp_proc_kill(&p);
	if (ret != SM_PASS)
		pl_group_cleanup(&x, PORT);
	ctx_cleanup(&x);
	return ret;
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
	struct tp_proc p = {.pid = 0, .in = -1, .out = -1};
	char args[PATH_MAX + 64], suid[160];
	struct pl_ctx x;
	int ret = ctx_setup(&x), src, dst;
	ssize_t n;
	char buf[65536];

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	/* a setuid-root copy of the program */
	snprintf(suid, sizeof(suid), "%s/prog-suid", x.dir);
	src = open(x.server, O_RDONLY | O_CLOEXEC);
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
	if (!ASSERT_EQ(pl_group_exists(&x, PORT), false, "no group made for the caller") ||
	    !ASSERT_TRUE(write(p.in, "go\n", 3) == 3, "go") ||
	    !ASSERT_TRUE(proc_expect(&p, "bye", NULL, 0, 5000), "closed") ||
	    !ASSERT_EQ(proc_wait(&p), 0, "exit code"))
		goto out;
	tp_proc_stderr(&p, NULL);
	if (!ASSERT_EQ(tp_proc_stderr(&p, "sockmig"), 0, "no line from the shim"))
		goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&p);
	if (ret != SM_PASS)
		pl_group_cleanup(&x, PORT);
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
	struct tp_proc p = {.pid = 0, .in = -1, .out = -1};
	struct burst *c = calloc(1, sizeof(*c));
	char args[64];
	struct pl_ctx x;
	int ret = ctx_setup(&x), l = -1;

	if (ret != SM_PASS) {
		free(c);
		return ret;
	}
	ret = SM_FAIL;
	l = burst_listener(AF_INET, PORT, 128, 0);
	snprintf(args, sizeof(args), "%s %d", mode, PORT);
	if (!c || !ASSERT_OK(l, "supervisor's listener") ||
	    !ASSERT_TRUE(proc_start(&x, &p, mode, x.server, true, false, env, l, args), "start") ||
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
		tp_proc_stderr(&p, NULL);
	tp_proc_kill(&p);
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
	struct tp_proc p = {.pid = 0, .in = -1, .out = -1};
	char name[SOCKMIG_NAME_MAX], path[PATH_MAX], args[64], line[128];
	struct sockmig_group *g = NULL;
	struct pl_ctx x;
	int ret = ctx_setup(&x), h = -1, status;
	pid_t locker = -1;

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	h = holder_start(PORT, false, &g);
	if (!ASSERT_OK(h, "group made by a holder"))
		goto out;
	pl_group_name(&x, PORT, name);
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
	if (!ASSERT_TRUE(proc_start(&x, &p, "lock", x.server, true, false, NULL, -1, args),
			 "start") ||
	    !ASSERT_TRUE(proc_expect(&p, "listened", line, sizeof(line), 5000),
			 "listen() returned") ||
	    !ASSERT_LE(field_ms(line), 2000, "listen() ms") ||
	    !ASSERT_TRUE(proc_expect(&p, "closed", line, sizeof(line), 5000), "close() returned") ||
	    !ASSERT_LE(field_ms(line), 2000, "close() ms") ||
	    !ASSERT_EQ(proc_wait(&p), 0, "exit code"))
		goto out;
	tp_proc_stderr(&p, NULL);
	if (!ASSERT_EQ(tp_proc_stderr(&p, "calls go on without sockmig"), 1, "said once") ||
	    !ASSERT_EQ(tp_proc_stderr(&p, "sockmig"), 1, "and nothing else"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		tp_proc_stderr(&p, NULL);
	tp_proc_kill(&p);
	if (locker > 0) {
		kill(locker, SIGKILL);
		waitpid(locker, NULL, 0);
	}
	holder_stop(g, h);
	pl_group_cleanup(&x, PORT);
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
	struct tp_proc p = {.pid = 0, .in = -1, .out = -1};
	struct burst *c = calloc(1, sizeof(*c));
	struct ackdrop_bpf *ad = NULL;
	struct sockmig_group *g = NULL;
	char args[64], line[128];
	struct pl_ctx x;
	int ret = ctx_setup(&x), h = -1;

	if (ret != SM_PASS) {
		free(c);
		return ret;
	}
	ret = SM_FAIL;
	h = holder_start(PORT, true, &g);
	snprintf(args, sizeof(args), "two %d %d", PORT, PORT + 1);
	if (!c || !ASSERT_OK(h, "holder") ||
	    !ASSERT_TRUE(proc_start(&x, &p, "two", x.server, true, false, env, -1, args),
			 "start") ||
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
	tp_proc_stderr(&p, NULL);
	if (!ASSERT_EQ(tp_proc_stderr(&p, "1 abandoned"), 1, "A's drain ended at its bound"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		tp_proc_stderr(&p, NULL);
	tp_proc_kill(&p);
	if (ad)
		tu_ackdrop_detach(ad);
	if (c) {
		burst_close(c);
		free(c);
	}
	holder_stop(g, h);
	pl_group_cleanup(&x, PORT);
	pl_group_cleanup(&x, PORT + 1);
	ctx_cleanup(&x);
	return ret;
}
