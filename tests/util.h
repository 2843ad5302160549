/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers of the tests (every name here starts with tu_): the bursts of
 * bench/burst.h and the ACK dropper, groups and members, legacy drains,
 * hand-off endpoints. */
#ifndef SOCKMIG_TESTS_UTIL_H
#define SOCKMIG_TESTS_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "burst.h"
#include "sockmig.h"

/* The XDP ACK dropper on lo. */
struct ackdrop_bpf;
struct ackdrop_bpf *tu_ackdrop_attach(int port);
void tu_ackdrop_set(struct ackdrop_bpf *s, bool on);
unsigned long long tu_ackdrop_dropped(struct ackdrop_bpf *s);
void tu_ackdrop_detach(struct ackdrop_bpf *s);

/* Whether this kernel migrates a closed listener's queue (sockmig_probe():
 * native, and no SOCKMIG_MODE=legacy); when not, one line in @why. */
bool tu_kernel_migrates(char *why, size_t size);

/* Whether the kernel has CAP_BPF and CAP_PERFMON (5.8 and later: before,
 * loading BPF takes CAP_SYS_ADMIN); yes when it cannot tell. */
bool tu_kernel_has_cap_bpf(void);

/* Whether the kernel has pidfd_getfd() (5.6 and later). */
bool tu_kernel_has_pidfd_getfd(void);

/*
 * The precondition of the cases whose verdict depends on speed (a baseline
 * that must race a reload, 1,000 reloads in 40 s): a process takes more
 * than SLOW_EXEC_MS to fork, exec and reap here (QEMU without KVM: about
 * 20 times slower than the hardware it runs on). Then true, the measure in
 * @why: such a case checks what does not depend on speed and skips with
 * that reason where the rest cannot be met. Measured, never assumed.
 */
#define SLOW_EXEC_MS 10
bool tu_machine_too_slow(char *why, size_t size);

/* ---- groups and members (on TU_BURST_PORT) ---- */

#define TU_BURST_PORT 32000

/* Open a connection burst of n clients and count where they were queued:
 * per[i] += children accepted from lfds[i]. Returns the total accepted. */
int tu_burst(int family, const int *lfds, int nl, int n, int *per);
/* The same over IPv4 with each client from a loopback address of its own
 * (127.1.0.1 on): the kernel's hash then sees as many 4-tuples as
 * clients, where one source address gives it no more than its ephemeral
 * ports (connect() takes every other one), which repeat across bursts. */
int tu_burst_spread(const int *lfds, int nl, int n, int *per);
/* Register @fd with @role, @gen and @weight. */
int tu_add(struct sockmig_group *g, int fd, enum sockmig_role role, uint32_t gen, uint32_t weight);
/* Set the role of member @fd. */
int tu_set_role(struct sockmig_group *g, int fd, enum sockmig_role role);
/* Wait (5 s at most) until no change of @g is under way: its lock (flock
 * on its directory) taken and let go; false if it could not be. A role is
 * written before the table the program reads is rebuilt, both under the
 * lock. */
bool tu_group_settled(struct sockmig_group *g);
/* The SYNs steered to member @fd. */
uint64_t tu_steered(struct sockmig_group *g, int fd);
/* Destroy and close @g (when not NULL), close the fds >= 0 of @fds. */
void tu_cleanup(struct sockmig_group *g, int *fds, int n);

/* ---- legacy drains ---- */

#define TU_SINK_MAX 4096

/* The connections a drain accepted, for the test to answer. */
struct tu_sink {
	pthread_mutex_t mu;
	int fd[TU_SINK_MAX];
	int n;
};

/* The on_accept of a drain: keep @fd in the sink @ctx. */
int tu_sink_accept(int fd, void *ctx);
/* Answer every connection of the sink (read BURST_REQUEST, write
 * BURST_REPLY, close). Returns how many were answered. */
int tu_sink_serve(struct tu_sink *s, int timeout_ms);
/* A group of @fd with the legacy policy, or NULL (said). */
struct sockmig_group *tu_open_legacy(int fd);
/* Register @fd with generation @gen. */
int tu_add_gen(struct sockmig_group *g, int fd, uint32_t gen);
/* Print a legacy drain's report. */
void tu_legacy_report(const struct sockmig_legacy_drain_report *r);

/* A drain in a thread, so that the test can release held ACKs meanwhile. */
struct tu_drain_job {
	struct sockmig_group *g;
	int fd;
	bool legacy; /* sockmig_member_drain_legacy(); else sockmig_member_drain() */
	struct sockmig_legacy_drain_opts opts;
	struct sockmig_legacy_drain_report rep;
	struct sockmig_drain_report nrep;
	int err;
	pthread_t th;
};

/* Start @j's drain in its thread; 0 or -errno. */
int tu_drain_start(struct tu_drain_job *j);
/* Wait for it (the report printed when legacy); the drain's result. */
int tu_drain_join(struct tu_drain_job *j);
/* Does @fd listen? */
bool tu_listening(int fd);

/* ---- hand-off endpoints (on TU_HANDOFF_PORT of 127.0.0.1) ---- */

#define TU_HANDOFF_PORT 18640

/* A socket of @type with SO_REUSEPORT bound to 127.0.0.1:@port (listening
 * when SOCK_STREAM), or -1. */
int tu_tcp_listener(int type, int port);
/* A connection to 127.0.0.1:@port, or -1. */
int tu_tcp_connect(int port);
/* One connection accepted from @a or @b, waiting up to 1 s. */
int tu_accept_either(int a, int b);

/* A legacy group of listeners A (generation 1) and B (2), B's endpoint. */
struct tu_handoff {
	struct sockmig_group *g;
	int a, b, hfd;
};

/* Open the group of s->a (made when < 0) and add A and B; false: said. */
bool tu_handoff_open(struct tu_handoff *s);
/* Close the endpoint, destroy the group, close A and B. */
void tu_handoff_close(struct tu_handoff *s);

struct tu_recv_count {
	int conn;    /* TCP connections of the group's port, established */
	int other;   /* anything else returned */
	int refused; /* -EBADMSG */
	int perm;    /* -EPERM */
};

/* Every hand-off waiting at @hfd. */
void tu_recv_all(int hfd, struct tu_recv_count *rc);

#endif
