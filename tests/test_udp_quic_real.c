// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Real QUIC across reloads: aioquic servers (tests/servers/quic_server.py,
 * one process per generation) and an aioquic client load
 * (tests/servers/quic_client.py) in the Debian 13 tree that
 * scripts/quic-root makes (`make quic-root`; a case never makes it, and
 * skips without it). A flip every 100-200 ms: the next generation's server
 * binds (and registers), then the old one gets SIGTERM and closes its
 * socket once its connections ended (or after a 2 s grace). With the UDP
 * group in flow mode every handshake and request succeeds; with plain
 * SO_REUSEPORT (the same servers, unregistered) some fail. Each client
 * Initial takes 2 datagrams (a 1,200-byte transport parameter), counted
 * by the servers.
 *
 * Entering the tree: the case takes a mount namespace of its own, binds
 * the build (.output/) at /opt/sockmig, /proc and /sys/fs/bpf into the
 * tree, and runs each program through chroot(8); the network namespace
 * stays the case's.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "burst.h"
#include "harness.h"
#include "quic_tree.h"
#include "proc.h"
#include "sockmig.h"

#define QR_PORT	    34800
#define QR_GENS	    16	  /* generation 1 and 15 flips */
#define QR_SECS	    3	  /* of client load (the flips take ~2.6 s) */
#define QR_CONNS    600	  /* client connections at most */
#define QR_READY_MS 10000 /* a server's "ready" line, python's start included */

struct qr {
	struct qt_env env; /* the tree, the build, the stderr files */
	struct tp_proc srv[QR_GENS];
	int nsrv;
	struct tp_proc cli;
	bool plain;
};

/* Totals of the servers' exit lines. */
struct qr_sum {
	long connections, handshakes, requests, strays, hello_min, hello_max, live_at_exit;
	int reports;
};

/* Generation @gen's server, started and waiting for its go line. */
static bool qr_server(struct qr *q, uint32_t gen)
{
	char name[16], args[160];

	snprintf(name, sizeof(name), "gen%u", gen);
	snprintf(args, sizeof(args), "--port %d --gen %u --hold --grace 2%s", QR_PORT, gen,
		 q->plain ? " --plain" : "");
	if (!qt_start(&q->env, &q->srv[q->nsrv], name, "quic_server.py", args))
		return false;
	q->nsrv++;
	return true;
}

/* The next line of @p starts with @word, within QR_READY_MS. */
static bool qr_expect(struct tp_proc *p, const char *word)
{
	char line[256];

	if (!tp_proc_line(p, line, sizeof(line), burst_now_ms() + QR_READY_MS) ||
	    strncmp(line, word, strlen(word)) != 0) {
		printf("no \"%s\" line from %s\n", word, p->name);
		tp_proc_stderr(p, NULL);
		return false;
	}
	return true;
}

/* Server @k binds (and registers): true at its "ready" line. */
static bool qr_go(struct qr *q, int k)
{
	char line[256];

	if (!tp_proc_cmd(&q->srv[k], "go") ||
	    !tp_proc_line(&q->srv[k], line, sizeof(line), burst_now_ms() + QR_READY_MS) ||
	    strncmp(line, "ready", 5) != 0) {
		printf("server %s not ready\n", q->srv[k].name);
		tp_proc_stderr(&q->srv[k], NULL);
		return false;
	}
	return true;
}

/* Server @k's exit line (SIGTERM sent before), added to @sum. */
static bool qr_reap(struct qr *q, int k, struct qr_sum *sum)
{
	struct tp_proc *p = &q->srv[k];
	char line[1024];
	long h;

	if (p->pid <= 0)
		return true;
	if (!tp_proc_line(p, line, sizeof(line), burst_now_ms() + 8000) || line[0] != '{') {
		printf("no exit line from %s\n", p->name);
		tp_proc_stderr(p, NULL);
		tp_proc_kill(p);
		return false;
	}
	printf("  %s: %s\n", p->name, line);
	h = qt_json_num(line, "handshakes");
	sum->connections += qt_json_num(line, "connections");
	sum->handshakes += h;
	sum->requests += qt_json_num(line, "requests");
	sum->strays += qt_json_num(line, "strays");
	sum->live_at_exit += qt_json_num(line, "live_at_exit");
	if (h > 0) {
		long lo = qt_json_num(line, "hello_dgrams_min"),
		     hi = qt_json_num(line, "hello_dgrams_max");

		sum->hello_min = sum->reports && sum->hello_min < lo ? sum->hello_min : lo;
		sum->hello_max = hi > sum->hello_max ? hi : sum->hello_max;
		sum->reports++;
	}
	if (tp_wait_exit(p->pid, 5000) != 0) {
		printf("%s did not exit 0\n", p->name);
		tp_proc_kill(p);
		return false;
	}
	p->pid = 0;
	tp_proc_kill(p); /* its pipes */
	return true;
}

