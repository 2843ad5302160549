// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Helpers of the tests of sockmig hold and sockmig run: sockmig in the
 * background, the test server under sockmig run; see runtest.h. */
#include <dirent.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness.h"
#include "proc.h"
#include "runtest.h"
#include "sockmig.h"
#include "util.h"

/* Start `sockmig ARGS...` in the background, output to dir/NAME. */
pid_t rt_spawn_sockmig(struct ienv *e, const char *log, char *const args[])
{
	char *argv[32];
	char path[128];
	int n = 0;

	argv[n++] = e->sockmig;
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	snprintf(path, sizeof(path), "%s/%s", e->dir, log);
	return tp_spawn(path, argv, NULL);
}

bool rt_wait_serving(int port)
{
	return it_probe_reply(port, RT_START_MS) > 0;
}

/* Wait up to @ms for @n lines of dir/@log that contain @what. */
bool rt_wait_log(const struct ienv *e, const char *log, const char *what, int n, int ms)
{
	for (int t = 0; t < ms / 10 && it_log_count(e, log, what) < n; t++)
		burst_sleep_ms(10);
	return it_log_count(e, log, what) >= n;
}

/* SM_PASS once the server answers under sockmig run and generation 1 is ready; SM_SKIP when the
 * tools are missing; SM_FAIL (the log shown) when run does not serve. */
int rt_run_start(struct runenv *re, char *const extra[])
{
	char *args[24];
	unsigned long long t0;
	int n = 0;

	if (!it_setup(&re->e, I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!it_test_server(&re->e, false, re->bin, sizeof(re->bin)))
		return SKIP("no test server: make builds it");
	snprintf(re->port, sizeof(re->port), "%d", RPORT);
	snprintf(re->cmd, sizeof(re->cmd), "%s", re->bin);
	if (re->wrap) {
		FILE *f;

		snprintf(re->cmd, sizeof(re->cmd), "%s/server.sh", re->e.dir);
		f = fopen(re->cmd, "w");
		if (!f) {
			printf("cannot write %s: %s\n", re->cmd, strerror(errno));
			return SM_FAIL;
		}
		fprintf(f,
			"#!/bin/sh\n[ -e %s/fail ] && exit 3\n"
			"[ -e %s/crash ] && exec timeout -s KILL 2 %s \"$@\"\n"
			"exec %s \"$@\"\n",
			re->e.dir, re->e.dir, re->bin, re->bin);
		fclose(f);
		chmod(re->cmd, 0700);
	}
	args[n++] = "run";
	args[n++] = "--port";
	args[n++] = re->port;
	args[n++] = "--grace";
	args[n++] = "5";
	for (int i = 0; extra && extra[i] && n < 18; i++)
		args[n++] = extra[i];
	args[n++] = "--";
	args[n++] = re->cmd;
	args[n++] = re->port;
	args[n] = NULL;
	re->run = rt_spawn_sockmig(&re->e, "run.log", args);
	t0 = burst_now_ms();
	re->reply = it_probe_reply(RPORT, RT_START_MS);
	if (burst_now_ms() - t0 > 3000)
		printf("(the server first answered under sockmig run after %llu ms)\n",
		       burst_now_ms() - t0);
	if (ASSERT_GT(re->reply, 0, "the server answers under sockmig run") &&
	    ASSERT_TRUE(rt_wait_log(&re->e, "run.log", "ready in", 1, RT_START_MS),
			"generation 1 ready"))
		return SM_PASS;
	it_show_log(&re->e, "run.log");
	return SM_FAIL;
}

void rt_run_stop(struct runenv *re)
{
	tp_stop(re->run);
	it_teardown(&re->e, RPORT);
}

/* @name in the directory of sockmig's daemons for this network namespace. */
void rt_daemon_file(char *buf, size_t len, const char *name)
{
	struct stat st = {0};

	stat("/proc/self/ns/net", &st);
	snprintf(buf, len, "/run/sockmig/%llu/%s", (unsigned long long)st.st_ino, name);
}

/* The sockmig groups pinned for this network namespace (other namespaces'
 * are other tests' or real servers'). */
int rt_groups_here(void)
{
	char names[64][SOCKMIG_NAME_MAX], prefix[32];
	struct stat st = {0};
	int n, here = 0;

	stat("/proc/self/ns/net", &st);
	snprintf(prefix, sizeof(prefix), "%llu-", (unsigned long long)st.st_ino);
	n = sockmig_group_list(NULL, names, 64);
	for (int i = 0; i < n && i < 64; i++)
		here += strncmp(names[i], prefix, strlen(prefix)) == 0;
	return here;
}

/* The pid a daemon's file names, or 0. */
pid_t rt_pidfile_pid(const char *name)
{
	char path[160];
	int pid = 0;
	FILE *f;

	rt_daemon_file(path, sizeof(path), name);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid;
}

bool rt_alive(pid_t pid)
{
	return tp_start_time(pid, true) != 0;
}

bool rt_wait_gone(pid_t pid, int ms)
{
	for (int t = 0; t < ms / 10 && rt_alive(pid); t++)
		burst_sleep_ms(10);
	return !rt_alive(pid);
}

/*
 * Whether fd @fd of @pid is a connection the client will lose when @pid
 * dies: a connected socket (not a listener) to which nothing was written
 * yet. A connection that has its reply in the send queue is finished by the
 * kernel after the process dies: the client gets it all, then the FIN.
 */
static bool will_be_lost(pid_t pid, int fd, struct rt_kill *k)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), copy, listening = -1;
	struct tcp_info ti = {0};
	socklen_t len = sizeof(listening), tlen = sizeof(ti);
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	bool lost;

	if (pidfd < 0)
		return false;
	copy = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	close(pidfd);
	if (copy < 0)
		return false;
	lost = getsockopt(copy, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 &&
	       listening == 0 && getsockopt(copy, IPPROTO_TCP, TCP_INFO, &ti, &tlen) == 0 &&
	       ti.tcpi_bytes_sent == 0;
	/* the client's port, to name it if the count does not add up */
	if (lost && k->nports < RT_DOOMED_PORTS &&
	    getpeername(copy, (struct sockaddr *)&peer, &plen) == 0)
		k->ports[k->nports++] =
			ntohs(peer.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&peer)->sin6_port
							 : ((struct sockaddr_in *)&peer)->sin_port);
	close(copy);
	return lost;
}

