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

/* counters.c: member @cookie's counters in @out (its entry by cookie plus
 * its slot's, summed over the CPUs); -ENOENT when it has none. */
SM_HIDDEN int sm_counters_get(struct sockmig_group *g, uint64_t cookie, struct sm_counters *out);

/* The counters of @slot to member @cookie, zeroed, their previous owner's
 * counts kept in its entry by cookie; nothing when they are its already.
 * Under the lock, before the table lists the member in @slot. */
SM_HIDDEN int sm_slot_counters_give(struct sockmig_group *g, uint32_t slot, uint64_t cookie);

/* Member @cookie leaves @slot: what the slot counted for it goes to its
 * entry by cookie and the slot's counters to nobody (nothing when they are
 * another member's). Under the lock. */
SM_HIDDEN void sm_slot_counters_release(struct sockmig_group *g, uint32_t slot, uint64_t cookie);

/* Give the counters of their slots to the live members whose slot's
 * counters belong to nobody (a group pinned before "pcounters" was). */
SM_HIDDEN void sm_slot_counters_claim_unowned(struct sockmig_group *g);

#endif
