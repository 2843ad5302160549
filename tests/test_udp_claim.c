// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Flows claimed by a member (sockmig_udp_flow_claim()) and groups that
 * learn only those (SOCKMIG_UDP_LEARN_CLAIM), on loopback with plain
 * client sockets, one per flow:
 *   1. a claimed flow's datagrams reach the claimer across flips, none
 *      elsewhere; after the claimer closes, the working generation's;
 *      in a group that learns on receive, a claim takes a learned flow;
 *   2. a first flight of 2 datagrams with a flip between them: a group
 *      that learns on receive keeps both on one socket; one that learns
 *      only claims splits every flight (the transmit-learned baseline),
 *      unless the server claimed the flow between them;
 *   3. mode quic-lb: routing by CID unchanged, its flow fallback learns
 *      only claims;
 *   4. the claim's errors, and the learning fixed at a group's making.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"

#define CL_PORT	       34710
#define CL_CLIENT_PORT 41000 /* clients' source ports: 41000 to 41999 */
#define CL_SOCKS       24
#define CL_FLOWS       16
#define CL_ROUNDS      20

static struct sockaddr_in cl_addr(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static struct sockmig_udp_group *cl_group(enum sockmig_udp_learn learn)
{
	struct sockaddr_in a = cl_addr(CL_PORT);
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .learn = learn);
	struct sockmig_udp_group *g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &go);

	if (!g)
		printf("group open: %s\n", sockmig_last_error());
	return g;
}

static void cl_group_end(struct sockmig_udp_group *g)
{
	if (!g)
		return;
	sockmig_udp_group_destroy(g);
	sockmig_udp_group_close(g);
}

/* A server socket bound to @a, a member of @gen when @g: or -1. */
static int cl_server_at(struct sockmig_udp_group *g, uint32_t gen, const struct sockaddr *a,
			socklen_t len)
{
	int one = 1, fd = socket(a->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	SOCKMIG_OPTS(sockmig_udp_member_opts, mo, .generation = gen);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, a, len) < 0) {
		printf("server socket: %s\n", strerror(errno));
		goto fail;
	}
	if (g && sockmig_udp_member_add(g, fd, &mo) < 0) {
		printf("member add: %s\n", sockmig_last_error());
		goto fail;
	}
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

/* A server socket of the group's port (127.0.0.1), a member of @gen when @g. */
static int cl_server(struct sockmig_udp_group *g, uint32_t gen)
{
	struct sockaddr_in a = cl_addr(CL_PORT);

	return cl_server_at(g, gen, (struct sockaddr *)&a, sizeof(a));
}

/* A client socket connected to the group's port; its address into @me.
 * Each client of a case has a source port of its own: an ephemeral port
 * that comes again (about 1 run in 100 for 3 x 16 clients) would be an
 * earlier client's 4-tuple, whose flow the group still knows. */
