/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Connection bursts on loopback, for the tests and sockmig demo: listeners,
 * clients that count their outcome exactly, a serving loop, and sysctls of
 * the caller's network namespace. */
#ifndef SOCKMIG_BENCH_BURST_H
#define SOCKMIG_BENCH_BURST_H

#include <stdbool.h>
#include <sys/socket.h>

#define BURST_REQUEST	  "GET /\n"
#define BURST_REPLY	  "HTTP/1.0 200 OK\r\n\r\nsockmig\n"
#define BURST_MAX_CLIENTS 20000

/* Loopback address of @family at @port. */
socklen_t burst_addr(int family, int port, struct sockaddr_storage *ss);

/* TCP listener with SO_REUSEPORT on loopback; listens when backlog > 0.
 * opts: BURST_FASTOPEN sets TCP_FASTOPEN, BURST_SAVE_SYN sets TCP_SAVE_SYN. */
enum { BURST_FASTOPEN = 1, BURST_SAVE_SYN = 2 };
int burst_listener(int family, int port, int backlog, int opts);

/* Outcome of one client. */
enum burst_outcome {
	BURST_PENDING,
	BURST_OK,
	BURST_RESET,
	BURST_REFUSED,
	BURST_EOF,
	BURST_TIMEOUT,
	BURST_OTHER
};

struct burst {
	int n;
	int fd[BURST_MAX_CLIENTS];
	int sent[BURST_MAX_CLIENTS];
	int got[BURST_MAX_CLIENTS];
	enum burst_outcome out[BURST_MAX_CLIENTS];
	int count[BURST_OTHER + 1];
};

/* Start @n non-blocking clients that send BURST_REQUEST (in the SYN with
 * fastopen). Returns 0 or -errno. */
int burst_start(struct burst *c, int family, int port, int n, bool fastopen);

/* Wait until every client's connect completed (handshake seen by the
 * client), up to timeout_ms. Returns the number connected. */
int burst_connected(struct burst *c, int timeout_ms);

/* Serve on every listener in @lfds (accept, read BURST_REQUEST, answer
 * BURST_REPLY, close) while driving the clients, until every client has an
 * outcome or timeout_ms passes. *served counts requests answered per
 * listener (may be NULL). Returns the number of clients still pending. */
int burst_serve(struct burst *c, const int *lfds, int nl, int *served, int timeout_ms);

void burst_close(struct burst *c);

/* Print the outcome counts (shown when a case fails). */
void burst_print(const struct burst *c, const char *label);

/* Write a sysctl of the test's network namespace, e.g.
 * burst_sysctl("net/ipv4/tcp_migrate_req", "1"). */
int burst_sysctl(const char *name, const char *val);
/* net.ipv4.tcp_migrate_req on (1) or off (0) in the caller's network
 * namespace: 0, or a negative errno. Off is also 0 where the kernel has no
 * such sysctl (upstream before 5.14: nothing migrates there); on is then
 * -ENOENT. */
int burst_migrate_req(bool on);

/* Length of the accept queue of a listener (TCP_INFO tcpi_unacked). */
int burst_accept_queue(int lfd);

/* Wait until the accept queue of @lfd holds @n, up to timeout_ms. */
bool burst_wait_queue(int lfd, int n, int timeout_ms);

/* Read or write all of @len bytes (EINTR retried); false on an error or
 * an early end. */
bool burst_read_full(int fd, void *buf, size_t len);
bool burst_write_full(int fd, const void *buf, size_t len);

/* Run @fn(@ctx) in a forked child, which sends @len bytes of @res back
 * through a pipe into the parent's @res. 0; -1 when the child could not
 * run, died before sending (@err says so), or left @err set. */
int burst_in_child(void (*fn)(void *ctx), void *ctx, void *res, size_t len, char *err,
		   size_t errlen);

void burst_sleep_ms(int ms);
/* CLOCK_MONOTONIC in ms and in ns. */
unsigned long long burst_now_ms(void);
unsigned long long burst_now_ns(void);

#endif
