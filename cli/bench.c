// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig bench: the reload-storm benchmark (bench/storm.c) for every
 * strategy side by side in one run, the policy's cost against the kernel's
 * hash, and how both scale with the number of workers.
 *
 *   sockmig bench [storm] [OPTIONS]   strategies side by side (default)
 *   sockmig bench cost [OPTIONS]      accept rate, policy on / off, in pairs
 *   sockmig bench scale [OPTIONS]     policy storm for 2 to 64 workers
 *   sockmig bench udp [OPTIONS]       UDP groups under flips (cli/bench_udp.c)
 *   sockmig bench udp-cost [OPTIONS]  UDP packet rate, flow program on / off
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cli.h"
#include "storm.h"
#include "udp_bench.h"

struct bench_cfg {
	struct storm_opts o;
	bool run[ST_NSTRATEGIES];
	bool short_run;
	uint64_t phases;
	uint64_t phase_secs;
};

static void bench_usage(FILE *f)
{
	fprintf(f, "Usage: sockmig bench [storm|cost|scale] [OPTIONS]\n"
		   "       sockmig bench udp|udp-cost [OPTIONS] (sockmig bench udp --help)\n"
		   "  -w, --workers N        workers in the group (1-256, default 4)\n"
		   "  -n, --conns N          connections per strategy at most (1-100000000, "
		   "default 200000)\n"
		   "  -t, --secs S           seconds per strategy at most (1-3600, default 10)\n"
		   "  -r, --restart-rate R   worker restarts per second (0-1000, default 20)\n"
		   "  -c, --concurrency C    connections in flight (1-10000, default 64)\n"
		   "      --rate R           new connections per second (0-10000000, default 0: "
		   "closed loop)\n"
		   "  -s, --strategies LIST  comma-separated: naive sysctl policy stopstart holder "
		   "run "
		   "legacy handoff attach shim (default naive,sysctl,policy; --short: all)\n"
		   "  -6, --ipv6             IPv6 (::1) instead of 127.0.0.1\n"
		   "      --phases N         cost: alternating phases (2-64, default 10)\n"
		   "      --phase-secs S     cost: seconds per phase (1-600, default 3)\n"
		   "      --short            the short run of make bench (under a minute)\n"
		   "      --gap MS           stopstart, holder: ms with no server listening "
		   "(0-10000, default 0)\n"
		   "  -j, --json             JSON output\n"
		   "  -h, --help             this text\n");
}

bool bench_strategies(const char *arg, int (*parse)(const char *name), bool *run, int n,
		      const char *kind, const char *names)
{
	char *dup = strdup(arg), *tok, *save = NULL;
	int given = 0;

	memset(run, 0, (size_t)n * sizeof(run[0]));
	for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int s = parse(tok);

		if (s < 0 || s >= n) {
			cli_error("--strategies: unknown %sstrategy '%s' (%s)", kind, tok, names);
			free(dup);
			return false;
		}
		run[s] = true;
		given++;
	}
	free(dup);
	if (!given)
		cli_error("--strategies: empty list");
	return given > 0;
}

static int parse_args(struct bench_cfg *c, int argc, char **argv)
{
	uint64_t workers = (uint64_t)c->o.workers, secs = (uint64_t)c->o.max_secs,
		 restart = (uint64_t)c->o.restart_rate, conc = c->o.concurrency, rate = c->o.rate,
		 gap = (uint64_t)c->o.gap_ms;
	const char *strategies = NULL;
	bool ipv6 = false;
	const struct cli_opt opts[] = {
		{"workers", 'w', CLI_U64, &workers, 1, 256},
		{"conns", 'n', CLI_U64, &c->o.max_conns, 1, 100000000},
		{"secs", 't', CLI_U64, &secs, 1, 3600},
		{"restart-rate", 'r', CLI_U64, &restart, 0, 1000},
		{"concurrency", 'c', CLI_U64, &conc, 1, 10000},
		{"rate", CLI_LONG_ONLY('R'), CLI_U64, &rate, 0, 10000000},
		{"strategies", 's', CLI_STR, &strategies},
		{"ipv6", '6', CLI_FLAG, &ipv6},
		{"phases", CLI_LONG_ONLY('P'), CLI_U64, &c->phases, 2, 64},
		{"phase-secs", CLI_LONG_ONLY('T'), CLI_U64, &c->phase_secs, 1, 600},
		{"short", CLI_LONG_ONLY('S'), CLI_FLAG, &c->short_run},
		{"gap", CLI_LONG_ONLY('G'), CLI_U64, &gap, 0, 10000},
		{0},
	};
	int n = cli_parse("bench", argc, argv, opts, 0, bench_usage);

	if (n == 0)
		exit(0);
	if (n < 0 ||
	    (strategies &&
	     !bench_strategies(strategies, storm_strategy_parse, c->run, ST_NSTRATEGIES, "",
			       "naive, sysctl, policy, stopstart, holder, run, "
			       "legacy, handoff, attach, shim")))
		return -1;
	c->o.workers = (int)workers;
	c->o.max_secs = (double)secs;
	c->o.restart_rate = (double)restart;
	c->o.concurrency = (uint32_t)conc;
	c->o.rate = (uint32_t)rate;
	c->o.family = ipv6 ? AF_INET6 : c->o.family;
	c->o.gap_ms = (int)gap;
	return 0;
}

