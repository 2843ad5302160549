// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Real QUIC, many established connections across flips (issue 13): one
 * aioquic server process (tests/servers/quic_conns_server.py) binds a new
 * SO_REUSEPORT socket with a server object of its own every QC_FLIP_MS,
 * registered as the next generation, and keeps every object (its socket
 * and its connections) until the end; QC_PROCS aioquic clients
 * (tests/servers/quic_conns_client.py) open SOCKMIG_QUIC_CONNS_N
 * connections (default QC_CONNS), one UDP socket each, evenly over the
 * first QC_RAMP_SECS, then hold them, each sending a PING frame every
 * QC_IVAL_MS until the end. Each object has its own connection table: a
 * datagram that reaches another object than its connection's is a
 * misroute between two server processes (a stray: the object does not know
 * its connection ID).
 * 1. learn on receive (the group's default): every connection established
 *    and alive to the end, 0 strays, 0 misroutes, every flip made;
 * 2. mode quic-lb, the server minting its CIDs with libsockmig (length 12):
 *    the same as 1;
 * 3. the naive baseline, plain SO_REUSEPORT: each bind changes the
 *    kernel's hash over the sockets, so established flows move: strays and
 *    misroutes, connections that end early.
 * A bench, not a suite case: skips unless SOCKMIG_QUIC_CONNS_SECS (the
 * clients' run, seconds) is set; `make bench-quic-conns` (65 s: 15 s of
 * ramp, then 50 flips with every connection up). Needs make quic-root.
 * SOCKMIG_QUIC_CONNS_CLIENT=ngtcp2 runs tests/servers/quic_conns_ngtcp2
 * (the same client in C on libngtcp2; make bench-quic-conns compiles it in
 * the tree) instead of the python one, and SOCKMIG_QUIC_CONNS_SERVERS=K
 * shares the generations out between K server processes (generation G in
 * process (G - 1) mod K), for 1,000 connections at 10 datagrams/s: one
 * python process serves about 9,000 datagrams/s here.
 *
 * The same programs make two suite cases of clients that move (NAT
 * rebinding), in mode quic-lb and in mode flow: see rebind_case().
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

#define QC_PORT	     34870
#define QC_FLIP_MS   1000
#define QC_CONNS     1000
#define QC_CONNS_MAX 4000
#define QC_PROCS     2	   /* client processes (the connections split between them) */
#define QC_SRV_MAX   4	   /* server processes, SOCKMIG_QUIC_CONNS_SERVERS at most */
#define QC_RAMP_SECS 15	   /* the connections open over this long */
#define QC_IVAL_MS   100   /* a PING per connection this often: 10 datagrams/s */
#define QC_SECS_MAX  140   /* SOCKMIG_QUIC_CONNS_SECS at most: the limit is 240 s */
#define QC_STEADY    40	   /* flips with every connection up, asked of a long enough run */
#define QC_GRACE     20	   /* s for the server's backlog and the clients' closes */
#define QC_READY_MS  15000 /* a program's first line, python's start included */
#define QC_LINE	     8192
#define QC_GENS	     (QC_SECS_MAX * 1000 / QC_FLIP_MS + 1)
/* quic-lb's CIDs: not aioquic's 8-octet PATH_CHALLENGE data (the minter
 * would mint those) nor its 16-octet reset tokens, and no client's 8-octet
 * random Initial DCID taken for one of the group's CIDs */
#define QC_LB_CID_LEN 12
/* the CIDs a server gives each connection: its first, then 7 in
 * NEW_CONNECTION_ID frames (aioquic's client takes 8 at a time) */
#define QC_CIDS_PER_CONN 8

enum qc_kind { QC_RECEIVE, QC_PLAIN, QC_LB };

/* A run's shape: the bench's (conns_case()), or a rebinding case's. */
struct qc_cfg {
	enum qc_kind kind;
	long secs, conns;
	int flip_ms, ramp_secs, cid_len, rebind_ms;
	int servers;	    /* server processes sharing the generations out */
	const char *client; /* the clients' program in tests/servers/ */
};

/* A positive number from @name, else @def; 0 with one line when bad. */
static long qc_env(const char *name, long def, long max)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (!s || !*s)
		return def;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > max) {
		printf("%s=%s: not a number from 1 to %ld\n", name, s, max);
		return 0;
	}
	return v;
}

