// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig run: a supervisor for one server (or N identical workers) that
 * listens with SO_REUSEPORT on --port.
 *
 *   start: the holder, then generation 1; sd_notify READY=1 once it listens.
 *   death: a worker that dies is started again (backoff 100 ms, doubling
 *          to 5 s); the holder takes its queue and new SYNs meanwhile.
 *   SIGHUP (or `sockmig reload`): start generation N+1; when it is ready
 *          (its listener joined the group, or READY=1 on the NOTIFY_SOCKET
 *          it is given), the older generation is marked draining (no new
 *          SYN), sent SIGTERM, and SIGKILL after --grace; its queue
 *          migrates to N+1. If N+1 exits or is not ready within
 *          --ready-timeout, it is killed and N keeps serving (rollback).
 *          At most --max-old generations may be stopping: a reload waits
 *          for one to go. --stop-start stops N first and starts N+1 after
 *          (the holder covers the gap), for servers that cannot overlap.
 *   SIGTERM/SIGINT: stop every generation, then the holder.
 * Without native migration (a 4.19-5.13 kernel, no BPF, no privilege, or
 * SOCKMIG_MODE=legacy), or with --handoff, there is no holder and no BPF:
 * run owns the listener and hands it to every generation, as fd 3
 * (LISTEN_FDS) and, for servers that bind the port themselves, through the
 * preload shim, which answers their bind() with it. It never closes.
 * One report line per reload. The supervisor is the main process for
 * systemd (Type=notify or notify-reload; MAINPID stays its pid).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attach.h"
#include "cli.h"
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

/* ---- sd_notify, to systemd and from the children ------------------------- */

static void sd_notify_msg(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	socklen_t len;
	int fd;

	if (!path || !*path || strlen(path) >= sizeof(sun.sun_path))
		return;
	memcpy(sun.sun_path, path, strlen(path));
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun, len) < 0) {
		/* systemd is gone: nothing to tell */
	}
	close(fd);
}

/*
 * The datagram socket the children get as NOTIFY_SOCKET: a file in run's
 * private directory (0700), which no other user can reach, squat or flood
 * (an abstract name could be bound first by anyone in the namespace).
 */
static int notify_open(struct runner *r)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd, one = 1, err;

	err = rundir_file(r->notify_name, sizeof(r->notify_name), "run-%d.notify", r->port);
	if (err) {
		errno = -err;
		return -1;
	}
	if (strlen(r->notify_name) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, r->notify_name, strlen(r->notify_name));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	unlink(r->notify_name); /* a killed run's: the pid file's lock is ours */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512], *p;
	int ppid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		sscanf(p + 2, "%*c %d", &ppid);
	fclose(f);
	return ppid;
}

/* The generation @pid belongs to: one of its workers or their descendants. */
static struct generation *gen_of_pid(struct runner *r, pid_t pid)
{
	for (int depth = 0; pid > 1 && depth < 6; depth++) {
		for (int i = 0; i < MAX_GENS; i++)
			for (int w = 0; r->g[i].state != G_FREE && w < r->g[i].nw; w++)
				if (r->g[i].pid[w] == pid)
					return &r->g[i];
		pid = parent_of(pid);
	}
	return NULL;
}

static void notify_read(struct runner *r)
{
	char buf[512], ctl[CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl,
			    .msg_controllen = sizeof(ctl)};
	struct cmsghdr *c;
	struct generation *g;
	ssize_t n;

	while ((n = recvmsg(r->notify_fd, &mh, 0)) >= 0) {
		struct ucred cred = {0};

		buf[n] = '\0';
		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
				memcpy(&cred, CMSG_DATA(c), sizeof(cred));
		g = cred.pid ? gen_of_pid(r, cred.pid) : NULL;
		if (g && strstr(buf, "READY=1"))
			g->notified = true;
		mh.msg_controllen = sizeof(ctl);
	}
}

/* ---- generations ------------------------------------------------------------ */

