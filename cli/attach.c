// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig attach / detach / drain: protect a running, unmodified server.
 *
 * attach finds the server's listeners through sock_diag, takes each one
 * from its process with pidfd_getfd() (the rights of ptrace), opens its
 * group, registers it (generation: by default the ctime of its owner's
 * executable, see --generation-by) and attaches the policy. With --once it
 * closes the copy it took; the daemon keeps it, so that the server's
 * close() ends nothing: it drains the listener once no owner holds it.
 * The daemon keeps the registration current: new listeners of the group
 * are registered as they appear, members that stopped listening are
 * forgotten a few seconds later (their half-open requests may still move).
 * It holds a lease on each group and renews it on every scan: should it
 * die or stop, new SYNs go by the kernel's hash once the lease runs out.
 * A clean stop (SIGTERM, SIGINT) unregisters every member it registered.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "attach.h"
#include "cli.h"
#include "diag.h"
#include "pidfile.h"
#include "sockmig.h"

#define FORGET_AFTER_MS 5000
#define SKIP_FIRST_MS	100   /* a listener not registered: first retry */
#define SKIP_MAX_MS	30000 /* and at most this long between two */

int take_listener(const struct sm_listener *l, bool quiet)
{
	int fd = -EBADF;

	if (l->nowners == 0) {
		if (!quiet)
			cli_error("port %d: cannot see which process holds cookie %llu (another "
				  "user's "
				  "/proc/PID/fd needs CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE)",
				  l->port, (unsigned long long)l->cookie);
		return -1;
	}
	for (int i = 0; i < l->nowners; i++) {
		fd = sm_diag_take(l, i);
		if (fd >= 0)
			return fd;
	}
	if (quiet)
		return -1;
	/* the owner exited or closed it since the scan: an expected race */
	if (fd == -ESRCH || fd == -EBADF || fd == -ESTALE) {
		cli_debug("cannot take fd %d of pid %d: %s (it let go since the scan)",
			  l->owners[0].fd, (int)l->owners[0].pid, strerror(-fd));
		return -1;
	}
	if (fd == -EPERM)
		cli_error(
			"cannot take fd %d of pid %d: not permitted (pidfd_getfd needs the rights "
			"of ptrace over it: CAP_SYS_PTRACE, or its owner where "
			"kernel.yama.ptrace_scope allows)",
			l->owners[0].fd, (int)l->owners[0].pid);
	else
		cli_error("cannot take fd %d of pid %d: %s", l->owners[0].fd, (int)l->owners[0].pid,
			  strerror(-fd));
	return -1;
}

uint32_t process_generation(pid_t pid)
{
	return (uint32_t)proc_start_time(pid);
}

/* The executable of @pid: its file's identity and its generation, the
 * file's ctime in seconds (when it was installed: a new file, or a file
 * replaced, is newer). A replaced executable (the process runs a deleted
 * file: its unlink changed the ctime) counts from its mtime, which the
 * unlink left alone. false when /proc/PID/exe cannot be read. */
static bool exe_of(pid_t pid, dev_t *dev, ino_t *ino, uint32_t *gen)
{
	static const char deleted[] = " (deleted)";
	char path[64], target[PATH_MAX];
	struct stat st;
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (stat(path, &st) < 0)
		return false;
	*dev = st.st_dev;
	*ino = st.st_ino;
	*gen = (uint32_t)st.st_ctim.tv_sec;
	len = readlink(path, target, sizeof(target) - 1);
	if (len > (ssize_t)strlen(deleted)) {
		target[len] = '\0';
		if (strcmp(target + len - strlen(deleted), deleted) == 0 &&
		    st.st_mtim.tv_sec < st.st_ctim.tv_sec)
			*gen = (uint32_t)st.st_mtim.tv_sec;
	}
	return true;
}

/* The start time of the oldest ancestor of @pid (itself included) that
 * runs the same executable without a break: a pre-fork server's master. */
static uint32_t tree_generation(pid_t pid)
{
	dev_t dev, pdev;
	ino_t ino, pino;
	uint32_t gen;
	pid_t up;

	if (!exe_of(pid, &dev, &ino, &gen))
		return process_generation(pid);
	for (int depth = 0; depth < 64; depth++) {
		up = proc_parent(pid);
		if (up <= 1 || !exe_of(up, &pdev, &pino, &gen) || pdev != dev || pino != ino)
			break;
		pid = up;
	}
	return process_generation(pid);
}

