// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Groups and members: the pinned maps of one SO_REUSEPORT group, the
 * selection table the policy program reads, drain and leave.
 *
 * Every change to a group's maps happens under flock() on the group's
 * bpffs directory, so processes sharing the group never interleave table
 * rebuilds. The program itself never takes that lock: it reads a table
 * copy that user space has finished writing (two copies, one index).
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/sockios.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "legacy.h"
#include "policy.h"
#include "policy.skel.h"

#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF 68
#endif

#define DRAIN_DEADLINE_MS 1000 /* default wait for the handshakes in flight */

struct sockmig_group {
	struct policy_bpf *skel;
	int dirfd;
	int prog_fd;
	int fd_members, fd_state, fd_counters, fd_table, fd_tabidx, fd_gstats, fd_kick, fd_lease;
	bool own_fds; /* the map fds are ours (from the pins), not the skeleton's */
	enum sockmig_wake wake;
	int policy; /* enum sockmig_policy: asked for, then in force */
	struct sm_addr addr;
	char name[SOCKMIG_NAME_MAX];
	char path[PATH_MAX + 128];
	char root[PATH_MAX];
};

const char *sockmig_role_str(enum sockmig_role role)
{
	switch (role) {
	case SOCKMIG_ROLE_ACTIVE:
		return "active";
	case SOCKMIG_ROLE_DRAINING:
		return "draining";
	case SOCKMIG_ROLE_HOLDER:
		return "holder";
	}
	return "?";
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

/* The network namespace of socket @fd (it may be another process's, taken
 * with pidfd_getfd()); the calling thread's when the kernel will not say. */
static uint64_t socket_netns(int fd)
{
	struct stat st;
	int ns = ioctl(fd, SIOCGSKNS);

	if (ns >= 0) {
		int ok = fstat(ns, &st);

		close(ns);
		if (ok == 0)
			return st.st_ino;
	}
	if (stat("/proc/thread-self/ns/net", &st) < 0)
		return 0;
	return st.st_ino;
}

/* Name a group from what the kernel groups by: netns, family, address, port. */
static int group_name(int fd, struct sm_addr *a, char *buf, size_t len)
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
	return sockmig_group_name_for(a->family, addr, sm_addr_port(a), socket_netns(fd), buf, len);
}

/* The address and port a group's name spells. */
static int parse_group_name(const char *name, struct sm_addr *a)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *p = strchr(name, '-'), *last = strrchr(name, '-');
	size_t hl;
	int port;

	memset(a, 0, sizeof(*a));
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

/* A directory of ours that nobody else may change: owned by the caller,
 * mode without group or other bits. */
static bool dir_private(const struct stat *st)
{
	return S_ISDIR(st->st_mode) && st->st_uid == geteuid() && !(st->st_mode & 077);
}

/*
 * Every directory above the pin root: owned by root or the caller, and
 * writable by others only with the sticky bit (then nobody else can move
 * or replace what we create in it).
 */
