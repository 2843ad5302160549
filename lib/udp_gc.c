// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups: a member leaving (its socket stays open, e.g. once it is
 * connected to one peer), and the removal of a group whose last member
 * went (closed, its process exited or was killed): its pins and its
 * directory under the pin root, as TCP groups go with their last member.
 *
 * Locking, as for TCP groups: the flock on the group's directory
 * (sm_group_lock). A group is removed only under it, after reading its
 * socket array under it: no live member. A process that joins holds the
 * same lock while it checks that its directory is still the pinned one
 * (sm_udp_lock_current: made again when a collect removed it since the
 * join opened it) and puts its socket in the socket array. So either the
 * join comes first, and the collect sees its live socket and keeps the
 * group, or the collect comes first, and the join makes the group again:
 * a socket never lands in maps that nobody will find. A handle whose
 * directory is no longer the pinned one (removed, or made again by
 * another process) removes nothing: the path is another group's now.
 */
#include <bpf/bpf.h>
#include <errno.h>
#include <string.h>

#include "udp_priv.h"

static int live_members(const struct uslot *u)
{
	int n = 0;

	for (uint32_t i = 0; i < SMU_MAX_MEMBERS; i++)
		n += u[i].live;
	return n;
}

/* No live member left: the group goes (under the lock). 1 when it did. */
static int remove_if_empty(struct sockmig_udp_group *g, const struct uslot *u)
{
	if (live_members(u))
		return 0;
	sm_unpin_all(&g->base);
	sm_log(SOCKMIG_DEBUG, "libsockmig: UDP group %s had no live member: removed\n",
	       g->base.name);
	return 1;
}

static int collect_locked(struct sockmig_udp_group *g, struct uslot *u, void *arg)
{
	(void)arg;
	if (!sm_udp_dir_current(g))
		return 1; /* gone already (or made again: another group now) */
	return remove_if_empty(g, u);
}

int sockmig_udp_group_collect(struct sockmig_udp_group *g)
{
	return sm_udp_with_slots(g, collect_locked, NULL);
}

static int leave_locked(struct sockmig_udp_group *g, struct uslot *u, void *arg)
{
	uint64_t cookie = *(const uint64_t *)arg;
	uint32_t i;
	int err;

	if (!sm_udp_dir_current(g))
		return sm_fail(ENOENT, "UDP group %s was removed since it was opened",
			       g->base.name);
	i = sm_udp_slot_of(u, cookie);
	if (i == SMU_MAX_MEMBERS)
		return sm_fail(ENOENT, "the socket is not a live member of UDP group %s",
			       g->base.name);
	/* the kernel's group keeps the socket: a connected one still gets its
	 * peer's datagrams from the kernel's lookup */
	err = sm_udp_unhook_slot(g, u, i);
	if (err)
		return err;
	remove_if_empty(g, u);
	return 0;
}

int sockmig_udp_member_leave(struct sockmig_udp_group *g, int fd)
{
	uint64_t cookie = sockmig_cookie(fd);

	if (!g)
		return sm_fail(EINVAL, "UDP group: none");
	if (!cookie)
		return sm_fail(EINVAL, "fd %d is not a socket", fd);
	return sm_udp_with_slots(g, leave_locked, &cookie);
}
