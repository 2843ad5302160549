// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups for the operator: sockmig status (columns and JSON) shows the
 * UDP groups of its network namespace after the TCP ones, their mode,
 * working generation, members, flows per generation and counters, and
 * --port and --addr filter them; sockmig_udp_group_list() and
 * sockmig_udp_group_open_name() (lib/udp_list.c) list and open them by
 * network namespace. The rig is tests/udp_rig.c; each case in its own
 * network namespace.
 */
#include <arpa/inet.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"
#include "harness.h"
#include "sockmig.h"
#include "statustest.h"
#include "udp_rig.h"

#define OLD_FLOWS 30 /* first answered by generation 1 */
#define NEW_FLOWS 20 /* first answered by generation 2, after the flip */
#define OUT_LEN	  32768

/* The UDP group's line of `sockmig status`, with its two indented lines:
 * generation 1's OLD_FLOWS hits after the flip went to an old generation. */
static bool check_columns(const char *out, struct ur_rig *r)
{
	char want[512];
	const char *p;

	snprintf(want, sizeof(want),
		 "udp4 127.0.0.1:%d netns %llu: 2 members, sockmig UDP group %s (mode flow, "
		 "working generation 2, idle timeout 30s, flow table 65536)\n"
		 "  generation 1: 1 member, %d flows; generation 2: 1 member, %d flows\n"
		 "  new_flows=%d flow_hits=%d fallbacks=0 expired=0 stateless=0 kernel_hash=0 "
		 "not_learned=0 parse_failed=0 old_generation=%d quic_new_connections=0\n",
		 UR_PORT, (unsigned long long)sockmig_netns_self(), sockmig_udp_group_name(r->g),
		 OLD_FLOWS, NEW_FLOWS, OLD_FLOWS + NEW_FLOWS, OLD_FLOWS, OLD_FLOWS);
	if (!ASSERT_TRUE(strstr(out, want) != NULL, "the UDP group's heading lines")) {
		printf("expected:\n%s", want);
		return false;
	}
	/* the members: generation 1 draining, generation 2 active, in slot order */
	for (int k = 0; k < 2; k++) {
		char proc[128], local[64], role[16], cookie[32];
		unsigned gen;

		snprintf(proc, sizeof(proc), "test_sockmig(pid=%d,slot=%d)", (int)getpid(), k);
		p = strstr(out, proc);
		if (!ASSERT_TRUE(p != NULL, "a member's row"))
			return false;
		while (p > out && p[-1] != '\n')
			p--;
		if (!ASSERT_EQ(sscanf(p, "- - %63s %31s %15s %u", local, cookie, role, &gen), 4,
			       "the row's cells") ||
		    !ASSERT_TRUE(strcmp(local, "127.0.0.1:34600") == 0, "Local Address:Port") ||
		    !ASSERT_EQ(strtoull(cookie, NULL, 10), sockmig_cookie(r->srv[k]), "Cookie") ||
		    !ASSERT_TRUE(strcmp(role, k ? "active" : "draining") == 0, "Role") ||
		    !ASSERT_EQ(gen, k + 1, "Gen"))
			return false;
	}
	return true;
}

