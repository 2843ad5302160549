// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups: retiring a member before its close, so that no datagram
 * already queued is lost (mark draining, wait for its flows, take it out
 * of the socket array, wait for its queue), the queue's size from the
 * kernel, and a generation's cut-off. The steps under the group lock run
 * through lib/udp_member.c's sm_udp_with_slots() (retire_step()); the
 * flow counts walk the table after the lock, on a copy of the slots.
 */
#include <bpf/bpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include "udp_priv.h"

#define RETIRE_DEFAULT_MS 10000u
#define RETIRE_POLL_MS	  10
#define QUEUE_MIN_NS	  (3ull * RETIRE_POLL_MS * 1000000ull)

/* ---- the steps under the group lock ------------------------------------- */

struct owned_arg {
	uint64_t cookie;
	const bool *pick;
	int64_t n;
};

static void count_owned(const struct smu_flow *f, void *arg)
{
	struct owned_arg *o = arg;

	if (o->cookie ? f->cookie == o->cookie : o->pick[f->slot])
		o->n++;
}

/* Whether a datagram reached slot @s by its CID within the idle timeout. */
static bool cid_traffic(struct sockmig_udp_group *g, const struct smu_slot *s)
{
	struct smu_config cfg;
	uint32_t zero = 0;
	uint64_t now = sm_now_ns();

	if (!s->last_cid_ns || bpf_map_lookup_elem(g->fd[UFD_CONFIG], &zero, &cfg) < 0)
		return false;
	return !sm_udp_idle(cfg.idle_timeout_ns, s->last_cid_ns, now);
}

/* Live flows of the table owned by the member of @cookie (any member when
 * 0: then only those of the slots flagged in @pick) and seen within the
 * idle timeout, by slots @u, into *@n: those the walk saw when it fails
 * (-EAGAIN: cut short by evictions, before 5.6). */
static int owned_flows(struct sockmig_udp_group *g, const struct uslot *u, uint64_t cookie,
		       const bool *pick, int64_t *n)
{
	struct owned_arg o = {cookie, pick, 0};
	int err = sm_udp_each_live_flow(g, u, count_owned, &o);

	*n = o.n;
	return err;
}

/* Member @cookie (non-zero): SM_UDP_MARK makes it draining (-EBUSY when
 * it is the last active member), SM_UDP_FLOWS counts its live flows,
 * SM_UDP_UNHOOK counts them then takes its socket out of the socket array
 * and empties its slot (its flows fall to the working generation; the
 * kernel's group keeps the socket). @cookie 0: SM_UDP_UNHOOK of every
 * draining member of generation gen, returning how many. -ENOENT when no
 * such member. */
enum { SM_UDP_MARK, SM_UDP_FLOWS, SM_UDP_UNHOOK };

struct retire_arg {
	uint64_t cookie; /* the member, or 0: the draining members of gen */
	uint32_t gen;
	int op;	       /* SM_UDP_MARK, SM_UDP_FLOWS, SM_UDP_UNHOOK */
	int64_t flows; /* its live flows (before an unhook) */
};

uint32_t sm_udp_slot_of(const struct uslot *u, uint64_t cookie)
{
	for (uint32_t i = 0; i < SMU_MAX_MEMBERS; i++)
		if (u[i].live && u[i].s.cookie == cookie)
			return i;
	return SMU_MAX_MEMBERS;
}

static int mark_locked(struct sockmig_udp_group *g, struct uslot *u, uint32_t slot)
{
	int others = 0;

	if (u[slot].s.role != SMU_ROLE_ACTIVE)
		return 0;
	for (uint32_t i = 0; i < SMU_MAX_MEMBERS; i++)
		others += i != slot && u[i].live && u[i].s.role == SMU_ROLE_ACTIVE;
	if (!others)
		return sm_fail(EBUSY,
			       "the member in slot %u is the last active member of UDP group %s: "
			       "new flows would have nowhere to go",
			       slot, g->base.name);
	u[slot].s.role = SMU_ROLE_DRAINING;
	if (bpf_map_update_elem(g->fd[UFD_SLOTS], &slot, &u[slot].s, BPF_ANY) < 0)
		return sm_fail(errno, "cannot write slot %u: %s", slot, strerror(errno));
	return 0;
}

int sm_udp_unhook_slot(struct sockmig_udp_group *g, struct uslot *u, uint32_t i)
{
	if (bpf_map_delete_elem(g->fd[UFD_MEMBERS], &i) < 0 && errno != ENOENT)
		return sm_fail(errno, "cannot take slot %u out of the socket array of %s: %s", i,
			       g->base.name, strerror(errno));
	memset(&u[i].s, 0, sizeof(u[i].s));
	u[i].live = false;
	bpf_map_update_elem(g->fd[UFD_SLOTS], &i, &u[i].s, BPF_ANY);
	return 0;
}

