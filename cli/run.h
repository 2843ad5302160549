/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sockmig run's state, shared by cli/run*.c: run.c (options, the loop,
 * reload), run_gen.c (generations), run_notify.c (sd_notify), run_report.c
 * (reports, listener checks). */
#ifndef SOCKMIG_CLI_RUN_H
#define SOCKMIG_CLI_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "attach.h"
#include "hold.h"
#include "pidfile.h"
#include "sockmig.h"

#define MAX_GENS      16
#define MAX_WORKERS   64
#define TICK_MS	      20
#define GEN_LISTENERS 16

enum gstate { G_FREE, G_STARTING, G_READY, G_STOPPING };

struct generation {
	enum gstate state;
	unsigned id;
	int nw;
	pid_t pid[MAX_WORKERS];		       /* 0: gone; -1: dead, to restart */
	unsigned long long start[MAX_WORKERS]; /* each one's start time: its identity */
	unsigned long long started, ready, stopping, kill_at;
	bool notified; /* READY=1 came */
	bool adopted;  /* a previous run's processes, not our children */
	/* its listeners, noted while its processes were alive: the policy's
	 * counters of each are read for its report */
	int nck;
	struct {
		uint64_t cookie;
		char group[SOCKMIG_NAME_MAX];
	} ck[GEN_LISTENERS];
};

/* What the generations stopped since the last report moved, by the
 * policy's counters of their listeners. */
struct run_pending {
	int n;	     /* generations */
	unsigned id; /* the last of them */
	unsigned long long took_ms;
	uint64_t out[SOCKMIG_KIND_MAX], cancelled, deferred;
};

struct runner {
	char **cmd;
	int workers, port, max_old, stop_sig;
	unsigned long long grace_ms, ready_ms;
	bool stop_start, use_holder, reload_pending, stopping;
	int listen_fd; /* --socket-activation: ours, passed to every generation */
	bool handoff;  /* and the shim in every generation puts it in place at bind() */
	char preload[512];
	unsigned long long ready_after_ms;
	struct holder h;
	struct scanner sc;
	struct generation g[MAX_GENS];
	unsigned next_id, reloads, failed_reloads;
	int notify_fd;
	char notify_name[160];
	/* a dead worker restarts at restart_at, after backoff_ms, which goes
	 * back to 100 ms once the server served 10 s since its last restart */
	unsigned long long backoff_ms, restart_at, last_restart;
	/* no generation of ours serves: start one at start_at; until one has
	 * been ready (ever_ready), give up ready_ms after the first start */
	unsigned long long start_at, first_start;
	bool ever_ready, gave_up;
	unsigned attempts;
	int last_status; /* of the last start that failed; -1: not ready in time */
	struct pidfile pf;
	char gens_path[160]; /* our generations' "PID STARTTIME", for the next run */
	bool gens_dirty;
	/* reports: the kernel's counters and the holder's hand-overs at the
	 * last one (or run's start), what stopped since */
	struct sockmig_netstat ns_mark;
	uint64_t holder_mark;
	struct run_pending pend;
	/* the server's listeners that sockmig cannot cover: looked at until */
	unsigned long long check_at;
	bool refused;	  /* one that cannot be covered nor handed off: stop */
	bool holder_late; /* --addr: the holder waits for the server's listener */
	bool addr_warned; /* said that the server is not on --addr */
};

void run_sd_notify(const char *msg);
int run_notify_open(struct runner *r);
void run_notify_read(struct runner *r);
struct generation *run_gen_of_pid(struct runner *r, pid_t pid);
struct generation *run_gen_state(struct runner *r, enum gstate st);
struct generation *run_start_generation(struct runner *r);
void run_stop_generation(struct runner *r, struct generation *g);
void run_gens_save(struct runner *r);
void run_gens_adopt(struct runner *r);
int run_adopt_listener(struct runner *r);
void run_reaped(struct runner *r, pid_t pid, int status);
void run_tick(struct runner *r);
bool run_busy(const struct runner *r);
bool run_busy_adopted(const struct runner *r);

bool run_own_ready(const struct runner *r);
int run_count_state(const struct runner *r, enum gstate st);

/* run_report.c */
/* Note the listeners of each generation (after a scan registered some). */
void run_note_listeners(struct runner *r);
/* Generation @g drained and stopped (no process left): its counters. */
void run_gen_finished(struct runner *r, struct generation *g);
/* Print the report once the reload is complete (@now: whatever remains). */
void run_report_flush(struct runner *r, bool now);
/*
 * A starting generation @st that does not listen in a way sockmig can
 * cover (no SO_REUSEPORT, another uid, another address): hand its listener
 * over (--handoff) when possible, else refuse (r->refused), with one line.
 */
void run_check_listeners(struct runner *r, struct generation *st);
/* The server's registered listener @k is not where the holder is (--addr). */
void run_check_addr(struct runner *r, const struct known *k);

#endif
