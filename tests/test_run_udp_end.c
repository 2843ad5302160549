// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig run --proto udp at --grace (cli/run_udp_end.c), where it goes
 * wrong: a server that stopped reading when its UDP sockets are retired,
 * and run itself killed in the middle of that retire. udp_echo under run
 * (see tests/test_run_udp.c, whose lossless reloads are the common case),
 * with --stop-signal WINCH (ignored) and --grace 1: every old generation
 * is retired and killed by run.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "itest.h"
#include "proc.h"
#include "runtest.h"
#include "sockmig.h"
#include "run_udp_rig.h"
#include "udp_rig.h"
#include "util.h"

#define FLOWS 100

/* The state letter of /proc/@pid/stat ('T': stopped), or 0. */
static char proc_state(int pid)
{
	char path[64], buf[256], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

/* Generation 1's kill at --grace in run.log within @ms (a reload's report
 * or the stop's): its line shown, with bytes still queued (> 0 when
 * @stuck: its server stopped reading; 0 otherwise) and @flows flows moved
 * to the working generation. */
static bool kill_reported(const struct ienv *e, int ms, bool stuck, unsigned long long flows)
{
	unsigned long long bytes = 0, moved = 0;
	char line[1024] = "";
	const char *at;

	if (!ASSERT_TRUE(rt_wait_log(e, "run.log", "generation 1 killed with ", 1, ms),
			 "generation 1 killed") ||
	    !ASSERT_TRUE(ru_log_line(e, "run.log", "generation 1 killed with ", line, sizeof(line)),
			 "its report"))
		return false;
	printf("%s", line);
	at = strstr(line, "at --grace: generation 1 killed with ");
	return ASSERT_TRUE(at != NULL, "generation 1 first in its report") &&
	       ASSERT_EQ(sscanf(at,
				"at --grace: generation 1 killed with %llu bytes queued, %llu "
				"flows moved to the working generation",
				&bytes, &moved),
			 2, "bytes and flows") &&
	       (stuck ? ASSERT_GT(bytes, 0,
				  "bytes still queued at the kill (the server did not read)")
		      : ASSERT_EQ(bytes, 0, "bytes queued at the kill (the server read them)")) &&
	       ASSERT_EQ(moved, flows, "flows moved to the working generation");
}

/*
 * A server that has stopped reading at --grace (generation 1 SIGSTOPped,
 * FLOWS datagrams of its flows queued on its socket): the retire takes its
 * socket out of the group (its FLOWS flows moved), waits its 3 s
 * (SOCKMIG_RUN_RETIRE_MS) for the queue in vain, and the report says what
 * was still queued (> 0). While
 * that retire waits, run's loop goes on: a reload asked for then
 * (--max-old 2) has generation 3 ready while generation 1 still lives.
 */
SM_LONG(run_udp_retire_stuck_server, 60)
{
	struct ienv e;
	struct ur_rig r = {.cep = -1, .ep = -1};
	char bin[128], script[160];
	char *extra[] = {"--proto", "udp", "--stop-signal", "WINCH", "--grace", "1", "--max-old",
			 "2",	    NULL};
	char *cmd[] = {"sh", "-c", script, bin, NULL};
	int ret = SM_FAIL, pid1 = 0, t;
	bool have;
	pid_t run;

	if (!tu_kernel_has_pidfd_getfd())
		return SKIP("run retires an old generation's UDP sockets on copies it takes "
			    "with pidfd_getfd (Linux 5.6)");
	if (!ru_setup(&e, "udp_echo", bin, sizeof(bin)))
		return SKIP("no .output/sockmig or udp_echo: make builds them");
	snprintf(script, sizeof(script), "exec \"$0\" %d $$", UR_PORT);
	/* 3 s of retire, not 1: the case acts within it (run's process alone) */
	setenv("SOCKMIG_RUN_RETIRE_MS", "3000", 1);
	run = ru_start_run(&e, extra, cmd);
	have = ru_clients(&r, FLOWS);
	if (!have ||
	    !ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 1 ready", 1, 10000),
			 "generation 1 ready") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, 1), "round 1"))
		goto out;
	pid1 = r.first[0];
	kill(run, SIGHUP);
	if (!ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 2 ready", 1, 10000),
			 "generation 2 ready") ||
	    !ASSERT_OK(kill(pid1, SIGSTOP), "generation 1 stops reading"))
		goto out;
	for (int i = 0; i < FLOWS; i++) {
		struct ur_msg m = {.flow = (uint32_t)i, .seq = 2};

		if (!ASSERT_EQ(send(r.cli[i], &m, sizeof(m), 0), (long)sizeof(m), "old flow"))
			goto out;
	}
	/* the retire has taken its socket out: it now waits for the queue */
	for (t = 0; t < 500 && ru_in_group(pid1); t++)
		burst_sleep_ms(10);
	if (!ASSERT_TRUE(t < 500, "generation 1's socket out of the group at --grace") ||
	    !ASSERT_OK(kill(run, SIGHUP), "a reload during the retire") ||
	    !ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 3 ready", 1, 5000),
			 "generation 3 ready") ||
	    !ASSERT_EQ(proc_state(pid1), 'T', "generation 1 still alive (stopped) then") ||
	    !kill_reported(&e, 5000, true, FLOWS))
		goto out;
	ret = SM_PASS;
