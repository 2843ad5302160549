// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libsockmig-preload.so against real servers, reloads and closes: the
 * shim drains a listener on its last close (close, shutdown, exit, exec),
 * never on a close that is not the last (a dup, a forked worker), hands
 * the queue over in legacy mode. The server is tests/servers/prefork.c,
 * built by make (see preload.h): a plain glibc program like the servers
 * the shim is for (and never a sanitizer build: the shim loaded is the
 * normal build, found next to the test runner or one directory up). Each
 * server runs with LD_PRELOAD (or without it, for the baselines), takes
 * commands on its stdin and answers on its stdout one line each, "ROLE
 * PID WORD ...". Its stderr is kept in a file: the shim writes there.
 * Clients are bursts (bench/burst.h), counted exactly.
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
#include "preload.h"
#include "sockmig.h"
#include "util.h"

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
static int prefork_reload(struct pl_ctx *x, bool preload, bool legacy, int port)
{
	static const char *const native_env[] = {"SOCKMIG_DEBUG=1", NULL};
	static const char *const legacy_env[] = {"SOCKMIG_MODE=legacy", "SOCKMIG_DEBUG=1", NULL};
	const char *const *env = legacy ? legacy_env : native_env;
	char why[200];
	/* a kernel that cannot migrate gets legacy mode without being told:
	 * the shim's half is then the legacy one (SOCKMIG_MODE=legacy keeps
	 * the members' check below, which asks for the native layout) */
	bool as_legacy = legacy || !tu_kernel_migrates(why, sizeof(why));
	struct sockmig_member_info info[4];
	struct sockmig_netstat ns0, ns1, d;
	struct tp_proc old = TP_PROC_INIT, new = old;
	struct burst *c = pl_clients_new();
	char args[32], label[64];
	int ret = SM_FAIL, n;

	printf("%s the shim%s:\n", preload ? "with" : "without", legacy ? ", legacy mode" : "");
	snprintf(args, sizeof(args), "%d -f", port);
	if (!c || !ASSERT_OK(burst_migrate_req(false), "sysctl") ||
	    !ASSERT_TRUE(pl_srv_start(x, &old, "gen1", preload, false, env, args), "start gen 1") ||
	    !ASSERT_TRUE(pl_srv_expect(&old, "master", "ready", NULL, 0), "gen 1 master ready") ||
	    !ASSERT_TRUE(pl_srv_expect(&old, "worker", "ready", NULL, 0), "gen 1 worker ready"))
		goto out;
	if (!ASSERT_TRUE(pl_clients_connect(c, port, N_RELOAD), "clients connected") ||
	    !ASSERT_EQ(pl_srv_queue(&old, false), N_RELOAD, "queued on generation 1"))
		goto out;
	burst_sleep_ms(30); /* a later start time: 3 clock ticks at least */
	snprintf(args, sizeof(args), "%d -s", port);
	if (!ASSERT_TRUE(pl_srv_start(x, &new, "gen2", preload, false, env, args), "start gen 2") ||
	    !ASSERT_TRUE(pl_srv_expect(&new, "master", "ready", NULL, 0), "gen 2 ready"))
		goto out;
	if (preload && !legacy) {
		int i1, i2;

		n = pl_group_members(x, port, info, 4);
		if (!ASSERT_EQ(n, 2, "members: one listener per generation"))
			goto out;
		i1 = info[0].pid == (uint32_t)old.pid ? 0 : 1;
		i2 = 1 - i1;
		printf("generation 1: %u (pid %u), generation 2: %u (pid %u)\n",
		       info[i1].generation, info[i1].pid, info[i2].generation, info[i2].pid);
		if (!ASSERT_EQ(info[i1].pid, old.pid, "gen 1 member's pid") ||
		    !ASSERT_EQ(info[i2].pid, new.pid, "gen 2 member's pid") ||
		    !ASSERT_EQ(info[i1].generation, (uint32_t)tp_start_time(old.pid, false),
			       "gen 1 generation = its start time") ||
		    !ASSERT_EQ(info[i2].generation, (uint32_t)tp_start_time(new.pid, false),
			       "gen 2 generation = its start time") ||
		    !ASSERT_TRUE(info[i1].generation < info[i2].generation, "gen 2 is newer") ||
		    !ASSERT_TRUE(info[i1].role == SOCKMIG_ROLE_ACTIVE &&
					 info[i2].role == SOCKMIG_ROLE_ACTIVE,
				 "both active"))
			goto out;
	}
	sockmig_netstat_read(&ns0);
	/* master and worker close at the same time */
	if (!ASSERT_TRUE(tp_proc_cmd(&old, "a close"), "close") ||
	    !ASSERT_TRUE(pl_srv_expect(&old, NULL, "closed", NULL, 0), "one closed") ||
	    !ASSERT_TRUE(pl_srv_expect(&old, NULL, "closed", NULL, 0), "both closed") ||
	    !ASSERT_EQ(pl_srv_exit(&old), 0, "gen 1 exit code"))
		goto out;
	burst_serve(c, NULL, 0, NULL, 5000);
	sockmig_netstat_read(&ns1);
	sockmig_netstat_delta(&ns0, &ns1, &d);
	snprintf(label, sizeof(label), "%s the shim", preload ? "with" : "without");
	burst_print(c, label);
	printf("TCPMigrateReqSuccess %llu, TCPMigrateReqFailure %llu\n",
	       (unsigned long long)d.migrate_success, (unsigned long long)d.migrate_failure);
	tp_proc_stderr(&old, NULL);
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
		    !ASSERT_EQ(tp_proc_stderr(&old, "drained (legacy): 40 handed off, 0 refused, "
						    "0 abandoned"),
			       1, "the last close handed the 40 off") ||
		    !ASSERT_EQ(tp_proc_stderr(&new, "legacy group: hand-off endpoint open"), 1,
			       "gen 2 opened its endpoint") ||
		    !ASSERT_EQ(tp_proc_stderr(&new, "handed off by a drain"), N_RELOAD,
			       "gen 2's accept() took the 40"))
			goto out;
	} else {
		if (!ASSERT_EQ(c->count[BURST_OK], N_RELOAD, "served by generation 2") ||
		    !ASSERT_EQ(c->count[BURST_RESET], 0, "resets") ||
		    !ASSERT_EQ(d.migrate_success, N_RELOAD, "TCPMigrateReqSuccess") ||
		    !ASSERT_EQ(d.migrate_failure, 0, "TCPMigrateReqFailure") ||
		    !ASSERT_EQ(tp_proc_stderr(&old, "not the last reference"), 1,
			       "one of the two closes was not the last reference") ||
		    !ASSERT_EQ(tp_proc_stderr(&old, "last reference: drained: 40 migrated"), 1,
			       "the other one drained the 40") ||
		    !ASSERT_EQ(tp_proc_stderr(&old, "left group"), 1, "and left the group") ||
		    !ASSERT_EQ(pl_group_members(x, port, info, 4), 1, "members left: generation 2"))
			goto out;
	}
	if (!ASSERT_EQ(pl_srv_exit(&new), 0, "gen 2 exit code") ||
	    !ASSERT_EQ(pl_group_exists(x, port), false, "group removed with its last member"))
		goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&old);
	tp_proc_kill(&new);
	pl_clients_free(c);
	if (ret != SM_PASS)
		pl_group_cleanup(x, port);
	return ret;
}

