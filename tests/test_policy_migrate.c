// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The policy at close: where queued children go, drain and its refusal, the wake-up. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define PORT TU_BURST_PORT

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
	    !ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A"))
		goto out;
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT, 40, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), 40, "connected") ||
	    !ASSERT_TRUE(burst_wait_queue(l[0], 40, 2000), "queued on A"))
		goto out;
	for (int i = 1; i < 4; i++) {
		l[i] = burst_listener(AF_INET, PORT, 1024, 0);
		if (!ASSERT_OK(tu_add(g, l[i], SOCKMIG_ROLE_ACTIVE, i == 1 ? 1 : 2, 1), "register"))
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
	tu_cleanup(g, l, 4);
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
	    !ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
	    !ASSERT_OK(tu_add(g, l[1], SOCKMIG_ROLE_HOLDER, 0, 1), "register holder"))
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
	tu_cleanup(g, l, 2);
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
	    !ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A"))
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
	if (!ASSERT_OK(tu_add(g, l[1], SOCKMIG_ROLE_ACTIVE, 2, 1), "register B"))
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
	if (!ASSERT_OK(tu_add(g, l[2], SOCKMIG_ROLE_HOLDER, 0, 1), "register holder") ||
	    !ASSERT_OK(sockmig_member_drain(g, l[1], NULL, &rep), "drain B with a holder"))
		goto out;
	ret = SM_PASS;
out:
	burst_close(c);
	free(c);
	tu_cleanup(g, l, 3);
	return ret;
}

struct waiter {
	int lfd;
	int expect; /* accept until this many, or 1.5 s */
	int accepted;
	int woke;
	_Atomic pid_t tid;
};

/* A server thread asleep in epoll_wait() on its listener. */
static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	struct epoll_event ev = {.events = EPOLLIN};
	int ep = epoll_create1(EPOLL_CLOEXEC), fd;

	unsigned long long end = burst_now_ms() + 1500, now;

	w->tid = gettid();
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

/* Whether thread @tid of this process is blocked in an epoll wait: the
 * number of the call it sleeps in, from /proc (x86-64 and arm64). */
static bool in_epoll_wait(pid_t tid)
{
	char path[64], buf[32] = "";
	long nr = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	f = fopen(path, "re");
	if (f) {
		if (fgets(buf, sizeof(buf), f))
			nr = strtol(buf, NULL, 10);
		fclose(f);
	}
	return nr == SYS_epoll_pwait
#ifdef SYS_epoll_wait
	       || nr == SYS_epoll_wait
#endif
#ifdef SYS_epoll_pwait2
	       || nr == SYS_epoll_pwait2
#endif
		;
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
	    !ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
	    !ASSERT_OK(burst_start(c, AF_INET, PORT, 5, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), 5, "connected") ||
	    !ASSERT_TRUE(burst_wait_queue(l[0], 5, 2000), "queued on A"))
		goto out;
	l[1] = burst_listener(AF_INET, PORT, 1024, 0);
	if (!ASSERT_OK(tu_add(g, l[1], SOCKMIG_ROLE_ACTIVE, 2, 1), "register B"))
		goto out;
	w->lfd = l[1];
	pthread_create(&th, NULL, wait_thread, w);
	/* drain once it sleeps in epoll_wait (what the wake-up is about) */
	for (int t = 0; t < 200 && !(w->tid && in_epoll_wait(w->tid)); t++)
		burst_sleep_ms(5);
	if (!ASSERT_TRUE(w->tid && in_epoll_wait(w->tid), "the waiter asleep in epoll_wait") ||
	    !ASSERT_OK(sockmig_member_drain(g, l[0], NULL, rep), "drain A")) {
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
	tu_cleanup(g, l, 2);
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
	    !ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
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
	tu_cleanup(g, l, 2);
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
	    !ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_ACTIVE, 0xffffff00u, 1), "register A") ||
	    !ASSERT_OK(tu_add(g, l[1], SOCKMIG_ROLE_DRAINING, 0xffffff00u, 1), "register B"))
		goto out;
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT, 30, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), 30, "connected") ||
	    !ASSERT_TRUE(burst_wait_queue(l[0], 30, 2000), "queued on A"))
		goto out;
	if (!ASSERT_OK(tu_add(g, l[1], SOCKMIG_ROLE_ACTIVE, 0xffffff00u, 1), "B active") ||
	    !ASSERT_OK(tu_add(g, l[2], SOCKMIG_ROLE_ACTIVE, 5, 1), "register C (after the wrap)"))
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
	tu_cleanup(g, l, 3);
	return ret;
}