static struct generation *gen_state(struct runner *r, enum gstate st)
{
	struct generation *best = NULL;

	for (int i = 0; i < MAX_GENS; i++)
		if (r->g[i].state == st && (!best || r->g[i].id > best->id))
			best = &r->g[i];
	return best;
}

static int count_state(const struct runner *r, enum gstate st)
{
	int n = 0;

	for (int i = 0; i < MAX_GENS; i++)
		n += r->g[i].state == st;
	return n;
}

static pid_t start_worker(struct runner *r)
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
		if (r->handoff) {
			const char *old = getenv("LD_PRELOAD");
			char pre[1100];

			snprintf(pre, sizeof(pre), "%s%s%s", r->preload, old && *old ? ":" : "",
				 old ? old : "");
			setenv("LD_PRELOAD", pre, 1);
			setenv("SOCKMIG_HANDOFF", "1", 1);
		}
		execvp(r->cmd[0], r->cmd);
		fprintf(stderr, "sockmig run: cannot run %s: %s\n", r->cmd[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Our generations' processes, for a run that starts after this one was
 * killed; removed when none is left. */
static void gens_save(struct runner *r)
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

static struct generation *start_generation(struct runner *r)
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
	for (int w = 0; w < r->workers; w++) {
		g->pid[w] = start_worker(r);
		g->start[w] = proc_start_time(g->pid[w]);
	}
	r->start_at = 0;
	r->attempts++;
	gens_save(r); /* now: run may be killed at any moment */
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
static bool own_ready(const struct runner *r)
{
	for (int i = 0; i < MAX_GENS; i++)
		if (r->g[i].state == G_READY && !r->g[i].adopted)
			return true;
	return false;
}

/*
 * The processes a killed run left serving, still the same processes (pid
 * and start time): generation 0, ready, not our children. They are stopped
 * like any older generation once generation 1 is ready.
 */
static void gens_adopt(struct runner *r)
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
	r->backoff_ms = r->backoff_ms * 2 > 5000 ? 5000 : r->backoff_ms * 2;
}

static void signal_gen(struct generation *g, int sig)
{
	for (int w = 0; w < g->nw; w++)
		if (g->pid[w] > 0)
			kill(g->pid[w], sig);
}

/* Does a listener of @g's processes (or their children) serve the port? */
static bool gen_listens(struct runner *r, struct generation *g)
{
	for (int j = 0; j < r->sc.nk; j++)
		if (!r->sc.k[j].holder && !r->sc.k[j].gone_ms &&
		    gen_of_pid(r, r->sc.k[j].owner) == g)
			return true;
	return false;
}

/* Sum what @g's listeners migrated, from the group, while they are known. */
static void gen_counters(struct runner *r, struct generation *g)
{
	memset(&g->moved, 0, sizeof(g->moved));
	for (int j = 0; j < r->sc.nk; j++) {
		struct sockmig_counters c;
		struct sockmig_group *grp;

		if (r->sc.k[j].holder || gen_of_pid(r, r->sc.k[j].owner) != g)
			continue;
		grp = sockmig_group_open_name(r->sc.k[j].group, NULL);
		if (grp && sockmig_counters_read(grp, r->sc.k[j].cookie, &c) == 0) {
			for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
				g->moved.migrated_out[k] += c.migrated_out[k];
			g->moved.cancel_mismatch += c.cancel_mismatch;
			g->moved.deferred += c.deferred;
		}
		sockmig_group_close(grp);
	}
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
		    gen_of_pid(r, r->sc.k[j].owner) != g)
			continue;
		grp = sockmig_group_open_name(r->sc.k[j].group, NULL);
		if (grp && sockmig_member_set(grp, r->sc.k[j].cookie, &mo) == 0)
			r->sc.k[j].drained = true;
		sockmig_group_close(grp);
	}
}

