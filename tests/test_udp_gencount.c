// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Datagrams delivered to a member that is not of the working generation
 * (bpf/udp.bpf.c's old_gen, read by sockmig_udp_counters_read()), counted
 * exactly:
 *   1. mode flow, the rig's flows (tests/udp_rig.c): hits of generation 1's
 *      flows count 0 while it is working, each one after the flip to
 *      generation 2 counts 1, generation 2's own flows count 0; after a
 *      roll-back to 1 it is the other way round;
 *   2. mode quic-lb, short-header datagrams carrying a member's CID from
 *      one client socket: generation 1's CID after the flip counts,
 *      generation 2's does not;
 *   3. the versioned read: a size below the first version's is refused,
 *      no byte past the caller's size is written.
 * Loopback, each case in its own network namespace.
 */
#include <arpa/inet.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "udp_rig.h"

#define OLD    40 /* flows of generation 1 */
#define NEW    25 /* flows of generation 2, begun after the flip */
#define ROUNDS 3  /* rounds of every flow after the flip */

static long long old_gen(struct sockmig_udp_group *g)
{
	SOCKMIG_OPTS(sockmig_udp_counters, c);

	if (sockmig_udp_counters_read(g, &c) < 0) {
		printf("counters: %s\n", sockmig_last_error());
		return -1;
	}
	return (long long)c.old_generation;
}

/* (1) */
SM_TEST(udp_old_generation_counted_exactly)
{
	struct sockmig_udp_stats st;
	struct ur_rig r;
	int ret = SM_FAIL;
	uint32_t seq = 0;

	if (!ASSERT_OK(UR_START(OLD + NEW, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 0), "rig") ||
	    !ASSERT_OK(ur_add(&r, 1), "generation 1") ||
	    !ASSERT_OK(ur_round(&r, 0, OLD, ++seq), "new flows of generation 1") ||
	    !ASSERT_OK(ur_round(&r, 0, OLD, ++seq), "their hits, generation 1 working") ||
	    !ASSERT_EQ(old_gen(r.g), 0, "old generation, before the flip"))
		goto out;
	/* the flip: generation 2 is working from its registration on */
	if (!ASSERT_EQ(ur_add(&r, 2), 1, "generation 2"))
		goto out;
	for (int k = 0; k < ROUNDS; k++)
		if (!ASSERT_OK(ur_round(&r, 0, OLD + NEW, ++seq), "a round after the flip"))
			goto out;
	for (int i = 0; i < OLD + NEW; i++)
		if (!ASSERT_EQ(r.last[i], i < OLD ? 1 : 2, "a flow's owner"))
			goto out;
	if (!ASSERT_EQ(r.lost, 0, "unanswered") || !ASSERT_EQ(r.misrouted, 0, "misrouted") ||
	    !ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    !ASSERT_EQ(st.new_flows, OLD + NEW, "new flows") ||
	    !ASSERT_EQ(st.flow_hits, OLD + ROUNDS * OLD + (ROUNDS - 1) * NEW, "hits") ||
	    !ASSERT_EQ(st.working_generation, 2, "working") ||
	    !ASSERT_EQ(old_gen(r.g), ROUNDS * OLD, "old generation: generation 1's hits"))
		goto out;
	/* a roll-back: generation 1 working again, generation 2's hits count */
	if (!ASSERT_OK(sockmig_udp_set_working(r.g, 1), "set working 1") ||
	    !ASSERT_OK(ur_round(&r, 0, OLD + NEW, ++seq), "a round after the roll-back") ||
	    !ASSERT_EQ(r.lost, 0, "unanswered") || !ASSERT_EQ(r.misrouted, 0, "misrouted") ||
	    !ASSERT_EQ(old_gen(r.g), ROUNDS * OLD + NEW, "old generation after the roll-back"))
		goto out;
	/* generation 1's socket closes: the roll-back ends with it, and a new
	 * socket of generation 1 does not take the new flows from 2 */
	ur_close_sock(&r, 0);
	if (!ASSERT_EQ(ur_add(&r, 1), 2, "a new socket of generation 1") ||
	    !ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    !ASSERT_EQ(st.working_generation, 2, "working after generation 1's close"))
		goto out;
	ret = SM_PASS;
out:
	ur_stop(&r);
	return ret;
}

#define CIDS 30 /* datagrams per CID and step */

/* A server socket of generation @gen on @a, a member of @g; -1 on error. */
static int server(struct sockmig_udp_group *g, const struct sockaddr_in *a, uint32_t gen)
{
	SOCKMIG_OPTS(sockmig_udp_member_opts, mo, .generation = gen);
	int one = 1, fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (const struct sockaddr *)a, sizeof(*a)) < 0 ||
	    sockmig_udp_member_add(g, fd, &mo) < 0) {
		printf("server of generation %u: %s\n", gen, sockmig_last_error());
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* CIDS 1-RTT datagrams (short header, then @cid) from @cli, then each
 * server's count of what it received into @got (within 2 s). */
static int send_cid(int cli, const struct sockaddr_in *a, const uint8_t *cid, int cl,
		    const int *srv, int *got)
{
	uint8_t b[64];
	uint64_t end;
	int want = CIDS, have = 0;

	memset(b, 0x5a, sizeof(b));
	b[0] = 0x40; /* header form 0, fixed bit */
	memcpy(b + 1, cid, (size_t)cl);
	for (int i = 0; i < CIDS; i++)
		if (sendto(cli, b, sizeof(b), 0, (const struct sockaddr *)a, sizeof(*a)) !=
		    (ssize_t)sizeof(b))
			return -1;
	got[0] = got[1] = 0;
	end = ur_now_ms() + 2000;
	while (have < want && ur_now_ms() < end) {
		struct pollfd p[2] = {{.fd = srv[0], .events = POLLIN},
				      {.fd = srv[1], .events = POLLIN}};

		if (poll(p, 2, 100) <= 0)
			continue;
		for (int k = 0; k < 2; k++)
			while ((p[k].revents & POLLIN) && recv(srv[k], b, sizeof(b), 0) > 0) {
				got[k]++;
				have++;
			}
	}
	return have == want ? 0 : -1;
}

/* (2) */
SM_TEST(udp_old_generation_counts_quic_cid_hits)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(UR_PORT),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .mode = SOCKMIG_UDP_MODE_QUIC_LB);
	struct sockmig_udp_group *g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &go);
	struct sockmig_quic_stats q;
	int srv[2] = {-1, -1}, cli = -1, got[2], ret = SM_FAIL, l1 = -1, l2 = -1;
	uint8_t cid1[SOCKMIG_QUIC_CID_MAX], cid2[SOCKMIG_QUIC_CID_MAX];

	if (!ASSERT_TRUE(g != NULL, "group") || !ASSERT_OK(srv[0] = server(g, &a, 1), "gen 1") ||
	    !ASSERT_GT(l1 = sockmig_quic_cid_encode(g, srv[0], cid1, sizeof(cid1)), 0, "CID 1") ||
	    !ASSERT_OK(cli = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "client") ||
	    !ASSERT_OK(send_cid(cli, &a, cid1, l1, srv, got), "CID 1, generation 1 working") ||
	    !ASSERT_EQ(got[0], CIDS, "to generation 1") ||
	    !ASSERT_EQ(old_gen(g), 0, "old generation, before the flip"))
		goto out;
	if (!ASSERT_OK(srv[1] = server(g, &a, 2), "generation 2: the flip") ||
	    !ASSERT_GT(l2 = sockmig_quic_cid_encode(g, srv[1], cid2, sizeof(cid2)), 0, "CID 2") ||
	    !ASSERT_OK(send_cid(cli, &a, cid1, l1, srv, got), "CID 1 after the flip") ||
	    !ASSERT_EQ(got[0], CIDS, "to generation 1") ||
	    !ASSERT_EQ(old_gen(g), CIDS, "old generation: CID 1's datagrams") ||
	    !ASSERT_OK(send_cid(cli, &a, cid2, l2, srv, got), "CID 2") ||
	    !ASSERT_EQ(got[1], CIDS, "to generation 2") ||
	    !ASSERT_EQ(old_gen(g), CIDS, "old generation: CID 2's add none") ||
	    !ASSERT_OK(sockmig_quic_stats_read(g, &q), "quic stats") ||
	    !ASSERT_EQ(q.hits, 3 * CIDS, "CID hits"))
		goto out;
	ret = SM_PASS;
