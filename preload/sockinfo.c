// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Facts about sockets and this process that the shim's decisions read:
 * socket options, network namespace, privileges, generation, and the
 * group and entry of a listener computed from the socket alone.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"

static int sockopt_int(int fd, int level, int name)
{
	int val = 0;
	socklen_t len = sizeof(val);

	if (getsockopt(fd, level, name, &val, &len) < 0)
		return -1;
	return val;
}

bool shim_is_listening(int fd)
{
	return sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN) == 1;
}

bool shim_fd_is_socket(int fd, unsigned long ino)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == ino;
}

/* The socket's network namespace; the thread's when the kernel will not
 * say (as the library does). */
unsigned long shim_sock_netns(int fd)
{
	struct stat st;
	int ns = ioctl(fd, SIOCGSKNS);
	unsigned long ino = 0;

	if (ns < 0)
		return sockmig_netns_self();
	if (fstat(ns, &st) == 0)
		ino = st.st_ino;
	shim_real.close(ns);
	return ino;
}

/* CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) in the effective set, as
 * loading the policy program needs (the verifier refuses it without
 * CAP_PERFMON); CAP_NET_ADMIN is not needed. */
bool shim_bpf_privileged(void)
{
	return sockmig_missing_cap() == NULL; /* cannot tell: the library tries */
}

/*
 * Generation: this process's start time in clock ticks since boot (field
 * 22 of /proc/self/stat), so that a process started later is a newer
 * generation; SOCKMIG_GENERATION overrides. 32 bits of ticks at 100 Hz
 * last 497 days of uptime.
 */
uint32_t shim_process_generation(void)
{
	char buf[1024], *p;
	ssize_t n;
	int fd, field;

	if (shim_cfg.have_generation)
		return shim_cfg.generation;
	fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	shim_real.close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* the command name (field 2) may hold spaces and parentheses */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	for (field = 2; field < 22 && p; field++) {
		p = strchr(p + 1, ' ');
		if (p)
			while (p[1] == ' ')
				p++;
	}
	return p ? (uint32_t)strtoull(p + 1, NULL, 10) : 0;
}

bool shim_tcp_reuseport_listener(int fd)
{
	int dom = sockopt_int(fd, SOL_SOCKET, SO_DOMAIN);

	return (dom == AF_INET || dom == AF_INET6) &&
	       sockopt_int(fd, SOL_SOCKET, SO_PROTOCOL) == IPPROTO_TCP &&
	       sockopt_int(fd, SOL_SOCKET, SO_REUSEPORT) == 1;
}

int shim_group_of(int fd, char *name)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return sockmig_group_name_for(AF_INET, &sin->sin_addr, ntohs(sin->sin_port),
					      shim_sock_netns(fd), name, SOCKMIG_NAME_MAX);
	return sockmig_group_name_for(ss.ss_family, &sin6->sin6_addr, ntohs(sin6->sin6_port),
				      shim_sock_netns(fd), name, SOCKMIG_NAME_MAX);
}

bool shim_entry_of_fd(int fd, struct shim_entry *e)
{
	struct stat st;

	memset(e, 0, sizeof(*e));
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) || !shim_tcp_reuseport_listener(fd) ||
	    !shim_is_listening(fd) || shim_group_of(fd, e->group) < 0)
		return false;
	e->ino = st.st_ino;
	e->cookie = sockmig_cookie(fd);
	return e->cookie != 0;
}
