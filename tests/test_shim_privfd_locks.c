// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libsockmig-preload.so inside servers that run setuid, close or replace
 * the shim's private fds, meet a stopped process that holds a group's
 * lock, or close two listeners at once while a legacy drain waits. Each
 * case drives tests/servers/shim_prog.c (one mode per case; the modes and
 * the helpers are in shim_rig.c) and has its baseline: the shim of the
 * main branch fails it. Signals, daemons and forks are in
 * test_shim_safety.c.
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
	int ret = sr_setup(&x), src, dst;
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
	snprintf(args, sizeof(args), "setuid %d %s", SR_PORT, x.shim);
	if (!ASSERT_TRUE(sr_start(&x, &p, "setuid", suid, false, true, env, -1, args), "start") ||
	    !ASSERT_TRUE(sr_expect(&p, "listened secure=1 euid=0", NULL, 0, 5000),
			 "listening, setuid root, AT_SECURE"))
		goto out;
	if (!ASSERT_EQ(pl_group_exists(&x, SR_PORT), false, "no group made for the caller") ||
	    !ASSERT_TRUE(write(p.in, "go\n", 3) == 3, "go") ||
	    !ASSERT_TRUE(sr_expect(&p, "bye", NULL, 0, 5000), "closed") ||
	    !ASSERT_EQ(sr_wait(&p), 0, "exit code"))
		goto out;
	tp_proc_stderr(&p, NULL);
	if (!ASSERT_EQ(tp_proc_stderr(&p, "sockmig"), 0, "no line from the shim"))
		goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&p);
	if (ret != SM_PASS)
		pl_group_cleanup(&x, SR_PORT);
	sr_cleanup(&x);
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
	int ret = sr_setup(&x), l = -1;

	if (ret != SM_PASS) {
		free(c);
		return ret;
	}
	ret = SM_FAIL;
	l = burst_listener(AF_INET, SR_PORT, 128, 0);
	snprintf(args, sizeof(args), "%s %d", mode, SR_PORT);
	if (!c || !ASSERT_OK(l, "supervisor's listener") ||
	    !ASSERT_TRUE(sr_start(&x, &p, mode, x.server, true, false, env, l, args), "start") ||
	    !ASSERT_TRUE(sr_expect(&p, "cleared 0", NULL, 0, 5000), "fds cleared") ||
	    !ASSERT_TRUE(sr_expect(&p, "bind 0 ok", NULL, 0, 5000), "bind") ||
	    !ASSERT_TRUE(sr_expect(&p, "listen 0 ok", NULL, 0, 5000),
			 "listen on the supervisor's listener"))
		goto out;
	/* the server accepts from the supervisor's listener itself */
	close(l);
	l = -1;
	if (!ASSERT_OK(burst_start(c, AF_INET, SR_PORT, 1, false), "connect") ||
	    !ASSERT_TRUE(sr_expect(&p, "accept ok", NULL, 0, 5000), "accepted") ||
	    !ASSERT_EQ(sr_wait(&p), 0, "exit code"))
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
	sr_cleanup(&x);
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
	int ret = sr_setup(&x), h = -1, status;
	pid_t locker = -1;

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	h = holder_start(SR_PORT, false, &g);
	if (!ASSERT_OK(h, "group made by a holder"))
		goto out;
	pl_group_name(&x, SR_PORT, name);
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
	snprintf(args, sizeof(args), "lock %d", SR_PORT);
	if (!ASSERT_TRUE(sr_start(&x, &p, "lock", x.server, true, false, NULL, -1, args),
			 "start") ||
	    !ASSERT_TRUE(sr_expect(&p, "listened", line, sizeof(line), 5000),
			 "listen() returned") ||
	    !ASSERT_LE(field_ms(line), 2000, "listen() ms") ||
	    !ASSERT_TRUE(sr_expect(&p, "closed", line, sizeof(line), 5000), "close() returned") ||
	    !ASSERT_LE(field_ms(line), 2000, "close() ms") ||
	    !ASSERT_EQ(sr_wait(&p), 0, "exit code"))
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
	pl_group_cleanup(&x, SR_PORT);
	sr_cleanup(&x);
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
	int ret = sr_setup(&x), h = -1;

	if (ret != SM_PASS) {
		free(c);
		return ret;
	}
	ret = SM_FAIL;
	h = holder_start(SR_PORT, true, &g);
	snprintf(args, sizeof(args), "two %d %d", SR_PORT, SR_PORT + 1);
	if (!c || !ASSERT_OK(h, "holder") ||
	    !ASSERT_TRUE(sr_start(&x, &p, "two", x.server, true, false, env, -1, args), "start") ||
	    !ASSERT_TRUE(sr_expect(&p, "ready", NULL, 0, 5000), "listening") ||
	    !ASSERT_TRUE(ad = tu_ackdrop_attach(SR_PORT), "ACK dropper"))
		goto out;
	tu_ackdrop_set(ad, true);
	if (!ASSERT_OK(burst_start(c, AF_INET, SR_PORT, 1, false), "half-open client"))
		goto out;
	for (int t = 0; t < 200 && tu_ackdrop_dropped(ad) == 0; t++)
		burst_sleep_ms(10);
	if (!ASSERT_GT(tu_ackdrop_dropped(ad), 0, "final ACK dropped") ||
	    !ASSERT_TRUE(write(p.in, "go\n", 3) == 3, "go") ||
	    !ASSERT_TRUE(sr_expect(&p, "closedB", line, sizeof(line), 3000),
			 "B's close returned while A drains") ||
	    /* A's drain lasts its 2 s bound; B's close, 300 ms into it,
	     * would end after it (1.7 s or more) if it waited for it */
	    !ASSERT_LE(field_ms(line), 1500, "B's close ms: not after A's drain") ||
	    !ASSERT_TRUE(sr_expect(&p, "closedA", line, sizeof(line), 6000),
			 "A's close returned") ||
	    !ASSERT_LE(field_ms(line), 4000, "A's close ms") ||
	    !ASSERT_EQ(sr_wait(&p), 0, "exit code"))
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
	pl_group_cleanup(&x, SR_PORT);
	pl_group_cleanup(&x, SR_PORT + 1);
	sr_cleanup(&x);
	return ret;
}
