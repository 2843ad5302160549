// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups in mode quic-lb (bpf/udp.bpf.c, lib/quic_lb.c): QUIC-like
 * datagrams (short headers, long-header Handshake and Initial packets:
 * only the header fields the program reads are real) routed by the
 * connection ID the library minted for the server socket, whatever the
 * client's address and port; the Initial flight, which carries a CID the
 * client chose, kept together on its 4-tuple; CID encode and decode; 256
 * generations told apart. Plain UDP sockets on loopback, no echo: the test
 * reads which server socket each datagram reached. Each case in its own
 * network namespace (the pure ones excepted).
 */
#include <arpa/inet.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "udp_rig.h"

#define QMAX	  320 /* server sockets of a case */
#define TRAILER	  8   /* flow and seq, at the end of every datagram */
#define INIT_SIZE 1200

struct qs {
	struct sockmig_udp_group *g;
	struct sockaddr_in addr;
	struct pollfd pfd[QMAX];
	uint32_t gen[QMAX];
	int n;
	unsigned long long drops0;
	long sent, got, lost;
};

static int qs_start(struct qs *q, enum sockmig_udp_mode mode, uint32_t cid_len, uint32_t cr)
{
	memset(q, 0, sizeof(*q));
	for (int i = 0; i < QMAX; i++)
		q->pfd[i].fd = -1;
	q->drops0 = ur_backlog_drops();
	q->addr.sin_family = AF_INET;
	q->addr.sin_port = htons(UR_PORT);
	q->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (mode) {
		SOCKMIG_OPTS(sockmig_udp_group_opts, go, .mode = mode, .quic_cid_len = cid_len,
			     .quic_config_id = cr);

		q->g = sockmig_udp_group_open((struct sockaddr *)&q->addr, sizeof(q->addr), &go);
		if (!q->g) {
			printf("udp_group_open: %s\n", sockmig_last_error());
			return -1;
		}
	}
	return ur_enough_fds(QMAX + 64);
}

/* One more server socket of generation @gen, a member when there is a
 * group. Its index, or -1. */
static int qs_add(struct qs *q, uint32_t gen)
{
	int one = 1, buf = 4 << 20, fd;

	if (q->n >= QMAX)
		return -1;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0 ||
	    bind(fd, (struct sockaddr *)&q->addr, sizeof(q->addr)) < 0) {
		printf("server socket: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	q->pfd[q->n].fd = fd;
	q->pfd[q->n].events = POLLIN;
	q->gen[q->n] = gen;
	if (q->g) {
		SOCKMIG_OPTS(sockmig_udp_member_opts, mo, .generation = gen);

		if (sockmig_udp_member_add(q->g, fd, &mo) < 0) {
			printf("member_add: %s\n", sockmig_last_error());
			return -1;
		}
	}
	return q->n++;
}

static void qs_close(struct qs *q, int k)
{
	close(q->pfd[k].fd);
	q->pfd[k].fd = -1;
}

static void qs_stop(struct qs *q)
{
	for (int i = 0; i < q->n; i++)
		if (q->pfd[i].fd >= 0)
			close(q->pfd[i].fd);
	if (q->g) {
		sockmig_udp_group_destroy(q->g);
		sockmig_udp_group_close(q->g);
	}
}

static size_t trailer(uint8_t *b, size_t at, uint32_t flow, uint32_t seq)
{
	memcpy(b + at, &flow, 4);
	memcpy(b + at + 4, &seq, 4);
	return at + TRAILER;
}

/* A 1-RTT packet: short header, then the server's CID. */
static size_t quic_short(uint8_t *b, const uint8_t *cid, size_t cl, uint32_t flow, uint32_t seq)
{
	b[0] = 0x40; /* header form 0, fixed bit */
	memcpy(b + 1, cid, cl);
	memset(b + 1 + cl, 0x5a, 24); /* packet number and payload */
	return trailer(b, 1 + cl + 24, flow, seq);
}

/* A long-header packet of @type (0 Initial, 2 Handshake) to @dcid, padded
 * to @size when it is larger. */
static size_t quic_long(uint8_t *b, int type, const uint8_t *dcid, size_t dl, size_t size,
			uint32_t flow, uint32_t seq)
{
	size_t n = 0;

	b[n++] = (uint8_t)(0xc0 | type << 4);
	b[n++] = 0, b[n++] = 0, b[n++] = 0, b[n++] = 1; /* version 1 */
	b[n++] = (uint8_t)dl;
	memcpy(b + n, dcid, dl);
	n += dl;
	b[n++] = 8; /* the client's source CID */
	memset(b + n, 0xc1, 8);
	n += 8;
	if (size < n + 24 + TRAILER)
		size = n + 24 + TRAILER;
	memset(b + n, 0x5a, size - TRAILER - n);
	return trailer(b, size - TRAILER, flow, seq);
}

/* A client's random Initial DCID: config rotation bits 7 (a real client's
 * first octet is random; 7 keeps the counts of this test exact). */
static void client_dcid(uint8_t *d, size_t len)
{
	if (getrandom(d, len, 0) != (ssize_t)len)
		memset(d, 0x33, len);
	d[0] |= 0xe0;
}

/* Send @len octets from 127.1.@net.1, port @port (a client's address and
 * port: a new one is a NAT rebinding). */
static int send_from(struct qs *q, int net, int port, const uint8_t *b, size_t len)
{
	struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = -1;

	src.sin_addr.s_addr = htonl(0x7f010001u | (uint32_t)net << 8);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&src, sizeof(src)) == 0 &&
	    sendto(fd, b, len, 0, (struct sockaddr *)&q->addr, sizeof(q->addr)) == (ssize_t)len)
		rc = 0;
	else
		printf("client 127.1.%d.1:%d: %s\n", net, port, strerror(errno));
	if (fd >= 0)
		close(fd);
	q->sent += rc == 0;
	return rc;
}