static int check_ancestors(const char *root)
{
	char path[PATH_MAX], *slash;
	struct stat st;

	snprintf(path, sizeof(path), "%s", root);
	while ((slash = strrchr(path, '/'))) {
		if (slash == path)
			slash[1] = '\0';
		else
			*slash = '\0';
		if (stat(path, &st) < 0)
			return sm_fail(errno == ENOENT ? ENOENT : errno, "cannot stat %s: %s", path,
				       strerror(errno));
		if (!S_ISDIR(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid()) ||
		    ((st.st_mode & 022) && !(st.st_mode & S_ISVTX)))
			return sm_fail(EPERM,
				       "%s is not safe for the pin root: owned by uid %u, mode %o "
				       "(it must be owned by root and writable by others only "
				       "with the sticky bit)",
				       path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		if (slash == path)
			break;
	}
	return 0;
}

/*
 * A pin root that is not a private directory of ours (another user made it
 * first on a bpffs mounted 1777, or it is a symlink): root, or its owner,
 * swaps it atomically with a fresh private directory and leaves it, as it
 * was, under "<root>-foreign-<uid>-<inode>". Anyone else is refused.
 */
static int replace_root(const char *root, const struct stat *st)
{
	char fresh[PATH_MAX + 64];

	if (geteuid() != 0 && st->st_uid != geteuid())
		return sm_fail(EPERM, "%s must be a directory owned by uid %u with mode 0700", root,
			       (unsigned)geteuid());
	snprintf(fresh, sizeof(fresh), "%s-foreign-%u-%llu", root, (unsigned)st->st_uid,
		 (unsigned long long)st->st_ino);
	if (mkdir(fresh, 0700) < 0)
		return sm_fail(errno, "cannot create %s: %s", fresh, strerror(errno));
	if (renameat2(AT_FDCWD, fresh, AT_FDCWD, root, RENAME_EXCHANGE) < 0) {
		int err = errno;

		rmdir(fresh);
		return sm_fail(err, "cannot move %s (uid %u, mode %o) away: %s", root,
			       (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777),
			       strerror(err));
	}
	sm_log(SOCKMIG_WARN,
	       "libsockmig: %s was not a private directory of uid %u (uid %u, mode %o): moved to "
	       "%s\n",
	       root, (unsigned)geteuid(), (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777),
	       fresh);
	return 0;
}

/*
 * The pin root must sit on bpffs, under directories nobody else can change,
 * and be a private directory of ours, made here if missing (*made then set).
 * It is never removed: an empty root left in place keeps others from making
 * it first.
 */
static int check_root(const char *root, bool *made)
{
	char parent[PATH_MAX], *slash;
	struct statfs sfs;
	struct stat st;
	int err;

	*made = false;
	snprintf(parent, sizeof(parent), "%s", root);
	slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = '\0';
	if (statfs(parent, &sfs) < 0 || sfs.f_type != BPF_FS_MAGIC)
		return sm_fail(ENOENT, "no BPF filesystem at %s (mount -t bpf bpf %s)", parent,
			       parent);
	err = check_ancestors(root);
	if (err)
		return err;
	for (int tries = 0; tries < 3; tries++) {
		if (mkdir(root, 0700) == 0)
			*made = true;
		else if (errno != EEXIST)
			return sm_fail(errno, "cannot create %s: %s", root, strerror(errno));
		if (lstat(root, &st) < 0) {
			if (errno == ENOENT)
				continue;
			return sm_fail(errno, "cannot stat %s: %s", root, strerror(errno));
		}
		if (dir_private(&st))
			return 0;
		*made = false;
		err = replace_root(root, &st);
		if (err)
			return err;
	}
	return sm_fail(EAGAIN, "%s keeps changing", root);
}

/* For readers (list, open by name): the root as it is, never made or moved. */
static int root_readable(const char *root)
{
	struct stat st;

	if (lstat(root, &st) < 0)
		return errno == ENOENT
			       ? -ENOENT
			       : sm_fail(errno, "cannot stat %s: %s", root, strerror(errno));
	if (!dir_private(&st) && !(S_ISDIR(st.st_mode) && st.st_uid == 0 && !(st.st_mode & 022)))
		return sm_fail(EPERM, "%s is not sockmig's (uid %u, mode %o): not read", root,
			       (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	return 0;
}

int sm_lock_wait_ms = -1;

static int lock_group(struct sockmig_group *g)
{
	struct timespec nap = {0, 1000000};
	int waited_ms = 0;

	if (sm_lock_wait_ms < 0) {
		if (flock(g->dirfd, LOCK_EX) < 0)
			return sm_fail(errno, "cannot lock %s: %s", g->path, strerror(errno));
		return 0;
	}
	while (flock(g->dirfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return sm_fail(errno, "cannot lock %s: %s", g->path, strerror(errno));
		if (waited_ms >= sm_lock_wait_ms)
			return sm_fail(ETIMEDOUT,
				       "%s is locked by another process for more than %d ms",
				       g->path, sm_lock_wait_ms);
		nanosleep(&nap, NULL);
		waited_ms++;
	}
	return 0;
}

static void unlock_group(struct sockmig_group *g)
{
	flock(g->dirfd, LOCK_UN);
}

int sm_group_lock(struct sockmig_group *g)
{
	return lock_group(g);
}

void sm_group_unlock(struct sockmig_group *g)
{
	unlock_group(g);
}

/* Open and lock the group directory; retry if it is removed under us. */
static int open_dir_locked(struct sockmig_group *g)
{
	struct stat a, b;
	bool made;

	for (int tries = 0; tries < 5; tries++) {
		if (mkdir(g->path, 0700) < 0 && errno != EEXIST) {
			/* the root went (an older version removed it): check it again */
			if (errno == ENOENT && check_root(g->root, &made) == 0)
				continue;
			return sm_fail(errno, "cannot create %s: %s", g->path, strerror(errno));
		}
		g->dirfd = open(g->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (g->dirfd < 0) {
			if (errno == ENOENT)
				continue;
			return sm_fail(errno, "cannot open %s: %s", g->path, strerror(errno));
		}
		if (fstat(g->dirfd, &b) < 0 || !dir_private(&b)) {
			close(g->dirfd);
			g->dirfd = -1;
			return sm_fail(EPERM,
				       "%s must be a directory owned by uid %u with mode 0700",
				       g->path, (unsigned)geteuid());
		}
		if (lock_group(g))
			return -errno;
		if (stat(g->path, &a) == 0 && fstat(g->dirfd, &b) == 0 && a.st_ino == b.st_ino)
			return 0;
		close(g->dirfd);
		g->dirfd = -1;
	}
	return sm_fail(EAGAIN, "%s keeps disappearing", g->path);
}

static int is_listening(int fd)
{
	int val = 0;
	socklen_t len = sizeof(val);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &val, &len) < 0)
		return 0;
	return val;
}

int sockmig_group_attach(struct sockmig_group *g, int fd)
{
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &g->prog_fd, sizeof(g->prog_fd)) <
	    0)
		return sm_fail(errno, "cannot attach the policy to group %s: %s", g->name,
			       strerror(errno));
	return 0;
}

/* The group's pins as they are, without loading anything: the fast path
 * of every open after the first. 0, or -ENOENT when one is missing. */
static int get_pinned(struct sockmig_group *g)
{
	static const char *const names[] = {"members", "state", "counters", "table", "tabidx",
					    "gstats",  "kick",	"lease",    "prog"};
	int *fds[] = {&g->fd_members, &g->fd_state, &g->fd_counters, &g->fd_table, &g->fd_tabidx,
		      &g->fd_gstats,  &g->fd_kick,  &g->fd_lease,    &g->prog_fd};
	char pin[PATH_MAX + 32];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(pin, sizeof(pin), "%s/%s", g->path, names[i]);
		*fds[i] = bpf_obj_get(pin);
		if (*fds[i] < 0) {
			for (size_t j = 0; j < i; j++) {
				close(*fds[j]);
				*fds[j] = -1;
			}
			*fds[i] = -1;
			return -ENOENT;
		}
	}
	g->own_fds = true;
	return 0;
}

/* Open and load the policy object with the group's pins; a negative errno. */
static int load_policy(struct sockmig_group *g, bool legacy)
{
	struct bpf_map *map;
	char pin[PATH_MAX + 32];
	int err;

	policy_bpf__destroy(g->skel);
	g->skel = sm_policy_open(legacy);
	if (!g->skel)
		return sm_fail(errno, "cannot open the policy program: %s", strerror(errno));
	bpf_object__for_each_map(map, g->skel->obj)
	{
		snprintf(pin, sizeof(pin), "%s/%s", g->path, bpf_map__name(map));
		err = bpf_map__set_pin_path(map, pin);
		if (err)
			return sm_fail(-err, "cannot set pin path %s", pin);
	}
	return policy_bpf__load(g->skel);
}

/* Map id of @fd, 0 when unreadable. */
static __u32 map_id(int fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
		return 0;
	return info.id;
}

/*
 * Whether program @prog_fd reads only the group's maps as this handle holds
 * them, the lease among them. After part of the pins went, a new map stands
 * where the program still reads the old one: user space would write what
 * it never sees. A program pinned by a version without the lease reads no
 * lease map: it is replaced too (re-attached as members register again).
 */
