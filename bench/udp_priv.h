/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The UDP bench's own state and the functions its files share (not for
 * cli/ or tests/: udp_bench.h is its interface); see udp_bench.h.
 */
#ifndef SOCKMIG_BENCH_UDP_PRIV_H
#define SOCKMIG_BENCH_UDP_PRIV_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sockmig.h"
#include "udp_bench.h"

/* What a client sends: its flow (unique over the run) and a sequence. In
 * strategy quic-lb, after a QUIC header (see udp_side.c): the datagram's
 * last octets. */
struct ub_dgram {
	uint64_t flow;
	uint64_t seq;
};

/* quic-lb: a datagram's largest size, the client's source CID's length. */
#define UB_PKT_MAX  96
#define UB_SCID_LEN 8

/* One generation of the server: its socket, served by a thread. */
struct ub_gen {
	struct ub *b;
	uint32_t gen;
	int fd;
	bool used, running;
	pthread_t th;
	atomic_bool stop;
	uint64_t retire_ns; /* superseded at; 0 while it is the newest */
	atomic_ullong received, misroutes;
};

/* One run of the flows bench. */
struct ub {
	const struct udp_bench_opts *o;
	struct sockaddr_in addr;
	struct sockmig_udp_group *g; /* NULL: naive */
	_Atomic uint32_t *owner;     /* per flow: the generation that read its first datagram */
	uint64_t nflows;	     /* entries of owner[] */
	uint64_t ntuples;	     /* 4-tuples the clients may use */
	struct ub_gen gens[UB_MAX_LIVE];
	uint32_t next_gen;
	uint64_t received, misroutes; /* of the generations closed so far */
	/* the clients */
	pthread_t cth;
	bool client_running;
	atomic_bool client_done;
	atomic_ullong sent, send_errors, flows_started;
	atomic_ullong rebinds, cids;
	char client_error[160];
};

/* udp_side.c */
uint64_t ub_now_ns(void);
void ub_sleep_ns(uint64_t ns);
/* A UDP socket of the group: SO_REUSEPORT, a large receive buffer, bound
 * to @addr. Its fd, or -1 with errno set. */
int ub_server_socket(const struct sockaddr_in *addr);
/* Start the thread that serves generation @gn (its fd open). */
int ub_gen_start(struct ub_gen *gn);
/* Stop its thread (what it had not read stays unread) and close its
 * socket; its counts go to @b's. */
void ub_gen_close(struct ub *b, struct ub_gen *gn);
/* Datagrams read so far, by every generation, closed or not. */
uint64_t ub_received(struct ub *b);
/* The client thread: o->flows flows until o->secs have passed. */
int ub_client_start(struct ub *b);
void ub_client_join(struct ub *b);
/* Udp: RcvbufErrors and InErrors of the calling thread's namespace. */
/* A network namespace of its own for the calling process, lo up, and
 * RLIMIT_NOFILE of at least @fds. */
int ub_netns_setup(uint64_t fds, char *err, size_t errlen);
/* Run @fn(@arg) in a forked child: @len bytes of @arg come back. 0, or -1
 * with @err set when the child did not answer. */
int ub_in_child(void (*fn)(void *), void *arg, size_t len, char *err, size_t errlen);
/* The pin root the bench's groups use. */
const char *ub_pin_root(void);

#endif
