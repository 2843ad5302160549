// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The restart storm's supervisor: it starts and restarts the workers the
 * strategy's way, runs the load generator and counts, each run in a
 * network namespace of its own; see storm.h and storm_priv.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "burst.h"
#include "storm_priv.h"

#define RETIRE_AFTER_MS 3000 /* half-open requests of a drained member move within it */

static const char *const strategy_names[] = {"naive", "sysctl", "policy",  "stopstart", "holder",
					     "run",   "legacy", "handoff", "attach",	"shim"};

const char *storm_strategy_str(enum storm_strategy s)
{
	return (unsigned)s < ST_NSTRATEGIES ? strategy_names[s] : "?";
}

int storm_strategy_parse(const char *name)
{
	for (int i = 0; i < ST_NSTRATEGIES; i++)
		if (strcmp(name, strategy_names[i]) == 0)
			return i;
	return -1;
}

/* legacy: where the workers' drains count (shared memory) */
static struct storm_legacy_stats *legacy_stats;

void storm_close_listeners(const struct storm *s, int keep)
{
	for (int i = 0; i < s->o->workers; i++)
		if (s->w[i].fd >= 0 && s->w[i].fd != keep)
			close(s->w[i].fd);
}

int storm_start_worker(struct storm *s, struct worker *w)
{
	int fd;

	if (s->o->strategy == ST_SHIM)
		return storm_start_shim_worker(s, w);
	fd = burst_listener(s->o->family, s->o->port, 4096, 0);
	if (fd < 0) {
		snprintf(s->r->error, sizeof(s->r->error), "listener: %s", strerror(-fd));
		return -1;
	}
	if (s->g) {
		SOCKMIG_OPTS(sockmig_member_opts, mo, .generation = s->gen);

		if (sockmig_member_add(s->g, fd, &mo) < 0) {
			snprintf(s->r->error, sizeof(s->r->error), "%s", sockmig_last_error());
			close(fd);
			return -1;
		}
	}
	w->pid = fork();
	if (w->pid < 0) {
		close(fd);
		return -1;
	}
	if (w->pid == 0) {
		struct sockmig_group *own = NULL; /* legacy: the worker's handle */

		storm_close_listeners(s, fd);
		if (s->g)
			sockmig_group_close(s->g);
		if (s->o->strategy == ST_LEGACY) {
			/* a handle of its own: the group lock is per open file */
			SOCKMIG_OPTS(sockmig_group_opts, go, .policy = SOCKMIG_POLICY_LEGACY);

			own = sockmig_group_open(fd, &go);
		}
		storm_worker_serve(fd, own, legacy_stats);
	}
	w->fd = fd;
	return 0;
}

/* Add the counters of a retired member to the result and forget it. */
static void forget_member(struct storm *s, uint64_t cookie)
{
	struct sockmig_counters c;

	if (sockmig_counters_read(s->g, cookie, &c) == 0) {
		for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
			s->r->policy_migrated += c.migrated_out[k];
		s->r->policy_cancelled += c.cancel_mismatch;
		s->r->policy_migrated += c.deferred;
	}
	sockmig_member_leave_cookie(s->g, cookie);
}

static void forget_retired(struct storm *s, unsigned long long older_than)
{
	int k = 0;

	while (k < s->nret && s->ret[k].at_ms <= older_than)
		forget_member(s, s->ret[k++].cookie);
	memmove(s->ret, s->ret + k, (size_t)(s->nret - k) * sizeof(s->ret[0]));
	s->nret -= k;
}

/* Stop-then-start: every worker goes, nobody listens for gap_ms, every
 * worker starts again (with the holder: registered, then the holder is
 * rotated so that what waited on it moves to them). */