static bool prog_reads_our_maps(const struct sockmig_group *g, int prog_fd)
{
	int fds[] = {g->fd_members, g->fd_state,  g->fd_counters, g->fd_table,
		     g->fd_tabidx,  g->fd_gstats, g->fd_kick,	  g->fd_lease};
	bool lease = false;
	__u32 ours[sizeof(fds) / sizeof(fds[0])], ids[16] = {0};
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		ours[i] = map_id(fds[i]);
	memset(&info, 0, sizeof(info));
	info.nr_map_ids = sizeof(ids) / sizeof(ids[0]);
	info.map_ids = (__u64)(unsigned long)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) < 0 ||
	    info.nr_map_ids > sizeof(ids) / sizeof(ids[0]))
		return false;
	for (__u32 i = 0; i < info.nr_map_ids; i++) {
		bool found = false;

		for (size_t j = 0; j < sizeof(ours) / sizeof(ours[0]); j++)
			found |= ours[j] && ours[j] == ids[i];
		if (!found)
			return false;
		lease |= ids[i] == map_id(g->fd_lease);
	}
	return lease;
}

static void close_pinned(struct sockmig_group *g)
{
	int *fds[] = {&g->fd_members, &g->fd_state, &g->fd_counters, &g->fd_table, &g->fd_tabidx,
		      &g->fd_gstats,  &g->fd_kick,  &g->fd_lease,    &g->prog_fd};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	g->own_fds = false;
}

/* The group's maps and program: the pins as they are when they agree, else
 * the missing maps made again and the program loaded and pinned again, so
 * that it reads the maps user space writes. Under the group lock. */
static int load_pinned(struct sockmig_group *g)
{
	char pin[PATH_MAX + 32];
	int err, fd;

	if (get_pinned(g) == 0) {
		err = sm_policy_of_prog(g->prog_fd, g->policy, g->name);
		if (err < 0)
			return err;
		g->policy = err;
		if (prog_reads_our_maps(g, g->prog_fd))
			return 0;
		sm_log(SOCKMIG_WARN,
		       "libsockmig: the program pinned for group %s reads maps that are no longer "
		       "pinned: loading it again\n",
		       g->name);
		close_pinned(g);
	}

	/* a program left pinned says which policy the group runs */
	snprintf(pin, sizeof(pin), "%s/prog", g->path);
	fd = bpf_obj_get(pin);
	if (fd >= 0) {
		err = sm_policy_of_prog(fd, g->policy, g->name);
		close(fd);
		if (err < 0)
			return err;
		g->policy = err;
	}

	if (g->policy == SOCKMIG_POLICY_AUTO && sm_verifier_loads_migrate() == 0) {
		/* decided by a 3-instruction program, not by the policy's
		 * slow rejection on 5.10's verifier */
		sm_log(SOCKMIG_INFO,
		       "libsockmig: the kernel loads no migrate program: legacy mode\n");
		g->policy = SOCKMIG_POLICY_LEGACY;
	}
	err = load_policy(g, g->policy == SOCKMIG_POLICY_LEGACY);
	if (err && g->policy == SOCKMIG_POLICY_AUTO && err != -EPERM) {
		/* no migrate program on this kernel (4.19 to 5.13): legacy mode */
		sm_log(SOCKMIG_INFO,
		       "libsockmig: the kernel loads no migrate program (%s): legacy mode\n",
		       strerror(-err));
		g->policy = SOCKMIG_POLICY_LEGACY;
		err = load_policy(g, true);
	}
	if (!err && g->policy == SOCKMIG_POLICY_AUTO)
		g->policy = SOCKMIG_POLICY_NATIVE;
	if (err)
		return sm_fail(-err == EPERM ? EPERM : -err, "cannot load the policy program: %s%s",
			       strerror(-err),
			       -err == EPERM ? " (needs CAP_BPF and CAP_NET_ADMIN, or root)" : "");

	g->fd_members = bpf_map__fd(g->skel->maps.members);
	g->fd_state = bpf_map__fd(g->skel->maps.state);
	g->fd_counters = bpf_map__fd(g->skel->maps.counters);
	g->fd_table = bpf_map__fd(g->skel->maps.table);
	g->fd_tabidx = bpf_map__fd(g->skel->maps.tabidx);
	g->fd_gstats = bpf_map__fd(g->skel->maps.gstats);
	g->fd_kick = bpf_map__fd(g->skel->maps.kick);
	g->fd_lease = bpf_map__fd(g->skel->maps.lease);
	fd = bpf_obj_get(pin);
	if (fd >= 0 && !prog_reads_our_maps(g, fd)) {
		/* pinned over the maps that went: ours replaces it */
		close(fd);
		fd = -1;
		if (unlink(pin) < 0)
			return sm_fail(errno, "cannot replace %s: %s", pin, strerror(errno));
	}
	if (fd < 0) {
		err = bpf_obj_pin(bpf_program__fd(g->skel->progs.sockmig_policy), pin);
		if (err)
			return sm_fail(errno, "cannot pin %s: %s", pin, strerror(errno));
		fd = fcntl(bpf_program__fd(g->skel->progs.sockmig_policy), F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return sm_fail(errno, "dup: %s", strerror(errno));
	}
	g->prog_fd = fd;
	return 0;
}

/* Cookie of the listener in @slot, 0 when empty. */
static uint64_t slot_cookie(struct sockmig_group *g, uint32_t slot)
{
	uint64_t cookie = 0;

	if (bpf_map_lookup_elem(g->fd_members, &slot, &cookie) < 0)
		return 0;
	return cookie;
}

struct member_rec {
	uint64_t cookie;
	struct sm_member m;
	bool live;
};

/* All state entries (one batch lookup where the kernel has it), each with
 * whether it still listens; *n set to their number. Caller frees. */
static struct member_rec *read_members(struct sockmig_group *g, int *n)
{
	enum { CAP = 4 * SM_MAX_MEMBERS };
	struct member_rec *recs = calloc(CAP, sizeof(*recs));
	uint64_t *keys = calloc(CAP, sizeof(*keys)), key, next, *prev = NULL, token = 0;
	struct sm_member *vals = calloc(CAP, sizeof(*vals));
	__u32 count = CAP;
	int cnt = 0, err;

	if (!recs || !keys || !vals)
		goto fail;
	err = bpf_map_lookup_batch(g->fd_state, NULL, &token, keys, vals, &count, NULL);
	if (err == 0 || errno == ENOENT) {
		/* ENOENT: the batch reached the end of the map */
		for (__u32 i = 0; i < count && cnt < CAP; i++, cnt++) {
			recs[cnt].cookie = keys[i];
			recs[cnt].m = vals[i];
		}
	} else {
		while (cnt < CAP && bpf_map_get_next_key(g->fd_state, prev, &next) == 0) {
			key = next;
			prev = &key;
			if (bpf_map_lookup_elem(g->fd_state, &key, &recs[cnt].m) < 0)
				continue;
			recs[cnt++].cookie = key;
		}
	}
	for (int i = 0; i < cnt; i++)
		recs[i].live = slot_cookie(g, recs[i].m.slot) == recs[i].cookie;
	free(keys);
	free(vals);
	*n = cnt;
	return recs;
fail:
	free(recs);
	free(keys);
	free(vals);
	return NULL;
}

static int cmp_slot(const void *a, const void *b)
{
	const struct member_rec *x = a, *y = b;

	return (int)x->m.slot - (int)y->m.slot;
}

/*
 * Generations compare as serial numbers (RFC 1982): @a is newer than @b when
 * it is ahead by less than 2^31. Start times in clock ticks, as attach and
 * the shim use, wrap after 497 days of uptime at 100 Hz; a generation that
 * wrapped to a small number is still the newer one.
 */
static bool gen_newer(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) > 0;
}

