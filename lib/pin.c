// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Where a group lives: the pin root and the group's directory in bpffs,
 * checked so that nobody else can change them; the group lock (flock on
 * the directory); the policy program (native or legacy) loaded with the
 * group's maps, pinned, checked against the pins and attached; and the
 * pins removed with the group.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "group_priv.h"
#include "legacy.h"

/* A directory of ours that nobody else may change: owned by the caller,
 * mode without group or other bits. */
bool sm_dir_private(const struct stat *st)
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
int sm_check_root(const char *root, bool *made)
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
		else if (errno != EEXIST) /* EACCES: no privileges, as the API says EPERM */
			return sm_fail(errno == EACCES ? EPERM : errno, "cannot create %s: %s",
				       root, strerror(errno));
		if (lstat(root, &st) < 0) {
			if (errno == ENOENT)
				continue;
			return sm_fail(errno, "cannot stat %s: %s", root, strerror(errno));
		}
		if (sm_dir_private(&st))
			return 0;
		*made = false;
		err = replace_root(root, &st);
		if (err)
			return err;
	}
	return sm_fail(EAGAIN, "%s keeps changing", root);
}

/* For readers (list, open by name): the root as it is, never made or moved. */
int sm_root_readable(const char *root)
{
	struct stat st;

	if (lstat(root, &st) < 0)
		return errno == ENOENT
			       ? -ENOENT
			       : sm_fail(errno, "cannot stat %s: %s", root, strerror(errno));
	if (!sm_dir_private(&st) && !(S_ISDIR(st.st_mode) && st.st_uid == 0 && !(st.st_mode & 022)))
		return sm_fail(EPERM, "%s is not sockmig's (uid %u, mode %o): not read", root,
			       (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	return 0;
}

const char *sm_pin_root(const char *given)
{
	if (!given)
		given = secure_getenv("SOCKMIG_PIN_ROOT");
	return given && *given ? given : SOCKMIG_PIN_ROOT;
}

int sm_root_opendir(const char *root, DIR **d)
{
	*d = NULL;
	if (sm_root_readable(root) == -EPERM)
		return 0; /* none of ours can be in it (warned) */
	*d = opendir(root);
	if (!*d && errno != ENOENT)
		return sm_fail(errno, "cannot read %s: %s", root, strerror(errno));
	return 0;
}

/* Whether the kernel knows CAP_BPF and CAP_PERFMON (5.8 and later; before,
 * loading these programs takes CAP_SYS_ADMIN): the bounding set answers
 * EINVAL for a capability the kernel does not have. */
static bool kernel_has_cap_bpf(void)
{
	return prctl(PR_CAPBSET_READ, CAP_BPF, 0, 0, 0) >= 0 || errno != EINVAL;
}

const char *sockmig_missing_cap(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2];
	uint64_t eff;

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0)
		return NULL;
	eff = (uint64_t)data[0].effective | (uint64_t)data[1].effective << 32;
	if (eff & (1ULL << CAP_SYS_ADMIN))
		return NULL;
	if (!kernel_has_cap_bpf())
		return "CAP_SYS_ADMIN";
	if (!(eff & (1ULL << CAP_BPF)))
		return "CAP_BPF";
	if (!(eff & (1ULL << CAP_PERFMON)))
		return "CAP_PERFMON";
	return NULL;
}

/* Whether the running kernel's release is before @major.@minor. */
static bool release_before(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return false;
	return ma < major || (ma == major && mi < minor);
}

/* Whether the kernel charges BPF memory to RLIMIT_MEMLOCK (before 5.11),
 * not to the cgroup: the coarse clock's helper came with the cgroup's
 * accounting, and a program that calls it is refused as invalid (EINVAL)
 * before (libbpf's test, loaded here: libbpf's public probe answers
 * "supported" when a load fails for want of locked memory). The limit is
 * the user's, over all its processes' BPF memory, so the test program
 * itself can be refused for it (EPERM): that is taken for the limit only
 * on a release before 5.11; any other refusal (an LSM's, say) tells
 * nothing. */
static bool memlock_charged(void)
{
	const struct bpf_insn insns[] = {
		{.code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_ktime_get_coarse_ns},
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0},
		{.code = BPF_JMP | BPF_EXIT},
	};
	int fd = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, NULL, "GPL", insns,
			       sizeof(insns) / sizeof(insns[0]), NULL);

	if (fd >= 0) {
		close(fd);
		return false;
	}
	return errno == EINVAL || (errno == EPERM && release_before(5, 11));
}

