// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A UDP group pinned by an older sockmig, upgraded in place when a server
 * of this version joins it (lib/udp_upgrade.c). The older group is the
 * rig's group with its flows, counters and program replaced by those of
 * tests/bpf/udp_older.bpf.c (the older layout: 24-octet flows, 12
 * counters), attached through generation 1's socket:
 *   1. its flows, learned by the older program, stay with generation 1
 *      after a generation-2 server of this version opened the group and
 *      joined; so do the flows begun between the open and the join (the
 *      open attached the program through generation 1's socket, which
 *      this process holds: the older program counts none of them);
 *      generation 2 takes the new flows; the counters carry on from the
 *      older ones; a reader (sockmig status) is told before;
 *   1b. an opener with no socket of the group (a child process that
 *      then exits): the older program routes on, into the older table,
 *      until another opener adds generation 2's socket; the flows it
 *      learned after the copy stay with generation 1 too (the catch-up
 *      after the attach);
 *   1c. the joiner of (1) as an unmodified server under the shim;
 *   2. the baseline: the group's directory removed, as the refusal line
 *      said before, and made again: every older flow goes to generation 2;
 *   3. a group that learns flows when claimed is refused, unchanged.
 * Loopback, each case in its own network namespace.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "harness.h"
#include "preload.h"
#include "sockmig.h"
#include "udp.h"
#include "udp_older.skel.h"
#include "udp_rig.h"

#define OLD    40 /* flows of generation 1, learned by the older program */
#define MID    15 /* flows begun between the upgrade and generation 2's join */
#define NEW    25 /* flows begun after generation 2 joined */
#define ALL    (OLD + MID + NEW)
#define ROUNDS 3 /* rounds of every flow after that */

static void group_dir(struct sockmig_udp_group *g, char *dir, size_t len)
{
	snprintf(dir, len, "%s/%s", SOCKMIG_PIN_ROOT, sockmig_udp_group_name(g));
}

/* Pin @fd as @name in @dir, over what is there. */
static int pin_over(const char *dir, const char *name, int fd)
{
	char tmp[PATH_MAX + 64], pin[PATH_MAX + 64];

	snprintf(tmp, sizeof(tmp), "%s/fixture-%s", dir, name);
	snprintf(pin, sizeof(pin), "%s/%s", dir, name);
	unlink(tmp);
	if (bpf_obj_pin(fd, tmp) < 0 || rename(tmp, pin) < 0) {
		printf("pin %s: %s\n", pin, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Make @g's group as an older sockmig left it: the older flows and
 * counters pinned in place of the group's, the older program pinned and
 * attached through member socket @fd. The older program's skeleton (its
 * maps, to read), or NULL. */
static struct udp_older_bpf *make_older(struct sockmig_udp_group *g, int fd)
{
	bool coarse = libbpf_probe_bpf_helper(BPF_PROG_TYPE_SK_REUSEPORT,
					      BPF_FUNC_ktime_get_coarse_ns, NULL) == 1;
	struct udp_older_bpf *o = udp_older_bpf__open();
	char dir[PATH_MAX], pin[PATH_MAX + 64];
	struct bpf_program *prog;
	struct bpf_map_info info;
	uint32_t len = sizeof(info);
	struct bpf_map *map;
	int pfd, fd_flows;

	if (!o) {
		printf("older program: %s\n", strerror(errno));
		return NULL;
	}
	group_dir(g, dir, sizeof(dir));
	bpf_object__for_each_map(map, o->obj)
	{
		if (map == o->maps.flows || map == o->maps.stats)
			continue;
		snprintf(pin, sizeof(pin), "%s/%s", dir, bpf_map__name(map));
		if (bpf_map__set_pin_path(map, pin))
			goto fail;
	}
	/* the flow table as large as the group's */
	snprintf(pin, sizeof(pin), "%s/flows", dir);
	fd_flows = bpf_obj_get(pin);
	memset(&info, 0, sizeof(info));
	if (fd_flows < 0 || bpf_obj_get_info_by_fd(fd_flows, &info, &len) < 0 ||
	    bpf_map__set_max_entries(o->maps.flows, info.max_entries)) {
		printf("the group's flows: %s\n", strerror(errno));
		if (fd_flows >= 0)
			close(fd_flows);
		goto fail;
	}
	close(fd_flows);
	prog = coarse ? o->progs.older_udp : o->progs.older_udp_ktime;
	bpf_program__set_autoload(o->progs.older_udp, prog == o->progs.older_udp);
	bpf_program__set_autoload(o->progs.older_udp_ktime, prog == o->progs.older_udp_ktime);
	if (udp_older_bpf__load(o)) {
		printf("older program: cannot load it\n");
		goto fail;
	}
	pfd = bpf_program__fd(prog);
	if (pin_over(dir, "flows", bpf_map__fd(o->maps.flows)) ||
	    pin_over(dir, "stats", bpf_map__fd(o->maps.stats)) || pin_over(dir, "prog", pfd) ||
	    setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &pfd, sizeof(pfd)) < 0) {
		printf("older group: %s\n", strerror(errno));
		goto fail;
	}
	return o;
fail:
	udp_older_bpf__destroy(o);
	return NULL;
}

/* The older program's counters, summed: new flows and flow hits. */
static int older_counts(struct udp_older_bpf *o, long long *new_flows, long long *hits)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t v[512][12];
	uint32_t zero = 0;

	if (ncpu <= 0 || ncpu > 512 ||
	    bpf_map_lookup_elem(bpf_map__fd(o->maps.stats), &zero, v) < 0)
		return -1;
	*new_flows = *hits = 0;
	for (int c = 0; c < ncpu; c++) {
		*new_flows += (long long)v[c][0];
		*hits += (long long)v[c][1];
	}
	return 0;
}

