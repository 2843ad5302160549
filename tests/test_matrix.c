// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The migration matrix: address family x state of the connection when its
 * listener stops x close() or shutdown() x what handles it.
 *
 * Every cell, in its own network namespace:
 *   1. listener A (generation 1) listens alone on the port;
 *   2. N clients connect and send a request; the state is forced:
 *      - established: the handshake completes, children wait in A's queue;
 *      - tfo: TCP Fast Open with the final ACK dropped on lo (XDP), so
 *        the children wait in A's queue in SYN_RECV with their request;
 *      - req_timer / req_ack: every client ACK dropped, so the requests
 *        stay half-open (NEW_SYN_RECV) on A;
 *   3. listener B (generation 2) joins the group;
 *   4. A is closed or shut down;
 *   5. req_timer: the drop stays until the SYN+ACK timer moved every
 *      request (TcpExt counters say so), then goes; req_ack: the drop goes
 *      at once, so the client's next segment moves each request;
 *   6. B serves; every client's outcome is counted.
 * Modes and what each must give:
 *   none   sysctl 0, no program: N resets (the baseline that must fail);
 *   sysctl net.ipv4.tcp_migrate_req=1: N served, TCPMigrateReqSuccess N;
 *   policy sockmig's policy: N served, A's migrated_out and B's
 *          migrated_in are N of the cell's kind, TCPMigrateReqSuccess N;
 *   cancel the policy, B with TCP_SAVE_SYN (settings differ): N resets,
 *          A's cancel_mismatch N, TCPMigrateReqFailure N.
 */
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define N_CLIENTS 12
#define PORT	  31000

enum state { EST, TFO, REQ_TIMER, REQ_ACK };
enum how { CLOSE, SHUTDOWN };
enum mode { NONE, SYSCTL, POLICY, CANCEL };

static const char *const mode_names[] = {"none", "sysctl", "policy", "cancel"};
static const enum sockmig_kind kind_of[] = {SOCKMIG_KIND_ESTABLISHED, SOCKMIG_KIND_TFO,
					    SOCKMIG_KIND_REQ_TIMER, SOCKMIG_KIND_REQ_ACK};

/* Wait until the kernel has decided about n migrations. */
static bool wait_migrations(const struct sockmig_netstat *before, int n, int timeout_ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)timeout_ms;
	struct sockmig_netstat now, d;

	do {
		sockmig_netstat_read(&now);
		sockmig_netstat_delta(before, &now, &d);
		if ((int)(d.migrate_success + d.migrate_failure) >= n)
			return true;
		burst_sleep_ms(20);
	} while (burst_now_ms() < end);
	return false;
}

