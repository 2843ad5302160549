// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig metrics for UDP groups: after two generations of the UDP rig
 * (tests/udp_rig.c) took their flows and the first was drained, every
 * UDP sample of `sockmig metrics` is the count the rig made, the
 * datagrams' outcomes add up to what the clients sent, and promtool
 * accepts the exposition. Before the group, no UDP sample at all.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clitest.h"
#include "harness.h"
#include "sockmig.h"
#include "udp_rig.h"

#define OLD_FLOWS 30 /* first answered by generation 1 */
#define NEW_FLOWS 20 /* first answered by generation 2, after the flip */
#define OUT_LEN	  65536

/* The line after the one at @p, or NULL. */
static const char *next_line(const char *p)
{
	p = strchr(p, '\n');
	return p && p[1] ? p + 1 : NULL;
}

/* The value of the sample that starts with @series (name and labels,
 * exactly), or -1 when there is none. */
static long long sample(const char *out, const char *series)
{
	size_t len = strlen(series);

	for (const char *p = out; p; p = next_line(p))
		if (strncmp(p, series, len) == 0 && p[len] == ' ')
			return strtoll(p + len + 1, NULL, 10);
	return -1;
}

/* Sample lines (not # lines) whose name starts with @prefix. */
static int samples(const char *out, const char *prefix)
{
	int n = 0;

	for (const char *p = out; p; p = next_line(p))
		n += strncmp(p, prefix, strlen(prefix)) == 0;
	return n;
}

struct want {
	const char *fmt; /* the series, %s: the group's labels */
	long long v;
};

SM_TEST(metrics_udp_groups_exact)
{
	char *out = malloc(OUT_LEN), err[4096], labels[160], series[512];
	int ret = SM_FAIL;
	bool started = false;
	struct ur_rig r;
	long long sum = 0;

	if (!out)
		return SM_FAIL;
	if (!ct_have_tool()) {
		free(out);
		return SKIP("no .output/sockmig (run make all from the repository's root)");
	}
	/* baseline: no UDP group, no UDP group's sample */
	if (!ASSERT_EQ(ct_run("metrics", out, OUT_LEN, err, sizeof(err)), 0, "exit status") ||
	    !ASSERT_EQ(samples(out, "sockmig_udp_"), 0, "no UDP group's sample") ||
	    !ASSERT_EQ(sample(out, "sockmig_kernel_udp_rcvbuf_errors_total"), 0,
		       "the namespace's UdpRcvbufErrors"))
		goto out;

	started = true;
	if (!ASSERT_OK(UR_START(OLD_FLOWS + NEW_FLOWS, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 0),
		       "rig") ||
	    !ASSERT_OK(ur_two_generations(&r, OLD_FLOWS, NEW_FLOWS), "two generations"))
		goto out;
	if (!ASSERT_EQ(ct_run("metrics", out, OUT_LEN, err, sizeof(err)), 0, "exit status") ||
	    !ASSERT_EQ(strlen(err), 0, "stderr"))
		goto out;
	snprintf(labels, sizeof(labels), "group=\"%s\",port=\"%d\"", sockmig_udp_group_name(r.g),
		 UR_PORT);
	{
		const struct want w[] = {
			{"sockmig_udp_group_info{%s,mode=\"flow\"}", 1},
			{"sockmig_udp_working_generation{%s}", 2},
			{"sockmig_udp_group_members{%s,role=\"active\"}", 1},
			{"sockmig_udp_group_members{%s,role=\"draining\"}", 1},
			{"sockmig_udp_flows{%s,generation=\"1\"}", OLD_FLOWS},
			{"sockmig_udp_flows{%s,generation=\"2\"}", NEW_FLOWS},
			{"sockmig_udp_flow_capacity{%s}", 65536},
			{"sockmig_udp_idle_timeout_seconds{%s}", 30},
			{"sockmig_udp_datagrams_total{%s,outcome=\"new_flow\"}",
			 OLD_FLOWS + NEW_FLOWS},
			{"sockmig_udp_datagrams_total{%s,outcome=\"flow_hit\"}", OLD_FLOWS},
			{"sockmig_udp_datagrams_total{%s,outcome=\"fallback\"}", 0},
			{"sockmig_udp_datagrams_total{%s,outcome=\"expired\"}", 0},
			{"sockmig_udp_datagrams_total{%s,outcome=\"stateless\"}", 0},
			{"sockmig_udp_datagrams_total{%s,outcome=\"kernel_hash\"}", 0},
			{"sockmig_udp_datagrams_total{%s,outcome=\"parse_failed\"}", 0},
			{"sockmig_udp_old_generation_datagrams_total{%s}", OLD_FLOWS},
			{"sockmig_udp_quic_new_connections_total{%s}", 0},
			{"sockmig_udp_not_learned_total{%s}", 0},
			{"sockmig_kernel_udp_rcvbuf_errors_total", 0},
		};

		for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
			snprintf(series, sizeof(series), w[i].fmt, labels);
			if (!ASSERT_EQ(sample(out, series), w[i].v, series))
				goto out;
		}
	}
	/* each member once, with its generation and role */
	for (int k = 0; k < 2; k++) {
		snprintf(series, sizeof(series),
			 "sockmig_udp_member_info{%s,member=\"%llu\",role=\"%s\",generation=\"%d\","
			 "pid=\"%d\"}",
			 labels, (unsigned long long)sockmig_cookie(r.srv[k]),
			 k ? "active" : "draining", k + 1, (int)getpid());
		if (!ASSERT_EQ(sample(out, series), 1, series))
			goto out;
	}
	/* every datagram under one outcome; mode flow has no quic_cid */
	for (const char *p = out; p; p = next_line(p)) {
		const char *sp = strchr(p, ' ');

		if (strncmp(p, "sockmig_udp_datagrams_total{", 28) == 0 && sp)
			sum += strtoll(sp + 1, NULL, 10);
	}
	if (!ASSERT_EQ(sum, r.sent, "the outcomes add up to the datagrams sent") ||
	    !ASSERT_EQ(r.sent, 2 * OLD_FLOWS + NEW_FLOWS, "datagrams sent") ||
	    !ASSERT_EQ(samples(out, "sockmig_udp_datagrams_total{"), 7, "outcomes of mode flow") ||
	    !ASSERT_EQ(samples(out, "sockmig_udp_quic_cid_"), 0, "no quic-lb sample") ||
	    !ASSERT_EQ(samples(out, "sockmig_udp_member_info{"), 2, "members"))
		goto out;
	/* a port of no group: no UDP sample */
	if (!ASSERT_EQ(ct_run("metrics --port 1", out, OUT_LEN, err, sizeof(err)), 0, "--port 1") ||
	    !ASSERT_EQ(samples(out, "sockmig_udp_"), 0, "--port 1: no UDP group's sample"))
		goto out;
	if (access("/usr/bin/promtool", X_OK) != 0) {
		ret = SKIP("the counts held; no promtool to check the format (apt-get install "
			   "prometheus)");
		goto out;
	}
	if (!ASSERT_OK(system(".output/sockmig metrics | promtool check metrics"),
		       "promtool check metrics"))
		goto out;
	ret = SM_PASS;
