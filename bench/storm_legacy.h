/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The legacy strategy of the restart storm (bench/storm.c): the group runs
 * sockmig's legacy policy (a select program; nothing migrates, with
 * tcp_migrate_req=0, as on 4.19 to 5.13) and each old worker, on SIGTERM,
 * drains its own listener with sockmig_member_drain_legacy() and serves
 * what it accepted itself before it exits. Its drains are counted in
 * memory shared by the workers.
 */
#ifndef SOCKMIG_BENCH_STORM_LEGACY_H
#define SOCKMIG_BENCH_STORM_LEGACY_H

#include <stdbool.h>
#include <stdint.h>

#include "loadgen.h"
#include "sockmig.h"

struct storm_legacy_stats {
	struct lg_hist drain_us; /* each drain, from its call to its return */
	uint64_t drains;
	uint64_t accepted;  /* connections the drains accepted */
	uint64_t inflight;  /* handshakes in flight when SYNs stopped */
	uint64_t abandoned; /* left at a deadline */
	uint64_t errors;
};

/* Shared between the supervisor and its workers (fork after it). */
struct storm_legacy_stats *storm_legacy_stats_new(void);
void storm_legacy_stats_free(struct storm_legacy_stats *st);
void storm_legacy_stats_read(struct storm_legacy_stats *st, struct storm_legacy_stats *out);

/* In a worker being stopped: drain @lfd (a member of the group of @g, its
 * own handle) in a thread, each connection to @adopt(fd, @ctx) (called
 * from that thread), and record it in @st. NULL when it cannot start. */
struct storm_legacy_drain;
struct storm_legacy_drain *storm_legacy_drain_start(struct sockmig_group *g, int lfd,
						    sockmig_accept_fn adopt, void *ctx,
						    struct storm_legacy_stats *st);

/* True (and @d freed) once the drain has ended; true for NULL. */
bool storm_legacy_drain_end(struct storm_legacy_drain *d);

#endif
