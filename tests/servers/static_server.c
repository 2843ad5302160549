// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A server of the tests, built by make with -static (and without, as
 * dynamic_server, for the cases that need no static binary): static, it cannot
 * take an LD_PRELOAD shim, so only sockmig attach can protect it.
 * Usage: static_server PORT. One SO_REUSEPORT listener on 127.0.0.1:PORT
 * (without SO_REUSEPORT when TEST_NO_REUSEPORT is set, as many servers do;
 * TEST_ACCEPT_PAUSE_US=N pauses N us between two rounds of its loop, so
 * that its accept queue is never empty under load and its close migrates);
 * every connection gets one HTTP/1.0 reply once its request's headers are
 * in; SIGUSR1 or SIGTERM closes the listener, the connections in flight are finished,
 * and the server exits (the way haproxy -sf retires an old process) after
 * one line on stdout: "pid PID served N, M left open" (the replies it sent,
 * and the connections it gave up on after 2 s with nothing to read).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define REPLY "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n"

static volatile sig_atomic_t retire;

static void on_usr1(int sig)
{
	(void)sig;
	retire = 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sigaction sa = {.sa_handler = on_usr1};
	struct epoll_event ev, evs[64];
	static char got[65536][4];
	int lfd, ep, one = !getenv("TEST_NO_REUSEPORT"), open_conns = 0, idle = 0, served = 0;
	int pause_us = getenv("TEST_ACCEPT_PAUSE_US") ? atoi(getenv("TEST_ACCEPT_PAUSE_US")) : 0;

	if (argc != 2)
		return 2;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL); /* the same: graceful */
	sin.sin_port = htons((unsigned short)atoi(argv[1]));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (getenv("LISTEN_FDS") && getenv("LISTEN_PID") &&
	    atoi(getenv("LISTEN_PID")) == getpid()) {
		/* socket activation: the listener is fd 3, and it is not ours to close */
		lfd = 3;
		if (fcntl(lfd, F_SETFL, O_NONBLOCK) < 0)
			return 1;
	} else {
		lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
		    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 1024) < 0)
			return 1;
	}
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		int n;

		if (pause_us && !retire)
			usleep((useconds_t)pause_us);
		if (retire && lfd >= 0) {
			/* as real servers do: out of the epoll set first (another
			 * process may hold a copy of the file for a moment) */
			epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);
			close(lfd);
			lfd = -1;
		}
		if (lfd < 0 && (open_conns == 0 || idle > 100)) {
			dprintf(STDOUT_FILENO, "pid %d served %d, %d left open\n", (int)getpid(),
				served, open_conns);
			return 0;
		}
		n = epoll_wait(ep, evs, 64, 20);
		idle = n > 0 ? 0 : idle + 1;
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd, c;
			char buf[1024];
			ssize_t r;

			if (fd == lfd) {
				while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					if (c >= 65536) {
						close(c);
						continue;
					}
					memset(got[c], 0, 4);
					ev.events = EPOLLIN;
					ev.data.fd = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
					open_conns++;
				}
				continue;
			}
			r = read(fd, buf, sizeof(buf));
			if (r < 0 && errno == EAGAIN)
				continue;
			if (r > 0) {
				/* the end of the headers, across reads: keep the last 4 bytes */
				char tail[4 + sizeof(buf)];
				size_t tl = (size_t)r;

				memcpy(tail, got[fd], 4);
				memcpy(tail + 4, buf, tl);
				if (!memmem(tail, tl + 4, "\r\n\r\n", 4)) {
					memcpy(got[fd], tail + tl, 4);
					continue;
				}
				if (write(fd, REPLY, strlen(REPLY)) < 0)
					r = 0;
				else
					served++;
			}
			close(fd);
			open_conns--;
		}
	}
}
