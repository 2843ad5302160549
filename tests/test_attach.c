// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig attach as an operator runs it: stopped without detach (cleanly,
 * or killed: the lease), generations that follow the server's deployment
 * rather than each process's start, and its --help.
 *
 * The stop cases register the test's own listeners (--pid of this
 * process), stop attach, add listeners and count, per listener, exactly
 * which connections each one served. The pre-fork cases run
 * tests/servers/static_server.c as separate worker processes started one
 * after the other, under attach with its default options and interval.
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

#include "harness.h"
#include "itest.h"
#include "loadgen.h"
#include "sockmig.h"
#include "util.h"

#define APORT	 34600
#define ACLIENTS 400
#define NWORKERS 4

/* `sockmig ARGS...` in the background, output to e->dir/@log. */
static pid_t attach_spawn(struct ienv *e, const char *log, char *const args[])
{
	char *argv[16];
	char path[160];
	pid_t pid;
	int n = 0, fd;

	argv[n++] = e->sockmig;
	for (int i = 0; args[i] && n < 15; i++)
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

/* Until dir/@log holds @n lines with @what, at most @ms. */
static bool wait_log_lines(const struct ienv *e, const char *log, const char *what, int n, int ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)ms;

	while (it_log_count(e, log, what) < n) {
		if (burst_now_ms() > end)
			return false;
		burst_sleep_ms(10);
	}
	return true;
}

/* Its exit status, or -1 when it still runs after @ms (then killed). */
static int wait_status(pid_t pid, int ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)ms;
	int st;

	while (burst_now_ms() < end) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		burst_sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

/* SIGTERM to the attach daemon of @e: true when it stopped within 10 s
 * (it is killed otherwise). */
static bool stop_attach_daemon(struct ienv *e)
{
	int st;

	if (e->attach <= 0)
		return true;
	kill(e->attach, SIGTERM);
	st = wait_status(e->attach, 10000);
	e->attach = 0;
	return ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "attach stops");
}

/* The pinned group of 127.0.0.1:@port in this network namespace, or NULL. */
static struct sockmig_group *group_here(int port)
{
	struct in_addr lo = {htonl(INADDR_LOOPBACK)};
	struct sockmig_group_id id;

	if (sockmig_group_id_make(AF_INET, &lo, port, 0, &id) < 0)
		return NULL;
	return sockmig_group_open_id(&id, NULL);
}

/* @ACLIENTS connections to @port, served by the @nl listeners: true when
 * every one was served, each listener's share in served[]. */
static bool serve_all(const int *lfds, int nl, int *served)
{
	struct burst *c = calloc(1, sizeof(*c));
	int total = 0;
	bool ok;

	if (!c)
		return false;
	memset(served, 0, sizeof(*served) * (size_t)nl);
	ok = ASSERT_OK(burst_start(c, AF_INET, APORT, ACLIENTS, false), "clients") &&
	     ASSERT_EQ(burst_connected(c, 3000), ACLIENTS, "connected");
	if (ok)
		burst_serve(c, lfds, nl, served, 5000);
	for (int i = 0; i < nl; i++) {
		printf("listener %d served %d\n", i, served[i]);
		total += served[i];
	}
	ok = ok && ASSERT_EQ(c->count[BURST_OK], ACLIENTS, "every client served") &&
	     ASSERT_EQ(total, ACLIENTS, "served by the listeners");
	burst_close(c);
	free(c);
	return ok;
}

/*
 * Two listeners registered, attach stopped (@sig), two listeners added.
 * SIGTERM: attach unregisters both and says so; status shows no
 * registered member. SIGKILL: the lease runs out (waited for, bounded).
 * Then every one of the four listeners must serve: nothing steers the
 * SYNs to the two registered before the stop any more.
 */
