/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Processes of the tests (every name here starts with tp_): the programs
 * make builds for them (tests/servers/), the shim of the normal build, a
 * child started with its output in a log file, or on pipes (commands on
 * its stdin, its stdout read line by line, its stderr in a file), waits,
 * kills and /proc/PID/stat, and a subreaper's last sweep of its descendants.
 */
#ifndef SOCKMIG_TESTS_PROC_H
#define SOCKMIG_TESTS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Copy @src to @dst with @mode. */
bool tp_copy_file(const char *src, const char *dst, mode_t mode);

/* .output/tests/servers/@name (next to the runner, whichever build it is)
 * copied to @dst, mode 0755 (any user may run it there). false, said,
 * when make did not build it. */
bool tp_server_copy(const char *name, const char *dst);

/* The shim of the normal build into @out (PATH_MAX): next to the runner
 * (.output/) or, for the sanitizer runner (.output/asan/), one directory
 * up; a sanitizer build of it is never taken. */
bool tp_find_shim(char *out);

/* Fork and exec @argv (PATH searched) with stdout and stderr appended to
 * @log, LD_PRELOAD=@preload when not NULL. The pid, or -1. */
pid_t tp_spawn(const char *log, char *const argv[], const char *preload);

/* SIGTERM, 3 s, then SIGKILL: the wait status, -1 when @pid <= 0. */
int tp_stop(pid_t pid);

/* Our child @pid's wait status once it exited within @ms, or -1. */
int tp_wait_exit(pid_t pid, int ms);

/* Processes whose parent is @ppid. */
int tp_children_of(pid_t ppid);
/* One child process of @ppid, or 0. */
pid_t tp_find_child(pid_t ppid);

/* Live processes (zombies not counted) that descend from @root, from one
 * read of /proc. */
int tp_descendants(pid_t root);

/*
 * The last sweep of a subreaper (PR_SET_CHILD_SUBREAPER) that is done with
 * all of its children: SIGKILL each child still there and its process group
 * (unless it is the caller's), reap them, and again for their orphans as
 * they come up, until the caller has no child left or @ms passed. A child
 * is signalled only while it is unreaped, so its pid and group id are
 * still its own. How many children are left at the end: 0, unless one
 * does not die (a task stuck in the kernel).
 */
int tp_reap_all(int ms);

/* Field 22 of /proc/PID/stat (the start time), 0 when there is no such
 * process; with @live, 0 for a zombie too. */
unsigned long long tp_start_time(pid_t pid, bool live);

/* A child on pipes. */
struct tp_proc {
	char name[16];
	char err[128]; /* its stderr */
	pid_t pid;
	int in, out, status;
	size_t len;
	char buf[8192];
};

#define TP_PROC_INIT                                                                               \
	{                                                                                          \
		.pid = -1, .in = -1, .out = -1                                                     \
	}

/*
 * Start @path with @args (space-separated) as @p, in its own process
 * group (the runner, a subreaper, still kills it when the case ends), stderr to @dir/@name.stderr, the environment PATH, then
 * LD_PRELOAD=@shim when @shim, then @env (NULL-terminated, may be NULL);
 * as uid/gid 65534 with @nobody; @fd3 as fd 3 when >= 0, with
 * LISTEN_FDS=1 and LISTEN_PID (what sockmig run --handoff does).
 */
bool tp_proc_start(struct tp_proc *p, const char *dir, const char *name, const char *path,
		   const char *shim, bool nobody, const char *const *env, int fd3,
		   const char *args);
/* The next line of its stdout into @line (no newline) before the
 * burst_now_ms() time @end: false at the end, at EOF or on error. */
bool tp_proc_line(struct tp_proc *p, char *line, size_t len, unsigned long long end);
/* Write "@cmd\n" to its stdin. */
bool tp_proc_cmd(struct tp_proc *p, const char *cmd);
/* Kill its process group and close its pipes. */
void tp_proc_kill(struct tp_proc *p);
/* Lines of its stderr holding @needle, or with NULL all of it printed and
 * counted; -1 when it cannot be read. */
int tp_proc_stderr(struct tp_proc *p, const char *needle);

#endif