/* The limit's phrase into @buf when this kernel charges BPF memory to a
 * finite RLIMIT_MEMLOCK (before 5.11), else NULL. */
static const char *memlock_why(char *buf, size_t len)
{
	struct rlimit r;

	/* before 5.11 the kernel charges BPF memory to RLIMIT_MEMLOCK, and
	 * libbpf raises the limit only with CAP_SYS_RESOURCE */
	if (getrlimit(RLIMIT_MEMLOCK, &r) < 0 || r.rlim_cur == RLIM_INFINITY || !memlock_charged())
		return NULL;
	snprintf(buf, len,
		 "this kernel charges BPF memory to RLIMIT_MEMLOCK, %llu KiB here: raise it "
		 "(ulimit -l, systemd's LimitMEMLOCK=), or run as root",
		 (unsigned long long)r.rlim_cur / 1024);
	return buf;
}

const char *sm_eperm_why(char *buf, size_t len)
{
	const char *cap = sockmig_missing_cap();

	if (cap && strcmp(cap, "CAP_SYS_ADMIN") == 0)
		snprintf(buf, len,
			 "needs CAP_SYS_ADMIN, or root: this kernel has no CAP_BPF, which came in "
			 "Linux 5.8");
	else if (cap)
		snprintf(buf, len, "needs %s, or root", cap);
	else if (!memlock_why(buf, len))
		snprintf(buf, len, "needs CAP_BPF and CAP_PERFMON, or root");
	return buf;
}

int sm_lock_wait_ms = -1;

int sm_group_lock(struct sockmig_group *g)
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

void sm_group_unlock(struct sockmig_group *g)
{
	flock(g->dirfd, LOCK_UN);
}

/* Open and lock the group directory; retry if it is removed under us. */
int sm_open_dir_locked(struct sockmig_group *g)
{
	struct stat a, b;
	bool made;

	for (int tries = 0; tries < 5; tries++) {
		if (mkdir(g->path, 0700) < 0 && errno != EEXIST) {
			/* the root went (an older version removed it): check it again */
			if (errno == ENOENT && sm_check_root(g->root, &made) == 0)
				continue;
			return sm_fail(errno, "cannot create %s: %s", g->path, strerror(errno));
		}
		g->dirfd = open(g->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (g->dirfd < 0) {
			if (errno == ENOENT)
				continue;
			return sm_fail(errno, "cannot open %s: %s", g->path, strerror(errno));
		}
		if (fstat(g->dirfd, &b) < 0 || !sm_dir_private(&b)) {
			close(g->dirfd);
			g->dirfd = -1;
			return sm_fail(EPERM,
				       "%s must be a directory owned by uid %u with mode 0700",
				       g->path, (unsigned)geteuid());
		}
		if (sm_group_lock(g))
			return -errno;
		if (stat(g->path, &a) == 0 && fstat(g->dirfd, &b) == 0 && a.st_ino == b.st_ino)
			return 0;
		close(g->dirfd);
		g->dirfd = -1;
	}
	return sm_fail(EAGAIN, "%s keeps disappearing", g->path);
}

int sockmig_group_attach(struct sockmig_group *g, int fd)
{
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &g->prog_fd, sizeof(g->prog_fd)) <
	    0)
		return sm_fail(errno, "cannot attach the policy to group %s: %s", g->name,
			       strerror(errno));
	return 0;
}

/* The group's pins by name: its maps, then its program. */
static const char *const pin_names[] = {"members", "state", "counters", "table",     "tabidx",
					"gstats",  "kick",  "lease",	"pcounters", "prog"};
#define N_PINS (sizeof(pin_names) / sizeof(pin_names[0]))
#define N_MAPS (N_PINS - 1)

/* Where the fd of each pin of pin_names[] goes in the handle. */
static void pin_slots(struct sockmig_group *g, int *slots[N_PINS])
{
	int *s[] = {&g->fd_members, &g->fd_state, &g->fd_counters, &g->fd_table,     &g->fd_tabidx,
		    &g->fd_gstats,  &g->fd_kick,  &g->fd_lease,	   &g->fd_pcounters, &g->prog_fd};

	_Static_assert(sizeof(s) / sizeof(s[0]) == N_PINS, "one slot per pin");
	memcpy(slots, s, sizeof(s));
}

/* The group's pins as they are, without loading anything: the fast path
 * of every open after the first. 0, or -ENOENT when one is missing. */
