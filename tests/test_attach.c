// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig attach as an operator runs it: stopped without detach (cleanly,
 * or killed: the lease), what it says when it registers nothing, a closed
 * listener drained before the next scan, and its --help. Pre-fork servers
 * under attach are in test_attach_prefork.c; the shared helpers in
 * attach_rig.c.
 *
 * The stop cases register the test's own listeners (--pid of this
 * process), stop attach, add listeners and count, per listener, exactly
 * which connections each one served.
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

#define ACLIENTS 400

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
	ok = ASSERT_OK(burst_start(c, AF_INET, AR_PORT, ACLIENTS, false), "clients") &&
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
	snprintf(portarg, sizeof(portarg), "%d", AR_PORT);
	l[0] = burst_listener(AF_INET, AR_PORT, 1024, 0);
	l[1] = burst_listener(AF_INET, AR_PORT, 1024, 0);
	a = ar_spawn(&e, "attach.log", args);
	if (!ASSERT_TRUE(ar_wait_log_lines(&e, "attach.log", "registered", 2, 3000),
			 "both listeners registered"))
		goto out;
	g = ar_group_here(AR_PORT);
	if (!ASSERT_TRUE(g, "the group is pinned") ||
	    !ASSERT_OK(sockmig_group_lease(g, &le), "read the lease") ||
	    !ASSERT_TRUE(le.set && !le.expired, "attach holds a lease"))
		goto out;
	kill(a, sig);
	st = ar_wait_status(a, 5000);
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
			 e.sockmig, AR_PORT);
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
	l[2] = burst_listener(AF_INET, AR_PORT, 1024, 0);
	l[3] = burst_listener(AF_INET, AR_PORT, 1024, 0);
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
			 e.sockmig, AR_PORT, ACLIENTS);
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
	it_teardown(&e, AR_PORT);
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
	l = burst_listener(AF_INET, AR_PORT, 16, 0);
	if (!ASSERT_OK(l, "listener"))
		goto out;
	snprintf(pidarg, sizeof(pidarg), "%d", (int)getpid());
	snprintf(portarg, sizeof(portarg), "%d", AR_PORT);
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
	st = ar_wait_status(pid, 10000);
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
	it_teardown(&e, AR_PORT);
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
	snprintf(portarg, sizeof(portarg), "%d", AR_PORT);
	l[0] = burst_listener(AF_INET, AR_PORT, 1024, 0);
	l[1] = burst_listener(AF_INET, AR_PORT, 1024, 0);
	cookie = sockmig_cookie(l[0]);
	e.attach = ar_spawn(&e, "attach.log", args);
	if (!ASSERT_TRUE(ar_wait_log_lines(&e, "attach.log", "registered", 2, 3000),
			 "both listeners registered"))
		goto out;
	snprintf(line, sizeof(line), "released cookie %llu: its server let go; drained",
		 (unsigned long long)cookie);
	closed = burst_now_ms();
	close(l[0]);
	l[0] = -1;
	if (!ASSERT_TRUE(ar_wait_log_lines(&e, "attach.log", line, 1, 2000),
			 "drained within 2 s of the close, scans 5 s apart"))
		goto out;
	printf("drained %llu ms after the close\n", burst_now_ms() - closed);
	if (!ASSERT_EQ(it_log_count(&e, "attach.log", "released cookie"), 1, "only that one") ||
	    !serve_all(&l[1], 1, served) || !ar_stop_daemon(&e))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&e, "attach.log");
	for (int i = 0; i < 2; i++)
		if (l[i] >= 0)
			close(l[i]);
	it_teardown(&e, AR_PORT);
	return ret;
}

SM_TEST(attach_hold_detach_help_lists_options)
{
	static const char *const attach[] = {"--pid ",
					     "--port ",
					     "--generation-by ",
					     "--generation G",
					     "--keep-old",
					     "--once",
					     "--foreground",
					     "--interval ",
					     "--release-interval ",
					     "--udp-idle-ms ",
					     "--udp-flow-max ",
					     "--help",
					     NULL};
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
		 e.sockmig, AR_PORT, e.dir, e.dir, e.dir, e.sockmig, AR_PORT, e.dir, e.dir);
	if (ASSERT_EQ(system(sh), 0, "bad --generation-by values refused"))
		ret = SM_PASS;
out:
	it_teardown(&e, AR_PORT);
	return ret;
}
