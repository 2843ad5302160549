// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The runner's own check: a group that a case leaves pinned is found and named. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define PORT TU_BURST_PORT

/*
 * Run only by runner_left_clean_exact (through SOCKMIG_TEST_LEAK_FIXTURE):
 * leaves a group pinned and its namespace alive, held by a process that
 * escaped the case's process group; its pid goes to the file named there.
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

	if (!ASSERT_OK(fd, "mkstemp") || !ASSERT_OK(pipe2(p, O_CLOEXEC), "pipe"))
		return SM_FAIL;
	close(fd);
	pid = fork();
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		dup2(p[1], STDERR_FILENO);
		setenv("SOCKMIG_TEST_LEAK_FIXTURE", pidfile, 1);
		execl("/proc/self/exe", "test_sockmig", "-t", "10", "runner_leak_fixture",
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
	if (f && fscanf(f, "%d", &leaker) == 1 && leaker > 0)
		kill(leaker, SIGKILL);
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
