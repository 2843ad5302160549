// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * HTTP/3 under nginx, restarted 20 times under a real HTTP/3 client load
 * (issue 13's acceptance). nginx 1.26 (Debian 13's, HTTP/3 built in) with
 * 2 workers, `listen 127.0.0.1:P quic reuseport` (a socket per worker),
 * serving a static file; the load is tests/servers/h3_load.py (aioquic's
 * HTTP/3): long-lived connections each sending GETs one after the other,
 * every answer checked, a connection the server closes gracefully
 * replaced, every failed request counted by cause.
 *
 * An nginx reload (SIGHUP) keeps its sockets, so the restart that moves
 * flows between sockets is two overlapping instances: the new master
 * (its own prefix and pid file) binds its own reuseport sockets, its
 * workers run, the load's probe is answered by it (x-inst header), then
 * the old master gets SIGQUIT: its workers stop taking new connections,
 * send GOAWAY and keep their QUIC sockets open until their connections
 * have ended (nginx does not close QUIC listeners in a stopping worker).
 * With the shim (LD_PRELOAD, SOCKMIG_REUSEPORT=udp, flow mode; the
 * generation is the master's exec, its workers inherit it) every flow
 * stays with the socket that took it and nothing fails; without sockmig
 * (the same nginx and its own reuseport) the kernel's hash moves flows of
 * live connections to the other instance, which answers with stateless
 * resets (the instances share quic_host_key, as a fleet behind one
 * address does, so the client can tell), and requests fail.
 *
 * ngtcp2's example server (Debian 13's gtlsserver, HTTP/3 on libngtcp2
 * and GnuTLS: one UDP socket, no SO_REUSEPORT of its own, no graceful
 * stop) is restarted 20 times the same way, under the same load made of
 * clients' visits (a connection closed by its client after 4 requests):
 * the new instance (its own document root, whose inst.txt names it)
 * starts, the probe is answered by it, the load settles (every
 * connection open before the probe has ended), and the old instance gets
 * SIGINT. The shim sets SO_REUSEPORT for it (SOCKMIG_REUSEPORT=udp); with
 * the group, a visit begun on the old instance ends there and nothing
 * fails; without it (SOCKMIG_UDP_MODE=off: the same SO_REUSEPORT, no
 * group) the kernel's hash moves visits under way to the new instance,
 * which does not know them, and requests time out. The visits take the
 * kernel's ephemeral ports, which come back within a second here: a new
 * visit from a port that one on the old instance had is a new flow by its
 * own client CID (udp.bpf.c); before the program told them apart, it went
 * to the old instance, which owned the 4-tuple, and died with it at the
 * SIGINT (1 request in 2 of 19 runs, traced by port).
 *
 * In the Debian 13 tree of scripts/quic-root, entered as
 * tests/test_udp_quic_real.c does (its own mount namespace, .output/ at
 * /opt/sockmig, /proc and /sys/fs/bpf bound in, chroot(8)); the run
 * directory (configurations, certificate, logs) is made under the tree's
 * /tmp and removed. Skips when the tree or its server is missing.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "burst.h"
#include "harness.h"
#include "quic_tree.h"
#include "proc.h"
#include "sockmig.h"

#define HN_PORT	    34900
#define HN_RESTARTS 20
#define HN_INSTS    (HN_RESTARTS + 1)
/* tp_proc_start() cuts its arguments at 255 bytes: a longer line is refused */
#define HN_ARGS_MAX 255
#define HN_WAIT_MS  10000 /* a start, a probe, an exit */

struct hn {
	struct qt_env q;	      /* the tree and the build (its dir unused) */
	char dir[PATH_MAX];	      /* the run directory, as the host sees it */
	const char *in;		      /* the same, as the tree sees it */
	char err[PATH_MAX + 64];      /* the client's stderr */
	struct tp_proc ngx[HN_INSTS]; /* the instances (masters, for nginx) */
	int n;
	struct tp_proc cli;
	bool plain;
	bool ngtcp2; /* gtlsserver, not nginx */
};

/* What the client's result line says. */
struct hn_res {
	long requests, ok, failed, retried, connections, goaways, resets;
	int settled; /* ngtcp2: restarts after which the load settled */
};

/* The tree with nginx, or a skip reason in @why; the mounts of the
 * case's own mount namespace and the run directory. SM_PASS when ready. */
