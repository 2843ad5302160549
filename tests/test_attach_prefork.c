// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig attach with pre-fork servers of separate processes: generations
 * that follow the server's deployment rather than each process's start.
 * The cases run tests/servers/static_server.c as separate worker processes
 * started one after the other, under attach with its default options and
 * interval. Helpers shared with test_attach.c are in attach_rig.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "attach_rig.h"
#include "harness.h"
#include "itest.h"
#include "loadgen.h"
#include "sockmig.h"
#include "util.h"

#define NWORKERS 4

/* ---- pre-fork servers of separate processes ------------------------------- */

/* "pid PID served N" lines of the workers' log: N of @pid, -1 if none. */
static int served_by(const struct ienv *e, pid_t pid)
{
	char path[128], line[256];
	int p, n, got = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/log", e->dir);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "pid %d served %d", &p, &n) == 2 && p == (int)pid)
			got = n;
	fclose(f);
	return got;
}

/* Start @bin as worker @i (its own SO_REUSEPORT listener), then wait until
 * attach registered it: workers start one after the other. The first one
 * starts attach (@args) once it answers: attach needs a listener. */
static pid_t start_worker(struct ienv *e, const char *bin, int i, char *const args[])
{
	char port[16];
	char *argv[] = {(char *)bin, port, NULL};
	pid_t pid;

	snprintf(port, sizeof(port), "%d", AR_PORT);
	pid = it_spawn(e, argv, false);
	if (i == 0) {
		if (!ASSERT_GT(it_probe_reply(AR_PORT, 3000), 0, "the first worker answers"))
			return -1;
		e->attach = ar_spawn(e, "attach.log", args);
	}
	if (!ASSERT_TRUE(ar_wait_log_lines(e, "attach.log", "registered", i + 1, 5000),
			 "attach registered the new worker"))
		return -1;
	return pid;
}

/*
 * NWORKERS workers of one binary, started one after the other under
 * `sockmig attach --port P` (its default interval, and @by when given),
 * under load: the share each one served. true when all ran as planned.
 */
static bool prefork_run(struct ienv *e, const char *by, int *served, struct lg_result *r)
{
	char bin[128], portarg[16];
	char *def[] = {"attach", "--port", portarg, "--foreground", NULL};
	char *with[] = {"attach",	   "--port",   portarg, "--foreground",
			"--generation-by", (char *)by, NULL};
	pid_t w[NWORKERS] = {0}, lpid;
	int reply, rfd;

	snprintf(portarg, sizeof(portarg), "%d", AR_PORT);
	if (!it_test_server(e, false, bin, sizeof(bin)))
		return false;
	for (int i = 0; i < NWORKERS; i++) {
		w[i] = start_worker(e, bin, i, by ? with : def);
		if (w[i] <= 0)
			return false;
		/* a start time of its own, in clock ticks, for the baseline */
		burst_sleep_ms(30);
	}
	printf("%llu ms: %d workers registered\n", burst_now_ms() % 1000000, NWORKERS);
	reply = it_probe_reply(AR_PORT, 3000);
	if (!ASSERT_GT(reply, 0, "the workers answer"))
		return false;
	rfd = it_start_load(AR_PORT, reply, 3.0, &lpid);
	if (!ASSERT_TRUE(it_finish_load(rfd, lpid, r), "load result"))
		return false;
	printf("%llu ms: load done\n", burst_now_ms() % 1000000);
	it_print_result("prefork", I_ATTACH, r, 0);
	for (int i = 0; i < NWORKERS; i++)
		kill(w[i], SIGTERM);
	for (int i = 0; i < NWORKERS; i++) {
		ar_wait_status(w[i], 5000);
		served[i] = served_by(e, w[i]);
		printf("worker %d (pid %d) served %d\n", i, (int)w[i], served[i]);
	}
	printf("%llu ms: workers stopped\n", burst_now_ms() % 1000000);
	return ar_stop_daemon(e);
}

/* Default options: every worker gets within 2x of its fair share. */
SM_TEST(attach_prefork_workers_share_fairly)
{
	int served[NWORKERS], ret = SM_FAIL;
	long long total = 0;
	struct lg_result r;
	struct ienv e;

	if (!it_setup(&e, I_ATTACH))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!prefork_run(&e, NULL, served, &r))
		goto out;
	for (int i = 0; i < NWORKERS; i++)
		total += served[i];
	/* every reply counted: the load's, and the two probes' */
	if (it_judge(I_ATTACH, &r) != SM_PASS ||
	    !ASSERT_EQ(total, r.count[LG_OK] + 2, "replies counted"))
		goto out;
	for (int i = 0; i < NWORKERS; i++)
		if (!ASSERT_TRUE(served[i] * 2 * NWORKERS >= total &&
					 served[i] * NWORKERS <= 2 * total,
				 "within 2x of the fair share"))
			goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "attach.log");
	it_teardown(&e, AR_PORT);
	return ret;
}

