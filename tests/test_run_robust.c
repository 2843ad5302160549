// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig run, hold and attach when things die or go stale (issue 9): a
 * SIGTERM during the back-off, a worker that dies, a first start that
 * fails, run or its server killed and restarted, a stale pid file of
 * another daemon, a notify socket another user could squat. The server is
 * tests/servers/static_server.c under sockmig run (see runtest.h).
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

/* ---- robustness: deaths, kills, stale files, other users (issue 9) --------- */

/* From now on the server's wrapper exits at once (status 3). */
static void fail_from_now(const struct runenv *re, bool fail)
{
	char flag[160];
	int fd;

	snprintf(flag, sizeof(flag), "%s/fail", re->e.dir);
	if (!fail) {
		unlink(flag);
		return;
	}
	fd = open(flag, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}

/*
 * Kill the server under run and make its restarts fail until the backoff
 * reaches 800 ms (restarts after 100, 200 and 400 ms fail); true once run
 * is in that 800 ms wait.
 */
static bool into_800ms_backoff(struct runenv *re)
{
	pid_t victim = tp_find_child(re->run);

	if (!ASSERT_GT(victim, 0, "found the server"))
		return false;
	fail_from_now(re, true);
	kill(victim, SIGKILL);
	return ASSERT_TRUE(rt_wait_log(&re->e, "run.log", "restarting in 800 ms", 1, RT_START_MS),
			   "run waits 800 ms before the next restart");
}

/* Issue 9, item 3: SIGTERM while a dead worker waits for its restart. */
SM_TEST(run_sigterm_during_backoff)
{
	struct runenv re = {.wrap = true};
	int ret, st;

	ret = rt_run_start(&re, NULL);
	if (ret != SM_PASS) {
		rt_run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	if (!into_800ms_backoff(&re))
		goto out;
	kill(re.run, SIGTERM);
	st = tp_wait_exit(re.run, 2000);
	if (!ASSERT_TRUE(st != -1, "run stops within 2 s of SIGTERM"))
		goto out;
	re.run = 0;
	if (ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0") &&
	    ASSERT_EQ(it_log_count(&re.e, "run.log", "stopped:"), 1, "run says it stopped"))
		ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&re.e, "run.log");
	rt_run_stop(&re);
	return ret;
}

/* Issue 9, item 3: reloads after a worker died; SIGTERM still stops run. */
SM_TEST(run_worker_death_then_reloads)
{
	struct runenv re = {.wrap = true};
	int ret, st;

	ret = rt_run_start(&re, NULL);
	if (ret != SM_PASS) {
		rt_run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	if (!into_800ms_backoff(&re))
		goto out;
	fail_from_now(&re, false);
	/* generation 1 has no process left: generations 2, 3 and 4 replace it */
	for (int gen = 2; gen <= 4; gen++) {
		kill(re.run, SIGHUP);
		if (!ASSERT_TRUE(rt_wait_log(&re.e, "run.log", "ready in", gen, RT_START_MS),
				 "the next generation is ready"))
			goto out;
		printf("generation %d ready\n", gen);
	}
	if (!ASSERT_TRUE(it_probe_reply(RPORT, 1000) > 0, "generation 4 serves"))
		goto out;
	kill(re.run, SIGTERM);
	st = tp_wait_exit(re.run, 3000);
	if (!ASSERT_TRUE(st != -1, "run stops within 3 s of SIGTERM"))
		goto out;
	re.run = 0;
	if (ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0") &&
	    ASSERT_EQ(it_log_count(&re.e, "run.log", "ready in"), 4, "generations"))
		ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&re.e, "run.log");
	rt_run_stop(&re);
	return ret;
}

/* Line @n (from 1) of dir/@name as a pid, or 0. */
static pid_t pid_line(const struct ienv *e, const char *name, int n)
{
	char path[192];
	int pid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	f = fopen(path, "re");
	for (int i = 0; f && i < n; i++)
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
	if (f)
		fclose(f);
	return (pid_t)pid;
}

/*
 * --grace's SIGKILL ends a generation's whole process tree: a server whose
 * master forked a worker that ignores the stop signal (here a sleep,
 * forked before the master execs the test server). With --stop-signal
 * WINCH (ignored) the master does not stop by itself; with TERM it exits
 * at once and leaves its worker behind. Either way the worker ran on,
 * reparented, out of run's sight: killed with its master, or never.
 * Generation 1's worker is gone after the reload's --grace, generation 2's
 * after run's stop; generation 2's lives until then.
 */
static int grace_kills_tree(const char *stop_sig)
{
	struct ienv e;
	char bin[128], script[192], port[16], sig[16];
	char *args[] = {"run", "--port", port,	 "--grace", "1", "--stop-signal",
			sig,   "--",	 script, port,	    NULL};
	pid_t run = 0, w1 = 0, w2 = 0;
	int ret = SM_FAIL, st;
	FILE *f;

	if (!it_setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!it_test_server(&e, false, bin, sizeof(bin)))
		return SKIP("no test server: make builds it");
	snprintf(port, sizeof(port), "%d", RPORT);
	snprintf(sig, sizeof(sig), "%s", stop_sig);
	snprintf(script, sizeof(script), "%s/tree.sh", e.dir);
	f = fopen(script, "w");
	if (!ASSERT_TRUE(f != NULL, "the server's script"))
		goto out;
	fprintf(f, "#!/bin/sh\nsleep 600 &\necho $! >> %s/workers\nexec %s \"$@\"\n", e.dir, bin);
	fclose(f);
	chmod(script, 0700);
	run = rt_spawn_sockmig(&e, "run.log", args);
	if (!ASSERT_TRUE(rt_wait_log(&e, "run.log", "ready in", 1, 10000), "generation 1 ready") ||
	    !ASSERT_GT(w1 = pid_line(&e, "workers", 1), 0, "generation 1's worker") ||
	    !ASSERT_OK(kill(run, SIGHUP), "reload") ||
	    !ASSERT_TRUE(rt_wait_log(&e, "run.log", "ready in", 2, 10000), "generation 2 ready") ||
	    !ASSERT_GT(w2 = pid_line(&e, "workers", 2), 0, "generation 2's worker") ||
	    !ASSERT_TRUE(rt_wait_gone(w1, 5000), "generation 1's worker killed at --grace") ||
	    !ASSERT_TRUE(rt_alive(w2), "generation 2's worker alive") ||
	    !ASSERT_OK(kill(run, SIGTERM), "stop"))
		goto out;
	st = tp_wait_exit(run, 5000);
	if (!ASSERT_TRUE(st != -1, "run stops within 5 s of SIGTERM"))
		goto out;
	run = 0;
	if (ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0") &&
	    ASSERT_TRUE(rt_wait_gone(w2, 3000), "generation 2's worker killed at run's stop"))
		ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "run.log");
	if (run > 0)
		tp_stop(run);
	if (w1 > 0 && rt_alive(w1))
		kill(w1, SIGKILL);
	if (w2 > 0 && rt_alive(w2))
		kill(w2, SIGKILL);
	it_teardown(&e, RPORT);
	return ret;
}

