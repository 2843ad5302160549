// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig run --proto udp|all (cli/run_udp.c): a UDP server, or one that
 * serves TCP and UDP on one port, reloaded under a flow load of the UDP
 * rig's clients (tests/udp_rig.c: connected UDP sockets, one per flow, one
 * datagram per flow and round) and, for the mixed server, a TCP load.
 *
 * The servers answer each datagram with their pid: tests/servers/udp_echo.c
 * (started as `sh -c 'exec udp_echo PORT $$'`, so that its ID is its pid)
 * and tests/servers/mixed_echo.c; misroutes, hand-overs and unanswered
 * datagrams are judged as tests/run_udp_rig.h says.
 *
 * Old generations overlap the new one: udp_echo ignores the stop signal
 * WINCH and lives until --grace's SIGKILL (1 s); mixed_echo closes its TCP
 * listener at SIGTERM and answers datagrams for 1 s more.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"
#include "harness.h"
#include "itest.h"
#include "proc.h"
#include "runtest.h"
#include "sockmig.h"
#include "run_udp_rig.h"
#include "udp_rig.h"
#include "util.h"

#define FLOWS	100 /* new flows per generation */
#define RELOADS 5

/*
 * RELOADS reloads under the flow load: FLOWS flows of each generation,
 * each new generation's started once it is ready. Every old generation
 * overlaps the new one (see the top). Fills @j; false after a failed
 * assertion (the log shown).
 */
static bool reloads(struct ienv *e, pid_t run, struct ur_rig *r, struct ru_judge *j,
		    const char *report)
{
	uint32_t seq = 0;
	int nflows = FLOWS;
	char what[64];

	if (!ASSERT_TRUE(rt_wait_log(e, "run.log", "generation 1 ready", 1, 10000),
			 "generation 1 ready"))
		return false;
	for (int k = 0; k < 3; k++)
		if (!ru_round(r, j, nflows, ++seq))
			return false;
	for (int k = 1; k <= RELOADS; k++) {
		kill(run, SIGHUP);
		snprintf(what, sizeof(what), "generation %d ready", k + 1);
		if (!ASSERT_TRUE(ru_rounds_until(e, r, j, nflows, &seq, what, 1, 15000), what))
			return false;
		nflows += FLOWS;
		if (!ASSERT_TRUE(ru_rounds_until(e, r, j, nflows, &seq, report, k, 15000),
				 "the reload's report"))
			return false;
	}
	for (int k = 0; k < 3; k++)
		if (!ru_round(r, j, nflows, ++seq))
			return false;
	printf("%ld rounds, %ld datagrams sent, %ld answered, %ld unanswered (%ld in the queue "
	       "of an owner that closed or retired its socket, %ld while it was open); %ld "
	       "misrouted (answered by another process while the flow's owner had its socket "
	       "open, in the group), %ld hand-overs (the owner had closed or retired it)\n",
	       j->rounds, r->sent, r->answered, r->lost, j->lost_at_close, j->lost_open,
	       j->misrouted, j->handovers);
	return true;
}

/*
 * (1) udp_echo under `sockmig run --proto udp`, RELOADS reloads under the
 * flow load: no datagram of a flow answered by another process while its
 * owner's socket was open and in the group, each flow handed over exactly
 * once per generation that stopped after it began (the flows of
 * generation k, for k = 1 to RELOADS + 1, move RELOADS + 1 - k times),
 * and, since run retires the old generation's sockets before --grace's
 * SIGKILL, no datagram lost in their queues. The baseline (@retire false:
 * SOCKMIG_RUN_NO_RETIRE=1, the kill as before) loses some at each kill.
 */
