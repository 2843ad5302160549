// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig bench udp: the UDP bench's strategies side by side (naive, flow,
 * none, quic-lb; bench/udp_flows.c), and bench udp-cost: the group
 * program's packet rate and run time, in mode flow, quic-lb or none
 * (bench/udp_cost.c). Options, tables and JSON here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cli.h"
#include "udp_bench.h"

struct udp_cfg {
	struct udp_bench_opts o;
	bool run[UB_NSTRATEGIES];
	uint64_t phases, count;
	int cost_mode;	 /* udp-cost: enum sockmig_udp_mode */
	uint8_t key[16]; /* udp-cost --quic-key-file: mode quic-lb, encrypted */
	bool has_key;
	uint64_t cid_len; /* udp-cost --cid-len, mode quic-lb (0: the default) */
	bool echo;	  /* udp-cost --echo: round trips */
	uint64_t senders; /* udp-cost --senders: the contended phase's */
};

static void udp_usage(FILE *f)
{
	fprintf(f, "Usage: sockmig bench udp [OPTIONS], sockmig bench udp-cost [OPTIONS]\n"
		   "  -f, --flows N          udp: concurrent flows (1-50000, default 1000)\n"
		   "      --rate D           udp: datagrams/s per flow (1-1000, default 10)\n"
		   "      --flip-ms F        udp: a flip every F ms (10-600000, default 200)\n"
		   "  -t, --seconds S        udp: seconds of load per strategy (1-3600, default "
		   "10)\n"
		   "      --flow-ms L        udp: a flow's life in ms (10-3600000, default "
		   "1000)\n"
		   "      --grace-ms G       udp: an old generation closes G ms after its flip "
		   "(0-3600000, default 2000)\n"
		   "  -s, --strategies LIST  udp: of naive, flow, none, quic-lb (default "
		   "naive,flow,none)\n"
		   "      --rebind-ms R      udp: a flow moves to a new source port every R "
		   "ms (0: never, else 10-3600000; default 0)\n"
		   "      --phases N         udp-cost: phases in pairs (2-64, default 10)\n"
		   "  -n, --count N          udp-cost: datagrams per phase (1000-100000000, "
		   "default 200000)\n"
		   "  -m, --mode M           udp-cost: the group's mode, flow, quic-lb or none "
		   "(default flow)\n"
		   "      --quic-key-file F  udp-cost, mode quic-lb: encrypted CIDs, the "
		   "16-octet key in F (0600)\n"
		   "      --cid-len L        udp-cost, mode quic-lb: CIDs of L octets (8-20, "
		   "default 8; 17 encrypted: single pass)\n"
		   "      --echo             udp-cost: the group answers every datagram; the "
		   "rate is of round trips\n"
		   "      --senders N        udp-cost: also the program's run time with N "
		   "senders at once, one per CPU (2-64)\n"
		   "  -j, --json             JSON output\n"
		   "  -h, --help             this text\n");
}

