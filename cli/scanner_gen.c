// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The generation of a listener the scanner registers (--generation-by):
 * its oldest owner's start time, its executable's ctime, or the start of
 * the oldest ancestor that runs the same executable.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attach.h"
#include "diag.h"
#include "pidfile.h"

uint32_t process_generation(pid_t pid)
{
	return (uint32_t)proc_start_time(pid);
}

/* The executable of @pid: its file's identity and its generation, the
 * file's ctime in seconds (when it was installed: a new file, or a file
 * replaced, is newer). A replaced executable (the process runs a deleted
 * file: its unlink changed the ctime) counts from its mtime, which the
 * unlink left alone. false when /proc/PID/exe cannot be read. */
static bool exe_of(pid_t pid, dev_t *dev, ino_t *ino, uint32_t *gen)
{
	static const char deleted[] = " (deleted)";
	char path[64], target[PATH_MAX];
	struct stat st;
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (stat(path, &st) < 0)
		return false;
	*dev = st.st_dev;
	*ino = st.st_ino;
	*gen = (uint32_t)st.st_ctim.tv_sec;
	len = readlink(path, target, sizeof(target) - 1);
	if (len > (ssize_t)strlen(deleted)) {
		target[len] = '\0';
		if (strcmp(target + len - strlen(deleted), deleted) == 0 &&
		    st.st_mtim.tv_sec < st.st_ctim.tv_sec)
			*gen = (uint32_t)st.st_mtim.tv_sec;
	}
	return true;
}

/* The start time of the oldest ancestor of @pid (itself included) that
 * runs the same executable without a break: a pre-fork server's master. */
static uint32_t tree_generation(pid_t pid)
{
	dev_t dev, pdev;
	ino_t ino, pino;
	uint32_t gen;
	pid_t up;

	if (!exe_of(pid, &dev, &ino, &gen))
		return process_generation(pid);
	for (int depth = 0; depth < 64; depth++) {
		up = proc_parent(pid);
		if (up <= 1 || !exe_of(up, &pdev, &pino, &gen) || pdev != dev || pino != ino)
			break;
		pid = up;
	}
	return process_generation(pid);
}

uint32_t generation_of(pid_t pid, enum gen_by mode)
{
	dev_t dev;
	ino_t ino;
	uint32_t gen;

	switch (mode) {
	case GEN_BY_PROCESS:
		return process_generation(pid);
	case GEN_BY_TREE:
		return tree_generation(pid);
	case GEN_BY_EXE:
	case GEN_BY_NONE:
		break;
	}
	return exe_of(pid, &dev, &ino, &gen) ? gen : 0;
}

/* A listener's generation: that of its oldest owner, the process that
 * created it (a pre-fork master, not the worker it was given to). */
uint32_t listener_generation(const struct sm_listener *l, enum gen_by mode)
{
	unsigned long long start, first = 0;
	pid_t oldest = 0;

	for (int i = 0; i < l->nowners; i++) {
		start = proc_start_time(l->owners[i].pid);
		if (start && (!first || start < first)) {
			first = start;
			oldest = l->owners[i].pid;
		}
	}
	return oldest ? generation_of(oldest, mode) : 0;
}
