// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Least privilege, measured: each command run as uid 65534 (nobody)
 * holding only the capabilities the README's table gives it
 * (setpriv --reuid --inh-caps --ambient-caps --bounding-set), and again
 * with each of them removed, which must fail with one Error line naming
 * the one removed. Each case has a private mount namespace with a tmpfs
 * that holds a bpffs mounted 0700 (as systemd mounts /sys/fs/bpf) and
 * owned by nobody, used as its pin root (SOCKMIG_PIN_ROOT), and nobody's
 * XDG_RUNTIME_DIR for the pid files; nothing of it outlives the case.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <unistd.h>
#include <linux/capability.h>

#include "clitest.h"
#include "harness.h"
#include "proc.h"
#include "quic_rig.h"
#include "sockmig.h"
#include "util.h"

#define KPORT  36100
#define NOBODY 65534

struct capenv {
	char dir[64];  /* a tmpfs in this case's own mount namespace */
	char bpf[96];  /* a bpffs in it, nobody's, mode 0700 */
	char run[96];  /* nobody's XDG_RUNTIME_DIR */
	char srv[600]; /* the static test server */
	char out[8192], err[8192];
};

static bool cap_setup(struct capenv *e)
{
	char cwd[400];

	memset(e, 0, sizeof(*e));
	if (!ct_have_tool() || !getcwd(cwd, sizeof(cwd)))
		return false;
	snprintf(e->srv, sizeof(e->srv), "%s/.output/tests/servers/static_server", cwd);
	snprintf(e->dir, sizeof(e->dir), "/tmp/smcaps.XXXXXX");
	if (!ASSERT_OK(unshare(CLONE_NEWNS), "a mount namespace") ||
	    !ASSERT_OK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "private mounts") ||
	    !ASSERT_TRUE(mkdtemp(e->dir) != NULL, "mkdtemp") ||
	    !ASSERT_OK(mount("tmpfs", e->dir, "tmpfs", 0, "mode=0755"), "tmpfs"))
		return false;
	snprintf(e->bpf, sizeof(e->bpf), "%s/bpf", e->dir);
	snprintf(e->run, sizeof(e->run), "%s/run", e->dir);
	return ASSERT_OK(mkdir(e->bpf, 0700), "mkdir bpf") &&
	       ASSERT_OK(mount("bpf", e->bpf, "bpf", 0, "mode=0700"), "bpffs") &&
	       ASSERT_OK(chown(e->bpf, NOBODY, NOBODY), "chown bpffs") &&
	       ASSERT_OK(mkdir(e->run, 0700), "mkdir run") &&
	       ASSERT_OK(chown(e->run, NOBODY, NOBODY), "chown run");
}

static void cap_teardown(struct capenv *e)
{
	if (!e->dir[0] || strchr(e->dir, 'X'))
		return;
	umount2(e->dir, MNT_DETACH);
	rmdir(e->dir);
}

/* The setpriv prefix: uid @uid, only @caps ("+bpf,+perfmon", or ""). */
static void cap_prefix(char *buf, size_t len, int uid, const char *caps)
{
	const char *sep = *caps ? "," : "";

	snprintf(buf, len,
		 "setpriv --reuid=%d --regid=%d --clear-groups --inh-caps=-all%s%s "
		 "--ambient-caps=-all%s%s --bounding-set=-all%s%s",
		 uid, uid, sep, caps, sep, caps, sep, caps);
}

/* Run `sockmig ARGS` as nobody with @caps; stdout, stderr in e->out, e->err.
 * Returns the exit status, or -1. */
