// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The benchmark's load generator: one epoll loop, one new TCP connection
 * per request. The rules it follows are in loadgen.h; the histogram and
 * the merging of results are in loadgen_result.c.
 *
 * Each connection lives in a slot of a fixed array of `concurrency` slots.
 * The busy slots form a list in start order; since every connection has
 * the same timeout, that is also deadline order, so the oldest deadline is
 * the head of the list and expiring connections costs O(1) each. Sockets
 * are registered once, edge-triggered for both directions; the epoll data
 * carries the slot and its generation so that a late event for a slot
 * that was freed and reused is dropped.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"

#define NSEC_PER_SEC	   1000000000ull
#define NSEC_PER_MSEC	   1000000ull
#define LG_NIL		   UINT32_MAX
#define LG_MAX_EVENTS	   256
#define LG_MAX_CONCURRENCY (1u << 20)
/* without a signal to interrupt epoll, *stop is seen within this */
#define LG_MAX_WAIT_NS (100 * NSEC_PER_MSEC)
/* max_secs beyond this (over 300 years) are taken as this */
#define LG_MAX_SECS 1e10
/* file descriptors wanted beyond one per connection */
#define LG_SPARE_FDS   64
#define LG_SCRATCH_LEN 65536

enum lg_state {
	LG_FREE,
	LG_CONNECTING, /* connect() in progress */
	LG_SENDING,    /* connected, request not fully written */
	LG_RECEIVING,  /* request written, reply not complete */
};

struct lg_conn {
	int fd;
	uint32_t gen;	     /* bumped when the slot is freed */
	uint32_t prev, next; /* busy: the start-order list; free: the free list (next) */
	enum lg_state state;
	uint64_t t_start; /* ns on CLOCK_MONOTONIC, just before connect() */
	size_t sent, got;
};

