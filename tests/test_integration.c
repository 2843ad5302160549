// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unmodified servers, reloaded under a new-connection-per-request load,
 * every client outcome counted. Each server runs three times, each in the
 * case's own network namespace:
 *   none    tcp_migrate_req=0, no sockmig: the baseline, resets expected;
 *   attach  `sockmig attach --port P` started next to the first process;
 *   shim    every server process started with LD_PRELOAD=libsockmig-preload.so.
 * Servers:
 *   haproxy  2.6, reloaded the classic way: a new process with -sf (no fd
 *            passing), which binds its own listener and tells the old
 *            process to close its listener and go;
 *   nginx    `listen ... reuseport`, worker_processes 4, reloaded (HUP) to 1
 *            worker and back to 4: the master closes three listeners;
 *   static   a statically linked server of the tests (built here with
 *            cc -static), replaced the way haproxy is: attach only.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "loadgen.h"
#include "sockmig.h"
#include "util.h"

#define IPORT	     33000
#define HTTP_REQUEST "GET / HTTP/1.0\r\nHost: sockmig\r\n\r\n"
#define MAX_PROCS    64

enum imode { I_NONE, I_ATTACH, I_SHIM };
static const char *const imode_names[] = {"none", "attach", "shim"};

struct ienv {
	enum imode mode;
	char dir[64];
	char sockmig[512], preload[512];
	pid_t procs[MAX_PROCS];
	int nprocs;
	pid_t attach;
};

static bool find_tools(struct ienv *e)
{
	char cwd[256];

	if (!getcwd(cwd, sizeof(cwd)))
		return false;
	snprintf(e->sockmig, sizeof(e->sockmig), "%s/.output/sockmig", cwd);
	snprintf(e->preload, sizeof(e->preload), "%s/.output/libsockmig-preload.so", cwd);
	return access(e->sockmig, X_OK) == 0;
}

/* Start argv[0] with output to dir/log; LD_PRELOAD in shim mode. */
static pid_t spawn(struct ienv *e, char *const argv[], bool preload)
{
	char log[128];
	pid_t pid;
	int fd;

	snprintf(log, sizeof(log), "%s/log", e->dir);
	pid = fork();
	if (pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		if (preload)
			setenv("LD_PRELOAD", e->preload, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (pid > 0 && e->nprocs < MAX_PROCS)
		e->procs[e->nprocs++] = pid;
	return pid;
}

static void stop_all(struct ienv *e)
{
	for (int i = 0; i < e->nprocs; i++)
		kill(e->procs[i], SIGTERM);
	if (e->attach > 0)
		kill(e->attach, SIGTERM);
	burst_sleep_ms(200);
	for (int i = 0; i < e->nprocs; i++) {
		kill(e->procs[i], SIGKILL);
		waitpid(e->procs[i], NULL, 0);
	}
	if (e->attach > 0)
		waitpid(e->attach, NULL, 0);
	e->nprocs = 0;
	e->attach = 0;
}

/* One HTTP exchange; returns the reply's length (the server closes). */
static int probe_reply(int port, int timeout_ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)timeout_ms;
	struct sockaddr_storage ss;
	socklen_t len = burst_addr(AF_INET, port, &ss);
	char buf[4096];
	int total, n, fd;

	while (burst_now_ms() < end) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(fd, (struct sockaddr *)&ss, len) == 0 &&
		    write(fd, HTTP_REQUEST, strlen(HTTP_REQUEST)) > 0) {
			total = 0;
			while ((n = (int)read(fd, buf, sizeof(buf))) > 0)
				total += n;
			close(fd);
			if (total > 0)
				return total;
		} else {
			close(fd);
		}
		burst_sleep_ms(20);
	}
	return -1;
}