/* Read every server socket until @want datagrams of round @seq arrived
 * (or 5 s): who[flow] = the index of the socket that got it. */
static void qs_collect(struct qs *q, long want, uint32_t seq, int *who, int nflows)
{
	uint64_t end = ur_now_ms() + 5000;
	uint8_t b[2048];
	long got = 0;

	for (int i = 0; i < nflows; i++)
		who[i] = -1;
	while (got < want && ur_now_ms() < end) {
		if (poll(q->pfd, (nfds_t)q->n, 100) <= 0)
			continue;
		for (int k = 0; k < q->n; k++) {
			ssize_t len;

			if (q->pfd[k].fd < 0 || !(q->pfd[k].revents & POLLIN))
				continue;
			while ((len = recv(q->pfd[k].fd, b, sizeof(b), 0)) >= TRAILER) {
				uint32_t flow, s;

				memcpy(&flow, b + len - TRAILER, 4);
				memcpy(&s, b + len - 4, 4);
				if (s != seq || flow >= (uint32_t)nflows || who[flow] >= 0)
					continue;
				who[flow] = k;
				got++;
			}
		}
	}
	q->got += got;
	q->lost += want - got;
}

/* Lost datagrams that no backlog drop since the start explains. */
static long qs_unexplained_lost(struct qs *q)
{
	long drops = (long)(ur_backlog_drops() - q->drops0);

	if (q->lost)
		printf("%ld datagrams lost, %ld input backlog drops meanwhile\n", q->lost, drops);
	return q->lost > drops ? q->lost - drops : 0;
}

/* ---- NAT rebinding: a new client port and address every round ---------- */

#define RB_CONNS 1000
#define RB_FLIPS 40
#define RB_PER	 (RB_CONNS / RB_FLIPS)
#define RB_CID	 12 /* not the default length, nor the default config */
#define RB_CR	 3

struct rb_result {
	long mis, est_sent, est_lost, init_lost;
	int owners; /* sockets owning connections */
};

/* Round r (0 to RB_FLIPS): a flip (2 sockets of generation r + 1 join,
 * r >= 1), RB_PER new connections (an Initial each, the owner being the
 * socket that gets it, which then mints the connection's CID), and one
 * datagram of every older connection (1-RTT or Handshake, to its CID),
 * each from an address and port of its own this round. */
