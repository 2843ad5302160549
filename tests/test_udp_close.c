// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Closing a UDP member (lib/udp_retire.c): a server that closes its old
 * socket at once loses the datagrams queued on it (the baseline, counted
 * exactly); retired first, it loses none; the deadline cuts a retire
 * short and the report says what was left; a member's live flows are
 * waited for until they go idle; a drained generation's cut-off moves its
 * flows at once; bad input is refused. The rig (tests/udp_rig.c) serves
 * the working generation; the old member's socket is read here, by the
 * case, as a slow server would. Loopback, each case in its own netns.
 */
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "udp_rig.h"

#define FLOWS 40 /* clients of the old member */
#define MORE  9	 /* datagrams of each flow after the first */

/* A rig whose generation 1 (the old member, *@old, read by the case and
 * not the echo thread) owns FLOWS flows, each sent 1 + @more datagrams
 * (the first before generation 2 joined), all queued on it; @cli: the
 * clients (connected UDP sockets). */
struct close_rig {
	struct ur_rig r;
	int old, k_old;
	int cli[FLOWS];
	long sent;
	uint8_t seen[FLOWS][MORE + 8]; /* datagrams read from the old member, by flow and seq */
	long got;
};

static void cr_stop(struct close_rig *c)
{
	for (int i = 0; i < FLOWS; i++)
		if (c->cli[i] >= 0)
			close(c->cli[i]);
	ur_stop(&c->r);
}

static int cr_send(struct close_rig *c, int i, uint32_t seq)
{
	struct ur_msg m = {.flow = (uint32_t)i, .seq = seq};

	if (send(c->cli[i], &m, sizeof(m), 0) != sizeof(m)) {
		printf("client %d: %s\n", i, strerror(errno));
		return -1;
	}
	c->sent++;
	return 0;
}

/* Until the program has steered every datagram sent (within 5 s). */
static int cr_steered(struct close_rig *c)
{
	struct sockmig_udp_stats st;
	uint64_t end = ur_now_ms() + 5000;

	do {
		if (sockmig_udp_stats_read(c->r.g, &st) < 0)
			return -1;
		if ((long)(st.new_flows + st.flow_hits + st.fallbacks + st.expired +
			   st.kernel_hash) == c->sent)
			return 0;
		usleep(1000);
	} while (ur_now_ms() < end);
	printf("%ld datagrams sent, not all steered\n", c->sent);
	return -1;
}

static int cr_start(struct close_rig *c, int family, uint32_t idle_ms, int more)
{
	memset(c, 0, sizeof(*c));
	for (int i = 0; i < FLOWS; i++)
		c->cli[i] = -1;
	c->old = -1;
	if (ur_start(&c->r, family, true, SOCKMIG_UDP_MODE_FLOW, idle_ms) < 0)
		return -1;
	c->k_old = ur_add(&c->r, 1);
	if (c->k_old < 0)
		return -1;
	c->old = c->r.srv[c->k_old];
	/* the case reads it, not the echo thread (nothing was sent yet) */
	if (epoll_ctl(c->r.ep, EPOLL_CTL_DEL, c->old, NULL) < 0)
		return -1;
	for (int i = 0; i < FLOWS; i++) {
		c->cli[i] = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->cli[i] < 0 ||
		    connect(c->cli[i], (struct sockaddr *)&c->r.addr, c->r.alen) < 0 ||
		    cr_send(c, i, 0) < 0)
			return -1;
	}
	if (cr_steered(c) < 0 || ur_add(&c->r, 2) < 0)
		return -1;
	for (int s = 1; s <= more; s++)
		for (int i = 0; i < FLOWS; i++)
			if (cr_send(c, i, (uint32_t)s) < 0)
				return -1;
	return cr_steered(c);
}

/* Read what the old member has queued, up to @max datagrams (-1: all),
 * each recorded once: the number read, or -1 (a duplicate or a stranger). */
static long cr_read(struct close_rig *c, long max)
{
	long n = 0;
	struct ur_msg m;

	while (max < 0 || n < max) {
		ssize_t len = recv(c->old, &m, sizeof(m), MSG_DONTWAIT);

		if (len < 0)
			break;
		if (len != sizeof(m) || m.flow >= FLOWS || m.seq >= MORE + 8 ||
		    c->seen[m.flow][m.seq]++) {
			printf("datagram flow %u seq %u: unexpected\n", m.flow, m.seq);
			return -1;
		}
		n++;
	}
	c->got += n;
	return n;
}

