/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The benchmark's load generator: one process, one thread, one epoll loop,
 * non-blocking TCP, ONE NEW CONNECTION PER REQUEST:
 *
 *     connect, send the request, read a reply of known length, close.
 *
 * Every connection started gets exactly one outcome, so that when lg_run()
 * returns, the sum of lg_result.count[] equals lg_result.started. The
 * outcomes, decided in this order:
 *
 * - LG_REFUSED: connect() fails with ECONNREFUSED (an RST answered the SYN);
 * - LG_RESET_BEFORE_REQUEST: ECONNRESET or EPIPE (from connect, send or
 *   SO_ERROR) before the kernel accepted the last byte of the request;
 * - LG_RESET_AFTER_REQUEST: ECONNRESET or EPIPE after the whole request was
 *   written and before reply_len bytes of reply were read;
 * - LG_EOF_EARLY: read() returns 0 (orderly FIN) before reply_len bytes;
 * - LG_TIMEOUT: no complete reply timeout_ms after connect() was called
 *   (checked at each turn of the event loop, which wakes up for the oldest
 *   deadline); the socket is then closed with SO_LINGER {1, 0}, which
 *   aborts it with an RST and leaves no TIME_WAIT behind;
 * - LG_OTHER: any other failure, e.g. EADDRNOTAVAIL (no ephemeral port
 *   left), ENETUNREACH, ETIMEDOUT from the kernel; the errno of the last one
 *   is kept in lg_result.last_other_errno;
 * - LG_OK: reply_len bytes were read (a reply is complete then, whatever
 *   follows; bytes past reply_len that arrived with it are read and
 *   ignored). A reset or an error after that point does not change it.
 *
 * The run is bounded twice: no connection is started after max_conns were
 * started or max_secs have passed (CLOCK_MONOTONIC) or *stop became
 * non-zero, whichever comes first; the connections then in flight are
 * waited for until their own deadline, so lg_run() returns at most about
 * max_secs + timeout_ms after it was called.
 *
 * Closing: after a complete reply, or an EOF or a reset, the client socket
 * is closed with a plain close(). When the server closes first (a
 * one-request server: its FIN comes with or right after the reply), the
 * client is the passive closer and keeps no TIME_WAIT, so ephemeral ports
 * are not exhausted however many connections are made. A server that
 * waits for the client to close instead leaves one TIME_WAIT per
 * connection on the client: to a non-loopback target (tcp_tw_reuse=2
 * covers loopback only), connect() then slows down and, past the
 * ephemeral port range within 60 s, fails with EADDRNOTAVAIL (LG_OTHER).
 *
 * Threads: none. For more load than one core gives, fork several
 * processes, each with its own lg_run(), and add their results with
 * lg_result_merge() (struct lg_result has no pointers: it can be sent as
 * is through a pipe or shared memory).
 */
#ifndef SOCKMIG_BENCH_LOADGEN_H
#define SOCKMIG_BENCH_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/** Linear sub-buckets per power of two: values are kept within 1/16. */
#define LG_HIST_SUB_BITS 4
#define LG_HIST_SUB	 (1u << LG_HIST_SUB_BITS)
/** Buckets covering 0 .. UINT64_MAX: 0..31 exactly, then 16 per power of two. */
#define LG_HIST_NBUCKETS ((64 - LG_HIST_SUB_BITS + 1) << LG_HIST_SUB_BITS)

/**
 * A log-linear histogram of microseconds. Values below 32 have a bucket
 * each; above, every power of two [2^e, 2^(e+1)) is split into 16 equal
 * buckets, so a bucket's width is at most 1/16 of its lower bound. Fixed
 * size (about 8 KiB), no allocation; zero it to empty it.
 */
struct lg_hist {
	uint64_t n;   /**< samples added */
	uint64_t sum; /**< sum of the samples (mean = sum / n) */
	uint64_t max; /**< largest sample, exact */
	uint64_t bucket[LG_HIST_NBUCKETS];
};

/** The outcome of one connection; see the rules at the top of this file. */
enum lg_outcome {
	LG_OK,
	LG_REFUSED,
	LG_RESET_BEFORE_REQUEST,
	LG_RESET_AFTER_REQUEST,
	LG_EOF_EARLY,
	LG_TIMEOUT,
	LG_OTHER,
	LG_NOUTCOMES
};

/** How many failed connections a result names (the first ones). */
#define LG_FAILS_KEPT 32

/**
 * One failed connection, for a test that must name it: when it started
 * and ended (ms on CLOCK_MONOTONIC, comparable with any other process's),
 * its local port (0 when it had none) and how far it got.
 */
struct lg_fail {
	uint64_t start_ms, end_ms;
	uint32_t sent, got; /**< request bytes written, reply bytes read */
	uint16_t port;
	uint8_t outcome; /**< enum lg_outcome */
};

/** Slots of lg_result.ok_at: 100 ms each, 102.4 s (the last takes the rest). */
#define LG_SLOT_MS 100
#define LG_NSLOTS  1024

