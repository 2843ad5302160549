// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * One drain: sockmig_member_drain() with the legacy drain's options (an
 * accept callback, the hand-off, the wake-up of its receivers) in a
 * legacy group, one report for either policy, the check that no change of
 * role leaves a group without an active member (sockmig_member_set() and a
 * registration again make it as the drain does), and the wake-up decision
 * taken when the group opens, not in the drain. Each case in its own
 * network namespace; exact counts.
 */
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "burst.h"
#include "harness.h"
#include "sockmig.h"

#define PORT	  34700
#define N_CLIENTS 12

static int add(struct sockmig_group *g, int fd, enum sockmig_role role, uint32_t gen)
{
	SOCKMIG_OPTS(sockmig_member_opts, o, .role = role, .generation = gen);

	return sockmig_member_add(g, fd, &o);
}

static int set_role(struct sockmig_group *g, int fd, enum sockmig_role role)
{
	SOCKMIG_OPTS(sockmig_member_opts, o, .role = role);

	return sockmig_member_set(g, sockmig_cookie(fd), &o);
}

static int role_of(struct sockmig_group *g, int fd)
{
	struct sockmig_member_info m;

	return sockmig_member_get(g, sockmig_cookie(fd), &m) < 0 ? -1 : (int)m.role;
}

static bool listening(int fd)
{
	int val = 0;
	socklen_t len = sizeof(val);

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &val, &len) == 0 && val;
}

/* The connections a drain accepted, answered afterwards by the test. */
struct taken {
	int fd[N_CLIENTS * 2];
	int n;
};

static int take(int fd, void *ctx)
{
	struct taken *t = ctx;

	if (t->n == (int)(sizeof(t->fd) / sizeof(t->fd[0]))) {
		close(fd);
		return -ENOSPC;
	}
	t->fd[t->n++] = fd;
	return 0;
}

/* Answer each connection taken (its request, then BURST_REPLY) and close
 * it; how many were answered. */
static int answer(struct taken *t)
{
	int answered = 0;

	for (int i = 0; i < t->n; i++) {
		struct pollfd p = {.fd = t->fd[i], .events = POLLIN};
		char buf[64];

		if (poll(&p, 1, 2000) == 1 && read(t->fd[i], buf, sizeof(buf)) > 0 &&
		    write(t->fd[i], BURST_REPLY, strlen(BURST_REPLY)) > 0)
			answered++;
		close(t->fd[i]);
	}
	t->n = 0;
	return answered;
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

/* N_CLIENTS clients queued on @a, which is alone in @g. */
static bool queue_clients(struct burst *c, int a)
{
	return ASSERT_OK(burst_start(c, AF_INET, PORT, N_CLIENTS, false), "clients") &&
	       ASSERT_EQ(burst_connected(c, 2000), N_CLIENTS, "connected") &&
	       ASSERT_TRUE(burst_wait_queue(a, N_CLIENTS, 2000), "queued on A");
}

static struct sockmig_group *open_legacy(int fd)
{
	SOCKMIG_OPTS(sockmig_group_opts, go, .policy = SOCKMIG_POLICY_LEGACY);
	struct sockmig_group *g;

	if (!ASSERT_OK(burst_migrate_req(false), "tcp_migrate_req"))
		return NULL;
	g = sockmig_group_open(fd, &go);
	if (!ASSERT_TRUE(g, sockmig_last_error()))
		return NULL;
	if (!ASSERT_EQ(sockmig_group_policy(g), SOCKMIG_POLICY_LEGACY, "policy")) {
		sockmig_group_close(g);
		return NULL;
	}
	return g;
}

/*
 * sockmig_member_set() makes the drain's check: the last active member is
 * not made draining while no other live member is active or a holder, and
 * it keeps its SYNs; registering it again as draining is refused the same
 * way. (Before, the role changed and new SYNs went by the kernel's hash to
 * the draining listener.)
 */
SM_TEST(drain_one_set_role_last_active_refused)
{
	int l[3] = {-1, -1, -1}, ret = SM_FAIL;
	struct sockmig_group *g = NULL;
	struct sockmig_counters cnt;

	for (int i = 0; i < 3; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 64, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1), "add A"))
		goto out;

	/* A alone: refused, by member_set and by a registration again */
	if (!ASSERT_ERR(set_role(g, l[0], SOCKMIG_ROLE_DRAINING), EBUSY, "A draining, alone") ||
	    !ASSERT_TRUE(strstr(sockmig_last_error(), "last active member"), "message") ||
	    !ASSERT_ERR(add(g, l[0], SOCKMIG_ROLE_DRAINING, 1), EBUSY, "A registered draining") ||
	    !ASSERT_EQ(role_of(g, l[0]), SOCKMIG_ROLE_ACTIVE, "A still active"))
		goto out;
	/* and A keeps the SYNs: the policy still steers them to it */
	for (int i = 0; i < 3; i++) {
		struct sockaddr_storage ss;
		socklen_t len = burst_addr(AF_INET, PORT, &ss);
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (c >= 0 && connect(c, (struct sockaddr *)&ss, len) < 0)
			printf("connect: %s\n", strerror(errno));
		if (c >= 0)
			close(c);
	}
	if (!ASSERT_OK(sockmig_counters_read(g, sockmig_cookie(l[0]), &cnt), "A's counters") ||
	    !ASSERT_EQ(cnt.steered, 3, "SYNs steered to A"))
		goto out;

	/* B active: A may go; then B is the last active one */
	if (!ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_ACTIVE, 2), "add B") ||
	    !ASSERT_OK(set_role(g, l[0], SOCKMIG_ROLE_DRAINING), "A draining, B active") ||
	    !ASSERT_ERR(set_role(g, l[1], SOCKMIG_ROLE_DRAINING), EBUSY,
			"B draining, A draining") ||
	    !ASSERT_EQ(role_of(g, l[1]), SOCKMIG_ROLE_ACTIVE, "B still active"))
		goto out;

	/* an active member that no longer listens takes nothing: it does not count */
	if (!ASSERT_OK(set_role(g, l[0], SOCKMIG_ROLE_ACTIVE), "A active again"))
		goto out;
	close(l[1]);
	l[1] = -1;
	if (!ASSERT_ERR(set_role(g, l[0], SOCKMIG_ROLE_DRAINING), EBUSY, "A draining, B closed"))
		goto out;

	/* a holder takes what the last active member leaves */
	if (!ASSERT_OK(add(g, l[2], SOCKMIG_ROLE_HOLDER, 0), "add a holder") ||
	    !ASSERT_OK(set_role(g, l[0], SOCKMIG_ROLE_DRAINING), "A draining, with a holder") ||
	    !ASSERT_EQ(role_of(g, l[0]), SOCKMIG_ROLE_DRAINING, "A draining"))
		goto out;
	ret = SM_PASS;
