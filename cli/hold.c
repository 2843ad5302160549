// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sockmig hold: the holder role's mechanics; see hold.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "attach.h"
#include "diag.h"
#include "cli.h"
#include "hold.h"
#include "pidfile.h"
#include "sockmig.h"

int holder_config(struct holder *h, const char *addr, int port, const char *user)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&h->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&h->addr;

	memset(h, 0, sizeof(*h));
	h->port = port;
	h->follow = !addr;
	if (!addr || inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		if (!addr)
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		h->alen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		h->alen = sizeof(*sin6);
	} else {
		cli_error("--addr: '%s' is not an IPv4 or IPv6 address", addr);
		return -1;
	}
	h->uid = geteuid();
	h->gid = getegid();
	if (user) {
		struct passwd *pw = getpwnam(user);

		if (!pw) {
			cli_error("--user: no user '%s'", user);
			return -1;
		}
		h->uid = pw->pw_uid;
		h->gid = pw->pw_gid;
	}
	return 0;
}

int holder_open(struct holder *h)
{
	struct sockmig_holder_opts o = {
		.sz = sizeof(o), .set_ids = h->uid != geteuid(), .uid = h->uid, .gid = h->gid};

	h->lh = sockmig_holder_open((struct sockaddr *)&h->addr, h->alen, &o);
	if (!h->lh) {
		cli_error("%s", sockmig_last_error());
		return -1;
	}
	h->cookie = sockmig_holder_cookie(h->lh);
	return 0;
}

int holder_rotate(struct holder *h)
{
	uint64_t moved = 0;

	if (sockmig_holder_rotate(h->lh, (struct sockaddr *)&h->addr, h->alen, &moved) < 0) {
		fprintf(stderr, "sockmig: holder: %s\n", sockmig_last_error());
		return -1;
	}
	h->cookie = sockmig_holder_cookie(h->lh);
	h->moved += moved;
	h->rotations++;
	return 0;
}

int holder_server_joined(struct holder *h, const struct known *k)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&h->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&h->addr;
	bool same = k->family == h->addr.ss_family &&
		    (k->family == AF_INET
			     ? sin->sin_addr.s_addr == k->addr.v4.s_addr
			     : memcmp(&sin6->sin6_addr, &k->addr.v6, sizeof(k->addr.v6)) == 0);

	if (!same && h->follow) {
		/* the group is the server's address: the holder joins it there */
		memset(&h->addr, 0, sizeof(h->addr));
		if (k->family == AF_INET) {
			sin->sin_family = AF_INET;
			sin->sin_port = htons((uint16_t)h->port);
			sin->sin_addr = k->addr.v4;
			h->alen = sizeof(*sin);
		} else {
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons((uint16_t)h->port);
			sin6->sin6_addr = k->addr.v6;
			h->alen = sizeof(*sin6);
		}
	}
	/* not open yet (run opens it at the first server listener) */
	if (!h->lh)
		return holder_open(h);
	return holder_rotate(h);
}

void holder_close(struct holder *h, bool migrate)
{
	sockmig_holder_close(h->lh, migrate);
	h->lh = NULL;
}

/* ---- sockmig hold ---------------------------------------------------------- */

static volatile sig_atomic_t stop_hold;

static void on_stop(int sig)
{
	(void)sig;
	stop_hold = 1;
}

/* SIGHUP means nothing to hold (a stray one must not kill it). */
static void on_hup(int sig)
{
	(void)sig;
}

/*
 * A listener of the port that hold cannot register (no process it can see
 * holds it: a server in a pid namespace of its own, another user's process
 * without CAP_DAC_READ_SEARCH; or taking it is not permitted: ptrace's
 * rights) loses SYNs to the holder, the group's only member, for good:
 * worse than no hold. hold refuses to start next to one, and stands aside
 * when one stays so this long.
 */
#define UNREGISTRABLE_MS 1000

/* @family and @addr as the kernel's IPv4 lookup sees them: an IPv4-mapped
 * IPv6 address (::ffff:a.b.c.d) is a.b.c.d. */
static int lookup_family(int family, const void *addr, struct in_addr *v4)
{
	const struct in6_addr *a6 = addr;

	if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(a6)) {
		memcpy(v4, &a6->s6_addr[12], sizeof(*v4));
		return AF_INET;
	}
	if (family == AF_INET)
		memcpy(v4, addr, sizeof(*v4));
	return family;
}

/*
 * Whether a listener of @family and @addr (@v6only: IPV6_V6ONLY) loses
 * SYNs to the holder at @h's address: the holder's own group (the same
 * address), a wildcard listener of the family (the holder's address
 * outscores it), an IPv4-mapped one of the holder's IPv4 address or of
 * the wildcard, or an IPv6 wildcard one that takes IPv4 too (not v6only),
 * which an IPv4 holder outscores for IPv4 clients. A holder that follows
 * the server goes to its address.
 */