/* The load, in a forked child: its result comes back through a pipe. */
static int start_load(int port, int reply_len, double secs, pid_t *pid)
{
	int p[2];

	if (pipe(p) < 0)
		return -1;
	*pid = fork();
	if (*pid == 0) {
		struct lg_opts o = {0};
		struct lg_result *r = calloc(1, sizeof(*r));
		size_t done = 0;

		close(p[0]);
		o.dstlen = burst_addr(AF_INET, port, &o.dst);
		o.max_conns = 10000000;
		o.max_secs = secs;
		o.concurrency = 32;
		o.request = HTTP_REQUEST;
		o.request_len = strlen(HTTP_REQUEST);
		o.reply_len = (size_t)reply_len;
		o.timeout_ms = 4000;
		if (!r || lg_run(&o, r) < 0)
			_exit(1);
		while (done < sizeof(*r)) {
			ssize_t n = write(p[1], (char *)r + done, sizeof(*r) - done);

			if (n <= 0)
				_exit(1);
			done += (size_t)n;
		}
		_exit(0);
	}
	close(p[1]);
	return p[0];
}

static bool finish_load(int rfd, pid_t pid, struct lg_result *r)
{
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(*r) && (n = read(rfd, (char *)r + got, sizeof(*r) - got)) > 0)
		got += (size_t)n;
	close(rfd);
	waitpid(pid, NULL, 0);
	return got == sizeof(*r);
}

static void print_result(const char *what, enum imode m, const struct lg_result *r, int reloads)
{
	printf("%s/%s: %llu connections, %d reloads: ok %llu, refused %llu, reset %llu+%llu, "
	       "eof %llu, timeout %llu, other %llu\n",
	       what, imode_names[m], (unsigned long long)r->started, reloads,
	       (unsigned long long)r->count[LG_OK], (unsigned long long)r->count[LG_REFUSED],
	       (unsigned long long)r->count[LG_RESET_BEFORE_REQUEST],
	       (unsigned long long)r->count[LG_RESET_AFTER_REQUEST],
	       (unsigned long long)r->count[LG_EOF_EARLY], (unsigned long long)r->count[LG_TIMEOUT],
	       (unsigned long long)r->count[LG_OTHER]);
}

static bool start_attach(struct ienv *e, int port)
{
	char portarg[16];
	char *argv[] = {e->sockmig,	"attach",     "--port", portarg,
			"--foreground", "--interval", "20",	NULL};

	snprintf(portarg, sizeof(portarg), "%d", port);
	e->attach = fork();
	if (e->attach == 0) {
		char log[128];
		int fd;

		snprintf(log, sizeof(log), "%s/attach.log", e->dir);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	burst_sleep_ms(300);
	return e->attach > 0 && waitpid(e->attach, NULL, WNOHANG) == 0;
}

static void detach(struct ienv *e, int port)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "%s detach --port %d >/dev/null 2>&1", e->sockmig, port);
	if (system(cmd) < 0)
		printf("detach failed\n");
}

static void show_log(const struct ienv *e, const char *name)
{
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "tail -5 %s/%s 2>/dev/null", e->dir, name);
	if (system(cmd) < 0)
		return;
}

static bool setup(struct ienv *e, enum imode m)
{
	memset(e, 0, sizeof(*e));
	e->mode = m;
	snprintf(e->dir, sizeof(e->dir), "/tmp/sockmig-it-XXXXXX");
	if (!mkdtemp(e->dir) || !find_tools(e))
		return false;
	if (m == I_SHIM && access(e->preload, R_OK) < 0)
		return false;
	return burst_sysctl("net/ipv4/tcp_migrate_req", "0") == 0;
}

static void teardown(struct ienv *e, int port)
{
	char cmd[128];

	stop_all(e);
	if (e->mode != I_NONE)
		detach(e, port);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	if (system(cmd) < 0)
		printf("cannot remove %s\n", e->dir);
}

/* Judge a run: the baseline must show failures, sockmig none. */
static int judge(enum imode m, const struct lg_result *r)
{
	uint64_t failed = r->started - r->count[LG_OK];

	if (!ASSERT_GT(r->started, 1000, "connections made"))
		return SM_FAIL;
	if (m == I_NONE)
		return ASSERT_GT(failed, 0, "baseline failures (the test can fail)") ? SM_PASS
										     : SM_FAIL;
	return ASSERT_EQ(failed, 0, "failed connections with sockmig") ? SM_PASS : SM_FAIL;
}

/* ---- haproxy -sf -------------------------------------------------------------- */

#define HAPROXY_RELOADS 20

