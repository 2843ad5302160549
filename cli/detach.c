// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig detach: stop the port's attach daemon, give each listener of the
 * port its kernel's default selection back (the program detached) and
 * remove the port's pinned groups.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "attach.h"
#include "cli.h"
#include "diag.h"
#include "pidfile.h"
#include "sockmig.h"

/* Stop the attach daemon of @port, if one runs (the live holder of its
 * locked pid file, still the process it names). */
static void stop_daemon(int port)
{
	pid_t pid = pidfile_owner("attach", port);
	unsigned long long start = proc_start_time(pid), end = now_ms() + 5000;
	struct timespec nap = {0, 10000000};

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	/* until it unregistered what it had (a scan under way could otherwise
	 * attach the policy again after us); at most 5 s */
	while (start && proc_start_time(pid) == start && pidfile_owner("attach", port) == pid &&
	       now_ms() < end)
		nanosleep(&nap, NULL);
}

static void detach_usage(FILE *f)
{
	fprintf(f, "Usage: sockmig detach --port P\n"
		   "  -P, --port P    stop the port's attach, detach its policy\n"
		   "  -h, --help      this help\n");
}

int do_detach(int argc, char **argv)
{
	char(*names)[SOCKMIG_NAME_MAX] = NULL;
	struct sm_listener *ls = NULL;
	int port = 0, n, done = 0;
	const struct cli_opt opts[] = {
		{"port", 'P', CLI_PORT, &port},
		{0},
	};

	n = cli_parse("detach", argc, argv, opts, 0, detach_usage);
	if (n <= 0)
		return n == 0 ? 0 : 2;
	if (!port) {
		cli_error("detach: give --port P");
		return 2;
	}
	stop_daemon(port);
	n = sm_diag_listeners(0, port, &ls);
	for (int i = 0; i < n; i++) {
		struct sockmig_group_id id;
		struct sockmig_group *g;
		int fd = -1;

		if (sockmig_group_id_make(ls[i].family, &ls[i].addr, ls[i].port, 0, &id) < 0)
			continue;
		/* give the kernel group its default selection back */
		fd = take_listener(&ls[i], true);
		if (fd >= 0) {
			/* the program stays attached after attach's clean stop,
			 * with no group pinned: removing it is detaching too */
			if (sockmig_group_detach(fd) == 0)
				done++;
			close(fd);
		}
		g = sockmig_group_open_id(&id, NULL);
		if (g) {
			sockmig_group_destroy(g);
			sockmig_group_close(g);
			done++;
		}
	}
	free(ls);
	/* groups whose listeners are all gone: remove their pins too (this
	 * network namespace's groups of this port only) */
	n = cli_group_names(port, &names);
	for (int i = 0; i < n; i++) {
		struct sockmig_group *g = sockmig_group_open_name(names[i], NULL);

		if (g) {
			sockmig_group_destroy(g);
			sockmig_group_close(g);
			done++;
		}
	}
	free(names);
	if (!done) {
		cli_error("port %d is not attached", port);
		return 1;
	}
	printf("detached port %d\n", port);
	return 0;
}
