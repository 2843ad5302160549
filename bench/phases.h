/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What bench cost and bench udp-cost share: a rate measured in phases with
 * and without a program, in pairs ordered off-on, on-off, off-on, ... (a
 * drift over the run, or a cost of coming first or second, falls on both
 * kinds alike), after one phase that does not count; and a program's run
 * time from the kernel's BPF statistics.
 */
#ifndef SOCKMIG_BENCH_PHASES_H
#define SOCKMIG_BENCH_PHASES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PH_MAX 64

struct phases {
	int phases, pairs;
	double warmup_rate; /* the phase not counted */
	double phase_rate[PH_MAX];
	bool phase_on[PH_MAX];
	double pair_ratio[PH_MAX / 2]; /* pair p: its "on" phase's rate over its "off" one's */
	double ratio;		       /* their median */
	double rate_off, rate_on;      /* over all the phases of each kind */
	double ratio_pooled;	       /* rate_on over rate_off */
	double done[2], secs[2];       /* what those two rates sum */
};

/* Whether phase @ph (from 0) runs with the program. */
static inline bool ph_on(int ph)
{
	return (ph % 2) ^ (ph / 2 % 2);
}

/* Phase @ph (< PH_MAX) did @done in @secs. */
void ph_record(struct phases *p, int ph, double done, double secs);

/* After the last phase: the pairs' ratios, their median, the pooled rates. */
void ph_finish(struct phases *p);

/* A program's run time and runs so far, counted while BPF statistics are
 * enabled (bpf_enable_stats()). */
struct prog_stats {
	uint64_t ns, runs;
};

/* 0, or -1 with @err set. */
int ph_prog_stats(int fd, struct prog_stats *st, char *err, size_t errlen);

/* Whether kernel.bpf_stats_enabled reads 1: the kernel's BPF statistics
 * are then on, and every program run pays for two clock reads. (A
 * bpf_enable_stats() descriptor open in some process turns them on too,
 * and does not show here: a program's run count growing does.) */
bool ph_stats_on(void);

/* An sk_reuseport program that only returns SK_PASS: what any program costs
 * here (the call and the statistics' clock reads), the floor under a real
 * program's cost. Its fd, or -1 with @err set. */
int ph_empty_prog(char *err, size_t errlen);

/*
 * The least a steering program does: slot = the kernel's hash of the
 * 4-tuple modulo @n, one bpf_sk_select_reuseport() into its own
 * REUSEPORT_SOCKARRAY of @fds[0..n-1] (@n >= 1), SK_PASS; SK_DROP
 * if the helper failed, so that a bench's failed or lost count shows any
 * run that did not steer. The sockets must be of one SO_REUSEPORT group
 * and in no other socket array (a sockmig member leaves its group first).
 * Not sockmig's API: a reference for bench cost and udp-cost. Its fd, or
 * -1 with @err set.
 */
int ph_select_prog(const int *fds, int n, char *err, size_t errlen);

#endif
