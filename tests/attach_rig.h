/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers of the attach cases, test_attach*.c (every name here starts with
 * ar_): sockmig attach in the background, its log and exit, the group it
 * registers in. */
#ifndef SOCKMIG_TESTS_ATTACH_RIG_H
#define SOCKMIG_TESTS_ATTACH_RIG_H

#include <stdbool.h>
#include <sys/types.h>

#include "itest.h"
#include "sockmig.h"

#define AR_PORT 34600

/* `sockmig ARGS...` in the background, output to e->dir/@log. */
pid_t ar_spawn(struct ienv *e, const char *log, char *const args[]);
/* Until dir/@log holds @n lines with @what, at most @ms. */
bool ar_wait_log_lines(const struct ienv *e, const char *log, const char *what, int n, int ms);
/* Its exit status, or -1 when it still runs after @ms (then killed). */
int ar_wait_status(pid_t pid, int ms);
/* SIGTERM to the attach daemon of @e: true when it stopped within 10 s
 * (it is killed otherwise). */
bool ar_stop_daemon(struct ienv *e);
/* The pinned group of 127.0.0.1:@port in this network namespace, or NULL. */
struct sockmig_group *ar_group_here(int port);

#endif /* SOCKMIG_TESTS_ATTACH_RIG_H */
