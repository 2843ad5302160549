// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Legacy mode: the policy as a plain select program and the emulated
 * drain, forced on this kernel (SOCKMIG_POLICY_LEGACY) with
 * net.ipv4.tcp_migrate_req=0, so that nothing migrates, as on 4.19 to 5.13.
 *
 * The core matrix, each cell in its own network namespace:
 *   family (v4, v6) x what waits on listener A when it goes (an accept-
 *   queue child; a TCP Fast Open child in SYN_RECV; a handshake in flight,
 *   its final ACK held back by the XDP dropper until the drain is under
 *   way) x close() or shutdown() x
 *     none   A goes with nothing done: every client is reset (the baseline
 *            that must fail: the kernel cannot migrate);
 *     drain  sockmig_member_drain_legacy() accepts everything A has and
 *            will have, the test's serving loop answers it ("the old
 *            process serves them itself"), then A is closed or shut down:
 *            every client served, counts exact;
 *     wait   sockmig_member_drain() of a legacy group: it waits for the
 *            handshakes in flight, the caller accepts until EAGAIN, then
 *            closes: every client served.
 * Beyond the matrix: a SYN burst while a member drains, a final ACK past a
 * deadline the caller set and past the SYN+ACK retry budget, SYN cookies
 * (the steered counter is not a count of handshakes), the hand-off of
 * accepted connections to a live member over SCM_RIGHTS, the choice of the
 * policy, and a static check of the legacy object against what 4.19 to
 * 5.13 verifiers reject.
 *
 * What cannot be saved, and why (no test here asserts otherwise):
 *   - a listener closed without the drain (the "none" cells; a server that
 *     crashes, or one that sockmig does not drive, closing its listener
 *     with children queued): before 5.14 the kernel resets its queue and
 *     requests at once, and nothing can take them afterwards;
 *   - a handshake whose final ACK comes after the deadline: with the
 *     default deadline the kernel itself has dropped the request by then
 *     (legacy_deadline_synack_budget), with a shorter one the drain counts
 *     it in abandoned and it is reset (legacy_deadline_past);
 *   - with no other active member or holder listening, a new SYN may be
 *     given to the draining listener by the kernel's hash; the drain
 *     refuses to start in that state (-EBUSY) unless forced;
 *   - a TFO child reset by its client before its handshake completes:
 *     nothing is left to save, but its request holds the listener for up
 *     to 60 s, so the drain waits for its deadline;
 *   - a SYN in the kernel's own window at close (inet_unhash() detaches
 *     the listener from the group before it leaves the listening hash, so
 *     a lookup that found it in between takes it alone): it is dropped and
 *     sent again 1 s later, or makes a request that dies with the listener.
 *     IPv6 lookups start at the oldest member (the one drained), IPv4 ones
 *     at the newest; no test here can aim at a window that short.
 */
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"
#include "policy.skel.h"
#include "policy_legacy.skel.h"

#define N_CLIENTS 12
#define PORT	  33000
#define SINK_MAX  4096

/* ---- helpers -------------------------------------------------------------- */

/* The connections a drain accepted, for the test to answer. */
struct sink {
	pthread_mutex_t mu;
	int fd[SINK_MAX];
	int n;
};

static int sink_accept(int fd, void *ctx)
{
	struct sink *s = ctx;
	int err = 0;

	pthread_mutex_lock(&s->mu);
	if (s->n < SINK_MAX)
		s->fd[s->n++] = fd;
	else
		err = -ENOSPC;
	pthread_mutex_unlock(&s->mu);
	if (err)
		close(fd);
	return err;
}

/* Answer every connection of the sink (read BURST_REQUEST, write
 * BURST_REPLY, close). Returns how many were answered. */
static int sink_serve(struct sink *s, int timeout_ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)timeout_ms;
	const int reqlen = (int)strlen(BURST_REQUEST);
	int *got = calloc((size_t)s->n + 1, sizeof(*got)), left = s->n, answered = 0;
	struct pollfd *p = calloc((size_t)s->n + 1, sizeof(*p));

	if (!got || !p)
		goto out;
	for (int i = 0; i < s->n; i++)
		fcntl(s->fd[i], F_SETFL, fcntl(s->fd[i], F_GETFL) | O_NONBLOCK);
	while (left > 0 && burst_now_ms() < end) {
		for (int i = 0; i < s->n; i++) {
			p[i].fd = s->fd[i];
			p[i].events = POLLIN;
			p[i].revents = 0;
		}
		if (poll(p, (nfds_t)s->n, 20) <= 0)
			continue;
		for (int i = 0; i < s->n; i++) {
			char buf[256];
			ssize_t n;

			if (s->fd[i] < 0 || !p[i].revents)
				continue;
			n = read(s->fd[i], buf, sizeof(buf));
			if (n > 0)
				got[i] += (int)n;
			if (n > 0 && got[i] >= reqlen &&
			    write(s->fd[i], BURST_REPLY, strlen(BURST_REPLY)) > 0)
				answered++;
			if (n == 0 || (n < 0 && errno != EAGAIN) || got[i] >= reqlen) {
				close(s->fd[i]);
				s->fd[i] = -1;
				left--;
			}
		}
	}
