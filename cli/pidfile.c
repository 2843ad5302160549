// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The daemons' private directory and locked pid files; see pidfile.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pidfile.h"

/* @path exists (made 0700 when missing), is ours, and no one else can write
 * in it (@deny: the mode bits nobody else may have). */
static int private_dir(const char *path, mode_t deny)
{
	struct stat st;

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & deny))
		return -EPERM;
	return 0;
}

/* The namespace's directory in @buf, made when @make. */
static int rundir(char *buf, size_t len, bool make)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char base[128];
	struct stat ns;
	int err;

	if (stat("/proc/self/ns/net", &ns) < 0)
		return -errno;
	if (geteuid() != 0 && xdg && *xdg)
		snprintf(base, sizeof(base), "%s/sockmig", xdg);
	else
		snprintf(base, sizeof(base), "/run/sockmig");
	if (!make) {
		snprintf(buf, len, "%s/%llu", base, (unsigned long long)ns.st_ino);
		return 0;
	}
	err = private_dir(base, 022); /* others may have made it readable */
	if (err) {
		snprintf(buf, len, "%s", base); /* what the caller's error names */
		return err;
	}
	if ((size_t)snprintf(buf, len, "%s/%llu", base, (unsigned long long)ns.st_ino) >= len)
		return -ENAMETOOLONG;
	return private_dir(buf, 077);
}

int rundir_path(char *buf, size_t len)
{
	return rundir(buf, len, true);
}

