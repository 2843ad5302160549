// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * TCP listeners of the calling thread's network namespace, from a
 * sock_diag dump (the same query as "ss -ltn", unprivileged), and the
 * processes holding them, from one scan of /proc/<pid>/fd.
 *
 * The reply parser takes a plain buffer, so that the tests can feed it a
 * reply they built themselves.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "diag.h"
#include "sockmig.h"

/* Large enough for any dump skb: the kernel sizes them at most 32 KiB. */
#define DIAG_BUF 32768

static int append(struct sm_listener **v, int *n, int *cap, const struct sm_listener *l)
{
	if (*n == *cap) {
		int ncap = *cap ? *cap * 2 : 16;
		struct sm_listener *nv = realloc(*v, (size_t)ncap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = *l;
	return 0;
}

/* One SOCK_DIAG_BY_FAMILY message: append it if it is a wanted listener. */
static int parse_msg(const char *payload, size_t plen, int family, int port, struct sm_listener **v,
		     int *n, int *cap)
{
	struct inet_diag_msg m;
	struct sm_listener l;

	if (plen < sizeof(m))
		return -EBADMSG;
	memcpy(&m, payload, sizeof(m)); /* the buffer may be unaligned */
	if (m.idiag_state != TCP_LISTEN ||
	    (m.idiag_family != AF_INET && m.idiag_family != AF_INET6) ||
	    (family && m.idiag_family != family) || (port && ntohs(m.id.idiag_sport) != port))
		return 0;
	memset(&l, 0, sizeof(l));
	l.family = m.idiag_family;
	if (l.family == AF_INET)
		memcpy(&l.addr.v4, m.id.idiag_src, sizeof(l.addr.v4));
	else
		memcpy(&l.addr.v6, m.id.idiag_src, sizeof(l.addr.v6));
	l.port = ntohs(m.id.idiag_sport);
	l.cookie = (uint64_t)m.id.idiag_cookie[0] | (uint64_t)m.id.idiag_cookie[1] << 32;
	l.inode = m.idiag_inode;
	l.uid = m.idiag_uid;
	l.queue = m.idiag_rqueue;
	l.backlog = m.idiag_wqueue;
	l.ifindex = m.id.idiag_if;
	/* an IPv6 socket's attributes include IPV6_V6ONLY's value */
	for (size_t off = NLMSG_ALIGN(sizeof(m)); off + sizeof(struct rtattr) <= plen;) {
		struct rtattr a;

		memcpy(&a, payload + off, sizeof(a));
		if (a.rta_len < sizeof(a) || off + a.rta_len > plen)
			break;
		if (a.rta_type == INET_DIAG_SKV6ONLY && a.rta_len > sizeof(a))
			l.v6only = payload[off + RTA_LENGTH(0)] != 0;
		off += RTA_ALIGN(a.rta_len);
	}
	return append(v, n, cap, &l);
}

int sm_diag_parse(const void *buf, size_t len, int family, int port, struct sm_listener **v, int *n,
		  int *cap)
{
	const char *p = buf, *end = p + len;

	while (p < end) {
		struct nlmsghdr h;
		size_t left = (size_t)(end - p), plen;
		int err;

		if (left < sizeof(h))
			return -EBADMSG;
		memcpy(&h, p, sizeof(h));
		if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > left)
			return -EBADMSG;
		plen = h.nlmsg_len - NLMSG_HDRLEN;
		switch (h.nlmsg_type) {
		case NLMSG_DONE:
			/* the dump's own status follows, when the kernel gives one */
			if (plen >= sizeof(err)) {
				memcpy(&err, p + NLMSG_HDRLEN, sizeof(err));
				if (err < 0)
					return err;
			}
			return 1;
		case NLMSG_ERROR: {
			struct nlmsgerr e;

			if (plen < sizeof(e.error))
				return -EBADMSG;
			memcpy(&e.error, p + NLMSG_HDRLEN, sizeof(e.error));
			if (e.error < 0)
				return e.error;
			if (e.error > 0)
				return -EBADMSG;
			break; /* an acknowledgement */
		}
		case SOCK_DIAG_BY_FAMILY:
			err = parse_msg(p + NLMSG_HDRLEN, plen, family, port, v, n, cap);
			if (err < 0)
				return err;
			break;
		default: /* NLMSG_NOOP and the like */
			break;
		}
		if (NLMSG_ALIGN(h.nlmsg_len) >= left)
			break;
		p += NLMSG_ALIGN(h.nlmsg_len);
	}
	return 0;
}

/* Dump the TCP listeners of one family into *v. */
static int dump_family(int nl, int family, int port, char *buf, struct sm_listener **v, int *n,
		       int *cap)
{
	static uint32_t seq;
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req;
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	struct iovec iov = {.iov_base = buf, .iov_len = DIAG_BUF};
	struct msghdr msg = {.msg_name = &kernel, .msg_namelen = sizeof(kernel)};
	ssize_t got;
	int err;

	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = sizeof(req);
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nlh.nlmsg_seq = ++seq;
	req.r.sdiag_family = (uint8_t)family;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = 1u << TCP_LISTEN;
	/* the kernel filters listeners on the source port of a dump */
	req.r.id.idiag_sport = htons((uint16_t)port);
	if (sendto(nl, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -errno;
	for (;;) {
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_flags = 0;
		got = recvmsg(nl, &msg, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		if (got == 0)
			return -EBADMSG;
		if (msg.msg_flags & MSG_TRUNC)
			return -EMSGSIZE;
		err = sm_diag_parse(buf, (size_t)got, family, port, v, n, cap);
		if (err)
			return err < 0 ? err : 0;
	}
}

int sm_diag_dump(int family, int port, struct sm_listener **out)
{
	static const int families[] = {AF_INET, AF_INET6};
	struct sm_listener *v = NULL;
	struct timeval tv = {.tv_sec = 5};
	int nl, n = 0, cap = 0, err = 0;
	char *buf;

	*out = NULL;
	if ((family && family != AF_INET && family != AF_INET6) || port < 0 || port > 65535)
		return -EINVAL;
	buf = malloc(DIAG_BUF);
	if (!buf)
		return -ENOMEM;
	nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0) {
		err = -errno;
		goto out;
	}
	/* never hang on a kernel that does not answer */
	setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		if (family && families[i] != family)
			continue;
		err = dump_family(nl, families[i], port, buf, &v, &n, &cap);
		/* no IPv6 in this kernel (ipv6.disable=1): no IPv6 listener */
		if (err == -ENOENT && families[i] == AF_INET6 && !family)
			err = 0;
		if (err)
			break;
	}
	close(nl);
out:
	free(buf);
	if (err) {
		free(v);
		return err;
	}
	*out = v;
	return n;
}

int sm_diag_listeners(int family, int port, struct sm_listener **out)
{
	int n = sm_diag_dump(family, port, out);

	if (n > 0)
		sm_diag_owners(*out, n); /* owners stay unknown if /proc cannot be read */
	return n;
}

static int cmp_inode(const void *a, const void *b, void *arg)
{
	const struct sm_listener *v = arg;
	uint32_t x = v[*(const int *)a].inode, y = v[*(const int *)b].inode;

	return x < y ? -1 : x > y;
}

/* Index (into @order, sorted by inode) of the first listener with @inode, or -1. */
static int find_inode(const struct sm_listener *v, const int *order, int n, uint32_t inode)
{
	int lo = 0, hi = n;

	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;

		if (v[order[mid]].inode < inode)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && v[order[lo]].inode == inode ? lo : -1;
}

/* Match the socket fds of process @pid (its fd directory @fds) to the listeners. */
static void scan_fds(DIR *fds, pid_t pid, struct sm_listener *v, const int *order, int n)
{
	char link[64], *end;
	struct dirent *de;
	ssize_t len;

	while ((de = readdir(fds))) {
		unsigned long ino;
		int k;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		len = readlinkat(dirfd(fds), de->d_name, link, sizeof(link) - 1);
		if (len < 9)
			continue;
		link[len] = '\0';
		if (strncmp(link, "socket:[", 8) != 0)
			continue;
		ino = strtoul(link + 8, &end, 10);
		if (*end != ']' || !ino || ino > UINT32_MAX)
			continue;
		k = find_inode(v, order, n, (uint32_t)ino);
		for (; k >= 0 && k < n && v[order[k]].inode == ino; k++) {
			struct sm_listener *l = &v[order[k]];

			if (l->nowners < SM_DIAG_MAX_OWNERS) {
				l->owners[l->nowners].pid = pid;
				l->owners[l->nowners].fd = atoi(de->d_name);
				l->nowners++;
			}
			l->owners_total++;
		}
	}
}

/* The owners of @n listeners among the fds of process @only, or of every
 * process when @only is 0. */
static int fill_owners(struct sm_listener *v, int n, pid_t only)
{
	char path[64];
	struct dirent *de;
	int *order, err = 0;
	DIR *proc = NULL, *fds;

	for (int i = 0; i < n; i++)
		v[i].nowners = v[i].owners_total = 0;
	if (n <= 0)
		return 0;
	order = malloc((size_t)n * sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, (size_t)n, sizeof(*order), cmp_inode, v);
	if (only > 0) {
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)only);
		fds = opendir(path);
		if (fds) {
			scan_fds(fds, only, v, order, n);
			closedir(fds);
		}
		free(order);
		return 0;
	}
	proc = opendir("/proc");
	if (!proc) {
		err = -errno;
		free(order);
		return err;
	}
	while ((de = readdir(proc))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
		fds = opendir(path);
		/* EACCES: another user's process; ENOENT: gone; anything else
		 * (out of fds or memory) leaves owners unknown: said */
		if (!fds && errno != EACCES && errno != EPERM && errno != ENOENT)
			err = -errno;
		if (!fds)
			continue;
		scan_fds(fds, (pid_t)pid, v, order, n);
		closedir(fds);
	}
	closedir(proc);
	free(order);
	return err;
}

