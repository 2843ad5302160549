// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups, the members (lib/udp.c has open, close and destroy): the
 * slots (a socket in the socket array and its struct smu_slot), adding a
 * member, the working generation, drains of a generation, the member
 * list, the counters and the flow counts; each change rebuilds the
 * selection table under the group's lock.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "udp_priv.h"

/* Generations compare as serial numbers (as the TCP members'). */
static bool gen_newer(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) > 0;
}

/* Read the slots in use (below the config's high-water mark; the rest
 * are zero); a slot whose socket has closed is emptied (its flows then
 * fall to the working generation: their cookie no longer matches).
 * *@hw: the mark. */
static int read_slots(struct sockmig_udp_group *g, struct uslot *u, uint32_t *hw)
{
	uint32_t zero = 0;
	struct smu_config c;
	uint64_t cookie;

	if (bpf_map_lookup_elem(g->fd[UFD_CONFIG], &zero, &c) < 0)
		return sm_fail(errno, "cannot read the config of %s: %s", g->base.name,
			       strerror(errno));
	*hw = c.slots_hw > SMU_MAX_MEMBERS ? SMU_MAX_MEMBERS : c.slots_hw;
	memset(u, 0, SMU_MAX_MEMBERS * sizeof(*u));
	for (uint32_t i = 0; i < *hw; i++) {
		if (bpf_map_lookup_elem(g->fd[UFD_SLOTS], &i, &u[i].s) < 0)
			return sm_fail(errno, "cannot read slot %u of %s: %s", i, g->base.name,
				       strerror(errno));
		if (!u[i].s.cookie)
			continue;
		u[i].live = bpf_map_lookup_elem(g->fd[UFD_MEMBERS], &i, &cookie) == 0 &&
			    cookie == u[i].s.cookie;
		if (!u[i].live) {
			memset(&u[i].s, 0, sizeof(u[i].s));
			bpf_map_update_elem(g->fd[UFD_SLOTS], &i, &u[i].s, BPF_ANY);
		}
	}
	return 0;
}

/* Raise the high-water mark of the slots to cover @slot. */
static int raise_hw(struct sockmig_udp_group *g, uint32_t slot)
{
	uint32_t zero = 0;
	struct smu_config c;

	if (bpf_map_lookup_elem(g->fd[UFD_CONFIG], &zero, &c) < 0)
		return -errno;
	if (c.slots_hw > slot)
		return 0;
	c.slots_hw = slot + 1;
	return bpf_map_update_elem(g->fd[UFD_CONFIG], &zero, &c, BPF_ANY) < 0 ? -errno : 0;
}

/* The working generation: the one set by hand while it has a live active
 * member, else the newest with one. false when no member is active. */
static bool working_of(const struct uslot *u, const struct smu_config *c, uint32_t *gen)
{
	bool any = false, pinned = false;

	for (uint32_t i = 0; i < SMU_MAX_MEMBERS; i++) {
		if (!u[i].live || u[i].s.role != SMU_ROLE_ACTIVE)
			continue;
		if (c->working_pinned && u[i].s.generation == c->working_gen)
			pinned = true;
		if (!any || gen_newer(u[i].s.generation, *gen))
			*gen = u[i].s.generation;
		any = true;
	}
	if (pinned)
		*gen = c->working_gen;
	return any;
}

/* A generation set by hand that has no live active member left (its
 * sockets closed) is set no more: a socket of that generation that joins
 * later does not take the new flows back from the newer ones. Before any
 * change to the slots @u just read. */
static int unpin_gone(struct sockmig_udp_group *g, const struct uslot *u)
{
	uint32_t zero = 0;
	struct smu_config c;

	if (bpf_map_lookup_elem(g->fd[UFD_CONFIG], &zero, &c) < 0)
		return sm_fail(errno, "cannot read the config: %s", strerror(errno));
	if (!c.working_pinned)
		return 0;
	for (uint32_t i = 0; i < SMU_MAX_MEMBERS; i++)
		if (u[i].live && u[i].s.role == SMU_ROLE_ACTIVE &&
		    u[i].s.generation == c.working_gen)
			return 0;
	c.working_pinned = 0;
	c.working_gen = 0;
	if (bpf_map_update_elem(g->fd[UFD_CONFIG], &zero, &c, BPF_ANY) < 0)
		return sm_fail(errno, "cannot write the config: %s", strerror(errno));
	return 0;
}