static bool qc_line(struct tp_proc *p, char *line, size_t len, const char *word,
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

struct qc_res {
	char cli[QC_PROCS][QC_LINE], srv[QC_SRV_MAX][QC_LINE];
	int servers;
	struct sockmig_udp_stats st;
	struct sockmig_quic_stats qst;
	long rcvbuf_errors;
};

/* UDP RcvbufErrors of this namespace (datagrams a full socket dropped). */
static long qc_rcvbuf_errors(void)
{
	char head[512], vals[512], *h, *v, *hs, *vs;
	long n = -1;
	FILE *f = fopen("/proc/self/net/snmp", "r");

	if (!f)
		return -1;
	while (fgets(head, sizeof(head), f) && fgets(vals, sizeof(vals), f)) {
		if (strncmp(head, "Udp: ", 5) != 0)
			continue;
		for (h = strtok_r(head, " \n", &hs), v = strtok_r(vals, " \n", &vs); h && v;
		     h = strtok_r(NULL, " \n", &hs), v = strtok_r(NULL, " \n", &vs))
			if (strcmp(h, "RcvbufErrors") == 0)
				n = strtol(v, NULL, 10);
		break;
	}
	fclose(f);
	return n;
}

/* The servers, the clients ("held"), "go" to all, their ends, the
 * servers'. In mode quic-lb the case makes the group (of cfg's CID length)
 * and the servers mint their CIDs; otherwise the first server makes it
 * (mode flow). */
static int qc_run(struct qt_env *env, const struct qc_cfg *cfg, struct qc_res *r)
{
	struct tp_proc srv[QC_SRV_MAX], cli[QC_PROCS];
	struct sockmig_udp_group *g = NULL;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(QC_PORT)};
	SOCKMIG_OPTS(sockmig_udp_group_opts, lb, .mode = SOCKMIG_UDP_MODE_QUIC_LB,
		     .quic_cid_len = (uint32_t)cfg->cid_len);
	long flips = cfg->secs * 1000 / cfg->flip_ms;
	int nsrv = cfg->servers ? cfg->servers : 1, ret = SM_FAIL, i, st;
	char args[240], line[256], name[16];

	for (i = 0; i < QC_PROCS; i++)
		cli[i] = (struct tp_proc)TP_PROC_INIT;
	for (i = 0; i < QC_SRV_MAX; i++)
		srv[i] = (struct tp_proc)TP_PROC_INIT;
	r->servers = nsrv;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (cfg->kind == QC_LB) {
		g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &lb);
		if (!ASSERT_TRUE(g != NULL, "a quic-lb group"))
			goto out;
	}
	for (i = 0; i < nsrv; i++) {
		snprintf(args, sizeof(args),
			 "--port=%d --flip-ms=%d --flips=%ld --grace=%d --cid-len=%d "
			 "--procs=%d --index=%d %s",
			 QC_PORT, cfg->flip_ms, flips, QC_GRACE, cfg->cid_len, nsrv, i,
			 cfg->kind == QC_PLAIN ? "--plain"
			 : cfg->kind == QC_LB  ? "--mint"
					       : "");
		snprintf(name, sizeof(name), "server%d", i);
		if (!qt_start(env, &srv[i], name, "quic_conns_server.py", args) ||
		    !qc_line(&srv[i], line, sizeof(line), "ready", QC_READY_MS))
			goto out;
	}
	if (cfg->kind == QC_RECEIVE) {
		g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
		if (!ASSERT_TRUE(g != NULL, "the server's udp group"))
			goto out;
	}
	for (i = 0; i < QC_PROCS; i++) {
		snprintf(args, sizeof(args),
			 "--port=%d --conns=%ld --ramp-secs=%d --secs=%ld --interval-ms=%d "
			 "--timeout=5 --rebind-ms=%d",
			 QC_PORT, cfg->conns / QC_PROCS + (i < cfg->conns % QC_PROCS),
			 cfg->ramp_secs, cfg->secs, QC_IVAL_MS, cfg->rebind_ms);
		snprintf(name, sizeof(name), "client%d", i);
		if (!qt_start(env, &cli[i], name, cfg->client, args) ||
		    !qc_line(&cli[i], line, sizeof(line), "held", QC_READY_MS))
			goto out;
	}
	for (i = 0; i < nsrv; i++)
		if (!tp_proc_cmd(&srv[i], "go"))
			goto out;
	for (i = 0; i < QC_PROCS; i++)
		if (!tp_proc_cmd(&cli[i], "go"))
			goto out;
	for (i = 0; i < QC_PROCS; i++) {
		if (!qc_line(&cli[i], r->cli[i], sizeof(r->cli[i]), "{",
			     (cfg->secs + 20) * 1000ULL))
			goto out;
		st = tp_wait_exit(cli[i].pid, 10000);
		if (st >= 0)
			cli[i].pid = 0; /* reaped */
		if (st != 0) {
			printf("%s did not exit 0\n", cli[i].name);
			goto out;
		}
	}
	for (i = 0; i < nsrv; i++)
		if (!qc_line(&srv[i], line, sizeof(line), "flips done", 10000))
			goto out;
	for (i = 0; i < nsrv; i++)
		kill(srv[i].pid, SIGTERM);
	for (i = 0; i < nsrv; i++) {
		if (!qc_line(&srv[i], r->srv[i], sizeof(r->srv[i]), "{", (QC_GRACE + 10) * 1000ULL))
			goto out;
		st = tp_wait_exit(srv[i].pid, 5000);
		if (st >= 0)
			srv[i].pid = 0;
		if (st != 0) {
			printf("%s did not exit 0\n", srv[i].name);
			tp_proc_stderr(&srv[i], NULL);
			goto out;
		}
	}
	r->rcvbuf_errors = qc_rcvbuf_errors();
	if (g && !ASSERT_OK(sockmig_udp_stats_read(g, &r->st), "stats"))
		goto out;
	if (cfg->kind == QC_LB && !ASSERT_OK(sockmig_quic_stats_read(g, &r->qst), "quic stats"))
		goto out;
	ret = SM_PASS;
