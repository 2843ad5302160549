// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The XDP ACK dropper of the tests, what the kernel can do; see util.h. */
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ackdrop.skel.h"
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
