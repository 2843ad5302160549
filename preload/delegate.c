// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Decisions handed to the root ancestor. A pre-fork server's master often
 * runs as root and its workers as another user: a worker cannot read the
 * fd directories of root's processes in /proc, so at its close of a
 * listener refs.c answers "cannot tell" even when that close is the last
 * reference (the master closed its copy first, at a shrink). Natively the
 * kernel still migrates the queue; in legacy mode it would be lost.
 *
 * So a root process, at its first registration or adoption, makes a
 * datagram socket pair and a thread that reads its receiving end; forked
 * children keep only the sending end (close-on-exec both). A child that
 * cannot tell sends its listener's entry with a copy of the fd
 * (SCM_RIGHTS), holding the socket's decision lock, then makes its plain
 * close, which drops the lock. The root thread takes the lock after that
 * close, decides as root (its own other fds, every process) and, when its
 * copy is the last reference, drains, closes and leaves as the last
 * holder does; when not, it only closes its copy. A send that fails (the
 * root process gone: refused) leaves the plain close, as before.
 *
 * The copy the thread holds is in the fd table of the whole process: a
 * child forked while it is there holds the listener too, and the thread's
 * scan finds that child and only closes its copy; the child's copy is then
 * the last reference and goes without a drain (closed by the child, at
 * once or at its exit), resetting the queue. A pre-fork master forks
 * exactly then: the old workers hand their listeners over right after a
 * reload, the next reload forks new workers. So fork() waits while the
 * thread holds a copy (a pthread_atfork() handler; the thread receives
 * and decides under `holding`), at most FORK_WAIT_MS: the decision and
 * its drain, which has its own deadline. Past that wait the fork goes on;
 * a child forked during a decision then closes its copy of the fd
 * (`deciding`), which leaves the decision right unless the thread's scan
 * saw the child before that.
 * Limits: a server that closes the pair's fds behind the shim ends the
 * hand-over (checked by inode before each use); vfork() and posix_spawn()
 * run no fork handlers: such a child holds the copy until its exec.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

static int chan_rx = -1, chan_tx = -1;
static unsigned long rx_ino, tx_ino;
static pid_t maker;
/* the copy the thread is deciding on: a child forked meanwhile closes its
 * own copy of it (it would hold the listener for its whole life) */
static _Atomic int deciding = -1;
static _Atomic unsigned long deciding_ino;

/* Held by the thread from the receipt of a copy to its close; fork()
 * waits for it (at most FORK_WAIT_MS, the longest decision: a lock wait
 * and a legacy drain). */
#define FORK_WAIT_MS (SHIM_LEGACY_DRAIN_MS + 2 * SHIM_LOCK_WAIT_MS)
static pthread_mutex_t holding = PTHREAD_MUTEX_INITIALIZER;
static bool atfork_set;
/* per thread: two threads may fork at once, one after the other */
static __thread bool fork_held;

static bool fd_ino(int fd, unsigned long ino)
{
	struct stat st;

	return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == ino;
}

static int op_close(int fd, void *arg)
{
	(void)arg;
	return shim_real.close(fd);
}

/*
 * The fd of one message with exactly one fd; every other fd it carried
 * (more cmsgs, more fds in one) closed, so that a child cannot fill our
 * fd table. -1 when it carried not exactly one.
 */
static int one_fd(struct msghdr *msg)
{
	int fd = -1, count = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		size_t nfd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int f;

			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(f));
			if (count++ == 0)
				fd = f;
			else
				shim_real.close(f);
		}
	}
	if (count != 1 || (msg->msg_flags & MSG_CTRUNC)) {
		if (fd >= 0)
			shim_real.close(fd);
		return -1;
	}
	return fd;
}

/* One "Name:" line of a /proc status file into @out. */
static bool status_line(const char *path, const char *name, char *out, size_t size)
{
	char buf[4096];
	ssize_t n;
	char *p, *end;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	shim_real.close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	p = strstr(buf, name);
	if (!p)
		return false;
	end = strchr(p, '\n');
	if (!end || (size_t)(end - p) >= size)
		return false;
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return true;
}

/*
 * This thread decides as root only while the process is what it was when
 * the thread was made: capabilities, seccomp and no_new_privs are per
 * thread, and a server that dropped them (libcap, a seccomp filter without
 * TSYNC) must not keep a thread that did not. Compared with the thread
 * group leader's.
 */
static bool same_privileges(void)
{
	static const char *const names[] = {
		"Uid:", "Gid:", "CapEff:", "CapPrm:", "CapBnd:", "NoNewPrivs:", "Seccomp:"};
	char a[256], b[256];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!status_line("/proc/self/status", names[i], a, sizeof(a)) ||
		    !status_line("/proc/thread-self/status", names[i], b, sizeof(b)) ||
		    strcmp(a, b) != 0)
			return false;
	return true;
}

