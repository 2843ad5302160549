// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups: the SO_REUSEPORT group of the UDP sockets bound to one
 * address and port of a network namespace, steered by bpf/udp.bpf.c.
 * Open (pins loaded or made), members (a slot in the socket array and
 * its struct smu_slot), the working generation, drains of a generation,
 * the counters, destroy.
 *
 * A UDP group lives next to the TCP groups: the same pin root, checked the
 * same way, and the same lock (flock on the group's directory), through the
 * embedded struct sockmig_group that pin.c knows (lib/group_priv.h). Only
 * its name ("-udp4-"/"-udp6-"), its maps and its program are its own.
 *
 * This file: open, close, name, mode, destroy and the check of a member's
 * socket; the slots and what uses them are in lib/udp_member.c.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "udp_priv.h"
#include "udp.skel.h"

#define UDP_DEFAULT_IDLE_MS  30000u
#define UDP_DEFAULT_FLOW_MAX 65536u
#define UDP_FLOW_MAX_LIMIT   (1u << 24)
/*
 * The kernel's LRU hash hands free entries to a CPU 128 at a time (its
 * LOCAL_FREE_TARGET) and evicts as soon as the shared free list cannot
 * give that many, while other CPUs may still hold up to 128 free ones
 * each: a table of exactly flow_max entries forgets live flows before it
 * holds flow_max. Measured on 2 CPUs: 1,000,000 flows in a table of
 * 1,000,000, then a second datagram of each: 64 to 499,930 of them at
 * another socket than their owner, up to 999,870 forgotten (a flow
 * forgotten is learned again and evicts the next oldest, which is the
 * next to come back). The map gets twice that per possible CPU more.
 */
#define UDP_LRU_SLACK_PER_CPU 256u

const char *const sm_udp_pins[UFD_N] = {"members", "slots", "flows", "table", "tabidx",
					"config",  "stats", "qkey",  "prog"};

static const void *addr_bytes(const struct sm_addr *a)
{
	return a->family == AF_INET ? (const void *)&a->v4.sin_addr
				    : (const void *)&a->v6.sin6_addr;
}

static bool same_addr(const struct sm_addr *a, const struct sm_addr *b)
{
	if (a->family != b->family || sm_addr_port(a) != sm_addr_port(b))
		return false;
	return memcmp(addr_bytes(a), addr_bytes(b),
		      a->family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr)) == 0;
}

/* "<netns>-udp4|udp6-<address with _ for .>-<port>" */
static int udp_group_name(const struct sm_addr *a, uint64_t netns, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (!inet_ntop(a->family, addr_bytes(a), host, sizeof(host)))
		return -EINVAL;
	for (char *p = host; *p; p++)
		if (*p == '.')
			*p = '_';
	snprintf(buf, len, "%llu-udp%d-%s-%d", (unsigned long long)netns,
		 a->family == AF_INET ? 4 : 6, host, sm_addr_port(a));
	return 0;
}

static void close_fds(struct sockmig_udp_group *g)
{
	for (size_t i = 0; i < UFD_N; i++) {
		if (g->fd[i] >= 0)
			close(g->fd[i]);
		g->fd[i] = -1;
	}
}

/* The value size of each map of a group, in the order of enum UFD_*. */
static const uint32_t udp_value_size[UFD_PROG] = {
	sizeof(uint64_t),	  sizeof(struct smu_slot), sizeof(struct smu_flow),
	sizeof(struct smu_table), sizeof(uint32_t),	   sizeof(struct smu_config),
	sizeof(struct smu_stats), sizeof(struct smu_qkey),
};