static int parse_args(struct udp_cfg *c, const char *mode, int argc, char **argv)
{
	uint64_t flows = c->o.flows, rate = c->o.rate, flip = c->o.flip_ms, secs = c->o.secs,
		 life = c->o.flow_ms, grace = c->o.grace_ms, rebind = c->o.rebind_ms;
	const char *strategies = NULL, *mode_name = NULL, *key_file = NULL;
	const struct cli_opt opts[] = {
		{"flows", 'f', CLI_U64, &flows, 1, 50000},
		{"rate", CLI_LONG_ONLY('R'), CLI_U64, &rate, 1, 1000},
		{"flip-ms", CLI_LONG_ONLY('F'), CLI_U64, &flip, 10, 600000},
		{"seconds", 't', CLI_U64, &secs, 1, 3600},
		{"flow-ms", CLI_LONG_ONLY('L'), CLI_U64, &life, 10, 3600000},
		{"grace-ms", CLI_LONG_ONLY('G'), CLI_U64, &grace, 0, 3600000},
		{"strategies", 's', CLI_STR, &strategies},
		{"phases", CLI_LONG_ONLY('P'), CLI_U64, &c->phases, 2, 64},
		{"count", 'n', CLI_U64, &c->count, 1000, 100000000},
		{"rebind-ms", CLI_LONG_ONLY('B'), CLI_U64, &rebind, 0, 3600000},
		{"mode", 'm', CLI_STR, &mode_name},
		{"quic-key-file", CLI_LONG_ONLY('K'), CLI_STR, &key_file},
		{"cid-len", CLI_LONG_ONLY('C'), CLI_U64, &c->cid_len, 8, 20},
		{"echo", CLI_LONG_ONLY('E'), CLI_FLAG, &c->echo},
		{"senders", CLI_LONG_ONLY('S'), CLI_U64, &c->senders, 2, UDP_COST_SENDERS_MAX},
		{0},
	};
	int n = cli_parse(strcmp(mode, "udp") == 0 ? "bench udp" : "bench udp-cost", argc, argv,
			  opts, 0, udp_usage);

	if (n == 0)
		exit(0);
	if (n < 0 ||
	    (strategies && !bench_strategies(strategies, udp_strategy_parse, c->run, UB_NSTRATEGIES,
					     "UDP ", "naive, flow, none, quic-lb")))
		return -1;
	if (rebind && rebind < 10) {
		cli_error("--rebind-ms: %llu ms: 0 (never) or 10 to 3600000",
			  (unsigned long long)rebind);
		return -1;
	}
	if (mode_name) {
		if (strcmp(mode_name, "flow") == 0)
			c->cost_mode = SOCKMIG_UDP_MODE_FLOW;
		else if (strcmp(mode_name, "quic-lb") == 0)
			c->cost_mode = SOCKMIG_UDP_MODE_QUIC_LB;
		else if (strcmp(mode_name, "none") == 0)
			c->cost_mode = SOCKMIG_UDP_MODE_NONE;
		else {
			cli_error("--mode: '%s' is no mode (flow, quic-lb, none)", mode_name);
			return -1;
		}
	}
	if (c->cid_len &&
	    (strcmp(mode, "udp-cost") != 0 || c->cost_mode != SOCKMIG_UDP_MODE_QUIC_LB)) {
		cli_error("--cid-len: for bench udp-cost --mode quic-lb only");
		return -1;
	}
	if (c->echo && strcmp(mode, "udp-cost") != 0) {
		cli_error("--echo: for bench udp-cost only");
		return -1;
	}
	if (c->senders && strcmp(mode, "udp-cost") != 0) {
		cli_error("--senders: for bench udp-cost only");
		return -1;
	}
	if (key_file) {
		/* bench udp has no use for it: refused, not read and ignored */
		if (strcmp(mode, "udp-cost") != 0 || c->cost_mode != SOCKMIG_UDP_MODE_QUIC_LB) {
			cli_error("--quic-key-file: for bench udp-cost --mode quic-lb only");
			return -1;
		}
		if (cli_quic_key_file(key_file, c->key) < 0)
			return -1;
		c->has_key = true;
	}
	c->o.flows = (uint32_t)flows;
	c->o.rate = (uint32_t)rate;
	c->o.flip_ms = (uint32_t)flip;
	c->o.secs = (uint32_t)secs;
	c->o.flow_ms = (uint32_t)life;
	c->o.grace_ms = (uint32_t)grace;
	c->o.rebind_ms = (uint32_t)rebind;
	if (c->o.grace_ms / c->o.flip_ms + 2 > UB_MAX_LIVE) {
		cli_error("--grace-ms: %u ms keeps more than %d generations alive at a flip every "
			  "%u ms",
			  c->o.grace_ms, UB_MAX_LIVE, c->o.flip_ms);
		return -1;
	}
	if (udp_bench_flows_total(&c->o) <= UB_MAX_FLOWS_TOTAL &&
	    udp_bench_tuples_total(&c->o) > UB_MAX_FLOWS_TOTAL) {
		cli_error("--rebind-ms: %u flows moved every %u ms for %u s use more than %llu "
			  "4-tuples",
			  c->o.flows, c->o.rebind_ms, c->o.secs, UB_MAX_FLOWS_TOTAL);
		return -1;
	}
	if (udp_bench_flows_total(&c->o) > UB_MAX_FLOWS_TOTAL) {
		cli_error("--flows: %u flows renewed every %u ms for %u s make more than %llu "
			  "flows",
			  c->o.flows, c->o.flow_ms, c->o.secs, UB_MAX_FLOWS_TOTAL);
		return -1;
	}
	return 0;
}