out:
	for (int i = 0; i < s->n; i++)
		if (s->fd[i] >= 0)
			close(s->fd[i]);
	s->n = 0;
	free(got);
	free(p);
	return answered;
}

static struct sockmig_group *open_legacy(int fd)
{
	SOCKMIG_OPTS(sockmig_group_opts, go, .policy = SOCKMIG_POLICY_LEGACY);
	struct sockmig_group *g = sockmig_group_open(fd, &go);

	if (g && sockmig_group_policy(g) != SOCKMIG_POLICY_LEGACY) {
		printf("group policy %s, expected legacy\n",
		       sockmig_policy_str(sockmig_group_policy(g)));
		sockmig_group_close(g);
		return NULL;
	}
	return g;
}

static int add(struct sockmig_group *g, int fd, uint32_t gen)
{
	SOCKMIG_OPTS(sockmig_member_opts, o, .generation = gen);

	return sockmig_member_add(g, fd, &o);
}

static uint64_t steered(struct sockmig_group *g, int fd)
{
	struct sockmig_counters c = {0};

	sockmig_counters_read(g, sockmig_cookie(fd), &c);
	return c.steered;
}

static void print_report(const struct sockmig_legacy_drain_report *r)
{
	printf("drain: inflight_start %u queued_start %u late_syns %u accepted %llu refused %llu "
	       "abandoned %u deadline_hit %d deadline %u ms wait %.1f ms elapsed %.1f ms\n",
	       r->inflight_start, r->queued_start, r->late_syns, (unsigned long long)r->accepted,
	       (unsigned long long)r->refused, r->abandoned, r->deadline_hit, r->deadline_ms,
	       (double)r->wait_ns / 1e6, (double)r->elapsed_ns / 1e6);
}

/* A drain in a thread, so that the test can release held ACKs meanwhile. */
struct drain_job {
	struct sockmig_group *g;
	int fd;
	bool legacy; /* sockmig_member_drain_legacy(); else sockmig_member_drain() */
	struct sockmig_legacy_drain_opts opts;
	struct sockmig_legacy_drain_report rep;
	struct sockmig_drain_report nrep;
	int err;
	pthread_t th;
};

static void *drain_thread(void *arg)
{
	struct drain_job *j = arg;

	if (j->legacy)
		j->err = sockmig_member_drain_legacy(j->g, j->fd, &j->opts, &j->rep);
	else
		j->err = sockmig_member_drain(j->g, j->fd, NULL, &j->nrep);
	return NULL;
}

static int drain_start(struct drain_job *j)
{
	int err = pthread_create(&j->th, NULL, drain_thread, j);

	return err ? -err : 0;
}

static int drain_join(struct drain_job *j)
{
	pthread_join(j->th, NULL);
	if (j->legacy)
		print_report(&j->rep);
	return j->err;
}

static bool listening(int fd)
{
	int val = 0;
	socklen_t len = sizeof(val);

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &val, &len) == 0 && val;
}

/* ---- the core matrix ---------------------------------------------------- */

enum lstate { EST, TFO, REQ };
enum lhow { CLOSE, SHUTDOWN };
enum lmode { NONE, DRAIN, WAIT };

static const char *const mode_names[] = {"none", "drain", "wait"};

