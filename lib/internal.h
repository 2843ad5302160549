/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Internal helpers of libsockmig; not installed. */
#ifndef SOCKMIG_INTERNAL_H
#define SOCKMIG_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "sockmig.h"

#define SM_HIDDEN __attribute__((visibility("hidden")))

SM_HIDDEN void sm_log(enum sockmig_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Record the message for sockmig_last_error(), log it as a warning, set
 * errno and return -err. */
SM_HIDDEN int sm_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Longest wait for a group's lock, in ms; < 0 (the default): no limit.
 * Set by sockmig_set_lock_wait(). */
SM_HIDDEN extern int sm_lock_wait_ms;

/* Options structs: a caller built against an older header passes a
 * smaller sz; bytes past what we know must be zero. */
SM_HIDDEN bool sm_opts_valid(const void *opts, size_t sz, size_t known, const char *type);

#define OPTS_VALID(opts, type)                                                                     \
	sm_opts_valid(opts, (opts) ? (opts)->sz : 0,                                               \
		      offsetof(struct type, type##__last_field) +                                  \
			      sizeof(((struct type *)0)->type##__last_field),                      \
		      #type)
#define OPTS_GET(opts, field, def)                                                                 \
	(((opts) && (opts)->sz >= offsetof(typeof(*(opts)), field) + sizeof((opts)->field))        \
		 ? (opts)->field                                                                   \
		 : (def))

/* A socket's local address, as the group sees it. */
struct sm_addr {
	int family;
	union {
		struct sockaddr_in v4;
		struct sockaddr_in6 v6;
		struct sockaddr sa;
	};
	socklen_t len;
};

SM_HIDDEN int sm_sock_addr(int fd, struct sm_addr *a);
SM_HIDDEN int sm_addr_port(const struct sm_addr *a);
/* The address a local client connects to for this listener (loopback for
 * a wildcard bind). */
SM_HIDDEN void sm_addr_connectable(const struct sm_addr *a, struct sm_addr *out);
SM_HIDDEN void sm_addr_str(const struct sm_addr *a, char *buf, size_t len);

/* Bring lo up in the calling thread's network namespace. */

SM_HIDDEN unsigned long long sm_now_ns(void);
/* Wait one RCU grace period (membarrier), or 20 ms where it is refused. */
SM_HIDDEN void sm_rcu_grace(void);

/* 1: the verifier loads a migrate program (5.14+); 0: it does not;
 * -EPERM: not allowed to load BPF. Asked once per process. */
SM_HIDDEN int sm_verifier_loads_migrate(void);
/* Whether children migrated at close wake the target's epoll waiter: the
 * wake-up step of sockmig_probe() alone (lib/probe.c), asked once per
 * process (SOCKMIG_UNKNOWN without the rights for its scratch netns). */
SM_HIDDEN enum sockmig_tristate sm_kernel_wakes_migrated(void);

/* The group lock (flock on its directory, lib/pin.c). */
SM_HIDDEN int sm_group_lock(struct sockmig_group *g);
SM_HIDDEN void sm_group_unlock(struct sockmig_group *g);
/* Make member @cookie's role @role under the group lock (lib/member.c),
 * the check that every change of role makes included: an active member
 * becomes draining only while another live member is active or a holder
 * (-EBUSY otherwise, unless @force). *@was (may be NULL): the member as it
 * was (its counters left zero). -ENOENT when no such member. */
SM_HIDDEN int sm_member_set_role(struct sockmig_group *g, uint64_t cookie, enum sockmig_role role,
				 bool force, struct sockmig_member_info *was);

/* Record drain @ev (seq and time filled in here) in the group's event
 * ring (lib/events.c), made on first use; with and without the lock held. */
SM_HIDDEN int sm_event_record_locked(struct sockmig_group *g, struct sockmig_event *ev);
SM_HIDDEN int sm_event_record(struct sockmig_group *g, struct sockmig_event *ev);

#endif
