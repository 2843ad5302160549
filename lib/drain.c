// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The one drain, sockmig_member_drain(): its options read once, the
 * drain picked by the group's policy. Here the native one: no new SYN for
 * the member, the handshakes in flight finished, then its shutdown, which
 * makes the kernel migrate its queue under the policy; and the wake-up
 * connections (kick) for targets that the kernel may not wake, decided
 * when the group opens. The legacy drain, which migrates nothing, is in
 * legacy.c.
 */
#include <bpf/bpf.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "group_priv.h"
#include "legacy.h"
#include "policy.h"

#define DRAIN_DEADLINE_MS 1000 /* default wait for the handshakes in flight */

/*
 * Make one connection that the policy steers to @slot, so that its owner
 * is woken even where the kernel queued migrated children silently. Under
 * the lock: the table says when a kick is pending.
 */
static int kick_slot(struct sockmig_group *g, uint32_t slot)
{
	struct sm_addr dst, src;
	struct pollfd pfd;
	uint16_t sport;
	int s, err = 0;

	sm_addr_connectable(&g->addr, &dst);
	src = dst;
	if (src.family == AF_INET)
		src.v4.sin_port = 0;
	else
		src.v6.sin6_port = 0;
	s = socket(dst.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (bind(s, &src.sa, src.len) < 0 || sm_sock_addr(s, &src) < 0) {
		err = -errno;
		goto close_sock;
	}
	sport = (uint16_t)sm_addr_port(&src);
	if (bpf_map_update_elem(g->fd_kick, &sport, &slot, BPF_ANY) < 0) {
		err = -errno;
		goto close_sock;
	}
	/* the program looks "kick" up only while the table says so */
	err = sm_rebuild_table(g);
	if (err)
		goto unkick;
	if (connect(s, &dst.sa, dst.len) < 0 && errno != EINPROGRESS) {
		err = -errno;
	} else {
		pfd.fd = s;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, 1000) != 1)
			err = -ETIMEDOUT;
	}
unkick:
	bpf_map_delete_elem(g->fd_kick, &sport);
	sm_rebuild_table(g);
close_sock:
	close(s);
	return err;
}

void sm_decide_wake(struct sockmig_group *g)
{
	const char *env;

	if (g->policy != SOCKMIG_POLICY_NATIVE) {
		g->wake_targets = false; /* nothing migrates */
		return;
	}
	if (g->wake != SOCKMIG_WAKE_AUTO) {
		g->wake_targets = g->wake == SOCKMIG_WAKE_ALWAYS;
		return;
	}
	env = secure_getenv("SOCKMIG_WAKE");
	if (env && *env) {
		g->wake_targets = *env == '1';
		return;
	}
	/* Unknown stays "wake": a spurious connection costs less than
	 * children nobody accepts. */
	g->wake_targets = sm_kernel_wakes_migrated() != SOCKMIG_YES;
}

/* Counters of the live members of @recs (zeros where unreadable). */
static void read_counters(struct sockmig_group *g, const struct member_rec *recs, int n,
			  struct sm_counters *out)
{
	for (int i = 0; i < n; i++)
		if (!recs[i].live || sm_counters_get(g, recs[i].cookie, &out[i]) < 0)
			memset(&out[i], 0, sizeof(out[i]));
}

/*
 * Wait until no handshake is in flight for listener @fd (it was just
 * marked draining), at most @deadline_ms (0: DRAIN_DEADLINE_MS). A final
 * ACK that the kernel processes while the listener closes is reset
 * without migration (inet_child_forget(), no TcpExt counter): only a
 * listener with no request left cannot meet that race. First one RCU
 * grace period, so that every SYN steered to it before the mark has made
 * its request; then the listener's reference count, each request holding
 * one. What is left at the deadline still migrates at its SYN+ACK timer
 * or final ACK; only the race stays open for it.
 */
