// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Helpers of tests/test_run_udp.c (sockmig run --proto udp|all); see
 * run_udp_rig.h. */
#include <arpa/inet.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "proc.h"
#include "run_udp_rig.h"
#include "runtest.h"
#include "sockmig.h"

/* Inodes of the UDP sockets bound to @port (local), from /proc/net/udp. */
static int port_inodes(int port, unsigned long *ino, int max)
{
	FILE *f = fopen("/proc/net/udp", "re");
	char line[512];
	int n = 0;

	while (f && fgets(line, sizeof(line), f) && n < max) {
		unsigned int lport;
		unsigned long inode;

		/* sl local_address rem_address st tx:rx tr:when retr uid timeout inode */
		if (sscanf(line, " %*d: %*x:%x %*x:%*x %*x %*x:%*x %*x:%*x %*x %*u %*d %lu", &lport,
			   &inode) == 2 &&
		    (int)lport == port)
			ino[n++] = inode;
	}
	if (f)
		fclose(f);
	return n;
}

/* @pid holds a UDP socket bound to @port. */
static bool holds_port(int pid, int port)
{
	unsigned long ino[64];
	int n = port_inodes(port, ino, 64);
	char path[64], link[64];
	struct dirent *d;
	bool found = false;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	dir = opendir(path);
	while (dir && !found && (d = readdir(dir))) {
		unsigned long i;
		ssize_t l;

		snprintf(path, sizeof(path), "/proc/%d/fd/%s", pid, d->d_name);
		l = readlink(path, link, sizeof(link) - 1);
		if (l <= 0)
			continue;
		link[l] = '\0';
		if (sscanf(link, "socket:[%lu]", &i) != 1)
			continue;
		for (int k = 0; k < n && !found; k++)
			found = ino[k] == i;
	}
	if (dir)
		closedir(dir);
	return found;
}

/* @pid has a live member in the port's UDP groups, or the port has no
 * group (--proto tcp: the kernel's own SO_REUSEPORT group alone). */
bool ru_in_group(int pid)
{
	struct sockmig_group_id ids[8];
	struct sockmig_udp_member_info m[64];
	int n = sockmig_udp_group_list(NULL, sockmig_netns_self(), UR_PORT, ids, 8);
	bool found = n <= 0;

	for (int i = 0; i < n && i < 8 && !found; i++) {
		struct sockmig_udp_group *g = sockmig_udp_group_open_name(ids[i].name, NULL);
		int k = g ? sockmig_udp_members(g, m, 64) : 0;

		for (int x = 0; x < k && x < 64 && !found; x++)
			found = (int)m[x].pid == pid;
		sockmig_udp_group_close(g);
	}
	return found;
}

/* The owner can still get its flows' datagrams: its socket is open and
 * in the group (not retired). */
static bool still_owner(int pid)
{
	return holds_port(pid, UR_PORT) && ru_in_group(pid);
}

static bool owner_open(struct ru_judge *j, int pid)
{
	for (int i = 0; i < j->npid; i++)
		if (j->seen[i].pid == pid)
			return j->seen[i].open;
	if (j->npid < 32) {
		j->seen[j->npid].pid = pid;
		j->seen[j->npid].open = still_owner(pid);
		return j->seen[j->npid++].open;
	}
	return still_owner(pid);
}

/* One round of flows [0, n), judged. */
bool ru_round(struct ur_rig *r, struct ru_judge *j, int n, uint32_t seq)
{
	if (ur_round(r, 0, n, seq) < 0)
		return false;
	j->npid = 0;
	j->rounds++;
	for (int i = 0; i < n; i++) {
		int a = r->last[i];

		if (r->got[i] != seq && j->owner[i]) {
			if (owner_open(j, j->owner[i]))
				j->lost_open++;
			else
				j->lost_at_close++;
		}
		if (r->got[i] != seq || a <= 0)
			continue;
		if (!j->owner[i]) {
			j->owner[i] = a;
		} else if (a != j->owner[i]) {
			if (owner_open(j, j->owner[i])) {
				j->misrouted++;
			} else {
				j->owner[i] = a;
				j->handovers++;
			}
		}
	}
	return true;
}

/* The case's directory, tools and server; false: skip. */
bool ru_setup(struct ienv *e, const char *server, char *bin, size_t len)
{
	if (!it_setup(e, I_NONE))
		return false;
	snprintf(bin, len, "%s/%s", e->dir, server);
	return tp_server_copy(server, bin);
}