static int cap_run(struct capenv *e, const char *caps, const char *args)
{
	char pre[400], cmd[2048], of[128], ef[128];
	int st, fd;
	ssize_t n;

	cap_prefix(pre, sizeof(pre), NOBODY, caps);
	snprintf(of, sizeof(of), "%s/out", e->dir);
	snprintf(ef, sizeof(ef), "%s/err", e->dir);
	snprintf(cmd, sizeof(cmd),
		 "%s env SOCKMIG_PIN_ROOT=%s/sockmig XDG_RUNTIME_DIR=%s timeout 30 %s %s "
		 ">%s 2>%s",
		 pre, e->bpf, e->run, ct_tool, args, of, ef);
	st = system(cmd);
	e->out[0] = e->err[0] = '\0';
	fd = open(of, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && (n = read(fd, e->out, sizeof(e->out) - 1)) >= 0)
		e->out[n] = '\0';
	if (fd >= 0)
		close(fd);
	fd = open(ef, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && (n = read(fd, e->err, sizeof(e->err) - 1)) >= 0)
		e->err[n] = '\0';
	if (fd >= 0)
		close(fd);
	printf("[%s] sockmig %s: exit %d\n%s%s", caps, args, WIFEXITED(st) ? WEXITSTATUS(st) : -1,
	       e->out, e->err);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Start, in the background, @cmd (a shell string) as @uid with @caps,
 * its output into @log under the case's directory. */
static pid_t cap_spawn(struct capenv *e, int uid, const char *caps, const char *cmd,
		       const char *log)
{
	char pre[400], full[2048];
	pid_t pid;

	cap_prefix(pre, sizeof(pre), uid, caps);
	snprintf(full, sizeof(full),
		 "exec %s env SOCKMIG_PIN_ROOT=%s/sockmig XDG_RUNTIME_DIR=%s %s >%s/%s 2>&1", pre,
		 e->bpf, e->run, cmd, e->dir, log);
	pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		execl("/bin/sh", "sh", "-c", full, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Does something accept connections on 127.0.0.1:@port within @ms? */
static bool cap_wait_listen(int port, int ms)
{
	struct sockaddr_storage ss;
	socklen_t len = burst_addr(AF_INET, port, &ss);

	for (int t = 0; t <= ms; t += 20) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&ss, len) == 0;

		if (fd >= 0)
			close(fd);
		if (ok)
			return true;
		burst_sleep_ms(20);
	}
	return false;
}

static void cap_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(-pid, SIGTERM);
	if (tp_wait_exit(pid, 3000) == -1) {
		kill(-pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

/* Does @log (under the case's directory) contain @what, within @ms? */
static bool cap_log_has(struct capenv *e, const char *log, const char *what, int ms)
{
	char path[160], buf[8192];

	snprintf(path, sizeof(path), "%s/%s", e->dir, log);
	for (int t = 0; t <= ms; t += 20) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

		if (fd >= 0)
			close(fd);
		if (n > 0) {
			buf[n] = '\0';
			if (strstr(buf, what))
				return true;
		}
		burst_sleep_ms(20);
	}
	return false;
}

/* Groups pinned in the case's pin root. */
static int cap_groups(struct capenv *e)
{
	char path[160];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/sockmig", e->bpf);
	d = opendir(path);
	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* @caps without the one named @drop ("+perfmon" out of "+bpf,+perfmon"). */
static void caps_without(char *buf, size_t len, const char *caps, const char *drop)
{
	char tmp[256], *save = NULL;

	buf[0] = '\0';
	snprintf(tmp, sizeof(tmp), "%s", caps);
	for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (strcmp(t, drop) == 0)
			continue;
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? "," : "", t);
	}
}

/* CAP_SYS_PTRACE from "+sys_ptrace". */
static void cap_name(char *buf, size_t len, const char *cap)
{
	snprintf(buf, len, "CAP_");
	for (const char *c = cap + 1; *c && strlen(buf) + 1 < len; c++) {
		size_t l = strlen(buf);

		buf[l] = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
		buf[l + 1] = '\0';
	}
}

/*
 * `sockmig ARGS` with each capability of @caps removed in turn: exit 1,
 * one line on stderr, an Error line that names the capability removed.
 */
static bool refused_without_each(struct capenv *e, const char *caps, const char *args)
{
	char tmp[256], less[256], name[64], *save = NULL;

	snprintf(tmp, sizeof(tmp), "%s", caps);
	for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		caps_without(less, sizeof(less), caps, t);
		cap_name(name, sizeof(name), t);
		if (!ASSERT_EQ(cap_run(e, less, args), 1, "exit 1 without it") ||
		    !ASSERT_EQ(ct_lines(e->err), 1, "one line") ||
		    !ASSERT_TRUE(strncmp(e->err, "Error: ", 7) == 0, "an Error line") ||
		    !ASSERT_TRUE(strstr(e->err, name) != NULL, "it names the capability"))
			return false;
	}
	return true;
}

static bool migrates(void)
{
	char why[200];

	return tu_kernel_migrates(why, sizeof(why));
}

/* kernel.yama.ptrace_scope, 0 without Yama. From 1 (Ubuntu's default), a
 * process of the server's uid may take its fds (pidfd_getfd: the rights of
 * ptrace) only with CAP_SYS_PTRACE; at 3, nobody may. */
