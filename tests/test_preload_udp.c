// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libsockmig-preload.so and UDP servers (preload/udp.c): an unmodified
 * datagram server, tests/servers/udp_echo.c, reloaded by starting a new
 * process before stopping the old one, keeps every flow with the process
 * that took it; one without SO_REUSEPORT is left alone (SOCKMIG_REUSEPORT=udp
 * makes it share the port and join); without BPF rights it fails open with
 * the shim's one line; SOCKMIG_UDP_MODE picks a new group's mode. The
 * clients are the UDP rig's (tests/udp_rig.c: connected UDP sockets, one
 * per flow, on loopback port UR_PORT); the server answers each datagram
 * with its ID, so that the client sees which process answered.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "preload.h"
#include "sockmig.h"
#include "udp_rig.h"

#define FLOWS 200

/* pl_setup() with the UDP server as x->server. */
static int up_setup(struct pl_ctx *x)
{
	int ret = pl_setup(x);

	if (ret != SM_PASS)
		return ret;
	if (!tp_server_copy("udp_echo", x->server)) {
		pl_cleanup(x);
		return SM_FAIL;
	}
	return SM_PASS;
}

static void up_args(char *args, size_t len, int id, int family, bool reuse)
{
	snprintf(args, len, "%d %d%s%s", UR_PORT, id, family == AF_INET6 ? " -6" : "",
		 reuse ? "" : " -R");
}

/* Start server @id and wait for its "ready" line (bound, and registered
 * when the shim registers it). */
static bool up_start(struct pl_ctx *x, struct tp_proc *s, const char *name, bool preload,
		     bool nobody, const char *const *env, int id, int family, bool reuse)
{
	char args[64];

	up_args(args, sizeof(args), id, family, reuse);
	return pl_srv_start(x, s, name, preload, nobody, env, args) &&
	       pl_srv_expect(s, "udp", "ready", NULL, 0);
}

/* SIGTERM: its "bye" line, then its exit code. */
static int up_term(struct tp_proc *s)
{
	if (s->pid <= 0 || kill(s->pid, SIGTERM) < 0 || !pl_srv_expect(s, "udp", "bye", NULL, 0))
		return -1;
	return pl_srv_wait(s, 5000);
}

/* The rig's clients only (no echo socket of its own, no group). */
static bool up_clients(struct ur_rig *r, int family)
{
	if (ur_start(r, family, false, SOCKMIG_UDP_MODE_DEFAULT, 0) < 0)
		return false;
	return ur_enough_fds(UR_FDS_NEEDED(2 * FLOWS)) == 0;
}

static socklen_t up_addr(int family, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(UR_PORT);
		a->sin6_addr = in6addr_loopback;
		return sizeof(*a);
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;

	a->sin_family = AF_INET;
	a->sin_port = htons(UR_PORT);
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sizeof(*a);
}

/* The UDP group of the port, opened from the test (made when missing:
 * only after pl_netns_groups() said it exists, or to destroy it). */
static struct sockmig_udp_group *up_group(int family)
{
	struct sockaddr_storage ss;
	socklen_t len = up_addr(family, &ss);
	struct sockmig_udp_group *g = sockmig_udp_group_open((struct sockaddr *)&ss, len, NULL);

	if (!g)
		printf("udp group: %s\n", sockmig_last_error());
	return g;
}

/* Remove what the servers registered: the group of the port. */
static void up_group_destroy(int family)
{
	struct sockmig_udp_group *g = up_group(family);

	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
}

/* The live members of the port's group into @info (pids, generations). */
static int up_members(int family, struct sockmig_udp_member_info *info, int max)
{
	struct sockmig_udp_group *g = up_group(family);
	int n;

	if (!g)
		return -1;
	n = sockmig_udp_members(g, info, max);
	for (int i = 0; i < n && i < max; i++)
		printf("member pid %u generation %u role %d\n", info[i].pid, info[i].generation,
		       (int)info[i].role);
	sockmig_udp_group_close(g);
	return n;
}