/* Close the old member (it leaves the rig). */
static void cr_close_old(struct close_rig *c)
{
	close(c->old);
	c->r.srv[c->k_old] = -1;
	c->old = -1;
}

/* Each flow sends datagram @seq: every answer comes from generation @gen
 * (within 5 s). */
static int cr_answered_by(struct close_rig *c, uint32_t seq, uint32_t gen)
{
	uint64_t end = ur_now_ms() + 5000;
	int left = FLOWS;
	bool got[FLOWS] = {false};

	for (int i = 0; i < FLOWS; i++)
		if (cr_send(c, i, seq) < 0)
			return -1;
	while (left && ur_now_ms() < end) {
		for (int i = 0; i < FLOWS; i++) {
			struct ur_msg m;

			if (got[i] || recv(c->cli[i], &m, sizeof(m), MSG_DONTWAIT) != sizeof(m))
				continue;
			if (m.seq != seq || m.gen != gen) {
				printf("flow %d: answer seq %u from generation %u\n", i, m.seq,
				       m.gen);
				return -1;
			}
			got[i] = true;
			left--;
		}
		usleep(1000);
	}
	if (left)
		printf("%d flows unanswered\n", left);
	return left ? -1 : 0;
}

/* ---- close at once, retire then close ------------------------------------ */

SM_TEST(udp_close_at_once_loses_the_queued_datagrams)
{
	struct close_rig c;
	uint64_t bytes = 0;
	long queued = FLOWS * (1 + MORE), lost;
	int ret = SM_FAIL;

	if (!ASSERT_OK(cr_start(&c, AF_INET, 0, MORE), "rig"))
		goto out;
	/* the slow server has read 50 when it closes */
	if (!ASSERT_EQ(cr_read(&c, 50), 50, "read before the close") ||
	    !ASSERT_OK(sockmig_udp_queued(c.old, &bytes), "queued") ||
	    !ASSERT_GT(bytes, 0, "bytes queued at the close"))
		goto out;
	cr_close_old(&c);
	lost = queued - c.got;
	printf("closed at once: %ld of %ld datagrams never read, %llu bytes queued at the close\n",
	       lost, queued, (unsigned long long)bytes);
	if (!ASSERT_EQ(lost, queued - 50, "lost") ||
	    /* the flows fall to generation 2, for later datagrams only */
	    !ASSERT_OK(cr_answered_by(&c, MORE + 1, 2), "later datagrams"))
		goto out;
	ret = SM_PASS;
out:
	cr_stop(&c);
	return ret;
}

struct retire_th {
	struct close_rig *c;
	struct sockmig_udp_retire_opts o;
	struct sockmig_udp_retire_report rep;
	int ret;
	atomic_bool done;
};

static void *retire_thread(void *arg)
{
	struct retire_th *t = arg;

	t->ret = sockmig_udp_member_retire(t->c->r.g, t->c->old, &t->o, &t->rep);
	atomic_store(&t->done, true);
	return NULL;
}

static int start_retire(struct retire_th *t, pthread_t *th, struct close_rig *c,
			uint32_t deadline_ms, uint32_t flags)
{
	memset(t, 0, sizeof(*t));
	t->c = c;
	t->o.sz = sizeof(t->o);
	t->o.deadline_ms = deadline_ms;
	t->o.flags = flags;
	t->rep.sz = sizeof(t->rep);
	return pthread_create(th, NULL, retire_thread, t) == 0 ? 0 : -1;
}

/* The slow reader: a few datagrams at a time, until the retire returned;
 * then it stops at once (the server closes): what it has not read by
 * then is lost. */
static int slow_reader(struct close_rig *c, struct retire_th *t)
{
	struct timespec ms = {0, 1000000};

	while (!atomic_load(&t->done)) {
		struct pollfd p = {.fd = c->old, .events = POLLIN};

		if (cr_read(c, 5) < 0)
			return -1;
		poll(&p, 1, 10);
		nanosleep(&ms, NULL);
	}
	return 0;
}

