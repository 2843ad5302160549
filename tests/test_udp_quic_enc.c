// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups in mode quic-lb with encrypted CIDs (sockmig_udp_enc in
 * bpf/udp.bpf.c, lib/quic_enc.c), the real program in the case's network
 * namespace: clients that move to a new address and port every round,
 * across flips, reach the socket whose encrypted CID they carry; the same
 * CIDs sent to a plaintext group misroute (the baseline: the program
 * decrypts, it does not read the ciphertext as a server ID); a group's
 * key is fixed when it is made. The rig is quic_rig.c, as test_udp_quic.c's.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "quic_rig.h"
#include "udp_rig.h"

static const uint8_t key_a[16] = {0x8f, 0x95, 0xf0, 0x92, 0x45, 0x76, 0x5f, 0x80,
				  0x25, 0x69, 0x34, 0xe5, 0x0c, 0x66, 0x20, 0x7f};
static const uint8_t key_b[16] = {0xfd, 0xf7, 0x26, 0xa9, 0x89, 0x3e, 0xc0, 0x5c,
				  0x06, 0x32, 0xd3, 0x95, 0x66, 0x80, 0xba, 0xf0};

/* A quic-lb group of @cid_len, config rotation @cr and @key (NULL:
 * plaintext; quic_rig.h). */
static int qs_start(struct qs *q, uint32_t cid_len, uint32_t cr, const uint8_t *key)
{
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .mode = SOCKMIG_UDP_MODE_QUIC_LB,
		     .quic_cid_len = cid_len, .quic_config_id = cr, .quic_key = key);

	return qs_open(q, &go);
}

/* ---- NAT rebinding across flips, encrypted CIDs ------------------------- */

#define RB_CONNS 600
#define RB_FLIPS 30
#define RB_CR	 3

/*
 * The CID of a connection that socket @k owns, encrypted: minted by the
 * group when @arg (a key) is NULL (an encrypted group), else built from
 * the slot and generation that the (plaintext) group's CID names,
 * encrypted with the key: what an encrypted group with these members
 * would have minted.
 */
static int mint(struct qs *q, int k, uint8_t *cid, uint32_t len, void *arg)
{
	struct sockmig_quic_cid_info info;

	if (!ASSERT_EQ(sockmig_quic_cid_encode(q->g, q->pfd[k].fd, cid, len), (int)len, "encode"))
		return -1;
	if (arg && (!ASSERT_OK(sockmig_quic_cid_decode(cid, len, &info), "decode") ||
		    !ASSERT_EQ(sockmig_quic_cid_build_key(&info, arg, cid, len), (int)len,
			       "build with the key")))
		return -1;
	return 0;
}

/* qr_rebinding_run() with RB_CONNS connections over RB_FLIPS flips, CIDs
 * of @cl octets encrypted as mint() says. */
static int rebinding_run(struct qs *q, uint32_t cl, const uint8_t *key, struct qr_rebind *res)
{
	memset(res, 0, sizeof(*res));
	res->conns = RB_CONNS;
	res->flips = RB_FLIPS;
	res->cid_len = cl;
	res->mint = mint;
	res->arg = (void *)key;
	return qr_rebinding_run(q, res);
}

/* Lengths: even and odd plaintexts (11 and 18 octets), the longest. */
static const uint32_t rb_lens[] = {12, 19, 20};

SM_TEST(udp_quic_enc_follows_rebinding_clients_across_flips)
{
	struct sockmig_quic_stats qst;
	struct sockmig_udp_stats st;
	struct qr_rebind res;
	struct qs q = {0};

	QS_NEED_ENC();

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
	struct qr_rebind res;
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

/* Every CID length the program decrypts, 8 to 20 (17: single pass, one
 * AES block; the others four passes): one short-header datagram to each
 * member's CID reaches that member. */
#define AL_MEMBERS 4

SM_TEST(udp_quic_enc_routes_every_cid_length)
{
	struct sockmig_quic_stats qst;
	uint8_t cid[SOCKMIG_QUIC_CID_MAX], d[256];
	int who[AL_MEMBERS];

	QS_NEED_ENC();

	for (uint32_t cl = 8; cl <= SOCKMIG_QUIC_CID_MAX; cl++) {
		struct qs q = {0};
		int ok = 1;

		if (!ASSERT_OK(qs_start(&q, cl, RB_CR, key_a), "start"))
			ok = 0;
		for (int k = 0; ok && k < AL_MEMBERS; k++)
			ok = ASSERT_EQ(qs_add(&q, 1), k, "a member");
		for (int k = 0; ok && k < AL_MEMBERS; k++)
			ok = ASSERT_EQ(sockmig_quic_cid_encode(q.g, q.pfd[k].fd, cid, cl), (int)cl,
				       "encode") &&
			     ASSERT_OK(qs_send_from(&q, k, 43000 + k, d,
						    qr_short(d, cid, cl, (uint32_t)k, cl)),
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

	QS_NEED_ENC();

	/* no group made: other modes, a zero key */
	if (!ASSERT_TRUE(!open_with(SOCKMIG_UDP_MODE_FLOW, 0, key_a) && errno == EINVAL,
			 "a key for mode flow: EINVAL") ||
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

	QS_NEED_ENC();

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
			if (qs_send_from(&q, k, 41000 + c, d,
					 qr_short(d, cid, 12, (uint32_t)c, 7)) < 0)
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

/* Before 5.11 (no bpf_ktime_get_coarse_ns for sk_reuseport programs) an
 * encrypted group is refused with one line that names the kernel it
 * needs, and leaves nothing pinned (no group of the port listed); a
 * plaintext group of the same address is then made. */
SM_TEST(udp_quic_enc_refused_before_5_11)
{
	struct sockmig_group_id ids[2];
	struct sockmig_udp_group *g;

	if (qs_enc_kernel())
		return SKIP("this kernel runs the encrypted program");
	g = open_with(SOCKMIG_UDP_MODE_QUIC_LB, 12, key_a);
	if (!ASSERT_TRUE(!g && errno == EOPNOTSUPP, "encrypted: EOPNOTSUPP") ||
	    !ASSERT_TRUE(strstr(sockmig_last_error(), "need Linux 5.11") != NULL,
			 "the error names the kernel needed") ||
	    !ASSERT_EQ(sockmig_udp_group_list(NULL, sockmig_netns_self(), UR_PORT, ids, 2), 0,
		       "no group of the port left")) {
		destroy(g);
		return SM_FAIL;
	}
	g = open_with(SOCKMIG_UDP_MODE_QUIC_LB, 12, NULL);
	if (!ASSERT_TRUE(g != NULL, "then a plaintext group of the address"))
		return SM_FAIL;
	destroy(g);
	return SM_PASS;
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
	/* the plaintext program of this kernel: before 5.11, the one on
	 * bpf_ktime_get_ns (its name cut to 15 characters) */
	if (!ASSERT_TRUE(strcmp(name, qs_enc_kernel() ? "sockmig_udp" : "sockmig_udp_kti") == 0,
			 "the plaintext program pinned") ||
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
			if (qs_send_from(&q, k, 42000 + c, d,
					 qr_short(d, cid, 12, (uint32_t)c, 9)) < 0)
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
