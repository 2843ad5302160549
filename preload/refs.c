// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Is this the last reference to a listening socket? (See the top of
 * preload.c for why the answer comes from /proc and not from counts.)
 *
 * Every fd of every process that holds the socket reads as
 * "socket:[INODE]" in /proc/PID/fd. The scan runs only when a tracked
 * listener fd is about to go away, stops at the first other holder, and
 * answers "unknown" when a process's fd directory cannot be read (another
 * user's process without CAP_SYS_PTRACE, hidepid): the caller then acts as
 * if another holder existed, the safe side. Limits: processes outside
 * this process's PID namespace are not seen, nor a thread that unshared
 * its fd table.
 *
 * The decision lock is a POSIX write lock on the socket: such locks are
 * owned by processes, not by open file descriptions, so the processes of
 * a pre-fork server exclude each other although they share one; and the
 * close that drops the reference drops the lock.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

/* How long a close waits for another holder's decision. */
#define LOCK_WAIT_MS 2000

__thread char shim_refs_why[96];

bool shim_refs_lock(int fd)
{
	struct timespec nap = {0, 20000};
	long waited_ns = 0;
	struct flock fl;

	for (;;) {
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (shim_real.fcntl(fd, F_SETLK, &fl) == 0)
			return true;
		if (errno != EAGAIN && errno != EACCES && errno != EINTR) {
			snprintf(shim_refs_why, sizeof(shim_refs_why), "its lock: %s",
				 strerror(errno));
			return false;
		}
		if (waited_ns >= LOCK_WAIT_MS * 1000000L) {
			snprintf(shim_refs_why, sizeof(shim_refs_why),
				 "another process held its lock for %d ms", LOCK_WAIT_MS);
			return false;
		}
		/* another holder decides: it takes a scan, rarely a drain */
		nanosleep(&nap, NULL);
		waited_ns += nap.tv_nsec;
		if (nap.tv_nsec < 1000000)
			nap.tv_nsec *= 2;
	}
}

void shim_refs_unlock(int fd)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_UNLCK;
	fl.l_whence = SEEK_SET;
	shim_real.fcntl(fd, F_SETLK, &fl);
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* In process @pid (directory fd @pidfd of /proc), an fd other than @skip
 * that reads @want: 1 yes, 0 no, -1 unreadable. */
static int holds(int procfd, const char *pid, int skip, const char *want, size_t wlen)
{
	char path[64], link[64];
	struct dirent *de;
	ssize_t n;
	DIR *d;
	int dfd, found = 0;

	snprintf(path, sizeof(path), "%s/fd", pid);
	dfd = openat(procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 && (errno == ENOENT || errno == ESRCH))
		return 0; /* gone: holds nothing */
	if (dfd < 0) {
		snprintf(shim_refs_why, sizeof(shim_refs_why), "/proc/%s/fd: %s", pid,
			 strerror(errno));
		return -1;
	}
	d = fdopendir(dfd);
	if (!d) {
		snprintf(shim_refs_why, sizeof(shim_refs_why), "/proc/%s/fd: %s", pid,
			 strerror(errno));
		shim_real.close(dfd);
		return -1;
	}
	while (!found && (de = readdir(d))) {
		if (!all_digits(de->d_name) || (skip >= 0 && atoi(de->d_name) == skip))
			continue;
		n = readlinkat(dfd, de->d_name, link, sizeof(link));
		found = n == (ssize_t)wlen && memcmp(link, want, wlen) == 0;
	}
	closedir(d);
	return found;
}

int shim_refs_others(unsigned long ino, int fd)
{
	char want[48], self[24], parent[24];
	struct dirent *de;
	bool unknown = false;
	size_t wlen;
	DIR *proc;
	int r;

	wlen = (size_t)snprintf(want, sizeof(want), "socket:[%lu]", ino);
	snprintf(self, sizeof(self), "%d", (int)getpid());
	proc = opendir("/proc");
	if (!proc) {
		snprintf(shim_refs_why, sizeof(shim_refs_why), "/proc: %s", strerror(errno));
		return -1;
	}
	/* this process first (a dup), then its parent (a pre-fork master, a
	 * fork-per-connection server: /proc lists fds in ascending order, and
	 * listeners come early), then every process */
	snprintf(parent, sizeof(parent), "%d", (int)getppid());
	r = holds(dirfd(proc), self, fd, want, wlen);
	if (r < 0)
		unknown = true;
	if (r <= 0)
		r = holds(dirfd(proc), parent, -1, want, wlen);
	while (r <= 0 && (de = readdir(proc))) {
		if (r < 0)
			unknown = true;
		if (!all_digits(de->d_name) || strcmp(de->d_name, self) == 0 ||
		    strcmp(de->d_name, parent) == 0)
			continue;
		r = holds(dirfd(proc), de->d_name, -1, want, wlen);
	}
	if (r < 0)
		unknown = true;
	closedir(proc);
	return r > 0 ? 1 : unknown ? -1 : 0;
}
