// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A server of tests/test_run_udp.c that serves TCP and UDP on one port, as
 * an HTTP server with HTTP/3 does: built by make into
 * .output/tests/servers/mixed_echo (cc -O2 -Wall, never a sanitizer build).
 * Usage: mixed_echo PORT [LINGER_MS [LISTEN_AFTER_MS]]. On 127.0.0.1:PORT, both with
 * SO_REUSEPORT: a TCP listener whose connections each get one HTTP/1.0
 * reply once their request's headers are in, and a UDP socket that answers
 * every datagram of the UDP rig's format (tests/udp_rig.h: flow, seq, gen)
 * with gen set to its pid; the UDP socket is bound first, and the TCP
 * listener LISTEN_AFTER_MS later, or at SIGUSR2 if that comes first
 * (default 0: a server whose start-up takes that long between the two,
 * while it answers datagrams). At SIGTERM it closes the TCP listener (out of
 * its epoll set first), finishes the connections it accepted, keeps
 * answering datagrams for LINGER_MS (default 0: a QUIC server finishing
 * its connections), then exits after one line "mixed PID tcp N udp N".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REPLY "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
#define MAXFD 65536

struct msg {
	uint32_t flow, seq, gen;
};

static volatile sig_atomic_t stop, listen_now;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_usr2(int sig)
{
	(void)sig;
	listen_now = 1;
}

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int bound(int type, const struct sockaddr_in *sin)
{
	int fd = socket(AF_INET, type | SOCK_NONBLOCK, 0), one = 1, buf = 8 << 20;

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		return -1;
	if (type == SOCK_DGRAM && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	if (bind(fd, (const struct sockaddr *)sin, sizeof(*sin)) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 1024) < 0))
		return -1;
	return fd;
}

/* Every datagram queued on @ufd answered: their number. */
static long echo(int ufd)
{
	struct sockaddr_storage from;
	socklen_t flen;
	struct msg m;
	long n = 0;

	for (;;) {
		flen = sizeof(from);
		if (recvfrom(ufd, &m, sizeof(m), 0, (struct sockaddr *)&from, &flen) != sizeof(m))
			return n;
		m.gen = (uint32_t)getpid();
		n += sendto(ufd, &m, sizeof(m), 0, (struct sockaddr *)&from, flen) == sizeof(m);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sigaction sa = {.sa_handler = on_term};
	struct epoll_event ev = {.events = EPOLLIN}, evs[64];
	static char got[MAXFD][4];
	long long linger = argc > 2 ? atoll(argv[2]) : 0, until = 0;
	long long listen_at = argc > 3 ? ms_now() + atoll(argv[3]) : 0;
	long tcp = 0, udp = 0;
	int lfd, ufd, ep, conns = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: mixed_echo PORT [LINGER_MS [LISTEN_AFTER_MS]]\n");
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	sin.sin_port = htons((unsigned short)atoi(argv[1]));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ufd = bound(SOCK_DGRAM, &sin);
	ep = epoll_create1(0);
	if (ufd < 0 || ep < 0) {
		printf("mixed %d error: %s\n", (int)getpid(), strerror(errno));
		return 2;
	}
	ev.data.fd = ufd;
	epoll_ctl(ep, EPOLL_CTL_ADD, ufd, &ev);
	while (!stop && !listen_now && ms_now() < listen_at)
		if (epoll_wait(ep, evs, 64, 10) > 0)
			udp += echo(ufd);
	lfd = bound(SOCK_STREAM, &sin);
	if (lfd < 0) {
		printf("mixed %d error: %s\n", (int)getpid(), strerror(errno));
		return 2;
	}
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		int n;

		if (stop && lfd >= 0) {
			epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);
			close(lfd);
			lfd = -1;
			until = ms_now() + linger;
		}
		if (lfd < 0 && conns == 0 && ms_now() >= until)
			break;
		n = epoll_wait(ep, evs, 64, 20);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd, c;
			char buf[1024], tail[4 + sizeof(buf)];
			ssize_t r;

			if (fd == ufd) {
				udp += echo(ufd);
				continue;
			}
			if (fd == lfd) {
				while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					if (c >= MAXFD) {
						close(c);
						continue;
					}
					memset(got[c], 0, 4);
					ev.data.fd = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
					conns++;
				}
				continue;
			}
			r = read(fd, buf, sizeof(buf));
			if (r < 0 && errno == EAGAIN)
				continue;
			if (r > 0) {
				/* the end of the headers, across reads */
				memcpy(tail, got[fd], 4);
				memcpy(tail + 4, buf, (size_t)r);
				if (!memmem(tail, (size_t)r + 4, "\r\n\r\n", 4)) {
					memcpy(got[fd], tail + r, 4);
					continue;
				}
				tcp += write(fd, REPLY, strlen(REPLY)) > 0;
			}
			close(fd);
			conns--;
		}
	}
	printf("mixed %d tcp %ld udp %ld\n", (int)getpid(), tcp, udp);
	return 0;
}