/* A master that ignores the stop signal: killed at --grace with its worker. */
SM_TEST(run_grace_kills_the_whole_process_tree)
{
	return grace_kills_tree("WINCH");
}

/* A master that exits at the stop signal and leaves its worker running:
 * the worker is still its generation's, killed at --grace. */
SM_TEST(run_grace_kills_workers_their_master_left)
{
	return grace_kills_tree("TERM");
}

/* Issue 9, item 12: a command that cannot start, natively and with --handoff:
 * retried with backoff, then one Error line and exit 1 at --ready-timeout;
 * nothing left behind. */
SM_TEST(run_first_start_fails_exits)
{
	struct ienv e;
	char port[16], path[160];
	char *native[] = {"run", "--port", port,	   "--ready-timeout",
			  "1",	 "--",	   "/nonexistent", NULL};
	char *handoff[] = {"run", "--port", port,	    "--handoff", "--ready-timeout",
			   "1",	  "--",	    "/nonexistent", NULL};
	char *const *modes[] = {native, handoff};
	const char *logs[] = {"native.log", "handoff.log"};
	int ret = SM_FAIL, st;
	pid_t run;

	if (!it_setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(port, sizeof(port), "%d", RPORT);
	for (int m = 0; m < 2; m++) {
		run = rt_spawn_sockmig(&e, logs[m], modes[m]);
		st = tp_wait_exit(run, 4000);
		if (st == -1)
			tp_stop(run);
		printf("%s: retried %d times\n", logs[m],
		       it_log_count(&e, logs[m], "cannot run /nonexistent") - 1);
		rt_daemon_file(path, sizeof(path), "run-35000.pid");
		if (!ASSERT_TRUE(st != -1, "run exits within 4 s") ||
		    !ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit status 1") ||
		    !ASSERT_EQ(it_log_count(&e, logs[m], "Error: "), 1, "one error line") ||
		    !ASSERT_EQ(it_log_count(&e, logs[m],
					    "Error: run: /nonexistent was not ready within "
					    "1 s"),
			       1, "the error says what") ||
		    !ASSERT_GT(it_log_count(&e, logs[m], "cannot run /nonexistent"), 2,
			       "retried") ||
		    !ASSERT_EQ(rt_groups_here(), 0, "no group pinned") ||
		    !ASSERT_TRUE(access(path, F_OK) < 0, "no pid file left")) {
			it_show_log(&e, logs[m]);
			goto out;
		}
	}
	ret = SM_PASS;
out:
	it_teardown(&e, RPORT);
	return ret;
}

/*
 * Issue 9, item 10: sockmig run killed with SIGKILL. Its server keeps
 * serving through its own listener; a new run on the port adopts it (same
 * pid and start time), stops it once its own generation listens, with no
 * connection lost under load, and leaves nothing behind when it stops.
 */
SM_TEST(run_killed_then_restarted)
{
	struct runenv re = {0};
	char *args[] = {"run", "--port", re.port, "--grace", "5", "--", re.bin, re.port, NULL};
	char path[160];
	struct lg_result r;
	pid_t orphan, run2 = 0, lpid;
	int ret, rfd, st;

	ret = rt_run_start(&re, NULL);
	if (ret != SM_PASS) {
		rt_run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	orphan = tp_find_child(re.run);
	if (!ASSERT_GT(orphan, 0, "found the server"))
		goto out;
	kill(re.run, SIGKILL);
	waitpid(re.run, NULL, 0);
	re.run = 0;
	if (!ASSERT_TRUE(it_probe_reply(RPORT, 1000) > 0, "the server serves without run"))
		goto out;
	rfd = it_start_load(RPORT, re.reply, 3.0, &lpid);
	burst_sleep_ms(500);
	run2 = rt_spawn_sockmig(&re.e, "run2.log", args);
	if (!ASSERT_TRUE(rt_wait_gone(orphan, 7000), "the orphan is stopped"))
		goto out;
	if (!ASSERT_TRUE(it_finish_load(rfd, lpid, &r), "load result"))
		goto out;
	it_print_result("run killed, run again", I_NONE, &r, 1);
	if (!ASSERT_GT(r.started, 1000, "connections") ||
	    !ASSERT_EQ(r.started - r.count[LG_OK], 0, "failed connections") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run2.log", "adopted 1 process"), 1, "adopted") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run2.log", "ready in"), 1, "its generation 1 ready") ||
	    !ASSERT_TRUE(it_probe_reply(RPORT, 1000) > 0, "generation 1 serves"))
		goto out;
	kill(run2, SIGTERM);
	st = tp_wait_exit(run2, 3000);
	if (!ASSERT_TRUE(st != -1, "the new run stops"))
		goto out;
	run2 = 0;
	rt_daemon_file(path, sizeof(path), "run-35000.gens");
	if (ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0") &&
	    ASSERT_EQ(rt_groups_here(), 0, "no group pinned") &&
	    ASSERT_TRUE(access(path, F_OK) < 0, "no generations file left") &&
	    ASSERT_TRUE(it_probe_reply(RPORT, 200) < 0, "nothing listens"))
		ret = SM_PASS;
out:
	if (ret != SM_PASS) {
		it_show_log(&re.e, "run.log");
		it_show_log(&re.e, "run2.log");
	}
	if (run2 > 0)
		tp_stop(run2);
	if (orphan > 0)
		kill(orphan, SIGKILL);
	rt_run_stop(&re);
	return ret;
}