static int hn_enter(struct hn *h, char *why, size_t len)
{
	static const char *const need[] = {"libsockmig.so.0", "libsockmig-preload.so",
					   "tests/servers/h3_load.py", NULL};
	int ret = qt_mount(&h->q, need, h->ngtcp2 ? "usr/sbin/gtlsserver" : "usr/sbin/nginx", why,
			   len);

	if (ret != SM_PASS)
		return ret;
	/* tp_proc keeps a stderr path of 128 bytes */
	if (strlen(h->q.root) > 60) {
		printf("the tree's path %s is too long for this case\n", h->q.root);
		return SM_FAIL;
	}
	snprintf(h->dir, sizeof(h->dir), "%s/tmp/sm-h3.XXXXXX", h->q.root);
	if (!mkdtemp(h->dir)) {
		printf("mkdtemp %s: %s\n", h->dir, strerror(errno));
		h->dir[0] = '\0';
		return SM_FAIL;
	}
	h->in = h->dir + strlen(h->q.root);
	snprintf(h->err, sizeof(h->err), "%s/client.stderr", h->dir);
	return SM_PASS;
}

/* python3 with tests/servers/h3_load.py and @args, in the tree, as @p. */
static bool hn_python(struct hn *h, struct tp_proc *p, const char *name, const char *args)
{
	char all[512];

	snprintf(all, sizeof(all), "%s /usr/bin/python3 /opt/sockmig/tests/servers/h3_load.py %s",
		 h->q.root, args);
	if (strlen(all) >= HN_ARGS_MAX ||
	    !tp_proc_start(p, h->dir, name, "/usr/sbin/chroot", NULL, false, NULL, -1, all)) {
		printf("cannot start %s\n", name);
		return false;
	}
	return true;
}

/* The certificate, the host key and the file, made in the tree. */
static bool hn_setup(struct hn *h)
{
	struct tp_proc p = TP_PROC_INIT;
	char args[PATH_MAX + 16];
	bool ok;

	snprintf(args, sizeof(args), "--setup %s", h->in);
	if (!hn_python(h, &p, "setup", args))
		return false;
	ok = tp_wait_exit(p.pid, HN_WAIT_MS) == 0;
	if (!ok) {
		printf("the setup failed\n");
		tp_proc_stderr(&p, NULL);
	} else {
		p.pid = 0;
	}
	tp_proc_kill(&p);
	return ok;
}

/* Instance @k's directory: its nginx.conf, or gtlsserver's document root
 * (f.txt, and inst.txt: "@k"). nginx's keepalive_timeout is also
 * HTTP/3's idle timeout: at nginx's 75 s, a connection whose client has
 * gone (a stateless reset from the other instance, without sockmig) keeps
 * a stopping worker alive past the case's bound (worker_shutdown_timeout
 * did not end such a worker within 15 s here). The load never idles. */
static bool hn_conf(struct hn *h, int k)
{
	char p[PATH_MAX + 64];
	const char *d = h->in;
	FILE *f;

	snprintf(p, sizeof(p), "%s/i%d", h->dir, k);
	if (mkdir(p, 0700) < 0) {
		printf("mkdir %s: %s\n", p, strerror(errno));
		return false;
	}
	if (h->ngtcp2) {
		/* gtlsserver's document root: the load's file, and its name */
		snprintf(p, sizeof(p), "%s/i%d/f.txt", h->dir, k);
		if (symlink("../html/f.txt", p) < 0) {
			printf("symlink %s: %s\n", p, strerror(errno));
			return false;
		}
		snprintf(p, sizeof(p), "%s/i%d/inst.txt", h->dir, k);
	} else {
		snprintf(p, sizeof(p), "%s/i%d/nginx.conf", h->dir, k);
	}
	f = fopen(p, "w");
	if (!f) {
		printf("%s: %s\n", p, strerror(errno));
		return false;
	}
	if (h->ngtcp2) {
		fprintf(f, "%d", k);
		return fclose(f) == 0;
	}
	fprintf(f,
		"daemon off;\nmaster_process on;\nworker_processes 2;\nuser root;\n"
		"pid %s/i%d/nginx.pid;\nerror_log %s/i%d/error.log notice;\n"
		"worker_shutdown_timeout 10s;\n"
		"events { worker_connections 512; }\n"
		"http {\n  access_log off;\n  keepalive_timeout 5s;\n  server {\n"
		"    listen 127.0.0.1:%d quic reuseport;\n"
		"    ssl_certificate %s/cert.pem;\n    ssl_certificate_key %s/key.pem;\n"
		"    quic_host_key %s/host.key;\n"
		"    root %s/html;\n    add_header x-inst %d always;\n  }\n}\n",
		d, k, d, k, HN_PORT, d, d, d, d, k);
	return fclose(f) == 0;
}