static uint64_t failed_of(const struct lg_result *l)
{
	return l->started - l->count[LG_OK];
}

static void print_header(const struct bench_cfg *c, const char *what)
{
	struct utsname u;

	uname(&u);
	printf("sockmig bench %s: %d workers on %s port %d, one new connection per request,\n"
	       "concurrency %u, restarts %.0f/s, at most %llu connections or %.0f s per run;\n"
	       "kernel %s, %ld CPUs\n\n",
	       what, c->o.workers, c->o.family == AF_INET6 ? "::1" : "127.0.0.1", c->o.port,
	       c->o.concurrency, c->o.restart_rate, (unsigned long long)c->o.max_conns,
	       c->o.max_secs, u.release, sysconf(_SC_NPROCESSORS_ONLN));
}

static void json_hist(const char *key, const struct lg_hist *h)
{
	jw_open(key, '{');
	jw_u64("n", h->n);
	jw_u64("p50", lg_hist_value_at(h, 50));
	jw_u64("p99", lg_hist_value_at(h, 99));
	jw_u64("p99.9", lg_hist_value_at(h, 99.9));
	jw_u64("max", lg_hist_max(h));
	jw_close('}');
}

static void json_storm(const char *name, const struct storm_result *r)
{
	jw_open(NULL, '{');
	jw_str("strategy", name);
	jw_u64("connections", r->load.started);
	jw_u64("restarts", r->restarts);
	jw_u64("restart_errors", r->restart_errors);
	jw_open("outcomes", '{');
	for (int k = 0; k < LG_NOUTCOMES; k++)
		jw_u64(lg_outcome_str((enum lg_outcome)k), r->load.count[k]);
	jw_close('}');
	jw_u64("failed", failed_of(&r->load));
	jw_f64("elapsed_s", r->load.elapsed);
	jw_f64("accept_rate", (double)r->load.count[LG_OK] / r->load.elapsed);
	json_hist("connect_us", &r->load.connect_us);
	json_hist("reply_us", &r->load.reply_us);
	json_hist("drain_us", &r->drain_us);
	jw_open("kernel", '{');
	jw_netstat(&r->netstat);
	jw_close('}');
	jw_u64("policy_migrated", r->policy_migrated);
	jw_u64("policy_cancelled", r->policy_cancelled);
	jw_u64("legacy_accepted", r->legacy_accepted);
	jw_u64("legacy_inflight", r->legacy_inflight);
	jw_u64("legacy_abandoned", r->legacy_abandoned);
	jw_u64("attach_unregistered", r->attach_unregistered);
	jw_u64("attach_cpu_ms", r->attach_cpu_ms);
	jw_close('}');
}

#define NCOL ST_NSTRATEGIES

static void row_u64(const char *label, const uint64_t *v, const bool *on)
{
	printf("%-30s", label);
	for (int i = 0; i < NCOL; i++)
		if (on[i])
			printf(" %12llu", (unsigned long long)v[i]);
	printf("\n");
}

