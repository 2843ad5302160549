// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Processes of the tests: the programs make built for them, the shim,
 * children on log files or on pipes, waits and /proc, a subreaper's sweep;
 * see proc.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc.h"
#include "util.h"

/* The directory of the runner, or with @up one level above it. */
static bool runner_dir(char *dir, size_t size, int up)
{
	ssize_t n = readlink("/proc/self/exe", dir, size - 1);
	char *slash;

	if (n <= 0)
		return false;
	dir[n] = '\0';
	for (int i = 0; i <= up; i++) {
		slash = strrchr(dir, '/');
		if (!slash)
			return false;
		*slash = '\0';
	}
	return true;
}

bool tp_copy_file(const char *src, const char *dst, mode_t mode)
{
	struct stat st;
	bool ok = false;
	char *buf = NULL;
	int in = open(src, O_RDONLY | O_CLOEXEC), out = -1;

	if (in >= 0 && fstat(in, &st) == 0 && (buf = malloc((size_t)st.st_size + 1)) &&
	    read(in, buf, (size_t)st.st_size) == st.st_size &&
	    (out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)) >= 0)
		ok = write(out, buf, (size_t)st.st_size) == st.st_size;
	free(buf);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return ok && chmod(dst, mode) == 0;
}

bool tp_server_copy(const char *name, const char *dst)
{
	char dir[PATH_MAX], src[PATH_MAX + 64];

	if (!runner_dir(dir, sizeof(dir), 0))
		return false;
	snprintf(src, sizeof(src), "%s/tests/servers/%s", dir, name);
	if (access(src, X_OK) < 0) {
		printf("no %s: make builds it\n", src);
		return false;
	}
	if (!tp_copy_file(src, dst, 0755)) {
		printf("cannot copy %s to %s: %s\n", src, dst, strerror(errno));
		return false;
	}
	return true;
}

/* Does the file hold a sanitizer runtime's name? */
static bool sanitized(const char *path)
{
	static const char *const marks[] = {"libasan.so", "libubsan.so", "__asan_init"};
	struct stat st;
	bool found = false;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0 || !(buf = malloc((size_t)st.st_size + 1))) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	if (read(fd, buf, (size_t)st.st_size) == st.st_size)
		for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
			found |=
				memmem(buf, (size_t)st.st_size, marks[i], strlen(marks[i])) != NULL;
	free(buf);
	close(fd);
	return found;
}

bool tp_find_shim(char *out)
{
	char dir[PATH_MAX], cand[PATH_MAX + 32];

	for (int up = 0; up < 2; up++) {
		if (!runner_dir(dir, sizeof(dir), up))
			return false;
		snprintf(cand, sizeof(cand), "%s/libsockmig-preload.so", dir);
		if (access(cand, R_OK) == 0 && !sanitized(cand) && realpath(cand, out))
			return true;
	}
	return false;
}

