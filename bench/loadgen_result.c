// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The load generator's results, without a socket: the latency histogram
 * (buckets in loadgen.h), merging results, the outcomes' names. */
#include <stdint.h>

#include "loadgen.h"

static unsigned int hist_index(uint64_t v)
{
	unsigned int e;

	if (v < 2 * LG_HIST_SUB)
		return (unsigned int)v;
	e = 63 - (unsigned int)__builtin_clzll(v); /* 2^e <= v < 2^(e+1), e >= 5 */
	return ((e - LG_HIST_SUB_BITS + 1) << LG_HIST_SUB_BITS) +
	       (unsigned int)((v >> (e - LG_HIST_SUB_BITS)) & (LG_HIST_SUB - 1));
}

/* The largest value that lands in bucket i. */
static uint64_t hist_upper(unsigned int i)
{
	unsigned int e, shift;
	uint64_t low;

	if (i < 2 * LG_HIST_SUB)
		return i;
	e = (i >> LG_HIST_SUB_BITS) + LG_HIST_SUB_BITS - 1;
	shift = e - LG_HIST_SUB_BITS;
	low = (uint64_t)(LG_HIST_SUB + (i & (LG_HIST_SUB - 1))) << shift;
	return low + ((1ull << shift) - 1);
}

void lg_hist_add(struct lg_hist *h, uint64_t us)
{
	h->bucket[hist_index(us)]++;
	h->n++;
	h->sum += us;
	if (us > h->max)
		h->max = us;
}

void lg_hist_merge(struct lg_hist *into, const struct lg_hist *from)
{
	for (unsigned int i = 0; i < LG_HIST_NBUCKETS; i++)
		into->bucket[i] += from->bucket[i];
	into->n += from->n;
	into->sum += from->sum;
	if (from->max > into->max)
		into->max = from->max;
}

uint64_t lg_hist_value_at(const struct lg_hist *h, double pct)
{
	double target;
	uint64_t rank, seen = 0;

	if (!h->n)
		return 0;
	if (!(pct < 100)) /* also NaN */
		return h->max;
	target = pct > 0 ? pct / 100 * (double)h->n : 0;
	rank = (uint64_t)target;
	if (target - (double)rank > 1e-9 * target) /* ceil(), but 99.9% of 1000 is 999 */
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > h->n)
		rank = h->n;
	for (unsigned int i = 0; i < LG_HIST_NBUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank) {
			uint64_t v = hist_upper(i);

			return v < h->max ? v : h->max;
		}
	}
	return h->max; /* not reached when n matches the buckets */
}

uint64_t lg_hist_max(const struct lg_hist *h)
{
	return h->max;
}

/* from's ok_at into into's, on the earlier t0_ms of both (a slot moves
 * by whole slots: within LG_SLOT_MS of its time). */
static void merge_ok_at(struct lg_result *into, const struct lg_result *from)
{
	uint64_t shift;

	if (!from->t0_ms)
		return;
	if (!into->t0_ms || from->t0_ms < into->t0_ms) {
		/* into's slots move later */
		shift = into->t0_ms ? (into->t0_ms - from->t0_ms) / LG_SLOT_MS : 0;
		for (uint64_t i = LG_NSLOTS; i-- > 0;) {
			uint64_t to = i + shift < LG_NSLOTS ? i + shift : LG_NSLOTS - 1;
			uint32_t v = into->ok_at[i];

			into->ok_at[i] = 0;
			into->ok_at[to] += v;
		}
		into->t0_ms = from->t0_ms;
	}
	shift = (from->t0_ms - into->t0_ms) / LG_SLOT_MS;
	for (uint64_t i = 0; i < LG_NSLOTS; i++)
		into->ok_at[i + shift < LG_NSLOTS ? i + shift : LG_NSLOTS - 1] += from->ok_at[i];
}

void lg_result_merge(struct lg_result *into, const struct lg_result *from)
{
	into->started += from->started;
	for (int i = 0; i < LG_NOUTCOMES; i++)
		into->count[i] += from->count[i];
	lg_hist_merge(&into->connect_us, &from->connect_us);
	lg_hist_merge(&into->reply_us, &from->reply_us);
	if (from->elapsed > into->elapsed)
		into->elapsed = from->elapsed;
	if (from->last_other_errno)
		into->last_other_errno = from->last_other_errno;
	for (uint32_t i = 0; i < from->nfails && into->nfails < LG_FAILS_KEPT; i++)
		into->fails[into->nfails++] = from->fails[i];
	merge_ok_at(into, from);
}

uint64_t lg_ok_between(const struct lg_result *r, uint64_t from_ms, uint64_t to_ms)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < LG_NSLOTS; i++) {
		uint64_t start = r->t0_ms + i * LG_SLOT_MS, end = start + LG_SLOT_MS;

		/* the last slot holds everything after it: it has no end */
		if (start >= from_ms && (i == LG_NSLOTS - 1 ? to_ms == UINT64_MAX : end <= to_ms))
			n += r->ok_at[i];
	}
	return n;
}

const char *lg_outcome_str(enum lg_outcome o)
{
	static const char *const names[LG_NOUTCOMES] = {
		[LG_OK] = "ok",
		[LG_REFUSED] = "refused",
		[LG_RESET_BEFORE_REQUEST] = "reset-before-request",
		[LG_RESET_AFTER_REQUEST] = "reset-after-request",
		[LG_EOF_EARLY] = "eof-early",
		[LG_TIMEOUT] = "timeout",
		[LG_OTHER] = "other",
	};

	return (unsigned int)o < LG_NOUTCOMES ? names[o] : "?";
}