/* The connections @pid holds that die with it; see will_be_lost(). */
static int doomed_connections(pid_t pid, struct rt_kill *k)
{
	char dir[64], path[320], link[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		ssize_t len;

		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (strncmp(link, "socket:", 7) == 0)
			n += will_be_lost(pid, atoi(de->d_name), k);
	}
	if (d)
		closedir(d);
	return n;
}

/* Whether @pid is stopped (state T in /proc/PID/stat). */
static bool stopped(pid_t pid)
{
	char path[64], buf[256], *p = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (f) {
		if (fgets(buf, sizeof(buf), f))
			p = strrchr(buf, ')');
		fclose(f);
	}
	return p && p[1] == ' ' && p[2] == 'T';
}

void rt_kill9_counted(pid_t victim, struct rt_kill *k)
{
	memset(k, 0, sizeof(*k));
	kill(victim, SIGSTOP);
	/* counted once it stopped: it accepts and answers no more */
	for (int t = 0; t < 400 && !stopped(victim); t++)
		burst_sleep_ms(5);
	if (!stopped(victim))
		printf("pid %d not seen stopped in 2 s: counted all the same\n", (int)victim);
	k->doomed = doomed_connections(victim, k);
	k->at_ms = burst_now_ms();
	kill(victim, SIGKILL);
}

/* Every failed connection @r names, with its times from the kill. */
static void show_fails(const struct lg_result *r, const struct rt_kill *k)
{
	for (uint32_t i = 0; i < r->nfails; i++) {
		const struct lg_fail *f = &r->fails[i];
		bool doomed = false;

		for (int j = 0; j < k->nports && !doomed; j++)
			doomed = f->port && k->ports[j] == f->port;
		printf("  failed: port %u %s, started %+lld ms and ended %+lld ms from the kill, "
		       "%u bytes sent, %u read%s\n",
		       f->port, lg_outcome_str((enum lg_outcome)f->outcome),
		       (long long)f->start_ms - (long long)k->at_ms,
		       (long long)f->end_ms - (long long)k->at_ms, f->sent, f->got,
		       doomed ? ", one of the doomed" : "");
	}
	if (r->nfails < r->started - r->count[LG_OK])
		printf("  (the first %u named)\n", r->nfails);
}

bool rt_killed_judge(const struct lg_result *r, const struct rt_kill *k)
{
	long long closerace = (long long)r->count[LG_RESET_BEFORE_REQUEST];
	long long failed = (long long)(r->started - r->count[LG_OK]);

	printf("unanswered connections of the server when it was killed: %lld, "
	       "handshakes reset at close: %lld\n",
	       k->doomed, closerace);
	if (failed != k->doomed + closerace)
		show_fails(r, k);
	/* the load ran across the kill, at whatever rate the machine has */
	return ASSERT_GT(lg_ok_between(r, k->at_ms - 1000, k->at_ms), 0,
			 "connections served that started in the second before the kill") &&
	       ASSERT_GT(lg_ok_between(r, k->at_ms + 1000, UINT64_MAX), 0,
			 "connections served that started from 1 s after the kill") &&
	       ASSERT_LE(closerace, 3, "handshakes reset at close") &&
	       ASSERT_EQ(failed, k->doomed + closerace,
			 "failed connections = unanswered ones of the killed server + "
			 "handshakes reset at close");
}
