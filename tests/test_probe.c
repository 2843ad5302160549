// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The probe answers in bounded time whatever the kernel does. Its
 * migration step once ended in a blocking accept() on the sibling
 * listener: on a kernel where nothing migrates (Debian 11's 5.10, whose
 * tcp_migrate_req file does nothing), it waited forever. With the sysctl
 * at 0 this kernel behaves the same way for that step, so the step is run
 * here with nothing to migrate, from a thread, against a clock.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include "burst.h"
#include "harness.h"
#include "sockmig.h"

#define STEP_PORT     40411
#define STEP_LIMIT_MS 3000

struct step {
	int port;
	int pipe[2];
};

static void *step_thread(void *arg)
{
	struct step *s = arg;
	int res = sockmig_probe_migrate_sysctl(s->port);

	if (write(s->pipe[1], &res, sizeof(res)) != sizeof(res))
		return NULL;
	return NULL;
}

static int set_migrate_req(const char *val)
{
	int fd = open("/proc/sys/net/ipv4/tcp_migrate_req", O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, 1);
	close(fd);
	return n == 1 ? 0 : -errno;
}

/* Run the step in a thread; the answer, or -2 when it did not come in
 * STEP_LIMIT_MS (the thread is left behind; the case process ends). */
static int timed_step(int port, unsigned long long *ms)
{
	struct step s = {.port = port};
	struct pollfd p = {.events = POLLIN};
	unsigned long long t0 = burst_now_ns();
	pthread_t th;
	int res = -2;

	if (pipe2(s.pipe, O_CLOEXEC) < 0 || pthread_create(&th, NULL, step_thread, &s) != 0)
		return -3;
	p.fd = s.pipe[0];
	if (poll(&p, 1, STEP_LIMIT_MS) == 1 && read(s.pipe[0], &res, sizeof(res)) == sizeof(res))
		pthread_join(th, NULL);
	else
		pthread_detach(th);
	*ms = (burst_now_ns() - t0) / 1000000;
	return res;
}

SM_TEST(probe_migration_step_never_blocks)
{
	unsigned long long ms;
	int res;

	if (access("/proc/sys/net/ipv4/tcp_migrate_req", F_OK) == 0 &&
	    !ASSERT_OK(set_migrate_req("0"), "tcp_migrate_req=0"))
		return SM_FAIL;
	res = timed_step(STEP_PORT, &ms);
	printf("nothing to migrate: answer %d after %llu ms\n", res, ms);
	if (!ASSERT_TRUE(res != -2, "the step answered (it did not block)") ||
	    !ASSERT_EQ(res, SOCKMIG_NO, "nothing moved, and the step says no"))
		return SM_FAIL;
	return SM_PASS;
}

SM_TEST(probe_migration_step_sees_migration)
{
	unsigned long long ms;
	int res;

	if (set_migrate_req("1") < 0)
		return SKIP("no net.ipv4.tcp_migrate_req on this kernel");
	res = timed_step(STEP_PORT + 1, &ms);
	printf("sysctl on: answer %d after %llu ms\n", res, ms);
	if (!ASSERT_TRUE(res != -2, "the step answered"))
		return SM_FAIL;
	/* 5.10.y has the file and no migration: only a kernel that migrates
	 * (the probe says so by itself) must find the child on B. */
	if (res == SOCKMIG_NO)
		return SKIP("the sysctl file is here but nothing migrated (5.10.y's knob only)");
	return ASSERT_EQ(res, SOCKMIG_YES, "the child moved to B") ? SM_PASS : SM_FAIL;
}

/* The step through the public header, on input it cannot use: the answer
 * is "unknown" (the kernel was not asked), never a guess. */
SM_TEST(probe_migration_step_unknown_without_a_port)
{
	int taken;

	if (!ASSERT_EQ(sockmig_probe_migrate_sysctl(0), SOCKMIG_UNKNOWN, "port 0") ||
	    !ASSERT_EQ(errno, EINVAL, "errno") ||
	    !ASSERT_EQ(sockmig_probe_migrate_sysctl(65536), SOCKMIG_UNKNOWN, "port 65536") ||
	    !ASSERT_EQ(sockmig_probe_migrate_sysctl(-1), SOCKMIG_UNKNOWN, "port -1"))
		return SM_FAIL;
	/* a listener without SO_REUSEPORT holds the port: A cannot bind */
	taken = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!ASSERT_OK(taken, "socket"))
		return SM_FAIL;
	{
		struct sockaddr_storage ss;
		socklen_t len = burst_addr(AF_INET, STEP_PORT + 2, &ss);

		if (!ASSERT_OK(bind(taken, (struct sockaddr *)&ss, len), "bind") ||
		    !ASSERT_OK(listen(taken, 8), "listen") ||
		    !ASSERT_EQ(sockmig_probe_migrate_sysctl(STEP_PORT + 2), SOCKMIG_UNKNOWN,
			       "port taken")) {
			close(taken);
			return SM_FAIL;
		}
	}
	close(taken);
	return SM_PASS;
}
