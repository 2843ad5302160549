/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The restart storm's own state and the functions its files share (not for
 * cli/ or tests/: storm.h is the storm's interface). The files:
 *   storm.c         the supervisor: workers started and restarted, the
 *                   load generator, one run in a netns of its own;
 *   storm_worker.c  the reference server a worker runs;
 *   storm_helpers.c the helper processes (sockmig attach, sockmig run,
 *                   workers exec'd under the shim), their lines, and the
 *                   counters of a group the storm does not manage;
 *   storm_cost.c    sockmig bench cost: the policy's accept rate and its
 *                   program's run time;
 *   storm_legacy.c  the legacy strategy's drain in the workers.
 */
#ifndef SOCKMIG_BENCH_STORM_PRIV_H
#define SOCKMIG_BENCH_STORM_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "storm.h"
#include "storm_legacy.h"

#define MAX_WORKERS 256

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

/* storm.c */
/* In a forked child: close the supervisor's copies of the listeners, but
 * @keep. A copy left open would keep a "closed" listener alive, unserved. */
void storm_close_listeners(const struct storm *s, int keep);
int storm_start_worker(struct storm *s, struct worker *w);
/* Fork the load generator; returns the read end of its result pipe. */
int storm_start_load(const struct storm *s, double secs, uint64_t conns, pid_t *pid);
int storm_netns_setup(const struct storm_opts *o, char *err, size_t errlen);
int storm_open_group(struct storm *s, int fd);
void storm_stop_all(struct storm *s);
/* Run @fn in a forked child; its struct comes back through a pipe. */
int storm_in_child(void (*fn)(const struct storm_opts *, void *), const struct storm_opts *o,
		   void *res, size_t len, char *err, size_t errlen);

/* storm_worker.c: serve BURST_REPLY to every connection on @lfd until
 * SIGTERM, then close the listener and finish the connections already
 * accepted (2 s at most). Legacy: @g, the worker's own handle of the group,
 * drains @lfd first, counting in @ls. Does not return. */
void storm_worker_serve(int lfd, struct sockmig_group *g, struct storm_legacy_stats *ls);

/* storm_helpers.c */
/* Read what @s->rep has now (waiting up to @wait_ms for it), line by line. */
void storm_lines_read(struct storm *s, int wait_ms);
/* A pipe for a helper's output: the read end in @s->rep (non-blocking),
 * the write end returned. Both close on exec. */
int storm_lines_open(struct storm *s);
void storm_attach_overdue(struct storm *s, uint64_t older_than_ns);
int storm_watch_open(struct storm *s);
void storm_watch_poll(struct storm *s, bool final);
int storm_start_shim_worker(struct storm *s, struct worker *w);
int storm_start_attach(struct storm *s);
int storm_start_run(struct storm *s);

#endif
