// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig's select-or-migrate policy for one SO_REUSEPORT group.
 *
 * New SYN (ctx->migrating_sk == NULL):
 *   1. a wake-up connection (source port in "kick", looked up only while
 *      the table says one is pending) goes to its slot;
 *   2. no registered member, an active member beyond the slots
 *      (SM_MAX_MEMBERS), or the maintainer's lease expired (it set one
 *      and stopped renewing it: crashed, killed, stopped): the kernel's
 *      hash decides, over every live listener;
 *   3. else an active member (hash, or weighted when weights differ),
 *      never a draining one; a holder only when no member is active. The
 *      hashed member is tried first, inline; only when it cannot be
 *      selected (a stale table) does the search go on through the list;
 *   4. nothing selectable (stale table): the kernel's hash decides.
 * Migration (ctx->migrating_sk != NULL, ctx->sk is the closing listener):
 *   an active member of the newest generation, then any active member
 *   (the table may be stale), then a holder, skipping members whose
 *   recorded settings differ from the closing listener's; cancelled
 *   (SK_DROP) when only such members are left; left to the kernel's hash
 *   over the live listeners when no registered member is left at all.
 *
 * policy_legacy.bpf.c compiles this file again with SOCKMIG_LEGACY defined:
 * a plain select program (SEC("sk_reuseport"), what 4.19 to 5.13 load)
 * with the same maps, no migration branch, no loop back-edges (5.3+) and
 * no global function (5.6+).
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "policy.h"

#define AF_INET6 10 /* <sys/socket.h>, which a BPF program does not include */

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, SM_MAX_MEMBERS);
	__type(key, __u32);
	__type(value, __u64);
} members SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4 * SM_MAX_MEMBERS);
	__type(key, __u64);
	__type(value, struct sm_member);
} state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4 * SM_MAX_MEMBERS);
	__type(key, __u64);
	__type(value, struct sm_counters);
} counters SEC(".maps");

/* a member's counters while it has a slot, per CPU (policy.h) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SM_MAX_MEMBERS);
	__type(key, __u32);
	__type(value, struct sm_slot_counters);
} pcounters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct sm_table);
} table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} tabidx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sm_gstats);
} gstats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u16);
	__type(value, __u32);
} kick SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SM_LEASE_MAX);
	__type(key, __u32);
	__type(value, __u64);
} lease SEC(".maps");

#define MASK(i) ((i) & (SM_MAX_MEMBERS - 1))

#ifdef SOCKMIG_LEGACY
/* Loops unrolled (clang unrolls no loop that has an exit besides its
 * condition: SM_LOOP_EXIT skips the rest instead), at most SM_TRY_MAX
 * members tried per list (a listener still in a stale table is passed
 * over; the kernel's hash after that). */
#define SM_TRY_MAX   4
#define SM_UNROLL    _Pragma("unroll")
#define SM_LOOP_EXIT continue
#define SM_TRY_FN    static __always_inline
/* keep a mask the compiler would drop: the verifier needs its bound */
#define SM_BOUND(x) asm volatile("" : "+r"(x))
#else
/* Members tried per list, from the hashed start on: the verifier walks each
 * iteration, and a bound of SM_MAX_MEMBERS would pass its 1M instructions.
 * Only a run of more than this many stale or mismatched members in a row
 * ends a search early (then the next list, or the kernel's hash). */
#define SM_TRY_MAX 128
#define SM_UNROLL
#define SM_LOOP_EXIT break
#define SM_TRY_FN    __noinline
#define SM_BOUND(x)
#endif

/* This CPU's counters of the member in @slot: no hash lookup, no atomic
 * operation (the program runs on one CPU to its end). User space gave the
 * slot's counters to the member before its socket could be selected there. */
static __always_inline struct sm_counters *slot_counters(__u32 slot)
{
	__u32 k = MASK(slot);
	struct sm_slot_counters *sc = bpf_map_lookup_elem(&pcounters, &k);

	return sc ? &sc->c : 0;
}