/* The UDP group's object of `sockmig -j status`, exactly. */
static bool check_json(const char *out, struct ur_rig *r)
{
	char *check = malloc(4096);
	bool ok;

	if (!check)
		return false;
	snprintf(check, 4096,
		 "[(g['family'], g['addr'], g['port'], g['local'], g['netns'], "
		 "g['sockmig_group'], g['pinned'], g['sockmig_state'], g['mode'], "
		 "g['working_generation'], g['idle_timeout_ms'], g['flow_max'], g['n_working'], "
		 "g['n_active'], g['nmembers'], "
		 "[(m['cookie'], m['slot'], m['generation'], m['role'], m['pid']) "
		 "for m in g['members']], "
		 "[(x['generation'], x['members'], x['flows']) for x in g['generations']], "
		 "g['counters'], g['quic']) for g in j if g['family'].startswith('udp')] == "
		 "[('udp4', '127.0.0.1', %d, '127.0.0.1:%d', %llu, '%s', True, 'readable', "
		 "'flow', 2, 30000, 65536, 1, 1, 2, "
		 "[(%llu, 0, 1, 'draining', %d), (%llu, 1, 2, 'active', %d)], "
		 "[(1, 1, %d), (2, 1, %d)], "
		 "dict(new_flows=%d, flow_hits=%d, fallbacks=0, expired=0, stateless=0, "
		 "kernel_hash=0, not_learned=0, parse_failed=0, old_generation=%d, "
		 "quic_new_connections=0), None)]",
		 UR_PORT, UR_PORT, (unsigned long long)sockmig_netns_self(),
		 sockmig_udp_group_name(r->g), (unsigned long long)sockmig_cookie(r->srv[0]),
		 (int)getpid(), (unsigned long long)sockmig_cookie(r->srv[1]), (int)getpid(),
		 OLD_FLOWS, NEW_FLOWS, OLD_FLOWS + NEW_FLOWS, OLD_FLOWS, OLD_FLOWS);
	ok = ct_json_check(out, check);
	if (!ok)
		printf("the JSON does not hold:\n%s\n", check);
	free(check);
	return ASSERT_TRUE(ok, "the UDP group's JSON");
}

/* `sockmig ARGS` as uid NOBODY: its exit status (126: it could not be
 * run so, 100: it wrote on stderr), its stdout into @out. */
static int run_unprivileged(const char *args, char *out, size_t len)
{
	char *shm = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int status = -1;
	pid_t pid;

	out[0] = '\0';
	if (shm == MAP_FAILED)
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		char err[4096];
		int rc;

		if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
			_exit(126);
		rc = ct_run(args, shm, len, err, sizeof(err));
		fflush(stdout);
		_exit(err[0] && rc != 126 && rc != 127 ? 100 : rc);
	}
	if (pid > 0 && waitpid(pid, &status, 0) == pid)
		snprintf(out, len, "%s", shm);
	munmap(shm, len);
	return pid > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A UDP group with two generations (1 drained, 2 working) and flows of
 * both: status shows it, exactly, and only where --port and --addr match;
 * before the group, status shows no UDP group, nor to another user after. */
SM_TEST(status_udp_groups_shown)
{
	char *out = malloc(OUT_LEN), err[4096], args[64];
	int ret = SM_FAIL, rc, tcp[2] = {-1, -1};
	bool started = false;
	struct ur_rig r;

	if (!out)
		return SM_FAIL;
	if (!ct_have_tool()) {
		free(out);
		return SKIP("no .output/sockmig (run make all from the repository's root)");
	}
	/* baseline: no UDP group, nothing of UDP */
	if (!ASSERT_EQ(ct_run("-j status", out, OUT_LEN, err, sizeof(err)), 0, "exit status") ||
	    !ASSERT_TRUE(strcmp(out, "[]\n") == 0, "no group at all") ||
	    !ASSERT_EQ(ct_run("status", out, OUT_LEN, err, sizeof(err)), 0, "exit status") ||
	    !ASSERT_EQ(ct_lines(out), 1, "the header alone"))
		goto out;

	started = true;
	if (!ASSERT_OK(UR_START(OLD_FLOWS + NEW_FLOWS, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 0),
		       "rig") ||
	    !ASSERT_OK(ur_two_generations(&r, OLD_FLOWS, NEW_FLOWS), "two generations"))
		goto out;
	/* a TCP group too: shown first, as before */
	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(tcp[i] = st_listener(AF_INET, P_GROUP, true, 16), "TCP listener"))
			goto out;

	if (!ASSERT_EQ(ct_run("status", out, OUT_LEN, err, sizeof(err)), 0, "exit status") ||
	    !ASSERT_EQ(strlen(err), 0, "stderr") || !ASSERT_EQ(ct_lines(out), 10, "lines") ||
	    !ASSERT_TRUE(strstr(out, "\ntcp4 127.0.0.1:32100 ") != NULL &&
				 strstr(out, "\ntcp4 ") < strstr(out, "\nudp4 "),
			 "the TCP group first") ||
	    !check_columns(out, &r))
		goto out;
	if (!ASSERT_EQ(ct_run("-j status", out, OUT_LEN, err, sizeof(err)), 0, "exit status") ||
	    !ASSERT_EQ(strlen(err), 0, "stderr") || !check_json(out, &r) ||
	    !ASSERT_TRUE(ct_json_check(out,
				       "[(g['family'], g['port'], g['nmembers']) for g in j] == "
				       "[('tcp4', 32100, 2), ('udp4', 34600, 2)]"),
			 "the TCP group first, then the UDP group"))
		goto out;

	/* as another user: the TCP group, no UDP group (its pins are root's),
	 * no error */
	rc = run_unprivileged("-j status", out, OUT_LEN);
	if (rc == 126 || rc == 127) {
		ret = SKIP("uid %d cannot run .output/sockmig", NOBODY);
		goto out;
	}
	if (!ASSERT_EQ(rc, 0, "exit status as another user") ||
	    !ASSERT_TRUE(ct_json_check(out, "[g['family'] for g in j] == ['tcp4']"),
			 "the TCP group alone as another user"))
		goto out;

	/* the filters: its port and address show it, others do not */
	snprintf(args, sizeof(args), "-j status --port %d --addr 127.0.0.1", UR_PORT);
	if (!ASSERT_EQ(ct_run(args, out, OUT_LEN, err, sizeof(err)), 0, "exit status") ||
	    !check_json(out, &r))
		goto out;
	snprintf(args, sizeof(args), "-j status --port %d", UR_PORT + 1);
	if (!ASSERT_EQ(ct_run(args, out, OUT_LEN, err, sizeof(err)), 0, "exit status") ||
	    !ASSERT_TRUE(strcmp(out, "[]\n") == 0, "another port"))
		goto out;
	snprintf(args, sizeof(args), "status --port %d --addr ::1", UR_PORT);
	if (!ASSERT_EQ(ct_run(args, out, OUT_LEN, err, sizeof(err)), 0, "exit status") ||
	    !ASSERT_EQ(ct_lines(out), 1, "another address: the header alone"))
		goto out;
	ret = SM_PASS;
