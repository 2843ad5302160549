// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Legacy mode, for kernels that cannot migrate (4.19 to 5.13): the select
 * program in place of the select-or-migrate one, and the drain of the
 * original proposal, made exact. How a listener's handshakes in flight are
 * counted: lib/refs.c; the hand-off of accepted connections to another
 * member: lib/handoff.c.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "legacy.h"
#include "policy.skel.h"
#include "policy_legacy.skel.h"

#define LEGACY_PROG_NAME "sockmig_legacy"
#define GRACE_SLEEP_MS	 20 /* when membarrier() cannot wait for a grace period */
#define POLL_MAX_MS	 5

/* ---- the program ------------------------------------------------------------ */

const char *sockmig_policy_str(enum sockmig_policy policy)
{
	switch (policy) {
	case SOCKMIG_POLICY_AUTO:
		return "auto";
	case SOCKMIG_POLICY_NATIVE:
		return "native";
	case SOCKMIG_POLICY_LEGACY:
		return "legacy";
	}
	return "?";
}

/*
 * Two plain skeletons of one source: policy.bpf.c (select or migrate) and
 * policy_legacy.bpf.c (the same file compiled for kernels without
 * migration). Both define the same maps by name; the caller sees the
 * object and its one program, whichever it is.
 */
struct sm_policy_obj *sm_policy_open(bool legacy)
{
	struct sm_policy_obj *p = calloc(1, sizeof(*p));

	if (!p) {
		errno = ENOMEM;
		return NULL;
	}
	if (legacy) {
		p->legacy = policy_legacy_bpf__open();
		if (p->legacy) {
			p->obj = p->legacy->obj;
			p->prog = p->legacy->progs.sockmig_legacy;
		}
	} else {
		p->native = policy_bpf__open();
		if (p->native) {
			p->obj = p->native->obj;
			p->prog = p->native->progs.sockmig_policy;
		}
	}
	if (!p->obj) {
		int err = errno;

		free(p);
		errno = err;
		return NULL;
	}
	return p;
}

int sm_policy_load(struct sm_policy_obj *p)
{
	return p->legacy ? policy_legacy_bpf__load(p->legacy) : policy_bpf__load(p->native);
}

void sm_policy_close(struct sm_policy_obj *p)
{
	if (!p)
		return;
	policy_legacy_bpf__destroy(p->legacy);
	policy_bpf__destroy(p->native);
	free(p);
}

int sm_policy_requested(int opt)
{
	const char *env;

	if (opt == SOCKMIG_POLICY_NATIVE || opt == SOCKMIG_POLICY_LEGACY)
		return opt;
	if (opt != SOCKMIG_POLICY_AUTO)
		return sm_fail(EINVAL, "unknown policy %d", opt);
	env = secure_getenv("SOCKMIG_MODE");
	if (!env || !*env || strcmp(env, "auto") == 0)
		return SOCKMIG_POLICY_AUTO;
	if (strcmp(env, "legacy") == 0)
		return SOCKMIG_POLICY_LEGACY;
	if (strcmp(env, "native") == 0)
		return SOCKMIG_POLICY_NATIVE;
	sm_log(SOCKMIG_WARN, "libsockmig: SOCKMIG_MODE=%s is not native, legacy or auto: auto\n",
	       env);
	return SOCKMIG_POLICY_AUTO;
}

int sm_policy_of_prog(int prog_fd, int requested, const char *group)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int actual;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) < 0)
		return sm_fail(errno, "cannot read the program of group %s: %s", group,
			       strerror(errno));
	actual = strcmp(info.name, LEGACY_PROG_NAME) == 0 ? SOCKMIG_POLICY_LEGACY
							  : SOCKMIG_POLICY_NATIVE;
	if (requested != SOCKMIG_POLICY_AUTO && requested != actual)
		return sm_fail(EEXIST, "group %s runs the %s policy, not the %s one asked for",
			       group, sockmig_policy_str(actual), sockmig_policy_str(requested));
	return actual;
}

