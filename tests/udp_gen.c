// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Crafted UDP flows for test_udp_scale.c; see udp_gen.h. The raw socket
 * writes whole IPv4 datagrams (the kernel fills the IP checksum and ID; a
 * UDP checksum of 0 is none, as IPv4 allows), sent to 127.0.0.1: on
 * loopback they are received as any datagram is, through the group's
 * SO_REUSEPORT program, in the sender's own softirq. Then what the scale
 * cases share: who got which flow, a round sent and read back whole,
 * `sockmig status` read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clitest.h"
#include "udp_gen.h"
#include "udp_rig.h"

#define BATCH 256

struct pkt {
	struct iphdr ip;
	struct udphdr udp;
	struct ug_msg m;
} __attribute__((packed));

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void ug_source(uint32_t i, uint32_t *addr, uint16_t *port)
{
	uint32_t a = i >> 10;

	*addr = (127u << 24) | ((16u + (a >> 16)) << 16) | (a & 0xffff);
	*port = (uint16_t)(20000 + (i & 1023));
}

int ug_raw_open(void)
{
	int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW), buf = 4 << 20;

	if (fd < 0) {
		printf("raw socket: %s\n", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf));
	return fd;
}

static void fill(struct pkt *p, uint16_t dport, uint32_t flow, uint32_t round)
{
	uint32_t saddr;
	uint16_t sport;

	memset(p, 0, sizeof(*p));
	ug_source(flow, &saddr, &sport);
	p->ip.version = 4;
	p->ip.ihl = 5;
	p->ip.ttl = 64;
	p->ip.protocol = IPPROTO_UDP;
	p->ip.tot_len = htons(sizeof(*p));
	p->ip.saddr = htonl(saddr);
	p->ip.daddr = htonl(INADDR_LOOPBACK);
	p->udp.source = htons(sport);
	p->udp.dest = htons(dport);
	p->udp.len = htons(sizeof(p->udp) + sizeof(p->m));
	p->m.quic[0] = 0x40;
	memset(&p->m.quic[1], 0xff, sizeof(p->m.quic) - 1);
	p->m.flow = flow;
	p->m.round = round;
}

static int send_batch(int raw, struct pkt *p, int n)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct mmsghdr mh[BATCH];
	struct iovec iov[BATCH];
	int done = 0;

	memset(mh, 0, sizeof(mh));
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = &p[i];
		iov[i].iov_len = sizeof(p[i]);
		mh[i].msg_hdr.msg_name = &to;
		mh[i].msg_hdr.msg_namelen = sizeof(to);
		mh[i].msg_hdr.msg_iov = &iov[i];
		mh[i].msg_hdr.msg_iovlen = 1;
	}
	while (done < n) {
		int r = sendmmsg(raw, mh + done, (unsigned)(n - done), 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			printf("sendmmsg: %s\n", strerror(errno));
			return -1;
		}
		done += r;
	}
	return 0;
}

int ug_send(int raw, uint16_t dport, uint32_t from, uint32_t to, uint32_t round)
{
	static struct pkt p[BATCH];

	while (from < to) {
		int n = to - from < BATCH ? (int)(to - from) : BATCH;

		for (int i = 0; i < n; i++)
			fill(&p[i], dport, from + (uint32_t)i, round);
		if (send_batch(raw, p, n) < 0)
			return -1;
		from += (uint32_t)n;
	}
	return 0;
}

int ug_send_cid(int raw, uint16_t dport, uint32_t flow, uint32_t round, const uint8_t *cid,
		size_t len)
{
	struct pkt p;

	fill(&p, dport, flow, round);
	if (len > sizeof(p.m.quic) - 1)
		return -1;
	memcpy(&p.m.quic[1], cid, len);
	return send_batch(raw, &p, 1);
}

int ug_rx_init(struct ug_rx *rx, int cap)
{
	memset(rx, 0, sizeof(*rx));
	rx->fd = calloc((size_t)cap, sizeof(int));
	rx->ep = epoll_create1(EPOLL_CLOEXEC);
	rx->cap = cap;
	return rx->fd && rx->ep >= 0 ? 0 : -1;
}

