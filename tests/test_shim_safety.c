// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libsockmig-preload.so inside servers that do unusual but legal things
 * with their processes: close a listener in a signal handler, become a
 * daemon with daemon(3), fork a worker that drops root, fork during a
 * handover. Each case drives one small program
 * (tests/servers/shim_prog.c, built by make, one mode per case; the modes
 * and the helpers are in shim_rig.c) and has its baseline: the shim of
 * the main branch fails it. Setuid, the shim's private fds and locks are
 * in test_shim_privfd_locks.c.
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
#include "shim_rig.h"
#include "sockmig.h"
#include "util.h"

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
	int ret = sr_setup(&x), n = -1;

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "%s %d %d", mode, SR_PORT, N_SIGNAL);
	if (!ASSERT_TRUE(sr_start(&x, &p, "signal", x.server, true, false, env, -1, args),
			 "start") ||
	    !ASSERT_TRUE(sr_expect(&p, "ready", NULL, 0, 5000), "listening"))
		goto out;
	if (!ASSERT_TRUE(sr_expect(&p, "closed", line, sizeof(line), 6000),
			 "closes in the signal handler returned (no deadlock)"))
		goto out;
	sscanf(line, "closed %d", &n);
	if (!ASSERT_EQ(n, N_SIGNAL, "listeners closed by the handler") ||
	    !ASSERT_EQ(sr_wait(&p), 0, "exit code"))
		goto out;
	tp_proc_stderr(&p, NULL);
	if (!ASSERT_EQ(tp_proc_stderr(&p, "closed, last reference"), N_SIGNAL,
		       "each close decided by the helper: the last reference") ||
	    !ASSERT_EQ(tp_proc_stderr(&p, "left group"), N_SIGNAL, "and out of its group"))
		goto out;
	for (int i = 0; i < N_SIGNAL; i++)
		if (!ASSERT_EQ(pl_group_exists(&x, SR_PORT + i), false, "no group left"))
			goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&p);
	if (ret != SM_PASS) {
		tp_proc_stderr(&p, NULL);
		for (int i = 0; i < N_SIGNAL; i++)
			pl_group_cleanup(&x, SR_PORT + i);
	}
	sr_cleanup(&x);
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
	int ret = sr_setup(&x), dpid = -1;

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "daemon %d", SR_PORT);
	if (!ASSERT_TRUE(sr_start(&x, &p, "daemon", x.server, true, false, env, -1, args),
			 "start") ||
	    !ASSERT_TRUE(sr_expect(&p, "ready", NULL, 0, 5000), "listening") ||
	    !ASSERT_TRUE(pl_group_exists(&x, SR_PORT), "registered at listen()") ||
	    !ASSERT_TRUE(sr_expect(&p, "daemon", line, sizeof(line), 5000), "daemon"))
		goto out;
	sscanf(line, "daemon %d", &dpid);
	if (!ASSERT_TRUE(sr_expect(&p, "bye", NULL, 0, 5000), "closed in the daemon"))
		goto out;
	for (int t = 0; t < 500 && dpid > 0 && kill(dpid, 0) == 0; t++)
		burst_sleep_ms(10); /* its exit */
	tp_proc_stderr(&p, NULL);
	if (!ASSERT_EQ(tp_proc_stderr(&p, "closed, last reference"), 1,
		       "the daemon decided at its close: the last reference") ||
	    !ASSERT_EQ(tp_proc_stderr(&p, "left group"), 1, "and left the group") ||
	    !ASSERT_EQ(pl_group_exists(&x, SR_PORT), false, "no group left"))
		goto out;
	ret = SM_PASS;
