// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A UDP group pinned by an older sockmig, upgraded in place by the next
 * sockmig_udp_group_open() of this version (lib/udp.c's load_pinned(),
 * under the group lock).
 *
 * Since the group's slots and config took their present form, its maps
 * changed only by fields appended to two values: struct smu_flow (the
 * client's QUIC CID) and struct smu_stats (counters). A group with one of
 * those shorter, and every other map as this version has it, is upgraded:
 * this version's program is loaded with the maps that did not change (the
 * pins, as they are), a new flow table and counters are filled from the
 * old ones (each value copied, the appended fields zero) and pinned beside
 * them; then the older flow table is renamed "older-flows", the new maps
 * and the program are renamed over the older pins. Then the program is
 * attached to the kernel's group, in place of the older one, through a
 * socket of the opener's bound to the group's address (a server that binds
 * before it opens, and sockmig attach, which holds copies of the members);
 * else the next member add of any process of this version attaches it.
 *
 * Until that attach the older program runs on, against the older maps, and
 * the copy may have passed over a flow it learned since. So right after
 * the first attach, when the older program runs no more, the flows of
 * "older-flows" are copied again over the new table (the catch-up: the
 * older values are the right ones, the new table has had no program
 * writing to it), and "older-flows" is removed (kept when the copy
 * failed: the next attach tries again). The older program's counters of
 * that time are not carried, and until that attach this version's readers
 * (status, a retire's flow count) see the flows as the copy left them.
 *
 * Refused (sm_udp_upgrade_refusal()): a group that learns flows when
 * claimed, whose members of the older version would go on claiming into
 * the older table, which this program does not read; and a group of a
 * version before 17-octet CIDs (a shorter key map).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "udp_priv.h"

bool sm_udp_upgradable(unsigned int i, uint32_t value_size)
{
	if (i == UFD_FLOWS)
		return value_size == offsetof(struct smu_flow, quic_scid);
	if (i == UFD_STATS)
		return value_size && value_size % sizeof(uint64_t) == 0 &&
		       value_size < sizeof(struct smu_stats);
	return false;
}

/* The value size of the map pinned as @name in the group's directory; 0
 * when there is none to read. */
static uint32_t pinned_size(const struct sockmig_udp_group *g, const char *name,
			    uint32_t *max_entries)
{
	struct bpf_map_info info;
	uint32_t len = sizeof(info);
	char pin[PATH_MAX + 32];
	int fd;

	snprintf(pin, sizeof(pin), "%s/%s", g->base.path, name);
	fd = bpf_obj_get(pin);
	if (fd < 0)
		return 0;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
		info.value_size = 0;
	close(fd);
	if (max_entries)
		*max_entries = info.max_entries;
	return info.value_size;
}

bool sm_udp_pin_older(const struct sockmig_udp_group *g, unsigned int i, uint32_t *max_entries)
{
	uint32_t size = pinned_size(g, sm_udp_pins[i], max_entries);

	return size && sm_udp_upgradable(i, size);
}

int sm_udp_upgrade_refusal(const struct sockmig_udp_group *g, bool qkey_short)
{
	struct smu_config c;
	uint32_t zero = 0;

	if (qkey_short)
		return sm_fail(EEXIST,
			       "UDP group %s was made by a version of sockmig too old to upgrade "
			       "(before 17-octet CIDs): remove its directory once its servers stop",
			       g->base.name);
	if (bpf_map_lookup_elem(g->fd[UFD_CONFIG], &zero, &c) < 0)
		return sm_fail(errno, "cannot read the config of %s: %s", g->base.name,
			       strerror(errno));
	if (c.learn == SMU_LEARN_CLAIM)
		return sm_fail(EEXIST,
			       "UDP group %s was made by an older version of sockmig and learns "
			       "flows when claimed: its servers of that version would claim into "
			       "a table this one does not read; stop them, or remove its directory",
			       g->base.name);
	return 0;
}

struct copy_arg {
	int to;
	long n;
};

static int copy_some(const struct smu_flow_key *k, const struct smu_flow *v, uint32_t n, void *arg)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	struct copy_arg *c = arg;
	uint32_t done = n;

	if (n == 1) { /* a key walk (a kernel without batches), or a batch of one */
		if (bpf_map_update_elem(c->to, k, v, BPF_ANY) < 0)
			return -errno;
		c->n++;
		return 0;
	}
	if (bpf_map_update_batch(c->to, k, v, &done, &opts) < 0)
		return -errno;
	c->n += done;
	return 0;
}

