// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sockmig run: what a reload moved, and the server listeners it cannot cover. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "run.h"

/* Sum what @g's listeners migrated, from the group, while they are known. */
void run_gen_counters(struct runner *r, struct generation *g)
{
	memset(&g->moved, 0, sizeof(g->moved));
	for (int j = 0; j < r->sc.nk; j++) {
		struct sockmig_counters c;
		struct sockmig_group *grp;

		if (r->sc.k[j].holder || run_gen_of_pid(r, r->sc.k[j].owner) != g)
			continue;
		grp = sockmig_group_open_name(r->sc.k[j].group, NULL);
		if (grp && sockmig_counters_read(grp, r->sc.k[j].cookie, &c) == 0) {
			for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
				g->moved.migrated_out[k] += c.migrated_out[k];
			g->moved.cancel_mismatch += c.cancel_mismatch;
			g->moved.deferred += c.deferred;
		}
		sockmig_group_close(grp);
	}
}

void run_report_stopped(const struct runner *r, struct generation *g)
{
	struct sockmig_netstat ns, d;
	uint64_t moved = 0;

	if (r->listen_fd >= 0) {
		printf("reload report: generation %u stopped in %llu ms; the listener is "
		       "sockmig run's: nothing to migrate\n",
		       g->id, now_ms() - g->stopping);
		fflush(stdout);
		return;
	}
	sockmig_netstat_read(&ns);
	sockmig_netstat_delta(&g->ns0, &ns, &d);
	for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
		moved += g->moved.migrated_out[k];
	printf("reload report: generation %u drained and stopped in %llu ms: migrated %llu, "
	       "cancelled %llu, deferred %llu;"
	       " kernel: %llu failed migrations, %llu embryonic resets\n",
	       g->id, now_ms() - g->stopping, (unsigned long long)moved,
	       (unsigned long long)g->moved.cancel_mismatch, (unsigned long long)g->moved.deferred,
	       (unsigned long long)d.migrate_failure, (unsigned long long)d.embryonic_rsts);
	fflush(stdout);
}
