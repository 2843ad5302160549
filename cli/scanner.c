// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The scanner of attach, hold and run: one scan registers the listeners
 * sock_diag shows that it has not seen (each taken from its process with
 * pidfd_getfd() just for the registration), marks older generations
 * draining, forgets members gone a few seconds, and renews the leases of
 * the groups it registered in. Its stop unregisters what it registered.
 * The let-go checks are in scanner_release.c, generations in scanner_gen.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attach.h"
#include "cli.h"
#include "diag.h"
#include "sockmig.h"

#define FORGET_AFTER_MS 5000
#define SKIP_FIRST_MS	100   /* a listener not registered: first retry */
#define SKIP_MAX_MS	30000 /* and at most this long between two */

/* What one failed pidfd_getfd() of an owner's fd says. */
static const char *take_error(int err)
{
	switch (err) {
	case -ESRCH:
		return "gone (ESRCH: the process exited)";
	case -EBADF:
		return "gone (EBADF: the fd was closed)";
	case -ESTALE:
		return "changed (ESTALE: the fd is another socket now)";
	case -EPERM:
		return "not permitted (pidfd_getfd needs the rights of ptrace over it: "
		       "CAP_SYS_PTRACE, or its owner where kernel.yama.ptrace_scope allows)";
	case -ENOSYS:
		return "not on this kernel (pidfd_getfd came in Linux 5.6)";
	default:
		return strerror(-err);
	}
}

bool take_race(int err)
{
	return err == -ESRCH || err == -EBADF || err == -ESTALE;
}

int take_listener_why(const struct sm_listener *l, char *why, size_t size)
{
	int fd, err = 0;
	size_t len = 0;

	if (l->nowners == 0) {
		snprintf(why, size,
			 "port %d: cannot see which process holds cookie %llu (another user's "
			 "/proc/PID/fd needs CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE)",
			 l->port, (unsigned long long)l->cookie);
		return -ENOENT;
	}
	why[0] = '\0';
	for (int i = 0; i < l->nowners; i++) {
		fd = sm_diag_take(l, i);
		if (fd >= 0)
			return fd;
		/* every owner tried, by what it said; a race only if all were */
		if (!err || take_race(err))
			err = fd;
		if (len < size)
			len += (size_t)snprintf(why + len, size - len, "%sfd %d of pid %d: %s",
						i ? ", " : "", l->owners[i].fd,
						(int)l->owners[i].pid, take_error(fd));
	}
	return err;
}

int take_listener(const struct sm_listener *l, bool quiet)
{
	char why[SCANNER_WHY_LEN];
	int fd = take_listener_why(l, why, sizeof(why));

	if (fd >= 0 || quiet)
		return fd >= 0 ? fd : -1;
	/* the owner exited or closed it since the scan: an expected race */
	if (take_race(fd))
		cli_debug("cannot take %s (it let go since the scan)", why);
	else if (l->nowners == 0)
		cli_error("%s", why);
	else
		cli_error("cannot take %s", why);
	return -1;
}