uint32_t generation_of(pid_t pid, enum gen_by mode)
{
	dev_t dev;
	ino_t ino;
	uint32_t gen;

	switch (mode) {
	case GEN_BY_PROCESS:
		return process_generation(pid);
	case GEN_BY_TREE:
		return tree_generation(pid);
	case GEN_BY_EXE:
	case GEN_BY_NONE:
		break;
	}
	return exe_of(pid, &dev, &ino, &gen) ? gen : 0;
}

/* A listener's generation: that of its oldest owner, the process that
 * created it (a pre-fork master, not the worker it was given to). */
static uint32_t listener_generation(const struct sm_listener *l, enum gen_by mode)
{
	unsigned long long start, first = 0;
	pid_t oldest = 0;

	for (int i = 0; i < l->nowners; i++) {
		start = proc_start_time(l->owners[i].pid);
		if (start && (!first || start < first)) {
			first = start;
			oldest = l->owners[i].pid;
		}
	}
	return oldest ? generation_of(oldest, mode) : 0;
}

/* ---- the lease ----------------------------------------------------------- */

/* Lengthen the lease of every group the scanner registered in. */
void scanner_renew(struct scanner *sc)
{
	for (int i = 0; i < sc->nlease && sc->lease_ms; i++)
		sockmig_group_set_lease(sc->lease[i].g, sc->lease_ms);
}

/* Keep @g (just opened for a registration) to renew its lease: it replaces
 * a handle of the same name (the group may have been pinned anew). Takes
 * @g; false when it could not (then the caller closes it). */
static bool lease_adopt(struct scanner *sc, struct sockmig_group *g)
{
	struct lease_ref *r = NULL, *more;

	sockmig_group_set_lease(g, sc->lease_ms);
	for (int i = 0; i < sc->nlease && !r; i++)
		if (strcmp(sc->lease[i].name, sockmig_group_name(g)) == 0)
			r = &sc->lease[i];
	if (!r) {
		more = realloc(sc->lease, (size_t)(sc->nlease + 1) * sizeof(*more));
		if (!more)
			return false;
		sc->lease = more;
		r = &sc->lease[sc->nlease++];
		snprintf(r->name, sizeof(r->name), "%s", sockmig_group_name(g));
	} else {
		sockmig_group_close(r->g);
	}
	r->g = g;
	return true;
}

/* Nothing of the scanner's is left in group @name: remove its lease. */
static void lease_drop(struct scanner *sc, const char *name)
{
	for (int j = 0; j < sc->nk; j++)
		if (strcmp(sc->k[j].group, name) == 0)
			return;
	for (int i = 0; i < sc->nlease; i++) {
		if (strcmp(sc->lease[i].name, name) != 0)
			continue;
		sockmig_group_set_lease(sc->lease[i].g, 0);
		sockmig_group_close(sc->lease[i].g);
		sc->lease[i] = sc->lease[--sc->nlease];
		return;
	}
}

/* A registration by a scanner without a lease (attach --once, hold, run)
 * maintains the group from now on: a lease left expired by an attach
 * daemon that died would make the policy ignore it. */
static void lease_clear_expired(struct sockmig_group *g)
{
	struct sockmig_lease le;

	if (sockmig_group_lease(g, &le) == 0 && le.expired)
		sockmig_group_set_lease(g, 0);
}

/* The pinned group of @l in this network namespace, if there is one. */
static struct sockmig_group *open_group_of(const struct sm_listener *l)
{
	char name[SOCKMIG_NAME_MAX];
	struct stat st;

	if (stat("/proc/thread-self/ns/net", &st) < 0 ||
	    sockmig_group_name_for(l->family, &l->addr, l->port, st.st_ino, name, sizeof(name)) < 0)
		return NULL;
	return sockmig_group_open_name(name, NULL);
}

/* The generation a member of @g with @cookie is registered with (-1 if it
 * is none), and its role. */
static int64_t member_generation(struct sockmig_group *g, uint64_t cookie, enum sockmig_role *role)
{
	struct sockmig_member_info m;

	if (sockmig_member_get(g, cookie, &m) < 0)
		return -1;
	*role = m.role;
	return m.generation;
}

/* Remember some owners of @l other than ourselves, to ask kcmp() later. */
static void note_owners(struct known *k, const struct sm_listener *l)
{
	k->nown = 0;
	for (int i = 0; i < l->nowners && k->nown < KNOWN_OWNERS; i++) {
		if (l->owners[i].pid == getpid())
			continue;
		k->own[k->nown].pid = l->owners[i].pid;
		k->own[k->nown].fd = l->owners[i].fd;
		k->nown++;
	}
}