int sm_udp_get_pinned(struct sockmig_udp_group *g)
{
	char pin[PATH_MAX + 32];
	bool older = false, qkey_short = false;

	for (size_t i = 0; i < UFD_N; i++) {
		struct bpf_map_info info;
		uint32_t len = sizeof(info);

		snprintf(pin, sizeof(pin), "%s/%s", g->base.path, sm_udp_pins[i]);
		g->fd[i] = bpf_obj_get(pin);
		if (g->fd[i] < 0) {
			int err = errno == EACCES || errno == EPERM ? -EPERM : -ENOENT;

			close_fds(g);
			return err;
		}
		if (i == UFD_PROG)
			continue;
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(g->fd[i], &info, &len) < 0 ||
		    info.value_size == udp_value_size[i])
			continue;
		if (sm_udp_upgradable((unsigned int)i, info.value_size)) {
			older = true;
			continue;
		}
		/* a key map of before 17-octet CIDs (no inverse S-box, which
		 * only they need: that build made none) is read as it is */
		qkey_short |= i == UFD_QKEY && info.value_size == offsetof(struct smu_qkey, isbox);
		if (!(i == UFD_QKEY && info.value_size == offsetof(struct smu_qkey, isbox))) {
			close_fds(g);
			return sm_fail(EEXIST,
				       "UDP group %s was made by another version of sockmig (%s: "
				       "values of %u bytes, %u here): remove its directory",
				       g->base.name, sm_udp_pins[i], info.value_size,
				       udp_value_size[i]);
		}
	}
	if (older) {
		int err = sm_udp_upgrade_refusal(g, qkey_short);

		close_fds(g);
		return err ? err
			   : sm_fail(ESTALE,
				     "UDP group %s was made by an older version of sockmig: a "
				     "server of this version that joins it upgrades it",
				     g->base.name);
	}
	return 0;
}

/* Whether the group's config is pinned: read under the group's lock, so
 * that an open which fails removes only a group it made itself. */
