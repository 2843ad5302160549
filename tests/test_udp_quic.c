// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups in mode quic-lb (bpf/udp.bpf.c, lib/quic_lb.c): QUIC-like
 * datagrams (short headers, long-header Handshake and Initial packets:
 * only the header fields the program reads are real) routed by the
 * connection ID the library minted for the server socket, whatever the
 * client's address and port; the Initial flight, which carries a CID the
 * client chose, kept together on its 4-tuple; CID encode and decode; 256
 * generations told apart. Plain UDP sockets on loopback (quic_rig.c), no echo: the test
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
#include "quic_rig.h"
#include "udp_rig.h"

/* The group of @mode (0: none, plain SO_REUSEPORT) with @cid_len and
 * config rotation @cr (quic_rig.h). */
static int qs_start(struct qs *q, enum sockmig_udp_mode mode, uint32_t cid_len, uint32_t cr)
{
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .mode = mode, .quic_cid_len = cid_len,
		     .quic_config_id = cr);

	return qs_open(q, mode ? &go : NULL);
}

/* ---- NAT rebinding: a new client port and address every round ---------- */

#define RB_CONNS 1000
#define RB_FLIPS 40
#define RB_CID	 12 /* not the default length, nor the default config */
#define RB_CR	 3

/* The connection's CID: minted for its socket (quic-lb), else any octets
 * (mode flow reads none). */
static int mint(struct qs *q, int k, uint8_t *cid, uint32_t len, void *arg)
{
	if (!*(bool *)arg) {
		qr_client_dcid(cid, len);
		return 0;
	}
	return ASSERT_EQ(sockmig_quic_cid_encode(q->g, q->pfd[k].fd, cid, len), (int)len, "encode")
		       ? 0
		       : -1;
}

/* qr_rebinding_run() with RB_CONNS connections over RB_FLIPS flips. */
static int rebinding_run(struct qs *q, bool quic, struct qr_rebind *res)
{
	memset(res, 0, sizeof(*res));
	res->conns = RB_CONNS;
	res->flips = RB_FLIPS;
	res->cid_len = RB_CID;
	res->mint = mint;
	res->arg = &quic;
	return qr_rebinding_run(q, res);
}