/* The draining members of generation @gen among @u into @pick: how many. */
static int pick_gen(const struct uslot *u, uint32_t gen, bool *pick)
{
	int n = 0;

	for (uint32_t i = 0; i < SMU_MAX_MEMBERS; i++) {
		pick[i] = u[i].live && u[i].s.role == SMU_ROLE_DRAINING && u[i].s.generation == gen;
		n += pick[i];
	}
	return n;
}

static int no_member(struct sockmig_udp_group *g, const struct retire_arg *a)
{
	if (a->cookie)
		return sm_fail(ENOENT, "the socket is not a live member of UDP group %s",
			       g->base.name);
	return sm_fail(ENOENT, "UDP group %s has no live draining member of generation %u",
		       g->base.name, a->gen);
}

/* SM_UDP_MARK, or SM_UDP_UNHOOK's change, under the lock. */
static int retire_locked(struct sockmig_udp_group *g, struct uslot *u, void *arg)
{
	struct retire_arg *a = arg;
	bool *pick;
	int n, err = 0;

	if (a->cookie) {
		uint32_t slot = sm_udp_slot_of(u, a->cookie);

		/* an unhook found it counted, then another retire took it
		 * out: that is done */
		if (slot == SMU_MAX_MEMBERS)
			return a->op == SM_UDP_MARK ? no_member(g, a) : 0;
		return a->op == SM_UDP_MARK ? mark_locked(g, u, slot)
					    : sm_udp_unhook_slot(g, u, slot);
	}
	/* every draining member of generation gen */
	pick = calloc(SMU_MAX_MEMBERS, sizeof(*pick));
	if (!pick)
		return sm_fail(ENOMEM, "out of memory");
	n = pick_gen(u, a->gen, pick);
	if (!n) /* another cutoff took them out since they were counted */
		a->flows = 0;
	for (uint32_t i = 0; i < SMU_MAX_MEMBERS && !err; i++)
		if (pick[i])
			err = sm_udp_unhook_slot(g, u, i);
	free(pick);
	return err ? err : n;
}

/* a->flows: the live flows of the member (or of the generation's draining
 * members), counted on a copy of the slots after the lock: the walk reads
 * the whole table, and a server that joins meanwhile waits for the lock. */
static int retire_flows(struct sockmig_udp_group *g, struct retire_arg *a)
{
	struct uslot *u = calloc(SMU_MAX_MEMBERS, sizeof(*u));
	bool *pick = calloc(SMU_MAX_MEMBERS, sizeof(*pick));
	uint32_t slot = 0;
	int err;

	if (!u || !pick) {
		err = sm_fail(ENOMEM, "out of memory");
		goto out;
	}
	err = sm_udp_slots_copy(g, u);
	if (err)
		goto out;
	if (a->cookie)
		slot = sm_udp_slot_of(u, a->cookie);
	if (a->cookie ? slot == SMU_MAX_MEMBERS : !pick_gen(u, a->gen, pick)) {
		err = no_member(g, a);
		goto out;
	}
	err = owned_flows(g, u, a->cookie, pick, &a->flows);
	/* quic-lb: datagrams routed by its CIDs refresh no flow; while they
	 * come, its connections count as one live flow */
	if (!err && a->cookie)
		a->flows += cid_traffic(g, &u[slot].s);
out:
	free(u);
	free(pick);
	return err;
}

static int retire_step(struct sockmig_udp_group *g, uint64_t cookie, uint32_t gen, int op,
		       int64_t *flows)
{
	struct retire_arg a = {.cookie = cookie, .gen = gen, .op = op};
	int err = 0;

	/* a key walk cut short by evictions (before 5.6) is tried again; an
	 * unhook whose count is cut short each time still takes the member out
	 * (the count is its report's), with the flows the last walk counted
	 * (approximate: a walk that restarts counts some twice) */
	for (int tries = 0; op != SM_UDP_MARK && tries < 3; tries++) {
		err = retire_flows(g, &a);
		if (err != -EAGAIN || op == SM_UDP_FLOWS)
			break;
	}
	if (err == -EAGAIN && op == SM_UDP_UNHOOK)
		err = 0;
	if (err >= 0 && op != SM_UDP_FLOWS)
		err = sm_udp_with_slots(g, retire_locked, &a);
	if (flows)
		*flows = a.flows;
	return err;
}

/* idiag_rqueue of the UDP socket of @cookie bound to @a's port, from a
 * sock_diag dump of the caller's network namespace (a dump filtered by
 * port: the single-socket request looks the socket up by its addresses,
 * and in a SO_REUSEPORT group that finds any socket of the group).
 * 0, -ENOENT (not seen) or -EPROTONOSUPPORT (no UDP sock_diag). */