int sm_diag_owners(struct sm_listener *v, int n)
{
	return fill_owners(v, n, 0);
}

int sm_diag_owners_of(struct sm_listener *v, int n, pid_t pid)
{
	return pid > 0 ? fill_owners(v, n, pid) : -EINVAL;
}

int sm_diag_take(const struct sm_listener *l, int i)
{
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
	int pidfd, fd, err;

	if (i < 0 || i >= l->nowners)
		return -EINVAL;
	pidfd = (int)syscall(SYS_pidfd_open, l->owners[i].pid, 0);
	if (pidfd < 0)
		return -errno;
	fd = (int)syscall(SYS_pidfd_getfd, pidfd, l->owners[i].fd, 0);
	err = errno;
	close(pidfd);
	if (fd < 0)
		return -err;
	if (sockmig_cookie(fd) != l->cookie) {
		close(fd);
		return -ESTALE;
	}
	return fd;
#else
	(void)l;
	(void)i;
	return -ENOSYS;
#endif
}

int sm_diag_reuseport(const struct sm_listener *l)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	uid_t me = geteuid();
	int fd, one = 1, ret = -1;

	if (l->uid != me && me != 0)
		return -1;
	if (l->uid != me)
		setfsuid(l->uid);
	fd = socket(l->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->uid != me)
		setfsuid(me);
	if (fd < 0)
		return -1;
	if (l->family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)l->port);
		sin->sin_addr = l->addr.v4;
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)l->port);
		sin6->sin6_addr = l->addr.v6;
	}
	/* v6 only: an IPv4 listener on the same port must not answer for a
	 * dual-stack [::] one */
	if (l->family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0 &&
	    (!l->ifindex ||
	     setsockopt(fd, SOL_SOCKET, SO_BINDTOIFINDEX, &l->ifindex, sizeof(l->ifindex)) == 0)) {
		if (bind(fd, (struct sockaddr *)&ss,
			 l->family == AF_INET ? sizeof(*sin) : sizeof(*sin6)) == 0)
			ret = 1;
		else if (errno == EADDRINUSE)
			ret = 0;
	}
	close(fd);
	return ret;
}