static int rebinding_run(struct qs *q, bool quic, struct rb_result *res)
{
	static int owner[RB_CONNS], who[RB_CONNS];
	static uint8_t cid[RB_CONNS][RB_CID];
	static bool owns[QMAX];
	uint8_t b[2048], d[RB_CID];
	size_t len;

	memset(res, 0, sizeof(*res));
	memset(owns, 0, sizeof(owns));
	for (int r = 0; r <= RB_FLIPS; r++) {
		int est = r * RB_PER, end = r < RB_FLIPS ? est + RB_PER : est;

		if (qs_add(q, (uint32_t)r + 1) < 0 || qs_add(q, (uint32_t)r + 1) < 0)
			return -1;
		for (int c = 0; c < est; c++) {
			if (owner[c] < 0)
				continue;
			len = (r + c) % 2
				      ? quic_long(b, 2, cid[c], RB_CID, 0, (uint32_t)c, (uint32_t)r)
				      : quic_short(b, cid[c], RB_CID, (uint32_t)c, (uint32_t)r);
			if (send_from(q, r, 40000 + c, b, len) < 0)
				return -1;
			res->est_sent++;
		}
		for (int c = est; c < end; c++) {
			client_dcid(d, 8);
			len = quic_long(b, 0, d, 8, INIT_SIZE, (uint32_t)c, (uint32_t)r);
			if (send_from(q, r, 40000 + c, b, len) < 0)
				return -1;
		}
		qs_collect(q, q->sent - q->got - q->lost, (uint32_t)r, who, RB_CONNS);
		for (int c = 0; c < est; c++) {
			if (owner[c] < 0)
				continue;
			if (who[c] < 0)
				res->est_lost++;
			else if (who[c] != owner[c])
				res->mis++;
		}
		for (int c = est; c < end; c++) {
			owner[c] = who[c];
			if (who[c] < 0) {
				res->init_lost++;
				continue;
			}
			owns[who[c]] = true;
			if (!quic) {
				client_dcid(cid[c], RB_CID); /* any octets: flow mode reads none */
				continue;
			}
			if (!ASSERT_EQ(sockmig_quic_cid_encode(q->g, q->pfd[who[c]].fd, cid[c],
							       RB_CID),
				       RB_CID, "encode"))
				return -1;
		}
	}
	for (int k = 0; k < QMAX; k++)
		res->owners += owns[k];
	printf("sent %ld (%ld of established connections), lost %ld, to a non-owner %ld, "
	       "%d owners\n",
	       q->sent, res->est_sent, q->lost, res->mis, res->owners);
	return 0;
}

SM_TEST(udp_quic_lb_follows_rebinding_clients_across_flips)
{
	struct sockmig_udp_stats st;
	struct sockmig_quic_stats qst;
	struct rb_result res;
	struct qs q;
	int ret = SM_FAIL;

	if (!ASSERT_OK(qs_start(&q, SOCKMIG_UDP_MODE_QUIC_LB, RB_CID, RB_CR), "start") ||
	    !ASSERT_OK(rebinding_run(&q, true, &res), "run"))
		goto out;
	if (!ASSERT_EQ(res.mis, 0, "datagrams to a non-owning socket") ||
	    !ASSERT_EQ(qs_unexplained_lost(&q), 0, "lost") ||
	    !ASSERT_GT(res.owners, 60, "sockets owning connections") ||
	    !ASSERT_OK(sockmig_quic_stats_read(q.g, &qst), "quic stats") ||
	    !ASSERT_OK(sockmig_udp_stats_read(q.g, &st), "stats") ||
	    /* every CID routed; every Initial (a client's DCID) learned on its
	     * 4-tuple as a new flow; nothing else */
	    !ASSERT_EQ(qst.hits, res.est_sent - res.est_lost, "CID hits") ||
	    !ASSERT_EQ(qst.other, RB_CONNS - res.init_lost, "Initials not routed by CID") ||
	    !ASSERT_EQ(qst.stale, 0, "stale CIDs") ||
	    !ASSERT_EQ(st.new_flows, RB_CONNS - res.init_lost, "new flows") ||
	    !ASSERT_EQ(st.flow_hits + st.fallbacks + st.expired + st.kernel_hash + st.parse_failed,
		       0, "no other path") ||
	    !ASSERT_EQ(st.working_generation, RB_FLIPS + 1, "working generation"))
		goto out;
	ret = SM_PASS;
out:
	qs_stop(&q);
	return ret;
}

SM_TEST(udp_quic_rebinding_flow_mode_misroutes)
{
	struct rb_result res;
	struct qs q;
	int ret = SM_FAIL;

	/* the baseline: a flow is its 4-tuple, and a rebound client is a new
	 * flow, given to the working generation */
	if (!ASSERT_OK(qs_start(&q, SOCKMIG_UDP_MODE_FLOW, 0, 0), "start") ||
	    !ASSERT_OK(rebinding_run(&q, false, &res), "run") ||
	    !ASSERT_GT(res.mis, 0, "datagrams to a non-owning socket"))
		goto out;
	ret = SM_PASS;
out:
	qs_stop(&q);
	return ret;
}

