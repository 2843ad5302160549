// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig hold and sockmig run, under a new-connection-per-request load,
 * every client outcome counted:
 *   - a server stopped and started again with a 2 s gap at 5,000 conn/s:
 *     with `sockmig hold` 0 failed; the baseline without it fails;
 *   - a server killed with SIGKILL under load and restarted by sockmig run;
 *   - back-to-back SIGHUP reloads: 0 failed, never more generations alive
 *     than the current, the starting one and --max-old stopping ones;
 *   - a new generation that exits before it is ready: rolled back;
 *   - nginx, not written for sockmig, restarted stop-then-start.
 * The server is tests/servers/static_server.c (built by make): it serves one
 * HTTP reply per connection and, on SIGTERM, closes its listener, finishes
 * what it accepted and exits.
 */
#include <dirent.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "itest.h"
#include "proc.h"
#include "runtest.h"
#include "sockmig.h"
#include "util.h"

/* ---- stop, 2 s gap, start ------------------------------------------------ */

/*
 * Where nothing migrates a holder keeps nothing: hold refuses to start, with
 * one Error line that points at sockmig run, and exits 1.
 */
static int hold_refused(struct ienv *e, char *const hold[], const char *why)
{
	pid_t pid = rt_spawn_sockmig(e, "hold.log", hold);
	int st = tp_wait_exit(pid, 10000);

	printf("no native migration (%s): hold must refuse\n", why);
	if (st == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "hold exits 1") &&
	    ASSERT_EQ(it_log_count(e, "hold.log", "Error: hold: no native migration here"), 1,
		      "one Error line") &&
	    ASSERT_EQ(it_log_count(e, "hold.log", "sockmig run"), 1, "it names sockmig run") &&
	    ASSERT_EQ(it_log_count(e, "hold.log", "holding port"), 0, "it holds nothing"))
		return SM_PASS;
	it_show_log(e, "hold.log");
	return SM_FAIL;
}

static int gap_run(bool with_holder)
{
	struct ienv e;
	struct lg_result r;
	char bin[128], port[16];
	char *srv[] = {bin, port, NULL};
	char *hold[] = {"hold", "--port", port, "--addr", "127.0.0.1", "--foreground", NULL};
	char why[200];
	int ret = SM_FAIL, reply, rfd;
	unsigned long long down, up;
	pid_t lpid, cur, holder = 0;

	if (!it_setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!it_test_server(&e, false, bin, sizeof(bin))) {
		it_teardown(&e, RPORT);
		return SKIP("no test server: make builds it");
	}
	snprintf(port, sizeof(port), "%d", RPORT);
	if (with_holder && !tu_kernel_migrates(why, sizeof(why))) {
		ret = hold_refused(&e, hold, why);
		it_teardown(&e, RPORT);
		return ret;
	}
	cur = it_spawn(&e, srv, false);
	if (!ASSERT_TRUE(rt_wait_serving(RPORT), "the server answers"))
		goto out;
	reply = it_probe_reply(RPORT, 1000);
	if (with_holder) {
		holder = rt_spawn_sockmig(&e, "hold.log", hold);
		/* it probes and loads its program first: slow under emulation */
		for (int t = 0; t < 100 && it_log_count(&e, "hold.log", "holding port") < 1; t++)
			burst_sleep_ms(100);
		if (!ASSERT_EQ(it_log_count(&e, "hold.log", "holding port"), 1,
			       "sockmig hold runs"))
			goto out;
	}
	/* 5,000 conn/s for 5 s; the server is away from 1.5 s to 3.5 s */
	rfd = it_start_load_rate(RPORT, reply, 5.0, 5000, 6000, &lpid);
	burst_sleep_ms(1500);
	kill(cur, SIGTERM);
	waitpid(cur, NULL, 0);
	down = burst_now_ms();
	burst_sleep_ms(2000);
	up = burst_now_ms();
	cur = it_spawn(&e, srv, false);
	if (!ASSERT_TRUE(it_finish_load(rfd, lpid, &r), "load result"))
		goto out;
	it_print_result(with_holder ? "stop-gap-start/hold" : "stop-gap-start", I_NONE, &r, 1);
	/* the load ran past the gap, at whatever rate the machine has */
	if (!ASSERT_GT(lg_ok_between(&r, up, UINT64_MAX), 0,
		       "connections served that started once the server was back"))
		goto out;
	if (with_holder && !ASSERT_GT(lg_ok_between(&r, down, up), 0,
				      "connections served that started while no server ran"))
		goto out;
	if (with_holder && ASSERT_EQ(r.started - r.count[LG_OK], 0, "failed with the holder"))
		ret = SM_PASS;
	if (!with_holder && ASSERT_GT(r.started - r.count[LG_OK], 0, "baseline failures"))
		ret = SM_PASS;
	if (ret != SM_PASS)
		it_show_log(&e, "hold.log");
out:
	tp_stop(holder);
	it_teardown(&e, RPORT);
	return ret;
}

