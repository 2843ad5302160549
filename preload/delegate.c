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
 * A child forked while the thread holds a copy closes its own copy of it.
 * Limits: a server that closes the pair's fds behind the shim ends the
 * hand-over (checked by inode before each use); a fork in the instant
 * between recvmsg() and the thread noting the fd (after checking it)
 * leaves the copy in that child.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"

static int chan_rx = -1, chan_tx = -1;
static unsigned long rx_ino, tx_ino;
static pid_t maker;
/* the copy the thread is deciding on: a child forked meanwhile closes its
 * own copy of it (it would hold the listener for its whole life) */
static _Atomic int deciding = -1;
static _Atomic unsigned long deciding_ino;

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

static void *receiver(void *arg)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct shim_entry e;
	struct cmsghdr *c;
	ssize_t n;
	int fd;

	(void)arg;
	shim_busy = 1; /* its own calls go straight to libc */
	while (fd_ino(chan_rx, rx_ino)) {
		struct iovec iov = {&e, sizeof(e)};
		struct msghdr msg = {.msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf)};

		n = recvmsg(chan_rx, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		c = CMSG_FIRSTHDR(&msg);
		if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len != CMSG_LEN(sizeof(int)))
			continue;
		memcpy(&fd, CMSG_DATA(c), sizeof(fd));
		e.group[sizeof(e.group) - 1] = '\0';
		if (n != (ssize_t)sizeof(e) || !shim_fd_is_socket(fd, e.ino)) {
			shim_real.close(fd);
			continue;
		}
		atomic_store(&deciding_ino, e.ino);
		atomic_store(&deciding, fd);
		shim_debug("fd %d: listener handed over by a process that cannot tell", fd);
		shim_listener_release_entry(fd, &e, op_close, NULL);
		atomic_store(&deciding, -1);
	}
	return NULL;
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
