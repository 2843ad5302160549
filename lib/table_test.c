// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The selection table builder (sm_table_build() in lib/table.c), a pure
 * function: for a few member sets, the whole table it builds compared with
 * the one expected, field by field, without root or a network namespace.
 */
#include <stdlib.h>

#include "harness.h"
#include "table.h"

/* A state entry: cookie, slot, role, generation, weight, compat; live when
 * it holds its slot. */
#define REC(c, s, r, g, w, cp, l)                                                                  \
	{                                                                                          \
		.cookie = (c),                                                                     \
		.m = {.slot = (s), .role = (r), .generation = (g), .weight = (w), .compat = (cp)}, \
		.live = (l)                                                                        \
	}

#define A SM_ROLE_ACTIVE
#define D SM_ROLE_DRAINING
#define H SM_ROLE_HOLDER

#define N_RECS(recs) ((int)(sizeof(recs) / sizeof((recs)[0])))

static bool field_eq(const char *set, const char *field, int i, unsigned long long got,
		     unsigned long long want)
{
	if (got == want)
		return true;
	if (i < 0)
		printf("%s: %s = %llu, expected %llu\n", set, field, got, want);
	else
		printf("%s: %s[%d] = %llu, expected %llu\n", set, field, i, got, want);
	return false;
}

/* Every field and every array element of @got equal to @want's. */
static bool table_eq(const char *set, const struct sm_table *got, const struct sm_table *want)
{
	bool ok = true;

	ok &= field_eq(set, "n_registered", -1, got->n_registered, want->n_registered);
	ok &= field_eq(set, "n_active", -1, got->n_active, want->n_active);
	ok &= field_eq(set, "n_newest", -1, got->n_newest, want->n_newest);
	ok &= field_eq(set, "n_holder", -1, got->n_holder, want->n_holder);
	ok &= field_eq(set, "total_weight", -1, got->total_weight, want->total_weight);
	ok &= field_eq(set, "newest_gen", -1, got->newest_gen, want->newest_gen);
	ok &= field_eq(set, "n_unslotted", -1, got->n_unslotted, want->n_unslotted);
	ok &= field_eq(set, "kick_pending", -1, got->kick_pending, want->kick_pending);
	for (int i = 0; i < SM_MAX_MEMBERS; i++) {
		ok &= field_eq(set, "active", i, got->active[i], want->active[i]);
		ok &= field_eq(set, "cumw", i, got->cumw[i], want->cumw[i]);
		ok &= field_eq(set, "newest", i, got->newest[i], want->newest[i]);
		ok &= field_eq(set, "holder", i, got->holder[i], want->holder[i]);
		ok &= field_eq(set, "cookie", i, got->cookie[i], want->cookie[i]);
		ok &= field_eq(set, "compat", i, got->compat[i], want->compat[i]);
	}
	return ok;
}

/* Build the table of @recs and compare it with @want; frees @want. */
static bool check(const char *set, struct member_rec *recs, int n, struct sm_table *want)
{
	struct sm_table *got = calloc(1, sizeof(*got));
	bool ok;

	if (!got || !want) {
		printf("%s: out of memory\n", set);
		free(got);
		free(want);
		return false;
	}
	sm_table_build(got, recs, n, want->kick_pending);
	ok = table_eq(set, got, want);
	free(got);
	free(want);
	return ok;
}

static void set_u32(__u32 *arr, const __u32 *vals, int n)
{
	for (int i = 0; i < n; i++)
		arr[i] = vals[i];
}

/*
 * Roles: active members select, draining ones only keep their cookie and
 * compat by slot, holders go to holder[]; a member that lost its slot
 * counts for nothing, an active one without a slot counts in n_unslotted.
 */
SM_PURE(table_build_roles_exact)
{
	struct member_rec recs[] = {
		REC(101, 3, A, 5, 1, SM_COMPAT_INET6, true),
		REC(102, 0, D, 4, 1, 0, true),
		REC(103, 1, H, 0, 1, SM_COMPAT_SAVE_SYN, true),
		REC(104, 2, A, 5, 1, SM_COMPAT_FASTOPEN, true),
		REC(105, 4, A, 6, 1, 0, false),		 /* closed: its slot is not its own */
		REC(106, SM_NO_SLOT, A, 5, 1, 0, false), /* beyond the slots */
		REC(107, SM_NO_SLOT, D, 5, 1, 0, false),
	};
	struct sm_table *want = calloc(1, sizeof(*want));
	bool ok = true;

	if (want) {
		want->n_registered = 4;
		want->cookie[0] = 102;
		want->cookie[1] = 103;
		want->cookie[2] = 104;
		want->cookie[3] = 101;
		want->compat[1] = SM_COMPAT_SAVE_SYN;
		want->compat[2] = SM_COMPAT_FASTOPEN;
		want->compat[3] = SM_COMPAT_INET6;
		want->n_active = 2;
		set_u32(want->active, (const __u32[]){2, 3}, 2);
		set_u32(want->cumw, (const __u32[]){1, 2}, 2);
		want->total_weight = 0; /* equal weights: the plain hash */
		want->newest_gen = 5;	/* not 6: that member lost its slot */
		want->n_newest = 2;
		set_u32(want->newest, (const __u32[]){2, 3}, 2);
		want->n_holder = 1;
		want->holder[0] = 1;
		want->n_unslotted = 1;
	}
	ok &= check("roles", recs, N_RECS(recs), want);

	/* no member: an empty table */
	ok &= check("empty", recs, 0, calloc(1, sizeof(*want)));
	return ok ? SM_PASS : SM_FAIL;
}

