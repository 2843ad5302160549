// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The storm's reference server: what a worker process runs, forked by the
 * supervisor or exec'd as `sockmig __storm-worker`; see storm.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "burst.h"
#include "storm_priv.h"

#define MAX_FD 65536

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

void storm_worker_serve(int lfd, struct sockmig_group *g, struct storm_legacy_stats *ls)
{
	unsigned short *got = worker_got;
	struct sigaction sa = {.sa_handler = on_term};
	struct epoll_event ev, evs[256];
	const size_t reqlen = strlen(BURST_REQUEST), replen = strlen(BURST_REPLY);
	unsigned long long deadline = 0;
	struct worker_conns w = {0};
	struct storm_legacy_drain *drain = NULL;
	int ep, n, fd;

	worker_group = g;
	legacy_stats = ls;
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
	storm_worker_serve(fd, NULL, NULL);
}