/* The value size of the map pinned as @name for @g; 0 for none. */
static uint32_t pinned_size(struct sockmig_udp_group *g, const char *name)
{
	char dir[PATH_MAX], pin[PATH_MAX + 64];
	struct bpf_map_info info;
	uint32_t len = sizeof(info);
	int fd;

	group_dir(g, dir, sizeof(dir));
	snprintf(pin, sizeof(pin), "%s/%s", dir, name);
	fd = bpf_obj_get(pin);
	if (fd < 0)
		return 0;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
		info.value_size = 0;
	close(fd);
	return info.value_size;
}

/* The rig with generation 1 under the older program, its OLD flows
 * learned and hit once. */
static int older_rig(struct ur_rig *r, struct udp_older_bpf **o, uint32_t *seq)
{
	long long nf = -1, hits = -1;

	if (ur_add(r, 1) != 0 || !(*o = make_older(r->g, r->srv[0])))
		return -1;
	for (int k = 0; k < 2; k++)
		if (ur_round(r, 0, OLD, ++*seq) < 0)
			return -1;
	if (!ASSERT_EQ(r->lost, 0, "unanswered") || !ASSERT_OK(older_counts(*o, &nf, &hits), "") ||
	    !ASSERT_EQ(nf, OLD, "flows the older program learned") ||
	    !ASSERT_EQ(hits, OLD, "their hits") ||
	    !ASSERT_EQ(pinned_size(r->g, "flows"), 24, "the older flows' values"))
		return -1;
	return 0;
}

/* A server of this version joins: @g (opened by it) replaces the rig's
 * handle, which the older server kept (*@older, closed by the caller). */
static int join_second(struct ur_rig *r, struct sockmig_udp_group *g,
		       struct sockmig_udp_group **older)
{
	*older = r->g;
	r->g = g;
	return ur_add(r, 2) == 1 ? 0 : -1;
}

/* ROUNDS rounds of every flow, then each one's owner: generation 1 for
 * the first @ones flows, 2 for the others; none unanswered or misrouted. */
static int rounds_after(struct ur_rig *r, uint32_t *seq, int ones)
{
	for (int k = 0; k < ROUNDS; k++)
		if (!ASSERT_OK(ur_round(r, 0, ALL, ++*seq), "a round"))
			return -1;
	for (int i = 0; i < ALL; i++)
		if (!ASSERT_EQ(r->last[i], i < ones ? 1 : 2, "a flow's owner"))
			return -1;
	if (!ASSERT_EQ(r->lost, 0, "unanswered") || !ASSERT_EQ(r->misrouted, 0, "misrouted"))
		return -1;
	return 0;
}

