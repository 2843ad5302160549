// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups (lib/udp.c, bpf/udp.bpf.c): new flows go to the working
 * generation after a flip, a closed owner's flows fall to it, idle flows
 * expire, bad input is refused, two network namespaces keep their groups
 * apart. Flips of established flows are in test_udp.c; the rig
 * (tests/udp_rig.c) is shared. Loopback, each case in its own network
 * namespace.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "udp_rig.h"

/* ---- new flows, closed owners, expiry, roll-back ------------------------- */

#define WAVE  200
#define WAVES 5

/* After each flip, WAVE new flows: every one lands on the new generation,
 * and every older flow stays where it was. */
static int new_flows_case(int family)
{
	struct sockmig_udp_stats st;
	struct ur_rig r;
	int ret = SM_FAIL;
	uint32_t seq = 0;

	if (!ASSERT_OK(UR_START((WAVES + 2) * WAVE, &r, family, true, SOCKMIG_UDP_MODE_FLOW, 0),
		       "rig") ||
	    !ASSERT_OK(ur_add(&r, 1), "generation 1"))
		goto out;
	for (int w = 0; w < WAVES; w++) {
		/* a flip: generation w + 2 joins and is working from now on */
		if (!ASSERT_OK(ur_add(&r, (uint32_t)w + 2), "flip") ||
		    !ASSERT_OK(ur_round(&r, 0, (w + 1) * WAVE, ++seq), "round"))
			goto out;
		for (int i = w * WAVE; i < (w + 1) * WAVE; i++)
			if (!ASSERT_EQ(r.first[i], w + 2, "a new flow's generation"))
				goto out;
	}
	if (!ASSERT_OK(ur_round(&r, 0, WAVES * WAVE, ++seq), "last round") ||
	    !ASSERT_EQ(r.misrouted, 0, "old flows answered elsewhere") ||
	    !ASSERT_EQ(ur_unexplained_lost(&r), 0, "unanswered") ||
	    !ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    !ASSERT_EQ(st.new_flows, WAVES * WAVE, "new flows") ||
	    !ASSERT_EQ(st.flow_hits, r.sent - WAVES * WAVE, "hits") ||
	    !ASSERT_EQ(st.working_generation, WAVES + 1, "working"))
		goto out;

	/* roll back: generation 3 set by hand takes the next new flows */
	if (!ASSERT_OK(sockmig_udp_set_working(r.g, 3), "set working 3") ||
	    !ASSERT_ERR(sockmig_udp_set_working(r.g, 99), ENOENT, "no such generation"))
		goto out;
	if (!ASSERT_OK(ur_round(&r, WAVES * WAVE, WAVES * WAVE + WAVE, ++seq), "rollback round"))
		goto out;
	for (int i = WAVES * WAVE; i < WAVES * WAVE + WAVE; i++)
		if (!ASSERT_EQ(r.first[i], 3, "a new flow after the roll-back"))
			goto out;
	/* draining generation 3 gives new flows to the newest again; its
	 * flows stay with it */
	if (!ASSERT_EQ(sockmig_udp_generation_drain(r.g, 3), 1, "drain 3") ||
	    !ASSERT_OK(ur_round(&r, 0, WAVES * WAVE + 2 * WAVE, ++seq), "after the drain"))
		goto out;
	for (int i = WAVES * WAVE + WAVE; i < WAVES * WAVE + 2 * WAVE; i++)
		if (!ASSERT_EQ(r.first[i], WAVES + 1, "a new flow after the drain"))
			goto out;
	if (!ASSERT_EQ(r.misrouted, 0, "misrouted") ||
	    !ASSERT_EQ(ur_unexplained_lost(&r), 0, "unanswered") ||
	    !ASSERT_OK(ur_flows_match(&r), "the table's flows"))
		goto out;
	ret = SM_PASS;
out:
	ur_stop(&r);
	return ret;
}

SM_TEST(udp_new_flows_after_a_flip_land_on_the_new_generation)
{
	return new_flows_case(AF_INET);
}

