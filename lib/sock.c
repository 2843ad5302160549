// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Socket and address helpers. */
#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "internal.h"

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

int sm_lo_up(void)
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