/* ---- the Initial flight: a client's DCID, a flip between two datagrams -- */

#define IF_CONNS 200

/* IF_CONNS clients send the first datagram of their Initial flight, a flip
 * (2 sockets of generation 2 join), then the second one from the same
 * address and port. The second datagrams that reach another socket than
 * the first. */
static long initial_flight(struct qs *q)
{
	static int first[IF_CONNS], second[IF_CONNS];
	static uint8_t dcid[IF_CONNS][8];
	uint8_t b[2048];
	long split = 0;
	size_t len;

	for (int i = 0; i < 2; i++)
		if (qs_add(q, 1) < 0)
			return -1;
	for (int c = 0; c < IF_CONNS; c++) {
		client_dcid(dcid[c], 8);
		len = quic_long(b, 0, dcid[c], 8, INIT_SIZE, (uint32_t)c, 1);
		if (send_from(q, 1, 41000 + c, b, len) < 0)
			return -1;
	}
	qs_collect(q, IF_CONNS, 1, first, IF_CONNS);
	for (int i = 0; i < 2; i++)
		if (qs_add(q, 2) < 0)
			return -1;
	for (int c = 0; c < IF_CONNS; c++) {
		len = quic_long(b, 0, dcid[c], 8, INIT_SIZE, (uint32_t)c, 2);
		if (send_from(q, 1, 41000 + c, b, len) < 0)
			return -1;
	}
	qs_collect(q, IF_CONNS, 2, second, IF_CONNS);
	for (int c = 0; c < IF_CONNS; c++)
		split += first[c] >= 0 && second[c] >= 0 && first[c] != second[c];
	printf("sent %ld, lost %ld, flights split %ld\n", q->sent, q->lost, split);
	return split;
}

SM_TEST(udp_quic_lb_initial_flight_stays_together_across_a_flip)
{
	struct sockmig_udp_stats st;
	struct sockmig_quic_stats qst;
	struct qs q;
	int ret = SM_FAIL;

	if (!ASSERT_OK(qs_start(&q, SOCKMIG_UDP_MODE_QUIC_LB, 0, 2), "start") ||
	    !ASSERT_EQ(initial_flight(&q), 0, "flights split") || !ASSERT_EQ(q.lost, 0, "lost") ||
	    !ASSERT_OK(sockmig_quic_stats_read(q.g, &qst), "quic stats") ||
	    !ASSERT_OK(sockmig_udp_stats_read(q.g, &st), "stats") ||
	    !ASSERT_EQ(qst.other, 2 * IF_CONNS, "not routed by CID") ||
	    !ASSERT_EQ(qst.hits + qst.stale, 0, "routed by CID") ||
	    !ASSERT_EQ(st.new_flows, IF_CONNS, "first datagrams: new flows") ||
	    !ASSERT_EQ(st.flow_hits, IF_CONNS, "second datagrams: to the first's socket"))
		goto out;
	ret = SM_PASS;
out:
	qs_stop(&q);
	return ret;
}

SM_TEST(udp_quic_initial_flight_mode_none_splits)
{
	struct qs q;
	int ret = SM_FAIL;

	/* the baseline: without the 4-tuple fallback, the second datagram of
	 * every flight goes to the new working generation */
	if (!ASSERT_OK(qs_start(&q, SOCKMIG_UDP_MODE_NONE, 0, 0), "start") ||
	    !ASSERT_LE(IF_CONNS - q.lost, initial_flight(&q), "flights split"))
		goto out;
	ret = SM_PASS;
out:
	qs_stop(&q);
	return ret;
}

/* ---- bad input (the pure CID cases are in test_udp_quic_cid.c) ---------- */

