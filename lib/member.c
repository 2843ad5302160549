// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Members of a group: add (a slot in the socket array, a state entry,
 * counters), set, get, the counters, the list; leave, and the collection
 * of members whose owner is gone (the group removed with its last one).
 */
#include <bpf/bpf.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "group_priv.h"
#include "policy.h"

#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF 68
#endif

/* Start time of process @pid in clock ticks since boot (field 22 of
 * /proc/PID/stat), 0 when it cannot be read. */
static uint64_t process_start(uint32_t pid)
{
	char path[64], buf[512], *p;
	unsigned long long start = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* the command name may hold spaces and parentheses: start after the last ')' */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1,
			 " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
			 "%*d %*d %*d %llu",
			 &start) != 1)
		return 0;
	return start;
}

/* Whether the process that registered member @m is gone: no such pid, or
 * the pid now belongs to another process (another start time). */
static bool owner_gone(const struct sm_member *m)
{
	uint64_t now;

	if (kill((pid_t)m->pid, 0) < 0 && errno == ESRCH)
		return true;
	if (!m->owner_start)
		return false;
	now = process_start(m->pid);
	return now && now != m->owner_start;
}

/* Forget members that stopped listening and whose process is gone. */
void sm_collect_stale(struct sockmig_group *g)
{
	struct member_rec *recs;
	int n;

	recs = sm_read_members(g, &n);
	if (!recs)
		return;
	for (int i = 0; i < n; i++) {
		if (recs[i].live || !recs[i].m.pid)
			continue;
		if (!owner_gone(&recs[i].m))
			continue;
		bpf_map_delete_elem(g->fd_state, &recs[i].cookie);
		bpf_map_delete_elem(g->fd_counters, &recs[i].cookie);
	}
	free(recs);
}

/*
 * A registration by anyone but the lease's holder (who renews it before it
 * registers) finds an expired lease of a holder that died: the group is
 * maintained again, by whoever registers, so the table is followed again.
 */
static void clear_expired_lease(struct sockmig_group *g)
{
	uint32_t k = SM_LEASE_EXPIRES;
	uint64_t exp = 0, zero = 0;

	if (bpf_map_lookup_elem(g->fd_lease, &k, &exp) == 0 && exp && sm_now_ns() > exp)
		bpf_map_update_elem(g->fd_lease, &k, &zero, BPF_ANY);
}

static uint32_t listener_compat(int fd, int family)
{
	uint32_t c = family == AF_INET6 ? SM_COMPAT_INET6 : 0;
	int val = 0;
	socklen_t len = sizeof(val);

	if (getsockopt(fd, IPPROTO_TCP, TCP_SAVE_SYN, &val, &len) == 0 && val)
		c |= SM_COMPAT_SAVE_SYN;
	val = 0;
	len = sizeof(val);
	if (getsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &val, &len) == 0 && val)
		c |= SM_COMPAT_DEFER_ACCEPT;
	val = 0;
	len = sizeof(val);
	if (getsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &val, &len) == 0 && val)
		c |= SM_COMPAT_FASTOPEN;
	return c;
}

static int find_free_slot(struct sockmig_group *g, int fd, uint32_t *slot)
{
	uint64_t val = (uint64_t)fd;

	for (uint32_t s = 0; s < SM_MAX_MEMBERS; s++) {
		if (sm_slot_cookie(g, s))
			continue;
		if (bpf_map_update_elem(g->fd_members, &s, &val, BPF_NOEXIST) == 0) {
			*slot = s;
			return 0;
		}
		if (errno != EEXIST)
			return sm_fail(errno, "cannot add fd %d to the group's socket array: %s",
				       fd, strerror(errno));
	}
	return -ENOSPC;
}

static void warn_unslotted(const struct sockmig_group *g)
{
	static bool warned;

	if (warned)
		return;
	warned = true;
	sm_log(SOCKMIG_WARN,
	       "libsockmig: group %s has more than %d listeners: new SYNs go by the kernel's "
	       "hash (draining members included) while one beyond the limit is active\n",
	       g->name, SM_MAX_MEMBERS);
}