static int retire_case(int family)
{
	struct sockmig_udp_stats st0, st;
	struct close_rig c;
	struct retire_th t;
	pthread_t th;
	bool joined = true;
	uint64_t bytes = 1, cookie = 0;
	long queued = FLOWS * (1 + MORE);
	int ret = SM_FAIL;

	if (!ASSERT_OK(cr_start(&c, family, 0, MORE), "rig") ||
	    !ASSERT_TRUE((cookie = sockmig_cookie(c.old)) != 0, "cookie") ||
	    !ASSERT_EQ(cr_read(&c, 50), 50, "read before the retire") ||
	    !ASSERT_OK(sockmig_udp_stats_read(c.r.g, &st0), "stats") ||
	    !ASSERT_OK(start_retire(&t, &th, &c, 10000, SOCKMIG_UDP_RETIRE_FLOWS_OK), "retire"))
		goto out;
	joined = false;
	if (!ASSERT_OK(slow_reader(&c, &t), "reader"))
		goto out;
	pthread_join(th, NULL);
	joined = true;
	if (!ASSERT_OK(sockmig_udp_queued(c.old, &bytes), "queued"))
		goto out;
	cr_close_old(&c);
	printf("retired: %ld of %ld datagrams read, report: %llu flows moved, %llu bytes left, "
	       "%.1f ms\n",
	       c.got, queued, (unsigned long long)t.rep.flows_left,
	       (unsigned long long)t.rep.bytes_queued, (double)t.rep.total_ns / 1e6);
	if (!ASSERT_OK(t.ret, "retire") || !ASSERT_EQ(c.got, queued, "read: every one") ||
	    !ASSERT_EQ(bytes, 0, "bytes queued at the close") ||
	    !ASSERT_EQ(t.rep.cookie, cookie, "cookie") ||
	    !ASSERT_EQ(t.rep.flows_left, FLOWS, "live flows moved") ||
	    !ASSERT_EQ(t.rep.bytes_queued, 0, "report: bytes left") ||
	    !ASSERT_TRUE(!t.rep.deadline_hit, "deadline not hit") ||
	    !ASSERT_TRUE(t.rep.queue_exact, "measured by sock_diag") ||
	    !ASSERT_EQ(t.rep.deadline_ms, 10000, "deadline"))
		goto out;
	/* its flows are generation 2's from their next datagram on, once
	 * each as a fallback */
	if (!ASSERT_OK(cr_answered_by(&c, MORE + 1, 2), "later datagrams") ||
	    !ASSERT_OK(sockmig_udp_stats_read(c.r.g, &st), "stats") ||
	    !ASSERT_EQ(st.fallbacks - st0.fallbacks, FLOWS, "fallbacks") ||
	    !ASSERT_EQ(st.kernel_hash, 0, "kernel hash"))
		goto out;
	ret = SM_PASS;
out:
	if (!joined)
		pthread_join(th, NULL);
	cr_stop(&c);
	return ret;
}

SM_TEST(udp_retire_then_close_loses_nothing)
{
	return retire_case(AF_INET);
}

SM_TEST(udp_retire_then_close_loses_nothing_ipv6)
{
	return retire_case(AF_INET6);
}

/* ---- the deadline -------------------------------------------------------- */

SM_TEST(udp_retire_deadline_cuts_it_short_and_says_so)
{
	SOCKMIG_OPTS(sockmig_udp_retire_opts, o, .deadline_ms = 200);
	SOCKMIG_OPTS(sockmig_udp_retire_report, rep);
	struct close_rig c;
	uint64_t bytes = 0;
	long queued = FLOWS * (1 + MORE);
	int ret = SM_FAIL, err;

	/* nobody reads, and the flows are live (30 s idle timeout) */
	if (!ASSERT_OK(cr_start(&c, AF_INET, 0, MORE), "rig"))
		goto out;
	err = sockmig_udp_member_retire(c.r.g, c.old, &o, &rep);
	if (!ASSERT_ERR(err, ETIMEDOUT, "retire") ||
	    !ASSERT_OK(sockmig_udp_queued(c.old, &bytes), "queued"))
		goto out;
	printf("cut short: %llu flows moved, %llu bytes left (%llu now), flows waited %.1f ms\n",
	       (unsigned long long)rep.flows_left, (unsigned long long)rep.bytes_queued,
	       (unsigned long long)bytes, (double)rep.flows_wait_ns / 1e6);
	if (!ASSERT_TRUE(rep.deadline_hit, "deadline hit") ||
	    !ASSERT_EQ(rep.flows_left, FLOWS, "live flows moved") ||
	    !ASSERT_GT(rep.bytes_queued, 0, "bytes left") ||
	    /* nothing reaches it after it left the socket array */
	    !ASSERT_EQ(rep.bytes_queued, bytes, "bytes left = queued now") ||
	    !ASSERT_TRUE(rep.queue_exact, "sock_diag") ||
	    !ASSERT_EQ(rep.deadline_ms, 200, "deadline"))
		goto out;
	/* what the report calls left is still there for a reader */
	if (!ASSERT_EQ(cr_read(&c, -1), queued, "read after the retire") ||
	    !ASSERT_OK(sockmig_udp_queued(c.old, &bytes), "queued") ||
	    !ASSERT_EQ(bytes, 0, "queued after the reads") ||
	    !ASSERT_OK(cr_answered_by(&c, MORE + 1, 2), "later datagrams"))
		goto out;
	ret = SM_PASS;
out:
	cr_stop(&c);
	return ret;
}

