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
 * Usage: udp_echo PORT ID [-6 IPv6] [-R no SO_REUSEPORT] [-w N] [-s N]
 * stdout: "udp PID ready" once bound, "udp PID error WHY" (exit 2) when
 * the bind fails, "udp PID bye N" (N datagrams answered) at SIGTERM.
 * With -w N, a pre-fork server: N workers forked 50 ms apart, worker K
 * binding its own socket and answering as ID + K; the master binds
 * nothing and passes SIGTERM on to them. With -s N, N socket pairs are
 * opened (and held) before the UDP socket: a server's other sockets, its
 * connections, at lower fds than its member.
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
#include <sys/wait.h>
#include <time.h>
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

static int serve(int port, int id, int v6, int reuse);

/* The master of -w N: forks the workers, waits for SIGTERM, passes it on. */
static int prefork(int port, int id, int v6, int reuse, int n)
{
	struct timespec gap = {0, 50 * 1000 * 1000};
	pid_t pids[16];
	int status;

	for (int k = 0; k < n && k < 16; k++) {
		pids[k] = fork();
		if (pids[k] == 0)
			return serve(port, id + k, v6, reuse);
		nanosleep(&gap, NULL); /* a later start time for the next one */
	}
	while (!stop)
		pause();
	for (int k = 0; k < n && k < 16; k++)
		if (pids[k] > 0)
			kill(pids[k], SIGTERM);
	for (int k = 0; k < n && k < 16; k++)
		if (pids[k] > 0)
			waitpid(pids[k], &status, 0);
	say("bye 0");
	exit(0);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	int v6 = 0, reuse = 1, workers = 0, sv[2];

	if (argc < 3) {
		fprintf(stderr, "usage: udp_echo PORT ID [-6] [-R] [-w N] [-s N]\n");
		return 2;
	}
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "-6") == 0)
			v6 = 1;
		else if (strcmp(argv[i], "-R") == 0)
			reuse = 0;
		else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc)
			workers = atoi(argv[++i]);
		else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
			for (int n = atoi(argv[++i]); n > 0; n--)
				if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
					return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term; /* no SA_RESTART: poll() returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	if (workers > 0)
		return prefork(atoi(argv[1]), atoi(argv[2]), v6, reuse, workers);
	return serve(atoi(argv[1]), atoi(argv[2]), v6, reuse);
}

static int serve(int port, int id, int v6, int reuse)
{
	struct sockaddr_storage ss, from;
	int fd, one = 1, buf = 8 << 20;
	socklen_t len, flen;
	unsigned long answered = 0;
	struct msg m;

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
