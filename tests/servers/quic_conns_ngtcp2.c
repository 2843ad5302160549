/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The client of tests/servers/quic_conns_client.py, in C over libngtcp2 and
 * GnuTLS: many long-lived QUIC connections to 127.0.0.1:PORT, each its own
 * UDP socket (its own flow), each sending one ack-eliciting datagram every
 * --interval-ms for the whole run, at a fraction of aioquic's CPU time.
 *
 *   quic_conns_ngtcp2 --port P --conns N --ramp-secs R --secs S
 *                     [--interval-ms MS] [--timeout S] [--rebind-ms 0]
 *
 * Same command line, stdin/stdout protocol and JSON line as the python:
 * "held", a "go" line on stdin, the N connections opened evenly over R
 * seconds, each asking "gen?" on a stream once its handshake is done; then
 * a "ping" every MS ms until S seconds after "go", every connection closed
 * (CONNECTION_CLOSE, error 0), one JSON line. ngtcp2 has no PING call: a
 * ping is one octet on a second bidirectional stream that never ends
 * (opened at the first ping), acknowledged when ngtcp2 reports that octet
 * acknowledged. --rebind-ms is refused unless 0.
 *
 * One epoll loop; ngtcp2's timers and the pings' times in two binary
 * min-heaps indexed from the connections, so a wakeup costs O(log N).
 * The server's certificate is not verified (it is self-signed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#define ALPN	   "sockmig-test"
#define SCID_LEN   12
#define DCID_LEN   16
#define MAX_CONNS  5000
#define RECV_BURST 16
#define RECV_LEN   4096
#define NOPOS	   SIZE_MAX
#define MS	   ((uint64_t)1000000)
#define SEC	   ((uint64_t)1000000000)
#define PING_BUF   1024
#define TLS_PRIORITY                                                                               \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"                     \
	"+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:%DISABLE_TLS13_COMPAT_MODE"

enum { K_TIMER, K_PING }; /* a connection's two heap keys */
enum why { WHY_NONE, WHY_HANDSHAKE, WHY_CLOSED };

struct client;

struct conn {
	struct client *cl;
	ngtcp2_conn *q;
	gnutls_session_t tls;
	ngtcp2_crypto_conn_ref ref;
	int fd;
	struct sockaddr_in local;
	uint64_t key[2];		 /* ngtcp2's expiry, the next ping (ns) */
	size_t idx[2];			 /* places in the heaps, or NOPOS */
	uint64_t opened, up, first_ping; /* 0: not yet */
	int64_t req_sid, ping_sid;	 /* -1: not open */
	size_t req_off, ping_pending;
	char ans[16];
	size_t anslen;
	long gen;
	bool has_gen, dead;
	enum why failed;
	uint64_t pings, acked, sent, sent0, recv;
};

struct heap {
	struct conn **v;
	size_t n;
	int k;
};

struct client {
	struct sockaddr_in srv;
	long nconns;
	uint64_t ramp, secs, ival, timeout; /* ns */
	int ep;
	struct conn *conns;
	long opened, settled; /* settled: answered, or dead before */
	struct heap timers, pings;
	struct conn **due;
	uint64_t now, late;
	bool stopping;
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
};

static const uint8_t req_data[] = "gen?\n";
static uint8_t ping_data[PING_BUF];
/* ngtcp2 writes at most settings.max_tx_udp_payload_size (1452) octets */
static uint8_t wbuf[NGTCP2_MAX_PMTUD_UDP_PAYLOAD_SIZE];

static void fail(const char *what)
{
	fprintf(stderr, "Error: %s\n", what);
	exit(1);
}