SM_TEST(udp_quic_group_and_encode_refuse_bad_input)
{
	struct sockmig_udp_member_info mi[2];
	struct sockmig_quic_cid_info info;
	struct sockaddr *a;
	struct qs q, flow = {0};
	uint8_t cid[32];
	int ret = SM_FAIL, k, stranger = -1, one = 1;
	SOCKMIG_OPTS(sockmig_udp_group_opts, len7, .mode = SOCKMIG_UDP_MODE_QUIC_LB,
		     .quic_cid_len = 7);
	SOCKMIG_OPTS(sockmig_udp_group_opts, len21, .mode = SOCKMIG_UDP_MODE_QUIC_LB,
		     .quic_cid_len = 21);
	SOCKMIG_OPTS(sockmig_udp_group_opts, cr7, .mode = SOCKMIG_UDP_MODE_QUIC_LB,
		     .quic_config_id = 7);
	SOCKMIG_OPTS(sockmig_udp_group_opts, cidflow, .mode = SOCKMIG_UDP_MODE_FLOW,
		     .quic_cid_len = 8);
	SOCKMIG_OPTS(sockmig_udp_group_opts, other, .mode = SOCKMIG_UDP_MODE_QUIC_LB,
		     .quic_cid_len = 8, .quic_config_id = 5);
	SOCKMIG_OPTS(sockmig_udp_group_opts, same, .mode = SOCKMIG_UDP_MODE_QUIC_LB,
		     .quic_cid_len = 16, .quic_config_id = 5);

	flow.g = NULL;
	if (!ASSERT_OK(qs_start(&q, SOCKMIG_UDP_MODE_QUIC_LB, 16, 5), "start"))
		goto out;
	a = (struct sockaddr *)&q.addr;
	if (!ASSERT_TRUE(!sockmig_udp_group_open(a, sizeof(q.addr), &len7) && errno == EINVAL,
			 "CID length 7") ||
	    !ASSERT_TRUE(!sockmig_udp_group_open(a, sizeof(q.addr), &len21) && errno == EINVAL,
			 "CID length 21") ||
	    !ASSERT_TRUE(!sockmig_udp_group_open(a, sizeof(q.addr), &cr7) && errno == EINVAL,
			 "config rotation 7") ||
	    !ASSERT_TRUE(!sockmig_udp_group_open(a, sizeof(q.addr), &other) && errno == EEXIST,
			 "another CID config") ||
	    !ASSERT_EQ(sockmig_udp_group_mode(q.g), SOCKMIG_UDP_MODE_QUIC_LB, "mode"))
		goto out;
	/* the same config, or none, opens it */
	flow.g = sockmig_udp_group_open(a, sizeof(q.addr), &same);
	if (!ASSERT_TRUE(flow.g, "the same config"))
		goto out;
	sockmig_udp_group_close(flow.g);
	flow.g = sockmig_udp_group_open(a, sizeof(q.addr), NULL);
	if (!ASSERT_TRUE(flow.g, "no config"))
		goto out;
	sockmig_udp_group_close(flow.g);
	flow.g = NULL;

	stranger = socket(AF_INET, SOCK_DGRAM, 0);
	if (!ASSERT_OK(k = qs_add(&q, 7), "member") ||
	    !ASSERT_OK(setsockopt(stranger, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)),
		       "reuseport") ||
	    !ASSERT_OK(bind(stranger, a, sizeof(q.addr)), "bind") ||
	    !ASSERT_ERR(sockmig_quic_cid_encode(q.g, stranger, cid, 32), ENOENT, "not a member") ||
	    !ASSERT_TRUE(strstr(sockmig_last_error(), "not a live member"), "the error names it") ||
	    !ASSERT_ERR(sockmig_quic_cid_encode(q.g, q.pfd[k].fd, cid, 15), EINVAL, "no room") ||
	    !ASSERT_ERR(sockmig_quic_cid_encode(NULL, q.pfd[k].fd, cid, 32), EINVAL, "no group") ||
	    !ASSERT_TRUE(sockmig_quic_cid_encode(q.g, -1, cid, 32) < 0, "no socket") ||
	    !ASSERT_EQ(sockmig_quic_cid_encode(q.g, q.pfd[k].fd, cid, 32), 16, "encode") ||
	    !ASSERT_OK(sockmig_quic_cid_decode(cid, 16, &info), "decode") ||
	    !ASSERT_EQ(sockmig_udp_members(q.g, mi, 2), 1, "members") ||
	    !ASSERT_EQ(info.slot, mi[0].slot, "its slot") ||
	    !ASSERT_EQ(info.generation, 7, "its generation") ||
	    !ASSERT_EQ(info.config_id, 5, "the group's config"))
		goto out;
	/* another mode mints none, and takes no CID options */
	qs_stop(&q);
	memset(&q, 0, sizeof(q));
	if (!ASSERT_OK(qs_start(&flow, SOCKMIG_UDP_MODE_FLOW, 0, 0), "flow group"))
		goto out;
	a = (struct sockaddr *)&flow.addr;
	if (!ASSERT_OK(k = qs_add(&flow, 1), "flow member") ||
	    !ASSERT_ERR(sockmig_quic_cid_encode(flow.g, flow.pfd[k].fd, cid, 32), EINVAL,
			"mode flow") ||
	    !ASSERT_TRUE(!sockmig_udp_group_open(a, sizeof(flow.addr), &cidflow) && errno == EINVAL,
			 "CID options in mode flow"))
		goto out;
	ret = SM_PASS;
