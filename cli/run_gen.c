// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sockmig run: its generations (see run.c): starting them, adopting a
 * running one, draining and stopping old ones, reaping, and the tick that
 * decides (sd_notify is in run_notify.c). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "diag.h"
#include "run.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS	 5000
#define BACKOFF_RESET_MS 10000

/* ---- generations ------------------------------------------------------------ */

struct generation *run_gen_state(struct runner *r, enum gstate st)
{
	struct generation *best = NULL;

	for (int i = 0; i < MAX_GENS; i++)
		if (r->g[i].state == st && (!best || r->g[i].id > best->id))
			best = &r->g[i];
	return best;
}

int run_count_state(const struct runner *r, enum gstate st)
{
	int n = 0;

	for (int i = 0; i < MAX_GENS; i++)
		n += r->g[i].state == st;
	return n;
}

static pid_t start_worker(struct runner *r, const struct generation *g)
{
	pid_t pid;

	r->gens_dirty = true;
	pid = fork();

	if (pid == 0) {
		sigset_t all;

		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		setenv("NOTIFY_SOCKET", r->notify_name, 1);
		if (r->listen_fd >= 0) {
			/* systemd's socket activation protocol: the listener is fd 3 */
			char pid[16];

			if (r->listen_fd == 3 ? fcntl(3, F_SETFD, 0) < 0
					      : dup2(r->listen_fd, 3) < 0)
				_exit(127);
			snprintf(pid, sizeof(pid), "%d", (int)getpid());
			setenv("LISTEN_FDS", "1", 1);
			setenv("LISTEN_PID", pid, 1);
			setenv("LISTEN_FDNAMES", "sockmig", 1);
		}
		if (r->handoff || r->udp)
			run_udp_child_env(r, g); /* the shim, and what it needs */
		execvp(r->cmd[0], r->cmd);
		fprintf(stderr, "sockmig run: cannot run %s: %s\n", r->cmd[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Our generations' processes, for a run that starts after this one was
 * killed; removed when none is left. */
void run_gens_save(struct runner *r)
{
	char tmp[176];
	int n = 0;
	FILE *f;

	r->gens_dirty = false;
	if (!r->gens_path[0])
		return;
	snprintf(tmp, sizeof(tmp), "%s.new", r->gens_path);
	f = fopen(tmp, "we");
	if (!f)
		return;
	for (int i = 0; i < MAX_GENS; i++)
		for (int w = 0; r->g[i].state != G_FREE && w < r->g[i].nw; w++)
			if (r->g[i].pid[w] > 0 && r->g[i].start[w]) {
				fprintf(f, "%d %llu\n", (int)r->g[i].pid[w], r->g[i].start[w]);
				n++;
			}
	if (fclose(f) != 0 || !n || rename(tmp, r->gens_path) < 0) {
		unlink(tmp);
		if (!n)
			unlink(r->gens_path);
	}
}

struct generation *run_start_generation(struct runner *r)
{
	struct generation *g = NULL;

	for (int i = 0; i < MAX_GENS && !g; i++)
		if (r->g[i].state == G_FREE)
			g = &r->g[i];
	if (!g)
		return NULL;
	memset(g, 0, sizeof(*g));
	g->state = G_STARTING;
	g->id = ++r->next_id;
	g->started = now_ms();
	g->nw = r->workers;
	g->ugen = r->udp ? run_udp_next_gen(r) : 0;
	for (int w = 0; w < r->workers; w++) {
		g->pid[w] = start_worker(r, g);
		g->start[w] = proc_start_time(g->pid[w]);
	}
	r->start_at = 0;
	r->last_restart = g->started;
	r->attempts++;
	run_gens_save(r); /* now: run may be killed at any moment */
	return g;
}

/* Its processes still alive (a dead worker waiting for its restart is not). */
static int gen_live(const struct generation *g)
{
	int live = 0;

	for (int w = 0; w < g->nw; w++)
		live += g->pid[w] > 0;
	return live;
}

/* A generation of ours is ready (not one adopted from a previous run). */
bool run_own_ready(const struct runner *r)
{
	for (int i = 0; i < MAX_GENS; i++)
		if (r->g[i].state == G_READY && !r->g[i].adopted)
			return true;
	return false;
}

/* Whether listener @l is bound to the address of @ss (port aside). */
static bool same_addr(const struct sm_listener *l, const struct sockaddr_storage *ss)
{
	if (l->family != ss->ss_family)
		return false;
	if (l->family == AF_INET)
		return memcmp(&l->addr.v4, &((const struct sockaddr_in *)ss)->sin_addr,
			      sizeof(l->addr.v4)) == 0;
	return memcmp(&l->addr.v6, &((const struct sockaddr_in6 *)ss)->sin6_addr,
		      sizeof(l->addr.v6)) == 0;
}

/*
 * --handoff after a killed run: the processes adopted from it still hold
 * the listener that run made, and whatever waits in its queue. Another
 * listener of ours would leave that queue to be reset when they stop (no
 * kernel migrates it there); the same socket, taken from them
 * (pidfd_getfd), stays open in run when they close it. The fd, or -1.
 */
int run_adopt_listener(struct runner *r)
{
	const struct generation *g = &r->g[0];
	struct sm_listener *ls = NULL;
	int n, fd = -1;

	if (!g->adopted)
		return -1;
	n = sm_diag_listeners(r->h.addr.ss_family, r->port, &ls);
	for (int i = 0; i < n && fd < 0; i++) {
		if (!same_addr(&ls[i], &r->h.addr))
			continue;
		for (int o = 0; o < ls[i].nowners && fd < 0; o++)
			for (int w = 0; w < g->nw && fd < 0; w++) {
				if (ls[i].owners[o].pid != g->pid[w])
					continue;
				fd = sm_diag_take(&ls[i], o);
				if (fd >= 0)
					printf("sockmig run: took the killed run's listener from "
					       "pid %d: what waits in it stays\n",
					       (int)g->pid[w]);
				else
					fd = -1;
			}
	}
	free(ls);
	fflush(stdout);
	return fd;
}

/*
 * The processes a killed run left serving, still the same processes (pid
 * and start time): generation 0, ready, not our children. They are stopped
 * like any older generation once generation 1 is ready.
 */
void run_gens_adopt(struct runner *r)
{
	struct generation *g = &r->g[0];
	unsigned long long start;
	FILE *f = fopen(r->gens_path, "re");
	int pid;

	if (!f)
		return;
	memset(g, 0, sizeof(*g));
	while (g->nw < MAX_WORKERS && fscanf(f, "%d %llu", &pid, &start) == 2)
		if (pid > 0 && pid != getpid() && proc_start_time(pid) == start) {
			g->pid[g->nw] = pid;
			g->start[g->nw++] = start;
		}
	fclose(f);
	if (!g->nw)
		return;
	g->state = G_READY;
	g->adopted = true;
	g->started = g->ready = now_ms();
	printf("adopted %d process%s of a killed sockmig run (pid %d%s): stopped once generation "
	       "1 is ready\n",
	       g->nw, g->nw > 1 ? "es" : "", (int)g->pid[0], g->nw > 1 ? ", ..." : "");
	fflush(stdout);
}

/* Nothing of ours serves: start again after the backoff. Before the first
 * generation was ever ready, not past the ready timeout. */
static void schedule_start(struct runner *r, unsigned long long now)
{
	r->start_at = now + r->backoff_ms;
	if (!r->ever_ready && r->start_at > r->first_start + r->ready_ms)
		r->start_at = r->first_start + r->ready_ms;
	r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

static void signal_gen(struct generation *g, int sig)
{
	for (int w = 0; w < g->nw; w++)
		if (g->pid[w] > 0)
			kill(g->pid[w], sig);
}

/* At most this many pidfds per generation (run's own fds are few, and its
 * limit may be 1024); past them, a start-time check before each signal. */
#define TREE_PIDFDS 256

/* @p still that process: its pidfd not readable (a pidfd reads when its
 * process has exited), or the same start time. */
static bool proc_alive(const struct gen_proc *p)
{
	struct pollfd pf = {.fd = p->fd, .events = POLLIN};

	if (p->fd >= 0)
		return poll(&pf, 1, 0) == 0;
	return proc_start_time(p->pid) == p->start;
}

/* @sig to @p when it is still that process. */
static void proc_signal(const struct gen_proc *p, int sig)
{
#ifdef SYS_pidfd_send_signal
	if (p->fd >= 0 && syscall(SYS_pidfd_send_signal, p->fd, sig, NULL, 0) == 0)
		return;
	if (p->fd >= 0 && errno != ENOSYS)
		return; /* ESRCH: gone */
#endif
	if (proc_start_time(p->pid) == p->start)
		kill(p->pid, sig);
}

/* The tree of @g's live processes and of those noted before, from one scan
 * of /proc, into g->tree (those not in it yet, each with a pidfd taken now
 * and checked by its start time): how many new, or -1 when the scan or
 * the memory failed (what was found is kept). */
static int note_tree(struct generation *g)
{
	struct proc_ent *roots = calloc((size_t)(g->nw + g->ntree) + 1, sizeof(*roots)), *t;
	struct gen_proc *v;
	int nroots = 0, k, fresh = 0;

	if (!roots)
		return -1;
	for (int w = 0; w < g->nw; w++)
		if (g->pid[w] > 0)
			roots[nroots++] = (struct proc_ent){g->pid[w], g->start[w]};
	for (int i = 0; i < g->ntree; i++)
		roots[nroots++] = (struct proc_ent){g->tree[i].pid, g->tree[i].start};
	k = proc_tree(roots, nroots, &t);
	free(roots);
	if (k < 0)
		return -1;
	v = realloc(g->tree, (size_t)(g->ntree + k + 1) * sizeof(*v));
	if (!v) {
		free(t);
		return -1;
	}
	g->tree = v;
	for (int i = 0; i < k; i++) {
		struct gen_proc *p = &g->tree[g->ntree];
		int j = 0;

		while (j < g->ntree &&
		       (g->tree[j].pid != t[i].pid || g->tree[j].start != t[i].start))
			j++;
		if (j < g->ntree)
			continue;
		*p = (struct gen_proc){.pid = t[i].pid, .start = t[i].start, .fd = -1};
#ifdef SYS_pidfd_open
		if (g->ntree < TREE_PIDFDS)
			p->fd = (int)syscall(SYS_pidfd_open, p->pid, 0);
#endif
		/* the pid may have been reused between the scan and the pidfd */
		if (proc_start_time(p->pid) != p->start) {
			if (p->fd >= 0)
				close(p->fd);
			continue;
		}
		g->ntree++;
		fresh++;
	}
	free(t);
	return fresh;
}

/* Any process of @g's noted tree still alive. */
static bool tree_live(const struct generation *g)
{
	for (int i = 0; i < g->ntree; i++)
		if (proc_alive(&g->tree[i]))
			return true;
	return false;
}

static void tree_free(struct generation *g)
{
	for (int i = 0; i < g->ntree; i++)
		if (g->tree[i].fd >= 0)
			close(g->tree[i].fd);
	free(g->tree);
	g->tree = NULL;
	g->ntree = 0;
}

/* SIGKILL for @g's processes and every process they forked: the workers
 * of a pre-fork server outlive a master killed alone (or one that exits
 * first), and go on serving from their sockets. Once per generation: its
 * tree (noted at its stop, and its processes' descendants now) is stopped,
 * scanned again until no new process shows (a stopped process forks no
 * more), then killed; later ticks signal its own processes alone. */
static void kill_gen(struct generation *g)
{
	bool more = true;

	for (int round = 0; !g->tree_killed && round < 8 && more; round++) {
		more = note_tree(g) > 0 || round == 0;
		for (int i = 0; i < g->ntree; i++)
			if (!g->tree[i].stopped) {
				proc_signal(&g->tree[i], SIGSTOP);
				g->tree[i].stopped = true;
			}
	}
	if (!g->tree_killed)
		for (int i = 0; i < g->ntree; i++)
			proc_signal(&g->tree[i], SIGKILL);
	g->tree_killed = true;
	signal_gen(g, SIGKILL);
}

/* Does a listener of @g's processes (or their children) serve the port? */
static bool gen_listens(struct runner *r, struct generation *g)
{
	for (int j = 0; j < r->sc.nk; j++)
		if (!r->sc.k[j].holder && !r->sc.k[j].gone_ms &&
		    run_gen_of_pid(r, r->sc.k[j].owner) == g)
			return true;
	return false;
}

/* Its server serves: a TCP listener registered (--proto tcp, all), and a
 * UDP socket in its group (--proto udp, all). */
static bool gen_serves(struct runner *r, struct generation *g)
{
	return (!r->tcp || gen_listens(r, g)) && (!r->udp || run_udp_joined(r, g));
}

/* No new SYN to @g's listeners: the holder (or the next generation) takes
 * them, so the server's close moves only its queue (a listener closing
 * while SYNs still reach it can lose one in the kernel's close path). */
static void drain_generation(struct runner *r, struct generation *g)
{
	SOCKMIG_OPTS(sockmig_member_opts, mo, .role = SOCKMIG_ROLE_DRAINING);

	for (int j = 0; j < r->sc.nk; j++) {
		struct sockmig_group *grp;

		if (r->sc.k[j].holder || r->sc.k[j].drained || r->sc.k[j].gone_ms ||
		    run_gen_of_pid(r, r->sc.k[j].owner) != g)
			continue;
		grp = sockmig_group_open_name(r->sc.k[j].group, NULL);
		if (grp && sockmig_member_set(grp, r->sc.k[j].cookie, &mo) == 0)
			r->sc.k[j].drained = true;
		sockmig_group_close(grp);
	}
}

void run_stop_generation(struct runner *r, struct generation *g)
{
	for (int w = 0; w < g->nw; w++)
		if (g->pid[w] < 0)
			g->pid[w] = 0; /* dead, waiting for its restart: nothing to stop */
	g->state = G_STOPPING;
	g->stopping = now_ms();
	g->kill_at = g->stopping + r->grace_ms;
	if (r->listen_fd < 0 && (r->h.lh || run_gen_state(r, G_READY)))
		drain_generation(r, g);
	run_udp_drain(r, g);
	note_tree(g); /* its workers, before a master that exits first leaves them */
	signal_gen(g, r->stop_sig);
}

/* A stopping generation with no process left is gone (once a retire of
 * its UDP sockets, if any, has ended). */
static void gen_finish(struct runner *r, struct generation *g)
{
	if (g->state == G_FREE || gen_live(g) || run_udp_end_busy(r, g) || tree_live(g))
		return;
	if (g->state == G_STOPPING) {
		if (g->ready)
			run_gen_finished(r, g);
		g->state = G_FREE;
		tree_free(g);
	} else if (g->adopted) {
		g->state = G_FREE; /* the previous run's server went by itself */
		tree_free(g);
	}
}

/* A start failed (@status: its exit status, -1: not ready in time). */
static void start_failed(struct runner *r, struct generation *g, int status)
{
	unsigned long long now = now_ms();
	struct generation *cur = run_gen_state(r, G_READY);

	r->last_status = status;
	if (!run_own_ready(r)) {
		/* nothing of ours serves: try again (the holder covers) */
		unsigned long long in;

		schedule_start(r, now);
		in = r->start_at > now ? r->start_at - now : 0;
		if (status >= 0 && !r->ever_ready && r->h.lh && !r->h.follow && !r->holder_late) {
			/* a server without SO_REUSEPORT cannot bind next to the
			 * holder (EADDRINUSE): the next start goes without it */
			holder_close(&r->h, false);
			r->holder_late = true;
			fprintf(stderr,
				"sockmig run: the server exited (status %d) before it listened, "
				"while the holder held port %d (--addr); starting it again "
				"without the holder in %llu ms, in case it does not set "
				"SO_REUSEPORT\n",
				status, r->port, in);
		} else if (status >= 0) {
			fprintf(stderr,
				"sockmig run: the server exited (status %d) before it listened on "
				"port %d; %s %llu ms\n",
				status, r->port,
				!r->ever_ready && r->start_at == r->first_start + r->ready_ms
					? "--ready-timeout in"
					: "starting it again in",
				in);
		} else {
			fprintf(stderr,
				"sockmig run: server did not start listening on port %d within "
				"%llu ms (generation %u)%s\n",
				r->port, now - g->started, g->id,
				r->ever_ready ? "; starting it again" : "");
		}
		fflush(stderr);
	} else if (status >= 0) {
		printf("reload %u failed: generation %u exited (status %d) before it was ready; "
		       "generation %u keeps serving\n",
		       r->reloads, g->id, status, cur ? cur->id : 0);
	} else {
		printf("reload %u failed: generation %u not ready after %llu ms; generation %u "
		       "keeps serving\n",
		       r->reloads, g->id, r->ready_ms, cur ? cur->id : 0);
	}
	fflush(stdout);
	r->failed_reloads += r->ever_ready;
	kill_gen(g);
	g->state = G_STOPPING;
	g->stopping = now;
	g->kill_at = now;
}

/* A child exited (or an adopted process is gone): which generation, and
 * what it means. */
void run_reaped(struct runner *r, pid_t pid, int status)
{
	for (int i = 0; i < MAX_GENS; i++) {
		struct generation *g = &r->g[i];

		for (int w = 0; g->state != G_FREE && w < g->nw; w++) {
			if (g->pid[w] != pid)
				continue;
			g->pid[w] = 0;
			r->gens_dirty = true;
			if (g->adopted) {
				/* not ours to restart */
			} else if (g->state == G_STARTING) {
				/* exited before it was ready: roll back */
				start_failed(r, g,
					     WIFEXITED(status) ? WEXITSTATUS(status)
							       : 128 + WTERMSIG(status));
			} else if (g->state == G_READY && !r->stopping) {
				/* died: start it again after the backoff (the holder covers) */
				fprintf(stderr,
					"sockmig run: worker %d of generation %u died (%s %d); "
					"restarting in %llu ms\n",
					(int)pid, g->id, WIFSIGNALED(status) ? "signal" : "status",
					WIFSIGNALED(status) ? WTERMSIG(status)
							    : WEXITSTATUS(status),
					r->backoff_ms);
				g->pid[w] = -1; /* to restart */
				r->restart_at = now_ms() + r->backoff_ms;
				r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS
							? BACKOFF_MAX_MS
							: r->backoff_ms * 2;
			}
		}
		gen_finish(r, g);
	}
}

/* Every tick: readiness, restarts, escalation, pending reloads. */
void run_tick(struct runner *r)
{
	struct generation *cur = run_gen_state(r, G_READY), *st = run_gen_state(r, G_STARTING);
	unsigned long long now = now_ms();

	if (r->listen_fd < 0 && scanner_scan(&r->sc) > 0) {
		run_note_listeners(r);
		for (int j = r->sc.first_new; j < r->sc.nk && r->use_holder; j++)
			if (!r->sc.k[j].holder) {
				run_check_addr(r, &r->sc.k[j]);
				holder_server_joined(&r->h, &r->sc.k[j]);
				break;
			}
	}
	/* a server listener sockmig cannot cover: hand it off, or refuse */
	if (st && r->listen_fd < 0 && r->tcp && !gen_listens(r, st)) {
		run_check_listeners(r, st);
		if (r->refused)
			return;
	}
	/* the previous run's processes are not our children: look */
	for (int i = 0; i < MAX_GENS; i++)
		for (int w = 0; r->g[i].adopted && r->g[i].state != G_FREE && w < r->g[i].nw; w++)
			if (r->g[i].pid[w] > 0 &&
			    proc_start_time(r->g[i].pid[w]) != r->g[i].start[w])
				run_reaped(r, r->g[i].pid[w], 0);
	if (cur && r->restart_at && now >= r->restart_at) {
		r->restart_at = 0;
		for (int w = 0; w < cur->nw; w++)
			if (cur->pid[w] == -1) {
				cur->pid[w] = start_worker(r, cur);
				cur->start[w] = proc_start_time(cur->pid[w]);
			}
		r->last_restart = now;
		run_gens_save(r);
	}
	if (!st && r->start_at && now >= r->start_at && !r->stopping) {
		if (!r->ever_ready && now >= r->first_start + r->ready_ms) {
			r->gave_up = true;
			return;
		}
		st = run_start_generation(r);
	}
	/* up for 10 s since the last (re)start of a worker: no crash loop */
	if (cur && !r->restart_at && now >= cur->ready + BACKOFF_RESET_MS &&
	    now >= r->last_restart + BACKOFF_RESET_MS)
		r->backoff_ms = BACKOFF_FIRST_MS;
	/* with socket activation nothing new listens: READY=1, or alive a while
	 * (a generation started in this tick started after @now: no
	 * subtraction from @now, which would wrap) */
	if (st && (st->notified || (r->listen_fd < 0 ? gen_serves(r, st)
						     : now >= st->started + r->ready_after_ms))) {
		st->state = G_READY;
		st->ready = now;
		r->ever_ready = true;
		run_udp_flip(r, st); /* it takes the new flows before it is said ready */
		printf("generation %u ready in %llu ms\n", st->id, now - st->started);
		fflush(stdout);
		if (cur)
			run_stop_generation(r, cur);
		run_sd_notify("READY=1");
	} else if (st && now > st->started + r->ready_ms) {
		start_failed(r, st, -1);
		if (r->ever_ready)
			run_sd_notify("READY=1");
	}
	/* past --grace: SIGKILL, once its UDP sockets are retired (--proto
	 * udp|all: nothing left in their queues) */
	for (int i = 0; i < MAX_GENS; i++)
		if (r->g[i].state == G_STOPPING) {
			if (now >= r->g[i].kill_at && run_udp_end(r, &r->g[i]))
				kill_gen(&r->g[i]);
			gen_finish(r, &r->g[i]);
		}
	/* a reload asked for: one at a time, and not past the bound */
	if (r->reload_pending && !run_gen_state(r, G_STARTING) && !r->stopping) {
		cur = run_gen_state(r, G_READY);
		if (r->stop_start && cur) {
			run_stop_generation(r, cur);
		} else if (run_count_state(r, G_STOPPING) < r->max_old) {
			/* the reload before, complete (its old generation
			 * went this tick): its report before this one's mark */
			run_report_flush(r, true);
			r->reload_pending = false;
			r->reloads++;
			run_sd_notify("RELOADING=1");
			run_udp_reload_start(r, cur);
			run_start_generation(r);
		}
	}
	run_report_flush(r, false);
}

/* A generation is left (@r->gave_up: one of ours; adopted ones stay). */
bool run_busy(const struct runner *r)
{
	for (int i = 0; i < MAX_GENS; i++)
		if (r->g[i].state != G_FREE && !(r->gave_up && r->g[i].adopted))
			return true;
	return false;
}

/* Processes of a killed run are still alive. */
bool run_busy_adopted(const struct runner *r)
{
	for (int i = 0; i < MAX_GENS; i++)
		if (r->g[i].state != G_FREE && r->g[i].adopted && gen_live(&r->g[i]))
			return true;
	return false;
}
