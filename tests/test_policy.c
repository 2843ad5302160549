// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The policy beyond the matrix: where new SYNs go (draining, weights,
 * holder), where migrations go (newest generation, holder), drain and
 * its refusal, the missing wake-up workaround, two processes sharing a
 * group, leave, and bad input. Each case counts connections exactly.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <bpf/bpf.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define PORT 32000

/* Open a connection burst of n clients and count where they were queued:
 * per[i] += children accepted from lfds[i]. Returns the total accepted. */
static int burst(int family, const int *lfds, int nl, int n, int *per)
{
	struct burst *c = calloc(1, sizeof(*c));
	int total = 0, fd;

	if (!c)
		return -1;
	if (burst_start(c, family, PORT, n, false) == 0 && burst_connected(c, 3000) == n) {
		unsigned long long end = burst_now_ms() + 3000;

		while (total < n && burst_now_ms() < end) {
			for (int i = 0; i < nl; i++) {
				while ((fd = accept4(lfds[i], NULL, NULL, SOCK_CLOEXEC)) >= 0) {
					struct linger lg = {1, 0};

					setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
					close(fd);
					per[i]++;
					total++;
				}
			}
			if (total < n)
				burst_sleep_ms(1);
		}
	}
	for (int k = 0; k < c->n; k++) {
		struct linger lg = {1, 0};

		if (c->fd[k] >= 0)
			setsockopt(c->fd[k], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	burst_close(c);
	free(c);
	return total;
}

static int add(struct sockmig_group *g, int fd, enum sockmig_role role, uint32_t gen,
	       uint32_t weight)
{
	SOCKMIG_OPTS(sockmig_member_opts, o, .role = role, .generation = gen, .weight = weight);

	return sockmig_member_add(g, fd, &o);
}

static int set_role(struct sockmig_group *g, int fd, enum sockmig_role role)
{
	SOCKMIG_OPTS(sockmig_member_opts, o, .role = role);

	return sockmig_member_set(g, sockmig_cookie(fd), &o);
}

static uint64_t steered(struct sockmig_group *g, int fd)
{
	struct sockmig_counters c = {0};

	sockmig_counters_read(g, sockmig_cookie(fd), &c);
	return c.steered;
}

static void cleanup(struct sockmig_group *g, int *fds, int n)
{
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

SM_TEST(policy_draining_member_gets_no_syn)
{
	int l[3] = {-1, -1, -1}, per[3] = {0}, ret = SM_FAIL;
	struct sockmig_group *g = NULL;

	for (int i = 0; i < 3; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()))
		goto out;
	for (int i = 0; i < 3; i++)
		if (!ASSERT_OK(add(g, l[i], SOCKMIG_ROLE_ACTIVE, 1, 1), "register"))
			goto out;
	/* baseline: while B is active it gets its share */
	if (!ASSERT_EQ(burst(AF_INET, l, 3, 300, per), 300, "accepted") ||
	    !ASSERT_GT(per[1], 0, "B's share while active") ||
	    !ASSERT_EQ(steered(g, l[1]), per[1], "B steered"))
		goto out;
	memset(per, 0, sizeof(per));
	if (!ASSERT_OK(set_role(g, l[1], SOCKMIG_ROLE_DRAINING), "B draining"))
		goto out;
	if (!ASSERT_EQ(burst(AF_INET, l, 3, 300, per), 300, "accepted") ||
	    !ASSERT_EQ(per[1], 0, "B's share while draining") ||
	    !ASSERT_EQ(per[0] + per[2], 300, "A and C"))
		goto out;
	if (!ASSERT_EQ(steered(g, l[0]) + steered(g, l[2]), 600 - steered(g, l[1]), "steered"))
		goto out;
	ret = SM_PASS;
out:
	cleanup(g, l, 3);
	return ret;
}

SM_TEST(policy_weights_split_syns)
{
	int l[2] = {-1, -1}, per[2] = {0}, ret = SM_FAIL, total = 0;
	struct sockmig_group *g = NULL;
	double share;

	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A (weight 1)") ||
	    !ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_ACTIVE, 1, 3), "register B (weight 3)"))
		goto out;
	for (int round = 0; round < 20; round++)
		total += burst(AF_INET, l, 2, 500, per);
	share = (double)per[1] / (double)total;
	printf("A %d, B %d: B's share %.4f (want 0.75)\n", per[0], per[1], share);
	if (!ASSERT_EQ(total, 10000, "accepted") ||
	    !ASSERT_TRUE(share > 0.73 && share < 0.77, "B's share within 2 points of 75%") ||
	    !ASSERT_EQ(steered(g, l[0]), per[0], "A steered") ||
	    !ASSERT_EQ(steered(g, l[1]), per[1], "B steered"))
		goto out;
	ret = SM_PASS;
out:
	cleanup(g, l, 2);
	return ret;
}

SM_TEST(policy_holder_only_without_active)
{
	int l[3] = {-1, -1, -1}, per[3] = {0}, ret = SM_FAIL; /* holder, A, A2 */
	struct sockmig_group *g = NULL;
	struct sockmig_counters ch;

	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_HOLDER, 0, 1), "register holder") ||
	    !ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A"))
		goto out;
	if (!ASSERT_EQ(burst(AF_INET, l, 2, 200, per), 200, "accepted") ||
	    !ASSERT_EQ(per[0], 0, "holder while A is active") || !ASSERT_EQ(per[1], 200, "A"))
		goto out;
	/* A stops taking SYNs: the holder takes them */
	if (!ASSERT_OK(set_role(g, l[1], SOCKMIG_ROLE_DRAINING), "A draining") ||
	    !ASSERT_EQ(burst(AF_INET, l, 2, 200, per), 200, "accepted") ||
	    !ASSERT_EQ(per[0], 200, "holder with no active member") || !ASSERT_EQ(per[1], 200, "A"))
		goto out;
	/* queue 10 on the holder, then a new active member: the holder's queue
	 * migrates to it when the holder shuts down */
	l[2] = burst_listener(AF_INET, PORT, 1024, 0);
	if (!ASSERT_OK(l[2], "listener A2") ||
	    !ASSERT_OK(add(g, l[2], SOCKMIG_ROLE_ACTIVE, 2, 1), "register A2"))
		goto out;
	memset(per, 0, sizeof(per));
	if (!ASSERT_EQ(burst(AF_INET, l, 3, 100, per), 100, "accepted") ||
	    !ASSERT_EQ(per[0], 0, "holder once A2 is active") || !ASSERT_EQ(per[2], 100, "A2"))
		goto out;
	if (!ASSERT_OK(sockmig_counters_read(g, sockmig_cookie(l[0]), &ch), "holder counters") ||
	    !ASSERT_EQ(ch.steered, 200, "holder steered"))
		goto out;
	ret = SM_PASS;
out:
	cleanup(g, l, 3);
	return ret;
}

