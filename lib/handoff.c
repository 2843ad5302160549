// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Hand-off of accepted connections, for the legacy drain's on_accept: a
 * draining member sends each connection it accepts to a live member's
 * endpoint.
 *
 * Endpoints are unix SOCK_SEQPACKET listeners in the filesystem, at
 * HANDOFF_DIR/<group>/<listener cookie>. Socket cookies are public (ss
 * prints them) and abstract names can be bound by anyone in the network
 * namespace, so the name is not what protects an endpoint: the directory
 * is. Every level down to HANDOFF_DIR is a real directory owned by root
 * and writable by nobody else; the group's directory has mode 0700 and
 * belongs to the listener's uid (a SO_REUSEPORT group admits one), or to
 * root. Only root and that uid can bind or connect there. On top of that,
 * each side checks the other's credentials (SO_PEERCRED), and the receiver
 * checks every fd it gets: a TCP connection of the listener's family,
 * address and port, established; anything else is closed and refused.
 */
#include <dirent.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "legacy.h"

#define HANDOFF_DIR	  "/run/sockmig/handoff"
#define HANDOFF_MAX	  256 /* endpoints open in one process */
#define HANDOFF_MSG_WAIT  200 /* ms a receiver waits for a connected sender's message */
#define HANDOFF_RECV_SKIP 64  /* empty connections skipped in one receive */

/* What this process's endpoints accept; inherited by forked children. */
struct handoff_ep {
	int hfd; /* -1: free */
	ino_t ino;
	pid_t creator;
	uid_t owner;
	struct sm_addr addr;
};

static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;
static struct handoff_ep handoff_eps[HANDOFF_MAX];
static int handoff_neps;

static bool ep_find(int hfd, struct handoff_ep *out, bool take)
{
	struct stat st;
	bool found = false;

	if (hfd < 0 || fstat(hfd, &st) < 0)
		return false;
	pthread_mutex_lock(&handoff_lock);
	for (int i = 0; i < handoff_neps; i++) {
		if (handoff_eps[i].hfd != hfd || handoff_eps[i].ino != st.st_ino)
			continue;
		*out = handoff_eps[i];
		if (take)
			handoff_eps[i] = handoff_eps[--handoff_neps];
		found = true;
		break;
	}
	pthread_mutex_unlock(&handoff_lock);
	return found;
}

static int ep_add(const struct handoff_ep *ep)
{
	int err = 0;

	pthread_mutex_lock(&handoff_lock);
	/* forget endpoints closed without sockmig_handoff_close() */
	for (int i = 0; i < handoff_neps;) {
		struct stat st;

		if (handoff_eps[i].hfd == ep->hfd || fstat(handoff_eps[i].hfd, &st) < 0 ||
		    st.st_ino != handoff_eps[i].ino)
			handoff_eps[i] = handoff_eps[--handoff_neps];
		else
			i++;
	}
	if (handoff_neps < HANDOFF_MAX)
		handoff_eps[handoff_neps++] = *ep;
	else
		err = -ENOSPC;
	pthread_mutex_unlock(&handoff_lock);
	return err;
}

/*
 * @path must be a directory itself (not a symlink), owned by root or by
 * @uid, and writable by nobody else; with @private, no access at all for
 * group and others. @return 0 or a negative errno, with a message.
 */
static int check_dir(const char *path, uid_t uid, bool private, struct stat *st)
{
	if (lstat(path, st) < 0)
		return sm_fail(errno, "hand-off: %s: %s", path, strerror(errno));
	if (S_ISLNK(st->st_mode))
		return sm_fail(ELOOP, "hand-off: %s is a symbolic link", path);
	if (!S_ISDIR(st->st_mode))
		return sm_fail(ENOTDIR, "hand-off: %s is not a directory", path);
	if (st->st_uid != 0 && st->st_uid != uid)
		return sm_fail(EPERM, "hand-off: %s belongs to uid %u, not to root or uid %u", path,
			       (unsigned)st->st_uid, (unsigned)uid);
	if (st->st_mode & (private ? 077 : 022))
		return sm_fail(EPERM, "hand-off: %s has mode %04o: it must be %s", path,
			       (unsigned)(st->st_mode & 07777),
			       private ? "0700" : "writable by its owner only");
	return 0;
}