struct lg_ctx {
	const struct lg_opts *o;
	struct lg_result *r;
	struct lg_conn *conns;
	uint32_t head, tail; /* busy slots, oldest first */
	uint32_t free;	     /* free slots */
	uint32_t inflight;
	uint64_t timeout_ns;
	int epfd;
	char *scratch; /* replies are read here and dropped */
	/* token bucket, when o->rate */
	double tokens, burst;
	uint64_t refilled;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* ---- connections -------------------------------------------------------- */

static void list_unlink(struct lg_ctx *ctx, struct lg_conn *c)
{
	if (c->prev != LG_NIL)
		ctx->conns[c->prev].next = c->next;
	else
		ctx->head = c->next;
	if (c->next != LG_NIL)
		ctx->conns[c->next].prev = c->prev;
	else
		ctx->tail = c->prev;
}

static void list_append(struct lg_ctx *ctx, uint32_t i)
{
	struct lg_conn *c = &ctx->conns[i];

	c->prev = ctx->tail;
	c->next = LG_NIL;
	if (ctx->tail != LG_NIL)
		ctx->conns[ctx->tail].next = i;
	else
		ctx->head = i;
	ctx->tail = i;
}

/* Name failed connection c in r->fails (before its close: its port). */
static void keep_fail(struct lg_result *r, const struct lg_conn *c, enum lg_outcome outcome,
		      uint64_t now)
{
	struct lg_fail *f = &r->fails[r->nfails++];
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	memset(f, 0, sizeof(*f));
	f->start_ms = c->t_start / NSEC_PER_MSEC;
	f->end_ms = now / NSEC_PER_MSEC;
	f->sent = (uint32_t)c->sent;
	f->got = (uint32_t)c->got;
	f->outcome = (uint8_t)outcome;
	if (c->fd >= 0 && getsockname(c->fd, (struct sockaddr *)&ss, &len) == 0)
		f->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
}

/* Give connection c its outcome, close it and free its slot. */
static void conn_finish(struct lg_ctx *ctx, struct lg_conn *c, enum lg_outcome outcome, int err,
			uint64_t now)
{
	struct lg_result *r = ctx->r;

	r->count[outcome]++;
	if (outcome == LG_OK) {
		uint64_t slot = (c->t_start / NSEC_PER_MSEC - r->t0_ms) / LG_SLOT_MS;

		lg_hist_add(&r->reply_us, (now - c->t_start) / 1000);
		r->ok_at[slot < LG_NSLOTS ? slot : LG_NSLOTS - 1]++;
	} else if (outcome == LG_OTHER)
		r->last_other_errno = err;
	if (outcome != LG_OK && r->nfails < LG_FAILS_KEPT)
		keep_fail(r, c, outcome, now);
	if (c->fd >= 0) {
		if (outcome == LG_TIMEOUT) {
			/* abort: an RST now, no FIN exchange, no TIME_WAIT */
			struct linger lin = {.l_onoff = 1, .l_linger = 0};

			setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
		}
		/*
		 * Otherwise a plain close: after an EOF we are the passive
		 * closer, after a reset the socket is gone already, and after
		 * a full reply a server that closes first has usually closed
		 * already. Measured: 1,000,000 connections to such a server on
		 * loopback with net.ipv4.tcp_tw_reuse=0 (as for a remote
		 * target) and 28,232 ephemeral ports: no EADDRNOTAVAIL, 23
		 * client-side TIME_WAIT at the end. So there is no SO_LINGER
		 * {1, 0} after a reply: its RST would show in the server's
		 * reset counters (TCPAbortOnLinger) that the benchmark reads.
		 * Closing also takes the socket out of the epoll set.
		 */
		close(c->fd);
		c->fd = -1;
	}
	list_unlink(ctx, c);
	c->state = LG_FREE;
	c->gen++;
	c->next = ctx->free;
	ctx->free = (uint32_t)(c - ctx->conns);
	ctx->inflight--;
}

/* Connection c failed with errno err: classify it (rules in loadgen.h). */
static void conn_fail(struct lg_ctx *ctx, struct lg_conn *c, int err, uint64_t now)
{
	enum lg_outcome outcome;

	switch (err) {
	case ECONNREFUSED:
		outcome = LG_REFUSED;
		break;
	case ECONNRESET:
	case EPIPE:
		outcome =
			c->state == LG_RECEIVING ? LG_RESET_AFTER_REQUEST : LG_RESET_BEFORE_REQUEST;
		break;
	default:
		outcome = LG_OTHER;
	}
	conn_finish(ctx, c, outcome, err, now);
}

/* Read what is there. Return true when c got its outcome. */
static bool conn_recv(struct lg_ctx *ctx, struct lg_conn *c, uint64_t now)
{
	for (;;) {
		ssize_t n = read(c->fd, ctx->scratch, LG_SCRATCH_LEN);

		if (n > 0) {
			c->got += (size_t)n;
			if (c->got >= ctx->o->reply_len) {
				conn_finish(ctx, c, LG_OK, 0, now);
				return true;
			}
		} else if (n == 0) {
			conn_finish(ctx, c, LG_EOF_EARLY, 0, now);
			return true;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			return false;
		} else if (errno != EINTR) {
			conn_fail(ctx, c, errno, now);
			return true;
		}
	}
}

/* Write what the socket takes. Return true when c got its outcome. */
static bool conn_send(struct lg_ctx *ctx, struct lg_conn *c, uint64_t now)
{
	const struct lg_opts *o = ctx->o;

	while (c->sent < o->request_len) {
		ssize_t n = send(c->fd, (const char *)o->request + c->sent,
				 o->request_len - c->sent, MSG_NOSIGNAL);

		if (n >= 0) {
			c->sent += (size_t)n;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS) {
			/* EINPROGRESS: fastopen, the SYN is out without our data */
			return false;
		} else if (errno != EINTR) {
			conn_fail(ctx, c, errno, now);
			return true;
		}
	}
	c->state = LG_RECEIVING;
	return false;
}

/* The connection is usable: note the connect latency, start sending. */
static bool conn_connected(struct lg_ctx *ctx, struct lg_conn *c, uint64_t now)
{
	lg_hist_add(&ctx->r->connect_us, (now - c->t_start) / 1000);
	c->state = LG_SENDING;
	return conn_send(ctx, c, now);
}

static void conn_event(struct lg_ctx *ctx, struct lg_conn *c, uint32_t ev, uint64_t now)
{
	if (c->state == LG_CONNECTING) {
		if (ev & (EPOLLERR | EPOLLHUP)) {
			int err = 0;
			socklen_t len = sizeof(err);

			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
				err = errno;
			if (err) {
				conn_fail(ctx, c, err, now);
				return;
			}
		} else if (!(ev & EPOLLOUT)) {
			return;
		}
		if (conn_connected(ctx, c, now))
			return;
	} else if (c->state == LG_SENDING) {
		if (conn_send(ctx, c, now))
			return;
	}
	/*
	 * Read when this event says there is something to read, also when
	 * the request was just completed: with edge triggering, a reply (or
	 * an EOF) that came while we were still sending is not announced
	 * again. Edges that come after this epoll_wait() are queued anew.
	 */
	if (c->state == LG_RECEIVING && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		conn_recv(ctx, c, now);
}

/* Start one connection in a free slot (there is one). */
static void conn_start(struct lg_ctx *ctx, uint64_t now)
{
	const struct lg_opts *o = ctx->o;
	uint32_t i = ctx->free;
	struct lg_conn *c = &ctx->conns[i];
	struct epoll_event ev;
	int one = 1;

	ctx->free = c->next;
	list_append(ctx, i);
	ctx->inflight++;
	ctx->r->started++;
	c->state = LG_CONNECTING;
	c->t_start = now;
	c->sent = 0;
	c->got = 0;
	c->fd = socket(o->dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		conn_finish(ctx, c, LG_OTHER, errno, now);
		return;
	}
	if (o->fastopen &&
	    setsockopt(c->fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one)) < 0) {
		conn_finish(ctx, c, LG_OTHER, errno, now);
		return;
	}
	if (connect(c->fd, (const struct sockaddr *)&o->dst, o->dstlen) == 0) {
		/* loopback may finish at once; so does fastopen with a cookie */
		if (conn_connected(ctx, c, now_ns()))
			return;
	} else if (errno != EINPROGRESS && errno != EINTR) {
		/* EINTR: a non-blocking connect goes on in the background */
		conn_fail(ctx, c, errno, now);
		return;
	}
	/* added after the first steps: the current readiness is reported at once */
	ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
	ev.data.u64 = (uint64_t)c->gen << 32 | i;
	if (epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		conn_finish(ctx, c, LG_OTHER, errno, now);
}

/* Time out the connections whose deadline passed, oldest first. */
static void expire(struct lg_ctx *ctx, uint64_t now)
{
	while (ctx->head != LG_NIL && ctx->conns[ctx->head].t_start + ctx->timeout_ns <= now)
		conn_finish(ctx, &ctx->conns[ctx->head], LG_TIMEOUT, 0, now);
}

/* Count the connections in flight as LG_OTHER (err), when the loop breaks. */
static void abort_all(struct lg_ctx *ctx, int err, uint64_t now)
{
	while (ctx->head != LG_NIL)
		conn_finish(ctx, &ctx->conns[ctx->head], LG_OTHER, err, now);
}

static bool stop_asked(const struct lg_opts *o)
{
	return o->stop && *o->stop;
}

/* Token bucket: may one more connection start at now? Takes the token. */
static bool take_token(struct lg_ctx *ctx, uint64_t now)
{
	if (!ctx->o->rate)
		return true;
	if (now > ctx->refilled) {
		ctx->tokens += (double)(now - ctx->refilled) * ctx->o->rate / NSEC_PER_SEC;
		if (ctx->tokens > ctx->burst)
			ctx->tokens = ctx->burst;
		ctx->refilled = now;
	}
	if (ctx->tokens < 1)
		return false;
	ctx->tokens -= 1;
	return true;
}

/* When the bucket holds a token again (called when it has none). */
static uint64_t next_token(const struct lg_ctx *ctx)
{
	return ctx->refilled + (uint64_t)((1 - ctx->tokens) * NSEC_PER_SEC / ctx->o->rate) + 1;
}

/* Start connections while the bounds, the cap and the bucket allow. */
static void start_some(struct lg_ctx *ctx, uint64_t end)
{
	const struct lg_opts *o = ctx->o;
	uint64_t now = now_ns();

	while (ctx->inflight < o->concurrency && ctx->r->started < o->max_conns && now < end &&
	       !stop_asked(o) && take_token(ctx, now)) {
		conn_start(ctx, now);
		now = now_ns();
	}
}

static int wait_events(int epfd, struct epoll_event *evs, int nev, uint64_t timeout_ns)
{
	static bool no_pwait2;
	struct timespec ts = {
		.tv_sec = (time_t)(timeout_ns / NSEC_PER_SEC),
		.tv_nsec = (long)(timeout_ns % NSEC_PER_SEC),
	};
	int n;

	if (!no_pwait2) {
		n = epoll_pwait2(epfd, evs, nev, &ts, NULL);
		if (n >= 0 || errno != ENOSYS)
			return n;
		no_pwait2 = true;
	}
	/* before Linux 5.11: milliseconds, rounded up so as not to spin */
	return epoll_wait(epfd, evs, nev, (int)((timeout_ns + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC));
}

static int check_opts(const struct lg_opts *o)
{
	if (!o->max_conns || !(o->max_secs > 0) || !o->concurrency ||
	    o->concurrency > LG_MAX_CONCURRENCY || o->timeout_ms <= 0 || !o->reply_len ||
	    (o->request_len && !o->request))
		return -EINVAL;
	if (o->dst.ss_family == AF_INET && o->dstlen >= sizeof(struct sockaddr_in) &&
	    o->dstlen <= sizeof(o->dst))
		return 0;
	if (o->dst.ss_family == AF_INET6 && o->dstlen >= sizeof(struct sockaddr_in6) &&
	    o->dstlen <= sizeof(o->dst))
		return 0;
	return -EINVAL;
}

/* Make room for one descriptor per connection (root may raise the hard limit). */
static int ensure_nofile(uint32_t concurrency)
{
	rlim_t want = (rlim_t)concurrency + LG_SPARE_FDS;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		rl.rlim_cur = want;
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
			rl.rlim_max = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return -EMFILE;
	}
	return 0;
}

/* Fail early, before any connection, when fastopen cannot be asked for. */
static int check_fastopen(int family)
{
	int fd, one = 1, err = 0;

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one)) < 0)
		err = -errno;
	close(fd);
	return err;
}

