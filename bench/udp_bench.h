/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * sockmig bench udp and udp-cost: UDP groups under generation flips, built
 * on the public API only (<sockmig.h>). The files:
 *   udp_flows.c  the flows bench: a server group of generations, flows of
 *                connected clients, flips; one strategy per run, in a
 *                forked child with a network namespace of its own;
 *   udp_side.c   its server (a thread per generation) and its clients;
 *   udp_cost.c   the packet rate with and without the flow program, and
 *                the program's run time per datagram (bpf_stats).
 * cli/bench_udp.c parses the options and prints the results.
 */
#ifndef SOCKMIG_BENCH_UDP_BENCH_H
#define SOCKMIG_BENCH_UDP_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "phases.h"

enum udp_strategy {
	UB_NAIVE, /* plain SO_REUSEPORT, no program: the kernel's hash */
	UB_FLOW,  /* a UDP group, SOCKMIG_UDP_MODE_FLOW */
	UB_NONE,  /* a UDP group, SOCKMIG_UDP_MODE_NONE (stateless) */
	/* a UDP group, SOCKMIG_UDP_MODE_QUIC_LB: the server mints a connection
	 * ID per flow, the client's later datagrams carry it */
	UB_QUIC_LB,
	UB_NSTRATEGIES
};

const char *udp_strategy_str(enum udp_strategy s);
/* -1 if @name is no strategy. */
int udp_strategy_parse(const char *name);

struct udp_bench_opts {
	enum udp_strategy strategy;
	int port;	   /* the group's, on 127.0.0.1 */
	uint32_t flows;	   /* concurrent flows */
	uint32_t rate;	   /* datagrams per second per flow */
	uint32_t flip_ms;  /* a flip every this many ms */
	uint32_t secs;	   /* the load's length */
	uint32_t flow_ms;  /* a flow's life: then a new flow (new 4-tuple) replaces it */
	uint32_t grace_ms; /* an old generation is closed this long after its flip */
	/* 0, or a flow moves to a new source port this often (NAT rebinding) */
	uint32_t rebind_ms;
};

/* Most generations alive at once (grace_ms / flip_ms + 2 at most). */
#define UB_MAX_LIVE 256
/* Most flows over a run (flows, renewed every flow_ms, for secs). */
#define UB_MAX_FLOWS_TOTAL 8000000ull

/* Flows a run makes in all: each slot's first and its renewals. */
uint64_t udp_bench_flows_total(const struct udp_bench_opts *o);
/* 4-tuples a run uses at most: its flows', and their rebindings'. */
uint64_t udp_bench_tuples_total(const struct udp_bench_opts *o);

struct udp_bench_result {
	uint64_t flows;			   /* flows that sent (each its own 4-tuple) */
	uint64_t sent;			   /* datagrams the clients sent */
	uint64_t send_errors;		   /* send() refused: not sent */
	uint64_t received;		   /* datagrams the server read */
	uint64_t misroutes;		   /* read by a generation that does not own the flow */
	uint64_t lost;			   /* sent, never read */
	uint64_t flips;			   /* new generations bound (and registered) */
	uint64_t closed;		   /* old generations closed after their grace */
	uint64_t rcvbuf_errors, in_errors; /* Udp: deltas of the namespace */
	uint64_t new_flows, flow_hits, fallbacks, stateless, kernel_hash; /* the group's */
	double elapsed;							  /* seconds of load */
	char error[200];
	/* flows moved to a new source port; quic-lb: CIDs minted and sent,
	 * and the group's CID counters (sockmig_quic_stats_read()) */
	uint64_t rebinds, cids;
	uint64_t cid_hits, cid_stale, cid_other;
};

/* One strategy in a forked child with its own network namespace.
 * Returns 0, or -1 with r->error set. */
int udp_bench_run(const struct udp_bench_opts *o, struct udp_bench_result *r);

/*
 * Packet rate: one connected client blasts @count datagrams per phase (at
 * most a window of them unread) at a group of two sockets of one
 * generation in @mode (enum sockmig_udp_mode: flow, none, or quic-lb, where
 * every datagram is a short-header QUIC packet to a CID of the first
 * socket); a first phase with no program does not count, then @phases
 * phases in pairs off-on, on-off, ... (no program / the group's program).
 * Rates in datagrams per second; pair_ratio[p] on over off in pair p, ratio
 * their median. The kernel's BPF statistics are off in these phases (they
 * cost every run two clock reads) and on after them, for the run times:
 * ns/runs: the group's program's over one phase of as many datagrams as
 * the "on" phases had (a minute at most); empty_*: an SK_PASS program's, one more phase of
 * @count (the floor); sel_*: the least steering program's
 * (ph_select_prog() over the two sockets, taken out of the group first),
 * in a phase after it, sel_lost of its datagrams not read (its helper
 * failing drops the datagram). The group's counters are read after the
 * rate phases.
 * @echo: the group's reader sends every datagram back and the client keeps
 * at most UDP_COST_ECHO_WINDOW unanswered; rates are then of answers read by the client
 * (round trips), lost counts datagrams never answered.
 * @senders > 1: after the group's program's run-time phase, one more with
 * the program: @senders threads, each with a socket of its own and pinned
 * to a CPU of its own while there are CPUs, send @count datagrams between
 * them at once, without reading (what the sockets cannot queue is dropped
 * after the program ran): con_* its run time, runs and datagrams sent. In
 * mode quic-lb they all carry the first socket's CID, so that CPUs share
 * its slot; in the others each sender is a flow of its own.
 */
/* --echo: datagrams sent and not answered yet, at most */
#define UDP_COST_ECHO_WINDOW 64
/* --senders: at most */
#define UDP_COST_SENDERS_MAX 64

struct udp_cost_result {
	struct phases ph; /* in datagrams (echo: round trips) per second */
	uint64_t lost;	  /* datagrams sent and not read (echo: not answered), all phases */
	uint64_t ns, runs, empty_ns, empty_runs;
	uint64_t sel_ns, sel_runs, sel_lost;
	/* the group's counters at the end: datagrams routed by their flow,
	 * and (mode quic-lb) by their connection ID */
	uint64_t flow_hits, quic_hits;
	/* the group's program's runs that the statistics counted in the rate
	 * phases: 0 unless something else had them on (kernel.bpf_stats_enabled,
	 * or another process's bpf_enable_stats()); stats_were_on then, or when
	 * the sysctl read 1 before: the rates include the statistics' cost */
	uint64_t rate_runs;
	bool stats_were_on;
	uint64_t con_ns, con_runs, con_sent;
	int senders, con_cpus; /* con_cpus: CPUs the senders were pinned to */
	char error[200];
};
int udp_cost_run(int port, int phases, uint64_t count, int mode, uint32_t cid_len,
		 const uint8_t *key, bool echo, int senders, struct udp_cost_result *r);

/* cli/bench_udp.c: `sockmig bench udp|udp-cost ...`; the exit status. */
int bench_udp(const char *mode, int argc, char **argv);

#endif
