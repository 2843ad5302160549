/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the cases that run programs in scripts/quic-root's Debian 13 tree
 * share (tests/test_udp_quic_real.c, tests/test_udp_h3_nginx.c): where the
 * tree is, where the build is, and binding a host path into the tree.
 */
#ifndef SOCKMIG_TESTS_QUIC_TREE_H
#define SOCKMIG_TESTS_QUIC_TREE_H

#include <stdbool.h>
#include <stddef.h>

/* The tree's root as scripts/quic-root finds it (SOCKMIG_QUIC_CACHE,
 * XDG_CACHE_HOME, HOME); false when none of them is set. */
bool qt_tree_path(char *out, size_t len);
/* The normal build's directory (.output/, above a sanitizer runner's). */
bool qt_build_dir(char *out, size_t len);
/* Bind @src on @root/@dst (MS_BIND | @extra); one line when it fails. */
bool qt_bind_into(const char *root, const char *src, const char *dst, unsigned long extra);

#endif