static void json_udp(const char *name, const struct udp_bench_result *r)
{
	jw_open(NULL, '{');
	jw_str("strategy", name);
	jw_u64("flows", r->flows);
	jw_u64("sent", r->sent);
	jw_u64("send_errors", r->send_errors);
	jw_u64("received", r->received);
	jw_u64("misroutes", r->misroutes);
	jw_u64("lost", r->lost);
	jw_u64("flips", r->flips);
	jw_u64("closed", r->closed);
	jw_u64("UdpRcvbufErrors", r->rcvbuf_errors);
	jw_u64("UdpInErrors", r->in_errors);
	jw_u64("group_new_flows", r->new_flows);
	jw_u64("group_flow_hits", r->flow_hits);
	jw_u64("group_fallbacks", r->fallbacks);
	jw_u64("group_stateless", r->stateless);
	jw_u64("group_kernel_hash", r->kernel_hash);
	jw_f64("elapsed_s", r->elapsed);
	jw_u64("rebinds", r->rebinds);
	jw_u64("cids_sent", r->cids);
	jw_u64("group_cid_hits", r->cid_hits);
	jw_u64("group_cid_stale", r->cid_stale);
	jw_u64("group_cid_other", r->cid_other);
	jw_close('}');
}

static void print_table(const struct udp_bench_result *r, const bool *on)
{
	printf("%-30s", "");
	for (int i = 0; i < UB_NSTRATEGIES; i++)
		if (on[i])
			printf(" %12s", udp_strategy_str((enum udp_strategy)i));
	printf("\n");
#define ROW(label, field)                                                                          \
	do {                                                                                       \
		printf("%-30s", label);                                                            \
		for (int i_ = 0; i_ < UB_NSTRATEGIES; i_++)                                        \
			if (on[i_])                                                                \
				printf(" %12llu", (unsigned long long)r[i_].field);                \
		printf("\n");                                                                      \
	} while (0)
	ROW("flows", flows);
	ROW("datagrams sent", sent);
	ROW("send errors", send_errors);
	ROW("datagrams received", received);
	ROW("MISROUTES (not the owner)", misroutes);
	ROW("LOST (sent, never read)", lost);
	ROW("flips", flips);
	ROW("generations closed", closed);
	ROW("UdpRcvbufErrors", rcvbuf_errors);
	ROW("UdpInErrors", in_errors);
	ROW("group: new flows", new_flows);
	ROW("group: flow hits", flow_hits);
	ROW("group: fallbacks", fallbacks);
	ROW("group: stateless", stateless);
	ROW("group: kernel hash", kernel_hash);
	ROW("rebindings (new source port)", rebinds);
	ROW("quic-lb: CIDs sent", cids);
	ROW("group: CID hits", cid_hits);
	ROW("group: CID stale", cid_stale);
	ROW("group: no CID (as flow)", cid_other);
#undef ROW
}