out:
	if (dpid > 0 && ret != SM_PASS)
		kill(dpid, SIGKILL);
	tp_proc_kill(&p);
	if (ret != SM_PASS)
		pl_group_cleanup(&x, SR_PORT);
	sr_cleanup(&x);
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
	int ret = sr_setup(&x);

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "worker %d %s", SR_PORT, first);
	if (!ASSERT_TRUE(sr_start(&x, &p, "worker", x.server, true, false, env, -1, args),
			 "start") ||
	    !ASSERT_TRUE(sr_expect(&p, "child closed", NULL, 0, 5000), "the child closed") ||
	    /* the parent's shim decided on the child's close: the last
	     * reference (drained, left), or not (the parent holds it) */
	    !ASSERT_TRUE(sr_wait_stderr(&p, parent_first ? "left group" : "not the last reference",
					1, 5000),
			 "the decision on the child's close") ||
	    !ASSERT_TRUE(tp_proc_cmd(&p, "go"), "go on") ||
	    (!parent_first &&
	     !ASSERT_TRUE(sr_expect(&p, "listening 1", NULL, 0, 5000), "still listening")) ||
	    !ASSERT_TRUE(sr_expect(&p, "done", NULL, 0, 5000), "done") ||
	    !ASSERT_EQ(sr_wait(&p), 0, "exit code"))
		goto out;
	tp_proc_stderr(&p, NULL);
	if (!ASSERT_EQ(tp_proc_stderr(&p, "handed to process"), 1,
		       "the child handed its close to the parent") ||
	    !ASSERT_EQ(tp_proc_stderr(&p, "closed, last reference"), 1, "one last reference") ||
	    !ASSERT_EQ(tp_proc_stderr(&p, "not the last reference"), 1,
		       "one close that was not the last") ||
	    !ASSERT_EQ(pl_group_exists(&x, SR_PORT), false, "no group left"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		tp_proc_stderr(&p, NULL);
	tp_proc_kill(&p);
	if (ret != SM_PASS)
		pl_group_cleanup(&x, SR_PORT);
	sr_cleanup(&x);
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
	int ret = sr_setup(&x);

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "handfork %d", SR_PORT);
	if (!ASSERT_TRUE(sr_start(&x, &p, "handfork", x.server, true, false, env, -1, args),
			 "start"))
		goto out;
	/* the lines of the three processes come in any order */
	end = burst_now_ms() + 8000;
	while (!done && tp_proc_line(&p, line, sizeof(line), end)) {
		printf("  | %s\n", line);
		if (!strncmp(line, "fork made ms=", 13))
			made = atoi(line + 13) + 1;
		if (!strncmp(line, "copy ", 5))
			copy = atoi(line + 5);
		done = !strcmp(line, "done");
	}
	/* the group's lock is let go 100 ms after the fork began: a fork()
	 * that waited for the decision took that long; one that did not
	 * leaves the outcome to a race (the child's copy closed by its fork
	 * handler before or after the decision's scan saw it) */
	if (!ASSERT_TRUE(done, "done") || !ASSERT_EQ(sr_wait(&p), 0, "exit code") ||
	    !ASSERT_TRUE(made, "forked while the shim held the listener") ||
	    !ASSERT_TRUE(made - 1 >= 90, "fork() waited for the decision (>= 90 ms)"))
		goto out;
	tp_proc_stderr(&p, NULL);
	if (!ASSERT_EQ(copy, 0, "the forked child holds no copy of the listener") ||
	    !ASSERT_EQ(tp_proc_stderr(&p, "handed to process"), 1,
		       "the child handed its close to the parent") ||
	    !ASSERT_EQ(tp_proc_stderr(&p, "closed, last reference"), 1, "one last reference") ||
	    !ASSERT_EQ(tp_proc_stderr(&p, "not the last reference"), 1,
		       "one close that was not the last (the parent's own)") ||
	    !ASSERT_EQ(pl_group_exists(&x, SR_PORT), false, "no group left"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		tp_proc_stderr(&p, NULL);
	tp_proc_kill(&p);
	if (ret != SM_PASS)
		pl_group_cleanup(&x, SR_PORT);
	sr_cleanup(&x);
	return ret;
}

/*
 * connect() is interposed for the UDP members that connect to one peer;
 * for every other socket it must be the C library's, even with an address
 * the caller may not read: EFAULT, never a crash in the shim. Baseline:
 * the shim that read the address family before it looked at the fd.
 */
SM_TEST(shim_connect_bad_address_is_efault)
{
	struct tp_proc p = {.pid = 0, .in = -1, .out = -1};
	char args[64], line[128] = "";
	struct pl_ctx x;
	int ret = sr_setup(&x);

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "badconnect %d", SR_PORT);
	if (!ASSERT_TRUE(sr_start(&x, &p, "badconnect", x.server, true, false, NULL, -1, args),
			 "start") ||
	    !ASSERT_TRUE(sr_expect(&p, "ready", NULL, 0, 5000), "listening") ||
	    !ASSERT_TRUE(sr_expect(&p, "connect", line, sizeof(line), 5000),
			 "connect() returned (no crash)") ||
	    !ASSERT_TRUE(strncmp(line, "connect EFAULT", 14) == 0, line) ||
	    !ASSERT_EQ(sr_wait(&p), 0, "exit code"))
		goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&p);
	if (ret != SM_PASS) {
		tp_proc_stderr(&p, NULL);
		pl_group_cleanup(&x, SR_PORT);
	}
	sr_cleanup(&x);
	return ret;
}
