// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Helpers of the shim's tests: the prefork server, its group, a holder,
 * clients; see preload.h. */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "preload.h"

int pl_listen_fd = -1;

void pl_cleanup(struct pl_ctx *x)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (!x->dir[0])
		return;
	d = opendir(x->dir);
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", x->dir, de->d_name);
			unlink(path);
		}
	if (d)
		closedir(d);
	rmdir(x->dir);
	x->dir[0] = '\0';
}

int pl_setup(struct pl_ctx *x)
{
	struct stat st;

	memset(x, 0, sizeof(*x));
	signal(SIGPIPE, SIG_IGN);
	if (!tp_find_shim(x->shim))
		return SKIP("no libsockmig-preload.so of the normal build next to the runner "
			    "(make all builds it; a sanitizer build is never preloaded)");
	printf("shim: %s\n", x->shim);
	if (stat("/proc/self/ns/net", &st) < 0)
		return SM_FAIL;
	x->netns = st.st_ino;
	snprintf(x->dir, sizeof(x->dir), "/tmp/sockmig-preload-XXXXXX");
	if (!mkdtemp(x->dir) || chmod(x->dir, 0755) < 0) {
		printf("mkdtemp: %s\n", strerror(errno));
		x->dir[0] = '\0';
		return SM_FAIL;
	}
	snprintf(x->server, sizeof(x->server), "%s/server", x->dir);
	if (!tp_server_copy("prefork", x->server)) {
		pl_cleanup(x);
		return SM_FAIL;
	}
	return SM_PASS;
}

bool pl_copy_shim(struct pl_ctx *x)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/libsockmig-preload.so", x->dir);
	if (!tp_copy_file(x->shim, path, 0755))
		return false;
	snprintf(x->shim, sizeof(x->shim), "%s", path);
	return true;
}

bool pl_srv_start(struct pl_ctx *x, struct tp_proc *s, const char *name, bool preload, bool nobody,
		  const char *const *env, const char *args)
{
	return tp_proc_start(s, x->dir, name, x->server, preload ? x->shim : NULL, nobody, env,
			     pl_listen_fd, args);
}

bool pl_srv_expect(struct tp_proc *s, const char *role, const char *word, char *line, size_t len)
{
	unsigned long long end = burst_now_ms() + 5000;
	char got[sizeof(s->buf)], r[16], w[32];
	bool match;
	int pid;

	while (tp_proc_line(s, got, sizeof(got), end)) {
		match = sscanf(got, "%15s %d %31s", r, &pid, w) == 3 &&
			(!role || strcmp(r, role) == 0) && strcmp(w, word) == 0;
		printf("  %s| %s\n", s->name, got);
		if (match && line)
			snprintf(line, len, "%s", got);
		if (match)
			return true;
	}
	printf("  %s: no '%s ... %s' line\n", s->name, role ? role : "*", word);
	return false;
}

/* The accept queue the server sees: "queue" or "w queue". */
int pl_srv_queue(struct tp_proc *s, bool worker)
{
	char line[128];
	int q = -1;

	if (!tp_proc_cmd(s, worker ? "w queue" : "queue") ||
	    !pl_srv_expect(s, worker ? "worker" : "master", "queue", line, sizeof(line)))
		return -1;
	sscanf(strstr(line, "queue"), "queue %d", &q);
	return q;
}

/* Wait for the server to exit: its exit code, or -1. */
int pl_srv_wait(struct tp_proc *s, int timeout_ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)timeout_ms;
	int status;
	pid_t r;

	if (s->pid <= 0)
		return s->status;
	while ((r = waitpid(s->pid, &status, WNOHANG)) == 0 && burst_now_ms() < end)
		burst_sleep_ms(5);
	if (r == 0) {
		printf("  %s: still running after %d ms, killed\n", s->name, timeout_ms);
		kill(-s->pid, SIGKILL);
		waitpid(s->pid, &status, 0);
		status = -1;
	}
	s->pid = 0;
	s->status = status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	return s->status;
}