static bool config_pinned(const struct sockmig_udp_group *g)
{
	return faccessat(g->base.dirfd, sm_udp_pins[UFD_CONFIG], F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Entries of a flow table that holds @flow_max live flows. */
static uint32_t flow_entries(uint32_t flow_max)
{
	int ncpu = libbpf_num_possible_cpus();

	return flow_max + (uint32_t)(ncpu > 0 ? ncpu : 1) * UDP_LRU_SLACK_PER_CPU;
}

/* Load the program with the group's maps (those pinned reused, the others
 * made and pinned; a group of an older version upgraded on the way: see
 * lib/udp_upgrade.c), pin the program, then take everything from the pins.
 * Under the group lock. */
static int load_pinned(struct sockmig_udp_group *g, uint32_t flow_max, bool enc)
{
	char pin[PATH_MAX + 32];
	struct bpf_program *prog, *enc_prog;
	bool coarse;
	struct udp_bpf *skel;
	struct bpf_map *map;
	uint32_t old_flows = 0;
	bool upgrade, older[2];
	int err, pinned_enc;

	err = sm_udp_get_pinned(g);
	upgrade = err == -ESTALE;
	if (err != -ENOENT && err != -EPERM && !upgrade)
		return err; /* 0, or another version's (said) */
	skel = udp_bpf__open();
	if (!skel)
		return sm_fail(errno, "cannot open the UDP group program: %s", strerror(errno));
	/* an older group's flows and counters: made anew here, then filled
	 * from the older ones (lib/udp_upgrade.c); its other maps reused */
	older[0] = upgrade && sm_udp_pin_older(g, UFD_FLOWS, &old_flows);
	older[1] = upgrade && sm_udp_pin_older(g, UFD_STATS, NULL);
	bpf_object__for_each_map(map, skel->obj)
	{
		if ((older[0] && map == skel->maps.flows) || (older[1] && map == skel->maps.stats))
			continue;
		snprintf(pin, sizeof(pin), "%s/%s", g->base.path, bpf_map__name(map));
		err = bpf_map__set_pin_path(map, pin);
		if (err) {
			sm_fail(-err, "cannot set pin path %s", pin);
			goto out;
		}
	}
	/* the program with the coarse clock where the kernel has it (5.11+);
	 * an encrypted group's, which needs it, or none. Encrypted or not:
	 * the pinned config's word once the group is made (an opener's key
	 * then changes nothing: set_config() refuses it), @enc before. */
	coarse = libbpf_probe_bpf_helper(BPF_PROG_TYPE_SK_REUSEPORT, BPF_FUNC_ktime_get_coarse_ns,
					 NULL) == 1;
	pinned_enc = sm_quic_pinned_enc(g);
	if (pinned_enc >= 0)
		enc = pinned_enc;
	if (enc && !coarse) {
		struct utsname u;

		err = sm_fail(EOPNOTSUPP, "encrypted QUIC CIDs need Linux 5.11 or later, not %s",
			      uname(&u) == 0 ? u.release : "this kernel");
		goto out;
	}
	enc_prog = skel->progs.sockmig_udp_enc;
	prog = enc ? enc_prog : coarse ? skel->progs.sockmig_udp : skel->progs.sockmig_udp_ktime;
	bpf_program__set_autoload(skel->progs.sockmig_udp, prog == skel->progs.sockmig_udp);
	bpf_program__set_autoload(skel->progs.sockmig_udp_ktime,
				  prog == skel->progs.sockmig_udp_ktime);
	bpf_program__set_autoload(enc_prog, prog == enc_prog);
	err = bpf_map__set_max_entries(skel->maps.flows,
				       older[0] ? old_flows : flow_entries(flow_max));
	if (!err)
		err = udp_bpf__load(skel);
	if (err == -EACCES && sockmig_missing_cap())
		err = -EPERM; /* the verifier's refusal of an unprivileged loader */
	if (err) {
		char why[200];

		sm_fail(-err, "cannot load the UDP group program: %s%s%s%s", strerror(-err),
			err == -EPERM ? " (" : "",
			err == -EPERM ? sm_eperm_why(why, sizeof(why)) : "",
			err == -EPERM ? ")" : "");
		goto out;
	}
	/* both maps and the program ready beside the older ones, then
	 * renamed over them (the program last: the one pinned reads the maps
	 * pinned) */
	if (older[0])
		err = sm_udp_upgrade_map(g, UFD_FLOWS, bpf_map__fd(skel->maps.flows));
	if (!err && older[1])
		err = sm_udp_upgrade_map(g, UFD_STATS, bpf_map__fd(skel->maps.stats));
	snprintf(pin, sizeof(pin), "%s/new-prog", g->base.path);
	unlink(pin);
	if (!err && bpf_obj_pin(bpf_program__fd(prog), pin) < 0)
		err = sm_fail(errno, "cannot pin %s: %s", pin, strerror(errno));
	if (!err)
		err = sm_udp_upgrade_pins(g, older[0], older[1]);
	if (!err && renameat(g->base.dirfd, "new-prog", g->base.dirfd, "prog") < 0)
		err = sm_fail(errno, "cannot pin %s/prog: %s", g->base.path, strerror(errno));
	if (err) {
		sm_udp_upgrade_drop(g);
		goto out;
	}
	err = sm_udp_get_pinned(g);
	if (err)
		sm_fail(-err, "the pins of %s went while they were made", g->base.path);
	else if (upgrade)
		sm_udp_upgrade_attach(g);
out:
	udp_bpf__destroy(skel);
	return err < 0 ? err : 0;
}

/* Mode quic-lb's CID config: checked at open, set by the group's maker
 * (@c: the group's config, mode already set), compared by later opens. */
static int set_quic_config(struct sockmig_udp_group *g, const struct sockmig_udp_group_opts *opts,
			   struct smu_config *c, bool made)
{
	uint32_t len = OPTS_GET(opts, quic_cid_len, 0), cr = OPTS_GET(opts, quic_config_id, 0);
	const uint8_t *key = OPTS_GET(opts, quic_key, NULL);

	if (c->mode != SMU_MODE_QUIC_LB) {
		if (len || cr || key)
			return sm_fail(EINVAL, "UDP group %s: QUIC CID options need mode quic-lb",
				       g->base.name);
		return 0;
	}
	if (made) {
		c->quic_cid_len = len ? len : SOCKMIG_QUIC_CID_DEFAULT;
		c->quic_cr = cr;
	} else if (len && (len != c->quic_cid_len || cr != c->quic_cr)) {
		return sm_fail(EEXIST,
			       "UDP group %s mints %u-octet CIDs of config %u, not %u-octet of %u",
			       g->base.name, c->quic_cid_len, c->quic_cr, len, cr);
	}
	return sm_quic_key_set(g, c, key, len, made);
}

/* The group's mode, learning and timeout: set by its maker, checked by
 * later opens. */
static int set_config(struct sockmig_udp_group *g, const struct sockmig_udp_group_opts *opts)
{
	uint32_t zero = 0, mode = OPTS_GET(opts, mode, SOCKMIG_UDP_MODE_DEFAULT);
	uint32_t idle = OPTS_GET(opts, idle_timeout_ms, 0);
	uint32_t learn = OPTS_GET(opts, learn, SOCKMIG_UDP_LEARN_DEFAULT);
	struct smu_config c;
	bool made = false;
	int err;

	if (bpf_map_lookup_elem(g->fd[UFD_CONFIG], &zero, &c) < 0)
		return sm_fail(errno, "cannot read the config of %s: %s", g->base.name,
			       strerror(errno));
	if (c.mode == 0) {
		c.mode = mode ? mode : SOCKMIG_UDP_MODE_FLOW;
		c.learn = learn ? learn : SMU_LEARN_RECEIVE;
		made = true;
		if (!idle)
			idle = UDP_DEFAULT_IDLE_MS;
	} else if (mode && mode != c.mode) {
		return sm_fail(EEXIST, "UDP group %s runs mode %s, not %s", g->base.name,
			       sockmig_udp_mode_str(c.mode), sockmig_udp_mode_str(mode));
	} else if (learn && learn != c.learn) {
		return sm_fail(EEXIST, "UDP group %s learns flows %s, not %s", g->base.name,
			       c.learn == SMU_LEARN_CLAIM ? "when claimed" : "on receive",
			       learn == SMU_LEARN_CLAIM ? "when claimed" : "on receive");
	}
	err = set_quic_config(g, opts, &c, made);
	if (err)
		return err;
	if (idle)
		c.idle_timeout_ns = idle == SOCKMIG_UDP_NO_EXPIRY ? 0 : (uint64_t)idle * 1000000ull;
	if (bpf_map_update_elem(g->fd[UFD_CONFIG], &zero, &c, BPF_ANY) < 0)
		return sm_fail(errno, "cannot write the config of %s: %s", g->base.name,
			       strerror(errno));
	return 0;
}

const char *sockmig_udp_mode_str(enum sockmig_udp_mode mode)
{
	switch (mode) {
	case SOCKMIG_UDP_MODE_DEFAULT:
		return "default";
	case SOCKMIG_UDP_MODE_FLOW:
		return "flow";
	case SOCKMIG_UDP_MODE_NONE:
		return "none";
	case SOCKMIG_UDP_MODE_QUIC_LB:
		return "quic-lb";
	}
	return "?";
}

struct sockmig_udp_group *sm_udp_alloc(void)
{
	struct sockmig_udp_group *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->base.dirfd = -1;
	g->base.prog_fd = -1;
	g->base.fd_members = g->base.fd_state = g->base.fd_counters = g->base.fd_table = -1;
	g->base.fd_tabidx = g->base.fd_gstats = g->base.fd_kick = g->base.fd_lease = -1;
	for (size_t i = 0; i < UFD_N; i++)
		g->fd[i] = -1;
	return g;
}

struct sockmig_udp_group *sockmig_udp_group_open(const struct sockaddr *addr, socklen_t len,
						 const struct sockmig_udp_group_opts *opts)
{
	struct sockmig_udp_group *g;
	const char *root;
	uint32_t mode, flow_max, cid_len, cr;
	bool made_root = false, made_dir = false;
	int err;

	if (!OPTS_VALID(opts, sockmig_udp_group_opts)) {
		errno = EINVAL;
		return NULL;
	}
	mode = OPTS_GET(opts, mode, SOCKMIG_UDP_MODE_DEFAULT);
	flow_max = OPTS_GET(opts, flow_max, 0);
	cid_len = OPTS_GET(opts, quic_cid_len, 0);
	cr = OPTS_GET(opts, quic_config_id, 0);
	if (mode > SOCKMIG_UDP_MODE_QUIC_LB) {
		errno = -sm_fail(EINVAL, "unknown UDP group mode %u", mode);
		return NULL;
	}
	if ((uint32_t)OPTS_GET(opts, learn, 0) > SOCKMIG_UDP_LEARN_CLAIM) {
		errno = -sm_fail(EINVAL, "unknown UDP group learning %u",
				 (uint32_t)OPTS_GET(opts, learn, 0));
		return NULL;
	}
	if (cid_len && (cid_len < SOCKMIG_QUIC_CID_MIN || cid_len > SOCKMIG_QUIC_CID_MAX)) {
		errno = -sm_fail(EINVAL, "QUIC CID length %u is not within %d to %d", cid_len,
				 SOCKMIG_QUIC_CID_MIN, SOCKMIG_QUIC_CID_MAX);
		return NULL;
	}
	if (cr > SOCKMIG_QUIC_CONFIG_MAX) {
		errno = -sm_fail(EINVAL, "QUIC config rotation id %u is above %d", cr,
				 SOCKMIG_QUIC_CONFIG_MAX);
		return NULL;
	}
	if (flow_max > UDP_FLOW_MAX_LIMIT) {
		errno = -sm_fail(EINVAL, "flow_max %u is above %u", flow_max, UDP_FLOW_MAX_LIMIT);
		return NULL;
	}
	g = sm_udp_alloc();
	if (!g) {
		errno = ENOMEM;
		return NULL;
	}
	if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		memcpy(&g->base.addr.v4, addr, sizeof(g->base.addr.v4));
		g->base.addr.len = sizeof(struct sockaddr_in);
	} else if (addr && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		memcpy(&g->base.addr.v6, addr, sizeof(g->base.addr.v6));
		g->base.addr.len = sizeof(struct sockaddr_in6);
	}
	g->base.addr.family = g->base.addr.len ? addr->sa_family : AF_UNSPEC;
	if (!g->base.addr.len || sm_addr_port(&g->base.addr) == 0) {
		err = sm_fail(EINVAL, "UDP group: not an IPv4 or IPv6 address with a port");
		goto free_group;
	}
	/* a name without the netns would mix namespaces: none, then */
	g->netns = sockmig_netns_self();
	if (!g->netns) {
		err = sm_fail(ENOENT, "UDP group: cannot tell this thread's network namespace "
				      "(/proc/thread-self/ns/net): is /proc mounted?");
		goto free_group;
	}
	udp_group_name(&g->base.addr, g->netns, g->base.name, sizeof(g->base.name));
	root = sm_pin_root(OPTS_GET(opts, pin_root, NULL));
	snprintf(g->base.root, sizeof(g->base.root), "%s", root);
	err = sm_check_root(g->base.root, &made_root);
	if (err)
		goto free_group;
	snprintf(g->base.path, sizeof(g->base.path), "%s/%s", g->base.root, g->base.name);
	err = sm_open_dir_locked(&g->base);
	if (err)
		goto free_group;
	made_dir = !config_pinned(g);
	err = load_pinned(g, flow_max ? flow_max : UDP_DEFAULT_FLOW_MAX,
			  mode == SOCKMIG_UDP_MODE_QUIC_LB && OPTS_GET(opts, quic_key, NULL));
	if (!err)
		err = set_config(g, opts);
	if (err && made_dir)
		sm_unpin_all(&g->base);
	sm_group_unlock(&g->base);
	if (err) {
		if (made_root)
			rmdir(g->base.root);
		goto free_group;
	}
	sm_udp_note_made(g);
	sm_log(SOCKMIG_DEBUG, "libsockmig: opened UDP group %s\n", g->base.name);
	return g;

free_group:
	sockmig_udp_group_close(g);
	errno = -err;
	return NULL;
}

void sockmig_udp_group_close(struct sockmig_udp_group *g)
{
	if (!g)
		return;
	close_fds(g);
	if (g->base.dirfd >= 0)
		close(g->base.dirfd);
	free(g);
}

const char *sockmig_udp_group_name(const struct sockmig_udp_group *g)
{
	return g->base.name;
}

enum sockmig_udp_mode sockmig_udp_group_mode(struct sockmig_udp_group *g)
{
	uint32_t zero = 0;
	struct smu_config c;

	if (!g || bpf_map_lookup_elem(g->fd[UFD_CONFIG], &zero, &c) < 0)
		return SOCKMIG_UDP_MODE_DEFAULT;
	return (enum sockmig_udp_mode)c.mode;
}

uint32_t sockmig_udp_group_flow_max(const struct sockmig_udp_group *g)
{
	return g ? g->made.flow_max : 0;
}

uint32_t sockmig_udp_group_idle_timeout_ms(struct sockmig_udp_group *g)
{
	uint32_t zero = 0;
	struct smu_config c;
	uint64_t ms;

	if (!g || bpf_map_lookup_elem(g->fd[UFD_CONFIG], &zero, &c) < 0)
		return 0;
	if (!c.idle_timeout_ns)
		return SOCKMIG_UDP_NO_EXPIRY;
	ms = c.idle_timeout_ns / 1000000ull;
	return ms >= SOCKMIG_UDP_NO_EXPIRY ? SOCKMIG_UDP_NO_EXPIRY - 1 : ms ? (uint32_t)ms : 1;
}

int sockmig_udp_group_destroy(struct sockmig_udp_group *g)
{
	int err;

	if (!g)
		return sm_fail(EINVAL, "UDP group: none");
	err = sm_group_lock(&g->base);
	if (err)
		return err;
	/* removed since it was opened (and maybe made again by another
	 * process, whose pins the path names now): nothing of ours to remove */
	if (!sm_udp_dir_current(g))
		err = sm_fail(ENOENT, "UDP group %s was removed since it was opened", g->base.name);
	else
		sm_unpin_all(&g->base);
	sm_group_unlock(&g->base);
	return err;
}

void sm_udp_note_made(struct sockmig_udp_group *g)
{
	struct bpf_map_info info;
	uint32_t zero = 0, len = sizeof(info);
	struct smu_config c;

	memset(&g->made, 0, sizeof(g->made));
	g->made.sz = sizeof(g->made);
	memset(&info, 0, sizeof(info));
	/* the flows it was asked for, without the per-CPU slack flow_entries()
	 * adds: a group made again gets the same table, not a bigger one */
	if (bpf_obj_get_info_by_fd(g->fd[UFD_FLOWS], &info, &len) == 0)
		g->made.flow_max = info.max_entries > flow_entries(0)
					   ? info.max_entries - flow_entries(0)
					   : info.max_entries;
	if (bpf_map_lookup_elem(g->fd[UFD_CONFIG], &zero, &c) < 0)
		return;
	g->made.mode = (enum sockmig_udp_mode)c.mode;
	g->made.learn = (enum sockmig_udp_learn)c.learn;
	g->made.idle_timeout_ms = c.idle_timeout_ns ? (uint32_t)(c.idle_timeout_ns / 1000000ull)
						    : SOCKMIG_UDP_NO_EXPIRY;
	if (c.mode == SMU_MODE_QUIC_LB) {
		g->made.quic_cid_len = c.quic_cid_len;
		g->made.quic_config_id = c.quic_cr;
	}
}

bool sm_udp_dir_current(struct sockmig_udp_group *g)
{
	struct stat a, b;

	return g->base.dirfd >= 0 && stat(g->base.path, &a) == 0 && fstat(g->base.dirfd, &b) == 0 &&
	       a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

int sockmig_udp_group_current(struct sockmig_udp_group *g)
{
	return g ? sm_udp_dir_current(g) : -EINVAL;
}

/*
 * A collect removes a group with no live member under its lock
 * (lib/udp_gc.c); a process that opened the group before and adds its
 * socket now checks, under the same lock, that the directory it holds is
 * still the pinned one, and otherwise opens the group again (made anew as
 * it was), so that its socket never lands in maps nobody will find.
 */
int sm_udp_lock_current(struct sockmig_udp_group *g)
{
	struct sockmig_udp_group_opts o = g->made;
	uint8_t key[16];
	bool made_dir;
	int err = g->base.dirfd >= 0 ? sm_group_lock(&g->base) : 0;

	if (err)
		return err;
	if (sm_udp_dir_current(g))
		return 0;
	/* an encrypted group's key, from the maps g still holds */
	err = o.mode == SOCKMIG_UDP_MODE_QUIC_LB ? sm_quic_key_get(g, key) : 0;
	if (err < 0) {
		if (g->base.dirfd >= 0)
			sm_group_unlock(&g->base);
		return err;
	}
	o.quic_key = err ? key : NULL;
	if (g->base.dirfd >= 0) {
		sm_group_unlock(&g->base);
		close(g->base.dirfd);
		g->base.dirfd = -1;
	}
	sm_log(SOCKMIG_DEBUG, "libsockmig: UDP group %s went since it was opened: opened again\n",
	       g->base.name);
	close_fds(g);
	err = sm_open_dir_locked(&g->base);
	if (err) {
		explicit_bzero(key, sizeof(key));
		return err;
	}
	made_dir = !config_pinned(g);
	/* made again as it was; an existing one's timeout is its own */
	if (!made_dir)
		o.idle_timeout_ms = 0;
	err = load_pinned(g, o.flow_max ? o.flow_max : UDP_DEFAULT_FLOW_MAX, o.quic_key);
	if (!err)
		err = set_config(g, &o);
	explicit_bzero(key, sizeof(key));
	if (err) {
		if (made_dir)
			sm_unpin_all(&g->base);
		sm_group_unlock(&g->base);
		close_fds(g);
		return err;
	}
	return 0;
}

int sm_udp_check_member_fd(struct sockmig_udp_group *g, int fd)
{
	char dev[IFNAMSIZ] = "";
	int val = 0;
	socklen_t vlen = sizeof(val), dlen = sizeof(dev);
	struct sm_addr a;

	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &val, &vlen) < 0)
		return sm_fail(errno == ENOTSOCK ? EINVAL : errno, "fd %d is not a socket: %s", fd,
			       strerror(errno));
	if (val != IPPROTO_UDP)
		return sm_fail(EINVAL, "fd %d is not a UDP socket", fd);
	vlen = sizeof(val);
	if (getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &val, &vlen) < 0 || !val)
		return sm_fail(EINVAL, "fd %d has no SO_REUSEPORT: it cannot share a group", fd);
	if (sm_sock_addr(fd, &a) < 0)
		return sm_fail(EINVAL, "fd %d is not an IPv4 or IPv6 socket", fd);
	if (sm_addr_port(&a) == 0)
		return sm_fail(EINVAL, "fd %d is not bound to a port", fd);
	if (getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, &dlen) == 0 && dlen > 0 && dev[0])
		return sm_fail(EOPNOTSUPP, "fd %d is bound to device %s: not supported", fd, dev);
	if (!same_addr(&a, &g->base.addr) || sm_socket_netns(fd) != g->netns)
		return sm_fail(EXDEV, "fd %d is not bound to the address and port of group %s", fd,
			       g->base.name);
	return 0;
}