static int reloads_case(bool retire)
{
	static struct ru_judge j;
	struct ienv e;
	struct ur_rig r = {.cep = -1, .ep = -1};
	char bin[128], script[160];
	char *extra[] = {"--proto", "udp", "--stop-signal", "WINCH", "--grace", "1", NULL};
	char *cmd[] = {"sh", "-c", script, bin, NULL};
	pid_t run;
	int ret = SM_FAIL;

	memset(&j, 0, sizeof(j));
	if (!ru_setup(&e, "udp_echo", bin, sizeof(bin)))
		return SKIP("no .output/sockmig or udp_echo: make builds them");
	snprintf(script, sizeof(script), "exec \"$0\" %d $$", UR_PORT);
	if (!retire)
		setenv("SOCKMIG_RUN_NO_RETIRE", "1", 1); /* this case's process alone */
	run = ru_start_run(&e, extra, cmd);
	if (!ru_clients(&r, FLOWS * (RELOADS + 1)) ||
	    !reloads(&e, run, &r, &j, "reload report (udp)") ||
	    !ASSERT_EQ(j.misrouted, 0, "misrouted") ||
	    !ASSERT_EQ(j.handovers, (long)FLOWS * RELOADS * (RELOADS + 1) / 2, "hand-overs") ||
	    !ASSERT_EQ(j.lost_at_close + j.lost_open, r.lost, "unanswered, judged") ||
	    !ASSERT_LE(j.lost_open, (long)(ur_backlog_drops() - r.drops0),
		       "unanswered while the owner's socket was open, not by the backlog") ||
	    !ASSERT_EQ(it_log_count(&e, "run.log", "reload report (udp)"), RELOADS, "reports") ||
	    !ru_no_rcvbuf_errors(&e))
		goto out;
	if (retire && ASSERT_EQ(j.lost_at_close, 0, "lost in the queue of a closed socket") &&
	    ASSERT_EQ(it_log_count(&e, "run.log", "killed with 0 bytes queued, "), RELOADS,
		      "reports: each old generation killed with nothing queued") &&
	    ASSERT_EQ(it_log_count(&e, "run.log", "not retired"), 0, "sockets not retired"))
		ret = SM_PASS;
	if (!retire && ASSERT_GT(j.lost_at_close, 0, "baseline: lost in the queue at the kill") &&
	    ASSERT_EQ(it_log_count(&e, "run.log", "(not retired: SOCKMIG_RUN_NO_RETIRE=1)"),
		      RELOADS, "baseline: reports say none retired"))
		ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "run.log");
	ru_teardown(&e, run, &r, true);
	return ret;
}

SM_LONG(run_udp_reloads_no_misroute, 120)
{
	return reloads_case(true);
}

SM_LONG(run_udp_reloads_kill_baseline, 120)
{
	return reloads_case(false);
}

/*
 * mixed_echo reloaded under a TCP load and the flow load: with --proto all
 * no TCP connection fails and no datagram is misrouted (3); with the
 * default --proto tcp (the baseline of (1) and (3): the server's own
 * SO_REUSEPORT, no UDP group) the TCP side is as safe, and datagrams of
 * established flows go to the new process while the old one still has its
 * socket open.
 */
