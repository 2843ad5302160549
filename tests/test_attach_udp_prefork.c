// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig attach and a pre-fork UDP server: tests/servers/udp_echo -w 3,
 * whose master forks 3 workers 50 ms apart, each binding its own
 * SO_REUSEPORT socket and answering with its own ID. Under attach's
 * default generations (the executable's ctime) the workers are one
 * deployment, so every one of them takes new flows; by each process's own
 * start time (--generation-by process: the baseline) the last worker is
 * the newest generation and takes every new flow.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "attach_rig.h"
#include "harness.h"
#include "itest.h"
#include "preload.h"
#include "sockmig.h"
#include "udp_rig.h"

#define WORKERS 3
#define PFLOWS	300

/* Remove the port's UDP group, if attach made one here. */
static void pf_group_destroy(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(UR_PORT)};
	struct sockmig_group_id id;
	struct sockmig_udp_group *g;
	struct stat st;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (stat("/proc/self/ns/net", &st) < 0 ||
	    sockmig_udp_group_list(NULL, st.st_ino, UR_PORT, &id, 1) < 1)
		return;
	g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
}

/* The flows whose first answer came from each worker (IDs 1 to WORKERS)
 * into @by, under attach with --generation-by @by_arg. */
static int prefork_run(const char *by_arg, int *by)
{
	struct tp_proc srv = TP_PROC_INIT;
	char bin[128], args[32], portarg[16];
	char *attach[] = {"attach",	  "--port",	  portarg, "--generation-by",
			  (char *)by_arg, "--foreground", NULL};
	int ret = SM_FAIL, ready = 0;
	struct ur_rig r;
	struct ienv e;

	ur_init(&r);
	if (!it_setup(&e, I_ATTACH))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(bin, sizeof(bin), "%s/udp_echo", e.dir);
	snprintf(args, sizeof(args), "%d 1 -w %d", UR_PORT, WORKERS);
	snprintf(portarg, sizeof(portarg), "%d", UR_PORT);
	if (!ASSERT_TRUE(tp_server_copy("udp_echo", bin), "the server") ||
	    !ASSERT_TRUE(tp_proc_start(&srv, e.dir, "prefork", bin, NULL, false, NULL, -1, args),
			 "start it"))
		goto out;
	while (ready < WORKERS && pl_srv_expect(&srv, "udp", "ready", NULL, 0))
		ready++;
	if (!ASSERT_EQ(ready, WORKERS, "every worker ready"))
		goto out;
	e.attach = ar_spawn(&e, "attach.log", attach);
	if (!ASSERT_TRUE(ar_wait_log_lines(&e, "attach.log", "registered udp4", WORKERS, 5000),
			 "attach registered every worker's socket") ||
	    !ASSERT_OK(ur_start(&r, AF_INET, false, SOCKMIG_UDP_MODE_DEFAULT, 0), "clients") ||
	    !ASSERT_OK(ur_enough_fds(UR_FDS_NEEDED(PFLOWS)), "fds"))
		goto out;
	for (uint32_t seq = 1; seq <= 2; seq++)
		if (!ASSERT_OK(ur_round(&r, 0, PFLOWS, seq), "a round of the flows"))
			goto out;
	memset(by, 0, sizeof(*by) * (WORKERS + 1));
	for (int i = 0; i < PFLOWS; i++)
		if (r.first[i] >= 1 && r.first[i] <= WORKERS)
			by[r.first[i]]++;
	printf("--generation-by %s: new flows by worker:", by_arg);
	for (int k = 1; k <= WORKERS; k++)
		printf(" %d", by[k]);
	printf("; %ld misrouted, %ld unanswered\n", r.misrouted, r.lost);
	if (ASSERT_EQ(r.misrouted, 0, "misrouted") && ASSERT_EQ(r.lost, 0, "unanswered") &&
	    ASSERT_EQ(it_log_count(&e, "attach.log", "Error"), 0, "attach's errors"))
		ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "attach.log");
	tp_proc_kill(&srv);
	if (e.attach > 0)
		ar_stop_daemon(&e);
	ur_stop(&r);
	pf_group_destroy();
	it_teardown(&e, UR_PORT);
	return ret;
}

/* Default generations: the workers run one executable, one deployment:
 * each of them takes new flows. */
SM_TEST(attach_udp_prefork_workers_share_flows)
{
	int by[WORKERS + 1], ret = prefork_run("exe", by);

	if (ret != SM_PASS)
		return ret;
	for (int k = 1; k <= WORKERS; k++)
		if (!ASSERT_GT(by[k], 0, "every worker takes new flows"))
			return SM_FAIL;
	return SM_PASS;
}

/* The baseline: by process start time the last worker takes them all. */
SM_TEST(attach_udp_prefork_by_process_starves)
{
	int by[WORKERS + 1], ret = prefork_run("process", by);

	if (ret != SM_PASS)
		return ret;
	return ASSERT_EQ(by[WORKERS], PFLOWS, "the newest worker takes every new flow") ? SM_PASS
											: SM_FAIL;
}