/* The baseline: generations by process start time starve the older workers
 * (what attach did by default before): the test above can fail. */
SM_TEST(attach_prefork_by_process_starves)
{
	int served[NWORKERS], ret = SM_FAIL, starved = 0;
	long long total = 0;
	struct lg_result r;
	struct ienv e;

	if (!it_setup(&e, I_ATTACH))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!prefork_run(&e, "process", served, &r))
		goto out;
	for (int i = 0; i < NWORKERS; i++)
		total += served[i];
	for (int i = 0; i < NWORKERS; i++)
		starved += served[i] * 2 * NWORKERS < total;
	printf("workers below half their fair share: %d\n", starved);
	if (ASSERT_EQ(starved, NWORKERS - 1, "every older worker starved (the baseline)") &&
	    ASSERT_EQ(it_log_count(&e, "attach.log", "draining cookie"), NWORKERS - 1,
		      "attach drained every older worker"))
		ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "attach.log");
	it_teardown(&e, AR_PORT);
	return ret;
}

/* The role of @pid's member, 0 when none. */
static int role_of(struct sockmig_group *g, pid_t pid)
{
	struct sockmig_member_info m[16];
	int n = sockmig_members(g, m, 16), role = 0;

	for (int i = 0; i < n && i < 16; i++)
		if (m[i].pid == (uint32_t)pid)
			role = m[i].role;
	return role;
}

/*
 * A new executable is a new deployment: two workers of binary A, then one
 * of B (a copy: a new file, installed later), then a late worker of A.
 * attach (default options) drains the three of A, whatever their start
 * times, and keeps B's active.
 */
SM_TEST(attach_new_executable_drains_old_deployment)
{
	char bin[128], bin2[160], portarg[16], cmd[400];
	char *args[] = {"attach", "--port", portarg, "--foreground", NULL};
	pid_t w[4] = {0};
	struct sockmig_group *g = NULL;
	struct stat st;
	int ret = SM_FAIL;
	struct ienv e;

	if (!it_setup(&e, I_ATTACH))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(portarg, sizeof(portarg), "%d", AR_PORT);
	if (!ASSERT_TRUE(it_test_server(&e, false, bin, sizeof(bin)),
			 "the test server (make builds it)") ||
	    !ASSERT_OK(stat(bin, &st), "stat the server"))
		goto out;
	w[0] = start_worker(&e, bin, 0, args);
	w[1] = start_worker(&e, bin, 1, args);
	if (w[0] <= 0 || w[1] <= 0)
		goto out;
	/* generations count in seconds of ctime: B is installed a second later */
	while (time(NULL) <= st.st_ctim.tv_sec)
		burst_sleep_ms(20);
	snprintf(bin2, sizeof(bin2), "%s-b", bin);
	snprintf(cmd, sizeof(cmd), "cp %s %s", bin, bin2);
	if (!ASSERT_EQ(system(cmd), 0, "cp"))
		goto out;
	w[2] = start_worker(&e, bin2, 2, args);
	w[3] = start_worker(&e, bin, 3, args);
	if (w[2] <= 0 || w[3] <= 0 ||
	    !ASSERT_TRUE(ar_wait_log_lines(&e, "attach.log", "draining cookie", 3, 3000),
			 "three workers drained"))
		goto out;
	g = ar_group_here(AR_PORT);
	if (!ASSERT_TRUE(g, "the group"))
		goto out;
	for (int i = 0; i < 4; i++)
		if (!ASSERT_EQ(role_of(g, w[i]),
			       i == 2 ? SOCKMIG_ROLE_ACTIVE : SOCKMIG_ROLE_DRAINING,
			       i == 2 ? "B's worker active" : "A's workers draining"))
			goto out;
	if (ASSERT_GT(it_probe_reply(AR_PORT, 3000), 0, "B answers") && ar_stop_daemon(&e))
		ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "attach.log");
	sockmig_group_close(g);
	it_teardown(&e, AR_PORT);
	return ret;
}