static int mixed(bool all, bool handoff)
{
	static struct ru_judge j;
	struct ienv e;
	struct ur_rig r = {.cep = -1, .ep = -1};
	struct lg_result lr;
	char bin[128];
	/* --addr: where the kernel cannot migrate, run hands its listener
	 * to the server's bind(), which must name the same address */
	char *extra_all[] = {"--proto", "all", "--grace", "5", "--addr", "127.0.0.1", NULL, NULL};
	char *extra_tcp[] = {"--grace", "5", "--addr", "127.0.0.1", NULL};
	char *cmd[] = {bin, RU_PORT_S, "1000", NULL};
	pid_t run, lpid = 0;
	int ret = SM_FAIL, rfd = -1, reply;

	memset(&j, 0, sizeof(j));
	extra_all[6] = handoff ? "--handoff" : NULL;
	if (!ru_setup(&e, "mixed_echo", bin, sizeof(bin)))
		return SKIP("no .output/sockmig or mixed_echo: make builds them");
	run = ru_start_run(&e, all ? extra_all : extra_tcp, cmd);
	reply = it_probe_reply(UR_PORT, 5000);
	if (!ASSERT_GT(reply, 0, "the server answers on TCP"))
		goto out;
	if (!ru_clients(&r, FLOWS * (RELOADS + 1)))
		goto out;
	rfd = it_start_load(UR_PORT, reply, 60.0, &lpid);
	if (!reloads(&e, run, &r, &j, all ? "reload report (udp)" : "reload report: generation"))
		goto out;
	it_stop_load(lpid);
	if (!ASSERT_TRUE(it_finish_load(rfd, lpid, &lr), "TCP load result"))
		goto out;
	rfd = -1;
	it_print_result(all ? "mixed --proto all" : "mixed --proto tcp", I_NONE, &lr, RELOADS);
	if (!ASSERT_GT(lr.started, 1000, "TCP connections") ||
	    !ASSERT_EQ(lr.started - lr.count[LG_OK], 0, "TCP connections failed") ||
	    !ASSERT_EQ(lr.count[LG_RESET_BEFORE_REQUEST] + lr.count[LG_RESET_AFTER_REQUEST], 0,
		       "TCP resets"))
		goto out;
	if (all && ASSERT_EQ(j.misrouted, 0, "misrouted") &&
	    ASSERT_EQ(j.handovers, (long)FLOWS * RELOADS * (RELOADS + 1) / 2, "hand-overs") &&
	    ASSERT_EQ(it_log_count(&e, "run.log", "reload report (udp)"), RELOADS, "UDP reports") &&
	    ASSERT_EQ(it_log_count(&e, "run.log", "reload report: generation"), RELOADS,
		      "TCP reports") &&
	    ru_no_rcvbuf_errors(&e))
		ret = SM_PASS;
	if (!all && ASSERT_GT(j.misrouted, 0, "baseline: misrouted") &&
	    ASSERT_EQ(it_log_count(&e, "run.log", "report (udp)"), 0, "no UDP report"))
		ret = SM_PASS;
out:
	if (rfd >= 0) {
		it_stop_load(lpid);
		it_finish_load(rfd, lpid, &lr);
	}
	if (ret != SM_PASS)
		it_show_log(&e, "run.log");
	ru_teardown(&e, run, &r, r.cep >= 0);
	return ret;
}

SM_LONG(run_udp_mixed_all, 120)
{
	return mixed(true, false);
}

/* The same with the listener hand-off for TCP (what run chooses where the
 * kernel cannot migrate): UDP by its group all the same. */
SM_LONG(run_udp_mixed_all_handoff, 120)
{
	return mixed(true, true);
}

SM_LONG(run_udp_mixed_tcp_only_baseline, 120)
{
	return mixed(false, false);
}

/*
 * (2) The report's UDP line, exactly: FLOWS flows of generation 1; a
 * reload; with no datagram while generation 2 starts, FLOWS new flows
 * (to generation 2) and one datagram of each old flow (to generation 1,
 * no longer the working one: FLOWS to older generations); then
 * generation 1 stops. Without @kill by itself (its SIGTERM from the
 * case: run's stop signal, WINCH, is ignored by udp_echo, and --grace is
 * 30 s): none killed. With @kill at --grace 3 (SIGKILL): its socket
 * retired first, its FLOWS flows moved to generation 2, nothing queued.
 */
static const char *const report_head[] = {
	"reload report (udp): generation 1 stopped in ",
	" ms; flows when the new generation was ready: generation 1 100, generation 2 "
	"0; flows now: generation 2 100; datagrams since the reload's start (",
	" ms): 100 of known flows to their socket, 100 to older generations, 100 new "
	"flows, 0 to the working generation from closed sockets, 0 expired, 0 by the "
	"kernel's hash; at --grace: ",
};

/* @line holds report_head's parts in order: what follows them, or NULL. */
static const char *after_head(const char *line)
{
	const char *at = line;

	for (size_t i = 0; i < sizeof(report_head) / sizeof(report_head[0]); i++) {
		const char *p = strstr(at, report_head[i]);

		if (!ASSERT_TRUE(p != NULL, report_head[i]))
			return NULL;
		at = p + strlen(report_head[i]);
	}
	return at;
}

