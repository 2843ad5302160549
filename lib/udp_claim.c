// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups: a flow claimed by a member (sockmig_udp_flow_claim()). The
 * claim writes the flow's entry into the group's table as the program
 * writes a learned one (bpf/udp.bpf.c), so the program cannot tell them
 * apart: the flow's datagrams go to the claimer while it lives in its
 * slot and the flow is not idle past the timeout. In a group of learn
 * CLAIM this is the only writer of flows.
 *
 * No group lock: a claim that races a member's leave writes an entry whose
 * cookie no longer matches its slot, which the program treats as an owner
 * gone (to the working generation), as after any close.
 */
#include <bpf/bpf.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include "udp_priv.h"

int sm_udp_fd_slot(struct sockmig_udp_group *g, int fd, const struct smu_config *c,
		   struct smu_slot *s, uint64_t *cookie)
{
	uint32_t hw = c->slots_hw > SMU_MAX_MEMBERS ? SMU_MAX_MEMBERS : c->slots_hw, first = 0;
	uint64_t live;

	*cookie = sockmig_cookie(fd);
	if (!*cookie)
		return sm_fail(errno ? errno : EINVAL, "cannot read the cookie of fd %d: %s", fd,
			       strerror(errno ? errno : EINVAL));
	/* a hint only (every slot is checked below), so relaxed: threads may
	 * share the handle */
	if (__atomic_load_n(&g->last_cookie, __ATOMIC_RELAXED) == *cookie)
		first = __atomic_load_n(&g->last_slot, __ATOMIC_RELAXED);
	for (uint32_t n = 0; n < hw; n++) {
		uint32_t i = (first + n) % hw;

		if (bpf_map_lookup_elem(g->fd[UFD_SLOTS], &i, s) < 0 || s->cookie != *cookie)
			continue;
		/* the socket array holds it: the socket is open */
		if (bpf_map_lookup_elem(g->fd[UFD_MEMBERS], &i, &live) == 0 && live == *cookie) {
			__atomic_store_n(&g->last_cookie, *cookie, __ATOMIC_RELAXED);
			__atomic_store_n(&g->last_slot, i, __ATOMIC_RELAXED);
			return (int)i;
		}
	}
	return sm_fail(ENOENT, "fd %d is not a live member of UDP group %s", fd, g->base.name);
}

static bool v4_mapped(const struct in6_addr *a)
{
	return IN6_IS_ADDR_V4MAPPED(a);
}

/* The flow key from @peer to the group's address, as the program reads it
 * from a datagram (udp.h: a v4 datagram to a v6 socket is AF_INET). */
static int claim_key(struct sockmig_udp_group *g, const struct sockaddr *peer, socklen_t len,
		     struct smu_flow_key *k)
{
	const struct sm_addr *me = &g->base.addr;

	memset(k, 0, sizeof(*k));
	if (!peer || peer->sa_family != me->family)
		return sm_fail(EINVAL, "flow claim: the peer is not an %s address like group %s's",
			       me->family == AF_INET ? "IPv4" : "IPv6", g->base.name);
	if (me->family == AF_INET) {
		const struct sockaddr_in *p = (const struct sockaddr_in *)peer;

		if (len < sizeof(*p) || p->sin_port == 0 || p->sin_addr.s_addr == 0)
			return sm_fail(EINVAL, "flow claim: the peer has no address or port");
		if (me->v4.sin_addr.s_addr == htonl(INADDR_ANY))
			goto wildcard;
		k->family = AF_INET;
		k->sport = p->sin_port;
		k->dport = me->v4.sin_port;
		k->saddr[0] = p->sin_addr.s_addr;
		k->daddr[0] = me->v4.sin_addr.s_addr;
		return 0;
	}
	const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)peer;

	if (len < sizeof(*p) || p->sin6_port == 0 || IN6_IS_ADDR_UNSPECIFIED(&p->sin6_addr))
		return sm_fail(EINVAL, "flow claim: the peer has no address or port");
	/* :: and ::ffff:0.0.0.0 (the IPv4 wildcard of a v6 socket) */
	if (IN6_IS_ADDR_UNSPECIFIED(&me->v6.sin6_addr) ||
	    (v4_mapped(&me->v6.sin6_addr) && me->v6.sin6_addr.s6_addr32[3] == 0))
		goto wildcard;
	if (v4_mapped(&p->sin6_addr) != v4_mapped(&me->v6.sin6_addr))
		return sm_fail(EINVAL, "flow claim: an IPv4-mapped peer needs an IPv4-mapped "
				       "group address, and only it");
	k->sport = p->sin6_port;
	k->dport = me->v6.sin6_port;
	if (v4_mapped(&p->sin6_addr)) {
		k->family = AF_INET;
		memcpy(&k->saddr[0], &p->sin6_addr.s6_addr[12], 4);
		memcpy(&k->daddr[0], &me->v6.sin6_addr.s6_addr[12], 4);
		return 0;
	}
	k->family = AF_INET6;
	memcpy(k->saddr, &p->sin6_addr, sizeof(k->saddr));
	memcpy(k->daddr, &me->v6.sin6_addr, sizeof(k->daddr));
	return 0;
wildcard:
	return sm_fail(EINVAL,
		       "flow claim: group %s is bound to the wildcard address: which of its "
		       "addresses a peer sends to is not known (bind the members to one)",
		       g->base.name);
}

int sockmig_udp_flow_claim(struct sockmig_udp_group *g, int fd, const struct sockaddr *peer,
			   socklen_t len)
{
	struct smu_flow_key k;
	struct smu_flow f = {};
	struct smu_config c;
	struct smu_slot s;
	struct timespec ts;
	uint32_t zero = 0;
	uint64_t cookie;
	int slot, err;

	if (!g)
		return sm_fail(EINVAL, "flow claim: no group");
	err = claim_key(g, peer, len, &k);
	if (err)
		return err;
	if (bpf_map_lookup_elem(g->fd[UFD_CONFIG], &zero, &c) < 0)
		return sm_fail(errno, "cannot read the config of %s: %s", g->base.name,
			       strerror(errno));
	if (c.mode == SMU_MODE_NONE)
		return sm_fail(EINVAL, "UDP group %s runs mode none: it keeps no flow",
			       g->base.name);
	err = sm_udp_check_member_fd(g, fd);
	if (err)
		return err;
	slot = sm_udp_fd_slot(g, fd, &c, &s, &cookie);
	if (slot < 0)
		return slot;
	/* the program's clock is CLOCK_MONOTONIC, coarse where it can be
	 * (udp.bpf.c): the coarse one here is never ahead of either, so the
	 * program never sees the entry from the future (which its unsigned
	 * idle test would take for idle) */
	if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) < 0)
		return sm_fail(errno, "cannot read the clock: %s", strerror(errno));
	f.cookie = cookie;
	f.last_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	f.slot = (uint32_t)slot;
	f.generation = s.generation;
	if (bpf_map_update_elem(g->fd[UFD_FLOWS], &k, &f, BPF_ANY) < 0)
		return sm_fail(errno, "cannot write a flow of %s: %s", g->base.name,
			       strerror(errno));
	return 0;
}