out:
	for (int k = 0; k < 2; k++)
		if (srv[k] >= 0)
			close(srv[k]);
	if (cli >= 0)
		close(cli);
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
	return ret;
}

/* (3) */
SM_TEST(udp_counters_read_sizes)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(UR_PORT),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockmig_udp_group *g =
		sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
	const size_t sz = sizeof(struct sockmig_udp_counters);
	unsigned char *buf = malloc(sz + 16);
	struct sockmig_udp_counters *c = (void *)buf;
	int ret = SM_FAIL;
	bool kept = true;

	if (!buf || !ASSERT_TRUE(g != NULL, "group"))
		goto out;
	memset(buf, 0xaa, sz + 16);
	c->sz = sizeof(size_t); /* no counter at all */
	if (!ASSERT_ERR(sockmig_udp_counters_read(g, c), EINVAL, "a size below the first") ||
	    !ASSERT_ERR(sockmig_udp_counters_read(g, NULL), EINVAL, "no result") ||
	    !ASSERT_ERR(sockmig_udp_counters_read(NULL, c), EINVAL, "no group"))
		goto out;
	c->sz = sz;
	if (!ASSERT_OK(sockmig_udp_counters_read(g, c), "this version's size") ||
	    !ASSERT_EQ(c->sz, sz, "sz kept") || !ASSERT_EQ(c->old_generation, 0, "counted"))
		goto out;
	for (size_t i = sz; i < sz + 16; i++)
		kept = kept && buf[i] == 0xaa;
	if (!ASSERT_TRUE(kept, "no byte written past sz"))
		goto out;
	/* the first version's caller: old_generation, nothing past it */
	memset(buf, 0xaa, sz + 16);
	c->sz = offsetof(struct sockmig_udp_counters, quic_new_connections);
	if (!ASSERT_OK(sockmig_udp_counters_read(g, c), "the first version's size") ||
	    !ASSERT_EQ(c->old_generation, 0, "counted"))
		goto out;
	for (size_t i = offsetof(struct sockmig_udp_counters, quic_new_connections); i < sz + 16;
	     i++)
		kept = kept && buf[i] == 0xaa;
	if (!ASSERT_TRUE(kept, "no byte written past the first version"))
		goto out;
	/* a newer caller's larger struct: ours filled, the rest left alone */
	memset(buf, 0xaa, sz + 16);
	c->sz = sz + 16;
	if (!ASSERT_OK(sockmig_udp_counters_read(g, c), "a larger size") ||
	    !ASSERT_EQ(c->sz, sz + 16, "its sz kept") ||
	    !ASSERT_EQ(c->old_generation, 0, "counted"))
		goto out;
	for (size_t i = sz; i < sz + 16; i++)
		kept = kept && buf[i] == 0xaa;
	if (!ASSERT_TRUE(kept, "the bytes unknown here left alone"))
		goto out;
	ret = SM_PASS;
out:
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
	free(buf);
	return ret;
}