out:
	if (stranger >= 0)
		close(stranger);
	qs_stop(&q);
	qs_stop(&flow);
	return ret;
}

/* ---- 256 generations in one slot --------------------------------------- */

#define GENS 256

/* Send one 1-RTT datagram to @cid from a fixed client address; the index
 * of the socket that got it, or -1. */
static int probe(struct qs *q, const uint8_t *cid, uint32_t seq)
{
	uint8_t b[256];
	int who[1];
	size_t len = quic_short(b, cid, SOCKMIG_QUIC_CID_DEFAULT, 0, seq);

	if (send_from(q, 200, 42000, b, len) < 0)
		return -1;
	qs_collect(q, 1, seq, who, 1);
	return who[0];
}

/*
 * Socket B (generation 5000, the working one) stays; one socket of each
 * generation 0 to 255 in turn takes the same slot (the one before closed).
 * Each one's CID reaches it, and the CID of the one before, same slot,
 * another generation, falls to B (stale, then on the client's 4-tuple);
 * at the end only the last one's CID of the 256 reaches it, and still
 * does once it is draining.
 */
SM_TEST(udp_quic_lb_tells_256_generations_of_a_slot_apart)
{
	static uint8_t cid[GENS][SOCKMIG_QUIC_CID_DEFAULT];
	struct sockmig_quic_stats qst;
	struct sockmig_quic_cid_info info;
	bool seen[GENS] = {false};
	struct qs q;
	uint32_t seq = 0, slot = 0;
	int ret = SM_FAIL, b, x = -1;

	if (!ASSERT_OK(qs_start(&q, SOCKMIG_UDP_MODE_QUIC_LB, 0, 0), "start") ||
	    !ASSERT_OK(b = qs_add(&q, 5000), "socket B"))
		goto out;
	for (int g = 0; g < GENS; g++) {
		if (x >= 0)
			qs_close(&q, x);
		if (!ASSERT_OK(x = qs_add(&q, (uint32_t)g), "a socket of generation g") ||
		    !ASSERT_EQ(sockmig_quic_cid_encode(q.g, q.pfd[x].fd, cid[g], sizeof(cid[g])), 8,
			       "encode") ||
		    !ASSERT_OK(sockmig_quic_cid_decode(cid[g], 8, &info), "decode") ||
		    !ASSERT_EQ(info.generation, g, "generation") ||
		    !ASSERT_TRUE(g == 0 || info.slot == slot, "the same slot") ||
		    !ASSERT_EQ(probe(&q, cid[g], ++seq), x, "its own CID") ||
		    !ASSERT_TRUE(g == 0 || probe(&q, cid[g - 1], ++seq) == b,
				 "the CID of the one before: to B"))
			goto out;
		slot = info.slot;
		seen[info.generation] = true;
	}
	for (int g = 0; g < GENS; g++)
		if (!ASSERT_TRUE(seen[g], "every generation decoded") ||
		    !ASSERT_EQ(probe(&q, cid[g], ++seq), g == GENS - 1 ? x : b, "at the end"))
			goto out;
	/* a draining member keeps its CIDs */
	if (!ASSERT_EQ(sockmig_udp_generation_drain(q.g, GENS - 1), 1, "drain") ||
	    !ASSERT_EQ(probe(&q, cid[GENS - 1], ++seq), x, "a draining member's CID"))
		goto out;
	if (!ASSERT_EQ(q.lost, 0, "lost") ||
	    !ASSERT_OK(sockmig_quic_stats_read(q.g, &qst), "quic stats") ||
	    !ASSERT_EQ(qst.hits, GENS + 2, "hits") ||
	    !ASSERT_EQ(qst.stale, 2 * (GENS - 1), "stale") || !ASSERT_EQ(qst.other, 0, "other"))
		goto out;
	ret = SM_PASS;
out:
	qs_stop(&q);
	return ret;
}