/* Children queued on A; B (gen 1), C and D (gen 2) join; A closes. */
SM_TEST(policy_migrates_to_newest_generation)
{
	int l[4] = {-1, -1, -1, -1}, per[4] = {0}, ret = SM_FAIL;
	struct sockmig_group *g = NULL;
	struct sockmig_counters cnt[4];
	struct burst *c = calloc(1, sizeof(*c));
	int fd;

	if (!c)
		return SM_FAIL;
	l[0] = burst_listener(AF_INET, PORT, 1024, 0);
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A"))
		goto out;
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT, 40, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), 40, "connected") ||
	    !ASSERT_TRUE(burst_wait_queue(l[0], 40, 2000), "queued on A"))
		goto out;
	for (int i = 1; i < 4; i++) {
		l[i] = burst_listener(AF_INET, PORT, 1024, 0);
		if (!ASSERT_OK(add(g, l[i], SOCKMIG_ROLE_ACTIVE, i == 1 ? 1 : 2, 1), "register"))
			goto out;
	}
	close(l[0]);
	l[0] = -1;
	for (int i = 1; i < 4; i++) {
		per[i] = burst_accept_queue(l[i]);
		while ((fd = accept4(l[i], NULL, NULL, SOCK_CLOEXEC)) >= 0)
			close(fd);
		sockmig_counters_read(g, sockmig_cookie(l[i]), &cnt[i]);
	}
	printf("queued after the close: B(gen 1) %d, C(gen 2) %d, D(gen 2) %d\n", per[1], per[2],
	       per[3]);
	if (!ASSERT_EQ(per[1], 0, "gen 1 member B") ||
	    !ASSERT_EQ(per[2] + per[3], 40, "gen 2 members C + D") ||
	    !ASSERT_EQ(cnt[1].migrated_in[SOCKMIG_KIND_ESTABLISHED], 0, "B migrated_in") ||
	    !ASSERT_EQ(cnt[2].migrated_in[0] + cnt[3].migrated_in[0], 40, "C+D migrated_in") ||
	    !ASSERT_GT(per[2], 0, "C got some") || !ASSERT_GT(per[3], 0, "D got some"))
		goto out;
	ret = SM_PASS;
out:
	burst_close(c);
	free(c);
	cleanup(g, l, 4);
	return ret;
}

SM_TEST(policy_migrates_to_holder_when_no_active)
{
	int l[2] = {-1, -1}, ret = SM_FAIL;
	struct sockmig_group *g = NULL;
	struct burst *c = calloc(1, sizeof(*c));

	if (!c)
		return SM_FAIL;
	l[0] = burst_listener(AF_INET, PORT, 1024, 0);
	l[1] = burst_listener(AF_INET, PORT, 1024, 0);
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
	    !ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_HOLDER, 0, 1), "register holder"))
		goto out;
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT, 25, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), 25, "connected") ||
	    !ASSERT_TRUE(burst_wait_queue(l[0], 25, 2000), "all queued on A"))
		goto out;
	close(l[0]);
	l[0] = -1;
	if (!ASSERT_EQ(burst_accept_queue(l[1]), 25, "holder's queue after A closed"))
		goto out;
	burst_serve(c, &l[1], 1, NULL, 3000);
	burst_print(c, "holder served");
	if (!ASSERT_EQ(c->count[BURST_OK], 25, "served"))
		goto out;
	ret = SM_PASS;
out:
	burst_close(c);
	free(c);
	cleanup(g, l, 2);
	return ret;
}

SM_TEST(drain_reports_and_refuses_last_active)
{
	int l[3] = {-1, -1, -1}, ret = SM_FAIL, served[1];
	struct sockmig_group *g = NULL;
	struct sockmig_drain_report rep;
	struct burst *c = calloc(1, sizeof(*c));
	SOCKMIG_OPTS(sockmig_group_opts, go, .wake_targets = SOCKMIG_WAKE_NEVER);

	if (!c)
		return SM_FAIL;
	l[0] = burst_listener(AF_INET, PORT, 1024, 0);
	g = sockmig_group_open(l[0], &go);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A"))
		goto out;
	/* alone: refused, and A keeps its role */
	if (!ASSERT_ERR(sockmig_member_drain(g, l[0], NULL, &rep), EBUSY, "drain the last active"))
		goto out;
	printf("refusal: %s\n", sockmig_last_error());
	if (!ASSERT_TRUE(strstr(sockmig_last_error(), "last active member"), "message"))
		goto out;
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT, 30, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), 30, "connected") ||
	    !ASSERT_TRUE(burst_wait_queue(l[0], 30, 2000), "queued on A (still active)"))
		goto out;
	l[1] = burst_listener(AF_INET, PORT, 1024, 0);
	if (!ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_ACTIVE, 2, 1), "register B"))
		goto out;
	if (!ASSERT_OK(sockmig_member_drain(g, l[0], NULL, &rep), "drain A"))
		goto out;
	printf("drain: established %llu, cancelled %llu, TCPMigrateReqSuccess %llu, %.3f ms\n",
	       (unsigned long long)rep.migrated[SOCKMIG_KIND_ESTABLISHED],
	       (unsigned long long)rep.cancelled, (unsigned long long)rep.netstat.migrate_success,
	       (double)rep.elapsed_ns / 1e6);
	if (!ASSERT_EQ(rep.migrated[SOCKMIG_KIND_ESTABLISHED], 30, "report: migrated") ||
	    !ASSERT_EQ(rep.cancelled, 0, "report: cancelled") ||
	    !ASSERT_EQ(rep.netstat.migrate_success, 30, "report: TCPMigrateReqSuccess") ||
	    !ASSERT_EQ(rep.kicked, 0, "no wake-up asked"))
		goto out;
	burst_serve(c, &l[1], 1, served, 3000);
	if (!ASSERT_EQ(c->count[BURST_OK], 30, "served by B") || !ASSERT_EQ(served[0], 30, "B"))
		goto out;
	/* B alone now, with a holder it may drain; with force too */
	l[2] = burst_listener(AF_INET, PORT, 1024, 0);
	if (!ASSERT_OK(add(g, l[2], SOCKMIG_ROLE_HOLDER, 0, 1), "register holder") ||
	    !ASSERT_OK(sockmig_member_drain(g, l[1], NULL, &rep), "drain B with a holder"))
		goto out;
	ret = SM_PASS;
out:
	burst_close(c);
	free(c);
	cleanup(g, l, 3);
	return ret;
}

struct waiter {
	int lfd;
	int expect; /* accept until this many, or 1.5 s */
	int accepted;
	int woke;
};

/* A server thread asleep in epoll_wait() on its listener. */
static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	struct epoll_event ev = {.events = EPOLLIN};
	int ep = epoll_create1(EPOLL_CLOEXEC), fd;

	unsigned long long end = burst_now_ms() + 1500, now;

	ev.data.fd = w->lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, w->lfd, &ev);
	while (w->accepted < w->expect && (now = burst_now_ms()) < end) {
		if (epoll_wait(ep, &ev, 1, (int)(end - now)) != 1)
			break;
		w->woke = 1;
		while ((fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
			w->accepted++;
			close(fd);
		}
	}
	close(ep);
	return NULL;
}

/*
 * The missing wake-up (CVE-2026-46015): children migrated at close did not
 * wake the target's epoll waiter. With wake-ups off, what a blocked
 * epoll_wait() sees must match the probe's verdict for this kernel; with
 * them on, sockmig steers one connection of its own to the target, which
 * wakes the waiter on every kernel: it accepts the children and the kick.
 */