out:
	cleanup(g, l, 3);
	return ret;
}

/*
 * In a legacy group, sockmig_member_drain() with on_accept runs the
 * legacy drain: it takes everything A has queued to the callback, shuts A
 * down, reports it in the one report and leaves a legacy drain's record.
 */
SM_TEST(drain_one_legacy_on_accept)
{
	struct taken *t = calloc(1, sizeof(*t));
	SOCKMIG_OPTS(sockmig_drain_opts, d, .on_accept = take, .ctx = t);
	struct burst *c = calloc(1, sizeof(*c));
	struct sockmig_drain_report rep;
	struct sockmig_group *g = NULL;
	struct sockmig_event ev[2];
	int l[2] = {-1, -1}, served_b = 0, answered, ret = SM_FAIL;

	if (!t || !c || !ASSERT_OK(l[0] = burst_listener(AF_INET, PORT, 64, 0), "listener A"))
		goto out;
	g = open_legacy(l[0]);
	if (!g || !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1), "add A") ||
	    !queue_clients(c, l[0]))
		goto out;
	if (!ASSERT_OK(l[1] = burst_listener(AF_INET, PORT, 64, 0), "listener B") ||
	    !ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_ACTIVE, 2), "add B"))
		goto out;
	if (!ASSERT_OK(sockmig_member_drain(g, l[0], &d, &rep), "drain A"))
		goto out;
	printf("drain: policy %s accepted %llu refused %llu queued_start %u left %u deadline %u "
	       "ms wait %.1f ms\n",
	       sockmig_policy_str(rep.policy), (unsigned long long)rep.accepted,
	       (unsigned long long)rep.refused, rep.queued_start, rep.inflight_left,
	       rep.deadline_ms, (double)rep.wait_ns / 1e6);
	answered = answer(t);
	burst_serve(c, &l[1], 1, &served_b, 5000);
	burst_print(c, "legacy drain with on_accept");
	if (!ASSERT_EQ(rep.policy, SOCKMIG_POLICY_LEGACY, "the legacy drain ran") ||
	    !ASSERT_TRUE(rep.cookie == sockmig_cookie(l[0]), "A's cookie") ||
	    !ASSERT_EQ(rep.accepted, N_CLIENTS, "accepted to on_accept") ||
	    !ASSERT_EQ(rep.refused, 0, "refused") ||
	    !ASSERT_EQ(rep.inflight_left, 0, "left in flight") ||
	    !ASSERT_EQ(rep.deadline_hit, 0, "deadline hit") ||
	    !ASSERT_TRUE(!listening(l[0]), "A shut down") ||
	    !ASSERT_EQ(answered, N_CLIENTS, "answered by the old process") ||
	    !ASSERT_EQ(served_b, 0, "served by B") ||
	    !ASSERT_EQ(c->count[BURST_OK], N_CLIENTS, "clients served") ||
	    !ASSERT_EQ(c->count[BURST_RESET], 0, "clients reset"))
		goto out;
	if (!ASSERT_EQ(sockmig_group_events(g, 0, ev, 2), 1, "events") ||
	    !ASSERT_EQ(ev[0].type, SOCKMIG_EVENT_DRAIN_LEGACY, "a legacy drain's record") ||
	    !ASSERT_EQ(ev[0].role, SOCKMIG_ROLE_ACTIVE, "A's role before"))
		goto out;
	ret = SM_PASS;
