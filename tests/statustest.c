// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Helpers of the tests of sockmig status: see statustest.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "statustest.h"
#include "util.h"

int st_listener(int family, int port, bool reuseport, int backlog)
{
	struct sockaddr_storage ss;
	socklen_t len = burst_addr(family, port, &ss);
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -errno;
	if ((reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* @n blocking clients of @family to @port into fds[]; the number connected. */
int st_connect_n(int family, int port, int n, int *fds)
{
	struct sockaddr_storage ss;
	socklen_t len = burst_addr(family, port, &ss);
	int ok = 0;

	for (int i = 0; i < n; i++) {
		fds[i] = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[i] >= 0 && connect(fds[i], (struct sockaddr *)&ss, len) == 0)
			ok++;
	}
	return ok;
}

void st_close_all(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/* Wait until the accept queues of @lfds hold @n in all. */
int st_wait_queues(const int *lfds, int nl, int n)
{
	unsigned long long end = burst_now_ms() + 2000;
	int sum;

	do {
		sum = 0;
		for (int i = 0; i < nl; i++)
			sum += burst_accept_queue(lfds[i]);
		if (sum >= n)
			break;
		burst_sleep_ms(2);
	} while (burst_now_ms() < end);
	return sum;
}