/*
 * The same, but the new run's own generation never gets ready: it gives up
 * at --ready-timeout and leaves the killed run's server serving, with the
 * group's pins and its record, for the next run.
 */
SM_TEST(run_killed_then_restart_fails)
{
	struct runenv re = {.wrap = true};
	char *args[] = {"run",	"--port", re.port, "--ready-timeout", "1", "--",
			re.cmd, re.port,  NULL};
	char path[160], why[200];
	pid_t orphan = 0, run2;
	int ret, st;

	ret = rt_run_start(&re, NULL);
	if (ret != SM_PASS) {
		rt_run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	orphan = tp_find_child(re.run);
	if (!ASSERT_GT(orphan, 0, "found the server"))
		goto out;
	kill(re.run, SIGKILL);
	waitpid(re.run, NULL, 0);
	re.run = 0;
	fail_from_now(&re, true);
	run2 = rt_spawn_sockmig(&re.e, "run2.log", args);
	st = tp_wait_exit(run2, 4000);
	if (st == -1)
		tp_stop(run2);
	rt_daemon_file(path, sizeof(path), "run-35000.gens");
	if (!ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
			 "the new run gives up with status 1") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run2.log", "adopted 1 process"), 1, "adopted") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run2.log", "Error: "), 1, "one error line") ||
	    !ASSERT_TRUE(rt_alive(orphan), "the killed run's server still runs") ||
	    !ASSERT_TRUE(it_probe_reply(RPORT, 1000) > 0, "and serves") ||
	    !ASSERT_EQ(rt_groups_here(), tu_kernel_migrates(why, sizeof(why)) ? 1 : 0,
		       "its group stays pinned (none where run keeps the listener)") ||
	    !ASSERT_EQ(rt_pidfile_pid("run-35000.gens"), orphan, "and recorded"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS) {
		it_show_log(&re.e, "run.log");
		it_show_log(&re.e, "run2.log");
	}
	if (orphan > 0)
		kill(orphan, SIGKILL);
	unlink(path);
	*strrchr(path, '/') = '\0';
	rmdir(path);
	re.e.mode = I_ATTACH; /* detach: the pins a kill -9 leaves */
	rt_run_stop(&re);
	return ret;
}

