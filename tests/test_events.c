// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The event ring of a group: every drain through the library leaves a
 * record that outlives the member and its counters, and sockmig watch
 * reads them by sequence. Watch used to poll the members: it saw 3 of 20
 * generations drain and summed 117 migrations against the kernel's
 * 2,273. Here a reload storm of 20 generations must show 20 drains, and
 * watch's migrated totals must equal the kernel's TCPMigrateReqSuccess.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define EPORT	 32200
#define QUEUED	 25 /* children queued on each old generation at its drain */
#define STORM	 20
#define OVERFLOW (SOCKMIG_EVENT_RING + 44)

static char tool[512];

static bool have_tool(void)
{
	char cwd[256];

	if (!getcwd(cwd, sizeof(cwd)))
		return false;
	snprintf(tool, sizeof(tool), "%s/.output/sockmig", cwd);
	return access(tool, X_OK) == 0;
}

static struct sockmig_group *open_group(int fd)
{
	SOCKMIG_OPTS(sockmig_group_opts, go, .wake_targets = SOCKMIG_WAKE_NEVER,
		     .policy = SOCKMIG_POLICY_NATIVE);

	return sockmig_group_open(fd, &go);
}

static int add_member(struct sockmig_group *g, int fd, uint32_t gen)
{
	SOCKMIG_OPTS(sockmig_member_opts, o, .role = SOCKMIG_ROLE_ACTIVE, .generation = gen);

	return sockmig_member_add(g, fd, &o);
}

/*
 * One generation replaced: @queued clients wait in the accept queue of
 * *@old; a new listener of generation @gen joins; *@old is drained (its
 * queue migrates to the new one), leaves and closes; the new one serves
 * the clients and becomes *@old. 0, or -1 after a failed assertion.
 */
static int replace(struct sockmig_group *g, int *old, uint32_t gen, int queued)
{
	SOCKMIG_OPTS(sockmig_drain_opts, d, .deadline_ms = 2000);
	struct burst *c = queued ? calloc(1, sizeof(*c)) : NULL;
	int nl = burst_listener(AF_INET, EPORT, 1024, 0), served[1] = {0}, ret = -1;

	if (queued &&
	    (!ASSERT_TRUE(c, "memory") ||
	     !ASSERT_OK(burst_start(c, AF_INET, EPORT, queued, false), "clients") ||
	     !ASSERT_TRUE(burst_wait_queue(*old, queued, 3000), "queued on the old generation")))
		goto out;
	if (!ASSERT_OK(add_member(g, nl, gen), "new generation") ||
	    !ASSERT_OK(sockmig_member_drain(g, *old, &d, NULL), sockmig_last_error()) ||
	    !ASSERT_OK(sockmig_member_leave(g, *old), "old leaves"))
		goto out;
	close(*old);
	*old = nl;
	nl = -1;
	if (queued) {
		burst_serve(c, old, 1, served, 5000);
		if (!ASSERT_EQ(c->count[BURST_OK], queued, "every queued client served") ||
		    !ASSERT_EQ(served[0], queued, "by the new generation"))
			goto out;
	}
	ret = 0;
out:
	if (nl >= 0)
		close(nl);
	if (c) {
		burst_close(c);
		free(c);
	}
	return ret;
}

/* The library API: one record per drain, by sequence, with what the
 * member was and what it migrated; a legacy drain records one too; a
 * group made again has a new ring. */
