// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The load generator (bench/loadgen.c) without a network: its options
 * refused before anything starts, its latency histogram, the merge of two
 * results. Pure cases: no root, no namespace.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"
#include "loadgen.h"
#include "util.h"

/* Options lg_run() accepts: loopback port 18080, 20 s, a 64-byte request,
 * a 256-byte reply; @conns connections, @concurrency at once. */
static void opts_valid(struct lg_opts *o, uint64_t conns, uint32_t concurrency)
{
	static const char request[64] = "GET /\n";

	memset(o, 0, sizeof(*o));
	o->dstlen = burst_addr(AF_INET, 18080, &o->dst);
	o->max_conns = conns;
	o->max_secs = 20;
	o->concurrency = concurrency;
	o->request = request;
	o->request_len = sizeof(request);
	o->reply_len = 256;
	o->timeout_ms = 5000;
}

SM_PURE(loadgen_bad_options)
{
	struct lg_result *r = calloc(1, sizeof(*r));
	struct lg_opts o;
	int ret = SM_FAIL;

	if (!r)
		return SM_FAIL;
	opts_valid(&o, 0, 1);
	if (!ASSERT_ERR(lg_run(&o, r), EINVAL, "max_conns 0"))
		goto free_result;
	opts_valid(&o, 1, 1);
	o.max_secs = 0;
	if (!ASSERT_ERR(lg_run(&o, r), EINVAL, "max_secs 0"))
		goto free_result;
	opts_valid(&o, 1, 0);
	if (!ASSERT_ERR(lg_run(&o, r), EINVAL, "concurrency 0"))
		goto free_result;
	opts_valid(&o, 1, 1);
	o.reply_len = 0;
	if (!ASSERT_ERR(lg_run(&o, r), EINVAL, "reply_len 0"))
		goto free_result;
	opts_valid(&o, 1, 1);
	o.timeout_ms = 0;
	if (!ASSERT_ERR(lg_run(&o, r), EINVAL, "timeout_ms 0"))
		goto free_result;
	opts_valid(&o, 1, 1);
	o.dst.ss_family = AF_UNIX;
	if (!ASSERT_ERR(lg_run(&o, r), EINVAL, "AF_UNIX target") ||
	    !ASSERT_EQ(r->started, 0, "nothing started"))
		goto free_result;
	ret = SM_PASS;
free_result:
	free(r);
	return ret;
}

/* true <= reported <= true + true / 16: the bucket precision */
static bool near(uint64_t got, uint64_t want, const char *what)
{
	if (got >= want && got <= want + want / 16)
		return true;
	printf("%s: %llu, expected %llu .. %llu\n", what, (unsigned long long)got,
	       (unsigned long long)want, (unsigned long long)(want + want / 16));
	return false;
}

SM_PURE(loadgen_hist)
{
	struct lg_hist *h = calloc(3, sizeof(*h)), *a, *b;
	int ret = SM_FAIL;

	if (!h)
		return SM_FAIL;
	a = h + 1;
	b = h + 2;
	if (!ASSERT_EQ(lg_hist_value_at(h, 50), 0, "empty p50") ||
	    !ASSERT_EQ(lg_hist_max(h), 0, "empty max"))
		goto free_hists;
	/* 1..100000 once each, split into two histograms merged afterwards */
	for (uint64_t v = 1; v <= 100000; v++)
		lg_hist_add(v % 2 ? a : b, v);
	lg_hist_merge(h, a);
	lg_hist_merge(h, b);
	if (!ASSERT_EQ(h->n, 100000, "samples") || !ASSERT_EQ(lg_hist_max(h), 100000, "max") ||
	    !ASSERT_EQ(h->sum, 100000ull * 100001 / 2, "sum") ||
	    !near(lg_hist_value_at(h, 50), 50000, "p50") ||
	    !near(lg_hist_value_at(h, 99), 99000, "p99") ||
	    !near(lg_hist_value_at(h, 99.9), 99900, "p99.9") ||
	    !near(lg_hist_value_at(h, 1), 1000, "p1") ||
	    !ASSERT_EQ(lg_hist_value_at(h, 0), 1, "p0") ||
	    !ASSERT_EQ(lg_hist_value_at(h, 100), 100000, "p100"))
		goto free_hists;

	/* small values are exact; a skewed set: 990 x 10 us, 10 x 5000 us */
	memset(h, 0, sizeof(*h));
	for (int i = 0; i < 990; i++)
		lg_hist_add(h, 10);
	for (int i = 0; i < 10; i++)
		lg_hist_add(h, 5000);
	if (!ASSERT_EQ(lg_hist_value_at(h, 50), 10, "skewed p50") ||
	    !ASSERT_EQ(lg_hist_value_at(h, 99), 10, "skewed p99") ||
	    !ASSERT_EQ(lg_hist_value_at(h, 99.9), 5000, "skewed p99.9 (capped at max)"))
		goto free_hists;

	/* the extremes fit */
	memset(h, 0, sizeof(*h));
	lg_hist_add(h, 0);
	lg_hist_add(h, UINT64_MAX);
	if (!ASSERT_EQ(lg_hist_value_at(h, 50), 0, "p50 of {0, max}") ||
	    !ASSERT_TRUE(lg_hist_value_at(h, 99) == UINT64_MAX, "p99 of {0, max}"))
		goto free_hists;

	if (!ASSERT_TRUE(!strcmp(lg_outcome_str(LG_OK), "ok") &&
				 !strcmp(lg_outcome_str(LG_RESET_BEFORE_REQUEST),
					 "reset-before-request") &&
				 !strcmp(lg_outcome_str(LG_OTHER), "other") &&
				 !strcmp(lg_outcome_str(LG_NOUTCOMES), "?"),
			 "outcome names"))
		goto free_hists;
	ret = SM_PASS;
free_hists:
	free(h);
	return ret;
}

