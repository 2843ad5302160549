// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The load generator (bench/loadgen.c): exact outcome counts against
 * servers that answer, reset, close early, never answer or are absent;
 * the bounds of a run. Its options, histogram and merge (pure cases) are
 * test_loadgen_pure.c's.
 *
 * Each server is a child forked by the case, listening before the fork (so
 * no connection can come before it is ready), serving a fixed number of
 * connections one at a time with blocking calls, killed by its own alarm
 * if the case forgets it, and killed by the case at the end.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "loadgen.h"

#define LG_PORT	  18080
#define REQ_LEN	  64
#define REPLY_LEN 256
/* a server child lives no longer than this */
#define SRV_ALARM_SECS 40
/* a request the socket buffers cannot hold (4 MiB tcp_wmem max + rmem) */
#define BIG_REQ_LEN (16u << 20)

enum srv_mode {
	SRV_NORMAL,	      /* read the request, write the reply, close */
	SRV_RESET_AFTER_READ, /* read the request, close with SO_LINGER {1, 0} */
	SRV_RESET_AT_ACCEPT,  /* close with SO_LINGER {1, 0} before reading */
	SRV_HALF_REPLY,	      /* read the request, write half the reply, close */
	SRV_HOLD,	      /* accept, keep the socket open, never read */
};

struct srv {
	pid_t pid;
};

static void fill_addr(struct sockaddr_storage *ss, socklen_t *len, int family, uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sin6->sin6_addr = in6addr_loopback;
		*len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*len = sizeof(*sin);
	}
}

