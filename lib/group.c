// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Groups: names (netns, family, address, port), open by socket or by name,
 * list, close, the maintainer's lease, destroy.
 *
 * The rest of a group lives next door: the pin root, the lock and the
 * policy program in pin.c, members in member.c, the selection table in
 * table.c, drains and wake-ups in drain.c (lib/group_priv.h holds what
 * they share). Every change to a group's maps happens under flock() on
 * the group's bpffs directory, so processes sharing the group never
 * interleave table rebuilds. The program itself never takes that lock: it
 * reads a table copy that user space has finished writing (two copies,
 * one index).
 */
#include <bpf/bpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "group_priv.h"
#include "legacy.h"
#include "policy.h"

const char *sockmig_role_str(enum sockmig_role role)
{
	static const char *const names[] = {
		[SOCKMIG_ROLE_ACTIVE] = "active",
		[SOCKMIG_ROLE_DRAINING] = "draining",
		[SOCKMIG_ROLE_HOLDER] = "holder",
	};

	return (unsigned)role < sizeof(names) / sizeof(names[0]) && names[role] ? names[role] : "?";
}

const char *sockmig_kind_str(enum sockmig_kind kind)
{
	static const char *const names[] = {"established", "tfo", "req-timer", "req-ack"};

	return (unsigned)kind < SOCKMIG_KIND_MAX ? names[kind] : "?";
}

int sockmig_group_name_for(int family, const void *addr, int port, uint64_t netns, char *buf,
			   size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if ((family != AF_INET && family != AF_INET6) || port <= 0 || port > 65535 ||
	    !inet_ntop(family, addr, host, sizeof(host)))
		return sm_fail(EINVAL, "not an IPv4 or IPv6 address and port");
	/* bpffs refuses names with dots */
	for (char *p = host; *p; p++)
		if (*p == '.')
			*p = '_';
	snprintf(buf, len, "%llu-tcp%d-%s-%d", (unsigned long long)netns, family == AF_INET ? 4 : 6,
		 host, port);
	return 0;
}

uint64_t sm_socket_netns(int fd)
{
	struct stat st;
	int ns = ioctl(fd, SIOCGSKNS);

	if (ns >= 0) {
		int ok = fstat(ns, &st);

		close(ns);
		if (ok == 0)
			return st.st_ino;
	}
	return sockmig_netns_self();
}

/* Name a group from what the kernel groups by: netns, family, address, port. */
int sm_group_name_of_fd(int fd, struct sm_addr *a, uint64_t *netns, char *buf, size_t len)
{
	char dev[IFNAMSIZ] = "";
	int val = 0, err;
	socklen_t vlen = sizeof(val), dlen;
	const void *addr;

	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &val, &vlen) < 0)
		return sm_fail(errno == ENOTSOCK ? EINVAL : errno, "fd %d is not a socket: %s", fd,
			       strerror(errno));
	if (val != IPPROTO_TCP)
		return sm_fail(EINVAL, "fd %d is not a TCP socket", fd);
	err = sm_sock_addr(fd, a);
	if (err)
		return sm_fail(EINVAL, "fd %d is not an IPv4 or IPv6 socket", fd);
	vlen = sizeof(val);
	if (getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &val, &vlen) < 0 || !val)
		return sm_fail(EINVAL, "fd %d has no SO_REUSEPORT: it cannot share a group", fd);
	if (sm_addr_port(a) == 0)
		return sm_fail(EINVAL, "fd %d is not bound to a port", fd);
	/* The kernel keeps listeners bound to a device in a reuseport group of
	 * their own, apart from the unbound ones at the same address and port;
	 * a name made of address and port cannot tell the two apart. */
	dlen = sizeof(dev);
	if (getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, &dlen) == 0 && dlen > 0 && dev[0])
		return sm_fail(EOPNOTSUPP,
			       "fd %d is bound to device %s (SO_BINDTODEVICE): not supported, its "
			       "group could not be told from the unbound listeners'",
			       fd, dev);
	addr = a->family == AF_INET ? (const void *)&a->v4.sin_addr
				    : (const void *)&a->v6.sin6_addr;
	*netns = sm_socket_netns(fd);
	return sockmig_group_name_for(a->family, addr, sm_addr_port(a), *netns, buf, len);
}