/* ---- live flows ---------------------------------------------------------- */

#define IDLE_MS 1500
#define ROUNDS	5

/* The old member's flows keep sending while it retires: @wait, they are
 * its own until idle, read by it, and the retire ends with none left;
 * without (the baseline, SOCKMIG_UDP_RETIRE_FLOWS_OK), they fall to
 * generation 2 at once. */
static int live_flows_case(bool wait)
{
	struct close_rig c;
	struct retire_th t;
	struct sockmig_udp_stats st;
	pthread_t th;
	bool joined = true;
	int ret = SM_FAIL;

	if (!ASSERT_OK(cr_start(&c, AF_INET, IDLE_MS, 0), "rig") ||
	    !ASSERT_EQ(cr_read(&c, -1), FLOWS, "first datagrams") ||
	    !ASSERT_OK(start_retire(&t, &th, &c, 20000, wait ? 0 : SOCKMIG_UDP_RETIRE_FLOWS_OK),
		       "retire"))
		goto out;
	joined = false;
	if (!wait) {
		pthread_join(th, NULL);
		joined = true;
		if (!ASSERT_OK(t.ret, "retire") || !ASSERT_EQ(t.rep.flows_left, FLOWS, "moved"))
			goto out;
	}
	for (uint32_t s = 1; s <= ROUNDS; s++) {
		uint64_t end = ur_now_ms() + 5000;
		long before = c.got;

		if (!wait) {
			if (!ASSERT_OK(cr_answered_by(&c, s, 2), "to generation 2"))
				goto out;
			continue;
		}
		for (int i = 0; i < FLOWS; i++)
			if (cr_send(&c, i, s) < 0)
				goto out;
		while (c.got - before < FLOWS && ur_now_ms() < end) {
			struct pollfd p = {.fd = c.old, .events = POLLIN};

			poll(&p, 1, 10);
			if (cr_read(&c, -1) < 0)
				goto out;
		}
		/* still its own: the flows were seen within the timeout */
		if (!ASSERT_EQ(c.got - before, FLOWS, "read by the retiring member") ||
		    !ASSERT_TRUE(!atomic_load(&t.done), "retire waits"))
			goto out;
	}
	if (wait) {
		if (!ASSERT_OK(slow_reader(&c, &t), "reader"))
			goto out;
		pthread_join(th, NULL);
		joined = true;
		printf("retire waited %.1f ms for %d flows to go idle (timeout %d ms)\n",
		       (double)t.rep.flows_wait_ns / 1e6, FLOWS, IDLE_MS);
		if (!ASSERT_OK(t.ret, "retire") || !ASSERT_EQ(t.rep.flows_left, 0, "flows left") ||
		    !ASSERT_EQ(t.rep.bytes_queued, 0, "bytes left") ||
		    !ASSERT_TRUE(!t.rep.deadline_hit, "deadline") ||
		    !ASSERT_EQ(c.got, FLOWS * (1 + ROUNDS), "read by the old member") ||
		    /* idle, they come back as new flows of generation 2 */
		    !ASSERT_OK(cr_answered_by(&c, ROUNDS + 1, 2), "after the retire") ||
		    !ASSERT_OK(sockmig_udp_stats_read(c.r.g, &st), "stats") ||
		    !ASSERT_EQ(st.expired, FLOWS, "expired") ||
		    !ASSERT_EQ(st.fallbacks, 0, "fallbacks"))
			goto out;
	} else if (!ASSERT_EQ(c.got, FLOWS, "read by the old member") ||
		   !ASSERT_OK(sockmig_udp_stats_read(c.r.g, &st), "stats") ||
		   !ASSERT_EQ(st.fallbacks, FLOWS, "fallbacks")) {
		goto out;
	}
	cr_close_old(&c);
	ret = SM_PASS;
out:
	if (!joined)
		pthread_join(th, NULL);
	cr_stop(&c);
	return ret;
}