static int haproxy_run(enum imode m)
{
	struct ienv e;
	struct lg_result r;
	char cfg[128], oldpid[16];
	int ret = SM_FAIL, reply, rfd;
	pid_t lpid, cur;
	FILE *f;

	if (access("/usr/sbin/haproxy", X_OK) < 0)
		return SKIP("haproxy is not installed (scripts/deps installs it)");
	if (!setup(&e, m))
		return SKIP("no .output/sockmig or preload shim: run from the repository root");
	snprintf(cfg, sizeof(cfg), "%s/haproxy.cfg", e.dir);
	f = fopen(cfg, "w");
	if (!f)
		goto out;
	fprintf(f,
		"global\n\tmaxconn 4000\n\tnbthread 1\n"
		"defaults\n\tmode http\n\ttimeout connect 2s\n\ttimeout client 5s\n"
		"\ttimeout server 5s\n"
		"frontend fe\n\tbind 127.0.0.1:%d\n"
		"\thttp-request return status 200 content-type text/plain string ok\n",
		IPORT);
	fclose(f);
	char *first[] = {"haproxy", "-f", cfg, "-db", NULL};

	cur = spawn(&e, first, m == I_SHIM);
	reply = probe_reply(IPORT, 3000);
	if (!ASSERT_GT(reply, 0, "haproxy answers")) {
		show_log(&e, "log");
		goto out;
	}
	if (m == I_ATTACH && !ASSERT_TRUE(start_attach(&e, IPORT), "sockmig attach runs")) {
		show_log(&e, "attach.log");
		goto out;
	}
	rfd = start_load(IPORT, reply, HAPROXY_RELOADS * 0.2 + 1.0, &lpid);
	burst_sleep_ms(500);
	for (int i = 0; i < HAPROXY_RELOADS; i++) {
		snprintf(oldpid, sizeof(oldpid), "%d", (int)cur);
		char *next[] = {"haproxy", "-f", cfg, "-db", "-sf", oldpid, NULL};

		cur = spawn(&e, next, m == I_SHIM);
		burst_sleep_ms(200);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
	if (!ASSERT_TRUE(finish_load(rfd, lpid, &r), "load result"))
		goto out;
	print_result("haproxy", m, &r, HAPROXY_RELOADS);
	ret = judge(m, &r);
	if (ret != SM_PASS && m == I_ATTACH)
		show_log(&e, "attach.log");
out:
	teardown(&e, IPORT);
	return ret;
}

SM_TEST(integration_haproxy_sf_reload_none)
{
	return haproxy_run(I_NONE);
}

SM_TEST(integration_haproxy_sf_reload_attach)
{
	return haproxy_run(I_ATTACH);
}

SM_TEST(integration_haproxy_sf_reload_shim)
{
	return haproxy_run(I_SHIM);
}

/* ---- nginx reuseport, workers 4 -> 1 -> 4 -------------------------------------- */

#define NGINX_RELOADS 10

static bool nginx_conf(const struct ienv *e, int workers)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/nginx.conf", e->dir);
	f = fopen(path, "w");
	if (!f)
		return false;
	fprintf(f,
		"worker_processes %d;\nerror_log %s/error.log;\npid %s/nginx.pid;\n"
		"events { worker_connections 4096; }\n"
		"http {\n\taccess_log off;\n\tclient_body_temp_path %s;\n"
		"\tproxy_temp_path %s;\n\tfastcgi_temp_path %s;\n\tuwsgi_temp_path %s;\n"
		"\tscgi_temp_path %s;\n"
		"\tserver {\n\t\tlisten 127.0.0.1:%d reuseport backlog=4096;\n"
		"\t\tlocation / { return 200 \"ok\\n\"; }\n\t}\n}\n",
		workers, e->dir, e->dir, e->dir, e->dir, e->dir, e->dir, e->dir, IPORT);
	fclose(f);
	return true;
}