SM_TEST(udp_new_flows_after_a_flip_land_on_the_new_generation_ipv6)
{
	return new_flows_case(AF_INET6);
}

SM_TEST(udp_closed_owner_flows_fall_to_the_working_generation)
{
	struct sockmig_udp_stats st;
	struct sockmig_udp_member_info mi[4];
	struct sockmig_udp_flow_count fc[4];
	struct ur_rig r;
	int ret = SM_FAIL, old;
	const int n = 300;

	if (!ASSERT_OK(UR_START(n, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 0), "rig") ||
	    !ASSERT_OK(old = ur_add(&r, 1), "generation 1") ||
	    !ASSERT_OK(ur_round(&r, 0, n, 1), "round 1") ||
	    !ASSERT_OK(ur_add(&r, 2), "generation 2") ||
	    !ASSERT_OK(ur_round(&r, 0, n, 2), "round 2"))
		goto out;
	for (int i = 0; i < n; i++)
		if (!ASSERT_EQ(r.last[i], 1, "kept by generation 1 while it lives"))
			goto out;
	/* generation 1 closes: its flows go to generation 2, once each as a
	 * fallback, then as hits of their new owner */
	ur_close_sock(&r, old);
	if (!ASSERT_OK(ur_round(&r, 0, n, 3), "round 3") ||
	    !ASSERT_OK(ur_round(&r, 0, n, 4), "round 4") ||
	    !ASSERT_EQ(ur_unexplained_lost(&r), 0, "unanswered"))
		goto out;
	for (int i = 0; i < n; i++)
		if (!ASSERT_EQ(r.last[i], 2, "moved to the working generation"))
			goto out;
	if (!ASSERT_EQ(sockmig_udp_flows(r.g, fc, 4), 1, "generations owning flows") ||
	    !ASSERT_EQ(fc[0].generation, 2, "generation 2") ||
	    !ASSERT_EQ(fc[0].flows, n, "its flows"))
		goto out;
	if (!ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    !ASSERT_EQ(st.new_flows, n, "new flows") || !ASSERT_EQ(st.fallbacks, n, "fallbacks") ||
	    !ASSERT_EQ(st.flow_hits, 2 * n, "hits") ||
	    !ASSERT_EQ(st.kernel_hash, 0, "kernel hash") ||
	    !ASSERT_EQ(sockmig_udp_members(r.g, mi, 4), 1, "live members") ||
	    !ASSERT_EQ(mi[0].generation, 2, "the live one"))
		goto out;
	ret = SM_PASS;
out:
	ur_stop(&r);
	return ret;
}

SM_TEST(udp_idle_flows_expire_to_the_working_generation)
{
	struct sockmig_udp_stats st;
	struct timespec nap = {0, 400 * 1000000};
	struct ur_rig r;
	int ret = SM_FAIL;
	const int n = 100;

	if (!ASSERT_OK(UR_START(n, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 200), "rig") ||
	    !ASSERT_OK(ur_add(&r, 1), "generation 1") ||
	    !ASSERT_OK(ur_round(&r, 0, n, 1), "round 1") ||
	    !ASSERT_OK(ur_add(&r, 2), "generation 2") ||
	    !ASSERT_OK(ur_round(&r, 0, n, 2), "round 2"))
		goto out;
	for (int i = 0; i < n; i++)
		if (!ASSERT_EQ(r.last[i], 1, "within the timeout"))
			goto out;
	/* idle for twice the timeout: no flow is counted, and they are new again */
	nanosleep(&nap, NULL);
	if (!ASSERT_EQ(sockmig_udp_flows(r.g, NULL, 0), 0, "flows after the timeout") ||
	    !ASSERT_OK(ur_round(&r, 0, n, 3), "round 3") ||
	    !ASSERT_EQ(ur_unexplained_lost(&r), 0, "unanswered"))
		goto out;
	for (int i = 0; i < n; i++)
		if (!ASSERT_EQ(r.last[i], 2, "after the timeout"))
			goto out;
	if (!ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    !ASSERT_EQ(st.new_flows, n, "new") || !ASSERT_EQ(st.flow_hits, n, "hits") ||
	    !ASSERT_EQ(st.expired, n, "expired"))
		goto out;
	ret = SM_PASS;
out:
	ur_stop(&r);
	return ret;
}

