/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The benchmark's reference server and its restart storm.
 *
 * A supervisor (the calling process) keeps N worker processes in one
 * SO_REUSEPORT group on loopback, pre-fork style: it creates each worker's
 * listener, forks the worker, which serves a fixed reply to every
 * connection (read the request, answer, close), and keeps its own copy of
 * the listener. A restart replaces the oldest worker: a new listener and a
 * new worker of the next generation first, then the old one goes the way
 * the strategy says:
 *   naive   close the old listener (tcp_migrate_req=0): its queue is reset;
 *   sysctl  the same with net.ipv4.tcp_migrate_req=1;
 *   policy  sockmig_member_drain() (no new SYN, shutdown, queue migrated
 *           under the policy to the newest generation), then close.
 *   legacy  the legacy policy (nothing migrates, tcp_migrate_req=0): the old
 *           worker, on SIGTERM, drains its own listener with
 *           sockmig_member_drain_legacy() and serves what it accepted;
 *   attach  close the old listener as naive does (no sockmig in the server),
 *           with a `sockmig attach --port P` daemon beside it: attach holds
 *           every registered listener and drains it when its owners let go;
 *   shim    each worker is exec'd (`__storm-worker`) under the preload shim
 *           with a listener of its own; the old one is stopped and closes
 *           its listener without warning: the shim makes that close a drain.
 * Meanwhile a forked load generator makes one new connection per request.
 * Everything runs in a network namespace of its own, made by storm_run().
 */
#ifndef SOCKMIG_BENCH_STORM_H
#define SOCKMIG_BENCH_STORM_H

#include <stdbool.h>
#include <stdint.h>

#include "loadgen.h"
#include "phases.h"
#include "sockmig.h"

enum storm_strategy {
	ST_NAIVE,
	ST_SYSCTL,
	ST_POLICY,
	ST_STOPSTART, /* every worker stops, a gap, every worker starts: nothing else */
	ST_HOLDER,    /* the same with sockmig's holder in the group */
	ST_RUN,	      /* the workers under `sockmig run`, SIGHUP per restart */
	ST_LEGACY,    /* legacy policy: each old worker drains itself (storm_legacy.h) */
	ST_HANDOFF,   /* `sockmig run --handoff --stop-start`: no BPF, run keeps the listener */
	ST_ATTACH,    /* naive closes, protected by a `sockmig attach` daemon only */
	ST_SHIM,      /* exec'd workers under libsockmig-preload.so, naive closes */
	ST_NSTRATEGIES
};

const char *storm_strategy_str(enum storm_strategy s);
/* -1 if @name is no strategy. */
int storm_strategy_parse(const char *name);

struct storm_opts {
	enum storm_strategy strategy;
	int family;
	int port;
	int workers;	      /* in the group at any time */
	double restart_rate;  /* worker restarts per second; 0: none */
	uint64_t max_conns;   /* load bound 1 */
	double max_secs;      /* load bound 2 */
	uint32_t concurrency; /* connections in flight */
	uint32_t rate;	      /* new connections per second; 0: closed loop */
	bool progress;	      /* a progress line on stderr */
	int gap_ms;	      /* stopstart/holder: nobody listens this long */
	char preload[512];    /* shim: libsockmig-preload.so */
};

struct storm_result {
	struct lg_result load;
	uint64_t restarts;
	uint64_t restart_errors;
	/* from "drain it" to its queue migrated and closed; attach: from the
	 * server's close to attach's drain done; shim: the server's close() */
	struct lg_hist drain_us;
	struct lg_hist release_us; /* attach: from the server's close to the drain's start */
	uint64_t policy_migrated;
	uint64_t policy_cancelled;
	uint64_t legacy_accepted;	/* legacy: connections the drains accepted */
	uint64_t legacy_inflight;	/* legacy: handshakes in flight at the drains */
	uint64_t legacy_abandoned;	/* legacy: left at a deadline */
	uint64_t attach_unregistered;	/* attach: closed before it registered them */
	uint64_t attach_cpu_ms;		/* attach: its user + system CPU time over the run */
	struct sockmig_netstat netstat; /* TcpExt delta over the run */
	char error[200];
};

/* `sockmig __storm-worker FAMILY PORT [report]` (FAMILY 4 or 6): one worker
 * of the run and shim strategies, with a listener of its own; stops as on
 * SIGTERM when its parent (sockmig run, the storm) dies. With @report, it
 * writes "ready PID COOKIE" on stderr once it listens and "closed PID US"
 * once its listener's close() returned. Does not return. */
void storm_worker(int family, int port, bool report);

/* Run one strategy in a forked child with its own network namespace.
 * Returns 0, or -1 with r->error set. */
int storm_run(const struct storm_opts *o, struct storm_result *r);

/*
 * Policy cost: the same N workers, no restarts, a closed-loop load of
 * phase_secs per phase. A first phase with no program does not count (the
 * namespace's first connections find no TIME_WAIT on their 4-tuples); then
 * @phases phases in pairs (phases.h) between no program (the kernel's hash)
 * and sockmig's policy. The program's own
 * cost comes from the kernel's BPF statistics (enabled for the run): syn_ns
 * over syn_runs is its run time per SYN over the "on" phases; empty_ns over
 * empty_runs the same for a program that only returns SK_PASS, in one more
 * phase (the floor: the call and the statistics' own clock reads); sel_ns
 * over sel_runs for the least steering program (ph_select_prog(): one
 * bpf_sk_select_reuseport() into an array of the workers' listeners, taken
 * out of the group first), in a phase after it, where sel_failed
 * connections failed (its helper failing drops the SYN); mig_ns
 * over mig_runs per migrated child, in a last step where members with full
 * accept queues close (migrated: the children the policy counted there).
 * failed counts the failed connections of every phase.
 */
struct cost_result {
	struct phases ph; /* in connections per second */
	uint64_t failed;
	uint64_t syn_ns, syn_runs;
	uint64_t empty_ns, empty_runs;
	uint64_t sel_ns, sel_runs, sel_failed;
	uint64_t mig_ns, mig_runs, migrated;
	char error[200];
};
int storm_cost(const struct storm_opts *o, int phases, double phase_secs, struct cost_result *r);

#endif