SM_TEST(udp_retire_waits_for_live_flows_to_go_idle)
{
	return live_flows_case(true);
}

SM_TEST(udp_retire_flows_ok_moves_live_flows_at_once)
{
	return live_flows_case(false);
}

/* ---- a drained generation's cut-off -------------------------------------- */

SM_TEST(udp_generation_cutoff_moves_a_drained_generation_flows)
{
	struct sockmig_udp_stats st;
	struct ur_rig r;
	uint64_t flows = 0;
	int ret = SM_FAIL;
	const int n = 100;

	if (!ASSERT_OK(UR_START(n, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 0), "rig") ||
	    !ASSERT_OK(ur_add(&r, 1), "generation 1") ||
	    !ASSERT_OK(ur_round(&r, 0, n, 1), "round 1") || !ASSERT_OK(ur_add(&r, 2), "gen 2") ||
	    !ASSERT_ERR(sockmig_udp_generation_cutoff(r.g, 1, &flows), ENOENT, "not drained") ||
	    !ASSERT_EQ(sockmig_udp_generation_drain(r.g, 1), 1, "drain 1") ||
	    !ASSERT_OK(ur_round(&r, 0, n, 2), "round 2"))
		goto out;
	/* the baseline: drained, its flows stay with it */
	for (int i = 0; i < n; i++)
		if (!ASSERT_EQ(r.last[i], 1, "drained generation 1 keeps its flows"))
			goto out;
	if (!ASSERT_EQ(sockmig_udp_generation_cutoff(r.g, 1, &flows), 1, "cut-off") ||
	    !ASSERT_EQ(flows, n, "flows moved") || !ASSERT_OK(ur_round(&r, 0, n, 3), "round 3"))
		goto out;
	for (int i = 0; i < n; i++)
		if (!ASSERT_EQ(r.last[i], 2, "moved to generation 2"))
			goto out;
	if (!ASSERT_EQ(r.misrouted, n, "moved once each") ||
	    !ASSERT_EQ(ur_unexplained_lost(&r), 0, "unanswered") ||
	    !ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    !ASSERT_EQ(st.fallbacks, n, "fallbacks") ||
	    !ASSERT_EQ(sockmig_udp_members(r.g, NULL, 0), 1, "live members") ||
	    !ASSERT_ERR(sockmig_udp_generation_cutoff(r.g, 1, NULL), ENOENT, "cut off already"))
		goto out;
	ret = SM_PASS;
out:
	ur_stop(&r);
	return ret;
}

/* ---- bad input ----------------------------------------------------------- */