static int yama_scope(void)
{
	FILE *f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
	int v = 0;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

/* Whether a reader of a pinned group needs CAP_BPF: before 5.19 the kernel
 * refuses every bpf() call without it while kernel.unprivileged_bpf_disabled
 * is set (Debian's and Ubuntu's default; measured: Ubuntu's 5.15 refuses,
 * Debian's 6.1 reads); from 5.19 that gates only the making of programs and
 * maps. */
static bool readers_need_bpf(void)
{
	FILE *f = fopen("/proc/sys/kernel/unprivileged_bpf_disabled", "re");
	struct utsname u;
	int v = 0, major = 0, minor = 0;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 0;
		fclose(f);
	}
	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return v != 0;
	return v != 0 && (major < 5 || (major == 5 && minor < 19));
}

/* probe: CAP_BPF in the caller's netns; a scratch netns with CAP_SYS_ADMIN
 * and CAP_NET_ADMIN. */
SM_TEST(caps_probe)
{
	struct capenv e;
	int ret = SM_FAIL;

	if (!migrates())
		return SKIP("the kernel does not migrate: no native mode to reach");
	if (!cap_setup(&e)) {
		cap_teardown(&e);
		return ct_have_tool() ? SM_FAIL : SKIP("no .output/sockmig");
	}
	if (ASSERT_EQ(cap_run(&e, "+bpf", "probe"), 0, "probe with CAP_BPF") &&
	    ASSERT_TRUE(strstr(e.out, "mode             native") != NULL, "native") &&
	    ASSERT_TRUE(strstr(e.out, "probed in this netns") != NULL, "in the caller's netns") &&
	    refused_without_each(&e, "+bpf", "probe") &&
	    ASSERT_EQ(cap_run(&e, "+sys_admin,+net_admin", "probe"), 0, "probe, scratch netns") &&
	    ASSERT_TRUE(strstr(e.out, "mode             native") != NULL, "native") &&
	    ASSERT_TRUE(strstr(e.out, "probed in this netns") == NULL, "in a scratch netns") &&
	    ASSERT_EQ(cap_run(&e, "+sys_admin", "probe"), 1, "no CAP_NET_ADMIN") &&
	    ASSERT_EQ(ct_lines(e.err), 1, "one line") &&
	    ASSERT_TRUE(strstr(e.err, "Error: ") && strstr(e.err, "CAP_NET_ADMIN"), "names it"))
		ret = SM_PASS;
	cap_teardown(&e);
	return ret;
}

/* hold, a server of the same uid: CAP_BPF and CAP_PERFMON (and
 * CAP_SYS_PTRACE where kernel.yama.ptrace_scope is 1 or 2: without it hold
 * refuses, as it could not register the server); status, watch,
 * metrics and drain read and change its group with none (CAP_BPF before
 * 5.19 with unprivileged BPF off: readers_need_bpf()). */