SM_TEST(udp_group_refuses_bad_input)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(UR_PORT)};
	struct sockaddr_in other = a;
	struct sockmig_udp_group *g = NULL, *g2;
	int one = 1, u = -1, plain = -1, far = -1, tcp = -1, ret = SM_FAIL;
	SOCKMIG_OPTS(sockmig_udp_group_opts, none, .mode = SOCKMIG_UDP_MODE_NONE);
	SOCKMIG_OPTS(sockmig_udp_group_opts, bad, .mode = 7);
	SOCKMIG_OPTS(sockmig_udp_member_opts, reserved, .generation = SOCKMIG_UDP_GEN_NEWEST);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	other.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	other.sin_port = htons(UR_PORT + 1);
	if (!ASSERT_TRUE(!sockmig_udp_group_open((struct sockaddr *)&a, 4, NULL) && errno == EINVAL,
			 "short address") ||
	    !ASSERT_TRUE(!sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &bad) &&
				 errno == EINVAL,
			 "unknown mode"))
		goto out;
	g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_udp_group_mode(g), SOCKMIG_UDP_MODE_FLOW, "default mode") ||
	    !ASSERT_TRUE(strstr(sockmig_udp_group_name(g), "-udp4-127_0_0_1-34600"), "name"))
		goto out;
	g2 = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &none);
	if (!ASSERT_TRUE(!g2 && errno == EEXIST, "another mode"))
		goto out;
	/* not listed as a TCP group */
	if (!ASSERT_EQ(sockmig_group_list(NULL, NULL, 0), 0, "TCP groups"))
		goto out;

	u = socket(AF_INET, SOCK_DGRAM, 0);
	plain = socket(AF_INET, SOCK_DGRAM, 0);
	far = socket(AF_INET, SOCK_DGRAM, 0);
	tcp = socket(AF_INET, SOCK_STREAM, 0);
	if (!ASSERT_OK(setsockopt(u, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), "reuseport") ||
	    !ASSERT_OK(setsockopt(far, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), "reuseport") ||
	    !ASSERT_OK(setsockopt(tcp, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), "reuseport") ||
	    !ASSERT_ERR(sockmig_udp_member_add(g, u, NULL), EINVAL, "not bound") ||
	    !ASSERT_OK(bind(u, (struct sockaddr *)&a, sizeof(a)), "bind") ||
	    !ASSERT_OK(bind(plain, (struct sockaddr *)&other, sizeof(other)), "bind plain") ||
	    !ASSERT_OK(bind(far,
			    (struct sockaddr *)&(struct sockaddr_in){
				    .sin_family = AF_INET,
				    .sin_port = htons(UR_PORT + 2),
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
			    sizeof(a)),
		       "bind far") ||
	    !ASSERT_OK(bind(tcp, (struct sockaddr *)&a, sizeof(a)), "bind tcp") ||
	    !ASSERT_ERR(sockmig_udp_member_add(g, tcp, NULL), EINVAL, "a TCP socket") ||
	    !ASSERT_ERR(sockmig_udp_member_add(g, plain, NULL), EINVAL, "no SO_REUSEPORT") ||
	    !ASSERT_ERR(sockmig_udp_member_add(g, far, NULL), EXDEV, "another port") ||
	    !ASSERT_ERR(sockmig_udp_member_add(g, u, &reserved), EINVAL, "reserved generation") ||
	    !ASSERT_ERR(sockmig_udp_member_add(g, -1, NULL), EBADF, "no socket") ||
	    !ASSERT_OK(sockmig_udp_member_add(g, u, NULL), "member") ||
	    !ASSERT_ERR(sockmig_udp_generation_drain(g, 0), EBUSY, "the last active generation") ||
	    !ASSERT_ERR(sockmig_udp_generation_drain(g, 5), ENOENT, "no such generation") ||
	    !ASSERT_EQ(sockmig_udp_members(g, NULL, 0), 1, "members"))
		goto out;
	ret = SM_PASS;
out:
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
	for (int i = 0; i < 4; i++)
		if ((int[]){u, plain, far, tcp}[i] >= 0)
			close((int[]){u, plain, far, tcp}[i]);
	return ret;
}

