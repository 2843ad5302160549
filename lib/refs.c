// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What the kernel says about a listener's requests, for the legacy drain:
 * files of the socket's network namespace, the listener's reference count,
 * the longest life of a request.
 *
 * Counting handshakes in flight. The kernel does not say which listener a
 * half-open request belongs to (sock_diag and /proc list requests with
 * their addresses only, and every member of a group has the same ones),
 * and the program's count of SYNs steered is not a count of requests: a
 * SYN answered with a cookie makes none, a SYN dropped on a full queue and
 * sent again is counted twice. But every request holds a reference on its
 * listener (reqsk_alloc() takes it, reqsk_free() drops it), and so does
 * every child in the accept queue until accept() (SYN-cookie children do
 * not), and /proc/net/tcp{,6} prints each socket's reference count. Once
 * the listener gets no new SYN, a count of 1 (its own reference) plus the
 * accepted Fast Open children still in SYN_RECV (their request stays
 * attached until the handshake ends) means that no request is left. See
 * include/sockmig.h for what that does not cover.
 */
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "legacy.h"

/* ---- files of the socket's network namespace -------------------------------- */

struct ns_open {
	int nsfd;
	const char *path;
	int fd, err;
};

static void *open_in_ns(void *arg)
{
	struct ns_open *a = arg;

	if (setns(a->nsfd, CLONE_NEWNET) < 0) {
		a->err = -errno;
		return NULL;
	}
	a->fd = open(a->path, O_RDONLY | O_CLOEXEC);
	a->err = a->fd < 0 ? -errno : 0;
	return NULL;
}

/* Open @path (under /proc/thread-self/net or /proc/sys/net) as seen from
 * the network namespace of socket @sock: a taken socket may live in
 * another one than the calling thread. */
static int open_for_socket(int sock, const char *path)
{
	struct ns_open a = {.path = path, .fd = -1};
	struct stat sns;
	pthread_t th;
	int err;

	a.nsfd = ioctl(sock, SIOCGSKNS);
	if (a.nsfd < 0 || fstat(a.nsfd, &sns) < 0 || sns.st_ino == sockmig_netns_self()) {
		if (a.nsfd >= 0)
			close(a.nsfd);
		a.fd = open(path, O_RDONLY | O_CLOEXEC);
		return a.fd < 0 ? -errno : a.fd;
	}
	err = pthread_create(&th, NULL, open_in_ns, &a);
	if (err) {
		close(a.nsfd);
		return -err;
	}
	pthread_join(th, NULL);
	close(a.nsfd);
	return a.err ? a.err : a.fd;
}

static int read_int(int sock, const char *path, int def)
{
	char buf[32];
	int fd = open_for_socket(sock, path), v = def;
	ssize_t n;

	if (fd < 0)
		return def;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		if (sscanf(buf, "%d", &v) != 1)
			v = def;
	}
	return v;
}

/* ---- the listener's reference count ----------------------------------------- */

int sm_refs_open(struct refs_file *r, int sock)
{
	struct sm_addr a;
	struct stat st;
	int err;

	err = sm_sock_addr(sock, &a);
	if (err)
		return sm_fail(-err, "fd %d is not an IPv4 or IPv6 socket", sock);
	if (fstat(sock, &st) < 0)
		return sm_fail(errno, "fd %d: %s", sock, strerror(errno));
	r->ino = (unsigned long)st.st_ino;
	r->fd = open_for_socket(sock, a.family == AF_INET6 ? "/proc/thread-self/net/tcp6"
							   : "/proc/thread-self/net/tcp");
	if (r->fd < 0)
		return sm_fail(-r->fd, "cannot open /proc/net/tcp: %s", strerror(-r->fd));
	return 0;
}

/* One line of /proc/net/tcp: 1 when it is the listener's (*refs, *queued
 * set), 0 when it is another listener's, -ENOENT past the listeners (they
 * come first) or unparsable. */