SM_TEST(caps_hold_status_drain)
{
	const char *caps = yama_scope() ? "+bpf,+perfmon,+sys_ptrace" : "+bpf,+perfmon";
	const char *rcaps = readers_need_bpf() ? "+bpf" : ""; /* status, watch, ... */
	char cmd[700], args[160], log[32], dcaps[32];
	struct capenv e;
	pid_t srv = 0, hold = 0;
	int ret = SM_FAIL;

	if (!migrates())
		return SKIP("the kernel does not migrate: hold refuses to start");
	if (yama_scope() >= 3)
		return SKIP("kernel.yama.ptrace_scope 3: no process may take another's fds");
	if (!cap_setup(&e)) {
		cap_teardown(&e);
		return ct_have_tool() ? SM_FAIL : SKIP("no .output/sockmig");
	}
	snprintf(cmd, sizeof(cmd), "%s %d", e.srv, KPORT);
	srv = cap_spawn(&e, NOBODY, "", cmd, "srv.log");
	if (!ASSERT_TRUE(cap_wait_listen(KPORT, 3000), "the server listens"))
		goto out;
	/* where Yama asks for CAP_SYS_PTRACE, a hold without it could never
	 * register the server, and its holder would take every SYN: it refuses */
	snprintf(args, sizeof(args), "hold --port %d --addr 127.0.0.1 --foreground", KPORT);
	if (yama_scope() &&
	    (!ASSERT_EQ(cap_run(&e, "+bpf,+perfmon", args), 1,
			"hold without CAP_SYS_PTRACE refuses") ||
	     !ASSERT_TRUE(strstr(e.err, "taking it from its process is not permitted") != NULL,
			  "and says why")))
		goto out;
	snprintf(cmd, sizeof(cmd), "%s hold --port %d --addr 127.0.0.1 --foreground", ct_tool,
		 KPORT);
	hold = cap_spawn(&e, NOBODY, caps, cmd, "hold.log");
	snprintf(log, sizeof(log), "(pid %d fd", (int)srv);
	if (!ASSERT_TRUE(cap_log_has(&e, "hold.log", "holding port", 10000), "hold runs") ||
	    !ASSERT_TRUE(cap_log_has(&e, "hold.log", log, 10000), "it registers the server") ||
	    !ASSERT_EQ(cap_groups(&e), 1, "one group pinned in nobody's root"))
		goto out;
	snprintf(args, sizeof(args), "hold --port %d --addr 127.0.0.1 --foreground", KPORT + 1);
	if (!refused_without_each(&e, "+bpf,+perfmon", args))
		goto out;
	/* before 5.19, with unprivileged BPF off, CAP_BPF; status says so */
	if (readers_need_bpf() &&
	    (!ASSERT_EQ(cap_run(&e, "", "status"), 0, "status with none, refused the group") ||
	     !ASSERT_TRUE(strstr(e.out, "not readable (needs CAP_BPF: "
					"kernel.unprivileged_bpf_disabled is set)") != NULL,
			  "says why")))
		goto out;
	if (!ASSERT_EQ(cap_run(&e, rcaps, "status"), 0, "status") ||
	    !ASSERT_TRUE(strstr(e.out, "active") && strstr(e.out, "holder"), "both members") ||
	    !ASSERT_EQ(cap_run(&e, rcaps, "watch --interval 100 --count 1"), 0, "watch") ||
	    !ASSERT_TRUE(strstr(e.out, "steered") != NULL, "watch counts"))
		goto out;
	snprintf(args, sizeof(args), "metrics --textfile %s/m.prom", e.run);
	if (!ASSERT_EQ(cap_run(&e, rcaps, args), 0, "metrics"))
		goto out;
	/* drain takes the server's listener (pidfd_getfd): Yama's rule too */
	snprintf(dcaps, sizeof(dcaps), "%s%s%s", rcaps, *rcaps && yama_scope() ? "," : "",
		 yama_scope() ? "+sys_ptrace" : "");
	snprintf(args, sizeof(args), "drain --pid %d", (int)srv);
	if (!ASSERT_EQ(cap_run(&e, dcaps, args), 0, "drain"))
		goto out;
	ret = SM_PASS;
out:
	cap_stop(hold);
	cap_stop(srv);
	cap_teardown(&e);
	return ret;
}

/* attach, a server of another uid: CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and
 * CAP_DAC_READ_SEARCH (its /proc/PID/fd); of the same uid, the first two,
 * and CAP_SYS_PTRACE where kernel.yama.ptrace_scope is 1 or 2 (without it,
 * attach says so). */
SM_TEST(caps_attach)
{
	const char *caps = "+bpf,+perfmon,+sys_ptrace,+dac_read_search";
	char cmd[700], args[160];
	struct capenv e;
	pid_t srv = 0, own = 0;
	int ret = SM_FAIL;

	if (!migrates())
		return SKIP("the kernel does not migrate");
	if (yama_scope() >= 3)
		return SKIP("kernel.yama.ptrace_scope 3: no process may take another's fds");
	if (!cap_setup(&e)) {
		cap_teardown(&e);
		return ct_have_tool() ? SM_FAIL : SKIP("no .output/sockmig");
	}
	snprintf(cmd, sizeof(cmd), "%s %d", e.srv, KPORT);
	srv = cap_spawn(&e, 1, "", cmd, "srv.log"); /* uid 1: daemon */
	snprintf(cmd, sizeof(cmd), "%s %d", e.srv, KPORT + 1);
	own = cap_spawn(&e, NOBODY, "", cmd, "own.log");
	if (!ASSERT_TRUE(cap_wait_listen(KPORT, 3000) && cap_wait_listen(KPORT + 1, 3000),
			 "the servers listen"))
		goto out;
	snprintf(args, sizeof(args), "attach --port %d --once", KPORT);
	if (!refused_without_each(&e, caps, args) ||
	    !ASSERT_EQ(cap_run(&e, caps, args), 0, "attach, another uid") ||
	    !ASSERT_TRUE(strstr(e.out, "registered tcp4") != NULL, "registered"))
		goto out;
	snprintf(args, sizeof(args), "attach --port %d --once", KPORT + 1);
	if (yama_scope() &&
	    (!ASSERT_TRUE(cap_run(&e, "+bpf,+perfmon", args) != 0,
			  "attach, the same uid, Yama: refused") ||
	     !ASSERT_TRUE(strstr(e.err, "kernel.yama.ptrace_scope") != NULL, "says why")))
		goto out;
	if (!ASSERT_EQ(
		    cap_run(&e, yama_scope() ? "+bpf,+perfmon,+sys_ptrace" : "+bpf,+perfmon", args),
		    0, "attach, the same uid") ||
	    !ASSERT_TRUE(strstr(e.out, "registered tcp4") != NULL, "registered") ||
	    !ASSERT_EQ(cap_groups(&e), 2, "two groups pinned"))
		goto out;
	ret = SM_PASS;
out:
	cap_stop(srv);
	cap_stop(own);
	cap_teardown(&e);
	return ret;
}

