/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sockmig run's state, shared by cli/run*.c: run.c (options, the loop,
 * reload), run_gen.c (generations), run_report.c (reports, listener checks). */
#ifndef SOCKMIG_CLI_RUN_H
#define SOCKMIG_CLI_RUN_H

#include <stdbool.h>
#include <sys/types.h>

#include "attach.h"
#include "hold.h"
#include "pidfile.h"
#include "sockmig.h"

#define MAX_GENS    16
#define MAX_WORKERS 64
#define TICK_MS	    20

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
	struct sockmig_counters moved;
	struct sockmig_netstat ns0;
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
	unsigned long long backoff_ms, restart_at;
	/* no generation of ours serves: start one at start_at; until one has
	 * been ready (ever_ready), give up ready_ms after the first start */
	unsigned long long start_at, first_start;
	bool ever_ready, gave_up;
	unsigned attempts;
	int last_status; /* of the last start that failed; -1: not ready in time */
	struct pidfile pf;
	char gens_path[160]; /* our generations' "PID STARTTIME", for the next run */
	bool gens_dirty;
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
void run_reaped(struct runner *r, pid_t pid, int status);
void run_tick(struct runner *r);
bool run_busy(const struct runner *r);
bool run_busy_adopted(const struct runner *r);

/* run_report.c */
void run_gen_counters(struct runner *r, struct generation *g);
void run_report_stopped(const struct runner *r, struct generation *g);

#endif
