// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups in mode quic-lb with encrypted CIDs (sockmig_udp_enc in
 * bpf/udp.bpf.c, lib/quic_enc.c), the real program in the case's network
 * namespace: clients that move to a new address and port every round,
 * across flips, reach the socket whose encrypted CID they carry; the same
 * CIDs sent to a plaintext group misroute (the baseline: the program
 * decrypts, it does not read the ciphertext as a server ID); a group's
 * key is fixed when it is made. The rig is test_udp_quic.c's, cut down.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "udp_rig.h"

#define QMAX	  96
#define TRAILER	  8 /* flow and seq, at the end of every datagram */
#define INIT_SIZE 1200

static const uint8_t key_a[16] = {0x8f, 0x95, 0xf0, 0x92, 0x45, 0x76, 0x5f, 0x80,
				  0x25, 0x69, 0x34, 0xe5, 0x0c, 0x66, 0x20, 0x7f};
static const uint8_t key_b[16] = {0xfd, 0xf7, 0x26, 0xa9, 0x89, 0x3e, 0xc0, 0x5c,
				  0x06, 0x32, 0xd3, 0x95, 0x66, 0x80, 0xba, 0xf0};

struct qs {
	struct sockmig_udp_group *g;
	struct sockaddr_in addr;
	struct pollfd pfd[QMAX];
	int n;
	unsigned long long drops0;
	long sent, got, lost;
};

static int qs_start(struct qs *q, uint32_t cid_len, uint32_t cr, const uint8_t *key)
{
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .mode = SOCKMIG_UDP_MODE_QUIC_LB,
		     .quic_cid_len = cid_len, .quic_config_id = cr, .quic_key = key);

	memset(q, 0, sizeof(*q));
	for (int i = 0; i < QMAX; i++)
		q->pfd[i].fd = -1;
	q->drops0 = ur_backlog_drops();
	q->addr.sin_family = AF_INET;
	q->addr.sin_port = htons(UR_PORT);
	q->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	q->g = sockmig_udp_group_open((struct sockaddr *)&q->addr, sizeof(q->addr), &go);
	if (!q->g) {
		printf("udp_group_open: %s\n", sockmig_last_error());
		return -1;
	}
	return ur_enough_fds(QMAX + 64);
}

/* One more member of generation @gen. Its index, or -1. */
static int qs_add(struct qs *q, uint32_t gen)
{
	SOCKMIG_OPTS(sockmig_udp_member_opts, mo, .generation = gen);
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
	if (sockmig_udp_member_add(q->g, fd, &mo) < 0) {
		printf("member_add: %s\n", sockmig_last_error());
		return -1;
	}
	return q->n++;
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
	b[0] = 0x40;
	memcpy(b + 1, cid, cl);
	memset(b + 1 + cl, 0x5a, 24);
	return trailer(b, 1 + cl + 24, flow, seq);
}

/* A long-header packet of @type (0 Initial, 2 Handshake) to @dcid. */
static size_t quic_long(uint8_t *b, int type, const uint8_t *dcid, size_t dl, size_t size,
			uint32_t flow, uint32_t seq)
{
	size_t n = 0;

	b[n++] = (uint8_t)(0xc0 | type << 4);
	b[n++] = 0, b[n++] = 0, b[n++] = 0, b[n++] = 1;
	b[n++] = (uint8_t)dl;
	memcpy(b + n, dcid, dl);
	n += dl;
	b[n++] = 8;
	memset(b + n, 0xc1, 8);
	n += 8;
	if (size < n + 24 + TRAILER)
		size = n + 24 + TRAILER;
	memset(b + n, 0x5a, size - TRAILER - n);
	return trailer(b, size - TRAILER, flow, seq);
}

/* A client's random Initial DCID (config rotation bits 7: exact counts). */
static void client_dcid(uint8_t *d, size_t len)
{
	if (getrandom(d, len, 0) != (ssize_t)len)
		memset(d, 0x33, len);
	d[0] |= 0xe0;
}

/* Send @len octets from 127.1.@net.1, port @port. */
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

/* Read until @want datagrams of round @seq arrived (or 5 s): who[flow] =
 * the index of the socket that got it. */
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