static void wait_inflight(int fd, uint32_t deadline_ms, struct sockmig_drain_report *rep)
{
	unsigned long long t0 = sm_now_ns(), end;
	struct timespec ts = {0, 0};
	long step_us = 100;
	int left;

	if (!deadline_ms)
		deadline_ms = DRAIN_DEADLINE_MS;
	end = t0 + (unsigned long long)deadline_ms * 1000000ull;
	sm_rcu_grace();
	for (;;) {
		left = sockmig_listener_inflight(fd);
		if (left <= 0 || sm_now_ns() >= end)
			break;
		ts.tv_nsec = step_us * 1000;
		nanosleep(&ts, NULL);
		if (step_us < 10000)
			step_us *= 2;
	}
	rep->inflight_left = left > 0 ? (uint32_t)left : 0;
	rep->deadline_hit = left > 0;
	rep->deadline_ms = deadline_ms;
	rep->wait_ns = sm_now_ns() - t0;
}

void sm_drain_event(struct sockmig_event *ev, const struct sockmig_member_info *was,
		    const struct sockmig_drain_report *rep, const struct sockmig_counters *c,
		    uint64_t t_mark)
{
	ev->cookie = was->cookie;
	ev->role = was->role;
	ev->generation = was->generation;
	ev->pid = was->pid;
	ev->wait_ns = rep->wait_ns;
	ev->inflight_left = rep->inflight_left;
	ev->duration_ns = sm_now_ns() - t_mark;
	if (!c)
		return;
	for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
		ev->migrated[k] = c->migrated_out[k];
	ev->cancelled = c->cancel_mismatch;
	ev->deferred = c->deferred;
}

/* The native drain of member @fd (cookie @cookie), into @rep. */
static int drain_native(struct sockmig_group *g, int fd, uint64_t cookie,
			const struct sm_drain_args *a, struct sockmig_drain_report *rep)
{
	struct sm_counters *before = NULL, *after = NULL;
	struct sockmig_counters self0 = {0}, self1 = {0}; /* struct sm_counters, abi_check.c */
	struct sockmig_netstat ns0, ns1;
	struct member_rec *recs = NULL;
	struct sockmig_event ev = {.type = SOCKMIG_EVENT_DRAIN};
	struct sockmig_member_info was;
	uint64_t t0, t_mark = sm_now_ns();
	int n = 0, err;

	/* 1. no new SYN for it */
	err = sm_member_set_role(g, cookie, SOCKMIG_ROLE_DRAINING, a->force, &was);
	if (err || a->no_shutdown)
		return err;

	/* 2. let the handshakes in flight for it finish, without the lock */
	wait_inflight(fd, a->deadline_ms, rep);
	if (a->keep_listening)
		return 0;
	err = sm_lock_members(g, &recs, &n);
	if (err)
		return err;

	/* 3. shut it down: the kernel migrates its queue under the policy */
	if (g->wake_targets) {
		before = calloc((size_t)n, sizeof(*before));
		after = calloc((size_t)n, sizeof(*after));
		if (!before || !after) {
			err = sm_fail(ENOMEM, "out of memory");
			goto unlock;
		}
		read_counters(g, recs, n, before);
	}
	sm_counters_get(g, cookie, (struct sm_counters *)&self0);
	sockmig_netstat_read(&ns0);
	t0 = sm_now_ns();
	if (shutdown(fd, SHUT_RDWR) < 0 && errno != ENOTCONN) {
		err = sm_fail(errno, "shutdown of fd %d: %s", fd, strerror(errno));
		goto unlock;
	}
	rep->elapsed_ns = sm_now_ns() - t0;
	sm_counters_get(g, cookie, (struct sm_counters *)&self1);
	sockmig_netstat_read(&ns1);
	sockmig_netstat_delta(&ns0, &ns1, &rep->netstat);
	for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
		rep->migrated[k] = self1.migrated_out[k] - self0.migrated_out[k];
	rep->cancelled = self1.cancel_mismatch - self0.cancel_mismatch;
	rep->deferred = self1.deferred - self0.deferred;
	sm_drain_event(&ev, &was, rep, &self1, t_mark);
	sm_event_record_locked(g, &ev); /* a failure is logged; the drain happened */

	/* 4. where the kernel may not wake the targets, wake them ourselves */
	if (g->wake_targets) {
		read_counters(g, recs, n, after);
		for (int i = 0; i < n; i++) {
			if (recs[i].cookie == cookie ||
			    after[i].mig_in[SM_KIND_ESTABLISHED] + after[i].mig_in[SM_KIND_TFO] ==
				    before[i].mig_in[SM_KIND_ESTABLISHED] +
					    before[i].mig_in[SM_KIND_TFO])
				continue;
			if (kick_slot(g, recs[i].m.slot) == 0)
				rep->kicked++;
		}
	}
unlock:
	sm_group_unlock(g);
	free(recs);
	free(before);
	free(after);
	return err;
}