static void print_storm_table(struct storm_result *r, const bool *on)
{
	uint64_t v[NCOL];
	static const char *const outcome_labels[LG_NOUTCOMES] = {
		"ok",
		"refused",
		"reset before request",
		"reset after request",
		"EOF before the reply",
		"timeout",
		"other error",
	};
	static const double pcts[] = {50, 99, 99.9};
	char label[64];

	printf("%-30s", "");
	for (int i = 0; i < NCOL; i++)
		if (on[i])
			printf(" %12s", storm_strategy_str((enum storm_strategy)i));
	printf("\n");
#define ROW(label, expr)                                                                           \
	do {                                                                                       \
		for (int i_ = 0; i_ < NCOL; i_++)                                                  \
			v[i_] = on[i_] ? (uint64_t)(expr) : 0;                                     \
		row_u64(label, v, on);                                                             \
	} while (0)
	ROW("connections", r[i_].load.started);
	ROW("worker restarts", r[i_].restarts);
	ROW("restart errors", r[i_].restart_errors);
	for (int k = 0; k < LG_NOUTCOMES; k++)
		ROW(outcome_labels[k], r[i_].load.count[k]);
	ROW("FAILED (not ok)", failed_of(&r[i_].load));
	ROW("accept rate (conn/s)", (double)r[i_].load.count[LG_OK] / r[i_].load.elapsed);
	for (int p = 0; p < 3; p++) {
		snprintf(label, sizeof(label), "connect p%g (us)", pcts[p]);
		ROW(label, lg_hist_value_at(&r[i_].load.connect_us, pcts[p]));
	}
	for (int p = 0; p < 3; p++) {
		snprintf(label, sizeof(label), "reply p%g (us)", pcts[p]);
		ROW(label, lg_hist_value_at(&r[i_].load.reply_us, pcts[p]));
	}
	ROW("reply max (us)", lg_hist_max(&r[i_].load.reply_us));
	ROW("drains", r[i_].drain_us.n);
	ROW("drain p50 (us)", lg_hist_value_at(&r[i_].drain_us, 50));
	ROW("drain p99 (us)", lg_hist_value_at(&r[i_].drain_us, 99));
	ROW("attach: close to drain p50 (us)", lg_hist_value_at(&r[i_].release_us, 50));
	ROW("attach: close to drain p99 (us)", lg_hist_value_at(&r[i_].release_us, 99));
	ROW("TCPMigrateReqSuccess", r[i_].netstat.migrate_success);
	ROW("TCPMigrateReqFailure", r[i_].netstat.migrate_failure);
	ROW("ListenDrops", r[i_].netstat.listen_drops);
	ROW("ListenOverflows", r[i_].netstat.listen_overflows);
	ROW("EmbryonicRsts", r[i_].netstat.embryonic_rsts);
	ROW("TCPAbortOnClose", r[i_].netstat.abort_on_close);
	ROW("policy: migrated", r[i_].policy_migrated);
	ROW("policy: cancelled", r[i_].policy_cancelled);
	ROW("legacy: accepted by drains", r[i_].legacy_accepted);
	ROW("legacy: in flight at drains", r[i_].legacy_inflight);
	ROW("legacy: abandoned", r[i_].legacy_abandoned);
	ROW("attach: never registered", r[i_].attach_unregistered);
	ROW("attach: CPU (ms)", r[i_].attach_cpu_ms);
#undef ROW
}

static int bench_storm(struct bench_cfg *c)
{
	struct storm_result *r = calloc(NCOL, sizeof(*r));
	int ret = 0;

	if (!r)
		return 1;
	if (!json_output)
		print_header(c, "storm");
	for (int i = 0; i < NCOL; i++) {
		if (!c->run[i])
			continue;
		c->o.strategy = (enum storm_strategy)i;
		if (storm_run(&c->o, &r[i]) < 0) {
			cli_error("bench (%s): %s", storm_strategy_str(c->o.strategy), r[i].error);
			free(r);
			return 1;
		}
	}
	if (json_output) {
		jw_open(NULL, '{');
		jw_str("mode", "storm");
		jw_u64("workers", (uint64_t)c->o.workers);
		jw_u64("concurrency", c->o.concurrency);
		jw_f64("restart_rate", c->o.restart_rate);
		jw_open("strategies", '[');
		for (int i = 0; i < NCOL; i++)
			if (c->run[i])
				json_storm(storm_strategy_str((enum storm_strategy)i), &r[i]);
		jw_close(']');
		jw_close('}');
		jw_end();
	} else {
		print_storm_table(r, c->run);
	}
	/* sockmig's strategies must not fail a connection */
	for (int i = ST_POLICY; i < NCOL; i++)
		if (c->run[i] && i != ST_STOPSTART && failed_of(&r[i].load))
			ret = 1;
	free(r);
	return ret;
}