static void close_rst(int fd)
{
	struct linger lin = {.l_onoff = 1, .l_linger = 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
	close(fd);
}

/* Read a request of REQ_LEN bytes: true when all came. */
static bool read_request(int fd)
{
	char buf[REQ_LEN];
	size_t got = 0;

	while (got < REQ_LEN) {
		ssize_t n = read(fd, buf, REQ_LEN - got);

		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

static void write_all(int fd, size_t len)
{
	char buf[REPLY_LEN];
	size_t off = 0;

	memset(buf, 'r', sizeof(buf));
	while (off < len) {
		ssize_t n = send(fd, buf, len - off, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		off += (size_t)n;
	}
}

/* The server child: serve up to max connections, then wait to be killed. */
static void __attribute__((noreturn)) serve(int lfd, enum srv_mode mode, uint64_t max)
{
	static int held[64];
	unsigned int nheld = 0;

	alarm(SRV_ALARM_SECS);
	for (uint64_t i = 0; i < max; i++) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			printf("server: accept: %s\n", strerror(errno));
			_exit(1);
		}
		switch (mode) {
		case SRV_NORMAL:
			if (read_request(fd))
				write_all(fd, REPLY_LEN);
			close(fd);
			break;
		case SRV_RESET_AFTER_READ:
			read_request(fd);
			close_rst(fd);
			break;
		case SRV_RESET_AT_ACCEPT:
			close_rst(fd);
			break;
		case SRV_HALF_REPLY:
			if (read_request(fd))
				write_all(fd, REPLY_LEN / 2);
			close(fd);
			break;
		case SRV_HOLD:
			if (nheld < sizeof(held) / sizeof(held[0]))
				held[nheld++] = fd;
			else
				close(fd);
			break;
		}
	}
	for (;;)
		pause();
}

/*
 * Listen on the loopback of family at LG_PORT (with a fastopen queue when
 * tfo_qlen) and fork a server child.
 */
static int srv_start_tfo(struct srv *s, int family, enum srv_mode mode, uint64_t max, int tfo_qlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int lfd, one = 1, err;

	s->pid = -1;
	fill_addr(&ss, &len, family, LG_PORT);
	lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (tfo_qlen &&
	    setsockopt(lfd, IPPROTO_TCP, TCP_FASTOPEN, &tfo_qlen, sizeof(tfo_qlen)) < 0) {
		err = -errno;
		goto close_listener;
	}
	if (bind(lfd, (struct sockaddr *)&ss, len) < 0 || listen(lfd, 1024) < 0) {
		err = -errno;
		goto close_listener;
	}
	fflush(stdout);
	s->pid = fork();
	if (s->pid < 0) {
		err = -errno;
		goto close_listener;
	}
	if (s->pid == 0)
		serve(lfd, mode, max);
	err = 0;
close_listener:
	close(lfd);
	return err;
}

static int srv_start(struct srv *s, int family, enum srv_mode mode, uint64_t max)
{
	return srv_start_tfo(s, family, mode, max, 0);
}

static void srv_stop(struct srv *s)
{
	if (s->pid <= 0)
		return;
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	s->pid = -1;
}

static const char request[REQ_LEN] = "GET / one connection per request, padded to 64 bytes.....\n";

static void opts_init(struct lg_opts *o, int family, uint64_t conns, uint32_t concurrency)
{
	memset(o, 0, sizeof(*o));
	fill_addr(&o->dst, &o->dstlen, family, LG_PORT);
	o->max_conns = conns;
	o->max_secs = 20;
	o->concurrency = concurrency;
	o->request = request;
	o->request_len = REQ_LEN;
	o->reply_len = REPLY_LEN;
	o->timeout_ms = 5000;
}

static uint64_t total(const struct lg_result *r)
{
	uint64_t sum = 0;

	for (int i = 0; i < LG_NOUTCOMES; i++)
		sum += r->count[i];
	return sum;
}

static void print_result(const struct lg_result *r)
{
	printf("started %llu in %.3f s:", (unsigned long long)r->started, r->elapsed);
	for (int i = 0; i < LG_NOUTCOMES; i++)
		printf(" %s %llu", lg_outcome_str(i), (unsigned long long)r->count[i]);
	printf(" (last other errno: %s)\n", strerror(r->last_other_errno));
}

/* Run o; expect every one of its max_conns connections to end as outcome. */
static bool run_expect(const struct lg_opts *o, struct lg_result *r, enum lg_outcome outcome)
{
	bool ok = ASSERT_OK(lg_run(o, r), "lg_run");

	print_result(r);
	ok = ok && ASSERT_EQ(r->started, o->max_conns, "connections started");
	ok = ok && ASSERT_EQ(total(r), r->started, "outcomes counted");
	ok = ok && ASSERT_EQ(r->count[outcome], o->max_conns, lg_outcome_str(outcome));
	return ok;
}

static double mono_secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int normal_case(int family)
{
	struct lg_result *r = calloc(1, sizeof(*r));
	struct lg_opts o;
	struct srv s;
	int ret = SM_FAIL, err;
	uint64_t p50, p99, max;

	if (!r)
		return SM_FAIL;
	err = srv_start(&s, family, SRV_NORMAL, 200);
	if (family == AF_INET6 && err == -EADDRNOTAVAIL) {
		ret = SKIP("no ::1 in this namespace");
		goto free_result;
	}
	if (!ASSERT_OK(err, "server"))
		goto free_result;
	opts_init(&o, family, 200, 16);
	if (!run_expect(&o, r, LG_OK))
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
	srv_stop(&s);
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
	opts_init(&o, AF_INET, n, concurrency);
	o.timeout_ms = timeout_ms;
	if (request_len > REQ_LEN) {
		big = calloc(1, request_len);
		if (!big)
			goto free_result;
		o.request = big;
		o.request_len = request_len;
	}
	if (!ASSERT_OK(srv_start(&s, AF_INET, mode, n), "server"))
		goto free_request;
	if (!run_expect(&o, r, outcome) || !ASSERT_EQ(r->reply_us.n, 0, "reply latency samples"))
		goto stop_server;
	ret = SM_PASS;
stop_server:
	srv_stop(&s);
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
	if (!ASSERT_OK(srv_start(&s, AF_INET, SRV_HOLD, 20), "server"))
		goto free_result;
	opts_init(&o, AF_INET, 20, 20);
	o.timeout_ms = 300;
	if (!run_expect(&o, r, LG_TIMEOUT))
		goto stop_server;
	/* they connected, and none can have ended before its deadline */
	if (!ASSERT_EQ(r->connect_us.n, 20, "connect latency samples") ||
	    !ASSERT_EQ(r->reply_us.n, 0, "reply latency samples") ||
	    !ASSERT_TRUE(r->elapsed >= 0.3, "a run of at least timeout_ms"))
		goto stop_server;
	ret = SM_PASS;
stop_server:
	srv_stop(&s);
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
	opts_init(&o, AF_INET, 200, 16); /* nobody listens on LG_PORT */
	if (!run_expect(&o, r, LG_REFUSED) || !ASSERT_EQ(r->connect_us.n, 0, "connect samples"))
		goto free_result;
	ret = SM_PASS;
free_result:
	free(r);
	return ret;
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
	if (!ASSERT_OK(srv_start(&s, AF_INET, SRV_NORMAL, 1000), "server"))
		goto free_result;
	opts_init(&o, AF_INET, 137, 10);
	if (!run_expect(&o, r, LG_OK))
		goto stop_server;
	opts_init(&o, AF_INET, 1, 64);
	if (!run_expect(&o, r, LG_OK))
		goto stop_server;
	ret = SM_PASS;
stop_server:
	srv_stop(&s);
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
	if (!ASSERT_OK(srv_start(&s, AF_INET, SRV_NORMAL, UINT64_MAX), "server"))
		goto free_result;
	opts_init(&o, AF_INET, UINT64_MAX, 8);
	o.max_secs = 0.5;
	o.timeout_ms = 1000;
	t0 = mono_secs();
	if (!ASSERT_OK(lg_run(&o, r), "lg_run"))
		goto stop_server;
	took = mono_secs() - t0;
	print_result(r);
	if (!ASSERT_TRUE(took <= o.max_secs + o.timeout_ms / 1000.0 + 1, "bounded by max_secs") ||
	    !ASSERT_TRUE(took >= o.max_secs, "ran until max_secs") ||
	    !ASSERT_GT(r->started, 0, "connections started") ||
	    !ASSERT_EQ(total(r), r->started, "outcomes counted") ||
	    !ASSERT_EQ(r->count[LG_OK], r->started, "ok"))
		goto stop_server;
	ret = SM_PASS;
stop_server:
	srv_stop(&s);
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
	if (!ASSERT_OK(srv_start_tfo(&s, AF_INET, SRV_NORMAL, 100, 64), "fastopen server"))
		goto free_result;
	opts_init(&o, AF_INET, 100, 4);
	o.fastopen = true;
	if (!run_expect(&o, r, LG_OK))
		goto stop_server;
	active = tcpext("TCPFastOpenActive");
	printf("TCPFastOpenActive %lld\n", active);
	if (!ASSERT_EQ(r->reply_us.n, 100, "reply latency samples") ||
	    !ASSERT_GT(active, 0, "connections opened with data in the SYN"))
		goto stop_server;
	ret = SM_PASS;
stop_server:
	srv_stop(&s);
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
	if (!ASSERT_OK(srv_start(&s, AF_INET, SRV_NORMAL, UINT64_MAX), "server"))
		goto free_result;
	opts_init(&o, AF_INET, UINT64_MAX, 4);
	o.max_secs = 30;
	o.rate = 200;
	o.timeout_ms = 1000;
	o.stop = &seen.stop;
	o.progress = on_progress;
	o.progress_arg = &seen;
	if (!ASSERT_OK(lg_run(&o, r), "lg_run"))
		goto stop_server;
	print_result(r);
	if (!ASSERT_EQ(seen.calls, 1, "progress calls") ||
	    !ASSERT_TRUE(r->elapsed >= 1 && r->elapsed < 1 + 1 + 1,
			 "stopped after the first call") ||
	    !ASSERT_GT(seen.started, 0, "progress saw connections") ||
	    !ASSERT_EQ(total(r), r->started, "outcomes counted") ||
	    !ASSERT_EQ(r->count[LG_OK], r->started, "ok"))
		goto stop_server;
	ret = SM_PASS;
stop_server:
	srv_stop(&s);
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
	if (!ASSERT_OK(srv_start(&s, AF_INET, SRV_NORMAL, 100), "server"))
		goto free_result;
	opts_init(&o, AF_INET, 100, 32);
	o.rate = 400;
	if (!run_expect(&o, r, LG_OK))
		goto stop_server;
	if (!ASSERT_TRUE(r->elapsed >= (100.0 - 4 - 1) / 400, "paced by rate"))
		goto stop_server;
	ret = SM_PASS;
stop_server:
	srv_stop(&s);
free_result:
	free(r);
	return ret;
}
