/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Legacy mode (lib/legacy.c, refs.c, handoff.c): what the group's files
 * use of it, and what the three share; not installed.
 */
#ifndef SOCKMIG_LEGACY_H
#define SOCKMIG_LEGACY_H

#include "internal.h"

struct bpf_object;
struct bpf_program;
struct policy_bpf;
struct policy_legacy_bpf;

/* The policy object: one of two skeletons, the native (select or migrate)
 * or the legacy (select only), with the same maps by name. */
struct sm_policy_obj {
	struct policy_bpf *native;	  /* set for the native policy */
	struct policy_legacy_bpf *legacy; /* set for the legacy policy */
	struct bpf_object *obj;		  /* its object */
	struct bpf_program *prog;	  /* its one program */
};

/* Open (not load) the native or the legacy object; NULL and errno set. */
SM_HIDDEN struct sm_policy_obj *sm_policy_open(bool legacy);
/* Load it; 0 or a negative errno. */
SM_HIDDEN int sm_policy_load(struct sm_policy_obj *p);
/* Close it; NULL is fine. */
SM_HIDDEN void sm_policy_close(struct sm_policy_obj *p);

/* The policy asked for by the options' value @opt, else by SOCKMIG_MODE;
 * -EINVAL for an unknown @opt. */
SM_HIDDEN int sm_policy_requested(int opt);

/* The policy of pinned program @prog_fd, checked against @requested:
 * the policy, or -EEXIST when another one was forced. */
SM_HIDDEN int sm_policy_of_prog(int prog_fd, int requested, const char *group);

/* A drain's options, read once from struct sockmig_drain_opts (drain.c). */
struct sm_drain_args {
	sockmig_accept_fn on_accept; /* NULL: no accept, or the hand-off */
	void *ctx;
	/* hand accepted connections to the live members of this group */
	struct sockmig_group *handoff;
	uint32_t deadline_ms; /* 0: the drain's default */
	bool force, no_shutdown, keep_listening, wake_receivers;
};

/* sockmig_member_drain() with @legacy the drain to run whatever the
 * group's policy (sockmig_member_drain_legacy()); the whole report is
 * written (drain.c). */
SM_HIDDEN int sm_drain(struct sockmig_group *g, int fd, const struct sockmig_drain_opts *opts,
		       bool legacy, struct sockmig_drain_report *report);

/* The record of a drain of member @was (its role, generation and owner
 * before the drain) in @ev, of the type set there: its report's wait, and
 * @c, its counters right after the drain (NULL: unread) (drain.c). */
SM_HIDDEN void sm_drain_event(struct sockmig_event *ev, const struct sockmig_member_info *was,
			      const struct sockmig_drain_report *rep,
			      const struct sockmig_counters *c, uint64_t t_mark);

/* The legacy drain of member @fd (cookie @cookie): mark, grace period,
 * accept until no handshake is in flight or the deadline, then shutdown
 * (legacy.c). Fills @rep. */
SM_HIDDEN int sm_drain_legacy(struct sockmig_group *g, int fd, uint64_t cookie,
			      const struct sm_drain_args *a, struct sockmig_drain_report *rep);

/* The group is gone: remove the hand-off endpoints left in its directory
 * by processes that are gone, and the directory once empty. */
SM_HIDDEN void sm_handoff_forget(const char *group);

/* Between legacy.c, refs.c and handoff.c. */

/* The listener's line of /proc/net/tcp{,6}, read again and again. */
struct refs_file {
	int fd;		   /* /proc/thread-self/net/tcp or tcp6 */
	unsigned long ino; /* the listener's socket inode */
	char buf[16384];
};

/* Open the /proc/net/tcp of listener @sock's family and netns. */
SM_HIDDEN int sm_refs_open(struct refs_file *r, int sock);
/* The listener's reference count and accept queue; -ENOENT when it does
 * not listen. */
SM_HIDDEN int sm_refs_read(struct refs_file *r, unsigned *refs, unsigned *queued);
/* Longest life of a request on listener @fd, in ms. */
SM_HIDDEN uint32_t sm_synack_budget_ms(int fd);

/* The TCP state of socket @fd (TCP_INFO), -1 when unreadable. */
SM_HIDDEN int sm_sock_state(int fd);

/* The members that took connections handed off by one drain, to wake at
 * its end: owned by that drain, passed to the hand-off explicitly. */
#define SM_RECEIVERS_MAX 64
struct sm_receivers {
	int n;
	uint64_t cookie[SM_RECEIVERS_MAX];
};

/* sockmig_handoff_accept() to the members of @g; with @rx (a drain's
 * wake_receivers), the member that took @fd is noted there, and one whose
 * endpoint is full is kicked at once (handoff.c). */
SM_HIDDEN int sm_handoff_give(struct sockmig_group *g, int fd, struct sm_receivers *rx);

#endif