static int legacy_cell(int family, enum lstate st, enum lhow how, enum lmode mode)
{
	struct sockmig_group *g = NULL;
	struct ackdrop_bpf *drop = NULL;
	struct drain_job *j = calloc(1, sizeof(*j));
	struct sink *s = calloc(1, sizeof(*s));
	struct burst *c = calloc(1, sizeof(*c));
	int a = -1, b = -1, fd, answered = 0, served_b = 0, ret = SM_FAIL;
	int opts = st == TFO ? BURST_FASTOPEN : 0;

	if (!j || !s || !c)
		goto out;
	pthread_mutex_init(&s->mu, NULL);
	if (!ASSERT_OK(burst_sysctl("net/ipv4/tcp_migrate_req", "0"), "sysctl tcp_migrate_req"))
		goto out;
	if (st == TFO && !ASSERT_OK(burst_sysctl("net/ipv4/tcp_fastopen", "519"), "tcp_fastopen"))
		goto out;

	a = burst_listener(family, PORT, 64, opts);
	if (!ASSERT_OK(a, "listener A"))
		goto out;
	g = open_legacy(a);
	if (!ASSERT_TRUE(g != NULL, sockmig_last_error()) || !ASSERT_OK(add(g, a, 1), "register A"))
		goto out;
	if (st != EST) {
		drop = tu_ackdrop_attach(PORT);
		if (!ASSERT_TRUE(drop != NULL, "attach the XDP ACK dropper to lo"))
			goto out;
	}
	if (!ASSERT_OK(burst_start(c, family, PORT, N_CLIENTS, st == TFO), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), N_CLIENTS, "clients connected"))
		goto out;
	if (st != REQ && !ASSERT_TRUE(burst_wait_queue(a, N_CLIENTS, 2000), "children queued on A"))
		goto out;
	/* what the drain will count: requests hold A, its queue does not count */
	if (!ASSERT_EQ(burst_accept_queue(a), st == REQ ? 0 : N_CLIENTS, "A's accept queue") ||
	    !ASSERT_EQ(sockmig_listener_inflight(a), st == REQ ? N_CLIENTS : 0,
		       "A's handshakes in flight") ||
	    !ASSERT_EQ(steered(g, a), N_CLIENTS, "SYNs steered to A"))
		goto out;

	b = burst_listener(family, PORT, 64, opts);
	if (!ASSERT_OK(b, "listener B") || !ASSERT_OK(add(g, b, 2), "register B"))
		goto out;

	j->g = g;
	j->fd = a;
	switch (mode) {
	case NONE:
		if (how == CLOSE) {
			close(a);
			a = -1;
		} else if (!ASSERT_OK(shutdown(a, SHUT_RDWR), "shutdown A")) {
			goto out;
		}
		break;
	case DRAIN:
		j->legacy = true;
		j->opts.sz = sizeof(j->opts);
		j->opts.on_accept = sink_accept;
		j->opts.ctx = s;
		j->opts.no_shutdown = how == CLOSE;
		/* fall through */
	case WAIT:
		if (!ASSERT_OK(drain_start(j), "drain thread"))
			goto out;
		if (st == REQ) {
			/* the handshakes complete while A drains */
			burst_sleep_ms(300);
			tu_ackdrop_set(drop, false);
		}
		if (!ASSERT_OK(drain_join(j), "drain"))
			goto out;
		if (mode == WAIT) {
			/* the proposal's form: accept until EAGAIN, then close */
			while ((fd = accept4(a, NULL, NULL, SOCK_CLOEXEC)) >= 0)
				sink_accept(fd, s);
		}
		if (!ASSERT_EQ(listening(a), mode == DRAIN && how == SHUTDOWN ? 0 : 1,
			       "A listens after the drain"))
			goto out;
		if (how == CLOSE) {
			close(a);
			a = -1;
		} else if (mode == WAIT && !ASSERT_OK(shutdown(a, SHUT_RDWR), "shutdown A")) {
			goto out;
		}
		break;
	}
	if (drop)
		tu_ackdrop_set(drop, false);
	answered = s->n ? sink_serve(s, 5000) : 0;
	burst_serve(c, &b, 1, &served_b, 8000);
	burst_print(c, mode_names[mode]);
	printf("answered from A's drain %d, served by B %d\n", answered, served_b);

	if (mode == NONE) {
		if (!ASSERT_EQ(c->count[BURST_OK], 0, "served") ||
		    !ASSERT_EQ(c->count[BURST_RESET], N_CLIENTS, "reset"))
			goto out;
	} else {
		if (!ASSERT_EQ(c->count[BURST_OK], N_CLIENTS, "served") ||
		    !ASSERT_EQ(c->count[BURST_RESET], 0, "reset") ||
		    !ASSERT_EQ(answered, N_CLIENTS, "answered from A") ||
		    !ASSERT_EQ(served_b, 0, "served by B"))
			goto out;
	}
	if (mode == DRAIN &&
	    (!ASSERT_EQ(j->rep.accepted, N_CLIENTS, "accepted by the drain") ||
	     !ASSERT_EQ(j->rep.refused, 0, "refused") ||
	     !ASSERT_EQ(j->rep.inflight_start, st == REQ ? N_CLIENTS : 0, "in flight at start") ||
	     !ASSERT_EQ(j->rep.late_syns, 0, "late SYNs") ||
	     !ASSERT_EQ(j->rep.abandoned, 0, "abandoned") ||
	     !ASSERT_EQ(j->rep.deadline_hit, 0, "deadline hit") ||
	     !ASSERT_EQ(j->rep.deadline_ms, 64000, "deadline (tcp_synack_retries 5)")))
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
		sink_serve(s, 0);
	free(c);
	free(s);
	free(j);
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	return ret;
}

#define SM_LEGACY(name, fam, st, how, mode)                                                        \
	SM_TEST(name)                                                                              \
	{                                                                                          \
		return legacy_cell(fam, st, how, mode);                                            \
	}