out:
	for (i = 0; i < QC_PROCS; i++) {
		tp_proc_kill(&cli[i]);
		unlink(cli[i].err);
	}
	for (i = 0; i < QC_SRV_MAX; i++) {
		tp_proc_kill(&srv[i]);
		unlink(srv[i].err);
	}
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
	return ret;
}

/* Every program's JSON line. */
static void qc_show(const struct qc_res *r)
{
	for (int i = 0; i < QC_PROCS; i++)
		printf("  client %d: %s\n", i, r->cli[i]);
	for (int i = 0; i < r->servers; i++)
		printf("  server %d: %s\n", i, r->srv[i]);
}

/* The servers' sum of @key (-1 when one lacks it). */
static long qc_srv(const struct qc_res *r, const char *key)
{
	long v, sum = 0;

	for (int i = 0; i < r->servers; i++) {
		v = qt_json_num(r->srv[i], key);
		if (v < 0)
			return -1;
		sum += v;
	}
	return sum;
}

/* The flips of the server's "flip_at_ms" list from @lo to @hi (ms). */
static long qc_flips_in(const char *srv, long lo, long hi)
{
	const char *s = strstr(srv, "\"flip_at_ms\": [");
	long n = 0, t;
	char *end;

	if (!s)
		return -1;
	for (s += strlen("\"flip_at_ms\": ["); *s && *s != ']'; s = end + (*end == ',')) {
		t = strtol(s, &end, 10);
		if (end == s)
			return -1;
		n += t > lo && t < hi;
		while (*end == ' ')
			end++;
	}
	return n;
}

/* Per generation: the connections and datagrams the clients sent, the
 * datagrams the server received. */
struct qc_gens {
	long conns[QC_GENS], sent[QC_GENS], recv[QC_GENS];
};

/* Read the servers' "gens" lists (each with zeros for the others'
 * generations) and the clients' "gens" objects into @o. */
