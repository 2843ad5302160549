/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sockmig run's state, shared by cli/run*.c: run.c (options, the loop,
 * reload), run_gen.c (generations), run_notify.c (sd_notify), run_report.c
 * (reports, listener checks), run_udp.c (--proto udp|all: UDP groups),
 * run_udp_end.c (an old generation's UDP sockets retired at --grace). */
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

struct run_udp_end;

/* A process of a generation's tree (run_gen.c): its identity, and a pidfd
 * (-1: none; then signalled by pid after a check of its start time). */
struct gen_proc {
	pid_t pid;
	unsigned long long start;
	int fd;
	bool stopped; /* SIGSTOP sent (the kill at --grace) */
};

struct generation {
	enum gstate state;
	unsigned id;
	int nw;
	pid_t pid[MAX_WORKERS];		       /* 0: gone; -1: dead, to restart */
	unsigned long long start[MAX_WORKERS]; /* each one's start time: its identity */
	unsigned long long started, ready, stopping, kill_at;
	bool notified; /* READY=1 came */
	uint32_t ugen; /* --proto udp|all: its UDP generation (SOCKMIG_GENERATION) */
	bool adopted;  /* a previous run's processes, not our children */
	/* --proto udp|all, at --grace: its UDP members retired before the
	 * SIGKILL (run_udp_end.c): the retire while it runs, then the time
	 * from which the SIGKILL may go (0: not retired yet) */
	struct run_udp_end *uend;
	unsigned long long ukill_at;
	/* its process tree, noted when it was told to stop and at the kill:
	 * workers that outlive their master are still its own (it is not
	 * finished while one lives), and killed at --grace */
	struct gen_proc *tree;
	int ntree;
	bool tree_killed;
	/* its listeners, noted while its processes were alive: the policy's
	 * counters of each are read for its report */
	int nck;
	struct {
		uint64_t cookie;
		char group[SOCKMIG_NAME_MAX];
	} ck[GEN_LISTENERS];
};

/* --proto udp|all: the UDP counters of a reload, summed over the port's
 * UDP groups (run_udp.c). */
#define RUN_UDP_GENS 8
struct run_udp_sums {
	uint64_t hits, new_flows, fallbacks, expired, kernel_hash;
	uint64_t old_gen; /* sockmig_udp_counters.old_generation */
};
/* The mark a report counts from: each group open then, kept open (a group
 * whose last server exits is removed, and its last counts are read through
 * the handle), with its counters then. */
struct run_udp_mark {
	struct sockmig_udp_snmp snmp; /* the network namespace's UDP errors */
	unsigned long long ms;	      /* when (0: never marked) */
	int n;
	struct sockmig_udp_group **g;
	struct run_udp_sums *at;
};
struct run_udp_flows {
	int n;
	struct {
		unsigned id; /* run's generation (0: none of ours) */
		uint32_t ugen;
		uint64_t flows;
	} g[RUN_UDP_GENS];
};

/* What --grace's SIGKILL of each old generation met, since the last
 * report (run_udp_end.c). */
struct run_udp_kills {
	int n;
	struct {
		unsigned id;
		int sockets;	 /* its live UDP members found */
		int not_retired; /* of them: not taken, or the retire refused */
		bool measured;	 /* SOCKMIG_RUN_NO_RETIRE: queues measured, none retired */
		uint64_t bytes;	 /* still queued at the kill (sockets taken only) */
		uint64_t flows;	 /* moved to the working generation by the retire */
		char why[160];	 /* the first reason a socket was not retired */
	} g[RUN_UDP_GENS];
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
	/* --proto: tcp (the default: the holder, the policy), udp (the shim
	 * registers the UDP sockets in their groups), or both */
	bool tcp, udp;
	uint32_t last_ugen;		 /* the newest UDP generation given */
	struct run_udp_mark udp_mark;	 /* at the last report, or a reload's start */
	struct run_udp_flows udp_flip;	 /* flows per generation when one was ready */
	unsigned long long udp_start_ms; /* the reload's start (0: none since the last report) */
	struct run_udp_kills udp_kill;	 /* generations killed at --grace since */
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

/* run_udp.c (--proto udp|all) */
/* --proto VALUE into r->tcp and r->udp; -1 after one error line. */
int run_proto_parse(struct runner *r, const char *value);
/* The UDP generation of a generation started now (newer than any before). */
uint32_t run_udp_next_gen(struct runner *r);
/* In a worker before its exec: the shim and what it needs. */
void run_udp_child_env(const struct runner *r, const struct generation *g);
/* A UDP socket of @g is a live member of a UDP group of the port. */
bool run_udp_joined(struct runner *r, const struct generation *g);
/* A reload starts while @cur serves: new flows stay with @cur until the
 * next generation is ready; the report's counters start here. */
void run_udp_reload_start(struct runner *r, const struct generation *cur);
/* @st is ready: it takes the new flows (the flows at that moment noted). */
void run_udp_flip(struct runner *r, const struct generation *st);
/* @g stops: its UDP members take no new flow, and keep theirs. */
void run_udp_drain(struct runner *r, const struct generation *g);
/* The report's UDP line (after the TCP one with --proto all); @id: the
 * stopped generation, @took_ms: its stop. Then the counters start again. */
void run_udp_report(struct runner *r, unsigned id, bool older, unsigned long long took_ms);
/* The counters as they are now, for the next report. */
void run_udp_mark_now(struct runner *r);
/* At run's end: the mark's group handles closed. */
void run_udp_mark_free(struct runner *r);
/* At run's end: the port's UDP groups left without a live member are
 * removed (nothing of ours stays pinned). */
void run_udp_leave(struct runner *r);
/* The port's UDP groups in run's network namespace, opened into *@g (an
 * array of their number, or NULL): their number; run_udp_close_groups()
 * closes them and frees the array. */
int run_udp_open_groups(int port, struct sockmig_udp_group ***g);
void run_udp_close_groups(struct sockmig_udp_group **g, int n);

/* run_udp_end.c (--proto udp|all) */
/*
 * Generation @g is past its --grace: true when its SIGKILL may go now.
 * The first call starts retiring its UDP members in a thread (each taken
 * with pidfd_getfd, retired, its copy closed); false while that runs,
 * and for one tick after, so that the server answers what it read last.
 * True at once for a generation that was never ready, or without UDP.
 */
bool run_udp_end(struct runner *r, struct generation *g);
/* A retire of @g's still runs (its end then waits; a finished one is
 * collected here, its result kept for the report). */
bool run_udp_end_busy(struct runner *r, struct generation *g);
/* The report's clause: what each generation's SIGKILL met; then none. */
void run_udp_end_print(struct runner *r);

#endif