/* "exit", and its exit code. */
int pl_srv_exit(struct tp_proc *s)
{
	tp_proc_cmd(s, "exit");
	return pl_srv_wait(s, 5000);
}

/* ---- the group, seen from the test --------------------------------------- */

void pl_group_name(const struct pl_ctx *x, int port, char *name)
{
	struct in_addr lo = {htonl(INADDR_LOOPBACK)};

	sockmig_group_name_for(AF_INET, &lo, port, x->netns, name, SOCKMIG_NAME_MAX);
}

bool pl_group_exists(const struct pl_ctx *x, int port)
{
	char name[SOCKMIG_NAME_MAX], path[PATH_MAX];
	struct stat st;

	pl_group_name(x, port, name);
	snprintf(path, sizeof(path), "%s/%s", SOCKMIG_PIN_ROOT, name);
	return stat(path, &st) == 0;
}

/* The members of the group of @port, or -ENOENT. */
int pl_group_members(const struct pl_ctx *x, int port, struct sockmig_member_info *info, int max)
{
	char name[SOCKMIG_NAME_MAX];
	struct sockmig_group *g;
	int n;

	pl_group_name(x, port, name);
	g = sockmig_group_open_name(name, NULL);
	if (!g)
		return -errno;
	n = sockmig_members(g, info, max);
	sockmig_group_close(g);
	return n;
}

/* Groups of this network namespace under the pin root. */
int pl_netns_groups(const struct pl_ctx *x)
{
	char prefix[32];
	struct dirent *de;
	DIR *d = opendir(SOCKMIG_PIN_ROOT);
	int n = 0;

	snprintf(prefix, sizeof(prefix), "%lu-", x->netns);
	while (d && (de = readdir(d)))
		n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
	if (d)
		closedir(d);
	return n;
}

/* After a failure: remove what the servers left, so that the runner's
 * bpffs check reports the case once, not twice. */
void pl_group_cleanup(const struct pl_ctx *x, int port)
{
	char name[SOCKMIG_NAME_MAX];
	struct sockmig_group *g;

	pl_group_name(x, port, name);
	g = sockmig_group_open_name(name, NULL);
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
}

/* A holder listener of the test process in the group of @port: it takes
 * SYNs only when no member is active, and migrations when no active member
 * is left, so it catches any drain of the server's listener. */
int pl_holder_start(int port, struct sockmig_group **g)
{
	SOCKMIG_OPTS(sockmig_member_opts, o, .role = SOCKMIG_ROLE_HOLDER);
	int h = burst_listener(AF_INET, port, 1024, 0);

	*g = NULL;
	if (h < 0)
		return h;
	*g = sockmig_group_open(h, NULL);
	if (!*g || sockmig_member_add(*g, h, &o) < 0) {
		printf("holder: %s\n", sockmig_last_error());
		sockmig_group_close(*g);
		*g = NULL;
		close(h);
		return -1;
	}
	return h;
}

void pl_holder_stop(struct sockmig_group *g, int h)
{
	if (g) {
		sockmig_member_leave(g, h);
		sockmig_group_close(g);
	}
	if (h >= 0)
		close(h);
}

struct burst *pl_clients_new(void)
{
	return calloc(1, sizeof(struct burst));
}

/* Reset what is left (no TIME_WAIT) and free. */
void pl_clients_free(struct burst *c)
{
	struct linger lg = {1, 0};

	if (!c)
		return;
	for (int k = 0; k < c->n; k++)
		if (c->fd[k] >= 0)
			setsockopt(c->fd[k], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	burst_close(c);
	free(c);
}

/* @n more clients of @c connected (handshake done) to @port. */
bool pl_clients_connect(struct burst *c, int port, int n)
{
	int before = c->n;

	return burst_start(c, AF_INET, port, n, false) == 0 &&
	       burst_connected(c, 3000) == before + n;
}