static void qc_gens_read(struct qc_res *r, struct qc_gens *o)
{
	const char *s;
	char *end;
	long gen;
	int i;

	memset(o, 0, sizeof(*o));
	/* [[connections, datagrams, strays, misroutes, requests], ...] */
	for (int v = 0; v < r->servers; v++) {
		s = strstr(r->srv[v], "\"gens\": [");
		for (i = 0, s = s ? s + strlen("\"gens\": [") : NULL; s && i < QC_GENS; i++) {
			s = strchr(s, '[');
			if (!s)
				break;
			strtol(s + 1, &end, 10);
			o->recv[i] += strtol(end + 1, &end, 10);
			s = strchr(end, ']');
		}
	}
	/* {"G": [connections, datagrams sent], ...} */
	for (int c = 0; c < QC_PROCS; c++) {
		s = strstr(r->cli[c], "\"gens\": {");
		for (s = s ? s + strlen("\"gens\": {") : NULL; s && *s == '"'; s = end + 3) {
			gen = strtol(s + 1, &end, 10);
			if (gen < 1 || gen > QC_GENS || strncmp(end, "\": [", 4) != 0)
				break;
			o->conns[gen - 1] += strtol(end + 4, &end, 10);
			o->sent[gen - 1] += strtol(end + 1, &end, 10);
			if (strncmp(end, "], ", 3) != 0)
				break;
		}
	}
}

/* Print the generations that own connections: sent / received; the
 * number of those where the two differ. */
static long qc_gens_print(struct qc_res *r)
{
	struct qc_gens *o = calloc(1, sizeof(*o));
	long differ = 0;

	if (!o)
		return -1;
	qc_gens_read(r, o);
	printf("  per generation, connections: datagrams sent by the clients / received by its "
	       "object:\n   ");
	for (int i = 0; i < QC_GENS; i++) {
		if (!o->conns[i] && !o->recv[i])
			continue;
		printf(" %d(%ld): %ld/%ld", i + 1, o->conns[i], o->sent[i], o->recv[i]);
		differ += o->sent[i] != o->recv[i];
	}
	printf("\n");
	free(o);
	return differ;
}

/* The clients' sum of @key; the lowest with @min, the highest with @max. */
static long qc_sum(struct qc_res *r, const char *key, int how)
{
	long v, out = 0;

	for (int i = 0; i < QC_PROCS; i++) {
		v = qt_json_num(r->cli[i], key);
		if (i == 0 || how == 0)
			out = i == 0 ? v : out + v;
		else
			out = how < 0 ? (v < out ? v : out) : (v > out ? v : out);
	}
	return out;
}

/* The number after "\"@key\": " in a JSON line, -1 when absent. */
static double qc_json_f(const char *line, const char *key)
{
	char pat[64];
	const char *s;

	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	s = strstr(line, pat);
	return s ? strtod(s + strlen(pat), NULL) : -1;
}

/* The clients' lowest @key. */
static double qc_rate(struct qc_res *r, const char *key)
{
	double v, out = 0;

	for (int i = 0; i < QC_PROCS; i++) {
		v = qc_json_f(r->cli[i], key);
		out = i == 0 || v < out ? v : out;
	}
	return out;
}

/* The tree and this file's programs (qt_enter()), @client the clients':
 * SM_PASS, SM_SKIP with its line, or SM_FAIL. */
static int qc_enter(struct qt_env *env, const char *client)
{
	char cpath[64];
	const char *const need[] = {"libsockmig.so.0", "tests/servers/quic_server.py",
				    "tests/servers/quic_conns_server.py", cpath, NULL};
	char why[PATH_MAX + 128];
	int ret;

	snprintf(cpath, sizeof(cpath), "tests/servers/%s", client);
	ret = qt_enter(env, need, why, sizeof(why));

	return ret == SM_SKIP ? SKIP("%s", why) : ret;
}

/* A case's end: qc_enter()'s directory, the case's memory. */
static int qc_leave(struct qt_env *env, struct qc_res *r, int ret)
{
	if (env && env->dir[0])
		rmdir(env->dir);
	free(env);
	free(r);
	return ret;
}