#ifndef SOCKMIG_LEGACY
/* The counters of the closing listener @cookie (member @m, NULL if not
 * one): its slot's while they are its own, else its entry by cookie (a
 * member without a slot, or whose slot went to another since it closed). */
static __always_inline struct sm_counters *source_counters(const struct sm_member *m, __u64 cookie)
{
	struct sm_slot_counters *sc;
	__u32 k;

	if (m && m->slot < SM_MAX_MEMBERS) {
		k = m->slot;
		sc = bpf_map_lookup_elem(&pcounters, &k);
		if (sc && sc->cookie == cookie)
			return &sc->c;
	}
	return bpf_map_lookup_elem(&counters, &cookie);
}
#endif

/* The lease's clock: CLOCK_MONOTONIC, coarse where the kernel has it (5.11,
 * so in every native program; a tick behind at most, against leases of
 * seconds), at a fraction of the precise clock's cost. */
#ifdef SOCKMIG_LEGACY
#define LEASE_NOW() bpf_ktime_get_ns()
#else
#define LEASE_NOW() bpf_ktime_get_coarse_ns()
#endif

static __always_inline struct sm_gstats *group_stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&gstats, &zero);
}

/* The maintainer set a lease and it ran out: the registered set may miss
 * listeners that appeared since (counted when @count). */
static __always_inline int lease_expired(int count)
{
	__u32 k = SM_LEASE_EXPIRES;
	__u64 *exp, *n;

	exp = bpf_map_lookup_elem(&lease, &k);
	if (!exp || !*exp || LEASE_NOW() <= *exp)
		return 0;
	if (count) {
		k = SM_LEASE_SYN_PASSED;
		n = bpf_map_lookup_elem(&lease, &k);
		if (n)
			__sync_fetch_and_add(n, 1);
	}
	return 1;
}

static __always_inline int select_slot(struct sk_reuseport_md *ctx, __u32 slot)
{
	struct sm_gstats *g;
	int err;

	err = bpf_sk_select_reuseport(ctx, &members, &slot, 0);
	if (err) {
		g = group_stats();
		if (g)
			__sync_fetch_and_add(&g->select_failed, 1);
	}
	return err;
}