static int restart_all(struct storm *s)
{
	for (int i = 0; i < s->o->workers; i++) {
		/* with the holder: no new SYN to the workers, and their queues
		 * move to the holder now, before their listeners close */
		if (s->h) {
			SOCKMIG_OPTS(sockmig_drain_opts, d, .force = true);

			if (sockmig_member_drain(s->g, s->w[i].fd, &d, NULL) < 0)
				s->r->restart_errors++;
			sockmig_member_leave(s->g, s->w[i].fd);
		}
		close(s->w[i].fd);
		kill(s->w[i].pid, SIGTERM);
		s->w[i].fd = -1;
	}
	burst_sleep_ms(s->o->gap_ms);
	s->gen++;
	for (int i = 0; i < s->o->workers; i++)
		if (storm_start_worker(s, &s->w[i]) < 0)
			s->r->restart_errors++;
	if (s->h) {
		uint64_t moved = 0;

		if (sockmig_holder_rotate(s->h, NULL, 0, &moved) < 0)
			s->r->restart_errors++;
		s->r->policy_migrated += moved;
	}
	s->r->restarts++;
	return 0;
}

/* Replace the oldest worker: the new generation first, then the old goes. */
static int restart_one(struct storm *s)
{
	struct worker old = s->w[s->oldest];
	struct sockmig_drain_report rep;
	unsigned long long t0;

	s->gen++;
	if (storm_start_worker(s, &s->w[s->oldest]) < 0) {
		s->w[s->oldest] = old;
		s->r->restart_errors++;
		return -1;
	}
	if (s->o->strategy == ST_POLICY) {
		uint64_t cookie = sockmig_cookie(old.fd);

		t0 = burst_now_ns();
		if (sockmig_member_drain(s->g, old.fd, NULL, &rep) < 0)
			s->r->restart_errors++;
		close(old.fd);
		lg_hist_add(&s->r->drain_us, (burst_now_ns() - t0) / 1000);
		if (s->nret == (int)(sizeof(s->ret) / sizeof(s->ret[0])))
			forget_retired(s, s->ret[0].at_ms);
		s->ret[s->nret].cookie = cookie;
		s->ret[s->nret++].at_ms = burst_now_ms();
	} else if (s->o->strategy == ST_LEGACY) {
		/* the old worker drains its listener itself on SIGTERM */
		if (s->nret == (int)(sizeof(s->ret) / sizeof(s->ret[0])))
			forget_retired(s, s->ret[0].at_ms);
		s->ret[s->nret].cookie = sockmig_cookie(old.fd);
		s->ret[s->nret++].at_ms = burst_now_ms();
		close(old.fd);
	} else if (s->o->strategy == ST_ATTACH) {
		/* closed without warning (here and in the worker at SIGTERM):
		 * only attach's reference keeps it, until attach drains it */
		storm_watch_poll(s, false);
		storm_attach_overdue(s, 5000000000ull);
		if (s->npend < (int)(sizeof(s->pend) / sizeof(s->pend[0]))) {
			s->pend[s->npend].cookie = sockmig_cookie(old.fd);
			s->pend[s->npend++].at_ns = burst_now_ns();
		}
		close(old.fd);
	} else if (s->o->strategy == ST_SHIM) {
		/* the worker closes its own listener at SIGTERM */
		storm_watch_poll(s, false);
	} else {
		close(old.fd);
	}
	kill(old.pid, SIGTERM);
	s->oldest = (s->oldest + 1) % s->o->workers;
	s->r->restarts++;
	return 0;
}

static void reap(struct storm *s, bool block)
{
	pid_t pid;

	while ((pid = waitpid(-1, NULL, block ? 0 : WNOHANG)) > 0)
		if (pid == s->attach) {
			s->attach = 0;
			s->attach_died = true;
		}
}

static void progress_line(const struct lg_result *r, void *arg)
{
	uint64_t done = 0;

	for (int k = 0; k < LG_NOUTCOMES; k++)
		done += r->count[k];
	fprintf(stderr, "\r%-8s %10llu connections %10llu ok %6llu not ok  %5.1f s ",
		(const char *)arg, (unsigned long long)r->started,
		(unsigned long long)r->count[LG_OK], (unsigned long long)(done - r->count[LG_OK]),
		r->elapsed);
}

