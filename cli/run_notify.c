// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig run: sd_notify, both ways: READY=1 to systemd, and the socket
 * the workers get as NOTIFY_SOCKET, whose READY=1 marks their generation
 * ready (see run.c).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "pidfile.h"
#include "run.h"

void run_sd_notify(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	socklen_t len;
	int fd;

	if (!path || !*path || strlen(path) >= sizeof(sun.sun_path))
		return;
	memcpy(sun.sun_path, path, strlen(path));
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun, len) < 0) {
		/* systemd is gone: nothing to tell */
	}
	close(fd);
}

/*
 * The datagram socket the children get as NOTIFY_SOCKET: a file in run's
 * private directory (0700), which no other user can reach, squat or flood
 * (an abstract name could be bound first by anyone in the namespace).
 */
int run_notify_open(struct runner *r)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd, one = 1, err;

	err = rundir_file(r->notify_name, sizeof(r->notify_name), "run-%d.notify", r->port);
	if (err) {
		errno = -err;
		return -1;
	}
	if (strlen(r->notify_name) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, r->notify_name, strlen(r->notify_name));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	unlink(r->notify_name); /* a killed run's: the pid file's lock is ours */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The generation @pid belongs to: one of its workers or their descendants. */
struct generation *run_gen_of_pid(struct runner *r, pid_t pid)
{
	for (int depth = 0; pid > 1 && depth < 6; depth++) {
		for (int i = 0; i < MAX_GENS; i++)
			for (int w = 0; r->g[i].state != G_FREE && w < r->g[i].nw; w++)
				if (r->g[i].pid[w] == pid)
					return &r->g[i];
		pid = proc_parent(pid);
	}
	return NULL;
}

void run_notify_read(struct runner *r)
{
	char buf[512], ctl[CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl,
			    .msg_controllen = sizeof(ctl)};
	struct cmsghdr *c;
	struct generation *g;
	ssize_t n;

	while ((n = recvmsg(r->notify_fd, &mh, 0)) >= 0) {
		struct ucred cred = {0};

		buf[n] = '\0';
		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
				memcpy(&cred, CMSG_DATA(c), sizeof(cred));
		g = cred.pid ? run_gen_of_pid(r, cred.pid) : NULL;
		if (g && strstr(buf, "READY=1"))
			g->notified = true;
		mh.msg_controllen = sizeof(ctl);
	}
}