/* ---- grace period ----------------------------------------------------------- */

/*
 * A SYN's selection (the program reading the table) and the request it
 * makes happen in one softirq, inside one RCU read-side critical section
 * (tcp_v4_rcv() and tcp_v6_rcv() run under rcu_read_lock()). After
 * synchronize_rcu(), which MEMBARRIER_CMD_GLOBAL is, every selection that
 * read the table from before the member was marked draining has made its
 * request. Run in a thread, so that accepting goes on meanwhile.
 */
static void *grace_thread(void *arg)
{
	atomic_bool *done = arg;

	if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) < 0) {
		struct timespec ts = {0, GRACE_SLEEP_MS * 1000000L};

		sm_log(SOCKMIG_DEBUG, "libsockmig: membarrier: %s; sleeping %d ms instead\n",
		       strerror(errno), GRACE_SLEEP_MS);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	atomic_store(done, true);
	return NULL;
}

/* ---- the drain ---------------------------------------------------------------- */

/* Accepted Fast Open children still in SYN_RECV: copies of their fds. */
struct tfo_set {
	int *fd;
	int n, cap;
};

int sm_sock_state(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -1;
	return ti.tcpi_state;
}

static void tfo_add(struct tfo_set *t, int fd)
{
	int c;

	if (t->n == t->cap) {
		int ncap = t->cap ? t->cap * 2 : 16;
		int *nfd = realloc(t->fd, (size_t)ncap * sizeof(*nfd));

		if (!nfd)
			return; /* not tracked: the wait may run to its deadline */
		t->fd = nfd;
		t->cap = ncap;
	}
	c = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (c >= 0)
		t->fd[t->n++] = c;
}

/* How many are still in SYN_RECV (forgetting the others). Call it after
 * reading the reference count: a child in SYN_RECV now was then too. */
static int tfo_pending(struct tfo_set *t)
{
	int w = 0;

	for (int i = 0; i < t->n; i++) {
		if (sm_sock_state(t->fd[i]) == TCP_SYN_RECV)
			t->fd[w++] = t->fd[i];
		else
			close(t->fd[i]);
	}
	t->n = w;
	return w;
}

static void tfo_free(struct tfo_set *t)
{
	for (int i = 0; i < t->n; i++)
		close(t->fd[i]);
	free(t->fd);
}

/* One accepted connection to where the drain sends them: the hand-off
 * (noting the member that took it for wake_receivers) or on_accept. */
static int give(const struct sm_drain_args *a, int c, struct sm_receivers *rx)
{
	if (a->handoff)
		return sm_handoff_give(a->handoff, c, a->wake_receivers ? rx : NULL);
	return a->on_accept(c, a->ctx);
}

/* Accept until EAGAIN, each connection to give(). */
static int accept_all(int lfd, const struct sm_drain_args *a, bool track_tfo, struct tfo_set *tfo,
		      struct sm_receivers *rx, struct sockmig_drain_report *rep)
{
	for (;;) {
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return sm_fail(errno, "accept on fd %d: %s", lfd, strerror(errno));
		}
		if (track_tfo && sm_sock_state(c) == TCP_SYN_RECV)
			tfo_add(tfo, c);
		if (give(a, c, rx) < 0)
			rep->refused++;
		else
			rep->accepted++;
	}
}

static bool has_fastopen(int fd)
{
	int val = 0;
	socklen_t len = sizeof(val);

	return getsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &val, &len) == 0 && val > 0;
}