/** What a run did. lg_run() zeroes it first. */
struct lg_result {
	uint64_t started;	      /**< connections started (connect() called or tried) */
	uint64_t count[LG_NOUTCOMES]; /**< connections per outcome; they add up to started */
	/**
	 * Connect latency: from the connect() call to the connection being
	 * usable (connect() returning 0, or EPOLLOUT after EINPROGRESS). One
	 * sample per connection whose connect succeeded, whatever its outcome.
	 * With fastopen and a cached cookie, connect() returns at once and the
	 * handshake happens in the first send, so this is about 0 and the
	 * handshake time is in reply_us only.
	 */
	struct lg_hist connect_us;
	/**
	 * Request latency as the client sees it: from the connect() call to
	 * the last byte of the reply (handshake, request, server time and
	 * reply). One sample per LG_OK connection.
	 */
	struct lg_hist reply_us;
	double elapsed;			     /**< seconds from the call of lg_run() to its return */
	int last_other_errno;		     /**< errno of the last LG_OTHER outcome, 0 if none */
	uint32_t nfails;		     /**< fails[] filled, at most LG_FAILS_KEPT */
	struct lg_fail fails[LG_FAILS_KEPT]; /**< the first failed connections */
	/**
	 * When the served connections started, for a test that must know the
	 * load ran across an event whatever the machine's speed: LG_OK
	 * connections by their connect() time, in LG_SLOT_MS slots from
	 * t0_ms (CLOCK_MONOTONIC ms, lg_run()'s start); lg_ok_between().
	 */
	uint64_t t0_ms;
	uint32_t ok_at[LG_NSLOTS];
};

/** What to run. Zero it, then fill it in. */
struct lg_opts {
	struct sockaddr_storage dst; /**< target, AF_INET or AF_INET6 */
	socklen_t dstlen;	     /**< length of the address in dst */
	uint64_t max_conns;	     /**< start no more connections than this (> 0) */
	double max_secs;	     /**< start none after this many seconds (> 0) */
	uint32_t concurrency;	     /**< connections in flight at most (> 0) */
	/**
	 * Connections started per second (a token bucket on CLOCK_MONOTONIC
	 * holding at most 10 ms worth of starts, or 1), with concurrency as a
	 * cap: starts that the cap holds back are not made up later beyond
	 * that burst. 0: keep concurrency connections in flight (closed loop).
	 */
	uint32_t rate;
	bool fastopen;	     /**< set TCP_FASTOPEN_CONNECT on client sockets */
	const void *request; /**< sent on every connection; NULL if request_len is 0 */
	size_t request_len;  /**< may be 0: the server speaks first */
	size_t reply_len;    /**< a reply is complete after this many bytes (> 0) */
	int timeout_ms;	     /**< per-connection deadline from connect() (> 0) */
	volatile int *stop;  /**< optional: once non-zero, start no more */
	/** Optional: called about once a second with the counts so far. */
	void (*progress)(const struct lg_result *r, void *arg);
	void *progress_arg; /**< passed to progress */
};

/**
 * Run the load described by @p o and fill @p r.
 *
 * Raises RLIMIT_NOFILE to concurrency + 64 when it is lower (the hard
 * limit too when needed, which takes CAP_SYS_RESOURCE).
 *
 * Return: 0 when the run took place (whatever the outcomes), -EINVAL for
 * bad options, -EMFILE when RLIMIT_NOFILE cannot be raised enough, another
 * negative errno when the setup failed (nothing started then) or when
 * epoll itself failed during the run (the connections in flight are then
 * counted as LG_OTHER with that errno, so the counts still add up).
 */
int lg_run(const struct lg_opts *o, struct lg_result *r);

/** Add one sample of @p us microseconds to @p h. */
void lg_hist_add(struct lg_hist *h, uint64_t us);

/** Add every sample of @p from to @p into. */
void lg_hist_merge(struct lg_hist *into, const struct lg_hist *from);

/**
 * The value below or at which @p pct percent (0..100, e.g. 50, 99, 99.9)
 * of the samples are: the upper bound of the bucket holding the sample of
 * rank ceil(pct / 100 * n), capped at the exact maximum, so at most 1/16
 * above the true value, never below it. 0 for an empty histogram.
 */
uint64_t lg_hist_value_at(const struct lg_hist *h, double pct);

/** The largest sample, exact; 0 for an empty histogram. */
uint64_t lg_hist_max(const struct lg_hist *h);

/**
 * Add @p from to @p into, for a run split across processes: counts and
 * histograms are added, elapsed is the longest of both, last_other_errno
 * is from's when it has one; the failures named are into's, then from's
 * while there is room; ok_at is kept from the earlier t0_ms of both.
 */
void lg_result_merge(struct lg_result *into, const struct lg_result *from);

/**
 * The LG_OK connections of @p r that started (connect()) from @p from_ms to
 * @p to_ms (CLOCK_MONOTONIC ms), counted by whole slots (lg_result.ok_at):
 * those of a slot that lies within the span, never one outside it.
 */
uint64_t lg_ok_between(const struct lg_result *r, uint64_t from_ms, uint64_t to_ms);

/**
 * "ok", "refused", "reset-before-request", "reset-after-request",
 * "eof-early", "timeout", "other"; "?" for an out-of-range value.
 */
const char *lg_outcome_str(enum lg_outcome o);

#endif