out:
	if (t)
		answer(t);
	if (c) {
		burst_close(c);
		free(c);
	}
	free(t);
	cleanup(g, l, 2);
	return ret;
}

/*
 * The hand-off as the drain's own option: every queued connection goes to
 * B's endpoint, and with wake_receivers B's listener gets one connection
 * of its own (the kick) at the end: the receivers are the drain's, not a
 * thread's.
 */
SM_TEST(drain_one_legacy_handoff_wakes_receivers)
{
	SOCKMIG_OPTS(sockmig_drain_opts, d, .handoff = true, .wake_receivers = true);
	struct taken *t = calloc(1, sizeof(*t));
	struct burst *c = calloc(1, sizeof(*c));
	struct sockmig_drain_report rep;
	struct sockmig_group *g = NULL;
	int l[2] = {-1, -1}, hfd = -1, got = 0, answered = 0, ret = SM_FAIL;

	if (!t || !c || !ASSERT_OK(l[0] = burst_listener(AF_INET, PORT, 64, 0), "listener A"))
		goto out;
	g = open_legacy(l[0]);
	if (!g || !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1), "add A") ||
	    !queue_clients(c, l[0]))
		goto out;
	if (!ASSERT_OK(l[1] = burst_listener(AF_INET, PORT, 64, 0), "listener B") ||
	    !ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_ACTIVE, 2), "add B") ||
	    !ASSERT_OK(hfd = sockmig_handoff_listen(g, l[1]), "B's endpoint"))
		goto out;
	if (!ASSERT_OK(sockmig_member_drain(g, l[0], &d, &rep), "drain A"))
		goto out;
	for (int fd; (fd = sockmig_handoff_recv(hfd)) != -EAGAIN;) {
		if (!ASSERT_OK(fd, "a hand-off received") || take(fd, t) < 0)
			goto out;
		got++;
	}
	answered = answer(t);
	printf("drain: accepted %llu refused %llu kicked %u; B's endpoint got %d, answered %d\n",
	       (unsigned long long)rep.accepted, (unsigned long long)rep.refused, rep.kicked, got,
	       answered);
	if (!ASSERT_EQ(rep.policy, SOCKMIG_POLICY_LEGACY, "the legacy drain ran") ||
	    !ASSERT_EQ(rep.accepted, N_CLIENTS, "accepted and handed off") ||
	    !ASSERT_EQ(rep.refused, 0, "refused") || !ASSERT_EQ(got, N_CLIENTS, "handed to B") ||
	    !ASSERT_EQ(rep.kicked, 1, "B woken once") ||
	    !ASSERT_TRUE(burst_wait_queue(l[1], 1, 1000), "the kick on B's listener") ||
	    !ASSERT_EQ(burst_accept_queue(l[1]), 1, "only the kick") ||
	    !ASSERT_EQ(answered, N_CLIENTS, "answered by B's process"))
		goto out;
	burst_serve(c, NULL, 0, NULL, 5000);
	burst_print(c, "legacy drain with the hand-off");
	if (!ASSERT_EQ(c->count[BURST_OK], N_CLIENTS, "clients served"))
		goto out;
	ret = SM_PASS;
out:
	if (hfd >= 0)
		sockmig_handoff_close(hfd);
	if (t)
		answer(t);
	if (c) {
		burst_close(c);
		free(c);
	}
	free(t);
	cleanup(g, l, 2);
	return ret;
}

/*
 * The report grew: a caller built with the older header (options of the
 * older size, or none) gets the older report and not a byte more; one
 * built with this header gets the whole report.
 */