int rundir_file(char *buf, size_t len, const char *fmt, ...)
{
	char dir[128] = "", name[64];
	va_list ap;
	int err = rundir_path(dir, sizeof(dir));

	if (err) {
		snprintf(buf, len, "%s", dir);
		return err;
	}
	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* /proc/PID/stat's state, parent and start time; false when it is gone. */
static bool proc_stat(pid_t pid, char *state, int *ppid, unsigned long long *start)
{
	char path[64], buf[1024], *p;
	bool ok = false;
	FILE *f;

	*state = 0;
	*ppid = 0;
	*start = 0;
	if (pid <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		/* after "comm)": state is field 3, ppid 4, starttime 22 */
		ok = sscanf(p + 2,
			    "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
			    "%*d %*d %llu",
			    state, ppid, start) == 3;
	fclose(f);
	return ok;
}

unsigned long long proc_start_time(pid_t pid)
{
	unsigned long long start;
	char state;
	int ppid;

	if (!proc_stat(pid, &state, &ppid, &start))
		return 0;
	return state == 'Z' || state == 'X' ? 0 : start;
}

pid_t proc_parent(pid_t pid)
{
	unsigned long long start;
	char state;
	int ppid;

	proc_stat(pid, &state, &ppid, &start);
	return (pid_t)ppid;
}

/* Append @e to *@v (*@n entries, room for *@cap): false when out of memory. */
static bool ent_add(struct proc_ent **v, int *n, int *cap, struct proc_ent e)
{
	if (*n == *cap) {
		int ncap = *cap ? *cap * 2 : 64;
		struct proc_ent *nv = realloc(*v, (size_t)ncap * sizeof(*nv));

		if (!nv)
			return false;
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = e;
	return true;
}

/* Every live process (not a zombie) into *@v, its parent into *@ppid
 * (same index): how many, or a negative errno. */
static int proc_all(struct proc_ent **v, int **ppid)
{
	int n = 0, cap = 0, err = 0;
	struct dirent *d;
	DIR *dir = opendir("/proc");

	*v = NULL;
	*ppid = NULL;
	if (!dir)
		return -errno;
	while (!err && (d = readdir(dir))) {
		struct proc_ent e;
		char state, *end;
		long pid = strtol(d->d_name, &end, 10);
		int pp, *np;

		if (end == d->d_name || *end || pid <= 0 ||
		    !proc_stat((pid_t)pid, &state, &pp, &e.start) || state == 'Z' || state == 'X')
			continue;
		e.pid = (pid_t)pid;
		if (!ent_add(v, &n, &cap, e) || !(np = realloc(*ppid, (size_t)cap * sizeof(*np)))) {
			err = -ENOMEM;
			break;
		}
		*ppid = np;
		(*ppid)[n - 1] = pp;
	}
	closedir(dir);
	return err ? err : n;
}

int proc_tree(const struct proc_ent *roots, int nroots, struct proc_ent **out)
{
	struct proc_ent *all, *tree = NULL;
	int *ppid, ntree = 0, ctree = 0, err = 0;
	int nall = proc_all(&all, &ppid);

	*out = NULL;
	if (nall < 0)
		err = nall;
	for (int i = 0; !err && i < nall; i++)
		for (int r = 0; !err && r < nroots; r++)
			if (all[i].pid == roots[r].pid &&
			    (!roots[r].start || all[i].start == roots[r].start)) {
				if (!ent_add(&tree, &ntree, &ctree, all[i]))
					err = -ENOMEM;
				break;
			}
	/* breadth first: each one's children after it (once: a root may be
	 * another's descendant) */
	for (int t = 0; !err && t < ntree; t++)
		for (int i = 0; !err && i < nall; i++) {
			int k = 0;

			if (ppid[i] != tree[t].pid)
				continue;
			while (k < ntree && tree[k].pid != all[i].pid)
				k++;
			if (k == ntree && !ent_add(&tree, &ntree, &ctree, all[i]))
				err = -ENOMEM;
		}
	free(all);
	free(ppid);
	if (err) {
		free(tree);
		return err;
	}
	*out = tree;
	return ntree;
}

/* "PID STARTTIME" of @fd's file: the pid when it is still that process. */
static pid_t named_process(int fd)
{
	unsigned long long start = 0;
	char buf[64];
	ssize_t n;
	int pid = 0;

	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "%d %llu", &pid, &start) != 2 || pid <= 0)
		return 0;
	return proc_start_time(pid) == start ? pid : 0;
}

int pidfile_acquire(struct pidfile *pf, const char *kind, int port, pid_t *owner)
{
	int err;

	pf->fd = -1;
	if (owner)
		*owner = 0;
	/* a daemon that exits unlinks the file under its lock (and removes the
	 * directory when it was the last): the file we locked must still be
	 * the one at the path */
	for (int tries = 0; tries < 10; tries++) {
		struct stat a, b;
		int fd;

		err = rundir_file(pf->path, sizeof(pf->path), "%s-%d.pid", kind, port);
		if (err)
			return err;
		fd = open(pf->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 && errno == ENOENT)
			continue;
		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			err = errno == EWOULDBLOCK ? -EBUSY : -errno;
			if (owner && err == -EBUSY)
				*owner = named_process(fd);
			close(fd);
			return err;
		}
		if (fstat(fd, &a) == 0 && stat(pf->path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev) {
			pf->fd = fd;
			return pidfile_write(pf);
		}
		close(fd);
	}
	return -EAGAIN;
}

int pidfile_write(struct pidfile *pf)
{
	char line[64];
	int n;

	n = snprintf(line, sizeof(line), "%d %llu\n", (int)getpid(), proc_start_time(getpid()));
	if (ftruncate(pf->fd, 0) < 0 || pwrite(pf->fd, line, (size_t)n, 0) != n)
		return -errno;
	return 0;
}

void pidfile_release(struct pidfile *pf)
{
	char *slash;

	if (pf->fd < 0)
		return;
	unlink(pf->path);
	close(pf->fd);
	pf->fd = -1;
	/* the namespace's directory, when nothing else is in it */
	slash = strrchr(pf->path, '/');
	if (slash) {
		*slash = '\0';
		rmdir(pf->path);
	}
}

pid_t pidfile_owner(const char *kind, int port)
{
	char path[160], dir[128];
	pid_t pid = 0;
	int fd;

	/* only look: no directory is made for a file that is not there */
	if (rundir(dir, sizeof(dir), false) < 0 ||
	    (size_t)snprintf(path, sizeof(path), "%s/%s-%d.pid", dir, kind, port) >= sizeof(path))
		return 0;
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		unlink(path); /* nobody holds it: stale, whatever it names */
		rmdir(dir);   /* when nothing else is in it */
	} else if (errno == EWOULDBLOCK) {
		pid = named_process(fd);
	}
	close(fd);
	return pid;
}