/* Write the selection table for members @recs (sorted here by slot). */
static int write_table(struct sockmig_group *g, struct member_rec *recs, int n)
{
	struct sm_table *t;
	uint32_t zero = 0, cur = 0, next, sum = 0;
	bool weighted = false;
	int err = 0;

	t = calloc(1, sizeof(*t));
	if (!t)
		return sm_fail(ENOMEM, "out of memory");
	qsort(recs, n, sizeof(*recs), cmp_slot);
	for (int i = 0; i < n; i++) {
		const struct sm_member *m = &recs[i].m;

		if (m->slot == SM_NO_SLOT && m->role == SM_ROLE_ACTIVE)
			t->n_unslotted++;
		if (!recs[i].live || m->slot >= SM_MAX_MEMBERS)
			continue;
		t->n_registered++;
		t->cookie[m->slot] = recs[i].cookie;
		t->compat[m->slot] = m->compat;
		if (m->role == SM_ROLE_ACTIVE) {
			if (t->n_active == 0 || gen_newer(m->generation, t->newest_gen))
				t->newest_gen = m->generation;
			sum += m->weight;
			t->cumw[t->n_active] = sum;
			t->active[t->n_active++] = m->slot;
		} else if (m->role == SM_ROLE_HOLDER) {
			t->holder[t->n_holder++] = m->slot;
		}
	}
	/* weights are compared to the first live active member's */
	if (t->n_active) {
		uint32_t w0 = 0;

		for (int i = 0; i < n; i++) {
			if (!recs[i].live || recs[i].m.role != SM_ROLE_ACTIVE)
				continue;
			if (!w0)
				w0 = recs[i].m.weight;
			else if (recs[i].m.weight != w0)
				weighted = true;
		}
	}
	t->total_weight = weighted ? sum : 0;
	for (uint32_t i = 0; i < t->n_active; i++) {
		uint32_t s = t->active[i];

		for (int j = 0; j < n; j++)
			if (recs[j].live && recs[j].m.slot == s &&
			    recs[j].m.generation == t->newest_gen)
				t->newest[t->n_newest++] = s;
	}
	bpf_map_lookup_elem(g->fd_tabidx, &zero, &cur);
	next = (cur & 1) ^ 1;
	if (bpf_map_update_elem(g->fd_table, &next, t, BPF_ANY) < 0 ||
	    bpf_map_update_elem(g->fd_tabidx, &zero, &next, BPF_ANY) < 0)
		err = sm_fail(errno, "cannot write the selection table: %s", strerror(errno));
	free(t);
	return err;
}

/* Rebuild the selection table from the state map; call under the lock. */
static int rebuild_table(struct sockmig_group *g)
{
	struct member_rec *recs;
	int n, err;

	recs = read_members(g, &n);
	if (!recs)
		return sm_fail(ENOMEM, "out of memory");
	err = write_table(g, recs, n);
	free(recs);
	return err;
}

/* Start time of process @pid in clock ticks since boot (field 22 of
 * /proc/PID/stat), 0 when it cannot be read. */
static uint64_t process_start(uint32_t pid)
{
	char path[64], buf[512], *p;
	unsigned long long start = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* the command name may hold spaces and parentheses: start after the last ')' */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1,
			 " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
			 "%*d %*d %*d %llu",
			 &start) != 1)
		return 0;
	return start;
}

/* Whether the process that registered member @m is gone: no such pid, or
 * the pid now belongs to another process (another start time). */
static bool owner_gone(const struct sm_member *m)
{
	uint64_t now;

	if (kill((pid_t)m->pid, 0) < 0 && errno == ESRCH)
		return true;
	if (!m->owner_start)
		return false;
	now = process_start(m->pid);
	return now && now != m->owner_start;
}

/* Forget members that stopped listening and whose process is gone. */
static void collect_stale(struct sockmig_group *g)
{
	struct member_rec *recs;
	int n;

	recs = read_members(g, &n);
	if (!recs)
		return;
	for (int i = 0; i < n; i++) {
		if (recs[i].live || !recs[i].m.pid)
			continue;
		if (!owner_gone(&recs[i].m))
			continue;
		bpf_map_delete_elem(g->fd_state, &recs[i].cookie);
		bpf_map_delete_elem(g->fd_counters, &recs[i].cookie);
	}
	free(recs);
}

