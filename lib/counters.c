// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A member's counters (bpf/policy.h): its entry in the cookie-keyed
 * "counters" hash plus, while its slot's counters are its own, that slot's
 * copies in "pcounters", one per CPU, where the program counts. Here: their
 * sum, and handing a slot's counters from one member to another so that
 * neither loses or gains a count when a slot is reused.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdlib.h>
#include <string.h>

#include "group_priv.h"

_Static_assert(sizeof(struct sm_counters) % sizeof(__u64) == 0, "counters are u64 only");

/* @to += @c, field by field (every field is a __u64). */
static void counters_add(struct sm_counters *to, const struct sm_counters *c)
{
	__u64 *t = (__u64 *)to;
	const __u64 *f = (const __u64 *)c;

	for (size_t i = 0; i < sizeof(*c) / sizeof(__u64); i++)
		t[i] += f[i];
}

/* Every CPU's copy of @slot's counters; *ncpu set. NULL when there are
 * none (no such slot, no map, out of memory). Caller frees. */
static struct sm_slot_counters *slot_read(struct sockmig_group *g, uint32_t slot, int *ncpu)
{
	int n = libbpf_num_possible_cpus();
	struct sm_slot_counters *v;

	if (n <= 0 || slot >= SM_MAX_MEMBERS || g->fd_pcounters < 0)
		return NULL;
	v = calloc((size_t)n, sizeof(*v));
	if (v && bpf_map_lookup_elem(g->fd_pcounters, &slot, v) < 0) {
		free(v);
		v = NULL;
	}
	*ncpu = n;
	return v;
}

int sm_counters_get(struct sockmig_group *g, uint64_t cookie, struct sm_counters *out)
{
	struct sm_slot_counters *v;
	struct sm_member m;
	int n = 0;

	if (bpf_map_lookup_elem(g->fd_counters, &cookie, out) < 0)
		return -ENOENT;
	if (bpf_map_lookup_elem(g->fd_state, &cookie, &m) < 0)
		return 0;
	v = slot_read(g, m.slot, &n);
	if (v && v[0].cookie == cookie)
		for (int i = 0; i < n; i++)
			counters_add(out, &v[i].c);
	free(v);
	return 0;
}

/*
 * The counters of @slot to @to (0: nobody), zeroed, when they belong to
 * @from (0: whoever has them); what they held is added to their owner's
 * entry by cookie first, so that its counts stay whole. Under the lock.
 */
static int slot_hand(struct sockmig_group *g, uint32_t slot, uint64_t from, uint64_t to)
{
	struct sm_counters sum = {0}, h;
	struct sm_slot_counters *v;
	uint64_t owner;
	int n = 0, err = 0;

	v = slot_read(g, slot, &n);
	if (!v)
		return slot < SM_MAX_MEMBERS ? -ENOMEM : 0;
	owner = v[0].cookie;
	if (owner == to || (from && owner != from))
		goto out;
	if (owner) {
		for (int i = 0; i < n; i++)
			counters_add(&sum, &v[i].c);
		if (bpf_map_lookup_elem(g->fd_counters, &owner, &h) == 0) {
			counters_add(&h, &sum);
			bpf_map_update_elem(g->fd_counters, &owner, &h, BPF_EXIST);
		}
	}
	memset(v, 0, (size_t)n * sizeof(*v));
	for (int i = 0; i < n; i++)
		v[i].cookie = to;
	if (bpf_map_update_elem(g->fd_pcounters, &slot, v, BPF_ANY) < 0)
		err = sm_fail(errno, "cannot reset the counters of slot %u: %s", slot,
			      strerror(errno));
out:
	free(v);
	return err;
}

int sm_slot_counters_give(struct sockmig_group *g, uint32_t slot, uint64_t cookie)
{
	return slot_hand(g, slot, 0, cookie);
}

void sm_slot_counters_release(struct sockmig_group *g, uint32_t slot, uint64_t cookie)
{
	slot_hand(g, slot, cookie, 0);
}

void sm_slot_counters_claim_unowned(struct sockmig_group *g)
{
	struct sm_slot_counters *v;
	struct member_rec *recs;
	int n, ncpu;

	recs = sm_read_members(g, &n);
	if (!recs)
		return;
	for (int i = 0; i < n; i++) {
		if (!recs[i].live)
			continue;
		v = slot_read(g, recs[i].m.slot, &ncpu);
		if (v && !v[0].cookie)
			sm_slot_counters_give(g, recs[i].m.slot, recs[i].cookie);
		free(v);
	}
	free(recs);
}