out:
	if (pid1 > 0)
		kill(pid1, SIGCONT);
	if (ret != SM_PASS)
		it_show_log(&e, "run.log");
	ru_teardown(&e, run, &r, have);
	return ret;
}

/*
 * sockmig run killed (SIGKILL) in the middle of a retire (generation 1
 * SIGSTOPped with FLOWS datagrams queued, its socket already out of the
 * group, the retire waiting for its queue): nothing is left half done.
 * Generation 1 is not killed and not stuck: once it runs again it answers
 * the FLOWS queued datagrams; its socket stays out of the group and
 * generation 2's in it, which gets every flow from then on.
 */
SM_LONG(run_udp_killed_during_retire, 60)
{
	struct ienv e;
	struct ur_rig r = {.cep = -1, .ep = -1};
	char bin[128], script[160], path[160];
	char *extra[] = {"--proto", "udp", "--stop-signal", "WINCH", "--grace", "1", NULL};
	char *cmd[] = {"sh", "-c", script, bin, NULL};
	int ret = SM_FAIL, pid1 = 0, pid2 = 0, t, got = 0;
	bool have;
	pid_t run;

	if (!tu_kernel_has_pidfd_getfd())
		return SKIP("run retires an old generation's UDP sockets on copies it takes "
			    "with pidfd_getfd (Linux 5.6)");
	if (!ru_setup(&e, "udp_echo", bin, sizeof(bin)))
		return SKIP("no .output/sockmig or udp_echo: make builds them");
	snprintf(script, sizeof(script), "exec \"$0\" %d $$", UR_PORT);
	/* 3 s of retire, not 1: the case acts within it (run's process alone) */
	setenv("SOCKMIG_RUN_RETIRE_MS", "3000", 1);
	run = ru_start_run(&e, extra, cmd);
	have = ru_clients(&r, FLOWS);
	if (!have ||
	    !ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 1 ready", 1, 10000),
			 "generation 1 ready") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, 1), "round 1"))
		goto out;
	pid1 = r.first[0];
	kill(run, SIGHUP);
	if (!ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 2 ready", 1, 10000),
			 "generation 2 ready") ||
	    !ASSERT_OK(kill(pid1, SIGSTOP), "generation 1 stops reading"))
		goto out;
	for (int i = 0; i < FLOWS; i++) {
		struct ur_msg m = {.flow = (uint32_t)i, .seq = 2};

		if (!ASSERT_EQ(send(r.cli[i], &m, sizeof(m), 0), (long)sizeof(m), "old flow"))
			goto out;
	}
	for (t = 0; t < 500 && ru_in_group(pid1); t++)
		burst_sleep_ms(10);
	if (!ASSERT_TRUE(t < 500, "generation 1's socket out of the group at --grace"))
		goto out;
	kill(run, SIGKILL);
	waitpid(run, NULL, 0);
	run = 0;
	pid2 = ru_other_member(pid1);
	if (!ASSERT_EQ(proc_state(pid1), 'T', "generation 1 not killed") ||
	    !ASSERT_GT(pid2, 0, "generation 2 a member") ||
	    !ASSERT_TRUE(!ru_in_group(pid1), "generation 1's socket still out of the group") ||
	    !ASSERT_OK(kill(pid1, SIGCONT), "generation 1 reads again"))
		goto out;
	/* the datagrams queued before the retire took the socket out */
	for (t = 0; t < 300 && got < FLOWS; t++) {
		for (int i = 0; i < FLOWS; i++) {
			struct ur_msg m;

			while (recv(r.cli[i], &m, sizeof(m), MSG_DONTWAIT) == sizeof(m))
				got += m.seq == 2 && (int)m.gen == pid1;
		}
		burst_sleep_ms(10);
	}
	if (!ASSERT_EQ(got, FLOWS, "queued datagrams answered by generation 1") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, 3), "round 3") ||
	    !ASSERT_EQ(ru_first_by(&r, 0, FLOWS, pid1), FLOWS, "flows of generation 1") ||
	    !ASSERT_EQ(r.lost, 0, "unanswered"))
		goto out;
	got = 0;
	for (int i = 0; i < FLOWS; i++)
		got += r.last[i] == pid2;
	if (ASSERT_EQ(got, FLOWS, "round 3 answered by generation 2"))
		ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "run.log");
	if (pid1 > 0) {
		kill(pid1, SIGKILL);
		kill(pid1, SIGCONT);
	}
	if (pid2 > 0)
		kill(pid2, SIGKILL);
	rt_daemon_file(path, sizeof(path), "run-" RU_PORT_S ".gens");
	unlink(path); /* the killed run's record */
	ru_teardown(&e, run, &r, have);
	return ret;
}