/* The drain's options, read once; a hand-off to sockmig_handoff_accept()
 * is the drain's own, so that it knows who took what. */
static int drain_args(struct sockmig_group *g, const struct sockmig_drain_opts *opts,
		      struct sm_drain_args *a)
{
	memset(a, 0, sizeof(*a));
	a->no_shutdown = OPTS_GET(opts, no_shutdown, false);
	a->force = OPTS_GET(opts, force, false);
	a->deadline_ms = OPTS_GET(opts, deadline_ms, 0);
	a->on_accept = OPTS_GET(opts, on_accept, NULL);
	a->ctx = OPTS_GET(opts, ctx, NULL);
	a->wake_receivers = OPTS_GET(opts, wake_receivers, false);
	a->keep_listening = OPTS_GET(opts, keep_listening, false);
	if (OPTS_GET(opts, handoff, false)) {
		if (a->on_accept)
			return sm_fail(EINVAL, "drain: on_accept and handoff are one or the other");
		a->handoff = g;
	} else if (a->on_accept == sockmig_handoff_accept && a->ctx) {
		a->handoff = a->ctx;
		a->on_accept = NULL;
	}
	return 0;
}

int sm_drain(struct sockmig_group *g, int fd, const struct sockmig_drain_opts *opts, bool legacy,
	     struct sockmig_drain_report *report)
{
	struct sm_drain_args a;
	uint64_t cookie, t0 = sm_now_ns();
	int err;

	memset(report, 0, sizeof(*report));
	err = drain_args(g, opts, &a);
	if (err)
		return err;
	cookie = sockmig_cookie(fd);
	if (!cookie)
		return sm_fail(ENOENT, "fd %d is not a member of group %s", fd, g->name);
	if (legacy && !a.no_shutdown)
		return sm_drain_legacy(g, fd, cookie, &a, report);
	/* native, or only the mark (the same in either policy) */
	report->policy = legacy ? SOCKMIG_POLICY_LEGACY : SOCKMIG_POLICY_NATIVE;
	report->cookie = cookie;
	err = drain_native(g, fd, cookie, &a, report);
	report->total_ns = sm_now_ns() - t0;
	return err;
}

int sockmig_member_drain(struct sockmig_group *g, int fd, const struct sockmig_drain_opts *opts,
			 struct sockmig_drain_report *report)
{
	/* the report grew with the options: a caller whose options stop
	 * before keep_listening has the older, shorter report */
	const size_t v0 = offsetof(struct sockmig_drain_report, inflight_left) + sizeof(uint32_t);
	const size_t opts_v1 = offsetof(struct sockmig_drain_opts, keep_listening) + sizeof(bool);
	struct sockmig_drain_report rep;
	int err;

	if (!OPTS_VALID(opts, sockmig_drain_opts))
		return -EINVAL;
	err = sm_drain(g, fd, opts, g->policy == SOCKMIG_POLICY_LEGACY, &rep);
	if (!err && report)
		memcpy(report, &rep, opts && opts->sz >= opts_v1 ? sizeof(rep) : v0);
	return err;
}

int sockmig_member_kick(struct sockmig_group *g, uint64_t cookie)
{
	struct member_rec *recs;
	int n = 0, err;

	if (!g || !cookie)
		return sm_fail(EINVAL, "kick: no group or no cookie");
	err = sm_lock_members(g, &recs, &n);
	if (err)
		return err;
	err = -ENOENT;
	for (int i = 0; i < n; i++) {
		if (recs[i].cookie != cookie)
			continue;
		err = recs[i].live ? kick_slot(g, recs[i].m.slot) : -ENOTCONN;
		break;
	}
	sm_group_unlock(g);
	free(recs);
	if (err == -ENOENT)
		return sm_fail(ENOENT, "kick: no member with cookie %llu",
			       (unsigned long long)cookie);
	if (err)
		return sm_fail(-err, "kick of member %llu: %s", (unsigned long long)cookie,
			       strerror(-err));
	return 0;
}
