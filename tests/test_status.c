// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The diag module under sockmig status: the sock_diag reply parser on
 * replies built here (a pure case), sm_diag_listeners() against the
 * sockets a case creates (cookies, queues, owners). The sockmig binary's
 * output is test_status_cli.c's.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "diag.h"
#include "statustest.h"
#include "util.h"

static const struct sm_listener *by_cookie(const struct sm_listener *v, int n, uint64_t cookie,
					   int *matches)
{
	const struct sm_listener *found = NULL;

	*matches = 0;
	for (int i = 0; i < n; i++)
		if (v[i].cookie == cookie) {
			found = &v[i];
			(*matches)++;
		}
	return found;
}

/* ---- the parser, on replies built here ------------------------------------ */

struct reply {
	char buf[4096];
	size_t len;
};

static void put_msg(struct reply *r, uint16_t type, const void *payload, size_t plen)
{
	struct nlmsghdr h = {.nlmsg_len = (uint32_t)NLMSG_LENGTH(plen),
			     .nlmsg_type = type,
			     .nlmsg_flags = NLM_F_MULTI,
			     .nlmsg_seq = 1};

	memcpy(r->buf + r->len, &h, sizeof(h));
	memcpy(r->buf + r->len + NLMSG_HDRLEN, payload, plen);
	r->len += NLMSG_ALIGN(h.nlmsg_len);
}

/* A LISTEN (or other @state) socket as inet_diag reports it; @attr adds an
 * INET_DIAG_SHUTDOWN attribute after it, as a real dump may. */
static void put_sock(struct reply *r, int family, int state, const char *addr, int port,
		     uint64_t cookie, uint32_t rq, uint32_t wq, uint32_t uid, uint32_t inode,
		     bool attr)
{
	char payload[sizeof(struct inet_diag_msg) + RTA_SPACE(1)];
	struct inet_diag_msg m;
	struct rtattr rta = {.rta_len = RTA_LENGTH(1), .rta_type = INET_DIAG_SHUTDOWN};

	memset(&m, 0, sizeof(m));
	memset(payload, 0, sizeof(payload));
	m.idiag_family = (uint8_t)family;
	m.idiag_state = (uint8_t)state;
	m.id.idiag_sport = htons((uint16_t)port);
	inet_pton(family, addr, m.id.idiag_src);
	m.id.idiag_cookie[0] = (uint32_t)cookie;
	m.id.idiag_cookie[1] = (uint32_t)(cookie >> 32);
	m.idiag_rqueue = rq;
	m.idiag_wqueue = wq;
	m.idiag_uid = uid;
	m.idiag_inode = inode;
	memcpy(payload, &m, sizeof(m));
	memcpy(payload + sizeof(m), &rta, sizeof(rta));
	put_msg(r, SOCK_DIAG_BY_FAMILY, payload, sizeof(m) + (attr ? RTA_SPACE(1) : 0));
}

static void put_done(struct reply *r, int status)
{
	put_msg(r, NLMSG_DONE, &status, sizeof(status));
}

static int parse(const void *buf, size_t len, int family, int port, struct sm_listener **v, int *n)
{
	int cap = *v ? *n : 0;

	return sm_diag_parse(buf, len, family, port, v, n, &cap);
}