SM_TEST(drain_one_report_keeps_older_size)
{
	const size_t v0 = offsetof(struct sockmig_drain_report, inflight_left) + sizeof(uint32_t);
	SOCKMIG_OPTS(sockmig_drain_opts, now);
	struct sockmig_drain_opts old;
	union {
		struct sockmig_drain_report rep;
		unsigned char b[sizeof(struct sockmig_drain_report)];
	} u;
	int l[4] = {-1, -1, -1, -1}, ret = SM_FAIL;
	struct sockmig_group *g = NULL;

	for (int i = 0; i < 4; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 64, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()))
		goto out;
	for (int i = 0; i < 4; i++)
		if (!ASSERT_OK(add(g, l[i], SOCKMIG_ROLE_ACTIVE, 1), "add"))
			goto out;

	memset(&u, 0xab, sizeof(u));
	if (!ASSERT_OK(sockmig_member_drain(g, l[0], &now, &u.rep), "drain A") ||
	    !ASSERT_EQ(u.rep.policy, SOCKMIG_POLICY_NATIVE, "the native drain ran") ||
	    !ASSERT_EQ(u.rep.deadline_ms, 1000, "its default deadline") ||
	    !ASSERT_EQ(u.rep.deadline_hit, 0, "deadline hit") ||
	    !ASSERT_EQ(u.rep.accepted, 0, "accepted") ||
	    !ASSERT_TRUE(u.rep.total_ns >= u.rep.wait_ns && u.rep.wait_ns > 0, "times"))
		goto out;

	/* the older options: size up to deadline_ms */
	memset(&old, 0, sizeof(old));
	old.sz = offsetof(struct sockmig_drain_opts, on_accept);
	memset(&u, 0xab, sizeof(u));
	if (!ASSERT_OK(sockmig_member_drain(g, l[1], &old, &u.rep), "drain B, older options") ||
	    !ASSERT_TRUE(u.rep.cookie == sockmig_cookie(l[1]), "B's cookie"))
		goto out;
	for (size_t i = v0; i < sizeof(u); i++)
		if (!ASSERT_EQ(u.b[i], 0xab, "a byte past the older report"))
			goto out;

	memset(&u, 0xab, sizeof(u));
	if (!ASSERT_OK(sockmig_member_drain(g, l[2], NULL, &u.rep), "drain C, no options") ||
	    !ASSERT_TRUE(u.rep.cookie == sockmig_cookie(l[2]), "C's cookie"))
		goto out;
	for (size_t i = v0; i < sizeof(u); i++)
		if (!ASSERT_EQ(u.b[i], 0xab, "a byte past the older report"))
			goto out;
	ret = SM_PASS;
out:
	cleanup(g, l, 4);
	return ret;
}

/*
 * Whether a drain wakes the targets of its migrations is decided when the
 * group opens: SOCKMIG_WAKE=1 at the open, 0 by the drain, and the drain
 * still wakes B (one connection of its own next to the children it took).
 * Before, the drain read the environment (or ran the whole probe) itself.
 */
SM_TEST(drain_one_wake_decided_at_open)
{
	struct burst *c = calloc(1, sizeof(*c));
	struct sockmig_drain_report rep;
	struct sockmig_group *g = NULL;
	int l[2] = {-1, -1}, ret = SM_FAIL;

	if (!c || !ASSERT_OK(l[0] = burst_listener(AF_INET, PORT, 64, 0), "listener A"))
		goto out;
	setenv("SOCKMIG_WAKE", "1", 1);
	g = sockmig_group_open(l[0], NULL);
	setenv("SOCKMIG_WAKE", "0", 1);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_group_policy(g), SOCKMIG_POLICY_NATIVE, "policy") ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1), "add A") || !queue_clients(c, l[0]))
		goto out;
	if (!ASSERT_OK(l[1] = burst_listener(AF_INET, PORT, 64, 0), "listener B") ||
	    !ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_ACTIVE, 2), "add B") ||
	    !ASSERT_OK(sockmig_member_drain(g, l[0], NULL, &rep), "drain A"))
		goto out;
	printf("drain: migrated %llu, kicked %u; B's queue %d\n",
	       (unsigned long long)rep.migrated[SOCKMIG_KIND_ESTABLISHED], rep.kicked,
	       burst_accept_queue(l[1]));
	if (!ASSERT_EQ(rep.migrated[SOCKMIG_KIND_ESTABLISHED], N_CLIENTS, "migrated to B") ||
	    !ASSERT_EQ(rep.kicked, 1, "B woken as decided at the open") ||
	    !ASSERT_TRUE(burst_wait_queue(l[1], N_CLIENTS + 1, 1000), "B's queue") ||
	    !ASSERT_EQ(burst_accept_queue(l[1]), N_CLIENTS + 1, "the children and the kick"))
		goto out;
	ret = SM_PASS;
out:
	unsetenv("SOCKMIG_WAKE");
	if (c) {
		burst_close(c);
		free(c);
	}
	cleanup(g, l, 2);
	return ret;
}