SM_TEST(preload_prefork_reload_no_resets)
{
	struct pl_ctx x;
	int ret = pl_setup(&x);

	if (ret != SM_PASS)
		return ret;
	ret = prefork_reload(&x, false, false, PL_PORT);
	if (ret == SM_PASS)
		ret = prefork_reload(&x, true, false, PL_PORT + 1);
	pl_cleanup(&x);
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
	struct pl_ctx x;
	int ret = pl_setup(&x);

	if (ret != SM_PASS)
		return ret;
	ret = prefork_reload(&x, false, true, PL_PORT);
	if (ret == SM_PASS)
		ret = prefork_reload(&x, true, true, PL_PORT + 1);
	pl_cleanup(&x);
	return ret;
}

SM_TEST(preload_dup_close_is_not_last)
{
	static const char *const env[] = {"SOCKMIG_DEBUG=1", NULL};
	struct tp_proc s = TP_PROC_INIT;
	struct sockmig_member_info info[4];
	struct sockmig_group *hg = NULL;
	struct burst *c = pl_clients_new();
	struct pl_ctx x;
	char args[32], why[200];
	int ret = pl_setup(&x), h = -1, served[1] = {0}, n;

	if (ret != SM_PASS) {
		free(c);
		return ret;
	}
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "%d", PL_PORT);
	if (!c || !ASSERT_TRUE(pl_srv_start(&x, &s, "server", true, false, env, args), "start") ||
	    !ASSERT_TRUE(pl_srv_expect(&s, "master", "ready", NULL, 0), "ready") ||
	    !ASSERT_OK(h = pl_holder_start(PL_PORT, &hg), "holder") ||
	    !ASSERT_TRUE(tp_proc_cmd(&s, "dup") && pl_srv_expect(&s, "master", "dup", NULL, 0),
			 "dup"))
		goto out;
	if (!ASSERT_TRUE(pl_clients_connect(c, PL_PORT, 20), "20 clients") ||
	    !ASSERT_EQ(pl_srv_queue(&s, false), 20, "server's queue") ||
	    !ASSERT_EQ(burst_accept_queue(h), 0, "holder's queue"))
		goto out;
	if (!ASSERT_TRUE(tp_proc_cmd(&s, "closeorig"), "close the listener, keep the dup") ||
	    !ASSERT_TRUE(pl_srv_expect(&s, "master", "closed", NULL, 0), "closed"))
		goto out;
	n = pl_group_members(&x, PL_PORT, info, 4);
	if (!ASSERT_EQ(n, 2, "members") ||
	    !ASSERT_EQ(pl_srv_queue(&s, false), 20, "server's queue after the close") ||
	    !ASSERT_EQ(burst_accept_queue(h), 0, "holder's queue after the close"))
		goto out;
	for (int i = 0; i < n; i++)
		if (info[i].pid == (uint32_t)s.pid &&
		    (!ASSERT_EQ(info[i].role, SOCKMIG_ROLE_ACTIVE,
				"server's member still active") ||
		     !ASSERT_TRUE(info[i].listening, "and listening")))
			goto out;
	if (!ASSERT_TRUE(pl_clients_connect(c, PL_PORT, 20), "20 more clients") ||
	    !ASSERT_EQ(pl_srv_queue(&s, false), 40, "server's queue: it still takes SYNs") ||
	    !ASSERT_EQ(burst_accept_queue(h), 0, "holder's queue"))
		goto out;
	if (!ASSERT_TRUE(tp_proc_cmd(&s, "serve"), "serve"))
		goto out;
	burst_serve(c, &h, 1, served, 5000);
	burst_print(c, "served through the dup");
	if (!ASSERT_EQ(c->count[BURST_OK], 40, "served") ||
	    !ASSERT_EQ(served[0], 0, "by the holder"))
		goto out;
	if (!ASSERT_TRUE(tp_proc_cmd(&s, "close"), "close the dup") ||
	    !ASSERT_TRUE(pl_srv_expect(&s, "master", "closed", NULL, 0), "closed") ||
	    !ASSERT_EQ(pl_srv_exit(&s), 0, "exit code"))
		goto out;
	tp_proc_stderr(&s, NULL);
	if (!ASSERT_EQ(tp_proc_stderr(&s, "not the last reference"), 1, "the first close") ||
	    !ASSERT_EQ(
		    tp_proc_stderr(&s, tu_kernel_migrates(why, sizeof(why))
					       ? "last reference: drained: 0 migrated"
					       : "last reference: drained (legacy): 0 handed off"),
		    1, "the second") ||
	    !ASSERT_EQ(tp_proc_stderr(&s, "left group"), 1, "left"))
		goto out;
	pl_holder_stop(hg, h);
	hg = NULL;
	h = -1;
	if (!ASSERT_EQ(pl_group_exists(&x, PL_PORT), false, "group removed"))
		goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&s);
	pl_holder_stop(hg, h);
	pl_clients_free(c);
	if (ret != SM_PASS)
		pl_group_cleanup(&x, PL_PORT);
	pl_cleanup(&x);
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
	struct tp_proc s = TP_PROC_INIT;
	struct sockmig_group *hg = NULL;
	struct burst *c = pl_clients_new(), *c2 = pl_clients_new();
	struct pl_ctx x;
	char args[32], why[200];
	int ret = pl_setup(&x), h = -1, served[1] = {0};
	bool early = false;

	if (ret != SM_PASS) {
		free(c);
		free(c2);
		return ret;
	}
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "%d -f", PL_PORT);
	if (!c || !c2 ||
	    !ASSERT_TRUE(pl_srv_start(&x, &s, "server", true, false, env, args), "start") ||
	    !ASSERT_TRUE(pl_srv_expect(&s, "master", "ready", NULL, 0), "master ready") ||
	    !ASSERT_TRUE(pl_srv_expect(&s, "worker", "ready", NULL, 0), "worker ready") ||
	    !ASSERT_OK(h = pl_holder_start(PL_PORT, &hg), "holder"))
		goto out;
	if (!ASSERT_TRUE(pl_clients_connect(c, PL_PORT, 20), "20 clients") ||
	    !ASSERT_EQ(pl_srv_queue(&s, false), 20, "queue") ||
	    !ASSERT_TRUE(tp_proc_cmd(&s, "close"), "the master closes") ||
	    !ASSERT_TRUE(pl_srv_expect(&s, "master", "closed", NULL, 0), "closed") ||
	    !ASSERT_EQ(pl_srv_queue(&s, true), 20, "worker's queue after the master's close") ||
	    !ASSERT_EQ(burst_accept_queue(h), 0, "holder's queue"))
		goto out;
	if (!ASSERT_TRUE(pl_clients_connect(c, PL_PORT, 20), "20 more clients") ||
	    !ASSERT_EQ(pl_srv_queue(&s, true), 40, "worker's queue: it still takes SYNs") ||
	    !ASSERT_EQ(burst_accept_queue(h), 0, "holder's queue"))
		goto out;
	if (!ASSERT_TRUE(tp_proc_cmd(&s, "w serve"), "serve"))
		goto out;
	burst_serve(c, &h, 1, served, 5000);
	burst_print(c, "served by the worker");
	if (!ASSERT_EQ(c->count[BURST_OK], 40, "served") ||
	    !ASSERT_EQ(served[0], 0, "by the holder"))
		goto out;
	if (!tu_kernel_migrates(why, sizeof(why))) {
		/* a holder takes a queue only where the kernel migrates it: the
		 * worker's last close is preload_legacy_reload_hands_off's */
		printf("no native migration here (%s): the master's close was not the "
		       "last; the worker's, to a holder, is not tried\n",
		       why);
		tp_proc_stderr(&s, NULL);
		if (ASSERT_EQ(tp_proc_stderr(&s, "not the last reference"), 1,
			      "the master's close") &&
		    ASSERT_EQ(tp_proc_stderr(&s, "drained"), 0, "nothing drained"))
			ret = SM_PASS;
		/* the worker is killed with its member registered */
		early = true;
		goto out;
	}
	/* 15 more wait in the worker's queue; its close is the last reference */
	if (!ASSERT_TRUE(tp_proc_cmd(&s, "w pause") &&
				 pl_srv_expect(&s, "worker", "paused", NULL, 0),
			 "pause") ||
	    !ASSERT_TRUE(pl_clients_connect(c2, PL_PORT, 15), "15 clients") ||
	    !ASSERT_EQ(pl_srv_queue(&s, true), 15, "worker's queue") ||
	    !ASSERT_TRUE(tp_proc_cmd(&s, "w close"), "the worker closes") ||
	    !ASSERT_TRUE(pl_srv_expect(&s, "worker", "closed", NULL, 0), "closed") ||
	    !ASSERT_EQ(burst_accept_queue(h), 15, "migrated to the holder"))
		goto out;
	burst_serve(c2, &h, 1, served, 5000);
	burst_print(c2, "after the worker's close");
	if (!ASSERT_EQ(c2->count[BURST_OK], 15, "served") ||
	    !ASSERT_EQ(served[0], 15, "by the holder") ||
	    !ASSERT_EQ(pl_srv_exit(&s), 0, "exit code"))
		goto out;
	tp_proc_stderr(&s, NULL);
	if (!ASSERT_EQ(tp_proc_stderr(&s, "not the last reference"), 1, "the master's close") ||
	    !ASSERT_EQ(tp_proc_stderr(&s, "last reference: drained: 15 migrated"), 1,
		       "the worker's") ||
	    !ASSERT_EQ(tp_proc_stderr(&s, "left group"), 1, "left"))
		goto out;
	pl_holder_stop(hg, h);
	hg = NULL;
	h = -1;
	if (!ASSERT_EQ(pl_group_exists(&x, PL_PORT), false, "group removed"))
		goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&s);
	pl_holder_stop(hg, h);
	pl_clients_free(c);
	pl_clients_free(c2);
	if (ret != SM_PASS || early)
		pl_group_cleanup(&x, PL_PORT);
	pl_cleanup(&x);
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
	struct tp_proc old = TP_PROC_INIT, new = old;
	struct sockmig_netstat ns0, ns1, d;
	struct burst *c = pl_clients_new();
	struct pl_ctx x;
	char args[32], line[128], why[200];
	int ret = pl_setup(&x);
	/* where nothing migrates the shim is in legacy mode by itself: the
	 * queue is handed off to the new server's endpoint instead */
	bool native = tu_kernel_migrates(why, sizeof(why));

	if (ret != SM_PASS) {
		free(c);
		return ret;
	}
	ret = SM_FAIL;
	if (!native)
		printf("no native migration here (%s): legacy mode\n", why);
	snprintf(args, sizeof(args), "%d", PL_PORT);
	if (!c ||
	    !ASSERT_TRUE(pl_srv_start(&x, &old, "old", true, false, env, args), "start old") ||
	    !ASSERT_TRUE(pl_srv_expect(&old, "master", "ready", NULL, 0), "old ready") ||
	    !ASSERT_TRUE(pl_clients_connect(c, PL_PORT, 25), "25 clients") ||
	    !ASSERT_EQ(pl_srv_queue(&old, false), 25, "queued on old"))
		goto out;
	snprintf(args, sizeof(args), "%d -s", PL_PORT);
	if (!ASSERT_TRUE(pl_srv_start(&x, &new, "new", true, false, env, args), "start new") ||
	    !ASSERT_TRUE(pl_srv_expect(&new, "master", "ready", NULL, 0), "new ready"))
		goto out;
	sockmig_netstat_read(&ns0);
	if (strcmp(how, "shutdown") == 0) {
		if (!ASSERT_TRUE(tp_proc_cmd(&old, "shutdown"), "shutdown") ||
		    !ASSERT_TRUE(pl_srv_expect(&old, "master", "shutdown", line, sizeof(line)),
				 "done") ||
		    !ASSERT_TRUE(strstr(line, "ret=0 errno=kept"),
				 "shutdown() returned 0, errno kept"))
			goto out;
	} else if (strcmp(how, "exec") == 0) {
		if (!ASSERT_TRUE(tp_proc_cmd(&old, "reexec"), "reexec") ||
		    !ASSERT_TRUE(pl_srv_expect(&old, "master", "ready", NULL, 0),
				 "old ready again") ||
		    !ASSERT_EQ(pl_srv_queue(&old, false), 25, "still queued on old") ||
		    !ASSERT_TRUE(tp_proc_cmd(&old, "close"), "close") ||
		    !ASSERT_TRUE(pl_srv_expect(&old, "master", "closed", NULL, 0), "closed"))
			goto out;
	} else if (!ASSERT_EQ(pl_srv_exit(&old), 0, "old exits, listener open")) {
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
	if (strcmp(how, "exit") != 0 && !ASSERT_EQ(pl_srv_exit(&old), 0, "old exits"))
		goto out;
	tp_proc_stderr(&old, NULL);
	if (strcmp(how, "exec") == 0 &&
	    !ASSERT_EQ(tp_proc_stderr(&old, "inherited listener"), 1, "the new image tracks it"))
		goto out;
	if ((native && !ASSERT_EQ(tp_proc_stderr(&old, "drained: 25 migrated"), 1, "drained")) ||
	    (!native &&
	     (!ASSERT_EQ(tp_proc_stderr(&old, "drained (legacy): 25 handed off, 0 refused, "
					      "0 abandoned"),
			 1, "drained (legacy)") ||
	      !ASSERT_EQ(tp_proc_stderr(&new, "handed off by a drain"), 25,
			 "new's accept() took the 25"))) ||
	    !ASSERT_EQ(tp_proc_stderr(&old, "left group"), 1, "left") ||
	    !ASSERT_EQ(pl_srv_exit(&new), 0, "new exits") ||
	    !ASSERT_EQ(pl_group_exists(&x, PL_PORT), false, "group removed"))
		goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&old);
	tp_proc_kill(&new);
	pl_clients_free(c);
	if (ret != SM_PASS)
		pl_group_cleanup(&x, PL_PORT);
	pl_cleanup(&x);
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