static int wake_case(enum sockmig_wake wake, struct waiter *w, struct sockmig_drain_report *rep)
{
	int l[2] = {-1, -1}, ret = SM_FAIL;
	struct sockmig_group *g = NULL;
	struct burst *c = calloc(1, sizeof(*c));
	SOCKMIG_OPTS(sockmig_group_opts, go, .wake_targets = wake);
	pthread_t th;

	if (!c)
		return SM_FAIL;
	l[0] = burst_listener(AF_INET, PORT, 1024, 0);
	g = sockmig_group_open(l[0], &go);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
	    !ASSERT_OK(burst_start(c, AF_INET, PORT, 5, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), 5, "connected") ||
	    !ASSERT_TRUE(burst_wait_queue(l[0], 5, 2000), "queued on A"))
		goto out;
	l[1] = burst_listener(AF_INET, PORT, 1024, 0);
	if (!ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_ACTIVE, 2, 1), "register B"))
		goto out;
	w->lfd = l[1];
	pthread_create(&th, NULL, wait_thread, w);
	burst_sleep_ms(100); /* let it fall asleep in epoll_wait */
	if (!ASSERT_OK(sockmig_member_drain(g, l[0], NULL, rep), "drain A")) {
		pthread_join(th, NULL);
		goto out;
	}
	pthread_join(th, NULL);
	printf("wake=%d: waiter woke %d, accepted %d, kicked %u\n", wake, w->woke, w->accepted,
	       rep->kicked);
	ret = SM_PASS;
out:
	burst_close(c);
	free(c);
	cleanup(g, l, 2);
	return ret;
}

SM_TEST(wakeup_blocked_epoll_waiter)
{
	struct sockmig_probe p = {0};
	struct sockmig_drain_report rep;
	struct waiter w = {0};

	if (!ASSERT_OK(sockmig_probe(&p), "probe") || p.migrate_wakeup == SOCKMIG_UNKNOWN)
		return SKIP("the probe could not tell the wake-up behaviour: %s", p.reason);
	/* without sockmig's wake-up: exactly what the probe predicts */
	w.expect = 5;
	if (wake_case(SOCKMIG_WAKE_NEVER, &w, &rep) != SM_PASS ||
	    !ASSERT_EQ(w.woke, p.migrate_wakeup == SOCKMIG_YES, "waiter woke as the probe said") ||
	    !ASSERT_EQ(rep.kicked, 0, "no kick"))
		return SM_FAIL;
	if (p.migrate_wakeup == SOCKMIG_YES)
		printf("this kernel wakes migrated children's target itself (fixed)\n");
	/* with it: woken on every kernel, by one connection steered to B */
	memset(&w, 0, sizeof(w));
	w.expect = 6;
	if (wake_case(SOCKMIG_WAKE_ALWAYS, &w, &rep) != SM_PASS ||
	    !ASSERT_EQ(rep.kicked, 1, "one kick to the one target") ||
	    !ASSERT_EQ(w.woke, 1, "waiter woke") ||
	    !ASSERT_EQ(w.accepted, 5 + 1, "5 migrated children and the kick"))
		return SM_FAIL;
	return SM_PASS;
}