out:
	if (started)
		ur_stop(&r);
	for (int i = 0; i < 2; i++)
		if (tcp[i] >= 0)
			close(tcp[i]);
	free(out);
	return ret;
}

/* What sockmig_udp_group_list() says of port @port in network namespace
 * @netns: 0 when it is exactly @name (NULL: nothing), else -1. */
static int listed_exactly(uint64_t netns, int port, const char *name)
{
	struct sockmig_group_id ids[4];
	int n = sockmig_udp_group_list(NULL, netns, port, ids, 4);

	if (n != (name ? 1 : 0)) {
		printf("netns %llu port %d: %d UDP groups listed\n", (unsigned long long)netns,
		       port, n);
		return -1;
	}
	if (name &&
	    (strcmp(ids[0].name, name) != 0 || ids[0].netns != netns || ids[0].port != port ||
	     ids[0].family != AF_INET || ids[0].addr.v4.s_addr != htonl(INADDR_LOOPBACK))) {
		printf("listed %s (netns %llu, port %u), not %s\n", ids[0].name,
		       (unsigned long long)ids[0].netns, ids[0].port, name);
		return -1;
	}
	return 0;
}

/* Two network namespaces with a UDP group on the same address and port:
 * each lists its own only, both open by name from either, and TCP groups
 * and UDP groups never list each other; bad names are refused. */
