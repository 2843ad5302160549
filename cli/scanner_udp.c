// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The scanner's UDP part (attach --proto udp or all): a server's UDP
 * sockets that share their port (SO_REUSEPORT, bound, not connected),
 * found through sock_diag, each taken from its process with pidfd_getfd()
 * just long enough to register it in its port's UDP group with its
 * generation (the library makes the newest generation the working one;
 * older ones keep their flows).
 *
 * attach keeps no copy of a UDP socket. A copy would keep the socket in
 * the kernel's SO_REUSEPORT group after its server closed it (or exited,
 * or was killed), and the group's program would go on sending that
 * socket's flows to a queue nobody reads. Without one, the server's last
 * close() takes the socket out of the kernel's group and out of the
 * program's socket array at once: its flows fall to the working
 * generation from their next datagram on. Nothing needs draining: a UDP
 * socket has no accept queue to move.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "attach.h"
#include "cli.h"
#include "diag.h"
#include "sockmig.h"

static bool owned_by_pid(const struct sm_listener *l, pid_t pid)
{
	for (int i = 0; i < l->nowners; i++)
		if (l->owners[i].pid == pid)
			return true;
	return false;
}

static const char *udp_name(const struct sm_listener *l)
{
	return l->family == AF_INET ? "udp4" : "udp6";
}

/* @l's address and port as a sockaddr, for its group. */
static socklen_t udp_sockaddr(const struct sm_listener *l, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (l->family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)l->port);
		a->sin_addr = l->addr.v4;
		return sizeof(*a);
	}
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

	a6->sin6_family = AF_INET6;
	a6->sin6_port = htons((uint16_t)l->port);
	a6->sin6_addr = l->addr.v6;
	return sizeof(*a6);
}

/* The generation @cookie is registered with in @g, or -1 when it is none
 * of its live members (a socket the shim or an earlier attach registered
 * keeps its generation). */
static int64_t udp_member_gen(struct sockmig_udp_group *g, uint64_t cookie)
{
	struct sockmig_udp_member_info *info;
	int n = cli_udp_members(g, &info);
	int64_t gen = -1;

	for (int i = 0; i < n && gen < 0; i++)
		if (info[i].cookie == cookie)
			gen = info[i].generation;
	free(info);
	return gen;
}

/* The generation to register @l with: --generation, else by --generation-by
 * (none: one generation for all, so that every socket takes new flows). */
static uint32_t udp_generation(const struct scanner *sc, const struct sm_listener *l)
{
	if (sc->gen >= 0)
		return (uint32_t)sc->gen;
	if (sc->gen_by == GEN_BY_NONE)
		return 0;
	return listener_generation(l, sc->gen_by);
}

/* Register UDP socket @l into @k: 0, or -1 after its reason (kept or said). */
static int register_udp(struct scanner *sc, const struct sm_listener *l, bool quiet,
			struct known_udp *k)
{
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .mode = sc->udp_mode,
		     .idle_timeout_ms = sc->udp_idle_ms, .flow_max = sc->udp_flow_max);
	char why[SCANNER_WHY_LEN];
	struct sockaddr_storage ss;
	socklen_t len = udp_sockaddr(l, &ss);
	struct sockmig_udp_group *g;
	int fd, reuse = 0, err;
	socklen_t rl = sizeof(reuse);
	int64_t have;

	sc->ntried++;
	fd = take_listener_why(l, why, sizeof(why));
	if (fd < 0) {
		if (l->nowners == 0)
			scanner_why(sc, quiet, false, !sc->udp_said, "%s", why);
		else
			scanner_why(sc, quiet, take_race(fd), false, "cannot take %s", why);
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &reuse, &rl) < 0 || !reuse) {
		/* a server of its own port (DNS resolvers, clients): not ours */
		scanner_why(sc, quiet, false, !sc->udp_said,
			    "port %d: the %s socket fd %d of pid %d does not set SO_REUSEPORT "
			    "(only a socket that shares its port can join a group)",
			    l->port, udp_name(l), l->owners[0].fd, (int)l->owners[0].pid);
		close(fd);
		return -1;
	}
	g = sockmig_udp_group_open((struct sockaddr *)&ss, len, &go);
	if (!g) {
		scanner_why(sc, quiet, false, false, "port %d: %s group: %s", l->port, udp_name(l),
			    sockmig_last_error());
		close(fd);
		return -1;
	}
	have = udp_member_gen(g, l->cookie);
	if (have >= 0) {
		k->gen = (uint32_t)have;
		err = 0;
	} else {
		SOCKMIG_OPTS(sockmig_udp_member_opts, mo, .generation = udp_generation(sc, l),
			     .pid = (uint32_t)l->owners[0].pid);

		k->gen = mo.generation;
		err = sockmig_udp_member_add(g, fd, &mo);
		if (err < 0)
			scanner_why(sc, quiet, false, false, "port %d: %s", l->port,
				    sockmig_last_error());
	}
	/* no copy kept: the server's close takes the socket out (see above) */
	close(fd);
	k->cookie = l->cookie;
	k->owner = l->owners[0].pid;
	snprintf(k->group, sizeof(k->group), "%s", sockmig_udp_group_name(g));
	sockmig_udp_group_close(g);
	return err < 0 ? -1 : 0;
}