static int cl_client(struct sockaddr_in *me)
{
	static int next;
	struct sockaddr_in a = cl_addr(CL_PORT), src = cl_addr(CL_CLIENT_PORT + next++ % 1000);
	socklen_t len = sizeof(*me);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)me, &len) < 0) {
		printf("client socket: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Which of the @n server sockets @srv (-1: closed) reads the one datagram
 * (@len octets of @d) that client @c sends now (within 2 s): its index;
 * -1 none; -2 more than one, or from another source. */
static int cl_who_data(int c, uint16_t port, const int *srv, int n, const void *d, size_t len)
{
	struct pollfd p[CL_SOCKS];
	int who = -1;

	if (send(c, d, len, 0) != (ssize_t)len) {
		printf("send: %s\n", strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++)
		p[i] = (struct pollfd){.fd = srv[i], .events = POLLIN};
	if (poll(p, (nfds_t)n, 2000) <= 0)
		return -1;
	/* loopback delivers in the sender's context: nothing more comes */
	for (int i = 0; i < n; i++) {
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		char b[64];

		if (srv[i] < 0)
			continue;
		while (recvfrom(srv[i], b, sizeof(b), 0, (struct sockaddr *)&from, &flen) ==
		       (ssize_t)len) {
			/* sin_port and sin6_port are at one offset */
			if (who != -1 || ((struct sockaddr_in *)&from)->sin_port != port)
				return -2;
			who = i;
		}
	}
	return who;
}

static int cl_who(int c, const struct sockaddr_in *me, const int *srv, int n)
{
	return cl_who_data(c, me->sin_port, srv, n, "x", 1);
}

static bool cl_stats(struct sockmig_udp_group *g, long long new_flows, long long hits,
		     long long stateless)
{
	struct sockmig_udp_stats st;

	return ASSERT_OK(sockmig_udp_stats_read(g, &st), "stats") &&
	       ASSERT_EQ(st.new_flows, new_flows, "new flows") &&
	       ASSERT_EQ(st.flow_hits, hits, "flow hits") &&
	       ASSERT_EQ(st.stateless, stateless, "unlearned") &&
	       ASSERT_EQ(st.fallbacks + st.expired + st.kernel_hash + st.not_learned, 0, "others");
}

static void cl_close_all(int *fd, int n)
{
	for (int i = 0; i < n; i++)
		if (fd[i] >= 0)
			close(fd[i]);
}

/* A learn-claim group: a flow claimed by s[0] (generation 0) reaches it
 * through 2 flips (generations 1 and 2), round after round; an unclaimed
 * flow, the working generation's; once s[0] closes, the claimed flow goes
 * to generation 2's sockets and is not learned there. */
SM_TEST(udp_claim_follows_claimer)
{
	struct sockmig_udp_group *g = cl_group(SOCKMIG_UDP_LEARN_CLAIM);
	int srv[4] = {-1, -1, -1, -1}, c = -1, free_c = -1, per[4] = {0}, free_old = 0, bad = 0;
	struct sockaddr_in me, free_me;
	int ret = SM_FAIL;

	if (!g || (srv[0] = cl_server(g, 0)) < 0 || (c = cl_client(&me)) < 0 ||
	    (free_c = cl_client(&free_me)) < 0)
		goto out;
	if (!ASSERT_OK(sockmig_udp_flow_claim(g, srv[0], (struct sockaddr *)&me, sizeof(me)),
		       "claim"))
		goto out;
	for (int gen = 0; gen < 3; gen++) {
		if (gen && (srv[gen] = cl_server(g, (uint32_t)gen)) < 0)
			goto out;
		for (int r = 0; r < CL_ROUNDS; r++) {
			int w = cl_who(c, &me, srv, 3), f = cl_who(free_c, &free_me, srv, 3);

			if (w < 0 || f < 0)
				bad++;
			else
				per[w]++;
			if (f >= 0 && f != gen)
				free_old++;
		}
	}
	if (!ASSERT_EQ(bad, 0, "lost or doubled") ||
	    !ASSERT_EQ(per[0], 3 * CL_ROUNDS, "claimed flow at its claimer") ||
	    !ASSERT_EQ(per[1] + per[2], 0, "claimed flow elsewhere") ||
	    !ASSERT_EQ(free_old, 0, "unclaimed flow off the working generation") ||
	    !cl_stats(g, 0, 3 * CL_ROUNDS, 3 * CL_ROUNDS))
		goto out;
	/* the claimer closes: to generation 2 (two sockets now), unlearned */
	if ((srv[3] = cl_server(g, 2)) < 0)
		goto out;
	close(srv[0]);
	srv[0] = -1;
	memset(per, 0, sizeof(per));
	for (int r = 0; r < CL_ROUNDS; r++) {
		int w = cl_who(c, &me, srv, 4);

		if (w < 0)
			bad++;
		else
			per[w]++;
	}
	if (!ASSERT_EQ(bad, 0, "lost or doubled after the close") ||
	    !ASSERT_EQ(per[2] + per[3], CL_ROUNDS, "to the working generation") ||
	    !ASSERT_EQ(per[1], 0, "to generation 1") ||
	    !cl_stats(g, 0, 3 * CL_ROUNDS, 4 * CL_ROUNDS))
		goto out;
	ret = SM_PASS;
out:
	cl_close_all(srv, 4);
	if (c >= 0)
		close(c);
	if (free_c >= 0)
		close(free_c);
	cl_group_end(g);
	return ret;
}

/* A learn-receive group: a flow learned by s[0] at its first datagram is
 * claimed by s[1] (an older generation's, draining): from then on at s[1]. */
SM_TEST(udp_claim_takes_learned_flow)
{
	struct sockmig_udp_group *g = cl_group(SOCKMIG_UDP_LEARN_DEFAULT);
	int srv[3] = {-1, -1, -1}, c = -1, per[3] = {0}, bad = 0, first;
	struct sockaddr_in me;
	int ret = SM_FAIL;

	if (!g || (srv[1] = cl_server(g, 1)) < 0 || (srv[0] = cl_server(g, 2)) < 0 ||
	    (c = cl_client(&me)) < 0 ||
	    !ASSERT_EQ(sockmig_udp_generation_drain(g, 1), 1, "drain generation 1"))
		goto out;
	first = cl_who(c, &me, srv, 2);
	if (!ASSERT_EQ(first, 0, "first datagram at generation 2") ||
	    !ASSERT_OK(sockmig_udp_flow_claim(g, srv[1], (struct sockaddr *)&me, sizeof(me)),
		       "claim by the draining member") ||
	    (srv[2] = cl_server(g, 3)) < 0)
		goto out;
	for (int r = 0; r < CL_ROUNDS; r++) {
		int w = cl_who(c, &me, srv, 3);

		if (w < 0)
			bad++;
		else
			per[w]++;
	}
	if (!ASSERT_EQ(bad, 0, "lost or doubled") ||
	    !ASSERT_EQ(per[1], CL_ROUNDS, "at the claimer") ||
	    !ASSERT_EQ(per[0] + per[2], 0, "elsewhere") || !cl_stats(g, 1, CL_ROUNDS, 0))
		goto out;
	ret = SM_PASS;
out:
	cl_close_all(srv, 3);
	if (c >= 0)
		close(c);
	cl_group_end(g);
	return ret;
}

/* Mode quic-lb, learn CLAIM: datagrams to a member's CID reach it across
 * a flip, as ever; a flow without one (a client's Initial) is not learned,
 * so its 2 datagrams around the flip split, until a member claims it. */
SM_TEST(udp_claim_quic_lb_fallback)
{
	struct sockaddr_in a = cl_addr(CL_PORT), me, ini_me;
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .mode = SOCKMIG_UDP_MODE_QUIC_LB,
		     .learn = SOCKMIG_UDP_LEARN_CLAIM);
	struct sockmig_udp_group *g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &go);
	int srv[2] = {-1, -1}, c = -1, ini = -1, at_cid = 0, at_claim = 0, bad = 0, w1, w2;
	uint8_t d[32], other[32];
	struct sockmig_quic_stats q;
	int ret = SM_FAIL;

	memset(d, 0x40, sizeof(d));
	memset(other, 0xff, sizeof(other)); /* config rotation 7: no CID of ours */
	other[0] = 0x40;
	if (!ASSERT_TRUE(g, sockmig_last_error()) || (srv[0] = cl_server(g, 0)) < 0 ||
	    (c = cl_client(&me)) < 0 || (ini = cl_client(&ini_me)) < 0 ||
	    !ASSERT_EQ(sockmig_quic_cid_encode(g, srv[0], d + 1, sizeof(d) - 1), 8, "CID"))
		goto out;
	w1 = cl_who_data(ini, ini_me.sin_port, srv, 1, other, sizeof(other));
	if ((srv[1] = cl_server(g, 1)) < 0)
		goto out;
	w2 = cl_who_data(ini, ini_me.sin_port, srv, 2, other, sizeof(other));
	if (!ASSERT_EQ(w1, 0, "Initial before the flip") ||
	    !ASSERT_EQ(w2, 1, "Initial after the flip: split, not learned"))
		goto out;
	for (int r = 0; r < CL_ROUNDS; r++) {
		int w = cl_who_data(c, me.sin_port, srv, 2, d, sizeof(d));

		at_cid += w == 0;
		bad += w < 0;
	}
	if (!ASSERT_OK(
		    sockmig_udp_flow_claim(g, srv[0], (struct sockaddr *)&ini_me, sizeof(ini_me)),
		    "claim"))
		goto out;
	for (int r = 0; r < CL_ROUNDS; r++) {
		int w = cl_who_data(ini, ini_me.sin_port, srv, 2, other, sizeof(other));

		at_claim += w == 0;
		bad += w < 0;
	}
	if (!ASSERT_EQ(bad, 0, "lost or doubled") ||
	    !ASSERT_EQ(at_cid, CL_ROUNDS, "by CID at its member") ||
	    !ASSERT_EQ(at_claim, CL_ROUNDS, "claimed at its claimer") ||
	    !cl_stats(g, 0, CL_ROUNDS, 2) || !ASSERT_OK(sockmig_quic_stats_read(g, &q), "quic") ||
	    !ASSERT_EQ(q.hits, CL_ROUNDS, "CID hits") ||
	    !ASSERT_EQ(q.other, CL_ROUNDS + 2, "no CID of ours"))
		goto out;
	ret = SM_PASS;
out:
	cl_close_all(srv, 2);
	if (c >= 0)
		close(c);
	if (ini >= 0)
		close(ini);
	cl_group_end(g);
	return ret;
}

/* One IPv6 group: a claimed flow from [::1] through a flip, at its claimer
 * @rounds of @rounds. @srv_a: the group's address; @cli_a: where the
 * client sends (another family for an IPv4-mapped group); @peer: the
 * client's address as the claim names it. */
static bool cl_v6_claimed(const struct sockaddr_in6 *srv_a, const struct sockaddr *cli_a,
			  socklen_t cli_len, bool mapped)
{
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .learn = SOCKMIG_UDP_LEARN_CLAIM);
	struct sockmig_udp_group *g =
		sockmig_udp_group_open((const struct sockaddr *)srv_a, sizeof(*srv_a), &go);
	struct sockaddr_storage me;
	struct sockaddr_in6 peer = {.sin6_family = AF_INET6};
	socklen_t len = sizeof(me);
	int srv[2] = {-1, -1}, c = -1, at = 0;
	uint16_t port;
	bool ok = false;

	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    (srv[0] = cl_server_at(g, 0, (const struct sockaddr *)srv_a, sizeof(*srv_a))) < 0 ||
	    !ASSERT_TRUE((c = socket(cli_a->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) >= 0,
			 "client") ||
	    !ASSERT_OK(connect(c, cli_a, cli_len), "connect") ||
	    !ASSERT_OK(getsockname(c, (struct sockaddr *)&me, &len), "getsockname"))
		goto out;
	port = ((struct sockaddr_in *)&me)->sin_port;
	peer.sin6_port = port;
	if (mapped) {
		peer.sin6_addr.s6_addr[10] = peer.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&peer.sin6_addr.s6_addr[12], &((struct sockaddr_in *)&me)->sin_addr, 4);
	} else {
		peer.sin6_addr = ((struct sockaddr_in6 *)&me)->sin6_addr;
	}
	if (!mapped) {
		struct sockaddr_in6 m = peer;

		inet_pton(AF_INET6, "::ffff:127.0.0.1", &m.sin6_addr);
		if (!ASSERT_ERR(sockmig_udp_flow_claim(g, srv[0], (struct sockaddr *)&m, sizeof(m)),
				EINVAL, "IPv4-mapped peer of an IPv6 group"))
			goto out;
	}
	if (!ASSERT_OK(sockmig_udp_flow_claim(g, srv[0], (struct sockaddr *)&peer, sizeof(peer)),
		       "claim") ||
	    (srv[1] = cl_server_at(g, 1, (const struct sockaddr *)srv_a, sizeof(*srv_a))) < 0)
		goto out;
	for (int r = 0; r < CL_ROUNDS; r++)
		at += cl_who_data(c, port, srv, 2, "x", 1) == 0;
	ok = ASSERT_EQ(at, CL_ROUNDS, mapped ? "IPv4-mapped: at the claimer" : "at the claimer") &&
	     cl_stats(g, 0, CL_ROUNDS, 0);
