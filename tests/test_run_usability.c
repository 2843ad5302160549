// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig run for servers and operators (issue 10): a server without
 * SO_REUSEPORT, the first start's wording, reports that match the
 * kernel's counters, a crash loop's back-off, --help. The server is
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
	char why[200];
	int ret, rfd;
	pid_t lpid;

	/* without migration run hands its listener over from the start */
	if (!tu_kernel_migrates(why, sizeof(why)))
		return SKIP("%s: run hands its listener over from the start", why);
	setenv("TEST_NO_REUSEPORT", "1", 1);
	ret = rt_run_start(&re, extra);
	if (ret != SM_PASS) {
		rt_run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	/* --ready-timeout 2: it passes at 2 s, the load runs until 4.5 s */
	rfd = it_start_load(RPORT, re.reply, 4.0, &lpid);
	for (int i = 0; i < 2; i++) {
		burst_sleep_ms(1300);
		rt_wait_log(&re.e, "run.log", "ready in", i + 1, 5000); /* not merged */
		kill(re.run, SIGHUP);
	}
	if (!ASSERT_TRUE(it_finish_load(rfd, lpid, &r), "load result"))
		goto out;
	it_print_result("run, no SO_REUSEPORT", I_NONE, &r, 2);
	rt_wait_log(&re.e, "run.log", "ready in", 3, 5000);
	if (!ASSERT_GT(r.started, 1000, "connections") ||
	    !ASSERT_EQ(r.count[LG_REFUSED], 0, "refused") ||
	    !ASSERT_EQ(r.count[LG_RESET_BEFORE_REQUEST] + r.count[LG_RESET_AFTER_REQUEST], 0,
		       "reset") ||
	    !ASSERT_EQ(r.started - r.count[LG_OK], 0, "failed connections") ||
	    !ASSERT_TRUE(it_probe_reply(RPORT, 1000) > 0, "it still serves") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run.log",
				    "listener on 127.0.0.1:35000 has no SO_REUSEPORT, so no other "
				    "socket can share its port: run keeps it and hands it to every "
				    "generation (--handoff"),
		       1, "one line says so, and what run does") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run.log", "ready in"), 3, "generations ready") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run.log", "cannot run"), 0, "every start ran") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run.log", "exited (status 1)"), starts - 1,
		       "failed starts (EADDRINUSE next to the holder)") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run.log", "fail"), 0, "no failure") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run.log", "Error"), 0, "no error"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&re.e, "run.log");
	rt_run_stop(&re);
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
	char why[200];
	int ret = SM_FAIL, st;
	pid_t run;

	/* with the hand-off run cannot see whether the server listens */
	if (!tu_kernel_migrates(why, sizeof(why)))
		return SKIP("%s: run hands its listener over and cannot see a listen", why);
	if (!it_setup(&e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(port, sizeof(port), "%d", RPORT);
	run = rt_spawn_sockmig(&e, "run.log", args);
	st = tp_wait_exit(run, 4000);
	if (st == -1)
		tp_stop(run);
	if (ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit status 1") &&
	    ASSERT_EQ(it_log_count(&e, "run.log",
				   "server did not start listening on port 35000 within "),
		      1, "the first start's wording") &&
	    ASSERT_EQ(it_log_count(&e, "run.log", "reload"), 0, "no reload is mentioned") &&
	    ASSERT_EQ(it_log_count(&e, "run.log", "generation 0"), 0, "no generation 0") &&
	    ASSERT_EQ(it_log_count(&e, "run.log", "Error: "), 1, "one error line"))
		ret = SM_PASS;
	if (ret != SM_PASS)
		it_show_log(&e, "run.log");
	it_teardown(&e, RPORT);
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
	char why[200];
	int ret, rfd, lines, st, reloads = stop_start ? 10 : 20;
	pid_t lpid;

	if (sockmig_netstat_read(&n0) < 0)
		return SKIP("no TcpExt counters");
	/* without migration run hands its own listener over: nothing to sum */
	if (!tu_kernel_migrates(why, sizeof(why)))
		return SKIP("%s: run hands its own listener over, nothing migrates", why);
	/* every old generation leaves connections in its queue when it closes */
	setenv("TEST_ACCEPT_PAUSE_US", "20000", 1);
	ret = rt_run_start(&re, stop_start ? ss : overlap);
	if (ret != SM_PASS) {
		rt_run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	/* stopped 500 ms after the last generation is ready (60 s at most) */
	rfd = it_start_load(RPORT, re.reply, 60.0, &lpid);
	for (int i = 0; i < reloads; i++) {
		burst_sleep_ms(stop_start ? 400 : 200);
		/* run merges a SIGHUP that comes while a generation starts
		 * into its reload: one each after the last is ready */
		rt_wait_log(&re.e, "run.log", "ready in", i + 1, 5000);
		kill(re.run, SIGHUP);
	}
	rt_wait_log(&re.e, "run.log", "ready in", reloads + 1, 5000);
	burst_sleep_ms(500);
	it_stop_load(lpid);
	if (!ASSERT_TRUE(it_finish_load(rfd, lpid, &r), "load result"))
		goto out;
	it_print_result(stop_start ? "run --stop-start reports" : "run reports", I_NONE, &r,
			reloads);
	if (!ASSERT_TRUE(rt_wait_log(&re.e, "run.log", "ready in", reloads + 1, 5000),
			 "every generation ready"))
		goto out;
	kill(re.run, SIGTERM);
	st = tp_wait_exit(re.run, 5000);
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
	    !ASSERT_EQ(lines, reloads + 1, "one report per reload and one at the stop"))
		goto out;
	/* the old server's queue holds at most its 20 ms of pause: on a slow
	 * machine (emulated: tu_machine_too_slow() measures) the flip and the
	 * stop may take longer, the server empties its queue meanwhile and
	 * nothing migrates (5.15's QEMU guest: 0 in 21 reports, twice); the
	 * case then proves nothing, and skips saying so */
	if (d.migrate_success == 0 && tu_machine_too_slow(why, sizeof(why))) {
		ret = SKIP("nothing migrated in %d reloads (the reports say 0 too: %llu): %s",
			   reloads, sum, why);
		goto out;
	}
	if (!ASSERT_GT(d.migrate_success, 0, "connections migrated (else this proves nothing)") ||
	    !ASSERT_EQ(sum, d.migrate_success, "the reports add up to the kernel's count") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run.log", "failed"), 0,
		       "no 'failed' in normal output") ||
	    !ASSERT_EQ(it_log_count(&re.e, "run.log", "none rolled back"), 1, "the last line"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		it_show_log(&re.e, "run.log");
	rt_run_stop(&re);
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

	ret = rt_run_start(&re, NULL);
	if (ret != SM_PASS) {
		rt_run_stop(&re);
		return ret;
	}
	ret = SM_FAIL;
	snprintf(flag, sizeof(flag), "%s/crash", re.e.dir);
	fd = open(flag, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	burst_sleep_ms(2000);
	victim = tp_find_child(re.run);
	if (!ASSERT_GT(victim, 0, "found the server"))
		goto out;
	kill(victim, SIGKILL);
	/* 2 s up, then 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 3.2 s of back-off */
	if (!ASSERT_TRUE(rt_wait_log(&re.e, "run.log", "restarting in 5000 ms", 1, 28000),
			 "the back-off reaches 5 s"))
		goto out;
	for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
		snprintf(what, sizeof(what), "restarting in %s ms", delays[i]);
		if (!ASSERT_EQ(it_log_count(&re.e, "run.log", what), 1, what))
			goto out;
	}
	ret = SM_PASS;
out:
	unlink(flag);
	if (ret != SM_PASS)
		it_show_log(&re.e, "run.log");
	rt_run_stop(&re);
	return ret;
}

/* Issue 10, item 7: --help of run and reload lists every option, one line
 * each (with its short form when it has one), and the man page describes
 * each. */
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
		"--proto",
		"--help",
	};
	static const char *const reload_opts[] = {"--port", "--help"};
	char out[4096], cmd[256], want[64], want_long[64], man[65536];
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

			/* "  -x, --opt", or "      --opt" for a long option only */
			snprintf(want, sizeof(want), ", %s", opts[i]);
			snprintf(want_long, sizeof(want_long), "\n      %s", opts[i]);
			snprintf(mopt, sizeof(mopt), "\\-\\-%s", opts[i] + 2);
			for (char *q = mopt + 4; *q; q++)
				if (*q == '-') {
					memmove(q + 1, q, strlen(q) + 1);
					*q++ = '\\';
				}
			if (!ASSERT_TRUE(strstr(out, want) || strstr(out, want_long), want) ||
			    !ASSERT_TRUE(strstr(man, mopt) != NULL || i == n - 1, mopt)) {
				printf("%s", out);
				return SM_FAIL;
			}
		}
	}
	return SM_PASS;
}