/* (1) */
SM_TEST(udp_upgrade_keeps_an_older_groups_flows)
{
	struct sockmig_udp_group *g = NULL, *older = NULL, *rd;
	struct udp_older_bpf *o = NULL;
	struct sockmig_udp_stats st;
	long long nf = -1, hits = -1;
	int ret = SM_FAIL;
	struct ur_rig r;
	uint32_t seq = 0;

	if (!ASSERT_OK(UR_START(ALL, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 0), "rig") ||
	    !ASSERT_OK(older_rig(&r, &o, &seq), "the older group"))
		goto out;
	/* a reader of this version (sockmig status) is told, and changes
	 * nothing */
	rd = sockmig_udp_group_open_name(sockmig_udp_group_name(r.g), NULL);
	if (!ASSERT_TRUE(!rd && errno == ESTALE, "a reader's open: ESTALE") ||
	    !ASSERT_TRUE(strstr(sockmig_last_error(), "made by an older version of sockmig"),
			 sockmig_last_error()))
		goto out;
	/* a server of this version opens it: upgraded */
	g = sockmig_udp_group_open((struct sockaddr *)&r.addr, r.alen, NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_EQ(pinned_size(g, "flows"), sizeof(struct smu_flow), "flows' values") ||
	    !ASSERT_EQ(pinned_size(g, "stats"), sizeof(struct smu_stats), "counters' values") ||
	    !ASSERT_OK(sockmig_udp_stats_read(g, &st), "stats") ||
	    !ASSERT_EQ(st.new_flows, OLD, "new flows, carried") ||
	    !ASSERT_EQ(st.flow_hits, OLD, "hits, carried"))
		goto out;
	/* flows that begin before generation 2 joins: the open attached this
	 * version's program through generation 1's socket (this process's),
	 * which learns them */
	if (!ASSERT_OK(ur_round(&r, OLD, OLD + MID, ++seq), "flows before the join") ||
	    !ASSERT_OK(join_second(&r, g, &older), "generation 2 joins"))
		goto out;
	g = NULL; /* the rig's now */
	if (!ASSERT_OK(rounds_after(&r, &seq, OLD + MID), "after the join") ||
	    !ASSERT_OK(ur_flows_match(&r), "the flow table") ||
	    !ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    !ASSERT_EQ(st.new_flows, ALL, "new flows") ||
	    !ASSERT_EQ(st.flow_hits, OLD + ROUNDS * (OLD + MID) + (ROUNDS - 1) * NEW, "hits") ||
	    !ASSERT_EQ(st.kernel_hash, 0, "kernel's hash") ||
	    /* the older program no longer runs */
	    !ASSERT_OK(older_counts(o, &nf, &hits), "older counters") ||
	    !ASSERT_EQ(nf, OLD, "the older program's new flows") ||
	    !ASSERT_EQ(hits, OLD, "the older program's hits"))
		goto out;
	ret = SM_PASS;
out:
	sockmig_udp_group_close(g);
	sockmig_udp_group_close(older);
	ur_stop(&r);
	udp_older_bpf__destroy(o);
	return ret;
}

/* Wait (up to 10 s) for one octet on @fd: it, or -1. */
static int get_octet(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;

	if (poll(&p, 1, 10000) != 1 || read(fd, &c, 1) != 1)
		return -1;
	return c;
}

