// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups (lib/udp.c, bpf/udp.bpf.c) across generation flips: 1,000
 * established flows stay with the socket that took their first datagram,
 * with the baselines that must fail (plain SO_REUSEPORT, and the stateless
 * mode). New flows, closed owners, expiry and bad input are in
 * test_udp_flows.c; the rig (tests/udp_rig.c) is shared. Loopback, each
 * case in its own network namespace.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "udp_rig.h"

#define NFLOWS 1000
#define FLIPS  60

static long udp_rcvbuf_errors(void)
{
	char line[1024], names[1024] = "";
	FILE *f = fopen("/proc/thread-self/net/snmp", "r");
	long v = -1;

	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Udp: ", 5) != 0)
			continue;
		if (!names[0]) {
			snprintf(names, sizeof(names), "%s", line);
			continue;
		}
		/* the value under "RcvbufErrors" */
		char *n = names, *val = line, *sn, *sv;
		char *tn = strtok_r(n, " \n", &sn), *tv = strtok_r(val, " \n", &sv);

		while (tn && tv) {
			if (strcmp(tn, "RcvbufErrors") == 0)
				v = atol(tv);
			tn = strtok_r(NULL, " \n", &sn);
			tv = strtok_r(NULL, " \n", &sv);
		}
		break;
	}
	if (f)
		fclose(f);
	return v;
}

/* ---- 1,000 flows across 60 flips, 40 of them with every flow started ---- */

struct flipper {
	struct ur_rig *r;
	atomic_int rounds; /* rounds the clients finished */
	atomic_int flips;
	atomic_bool failed, stop;
};

/* Flip i (a socket of generation i + 2 joins, and is registered when the
 * rig has a group) once the clients have finished 2 (i + 1) rounds: every
 * flow sends between two flips, and a flip happens while a round is in
 * flight, whatever the speed of the machine. */
static void *flip_thread(void *arg)
{
	struct flipper *f = arg;
	struct timespec nap = {0, 200000};

	for (int i = 0; i < FLIPS && !atomic_load(&f->stop); i++) {
		while (atomic_load(&f->rounds) < 2 * (i + 1) && !atomic_load(&f->stop))
			nanosleep(&nap, NULL);
		if (atomic_load(&f->stop))
			break;
		if (ur_add(f->r, (uint32_t)i + 2) < 0) {
			atomic_store(&f->failed, true);
			break;
		}
		atomic_fetch_add(&f->flips, 1);
	}
	return NULL;
}

/*
 * Flows start over the first 20 flips (NFLOWS / 20 after each) and send
 * one datagram per round until two rounds after the last flip (at least
 * 2 * FLIPS + 2 rounds). The number of answers from a generation other
 * than the flow's owner; -1 when the run itself failed.
 */
static long flip_run(struct ur_rig *r, long *rounds)
{
	struct flipper f = {.r = r};
	pthread_t th;
	int after = 0, started;
	uint32_t seq = 0;
	uint64_t end = ur_now_ms() + 40000;

	if (ur_add(r, 1) < 0 || pthread_create(&th, NULL, flip_thread, &f) != 0)
		return -1;
	while (after < 2 && ur_now_ms() < end) {
		int done = atomic_load(&f.flips);
		uint64_t wait_end = ur_now_ms() + 5000;
		struct timespec nap = {0, 200000};

		/* a flip that is due is waited for, bounded: a flipper that lagged
		 * (ASan, a loaded machine) would otherwise flip twice between two
		 * rounds, and two batches of new flows would start under one
		 * generation */
		while (done < FLIPS && seq >= 2u * (uint32_t)(done + 1) &&
		       !atomic_load(&f.failed) && ur_now_ms() < wait_end) {
			nanosleep(&nap, NULL);
			done = atomic_load(&f.flips);
		}

		started = (done + 1) * (NFLOWS / 20);
		if (started > NFLOWS)
			started = NFLOWS;
		if (ur_round(r, 0, started, ++seq) < 0)
			break;
		atomic_fetch_add(&f.rounds, 1);
		if (done == FLIPS || atomic_load(&f.failed))
			after++;
	}
	atomic_store(&f.stop, true);
	pthread_join(th, NULL);
	*rounds = seq;
	if (atomic_load(&f.failed) || atomic_load(&f.flips) != FLIPS || after < 2)
		return -1;
	return r->misrouted;
}