int lg_run(const struct lg_opts *o, struct lg_result *r)
{
	struct epoll_event evs[LG_MAX_EVENTS];
	struct lg_ctx ctx = {.o = o, .r = r, .epfd = -1};
	uint64_t t0, end, next_progress, now;
	int nev, err;

	memset(r, 0, sizeof(*r));
	t0 = now_ns();
	r->t0_ms = t0 / NSEC_PER_MSEC;
	err = check_opts(o);
	if (err)
		return err;
	err = ensure_nofile(o->concurrency);
	if (err)
		return err;
	if (o->fastopen) {
		err = check_fastopen(o->dst.ss_family);
		if (err)
			return err;
	}

	ctx.conns = calloc(o->concurrency, sizeof(*ctx.conns));
	if (!ctx.conns)
		return -ENOMEM;
	for (uint32_t i = 0; i < o->concurrency; i++) {
		ctx.conns[i].fd = -1;
		ctx.conns[i].next = i + 1 < o->concurrency ? i + 1 : LG_NIL;
	}
	ctx.free = 0;
	ctx.head = LG_NIL;
	ctx.tail = LG_NIL;
	ctx.timeout_ns = (uint64_t)o->timeout_ms * NSEC_PER_MSEC;
	ctx.scratch = malloc(LG_SCRATCH_LEN);
	if (!ctx.scratch) {
		err = -ENOMEM;
		goto free_conns;
	}
	ctx.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ctx.epfd < 0) {
		err = -errno;
		goto free_scratch;
	}
	nev = o->concurrency < LG_MAX_EVENTS ? (int)o->concurrency : LG_MAX_EVENTS;
	ctx.burst = (double)o->rate / 100; /* 10 ms worth */
	if (ctx.burst < 1)
		ctx.burst = 1;
	ctx.tokens = 1;
	ctx.refilled = t0;
	end = t0 +
	      (uint64_t)((o->max_secs < LG_MAX_SECS ? o->max_secs : LG_MAX_SECS) * NSEC_PER_SEC);
	next_progress = t0 + NSEC_PER_SEC;

	for (;;) {
		bool starting;
		uint64_t wake;
		int n;

		expire(&ctx, now_ns());
		start_some(&ctx, end);
		now = now_ns();
		starting = r->started < o->max_conns && now < end && !stop_asked(o);
		if (!starting && !ctx.inflight)
			break;
		if (o->progress && now >= next_progress) {
			r->elapsed = (double)(now - t0) / NSEC_PER_SEC;
			o->progress(r, o->progress_arg);
			next_progress += NSEC_PER_SEC;
			if (next_progress <= now)
				next_progress = now + NSEC_PER_SEC;
		}

		/* sleep until an event, the oldest deadline, a token, the end */
		wake = now + LG_MAX_WAIT_NS;
		if (ctx.head != LG_NIL && ctx.conns[ctx.head].t_start + ctx.timeout_ns < wake)
			wake = ctx.conns[ctx.head].t_start + ctx.timeout_ns;
		if (starting) {
			if (end < wake)
				wake = end;
			if (o->rate && ctx.inflight < o->concurrency && next_token(&ctx) < wake)
				wake = next_token(&ctx);
		}
		if (o->progress && next_progress < wake)
			wake = next_progress;
		n = wait_events(ctx.epfd, evs, nev, wake > now ? wake - now : 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			abort_all(&ctx, errno, now_ns());
			goto close_epoll;
		}
		now = now_ns();
		for (int k = 0; k < n; k++) {
			uint32_t i = (uint32_t)evs[k].data.u64;

			if (i < o->concurrency && ctx.conns[i].state != LG_FREE &&
			    ctx.conns[i].gen == (uint32_t)(evs[k].data.u64 >> 32))
				conn_event(&ctx, &ctx.conns[i], evs[k].events, now);
		}
	}
	err = 0;

close_epoll:
	close(ctx.epfd);
free_scratch:
	free(ctx.scratch);
free_conns:
	free(ctx.conns);
	r->elapsed = (double)(now_ns() - t0) / NSEC_PER_SEC;
	return err;
}