/*
 * Whether kcmp() answers here (a kernel without CONFIG_KCMP, or a seccomp
 * profile that refuses it, does not): asked once, about our own fd.
 */
static bool kcmp_usable(int fd)
{
	static int ok = -1;

	if (ok < 0) {
		ok = syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, fd, fd) == 0;
		if (!ok)
			printf("kcmp() is not available (%s): a let-go is seen at the next scan\n",
			       strerror(errno));
	}
	return ok;
}

/*
 * One of the owners noted still holds the file that @k->fd refers to. Only
 * an answer that they do not (the process is gone: ESRCH; the fd is
 * closed: EBADF; another file: kcmp's 1 or 2) counts as a let-go; any
 * other error is "cannot tell", which is "held": a listener its server
 * still uses is never drained. Without kcmp, the owners the last /proc
 * scan found are the answer.
 */
static bool still_held(const struct known *k)
{
	if (!kcmp_usable(k->fd))
		return k->nown > 0;
	for (int i = 0; i < k->nown; i++) {
		long r = syscall(SYS_kcmp, getpid(), k->own[i].pid, KCMP_FILE, k->fd, k->own[i].fd);

		if (r == 0 || (r < 0 && errno != ESRCH && errno != EBADF))
			return true;
	}
	return false;
}

/*
 * The server let go of listener @k (closed it, exited, crashed) and only
 * attach holds it: drain it now, the way the server would have had to
 * (no new SYN, the handshakes in flight finish, then shutdown: its queue
 * migrates), then close it. Nothing is reset at the server's close.
 */
static void release_listener(struct known *k, bool quiet)
{
	struct sockmig_group *g = sockmig_group_open_name(k->group, NULL);
	struct sockmig_drain_report rep = {0};
	int err = -ENOENT;

	if (g) {
		err = sockmig_member_drain(g, k->fd, NULL, &rep);
		sockmig_group_close(g);
	}
	if (!quiet) {
		if (err == 0)
			printf("released cookie %llu: its server let go; drained: %llu migrated, "
			       "%u in flight left, waited %.1f ms\n",
			       (unsigned long long)k->cookie,
			       (unsigned long long)(rep.migrated[SOCKMIG_KIND_ESTABLISHED] +
						    rep.migrated[SOCKMIG_KIND_TFO]),
			       rep.inflight_left, (double)rep.wait_ns / 1e6);
		else
			printf("released cookie %llu: its server let go; not drained: %s\n",
			       (unsigned long long)k->cookie, sockmig_last_error());
	}
	close(k->fd);
	k->fd = -1;
}

int scanner_release(struct scanner *sc)
{
	if (!sc->hold_refs)
		return 0;
	for (int j = 0; j < sc->nk; j++) {
		const struct known *k = &sc->k[j];

		/* a scan registers the listeners that replace it first (the
		 * drain of the last registered one would be refused), then
		 * confirms that no other process holds it, and drains it */
		if (k->fd >= 0 && !still_held(k)) {
			scanner_scan(sc);
			return 1;
		}
	}
	return 0;
}

/* Listeners attach holds whose owners all let go: drained and closed. A
 * full owner scan confirms it (a process forked after the registration
 * may hold one too) before anything is drained. */
static void release_let_go(struct scanner *sc, struct sm_listener *ls, int n, bool fresh)
{
	bool scanned = false;

	for (int j = 0; j < sc->nk; j++) {
		struct known *k = &sc->k[j];
		struct sm_listener *l = NULL;

		/* without kcmp, every scan asks /proc instead */
		if (k->fd < 0 || (kcmp_usable(k->fd) && still_held(k)))
			continue;
		for (int i = 0; i < n && !l; i++)
			if (ls[i].cookie == k->cookie)
				l = &ls[i];
		/* the owners found in this scan after k's let-go was seen: no
		 * process could have come to hold it unseen since */
		if (l && !scanned && !(fresh && k->let_go)) {
			sm_diag_owners(ls, n);
			sc->owner_scans++;
			scanned = true;
		}
		if (l)
			note_owners(k, l);
		if (k->nown && still_held(k))
			continue;
		release_listener(k, sc->quiet);
		/* a drain may wait up to its deadline: the lease must outlast it */
		scanner_renew(sc);
	}
}

/* Register listener @l (taken from the first owner that lets us), or just
 * re-attach the policy when it is a member already (keeping its role: it
 * may be draining). Fills k's group, generation and role. */
