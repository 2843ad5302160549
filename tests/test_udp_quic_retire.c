// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Retiring a member of a quic-lb group (lib/udp_retire.c): its connections
 * reach it by the CIDs it minted, which refresh no flow of the table; the
 * retire waits while such datagrams come, so none falls to the working
 * generation, whose process would not know the connection. In the case's
 * own network namespace, plain UDP sockets on loopback. And a group that
 * another version of sockmig pinned is refused, not misread.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "harness.h"
#include "sockmig.h"
#include "udp_rig.h"

#define ROUNDS	40   /* one datagram by the CID every 20 ms */
#define IDLE_MS 1500 /* a sender stalled this long would end the retire early */
#define CID_LEN 8

struct rt {
	struct sockaddr_in addr;
	int fd;
	int rc;
	struct sockmig_udp_retire_report rep;
};

static int server(const struct sockaddr_in *a)
{
	int one = 1, fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
			bind(fd, (const struct sockaddr *)a, sizeof(*a)) < 0)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* The retire, from a thread of its own with a handle of its own. */
static void *retire(void *arg)
{
	struct rt *t = arg;
	SOCKMIG_OPTS(sockmig_udp_retire_opts, ro, .deadline_ms = 5000);
	struct sockmig_udp_group *g =
		sockmig_udp_group_open((struct sockaddr *)&t->addr, sizeof(t->addr), NULL);

	t->rep.sz = sizeof(t->rep);
	t->rc = g ? sockmig_udp_member_retire(g, t->fd, &ro, &t->rep) : -errno;
	sockmig_udp_group_close(g);
	return NULL;
}

static void drain(int fd, long *n)
{
	char b[256];

	while (recv(fd, b, sizeof(b), 0) >= 0)
		(*n)++;
}

SM_TEST(udp_quic_lb_retire_waits_for_cid_traffic)
{
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .mode = SOCKMIG_UDP_MODE_QUIC_LB,
		     .idle_timeout_ms = IDLE_MS);
	SOCKMIG_OPTS(sockmig_udp_member_opts, m1, .generation = 1);
	SOCKMIG_OPTS(sockmig_udp_member_opts, m2, .generation = 2);
	struct rt t = {.addr = {.sin_family = AF_INET, .sin_port = htons(UR_PORT)}};
	struct sockmig_udp_group *g;
	uint8_t cid[CID_LEN], pkt[1 + CID_LEN + 24];
	long got1 = 0, got2 = 0, sent = 0;
	int ret = SM_FAIL, s1, s2, c;
	unsigned long long t0, sent_ms = 0, end;
	pthread_t th;

	t.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g = sockmig_udp_group_open((struct sockaddr *)&t.addr, sizeof(t.addr), &go);
	s1 = server(&t.addr);
	s2 = server(&t.addr);
	if (!ASSERT_TRUE(g && s1 >= 0 && s2 >= 0, "group and sockets") ||
	    !ASSERT_OK(sockmig_udp_member_add(g, s1, &m1), "generation 1") ||
	    !ASSERT_OK(sockmig_udp_member_add(g, s2, &m2), "generation 2 (the working one)") ||
	    !ASSERT_EQ(sockmig_quic_cid_encode(g, s1, cid, sizeof(cid)), CID_LEN, "a CID of 1"))
		goto out;
	pkt[0] = 0x40;
	memcpy(pkt + 1, cid, CID_LEN);
	memset(pkt + 1 + CID_LEN, 0x5a, 24);
	t.fd = s1;
	t0 = ur_now_ms();
	/* a client that keeps its connection to generation 1 busy for 800 ms,
	 * from a new port every time (no flow to learn by its 4-tuple); the
	 * retire starts once the connection is under way */
	for (int r = 0; r < ROUNDS; r++) {
		if (r == 1 && !ASSERT_OK(pthread_create(&th, NULL, retire, &t), "retire thread"))
			goto out;
		c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (c >= 0 && sendto(c, pkt, sizeof(pkt), 0, (struct sockaddr *)&t.addr,
				     sizeof(t.addr)) == (ssize_t)sizeof(pkt))
			sent++;
		if (c >= 0)
			close(c);
		for (end = ur_now_ms() + 20; ur_now_ms() < end;) {
			drain(s1, &got1);
			drain(s2, &got2);
			usleep(1000);
		}
	}
	sent_ms = ur_now_ms() - t0;
	pthread_join(th, NULL);
	drain(s1, &got1);
	drain(s2, &got2);
	printf("sent %ld by generation 1's CID over %llu ms: read by 1 %ld, by 2 %ld; retire %d "
	       "after %llu ms (flows left %llu, deadline hit %d)\n",
	       sent, sent_ms, got1, got2, t.rc, (unsigned long long)(t.rep.total_ns / 1000000),
	       (unsigned long long)t.rep.flows_left, (int)t.rep.deadline_hit);
	if (ASSERT_OK(t.rc, "retire") && ASSERT_EQ(sent, ROUNDS, "sent") &&
	    ASSERT_EQ(got2, 0, "datagrams of 1's connection read by 2") &&
	    ASSERT_EQ(got1, sent, "read by 1") && ASSERT_EQ(t.rep.flows_left, 0, "flows left") &&
	    ASSERT_TRUE(t.rep.flows_wait_ns / 1000000 + 20 >= sent_ms, "waited while they came"))
		ret = SM_PASS;