int storm_start_load(const struct storm *s, double secs, uint64_t conns, pid_t *pid)
{
	const struct storm_opts *o = s->o;
	struct lg_opts lo = {0};
	int p[2];

	if (pipe(p) < 0)
		return -1;
	*pid = fork();
	if (*pid < 0)
		return -1;
	if (*pid == 0) {
		struct lg_result *res = calloc(1, sizeof(*res));

		close(p[0]);
		storm_close_listeners(s, -1);
		lo.dstlen = burst_addr(o->family, o->port, &lo.dst);
		lo.max_conns = conns;
		lo.max_secs = secs;
		lo.concurrency = o->concurrency;
		lo.rate = o->rate;
		lo.request = BURST_REQUEST;
		lo.request_len = strlen(BURST_REQUEST);
		lo.reply_len = strlen(BURST_REPLY);
		lo.timeout_ms = 5000;
		if (o->progress && isatty(STDERR_FILENO)) {
			lo.progress = progress_line;
			lo.progress_arg = (void *)storm_strategy_str(o->strategy);
		}
		if (!res || lg_run(&lo, res) < 0)
			_exit(1);
		if (lo.progress)
			fputs("\r\033[K", stderr);
		_exit(burst_write_full(p[1], res, sizeof(*res)) ? 0 : 1);
	}
	close(p[1]);
	return p[0];
}

int storm_netns_setup(const struct storm_opts *o, char *err, size_t errlen)
{
	int rc;

	if (unshare(CLONE_NEWNET) < 0) {
		snprintf(err, errlen, "cannot create a network namespace: %s (run as root)",
			 strerror(errno));
		return -1;
	}
	if (sockmig_lo_up() < 0) {
		snprintf(err, errlen, "cannot set up the network namespace");
		return -1;
	}
	rc = burst_migrate_req(o->strategy == ST_SYSCTL);
	if (rc < 0) {
		snprintf(err, errlen, "cannot set net.ipv4.tcp_migrate_req: %s",
			 rc == -ENOENT ? "this kernel has no such sysctl (it came in Linux 5.14)"
				       : strerror(-rc));
		return -1;
	}
	burst_sysctl("net/core/somaxconn", "65535");
	return 0;
}

int storm_open_group(struct storm *s, int fd)
{
	struct sockmig_probe p = {0};
	SOCKMIG_OPTS(sockmig_group_opts, go, .wake_targets = SOCKMIG_WAKE_ALWAYS);

	if (s->o->strategy == ST_LEGACY)
		go.policy = SOCKMIG_POLICY_LEGACY;

	/* ask the probe once here, not at the first drain */
	if (sockmig_probe(&p) == 0 && p.migrate_wakeup == SOCKMIG_YES)
		go.wake_targets = SOCKMIG_WAKE_NEVER;
	s->g = sockmig_group_open(fd, &go);
	if (!s->g) {
		snprintf(s->r->error, sizeof(s->r->error), "%s", sockmig_last_error());
		return -1;
	}
	return 0;
}

