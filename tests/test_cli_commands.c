// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The sockmig command as an operator uses it: attach, drain, watch and
 * detach on listeners of the test, JSON that parses, watch beyond 256
 * groups, status without a listener. The bench and the storm worker are
 * test_cli_bench.c's.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"
#include "harness.h"
#include "sockmig.h"
#include "util.h"

SM_TEST(cli_probe_json)
{
	char out[4096], err[4096];

	if (!ct_have_tool())
		return SKIP("no .output/sockmig: run from the repository root");
	if (!ASSERT_EQ(ct_run("-j probe", out, sizeof(out), err, sizeof(err)), 0, "probe") ||
	    !ASSERT_TRUE(ct_json_check(out, "j['mode'] in ('native','select-only','none') and "
					    "'migrate_wakeup' in j and "
					    "j['run'] == ('policy' if j['mode'] == 'native' else "
					    "'handoff')"),
			 "probe JSON"))
		return SM_FAIL;
	return SM_PASS;
}

/*
 * attach --once registers the test's two listeners; drain --now --wait
 * moves A's 15 queued children to B and says so; watch reports the
 * generation that drained; detach removes everything.
 */
SM_TEST(cli_attach_drain_watch_detach)
{
	int a = burst_listener(AF_INET, CPORT, 128, 0), b = burst_listener(AF_INET, CPORT, 128, 0);
	struct burst *c = calloc(1, sizeof(*c));
	char out[8192], err[4096], args[256], names[8][SOCKMIG_NAME_MAX];
	int ret = SM_FAIL, served[1], n;

	if (!c)
		return SM_FAIL;
	if (!ct_have_tool()) {
		free(c);
		return SKIP("no .output/sockmig: run from the repository root");
	}
	snprintf(args, sizeof(args), "attach --pid %d --port %d --once --generation 1",
		 (int)getpid(), CPORT);
	if (!ASSERT_EQ(ct_run(args, out, sizeof(out), err, sizeof(err)), 0, "attach --once") ||
	    !ASSERT_TRUE(strstr(out, "registered"), "says what it registered"))
		goto out;
	/* 15 children on A only: B drains (no SYN) while they connect */
	snprintf(args, sizeof(args), "drain --cookie %llu", (unsigned long long)sockmig_cookie(b));
	if (!ASSERT_EQ(ct_run(args, out, sizeof(out), err, sizeof(err)), 0, "drain B (no SYN)"))
		goto out;
	if (!ASSERT_OK(burst_start(c, AF_INET, CPORT, 15, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), 15, "connected") ||
	    !ASSERT_TRUE(burst_wait_queue(a, 15, 2000), "15 queued on A") ||
	    !ASSERT_EQ(burst_accept_queue(b), 0, "none on the draining B"))
		goto out;
	/* B active again, newer: A drains now and its queue moves to B */
	snprintf(args, sizeof(args), "attach --pid %d --port %d --once --generation 2",
		 (int)getpid(), CPORT);
	if (!ASSERT_EQ(ct_run(args, out, sizeof(out), err, sizeof(err)), 0, "attach again"))
		goto out;
	n = sockmig_group_list(NULL, names, 8);
	if (!ASSERT_GT(n, 0, "a pinned group"))
		goto out;
	{
		struct sockmig_group *g = sockmig_group_open_name(names[0], NULL);
		SOCKMIG_OPTS(sockmig_member_opts, mo, .role = SOCKMIG_ROLE_ACTIVE, .generation = 2);

		if (!ASSERT_TRUE(g, sockmig_last_error()) ||
		    !ASSERT_OK(sockmig_member_set(g, sockmig_cookie(b), &mo), "B active, gen 2")) {
			sockmig_group_close(g);
			goto out;
		}
		sockmig_group_close(g);
	}
	snprintf(args, sizeof(args), "-j drain --cookie %llu --now --wait --timeout 5",
		 (unsigned long long)sockmig_cookie(a));
	if (!ASSERT_EQ(ct_run(args, out, sizeof(out), err, sizeof(err)), 0,
		       "drain A --now --wait") ||
	    !ASSERT_TRUE(
		    ct_json_check(out, "j[0]['closed'] and j[0]['migrated']['established'] == 15"),
		    "15 migrated, A closed"))
		goto out;
	burst_serve(c, &b, 1, served, 3000);
	if (!ASSERT_EQ(c->count[BURST_OK], 15, "served by B"))
		goto out;
	snprintf(args, sizeof(args), "-j watch --port %d --count 1 --interval 50", CPORT);
	if (!ASSERT_EQ(ct_run(args, out, sizeof(out), err, sizeof(err)), 0, "watch") ||
	    !ASSERT_TRUE(ct_json_check(out,
				       "any(x.get('event') == 'generation-drained' and "
				       "x['migrated'] == 15 for x in (j if isinstance(j, list) "
				       "else [j]))"),
			 "the reload report"))
		goto out;
	snprintf(args, sizeof(args), "detach --port %d", CPORT);
	if (!ASSERT_EQ(ct_run(args, out, sizeof(out), err, sizeof(err)), 0, "detach") ||
	    !ASSERT_EQ(sockmig_group_list(NULL, names, 8), n - 1, "group removed"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS) {
		snprintf(args, sizeof(args), "detach --port %d", CPORT);
		ct_run(args, out, sizeof(out), err, sizeof(err));
	}
	burst_close(c);
	free(c);
	close(a);
	close(b);
	return ret;
}

SM_TEST(cli_attach_refused_without_ptrace_rights)
{
	int a = burst_listener(AF_INET, CPORT, 16, 0);
	char out[4096], err[4096], args[256];
	pid_t pid;
	int p[2], st;

	if (!ct_have_tool())
		return SKIP("no .output/sockmig: run from the repository root");
	/* the listener belongs to root (this process); nobody tries to take it */
	if (pipe(p) < 0)
		return SM_FAIL;
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], STDERR_FILENO);
		if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
			_exit(9);
		snprintf(args, sizeof(args), "%d", (int)getppid());
		execl(ct_tool, ct_tool, "attach", "--pid", args, "--once", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	memset(err, 0, sizeof(err));
	if (read(p[0], err, sizeof(err) - 1) < 0)
		err[0] = '\0';
	close(p[0]);
	waitpid(pid, &st, 0);
	close(a);
	printf("as nobody: %s", err);
	(void)out;
	if (!ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit 1") ||
	    !ASSERT_EQ(ct_lines(err), 1, "one line") ||
	    !ASSERT_TRUE(strstr(err, "ptrace") || strstr(err, "needs root"), "names the rights"))
		return SM_FAIL;
	return SM_PASS;
}