/* (1b) */
SM_TEST(udp_upgrade_catches_up_flows_learned_before_the_attach)
{
	struct sockmig_udp_group *g = NULL, *older = NULL;
	struct udp_older_bpf *o = NULL;
	int c2p[2] = {-1, -1}, ret = SM_FAIL, status = -1;
	struct sockmig_udp_stats st;
	long long nf = -1, hits = -1;
	pid_t pid = -1;
	struct ur_rig r;
	uint32_t seq = 0;

	if (!ASSERT_OK(UR_START(ALL, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 0), "rig") ||
	    !ASSERT_OK(older_rig(&r, &o, &seq), "the older group") ||
	    !ASSERT_OK(pipe2(c2p, O_CLOEXEC), "pipe"))
		goto out;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		/* a process of this version with no socket of the group: its
		 * open upgrades and attaches nothing; it exits without a
		 * member */
		close(c2p[0]);
		for (int k = 0; k < atomic_load(&r.nsrv); k++)
			close(r.srv[k]);
		g = sockmig_udp_group_open((struct sockaddr *)&r.addr, r.alen, NULL);
		_exit(g && write(c2p[1], "o", 1) == 1 ? 0 : 1);
	}
	if (!ASSERT_TRUE(pid > 0, "fork") || !ASSERT_EQ(get_octet(c2p[0]), 'o', "child's open") ||
	    !ASSERT_EQ(waitpid(pid, &status, 0), pid, "child") ||
	    !ASSERT_EQ(status, 0, "child's exit") ||
	    !ASSERT_EQ(pinned_size(r.g, "flows"), sizeof(struct smu_flow), "upgraded"))
		goto out;
	pid = -1;
	/* still the older program's, into the older table */
	if (!ASSERT_OK(ur_round(&r, OLD, OLD + MID, ++seq), "flows before the attach") ||
	    !ASSERT_OK(older_counts(o, &nf, &hits), "older counters") ||
	    !ASSERT_EQ(nf, OLD + MID, "flows the older program learned, after the upgrade"))
		goto out;
	/* another opener of this version, the group current: it adds
	 * generation 2 (the attach, then the catch-up) */
	g = sockmig_udp_group_open((struct sockaddr *)&r.addr, r.alen, NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(join_second(&r, g, &older), "generation 2 joins"))
		goto out;
	g = NULL; /* the rig's now */
	if (!ASSERT_OK(rounds_after(&r, &seq, OLD + MID), "after the join") ||
	    !ASSERT_OK(ur_flows_match(&r), "the flow table") ||
	    !ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    /* the older program's counts after the copy are not carried */
	    !ASSERT_EQ(st.new_flows, OLD + NEW, "new flows") ||
	    !ASSERT_EQ(st.flow_hits, OLD + ROUNDS * (OLD + MID) + (ROUNDS - 1) * NEW, "hits") ||
	    !ASSERT_EQ(st.kernel_hash, 0, "kernel's hash") ||
	    !ASSERT_EQ(pinned_size(r.g, "older-flows"), 0, "the older table, removed"))
		goto out;
	ret = SM_PASS;
out:
	if (pid > 0)
		waitpid(pid, NULL, 0);
	for (int i = 0; i < 2; i++)
		if (c2p[i] >= 0)
			close(c2p[i]);
	sockmig_udp_group_close(g);
	sockmig_udp_group_close(older);
	ur_stop(&r);
	udp_older_bpf__destroy(o);
	return ret;
}

/* (1c) */
SM_TEST(udp_upgrade_by_a_server_under_the_shim)
{
	struct sockmig_udp_group *g = NULL;
	struct tp_proc srv = TP_PROC_INIT;
	struct udp_older_bpf *o = NULL;
	struct sockmig_udp_stats st;
	long long nf = -1, hits = -1;
	char args[64];
	struct pl_ctx x;
	struct ur_rig r;
	uint32_t seq = 0;
	int ret = pl_setup(&x);

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	if (!ASSERT_TRUE(tp_server_copy("udp_echo", x.server), "udp_echo") ||
	    !ASSERT_OK(UR_START(ALL, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 0), "rig") ||
	    !ASSERT_OK(older_rig(&r, &o, &seq), "the older group"))
		goto out;
	/* an unmodified server of this version's shim: its bind opens the
	 * group (upgraded, attached through its own socket) and registers */
	snprintf(args, sizeof(args), "%d 2", UR_PORT);
	if (!ASSERT_TRUE(pl_srv_start(&x, &srv, "gen2", true, false, NULL, args), "start") ||
	    !ASSERT_TRUE(pl_srv_expect(&srv, "udp", "ready", NULL, 0), "ready"))
		goto out;
	if (!ASSERT_OK(rounds_after(&r, &seq, OLD), "after the join"))
		goto out;
	g = sockmig_udp_group_open_name(sockmig_udp_group_name(r.g), NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(sockmig_udp_stats_read(g, &st), "stats") ||
	    !ASSERT_EQ(st.new_flows, ALL, "new flows") ||
	    !ASSERT_EQ(st.flow_hits, OLD + ROUNDS * OLD + (ROUNDS - 1) * (ALL - OLD), "hits") ||
	    !ASSERT_OK(older_counts(o, &nf, &hits), "older counters") ||
	    !ASSERT_EQ(nf, OLD, "the older program's new flows") ||
	    !ASSERT_EQ(hits, OLD, "the older program's hits") ||
	    /* the shim said nothing: it did not go inactive */
	    !ASSERT_EQ(tp_proc_stderr(&srv, NULL), 0, "the server's stderr lines"))
		goto out;
	ret = SM_PASS;
out:
	if (srv.pid > 0 && kill(srv.pid, SIGTERM) == 0 &&
	    (!pl_srv_expect(&srv, "udp", "bye", NULL, 0) || pl_srv_wait(&srv, 5000) != 0))
		ret = SM_FAIL;
	tp_proc_kill(&srv);
	sockmig_udp_group_close(g);
	ur_stop(&r);
	udp_older_bpf__destroy(o);
	pl_cleanup(&x);
	return ret;
}

