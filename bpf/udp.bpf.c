// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig's UDP group program: a plain sk_reuseport select program (what
 * 4.19 and later load; UDP has nothing to migrate), run for every datagram
 * that reaches the group.
 *
 * Mode flow (struct smu_config.mode):
 *   1. the datagram's 4-tuple is looked up in "flows";
 *   2. known, seen within the idle timeout, and its owner still in its
 *      slot (the slot's cookie is the one learned, and the socket array
 *      still holds a socket there: a closed socket leaves it empty): to
 *      the owner, whatever its generation or role (counted in old_gen
 *      when that is not the working generation, which the config holds
 *      a copy of: the table is not read);
 *   3. known but its owner gone: to the working generation, and the flow
 *      is learned again for its new owner (a fallback);
 *   4. known but idle past the timeout, or unknown: a new flow, to the
 *      working generation (hash over its members), learned on this, its
 *      first datagram, before any reply.
 * A QUIC v1 or v2 Initial (the packet that starts a connection) carries the
 * client's own CID (its source CID), the same in every Initial of the
 * connection, retries and multi-datagram first flights included. A flow
 * learned on one records it; an Initial of a known flow that carries
 * another, while the flow's owner is not of the working generation, is a
 * new connection from the same 4-tuple (a client port that came back
 * while an old instance still owns the flow): a new flow (step 4), not
 * its old owner's, and the 4-tuple's from then on. An owner of the
 * working generation keeps it, as the kernel's hash would, and records
 * the new connection's CID: the latest connection is the one whose
 * Initials may still come. A flow learned without one records the first
 * it sees. Clients with a zero-length CID,
 * and other protocols, are flows by their 4-tuple alone; so is a client
 * that runs several connections from one port at once: a new one started
 * while an older generation owns the 4-tuple takes it, and its older
 * connections with it (mode quic-lb routes those by the server's CIDs).
 * A group of learn CLAIM (struct smu_config.learn) takes steps 1 and 2
 * alike, but in steps 3 and 4 writes no flow: its flows are those that
 * user space wrote (sockmig_udp_flow_claim()), and any other datagram
 * goes to the working generation as mode none's do.
 * Mode none: every datagram to the working generation (hash).
 * Mode quic-lb: the QUIC destination connection ID of the datagram (short
 * header: at payload offset 1, the group's CID length; long header: its
 * length at offset 5, the CID at 6) names a slot and a generation
 * (udp.h): when its config rotation bits and length are the group's and
 * the slot holds a live socket of that generation, to it, whatever its
 * role or the 4-tuple (a client's new address or port is followed;
 * counted in old_gen as in step 2);
 * otherwise (a client's Initial, another config, a member gone) as mode
 * flow, on the 4-tuple, so that an Initial flight of several datagrams
 * stays on the socket that took its first.
 * When no live active member can be selected (stale table), the kernel's
 * hash chooses over every socket of the group.
 *
 * Loops are unrolled (no back-edge: 4.19 loads it) with at most
 * SMU_TRY_MAX tries per list.
 *
 * Two programs of the one body, which differ in their clock only (the
 * times of flows and of CIDs, udp.h): sockmig_udp reads the coarse
 * CLOCK_MONOTONIC (bpf_ktime_get_coarse_ns(), 5.11+: a tick behind at
 * most, for about 30 ns less per datagram than the precise clock here),
 * sockmig_udp_ktime the precise one, for older kernels. lib/udp.c loads
 * the one the kernel can run.
 *
 * A third, sockmig_udp_enc, for the groups of mode quic-lb whose CIDs are
 * encrypted (struct smu_config.quic_enc), and for them alone: the same
 * body with the coarse clock, whose quic_route() decrypts the server ID
 * first (bpf/quic_enc.h: three AES-128 blocks, in bounded loops, 5.3+;
 * with the coarse clock, 5.11+ in all). The @enc flag is a constant: the
 * two others have none of it, no loop, and stay what 4.19 loads.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "udp.h"
#include "quic_enc.h"

#define AF_INET	 2 /* <sys/socket.h>, which a BPF program does not include */
#define AF_INET6 10

#include "udp_maps.h"

#define MASK(i) ((i) & (SMU_MAX_MEMBERS - 1))
/* hide a value from the compiler, so that it keeps the mask after it:
 * the verifier needs that bound */
#define BOUND(x) asm volatile("" : "+r"(x))

static __always_inline const struct smu_table *current_table(void)
{
	__u32 zero = 0, *idx, i;

	idx = bpf_map_lookup_elem(&tabidx, &zero);
	if (!idx)
		return 0;
	i = *idx & 1;
	return bpf_map_lookup_elem(&table, &i);
}

/*
 * Select a member of the working list (@active 0) or of the active list
 * (@active 1), from the hashed index on, trying at most SMU_TRY_MAX of
 * them. The slot selected, or -1.
 */
static __always_inline int pick(struct sk_reuseport_md *ctx, const struct smu_table *t, int active)
{
	__u32 n = active ? t->n_active : t->n_working, start, idx, slot;
	const __u32 *list = active ? t->active : t->working;
	int found = -1, i;

	if (n == 0 || n > SMU_MAX_MEMBERS)
		return -1;
	start = ctx->hash % n;
#pragma unroll
	for (i = 0; i < SMU_TRY_MAX; i++) {
		if ((__u32)i >= n || found >= 0)
			continue;
		idx = (start + i) % n;
		BOUND(idx); /* forget idx < n, which the mask then keeps bounded */
		idx = MASK(idx);
		slot = MASK(list[idx]);
		if (bpf_sk_select_reuseport(ctx, &members, &slot, 0) == 0)
			found = (int)slot;
	}
	return found;
}

/* The working generation, else any active member; -1: none selectable. */
static __always_inline int pick_working(struct sk_reuseport_md *ctx, const struct smu_table *t)
{
	int slot = pick(ctx, t, 0);

	if (slot < 0)
		slot = pick(ctx, t, 1);
	return slot;
}

/* The datagram's 4-tuple; 0, or -1 when a header cannot be read. */
static __always_inline int flow_key(struct sk_reuseport_md *ctx, struct smu_flow_key *k)
{
	const struct udphdr *uh = (const void *)(long)ctx->data;
	struct udphdr ucopy;

	if ((const void *)(uh + 1) > (const void *)(long)ctx->data_end) {
		if (bpf_skb_load_bytes(ctx, 0, &ucopy, sizeof(ucopy)))
			return -1;
		uh = &ucopy;
	}
	k->sport = uh->source;
	k->dport = uh->dest;
	/* the addresses alone, straight into the key */
	if (ctx->eth_protocol == bpf_htons(ETH_P_IP)) {
		__u32 a[2];

		if (bpf_skb_load_bytes_relative(ctx, offsetof(struct iphdr, saddr), a, sizeof(a),
						BPF_HDR_START_NET))
			return -1;
		k->family = AF_INET;
		k->saddr[0] = a[0];
		k->daddr[0] = a[1];
		return 0;
	}
	if (ctx->eth_protocol == bpf_htons(ETH_P_IPV6)) {
		k->family = AF_INET6;
		/* saddr then daddr, in the header as in the key */
		if (bpf_skb_load_bytes_relative(ctx, offsetof(struct ipv6hdr, saddr), k->saddr,
						2 * sizeof(k->saddr), BPF_HDR_START_NET))
			return -1;
		return 0;
	}
	return -1;
}

/* The slot of the owner recorded in @f when it still holds it; it is then
 * selected. NULL otherwise. */
static __always_inline const struct smu_slot *owner_selected(struct sk_reuseport_md *ctx,
							     const struct smu_flow *f)
{
	__u32 slot = MASK(f->slot);
	struct smu_slot *s = bpf_map_lookup_elem(&slots, &slot);

	if (!s || s->cookie != f->cookie || bpf_sk_select_reuseport(ctx, &members, &slot, 0))
		return 0;
	return s;
}

/* A datagram delivered to the member of @s by its flow or its CID: counted
 * when that member is not of the working generation (the slot's own
 * generation: a member registered again has a new one). */
static __always_inline void count_gen(const struct smu_config *cfg, const struct smu_slot *s,
				      struct smu_stats *st)
{
	if (s->generation != cfg->table_gen)
		st->old_gen++;
}

/* Record that flow @k (of QUIC client CID @scid, 0: none) belongs to the
 * socket of @slot from now on. */
static __always_inline void learn(const struct smu_flow_key *k, struct smu_flow *f, __u32 slot,
				  __u64 now, __u64 scid, struct smu_stats *st)
{
	__u32 s = MASK(slot);
	struct smu_slot *who = bpf_map_lookup_elem(&slots, &s);
	struct smu_flow nf = {};

	nf.cookie = who ? who->cookie : 0;
	nf.generation = who ? who->generation : 0;
	nf.slot = s;
	nf.last_ns = now;
	nf.quic_scid = scid;
	if (f) {
		/* known flow: its entry is rewritten in place */
		*f = nf;
		return;
	}
	if (bpf_map_update_elem(&flows, k, &nf, BPF_ANY) && st)
		st->not_learned++;
}

/* CLOCK_MONOTONIC in ns: coarse (see the top) when @coarse, a constant. */
static __always_inline __u64 now_ns(int coarse)
{
	return coarse ? bpf_ktime_get_coarse_ns() : bpf_ktime_get_ns();
}

/* Set the last-seen time @t to @now, writing only when it changes: the
 * coarse clock moves once a tick, so a slot or a flow's entry that many
 * CPUs' datagrams reach is written once a tick, not taken into each CPU's
 * cache for writing at every datagram. The value stored is the same. */
static __always_inline void touch(__u64 *t, __u64 now)
{
	if (*t != now)
		*t = now;
}

/* Payload offsets of a QUIC datagram, from the UDP header. */
#define QUIC_OFF       8 /* first octet */
#define QUIC_SHORT_CID (QUIC_OFF + 1)
#define QUIC_LONG_DCIL (QUIC_OFF + 5)
#define QUIC_LONG_CID  (QUIC_OFF + 6)
#define QUIC_MAX_READ  64 /* past any CID's last octet */
#define QUIC_V1	       0x00000001
#define QUIC_V2	       0x6b3343cf

/* Copy @n octets at offset @off from the UDP header: straight from the
 * packet when they are in its linear part (no helper call: the common
 * case), else with bpf_skb_load_bytes(), which fails past the datagram's
 * end. 0, or a negative errno. */
static __always_inline int pkt_read(struct sk_reuseport_md *ctx, __u32 off, void *to, __u32 n)
{
	const __u8 *p = (const void *)(long)ctx->data;
	const __u8 *end = (const void *)(long)ctx->data_end;

	/* the bound on off lets the verifier check the access */
	if (off <= QUIC_MAX_READ && p + off + n <= end) {
		__builtin_memcpy(to, p + off, n);
		return 0;
	}
	return bpf_skb_load_bytes(ctx, off, to, n);
}

/* The client's CID of a QUIC v1 or v2 Initial (the packet that starts a
 * connection; its Handshake, 0-RTT and Retry packets are not looked at):
 * its first 8 octets, 0 for none (another packet, protocol or version, a
 * zero-length CID, or unreadable). */
static __always_inline __u64 quic_scid(struct sk_reuseport_md *ctx)
{
	__u8 h[6], scil, c[8];
	__u32 ver, off, n;
	__u64 id = 0;
	int i;

	/* a long header (its fixed bit may be greased: RFC 9287), a version
	 * of ours, the DCID's length */
	if (pkt_read(ctx, QUIC_OFF, h, sizeof(h)) || !(h[0] & 0x80) || h[5] > SMU_QUIC_CID_MAX)
		return 0;
	ver = ((__u32)h[1] << 24) | ((__u32)h[2] << 16) | ((__u32)h[3] << 8) | h[4];
	/* an Initial: type 0 in v1, 1 in v2 (RFC 9369) */
	if (!(ver == QUIC_V1 && (h[0] & 0x30) == 0x00) &&
	    !(ver == QUIC_V2 && (h[0] & 0x30) == 0x10))
		return 0;
	off = QUIC_LONG_CID + h[5]; /* the SCID's length */
	BOUND(off);		    /* pkt_read() checks it again, for the verifier */
	/* 8 octets: a CID is followed by a Token Length and a Length at least */
	if (pkt_read(ctx, off, &scil, 1) || scil == 0 || scil > SMU_QUIC_CID_MAX ||
	    pkt_read(ctx, off + 1, c, sizeof(c)))
		return 0;
		/* big-endian, then the octets past a shorter CID shifted out: one
	 * path for the verifier */
#pragma unroll
	for (i = 0; i < (int)sizeof(c); i++)
		id = (id << 8) | c[i];
	n = scil < sizeof(c) ? scil : sizeof(c);
	return id >> ((sizeof(c) - n) * 8);
}

/* An encrypted CID at offset @off of @len octets: its server ID
 * decrypted into @cid[1..3]. 0, or -1 when unreadable. */
static __always_inline int quic_decrypt(struct sk_reuseport_md *ctx, __u32 off, __u32 len,
					__u8 *cid)
{
	__u8 left[SMQ_HALF_MAX] = {}, right[SMQ_HALF_MAX] = {};
	__u32 zero = 0, pt = len - 1, half = len / 2; /* ceil(pt / 2) */
	const struct smu_qkey *q = bpf_map_lookup_elem(&qkey, &zero);

	if (!q || pt < SMU_QUIC_CID_MIN - 1 || pt > SMQ_PT_MAX)
		return -1;
	if (pt == SMQ_SINGLE_LEN) {
		/* single pass: the 16 octets are one AES block */
		__u8 b[SMQ_AES_BLOCK];

		if (bpf_skb_load_bytes(ctx, off + 1, b, SMQ_AES_BLOCK))
			return -1;
		smq_aes128_decrypt(q->rk, q->isbox, b, b);
		cid[1] = b[0];
		cid[2] = b[1];
		cid[3] = b[2];
		return 0;
	}
	BOUND(half); /* 4 to 10: the verifier sees the bounds below */
	if (half < 4 || half > SMQ_HALF_MAX)
		return -1;
	/* the halves straight from the datagram: ciphertext octets 0 to
	 * half - 1 and pt - half to pt - 1 (the middle one in both when pt
	 * is odd) */
	if (bpf_skb_load_bytes(ctx, off + 1, left, half) ||
	    bpf_skb_load_bytes(ctx, off + 1 + pt - half, right, half))
		return -1;
	smq_mask(left, right, pt, half);
	smq_decrypt_left(q->rk, q->sbox, left, right, pt, half);
	cid[1] = left[0];
	cid[2] = left[1];
	cid[3] = left[2];
	return 0;
}

/* Mode quic-lb: select the member that the datagram's destination CID
 * names (its server ID decrypted first when @enc, a constant). 1:
 * selected (counted); 0: not routable by its CID (counted), the caller
 * goes on as mode flow. Every read checks the datagram's length
 * (pkt_read). */
static __always_inline int quic_route(struct sk_reuseport_md *ctx, const struct smu_config *cfg,
				      struct smu_stats *st, int coarse, int enc)
{
	__u32 len = cfg->quic_cid_len, off = QUIC_SHORT_CID, slot, gen;
	__u8 first, dcil, cid[4], last;
	struct smu_slot *s;

	if (len < SMU_QUIC_CID_MIN || len > SMU_QUIC_CID_MAX || pkt_read(ctx, QUIC_OFF, &first, 1))
		goto other;
	if (first & 0x80) {
		/* long header: the DCID's own length, which must be ours */
		if (pkt_read(ctx, QUIC_LONG_DCIL, &dcil, 1) || dcil != len)
			goto other;
		off = QUIC_LONG_CID;
	}
	/* the CID's first 4 octets, and its last one: it is whole */
	if (pkt_read(ctx, off, cid, sizeof(cid)) || pkt_read(ctx, off + len - 1, &last, 1))
		goto other;
	if ((__u32)(cid[0] >> 5) != cfg->quic_cr || (__u32)(cid[0] & 0x1f) != len - 1)
		goto other;
	if (enc && (!cfg->quic_enc || quic_decrypt(ctx, off, len, cid)))
		goto other;
	slot = ((__u32)cid[1] << 4) | (cid[2] >> 4);
	gen = ((__u32)(cid[2] & 0x0f) << 8) | cid[3];
	slot = MASK(slot);
	s = bpf_map_lookup_elem(&slots, &slot);
	if (s && s->cookie && (s->generation & SMU_QUIC_GEN_MASK) == gen &&
	    bpf_sk_select_reuseport(ctx, &members, &slot, 0) == 0) {
		touch(&s->last_cid_ns, now_ns(coarse));
		st->quic_hits++;
		count_gen(cfg, s, st);
		return 1;
	}
	st->quic_stale++;
	return 0;
other:
	st->quic_other++;
	return 0;
}

/* What a datagram that its flow's owner does not take is. */
enum { WHY_STATELESS, WHY_NEW, WHY_FALLBACK, WHY_EXPIRED };

static __always_inline int udp_select(struct sk_reuseport_md *ctx, int coarse, int enc)
{
	const struct smu_table *t;
	const struct smu_slot *owner;
	struct smu_config *cfg;
	struct smu_flow_key k = {};
	struct smu_stats *st;
	struct smu_flow *f = 0;
	__u32 zero = 0;
	__u64 now = 0, scid = 0;
	int slot, why = WHY_STATELESS;

	if (ctx->ip_protocol != IPPROTO_UDP)
		return SK_PASS;
	cfg = bpf_map_lookup_elem(&config, &zero);
	st = bpf_map_lookup_elem(&stats, &zero);
	if (!cfg || !st)
		return SK_PASS;

	if (cfg->mode == SMU_MODE_QUIC_LB && quic_route(ctx, cfg, st, coarse, enc))
		return SK_PASS;
	if (cfg->mode == SMU_MODE_FLOW || cfg->mode == SMU_MODE_QUIC_LB) {
		if (flow_key(ctx, &k)) {
			st->parse_failed++;
			return SK_PASS;
		}
		now = now_ns(coarse);
		scid = quic_scid(ctx);
		f = bpf_map_lookup_elem(&flows, &k);
		if (!f) {
			why = WHY_NEW;
		} else if (cfg->idle_timeout_ns && now - f->last_ns > cfg->idle_timeout_ns) {
			why = WHY_EXPIRED;
		} else if (scid && f->quic_scid && scid != f->quic_scid &&
			   f->generation != cfg->table_gen) {
			/* another QUIC connection from a 4-tuple that an
			 * older generation owns (one of the working
			 * generation keeps it, as the kernel's hash would) */
			why = WHY_NEW;
		} else if ((owner = owner_selected(ctx, f))) {
			touch(&f->last_ns, now);
			/* the 4-tuple's latest connection: the one whose
			 * Initials may still come (written when it changes) */
			if (scid && scid != f->quic_scid)
				f->quic_scid = scid;
			st->flow_hits++;
			count_gen(cfg, owner, st);
			return SK_PASS;
		} else {
			why = WHY_FALLBACK;
		}
	}

	/* learn CLAIM: the program writes no flow (one test of the config
	 * already read, past the hits) */
	if (cfg->learn == SMU_LEARN_CLAIM)
		why = WHY_STATELESS;
	/* the table only now: a known flow's datagram does without it */
	t = current_table();
	if (!t)
		return SK_PASS;
	slot = pick_working(ctx, t);
	if (slot < 0) {
		st->kernel_hash++;
		return SK_PASS;
	}
	if (why == WHY_STATELESS) {
		st->stateless++;
		return SK_PASS;
	}
	if (why == WHY_NEW) {
		st->new_flows++;
		if (f) /* a known flow: another QUIC connection */
			st->quic_new_conn++;
	} else if (why == WHY_EXPIRED)
		st->expired++;
	else
		st->fallbacks++;
	learn(&k, f, (__u32)slot, now, scid, st);
	return SK_PASS;
}

SEC("sk_reuseport")
int sockmig_udp(struct sk_reuseport_md *ctx)
{
	return udp_select(ctx, 1, 0);
}

SEC("sk_reuseport")
int sockmig_udp_ktime(struct sk_reuseport_md *ctx)
{
	return udp_select(ctx, 0, 0);
}

/* Mode quic-lb with encrypted CIDs (5.11+: loops, and the coarse clock). */
SEC("sk_reuseport")
int sockmig_udp_enc(struct sk_reuseport_md *ctx)
{
	return udp_select(ctx, 1, 1);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