static int nginx_run(enum imode m)
{
	struct ienv e;
	struct lg_result r;
	char conf[128];
	int ret = SM_FAIL, reply, rfd;
	pid_t lpid, master;

	if (access("/usr/sbin/nginx", X_OK) < 0)
		return SKIP("nginx is not installed (scripts/deps installs it)");
	if (!setup(&e, m))
		return SKIP("no .output/sockmig or preload shim: run from the repository root");
	snprintf(conf, sizeof(conf), "%s/nginx.conf", e.dir);
	if (!nginx_conf(&e, 4))
		goto out;
	char *argv[] = {"nginx", "-c", conf, "-p", e.dir, "-g", "daemon off;", NULL};

	master = spawn(&e, argv, m == I_SHIM);
	reply = probe_reply(IPORT, 3000);
	if (!ASSERT_GT(reply, 0, "nginx answers")) {
		show_log(&e, "error.log");
		goto out;
	}
	if (m == I_ATTACH && !ASSERT_TRUE(start_attach(&e, IPORT), "sockmig attach runs")) {
		show_log(&e, "attach.log");
		goto out;
	}
	rfd = start_load(IPORT, reply, NGINX_RELOADS * 0.5 + 1.0, &lpid);
	burst_sleep_ms(500);
	for (int i = 0; i < NGINX_RELOADS; i++) {
		nginx_conf(&e, i % 2 ? 4 : 1);
		kill(master, SIGHUP);
		burst_sleep_ms(500);
	}
	if (!ASSERT_TRUE(finish_load(rfd, lpid, &r), "load result"))
		goto out;
	print_result("nginx", m, &r, NGINX_RELOADS);
	ret = judge(m, &r);
	if (ret != SM_PASS)
		show_log(&e, m == I_ATTACH ? "attach.log" : "error.log");
out:
	teardown(&e, IPORT);
	return ret;
}

SM_TEST(integration_nginx_shrink_grow_none)
{
	return nginx_run(I_NONE);
}

SM_TEST(integration_nginx_shrink_grow_attach)
{
	return nginx_run(I_ATTACH);
}

SM_TEST(integration_nginx_shrink_grow_shim)
{
	return nginx_run(I_SHIM);
}

/* ---- a statically linked server: attach only -------------------------------- */

#define STATIC_RELOADS 20

static int static_run(enum imode m)
{
	struct ienv e;
	struct lg_result r;
	char bin[128], cmd[512], port[16];
	int ret = SM_FAIL, reply, rfd, st;
	pid_t lpid, cur, next;

	if (!setup(&e, m))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(bin, sizeof(bin), "%s/static_server", e.dir);
	snprintf(cmd, sizeof(cmd),
		 "cc -static -O2 -o %s tests/servers/static_server.c 2>&1 && "
		 "! ldd %s >/dev/null 2>&1",
		 bin, bin);
	st = system(cmd);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		teardown(&e, IPORT);
		return SKIP("cannot build a static binary here (libc6-dev with libc.a needed)");
	}
	snprintf(port, sizeof(port), "%d", IPORT);
	char *argv[] = {bin, port, NULL};

	cur = spawn(&e, argv, false);
	reply = probe_reply(IPORT, 3000);
	if (!ASSERT_GT(reply, 0, "the static server answers"))
		goto out;
	if (m == I_ATTACH && !ASSERT_TRUE(start_attach(&e, IPORT), "sockmig attach runs")) {
		show_log(&e, "attach.log");
		goto out;
	}
	rfd = start_load(IPORT, reply, STATIC_RELOADS * 0.2 + 1.0, &lpid);
	burst_sleep_ms(500);
	for (int i = 0; i < STATIC_RELOADS; i++) {
		/* the new process first, then the old one retires */
		next = spawn(&e, argv, false);
		burst_sleep_ms(30);
		kill(cur, SIGUSR1);
		cur = next;
		burst_sleep_ms(170);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
	if (!ASSERT_TRUE(finish_load(rfd, lpid, &r), "load result"))
		goto out;
	print_result("static", m, &r, STATIC_RELOADS);
	ret = judge(m, &r);
	if (ret != SM_PASS && m == I_ATTACH)
		show_log(&e, "attach.log");
out:
	teardown(&e, IPORT);
	return ret;
}

SM_TEST(integration_static_binary_none)
{
	return static_run(I_NONE);
}

SM_TEST(integration_static_binary_attach)
{
	return static_run(I_ATTACH);
}