/* Rebuild the selection table from the slots @u into the copy the program
 * does not read, then switch to it. Under the group lock. */
static int rebuild(struct sockmig_udp_group *g, const struct uslot *u)
{
	uint32_t zero = 0, idx = 0, next;
	struct smu_config c;
	struct smu_table *t;
	int err = 0;

	t = calloc(1, sizeof(*t));
	if (!t)
		return sm_fail(ENOMEM, "out of memory");
	if (bpf_map_lookup_elem(g->fd[UFD_CONFIG], &zero, &c) < 0 ||
	    bpf_map_lookup_elem(g->fd[UFD_TABIDX], &zero, &idx) < 0) {
		err = sm_fail(errno, "cannot read the table of %s: %s", g->base.name,
			      strerror(errno));
		goto out;
	}
	if (working_of(u, &c, &t->working_gen)) {
		for (uint32_t i = 0; i < SMU_MAX_MEMBERS; i++) {
			if (!u[i].live || u[i].s.role != SMU_ROLE_ACTIVE)
				continue;
			t->active[t->n_active++] = i;
			if (u[i].s.generation == t->working_gen)
				t->working[t->n_working++] = i;
		}
	}
	next = (idx & 1) ^ 1;
	if (bpf_map_update_elem(g->fd[UFD_TABLE], &next, t, BPF_ANY) < 0 ||
	    bpf_map_update_elem(g->fd[UFD_TABIDX], &zero, &next, BPF_ANY) < 0) {
		err = sm_fail(errno, "cannot write the table of %s: %s", g->base.name,
			      strerror(errno));
		goto out;
	}
	/* the program's copy of the working generation, for its old_gen
	 * count on a flow's hit (which reads no table) */
	if (c.table_gen != t->working_gen) {
		c.table_gen = t->working_gen;
		if (bpf_map_update_elem(g->fd[UFD_CONFIG], &zero, &c, BPF_ANY) < 0)
			err = sm_fail(errno, "cannot write the config of %s: %s", g->base.name,
				      strerror(errno));
	}
out:
	free(t);
	return err;
}

typedef int (*slots_fn)(struct sockmig_udp_group *g, struct uslot *u, void *arg);

/* Run @fn on the slots under the lock (@current: sm_udp_lock_current()'s),
 * then rebuild the table. */
static int with_slots_lock(struct sockmig_udp_group *g, slots_fn fn, void *arg, bool current)
{
	struct uslot *u;
	uint32_t hw;
	int err, ret;

	if (!g)
		return sm_fail(EINVAL, "UDP group: none");
	u = calloc(SMU_MAX_MEMBERS, sizeof(*u));
	if (!u)
		return sm_fail(ENOMEM, "out of memory");
	err = current ? sm_udp_lock_current(g) : sm_group_lock(&g->base);
	if (err)
		goto out;
	ret = read_slots(g, u, &hw);
	if (ret >= 0)
		ret = unpin_gone(g, u);
	if (ret >= 0)
		ret = fn(g, u, arg);
	err = ret < 0 ? ret : rebuild(g, u);
	sm_group_unlock(&g->base);
	if (!err)
		err = ret;
out:
	free(u);
	return err;
}

static int with_slots(struct sockmig_udp_group *g, slots_fn fn, void *arg)
{
	return with_slots_lock(g, fn, arg, false);
}

struct add_arg {
	int fd;
	uint64_t cookie;
	struct smu_slot s;
};

