// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Hand-off endpoints against a hostile local user. A legacy group owned by
 * root on 127.0.0.1; the attacker is a forked child running as uid 65534
 * in the same network namespace, who knows every name (socket cookies are
 * public: ss -tlne prints them).
 *   1. squat: the attacker binds the endpoint's name (the abstract one of
 *      sockmig 0.1, and the path) before the server opens it; the server's
 *      endpoint must still come up, and a drain of A must hand all N of
 *      its queued clients to B's endpoint, none to the attacker.
 *   2. inject: the attacker connects to B's endpoint and sends a file;
 *      then a sender with the right to (root) sends a file, a UDP socket
 *      of the group's port, a TCP connection of another port and a
 *      listening socket: each is refused and counted, only the one real
 *      connection sent after them is returned; and with the directory
 *      opened up by mistake, a sender of uid 65534 is refused by its
 *      credentials.
 * The group's directory and the shim are test_handoff_dir.c's.
 */
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sockmig.h>

#include "harness.h"
#include "util.h"

#define PORT	 TU_HANDOFF_PORT
#define NOBODY	 65534
#define RUNDIR	 "/run/sockmig/handoff"
#define N_CLIENT 20

static int send_fd(int s, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	char byte = 0;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;

	memset(&u, 0, sizeof(u));
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	return sendmsg(s, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* fds carried by one message on @s, closed; -1 when none was read. */
static int drop_fds(int s)
{
	union {
		char buf[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} u;
	char byte;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;
	int n = 0;

	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	if (recvmsg(s, &msg, MSG_DONTWAIT) < 0)
		return -1;
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
			close(fd);
			n++;
		}
	}
	return n;
}

/* ---- the attacker: a child as uid 65534 -------------------------------- */

struct attacker {
	const char *cwd; /* entered before it drops root, if set */
	pid_t pid;
	int result; /* read end: the child's count */
	int stop;   /* write end: closed to stop it */
};

typedef int (*attack_fn)(void *arg, int stop);

static int ready_fd = -1; /* in the child: where it says it is ready */

static void attacker_say_ready(void)
{
	char r = 'r';

	if (write(ready_fd, &r, 1) != 1)
		_exit(1);
}

/* Wait up to 5 s for the child to say it is ready. */
static bool attacker_ready(struct attacker *at)
{
	struct pollfd p = {.fd = at->result, .events = POLLIN};
	char r = 0;

	return poll(&p, 1, 5000) > 0 && read(at->result, &r, 1) == 1 && r == 'r';
}

static bool become_nobody(void)
{
	return setgroups(0, NULL) == 0 && setresgid(NOBODY, NOBODY, NOBODY) == 0 &&
	       setresuid(NOBODY, NOBODY, NOBODY) == 0 && geteuid() == NOBODY;
}

/* Run @fn as uid 65534 in a child; it reports one count (-1: failed). */
static bool attacker_start(struct attacker *at, attack_fn fn, void *arg)
{
	int res[2], stop[2];

	if (pipe2(res, O_CLOEXEC) < 0)
		return false;
	if (pipe2(stop, O_CLOEXEC) < 0) {
		close(res[0]);
		close(res[1]);
		return false;
	}
	fflush(stdout);
	at->pid = fork();
	if (at->pid == 0) {
		int n = -1;

		close(res[0]);
		close(stop[1]);
		ready_fd = res[1];
		if ((!at->cwd || chdir(at->cwd) == 0) && become_nobody())
			n = fn(arg, stop[0]);
		if (write(res[1], &n, sizeof(n)) != sizeof(n))
			_exit(1);
		_exit(0);
	}
	close(res[1]);
	close(stop[0]);
	at->result = res[0];
	at->stop = stop[1];
	if (at->pid < 0) {
		close(res[0]);
		close(stop[1]);
		return false;
	}
	return true;
}

/* Stop it and take its count (-1 when it gave none within 5 s). */
static int attacker_finish(struct attacker *at)
{
	struct pollfd p = {.fd = at->result, .events = POLLIN};
	int n = -1;

	if (at->pid <= 0)
		return -1;
	close(at->stop);
	if (poll(&p, 1, 5000) <= 0 || read(at->result, &n, sizeof(n)) != sizeof(n)) {
		kill(at->pid, SIGKILL);
		n = -1;
	}
	waitpid(at->pid, NULL, 0);
	close(at->result);
	at->pid = 0;
	return n;
}

/* ---- 1. squat ------------------------------------------------------------- */

struct squat {
	uint64_t cookie;
	char group[SOCKMIG_NAME_MAX];
};

/* Bind every name B's endpoint could have, then take what comes. */
static int squat(void *arg, int stop)
{
	const struct squat *q = arg;
	struct sockaddr_un abs = {.sun_family = AF_UNIX}, path = {.sun_family = AF_UNIX};
	struct pollfd p[3] = {{.fd = stop}, {.fd = -1}, {.fd = -1}};
	char dir[200];
	socklen_t alen;
	int got = 0, n;

	n = snprintf(abs.sun_path + 1, sizeof(abs.sun_path) - 1, "sockmig-handoff/%016llx",
		     (unsigned long long)q->cookie);
	alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	p[1].fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	if (bind(p[1].fd, (struct sockaddr *)&abs, alen) < 0) {
		close(p[1].fd);
		p[1].fd = -1;
	}
	snprintf(dir, sizeof(dir), "%s/%s", RUNDIR, q->group);
	mkdir("/run/sockmig", 0777);
	mkdir(RUNDIR, 0777);
	mkdir(dir, 0777);
	snprintf(path.sun_path, sizeof(path.sun_path), "%s/%016llx", dir,
		 (unsigned long long)q->cookie);
	p[2].fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0);
	if (bind(p[2].fd, (struct sockaddr *)&path, sizeof(path)) < 0 || listen(p[2].fd, 64) < 0) {
		close(p[2].fd);
		p[2].fd = -1;
	}
	printf("attacker: abstract name %s, path %s\n", p[1].fd >= 0 ? "bound" : "refused",
	       p[2].fd >= 0 ? "bound" : "refused");
	fflush(stdout);
	attacker_say_ready();
	for (int i = 0; i < 1000; i++) { /* 10 s at most */
		p[0].events = p[1].events = p[2].events = POLLIN;
		if (poll(p, 3, 10) < 0 || p[0].revents)
			break;
		while (p[1].fd >= 0 && (n = drop_fds(p[1].fd)) >= 0)
			got += n;
		for (int c; p[2].fd >= 0 && (c = accept(p[2].fd, NULL, NULL)) >= 0; close(c))
			while ((n = drop_fds(c)) > 0)
				got += n;
	}
	return got;
}