void bench_phases_json(const struct phases *p)
{
	jw_f64("warmup_rate", p->warmup_rate);
	jw_open("phase_rates", '[');
	for (int i = 0; i < p->phases; i++)
		jw_f64(NULL, p->phase_rate[i]);
	jw_close(']');
	jw_open("phase_on", '[');
	for (int i = 0; i < p->phases; i++)
		jw_bool(NULL, p->phase_on[i]);
	jw_close(']');
	jw_open("pair_ratios", '[');
	for (int i = 0; i < p->pairs; i++)
		jw_f64(NULL, p->pair_ratio[i]);
	jw_close(']');
	jw_f64("rate_off", p->rate_off);
	jw_f64("rate_on", p->rate_on);
	jw_f64("ratio", p->ratio);
}

void bench_phases_print(const struct phases *p, const char *unit)
{
	printf("warm-up   off %10.0f %s (not counted)\n", p->warmup_rate, unit);
	for (int i = 0; i < p->phases; i++) {
		printf("phase %2d  %-3s %10.0f %s", i + 1, p->phase_on[i] ? "on" : "off",
		       p->phase_rate[i], unit);
		if (i % 2 && i / 2 < p->pairs)
			printf("   pair %2d: %.3f", i / 2 + 1, p->pair_ratio[i / 2]);
		printf("\n");
	}
}

static int bench_cost(struct bench_cfg *c)
{
	struct cost_result r;
	double syn_ns, empty_ns, sel_ns, mig_ns;

	if (!json_output)
		printf("sockmig bench cost: %d workers, concurrency %u, %llu phases of %llu s in "
		       "pairs off-on, on-off, ... after one not counted (off = no program, the "
		       "kernel's hash; on = sockmig's policy)\n\n",
		       c->o.workers, c->o.concurrency, (unsigned long long)c->phases,
		       (unsigned long long)c->phase_secs);
	c->o.restart_rate = 0;
	c->o.strategy = ST_POLICY; /* its workers: not the last storm's */
	if (storm_cost(&c->o, (int)c->phases, (double)c->phase_secs, &r) < 0) {
		cli_error("bench cost: %s", r.error);
		return 1;
	}
	syn_ns = r.syn_runs ? (double)r.syn_ns / (double)r.syn_runs : 0;
	mig_ns = r.mig_runs ? (double)r.mig_ns / (double)r.mig_runs : 0;
	empty_ns = r.empty_runs ? (double)r.empty_ns / (double)r.empty_runs : 0;
	sel_ns = r.sel_runs ? (double)r.sel_ns / (double)r.sel_runs : 0;
	if (json_output) {
		jw_open(NULL, '{');
		jw_str("mode", "cost");
		jw_u64("workers", (uint64_t)c->o.workers);
		bench_phases_json(&r.ph);
		jw_f64("ratio_pooled", r.ph.ratio_pooled);
		jw_u64("failed", r.failed);
		jw_f64("policy_ns_per_syn", syn_ns);
		jw_u64("policy_syn_runs", r.syn_runs);
		jw_f64("empty_ns_per_syn", empty_ns);
		jw_u64("empty_syn_runs", r.empty_runs);
		jw_f64("select_ns_per_syn", sel_ns);
		jw_u64("select_syn_runs", r.sel_runs);
		jw_u64("select_failed", r.sel_failed);
		jw_f64("policy_above_select_ns_per_syn", syn_ns - sel_ns);
		jw_f64("policy_ns_per_migration", mig_ns);
		jw_u64("policy_migration_runs", r.mig_runs);
		jw_u64("migrated", r.migrated);
		jw_close('}');
		jw_end();
	} else {
		bench_phases_print(&r.ph, "conn/s");
		printf("\nno program   %10.0f conn/s\npolicy       %10.0f conn/s\n"
		       "pooled ratio %10.3f\n"
		       "ratio        %10.3f (median of %d pairs' ratios; target >= 0.98)\n"
		       "failed       %10llu\n",
		       r.ph.rate_off, r.ph.rate_on, r.ph.ratio_pooled, r.ph.ratio, r.ph.pairs,
		       (unsigned long long)r.failed);
		printf("\npolicy ns/run (SYN)        %8.1f over %llu runs (target <= 60)\n"
		       "empty program ns/run (SYN) %8.1f over %llu runs (the floor)\n"
		       "select-only ns/run (SYN)   %8.1f over %llu runs, %llu failed (the least "
		       "steering program)\n"
		       "policy ns/run (migration)  %8.1f over %llu runs, %llu children migrated\n",
		       syn_ns, (unsigned long long)r.syn_runs, empty_ns,
		       (unsigned long long)r.empty_runs, sel_ns, (unsigned long long)r.sel_runs,
		       (unsigned long long)r.sel_failed, mig_ns, (unsigned long long)r.mig_runs,
		       (unsigned long long)r.migrated);
		printf("\nempty program %.1f ns/run, select-only program %.1f ns/run, policy %.1f "
		       "ns/run (%+.1f above the least steering program)\n",
		       empty_ns, sel_ns, syn_ns, syn_ns - sel_ns);
	}
	return 0;
}