/* run: CAP_BPF and CAP_PERFMON for the policy and the holder; without
 * CAP_BPF it hands its listener over (no privilege needed), saying why. */
SM_TEST(caps_run)
{
	static const char *const sets[] = {"+bpf,+perfmon", "+perfmon", "+bpf"};
	static const char *const says[] = {"generation 1 ready", "(needs CAP_BPF)", "CAP_PERFMON"};
	char cmd[900], log[32];
	struct capenv e;
	pid_t run = 0;
	int ret = SM_FAIL;

	if (!migrates())
		return SKIP("the kernel does not migrate: run hands its listener over");
	if (!cap_setup(&e)) {
		cap_teardown(&e);
		return ct_have_tool() ? SM_FAIL : SKIP("no .output/sockmig");
	}
	for (int i = 0; i < 3; i++) {
		snprintf(cmd, sizeof(cmd), "%s run --port %d -- %s %d", ct_tool, KPORT + i, e.srv,
			 KPORT + i);
		snprintf(log, sizeof(log), "run%d.log", i);
		run = cap_spawn(&e, NOBODY, sets[i], cmd, log);
		if (!ASSERT_TRUE(cap_log_has(&e, log, says[i], 10000), says[i]) ||
		    !ASSERT_EQ(cap_groups(&e), i == 0, "a group pinned only by the first run"))
			goto out;
		if (i == 1 && !ASSERT_TRUE(cap_log_has(&e, log, "generation 1 ready", 5000),
					   "it serves, handing its listener over"))
			goto out;
		cap_stop(run);
		run = 0;
	}
	ret = SM_PASS;
out:
	if (ret != SM_PASS) {
		snprintf(cmd, sizeof(cmd), "cat %s/run*.log", e.dir);
		if (system(cmd) < 0)
			printf("no log\n");
	}
	cap_stop(run);
	cap_teardown(&e);
	return ret;
}

/* demo and bench make network namespaces, sysctls and servers: root only,
 * said in one line even with every capability. */
SM_TEST(caps_demo_bench_need_root)
{
	const char *all = "+sys_admin,+net_admin,+bpf,+perfmon";
	struct capenv e;
	int ret = SM_FAIL;

	if (!cap_setup(&e)) {
		cap_teardown(&e);
		return ct_have_tool() ? SM_FAIL : SKIP("no .output/sockmig");
	}
	if (ASSERT_EQ(cap_run(&e, all, "demo"), 1, "demo") &&
	    ASSERT_EQ(ct_lines(e.err), 1, "one line") &&
	    ASSERT_TRUE(strstr(e.err, "Error: demo needs root") != NULL, "says root") &&
	    ASSERT_EQ(cap_run(&e, all, "bench"), 1, "bench") &&
	    ASSERT_EQ(ct_lines(e.err), 1, "one line") &&
	    ASSERT_TRUE(strstr(e.err, "Error: bench needs root") != NULL, "says root"))
		ret = SM_PASS;
	cap_teardown(&e);
	return ret;
}

/* The shim in a server of its own uid: CAP_BPF and CAP_PERFMON in the
 * server; without one, one line naming both, and the server serves on. */