#define PIN_DIR	 "/sys/fs/bpf/sockmig"
#define N_DECOYS 300 /* before and after the group: beyond 256 either way */

/* Directories named as groups of a network namespace that cannot exist
 * (inode 1); @first: the first of their numbers. */
static bool decoys(int first, bool make)
{
	char path[128];

	for (int i = first; i < first + N_DECOYS; i++) {
		snprintf(path, sizeof(path), PIN_DIR "/1-tcp4-127_0_0_1-%d", i);
		if (make && mkdir(path, 0700) < 0) {
			printf("mkdir %s: %s\n", path, strerror(errno));
			return false;
		}
		if (!make)
			rmdir(path);
	}
	return true;
}

/*
 * watch and detach read the pinned groups 256 names at a time and missed
 * the others: 600 groups of another namespace around this one's, then
 * watch must report it and detach must remove it.
 */
SM_TEST(watch_sees_more_than_256_groups)
{
	SOCKMIG_OPTS(sockmig_member_opts, mo, .generation = 1);
	int fd = burst_listener(AF_INET, CPORT + 2, 16, 0), ret = SM_FAIL, n;
	char out[8192], err[4096], args[128], name[SOCKMIG_NAME_MAX] = "", check[256];
	struct sockmig_group *g = NULL;
	char(*names)[SOCKMIG_NAME_MAX] = calloc(1024, SOCKMIG_NAME_MAX);
	bool pinned;

	if (!names || !ASSERT_OK(fd, "listener"))
		goto out;
	if (!ct_have_tool()) {
		ret = SKIP("no .output/sockmig: run from the repository root");
		goto out;
	}
	mkdir(PIN_DIR, 0700);
	if (!ASSERT_TRUE(decoys(0, true), "decoys before"))
		goto out;
	g = sockmig_group_open(fd, NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(sockmig_member_add(g, fd, &mo), "registered"))
		goto out;
	snprintf(name, sizeof(name), "%s", sockmig_group_name(g));
	sockmig_group_close(g);
	g = NULL;
	if (!ASSERT_TRUE(decoys(N_DECOYS, true), "decoys after"))
		goto out;
	snprintf(args, sizeof(args), "-j watch --port %d --count 1 --interval 10", CPORT + 2);
	snprintf(check, sizeof(check),
		 "any(x.get('group') == '%s' for x in (j if "
		 "isinstance(j, list) else [j]))",
		 name);
	if (!ASSERT_EQ(ct_run(args, out, sizeof(out), err, sizeof(err)), 0, "watch") ||
	    !ASSERT_TRUE(ct_json_check(out, check), "watch reports the group"))
		goto out;
	/* its listener gone, only the pinned names tell detach of the group */
	close(fd);
	fd = -1;
	snprintf(args, sizeof(args), "detach --port %d", CPORT + 2);
	if (!ASSERT_EQ(ct_run(args, out, sizeof(out), err, sizeof(err)), 0, "detach"))
		goto out;
	n = sockmig_group_list(NULL, names, 1024);
	pinned = false;
	for (int i = 0; i < n && i < 1024; i++)
		pinned |= strcmp(names[i], name) == 0;
	if (!ASSERT_TRUE(!pinned, "detach removed the group"))
		goto out;
	ret = SM_PASS;
out:
	decoys(0, false);
	decoys(N_DECOYS, false);
	if (name[0]) {
		g = sockmig_group_open_name(name, NULL);
		if (g)
			sockmig_group_destroy(g);
	}
	sockmig_group_close(g);
	if (fd >= 0)
		close(fd);
	free(names);
	return ret;
}