/* clang-format off */
SM_LEGACY(legacy_v4_established_close_none, AF_INET, EST, CLOSE, NONE)
SM_LEGACY(legacy_v4_established_close_drain, AF_INET, EST, CLOSE, DRAIN)
SM_LEGACY(legacy_v4_established_close_wait, AF_INET, EST, CLOSE, WAIT)
SM_LEGACY(legacy_v4_established_shutdown_none, AF_INET, EST, SHUTDOWN, NONE)
SM_LEGACY(legacy_v4_established_shutdown_drain, AF_INET, EST, SHUTDOWN, DRAIN)
SM_LEGACY(legacy_v4_established_shutdown_wait, AF_INET, EST, SHUTDOWN, WAIT)
SM_LEGACY(legacy_v4_tfo_close_none, AF_INET, TFO, CLOSE, NONE)
SM_LEGACY(legacy_v4_tfo_close_drain, AF_INET, TFO, CLOSE, DRAIN)
SM_LEGACY(legacy_v4_tfo_close_wait, AF_INET, TFO, CLOSE, WAIT)
SM_LEGACY(legacy_v4_tfo_shutdown_none, AF_INET, TFO, SHUTDOWN, NONE)
SM_LEGACY(legacy_v4_tfo_shutdown_drain, AF_INET, TFO, SHUTDOWN, DRAIN)
SM_LEGACY(legacy_v4_tfo_shutdown_wait, AF_INET, TFO, SHUTDOWN, WAIT)
SM_LEGACY(legacy_v4_req_close_none, AF_INET, REQ, CLOSE, NONE)
SM_LEGACY(legacy_v4_req_close_drain, AF_INET, REQ, CLOSE, DRAIN)
SM_LEGACY(legacy_v4_req_close_wait, AF_INET, REQ, CLOSE, WAIT)
SM_LEGACY(legacy_v4_req_shutdown_none, AF_INET, REQ, SHUTDOWN, NONE)
SM_LEGACY(legacy_v4_req_shutdown_drain, AF_INET, REQ, SHUTDOWN, DRAIN)
SM_LEGACY(legacy_v4_req_shutdown_wait, AF_INET, REQ, SHUTDOWN, WAIT)
SM_LEGACY(legacy_v6_established_close_none, AF_INET6, EST, CLOSE, NONE)
SM_LEGACY(legacy_v6_established_close_drain, AF_INET6, EST, CLOSE, DRAIN)
SM_LEGACY(legacy_v6_established_close_wait, AF_INET6, EST, CLOSE, WAIT)
SM_LEGACY(legacy_v6_established_shutdown_none, AF_INET6, EST, SHUTDOWN, NONE)
SM_LEGACY(legacy_v6_established_shutdown_drain, AF_INET6, EST, SHUTDOWN, DRAIN)
SM_LEGACY(legacy_v6_established_shutdown_wait, AF_INET6, EST, SHUTDOWN, WAIT)
SM_LEGACY(legacy_v6_tfo_close_none, AF_INET6, TFO, CLOSE, NONE)
SM_LEGACY(legacy_v6_tfo_close_drain, AF_INET6, TFO, CLOSE, DRAIN)
SM_LEGACY(legacy_v6_tfo_close_wait, AF_INET6, TFO, CLOSE, WAIT)
SM_LEGACY(legacy_v6_tfo_shutdown_none, AF_INET6, TFO, SHUTDOWN, NONE)
SM_LEGACY(legacy_v6_tfo_shutdown_drain, AF_INET6, TFO, SHUTDOWN, DRAIN)
SM_LEGACY(legacy_v6_tfo_shutdown_wait, AF_INET6, TFO, SHUTDOWN, WAIT)
SM_LEGACY(legacy_v6_req_close_none, AF_INET6, REQ, CLOSE, NONE)
SM_LEGACY(legacy_v6_req_close_drain, AF_INET6, REQ, CLOSE, DRAIN)
SM_LEGACY(legacy_v6_req_close_wait, AF_INET6, REQ, CLOSE, WAIT)
SM_LEGACY(legacy_v6_req_shutdown_none, AF_INET6, REQ, SHUTDOWN, NONE)
SM_LEGACY(legacy_v6_req_shutdown_drain, AF_INET6, REQ, SHUTDOWN, DRAIN)
SM_LEGACY(legacy_v6_req_shutdown_wait, AF_INET6, REQ, SHUTDOWN, WAIT)
/* clang-format on */