static int stopped_then_grown(int sig)
{
	char pidarg[16], portarg[16];
	char *args[] = {"attach", "--pid", pidarg, "--port", portarg, "--foreground", NULL};
	int l[4] = {-1, -1, -1, -1}, served[4], ret = SM_FAIL, st;
	struct sockmig_lease le = {0};
	struct sockmig_group *g = NULL;
	struct ienv e;
	pid_t a;

	if (!it_setup(&e, I_ATTACH))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(pidarg, sizeof(pidarg), "%d", (int)getpid());
	snprintf(portarg, sizeof(portarg), "%d", APORT);
	l[0] = burst_listener(AF_INET, APORT, 1024, 0);
	l[1] = burst_listener(AF_INET, APORT, 1024, 0);
	a = attach_spawn(&e, "attach.log", args);
	if (!ASSERT_TRUE(wait_log_lines(&e, "attach.log", "registered", 2, 3000),
			 "both listeners registered"))
		goto out;
	g = group_here(APORT);
	if (!ASSERT_TRUE(g, "the group is pinned") ||
	    !ASSERT_OK(sockmig_group_lease(g, &le), "read the lease") ||
	    !ASSERT_TRUE(le.set && !le.expired, "attach holds a lease"))
		goto out;
	kill(a, sig);
	st = wait_status(a, 5000);
	a = 0;
	if (sig == SIGTERM) {
		char cmd[700];

		if (!ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
				 "attach stops") ||
		    !ASSERT_EQ(it_log_count(&e, "attach.log", "stopped: 2 members unregistered"), 1,
			       "one line says it unregistered both"))
			goto out;
		snprintf(cmd, sizeof(cmd),
			 "%s -j status --port %d | python3 -c 'import json,sys; "
			 "j=json.load(sys.stdin); "
			 "ms=[m for g in j for m in g[\"members\"]]; print(len(ms), \"listeners\", "
			 "sum(m[\"sockmig\"] is not None for m in ms), \"registered\"); "
			 "sys.exit(0 if len(ms)==2 and all(m[\"sockmig\"] is None for m in ms) "
			 "else 1)'",
			 e.sockmig, APORT);
		if (!ASSERT_EQ(system(cmd), 0, "status: no registered member"))
			goto out;
	} else {
		unsigned long long end = burst_now_ms() + 10000;

		/* the lease attach set last runs out: bounded, not a guess */
		while (sockmig_group_lease(g, &le) == 0 && !le.expired && burst_now_ms() < end)
			burst_sleep_ms(20);
		printf("lease: set %d expired %d\n", le.set, le.expired);
		if (!ASSERT_TRUE(le.expired, "the lease of the killed attach runs out"))
			goto out;
	}
	l[2] = burst_listener(AF_INET, APORT, 1024, 0);
	l[3] = burst_listener(AF_INET, APORT, 1024, 0);
	if (!serve_all(l, 4, served))
		goto out;
	for (int i = 0; i < 4; i++)
		if (!ASSERT_GT(served[i], 0, "every live listener gets connections"))
			goto out;
	if (sig == SIGKILL) {
		char cmd[700];

		if (!ASSERT_OK(sockmig_group_lease(g, &le), "read the lease") ||
		    !ASSERT_EQ(le.syn_passed, ACLIENTS, "SYNs left to the kernel's hash, counted"))
			goto out;
		snprintf(cmd, sizeof(cmd),
			 "%s -j status --port %d | python3 -c 'import json,sys; "
			 "j=json.load(sys.stdin); "
			 "print([g[\"lease\"] for g in j]); sys.exit(0 if len(j)==1 and "
			 "j[0][\"lease\"][\"expired\"] and j[0][\"lease\"][\"syn_passed\"]==%d "
			 "else 1)'",
			 e.sockmig, APORT, ACLIENTS);
		if (!ASSERT_EQ(system(cmd), 0, "status shows the lease expired and its count"))
			goto out;
	}
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "attach.log");
	if (a > 0) {
		kill(a, SIGKILL);
		waitpid(a, NULL, 0);
	}
	sockmig_group_close(g);
	for (int i = 0; i < 4; i++)
		if (l[i] >= 0)
			close(l[i]);
	it_teardown(&e, APORT);
	return ret;
}

SM_TEST(attach_stopped_then_listeners_added)
{
	return stopped_then_grown(SIGTERM);
}