/* The address and port a group's name spells. */
int sm_parse_group_name(const char *name, struct sm_addr *a, uint64_t *netns)
{
	char host[INET6_ADDRSTRLEN + 1], *end;
	const char *p = strchr(name, '-'), *last = strrchr(name, '-');
	size_t hl;
	int port;

	memset(a, 0, sizeof(*a));
	errno = 0;
	*netns = strtoull(name, &end, 10);
	if (errno || end != p || end == name || *netns == 0)
		return -EINVAL;
	if (!p || strncmp(p, "-tcp", 4) != 0 || (p[4] != '4' && p[4] != '6') || p[5] != '-' ||
	    last <= p + 5)
		return -EINVAL;
	hl = (size_t)(last - (p + 6));
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, p + 6, hl);
	host[hl] = '\0';
	for (char *h = host; *h; h++)
		if (*h == '_')
			*h = '.';
	port = atoi(last + 1);
	if (port <= 0 || port > 65535)
		return -EINVAL;
	if (p[4] == '4') {
		a->family = AF_INET;
		a->v4.sin_family = AF_INET;
		a->v4.sin_port = htons((uint16_t)port);
		a->len = sizeof(a->v4);
		return inet_pton(AF_INET, host, &a->v4.sin_addr) == 1 ? 0 : -EINVAL;
	}
	a->family = AF_INET6;
	a->v6.sin6_family = AF_INET6;
	a->v6.sin6_port = htons((uint16_t)port);
	a->len = sizeof(a->v6);
	return inet_pton(AF_INET6, host, &a->v6.sin6_addr) == 1 ? 0 : -EINVAL;
}

static int is_listening(int fd)
{
	int val = 0;
	socklen_t len = sizeof(val);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &val, &len) < 0)
		return 0;
	return val;
}

static const char *pin_root_of(const struct sockmig_group_opts *opts)
{
	return sm_pin_root(OPTS_GET(opts, pin_root, NULL));
}

static struct sockmig_group *group_alloc(const struct sockmig_group_opts *opts)
{
	struct sockmig_group *g;

	if (!OPTS_VALID(opts, sockmig_group_opts))
		return NULL;
	g = calloc(1, sizeof(*g));
	if (!g) {
		errno = ENOMEM;
		return NULL;
	}
	g->dirfd = -1;
	g->prog_fd = -1;
	g->wake = OPTS_GET(opts, wake_targets, SOCKMIG_WAKE_AUTO);
	g->policy = sm_policy_requested(OPTS_GET(opts, policy, SOCKMIG_POLICY_AUTO));
	if (g->policy < 0) {
		free(g);
		errno = EINVAL;
		return NULL;
	}
	snprintf(g->root, sizeof(g->root), "%s", pin_root_of(opts));
	return g;
}