SM_PURE(status_diag_parse_built_reply)
{
	struct reply *r = calloc(1, sizeof(*r)), *bad = calloc(1, sizeof(*bad));
	struct sm_listener *v = NULL;
	struct in6_addr lo6 = IN6ADDR_LOOPBACK_INIT;
	size_t first_two;
	char *shifted = NULL;
	int n = 0, ret = SM_FAIL;
	struct nlmsgerr e = {.error = -EPERM};

	if (!r || !bad)
		goto out;
	put_sock(r, AF_INET, TCP_LISTEN, "127.0.0.1", 8080, 0x500001234ull, 3, 128, 1000, 4242,
		 false);
	put_sock(r, AF_INET6, TCP_LISTEN, "::1", 8443, 7, 0, 64, 0, 4243, true);
	first_two = r->len;
	put_sock(r, AF_INET, TCP_ESTABLISHED, "127.0.0.1", 8080, 9, 0, 0, 0, 4244, false);
	put_msg(r, NLMSG_NOOP, "", 0);
	put_sock(r, AF_INET, TCP_LISTEN, "0.0.0.0", 9000, 11, 0, 10, 0, 4245, true);
	put_done(r, 0);

	/* the whole reply */
	if (!ASSERT_EQ(parse(r->buf, r->len, 0, 0, &v, &n), 1, "parse: done") ||
	    !ASSERT_EQ(n, 3, "LISTEN sockets") || !ASSERT_EQ(v[0].family, AF_INET, "[0] family") ||
	    !ASSERT_EQ(v[0].port, 8080, "[0] port") ||
	    !ASSERT_EQ(v[0].addr.v4.s_addr, htonl(INADDR_LOOPBACK), "[0] address") ||
	    !ASSERT_EQ(v[0].cookie, 0x500001234ull, "[0] cookie (two halves)") ||
	    !ASSERT_EQ(v[0].queue, 3, "[0] queue") ||
	    !ASSERT_EQ(v[0].backlog, 128, "[0] backlog") || !ASSERT_EQ(v[0].uid, 1000, "[0] uid") ||
	    !ASSERT_EQ(v[0].inode, 4242, "[0] inode") ||
	    !ASSERT_EQ(v[0].nowners, 0, "[0] no owners from a parse") ||
	    !ASSERT_EQ(v[1].family, AF_INET6, "[1] family") ||
	    !ASSERT_EQ(v[1].port, 8443, "[1] port") ||
	    !ASSERT_TRUE(memcmp(&v[1].addr.v6, &lo6, sizeof(lo6)) == 0, "[1] address ::1") ||
	    !ASSERT_EQ(v[1].cookie, 7, "[1] cookie") ||
	    !ASSERT_EQ(v[1].backlog, 64, "[1] backlog") ||
	    !ASSERT_EQ(v[2].port, 9000, "[2] port (after an attribute and a NOOP)") ||
	    !ASSERT_EQ(v[2].addr.v4.s_addr, 0, "[2] wildcard") ||
	    !ASSERT_EQ(v[2].cookie, 11, "[2] cookie"))
		goto out;

	/* filters: family, port (the ESTABLISHED socket on 8080 stays out) */
	n = 0;
	if (!ASSERT_EQ(parse(r->buf, r->len, AF_INET6, 0, &v, &n), 1, "parse IPv6") ||
	    !ASSERT_EQ(n, 1, "IPv6 listeners") || !ASSERT_EQ(v[0].cookie, 7, "IPv6 cookie"))
		goto out;
	n = 0;
	if (!ASSERT_EQ(parse(r->buf, r->len, 0, 8080, &v, &n), 1, "parse port 8080") ||
	    !ASSERT_EQ(n, 1, "listeners on 8080") ||
	    !ASSERT_EQ(v[0].cookie, 0x500001234ull, "cookie on 8080"))
		goto out;
	n = 0;
	if (!ASSERT_EQ(parse(r->buf, r->len, AF_INET6, 8080, &v, &n), 1, "parse IPv6 8080") ||
	    !ASSERT_EQ(n, 0, "IPv6 listeners on 8080"))
		goto out;

	/* in two receives: more to come after the first, appended after */
	n = 0;
	if (!ASSERT_EQ(parse(r->buf, first_two, 0, 0, &v, &n), 0, "first part: more to come") ||
	    !ASSERT_EQ(n, 2, "after the first part") ||
	    !ASSERT_EQ(parse(r->buf + first_two, r->len - first_two, 0, 0, &v, &n), 1,
		       "second part: done") ||
	    !ASSERT_EQ(n, 3, "after both") || !ASSERT_EQ(v[2].cookie, 11, "appended"))
		goto out;

	/* at an odd address: the parser copies, never casts */
	shifted = malloc(r->len + 1);
	if (!shifted)
		goto out;
	memcpy(shifted + 1, r->buf, r->len);
	n = 0;
	if (!ASSERT_EQ(parse(shifted + 1, r->len, 0, 0, &v, &n), 1, "unaligned: done") ||
	    !ASSERT_EQ(n, 3, "unaligned: listeners") ||
	    !ASSERT_EQ(v[0].cookie, 0x500001234ull, "unaligned: cookie"))
		goto out;

	/* errors */
	n = 0;
	if (!ASSERT_ERR(parse(r->buf, first_two - 8, 0, 0, &v, &n), EBADMSG, "truncated"))
		goto out;
	put_msg(bad, SOCK_DIAG_BY_FAMILY, "short", 5);
	n = 0;
	if (!ASSERT_ERR(parse(bad->buf, bad->len, 0, 0, &v, &n), EBADMSG, "short inet_diag_msg"))
		goto out;
	bad->len = 0;
	put_msg(bad, NLMSG_ERROR, &e, sizeof(e));
	n = 0;
	if (!ASSERT_ERR(parse(bad->buf, bad->len, 0, 0, &v, &n), EPERM, "NLMSG_ERROR"))
		goto out;
	bad->len = 0;
	put_done(bad, -EINTR);
	n = 0;
	if (!ASSERT_ERR(parse(bad->buf, bad->len, 0, 0, &v, &n), EINTR, "failed dump"))
		goto out;
	ret = SM_PASS;
out:
	free(shifted);
	free(v);
	free(r);
	free(bad);
	return ret;
}

