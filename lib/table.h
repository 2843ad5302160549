/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The selection table (lib/table.c) as the rest of the library, and the
 * unit test of its pure builder, see it; not installed.
 */
#ifndef SOCKMIG_TABLE_H
#define SOCKMIG_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"
#include "policy.h"

/* One entry of the state map, with whether it holds its slot. */
struct member_rec {
	uint64_t cookie;
	struct sm_member m;
	bool live;
};

/* The selection table for members @recs (sorted here by slot) into @t,
 * zeroed by the caller; @kick_pending: a wake-up connection is pending (an
 * entry in "kick"). Pure: no map, no fd, no allocation. */
SM_HIDDEN void sm_table_build(struct sm_table *t, struct member_rec *recs, int n,
			      bool kick_pending);

/* qsort() order of member_rec by slot. */
SM_HIDDEN int sm_cmp_slot(const void *a, const void *b);

/* Cookie of the listener in @slot, 0 when empty. */
SM_HIDDEN uint64_t sm_slot_cookie(struct sockmig_group *g, uint32_t slot);

/* All state entries, each with whether it still listens; *n set to their
 * number. Caller frees; NULL when out of memory. */
SM_HIDDEN struct member_rec *sm_read_members(struct sockmig_group *g, int *n);

/* Build the table for @recs (sorted here by slot) and make it current. */
SM_HIDDEN int sm_write_table(struct sockmig_group *g, struct member_rec *recs, int n);

/* Rebuild the selection table from the state map; call under the lock. */
SM_HIDDEN int sm_rebuild_table(struct sockmig_group *g);

#endif
