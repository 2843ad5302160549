// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The sockmig command's bench and its storm worker, run as an operator runs them. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"
#include "harness.h"
#include "util.h"

/* Does something listen on 127.0.0.1:@port? */
static bool answers(int port)
{
	struct sockaddr_storage ss;
	socklen_t len = burst_addr(AF_INET, port, &ss);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&ss, len) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

/*
 * The hidden worker of the bench's run strategy served forever once its
 * supervisor was gone. Its parent here is a child of the case, killed with
 * SIGKILL; the case is the subreaper that inherits the worker and reaps it.
 */
SM_TEST(storm_worker_exits_with_parent)
{
	char port[16];
	pid_t parent, worker = -1;
	int p[2], st, ret = SM_FAIL;
	unsigned long long end;

	if (!ct_have_tool())
		return SKIP("no .output/sockmig: run from the repository root");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0 || pipe(p) < 0)
		return SM_FAIL;
	snprintf(port, sizeof(port), "%d", CPORT + 1);
	parent = fork();
	if (parent == 0) {
		pid_t w = fork();

		if (w == 0) {
			execl(ct_tool, ct_tool, "__storm-worker", "4", port, (char *)NULL);
			_exit(127);
		}
		if (write(p[1], &w, sizeof(w)) != sizeof(w))
			_exit(1);
		pause();
		_exit(0);
	}
	close(p[1]);
	if (!ASSERT_EQ(read(p[0], &worker, sizeof(worker)), sizeof(worker), "the worker's pid"))
		goto out;
	end = burst_now_ms() + 2000;
	while (!answers(CPORT + 1) && burst_now_ms() < end)
		burst_sleep_ms(10);
	if (!ASSERT_TRUE(answers(CPORT + 1), "the worker serves"))
		goto out;
	kill(parent, SIGKILL);
	waitpid(parent, &st, 0);
	parent = -1;
	/* it stops as on SIGTERM: nothing to finish, it exits at once */
	end = burst_now_ms() + 3000;
	while (waitpid(worker, &st, WNOHANG) == 0 && burst_now_ms() < end)
		burst_sleep_ms(10);
	if (!ASSERT_EQ(kill(worker, 0), -1, "the worker has exited") ||
	    !ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit 0") ||
	    !ASSERT_TRUE(!answers(CPORT + 1), "nothing listens"))
		goto out;
	worker = -1;
	ret = SM_PASS;
out:
	if (parent > 0) {
		kill(parent, SIGKILL);
		waitpid(parent, NULL, 0);
	}
	if (worker > 0 && kill(worker, 0) == 0) {
		kill(worker, SIGKILL);
		waitpid(worker, NULL, 0);
	}
	close(p[0]);
	return ret;
}

/* Entries under @dir (-1: cannot read it). */
static int dir_entries(const char *dir)
{
	char cmd[256];
	FILE *f;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A %s 2>/dev/null | wc -l", dir);
	f = popen(cmd, "r");
	if (f) {
		if (fscanf(f, "%d", &n) != 1)
			n = -1;
		pclose(f);
	}
	return n;
}

/*
 * The bench's attach and shim strategies, tiny: a server that closes its
 * old listeners without warning, protected only by a `sockmig attach`
 * daemon, or by the preload shim. Every connection ok, every old listener
 * drained (no restart error), and nothing left behind: no pinned group, no
 * attach daemon, no pid file.
 */
SM_TEST(bench_attach_shim_zero_failed)
{
	char *out = malloc(65536), err[8192];
	int pins, rc, ret = SM_FAIL;

	if (!out)
		return SM_FAIL;
	if (!ct_have_tool()) {
		free(out);
		return SKIP("no .output/sockmig: run from the repository root");
	}
	pins = dir_entries("/sys/fs/bpf/sockmig");
	rc = ct_run(
		"--json bench -s attach,shim --conns 4000 --secs 4 --rate 2000 --restart-rate 20",
		out, 65536, err, sizeof(err));
	if (!ASSERT_EQ(rc, 0, "bench exit status") ||
	    !ASSERT_TRUE(ct_json_check(out, "[s['strategy'] for s in j['strategies']] == "
					    "['attach', 'shim']"),
			 "both strategies ran") ||
	    !ASSERT_TRUE(ct_json_check(out, "all(s['failed'] == 0 and s['connections'] == 4000 "
					    "for s in j['strategies'])"),
			 "0 failed of 4000 each") ||
	    !ASSERT_TRUE(ct_json_check(out, "all(s['restarts'] >= 20 and s['restart_errors'] == 0 "
					    "for s in j['strategies'])"),
			 "restarts, none in error") ||
	    !ASSERT_TRUE(ct_json_check(out, "all(s['drain_us']['n'] > 0 for s in j['strategies'])"),
			 "old listeners drained") ||
	    !ASSERT_TRUE(ct_json_check(out, "all(s['drain_us']['n'] + s.get('attach_unregistered', "
					    "0) == s['restarts'] for s in j['strategies'])"),
			 "every old listener drained (or never registered by attach)") ||
	    !ASSERT_EQ(dir_entries("/sys/fs/bpf/sockmig"), pins, "no pinned group left") ||
	    !ASSERT_EQ(system("pgrep -f 'sockmig attach --port 808[0] --foreground' >/dev/null"),
		       256, "no attach daemon left"))
		goto out;
	ret = SM_PASS;
out:
	free(out);
	return ret;
}

/*
 * bench cost reads the program's own cost from the kernel's BPF statistics:
 * its runs over the "on" phases (one per SYN), and in the migration step
 * one run per migrated child, exactly the children the policy counted.
 * Beside it, the two reference programs' phases: the empty one's runs, and
 * the select-only one's, none failed (its helper failing drops the SYN),
 * with the policy's difference to it.
 */
SM_TEST(bench_cost_reports_program_cost)
{
	char *out = malloc(65536), err[8192];
	int rc, ret = SM_FAIL;

	if (!out)
		return SM_FAIL;
	if (!ct_have_tool()) {
		free(out);
		return SKIP("no .output/sockmig: run from the repository root");
	}
	rc = ct_run("--json bench cost --phases 2 --phase-secs 1", out, 65536, err, sizeof(err));
	if (!ASSERT_EQ(rc, 0, "bench exit status") ||
	    !ASSERT_TRUE(ct_json_check(out, "j['policy_syn_runs'] > 1000 and "
					    "j['policy_ns_per_syn'] > 0"),
			 "runs and ns per SYN") ||
	    !ASSERT_TRUE(ct_json_check(out, "j['migrated'] >= 1500 and "
					    "j['policy_migration_runs'] == j['migrated'] and "
					    "j['policy_ns_per_migration'] > 0"),
			 "one run per migrated child") ||
	    !ASSERT_TRUE(ct_json_check(out, "j['empty_syn_runs'] > 1000 and "
					    "j['empty_ns_per_syn'] > 0"),
			 "the empty program's runs") ||
	    !ASSERT_TRUE(ct_json_check(out,
				       "j['select_syn_runs'] > 1000 and "
				       "j['select_ns_per_syn'] > 0 and j['select_failed'] == 0"),
			 "the select-only program's runs, every one steered") ||
	    !ASSERT_TRUE(ct_json_check(out, "abs(j['policy_above_select_ns_per_syn'] - "
					    "(j['policy_ns_per_syn'] - j['select_ns_per_syn'])) "
					    "< 0.01"),
			 "the policy above the select-only program"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		printf("stdout: %s\nstderr: %s\n", out, err);
	free(out);
	return ret;
}