SM_TEST(status_udp_group_list_by_netns)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(UR_PORT + 2),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockmig_udp_group *g = NULL, *og = NULL, *bad;
	struct sockmig_group *tg = NULL;
	struct sockmig_group_id tcp_ids[2];
	uint64_t self = sockmig_netns_self(), other = 0, gone;
	char other_name[SOCKMIG_NAME_MAX] = "", tcp_name[SOCKMIG_NAME_MAX];
	int ret = SM_FAIL, status = -1, p[2] = {-1, -1}, tcp = -1, one = 1, rc;
	pid_t pid;

	/* baseline: none here yet */
	if (!ASSERT_OK(listed_exactly(self, UR_PORT + 2, NULL), "none before") ||
	    !ASSERT_OK(pipe(p), "pipe"))
		goto out;
	pid = fork();
	if (pid == 0) {
		uint64_t ns;
		int rc = 1;

		close(p[0]);
		if (unshare(CLONE_NEWNET) == 0) {
			ns = sockmig_netns_self();
			og = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
			/* the child's namespace lists its own group, alone */
			if (og &&
			    listed_exactly(ns, UR_PORT + 2, sockmig_udp_group_name(og)) == 0 &&
			    write(p[1], &ns, sizeof(ns)) == sizeof(ns))
				rc = 0;
			sockmig_udp_group_close(og); /* the pins stay for the parent */
		}
		_exit(rc);
	}
	close(p[1]);
	p[1] = -1;
	if (!ASSERT_TRUE(pid > 0 && waitpid(pid, &status, 0) == pid, "child") ||
	    !ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's list") ||
	    !ASSERT_EQ(read(p[0], &other, sizeof(other)), sizeof(other), "the child's netns") ||
	    !ASSERT_TRUE(other != self, "two namespaces"))
		goto out;
	snprintf(other_name, sizeof(other_name), "%llu-udp4-127_0_0_1-%d",
		 (unsigned long long)other, UR_PORT + 2);
	/* the other's group is not ours: here still none */
	if (!ASSERT_OK(listed_exactly(self, UR_PORT + 2, NULL), "the other's is not listed here") ||
	    !ASSERT_OK(listed_exactly(other, UR_PORT + 2, other_name), "the other's, by its netns"))
		goto out;
	g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(listed_exactly(self, UR_PORT + 2, sockmig_udp_group_name(g)), "ours") ||
	    !ASSERT_OK(listed_exactly(other, UR_PORT + 2, other_name), "the other's, still") ||
	    !ASSERT_OK(listed_exactly(self, UR_PORT + 3, NULL), "another port"))
		goto out;

	/* a TCP group of the same port: in neither list of the other kind */
	tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!ASSERT_TRUE(tcp >= 0, "tcp socket") ||
	    !ASSERT_OK(setsockopt(tcp, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), "reuseport") ||
	    !ASSERT_OK(bind(tcp, (struct sockaddr *)&a, sizeof(a)), "bind") ||
	    !ASSERT_OK(listen(tcp, 8), "listen"))
		goto out;
	tg = sockmig_group_open(tcp, NULL);
	if (!ASSERT_TRUE(tg, sockmig_last_error()) ||
	    !ASSERT_OK(listed_exactly(self, UR_PORT + 2, sockmig_udp_group_name(g)), "UDP only") ||
	    !ASSERT_EQ(sockmig_group_list_ids(NULL, self, UR_PORT + 2, tcp_ids, 2), 1,
		       "TCP groups of the port"))
		goto out;
	snprintf(tcp_name, sizeof(tcp_name), "%s", sockmig_group_name(tg));
	if (!ASSERT_TRUE(strcmp(tcp_ids[0].name, tcp_name) == 0, "the TCP group"))
		goto out;

	/* open by name: the other namespace's too, its mode as made */
	og = sockmig_udp_group_open_name(other_name, NULL);
	if (!ASSERT_TRUE(og, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_udp_group_mode(og), SOCKMIG_UDP_MODE_FLOW, "its mode") ||
	    !ASSERT_EQ(sockmig_udp_members(og, NULL, 0), 0, "its members") ||
	    !ASSERT_TRUE(strcmp(sockmig_udp_group_name(og), other_name) == 0, "its name"))
		goto out;
	/* bad names: not a UDP group name, a TCP group's, none pinned */
	for (int i = 0; i < 4; i++) {
		const char *name = (const char *[]){"bogus", tcp_name, "1-udp4-127_0_0_1-0",
						    "1-udp4-127_0_0_1-34603"}[i];
		int want = i < 3 ? EINVAL : ENOENT;

		bad = sockmig_udp_group_open_name(name, NULL);
		if (!ASSERT_TRUE(!bad, name) || !ASSERT_EQ(errno, want, name))
			goto out;
	}
	rc = sockmig_udp_group_destroy(og);
	sockmig_udp_group_close(og);
	og = NULL;
	gone = other;
	other = 0;
	if (!ASSERT_OK(rc, "destroy the other's") ||
	    !ASSERT_OK(listed_exactly(gone, UR_PORT + 2, NULL), "the other's gone"))
		goto out;
	ret = SM_PASS;
