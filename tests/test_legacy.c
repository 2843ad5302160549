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
 * Beyond the matrix (test_legacy_drain.c): a SYN burst while a member
 * drains, a final ACK past a deadline the caller set and past the SYN+ACK
 * retry budget, SYN cookies (the steered counter is not a count of
 * handshakes), the hand-off of accepted connections to a live member over
 * SCM_RIGHTS; test_legacy_object.c: the choice of the policy, and a static
 * check of the legacy object against what 4.19 to 5.13 verifiers reject.
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
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define N_CLIENTS 12
#define PORT	  33000

/* ---- the core matrix ---------------------------------------------------- */

enum lstate { EST, TFO, REQ };
enum lhow { CLOSE, SHUTDOWN };
enum lmode { NONE, DRAIN, WAIT };

static const char *const mode_names[] = {"none", "drain", "wait"};

static int legacy_cell(int family, enum lstate st, enum lhow how, enum lmode mode)
{
	struct sockmig_group *g = NULL;
	struct ackdrop_bpf *drop = NULL;
	struct tu_drain_job *j = calloc(1, sizeof(*j));
	struct tu_sink *s = calloc(1, sizeof(*s));
	struct burst *c = calloc(1, sizeof(*c));
	int a = -1, b = -1, fd, answered = 0, served_b = 0, ret = SM_FAIL;
	int opts = st == TFO ? BURST_FASTOPEN : 0;

	if (!j || !s || !c)
		goto out;
	pthread_mutex_init(&s->mu, NULL);
	if (!ASSERT_OK(burst_migrate_req(false), "sysctl tcp_migrate_req"))
		goto out;
	if (st == TFO && !ASSERT_OK(burst_sysctl("net/ipv4/tcp_fastopen", "519"), "tcp_fastopen"))
		goto out;

	a = burst_listener(family, PORT, 64, opts);
	if (!ASSERT_OK(a, "listener A"))
		goto out;
	g = tu_open_legacy(a);
	if (!ASSERT_TRUE(g != NULL, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add_gen(g, a, 1), "register A"))
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
	    !ASSERT_EQ(tu_steered(g, a), N_CLIENTS, "SYNs steered to A"))
		goto out;

	b = burst_listener(family, PORT, 64, opts);
	if (!ASSERT_OK(b, "listener B") || !ASSERT_OK(tu_add_gen(g, b, 2), "register B"))
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
		j->opts.on_accept = tu_sink_accept;
		j->opts.ctx = s;
		j->opts.no_shutdown = how == CLOSE;
		/* fall through */
	case WAIT:
		if (!ASSERT_OK(tu_drain_start(j), "drain thread"))
			goto out;
		if (st == REQ) {
			/* the handshakes complete while A drains */
			burst_sleep_ms(300);
			tu_ackdrop_set(drop, false);
		}
		if (!ASSERT_OK(tu_drain_join(j), "drain"))
			goto out;
		if (mode == WAIT) {
			/* the proposal's form: accept until EAGAIN, then close */
			while ((fd = accept4(a, NULL, NULL, SOCK_CLOEXEC)) >= 0)
				tu_sink_accept(fd, s);
		}
		if (!ASSERT_EQ(tu_listening(a), mode == DRAIN && how == SHUTDOWN ? 0 : 1,
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
	answered = s->n ? tu_sink_serve(s, 5000) : 0;
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
