// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Helpers of the attach cases (test_attach.c, test_attach_prefork.c): the
 * attach daemon started, waited for and stopped, the group it registers
 * in; see attach_rig.h. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "attach_rig.h"
#include "harness.h"
#include "itest.h"
#include "loadgen.h"
#include "sockmig.h"
#include "util.h"

/* `sockmig ARGS...` in the background, output to e->dir/@log. */
pid_t ar_spawn(struct ienv *e, const char *log, char *const args[])
{
	char *argv[16];
	char path[160];
	pid_t pid;
	int n = 0, fd;

	argv[n++] = e->sockmig;
	for (int i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	snprintf(path, sizeof(path), "%s/%s", e->dir, log);
	pid = fork();
	if (pid == 0) {
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Until dir/@log holds @n lines with @what, at most @ms. */
bool ar_wait_log_lines(const struct ienv *e, const char *log, const char *what, int n, int ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)ms;

	while (it_log_count(e, log, what) < n) {
		if (burst_now_ms() > end)
			return false;
		burst_sleep_ms(10);
	}
	return true;
}

/* Its exit status, or -1 when it still runs after @ms (then killed). */
int ar_wait_status(pid_t pid, int ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)ms;
	int st;

	while (burst_now_ms() < end) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		burst_sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

/* SIGTERM to the attach daemon of @e: true when it stopped within 10 s
 * (it is killed otherwise). */
bool ar_stop_daemon(struct ienv *e)
{
	int st;

	if (e->attach <= 0)
		return true;
	kill(e->attach, SIGTERM);
	st = ar_wait_status(e->attach, 10000);
	e->attach = 0;
	return ASSERT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "attach stops");
}

/* The pinned group of 127.0.0.1:@port in this network namespace, or NULL. */
struct sockmig_group *ar_group_here(int port)
{
	struct in_addr lo = {htonl(INADDR_LOOPBACK)};
	struct sockmig_group_id id;

	if (sockmig_group_id_make(AF_INET, &lo, port, 0, &id) < 0)
		return NULL;
	return sockmig_group_open_id(&id, NULL);
}