SM_TEST(events_ring_records_every_drain)
{
	struct sockmig_event ev[8];
	struct sockmig_event_ring r0, r1, r2;
	struct sockmig_group *g = NULL;
	int l = burst_listener(AF_INET, EPORT, 1024, 0), ret = SM_FAIL, n;
	uint64_t cookies[3];

	g = open_group(l);
	if (!ASSERT_TRUE(g, sockmig_last_error()) || !ASSERT_OK(add_member(g, l, 1), "gen 1") ||
	    !ASSERT_OK(sockmig_group_event_ring(g, &r0), "ring") ||
	    !ASSERT_EQ(r0.head, 0, "no event before a drain") ||
	    !ASSERT_EQ(r0.capacity, SOCKMIG_EVENT_RING, "capacity") ||
	    !ASSERT_EQ(sockmig_group_events(g, 0, ev, 8), 0, "no events"))
		goto out;
	for (uint32_t gen = 2; gen <= 4; gen++) {
		cookies[gen - 2] = sockmig_cookie(l);
		if (replace(g, &l, gen, QUEUED) < 0)
			goto out;
	}
	n = sockmig_group_events(g, 0, ev, 8);
	if (!ASSERT_EQ(n, 3, "three drains"))
		goto out;
	for (int i = 0; i < n; i++) {
		printf("event %llu: cookie %llu gen %u role %u wait %llu ns duration %llu ns "
		       "migrated %llu\n",
		       (unsigned long long)ev[i].seq, (unsigned long long)ev[i].cookie,
		       ev[i].generation, ev[i].role, (unsigned long long)ev[i].wait_ns,
		       (unsigned long long)ev[i].duration_ns,
		       (unsigned long long)ev[i].migrated[SOCKMIG_KIND_ESTABLISHED]);
		if (!ASSERT_EQ(ev[i].seq, (uint64_t)i + 1, "seq") ||
		    !ASSERT_EQ(ev[i].type, SOCKMIG_EVENT_DRAIN, "native drain") ||
		    !ASSERT_EQ(ev[i].cookie, cookies[i], "cookie") ||
		    !ASSERT_EQ(ev[i].generation, (uint32_t)i + 1, "generation before the drain") ||
		    !ASSERT_EQ(ev[i].role, SOCKMIG_ROLE_ACTIVE, "role before the drain") ||
		    !ASSERT_EQ(ev[i].pid, (uint32_t)getpid(), "owner") ||
		    !ASSERT_EQ(ev[i].migrated[SOCKMIG_KIND_ESTABLISHED], QUEUED, "its queue") ||
		    !ASSERT_EQ(ev[i].inflight_left, 0, "nothing left in flight") ||
		    !ASSERT_TRUE(ev[i].duration_ns >= ev[i].wait_ns && ev[i].time_ns, "times"))
			goto out;
	}
	if (!ASSERT_EQ(sockmig_group_events(g, 2, ev + 4, 4), 1, "after seq 2: one") ||
	    !ASSERT_EQ(ev[4].seq, 3, "seq 3") ||
	    !ASSERT_EQ(sockmig_group_events(g, 0, ev + 4, 2), 2, "at most n") ||
	    !ASSERT_EQ(sockmig_group_events(g, 3, ev + 4, 4), 0, "none after the head") ||
	    !ASSERT_OK(sockmig_group_event_ring(g, &r1), "ring") ||
	    !ASSERT_EQ(r1.head, 3, "head") || !ASSERT_TRUE(r1.id != 0, "an id") ||
	    !ASSERT_EQ(r1.duration_sum_ns,
		       ev[0].duration_ns + ev[1].duration_ns + ev[2].duration_ns,
		       "the durations' sum") ||
	    !ASSERT_EQ(r1.duration_le[SOCKMIG_DRAIN_BUCKETS - 1], 3, "all within 5 s"))
		goto out;
	/* a legacy drain (on a native group: no shutdown, accept until empty) */
	{
		SOCKMIG_OPTS(sockmig_legacy_drain_opts, lo, .force = true, .deadline_ms = 500);
		int nl = burst_listener(AF_INET, EPORT, 1024, 0);

		if (!ASSERT_OK(add_member(g, nl, 5), "gen 5") ||
		    !ASSERT_OK(sockmig_member_drain_legacy(g, l, &lo, NULL),
			       sockmig_last_error()) ||
		    !ASSERT_EQ(sockmig_group_events(g, 3, ev, 8), 1, "one more") ||
		    !ASSERT_EQ(ev[0].type, SOCKMIG_EVENT_DRAIN_LEGACY, "legacy drain") ||
		    !ASSERT_EQ(ev[0].generation, 4, "its generation")) {
			close(nl);
			goto out;
		}
		sockmig_member_leave(g, l);
		close(l);
		l = nl;
	}
	/* the last member leaves: the group and its ring go; made again, a new ring */
	if (!ASSERT_OK(sockmig_member_leave(g, l), "last leaves"))
		goto out;
	sockmig_group_close(g);
	g = open_group(l);
	if (!ASSERT_TRUE(g, sockmig_last_error()) || !ASSERT_OK(add_member(g, l, 6), "gen 6") ||
	    replace(g, &l, 7, 0) < 0 || !ASSERT_OK(sockmig_group_event_ring(g, &r2), "ring") ||
	    !ASSERT_EQ(r2.head, 1, "seq started over") ||
	    !ASSERT_TRUE(r2.id != r1.id, "another ring"))
		goto out;
	ret = SM_PASS;
out:
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	close(l);
	return ret;
}