SM_TEST(caps_shim)
{
	char cmd[1200], cwd[400];
	struct capenv e;
	pid_t srv = 0;
	int ret = SM_FAIL;

	if (!migrates())
		return SKIP("the kernel does not migrate");
	if (!cap_setup(&e) || !getcwd(cwd, sizeof(cwd))) {
		cap_teardown(&e);
		return ct_have_tool() ? SM_FAIL : SKIP("no .output/sockmig");
	}
	for (int i = 0; i < 3; i++) {
		const char *caps = i == 0 ? "+bpf,+perfmon" : i == 1 ? "+bpf" : "+perfmon";

		snprintf(cmd, sizeof(cmd),
			 "env LD_PRELOAD=%s/.output/libsockmig-preload.so "
			 "%s/.output/tests/servers/dynamic_server %d",
			 cwd, cwd, KPORT + i);
		srv = cap_spawn(&e, NOBODY, caps, cmd, i ? "srv2.log" : "srv.log");
		if (!ASSERT_TRUE(cap_wait_listen(KPORT + i, 3000), "the server listens"))
			goto out;
		/* the shim registers the listener after the real listen() */
		for (int t = 0; i == 0 && t < 300 && cap_groups(&e) < 1; t++)
			burst_sleep_ms(10);
		if (i == 0 && !ASSERT_EQ(cap_groups(&e), 1, "the shim registered it"))
			goto out;
		if (i > 0 &&
		    (!ASSERT_TRUE(cap_log_has(&e, "srv2.log", "inactive: no privilege", 2000),
				  "the shim says so") ||
		     !ASSERT_TRUE(
			     cap_log_has(&e, "srv2.log", i == 1 ? "CAP_PERFMON" : "CAP_BPF", 0),
			     "it names the capability") ||
		     !ASSERT_EQ(cap_groups(&e), 1, "no group of its own")))
			goto out;
		kill(-srv, SIGKILL);
		waitpid(srv, NULL, 0);
		srv = 0;
	}
	ret = SM_PASS;
out:
	if (srv > 0) {
		kill(-srv, SIGKILL);
		waitpid(srv, NULL, 0);
	}
	cap_teardown(&e);
	return ret;
}

/* ---- a UDP group in mode quic-lb with CAP_BPF and CAP_PERFMON only ---- */

#define QPORT (KPORT + 10)
#define QCL   12

/* Keep only @caps, effective and permitted (a forked child's). */
static bool only_caps(uint64_t caps)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2];

	memset(data, 0, sizeof(data));
	data[0].effective = data[0].permitted = (uint32_t)caps;
	data[1].effective = data[1].permitted = (uint32_t)(caps >> 32);
	return syscall(SYS_capset, &hdr, data) == 0;
}

/* This process keeps only @caps, its limit on locked memory lifted first
 * (as far as it may: up to the hard limit without CAP_SYS_RESOURCE). An
 * operator who grants the capabilities on a kernel that charges BPF memory
 * to RLIMIT_MEMLOCK (before 5.11) lifts it too (LimitMEMLOCK=infinity);
 * the limit has a case of its own below. */
static bool keep_only(uint64_t caps)
{
	struct rlimit r = {RLIM_INFINITY, RLIM_INFINITY};

	if (setrlimit(RLIMIT_MEMLOCK, &r) < 0 && getrlimit(RLIMIT_MEMLOCK, &r) == 0) {
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_MEMLOCK, &r);
	}
	return only_caps(caps);
}

/* In this process (a child's, its capabilities reduced): a quic-lb group
 * on 127.0.0.1:QPORT (encrypted CIDs when @key), two members, one
 * short-header datagram to the second's CID. 0 when the second got it. */