/* `sockmig ARGS` in the foreground: its exit status (-1 if it hangs). */
static int sockmig_status(struct ienv *e, const char *log, char *const args[])
{
	pid_t pid = rt_spawn_sockmig(e, log, args);
	int st = tp_wait_exit(pid, 3000);

	if (st == -1) {
		tp_stop(pid);
		return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * Issue 9, item 14: a stale run pid file that names another live sockmig
 * daemon (attach, pid and start time right): reload refuses and removes
 * it; attach and hold take a SIGHUP without dying.
 */
SM_TEST(reload_stale_pidfile_other_daemon)
{
	struct ienv e;
	char bin[128], port[16], path[160];
	char *srv[] = {bin, port, NULL};
	char *attach[] = {"attach", "--port", port, "--foreground", NULL};
	char *hold[] = {"hold", "--port", port, "--addr", "127.0.0.1", "--foreground", NULL};
	char *reload[] = {"reload", "--port", port, NULL};
	int ret = SM_FAIL;
	pid_t at = 0, ho = 0;
	FILE *f;

	if (!it_setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!it_test_server(&e, false, bin, sizeof(bin))) {
		it_teardown(&e, RPORT);
		return SKIP("no test server: make builds it");
	}
	snprintf(port, sizeof(port), "%d", RPORT);
	it_spawn(&e, srv, false);
	if (!ASSERT_TRUE(rt_wait_serving(RPORT), "the server answers"))
		goto out;
	at = rt_spawn_sockmig(&e, "attach.log", attach);
	ho = rt_spawn_sockmig(&e, "hold.log", hold);
	if (!ASSERT_TRUE(rt_wait_log(&e, "attach.log", "registered", 1, RT_START_MS),
			 "attach runs") ||
	    !ASSERT_TRUE(rt_wait_log(&e, "hold.log", "holding port", 1, RT_START_MS), "hold runs"))
		goto out;
	/* what a killed run leaves when its pid is taken again by attach */
	rt_daemon_file(path, sizeof(path), "run-35000.pid");
	f = fopen(path, "we");
	if (!ASSERT_TRUE(f != NULL, "the stale pid file"))
		goto out;
	fprintf(f, "%d %llu\n", (int)at, tp_start_time(at, true));
	fclose(f);
	if (!ASSERT_EQ(sockmig_status(&e, "reload.log", reload), 1, "reload refuses") ||
	    !ASSERT_EQ(
		    it_log_count(&e, "reload.log", "Error: no sockmig run supervises port 35000"),
		    1, "reload says why") ||
	    !ASSERT_TRUE(access(path, F_OK) < 0, "the stale file is removed"))
		goto out;
	kill(at, SIGHUP);
	kill(ho, SIGHUP);
	burst_sleep_ms(300);
	if (ASSERT_TRUE(rt_alive(at), "attach survives SIGHUP") &&
	    ASSERT_TRUE(rt_alive(ho), "hold survives SIGHUP"))
		ret = SM_PASS;
out:
	if (ret != SM_PASS) {
		it_show_log(&e, "reload.log");
		it_show_log(&e, "attach.log");
		it_show_log(&e, "hold.log");
	}
	tp_stop(ho);
	tp_stop(at);
	unlink(path);
	e.mode = I_ATTACH; /* detach */
	it_teardown(&e, RPORT);
	return ret;
}

/*
 * Issue 9, item 15: uid 65534 binds the abstract name run used for its
 * notify socket (@sockmig-run-PID) before run starts; run must start all
 * the same, and the socket it uses must be out of that user's reach.
 */
SM_TEST(run_notify_socket_not_squattable)
{
	struct runenv re = {0};
	char *args[] = {NULL, "run", "--port", re.port, "--", re.bin, re.port, NULL};
	char path[160], go = 1;
	int gate[2], bound[2], ret = SM_FAIL, err = 0;
	pid_t squat = 0, sender;

	if (!it_setup(&re.e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!it_test_server(&re.e, false, re.bin, sizeof(re.bin))) {
		it_teardown(&re.e, RPORT);
		return SKIP("no test server: make builds it");
	}
	snprintf(re.port, sizeof(re.port), "%d", RPORT);
	snprintf(path, sizeof(path), "%s/run.log", re.e.dir);
	args[0] = re.e.sockmig;
	if (pipe(gate) < 0 || pipe(bound) < 0)
		goto out;
	/* sockmig run's process, held until its name is taken */
	re.run = fork();
	if (re.run == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		close(gate[1]);
		if (fd < 0 || read(gate[0], &go, 1) != 1)
			_exit(1);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		execv(args[0], args);
		_exit(127);
	}
	close(gate[0]);
	squat = fork();
	if (squat == 0) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "@sockmig-run-%d",
				 (int)re.run);
		int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

		sun.sun_path[0] = '\0';
		if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0 ||
		    bind(fd, (struct sockaddr *)&sun,
			 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n)) < 0 ||
		    write(bound[1], &go, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	if (!ASSERT_TRUE(read(bound[0], &go, 1) == 1, "uid 65534 took run's abstract name") ||
	    !ASSERT_TRUE(write(gate[1], &go, 1) == 1, "run goes"))
		goto out;
	re.reply = it_probe_reply(RPORT, RT_START_MS);
	if (!ASSERT_GT(re.reply, 0, "sockmig run starts the server") ||
	    !ASSERT_TRUE(rt_wait_log(&re.e, "run.log", "ready in", 1, 10000), "generation 1 ready"))
		goto out;
	/* the notify socket: uid 65534 can neither reach nor flood it */
	rt_daemon_file(path, sizeof(path), "run-35000.notify");
	sender = fork();
	if (sender == 0) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
		if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
			_exit(2);
		_exit(sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sun, sizeof(sun)) < 0 &&
				      errno == EACCES
			      ? 0
			      : 1);
	}
	waitpid(sender, &err, 0);
	if (ASSERT_TRUE(access(path, F_OK) == 0, "the notify socket is a file") &&
	    ASSERT_TRUE(WIFEXITED(err) && WEXITSTATUS(err) == 0,
			"uid 65534 cannot send to it (EACCES)"))
		ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&re.e, "run.log");
	if (squat > 0) {
		kill(squat, SIGKILL);
		waitpid(squat, NULL, 0);
	}
	rt_run_stop(&re);
	return ret;
}

