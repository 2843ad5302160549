// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Listener hand-off for servers that know nothing of it (sockmig run
 * --handoff): the supervisor owns the listening socket and starts every
 * generation with it as fd 3 (LISTEN_FDS, LISTEN_PID) and
 * SOCKMIG_HANDOFF=1. A server that takes LISTEN_FDS uses fd 3 itself; for
 * one that does not, the shim answers its bind() to the same address by
 * putting the inherited socket in place of its new one (dup3), so that its
 * listen() and accept() work on the supervisor's socket. Nothing ever
 * closes that socket: no BPF, no migration, any kernel, any privilege.
 *
 * The inherited sockets are kept on private close-on-exec fds taken at
 * load, so that a server that closes what it does not know (fd 3 among
 * them) before its bind() still gets them; the server's close() of a
 * private fd is answered with success and does nothing, and
 * close_range()/closefrom() go around them. A shutdown() of the shared
 * socket would stop it for every generation and the supervisor: it is
 * answered with success and not made.
 *
 * A private fd is used only while it is still the socket taken at load
 * (its inode): a server can close it without the shim (a raw system call,
 * close_range() in a child's copy of the fd table) and the number be
 * reused by another file. close_range(CLOSE_RANGE_UNSHARE) unshares the fd
 * table first and then closes around the private fds; dup2()/dup3() onto
 * a private number moves the private copy to another number first.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

#define INHERIT_MAX 16

struct inherited {
	int fd; /* the shim's private copy */
	unsigned long ino;
	struct sockaddr_storage addr;
	socklen_t len;
};

static struct inherited inh[INHERIT_MAX];
static int ninh;

static bool tcp_listener(int fd)
{
	int v = 0, proto = 0;
	socklen_t l = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) < 0 || v != 1)
		return false;
	l = sizeof(proto);
	return getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l) == 0 && proto == IPPROTO_TCP;
}

void shim_inherit_init(void)
{
	const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
	long n;

	/* another process's (this one's parent, whose children inherit the
	 * environment): nothing for us, and nothing to say */
	if (!fds || !pid || atol(pid) != (long)getpid()) {
		shim_debug("SOCKMIG_HANDOFF: no listener handed down to this process");
		return;
	}
	n = atol(fds);
	if (n > 1024) /* not systemd's: it passes a few */
		n = 1024;
	for (int fd = 3; fd < 3 + n && ninh < INHERIT_MAX; fd++) {
		struct inherited *i = &inh[ninh];
		struct stat st;

		if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) || !tcp_listener(fd))
			continue;
		i->len = sizeof(i->addr);
		if (getsockname(fd, (struct sockaddr *)&i->addr, &i->len) < 0)
			continue;
		/* above every fd the server was given */
		i->fd = shim_real.fcntl(fd, F_DUPFD_CLOEXEC, 3 + (int)n);
		if (i->fd < 0)
			continue;
		i->ino = st.st_ino;
		ninh++;
		shim_debug("fd %d: listener handed down by the supervisor, kept as fd %d", fd,
			   i->fd);
	}
	if (!ninh && !shim_cfg.quiet)
		shim_say("inactive: SOCKMIG_HANDOFF is set but LISTEN_FDS=%s holds no listening "
			 "TCP socket",
			 fds);
}

/* Private copy @k is still the socket taken at load; when it is not, it
 * is forgotten (said once). */