/*
 * The retire copies the server's members alone: udp_echo -s 200 holds 400
 * other sockets opened before its UDP socket (a server's connections), and
 * at --grace run (-v says how many) takes one copy of generation 1's fds,
 * its member's, found by sock_diag; each of its 401 sockets, before that.
 */
SM_LONG(run_udp_retire_copies_members_alone, 60)
{
	struct ienv e;
	struct ur_rig r = {0};
	char bin[128], script[160];
	char *extra[] = {"-v", "--proto", "udp", "--stop-signal", "WINCH", "--grace", "1", NULL};
	char *cmd[] = {"sh", "-c", script, bin, NULL};
	int ret = SM_FAIL;
	pid_t run;

	if (!tu_kernel_has_pidfd_getfd())
		return SKIP("run retires an old generation's UDP sockets on copies it takes "
			    "with pidfd_getfd (Linux 5.6)");
	if (!ru_setup(&e, "udp_echo", bin, sizeof(bin)))
		return SKIP("no .output/sockmig or udp_echo: make builds them");
	snprintf(script, sizeof(script), "exec \"$0\" %d $$ -s 200", UR_PORT);
	run = ru_start_run(&e, extra, cmd);
	if (!ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 1 ready", 1, 10000),
			 "generation 1 ready") ||
	    !ASSERT_OK(kill(run, SIGHUP), "reload") ||
	    !ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 2 ready", 1, 10000),
			 "generation 2 ready") ||
	    !ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 1 killed with ", 1, 10000),
			 "generation 1 retired and killed at --grace") ||
	    !ASSERT_EQ(it_log_count(&e, "run.log", "fds copied for its members"), 1,
		       "one process's retire") ||
	    !ASSERT_EQ(it_log_count(&e, "run.log",
				    ": 1 fds copied for its members (those sock_diag names)"),
		       1, "its member's fd copied, and no other") ||
	    !ASSERT_EQ(it_log_count(&e, "run.log", "not retired"), 0, "its member retired"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "run.log");
	ru_teardown(&e, run, &r, false);
	return ret;
}

