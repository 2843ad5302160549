// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The storm's helper processes: `sockmig attach`, `sockmig run` and workers
 * exec'd under the preload shim; the lines they write, and the counters of
 * the group they make, which the storm does not manage; see storm_priv.h. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "burst.h"
#include "storm_priv.h"

static void on_line(struct storm *s, char *line)
{
	unsigned long long cookie, us;
	int pid;
	char *p;

	switch (s->o->strategy) {
	case ST_ATTACH:
		if (strncmp(line, "registered ", 11) == 0) {
			s->registered++;
			p = strstr(line, " cookie ");
			if (p && sscanf(p, " cookie %llu", &cookie) == 1)
				s->reg[s->nreg++ % REG_RING] = cookie;
		} else if (sscanf(line, "released cookie %llu:", &cookie) == 1) {
			bool drained = strstr(line, "; drained:") != NULL;

			for (int i = 0; i < s->npend; i++) {
				if (s->pend[i].cookie != cookie)
					continue;
				if (drained) {
					uint64_t us = (burst_now_ns() - s->pend[i].at_ns) / 1000;
					const char *w = strstr(line, " waited ");
					double wait_ms = 0;

					lg_hist_add(&s->r->drain_us, us);
					if (w && sscanf(w, " waited %lf ms", &wait_ms) == 1 &&
					    wait_ms * 1000 < (double)us)
						lg_hist_add(&s->r->release_us,
							    us - (uint64_t)(wait_ms * 1000));
				}
				s->pend[i] = s->pend[--s->npend];
				break;
			}
			if (!drained)
				s->r->restart_errors++;
		}
		break;
	case ST_SHIM:
		if (sscanf(line, "ready %d %llu", &pid, &cookie) == 2) {
			s->ready_pid = pid;
			s->ready_cookie = cookie;
		} else if (sscanf(line, "closed %d %llu", &pid, &us) == 2) {
			s->closed++;
			lg_hist_add(&s->r->drain_us, us);
		} else if ((p = strstr(line, "closed, last reference: ")) != NULL) {
			if (strncmp(p + 24, "drained:", 8) == 0)
				s->drained++;
		} else if (strncmp(line, "sockmig-preload: inactive", 25) == 0) {
			snprintf(s->r->error, sizeof(s->r->error), "the shim: %s", line + 17);
		} else if (strncmp(line, "sockmig-preload: ", 17) != 0) {
			fprintf(stderr, "%s\n", line); /* the worker's own complaint */
		}
		break;
	default: /* run, handoff */
		if (strncmp(line, "generation ", 11) == 0 && strstr(line, " ready in "))
			s->gens_ready++;
		break;
	}
}

void storm_lines_read(struct storm *s, int wait_ms)
{
	struct lines *l = &s->rep;
	struct pollfd pfd = {.fd = l->fd, .events = POLLIN};
	ssize_t n;
	char *nl;

	if (l->fd < 0 || l->eof || poll(&pfd, 1, wait_ms) <= 0)
		return;
	for (;;) {
		n = read(l->fd, l->buf + l->len, sizeof(l->buf) - 1 - l->len);
		if (n == 0)
			l->eof = true;
		if (n <= 0)
			break;
		l->len += (size_t)n;
		l->buf[l->len] = '\0';
		while ((nl = memchr(l->buf, '\n', l->len)) != NULL) {
			*nl = '\0';
			on_line(s, l->buf);
			l->len -= (size_t)(nl + 1 - l->buf);
			memmove(l->buf, nl + 1, l->len);
		}
		if (l->len == sizeof(l->buf) - 1)
			l->len = 0; /* a line longer than that: not one of ours */
	}
}

int storm_lines_open(struct storm *s)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	s->rep.fd = p[0];
	s->rep.len = 0;
	s->rep.eof = false;
	return p[1];
}

static bool attach_registered(const struct storm *s, uint64_t cookie)
{
	for (uint64_t i = 0; i < s->nreg && i < REG_RING; i++)
		if (s->reg[i] == cookie)
			return true;
	return false;
}