/* The group's counters after a reload of @r's flows: every datagram went
 * through the program, each flow was new once (FLOWS old, FLOWS new), each
 * old flow fell once to generation 2 when generation 1 exited, every other
 * datagram was its owner's. */
static bool up_stats_exact(int family, const struct ur_rig *r)
{
	struct sockmig_udp_group *g = up_group(family);
	struct sockmig_udp_stats st;
	bool ok;

	if (!g)
		return false;
	ok = ASSERT_OK(sockmig_udp_stats_read(g, &st), "read the counters");
	sockmig_udp_group_close(g);
	if (!ok)
		return false;
	printf("group: %llu new flows, %llu hits, %llu fallbacks, %llu by the kernel's hash, %llu "
	       "not learned; %ld datagrams sent\n",
	       (unsigned long long)st.new_flows, (unsigned long long)st.flow_hits,
	       (unsigned long long)st.fallbacks, (unsigned long long)st.kernel_hash,
	       (unsigned long long)st.not_learned, r->sent);
	return ASSERT_EQ(st.new_flows, 2 * FLOWS, "new flows") &&
	       ASSERT_EQ(st.fallbacks, FLOWS, "fallbacks") &&
	       ASSERT_EQ(st.kernel_hash, 0, "by the kernel's hash") &&
	       ASSERT_EQ(st.not_learned, 0, "not learned") &&
	       ASSERT_EQ((long)(st.new_flows + st.flow_hits + st.fallbacks), r->sent,
			 "datagrams through the program");
}

/* Flows [from, to) answered first by @id. */
static bool up_first_is(struct ur_rig *r, int from, int to, int id, const char *what)
{
	int other = 0;

	for (int i = from; i < to; i++)
		other += r->first[i] != id;
	printf("%s: %d of %d flows answered first by another process than %d\n", what, other,
	       to - from, id);
	return other == 0;
}

/* ---- a reload ------------------------------------------------------------ */

/*
 * Generation 1 serves FLOWS flows; generation 2 starts while they keep
 * sending (a round of every old flow while it starts, then every 10 ms of
 * its start-up), FLOWS new flows start once it is ready, both processes
 * serve 5 rounds of all flows (the grace), then generation 1 gets SIGTERM
 * and exits, and 2 rounds follow. Returns the datagrams answered by the
 * other process than the one that took the flow, while both lived, or -1.
 */
static long reload_run(struct pl_ctx *x, struct ur_rig *r, int family, bool preload,
		       struct tp_proc *old, struct tp_proc *new)
{
	struct sockmig_udp_member_info info[4];
	unsigned long long end;
	char line[256], role[16], word[32];
	bool ready = false;
	uint32_t seq = 0;
	long misrouted;
	int pid, n, newer, during = 0;

	if (!ASSERT_TRUE(up_start(x, old, "gen1", preload, false, NULL, 1, family, true),
			 "generation 1 ready") ||
	    !ASSERT_TRUE(up_clients(r, family), "clients"))
		return -1;
	for (int k = 0; k < 3; k++)
		if (!ASSERT_OK(ur_round(r, 0, FLOWS, ++seq), "round before the reload"))
			return -1;
	if (!ASSERT_TRUE(up_first_is(r, 0, FLOWS, 1, "before the reload"), "generation 1 alone"))
		return -1;

	/* the reload: generation 2 starts while the old flows send */
	up_args(line, sizeof(line), 2, family, true);
	if (!ASSERT_TRUE(pl_srv_start(x, new, "gen2", preload, false, NULL, line), "start gen2"))
		return -1;
	end = burst_now_ms() + 5000;
	while (!ready && burst_now_ms() < end) {
		if (!ASSERT_OK(ur_round(r, 0, FLOWS, ++seq), "round during the reload"))
			return -1;
		during++;
		if (!tp_proc_line(new, line, sizeof(line), burst_now_ms() + 1))
			continue;
		printf("  %s| %s\n", new->name, line);
		ready = sscanf(line, "%15s %d %31s", role, &pid, word) == 3 &&
			strcmp(word, "ready") == 0;
	}
	if (!ASSERT_TRUE(ready, "generation 2 ready"))
		return -1;
	printf("%d rounds of the old flows while generation 2 started\n", during);