/*
 * Generations: newest_gen is the newest among live active members only, as
 * serial numbers (one that wrapped past 2^32 is newer), and newest[] lists
 * its members in slot order.
 */
SM_PURE(table_build_newest_generation_exact)
{
	struct member_rec recs[] = {
		REC(16, 5, H, 200, 1, 0, true), REC(15, 4, D, 100, 1, 0, true),
		REC(14, 3, A, 8, 1, 0, true),	REC(13, 2, A, 9, 1, 0, true),
		REC(12, 1, A, 9, 1, 0, true),	REC(11, 0, A, 7, 1, 0, true),
	};
	struct member_rec wrap[] = {
		REC(21, 0, A, 0xfffffff0u, 1, 0, true),
		REC(22, 1, A, 5, 1, 0, true),
		REC(23, 2, A, 0xfffffff0u, 1, 0, true),
	};
	struct sm_table *want = calloc(1, sizeof(*want));
	bool ok = true;

	if (want) {
		want->n_registered = 6;
		for (int s = 0; s < 6; s++)
			want->cookie[s] = 11 + (unsigned)s;
		want->n_active = 4;
		set_u32(want->active, (const __u32[]){0, 1, 2, 3}, 4);
		set_u32(want->cumw, (const __u32[]){1, 2, 3, 4}, 4);
		want->newest_gen = 9;
		want->n_newest = 2;
		set_u32(want->newest, (const __u32[]){1, 2}, 2);
		want->n_holder = 1;
		want->holder[0] = 5;
	}
	ok &= check("generations", recs, N_RECS(recs), want);

	want = calloc(1, sizeof(*want));
	if (want) {
		want->n_registered = 3;
		set_u32(want->active, (const __u32[]){0, 1, 2}, 3);
		want->cookie[0] = 21;
		want->cookie[1] = 22;
		want->cookie[2] = 23;
		want->n_active = 3;
		set_u32(want->cumw, (const __u32[]){1, 2, 3}, 3);
		want->newest_gen = 5;
		want->n_newest = 1;
		want->newest[0] = 1;
	}
	ok &= check("wrapped generation", wrap, N_RECS(wrap), want);
	return ok ? SM_PASS : SM_FAIL;
}

/*
 * Weights: cumw[] sums the weights of the active members in slot order;
 * total_weight is that sum when their weights differ, 0 (the plain hash)
 * when they are all the first live active member's.
 */
SM_PURE(table_build_cumulative_weights_exact)
{
	struct member_rec recs[] = {
		REC(34, 4, H, 1, 7, 0, true), REC(33, 3, D, 1, 50, 0, true),
		REC(32, 2, A, 1, 6, 0, true), REC(31, 1, A, 1, 1, 0, true),
		REC(30, 0, A, 1, 3, 0, true),
	};
	/* the first active record has gone: the live ones agree */
	struct member_rec equal[] = {
		REC(40, 0, A, 1, 9, 0, false),
		REC(41, 1, A, 1, 4, 0, true),
		REC(42, 2, A, 1, 4, 0, true),
	};
	struct sm_table *want = calloc(1, sizeof(*want));
	bool ok = true;

	if (want) {
		want->n_registered = 5;
		for (int s = 0; s < 5; s++)
			want->cookie[s] = 30 + (unsigned)s;
		want->n_active = 3;
		set_u32(want->active, (const __u32[]){0, 1, 2}, 3);
		set_u32(want->cumw, (const __u32[]){3, 4, 10}, 3);
		want->total_weight = 10;
		want->newest_gen = 1;
		want->n_newest = 3;
		set_u32(want->newest, (const __u32[]){0, 1, 2}, 3);
		want->n_holder = 1;
		want->holder[0] = 4;
	}
	ok &= check("weights", recs, N_RECS(recs), want);

	want = calloc(1, sizeof(*want));
	if (want) {
		want->n_registered = 2;
		want->cookie[1] = 41;
		want->cookie[2] = 42;
		want->n_active = 2;
		set_u32(want->active, (const __u32[]){1, 2}, 2);
		set_u32(want->cumw, (const __u32[]){4, 8}, 2);
		want->total_weight = 0;
		want->newest_gen = 1;
		want->n_newest = 2;
		set_u32(want->newest, (const __u32[]){1, 2}, 2);
	}
	ok &= check("equal weights", equal, N_RECS(equal), want);
	return ok ? SM_PASS : SM_FAIL;
}

/*
 * A wake-up connection pending: the table says so (the program looks SYNs
 * up in "kick" only then), and everything else is built as without it.
 */
SM_PURE(table_build_kick_pending_exact)
{
	struct member_rec recs[] = {
		REC(52, 1, A, 3, 1, 0, true),
		REC(51, 0, D, 3, 1, 0, true),
	};
	struct sm_table *want = calloc(1, sizeof(*want));
	bool ok = true;

	if (want) {
		want->kick_pending = 1;
		want->n_registered = 2;
		want->cookie[0] = 51;
		want->cookie[1] = 52;
		want->n_active = 1;
		want->active[0] = 1;
		want->cumw[0] = 1;
		want->newest_gen = 3;
		want->n_newest = 1;
		want->newest[0] = 1;
	}
	ok &= check("kick pending", recs, N_RECS(recs), want);

	want = calloc(1, sizeof(*want));
	if (want)
		want->kick_pending = 1;
	ok &= check("kick pending, no member", recs, 0, want);
	return ok ? SM_PASS : SM_FAIL;
}