/*
 * attach: old listeners closed @older_than_ns ago and not drained. One that
 * attach never registered (it lived less than attach's scans take) had no
 * SYN steered to it by the policy: nothing to drain, counted apart. One it
 * registered and did not drain is a restart error.
 */
void storm_attach_overdue(struct storm *s, uint64_t older_than_ns)
{
	uint64_t now = burst_now_ns();

	for (int i = 0; i < s->npend; i++) {
		if (now - s->pend[i].at_ns < older_than_ns)
			continue;
		if (attach_registered(s, s->pend[i].cookie))
			s->r->restart_errors++;
		else
			s->r->attach_unregistered++;
		s->pend[i--] = s->pend[--s->npend];
	}
}

/* attach, shim: open the port's group by name, as attach and the shim name
 * it, to read its members' counters. */
int storm_watch_open(struct storm *s)
{
	struct in6_addr a6 = IN6ADDR_LOOPBACK_INIT;
	struct in_addr a4 = {.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockmig_group_id id;

	if (sockmig_group_id_make(s->o->family, s->o->family == AF_INET6 ? (void *)&a6 : &a4,
				  s->o->port, 0, &id) < 0)
		return -1;
	s->mbuf = calloc(MAX_SEEN, sizeof(*s->mbuf));
	s->seen = calloc(MAX_SEEN, sizeof(*s->seen));
	s->watch = sockmig_group_open_id(&id, NULL);
	if (!s->watch || !s->mbuf || !s->seen) {
		snprintf(s->r->error, sizeof(s->r->error), "group %s: %s", id.name,
			 sockmig_last_error());
		return -1;
	}
	return 0;
}

static void seen_fold(struct storm *s, int i)
{
	s->tot_in += s->seen[i].in;
	s->tot_out += s->seen[i].out;
	s->tot_deferred += s->seen[i].deferred;
	s->tot_cancel += s->seen[i].cancel;
	s->seen[i] = s->seen[--s->nseen];
}

/* Read the counters of every member; those of a member that left since the
 * last read are final. With @final, all of them are. */
void storm_watch_poll(struct storm *s, bool final)
{
	int n;

	if (!s->watch)
		return;
	n = sockmig_members(s->watch, s->mbuf, MAX_SEEN);
	if (n > MAX_SEEN)
		n = MAX_SEEN;
	for (int j = 0; j < s->nseen; j++)
		s->seen[j].live = false;
	for (int i = 0; i < n; i++) {
		const struct sockmig_counters *c = &s->mbuf[i].counters;
		struct seen *e = NULL;

		for (int j = 0; j < s->nseen && !e; j++)
			if (s->seen[j].cookie == s->mbuf[i].cookie)
				e = &s->seen[j];
		if (!e && s->nseen == MAX_SEEN)
			continue;
		if (!e) {
			e = &s->seen[s->nseen++];
			memset(e, 0, sizeof(*e));
			e->cookie = s->mbuf[i].cookie;
		}
		e->live = true;
		e->in = e->out = 0;
		for (int k = 0; k < SOCKMIG_KIND_MAX; k++) {
			e->in += c->migrated_in[k];
			e->out += c->migrated_out[k];
		}
		e->deferred = c->deferred;
		e->cancel = c->cancel_mismatch;
	}
	for (int j = 0; j < s->nseen; j++)
		if (final || !s->seen[j].live)
			seen_fold(s, j--);
	/* a migration counts on both sides; the shim's members leave at their
	 * close, with the counters of what left them: the targets' then tell */
	s->r->policy_migrated = (s->tot_out > s->tot_in ? s->tot_out : s->tot_in) + s->tot_deferred;
	s->r->policy_cancelled = s->tot_cancel;
}

/* shim: a worker exec'd under the preload shim, with a listener of its own;
 * returns once it listens (its "ready" line). */
int storm_start_shim_worker(struct storm *s, struct worker *w)
{
	char port[16], family[8];
	unsigned long long until = burst_now_ms() + 5000;
	pid_t pid;

	snprintf(port, sizeof(port), "%d", s->o->port);
	snprintf(family, sizeof(family), "%d", s->o->family == AF_INET6 ? 6 : 4);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (dup2(s->rep_w, STDERR_FILENO) < 0)
			_exit(127);
		setenv("LD_PRELOAD", s->o->preload, 1);
		setenv("SOCKMIG_DEBUG", "1", 1); /* its drains, one line each */
		execl("/proc/self/exe", "sockmig", "__storm-worker", family, port, "report",
		      (char *)NULL);
		_exit(127);
	}
	while (s->ready_pid != pid && burst_now_ms() < until && !s->r->error[0])
		storm_lines_read(s, 50);
	if (s->ready_pid != pid) {
		if (!s->r->error[0])
			snprintf(s->r->error, sizeof(s->r->error),
				 "a worker under the shim did not listen within 5 s");
		kill(pid, SIGKILL);
		return -1;
	}
	w->pid = pid;
	w->fd = -1;
	w->cookie = s->ready_cookie;
	return 0;
}