static int bench_udp_flows(struct udp_cfg *c)
{
	struct udp_bench_result r[UB_NSTRATEGIES];
	struct utsname u;
	int ret = 0;

	memset(r, 0, sizeof(r));
	uname(&u);
	if (!json_output)
		printf("sockmig bench udp: %u flows on 127.0.0.1 port %d, %u datagrams/s each, a "
		       "flow lives %u ms;\na flip every %u ms, old generations closed %u ms "
		       "after their flip, %u s per strategy;\nkernel %s, %ld CPUs\n",
		       c->o.flows, c->o.port, c->o.rate, c->o.flow_ms, c->o.flip_ms, c->o.grace_ms,
		       c->o.secs, u.release, sysconf(_SC_NPROCESSORS_ONLN));
	if (!json_output && c->o.rebind_ms)
		printf("a flow moves to a new source port every %u ms (NAT rebinding)\n",
		       c->o.rebind_ms);
	if (!json_output)
		printf("\n");
	for (int i = 0; i < UB_NSTRATEGIES; i++) {
		if (!c->run[i])
			continue;
		c->o.strategy = (enum udp_strategy)i;
		if (udp_bench_run(&c->o, &r[i]) < 0) {
			cli_error("bench udp (%s): %s", udp_strategy_str(c->o.strategy),
				  r[i].error);
			return 1;
		}
	}
	if (json_output) {
		jw_open(NULL, '{');
		jw_str("mode", "udp");
		jw_u64("flows", c->o.flows);
		jw_u64("rate", c->o.rate);
		jw_u64("flip_ms", c->o.flip_ms);
		jw_u64("seconds", c->o.secs);
		jw_u64("flow_ms", c->o.flow_ms);
		jw_u64("grace_ms", c->o.grace_ms);
		jw_u64("rebind_ms", c->o.rebind_ms);
		jw_open("strategies", '[');
		for (int i = 0; i < UB_NSTRATEGIES; i++)
			if (c->run[i])
				json_udp(udp_strategy_str((enum udp_strategy)i), &r[i]);
		jw_close(']');
		jw_close('}');
		jw_end();
	} else {
		print_table(r, c->run);
	}
	/* the flow strategy must not lose a flow's datagrams to another socket
	 * (unless flows move: a new 4-tuple is a new flow to it), quic-lb never */
	if (c->run[UB_FLOW] && !c->o.rebind_ms && (r[UB_FLOW].misroutes || r[UB_FLOW].lost))
		ret = 1;
	if (c->run[UB_QUIC_LB] && (r[UB_QUIC_LB].misroutes || r[UB_QUIC_LB].lost))
		ret = 1;
	return ret;
}