static int make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) == 0)
		return chmod(path, mode) < 0 ? -errno : 1; /* whatever the umask */
	return errno == EEXIST ? 0 : -errno;
}

/*
 * The directory of @group's endpoints, checked level by level: "/", /run
 * and the levels under it owned by root; the group's own 0700 and owned by
 * root or @owner. With @create (the receiver), what is missing is made and
 * the group's directory given to @owner; otherwise (the sender) @owner is
 * read from it: only root can have made it there. @return 0 or a negative
 * errno (for the sender, -ENOENT without a message: no endpoint there).
 */
static int handoff_dir(const char *group, uid_t *owner, bool create, char *dir, size_t len)
{
	static const char *const levels[] = {"/", "/run", "/run/sockmig", HANDOFF_DIR};
	struct stat st;
	int err;

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (create && i >= 2) {
			err = make_dir(levels[i], 0755);
			if (err < 0)
				return sm_fail(-err, "hand-off: cannot create %s: %s%s", levels[i],
					       strerror(-err),
					       err == -EACCES ? " (needs root)" : "");
		}
		if (!create && lstat(levels[i], &st) < 0 && errno == ENOENT)
			return -ENOENT; /* no endpoint anywhere yet */
		err = check_dir(levels[i], 0, false, &st);
		if (err)
			return err;
	}
	if ((size_t)snprintf(dir, len, "%s/%s", HANDOFF_DIR, group) >= len || strchr(group, '/') ||
	    group[0] == '.' || !group[0])
		return sm_fail(EINVAL, "hand-off: bad group name %s", group);
	if (create) {
		err = make_dir(dir, 0700);
		if (err < 0)
			return sm_fail(-err, "hand-off: cannot create %s: %s", dir, strerror(-err));
		if (err > 0 && *owner != geteuid() && chown(dir, *owner, (gid_t)-1) < 0) {
			err = errno;
			rmdir(dir);
			return sm_fail(err, "hand-off: cannot give %s to uid %u: %s", dir,
				       (unsigned)*owner, strerror(err));
		}
		return check_dir(dir, *owner, true, &st);
	}
	if (lstat(dir, &st) < 0)
		return errno == ENOENT ? -ENOENT /* no endpoint in this group */
				       : sm_fail(errno, "hand-off: %s: %s", dir, strerror(errno));
	*owner = st.st_uid;
	return check_dir(dir, st.st_uid, true, &st);
}

static int handoff_path(const char *dir, uint64_t cookie, struct sockaddr_un *sun, socklen_t *len)
{
	int n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%016llx", dir,
		     (unsigned long long)cookie);
	if (n < 0 || (size_t)n >= sizeof(sun->sun_path))
		return sm_fail(ENAMETOOLONG, "hand-off: %s: path too long", dir);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
	return 0;
}

/* Whether a process listens at @sun (a connection attempt, which a live
 * endpoint sees as an empty connection and skips). */
static bool endpoint_live(const struct sockaddr_un *sun, socklen_t len)
{
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	bool live;

	if (s < 0)
		return true; /* cannot tell: leave it */
	live = connect(s, (const struct sockaddr *)sun, len) == 0 || errno != ECONNREFUSED;
	close(s);
	return live;
}

/* Remove the endpoints in @dir whose process is gone (killed, or closed
 * without sockmig_handoff_close()). */
static void remove_stale(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)) && n++ < 4096) {
		struct sockaddr_un sun;
		socklen_t len = 0;
		struct stat st;

		if (de->d_name[0] == '.' || strlen(de->d_name) != 16 ||
		    handoff_path(dir, strtoull(de->d_name, NULL, 16), &sun, &len) ||
		    strcmp(strrchr(sun.sun_path, '/') + 1, de->d_name) != 0)
			continue;
		if (lstat(sun.sun_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    !endpoint_live(&sun, len))
			unlink(sun.sun_path);
	}
	if (d)
		closedir(d);
}