static int diag_rqueue(const struct sm_addr *a, uint64_t cookie, uint64_t *bytes)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 r;
	} req = {
		.nh = {.nlmsg_len = sizeof(req),
		       .nlmsg_type = SOCK_DIAG_BY_FAMILY,
		       .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
		.r = {.sdiag_family = (uint8_t)a->family,
		      .sdiag_protocol = IPPROTO_UDP,
		      .idiag_states = ~0u,
		      .id.idiag_sport = htons((uint16_t)sm_addr_port(a))},
	};
	struct sockaddr_nl nl = {.nl_family = AF_NETLINK};
	const size_t len = 32768; /* the kernel's largest dump message */
	long *buf = malloc(len);
	int fd, err = -ENOENT;
	bool done = false;

	if (!buf)
		return -ENOMEM;
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0) {
		err = -errno;
		free(buf);
		return err;
	}
	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&nl, sizeof(nl)) < 0) {
		err = -errno;
		goto out;
	}
	while (!done) {
		ssize_t n = recv(fd, buf, len, 0);
		struct nlmsghdr *h = (struct nlmsghdr *)buf;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		for (; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			const struct inet_diag_msg *m = NLMSG_DATA(h);
			uint64_t c;

			if (h->nlmsg_type == NLMSG_DONE) {
				done = true;
				break;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				err = e->error == -ENOENT || e->error == -EINVAL ? -EPROTONOSUPPORT
										 : e->error;
				done = true;
				break;
			}
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
			    h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
				continue;
			c = (uint64_t)m->id.idiag_cookie[0] | (uint64_t)m->id.idiag_cookie[1] << 32;
			if (c == cookie) {
				*bytes = m->idiag_rqueue;
				err = 0;
			}
		}
	}
out:
	close(fd);
	free(buf);
	return err;
}

/* @fd's UDP check, its address and cookie. */
static int udp_sock(int fd, struct sm_addr *a, uint64_t *cookie)
{
	int val = 0;
	socklen_t vlen = sizeof(val);

	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &val, &vlen) < 0)
		return sm_fail(errno == ENOTSOCK ? EINVAL : errno, "fd %d is not a socket: %s", fd,
			       strerror(errno));
	if (val != IPPROTO_UDP)
		return sm_fail(EINVAL, "fd %d is not a UDP socket", fd);
	if (sm_sock_addr(fd, a) < 0)
		return sm_fail(EINVAL, "fd %d is not an IPv4 or IPv6 socket", fd);
	*cookie = sockmig_cookie(fd);
	if (!*cookie)
		return sm_fail(errno, "cannot read the cookie of fd %d: %s", fd, strerror(errno));
	return 0;
}

int sockmig_udp_queued(int fd, uint64_t *bytes)
{
	struct sm_addr a;
	uint64_t cookie;
	int err;

	if (!bytes)
		return sm_fail(EINVAL, "UDP queue: no result");
	err = udp_sock(fd, &a, &cookie);
	if (err)
		return err;
	err = diag_rqueue(&a, cookie, bytes);
	if (err == -ENOENT)
		return sm_fail(ENOENT,
			       "sock_diag does not see UDP fd %d (another network namespace?)", fd);
	if (err == -EPROTONOSUPPORT)
		return sm_fail(EPROTONOSUPPORT, "this kernel has no UDP sock_diag");
	if (err)
		return sm_fail(-err, "sock_diag: %s", strerror(-err));
	return 0;
}

/* Bytes queued on @fd: FIONREAD first (non-zero: something is queued),
 * then sock_diag when it can see the socket (*@exact). */
static int queue_bytes(int fd, const struct sm_addr *a, uint64_t cookie, uint64_t *bytes,
		       bool *exact)
{
	int first = 0;

	if (ioctl(fd, SIOCINQ, &first) < 0)
		return sm_fail(errno, "FIONREAD on fd %d: %s", fd, strerror(errno));
	if (first > 0 && *exact) {
		/* not empty: the true count only when asked for at the end */
		*bytes = (uint64_t)first;
		return 1;
	}
	if (*exact && diag_rqueue(a, cookie, bytes) == 0)
		return *bytes > 0;
	*exact = false;
	*bytes = (uint64_t)first;
	return first > 0;
}

static void nap(uint64_t end_ns)
{
	uint64_t now = sm_now_ns(), step = RETIRE_POLL_MS * 1000000ull;
	struct timespec ts;

	if (now >= end_ns)
		return;
	if (end_ns - now < step)
		step = end_ns - now;
	ts.tv_sec = 0;
	ts.tv_nsec = (long)step;
	nanosleep(&ts, NULL);
}

/* The report's first version: every field up to queue_exact. */
#define RETIRE_REPORT_V0 (offsetof(struct sockmig_udp_retire_report, queue_exact) + sizeof(bool))