static int report_exact(bool kill_it)
{
	const char *tail = kill_it ? "generation 1 killed with 0 bytes queued, 100 flows moved to "
				     "the working generation; UdpRcvbufErrors +0, UdpInErrors +0\n"
				   : "none killed; UdpRcvbufErrors +0, UdpInErrors +0\n";
	struct ienv e;
	struct ur_rig r = {.cep = -1, .ep = -1};
	char bin[128], script[160], line[1024];
	char *extra[] = {
		"--proto", "udp", "--stop-signal", "WINCH", "--grace", kill_it ? "3" : "30", NULL};
	char *cmd[] = {"sh", "-c", script, bin, NULL};
	const char *at;
	int ret = SM_FAIL, pid1, pid2 = 0;
	bool have = false;
	pid_t run;

	if (!ru_setup(&e, "udp_echo", bin, sizeof(bin)))
		return SKIP("no .output/sockmig or udp_echo: make builds them");
	snprintf(script, sizeof(script), "exec \"$0\" %d $$", UR_PORT);
	run = ru_start_run(&e, extra, cmd);
	have = ru_clients(&r, FLOWS * (RELOADS + 1));
	if (!have ||
	    !ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 1 ready", 1, 10000),
			 "generation 1 ready") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, 1), "round 1") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, 2), "round 2"))
		goto out;
	pid1 = r.first[0];
	kill(run, SIGHUP);
	if (!ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 2 ready", 1, 10000),
			 "generation 2 ready") ||
	    !ASSERT_OK(ur_round(&r, FLOWS, 2 * FLOWS, 3), "new flows") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, 4), "old flows"))
		goto out;
	pid2 = r.first[FLOWS];
	if (!ASSERT_TRUE(pid2 != pid1, "a new process answers the new flows") ||
	    !ASSERT_EQ(ru_first_by(&r, 0, FLOWS, pid1), FLOWS, "old flows of generation 1") ||
	    !ASSERT_EQ(ru_first_by(&r, FLOWS, 2 * FLOWS, pid2), FLOWS,
		       "new flows of generation 2") ||
	    !ASSERT_EQ(r.misrouted, 0, "answers by another process") ||
	    !ASSERT_EQ(r.lost, 0, "unanswered") ||
	    (!kill_it && !ASSERT_OK(kill(pid1, SIGTERM), "stop generation 1")) ||
	    !ASSERT_TRUE(rt_wait_log(&e, "run.log", "reload report (udp)", 1, 10000), "report") ||
	    !ASSERT_TRUE(ru_log_line(&e, "run.log", "reload report (udp)", line, sizeof(line)),
			 "the report's line"))
		goto out;
	printf("%s", line);
	at = after_head(line);
	if (!at || !ASSERT_EQ(strcmp(at, tail), 0, tail))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "run.log");
	/* generation 2 ignores run's stop signal (WINCH) and --grace (30 s,
	 * or 3) outlasts the teardown's 3 s: stopped by the case, so that run
	 * ends before the teardown's SIGKILL would leave it and its files
	 * behind */
	if (pid2 > 0)
		kill(pid2, SIGTERM);
	ru_teardown(&e, run, &r, have);
	return ret;
}

SM_TEST(run_udp_report_exact)
{
	return report_exact(false);
}

SM_TEST(run_udp_report_kill_exact)
{
	return report_exact(true);
}

/*
 * (2a) A second reload asked for while the first one's old generation is
 * still in --grace starts when that generation ends (--max-old 1), in the
 * same tick: the first reload's report comes first, whole, with its own
 * flip and counts (as run_udp_report_exact's), not after the second
 * reload's new generation is ready, counted from the second's start.
 */