void scanner_why(struct scanner *sc, bool quiet, bool race, bool soft, const char *fmt, ...)
{
	char text[SCANNER_WHY_LEN];
	va_list ap;

	sc->nrace += race;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (!sc->collect) {
		if (quiet)
			return;
		if (race)
			cli_debug("%s (it let go since the scan)", text);
		else if (soft)
			cli_debug("%s", text);
		else
			cli_error("%s", text);
		return;
	}
	for (int i = 0; i < sc->nwhy; i++)
		if (strcmp(sc->why[i].text, text) == 0)
			return;
	if (sc->nwhy < SCANNER_WHY_MAX) {
		snprintf(sc->why[sc->nwhy].text, sizeof(sc->why[0].text), "%s", text);
		sc->why[sc->nwhy].soft = soft;
		sc->why[sc->nwhy++].race = race;
	}
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
	struct sockmig_group_id id;

	if (sockmig_group_id_make(l->family, &l->addr, l->port, 0, &id) < 0)
		return NULL;
	return sockmig_group_open_id(&id, NULL);
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

/*
 * Whether listener @l is still in sock_diag's dump. The dump comes before
 * the scan of /proc for owners: a listener its server closed in between
 * has no owner seen, a race, not another user's process.
 */
static bool still_listening(const struct sm_listener *l)
{
	struct sm_listener *ls = NULL;
	int n = sm_diag_dump(l->family, l->port, &ls);
	bool found = n < 0; /* cannot tell: as if it were */

	for (int i = 0; i < n && !found; i++)
		found = ls[i].cookie == l->cookie;
	free(ls);
	return found;
}

/* register_listener()'s failures other than -ENOENT (no owner seen) and
 * -EPERM (the take refused): a race, a resource, a listener the group
 * refuses. Not -1, which is -EPERM. */
#define REG_FAILED (-EAGAIN)

/* Register listener @l (taken from the first owner that lets us), or just
 * re-attach the policy when it is a member already (keeping its role: it
 * may be draining). Fills k's group, generation and role. 0, -ENOENT,
 * -EPERM or REG_FAILED. */
static int register_listener(struct scanner *sc, const struct sm_listener *l, bool quiet,
			     struct known *k)
{
	int64_t generation = sc->gen;
	bool hold = sc->hold_refs;
	enum sockmig_role role = SOCKMIG_ROLE_ACTIVE;
	char why[SCANNER_WHY_LEN];
	struct sockmig_group *g;
	int64_t have;
	int fd, err;

	/*
	 * Hold the server's socket as briefly as possible: a copy keeps the
	 * listener (and its epoll registrations in the server) alive. So the
	 * group is opened by name when it exists (loading the program takes
	 * milliseconds), and the socket is taken just for the registration.
	 */
	sc->ntried++;
	g = open_group_of(l);
	fd = take_listener_why(l, why, sizeof(why));
	if (fd < 0) {
		bool unseen = l->nowners == 0 && still_listening(l);

		if (l->nowners == 0)
			scanner_why(sc, quiet, !unseen, false, "%s", why);
		else
			scanner_why(sc, quiet, take_race(fd), false, "cannot take %s", why);
		sockmig_group_close(g);
		/* what will not change by itself (see scanner_unregistrable) */
		return unseen ? -ENOENT : fd == -EPERM ? -EPERM : REG_FAILED;
	}
	if (!g)
		g = sockmig_group_open(fd, NULL);
	if (!g) {
		scanner_why(sc, quiet, false, false, "port %d: %s", l->port, sockmig_last_error());
		close(fd);
		return REG_FAILED;
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
	if (err < 0)
		scanner_why(sc, quiet, false, false, "port %d: %s", l->port, sockmig_last_error());
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
	if (hold && err >= 0 && !k->holder) {
		k->fd = fd;
		note_owners(k, l);
	} else {
		close(fd);
	}
	return err < 0 ? REG_FAILED : 0;
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

unsigned long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000;
}

struct skipped *skipped_of(struct scanner *sc, uint64_t cookie)
{
	for (int j = 0; j < sc->nskip; j++)
		if (sc->skip[j].cookie == cookie)
			return &sc->skip[j];
	return NULL;
}

/* Forget the skipped sockets of this kind (@udp) that are gone from @ls. */
void skipped_forget_gone(struct scanner *sc, const struct sm_listener *ls, int n, bool udp)
{
	for (int j = 0; j < sc->nskip; j++) {
		bool present = sc->skip[j].udp != udp;

		for (int i = 0; i < n && !present; i++)
			present = ls[i].cookie == sc->skip[j].cookie;
		if (!present)
			sc->skip[j--] = sc->skip[--sc->nskip];
	}
}

/* @cookie was not registered: not before a backoff, doubled each time. */
void skip_listener(struct scanner *sc, uint64_t cookie, unsigned long long now, bool udp)
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
		s->udp = udp;
		s->unreg_since = s->unreg_last = 0;
	} else if (s->backoff_ms < SKIP_MAX_MS) {
		s->backoff_ms *= 2;
	}
	s->retry_ms = now + s->backoff_ms;
}