/* attach's start-up: connected UDP sockets of the port (of pid) are passed
 * over; said once, softly, so that a "nothing registered" line names them. */
static void note_connected(struct scanner *sc)
{
	struct sm_listener *c = NULL;
	int n = sm_diag_udp(sc->port, 1u << TCP_ESTABLISHED, &c), seen = 0;

	if (n > 0 && sc->pid)
		sm_diag_owners_of(c, n, sc->pid);
	for (int i = 0; i < n; i++)
		seen += !sc->pid || owned_by_pid(&c[i], sc->pid);
	if (seen)
		scanner_why(sc, true, false, true,
			    "%d connected UDP socket%s passed over (a connected socket is its "
			    "peer's alone: it joins no group)",
			    seen, seen == 1 ? "" : "s");
	free(c);
}

/* Forget the sockets of sc->u that are not among @ls: they closed, and
 * the kernel took them out of their group already. */
static void udp_forget(struct scanner *sc, const struct sm_listener *ls, int n)
{
	for (int j = 0; j < sc->nu; j++) {
		bool present = false;

		for (int i = 0; i < n && !present; i++)
			present = ls[i].cookie == sc->u[j].cookie;
		if (!present) {
			cli_debug("udp: cookie %llu closed: out of group %s",
				  (unsigned long long)sc->u[j].cookie, sc->u[j].group);
			sc->u[j--] = sc->u[--sc->nu];
		}
	}
}

int scanner_udp_live(struct scanner *sc)
{
	struct sm_listener *ls = NULL;
	int n = sm_diag_udp(sc->port, 1u << TCP_CLOSE, &ls);

	if (n >= 0)
		udp_forget(sc, ls, n);
	free(ls);
	return sc->nu;
}

int scanner_udp_scan(struct scanner *sc)
{
	unsigned long long now = now_ms();
	struct sm_listener *ls = NULL;
	int n, registered = 0;

	if (sc->collect && !sc->nu)
		note_connected(sc);
	/* bound and not connected (a UDP socket's state is TCP_CLOSE then) */
	n = sm_diag_udp(sc->port, 1u << TCP_CLOSE, &ls);
	if (n < 0) {
		cli_debug("udp: cannot list UDP sockets: %s", strerror(-n));
		if (sc->udp_said || sc->no_tcp)
			scanner_why(sc, sc->quiet, false, false, "cannot list UDP sockets: %s%s",
				    strerror(-n),
				    n == -ENOENT ? " (no UDP sock_diag: the udp_diag module)" : "");
		return n;
	}
	udp_forget(sc, ls, n);
	skipped_forget_gone(sc, ls, n, true);
	/* the owners, once, when a socket is to be tried */
	for (int i = 0; i < n; i++) {
		const struct skipped *s = skipped_of(sc, ls[i].cookie);
		bool seen = s && s->retry_ms > now;

		for (int j = 0; j < sc->nu && !seen; j++)
			seen = sc->u[j].cookie == ls[i].cookie;
		if (!seen) {
			if (sc->pid)
				sm_diag_owners_of(ls, n, sc->pid);
			else
				sm_diag_owners(ls, n);
			sc->owner_scans++;
			cli_debug("udp: owners of %d sockets (%s)", n,
				  sc->pid ? "one process" : "every process");
			break;
		}
	}
	for (int i = 0; i < n; i++) {
		struct skipped *s = skipped_of(sc, ls[i].cookie);
		bool seen = false;

		for (int j = 0; j < sc->nu && !seen; j++)
			seen = sc->u[j].cookie == ls[i].cookie;
		if (seen || sc->nu >= SCANNER_MAX || (s && s->retry_ms > now))
			continue;
		if (sc->pid && !owned_by_pid(&ls[i], sc->pid)) {
			skip_listener(sc, ls[i].cookie, now, true);
			continue;
		}
		if (register_udp(sc, &ls[i], sc->quiet || s, &sc->u[sc->nu]) < 0) {
			skip_listener(sc, ls[i].cookie, now, true);
			continue;
		}
		if (s)
			*s = sc->skip[--sc->nskip];
		if (!sc->quiet)
			printf("registered %s port %d cookie %llu (pid %d fd %d) generation %u\n",
			       udp_name(&ls[i]), ls[i].port, (unsigned long long)ls[i].cookie,
			       (int)ls[i].owners[0].pid, ls[i].owners[0].fd, sc->u[sc->nu].gen);
		sc->nu++;
		registered++;
	}
	free(ls);
	fflush(stdout);
	return registered;
}
