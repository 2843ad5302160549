// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The reference server and its restart storm; see storm.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "burst.h"
#include "storm.h"
#include "storm_legacy.h"

#define MAX_WORKERS	256
#define MAX_FD		65536
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

/* ---- the worker ---------------------------------------------------------- */

static volatile sig_atomic_t worker_stop;
/* legacy: the worker's own handle of the group, and where drains count */
static struct sockmig_group *worker_group;
static struct storm_legacy_stats *legacy_stats;
static unsigned short worker_got[MAX_FD];
/* an exec'd worker of the shim strategy: "ready" and "closed" on stderr */
static bool worker_report;

/* One line on stderr in one write(): the lines of every worker share a pipe. */
static void worker_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void worker_say(const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && write(STDERR_FILENO, buf, (size_t)n) < 0) {
		/* the storm is gone: nobody to tell */
	}
}

struct worker_conns {
	int ep;
	_Atomic int nconn; /* a drain thread adopts too */
};

/* Serve @c from now on (accepted from the listener, or by a drain). */
static int worker_adopt(int c, void *arg)
{
	struct worker_conns *w = arg;
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = c};

	if (c >= MAX_FD) {
		close(c);
		return -EMFILE;
	}
	fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
	worker_got[c] = 0;
	epoll_ctl(w->ep, EPOLL_CTL_ADD, c, &ev);
	w->nconn++;
	return 0;
}

static void on_term(int sig)
{
	(void)sig;
	worker_stop = 1;
}

/* Serve BURST_REPLY to every connection on @lfd until SIGTERM, then close
 * the listener and finish the connections already accepted (2 s at most). */