int ug_rx_socket(struct ug_rx *rx, uint16_t port, int rcvbuf)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)rx->n};
	int one = 1, fd;

	if (rx->n >= rx->cap)
		return -1;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    epoll_ctl(rx->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		printf("receiver %d: %s\n", rx->n, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	rx->fd[rx->n] = fd;
	return rx->n++;
}

void ug_rx_free(struct ug_rx *rx)
{
	for (int i = 0; i < rx->n; i++)
		close(rx->fd[i]);
	if (rx->ep >= 0)
		close(rx->ep);
	free(rx->fd);
	rx->fd = NULL;
	rx->n = 0;
	rx->ep = -1;
}

/* Read what socket @k holds now; how many datagrams. */
static long read_sock(struct ug_rx *rx, int k, void (*fn)(void *, int, const struct ug_msg *),
		      void *arg)
{
	struct mmsghdr mh[64];
	struct iovec iov[64];
	struct ug_msg m[64];
	struct sockaddr_in from[64];
	long got = 0;
	int r;

	do {
		memset(mh, 0, sizeof(mh));
		memset(from, 0, sizeof(from));
		for (int i = 0; i < 64; i++) {
			iov[i].iov_base = &m[i];
			iov[i].iov_len = sizeof(m[i]);
			mh[i].msg_hdr.msg_iov = &iov[i];
			mh[i].msg_hdr.msg_iovlen = 1;
			mh[i].msg_hdr.msg_name = &from[i];
			mh[i].msg_hdr.msg_namelen = sizeof(from[i]);
		}
		r = recvmmsg(rx->fd[k], mh, 64, MSG_DONTWAIT, NULL);
		for (int i = 0; i < r; i++) {
			uint32_t saddr;
			uint16_t sport;

			got++;
			if (mh[i].msg_len != sizeof(m[i]) || m[i].flow >= UG_FLOWS_MAX) {
				rx->bad++;
				continue;
			}
			ug_source(m[i].flow, &saddr, &sport);
			if (from[i].sin_addr.s_addr != htonl(saddr) ||
			    from[i].sin_port != htons(sport))
				rx->bad++;
			fn(arg, k, &m[i]);
		}
	} while (r == 64);
	return got;
}

long ug_collect(struct ug_rx *rx, long want, int ms, void (*fn)(void *, int, const struct ug_msg *),
		void *arg)
{
	struct epoll_event ev[64];
	uint64_t end = now_ms() + (uint64_t)ms;
	long got = 0;

	while (got < want && now_ms() < end) {
		int n = epoll_wait(rx->ep, ev, 64, 10);

		for (int i = 0; i < n; i++)
			got += read_sock(rx, (int)ev[i].data.u32, fn, arg);
	}
	return got;
}

unsigned long long ug_udp_drops(void)
{
	FILE *f = fopen("/proc/net/udp", "r");
	unsigned long long sum = 0;
	char line[512];

	while (f && fgets(line, sizeof(line), f)) {
		char *last = strrchr(line, ' ');

		if (last && strchr(line, ':') && strstr(line, "sl") == NULL)
			sum += strtoull(last + 1, NULL, 10);
	}
	if (f)
		fclose(f);
	return sum;
}

/* A 32-bit hash of a 4-tuple, as a flow table keyed by 32 bits would
 * have it: the tuple's words in 64 bits, mixed by multiplying with odd
 * constants (picked at random) and shifting, folded to 32 bits. Among n
 * tuples it collides about as often as any good 32-bit hash: n^2 / 2^33
 * times (116 for 1,000,000). */
static uint32_t hash32(uint32_t saddr, uint32_t daddr, uint32_t ports)
{
	uint64_t x = ((uint64_t)saddr << 32 | ports) ^ ((uint64_t)daddr * 0x9e3779b97f4a7c15ull);

	x ^= x >> 31;
	x *= 0x9e3b2e77e0b93dafull;
	x ^= x >> 29;
	x *= 0xf1bc0f0ce1a8c32full;
	x ^= x >> 32;
	return (uint32_t)x;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

long ug_hash32_collisions(uint32_t n, uint16_t dport)
{
	uint32_t *h = malloc((size_t)n * sizeof(*h));
	long dup = 0;

	if (!h)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t saddr;
		uint16_t sport;

		ug_source(i, &saddr, &sport);
		h[i] = hash32(htonl(saddr), htonl(INADDR_LOOPBACK),
			      (uint32_t)htons(sport) << 16 | htons(dport));
	}
	qsort(h, n, sizeof(*h), cmp_u32);
	for (uint32_t i = 1; i < n; i++)
		dup += h[i] == h[i - 1];
	free(h);
	return dup;
}

/* ---- what the scale cases share ---- */

double ug_secs_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

void ug_on_msg(void *arg, int sock, const struct ug_msg *m)
{
	struct ug_seen *s = arg;

	if (m->round != s->round || m->flow >= s->nflows) {
		s->stray++;
		return;
	}
	if (!s->learn) {
		s->mismatch += s->owner[m->flow] != (uint32_t)sock + 1;
		return;
	}
	if (s->owner[m->flow]) {
		s->dup++;
		return;
	}
	s->owner[m->flow] = (uint32_t)sock + 1;
	s->per[sock]++;
	s->off_gen += sock < s->lo || sock >= s->hi;
}

bool ug_round_trip(int raw, uint16_t dport, struct ug_rx *rx, struct ug_seen *s, uint32_t from,
		   uint32_t to)
{
	const uint32_t chunk = 8192;

	for (uint32_t a = from; a < to; a += chunk) {
		uint32_t b = to - a < chunk ? to : a + chunk;
		long got;

		if (ug_send(raw, dport, a, b, s->round) < 0)
			return false;
		got = ug_collect(rx, (long)(b - a), 5000, ug_on_msg, s);
		if (got != (long)(b - a)) {
			printf("round %u, flows %u to %u: %ld of %u read; drops: %llu by sockets, "
			       "%llu by the input backlog\n",
			       s->round, a, b, got, b - a, ug_udp_drops(), ur_backlog_drops());
			return false;
		}
	}
	return true;
}

int ug_status(char *out)
{
	char cmd[1024], path[64];
	int status, fd;
	ssize_t n = 0, r;

	if (!ct_have_tool()) {
		printf("no .output/sockmig here\n");
		return -1;
	}
	snprintf(path, sizeof(path), "/tmp/sockmig-scale-%d.out", (int)getpid());
	snprintf(cmd, sizeof(cmd), "%s status >%s 2>&1", ct_tool, path);
	status = system(cmd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	while (fd >= 0 && n < UG_OUT_MAX - 1 &&
	       (r = read(fd, out + n, (size_t)(UG_OUT_MAX - 1 - n))) > 0)
		n += r;
	out[n] = '\0';
	if (fd >= 0)
		close(fd);
	unlink(path);
	printf("$ sockmig status -> %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	for (char *p = out; *p;) {
		char *e = strchr(p, '\n');
		int len = e ? (int)(e - p) : (int)strlen(p);

		if (*p != '-')
			printf("%.*s\n", len > 400 ? 400 : len, p);
		p += len + (e != NULL);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
