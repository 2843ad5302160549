// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Legacy mode beyond the matrix: SYN bursts, deadlines, SYN cookies, the hand-off. */
/*
 * As in test_legacy.c: the legacy policy forced with tcp_migrate_req=0. A
 * SYN burst while a member drains, a final ACK past a deadline the caller
 * set and past the SYN+ACK retry budget, SYN cookies (the steered counter
 * is not a count of handshakes), the hand-off of accepted connections to a
 * live member over SCM_RIGHTS.
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define PORT 33000

static void raise_nofile(int n)
{
	struct rlimit rl = {(rlim_t)n, (rlim_t)n};
	struct rlimit cur;

	if (getrlimit(RLIMIT_NOFILE, &cur) == 0 && cur.rlim_cur >= (rlim_t)n)
		return;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/*
 * SYNs keep coming while A drains: handshakes are in flight on A and B
 * (their final ACKs held), A is drained, a second burst arrives, the ACKs
 * are released. A gets no SYN after it is marked draining, and the drain
 * accepts exactly what the program steered to A before: no SYN cookie, no
 * retransmitted SYN here, so steered == requests == accepted.
 */
SM_TEST(legacy_syn_burst_while_draining)
{
	enum { N1 = 300, N2 = 700 };
	struct sockmig_group *g = NULL;
	struct ackdrop_bpf *drop = NULL;
	struct tu_drain_job *j = calloc(1, sizeof(*j));
	struct tu_sink *s = calloc(1, sizeof(*s));
	struct burst *c = calloc(1, sizeof(*c));
	int a = -1, b = -1, answered, served_b = 0, ret = SM_FAIL;
	struct sockmig_member_info mi = {0};
	uint64_t at_mark;

	if (!j || !s || !c)
		goto out;
	raise_nofile(8192);
	pthread_mutex_init(&s->mu, NULL);
	if (!ASSERT_OK(burst_migrate_req(false), "tcp_migrate_req") ||
	    !ASSERT_OK(burst_sysctl("net/ipv4/tcp_syncookies", "0"), "tcp_syncookies") ||
	    !ASSERT_OK(burst_sysctl("net/ipv4/tcp_max_syn_backlog", "8192"), "syn backlog"))
		goto out;
	a = burst_listener(AF_INET, PORT, 4096, 0);
	b = burst_listener(AF_INET, PORT, 4096, 0);
	if (!ASSERT_OK(a, "listener A") || !ASSERT_OK(b, "listener B"))
		goto out;
	g = tu_open_legacy(a);
	if (!ASSERT_TRUE(g != NULL, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add_gen(g, a, 1), "add A") || !ASSERT_OK(tu_add_gen(g, b, 1), "add B"))
		goto out;
	drop = tu_ackdrop_attach(PORT);
	if (!ASSERT_TRUE(drop != NULL, "attach the XDP ACK dropper to lo"))
		goto out;
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT, N1, false), "burst 1") ||
	    !ASSERT_EQ(burst_connected(c, 3000), N1, "burst 1 connected"))
		goto out;
	at_mark = tu_steered(g, a);
	if (!ASSERT_GT(at_mark, 0, "A's share of burst 1") ||
	    !ASSERT_EQ(sockmig_listener_inflight(a), at_mark, "A's handshakes in flight") ||
	    !ASSERT_EQ(sockmig_listener_inflight(b), N1 - at_mark, "B's handshakes in flight"))
		goto out;

	j->g = g;
	j->fd = a;
	j->legacy = true;
	j->opts.sz = sizeof(j->opts);
	j->opts.on_accept = tu_sink_accept;
	j->opts.ctx = s;
	if (!ASSERT_OK(tu_drain_start(j), "drain thread"))
		goto out;
	/* burst 2 once the drain has marked A and the program's table says
	 * so (its handshakes in flight hold the drain there until the ACKs
	 * pass) */
	for (int t = 0; t < 300 && !(sockmig_member_get(g, sockmig_cookie(a), &mi) == 0 &&
				     mi.role == SOCKMIG_ROLE_DRAINING);
	     t++)
		burst_sleep_ms(10);
	if (!ASSERT_EQ(mi.role, SOCKMIG_ROLE_DRAINING, "A marked draining") ||
	    !ASSERT_TRUE(tu_group_settled(g), "the group's table rebuilt") ||
	    !ASSERT_OK(burst_start(c, AF_INET, PORT, N2, false), "burst 2") ||
	    !ASSERT_EQ(burst_connected(c, 3000), N1 + N2, "burst 2 connected") ||
	    !ASSERT_EQ(tu_steered(g, a), at_mark, "SYNs steered to A while it drains") ||
	    !ASSERT_EQ(sockmig_listener_inflight(b), N1 + N2 - at_mark, "B's in flight"))
		goto out;
	burst_sleep_ms(100);
	tu_ackdrop_set(drop, false);
	if (!ASSERT_OK(tu_drain_join(j), "drain"))
		goto out;
	answered = tu_sink_serve(s, 5000);
	burst_serve(c, &b, 1, &served_b, 10000);
	burst_print(c, "burst while draining");
	printf("A steered %llu, answered from A %d, served by B %d\n", (unsigned long long)at_mark,
	       answered, served_b);
	if (!ASSERT_EQ(c->count[BURST_OK], N1 + N2, "served") ||
	    !ASSERT_EQ(c->count[BURST_RESET], 0, "reset") ||
	    !ASSERT_EQ(j->rep.inflight_start, at_mark, "in flight when SYNs stopped") ||
	    !ASSERT_EQ(j->rep.accepted, at_mark, "accepted by the drain = steered to A") ||
	    !ASSERT_EQ(j->rep.late_syns, 0, "late SYNs") ||
	    !ASSERT_EQ(j->rep.abandoned, 0, "abandoned") ||
	    !ASSERT_EQ(answered, at_mark, "answered from A") ||
	    !ASSERT_EQ(served_b, N1 + N2 - at_mark, "served by B") ||
	    !ASSERT_EQ(tu_steered(g, b), N1 + N2 - at_mark, "steered to B"))
		goto out;
	ret = SM_PASS;