out:
	if (s1 >= 0)
		close(s1);
	if (s2 >= 0)
		close(s2);
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
	return ret;
}

/*
 * A group pinned by another version of sockmig, whose maps hold values of
 * another size (its slots here): opening it fails with EEXIST and says so,
 * rather than reading its counters and slots at the wrong offsets.
 */
SM_TEST(udp_group_of_another_version_refused)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(UR_PORT)};
	struct sockmig_udp_group *g, *again;
	const char *root = getenv("SOCKMIG_PIN_ROOT");
	char pin[512];
	int fd, ret = SM_FAIL;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
	if (!ASSERT_TRUE(g, "a group"))
		return SM_FAIL;
	snprintf(pin, sizeof(pin), "%s/%s/slots", root && *root ? root : SOCKMIG_PIN_ROOT,
		 sockmig_udp_group_name(g));
	/* an older struct smu_slot: 24 bytes */
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "slots", 4, 24, SOCKMIG_UDP_SLOTS, NULL);
	if (!ASSERT_TRUE(fd >= 0, "a map of 24-byte values") ||
	    !ASSERT_OK(unlink(pin), "the group's slots unpinned") ||
	    !ASSERT_OK(bpf_obj_pin(fd, pin), "the older slots pinned"))
		goto out;
	again = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
	printf("open: %s\n", again ? "opened" : sockmig_last_error());
	if (ASSERT_TRUE(!again && errno == EEXIST, "refused with EEXIST") &&
	    ASSERT_TRUE(strstr(sockmig_last_error(), "another version"), "and says why"))
		ret = SM_PASS;
	sockmig_udp_group_close(again);
out:
	if (fd >= 0)
		close(fd);
	sockmig_udp_group_destroy(g);
	sockmig_udp_group_close(g);
	return ret;
}

/* Pin @fd in place of the pin @name of group @g. */
static bool repin(struct sockmig_udp_group *g, const char *name, int fd)
{
	const char *root = getenv("SOCKMIG_PIN_ROOT");
	char pin[512];

	snprintf(pin, sizeof(pin), "%s/%s/%s", root && *root ? root : SOCKMIG_PIN_ROOT,
		 sockmig_udp_group_name(g), name);
	return ASSERT_TRUE(fd >= 0, "a map") && ASSERT_OK(unlink(pin), "unpinned") &&
	       ASSERT_OK(bpf_obj_pin(fd, pin), "pinned again");
}

/*
 * A group made before 17-octet encrypted CIDs: its key map's values are
 * 432 bytes (round keys and S-box, no inverse S-box). It opens (an
 * upgrade keeps running groups), and a key map of any other size is still
 * refused.
 */
SM_TEST(udp_group_made_before_single_pass_cids_opens)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(UR_PORT)};
	struct sockmig_udp_group *g, *again = NULL;
	int fd = -1, odd = -1, ret = SM_FAIL;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
	if (!ASSERT_TRUE(g, "a group"))
		return SM_FAIL;
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "qkey", 4, 176 + 256, 1, NULL);
	if (!repin(g, "qkey", fd))
		goto out;
	again = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
	printf("open with a 432-byte key map: %s\n", again ? "opened" : sockmig_last_error());
	if (!ASSERT_TRUE(again != NULL, "the older group opens"))
		goto out;
	sockmig_udp_group_close(again);
	odd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "qkey", 4, 400, 1, NULL);
	if (!repin(g, "qkey", odd))
		goto out;
	again = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
	printf("open with a 400-byte key map: %s\n", again ? "opened" : sockmig_last_error());
	if (ASSERT_TRUE(!again && errno == EEXIST, "another size refused with EEXIST"))
		ret = SM_PASS;
	sockmig_udp_group_close(again);
out:
	if (fd >= 0)
		close(fd);
	if (odd >= 0)
		close(odd);
	sockmig_udp_group_destroy(g);
	sockmig_udp_group_close(g);
	return ret;
}