static int bench_scale(struct bench_cfg *c)
{
	static const int counts[] = {2, 4, 8, 16, 32, 64};
	struct storm_result *r = calloc(1, sizeof(*r));

	if (!r)
		return 1;
	c->o.strategy = ST_POLICY;
	if (json_output) {
		jw_open(NULL, '{');
		jw_str("mode", "scale");
		jw_open("runs", '[');
	} else {
		print_header(c, "scale (policy)");
		printf("%8s %12s %10s %10s %12s %12s %12s\n", "workers", "connections", "restarts",
		       "failed", "accept/s", "drain p50 us", "drain p99 us");
	}
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		c->o.workers = counts[i];
		if (storm_run(&c->o, r) < 0) {
			cli_error("bench scale (%d workers): %s", counts[i], r->error);
			free(r);
			return 1;
		}
		if (json_output) {
			jw_open(NULL, '{');
			jw_u64("workers", (uint64_t)counts[i]);
			jw_u64("connections", r->load.started);
			jw_u64("restarts", r->restarts);
			jw_u64("failed", failed_of(&r->load));
			jw_f64("accept_rate", (double)r->load.count[LG_OK] / r->load.elapsed);
			json_hist("drain_us", &r->drain_us);
			jw_close('}');
		} else {
			printf("%8d %12llu %10llu %10llu %12.0f %12llu %12llu\n", counts[i],
			       (unsigned long long)r->load.started, (unsigned long long)r->restarts,
			       (unsigned long long)failed_of(&r->load),
			       (double)r->load.count[LG_OK] / r->load.elapsed,
			       (unsigned long long)lg_hist_value_at(&r->drain_us, 50),
			       (unsigned long long)lg_hist_value_at(&r->drain_us, 99));
			fflush(stdout);
		}
	}
	if (json_output) {
		jw_close(']');
		jw_close('}');
		jw_end();
	}
	free(r);
	return 0;
}

int do_bench(int argc, char **argv)
{
	struct bench_cfg c = {
		.o = {.family = AF_INET,
		      .port = 8080,
		      .workers = 4,
		      .restart_rate = 20,
		      .max_conns = 200000,
		      .max_secs = 10,
		      .concurrency = 64,
		      .progress = true},
		.run = {true, true, true},
		.phases = 10,
		.phase_secs = 3,
	};
	const char *mode = "storm";

	if (argc > 1 && argv[1][0] != '-') {
		mode = argv[1];
		argc--;
		argv++;
	}
	if (strcmp(mode, "udp") == 0 || strcmp(mode, "udp-cost") == 0)
		return bench_udp(mode, argc, argv);
	if (parse_args(&c, argc, argv) < 0)
		return 2;
	/* bad arguments are exit 2 for everyone: check the mode before root */
	if (strcmp(mode, "storm") != 0 && strcmp(mode, "cost") != 0 && strcmp(mode, "scale") != 0) {
		cli_error("bench: unknown mode '%s' (storm, cost, scale, udp, udp-cost)", mode);
		return 2;
	}
	if (geteuid() != 0) {
		cli_error("bench needs root (network namespaces and BPF)");
		return 1;
	}
	if (c.short_run) {
		c.o.max_conns = 100000;
		c.o.max_secs = 5;
		for (int i = 0; i < ST_NSTRATEGIES; i++)
			c.run[i] = true;
		c.phases = 4;
		c.phase_secs = 2;
	}
	if (c.run[ST_SHIM] && !run_find_preload(c.o.preload, sizeof(c.o.preload))) {
		if (!c.short_run) {
			cli_error("bench: the shim strategy needs libsockmig-preload.so (not in "
				  "SOCKMIG_PRELOAD, beside sockmig, in ../lib or %s)",
				  SOCKMIG_PRELOADDIR);
			return 1;
		}
		fprintf(stderr, "bench: no libsockmig-preload.so: the shim strategy is left out\n");
		c.run[ST_SHIM] = false;
	}
	if (strcmp(mode, "storm") == 0) {
		int ret = bench_storm(&c);

		if (ret || !c.short_run || json_output)
			return ret;
		printf("\n");
		return bench_cost(&c);
	}
	if (strcmp(mode, "cost") == 0)
		return bench_cost(&c);
	return bench_scale(&c);
}
