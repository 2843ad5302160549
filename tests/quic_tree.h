/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the cases that run programs in scripts/quic-root's Debian 13 tree
 * share (tests/test_udp_quic_real.c, tests/test_udp_h3.c): where the
 * tree is, where the build is, and binding a host path into the tree.
 */
#ifndef SOCKMIG_TESTS_QUIC_TREE_H
#define SOCKMIG_TESTS_QUIC_TREE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "proc.h"

/* The tree's root as scripts/quic-root finds it (SOCKMIG_QUIC_CACHE,
 * XDG_CACHE_HOME, HOME); false when none of them is set. */
bool qt_tree_path(char *out, size_t len);
/* The normal build's directory (.output/, above a sanitizer runner's). */
bool qt_build_dir(char *out, size_t len);
/* Bind @src on @root/@dst (MS_BIND | @extra); one line when it fails. */
bool qt_bind_into(const char *root, const char *src, const char *dst, unsigned long extra);

/* What qt_enter() sets up for a case. */
struct qt_env {
	char root[PATH_MAX]; /* the tree */
	char out[PATH_MAX];  /* the build: .output/ */
	char dir[64];	     /* the programs' stderr files */
};

/*
 * The tree, or SM_SKIP with the reason in @why (no tree, no chroot(8));
 * then the calling case's own mount namespace, with the build at
 * /opt/sockmig, /proc and /sys/fs/bpf bound into the tree, the build's
 * @need files (NULL-terminated, under .output/) checked, and a temporary
 * directory in env->dir (SM_PASS; SM_FAIL with one line).
 */
int qt_enter(struct qt_env *env, const char *const *need, char *why, size_t len);
/* The same without the temporary directory, and with @bin (a program's
 * path in the tree, without its leading '/'; NULL: none) required: SM_SKIP
 * when the tree lacks it. */
int qt_mount(struct qt_env *env, const char *const *need, const char *bin, char *why, size_t len);
/* Start program @prog of the build's tests/servers/ in the tree as @p
 * (python3 runs it when its name ends in .py), with @args
 * (space-separated, at most 11 words: tp_proc_start() takes 14 with
 * chroot's); one line when it cannot. */
bool qt_start(struct qt_env *env, struct tp_proc *p, const char *name, const char *prog,
	      const char *args);
/* The number after "\"@key\": " in a JSON line, -1 when absent. */
long qt_json_num(const char *line, const char *key);

#endif
