// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A UDP server with one socket per connection, as HAProxy's QUIC makes
 * them, for tests/test_preload_udp_conn.c; built by make into
 * .output/tests/servers/udp_conn (cc -O2 -Wall, never a sanitizer build).
 * It binds a listener socket on 127.0.0.1:PORT without SO_REUSEPORT of its
 * own (the shim's SOCKMIG_REUSEPORT=udp sets it). The first datagram
 * (struct ur_msg of tests/udp_rig.h: flow, seq, gen) of each of the first
 * NCONN peers makes a connection socket: bound to the same address and
 * port, connected to that peer, answering (this first datagram too) with
 * gen 100 + the flow that made it. Every other datagram on the listener
 * is answered with gen 1. A connection socket that receives a datagram
 * of another peer answers it all the same (with its own gen) and counts
 * it as foreign.
 *
 * Usage: udp_conn PORT NCONN [-S|-F]
 *   -S: connect() by the raw system call, which no LD_PRELOAD sees (the
 *       shim as it was before it hooked connect())
 *   -F: the connect() of a connection socket fails (an IPv6 address on an
 *       IPv4 socket: EAFNOSUPPORT), and the socket answers unconnected
 * stdout: "udp PID ready" once bound; "udp PID error WHY" (exit 2);
 * "udp PID bye listener=N connected=N foreign=N" at SIGTERM (datagrams
 * answered by the listener, by a connection socket from its own peer, and
 * from another peer), then exit() (the shim's exit path runs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_CONN 64

struct msg {
	uint32_t flow, seq, gen;
};

struct conn {
	int fd;
	uint32_t gen;
	struct sockaddr_in peer;
};

static volatile sig_atomic_t stop;
static struct conn conns[MAX_CONN];
static int nconn, maxconn, raw, fail;
static unsigned long by_listener, by_conn, foreign;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char b[256];
	va_list ap;
	int n = snprintf(b, sizeof(b), "udp %d ", (int)getpid());

	va_start(ap, fmt);
	n += vsnprintf(b + n, sizeof(b) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	b[n++] = '\n';
	if (write(1, b, (size_t)n) < 0)
		exit(3);
}

static bool same_peer(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
	return a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port;
}

static int udp_socket(const struct sockaddr_in *local)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0), buf = 4 << 20;

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	if (bind(fd, (const struct sockaddr *)local, sizeof(*local)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A connection socket for @peer, whose datagram @m it answers. */
static int new_conn(const struct sockaddr_in *local, const struct sockaddr_in *peer, struct msg *m)
{
	struct conn *c = &conns[nconn];
	int rc;

	c->fd = udp_socket(local);
	if (c->fd < 0) {
		say("error bind of a connection socket: %s", strerror(errno));
		return -1;
	}
	if (fail) {
		struct sockaddr_in6 bad = {.sin6_family = AF_INET6, .sin6_port = peer->sin_port};

		rc = connect(c->fd, (const struct sockaddr *)&bad, sizeof(bad));
		if (rc == 0 || errno != EAFNOSUPPORT) {
			say("error connect did not fail with EAFNOSUPPORT: %s", strerror(errno));
			return -1;
		}
	} else {
		rc = raw ? (int)syscall(SYS_connect, c->fd, peer, sizeof(*peer))
			 : connect(c->fd, (const struct sockaddr *)peer, sizeof(*peer));
		if (rc < 0) {
			say("error connect: %s", strerror(errno));
			return -1;
		}
	}
	c->peer = *peer;
	c->gen = 100 + m->flow;
	nconn++;
	m->gen = c->gen;
	if (sendto(c->fd, m, sizeof(*m), 0, (const struct sockaddr *)peer, sizeof(*peer)) ==
	    sizeof(*m))
		by_conn++;
	return 0;
}

static int on_listener(int fd, const struct sockaddr_in *local)
{
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	struct msg m;
	bool known = false;

	while (recvfrom(fd, &m, sizeof(m), 0, (struct sockaddr *)&from, &flen) == sizeof(m)) {
		for (int k = 0; k < nconn && !known; k++)
			known = same_peer(&conns[k].peer, &from);
		if (!known && nconn < maxconn) {
			if (new_conn(local, &from, &m) < 0)
				return -1;
		} else {
			m.gen = 1;
			if (sendto(fd, &m, sizeof(m), 0, (struct sockaddr *)&from, flen) ==
			    sizeof(m))
				by_listener++;
		}
		flen = sizeof(from);
		known = false;
	}
	return 0;
}

static void on_conn(struct conn *c)
{
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	struct msg m;

	while (recvfrom(c->fd, &m, sizeof(m), 0, (struct sockaddr *)&from, &flen) == sizeof(m)) {
		bool own = same_peer(&c->peer, &from);

		m.gen = c->gen;
		if (sendto(c->fd, &m, sizeof(m), 0, (struct sockaddr *)&from, flen) == sizeof(m)) {
			if (own)
				by_conn++;
			else
				foreign++;
		}
		flen = sizeof(from);
	}
}

int main(int argc, char **argv)
{
	struct pollfd p[MAX_CONN + 1];
	struct sockaddr_in local;
	struct sigaction sa;
	int fd;

	if (argc < 3 || (argc > 3 && strcmp(argv[3], "-S") != 0 && strcmp(argv[3], "-F") != 0)) {
		fprintf(stderr, "usage: udp_conn PORT NCONN [-S|-F]\n");
		return 2;
	}
	maxconn = atoi(argv[2]);
	if (maxconn < 0 || maxconn > MAX_CONN) {
		fprintf(stderr, "udp_conn: NCONN is 0 to %d\n", MAX_CONN);
		return 2;
	}
	raw = argc > 3 && strcmp(argv[3], "-S") == 0;
	fail = argc > 3 && strcmp(argv[3], "-F") == 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term; /* no SA_RESTART: poll() returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	memset(&local, 0, sizeof(local));
	local.sin_family = AF_INET;
	local.sin_port = htons((uint16_t)atoi(argv[1]));
	local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = udp_socket(&local);
	if (fd < 0) {
		say("error bind: %s", strerror(errno));
		return 2;
	}
	say("ready");
	while (!stop) {
		p[0].fd = fd;
		p[0].events = POLLIN;
		for (int k = 0; k < nconn; k++) {
			p[k + 1].fd = conns[k].fd;
			p[k + 1].events = POLLIN;
		}
		if (poll(p, (nfds_t)nconn + 1, 200) <= 0)
			continue;
		for (int k = nconn - 1; k >= 0; k--)
			if (p[k + 1].revents & POLLIN)
				on_conn(&conns[k]);
		if ((p[0].revents & POLLIN) && on_listener(fd, &local) < 0)
			return 2;
	}
	say("bye listener=%lu connected=%lu foreign=%lu", by_listener, by_conn, foreign);
	for (int k = 0; k < nconn; k++)
		close(conns[k].fd);
	close(fd);
	exit(0);
}
