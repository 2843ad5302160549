// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig drain: mark members of an attached group draining (no new SYN)
 * before their owner closes them; --now also shuts them down so that their
 * queues migrate at once; --wait returns when their queues are empty or
 * they are closed, and says what migrated.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attach.h"
#include "cli.h"
#include "diag.h"
#include "sockmig.h"

#define MAX_DRAIN 256

struct target {
	uint64_t cookie;
	char group[SOCKMIG_NAME_MAX];
	int port;
	bool gone;
	uint32_t queue;
	struct sockmig_counters c;
};

static void drain_usage(FILE *f)
{
	fprintf(f, "Usage: sockmig drain (--pid PID | --cookie C) [--port P] [--now]\n"
		   "                     [--wait] [--timeout SECS]\n"
		   "  -p, --pid PID       the listeners of process PID\n"
		   "  -c, --cookie C      the listener with socket cookie C\n"
		   "  -P, --port P        only listeners on port P (1-65535)\n"
		   "  -n, --now           shut the listeners down now (migrate their queues)\n"
		   "  -w, --wait          wait until their accept queues are empty\n"
		   "  -t, --timeout SECS  with --wait: at most SECS seconds (1-3600, default 30)\n"
		   "  -j, --json          JSON output\n"
		   "  -h, --help          this text\n");
}

static int group_of(const struct sm_listener *l, char *buf, size_t len)
{
	struct sockmig_group_id id;
	int err = sockmig_group_id_make(l->family, &l->addr, l->port, 0, &id);

	if (!err)
		snprintf(buf, len, "%s", id.name);
	return err;
}

/* Drain one listener; 0, or -1 after an error line. */
static int drain_one(const struct sm_listener *l, bool now, struct target *t)
{
	SOCKMIG_OPTS(sockmig_drain_opts, dopts, .no_shutdown = !now);
	struct sockmig_group *g;
	int fd = -1, err;

	if (group_of(l, t->group, sizeof(t->group)) < 0)
		return -1;
	t->cookie = l->cookie;
	t->port = l->port;
	g = sockmig_group_open_name(t->group, NULL);
	if (!g) {
		if (errno == ENOENT)
			cli_error("port %d is not attached (sockmig attach --port %d)", l->port,
				  l->port);
		else
			cli_error("%s", sockmig_last_error());
		return -1;
	}
	fd = take_listener(l, false);
	if (fd < 0) {
		sockmig_group_close(g);
		return -1;
	}
	err = sockmig_member_drain(g, fd, &dopts, NULL);
	if (err < 0)
		cli_error("cookie %llu: %s", (unsigned long long)l->cookie, sockmig_last_error());
	close(fd);
	sockmig_group_close(g);
	return err < 0 ? -1 : 0;
}

/* Wait until every target's queue is empty or it stopped listening. */
static void wait_targets(struct target *t, int n, uint64_t timeout_s)
{
	struct timespec ts = {.tv_nsec = 10 * 1000000L};
	time_t end = time(NULL) + (time_t)timeout_s;
	struct sm_listener *ls;
	int left, m;

	do {
		left = 0;
		ls = NULL;
		m = sm_diag_listeners(0, 0, &ls);
		for (int i = 0; i < n; i++) {
			bool found = false;

			for (int j = 0; j < m; j++)
				if (ls[j].cookie == t[i].cookie) {
					found = true;
					t[i].queue = ls[j].queue;
				}
			/* read the counters while the member is still known */
			struct sockmig_group *g = sockmig_group_open_name(t[i].group, NULL);

			if (g) {
				sockmig_counters_read(g, t[i].cookie, &t[i].c);
				sockmig_group_close(g);
			}
			t[i].gone = !found;
			if (found && t[i].queue > 0)
				left++;
		}
		free(ls);
		if (left)
			nanosleep(&ts, NULL);
	} while (left && time(NULL) < end);
}