out:
	cl_close_all(srv, 2);
	if (c >= 0)
		close(c);
	cl_group_end(g);
	return ok;
}

/* IPv6: a group of [::1], and one of ::ffff:127.0.0.1 whose clients are
 * IPv4 (the program keys their flows as IPv4): a claimed flow stays at
 * its claimer through a flip; a v4-mapped peer of a plain IPv6 group is
 * refused. */
SM_TEST(udp_claim_ipv6)
{
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(CL_PORT)};
	struct sockaddr_in6 m6 = {.sin6_family = AF_INET6, .sin6_port = htons(CL_PORT + 2)};
	struct sockaddr_in v4 = cl_addr(CL_PORT + 2);

	v6.sin6_addr = in6addr_loopback;
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &m6.sin6_addr);
	if (!cl_v6_claimed(&v6, (struct sockaddr *)&v6, sizeof(v6), false) ||
	    !cl_v6_claimed(&m6, (struct sockaddr *)&v4, sizeof(v4), true))
		return SM_FAIL;
	return SM_PASS;
}

/*
 * CL_FLOWS first flights of 2 datagrams, each from a client of its own;
 * before each flight's second datagram a new generation's socket joins
 * (a flip). The socket that read each datagram is compared: how many
 * flights were split. @claim: the socket that read the first datagram
 * claims the flow before the second (as a server that answers first).
 */