void sm_handoff_forget(const char *group)
{
	char dir[PATH_MAX];
	struct stat st;
	uid_t owner = 0;

	snprintf(dir, sizeof(dir), "%s/%s", HANDOFF_DIR, group);
	if (lstat(dir, &st) < 0 || handoff_dir(group, &owner, false, dir, sizeof(dir)) < 0)
		return; /* none (a native group), or not ours to clean */
	remove_stale(dir);
	rmdir(dir);
}

int sockmig_handoff_listen(struct sockmig_group *g, int fd)
{
	struct handoff_ep ep = {.hfd = -1};
	struct sockaddr_un sun;
	char dir[PATH_MAX];
	uint64_t cookie = sockmig_cookie(fd);
	uid_t euid = geteuid();
	struct stat st;
	socklen_t len = 0;
	int s = -1, err;

	if (!g || !cookie || fstat(fd, &st) < 0 || sm_sock_addr(fd, &ep.addr) < 0)
		return sm_fail(EINVAL, "fd %d is not a TCP socket", fd);
	ep.owner = st.st_uid;
	ep.creator = getpid();
	if (euid != 0 && euid != ep.owner)
		return sm_fail(EPERM,
			       "hand-off: the listener fd %d belongs to uid %u: only it or root "
			       "may open its endpoint",
			       fd, (unsigned)ep.owner);
	for (int tries = 0;; tries++) {
		err = handoff_dir(sockmig_group_name(g), &ep.owner, true, dir, sizeof(dir));
		if (!err)
			err = handoff_path(dir, cookie, &sun, &len);
		if (err)
			return err;
		if (tries == 0)
			remove_stale(dir);
		s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (s < 0)
			return sm_fail(errno, "socket: %s", strerror(errno));
		if (bind(s, (struct sockaddr *)&sun, len) == 0)
			break;
		err = errno;
		close(s);
		if (tries < 2 && err == ENOENT)
			continue; /* the directory went with its last endpoint: again */
		if (tries < 2 && err == EADDRINUSE && !endpoint_live(&sun, len) &&
		    unlink(sun.sun_path) == 0)
			continue; /* left by a process that is gone */
		return sm_fail(err, "cannot open the hand-off endpoint %s of fd %d: %s%s",
			       sun.sun_path, fd, strerror(err),
			       err == EADDRINUSE ? " (the listener has an endpoint already)" : "");
	}
	/* the directory keeps others out; the file lets only its owner in */
	if ((ep.owner != euid && chown(sun.sun_path, ep.owner, (gid_t)-1) < 0) ||
	    chmod(sun.sun_path, 0600) < 0 || listen(s, SOMAXCONN) < 0 || fstat(s, &st) < 0) {
		err = sm_fail(errno, "hand-off endpoint %s: %s", sun.sun_path, strerror(errno));
		goto unlink;
	}
	ep.hfd = s;
	ep.ino = st.st_ino;
	err = ep_add(&ep);
	if (err) {
		err = sm_fail(-err, "hand-off: more than %d endpoints in this process",
			      HANDOFF_MAX);
		goto unlink;
	}
	return s;
unlink:
	unlink(sun.sun_path);
	close(s);
	return err;
}

int sockmig_handoff_close(int hfd)
{
	struct handoff_ep ep;
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);

	if (!ep_find(hfd, &ep, true))
		return close(hfd) < 0 ? -errno : 0;
	/* forked children that hold it too only close their copy */
	if (ep.creator == getpid() && getsockname(hfd, (struct sockaddr *)&sun, &len) == 0 &&
	    len > offsetof(struct sockaddr_un, sun_path) + 1 && sun.sun_path[0] == '/') {
		char *slash;

		sun.sun_path[sizeof(sun.sun_path) - 1] = '\0';
		unlink(sun.sun_path);
		slash = strrchr(sun.sun_path, '/');
		*slash = '\0';
		rmdir(sun.sun_path); /* only when it was the group's last endpoint */
	}
	return close(hfd) < 0 ? -errno : 0;
}

static int sockopt_int(int fd, int level, int name)
{
	int val = 0;
	socklen_t len = sizeof(val);

	return getsockopt(fd, level, name, &val, &len) < 0 ? -1 : val;
}