static void stop_generation(struct runner *r, struct generation *g)
{
	for (int w = 0; w < g->nw; w++)
		if (g->pid[w] < 0)
			g->pid[w] = 0; /* dead, waiting for its restart: nothing to stop */
	g->state = G_STOPPING;
	g->stopping = now_ms();
	g->kill_at = g->stopping + r->grace_ms;
	sockmig_netstat_read(&g->ns0);
	if (r->listen_fd < 0 && (r->h.lh || gen_state(r, G_READY)))
		drain_generation(r, g);
	signal_gen(g, r->stop_sig);
}

static void report_stopped(const struct runner *r, struct generation *g)
{
	struct sockmig_netstat ns, d;
	uint64_t moved = 0;

	if (r->listen_fd >= 0) {
		printf("reload report: generation %u stopped in %llu ms; the listener is "
		       "sockmig run's: nothing to migrate\n",
		       g->id, now_ms() - g->stopping);
		fflush(stdout);
		return;
	}
	sockmig_netstat_read(&ns);
	sockmig_netstat_delta(&g->ns0, &ns, &d);
	for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
		moved += g->moved.migrated_out[k];
	printf("reload report: generation %u drained and stopped in %llu ms: migrated %llu, "
	       "cancelled %llu, deferred %llu;"
	       " kernel: %llu failed migrations, %llu embryonic resets\n",
	       g->id, now_ms() - g->stopping, (unsigned long long)moved,
	       (unsigned long long)g->moved.cancel_mismatch, (unsigned long long)g->moved.deferred,
	       (unsigned long long)d.migrate_failure, (unsigned long long)d.embryonic_rsts);
	fflush(stdout);
}

/* A stopping generation with no process left is gone. */
static void gen_finish(struct runner *r, struct generation *g)
{
	if (g->state == G_FREE || gen_live(g))
		return;
	if (g->state == G_STOPPING) {
		if (g->ready)
			report_stopped(r, g);
		g->state = G_FREE;
	} else if (g->adopted) {
		g->state = G_FREE; /* the previous run's server went by itself */
	}
}

/* A start failed (@status: its exit status, -1: not ready in time). */
static void start_failed(struct runner *r, struct generation *g, int status)
{
	unsigned long long now = now_ms();
	struct generation *cur = gen_state(r, G_READY);

	r->last_status = status;
	if (!own_ready(r)) {
		/* nothing of ours serves: try again (the holder covers) */
		schedule_start(r, now);
		if (!r->ever_ready && r->start_at == r->first_start + r->ready_ms)
			fprintf(stderr,
				"sockmig run: generation %u %s before it was ready; "
				"--ready-timeout in %llu ms\n",
				g->id, status >= 0 ? "exited" : "was not ready", r->start_at - now);
		else if (status >= 0)
			fprintf(stderr,
				"sockmig run: generation %u exited (status %d) before it was "
				"ready; starting again in %llu ms\n",
				g->id, status, r->start_at - now);
		else
			fprintf(stderr,
				"sockmig run: generation %u not ready after %llu ms; starting "
				"again in %llu ms\n",
				g->id, r->ready_ms, r->start_at - now);
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
	signal_gen(g, SIGKILL);
	g->state = G_STOPPING;
	g->stopping = now;
	g->kill_at = now;
}

/* A child exited (or an adopted process is gone): which generation, and
 * what it means. */
static void reaped(struct runner *r, pid_t pid, int status)
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
				r->backoff_ms = r->backoff_ms * 2 > 5000 ? 5000 : r->backoff_ms * 2;
			}
		}
		gen_finish(r, g);
	}
}