out:
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	tu_ackdrop_detach(drop);
	if (c)
		burst_close(c);
	if (s && s->n)
		tu_sink_serve(s, 0);
	free(c);
	free(s);
	free(j);
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	return ret;
}

/*
 * Handshakes whose final ACK never comes while A drains. @deadline_ms 0:
 * the drain's own deadline (the SYN+ACK retry budget, with
 * tcp_synack_retries 1: 3 s, plus 1 s): the kernel drops the requests at
 * 3 s by itself and the drain ends then, with nothing abandoned. Else the
 * caller's shorter deadline: the drain ends at it, counts the requests
 * left as abandoned, and those clients are reset when their ACK comes.
 * Either way the clients are reset, as they are without any drain.
 */
static int deadline_case(uint32_t deadline_ms)
{
	enum { N = 8 };
	SOCKMIG_OPTS(sockmig_legacy_drain_opts, o, .deadline_ms = deadline_ms);
	struct sockmig_legacy_drain_report rep;
	struct sockmig_group *g = NULL;
	struct ackdrop_bpf *drop = NULL;
	struct tu_sink *s = calloc(1, sizeof(*s));
	struct burst *c = calloc(1, sizeof(*c));
	int a = -1, b = -1, served_b = 0, ret = SM_FAIL;
	unsigned long long t_syn, t0, ms;

	if (!s || !c)
		goto out;
	pthread_mutex_init(&s->mu, NULL);
	o.on_accept = tu_sink_accept;
	o.ctx = s;
	if (!ASSERT_OK(burst_migrate_req(false), "tcp_migrate_req") ||
	    !ASSERT_OK(burst_sysctl("net/ipv4/tcp_synack_retries", "1"), "tcp_synack_retries"))
		goto out;
	a = burst_listener(AF_INET, PORT, 64, 0);
	if (!ASSERT_OK(a, "listener A"))
		goto out;
	g = tu_open_legacy(a);
	if (!ASSERT_TRUE(g != NULL, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add_gen(g, a, 1), "add A"))
		goto out;
	drop = tu_ackdrop_attach(PORT);
	t_syn = burst_now_ms(); /* the kernel's timers count from the SYNs */
	if (!ASSERT_TRUE(drop != NULL, "attach the XDP ACK dropper to lo") ||
	    !ASSERT_OK(burst_start(c, AF_INET, PORT, N, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), N, "clients connected") ||
	    !ASSERT_EQ(sockmig_listener_inflight(a), N, "A's handshakes in flight"))
		goto out;
	b = burst_listener(AF_INET, PORT, 64, 0);
	if (!ASSERT_OK(b, "listener B") || !ASSERT_OK(tu_add_gen(g, b, 2), "add B"))
		goto out;

	t0 = burst_now_ms();
	if (!ASSERT_OK(sockmig_member_drain_legacy(g, a, &o, &rep), "drain"))
		goto out;
	ms = burst_now_ms() - t0;
	tu_legacy_report(&rep);
	tu_ackdrop_set(drop, false);
	burst_serve(c, &b, 1, &served_b, 15000);
	burst_print(c, "final ACK past the deadline");
	if (!ASSERT_EQ(rep.inflight_start, N, "in flight at start") ||
	    !ASSERT_EQ(rep.accepted, 0, "accepted") ||
	    !ASSERT_EQ(tu_listening(a), 0, "A listens") ||
	    !ASSERT_EQ(c->count[BURST_OK], 0, "served") ||
	    !ASSERT_EQ(c->count[BURST_RESET], N, "reset"))
		goto out;
	if (deadline_ms) {
		if (!ASSERT_EQ(rep.deadline_ms, deadline_ms, "deadline") ||
		    !ASSERT_EQ(rep.deadline_hit, 1, "deadline hit") ||
		    !ASSERT_EQ(rep.abandoned, N, "abandoned (reported)") ||
		    !ASSERT_TRUE(ms >= deadline_ms && ms < deadline_ms + 1000, "ended at it"))
			goto out;
	} else {
		/* 1 s + 2 s of SYN+ACK timeouts from the SYNs, 1 s of margin */
		if (!ASSERT_EQ(rep.deadline_ms, 4000, "deadline from tcp_synack_retries 1") ||
		    !ASSERT_EQ(rep.deadline_hit, 0, "deadline hit") ||
		    !ASSERT_EQ(rep.abandoned, 0, "abandoned") ||
		    !ASSERT_TRUE(t0 + ms - t_syn >= 2900 && ms < 4000,
				 "ended when the kernel dropped them"))
			goto out;
	}
	ret = SM_PASS;
out:
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	tu_ackdrop_detach(drop);
	if (c)
		burst_close(c);
	if (s && s->n)
		tu_sink_serve(s, 0);
	free(c);
	free(s);
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	return ret;
}