int sm_drain_legacy(struct sockmig_group *g, int fd, uint64_t cookie, const struct sm_drain_args *a,
		    struct sockmig_drain_report *rep)
{
	struct sockmig_event ev = {.type = SOCKMIG_EVENT_DRAIN_LEGACY};
	struct sockmig_member_info was;
	struct sockmig_counters c0, c1;
	struct sockmig_netstat ns0, ns1;
	struct refs_file *rf = NULL;
	struct sm_receivers rx = {0};
	struct tfo_set tfo = {0};
	atomic_bool grace_done = false;
	unsigned long long t0 = sm_now_ns(), t_mark, deadline_at;
	unsigned refs = 0, queued = 0, prev_refs = ~0u, prev_queued = ~0u;
	bool accepting = a->on_accept || a->handoff, have_c, track_tfo, grace_thread_ok;
	int flags = -1, err, step_ms = 1;
	pthread_t grace;

	memset(rep, 0, sizeof(*rep));
	rep->policy = SOCKMIG_POLICY_LEGACY;
	rep->cookie = cookie;
	rf = calloc(1, sizeof(*rf));
	if (!rf)
		return sm_fail(ENOMEM, "out of memory");
	err = sm_refs_open(rf, fd);
	if (err)
		goto free_rf;
	err = sm_refs_read(rf, &refs, &queued);
	if (err) {
		err = sm_fail(EINVAL, "fd %d does not listen", fd);
		goto close_rf;
	}
	rep->deadline_ms = a->deadline_ms;
	if (!rep->deadline_ms)
		rep->deadline_ms = sm_synack_budget_ms(fd) + 1000;
	track_tfo = accepting && has_fastopen(fd);
	sockmig_netstat_read(&ns0);

	/* 1. no new SYN for it */
	err = sm_member_set_role(g, cookie, SOCKMIG_ROLE_DRAINING, a->force, &was);
	if (err)
		goto close_rf;
	t_mark = sm_now_ns();
	deadline_at = t_mark + (unsigned long long)rep->deadline_ms * 1000000ull;
	have_c = sockmig_counters_read(g, cookie, &c0) == 0;

	/* 2. a grace period, accepting meanwhile */
	grace_thread_ok = pthread_create(&grace, NULL, grace_thread, &grace_done) == 0;
	if (!grace_thread_ok)
		grace_thread(&grace_done);