/* ---- beyond the matrix -------------------------------------------------- */

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
	struct drain_job *j = calloc(1, sizeof(*j));
	struct sink *s = calloc(1, sizeof(*s));
	struct burst *c = calloc(1, sizeof(*c));
	int a = -1, b = -1, answered, served_b = 0, ret = SM_FAIL;
	uint64_t at_mark;

	if (!j || !s || !c)
		goto out;
	raise_nofile(8192);
	pthread_mutex_init(&s->mu, NULL);
	if (!ASSERT_OK(burst_sysctl("net/ipv4/tcp_migrate_req", "0"), "tcp_migrate_req") ||
	    !ASSERT_OK(burst_sysctl("net/ipv4/tcp_syncookies", "0"), "tcp_syncookies") ||
	    !ASSERT_OK(burst_sysctl("net/ipv4/tcp_max_syn_backlog", "8192"), "syn backlog"))
		goto out;
	a = burst_listener(AF_INET, PORT, 4096, 0);
	b = burst_listener(AF_INET, PORT, 4096, 0);
	if (!ASSERT_OK(a, "listener A") || !ASSERT_OK(b, "listener B"))
		goto out;
	g = open_legacy(a);
	if (!ASSERT_TRUE(g != NULL, sockmig_last_error()) || !ASSERT_OK(add(g, a, 1), "add A") ||
	    !ASSERT_OK(add(g, b, 1), "add B"))
		goto out;
	drop = tu_ackdrop_attach(PORT);
	if (!ASSERT_TRUE(drop != NULL, "attach the XDP ACK dropper to lo"))
		goto out;
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT, N1, false), "burst 1") ||
	    !ASSERT_EQ(burst_connected(c, 3000), N1, "burst 1 connected"))
		goto out;
	at_mark = steered(g, a);
	if (!ASSERT_GT(at_mark, 0, "A's share of burst 1") ||
	    !ASSERT_EQ(sockmig_listener_inflight(a), at_mark, "A's handshakes in flight") ||
	    !ASSERT_EQ(sockmig_listener_inflight(b), N1 - at_mark, "B's handshakes in flight"))
		goto out;

	j->g = g;
	j->fd = a;
	j->legacy = true;
	j->opts.sz = sizeof(j->opts);
	j->opts.on_accept = sink_accept;
	j->opts.ctx = s;
	if (!ASSERT_OK(drain_start(j), "drain thread"))
		goto out;
	burst_sleep_ms(50);
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT, N2, false), "burst 2") ||
	    !ASSERT_EQ(burst_connected(c, 3000), N1 + N2, "burst 2 connected") ||
	    !ASSERT_EQ(steered(g, a), at_mark, "SYNs steered to A while it drains") ||
	    !ASSERT_EQ(sockmig_listener_inflight(b), N1 + N2 - at_mark, "B's in flight"))
		goto out;
	burst_sleep_ms(100);
	tu_ackdrop_set(drop, false);
	if (!ASSERT_OK(drain_join(j), "drain"))
		goto out;
	answered = sink_serve(s, 5000);
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
	    !ASSERT_EQ(steered(g, b), N1 + N2 - at_mark, "steered to B"))
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
		sink_serve(s, 0);
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
	struct sink *s = calloc(1, sizeof(*s));
	struct burst *c = calloc(1, sizeof(*c));
	int a = -1, b = -1, served_b = 0, ret = SM_FAIL;
	unsigned long long t0, ms;

	if (!s || !c)
		goto out;
	pthread_mutex_init(&s->mu, NULL);
	o.on_accept = sink_accept;
	o.ctx = s;
	if (!ASSERT_OK(burst_sysctl("net/ipv4/tcp_migrate_req", "0"), "tcp_migrate_req") ||
	    !ASSERT_OK(burst_sysctl("net/ipv4/tcp_synack_retries", "1"), "tcp_synack_retries"))
		goto out;
	a = burst_listener(AF_INET, PORT, 64, 0);
	if (!ASSERT_OK(a, "listener A"))
		goto out;
	g = open_legacy(a);
	if (!ASSERT_TRUE(g != NULL, sockmig_last_error()) || !ASSERT_OK(add(g, a, 1), "add A"))
		goto out;
	drop = tu_ackdrop_attach(PORT);
	if (!ASSERT_TRUE(drop != NULL, "attach the XDP ACK dropper to lo") ||
	    !ASSERT_OK(burst_start(c, AF_INET, PORT, N, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), N, "clients connected") ||
	    !ASSERT_EQ(sockmig_listener_inflight(a), N, "A's handshakes in flight"))
		goto out;
	b = burst_listener(AF_INET, PORT, 64, 0);
	if (!ASSERT_OK(b, "listener B") || !ASSERT_OK(add(g, b, 2), "add B"))
		goto out;

	t0 = burst_now_ms();
	if (!ASSERT_OK(sockmig_member_drain_legacy(g, a, &o, &rep), "drain"))
		goto out;
	ms = burst_now_ms() - t0;
	print_report(&rep);
	tu_ackdrop_set(drop, false);
	burst_serve(c, &b, 1, &served_b, 15000);
	burst_print(c, "final ACK past the deadline");
	if (!ASSERT_EQ(rep.inflight_start, N, "in flight at start") ||
	    !ASSERT_EQ(rep.accepted, 0, "accepted") || !ASSERT_EQ(listening(a), 0, "A listens") ||
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
		/* 1 s + 2 s of SYN+ACK timeouts, 1 s of margin */
		if (!ASSERT_EQ(rep.deadline_ms, 4000, "deadline from tcp_synack_retries 1") ||
		    !ASSERT_EQ(rep.deadline_hit, 0, "deadline hit") ||
		    !ASSERT_EQ(rep.abandoned, 0, "abandoned") ||
		    !ASSERT_TRUE(ms >= 2900 && ms < 4000, "ended when the kernel dropped them"))
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
		sink_serve(s, 0);
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
	SOCKMIG_OPTS(sockmig_legacy_drain_opts, o, .on_accept = sink_accept);
	struct sockmig_legacy_drain_report rep;
	struct sockmig_group *g = NULL;
	struct ackdrop_bpf *drop = NULL;
	struct sink *s = calloc(1, sizeof(*s));
	struct burst *c = calloc(1, sizeof(*c));
	int a = -1, b = -1, served_b = 0, ret = SM_FAIL;

	if (!s || !c)
		goto out;
	pthread_mutex_init(&s->mu, NULL);
	o.ctx = s;
	if (!ASSERT_OK(burst_sysctl("net/ipv4/tcp_migrate_req", "0"), "tcp_migrate_req") ||
	    !ASSERT_OK(burst_sysctl("net/ipv4/tcp_syncookies", "2"), "tcp_syncookies"))
		goto out;
	a = burst_listener(AF_INET, PORT, 64, 0);
	if (!ASSERT_OK(a, "listener A"))
		goto out;
	g = open_legacy(a);
	if (!ASSERT_TRUE(g != NULL, sockmig_last_error()) || !ASSERT_OK(add(g, a, 1), "add A"))
		goto out;
	drop = tu_ackdrop_attach(PORT);
	if (!ASSERT_TRUE(drop != NULL, "attach the XDP ACK dropper to lo") ||
	    !ASSERT_OK(burst_start(c, AF_INET, PORT, N, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), N, "clients connected") ||
	    !ASSERT_EQ(steered(g, a), N, "SYNs steered to A") ||
	    !ASSERT_EQ(sockmig_listener_inflight(a), 0, "A's handshakes in flight"))
		goto out;
	b = burst_listener(AF_INET, PORT, 64, 0);
	if (!ASSERT_OK(b, "listener B") || !ASSERT_OK(add(g, b, 2), "add B") ||
	    !ASSERT_OK(sockmig_member_drain_legacy(g, a, &o, &rep), "drain"))
		goto out;
	print_report(&rep);
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
	struct sink *s;
	volatile int stop;
	int got;
};