static int register_listener(struct scanner *sc, const struct sm_listener *l, bool quiet,
			     struct known *k)
{
	int64_t generation = sc->gen;
	bool hold = sc->hold_refs;
	enum sockmig_role role = SOCKMIG_ROLE_ACTIVE;
	struct sockmig_group *g;
	int64_t have;
	int fd, err;

	/*
	 * Hold the server's socket as briefly as possible: a copy keeps the
	 * listener (and its epoll registrations in the server) alive. So the
	 * group is opened by name when it exists (loading the program takes
	 * milliseconds), and the socket is taken just for the registration.
	 */
	g = open_group_of(l);
	fd = take_listener(l, quiet);
	if (fd < 0) {
		sockmig_group_close(g);
		return -1;
	}
	if (!g)
		g = sockmig_group_open(fd, NULL);
	if (!g) {
		if (!quiet)
			cli_error("port %d: %s", l->port, sockmig_last_error());
		close(fd);
		return -1;
	}
	have = member_generation(g, l->cookie, &role);
	if (have >= 0) {
		k->gen = (uint32_t)have;
		k->holder = role == SOCKMIG_ROLE_HOLDER;
		k->drained = role == SOCKMIG_ROLE_DRAINING;
		err = sockmig_group_attach(g, fd);
	} else {
		SOCKMIG_OPTS(sockmig_member_opts, mo,
			     .generation = generation >= 0 ? (uint32_t)generation
							   : listener_generation(l, sc->gen_by),
			     .pid = (uint32_t)l->owners[0].pid);
		k->gen = mo.generation;
		k->holder = false;
		k->drained = false;
		err = sockmig_member_add(g, fd, &mo);
	}
	if (err < 0 && !quiet)
		cli_error("port %d: %s", l->port, sockmig_last_error());
	k->cookie = l->cookie;
	k->family = l->family;
	memcpy(&k->addr, &l->addr, sizeof(k->addr));
	k->owner = l->owners[0].pid;
	k->gone_ms = 0;
	snprintf(k->group, sizeof(k->group), "%s", sockmig_group_name(g));
	if (err >= 0 && !sc->lease_ms)
		lease_clear_expired(g);
	if (err < 0 || !sc->lease_ms || !lease_adopt(sc, g))
		sockmig_group_close(g);
	k->fd = -1;
	k->nown = 0;
	if (hold && err >= 0) {
		k->fd = fd;
		note_owners(k, l);
	} else {
		close(fd);
	}
	return err < 0 ? -1 : 0;
}

static bool owned_by(const struct sm_listener *l, pid_t pid)
{
	for (int i = 0; i < l->nowners; i++)
		if (l->owners[i].pid == pid)
			return true;
	return false;
}

/*
 * A newer generation appeared in a group: mark the live members of older
 * generations draining, so that new SYNs go to the new server only and the
 * old one's close moves nothing but its queue (a reload, done the way
 * sockmig_member_drain() would do it). Skipped with --generation-by none.
 */
static void drain_older(struct known *k, int nk, bool quiet)
{
	for (int j = 0; j < nk; j++) {
		struct sockmig_group *g = NULL;
		uint32_t newest = 0;

		for (int i = 0; i < nk; i++)
			if (!k[i].gone_ms && !k[i].holder && strcmp(k[i].group, k[j].group) == 0 &&
			    k[i].gen > newest)
				newest = k[i].gen;
		if (k[j].gone_ms || k[j].drained || k[j].holder || k[j].gen >= newest)
			continue;
		g = sockmig_group_open_name(k[j].group, NULL);
		if (g) {
			SOCKMIG_OPTS(sockmig_member_opts, mo, .role = SOCKMIG_ROLE_DRAINING);

			if (sockmig_member_set(g, k[j].cookie, &mo) == 0) {
				k[j].drained = true;
				if (!quiet)
					printf("draining cookie %llu (generation %u < %u)\n",
					       (unsigned long long)k[j].cookie, k[j].gen, newest);
			}
			sockmig_group_close(g);
		}
	}
}

static volatile sig_atomic_t stop_attach;

static void on_stop(int sig)
{
	(void)sig;
	stop_attach = 1;
}

/* SIGHUP (a stray `kill -HUP`, a reload aimed at another daemon): scan now. */
static void on_hup(int sig)
{
	(void)sig;
}

unsigned long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000;
}

static struct skipped *skipped_of(struct scanner *sc, uint64_t cookie)
{
	for (int j = 0; j < sc->nskip; j++)
		if (sc->skip[j].cookie == cookie)
			return &sc->skip[j];
	return NULL;
}

