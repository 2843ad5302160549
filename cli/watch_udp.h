/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sockmig watch: the UDP groups' counters per interval (watch_udp.c). */
#ifndef SOCKMIG_CLI_WATCH_UDP_H
#define SOCKMIG_CLI_WATCH_UDP_H

#include <stdbool.h>

#include "sockmig.h"

struct udp_watched {
	char name[SOCKMIG_NAME_MAX];
	struct sockmig_udp_stats last; /* at the previous sample */
	uint64_t last_old;	       /* sockmig_udp_counters.old_generation then */
	bool rebase;		       /* last could not be read: the next sample is */
};

struct udp_watch {
	struct udp_watched *g;
	int n, cap;
};

/* The UDP groups of this network namespace (and port, if given) that are
 * new to @w join it, their counters taken as they are now when @baseline
 * (the watch's start), else from 0 (made during the watch). */
void watch_udp_list(struct udp_watch *w, int port, bool baseline);

/* One line per UDP group: what its counters grew by since the last
 * sample (a group gone or made again counts from its new values). */
void watch_udp_round(struct udp_watch *w, const char *stamp);

void watch_udp_free(struct udp_watch *w);

#endif