static void fail_errno(const char *what)
{
	fprintf(stderr, "Error: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

/* Random octets from a pool that getrandom() refills: ngtcp2 asks often. */
static void rand_fill(uint8_t *dst, size_t len)
{
	static uint8_t pool[4096];
	static size_t left;

	while (len) {
		size_t n;

		if (!left) {
			if (getrandom(pool, sizeof(pool), 0) != (ssize_t)sizeof(pool))
				fail_errno("getrandom");
			left = sizeof(pool);
		}
		n = len < left ? len : left;
		memcpy(dst, pool + sizeof(pool) - left, n);
		left -= n;
		dst += n;
		len -= n;
	}
}

/* Binary min-heaps of connections by key[h->k]; idx[h->k] is a place. */
static void heap_put(struct heap *h, size_t i, struct conn *c)
{
	h->v[i] = c;
	c->idx[h->k] = i;
}

static void heap_up(struct heap *h, size_t i)
{
	struct conn *c = h->v[i];

	while (i) {
		size_t p = (i - 1) / 2;

		if (h->v[p]->key[h->k] <= c->key[h->k])
			break;
		heap_put(h, i, h->v[p]);
		i = p;
	}
	heap_put(h, i, c);
}

static void heap_down(struct heap *h, size_t i)
{
	struct conn *c = h->v[i];

	for (;;) {
		size_t l = 2 * i + 1, m = l;

		if (l >= h->n)
			break;
		if (l + 1 < h->n && h->v[l + 1]->key[h->k] < h->v[l]->key[h->k])
			m = l + 1;
		if (c->key[h->k] <= h->v[m]->key[h->k])
			break;
		heap_put(h, i, h->v[m]);
		i = m;
	}
	heap_put(h, i, c);
}

static void heap_del(struct heap *h, struct conn *c)
{
	size_t i = c->idx[h->k];
	struct conn *last;

	if (i == NOPOS)
		return;
	c->idx[h->k] = NOPOS;
	last = h->v[--h->n];
	if (last == c)
		return;
	heap_put(h, i, last);
	heap_up(h, i);
	heap_down(h, last->idx[h->k]);
}

/* Give c the key t, in the heap or into it. */
static void heap_set(struct heap *h, struct conn *c, uint64_t t)
{
	size_t i = c->idx[h->k];

	c->key[h->k] = t;
	if (i == NOPOS) {
		heap_put(h, h->n++, c);
		heap_up(h, h->n - 1);
		return;
	}
	heap_up(h, i);
	heap_down(h, c->idx[h->k]);
}

static struct conn *heap_top(const struct heap *h)
{
	return h->n ? h->v[0] : NULL;
}

/* c is over: its socket closed, its QUIC and TLS state freed. */
static void drop(struct conn *c, enum why why)
{
	struct client *cl = c->cl;

	if (c->dead)
		return;
	c->dead = true;
	if (!cl->stopping)
		c->failed = why;
	if (!c->has_gen)
		cl->settled++;
	heap_del(&cl->timers, c);
	heap_del(&cl->pings, c);
	close(c->fd);
	ngtcp2_conn_del(c->q);
	gnutls_deinit(c->tls);
	c->q = NULL;
}

static void conn_end(struct conn *c)
{
	drop(c, c->has_gen ? WHY_CLOSED : WHY_HANDSHAKE);
}

static void send_pkt(struct conn *c, size_t n)
{
	if (send(c->fd, wbuf, n, 0) == (ssize_t)n)
		c->sent++;
}

/* A fatal error @rv of ngtcp2: the peer told (CONNECTION_CLOSE) unless
 * the connection is closing or draining already, then c is over. */
static void conn_fail(struct conn *c, int rv, uint64_t now)
{
	ngtcp2_ccerr err;
	ngtcp2_ssize n;

	if (rv != NGTCP2_ERR_DRAINING && rv != NGTCP2_ERR_CLOSING && rv != NGTCP2_ERR_DROP_CONN &&
	    rv != NGTCP2_ERR_IDLE_CLOSE) {
		ngtcp2_ccerr_default(&err);
		ngtcp2_ccerr_set_liberr(&err, rv, NULL, 0);
		n = ngtcp2_conn_write_connection_close(c->q, NULL, NULL, wbuf, sizeof(wbuf), &err,
						       now);
		if (n > 0)
			send_pkt(c, (size_t)n);
	}
	conn_end(c);
}

static void arm(struct conn *c)
{
	uint64_t t = ngtcp2_conn_get_expiry(c->q);

	if (t == UINT64_MAX)
		heap_del(&c->cl->timers, c);
	else
		heap_set(&c->cl->timers, c, t);
}

/* Write every packet ngtcp2 has for c (its streams' data first), then
 * re-arm its timer. */
static void flush(struct conn *c, uint64_t now)
{
	bool blocked = false;

	if (c->up && c->req_sid < 0 && ngtcp2_conn_open_bidi_stream(c->q, &c->req_sid, NULL) < 0)
		c->req_sid = -1;
	for (;;) {
		ngtcp2_vec v = {0};
		ngtcp2_ssize n, dl = -1;
		uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_NONE;
		int64_t sid = -1;

		if (!blocked && c->req_sid >= 0 && c->req_off < sizeof(req_data) - 1) {
			sid = c->req_sid;
			v.base = (uint8_t *)req_data + c->req_off;
			v.len = sizeof(req_data) - 1 - c->req_off;
			flags = NGTCP2_WRITE_STREAM_FLAG_FIN;
		} else if (!blocked && c->ping_sid >= 0 && c->ping_pending) {
			sid = c->ping_sid;
			v.base = ping_data;
			v.len = c->ping_pending;
		}
		n = ngtcp2_conn_writev_stream(c->q, NULL, NULL, wbuf, sizeof(wbuf), &dl, flags, sid,
					      &v, sid < 0 ? 0 : 1, now);
		if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
		    n == NGTCP2_ERR_STREAM_NOT_FOUND) {
			blocked = true;
			continue;
		}
		if (n < 0) {
			conn_fail(c, (int)n, now);
			return;
		}
		if (dl > 0 && sid == c->req_sid)
			c->req_off += (size_t)dl;
		else if (dl > 0 && sid == c->ping_sid)
			c->ping_pending -= (size_t)dl;
		if (n == 0)
			break;
		send_pkt(c, (size_t)n);
	}
	ngtcp2_conn_update_pkt_tx_time(c->q, now);
	arm(c);
}

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
	return ((struct conn *)ref->user_data)->q;
}