static int add_locked(struct sockmig_udp_group *g, struct uslot *u, void *arg)
{
	struct add_arg *a = arg;
	uint64_t v = (uint64_t)a->fd, cookie;
	uint32_t slot = SMU_MAX_MEMBERS;

	for (uint32_t i = 0; i < SMU_MAX_MEMBERS; i++) {
		if (u[i].live && u[i].s.cookie == a->cookie) {
			/* registered again: a new generation, active again;
			 * the program attached again (this handle's: that of
			 * a group upgraded since, lib/udp_upgrade.c) */
			if (setsockopt(a->fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF,
				       &g->fd[UFD_PROG], sizeof(int)) < 0)
				return sm_fail(errno,
					       "cannot attach the UDP program through fd %d: %s",
					       a->fd, strerror(errno));
			sm_udp_upgrade_catch_up(g);
			u[i].s = a->s;
			if (bpf_map_update_elem(g->fd[UFD_SLOTS], &i, &u[i].s, BPF_ANY) < 0)
				return sm_fail(errno, "cannot write slot %u: %s", i,
					       strerror(errno));
			return 0;
		}
		if (slot == SMU_MAX_MEMBERS && !u[i].live &&
		    bpf_map_lookup_elem(g->fd[UFD_MEMBERS], &i, &cookie) < 0 && errno == ENOENT)
			slot = i;
	}
	if (slot == SMU_MAX_MEMBERS)
		return sm_fail(ENOSPC, "UDP group %s has no free slot (%d sockets)", g->base.name,
			       SMU_MAX_MEMBERS);
	/* the mark first (a slot above it is never read), then the slot's
	 * owner: a flow of the socket that held it before never matches the
	 * new one */
	if (raise_hw(g, slot) < 0)
		return sm_fail(errno, "cannot write the config of %s: %s", g->base.name,
			       strerror(errno));
	if (bpf_map_update_elem(g->fd[UFD_SLOTS], &slot, &a->s, BPF_ANY) < 0)
		return sm_fail(errno, "cannot write slot %u: %s", slot, strerror(errno));
	if (bpf_map_update_elem(g->fd[UFD_MEMBERS], &slot, &v, BPF_NOEXIST) < 0) {
		int err = errno;

		memset(&u[slot].s, 0, sizeof(u[slot].s));
		bpf_map_update_elem(g->fd[UFD_SLOTS], &slot, &u[slot].s, BPF_ANY);
		return sm_fail(err, "cannot put fd %d in the socket array of %s: %s", a->fd,
			       g->base.name, strerror(err));
	}
	if (setsockopt(a->fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &g->fd[UFD_PROG], sizeof(int)) <
	    0) {
		int err = errno;

		bpf_map_delete_elem(g->fd[UFD_MEMBERS], &slot);
		memset(&u[slot].s, 0, sizeof(u[slot].s));
		bpf_map_update_elem(g->fd[UFD_SLOTS], &slot, &u[slot].s, BPF_ANY);
		return sm_fail(err, "cannot attach the UDP program through fd %d: %s", a->fd,
			       strerror(err));
	}
	u[slot].s = a->s;
	u[slot].live = true;
	sm_udp_upgrade_catch_up(g); /* after an upgrade (lib/udp_upgrade.c) */
	return 0;
}

int sockmig_udp_member_add(struct sockmig_udp_group *g, int fd,
			   const struct sockmig_udp_member_opts *opts)
{
	struct add_arg a = {.fd = fd};
	int err;

	if (!g)
		return sm_fail(EINVAL, "UDP group: none");
	if (!OPTS_VALID(opts, sockmig_udp_member_opts))
		return -EINVAL;
	err = sm_udp_check_member_fd(g, fd);
	if (err)
		return err;
	a.cookie = sockmig_cookie(fd);
	if (!a.cookie)
		return sm_fail(errno, "cannot read the cookie of fd %d: %s", fd, strerror(errno));
	a.s.cookie = a.cookie;
	a.s.generation = OPTS_GET(opts, generation, 0);
	a.s.pid = OPTS_GET(opts, pid, 0);
	if (!a.s.pid)
		a.s.pid = (uint32_t)getpid();
	a.s.role = SMU_ROLE_ACTIVE;
	if (a.s.generation == SOCKMIG_UDP_GEN_NEWEST)
		return sm_fail(EINVAL, "generation %u is reserved", a.s.generation);
	/* into the group as pinned now (a collect may have removed the one
	 * g opened: see sm_udp_lock_current()) */
	return with_slots_lock(g, add_locked, &a, true);
}