static int refs_line(const struct refs_file *r, const char *line, unsigned *refs, unsigned *queued)
{
	unsigned state, rxq;
	unsigned long ino;
	int refcnt;

	/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode refcnt */
	if (sscanf(line, " %*u: %*s %*s %x %*x:%x %*x:%*x %*x %*u %*d %lu %d", &state, &rxq, &ino,
		   &refcnt) != 4)
		return -ENOENT;
	if (ino == r->ino && state == TCP_LISTEN) {
		*refs = refcnt > 0 ? (unsigned)refcnt : 0;
		*queued = rxq;
		return 1;
	}
	return state == TCP_LISTEN ? 0 : -ENOENT;
}

/* The listener's reference count and accept queue, as one line prints
 * them. -ENOENT when it does not listen. */
int sm_refs_read(struct refs_file *r, unsigned *refs, unsigned *queued)
{
	size_t have = 0;
	bool header = true;
	ssize_t n;

	if (lseek(r->fd, 0, SEEK_SET) < 0)
		return -errno;
	for (;;) {
		char *line, *nl;

		n = read(r->fd, r->buf + have, sizeof(r->buf) - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENOENT;
		have += (size_t)n;
		line = r->buf;
		while ((nl = memchr(line, '\n', (size_t)(r->buf + have - line)))) {
			int res;

			*nl = '\0';
			res = header ? 0 : refs_line(r, line, refs, queued);
			header = false;
			if (res)
				return res > 0 ? 0 : res;
			line = nl + 1;
		}
		have = (size_t)(r->buf + have - line);
		memmove(r->buf, line, have);
		if (have >= sizeof(r->buf) - 1)
			return -EOVERFLOW;
	}
}

int sockmig_listener_inflight(int fd)
{
	struct refs_file *r = calloc(1, sizeof(*r));
	unsigned refs, queued;
	int err;

	if (!r)
		return sm_fail(ENOMEM, "out of memory");
	err = sm_refs_open(r, fd);
	if (!err) {
		err = sm_refs_read(r, &refs, &queued);
		close(r->fd);
	}
	free(r);
	if (err)
		return sm_fail(-err, "fd %d is not a listening TCP socket of this netns", fd);
	return refs > 1 + queued ? (int)(refs - 1 - queued) : 0;
}

/* ---- the deadline -------------------------------------------------------------- */

/* Retransmissions that TCP_DEFER_ACCEPT's @secs stand for (the kernel
 * stores the option as a number of SYN+ACK timeouts: 1 s, doubling, at
 * most 120 s each). */
static int defer_rounds(int secs)
{
	int rounds = 0, timeout = 1, covered = 0;

	while (secs > covered && rounds < 255) {
		covered += timeout;
		rounds++;
		timeout = timeout * 2 > 120 ? 120 : timeout * 2;
	}
	return rounds;
}

/* Longest life of a request on listener @fd, in ms: its first SYN+ACK
 * timeout (1 s), then one per retransmission, doubling up to 120 s. */
uint32_t sm_synack_budget_ms(int fd)
{
	int retries = read_int(fd, "/proc/sys/net/ipv4/tcp_synack_retries", 5);
	int syn_retries = read_int(fd, "/proc/sys/net/ipv4/tcp_syn_retries", 6);
	int val = 0;
	socklen_t len = sizeof(val);
	uint64_t ms = 0, t = 1000;

	/* TCP_SYNCNT reads back tcp_syn_retries unless it was set, and
	 * then stands for tcp_synack_retries: count it only when it differs */
	if (getsockopt(fd, IPPROTO_TCP, TCP_SYNCNT, &val, &len) == 0 && val > 0 &&
	    val != syn_retries && val > retries)
		retries = val;
	val = 0;
	len = sizeof(val);
	if (getsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &val, &len) == 0 &&
	    defer_rounds(val) > retries)
		retries = defer_rounds(val);
	if (retries < 0)
		retries = 0;
	for (int i = 0; i <= retries && i < 256; i++) {
		ms += t;
		t = t * 2 > 120000 ? 120000 : t * 2;
	}
	return ms > UINT32_MAX - 1000 ? UINT32_MAX - 1000 : (uint32_t)ms;
}