	/* the grace: both live, old and new flows send */
	for (int k = 0; k < 5; k++)
		if (!ASSERT_OK(ur_round(r, 0, 2 * FLOWS, ++seq), "round of the grace"))
			return -1;
	misrouted = r->misrouted;
	printf("with both processes: %ld datagrams answered, %ld by the other process\n",
	       r->answered, misrouted);
	if (preload) {
		n = up_members(family, info, 4);
		if (!ASSERT_EQ(n, 2, "live members") ||
		    !ASSERT_TRUE(info[0].pid != info[1].pid, "one member per process") ||
		    !ASSERT_TRUE(info[0].generation != info[1].generation, "two generations"))
			return -1;
		/* the newer generation's member is generation 2's process */
		newer = (int32_t)(info[0].generation - info[1].generation) > 0 ? 0 : 1;
		if (!ASSERT_EQ((int)info[newer].pid, new->pid, "generation 2 is the newer"))
			return -1;
		if (!ASSERT_TRUE(up_first_is(r, 0, FLOWS, 1, "old flows"), "old flows stay") ||
		    !ASSERT_TRUE(up_first_is(r, FLOWS, 2 * FLOWS, 2, "new flows"),
				 "new flows go to generation 2"))
			return -1;
	}

	/* generation 1 stops: its flows fall to generation 2 */
	if (!ASSERT_EQ(up_term(old), 0, "generation 1 exits"))
		return -1;
	for (int k = 0; k < 2; k++)
		if (!ASSERT_OK(ur_round(r, 0, 2 * FLOWS, ++seq), "round after the stop"))
			return -1;
	for (int i = 0; i < 2 * FLOWS; i++)
		if (!ASSERT_EQ(r->last[i], 2, "every flow answered by generation 2 at the end"))
			return -1;
	if (preload && (!ASSERT_EQ(up_members(family, info, 4), 1, "live members at the end") ||
			!up_stats_exact(family, r)))
		return -1;
	if (!ASSERT_EQ(up_term(new), 0, "generation 2 exits") ||
	    !ASSERT_EQ(ur_unexplained_lost(r), 0, "unanswered datagrams"))
		return -1;
	return misrouted;
}

static int reload_case(int family, bool preload)
{
	struct tp_proc old = TP_PROC_INIT, new = TP_PROC_INIT;
	struct pl_ctx x;
	struct ur_rig r;
	long misrouted;
	int ret = up_setup(&x);

	ur_init(&r);
	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	misrouted = reload_run(&x, &r, family, preload, &old, &new);
	if (misrouted < 0)
		goto out;
	if (preload) {
		if (!ASSERT_EQ(misrouted, 0, "datagrams answered by the other process") ||
		    !ASSERT_EQ(tp_proc_stderr(&old, NULL), 0, "generation 1's stderr lines") ||
		    !ASSERT_EQ(tp_proc_stderr(&new, NULL), 0, "generation 2's stderr lines"))
			goto out;
	} else if (!ASSERT_GT(misrouted, 0, "without the shim, answered by the other process")) {
		goto out;
	}
	ret = SM_PASS;
out:
	tp_proc_kill(&old);
	tp_proc_kill(&new);
	ur_stop(&r);
	if (preload || ret != SM_PASS)
		up_group_destroy(family);
	if (ret == SM_PASS && !ASSERT_EQ(pl_netns_groups(&x), 0, "groups left"))
		ret = SM_FAIL;
	pl_cleanup(&x);
	return ret;
}

/* With the shim, every datagram of a flow is answered by the process that
 * took it while that process lives: 0 by the other, and each new flow of
 * the reload by the new process. */
SM_TEST(preload_udp_reload_keeps_flows)
{
	return reload_case(AF_INET, true);
}

SM_TEST(preload_udp_reload_keeps_flows_ipv6)
{
	return reload_case(AF_INET6, true);
}

/* The baseline: the same reload without the shim (plain SO_REUSEPORT):
 * the kernel's hash gives old flows to the new process. */
SM_TEST(preload_udp_reload_baseline_misroutes)
{
	return reload_case(AF_INET, false);
}