static int set_working_locked(struct sockmig_udp_group *g, struct uslot *u, void *arg)
{
	uint32_t gen = *(uint32_t *)arg, zero = 0;
	struct smu_config c;
	bool found = false;

	for (uint32_t i = 0; i < SMU_MAX_MEMBERS && !found; i++)
		found = u[i].live && u[i].s.role == SMU_ROLE_ACTIVE && u[i].s.generation == gen;
	if (gen != SOCKMIG_UDP_GEN_NEWEST && !found)
		return sm_fail(ENOENT, "UDP group %s has no live active member of generation %u",
			       g->base.name, gen);
	if (bpf_map_lookup_elem(g->fd[UFD_CONFIG], &zero, &c) < 0)
		return sm_fail(errno, "cannot read the config: %s", strerror(errno));
	c.working_pinned = gen != SOCKMIG_UDP_GEN_NEWEST;
	c.working_gen = c.working_pinned ? gen : 0;
	if (bpf_map_update_elem(g->fd[UFD_CONFIG], &zero, &c, BPF_ANY) < 0)
		return sm_fail(errno, "cannot write the config: %s", strerror(errno));
	return 0;
}

int sockmig_udp_set_working(struct sockmig_udp_group *g, uint32_t generation)
{
	return with_slots(g, set_working_locked, &generation);
}

static int drain_locked(struct sockmig_udp_group *g, struct uslot *u, void *arg)
{
	uint32_t gen = *(uint32_t *)arg, zero = 0;
	int n = 0, left = 0;
	struct smu_config c;

	for (uint32_t i = 0; i < SMU_MAX_MEMBERS; i++) {
		if (!u[i].live || u[i].s.role != SMU_ROLE_ACTIVE)
			continue;
		if (u[i].s.generation == gen)
			n++;
		else
			left++;
	}
	if (!n)
		return sm_fail(ENOENT, "UDP group %s has no live active member of generation %u",
			       g->base.name, gen);
	if (!left)
		return sm_fail(EBUSY,
			       "generation %u holds the last active members of UDP group %s: "
			       "new flows would have nowhere to go",
			       gen, g->base.name);
	for (uint32_t i = 0; i < SMU_MAX_MEMBERS; i++) {
		if (!u[i].live || u[i].s.role != SMU_ROLE_ACTIVE || u[i].s.generation != gen)
			continue;
		u[i].s.role = SMU_ROLE_DRAINING;
		if (bpf_map_update_elem(g->fd[UFD_SLOTS], &i, &u[i].s, BPF_ANY) < 0)
			return sm_fail(errno, "cannot write slot %u: %s", i, strerror(errno));
	}
	/* a generation set by hand and drained is working no more */
	if (bpf_map_lookup_elem(g->fd[UFD_CONFIG], &zero, &c) == 0 && c.working_pinned &&
	    c.working_gen == gen) {
		c.working_pinned = 0;
		c.working_gen = 0;
		bpf_map_update_elem(g->fd[UFD_CONFIG], &zero, &c, BPF_ANY);
	}
	return n;
}

int sockmig_udp_generation_drain(struct sockmig_udp_group *g, uint32_t generation)
{
	return with_slots(g, drain_locked, &generation);
}

struct list_arg {
	struct sockmig_udp_member_info *out;
	int max;
};

static int list_locked(struct sockmig_udp_group *g, struct uslot *u, void *arg)
{
	struct list_arg *l = arg;
	int n = 0;

	(void)g;
	for (uint32_t i = 0; i < SMU_MAX_MEMBERS; i++) {
		if (!u[i].live)
			continue;
		if (n < l->max) {
			struct sockmig_udp_member_info *m = &l->out[n];

			memset(m, 0, sizeof(*m));
			m->cookie = u[i].s.cookie;
			m->slot = i;
			m->generation = u[i].s.generation;
			m->role = (enum sockmig_role)u[i].s.role;
			m->pid = u[i].s.pid;
		}
		n++;
	}
	return n;
}

int sockmig_udp_members(struct sockmig_udp_group *g, struct sockmig_udp_member_info *out, int max)
{
	struct list_arg l = {.out = out, .max = out ? max : 0};

	return with_slots(g, list_locked, &l);
}