/* Two network namespaces with the same address and port: two groups, and
 * neither sees the other's members or flows. */
SM_TEST(udp_groups_of_two_netns_are_apart)
{
	struct sockmig_udp_stats st;
	struct ur_rig r;
	int ret = SM_FAIL, status = -1, p[2] = {-1, -1};
	char other[SOCKMIG_NAME_MAX] = "";
	pid_t pid;

	if (!ASSERT_OK(UR_START(10, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 0), "rig") ||
	    !ASSERT_OK(ur_add(&r, 1), "generation 1") ||
	    !ASSERT_OK(ur_round(&r, 0, 10, 1), "round") || !ASSERT_OK(pipe(p), "pipe"))
		goto out;
	pid = fork();
	if (pid == 0) {
		struct sockmig_udp_group *g;
		int rc = 1;

		close(p[0]);
		if (unshare(CLONE_NEWNET) == 0) {
			g = sockmig_udp_group_open((struct sockaddr *)&r.addr, r.alen, NULL);
			if (g) {
				if (write(p[1], sockmig_udp_group_name(g),
					  strlen(sockmig_udp_group_name(g))) > 0 &&
				    sockmig_udp_members(g, NULL, 0) == 0 &&
				    sockmig_udp_stats_read(g, &st) == 0 && st.new_flows == 0)
					rc = 0;
				sockmig_udp_group_destroy(g);
				sockmig_udp_group_close(g);
			}
		}
		_exit(rc);
	}
	close(p[1]);
	p[1] = -1;
	if (!ASSERT_TRUE(read(p[0], other, sizeof(other) - 1) > 0, "the other's name") ||
	    !ASSERT_TRUE(pid > 0 && waitpid(pid, &status, 0) == pid, "child") ||
	    !ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "the other namespace's group is empty") ||
	    !ASSERT_TRUE(strcmp(other, sockmig_udp_group_name(r.g)) != 0, "two names") ||
	    !ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    !ASSERT_EQ(st.new_flows, 10, "this namespace's flows") ||
	    !ASSERT_EQ(sockmig_udp_members(r.g, NULL, 0), 1, "this namespace's members"))
		goto out;
	ret = SM_PASS;
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	ur_stop(&r);
	return ret;
}

/* Without /proc (a chroot that does not mount it) the netns of the group's
 * name cannot be read: the open says so, rather than pin a group named for
 * no namespace whose every member add then fails with a misleading line. */
SM_TEST(udp_group_without_proc_refused)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(UR_PORT)};
	int status = -1;
	pid_t pid;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	pid = fork();
	if (pid == 0) {
		struct sockmig_udp_group *g;

		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("none", "/proc", "tmpfs", 0, NULL) < 0)
			_exit(3);
		g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
		if (g) {
			printf("opened %s without /proc\n", sockmig_udp_group_name(g));
			sockmig_udp_group_destroy(g);
			_exit(1);
		}
		printf("error: %s\n", sockmig_last_error());
		_exit(errno == ENOENT && strstr(sockmig_last_error(), "/proc") ? 0 : 2);
	}
	if (!ASSERT_TRUE(pid > 0, "fork") || !ASSERT_EQ(waitpid(pid, &status, 0), pid, "wait") ||
	    !ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "refused, naming /proc") ||
	    !ASSERT_EQ(sockmig_udp_group_list(NULL, 0, UR_PORT, NULL, 0), 0, "no group left"))
		return SM_FAIL;
	return SM_PASS;
}
