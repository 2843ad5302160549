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
 * The server is tests/servers/static_server.c (built here): it serves one
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
#include "sockmig.h"
#include "util.h"

#define RPORT	35000
#define RUN_BIN "./.output/sockmig"

/* Start `sockmig ARGS...` in the background, output to dir/NAME. */
static pid_t spawn_sockmig(struct ienv *e, const char *log, char *const args[])
{
	char *argv[32];
	char path[128];
	int n = 0, fd;
	pid_t pid;

	argv[n++] = e->sockmig;
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	snprintf(path, sizeof(path), "%s/%s", e->dir, log);
	pid = fork();
	if (pid == 0) {
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int stop_sockmig(pid_t pid)
{
	int st = 0;

	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	for (int i = 0; i < 300 && waitpid(pid, &st, WNOHANG) == 0; i++)
		burst_sleep_ms(10);
	if (waitpid(pid, &st, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	return st;
}

/* Processes whose parent is @ppid. */
static int children_of(pid_t ppid)
{
	char path[64], buf[512], *p;
	struct dirent *de;
	DIR *d = opendir("/proc");
	int n = 0, pp;

	while (d && (de = readdir(d))) {
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
		    sscanf(p + 2, "%*c %d", &pp) == 1 && pp == ppid)
			n++;
		fclose(f);
	}
	if (d)
		closedir(d);
	return n;
}

static bool wait_serving(int port)
{
	return probe_reply(port, 3000) > 0;
}

static int wait_exit(pid_t pid, int ms);

/* ---- stop, 2 s gap, start ------------------------------------------------ */

/*
 * Where nothing migrates a holder keeps nothing: hold refuses to start, with
 * one Error line that points at sockmig run, and exits 1.
 */
static int hold_refused(struct ienv *e, char *const hold[], const char *why)
{
	pid_t pid = spawn_sockmig(e, "hold.log", hold);
	int st = wait_exit(pid, 10000);

	printf("no native migration (%s): hold must refuse\n", why);
	if (st == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "hold exits 1") &&
	    ASSERT_EQ(log_count(e, "hold.log", "Error: hold: no native migration here"), 1,
		      "one Error line") &&
	    ASSERT_EQ(log_count(e, "hold.log", "sockmig run"), 1, "it names sockmig run") &&
	    ASSERT_EQ(log_count(e, "hold.log", "holding port"), 0, "it holds nothing"))
		return SM_PASS;
	show_log(e, "hold.log");
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
	pid_t lpid, cur, holder = 0;

	if (!setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!build_test_server(&e, false, bin, sizeof(bin))) {
		teardown(&e, RPORT);
		return SKIP("cannot build the test server (cc)");
	}
	snprintf(port, sizeof(port), "%d", RPORT);
	if (with_holder && !kernel_migrates(why, sizeof(why))) {
		ret = hold_refused(&e, hold, why);
		teardown(&e, RPORT);
		return ret;
	}
	cur = spawn(&e, srv, false);
	if (!ASSERT_TRUE(wait_serving(RPORT), "the server answers"))
		goto out;
	reply = probe_reply(RPORT, 1000);
	if (with_holder) {
		holder = spawn_sockmig(&e, "hold.log", hold);
		/* it probes and loads its program first: slow under emulation */
		for (int t = 0; t < 100 && log_count(&e, "hold.log", "holding port") < 1; t++)
			burst_sleep_ms(100);
		if (!ASSERT_EQ(log_count(&e, "hold.log", "holding port"), 1, "sockmig hold runs"))
			goto out;
	}
	/* 5,000 conn/s for 5 s; the server is away from 1.5 s to 3.5 s */
	rfd = start_load_rate(RPORT, reply, 5.0, 5000, 6000, &lpid);
	burst_sleep_ms(1500);
	kill(cur, SIGTERM);
	waitpid(cur, NULL, 0);
	burst_sleep_ms(2000);
	cur = spawn(&e, srv, false);
	if (!ASSERT_TRUE(finish_load(rfd, lpid, &r), "load result"))
		goto out;
	print_result(with_holder ? "stop-gap-start/hold" : "stop-gap-start", I_NONE, &r, 1);
	if (!ASSERT_GT(r.started, 15000, "connections made"))
		goto out;
	if (with_holder && ASSERT_EQ(r.started - r.count[LG_OK], 0, "failed with the holder"))
		ret = SM_PASS;
	if (!with_holder && ASSERT_GT(r.started - r.count[LG_OK], 0, "baseline failures"))
		ret = SM_PASS;
	if (ret != SM_PASS)
		show_log(&e, "hold.log");
out:
	stop_sockmig(holder);
	teardown(&e, RPORT);
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

/* ---- sockmig run ----------------------------------------------------------- */

struct runenv {
	struct ienv e;
	char bin[128], port[16], cmd[160];
	bool wrap; /* run the server through a script that fails once dir/fail exists */
	pid_t run;
	int reply;
};

/* Wait up to @ms for @n lines of dir/@log that contain @what. */
static bool wait_log(const struct ienv *e, const char *log, const char *what, int n, int ms)
{
	for (int t = 0; t < ms / 10 && log_count(e, log, what) < n; t++)
		burst_sleep_ms(10);
	return log_count(e, log, what) >= n;
}

/* SM_PASS once the server answers under sockmig run and generation 1 is ready; SM_SKIP when the
 * tools are missing; SM_FAIL (the log shown) when run does not serve. */
static int run_start(struct runenv *re, char *const extra[])
{
	char *args[24];
	int n = 0;

	if (!setup(&re->e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!build_test_server(&re->e, false, re->bin, sizeof(re->bin)))
		return SKIP("cannot build the test server (cc)");
	snprintf(re->port, sizeof(re->port), "%d", RPORT);
	snprintf(re->cmd, sizeof(re->cmd), "%s", re->bin);
	if (re->wrap) {
		FILE *f;

		snprintf(re->cmd, sizeof(re->cmd), "%s/server.sh", re->e.dir);
		f = fopen(re->cmd, "w");
		if (!f) {
			printf("cannot write %s: %s\n", re->cmd, strerror(errno));
			return SM_FAIL;
		}
		fprintf(f,
			"#!/bin/sh\n[ -e %s/fail ] && exit 3\n"
			"[ -e %s/crash ] && exec timeout -s KILL 2 %s \"$@\"\n"
			"exec %s \"$@\"\n",
			re->e.dir, re->e.dir, re->bin, re->bin);
		fclose(f);
		chmod(re->cmd, 0700);
	}
	args[n++] = "run";
	args[n++] = "--port";
	args[n++] = re->port;
	args[n++] = "--grace";
	args[n++] = "5";
	for (int i = 0; extra && extra[i] && n < 18; i++)
		args[n++] = extra[i];
	args[n++] = "--";
	args[n++] = re->cmd;
	args[n++] = re->port;
	args[n] = NULL;
	re->run = spawn_sockmig(&re->e, "run.log", args);
	re->reply = probe_reply(RPORT, 3000);
	if (ASSERT_GT(re->reply, 0, "the server answers under sockmig run") &&
	    ASSERT_TRUE(wait_log(&re->e, "run.log", "ready in", 1, 2000), "generation 1 ready"))
		return SM_PASS;
	show_log(&re->e, "run.log");
	return SM_FAIL;
}

static void run_stop(struct runenv *re)
{
	stop_sockmig(re->run);
	teardown(&re->e, RPORT);
}

/*
 * Whether fd @fd of @pid is a connection the client will lose when @pid
 * dies: a connected socket (not a listener) to which nothing was written
 * yet. A connection that has its reply in the send queue is finished by the
 * kernel after the process dies: the client gets it all, then the FIN.
 */
static bool will_be_lost(pid_t pid, int fd)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), copy, listening = -1;
	struct tcp_info ti = {0};
	socklen_t len = sizeof(listening), tlen = sizeof(ti);
	bool lost;

	if (pidfd < 0)
		return false;
	copy = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	close(pidfd);
	if (copy < 0)
		return false;
	lost = getsockopt(copy, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 &&
	       listening == 0 && getsockopt(copy, IPPROTO_TCP, TCP_INFO, &ti, &tlen) == 0 &&
	       ti.tcpi_bytes_sent == 0;
	close(copy);
	return lost;
}

/* The connections @pid holds that die with it; see will_be_lost(). */
static int doomed_connections(pid_t pid)
{
	char dir[64], path[320], link[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		ssize_t len;

		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (strncmp(link, "socket:", 7) == 0)
			n += will_be_lost(pid, atoi(de->d_name));
	}
	if (d)
		closedir(d);
	return n;
}

/* A child process of @ppid (the server under sockmig run), or 0. */
static pid_t find_child(pid_t ppid)
{
	char path[64], buf[256], *p;
	struct dirent *de;
	pid_t found = 0;
	DIR *d = opendir("/proc");

	while (d && (de = readdir(d)) && !found) {
		FILE *f;
		int pp;

		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "r");
		if (f && fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
		    sscanf(p + 2, "%*c %d", &pp) == 1 && pp == ppid)
			found = atoi(de->d_name);
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

/*
 * Kill the server under sockmig run with SIGKILL, then collect the load.
 * Every connection must have been served but those that die with the
 * server: the ones it had accepted and not answered (accepted connections
 * never move), counted from its fds after SIGSTOP, and the handshakes the
 * kernel itself resets as the listener closes (a final ACK processed on
 * the other CPU while the listener stops: inet_child_forget()). No counter
 * records the latter, but the client sees them reset before it could send
 * its request, which never happens to an accepted connection: the server
 * resets only when it dies with the request unread. false after a failed
 * assertion.
 */
static bool kill9_and_load(struct runenv *re, int rfd, pid_t lpid, struct lg_result *r,
			   const char *what)
{
	pid_t victim = find_child(re->run);
	long long doomed, closerace;

	if (!ASSERT_GT(victim, 0, "found the server"))
		return false;
	kill(victim, SIGSTOP);
	burst_sleep_ms(20);
	doomed = doomed_connections(victim);
	kill(victim, SIGKILL);
	if (!ASSERT_TRUE(finish_load(rfd, lpid, r), "load result"))
		return false;
	print_result(what, I_NONE, r, 1);
	closerace = (long long)r->count[LG_RESET_BEFORE_REQUEST];
	printf("unanswered connections of the server when it was killed: %lld, "
	       "handshakes reset at close: %lld\n",
	       doomed, closerace);
	return ASSERT_GT(r->started, 10000, "connections") &&
	       ASSERT_LE(closerace, 3, "handshakes reset at close") &&
	       ASSERT_EQ(r->started - r->count[LG_OK], doomed + closerace,
			 "failed connections = unanswered ones of the killed server + "
			 "handshakes reset at close");
}

SM_TEST(run_restarts_a_killed_server)
{
	struct runenv re = {0};
	struct lg_result r;
	int ret = SM_FAIL, rfd;
	pid_t lpid;

	ret = run_start(&re, NULL);
	if (ret != SM_PASS) {
		run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	rfd = start_load(RPORT, re.reply, 4.0, &lpid);
	burst_sleep_ms(1500);
	if (!kill9_and_load(&re, rfd, lpid, &r, "run/kill -9"))
		goto out;
	if (!ASSERT_EQ(log_count(&re.e, "run.log", "died"), 1, "sockmig run saw it die"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		show_log(&re.e, "run.log");
	run_stop(&re);
	return ret;
}

#define RELOADS	    1000
#define RELOAD_SECS 40

SM_TEST(run_back_to_back_reloads)
{
	struct runenv re = {0};
	struct lg_result r;
	char *extra[] = {"--max-old", "1", NULL};
	char why[200];
	int ret = SM_FAIL, rfd, most = 0, n, done = 0;
	unsigned long long end;
	pid_t lpid;

	ret = run_start(&re, extra);
	if (ret != SM_PASS) {
		run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	rfd = start_load(RPORT, re.reply, RELOAD_SECS + 3, &lpid);
	burst_sleep_ms(300);
	end = burst_now_ms() + RELOAD_SECS * 1000ull;
	/* back to back: the next SIGHUP as soon as the last generation is ready */
	while (done < RELOADS && burst_now_ms() < end) {
		kill(re.run, SIGHUP);
		for (int t = 0; t < 400; t++) {
			n = children_of(re.run);
			most = n > most ? n : most;
			if (log_count(&re.e, "run.log", "ready in") >= done + 2)
				break;
			burst_sleep_ms(2);
		}
		done++;
	}
	if (!ASSERT_TRUE(finish_load(rfd, lpid, &r), "load result"))
		goto out;
	print_result("run/SIGHUP", I_NONE, &r, done);
	printf("SIGHUPs %d, generations ready %d, reload reports %d, most processes at once %d\n",
	       done, log_count(&re.e, "run.log", "ready in"),
	       log_count(&re.e, "run.log", "reload report"), most);
	if (!ASSERT_EQ(r.started - r.count[LG_OK], 0, "failed connections") ||
	    !ASSERT_EQ(log_count(&re.e, "run.log", "ready in"), done + 1, "generations") ||
	    !ASSERT_EQ(log_count(&re.e, "run.log", "failed: generation"), 0, "failed reloads") ||
	    !ASSERT_TRUE(most <= 1 + 1 + 1, "current + starting + at most --max-old stopping"))
		goto out;
	/* the rate is the machine's: a slow one (measured) skips, saying so */
	if (done < RELOADS && machine_too_slow(why, sizeof(why))) {
		ret = SKIP("%d of %d reloads in %d s, every one served (0 failed of %llu): %s",
			   done, RELOADS, RELOAD_SECS, (unsigned long long)r.started, why);
		goto out;
	}
	if (!ASSERT_EQ(done, RELOADS, "reloads asked"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		show_log(&re.e, "run.log");
	run_stop(&re);
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

	ret = run_start(&re, NULL);
	if (ret != SM_PASS) {
		run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	rfd = start_load(RPORT, re.reply, 3.0, &lpid);
	burst_sleep_ms(500);
	/* from now on the command exits at once */
	snprintf(flag, sizeof(flag), "%s/fail", re.e.dir);
	fd = open(flag, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	kill(re.run, SIGHUP);
	burst_sleep_ms(1000);
	if (!ASSERT_TRUE(finish_load(rfd, lpid, &r), "load result"))
		goto out;
	print_result("run/failed reload", I_NONE, &r, 1);
	if (!ASSERT_EQ(r.started - r.count[LG_OK], 0, "failed connections") ||
	    !ASSERT_EQ(log_count(&re.e, "run.log", "reload 1 failed"), 1, "reported failed") ||
	    !ASSERT_EQ(log_count(&re.e, "run.log", "generation 1 keeps serving"), 1,
		       "generation 1 kept") ||
	    !ASSERT_EQ(log_count(&re.e, "run.log", "ready in"), 1, "only generation 1 ready"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		show_log(&re.e, "run.log");
	run_stop(&re);
	return ret;
}

/*
 * sockmig run with @args (nginx on RPORT, stop-then-start) started in *run:
 * @n SIGHUPs 1.2 s apart under load; every connection served, @n + 1
 * generations. false after a failed assertion (the log is shown).
 */
static bool nginx_restarts(struct ienv *e, char *const args[], const char *what, int n, pid_t *run)
{
	struct lg_result r;
	int reply, rfd;
	pid_t lpid;

	*run = spawn_sockmig(e, "run.log", args);
	/* run probes the kernel first: seconds under emulation */
	reply = probe_reply(RPORT, 20000);
	if (!ASSERT_GT(reply, 0, "nginx answers under sockmig run"))
		goto fail;
	rfd = start_load(RPORT, reply, 1.2 * (n + 1), &lpid);
	for (int i = 0; i < n; i++) {
		burst_sleep_ms(1200);
		kill(*run, SIGHUP);
	}
	if (!ASSERT_TRUE(finish_load(rfd, lpid, &r), "load result"))
		goto fail;
	print_result(what, I_NONE, &r, n);
	if (ASSERT_GT(r.started, 5000, "connections") &&
	    ASSERT_EQ(r.started - r.count[LG_OK], 0, "failed connections") &&
	    ASSERT_EQ(log_count(e, "run.log", "ready in"), n + 1, "generations"))
		return true;
fail:
	show_log(e, "run.log");
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
	if (!setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(conf, sizeof(conf), "%s/nginx.conf", e.dir);
	snprintf(port, sizeof(port), "%d", RPORT);
	if (nginx_conf(&e, 2, RPORT) &&
	    nginx_restarts(&e, kernel_migrates(why, sizeof(why)) ? native : handoff,
			   "run --stop-start nginx", 20, &run))
		ret = SM_PASS;
	if (run > 0)
		stop_sockmig(run);
	teardown(&e, RPORT);
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
	if (!setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(conf, sizeof(conf), "%s/nginx.conf", e.dir);
	snprintf(port, sizeof(port), "%d", RPORT);
	if (!nginx_conf(&e, 2, RPORT))
		goto out;

	/* baseline: stop nginx, start it again, twice, under load */
	srv = spawn(&e, nginx, false);
	reply = probe_reply(RPORT, 3000);
	if (!ASSERT_GT(reply, 0, "nginx answers"))
		goto out;
	rfd = start_load(RPORT, reply, 3.0, &lpid);
	for (int i = 0; i < 2; i++) {
		burst_sleep_ms(800);
		kill(srv, SIGQUIT);
		waitpid(srv, NULL, 0);
		srv = spawn(&e, nginx, false);
	}
	if (!ASSERT_TRUE(finish_load(rfd, lpid, &r), "baseline load result"))
		goto out;
	print_result("nginx stop-then-start", I_NONE, &r, 2);
	if (!ASSERT_GT(r.started - r.count[LG_OK], 0, "baseline: failed connections"))
		goto out;
	kill(srv, SIGQUIT);
	waitpid(srv, NULL, 0);

	setenv("SOCKMIG_MODE", "legacy", 1);
	if (!nginx_restarts(&e, args, "run --handoff (chosen) nginx", 4, &run))
		goto out;
	if (ASSERT_EQ(log_count(&e, "run.log", "no native migration (SOCKMIG_MODE=legacy)"), 1,
		      "run chose the hand-off") &&
	    ASSERT_EQ(sockmig_group_list(NULL, names, 4), 0, "no BPF group pinned"))
		ret = SM_PASS;
out:
	if (run > 0)
		stop_sockmig(run);
	teardown(&e, RPORT);
	return ret;
}

/*
 * No BPF at all (--socket-activation): sockmig run owns the listener and
 * passes it to every generation as fd 3 (LISTEN_FDS), so nothing closes it.
 * 50 reloads and a kill -9 under load: only the connections the killed
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

	ret = run_start(&re, extra);
	if (ret != SM_PASS) {
		run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	rfd = start_load(RPORT, re.reply, 6.0, &lpid);
	for (int i = 0; i < 50; i++) {
		kill(re.run, SIGHUP);
		burst_sleep_ms(60);
	}
	burst_sleep_ms(300);
	if (!kill9_and_load(&re, rfd, lpid, &r, "run --socket-activation"))
		goto out;
	if (!ASSERT_EQ(sockmig_group_list(NULL, names, 4), 0, "no BPF group pinned") ||
	    !ASSERT_GT(log_count(&re.e, "run.log", "ready in"), 40, "generations"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		show_log(&re.e, "run.log");
	run_stop(&re);
	return ret;
}

/* ---- robustness: deaths, kills, stale files, other users (issue 9) --------- */

/* @name in the directory of sockmig's daemons for this network namespace. */
static void daemon_file(char *buf, size_t len, const char *name)
{
	struct stat st = {0};

	stat("/proc/self/ns/net", &st);
	snprintf(buf, len, "/run/sockmig/%llu/%s", (unsigned long long)st.st_ino, name);
}

/* The sockmig groups pinned for this network namespace (other namespaces'
 * are other tests' or real servers'). */
static int groups_here(void)
{
	char names[64][SOCKMIG_NAME_MAX], prefix[32];
	struct stat st = {0};
	int n, here = 0;

	stat("/proc/self/ns/net", &st);
	snprintf(prefix, sizeof(prefix), "%llu-", (unsigned long long)st.st_ino);
	n = sockmig_group_list(NULL, names, 64);
	for (int i = 0; i < n && i < 64; i++)
		here += strncmp(names[i], prefix, strlen(prefix)) == 0;
	return here;
}

/* The pid a daemon's file names, or 0. */
static pid_t pidfile_pid(const char *name)
{
	char path[160];
	int pid = 0;
	FILE *f;

	daemon_file(path, sizeof(path), name);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid;
}

/* Field 22 of /proc/PID/stat, 0 when the process is gone or a zombie. */
static unsigned long long start_time_of(pid_t pid)
{
	char path[64], buf[1024], *p, state = 0;
	unsigned long long start = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		sscanf(p + 2,
		       "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
		       "%*d %*d %llu",
		       &state, &start);
	fclose(f);
	return state == 'Z' ? 0 : start;
}

static bool alive(pid_t pid)
{
	return start_time_of(pid) != 0;
}

/* Our child @pid's wait status once it exited within @ms, or -1. */
static int wait_exit(pid_t pid, int ms)
{
	int st = 0;

	for (int t = 0; t < ms / 10; t++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		burst_sleep_ms(10);
	}
	return -1;
}

static bool wait_gone(pid_t pid, int ms)
{
	for (int t = 0; t < ms / 10 && alive(pid); t++)
		burst_sleep_ms(10);
	return !alive(pid);
}

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
	pid_t victim = find_child(re->run);

	if (!ASSERT_GT(victim, 0, "found the server"))
		return false;
	fail_from_now(re, true);
	kill(victim, SIGKILL);
	return ASSERT_TRUE(wait_log(&re->e, "run.log", "restarting in 800 ms", 1, 3000),
			   "run waits 800 ms before the next restart");
}

/* Issue 9, item 3: SIGTERM while a dead worker waits for its restart. */
SM_TEST(run_sigterm_during_backoff)
{
	struct runenv re = {.wrap = true};
	int ret, st;

	ret = run_start(&re, NULL);
	if (ret != SM_PASS) {
		run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	if (!into_800ms_backoff(&re))
		goto out;
	kill(re.run, SIGTERM);
	st = wait_exit(re.run, 2000);
	if (!ASSERT_TRUE(st != -1, "run stops within 2 s of SIGTERM"))
		goto out;
	re.run = 0;
	if (ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0") &&
	    ASSERT_EQ(log_count(&re.e, "run.log", "stopped:"), 1, "run says it stopped"))
		ret = SM_PASS;
out:
	if (ret != SM_PASS)
		show_log(&re.e, "run.log");
	run_stop(&re);
	return ret;
}

/* Issue 9, item 3: reloads after a worker died; SIGTERM still stops run. */
SM_TEST(run_worker_death_then_reloads)
{
	struct runenv re = {.wrap = true};
	int ret, st;

	ret = run_start(&re, NULL);
	if (ret != SM_PASS) {
		run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	if (!into_800ms_backoff(&re))
		goto out;
	fail_from_now(&re, false);
	/* generation 1 has no process left: generations 2, 3 and 4 replace it */
	for (int gen = 2; gen <= 4; gen++) {
		kill(re.run, SIGHUP);
		if (!ASSERT_TRUE(wait_log(&re.e, "run.log", "ready in", gen, 3000),
				 "the next generation is ready"))
			goto out;
		printf("generation %d ready\n", gen);
	}
	if (!ASSERT_TRUE(probe_reply(RPORT, 1000) > 0, "generation 4 serves"))
		goto out;
	kill(re.run, SIGTERM);
	st = wait_exit(re.run, 3000);
	if (!ASSERT_TRUE(st != -1, "run stops within 3 s of SIGTERM"))
		goto out;
	re.run = 0;
	if (ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0") &&
	    ASSERT_EQ(log_count(&re.e, "run.log", "ready in"), 4, "generations"))
		ret = SM_PASS;
out:
	if (ret != SM_PASS)
		show_log(&re.e, "run.log");
	run_stop(&re);
	return ret;
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

	if (!setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(port, sizeof(port), "%d", RPORT);
	for (int m = 0; m < 2; m++) {
		run = spawn_sockmig(&e, logs[m], modes[m]);
		st = wait_exit(run, 4000);
		if (st == -1)
			stop_sockmig(run);
		printf("%s: retried %d times\n", logs[m],
		       log_count(&e, logs[m], "cannot run /nonexistent") - 1);
		daemon_file(path, sizeof(path), "run-35000.pid");
		if (!ASSERT_TRUE(st != -1, "run exits within 4 s") ||
		    !ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit status 1") ||
		    !ASSERT_EQ(log_count(&e, logs[m], "Error: "), 1, "one error line") ||
		    !ASSERT_EQ(log_count(&e, logs[m],
					 "Error: run: /nonexistent was not ready within "
					 "1 s"),
			       1, "the error says what") ||
		    !ASSERT_GT(log_count(&e, logs[m], "cannot run /nonexistent"), 2, "retried") ||
		    !ASSERT_EQ(groups_here(), 0, "no group pinned") ||
		    !ASSERT_TRUE(access(path, F_OK) < 0, "no pid file left")) {
			show_log(&e, logs[m]);
			goto out;
		}
	}
	ret = SM_PASS;
out:
	teardown(&e, RPORT);
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

	ret = run_start(&re, NULL);
	if (ret != SM_PASS) {
		run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	orphan = find_child(re.run);
	if (!ASSERT_GT(orphan, 0, "found the server"))
		goto out;
	kill(re.run, SIGKILL);
	waitpid(re.run, NULL, 0);
	re.run = 0;
	if (!ASSERT_TRUE(probe_reply(RPORT, 1000) > 0, "the server serves without run"))
		goto out;
	rfd = start_load(RPORT, re.reply, 3.0, &lpid);
	burst_sleep_ms(500);
	run2 = spawn_sockmig(&re.e, "run2.log", args);
	if (!ASSERT_TRUE(wait_gone(orphan, 7000), "the orphan is stopped"))
		goto out;
	if (!ASSERT_TRUE(finish_load(rfd, lpid, &r), "load result"))
		goto out;
	print_result("run killed, run again", I_NONE, &r, 1);
	if (!ASSERT_GT(r.started, 1000, "connections") ||
	    !ASSERT_EQ(r.started - r.count[LG_OK], 0, "failed connections") ||
	    !ASSERT_EQ(log_count(&re.e, "run2.log", "adopted 1 process"), 1, "adopted") ||
	    !ASSERT_EQ(log_count(&re.e, "run2.log", "ready in"), 1, "its generation 1 ready") ||
	    !ASSERT_TRUE(probe_reply(RPORT, 1000) > 0, "generation 1 serves"))
		goto out;
	kill(run2, SIGTERM);
	st = wait_exit(run2, 3000);
	if (!ASSERT_TRUE(st != -1, "the new run stops"))
		goto out;
	run2 = 0;
	daemon_file(path, sizeof(path), "run-35000.gens");
	if (ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0") &&
	    ASSERT_EQ(groups_here(), 0, "no group pinned") &&
	    ASSERT_TRUE(access(path, F_OK) < 0, "no generations file left") &&
	    ASSERT_TRUE(probe_reply(RPORT, 200) < 0, "nothing listens"))
		ret = SM_PASS;
out:
	if (ret != SM_PASS) {
		show_log(&re.e, "run.log");
		show_log(&re.e, "run2.log");
	}
	if (run2 > 0)
		stop_sockmig(run2);
	if (orphan > 0)
		kill(orphan, SIGKILL);
	run_stop(&re);
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

	ret = run_start(&re, NULL);
	if (ret != SM_PASS) {
		run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	orphan = find_child(re.run);
	if (!ASSERT_GT(orphan, 0, "found the server"))
		goto out;
	kill(re.run, SIGKILL);
	waitpid(re.run, NULL, 0);
	re.run = 0;
	fail_from_now(&re, true);
	run2 = spawn_sockmig(&re.e, "run2.log", args);
	st = wait_exit(run2, 4000);
	if (st == -1)
		stop_sockmig(run2);
	daemon_file(path, sizeof(path), "run-35000.gens");
	if (!ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
			 "the new run gives up with status 1") ||
	    !ASSERT_EQ(log_count(&re.e, "run2.log", "adopted 1 process"), 1, "adopted") ||
	    !ASSERT_EQ(log_count(&re.e, "run2.log", "Error: "), 1, "one error line") ||
	    !ASSERT_TRUE(alive(orphan), "the killed run's server still runs") ||
	    !ASSERT_TRUE(probe_reply(RPORT, 1000) > 0, "and serves") ||
	    !ASSERT_EQ(groups_here(), kernel_migrates(why, sizeof(why)) ? 1 : 0,
		       "its group stays pinned (none where run keeps the listener)") ||
	    !ASSERT_EQ(pidfile_pid("run-35000.gens"), orphan, "and recorded"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS) {
		show_log(&re.e, "run.log");
		show_log(&re.e, "run2.log");
	}
	if (orphan > 0)
		kill(orphan, SIGKILL);
	unlink(path);
	*strrchr(path, '/') = '\0';
	rmdir(path);
	re.e.mode = I_ATTACH; /* detach: the pins a kill -9 leaves */
	run_stop(&re);
	return ret;
}

/* `sockmig ARGS` in the foreground: its exit status (-1 if it hangs). */
static int sockmig_status(struct ienv *e, const char *log, char *const args[])
{
	pid_t pid = spawn_sockmig(e, log, args);
	int st = wait_exit(pid, 3000);

	if (st == -1) {
		stop_sockmig(pid);
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

	if (!setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!build_test_server(&e, false, bin, sizeof(bin))) {
		teardown(&e, RPORT);
		return SKIP("cannot build the test server (cc)");
	}
	snprintf(port, sizeof(port), "%d", RPORT);
	spawn(&e, srv, false);
	if (!ASSERT_TRUE(wait_serving(RPORT), "the server answers"))
		goto out;
	at = spawn_sockmig(&e, "attach.log", attach);
	ho = spawn_sockmig(&e, "hold.log", hold);
	if (!ASSERT_TRUE(wait_log(&e, "attach.log", "registered", 1, 2000), "attach runs") ||
	    !ASSERT_TRUE(wait_log(&e, "hold.log", "holding port", 1, 2000), "hold runs"))
		goto out;
	/* what a killed run leaves when its pid is taken again by attach */
	daemon_file(path, sizeof(path), "run-35000.pid");
	f = fopen(path, "we");
	if (!ASSERT_TRUE(f != NULL, "the stale pid file"))
		goto out;
	fprintf(f, "%d %llu\n", (int)at, start_time_of(at));
	fclose(f);
	if (!ASSERT_EQ(sockmig_status(&e, "reload.log", reload), 1, "reload refuses") ||
	    !ASSERT_EQ(log_count(&e, "reload.log", "Error: no sockmig run supervises port 35000"),
		       1, "reload says why") ||
	    !ASSERT_TRUE(access(path, F_OK) < 0, "the stale file is removed"))
		goto out;
	kill(at, SIGHUP);
	kill(ho, SIGHUP);
	burst_sleep_ms(300);
	if (ASSERT_TRUE(alive(at), "attach survives SIGHUP") &&
	    ASSERT_TRUE(alive(ho), "hold survives SIGHUP"))
		ret = SM_PASS;
out:
	if (ret != SM_PASS) {
		show_log(&e, "reload.log");
		show_log(&e, "attach.log");
		show_log(&e, "hold.log");
	}
	stop_sockmig(ho);
	stop_sockmig(at);
	unlink(path);
	e.mode = I_ATTACH; /* detach */
	teardown(&e, RPORT);
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

	if (!setup(&re.e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!build_test_server(&re.e, false, re.bin, sizeof(re.bin))) {
		teardown(&re.e, RPORT);
		return SKIP("cannot build the test server (cc)");
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
	re.reply = probe_reply(RPORT, 3000);
	if (!ASSERT_GT(re.reply, 0, "sockmig run starts the server") ||
	    !ASSERT_TRUE(wait_log(&re.e, "run.log", "ready in", 1, 1000), "generation 1 ready"))
		goto out;
	/* the notify socket: uid 65534 can neither reach nor flood it */
	daemon_file(path, sizeof(path), "run-35000.notify");
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
		show_log(&re.e, "run.log");
	if (squat > 0) {
		kill(squat, SIGKILL);
		waitpid(squat, NULL, 0);
	}
	run_stop(&re);
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

	if (args == hold && !kernel_migrates(why, sizeof(why)))
		return SKIP("hold refuses to start where nothing migrates (%s): "
			    "hold_stop_start_gap_holder checks that",
			    why);
	if (!setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!build_test_server(&e, false, bin, sizeof(bin))) {
		teardown(&e, RPORT);
		return SKIP("cannot build the test server (cc)");
	}
	snprintf(port, sizeof(port), "%d", RPORT);
	snprintf(name, sizeof(name), "%s-%d.pid", kind, RPORT);
	daemon_file(path, sizeof(path), name);
	spawn(&e, srv, false);
	if (!ASSERT_TRUE(wait_serving(RPORT), "the server answers"))
		goto out;
	for (int i = 0; i < 2; i++) {
		snprintf(log, sizeof(log), "%s%d.log", kind, i + 1);
		d[i] = spawn_sockmig(&e, log, args);
		if (!ASSERT_TRUE(wait_log(&e, log, ready, 1, 3000), "the daemon runs") ||
		    !ASSERT_EQ(pidfile_pid(name), d[i], "the pid file names the daemon"))
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
	d[2] = spawn_sockmig(&e, log, args);
	st = wait_exit(d[2], 3000);
	if (st != -1)
		d[2] = 0;
	if (!ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
			 "a second daemon on the port is refused") ||
	    !ASSERT_EQ(log_count(&e, log, "Error: "), 1, "one error line") ||
	    !ASSERT_EQ(log_count(&e, log, "already"), 1, "it says why") ||
	    !ASSERT_EQ(pidfile_pid(name), d[1], "the pid file still names the daemon"))
		goto out;
	kill(d[1], SIGHUP);
	burst_sleep_ms(200);
	if (!ASSERT_TRUE(alive(d[1]), "it survives SIGHUP"))
		goto out;
	kill(d[1], SIGTERM);
	st = wait_exit(d[1], 3000);
	if (st != -1)
		d[1] = 0;
	if (ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "it stops") &&
	    ASSERT_TRUE(access(path, F_OK) < 0, "no pid file left"))
		ret = SM_PASS;
out:
	if (ret != SM_PASS) {
		for (int i = 1; i <= 3; i++) {
			snprintf(log, sizeof(log), "%s%d.log", kind, i);
			show_log(&e, log);
		}
	}
	for (int i = 0; i < 3; i++)
		if (d[i] > 0)
			stop_sockmig(d[i]);
	e.mode = I_ATTACH; /* detach */
	teardown(&e, RPORT);
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

/* ---- issue 10: SO_REUSEPORT, reports, back-off, usability ------------------ */

/*
 * Issue 10, item 1: a server that does not set SO_REUSEPORT, as many do.
 * run used to wait for its listener to join a group, kill it at
 * --ready-timeout while it served, and leave the port with no listener
 * (with --addr the server died with EADDRINUSE next to the holder). Now run
 * says so in one line and keeps the server's listener for every generation
 * (--handoff): under load, during and after the ready timeout and across
 * two reloads, nothing is refused or reset.
 */
static int without_reuseport(char *const extra[], int starts)
{
	struct runenv re = {.wrap = true};
	struct lg_result r;
	int ret, rfd;
	pid_t lpid;

	setenv("TEST_NO_REUSEPORT", "1", 1);
	ret = run_start(&re, extra);
	if (ret != SM_PASS) {
		run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	/* --ready-timeout 2: it passes at 2 s, the load runs until 4.5 s */
	rfd = start_load(RPORT, re.reply, 4.0, &lpid);
	for (int i = 0; i < 2; i++) {
		burst_sleep_ms(1300);
		kill(re.run, SIGHUP);
	}
	if (!ASSERT_TRUE(finish_load(rfd, lpid, &r), "load result"))
		goto out;
	print_result("run, no SO_REUSEPORT", I_NONE, &r, 2);
	if (!ASSERT_GT(r.started, 1000, "connections") ||
	    !ASSERT_EQ(r.count[LG_REFUSED], 0, "refused") ||
	    !ASSERT_EQ(r.count[LG_RESET_BEFORE_REQUEST] + r.count[LG_RESET_AFTER_REQUEST], 0,
		       "reset") ||
	    !ASSERT_EQ(r.started - r.count[LG_OK], 0, "failed connections") ||
	    !ASSERT_TRUE(probe_reply(RPORT, 1000) > 0, "it still serves") ||
	    !ASSERT_EQ(log_count(&re.e, "run.log",
				 "listener on 127.0.0.1:35000 has no SO_REUSEPORT, so no other "
				 "socket can share its port: run keeps it and hands it to every "
				 "generation (--handoff"),
		       1, "one line says so, and what run does") ||
	    !ASSERT_EQ(log_count(&re.e, "run.log", "ready in"), 3, "generations ready") ||
	    !ASSERT_EQ(log_count(&re.e, "run.log", "cannot run"), 0, "every start ran") ||
	    !ASSERT_EQ(log_count(&re.e, "run.log", "exited (status 1)"), starts - 1,
		       "failed starts (EADDRINUSE next to the holder)") ||
	    !ASSERT_EQ(log_count(&re.e, "run.log", "fail"), 0, "no failure") ||
	    !ASSERT_EQ(log_count(&re.e, "run.log", "Error"), 0, "no error"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		show_log(&re.e, "run.log");
	run_stop(&re);
	unsetenv("TEST_NO_REUSEPORT");
	return ret;
}

SM_TEST(run_server_without_reuseport)
{
	char *extra[] = {"--ready-timeout", "2", NULL};

	return without_reuseport(extra, 1);
}

SM_TEST(run_server_without_reuseport_addr)
{
	char *extra[] = {"--ready-timeout", "2", "--addr", "127.0.0.1", NULL};

	return without_reuseport(extra, 2);
}

/*
 * Issue 10, item 1: the first start of a command that never listens on
 * the port says so ("server did not start listening"), not "reload 0
 * failed ... generation 0 keeps serving": there is no generation 0.
 */
SM_TEST(run_first_start_wording)
{
	struct ienv e;
	char port[16];
	char *args[] = {"run", "--port", port, "--ready-timeout", "1", "--", "sleep", "30", NULL};
	int ret = SM_FAIL, st;
	pid_t run;

	if (!setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(port, sizeof(port), "%d", RPORT);
	run = spawn_sockmig(&e, "run.log", args);
	st = wait_exit(run, 4000);
	if (st == -1)
		stop_sockmig(run);
	if (ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit status 1") &&
	    ASSERT_EQ(log_count(&e, "run.log",
				"server did not start listening on port 35000 within "),
		      1, "the first start's wording") &&
	    ASSERT_EQ(log_count(&e, "run.log", "reload"), 0, "no reload is mentioned") &&
	    ASSERT_EQ(log_count(&e, "run.log", "generation 0"), 0, "no generation 0") &&
	    ASSERT_EQ(log_count(&e, "run.log", "Error: "), 1, "one error line"))
		ret = SM_PASS;
	if (ret != SM_PASS)
		show_log(&e, "run.log");
	teardown(&e, RPORT);
	return ret;
}

/* The sum of "migrated N" over the report lines of dir/@log, and their count. */
static unsigned long long reports_migrated(const struct ienv *e, const char *log, int *lines)
{
	char path[160], line[1024];
	unsigned long long sum = 0;
	FILE *f;

	*lines = 0;
	snprintf(path, sizeof(path), "%s/%s", e->dir, log);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		char *m = strstr(line, " report: ");

		m = m ? strstr(m, ": migrated ") : NULL;
		if (!m)
			continue;
		sum += strtoull(m + strlen(": migrated "), NULL, 10);
		(*lines)++;
	}
	if (f)
		fclose(f);
	return sum;
}

/*
 * Issue 10, item 4: run's reports, summed over every reload under load
 * and the final stop, equal the kernel's TCPMigrateReqSuccess over the
 * whole run, exactly, and it is not 0. @stop_start: the old generation's
 * queue migrates to the holder and then on to the new one.
 */
static int reports_exact(bool stop_start)
{
	struct runenv re = {0};
	struct sockmig_netstat n0, n1, d;
	struct lg_result r;
	char *overlap[] = {"--max-old", "1", NULL}, *ss[] = {"--stop-start", NULL};
	unsigned long long sum;
	int ret, rfd, lines, st, reloads = stop_start ? 10 : 20;
	pid_t lpid;

	if (sockmig_netstat_read(&n0) < 0)
		return SKIP("no TcpExt counters");
	/* every old generation leaves connections in its queue when it closes */
	setenv("TEST_ACCEPT_PAUSE_US", "20000", 1);
	ret = run_start(&re, stop_start ? ss : overlap);
	if (ret != SM_PASS) {
		run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	rfd = start_load(RPORT, re.reply, 5.0, &lpid);
	for (int i = 0; i < reloads; i++) {
		burst_sleep_ms(stop_start ? 400 : 200);
		kill(re.run, SIGHUP);
	}
	if (!ASSERT_TRUE(finish_load(rfd, lpid, &r), "load result"))
		goto out;
	print_result(stop_start ? "run --stop-start reports" : "run reports", I_NONE, &r, reloads);
	if (!ASSERT_TRUE(wait_log(&re.e, "run.log", "ready in", reloads + 1, 5000),
			 "every generation ready"))
		goto out;
	kill(re.run, SIGTERM);
	st = wait_exit(re.run, 5000);
	if (!ASSERT_TRUE(st != -1, "run stops"))
		goto out;
	re.run = 0;
	sockmig_netstat_read(&n1);
	sockmig_netstat_delta(&n0, &n1, &d);
	sum = reports_migrated(&re.e, "run.log", &lines);
	printf("reports: %d, migrated by their sum %llu; the kernel's TCPMigrateReqSuccess %llu, "
	       "TCPMigrateReqFailure %llu\n",
	       lines, sum, (unsigned long long)d.migrate_success,
	       (unsigned long long)d.migrate_failure);
	if (!ASSERT_EQ(r.started - r.count[LG_OK], 0, "failed connections") ||
	    !ASSERT_EQ(lines, reloads + 1, "one report per reload and one at the stop") ||
	    !ASSERT_GT(d.migrate_success, 0, "connections migrated (else this proves nothing)") ||
	    !ASSERT_EQ(sum, d.migrate_success, "the reports add up to the kernel's count") ||
	    !ASSERT_EQ(log_count(&re.e, "run.log", "failed"), 0, "no 'failed' in normal output") ||
	    !ASSERT_EQ(log_count(&re.e, "run.log", "none rolled back"), 1, "the last line"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		show_log(&re.e, "run.log");
	run_stop(&re);
	unsetenv("TEST_ACCEPT_PAUSE_US");
	return ret;
}

SM_TEST(run_reports_match_kernel)
{
	return reports_exact(false);
}

SM_TEST(run_reports_match_kernel_stop_start)
{
	return reports_exact(true);
}

/*
 * Issue 10, item 5: a crash loop. The server dies (SIGKILL) 2 s after
 * each start: the restart delay doubles from 100 ms and reaches the 5 s
 * cap, although generation 1 was ready more than 10 s before (the old
 * reset, keyed to that, went back to 100 ms every time).
 */
SM_TEST(run_crash_loop_backs_off_to_5s)
{
	static const char *const delays[] = {"100", "200", "400", "800", "1600", "3200"};
	struct runenv re = {.wrap = true};
	char flag[160], what[64];
	pid_t victim;
	int ret, fd;

	ret = run_start(&re, NULL);
	if (ret != SM_PASS) {
		run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	snprintf(flag, sizeof(flag), "%s/crash", re.e.dir);
	fd = open(flag, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	burst_sleep_ms(2000);
	victim = find_child(re.run);
	if (!ASSERT_GT(victim, 0, "found the server"))
		goto out;
	kill(victim, SIGKILL);
	/* 2 s up, then 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 3.2 s of back-off */
	if (!ASSERT_TRUE(wait_log(&re.e, "run.log", "restarting in 5000 ms", 1, 28000),
			 "the back-off reaches 5 s"))
		goto out;
	for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
		snprintf(what, sizeof(what), "restarting in %s ms", delays[i]);
		if (!ASSERT_EQ(log_count(&re.e, "run.log", what), 1, what))
			goto out;
	}
	ret = SM_PASS;
out:
	unlink(flag);
	if (ret != SM_PASS)
		show_log(&re.e, "run.log");
	run_stop(&re);
	return ret;
}

/* Issue 10, item 7: --help of run and reload lists every option, one line
 * each, and the man page describes each. */
SM_PURE(run_help_lists_every_option)
{
	static const char *const run_opts[] = {
		"--port",
		"--addr",
		"--user",
		"--workers",
		"--stop-start",
		"--grace",
		"--ready-timeout",
		"--max-old",
		"--stop-signal",
		"--no-holder",
		"--socket-activation",
		"--handoff",
		"--ready-after",
		"--help",
	};
	static const char *const reload_opts[] = {"--port", "--help"};
	char out[4096], cmd[256], want[64], man[65536];
	size_t mlen = 0;
	FILE *p;

	if (access(RUN_BIN, X_OK) < 0)
		return SKIP("no .output/sockmig: run from the repository root");
	p = fopen("man/sockmig-run.8", "re");
	if (p) {
		mlen = fread(man, 1, sizeof(man) - 1, p);
		fclose(p);
	}
	man[mlen] = '\0';
	for (int c = 0; c < 2; c++) {
		const char *const *opts = c ? reload_opts : run_opts;
		size_t n = c ? 2 : sizeof(run_opts) / sizeof(run_opts[0]), len;

		snprintf(cmd, sizeof(cmd), "%s %s --help", RUN_BIN, c ? "reload" : "run");
		p = popen(cmd, "r");
		len = p ? fread(out, 1, sizeof(out) - 1, p) : 0;
		if (p)
			pclose(p);
		out[len] = '\0';
		for (size_t i = 0; i < n; i++) {
			char mopt[64];

			snprintf(want, sizeof(want), "\n  %s", opts[i]);
			if (strcmp(opts[i], "--help") == 0)
				snprintf(want, sizeof(want), "\n  -h, --help");
			snprintf(mopt, sizeof(mopt), "\\-\\-%s", opts[i] + 2);
			for (char *q = mopt + 4; *q; q++)
				if (*q == '-') {
					memmove(q + 1, q, strlen(q) + 1);
					*q++ = '\\';
				}
			if (!ASSERT_TRUE(strstr(out, want) != NULL, want) ||
			    !ASSERT_TRUE(strstr(man, mopt) != NULL || i == n - 1, mopt)) {
				printf("%s", out);
				return SM_FAIL;
			}
		}
	}
	return SM_PASS;
}