static int get_pinned(struct sockmig_group *g)
{
	int *fds[N_PINS];
	char pin[PATH_MAX + 32];

	pin_slots(g, fds);
	for (size_t i = 0; i < N_PINS; i++) {
		snprintf(pin, sizeof(pin), "%s/%s", g->path, pin_names[i]);
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

	sm_policy_close(g->bpf);
	g->bpf = sm_policy_open(legacy);
	if (!g->bpf)
		return sm_fail(errno, "cannot open the %s policy program: %s",
			       legacy ? "legacy" : "native", strerror(errno));
	bpf_object__for_each_map(map, g->bpf->obj)
	{
		snprintf(pin, sizeof(pin), "%s/%s", g->path, bpf_map__name(map));
		err = bpf_map__set_pin_path(map, pin);
		if (err)
			return sm_fail(-err, "cannot set pin path %s", pin);
	}
	return sm_policy_load(g->bpf);
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
 * lease map, one without the per-CPU counters no "pcounters": it is
 * replaced too (re-attached as members register again).
 */
static bool prog_reads_our_maps(const struct sockmig_group *g, int prog_fd)
{
	int fds[] = {g->fd_members, g->fd_state, g->fd_counters, g->fd_table,	 g->fd_tabidx,
		     g->fd_gstats,  g->fd_kick,	 g->fd_lease,	 g->fd_pcounters};
	bool lease = false, pcounters = false;
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
		pcounters |= ids[i] == map_id(g->fd_pcounters);
	}
	return lease && pcounters;
}

static void close_pinned(struct sockmig_group *g)
{
	int *fds[N_PINS];

	pin_slots(g, fds);
	for (size_t i = 0; i < N_PINS; i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	g->own_fds = false;
}

/* The group's maps and program: the pins as they are when they agree, else
 * the missing maps made again and the program loaded and pinned again, so
 * that it reads the maps user space writes. Under the group lock. */
int sm_load_pinned(struct sockmig_group *g)
{
	int *slots[N_PINS];
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

	if (g->policy == SOCKMIG_POLICY_AUTO && sm_verifier_loads_migrate() == 0 &&
	    !sockmig_missing_cap()) {
		/* decided by a 3-instruction program, not by the policy's
		 * slow rejection on 5.10's verifier */
		sm_log(SOCKMIG_INFO,
		       "libsockmig: the kernel loads no migrate program: legacy mode\n");
		g->policy = SOCKMIG_POLICY_LEGACY;
	}
	err = load_policy(g, g->policy == SOCKMIG_POLICY_LEGACY);
	if (err == -EACCES && sockmig_missing_cap())
		err = -EPERM; /* the verifier's refusal of an unprivileged loader */
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
	if (err == -EPERM) {
		char why[200];

		return sm_fail(EPERM, "cannot load the policy program: %s (%s)", strerror(EPERM),
			       sm_eperm_why(why, sizeof(why)));
	}
	if (err)
		return sm_fail(-err, "cannot load the policy program: %s", strerror(-err));

	/* the maps by name, so that either object serves */
	pin_slots(g, slots);
	for (size_t i = 0; i < N_MAPS; i++) {
		*slots[i] = bpf_object__find_map_fd_by_name(g->bpf->obj, pin_names[i]);
		if (*slots[i] < 0)
			return sm_fail(ENOENT, "the %s policy program has no map %s",
				       sockmig_policy_str(g->policy), pin_names[i]);
	}
	fd = bpf_obj_get(pin);
	if (fd >= 0 && !prog_reads_our_maps(g, fd)) {
		/* pinned over the maps that went: ours replaces it */
		close(fd);
		fd = -1;
		if (unlink(pin) < 0)
			return sm_fail(errno, "cannot replace %s: %s", pin, strerror(errno));
	}
	if (fd < 0) {
		err = bpf_obj_pin(bpf_program__fd(g->bpf->prog), pin);
		if (err)
			return sm_fail(errno, "cannot pin %s: %s", pin, strerror(errno));
		fd = fcntl(bpf_program__fd(g->bpf->prog), F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return sm_fail(errno, "dup: %s", strerror(errno));
	}
	g->prog_fd = fd;
	/* maps made again: counters of a slot that nobody owns yet go to its member */
	sm_slot_counters_claim_unowned(g);
	return 0;
}

void sm_unpin_all(struct sockmig_group *g)
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
	/* the root stays (see sm_check_root()) */
	sm_handoff_forget(g->name);
}
