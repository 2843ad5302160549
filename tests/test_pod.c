// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A pod: one network namespace (the case's) shared by "containers", each
 * with its own mount namespace (unshare -m). A container restart keeps the
 * network namespace. The server container is stopped, left down 2 s and
 * started again under 5,000 conn/s, every client counted:
 *   - with `sockmig hold` in a sidecar container that shares the pod's
 *     pid namespace (Kubernetes: shareProcessNamespace): 0 failed;
 *   - without the sidecar: failed;
 *   - with a sidecar in a pid namespace of its own (unshare -p): it cannot
 *     see the server's process, so it could never register its listener,
 *     and its holder, the group's only member, would take every SYN: hold
 *     refuses to start, says why, and the restart fails as without it.
 *     Started first, before such a server, it stands aside once the
 *     server's listener stayed unseen 1 s (pod_sidecar_own_pidns_stands_aside).
 * The same with the server container killed (SIGKILL), down 2 s, started
 * again: with the sidecar every connection is served but the ones the
 * killed server had accepted and not answered (lost with any tool, counted
 * exactly: rt_killed_judge()); without it: failed.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "itest.h"
#include "proc.h"
#include "runtest.h"
#include "util.h"

#define UNSHARE "/usr/bin/unshare"

/* Start a container running @argv; its pid (unshare's) in *@ctr, its
 * command's in the return value (0 when it did not start). */
static pid_t container(struct ienv *e, const char *log, bool own_pidns, char *const argv[],
		       pid_t *ctr)
{
	char path[128];
	char *full[16] = {UNSHARE, "-m", "-f"};
	int n = 3;
	pid_t child = 0;

	if (own_pidns) {
		full[n++] = "-p";
		full[n++] = "--mount-proc";
	}
	for (int i = 0; argv[i] && n < 15; i++)
		full[n++] = argv[i];
	full[n] = NULL;
	snprintf(path, sizeof(path), "%s/%s", e->dir, log);
	*ctr = tp_spawn(path, full, NULL);
	for (int t = 0; t < 100 && *ctr > 0 && !(child = tp_find_child(*ctr)); t++)
		burst_sleep_ms(10);
	return child;
}

static void container_stop(pid_t ctr, pid_t child, int sig)
{
	if (child > 0)
		kill(child, sig);
	if (ctr > 0 && tp_wait_exit(ctr, 5000) == -1) {
		kill(ctr, SIGKILL);
		waitpid(ctr, NULL, 0);
	}
}

enum sidecar { NO_SIDECAR, SIDECAR, SIDECAR_OWN_PIDNS };

/* A pod case's start (@holds: it runs hold): SM_PASS with @e set up, the
 * test server's path in @bin and RPORT in @port (16 bytes), else its skip
 * with nothing set up. */
