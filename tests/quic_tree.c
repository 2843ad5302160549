// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The Debian 13 tree of scripts/quic-root, for the cases that run in it. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
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

int qt_mount(struct qt_env *env, const char *const *need, const char *bin, char *why, size_t len)
{
	char p[PATH_MAX + 64];
	struct stat st;

	if (!qt_tree_path(env->root, sizeof(env->root))) {
		snprintf(why, len, "no HOME to find the real-QUIC tree under");
		return SM_SKIP;
	}
	snprintf(p, sizeof(p), "%s/.sockmig-quic", env->root);
	if (stat(p, &st) < 0) {
		snprintf(why, len, "no real-QUIC tree at %s (make quic-root makes it: Debian 13)",
			 env->root);
		return SM_SKIP;
	}
	snprintf(p, sizeof(p), "%s/%s", env->root, bin ? bin : "");
	if (bin && access(p, X_OK) < 0) {
		snprintf(why, len, "no /%s in %s (make quic-root adds it)", bin, env->root);
		return SM_SKIP;
	}
	if (access("/usr/sbin/chroot", X_OK) < 0) {
		snprintf(why, len, "no /usr/sbin/chroot");
		return SM_SKIP;
	}
	if (!qt_build_dir(env->out, sizeof(env->out)))
		return SM_FAIL;
	for (; need && *need; need++) {
		snprintf(p, sizeof(p), "%s/%s", env->out, *need);
		if (access(p, R_OK) < 0) {
			printf("no %s: make builds it\n", p);
			return SM_FAIL;
		}
	}
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		printf("cannot make a mount namespace: %s\n", strerror(errno));
		return SM_FAIL;
	}
	if (!qt_bind_into(env->root, env->out, "/opt/sockmig", 0) ||
	    !qt_bind_into(env->root, "/proc", "/proc", MS_REC) ||
	    !qt_bind_into(env->root, "/sys/fs/bpf", "/sys/fs/bpf", 0))
		return SM_FAIL;
	return SM_PASS;
}

int qt_enter(struct qt_env *env, const char *const *need, char *why, size_t len)
{
	int ret = qt_mount(env, need, NULL, why, len);

	if (ret != SM_PASS)
		return ret;
	snprintf(env->dir, sizeof(env->dir), "/tmp/sm-quic.XXXXXX");
	if (!mkdtemp(env->dir)) {
		printf("mkdtemp: %s\n", strerror(errno));
		env->dir[0] = '\0';
		return SM_FAIL;
	}
	return SM_PASS;
}

bool qt_start(struct qt_env *env, struct tp_proc *p, const char *name, const char *prog,
	      const char *args)
{
	char all[512];
	int words = 1;

	for (const char *c = args; *c; c++)
		words += *c == ' ';
	if (strstr(prog, ".py"))
		snprintf(all, sizeof(all), "%s /usr/bin/python3 /opt/sockmig/tests/servers/%s %s",
			 env->root, prog, args);
	else
		snprintf(all, sizeof(all), "%s /opt/sockmig/tests/servers/%s %s", env->root, prog,
			 args);
	if (strlen(all) >= sizeof(all) - 1 || words > 11 ||
	    !tp_proc_start(p, env->dir, name, "/usr/sbin/chroot", NULL, false, NULL, -1, all)) {
		printf("cannot start %s\n", name);
		return false;
	}
	return true;
}

long qt_json_num(const char *line, const char *key)
{
	char pat[64];
	const char *s;

	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	s = strstr(line, pat);
	return s ? strtol(s + strlen(pat), NULL, 10) : -1;
}