/* Every tick: readiness, restarts, escalation, pending reloads. */
static void tick(struct runner *r)
{
	struct generation *cur = gen_state(r, G_READY), *st = gen_state(r, G_STARTING);
	unsigned long long now = now_ms();
	int before = r->sc.nk;

	if (r->listen_fd < 0 && scanner_scan(&r->sc) > 0 && r->use_holder) {
		for (int j = before; j < r->sc.nk; j++)
			if (!r->sc.k[j].holder) {
				holder_server_joined(&r->h, &r->sc.k[j]);
				break;
			}
	}
	/* the previous run's processes are not our children: look */
	for (int i = 0; i < MAX_GENS; i++)
		for (int w = 0; r->g[i].adopted && r->g[i].state != G_FREE && w < r->g[i].nw; w++)
			if (r->g[i].pid[w] > 0 &&
			    proc_start_time(r->g[i].pid[w]) != r->g[i].start[w])
				reaped(r, r->g[i].pid[w], 0);
	if (cur && r->restart_at && now >= r->restart_at) {
		r->restart_at = 0;
		for (int w = 0; w < cur->nw; w++)
			if (cur->pid[w] == -1) {
				cur->pid[w] = start_worker(r);
				cur->start[w] = proc_start_time(cur->pid[w]);
			}
		gens_save(r);
	}
	if (!st && r->start_at && now >= r->start_at && !r->stopping) {
		if (!r->ever_ready && now >= r->first_start + r->ready_ms) {
			r->gave_up = true;
			return;
		}
		st = start_generation(r);
	}
	if (cur && now - cur->ready > 10000)
		r->backoff_ms = 100;
	/* with socket activation nothing new listens: READY=1, or alive a while */
	if (st && (st->notified || (r->listen_fd < 0 ? gen_listens(r, st)
						     : now - st->started >= r->ready_after_ms))) {
		st->state = G_READY;
		st->ready = now;
		r->ever_ready = true;
		printf("generation %u ready in %llu ms\n", st->id, now - st->started);
		fflush(stdout);
		if (cur) {
			gen_counters(r, cur);
			stop_generation(r, cur);
		}
		sd_notify_msg("READY=1");
	} else if (st && now - st->started > r->ready_ms) {
		start_failed(r, st, -1);
		if (r->ever_ready)
			sd_notify_msg("READY=1");
	}
	for (int i = 0; i < MAX_GENS; i++)
		if (r->g[i].state == G_STOPPING) {
			if (r->g[i].ready)
				gen_counters(r, &r->g[i]);
			if (now >= r->g[i].kill_at)
				signal_gen(&r->g[i], SIGKILL);
			gen_finish(r, &r->g[i]);
		}
	/* a reload asked for: one at a time, and not past the bound */
	if (r->reload_pending && !gen_state(r, G_STARTING) && !r->stopping) {
		cur = gen_state(r, G_READY);
		if (r->stop_start && cur) {
			stop_generation(r, cur);
		} else if (count_state(r, G_STOPPING) < r->max_old) {
			r->reload_pending = false;
			r->reloads++;
			sd_notify_msg("RELOADING=1");
			start_generation(r);
		}
	}
}

/* A generation is left (@r->gave_up: one of ours; adopted ones stay). */
static bool busy(const struct runner *r)
{
	for (int i = 0; i < MAX_GENS; i++)
		if (r->g[i].state != G_FREE && !(r->gave_up && r->g[i].adopted))
			return true;
	return false;
}

/* Processes of a killed run are still alive. */
static bool busy_adopted(const struct runner *r)
{
	for (int i = 0; i < MAX_GENS; i++)
		if (r->g[i].state != G_FREE && r->g[i].adopted && gen_live(&r->g[i]))
			return true;
	return false;
}

static void run_usage(FILE *f)
{
	fprintf(f,
		"Usage: sockmig run --port P [--addr A] [--user U] [--workers N] [--stop-start]\n"
		"                   [--grace SECS] [--ready-timeout SECS] [--max-old N]\n"
		"                   [--no-holder] [--stop-signal SIG] [--socket-activation]\n"
		"                   [--handoff] [--ready-after MS] -- COMMAND [ARGS...]\n");
}

/* libsockmig-preload.so: $SOCKMIG_PRELOAD, else beside this binary, else
 * in ../lib from it. false when none exists. */