static const char *pin_root_of(const struct sockmig_group_opts *opts)
{
	const char *root = OPTS_GET(opts, pin_root, NULL);

	if (!root)
		root = secure_getenv("SOCKMIG_PIN_ROOT");
	if (!root || !*root)
		root = SOCKMIG_PIN_ROOT;
	return root;
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
	if (!name || strchr(name, '/') || parse_group_name(name, &g->addr) < 0) {
		err = sm_fail(EINVAL, "'%s' is not a sockmig group name", name ? name : "");
		goto free_group;
	}
	snprintf(g->name, sizeof(g->name), "%s", name);
	snprintf(g->path, sizeof(g->path), "%s/%s", g->root, g->name);
	err = root_readable(g->root);
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
	if (fstat(g->dirfd, &st) < 0 || !dir_private(&st)) {
		err = sm_fail(EPERM, "%s is not a private directory of uid %u: not read", g->path,
			      (unsigned)geteuid());
		goto free_group;
	}
	err = lock_group(g);
	if (err)
		goto free_group;
	err = load_pinned(g);
	unlock_group(g);
	if (err)
		goto free_group;
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
	int n = 0;

	if (!OPTS_VALID(opts, sockmig_group_opts))
		return -EINVAL;
	root = pin_root_of(opts);
	if (root_readable(root) == -EPERM)
		return 0; /* none of ours can be in it (warned) */
	d = opendir(root);
	if (!d)
		return errno == ENOENT
			       ? 0
			       : sm_fail(errno, "cannot read %s: %s", root, strerror(errno));
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
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
	err = group_name(fd, &g->addr, g->name, sizeof(g->name));
	if (err)
		goto free_group;
	err = check_root(g->root, &made_root);
	if (err)
		goto free_group;
	snprintf(g->path, sizeof(g->path), "%s/%s", g->root, g->name);
	err = open_dir_locked(g);
	if (err)
		goto free_group;
	err = load_pinned(g);
	if (err)
		goto unlock;
	collect_stale(g);
	if (is_listening(fd)) {
		err = sockmig_group_attach(g, fd);
		if (err)
			goto unlock;
	}
	unlock_group(g);
	sm_log(SOCKMIG_DEBUG, "libsockmig: opened group %s\n", g->name);
	return g;

unlock:
	unlock_group(g);
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
		int fds[] = {g->fd_members, g->fd_state,  g->fd_counters, g->fd_table,
			     g->fd_tabidx,  g->fd_gstats, g->fd_kick,	  g->fd_lease};

		for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	if (g->prog_fd >= 0)
		close(g->prog_fd);
	if (g->dirfd >= 0)
		close(g->dirfd);
	policy_bpf__destroy(g->skel);
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

/*
 * A registration by anyone but the lease's holder (who renews it before it
 * registers) finds an expired lease of a holder that died: the group is
 * maintained again, by whoever registers, so the table is followed again.
 */
static void clear_expired_lease(struct sockmig_group *g)
{
	uint32_t k = SM_LEASE_EXPIRES;
	uint64_t exp = 0, zero = 0;

	if (bpf_map_lookup_elem(g->fd_lease, &k, &exp) == 0 && exp && sm_now_ns() > exp)
		bpf_map_update_elem(g->fd_lease, &k, &zero, BPF_ANY);
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
	now = sm_now_ns();
	memset(out, 0, sizeof(*out));
	out->set = exp != 0;
	out->expired = exp && now > exp;
	out->left_ms = exp && now < exp ? (exp - now + 999999) / 1000000 : 0;
	out->syn_passed = passed;
	return 0;
}

static uint32_t listener_compat(int fd, int family)
{
	uint32_t c = family == AF_INET6 ? SM_COMPAT_INET6 : 0;
	int val = 0;
	socklen_t len = sizeof(val);

	if (getsockopt(fd, IPPROTO_TCP, TCP_SAVE_SYN, &val, &len) == 0 && val)
		c |= SM_COMPAT_SAVE_SYN;
	val = 0;
	len = sizeof(val);
	if (getsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &val, &len) == 0 && val)
		c |= SM_COMPAT_DEFER_ACCEPT;
	val = 0;
	len = sizeof(val);
	if (getsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &val, &len) == 0 && val)
		c |= SM_COMPAT_FASTOPEN;
	return c;
}

/* fd must be a listening socket of this group. */
static int check_member_fd(struct sockmig_group *g, int fd)
{
	struct sm_addr a;
	char name[sizeof(g->name)];
	int err;

	err = group_name(fd, &a, name, sizeof(name));
	if (err)
		return err;
	if (strcmp(name, g->name) != 0)
		return sm_fail(EXDEV, "fd %d belongs to group %s, not %s", fd, name, g->name);
	if (!is_listening(fd))
		return sm_fail(EBUSY, "fd %d does not listen (register after listen())", fd);
	return 0;
}

static int find_free_slot(struct sockmig_group *g, int fd, uint32_t *slot)
{
	uint64_t val = (uint64_t)fd;

	for (uint32_t s = 0; s < SM_MAX_MEMBERS; s++) {
		if (slot_cookie(g, s))
			continue;
		if (bpf_map_update_elem(g->fd_members, &s, &val, BPF_NOEXIST) == 0) {
			*slot = s;
			return 0;
		}
		if (errno != EEXIST)
			return sm_fail(errno, "cannot add fd %d to the group's socket array: %s",
				       fd, strerror(errno));
	}
	return -ENOSPC;
}

static void warn_unslotted(const struct sockmig_group *g)
{
	static bool warned;

	if (warned)
		return;
	warned = true;
	sm_log(SOCKMIG_WARN,
	       "libsockmig: group %s has more than %d listeners: new SYNs go by the kernel's "
	       "hash (draining members included) while one beyond the limit is active\n",
	       g->name, SM_MAX_MEMBERS);
}

int sockmig_member_add(struct sockmig_group *g, int fd, const struct sockmig_member_opts *opts)
{
	struct sm_counters zero_counters = {0};
	struct sm_member m = {0}, old;
	bool had_state, new_slot = false, new_counters;
	uint64_t cookie;
	int err;

	if (!OPTS_VALID(opts, sockmig_member_opts))
		return -EINVAL;
	err = check_member_fd(g, fd);
	if (err)
		return err;
	cookie = sockmig_cookie(fd);
	if (!cookie)
		return sm_fail(errno, "cannot read the cookie of fd %d: %s", fd, strerror(errno));
	clear_expired_lease(g);
	m.role = OPTS_GET(opts, role, SOCKMIG_ROLE_ACTIVE);
	if (!m.role)
		m.role = SOCKMIG_ROLE_ACTIVE;
	if (m.role < SOCKMIG_ROLE_ACTIVE || m.role > SOCKMIG_ROLE_HOLDER)
		return sm_fail(EINVAL, "unknown role %u", m.role);
	m.generation = OPTS_GET(opts, generation, 0);
	m.weight = OPTS_GET(opts, weight, 1);
	if (!m.weight)
		m.weight = 1;
	m.compat = listener_compat(fd, g->addr.family);
	m.pid = OPTS_GET(opts, pid, 0);
	if (!m.pid)
		m.pid = (uint32_t)getpid();
	m.owner_start = process_start(m.pid);

	err = lock_group(g);
	if (err)
		return err;
	had_state = bpf_map_lookup_elem(g->fd_state, &cookie, &old) == 0;
	if (had_state && slot_cookie(g, old.slot) == cookie) {
		m.slot = old.slot;
	} else {
		err = find_free_slot(g, fd, &m.slot);
		if (err == -ENOSPC) {
			/* more listeners than slots: registered without one, and the
			 * group's SYNs go by the kernel's hash while it is active */
			m.slot = SM_NO_SLOT;
			warn_unslotted(g);
		} else if (err) {
			goto unlock;
		} else {
			new_slot = true;
		}
	}
	new_counters =
		bpf_map_update_elem(g->fd_counters, &cookie, &zero_counters, BPF_NOEXIST) == 0;
	if (bpf_map_update_elem(g->fd_state, &cookie, &m, BPF_ANY) < 0) {
		err = sm_fail(errno, "cannot record member %llu: %s", (unsigned long long)cookie,
			      strerror(errno));
		goto undo;
	}
	err = sockmig_group_attach(g, fd);
	if (err)
		goto undo;
	err = rebuild_table(g);
	if (!err)
		goto unlock;
undo:
	/* leave the group as it was: no slot, state or counters of a failed add */
	if (had_state)
		bpf_map_update_elem(g->fd_state, &cookie, &old, BPF_ANY);
	else
		bpf_map_delete_elem(g->fd_state, &cookie);
	if (new_counters)
		bpf_map_delete_elem(g->fd_counters, &cookie);
	if (new_slot && slot_cookie(g, m.slot) == cookie)
		bpf_map_delete_elem(g->fd_members, &m.slot);
	rebuild_table(g);
unlock:
	unlock_group(g);
	return err;
}