/* Member @cookie's fields in @out (not listening, no counters). */
static void member_info(uint64_t cookie, const struct sm_member *m, struct sockmig_member_info *out)
{
	memset(out, 0, sizeof(*out));
	out->cookie = cookie;
	out->slot = m->slot;
	out->role = m->role;
	out->generation = m->generation;
	out->weight = m->weight;
	out->pid = m->pid;
}

/*
 * Whether member @cookie, of role @from, may become @to: the one check
 * every change of role makes (drain, sockmig_member_set(), a registration
 * again), under the lock. An active member becomes draining only while
 * another live member is active or a holder: else no listener is left for
 * new SYNs and its queue (the kernel's hash would give them to it again).
 */
static int check_role_change(struct sockmig_group *g, uint64_t cookie, uint32_t from, uint32_t to,
			     bool force)
{
	struct member_rec *recs;
	int n, others = 0;

	if (force || from != SM_ROLE_ACTIVE || to != SM_ROLE_DRAINING)
		return 0;
	recs = sm_read_members(g, &n);
	if (!recs)
		return sm_fail(ENOMEM, "out of memory");
	for (int i = 0; i < n; i++)
		if (recs[i].cookie != cookie && recs[i].live &&
		    (recs[i].m.role == SM_ROLE_ACTIVE || recs[i].m.role == SM_ROLE_HOLDER))
			others++;
	free(recs);
	if (others)
		return 0;
	return sm_fail(EBUSY,
		       "refusing to drain the last active member of group %s: no other active "
		       "member or holder could take its connections",
		       g->name);
}

int sockmig_member_add(struct sockmig_group *g, int fd, const struct sockmig_member_opts *opts)
{
	struct sm_counters zero_counters = {0};
	struct sm_member m = {0}, old;
	bool had_state, new_slot = false, new_counters;
	uint64_t cookie;
	int err;

	if (!OPTS_VALID(opts, sockmig_member_opts))
		return -EINVAL;
	err = sm_check_member_fd(g, fd);
	if (err)
		return err;
	cookie = sockmig_cookie(fd);
	if (!cookie)
		return sm_fail(errno, "cannot read the cookie of fd %d: %s", fd, strerror(errno));
	clear_expired_lease(g);
	m.role = OPTS_GET(opts, role, SOCKMIG_ROLE_ACTIVE);
	if (!m.role)
		m.role = SOCKMIG_ROLE_ACTIVE;
	if (m.role < SOCKMIG_ROLE_ACTIVE || m.role > SOCKMIG_ROLE_HOLDER)
		return sm_fail(EINVAL, "unknown role %u", m.role);
	m.generation = OPTS_GET(opts, generation, 0);
	m.weight = OPTS_GET(opts, weight, 1);
	if (!m.weight)
		m.weight = 1;
	m.compat = listener_compat(fd, g->addr.family);
	m.pid = OPTS_GET(opts, pid, 0);
	if (!m.pid)
		m.pid = (uint32_t)getpid();
	m.owner_start = process_start(m.pid);

	err = sm_group_lock(g);
	if (err)
		return err;
	had_state = bpf_map_lookup_elem(g->fd_state, &cookie, &old) == 0;
	/* registered again: a role change like any other */
	if (had_state) {
		err = check_role_change(g, cookie, old.role, m.role, false);
		if (err)
			goto unlock;
	}
	if (had_state && sm_slot_cookie(g, old.slot) == cookie) {
		m.slot = old.slot;
	} else {
		err = find_free_slot(g, fd, &m.slot);
		if (err == -ENOSPC) {
			/* more listeners than slots: registered without one, and the
			 * group's SYNs go by the kernel's hash while it is active */
			m.slot = SM_NO_SLOT;
			warn_unslotted(g);
		} else if (err) {
			goto unlock;
		} else {
			new_slot = true;
		}
	}
	new_counters =
		bpf_map_update_elem(g->fd_counters, &cookie, &zero_counters, BPF_NOEXIST) == 0;
	/* a slot it left: what it counted there stays its own */
	if (had_state && old.slot != m.slot)
		sm_slot_counters_release(g, old.slot, cookie);
	if (m.slot != SM_NO_SLOT) {
		err = sm_slot_counters_give(g, m.slot, cookie);
		if (err)
			goto undo;
	}
	if (bpf_map_update_elem(g->fd_state, &cookie, &m, BPF_ANY) < 0) {
		err = sm_fail(errno, "cannot record member %llu: %s", (unsigned long long)cookie,
			      strerror(errno));
		goto undo;
	}
	err = sockmig_group_attach(g, fd);
	if (err)
		goto undo;
	err = sm_rebuild_table(g);
	if (!err)
		goto unlock;
undo:
	/* leave the group as it was: no slot, state or counters of a failed add */
	if (had_state)
		bpf_map_update_elem(g->fd_state, &cookie, &old, BPF_ANY);
	else
		bpf_map_delete_elem(g->fd_state, &cookie);
	if (new_counters)
		bpf_map_delete_elem(g->fd_counters, &cookie);
	if (new_slot && sm_slot_cookie(g, m.slot) == cookie)
		bpf_map_delete_elem(g->fd_members, &m.slot);
	sm_rebuild_table(g);
unlock:
	sm_group_unlock(g);
	return err;
}