int sm_udp_stats_sum(struct sockmig_udp_group *g, struct smu_stats *sum)
{
	const size_t nf = sizeof(*sum) / sizeof(__u64);
	struct smu_stats *per;
	uint32_t zero = 0;
	int ncpu, err = 0;

	_Static_assert(sizeof(struct smu_stats) % sizeof(__u64) == 0, "smu_stats: counters only");
	ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0)
		return sm_fail(-ncpu, "cannot count the possible CPUs");
	per = calloc((size_t)ncpu, sizeof(*per));
	if (!per)
		return sm_fail(ENOMEM, "out of memory");
	if (bpf_map_lookup_elem(g->fd[UFD_STATS], &zero, per) < 0) {
		err = sm_fail(errno, "cannot read the counters of %s: %s", g->base.name,
			      strerror(errno));
		goto out;
	}
	memset(sum, 0, sizeof(*sum));
	for (int c = 0; c < ncpu; c++) /* every field a __u64 counter */
		for (size_t f = 0; f < nf; f++)
			((__u64 *)sum)[f] += ((const __u64 *)&per[c])[f];
out:
	free(per);
	return err;
}

int sockmig_udp_stats_read(struct sockmig_udp_group *g, struct sockmig_udp_stats *out)
{
	uint32_t zero = 0, idx = 0;
	struct smu_stats sum;
	struct smu_table *t;
	int err;

	if (!g || !out)
		return sm_fail(EINVAL, "UDP stats: no group or no result");
	err = sm_udp_stats_sum(g, &sum);
	if (err)
		return err;
	t = malloc(sizeof(*t));
	if (!t)
		return sm_fail(ENOMEM, "out of memory");
	if (bpf_map_lookup_elem(g->fd[UFD_TABIDX], &zero, &idx) < 0 ||
	    (idx &= 1, bpf_map_lookup_elem(g->fd[UFD_TABLE], &idx, t) < 0)) {
		err = sm_fail(errno, "cannot read the table of %s: %s", g->base.name,
			      strerror(errno));
		goto out;
	}
	memset(out, 0, sizeof(*out));
	out->new_flows = sum.new_flows;
	out->flow_hits = sum.flow_hits;
	out->fallbacks = sum.fallbacks;
	out->expired = sum.expired;
	out->stateless = sum.stateless;
	out->kernel_hash = sum.kernel_hash;
	out->not_learned = sum.not_learned;
	out->parse_failed = sum.parse_failed;
	out->working_generation = t->working_gen;
	out->n_working = t->n_working;
	out->n_active = t->n_active;
out:
	free(t);
	return err;
}

/* The counters' first version: every field up to old_generation. */
#define COUNTERS_V0 (offsetof(struct sockmig_udp_counters, old_generation) + sizeof(uint64_t))

int sockmig_udp_counters_read(struct sockmig_udp_group *g, struct sockmig_udp_counters *out)
{
	struct sockmig_udp_counters c = {0};
	struct smu_stats sum;
	int err;

	if (!g || !out)
		return sm_fail(EINVAL, "UDP counters: no group or no result");
	if (out->sz < COUNTERS_V0)
		return sm_fail(EINVAL, "UDP counters of %zu bytes: at least %zu", out->sz,
			       (size_t)COUNTERS_V0);
	err = sm_udp_stats_sum(g, &sum);
	if (err)
		return err;
	c.old_generation = sum.old_gen;
	c.quic_new_connections = sum.quic_new_conn;
	c.sz = out->sz;
	/* no byte past the caller's size, nor past ours */
	memcpy(out, &c, out->sz < sizeof(c) ? out->sz : sizeof(c));
	return 0;
}

/* Add one flow of generation @gen to the counts @c (@n of them, sorted
 * oldest first, at most SMU_MAX_MEMBERS: one per live member at most). */
static void count_flow(struct sockmig_udp_flow_count *c, int *n, uint32_t gen)
{
	int i = 0;

	while (i < *n && gen_newer(gen, c[i].generation))
		i++;
	if (i < *n && c[i].generation == gen) {
		c[i].flows++;
		return;
	}
	if (*n >= SMU_MAX_MEMBERS)
		return;
	memmove(&c[i + 1], &c[i], (size_t)(*n - i) * sizeof(*c));
	c[i].generation = gen;
	c[i].flows = 1;
	(*n)++;
}