/* Whether @fd is a connection accepted from a listener at @l: a TCP
 * socket of its family, address and port, established (or a Fast Open
 * child still in SYN_RECV, or half-closed by its client). */
static const char *not_a_connection(int fd, const struct sm_addr *l)
{
	struct sm_addr a;
	struct stat st;
	int state;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return "not a socket";
	if (sm_sock_addr(fd, &a) < 0 || a.family != l->family)
		return "another address family";
	if (sockopt_int(fd, SOL_SOCKET, SO_TYPE) != SOCK_STREAM ||
	    sockopt_int(fd, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP)
		return "not a TCP socket";
	if (sm_addr_port(&a) != sm_addr_port(l))
		return "another port";
	if (l->family == AF_INET && l->v4.sin_addr.s_addr != htonl(INADDR_ANY) &&
	    a.v4.sin_addr.s_addr != l->v4.sin_addr.s_addr)
		return "another address";
	if (l->family == AF_INET6 && !IN6_IS_ADDR_UNSPECIFIED(&l->v6.sin6_addr) &&
	    !IN6_ARE_ADDR_EQUAL(&a.v6.sin6_addr, &l->v6.sin6_addr))
		return "another address";
	state = sm_sock_state(fd);
	if (sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN) != 0 ||
	    (state != TCP_ESTABLISHED && state != TCP_SYN_RECV && state != TCP_CLOSE_WAIT))
		return "not an established connection";
	return NULL;
}

/* One message from connection @c: its one fd, -EAGAIN (empty: the sender
 * went without a word), or a negative errno for a message refused. */
static int recv_one(int c, const struct handoff_ep *ep)
{
	union {
		char buf[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} u;
	char byte;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;
	const char *why;
	int fds[8], nfds = 0;
	ssize_t n;

	memset(&u, 0, sizeof(u));
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	n = recvmsg(c, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		struct pollfd p = {.fd = c, .events = POLLIN};

		if (poll(&p, 1, HANDOFF_MSG_WAIT) > 0)
			n = recvmsg(c, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	}
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		return sm_fail(errno, "hand-off: %s", strerror(errno));
	for (cm = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL; cm; cm = CMSG_NXTHDR(&msg, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k && nfds < 8; i++)
			memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
	}
	if (n <= 0 && !nfds)
		return -EAGAIN;
	why = nfds != 1 || (msg.msg_flags & MSG_CTRUNC) ? "not one fd"
							: not_a_connection(fds[0], &ep->addr);
	if (!why)
		return fds[0];
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	return sm_fail(EBADMSG, "hand-off: refused and closed what was sent: %s", why);
}

int sockmig_handoff_recv(int hfd)
{
	struct handoff_ep ep;

	if (!ep_find(hfd, &ep, false))
		return sm_fail(EBADF,
			       "fd %d is not a hand-off endpoint opened by this process "
			       "(sockmig_handoff_listen())",
			       hfd);
	for (int i = 0; i < HANDOFF_RECV_SKIP; i++) {
		struct ucred cr = {.pid = 0, .uid = (uid_t)-1};
		socklen_t len = sizeof(cr);
		int c, fd;

		c = accept4(hfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK
				       ? -EAGAIN
				       : sm_fail(errno, "hand-off: %s", strerror(errno));
		}
		if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 ||
		    (cr.uid != 0 && cr.uid != ep.owner)) {
			close(c); /* and what it sent with it */
			return sm_fail(EPERM,
				       "hand-off: refused a sender of uid %u, pid %d: only root "
				       "and uid %u may hand connections over",
				       (unsigned)cr.uid, (int)cr.pid, (unsigned)ep.owner);
		}
		fd = recv_one(c, &ep);
		close(c);
		if (fd != -EAGAIN)
			return fd;
	}
	return -EAGAIN;
}

/*
 * Send @fd to the endpoint of member @cookie of @group: 0, -EAGAIN (its
 * queue is full and stayed full for @wait_ms), -EPERM (it is not owned by
 * root or the group's uid), or another negative errno.
 */
static int handoff_send(const char *group, uint64_t cookie, int fd, int wait_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	char byte = 0, dir[PATH_MAX];
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct sockaddr_un sun;
	struct ucred cr = {.pid = 0, .uid = (uid_t)-1};
	socklen_t len = 0, crlen = sizeof(cr);
	struct cmsghdr *cm;
	uid_t owner = 0;
	int s, err;

	err = handoff_dir(group, &owner, false, dir, sizeof(dir));
	if (!err)
		err = handoff_path(dir, cookie, &sun, &len);
	if (err)
		return err;
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | (wait_ms > 0 ? 0 : SOCK_NONBLOCK), 0);
	if (s < 0)
		return -errno;
	if (wait_ms > 0) {
		struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};

		setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (connect(s, (struct sockaddr *)&sun, len) < 0) {
		err = errno == EINPROGRESS ? -EAGAIN : -errno;
		goto out;
	}
	if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 ||
	    (cr.uid != 0 && cr.uid != owner)) {
		err = sm_fail(EPERM, "hand-off: %s is served by uid %u, not by root or uid %u",
			      sun.sun_path, (unsigned)cr.uid, (unsigned)owner);
		goto out;
	}
	memset(&u, 0, sizeof(u));
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	if (sendmsg(s, &msg, MSG_NOSIGNAL) != 1)
		err = -errno;
