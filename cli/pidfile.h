/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The files of sockmig's daemons (attach, hold, run): one private directory
 * per network namespace, /run/sockmig/NETNS (as root; else
 * $XDG_RUNTIME_DIR/sockmig/NETNS), mode 0700, so that the same port in two
 * namespaces never shares a file. A daemon's pid file KIND-PORT.pid holds
 * "PID STARTTIME" and stays locked (flock) for the daemon's lifetime: a
 * file nobody has locked is stale, whatever pid it names, and a new daemon
 * takes it over.
 */
#ifndef SOCKMIG_CLI_PIDFILE_H
#define SOCKMIG_CLI_PIDFILE_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

struct pidfile {
	int fd;
	char path[160];
};

/* The namespace's directory (created when missing) in @buf. -errno when it
 * cannot be made, or is not a private directory of ours. */
int rundir_path(char *buf, size_t len);

/* rundir/NAME in @buf. -errno as rundir_path(). */
int rundir_file(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Open and lock KIND-PORT.pid for this process's lifetime (the lock stays
 * across fork(), so it can be taken before daemon()). 0; -EBUSY when a live
 * daemon holds it (*owner: its pid, when known); another -errno.
 */
int pidfile_acquire(struct pidfile *pf, const char *kind, int port, pid_t *owner);

/* Write "PID STARTTIME" of the calling process (after daemon()). */
int pidfile_write(struct pidfile *pf);

/* Remove and unlock it (at exit). */
void pidfile_release(struct pidfile *pf);

/* The live daemon that holds KIND-PORT.pid locked and is still the process
 * it names (same start time), or 0. A stale file is removed. */
pid_t pidfile_owner(const char *kind, int port);

/* The start time of @pid (clock ticks since boot), 0 when it is gone or a
 * zombie. */
unsigned long long proc_start_time(pid_t pid);

/* The parent of @pid, 0 when unknown. */
pid_t proc_parent(pid_t pid);

struct proc_ent {
	pid_t pid;
	unsigned long long start; /* proc_start_time() */
};

/* The @nroots processes of @roots still alive (same start time; a start
 * of 0 takes any) and their live descendants (their children, theirs...),
 * parents first, from one scan of /proc, into *@out (the caller frees it):
 * how many, or a negative errno. */
int proc_tree(const struct proc_ent *roots, int nroots, struct proc_ent **out);

#endif