/*
 * A pre-fork server whose workers, forked 50 ms apart, each bind their own
 * socket: one generation (the program's, kept across fork), so that new
 * flows go to every worker. Each process's own start time, as for TCP
 * listeners, would make the last worker the only working generation.
 */
SM_TEST(preload_udp_prefork_workers_one_generation)
{
	struct tp_proc s = TP_PROC_INIT;
	struct sockmig_udp_member_info info[4];
	struct pl_ctx x;
	struct ur_rig r;
	char args[64];
	uint32_t seq = 0;
	int ret = up_setup(&x), by[2] = {0, 0};

	ur_init(&r);
	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	up_args(args, sizeof(args), 1, AF_INET, true);
	strcat(args, " -w 2");
	if (!ASSERT_TRUE(pl_srv_start(&x, &s, "prefork", true, false, NULL, args), "start") ||
	    !ASSERT_TRUE(pl_srv_expect(&s, "udp", "ready", NULL, 0), "worker 1 ready") ||
	    !ASSERT_TRUE(pl_srv_expect(&s, "udp", "ready", NULL, 0), "worker 2 ready") ||
	    !ASSERT_EQ(up_members(AF_INET, info, 4), 2, "members") ||
	    !ASSERT_TRUE(info[0].pid != info[1].pid, "one member per worker") ||
	    !ASSERT_EQ(info[0].generation, info[1].generation, "one generation") ||
	    !ASSERT_TRUE(up_clients(&r, AF_INET), "clients"))
		goto out;
	for (int k = 0; k < 3; k++)
		if (!ASSERT_OK(ur_round(&r, 0, FLOWS, ++seq), "round"))
			goto out;
	for (int i = 0; i < FLOWS; i++)
		if (r.first[i] == 1 || r.first[i] == 2)
			by[r.first[i] - 1]++;
	printf("new flows: %d to worker 1, %d to worker 2\n", by[0], by[1]);
	if (!ASSERT_EQ(by[0] + by[1], FLOWS, "flows answered by a worker") ||
	    !ASSERT_GT(by[0], 0, "flows of worker 1") ||
	    !ASSERT_GT(by[1], 0, "flows of worker 2") ||
	    !ASSERT_EQ(r.misrouted, 0, "answered by the other worker") ||
	    !ASSERT_EQ(ur_unexplained_lost(&r), 0, "unanswered") ||
	    !ASSERT_EQ(up_term(&s), 0, "exits") ||
	    !ASSERT_EQ(tp_proc_stderr(&s, NULL), 0, "stderr lines"))
		goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&s);
	ur_stop(&r);
	up_group_destroy(AF_INET);
	pl_cleanup(&x);
	return ret;
}

/* Whether file @path holds @what. */
static bool file_has(const char *path, const char *what)
{
	char buf[4096];
	FILE *f = fopen(path, "re");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = '\0';
	return strstr(buf, what) != NULL;
}

/*
 * A UDP server that closes its socket while a signal it handles is
 * blocked (as a server's thread that blocks its signals does): the shim
 * takes that for a close in a signal handler and hands the release to its
 * helper thread, which must run in a process of UDP sockets only too. The
 * group (its last member gone) is removed before the server exits.
 */