SM_TEST(group_shared_by_two_processes)
{
	int l[2] = {-1, -1}, per[2] = {0}, ret = SM_FAIL, pipes[2][2], status;
	struct sockmig_group *g = NULL;
	struct sockmig_member_info info[4];
	struct stat st;
	char path[512], ch;
	pid_t pid;

	l[0] = burst_listener(AF_INET, PORT, 1024, 0);
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A"))
		goto out;
	snprintf(path, sizeof(path), "%s", sockmig_group_path(g));
	if (pipe(pipes[0]) < 0 || pipe(pipes[1]) < 0)
		goto out;
	pid = fork();
	if (pid == 0) {
		/* the second process: its own listener, its own handle */
		int b = burst_listener(AF_INET, PORT, 1024, 0);
		struct sockmig_group *g2 = sockmig_group_open(b, NULL);
		char ok = g2 && add(g2, b, SOCKMIG_ROLE_ACTIVE, 2, 1) == 0 ? 'y' : 'n';

		if (write(pipes[0][1], &ok, 1) != 1 || read(pipes[1][0], &ok, 1) != 1)
			_exit(1);
		/* the parent counted; B leaves, the group stays for A */
		ok = sockmig_member_leave(g2, b) == 0 ? 0 : 1;
		sockmig_group_close(g2);
		close(b);
		_exit(ok);
	}
	if (!ASSERT_EQ(read(pipes[0][0], &ch, 1), 1, "child ready") ||
	    !ASSERT_EQ(ch, 'y', "child registered B"))
		goto reap;
	if (!ASSERT_EQ(sockmig_members(g, info, 4), 2, "members seen by the parent") ||
	    !ASSERT_TRUE(info[0].pid != info[1].pid, "two registering processes"))
		goto reap;
	/* A drains (no shutdown): every SYN goes to the child's B */
	SOCKMIG_OPTS(sockmig_drain_opts, d, .no_shutdown = true);
	if (!ASSERT_OK(sockmig_member_drain(g, l[0], &d, NULL), "A draining"))
		goto reap;
	/* the child's B is not ours to accept: count its steering instead */
	l[1] = -1;
	{
		struct burst *c = calloc(1, sizeof(*c));

		if (c && burst_start(c, AF_INET, PORT, 50, false) == 0)
			burst_connected(c, 2000);
		per[0] = burst_accept_queue(l[0]);
		if (c)
			burst_close(c);
		free(c);
	}
	if (!ASSERT_EQ(per[0], 0, "A's queue") ||
	    !ASSERT_EQ(sockmig_members(g, info, 4), 2, "members") ||
	    !ASSERT_EQ(info[0].counters.steered + info[1].counters.steered, 50,
		       "steered to the child's B"))
		goto reap;
	ret = SM_PASS;
reap:
	ch = 'x';
	if (write(pipes[1][1], &ch, 1) != 1)
		ret = SM_FAIL;
	waitpid(pid, &status, 0);
	if (!ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child left the group"))
		ret = SM_FAIL;
	/* the last member leaves: the pinned state goes */
	if (!ASSERT_OK(sockmig_member_leave(g, l[0]), "A leaves") ||
	    !ASSERT_TRUE(stat(path, &st) < 0 && errno == ENOENT, "pinned directory removed"))
		ret = SM_FAIL;
out:
	sockmig_group_close(g);
	for (int i = 0; i < 2; i++)
		if (l[i] >= 0)
			close(l[i]);
	return ret;
}

SM_TEST(group_open_bad_input)
{
	int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int plain = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int unbound = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, ret = SM_FAIL;
	int a = burst_listener(AF_INET, PORT, 16, 0),
	    other = burst_listener(AF_INET, PORT + 1, 16, 0);
	int quiet = burst_listener(AF_INET, PORT, 0, 0);
	struct sockaddr_storage ss;
	struct sockmig_group *g = NULL;
	SOCKMIG_OPTS(sockmig_group_opts, tmp, .pin_root = "/tmp/sockmig-not-bpffs");

	setsockopt(unbound, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	bind(plain, (struct sockaddr *)&ss, burst_addr(AF_INET, PORT + 2, &ss));
	if (!ASSERT_TRUE(!sockmig_group_open(udp, NULL) && errno == EINVAL, "UDP socket") ||
	    !ASSERT_TRUE(!sockmig_group_open(plain, NULL) && errno == EINVAL, "no SO_REUSEPORT") ||
	    !ASSERT_TRUE(strstr(sockmig_last_error(), "SO_REUSEPORT"), "message") ||
	    !ASSERT_TRUE(!sockmig_group_open(unbound, NULL) && errno == EINVAL, "unbound") ||
	    !ASSERT_TRUE(!sockmig_group_open(12345, NULL) && errno == EBADF, "bad fd") ||
	    !ASSERT_TRUE(!sockmig_group_open(a, &tmp) && errno == ENOENT,
			 "pin root not on bpffs") ||
	    !ASSERT_TRUE(strstr(sockmig_last_error(), "no BPF filesystem"), "message"))
		goto out;
	printf("%s\n", sockmig_last_error());
	g = sockmig_group_open(a, NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_ERR(sockmig_member_add(g, other, NULL), EXDEV, "member of another group") ||
	    !ASSERT_ERR(sockmig_member_add(g, quiet, NULL), EBUSY, "not listening") ||
	    !ASSERT_ERR(sockmig_member_set(g, 42, NULL), ENOENT, "unknown cookie") ||
	    !ASSERT_ERR(sockmig_member_drain(g, a, NULL, NULL), ENOENT, "drain a non-member"))
		goto out;
	ret = SM_PASS;
out:
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	close(udp);
	close(plain);
	close(unbound);
	close(a);
	close(other);
	close(quiet);
	return ret;
}

/* A listener bound to a device is in a kernel reuseport group of its own;
 * a sockmig group is named by address and port only: refused, never mixed
 * with the unbound listeners' group. */
SM_TEST(group_refuses_device_bound_listener)
{
	int a = burst_listener(AF_INET, PORT, 16, 0), one = 1, ret = SM_FAIL;
	int d = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockmig_group *g = NULL, *gd;
	struct sockaddr_storage ss;

	if (!ASSERT_OK(setsockopt(d, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), "reuseport") ||
	    !ASSERT_OK(setsockopt(d, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3), "SO_BINDTODEVICE lo") ||
	    !ASSERT_OK(bind(d, (struct sockaddr *)&ss, burst_addr(AF_INET, PORT, &ss)), "bind") ||
	    !ASSERT_OK(listen(d, 16), "listen"))
		goto out;
	g = sockmig_group_open(a, NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_ERR(sockmig_member_add(g, d, NULL), EOPNOTSUPP, "device-bound member"))
		goto out;
	printf("%s\n", sockmig_last_error());
	gd = sockmig_group_open(d, NULL);
	if (gd)
		sockmig_group_close(gd);
	if (!ASSERT_TRUE(!gd && errno == EOPNOTSUPP, "group of a device-bound listener") ||
	    !ASSERT_TRUE(strstr(sockmig_last_error(), "SO_BINDTODEVICE"), "message"))
		goto out;
	ret = SM_PASS;
out:
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	close(a);
	close(d);
	return ret;
}

SM_TEST(group_open_unprivileged_leaves_nothing)
{
	struct sockmig_group *g;
	struct stat st;
	int a = burst_listener(AF_INET, PORT, 16, 0);
	bool existed = stat(SOCKMIG_PIN_ROOT, &st) == 0;

	if (!ASSERT_OK(setresgid(65534, 65534, 65534), "setresgid") ||
	    !ASSERT_OK(setresuid(65534, 65534, 65534), "setresuid nobody"))
		return SM_FAIL;
	g = sockmig_group_open(a, NULL);
	printf("as nobody: %s\n", sockmig_last_error());
	if (!ASSERT_TRUE(!g && errno == EPERM, "refused with EPERM"))
		return SM_FAIL;
	if (!existed && !ASSERT_TRUE(stat(SOCKMIG_PIN_ROOT, &st) < 0, "no directory left"))
		return SM_FAIL;
	return SM_PASS;
}

SM_TEST(group_open_by_name_and_list)
{
	int a = burst_listener(AF_INET6, PORT, 16, 0), ret = SM_FAIL, n;
	struct sockmig_group *g = NULL, *h = NULL;
	char names[8][SOCKMIG_NAME_MAX], name[SOCKMIG_NAME_MAX];
	struct sockmig_member_info info[2];
	struct stat st;

	g = sockmig_group_open(a, NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, a, SOCKMIG_ROLE_ACTIVE, 7, 1), "register"))
		goto out;
	/* the name spells netns, family, address and port */
	if (!ASSERT_OK(stat("/proc/self/ns/net", &st), "netns") ||
	    !ASSERT_OK(sockmig_group_name_for(AF_INET6, &in6addr_loopback, PORT, st.st_ino, name,
					      sizeof(name)),
		       "name_for") ||
	    !ASSERT_TRUE(strcmp(name, sockmig_group_name(g)) == 0, "same name"))
		goto out;
	n = sockmig_group_list(NULL, names, 8);
	if (!ASSERT_GT(n, 0, "groups listed"))
		goto out;
	h = sockmig_group_open_name(name, NULL);
	if (!ASSERT_TRUE(h, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_members(h, info, 2), 1, "members seen by name") ||
	    !ASSERT_EQ(info[0].generation, 7, "generation") ||
	    !ASSERT_EQ(info[0].cookie, sockmig_cookie(a), "cookie"))
		goto out;
	if (!ASSERT_TRUE(!sockmig_group_open_name("1-tcp4-127_0_0_1-9", NULL) && errno == ENOENT,
			 "missing group") ||
	    !ASSERT_TRUE(!sockmig_group_open_name("../etc", NULL) && errno == EINVAL, "bad name"))
		goto out;
	ret = SM_PASS;
out:
	sockmig_group_close(h);
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	close(a);
	return ret;
}

/*
 * No registered target: A (registered) closes with 20 children queued while
 * the only other listener, B, is not registered (a new server generation
 * that sockmig attach has not seen yet). The policy leaves the choice to
 * the kernel's hash over the live listeners: B gets all 20. With no live
 * listener left at all, the kernel fails them (the baseline of this case).
 */
static int deferred_case(bool with_b, int *served, struct sockmig_counters *ca,
			 struct sockmig_netstat *d)
{
	int l[2] = {-1, -1}, ret = SM_FAIL;
	struct sockmig_group *g = NULL;
	struct sockmig_netstat ns0, ns1;
	struct burst *c = calloc(1, sizeof(*c));
	uint64_t cookie;