#define HN_SHIM "/usr/bin/env LD_PRELOAD=/opt/sockmig/libsockmig-preload.so "

/* Instance @k started: nginx's master (with the shim unless plain) and its
 * 2 workers running, or gtlsserver (with the shim, which sets its
 * SO_REUSEPORT; plain: registers nothing). Its socket is the probe's to
 * find. */
static bool hn_start(struct hn *h, int k)
{
	/* the shim's settings pass chroot(8), which has no shim */
	static const char *const ng_env[] = {"SOCKMIG_REUSEPORT=udp", "SOCKMIG_UDP_MODE=flow",
					     "SOCKMIG_DEBUG=1", NULL};
	static const char *const ng_plain_env[] = {"SOCKMIG_REUSEPORT=udp", "SOCKMIG_UDP_MODE=off",
						   "SOCKMIG_DEBUG=1", NULL};
	struct tp_proc *p = &h->ngx[h->n];
	char name[16], all[PATH_MAX * 2];
	unsigned long long end = burst_now_ms() + HN_WAIT_MS;
	const char *prog = h->ngtcp2 ? "gtlsserver" : "nginx";

	if (!hn_conf(h, k))
		return false;
	snprintf(name, sizeof(name), "i%d", k);
	if (h->ngtcp2)
		snprintf(all, sizeof(all),
			 "%s " HN_SHIM "/usr/sbin/gtlsserver -q -d %s/i%d 127.0.0.1 %d %s/key.pem "
			 "%s/cert.pem",
			 h->q.root, h->in, k, HN_PORT, h->in, h->in);
	else
		snprintf(all, sizeof(all), "%s %s/usr/sbin/nginx -p %s/i%d -c %s/i%d/nginx.conf",
			 h->q.root,
			 h->plain ? ""
				  : HN_SHIM "SOCKMIG_REUSEPORT=udp SOCKMIG_UDP_MODE=flow "
					    "SOCKMIG_DEBUG=1 ",
			 h->in, k, h->in, k);
	if (strlen(all) >= HN_ARGS_MAX) {
		printf("%s %s: the command line is too long (the tree's path)\n", prog, name);
		return false;
	}
	if (!tp_proc_start(p, h->dir, name, "/usr/sbin/chroot", NULL, false,
			   !h->ngtcp2 ? NULL
			   : h->plain ? ng_plain_env
				      : ng_env,
			   -1, all)) {
		printf("cannot start %s %s\n", prog, name);
		return false;
	}
	h->n++;
	while (!h->ngtcp2 && tp_children_of(p->pid) < 2) {
		if (burst_now_ms() > end || tp_start_time(p->pid, true) == 0) {
			printf("nginx %s has no 2 workers\n", name);
			tp_proc_stderr(p, NULL);
			return false;
		}
		usleep(5000);
	}
	return true;
}

/* The load's probe is answered by instance @k. */
static bool hn_probe(struct hn *h, int k, long *tries)
{
	char cmd[32], line[256], want[32];
	int n = snprintf(want, sizeof(want), "answered %d ", k);

	snprintf(cmd, sizeof(cmd), "probe %d", k);
	if (!tp_proc_cmd(&h->cli, cmd) ||
	    !tp_proc_line(&h->cli, line, sizeof(line), burst_now_ms() + 4 * HN_WAIT_MS) ||
	    strncmp(line, want, (size_t)n) != 0) {
		printf("instance %d does not answer the probe\n", k);
		return false;
	}
	*tries += strtol(line + n, NULL, 10);
	return true;
}

/* ngtcp2: the load's visits begun before the probe have ended. 1 when
 * they have, 0 when not within the load's bound, -1 without an answer. */