static void on_rand(uint8_t *dest, size_t destlen, const ngtcp2_rand_ctx *ctx)
{
	(void)ctx;
	rand_fill(dest, destlen);
}

static int on_new_cid(ngtcp2_conn *q, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *ud)
{
	(void)q;
	(void)ud;
	rand_fill(cid->data, cidlen);
	cid->datalen = cidlen;
	rand_fill(token, NGTCP2_STATELESS_RESET_TOKENLEN);
	return 0;
}

static int on_handshake(ngtcp2_conn *q, void *ud)
{
	struct conn *c = ud;

	(void)q;
	c->up = c->cl->now;
	return 0;
}

/* The answer "gen=G\n" with its FIN: c's generation, its pings from now. */
static int on_stream_data(ngtcp2_conn *q, uint32_t flags, int64_t sid, uint64_t off,
			  const uint8_t *data, size_t len, void *ud, void *sud)
{
	struct conn *c = ud;
	struct client *cl = c->cl;
	size_t n = len;

	(void)off;
	(void)sud;
	ngtcp2_conn_extend_max_stream_offset(q, sid, len);
	ngtcp2_conn_extend_max_offset(q, len);
	if (sid != c->req_sid || c->has_gen)
		return 0;
	if (n > sizeof(c->ans) - 1 - c->anslen)
		n = sizeof(c->ans) - 1 - c->anslen;
	memcpy(c->ans + c->anslen, data, n);
	c->anslen += n;
	c->ans[c->anslen] = '\0';
	if (!(flags & NGTCP2_STREAM_DATA_FLAG_FIN) || strncmp(c->ans, "gen=", 4))
		return 0;
	c->gen = strtol(c->ans + 4, NULL, 10);
	c->has_gen = true;
	cl->settled++;
	heap_set(&cl->pings, c, cl->now + cl->ival);
	return 0;
}

static int on_acked(ngtcp2_conn *q, int64_t sid, uint64_t off, uint64_t len, void *ud, void *sud)
{
	struct conn *c = ud;

	(void)q;
	(void)off;
	(void)sud;
	if (sid == c->ping_sid)
		c->acked += len;
	return 0;
}

static const ngtcp2_callbacks callbacks = {
	.client_initial = ngtcp2_crypto_client_initial_cb,
	.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
	.handshake_completed = on_handshake,
	.encrypt = ngtcp2_crypto_encrypt_cb,
	.decrypt = ngtcp2_crypto_decrypt_cb,
	.hp_mask = ngtcp2_crypto_hp_mask_cb,
	.recv_stream_data = on_stream_data,
	.acked_stream_data_offset = on_acked,
	.recv_retry = ngtcp2_crypto_recv_retry_cb,
	.rand = on_rand,
	.get_new_connection_id = on_new_cid,
	.update_key = ngtcp2_crypto_update_key_cb,
	.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
	.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
	.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
	.version_negotiation = ngtcp2_crypto_version_negotiation_cb,
};

