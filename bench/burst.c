// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Connection bursts on loopback: clients that count their outcome and a
 * serving loop, used by the tests and by sockmig demo; see burst.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "burst.h"

#ifndef TCP_FASTOPEN_CONNECT
#define TCP_FASTOPEN_CONNECT 30
#endif

void burst_sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

unsigned long long burst_now_ms(void)
{
	return burst_now_ns() / 1000000ull;
}

unsigned long long burst_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

socklen_t burst_addr(int family, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	sin6->sin6_addr = in6addr_loopback;
	return sizeof(*sin6);
}

int burst_listener(int family, int port, int backlog, int opts)
{
	struct sockaddr_storage ss;
	socklen_t len = burst_addr(family, port, &ss);
	int fd, one = 1, qlen = 64;

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if ((opts & BURST_FASTOPEN) &&
	    setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof(qlen)) < 0)
		goto fail;
	if ((opts & BURST_SAVE_SYN) &&
	    setsockopt(fd, IPPROTO_TCP, TCP_SAVE_SYN, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		goto fail;
	if (backlog > 0 && listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	one = -errno;
	close(fd);
	return one;
}

int burst_start(struct burst *c, int family, int port, int n, bool fastopen)
{
	struct sockaddr_storage ss;
	socklen_t len = burst_addr(family, port, &ss);
	int one = 1;

	for (int i = 0; i < n && c->n < BURST_MAX_CLIENTS; i++) {
		int k = c->n, fd;

		fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		c->fd[k] = fd;
		c->out[k] = BURST_PENDING;
		c->sent[k] = 0;
		c->got[k] = 0;
		c->n++;
		c->count[BURST_PENDING]++;
		if (fastopen) {
			/* connect() returns at once; the write sends the SYN with data */
			if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one)) <
			    0)
				return -errno;
			if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS)
				return -errno;
			if (write(fd, BURST_REQUEST, strlen(BURST_REQUEST)) ==
			    (ssize_t)strlen(BURST_REQUEST))
				c->sent[k] = 1;
			continue;
		}
		if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS)
			return -errno;
	}
	return 0;
}

static void set_outcome(struct burst *c, int k, enum burst_outcome o)
{
	if (c->out[k] != BURST_PENDING)
		return;
	c->count[BURST_PENDING]--;
	c->out[k] = o;
	c->count[o]++;
	close(c->fd[k]);
	c->fd[k] = -1;
}

static enum burst_outcome errno_outcome(int err)
{
	switch (err) {
	case ECONNRESET:
	case EPIPE:
		return BURST_RESET;
	case ECONNREFUSED:
		return BURST_REFUSED;
	case ETIMEDOUT:
		return BURST_TIMEOUT;
	}
	return BURST_OTHER;
}

/* Drive client k after poll said @revents. */
static void client_step(struct burst *c, int k, short revents)
{
	char buf[256];
	ssize_t n;
	int err = 0;
	socklen_t len = sizeof(err);

	if (!c->sent[k]) {
		if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
			return;
		getsockopt(c->fd[k], SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			set_outcome(c, k, errno_outcome(err));
			return;
		}
		n = send(c->fd[k], BURST_REQUEST, strlen(BURST_REQUEST), MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN)
			set_outcome(c, k, errno_outcome(errno));
		else if (n > 0)
			c->sent[k] = 1;
		return;
	}
	if (!(revents & (POLLIN | POLLERR | POLLHUP)))
		return;
	for (;;) {
		n = read(c->fd[k], buf, sizeof(buf));
		if (n > 0) {
			c->got[k] += (int)n;
			if (c->got[k] >= (int)strlen(BURST_REPLY)) {
				set_outcome(c, k, BURST_OK);
				return;
			}
			continue;
		}
		if (n == 0)
			set_outcome(c, k, BURST_EOF);
		else if (errno != EAGAIN)
			set_outcome(c, k, errno_outcome(errno));
		return;
	}
}