SM_TEST(udp_quic_lb_follows_rebinding_clients_across_flips)
{
	struct sockmig_udp_stats st;
	struct sockmig_quic_stats qst;
	struct qr_rebind res;
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
	struct qr_rebind res;
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
		qr_client_dcid(dcid[c], 8);
		len = qr_long(b, 0, dcid[c], 8, QR_INIT_SIZE, (uint32_t)c, 1);
		if (qs_send_from(q, 1, 41000 + c, b, len) < 0)
			return -1;
	}
	qs_collect(q, IF_CONNS, 1, first, IF_CONNS);
	for (int i = 0; i < 2; i++)
		if (qs_add(q, 2) < 0)
			return -1;
	for (int c = 0; c < IF_CONNS; c++) {
		len = qr_long(b, 0, dcid[c], 8, QR_INIT_SIZE, (uint32_t)c, 2);
		if (qs_send_from(q, 1, 41000 + c, b, len) < 0)
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

/* ---- a client's port that comes back: a new connection, a new flow ----- */

#define NC_CONNS 100
#define NC_PORT	 42000

/* What port_reuse() saw, per client. */
struct nc_res {
	long second_same; /* its connection's second flight: to the first's socket */
	long new_moved;	  /* a new connection from its port: to generation 2 */
	long new_stays;	  /* that connection's next datagram: to the same socket */
	long hs_stays;	  /* a Handshake packet of another source CID: the same */
	long new_kept;	  /* a third connection, from the working generation's 4-tuple: the same */
	long third_stays; /* after another flip, its Initial again: the same */
};

/* Round @seq: from each client's port a packet of @type (0 Initial, 2
 * Handshake) of source CID @tag (the client's number in its last two
 * octets), @sl octets, a fresh DCID; @who: the socket each reached. */
static int nc_round(struct qs *q, int type, uint8_t tag, size_t sl, uint32_t seq, int *who)
{
	uint8_t b[2048], dcid[8], scid[8];
	size_t len;

	for (int c = 0; c < NC_CONNS; c++) {
		memset(scid, tag, sizeof(scid));
		scid[sl - 2] = (uint8_t)(c >> 8);
		scid[sl - 1] = (uint8_t)c;
		qr_client_dcid(dcid, sizeof(dcid));
		len = qr_long_scid(b, type, dcid, sizeof(dcid), scid, sl, QR_INIT_SIZE, (uint32_t)c,
				   seq);
		if (qs_send_from(q, 1, NC_PORT + c, b, len) < 0)
			return -1;
	}
	qs_collect(q, NC_CONNS, seq, who, NC_CONNS);
	return 0;
}

/*
 * NC_CONNS clients, each from a port of its own, send the Initial of a
 * connection (source CID A); a flip (2 sockets of generation 2 join);
 * then from each port: an Initial of the same connection (A, another
 * DCID: the client's second flight, to the server's CID), an Initial of a
 * new connection (source CID B, of 5 octets: the client's port came
 * back), B's next datagram, a Handshake packet of another source CID
 * (only an Initial starts a connection: it stays with B), and an Initial
 * of a third connection (B's socket, of the working generation, keeps the
 * 4-tuple, as the kernel's hash would); then another flip (generation 3)
 * and the third connection's Initial again (a retransmission: it stays).
 */
static int port_reuse(struct qs *q, struct nc_res *r)
{
	static int first[NC_CONNS], second[NC_CONNS], third[NC_CONNS], fourth[NC_CONNS],
		fifth[NC_CONNS], sixth[NC_CONNS], seventh[NC_CONNS];

	memset(r, 0, sizeof(*r));
	for (int i = 0; i < 2; i++)
		if (qs_add(q, 1) < 0)
			return -1;
	if (nc_round(q, 0, 0xa0, 8, 1, first) < 0)
		return -1;
	for (int i = 0; i < 2; i++)
		if (qs_add(q, 2) < 0)
			return -1;
	if (nc_round(q, 0, 0xa0, 8, 2, second) < 0 || nc_round(q, 0, 0xb0, 5, 3, third) < 0 ||
	    nc_round(q, 0, 0xb0, 5, 4, fourth) < 0 || nc_round(q, 2, 0xd0, 8, 5, fifth) < 0 ||
	    nc_round(q, 0, 0xe0, 8, 6, sixth) < 0)
		return -1;
	for (int i = 0; i < 2; i++)
		if (qs_add(q, 3) < 0)
			return -1;
	if (nc_round(q, 0, 0xe0, 8, 7, seventh) < 0)
		return -1;
	for (int c = 0; c < NC_CONNS; c++) {
		r->second_same += first[c] >= 0 && second[c] == first[c];
		r->new_moved += third[c] >= 0 && q->gen[third[c]] == 2;
		r->new_stays += third[c] >= 0 && fourth[c] == third[c];
		r->hs_stays += third[c] >= 0 && fifth[c] == third[c];
		r->new_kept += third[c] >= 0 && sixth[c] == third[c];
		r->third_stays += third[c] >= 0 && seventh[c] == third[c];
	}
	printf("sent %ld, lost %ld; of %d clients: second flight to its socket %ld, new "
	       "connection to generation 2 %ld, its next datagram with it %ld, a Handshake "
	       "of another source CID with it %ld, a third connection with it %ld and again "
	       "after a flip %ld\n",
	       q->sent, q->lost, NC_CONNS, r->second_same, r->new_moved, r->new_stays, r->hs_stays,
	       r->new_kept, r->third_stays);
	return 0;
}

static int port_reuse_case(enum sockmig_udp_mode mode)
{
	SOCKMIG_OPTS(sockmig_udp_counters, ct);
	struct sockmig_udp_stats st;
	struct nc_res r;
	struct qs q;
	int ret = SM_FAIL;

	if (!ASSERT_OK(qs_start(&q, mode, 0, 0), "start") ||
	    !ASSERT_OK(port_reuse(&q, &r), "rounds") || !ASSERT_EQ(q.lost, 0, "lost") ||
	    !ASSERT_EQ(r.second_same, NC_CONNS, "second flights to the first's socket") ||
	    !ASSERT_EQ(r.new_moved, NC_CONNS, "new connections to the working generation") ||
	    !ASSERT_EQ(r.new_stays, NC_CONNS, "a new connection's next datagram with it") ||
	    !ASSERT_EQ(r.hs_stays, NC_CONNS, "a Handshake packet starts no connection") ||
	    !ASSERT_EQ(r.new_kept, NC_CONNS, "the working generation's 4-tuple kept") ||
	    !ASSERT_EQ(r.third_stays, NC_CONNS, "the latest connection's Initial after a flip") ||
	    !ASSERT_OK(sockmig_udp_stats_read(q.g, &st), "stats") ||
	    !ASSERT_OK(sockmig_udp_counters_read(q.g, &ct), "counters") ||
	    !ASSERT_EQ(ct.quic_new_connections, NC_CONNS, "new connections counted") ||
	    !ASSERT_EQ(st.new_flows, 2 * NC_CONNS, "new flows: first and new connections") ||
	    !ASSERT_EQ(
		    st.flow_hits, 5 * NC_CONNS,
		    "hits: second flights, next datagrams, Handshakes, third connections twice") ||
	    !ASSERT_EQ(ct.old_generation, 2 * NC_CONNS,
		       "second flights to generation 1, third connections' to 2 after the flip"))
		goto out;
	ret = SM_PASS;
out:
	qs_stop(&q);
	return ret;
}

SM_TEST(udp_quic_flow_new_connection_from_a_port_that_came_back)
{
	return port_reuse_case(SOCKMIG_UDP_MODE_FLOW);
}

SM_TEST(udp_quic_lb_new_connection_from_a_port_that_came_back)
{
	return port_reuse_case(SOCKMIG_UDP_MODE_QUIC_LB);
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
	size_t len = qr_short(b, cid, SOCKMIG_QUIC_CID_DEFAULT, 0, seq);

	if (qs_send_from(q, 200, 42000, b, len) < 0)
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
