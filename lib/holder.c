// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The holder: a listening member of role holder that keeps a group alive
 * while no server listens. See sockmig_holder_open() in sockmig.h.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct sockmig_holder {
	struct sockaddr_storage addr;
	socklen_t alen;
	uid_t uid;
	gid_t gid;
	bool set_ids;
	int backlog;
	int fd;
	uint64_t cookie;
	struct sockmig_group_opts gopts;
};

/* A listener of the holder's address, created with the server's ids (a
 * SO_REUSEPORT group admits one effective uid). */
static int holder_socket(struct sockmig_holder *h)
{
	uid_t euid = geteuid();
	gid_t egid = getegid();
	int fd, one = 1, err = 0, port;
	struct sm_addr a;

	if (h->set_ids && (setegid(h->gid) < 0 || seteuid(h->uid) < 0)) {
		err = errno;
		if (setegid(egid) < 0) {
			/* back to our group failed too: the next call fails the same way */
		}
		return sm_fail(err, "cannot take uid %u to create the holder: %s", (unsigned)h->uid,
			       strerror(err));
	}
	fd = socket(h->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&h->addr, h->alen) < 0 || listen(fd, h->backlog) < 0)
		err = errno;
	if (h->set_ids && (seteuid(euid) < 0 || setegid(egid) < 0))
		abort(); /* cannot get our ids back: stop rather than go on half-privileged */
	if (err) {
		if (fd >= 0)
			close(fd);
		memcpy(&a.v6, &h->addr, h->alen);
		a.family = h->addr.ss_family;
		port = sm_addr_port(&a);
		return sm_fail(err, "holder on port %d: %s%s", port, strerror(err),
			       err == EADDRINUSE ? " (a listener of another user or without "
						   "SO_REUSEPORT holds the port)"
						 : "");
	}
	return fd;
}

static int holder_join(struct sockmig_holder *h)
{
	SOCKMIG_OPTS(sockmig_member_opts, mo, .role = SOCKMIG_ROLE_HOLDER);
	struct sockmig_group *g;
	int fd = holder_socket(h), err;

	if (fd < 0)
		return fd;
	g = sockmig_group_open(fd, &h->gopts);
	if (!g) {
		err = -errno;
		close(fd);
		return err;
	}
	err = sockmig_member_add(g, fd, &mo);
	sockmig_group_close(g);
	if (err < 0) {
		close(fd);
		return err;
	}
	return fd;
}

/* Drain @fd (a holder: no refusal) into the active members, leave, close. */
static uint64_t holder_retire(struct sockmig_holder *h, int fd, bool migrate)
{
	SOCKMIG_OPTS(sockmig_drain_opts, d, .force = true);
	struct sockmig_drain_report rep = {0};
	struct sockmig_group *g = sockmig_group_open(fd, &h->gopts);
	uint64_t moved = 0;

	if (g) {
		if (migrate && sockmig_member_drain(g, fd, &d, &rep) == 0)
			for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
				moved += rep.migrated[k];
		sockmig_member_leave(g, fd);
		sockmig_group_close(g);
	}
	close(fd);
	return moved;
}

struct sockmig_holder *sockmig_holder_open(const struct sockaddr *addr, socklen_t len,
					   const struct sockmig_holder_opts *opts)
{
	struct sockmig_holder *h;
	int fd;

	if (!addr || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6) ||
	    len > sizeof(h->addr)) {
		sm_fail(EINVAL, "the holder needs an IPv4 or IPv6 address and port");
		return NULL;
	}
	if (!OPTS_VALID(opts, sockmig_holder_opts))
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h) {
		errno = ENOMEM;
		return NULL;
	}
	memcpy(&h->addr, addr, len);
	h->alen = len;
	h->backlog = 65535;
	h->fd = -1;
	h->gopts.sz = sizeof(h->gopts);
	/* a caller built against an older header passes a smaller sz */
	h->set_ids = OPTS_GET(opts, set_ids, false);
	h->uid = OPTS_GET(opts, uid, 0);
	h->gid = OPTS_GET(opts, gid, 0);
	if (OPTS_GET(opts, backlog, 0) > 0)
		h->backlog = OPTS_GET(opts, backlog, 0);
	h->gopts.pin_root = OPTS_GET(opts, pin_root, NULL);
	fd = holder_join(h);
	if (fd < 0) {
		free(h);
		errno = -fd;
		return NULL;
	}
	h->fd = fd;
	h->cookie = sockmig_cookie(fd);
	return h;
}

int sockmig_holder_rotate(struct sockmig_holder *h, const struct sockaddr *addr, socklen_t len,
			  uint64_t *moved)
{
	int fd, old = h->fd;
	uint64_t n;

	if (addr) {
		if ((addr->sa_family != AF_INET && addr->sa_family != AF_INET6) ||
		    len > sizeof(h->addr))
			return sm_fail(EINVAL, "the holder needs an IPv4 or IPv6 address");
		memset(&h->addr, 0, sizeof(h->addr));
		memcpy(&h->addr, addr, len);
		h->alen = len;
	}
	fd = holder_join(h);
	if (fd < 0)
		return fd;
	h->fd = fd;
	h->cookie = sockmig_cookie(fd);
	n = old >= 0 ? holder_retire(h, old, true) : 0;
	if (moved)
		*moved = n;
	return 0;
}

uint64_t sockmig_holder_cookie(const struct sockmig_holder *h)
{
	return h ? h->cookie : 0;
}

void sockmig_holder_close(struct sockmig_holder *h, bool migrate)
{
	if (!h)
		return;
	if (h->fd >= 0)
		holder_retire(h, h->fd, migrate);
	free(h);
}
