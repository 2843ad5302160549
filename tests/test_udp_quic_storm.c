// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Real QUIC under a flip every 100 ms (issue 13): one aioquic server
 * process (tests/servers/quic_server.py --flip-ms) opens a new
 * SO_REUSEPORT socket with a server object of its own every 100 ms,
 * registered as the next generation, while an aioquic client
 * (tests/servers/quic_client.py) makes new connections, 16 at a time, each
 * a handshake whose Initial takes 2 datagrams (a 1,200-byte transport
 * parameter) and one request. Each object has its own connection table: a
 * datagram delivered to another object than its connection's is what a
 * misroute between two server processes is.
 *
 * The client sends its Initial's second datagram QS_GAP_MS after the first
 * (as a client that paces, or a path that spreads them, would), and the
 * server's loop comes to its sockets every QS_TICK_MS (as a loop busy
 * with other work would): aioquic answers a first datagram at once, so on
 * an idle machine a claim would come within a millisecond and a flip
 * would rarely fall between a datagram and its claim. The same in every
 * case:
 * 1. learn on receive (the group's default): the first datagram pins the
 *    flow, so the second follows it whatever flip came between: 0 failed
 *    handshakes, 0 strays, 0 ClientHellos left incomplete, every Initial
 *    in 2 datagrams, the flips counted exactly;
 * 2. the baseline, learn by claim (a server claims a flow when it first
 *    sends to the peer, as udpgrm does): a flip between the two datagrams
 *    sends the second to the new object, and handshakes fail;
 * 3. the naive baseline, plain SO_REUSEPORT: the kernel's hash moves flows
 *    as sockets come and go, and handshakes fail.
 * Flips for SOCKMIG_QUIC_STORM_SECS seconds (default QS_SECS); the 60 s
 * figure of BENCHMARKS.md is `make bench-quic`. The tree is
 * scripts/quic-root's (`make quic-root`); without it the cases skip.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "burst.h"
#include "harness.h"
#include "quic_tree.h"
#include "proc.h"
#include "sockmig.h"

#define QS_PORT	    34850
#define QS_FLIP_MS  100
#define QS_SECS	    8	  /* of flips (and of new connections) by default */
#define QS_SECS_MAX 120	  /* SOCKMIG_QUIC_STORM_SECS at most: the limit is 180 s */
#define QS_GAP_MS   10	  /* between the Initial's 2 datagrams */
#define QS_TICK_MS  20	  /* the server's loop comes to its sockets this often */
#define QS_GRACE    2	  /* an old object's longest life after its flip, s */
#define QS_READY_MS 10000 /* a program's first line, python's start included */

enum qs_kind { QS_RECEIVE, QS_CLAIM, QS_PLAIN };

/* The duration: SOCKMIG_QUIC_STORM_SECS, else QS_SECS; 0 with one line
 * when it is bad. */
static int qs_secs(void)
{
	const char *s = getenv("SOCKMIG_QUIC_STORM_SECS");
	char *end;
	long v;

	if (!s || !*s)
		return QS_SECS;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > QS_SECS_MAX) {
		printf("SOCKMIG_QUIC_STORM_SECS=%s: not a number of seconds from 1 to %d\n", s,
		       QS_SECS_MAX);
		return 0;
	}
	return (int)v;
}

/* The next line of @p into @line, starting with @word, by @ms from now. */
static bool qs_line(struct tp_proc *p, char *line, size_t len, const char *word,
		    unsigned long long ms)
{
	if (!tp_proc_line(p, line, len, burst_now_ms() + ms) ||
	    strncmp(line, word, strlen(word)) != 0) {
		printf("no \"%s\" line from %s\n", word, p->name);
		tp_proc_stderr(p, NULL);
		return false;
	}
	return true;
}

/* What the client and the server said at their ends. */
struct qs_res {
	char cli[1024], srv[1024];
	struct sockmig_udp_stats st;
};

/* The server, then the client's load, "go" (the flips start), both ends. */
static int qs_run(struct qt_env *env, enum qs_kind kind, int secs, struct qs_res *r)
{
	static const char *const learn[] = {"--learn=receive", "--learn=claim", "--plain"};
	struct tp_proc srv = TP_PROC_INIT, cli = TP_PROC_INIT;
	struct sockmig_udp_group *g = NULL;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(QS_PORT)};
	char args[200], line[256];
	int ret = SM_FAIL;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	snprintf(args, sizeof(args),
		 "--port=%d --flip-ms=%d --secs=%d --hold --grace=%d --tick-ms=%d %s", QS_PORT,
		 QS_FLIP_MS, secs, QS_GRACE, QS_TICK_MS, learn[kind]);
	if (!qt_start(env, &srv, "server", "quic_server.py", args) ||
	    !qs_line(&srv, line, sizeof(line), "ready", QS_READY_MS))
		goto out;
	if (kind != QS_PLAIN) {
		/* the server made the group (its learn mode); this handle
		 * reads its counters and removes it at the end */
		g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
		if (!ASSERT_TRUE(g != NULL, "the server's udp group"))
			goto out;
	}
	snprintf(args, sizeof(args),
		 "--port=%d --conns=100000 --parallel=16 --requests=1 --secs=%d --timeout=3 "
		 "--initial-gap-ms=%d",
		 QS_PORT, secs, QS_GAP_MS);
	if (!qt_start(env, &cli, "client", "quic_client.py", args) ||
	    !qs_line(&cli, line, sizeof(line), "load", QS_READY_MS) || !tp_proc_cmd(&srv, "go"))
		goto out;
	if (!qs_line(&cli, r->cli, sizeof(r->cli), "{", (secs + 15) * 1000ULL))
		goto out;
	if (tp_wait_exit(cli.pid, 5000) != 0) {
		printf("the client did not exit 0\n");
		goto out;
	}
	cli.pid = 0;
	/* every flip made before the stop (the client may end a little before
	 * the server's last flip is due) */
	if (!qs_line(&srv, line, sizeof(line), "flips done", 5000))
		goto out;
	kill(srv.pid, SIGTERM);
	if (!qs_line(&srv, r->srv, sizeof(r->srv), "{", (QS_GRACE + 8) * 1000ULL))
		goto out;
	if (tp_wait_exit(srv.pid, 5000) != 0) {
		printf("the server did not exit 0\n");
		tp_proc_stderr(&srv, NULL);
		goto out;
	}
	srv.pid = 0;
	if (g && !ASSERT_OK(sockmig_udp_stats_read(g, &r->st), "stats"))
		goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&cli);
	tp_proc_kill(&srv);
	unlink(cli.err);
	unlink(srv.err);
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
	return ret;
}