/* @cookie was not registered: not before a backoff, doubled each time. */
static void skip_listener(struct scanner *sc, uint64_t cookie, unsigned long long now)
{
	struct skipped *s = skipped_of(sc, cookie);

	if (!s) {
		/* full: the one to be retried soonest makes room */
		if (sc->nskip == SCANNER_SKIP_MAX) {
			s = &sc->skip[0];
			for (int j = 1; j < sc->nskip; j++)
				if (sc->skip[j].retry_ms < s->retry_ms)
					s = &sc->skip[j];
		} else {
			s = &sc->skip[sc->nskip++];
		}
		s->cookie = cookie;
		s->backoff_ms = SKIP_FIRST_MS;
	} else if (s->backoff_ms < SKIP_MAX_MS) {
		s->backoff_ms *= 2;
	}
	s->retry_ms = now + s->backoff_ms;
}

int scanner_scan(struct scanner *sc)
{
	char name[SOCKMIG_NAME_MAX];
	struct sm_listener *ls = NULL;
	struct known *k = sc->k;
	int n, registered = 0;
	unsigned long long now = now_ms();
	bool fresh = false; /* every process's owners of ls read in this scan */

	scanner_renew(sc);
	/* before the owner scan: the listeners attach holds whose noted
	 * owners let go of them (that scan then confirms it) */
	for (int j = 0; j < sc->nk; j++)
		k[j].let_go = k[j].fd >= 0 && !still_held(&k[j]);
	n = sm_diag_dump(0, sc->port, &ls);
	if (n < 0)
		return n;
	/* forget skipped listeners that are gone */
	for (int j = 0; j < sc->nskip; j++) {
		bool present = false;

		for (int i = 0; i < n && !present; i++)
			present = ls[i].cookie == sc->skip[j].cookie;
		if (!present)
			sc->skip[j--] = sc->skip[--sc->nskip];
	}
	/* owners only when there is a socket to try: new, or its backoff over;
	 * with --pid, only that process's fds tell (it must hold the listener) */
	for (int i = 0; i < n; i++) {
		const struct skipped *s = skipped_of(sc, ls[i].cookie);
		bool seen = s && s->retry_ms > now;

		for (int j = 0; j < sc->nk && !seen; j++)
			seen = k[j].cookie == ls[i].cookie;
		if (!seen) {
			if (sc->pid) {
				sm_diag_owners_of(ls, n, sc->pid);
			} else {
				sm_diag_owners(ls, n);
				fresh = true;
			}
			sc->owner_scans++;
			cli_debug("scan %lu for the owners of %d listeners (%s)", sc->owner_scans,
				  n, sc->pid ? "one process" : "every process");
			break;
		}
	}
	for (int j = 0; j < sc->nk; j++) {
		bool present = false;

		for (int i = 0; i < n; i++)
			present |= ls[i].cookie == k[j].cookie;
		if (!present && !k[j].gone_ms) {
			k[j].gone_ms = now;
			if (k[j].fd >= 0) { /* shut down: its queue has moved */
				close(k[j].fd);
				k[j].fd = -1;
			}
		}
	}
	for (int i = 0; i < n; i++) {
		struct skipped *s = skipped_of(sc, ls[i].cookie);
		bool seen = false;

		for (int j = 0; j < sc->nk; j++)
			seen |= k[j].cookie == ls[i].cookie;
		if (seen || sc->nk >= SCANNER_MAX || (s && s->retry_ms > now))
			continue;
		if (sc->pid && !owned_by(&ls[i], sc->pid)) {
			skip_listener(sc, ls[i].cookie, now);
			continue;
		}
		/* a retry says nothing: its error was said the first time */
		if (register_listener(sc, &ls[i], sc->quiet || s, &k[sc->nk]) < 0) {
			skip_listener(sc, ls[i].cookie, now);
			continue;
		}
		if (s)
			*s = sc->skip[--sc->nskip];
		sc->nk++;
		registered++;
		if (!sc->quiet)
			printf("registered %s port %d cookie %llu (pid %d fd %d)\n",
			       ls[i].family == AF_INET ? "tcp4" : "tcp6", ls[i].port,
			       (unsigned long long)ls[i].cookie, (int)ls[i].owners[0].pid,
			       ls[i].owners[0].fd);
	}
	if (registered && sc->gen_by != GEN_BY_NONE)
		drain_older(k, sc->nk, sc->quiet);
	if (sc->hold_refs)
		release_let_go(sc, ls, n, fresh);
	/* forget members gone for a while: their requests have moved by now */
	for (int j = 0; j < sc->nk; j++) {
		struct sockmig_group *g;

		if (!k[j].gone_ms || now - k[j].gone_ms < FORGET_AFTER_MS)
			continue;
		g = sockmig_group_open_name(k[j].group, NULL);
		if (g) {
			sockmig_member_leave_cookie(g, k[j].cookie);
			sockmig_group_close(g);
		}
		snprintf(name, sizeof(name), "%s", k[j].group);
		k[j--] = k[--sc->nk];
		lease_drop(sc, name);
	}
	scanner_renew(sc);
	free(ls);
	fflush(stdout);
	return registered;
}