out:
	if (started)
		ur_stop(&r);
	free(out);
	return ret;
}

/* Mode quic-lb: its outcome quic_cid and its two CID counters are
 * exported; 5 datagrams without a CID of the group's config are "other",
 * then new flows as in mode flow. */
SM_TEST(metrics_udp_quic_lb_counters)
{
	char *out = malloc(OUT_LEN), err[4096], series[512];
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
	    !ASSERT_OK(ur_round(&r, 0, 5, 1), "5 flows") || !ASSERT_EQ(r.lost, 0, "unanswered") ||
	    !ASSERT_EQ(ct_run("metrics", out, OUT_LEN, err, sizeof(err)), 0, "exit status"))
		goto out;
	{
		const struct want w[] = {
			{"sockmig_udp_group_info{%s,mode=\"quic-lb\"}", 1},
			{"sockmig_udp_datagrams_total{%s,outcome=\"quic_cid\"}", 0},
			{"sockmig_udp_datagrams_total{%s,outcome=\"new_flow\"}", 5},
			{"sockmig_udp_quic_cid_stale_total{%s}", 0},
			{"sockmig_udp_quic_cid_other_total{%s}", 5},
		};
		char labels[160];

		snprintf(labels, sizeof(labels), "group=\"%s\",port=\"%d\"",
			 sockmig_udp_group_name(r.g), UR_PORT);
		for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
			snprintf(series, sizeof(series), w[i].fmt, labels);
			if (!ASSERT_EQ(sample(out, series), w[i].v, series))
				goto out;
		}
	}
	if (!ASSERT_EQ(samples(out, "sockmig_udp_datagrams_total{"), 8, "outcomes of mode quic-lb"))
		goto out;
	ret = SM_PASS;
out:
	if (started)
		ur_stop(&r);
	free(out);
	return ret;
}