static int pod_setup(struct ienv *e, bool holds, char *bin, size_t len, char *port)
{
	char why[200];

	if (holds && !tu_kernel_migrates(why, sizeof(why)))
		return SKIP("%s: hold refuses to start (hold_stop_start_gap_holder)", why);
	if (access(UNSHARE, X_OK) < 0)
		return SKIP("no %s", UNSHARE);
	if (!it_setup(e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!it_test_server(e, false, bin, len)) {
		it_teardown(e, RPORT);
		return SKIP("no test server: make builds it");
	}
	snprintf(port, 16, "%d", RPORT);
	return SM_PASS;
}

static int pod_restart(enum sidecar sc, bool kill9)
{
	struct ienv e;
	struct lg_result r;
	char bin[128], port[16];
	char *srv[] = {bin, port, NULL};
	char *hold[] = {e.sockmig, "hold",	"--port",	port,
			"--addr",  "127.0.0.1", "--foreground", NULL};
	pid_t sctr = 0, spid, hctr = 0, hpid = 0, lpid;
	int ret = SM_FAIL, reply, rfd;
	struct rt_kill k = {0};
	unsigned long long down, up;
	long long failed;
	int st;

	ret = pod_setup(&e, sc != NO_SIDECAR, bin, sizeof(bin), port);
	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	spid = container(&e, "server1.log", false, srv, &sctr);
	if (!ASSERT_GT(spid, 0, "the server container") ||
	    !ASSERT_TRUE(rt_wait_serving(RPORT), "the server answers"))
		goto out;
	reply = it_probe_reply(RPORT, 1000);
	if (sc == SIDECAR_OWN_PIDNS) {
		hpid = container(&e, "hold.log", true, hold, &hctr);
		st = tp_wait_exit(hctr, 10000);
		if (st != -1)
			hctr = 0;
		if (!ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
				 "the sidecar that cannot see the server refuses (exit 1)") ||
		    !ASSERT_EQ(it_log_count(&e, "hold.log", "hold refuses"), 1, "and says why"))
			goto out;
	} else if (sc == SIDECAR) {
		hpid = container(&e, "hold.log", false, hold, &hctr);
		if (!ASSERT_TRUE(rt_wait_log(&e, "hold.log", "holding port", 1, 10000),
				 "the sidecar holds"))
			goto out;
		burst_sleep_ms(200); /* a few scans */
	}
	/* 5,000 conn/s for 5 s; the server container is down from 1.5 s to 3.5 s */
	rfd = it_start_load_rate(RPORT, reply, 5.0, 5000, 6000, &lpid);
	burst_sleep_ms(1500);
	if (kill9)
		rt_kill9_counted(spid, &k);
	container_stop(sctr, spid, kill9 ? SIGKILL : SIGTERM);
	sctr = 0;
	down = burst_now_ms();
	burst_sleep_ms(2000);
	up = burst_now_ms();
	spid = container(&e, "server2.log", false, srv, &sctr);
	if (!ASSERT_TRUE(it_finish_load(rfd, lpid, &r), "load result"))
		goto out;
	it_print_result(sc == NO_SIDECAR ? (kill9 ? "pod, killed, no sidecar" : "pod, no sidecar")
			: sc == SIDECAR	 ? (kill9 ? "pod, killed, sidecar" : "pod, sidecar")
					 : "pod, sidecar in its own pid ns",
			I_NONE, &r, 1);
	failed = r.started - r.count[LG_OK];
	/* the load ran past the gap, at whatever rate the machine has */
	if (!ASSERT_GT(lg_ok_between(&r, up, UINT64_MAX), 0,
		       "connections served that started once the server was back"))
		goto out;
	if (sc == SIDECAR && kill9 && rt_killed_judge(&r, &k))
		ret = SM_PASS;
	if (sc == SIDECAR && !kill9 && ASSERT_EQ(failed, 0, "failed with the sidecar") &&
	    ASSERT_GT(lg_ok_between(&r, down, up), 0,
		      "connections served that started while no server ran"))
		ret = SM_PASS;
	if (sc == NO_SIDECAR && ASSERT_GT(failed, 0, "failed without it"))
		ret = SM_PASS;
	if (sc == SIDECAR_OWN_PIDNS && ASSERT_GT(failed, 0, "failed, as without a sidecar"))
		ret = SM_PASS;
	if (ret != SM_PASS) {
		/* what each side saw, for a failure that did not repeat here */
		it_show_log(&e, "hold.log");
		it_show_log(&e, "server1.log");
		it_show_log(&e, "server2.log");
		if (system("nstat -az 2>/dev/null | grep -E 'Listen|Cookie|Migrate|Abort|Reset' | "
			   "grep -v ' 0 '") < 0)
			printf("no nstat\n");
	}
out:
	container_stop(hctr, hpid, SIGTERM);
	container_stop(sctr, spid, SIGTERM);
	it_teardown(&e, RPORT);
	return ret;
}

SM_TEST(pod_restart_sidecar)
{
	return pod_restart(SIDECAR, false);
}

SM_TEST(pod_restart_no_sidecar)
{
	return pod_restart(NO_SIDECAR, false);
}

SM_TEST(pod_restart_sidecar_own_pidns)
{
	return pod_restart(SIDECAR_OWN_PIDNS, false);
}

/*
 * The other order: the sidecar, in a pid namespace of its own, holds the
 * port first; the server starts after it, where it cannot see it. The
 * holder, the group's only member, takes every SYN until the server's
 * listener has stayed unseen 1 s: then hold says so, stands aside and
 * exits 1, and its holder's close moves what it kept to the server's
 * listener (no registered member is left: the kernel's hash chooses).
 * Every connection is served, those that started before any server
 * listened included; a hold that kept holding would let every one that
 * started after the server did time out (checked by taking the stand-aside
 * out).
 */
