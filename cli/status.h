/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sockmig status: what status.c gathers and status_print.c prints. */
#ifndef SOCKMIG_CLI_STATUS_H
#define SOCKMIG_CLI_STATUS_H

#include <stdbool.h>
#include <stdint.h>

#include "diag.h"
#include "sockmig.h"

#define UNKNOWN (-1)

struct group {
	const struct sm_listener *l; /* its listeners, sorted by cookie */
	int count;
	char name[SOCKMIG_NAME_MAX];
	int pinned;    /* 1, 0, UNKNOWN (bpffs not readable) */
	int reuseport; /* 1, 0, UNKNOWN */
	bool show;
	char error[160]; /* why a pinned group could not be read */
	struct sockmig_member_info *mi;
	int nmi;
	const char *policy; /* "native" / "legacy" program of the pinned group */
	bool have_lease;
	struct sockmig_lease lease; /* attach's, see sockmig_group_set_lease() */
};

/* What holds for the whole network namespace and kernel. */
struct netns_info {
	uint64_t ino;
	bool root;
	int state; /* pinned groups: 1 readable, 0 not (see state_msg) */
	char state_msg[160];
	bool probed;
	struct sockmig_probe probe;
	int migrate_req; /* net.ipv4.tcp_migrate_req, UNKNOWN if absent */
	bool have_netstat;
	struct sockmig_netstat ns;
};

/* The shown groups @gs[0..@ng) as a JSON array (-j). */
void status_json(const struct group *gs, int ng, const struct netns_info *ns);

/* The shown groups @gs[0..@ng) as a table, a heading line per group. */
void status_table(const struct group *gs, int ng, const struct netns_info *ns);

#endif
