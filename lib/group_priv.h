/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The group handle and what the group's files share: group.c (names,
 * open, close, lease), pin.c (pin root, lock, program), member.c, table.c
 * and drain.c; not installed.
 */
#ifndef SOCKMIG_GROUP_PRIV_H
#define SOCKMIG_GROUP_PRIV_H

#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "internal.h"
#include "table.h"

struct sm_policy_obj;

struct sockmig_group {
	struct sm_policy_obj *bpf; /* the policy object this handle loaded, or NULL */
	int dirfd;
	int prog_fd;
	int fd_members, fd_state, fd_counters, fd_table, fd_tabidx, fd_gstats, fd_kick, fd_lease;
	int fd_pcounters; /* a slot's counters, per CPU (counters.c) */
	bool own_fds;	  /* the map fds are ours (from the pins), not the object's */
	enum sockmig_wake wake;
	/* drains wake the targets of their migrations: wake decided at the
	 * open (sm_decide_wake()), never in a drain */
	bool wake_targets;
	int policy; /* enum sockmig_policy: asked for, then in force */
	struct sm_addr addr;
	uint64_t netns; /* the network namespace's inode */
	char name[SOCKMIG_NAME_MAX];
	char path[PATH_MAX + 128];
	char root[PATH_MAX];
};

/* pin.c */

/* A directory of ours that nobody else may change. */
SM_HIDDEN bool sm_dir_private(const struct stat *st);
/* The pin root checked (bpffs, safe ancestors, private), made if missing
 * (*made then set). */
SM_HIDDEN int sm_check_root(const char *root, bool *made);
/* For readers: the root as it is, never made or moved; -ENOENT, -EPERM. */
SM_HIDDEN int sm_root_readable(const char *root);
/* Pin root @root opened to list its groups, in *@d: NULL when it holds
 * none of ours (missing, or not sockmig's: warned). 0, or a negative
 * errno after an error line. */
SM_HIDDEN int sm_root_opendir(const char *root, DIR **d);
/* Why a program's load was refused with EPERM, into @buf: the capability
 * missing, else, on a kernel that charges BPF memory to RLIMIT_MEMLOCK
 * (before 5.11) with a limit, that limit; else the capabilities needed. */
SM_HIDDEN const char *sm_eperm_why(char *buf, size_t len);
/* The pin root: @given (an options' pin_root), else $SOCKMIG_PIN_ROOT
 * (not for setuid programs), else SOCKMIG_PIN_ROOT. */
SM_HIDDEN const char *sm_pin_root(const char *given);
/* Open and lock the group directory (made if missing). */
SM_HIDDEN int sm_open_dir_locked(struct sockmig_group *g);
/* The group's maps and program, from the pins or loaded again; locked. */
SM_HIDDEN int sm_load_pinned(struct sockmig_group *g);
/* Remove the group's pins and directory (the root stays). */
SM_HIDDEN void sm_unpin_all(struct sockmig_group *g);

/* group.c */

/* fd must be a listening socket of this group. */
SM_HIDDEN int sm_check_member_fd(struct sockmig_group *g, int fd);
/* The network namespace of socket @fd (it may be another process's, taken
 * with pidfd_getfd()): SIOCGSKNS, which needs CAP_NET_ADMIN; the calling
 * thread's when the kernel will not say. */
SM_HIDDEN uint64_t sm_socket_netns(int fd);
/* The group of TCP listener @fd (SO_REUSEPORT, bound, no device): its
 * address, netns and name; one error line when it has none. */
SM_HIDDEN int sm_group_name_of_fd(int fd, struct sm_addr *a, uint64_t *netns, char *buf,
				  size_t len);
/* What a group name spells: -EINVAL when it is not one. */
SM_HIDDEN int sm_parse_group_name(const char *name, struct sm_addr *a, uint64_t *netns);

/* member.c */

/* Forget members that stopped listening and whose process is gone. */
SM_HIDDEN void sm_collect_stale(struct sockmig_group *g);
/* Take the group lock and read the members: 0 with the lock held and
 * *recs set (the caller frees it and unlocks), or a negative errno with
 * the lock not held. */
SM_HIDDEN int sm_lock_members(struct sockmig_group *g, struct member_rec **recs, int *n);

/* drain.c */

/* Decide once, as the group opens, whether its drains wake the targets of
 * their migrations (g->wake_targets): never a probe inside a drain. */
SM_HIDDEN void sm_decide_wake(struct sockmig_group *g);

#endif