static int cl_flights(enum sockmig_udp_learn learn, bool claim, int *split)
{
	struct sockmig_udp_group *g = cl_group(learn);
	int srv[CL_SOCKS], ret = -1;

	for (int i = 0; i < CL_SOCKS; i++)
		srv[i] = -1;
	*split = 0;
	if (!g || (srv[0] = cl_server(g, 0)) < 0)
		goto out;
	for (int i = 0; i < CL_FLOWS; i++) {
		struct sockaddr_in me;
		int c = cl_client(&me), a, b;

		if (c < 0)
			goto out;
		a = cl_who(c, &me, srv, i + 1);
		if (a >= 0 && claim &&
		    sockmig_udp_flow_claim(g, srv[a], (struct sockaddr *)&me, sizeof(me)) < 0)
			printf("claim: %s\n", sockmig_last_error());
		srv[i + 1] = cl_server(g, (uint32_t)i + 1);
		b = srv[i + 1] < 0 ? -1 : cl_who(c, &me, srv, i + 2);
		close(c);
		if (!ASSERT_EQ(a, i, "first datagram at the working generation") ||
		    !ASSERT_TRUE(b >= 0, "second datagram read once"))
			goto out;
		*split += a != b;
	}
	ret = 0;
out:
	cl_close_all(srv, CL_SOCKS);
	cl_group_end(g);
	return ret;
}