static int route_one_cid(const uint8_t *key)
{
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .mode = SOCKMIG_UDP_MODE_QUIC_LB,
		     .quic_cid_len = QCL, .quic_config_id = 1, .quic_key = key);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(QPORT)};
	struct sockmig_udp_group *g;
	uint8_t b[64] = {0x40};
	int fd[3] = {-1, -1, -1}, one = 1, rc = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &go);
	if (!g) {
		printf("udp_group_open: %s\n", sockmig_last_error());
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		fd[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd[i] < 0 || setsockopt(fd[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
		    bind(fd[i], (struct sockaddr *)&a, sizeof(a)) ||
		    sockmig_udp_member_add(g, fd[i], NULL) < 0) {
			printf("member %d: %s\n", i, sockmig_last_error());
			goto out;
		}
	}
	fd[2] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sockmig_quic_cid_encode(g, fd[1], b + 1, QCL) != QCL ||
	    sendto(fd[2], b, sizeof(b), 0, (struct sockaddr *)&a, sizeof(a)) != sizeof(b)) {
		printf("encode or send: %s\n", sockmig_last_error());
		goto out;
	}
	burst_sleep_ms(100);
	rc = recv(fd[1], b, sizeof(b), 0) == sizeof(b) ? 0 : 2;
	printf("%s CID: %s\n", key ? "encrypted" : "plaintext",
	       rc ? "not at the member it names" : "at the member it names");
out:
	for (int i = 0; i < 3; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	sockmig_udp_group_destroy(g);
	sockmig_udp_group_close(g);
	return rc;
}

/* A service given CAP_BPF and CAP_PERFMON (the plaintext program's
 * verifier needs CAP_PERFMON: pointer arithmetic; not CAP_NET_ADMIN, which
 * SIOCGSKNS needs: the library then takes the socket's network namespace
 * for its own, where it once refused every member) makes a
 * quic-lb group, plaintext and encrypted, and it routes: the encrypted
 * program needs nothing more than the plaintext one. Its stack offsets,
 * which without CAP_PERFMON must be constant, are checked apart
 * (test_udp_quic_enc_stack.c): with CAP_PERFMON the kernel allows both. */
SM_TEST(caps_udp_quic_lb_enc_as_plaintext)
{
	static const uint8_t key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	const uint64_t caps = 1ULL << CAP_BPF | 1ULL << CAP_PERFMON;

	if (!tu_kernel_has_cap_bpf())
		return SKIP("this kernel has no CAP_BPF or CAP_PERFMON (Linux 5.8): only "
			    "CAP_SYS_ADMIN loads BPF there");
	for (int enc = 0; enc < 2; enc++) {
		int st = -1;
		pid_t c;

		if (enc && !qs_enc_kernel()) {
			printf("encrypted: not on this kernel (Linux 5.11 needed)\n");
			break;
		}
		fflush(stdout);
		c = fork();
		if (c == 0)
			_exit(keep_only(caps) ? route_one_cid(enc ? key : NULL) : 3);
		if (!ASSERT_TRUE(c > 0 && waitpid(c, &st, 0) == c, "the child") ||
		    !ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0,
				 enc ? "encrypted: routed with the plaintext's capabilities"
				     : "plaintext: routed with CAP_BPF and CAP_PERFMON"))
			return SM_FAIL;
	}
	return SM_PASS;
}

/* In this process (a child's, its capabilities reduced): a flow group on
 * 127.0.0.1:QPORT + 1 and one member. 0 when the member is refused with
 * EPERM and a line that names CAP_PERFMON. */
static int refused_naming(const char *cap)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(QPORT + 1)};
	struct sockmig_udp_group *g;
	int fd, one = 1, rc = 3, err;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
	if (!g) {
		printf("udp_group_open: %s\n", sockmig_last_error());
		return errno == EPERM && strstr(sockmig_last_error(), cap) ? 0 : 2;
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0 &&
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
		err = sockmig_udp_member_add(g, fd, NULL);
		printf("member_add: %d, %s\n", err, sockmig_last_error());
		rc = err == -EPERM && strstr(sockmig_last_error(), cap) ? 0 : 2;
	}
	if (fd >= 0)
		close(fd);
	sockmig_udp_group_destroy(g);
	sockmig_udp_group_close(g);
	return rc;
}

/* Without CAP_PERFMON the kernel refuses a UDP group's program (EACCES
 * from the verifier): the caller gets EPERM and a line naming what is
 * missing, as the TCP policy's does. */
SM_TEST(caps_udp_group_without_perfmon_names_it)
{
	/* before 5.8 there is no CAP_BPF: without CAP_SYS_ADMIN, refused
	 * naming it */
	bool bpf_caps = tu_kernel_has_cap_bpf();
	const uint64_t caps = (bpf_caps ? 1ULL << CAP_BPF : 0) | 1ULL << CAP_NET_ADMIN;
	const char *want = bpf_caps ? "CAP_PERFMON" : "CAP_SYS_ADMIN";
	int st = -1;
	pid_t c;

	fflush(stdout);
	c = fork();
	if (c == 0)
		_exit(keep_only(caps) ? refused_naming(want) : 3);
	return ASSERT_TRUE(c > 0 && waitpid(c, &st, 0) == c, "the child") &&
			       ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0,
					   bpf_caps ? "refused with EPERM, naming CAP_PERFMON"
						    : "refused with EPERM, naming CAP_SYS_ADMIN")
		       ? SM_PASS
		       : SM_FAIL;
}