static void worker_main(int lfd)
{
	unsigned short *got = worker_got;
	struct sigaction sa = {.sa_handler = on_term};
	struct epoll_event ev, evs[256];
	const size_t reqlen = strlen(BURST_REQUEST), replen = strlen(BURST_REPLY);
	unsigned long long deadline = 0;
	struct worker_conns w = {0};
	struct storm_legacy_drain *drain = NULL;
	int ep, n, fd;

	sigaction(SIGTERM, &sa, NULL);
	ep = w.ep = epoll_create1(EPOLL_CLOEXEC);
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		_exit(1);
	for (;;) {
		if (worker_stop && lfd >= 0 && !drain) {
			epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);
			/* legacy: a thread drains it while this loop serves */
			if (worker_group)
				drain = storm_legacy_drain_start(worker_group, lfd, worker_adopt,
								 &w, legacy_stats);
		}
		if (worker_stop && lfd >= 0 && storm_legacy_drain_end(drain)) {
			uint64_t t0 = burst_now_ns();

			drain = NULL;
			close(lfd); /* under the shim: its drain */
			if (worker_report)
				worker_say("closed %d %" PRIu64 "\n", (int)getpid(),
					   (uint64_t)((burst_now_ns() - t0) / 1000));
			lfd = -1;
			deadline = burst_now_ms() + 2000;
		}
		if (lfd < 0 && (w.nconn == 0 || burst_now_ms() > deadline))
			_exit(0);
		n = epoll_wait(ep, evs, 256, 50);
		for (int i = 0; i < n; i++) {
			fd = evs[i].data.fd;
			if (fd == lfd) {
				int c;

				while ((c = accept4(lfd, NULL, NULL,
						    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
					worker_adopt(c, &w);
				continue;
			}
			char buf[512];
			ssize_t r = read(fd, buf, sizeof(buf));

			if (r > 0)
				got[fd] += (unsigned short)r;
			if (r > 0 && got[fd] >= reqlen) {
				if (write(fd, BURST_REPLY, replen) < 0) {
					/* the client is gone; nothing to answer */
				}
			} else if (r < 0 && errno == EAGAIN) {
				continue;
			}
			close(fd); /* also drops it from the epoll set */
			w.nconn--;
		}
	}
}

/* ---- the supervisor --------------------------------------------------------- */

struct worker {
	pid_t pid;
	int fd;		 /* the supervisor's copy of its listener; -1: exec'd */
	uint64_t cookie; /* exec'd (shim): its listener's, as it said */
};

/* The lines a helper process writes on a pipe: attach's stdout, the shim
 * workers' stderr, run's stdout. */
struct lines {
	int fd;
	bool eof;
	size_t len;
	char buf[8192];
};

/* A closed listener that attach has not drained yet: since when. */
struct pending {
	uint64_t cookie;
	uint64_t at_ns;
};

/* The last counters read of a member of a group that the storm does not
 * manage (attach, shim): they go when the member leaves. */
struct seen {
	uint64_t cookie, in, out, deferred, cancel;
	bool live;
};

#define MAX_SEEN 4096
#define REG_RING 4096

struct retired {
	uint64_t cookie;
	unsigned long long at_ms;
};

struct storm {
	const struct storm_opts *o;
	struct storm_result *r;
	struct sockmig_group *g;
	struct worker w[MAX_WORKERS];
	int oldest;
	uint32_t gen;
	struct retired ret[4096];
	int nret;
	struct sockmig_holder *h;
	pid_t run;    /* the run strategy's sockmig run */
	pid_t attach; /* the attach strategy's sockmig attach */
	bool attach_died;
	struct lines rep; /* attach's or run's stdout; the shim workers' stderr */
	int rep_w;	  /* shim: the write end, each worker's stderr */
	/* attach, shim: the group, opened by name, for its counters */
	struct sockmig_group *watch;
	struct sockmig_member_info *mbuf;
	struct seen *seen;
	int nseen;
	uint64_t tot_in, tot_out, tot_deferred, tot_cancel;
	struct pending pend[4096];
	int npend;
	int registered;		/* attach: listeners it registered */
	uint64_t reg[REG_RING]; /* the last of them */
	uint64_t nreg;
	pid_t ready_pid;	  /* shim: the last worker that said it listens */
	uint64_t ready_cookie;	  /* and its listener */
	uint64_t closed, drained; /* shim: old listeners closed, and drained */
	uint64_t gens_ready;	  /* run: generations ready (the first, reloads) */
};

/* In a forked child: close the supervisor's copies of the listeners, but
 * @keep. A copy left open would keep a "closed" listener alive, unserved. */
static void close_listeners(const struct storm *s, int keep)
{
	for (int i = 0; i < s->o->workers; i++)
		if (s->w[i].fd >= 0 && s->w[i].fd != keep)
			close(s->w[i].fd);
}

static int start_shim_worker(struct storm *s, struct worker *w);

static int start_worker(struct storm *s, struct worker *w)
{
	int fd;

	if (s->o->strategy == ST_SHIM)
		return start_shim_worker(s, w);
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
		close_listeners(s, fd);
		if (s->g)
			sockmig_group_close(s->g);
		if (s->o->strategy == ST_LEGACY) {
			/* a handle of its own: the group lock is per open file */
			SOCKMIG_OPTS(sockmig_group_opts, go, .policy = SOCKMIG_POLICY_LEGACY);

			worker_group = sockmig_group_open(fd, &go);
		}
		worker_main(fd);
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

/* ---- helper processes' lines, and a group the storm does not manage -------- */

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

/* Read what @s->rep has now (waiting up to @wait_ms for it), line by line. */
static void lines_read(struct storm *s, int wait_ms)
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

/* A pipe for a helper's output: the read end in @s->rep (non-blocking),
 * the write end returned. Both close on exec. */
static int lines_open(struct storm *s)
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
static void attach_overdue(struct storm *s, uint64_t older_than_ns)
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
static int watch_open(struct storm *s)
{
	char name[SOCKMIG_NAME_MAX];
	struct in6_addr a6 = IN6ADDR_LOOPBACK_INIT;
	struct in_addr a4 = {.s_addr = htonl(INADDR_LOOPBACK)};
	struct stat st;

	if (stat("/proc/thread-self/ns/net", &st) < 0 ||
	    sockmig_group_name_for(s->o->family, s->o->family == AF_INET6 ? (void *)&a6 : &a4,
				   s->o->port, st.st_ino, name, sizeof(name)) < 0)
		return -1;
	s->mbuf = calloc(MAX_SEEN, sizeof(*s->mbuf));
	s->seen = calloc(MAX_SEEN, sizeof(*s->seen));
	s->watch = sockmig_group_open_name(name, NULL);
	if (!s->watch || !s->mbuf || !s->seen) {
		snprintf(s->r->error, sizeof(s->r->error), "group %s: %s", name,
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
static void watch_poll(struct storm *s, bool final)
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
static int start_shim_worker(struct storm *s, struct worker *w)
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
		lines_read(s, 50);
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
static int start_attach(struct storm *s)
{
	char port[16];
	unsigned long long until = burst_now_ms() + 10000;
	int w = lines_open(s);

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
		close_listeners(s, -1);
		if (dup2(w, STDOUT_FILENO) < 0 || prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
			_exit(127);
		execl("/proc/self/exe", "sockmig", "attach", "--port", port, "--foreground",
		      (char *)NULL);
		_exit(127);
	}
	close(w);
	while (s->registered < s->o->workers && burst_now_ms() < until && !s->rep.eof)
		lines_read(s, 50);
	if (s->registered < s->o->workers) {
		snprintf(s->r->error, sizeof(s->r->error),
			 "sockmig attach registered %d of %d listeners%s", s->registered,
			 s->o->workers, s->rep.eof ? " and exited" : " in 10 s");
		return -1;
	}
	return 0;
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
		if (start_worker(s, &s->w[i]) < 0)
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
	if (start_worker(s, &s->w[s->oldest]) < 0) {
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
		watch_poll(s, false);
		attach_overdue(s, 5000000000ull);
		if (s->npend < (int)(sizeof(s->pend) / sizeof(s->pend[0]))) {
			s->pend[s->npend].cookie = sockmig_cookie(old.fd);
			s->pend[s->npend++].at_ns = burst_now_ns();
		}
		close(old.fd);
	} else if (s->o->strategy == ST_SHIM) {
		/* the worker closes its own listener at SIGTERM */
		watch_poll(s, false);
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

static bool read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

static bool write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = write(fd, (const char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		done += (size_t)n;
	}
	return true;
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

void storm_worker(int family, int port, bool report)
{
	pid_t parent = getppid();
	int fd;

	/* bounded by its supervisor: SIGTERM (a graceful stop) when it dies,
	 * and no start at all if it died before this line */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || parent == 1 || getppid() != parent)
		_exit(1);
	fd = burst_listener(family, port, 4096, 0);
	if (fd < 0)
		_exit(1);
	worker_report = report;
	if (report)
		worker_say("ready %d %" PRIu64 "\n", (int)getpid(), (uint64_t)sockmig_cookie(fd));
	worker_main(fd);
}

/* The run strategy: the workers are `sockmig run`'s, each with a listener
 * of its own; restarts are its SIGHUP reloads. The handoff strategy: the
 * same, stop-then-start, with run's one listener put in place of the
 * workers' by the preload shim. */
static int start_run(struct storm *s)
{
	char port[16], family[8], workers[16];
	const char *lo = s->o->family == AF_INET6 ? "::1" : "127.0.0.1";

	snprintf(port, sizeof(port), "%d", s->o->port);
	snprintf(family, sizeof(family), "%d", s->o->family == AF_INET6 ? 6 : 4);
	snprintf(workers, sizeof(workers), "%d", s->o->workers);
	int out = lines_open(s); /* its "generation N ready" lines count reloads */

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
		lines_read(s, 10);
	}
	snprintf(s->r->error, sizeof(s->r->error), "sockmig run did not start its workers");
	return -1;
}

/* Fork the load generator; returns the read end of its result pipe. */
static int start_load(const struct storm *s, double secs, uint64_t conns, pid_t *pid)
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
		close_listeners(s, -1);
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
		_exit(write_full(p[1], res, sizeof(*res)) ? 0 : 1);
	}
	close(p[1]);
	return p[0];
}

static int netns_setup(const struct storm_opts *o, char *err, size_t errlen)
{
	if (unshare(CLONE_NEWNET) < 0) {
		snprintf(err, errlen, "cannot create a network namespace: %s (run as root)",
			 strerror(errno));
		return -1;
	}
	if (burst_lo_up() < 0 ||
	    burst_sysctl("net/ipv4/tcp_migrate_req", o->strategy == ST_SYSCTL ? "1" : "0") < 0) {
		snprintf(err, errlen, "cannot set up the network namespace");
		return -1;
	}
	burst_sysctl("net/core/somaxconn", "65535");
	return 0;
}

static int open_group(struct storm *s, int fd)
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

static void stop_all(struct storm *s)
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

	if (!s || netns_setup(o, r->error, sizeof(r->error)) < 0)
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
		if (probe_fd < 0 || open_group(s, probe_fd) < 0)
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
	if (o->strategy == ST_SHIM && (s->rep_w = lines_open(s)) < 0)
		goto out;
	if (o->strategy == ST_RUN || o->strategy == ST_HANDOFF) {
		if (start_run(s) < 0)
			goto out;
	} else {
		for (int i = 0; i < o->workers; i++)
			if (start_worker(s, &s->w[i]) < 0)
				goto out;
	}
	if (o->strategy == ST_ATTACH && start_attach(s) < 0)
		goto out;
	if ((o->strategy == ST_ATTACH || o->strategy == ST_SHIM) && watch_open(s) < 0)
		goto out;
	sockmig_netstat_read(&ns0);
	rfd = start_load(s, o->max_secs, o->max_conns, &lpid);
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
			lines_read(s, 0);
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
	if (!read_full(rfd, &r->load, sizeof(r->load)))
		snprintf(r->error, sizeof(r->error), "the load generator failed");
	close(rfd);
	waitpid(lpid, NULL, 0);
	if (o->strategy == ST_ATTACH) {
		/* the last old listeners: attach drains them at its next scan */
		for (int i = 0; i < 60 && s->npend; i++) {
			lines_read(s, 50);
			attach_overdue(s, 1000000000ull);
		}
		attach_overdue(s, 0);
		if (s->attach_died)
			snprintf(r->error, sizeof(r->error),
				 "sockmig attach exited during the run");
	}
	if (o->strategy == ST_SHIM) {
		for (int i = 0; i < 60 && s->closed < s->r->restarts; i++)
			lines_read(s, 50);
		lines_read(s, 0);
		/* a close that was not a drain (or not yet done) */
		s->r->restart_errors += s->r->restarts -
					(s->drained < s->r->restarts ? s->drained : s->r->restarts);
	}
	if (o->strategy == ST_RUN || o->strategy == ST_HANDOFF) {
		/* the reloads done (SIGHUPs during a reload are one reload) */
		lines_read(s, 0);
		s->r->restarts = s->gens_ready > 1 ? s->gens_ready - 1 : 0;
	}
	/* let the last requests of drained members move before counting */
	if ((s->g && s->nret) || s->watch)
		burst_sleep_ms(100);
	sockmig_netstat_read(&ns1);
	sockmig_netstat_delta(&ns0, &ns1, &r->netstat);
	watch_poll(s, true);
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
	stop_all(s);
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

/* Run @fn in a forked child; its struct comes back through a pipe. */
static int in_child(void (*fn)(const struct storm_opts *, void *), const struct storm_opts *o,
		    void *res, size_t len, char *err, size_t errlen)
{
	int p[2], status;
	pid_t pid;

	if (pipe(p) < 0)
		return -1;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(p[0]);
		fn(o, res);
		_exit(write_full(p[1], res, len) ? 0 : 1);
	}
	close(p[1]);
	if (!read_full(p[0], res, len) && !err[0])
		snprintf(err, errlen, "the benchmark process died");
	close(p[0]);
	waitpid(pid, &status, 0);
	return err[0] ? -1 : 0;
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
	return in_child(storm_child_fn, o, r, sizeof(*r), r->error, sizeof(r->error));
}

/* ---- policy cost ------------------------------------------------------------ */

struct cost_args {
	struct cost_result r;
	int phases;
	double phase_secs;
};

/* The run time the kernel counted for the group's program (bpf_stats). */
struct prog_stats {
	uint64_t ns, runs;
};

/* The program pinned for group @g, or -1 with @err set. */
static int prog_of(struct sockmig_group *g, char *err, size_t errlen)
{
	char pin[4096];
	int fd;

	snprintf(pin, sizeof(pin), "%s/prog", sockmig_group_path(g));
	fd = bpf_obj_get(pin);
	if (fd < 0)
		snprintf(err, errlen, "cannot open the group's program %s: %s", pin,
			 strerror(errno));
	return fd;
}

static int prog_stats_read(int fd, struct prog_stats *st, char *err, size_t errlen)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0) {
		snprintf(err, errlen, "cannot read the program's run-time statistics: %s",
			 strerror(errno));
		return -1;
	}
	st->ns = info.run_time_ns;
	st->runs = info.run_cnt;
	return 0;
}

/* An sk_reuseport program that only returns SK_PASS: what any program costs
 * here (the call and the statistics' clock reads), the floor under the
 * policy's own cost. Its fd, or -1 with @err set. */
static int empty_prog(char *err, size_t errlen)
{
	const struct bpf_insn insns[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = SK_PASS},
		{.code = BPF_JMP | BPF_EXIT},
	};
	struct bpf_prog_load_opts po;
	int fd;

	memset(&po, 0, sizeof(po));
	po.sz = sizeof(po);
	po.expected_attach_type = BPF_SK_REUSEPORT_SELECT;
	fd = bpf_prog_load(BPF_PROG_TYPE_SK_REUSEPORT, "sm_empty", "Dual BSD/GPL", insns,
			   sizeof(insns) / sizeof(insns[0]), &po);

	if (fd < 0)
		snprintf(err, errlen, "cannot load an empty sk_reuseport program: %s",
			 strerror(errno));
	return fd;
}

/* Members of the migration step, and the clients queued on them. */
#define MIG_LISTENERS 4
#define MIG_CLIENTS   2000

/*
 * The migration path's cost: MIG_LISTENERS members of a group of their own
 * (the next port), none accepting, MIG_CLIENTS connections queued on them;
 * then every member but the last closes, and the kernel migrates each
 * queued child under the policy (one run per child, kind "established").
 * The stats' delta over the closes is the migration runs' alone: no SYN
 * arrives meanwhile.
 */
static int cost_migration(const struct storm_opts *o, int prog_port, struct cost_result *r)
{
	SOCKMIG_OPTS(sockmig_member_opts, mo, .role = SOCKMIG_ROLE_ACTIVE, .generation = 1);
	struct sockmig_member_info mi[MIG_LISTENERS];
	struct burst *c = calloc(1, sizeof(*c));
	struct sockmig_group *g = NULL;
	struct prog_stats s0, s1;
	int l[MIG_LISTENERS], pfd = -1, queued = 0, n, ret = -1;

	for (int i = 0; i < MIG_LISTENERS; i++)
		l[i] = -1;
	if (!c)
		goto out;
	for (int i = 0; i < MIG_LISTENERS; i++) {
		l[i] = burst_listener(o->family, prog_port, MIG_CLIENTS, 0);
		if (l[i] < 0) {
			snprintf(r->error, sizeof(r->error), "migration step: no listener: %s",
				 strerror(-l[i]));
			goto out;
		}
	}
	g = sockmig_group_open(l[0], NULL);
	for (int i = 0; g && i < MIG_LISTENERS; i++)
		if (sockmig_member_add(g, l[i], &mo) < 0) {
			sockmig_group_destroy(g);
			sockmig_group_close(g);
			g = NULL;
		}
	if (!g) {
		snprintf(r->error, sizeof(r->error), "migration step: %s", sockmig_last_error());
		goto out;
	}
	pfd = prog_of(g, r->error, sizeof(r->error));
	if (pfd < 0)
		goto out;
	if (burst_start(c, o->family, prog_port, MIG_CLIENTS, false) < 0 ||
	    burst_connected(c, 5000) != MIG_CLIENTS) {
		snprintf(r->error, sizeof(r->error), "migration step: the clients did not connect");
		goto out;
	}
	for (int tries = 0; tries < 500 && queued != MIG_CLIENTS; tries++) {
		queued = 0;
		for (int i = 0; i < MIG_LISTENERS; i++)
			queued += burst_accept_queue(l[i]);
		if (queued != MIG_CLIENTS)
			burst_sleep_ms(10);
	}
	if (queued != MIG_CLIENTS) {
		snprintf(r->error, sizeof(r->error), "migration step: %d of %d clients queued",
			 queued, MIG_CLIENTS);
		goto out;
	}
	if (prog_stats_read(pfd, &s0, r->error, sizeof(r->error)) < 0)
		goto out;
	for (int i = 0; i < MIG_LISTENERS - 1; i++) {
		close(l[i]);
		l[i] = -1;
	}
	if (prog_stats_read(pfd, &s1, r->error, sizeof(r->error)) < 0)
		goto out;
	r->mig_ns = s1.ns - s0.ns;
	r->mig_runs = s1.runs - s0.runs;
	n = sockmig_members(g, mi, MIG_LISTENERS);
	for (int i = 0; i < n && i < MIG_LISTENERS; i++)
		r->migrated += mi[i].counters.migrated_out[SOCKMIG_KIND_ESTABLISHED];
	ret = 0;
out:
	for (int i = 0; i < MIG_LISTENERS; i++)
		if (l[i] >= 0)
			close(l[i]);
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	if (pfd >= 0)
		close(pfd);
	if (c)
		burst_close(c);
	free(c);
	return ret;
}

static void cost_child(const struct storm_opts *o, void *res)
{
	struct cost_args *a = res;
	struct storm_result sr = {0};
	struct storm *s = calloc(1, sizeof(*s));
	struct lg_result *lr = calloc(1, sizeof(*lr));
	struct prog_stats st0, st1;
	double secs[2] = {0}, ok[2] = {0};
	int probe_fd, rfd, stats_fd = -1, pfd = -1, efd = -1;
	pid_t lpid;

	if (!s || !lr || netns_setup(o, a->r.error, sizeof(a->r.error)) < 0)
		goto out;
	/* run_time_ns and run_cnt count while this descriptor is open */
	stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (stats_fd < 0) {
		snprintf(a->r.error, sizeof(a->r.error),
			 "cannot enable the kernel's BPF run-time statistics: %s (needs "
			 "CAP_SYS_ADMIN and Linux 5.8 or later)",
			 strerror(errno));
		goto out;
	}
	s->o = o;
	s->r = &sr;
	s->gen = 1;
	s->rep.fd = s->rep_w = -1;
	for (int i = 0; i < o->workers; i++)
		s->w[i].fd = -1;
	probe_fd = burst_listener(o->family, o->port, 16, 0);
	if (probe_fd < 0 || open_group(s, probe_fd) < 0) {
		snprintf(a->r.error, sizeof(a->r.error), "%s", sr.error);
		goto out;
	}
	close(probe_fd);
	pfd = prog_of(s->g, a->r.error, sizeof(a->r.error));
	if (pfd < 0)
		goto out;
	for (int i = 0; i < o->workers; i++)
		if (start_worker(s, &s->w[i]) < 0) {
			snprintf(a->r.error, sizeof(a->r.error), "%s", sr.error);
			goto out;
		}
	for (int ph = 0; ph < a->phases && ph < 64; ph++) {
		int on = ph % 2; /* off, on, off, on, ... */

		if (on)
			sockmig_group_attach(s->g, s->w[0].fd);
		else
			sockmig_group_detach(s->w[0].fd);
		if (on && prog_stats_read(pfd, &st0, a->r.error, sizeof(a->r.error)) < 0)
			goto out;
		rfd = start_load(s, a->phase_secs, ~0ull >> 1, &lpid);
		if (rfd < 0 || !read_full(rfd, lr, sizeof(*lr))) {
			snprintf(a->r.error, sizeof(a->r.error), "the load generator failed");
			goto out;
		}
		close(rfd);
		waitpid(lpid, NULL, 0);
		if (on && prog_stats_read(pfd, &st1, a->r.error, sizeof(a->r.error)) < 0)
			goto out;
		if (on) {
			a->r.syn_ns += st1.ns - st0.ns;
			a->r.syn_runs += st1.runs - st0.runs;
		}
		secs[on] += lr->elapsed;
		ok[on] += (double)lr->count[LG_OK];
		a->r.failed += lr->started - lr->count[LG_OK];
		a->r.phase_rate[ph] = (double)lr->count[LG_OK] / lr->elapsed;
		a->r.phases = ph + 1;
	}
	a->r.rate_off = secs[0] > 0 ? ok[0] / secs[0] : 0;
	a->r.rate_on = secs[1] > 0 ? ok[1] / secs[1] : 0;
	/* one more phase, with the empty program: the floor */
	efd = empty_prog(a->r.error, sizeof(a->r.error));
	if (efd < 0 || prog_stats_read(efd, &st0, a->r.error, sizeof(a->r.error)) < 0)
		goto out;
	if (setsockopt(s->w[0].fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &efd, sizeof(efd)) < 0) {
		snprintf(a->r.error, sizeof(a->r.error), "cannot attach the empty program: %s",
			 strerror(errno));
		goto out;
	}
	rfd = start_load(s, a->phase_secs, ~0ull >> 1, &lpid);
	if (rfd < 0 || !read_full(rfd, lr, sizeof(*lr))) {
		snprintf(a->r.error, sizeof(a->r.error), "the load generator failed");
		goto out;
	}
	close(rfd);
	waitpid(lpid, NULL, 0);
	if (prog_stats_read(efd, &st1, a->r.error, sizeof(a->r.error)) < 0)
		goto out;
	a->r.empty_ns = st1.ns - st0.ns;
	a->r.empty_runs = st1.runs - st0.runs;
	a->r.failed += lr->started - lr->count[LG_OK];
	sockmig_group_detach(s->w[0].fd);
	cost_migration(o, o->port + 1, &a->r);
out:
	if (s) {
		stop_all(s);
		if (s->g) {
			sockmig_group_destroy(s->g);
			sockmig_group_close(s->g);
		}
	}
	if (pfd >= 0)
		close(pfd);
	if (efd >= 0)
		close(efd);
	if (stats_fd >= 0)
		close(stats_fd);
	free(s);
	free(lr);
}

int storm_cost(const struct storm_opts *o, int phases, double phase_secs, struct cost_result *r)
{
	struct cost_args *a = calloc(1, sizeof(*a));
	int err;

	if (!a)
		return -1;
	a->phases = phases;
	a->phase_secs = phase_secs;
	err = in_child(cost_child, o, a, sizeof(*a), a->r.error, sizeof(a->r.error));
	*r = a->r;
	free(a);
	return err;
}