int sockmig_member_set(struct sockmig_group *g, uint64_t cookie,
		       const struct sockmig_member_opts *opts)
{
	struct sm_member m;
	int err;

	if (!OPTS_VALID(opts, sockmig_member_opts))
		return -EINVAL;
	err = lock_group(g);
	if (err)
		return err;
	if (bpf_map_lookup_elem(g->fd_state, &cookie, &m) < 0) {
		err = sm_fail(ENOENT, "no member with cookie %llu in group %s",
			      (unsigned long long)cookie, g->name);
		goto unlock;
	}
	/* 0 leaves a field as it is: a role change keeps the generation */
	if (OPTS_GET(opts, role, 0))
		m.role = OPTS_GET(opts, role, m.role);
	if (OPTS_GET(opts, generation, 0))
		m.generation = OPTS_GET(opts, generation, m.generation);
	if (OPTS_GET(opts, weight, 0))
		m.weight = OPTS_GET(opts, weight, m.weight);
	if (bpf_map_update_elem(g->fd_state, &cookie, &m, BPF_EXIST) < 0)
		err = sm_fail(errno, "cannot update member: %s", strerror(errno));
	else
		err = rebuild_table(g);
unlock:
	unlock_group(g);
	return err;
}

int sm_member_get(struct sockmig_group *g, uint64_t cookie, uint32_t *role, uint32_t *generation,
		  uint32_t *pid)
{
	struct sm_member m;

	if (bpf_map_lookup_elem(g->fd_state, &cookie, &m) < 0)
		return -ENOENT;
	*role = m.role;
	*generation = m.generation;
	*pid = m.pid;
	return 0;
}

int sockmig_counters_read(struct sockmig_group *g, uint64_t cookie, struct sockmig_counters *out)
{
	struct sm_counters c;

	if (bpf_map_lookup_elem(g->fd_counters, &cookie, &c) < 0)
		return sm_fail(ENOENT, "no counters for cookie %llu", (unsigned long long)cookie);
	out->steered = c.steered;
	for (int k = 0; k < SOCKMIG_KIND_MAX; k++) {
		out->migrated_in[k] = c.mig_in[k];
		out->migrated_out[k] = c.mig_out[k];
	}
	out->deferred = c.deferred;
	out->cancel_mismatch = c.cancel_mismatch;
	out->kicked = c.kicked;
	return 0;
}

int sockmig_members(struct sockmig_group *g, struct sockmig_member_info *out, int max)
{
	struct member_rec *recs;
	int n;

	recs = read_members(g, &n);
	if (!recs)
		return sm_fail(ENOMEM, "out of memory");
	qsort(recs, n, sizeof(*recs), cmp_slot);
	for (int i = 0; i < n && i < max; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		out[i].cookie = recs[i].cookie;
		out[i].slot = recs[i].m.slot;
		out[i].role = recs[i].m.role;
		out[i].generation = recs[i].m.generation;
		out[i].weight = recs[i].m.weight;
		out[i].pid = recs[i].m.pid;
		out[i].listening = recs[i].live;
		sockmig_counters_read(g, recs[i].cookie, &out[i].counters);
	}
	free(recs);
	return n;
}

/*
 * Make one connection that the policy steers to @slot, so that its owner
 * is woken even where the kernel queued migrated children silently.
 */
static int kick_slot(struct sockmig_group *g, uint32_t slot)
{
	struct sm_addr dst, src;
	struct pollfd pfd;
	uint16_t sport;
	int s, err = 0;

	sm_addr_connectable(&g->addr, &dst);
	src = dst;
	if (src.family == AF_INET)
		src.v4.sin_port = 0;
	else
		src.v6.sin6_port = 0;
	s = socket(dst.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (bind(s, &src.sa, src.len) < 0 || sm_sock_addr(s, &src) < 0) {
		err = -errno;
		goto close_sock;
	}
	sport = (uint16_t)sm_addr_port(&src);
	if (bpf_map_update_elem(g->fd_kick, &sport, &slot, BPF_ANY) < 0) {
		err = -errno;
		goto close_sock;
	}
	if (connect(s, &dst.sa, dst.len) < 0 && errno != EINPROGRESS) {
		err = -errno;
	} else {
		pfd.fd = s;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, 1000) != 1)
			err = -ETIMEDOUT;
	}
	bpf_map_delete_elem(g->fd_kick, &sport);
close_sock:
	close(s);
	return err;
}

static enum sockmig_tristate need_wake(struct sockmig_group *g)
{
	static enum sockmig_tristate probed = SOCKMIG_UNKNOWN;
	struct sockmig_probe p;
	const char *env;

	if (g->wake != SOCKMIG_WAKE_AUTO)
		return g->wake == SOCKMIG_WAKE_ALWAYS ? SOCKMIG_YES : SOCKMIG_NO;
	env = secure_getenv("SOCKMIG_WAKE");
	if (env && *env)
		return *env == '1' ? SOCKMIG_YES : SOCKMIG_NO;
	if (probed == SOCKMIG_UNKNOWN) {
		/* Unknown stays "wake": a spurious connection costs less than
		 * children nobody accepts. */
		probed = SOCKMIG_YES;
		if (sockmig_probe(&p) == 0 && p.migrate_wakeup == SOCKMIG_YES)
			probed = SOCKMIG_NO;
	}
	return probed;
}