static void *recv_thread(void *arg)
{
	struct recv_job *r = arg;

	for (;;) {
		struct pollfd p = {.fd = r->hfd, .events = POLLIN};
		int fd;

		poll(&p, 1, 10);
		while ((fd = sockmig_handoff_recv(r->hfd)) >= 0) {
			sink_accept(fd, r->s);
			r->got++;
		}
		if (r->stop)
			return NULL;
	}
}

SM_TEST(legacy_handoff_to_live_member)
{
	enum { N = 40 };
	struct sockmig_group *g = NULL;
	struct ackdrop_bpf *drop = NULL;
	struct drain_job *j = calloc(1, sizeof(*j));
	struct sink *s = calloc(1, sizeof(*s));
	struct burst *c = calloc(1, sizeof(*c));
	struct recv_job r = {.hfd = -1};
	pthread_t rt;
	bool rt_started = false;
	int a = -1, b = -1, answered = 0, served_b = 0, ret = SM_FAIL;

	if (!j || !s || !c)
		goto out;
	pthread_mutex_init(&s->mu, NULL);
	r.s = s;
	if (!ASSERT_OK(burst_sysctl("net/ipv4/tcp_migrate_req", "0"), "tcp_migrate_req"))
		goto out;
	a = burst_listener(AF_INET6, PORT, 256, 0);
	if (!ASSERT_OK(a, "listener A"))
		goto out;
	g = open_legacy(a);
	if (!ASSERT_TRUE(g != NULL, sockmig_last_error()) || !ASSERT_OK(add(g, a, 1), "add A"))
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
	if (!ASSERT_OK(b, "listener B") || !ASSERT_OK(add(g, b, 2), "add B"))
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
	if (!ASSERT_OK(drain_start(j), "drain thread"))
		goto out;
	burst_sleep_ms(300);
	tu_ackdrop_set(drop, false);
	if (!ASSERT_OK(drain_join(j), "drain"))
		goto out;
	r.stop = 1;
	pthread_join(rt, NULL);
	rt_started = false;
	answered = sink_serve(s, 5000);
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
		sink_serve(s, 0);
	free(c);
	free(s);
	free(j);
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	return ret;
}

/* Forced by option or environment; a group keeps the policy it was
 * created with; auto is native on this kernel. */