static int hn_settle(struct hn *h)
{
	char line[64];

	if (!tp_proc_cmd(&h->cli, "settle") ||
	    !tp_proc_line(&h->cli, line, sizeof(line), burst_now_ms() + 4 * HN_WAIT_MS)) {
		printf("the load does not answer \"settle\"\n");
		return -1;
	}
	return strncmp(line, "settled ", 8) == 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The signal that stops an instance: nginx's graceful quit, gtlsserver's
 * end (its only one). */
static int hn_sig(const struct hn *h)
{
	return h->ngtcp2 ? SIGINT : SIGQUIT;
}

/* Instance @i, sent hn_sig(), exits 0 within the bound. */
static bool hn_reap_one(struct hn *h, int i)
{
	int st;

	if (h->ngx[i].pid <= 0)
		return true;
	st = tp_wait_exit(h->ngx[i].pid, HN_WAIT_MS + 5000);
	if (st != 0) {
		printf("%s %s did not exit 0 after %s (%s 0x%x)\n",
		       h->ngtcp2 ? "gtlsserver" : "nginx", h->ngx[i].name, strsignal(hn_sig(h)),
		       st < 0 ? "still running:" : "wait status", st < 0 ? 0 : st);
		return false;
	}
	h->ngx[i].pid = 0;
	return true;
}

/* Every instance gone (hn_sig() sent): each exits 0 within the bound. */
static bool hn_reap(struct hn *h)
{
	bool ok = true;

	for (int i = 0; i < h->n; i++)
		ok = hn_reap_one(h, i) && ok;
	return ok;
}

/*
 * The restarts under the load: @r the client's counts, @restarts how
 * many, @tries the probes' connections, @regs the sockets the shim
 * registered. SM_PASS when it ran to the end.
 */
static int hn_run(struct hn *h, struct hn_res *r, int *restarts, long *tries, long *regs,
		  bool *reaped)
{
	char args[PATH_MAX + 128], line[2048];
	bool exits = true;
	int k, s;

	if (!hn_setup(h) || !hn_start(h, 1))
		return SM_FAIL;
	snprintf(args, sizeof(args), "--port %d --file %s/html/f.txt%s", HN_PORT, h->in,
		 h->ngtcp2 ? " --per-conn 4 --inst-path /inst.txt" : "");
	if (!hn_python(h, &h->cli, "client", args) ||
	    !tp_proc_line(&h->cli, line, sizeof(line), burst_now_ms() + HN_WAIT_MS) ||
	    strcmp(line, "load") != 0) {
		printf("the load did not start\n");
		tp_proc_stderr(&h->cli, NULL);
		return SM_FAIL;
	}
	*restarts = 0;
	for (k = 2; k <= HN_INSTS; k++) {
		/* 150-250 ms between restarts, varied and reproducible */
		sleep_ms(150 + (k * 37) % 101);
		if (!hn_start(h, k) || !hn_probe(h, k, tries))
			return SM_FAIL;
		if (h->ngtcp2) {
			/* no graceful stop: the visits on the old instance end
			 * first (without sockmig some of them have moved) */
			s = hn_settle(h);
			if (s < 0)
				return SM_FAIL;
			r->settled += s;
		}
		kill(h->ngx[k - 2].pid, hn_sig(h));
		if (h->ngtcp2)
			exits = hn_reap_one(h, k - 2) && exits;
		(*restarts)++;
	}
	sleep_ms(500);
	if (!tp_proc_cmd(&h->cli, "stop") ||
	    !tp_proc_line(&h->cli, line, sizeof(line), burst_now_ms() + HN_WAIT_MS) ||
	    line[0] != '{') {
		printf("no result line from the load\n");
		tp_proc_stderr(&h->cli, NULL);
		return SM_FAIL;
	}
	printf("  load: %s\n", line);
	r->requests = qt_json_num(line, "requests");
	r->ok = qt_json_num(line, "ok");
	r->failed = qt_json_num(line, "failed");
	r->retried = qt_json_num(line, "retried");
	r->connections = qt_json_num(line, "connections");
	r->goaways = qt_json_num(line, "goaways");
	r->resets = qt_json_num(line, "stateless_resets");
	if (tp_wait_exit(h->cli.pid, 5000) == 0)
		h->cli.pid = 0;
	kill(h->ngx[h->n - 1].pid, hn_sig(h));
	*reaped = hn_reap(h) && exits;
	*regs = 0;
	for (int i = 0; i < h->n; i++) {
		int c = tp_proc_stderr(&h->ngx[i], "registered in UDP group");

		*regs += c > 0 ? c : 0;
	}
	return SM_PASS;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

static void hn_cleanup(struct hn *h)
{
	for (int i = 0; i < h->n; i++)
		if (h->ngx[i].pid > 0 || h->ngx[i].in >= 0)
			tp_proc_kill(&h->ngx[i]);
	if (h->cli.pid > 0 || h->cli.in >= 0)
		tp_proc_kill(&h->cli);
	/* the run directory, in the tree: nothing left behind */
	if (h->dir[0] && nftw(h->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		printf("cannot remove %s: %s\n", h->dir, strerror(errno));
}

static int h3_case(bool ngtcp2, bool plain)
{
	SOCKMIG_OPTS(sockmig_udp_counters, ct);
	struct sockmig_udp_group *g = NULL;
	struct sockmig_udp_stats st = {0};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(HN_PORT)};
	struct hn_res r = {-1, -1, -1, -1, -1, -1, -1, 0};
	char why[PATH_MAX + 128];
	long tries = 0, regs = -1;
	int restarts = 0, ret;
	bool reaped = false;
	struct hn *h = calloc(1, sizeof(*h));

	if (!h)
		return SM_FAIL;
	h->plain = plain;
	h->ngtcp2 = ngtcp2;
	h->cli.pid = -1;
	h->cli.in = h->cli.out = -1;
	ret = hn_enter(h, why, sizeof(why));
	if (ret == SM_SKIP) {
		ret = SKIP("%s", why);
		goto out;
	}
	if (ret != SM_PASS)
		goto out;
	ret = SM_FAIL;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!plain) {
		/* the case makes the group (and removes it); the shim joins it */
		SOCKMIG_OPTS(sockmig_udp_group_opts, go, .mode = SOCKMIG_UDP_MODE_FLOW);

		g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &go);
		if (!ASSERT_TRUE(g != NULL, "udp group"))
			goto out;
	}
	if (hn_run(h, &r, &restarts, &tries, &regs, &reaped) != SM_PASS)
		goto out;
	printf("  %d restarts: %ld requests, %ld ok, %ld failed, %ld retried after a GOAWAY; "
	       "%ld connections, %ld closed by GOAWAY, %ld stateless resets; %ld probe "
	       "connections; %ld sockets registered\n",
	       restarts, r.requests, r.ok, r.failed, r.retried, r.connections, r.goaways, r.resets,
	       tries, regs);
	if (ngtcp2)
		printf("  the load settled after %d of %d restarts\n", r.settled, restarts);
	if (g && ASSERT_OK(sockmig_udp_stats_read(g, &st), "stats") &&
	    ASSERT_OK(sockmig_udp_counters_read(g, &ct), "counters"))
		printf("  group: %llu new flows (%llu new QUIC connections from a known "
		       "4-tuple), %llu hits (%llu to an older generation), %llu fallbacks, %llu "
		       "kernel hash\n",
		       (unsigned long long)st.new_flows,
		       (unsigned long long)ct.quic_new_connections,
		       (unsigned long long)st.flow_hits, (unsigned long long)ct.old_generation,
		       (unsigned long long)st.fallbacks, (unsigned long long)st.kernel_hash);
	if (!ASSERT_EQ(restarts, HN_RESTARTS, "restarts") ||
	    !ASSERT_TRUE(r.requests >= 200, "at least 200 requests") ||
	    !ASSERT_EQ(r.ok + r.failed, r.requests, "every request ok or failed"))
		goto out;
	/* nginx's stopping workers close their connections (GOAWAY); a
	 * gtlsserver is stopped once the visits it had have ended */
	if (!ngtcp2 && !ASSERT_TRUE(r.goaways > 0, "connections closed gracefully by stopping "
						   "instances"))
		goto out;
	if (plain) {
		if (!ASSERT_EQ(regs, 0, "sockets registered without the group") ||
		    !ASSERT_TRUE(r.failed > 0, "plain SO_REUSEPORT fails requests"))
			goto out;
	} else if (!ASSERT_EQ(regs, (ngtcp2 ? 1 : 2) * HN_INSTS,
			      "sockets registered (1 per gtlsserver, 2 per nginx)") ||
		   !ASSERT_EQ(r.failed, 0, "failed requests") ||
		   !ASSERT_EQ(r.resets, 0, "stateless resets") ||
		   !ASSERT_EQ(st.kernel_hash, 0, "kernel hash")) {
		goto out;
	} else if (ngtcp2 &&
		   (!ASSERT_EQ(r.settled, HN_RESTARTS, "the load settled after every restart") ||
		    !ASSERT_TRUE(ct.old_generation > 0, "visits' datagrams to the old instance"))) {
		goto out;
	}
	if (!ASSERT_TRUE(reaped, "every instance exited 0 after its stop signal"))
		goto out;
	ret = SM_PASS;
out:
	hn_cleanup(h);
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
	free(h);
	return ret;
}

SM_LONG(udp_h3_nginx_flow, 150)
{
	return h3_case(false, false);
}

SM_LONG(udp_h3_nginx_plain, 150)
{
	return h3_case(false, true);
}

SM_LONG(udp_h3_ngtcp2_flow, 150)
{
	return h3_case(true, false);
}

SM_LONG(udp_h3_ngtcp2_plain, 150)
{
	return h3_case(true, true);
}
