// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A real DNS server restarted under load: dnsmasq (Debian's dnsmasq-base,
 * which scripts/deps installs; the cases skip without it) answers every
 * name under svc.test on 127.0.0.1:DNS_PORT from its command line alone: no
 * upstream, no configuration file but /dev/null, no pid file, its log in
 * the case's directory, still root (no user to drop to). Instance K answers
 * 192.0.2.K, so the client knows who answered each query.
 *
 * A restart as an operator does it with two instances on one port: start
 * instance K + 1, wait until it answers, SIGTERM instance K and wait for it
 * to exit (0); RESTARTS of them while our client sends RATE queries a ms,
 * INFLIGHT at most out at once (a resolver's window), each from a source
 * address and port not used before in the case (as a resolver's random
 * port: every query is a new flow), each one answered or given up after
 * TIMEOUT_MS, every one counted.
 *
 * dnsmasq never sets SO_REUSEPORT, and it listens on TCP on the same port:
 * the shim runs with SOCKMIG_REUSEPORT=all (with udp alone the second
 * instance's TCP bind fails with EADDRINUSE and it exits). With the UDP
 * group (mode flow) every new query goes to the newest instance from its
 * bind on, so the old one has nothing left to read when it is told to
 * stop: 0 lost. The baseline is the same shim with SOCKMIG_UDP_MODE=off
 * (SO_REUSEPORT set, no group: the kernel's hash), which loses queries.
 * The proof case is the baseline holding a copy of each instance's socket
 * (pidfd_getfd), so that its queue outlives the process: the queries found
 * there once the process has exited are exactly the lost ones (none lost
 * for a full buffer either: UdpRcvbufErrors). Its copy also takes queries
 * sent after the exit and before the test drains it (one loop turn), so
 * the loss is measured by the baseline case, which holds no copy.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "preload.h"
#include "sockmig.h"

#define DNSMASQ	   "/usr/sbin/dnsmasq"
#define DNS_PORT   35353
#define RESTARTS   20
#define INFLIGHT   128
#define WARM	   300	  /* answers by an instance before the next starts */
#define WARM_MS	   50	  /* and ms: shim generations are 10 ms clock ticks */
#define RATE	   5	  /* queries per ms at most */
#define QUERY_MAX  400000 /* the load's bound; source ports per address: */
#define SRC_PORTS  40000  /* 20000 up, then the next 127.0.1.N */
#define TIMEOUT_MS 1000
#define RUN_MS	   60000	  /* the load's bound in time */
#define STEP_MS	   5000		  /* an instance's start or stop */
#define SLOTS	   (RESTARTS + 3) /* instances by K, from 1, and the one after the last */

/* A query's state. */
enum { Q_NONE, Q_SENT, Q_ANSWERED, Q_LOST, Q_QUEUED = 0x10 };

struct dns_run {
	struct pl_ctx x;
	bool group; /* the shim's UDP group; else SOCKMIG_UDP_MODE=off */
	bool hold;  /* a copy of every instance's socket */
	struct tp_proc inst[SLOTS];
	int copy[SLOTS];
	int ep, nfly;
	struct {
		int fd;
		uint32_t q;
		unsigned long long t;
	} fly[INFLIGHT];
	uint8_t *state; /* QUERY_MAX */
	uint32_t next;
	long answered, lost, refused, bad, by[SLOTS];
	long queued[SLOTS]; /* left in instance K's socket after its exit */
	int k;		    /* the newest instance that answered */
};

static long rcvbuf_errors(void)
{
	char names[1024] = "", vals[1024], *sn, *sv, *n, *v;
	FILE *f = fopen("/proc/thread-self/net/snmp", "r");
	long ret = -1;

	while (f && fgets(vals, sizeof(vals), f))
		if (strncmp(vals, "Udp: ", 5) == 0 && !names[0])
			memcpy(names, vals, sizeof(names));
		else if (strncmp(vals, "Udp: ", 5) == 0)
			break;
	if (f)
		fclose(f);
	for (n = strtok_r(names, " \n", &sn), v = strtok_r(vals, " \n", &sv); n && v;
	     n = strtok_r(NULL, " \n", &sn), v = strtok_r(NULL, " \n", &sv))
		if (strcmp(n, "RcvbufErrors") == 0)
			ret = atol(v);
	return ret;
}

/* ---- queries and answers ------------------------------------------------- */

/* The query for "q<q>.svc.test" A, ID q's low 16 bits. Its length. */
static size_t dns_query(uint8_t *b, uint32_t q)
{
	static const uint8_t tail[] = {3, 's', 'v', 'c', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
	uint8_t hdr[12] = {(uint8_t)(q >> 8), (uint8_t)q, 1, 0, 0, 1};
	int n;

	memcpy(b, hdr, sizeof(hdr));
	n = snprintf((char *)b + 13, 16, "q%u", q);
	b[12] = (uint8_t)n;
	memcpy(b + 13 + n, tail, sizeof(tail));
	return 13 + (size_t)n + sizeof(tail);
}

/* The query number of a query (its first label, q<N>), or -1. */
static long dns_query_num(const uint8_t *b, ssize_t len)
{
	char label[16];

	if (len < 14 || b[12] < 2 || b[12] > 12 || len < 13 + b[12] || b[13] != 'q')
		return -1;
	memcpy(label, b + 14, b[12] - 1u);
	label[b[12] - 1] = '\0';
	return strtol(label, NULL, 10);
}

/* Instance K of an answer to query @q (its A record, 192.0.2.K), or -1
 * when it is not the answer to @q. */
static int dns_answer(const uint8_t *b, ssize_t len, uint32_t q)
{
	uint8_t want[64];
	size_t qlen = dns_query(want, q) - 12, off = 12 + qlen;

	if (len < (ssize_t)off + 16 || b[0] != want[0] || b[1] != want[1] || !(b[2] & 0x80) ||
	    (b[3] & 0x0f) || b[5] != 1 || b[7] < 1 || memcmp(b + 12, want + 12, qlen) != 0)
		return -1;
	if ((b[off] & 0xc0) == 0xc0) /* the owner name, a pointer here */
		off += 2;
	else
		off += qlen - 4;
	if (len < (ssize_t)off + 14 || b[off] || b[off + 1] != 1 || b[off + 2] || b[off + 3] != 1 ||
	    b[off + 8] || b[off + 9] != 4 || b[off + 10] != 192 || b[off + 11] || b[off + 12] != 2)
		return -1;
	return b[off + 13];
}

/* Send query r->next from its own source address and port. */
static bool dns_send(struct dns_run *r)
{
	struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
	struct epoll_event ev = {.events = EPOLLIN};
	uint32_t q = r->next;
	uint8_t b[64];
	size_t len = dns_query(b, q);
	int fd, s;

	for (s = 0; s < INFLIGHT && r->fly[s].fd >= 0; s++)
		;
	src.sin_addr.s_addr = htonl(0x7f000101u + q / SRC_PORTS); /* 127.0.1.1 on */
	src.sin_port = htons((uint16_t)(20000 + q % SRC_PORTS));
	dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	dst.sin_port = htons(DNS_PORT);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ev.data.u32 = (uint32_t)s;
	if (fd < 0 || bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
	    connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 ||
	    send(fd, b, len, 0) != (ssize_t)len || epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		printf("query %u: %s\n", q, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	r->fly[s].fd = fd;
	r->fly[s].q = q;
	r->fly[s].t = burst_now_ms();
	r->state[q] = Q_SENT;
	r->next++;
	r->nfly++;
	return true;
}

static void dns_done(struct dns_run *r, int s, int state)
{
	r->state[r->fly[s].q] = (uint8_t)((r->state[r->fly[s].q] & Q_QUEUED) | state);
	close(r->fly[s].fd);
	r->fly[s].fd = -1;
	r->nfly--;
}

/* Answers within @ms, then the queries past TIMEOUT_MS given up. */
static void dns_collect(struct dns_run *r, int ms)
{
	struct epoll_event ev[INFLIGHT];
	unsigned long long now;
	uint8_t b[512];
	int n = epoll_wait(r->ep, ev, INFLIGHT, ms);

	for (int i = 0; i < n; i++) {
		int s = (int)ev[i].data.u32, k;
		ssize_t len = recv(r->fly[s].fd, b, sizeof(b), 0);

		if (len < 0 && errno == EAGAIN)
			continue;
		if (len < 0) {
			r->refused++;
			dns_done(r, s, Q_LOST);
			continue;
		}
		k = dns_answer(b, len, r->fly[s].q);
		if (k < 1 || k > r->k + 1) {
			r->bad++;
		} else {
			r->answered++;
			r->by[k]++;
		}
		dns_done(r, s, Q_ANSWERED);
	}
	now = burst_now_ms();
	for (int s = 0; s < INFLIGHT; s++)
		if (r->fly[s].fd >= 0 && now - r->fly[s].t > TIMEOUT_MS) {
			r->lost++;
			dns_done(r, s, Q_LOST);
		}
}

/* ---- instances ----------------------------------------------------------- */

/* Start instance @k (answers 192.0.2.K), the shim preloaded. */
static bool dns_start(struct dns_run *r, int k)
{
	static const char *const flow[] = {"SOCKMIG_REUSEPORT=all", NULL};
	static const char *const off[] = {"SOCKMIG_REUSEPORT=all", "SOCKMIG_UDP_MODE=off", NULL};
	char name[16], args[256];

	snprintf(name, sizeof(name), "dnsmasq%d", k);
	snprintf(args, sizeof(args),
		 "-k -C/dev/null -R -h -a127.0.0.1 -z -p%d -A/svc.test/192.0.2.%d -uroot -groot "
		 "--pid-file -8%s/%s.log",
		 DNS_PORT, k, r->x.dir, name);
	return ASSERT_TRUE(tp_proc_start(&r->inst[k], r->x.dir, name, DNSMASQ, r->x.shim, false,
					 r->group ? flow : off, -1, args),
			   "start dnsmasq");
}

/* A copy of instance @k's UDP socket on the port, into r->copy[k]. */
static bool dns_hold(struct dns_run *r, int k)
{
	int pidfd = (int)syscall(SYS_pidfd_open, r->inst[k].pid, 0);

	for (int fd = 3; pidfd >= 0 && fd < 64 && r->copy[k] < 0; fd++) {
		struct sockaddr_in a;
		socklen_t alen = sizeof(a), tlen = sizeof(int);
		int c = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0), type = 0;

		if (c < 0)
			continue;
		if (getsockopt(c, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 && type == SOCK_DGRAM &&
		    getsockname(c, (struct sockaddr *)&a, &alen) == 0 && a.sin_family == AF_INET &&
		    ntohs(a.sin_port) == DNS_PORT)
			r->copy[k] = c;
		else
			close(c);
	}
	if (pidfd >= 0)
		close(pidfd);
	return ASSERT_TRUE(r->copy[k] >= 0, "a copy of the instance's UDP socket");
}

/* What is left in instance @k's socket (its process gone): marked, counted. */
static void dns_drain_copy(struct dns_run *r, int k)
{
	uint8_t b[512];
	ssize_t len;
	long q;

	if (r->copy[k] < 0)
		return;
	while ((len = recv(r->copy[k], b, sizeof(b), MSG_DONTWAIT)) >= 0) {
		q = dns_query_num(b, len);
		if (q >= 0 && q < QUERY_MAX)
			r->state[q] |= Q_QUEUED;
		r->queued[k]++;
	}
	close(r->copy[k]);
	r->copy[k] = -1;
}

/* Query from a port of the kernel's choice until instance @k answers. */
static bool dns_wait_first(int k)
{
	struct sockaddr_in dst = {.sin_family = AF_INET};
	unsigned long long end = burst_now_ms() + STEP_MS;
	uint8_t b[512];
	bool ok = false;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_usec = 20000};

	dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	dst.sin_port = htons(DNS_PORT);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (fd >= 0 && !ok && burst_now_ms() < end) {
		ssize_t len = dns_query(b, QUERY_MAX);

		if (sendto(fd, b, (size_t)len, 0, (struct sockaddr *)&dst, sizeof(dst)) == len &&
		    (len = recv(fd, b, sizeof(b), 0)) > 0)
			ok = dns_answer(b, len, QUERY_MAX) == k;
	}
	if (fd >= 0)
		close(fd);
	return ASSERT_TRUE(ok, "the first instance answers");
}

/* Instance @k's exit code once it has exited (then reaped), -1 while it
 * runs. */
static int dns_exited(struct dns_run *r, int k)
{
	int st = 0;

	if (waitpid(r->inst[k].pid, &st, WNOHANG) != r->inst[k].pid)
		return -1;
	r->inst[k].pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Whether instance @k's log has a line with @what. */
static bool dns_logged(struct dns_run *r, int k, const char *what)
{
	char path[256], line[512];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/dnsmasq%d.log", r->x.dir, k);
	f = fopen(path, "r");
	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, what) != NULL;
	if (f)
		fclose(f);
	return found;
}

/* ---- the load across the restarts ---------------------------------------- */

/*
 * Instance 1 answers; then, while the queries flow, RESTARTS times: once
 * instance K has answered WARM queries (and WARM_MS passed), instance
 * K + 1 starts; at its first answer instance K gets SIGTERM; once it has
 * exited (0) what its copy holds is counted. Then WARM more answers, the
 * last queries out answered or given up, and the last instance stopped.
 */
static bool dns_load(struct dns_run *r)
{
	unsigned long long now, t0 = burst_now_ms(), step = t0, tick = 0;
	long mark = 0, tick_sent = 0;
	int stopping = 0, code;

	r->k = 1;
	if (!dns_start(r, 1) || !dns_wait_first(1) || (r->hold && !dns_hold(r, 1)))
		return false;
	for (;;) {
		now = burst_now_ms();
		if (!ASSERT_LE(now - t0, RUN_MS, "ms of load") ||
		    !ASSERT_TRUE(r->next < QUERY_MAX, "queries within the bound"))
			return false;
		if (stopping && (code = dns_exited(r, stopping)) >= 0) {
			if (!ASSERT_EQ(code, 0, "the old instance's exit code"))
				return false;
			dns_drain_copy(r, stopping);
			printf("instance %d stopped in %llu ms\n", stopping, now - step);
			stopping = 0;
			mark = r->by[r->k];
			step = now;
		} else if (stopping && !ASSERT_LE(now - step, STEP_MS, "ms to stop")) {
			return false;
		} else if (!stopping && r->inst[r->k + 1].pid > 0 && r->by[r->k + 1] > 0) {
			/* the new instance answers: the old one goes */
			if (r->hold && !dns_hold(r, r->k + 1))
				return false;
			stopping = r->k++;
			step = now;
			if (!ASSERT_OK(kill(r->inst[stopping].pid, SIGTERM), "SIGTERM"))
				return false;
		} else if (!stopping && r->inst[r->k + 1].pid > 0) {
			if (!ASSERT_LE(now - step, STEP_MS, "ms until the new instance answers"))
				return false;
		} else if (!stopping && r->by[r->k] - mark >= WARM && now - step >= WARM_MS) {
			if (r->k == RESTARTS + 1)
				break;
			if (!dns_start(r, r->k + 1))
				return false;
			step = now;
		}
		if (now != tick) /* RATE a ms, none saved up */
			tick = now, tick_sent = 0;
		for (; r->nfly < INFLIGHT && tick_sent < RATE; tick_sent++)
			if (!dns_send(r))
				return false;
		dns_collect(r, 1);
	}
	while (r->nfly > 0 && burst_now_ms() - t0 < RUN_MS + 2 * TIMEOUT_MS)
		dns_collect(r, 10);
	if (!ASSERT_EQ(r->nfly, 0, "queries out at the end") ||
	    !ASSERT_OK(kill(r->inst[r->k].pid, SIGTERM), "SIGTERM the last"))
		return false;
	for (step = burst_now_ms(); (code = dns_exited(r, r->k)) < 0;)
		if (!ASSERT_LE(burst_now_ms() - step, STEP_MS, "ms to stop the last"))
			return false;
		else
			burst_sleep_ms(5);
	dns_drain_copy(r, r->k);
	printf("load: %u queries in %llu ms, %d restarts\n", r->next, burst_now_ms() - t0,
	       RESTARTS);
	return ASSERT_EQ(code, 0, "the last instance's exit code");
}

/* Remove the groups the shim made (UDP and TCP, SOCKMIG_REUSEPORT=all). */
static void dns_groups_destroy(struct dns_run *r)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	struct sockmig_udp_group *g;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(DNS_PORT);
	g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
	pl_group_cleanup(&r->x, DNS_PORT);
}

/* The counts, and what every case checks: each instance answered, its
 * log says it stopped on SIGTERM, nothing on its stderr; no query had a
 * wrong answer or an ICMP error, none dropped for a full buffer. */
static bool dns_checks(struct dns_run *r, long rcvbuf0)
{
	long queued = 0, lostq = 0, unqueued = 0, rcvbuf = rcvbuf_errors() - rcvbuf0;

	for (int k = 1; k <= RESTARTS + 1; k++) {
		queued += r->queued[k];
		printf("instance %d: %ld answers%s, %ld queries left in its socket\n", k, r->by[k],
		       dns_logged(r, k, "exiting on receipt of SIGTERM") ? ", SIGTERM logged" : "",
		       r->queued[k]);
		if (!ASSERT_GT(r->by[k], 0, "answers by the instance") ||
		    !ASSERT_TRUE(dns_logged(r, k, "exiting on receipt of SIGTERM"), "SIGTERM") ||
		    !ASSERT_EQ(tp_proc_stderr(&r->inst[k], NULL), 0, "lines on its stderr"))
			return false;
	}
	for (uint32_t q = 0; q < r->next; q++) {
		lostq += (r->state[q] & 0x0f) == Q_LOST;
		unqueued += (r->state[q] & 0x0f) == Q_LOST && !(r->state[q] & Q_QUEUED);
		unqueued += (r->state[q] & 0x0f) != Q_LOST && (r->state[q] & Q_QUEUED);
	}
	printf("%u queries: %ld answered, %ld unanswered (%ld ICMP errors), %ld wrong answers; "
	       "%ld left in old sockets at their close; UdpRcvbufErrors +%ld\n",
	       r->next, r->answered, r->lost, r->refused, r->bad, queued, rcvbuf);
	return ASSERT_EQ(r->answered + r->lost + r->bad, r->next, "every query counted once") &&
	       ASSERT_EQ(lostq, r->lost, "unanswered queries") &&
	       ASSERT_EQ(r->bad, 0, "wrong answers") && ASSERT_EQ(r->refused, 0, "ICMP errors") &&
	       ASSERT_EQ(rcvbuf, 0, "UdpRcvbufErrors") &&
	       (!r->hold || ASSERT_EQ(unqueued, 0,
				      "lost queries not in an old socket's queue, "
				      "or queued ones answered"));
}

static int dns_case(bool group, bool hold, long *lost)
{
	struct dns_run *r = calloc(1, sizeof(*r));
	long rcvbuf0 = rcvbuf_errors();
	int ret;

	if (access(DNSMASQ, X_OK) < 0) {
		free(r);
		return SKIP("dnsmasq is not installed (scripts/deps installs dnsmasq-base)");
	}
	if (!r || !(r->state = calloc(QUERY_MAX + 1, 1))) {
		free(r);
		return SM_FAIL;
	}
	ret = pl_setup(&r->x);
	r->group = group;
	r->hold = hold;
	r->ep = epoll_create1(EPOLL_CLOEXEC);
	for (int i = 0; i < INFLIGHT; i++)
		r->fly[i].fd = -1;
	for (int k = 0; k < SLOTS; k++) {
		r->inst[k] = (struct tp_proc)TP_PROC_INIT;
		r->copy[k] = -1;
	}
	if (ret == SM_PASS)
		ret = dns_load(r) && dns_checks(r, rcvbuf0) ? SM_PASS : SM_FAIL;
	*lost = r->lost;
	for (int k = 1; k < SLOTS; k++) {
		tp_proc_kill(&r->inst[k]);
		if (r->copy[k] >= 0)
			close(r->copy[k]);
	}
	for (int i = 0; i < INFLIGHT; i++)
		if (r->fly[i].fd >= 0)
			close(r->fly[i].fd);
	if (r->ep >= 0)
		close(r->ep);
	if (r->x.dir[0]) {
		dns_groups_destroy(r);
		if (ret == SM_PASS && !ASSERT_EQ(pl_netns_groups(&r->x), 0, "groups left"))
			ret = SM_FAIL;
	}
	pl_cleanup(&r->x);
	free(r->state);
	free(r);
	return ret;
}

/* Under the shim's UDP group: every query answered across the restarts,
 * nothing left in an old instance's socket at its close. */
SM_LONG(udp_dns_dnsmasq_restarts_lose_nothing, 120)
{
	long lost = -1;
	int ret = dns_case(true, true, &lost);

	if (ret == SM_PASS && !ASSERT_EQ(lost, 0, "unanswered queries with the UDP group"))
		ret = SM_FAIL;
	return ret;
}

/* The baseline: SO_REUSEPORT alone (the kernel's hash) loses queries. */
SM_LONG(udp_dns_dnsmasq_baseline_loses, 120)
{
	long lost = -1;
	int ret = dns_case(false, false, &lost);

	if (ret == SM_PASS && !ASSERT_GT(lost, 0, "unanswered queries without the UDP group"))
		ret = SM_FAIL;
	return ret;
}

/* Why: the lost queries are exactly those left in the old instances'
 * sockets when they exited (and none for a full buffer). */
SM_LONG(udp_dns_dnsmasq_baseline_loss_is_old_queue, 120)
{
	long lost = -1;
	int ret = dns_case(false, true, &lost);

	if (ret == SM_PASS && !ASSERT_GT(lost, 0, "unanswered queries without the UDP group"))
		ret = SM_FAIL;
	return ret;
}