/* ---- sm_diag_listeners() against real sockets ----------------------------- */

static bool check_listener(const struct sm_listener *v, int n, int fd, int family, int port,
			   int backlog)
{
	int matches;
	const struct sm_listener *l = by_cookie(v, n, sockmig_cookie(fd), &matches);
	struct stat st;

	if (!ASSERT_EQ(matches, 1, "listeners with the fd's SO_COOKIE") || fstat(fd, &st) < 0)
		return false;
	return ASSERT_EQ(l->family, family, "family") && ASSERT_EQ(l->port, port, "port") &&
	       ASSERT_EQ(l->backlog, backlog, "backlog") &&
	       ASSERT_EQ(l->inode, st.st_ino, "inode") && ASSERT_EQ(l->uid, geteuid(), "uid") &&
	       ASSERT_EQ(l->queue, burst_accept_queue(fd), "queue") &&
	       ASSERT_EQ(l->nowners, 1, "owners") && ASSERT_EQ(l->owners_total, 1, "all owners") &&
	       ASSERT_EQ(l->owners[0].pid, getpid(), "owner pid") &&
	       ASSERT_EQ(l->owners[0].fd, fd, "owner fd");
}

SM_TEST(status_diag_listeners_match_sockets)
{
	enum { K = 5, M = 7 };
	int g[3] = {-1, -1, -1}, v6 = -1, plain = -1, dupfd = -1, taken = -1;
	int ck[K], cm[M], n, sum = 0, matches, ret = SM_FAIL;
	struct sm_listener *v = NULL;
	const struct sm_listener *l;

	for (int i = 0; i < K; i++)
		ck[i] = -1;
	for (int i = 0; i < M; i++)
		cm[i] = -1;
	for (int i = 0; i < 3; i++)
		if (!ASSERT_OK(g[i] = st_listener(AF_INET, P_GROUP, true, 128), "group listener"))
			goto out;
	if (!ASSERT_OK(v6 = st_listener(AF_INET6, P_V6, true, 64), "IPv6 listener") ||
	    !ASSERT_OK(plain = st_listener(AF_INET, P_PLAIN, false, 32), "plain listener"))
		goto out;
	/* K clients the plain listener never accepts; M spread over the group */
	if (!ASSERT_EQ(st_connect_n(AF_INET, P_PLAIN, K, ck), K, "clients of the plain listener") ||
	    !ASSERT_EQ(st_connect_n(AF_INET, P_GROUP, M, cm), M, "clients of the group") ||
	    !ASSERT_EQ(st_wait_queues(&plain, 1, K), K, "plain queue") ||
	    !ASSERT_EQ(st_wait_queues(g, 3, M), M, "group queues"))
		goto out;

	n = sm_diag_listeners(0, 0, &v);
	if (!ASSERT_EQ(n, 5, "every listener of the namespace, no more"))
		goto out;
	for (int i = 0; i < 3; i++)
		if (!check_listener(v, n, g[i], AF_INET, P_GROUP, 128))
			goto out;
	if (!check_listener(v, n, v6, AF_INET6, P_V6, 64) ||
	    !check_listener(v, n, plain, AF_INET, P_PLAIN, 32))
		goto out;
	l = by_cookie(v, n, sockmig_cookie(plain), &matches);
	if (!ASSERT_EQ(l->queue, K, "queue of the plain listener") ||
	    !ASSERT_EQ(l->addr.v4.s_addr, htonl(INADDR_LOOPBACK), "address 127.0.0.1"))
		goto out;
	for (int i = 0; i < 3; i++)
		sum += (int)by_cookie(v, n, sockmig_cookie(g[i]), &matches)->queue;
	if (!ASSERT_EQ(sum, M, "queues of the group"))
		goto out;

	/* a second fd on the same socket: two owners; a copy taken through one */
	dupfd = fcntl(g[0], F_DUPFD_CLOEXEC, 100);
	free(v);
	n = sm_diag_listeners(AF_INET, P_GROUP, &v);
	if (!ASSERT_EQ(n, 3, "IPv4 listeners on the group's port"))
		goto out;
	l = by_cookie(v, n, sockmig_cookie(g[0]), &matches);
	if (!ASSERT_TRUE(l, "the duplicated listener") || !ASSERT_EQ(l->nowners, 2, "owners") ||
	    !ASSERT_EQ(l->owners[0].fd + l->owners[1].fd, g[0] + dupfd, "both fds") ||
	    !ASSERT_EQ(l->owners[1].pid, getpid(), "second owner"))
		goto out;
	taken = sm_diag_take(l, 0);
	if (!ASSERT_OK(taken, "sm_diag_take") ||
	    !ASSERT_EQ(sockmig_cookie(taken), l->cookie, "the copy is the same socket"))
		goto out;

	/* the filters */
	free(v);
	n = sm_diag_listeners(AF_INET6, 0, &v);
	if (!ASSERT_EQ(n, 1, "IPv6 listeners") ||
	    !ASSERT_EQ(v[0].cookie, sockmig_cookie(v6), "the IPv6 listener"))
		goto out;
	free(v);
	if (!ASSERT_EQ(sm_diag_listeners(AF_INET6, P_GROUP, &v), 0, "IPv6 on the group's port") ||
	    !ASSERT_TRUE(v == NULL, "nothing to free") ||
	    !ASSERT_EQ(sm_diag_listeners(0, P_NONE, &v), 0, "a port without listener") ||
	    !ASSERT_ERR(sm_diag_listeners(AF_UNIX, 0, &v), EINVAL, "family AF_UNIX") ||
	    !ASSERT_ERR(sm_diag_listeners(0, 65536, &v), EINVAL, "port 65536"))
		goto out;
	ret = SM_PASS;
out:
	free(v);
	st_close_all(ck, K);
	st_close_all(cm, M);
	st_close_all(g, 3);
	st_close_all((int[]){v6, plain, dupfd, taken}, 4);
	return ret;
}