SM_TEST(run_udp_report_of_a_reload_before_the_next)
{
	struct ienv e;
	struct ur_rig r = {.cep = -1, .ep = -1};
	char bin[128], script[160], line[1024];
	char *extra[] = {"--proto", "udp", "--stop-signal", "WINCH", "--grace", "30", NULL};
	char *cmd[] = {"sh", "-c", script, bin, NULL};
	int ret = SM_FAIL, pid[3] = {0, 0, 0};
	bool have = false;
	pid_t run;

	if (!ru_setup(&e, "udp_echo", bin, sizeof(bin)))
		return SKIP("no .output/sockmig or udp_echo: make builds them");
	snprintf(script, sizeof(script), "exec \"$0\" %d $$", UR_PORT);
	run = ru_start_run(&e, extra, cmd);
	have = ru_clients(&r, 3 * FLOWS);
	if (!have ||
	    !ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 1 ready", 1, 10000),
			 "generation 1 ready") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, 1), "round 1") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, 2), "round 2"))
		goto out;
	pid[0] = r.first[0];
	kill(run, SIGHUP);
	if (!ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 2 ready", 1, 10000),
			 "generation 2 ready") ||
	    !ASSERT_OK(ur_round(&r, FLOWS, 2 * FLOWS, 3), "new flows") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, 4), "old flows"))
		goto out;
	pid[1] = r.first[FLOWS];
	/* the second reload waits: generation 1 is still stopping */
	kill(run, SIGHUP);
	burst_sleep_ms(200);
	if (!ASSERT_EQ(it_log_count(&e, "run.log", "generation 3 "), 0, "no generation 3 yet") ||
	    !ASSERT_OK(kill(pid[0], SIGTERM), "stop generation 1") ||
	    !ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 3 ready", 1, 10000),
			 "generation 3 ready") ||
	    !ASSERT_OK(ur_round(&r, 2 * FLOWS, 3 * FLOWS, 5), "generation 3's flows"))
		goto out;
	pid[2] = r.first[2 * FLOWS];
	if (!ASSERT_TRUE(pid[1] != pid[0] && pid[2] != pid[1], "three processes") ||
	    !ASSERT_EQ(r.misrouted, 0, "answers by another process") ||
	    !ASSERT_EQ(r.lost, 0, "unanswered") ||
	    !ASSERT_EQ(it_log_count(&e, "run.log", "reload report (udp)"), 1, "one report") ||
	    !ASSERT_TRUE(ru_log_line(&e, "run.log", "reload report (udp)", line, sizeof(line)),
			 "the report's line"))
		goto out;
	printf("%s", line);
	if (!after_head(line))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "run.log");
	/* generations 2 and 3 ignore run's stop signal: stopped by the case */
	for (int k = 0; k < 3; k++)
		if (pid[k] > 0)
			kill(pid[k], SIGTERM);
	ru_teardown(&e, run, &r, have);
	return ret;
}

/*
 * (2b) The stop report's UDP line counts from the reload report before
 * it, across the group's end: the server exits at run's SIGTERM (the
 * shim's exit path removes the group with its last member) before run
 * reads the counters. FLOWS flows of generation 1, a reload (generation 1
 * exits at its SIGTERM), then FLOWS new flows of generation 2 and one
 * more datagram of each: the stop report says FLOWS new flows and FLOWS
 * to their socket, nothing else. Counted from a group read again at the
 * stop, the group gone, its counts went from a sum to none: numbers near
 * 2^64.
 */