static void qr_cleanup(struct qr *q)
{
	char p[160];

	for (int k = 0; k < q->nsrv; k++) {
		if (q->srv[k].pid > 0 || q->srv[k].in >= 0)
			tp_proc_kill(&q->srv[k]);
		unlink(q->srv[k].err);
	}
	if (q->cli.pid > 0 || q->cli.in >= 0)
		tp_proc_kill(&q->cli);
	if (q->env.dir[0]) {
		snprintf(p, sizeof(p), "%s/client.stderr", q->env.dir);
		unlink(p);
		rmdir(q->env.dir);
	}
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * The reloads under a client load: @ok, @failed the client's counts;
 * @flips how many; @sum the servers'. SM_PASS when it ran to the end.
 */
static int qr_run(struct qr *q, long *ok, long *failed, int *flips, struct qr_sum *sum)
{
	char args[160], line[1024];
	int k;

	/* every generation's server started and held before the load (a
	 * python start takes longer than a flip on a small machine); then
	 * generation 1 serves */
	for (k = 0; k < QR_GENS; k++)
		if (!qr_server(q, (uint32_t)k + 1))
			return SM_FAIL;
	for (k = 0; k < QR_GENS; k++)
		if (!qr_expect(&q->srv[k], "held"))
			return SM_FAIL;
	if (!qr_go(q, 0))
		return SM_FAIL;
	snprintf(args, sizeof(args), "--port %d --conns %d --secs %d", QR_PORT, QR_CONNS, QR_SECS);
	if (!qt_start(&q->env, &q->cli, "client", "quic_client.py", args) ||
	    !qr_expect(&q->cli, "load"))
		return SM_FAIL;
	*flips = 0;
	for (k = 1; k < QR_GENS; k++) {
		/* 100-200 ms between flips, varied and reproducible */
		sleep_ms(100 + (k * 37) % 101);
		if (!qr_go(q, k))
			return SM_FAIL;
		(*flips)++;
		/* a reload: the old generation goes after a short grace */
		sleep_ms(20);
		kill(q->srv[k - 1].pid, SIGTERM);
	}
	if (!tp_proc_line(&q->cli, line, sizeof(line), burst_now_ms() + (QR_SECS + 15) * 1000ULL) ||
	    line[0] != '{') {
		printf("no result line from the client\n");
		tp_proc_stderr(&q->cli, NULL);
		return SM_FAIL;
	}
	printf("  client: %s\n", line);
	*ok = qt_json_num(line, "ok");
	*failed = qt_json_num(line, "failed");
	if (tp_wait_exit(q->cli.pid, 5000) != 0)
		printf("the client did not exit 0\n");
	else
		q->cli.pid = 0;
	/* the last serving one, then every exit line */
	kill(q->srv[k - 1].pid, SIGTERM);
	for (int i = 0; i < k; i++)
		if (!qr_reap(q, i, sum))
			return SM_FAIL;
	return SM_PASS;
}

static int quic_case(bool plain)
{
	struct qr_sum sum = {0};
	struct sockmig_udp_group *g = NULL;
	struct sockmig_udp_stats st = {0};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(QR_PORT)};
	static const char *const need[] = {"libsockmig.so.0", "tests/servers/quic_server.py",
					   "tests/servers/quic_client.py", NULL};
	char why[PATH_MAX + 128];
	long ok = -1, failed = -1;
	int flips = 0, ret;
	struct qr *q = calloc(1, sizeof(*q));

	if (!q)
		return SM_FAIL;
	q->plain = plain;
	q->cli.pid = -1;
	q->cli.in = q->cli.out = -1;
	ret = qt_enter(&q->env, need, why, sizeof(why));
	if (ret == SM_SKIP) {
		ret = SKIP("%s", why);
		goto out;
	}
	if (ret != SM_PASS)
		goto out;
	ret = SM_FAIL;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!plain) {
		/* the case makes the group (and removes it); servers join it */
		SOCKMIG_OPTS(sockmig_udp_group_opts, go, .mode = SOCKMIG_UDP_MODE_FLOW);

		g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &go);
		if (!ASSERT_TRUE(g != NULL, "udp group"))
			goto out;
	}
	if (qr_run(q, &ok, &failed, &flips, &sum) != SM_PASS)
		goto out;
	printf("  %d flips: %ld ok, %ld failed; servers: %ld connections, %ld handshakes, "
	       "%ld requests, %ld stray datagrams, ClientHello in %ld-%ld datagrams\n",
	       flips, ok, failed, sum.connections, sum.handshakes, sum.requests, sum.strays,
	       sum.hello_min, sum.hello_max);
	if (g && ASSERT_OK(sockmig_udp_stats_read(g, &st), "stats"))
		printf("  group: %llu new flows, %llu hits, %llu fallbacks, %llu kernel hash\n",
		       (unsigned long long)st.new_flows, (unsigned long long)st.flow_hits,
		       (unsigned long long)st.fallbacks, (unsigned long long)st.kernel_hash);
	if (!ASSERT_EQ(flips, QR_GENS - 1, "flips") ||
	    !ASSERT_TRUE(ok + failed >= 16, "at least 16 connections tried") ||
	    !ASSERT_EQ(sum.hello_min, 2, "datagrams of the smallest ClientHello") ||
	    !ASSERT_EQ(sum.hello_max, 2, "datagrams of the largest ClientHello"))
		goto out;
	if (plain) {
		if (!ASSERT_TRUE(failed > 0, "plain SO_REUSEPORT breaks connections"))
			goto out;
	} else if (!ASSERT_EQ(failed, 0, "failed connections") ||
		   !ASSERT_TRUE(ok >= 50, "at least 50 connections made") ||
		   !ASSERT_EQ(sum.strays, 0, "datagrams to a server that did not know them") ||
		   !ASSERT_EQ(sum.live_at_exit, 0, "connections cut at a server's exit") ||
		   !ASSERT_EQ(st.kernel_hash, 0, "kernel hash")) {
		goto out;
	}
	ret = SM_PASS;
out:
	qr_cleanup(q);
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
	free(q);
	return ret;
}

SM_TEST(udp_quic_real_flow)
{
	return quic_case(false);
}

SM_TEST(udp_quic_real_plain)
{
	return quic_case(true);
}
