// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups at scale (issue 13): 4,096 sockets of 256 generations in one
 * group, and 1,000,000 flows with a flow table sized for them (two
 * network namespaces on one port: test_udp_scale_netns.c). Flows are
 * crafted datagrams from a raw socket (tests/udp_gen.c): each flow a 127/8
 * source address and port of its own, no client socket per flow. Each
 * case ends with its baseline: the same datagrams without the group's
 * program (the kernel's own SO_REUSEPORT hash) miss their owners, and a
 * 32-bit key would merge flows. Each case in its own network namespace.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "udp_gen.h"
#include "udp_rig.h"

#define PORT	 34760
#define GENS	 256
#define PER_GEN	 16
#define MEMBERS	 (GENS * PER_GEN)
#define GEN_STEP 16 /* generations 1, 17, ..., 4081: 12 bits, not 8 */

/* The program off the kernel's group: its own hash chooses from now on. */
static bool detach(int fd)
{
	int zero = 0;

	if (setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &zero, sizeof(zero)) < 0) {
		printf("SO_DETACH_REUSEPORT_BPF: %s\n", strerror(errno));
		return false;
	}
	return true;
}

/* ---- 4,096 sockets of 256 generations ----------------------------------- */

/* Every member of generation index @gi (receivers [16 gi, 16 gi + 16))
 * learns at least one new flow: new flows until each did, at most 1,024. */
static bool reach_generation(int raw, struct ug_rx *rx, struct ug_seen *s, int gi)
{
	uint32_t start = s->nflows;
	int reached = 0;

	s->lo = gi * PER_GEN;
	s->hi = s->lo + PER_GEN;
	while (reached < PER_GEN && s->nflows - start < 1024) {
		uint32_t from = s->nflows;

		s->nflows += PER_GEN;
		if (!ug_round_trip(raw, PORT, rx, s, from, s->nflows))
			return false;
		reached = 0;
		for (int k = s->lo; k < s->hi; k++)
			reached += s->per[k] > 0;
	}
	if (reached < PER_GEN)
		printf("generation %d: %d of %d members reached after %u flows\n",
		       1 + GEN_STEP * gi, reached, PER_GEN, s->nflows);
	return reached == PER_GEN;
}

/* Every member gets a CID of its slot and generation (12 bits), and a
 * datagram from a new 4-tuple carrying it reaches that member. */
static bool cids_reach_every_member(struct sockmig_udp_group *g, int raw, struct ug_rx *rx,
				    struct ug_seen *s)
{
	struct sockmig_udp_member_info *mi = calloc(MEMBERS, sizeof(*mi));
	struct sockmig_quic_stats q0, q1;
	uint32_t base = s->nflows;
	bool ok = false;
	long got;

	if (!mi || !ASSERT_EQ(sockmig_udp_members(g, mi, MEMBERS), MEMBERS, "members") ||
	    !ASSERT_OK(sockmig_quic_stats_read(g, &q0), "quic stats"))
		goto out;
	/* the learn round's owner table, reused: flow base + k is receiver k's */
	s->nflows = base + MEMBERS;
	for (int k = 0; k < MEMBERS; k++)
		s->owner[base + (uint32_t)k] = (uint32_t)k + 1;
	for (int k = 0; k < MEMBERS; k++) {
		uint64_t cookie = sockmig_cookie(rx->fd[k]);
		struct sockmig_quic_cid_info info = {.len = 8}, back;
		uint8_t cid[8];
		int m = 0;

		while (m < MEMBERS && mi[m].cookie != cookie)
			m++;
		if (!ASSERT_TRUE(m < MEMBERS, "receiver is a member") ||
		    !ASSERT_EQ(mi[m].generation, 1 + GEN_STEP * (k / PER_GEN), "its generation"))
			goto out;
		info.slot = mi[m].slot;
		info.generation = mi[m].generation;
		if (!ASSERT_EQ(sockmig_quic_cid_build(&info, cid, sizeof(cid)), 8, "cid") ||
		    !ASSERT_OK(sockmig_quic_cid_decode(cid, sizeof(cid), &back), "decode") ||
		    !ASSERT_EQ(back.generation, mi[m].generation, "12-bit generation") ||
		    !ASSERT_EQ(back.slot, mi[m].slot, "slot") ||
		    !ASSERT_OK(ug_send_cid(raw, PORT, base + (uint32_t)k, s->round, cid, 8),
			       "send"))
			goto out;
	}
	got = ug_collect(rx, MEMBERS, 5000, ug_on_msg, s);
	if (!ASSERT_EQ(got, MEMBERS, "CID datagrams read") ||
	    !ASSERT_EQ(s->mismatch, 0, "CID datagrams at another member") ||
	    !ASSERT_OK(sockmig_quic_stats_read(g, &q1), "quic stats") ||
	    !ASSERT_EQ(q1.hits - q0.hits, MEMBERS, "quic hits"))
		goto out;
	ok = true;
out:
	s->nflows = base;
	free(mi);
	return ok;
}