SM_TEST(run_udp_stop_report_after_the_group_ends)
{
	static const char *const tail =
		" ms): 100 of known flows to their socket, 0 to older generations, 100 new "
		"flows, 0 to the working generation from closed sockets, 0 expired, 0 by the "
		"kernel's hash; at --grace: none killed; UdpRcvbufErrors +0, UdpInErrors +0\n";
	struct ienv e;
	struct ur_rig r = {.cep = -1, .ep = -1};
	char bin[128], script[160], line[1024];
	char *extra[] = {"--proto", "udp", NULL};
	char *cmd[] = {"sh", "-c", script, bin, NULL};
	const char *at;
	int ret = SM_FAIL, status = -1;
	bool have = false;
	pid_t run;

	if (!ru_setup(&e, "udp_echo", bin, sizeof(bin)))
		return SKIP("no .output/sockmig or udp_echo: make builds them");
	snprintf(script, sizeof(script), "exec \"$0\" %d $$", UR_PORT);
	run = ru_start_run(&e, extra, cmd);
	have = ru_clients(&r, 2 * FLOWS);
	if (!have ||
	    !ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 1 ready", 1, 10000),
			 "generation 1 ready") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, 1), "round 1"))
		goto out;
	kill(run, SIGHUP);
	if (!ASSERT_TRUE(rt_wait_log(&e, "run.log", "reload report (udp)", 1, 10000),
			 "the reload's report") ||
	    !ASSERT_OK(ur_round(&r, FLOWS, 2 * FLOWS, 2), "new flows") ||
	    !ASSERT_OK(ur_round(&r, FLOWS, 2 * FLOWS, 3), "their second datagrams") ||
	    !ASSERT_EQ(r.misrouted, 0, "answers by another process") ||
	    !ASSERT_EQ(r.lost, 0, "unanswered"))
		goto out;
	kill(run, SIGTERM);
	status = tp_wait_exit(run, 10000);
	if (!ASSERT_TRUE(status >= 0, "run ends") || !ASSERT_EQ(status, 0, "run's exit status") ||
	    !ASSERT_TRUE(ru_log_line(&e, "run.log", "stop report (udp)", line, sizeof(line)),
			 "the stop report's line"))
		goto out;
	run = 0;
	printf("%s", line);
	at = strstr(line, "datagrams since the last report (");
	if (!ASSERT_TRUE(at != NULL, "since the last report") ||
	    !ASSERT_TRUE((at = strstr(at, " ms): ")) != NULL, "its time") ||
	    !ASSERT_EQ(strcmp(at, tail), 0, tail))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "run.log");
	ru_teardown(&e, run, &r, have);
	return ret;
}

/*
 * (4) A bad --proto, or one that another option contradicts: one Error
 * line that names it, exit status 2, nothing started or left behind (no
 * file of run's for the port).
 */
SM_TEST(run_udp_proto_bad_values)
{
	static const struct {
		const char *args, *error;
	} bad[] = {
		{"--proto x", "Error: run: --proto: 'x' is not one of tcp, udp, all\n"},
		{"--proto ''", "Error: run: --proto: '' is not one of tcp, udp, all\n"},
		{"--proto UDP", "Error: run: --proto: 'UDP' is not one of tcp, udp, all\n"},
		{"--proto tcp,udp", "Error: run: --proto: 'tcp,udp' is not one of tcp, udp, all\n"},
		{"--proto udp --handoff", "Error: run: --proto udp: --handoff is TCP only\n"},
		{"--proto udp --socket-activation",
		 "Error: run: --proto udp: --socket-activation is TCP only\n"},
		{"--proto udp --stop-start",
		 "Error: run: --proto udp: --stop-start (the holder) is TCP only\n"},
		{"--proto all --socket-activation",
		 "Error: run: --proto all: --socket-activation would leave UDP uncovered (the shim "
		 "registers no UDP socket with it)\n"},
	};
	char out[4096], err[4096], args[256], dir[160];
	struct dirent *d;
	DIR *rd;

	if (!ct_have_tool())
		return SKIP("no .output/sockmig: run from the repository root");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(args, sizeof(args), "run --port %d %s -- true", UR_PORT, bad[i].args);
		if (!ASSERT_EQ(ct_run(args, out, sizeof(out), err, sizeof(err)), 2, args) ||
		    !ASSERT_EQ(strcmp(err, bad[i].error), 0, bad[i].error) ||
		    !ASSERT_EQ(out[0], 0, "nothing on stdout")) {
			printf("stdout: %s\nstderr: %s", out, err);
			return SM_FAIL;
		}
	}
	snprintf(args, sizeof(args), "run --port %d --proto", UR_PORT);
	if (!ASSERT_EQ(ct_run(args, out, sizeof(out), err, sizeof(err)), 2, args) ||
	    !ASSERT_EQ(strcmp(err, "Error: run: --proto needs a value\n"), 0, "no value")) {
		printf("stderr: %s", err);
		return SM_FAIL;
	}
	rt_daemon_file(dir, sizeof(dir), "");
	rd = opendir(dir);
	while (rd && (d = readdir(rd)))
		if (!ASSERT_TRUE(strstr(d->d_name, RU_PORT_S) == NULL, d->d_name)) {
			closedir(rd);
			return SM_FAIL;
		}
	if (rd)
		closedir(rd);
	return ASSERT_EQ(ru_groups_left(), 0, "UDP groups of the port") ? SM_PASS : SM_FAIL;
}