/* Remove the port's UDP groups if anything is left (run removes them). */
int ru_groups_left(void)
{
	struct sockmig_group_id ids[8];
	int n = sockmig_udp_group_list(NULL, sockmig_netns_self(), UR_PORT, ids, 8);

	for (int i = 0; i < n && i < 8; i++) {
		struct sockmig_udp_group *g = sockmig_udp_group_open_name(ids[i].name, NULL);

		if (g) {
			sockmig_udp_group_destroy(g);
			sockmig_udp_group_close(g);
		}
	}
	return n;
}

void ru_teardown(struct ienv *e, pid_t run, struct ur_rig *r, bool clients)
{
	tp_stop(run);
	if (clients)
		ur_stop(r);
	ru_groups_left();
	it_teardown(e, UR_PORT);
}

/*
 * Rounds of every flow until @what appears @n times in run.log (bounded by
 * @ms): the load goes on through the reload.
 */
bool ru_rounds_until(struct ienv *e, struct ur_rig *r, struct ru_judge *j, int nflows,
		     uint32_t *seq, const char *what, int n, int ms)
{
	uint64_t end = ur_now_ms() + (uint64_t)ms;

	while (it_log_count(e, "run.log", what) < n && ur_now_ms() < end)
		if (!ru_round(r, j, nflows, ++*seq))
			return false;
	return it_log_count(e, "run.log", what) >= n;
}

/* The rig's clients (no echo socket of their own, no group). */
bool ru_clients(struct ur_rig *r, int flows)
{
	return ASSERT_OK(ur_start(r, AF_INET, false, SOCKMIG_UDP_MODE_DEFAULT, 0), "clients") &&
	       ASSERT_OK(ur_enough_fds(UR_FDS_NEEDED(flows)), "fds");
}

/* `sockmig run --port UR_PORT @extra... -- @cmd...` into run.log. */
pid_t ru_start_run(struct ienv *e, char *const extra[], char *const cmd[])
{
	char *args[32];
	int n = 0;

	args[n++] = "run";
	args[n++] = "--port";
	args[n++] = RU_PORT_S;
	for (int i = 0; extra[i] && n < 20; i++)
		args[n++] = extra[i];
	args[n++] = "--";
	for (int i = 0; cmd[i] && n < 31; i++)
		args[n++] = cmd[i];
	args[n] = NULL;
	return rt_spawn_sockmig(e, "run.log", args);
}

/* Every report line of run.log says UdpRcvbufErrors +0. */
bool ru_no_rcvbuf_errors(struct ienv *e)
{
	int reports = it_log_count(e, "run.log", "report (udp)");

	return ASSERT_EQ(it_log_count(e, "run.log", "UdpRcvbufErrors +0,"), reports,
			 "reports with UdpRcvbufErrors +0");
}

/* The line of dir/@log that contains @what into @line; false: none. */
bool ru_log_line(const struct ienv *e, const char *log, const char *what, char *line, size_t len)
{
	char path[128];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", e->dir, log);
	f = fopen(path, "re");
	while (f && !found && fgets(line, (int)len, f))
		found = strstr(line, what) != NULL;
	if (f)
		fclose(f);
	return found;
}

/* Flows [from, to) were answered first by @pid (@pid_is) or not. */
int ru_first_by(const struct ur_rig *r, int from, int to, int pid)
{
	int n = 0;

	for (int i = from; i < to; i++)
		n += r->first[i] == pid;
	return n;
}

/* The pid of a live member of the port's UDP group other than @not, or 0. */
int ru_other_member(int not )
{
	struct sockmig_group_id ids[8];
	struct sockmig_udp_member_info m[16];
	int n = sockmig_udp_group_list(NULL, sockmig_netns_self(), UR_PORT, ids, 8), pid = 0;

	for (int i = 0; i < n && i < 8 && !pid; i++) {
		struct sockmig_udp_group *g = sockmig_udp_group_open_name(ids[i].name, NULL);
		int k = g ? sockmig_udp_members(g, m, 16) : 0;

		for (int j = 0; j < k && j < 16 && !pid; j++)
			if ((int)m[j].pid != not )
				pid = (int)m[j].pid;
		sockmig_udp_group_close(g);
	}
	return pid;
}