int burst_connected(struct burst *c, int timeout_ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)timeout_ms;
	struct pollfd *p = calloc((size_t)c->n + 1, sizeof(*p));
	int done = 0;

	if (!p)
		return 0;
	while (burst_now_ms() < end) {
		done = 0;
		for (int k = 0; k < c->n; k++) {
			p[k].fd = c->fd[k];
			p[k].events = POLLOUT;
			p[k].revents = 0;
		}
		poll(p, (nfds_t)c->n, 10);
		for (int k = 0; k < c->n; k++) {
			struct tcp_info ti;
			socklen_t len = sizeof(ti);

			if (c->fd[k] < 0 ||
			    getsockopt(c->fd[k], IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
				continue;
			if (ti.tcpi_state == TCP_ESTABLISHED)
				done++;
		}
		if (done == c->n)
			break;
	}
	/* send the requests of the clients that connected */
	for (int k = 0; k < c->n; k++)
		if (c->fd[k] >= 0 && !c->sent[k])
			client_step(c, k, POLLOUT);
	free(p);
	return done;
}

struct conn {
	int fd;
	int owner; /* index into lfds */
	int got;
};

int burst_serve(struct burst *c, const int *lfds, int nl, int *served, int timeout_ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)timeout_ms;
	size_t cap = (size_t)c->n + 4096;
	struct conn *conns = calloc(cap, sizeof(*conns));
	struct pollfd *p = calloc(cap + (size_t)c->n + (size_t)nl, sizeof(*p));
	int *map = calloc(cap + (size_t)c->n + (size_t)nl, sizeof(*map));
	size_t nconn = 0;

	if (!conns || !p || !map)
		goto out;
	if (served)
		memset(served, 0, sizeof(*served) * (size_t)nl);
	while (c->count[BURST_PENDING] > 0 && burst_now_ms() < end) {
		nfds_t np = 0;

		for (int k = 0; k < c->n; k++) {
			if (c->fd[k] < 0)
				continue;
			p[np].fd = c->fd[k];
			p[np].events = c->sent[k] ? POLLIN : POLLOUT;
			map[np++] = k;
		}
		for (int i = 0; i < nl; i++) {
			if (lfds[i] < 0)
				continue;
			p[np].fd = lfds[i];
			p[np].events = POLLIN;
			map[np++] = -1 - i;
		}
		for (size_t i = 0; i < nconn; i++) {
			p[np].fd = conns[i].fd;
			p[np].events = POLLIN;
			map[np++] = -1000000 - (int)i;
		}
		for (nfds_t i = 0; i < np; i++)
			p[i].revents = 0;
		if (poll(p, np, 20) <= 0)
			continue;
		for (nfds_t i = 0; i < np; i++) {
			int m = map[i];

			if (!p[i].revents)
				continue;
			if (m >= 0) {
				client_step(c, m, p[i].revents);
			} else if (m > -1000000) {
				int li = -1 - m, fd;

				while (nconn < cap &&
				       (fd = accept4(lfds[li], NULL, NULL,
						     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					conns[nconn].fd = fd;
					conns[nconn].owner = li;
					conns[nconn++].got = 0;
				}
			} else {
				struct conn *cn = &conns[-1000000 - m];
				char buf[256];
				ssize_t n = read(cn->fd, buf, sizeof(buf));

				if (n > 0)
					cn->got += (int)n;
				if (n > 0 && cn->got >= (int)strlen(BURST_REQUEST)) {
					if (write(cn->fd, BURST_REPLY, strlen(BURST_REPLY)) > 0 &&
					    served)
						served[cn->owner]++;
				}
				if (n == 0 || (n < 0 && errno != EAGAIN) ||
				    cn->got >= (int)strlen(BURST_REQUEST)) {
					close(cn->fd);
					cn->fd = -1;
				}
			}
		}
		/* compact the server connections */
		size_t w = 0;

		for (size_t i = 0; i < nconn; i++)
			if (conns[i].fd >= 0)
				conns[w++] = conns[i];
		nconn = w;
	}
	for (int k = 0; k < c->n; k++)
		if (c->fd[k] >= 0 && burst_now_ms() >= end)
			set_outcome(c, k, BURST_TIMEOUT);
	for (size_t i = 0; i < nconn; i++)
		close(conns[i].fd);
out:
	free(conns);
	free(p);
	free(map);
	return c->count[BURST_PENDING];
}

void burst_close(struct burst *c)
{
	for (int k = 0; k < c->n; k++)
		if (c->fd[k] >= 0)
			close(c->fd[k]);
	c->n = 0;
}

void burst_print(const struct burst *c, const char *label)
{
	printf("%s: %d clients: ok %d, reset %d, refused %d, eof %d, timeout %d, other %d, "
	       "pending %d\n",
	       label, c->n, c->count[BURST_OK], c->count[BURST_RESET], c->count[BURST_REFUSED],
	       c->count[BURST_EOF], c->count[BURST_TIMEOUT], c->count[BURST_OTHER],
	       c->count[BURST_PENDING]);
}

int burst_sysctl(const char *name, const char *val)
{
	char path[256];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/sys/%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	close(fd);
	return n < 0 ? -errno : 0;
}

int burst_migrate_req(bool on)
{
	int err = burst_sysctl("net/ipv4/tcp_migrate_req", on ? "1" : "0");

	return err == -ENOENT && !on ? 0 : err;
}

int burst_accept_queue(int lfd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -errno;
	return (int)ti.tcpi_unacked;
}

bool burst_wait_queue(int lfd, int n, int timeout_ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)timeout_ms;

	while (burst_now_ms() < end) {
		if (burst_accept_queue(lfd) >= n)
			return true;
		burst_sleep_ms(2);
	}
	return burst_accept_queue(lfd) >= n;
}

bool burst_read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

bool burst_write_full(int fd, const void *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = write(fd, (const char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		done += (size_t)n;
	}
	return true;
}

int burst_in_child(void (*fn)(void *ctx), void *ctx, void *res, size_t len, char *err,
		   size_t errlen)
{
	int p[2];
	bool got;
	pid_t pid;

	if (pipe(p) < 0)
		return -1;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		fn(ctx);
		_exit(burst_write_full(p[1], res, len) ? 0 : 1);
	}
	close(p[1]);
	got = burst_read_full(p[0], res, len);
	close(p[0]);
	waitpid(pid, NULL, 0);
	if (!got && !err[0])
		snprintf(err, errlen, "the benchmark process died");
	return err[0] ? -1 : 0;
}