/* Counters of the live members of @recs (zeros where unreadable). */
static void read_counters(struct sockmig_group *g, const struct member_rec *recs, int n,
			  struct sm_counters *out)
{
	for (int i = 0; i < n; i++)
		if (!recs[i].live ||
		    bpf_map_lookup_elem(g->fd_counters, &recs[i].cookie, &out[i]) < 0)
			memset(&out[i], 0, sizeof(out[i]));
}

/*
 * Wait until no handshake is in flight for listener @fd (it was just
 * marked draining), at most @deadline_ms (0: DRAIN_DEADLINE_MS). A final
 * ACK that the kernel processes while the listener closes is reset
 * without migration (inet_child_forget(), no TcpExt counter): only a
 * listener with no request left cannot meet that race. First one RCU
 * grace period, so that every SYN steered to it before the mark has made
 * its request; then the listener's reference count, each request holding
 * one. What is left at the deadline still migrates at its SYN+ACK timer
 * or final ACK; only the race stays open for it.
 */
static void wait_inflight(int fd, uint32_t deadline_ms, struct sockmig_drain_report *rep)
{
	unsigned long long t0 = sm_now_ns(), end;
	struct timespec ts = {0, 0};
	long step_us = 100;
	int left;

	if (!deadline_ms)
		deadline_ms = DRAIN_DEADLINE_MS;
	end = t0 + (unsigned long long)deadline_ms * 1000000ull;
	sm_rcu_grace();
	for (;;) {
		left = sockmig_listener_inflight(fd);
		if (left <= 0 || sm_now_ns() >= end)
			break;
		ts.tv_nsec = step_us * 1000;
		nanosleep(&ts, NULL);
		if (step_us < 10000)
			step_us *= 2;
	}
	rep->inflight_left = left > 0 ? (uint32_t)left : 0;
	rep->wait_ns = sm_now_ns() - t0;
}

int sockmig_member_drain(struct sockmig_group *g, int fd, const struct sockmig_drain_opts *opts,
			 struct sockmig_drain_report *report)
{
	struct sockmig_drain_report rep = {0};
	struct sm_counters *before = NULL, *after = NULL, self0 = {0}, self1 = {0};
	struct sockmig_netstat ns0, ns1;
	struct member_rec *recs = NULL, *self = NULL;
	struct sockmig_event ev = {.type = SOCKMIG_EVENT_DRAIN};
	uint64_t cookie, t0, t_mark;
	bool wake;
	int n = 0, others = 0, err;

	if (!OPTS_VALID(opts, sockmig_drain_opts))
		return -EINVAL;
	/* nothing migrates: wait for the handshakes in flight instead */
	if (g->policy == SOCKMIG_POLICY_LEGACY && !OPTS_GET(opts, no_shutdown, false))
		return sm_legacy_drain_wait(g, fd, OPTS_GET(opts, force, false), report);
	cookie = sockmig_cookie(fd);
	err = lock_group(g);
	if (err)
		return err;
	recs = read_members(g, &n);
	if (!recs) {
		err = sm_fail(ENOMEM, "out of memory");
		goto unlock;
	}
	for (int i = 0; i < n; i++) {
		if (recs[i].cookie == cookie)
			self = &recs[i];
		else if (recs[i].live &&
			 (recs[i].m.role == SM_ROLE_ACTIVE || recs[i].m.role == SM_ROLE_HOLDER))
			others++;
	}
	if (!cookie || !self) {
		err = sm_fail(ENOENT, "fd %d is not a member of group %s", fd, g->name);
		goto unlock;
	}
	if (!others && self->m.role == SM_ROLE_ACTIVE && !OPTS_GET(opts, force, false)) {
		err = sm_fail(EBUSY,
			      "refusing to drain the last active member of group %s: no other "
			      "active member or holder could take its connections",
			      g->name);
		goto unlock;
	}
	/* 1. no new SYN for it */
	ev.cookie = cookie;
	ev.role = self->m.role;
	ev.generation = self->m.generation;
	ev.pid = self->m.pid;
	t_mark = sm_now_ns();
	self->m.role = SM_ROLE_DRAINING;
	if (bpf_map_update_elem(g->fd_state, &cookie, &self->m, BPF_EXIST) < 0) {
		err = sm_fail(errno, "cannot update member: %s", strerror(errno));
		goto unlock;
	}
	err = write_table(g, recs, n); /* sorts recs: self is stale from here */
	if (err)
		goto unlock;
	rep.cookie = cookie;
	if (OPTS_GET(opts, no_shutdown, false))
		goto unlock;

	/* 2. let the handshakes in flight for it finish, without the lock */
	unlock_group(g);
	free(recs);
	recs = NULL;
	wait_inflight(fd, OPTS_GET(opts, deadline_ms, 0), &rep);
	err = lock_group(g);
	if (err)
		goto out;
	recs = read_members(g, &n);
	if (!recs) {
		err = sm_fail(ENOMEM, "out of memory");
		goto unlock;
	}

	/* 3. shut it down: the kernel migrates its queue under the policy */
	wake = need_wake(g) == SOCKMIG_YES;
	if (wake) {
		before = calloc((size_t)n, sizeof(*before));
		after = calloc((size_t)n, sizeof(*after));
		if (!before || !after) {
			err = sm_fail(ENOMEM, "out of memory");
			goto unlock;
		}
		read_counters(g, recs, n, before);
	}
	bpf_map_lookup_elem(g->fd_counters, &cookie, &self0);
	sockmig_netstat_read(&ns0);
	t0 = sm_now_ns();
	if (shutdown(fd, SHUT_RDWR) < 0 && errno != ENOTCONN) {
		err = sm_fail(errno, "shutdown of fd %d: %s", fd, strerror(errno));
		goto unlock;
	}
	rep.elapsed_ns = sm_now_ns() - t0;
	bpf_map_lookup_elem(g->fd_counters, &cookie, &self1);
	sockmig_netstat_read(&ns1);
	sockmig_netstat_delta(&ns0, &ns1, &rep.netstat);
	for (int k = 0; k < SM_KIND_MAX; k++)
		rep.migrated[k] = self1.mig_out[k] - self0.mig_out[k];
	rep.cancelled = self1.cancel_mismatch - self0.cancel_mismatch;
	rep.deferred = self1.deferred - self0.deferred;