/* Start `sockmig ARGS...` with stderr into @errpath; its pid, or -1. */
static pid_t spawn_tool(const char *errpath, char *const args[])
{
	char *argv[16] = {ct_tool};
	pid_t pid;

	for (int i = 0; i < 14 && args[i]; i++)
		argv[i + 1] = args[i];
	pid = fork();
	if (pid == 0) {
		int e = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (e < 0 || null < 0 || dup2(e, STDERR_FILENO) < 0 ||
		    dup2(null, STDOUT_FILENO) < 0)
			_exit(126);
		execv(ct_tool, argv);
		_exit(127);
	}
	return pid;
}

/* Whether a line of @path holds @needle. */
static bool file_has(const char *path, const char *needle)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(path, "re");

	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return found;
}

/* Let @pid run @ms from its first line holding @what[1] (its start-up
 * is not counted: it can take seconds on a loaded machine), stop it with
 * SIGTERM; then how many lines of @path hold each of @what[0..n). */
static void stop_and_count(pid_t pid, int ms, const char *path, const char *const *what,
			   int *counts, int n)
{
	char line[512];
	bool gone = false;
	FILE *f;

	for (int t = 0; t < 1000 && !file_has(path, what[1]) && !gone; t++) {
		gone = waitpid(pid, NULL, WNOHANG) == pid; /* reaped: not signalled again */
		burst_sleep_ms(10);
	}
	if (!gone) {
		burst_sleep_ms(ms);
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	memset(counts, 0, sizeof(*counts) * (size_t)n);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		printf("  %s", line);
		for (int i = 0; i < n; i++)
			counts[i] += strstr(line, what[i]) != NULL;
	}
	if (f)
		fclose(f);
	unlink(path);
}

/* A plain listener (no SO_REUSEPORT) on 127.0.0.2:@port. */
static int plain_listener(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(0x7f000002);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 8) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/*
 * attach --foreground logged one error per interval for a listener it
 * cannot register (here one without SO_REUSEPORT beside the attached
 * group), and scanned /proc for its owners each time: one line in 3 s
 * now, and a few scans (a backoff). attach --pid looks at that process's
 * fds only, whatever else listens (the case's own listener, as sshd's).
 */