SM_TEST(udp_flips_flow_mode_keeps_every_flow_with_its_owner)
{
	struct sockmig_udp_stats st;
	struct ur_rig r;
	long mis, rounds = 0, gens = 0;
	int ret = SM_FAIL;
	bool seen[FLIPS + 2] = {false};

	if (!ASSERT_OK(UR_START(NFLOWS, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 0), "rig"))
		goto out;
	mis = flip_run(&r, &rounds);
	printf("rounds %ld, sent %ld, answered %ld, lost %ld, misrouted %ld\n", rounds, r.sent,
	       r.answered, r.lost, mis);
	for (int i = 0; i < NFLOWS; i++)
		if (r.first[i] > 0 && r.first[i] < FLIPS + 2)
			seen[r.first[i]] = true;
	for (int i = 0; i < FLIPS + 2; i++)
		gens += seen[i];
	if (!ASSERT_OK(mis, "run") || !ASSERT_EQ(mis, 0, "answers from a non-owning generation") ||
	    !ASSERT_EQ(ur_unexplained_lost(&r), 0, "datagrams unanswered") ||
	    !ASSERT_GT(rounds, 2 * FLIPS, "rounds (datagrams per flow)") ||
	    /* owners spread over the generations that were working when flows started */
	    !ASSERT_GT(gens, 15, "generations owning flows") ||
	    !ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    !ASSERT_EQ(st.new_flows, NFLOWS, "new flows") ||
	    !ASSERT_EQ(st.new_flows + st.flow_hits, r.sent, "every datagram a new flow or a hit") ||
	    !ASSERT_EQ(st.fallbacks + st.expired + st.kernel_hash + st.not_learned +
			       st.parse_failed,
		       0, "no other path") ||
	    !ASSERT_EQ(st.working_generation, FLIPS + 1, "working generation") ||
	    !ASSERT_EQ(st.n_active, FLIPS + 1, "active members") ||
	    !ASSERT_EQ(udp_rcvbuf_errors(), 0, "UdpRcvbufErrors") ||
	    !ASSERT_OK(ur_flows_match(&r), "the table's flows"))
		goto out;
	ret = SM_PASS;
out:
	ur_stop(&r);
	return ret;
}

SM_TEST(udp_flips_naive_reuseport_misroutes)
{
	struct ur_rig r;
	long mis, rounds = 0;
	int ret = SM_FAIL;

	if (!ASSERT_OK(UR_START(NFLOWS, &r, AF_INET, false, 0, 0), "rig"))
		goto out;
	mis = flip_run(&r, &rounds);
	printf("rounds %ld, sent %ld, answered %ld, lost %ld, misrouted %ld\n", rounds, r.sent,
	       r.answered, r.lost, mis);
	/* the baseline the flow mode is measured against: the kernel's hash
	 * moves established flows whenever a socket joins */
	if (!ASSERT_OK(mis, "run") || !ASSERT_GT(mis, 0, "answers from a non-owning generation") ||
	    !ASSERT_GT(rounds, 2 * FLIPS, "rounds"))
		goto out;
	ret = SM_PASS;
out:
	ur_stop(&r);
	return ret;
}

SM_TEST(udp_flips_mode_none_moves_flows_to_the_working_generation)
{
	struct sockmig_udp_stats st;
	struct ur_rig r;
	long mis, rounds = 0;
	int ret = SM_FAIL;

	if (!ASSERT_OK(UR_START(NFLOWS, &r, AF_INET, true, SOCKMIG_UDP_MODE_NONE, 0), "rig"))
		goto out;
	mis = flip_run(&r, &rounds);
	printf("rounds %ld, sent %ld, answered %ld, lost %ld, misrouted %ld\n", rounds, r.sent,
	       r.answered, r.lost, mis);
	/* stateless: what the flow table is for; every datagram to the working
	 * generation, so the last round is answered by the last one alone */
	if (!ASSERT_OK(mis, "run") || !ASSERT_GT(mis, 0, "answers from a non-owning generation") ||
	    !ASSERT_EQ(ur_unexplained_lost(&r), 0, "datagrams unanswered") ||
	    !ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    !ASSERT_EQ(st.stateless, r.sent, "every datagram stateless") ||
	    !ASSERT_EQ(st.new_flows + st.flow_hits + st.kernel_hash, 0, "no flow path") ||
	    !ASSERT_EQ(sockmig_udp_flows(r.g, NULL, 0), 0, "no flow learned"))
		goto out;
	for (int i = 0; i < NFLOWS; i++)
		if (!ASSERT_EQ(r.last[i], FLIPS + 1, "last answer by the working generation"))
			goto out;
	ret = SM_PASS;
out:
	ur_stop(&r);
	return ret;
}