SM_TEST(legacy_deadline_past)
{
	return deadline_case(500);
}

SM_TEST(legacy_deadline_synack_budget)
{
	return deadline_case(0);
}

/*
 * With SYN cookies every SYN steered to A is answered without a request:
 * the counter of SYNs steered says 8, there is nothing in flight, and the
 * drain ends at once. The clients' ACKs then go to B, where the cookie is
 * as good (the group shares its overflow stamp): all served.
 */
SM_TEST(legacy_syncookies_steered_is_not_inflight)
{
	enum { N = 8 };
	SOCKMIG_OPTS(sockmig_legacy_drain_opts, o, .on_accept = tu_sink_accept);
	struct sockmig_legacy_drain_report rep;
	struct sockmig_group *g = NULL;
	struct ackdrop_bpf *drop = NULL;
	struct tu_sink *s = calloc(1, sizeof(*s));
	struct burst *c = calloc(1, sizeof(*c));
	int a = -1, b = -1, served_b = 0, ret = SM_FAIL;

	if (!s || !c)
		goto out;
	pthread_mutex_init(&s->mu, NULL);
	o.ctx = s;
	if (!ASSERT_OK(burst_migrate_req(false), "tcp_migrate_req") ||
	    !ASSERT_OK(burst_sysctl("net/ipv4/tcp_syncookies", "2"), "tcp_syncookies"))
		goto out;
	a = burst_listener(AF_INET, PORT, 64, 0);
	if (!ASSERT_OK(a, "listener A"))
		goto out;
	g = tu_open_legacy(a);
	if (!ASSERT_TRUE(g != NULL, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add_gen(g, a, 1), "add A"))
		goto out;
	drop = tu_ackdrop_attach(PORT);
	if (!ASSERT_TRUE(drop != NULL, "attach the XDP ACK dropper to lo") ||
	    !ASSERT_OK(burst_start(c, AF_INET, PORT, N, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), N, "clients connected") ||
	    !ASSERT_EQ(tu_steered(g, a), N, "SYNs steered to A") ||
	    !ASSERT_EQ(sockmig_listener_inflight(a), 0, "A's handshakes in flight"))
		goto out;
	b = burst_listener(AF_INET, PORT, 64, 0);
	if (!ASSERT_OK(b, "listener B") || !ASSERT_OK(tu_add_gen(g, b, 2), "add B") ||
	    !ASSERT_OK(sockmig_member_drain_legacy(g, a, &o, &rep), "drain"))
		goto out;
	tu_legacy_report(&rep);
	tu_ackdrop_set(drop, false);
	burst_serve(c, &b, 1, &served_b, 8000);
	burst_print(c, "syncookies");
	if (!ASSERT_EQ(rep.inflight_start, 0, "in flight at start") ||
	    !ASSERT_EQ(rep.accepted, 0, "accepted") ||
	    !ASSERT_TRUE(rep.wait_ns < 500000000ull, "no wait for handshakes that do not exist") ||
	    !ASSERT_EQ(c->count[BURST_OK], N, "served") ||
	    !ASSERT_EQ(c->count[BURST_RESET], 0, "reset") || !ASSERT_EQ(served_b, N, "by B"))
		goto out;
	ret = SM_PASS;
out:
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	tu_ackdrop_detach(drop);
	if (c)
		burst_close(c);
	free(c);
	free(s);
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	return ret;
}

/* A drained with sockmig_handoff_accept(): every connection it accepts is
 * passed to B's hand-off endpoint, as to another process, and served from
 * there; queued children and handshakes in flight alike. */
