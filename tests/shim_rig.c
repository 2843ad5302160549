// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Helpers of the shim safety cases (test_shim_safety.c,
 * test_shim_privfd_locks.c): tests/servers/shim_prog.c, built by make, run
 * in one mode per case (listed at the top of shim_prog.c); see shim_rig.h.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "preload.h"
#include "shim_rig.h"
#include "util.h"

void sr_cleanup(struct pl_ctx *x)
{
	char cmd[128];
	pid_t pid;

	if (!x->dir[0])
		return;
	snprintf(cmd, sizeof(cmd), "%s", x->dir);
	pid = fork();
	if (pid == 0) {
		execlp("rm", "rm", "-rf", cmd, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	x->dir[0] = '\0';
}

/* The shim, a temp dir, the program copied there as x->server. */
int sr_setup(struct pl_ctx *x)
{
	struct stat st;

	memset(x, 0, sizeof(*x));
	signal(SIGPIPE, SIG_IGN);
	if (!tp_find_shim(x->shim))
		return SKIP("no libsockmig-preload.so of the normal build next to the runner");
	if (stat("/proc/self/ns/net", &st) < 0)
		return SM_FAIL;
	x->netns = st.st_ino;
	snprintf(x->dir, sizeof(x->dir), "/tmp/sockmig-shimsafe-XXXXXX");
	if (!mkdtemp(x->dir) || chmod(x->dir, 0755) < 0) {
		x->dir[0] = '\0';
		return SM_FAIL;
	}
	snprintf(x->server, sizeof(x->server), "%s/prog", x->dir);
	if (!tp_server_copy("shim_prog", x->server)) {
		sr_cleanup(x);
		return SM_FAIL;
	}
	return SM_PASS;
}

/* Run @path with @args, the shim preloaded when @preload: tp_proc_start(). */
bool sr_start(struct pl_ctx *x, struct tp_proc *p, const char *name, const char *path, bool preload,
	      bool nobody, const char *const *env, int fd3, const char *args)
{
	return tp_proc_start(p, x->dir, name, path, preload ? x->shim : NULL, nobody, env, fd3,
			     args);
}

/* Wait up to @ms for a line starting with @word; copy it to @line. */
bool sr_expect(struct tp_proc *p, const char *word, char *line, size_t len, int ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)ms;
	char got[sizeof(p->buf)];

	while (tp_proc_line(p, got, sizeof(got), end)) {
		printf("  | %s\n", got);
		if (strncmp(got, word, strlen(word)) == 0) {
			if (line)
				snprintf(line, len, "%s", got);
			return true;
		}
	}
	printf("  no '%s' line within %d ms\n", word, ms);
	return false;
}

bool sr_wait_stderr(struct tp_proc *p, const char *needle, int n, int ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)ms;

	while (tp_proc_stderr(p, needle) < n && burst_now_ms() < end)
		burst_sleep_ms(10);
	if (tp_proc_stderr(p, needle) >= n)
		return true;
	printf("  no %d '%s' on stderr within %d ms\n", n, needle, ms);
	return false;
}

/* Exit code within 5 s, or -1 (then killed). */
int sr_wait(struct tp_proc *p)
{
	unsigned long long end = burst_now_ms() + 5000;
	int status = 0;
	pid_t r;

	while ((r = waitpid(p->pid, &status, WNOHANG)) == 0 && burst_now_ms() < end)
		burst_sleep_ms(5);
	if (r != p->pid) {
		tp_proc_kill(p);
		return -1;
	}
	p->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