/* `sockmig status` lists the 256 generations, 16 members each, with the
 * flows each learned. */
static bool status_lists_generations(struct ug_seen *s, char *out)
{
	size_t cap = (size_t)GENS * 64, len = 0;
	char *want = malloc(cap);
	bool ok;

	if (!want || !ASSERT_EQ(ug_status(out), 0, "sockmig status"))
		goto fail;
	len += (size_t)snprintf(want + len, cap - len, "\n  ");
	for (int gi = 0; gi < GENS; gi++) {
		int flows = 0;

		for (int k = gi * PER_GEN; k < (gi + 1) * PER_GEN; k++)
			flows += s->per[k];
		len += (size_t)snprintf(want + len, cap - len,
					"%sgeneration %d: %d members, %d flow%s", gi ? "; " : "",
					1 + GEN_STEP * gi, PER_GEN, flows, flows == 1 ? "" : "s");
	}
	ok = ASSERT_TRUE(strstr(out, want) != NULL, "status: the 256 generations' line") &&
	     ASSERT_TRUE(strstr(out, ": 4096 members, sockmig UDP group") != NULL,
			 "status: 4096 members");
	if (!ok)
		printf("expected:%s\n", want);
	free(want);
	return ok;
fail:
	free(want);
	return false;
}

SM_LONG(udp_scale_4096_sockets_of_256_generations, 120)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(PORT),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .mode = SOCKMIG_UDP_MODE_QUIC_LB,
		     .idle_timeout_ms = SOCKMIG_UDP_NO_EXPIRY);
	struct sockmig_udp_flow_count *fc = calloc(MEMBERS, sizeof(*fc));
	struct ug_seen s = {.owner = calloc(GENS * 1024 + MEMBERS, sizeof(uint32_t)),
			    .per = calloc(MEMBERS, sizeof(int)),
			    .learn = true,
			    .round = 1};
	struct sockmig_udp_group *g = NULL;
	struct sockmig_udp_stats st;
	struct timespec t0;
	struct ug_rx rx = {.ep = -1};
	char *out = malloc(UG_OUT_MAX);
	int ret = SM_FAIL, raw = -1;
	double t_add = 0;

	if (!fc || !s.owner || !s.per || !out || ug_rx_init(&rx, MEMBERS + 1) < 0)
		goto out;
	if (ur_enough_fds(MEMBERS + 256) < 0) {
		ret = SKIP("RLIMIT_NOFILE is below %d and may not be raised here", MEMBERS + 256);
		goto out;
	}
	g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &go);
	raw = ug_raw_open();
	if (!ASSERT_TRUE(g, sockmig_last_error()) || raw < 0)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int gi = 0; gi < GENS; gi++) {
		struct timespec ta;

		clock_gettime(CLOCK_MONOTONIC, &ta);
		for (int k = 0; k < PER_GEN; k++) {
			SOCKMIG_OPTS(sockmig_udp_member_opts, mo,
				     .generation = (uint32_t)(1 + GEN_STEP * gi));
			int i = ug_rx_socket(&rx, PORT, 1 << 20);

			if (i < 0 || !ASSERT_OK(sockmig_udp_member_add(g, rx.fd[i], &mo), "add"))
				goto out;
		}
		t_add += ug_secs_since(&ta);
		/* a flip: the new flows go to this generation's 16, all of them */
		if (!reach_generation(raw, &rx, &s, gi))
			goto out;
	}
	printf("4096 members of 256 generations added in %.2f s, %u new flows in %.2f s in "
	       "all\n",
	       t_add, s.nflows, ug_secs_since(&t0));
	if (!ASSERT_EQ(s.off_gen, 0, "new flows off the working generation") ||
	    !ASSERT_EQ(s.dup + s.stray + rx.bad, 0, "duplicate, stray or malformed datagrams") ||
	    !ASSERT_OK(sockmig_udp_stats_read(g, &st), "stats") ||
	    !ASSERT_EQ(st.working_generation, 1 + GEN_STEP * (GENS - 1), "working generation") ||
	    !ASSERT_EQ(st.n_working, PER_GEN, "working members") ||
	    !ASSERT_EQ(st.n_active, MEMBERS, "active members") ||
	    !ASSERT_EQ(st.new_flows, s.nflows, "new flows"))
		goto out;

	/* every older member keeps every flow it learned */
	s.learn = false;
	s.round = 2;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!ug_round_trip(raw, PORT, &rx, &s, 0, s.nflows) ||
	    !ASSERT_EQ(s.mismatch, 0, "datagrams at another socket than their flow's") ||
	    !ASSERT_OK(sockmig_udp_stats_read(g, &st), "stats") ||
	    !ASSERT_EQ(st.flow_hits, s.nflows, "flow hits") ||
	    !ASSERT_EQ(st.new_flows, s.nflows, "no flow learned again") ||
	    !ASSERT_EQ(st.fallbacks + st.kernel_hash + st.not_learned + st.parse_failed, 0,
		       "fallbacks, kernel hash, not learned, parse failures") ||
	    !ASSERT_EQ(sockmig_udp_flows(g, fc, MEMBERS), GENS, "generations owning flows"))
		goto out;
	printf("second datagram of %u flows, each to its owner: %.2f s\n", s.nflows,
	       ug_secs_since(&t0));
	for (int gi = 0; gi < GENS; gi++) {
		long want = 0;

		for (int k = gi * PER_GEN; k < (gi + 1) * PER_GEN; k++)
			want += s.per[k];
		if (!ASSERT_EQ(fc[gi].generation, 1 + GEN_STEP * gi, "generation") ||
		    !ASSERT_EQ(fc[gi].flows, want, "its flows"))
			goto out;
	}
	s.round = 3;
	if (!cids_reach_every_member(g, raw, &rx, &s) || !status_lists_generations(&s, out))
		goto out;

	/* baseline: the kernel's hash over 4,096 sockets loses nearly all */
	s.round = 4;
	s.mismatch = 0;
	if (!detach(rx.fd[0]) || !ug_round_trip(raw, PORT, &rx, &s, 0, s.nflows))
		goto out;
	printf("baseline, without the group's program: %ld of %u flows at another socket\n",
	       s.mismatch, s.nflows);
	if (!ASSERT_GT(s.mismatch, s.nflows / 2, "baseline: most flows lost without the program"))
		goto out;
	/* the group is full: a 4,097th socket is refused, the others stay */
	if (!ASSERT_OK(ug_rx_socket(&rx, PORT, 1 << 20), "one socket more") ||
	    !ASSERT_ERR(sockmig_udp_member_add(g, rx.fd[MEMBERS], NULL), ENOSPC, "4,097th") ||
	    !ASSERT_EQ(sockmig_udp_members(g, NULL, 0), MEMBERS, "members"))
		goto out;
	ret = SM_PASS;