static int storm_case(enum qs_kind kind)
{
	static const char *const need[] = {"libsockmig.so.0", "tests/servers/quic_server.py",
					   "tests/servers/quic_client.py", NULL};
	struct qt_env *env = calloc(1, sizeof(*env));
	struct qs_res *r = calloc(1, sizeof(*r));
	char why[PATH_MAX + 128];
	long ok, failed, hs, strays, split, flips;
	int secs = qs_secs(), ret = SM_FAIL;

	if (!env || !r || !secs)
		goto out;
	ret = qt_enter(env, need, why, sizeof(why));
	if (ret == SM_SKIP) {
		ret = SKIP("%s", why);
		goto out;
	}
	if (ret != SM_PASS || (ret = qs_run(env, kind, secs, r)) != SM_PASS)
		goto out;
	ret = SM_FAIL;
	printf("  client: %s\n  server: %s\n", r->cli, r->srv);
	ok = qt_json_num(r->cli, "ok");
	failed = qt_json_num(r->cli, "failed");
	hs = qt_json_num(r->srv, "handshakes");
	strays = qt_json_num(r->srv, "strays");
	split = qt_json_num(r->srv, "hello_incomplete");
	flips = qt_json_num(r->srv, "flips");
	printf("  %ld flips in %d s: %ld connections ok, %ld failed; server: %ld handshakes, "
	       "%ld strays, %ld ClientHellos left incomplete\n",
	       flips, secs, ok, failed, hs, strays, split);
	if (kind != QS_PLAIN)
		printf("  group: %llu new flows, %llu hits, %llu fallbacks, %llu stateless, "
		       "%llu kernel hash\n",
		       (unsigned long long)r->st.new_flows, (unsigned long long)r->st.flow_hits,
		       (unsigned long long)r->st.fallbacks, (unsigned long long)r->st.stateless,
		       (unsigned long long)r->st.kernel_hash);
	if (!ASSERT_EQ(flips, secs * 1000 / QS_FLIP_MS, "flips") ||
	    !ASSERT_EQ(qt_json_num(r->srv, "objects"), flips + 1, "server objects") ||
	    !ASSERT_TRUE(ok + failed >= secs * 5, "at least 5 connections a second tried") ||
	    !ASSERT_EQ(qt_json_num(r->srv, "hello_dgrams_min"), 2,
		       "datagrams of the smallest Initial") ||
	    !ASSERT_EQ(qt_json_num(r->srv, "hello_dgrams_max"), 2,
		       "datagrams of the largest Initial"))
		goto out;
	if (kind == QS_RECEIVE) {
		if (!ASSERT_EQ(failed, 0, "failed connections") ||
		    !ASSERT_EQ(hs, ok, "handshakes: one per connection") ||
		    !ASSERT_EQ(strays, 0, "datagrams to an object that did not know them") ||
		    !ASSERT_EQ(split, 0, "ClientHellos left incomplete") ||
		    !ASSERT_EQ(qt_json_num(r->srv, "live_at_exit"), 0, "connections cut") ||
		    !ASSERT_EQ(r->st.kernel_hash, 0, "kernel hash"))
			goto out;
	} else {
		if (kind == QS_CLAIM &&
		    (!ASSERT_EQ(qt_json_num(r->srv, "claim_errors"), 0, "claims refused") ||
		     !ASSERT_TRUE(qt_json_num(r->srv, "claims") > 0, "claims")))
			goto out;
		if (!ASSERT_TRUE(failed > 0, "the baseline fails handshakes") ||
		    !ASSERT_TRUE(split > 0, "the baseline splits Initials"))
			goto out;
	}
	ret = SM_PASS;
out:
	if (env && env->dir[0])
		rmdir(env->dir);
	free(env);
	free(r);
	return ret;
}

/* 8 s of flips by default; QS_SECS_MAX, python's starts and the ends fit in 180 s. */
SM_LONG(udp_quic_storm_receive, 180)
{
	return storm_case(QS_RECEIVE);
}

SM_LONG(udp_quic_storm_claim, 180)
{
	return storm_case(QS_CLAIM);
}

SM_LONG(udp_quic_storm_plain, 180)
{
	return storm_case(QS_PLAIN);
}