int do_drain(int argc, char **argv)
{
	struct target *t = NULL;
	struct sm_listener *ls = NULL;
	uint64_t cookie = 0, timeout = 30;
	int port = 0, n, nt = 0, ret = 0;
	pid_t pid = 0;
	bool now = false, wait = false;
	const struct cli_opt opts[] = {
		{"pid", 'p', CLI_PID, &pid},
		{"cookie", 'c', CLI_U64, &cookie, 1, UINT64_MAX},
		{"port", 'P', CLI_PORT, &port},
		{"now", 'n', CLI_FLAG, &now},
		{"wait", 'w', CLI_FLAG, &wait},
		{"timeout", 't', CLI_U64, &timeout, 1, 3600},
		{0},
	};

	n = cli_parse("drain", argc, argv, opts, 0, drain_usage);
	if (n <= 0)
		return n == 0 ? 0 : 2;
	if (!pid && !cookie) {
		cli_error("drain: give --pid PID or --cookie C");
		return 2;
	}
	if (pid && !cli_pid_exists(pid))
		return 1;
	n = sm_diag_listeners(0, port, &ls);
	if (n < 0) {
		cli_error("cannot list listening sockets: %s", strerror(-n));
		return 1;
	}
	t = calloc(MAX_DRAIN, sizeof(*t));
	for (int i = 0; t && i < n && nt < MAX_DRAIN; i++) {
		bool match = cookie ? ls[i].cookie == cookie : false;

		for (int j = 0; pid && j < ls[i].nowners; j++)
			match |= ls[i].owners[j].pid == pid;
		if (!match)
			continue;
		if (drain_one(&ls[i], now, &t[nt]) < 0)
			ret = 1;
		else
			nt++;
	}
	free(ls);
	if (!nt && !ret) {
		if (pid)
			cli_error("pid %d has no listener%s", (int)pid,
				  port ? " on that port" : "");
		else
			cli_error("no listener has cookie %llu", (unsigned long long)cookie);
		free(t);
		return 1;
	}
	if (wait && nt)
		wait_targets(t, nt, timeout);
	if (json_output) {
		jw_open(NULL, '[');
		for (int i = 0; i < nt; i++) {
			jw_open(NULL, '{');
			jw_u64("cookie", t[i].cookie);
			jw_u64("port", (uint64_t)t[i].port);
			jw_str("group", t[i].group);
			if (wait) {
				jw_bool("closed", t[i].gone);
				jw_u64("queue", t[i].queue);
				jw_open("migrated", '{');
				for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
					jw_u64(sockmig_kind_str((enum sockmig_kind)k),
					       t[i].c.migrated_out[k]);
				jw_close('}');
				jw_u64("cancelled", t[i].c.cancel_mismatch);
				jw_u64("deferred", t[i].c.deferred);
			}
			jw_close('}');
		}
		jw_close(']');
		jw_end();
	} else {
		for (int i = 0; i < nt; i++) {
			uint64_t moved = 0;

			for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
				moved += t[i].c.migrated_out[k];
			printf("cookie %llu (port %d): draining", (unsigned long long)t[i].cookie,
			       t[i].port);
			if (wait)
				printf(", %s: migrated %llu (established %llu, tfo %llu, req-timer "
				       "%llu, req-ack %llu), cancelled %llu, deferred %llu",
				       t[i].gone    ? "closed"
				       : t[i].queue ? "timed out"
						    : "queue empty",
				       (unsigned long long)moved,
				       (unsigned long long)t[i].c.migrated_out[0],
				       (unsigned long long)t[i].c.migrated_out[1],
				       (unsigned long long)t[i].c.migrated_out[2],
				       (unsigned long long)t[i].c.migrated_out[3],
				       (unsigned long long)t[i].c.cancel_mismatch,
				       (unsigned long long)t[i].c.deferred);
			printf("\n");
		}
	}
	free(t);
	return ret;
}