static bool holder_competes(const struct holder *h, int family, const void *addr, bool v6only)
{
	static const struct in6_addr any6 = IN6ADDR_ANY_INIT;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&h->addr;
	struct in_addr l4 = {0}, h4 = {0};
	int lf = lookup_family(family, addr, &l4);
	int hf = lookup_family(
		h->addr.ss_family,
		h->addr.ss_family == AF_INET
			? (const void *)&((const struct sockaddr_in *)&h->addr)->sin_addr
			: (const void *)&sin6->sin6_addr,
		&h4);
	bool wild =
		lf == AF_INET ? l4.s_addr == INADDR_ANY : memcmp(addr, &any6, sizeof(any6)) == 0;

	if (lf != hf)
		return wild && lf == AF_INET6 && !v6only;
	if (wild)
		return true;
	if (lf == AF_INET)
		return l4.s_addr == h4.s_addr;
	return memcmp(&sin6->sin6_addr, addr, sizeof(sin6->sin6_addr)) == 0;
}

/* Why listener (@err from take_listener_why) cannot be registered. */
static const char *unregistrable_why(int err)
{
	return err == -ENOENT ? "no process this one can see holds it (a pid namespace of its own, "
				"or another user's process without CAP_DAC_READ_SEARCH)"
			      : "taking it from its process is not permitted (pidfd_getfd needs "
				"the rights of ptrace over it: CAP_SYS_PTRACE, or its owner where "
				"kernel.yama.ptrace_scope allows)";
}

/*
 * A listener of the port that hold could not register, in two looks 200 ms
 * apart (not one on its way between two processes), among those that lose
 * SYNs to the holder (every one when @any: a holder that follows the
 * server has no address yet): its cookie and *@err, else 0. Each is taken
 * and closed at once, as a scan does. When /proc cannot be read, 0: the
 * scans say why.
 */
static uint64_t port_unregistrable(const struct holder *h, bool any, int *err)
{
	struct timespec gap = {.tv_nsec = 200 * 1000000L};
	uint64_t first[16], found = 0;
	char why[SCANNER_WHY_LEN];
	int nfirst = 0;

	for (int look = 0; look < 2 && !found; look++) {
		struct sm_listener *ls = NULL;
		int n = sm_diag_dump(0, h->port, &ls);

		if (n > 0 && sm_diag_owners(ls, n) < 0)
			n = 0;
		for (int i = 0; i < n && !found; i++) {
			bool again = false;
			int fd;

			for (int j = 0; j < nfirst; j++)
				again |= first[j] == ls[i].cookie;
			if ((look && !again) ||
			    (!any && !holder_competes(h, ls[i].family, &ls[i].addr, ls[i].v6only)))
				continue;
			fd = take_listener_why(&ls[i], why, sizeof(why));
			if (fd >= 0) {
				close(fd);
			} else if ((fd == -ENOENT || fd == -EPERM) && look) {
				found = ls[i].cookie;
				*err = fd;
			} else if ((fd == -ENOENT || fd == -EPERM) && nfirst < 16) {
				first[nfirst++] = ls[i].cookie;
			}
		}
		free(ls);
		if (!nfirst)
			return 0;
		if (!look)
			nanosleep(&gap, NULL);
	}
	return found;
}

/* Say why hold does not hold next to listener @cookie (@err), and what it
 * does (@then): on stderr, or to syslog once it is a daemon. */
static void say_unregistrable(int port, uint64_t cookie, int err, bool daemonized, const char *then)
{
	char line[512];

	snprintf(line, sizeof(line),
		 "hold: port %d: cannot register listener cookie %llu: %s; a holder would "
		 "take every connection from it: %s",
		 port, (unsigned long long)cookie, unregistrable_why(err), then);
	if (daemonized) {
		openlog("sockmig-hold", LOG_PID, LOG_DAEMON);
		syslog(LOG_ERR, "%s", line);
		closelog();
	} else {
		cli_error("%s", line);
	}
}

/* A listener the scans could not register for UNREGISTRABLE_MS that loses
 * SYNs to the holder: its entry, else NULL. */
static const struct skipped *unregistrable(const struct scanner *sc, const struct holder *h)
{
	const struct skipped *s;
	int from = 0;

	while ((s = scanner_unregistrable(sc, UNREGISTRABLE_MS, &from)))
		if (holder_competes(h, s->family, &s->addr, s->v6only))
			return s;
	return NULL;
}

/* The first server listener (not a holder) the last scan registered. */
static const struct known *new_server(const struct scanner *sc)
{
	for (int j = sc->first_new; j < sc->nk; j++)
		if (!sc->k[j].holder)
			return &sc->k[j];
	return NULL;
}

static void hold_usage(FILE *f)
{
	fprintf(f, "Usage: sockmig hold --port P [options]\n"
		   "  -P, --port P       the port to hold while no server listens\n"
		   "  -a, --addr A       the holder's address (default: the server's)\n"
		   "  -u, --user U       open the holder as U (the server's uid)\n"
		   "  -i, --interval MS  look for server listeners every MS ms (20)\n"
		   "  -f, --foreground   stay in the foreground, log to stdout\n"
		   "  -h, --help         this help\n");
}