static void attach_usage(FILE *f)
{
	fprintf(f,
		"Usage: sockmig attach (--pid PID [--port P] | --port P) [options]\n"
		"  -p, --pid PID           the server process whose listeners to register\n"
		"  -P, --port P            the port whose listeners to register (every process)\n"
		"  -b, --generation-by M   generations by exe (default), tree, process or none\n"
		"  -g, --generation G      register every listener with generation G\n"
		"  -k, --keep-old          never drain older generations (as -b none)\n"
		"  -1, --once              register and exit: no daemon, no lease\n"
		"  -f, --foreground        stay in the foreground and log to stdout\n"
		"  -i, --interval MS       scan every MS ms (100); lease max(2 s, 10 x MS)\n"
		"  -r, --release-interval MS  check every MS ms (5) whether a server let go\n"
		"                          of a listener, and drain it then\n"
		"  -h, --help              this help\n");
}

/* The lease of an attach daemon scanning every @interval ms: long enough
 * that a slow scan (a drain waits up to 1 s) never lets it run out, short
 * enough that listeners added after a crash wait a few seconds at most. */
static uint32_t lease_for(uint64_t interval)
{
	return interval * 10 > 2000 ? (uint32_t)(interval * 10) : 2000;
}

static bool parse_gen_by(const char *arg, enum gen_by *out)
{
	static const char *const names[] = {[GEN_BY_PROCESS] = "process",
					    [GEN_BY_EXE] = "exe",
					    [GEN_BY_TREE] = "tree",
					    [GEN_BY_NONE] = "none"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(arg, names[i]) == 0) {
			*out = (enum gen_by)i;
			return true;
		}
	cli_error("--generation-by: '%s' is not exe, tree, process or none", arg);
	return false;
}