SM_TEST(pod_sidecar_own_pidns_stands_aside)
{
	struct ienv e;
	struct lg_result r;
	char bin[128], port[16];
	char *srv[] = {bin, port, NULL};
	char *hold[] = {e.sockmig, "hold",	"--port",	port,
			"--addr",  "127.0.0.1", "--foreground", NULL};
	pid_t sctr = 0, spid, hctr = 0, hpid = 0, lpid;
	int ret = SM_FAIL, reply, rfd, st;
	unsigned long long t0, up;

	ret = pod_setup(&e, true, bin, sizeof(bin), port);
	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	/* the reply's length, from the server alone */
	spid = container(&e, "server1.log", false, srv, &sctr);
	if (!ASSERT_GT(spid, 0, "the server container") ||
	    !ASSERT_TRUE(rt_wait_serving(RPORT), "the server answers"))
		goto out;
	reply = it_probe_reply(RPORT, 1000);
	container_stop(sctr, spid, SIGTERM);
	sctr = spid = 0;
	hpid = container(&e, "hold.log", true, hold, &hctr);
	if (!ASSERT_TRUE(rt_wait_log(&e, "hold.log", "holding port", 1, 10000),
			 "the sidecar holds"))
		goto out;
	/* 2,000 conn/s for 4 s; the server starts at 0.5 s */
	t0 = burst_now_ms();
	rfd = it_start_load_rate(RPORT, reply, 4.0, 2000, 6000, &lpid);
	burst_sleep_ms(500);
	up = burst_now_ms();
	spid = container(&e, "server2.log", false, srv, &sctr);
	st = tp_wait_exit(hctr, 10000);
	if (st != -1)
		hctr = 0;
	if (!ASSERT_TRUE(it_finish_load(rfd, lpid, &r), "load result"))
		goto out;
	it_print_result("pod, sidecar in its own pid ns, started first", I_NONE, &r, 0);
	if (ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
			"the sidecar stands aside (exit 1)") &&
	    ASSERT_EQ(it_log_count(&e, "hold.log", "hold stands aside"), 1, "and says why") &&
	    ASSERT_EQ(r.started - r.count[LG_OK], 0, "failed connections") &&
	    ASSERT_GT(lg_ok_between(&r, t0, up), 0,
		      "connections served that started before the server did") &&
	    ASSERT_GT(lg_ok_between(&r, up + 2500, UINT64_MAX), 0,
		      "connections served that started once hold had stood aside"))
		ret = SM_PASS;
	if (ret != SM_PASS) {
		it_show_log(&e, "hold.log");
		it_show_log(&e, "server2.log");
	}
out:
	container_stop(hctr, hpid, SIGTERM);
	container_stop(sctr, spid, SIGTERM);
	it_teardown(&e, RPORT);
	return ret;
}

/*
 * Which listeners hold cannot see it refuses next to (its holder on
 * 127.0.0.1): one on 127.0.0.2 is another group, from which the holder
 * takes nothing, so hold holds; one on the wildcard address loses the
 * SYNs to 127.0.0.1 to the holder (the better match), so hold refuses.
 * The listeners: python in the case's pid namespace; hold in one of its own.
 */
SM_TEST(pod_sidecar_own_pidns_address_rules)
{
	/* an unseen listener, and whether hold at 127.0.0.1 holds next to it */
	static const struct {
		const char *family, *addr;
		int v6only;
		bool holds;
	} lst[] = {
		{"AF_INET", "127.0.0.2", -1, true},	    /* another group */
		{"AF_INET", "0.0.0.0", -1, false},	    /* the holder outscores it */
		{"AF_INET6", "::", 1, true},		    /* IPv6 clients only */
		{"AF_INET6", "::", 0, false},		    /* dual-stack: IPv4 clients too */
		{"AF_INET6", "::ffff:127.0.0.1", 0, false}, /* IPv4-mapped: the same address */
	};
	struct ienv e;
	char port[16], why[200], code[600], path[160], hlog[16], plog[16], v6[96] = "";
	char *py[] = {"/usr/bin/python3", "-c", code, NULL};
	char *hold[] = {e.sockmig, "hold",	"--port",	port,
			"--addr",  "127.0.0.1", "--foreground", NULL};
	pid_t spid = 0, hctr = 0, hpid = 0;
	int ret = SM_PASS, st;

	if (!tu_kernel_migrates(why, sizeof(why)))
		return SKIP("%s: hold refuses to start (hold_stop_start_gap_holder)", why);
	if (access(UNSHARE, X_OK) < 0 || access(py[0], X_OK) < 0)
		return SKIP("no %s or %s", UNSHARE, py[0]);
	if (!it_setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(port, sizeof(port), "%d", RPORT);
	for (size_t i = 0; i < sizeof(lst) / sizeof(lst[0]) && ret == SM_PASS; i++) {
		if (lst[i].v6only >= 0)
			snprintf(v6, sizeof(v6),
				 "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, %d)\n",
				 lst[i].v6only);
		else
			v6[0] = '\0';
		snprintf(code, sizeof(code),
			 "import socket, time\n"
			 "s = socket.socket(socket.%s)\n"
			 "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)\n"
			 "%s"
			 "s.bind(('%s', %d))\n"
			 "s.listen()\n"
			 "print('listening', flush=True)\n"
			 "time.sleep(30)\n",
			 lst[i].family, v6, lst[i].addr, RPORT);
		printf("an unseen listener on %s (%s, v6only %d)\n", lst[i].addr, lst[i].family,
		       lst[i].v6only);
		snprintf(plog, sizeof(plog), "py%zu.log", i);
		snprintf(hlog, sizeof(hlog), "hold%zu.log", i);
		snprintf(path, sizeof(path), "%s/%s", e.dir, plog);
		spid = tp_spawn(path, py, NULL);
		if (!ASSERT_TRUE(rt_wait_log(&e, plog, "listening", 1, 5000), "python listens")) {
			ret = SM_FAIL;
			break;
		}
		hpid = container(&e, hlog, true, hold, &hctr);
		if (lst[i].holds) {
			if (!ASSERT_TRUE(rt_wait_log(&e, hlog, "holding port", 1, 10000),
					 "hold holds next to it"))
				ret = SM_FAIL;
			/* past its first scans and the 1 s it gives a listener */
			burst_sleep_ms(2500);
			if (ret == SM_PASS &&
			    !ASSERT_EQ(tp_wait_exit(hctr, 0), -1, "and keeps holding"))
				ret = SM_FAIL;
		} else {
			st = tp_wait_exit(hctr, 10000);
			if (st != -1)
				hctr = 0;
			if (!ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
					 "hold refuses next to it (exit 1)") ||
			    !ASSERT_EQ(it_log_count(&e, hlog, "hold refuses"), 1, "and says why"))
				ret = SM_FAIL;
		}
		if (ret != SM_PASS)
			it_show_log(&e, hlog);
		container_stop(hctr, hpid, SIGTERM);
		hctr = hpid = 0;
		tp_stop(spid);
		spid = 0;
	}
	tp_stop(spid);
	it_teardown(&e, RPORT);
	return ret;
}

