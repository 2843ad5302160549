// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Test helper (tests/test_udp_upgrade.c): a UDP group program of an older
 * sockmig, as far as an upgrade can tell. Its maps are bpf/udp.bpf.c's,
 * with the flow values and the counters as they were before the client's
 * QUIC CID and the new-connection counter were appended (24 and 96
 * octets); it routes as mode flow did: a known IPv4 flow to the socket
 * that owns it while that socket holds its slot; any other datagram to
 * the working list's member that the hash picks, learned for it.
 */
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include "udp.h"

#define MASK(i) ((i) & (SMU_MAX_MEMBERS - 1))
/* keeps the compiler from dropping the mask, which the verifier needs */
#define BOUND(x) asm volatile("" : "+r"(x))

struct older_flow {
	__u64 cookie;
	__u64 last_ns;
	__u32 slot;
	__u32 generation;
};

struct older_stats {
	__u64 new_flows;
	__u64 flow_hits;
	__u64 rest[10];
};

/* the group's maps, the flows and counters of the older layout */
#define SMU_FLOW_VALUE	struct older_flow
#define SMU_STATS_VALUE struct older_stats
#include "udp_maps.h"

static __always_inline int route(struct sk_reuseport_md *ctx, int coarse)
{
	struct smu_flow_key k = {};
	struct older_flow *f, nf = {};
	const struct smu_table *t;
	struct older_stats *st;
	struct smu_slot *s;
	struct udphdr uh;
	__u32 zero = 0, a[2], slot, i, *idx;

	st = bpf_map_lookup_elem(&stats, &zero);
	if (!st || ctx->ip_protocol != IPPROTO_UDP || bpf_skb_load_bytes(ctx, 0, &uh, sizeof(uh)) ||
	    bpf_skb_load_bytes_relative(ctx, offsetof(struct iphdr, saddr), a, sizeof(a),
					BPF_HDR_START_NET))
		return SK_PASS;
	k.family = 2; /* AF_INET */
	k.sport = uh.source;
	k.dport = uh.dest;
	k.saddr[0] = a[0];
	k.daddr[0] = a[1];
	f = bpf_map_lookup_elem(&flows, &k);
	if (f) {
		slot = MASK(f->slot);
		s = bpf_map_lookup_elem(&slots, &slot);
		if (s && s->cookie == f->cookie &&
		    bpf_sk_select_reuseport(ctx, &members, &slot, 0) == 0) {
			st->flow_hits++;
			return SK_PASS;
		}
	}
	idx = bpf_map_lookup_elem(&tabidx, &zero);
	if (!idx)
		return SK_PASS;
	i = *idx & 1;
	t = bpf_map_lookup_elem(&table, &i);
	if (!t || t->n_working == 0 || t->n_working > SMU_MAX_MEMBERS)
		return SK_PASS;
	i = ctx->hash % t->n_working;
	BOUND(i);
	i = MASK(i);
	slot = MASK(t->working[i]);
	if (bpf_sk_select_reuseport(ctx, &members, &slot, 0))
		return SK_PASS;
	s = bpf_map_lookup_elem(&slots, &slot);
	nf.cookie = s ? s->cookie : 0;
	nf.generation = s ? s->generation : 0;
	nf.slot = slot;
	/* the clock of the library's program on this kernel, as the older
	 * one read it */
	nf.last_ns = coarse ? bpf_ktime_get_coarse_ns() : bpf_ktime_get_ns();
	bpf_map_update_elem(&flows, &k, &nf, BPF_ANY);
	st->new_flows++;
	return SK_PASS;
}

SEC("sk_reuseport")
int older_udp(struct sk_reuseport_md *ctx)
{
	return route(ctx, 1);
}

SEC("sk_reuseport")
int older_udp_ktime(struct sk_reuseport_md *ctx)
{
	return route(ctx, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