int do_attach(int argc, char **argv)
{
	static const struct option opts[] = {
		{"pid", required_argument, NULL, 'p'},
		{"port", required_argument, NULL, 'P'},
		{"generation", required_argument, NULL, 'g'},
		{"once", no_argument, NULL, '1'},
		{"keep-old", no_argument, NULL, 'k'},
		{"generation-by", required_argument, NULL, 'b'},
		{"foreground", no_argument, NULL, 'f'},
		{"interval", required_argument, NULL, 'i'},
		{"release-interval", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t v, interval = 100, release_ms = 5;
	int64_t gen = -1;
	pid_t pid = 0;
	int port = 0, opt, n, left;
	bool once = false, fg = false, keep_old = false, by_given = false;
	enum gen_by by = GEN_BY_EXE;
	static struct scanner sc;
	struct sigaction sa = {.sa_handler = on_stop}, hup = {.sa_handler = on_hup};
	struct pidfile pf = {.fd = -1};

	while ((opt = cli_getopt(argc, argv, "p:P:g:1kb:fi:r:h", opts)) != -1) {
		switch (opt) {
		case 'p':
			if (!parse_u64("--pid", optarg, 1, 4194304, &v))
				return 2;
			pid = (pid_t)v;
			break;
		case 'P':
			if (!parse_u64("--port", optarg, 1, 65535, &v))
				return 2;
			port = (int)v;
			break;
		case 'g':
			if (!parse_u64("--generation", optarg, 0, UINT32_MAX, &v))
				return 2;
			gen = (int64_t)v;
			break;
		case '1':
			once = true;
			break;
		case 'k':
			keep_old = true;
			break;
		case 'b':
			if (!parse_gen_by(optarg, &by))
				return 2;
			by_given = true;
			break;
		case 'f':
			fg = true;
			break;
		case 'i':
			if (!parse_u64("--interval", optarg, 10, 60000, &interval))
				return 2;
			break;
		case 'r':
			if (!parse_u64("--release-interval", optarg, 1, 60000, &release_ms))
				return 2;
			break;
		case 'h':
			attach_usage(stdout);
			return 0;
		default:
			cli_bad_option("attach", argv);
			return 2;
		}
	}
	if (optind < argc) {
		cli_error("attach: unexpected argument '%s'", argv[optind]);
		return 2;
	}
	if (!pid && !port) {
		cli_error("attach: give --pid PID, --port P or both");
		return 2;
	}
	if (keep_old && by_given && by != GEN_BY_NONE) {
		cli_error("attach: --keep-old is --generation-by none, not with --generation-by %s",
			  by == GEN_BY_EXE    ? "exe"
			  : by == GEN_BY_TREE ? "tree"
					      : "process");
		return 2;
	}
	if (keep_old)
		by = GEN_BY_NONE;
	if (pid && kill(pid, 0) < 0 && errno == ESRCH) {
		cli_error("--pid: no process %d", (int)pid);
		return 1;
	}
	sc.port = port;
	sc.pid = pid;
	sc.gen = gen;
	sc.gen_by = by;
	/* the daemon keeps a reference to each listener (not --once: nobody
	 * would be left to drain it), and a lease on each group: nobody would
	 * renew one of --once */
	sc.hold_refs = !once;
	sc.lease_ms = once ? 0 : lease_for(interval);
	/* the pid file first: a second daemon of the port registers nothing,
	 * and in the foreground the file names this process before its first
	 * "registered" line */
	if (port && !once) {
		pid_t owner;
		int err = pidfile_acquire(&pf, "attach", port, &owner);

		if (err == -EBUSY) {
			cli_error("sockmig attach (pid %d) already watches port %d", (int)owner,
				  port);
			return 1;
		} else if (err) {
			cli_error("attach: cannot write its pid file %s: %s", pf.path,
				  strerror(-err));
			return 1;
		}
		if (fg)
			pidfile_write(&pf);
	}
	n = scanner_scan(&sc);
	if (n < 0) {
		cli_error("cannot list listening sockets: %s", strerror(-n));
		pidfile_release(&pf);
		return 1;
	}
	if (sc.nk == 0) {
		char fddir[64];

		snprintf(fddir, sizeof(fddir), "/proc/%d/fd", (int)pid);
		if (pid && access(fddir, R_OK) < 0 && errno == EACCES)
			cli_error("cannot see the sockets of pid %d: not permitted (sockmig needs "
				  "the rights of ptrace over it: CAP_DAC_READ_SEARCH and "
				  "CAP_SYS_PTRACE, or its owner)",
				  (int)pid);
		else if (pid)
			cli_error(
				"pid %d has no SO_REUSEPORT listener%s that sockmig could register",
				(int)pid, port ? " on that port" : "");
		else if (!cli_errors) /* else each listener's error said why */
			cli_error("port %d has no listener that sockmig could register", port);
		scanner_stop(&sc);
		pidfile_release(&pf);
		return 1;
	}
	if (once)
		return 0;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &hup, NULL);
	if (!fg && daemon(0, 0) < 0) {
		cli_error("cannot become a daemon: %s", strerror(errno));
		pidfile_release(&pf);
		return 1;
	}
	if (port && !fg)
		pidfile_write(&pf);
	sc.quiet = !fg;
	while (!stop_attach) {
		unsigned long long next = now_ms() + interval;

		/* the release check every release_ms (a server's close is
		 * drained within it), the full scan every interval */
		for (unsigned long long t = now_ms(); t < next && !stop_attach; t = now_ms()) {
			uint64_t nap = next - t < release_ms ? next - t : release_ms;
			struct timespec ts = {.tv_sec = (time_t)(nap / 1000),
					      .tv_nsec = (long)(nap % 1000) * 1000000L};

			nanosleep(&ts, NULL);
			if (!stop_attach && nap == release_ms)
				scanner_release(&sc);
		}
		if (!stop_attach)
			scanner_scan(&sc);
	}
	/* nobody keeps the registration current any more: unregister it all,
	 * so that the policy leaves new SYNs to the kernel's hash over every
	 * listener rather than to a set that no longer changes */
	left = scanner_stop(&sc);
	printf("stopped: %d member%s unregistered; the policy stays attached and leaves new "
	       "connections to the kernel's hash (sockmig detach --port P removes it)\n",
	       left, left == 1 ? "" : "s");
	fflush(stdout);
	pidfile_release(&pf);
	return 0;
}

/* ---- detach ---------------------------------------------------------------- */

/* Stop the attach daemon of @port, if one runs (the live holder of its
 * locked pid file, still the process it names). */
static void stop_daemon(int port)
{
	pid_t pid = pidfile_owner("attach", port);
	unsigned long long start = proc_start_time(pid), end = now_ms() + 5000;
	struct timespec nap = {0, 10000000};

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	/* until it unregistered what it had (a scan under way could otherwise
	 * attach the policy again after us); at most 5 s */
	while (start && proc_start_time(pid) == start && pidfile_owner("attach", port) == pid &&
	       now_ms() < end)
		nanosleep(&nap, NULL);
}

int do_detach(int argc, char **argv)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'P'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	char(*names)[SOCKMIG_NAME_MAX] = NULL;
	struct sm_listener *ls = NULL;
	uint64_t v;
	int port = 0, opt, n, done = 0;

	while ((opt = cli_getopt(argc, argv, "P:h", opts)) != -1) {
		if (opt == 'P') {
			if (!parse_u64("--port", optarg, 1, 65535, &v))
				return 2;
			port = (int)v;
		} else if (opt == 'h') {
			printf("Usage: sockmig detach --port P\n"
			       "  -P, --port P    stop the port's attach, detach its policy\n"
			       "  -h, --help      this help\n");
			return 0;
		} else {
			cli_bad_option("detach", argv);
			return 2;
		}
	}
	if (optind < argc) {
		cli_error("detach: unexpected argument '%s'", argv[optind]);
		return 2;
	}
	if (!port) {
		cli_error("detach: give --port P");
		return 2;
	}
	stop_daemon(port);
	n = sm_diag_listeners(0, port, &ls);
	for (int i = 0; i < n; i++) {
		char name[SOCKMIG_NAME_MAX];
		struct stat st;
		struct sockmig_group *g;
		int fd = -1;

		stat("/proc/thread-self/ns/net", &st);
		if (sockmig_group_name_for(ls[i].family, &ls[i].addr, ls[i].port, st.st_ino, name,
					   sizeof(name)) < 0)
			continue;
		/* give the kernel group its default selection back */
		fd = take_listener(&ls[i], true);
		if (fd >= 0) {
			/* the program stays attached after attach's clean stop,
			 * with no group pinned: removing it is detaching too */
			if (sockmig_group_detach(fd) == 0)
				done++;
			close(fd);
		}
		g = sockmig_group_open_name(name, NULL);
		if (g) {
			sockmig_group_destroy(g);
			sockmig_group_close(g);
			done++;
		}
	}
	free(ls);
	/* groups whose listeners are all gone: remove their pins too (this
	 * network namespace's groups of this port only) */
	n = cli_group_names(port, &names);
	for (int i = 0; i < n; i++) {
		struct sockmig_group *g = sockmig_group_open_name(names[i], NULL);

		if (g) {
			sockmig_group_destroy(g);
			sockmig_group_close(g);
			done++;
		}
	}
	free(names);
	if (!done) {
		cli_error("port %d is not attached", port);
		return 1;
	}
	printf("detached port %d\n", port);
	return 0;
}