/*
 * attach or hold killed with SIGKILL, then started again: the new daemon
 * takes the stale pid file over and keeps it locked; a third one is
 * refused with one line; SIGTERM removes the file.
 */
static int killed_then_restarted(const char *kind)
{
	struct ienv e;
	char bin[128], port[16], path[160], name[32], log[32];
	char *srv[] = {bin, port, NULL};
	char *attach[] = {"attach", "--port", port, "--foreground", NULL};
	char *hold[] = {"hold", "--port", port, "--addr", "127.0.0.1", "--foreground", NULL};
	char **args = strcmp(kind, "attach") == 0 ? attach : hold;
	const char *ready = args == attach ? "registered" : "holding port";
	char why[200];
	pid_t d[3] = {0};
	int ret = SM_FAIL, st, fd;

	if (args == hold && !tu_kernel_migrates(why, sizeof(why)))
		return SKIP("hold refuses to start where nothing migrates (%s): "
			    "hold_stop_start_gap_holder checks that",
			    why);
	if (!it_setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!it_test_server(&e, false, bin, sizeof(bin))) {
		it_teardown(&e, RPORT);
		return SKIP("no test server: make builds it");
	}
	snprintf(port, sizeof(port), "%d", RPORT);
	snprintf(name, sizeof(name), "%s-%d.pid", kind, RPORT);
	rt_daemon_file(path, sizeof(path), name);
	it_spawn(&e, srv, false);
	if (!ASSERT_TRUE(rt_wait_serving(RPORT), "the server answers"))
		goto out;
	for (int i = 0; i < 2; i++) {
		snprintf(log, sizeof(log), "%s%d.log", kind, i + 1);
		d[i] = rt_spawn_sockmig(&e, log, args);
		if (!ASSERT_TRUE(rt_wait_log(&e, log, ready, 1, RT_START_MS), "the daemon runs") ||
		    !ASSERT_EQ(rt_pidfile_pid(name), d[i], "the pid file names the daemon"))
			goto out;
		if (i == 0) {
			kill(d[0], SIGKILL);
			waitpid(d[0], NULL, 0);
		}
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	st = fd >= 0 ? flock(fd, LOCK_EX | LOCK_NB) : 0;
	if (fd >= 0)
		close(fd);
	if (!ASSERT_TRUE(fd >= 0 && st < 0 && errno == EWOULDBLOCK, "the pid file is locked"))
		goto out;
	snprintf(log, sizeof(log), "%s3.log", kind);
	d[2] = rt_spawn_sockmig(&e, log, args);
	st = tp_wait_exit(d[2], 3000);
	if (st != -1)
		d[2] = 0;
	if (!ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
			 "a second daemon on the port is refused") ||
	    !ASSERT_EQ(it_log_count(&e, log, "Error: "), 1, "one error line") ||
	    !ASSERT_EQ(it_log_count(&e, log, "already"), 1, "it says why") ||
	    !ASSERT_EQ(rt_pidfile_pid(name), d[1], "the pid file still names the daemon"))
		goto out;
	kill(d[1], SIGHUP);
	burst_sleep_ms(200);
	if (!ASSERT_TRUE(rt_alive(d[1]), "it survives SIGHUP"))
		goto out;
	kill(d[1], SIGTERM);
	st = tp_wait_exit(d[1], 3000);
	if (st != -1)
		d[1] = 0;
	if (ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "it stops") &&
	    ASSERT_TRUE(access(path, F_OK) < 0, "no pid file left"))
		ret = SM_PASS;
out:
	if (ret != SM_PASS) {
		for (int i = 1; i <= 3; i++) {
			snprintf(log, sizeof(log), "%s%d.log", kind, i);
			it_show_log(&e, log);
		}
	}
	for (int i = 0; i < 3; i++)
		if (d[i] > 0)
			tp_stop(d[i]);
	e.mode = I_ATTACH; /* detach */
	it_teardown(&e, RPORT);
	return ret;
}

SM_TEST(attach_killed_then_restarted)
{
	return killed_then_restarted("attach");
}

SM_TEST(hold_killed_then_restarted)
{
	return killed_then_restarted("hold");
}
