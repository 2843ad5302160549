// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The UDP server of tests/test_preload_udp.c, built by make into
 * .output/tests/servers/udp_echo (cc -O2 -Wall, never a sanitizer build):
 * a plain glibc datagram server like those the shim is for. It binds one
 * UDP socket on the loopback address and port PORT, answers every
 * datagram of the rig's format (struct ur_msg of tests/udp_rig.h: flow,
 * seq, gen) with its gen set to ID, so that the client can tell which
 * process answered, and exits with exit() at SIGTERM (the shim's exit
 * path runs).
 *
 * Usage: udp_echo PORT ID [-6 IPv6] [-R no SO_REUSEPORT]
 * stdout: "udp PID ready" once bound, "udp PID error WHY" (exit 2) when
 * the bind fails, "udp PID bye N" (N datagrams answered) at SIGTERM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct msg {
	uint32_t flow, seq, gen;
};

static volatile sig_atomic_t stop;

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

int main(int argc, char **argv)
{
	struct sockaddr_storage ss, from;
	struct sigaction sa;
	int fd, one = 1, v6 = 0, reuse = 1, port, id, buf = 8 << 20;
	socklen_t len, flen;
	unsigned long answered = 0;
	struct msg m;

	if (argc < 3) {
		fprintf(stderr, "usage: udp_echo PORT ID [-6] [-R]\n");
		return 2;
	}
	port = atoi(argv[1]);
	id = atoi(argv[2]);
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "-6") == 0)
			v6 = 1;
		else if (strcmp(argv[i], "-R") == 0)
			reuse = 0;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term; /* no SA_RESTART: poll() returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	memset(&ss, 0, sizeof(ss));
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	}
	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	if (fd < 0 || (reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)) {
		say("error socket: %s", strerror(errno));
		return 2;
	}
	/* a round of the test's clients (hundreds of datagrams at once) fits
	 * in the queue: what a full queue drops is not routing (as root; the
	 * default elsewhere) */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	errno = 4242;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		say("error bind: %s", strerror(errno));
		return 2;
	}
	if (errno != 4242) {
		say("error bind changed errno: %s", strerror(errno));
		return 2;
	}
	say("ready");
	while (!stop) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (poll(&p, 1, 200) <= 0)
			continue;
		for (;;) {
			flen = sizeof(from);
			if (recvfrom(fd, &m, sizeof(m), 0, (struct sockaddr *)&from, &flen) !=
			    sizeof(m))
				break;
			m.gen = (uint32_t)id;
			if (sendto(fd, &m, sizeof(m), 0, (struct sockaddr *)&from, flen) ==
			    sizeof(m))
				answered++;
		}
	}
	say("bye %lu", answered);
	close(fd);
	exit(0);
}