SM_TEST(preload_udp_close_with_a_handled_signal_blocked)
{
	char code[700], log[160];
	char *py[] = {"/usr/bin/python3", "-c", code, NULL};
	struct pl_ctx x;
	int ret = up_setup(&x), groups = -1;
	pid_t pid = 0;

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	if (access(py[0], X_OK) < 0) {
		ret = SKIP("no %s", py[0]);
		goto out;
	}
	snprintf(log, sizeof(log), "%s/py.log", x.dir);
	snprintf(code, sizeof(code),
		 "import signal, socket, time\n"
		 "signal.signal(signal.SIGUSR1, lambda n, f: None)\n"
		 "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})\n"
		 "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
		 "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)\n"
		 "s.bind(('127.0.0.1', %d))\n"
		 "print('bound', flush=True)\n"
		 "time.sleep(0.5)\n"
		 "s.close()\n"
		 "print('closed', flush=True)\n"
		 "time.sleep(3)\n",
		 UR_PORT);
	pid = tp_spawn(log, py, x.shim);
	for (int i = 0; i < 100 && !file_has(log, "bound"); i++)
		burst_sleep_ms(20);
	if (!ASSERT_TRUE(file_has(log, "bound"), "the server bound") ||
	    !ASSERT_EQ(pl_netns_groups(&x), 1, "its group"))
		goto out;
	for (int i = 0; i < 100 && !file_has(log, "closed"); i++)
		burst_sleep_ms(20);
	/* the helper's release: within 1 s, while the server still runs */
	for (int i = 0; i < 50 && (groups = pl_netns_groups(&x)) != 0; i++)
		burst_sleep_ms(20);
	if (!ASSERT_TRUE(file_has(log, "closed"), "the server closed its socket") ||
	    !ASSERT_EQ(groups, 0, "the group, after the close") ||
	    !ASSERT_EQ(tp_wait_exit(pid, 0), -1, "the server still runs"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS) {
		char cmd[200];

		snprintf(cmd, sizeof(cmd), "cat %s", log);
		if (system(cmd) < 0)
			perror("cat");
	}
	tp_stop(pid);
	up_group_destroy(AF_INET);
	pl_cleanup(&x);
	return ret;
}

/* ---- servers without SO_REUSEPORT, modes, no rights ---------------------- */

/*
 * A server without SO_REUSEPORT under the shim: served, no group, nothing
 * said; a second one cannot bind the port, SOCKMIG_REUSEPORT=1 (TCP only)
 * or not. With SOCKMIG_REUSEPORT=udp both bind it, both join the group,
 * and the old flows stay with the first.
 */
SM_TEST(preload_udp_no_reuseport_left_alone)
{
	static const char *const tcp[] = {"SOCKMIG_REUSEPORT=1", NULL};
	static const char *const env[] = {"SOCKMIG_REUSEPORT=udp", NULL};
	struct tp_proc a = TP_PROC_INIT, b = TP_PROC_INIT;
	struct sockmig_udp_member_info info[4];
	struct pl_ctx x;
	struct ur_rig r;
	char args[64], line[256];
	uint32_t seq = 0;
	int ret = up_setup(&x);

	ur_init(&r);
	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	up_args(args, sizeof(args), 2, AF_INET, false);
	if (!ASSERT_TRUE(up_start(&x, &a, "a", true, false, tcp, 1, AF_INET, false), "a ready") ||
	    !ASSERT_TRUE(up_clients(&r, AF_INET), "clients") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, ++seq), "round") ||
	    !ASSERT_TRUE(up_first_is(&r, 0, FLOWS, 1, "a alone"), "served by a") ||
	    !ASSERT_EQ(pl_netns_groups(&x), 0, "no group without SO_REUSEPORT") ||
	    !ASSERT_TRUE(pl_srv_start(&x, &b, "b", true, false, tcp, args), "start b") ||
	    !ASSERT_TRUE(pl_srv_expect(&b, "udp", "error", line, sizeof(line)), "b fails") ||
	    !ASSERT_TRUE(strstr(line, "Address already in use"), "EADDRINUSE") ||
	    !ASSERT_EQ(pl_srv_wait(&b, 5000), 2, "b's exit code") ||
	    !ASSERT_EQ(up_term(&a), 0, "a exits") ||
	    !ASSERT_EQ(tp_proc_stderr(&a, NULL), 0, "a's stderr lines") ||
	    !ASSERT_EQ(pl_netns_groups(&x), 0, "no group at the end"))
		goto out;
	tp_proc_kill(&a);
	tp_proc_kill(&b);

	/* SOCKMIG_REUSEPORT=udp: the same servers share the port and join */
	if (!ASSERT_TRUE(up_start(&x, &a, "a", true, false, env, 1, AF_INET, false), "a ready") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, ++seq), "round") ||
	    !ASSERT_TRUE(up_start(&x, &b, "b", true, false, env, 2, AF_INET, false), "b ready") ||
	    !ASSERT_EQ(pl_netns_groups(&x), 1, "one group") ||
	    !ASSERT_EQ(up_members(AF_INET, info, 4), 2, "members"))
		goto out;
	for (int k = 0; k < 3; k++)
		if (!ASSERT_OK(ur_round(&r, 0, 2 * FLOWS, ++seq), "round with both"))
			goto out;
	if (!ASSERT_TRUE(up_first_is(&r, 0, FLOWS, 1, "old flows"), "old flows stay with a") ||
	    !ASSERT_TRUE(up_first_is(&r, FLOWS, 2 * FLOWS, 2, "new flows"), "new flows to b") ||
	    !ASSERT_EQ(r.misrouted, 0, "answered by the other process") ||
	    !ASSERT_EQ(ur_unexplained_lost(&r), 0, "unanswered") ||
	    !ASSERT_EQ(up_term(&a), 0, "a exits") || !ASSERT_EQ(up_term(&b), 0, "b exits") ||
	    !ASSERT_EQ(tp_proc_stderr(&a, NULL) + tp_proc_stderr(&b, NULL), 0, "stderr lines"))
		goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&a);
	tp_proc_kill(&b);
	ur_stop(&r);
	up_group_destroy(AF_INET);
	if (ret == SM_PASS && !ASSERT_EQ(pl_netns_groups(&x), 0, "groups left"))
		ret = SM_FAIL;
	pl_cleanup(&x);
	return ret;
}

