/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Crafted UDP flows for the scale cases, test_udp_scale*.c (every name
 * here starts with ug_): one raw socket (IP_HDRINCL) sends datagrams of
 * many flows, each from a 127/8 source address and port of its own, to a
 * port of 127.0.0.1 in the case's network namespace, without a client
 * socket per flow; receivers (SO_REUSEPORT sockets of that port) read
 * them back by epoll, each datagram naming its flow and round. */
#ifndef SOCKMIG_TESTS_UDP_GEN_H
#define SOCKMIG_TESTS_UDP_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The payload. Octet 0 is a QUIC short header and octets 1 to 20 its
 * destination CID: 0xff octets (config rotation 7, which no group mints)
 * unless a CID is given, so that a group of mode quic-lb handles it as
 * mode flow does. */
struct ug_msg {
	uint8_t quic[24];
	uint32_t flow;
	uint32_t round;
};

/* Flows have 4-tuples of their own up to UG_FLOWS_MAX (2^24). */
#define UG_FLOWS_MAX (1u << 24)

/* Flow @i's source address (host order) and port: 127.A.B.C with the
 * address index i / 1024 (A: 16 and up), port 20000 + i % 1024. */
void ug_source(uint32_t i, uint32_t *addr, uint16_t *port);
/* A raw socket for ug_send(), or -1 (said). */
int ug_raw_open(void);
/* One datagram of each flow in [@from, @to) of @round to 127.0.0.1:@dport,
 * batched: 0, or -1 (said). */
int ug_send(int raw, uint16_t dport, uint32_t from, uint32_t to, uint32_t round);
/* One datagram of flow @flow carrying the @len octets of @cid as its
 * short header's CID. */
int ug_send_cid(int raw, uint16_t dport, uint32_t flow, uint32_t round, const uint8_t *cid,
		size_t len);

/* Receivers: sockets of one port in one epoll; they are closed by
 * ug_rx_free(). */
struct ug_rx {
	int ep;
	int *fd;
	int n, cap;
	long bad; /* datagrams of the wrong size or from another source than their flow's */
};

int ug_rx_init(struct ug_rx *rx, int cap);
/* One more receiver bound to 127.0.0.1:@port with SO_REUSEPORT and a
 * receive buffer of @rcvbuf bytes: its index, or -1 (said). */
int ug_rx_socket(struct ug_rx *rx, uint16_t port, int rcvbuf);
void ug_rx_free(struct ug_rx *rx);
/* Read datagrams until @want have come or @ms passed, calling @fn for
 * each with the index of the receiver that read it: how many were read. */
long ug_collect(struct ug_rx *rx, long want, int ms,
		void (*fn)(void *arg, int sock, const struct ug_msg *m), void *arg);
/* Datagrams the UDP sockets of this network namespace dropped (a full
 * receive buffer): the drops column of /proc/net/udp. */
unsigned long long ug_udp_drops(void);

/* How many of the @n 4-tuples of flows [0, n) to 127.0.0.1:@dport share a
 * 32-bit hash of the tuple with an earlier one: what a flow table keyed
 * by such a hash would merge. -1 when out of memory. */
long ug_hash32_collisions(uint32_t n, uint16_t dport);

/* ---- what the scale cases share ---- */

#define UG_OUT_MAX (1 << 20)

struct timespec;
double ug_secs_since(const struct timespec *t0);

/* Who got which flow. Round learn: a flow's first datagram, recorded (on
 * a receiver of [lo, hi): the working generation); other rounds: its
 * owner must read it, or it is a mismatch. */
struct ug_seen {
	uint32_t *owner; /* receiver + 1 per flow; 0: none yet */
	uint32_t nflows;
	int *per; /* flows learned per receiver */
	uint32_t round;
	bool learn;
	int lo, hi;
	long dup, off_gen, mismatch, stray;
};

/* ug_collect()'s callback for a struct ug_seen @arg. */
void ug_on_msg(void *arg, int sock, const struct ug_msg *m);
/* Send round s->round of flows [from, to) to 127.0.0.1:@dport in chunks,
 * reading each back whole: false (said) when any is missing. */
bool ug_round_trip(int raw, uint16_t dport, struct ug_rx *rx, struct ug_seen *s, uint32_t from,
		   uint32_t to);
/* `sockmig status` here (.output/sockmig), into @out (UG_OUT_MAX), its
 * lines but the members' rows printed; its exit status, or -1. */
int ug_status(char *out);

#endif