static int matrix_cell(int family, enum state st, enum how how, enum mode mode)
{
	struct sockmig_group *g = NULL;
	struct sockmig_netstat ns0, ns1, d;
	struct sockmig_counters ca, cb;
	struct ackdrop_bpf *drop = NULL;
	struct burst *c;
	uint64_t cookie_a = 0, cookie_b = 0;
	int a = -1, b = -1, lfds[1], ret = SM_FAIL, opts = st == TFO ? BURST_FASTOPEN : 0;
	const enum sockmig_kind kind = kind_of[st];

	c = calloc(1, sizeof(*c));
	if (!c)
		return SM_FAIL;
	if (!ASSERT_OK(burst_migrate_req(mode == SYSCTL), "sysctl tcp_migrate_req"))
		goto out;
	if (st == TFO && !ASSERT_OK(burst_sysctl("net/ipv4/tcp_fastopen", "519"), "tcp_fastopen"))
		goto out;

	a = burst_listener(family, PORT, 64, opts);
	if (!ASSERT_OK(a, "listener A"))
		goto out;
	if (mode == POLICY || mode == CANCEL) {
		SOCKMIG_OPTS(sockmig_member_opts, mo, .generation = 1);

		g = sockmig_group_open(a, NULL);
		if (!ASSERT_TRUE(g != NULL, sockmig_last_error()))
			goto out;
		if (!ASSERT_OK(sockmig_member_add(g, a, &mo), "register A"))
			goto out;
		cookie_a = sockmig_cookie(a);
	}
	if (st != EST) {
		drop = tu_ackdrop_attach(PORT);
		if (!ASSERT_TRUE(drop != NULL, "attach the XDP ACK dropper to lo"))
			goto out;
	}

	if (!ASSERT_OK(burst_start(c, family, PORT, N_CLIENTS, st == TFO), "clients"))
		goto out;
	if (!ASSERT_EQ(burst_connected(c, 2000), N_CLIENTS, "clients connected"))
		goto out;
	if (st == EST || st == TFO) {
		if (!ASSERT_TRUE(burst_wait_queue(a, N_CLIENTS, 2000), "children queued on A"))
			goto out;
	}
	if (!ASSERT_EQ(burst_accept_queue(a), st == EST || st == TFO ? N_CLIENTS : 0,
		       "A's accept queue"))
		goto out;

	b = burst_listener(family, PORT, 64, opts | (mode == CANCEL ? BURST_SAVE_SYN : 0));
	if (!ASSERT_OK(b, "listener B"))
		goto out;
	if (g) {
		SOCKMIG_OPTS(sockmig_member_opts, mo, .generation = 2);

		if (!ASSERT_OK(sockmig_member_add(g, b, &mo), "register B"))
			goto out;
		cookie_b = sockmig_cookie(b);
	}

	sockmig_netstat_read(&ns0);
	if (how == CLOSE) {
		close(a);
		a = -1;
	} else if (!ASSERT_OK(shutdown(a, SHUT_RDWR), "shutdown A")) {
		goto out;
	}
	if (st == REQ_TIMER) {
		/* the SYN+ACK timer (1 s, then backoff) moves the requests */
		if (mode != NONE && !ASSERT_TRUE(wait_migrations(&ns0, N_CLIENTS, 8000),
						 "the timer moved every request"))
			goto out;
		if (mode == NONE)
			burst_sleep_ms(1500);
	}
	if (drop)
		tu_ackdrop_set(drop, false);

	lfds[0] = b;
	burst_serve(c, lfds, 1, NULL, 8000);
	if (st == REQ_ACK && mode != NONE)
		wait_migrations(&ns0, N_CLIENTS, 1000);
	sockmig_netstat_read(&ns1);
	sockmig_netstat_delta(&ns0, &ns1, &d);
	burst_print(c, mode_names[mode]);
	printf("TcpExt: TCPMigrateReqSuccess %llu, TCPMigrateReqFailure %llu\n",
	       (unsigned long long)d.migrate_success, (unsigned long long)d.migrate_failure);

	switch (mode) {
	case NONE:
		if (!ASSERT_EQ(c->count[BURST_OK], 0, "served") ||
		    !ASSERT_EQ(c->count[BURST_RESET], N_CLIENTS, "reset") ||
		    !ASSERT_EQ(d.migrate_success, 0, "TCPMigrateReqSuccess"))
			goto out;
		break;
	case SYSCTL:
		if (!ASSERT_EQ(c->count[BURST_OK], N_CLIENTS, "served") ||
		    !ASSERT_EQ(c->count[BURST_RESET], 0, "reset") ||
		    !ASSERT_EQ(d.migrate_success, N_CLIENTS, "TCPMigrateReqSuccess") ||
		    !ASSERT_EQ(d.migrate_failure, 0, "TCPMigrateReqFailure"))
			goto out;
		break;
	case POLICY:
	case CANCEL:
		if (!ASSERT_OK(sockmig_counters_read(g, cookie_a, &ca), "counters of A") ||
		    !ASSERT_OK(sockmig_counters_read(g, cookie_b, &cb), "counters of B"))
			goto out;
		printf("policy: A out %llu, B in %llu, A cancelled %llu, deferred %llu\n",
		       (unsigned long long)ca.migrated_out[kind],
		       (unsigned long long)cb.migrated_in[kind],
		       (unsigned long long)ca.cancel_mismatch, (unsigned long long)ca.deferred);
		if (mode == POLICY &&
		    (!ASSERT_EQ(c->count[BURST_OK], N_CLIENTS, "served") ||
		     !ASSERT_EQ(c->count[BURST_RESET], 0, "reset") ||
		     !ASSERT_EQ(ca.migrated_out[kind], N_CLIENTS, "A migrated_out") ||
		     !ASSERT_EQ(cb.migrated_in[kind], N_CLIENTS, "B migrated_in") ||
		     !ASSERT_EQ(ca.cancel_mismatch + ca.deferred, 0, "A cancelled or deferred") ||
		     !ASSERT_EQ(d.migrate_success, N_CLIENTS, "TCPMigrateReqSuccess") ||
		     !ASSERT_EQ(d.migrate_failure, 0, "TCPMigrateReqFailure")))
			goto out;
		if (mode == CANCEL &&
		    (!ASSERT_EQ(c->count[BURST_OK], 0, "served") ||
		     !ASSERT_EQ(c->count[BURST_RESET], N_CLIENTS, "reset") ||
		     !ASSERT_EQ(ca.cancel_mismatch, N_CLIENTS, "A cancel_mismatch") ||
		     !ASSERT_EQ(cb.migrated_in[kind], 0, "B migrated_in") ||
		     !ASSERT_EQ(d.migrate_success, 0, "TCPMigrateReqSuccess") ||
		     !ASSERT_EQ(d.migrate_failure, N_CLIENTS, "TCPMigrateReqFailure")))
			goto out;
		break;
	}
	ret = SM_PASS;
out:
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	tu_ackdrop_detach(drop);
	burst_close(c);
	free(c);
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	return ret;
}