/* Start `sockmig -j watch ARGS` with stdout into @path; wait for its start line. */
static pid_t start_watch(const char *path, const char *interval)
{
	char port[16], line[256];
	pid_t pid;
	FILE *f;

	snprintf(port, sizeof(port), "%d", EPORT);
	pid = fork();
	if (pid == 0) {
		int o = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (o < 0 || dup2(o, STDOUT_FILENO) < 0)
			_exit(126);
		execl(tool, tool, "-j", "watch", "--port", port, "--interval", interval, NULL);
		_exit(127);
	}
	for (int i = 0; pid > 0 && i < 1000; i++) {
		f = fopen(path, "re");
		if (f) {
			bool started = fgets(line, sizeof(line), f) && strstr(line, "\"start\"");

			fclose(f);
			if (started)
				return pid;
		}
		burst_sleep_ms(10);
	}
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return -1;
}

/* SIGINT to watch; 0 when it exited 0. */
static int stop_watch(pid_t pid)
{
	int st = -1;

	kill(pid, SIGINT);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Does the python expression @check hold on watch's JSON lines in @path
 * (j: the list of objects; total: the last one, drains: the drain events)? */
static bool watch_check(const char *path, const char *check)
{
	char cmd[2048];
	int st;

	snprintf(cmd, sizeof(cmd),
		 "python3 -c 'import json, sys\n"
		 "j = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]\n"
		 "total = j[-1]\n"
		 "drains = [x for x in j if x.get(\"event\") == \"drain\"]\n"
		 "lost = [x for x in j if x.get(\"event\") == \"events-lost\"]\n"
		 "print(total, len(drains), lost)\n"
		 "sys.exit(0 if total.get(\"event\") == \"total\" and (%s) else 1)' %s",
		 check, path);
	st = system(cmd);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/*
 * A reload storm of STORM generations, each replaced with the library's
 * drain while QUEUED clients wait on it, under watch polling every 20 ms:
 * watch reports every drain, and its totals equal the kernel's
 * TCPMigrateReqSuccess over the storm, which is STORM * QUEUED.
 */
SM_TEST(watch_reload_storm_counts_every_drain)
{
	char path[64], check[512];
	struct sockmig_netstat ns0, ns1, d;
	struct sockmig_group *g = NULL;
	int l = burst_listener(AF_INET, EPORT, 1024, 0), ret = SM_FAIL;
	pid_t w = -1;

	if (!have_tool()) {
		close(l);
		return SKIP("no .output/sockmig: run from the repository root");
	}
	snprintf(path, sizeof(path), "/tmp/sockmig-watch-%d.out", (int)getpid());
	g = open_group(l);
	if (!ASSERT_TRUE(g, sockmig_last_error()) || !ASSERT_OK(add_member(g, l, 1), "gen 1") ||
	    !ASSERT_OK(sockmig_netstat_read(&ns0), "netstat"))
		goto out;
	w = start_watch(path, "20");
	if (!ASSERT_TRUE(w > 0, "watch started"))
		goto out;
	for (uint32_t gen = 2; gen <= STORM + 1; gen++)
		if (replace(g, &l, gen, QUEUED) < 0)
			goto out;
	if (!ASSERT_OK(sockmig_netstat_read(&ns1), "netstat"))
		goto out;
	sockmig_netstat_delta(&ns0, &ns1, &d);
	printf("kernel: TCPMigrateReqSuccess %llu, TCPMigrateReqFailure %llu\n",
	       (unsigned long long)d.migrate_success, (unsigned long long)d.migrate_failure);
	if (!ASSERT_EQ(d.migrate_success, (uint64_t)STORM * QUEUED, "the kernel's migrations") ||
	    !ASSERT_OK(stop_watch(w), "watch exits 0"))
		goto out;
	w = -1;
	snprintf(check, sizeof(check),
		 "len(drains) == %d and len(set(x[\"cookie\"] for x in drains)) == %d and "
		 "total[\"drains\"] == %d and total[\"lost\"] == 0 and not lost and "
		 "total[\"TCPMigrateReqSuccess\"] == %llu and total[\"migrated\"] == %llu and "
		 "sum(x[\"migrated\"] for x in drains) == %llu and "
		 "total[\"TCPMigrateReqFailure\"] == %llu",
		 STORM, STORM, STORM, (unsigned long long)d.migrate_success,
		 (unsigned long long)d.migrate_success, (unsigned long long)d.migrate_success,
		 (unsigned long long)d.migrate_failure);
	if (!ASSERT_TRUE(watch_check(path, check), "watch: every drain, the kernel's totals"))
		goto out;
	ret = SM_PASS;
out:
	if (w > 0)
		stop_watch(w);
	unlink(path);
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	close(l);
	return ret;
}

/*
 * More drains than the ring holds between two reads: the API returns the
 * newest SOCKMIG_EVENT_RING (the gap says how many went) and watch says
 * how many drains it lost.
 */
SM_TEST(watch_reports_event_ring_overflow)
{
	struct sockmig_event *ev = calloc(SOCKMIG_EVENT_RING + 1, sizeof(*ev));
	struct sockmig_group *g = NULL;
	int l = burst_listener(AF_INET, EPORT, 1024, 0), ret = SM_FAIL, n;
	char path[64], check[256];
	pid_t w = -1;

	if (!have_tool()) {
		free(ev);
		close(l);
		return SKIP("no .output/sockmig: run from the repository root");
	}
	snprintf(path, sizeof(path), "/tmp/sockmig-watch-%d.out", (int)getpid());
	g = open_group(l);
	if (!ev || !ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add_member(g, l, 1), "gen 1"))
		goto out;
	/* one read, at its end: every drain happens between two reads */
	w = start_watch(path, "3600000");
	if (!ASSERT_TRUE(w > 0, "watch started"))
		goto out;
	for (uint32_t gen = 2; gen <= OVERFLOW + 1; gen++)
		if (replace(g, &l, gen, 0) < 0)
			goto out;
	n = sockmig_group_events(g, 0, ev, SOCKMIG_EVENT_RING + 1);
	if (!ASSERT_EQ(n, SOCKMIG_EVENT_RING, "the ring's worth") ||
	    !ASSERT_EQ(ev[0].seq, OVERFLOW - SOCKMIG_EVENT_RING + 1, "the oldest kept") ||
	    !ASSERT_EQ(ev[n - 1].seq, OVERFLOW, "the newest") ||
	    !ASSERT_OK(stop_watch(w), "watch exits 0"))
		goto out;
	w = -1;
	snprintf(check, sizeof(check),
		 "len(drains) == %d and total[\"drains\"] == %d and total[\"lost\"] == %d and "
		 "len(lost) == 1 and lost[0][\"lost\"] == %d",
		 SOCKMIG_EVENT_RING, SOCKMIG_EVENT_RING, OVERFLOW - SOCKMIG_EVENT_RING,
		 OVERFLOW - SOCKMIG_EVENT_RING);
	if (!ASSERT_TRUE(watch_check(path, check), "watch says what it lost"))
		goto out;
	ret = SM_PASS;
out:
	if (w > 0)
		stop_watch(w);
	unlink(path);
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	close(l);
	free(ev);
	return ret;
}
