// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sockmig bench udp and udp-cost, tiny, run as an operator runs them. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"
#include "harness.h"
#include "sockmig.h"

/* Entries under the pin root (none when it does not exist yet: the bench
 * makes it; -1: cannot read it). */
static int pinned(void)
{
	const char *root = getenv("SOCKMIG_PIN_ROOT");
	DIR *d = opendir(root && root[0] ? root : SOCKMIG_PIN_ROOT);
	struct dirent *e;
	int n = 0;

	if (!d)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

/*
 * 300 flows of 500 ms at 20 datagrams/s, a flip every 100 ms, old
 * generations closed 1 s after their flip, 3 s per strategy. With the flow
 * program every datagram reaches the generation that read its flow's
 * first one, none is lost, each flow is learned once and every later
 * datagram is a hit (none falls back: no owner closes before its flows
 * end); the baselines, plain SO_REUSEPORT and the stateless mode, move
 * flows at the flips. Nothing is left pinned.
 */
SM_TEST(bench_udp_flow_no_misroute)
{
	char *out = malloc(65536), err[8192];
	int pins, rc, ret = SM_FAIL;

	if (!out)
		return SM_FAIL;
	if (!ct_have_tool()) {
		free(out);
		return SKIP("no .output/sockmig: run from the repository root");
	}
	pins = pinned();
	rc = ct_run("--json bench udp --flows 300 --rate 20 --flip-ms 100 --seconds 3 "
		    "--flow-ms 500 --grace-ms 1000",
		    out, 65536, err, sizeof(err));
#define S(name) "[s for s in j['strategies'] if s['strategy'] == '" name "'][0]"
	if (!ASSERT_EQ(rc, 0, "bench exit status") ||
	    !ASSERT_TRUE(ct_json_check(out, "[s['strategy'] for s in j['strategies']] == "
					    "['naive', 'flow', 'none']"),
			 "the three strategies ran") ||
	    !ASSERT_TRUE(ct_json_check(out, "all(s['sent'] > 1000 and s['flips'] >= 10 and "
					    "s['closed'] >= 5 for s in j['strategies'])"),
			 "datagrams sent, flips made, old generations closed") ||
	    !ASSERT_TRUE(ct_json_check(out, "(lambda s: s['misroutes'] == 0 and s['lost'] == 0 "
					    "and s['received'] == s['sent'])(" S("flow") ")"),
			 "flow: no misroute, nothing lost") ||
	    !ASSERT_TRUE(ct_json_check(out, "(lambda s: s['group_new_flows'] == s['flows'] and "
					    "s['group_new_flows'] + s['group_flow_hits'] == "
					    "s['sent'] and s['group_fallbacks'] == 0 and "
					    "s['group_kernel_hash'] == 0)(" S("flow") ")"),
			 "flow: each flow learned once, every later datagram a hit") ||
	    !ASSERT_TRUE(ct_json_check(out, "(" S("naive") ")['misroutes'] > 0"),
			 "naive: flows moved at the flips") ||
	    !ASSERT_TRUE(ct_json_check(out, "(lambda s: s['misroutes'] > 0 and "
					    "s['group_stateless'] == s['sent'])(" S("none") ")"),
			 "none: every datagram to the working generation, flows moved") ||
	    !ASSERT_EQ(pinned(), pins, "no pinned group left"))
		goto out;
#undef S
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		printf("stderr: %s\n", err);
	free(out);
	return ret;
}

/*
 * NAT rebinding: every flow moves to a new source port every 200 ms (300
 * flows of 500 ms at 20 datagrams/s, a flip every 100 ms, 2 s per
 * strategy). quic-lb: the owner answers a flow's first datagram with a
 * connection ID minted for its socket, and every later datagram carries
 * it: not one misroute, nothing lost, every datagram either a CID hit or a
 * long header learned on its 4-tuple (as flow), no CID stale. The
 * baseline, flow, takes each new 4-tuple for a new flow of the working
 * generation: misroutes.
 */
SM_TEST(bench_udp_quic_lb_rebind)
{
	char *out = malloc(65536), err[8192];
	int pins, rc, ret = SM_FAIL;

	if (!out)
		return SM_FAIL;
	if (!ct_have_tool()) {
		free(out);
		return SKIP("no .output/sockmig: run from the repository root");
	}
	pins = pinned();
	rc = ct_run("--json bench udp --strategies flow,quic-lb --flows 300 --rate 20 "
		    "--flip-ms 100 --seconds 2 --flow-ms 500 --grace-ms 1000 --rebind-ms 200",
		    out, 65536, err, sizeof(err));
#define S(name) "[s for s in j['strategies'] if s['strategy'] == '" name "'][0]"
	if (!ASSERT_EQ(rc, 0, "bench exit status") ||
	    !ASSERT_TRUE(ct_json_check(out, "[s['strategy'] for s in j['strategies']] == "
					    "['flow', 'quic-lb'] and j['rebind_ms'] == 200"),
			 "the two strategies ran, with rebinding") ||
	    !ASSERT_TRUE(ct_json_check(out, "all(s['sent'] > 1000 and s['flips'] >= 10 and "
					    "s['rebinds'] > 300 for s in j['strategies'])"),
			 "datagrams sent, flips made, flows moved") ||
	    !ASSERT_TRUE(ct_json_check(out, "(lambda s: s['misroutes'] == 0 and s['lost'] == 0 "
					    "and s['received'] == s['sent'])(" S("quic-lb") ")"),
			 "quic-lb: no misroute, nothing lost") ||
	    !ASSERT_TRUE(ct_json_check(out, "(lambda s: s['cids_sent'] >= s['flows'] and "
					    "s['group_cid_hits'] + s['group_cid_other'] == "
					    "s['sent'] and s['group_cid_stale'] == 0 and "
					    "s['group_new_flows'] == s['flows'] and "
					    "s['group_new_flows'] + s['group_flow_hits'] == "
					    "s['group_cid_other'] and s['group_cid_hits'] > 0)(" S(
						    "quic-lb") ")"),
			 "quic-lb: a CID per flow, every later datagram a CID hit") ||
	    !ASSERT_TRUE(ct_json_check(out, "(lambda s: s['misroutes'] > 0 and s['lost'] == 0)(" S(
						    "flow") ")"),
			 "flow (the baseline): a moved flow is a new flow, misroutes") ||
	    !ASSERT_EQ(pinned(), pins, "no pinned group left"))
		goto out;
#undef S
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		printf("stdout: %s\nstderr: %s\n", out, err);
	free(out);
	return ret;
}

/* One check of a bench's JSON output: a Python expression over j, and
 * what it asserts. */
struct jcheck {
	const char *expr, *what;
};

/* `sockmig --json ARGS`: exit 0, and each of @checks (to a NULL expr)
 * holds; stderr shown when not. */
static int json_case(const char *args, const struct jcheck *checks)
{
	char *out = malloc(65536), err[8192] = "", cmd[256];
	int ret = SM_FAIL;

	if (!out)
		return SM_FAIL;
	if (!ct_have_tool()) {
		free(out);
		return SKIP("no .output/sockmig: run from the repository root");
	}
	snprintf(cmd, sizeof(cmd), "--json %s", args);
	if (!ASSERT_EQ(ct_run(cmd, out, 65536, err, sizeof(err)), 0, "bench exit status"))
		goto out;
	for (const struct jcheck *c = checks; c->expr; c++)
		if (!ASSERT_TRUE(ct_json_check(out, c->expr), c->what))
			goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		printf("stderr: %s\n", err);
	free(out);
	return ret;
}

/*
 * bench udp-cost: one run of the flow program per datagram of the "on"
 * phase, one of the empty program per datagram of its phase, and one of
 * the select-only program per datagram of its own, none lost (its helper
 * failing drops the datagram), exactly.
 */
SM_TEST(bench_udp_cost_runs_per_datagram)
{
	static const struct jcheck c[] = {
		{"j['phase_on'] == [False, True] and len(j['pair_ratios']) == 1 and j['ratio'] > 0",
		 "one pair, off then on"},
		{"j['flow_runs'] == 20000 and j['flow_ns_per_datagram'] > 0",
		 "one flow-program run per datagram"},
		{"j['empty_runs'] == 20000 and j['empty_ns_per_datagram'] > 0",
		 "one empty-program run per datagram"},
		{"j['select_runs'] == 20000 and j['select_lost'] == 0 and j['lost'] == 0 and "
		 "j['select_ns_per_datagram'] > 0",
		 "one select-only run per datagram, every one steered"},
		{"abs(j['flow_above_select_ns_per_datagram'] - "
		 "(j['flow_ns_per_datagram'] - j['select_ns_per_datagram'])) < 0.01",
		 "the flow program above the select-only program"},
		{NULL, NULL},
	};

	return json_case("bench udp-cost --phases 2 --count 20000", c);
}

/*
 * bench udp-cost --mode quic-lb: every datagram of the "on" phase is
 * routed by its connection ID (one QUIC-LB hit each, no flow hit), one
 * program run per datagram.
 */
SM_TEST(bench_udp_cost_quic_lb_routes_every_datagram_by_cid)
{
	static const struct jcheck c[] = {
		{"j['group_mode'] == 'quic-lb' and j['flow_runs'] == 20000",
		 "one quic-lb program run per datagram"},
		{"j['group_quic_hits'] == 20000 and j['group_flow_hits'] == 0",
		 "every datagram by its connection ID"},
		{"j['select_runs'] == 20000 and j['select_lost'] == 0 and j['empty_runs'] == 20000",
		 "the reference programs' runs, one per datagram"},
		{NULL, NULL},
	};

	return json_case("bench udp-cost --mode quic-lb --phases 2 --count 20000", c);
}

/*
 * bench udp-cost --echo: the group's reader answers every datagram and the
 * rate is of round trips; none goes unanswered (without the answers every
 * datagram would count lost), one program run per datagram on its way in,
 * and none counted while the rates were measured (the statistics off;
 * unless kernel.bpf_stats_enabled has them on, which the bench then says).
 */
SM_TEST(bench_udp_cost_echo_answers_every_datagram)
{
	struct jcheck c[] = {
		{"j['echo'] is True and j['lost'] == 0 and j['select_lost'] == 0",
		 "every datagram answered"},
		{"j['flow_runs'] == 20000 and j['empty_runs'] == 20000 and j['select_runs'] == "
		 "20000",
		 "one program run per datagram, none per answer"},
		{"j['rate_off'] > 0 and j['rate_on'] > 0 and len(j['pair_ratios']) == 1",
		 "round trips per second, one pair"},
		{"j['rate_phase_runs'] == 0 and j['bpf_stats_were_on'] is False",
		 "the statistics off while the rates were measured"},
		{NULL, NULL},
	};
	FILE *f = fopen("/proc/sys/kernel/bpf_stats_enabled", "re");
	int on = 0;

	/* on by the sysctl, the bench cannot turn them off: it must say so */
	if (f && fscanf(f, "%d", &on) != 1)
		on = 0;
	if (f)
		fclose(f);
	if (on) {
		c[3].expr = "j['bpf_stats_were_on'] is True and j['rate_phase_runs'] > 0";
		c[3].what = "the statistics on by kernel.bpf_stats_enabled, and said so";
	}
	return json_case("bench udp-cost --echo --phases 2 --count 20000", c);
}

/*
 * bench udp-cost --senders 2, mode quic-lb: a phase more, in which two
 * senders at once (one per CPU where there are two) send the first
 * socket's CID: one program run per datagram sent, and the group's
 * counters as without it (read before that phase).
 */
SM_TEST(bench_udp_cost_senders_at_once)
{
	static const struct jcheck c[] = {
		{"j['senders'] == 2 and 1 <= j['senders_cpus'] <= 2", "two senders"},
		{"j['senders_sent'] == 20000 and j['senders_runs'] == j['senders_sent']",
		 "one program run per datagram the senders sent"},
		{"j['senders_ns_per_datagram'] > 0 and j['flow_runs'] == 20000 and "
		 "j['group_quic_hits'] == 20000",
		 "the single sender's phase and counters as without --senders"},
		{NULL, NULL},
	};

	return json_case("bench udp-cost --mode quic-lb --phases 2 --count 20000 --senders 2", c);
}

/* Bad options of bench udp and udp-cost: exit 2, one Error line, nothing
 * on stdout, nothing run. */
SM_PURE(bench_udp_bad_options)
{
	static const char *const bad[] = {
		"bench udp --flows 0",
		"bench udp --flows 50001",
		"bench udp --rate x",
		"bench udp --flip-ms 5",
		"bench udp --seconds 0",
		"bench udp --strategies naive,quic",
		"bench udp --strategies ,",
		"bench udp --grace-ms 3000 --flip-ms 10",
		"bench udp --bogus",
		"bench udp extra",
		"bench udp-cost --phases 1",
		"bench udp-cost --count 10",
		"bench udp --rebind-ms 5",
		"bench udp --rebind-ms x",
		"bench udp --strategies quic-lb,nope",
		"bench udp-cost --mode quic",
		"bench udp --echo",
		"bench udp --senders 2",
		"bench udp-cost --senders 1",
		"bench udp-cost --senders 65",
	};
	char out[4096], err[4096];

	if (!ct_have_tool())
		return SKIP("no .output/sockmig: run from the repository root");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = ct_run(bad[i], out, sizeof(out), err, sizeof(err));

		if (!ASSERT_EQ(st, 2, bad[i]) ||
		    !ASSERT_EQ(ct_lines(err), 1, "one line on stderr") ||
		    !ASSERT_TRUE(strncmp(err, "Error: ", 7) == 0, "it starts with Error:") ||
		    !ASSERT_EQ(strlen(out), 0, "nothing on stdout"))
			return SM_FAIL;
	}
	return SM_PASS;
}