SM_TEST(handoff_squatter_gets_nothing)
{
	struct tu_handoff s = {.a = -1, .b = -1, .hfd = -1};
	struct attacker at = {0};
	struct squat q;
	SOCKMIG_OPTS(sockmig_legacy_drain_opts, lo, .on_accept = sockmig_handoff_accept,
		     .deadline_ms = 2000);
	struct sockmig_legacy_drain_report rep = {0};
	int cl[N_CLIENT], got = 0, served = 0, stolen = -1, ret = SM_FAIL;

	for (int i = 0; i < N_CLIENT; i++)
		cl[i] = -1;
	s.a = tu_tcp_listener(SOCK_STREAM, PORT);
	/* the clients wait in A's queue before B exists */
	for (int i = 0; i < N_CLIENT; i++)
		cl[i] = tu_tcp_connect(PORT);
	if (!tu_handoff_open(&s))
		goto out;
	q.cookie = sockmig_cookie(s.b);
	snprintf(q.group, sizeof(q.group), "%s", sockmig_group_name(s.g));
	if (!ASSERT_TRUE(attacker_start(&at, squat, &q), "attacker"))
		goto out;
	/* its names are bound before it says so */
	if (!ASSERT_TRUE(attacker_ready(&at), "attacker ready"))
		goto out;
	s.hfd = sockmig_handoff_listen(s.g, s.b);
	if (s.hfd < 0)
		printf("B's endpoint: %s\n", sockmig_last_error());
	lo.ctx = s.g;
	if (!ASSERT_OK(sockmig_member_drain_legacy(s.g, s.a, &lo, &rep), "drain A"))
		goto out;
	for (int i = 0; s.hfd >= 0 && i < 4 * N_CLIENT; i++) {
		int c = sockmig_handoff_recv(s.hfd);

		if (c == -EAGAIN)
			break;
		if (c < 0)
			continue;
		if (write(c, "x", 1) == 1)
			got++;
		close(c);
	}
	stolen = attacker_finish(&at);
	for (int i = 0; i < N_CLIENT; i++) {
		struct pollfd p = {.fd = cl[i], .events = POLLIN};
		char c;

		if (cl[i] >= 0 && poll(&p, 1, 1000) > 0 && read(cl[i], &c, 1) == 1)
			served++;
	}
	printf("drain accepted %llu, refused %llu; B's endpoint got %d, attacker %d; clients "
	       "served %d of %d\n",
	       (unsigned long long)rep.accepted, (unsigned long long)rep.refused, got, stolen,
	       served, N_CLIENT);
	if (!ASSERT_EQ(stolen, 0, "connections delivered to the attacker") ||
	    !ASSERT_OK(s.hfd, "B's endpoint, opened after the squat") ||
	    !ASSERT_EQ(rep.accepted, N_CLIENT, "accepted by the drain") ||
	    !ASSERT_EQ(rep.refused, 0, "refused by the hand-off") ||
	    !ASSERT_EQ(got, N_CLIENT, "handed to B") ||
	    !ASSERT_EQ(served, N_CLIENT, "clients served"))
		goto out;
	ret = SM_PASS;
out:
	if (at.pid > 0)
		attacker_finish(&at);
	for (int i = 0; i < N_CLIENT; i++)
		if (cl[i] >= 0)
			close(cl[i]);
	tu_handoff_close(&s);
	return ret;
}