/* Linux before 5.11, by its release (not the library's own test): BPF
 * memory is then charged to RLIMIT_MEMLOCK, not to the cgroup. */
static bool memlock_kernel(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return false;
	return major < 5 || (major == 5 && minor < 11);
}

/* Whether the last error is EPERM naming RLIMIT_MEMLOCK (@refused), else
 * 0 for success; printed. 0 when as expected. */
static int memlock_expect(const char *what, bool ok, bool refused)
{
	int err = errno;

	printf("%s: %s%s\n", what, ok ? "made" : "refused: ", ok ? "" : sockmig_last_error());
	if (refused)
		return !ok && err == EPERM && strstr(sockmig_last_error(), "RLIMIT_MEMLOCK") &&
				       strstr(sockmig_last_error(), "64 KiB")
			       ? 0
			       : 2;
	return ok ? 0 : 2;
}

/* In this process (a child's): RLIMIT_MEMLOCK 64 KiB, then the
 * capabilities of an operator who gave CAP_BPF, CAP_NET_ADMIN and
 * CAP_PERFMON but not CAP_SYS_RESOURCE (libbpf cannot lift the limit). A
 * UDP group with a member, and a TCP group: 0 when both are refused with
 * EPERM naming the limit (@refused), or both are made. */
static int memlock_child(bool refused)
{
	/* before 5.8, CAP_SYS_ADMIN in their place */
	const uint64_t caps =
		tu_kernel_has_cap_bpf()
			? 1ULL << CAP_BPF | 1ULL << CAP_NET_ADMIN | 1ULL << CAP_PERFMON
			: 1ULL << CAP_SYS_ADMIN | 1ULL << CAP_NET_ADMIN;
	struct rlimit small = {64 * 1024, 64 * 1024};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(QPORT + 2)};
	struct sockmig_udp_group *u;
	struct sockmig_group *t = NULL;
	int fd[2] = {-1, -1}, one = 1, rc, err = 0;

	if (setrlimit(RLIMIT_MEMLOCK, &small) < 0 || !only_caps(caps))
		return 3;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	u = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
	fd[0] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u && (fd[0] < 0 || setsockopt(fd[0], SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
		  bind(fd[0], (struct sockaddr *)&a, sizeof(a))))
		return 4;
	if (u)
		err = sockmig_udp_member_add(u, fd[0], NULL);
	if (err)
		errno = -err;
	rc = memlock_expect("UDP group", u && !err, refused);
	if (u) {
		sockmig_udp_group_destroy(u);
		sockmig_udp_group_close(u);
	}
	fd[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd[1] < 0 || setsockopt(fd[1], SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd[1], (struct sockaddr *)&a, sizeof(a)) || listen(fd[1], 16))
		return 4;
	t = sockmig_group_open(fd[1], NULL);
	rc |= memlock_expect("TCP group", t != NULL, refused);
	if (t) {
		sockmig_group_destroy(t);
		sockmig_group_close(t);
	}
	return rc;
}

/* A kernel before 5.11 charges BPF memory to RLIMIT_MEMLOCK. With the
 * capabilities but a 64 KiB limit (a login's default) and no
 * CAP_SYS_RESOURCE to lift it, the programs' load fails with EPERM, and
 * the line names the limit, not the capabilities the caller has. From
 * 5.11 the limit does not matter and both groups are made. */
SM_TEST(caps_memlock_limit_named_before_5_11)
{
	bool refused = memlock_kernel();
	int st = -1;
	pid_t c;

	printf("%s\n", refused ? "Linux before 5.11: refused, naming RLIMIT_MEMLOCK"
			       : "Linux 5.11 or later: made");
	fflush(stdout);
	c = fork();
	if (c == 0)
		_exit(memlock_child(refused));
	return ASSERT_TRUE(c > 0 && waitpid(c, &st, 0) == c, "the child") &&
			       ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0,
					   refused ? "refused with EPERM, naming RLIMIT_MEMLOCK"
						   : "both groups made")
		       ? SM_PASS
		       : SM_FAIL;
}
