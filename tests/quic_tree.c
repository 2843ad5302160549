// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The Debian 13 tree of scripts/quic-root, for the cases that run in it. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "quic_tree.h"

bool qt_tree_path(char *out, size_t len)
{
	const char *c = getenv("SOCKMIG_QUIC_CACHE"), *x = getenv("XDG_CACHE_HOME"),
		   *h = getenv("HOME");

	if (c && *c)
		snprintf(out, len, "%s/root", c);
	else if (x && *x)
		snprintf(out, len, "%s/sockmig-quic/root", x);
	else if (h && *h)
		snprintf(out, len, "%s/.cache/sockmig-quic/root", h);
	else
		return false;
	return true;
}

bool qt_build_dir(char *out, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", out, len - 1);
	char *slash;

	if (n <= 0)
		return false;
	out[n] = '\0';
	slash = strrchr(out, '/');
	if (!slash)
		return false;
	*slash = '\0';
	slash = strrchr(out, '/');
	if (slash && strcmp(slash, "/asan") == 0)
		*slash = '\0';
	return true;
}

bool qt_bind_into(const char *root, const char *src, const char *dst, unsigned long extra)
{
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s%s", root, dst);
	if (mount(src, path, NULL, MS_BIND | extra, NULL) < 0) {
		printf("cannot bind %s on %s: %s\n", src, path, strerror(errno));
		return false;
	}
	return true;
}