out:
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
	if (raw >= 0)
		close(raw);
	ug_rx_free(&rx);
	free(fc);
	free(s.owner);
	free(s.per);
	free(out);
	return ret;
}

/* ---- 1,000,000 flows ----------------------------------------------------- */

#define MFLOWS 1000000u
#define MRX    8 /* 4 of generation 1, then 4 of generation 2 */

SM_LONG(udp_scale_1m_flows_each_keeps_its_socket, 120)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(PORT),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .flow_max = MFLOWS,
		     .idle_timeout_ms = SOCKMIG_UDP_NO_EXPIRY);
	struct ug_seen s = {.owner = calloc(MFLOWS, sizeof(uint32_t)),
			    .per = calloc(MRX, sizeof(int)),
			    .nflows = MFLOWS,
			    .learn = true,
			    .round = 1};
	struct sockmig_udp_flow_count fc[4];
	struct sockmig_udp_group *g = NULL;
	struct sockmig_udp_stats st;
	struct timespec t0;
	struct ug_rx rx = {.ep = -1};
	int ret = SM_FAIL, raw = -1;
	const uint32_t half = MFLOWS / 2, sample = 200000;
	long coll;

	if (!s.owner || !s.per || ug_rx_init(&rx, MRX) < 0)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &go);
	raw = ug_raw_open();
	if (!ASSERT_TRUE(g, sockmig_last_error()) || raw < 0)
		goto out;
	printf("group with a table of %u flows made in %.2f s\n", MFLOWS, ug_secs_since(&t0));
	for (int k = 0; k < MRX; k++) {
		SOCKMIG_OPTS(sockmig_udp_member_opts, mo, .generation = 1 + (uint32_t)k / 4);
		int i;

		if (k == 4) {
			/* the flip, half-way: the second half is generation 2's */
			s.lo = 0;
			s.hi = 4;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			if (!ug_round_trip(raw, PORT, &rx, &s, 0, half))
				goto out;
			printf("first datagrams of flows 0 to %u (generation 1): %.2f s\n", half,
			       ug_secs_since(&t0));
		}
		i = ug_rx_socket(&rx, PORT, 32 << 20);
		if (i < 0 || !ASSERT_OK(sockmig_udp_member_add(g, rx.fd[i], &mo), "add"))
			goto out;
	}
	s.lo = 4;
	s.hi = 8;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!ug_round_trip(raw, PORT, &rx, &s, half, MFLOWS))
		goto out;
	printf("first datagrams of flows %u to %u (generation 2): %.2f s\n", half, MFLOWS,
	       ug_secs_since(&t0));
	if (!ASSERT_EQ(s.off_gen, 0, "new flows off the working generation") ||
	    !ASSERT_EQ(s.dup + s.stray + rx.bad, 0, "duplicate, stray or malformed datagrams"))
		goto out;

	s.learn = false;
	s.round = 2;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!ug_round_trip(raw, PORT, &rx, &s, 0, MFLOWS))
		goto out;
	printf("second datagrams of %u flows: %.2f s, %ld at another socket than the first\n",
	       MFLOWS, ug_secs_since(&t0), s.mismatch);
	for (int k = 0; k < MRX; k++)
		printf("receiver %d (generation %d): %d flows\n", k, 1 + k / 4, s.per[k]);
	if (!ASSERT_OK(sockmig_udp_stats_read(g, &st), "stats"))
		goto out;
	printf("counters: new_flows=%llu flow_hits=%llu fallbacks=%llu not_learned=%llu "
	       "(a flow forgotten by the table is new again at its second datagram)\n",
	       (unsigned long long)st.new_flows, (unsigned long long)st.flow_hits,
	       (unsigned long long)st.fallbacks, (unsigned long long)st.not_learned);
	if (!ASSERT_EQ(s.mismatch, 0, "second datagrams at another socket") ||
	    !ASSERT_EQ(st.new_flows, MFLOWS, "new flows") ||
	    !ASSERT_EQ(st.flow_hits, MFLOWS, "flow hits") ||
	    !ASSERT_EQ(st.fallbacks + st.expired + st.kernel_hash + st.not_learned, 0,
		       "fallbacks, expired, kernel hash, not learned"))
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!ASSERT_EQ(sockmig_udp_flows(g, fc, 4), 2, "generations owning flows") ||
	    !ASSERT_EQ(fc[0].generation, 1, "generation 1") ||
	    !ASSERT_EQ(fc[0].flows, half, "its") ||
	    !ASSERT_EQ(fc[1].generation, 2, "generation 2") || !ASSERT_EQ(fc[1].flows, half, "its"))
		goto out;
	printf("the table's %u flows counted by generation in %.2f s\n", MFLOWS,
	       ug_secs_since(&t0));

	/* contrast: a key of 32 bits (a hash of the tuple) would merge flows */
	coll = ug_hash32_collisions(MFLOWS, PORT);
	printf("a 32-bit hash of these %u 4-tuples: %ld share a hash with another (about %.0f "
	       "expected: n^2 / 2^33); the full 4-tuple key: 0\n",
	       MFLOWS, coll, (double)MFLOWS * (MFLOWS - 1) / 8589934592.0);
	if (!ASSERT_GT(coll, 0, "32-bit collisions"))
		goto out;

	/* baseline: without the program, the kernel's hash over the 8 sockets
	 * moves generation 1's flows */
	s.round = 3;
	s.mismatch = 0;
	if (!detach(rx.fd[0]) || !ug_round_trip(raw, PORT, &rx, &s, 0, sample))
		goto out;
	printf("baseline, without the group's program: %ld of %u flows of generation 1 at "
	       "another socket\n",
	       s.mismatch, sample);
	if (!ASSERT_GT(s.mismatch, sample / 4, "baseline: flows lost without the program"))
		goto out;
	ret = SM_PASS;
out:
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
	if (raw >= 0)
		close(raw);
	ug_rx_free(&rx);
	free(s.owner);
	free(s.per);
	return ret;
}
