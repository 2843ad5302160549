/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sockmig status: what status.c gathers and status_print.c prints. */
#ifndef SOCKMIG_CLI_STATUS_H
#define SOCKMIG_CLI_STATUS_H

#include <stdbool.h>
#include <stddef.h>
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

/* Members and flows of one generation of a UDP group. */
struct udp_gen {
	uint32_t gen;
	int members;	/* live members of it */
	uint64_t flows; /* flows its members own (sockmig_udp_flows()) */
};

/* A pinned UDP group of the network namespace (status_udp.c). */
struct udp_group {
	struct sockmig_group_id id;
	bool readable;
	char error[160]; /* why it could not be read */
	enum sockmig_udp_mode mode;
	uint32_t flow_max; /* sockmig_udp_group_flow_max() */
	uint32_t idle_ms;  /* sockmig_udp_group_idle_timeout_ms() */
	struct sockmig_udp_stats st;
	uint64_t old_gen;  /* sockmig_udp_counters.old_generation */
	uint64_t quic_new; /* sockmig_udp_counters.quic_new_connections */
	bool have_quic;	   /* mode quic-lb: its counters in q */
	struct sockmig_quic_stats q;
	struct sockmig_udp_member_info *mi;
	int nmi;
	struct udp_gen *gens; /* every generation with a member or a flow, oldest first */
	int ngens;
};

/* The shown TCP groups @gs[0..@ng) then the UDP groups @us[0..@nu) as a
 * JSON array (-j). */
void status_json(const struct group *gs, int ng, const struct netns_info *ns,
		 const struct udp_group *us, int nu);

/* The same as a table, heading lines per group. */
void status_table(const struct group *gs, int ng, const struct netns_info *ns,
		  const struct udp_group *us, int nu);

/* The UDP groups pinned for @netns, port @port (0: any) and address @addr
 * of @family (0: any), read: their number (*out set), or a negative errno. */
int status_udp_read(uint64_t netns, int port, int family, const void *addr, struct udp_group **out);
void status_udp_free(struct udp_group *us, int n);
/* "127.0.0.1:443", "[::1]:443" */
void status_udp_local(const struct udp_group *u, char *buf, size_t len);
/* The objects of the UDP groups in status_json()'s array. */
void status_udp_json(const struct udp_group *us, int n);

#endif