int do_hold(int argc, char **argv)
{
	static struct scanner sc;
	struct sigaction sa = {.sa_handler = on_stop}, hup = {.sa_handler = on_hup};
	const char *addr = NULL, *user = NULL;
	char why[256];
	struct pidfile pf = {.fd = -1};
	struct holder h;
	pid_t owner;
	const struct skipped *unreg = NULL;
	uint64_t interval = 20, cookie;
	int n, port = 0, err = 0;
	bool fg = false;
	const struct cli_opt opts[] = {
		{"port", 'P', CLI_PORT, &port},	    {"addr", 'a', CLI_STR, &addr},
		{"user", 'u', CLI_STR, &user},	    {"interval", 'i', CLI_U64, &interval, 5, 60000},
		{"foreground", 'f', CLI_FLAG, &fg}, {0},
	};

	n = cli_parse("hold", argc, argv, opts, 0, hold_usage);
	if (n <= 0)
		return n == 0 ? 0 : 2;
	if (!port) {
		cli_error("hold: give --port P");
		return 2;
	}
	if (holder_config(&h, addr, port, user) < 0)
		return 2;
	/* a holder keeps a queue only where the kernel migrates it: elsewhere a
	 * server's close resets it whatever holds the group */
	if (!cli_native_migration(why, sizeof(why))) {
		cli_error("hold: no native migration here (%s): a holder would keep nothing; "
			  "use sockmig run, which keeps the listener itself",
			  why);
		return 1;
	}
	cookie = port_unregistrable(&h, h.follow, &err);
	if (cookie) {
		say_unregistrable(port, cookie, err, false,
				  "hold refuses (run it where it sees the server's processes, "
				  "with the rights to take their sockets; Kubernetes: "
				  "shareProcessNamespace)");
		return 1;
	}
	err = pidfile_acquire(&pf, "hold", port, &owner);
	if (err == -EBUSY) {
		cli_error("sockmig hold (pid %d) already holds port %d", (int)owner, port);
		return 1;
	} else if (err) {
		cli_error("hold: cannot write its pid file %s: %s", pf.path, strerror(-err));
		return 1;
	}
	/* a signal while the holder opens is seen by the loop */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &hup, NULL);
	if (!addr) {
		/* the group is the server's address: start there if it listens */
		struct sm_listener *ls = NULL;
		struct known k = {0};

		if (sm_diag_dump(0, port, &ls) > 0) {
			k.family = ls[0].family;
			memcpy(&k.addr, &ls[0].addr, sizeof(k.addr));
			err = holder_server_joined(&h, &k); /* opens it there */
		}
		free(ls);
	}
	/* a failed open there said why: not a second time here */
	if (!h.lh && (err < 0 || holder_open(&h) < 0)) {
		pidfile_release(&pf);
		return 1;
	}
	printf("holding port %d (cookie %llu)\n", port, (unsigned long long)h.cookie);
	fflush(stdout);
	if (!fg && daemon(0, 0) < 0) {
		cli_error("cannot become a daemon: %s", strerror(errno));
		holder_close(&h, false);
		pidfile_release(&pf);
		return 1;
	}
	pidfile_write(&pf);
	sc.port = port;
	sc.gen = -1;
	/* a reference to each server listener, as attach's daemon keeps: a
	 * server's own close (or death) then leaves the listener to us, and
	 * we drain it (no new SYN, the handshakes in flight done, then its
	 * shutdown) where the kernel would race a close that comes unannounced
	 * (a final ACK that meets the closing listener is reset) */
	sc.hold_refs = true;
	sc.quiet = !fg;
	while (!stop_hold) {
		struct timespec ts = {.tv_sec = (time_t)(interval / 1000),
				      .tv_nsec = (long)(interval % 1000) * 1000000L};

		if (scanner_scan(&sc) > 0 && new_server(&sc)) {
			holder_server_joined(&h, new_server(&sc));
			if (fg) {
				printf("server listener joined: holder rotated, %llu connections "
				       "moved to it so far\n",
				       (unsigned long long)h.moved);
				fflush(stdout);
			}
		}
		/* the scans' record, then a fresh look: a record may be as old
		 * as a skipped listener's backoff */
		unreg = unregistrable(&sc, &h);
		cookie = unreg ? port_unregistrable(&h, false, &err) : 0;
		if (unreg && !cookie)
			scanner_unregistrable_forget(&sc, unreg->cookie);
		if (cookie) {
			/* the holder's close moves its queue there: with no
			 * registered member left, the kernel's hash chooses */
			say_unregistrable(port, cookie, err, !fg,
					  "hold stands aside (its holder closes: what it "
					  "kept moves to a listener of its own address) and "
					  "exits");
			break;
		}
		nanosleep(&ts, NULL);
	}
	/* what a server let go of since the last scan is drained first */
	scanner_release(&sc);
	holder_close(&h, true);
	scanner_leave_all(&sc);
	pidfile_release(&pf);
	return cookie ? 1 : 0;
}
