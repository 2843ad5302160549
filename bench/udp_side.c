// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The UDP bench's two sides (see udp_bench.h). The server: one SO_REUSEPORT
 * socket per generation, each read by a thread of its own that counts the
 * datagrams and checks each one's flow against owner[], where the first
 * generation to read a datagram of a flow stakes its claim. The clients:
 * one thread, o->flows connected sockets at o->rate datagrams per second
 * each; a flow lives o->flow_ms, then a new flow (a new socket, on a
 * 4-tuple the run never used before) takes its place. With o->rebind_ms a
 * flow moves to a new socket (a new 4-tuple, the same flow) that often: a
 * NAT rebinding. Strategy quic-lb: the generation that owns a flow answers
 * its long-header packets with a connection ID minted for its socket, and
 * the client sends the rest of the flow in short-header packets with it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "burst.h"
#include "udp_priv.h"

#define BATCH 64

uint64_t ub_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void ub_sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int ub_server_socket(const struct sockaddr_in *addr)
{
	int one = 1, buf = 4 << 20;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0 ||
	    bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* One datagram read by generation @gn: its flow's owner claimed or checked.
 * Whether @gn owns the flow. */
static bool account(struct ub_gen *gn, const struct ub_dgram *d, uint64_t *mis)
{
	uint32_t want = 0;

	if (d->flow >= gn->b->nflows) {
		(*mis)++; /* no flow of this run: not its owner either */
		return false;
	}
	if (!atomic_compare_exchange_strong(&gn->b->owner[d->flow], &want, gn->gen) &&
	    want != gn->gen) {
		(*mis)++;
		return false;
	}
	return true;
}

/*
 * quic-lb: the owner's answer to a long-header packet (a client without
 * its CID yet): a Handshake-like packet to the client's source CID whose
 * source CID is one that the group routes to @gn's socket, minted for it.
 */
static void quic_answer(struct ub_gen *gn, const uint8_t *p, size_t len,
			const struct sockaddr_in *to)
{
	uint8_t a[UB_PKT_MAX];
	size_t n = 0, dl = len > 5 ? p[5] : 0;
	int cl;

	if (len < 7 + dl + UB_SCID_LEN || p[6 + dl] != UB_SCID_LEN)
		return;
	a[n++] = 0xe0; /* long header, fixed bit, Handshake */
	a[n++] = 0, a[n++] = 0, a[n++] = 0, a[n++] = 1;
	a[n++] = UB_SCID_LEN;
	memcpy(a + n, p + 7 + dl, UB_SCID_LEN);
	n += UB_SCID_LEN;
	cl = sockmig_quic_cid_encode(gn->b->g, gn->fd, a + n + 1, SOCKMIG_QUIC_CID_MAX);
	if (cl <= 0)
		return; /* not registered yet: the client asks again */
	a[n++] = (uint8_t)cl;
	n += (size_t)cl;
	if (sendto(gn->fd, a, n, 0, (const struct sockaddr *)to, sizeof(*to)) == (ssize_t)n)
		atomic_fetch_add_explicit(&gn->b->cids, 1, memory_order_relaxed);
}

static void *serve(void *arg)
{
	struct ub_gen *gn = arg;
	bool quic = gn->b->o->strategy == UB_QUIC_LB;
	uint8_t buf[BATCH][UB_PKT_MAX];
	struct sockaddr_in from[BATCH];
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	struct pollfd p = {.fd = gn->fd, .events = POLLIN};

	for (int i = 0; i < BATCH; i++) {
		iov[i].iov_base = buf[i];
		iov[i].iov_len = sizeof(buf[i]);
	}
	while (!atomic_load(&gn->stop)) {
		int n;

		if (poll(&p, 1, 20) <= 0)
			continue;
		for (;;) {
			uint64_t mis = 0, got = 0;

			memset(m, 0, sizeof(m));
			for (int i = 0; i < BATCH; i++) {
				m[i].msg_hdr.msg_iov = &iov[i];
				m[i].msg_hdr.msg_iovlen = 1;
				m[i].msg_hdr.msg_name = &from[i];
				m[i].msg_hdr.msg_namelen = sizeof(from[i]);
			}
			n = recvmmsg(gn->fd, m, BATCH, MSG_DONTWAIT, NULL);
			if (n <= 0)
				break;
			for (int i = 0; i < n; i++) {
				size_t len = m[i].msg_len;
				struct ub_dgram d;

				/* the flow and sequence: the last octets (all of
				 * them but in quic-lb) */
				if (len < sizeof(d) || (!quic && len != sizeof(d)))
					continue;
				memcpy(&d, buf[i] + len - sizeof(d), sizeof(d));
				got++;
				if (account(gn, &d, &mis) && quic && (buf[i][0] & 0x80))
					quic_answer(gn, buf[i], len - sizeof(d), &from[i]);
			}
			atomic_fetch_add_explicit(&gn->received, got, memory_order_relaxed);
			if (mis)
				atomic_fetch_add_explicit(&gn->misroutes, mis,
							  memory_order_relaxed);
		}
	}
	return NULL;
}

int ub_gen_start(struct ub_gen *gn)
{
	atomic_store(&gn->stop, false);
	atomic_store(&gn->received, 0);
	atomic_store(&gn->misroutes, 0);
	if (pthread_create(&gn->th, NULL, serve, gn) != 0)
		return -1;
	gn->running = true;
	return 0;
}

void ub_gen_close(struct ub *b, struct ub_gen *gn)
{
	if (gn->running) {
		atomic_store(&gn->stop, true);
		pthread_join(gn->th, NULL);
		gn->running = false;
	}
	if (gn->fd >= 0)
		close(gn->fd);
	gn->fd = -1;
	b->received += atomic_load(&gn->received);
	b->misroutes += atomic_load(&gn->misroutes);
	atomic_store(&gn->received, 0);
	atomic_store(&gn->misroutes, 0);
	gn->used = false;
}

uint64_t ub_received(struct ub *b)
{
	uint64_t n = b->received;

	for (int i = 0; i < UB_MAX_LIVE; i++)
		if (b->gens[i].used)
			n += atomic_load(&b->gens[i].received);
	return n;
}

/* ---- the clients ---------------------------------------------------------- */

/* Source ports of the flows: each address of 127.1.0.0/16 gives this many. */
#define PORT_BASE 20000
#define PORTS_PER 40000

/* A connected socket for flow @id, from an address and port no other flow
 * of the run uses: no flow inherits an older one's 4-tuple (and its place
 * in a flow table). */
static int flow_socket(struct ub *b, uint64_t id)
{
	struct sockaddr_in src = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	src.sin_addr.s_addr = htonl(0x7f010000u + 1 + (uint32_t)(id / PORTS_PER));
	src.sin_port = htons((uint16_t)(PORT_BASE + id % PORTS_PER));
	if (fd >= 0 && (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
			connect(fd, (struct sockaddr *)&b->addr, sizeof(b->addr)) < 0)) {
		snprintf(b->client_error, sizeof(b->client_error), "flow %llu: %s",
			 (unsigned long long)id, strerror(errno));
		close(fd);
		return -1;
	}
	if (fd < 0)
		snprintf(b->client_error, sizeof(b->client_error), "flow socket: %s",
			 strerror(errno));
	return fd;
}

struct slot {
	int fd;
	uint64_t flow, seq, start, next, rebind;
	uint8_t dcid[8], cid[SOCKMIG_QUIC_CID_MAX];
	size_t cidlen; /* quic-lb: 0 until the server's CID came */
};

/* A cheap 64-bit mix: a flow's Initial DCID, not a secret. */
static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Slot @s takes flow @flow (its first datagram not sent yet). */
static void slot_flow(struct slot *s, uint64_t flow, uint64_t seed)
{
	uint64_t r = mix64(flow ^ seed);

	s->flow = flow;
	s->seq = 0;
	s->cidlen = 0;
	memcpy(s->dcid, &r, sizeof(s->dcid));
	/* config rotation 7, length 8: never a CID that the group minted */
	s->dcid[0] = 0xe7;
}

/*
 * What slot @s sends: @d alone; in quic-lb, after a short header with the
 * server's CID once it has one, else after a long header (Initial) to the
 * client's DCID, with the flow's id as the client's source CID.
 */
static size_t slot_packet(const struct ub *b, const struct slot *s, const struct ub_dgram *d,
			  uint8_t *p)
{
	size_t n = 0;

	if (b->o->strategy == UB_QUIC_LB && s->cidlen) {
		p[n++] = 0x40; /* short header, fixed bit */
		memcpy(p + n, s->cid, s->cidlen);
		n += s->cidlen;
	} else if (b->o->strategy == UB_QUIC_LB) {
		p[n++] = 0xc0; /* long header, fixed bit, Initial */
		p[n++] = 0, p[n++] = 0, p[n++] = 0, p[n++] = 1;
		p[n++] = sizeof(s->dcid);
		memcpy(p + n, s->dcid, sizeof(s->dcid));
		n += sizeof(s->dcid);
		p[n++] = UB_SCID_LEN;
		memcpy(p + n, &s->flow, UB_SCID_LEN);
		n += UB_SCID_LEN;
	}
	memcpy(p + n, d, sizeof(*d));
	return n + sizeof(*d);
}

/* quic-lb: the server's answer, if it came: its source CID is the flow's. */
static void slot_read_cid(struct slot *s)
{
	uint8_t a[UB_PKT_MAX];
	ssize_t n = recv(s->fd, a, sizeof(a), MSG_DONTWAIT);
	size_t cl;

	if (n < 7 + UB_SCID_LEN || !(a[0] & 0x80) || a[5] != UB_SCID_LEN ||
	    memcmp(a + 6, &s->flow, UB_SCID_LEN) != 0)
		return;
	cl = a[6 + UB_SCID_LEN];
	if (cl < SOCKMIG_QUIC_CID_MIN || cl > SOCKMIG_QUIC_CID_MAX ||
	    (size_t)n < 7 + UB_SCID_LEN + cl)
		return;
	memcpy(s->cid, a + 7 + UB_SCID_LEN, cl);
	s->cidlen = cl;
}

/* Slot @s's flow moves to a new 4-tuple (@tuple): a NAT rebinding. */
static int slot_rebind(struct ub *b, struct slot *s, uint64_t *tuple)
{
	close(s->fd);
	if (*tuple >= b->ntuples) {
		s->fd = -1;
		snprintf(b->client_error, sizeof(b->client_error), "out of 4-tuples");
		return -1;
	}
	s->fd = flow_socket(b, (*tuple)++);
	return s->fd < 0 ? -1 : 0;
}

static void *clients(void *arg)
{
	struct ub *b = arg;
	const struct udp_bench_opts *o = b->o;
	bool quic = o->strategy == UB_QUIC_LB;
	uint64_t period = 1000000000ull / o->rate, life = (uint64_t)o->flow_ms * 1000000ull;
	uint64_t rebind = (uint64_t)o->rebind_ms * 1000000ull;
	uint64_t t0 = ub_now_ns(), end = t0 + (uint64_t)o->secs * 1000000000ull, id = 0, tuple = 0;
	struct slot *s = calloc(o->flows, sizeof(*s));

	for (uint32_t i = 0; s && i < o->flows; i++)
		s[i].fd = -1;
	/* staggered: sends spread over a period, renewals over a life,
	 * rebindings over their interval */
	for (uint32_t i = 0; s && i < o->flows; i++) {
		slot_flow(&s[i], id++, t0);
		s[i].fd = flow_socket(b, tuple++);
		if (s[i].fd < 0)
			goto out;
		s[i].start = t0 - life * i / o->flows;
		s[i].next = t0 + period * i / o->flows;
		s[i].rebind = t0 + rebind * (i + 1) / o->flows;
	}
	for (uint64_t now = ub_now_ns(); s && now < end; now = ub_now_ns()) {
		for (uint32_t i = 0; i < o->flows; i++) {
			uint8_t p[UB_PKT_MAX];
			struct ub_dgram d;
			size_t len;

			if (now - s[i].start >= life) {
				if (id >= b->nflows ||
				    slot_rebind(b, &s[i], &tuple) < 0) /* a new 4-tuple */
					goto out; /* cannot be: nflows covers the run */
				slot_flow(&s[i], id++, t0);
				s[i].start = now;
				s[i].rebind = now + rebind;
			}
			if (quic && s[i].seq && !s[i].cidlen)
				slot_read_cid(&s[i]);
			/* a flow that has sent (quic-lb: and has its CID) moves */
			if (rebind && now >= s[i].rebind && s[i].seq && (!quic || s[i].cidlen)) {
				if (slot_rebind(b, &s[i], &tuple) < 0)
					goto out;
				atomic_fetch_add_explicit(&b->rebinds, 1, memory_order_relaxed);
				s[i].rebind = now + rebind;
			}
			if (s[i].next > now)
				continue;
			d.flow = s[i].flow;
			d.seq = s[i].seq++;
			len = slot_packet(b, &s[i], &d, p);
			if (send(s[i].fd, p, len, 0) == (ssize_t)len) {
				atomic_fetch_add_explicit(&b->sent, 1, memory_order_relaxed);
				if (!d.seq)
					atomic_fetch_add(&b->flows_started, 1);
			} else {
				atomic_fetch_add_explicit(&b->send_errors, 1, memory_order_relaxed);
			}
			/* behind (a loaded machine): skip, never burst */
			s[i].next += period;
			if (s[i].next <= now)
				s[i].next = now + period;
		}
		ub_sleep_ns(500000);
	}
out:
	for (uint32_t i = 0; s && i < o->flows; i++)
		if (s[i].fd >= 0)
			close(s[i].fd);
	if (!s)
		snprintf(b->client_error, sizeof(b->client_error), "out of memory");
	free(s);
	atomic_store(&b->client_done, true);
	return NULL;
}

int ub_client_start(struct ub *b)
{
	if (pthread_create(&b->cth, NULL, clients, b) != 0)
		return -1;
	b->client_running = true;
	return 0;
}

void ub_client_join(struct ub *b)
{
	if (b->client_running)
		pthread_join(b->cth, NULL);
	b->client_running = false;
}

/* ---- the namespace ---------------------------------------------------------- */

int ub_netns_setup(uint64_t fds, char *err, size_t errlen)
{
	struct rlimit rl;

	if (unshare(CLONE_NEWNET) < 0) {
		snprintf(err, errlen, "cannot create a network namespace: %s (run as root)",
			 strerror(errno));
		return -1;
	}
	if (sockmig_lo_up() < 0) {
		snprintf(err, errlen, "cannot set up the network namespace: %s",
			 sockmig_last_error());
		return -1;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < fds) {
		rl.rlim_cur = fds;
		if (rl.rlim_max < fds)
			rl.rlim_max = fds;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			snprintf(err, errlen, "cannot raise RLIMIT_NOFILE to %llu: %s",
				 (unsigned long long)fds, strerror(errno));
			return -1;
		}
	}
	return 0;
}

int ub_in_child(void (*fn)(void *), void *arg, size_t len, char *err, size_t errlen)
{
	return burst_in_child(fn, arg, arg, len, err, errlen);
}

const char *ub_pin_root(void)
{
	const char *root = getenv("SOCKMIG_PIN_ROOT");

	return root && root[0] ? root : SOCKMIG_PIN_ROOT;
}