void scanner_leave_all(struct scanner *sc)
{
	for (int j = 0; j < sc->nk; j++) {
		if (sc->k[j].fd >= 0)
			close(sc->k[j].fd);
		struct sockmig_group *g = sockmig_group_open_name(sc->k[j].group, NULL);

		if (g) {
			sockmig_member_leave_cookie(g, sc->k[j].cookie);
			sockmig_group_close(g);
		}
	}
	sc->nk = 0;
}

int scanner_stop(struct scanner *sc)
{
	struct sm_listener *ls = NULL;
	int n, left = 0;

	/* the last release pass: listeners whose owners let go are drained */
	n = sm_diag_dump(0, sc->port, &ls);
	if (n >= 0 && sc->hold_refs)
		release_let_go(sc, ls, n, false);
	free(ls);
	for (int j = 0; j < sc->nk; j++) {
		struct sockmig_group *g;

		if (sc->k[j].fd >= 0)
			close(sc->k[j].fd);
		/* a holder is its hold daemon's (or run's) to remove */
		g = sc->k[j].holder ? NULL : sockmig_group_open_name(sc->k[j].group, NULL);
		if (g) {
			left += sockmig_member_leave_cookie(g, sc->k[j].cookie) == 0;
			sockmig_group_close(g);
		}
	}
	sc->nk = 0;
	for (int i = 0; i < sc->nlease; i++) {
		sockmig_group_set_lease(sc->lease[i].g, 0);
		sockmig_group_close(sc->lease[i].g);
	}
	free(sc->lease);
	sc->lease = NULL;
	sc->nlease = 0;
	return left;
}