/* ---- 2. inject ------------------------------------------------------------ */

struct inject {
	struct sockaddr_un addr; /* B's endpoint, as getsockname() says */
	socklen_t len;
	int fd; /* what to send; -1: a file of its own */
};

/* Connect to the endpoint every way a unix socket can, send one fd. */
static int inject(void *arg, int stop)
{
	static const int types[] = {SOCK_SEQPACKET, SOCK_DGRAM, SOCK_STREAM};
	const struct inject *in = arg;
	int sent = 0;

	(void)stop;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		int s = socket(AF_UNIX, types[i], 0);
		int fd = in->fd >= 0 ? in->fd : open("/dev/null", O_RDONLY);

		if (s >= 0 && fd >= 0 &&
		    connect(s, (const struct sockaddr *)&in->addr, in->len) == 0 &&
		    send_fd(s, fd) == 0)
			sent++;
		else
			printf("attacker: type %d: %s\n", types[i], strerror(errno));
		if (fd != in->fd)
			close(fd);
		close(s);
	}
	return sent;
}

SM_TEST(handoff_refuses_foreign_fds)
{
	struct tu_handoff s = {.a = -1, .b = -1, .hfd = -1};
	struct attacker at = {0};
	struct inject in = {.fd = -1};
	struct tu_recv_count rc = {0};
	int other = -1, cl = -1, cl2 = -1, conn = -1, sent = -1, ret = SM_FAIL;
	char dir[sizeof(in.addr.sun_path)], path[sizeof(in.addr.sun_path)];

	if (!tu_handoff_open(&s))
		goto out;
	s.hfd = sockmig_handoff_listen(s.g, s.b);
	in.len = sizeof(in.addr);
	if (!ASSERT_OK(s.hfd, "B's endpoint") ||
	    !ASSERT_OK(getsockname(s.hfd, (struct sockaddr *)&in.addr, &in.len), "its name"))
		goto out;

	/* uid 65534 sends a file of its own */
	if (!ASSERT_TRUE(attacker_start(&at, inject, &in), "attacker"))
		goto out;
	sent = attacker_finish(&at);
	tu_recv_all(s.hfd, &rc);
	printf("attacker sent %d; returned %d connections, %d others; refused %d + %d\n", sent,
	       rc.conn, rc.other, rc.refused, rc.perm);
	if (!ASSERT_EQ(rc.other, 0, "attacker's file returned as a connection") ||
	    !ASSERT_EQ(sent, 0, "attacker's messages sent to the endpoint"))
		goto out;

	/* a sender allowed to: the file, a UDP socket of the port, a TCP
	 * connection of another port, a listener; then a real connection */
	other = tu_tcp_listener(SOCK_STREAM, PORT + 1);
	cl = tu_tcp_connect(PORT + 1);
	conn = other >= 0 ? tu_accept_either(other, -1) : -1;
	if (!ASSERT_OK(conn, "a connection of another port") ||
	    !ASSERT_OK(sockmig_handoff_accept(open("/dev/null", O_RDONLY), s.g), "send a file") ||
	    !ASSERT_OK(sockmig_handoff_accept(tu_tcp_listener(SOCK_DGRAM, PORT), s.g),
		       "send UDP") ||
	    !ASSERT_OK(sockmig_handoff_accept(conn, s.g), "send another port's connection") ||
	    !ASSERT_OK(sockmig_handoff_accept(dup(s.a), s.g), "send a listener"))
		goto out;
	conn = -1;
	cl2 = tu_tcp_connect(PORT);
	conn = cl2 >= 0 ? tu_accept_either(s.a, s.b) : -1;
	if (!ASSERT_OK(conn, "a connection of the group") ||
	    !ASSERT_OK(sockmig_handoff_accept(conn, s.g), "send it"))
		goto out;
	conn = -1;
	memset(&rc, 0, sizeof(rc));
	tu_recv_all(s.hfd, &rc);
	printf("returned %d connections, %d others; refused %d + %d\n", rc.conn, rc.other,
	       rc.refused, rc.perm);
	if (!ASSERT_EQ(rc.other, 0, "foreign fds returned") ||
	    !ASSERT_EQ(rc.refused, 4, "foreign fds refused") ||
	    !ASSERT_EQ(rc.conn, 1, "the real connection returned"))
		goto out;

	/* the directory opened to everyone by mistake: the endpoint still
	 * refuses a sender of uid 65534 (a real connection it was given) */
	snprintf(path, sizeof(path), "%s", in.addr.sun_path);
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	if (cl2 >= 0)
		close(cl2);
	cl2 = tu_tcp_connect(PORT);
	in.fd = cl2 >= 0 ? tu_accept_either(s.a, s.b) : -1;
	/* the attacker's working directory is the group's: the levels above,
	 * private to root (/run/sockmig), are not on its way */
	at.cwd = dir;
	in.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
			     snprintf(in.addr.sun_path, sizeof(in.addr.sun_path), "%s",
				      strrchr(path, '/') + 1) +
			     1);
	if (!ASSERT_OK(in.fd, "a connection of the group") ||
	    !ASSERT_OK(chmod(dir, 0711), "chmod 0711 the group's directory") ||
	    !ASSERT_OK(chmod(path, 0666), "chmod 0666 the endpoint") ||
	    !ASSERT_TRUE(attacker_start(&at, inject, &in), "attacker"))
		goto out;
	sent = attacker_finish(&at);
	chmod(path, 0600);
	chmod(dir, 0700);
	memset(&rc, 0, sizeof(rc));
	tu_recv_all(s.hfd, &rc);
	printf("attacker sent %d; returned %d connections, %d others; refused %d + %d\n", sent,
	       rc.conn, rc.other, rc.refused, rc.perm);
	if (!ASSERT_EQ(sent, 1, "sent by uid 65534 through the open directory") ||
	    !ASSERT_EQ(rc.perm, 1, "refused by its credentials") ||
	    !ASSERT_EQ(rc.conn + rc.other, 0, "returned"))
		goto out;
	ret = SM_PASS;
out:
	if (at.pid > 0)
		attacker_finish(&at);
	{
		int fds[] = {other, cl, cl2, conn, in.fd};

		for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	tu_handoff_close(&s);
	return ret;
}
