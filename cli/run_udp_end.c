// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig run --proto udp|all: an old generation's end at --grace (see
 * run_udp.c). SIGKILL drops every datagram queued on the generation's
 * sockets, and those that reach them until the process is gone. So before
 * it, run takes the generation's draining UDP members out of the groups'
 * socket arrays at once (sockmig_udp_generation_cutoff(): their flows go on
 * to the working generation from their next datagram), retires one by one
 * those draining members the cutoff missed (sockmig_udp_member_retire(),
 * SOCKMIG_UDP_RETIRE_FLOWS_OK: a generation adopted from a killed run, a
 * member that joined late), leaves those still active where they are (run's
 * last generation at its stop: there is no other generation to move their
 * flows to), and waits until the server, still running, has read all their
 * queues. Then run closes its copies, waits one tick (the server answers
 * what it read last), and kills.
 *
 * The sockets are the server's: run takes a copy of each with
 * pidfd_getfd() (it started the process: the same rights). sock_diag gives
 * the port's UDP sockets with cookie and inode, /proc/PID/fd the fds that
 * hold the members' inodes: only those are copied, none of the server's
 * other sockets (its connections: ten thousand copies for nothing).
 * Without UDP sock_diag (no udp_diag module), every socket of the process
 * is copied and matched by cookie. A refusal (another user's process, ptrace rules) is said in one
 * line, and the generation is killed as before.
 *
 * The retire blocks (it polls the queue), so it runs in a thread of its
 * own, one per generation, with its own group handles (the group lock is a
 * handle's), while run's loop goes on: signals, readiness, other
 * generations. Each generation gets RETIRE_MS in all: a server that reads
 * empties its queue in milliseconds (at most its SO_RCVBUF), so past that
 * its reader has stopped, and waiting longer saves nothing.
 *
 * If run is killed (SIGKILL) during a retire, the thread goes with it:
 * each step of the retire is one change of the group under its lock (an
 * flock, released with run's fds), and a socket leaves the socket array in
 * one map delete. A member is then either still draining with its flows,
 * as before, or out of the array, as if it had closed; the server is not
 * waiting on run and keeps reading; run's copies close with it. The old
 * generation lives on until the next run adopts it and stops it.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "cli.h"
#include "diag.h"
#include "run.h"

#define RETIRE_MS     1000 /* a generation's retire, in all */
#define RETIRE_MIN_MS 50   /* at least, per socket (the library's floor is 30) */

struct run_udp_end {
	pthread_t th;
	atomic_bool done;
	/* in: the generation's UDP generation, else its processes */
	int port;
	uint32_t ugen;
	int npid;
	pid_t *pid;	       /* its processes, and those of its tree run noted */
	bool measure;	       /* SOCKMIG_RUN_NO_RETIRE: measure the queues, retire none */
	unsigned long long ms; /* the whole retire's time: retire_ms() */
	/* its members */
	int n;
	struct end_member {
		char group[SOCKMIG_NAME_MAX];
		uint64_t cookie;
		pid_t pid;   /* the process that registered it */
		int fd;	     /* run's copy; -1: not looked for yet, -2: none, -3: retired,
			    * -4: active, none taken */
		bool look;   /* looked for in the process take_fds() reads */
		bool wait;   /* cut off or active: its queue waited for with the others' */
		bool active; /* still active: no other generation of its group */
	} * m;
	/* out */
	int not_retired;
	int copies; /* of the processes' fds, members or not (-v says) */
	uint64_t bytes, flows;
	char why[160];
};

static bool ours(const struct run_udp_end *e, const struct sockmig_udp_member_info *mi)
{
	if (e->ugen)
		return mi->generation == e->ugen;
	for (int i = 0; i < e->npid; i++)
		if (e->pid[i] > 0 && (uint32_t)e->pid[i] == mi->pid)
			return true;
	return false;
}

static void note_why(struct run_udp_end *e, const char *fmt, const char *what, int err)
{
	if (!e->why[0])
		snprintf(e->why, sizeof(e->why), fmt, what, strerror(err));
}

/* The generation's live members, from every UDP group of the port. */
static void find_members(struct run_udp_end *e)
{
	struct sockmig_udp_group **grp;
	int n = run_udp_open_groups(e->port, &grp);

	for (int i = 0; i < n; i++) {
		struct sockmig_udp_member_info *mi;
		int k = cli_udp_members(grp[i], &mi);

		for (int j = 0; j < k; j++) {
			struct end_member *more;

			if (!ours(e, &mi[j]))
				continue;
			more = realloc(e->m, (size_t)(e->n + 1) * sizeof(*e->m));
			if (!more) {
				e->not_retired++;
				note_why(e, "%s: %s", "the list of its sockets", ENOMEM);
				continue;
			}
			e->m = more;
			snprintf(e->m[e->n].group, sizeof(e->m[e->n].group), "%s",
				 sockmig_udp_group_name(grp[i]));
			e->m[e->n].cookie = mi[j].cookie;
			e->m[e->n].pid = (pid_t)mi[j].pid;
			e->m[e->n].look = e->m[e->n].wait = false;
			e->m[e->n].active = mi[j].role == SOCKMIG_ROLE_ACTIVE;
			e->m[e->n++].fd = -1;
		}
		free(mi);
	}
	run_udp_close_groups(grp, n);
}

/* Whether @fdnum of @pid (a /proc/PID/fd entry) is a socket. */
static bool is_socket(pid_t pid, const char *fdnum)
{
	char path[64], link[32];
	ssize_t l;

	snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)pid, fdnum);
	l = readlink(path, link, sizeof(link) - 1);
	return l > 8 && strncmp(link, "socket:[", 8) == 0;
}

#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
/* A copy of fd @num of the process of @pidfd kept for the member looked
 * for with its cookie. 1: kept (*want counts it), 0: not a member or
 * closed meanwhile, or a negative errno that refuses every copy. */
static int copy_member(struct run_udp_end *e, int pidfd, int num, int *want)
{
	int fd = (int)syscall(SYS_pidfd_getfd, pidfd, num, 0);
	uint64_t cookie;

	e->copies += fd >= 0;
	if (fd < 0)
		/* refused, or no pidfd_getfd (before 5.6): said, never taken
		 * for a socket its server closed */
		return errno == EPERM || errno == EACCES || errno == ENOSYS ? -errno : 0;
	cookie = sockmig_cookie(fd);
	for (int i = 0; i < e->n; i++)
		if (e->m[i].look && e->m[i].fd < 0 && e->m[i].cookie == cookie) {
			e->m[i].fd = fd;
			(*want)--;
			return 1;
		}
	close(fd);
	return 0;
}

/* The fds of @pid that hold one of its members, by sock_diag (the port's
 * UDP sockets: cookie and inode) and /proc/PID/fd (the fds of those
 * inodes): the members alone are copied, not each of a server's
 * connections. *@listed false when the sockets could not be listed (no
 * UDP sock_diag: the udp_diag module). 0, or copy_member()'s refusal. */
static int take_by_diag(struct run_udp_end *e, pid_t pid, int pidfd, int *want, bool *listed)
{
	struct sm_listener *ls = NULL;
	int n = sm_diag_udp(e->port, ~0u, &ls), k = 0, err = 0;

	/* the sockets of pid's members alone */
	for (int j = 0; j < n; j++)
		for (int i = 0; i < e->n; i++)
			if (e->m[i].look && e->m[i].fd < 0 && e->m[i].cookie == ls[j].cookie) {
				ls[k++] = ls[j];
				break;
			}
	*listed = n >= 0 && sm_diag_owners_of(ls, k, pid) == 0;
	for (int j = 0; j < k && *listed && err >= 0 && *want > 0; j++)
		if (ls[j].nowners > 0)
			err = copy_member(e, pidfd, ls[j].owners[0].fd, want);
	free(ls);
	return err < 0 ? err : 0;
}

/* Every socket of @pid copied and matched by cookie: without sock_diag. */
static int take_each(struct run_udp_end *e, pid_t pid, int pidfd, DIR *dir, int *want)
{
	struct dirent *d;
	int err = 0;

	while (err >= 0 && *want > 0 && (d = readdir(dir))) {
		char *end;
		long num = strtol(d->d_name, &end, 10);

		if (end != d->d_name && !*end && is_socket(pid, d->d_name))
			err = copy_member(e, pidfd, (int)num, want);
	}
	return err < 0 ? err : 0;
}
#endif

/* Copies of @pid's sockets that are members in e->m (pidfd_getfd, matched
 * by cookie). 0, or a negative errno that refused them all. */
static int take_fds(struct run_udp_end *e, pid_t pid)
{
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
	int want = 0, pidfd, err = 0;
	bool listed = false;
	char path[32];
	DIR *dir;

	e->copies = 0;
	for (int i = 0; i < e->n; i++)
		want += e->m[i].look && e->m[i].fd < 0;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return errno == ESRCH ? 0 : -errno; /* gone: its sockets closed */
	/* readable (the rights of ptrace), or the refusal said */
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		err = errno == EACCES || errno == EPERM ? -errno : 0; /* else gone */
	if (dir && want > 0) {
		err = take_by_diag(e, pid, pidfd, &want, &listed);
		if (!listed)
			err = take_each(e, pid, pidfd, dir, &want);
		cli_debug("udp retire: pid %d: %d fds copied for its members (%s)", (int)pid,
			  e->copies,
			  listed ? "those sock_diag names" : "each socket: no sock_diag");
	}
	if (dir)
		closedir(dir);
	close(pidfd);
	return err;
#else
	(void)e;
	(void)pid;
	return -ENOSYS;
#endif
}

/* Retire (or measure) member @i through a handle of this thread's. true:
 * it had left the socket array (cut off): its copy is kept open, and its
 * queue waited for with the others' (wait_queues()). */
static bool end_one(struct run_udp_end *e, int i, unsigned long long until)
{
	SOCKMIG_OPTS(sockmig_udp_retire_report, rep);
	unsigned long long now = now_ms();
	uint32_t ms = until > now + RETIRE_MIN_MS ? (uint32_t)(until - now) : RETIRE_MIN_MS;
	SOCKMIG_OPTS(sockmig_udp_retire_opts, ro, .deadline_ms = ms,
		     .flags = SOCKMIG_UDP_RETIRE_FLOWS_OK);
	struct sockmig_udp_group *g = sockmig_udp_group_open_name(e->m[i].group, NULL);
	uint64_t q = 0;
	int err;

	if (e->measure || !g) {
		if (!g)
			note_why(e, "%s: %s", e->m[i].group, errno);
		e->not_retired++;
		if (sockmig_udp_queued(e->m[i].fd, &q) == 0)
			e->bytes += q;
		sockmig_udp_group_close(g);
		return false;
	}
	err = sockmig_udp_member_retire(g, e->m[i].fd, &ro, &rep);
	sockmig_udp_group_close(g);
	if (err == 0 || err == -ETIMEDOUT) {
		/* -ETIMEDOUT: out of the array all the same, bytes left */
		e->bytes += rep.bytes_queued;
		e->flows += rep.flows_left;
		return false;
	}
	/* no member any more: cut off, left (a connect()) or closed; what
	 * the kill drops of it, if open, is measured at the end */
	if (err == -ENOENT)
		return true;
	e->not_retired++;
	note_why(e, "%s: %s", err == -EBUSY ? "the last active member" : "the retire", -err);
	if (sockmig_udp_queued(e->m[i].fd, &q) == 0)
		e->bytes += q;
	return false;
}

/* The generation's draining members (every one after a reload; none when
 * run stops: its last generation is active) out of each group's socket
 * array at once (sockmig_udp_generation_cutoff()): all its flows go on to
 * the working generation from their next datagram, not one socket's
 * after another's retire, and their queues are waited for together. */
static void cut_off(struct run_udp_end *e)
{
	struct sockmig_udp_group **grp;
	int n;

	if (e->measure || !e->ugen)
		return;
	n = run_udp_open_groups(e->port, &grp);
	for (int i = 0; i < n; i++) {
		uint64_t flows = 0;

		if (sockmig_udp_generation_cutoff(grp[i], e->ugen, &flows) > 0)
			e->flows += flows;
	}
	run_udp_close_groups(grp, n);
}

/* The bytes queued on the members kept for the wait, by one sock_diag dump
 * of the port (FIONREAD's first datagram without it): 0 when every queue
 * is empty. */
static uint64_t queued(const struct run_udp_end *e)
{
	struct sm_listener *ls = NULL;
	int n = sm_diag_udp(e->port, ~0u, &ls);
	uint64_t bytes = 0;

	for (int i = 0; i < e->n; i++) {
		int first = 0;
		bool seen = false;

		if (!e->m[i].wait)
			continue;
		for (int j = 0; j < n && !seen; j++)
			if (ls[j].cookie == e->m[i].cookie) {
				bytes += ls[j].queue;
				seen = true;
			}
		if (!seen && e->m[i].fd >= 0 && ioctl(e->m[i].fd, SIOCINQ, &first) == 0 &&
		    first > 0)
			bytes += (uint64_t)first;
	}
	free(ls);
	return bytes;
}

/* The queues of the cut-off and the active members, read by their servers
 * until @until (at least RETIRE_MIN_MS from now), then what is left
 * counted and run's copies closed. */
static void wait_queues(struct run_udp_end *e, unsigned long long until)
{
	struct timespec nap = {0, 10 * 1000000L};
	uint64_t left = 0;
	bool any = false;

	for (int i = 0; i < e->n && !any; i++)
		any = e->m[i].wait;
	if (!any)
		return;
	if (until < now_ms() + RETIRE_MIN_MS)
		until = now_ms() + RETIRE_MIN_MS;
	while ((left = queued(e)) > 0 && now_ms() < until)
		nanosleep(&nap, NULL);
	e->bytes += left;
	for (int i = 0; i < e->n; i++)
		if (e->m[i].wait) {
			if (e->m[i].fd >= 0)
				close(e->m[i].fd);
			e->m[i].fd = -3; /* retired */
			e->m[i].wait = false;
		}
}

/* RETIRE_MS, or SOCKMIG_RUN_RETIRE_MS (50 to 60,000): a test's slow
 * machine, or a server whose reader is known to lag. */
static unsigned long long retire_ms(void)
{
	const char *v = getenv("SOCKMIG_RUN_RETIRE_MS");
	char *end;
	long ms = v ? strtol(v, &end, 10) : 0;

	return v && *v && !*end && ms >= 50 && ms <= 60000 ? (unsigned long long)ms : RETIRE_MS;
}

/* Whether the port's UDP socket of @cookie is still open (in any
 * process): false too when sock_diag cannot tell. */
static bool still_open(int port, uint64_t cookie)
{
	struct sm_listener *ls = NULL;
	int n = sm_diag_udp(port, ~0u, &ls);
	bool open = false;

	for (int j = 0; j < n && !open; j++)
		open = ls[j].cookie == cookie;
	free(ls);
	return open;
}

/* Copies of the members of @pid, or, for those @pid no longer holds, of
 * the generation's other processes (a server that binds, forks its
 * workers and closes its own copy registered the sockets it gave away). */
static void take_members_of(struct run_udp_end *e, pid_t pid)
{
	char who[80];
	int err, left = 0;

	for (int j = 0; j < e->n; j++)
		e->m[j].look = e->m[j].pid == pid && e->m[j].fd == -1;
	err = take_fds(e, pid);
	if (err < 0) {
		snprintf(who, sizeof(who), "pidfd_getfd of pid %d%s", (int)pid,
			 err == -ENOSYS ? " (needs Linux 5.6)" : "");
		note_why(e, "%s: %s", who, -err);
	}
	for (int w = 0; err >= 0 && w < e->npid; w++) {
		left = 0;
		for (int j = 0; j < e->n; j++)
			left += e->m[j].look && e->m[j].fd == -1;
		if (!left)
			break;
		if (e->pid[w] > 0 && e->pid[w] != pid)
			take_fds(e, e->pid[w]);
	}
	for (int j = 0; j < e->n; j++) {
		if (!e->m[j].look)
			continue;
		e->m[j].look = false;
		if (e->m[j].fd != -1)
			continue;
		/* not found: closed by its server meanwhile, or held by a
		 * process run did not start (then lost at the kill) */
		if (err < 0 || still_open(e->port, e->m[j].cookie)) {
			e->not_retired++;
			if (err >= 0)
				note_why(e, "%s: %s",
					 "a socket held by a process run did not start", ESRCH);
		}
		e->m[j].fd = -2;
	}
}

static void *end_thread(void *arg)
{
	struct run_udp_end *e = arg;
	unsigned long long until = now_ms() + e->ms;

	find_members(e);
	cut_off(e);
	/* still active (run's stop, or a group the new generation left): a
	 * retire would only move its flows to another socket of this
	 * generation, killed with it, and the last one refuses (-EBUSY). Its
	 * queue is waited for with the others', by sock_diag, and no copy is
	 * taken: one would keep a socket its server closes meanwhile in the
	 * socket array, where its flows no longer fall to a sibling */
	for (int i = 0; i < e->n; i++)
		if (e->m[i].active && !e->measure) {
			e->m[i].fd = -4;
			e->m[i].wait = true;
		}
	/* process by process: its members copied, those still in the socket
	 * array retired and their copies closed before the next process's are
	 * taken, so that a copy of run's keeps no socket its server closed
	 * meanwhile in the socket array (a cut-off member is out of it) */
	for (int i = 0; i < e->n; i++) {
		pid_t pid = e->m[i].pid;

		if (e->m[i].fd != -1)
			continue; /* its process was looked at with an earlier member */
		take_members_of(e, pid);
		for (int j = i; j < e->n; j++) {
			if (e->m[j].fd < 0 || e->m[j].wait)
				continue;
			e->m[j].wait = end_one(e, j, until);
			if (!e->m[j].wait) {
				close(e->m[j].fd);
				e->m[j].fd = -3; /* retired */
			}
		}
	}
	wait_queues(e, until);
	atomic_store(&e->done, true);
	return NULL;
}

/* The finished retire of @g into the report's kills, and a line when a
 * socket could not be retired. */
static void collect(struct runner *r, struct generation *g)
{
	struct run_udp_end *e = g->uend;
	struct run_udp_kills *k = &r->udp_kill;

	pthread_join(e->th, NULL);
	if (e->not_retired && !e->measure)
		fprintf(stderr,
			"sockmig run: generation %u: %d of its %d UDP sockets not retired before "
			"--grace's SIGKILL (%s): what they have queued is lost\n",
			g->id, e->not_retired, e->n, e->why);
	if (k->n < RUN_UDP_GENS) {
		k->g[k->n].id = g->id;
		k->g[k->n].sockets = e->n;
		k->g[k->n].not_retired = e->not_retired;
		k->g[k->n].measured = e->measure;
		k->g[k->n].bytes = e->bytes;
		k->g[k->n].flows = e->flows;
		snprintf(k->g[k->n].why, sizeof(k->g[k->n].why), "%s", e->why);
		k->n++;
	}
	free(e->m);
	free(e->pid);
	free(e);
	g->uend = NULL;
	g->ukill_at = now_ms() + TICK_MS;
}

bool run_udp_end_busy(struct runner *r, struct generation *g)
{
	if (!g->uend)
		return false;
	if (!atomic_load(&g->uend->done))
		return true;
	collect(r, g);
	return false;
}

bool run_udp_end(struct runner *r, struct generation *g)
{
	struct run_udp_end *e;
	const char *off = getenv("SOCKMIG_RUN_NO_RETIRE");

	if (!r->udp || !g->ready)
		return true;
	if (run_udp_end_busy(r, g))
		return false;
	if (g->ukill_at) /* retired (or collected just now) */
		return now_ms() >= g->ukill_at;
	e = calloc(1, sizeof(*e));
	if (!e) {
		g->ukill_at = now_ms();
		return true;
	}
	e->ms = retire_ms(); /* read here: run's main thread alone reads its environment */
	e->port = r->port;
	e->ugen = g->ugen;
	/* its processes and their workers (the members of a generation
	 * adopted from a killed run are known by pid alone) */
	e->pid = calloc((size_t)(g->nw + g->ntree) + 1, sizeof(*e->pid));
	for (int w = 0; e->pid && w < g->nw; w++)
		e->pid[e->npid++] = g->pid[w];
	for (int i = 0; e->pid && i < g->ntree; i++)
		e->pid[e->npid++] = g->tree[i].pid;
	e->measure = off && strcmp(off, "1") == 0;
	atomic_init(&e->done, false);
	if (pthread_create(&e->th, NULL, end_thread, e) != 0) {
		fprintf(stderr,
			"sockmig run: generation %u: no thread to retire its UDP sockets: "
			"killed with what they have queued\n",
			g->id);
		free(e->pid);
		free(e);
		g->ukill_at = now_ms();
		return true;
	}
	g->uend = e;
	return false;
}

void run_udp_end_print(struct runner *r)
{
	struct run_udp_kills *k = &r->udp_kill;

	printf("; at --grace:");
	for (int i = 0; i < k->n; i++) {
		printf("%s generation %u killed with %llu bytes queued", i ? "," : "", k->g[i].id,
		       (unsigned long long)k->g[i].bytes);
		if (k->g[i].measured)
			printf(" (not retired: SOCKMIG_RUN_NO_RETIRE=1)");
		else
			printf(", %llu flows moved to the working generation",
			       (unsigned long long)k->g[i].flows);
		if (k->g[i].not_retired && !k->g[i].measured)
			printf(" (%d of %d sockets not retired: %s)", k->g[i].not_retired,
			       k->g[i].sockets, k->g[i].why);
	}
	if (!k->n)
		printf(" none killed");
	k->n = 0;
}