bool sm_udp_idle(uint64_t timeout_ns, uint64_t last, uint64_t now)
{
	static uint64_t tick_ns;
	struct timespec res;

	if (!tick_ns) /* a jiffy: 1 to 10 ms */
		tick_ns = clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 && !res.tv_sec
				  ? (uint64_t)res.tv_nsec
				  : 10000000ull;
	return timeout_ns && now > last && now - last > timeout_ns + tick_ns;
}

struct live_arg {
	const struct uslot *u;
	uint64_t timeout_ns, now;
	void (*fn)(const struct smu_flow *f, void *arg);
	void *arg;
};

static int live_some(const struct smu_flow_key *k, const struct smu_flow *v, uint32_t n, void *arg)
{
	const struct live_arg *l = arg;

	(void)k;
	for (uint32_t i = 0; i < n; i++) {
		const struct smu_flow *f = &v[i];

		if (f->slot >= SMU_MAX_MEMBERS || !l->u[f->slot].live ||
		    l->u[f->slot].s.cookie != f->cookie)
			continue;
		if (sm_udp_idle(l->timeout_ns, f->last_ns, l->now))
			continue;
		l->fn(f, l->arg);
	}
	return 0;
}

int sm_udp_each_live_flow(struct sockmig_udp_group *g, const struct uslot *u,
			  void (*fn)(const struct smu_flow *f, void *arg), void *arg)
{
	struct live_arg l = {.u = u, .now = sm_now_ns(), .fn = fn, .arg = arg};
	struct smu_config cfg;
	uint32_t zero = 0;
	int err;

	if (bpf_map_lookup_elem(g->fd[UFD_CONFIG], &zero, &cfg) < 0)
		return sm_fail(errno, "cannot read the config: %s", strerror(errno));
	l.timeout_ns = cfg.idle_timeout_ns;
	err = sm_udp_flow_walk(g->fd[UFD_FLOWS], live_some, &l);
	if (err == -EAGAIN)
		return sm_fail(EAGAIN,
			       "cannot read the flow table of %s: flows were evicted faster than "
			       "a key-by-key walk reads them (no batched reads before 5.6); try "
			       "again",
			       g->base.name);
	if (err)
		return sm_fail(-err, "cannot read the flow table of %s: %s", g->base.name,
			       strerror(-err));
	return 0;
}

struct count_arg {
	struct sockmig_udp_flow_count *out, *c;
	int max, n;
};

static void count_one(const struct smu_flow *f, void *arg)
{
	struct count_arg *l = arg;

	count_flow(l->c, &l->n, f->generation);
}

static int copy_locked(struct sockmig_udp_group *g, struct uslot *u, void *arg)
{
	(void)g;
	memcpy(arg, u, SMU_MAX_MEMBERS * sizeof(*u));
	return 0;
}

int sm_udp_slots_copy(struct sockmig_udp_group *g, struct uslot *u)
{
	return with_slots(g, copy_locked, u);
}

int sockmig_udp_flows(struct sockmig_udp_group *g, struct sockmig_udp_flow_count *out, int max)
{
	struct count_arg l = {.out = out, .max = out ? max : 0};
	struct uslot *u;
	int err;

	if (out && max < 0)
		return sm_fail(EINVAL, "sockmig_udp_flows: max %d", max);
	u = calloc(SMU_MAX_MEMBERS, sizeof(*u));
	l.c = calloc(SMU_MAX_MEMBERS, sizeof(*l.c));
	if (!u || !l.c) {
		err = sm_fail(ENOMEM, "out of memory");
		goto out;
	}
	/* the walk after the lock: it reads every entry */
	err = sm_udp_slots_copy(g, u);
	if (!err)
		err = sm_udp_each_live_flow(g, u, count_one, &l);
	if (!err && l.out)
		memcpy(l.out, l.c, (size_t)(l.n < l.max ? l.n : l.max) * sizeof(*l.c));
out:
	free(u);
	free(l.c);
	return err ? err : l.n;
}

int sm_udp_with_slots(struct sockmig_udp_group *g,
		      int (*fn)(struct sockmig_udp_group *g, struct uslot *u, void *arg), void *arg)
{
	return with_slots(g, fn, arg);
}