	if (!c)
		return SM_FAIL;
	l[0] = burst_listener(AF_INET, PORT, 1024, 0);
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
	    !ASSERT_OK(burst_start(c, AF_INET, PORT, 20, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), 20, "connected") ||
	    !ASSERT_TRUE(burst_wait_queue(l[0], 20, 2000), "queued on A"))
		goto out;
	if (with_b)
		l[1] = burst_listener(AF_INET, PORT, 1024, 0); /* not registered */
	cookie = sockmig_cookie(l[0]);
	sockmig_netstat_read(&ns0);
	close(l[0]);
	l[0] = -1;
	burst_serve(c, &l[1], with_b ? 1 : 0, NULL, 2000);
	sockmig_netstat_read(&ns1);
	sockmig_netstat_delta(&ns0, &ns1, d);
	*served = c->count[BURST_OK];
	if (!ASSERT_OK(sockmig_counters_read(g, cookie, ca), "counters of A"))
		goto out;
	burst_print(c, with_b ? "unregistered B" : "nobody left");
	ret = SM_PASS;
out:
	burst_close(c);
	free(c);
	cleanup(g, l, 2);
	return ret;
}

SM_TEST(policy_defers_to_kernel_without_registered_target)
{
	struct sockmig_counters ca;
	struct sockmig_netstat d;
	int served;

	/* nobody left: the kernel fails them without asking the program */
	if (deferred_case(false, &served, &ca, &d) != SM_PASS ||
	    !ASSERT_EQ(served, 0, "served with nobody left") ||
	    !ASSERT_EQ(ca.deferred, 0, "deferred (the program did not run)") ||
	    !ASSERT_EQ(d.migrate_failure, 20, "TCPMigrateReqFailure"))
		return SM_FAIL;
	if (deferred_case(true, &served, &ca, &d) != SM_PASS ||
	    !ASSERT_EQ(served, 20, "served by the unregistered listener") ||
	    !ASSERT_EQ(ca.deferred, 20, "deferred") ||
	    !ASSERT_EQ(ca.cancel_mismatch, 0, "cancelled") ||
	    !ASSERT_EQ(d.migrate_success, 20, "TCPMigrateReqSuccess"))
		return SM_FAIL;
	return SM_PASS;
}

/*
 * sockmig_member_set() with only a role or a weight keeps the generation:
 * A (gen 1) has 30 children queued; B and C are gen 2; C's weight changes
 * and A is marked draining by cookie, then A closes: its children go to
 * B and C, the newest generation, and both generations read back as set.
 */
SM_TEST(policy_member_set_keeps_generation)
{
	int l[3] = {-1, -1, -1}, per[3] = {0}, ret = SM_FAIL, fd;
	struct sockmig_group *g = NULL;
	struct sockmig_member_info info[3];
	struct burst *c = calloc(1, sizeof(*c));
	SOCKMIG_OPTS(sockmig_member_opts, w3, .weight = 3);

	if (!c)
		return SM_FAIL;
	for (int i = 0; i < 3; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A (gen 1)"))
		goto out;
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT, 30, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), 30, "connected") ||
	    !ASSERT_TRUE(burst_wait_queue(l[0], 30, 2000), "queued on A"))
		goto out;
	if (!ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_ACTIVE, 2, 1), "register B (gen 2)") ||
	    !ASSERT_OK(add(g, l[2], SOCKMIG_ROLE_ACTIVE, 2, 1), "register C (gen 2)") ||
	    !ASSERT_OK(sockmig_member_set(g, sockmig_cookie(l[2]), &w3), "C weight 3") ||
	    !ASSERT_OK(set_role(g, l[0], SOCKMIG_ROLE_DRAINING), "A draining"))
		goto out;
	if (!ASSERT_EQ(sockmig_members(g, info, 3), 3, "members"))
		goto out;
	for (int i = 0; i < 3; i++) {
		int k = info[i].cookie == sockmig_cookie(l[0])	 ? 0
			: info[i].cookie == sockmig_cookie(l[1]) ? 1
								 : 2;

		printf("member %d: role %s, generation %u, weight %u\n", k,
		       sockmig_role_str(info[i].role), info[i].generation, info[i].weight);
		if (!ASSERT_EQ(info[i].generation, k == 0 ? 1 : 2, "generation kept") ||
		    !ASSERT_EQ(info[i].weight, k == 2 ? 3 : 1, "weight"))
			goto out;
	}
	close(l[0]);
	l[0] = -1;
	for (int i = 1; i < 3; i++) {
		per[i] = burst_accept_queue(l[i]);
		while ((fd = accept4(l[i], NULL, NULL, SOCK_CLOEXEC)) >= 0)
			close(fd);
	}
	printf("after A closed: B %d, C %d\n", per[1], per[2]);
	if (!ASSERT_EQ(per[1] + per[2], 30, "B + C") ||
	    !ASSERT_GT(per[2], 0, "C (newest) got some"))
		goto out;
	ret = SM_PASS;
out:
	burst_close(c);
	free(c);
	cleanup(g, l, 3);
	return ret;
}

/* A bpffs of the case's own, mounted with @opts in a private mount
 * namespace (the machine's /sys/fs/bpf is not touched); its path in @dir. */
static bool own_bpffs(char *dir, const char *opts)
{
	strcpy(dir, "/tmp/sockmig-bpffs-XXXXXX");
	if (!ASSERT_OK(unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)") ||
	    !ASSERT_OK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / rprivate") ||
	    !ASSERT_TRUE(mkdtemp(dir), "mkdtemp"))
		return false;
	if (!ASSERT_OK(mount("bpf", dir, "bpf", 0, opts), "mount bpffs")) {
		rmdir(dir);
		return false;
	}
	return true;
}

static void own_bpffs_gone(const char *dir)
{
	umount2(dir, MNT_DETACH);
	rmdir(dir);
}

/* Run @fn(@arg) as uid 65534 in a child; its exit status (0 for success). */
static int as_nobody(int (*fn)(const char *), const char *arg)
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
		if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
			_exit(2);
		_exit(fn(arg) ? 1 : 0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static int squat(const char *root)
{
	return mkdir(root, 0777) < 0 ? -errno : 0;
}

/*
 * bpffs mounted 1777 (as scripts/deps used to): uid 65534 makes the pin
 * root first. Root must still open a group there (the squatter's directory
 * moved aside, a private root in its place) and the policy must steer; the
 * root stays when the last group goes, so that the window does not reopen.
 */
SM_TEST(policy_pin_root_squatted_by_other_uid)
{
	int l[2] = {-1, -1}, per[2] = {0}, ret = SM_FAIL, foreign = 0;
	char dir[64], root[128];
	struct sockmig_group *g = NULL;
	struct dirent *de;
	struct stat st;
	DIR *d;
	SOCKMIG_OPTS(sockmig_group_opts, go, .pin_root = root);

	if (!own_bpffs(dir, "mode=1777"))
		return SM_FAIL;
	snprintf(root, sizeof(root), "%s/sockmig", dir);
	if (!ASSERT_EQ(as_nobody(squat, root), 0, "uid 65534 makes the pin root") ||
	    !ASSERT_OK(stat(root, &st), "stat root") || !ASSERT_EQ(st.st_uid, 65534, "its owner"))
		goto out;
	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], &go);
	if (!ASSERT_TRUE(g, sockmig_last_error()))
		goto out;
	if (!ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
	    !ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_DRAINING, 1, 1), "register B draining") ||
	    !ASSERT_EQ(burst(AF_INET, l, 2, 100, per), 100, "accepted") ||
	    !ASSERT_EQ(per[0], 100, "A (the policy steers)") ||
	    !ASSERT_EQ(steered(g, l[0]), 100, "A steered"))
		goto out;
	if (!ASSERT_OK(lstat(root, &st), "stat root") || !ASSERT_EQ(st.st_uid, 0, "root's owner") ||
	    !ASSERT_EQ(st.st_mode & 07777, 0700, "root's mode"))
		goto out;
	d = opendir(dir);
	while (d && (de = readdir(d)))
		if (strncmp(de->d_name, "sockmig-foreign-65534-", 22) == 0)
			foreign++;
	if (d)
		closedir(d);
	if (!ASSERT_EQ(foreign, 1, "the squatter's directory, moved aside"))
		goto out;
	/* the last group goes: the root stays, and nobody cannot take it */
	sockmig_group_destroy(g);
	sockmig_group_close(g);
	g = NULL;
	if (!ASSERT_OK(lstat(root, &st), "root after the last group") ||
	    !ASSERT_EQ(st.st_uid, 0, "still root's") ||
	    !ASSERT_EQ(as_nobody(squat, root), 1, "uid 65534 cannot make it again"))
		goto out;
	ret = SM_PASS;
