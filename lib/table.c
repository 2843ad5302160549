// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The selection table the policy program reads: the members read from the
 * state map (each with whether it still holds its slot), the table built
 * from them (sm_table_build(), lib/table_build.c), and written to the copy
 * the program does not read before the index flips to it. Called under the
 * group lock.
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

/* Write the selection table for members @recs (sorted here by slot). */
int sm_write_table(struct sockmig_group *g, struct member_rec *recs, int n)
{
	struct sm_table *t;
	uint32_t zero = 0, cur = 0, next;
	uint16_t kick_port;
	int err = 0;

	t = calloc(1, sizeof(*t));
	if (!t)
		return sm_fail(ENOMEM, "out of memory");
	/* a wake-up connection pending (kick_slot(), drain.c): SYNs look there */
	sm_table_build(t, recs, n, bpf_map_get_next_key(g->fd_kick, NULL, &kick_port) == 0);
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
