// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The load generator (bench/loadgen.c): exact outcome counts against
 * servers that answer, reset, close early, never answer or are absent.
 * The bounds of a run are test_loadgen_bounds.c's; its options, histogram
 * and merge (pure cases) test_loadgen_pure.c's; the servers (a child per
 * case) itest.h's.
 */
#include <stdlib.h>
#include <sys/socket.h>

#include "harness.h"
#include "itest.h"
#include "loadgen.h"

/* a request the socket buffers cannot hold (4 MiB tcp_wmem max + rmem) */
#define BIG_REQ_LEN (16u << 20)

static int normal_case(int family)
{
	struct lg_result *r = calloc(1, sizeof(*r));
	struct lg_opts o;
	struct srv s;
	int ret = SM_FAIL, err;
	uint64_t p50, p99, max;

	if (!r)
		return SM_FAIL;
	err = it_srv_start(&s, family, SRV_NORMAL, 200);
	if (family == AF_INET6 && err == -EADDRNOTAVAIL) {
		ret = SKIP("no ::1 in this namespace");
		goto free_result;
	}
	if (!ASSERT_OK(err, "server"))
		goto free_result;
	it_lg_opts(&o, family, 200, 16);
	if (!it_lg_expect(&o, r, LG_OK))
		goto stop_server;
	if (!ASSERT_EQ(r->count[LG_OTHER], 0, "other") ||
	    !ASSERT_EQ(r->connect_us.n, 200, "connect latency samples") ||
	    !ASSERT_EQ(r->reply_us.n, 200, "reply latency samples"))
		goto stop_server;
	p50 = lg_hist_value_at(&r->reply_us, 50);
	p99 = lg_hist_value_at(&r->reply_us, 99);
	max = lg_hist_max(&r->reply_us);
	printf("reply latency: p50 %llu us, p99 %llu us, max %llu us\n", (unsigned long long)p50,
	       (unsigned long long)p99, (unsigned long long)max);
	if (!ASSERT_TRUE(p50 <= p99 && p99 <= max, "p50 <= p99 <= max") ||
	    !ASSERT_TRUE(lg_hist_value_at(&r->connect_us, 50) <= lg_hist_max(&r->connect_us),
			 "connect p50 <= max") ||
	    !ASSERT_TRUE(lg_hist_max(&r->connect_us) <= max, "connect within the whole request"))
		goto stop_server;
	ret = SM_PASS;
stop_server:
	it_srv_stop(&s);
free_result:
	free(r);
	return ret;
}

SM_TEST(loadgen_normal_server)
{
	return normal_case(AF_INET);
}

SM_TEST(loadgen_normal_server_ipv6)
{
	return normal_case(AF_INET6);
}

/* Run n connections against a server in mode; expect all to end as outcome. */
static int outcome_case(enum srv_mode mode, uint64_t n, uint32_t concurrency,
			enum lg_outcome outcome, size_t request_len, int timeout_ms)
{
	struct lg_result *r = calloc(1, sizeof(*r));
	char *big = NULL;
	struct lg_opts o;
	struct srv s = {.pid = -1};
	int ret = SM_FAIL;

	if (!r)
		return SM_FAIL;
	it_lg_opts(&o, AF_INET, n, concurrency);
	o.timeout_ms = timeout_ms;
	if (request_len > REQ_LEN) {
		big = calloc(1, request_len);
		if (!big)
			goto free_result;
		o.request = big;
		o.request_len = request_len;
	}
	if (!ASSERT_OK(it_srv_start(&s, AF_INET, mode, n), "server"))
		goto free_request;
	if (!it_lg_expect(&o, r, outcome) || !ASSERT_EQ(r->reply_us.n, 0, "reply latency samples"))
		goto stop_server;
	ret = SM_PASS;
stop_server:
	it_srv_stop(&s);
free_request:
	free(big);
free_result:
	free(r);
	return ret;
}

/*
 * The server has read the whole request when it resets, so the client has
 * written it: reset-after-request, every time.
 */
SM_TEST(loadgen_reset_after_request)
{
	return outcome_case(SRV_RESET_AFTER_READ, 200, 16, LG_RESET_AFTER_REQUEST, REQ_LEN, 5000);
}

/*
 * The server resets at accept, without reading. With a small request the
 * client may or may not have written it by then (a race); with a request
 * larger than the socket buffers can hold, it cannot have.
 */
SM_TEST(loadgen_reset_before_request)
{
	return outcome_case(SRV_RESET_AT_ACCEPT, 50, 8, LG_RESET_BEFORE_REQUEST, BIG_REQ_LEN, 5000);
}

SM_TEST(loadgen_eof_early)
{
	return outcome_case(SRV_HALF_REPLY, 200, 16, LG_EOF_EARLY, REQ_LEN, 5000);
}

SM_TEST(loadgen_timeout)
{
	struct lg_result *r = calloc(1, sizeof(*r));
	struct lg_opts o;
	struct srv s;
	int ret = SM_FAIL;

	if (!r)
		return SM_FAIL;
	if (!ASSERT_OK(it_srv_start(&s, AF_INET, SRV_HOLD, 20), "server"))
		goto free_result;
	it_lg_opts(&o, AF_INET, 20, 20);
	o.timeout_ms = 300;
	if (!it_lg_expect(&o, r, LG_TIMEOUT))
		goto stop_server;
	/* they connected, and none can have ended before its deadline */
	if (!ASSERT_EQ(r->connect_us.n, 20, "connect latency samples") ||
	    !ASSERT_EQ(r->reply_us.n, 0, "reply latency samples") ||
	    !ASSERT_TRUE(r->elapsed >= 0.3, "a run of at least timeout_ms"))
		goto stop_server;
	ret = SM_PASS;
stop_server:
	it_srv_stop(&s);
free_result:
	free(r);
	return ret;
}

SM_TEST(loadgen_refused)
{
	struct lg_result *r = calloc(1, sizeof(*r));
	struct lg_opts o;
	int ret = SM_FAIL;

	if (!r)
		return SM_FAIL;
	it_lg_opts(&o, AF_INET, 200, 16); /* nobody listens on LG_PORT */
	if (!it_lg_expect(&o, r, LG_REFUSED) || !ASSERT_EQ(r->connect_us.n, 0, "connect samples"))
		goto free_result;
	ret = SM_PASS;
free_result:
	free(r);
	return ret;
}