/* Index of the first active member whose cumulative weight exceeds r. */
static __always_inline __u32 weighted_pick(const struct sm_table *t, __u32 r)
{
	__u32 lo = 0, hi = t->n_active, mid;
	int i;

	SM_UNROLL
	for (i = 0; i < SM_WPICK_STEPS; i++) {
		if (lo >= hi)
			SM_LOOP_EXIT;
		mid = (lo + hi) / 2;
		if (t->cumw[MASK(mid)] > r)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Lists of the table; LIST_ACTIVE_NEXT: the active list after its start
 * member, which the SYN path has tried already. */
enum { LIST_ACTIVE, LIST_NEWEST, LIST_HOLDER, LIST_ACTIVE_NEXT };

#define TRY_NONE     (-1)
#define TRY_MISMATCH (-2)

static __always_inline const struct sm_table *current_table(void)
{
	__u32 zero = 0, *idx, i;

	idx = bpf_map_lookup_elem(&tabidx, &zero);
	if (!idx)
		return 0;
	i = *idx & 1;
	return bpf_map_lookup_elem(&table, &i);
}

/*
 * Try the members of one list of the current table from index start on
 * (from start + 1 for LIST_ACTIVE_NEXT); compat_mask holds the settings
 * (low half) and which of them count (high half). Returns the slot selected,
 * TRY_MISMATCH when the only candidates left had other settings, or
 * TRY_NONE. A member equal to skip_cookie, or whose settings differ from
 * compat under mask, is passed over. A global function in the native
 * program, so that the verifier checks the loop once.
 */
SM_TRY_FN int try_list(struct sk_reuseport_md *ctx, __u32 which, __u32 start, __u64 skip_cookie,
		       __u64 compat_mask)
{
	const struct sm_table *t = current_table();
	__u32 compat = (__u32)compat_mask, mask = compat_mask >> 32;
	__u32 j, n, slot, idx, first = which == LIST_ACTIVE_NEXT;
	const __u32 *list;
	int mismatch = 0, found = TRY_NONE;

	if (!t || !ctx)
		return TRY_NONE;
	if (which == LIST_ACTIVE || which == LIST_ACTIVE_NEXT) {
		list = t->active;
		n = t->n_active;
	} else if (which == LIST_NEWEST) {
		list = t->newest;
		n = t->n_newest;
	} else {
		list = t->holder;
		n = t->n_holder;
	}
	if (n == 0 || n > SM_MAX_MEMBERS)
		return TRY_NONE;
	SM_UNROLL
	for (j = 0; j < SM_TRY_MAX; j++) {
		if (j >= n || found >= 0)
			SM_LOOP_EXIT;
		if (j < first)
			continue;
		idx = (start + j) % n;
		SM_BOUND(idx);
		slot = MASK(list[MASK(idx)]);
		if (skip_cookie && t->cookie[slot] == skip_cookie)
			continue;
		if ((t->compat[slot] & mask) != (compat & mask)) {
			mismatch = 1;
			continue;
		}
		if (!select_slot(ctx, slot))
			found = (int)slot;
	}
	if (found >= 0)
		return found;
	return mismatch ? TRY_MISMATCH : TRY_NONE;
}

/* The TCP flags and source port of the packet: read in place when its
 * header is in the linear part (always, for a TCP SYN that reached the
 * listener lookup), else copied. 0, or -1 when there is no header. */
static __always_inline int tcp_header(struct sk_reuseport_md *ctx, __u32 *flags, __u16 *sport)
{
	const struct tcphdr *th = (const void *)(long)ctx->data;
	struct tcphdr copy;

	if ((const void *)(th + 1) > (const void *)(long)ctx->data_end) {
		if (bpf_skb_load_bytes(ctx, 0, &copy, sizeof(copy)))
			return -1;
		th = &copy;
	}
	*flags = tcp_flag_word(th);
	*sport = bpf_ntohs(th->source);
	return 0;
}

static __always_inline int on_syn(struct sk_reuseport_md *ctx, const struct sm_table *t)
{
	struct sm_counters *c;
	struct sm_gstats *g;
	__u32 *kslot, flags, start;
	__u16 sport;
	int slot, is_syn = 0;

	if (tcp_header(ctx, &flags, &sport) == 0) {
		is_syn = (flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
		/* a wake-up connection: only while user space has one pending */
		if (is_syn && t->kick_pending) {
			kslot = bpf_map_lookup_elem(&kick, &sport);
			if (kslot && !select_slot(ctx, MASK(*kslot))) {
				c = slot_counters(*kslot);
				if (c)
					c->kicked++;
				return SK_PASS;
			}
		}
	}

	/* nobody maintains the registration any more: the kernel's hash over
	 * every live listener, so that none registered after it stopped starves */
	if (lease_expired(is_syn))
		return SK_PASS;
	/* nobody registered, or more listeners than slots: the kernel's hash
	 * over every listener, so that none beyond the limit starves */
	if (t->n_registered == 0 || t->n_unslotted) {
		g = group_stats();
		if (g && is_syn)
			__sync_fetch_and_add(&g->syn_kernel_hash, 1);
		return SK_PASS;
	}

	slot = -1;
	if (t->n_active) {
		if (t->total_weight)
			start = weighted_pick(t, ctx->hash % t->total_weight);
		else
			start = ctx->hash % t->n_active;
		/* the hashed member first, without a call (try_list's first try) */
		if (start >= t->n_active)
			start = 0;
		slot = MASK(t->active[MASK(start)]);
		if (select_slot(ctx, slot))
			slot = try_list(ctx, LIST_ACTIVE_NEXT, start, 0, 0);
	}
	if (slot < 0 && t->n_holder)
		slot = try_list(ctx, LIST_HOLDER, ctx->hash % t->n_holder, 0, 0);
	if (slot < 0) {
		g = group_stats();
		if (g && is_syn)
			__sync_fetch_and_add(&g->syn_fallback, 1);
		return SK_PASS;
	}
	if (is_syn) {
		c = slot_counters((__u32)slot);
		if (c)
			c->steered++;
	}
	return SK_PASS;
}

#ifndef SOCKMIG_LEGACY
static __always_inline int on_migrate(struct sk_reuseport_md *ctx, const struct sm_table *t)
{
	struct bpf_sock *child = ctx->migrating_sk;
	struct sm_counters *cc, *tc;
	struct sm_member *m;
	struct sm_gstats *g;
	__u32 compat, mask, kind, h = ctx->hash;
	__u64 cookie = 0, cm;
	int slot = -1, mm = 0;

	if (!child || !ctx->sk)
		return SK_PASS;
	if (child->state == BPF_TCP_ESTABLISHED)
		kind = SM_KIND_ESTABLISHED;
	else if (child->state == BPF_TCP_SYN_RECV)
		kind = SM_KIND_TFO;
	else if (ctx->len == 0)
		kind = SM_KIND_REQ_TIMER;
	else
		kind = SM_KIND_REQ_ACK;

	cookie = bpf_get_socket_cookie(ctx->sk);
	m = bpf_map_lookup_elem(&state, &cookie);
	if (m) {
		compat = m->compat;
		mask = ~0u;
	} else {
		/* Not ours: only the address family is known to match. */
		compat = ctx->sk->family == AF_INET6 ? SM_COMPAT_INET6 : 0;
		mask = SM_COMPAT_INET6;
		g = group_stats();
		if (g)
			__sync_fetch_and_add(&g->mig_unknown, 1);
	}

	cm = (__u64)mask << 32 | compat;
	if (t->n_newest)
		slot = try_list(ctx, LIST_NEWEST, h % t->n_newest, cookie, cm);
	if (slot < 0 && t->n_active) {
		mm |= slot == TRY_MISMATCH;
		slot = try_list(ctx, LIST_ACTIVE, h % t->n_active, cookie, cm);
	}
	if (slot < 0 && t->n_holder) {
		mm |= slot == TRY_MISMATCH;
		slot = try_list(ctx, LIST_HOLDER, h % t->n_holder, cookie, cm);
	}
	mm |= slot == TRY_MISMATCH;

	cc = source_counters(m, cookie);
	if (slot < 0 && mm) {
		if (cc)
			__sync_fetch_and_add(&cc->cancel_mismatch, 1);
		return SK_DROP;
	}
	if (slot < 0) {
		/* No registered target: a listener that is not registered yet
		 * (a new server generation that sockmig attach has not seen)
		 * may still be live, so the kernel's hash chooses among the
		 * listeners left; the kernel fails the migration if none is. */
		if (cc)
			__sync_fetch_and_add(&cc->deferred, 1);
		return SK_PASS;
	}
	if (cc)
		__sync_fetch_and_add(&cc->mig_out[kind & 3], 1);
	tc = slot_counters((__u32)slot);
	if (tc)
		tc->mig_in[kind & 3]++;
	return SK_PASS;
}

#endif /* !SOCKMIG_LEGACY */

#ifdef SOCKMIG_LEGACY
SEC("sk_reuseport")
int sockmig_legacy(struct sk_reuseport_md *ctx)
#else
SEC("sk_reuseport/migrate")
int sockmig_policy(struct sk_reuseport_md *ctx)
#endif
{
	const struct sm_table *t;

	if (ctx->ip_protocol != IPPROTO_TCP)
		return SK_PASS;
	t = current_table();
	if (!t)
		return SK_PASS;
#ifndef SOCKMIG_LEGACY
	if (ctx->migrating_sk)
		return on_migrate(ctx, t);
#endif
	return on_syn(ctx, t);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
