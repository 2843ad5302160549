// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The load generator: the bounds of a run (max_conns, max_secs, stop, rate), TCP Fast Open. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "harness.h"
#include "itest.h"
#include "loadgen.h"

static double mono_secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Bound 1: exactly max_conns, also when it is not a multiple of concurrency. */
SM_TEST(loadgen_max_conns)
{
	struct lg_result *r = calloc(1, sizeof(*r));
	struct lg_opts o;
	struct srv s;
	int ret = SM_FAIL;

	if (!r)
		return SM_FAIL;
	if (!ASSERT_OK(it_srv_start(&s, AF_INET, SRV_NORMAL, 1000), "server"))
		goto free_result;
	it_lg_opts(&o, AF_INET, 137, 10);
	if (!it_lg_expect(&o, r, LG_OK))
		goto stop_server;
	it_lg_opts(&o, AF_INET, 1, 64);
	if (!it_lg_expect(&o, r, LG_OK))
		goto stop_server;
	ret = SM_PASS;
stop_server:
	it_srv_stop(&s);
free_result:
	free(r);
	return ret;
}

/* Bound 2: max_secs ends a run whose max_conns would take forever. */
SM_TEST(loadgen_max_secs)
{
	struct lg_result *r = calloc(1, sizeof(*r));
	struct lg_opts o;
	struct srv s;
	int ret = SM_FAIL;
	double t0, took;

	if (!r)
		return SM_FAIL;
	if (!ASSERT_OK(it_srv_start(&s, AF_INET, SRV_NORMAL, UINT64_MAX), "server"))
		goto free_result;
	it_lg_opts(&o, AF_INET, UINT64_MAX, 8);
	o.max_secs = 0.5;
	o.timeout_ms = 1000;
	t0 = mono_secs();
	if (!ASSERT_OK(lg_run(&o, r), "lg_run"))
		goto stop_server;
	took = mono_secs() - t0;
	it_lg_print(r);
	if (!ASSERT_TRUE(took <= o.max_secs + o.timeout_ms / 1000.0 + 1, "bounded by max_secs") ||
	    !ASSERT_TRUE(took >= o.max_secs, "ran until max_secs") ||
	    !ASSERT_GT(r->started, 0, "connections started") ||
	    !ASSERT_EQ(it_lg_total(r), r->started, "outcomes counted") ||
	    !ASSERT_EQ(r->count[LG_OK], r->started, "ok"))
		goto stop_server;
	ret = SM_PASS;
stop_server:
	it_srv_stop(&s);
free_result:
	free(r);
	return ret;
}

/* A TcpExt counter of this network namespace, -1 when not found. */
static long long tcpext(const char *name)
{
	char names[8192], values[8192], *sn, *sv, *n, *v;
	long long found = -1;
	FILE *f = fopen("/proc/self/net/netstat", "re");

	if (!f)
		return -1;
	while (found < 0 && fgets(names, sizeof(names), f) && fgets(values, sizeof(values), f)) {
		if (strncmp(names, "TcpExt:", 7) != 0)
			continue;
		n = strtok_r(names + 7, " \n", &sn);
		v = strtok_r(values + 7, " \n", &sv);
		for (; n && v; n = strtok_r(NULL, " \n", &sn), v = strtok_r(NULL, " \n", &sv)) {
			if (!strcmp(n, name)) {
				found = strtoll(v, NULL, 10);
				break;
			}
		}
	}
	fclose(f);
	return found;
}

/*
 * fastopen: the first connections fetch a cookie, the later ones carry the
 * request in their SYN (connect() returns 0 at once, the handshake happens
 * in send()); all must end ok, and the kernel must have counted TFO.
 */