static long qs_unexplained_lost(struct qs *q)
{
	long drops = (long)(ur_backlog_drops() - q->drops0);

	if (q->lost)
		printf("%ld datagrams lost, %ld input backlog drops meanwhile\n", q->lost, drops);
	return q->lost > drops ? q->lost - drops : 0;
}

/* ---- NAT rebinding across flips, encrypted CIDs ------------------------- */

#define RB_CONNS 600
#define RB_FLIPS 30
#define RB_PER	 (RB_CONNS / RB_FLIPS)
#define RB_CR	 3

struct rb_result {
	long mis, est_sent, est_lost, init_lost;
	int owners;
};

/*
 * Round r (0 to RB_FLIPS): a flip (2 members of generation r + 1 join),
 * RB_PER new connections (an Initial each; its owner is the socket that
 * gets it), and one datagram of every older connection (1-RTT or
 * Handshake) to the CID of its owner, from an address and port of its own
 * this round. The CID is encrypted with @key: minted by the group when
 * @key is NULL (an encrypted group), else built from the slot and
 * generation that the (plaintext) group's CID names, encrypted with @key:
 * what an encrypted group with these members would have minted.
 */
static int rebinding_run(struct qs *q, uint32_t cl, const uint8_t *key, struct rb_result *res)
{
	static int owner[RB_CONNS], who[RB_CONNS];
	static uint8_t cid[RB_CONNS][SOCKMIG_QUIC_CID_MAX];
	static bool owns[QMAX];
	struct sockmig_quic_cid_info info;
	uint8_t b[2048], d[8];
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
			len = (r + c) % 2 ? quic_long(b, 2, cid[c], cl, 0, (uint32_t)c, (uint32_t)r)
					  : quic_short(b, cid[c], cl, (uint32_t)c, (uint32_t)r);
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
			if (!ASSERT_EQ(sockmig_quic_cid_encode(q->g, q->pfd[who[c]].fd, cid[c], cl),
				       (int)cl, "encode"))
				return -1;
			if (key &&
			    (!ASSERT_OK(sockmig_quic_cid_decode(cid[c], cl, &info), "decode") ||
			     !ASSERT_EQ(sockmig_quic_cid_build_key(&info, key, cid[c], cl), (int)cl,
					"build with the key")))
				return -1;
		}
	}
	for (int k = 0; k < QMAX; k++)
		res->owners += owns[k];
	printf("%u-octet CIDs: sent %ld (%ld of established connections), lost %ld, to a "
	       "non-owner %ld, %d owners\n",
	       cl, q->sent, res->est_sent, q->lost, res->mis, res->owners);
	return 0;
}

/* Lengths: even and odd plaintexts (11 and 18 octets), the longest. */
static const uint32_t rb_lens[] = {12, 19, 20};

SM_TEST(udp_quic_enc_follows_rebinding_clients_across_flips)
{
	struct sockmig_quic_stats qst;
	struct sockmig_udp_stats st;
	struct rb_result res;
	struct qs q = {0};

	for (size_t i = 0; i < sizeof(rb_lens) / sizeof(rb_lens[0]); i++) {
		int ok = 0;

		if (ASSERT_OK(qs_start(&q, rb_lens[i], RB_CR, key_a), "start") &&
		    ASSERT_OK(rebinding_run(&q, rb_lens[i], NULL, &res), "run") &&
		    ASSERT_EQ(res.mis, 0, "datagrams to a non-owning socket") &&
		    ASSERT_EQ(qs_unexplained_lost(&q), 0, "lost") &&
		    ASSERT_GT(res.owners, 40, "sockets owning connections") &&
		    ASSERT_OK(sockmig_quic_stats_read(q.g, &qst), "quic stats") &&
		    ASSERT_OK(sockmig_udp_stats_read(q.g, &st), "stats") &&
		    /* every CID routed by its decrypted server ID; every
		     * Initial learned on its 4-tuple; nothing else */
		    ASSERT_EQ(qst.hits, res.est_sent - res.est_lost, "CID hits") &&
		    ASSERT_EQ(qst.other, RB_CONNS - res.init_lost, "Initials not routed by CID") &&
		    ASSERT_EQ(qst.stale, 0, "stale CIDs") &&
		    ASSERT_EQ(st.new_flows, RB_CONNS - res.init_lost, "new flows") &&
		    ASSERT_EQ(st.flow_hits + st.fallbacks + st.expired + st.kernel_hash, 0,
			      "no other path"))
			ok = 1;
		qs_stop(&q);
		if (!ok)
			return SM_FAIL;
	}
	return SM_PASS;
}

