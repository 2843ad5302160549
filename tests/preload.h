/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Helpers of the shim's tests (tests/test_preload*.c; every name here
 * starts with pl_): the server tests/servers/prefork.c run with or without
 * libsockmig-preload.so, its group seen from the test, a holder listener
 * of the test's own, bursts of clients.
 */
#ifndef SOCKMIG_TESTS_PRELOAD_H
#define SOCKMIG_TESTS_PRELOAD_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "proc.h"
#include "sockmig.h"
#include "util.h"

#define PL_PORT 33000

struct pl_ctx {
	char dir[64];
	char server[128];
	char shim[PATH_MAX];
	unsigned long netns;
};

/* Find the shim, copy the server into a new temp dir; SM_PASS, or
 * SM_SKIP/SM_FAIL said. */
int pl_setup(struct pl_ctx *x);
void pl_cleanup(struct pl_ctx *x);
/* A copy of the shim in the test directory (readable by any user). */
bool pl_copy_shim(struct pl_ctx *x);

/* When >= 0, pl_srv_start() hands this listener down as fd 3, with
 * LISTEN_FDS=1 and LISTEN_PID (what sockmig run --handoff does). */
extern int pl_listen_fd;

/*
 * Start the server @name with @args, the shim preloaded when @preload,
 * the environment variables @env (NULL-terminated, may be NULL) and,
 * with @nobody, as uid/gid 65534. In its own process group.
 */
bool pl_srv_start(struct pl_ctx *x, struct tp_proc *s, const char *name, bool preload, bool nobody,
		  const char *const *env, const char *args);
/* Wait for the line "@role PID @word ..." (any role when NULL), 5 s at
 * most; every line read is printed (shown when the case fails). */
bool pl_srv_expect(struct tp_proc *s, const char *role, const char *word, char *line, size_t len);
/* The accept queue the server sees: "queue" or "w queue". */
int pl_srv_queue(struct tp_proc *s, bool worker);
/* Wait for the server to exit: its exit code, or -1. */
int pl_srv_wait(struct tp_proc *s, int timeout_ms);
/* "exit", and its exit code. */
int pl_srv_exit(struct tp_proc *s);

/* The group of 127.0.0.1:@port in the test's network namespace. */
void pl_group_name(const struct pl_ctx *x, int port, char *name);
bool pl_group_exists(const struct pl_ctx *x, int port);
/* The members of the group of @port, or -ENOENT. */
int pl_group_members(const struct pl_ctx *x, int port, struct sockmig_member_info *info, int max);
/* Groups of this network namespace under the pin root. */
int pl_netns_groups(const struct pl_ctx *x);
/* After a failure: remove what the servers left, so that the runner's
 * bpffs check reports the case once, not twice. */
void pl_group_cleanup(const struct pl_ctx *x, int port);

/* A holder listener of the test process in the group of @port: it takes
 * SYNs only when no member is active, and migrations when no active member
 * is left, so it catches any drain of the server's listener. */
int pl_holder_start(int port, struct sockmig_group **g);
void pl_holder_stop(struct sockmig_group *g, int h);

struct burst *pl_clients_new(void);
/* Reset what is left (no TIME_WAIT) and free. */
void pl_clients_free(struct burst *c);
/* @n more clients of @c connected (handshake done) to @port. */
bool pl_clients_connect(struct burst *c, int port, int n);

#endif