	if (accepting) {
		flags = fcntl(fd, F_GETFL);
		if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
			err = sm_fail(errno, "fd %d: cannot make it non-blocking: %s", fd,
				      strerror(errno));
			flags = -1;
			goto join;
		}
	}

	/* 3. wait for the handshakes in flight, accepting what completes */
	for (bool first = true;;) {
		long long pending;
		bool settled;

		settled = atomic_load(&grace_done);
		if (first && settled) {
			/* no SYN reaches it any more: what it has is all it gets */
			err = sm_refs_read(rf, &refs, &queued);
			if (!err) {
				pending = (long long)refs - 1 - queued - tfo_pending(&tfo);
				rep->inflight_start = pending > 0 ? (uint32_t)pending : 0;
				rep->queued_start = queued;
			}
			first = false;
		}
		if (accepting) {
			err = accept_all(fd, a, track_tfo, &tfo, &rx, rep);
			if (err)
				break;
		}
		err = sm_refs_read(rf, &refs, &queued);
		if (err) {
			err = sm_fail(ENOTCONN, "fd %d stopped listening during the drain", fd);
			break;
		}
		if (accepting)
			pending = (long long)refs - 1 - tfo_pending(&tfo);
		else
			pending = (long long)refs - 1 - queued;
		/* without accepting, the queue is read apart from the count:
		 * believe it once two readings agree */
		if (settled && pending <= 0 &&
		    (accepting || (refs == prev_refs && queued == prev_queued)))
			break;
		if (sm_now_ns() >= deadline_at) {
			rep->deadline_hit = true;
			rep->inflight_left = pending > 0 ? (uint32_t)pending : 0;
			break;
		}
		prev_refs = refs;
		prev_queued = queued;
		if (accepting) {
			struct pollfd p = {.fd = fd, .events = POLLIN};

			poll(&p, 1, step_ms);
		} else {
			struct timespec ts = {0, step_ms * 1000000L};

			nanosleep(&ts, NULL);
		}
		if (settled && step_ms < POLL_MAX_MS)
			step_ms++;
	}
	rep->wait_ns = sm_now_ns() - t_mark;
	if (have_c && sockmig_counters_read(g, cookie, &c1) == 0)
		rep->late_syns = (uint32_t)(c1.steered - c0.steered);

	/* 4. nothing left in flight: what is queued, then no more listening */
	if (accepting && !err) {
		err = accept_all(fd, a, track_tfo, &tfo, &rx, rep);
		if (!err && rep->deadline_hit && sm_refs_read(rf, &refs, &queued) == 0) {
			/* what completed meanwhile was accepted: count what is left */
			long long left = (long long)refs - 1 - tfo_pending(&tfo);

			rep->inflight_left = left > 0 ? (uint32_t)left : 0;
		}
		if (!err && !a->keep_listening && shutdown(fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
			err = sm_fail(errno, "shutdown of fd %d: %s", fd, strerror(errno));
	}
	/* 5. wake the processes that got connections and only poll listeners */
	for (int i = 0; !err && i < rx.n; i++) {
		if (sockmig_member_kick(g, rx.cookie[i]) < 0)
			sm_log(SOCKMIG_WARN, "%s", sockmig_last_error());
		else
			rep->kicked++;
	}
join:
	if (grace_thread_ok)
		pthread_join(grace, NULL);
	if (flags >= 0)
		fcntl(fd, F_SETFL, flags);
	tfo_free(&tfo);
	sockmig_netstat_read(&ns1);
	sockmig_netstat_delta(&ns0, &ns1, &rep->netstat);
	rep->elapsed_ns = rep->total_ns = sm_now_ns() - t0;
	if (!err) {
		/* the drain's record, which outlives the member and its counters */
		sm_drain_event(&ev, &was, rep,
			       sockmig_counters_read(g, cookie, &c1) == 0 ? &c1 : NULL, t_mark);
		sm_event_record(g, &ev); /* a failure is logged; the drain happened */
	}
close_rf:
	close(rf->fd);
free_rf:
	free(rf);
	return err;
}

/* The compatibility wrapper: the legacy drain through the one drain's
 * options, its report in the older struct. */
int sockmig_member_drain_legacy(struct sockmig_group *g, int fd,
				const struct sockmig_legacy_drain_opts *opts,
				struct sockmig_legacy_drain_report *report)
{
	struct sockmig_drain_report r;
	int err;

	if (!OPTS_VALID(opts, sockmig_legacy_drain_opts))
		return -EINVAL;
	if (!sockmig_cookie(fd))
		return sm_fail(EINVAL, "fd %d is not a socket", fd);
	{
		SOCKMIG_OPTS(sockmig_drain_opts, o, .on_accept = OPTS_GET(opts, on_accept, NULL),
			     .ctx = OPTS_GET(opts, ctx, NULL),
			     .deadline_ms = OPTS_GET(opts, deadline_ms, 0),
			     .keep_listening = OPTS_GET(opts, no_shutdown, false),
			     .force = OPTS_GET(opts, force, false),
			     .wake_receivers = OPTS_GET(opts, wake_receivers, false));

		err = sm_drain(g, fd, &o, true, &r);
	}
	if (err || !report)
		return err;
	*report = (struct sockmig_legacy_drain_report){.cookie = r.cookie,
						       .inflight_start = r.inflight_start,
						       .queued_start = r.queued_start,
						       .late_syns = r.late_syns,
						       .accepted = r.accepted,
						       .refused = r.refused,
						       .abandoned = r.inflight_left,
						       .deadline_hit = r.deadline_hit,
						       .deadline_ms = r.deadline_ms,
						       .wait_ns = r.wait_ns,
						       .elapsed_ns = r.elapsed_ns,
						       .netstat = r.netstat};
	return 0;
}