SM_TEST(attach_killed_lease_runs_out)
{
	return stopped_then_grown(SIGKILL);
}

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

	snprintf(port, sizeof(port), "%d", APORT);
	pid = it_spawn(e, argv, false);
	if (i == 0) {
		if (!ASSERT_GT(it_probe_reply(APORT, 3000), 0, "the first worker answers"))
			return -1;
		e->attach = attach_spawn(e, "attach.log", args);
	}
	if (!ASSERT_TRUE(wait_log_lines(e, "attach.log", "registered", i + 1, 5000),
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

	snprintf(portarg, sizeof(portarg), "%d", APORT);
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
	reply = it_probe_reply(APORT, 3000);
	if (!ASSERT_GT(reply, 0, "the workers answer"))
		return false;
	rfd = it_start_load(APORT, reply, 3.0, &lpid);
	if (!ASSERT_TRUE(it_finish_load(rfd, lpid, r), "load result"))
		return false;
	printf("%llu ms: load done\n", burst_now_ms() % 1000000);
	it_print_result("prefork", I_ATTACH, r, 0);
	for (int i = 0; i < NWORKERS; i++)
		kill(w[i], SIGTERM);
	for (int i = 0; i < NWORKERS; i++) {
		wait_status(w[i], 5000);
		served[i] = served_by(e, w[i]);
		printf("worker %d (pid %d) served %d\n", i, (int)w[i], served[i]);
	}
	printf("%llu ms: workers stopped\n", burst_now_ms() % 1000000);
	return stop_attach_daemon(e);
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
	it_teardown(&e, APORT);
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
	it_teardown(&e, APORT);
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
	snprintf(portarg, sizeof(portarg), "%d", APORT);
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
	    !ASSERT_TRUE(wait_log_lines(&e, "attach.log", "draining cookie", 3, 3000),
			 "three workers drained"))
		goto out;
	g = group_here(APORT);
	if (!ASSERT_TRUE(g, "the group"))
		goto out;
	for (int i = 0; i < 4; i++)
		if (!ASSERT_EQ(role_of(g, w[i]),
			       i == 2 ? SOCKMIG_ROLE_ACTIVE : SOCKMIG_ROLE_DRAINING,
			       i == 2 ? "B's worker active" : "A's workers draining"))
			goto out;
	if (ASSERT_GT(it_probe_reply(APORT, 3000), 0, "B answers") && stop_attach_daemon(&e))
		ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "attach.log");
	sockmig_group_close(g);
	it_teardown(&e, APORT);
	return ret;
}

/* ---- start-up errors ------------------------------------------------------- */

/*
 * attach's start-up said only "pid P has no SO_REUSEPORT listener ... that
 * sockmig could register" when every take of a listener failed with a race
 * (ESRCH, EBADF, ESTALE: its owner let go since the scan), and said why at
 * debug level only. Here every pidfd_getfd() of attach fails with EBADF (a
 * seccomp filter): one error line names the listener's fd, this process
 * and the reason, after 3 scans again (a server still starting would have
 * been registered by one): 4 owner scans in all, exit 1.
 */
SM_TEST(attach_says_why_nothing_was_registered)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_getfd, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EBADF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
	char pidarg[16], portarg[16], path[160], want[96];
	int l, st = -1, ret = SM_FAIL;
	struct ienv e;
	pid_t pid;

	if (!it_setup(&e, I_ATTACH))
		return SKIP("no .output/sockmig: run from the repository root");
	l = burst_listener(AF_INET, APORT, 16, 0);
	if (!ASSERT_OK(l, "listener"))
		goto out;
	snprintf(pidarg, sizeof(pidarg), "%d", (int)getpid());
	snprintf(portarg, sizeof(portarg), "%d", APORT);
	snprintf(path, sizeof(path), "%s/attach.log", e.dir);
	pid = fork();
	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0 ||
		    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
			_exit(126);
		execl(e.sockmig, e.sockmig, "-v", "attach", "--pid", pidarg, "--port", portarg,
		      "--once", (char *)NULL);
		_exit(127);
	}
	if (!ASSERT_GT(pid, 0, "fork"))
		goto out;
	st = wait_status(pid, 10000);
	snprintf(want, sizeof(want),
		 "that sockmig could register: cannot take fd %d of pid %d: gone (EBADF", l,
		 (int)getpid());
	if (ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit 1") &&
	    ASSERT_EQ(it_log_count(&e, "attach.log", "Error: "), 1, "one error line") &&
	    ASSERT_EQ(it_log_count(&e, "attach.log", want), 1, "it names fd, pid and reason") &&
	    ASSERT_EQ(it_log_count(&e, "attach.log", "debug: scan "), 4,
		      "the first scan, and 3 again"))
		ret = SM_PASS;
out:
	it_show_log(&e, "attach.log");
	if (l >= 0)
		close(l);
	it_teardown(&e, APORT);
	return ret;
}

/* ---- --help -------------------------------------------------------------- */