/*
 * SOCKMIG_UDP_MODE=none makes a new group stateless; a value that is
 * neither flow nor none leaves the server alone with one line that says so.
 */
SM_TEST(preload_udp_mode_env)
{
	static const char *const none[] = {"SOCKMIG_UDP_MODE=none", NULL};
	static const char *const bad[] = {"SOCKMIG_UDP_MODE=sticky", NULL};
	static const char *const off[] = {"SOCKMIG_UDP_MODE=off", NULL};
	struct tp_proc a = TP_PROC_INIT;
	struct sockmig_udp_group *g = NULL;
	struct pl_ctx x;
	struct ur_rig r;
	uint32_t seq = 0;
	int ret = up_setup(&x);

	ur_init(&r);
	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	if (!ASSERT_TRUE(up_start(&x, &a, "none", true, false, none, 1, AF_INET, true), "ready") ||
	    !ASSERT_EQ(pl_netns_groups(&x), 1, "one group") ||
	    !ASSERT_TRUE((g = up_group(AF_INET)) != NULL, "open the group") ||
	    !ASSERT_EQ(sockmig_udp_group_mode(g), SOCKMIG_UDP_MODE_NONE, "the group's mode") ||
	    !ASSERT_EQ(up_term(&a), 0, "exits") ||
	    !ASSERT_EQ(tp_proc_stderr(&a, NULL), 0, "stderr lines"))
		goto out;
	sockmig_udp_group_destroy(g);
	sockmig_udp_group_close(g);
	g = NULL;
	tp_proc_kill(&a);
	if (!ASSERT_TRUE(up_start(&x, &a, "bad", true, false, bad, 1, AF_INET, true), "ready") ||
	    !ASSERT_TRUE(up_clients(&r, AF_INET), "clients") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, ++seq), "round") ||
	    !ASSERT_TRUE(up_first_is(&r, 0, FLOWS, 1, "served"), "served") ||
	    !ASSERT_EQ(ur_unexplained_lost(&r), 0, "unanswered") ||
	    !ASSERT_EQ(pl_netns_groups(&x), 0, "no group") || !ASSERT_EQ(up_term(&a), 0, "exits") ||
	    !ASSERT_EQ(tp_proc_stderr(&a, NULL), 1, "stderr lines") ||
	    !ASSERT_EQ(tp_proc_stderr(&a, "sockmig-preload: inactive for UDP: SOCKMIG_UDP_MODE="
					  "sticky is not flow or none"),
		       1, "the reason"))
		goto out;
	tp_proc_kill(&a);

	/* off: a server with SO_REUSEPORT served, registered nowhere, nothing said */
	if (!ASSERT_TRUE(up_start(&x, &a, "off", true, false, off, 1, AF_INET, true), "ready") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, ++seq), "round") ||
	    !ASSERT_TRUE(up_first_is(&r, 0, FLOWS, 1, "served"), "served") ||
	    !ASSERT_EQ(pl_netns_groups(&x), 0, "no group") || !ASSERT_EQ(up_term(&a), 0, "exits") ||
	    !ASSERT_EQ(tp_proc_stderr(&a, NULL), 0, "stderr lines"))
		goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&a);
	ur_stop(&r);
	if (g)
		sockmig_udp_group_close(g);
	up_group_destroy(AF_INET);
	pl_cleanup(&x);
	return ret;
}