struct recv_job {
	int hfd;
	struct tu_sink *s;
	volatile int stop;
	int got;
};

static void *recv_thread(void *arg)
{
	struct recv_job *r = arg;

	for (;;) {
		struct pollfd p = {.fd = r->hfd, .events = POLLIN};
		int fd, last;

		poll(&p, 1, 10);
		/* read before the pass: a stop set then follows every send,
		 * which this pass reads */
		last = r->stop;
		while ((fd = sockmig_handoff_recv(r->hfd)) >= 0) {
			tu_sink_accept(fd, r->s);
			r->got++;
		}
		if (last)
			return NULL;
	}
}

SM_TEST(legacy_handoff_to_live_member)
{
	enum { N = 40 };
	struct sockmig_group *g = NULL;
	struct ackdrop_bpf *drop = NULL;
	struct tu_drain_job *j = calloc(1, sizeof(*j));
	struct tu_sink *s = calloc(1, sizeof(*s));
	struct burst *c = calloc(1, sizeof(*c));
	struct recv_job r = {.hfd = -1};
	pthread_t rt;
	bool rt_started = false;
	int a = -1, b = -1, answered = 0, served_b = 0, ret = SM_FAIL;

	if (!j || !s || !c)
		goto out;
	pthread_mutex_init(&s->mu, NULL);
	r.s = s;
	if (!ASSERT_OK(burst_migrate_req(false), "tcp_migrate_req"))
		goto out;
	a = burst_listener(AF_INET6, PORT, 256, 0);
	if (!ASSERT_OK(a, "listener A"))
		goto out;
	g = tu_open_legacy(a);
	if (!ASSERT_TRUE(g != NULL, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add_gen(g, a, 1), "add A"))
		goto out;
	/* half queued children, half handshakes in flight */
	if (!ASSERT_OK(burst_start(c, AF_INET6, PORT, N / 2, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), N / 2, "connected") ||
	    !ASSERT_TRUE(burst_wait_queue(a, N / 2, 2000), "queued on A"))
		goto out;
	drop = tu_ackdrop_attach(PORT);
	if (!ASSERT_TRUE(drop != NULL, "attach the XDP ACK dropper to lo") ||
	    !ASSERT_OK(burst_start(c, AF_INET6, PORT, N / 2, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), N, "connected") ||
	    !ASSERT_EQ(sockmig_listener_inflight(a), N / 2, "A's handshakes in flight"))
		goto out;
	b = burst_listener(AF_INET6, PORT, 256, 0);
	if (!ASSERT_OK(b, "listener B") || !ASSERT_OK(tu_add_gen(g, b, 2), "add B"))
		goto out;
	r.hfd = sockmig_handoff_listen(g, b);
	if (!ASSERT_OK(r.hfd, "B's hand-off endpoint") ||
	    !ASSERT_ERR(sockmig_handoff_listen(g, b), EADDRINUSE, "a second endpoint") ||
	    !ASSERT_OK(-pthread_create(&rt, NULL, recv_thread, &r), "receiver"))
		goto out;
	rt_started = true;

	j->g = g;
	j->fd = a;
	j->legacy = true;
	j->opts.sz = sizeof(j->opts);
	j->opts.on_accept = sockmig_handoff_accept;
	j->opts.ctx = g;
	if (!ASSERT_OK(tu_drain_start(j), "drain thread"))
		goto out;
	burst_sleep_ms(300);
	tu_ackdrop_set(drop, false);
	if (!ASSERT_OK(tu_drain_join(j), "drain"))
		goto out;
	r.stop = 1;
	pthread_join(rt, NULL);
	rt_started = false;
	answered = tu_sink_serve(s, 5000);
	burst_serve(c, &b, 1, &served_b, 8000);
	burst_print(c, "hand-off");
	printf("handed off %d, answered %d, served by B's listener %d\n", r.got, answered,
	       served_b);
	if (!ASSERT_EQ(c->count[BURST_OK], N, "served") ||
	    !ASSERT_EQ(c->count[BURST_RESET], 0, "reset") ||
	    !ASSERT_EQ(j->rep.accepted, N, "accepted by the drain") ||
	    !ASSERT_EQ(j->rep.refused, 0, "refused") || !ASSERT_EQ(r.got, N, "handed off to B") ||
	    !ASSERT_EQ(answered, N, "answered by B's process"))
		goto out;
	ret = SM_PASS;
out:
	if (rt_started) {
		r.stop = 1;
		pthread_join(rt, NULL);
	}
	if (r.hfd >= 0)
		sockmig_handoff_close(r.hfd);
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	tu_ackdrop_detach(drop);
	if (c)
		burst_close(c);
	if (s && s->n)
		tu_sink_serve(s, 0);
	free(c);
	free(s);
	free(j);
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	return ret;
}