SM_TEST(attach_unregistrable_listener_logged_once)
{
	static const char *const what[] = {"Error: ", "debug: scan ", "every process"};
	int port = CPORT + 3, a = burst_listener(AF_INET, port, 16, 0), c = plain_listener(port);
	char errpath[64], portarg[16], pidarg[16], *args[12];
	int counts[3], ret = SM_FAIL, p[2] = {-1, -1};
	pid_t pid, server = -1;

	if (!ct_have_tool())
		return SKIP("no .output/sockmig: run from the repository root");
	if (!ASSERT_OK(a, "reuseport listener") || !ASSERT_OK(c, "plain listener"))
		goto out;
	snprintf(errpath, sizeof(errpath), "/tmp/sockmig-attach-%d.err", (int)getpid());
	snprintf(portarg, sizeof(portarg), "%d", port);
	memcpy(args,
	       (char *[]){"-v", "attach", "--port", portarg, "--foreground", "--interval", "100",
			  NULL},
	       8 * sizeof(char *));
	pid = spawn_tool(errpath, args);
	if (!ASSERT_GT(pid, 0, "attach"))
		goto out;
	stop_and_count(pid, 3000, errpath, what, counts, 3);
	if (!ASSERT_EQ(counts[0], 1, "one error line in 3 s") ||
	    !ASSERT_GT(counts[1], 0, "owner scans counted") ||
	    !ASSERT_LE(counts[1], 7, "owner scans with a backoff, not one per interval"))
		goto out;

	/* --pid: a server process of its own; the case's listeners are others' */
	if (pipe(p) < 0)
		goto out;
	server = fork();
	if (server == 0) {
		int s;
		char x = 1;

		close(a);
		close(c);
		s = burst_listener(AF_INET, port + 1, 16, 0);

		if (s < 0 || write(p[1], &x, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	{
		char x;

		if (!ASSERT_EQ(read(p[0], &x, 1), 1, "server listens"))
			goto out;
	}
	snprintf(pidarg, sizeof(pidarg), "%d", (int)server);
	memcpy(args,
	       (char *[]){"-v", "attach", "--pid", pidarg, "--foreground", "--interval", "100",
			  NULL},
	       8 * sizeof(char *));
	pid = spawn_tool(errpath, args);
	if (!ASSERT_GT(pid, 0, "attach --pid"))
		goto out;
	stop_and_count(pid, 1500, errpath, what, counts, 3);
	if (!ASSERT_EQ(counts[0], 0, "no error") || !ASSERT_GT(counts[1], 0, "scans") ||
	    !ASSERT_EQ(counts[2], 0, "--pid scans its process only") ||
	    !ASSERT_LE(counts[1], 7, "the other listeners are not looked at each interval"))
		goto out;
	ret = SM_PASS;
out:
	if (server > 0) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
	}
	if (p[0] >= 0) {
		close(p[0]);
		close(p[1]);
	}
	/* the groups attach registered stay pinned until detached */
	for (int q = port; q <= port + 1; q++) {
		char out[1024], err[1024], cmd[64];

		snprintf(cmd, sizeof(cmd), "detach --port %d", q);
		ct_run(cmd, out, sizeof(out), err, sizeof(err));
	}
	if (a >= 0)
		close(a);
	if (c >= 0)
		close(c);
	return ret;
}

/*
 * status asked SO_REUSEPORT of a group of one listener on a copy taken
 * with pidfd_getfd(): held while the server closed its own, the copy made
 * status the listener's last holder. Under a seccomp filter that refuses
 * pidfd_getfd, status still tells a SO_REUSEPORT listener from a plain
 * one, so it takes none.
 */
SM_TEST(status_takes_no_listener)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_getfd, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
	int a = burst_listener(AF_INET, CPORT + 5, 16, 0), b = plain_listener(CPORT + 5);
	char out[8192], path[64], check[512];
	int st, fd, ret = SM_FAIL;
	ssize_t n;
	pid_t pid;

	if (!ct_have_tool())
		return SKIP("no .output/sockmig: run from the repository root");
	if (!ASSERT_OK(a, "reuseport listener") || !ASSERT_OK(b, "plain listener"))
		goto out;
	snprintf(path, sizeof(path), "/tmp/sockmig-status-%d.out", (int)getpid());
	pid = fork();
	if (pid == 0) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 ||
		    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
			_exit(126);
		execl(ct_tool, ct_tool, "status", "-j", (char *)NULL);
		_exit(127);
	}
	if (!ASSERT_GT(pid, 0, "fork") || !ASSERT_EQ(waitpid(pid, &st, 0), pid, "wait") ||
	    !ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status exits 0"))
		goto out;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, out, sizeof(out) - 1) : -1;
	out[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	printf("%s", out);
	snprintf(check, sizeof(check),
		 "[g['reuseport'] for g in j if g['local'] == '127.0.0.1:%d'] == [True] and "
		 "not [g for g in j if g['local'] == '127.0.0.2:%d']",
		 CPORT + 5, CPORT + 5);
	if (!ASSERT_TRUE(ct_json_check(out, check),
			 "the SO_REUSEPORT listener shown, not the other"))
		goto out;
	ret = SM_PASS;
out:
	unlink(path);
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	return ret;
}