SM_TEST(udp_quic_enc_cids_to_a_plaintext_group_misroute)
{
	struct sockmig_quic_stats qst;
	struct rb_result res;
	struct qs q = {0};
	int ret = SM_FAIL;

	/* the baseline: the same encrypted CIDs, to a group without the key,
	 * whose program reads the ciphertext as a server ID */
	if (ASSERT_OK(qs_start(&q, 12, RB_CR, NULL), "start") &&
	    ASSERT_OK(rebinding_run(&q, 12, key_a, &res), "run") &&
	    ASSERT_GT(res.mis, 0, "datagrams to a non-owning socket") &&
	    ASSERT_OK(sockmig_quic_stats_read(q.g, &qst), "quic stats") &&
	    ASSERT_GT(qst.stale, 0, "CIDs naming no live member"))
		ret = SM_PASS;
	qs_stop(&q);
	return ret;
}

/* Every CID length the program decrypts, 8 to 20 but 17 (refused): one
 * short-header datagram to each member's CID reaches that member. */
#define AL_MEMBERS 4

SM_TEST(udp_quic_enc_routes_every_cid_length)
{
	struct sockmig_quic_stats qst;
	uint8_t cid[SOCKMIG_QUIC_CID_MAX], d[256];
	int who[AL_MEMBERS];

	for (uint32_t cl = 8; cl <= SOCKMIG_QUIC_CID_MAX; cl++) {
		struct qs q = {0};
		int ok = 1;

		if (cl == 17)
			continue;
		if (!ASSERT_OK(qs_start(&q, cl, RB_CR, key_a), "start"))
			ok = 0;
		for (int k = 0; ok && k < AL_MEMBERS; k++)
			ok = ASSERT_EQ(qs_add(&q, 1), k, "a member");
		for (int k = 0; ok && k < AL_MEMBERS; k++)
			ok = ASSERT_EQ(sockmig_quic_cid_encode(q.g, q.pfd[k].fd, cid, cl), (int)cl,
				       "encode") &&
			     ASSERT_OK(send_from(&q, k, 43000 + k, d,
						 quic_short(d, cid, cl, (uint32_t)k, cl)),
				       "send");
		if (ok) {
			qs_collect(&q, AL_MEMBERS, cl, who, AL_MEMBERS);
			for (int k = 0; ok && k < AL_MEMBERS; k++)
				ok = ASSERT_EQ(who[k], k, "to the CID's member");
		}
		ok = ok && ASSERT_OK(sockmig_quic_stats_read(q.g, &qst), "quic stats") &&
		     ASSERT_EQ(qst.hits, AL_MEMBERS, "CID hits");
		printf("%u-octet CIDs: %s\n", cl, ok ? "each at its member" : "misrouted");
		qs_stop(&q);
		if (!ok)
			return SM_FAIL;
	}
	return SM_PASS;
}

/* Open the group of 127.0.0.1:UR_PORT with these options; NULL, errno. */
static struct sockmig_udp_group *open_with(enum sockmig_udp_mode mode, uint32_t cid_len,
					   const uint8_t *key)
{
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .mode = mode, .quic_cid_len = cid_len,
		     .quic_key = key);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(UR_PORT)};
	struct sockmig_udp_group *g;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &go);
	printf("open mode %s, length %u, %s: %s\n", sockmig_udp_mode_str(mode), cid_len,
	       key == key_a   ? "key A"
	       : key == key_b ? "key B"
	       : key	      ? "a key"
			      : "no key",
	       g ? "opened" : sockmig_last_error());
	return g;
}

