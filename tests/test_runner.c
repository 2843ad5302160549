// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The runner's own checks: a group that a case leaves pinned is found and
 * named; a daemon that a case leaves, however the case ends, is killed. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "proc.h"
#include "sockmig.h"
#include "util.h"

#define PORT TU_BURST_PORT

/*
 * Run only by runner_left_clean_exact (through SOCKMIG_TEST_LEAK_FIXTURE):
 * leaves a group pinned and its namespace alive, held by a process that
 * escaped the case's process group (and the sweep: the run is -K); its
 * pid goes to the file named there.
 */
SM_TEST(runner_leak_fixture)
{
	const char *pidfile = getenv("SOCKMIG_TEST_LEAK_FIXTURE");
	struct sockmig_group *g;
	pid_t pid;
	FILE *f;
	int a;

	if (!pidfile)
		return SKIP("runs only under runner_left_clean_exact");
	a = burst_listener(AF_INET, PORT, 16, 0);
	g = sockmig_group_open(a, NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add(g, a, SOCKMIG_ROLE_ACTIVE, 1, 1), "register"))
		return SM_FAIL;
	pid = fork();
	if (pid == 0) {
		setsid();
		sleep(10); /* bounded: the parent case kills it first */
		_exit(0);
	}
	f = fopen(pidfile, "w");
	if (!f) {
		printf("cannot write %s: %s\n", pidfile, strerror(errno));
		return SM_FAIL;
	}
	fprintf(f, "%d\n", (int)pid);
	fclose(f);
	return SM_PASS;
}

/*
 * The runner's bpffs_left_clean check: a group left by a case must be
 * found even while the case's namespace is still alive.
 */