static int conns_case(enum qc_kind kind)
{
	struct qt_env *env = calloc(1, sizeof(*env));
	struct qc_res *r = calloc(1, sizeof(*r));
	long secs = qc_env("SOCKMIG_QUIC_CONNS_SECS", -1, QC_SECS_MAX), conns, steady, up, stop;
	long flips, est, failed, early, alive, strays, misroutes, differ;
	const char *client = getenv("SOCKMIG_QUIC_CONNS_CLIENT");
	int ret = SM_FAIL, servers;

	if (secs < 0) {
		ret = SKIP("a bench: SOCKMIG_QUIC_CONNS_SECS=S runs it (make bench-quic-conns)");
		goto out;
	}
	conns = qc_env("SOCKMIG_QUIC_CONNS_N", QC_CONNS, QC_CONNS_MAX);
	servers = (int)qc_env("SOCKMIG_QUIC_CONNS_SERVERS", 1, QC_SRV_MAX);
	if (!client || !*client || strcmp(client, "aioquic") == 0) {
		client = "quic_conns_client.py";
	} else if (strcmp(client, "ngtcp2") == 0) {
		client = "quic_conns_ngtcp2"; /* make bench-quic-conns builds it */
	} else {
		printf("SOCKMIG_QUIC_CONNS_CLIENT=%s: aioquic or ngtcp2\n", client);
		goto out;
	}
	if (!env || !r || !secs || !conns || !servers)
		goto out;
	if (secs <= QC_RAMP_SECS + 2) {
		printf("SOCKMIG_QUIC_CONNS_SECS=%ld: more than %d s of ramp, please\n", secs,
		       QC_RAMP_SECS + 2);
		goto out;
	}
	ret = qc_enter(env, client);
	if (ret != SM_PASS)
		goto out;
	ret = qc_run(env,
		     &(struct qc_cfg){.kind = kind,
				      .secs = secs,
				      .conns = conns,
				      .flip_ms = QC_FLIP_MS,
				      .ramp_secs = QC_RAMP_SECS,
				      .cid_len = kind == QC_LB ? QC_LB_CID_LEN
							       : SOCKMIG_QUIC_CID_DEFAULT,
				      .servers = servers,
				      .client = client},
		     r);
	if (ret != SM_PASS)
		goto out;
	ret = SM_FAIL;
	qc_show(r);
	up = qc_sum(r, "all_up_ms", 1);
	stop = qc_sum(r, "stop_ms", -1);
	flips = qc_srv(r, "flips");
	steady = 0;
	for (int i = 0; i < r->servers && qc_sum(r, "all_up_ms", -1) >= 0; i++)
		steady += qc_flips_in(r->srv[i], up, stop);
	est = qc_sum(r, "established", 0);
	failed = qc_sum(r, "failed_handshake", 0);
	early = qc_sum(r, "closed_early", 0);
	alive = qc_sum(r, "alive", 0);
	strays = qc_srv(r, "strays");
	misroutes = qc_srv(r, "misroutes");
	printf("  %ld connections asked, %ld established, %ld failed handshakes, %ld closed "
	       "early, %ld alive at the end\n",
	       conns, est, failed, early, alive);
	printf("  %ld flips, %ld of them with every connection up (%.1f s of %ld)\n", flips, steady,
	       up > 0 ? (stop - up) / 1000.0 : 0.0, secs);
	printf("  client: %ld datagrams sent, %ld PINGs (%ld acknowledged, %ld late by half an "
	       "interval); datagrams/s per connection alive at the end: lowest %.2f",
	       qc_sum(r, "sent", 0), qc_sum(r, "pings", 0), qc_sum(r, "pings_acked", 0),
	       qc_sum(r, "late_pings", 0), qc_rate(r, "rate_min"));
	for (int i = 0; i < QC_PROCS; i++)
		printf(", median of client %d %.2f", i, qc_json_f(r->cli[i], "rate_p50"));
	printf("\n");
	printf("  server%s: %ld datagrams received, %ld strays, %ld misroutes (to a non-owning "
	       "generation%s), %ld connections, %ld handshakes, %ld live at exit; "
	       "UDP RcvbufErrors %ld\n",
	       r->servers > 1 ? "s" : "", qc_srv(r, "datagrams"), strays, misroutes,
	       r->servers > 1 ? " of the same process: a stray to another is a stray only" : "",
	       qc_srv(r, "connections"), qc_srv(r, "handshakes"), qc_srv(r, "live_at_exit"),
	       r->rcvbuf_errors);
	differ = qc_gens_print(r);
	printf("  CPU time: servers");
	for (int i = 0; i < r->servers; i++)
		printf(" %.1f s", qc_json_f(r->srv[i], "cpu_s"));
	printf(", clients %.1f s and %.1f s; generations whose datagrams received differ from "
	       "those sent: %ld\n",
	       qc_json_f(r->cli[0], "cpu_s"), QC_PROCS > 1 ? qc_json_f(r->cli[1], "cpu_s") : 0.0,
	       differ);
	if (kind != QC_PLAIN)
		printf("  group: %llu new flows, %llu hits, %llu fallbacks, %llu expired, "
		       "%llu not learned, %llu kernel hash\n",
		       (unsigned long long)r->st.new_flows, (unsigned long long)r->st.flow_hits,
		       (unsigned long long)r->st.fallbacks, (unsigned long long)r->st.expired,
		       (unsigned long long)r->st.not_learned,
		       (unsigned long long)r->st.kernel_hash);
	if (kind == QC_LB)
		printf("  CIDs: %ld minted, %ld given out and decoded, %ld not their socket's; "
		       "datagrams routed by CID %llu, stale %llu, other (as flow) %llu\n",
		       qc_srv(r, "minted"), qc_srv(r, "cids_checked"), qc_srv(r, "cids_wrong"),
		       (unsigned long long)r->qst.hits, (unsigned long long)r->qst.stale,
		       (unsigned long long)r->qst.other);
	if (!ASSERT_EQ(flips, secs * 1000 / QC_FLIP_MS, "flips") ||
	    !ASSERT_EQ(qc_srv(r, "objects"), flips + 1, "server objects"))
		goto out;
	if (kind != QC_PLAIN) {
		/* a server that cannot keep up (its sockets full: the machine's
		 * limit, not a misroute) times handshakes out */
		if (r->rcvbuf_errors != 0)
			printf("  overloaded: %ld datagrams dropped at full sockets; handshakes "
			       "that timed out are not failures of the group\n",
			       r->rcvbuf_errors);
		else if (!ASSERT_EQ(est, conns, "connections established") ||
			 !ASSERT_EQ(failed, 0, "failed handshakes") ||
			 !ASSERT_EQ(alive, conns, "connections alive at the end") ||
			 !ASSERT_EQ(qc_srv(r, "requests"), conns, "one request a connection") ||
			 !ASSERT_EQ(differ, 0,
				    "generations that received other than was sent them"))
			goto out;
		if (!ASSERT_EQ(early, 0, "established connections closed early") ||
		    !ASSERT_EQ(strays, 0, "datagrams to an object that did not know them") ||
		    !ASSERT_EQ(misroutes, 0, "datagrams to a non-owning generation") ||
		    !ASSERT_EQ(r->st.kernel_hash, 0, "kernel hash") ||
		    (kind == QC_LB && (!ASSERT_EQ(r->qst.stale, 0, "stale CIDs") ||
				       !ASSERT_EQ(qc_srv(r, "cids_wrong"), 0,
						  "CIDs given out that are not their socket's"))) ||
		    !ASSERT_TRUE(steady >= (secs - QC_RAMP_SECS >= QC_STEADY + 10 ? QC_STEADY : 1),
				 "flips with every connection up"))
			goto out;
	} else if (!ASSERT_TRUE(strays > 0, "the baseline's datagrams reach objects that do not "
					    "know them")) {
		goto out;
	}
	ret = SM_PASS;
out:
	return qc_leave(env, r, ret);
}