/* sm_diag_owners_of(): the owners among one process's fds only. A child
 * holds A (inherited, same fd number) and B (its own). */
SM_TEST(status_diag_owners_of_one_process)
{
	int a = -1, up[2] = {-1, -1}, down[2] = {-1, -1}, b_fd = -1, n, matches, ret = SM_FAIL;
	struct sm_listener *v = NULL;
	const struct sm_listener *la, *lb;
	pid_t child = -1;
	uint64_t b_cookie = 0;

	if (!ASSERT_OK(a = st_listener(AF_INET, P_GROUP, true, 16), "A") ||
	    !ASSERT_OK(pipe2(up, O_CLOEXEC), "pipe") || !ASSERT_OK(pipe2(down, O_CLOEXEC), "pipe"))
		goto out;
	child = fork();
	if (child == 0) {
		int b = st_listener(AF_INET, P_V6, true, 16);
		uint64_t msg[2] = {(uint64_t)b, b >= 0 ? sockmig_cookie(b) : 0};
		char c;

		close(up[0]);
		close(down[1]);
		if (write(up[1], msg, sizeof(msg)) != sizeof(msg))
			_exit(1);
		while (read(down[0], &c, 1) < 0 && errno == EINTR)
			; /* until the parent closes its end */
		_exit(0);
	}
	if (!ASSERT_OK(child, "fork"))
		goto out;
	close(up[1]);
	close(down[0]);
	up[1] = down[0] = -1;
	{
		uint64_t msg[2];

		if (!ASSERT_EQ(read(up[0], msg, sizeof(msg)), sizeof(msg), "child's listener") ||
		    !ASSERT_TRUE((int64_t)msg[0] >= 0, "child listens"))
			goto out;
		b_fd = (int)msg[0];
		b_cookie = msg[1];
	}

	n = sm_diag_dump(AF_INET, 0, &v);
	if (!ASSERT_EQ(n, 2, "listeners") ||
	    !ASSERT_EQ(v[0].nowners + v[1].nowners, 0, "no owners"))
		goto out;
	la = by_cookie(v, n, sockmig_cookie(a), &matches);
	lb = by_cookie(v, n, b_cookie, &matches);
	if (!ASSERT_TRUE(la && lb, "A and B listed"))
		goto out;

	/* ours: A only */
	if (!ASSERT_OK(sm_diag_owners_of(v, n, getpid()), "our fds") ||
	    !ASSERT_EQ(la->nowners, 1, "A's owners") || !ASSERT_EQ(la->owners_total, 1, "all") ||
	    !ASSERT_EQ(la->owners[0].pid, getpid(), "A's owner") ||
	    !ASSERT_EQ(la->owners[0].fd, a, "A's fd") || !ASSERT_EQ(lb->nowners, 0, "B: not ours"))
		goto out;
	/* the child's: A (inherited) and B; the previous answer is replaced */
	if (!ASSERT_OK(sm_diag_owners_of(v, n, child), "the child's fds") ||
	    !ASSERT_EQ(la->nowners, 1, "A's owners") || !ASSERT_EQ(la->owners_total, 1, "all") ||
	    !ASSERT_EQ(la->owners[0].pid, child, "A's owner") ||
	    !ASSERT_EQ(la->owners[0].fd, a, "A's fd in the child") ||
	    !ASSERT_EQ(lb->nowners, 1, "B's owners") ||
	    !ASSERT_EQ(lb->owners[0].pid, child, "B's") ||
	    !ASSERT_EQ(lb->owners[0].fd, b_fd, "B's fd"))
		goto out;
	if (!ASSERT_ERR(sm_diag_owners_of(v, n, 0), EINVAL, "pid 0") ||
	    !ASSERT_ERR(sm_diag_owners_of(v, n, -1), EINVAL, "pid -1"))
		goto out;
	ret = SM_PASS;
out:
	free(v);
	st_close_all((int[]){a, up[0], up[1], down[0], down[1]}, 5);
	if (child > 0)
		waitpid(child, NULL, 0);
	return ret;
}