SM_TEST(runner_left_clean_exact)
{
	char pidfile[] = "/tmp/sockmig-leak-XXXXXX", out[8192];
	int fd = mkstemp(pidfile), p[2], status = -1, ret = SM_FAIL, leaker = 0;
	ssize_t n, len = 0;
	pid_t pid;
	FILE *f;

	/* the escaped process comes to us when the fixture's case ends */
	if (!ASSERT_OK(fd, "mkstemp") || !ASSERT_OK(pipe2(p, O_CLOEXEC), "pipe") ||
	    !ASSERT_OK(prctl(PR_SET_CHILD_SUBREAPER, 1), "subreaper"))
		return SM_FAIL;
	close(fd);
	pid = fork();
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		dup2(p[1], STDERR_FILENO);
		setenv("SOCKMIG_TEST_LEAK_FIXTURE", pidfile, 1);
		execl("/proc/self/exe", "test_sockmig", "-K", "-t", "10", "runner_leak_fixture",
		      (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	while (len < (ssize_t)sizeof(out) - 1 &&
	       (n = read(p[0], out + len, sizeof(out) - 1 - (size_t)len)) > 0)
		len += n;
	out[len] = '\0';
	close(p[0]);
	waitpid(pid, &status, 0);
	f = fopen(pidfile, "r");
	/* still our unreaped child: its pid is its own */
	if (f && fscanf(f, "%d", &leaker) == 1 && leaker > 0 &&
	    waitpid(leaker, NULL, WNOHANG) == 0) {
		kill(leaker, SIGKILL);
		waitpid(leaker, NULL, 0);
	}
	if (f)
		fclose(f);
	unlink(pidfile);
	printf("%s", out);
	if (!ASSERT_TRUE(leaker > 0, "the fixture left a process") ||
	    !ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1, "the run failed") ||
	    !ASSERT_TRUE(strstr(out, "FAIL bpffs_left_clean"), "bpffs_left_clean failed") ||
	    !ASSERT_TRUE(strstr(out, "by runner_leak_fixture"), "names the case"))
		goto out;
	ret = SM_PASS;
out:
	return ret;
}

/*
 * Run only by runner_reaps_what_a_case_left (through
 * SOCKMIG_TEST_REAP_FIXTURE="MODE WFD RFD"): starts a daemon the way
 * nginx and dnsmasq do (fork, setsid, fork, the middle one exits), in a
 * session and process group of its own, writes its pid to fd WFD, waits
 * for a byte on fd RFD, then ends by MODE: "abort", "hang" (until the
 * runner's time limit) or "pass".
 */
SM_TEST(runner_reap_fixture)
{
	const char *env = getenv("SOCKMIG_TEST_REAP_FIXTURE");
	struct rlimit nocore = {0, 0};
	char mode[16];
	int wfd, rfd, st;
	pid_t mid, daemon;
	char go;

	if (!env || sscanf(env, "%15s %d %d", mode, &wfd, &rfd) != 3)
		return SKIP("runs only under runner_reaps_what_a_case_left");
	mid = fork();
	if (mid == 0) {
		setsid();
		daemon = fork();
		if (daemon == 0) {
			pid_t self = getpid();

			if (write(wfd, &self, sizeof(self)) != sizeof(self))
				_exit(1);
			close(wfd);
			close(rfd);
			for (int i = 0; i < 600; i++)
				sleep(1); /* bounded, should every sweep miss it */
			_exit(0);
		}
		_exit(daemon > 0 ? 0 : 1);
	}
	if (!ASSERT_TRUE(mid > 0 && waitpid(mid, &st, 0) == mid && WIFEXITED(st) &&
				 WEXITSTATUS(st) == 0,
			 "the daemon started"))
		return SM_FAIL;
	/* the parent has read the pid and holds a pidfd of the daemon */
	if (!ASSERT_EQ(read(rfd, &go, 1), 1, "go"))
		return SM_FAIL;
	printf("daemon started, ending by %s\n", mode);
	if (strcmp(mode, "abort") == 0) {
		setrlimit(RLIMIT_CORE, &nocore);
		abort();
	}
	if (strcmp(mode, "hang") == 0)
		for (;;)
			pause();
	return SM_PASS;
}

/*
 * A case that leaves a double-forked daemon in a process group of its own
 * (what an assertion's abort, a sanitizer's abort, a crash or the time
 * limit did to dnsmasq once): the runner kills it when the case ends, and
 * says so. The daemon's pidfd tells, exactly, whether it still runs after
 * the sub-runner has exited. Baseline: -K, the runner that only kills the
 * case's own process group, leaves it running.
 */
static const struct {
	const char *mode, *opt; /* how the case ends, the sub-runner's option */
	bool survives;
	int code;	  /* the sub-runner's exit status */
	const char *says; /* in its output */
} reap_rows[] = {
	{"abort", "-t10", false, 1, "runner: the case left 1 process running: killed"},
	{"hang", "-t1", false, 1, "runner: the case left 1 process running: killed"},
	{"pass", "-t10", false, 0, "(left 1 process running: killed)"},
	{"abort", "-K", true, 1, "(killed by signal 6)"},
};

/* One row: the daemon still running after the sub-runner (1), gone (0),
 * or -1 when the run itself went wrong; its output into @out. */
static int reap_row(int r, char *out, size_t size)
{
	int pp[2], gp[2], op[2], pidfd = -1, status = -1, alive = -1;
	struct pollfd pf = {.events = POLLIN};
	pid_t sub, daemon = 0;
	char env[64];
	ssize_t n, len = 0;

	out[0] = '\0';
	if (pipe(pp) < 0 || pipe(gp) < 0 || pipe2(op, O_CLOEXEC) < 0)
		return -1;
	snprintf(env, sizeof(env), "%s %d %d", reap_rows[r].mode, pp[1], gp[0]);
	sub = fork();
	if (sub == 0) {
		close(pp[0]);
		close(gp[1]);
		dup2(op[1], STDOUT_FILENO);
		dup2(op[1], STDERR_FILENO);
		setenv("SOCKMIG_TEST_REAP_FIXTURE", env, 1);
		execl("/proc/self/exe", "test_sockmig", reap_rows[r].opt, "runner_reap_fixture",
		      (char *)NULL);
		_exit(127);
	}
	close(pp[1]);
	close(gp[0]);
	close(op[1]);
	/* the daemon waits for nothing: alive, its pid is its own */
	if (read(pp[0], &daemon, sizeof(daemon)) == sizeof(daemon) && daemon > 0)
		pidfd = (int)syscall(SYS_pidfd_open, daemon, 0);
	if (pidfd >= 0 && write(gp[1], "g", 1) != 1)
		printf("cannot tell the case to go on\n");
	while (len < (ssize_t)size - 1 && (n = read(op[0], out + len, size - 1 - (size_t)len)) > 0)
		len += n;
	out[len] = '\0';
	waitpid(sub, &status, 0);
	close(pp[0]);
	close(gp[1]);
	close(op[0]);
	printf("-- %s %s: daemon %d, run status %d\n%s", reap_rows[r].mode, reap_rows[r].opt,
	       (int)daemon, WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
	if (!ASSERT_GT(daemon, 0, "the daemon's pid from the case") ||
	    !ASSERT_OK(pidfd, "pidfd_open of the daemon") ||
	    !ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == reap_rows[r].code,
			 "the run's exit status")) {
		if (pidfd >= 0)
			close(pidfd);
		return -1;
	}
	pf.fd = pidfd;
	alive = poll(&pf, 1, 0) == 0;
	if (alive) {
		/* ours now (we are a subreaper): kill it and reap it */
		syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		poll(&pf, 1, 5000);
		waitpid(daemon, NULL, 0);
	}
	close(pidfd);
	return alive;
}

SM_TEST(runner_reaps_what_a_case_left)
{
	char out[8192];
	int ret = SM_PASS;

	/* what the baseline leaves comes to us, not to init */
	if (!ASSERT_OK(prctl(PR_SET_CHILD_SUBREAPER, 1), "subreaper"))
		return SM_FAIL;
	/* every row, so that a failure shows them all */
	for (int r = 0; r < (int)(sizeof(reap_rows) / sizeof(reap_rows[0])); r++) {
		int alive = reap_row(r, out, sizeof(out));

		if (!ASSERT_EQ(alive, reap_rows[r].survives, "the daemon still runs") ||
		    !ASSERT_TRUE(strstr(out, reap_rows[r].says), reap_rows[r].says))
			ret = SM_FAIL;
	}
	return ret;
}

/*
 * Each case's namespace keeps its ephemeral ports above the test ports
 * (10000 to 40999): else a client's connect() to a test port nobody
 * listens on at that instant may be given that very port and connect to
 * itself, and the server's bind() then fails (one CI run lost haproxy
 * so). Shown here with a range of one port, then the case's own range.
 */
SM_TEST(runner_ephemeral_ports_above_test_ports)
{
	struct sockaddr_storage ss;
	socklen_t len = burst_addr(AF_INET, 33000, &ss);
	unsigned int lo = 0, hi = 0;
	int fd, l, one = 1, got = 0;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
	bool selfconn;

	if (f) {
		got = fscanf(f, "%u %u", &lo, &hi);
		fclose(f);
	}
	if (!ASSERT_EQ(got, 2, "read the port range"))
		return SM_FAIL;
	if (!ASSERT_GT(lo, 40999, "first ephemeral port above the test ports"))
		return SM_FAIL;
	/* the cause, with the kernel's default range narrowed to the port */
	if (!ASSERT_OK(burst_sysctl("net/ipv4/ip_local_port_range", "33000 33000"), "narrow"))
		return SM_FAIL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	selfconn = fd >= 0 && connect(fd, (struct sockaddr *)&ss, len) == 0;
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (!ASSERT_TRUE(selfconn, "a connect() to a free port in the range meets itself") ||
	    !ASSERT_TRUE(bind(l, (struct sockaddr *)&ss, len) < 0 && errno == EADDRINUSE,
			 "and the server's bind() then fails"))
		return SM_FAIL;
	close(fd);
	close(l);
	return SM_PASS;
}
