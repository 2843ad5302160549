// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The selection table built from the members, a pure function: no map, no
 * fd, no allocation, nothing else of the library, so that its unit test
 * (lib/table_test.c) links this file alone and runs without root.
 */
#include <stdlib.h>

#include "table.h"

int sm_cmp_slot(const void *a, const void *b)
{
	const struct member_rec *x = a, *y = b;

	return (int)x->m.slot - (int)y->m.slot;
}

/*
 * Generations compare as serial numbers (RFC 1982): @a is newer than @b when
 * it is ahead by less than 2^31. Start times in clock ticks, as attach and
 * the shim use, wrap after 497 days of uptime at 100 Hz; a generation that
 * wrapped to a small number is still the newer one.
 */
static bool gen_newer(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) > 0;
}

/*
 * The selection table for members @recs (sorted here by slot) into @t,
 * zeroed by the caller; @kick_pending: a wake-up connection is pending, the
 * program looks SYNs up in "kick" only then. Pure: no map, no fd, no
 * allocation.
 */
void sm_table_build(struct sm_table *t, struct member_rec *recs, int n, bool kick_pending)
{
	uint32_t sum = 0;
	bool weighted = false;

	qsort(recs, n, sizeof(*recs), sm_cmp_slot);
	for (int i = 0; i < n; i++) {
		const struct sm_member *m = &recs[i].m;

		if (m->slot == SM_NO_SLOT && m->role == SM_ROLE_ACTIVE)
			t->n_unslotted++;
		if (!recs[i].live || m->slot >= SM_MAX_MEMBERS)
			continue;
		t->n_registered++;
		t->cookie[m->slot] = recs[i].cookie;
		t->compat[m->slot] = m->compat;
		if (m->role == SM_ROLE_ACTIVE) {
			if (t->n_active == 0 || gen_newer(m->generation, t->newest_gen))
				t->newest_gen = m->generation;
			sum += m->weight;
			t->cumw[t->n_active] = sum;
			t->active[t->n_active++] = m->slot;
		} else if (m->role == SM_ROLE_HOLDER) {
			t->holder[t->n_holder++] = m->slot;
		}
	}
	/* weights are compared to the first live active member's */
	if (t->n_active) {
		uint32_t w0 = 0;

		for (int i = 0; i < n; i++) {
			if (!recs[i].live || recs[i].m.role != SM_ROLE_ACTIVE)
				continue;
			if (!w0)
				w0 = recs[i].m.weight;
			else if (recs[i].m.weight != w0)
				weighted = true;
		}
	}
	t->total_weight = weighted ? sum : 0;
	for (uint32_t i = 0; i < t->n_active; i++) {
		uint32_t s = t->active[i];

		for (int j = 0; j < n; j++)
			if (recs[j].live && recs[j].m.slot == s &&
			    recs[j].m.generation == t->newest_gen)
				t->newest[t->n_newest++] = s;
	}
	t->kick_pending = kick_pending;
}