/* The pids of the port's live UDP members, at most @max: how many. */
static int member_pids(int *pids, int max)
{
	struct sockmig_group_id ids[8];
	struct sockmig_udp_member_info m[16];
	int n = sockmig_udp_group_list(NULL, sockmig_netns_self(), UR_PORT, ids, 8), got = 0;

	for (int i = 0; i < n && i < 8; i++) {
		struct sockmig_udp_group *g = sockmig_udp_group_open_name(ids[i].name, NULL);
		int k = g ? sockmig_udp_members(g, m, 16) : 0;

		for (int j = 0; j < k && j < 16 && got < max; j++)
			pids[got++] = (int)m[j].pid;
		sockmig_udp_group_close(g);
	}
	return got;
}

#define WORKERS 4

/*
 * sockmig run --proto udp (--stop-signal WINCH, --grace 1; @retire_ms:
 * SOCKMIG_RUN_RETIRE_MS, or NULL) over a pre-fork server, udp_echo -w
 * WORKERS, with FLOWS clients (*@have) and generation 1 ready, its WORKERS
 * members' pids in @pids. SM_PASS, SM_SKIP or SM_FAIL; *@run once started.
 */
static int prefork_under_run(struct ienv *e, struct ur_rig *r, const char *retire_ms, int *pids,
			     pid_t *run, bool *have)
{
	char bin[128], script[160];
	char *extra[] = {"--proto", "udp", "--stop-signal", "WINCH", "--grace", "1", NULL};
	char *cmd[] = {"sh", "-c", script, bin, NULL};
	int n = 0;

	*run = 0;
	*have = false;
	if (!tu_kernel_has_pidfd_getfd())
		return SKIP("run retires an old generation's UDP sockets on copies it takes "
			    "with pidfd_getfd (Linux 5.6)");
	if (!ru_setup(e, "udp_echo", bin, sizeof(bin)))
		return SKIP("no .output/sockmig or udp_echo: make builds them");
	snprintf(script, sizeof(script), "exec \"$0\" %d $$ -w %d", UR_PORT, WORKERS);
	if (retire_ms)
		setenv("SOCKMIG_RUN_RETIRE_MS", retire_ms, 1);
	*run = ru_start_run(e, extra, cmd);
	*have = ru_clients(r, FLOWS);
	if (!*have || !ASSERT_TRUE(rt_wait_log(e, "run.log", "generation 1 ready", 1, 10000),
				   "generation 1 ready"))
		return SM_FAIL;
	for (int t = 0; t < 500 && (n = member_pids(pids, WORKERS)) < WORKERS; t++)
		burst_sleep_ms(10);
	return ASSERT_EQ(n, WORKERS, "generation 1's workers members") ? SM_PASS : SM_FAIL;
}

/*
 * A pre-fork server (udp_echo -w 4: four worker processes, a socket each)
 * that has stopped reading at --grace: the retire takes the four sockets
 * of generation 1 out of the group at once, so that every one of its FLOWS
 * flows goes on to generation 2 from its next datagram, while generation 1
 * is still stopped (a round with no datagram lost). Before, the sockets
 * left one process at a time, each after the one before had waited its
 * whole retire (6 s here) for a queue no one read, and the flows of the
 * other three were lost meanwhile. Then --grace's SIGKILL ends the workers
 * with their master (before, they went on, orphans, after it).
 */