SM_TEST(loadgen_fastopen)
{
	struct lg_result *r = calloc(1, sizeof(*r));
	struct lg_opts o;
	struct srv s;
	int ret = SM_FAIL;
	long long active;
	FILE *f;

	if (!r)
		return SM_FAIL;
	/* client and server TFO, in this case's own network namespace */
	f = fopen("/proc/sys/net/ipv4/tcp_fastopen", "we");
	if (!f || fputs("3\n", f) < 0 || fclose(f) != 0) {
		ret = SKIP("cannot enable TCP fastopen: %s", strerror(errno));
		goto free_result;
	}
	if (!ASSERT_OK(it_srv_start_tfo(&s, AF_INET, SRV_NORMAL, 100, 64), "fastopen server"))
		goto free_result;
	it_lg_opts(&o, AF_INET, 100, 4);
	o.fastopen = true;
	if (!it_lg_expect(&o, r, LG_OK))
		goto stop_server;
	active = tcpext("TCPFastOpenActive");
	printf("TCPFastOpenActive %lld\n", active);
	if (!ASSERT_EQ(r->reply_us.n, 100, "reply latency samples") ||
	    !ASSERT_GT(active, 0, "connections opened with data in the SYN"))
		goto stop_server;
	ret = SM_PASS;
stop_server:
	it_srv_stop(&s);
free_result:
	free(r);
	return ret;
}

struct progress_seen {
	int calls;
	volatile int stop;
	uint64_t started;
};

static void on_progress(const struct lg_result *r, void *arg)
{
	struct progress_seen *p = arg;

	p->calls++;
	p->started = r->started;
	p->stop = 1;
}

/* The progress callback comes about once a second and *stop ends the run. */
SM_TEST(loadgen_progress_stop)
{
	struct lg_result *r = calloc(1, sizeof(*r));
	struct progress_seen seen = {0};
	struct lg_opts o;
	struct srv s;
	int ret = SM_FAIL;

	if (!r)
		return SM_FAIL;
	if (!ASSERT_OK(it_srv_start(&s, AF_INET, SRV_NORMAL, UINT64_MAX), "server"))
		goto free_result;
	it_lg_opts(&o, AF_INET, UINT64_MAX, 4);
	o.max_secs = 30;
	o.rate = 200;
	o.timeout_ms = 1000;
	o.stop = &seen.stop;
	o.progress = on_progress;
	o.progress_arg = &seen;
	if (!ASSERT_OK(lg_run(&o, r), "lg_run"))
		goto stop_server;
	it_lg_print(r);
	if (!ASSERT_EQ(seen.calls, 1, "progress calls") ||
	    !ASSERT_TRUE(r->elapsed >= 1 && r->elapsed < 1 + 1 + 1,
			 "stopped after the first call") ||
	    !ASSERT_GT(seen.started, 0, "progress saw connections") ||
	    !ASSERT_EQ(it_lg_total(r), r->started, "outcomes counted") ||
	    !ASSERT_EQ(r->count[LG_OK], r->started, "ok"))
		goto stop_server;
	ret = SM_PASS;
stop_server:
	it_srv_stop(&s);
free_result:
	free(r);
	return ret;
}

/*
 * rate paces the starts: n connections at `rate` per second cannot take
 * less than (n - burst) / rate, the burst being 10 ms worth (a lower bound
 * that follows from the pacing, not a speed target).
 */
SM_TEST(loadgen_rate)
{
	struct lg_result *r = calloc(1, sizeof(*r));
	struct lg_opts o;
	struct srv s;
	int ret = SM_FAIL;

	if (!r)
		return SM_FAIL;
	if (!ASSERT_OK(it_srv_start(&s, AF_INET, SRV_NORMAL, 100), "server"))
		goto free_result;
	it_lg_opts(&o, AF_INET, 100, 32);
	o.rate = 400;
	if (!it_lg_expect(&o, r, LG_OK))
		goto stop_server;
	if (!ASSERT_TRUE(r->elapsed >= (100.0 - 4 - 1) / 400, "paced by rate"))
		goto stop_server;
	ret = SM_PASS;
stop_server:
	it_srv_stop(&s);
free_result:
	free(r);
	return ret;
}