/* A copy @fd received with @sent (@n bytes): decide on it, close it. */
static void decide(int fd, const struct shim_entry *sent, ssize_t n)
{
	struct shim_entry e;

	/* only the socket is trusted, not what the child said of it: the
	 * entry (group, cookie) is computed from the fd itself, so a child
	 * can make this process decide on a socket it holds, never on
	 * another member */
	if (n != (ssize_t)sizeof(*sent) || !shim_entry_of_fd(fd, &e) || e.ino != sent->ino) {
		shim_real.close(fd);
		return;
	}
	atomic_store(&deciding_ino, e.ino);
	atomic_store(&deciding, fd);
	shim_debug("fd %d: listener handed over by a process that cannot tell", fd);
	shim_listener_release_entry(fd, &e, op_close, NULL);
	atomic_store(&deciding, -1);
}

static void *receiver(void *arg)
{
	char cbuf[CMSG_SPACE(4 * sizeof(int))];
	struct shim_entry sent;
	ssize_t n;
	int fd;

	(void)arg;
	shim_busy = 1; /* its own calls go straight to libc */
	while (fd_ino(chan_rx, rx_ino)) {
		struct iovec iov = {&sent, sizeof(sent)};
		struct msghdr msg = {.msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf)};

		struct pollfd p = {.fd = chan_rx, .events = POLLIN};

		/* wait outside `holding`, receive and decide under it */
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&holding);
		n = recvmsg(chan_rx, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0) {
			pthread_mutex_unlock(&holding);
			if (errno == EINTR || errno == EAGAIN)
				continue;
			break;
		}
		fd = one_fd(&msg);
		if (fd >= 0 && !same_privileges()) {
			/* the server gave up privileges this thread still has:
			 * no more decisions here (a child's send then fails and
			 * its close stays plain) */
			shim_real.close(fd);
			shim_real.close(chan_rx);
			chan_rx = -1;
			pthread_mutex_unlock(&holding);
			break;
		}
		if (fd >= 0)
			decide(fd, &sent, n);
		pthread_mutex_unlock(&holding);
	}
	return NULL;
}

/* In the maker, before fork(): wait until the thread holds no copy. */
static void fork_prepare(void)
{
	struct timespec until;
	int err = errno;

	fork_held = false;
	if (getpid() == maker && chan_rx >= 0 && clock_gettime(CLOCK_REALTIME, &until) == 0) {
		until.tv_sec += FORK_WAIT_MS / 1000;
		until.tv_nsec += (FORK_WAIT_MS % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		fork_held = pthread_mutex_timedlock(&holding, &until) == 0;
	}
	errno = err;
}

static void fork_parent(void)
{
	if (fork_held)
		pthread_mutex_unlock(&holding);
	fork_held = false;
}

void shim_delegate_start(void)
{
	sigset_t all, old;
	struct stat st;
	pthread_t t;
	int sv[2];

	if (chan_tx >= 0 || geteuid() != 0)
		return; /* made already (here or in an ancestor); or nobody to ask */
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	if (fstat(sv[0], &st) < 0)
		goto fail;
	rx_ino = st.st_ino;
	if (fstat(sv[1], &st) < 0)
		goto fail;
	tx_ino = st.st_ino;
	chan_rx = sv[0];
	chan_tx = sv[1];
	maker = getpid();
	if (!atfork_set && pthread_atfork(fork_prepare, fork_parent, NULL) == 0)
		atfork_set = true; /* registered once: children inherit it */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&t, NULL, receiver, NULL) == 0) {
		pthread_detach(t);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	chan_rx = chan_tx = -1;
fail:
	shim_real.close(sv[0]);
	shim_real.close(sv[1]);
}

void shim_delegate_atfork_child(void)
{
	int fd = atomic_exchange(&deciding, -1);

	holding = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	fork_held = false;
	/* the parent's copy, not ours (unless its number was reused) */
	if (fd >= 0 && shim_fd_is_socket(fd, atomic_load(&deciding_ino)))
		shim_real.close(fd);
	/* the receiving end is the maker's alone: with a copy here, sends
	 * would succeed after the maker is gone and hold the listener */
	if (chan_rx >= 0 && fd_ino(chan_rx, rx_ino))
		shim_real.close(chan_rx);
	chan_rx = -1;
}

bool shim_delegate(int fd, const struct shim_entry *e)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct shim_entry m = *e;
	struct iovec iov = {&m, sizeof(m)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c;

	if (chan_tx < 0 || getpid() == maker || !fd_ino(chan_tx, tx_ino))
		return false;
	memset(cbuf, 0, sizeof(cbuf));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(fd));
	if (sendmsg(chan_tx, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(m))
		return false;
	shim_debug("fd %d closed: cannot tell whether other processes hold its socket: handed "
		   "to process %d to decide",
		   fd, (int)maker);
	return true;
}