SM_LONG(run_udp_retire_takes_a_generation_out_at_once, 60)
{
	struct ienv e;
	struct ur_rig r = {.cep = -1, .ep = -1};
	int ret, pids[WORKERS] = {0}, in = WORKERS, t, answered = 0;
	bool have;
	pid_t run;

	ret = prefork_under_run(&e, &r, "6000", pids, &run, &have);
	if (ret == SM_SKIP)
		return ret;
	if (ret != SM_PASS)
		goto out;
	ret = SM_FAIL;
	if (!ASSERT_OK(ur_round(&r, 0, FLOWS, 1), "round 1") ||
	    !ASSERT_OK(kill(run, SIGHUP), "reload") ||
	    !ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 2 ready", 1, 10000),
			 "generation 2 ready"))
		goto out;
	for (int i = 0; i < WORKERS; i++)
		if (!ASSERT_OK(kill(pids[i], SIGSTOP), "generation 1 stops reading"))
			goto out;
	for (int i = 0; i < FLOWS; i++) {
		struct ur_msg m = {.flow = (uint32_t)i, .seq = 2};

		if (!ASSERT_EQ(send(r.cli[i], &m, sizeof(m), 0), (long)sizeof(m), "old flow"))
			goto out;
	}
	/* --grace: the first socket out, then (at once) the others */
	for (t = 0; t < 500 && in == WORKERS; t++) {
		in = 0;
		for (int i = 0; i < WORKERS; i++)
			in += ru_in_group(pids[i]);
		if (in == WORKERS)
			burst_sleep_ms(10);
	}
	for (t = 0; t < 200 && in > 0; t++) {
		burst_sleep_ms(10);
		in = 0;
		for (int i = 0; i < WORKERS; i++)
			in += ru_in_group(pids[i]);
	}
	if (!ASSERT_EQ(in, 0, "every socket of generation 1 out of the group within 2 s") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, 3), "round 3"))
		goto out;
	for (int i = 0; i < FLOWS; i++)
		answered += r.got[i] == 3;
	for (int i = 0; i < WORKERS; i++)
		if (!ASSERT_EQ(proc_state(pids[i]), 'T', "generation 1 stopped during round 3"))
			goto out;
	if (!ASSERT_EQ(answered, FLOWS, "round 3 answered (by generation 2) in full") ||
	    !kill_reported(&e, 10000, true, FLOWS) ||
	    !ASSERT_EQ(it_log_count(&e, "run.log", "not retired"), 0, "every socket retired"))
		goto out;
	/* the SIGKILL took the workers too, not the master alone */
	for (t = 0; t < 300; t++) {
		in = 0;
		for (int i = 0; i < WORKERS; i++)
			in += proc_state(pids[i]) != 0 && proc_state(pids[i]) != 'Z';
		if (!in)
			break;
		burst_sleep_ms(10);
	}
	if (!ASSERT_EQ(in, 0, "generation 1's workers killed at --grace"))
		goto out;
	ret = SM_PASS;
out:
	/* on a failure they may be alive and stopped (killed when it passed) */
	for (int i = 0; ret != SM_PASS && i < WORKERS; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGCONT);
	if (ret != SM_PASS)
		it_show_log(&e, "run.log");
	ru_teardown(&e, run, &r, have);
	return ret;
}

/*
 * run's stop, with a pre-fork server (udp_echo -w 4) that ignores the stop
 * signal: at --grace its generation is the last, its members still active.
 * They stay in the group until the kill (no other generation to move
 * their flows to), their queues waited for together, and the stop report
 * says what was queued, no flow moved, no socket "not retired". Before, run
 * retired them one by one into each other, and the last one, refused
 * (the last active member), was reported not retired at every such stop.
 */
SM_LONG(run_udp_stop_keeps_the_last_generation_whole, 60)
{
	struct ienv e;
	struct ur_rig r = {.cep = -1, .ep = -1};
	int ret, pids[WORKERS] = {0}, status;
	bool have;
	pid_t run;

	ret = prefork_under_run(&e, &r, NULL, pids, &run, &have);
	if (ret == SM_SKIP)
		return ret;
	if (ret != SM_PASS)
		goto out;
	ret = SM_FAIL;
	if (!ASSERT_OK(ur_round(&r, 0, FLOWS, 1), "round 1") ||
	    !ASSERT_OK(kill(run, SIGTERM), "stop"))
		goto out;
	status = tp_wait_exit(run, 15000);
	if (!ASSERT_EQ(status, 0, "run's exit status"))
		goto out;
	run = 0;
	if (!ASSERT_EQ(it_log_count(&e, "run.log", "stop report (udp)"), 1, "the stop report") ||
	    !kill_reported(&e, 1000, false, 0) ||
	    !ASSERT_EQ(it_log_count(&e, "run.log", "not retired"), 0, "sockets not retired"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "run.log");
	ru_teardown(&e, run, &r, have);
	return ret;
}
