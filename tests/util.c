// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The XDP ACK dropper of the tests, what the kernel can do, groups and
 * members; see util.h. */
#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ackdrop.skel.h"
#include "harness.h"
#include "sockmig.h"
#include "util.h"

struct ackdrop_bpf *tu_ackdrop_attach(int port)
{
	struct ackdrop_bpf *s = ackdrop_bpf__open_and_load();
	int ifindex = (int)if_nametoindex("lo");

	if (!s)
		return NULL;
	s->bss->port = (__u16)port;
	s->bss->enabled = 1;
	if (bpf_xdp_attach(ifindex, bpf_program__fd(s->progs.ackdrop), XDP_FLAGS_SKB_MODE, NULL) <
	    0) {
		ackdrop_bpf__destroy(s);
		return NULL;
	}
	return s;
}

void tu_ackdrop_set(struct ackdrop_bpf *s, bool on)
{
	s->bss->enabled = on;
}

unsigned long long tu_ackdrop_dropped(struct ackdrop_bpf *s)
{
	return s->bss->dropped;
}

void tu_ackdrop_detach(struct ackdrop_bpf *s)
{
	if (!s)
		return;
	bpf_xdp_detach((int)if_nametoindex("lo"), XDP_FLAGS_SKB_MODE, NULL);
	ackdrop_bpf__destroy(s);
}

bool tu_kernel_migrates(char *why, size_t size)
{
	const char *mode = getenv("SOCKMIG_MODE");
	struct sockmig_probe p = {0};
	int err;

	/* what sockmig's commands and the shim take it to mean */
	if (mode && strcmp(mode, "legacy") == 0) {
		snprintf(why, size, "SOCKMIG_MODE=legacy");
		return false;
	}
	err = sockmig_probe(&p);
	if (err) {
		snprintf(why, size, "the probe failed: %s", strerror(-err));
		return false;
	}
	if (p.mode == SOCKMIG_MODE_NATIVE)
		return true;
	snprintf(why, size, "%s", p.reason);
	return false;
}

/* A process's life here: fork, exec and reap /bin/true, mean of 20. */
static double exec_ms(void)
{
	struct timespec t0, t1;
	int n = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 20; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		if (pid > 0 && waitpid(pid, NULL, 0) == pid)
			n++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return n ? ((double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) /
			       n
		 : 1e9;
}

bool tu_machine_too_slow(char *why, size_t size)
{
	double ms = exec_ms();

	if (ms <= SLOW_EXEC_MS)
		return false;
	snprintf(why, size,
		 "a process takes %.1f ms to start and end on this machine, over %d ms "
		 "(emulated?)",
		 ms, SLOW_EXEC_MS);
	return true;
}

/* ---- groups and members ---- */

/* Open a connection burst of n clients and count where they were queued:
 * per[i] += children accepted from lfds[i]. Returns the total accepted. */
int tu_burst(int family, const int *lfds, int nl, int n, int *per)
{
	struct burst *c = calloc(1, sizeof(*c));
	int total = 0, fd;

	if (!c)
		return -1;
	if (burst_start(c, family, TU_BURST_PORT, n, false) == 0 && burst_connected(c, 3000) == n) {
		unsigned long long end = burst_now_ms() + 3000;

		while (total < n && burst_now_ms() < end) {
			for (int i = 0; i < nl; i++) {
				while ((fd = accept4(lfds[i], NULL, NULL, SOCK_CLOEXEC)) >= 0) {
					struct linger lg = {1, 0};

					setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
					close(fd);
					per[i]++;
					total++;
				}
			}
			if (total < n)
				burst_sleep_ms(1);
		}
	}
	for (int k = 0; k < c->n; k++) {
		struct linger lg = {1, 0};

		if (c->fd[k] >= 0)
			setsockopt(c->fd[k], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	burst_close(c);
	free(c);
	return total;
}

int tu_add(struct sockmig_group *g, int fd, enum sockmig_role role, uint32_t gen, uint32_t weight)
{
	SOCKMIG_OPTS(sockmig_member_opts, o, .role = role, .generation = gen, .weight = weight);

	return sockmig_member_add(g, fd, &o);
}

int tu_set_role(struct sockmig_group *g, int fd, enum sockmig_role role)
{
	SOCKMIG_OPTS(sockmig_member_opts, o, .role = role);

	return sockmig_member_set(g, sockmig_cookie(fd), &o);
}

uint64_t tu_steered(struct sockmig_group *g, int fd)
{
	struct sockmig_counters c = {0};

	sockmig_counters_read(g, sockmig_cookie(fd), &c);
	return c.steered;
}

void tu_cleanup(struct sockmig_group *g, int *fds, int n)
{
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}