out:
	cleanup(g, l, 2);
	own_bpffs_gone(dir);
	return ret;
}

/* Slot of member @fd, -1 when it is not one. */
static int slot_of(struct sockmig_group *g, int fd)
{
	struct sockmig_member_info info[8];
	int n = sockmig_members(g, info, 8);

	for (int i = 0; i < n && i < 8; i++)
		if (info[i].cookie == sockmig_cookie(fd))
			return (int)info[i].slot;
	return -1;
}

/*
 * SYN counters belong to the member, not to its slot: A gets 50 SYNs,
 * closes without leaving (the kernel frees its slot) and stays registered;
 * C takes A's slot and gets 40 (B is draining). A keeps 50 and C has 40.
 */
SM_TEST(policy_syn_counters_survive_slot_reuse)
{
	int l[3] = {-1, -1, -1}, per[3] = {0}, ret = SM_FAIL, slot_a;
	struct sockmig_counters ca = {0}, cc = {0};
	struct sockmig_group *g = NULL;
	uint64_t cookie_a;

	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
	    !ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_DRAINING, 1, 1), "register B (draining)") ||
	    !ASSERT_EQ(burst(AF_INET, l, 2, 50, per), 50, "accepted") ||
	    !ASSERT_EQ(per[0], 50, "all on A"))
		goto out;
	cookie_a = sockmig_cookie(l[0]);
	slot_a = slot_of(g, l[0]);
	close(l[0]);
	l[0] = -1;
	if (!ASSERT_OK(l[2] = burst_listener(AF_INET, PORT, 1024, 0), "listener C") ||
	    !ASSERT_OK(add(g, l[2], SOCKMIG_ROLE_ACTIVE, 2, 1), "register C") ||
	    !ASSERT_EQ(slot_of(g, l[2]), slot_a, "C in A's slot"))
		goto out;
	memset(per, 0, sizeof(per));
	if (!ASSERT_EQ(burst(AF_INET, &l[1], 2, 40, &per[1]), 40, "accepted") ||
	    !ASSERT_EQ(per[2], 40, "all on C"))
		goto out;
	if (!ASSERT_OK(sockmig_counters_read(g, cookie_a, &ca), "A's counters") ||
	    !ASSERT_OK(sockmig_counters_read(g, sockmig_cookie(l[2]), &cc), "C's counters"))
		goto out;
	printf("slot %d: A steered %llu, C steered %llu\n", slot_a, (unsigned long long)ca.steered,
	       (unsigned long long)cc.steered);
	if (!ASSERT_EQ(ca.steered, 50, "A keeps its 50") ||
	    !ASSERT_EQ(cc.steered, 40, "C has its 40") || !ASSERT_EQ(steered(g, l[1]), 0, "B"))
		goto out;
	ret = SM_PASS;
out:
	cleanup(g, l, 3);
	return ret;
}

/*
 * A wake-up connection goes to the member asked for, whatever the hash
 * says, and counts as kicked, not steered: 20 kicks of B, with A and B
 * active, put 20 connections in B's queue and none in A's.
 */
SM_TEST(policy_kick_goes_to_its_member)
{
	int l[2] = {-1, -1}, ret = SM_FAIL;
	struct sockmig_counters ca = {0}, cb = {0};
	struct sockmig_group *g = NULL;

	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
	    !ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_ACTIVE, 1, 1), "register B"))
		goto out;
	for (int i = 0; i < 20; i++)
		if (!ASSERT_OK(sockmig_member_kick(g, sockmig_cookie(l[1])), sockmig_last_error()))
			goto out;
	if (!ASSERT_TRUE(burst_wait_queue(l[1], 20, 2000), "20 queued on B") ||
	    !ASSERT_EQ(burst_accept_queue(l[1]), 20, "exactly 20 on B") ||
	    !ASSERT_EQ(burst_accept_queue(l[0]), 0, "none on A") ||
	    !ASSERT_OK(sockmig_counters_read(g, sockmig_cookie(l[0]), &ca), "A's counters") ||
	    !ASSERT_OK(sockmig_counters_read(g, sockmig_cookie(l[1]), &cb), "B's counters"))
		goto out;
	printf("A kicked %llu steered %llu, B kicked %llu steered %llu\n",
	       (unsigned long long)ca.kicked, (unsigned long long)ca.steered,
	       (unsigned long long)cb.kicked, (unsigned long long)cb.steered);
	if (!ASSERT_EQ(cb.kicked, 20, "B kicked") || !ASSERT_EQ(cb.steered, 0, "B steered") ||
	    !ASSERT_EQ(ca.kicked + ca.steered, 0, "A"))
		goto out;
	ret = SM_PASS;
out:
	cleanup(g, l, 2);
	return ret;
}

/*
 * Part of a group's pins removed (here the selection table): the next open
 * makes new maps for what is missing, and the program it attaches must
 * read those, not the old ones. A and B active; the table pins go; a new
 * handle marks B draining: B must get no SYN.
 */
SM_TEST(policy_partly_removed_pins)
{
	int l[2] = {-1, -1}, per[2] = {0}, ret = SM_FAIL;
	struct sockmig_group *g = NULL, *g2 = NULL;
	char pin[512];

	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
	    !ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_ACTIVE, 1, 1), "register B"))
		goto out;
	snprintf(pin, sizeof(pin), "%s/table", sockmig_group_path(g));
	if (!ASSERT_OK(unlink(pin), "unlink table"))
		goto out;
	snprintf(pin, sizeof(pin), "%s/tabidx", sockmig_group_path(g));
	if (!ASSERT_OK(unlink(pin), "unlink tabidx"))
		goto out;
	g2 = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g2, sockmig_last_error()) ||
	    !ASSERT_OK(add(g2, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A again") ||
	    !ASSERT_OK(set_role(g2, l[1], SOCKMIG_ROLE_DRAINING), "B draining"))
		goto out;
	if (!ASSERT_EQ(burst(AF_INET, l, 2, 200, per), 200, "accepted"))
		goto out;
	printf("A %d, B (draining) %d\n", per[0], per[1]);
	if (!ASSERT_EQ(per[1], 0, "B draining") || !ASSERT_EQ(steered(g2, l[0]), 200, "A steered"))
		goto out;
	ret = SM_PASS;
out:
	sockmig_group_close(g);
	cleanup(g2, l, 2);
	return ret;
}