SM_TEST(legacy_policy_choice)
{
	SOCKMIG_OPTS(sockmig_group_opts, legacy, .policy = SOCKMIG_POLICY_LEGACY);
	SOCKMIG_OPTS(sockmig_group_opts, native, .policy = SOCKMIG_POLICY_NATIVE);
	SOCKMIG_OPTS(sockmig_group_opts, bad, .policy = 7);
	struct sockmig_group *g1 = NULL, *g2 = NULL, *g3 = NULL;
	int l[3] = {-1, -1, -1}, ret = SM_FAIL;

	unsetenv("SOCKMIG_MODE");
	for (int i = 0; i < 3; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT + i, 16, 0), "listener"))
			goto out;
	g1 = sockmig_group_open(l[0], &legacy);
	if (!ASSERT_TRUE(g1 != NULL, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_group_policy(g1), SOCKMIG_POLICY_LEGACY, "forced legacy"))
		goto out;
	g2 = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g2 != NULL, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_group_policy(g2), SOCKMIG_POLICY_LEGACY, "the pinned one"))
		goto out;
	sockmig_group_close(g2);
	g2 = sockmig_group_open(l[0], &native);
	if (!ASSERT_TRUE(g2 == NULL, "forcing native on a legacy group fails") ||
	    !ASSERT_EQ(errno, EEXIST, "errno"))
		goto out;
	g2 = sockmig_group_open(l[0], &bad);
	if (!ASSERT_TRUE(g2 == NULL, "an unknown policy fails") ||
	    !ASSERT_EQ(errno, EINVAL, "errno"))
		goto out;

	setenv("SOCKMIG_MODE", "legacy", 1);
	g2 = sockmig_group_open(l[1], NULL);
	unsetenv("SOCKMIG_MODE");
	if (!ASSERT_TRUE(g2 != NULL, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_group_policy(g2), SOCKMIG_POLICY_LEGACY, "SOCKMIG_MODE=legacy"))
		goto out;
	g3 = sockmig_group_open(l[2], NULL);
	if (!ASSERT_TRUE(g3 != NULL, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_group_policy(g3), SOCKMIG_POLICY_NATIVE, "auto on this kernel"))
		goto out;
	ret = SM_PASS;
out:
	for (struct sockmig_group **gp = (struct sockmig_group *[]){g1, g2, g3}, **e = gp + 3;
	     gp < e; gp++)
		if (*gp) {
			sockmig_group_destroy(*gp);
			sockmig_group_close(*gp);
		}
	for (int i = 0; i < 3; i++)
		if (l[i] >= 0)
			close(l[i]);
	return ret;
}

/* ---- the legacy object against 4.19 to 5.13 verifiers --------------------- */

struct obj_check {
	size_t insns;
	int bad_helpers, bad_ctx, jmp32, subprog_calls, bad_atomics;
	bool cycle;
};

/* Successor @k of instruction @i, -1 if none. */
static long succ(const struct bpf_insn *in, size_t n, size_t i, int k)
{
	__u8 code = in[i].code, cls = BPF_CLASS(code), op = BPF_OP(code);
	long s[2] = {-1, -1};
	int ns = 0;

	if (code == (BPF_LD | BPF_IMM | BPF_DW)) {
		s[ns++] = (long)i + 2;
	} else if (cls == BPF_JMP || cls == BPF_JMP32) {
		if (op == BPF_CALL) {
			s[ns++] = (long)i + 1;
		} else if (op == BPF_JA) {
			s[ns++] = (long)i + 1 + in[i].off;
		} else if (op != BPF_EXIT) {
			s[ns++] = (long)i + 1;
			s[ns++] = (long)i + 1 + in[i].off;
		}
	} else {
		s[ns++] = (long)i + 1;
	}
	return k < ns && s[k] >= 0 && s[k] < (long)n ? s[k] : -1;
}

/* A cycle in the control flow: what verifiers before 5.3 call a back-edge. */
static bool has_cycle(const struct bpf_insn *in, size_t n)
{
	unsigned char *color = calloc(n, 1);
	unsigned char *edge = calloc(n, 1);
	size_t *stack = calloc(n + 1, sizeof(*stack)), top = 0;
	bool cycle = false;

	if (!color || !edge || !stack || !n)
		goto out;
	stack[top++] = 0;
	color[0] = 1;
	while (top && !cycle) {
		size_t i = stack[top - 1];
		long w;

		if (edge[i] >= 2) {
			color[i] = 2;
			top--;
			continue;
		}
		w = succ(in, n, i, edge[i]++);
		if (w < 0)
			continue;
		if (color[w] == 1)
			cycle = true;
		else if (color[w] == 0) {
			color[w] = 1;
			stack[top++] = (size_t)w;
		}
	}
out:
	free(color);
	free(edge);
	free(stack);
	return cycle;
}