/* `sockmig @cmd --help` lists each of @opts on a line of its own. */
static bool help_lists(const struct ienv *e, const char *cmd, const char *const *opts)
{
	char line[512], path[160], sh[800];
	bool ok = true;
	FILE *f;

	snprintf(path, sizeof(path), "%s/help.out", e->dir);
	snprintf(sh, sizeof(sh), "%s %s --help >%s 2>&1", e->sockmig, cmd, path);
	if (!ASSERT_EQ(system(sh), 0, cmd))
		return false;
	for (int i = 0; opts[i]; i++) {
		int n = 0;

		f = fopen(path, "re");
		if (!f)
			return false;
		while (fgets(line, sizeof(line), f))
			n += strncmp(line, "  -", 3) == 0 && strstr(line, opts[i]) != NULL;
		fclose(f);
		printf("%s: %s on %d line(s)\n", cmd, opts[i], n);
		ok &= ASSERT_EQ(n, 1, "one line of its own");
	}
	return ok;
}

/*
 * A listener its server closes is drained by attach's release check, not
 * at attach's next scan: with scans 5 s apart, the drain comes within 2 s
 * of the close (a bound for a scheduler hiccup, far below the scan
 * interval: behaviour, not speed). The other listener stays registered,
 * and serves every connection.
 */
SM_TEST(attach_close_drained_before_next_scan)
{
	char pidarg[16], portarg[16], line[96];
	char *args[] = {"attach",
			"--pid",
			pidarg,
			"--port",
			portarg,
			"--interval",
			"5000",
			"--foreground",
			"--release-interval",
			"5",
			NULL};
	int l[2] = {-1, -1}, served[1], ret = SM_FAIL;
	unsigned long long closed;
	uint64_t cookie;
	struct ienv e;

	if (!it_setup(&e, I_ATTACH))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(pidarg, sizeof(pidarg), "%d", (int)getpid());
	snprintf(portarg, sizeof(portarg), "%d", APORT);
	l[0] = burst_listener(AF_INET, APORT, 1024, 0);
	l[1] = burst_listener(AF_INET, APORT, 1024, 0);
	cookie = sockmig_cookie(l[0]);
	e.attach = attach_spawn(&e, "attach.log", args);
	if (!ASSERT_TRUE(wait_log_lines(&e, "attach.log", "registered", 2, 3000),
			 "both listeners registered"))
		goto out;
	snprintf(line, sizeof(line), "released cookie %llu: its server let go; drained",
		 (unsigned long long)cookie);
	closed = burst_now_ms();
	close(l[0]);
	l[0] = -1;
	if (!ASSERT_TRUE(wait_log_lines(&e, "attach.log", line, 1, 2000),
			 "drained within 2 s of the close, scans 5 s apart"))
		goto out;
	printf("drained %llu ms after the close\n", burst_now_ms() - closed);
	if (!ASSERT_EQ(it_log_count(&e, "attach.log", "released cookie"), 1, "only that one") ||
	    !serve_all(&l[1], 1, served) || !stop_attach_daemon(&e))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "attach.log");
	for (int i = 0; i < 2; i++)
		if (l[i] >= 0)
			close(l[i]);
	it_teardown(&e, APORT);
	return ret;
}

SM_TEST(attach_hold_detach_help_lists_options)
{
	static const char *const attach[] = {"--pid ",	       "--port ",     "--generation-by ",
					     "--generation G", "--keep-old",  "--once",
					     "--foreground",   "--interval ", "--release-interval ",
					     "--help",	       NULL};
	static const char *const hold[] = {"--port ",	   "--addr ", "--user ", "--interval ",
					   "--foreground", "--help",  NULL};
	static const char *const detach[] = {"--port ", "--help", NULL};
	char sh[800];
	int ret = SM_FAIL;
	struct ienv e;

	if (!it_setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!help_lists(&e, "attach", attach) || !help_lists(&e, "hold", hold) ||
	    !help_lists(&e, "detach", detach))
		goto out;
	/* bad input: one Error: line, exit 2 */
	snprintf(sh, sizeof(sh),
		 "%s attach --port %d --generation-by deploy 2>%s/err; test $? = 2 && "
		 "test \"$(grep -c '^Error: ' %s/err)\" = 1 && test \"$(wc -l < %s/err)\" = 1 && "
		 "%s attach --port %d --keep-old --generation-by exe 2>%s/err; test $? = 2 && "
		 "test \"$(grep -c '^Error: ' %s/err)\" = 1",
		 e.sockmig, APORT, e.dir, e.dir, e.dir, e.sockmig, APORT, e.dir, e.dir);
	if (ASSERT_EQ(system(sh), 0, "bad --generation-by values refused"))
		ret = SM_PASS;
out:
	it_teardown(&e, APORT);
	return ret;
}