void storm_stop_all(struct storm *s)
{
	if (s->attach > 0) {
		struct rusage ru = {0};

		kill(s->attach, SIGTERM);
		if (wait4(s->attach, NULL, 0, &ru) == s->attach)
			s->r->attach_cpu_ms =
				(uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
				(uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
		s->attach = 0;
	}
	if (s->run > 0) {
		kill(s->run, SIGTERM);
		waitpid(s->run, NULL, 0); /* its output pipe stays open meanwhile */
		s->run = 0;
	}
	if (s->h) {
		sockmig_holder_close(s->h, false);
		s->h = NULL;
	}
	for (int i = 0; i < s->o->workers; i++) {
		if (s->w[i].fd >= 0)
			close(s->w[i].fd);
		if (s->w[i].pid > 0)
			kill(s->w[i].pid, SIGTERM);
	}
	reap(s, true);
	if (s->watch) { /* attach and the shim leave their group pinned */
		sockmig_group_destroy(s->watch);
		sockmig_group_close(s->watch);
		s->watch = NULL;
	}
	if (s->rep.fd >= 0)
		close(s->rep.fd);
	if (s->rep_w >= 0)
		close(s->rep_w);
	s->rep.fd = s->rep_w = -1;
	free(s->mbuf);
	free(s->seen);
	s->mbuf = NULL;
	s->seen = NULL;
}

static void storm_child(const struct storm_opts *o, struct storm_result *r)
{
	struct storm *s = calloc(1, sizeof(*s));
	struct sockmig_netstat ns0, ns1;
	unsigned long long next, now;
	double period = o->restart_rate > 0 ? 1000.0 / o->restart_rate : 0;
	struct pollfd pfd[2];
	pid_t lpid;
	int rfd, probe_fd;

	if (!s || storm_netns_setup(o, r->error, sizeof(r->error)) < 0)
		return;
	s->o = o;
	s->r = r;
	s->gen = 1;
	s->rep.fd = s->rep_w = -1;
	for (int i = 0; i < o->workers; i++)
		s->w[i].fd = -1;
	if (o->strategy == ST_LEGACY && !(legacy_stats = storm_legacy_stats_new())) {
		snprintf(r->error, sizeof(r->error), "cannot map the drain counters");
		goto out;
	}
	if (o->strategy == ST_POLICY || o->strategy == ST_HOLDER || o->strategy == ST_LEGACY) {
		probe_fd = burst_listener(o->family, o->port, 16, 0);
		if (probe_fd < 0 || storm_open_group(s, probe_fd) < 0)
			goto out;
		close(probe_fd);
	}
	if (o->strategy == ST_HOLDER) {
		struct sockaddr_storage ss;
		socklen_t len = burst_addr(o->family, o->port, &ss);

		s->h = sockmig_holder_open((struct sockaddr *)&ss, len, NULL);
		if (!s->h) {
			snprintf(r->error, sizeof(r->error), "%s", sockmig_last_error());
			goto out;
		}
	}
	if (o->strategy == ST_SHIM && (s->rep_w = storm_lines_open(s)) < 0)
		goto out;
	if (o->strategy == ST_RUN || o->strategy == ST_HANDOFF) {
		if (storm_start_run(s) < 0)
			goto out;
	} else {
		for (int i = 0; i < o->workers; i++)
			if (storm_start_worker(s, &s->w[i]) < 0)
				goto out;
	}
	if (o->strategy == ST_ATTACH && storm_start_attach(s) < 0)
		goto out;
	if ((o->strategy == ST_ATTACH || o->strategy == ST_SHIM) && storm_watch_open(s) < 0)
		goto out;
	sockmig_netstat_read(&ns0);
	rfd = storm_start_load(s, o->max_secs, o->max_conns, &lpid);
	if (rfd < 0) {
		snprintf(r->error, sizeof(r->error), "cannot start the load generator");
		goto out;
	}
	next = burst_now_ms() + (unsigned long long)period;
	pfd[0].fd = rfd;
	pfd[0].events = POLLIN;
	pfd[1].events = POLLIN;
	for (;;) {
		now = burst_now_ms();
		int wait = period > 0 ? (next > now ? (int)(next - now) : 0) : 1000;

		pfd[1].fd = s->rep.eof ? -1 : s->rep.fd;
		pfd[0].revents = pfd[1].revents = 0;
		if (poll(pfd, 2, wait) > 0) {
			if (pfd[0].revents)
				break;
			storm_lines_read(s, 0);
			continue;
		}
		now = burst_now_ms();
		if (period > 0 && now >= next) {
			if (o->strategy == ST_RUN || o->strategy == ST_HANDOFF)
				kill(s->run, SIGHUP), s->r->restarts++;
			else if (o->strategy == ST_STOPSTART || o->strategy == ST_HOLDER)
				restart_all(s);
			else
				restart_one(s);
			next += (unsigned long long)period;
			if (next < now)
				next = now +
				       (unsigned long long)period; /* fell behind: no bursts */
			if (s->g)
				forget_retired(s, now - RETIRE_AFTER_MS);
		}
		if (o->strategy != ST_RUN && o->strategy != ST_HANDOFF)
			reap(s, false);
	}
	if (!burst_read_full(rfd, &r->load, sizeof(r->load)))
		snprintf(r->error, sizeof(r->error), "the load generator failed");
	close(rfd);
	waitpid(lpid, NULL, 0);
	if (o->strategy == ST_ATTACH) {
		/* the last old listeners: attach drains them at its next scan */
		for (int i = 0; i < 60 && s->npend; i++) {
			storm_lines_read(s, 50);
			storm_attach_overdue(s, 1000000000ull);
		}
		storm_attach_overdue(s, 0);
		if (s->attach_died)
			snprintf(r->error, sizeof(r->error),
				 "sockmig attach exited during the run");
	}
	if (o->strategy == ST_SHIM) {
		for (int i = 0; i < 60 && s->closed < s->r->restarts; i++)
			storm_lines_read(s, 50);
		storm_lines_read(s, 0);
		/* a close that was not a drain (or not yet done) */
		s->r->restart_errors += s->r->restarts -
					(s->drained < s->r->restarts ? s->drained : s->r->restarts);
	}
	if (o->strategy == ST_RUN || o->strategy == ST_HANDOFF) {
		/* the reloads done (SIGHUPs during a reload are one reload) */
		storm_lines_read(s, 0);
		s->r->restarts = s->gens_ready > 1 ? s->gens_ready - 1 : 0;
	}
	/* let the last requests of drained members move before counting */
	if ((s->g && s->nret) || s->watch)
		burst_sleep_ms(100);
	sockmig_netstat_read(&ns1);
	sockmig_netstat_delta(&ns0, &ns1, &r->netstat);
	storm_watch_poll(s, true);
	if (legacy_stats) {
		struct storm_legacy_stats ls;

		/* the last old workers may still be draining */
		burst_sleep_ms(200);
		storm_legacy_stats_read(legacy_stats, &ls);
		r->drain_us = ls.drain_us;
		r->legacy_accepted = ls.accepted;
		r->legacy_inflight = ls.inflight;
		r->legacy_abandoned = ls.abandoned;
		r->restart_errors += ls.errors;
	}
out:
	storm_stop_all(s);
	storm_legacy_stats_free(legacy_stats);
	legacy_stats = NULL;
	if (s->g) {
		forget_retired(s, ~0ull);
		for (int i = 0; i < o->workers; i++)
			if (s->w[i].fd >= 0)
				forget_member(s, sockmig_cookie(s->w[i].fd));
		sockmig_group_destroy(s->g);
		sockmig_group_close(s->g);
	}
	free(s);
}

struct in_child {
	void (*fn)(const struct storm_opts *o, void *res);
	const struct storm_opts *o;
	void *res;
};

static void in_child(void *arg)
{
	const struct in_child *c = arg;

	c->fn(c->o, c->res);
}

int storm_in_child(void (*fn)(const struct storm_opts *, void *), const struct storm_opts *o,
		   void *res, size_t len, char *err, size_t errlen)
{
	struct in_child c = {fn, o, res};

	return burst_in_child(in_child, &c, res, len, err, errlen);
}

static void storm_child_fn(const struct storm_opts *o, void *res)
{
	storm_child(o, res);
}

int storm_run(const struct storm_opts *o, struct storm_result *r)
{
	memset(r, 0, sizeof(*r));
	if (o->workers < 1 || o->workers > MAX_WORKERS || o->strategy >= ST_NSTRATEGIES) {
		snprintf(r->error, sizeof(r->error), "bad options");
		return -1;
	}
	return storm_in_child(storm_child_fn, o, r, sizeof(*r), r->error, sizeof(r->error));
}