int sockmig_udp_member_retire(struct sockmig_udp_group *g, int fd,
			      const struct sockmig_udp_retire_opts *opts,
			      struct sockmig_udp_retire_report *report)
{
	struct sockmig_udp_retire_report rep = {0};
	uint32_t flags = OPTS_GET(opts, flags, 0);
	uint64_t t0 = sm_now_ns(), end, bytes = 0;
	int64_t flows = 0;
	struct sm_addr a;
	bool exact = true;
	int err, q;

	if (!g)
		return sm_fail(EINVAL, "UDP group: none");
	if (!OPTS_VALID(opts, sockmig_udp_retire_opts))
		return -EINVAL;
	if (flags & ~SOCKMIG_UDP_RETIRE_FLOWS_OK)
		return sm_fail(EINVAL, "unknown retire flags 0x%x", flags);
	if (report && report->sz < RETIRE_REPORT_V0)
		return sm_fail(EINVAL, "retire report of %zu bytes: at least %zu", report->sz,
			       (size_t)RETIRE_REPORT_V0);
	err = sm_udp_check_member_fd(g, fd);
	if (!err)
		err = udp_sock(fd, &a, &rep.cookie);
	if (err)
		return err;
	rep.deadline_ms = OPTS_GET(opts, deadline_ms, 0);
	if (!rep.deadline_ms)
		rep.deadline_ms = RETIRE_DEFAULT_MS;
	end = t0 + (uint64_t)rep.deadline_ms * 1000000ull;

	/* 1: no new flows */
	err = retire_step(g, rep.cookie, 0, SM_UDP_MARK, NULL);
	if (err)
		return err;
	/* 2: its flows go idle */
	while (!(flags & SOCKMIG_UDP_RETIRE_FLOWS_OK)) {
		err = retire_step(g, rep.cookie, 0, SM_UDP_FLOWS, &flows);
		if (err == -EAGAIN && sm_now_ns() < end) { /* a walk cut short: again */
			err = 0;
			nap(end);
			continue;
		}
		if (err || flows == 0 || sm_now_ns() >= end)
			break;
		nap(end);
	}
	/* a walk still cut short at the deadline: the unhook goes on */
	if (err == -EAGAIN)
		err = 0;
	rep.flows_wait_ns = sm_now_ns() - t0;
	/* 3: out of the socket array; what the program steered to it before
	 * is queued within one grace period */
	if (!err)
		err = retire_step(g, rep.cookie, 0, SM_UDP_UNHOOK, &flows);
	if (err)
		goto report;
	rep.flows_left = (uint64_t)flows;
	sm_rcu_grace();
	/* 4: its queue is read; a flow wait that took the whole deadline
	 * still leaves the reader a few polls for what was steered before */
	if (end < sm_now_ns() + QUEUE_MIN_NS)
		end = sm_now_ns() + QUEUE_MIN_NS;
	for (;;) {
		q = queue_bytes(fd, &a, rep.cookie, &bytes, &exact);
		if (q < 0) {
			err = q;
			goto report;
		}
		if (q == 0 || sm_now_ns() >= end)
			break;
		nap(end);
	}
	if (q > 0 && exact)
		diag_rqueue(&a, rep.cookie, &bytes); /* FIONREAD said the first only */
	rep.bytes_queued = bytes;
	rep.queue_exact = exact;
	/* flows left are a cut-short wait unless they were not waited for */
	rep.deadline_hit = bytes > 0 || (rep.flows_left && !(flags & SOCKMIG_UDP_RETIRE_FLOWS_OK));
	if (rep.deadline_hit)
		err = sm_fail(
			ETIMEDOUT,
			"retiring fd %d of UDP group %s: the deadline (%u ms) passed with %llu "
			"live flows moved and %llu bytes still queued",
			fd, g->base.name, rep.deadline_ms, (unsigned long long)rep.flows_left,
			(unsigned long long)rep.bytes_queued);
report:
	rep.total_ns = sm_now_ns() - t0;
	if (report) {
		size_t sz = report->sz < sizeof(rep) ? report->sz : sizeof(rep);

		rep.sz = report->sz;
		memcpy(report, &rep, sz);
	}
	return err;
}

int sockmig_udp_generation_cutoff(struct sockmig_udp_group *g, uint32_t generation, uint64_t *flows)
{
	int64_t n = 0;
	int err;

	if (!g)
		return sm_fail(EINVAL, "UDP group: none");
	err = retire_step(g, 0, generation, SM_UDP_UNHOOK, &n);
	/* what the program steered to them before is queued on return (also
	 * after a concurrent cutoff's, which may not have returned yet) */
	if (err >= 0)
		sm_rcu_grace();
	if (flows)
		*flows = err >= 0 ? (uint64_t)n : 0;
	return err;
}