static void destroy(struct sockmig_udp_group *g)
{
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
}

SM_TEST(udp_quic_enc_key_fixed_when_the_group_is_made)
{
	const enum sockmig_udp_mode ql = SOCKMIG_UDP_MODE_QUIC_LB;
	struct sockmig_udp_group *g, *again;
	uint8_t zero[16] = {0};
	int ret = SM_FAIL;

	/* no group made: other modes, length 17, a zero key */
	if (!ASSERT_TRUE(!open_with(SOCKMIG_UDP_MODE_FLOW, 0, key_a) && errno == EINVAL,
			 "a key for mode flow: EINVAL") ||
	    !ASSERT_TRUE(!open_with(ql, 17, key_a) && errno == EINVAL, "length 17: EINVAL") ||
	    !ASSERT_TRUE(strstr(sockmig_last_error(), "single-pass"), "says why") ||
	    !ASSERT_TRUE(!open_with(ql, 12, zero) && errno == EINVAL, "a zero key: EINVAL"))
		return SM_FAIL;
	g = open_with(ql, 12, key_a);
	if (!ASSERT_TRUE(g, "an encrypted group"))
		return SM_FAIL;
	again = open_with(ql, 12, key_b);
	if (!ASSERT_TRUE(!again && errno == EEXIST, "another key: EEXIST"))
		goto out;
	again = open_with(ql, 12, NULL);
	if (!ASSERT_TRUE(!again && errno == EEXIST, "no key, a length: EEXIST"))
		goto out;
	again = open_with(SOCKMIG_UDP_MODE_DEFAULT, 0, NULL);
	if (!ASSERT_TRUE(again, "no key, no length: as it is"))
		goto out;
	sockmig_udp_group_close(again);
	again = open_with(ql, 12, key_a);
	if (!ASSERT_TRUE(again, "its own key"))
		goto out;
	sockmig_udp_group_close(again);
	destroy(g);
	/* a plaintext group takes no key */
	g = open_with(ql, 12, NULL);
	if (!ASSERT_TRUE(g, "a plaintext group"))
		return SM_FAIL;
	again = open_with(ql, 0, key_a);
	if (!ASSERT_TRUE(!again && errno == EEXIST, "a key for a plaintext group: EEXIST"))
		goto out;
	ret = SM_PASS;
out:
	destroy(g);
	return ret;
}

/*
 * A group collected while a process still holds a handle of it (its last
 * member gone), then joined through that handle: made again as it was,
 * with its key (the remade group's program decrypts the handle's CIDs; a
 * later open with another key is refused).
 */
SM_TEST(udp_quic_enc_group_made_again_with_its_key)
{
	struct sockmig_udp_group *b = NULL, *again;
	struct sockmig_quic_cid_info info;
	struct sockmig_quic_stats qst;
	uint8_t cid[12], d[256];
	int who[20], ret = SM_FAIL, k;
	struct qs q = {0};

	if (!ASSERT_OK(qs_start(&q, 12, 0, key_a), "start") ||
	    !ASSERT_TRUE((b = sockmig_udp_group_open_name(sockmig_udp_group_name(q.g), NULL)),
			 "open by name") ||
	    !ASSERT_EQ(sockmig_udp_group_collect(b), 1, "collect: no member, removed") ||
	    !ASSERT_TRUE(qs_add(&q, 1) == 0 && qs_add(&q, 1) == 1, "members through the handle"))
		goto out;
	again = open_with(SOCKMIG_UDP_MODE_QUIC_LB, 12, key_b);
	if (!ASSERT_TRUE(!again && errno == EEXIST, "made again with its key: key B refused") ||
	    !ASSERT_TRUE(strstr(sockmig_last_error(), "another key"), "as another key"))
		goto out;
	for (k = 0; k < 2; k++) {
		if (!ASSERT_EQ(sockmig_quic_cid_encode(q.g, q.pfd[k].fd, cid, sizeof(cid)), 12,
			       "encode") ||
		    !ASSERT_OK(sockmig_quic_cid_decode_key(cid, 12, key_a, &info), "decode") ||
		    /* encrypted with key A: a plaintext CID would decode to noise */
		    !ASSERT_EQ(info.generation, 1, "its generation, decrypted") ||
		    !ASSERT_LE(info.slot, 1, "its slot, decrypted"))
			goto out;
		for (int c = 0; c < 20; c++)
			if (send_from(&q, k, 41000 + c, d, quic_short(d, cid, 12, (uint32_t)c, 7)) <
			    0)
				goto out;
		qs_collect(&q, 20, 7, who, 20);
		for (int c = 0; c < 20; c++)
			if (!ASSERT_EQ(who[c], k, "to the CID's member"))
				goto out;
	}
	if (ASSERT_OK(sockmig_quic_stats_read(q.g, &qst), "quic stats") &&
	    ASSERT_EQ(qst.hits, 40, "CID hits"))
		ret = SM_PASS;
out:
	sockmig_udp_group_close(b);
	qs_stop(&q);
	return ret;
}