struct sockmig_group *sockmig_group_open_name(const char *name,
					      const struct sockmig_group_opts *opts)
{
	struct sockmig_group *g = group_alloc(opts);
	char pin[PATH_MAX + 256];
	struct stat st;
	int err;

	if (!g)
		return NULL;
	if (!name || strchr(name, '/') || sm_parse_group_name(name, &g->addr, &g->netns) < 0) {
		err = sm_fail(EINVAL, "'%s' is not a sockmig group name", name ? name : "");
		goto free_group;
	}
	snprintf(g->name, sizeof(g->name), "%s", name);
	snprintf(g->path, sizeof(g->path), "%s/%s", g->root, g->name);
	err = sm_root_readable(g->root);
	if (err == -EPERM)
		goto free_group;
	snprintf(pin, sizeof(pin), "%s/state", g->path);
	if (stat(pin, &st) < 0) {
		err = sm_fail(errno == EACCES ? EPERM : ENOENT, "no sockmig group %s in %s%s", name,
			      g->root, errno == EACCES ? " (needs root)" : "");
		goto free_group;
	}
	g->dirfd = open(g->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (g->dirfd < 0) {
		err = sm_fail(errno, "cannot open %s: %s", g->path, strerror(errno));
		goto free_group;
	}
	if (fstat(g->dirfd, &st) < 0 || !sm_dir_private(&st)) {
		err = sm_fail(EPERM, "%s is not a private directory of uid %u: not read", g->path,
			      (unsigned)geteuid());
		goto free_group;
	}
	err = sm_group_lock(g);
	if (err)
		goto free_group;
	err = sm_load_pinned(g);
	sm_group_unlock(g);
	if (err)
		goto free_group;
	sm_decide_wake(g);
	return g;
free_group:
	sockmig_group_close(g);
	errno = -err;
	return NULL;
}

int sockmig_group_list(const struct sockmig_group_opts *opts, char (*names)[SOCKMIG_NAME_MAX],
		       int max)
{
	const char *root;
	struct dirent *de;
	DIR *d;
	int n = 0, err;

	if (!OPTS_VALID(opts, sockmig_group_opts))
		return -EINVAL;
	root = pin_root_of(opts);
	err = sm_root_opendir(root, &d);
	if (err || !d)
		return err;
	while ((de = readdir(d))) {
		/* UDP groups (lib/udp.c) share the root but are not TCP groups */
		if (de->d_name[0] == '.' || strstr(de->d_name, "-udp4-") ||
		    strstr(de->d_name, "-udp6-"))
			continue;
		if (n < max)
			snprintf(names[n], SOCKMIG_NAME_MAX, "%s", de->d_name);
		n++;
	}
	closedir(d);
	return n;
}

struct sockmig_group *sockmig_group_open(int fd, const struct sockmig_group_opts *opts)
{
	struct sockmig_group *g = group_alloc(opts);
	bool made_root = false;
	int err;

	if (!g)
		return NULL;
	err = sm_group_name_of_fd(fd, &g->addr, &g->netns, g->name, sizeof(g->name));
	if (err)
		goto free_group;
	err = sm_check_root(g->root, &made_root);
	if (err)
		goto free_group;
	snprintf(g->path, sizeof(g->path), "%s/%s", g->root, g->name);
	err = sm_open_dir_locked(g);
	if (err)
		goto free_group;
	err = sm_load_pinned(g);
	if (err)
		goto unlock;
	sm_collect_stale(g);
	if (is_listening(fd)) {
		err = sockmig_group_attach(g, fd);
		if (err)
			goto unlock;
	}
	sm_group_unlock(g);
	sm_decide_wake(g);
	sm_log(SOCKMIG_DEBUG, "libsockmig: opened group %s\n", g->name);
	return g;

unlock:
	sm_group_unlock(g);
	/* leave nothing behind that we may have created (empty dirs only) */
	if (g->path[0])
		rmdir(g->path);
	if (made_root)
		rmdir(g->root);
free_group:
	sockmig_group_close(g);
	errno = -err;
	return NULL;
}

void sockmig_group_close(struct sockmig_group *g)
{
	if (!g)
		return;
	if (g->own_fds) {
		int fds[] = {g->fd_members, g->fd_state,  g->fd_counters,
			     g->fd_table,   g->fd_tabidx, g->fd_gstats,
			     g->fd_kick,    g->fd_lease,  g->fd_pcounters};

		for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	if (g->prog_fd >= 0)
		close(g->prog_fd);
	if (g->dirfd >= 0)
		close(g->dirfd);
	sm_policy_close(g->bpf);
	free(g);
}

const char *sockmig_group_name(const struct sockmig_group *g)
{
	return g->name;
}

const char *sockmig_group_path(const struct sockmig_group *g)
{
	return g->path;
}

enum sockmig_policy sockmig_group_policy(const struct sockmig_group *g)
{
	return (enum sockmig_policy)g->policy;
}

int sockmig_group_set_lease(struct sockmig_group *g, uint32_t ms)
{
	uint32_t k = SM_LEASE_EXPIRES;
	uint64_t exp = ms ? sm_now_ns() + (uint64_t)ms * 1000000ull : 0;

	if (!g)
		return sm_fail(EINVAL, "lease: no group");
	/* one element of an array map: no lock, the program sees the old
	 * value or the new one */
	if (bpf_map_update_elem(g->fd_lease, &k, &exp, BPF_ANY) < 0)
		return sm_fail(errno, "cannot write the lease of group %s: %s", g->name,
			       strerror(errno));
	return 0;
}

static uint64_t coarse_now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) < 0)
		return sm_now_ns();
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int sockmig_group_lease(struct sockmig_group *g, struct sockmig_lease *out)
{
	uint32_t k = SM_LEASE_EXPIRES;
	uint64_t exp = 0, passed = 0, now;

	if (!g || !out)
		return sm_fail(EINVAL, "lease: no group or no result");
	if (bpf_map_lookup_elem(g->fd_lease, &k, &exp) < 0)
		return sm_fail(errno, "cannot read the lease of group %s: %s", g->name,
			       strerror(errno));
	k = SM_LEASE_SYN_PASSED;
	bpf_map_lookup_elem(g->fd_lease, &k, &passed);
	/* the program reads the lease with the coarse clock (a tick behind at
	 * most: policy.bpf.c; the precise one in the legacy program, never
	 * behind this): "expired" here only once the program sees it too */
	now = coarse_now_ns();
	memset(out, 0, sizeof(*out));
	out->set = exp != 0;
	out->expired = exp && now > exp;
	out->left_ms = exp && now < exp ? (exp - now + 999999) / 1000000 : 0;
	out->syn_passed = passed;
	return 0;
}

/* fd must be a listening socket of this group. */
int sm_check_member_fd(struct sockmig_group *g, int fd)
{
	struct sm_addr a;
	char name[sizeof(g->name)];
	uint64_t netns;
	int err;

	err = sm_group_name_of_fd(fd, &a, &netns, name, sizeof(name));
	if (err)
		return err;
	if (strcmp(name, g->name) != 0)
		return sm_fail(EXDEV, "fd %d belongs to group %s, not %s", fd, name, g->name);
	if (!is_listening(fd))
		return sm_fail(EBUSY, "fd %d does not listen (register after listen())", fd);
	return 0;
}

int sockmig_group_destroy(struct sockmig_group *g)
{
	int err = sm_group_lock(g);

	if (err)
		return err;
	sm_unpin_all(g);
	sm_group_unlock(g);
	return 0;
}
