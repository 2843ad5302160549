// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig demo: the problem and the fix, side by side, in private network
 * namespaces. A group of listeners takes a burst of connections that wait
 * in their accept queues; one listener closes; the rest serve. Run three
 * times: with nothing (tcp_migrate_req=0), with the bare sysctl, and with
 * sockmig's policy (the listener is drained, then closed).
 *
 * On a kernel that cannot migrate (the probe says select-only: 4.19 to
 * 5.13, Debian 11's 5.10) sockmig's column is what it does there: the
 * legacy drain (no SYN for the old listener, wait for its handshakes,
 * the old process serves its queue, then closes), and the restart
 * columns keep the listener across the gap as `sockmig run` does there
 * (listener hand-off) instead of a holder.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "burst.h"
#include "cli.h"
#include "sockmig.h"

#define DEMO_PORT     8080
#define MAX_LISTENERS 16

enum demo_mode { DEMO_NONE, DEMO_SYSCTL, DEMO_POLICY, DEMO_MODES };

static const char *const demo_names[] = {"nothing", "sysctl", "sockmig policy"};

/* The kernel cannot migrate: legacy drain and listener hand-off. */
static bool demo_legacy;

struct demo_result {
	int ok, reset, refused, other, queued_on_closed;
	unsigned long long migrate_success, migrate_failure, policy_migrated, policy_cancelled;
	char error[200];
};

static int demo_fail(struct demo_result *r, const char *what, int err)
{
	snprintf(r->error, sizeof(r->error), "%s: %s", what, strerror(err < 0 ? -err : err));
	return -1;
}

/* One run, in the calling process's own fresh network namespace. */
static int demo_run(enum demo_mode mode, int nl, int nclients, struct demo_result *r)
{
	struct sockmig_group *g = NULL;
	struct sockmig_netstat ns0, ns1, d;
	struct sockmig_drain_report rep;
	struct burst *c = NULL;
	int l[MAX_LISTENERS], served[MAX_LISTENERS] = {0}, ret = -1, err;

	for (int i = 0; i < nl; i++)
		l[i] = -1;
	if (unshare(CLONE_NEWNET) < 0)
		return demo_fail(r, "cannot create a network namespace (run as root)", errno);
	/* a kernel without the sysctl (upstream before 5.14) runs the sysctl's
	 * row as it is: setting it could not change anything there */
	err = burst_migrate_req(mode == DEMO_SYSCTL);
	if (err < 0 && err != -ENOENT)
		return demo_fail(r, "cannot set net.ipv4.tcp_migrate_req", -err);
	if (sockmig_lo_up() < 0)
		return demo_fail(r, "cannot bring lo up", EIO);
	c = calloc(1, sizeof(*c));
	if (!c)
		return demo_fail(r, "calloc", ENOMEM);
	for (int i = 0; i < nl; i++) {
		l[i] = burst_listener(AF_INET, DEMO_PORT, 4096, 0);
		if (l[i] < 0) {
			demo_fail(r, "listener", l[i]);
			goto out;
		}
	}
	if (mode == DEMO_POLICY) {
		g = sockmig_group_open(l[0], NULL);
		if (!g) {
			snprintf(r->error, sizeof(r->error), "%s", sockmig_last_error());
			goto out;
		}
		for (int i = 0; i < nl; i++) {
			SOCKMIG_OPTS(sockmig_member_opts, mo, .generation = 1);

			if (sockmig_member_add(g, l[i], &mo) < 0) {
				snprintf(r->error, sizeof(r->error), "%s", sockmig_last_error());
				goto out;
			}
		}
	}
	if (burst_start(c, AF_INET, DEMO_PORT, nclients, false) < 0 ||
	    burst_connected(c, 5000) != nclients) {
		demo_fail(r, "the burst did not connect", ETIMEDOUT);
		goto out;
	}
	for (int tries = 0; tries < 500; tries++) {
		int q = 0;

		for (int i = 0; i < nl; i++)
			q += burst_accept_queue(l[i]);
		if (q >= nclients)
			break;
		burst_sleep_ms(2);
	}
	r->queued_on_closed = burst_accept_queue(l[0]);
	sockmig_netstat_read(&ns0);
	if (mode == DEMO_POLICY) {
		/* native: l[0]'s queue migrates at its shutdown; legacy: no SYN
		 * for it any more, none in flight, and it serves its queue with
		 * the others, then closes */
		if (sockmig_member_drain(g, l[0], NULL, &rep) < 0) {
			snprintf(r->error, sizeof(r->error), "%s", sockmig_last_error());
			goto out;
		}
		if (sockmig_group_policy(g) == SOCKMIG_POLICY_LEGACY) {
			burst_serve(c, l, nl, served, 5000);
			r->policy_migrated = (unsigned long long)served[0];
		}
		for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
			r->policy_migrated += rep.migrated[k];
		r->policy_cancelled = rep.cancelled;
		sockmig_member_leave(g, l[0]);
	}
	close(l[0]);
	l[0] = -1;
	burst_serve(c, l + 1, nl - 1, NULL, 5000);
	sockmig_netstat_read(&ns1);
	sockmig_netstat_delta(&ns0, &ns1, &d);
	r->ok = c->count[BURST_OK];
	r->reset = c->count[BURST_RESET];
	r->other = c->n - r->ok - r->reset;
	r->migrate_success = d.migrate_success;
	r->migrate_failure = d.migrate_failure;
	ret = 0;
out:
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	if (c)
		burst_close(c);
	free(c);
	for (int i = 0; i < nl; i++)
		if (l[i] >= 0)
			close(l[i]);
	return ret;
}

/* Run one mode in a child, so that each gets a namespace of its own. */
/* The stop-then-start and kill -9 runs: one server listener, nothing else
 * in the group but (with @holder) sockmig's holder. N clients wait in the
 * server's queue when it goes; N more arrive during a 1 s gap; then a new
 * server listener starts and serves. */
static int demo_restart(bool holder, bool crash, int n, struct demo_result *r)
{
	struct sockmig_holder *h = NULL;
	struct sockmig_group *g = NULL;
	struct sockaddr_storage ss;
	socklen_t len = burst_addr(AF_INET, DEMO_PORT, &ss);
	struct burst *c = calloc(1, sizeof(*c));
	int a, b = -1, keep = -1, ret = -1;
	bool handoff = holder && demo_legacy;
	pid_t child = -1;

	if (!c)
		return demo_fail(r, "calloc", ENOMEM);
	if (unshare(CLONE_NEWNET) < 0 || sockmig_lo_up() < 0 || burst_migrate_req(false) < 0) {
		free(c);
		return demo_fail(r, "cannot set up a network namespace (run as root)", errno);
	}
	if (handoff)
		holder = false; /* no holder can take a queue here: keep the listener */
	if (holder) {
		h = sockmig_holder_open((struct sockaddr *)&ss, len, NULL);
		if (!h) {
			snprintf(r->error, sizeof(r->error), "%s", sockmig_last_error());
			goto out;
		}
	}
	a = burst_listener(AF_INET, DEMO_PORT, 4096, 0);
	if (a < 0) {
		demo_fail(r, "listener", a);
		goto out;
	}
	if (holder) {
		SOCKMIG_OPTS(sockmig_member_opts, mo, .generation = 1);

		g = sockmig_group_open(a, NULL);
		if (!g || sockmig_member_add(g, a, &mo) < 0) {
			snprintf(r->error, sizeof(r->error), "%s", sockmig_last_error());
			close(a);
			goto out;
		}
	}
	if (crash) {
		/* the server is a process of its own, killed with SIGKILL */
		child = fork();
		if (child == 0) {
			pause();
			_exit(0);
		}
	}
	if (burst_start(c, AF_INET, DEMO_PORT, n, false) < 0 || burst_connected(c, 3000) != n) {
		demo_fail(r, "the burst did not connect", ETIMEDOUT);
		close(a);
		goto out;
	}
	burst_wait_queue(a, n, 2000);
	r->queued_on_closed = burst_accept_queue(a);
	if (handoff)
		keep = dup(a); /* the supervisor's copy: the listener never closes */
	close(a);	       /* the child's copy, if any, is the last one now */
	if (crash) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	/* the gap: nobody serves the port for 1 s, and N more clients come */
	burst_start(c, AF_INET, DEMO_PORT, n, false);
	burst_sleep_ms(1000);
	b = handoff ? keep : burst_listener(AF_INET, DEMO_PORT, 4096, 0);
	if (holder) {
		SOCKMIG_OPTS(sockmig_member_opts, mo, .generation = 2);

		if (sockmig_member_add(g, b, &mo) < 0 ||
		    sockmig_holder_rotate(h, NULL, 0, NULL) < 0) {
			snprintf(r->error, sizeof(r->error), "%s", sockmig_last_error());
			goto out;
		}
	}
	burst_serve(c, &b, 1, NULL, 5000);
	r->ok = c->count[BURST_OK];
	r->reset = c->count[BURST_RESET];
	r->refused = c->count[BURST_REFUSED];
	r->other = c->n - r->ok - r->reset - r->refused;
	ret = 0;
out:
	if (b >= 0)
		close(b);
	sockmig_holder_close(h, false);
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	burst_close(c);
	free(c);
	return ret;
}

enum demo_run {
	RUN_CLOSE_NONE,
	RUN_CLOSE_SYSCTL,
	RUN_CLOSE_POLICY,
	RUN_STOP_NONE,
	RUN_STOP_HOLDER,
	RUN_KILL_NONE,
	RUN_KILL_HOLDER,
	RUN_MAX
};

static int demo_child(int run, int nl, int n, struct demo_result *r)
{
	int p[2], status;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	if (pipe(p) < 0)
		return demo_fail(r, "pipe", errno);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return demo_fail(r, "fork", errno);
	if (pid == 0) {
		close(p[0]);
		if (run <= RUN_CLOSE_POLICY)
			demo_run((enum demo_mode)run, nl, n, r);
		else
			demo_restart(run == RUN_STOP_HOLDER || run == RUN_KILL_HOLDER,
				     run >= RUN_KILL_NONE, n / 2, r);
		_exit(write(p[1], r, sizeof(*r)) == sizeof(*r) ? 0 : 1);
	}
	close(p[1]);
	if (read(p[0], r, sizeof(*r)) != sizeof(*r))
		snprintf(r->error, sizeof(r->error), "run %d died", run);
	close(p[0]);
	waitpid(pid, &status, 0);
	return r->error[0] ? -1 : 0;
}

static void demo_usage(FILE *f)
{
	fprintf(f,
		"Usage: sockmig demo [--listeners N] [--clients N]\n"
		"  -l, --listeners N  listeners in the group (2-%d, default 4)\n"
		"  -c, --clients N    connections per run (1-4000, default 400)\n"
		"  -j, --json         JSON output\n"
		"  -h, --help         this text\n",
		MAX_LISTENERS);
}

int do_demo(int argc, char **argv)
{
	struct demo_result r[RUN_MAX];
	struct sockmig_probe p = {0};
	uint64_t nl = 4, n = 400;
	const char *mode;
	int rc;
	const struct cli_opt opts[] = {
		{"listeners", 'l', CLI_U64, &nl, 2, MAX_LISTENERS},
		{"clients", 'c', CLI_U64, &n, 1, 4000},
		{0},
	};

	rc = cli_parse("demo", argc, argv, opts, 0, demo_usage);
	if (rc <= 0)
		return rc == 0 ? 0 : 2;
	if (geteuid() != 0) {
		cli_error("demo needs root (network namespaces and BPF)");
		return 1;
	}
	mode = getenv("SOCKMIG_MODE");
	if ((sockmig_probe(&p) == 0 && p.mode != SOCKMIG_MODE_NATIVE) ||
	    (mode && strcmp(mode, "legacy") == 0))
		demo_legacy = true;
	for (int m = 0; m < RUN_MAX; m++) {
		if (demo_child(m, (int)nl, (int)n, &r[m]) < 0) {
			cli_error("demo (run %d): %s", m, r[m].error);
			return 1;
		}
	}
	static const char *const run_names[RUN_MAX] = {
		"close/nothing",     "close/sysctl",   "close/policy", "stop-start/nothing",
		"stop-start/holder", "kill-9/nothing", "kill-9/holder"};

	if (json_output) {
		jw_open(NULL, '{');
		jw_u64("listeners", nl);
		jw_u64("clients", n);
		/* false: the sysctl's run had none to set (before 5.14) */
		jw_bool("tcp_migrate_req_present",
			access("/proc/sys/net/ipv4/tcp_migrate_req", F_OK) == 0);
		jw_open("runs", '[');
		for (int m = 0; m < RUN_MAX; m++) {
			jw_open(NULL, '{');
			jw_str("run", run_names[m]);
			jw_u64("queued_on_closed", (uint64_t)r[m].queued_on_closed);
			jw_u64("served", (uint64_t)r[m].ok);
			jw_u64("reset", (uint64_t)r[m].reset);
			jw_u64("refused", (uint64_t)r[m].refused);
			jw_u64("other", (uint64_t)r[m].other);
			if (m <= RUN_CLOSE_POLICY) {
				jw_u64("TCPMigrateReqSuccess", r[m].migrate_success);
				jw_u64("TCPMigrateReqFailure", r[m].migrate_failure);
			}
			if (m == RUN_CLOSE_POLICY) {
				jw_u64("policy_migrated", r[m].policy_migrated);
				jw_u64("policy_cancelled", r[m].policy_cancelled);
			}
			jw_close('}');
		}
		jw_close(']');
		jw_close('}');
		jw_end();
	} else {
		printf("sockmig demo, in private network namespaces on 127.0.0.1:%d.\n\n"
		       "1. %llu listeners share the port (SO_REUSEPORT); %llu clients connect and "
		       "wait in\n   their accept queues; one listener closes; the others serve "
		       "what is left.\n\n",
		       DEMO_PORT, (unsigned long long)nl, (unsigned long long)n);
		if (demo_legacy)
			printf("%s:\nsockmig drains the old listener before it closes (legacy "
			       "mode)\n"
			       "and keeps the listener across restarts (listener hand-off, as\n"
			       "sockmig run does there).\n\n",
			       p.mode == SOCKMIG_MODE_NATIVE
				       ? "Legacy mode forced (SOCKMIG_MODE=legacy)"
				       : "This kernel cannot migrate (sockmig probe: select-only)");
		if (access("/proc/sys/net/ipv4/tcp_migrate_req", F_OK) < 0)
			printf("This kernel has no net.ipv4.tcp_migrate_req (it came in Linux "
			       "5.14): its column shows the kernel as it is.\n\n");
		printf("%-28s %12s %12s %16s\n", "", demo_names[0], demo_names[1],
		       demo_legacy ? "sockmig legacy" : demo_names[2]);
#define ROW(label, field, fmt)                                                                     \
	printf("%-28s %12" fmt " %12" fmt " %16" fmt "\n", label, r[0].field, r[1].field,          \
	       r[2].field)
		ROW("queued on the closed one", queued_on_closed, "d");
		ROW("clients served", ok, "d");
		ROW("clients reset", reset, "d");
		ROW("other outcomes", other, "d");
		ROW("TCPMigrateReqSuccess", migrate_success, "llu");
		ROW("TCPMigrateReqFailure", migrate_failure, "llu");
#undef ROW
		printf("%-28s %12s %12s %16llu\n",
		       demo_legacy ? "served by the drained one" : "policy: migrated", "-", "-",
		       (unsigned long long)r[2].policy_migrated);
		printf("%-28s %12s %12s %16llu\n", "policy: cancelled", "-", "-",
		       (unsigned long long)r[2].policy_cancelled);
		printf("\n2. One server listener; %llu clients wait in its queue when it goes "
		       "(stopped, or\n   killed with SIGKILL); %llu more arrive during a 1 s gap; "
		       "then a new server starts.\n\n",
		       (unsigned long long)n / 2, (unsigned long long)n / 2);
		printf("%-28s %12s %12s %12s %12s\n", "", "stop-start", "stop-start", "kill -9",
		       "kill -9");
		printf("%-28s %12s %12s %12s %12s\n", "", "nothing",
		       demo_legacy ? "hand-off" : "holder", "nothing",
		       demo_legacy ? "hand-off" : "holder");
#define ROW2(label, field)                                                                         \
	printf("%-28s %12d %12d %12d %12d\n", label, r[3].field, r[4].field, r[5].field, r[6].field)
		ROW2("clients served", ok);
		ROW2("clients reset", reset);
		ROW2("clients refused", refused);
		ROW2("other outcomes", other);
#undef ROW2
		printf("\n%s\n",
		       r[2].reset == 0 && r[0].reset > 0 && r[4].ok == (int)n && r[6].ok == (int)n
			       ? "With sockmig no client was reset or refused."
			       : "Unexpected: see the tables.");
	}
	return r[RUN_CLOSE_POLICY].reset == 0 && r[RUN_CLOSE_POLICY].other == 0 &&
			       r[RUN_STOP_HOLDER].ok == (int)(n / 2 * 2) &&
			       r[RUN_KILL_HOLDER].ok == (int)(n / 2 * 2)
		       ? 0
		       : 1;
}