/* attach: `sockmig attach --port P --foreground`, the binary that runs this
 * (its defaults otherwise); returns once it registered every listener. */
int storm_start_attach(struct storm *s)
{
	char port[16];
	unsigned long long until = burst_now_ms() + 10000;
	int w = storm_lines_open(s);

	if (w < 0)
		return -1;
	snprintf(port, sizeof(port), "%d", s->o->port);
	s->attach = fork();
	if (s->attach < 0) {
		close(w);
		return -1;
	}
	if (s->attach == 0) {
		/* not a copy of the listeners: attach must see their owners let go */
		storm_close_listeners(s, -1);
		if (dup2(w, STDOUT_FILENO) < 0 || prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
			_exit(127);
		execl("/proc/self/exe", "sockmig", "attach", "--port", port, "--foreground",
		      (char *)NULL);
		_exit(127);
	}
	close(w);
	while (s->registered < s->o->workers && burst_now_ms() < until && !s->rep.eof)
		storm_lines_read(s, 50);
	if (s->registered < s->o->workers) {
		snprintf(s->r->error, sizeof(s->r->error),
			 "sockmig attach registered %d of %d listeners%s", s->registered,
			 s->o->workers, s->rep.eof ? " and exited" : " in 10 s");
		return -1;
	}
	return 0;
}

/* The run strategy: the workers are `sockmig run`'s, each with a listener
 * of its own; restarts are its SIGHUP reloads. The handoff strategy: the
 * same, stop-then-start, with run's one listener put in place of the
 * workers' by the preload shim. */
int storm_start_run(struct storm *s)
{
	char port[16], family[8], workers[16];
	const char *lo = s->o->family == AF_INET6 ? "::1" : "127.0.0.1";

	snprintf(port, sizeof(port), "%d", s->o->port);
	snprintf(family, sizeof(family), "%d", s->o->family == AF_INET6 ? 6 : 4);
	snprintf(workers, sizeof(workers), "%d", s->o->workers);
	int out = storm_lines_open(s); /* its "generation N ready" lines count reloads */

	if (out < 0)
		return -1;
	s->run = fork();
	if (s->run == 0) {
		dup2(out, STDOUT_FILENO);
		if (s->o->strategy == ST_HANDOFF)
			execl("/proc/self/exe", "sockmig", "run", "--port", port, "--workers",
			      workers, "--grace", "5", "--handoff", "--stop-start", "--addr", lo,
			      "--ready-after", "50", "--", "/proc/self/exe", "__storm-worker",
			      family, port, (char *)NULL);
		else
			execl("/proc/self/exe", "sockmig", "run", "--port", port, "--workers",
			      workers, "--grace", "5", "--", "/proc/self/exe", "__storm-worker",
			      family, port, (char *)NULL);
		_exit(127);
	}
	close(out);
	/* ready when it answers */
	for (int i = 0; i < 300; i++) {
		int fd = socket(s->o->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_storage ss;
		socklen_t len = burst_addr(s->o->family, s->o->port, &ss);
		int ok = fd >= 0 && connect(fd, (struct sockaddr *)&ss, len) == 0;

		if (fd >= 0)
			close(fd);
		if (ok)
			return 0;
		storm_lines_read(s, 10);
	}
	snprintf(s->r->error, sizeof(s->r->error), "sockmig run did not start its workers");
	return -1;
}