/* The pair the real-QUIC run reproduces: learn on receive, 0 of CL_FLOWS
 * split; learn only claims, CL_FLOWS of CL_FLOWS split; claimed between
 * the datagrams, 0 split. */
SM_TEST(udp_claim_first_flight_split)
{
	int split_rx = -1, split_claim = -1, split_claimed = -1;

	if (!ASSERT_OK(cl_flights(SOCKMIG_UDP_LEARN_RECEIVE, false, &split_rx), "receive") ||
	    !ASSERT_OK(cl_flights(SOCKMIG_UDP_LEARN_CLAIM, false, &split_claim), "claim") ||
	    !ASSERT_OK(cl_flights(SOCKMIG_UDP_LEARN_CLAIM, true, &split_claimed), "claimed"))
		return SM_FAIL;
	printf("split flights of %d: learn receive %d, learn claim %d, claimed %d\n", CL_FLOWS,
	       split_rx, split_claim, split_claimed);
	if (!ASSERT_EQ(split_rx, 0, "split, learned on receive") ||
	    !ASSERT_EQ(split_claim, CL_FLOWS, "split, learned on claims only") ||
	    !ASSERT_EQ(split_claimed, 0, "split, claimed in between"))
		return SM_FAIL;
	return SM_PASS;
}

SM_TEST(udp_claim_refuses_bad_input)
{
	struct sockaddr_in a = cl_addr(CL_PORT), any = cl_addr(CL_PORT + 1), me, bad_peer;
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(4000)};
	struct sockmig_udp_group *g = cl_group(SOCKMIG_UDP_LEARN_CLAIM), *g2 = NULL, *gw = NULL;
	int srv = -1, plain = -1, far = -1, wild = -1, c = -1, p[2] = {-1, -1}, one = 1;
	int ret = SM_FAIL;
	SOCKMIG_OPTS(sockmig_udp_group_opts, rx, .learn = SOCKMIG_UDP_LEARN_RECEIVE);
	SOCKMIG_OPTS(sockmig_udp_group_opts, dflt, .learn = SOCKMIG_UDP_LEARN_DEFAULT);
	SOCKMIG_OPTS(sockmig_udp_group_opts, three, .learn = 3);
	SOCKMIG_OPTS(sockmig_udp_group_opts, none_cl, .mode = SOCKMIG_UDP_MODE_NONE,
		     .learn = SOCKMIG_UDP_LEARN_CLAIM);
	SOCKMIG_OPTS(sockmig_udp_group_opts, none_rx, .mode = SOCKMIG_UDP_MODE_NONE,
		     .learn = SOCKMIG_UDP_LEARN_RECEIVE);

	any.sin_addr.s_addr = htonl(INADDR_ANY);
	v6.sin6_addr = in6addr_loopback;
	if (!g || (srv = cl_server(g, 0)) < 0 || (plain = cl_server(NULL, 0)) < 0 ||
	    (c = cl_client(&me)) < 0 || !ASSERT_OK(pipe(p), "pipe"))
		goto out;
	bad_peer = me;
	bad_peer.sin_port = 0;
	/* the learning is the maker's */
	if (!ASSERT_TRUE(!sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &rx) &&
				 errno == EEXIST,
			 "another learning") ||
	    !ASSERT_TRUE(!sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &three) &&
				 errno == EINVAL,
			 "unknown learning") ||
	    !ASSERT_TRUE((g2 = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &dflt)),
			 "default learning"))
		goto out;
	/* bad peers */
	if (!ASSERT_ERR(sockmig_udp_flow_claim(g, srv, NULL, sizeof(me)), EINVAL, "no peer") ||
	    !ASSERT_ERR(sockmig_udp_flow_claim(g, srv, (struct sockaddr *)&me, 4), EINVAL,
			"short peer") ||
	    !ASSERT_ERR(
		    sockmig_udp_flow_claim(g, srv, (struct sockaddr *)&bad_peer, sizeof(bad_peer)),
		    EINVAL, "port 0") ||
	    !ASSERT_ERR(sockmig_udp_flow_claim(g, srv, (struct sockaddr *)&v6, sizeof(v6)), EINVAL,
			"IPv6 peer of an IPv4 group") ||
	    !ASSERT_ERR(sockmig_udp_flow_claim(NULL, srv, (struct sockaddr *)&me, sizeof(me)),
			EINVAL, "no group"))
		goto out;
	/* bad sockets: not a socket, not a member, another group's */
	far = socket(AF_INET, SOCK_DGRAM, 0);
	if (!ASSERT_OK(setsockopt(far, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), "reuseport") ||
	    !ASSERT_OK(bind(far, (struct sockaddr *)&any, sizeof(any)), "bind far") ||
	    !ASSERT_ERR(sockmig_udp_flow_claim(g, p[0], (struct sockaddr *)&me, sizeof(me)), EINVAL,
			"a pipe") ||
	    !ASSERT_ERR(sockmig_udp_flow_claim(g, plain, (struct sockaddr *)&me, sizeof(me)),
			ENOENT, "not a member") ||
	    !ASSERT_ERR(sockmig_udp_flow_claim(g, far, (struct sockaddr *)&me, sizeof(me)), EXDEV,
			"another group's socket"))
		goto out;
	/* a wildcard group cannot claim; mode none keeps no flow */
	gw = sockmig_udp_group_open((struct sockaddr *)&any, sizeof(any), NULL);
	if (!ASSERT_TRUE(gw, "wildcard group") ||
	    !ASSERT_OK(sockmig_udp_member_add(gw, far, NULL), "wildcard member") ||
	    !ASSERT_ERR(sockmig_udp_flow_claim(gw, far, (struct sockaddr *)&me, sizeof(me)), EINVAL,
			"wildcard"))
		goto out;
	cl_group_end(gw);
	close(far);
	far = -1;
	gw = sockmig_udp_group_open((struct sockaddr *)&any, sizeof(any), &none_rx);
	if (!ASSERT_TRUE(gw, "mode none group") ||
	    !ASSERT_TRUE((wild = socket(AF_INET, SOCK_DGRAM, 0)) >= 0, "socket") ||
	    !ASSERT_OK(setsockopt(wild, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)),
		       "reuseport") ||
	    !ASSERT_OK(bind(wild, (struct sockaddr *)&any, sizeof(any)), "bind") ||
	    !ASSERT_OK(sockmig_udp_member_add(gw, wild, NULL), "mode none member") ||
	    !ASSERT_ERR(sockmig_udp_flow_claim(gw, wild, (struct sockaddr *)&me, sizeof(me)),
			EINVAL, "mode none"))
		goto out;
	/* mode none: the learning does not matter, but is the maker's all the same */
	if (!ASSERT_TRUE(!sockmig_udp_group_open((struct sockaddr *)&any, sizeof(any), &none_cl) &&
				 errno == EEXIST,
			 "mode none, another learning"))
		goto out;
	/* the member itself still claims */
	if (!ASSERT_OK(sockmig_udp_flow_claim(g2, srv, (struct sockaddr *)&me, sizeof(me)),
		       "claim through another handle"))
		goto out;
	ret = SM_PASS;
out : {
	int fds[] = {srv, plain, far, wild, c, p[0], p[1]};

	cl_close_all(fds, (int)(sizeof(fds) / sizeof(fds[0])));
}
	cl_group_end(gw);
	sockmig_udp_group_close(g2);
	cl_group_end(g);
	return ret;
}