/* (2) */
SM_TEST(udp_upgrade_baseline_a_group_made_again_loses_its_flows)
{
	struct sockmig_udp_group *g = NULL, *older = NULL;
	struct udp_older_bpf *o = NULL;
	int ret = SM_FAIL;
	struct ur_rig r;
	uint32_t seq = 0;

	if (!ASSERT_OK(UR_START(ALL, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 0), "rig") ||
	    !ASSERT_OK(older_rig(&r, &o, &seq), "the older group") ||
	    /* "remove its directory" */
	    !ASSERT_OK(sockmig_udp_group_destroy(r.g), "directory removed"))
		goto out;
	g = sockmig_udp_group_open((struct sockaddr *)&r.addr, r.alen, NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(join_second(&r, g, &older), "generation 2 joins"))
		goto out;
	g = NULL;
	for (int k = 0; k < ROUNDS; k++)
		if (!ASSERT_OK(ur_round(&r, 0, OLD + NEW, ++seq), "a round"))
			goto out;
	for (int i = 0; i < OLD + NEW; i++)
		if (!ASSERT_EQ(r.last[i], 2, "a flow's owner: generation 2"))
			goto out;
	if (!ASSERT_EQ(r.lost, 0, "unanswered") ||
	    !ASSERT_EQ(r.misrouted, ROUNDS * OLD, "misrouted: every older flow's datagram"))
		goto out;
	ret = SM_PASS;
out:
	sockmig_udp_group_close(g);
	sockmig_udp_group_close(older);
	ur_stop(&r);
	udp_older_bpf__destroy(o);
	return ret;
}

/* (3) */
SM_TEST(udp_upgrade_refused_for_a_group_that_learns_by_claim)
{
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .learn = SOCKMIG_UDP_LEARN_CLAIM);
	SOCKMIG_OPTS(sockmig_udp_member_opts, mo, .generation = 1);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(UR_PORT)};
	struct sockmig_udp_group *g, *g2 = NULL;
	struct udp_older_bpf *o = NULL;
	int one = 1, ret = SM_FAIL, fd;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &go);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (!ASSERT_TRUE(g, sockmig_last_error()) || !ASSERT_TRUE(fd >= 0, "socket") ||
	    !ASSERT_OK(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), "reuseport") ||
	    !ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)), "bind") ||
	    !ASSERT_OK(sockmig_udp_member_add(g, fd, &mo), "member") ||
	    !ASSERT_TRUE((o = make_older(g, fd)), "the older group"))
		goto out;
	g2 = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
	if (!ASSERT_TRUE(!g2 && errno == EEXIST, "this version's open: EEXIST") ||
	    !ASSERT_TRUE(strstr(sockmig_last_error(), "learns flows when claimed"),
			 sockmig_last_error()) ||
	    !ASSERT_EQ(pinned_size(g, "flows"), 24, "the older flows, unchanged") ||
	    /* a reader is told the same: this one is not upgraded */
	    !ASSERT_TRUE(!(g2 = sockmig_udp_group_open_name(sockmig_udp_group_name(g), NULL)) &&
				 errno == EEXIST,
			 "a reader's open: EEXIST") ||
	    !ASSERT_TRUE(strstr(sockmig_last_error(), "learns flows when claimed"),
			 sockmig_last_error()) ||
	    !ASSERT_EQ(pinned_size(g, "stats"), 96, "the older counters, unchanged"))
		goto out;
	ret = SM_PASS;
out:
	sockmig_udp_group_close(g2);
	if (fd >= 0)
		close(fd);
	if (g)
		sockmig_udp_group_destroy(g);
	sockmig_udp_group_close(g);
	udp_older_bpf__destroy(o);
	return ret;
}
