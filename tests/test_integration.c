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
#include "itest.h"
#include "loadgen.h"
#include "sockmig.h"
#include "util.h"

#define IPORT	     33000
#define HTTP_REQUEST "GET / HTTP/1.0\r\nHost: sockmig\r\n\r\n"
#define MAX_PROCS    64

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
	if (!nginx_conf(&e, 4, IPORT))
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
		nginx_conf(&e, i % 2 ? 4 : 1, IPORT);
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
	char bin[128], port[16];
	int ret = SM_FAIL, reply, rfd;
	pid_t lpid, cur, next;

	if (!setup(&e, m))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!build_test_server(&e, true, bin, sizeof(bin))) {
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
