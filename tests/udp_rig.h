/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The UDP test rig of test_udp*.c (every name here starts with ur_): echo
 * sockets of SO_REUSEPORT on one loopback port, one per generation, served
 * by one thread and answering with their generation; connected UDP clients,
 * one per flow; see udp_rig.c. */
#ifndef SOCKMIG_TESTS_UDP_RIG_H
#define SOCKMIG_TESTS_UDP_RIG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "sockmig.h"

#define UR_PORT	     34600
#define UR_MAX_FLOWS 2000
#define UR_MAX_SOCK  128

struct ur_msg {
	uint32_t flow;
	uint32_t seq;
	uint32_t gen; /* the answer's */
};

struct ur_rig {
	int family;
	struct sockaddr_storage addr;
	socklen_t alen;
	struct sockmig_udp_group *g; /* NULL: plain SO_REUSEPORT */
	int ep;			     /* the echo thread's epoll */
	int srv[UR_MAX_SOCK];
	uint32_t gen[UR_MAX_SOCK];
	atomic_int nsrv;
	atomic_bool stop;
	pthread_t th;
	bool running;
	/* clients */
	int cep; /* their epoll (data: the flow) */
	int cli[UR_MAX_FLOWS];
	uint32_t got[UR_MAX_FLOWS]; /* seq of the latest answer */
	int first[UR_MAX_FLOWS];    /* generation of the first answer, -1 before */
	int last[UR_MAX_FLOWS];	    /* generation of the latest answer */
	long sent, answered, misrouted, lost;
	unsigned long long drops0; /* softnet backlog drops at the start */
};

uint64_t ur_now_ms(void);
/* A rig with nothing open or running yet, that ur_stop() leaves alone
 * (for a case that starts its clients or servers later). */
void ur_init(struct ur_rig *r);
/* One more echo socket of generation @gen, registered when the rig has a
 * group. Its index, or -1. */
int ur_add(struct ur_rig *r, uint32_t gen);
/* Close echo socket @k (between rounds: nothing in flight). */
void ur_close_sock(struct ur_rig *r, int k);
/* The rig on loopback (@family) port UR_PORT, with a UDP group in @mode
 * when @sockmig (plain SO_REUSEPORT otherwise), its echo thread running. */
int ur_start(struct ur_rig *r, int family, bool sockmig, enum sockmig_udp_mode mode,
	     uint32_t idle_ms);
/* Raise RLIMIT_NOFILE to @need when it is lower; -EMFILE when not allowed. */
int ur_enough_fds(rlim_t need);
void ur_stop(struct ur_rig *r);
/* Datagrams the kernel dropped for a full input backlog, all CPUs (loopback
 * queues every datagram there): /proc/net/softnet_stat's second column. */
unsigned long long ur_backlog_drops(void);
/* The unanswered datagrams that no input backlog drop since the start
 * explains. */
long ur_unexplained_lost(struct ur_rig *r);
/* One datagram from each flow in [from, to), then every answer (within
 * 5 s): the owner recorded at a flow's first answer, misroutes counted. */
int ur_round(struct ur_rig *r, int from, int to, uint32_t seq);
/* The group's table holds, per generation, the flows whose first answer
 * came from it (and no other): 0 or -1. */
int ur_flows_match(struct ur_rig *r);

/* Generation 1 (socket 0) takes flows [0, @old); generation 2 (socket 1,
 * added after) takes the @new flows after them while generation 1 keeps
 * its own; generation 1 is then drained. 0, or -1 after saying what
 * failed. */
int ur_two_generations(struct ur_rig *r, int old, int new);

/* Fds a case with @flows clients needs: theirs, the echo sockets', the
 * runner's and the library's. */
#define UR_FDS_NEEDED(flows) ((flows) + UR_MAX_SOCK + 64)

/* ur_start() in a case (with its ret and out:), which skips when the fd
 * limit cannot cover @flows clients. */
#define UR_START(flows, r, ...)                                                                    \
	({                                                                                         \
		int rc_ = ur_start(r, __VA_ARGS__);                                                \
		if (rc_ == 0 && ur_enough_fds(UR_FDS_NEEDED(flows)) < 0) {                         \
			ret = SKIP("RLIMIT_NOFILE is below %d and may not be raised here",         \
				   UR_FDS_NEEDED(flows));                                          \
			goto out;                                                                  \
		}                                                                                  \
		rc_;                                                                               \
	})

#endif /* SOCKMIG_TESTS_UDP_RIG_H */