bool find_preload(char *out, size_t size)
{
	const char *env = getenv("SOCKMIG_PRELOAD");
	char exe[400], *slash;
	ssize_t n;

	if (env && *env) {
		snprintf(out, size, "%s", env);
		return access(out, R_OK) == 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return false;
	*slash = '\0';
	snprintf(out, size, "%s/libsockmig-preload.so", exe);
	if (access(out, R_OK) == 0)
		return true;
	snprintf(out, size, "%s/../lib/libsockmig-preload.so", exe);
	if (access(out, R_OK) == 0)
		return true;
	/* where make install put it (a distribution's multiarch directory) */
	snprintf(out, size, "%s/libsockmig-preload.so", SOCKMIG_PRELOADDIR);
	return access(out, R_OK) == 0;
}

/*
 * Whether the kernel migrates under a policy here; when not, one line in
 * @why. SOCKMIG_MODE=legacy answers no without asking (the tests).
 */
static bool native_migration(char *why, size_t size)
{
	const char *mode = getenv("SOCKMIG_MODE");
	struct sockmig_probe p;
	int err;

	if (mode && strcmp(mode, "legacy") == 0) {
		snprintf(why, size, "SOCKMIG_MODE=legacy");
		return false;
	}
	err = sockmig_probe(&p);
	if (err) {
		snprintf(why, size, "the kernel could not be probed: %s", strerror(-err));
		return false;
	}
	if (p.mode == SOCKMIG_MODE_NATIVE)
		return true;
	snprintf(why, size, "%s", p.reason);
	return false;
}

int do_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'P'},
		{"addr", required_argument, NULL, 'a'},
		{"user", required_argument, NULL, 'u'},
		{"workers", required_argument, NULL, 'w'},
		{"stop-start", no_argument, NULL, 's'},
		{"grace", required_argument, NULL, 'g'},
		{"ready-timeout", required_argument, NULL, 't'},
		{"max-old", required_argument, NULL, 'm'},
		{"no-holder", no_argument, NULL, 'n'},
		{"stop-signal", required_argument, NULL, 'S'},
		{"socket-activation", no_argument, NULL, 'A'},
		{"ready-after", required_argument, NULL, 'R'},
		{"handoff", no_argument, NULL, 'H'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct runner r;
	const char *addr = NULL, *user = NULL;
	struct pollfd pfd[2];
	sigset_t mask;
	uint64_t v;
	int opt, sfd, err, ret = 1;
	pid_t owner;

	memset(&r, 0, sizeof(r));
	r.workers = 1;
	r.max_old = 1;
	r.grace_ms = 10000;
	r.ready_ms = 10000;
	r.use_holder = true;
	r.backoff_ms = 100;
	r.stop_sig = SIGTERM;
	r.listen_fd = -1;
	r.ready_after_ms = 500;
	optind = 1;
	opterr = 0;
	while ((opt = cli_getopt(argc, argv, "+P:a:u:w:sg:t:m:nS:AHR:h", opts)) != -1) {
		switch (opt) {
		case 'P':
			if (!parse_u64("--port", optarg, 1, 65535, &v))
				return 2;
			r.port = (int)v;
			break;
		case 'a':
			addr = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case 'w':
			if (!parse_u64("--workers", optarg, 1, MAX_WORKERS, &v))
				return 2;
			r.workers = (int)v;
			break;
		case 's':
			r.stop_start = true;
			break;
		case 'g':
			if (!parse_u64("--grace", optarg, 0, 3600, &v))
				return 2;
			r.grace_ms = v * 1000;
			break;
		case 't':
			if (!parse_u64("--ready-timeout", optarg, 1, 3600, &v))
				return 2;
			r.ready_ms = v * 1000;
			break;
		case 'm':
			if (!parse_u64("--max-old", optarg, 1, MAX_GENS - 2, &v))
				return 2;
			r.max_old = (int)v;
			break;
		case 'n':
			r.use_holder = false;
			break;
		case 'A':
			r.listen_fd = 0; /* opened below */
			break;
		case 'H':
			r.listen_fd = 0;
			r.handoff = true;
			break;
		case 'R':
			if (!parse_u64("--ready-after", optarg, 0, 600000, &v))
				return 2;
			r.ready_after_ms = v;
			break;
		case 'S':
			r.stop_sig = strcmp(optarg, "TERM") == 0    ? SIGTERM
				     : strcmp(optarg, "QUIT") == 0  ? SIGQUIT
				     : strcmp(optarg, "INT") == 0   ? SIGINT
				     : strcmp(optarg, "USR1") == 0  ? SIGUSR1
				     : strcmp(optarg, "USR2") == 0  ? SIGUSR2
				     : strcmp(optarg, "WINCH") == 0 ? SIGWINCH
								    : 0;
			if (!r.stop_sig) {
				cli_error(
					"--stop-signal: '%s' is not one of TERM, QUIT, INT, USR1, "
					"USR2, WINCH",
					optarg);
				return 2;
			}
			break;
		case 'h':
			run_usage(stdout);
			return 0;
		default:
			cli_bad_option("run", argv);
			return 2;
		}
	}
	if (!r.port) {
		cli_error("run: give --port P (the port the server listens on)");
		return 2;
	}
	if (optind >= argc) {
		cli_error("run: give the server's command after --");
		return 2;
	}
	if (r.stop_start && !r.use_holder) {
		cli_error("run: --stop-start needs the holder (drop --no-holder)");
		return 2;
	}
	r.cmd = argv + optind;
	if (holder_config(&r.h, addr, r.port, user) < 0)
		return 2;
	if (r.listen_fd < 0) {
		char why[200];

		if (!native_migration(why, sizeof(why))) {
			printf("sockmig run: no native migration (%s): handing the listener to "
			       "every generation (--handoff)\n",
			       why);
			fflush(stdout);
			r.listen_fd = 0;
			r.handoff = true;
		}
	}
	if (r.handoff && !find_preload(r.preload, sizeof(r.preload))) {
		if (getenv("SOCKMIG_PRELOAD") && *getenv("SOCKMIG_PRELOAD"))
			cli_error("run: --handoff: SOCKMIG_PRELOAD=%s: %s", r.preload,
				  strerror(errno));
		else
			cli_error("run: --handoff needs libsockmig-preload.so (not beside sockmig, "
				  "nor in ../lib or %s; set SOCKMIG_PRELOAD)",
				  SOCKMIG_PRELOADDIR);
		return 1;
	}
	/* from here on, a signal waits for the loop (a reload aimed at the pid
	 * file must not kill a run that is still starting) */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	err = pidfile_acquire(&r.pf, "run", r.port, &owner);
	if (err == -EBUSY) {
		cli_error("sockmig run (pid %d) already supervises port %d", (int)owner, r.port);
		return 1;
	} else if (err || rundir_file(r.gens_path, sizeof(r.gens_path), "run-%d.gens", r.port)) {
		cli_error("run: cannot write its pid file %s: %s", r.pf.path, strerror(-err));
		pidfile_release(&r.pf);
		return 1;
	}
	if (r.listen_fd == 0) {
		/* no BPF at all: the listener is ours and never closes, every
		 * generation inherits it (for servers that take LISTEN_FDS) */
		int one = 1;

		r.use_holder = false;
		r.listen_fd = socket(r.h.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (r.listen_fd < 0 ||
		    setsockopt(r.listen_fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
		    bind(r.listen_fd, (struct sockaddr *)&r.h.addr, r.h.alen) < 0 ||
		    listen(r.listen_fd, 4096) < 0) {
			cli_error("run: cannot listen on port %d: %s", r.port, strerror(errno));
			goto out_pidfile;
		}
	}
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	r.notify_fd = notify_open(&r);
	if (sfd < 0 || r.notify_fd < 0) {
		cli_error("run: cannot set up signals or the notify socket %s: %s", r.notify_name,
			  strerror(errno));
		goto out_notify;
	}
	/* with --addr the holder covers even the first start; without, it opens
	 * where the first server listener appears (a holder elsewhere would be
	 * in another group, and what waited on it could not move) */
	if (r.use_holder && !r.h.follow && holder_open(&r.h) < 0)
		goto out_notify;
	r.sc.port = r.port;
	r.sc.gen = -1;
	r.sc.quiet = true;
	gens_adopt(&r);
	r.first_start = now_ms();
	start_generation(&r);
	pfd[0].fd = sfd;
	pfd[0].events = POLLIN;
	pfd[1].fd = r.notify_fd;
	pfd[1].events = POLLIN;
	for (;;) {
		struct signalfd_siginfo si;
		int status;
		pid_t pid;

		poll(pfd, 2, TICK_MS);
		if (pfd[1].revents)
			notify_read(&r);
		while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo == SIGHUP && !r.stopping) {
				r.reload_pending = true;
			} else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
				if (!r.stopping) {
					r.stopping = true;
					sd_notify_msg("STOPPING=1");
					for (int i = 0; i < MAX_GENS; i++)
						if (r.g[i].state != G_FREE &&
						    r.g[i].state != G_STOPPING)
							stop_generation(&r, &r.g[i]);
				}
			}
		}
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			reaped(&r, pid, status);
		if (r.gave_up && !r.stopping) {
			if (r.last_status >= 0)
				cli_error("run: %s was not ready within %llu s (%u attempts; the "
					  "last exited with status %d)",
					  r.cmd[0], r.ready_ms / 1000, r.attempts, r.last_status);
			else
				cli_error("run: %s was not ready within %llu s (it did not listen "
					  "on port %d)",
					  r.cmd[0], r.ready_ms / 1000, r.port);
			r.stopping = true;
			for (int i = 0; i < MAX_GENS; i++)
				if (r.g[i].state != G_FREE && r.g[i].state != G_STOPPING &&
				    !r.g[i].adopted)
					stop_generation(&r, &r.g[i]);
		}
		if (r.stopping && !busy(&r))
			break;
		tick(&r);
		if (r.gens_dirty)
			gens_save(&r);
	}
	if (r.use_holder)
		holder_close(&r.h, false);
	if (busy_adopted(&r)) {
		/* a killed run's server still listens: its registration stays */
		printf("sockmig run: the killed run's processes keep serving port %d\n", r.port);
	} else {
		scanner_leave_all(&r.sc); /* nothing of ours stays pinned */
	}
	gens_save(&r);
	if (!r.gave_up)
		printf("stopped: %u reloads, %u failed\n", r.reloads, r.failed_reloads);
	ret = r.gave_up ? 1 : 0;
out_notify:
	if (r.notify_name[0])
		unlink(r.notify_name);
out_pidfile:
	pidfile_release(&r.pf);
	return ret;
}

/* sockmig reload --port P: SIGHUP to the supervisor of that port: the live
 * sockmig run that holds its pid file locked, never a pid a stale file names. */
int do_reload(int argc, char **argv)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'P'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t v = 0;
	pid_t pid;
	int opt;

	while ((opt = cli_getopt(argc, argv, "P:h", opts)) != -1) {
		switch (opt) {
		case 'P':
			if (!parse_u64("--port", optarg, 1, 65535, &v))
				return 2;
			break;
		case 'h':
			printf("Usage: sockmig reload --port P\n");
			return 0;
		default:
			cli_bad_option("reload", argv);
			return 2;
		}
	}
	if (!v || optind < argc) {
		cli_error("reload: give --port P");
		return 2;
	}
	pid = pidfile_owner("run", (int)v);
	if (!pid) {
		cli_error("no sockmig run supervises port %d", (int)v);
		return 1;
	}
	if (kill(pid, SIGHUP) < 0) {
		cli_error("cannot signal %d: %s", (int)pid, strerror(errno));
		return 1;
	}
	return 0;
}