out:
	if (og) {
		sockmig_udp_group_destroy(og);
		sockmig_udp_group_close(og);
	} else if (other) {
		og = sockmig_udp_group_open_name(other_name, NULL);
		if (og)
			sockmig_udp_group_destroy(og);
		sockmig_udp_group_close(og);
	}
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
	if (tg) {
		sockmig_group_destroy(tg);
		sockmig_group_close(tg);
	}
	if (tcp >= 0)
		close(tcp);
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
	return ret;
}

/* Mode quic-lb: status shows the mode and its CID counters; 5 datagrams
 * without a CID of the group's config are "other" (and flows as in mode
 * flow). */
SM_TEST(status_udp_quic_lb_counters)
{
	char *out = malloc(OUT_LEN), err[4096], check[512], line[256];
	int ret = SM_FAIL;
	bool started = false;
	struct ur_rig r;

	if (!out)
		return SM_FAIL;
	if (!ct_have_tool()) {
		free(out);
		return SKIP("no .output/sockmig (run make all from the repository's root)");
	}
	started = true;
	if (!ASSERT_OK(UR_START(5, &r, AF_INET, true, SOCKMIG_UDP_MODE_QUIC_LB, 0), "rig") ||
	    !ASSERT_EQ(ur_add(&r, 1), 0, "generation 1") ||
	    !ASSERT_OK(ur_round(&r, 0, 5, 1), "5 flows") || !ASSERT_EQ(r.lost, 0, "unanswered"))
		goto out;
	snprintf(check, sizeof(check),
		 "[(g['mode'], g['working_generation'], g['counters']['new_flows'], g['quic']) "
		 "for g in j] == [('quic-lb', 1, 5, dict(hits=0, stale=0, other=5))]");
	if (!ASSERT_EQ(ct_run("-j status", out, OUT_LEN, err, sizeof(err)), 0, "exit status") ||
	    !ASSERT_TRUE(ct_json_check(out, check), "the quic-lb group's JSON"))
		goto out;
	snprintf(line, sizeof(line),
		 "parse_failed=0 old_generation=0 quic_new_connections=0 quic_hits=0 quic_stale=0 "
		 "quic_other=5\n"
		 "-      -      127.0.0.1:%d ",
		 UR_PORT);
	if (!ASSERT_EQ(ct_run("status", out, OUT_LEN, err, sizeof(err)), 0, "exit status") ||
	    !ASSERT_TRUE(strstr(out, "(mode quic-lb, working generation 1, idle timeout 30s, flow "
				     "table 65536)\n") != NULL,
			 "mode") ||
	    !ASSERT_TRUE(strstr(out, line) != NULL, "the quic-lb counters"))
		goto out;
	ret = SM_PASS;
out:
	if (started)
		ur_stop(&r);
	free(out);
	return ret;
}

/* ---- sockmig watch ---------------------------------------------------- */

/* The number after "KEY": in JSON line @line, or -1. */
static long long json_num(const char *line, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\":", key);
	p = strstr(line, k);
	return p ? strtoll(p + strlen(k), NULL, 10) : -1;
}

static const char *const udp_keys[] = {"new_flows",   "flow_hits",    "fallbacks",
				       "expired",     "stateless",    "kernel_hash",
				       "not_learned", "parse_failed", "old_generation"};
#define NKEYS (int)(sizeof(udp_keys) / sizeof(udp_keys[0]))

struct watch_run {
	pid_t pid;
	int fd; /* its stdout */
	char buf[65536];
	size_t len;    /* read into buf */
	size_t parsed; /* lines of buf summed */
	long long sum[NKEYS];
	int udp_lines, start_udp, totals;
};