out:
	close(s);
	return err;
}

static int cmp_generation_desc(const void *a, const void *b)
{
	const struct sockmig_member_info *x = a, *y = b;

	return x->generation < y->generation ? 1 : x->generation > y->generation ? -1 : 0;
}

/* Note in @rx (NULL: nobody asked) that member @cookie took a connection. */
static void note_receiver(struct sm_receivers *rx, uint64_t cookie)
{
	if (!rx)
		return;
	for (int i = 0; i < rx->n; i++)
		if (rx->cookie[i] == cookie)
			return;
	if (rx->n < SM_RECEIVERS_MAX)
		rx->cookie[rx->n++] = cookie;
}

int sockmig_handoff_accept(int fd, void *ctx)
{
	return sm_handoff_give(ctx, fd, NULL);
}

int sm_handoff_give(struct sockmig_group *g, int fd, struct sm_receivers *rx)
{
	const char *group = g ? sockmig_group_name(g) : "";
	struct sockmig_member_info *m;
	int n, err = -ENOENT, busy = -1, last = 0, tried = 0;

	m = calloc(4 * 128, sizeof(*m));
	if (!m) {
		close(fd);
		return sm_fail(ENOMEM, "out of memory");
	}
	n = g ? sockmig_members(g, m, 4 * 128) : -EINVAL;
	if (n > 4 * 128)
		n = 4 * 128;
	if (n > 0)
		qsort(m, (size_t)n, sizeof(*m), cmp_generation_desc);
	for (int i = 0; i < n; i++) {
		int e;

		if (m[i].role != SOCKMIG_ROLE_ACTIVE || !m[i].listening)
			continue;
		e = handoff_send(group, m[i].cookie, fd, 0);
		if (e == -EAGAIN && rx) {
			/* its queue is full (net.unix.max_dgram_qlen): it serves
			 * hand-offs from accept(), wake it now */
			sockmig_member_kick(g, m[i].cookie);
			e = handoff_send(group, m[i].cookie, fd, 1000);
		}
		tried++;
		last = e;
		if (e == 0) {
			note_receiver(rx, m[i].cookie);
			err = 0;
			break;
		}
		if (e == -EAGAIN && busy < 0)
			busy = i;
	}
	/* every endpoint busy: wait for the first that was */
	if (err && busy >= 0 && handoff_send(group, m[busy].cookie, fd, 1000) == 0) {
		note_receiver(rx, m[busy].cookie);
		err = 0;
	}
	free(m);
	close(fd);
	if (err && !tried)
		return sm_fail(ENOENT, "no live member to hand the connection to: none active");
	if (err)
		return sm_fail(-last, "no live member took the connection (%d tried; last: %s)",
			       tried, strerror(-last));
	return 0;
}