pid_t tp_spawn(const char *log, char *const argv[], const char *preload)
{
	pid_t pid = fork();
	int fd;

	if (pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		if (preload)
			setenv("LD_PRELOAD", preload, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

int tp_stop(pid_t pid)
{
	int st = 0;

	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	for (int i = 0; i < 300 && waitpid(pid, &st, WNOHANG) == 0; i++)
		burst_sleep_ms(10);
	if (waitpid(pid, &st, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	return st;
}

int tp_wait_exit(pid_t pid, int ms)
{
	int st = 0;

	for (int t = 0; t < ms / 10; t++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		burst_sleep_ms(10);
	}
	return -1;
}

int tp_children_of(pid_t ppid)
{
	char path[64], buf[512], *p;
	struct dirent *de;
	DIR *d = opendir("/proc");
	int n = 0, pp;

	while (d && (de = readdir(d))) {
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
		    sscanf(p + 2, "%*c %d", &pp) == 1 && pp == ppid)
			n++;
		fclose(f);
	}
	if (d)
		closedir(d);
	return n;
}

pid_t tp_find_child(pid_t ppid)
{
	char path[64], buf[256], *p;
	struct dirent *de;
	pid_t found = 0;
	DIR *d = opendir("/proc");

	while (d && (de = readdir(d)) && !found) {
		FILE *f;
		int pp;

		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "r");
		if (f && fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
		    sscanf(p + 2, "%*c %d", &pp) == 1 && pp == ppid)
			found = atoi(de->d_name);
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

/* One line of /proc/PID/stat: the fields a sweep needs. */
struct pstat {
	pid_t pid, ppid, pgrp;
	char state;
};

/* Every process in /proc into *@out (malloc'd): how many, -1 on error. */
static int proc_table(struct pstat **out)
{
	struct pstat *t = NULL, *grown;
	char path[64], buf[512], *p;
	struct dirent *de;
	int n = 0, cap = 0;
	DIR *d = opendir("/proc");

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		struct pstat ps = {0};
		FILE *f;
		bool ok;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue; /* gone since readdir */
		ok = fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
		     sscanf(p + 2, "%c %d %d", &ps.state, &ps.ppid, &ps.pgrp) == 3;
		fclose(f);
		if (!ok)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			grown = realloc(t, (size_t)cap * sizeof(*t));
			if (!grown) {
				free(t);
				closedir(d);
				return -1;
			}
			t = grown;
		}
		ps.pid = atoi(de->d_name);
		t[n++] = ps;
	}
	closedir(d);
	*out = t;
	return n;
}

int tp_descendants(pid_t root)
{
	struct pstat *t = NULL;
	int n = proc_table(&t), count = 0;
	bool *in, grew = true;

	if (n <= 0 || !(in = calloc((size_t)n, sizeof(*in)))) {
		free(t);
		return n < 0 ? -1 : 0;
	}
	/* mark children of root or of a marked process until nothing changes:
	 * /proc lists parents and children in no promised order */
	while (grew) {
		grew = false;
		for (int i = 0; i < n; i++) {
			if (in[i])
				continue;
			for (int j = 0; j < n && !in[i]; j++)
				in[i] = t[i].ppid == root || (in[j] && t[j].pid == t[i].ppid);
			grew |= in[i];
		}
	}
	for (int i = 0; i < n; i++)
		count += in[i] && t[i].state != 'Z';
	free(in);
	free(t);
	return count;
}

int tp_reap_all(int ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)ms;
	pid_t self = getpid(), own = getpgrp(), got;
	struct pstat *t;
	int n, left;

	for (;;) {
		while ((got = waitpid(-1, NULL, WNOHANG)) > 0)
			;
		if (got < 0 && errno == ECHILD)
			return 0;
		t = NULL;
		n = proc_table(&t);
		left = 0;
		for (int i = 0; i < n; i++) {
			if (t[i].ppid != self)
				continue;
			/* our child, unreaped until the next waitpid: its pid and
			 * its group's id cannot have been given to anyone else */
			left++;
			if (t[i].state != 'Z')
				kill(t[i].pid, SIGKILL);
			if (t[i].pgrp > 0 && t[i].pgrp != own)
				kill(-t[i].pgrp, SIGKILL);
		}
		free(t);
		if (burst_now_ms() >= end)
			return left;
		burst_sleep_ms(2);
	}
}

unsigned long long tp_start_time(pid_t pid, bool live)
{
	char path[64], buf[1024], *p, state = 0;
	unsigned long long start = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		sscanf(p + 2,
		       "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
		       "%*d %*d %llu",
		       &state, &start);
	fclose(f);
	return live && state == 'Z' ? 0 : start;
}

bool tp_proc_start(struct tp_proc *p, const char *dir, const char *name, const char *path,
		   const char *shim, bool nobody, const char *const *env, int fd3, const char *args)
{
	char argbuf[512], pre[PATH_MAX + 16], lpid[32], *argv[16], *envp[20], *save = NULL, *tok;
	int in[2], out[2], errfd, na = 0, ne = 0;

	memset(p, 0, sizeof(*p));
	p->pid = -1;
	p->in = p->out = -1;
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->err, sizeof(p->err), "%s/%s.stderr", dir, name);
	snprintf(argbuf, sizeof(argbuf), "%s", args);
	argv[na++] = (char *)path;
	for (tok = strtok_r(argbuf, " ", &save); tok && na < 15; tok = strtok_r(NULL, " ", &save))
		argv[na++] = tok;
	argv[na] = NULL;
	envp[ne++] = "PATH=/usr/bin:/bin";
	snprintf(pre, sizeof(pre), "LD_PRELOAD=%s", shim ? shim : "");
	if (shim)
		envp[ne++] = pre;
	for (int i = 0; env && env[i] && ne < 15; i++)
		envp[ne++] = (char *)env[i];
	envp[ne] = NULL;
	if (pipe2(in, O_CLOEXEC) < 0)
		return false;
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return false;
	}
	errfd = open(p->err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	p->pid = fork();
	if (p->pid == 0) {
		setpgid(0, 0);
		signal(SIGPIPE, SIG_DFL);
		if (dup2(in[0], STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0 ||
		    dup2(errfd, STDERR_FILENO) < 0)
			_exit(126);
		if (fd3 >= 0) {
			if (dup2(fd3, 3) < 0)
				_exit(126);
			snprintf(lpid, sizeof(lpid), "LISTEN_PID=%d", (int)getpid());
			envp[ne++] = "LISTEN_FDS=1";
			envp[ne++] = lpid;
			envp[ne] = NULL;
		}
		if (nobody && (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
			       setresuid(65534, 65534, 65534) < 0))
			_exit(126);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	if (errfd >= 0)
		close(errfd);
	p->in = in[1];
	p->out = out[0];
	if (p->pid < 0) {
		close(p->in);
		close(p->out);
		p->in = p->out = -1;
		return false;
	}
	return true;
}

bool tp_proc_line(struct tp_proc *p, char *line, size_t len, unsigned long long end)
{
	struct pollfd pf = {.fd = p->out, .events = POLLIN};
	unsigned long long now;
	char *nl;
	ssize_t n;

	for (;;) {
		nl = memchr(p->buf, '\n', p->len);
		if (nl) {
			size_t l = (size_t)(nl - p->buf) + 1;

			*nl = '\0';
			snprintf(line, len, "%s", p->buf);
			p->len -= l;
			memmove(p->buf, p->buf + l, p->len);
			return true;
		}
		now = burst_now_ms();
		if (p->out < 0 || now >= end || poll(&pf, 1, (int)(end - now)) <= 0)
			return false;
		n = read(p->out, p->buf + p->len, sizeof(p->buf) - p->len - 1);
		if (n <= 0)
			return false;
		p->len += (size_t)n;
	}
}

bool tp_proc_cmd(struct tp_proc *p, const char *cmd)
{
	char line[128];
	int n = snprintf(line, sizeof(line), "%s\n", cmd);

	return p->in >= 0 && write(p->in, line, (size_t)n) == n;
}

void tp_proc_kill(struct tp_proc *p)
{
	if (p->pid > 0) {
		kill(-p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		p->pid = 0;
	}
	if (p->in >= 0)
		close(p->in);
	if (p->out >= 0)
		close(p->out);
	p->in = p->out = -1;
}

int tp_proc_stderr(struct tp_proc *p, const char *needle)
{
	char buf[16384], *line, *save = NULL;
	int fd = open(p->err, O_RDONLY | O_CLOEXEC), count = 0;
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!needle)
			printf("  %s 2> %s\n", p->name, line);
		if (!needle || strstr(line, needle))
			count++;
	}
	return count;
}