/* Read what watch wrote within @ms, and sum its UDP group's lines. */
static void watch_read(struct watch_run *w, int ms)
{
	struct pollfd pf = {.fd = w->fd, .events = POLLIN};
	ssize_t n;

	if (poll(&pf, 1, ms) > 0 && w->len < sizeof(w->buf) - 1) {
		n = read(w->fd, w->buf + w->len, sizeof(w->buf) - 1 - w->len);
		if (n > 0)
			w->len += (size_t)n;
	}
	w->buf[w->len] = '\0';
	for (char *nl; (nl = strchr(w->buf + w->parsed, '\n'));
	     w->parsed = (size_t)(nl - w->buf) + 1) {
		char line[1024];

		snprintf(line, sizeof(line), "%.*s", (int)(nl - (w->buf + w->parsed)),
			 w->buf + w->parsed);
		if (strstr(line, "\"event\":\"start\""))
			w->start_udp = (int)json_num(line, "udp_groups");
		if (strstr(line, "\"event\":\"total\""))
			w->totals++;
		if (!strstr(line, "\"family\":\"udp4\""))
			continue;
		w->udp_lines++;
		for (int k = 0; k < NKEYS; k++)
			w->sum[k] += json_num(line, udp_keys[k]);
	}
}

/* watch's lines of a UDP group add up, exactly, to the datagrams of the
 * flows sent while it watched: 5 new flows, 10 datagrams of known flows;
 * its start counts one UDP group and nothing sent before. */
SM_TEST(status_udp_watch_counts)
{
	static const long long want[NKEYS] = {5, 10, 0, 0, 0, 0, 0, 0, 0};
	struct watch_run *w = calloc(1, sizeof(*w));
	int ret = SM_FAIL, p[2] = {-1, -1}, status = -1;
	bool started = false;
	struct ur_rig r;
	uint64_t end;

	if (!w)
		return SM_FAIL;
	w->pid = -1;
	w->fd = -1;
	w->start_udp = -1;
	if (!ct_have_tool()) {
		free(w);
		return SKIP("no .output/sockmig (run make all from the repository's root)");
	}
	started = true;
	if (!ASSERT_OK(UR_START(15, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 0), "rig") ||
	    !ASSERT_EQ(ur_add(&r, 1), 0, "generation 1") ||
	    !ASSERT_OK(ur_round(&r, 0, 10, 1), "10 flows before the watch") ||
	    !ASSERT_EQ(r.lost, 0, "unanswered") || !ASSERT_OK(pipe(p), "pipe"))
		goto out;
	fflush(stdout);
	w->pid = fork();
	if (w->pid == 0) {
		char port[16];

		snprintf(port, sizeof(port), "%d", UR_PORT);
		dup2(p[1], STDOUT_FILENO);
		close(p[0]);
		close(p[1]);
		execl(ct_tool, ct_tool, "-j", "watch", "--port", port, "--interval", "20",
		      (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	p[1] = -1;
	w->fd = p[0];
	p[0] = -1;
	if (!ASSERT_TRUE(w->pid > 0, "fork"))
		goto out;
	/* its start line: the counters are taken, from here on counted */
	end = ur_now_ms() + 10000;
	while (w->start_udp < 0 && ur_now_ms() < end)
		watch_read(w, 100);
	if (!ASSERT_EQ(w->start_udp, 1, "UDP groups at the start"))
		goto out;
	if (!ASSERT_OK(ur_round(&r, 0, 15, 2), "10 known flows, 5 new") ||
	    !ASSERT_EQ(r.lost, 0, "unanswered"))
		goto out;
	/* its lines reach the datagrams sent (bounded), then it stops */
	end = ur_now_ms() + 10000;
	while ((w->sum[0] < want[0] || w->sum[1] < want[1]) && ur_now_ms() < end)
		watch_read(w, 100);
	kill(w->pid, SIGINT);
	while (!w->totals && ur_now_ms() < end + 5000)
		watch_read(w, 100);
	if (!ASSERT_TRUE(waitpid(w->pid, &status, 0) == w->pid, "watch ends"))
		goto out;
	w->pid = -1;
	printf("sockmig -j watch:\n%s", w->buf);
	if (!ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status") ||
	    !ASSERT_EQ(w->totals, 1, "the total line") || !ASSERT_GT(w->udp_lines, 0, "UDP lines"))
		goto out;
	for (int k = 0; k < NKEYS; k++)
		if (!ASSERT_EQ(w->sum[k], want[k], udp_keys[k]))
			goto out;
	ret = SM_PASS;
out:
	if (w->pid > 0) {
		kill(w->pid, SIGKILL);
		waitpid(w->pid, NULL, 0);
	}
	if (w->fd >= 0)
		close(w->fd);
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
	if (started)
		ur_stop(&r);
	free(w);
	return ret;
}
