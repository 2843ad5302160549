/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Legacy mode (lib/legacy.c), as lib/group.c uses it; not installed. */
#ifndef SOCKMIG_LEGACY_H
#define SOCKMIG_LEGACY_H

#include "internal.h"

struct policy_bpf;

/* The policy skeleton: the native object, or the legacy one in its place
 * (same maps, its select program as progs.sockmig_policy). */
SM_HIDDEN struct policy_bpf *sm_policy_open(bool legacy);

/* The policy asked for by the options' value @opt, else by SOCKMIG_MODE;
 * -EINVAL for an unknown @opt. */
SM_HIDDEN int sm_policy_requested(int opt);

/* The policy of pinned program @prog_fd, checked against @requested:
 * the policy, or -EEXIST when another one was forced. */
SM_HIDDEN int sm_policy_of_prog(int prog_fd, int requested, const char *group);

/* sockmig_member_drain() of a legacy group: stop SYNs, wait for the
 * handshakes in flight, no shutdown. */
SM_HIDDEN int sm_legacy_drain_wait(struct sockmig_group *g, int fd, bool force,
				   struct sockmig_drain_report *report);

/* The group is gone: remove the hand-off endpoints left in its directory
 * by processes that are gone, and the directory once empty. */
SM_HIDDEN void sm_handoff_forget(const char *group);

#endif
