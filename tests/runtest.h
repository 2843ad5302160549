/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Helpers of the tests of sockmig hold and sockmig run (tests/test_run*.c;
 * every function here starts with rt_): sockmig started in the background
 * with its output in a log, and tests/servers/static_server.c under
 * sockmig run on RPORT.
 */
#ifndef SOCKMIG_TESTS_RUNTEST_H
#define SOCKMIG_TESTS_RUNTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "itest.h"

#define RPORT	35000
#define RUN_BIN "./.output/sockmig"
/* A server's first answer, or a daemon's first line, at most (ms): run,
 * attach and hold probe the kernel and load their programs first, seconds
 * under emulation (QEMU's TCG); the wait ends at the first answer. */
#define RT_START_MS 20000

struct runenv {
	struct ienv e;
	char bin[128], port[16], cmd[160];
	bool wrap; /* run the server through a script that fails once dir/fail exists */
	pid_t run;
	int reply;
};

/* Start `sockmig ARGS...` in the background, output to dir/@log. */
pid_t rt_spawn_sockmig(struct ienv *e, const char *log, char *const args[]);
/* The server on @port answers within RT_START_MS. */
bool rt_wait_serving(int port);
/* Wait up to @ms for @n lines of dir/@log that contain @what. */
bool rt_wait_log(const struct ienv *e, const char *log, const char *what, int n, int ms);
/* SM_PASS once the server answers under sockmig run and generation 1 is
 * ready; SM_SKIP when the tools are missing; SM_FAIL (the log shown) when
 * run does not serve. */
int rt_run_start(struct runenv *re, char *const extra[]);
/* Stop sockmig run, then what the case started (it_teardown()). */
void rt_run_stop(struct runenv *re);
/* @name in the directory of sockmig's daemons for this network namespace. */
void rt_daemon_file(char *buf, size_t len, const char *name);
/* The sockmig groups pinned for this network namespace (other namespaces'
 * are other tests' or real servers'). */
int rt_groups_here(void);
/* The pid a daemon's file names, or 0. */
pid_t rt_pidfile_pid(const char *name);
/* @pid exists and is no zombie. */
bool rt_alive(pid_t pid);
/* Wait up to @ms for @pid to be gone. */
bool rt_wait_gone(pid_t pid, int ms);
/* What a SIGKILL cost: the connections that die with the victim. */
#define RT_DOOMED_PORTS 64
struct rt_kill {
	long long doomed;		       /* see rt_kill9_counted() */
	unsigned long long at_ms;	       /* when the SIGKILL was sent (CLOCK_MONOTONIC) */
	int nports;			       /* ports[] filled */
	unsigned short ports[RT_DOOMED_PORTS]; /* the doomed ones' client ports */
};
/*
 * Kill @victim with SIGKILL and count in @k the connections that die with
 * it: the ones it had accepted and not answered (accepted connections never
 * move), counted from its fds while it is stopped (SIGSTOP) just before.
 */
void rt_kill9_counted(pid_t victim, struct rt_kill *k);
/*
 * The load @r around a SIGKILL that rt_kill9_counted() said cost @k->doomed:
 * connections served that started in the second before the kill and from a
 * second after it (the load ran across it), and every one served but the
 * doomed
 * ones and the handshakes the kernel itself resets as the listener closes
 * (a final ACK processed on the other CPU while the listener stops:
 * inet_child_forget()). No counter records the latter, but the client sees
 * them reset before it could send its request, which never happens to an
 * accepted connection: the server resets only when it dies with the
 * request unread. Prints both counts, and when they do not
 * add up, every failed connection the load named (lg_result.fails) with its
 * times from the kill and whether it was a doomed one; false after a failed
 * assertion.
 */
bool rt_killed_judge(const struct lg_result *r, const struct rt_kill *k);

#endif