/*
 * The new generation takes the new flows only once it is ready: mixed_echo
 * binds its UDP socket (which joins the group at once, under the shim) and
 * listens on TCP only at the test's SIGUSR2 (or after 20 s), and with
 * --proto all run calls it ready only then. New flows that start in
 * between go to generation 1; those after its readiness to generation 2.
 * (Without run's pin of the working generation, the shim's registration
 * alone makes the newest generation the working one at its bind().)
 */
SM_TEST(run_udp_working_when_ready)
{
	struct ienv e;
	struct ur_rig r = {.cep = -1, .ep = -1};
	char bin[128];
	char *extra[] = {"--proto", "all", "--grace", "5", NULL};
	char *cmd[] = {bin, RU_PORT_S, "0", "20000", NULL};
	int ret = SM_FAIL, pid1, pid2 = 0;
	bool have;
	pid_t run;

	if (!ru_setup(&e, "mixed_echo", bin, sizeof(bin)))
		return SKIP("no .output/sockmig or mixed_echo: make builds them");
	run = ru_start_run(&e, extra, cmd);
	have = ru_clients(&r, FLOWS * (RELOADS + 1));
	for (int t = 0; t < 1000 && !(pid1 = ru_other_member(0)); t++)
		burst_sleep_ms(10);
	if (pid1 > 0)
		kill(pid1, SIGUSR2); /* generation 1: listen on TCP now */
	if (!have || !ASSERT_GT(pid1, 0, "generation 1's UDP socket joined") ||
	    !ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 1 ready", 1, 10000),
			 "generation 1 ready") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, 1), "round 1"))
		goto out;
	pid1 = r.first[0];
	kill(run, SIGHUP);
	for (int t = 0; t < 500 && !pid2; t++) {
		burst_sleep_ms(10);
		pid2 = ru_other_member(pid1);
	}
	if (!ASSERT_GT(pid2, 0, "generation 2's UDP socket joined") ||
	    !ASSERT_EQ(it_log_count(&e, "run.log", "generation 2 ready"), 0, "not ready yet") ||
	    !ASSERT_OK(ur_round(&r, FLOWS, 2 * FLOWS, 2), "new flows while 2 starts") ||
	    !ASSERT_EQ(it_log_count(&e, "run.log", "generation 2 ready"), 0,
		       "still not ready after that round") ||
	    !ASSERT_EQ(ru_first_by(&r, FLOWS, 2 * FLOWS, pid1), FLOWS,
		       "new flows of generation 1 while 2 starts") ||
	    !ASSERT_OK(kill(pid2, SIGUSR2), "generation 2: listen on TCP now") ||
	    !ASSERT_TRUE(rt_wait_log(&e, "run.log", "generation 2 ready", 1, 10000),
			 "generation 2 ready") ||
	    !ASSERT_OK(ur_round(&r, 2 * FLOWS, 3 * FLOWS, 3), "new flows once 2 is ready") ||
	    !ASSERT_EQ(ru_first_by(&r, 2 * FLOWS, 3 * FLOWS, pid2), FLOWS,
		       "new flows of generation 2 once it is ready") ||
	    !ASSERT_TRUE(rt_wait_log(&e, "run.log", "reload report (udp)", 1, 10000), "report"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "run.log");
	ru_teardown(&e, run, &r, have);
	return ret;
}