/*
 * Generations are start times in clock ticks: they wrap after 497 days of
 * uptime. A (closing) and B have generation 0xffffff00, C has 5, taken
 * after the wrap: A's 30 children must go to C, the newest.
 */
SM_TEST(policy_generation_wrap)
{
	int l[3] = {-1, -1, -1}, per[3] = {0}, ret = SM_FAIL, fd;
	struct sockmig_group *g = NULL;
	struct burst *c = calloc(1, sizeof(*c));

	if (!c)
		return SM_FAIL;
	for (int i = 0; i < 3; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 0xffffff00u, 1), "register A") ||
	    !ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_DRAINING, 0xffffff00u, 1), "register B"))
		goto out;
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT, 30, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), 30, "connected") ||
	    !ASSERT_TRUE(burst_wait_queue(l[0], 30, 2000), "queued on A"))
		goto out;
	if (!ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_ACTIVE, 0xffffff00u, 1), "B active") ||
	    !ASSERT_OK(add(g, l[2], SOCKMIG_ROLE_ACTIVE, 5, 1), "register C (after the wrap)"))
		goto out;
	close(l[0]);
	l[0] = -1;
	for (int i = 1; i < 3; i++) {
		per[i] = burst_accept_queue(l[i]);
		while ((fd = accept4(l[i], NULL, NULL, SOCK_CLOEXEC)) >= 0)
			close(fd);
	}
	printf("after A closed: B (0xffffff00) %d, C (5) %d\n", per[1], per[2]);
	if (!ASSERT_EQ(per[1], 0, "B") || !ASSERT_EQ(per[2], 30, "C, the newest"))
		goto out;
	ret = SM_PASS;
out:
	burst_close(c);
	free(c);
	cleanup(g, l, 3);
	return ret;
}

static int wait_byte(int fd)
{
	char ch;

	return read(fd, &ch, 1) == 1 ? 0 : 1;
}

/* A child that waits until pipe @p is closed; its pid. */
static pid_t idle_child(const int *p)
{
	pid_t pid = fork();

	if (pid == 0) {
		close(p[1]);
		_exit(wait_byte(p[0]));
	}
	return pid;
}

/* In a new pid namespace, as its pid 1, with its own /proc. */
static int pid_reuse_body(void)
{
	int l[2] = {-1, -1}, p[2], ret = SM_FAIL, status, n;
	struct sockmig_group *g = NULL, *g2 = NULL;
	struct sockmig_member_info info[4];
	pid_t x, y;
	FILE *f;

	if (!ASSERT_OK(mount("proc", "/proc", "proc", 0, NULL), "mount /proc") ||
	    !ASSERT_OK(pipe(p), "pipe"))
		return SM_FAIL;
	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	/* X first: the group's open may run a thread (the wake-up check),
	 * which takes a pid of the namespace too */
	x = idle_child(p);
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) || !ASSERT_EQ(x, 2, "X is pid 2"))
		goto out;
	SOCKMIG_OPTS(sockmig_member_opts, ox, .pid = (uint32_t)x);
	if (!ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A (ours)") ||
	    !ASSERT_OK(sockmig_member_add(g, l[1], &ox), "register B (owned by X)"))
		goto out;
	/* B stops listening and X exits; Y gets X's pid */
	close(l[1]);
	l[1] = -1;
	kill(x, SIGKILL);
	waitpid(x, &status, 0);
	f = fopen("/proc/sys/kernel/ns_last_pid", "w");
	if (!ASSERT_TRUE(f, "ns_last_pid"))
		goto out;
	fprintf(f, "1");
	fclose(f);
	burst_sleep_ms(30); /* start times count clock ticks (10 ms) */
	y = idle_child(p);
	if (!ASSERT_EQ(y, x, "Y got X's pid"))
		goto out;
	n = sockmig_members(g, info, 4);
	if (!ASSERT_EQ(n, 2, "members before the next open"))
		goto out;
	/* the next open forgets members whose owner is gone */
	g2 = sockmig_group_open(l[0], NULL);
	n = sockmig_members(g, info, 4);
	printf("members after the open: %d\n", n);
	if (!ASSERT_TRUE(g2, sockmig_last_error()) ||
	    !ASSERT_EQ(n, 1, "B forgotten although its pid lives") ||
	    !ASSERT_EQ(info[0].cookie, sockmig_cookie(l[0]), "A kept"))
		goto out;
	ret = SM_PASS;
out:
	close(p[1]); /* the idle children exit */
	while (wait(&status) > 0)
		;
	sockmig_group_close(g2);
	cleanup(g, l, 2);
	return ret;
}

/*
 * PID reuse: a member that stopped listening is forgotten when its owner
 * is gone, also when its pid has been given to another process since.
 */
SM_TEST(policy_stale_member_pid_reuse)
{
	int status = 0;
	pid_t pid;

	if (!ASSERT_OK(unshare(CLONE_NEWPID | CLONE_NEWNS), "unshare(CLONE_NEWPID)") ||
	    !ASSERT_OK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / rprivate"))
		return SM_FAIL;
	pid = fork();
	if (pid == 0)
		_exit(pid_reuse_body());
	if (!ASSERT_TRUE(pid > 0 && waitpid(pid, &status, 0) == pid, "pid 1 of the namespace"))
		return SM_FAIL;
	return WIFEXITED(status) ? WEXITSTATUS(status) : SM_FAIL;
}

/*
 * A member_add that fails after taking a slot (the listener has
 * SO_LOCK_FILTER: the policy cannot be attached through it) leaves
 * nothing: no slot in the socket array, no member.
 */
SM_TEST(policy_failed_add_frees_slot)
{
	int l[2] = {-1, -1}, ret = SM_FAIL, one = 1, mfd = -1, held = 0;
	struct sockmig_group *g = NULL;
	struct sockmig_member_info info[4];
	uint32_t key, *prev = NULL;
	uint64_t cookie, val;
	char pin[512];

	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
	    !ASSERT_OK(setsockopt(l[1], SOL_SOCKET, SO_LOCK_FILTER, &one, sizeof(one)),
		       "SO_LOCK_FILTER on B") ||
	    !ASSERT_ERR(add(g, l[1], SOCKMIG_ROLE_ACTIVE, 1, 1), EPERM, "register B"))
		goto out;
	printf("B: %s\n", sockmig_last_error());
	cookie = sockmig_cookie(l[1]);
	snprintf(pin, sizeof(pin), "%s/members", sockmig_group_path(g));
	mfd = bpf_obj_get(pin);
	if (!ASSERT_OK(mfd, "members map"))
		goto out;
	for (int i = 0; i < 4096 && bpf_map_get_next_key(mfd, prev, &key) == 0; i++) {
		if (bpf_map_lookup_elem(mfd, &key, &val) == 0 && val == cookie)
			held++;
		prev = &key;
	}
	if (!ASSERT_EQ(held, 0, "slots holding B") ||
	    !ASSERT_EQ(sockmig_members(g, info, 4), 1, "members") ||
	    !ASSERT_EQ(info[0].cookie, sockmig_cookie(l[0]), "A"))
		goto out;
	ret = SM_PASS;
out:
	if (mfd >= 0)
		close(mfd);
	cleanup(g, l, 2);
	return ret;
}