#define SM_MATRIX(name, fam, st, how, mode)                                                        \
	SM_TEST(name)                                                                              \
	{                                                                                          \
		return matrix_cell(fam, st, how, mode);                                            \
	}

/* clang-format off */
SM_MATRIX(matrix_v4_established_close_none, AF_INET, EST, CLOSE, NONE)
SM_MATRIX(matrix_v4_established_close_sysctl, AF_INET, EST, CLOSE, SYSCTL)
SM_MATRIX(matrix_v4_established_close_policy, AF_INET, EST, CLOSE, POLICY)
SM_MATRIX(matrix_v4_established_close_cancel, AF_INET, EST, CLOSE, CANCEL)
SM_MATRIX(matrix_v4_established_shutdown_none, AF_INET, EST, SHUTDOWN, NONE)
SM_MATRIX(matrix_v4_established_shutdown_sysctl, AF_INET, EST, SHUTDOWN, SYSCTL)
SM_MATRIX(matrix_v4_established_shutdown_policy, AF_INET, EST, SHUTDOWN, POLICY)
SM_MATRIX(matrix_v4_established_shutdown_cancel, AF_INET, EST, SHUTDOWN, CANCEL)
SM_MATRIX(matrix_v4_tfo_close_none, AF_INET, TFO, CLOSE, NONE)
SM_MATRIX(matrix_v4_tfo_close_sysctl, AF_INET, TFO, CLOSE, SYSCTL)
SM_MATRIX(matrix_v4_tfo_close_policy, AF_INET, TFO, CLOSE, POLICY)
SM_MATRIX(matrix_v4_tfo_close_cancel, AF_INET, TFO, CLOSE, CANCEL)
SM_MATRIX(matrix_v4_tfo_shutdown_none, AF_INET, TFO, SHUTDOWN, NONE)
SM_MATRIX(matrix_v4_tfo_shutdown_sysctl, AF_INET, TFO, SHUTDOWN, SYSCTL)
SM_MATRIX(matrix_v4_tfo_shutdown_policy, AF_INET, TFO, SHUTDOWN, POLICY)
SM_MATRIX(matrix_v4_tfo_shutdown_cancel, AF_INET, TFO, SHUTDOWN, CANCEL)
SM_MATRIX(matrix_v4_req_timer_close_none, AF_INET, REQ_TIMER, CLOSE, NONE)
SM_MATRIX(matrix_v4_req_timer_close_sysctl, AF_INET, REQ_TIMER, CLOSE, SYSCTL)
SM_MATRIX(matrix_v4_req_timer_close_policy, AF_INET, REQ_TIMER, CLOSE, POLICY)
SM_MATRIX(matrix_v4_req_timer_close_cancel, AF_INET, REQ_TIMER, CLOSE, CANCEL)
SM_MATRIX(matrix_v4_req_timer_shutdown_none, AF_INET, REQ_TIMER, SHUTDOWN, NONE)
SM_MATRIX(matrix_v4_req_timer_shutdown_sysctl, AF_INET, REQ_TIMER, SHUTDOWN, SYSCTL)
SM_MATRIX(matrix_v4_req_timer_shutdown_policy, AF_INET, REQ_TIMER, SHUTDOWN, POLICY)
SM_MATRIX(matrix_v4_req_timer_shutdown_cancel, AF_INET, REQ_TIMER, SHUTDOWN, CANCEL)
SM_MATRIX(matrix_v4_req_ack_close_none, AF_INET, REQ_ACK, CLOSE, NONE)
SM_MATRIX(matrix_v4_req_ack_close_sysctl, AF_INET, REQ_ACK, CLOSE, SYSCTL)
SM_MATRIX(matrix_v4_req_ack_close_policy, AF_INET, REQ_ACK, CLOSE, POLICY)
SM_MATRIX(matrix_v4_req_ack_close_cancel, AF_INET, REQ_ACK, CLOSE, CANCEL)
SM_MATRIX(matrix_v4_req_ack_shutdown_none, AF_INET, REQ_ACK, SHUTDOWN, NONE)
SM_MATRIX(matrix_v4_req_ack_shutdown_sysctl, AF_INET, REQ_ACK, SHUTDOWN, SYSCTL)
SM_MATRIX(matrix_v4_req_ack_shutdown_policy, AF_INET, REQ_ACK, SHUTDOWN, POLICY)
SM_MATRIX(matrix_v4_req_ack_shutdown_cancel, AF_INET, REQ_ACK, SHUTDOWN, CANCEL)
SM_MATRIX(matrix_v6_established_close_none, AF_INET6, EST, CLOSE, NONE)
SM_MATRIX(matrix_v6_established_close_sysctl, AF_INET6, EST, CLOSE, SYSCTL)
SM_MATRIX(matrix_v6_established_close_policy, AF_INET6, EST, CLOSE, POLICY)
SM_MATRIX(matrix_v6_established_close_cancel, AF_INET6, EST, CLOSE, CANCEL)
SM_MATRIX(matrix_v6_established_shutdown_none, AF_INET6, EST, SHUTDOWN, NONE)
SM_MATRIX(matrix_v6_established_shutdown_sysctl, AF_INET6, EST, SHUTDOWN, SYSCTL)
SM_MATRIX(matrix_v6_established_shutdown_policy, AF_INET6, EST, SHUTDOWN, POLICY)
SM_MATRIX(matrix_v6_established_shutdown_cancel, AF_INET6, EST, SHUTDOWN, CANCEL)
SM_MATRIX(matrix_v6_tfo_close_none, AF_INET6, TFO, CLOSE, NONE)
SM_MATRIX(matrix_v6_tfo_close_sysctl, AF_INET6, TFO, CLOSE, SYSCTL)
SM_MATRIX(matrix_v6_tfo_close_policy, AF_INET6, TFO, CLOSE, POLICY)
SM_MATRIX(matrix_v6_tfo_close_cancel, AF_INET6, TFO, CLOSE, CANCEL)
SM_MATRIX(matrix_v6_tfo_shutdown_none, AF_INET6, TFO, SHUTDOWN, NONE)
SM_MATRIX(matrix_v6_tfo_shutdown_sysctl, AF_INET6, TFO, SHUTDOWN, SYSCTL)
SM_MATRIX(matrix_v6_tfo_shutdown_policy, AF_INET6, TFO, SHUTDOWN, POLICY)
SM_MATRIX(matrix_v6_tfo_shutdown_cancel, AF_INET6, TFO, SHUTDOWN, CANCEL)
SM_MATRIX(matrix_v6_req_timer_close_none, AF_INET6, REQ_TIMER, CLOSE, NONE)
SM_MATRIX(matrix_v6_req_timer_close_sysctl, AF_INET6, REQ_TIMER, CLOSE, SYSCTL)
SM_MATRIX(matrix_v6_req_timer_close_policy, AF_INET6, REQ_TIMER, CLOSE, POLICY)
SM_MATRIX(matrix_v6_req_timer_close_cancel, AF_INET6, REQ_TIMER, CLOSE, CANCEL)
SM_MATRIX(matrix_v6_req_timer_shutdown_none, AF_INET6, REQ_TIMER, SHUTDOWN, NONE)
SM_MATRIX(matrix_v6_req_timer_shutdown_sysctl, AF_INET6, REQ_TIMER, SHUTDOWN, SYSCTL)
SM_MATRIX(matrix_v6_req_timer_shutdown_policy, AF_INET6, REQ_TIMER, SHUTDOWN, POLICY)
SM_MATRIX(matrix_v6_req_timer_shutdown_cancel, AF_INET6, REQ_TIMER, SHUTDOWN, CANCEL)
SM_MATRIX(matrix_v6_req_ack_close_none, AF_INET6, REQ_ACK, CLOSE, NONE)
SM_MATRIX(matrix_v6_req_ack_close_sysctl, AF_INET6, REQ_ACK, CLOSE, SYSCTL)
SM_MATRIX(matrix_v6_req_ack_close_policy, AF_INET6, REQ_ACK, CLOSE, POLICY)
SM_MATRIX(matrix_v6_req_ack_close_cancel, AF_INET6, REQ_ACK, CLOSE, CANCEL)
SM_MATRIX(matrix_v6_req_ack_shutdown_none, AF_INET6, REQ_ACK, SHUTDOWN, NONE)
SM_MATRIX(matrix_v6_req_ack_shutdown_sysctl, AF_INET6, REQ_ACK, SHUTDOWN, SYSCTL)
SM_MATRIX(matrix_v6_req_ack_shutdown_policy, AF_INET6, REQ_ACK, SHUTDOWN, POLICY)
SM_MATRIX(matrix_v6_req_ack_shutdown_cancel, AF_INET6, REQ_ACK, SHUTDOWN, CANCEL)
/* clang-format on */