SM_LONG(udp_quic_conns_receive, 240)
{
	return conns_case(QC_RECEIVE);
}

SM_LONG(udp_quic_conns_quic_lb, 240)
{
	return conns_case(QC_LB);
}

SM_LONG(udp_quic_conns_plain, 240)
{
	return conns_case(QC_PLAIN);
}

/*
 * NAT rebinding under flips, a suite case: RB_CONNS connections, each moving
 * to a new source port every RB_REBIND_MS once its answer came, across a
 * flip every RB_FLIP_MS. A moved connection's datagrams are a new flow.
 * 1. mode quic-lb, the server minting its CIDs with libsockmig: the group
 *    routes them by CID to the generation that owns the connection:
 *    every connection alive to the end, 0 strays, 0 misroutes;
 * 2. the baseline, mode flow (learn on receive): a moved connection's next
 *    datagram is a new flow, for the working generation: misroutes.
 */
#define RB_CONNS     60
#define RB_SECS	     8
#define RB_RAMP_SECS 2
#define RB_FLIP_MS   500
#define RB_REBIND_MS 700

static int rebind_case(enum qc_kind kind)
{
	const struct qc_cfg cfg = {.kind = kind,
				   .secs = RB_SECS,
				   .conns = RB_CONNS,
				   .flip_ms = RB_FLIP_MS,
				   .ramp_secs = RB_RAMP_SECS,
				   .cid_len = QC_LB_CID_LEN,
				   .rebind_ms = RB_REBIND_MS,
				   .servers = 1,
				   .client = "quic_conns_client.py"};
	struct qt_env *env = calloc(1, sizeof(*env));
	struct qc_res *r = calloc(1, sizeof(*r));
	long misroutes, rebinds;
	int ret = SM_FAIL;

	if (!env || !r)
		goto out;
	ret = qc_enter(env, cfg.client);
	if (ret != SM_PASS || (ret = qc_run(env, &cfg, r)) != SM_PASS)
		goto out;
	ret = SM_FAIL;
	qc_show(r);
	misroutes = qc_srv(r, "misroutes");
	rebinds = qc_sum(r, "rebinds", 0);
	printf("  %s: %ld rebinds over %ld flips; %ld alive of %d, %ld closed early; server: "
	       "%ld strays, %ld misroutes, %ld CIDs minted, %ld given out and decoded, %ld not "
	       "their socket's\n",
	       kind == QC_LB ? "quic-lb" : "flow", rebinds, qc_srv(r, "flips"),
	       qc_sum(r, "alive", 0), RB_CONNS, qc_sum(r, "closed_early", 0), qc_srv(r, "strays"),
	       misroutes, qc_srv(r, "minted"), qc_srv(r, "cids_checked"), qc_srv(r, "cids_wrong"));
	printf("  group: %llu new flows, %llu hits, %llu fallbacks, %llu kernel hash; CIDs: "
	       "%llu hits, %llu stale, %llu other\n",
	       (unsigned long long)r->st.new_flows, (unsigned long long)r->st.flow_hits,
	       (unsigned long long)r->st.fallbacks, (unsigned long long)r->st.kernel_hash,
	       (unsigned long long)r->qst.hits, (unsigned long long)r->qst.stale,
	       (unsigned long long)r->qst.other);
	if (!ASSERT_EQ(qc_srv(r, "flips"), RB_SECS * 1000 / RB_FLIP_MS, "flips") ||
	    !ASSERT_EQ(qc_sum(r, "established", 0), RB_CONNS, "connections established") ||
	    !ASSERT_TRUE(rebinds >= 3 * RB_CONNS, "3 rebinds a connection or more"))
		goto out;
	if (kind == QC_LB) {
		if (!ASSERT_EQ(qc_sum(r, "alive", 0), RB_CONNS, "connections alive at the end") ||
		    !ASSERT_EQ(qc_sum(r, "closed_early", 0), 0, "connections closed early") ||
		    !ASSERT_EQ(qc_srv(r, "strays"), 0, "strays") ||
		    !ASSERT_EQ(misroutes, 0, "datagrams to a non-owning generation") ||
		    !ASSERT_EQ(qc_srv(r, "cids_wrong"), 0,
			       "CIDs given out that are not their socket's") ||
		    !ASSERT_TRUE(qc_srv(r, "cids_checked") >= QC_CIDS_PER_CONN * RB_CONNS,
				 "every connection's CIDs checked") ||
		    !ASSERT_GT(r->qst.hits, 0, "datagrams routed by CID") ||
		    !ASSERT_EQ(r->qst.stale, 0, "stale CIDs") ||
		    !ASSERT_EQ(r->st.kernel_hash, 0, "kernel hash"))
			goto out;
	} else if (!ASSERT_GT(misroutes, 0, "the baseline misroutes moved connections")) {
		goto out;
	}
	ret = SM_PASS;
out:
	return qc_leave(env, r, ret);
}