SM_TEST(hold_stop_start_gap_none)
{
	return gap_run(false);
}

SM_TEST(hold_stop_start_gap_holder)
{
	return gap_run(true);
}

/* Sleep until burst_now_ms() is @at (at once when past). */
static void sleep_until_ms(unsigned long long at)
{
	unsigned long long now = burst_now_ms();

	if (at > now)
		burst_sleep_ms((int)(at - now));
}

/*
 * A server that comes back in the very scan that forgets a listener gone
 * 5 s: hold must still take it for new, rotate its holder and hand on what
 * the holder kept. (That scan's forgetting used to move the new entry
 * below the index hold looked from: hold missed the server and kept the
 * gap's clients until they timed out; seen under run --stop-start nginx on
 * 5.15.) hold scans every 2 s here: the first server is registered at scan
 * 0 and stopped at 0.5 s, drained at scan 1, found gone at scan 2 (4 s)
 * and forgotten at scan 5 (10 s, the first 5 s later); the second server
 * starts at 9 s, so scan 5 registers it too. Clients at 20/s from the
 * start, each waiting up to 12 s: every one served, those of the gap too.
 */
SM_TEST(hold_rotates_when_a_scan_forgets)
{
	struct ienv e;
	struct lg_result r;
	char bin[128], port[16], why[200];
	char *srv[] = {bin, port, NULL};
	char *hold[] = {"hold",	      "--port", port,		"--addr", "127.0.0.1",
			"--interval", "2000",	"--foreground", NULL};
	int ret = SM_FAIL, reply, rfd;
	unsigned long long t0, down, up;
	pid_t lpid, cur, holder = 0;

	if (!tu_kernel_migrates(why, sizeof(why)))
		return SKIP("%s: hold refuses to start (hold_stop_start_gap_holder)", why);
	if (!it_setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!it_test_server(&e, false, bin, sizeof(bin))) {
		it_teardown(&e, RPORT);
		return SKIP("no test server: make builds it");
	}
	snprintf(port, sizeof(port), "%d", RPORT);
	cur = it_spawn(&e, srv, false);
	if (!ASSERT_TRUE(rt_wait_serving(RPORT), "the server answers"))
		goto out;
	reply = it_probe_reply(RPORT, 1000);
	holder = rt_spawn_sockmig(&e, "hold.log", hold);
	/* its first scan follows this line at once */
	if (!ASSERT_TRUE(rt_wait_log(&e, "hold.log", "holding port", 1, 10000), "hold runs"))
		goto out;
	t0 = burst_now_ms();
	rfd = it_start_load_rate(RPORT, reply, 11.0, 20, 12000, &lpid);
	sleep_until_ms(t0 + 500);
	kill(cur, SIGTERM);
	waitpid(cur, NULL, 0);
	down = burst_now_ms();
	sleep_until_ms(t0 + 9000);
	up = burst_now_ms();
	cur = it_spawn(&e, srv, false);
	if (!ASSERT_TRUE(it_finish_load(rfd, lpid, &r), "load result"))
		goto out;
	it_print_result("hold, server back as a scan forgets", I_NONE, &r, 1);
	if (ASSERT_EQ(it_log_count(&e, "hold.log", "server listener joined"), 2,
		      "both servers joined (the holder rotated each time)") &&
	    ASSERT_GT(lg_ok_between(&r, down, up), 0,
		      "connections served that started while no server ran") &&
	    ASSERT_EQ(r.started - r.count[LG_OK], 0, "failed connections"))
		ret = SM_PASS;
	if (ret != SM_PASS)
		it_show_log(&e, "hold.log");
out:
	tp_stop(holder);
	it_teardown(&e, RPORT);
	return ret;
}