/* The name of the program pinned for group @g ("" when none). */
static void pinned_prog(struct sockmig_udp_group *g, char *name, size_t len)
{
	struct bpf_prog_info info = {};
	__u32 il = sizeof(info);
	char pin[300];
	int fd;

	snprintf(pin, sizeof(pin), "%s/%s/prog", SOCKMIG_PIN_ROOT, sockmig_udp_group_name(g));
	fd = bpf_obj_get(pin);
	name[0] = '\0';
	if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &il) == 0)
		snprintf(name, len, "%s", info.name);
	if (fd >= 0)
		close(fd);
}

/*
 * A plaintext group whose program pin went missing, opened with a key:
 * EEXIST, and the program pinned again is the plaintext one (the pinned
 * config decides, not the opener's key), so a member that joins later
 * through another handle still gets plaintext CIDs to their member.
 */
SM_TEST(udp_quic_enc_key_does_not_replace_a_plaintext_program)
{
	struct sockmig_udp_group *h = NULL;
	char name[BPF_OBJ_NAME_LEN], pin[300];
	int who[20], ret = SM_FAIL, k;
	uint8_t cid[12], d[256];
	struct qs q = {0};

	if (!ASSERT_OK(qs_start(&q, 12, 0, NULL), "a plaintext group") ||
	    !ASSERT_TRUE(qs_add(&q, 1) == 0, "a member"))
		goto out;
	snprintf(pin, sizeof(pin), "%s/%s/prog", SOCKMIG_PIN_ROOT, sockmig_udp_group_name(q.g));
	if (!ASSERT_OK(unlink(pin), "its program pin removed") ||
	    !ASSERT_TRUE(!open_with(SOCKMIG_UDP_MODE_QUIC_LB, 0, key_a) && errno == EEXIST,
			 "opened with a key: EEXIST"))
		goto out;
	pinned_prog(q.g, name, sizeof(name));
	printf("pinned program: %s\n", name[0] ? name : "(none)");
	if (!ASSERT_TRUE(strcmp(name, "sockmig_udp") == 0, "the plaintext program pinned") ||
	    !ASSERT_TRUE((h = sockmig_udp_group_open_name(sockmig_udp_group_name(q.g), NULL)),
			 "open by name"))
		goto out;
	sockmig_udp_group_close(q.g);
	q.g = h; /* the next member joins through it, with the pinned program */
	h = NULL;
	if (!ASSERT_TRUE(qs_add(&q, 1) == 1, "a member through the new handle"))
		goto out;
	for (k = 0; k < 2; k++) {
		if (!ASSERT_EQ(sockmig_quic_cid_encode(q.g, q.pfd[k].fd, cid, sizeof(cid)), 12,
			       "encode"))
			goto out;
		for (int c = 0; c < 20; c++)
			if (send_from(&q, k, 42000 + c, d, quic_short(d, cid, 12, (uint32_t)c, 9)) <
			    0)
				goto out;
		qs_collect(&q, 20, 9, who, 20);
		for (int c = 0; c < 20; c++)
			if (!ASSERT_EQ(who[c], k, "to the CID's member"))
				goto out;
	}
	ret = SM_PASS;
out:
	qs_stop(&q);
	return ret;
}