static void check_prog(const struct bpf_program *prog, struct obj_check *r)
{
	const struct bpf_insn *in = bpf_program__insns(prog);
	size_t n = bpf_program__insn_cnt(prog);
	unsigned ctx = 1u << BPF_REG_1; /* registers holding the context */

	memset(r, 0, sizeof(*r));
	r->insns = n;
	for (size_t i = 0; i < n; i++) {
		__u8 code = in[i].code, cls = BPF_CLASS(code);
		int dst = in[i].dst_reg, src = in[i].src_reg;

		if (code == (BPF_LD | BPF_IMM | BPF_DW)) {
			ctx &= ~(1u << dst);
			i++;
			continue;
		}
		switch (cls) {
		case BPF_LDX:
			/* sk and migrating_sk: 5.14 */
			if (BPF_MODE(code) == BPF_MEM && (ctx >> src & 1) &&
			    in[i].off >= (int)offsetof(struct sk_reuseport_md, sk)) {
				printf("insn %zu reads the context at %d\n", i, in[i].off);
				r->bad_ctx++;
			}
			ctx &= ~(1u << dst);
			break;
		case BPF_ALU:
		case BPF_ALU64:
			if (cls == BPF_ALU64 && BPF_OP(code) == BPF_MOV && BPF_SRC(code) == BPF_X &&
			    (ctx >> src & 1))
				ctx |= 1u << dst;
			else
				ctx &= ~(1u << dst);
			break;
		case BPF_JMP32: /* 5.1 */
			r->jmp32++;
			break;
		case BPF_JMP:
			if (BPF_OP(code) != BPF_CALL)
				break;
			if (src == BPF_PSEUDO_CALL) {
				r->subprog_calls++;
			} else if (in[i].imm != BPF_FUNC_map_lookup_elem &&
				   in[i].imm != BPF_FUNC_map_update_elem &&
				   in[i].imm != BPF_FUNC_map_delete_elem &&
				   in[i].imm != BPF_FUNC_skb_load_bytes &&
				   in[i].imm != BPF_FUNC_skb_load_bytes_relative &&
				   in[i].imm != BPF_FUNC_ktime_get_ns &&
				   in[i].imm != BPF_FUNC_sk_select_reuseport) {
				printf("insn %zu calls helper %d\n", i, in[i].imm);
				r->bad_helpers++;
			}
			ctx &= ~0x3fu; /* r0 to r5 */
			break;
		case BPF_STX:
			/* fetching atomics: 5.12 */
			if (BPF_MODE(code) == BPF_ATOMIC && in[i].imm != BPF_ADD)
				r->bad_atomics++;
			break;
		}
	}
	r->cycle = has_cycle(in, n);
	printf("%s: %zu insns, cycle %d, helpers not in 4.19 %d, context past hash %d, jmp32 %d, "
	       "calls %d, fetching atomics %d\n",
	       bpf_program__name(prog), r->insns, r->cycle, r->bad_helpers, r->bad_ctx, r->jmp32,
	       r->subprog_calls, r->bad_atomics);
}

SM_TEST(legacy_object_is_what_4_19_loads)
{
	struct policy_legacy_bpf *l = policy_legacy_bpf__open();
	struct policy_bpf *nat = policy_bpf__open();
	struct obj_check r;
	int ret = SM_FAIL;

	if (!ASSERT_TRUE(l && nat, "open the objects"))
		goto out;
	if (!ASSERT_EQ(bpf_program__type(l->progs.sockmig_legacy), BPF_PROG_TYPE_SK_REUSEPORT,
		       "type") ||
	    !ASSERT_EQ(bpf_program__expected_attach_type(l->progs.sockmig_legacy),
		       BPF_SK_REUSEPORT_SELECT, "a select program"))
		goto out;
	check_prog(l->progs.sockmig_legacy, &r);
	if (!ASSERT_TRUE(r.insns <= 4096, "at most 4096 instructions (4.19)") ||
	    !ASSERT_EQ(r.cycle, 0, "no loop (5.3)") ||
	    !ASSERT_EQ(r.bad_helpers, 0, "only 4.19 sk_reuseport helpers") ||
	    !ASSERT_EQ(r.bad_ctx, 0, "no ctx->sk, ctx->migrating_sk (5.14)") ||
	    !ASSERT_EQ(r.jmp32, 0, "no 32-bit jumps (5.1)") ||
	    !ASSERT_EQ(r.subprog_calls, 0, "no function calls (global: 5.6)") ||
	    !ASSERT_EQ(r.bad_atomics, 0, "no fetching atomics (5.12)"))
		goto out;
	/* the baseline that must fail: the native program */
	check_prog(nat->progs.sockmig_policy, &r);
	if (!ASSERT_GT(r.bad_ctx, 0, "native reads migrating_sk") ||
	    !ASSERT_GT(r.bad_helpers, 0, "native calls bpf_get_socket_cookie") ||
	    !ASSERT_GT(r.subprog_calls, 0, "native calls a global function"))
		goto out;
	/* and this kernel's verifier takes it */
	if (!ASSERT_OK(policy_legacy_bpf__load(l), "load the legacy object"))
		goto out;
	ret = SM_PASS;
out:
	policy_legacy_bpf__destroy(l);
	policy_bpf__destroy(nat);
	return ret;
}