/* Copy the older flow table @old into @new (over any entry there): each
 * value as it is, the fields appended since zero. The older program may
 * learn or evict flows meanwhile (sm_udp_flow_walk()). The number copied,
 * or a negative errno. */
static long copy_flows(int old, int new)
{
	struct copy_arg c = {.to = new};
	int err = sm_udp_flow_walk(old, copy_some, &c);

	return err ? err : c.n;
}

/* Copy the older per-CPU counters @old (@osz-octet values) into @new. */
static int copy_stats(int old, int new, uint32_t osz)
{
	int ncpu = libbpf_num_possible_cpus();
	size_t ostride = (osz + 7) & ~(size_t)7,
	       nstride = (sizeof(struct smu_stats) + 7) & ~(size_t)7;
	uint32_t zero = 0;
	uint8_t *o, *n;
	int err = 0;

	if (ncpu <= 0)
		return ncpu < 0 ? ncpu : -EINVAL;
	o = calloc((size_t)ncpu, ostride);
	n = calloc((size_t)ncpu, nstride);
	if (!o || !n)
		err = -ENOMEM;
	else if (bpf_map_lookup_elem(old, &zero, o) < 0)
		err = -errno;
	if (!err) {
		for (int c = 0; c < ncpu; c++)
			memcpy(n + (size_t)c * nstride, o + (size_t)c * ostride, osz);
		if (bpf_map_update_elem(new, &zero, n, BPF_ANY) < 0)
			err = -errno;
	}
	free(o);
	free(n);
	return err;
}

int sm_udp_upgrade_map(const struct sockmig_udp_group *g, unsigned int i, int new)
{
	const char *name = sm_udp_pins[i];
	char pin[PATH_MAX + 32], tmp[NAME_MAX + 1];
	struct bpf_map_info info;
	uint32_t len = sizeof(info);
	long n = 0;
	int old;

	snprintf(pin, sizeof(pin), "%s/%s", g->base.path, name);
	old = bpf_obj_get(pin);
	if (old < 0)
		return sm_fail(errno, "cannot open %s: %s", pin, strerror(errno));
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(old, &info, &len) < 0 ||
	    !sm_udp_upgradable(i, info.value_size)) {
		close(old);
		return sm_fail(EEXIST, "%s changed while it was upgraded", pin);
	}
	if (i == UFD_FLOWS)
		n = copy_flows(old, new);
	else
		n = copy_stats(old, new, info.value_size);
	close(old);
	if (n < 0)
		return sm_fail((int)-n, "cannot copy %s of UDP group %s: %s", name, g->base.name,
			       strerror((int)-n));
	/* pinned beside the older one; sm_udp_upgrade_pins() renames it */
	snprintf(tmp, sizeof(tmp), "new-%s", name); /* bpffs takes no dot */
	unlinkat(g->base.dirfd, tmp, 0);
	snprintf(pin, sizeof(pin), "%s/%s", g->base.path, tmp);
	if (bpf_obj_pin(new, pin) < 0)
		return sm_fail(errno, "cannot pin the upgraded %s of UDP group %s: %s", name,
			       g->base.name, strerror(errno));
	if (i == UFD_FLOWS)
		sm_log(SOCKMIG_INFO,
		       "libsockmig: UDP group %s was made by an older version of sockmig: "
		       "upgraded, %ld flows copied\n",
		       g->base.name, n);
	return 0;
}