int sm_lock_members(struct sockmig_group *g, struct member_rec **recs, int *n)
{
	int err = sm_group_lock(g);

	if (err)
		return err;
	*recs = sm_read_members(g, n);
	if (*recs)
		return 0;
	sm_group_unlock(g);
	return sm_fail(ENOMEM, "out of memory");
}

static int lookup_member(struct sockmig_group *g, uint64_t cookie, struct sm_member *m)
{
	if (cookie && bpf_map_lookup_elem(g->fd_state, &cookie, m) == 0)
		return 0;
	return sm_fail(ENOENT, "no member with cookie %llu in group %s", (unsigned long long)cookie,
		       g->name);
}

/*
 * The one change of a member's role, generation and weight (0 keeps each)
 * under the lock, the role checked; *@was (may be NULL): the member before.
 */
static int change_member(struct sockmig_group *g, uint64_t cookie, uint32_t role,
			 uint32_t generation, uint32_t weight, bool force,
			 struct sockmig_member_info *was)
{
	struct sm_member old, m;
	int err = sm_group_lock(g);

	if (err)
		return err;
	err = lookup_member(g, cookie, &old);
	if (err)
		goto unlock;
	m = old;
	if (role)
		m.role = role;
	if (generation)
		m.generation = generation;
	if (weight)
		m.weight = weight;
	err = check_role_change(g, cookie, old.role, m.role, force);
	if (err)
		goto unlock;
	if (bpf_map_update_elem(g->fd_state, &cookie, &m, BPF_EXIST) < 0) {
		err = sm_fail(errno, "cannot update member: %s", strerror(errno));
		goto unlock;
	}
	err = sm_rebuild_table(g);
	if (!err && was)
		member_info(cookie, &old, was);
unlock:
	sm_group_unlock(g);
	return err;
}

int sm_member_set_role(struct sockmig_group *g, uint64_t cookie, enum sockmig_role role, bool force,
		       struct sockmig_member_info *was)
{
	return change_member(g, cookie, role, 0, 0, force, was);
}

int sockmig_member_set(struct sockmig_group *g, uint64_t cookie,
		       const struct sockmig_member_opts *opts)
{
	uint32_t role;

	if (!OPTS_VALID(opts, sockmig_member_opts))
		return -EINVAL;
	role = OPTS_GET(opts, role, 0);
	if (role && (role < SOCKMIG_ROLE_ACTIVE || role > SOCKMIG_ROLE_HOLDER))
		return sm_fail(EINVAL, "unknown role %u", role);
	/* 0 leaves a field as it is: a role change keeps the generation */
	return change_member(g, cookie, role, OPTS_GET(opts, generation, 0),
			     OPTS_GET(opts, weight, 0), false, NULL);
}

int sockmig_counters_read(struct sockmig_group *g, uint64_t cookie, struct sockmig_counters *out)
{
	struct sm_counters c;

	if (sm_counters_get(g, cookie, &c) < 0)
		return sm_fail(ENOENT, "no counters for cookie %llu", (unsigned long long)cookie);
	out->steered = c.steered;
	for (int k = 0; k < SOCKMIG_KIND_MAX; k++) {
		out->migrated_in[k] = c.mig_in[k];
		out->migrated_out[k] = c.mig_out[k];
	}
	out->deferred = c.deferred;
	out->cancel_mismatch = c.cancel_mismatch;
	out->kicked = c.kicked;
	return 0;
}