/*
 * A listener hold sees but may not register for another reason than the
 * two above (here bound to a device: not supported) is no reason to stand
 * aside: hold keeps holding and says why it skipped it. (Its failure was
 * once -1, which is -EPERM: hold stood aside after 1 s.)
 */
SM_TEST(hold_keeps_holding_next_to_a_listener_it_does_not_support)
{
	struct ienv e;
	char port[16], why[200], code[400], path[160];
	char *py[] = {"/usr/bin/python3", "-c", code, NULL};
	char *hold[] = {e.sockmig, "hold",	"--port",	port,
			"--addr",  "127.0.0.1", "--foreground", NULL};
	pid_t spid = 0, hpid = 0;
	int ret = SM_FAIL;

	if (!tu_kernel_migrates(why, sizeof(why)))
		return SKIP("%s: hold refuses to start (hold_stop_start_gap_holder)", why);
	if (access(py[0], X_OK) < 0)
		return SKIP("no %s", py[0]);
	if (!it_setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(port, sizeof(port), "%d", RPORT);
	snprintf(code, sizeof(code),
		 "import socket, time\n"
		 "s = socket.socket()\n"
		 "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)\n"
		 "s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'lo')\n"
		 "s.bind(('0.0.0.0', %d))\n"
		 "s.listen()\n"
		 "print('listening', flush=True)\n"
		 "time.sleep(30)\n",
		 RPORT);
	snprintf(path, sizeof(path), "%s/py.log", e.dir);
	spid = tp_spawn(path, py, NULL);
	if (!ASSERT_TRUE(rt_wait_log(&e, "py.log", "listening", 1, 5000), "python listens"))
		goto out;
	snprintf(path, sizeof(path), "%s/hold.log", e.dir);
	hpid = tp_spawn(path, hold, NULL);
	if (!ASSERT_TRUE(rt_wait_log(&e, "hold.log", "holding port", 1, 10000), "hold holds"))
		goto out;
	/* past its first scans and the 1 s it gives a listener */
	burst_sleep_ms(2500);
	if (!ASSERT_EQ(tp_wait_exit(hpid, 0), -1, "hold keeps holding") ||
	    !ASSERT_EQ(it_log_count(&e, "hold.log", "stands aside"), 0, "no stand-aside") ||
	    !ASSERT_EQ(it_log_count(&e, "hold.log", "SO_BINDTODEVICE"), 1,
		       "it says why it skipped the listener"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "hold.log");
	tp_stop(hpid);
	tp_stop(spid);
	it_teardown(&e, RPORT);
	return ret;
}

SM_TEST(pod_killed_sidecar)
{
	return pod_restart(SIDECAR, true);
}

SM_TEST(pod_killed_no_sidecar)
{
	return pod_restart(NO_SIDECAR, true);
}

/* The example manifests and rules parse as YAML (python3-yaml). */
SM_PURE(examples_yaml_parse)
{
	const char *cmd = "python3 -c 'import sys, yaml\n"
			  "for f in sys.argv[1:]:\n"
			  "    docs = [d for d in yaml.safe_load_all(open(f)) if d]\n"
			  "    assert docs, f\n"
			  "    print(f, len(docs))' examples/k8s/*.yaml examples/prometheus/*.yml";

	if (system("python3 -c 'import yaml' 2>/dev/null") != 0)
		return SKIP("no python3-yaml");
	return ASSERT_EQ(system(cmd), 0, "every file parses") ? SM_PASS : SM_FAIL;
}