static int bench_udp_cost(struct udp_cfg *c)
{
	const char *mode = c->has_key ? "quic-lb-enc"
				      : sockmig_udp_mode_str((enum sockmig_udp_mode)c->cost_mode);
	/* the CIDs' length in mode quic-lb (the group's default without
	 * --cid-len), 0 in the others */
	uint32_t cid_len = c->cost_mode != SOCKMIG_UDP_MODE_QUIC_LB ? 0
			   : c->cid_len				    ? (uint32_t)c->cid_len
								    : SOCKMIG_QUIC_CID_DEFAULT;
	const char *unit = c->echo ? "round trips/s" : "datagrams/s";
	struct udp_cost_result r;
	double ns = 0, empty = 0, sel = 0, con = 0;
	int err;

	if (!json_output) {
		printf("sockmig bench udp-cost: one flow at 2 sockets of a UDP group in mode %s, ",
		       mode);
		if (cid_len)
			printf("CIDs of %u octets, ", cid_len);
		if (c->echo)
			printf("every datagram answered (at most %d unanswered), ",
			       UDP_COST_ECHO_WINDOW);
		printf("%llu datagrams per phase, %llu phases in pairs off-on, on-off, ... after "
		       "one not counted (off = no program; on = the group's program)\n\n",
		       (unsigned long long)c->count, (unsigned long long)c->phases);
	}
	err = udp_cost_run(c->o.port, (int)c->phases, c->count, c->cost_mode, (uint32_t)c->cid_len,
			   c->has_key ? c->key : NULL, c->echo, (int)c->senders, &r);
	explicit_bzero(c->key, sizeof(c->key));
	if (err < 0) {
		cli_error("bench udp-cost: %s", r.error);
		return 1;
	}
	ns = r.runs ? (double)r.ns / (double)r.runs : 0;
	empty = r.empty_runs ? (double)r.empty_ns / (double)r.empty_runs : 0;
	sel = r.sel_runs ? (double)r.sel_ns / (double)r.sel_runs : 0;
	con = r.con_runs ? (double)r.con_ns / (double)r.con_runs : 0;
	if (json_output) {
		jw_open(NULL, '{');
		jw_str("mode", "udp-cost");
		jw_str("group_mode", mode);
		jw_u64("cid_len", cid_len);
		jw_bool("echo", c->echo);
		jw_bool("bpf_stats_were_on", r.stats_were_on);
		jw_u64("rate_phase_runs", r.rate_runs);
		jw_u64("count", c->count);
		bench_phases_json(&r.ph);
		jw_f64("ratio_pooled", r.ph.ratio_pooled);
		jw_u64("lost", r.lost);
		jw_f64("flow_ns_per_datagram", ns);
		jw_u64("flow_runs", r.runs);
		jw_f64("empty_ns_per_datagram", empty);
		jw_u64("empty_runs", r.empty_runs);
		jw_f64("select_ns_per_datagram", sel);
		jw_u64("select_runs", r.sel_runs);
		jw_u64("select_lost", r.sel_lost);
		jw_f64("flow_above_select_ns_per_datagram", ns - sel);
		jw_u64("group_flow_hits", r.flow_hits);
		jw_u64("group_quic_hits", r.quic_hits);
		jw_u64("senders", (uint64_t)(r.senders > 1 ? r.senders : 1));
		if (r.senders > 1) {
			jw_u64("senders_cpus", (uint64_t)r.con_cpus);
			jw_u64("senders_sent", r.con_sent);
			jw_u64("senders_runs", r.con_runs);
			jw_f64("senders_ns_per_datagram", con);
		}
		jw_close('}');
		jw_end();
		return 0;
	}
	if (r.stats_were_on)
		printf("note: the kernel's BPF statistics were on during the rate phases (%llu "
		       "runs counted; kernel.bpf_stats_enabled, or another process): the rates "
		       "with a program include their clock reads\n",
		       (unsigned long long)r.rate_runs);
	bench_phases_print(&r.ph, unit);
	printf("\nno program      %10.0f %s\n"
	       "%-7s program %10.0f %s\n"
	       "ratio           %10.3f (median of %d pairs' ratios)\n"
	       "lost            %10llu\n"
	       "\n%-7s program ns/datagram  %8.1f over %llu runs\n"
	       "empty   program ns/datagram  %8.1f over %llu runs (the floor)\n"
	       "select-only     ns/datagram  %8.1f over %llu runs, %llu lost (the least "
	       "steering program)\n",
	       r.ph.rate_off, unit, mode, r.ph.rate_on, unit, r.ph.ratio, r.ph.pairs,
	       (unsigned long long)r.lost, mode, ns, (unsigned long long)r.runs, empty,
	       (unsigned long long)r.empty_runs, sel, (unsigned long long)r.sel_runs,
	       (unsigned long long)r.sel_lost);
	if (r.senders > 1)
		printf("%-7s program ns/datagram  %8.1f over %llu runs, %d senders at once on %d "
		       "CPUs\n",
		       mode, con, (unsigned long long)r.con_runs, r.senders, r.con_cpus);
	printf("\nempty program %.1f ns/run, select-only program %.1f ns/run, %s %.1f ns/run "
	       "(%+.1f above the least steering program)\n",
	       empty, sel, mode, ns, ns - sel);
	return 0;
}

int bench_udp(const char *mode, int argc, char **argv)
{
	struct udp_cfg c = {
		.o = {.port = 4433,
		      .flows = 1000,
		      .rate = 10,
		      .flip_ms = 200,
		      .secs = 10,
		      .flow_ms = 1000,
		      .grace_ms = 2000},
		.run = {true, true, true},
		.phases = 10,
		.count = 200000,
		.cost_mode = SOCKMIG_UDP_MODE_FLOW,
	};

	if (parse_args(&c, mode, argc, argv) < 0)
		return 2;
	if (geteuid() != 0) {
		cli_error("bench %s needs root (network namespaces and BPF)", mode);
		return 1;
	}
	if (strcmp(mode, "udp") == 0)
		return bench_udp_flows(&c);
	return bench_udp_cost(&c);
}