SM_TEST(udp_retire_refuses_bad_input)
{
	SOCKMIG_OPTS(sockmig_udp_retire_opts, o);
	SOCKMIG_OPTS(sockmig_udp_retire_report, rep);
	struct {
		struct sockmig_udp_retire_opts o;
		uint64_t newer;
	} big = {.o = {.sz = sizeof(big)}, .newer = 1};
	struct sockmig_udp_member_info mi[2];
	struct sockaddr_in other = {.sin_family = AF_INET,
				    .sin_port = htons(UR_PORT + 1),
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct close_rig c;
	uint64_t bytes;
	int ret = SM_FAIL, one = 1, pfd[2] = {-1, -1}, tcp = -1, stranger = -1, far = -1, k;

	if (!ASSERT_OK(ur_start(&c.r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 0), "rig"))
		return SM_FAIL;
	for (int i = 0; i < FLOWS; i++)
		c.cli[i] = -1;
	k = ur_add(&c.r, 1);
	if (!ASSERT_OK(k, "generation 1") || !ASSERT_OK(pipe(pfd), "pipe"))
		goto out;
	c.old = c.r.srv[k];
	/* the last active member: new flows would have nowhere to go */
	if (!ASSERT_ERR(sockmig_udp_member_retire(c.r.g, c.old, NULL, NULL), EBUSY, "last one") ||
	    !ASSERT_EQ(sockmig_udp_members(c.r.g, mi, 2), 1, "members") ||
	    !ASSERT_EQ(mi[0].role, SOCKMIG_ROLE_ACTIVE, "still active") ||
	    !ASSERT_OK(ur_add(&c.r, 2), "generation 2"))
		goto out;
	tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	stranger = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	far = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (!ASSERT_OK(tcp, "tcp") || !ASSERT_OK(stranger, "udp") || !ASSERT_OK(far, "udp") ||
	    !ASSERT_OK(setsockopt(stranger, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), "rp") ||
	    !ASSERT_OK(setsockopt(far, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), "rp") ||
	    !ASSERT_OK(bind(stranger, (struct sockaddr *)&c.r.addr, c.r.alen), "bind") ||
	    !ASSERT_OK(bind(far, (struct sockaddr *)&other, sizeof(other)), "bind"))
		goto out;
	if (!ASSERT_ERR(sockmig_udp_member_retire(NULL, c.old, &o, &rep), EINVAL, "no group") ||
	    !ASSERT_ERR(sockmig_udp_member_retire(c.r.g, c.old, &big.o, &rep), EINVAL,
			"opts larger, unknown bytes set") ||
	    !ASSERT_ERR(sockmig_udp_member_retire(c.r.g, c.old,
						  &(struct sockmig_udp_retire_opts){
							  .sz = sizeof(o), .flags = 1u << 7},
						  &rep),
			EINVAL, "unknown flag") ||
	    !ASSERT_ERR(sockmig_udp_member_retire(c.r.g, c.old, &o,
						  &(struct sockmig_udp_retire_report){.sz = 8}),
			EINVAL, "report too small") ||
	    !ASSERT_ERR(sockmig_udp_member_retire(c.r.g, -1, &o, &rep), EBADF, "fd -1") ||
	    !ASSERT_ERR(sockmig_udp_member_retire(c.r.g, pfd[0], &o, &rep), EINVAL, "a pipe") ||
	    !ASSERT_ERR(sockmig_udp_member_retire(c.r.g, tcp, &o, &rep), EINVAL, "TCP") ||
	    !ASSERT_ERR(sockmig_udp_member_retire(c.r.g, far, &o, &rep), EXDEV, "another port") ||
	    !ASSERT_ERR(sockmig_udp_member_retire(c.r.g, stranger, &o, &rep), ENOENT,
			"not a member") ||
	    !ASSERT_ERR(sockmig_udp_queued(pfd[0], &bytes), EINVAL, "queued: a pipe") ||
	    !ASSERT_ERR(sockmig_udp_queued(tcp, &bytes), EINVAL, "queued: TCP") ||
	    !ASSERT_ERR(sockmig_udp_queued(c.old, NULL), EINVAL, "queued: no result") ||
	    !ASSERT_ERR(sockmig_udp_generation_cutoff(NULL, 1, NULL), EINVAL, "cutoff: no group") ||
	    !ASSERT_ERR(sockmig_udp_generation_cutoff(c.r.g, 7, NULL), ENOENT, "cutoff: none"))
		goto out;
	/* nothing changed: both members live and active */
	if (!ASSERT_EQ(sockmig_udp_members(c.r.g, mi, 2), 2, "members") ||
	    !ASSERT_EQ(mi[0].role, SOCKMIG_ROLE_ACTIVE, "active") ||
	    !ASSERT_EQ(mi[1].role, SOCKMIG_ROLE_ACTIVE, "active"))
		goto out;
	/* retired once, it is no member: a second retire finds nothing */
	if (!ASSERT_OK(sockmig_udp_member_retire(c.r.g, c.old, &o, &rep), "retire") ||
	    !ASSERT_ERR(sockmig_udp_member_retire(c.r.g, c.old, &o, &rep), ENOENT, "again") ||
	    !ASSERT_EQ(sockmig_udp_members(c.r.g, NULL, 0), 1, "members left"))
		goto out;
	ret = SM_PASS;
out:
	for (int i = 0; i < 2; i++)
		if (pfd[i] >= 0)
			close(pfd[i]);
	if (tcp >= 0)
		close(tcp);
	if (stranger >= 0)
		close(stranger);
	if (far >= 0)
		close(far);
	ur_stop(&c.r);
	return ret;
}