	/* the drain's record, which outlives the member and its counters */
	ev.wait_ns = rep.wait_ns;
	ev.inflight_left = rep.inflight_left;
	ev.duration_ns = sm_now_ns() - t_mark;
	for (int k = 0; k < SM_KIND_MAX; k++)
		ev.migrated[k] = self1.mig_out[k];
	ev.cancelled = self1.cancel_mismatch;
	ev.deferred = self1.deferred;
	sm_event_record_locked(g, &ev); /* a failure is logged; the drain happened */

	/* 4. where the kernel may not wake the targets, wake them ourselves */
	if (wake) {
		read_counters(g, recs, n, after);
		for (int i = 0; i < n; i++) {
			if (recs[i].cookie == cookie ||
			    after[i].mig_in[SM_KIND_ESTABLISHED] + after[i].mig_in[SM_KIND_TFO] ==
				    before[i].mig_in[SM_KIND_ESTABLISHED] +
					    before[i].mig_in[SM_KIND_TFO])
				continue;
			if (kick_slot(g, recs[i].m.slot) == 0)
				rep.kicked++;
		}
	}
unlock:
	unlock_group(g);
out:
	free(recs);
	free(before);
	free(after);
	if (!err && report)
		*report = rep;
	return err;
}

int sockmig_member_kick(struct sockmig_group *g, uint64_t cookie)
{
	struct member_rec *recs;
	int n = 0, err = -ENOENT;

	if (!g || !cookie)
		return sm_fail(EINVAL, "kick: no group or no cookie");
	recs = read_members(g, &n);
	if (!recs)
		return sm_fail(ENOMEM, "out of memory");
	for (int i = 0; i < n; i++) {
		if (recs[i].cookie != cookie)
			continue;
		err = recs[i].live ? kick_slot(g, recs[i].m.slot) : -ENOTCONN;
		break;
	}
	free(recs);
	if (err == -ENOENT)
		return sm_fail(ENOENT, "kick: no member with cookie %llu",
			       (unsigned long long)cookie);
	if (err)
		return sm_fail(-err, "kick of member %llu: %s", (unsigned long long)cookie,
			       strerror(-err));
	return 0;
}

static void unpin_all(struct sockmig_group *g)
{
	struct dirent *de;
	char pin[PATH_MAX + 256];
	DIR *d;

	d = opendir(g->path);
	if (d) {
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(pin, sizeof(pin), "%s/%s", g->path, de->d_name);
			unlink(pin);
		}
		closedir(d);
	}
	rmdir(g->path);
	/* the root stays (see check_root()) */
	sm_handoff_forget(g->name);
}

static int leave_locked(struct sockmig_group *g, uint64_t cookie, int fd)
{
	struct sm_member m;
	uint64_t key;
	int err;

	if (bpf_map_lookup_elem(g->fd_state, &cookie, &m) < 0)
		return sm_fail(ENOENT, "no member with cookie %llu in group %s",
			       (unsigned long long)cookie, g->name);
	if (slot_cookie(g, m.slot) == cookie)
		bpf_map_delete_elem(g->fd_members, &m.slot);
	bpf_map_delete_elem(g->fd_state, &cookie);
	bpf_map_delete_elem(g->fd_counters, &cookie);
	err = rebuild_table(g);
	if (err)
		return err;
	if (bpf_map_get_next_key(g->fd_state, NULL, &key) == 0)
		return 0;
	/* Last member: give the group back to the kernel and remove our state. */
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, NULL, 0);
	unpin_all(g);
	return 0;
}

int sockmig_group_collect(struct sockmig_group *g, uint32_t exiting)
{
	struct member_rec *recs;
	uint64_t key;
	int n, removed = 0, err = lock_group(g);

	if (err)
		return err;
	recs = read_members(g, &n);
	if (!recs) {
		err = sm_fail(ENOMEM, "out of memory");
		goto unlock;
	}
	for (int i = 0; i < n; i++) {
		if (recs[i].live || !recs[i].m.pid)
			continue;
		if (recs[i].m.pid != exiting && !owner_gone(&recs[i].m))
			continue;
		bpf_map_delete_elem(g->fd_state, &recs[i].cookie);
		bpf_map_delete_elem(g->fd_counters, &recs[i].cookie);
		removed++;
	}
	free(recs);
	/* a group with no member that this collect did not empty is being
	 * made (opened, its first member not added yet): not ours to remove */
	if (!removed)
		goto unlock;
	if (bpf_map_get_next_key(g->fd_state, NULL, &key) == 0) {
		err = rebuild_table(g);
		goto unlock;
	}
	/* nobody left: the group goes, as at the last member's leave */
	unpin_all(g);
	err = 1;
unlock:
	unlock_group(g);
	return err;
}

int sockmig_member_leave_cookie(struct sockmig_group *g, uint64_t cookie)
{
	int err = lock_group(g);

	if (err)
		return err;
	err = leave_locked(g, cookie, -1);
	unlock_group(g);
	return err;
}

int sockmig_member_leave(struct sockmig_group *g, int fd)
{
	uint64_t cookie = sockmig_cookie(fd);
	int err;

	if (!cookie)
		return sm_fail(EINVAL, "fd %d is not a socket", fd);
	err = lock_group(g);
	if (err)
		return err;
	err = leave_locked(g, cookie, fd);
	unlock_group(g);
	return err;
}

int sockmig_group_destroy(struct sockmig_group *g)
{
	int err = lock_group(g);

	if (err)
		return err;
	unpin_all(g);
	unlock_group(g);
	return 0;
}

int sockmig_member_get(struct sockmig_group *g, uint64_t cookie, struct sockmig_member_info *out)
{
	struct sm_member m;

	if (bpf_map_lookup_elem(g->fd_state, &cookie, &m) < 0)
		return sm_fail(ENOENT, "no member with cookie %llu in group %s",
			       (unsigned long long)cookie, g->name);
	memset(out, 0, sizeof(*out));
	out->cookie = cookie;
	out->slot = m.slot;
	out->role = m.role;
	out->generation = m.generation;
	out->weight = m.weight;
	out->pid = m.pid;
	out->listening = slot_cookie(g, m.slot) == cookie;
	sockmig_counters_read(g, cookie, &out->counters);
	return 0;
}