int sockmig_members(struct sockmig_group *g, struct sockmig_member_info *out, int max)
{
	struct member_rec *recs;
	int n;

	recs = sm_read_members(g, &n);
	if (!recs)
		return sm_fail(ENOMEM, "out of memory");
	qsort(recs, n, sizeof(*recs), sm_cmp_slot);
	for (int i = 0; i < n && i < max; i++) {
		member_info(recs[i].cookie, &recs[i].m, &out[i]);
		out[i].listening = recs[i].live;
		sockmig_counters_read(g, recs[i].cookie, &out[i].counters);
	}
	free(recs);
	return n;
}

static int leave_locked(struct sockmig_group *g, uint64_t cookie, int fd)
{
	struct sm_member m;
	uint64_t key;
	int err;

	if (bpf_map_lookup_elem(g->fd_state, &cookie, &m) < 0)
		return sm_fail(ENOENT, "no member with cookie %llu in group %s",
			       (unsigned long long)cookie, g->name);
	if (sm_slot_cookie(g, m.slot) == cookie)
		bpf_map_delete_elem(g->fd_members, &m.slot);
	bpf_map_delete_elem(g->fd_state, &cookie);
	bpf_map_delete_elem(g->fd_counters, &cookie);
	err = sm_rebuild_table(g);
	if (err)
		return err;
	if (bpf_map_get_next_key(g->fd_state, NULL, &key) == 0)
		return 0;
	/* Last member: give the group back to the kernel and remove our state. */
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, NULL, 0);
	sm_unpin_all(g);
	return 0;
}

int sockmig_group_collect(struct sockmig_group *g, uint32_t exiting)
{
	struct member_rec *recs;
	uint64_t key;
	int n, removed = 0, err = sm_lock_members(g, &recs, &n);

	if (err)
		return err;
	for (int i = 0; i < n; i++) {
		if (recs[i].live || !recs[i].m.pid)
			continue;
		if (recs[i].m.pid != exiting && !owner_gone(&recs[i].m))
			continue;
		bpf_map_delete_elem(g->fd_state, &recs[i].cookie);
		bpf_map_delete_elem(g->fd_counters, &recs[i].cookie);
		removed++;
	}
	free(recs);
	/* a group with no member that this collect did not empty is being
	 * made (opened, its first member not added yet): not ours to remove */
	if (!removed)
		goto unlock;
	if (bpf_map_get_next_key(g->fd_state, NULL, &key) == 0) {
		err = sm_rebuild_table(g);
		goto unlock;
	}
	/* nobody left: the group goes, as at the last member's leave */
	sm_unpin_all(g);
	err = 1;
unlock:
	sm_group_unlock(g);
	return err;
}

int sockmig_member_leave_cookie(struct sockmig_group *g, uint64_t cookie)
{
	int err = sm_group_lock(g);

	if (err)
		return err;
	err = leave_locked(g, cookie, -1);
	sm_group_unlock(g);
	return err;
}

int sockmig_member_leave(struct sockmig_group *g, int fd)
{
	uint64_t cookie = sockmig_cookie(fd);
	int err;

	if (!cookie)
		return sm_fail(EINVAL, "fd %d is not a socket", fd);
	err = sm_group_lock(g);
	if (err)
		return err;
	err = leave_locked(g, cookie, fd);
	sm_group_unlock(g);
	return err;
}

int sockmig_member_get(struct sockmig_group *g, uint64_t cookie, struct sockmig_member_info *out)
{
	struct sm_member m;

	if (bpf_map_lookup_elem(g->fd_state, &cookie, &m) < 0)
		return sm_fail(ENOENT, "no member with cookie %llu in group %s",
			       (unsigned long long)cookie, g->name);
	member_info(cookie, &m, out);
	out->listening = sm_slot_cookie(g, m.slot) == cookie;
	sockmig_counters_read(g, cookie, &out->counters);
	return 0;
}