static int warnings;

static int count_warnings(enum sockmig_log_level level, const char *fmt, va_list ap)
{
	(void)fmt;
	(void)ap;
	if (level == SOCKMIG_WARN)
		warnings++;
	return 0;
}

/*
 * @nl active listeners in one group, all registered: bursts of 2,048
 * clients, 24 per listener in all, every one accepted; every listener must
 * get at least one. Sets *unslotted to the members beyond the slots.
 */
static int many_listeners(int nl, int *unslotted)
{
	struct rlimit rl = {nl + 8192, nl + 8192};
	struct sockmig_group *g = NULL;
	struct sockmig_member_info *info = calloc((size_t)nl, sizeof(*info));
	int *l = calloc((size_t)nl, sizeof(*l)), *per = calloc((size_t)nl, sizeof(*per));
	int ret = SM_FAIL, total = 0, want = 24 * nl, min = -1, n;

	if (!info || !l || !per || !ASSERT_OK(setrlimit(RLIMIT_NOFILE, &rl), "RLIMIT_NOFILE"))
		goto out;
	for (int i = 0; i < nl; i++)
		l[i] = -1;
	for (int i = 0; i < nl; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 128, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()))
		goto out;
	warnings = 0;
	sockmig_set_print(count_warnings);
	for (int i = 0; i < nl; i++)
		if (!ASSERT_OK(add(g, l[i], SOCKMIG_ROLE_ACTIVE, 1, 1), "register"))
			goto out;
	sockmig_set_print(NULL);
	n = sockmig_members(g, info, nl);
	*unslotted = 0;
	for (int i = 0; i < n && i < nl; i++)
		*unslotted += info[i].slot == UINT32_MAX;
	if (!ASSERT_EQ(n, nl, "members"))
		goto out;
	while (total < want) {
		int b = want - total < 2048 ? want - total : 2048;

		if (!ASSERT_EQ(burst(AF_INET, l, nl, b, per), b, "burst accepted"))
			goto out;
		total += b;
	}
	for (int i = 0; i < nl; i++)
		if (min < 0 || per[i] < min)
			min = per[i];
	printf("%d listeners (%d without a slot, %d warning(s)): %d connections, fewest on one "
	       "listener %d\n",
	       nl, *unslotted, warnings, total, min);
	if (!ASSERT_EQ(total, want, "accepted") || !ASSERT_GT(min, 0, "fewest SYNs on a listener"))
		goto out;
	ret = SM_PASS;
out:
	sockmig_set_print(NULL);
	if (l)
		cleanup(g, l, nl);
	free(info);
	free(l);
	free(per);
	return ret;
}

/* 1,024 listeners fit: each has a slot, and the policy steers to every one. */
SM_TEST(policy_1024_members)
{
	int unslotted = -1;

	if (many_listeners(1024, &unslotted) != SM_PASS ||
	    !ASSERT_EQ(unslotted, 0, "members without a slot") ||
	    !ASSERT_EQ(warnings, 0, "warnings"))
		return SM_FAIL;
	return SM_PASS;
}

/*
 * 1,100 listeners: the 76 beyond the slots are registered without one, one
 * warning says so, and new SYNs go by the kernel's hash: none starves.
 */
SM_TEST(policy_beyond_limit_degrades)
{
	int unslotted = -1;

	if (many_listeners(1100, &unslotted) != SM_PASS ||
	    !ASSERT_EQ(unslotted, 1100 - 1024, "members without a slot") ||
	    !ASSERT_EQ(warnings, 1, "warnings"))
		return SM_FAIL;
	return SM_PASS;
}

/*
 * Run only by runner_left_clean_exact (through SOCKMIG_TEST_LEAK_FIXTURE):
 * leaves a group pinned and its namespace alive, held by a process that
 * escaped the case's process group; its pid goes to the file named there.
 */
SM_TEST(runner_leak_fixture)
{
	const char *pidfile = getenv("SOCKMIG_TEST_LEAK_FIXTURE");
	struct sockmig_group *g;
	pid_t pid;
	FILE *f;
	int a;

	if (!pidfile)
		return SKIP("runs only under runner_left_clean_exact");
	a = burst_listener(AF_INET, PORT, 16, 0);
	g = sockmig_group_open(a, NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, a, SOCKMIG_ROLE_ACTIVE, 1, 1), "register"))
		return SM_FAIL;
	pid = fork();
	if (pid == 0) {
		setsid();
		sleep(10); /* bounded: the parent case kills it first */
		_exit(0);
	}
	f = fopen(pidfile, "w");
	if (!f) {
		printf("cannot write %s: %s\n", pidfile, strerror(errno));
		return SM_FAIL;
	}
	fprintf(f, "%d\n", (int)pid);
	fclose(f);
	return SM_PASS;
}

/*
 * The runner's bpffs_left_clean check: a group left by a case must be
 * found even while the case's namespace is still alive.
 */
SM_TEST(runner_left_clean_exact)
{
	char pidfile[] = "/tmp/sockmig-leak-XXXXXX", out[8192];
	int fd = mkstemp(pidfile), p[2], status = -1, ret = SM_FAIL, leaker = 0;
	ssize_t n, len = 0;
	pid_t pid;
	FILE *f;

	if (!ASSERT_OK(fd, "mkstemp") || !ASSERT_OK(pipe2(p, O_CLOEXEC), "pipe"))
		return SM_FAIL;
	close(fd);
	pid = fork();
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		dup2(p[1], STDERR_FILENO);
		setenv("SOCKMIG_TEST_LEAK_FIXTURE", pidfile, 1);
		execl("/proc/self/exe", "test_sockmig", "-t", "10", "runner_leak_fixture",
		      (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	while (len < (ssize_t)sizeof(out) - 1 &&
	       (n = read(p[0], out + len, sizeof(out) - 1 - (size_t)len)) > 0)
		len += n;
	out[len] = '\0';
	close(p[0]);
	waitpid(pid, &status, 0);
	f = fopen(pidfile, "r");
	if (f && fscanf(f, "%d", &leaker) == 1 && leaker > 0)
		kill(leaker, SIGKILL);
	if (f)
		fclose(f);
	unlink(pidfile);
	printf("%s", out);
	if (!ASSERT_TRUE(leaker > 0, "the fixture left a process") ||
	    !ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1, "the run failed") ||
	    !ASSERT_TRUE(strstr(out, "FAIL bpffs_left_clean"), "bpffs_left_clean failed") ||
	    !ASSERT_TRUE(strstr(out, "by runner_leak_fixture"), "names the case"))
		goto out;
	ret = SM_PASS;
out:
	return ret;
}