/* How many of flows [from, to) were last answered by server @id. */
static int up_last_is(const struct ur_rig *r, int from, int to, int id)
{
	int n = 0;

	for (int i = from; i < to; i++)
		n += r->last[i] == id;
	return n;
}

/*
 * SOCKMIG_UDP_IDLE_MS sets how long a flow may stay idle and keep its
 * socket (a QUIC server's idle timeout may be longer than the default
 * 30 s): at 300 ms, flows idle 700 ms across a reload go to the new
 * server; at the default they stay with the old one. SOCKMIG_UDP_FLOW_MAX
 * sizes a new group's table; "never" keeps flows until the table forgets
 * them. A bad value leaves UDP alone, with one line.
 */
SM_TEST(preload_udp_idle_and_flow_max_env)
{
	static const char *const short_idle[] = {"SOCKMIG_UDP_IDLE_MS=300",
						 "SOCKMIG_UDP_FLOW_MAX=5000", NULL};
	static const char *const bad[] = {"SOCKMIG_UDP_IDLE_MS=30s", NULL};
	static const char *const never[] = {"SOCKMIG_UDP_IDLE_MS=never", NULL};
	struct tp_proc a = TP_PROC_INIT, b = TP_PROC_INIT;
	struct sockmig_udp_group *g = NULL;
	struct pl_ctx x;
	struct ur_rig r;
	uint32_t seq = 0;
	int ret = up_setup(&x);

	ur_init(&r);
	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	if (!ASSERT_TRUE(up_clients(&r, AF_INET), "clients"))
		goto out;
	for (int k = 0; k < 2; k++) {
		const char *const *env = k == 0 ? short_idle : NULL;

		printf("%s\n", k == 0 ? "SOCKMIG_UDP_IDLE_MS=300" : "the default idle timeout");
		if (!ASSERT_TRUE(up_start(&x, &a, "a", true, false, env, 1, AF_INET, true), "a") ||
		    !ASSERT_OK(ur_round(&r, 0, FLOWS, ++seq), "round") ||
		    !ASSERT_TRUE(up_first_is(&r, 0, FLOWS, 1, "a's flows"), "served by a") ||
		    !ASSERT_TRUE((g = up_group(AF_INET)) != NULL, "the group") ||
		    !ASSERT_EQ(sockmig_udp_group_flow_max(g), k == 0 ? 5000 : 65536, "its table") ||
		    !ASSERT_EQ(sockmig_udp_group_idle_timeout_ms(g), k == 0 ? 300 : 30000,
			       "its idle timeout") ||
		    !ASSERT_TRUE(up_start(&x, &b, "b", true, false, env, 2, AF_INET, true), "b"))
			goto out;
		sockmig_udp_group_close(g);
		g = NULL;
		burst_sleep_ms(700);
		if (!ASSERT_OK(ur_round(&r, 0, FLOWS, ++seq), "round after 700 ms idle") ||
		    !ASSERT_EQ(up_last_is(&r, 0, FLOWS, k == 0 ? 2 : 1), FLOWS,
			       k == 0 ? "idle flows at the new server"
				      : "idle flows kept by the old") ||
		    !ASSERT_EQ(ur_unexplained_lost(&r), 0, "unanswered") ||
		    !ASSERT_EQ(up_term(&a), 0, "a exits") ||
		    !ASSERT_EQ(up_term(&b), 0, "b exits") ||
		    !ASSERT_EQ(tp_proc_stderr(&a, NULL) + tp_proc_stderr(&b, NULL), 0, "stderr"))
			goto out;
		tp_proc_kill(&a);
		tp_proc_kill(&b);
		up_group_destroy(AF_INET);
	}
	/* never: the group's flows expire by its table's LRU alone */
	if (!ASSERT_TRUE(up_start(&x, &a, "never", true, false, never, 1, AF_INET, true), "a") ||
	    !ASSERT_TRUE((g = up_group(AF_INET)) != NULL, "the group") ||
	    !ASSERT_EQ(sockmig_udp_group_idle_timeout_ms(g), SOCKMIG_UDP_NO_EXPIRY, "never") ||
	    !ASSERT_EQ(up_term(&a), 0, "exits") ||
	    !ASSERT_EQ(tp_proc_stderr(&a, NULL), 0, "stderr"))
		goto out;
	sockmig_udp_group_close(g);
	g = NULL;
	tp_proc_kill(&a);
	up_group_destroy(AF_INET);
	if (!ASSERT_TRUE(up_start(&x, &a, "bad", true, false, bad, 1, AF_INET, true), "ready") ||
	    !ASSERT_EQ(pl_netns_groups(&x), 0, "no group") || !ASSERT_EQ(up_term(&a), 0, "exits") ||
	    !ASSERT_EQ(tp_proc_stderr(&a, "sockmig-preload: inactive for UDP: SOCKMIG_UDP_IDLE_MS="
					  "30s is not a number of 1 to 86400000 (or never)"),
		       1, "the reason"))
		goto out;
	ret = SM_PASS;
out:
	if (g)
		sockmig_udp_group_close(g);
	tp_proc_kill(&a);
	tp_proc_kill(&b);
	ur_stop(&r);
	up_group_destroy(AF_INET);
	pl_cleanup(&x);
	return ret;
}