/* ---- sockmig run ----------------------------------------------------------- */

/*
 * Kill the server under sockmig run with SIGKILL, then collect the load:
 * every connection served but those that die with the server (see
 * rt_killed_judge()). false after a failed assertion.
 */
static bool kill9_and_load(struct runenv *re, int rfd, pid_t lpid, struct lg_result *r,
			   const char *what, int stop_after_ms)
{
	pid_t victim = tp_find_child(re->run);
	struct rt_kill k;

	if (!ASSERT_GT(victim, 0, "found the server"))
		return false;
	rt_kill9_counted(victim, &k);
	if (stop_after_ms) {
		/* a load as long as the test needs: stopped after the kill */
		burst_sleep_ms(stop_after_ms);
		it_stop_load(lpid);
	}
	if (!ASSERT_TRUE(it_finish_load(rfd, lpid, r), "load result"))
		return false;
	it_print_result(what, I_NONE, r, 1);
	return rt_killed_judge(r, &k);
}

SM_TEST(run_restarts_a_killed_server)
{
	struct runenv re = {0};
	struct lg_result r;
	int ret = SM_FAIL, rfd;
	pid_t lpid;

	ret = rt_run_start(&re, NULL);
	if (ret != SM_PASS) {
		rt_run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	rfd = it_start_load(RPORT, re.reply, 4.0, &lpid);
	burst_sleep_ms(1500);
	if (!kill9_and_load(&re, rfd, lpid, &r, "run/kill -9", 0))
		goto out;
	if (!ASSERT_EQ(it_log_count(&re.e, "run.log", "died"), 1, "sockmig run saw it die"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&re.e, "run.log");
	rt_run_stop(&re);
	return ret;
}

/* The count is the test; the time is only a bound for a machine that
 * cannot finish (the load stops as soon as the reloads are done): about
 * 45 s here, so the case has a limit of its own above that bound. */
#define RELOADS	    1000
#define RELOAD_SECS 150

SM_LONG(run_back_to_back_reloads, 180)
{
	struct runenv re = {0};
	struct lg_result r;
	char *extra[] = {"--max-old", "1", NULL};
	char why[200];
	int ret = SM_FAIL, rfd, most = 0, n, done = 0;
	unsigned long long end;
	pid_t lpid;

	ret = rt_run_start(&re, extra);
	if (ret != SM_PASS) {
		rt_run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	rfd = it_start_load(RPORT, re.reply, RELOAD_SECS + 3, &lpid);
	burst_sleep_ms(300);
	end = burst_now_ms() + RELOAD_SECS * 1000ull;
	/* back to back: the next SIGHUP as soon as the last generation is
	 * ready, never before (a SIGHUP while a generation starts is folded
	 * into it, and the counts below would be one short: seen on a machine
	 * that took over a second for a generation), 10 s at most each */
	while (done < RELOADS && burst_now_ms() < end) {
		unsigned long long ready_by = burst_now_ms() + 10000;

		kill(re.run, SIGHUP);
		while (burst_now_ms() < ready_by) {
			n = tp_children_of(re.run);
			most = n > most ? n : most;
			if (it_log_count(&re.e, "run.log", "ready in") >= done + 2)
				break;
			burst_sleep_ms(2);
		}
		done++;
	}
	burst_sleep_ms(300);
	it_stop_load(lpid);
	if (!ASSERT_TRUE(it_finish_load(rfd, lpid, &r), "load result"))
		goto out;
	it_print_result("run/SIGHUP", I_NONE, &r, done);
	printf("SIGHUPs %d, generations ready %d, reload reports %d, most processes at once %d\n",
	       done, it_log_count(&re.e, "run.log", "ready in"),
	       it_log_count(&re.e, "run.log", "reload report"), most);
	if (!ASSERT_EQ(r.started - r.count[LG_OK], 0, "failed connections") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run.log", "ready in"), done + 1, "generations") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run.log", "failed: generation"), 0, "failed reloads") ||
	    !ASSERT_TRUE(most <= 1 + 1 + 1, "current + starting + at most --max-old stopping"))
		goto out;
	/* the rate is the machine's: a slow one (measured) skips, saying so;
	 * so does the hand-off (no native migration), whose generations are
	 * ready --ready-after (500 ms) after their start, not at their listen */
	if (done < RELOADS &&
	    (tu_machine_too_slow(why, sizeof(why)) || !tu_kernel_migrates(why, sizeof(why)))) {
		ret = SKIP("%d of %d reloads in %d s, every one served (0 failed of %llu): %s",
			   done, RELOADS, RELOAD_SECS, (unsigned long long)r.started, why);
		goto out;
	}
	if (!ASSERT_EQ(done, RELOADS, "reloads asked"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&re.e, "run.log");
	rt_run_stop(&re);
	return ret;
}

/* Generation 2 exits before it is ready: generation 1 keeps serving. */
SM_TEST(run_rolls_back_a_failed_generation)
{
	struct runenv re = {.wrap = true};
	struct lg_result r;
	char flag[160];
	int ret = SM_FAIL, rfd, fd;
	pid_t lpid;

	ret = rt_run_start(&re, NULL);
	if (ret != SM_PASS) {
		rt_run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	rfd = it_start_load(RPORT, re.reply, 3.0, &lpid);
	burst_sleep_ms(500);
	/* from now on the command exits at once */
	snprintf(flag, sizeof(flag), "%s/fail", re.e.dir);
	fd = open(flag, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	kill(re.run, SIGHUP);
	burst_sleep_ms(1000);
	if (!ASSERT_TRUE(it_finish_load(rfd, lpid, &r), "load result"))
		goto out;
	it_print_result("run/failed reload", I_NONE, &r, 1);
	if (!ASSERT_EQ(r.started - r.count[LG_OK], 0, "failed connections") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run.log", "reload 1 failed"), 1, "reported failed") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run.log", "generation 1 keeps serving"), 1,
		       "generation 1 kept") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run.log", "ready in"), 1, "only generation 1 ready"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&re.e, "run.log");
	rt_run_stop(&re);
	return ret;
}

/*
 * sockmig run with @args (nginx on RPORT, stop-then-start) started in *run:
 * @n SIGHUPs under load, 1.2 s apart or more (each once the last
 * generation is ready); every connection served, @n + 1 generations. false after a failed assertion (the log is shown).
 */
static bool nginx_restarts(struct ienv *e, char *const args[], const char *what, int n, pid_t *run)
{
	struct lg_result r;
	int reply, rfd;
	pid_t lpid;

	*run = rt_spawn_sockmig(e, "run.log", args);
	/* run probes the kernel first: seconds under emulation */
	reply = it_probe_reply(RPORT, 20000);
	if (!ASSERT_GT(reply, 0, "nginx answers under sockmig run"))
		goto fail;
	/* bounded at 60 s more than the reloads need; stopped 1.2 s after
	 * the last generation is ready, however long they took */
	rfd = it_start_load(RPORT, reply, 1.2 * (n + 1) + 60, &lpid);
	for (int i = 0; i < n; i++) {
		burst_sleep_ms(1200);
		/* a SIGHUP while a generation starts is merged into its
		 * reload: each one after the last is ready */
		rt_wait_log(e, "run.log", "ready in", i + 1, 10000);
		kill(*run, SIGHUP);
	}
	rt_wait_log(e, "run.log", "ready in", n + 1, 10000);
	burst_sleep_ms(1200);
	it_stop_load(lpid);
	if (!ASSERT_TRUE(it_finish_load(rfd, lpid, &r), "load result"))
		goto fail;
	it_print_result(what, I_NONE, &r, n);
	if (ASSERT_GT(r.started, 5000, "connections") &&
	    ASSERT_EQ(r.started - r.count[LG_OK], 0, "failed connections") &&
	    ASSERT_EQ(it_log_count(e, "run.log", "ready in"), n + 1, "generations"))
		return true;
fail:
	it_show_log(e, "run.log");
	return false;
}

/* nginx, not written for sockmig, restarted stop-then-start by sockmig run
 * 20 times: every restart leaves the port without nginx for a moment; the
 * holder keeps the clients (where nothing migrates, run's own listener,
 * which never closes). */
SM_TEST(run_stop_start_nginx)
{
	struct ienv e;
	char conf[128], port[16];
	char *native[] = {"run",	 "--port",  port, "--stop-start", "--stop-signal",
			  "QUIT",	 "--grace", "5",  "--",		  "nginx",
			  "-c",		 conf,	    "-p", e.dir,	  "-g",
			  "daemon off;", NULL};
	/* where nothing migrates run keeps the listener itself: on the address
	 * nginx binds, or the shim does not put it in place (and says so) */
	char *handoff[] = {"run",
			   "--port",
			   port,
			   "--addr",
			   "127.0.0.1",
			   "--stop-start",
			   "--stop-signal",
			   "QUIT",
			   "--grace",
			   "5",
			   "--",
			   "nginx",
			   "-c",
			   conf,
			   "-p",
			   e.dir,
			   "-g",
			   "daemon off;",
			   NULL};
	char why[200];
	int ret = SM_FAIL;
	pid_t run = 0;

	if (access("/usr/sbin/nginx", X_OK) < 0)
		return SKIP("nginx is not installed (scripts/deps installs it)");
	if (!it_setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(conf, sizeof(conf), "%s/nginx.conf", e.dir);
	snprintf(port, sizeof(port), "%d", RPORT);
	if (it_nginx_conf(&e, 2, RPORT) &&
	    nginx_restarts(&e, tu_kernel_migrates(why, sizeof(why)) ? native : handoff,
			   "run --stop-start nginx", 20, &run))
		ret = SM_PASS;
	if (run > 0)
		tp_stop(run);
	it_teardown(&e, RPORT);
	return ret;
}

/*
 * Listener hand-off (issue 6, item 3), what a kernel without migration
 * gets: with SOCKMIG_MODE=legacy standing for such a kernel, sockmig run
 * chooses it itself, loads no BPF, and owns the listener; nginx, which
 * does not take LISTEN_FDS, binds the port as always and the shim answers
 * with run's listener, so stopping nginx closes nothing. Baseline first, in
 * the same namespace: the same stop-then-start restarts done by hand fail.
 */
SM_TEST(run_handoff_nginx_without_bpf)
{
	struct ienv e;
	struct lg_result r;
	char conf[128], port[16], names[4][SOCKMIG_NAME_MAX];
	char *args[] = {"run",
			"--port",
			port,
			"--addr",
			"127.0.0.1",
			"--stop-start",
			"--stop-signal",
			"QUIT",
			"--grace",
			"5",
			"--ready-after",
			"200",
			"--",
			"nginx",
			"-c",
			conf,
			"-p",
			e.dir,
			"-g",
			"daemon off;",
			NULL};
	char *nginx[] = {"/usr/sbin/nginx", "-c", conf, "-p", e.dir, "-g", "daemon off;", NULL};
	int ret = SM_FAIL, reply, rfd;
	pid_t run = 0, lpid, srv;

	if (access("/usr/sbin/nginx", X_OK) < 0)
		return SKIP("nginx is not installed (scripts/deps installs it)");
	if (!it_setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(conf, sizeof(conf), "%s/nginx.conf", e.dir);
	snprintf(port, sizeof(port), "%d", RPORT);
	if (!it_nginx_conf(&e, 2, RPORT))
		goto out;

	/* baseline: stop nginx, start it again, twice, under load */
	srv = it_spawn(&e, nginx, false);
	reply = it_probe_reply(RPORT, 3000);
	if (!ASSERT_GT(reply, 0, "nginx answers"))
		goto out;
	rfd = it_start_load(RPORT, reply, 3.0, &lpid);
	for (int i = 0; i < 2; i++) {
		burst_sleep_ms(800);
		kill(srv, SIGQUIT);
		waitpid(srv, NULL, 0);
		srv = it_spawn(&e, nginx, false);
	}
	if (!ASSERT_TRUE(it_finish_load(rfd, lpid, &r), "baseline load result"))
		goto out;
	it_print_result("nginx stop-then-start", I_NONE, &r, 2);
	if (!ASSERT_GT(r.started - r.count[LG_OK], 0, "baseline: failed connections"))
		goto out;
	kill(srv, SIGQUIT);
	waitpid(srv, NULL, 0);

	setenv("SOCKMIG_MODE", "legacy", 1);
	if (!nginx_restarts(&e, args, "run --handoff (chosen) nginx", 4, &run))
		goto out;
	if (ASSERT_EQ(it_log_count(&e, "run.log", "no native migration (SOCKMIG_MODE=legacy)"), 1,
		      "run chose the hand-off") &&
	    ASSERT_EQ(sockmig_group_list(NULL, names, 4), 0, "no BPF group pinned"))
		ret = SM_PASS;
out:
	if (run > 0)
		tp_stop(run);
	it_teardown(&e, RPORT);
	return ret;
}

/*
 * No BPF at all (--socket-activation): sockmig run owns the listener and
 * passes it to every generation as fd 3 (LISTEN_FDS), so nothing closes it.
 * 40 reloads and a kill -9 under load: only the connections the killed
 * server had accepted fail. tcp_migrate_req is 0 and no group is pinned.
 */
SM_TEST(run_socket_activation_without_bpf)
{
	struct runenv re = {0};
	struct lg_result r;
	char *extra[] = {"--addr", "127.0.0.1", "--socket-activation", "--ready-after", "50", NULL};
	char names[4][SOCKMIG_NAME_MAX];
	int ret = SM_FAIL, rfd;
	pid_t lpid;

	ret = rt_run_start(&re, extra);
	if (ret != SM_PASS) {
		rt_run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	/* 60 s at most: stopped 1.5 s after the kill, which comes after
	 * the reloads, however long they take */
	rfd = it_start_load(RPORT, re.reply, 60.0, &lpid);
	/* one SIGHUP after each generation is ready: run merges the ones
	 * that come while a generation starts into one reload */
	for (int i = 0; i < 40; i++) {
		kill(re.run, SIGHUP);
		if (!ASSERT_TRUE(rt_wait_log(&re.e, "run.log", "ready in", i + 2, 5000),
				 "the reload's generation ready")) {
			it_finish_load(rfd, lpid, &r);
			goto out;
		}
	}
	burst_sleep_ms(300);
	if (!kill9_and_load(&re, rfd, lpid, &r, "run --socket-activation", 1500))
		goto out;
	if (!ASSERT_EQ(sockmig_group_list(NULL, names, 4), 0, "no BPF group pinned") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run.log", "ready in"), 41, "generations"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&re.e, "run.log");
	rt_run_stop(&re);
	return ret;
}