static ngtcp2_path conn_path(struct conn *c)
{
	ngtcp2_path p = {
		.local = {(ngtcp2_sockaddr *)&c->local, sizeof(c->local)},
		.remote = {(ngtcp2_sockaddr *)&c->cl->srv, sizeof(c->cl->srv)},
	};

	return p;
}

static int tls_new(struct client *cl, struct conn *c)
{
	gnutls_datum_t alpn = {(unsigned char *)ALPN, sizeof(ALPN) - 1};

	if (gnutls_init(&c->tls, GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA) < 0)
		return -1;
	c->ref.get_conn = get_conn;
	c->ref.user_data = c;
	gnutls_session_set_ptr(c->tls, &c->ref);
	if (gnutls_priority_set(c->tls, cl->prio) < 0 ||
	    gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, cl->cred) < 0 ||
	    ngtcp2_crypto_gnutls_configure_client_session(c->tls) < 0 ||
	    gnutls_alpn_set_protocols(c->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY) < 0 ||
	    gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, "localhost", 9) < 0) {
		gnutls_deinit(c->tls);
		return -1;
	}
	return 0;
}

/* The next connection: its socket, its QUIC state, its Initial sent. */
static void conn_open(struct client *cl, uint64_t now)
{
	struct conn *c = &cl->conns[cl->opened++];
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	socklen_t alen = sizeof(c->local);
	ngtcp2_transport_params params;
	ngtcp2_settings set;
	ngtcp2_cid dcid, scid;
	ngtcp2_path path;

	c->cl = cl;
	c->opened = now;
	c->req_sid = c->ping_sid = -1;
	c->idx[K_TIMER] = c->idx[K_PING] = NOPOS;
	c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		fail_errno("socket");
	c->local.sin_family = AF_INET;
	c->local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(c->fd, (struct sockaddr *)&c->local, sizeof(c->local)) < 0 ||
	    connect(c->fd, (struct sockaddr *)&cl->srv, sizeof(cl->srv)) < 0 ||
	    getsockname(c->fd, (struct sockaddr *)&c->local, &alen) < 0)
		fail_errno("a connection's socket");
	if (epoll_ctl(cl->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		fail_errno("epoll_ctl");

	dcid.datalen = DCID_LEN;
	rand_fill(dcid.data, DCID_LEN);
	scid.datalen = SCID_LEN;
	rand_fill(scid.data, SCID_LEN);
	ngtcp2_settings_default(&set);
	set.initial_ts = now;
	set.no_pmtud = 1; /* no probes: datagrams are counted */
	ngtcp2_transport_params_default(&params);
	params.initial_max_stream_data_bidi_local = 64 << 10;
	params.initial_max_stream_data_bidi_remote = 64 << 10;
	params.initial_max_data = 1 << 20;
	params.max_idle_timeout = 10 * NGTCP2_SECONDS;
	path = conn_path(c);
	if (ngtcp2_conn_client_new(&c->q, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &callbacks,
				   &set, &params, NULL, c) < 0)
		fail("ngtcp2_conn_client_new failed");
	if (tls_new(cl, c) < 0) {
		ngtcp2_conn_del(c->q);
		fail("a TLS session could not be made");
	}
	ngtcp2_conn_set_tls_native_handle(c->q, c->tls);
	flush(c, now);
}

/* Up to RECV_BURST datagrams of c (one system call), then what they call
 * for. */
static void conn_read(struct conn *c)
{
	static uint8_t bufs[RECV_BURST][RECV_LEN];
	struct mmsghdr mm[RECV_BURST];
	struct iovec iov[RECV_BURST];
	ngtcp2_path path = conn_path(c);
	int i, n;

	for (i = 0; i < RECV_BURST; i++) {
		iov[i] = (struct iovec){bufs[i], RECV_LEN};
		mm[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
	}
	n = recvmmsg(c->fd, mm, RECV_BURST, MSG_DONTWAIT, NULL);
	for (i = 0; i < n; i++) {
		int rv;

		c->recv++;
		if (mm[i].msg_hdr.msg_flags & MSG_TRUNC)
			continue; /* not QUIC's: larger than any it sends */
		c->cl->now = mono_ns();
		rv = ngtcp2_conn_read_pkt(c->q, &path, NULL, bufs[i], mm[i].msg_len, c->cl->now);
		if (rv < 0) {
			conn_fail(c, rv, c->cl->now);
			return;
		}
	}
	c->cl->now = mono_ns();
	flush(c, c->cl->now);
}

/* The pings due: one octet each on the ping stream. */
static void ping(struct client *cl, uint64_t now)
{
	struct conn *c;

	while ((c = heap_top(&cl->pings)) && c->key[K_PING] <= now) {
		uint64_t t = c->key[K_PING];

		if (now - t > cl->ival / 2)
			cl->late++;
		if (c->ping_sid < 0 && ngtcp2_conn_open_bidi_stream(c->q, &c->ping_sid, NULL) < 0)
			c->ping_sid = -1;
		if (c->ping_sid >= 0 && c->ping_pending < PING_BUF) {
			c->ping_pending++;
			c->pings++;
			if (!c->first_ping) {
				c->first_ping = now;
				c->sent0 = c->sent;
			}
		}
		flush(c, now);
		if (c->dead)
			continue;
		/* the next one on the schedule; a backlog of more than one
		 * interval is dropped, not sent in a burst */
		heap_set(&cl->pings, c, t + 2 * cl->ival > now ? t + cl->ival : now);
	}
}

/* ngtcp2's timers due, each connection once. */
static void timers(struct client *cl, uint64_t now)
{
	struct conn *c;
	size_t n = 0, i;

	while ((c = heap_top(&cl->timers)) && c->key[K_TIMER] <= now) {
		heap_del(&cl->timers, c);
		cl->due[n++] = c;
	}
	for (i = 0; i < n; i++) {
		c = cl->due[i];
		if (c->dead)
			continue;
		if (ngtcp2_conn_handle_expiry(c->q, now) < 0) {
			conn_end(c);
			continue;
		}
		flush(c, now);
	}
}

/* Drop the connections whose handshake or answer is out of time. */
static void expire(struct client *cl, uint64_t now)
{
	long i;

	for (i = 0; i < cl->opened; i++) {
		struct conn *c = &cl->conns[i];

		if (!c->dead && !c->has_gen && now >= c->opened + cl->timeout)
			drop(c, WHY_HANDSHAKE);
	}
}

static uint64_t open_at(const struct client *cl, uint64_t start)
{
	return start + (uint64_t)((double)cl->opened * (double)cl->ramp / (double)cl->nconns);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Python's repr(round(v, 2)) */
static const char *fmt2(char *buf, size_t len, double v)
{
	size_t n = (size_t)snprintf(buf, len, "%.2f", v);

	while (n > 2 && buf[n - 1] == '0' && buf[n - 2] != '.')
		buf[--n] = '\0';
	return buf;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct gen_sent {
	long gen;
	uint64_t sent;
};

static int cmp_gen(const void *a, const void *b)
{
	const struct gen_sent *x = a, *y = b;

	return (x->gen > y->gen) - (x->gen < y->gen);
}

/* Close every live connection; print the JSON line of the python. */
static void report(struct client *cl, uint64_t start, uint64_t all_up)
{
	uint64_t now = mono_ns(), t[6] = {0}; /* established failed closed alive sent recv */
	uint64_t pings = 0, acked = 0;
	double *rates = calloc((size_t)cl->opened + 1, sizeof(*rates));
	struct gen_sent *gs = calloc((size_t)cl->opened + 1, sizeof(*gs));
	size_t nr = 0, ng = 0, i;
	char b1[64], b2[64], b3[64], b4[64];
	struct rusage ru;
	long k;

	if (!rates || !gs)
		fail("out of memory");
	cl->stopping = true;
	for (k = 0; k < cl->opened; k++) {
		struct conn *c = &cl->conns[k];
		ngtcp2_ccerr err;
		ngtcp2_ssize n;

		if (c->dead)
			continue;
		if (c->first_ping && now - c->first_ping >= SEC)
			rates[nr++] = (double)(c->sent - c->sent0) /
				      ((double)(now - c->first_ping) / (double)SEC);
		ngtcp2_ccerr_default(&err);
		n = ngtcp2_conn_write_connection_close(c->q, NULL, NULL, wbuf, sizeof(wbuf), &err,
						       now);
		if (n > 0)
			send_pkt(c, (size_t)n);
	}
	for (k = 0; k < cl->opened; k++) {
		struct conn *c = &cl->conns[k];

		t[0] += c->up != 0;
		t[1] += c->failed == WHY_HANDSHAKE;
		t[2] += c->failed == WHY_CLOSED;
		t[3] += !c->dead;
		t[4] += c->sent;
		t[5] += c->recv;
		pings += c->pings;
		acked += c->acked;
		if (c->has_gen)
			gs[ng++] = (struct gen_sent){c->gen, c->sent};
	}
	qsort(rates, nr, sizeof(*rates), cmp_double);
	qsort(gs, ng, sizeof(*gs), cmp_gen);
	printf("{\"opened\": %ld, \"established\": %lu, \"failed_handshake\": %lu, "
	       "\"closed_early\": %lu, \"alive\": %lu, \"rebinds\": 0, \"sent\": %lu, "
	       "\"recv\": %lu, \"pings\": %lu, \"pings_acked\": %lu, \"late_pings\": %lu, "
	       "\"all_up_ms\": %ld, \"stop_ms\": %lu, \"rate_min\": %s, \"rate_p50\": %s, "
	       "\"rated\": %zu, \"gens\": {",
	       cl->opened, t[0], t[1], t[2], t[3], t[4], t[5], pings, acked, cl->late,
	       all_up ? (long)(all_up / MS) : -1L, now / MS,
	       nr ? fmt2(b1, sizeof(b1), rates[0]) : "0",
	       nr ? fmt2(b2, sizeof(b2), rates[nr / 2]) : "0", nr);
	for (i = 0; i < ng;) {
		size_t j = i;
		uint64_t sent = 0;

		for (; j < ng && gs[j].gen == gs[i].gen; j++)
			sent += gs[j].sent;
		printf("%s\"%ld\": [%zu, %lu]", i ? ", " : "", gs[i].gen, j - i, sent);
		i = j;
	}
	getrusage(RUSAGE_SELF, &ru);
	printf("}, \"secs\": %s, \"cpu_s\": %s}\n",
	       fmt2(b3, sizeof(b3), (double)(now - start) / (double)SEC),
	       fmt2(b4, sizeof(b4),
		    (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
			    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6));
	fflush(stdout);
	free(rates);
	free(gs);
}

static void run(struct client *cl)
{
	struct epoll_event evs[512];
	uint64_t start = mono_ns(), stop = start + cl->secs, all_up = 0, check = start;

	for (;;) {
		uint64_t now = mono_ns(), wait;
		struct conn *c;
		int n, i;

		if (now >= stop)
			break;
		cl->now = now;
		while (cl->opened < cl->nconns && now >= open_at(cl, start))
			conn_open(cl, now);
		ping(cl, now);
		timers(cl, now);
		if (now >= check) {
			expire(cl, now);
			check = now + 100 * MS;
		}
		if (!all_up && cl->opened == cl->nconns && cl->settled == cl->nconns)
			all_up = now;
		wait = min_u64(50 * MS, stop - now);
		if ((c = heap_top(&cl->timers)))
			wait = min_u64(wait, c->key[K_TIMER] > now ? c->key[K_TIMER] - now : 0);
		if ((c = heap_top(&cl->pings)))
			wait = min_u64(wait, c->key[K_PING] > now ? c->key[K_PING] - now : 0);
		if (cl->opened < cl->nconns) {
			uint64_t t = open_at(cl, start);

			wait = min_u64(wait, t > now ? t - now : 0);
		}
		n = epoll_wait(cl->ep, evs, 512, (int)((wait + MS - 1) / MS));
		if (n < 0 && errno != EINTR)
			fail_errno("epoll_wait");
		for (i = 0; i < n; i++) {
			c = evs[i].data.ptr;
			if (!c->dead)
				conn_read(c);
		}
	}
	report(cl, start, all_up);
}

static void client_free(struct client *cl)
{
	long i;

	cl->stopping = true;
	for (i = 0; i < cl->opened; i++)
		drop(&cl->conns[i], WHY_NONE);
	free(cl->conns);
	free(cl->timers.v);
	free(cl->pings.v);
	free(cl->due);
	close(cl->ep);
	gnutls_priority_deinit(cl->prio);
	gnutls_certificate_free_credentials(cl->cred);
}

static bool parse_num(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return end != s && !*end && !errno;
}

enum { A_PORT, A_CONNS, A_RAMP, A_SECS, A_IVAL, A_TIMEOUT, A_REBIND, A_N };

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, A_PORT},
		{"conns", required_argument, NULL, A_CONNS},
		{"ramp-secs", required_argument, NULL, A_RAMP},
		{"secs", required_argument, NULL, A_SECS},
		{"interval-ms", required_argument, NULL, A_IVAL},
		{"timeout", required_argument, NULL, A_TIMEOUT},
		{"rebind-ms", required_argument, NULL, A_REBIND},
		{NULL, 0, NULL, 0},
	};
	/* the defaults; -1: required (out of every range) */
	double a[A_N] = {-1, -1, -1, -1, 100, 5, 0};
	double port, conns, ramp, secs, ival, timeout, rebind;
	struct client cl = {0};
	struct rlimit rl;
	int o, ch;

	opterr = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (o < 0 || o >= A_N || !parse_num(optarg, &a[o]))
			fail("bad arguments");
	port = a[A_PORT];
	conns = a[A_CONNS];
	ramp = a[A_RAMP];
	secs = a[A_SECS];
	ival = a[A_IVAL];
	timeout = a[A_TIMEOUT];
	rebind = a[A_REBIND];
	/* the python's ranges */
	if (optind != argc || !(port > 0 && port < 65536) || !(conns >= 1 && conns <= MAX_CONNS) ||
	    !(ramp > 0 && ramp < secs) || !(secs <= 3600) || !(ival >= 1 && ival <= 10000) ||
	    !(timeout > 0 && timeout <= 60) ||
	    !(rebind == 0 || (rebind >= 10 && rebind <= 600000)) || port != (double)(long)port ||
	    conns != (double)(long)conns)
		fail("bad arguments");
	if (rebind != 0)
		fail("--rebind-ms is not supported by this client (0 only)");

	cl.nconns = (long)conns;
	cl.ramp = (uint64_t)(ramp * SEC);
	cl.secs = (uint64_t)(secs * SEC);
	cl.ival = (uint64_t)(ival * MS);
	cl.timeout = (uint64_t)(timeout * SEC);
	cl.srv.sin_family = AF_INET;
	cl.srv.sin_port = htons((uint16_t)port);
	cl.srv.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(ping_data, 'p', sizeof(ping_data));

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)cl.nconns + 64) {
		rl.rlim_cur = (rlim_t)cl.nconns + 64;
		if (rl.rlim_cur > rl.rlim_max)
			rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			fail_errno("setrlimit");
	}
	cl.conns = calloc((size_t)cl.nconns, sizeof(*cl.conns));
	cl.timers.v = calloc((size_t)cl.nconns, sizeof(*cl.timers.v));
	cl.pings.v = calloc((size_t)cl.nconns, sizeof(*cl.pings.v));
	cl.due = calloc((size_t)cl.nconns, sizeof(*cl.due));
	if (!cl.conns || !cl.timers.v || !cl.pings.v || !cl.due)
		fail("out of memory");
	cl.timers.k = K_TIMER;
	cl.pings.k = K_PING;
	cl.ep = epoll_create1(EPOLL_CLOEXEC);
	if (cl.ep < 0)
		fail_errno("epoll_create1");
	if (gnutls_certificate_allocate_credentials(&cl.cred) < 0 ||
	    gnutls_priority_init(&cl.prio, TLS_PRIORITY, NULL) < 0)
		fail("GnuTLS credentials or priorities could not be made");

	printf("held\n");
	fflush(stdout);
	ch = getchar();
	if (ch == EOF)
		fail("stdin closed before the go line");
	while (ch != '\n' && ch != EOF)
		ch = getchar();
	run(&cl);
	client_free(&cl);
	return 0;
}
