// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The selection table the policy program reads: the members read from the
 * state map (each with whether it still holds its slot), the table built
 * from them by a pure function (sm_table_build(): no map, no fd, testable
 * without root), and written to the copy the program does not read before
 * the index flips to it. Called under the group lock.
 */
#include <bpf/bpf.h>
#include <stdlib.h>
#include <string.h>

#include "group_priv.h"

/* Cookie of the listener in @slot, 0 when empty. */
uint64_t sm_slot_cookie(struct sockmig_group *g, uint32_t slot)
{
	uint64_t cookie = 0;

	if (bpf_map_lookup_elem(g->fd_members, &slot, &cookie) < 0)
		return 0;
	return cookie;
}

/* All state entries (one batch lookup where the kernel has it), each with
 * whether it still listens; *n set to their number. Caller frees. */
struct member_rec *sm_read_members(struct sockmig_group *g, int *n)
{
	enum { CAP = 4 * SM_MAX_MEMBERS };
	struct member_rec *recs = calloc(CAP, sizeof(*recs));
	uint64_t *keys = calloc(CAP, sizeof(*keys)), key, next, *prev = NULL, token = 0;
	struct sm_member *vals = calloc(CAP, sizeof(*vals));
	__u32 count = CAP;
	int cnt = 0, err;

	if (!recs || !keys || !vals)
		goto fail;
	err = bpf_map_lookup_batch(g->fd_state, NULL, &token, keys, vals, &count, NULL);
	if (err == 0 || errno == ENOENT) {
		/* ENOENT: the batch reached the end of the map */
		for (__u32 i = 0; i < count && cnt < CAP; i++, cnt++) {
			recs[cnt].cookie = keys[i];
			recs[cnt].m = vals[i];
		}
	} else {
		while (cnt < CAP && bpf_map_get_next_key(g->fd_state, prev, &next) == 0) {
			key = next;
			prev = &key;
			if (bpf_map_lookup_elem(g->fd_state, &key, &recs[cnt].m) < 0)
				continue;
			recs[cnt++].cookie = key;
		}
	}
	for (int i = 0; i < cnt; i++)
		recs[i].live = sm_slot_cookie(g, recs[i].m.slot) == recs[i].cookie;
	free(keys);
	free(vals);
	*n = cnt;
	return recs;
fail:
	free(recs);
	free(keys);
	free(vals);
	return NULL;
}

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
 * zeroed by the caller. Pure: no map, no fd, no allocation.
 */
void sm_table_build(struct sm_table *t, struct member_rec *recs, int n)
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
}

/* Write the selection table for members @recs (sorted here by slot). */
int sm_write_table(struct sockmig_group *g, struct member_rec *recs, int n)
{
	struct sm_table *t;
	uint32_t zero = 0, cur = 0, next;
	int err = 0;

	t = calloc(1, sizeof(*t));
	if (!t)
		return sm_fail(ENOMEM, "out of memory");
	sm_table_build(t, recs, n);
	bpf_map_lookup_elem(g->fd_tabidx, &zero, &cur);
	next = (cur & 1) ^ 1;
	if (bpf_map_update_elem(g->fd_table, &next, t, BPF_ANY) < 0 ||
	    bpf_map_update_elem(g->fd_tabidx, &zero, &next, BPF_ANY) < 0)
		err = sm_fail(errno, "cannot write the selection table: %s", strerror(errno));
	free(t);
	return err;
}

/* Rebuild the selection table from the state map; call under the lock. */
int sm_rebuild_table(struct sockmig_group *g)
{
	struct member_rec *recs;
	int n, err;

	recs = sm_read_members(g, &n);
	if (!recs)
		return sm_fail(ENOMEM, "out of memory");
	err = sm_write_table(g, recs, n);
	free(recs);
	return err;
}