/* The try of skipped listener @l at @now failed with @err. */
static void note_unregistrable(struct scanner *sc, const struct sm_listener *l, int err,
			       unsigned long long now)
{
	struct skipped *s = skipped_of(sc, l->cookie);

	if (!s)
		return;
	if (err != -ENOENT && err != -EPERM) {
		s->unreg_since = s->unreg_last = 0;
		return;
	}
	if (!s->unreg_since || s->unreg_err != err)
		s->unreg_since = now;
	s->unreg_last = now;
	s->unreg_err = err;
	s->family = l->family;
	memcpy(&s->addr, &l->addr, sizeof(s->addr));
	s->v6only = l->v6only;
}

const struct skipped *scanner_unregistrable(const struct scanner *sc, unsigned long long ms,
					    int *from)
{
	for (int j = *from; j < sc->nskip; j++)
		if (!sc->skip[j].udp && sc->skip[j].unreg_since &&
		    sc->skip[j].unreg_last - sc->skip[j].unreg_since >= ms) {
			*from = j + 1;
			return &sc->skip[j];
		}
	*from = sc->nskip;
	return NULL;
}

void scanner_unregistrable_forget(struct scanner *sc, uint64_t cookie)
{
	struct skipped *s = skipped_of(sc, cookie);

	if (s) {
		s->unreg_since = s->unreg_last = 0;
		s->retry_ms = now_ms(); /* tried again at the next scan */
	}
}

int scanner_scan(struct scanner *sc)
{
	char name[SOCKMIG_NAME_MAX];
	struct sm_listener *ls = NULL;
	struct known *k = sc->k;
	int n, err, registered = 0;
	unsigned long long now = now_ms();
	bool fresh = false; /* every process's owners of ls read in this scan */
	bool blind = false; /* the owner scan failed: "no owner seen" says nothing */

	sc->first_new = sc->nk;
	scanner_renew(sc);
	if (sc->no_tcp) /* attach --proto udp */
		return scanner_udp_scan(sc);
	/* before the owner scan: the listeners attach holds whose noted
	 * owners let go of them (that scan then confirms it) */
	for (int j = 0; j < sc->nk; j++)
		k[j].let_go = k[j].fd >= 0 && !still_held(&k[j]);
	n = sm_diag_dump(0, sc->port, &ls);
	if (n < 0)
		return n;
	/* forget skipped listeners that are gone (UDP sockets: the UDP scan's) */
	skipped_forget_gone(sc, ls, n, false);
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
				blind = sm_diag_owners(ls, n) < 0;
				fresh = !blind;
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
	/* forget members gone for a while (their requests have moved by now)
	 * before registering: what this scan registers stays at the end */
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
	sc->first_new = sc->nk;
	for (int i = 0; i < n; i++) {
		struct skipped *s = skipped_of(sc, ls[i].cookie);
		bool seen = false;

		for (int j = 0; j < sc->nk; j++)
			seen |= k[j].cookie == ls[i].cookie;
		if (seen || sc->nk >= SCANNER_MAX || (s && s->retry_ms > now))
			continue;
		if (sc->pid && !owned_by(&ls[i], sc->pid)) {
			skip_listener(sc, ls[i].cookie, now, false);
			continue;
		}
		/* a retry says nothing: its error was said the first time */
		err = register_listener(sc, &ls[i], sc->quiet || s, &k[sc->nk]);
		if (err < 0) {
			skip_listener(sc, ls[i].cookie, now, false);
			note_unregistrable(sc, &ls[i], blind && err == -ENOENT ? REG_FAILED : err,
					   now);
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
	scanner_renew(sc);
	free(ls);
	if (sc->udp) {
		/* a kernel without UDP sock_diag: TCP alone, unless UDP was asked */
		n = scanner_udp_scan(sc);
		if (n > 0)
			registered += n;
		else if (n < 0 && sc->udp_said) {
			sc->udp_list_failed = true;
			return n;
		}
	}
	fflush(stdout);
	return registered;
}

int scanner_count(const struct scanner *sc)
{
	return sc->nk + sc->nu;
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
	sc->nu = 0; /* UDP sockets stay registered: attach holds no copy of them */
	for (int i = 0; i < sc->nlease; i++) {
		sockmig_group_set_lease(sc->lease[i].g, 0);
		sockmig_group_close(sc->lease[i].g);
	}
	free(sc->lease);
	sc->lease = NULL;
	sc->nlease = 0;
	return left;
}
