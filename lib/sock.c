// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Socket and address helpers. */
#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <linux/membarrier.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF 68
#endif

#define GRACE_SLEEP_MS 20 /* when membarrier() cannot wait for a grace period */

int sm_sock_addr(int fd, struct sm_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->len = sizeof(a->v6);
	if (getsockname(fd, &a->sa, &a->len) < 0)
		return -errno;
	a->family = a->sa.sa_family;
	if (a->family != AF_INET && a->family != AF_INET6)
		return -EAFNOSUPPORT;
	return 0;
}

int sm_addr_port(const struct sm_addr *a)
{
	return ntohs(a->family == AF_INET ? a->v4.sin_port : a->v6.sin6_port);
}

void sm_addr_connectable(const struct sm_addr *a, struct sm_addr *out)
{
	*out = *a;
	if (a->family == AF_INET && a->v4.sin_addr.s_addr == htonl(INADDR_ANY))
		out->v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (a->family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&a->v6.sin6_addr))
		out->v6.sin6_addr = in6addr_loopback;
}

void sm_addr_str(const struct sm_addr *a, char *buf, size_t len)
{
	const void *p = a->family == AF_INET ? (const void *)&a->v4.sin_addr
					     : (const void *)&a->v6.sin6_addr;

	if (!inet_ntop(a->family, p, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

int sockmig_lo_up(void)
{
	struct ifreq ifr;
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		err = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (!err && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		err = -errno;
	close(fd);
	return err;
}

uint64_t sockmig_cookie(int fd)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) < 0)
		return 0;
	return cookie;
}

/*
 * A SYN's selection (the program reading the table) and the request it
 * makes happen in one softirq, inside one RCU read-side critical section
 * (tcp_v4_rcv() and tcp_v6_rcv() run under rcu_read_lock()). After
 * synchronize_rcu(), which MEMBARRIER_CMD_GLOBAL is, every selection that
 * read the table from before a member was marked draining has made its
 * request, and the listener's reference count shows it.
 */
void sm_rcu_grace(void)
{
	struct timespec ts = {0, GRACE_SLEEP_MS * 1000000L};

	if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0)
		return;
	sm_log(SOCKMIG_DEBUG, "libsockmig: membarrier: %s; sleeping %d ms instead\n",
	       strerror(errno), GRACE_SLEEP_MS);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int sockmig_group_detach(int fd)
{
	int unused = 0; /* the kernel wants an int, and ignores it */

	if (setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &unused, sizeof(unused)) < 0)
		return sm_fail(errno, "cannot detach the program of fd %d's group: %s", fd,
			       strerror(errno));
	return 0;
}
