/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers of the shim safety cases, test_shim_*.c (every name here starts
 * with sr_): the program tests/servers/shim_prog.c copied to a temp dir
 * and run, with or without the shim, and its output read; see
 * shim_rig.c for the program's modes. */
#ifndef SOCKMIG_TESTS_SHIM_RIG_H
#define SOCKMIG_TESTS_SHIM_RIG_H

#include <stdbool.h>
#include <stddef.h>

#include "preload.h"

#define SR_PORT 34000

void sr_cleanup(struct pl_ctx *x);
/* The shim, a temp dir, the program copied there as x->server. */
int sr_setup(struct pl_ctx *x);
/* Run @path with @args, the shim preloaded when @preload: tp_proc_start(). */
bool sr_start(struct pl_ctx *x, struct tp_proc *p, const char *name, const char *path, bool preload,
	      bool nobody, const char *const *env, int fd3, const char *args);
/* Wait up to @ms for a line starting with @word; copy it to @line. */
bool sr_expect(struct tp_proc *p, const char *word, char *line, size_t len, int ms);
/* Wait up to @ms for @n lines of its stderr holding @needle. */
bool sr_wait_stderr(struct tp_proc *p, const char *needle, int n, int ms);
/* Exit code within 5 s, or -1 (then killed). */
int sr_wait(struct tp_proc *p);

#endif /* SOCKMIG_TESTS_SHIM_RIG_H */
