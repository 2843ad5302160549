// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The server of tests/test_preload*.c, built by make into
 * .output/tests/servers/prefork (cc -O2 -Wall, never a sanitizer build):
 * a plain glibc program like the servers the shim is for. It takes
 * commands on its stdin and answers on its stdout one line each,
 * "ROLE PID WORD ...", ROLE being master or, with -f, the worker it forks
 * after listening (a pre-fork server sharing its listeners).
 *
 * Options: PORT [-R no SO_REUSEPORT] [-n LISTENERS] [-f fork a worker]
 * [-s serve at once] [-i FD use inherited listener FD] [-C close every fd
 * above 2 first, as daemons do]. Commands: serve, pause, queue, dup,
 * closeorig (close the listeners, keep their dups), close, shutdown,
 * reexec (execve() itself, keeping the listener open), exit (exit() with
 * what is still open), "w CMD" to the worker only, "a CMD" to the worker
 * and then the master.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXL 8
static int lfd[MAXL], dfd[MAXL], nl = 1, serving, ctl, wpipe = -1, port;
static char *prog;
static pid_t worker;
static const char *who = "master";

static void say(const char *fmt, ...)
{
	char b[512];
	va_list ap;
	int n = snprintf(b, sizeof(b), "%s %d ", who, (int)getpid());

	va_start(ap, fmt);
	n += vsnprintf(b + n, sizeof(b) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	b[n++] = '\n';
	if (write(1, b, (size_t)n) < 0)
		exit(3);
}

static const char *kept(void)
{
	return errno == 4242 ? "kept" : strerror(errno);
}

static int listener(int port, int reuse)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (reuse)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		say("error bind: %s", strerror(errno));
		exit(2);
	}
	errno = 4242;
	if (listen(fd, 1024) < 0) {
		say("error listen: %s", strerror(errno));
		exit(2);
	}
	if (errno != 4242) {
		say("error listen changed errno: %s", strerror(errno));
		exit(2);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static int any_fd(int i)
{
	return lfd[i] >= 0 ? lfd[i] : dfd[i];
}

static int queue(void)
{
	struct tcp_info ti;
	socklen_t len;
	int q = 0;

	for (int i = 0; i < nl; i++) {
		len = sizeof(ti);
		if (any_fd(i) >= 0 && getsockopt(any_fd(i), IPPROTO_TCP, TCP_INFO, &ti, &len) == 0)
			q += (int)ti.tcpi_unacked;
	}
	return q;
}

static void handle(int c)
{
	static const char reply[] = "HTTP/1.0 200 OK\r\n\r\nsockmig\n";
	struct timeval tv = {1, 0};
	char buf[256];
	size_t got = 0;
	ssize_t n;

	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (got < sizeof(buf) && (n = read(c, buf + got, sizeof(buf) - got)) > 0) {
		got += (size_t)n;
		if (memchr(buf, '\n', got)) {
			if (write(c, reply, sizeof(reply) - 1) < 0)
				break;
			break;
		}
	}
	close(c);
}

static void closeall(int orig, int dups)
{
	errno = 4242;
	for (int i = 0; i < nl; i++) {
		if (orig && lfd[i] >= 0 && close(lfd[i]) == 0)
			lfd[i] = -1;
		if (dups && dfd[i] >= 0 && close(dfd[i]) == 0)
			dfd[i] = -1;
	}
	say("closed errno=%s", kept());
}

static void command(char *cmd)
{
	if (!strncmp(cmd, "w ", 2) || !strncmp(cmd, "a ", 2)) {
		char line[256];
		int n = snprintf(line, sizeof(line), "%s\n", cmd + 2);

		if (wpipe < 0 || write(wpipe, line, (size_t)n) != n)
			say("error no worker");
		if (cmd[0] == 'a')
			command(cmd + 2);
	} else if (!strcmp(cmd, "serve")) {
		serving = 1;
		say("serving");
	} else if (!strcmp(cmd, "pause")) {
		serving = 0;
		say("paused");
	} else if (!strcmp(cmd, "queue")) {
		say("queue %d", queue());
	} else if (!strcmp(cmd, "dup")) {
		for (int i = 0; i < nl; i++)
			dfd[i] = dup(lfd[i]);
		say("dup");
	} else if (!strcmp(cmd, "closeorig")) {
		closeall(1, 0);
	} else if (!strcmp(cmd, "close")) {
		closeall(1, 1);
	} else if (!strcmp(cmd, "shutdown")) {
		int r = 0;

		errno = 4242;
		for (int i = 0; i < nl; i++)
			r |= shutdown(any_fd(i), SHUT_RDWR);
		say("shutdown ret=%d errno=%s", r, kept());
	} else if (!strcmp(cmd, "reexec")) {
		char p[16], f[16];

		snprintf(p, sizeof(p), "%d", port);
		snprintf(f, sizeof(f), "%d", lfd[0]);
		execl(prog, prog, p, "-i", f, (char *)NULL);
		say("error exec: %s", strerror(errno));
	} else if (!strcmp(cmd, "exit")) {
		if (worker > 0) {
			if (write(wpipe, "exit\n", 5) != 5)
				say("error no worker");
			waitpid(worker, NULL, 0);
		}
		say("exiting");
		exit(0); /* listeners still open are closed by exit */
	} else {
		say("error unknown command %s", cmd);
	}
}

int main(int argc, char **argv)
{
	int reuse = 1, prefork = 0, inherited = -1, closeall_first = 0, opt;
	char buf[1024];
	size_t len = 0;

	prog = argv[0];
	port = atoi(argv[1]);
	while ((opt = getopt(argc - 1, argv + 1, "Rn:fsi:C")) != -1) {
		if (opt == 'C')
			closeall_first = 1;
		else if (opt == 'i')
			inherited = atoi(optarg);
		else if (opt == 'R')
			reuse = 0;
		else if (opt == 'n')
			nl = atoi(optarg);
		else if (opt == 'f')
			prefork = 1;
		else if (opt == 's')
			serving = 1;
	}
	if (closeall_first) {
		close(3);
		closefrom(3);
	}
	for (int i = 0; i < nl && i < MAXL; i++) {
		lfd[i] = inherited >= 0 ? inherited : listener(port, reuse);
		dfd[i] = -1;
	}
	say("ready errno=kept");
	if (prefork) {
		int p[2];

		if (pipe(p) < 0)
			return 2;
		worker = fork();
		if (worker == 0) {
			who = "worker";
			worker = 0;
			close(p[1]);
			ctl = p[0];
			say("ready");
		} else {
			close(p[0]);
			wpipe = p[1];
		}
	}
	for (;;) {
		struct pollfd pf[1 + MAXL];
		int np = 1;
		ssize_t n;
		char *nlp;

		pf[0].fd = ctl;
		pf[0].events = POLLIN;
		for (int i = 0; serving && i < nl; i++)
			if (any_fd(i) >= 0) {
				pf[np].fd = any_fd(i);
				pf[np++].events = POLLIN;
			}
		if (poll(pf, (nfds_t)np, 100) < 0)
			continue;
		for (int i = 1; i < np; i++) {
			int c;

			if (pf[i].revents & POLLIN)
				while ((c = accept(pf[i].fd, NULL, NULL)) >= 0)
					handle(c);
		}
		if (!(pf[0].revents & (POLLIN | POLLHUP)))
			continue;
		n = read(ctl, buf + len, sizeof(buf) - len - 1);
		if (n <= 0)
			exit(0); /* the test went away */
		len += (size_t)n;
		buf[len] = '\0';
		while ((nlp = strchr(buf, '\n'))) {
			*nlp = '\0';
			command(buf);
			len -= (size_t)(nlp + 1 - buf);
			memmove(buf, nlp + 1, len + 1);
		}
	}
}