/* ---- UDP sockets ---- */

#define UDIAG_BUF 32768

/* One reply message: append the UDP socket of @port if it is one. */
static int udp_msg(const char *p, size_t plen, int port, struct sm_listener **v, int *n, int *cap)
{
	struct inet_diag_msg m;
	struct sm_listener l;

	if (plen < sizeof(m))
		return -EBADMSG;
	memcpy(&m, p, sizeof(m));
	if ((m.idiag_family != AF_INET && m.idiag_family != AF_INET6) || !m.id.idiag_sport ||
	    (port && ntohs(m.id.idiag_sport) != port))
		return 0;
	if (*n == *cap) {
		int ncap = *cap ? *cap * 2 : 16;
		struct sm_listener *nv = realloc(*v, (size_t)ncap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = ncap;
	}
	memset(&l, 0, sizeof(l));
	l.family = m.idiag_family;
	memcpy(&l.addr, m.id.idiag_src,
	       l.family == AF_INET ? sizeof(l.addr.v4) : sizeof(l.addr.v6));
	l.port = ntohs(m.id.idiag_sport);
	l.cookie = (uint64_t)m.id.idiag_cookie[0] | (uint64_t)m.id.idiag_cookie[1] << 32;
	l.inode = m.idiag_inode;
	l.uid = m.idiag_uid;
	l.queue = m.idiag_rqueue;
	l.ifindex = m.id.idiag_if;
	(*v)[(*n)++] = l;
	return 0;
}

/* One family's UDP sockets in @states (TCPF_ bits) into *v: 1 at the
 * dump's end, or a negative errno (-ENOENT: no UDP sock_diag). */
static int udp_dump_family(int nl, int family, int port, uint32_t states, char *buf,
			   struct sm_listener **v, int *n, int *cap)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req;
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	ssize_t got;

	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = sizeof(req);
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.r.sdiag_family = (uint8_t)family;
	req.r.sdiag_protocol = IPPROTO_UDP;
	req.r.idiag_states = states;
	req.r.id.idiag_sport = htons((uint16_t)port);
	if (sendto(nl, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -errno;
	for (;;) {
		const char *p = buf;

		got = recv(nl, buf, UDIAG_BUF, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? (errno == EAGAIN ? -ETIMEDOUT : -errno) : -EBADMSG;
		while (got >= (ssize_t)sizeof(struct nlmsghdr)) {
			const struct nlmsghdr *h = (const struct nlmsghdr *)(const void *)p;
			int err;

			if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > (size_t)got)
				return -EBADMSG;
			if (h->nlmsg_type == NLMSG_DONE)
				return 1;
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				if (h->nlmsg_len < NLMSG_LENGTH(sizeof(e->error)))
					return -EBADMSG;
				if (e->error)
					return e->error < 0 ? e->error : -EBADMSG;
			} else if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
				err = udp_msg((const char *)NLMSG_DATA(h),
					      h->nlmsg_len - NLMSG_HDRLEN, port, v, n, cap);
				if (err < 0)
					return err;
			}
			if (NLMSG_ALIGN(h->nlmsg_len) >= (size_t)got)
				break;
			got -= (ssize_t)NLMSG_ALIGN(h->nlmsg_len);
			p += NLMSG_ALIGN(h->nlmsg_len);
		}
	}
}

int sm_diag_udp(int port, uint32_t states, struct sm_listener **out)
{
	static const int families[] = {AF_INET, AF_INET6};
	struct timeval tv = {.tv_sec = 5};
	struct sm_listener *v = NULL;
	int nl, n = 0, cap = 0, err = 0;
	char *buf = malloc(UDIAG_BUF);

	*out = NULL;
	if (!buf)
		return -ENOMEM;
	nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0) {
		free(buf);
		return -errno;
	}
	setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]) && err >= 0; i++) {
		err = udp_dump_family(nl, families[i], port, states, buf, &v, &n, &cap);
		if (err == -ENOENT && families[i] == AF_INET6)
			err = 0; /* no IPv6 in this kernel */
	}
	close(nl);
	free(buf);
	if (err < 0) {
		free(v);
		return err;
	}
	*out = v;
	return n;
}