/*
 * No BPF rights (uid 65534): the server is served as without the shim,
 * the shim's one "inactive" line says why, nothing in bpffs;
 * SOCKMIG_QUIET=1 silences the line.
 */
SM_TEST(preload_udp_unprivileged_fails_open)
{
	static const char *const quiet[] = {"SOCKMIG_QUIET=1", NULL};
	struct tp_proc s = TP_PROC_INIT;
	struct pl_ctx x;
	struct ur_rig r;
	uint32_t seq = 0;
	int ret = up_setup(&x);

	ur_init(&r);
	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	if (!ASSERT_TRUE(pl_copy_shim(&x), "copy the shim where uid 65534 reads it") ||
	    !ASSERT_TRUE(up_clients(&r, AF_INET), "clients"))
		goto out;
	for (int round = 0; round < 2; round++) {
		if (!ASSERT_TRUE(up_start(&x, &s, round ? "quiet" : "nobody", true, true,
					  round ? quiet : NULL, round + 1, AF_INET, true),
				 "start as uid 65534") ||
		    !ASSERT_OK(ur_round(&r, round * FLOWS, (round + 1) * FLOWS, ++seq), "round") ||
		    !ASSERT_TRUE(up_first_is(&r, round * FLOWS, (round + 1) * FLOWS, round + 1,
					     "served"),
				 "served") ||
		    !ASSERT_EQ(pl_netns_groups(&x), 0, "groups in bpffs") ||
		    !ASSERT_EQ(up_term(&s), 0, "exit code"))
			goto out;
		if (round == 0 && (!ASSERT_EQ(tp_proc_stderr(&s, NULL), 1, "lines on stderr") ||
				   !ASSERT_EQ(tp_proc_stderr(&s, "sockmig-preload: inactive: "), 1,
					      "the reason")))
			goto out;
		if (round == 1 &&
		    !ASSERT_EQ(tp_proc_stderr(&s, NULL), 0, "lines with SOCKMIG_QUIET=1"))
			goto out;
		tp_proc_kill(&s);
	}
	if (!ASSERT_EQ(ur_unexplained_lost(&r), 0, "unanswered"))
		goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&s);
	ur_stop(&r);
	pl_cleanup(&x);
	return ret;
}