SM_LONG(udp_quic_real_lb_rebind, 90)
{
	return rebind_case(QC_LB);
}

SM_LONG(udp_quic_real_flow_rebind, 90)
{
	return rebind_case(QC_RECEIVE);
}

/*
 * A second real QUIC stack, a suite case: NG_CONNS connections of the C
 * client on libngtcp2 (tests/servers/quic_conns_ngtcp2, make quic-client)
 * to the aioquic servers, two processes sharing the generations out, a
 * flip every NG_FLIP_MS:
 * 1. learn on receive, and 2. quic-lb: every connection alive to the end,
 *    0 strays, every generation received what its connections sent;
 * 3. the baseline, plain SO_REUSEPORT: strays.
 */
#define NG_CONNS     60
#define NG_SECS	     8
#define NG_RAMP_SECS 2
#define NG_FLIP_MS   500
#define NG_CLIENT    "quic_conns_ngtcp2"

static int ngtcp2_case(enum qc_kind kind)
{
	const struct qc_cfg cfg = {.kind = kind,
				   .secs = NG_SECS,
				   .conns = NG_CONNS,
				   .flip_ms = NG_FLIP_MS,
				   .ramp_secs = NG_RAMP_SECS,
				   .cid_len =
					   kind == QC_LB ? QC_LB_CID_LEN : SOCKMIG_QUIC_CID_DEFAULT,
				   .servers = 2,
				   .client = NG_CLIENT};
	struct qt_env *env = calloc(1, sizeof(*env));
	struct qc_res *r = calloc(1, sizeof(*r));
	char bin[PATH_MAX];
	long strays, differ;
	int ret = SM_FAIL;

	if (!env || !r || !qt_build_dir(bin, sizeof(bin) - 64))
		goto out;
	strcat(bin, "/tests/servers/" NG_CLIENT);
	if (access(bin, X_OK) < 0) {
		ret = SKIP("no %s: make quic-client compiles it in the real-QUIC tree", bin);
		goto out;
	}
	ret = qc_enter(env, cfg.client);
	if (ret != SM_PASS || (ret = qc_run(env, &cfg, r)) != SM_PASS)
		goto out;
	ret = SM_FAIL;
	qc_show(r);
	strays = qc_srv(r, "strays");
	differ = qc_gens_print(r);
	printf("  %s: %ld of %d established, %ld alive, %ld closed early; %ld datagrams sent, "
	       "%ld received, %ld strays; group: %llu new flows, %llu kernel hash\n",
	       kind == QC_LB	  ? "quic-lb"
	       : kind == QC_PLAIN ? "plain"
				  : "flow",
	       qc_sum(r, "established", 0), NG_CONNS, qc_sum(r, "alive", 0),
	       qc_sum(r, "closed_early", 0), qc_sum(r, "sent", 0), qc_srv(r, "datagrams"), strays,
	       (unsigned long long)r->st.new_flows, (unsigned long long)r->st.kernel_hash);
	if (!ASSERT_EQ(qc_srv(r, "flips"), NG_SECS * 1000 / NG_FLIP_MS, "flips") ||
	    !ASSERT_EQ(qc_srv(r, "datagrams"), qc_sum(r, "sent", 0), "datagrams received = sent"))
		goto out;
	if (kind != QC_PLAIN) {
		if (!ASSERT_EQ(qc_sum(r, "established", 0), NG_CONNS, "connections established") ||
		    !ASSERT_EQ(qc_sum(r, "alive", 0), NG_CONNS, "connections alive at the end") ||
		    !ASSERT_EQ(qc_sum(r, "closed_early", 0), 0, "connections closed early") ||
		    !ASSERT_EQ(qc_srv(r, "requests"), NG_CONNS, "one request a connection") ||
		    !ASSERT_EQ(strays, 0, "datagrams to an object that did not know them") ||
		    !ASSERT_EQ(differ, 0, "generations that received other than was sent them") ||
		    !ASSERT_EQ(r->st.kernel_hash, 0, "kernel hash") ||
		    (kind == QC_LB && (!ASSERT_GT(r->qst.hits, 0, "datagrams routed by CID") ||
				       !ASSERT_EQ(r->qst.stale, 0, "stale CIDs") ||
				       !ASSERT_EQ(qc_srv(r, "cids_wrong"), 0,
						  "CIDs given out that are not their socket's"))))
			goto out;
	} else if (!ASSERT_GT(strays, 0,
			      "the baseline's datagrams reach objects that do not "
			      "know them")) {
		goto out;
	}
	ret = SM_PASS;
out:
	return qc_leave(env, r, ret);
}

SM_LONG(udp_quic_real_ngtcp2_flow, 90)
{
	return ngtcp2_case(QC_RECEIVE);
}

SM_LONG(udp_quic_real_ngtcp2_quic_lb, 90)
{
	return ngtcp2_case(QC_LB);
}

SM_LONG(udp_quic_real_ngtcp2_plain, 90)
{
	return ngtcp2_case(QC_PLAIN);
}