SM_PURE(loadgen_result_merge)
{
	struct lg_result *r = calloc(4, sizeof(*r)), *a, *b, *c;
	int ret = SM_FAIL;

	if (!r)
		return SM_FAIL;
	a = r + 1;
	b = r + 2;
	c = r + 3;
	/* served connections by start time: a's from 10,000 ms, b's from
	 * 10,250 (its slot 0 is a's slot 2) */
	a->t0_ms = 10000;
	a->ok_at[0] = 2;
	a->ok_at[5] = 3;
	a->ok_at[LG_NSLOTS - 1] = 1; /* the rest, after 102.3 s */
	b->t0_ms = 10250;
	b->ok_at[0] = 4;
	c->t0_ms = 9800; /* earlier: the others move by 2 slots */
	c->ok_at[0] = 5;
	a->started = 10;
	a->count[LG_OK] = 7;
	a->count[LG_OTHER] = 3;
	a->last_other_errno = EADDRNOTAVAIL;
	a->elapsed = 2;
	a->nfails = 3;
	a->fails[2].port = 7;
	lg_hist_add(&a->reply_us, 100);
	b->started = 5;
	b->count[LG_OK] = 5;
	b->elapsed = 3;
	b->nfails = LG_FAILS_KEPT;
	b->fails[0].port = 9;
	lg_hist_add(&b->reply_us, 300);
	lg_result_merge(r, a);
	lg_result_merge(r, b);
	if (!ASSERT_EQ(r->started, 15, "started") || !ASSERT_EQ(r->count[LG_OK], 12, "ok") ||
	    !ASSERT_EQ(r->count[LG_OTHER], 3, "other") ||
	    !ASSERT_EQ(r->last_other_errno, EADDRNOTAVAIL, "last other errno") ||
	    !ASSERT_TRUE(r->elapsed == 3, "elapsed: the longest") ||
	    !ASSERT_EQ(r->reply_us.n, 2, "reply samples") ||
	    !ASSERT_EQ(lg_hist_max(&r->reply_us), 300, "reply max") ||
	    !ASSERT_EQ(r->nfails, LG_FAILS_KEPT, "failures named: the first ones, while room") ||
	    !ASSERT_EQ(r->fails[2].port, 7, "a's") || !ASSERT_EQ(r->fails[3].port, 9, "then b's"))
		goto free_results;
	if (!ASSERT_EQ(lg_ok_between(r, 10000, 10100), 2, "a's first slot") ||
	    !ASSERT_EQ(lg_ok_between(r, 10000, 10099), 0, "no slot within") ||
	    !ASSERT_EQ(lg_ok_between(r, 10200, 10300), 4, "b's, on a's frame") ||
	    !ASSERT_EQ(lg_ok_between(r, 10000, 10600), 9, "both") ||
	    !ASSERT_EQ(lg_ok_between(r, 10000, UINT64_MAX), 10, "to the end: the rest too"))
		goto free_results;
	lg_result_merge(r, c);
	if (!ASSERT_EQ(r->t0_ms, 9800, "the earlier start") ||
	    !ASSERT_EQ(lg_ok_between(r, 9800, 9900), 5, "c's") ||
	    !ASSERT_EQ(lg_ok_between(r, 10000, 10100), 2, "a's, moved") ||
	    !ASSERT_EQ(lg_ok_between(r, 10200, 10300), 4, "b's, moved") ||
	    !ASSERT_EQ(lg_ok_between(r, 10500, 10600), 3, "a's second") ||
	    !ASSERT_EQ(lg_ok_between(r, 0, UINT64_MAX), 15, "every one"))
		goto free_results;
	ret = SM_PASS;
free_results:
	free(r);
	return ret;
}
