/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The QUIC-like rig of test_udp_quic*.c (see quic_rig.c): plain UDP server
 * sockets of SO_REUSEPORT on one loopback port, members of a quic-lb (or
 * flow, or no) group; datagrams that carry only the header fields the
 * program reads, and a trailer (flow, round) by which the test finds which
 * socket each one reached; clients that send each datagram from an address
 * and port of its own (a NAT rebinding). */
#ifndef SOCKMIG_TESTS_QUIC_RIG_H
#define SOCKMIG_TESTS_QUIC_RIG_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#include "sockmig.h"

#define QR_MAX	     320  /* server sockets of a case */
#define QR_TRAILER   8	  /* flow and seq, at the end of every datagram */
#define QR_INIT_SIZE 1200 /* an Initial's size */

struct qs {
	struct sockmig_udp_group *g; /* NULL: plain SO_REUSEPORT */
	struct sockaddr_in addr;
	struct pollfd pfd[QR_MAX];
	uint32_t gen[QR_MAX];
	int n;
	unsigned long long drops0;
	long sent, got, lost;
};

/* Whether this kernel can run the encrypted-CID program: it needs
 * bpf_ktime_get_coarse_ns in sk_reuseport programs (Linux 5.11). */
bool qs_enc_kernel(void);
/* In a case that needs the encrypted program: SKIP where the kernel has
 * not got it (the refusal itself is udp_quic_enc_refused_before_5_11). */
#define QS_NEED_ENC()                                                                              \
	do {                                                                                       \
		if (!qs_enc_kernel())                                                              \
			return SKIP("encrypted CIDs need Linux 5.11 (bpf_ktime_get_coarse_ns)");   \
	} while (0)

/* The group of @go (NULL: none, plain SO_REUSEPORT) on 127.0.0.1:UR_PORT. */
int qs_open(struct qs *q, const struct sockmig_udp_group_opts *go);
/* One more server socket of generation @gen, a member when there is a
 * group. Its index, or -1. */
int qs_add(struct qs *q, uint32_t gen);
void qs_close(struct qs *q, int k);
void qs_stop(struct qs *q);

/* A 1-RTT packet (short header) to @cid; its length. */
size_t qr_short(uint8_t *b, const uint8_t *cid, size_t cl, uint32_t flow, uint32_t seq);
/* A long-header packet of @type (0 Initial, 2 Handshake) to @dcid, padded
 * to @size when it is larger; its length. */
size_t qr_long(uint8_t *b, int type, const uint8_t *dcid, size_t dl, size_t size, uint32_t flow,
	       uint32_t seq);
/* The same from the client's source CID @scid of @sl octets (qr_long:
 * 8 octets 0xc1). */
size_t qr_long_scid(uint8_t *b, int type, const uint8_t *dcid, size_t dl, const uint8_t *scid,
		    size_t sl, size_t size, uint32_t flow, uint32_t seq);
/* A client's random Initial DCID, config rotation bits 7 (exact counts). */
void qr_client_dcid(uint8_t *d, size_t len);
/* Send @len octets from 127.1.@net.1, port @port. */
int qs_send_from(struct qs *q, int net, int port, const uint8_t *b, size_t len);
/* Read every server socket until @want datagrams of round @seq arrived
 * (or 5 s): who[flow] = the index of the socket that got it, else -1. */
void qs_collect(struct qs *q, long want, uint32_t seq, int *who, int nflows);
/* Lost datagrams that no input backlog drop since the start explains. */
long qs_unexplained_lost(struct qs *q);

/*
 * Clients that move every round, across flips: in round r (0 to flips) two
 * sockets of generation r + 1 join, conns / flips new connections send an
 * Initial each (its owner is the socket that gets it, and @mint gives the
 * connection's CID of cid_len octets), and every older connection sends
 * one datagram (1-RTT or Handshake, by turns) to its CID, each from an
 * address and port of its own this round.
 */
struct qr_rebind {
	int conns, flips;
	uint32_t cid_len;
	/* the CID of a connection that socket @k owns; 0, or -1 (failed) */
	int (*mint)(struct qs *q, int k, uint8_t *cid, uint32_t len, void *arg);
	void *arg;
	/* results */
	long mis, est_sent, est_lost, init_lost;
	int owners; /* sockets owning connections */
};

int qr_rebinding_run(struct qs *q, struct qr_rebind *rb);

#endif
