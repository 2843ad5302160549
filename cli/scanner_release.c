// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The scanner's let-go checks (attach's daemon keeps a reference to each
 * listener): whether the server still holds a listener (kcmp() against the
 * owners noted at its registration), and the drain of one it let go of.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "attach.h"
#include "diag.h"
#include "sockmig.h"

/* Remember some owners of @l other than ourselves, to ask kcmp() later. */
void note_owners(struct known *k, const struct sm_listener *l)
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
bool still_held(const struct known *k)
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
void release_let_go(struct scanner *sc, struct sm_listener *ls, int n, bool fresh)
{
	bool scanned = false, blind = false;

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
			blind = sm_diag_owners(ls, n) < 0;
			sc->owner_scans++;
			scanned = true;
		}
		/* a failed owner scan (out of fds or memory) saw no one: that
		 * says nothing, and a later child may still serve from it */
		if (l && scanned && blind)
			continue;
		if (l)
			note_owners(k, l);
		if (k->nown && still_held(k))
			continue;
		release_listener(k, sc->quiet);
		/* a drain may wait up to its deadline: the lease must outlast it */
		scanner_renew(sc);
	}
}