static bool private_ok(int k)
{
	static atomic_bool said;
	struct stat st;

	if (inh[k].fd < 0)
		return false;
	if (fstat(inh[k].fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == inh[k].ino)
		return true;
	if (!atomic_exchange(&said, true) && !shim_cfg.quiet)
		shim_say("the supervisor's listener kept as fd %d was closed or replaced behind "
			 "the shim: not handed off",
			 inh[k].fd);
	inh[k].fd = -1;
	return false;
}

/* An IPv4 or IPv6 address's port (network order) and address bytes. */
struct ip_parts {
	int family;
	uint16_t port;
	const void *addr;
	size_t alen;
};

static bool ip_parts(const void *sa, socklen_t len, struct ip_parts *p)
{
	const struct sockaddr_in *v4 = sa;
	const struct sockaddr_in6 *v6 = sa;

	p->family = ((const struct sockaddr *)sa)->sa_family;
	if (p->family == AF_INET && len >= sizeof(*v4)) {
		p->port = v4->sin_port;
		p->addr = &v4->sin_addr;
		p->alen = sizeof(v4->sin_addr);
		return true;
	}
	if (p->family == AF_INET6 && len >= sizeof(*v6)) {
		p->port = v6->sin6_port;
		p->addr = &v6->sin6_addr;
		p->alen = sizeof(v6->sin6_addr);
		return true;
	}
	return false;
}

/*
 * The inherited listener @sa binds to, or -1. A listener on the same
 * family and port but another address will not be shared with the server:
 * said once.
 */
static int inherited_for(const struct sockaddr *sa, socklen_t len)
{
	static atomic_bool said;
	char want[INET6_ADDRSTRLEN] = "?", have[INET6_ADDRSTRLEN] = "?";
	struct ip_parts b, h;

	if (!ip_parts(sa, len, &b))
		return -1;
	for (int k = 0; k < ninh; k++)
		if (ip_parts(&inh[k].addr, inh[k].len, &h) && h.family == b.family &&
		    h.port == b.port && memcmp(h.addr, b.addr, b.alen) == 0)
			return k;
	for (int k = 0; k < ninh; k++) {
		if (!ip_parts(&inh[k].addr, inh[k].len, &h) || h.family != b.family ||
		    h.port != b.port)
			continue;
		inet_ntop(b.family, b.addr, want, sizeof(want));
		inet_ntop(h.family, h.addr, have, sizeof(have));
		if (!atomic_exchange(&said, true) && !shim_cfg.quiet)
			shim_say("bind to %s port %d is not the supervisor's listener (%s): not "
				 "handed off (give sockmig run --addr %s)",
				 want, ntohs(b.port), have, want);
		break;
	}
	return -1;
}

int shim_inherit_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	int type = 0, fdflags, flflags, shared, err = errno, k;
	socklen_t l = sizeof(type);

	if (!ninh || !sa || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0 ||
	    type != SOCK_STREAM)
		return 0;
	k = inherited_for(sa, len);
	if (k >= 0 && !private_ok(k))
		k = -1;
	fdflags = k < 0 ? -1 : shim_real.fcntl(fd, F_GETFD);
	flflags = k < 0 ? -1 : shim_real.fcntl(fd, F_GETFL);
	if (fdflags < 0 || flflags < 0 ||
	    shim_real.dup3(inh[k].fd, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
		errno = err;
		return 0;
	}
	/* the file is shared: it takes this server's blocking mode */
	shared = shim_real.fcntl(fd, F_GETFL);
	if (shared >= 0 && (shared & O_NONBLOCK) != (flflags & O_NONBLOCK))
		shim_real.fcntl(fd, F_SETFL, (shared & ~O_NONBLOCK) | (flflags & O_NONBLOCK));
	shim_debug("fd %d: bind answered with the supervisor's listener", fd);
	errno = err;
	return 1;
}

bool shim_inherit_private(int fd)
{
	for (int k = 0; k < ninh; k++)
		if (fd >= 0 && inh[k].fd == fd)
			return private_ok(k);
	return false;
}

void shim_inherit_move(int fd)
{
	int moved;

	for (int k = 0; k < ninh; k++) {
		if (fd < 0 || inh[k].fd != fd || !private_ok(k))
			continue;
		moved = shim_real.fcntl(fd, F_DUPFD_CLOEXEC, fd + 1);
		shim_debug("fd %d: the supervisor's listener moved to fd %d", fd, moved);
		inh[k].fd = moved; /* -1 when it could not move: forgotten */
	}
}

bool shim_inherit_shared(int fd)
{
	struct stat st;

	if (!ninh || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return false;
	for (int k = 0; k < ninh; k++)
		if (inh[k].ino == st.st_ino)
			return true;
	return false;
}

int shim_inherit_close_range(unsigned int first, unsigned int last, int flags)
{
	unsigned int lo = first, priv[INHERIT_MAX];
	int ret = 0, n = 0;

	if ((flags & CLOSE_RANGE_UNSHARE) && syscall(SYS_unshare, CLONE_FILES) < 0)
		return shim_real.close_range(first, last, flags);
	flags &= ~CLOSE_RANGE_UNSHARE;
	/* the private fds, ascending */
	for (int k = 0; k < ninh; k++) {
		int j = n++;

		if (inh[k].fd < 0) {
			n--;
			continue;
		}
		for (; j > 0 && priv[j - 1] > (unsigned int)inh[k].fd; j--)
			priv[j] = priv[j - 1];
		priv[j] = (unsigned int)inh[k].fd;
	}
	for (int k = 0; k < n && lo <= last; k++) {
		unsigned int p = priv[k];

		if (p < lo || p > last)
			continue;
		if (p > lo && shim_real.close_range(lo, p - 1, flags) < 0)
			ret = -1;
		lo = p + 1;
		if (p == ~0U)
			return ret;
	}
	if (lo <= last && shim_real.close_range(lo, last, flags) < 0)
		ret = -1;
	return ret;
}

int shim_inherit_count(void)
{
	return ninh;
}