/* Rename @from over @to in the group's directory. */
static int rename_pin(const struct sockmig_udp_group *g, const char *from, const char *to)
{
	if (renameat(g->base.dirfd, from, g->base.dirfd, to) < 0)
		return sm_fail(errno, "cannot rename %s/%s to %s: %s", g->base.path, from, to,
			       strerror(errno));
	return 0;
}

int sm_udp_upgrade_pins(const struct sockmig_udp_group *g, bool flows, bool stats)
{
	int err = 0;

	if (!flows && !stats)
		return 0;
	if (flows)
		err = rename_pin(g, "flows", UDP_OLDER_FLOWS);
	if (!err && flows)
		err = rename_pin(g, "new-flows", "flows");
	if (!err && stats)
		err = rename_pin(g, "new-stats", "stats");
	return err;
}

void sm_udp_upgrade_drop(const struct sockmig_udp_group *g)
{
	/* a rename that failed half way: the older flows back in place */
	if (faccessat(g->base.dirfd, "flows", F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		renameat(g->base.dirfd, UDP_OLDER_FLOWS, g->base.dirfd, "flows");
	unlinkat(g->base.dirfd, "new-flows", 0);
	unlinkat(g->base.dirfd, "new-stats", 0);
	unlinkat(g->base.dirfd, "new-prog", 0);
}

void sm_udp_upgrade_catch_up(struct sockmig_udp_group *g)
{
	char pin[PATH_MAX + 32];
	struct bpf_map_info info;
	uint32_t len = sizeof(info);
	long n;
	int old;

	if (faccessat(g->base.dirfd, UDP_OLDER_FLOWS, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		return; /* the common case: no upgrade pending */
	snprintf(pin, sizeof(pin), "%s/%s", g->base.path, UDP_OLDER_FLOWS);
	old = bpf_obj_get(pin);
	memset(&info, 0, sizeof(info));
	if (old < 0 || bpf_obj_get_info_by_fd(old, &info, &len) < 0)
		n = -errno;
	else
		n = copy_flows(old, g->fd[UFD_FLOWS]);
	if (old >= 0)
		close(old);
	if (n < 0) {
		/* kept: the next attach (a member add) tries again */
		sm_log(SOCKMIG_WARN,
		       "libsockmig: UDP group %s: the flows learned during its upgrade were not "
		       "copied yet: %s\n",
		       g->base.name, strerror((int)-n));
		return;
	}
	/* once: the new program has run since, its table is the one */
	unlinkat(g->base.dirfd, UDP_OLDER_FLOWS, 0);
	sm_log(SOCKMIG_INFO, "libsockmig: UDP group %s: %ld flows copied after the attach\n",
	       g->base.name, n);
}

void sm_udp_upgrade_attach(struct sockmig_udp_group *g)
{
	struct dirent *d;
	DIR *dir = opendir("/proc/self/fd");

	while (dir && (d = readdir(dir))) {
		char *end;
		long num = strtol(d->d_name, &end, 10);
		int fd, proto = 0;
		socklen_t plen = sizeof(proto);

		/* a UDP socket's (no fstat: it could block on another file) */
		if (end == d->d_name || *end || num == dirfd(dir) || num > INT_MAX ||
		    getsockopt((int)num, SOL_SOCKET, SO_PROTOCOL, &proto, &plen) < 0 ||
		    proto != IPPROTO_UDP)
			continue;
		/* a copy: another thread of the process may close and reuse
		 * its number meanwhile, never this one's socket */
		fd = fcntl((int)num, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (sm_udp_check_member_fd(g, fd) == 0 &&
		    setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &g->fd[UFD_PROG],
			       sizeof(int)) == 0) {
			close(fd);
			sm_udp_upgrade_catch_up(g);
			break;
		}
		close(fd);
	}
	if (dir)
		closedir(dir);
}
