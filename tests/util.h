/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers of the tests: listeners, clients that count their outcome,
 * a serving loop, sysctls of the test's netns, and the ACK dropper. */
#ifndef SOCKMIG_TESTS_UTIL_H
#define SOCKMIG_TESTS_UTIL_H

#include <stdbool.h>
#include <sys/socket.h>

#define TU_REQUEST "GET /\n"
#define TU_REPLY "HTTP/1.0 200 OK\r\n\r\nsockmig\n"
#define TU_MAX_CLIENTS 20000

/* Loopback address of @family at @port. */
socklen_t tu_addr(int family, int port, struct sockaddr_storage *ss);

/* TCP listener with SO_REUSEPORT on loopback; listens when backlog > 0.
 * opts: TU_FASTOPEN sets TCP_FASTOPEN, TU_SAVE_SYN sets TCP_SAVE_SYN. */
enum { TU_FASTOPEN = 1, TU_SAVE_SYN = 2 };
int tu_listener(int family, int port, int backlog, int opts);

/* Outcome of one client. */
enum tu_outcome { TU_PENDING, TU_OK, TU_RESET, TU_REFUSED, TU_EOF, TU_TIMEOUT, TU_OTHER };

struct tu_clients {
	int n;
	int fd[TU_MAX_CLIENTS];
	int sent[TU_MAX_CLIENTS];
	int got[TU_MAX_CLIENTS];
	enum tu_outcome out[TU_MAX_CLIENTS];
	int count[TU_OTHER + 1];
};

/* Start @n non-blocking clients that send TU_REQUEST (in the SYN with
 * fastopen). Returns 0 or -errno. */
int tu_clients_start(struct tu_clients *c, int family, int port, int n, bool fastopen);

/* Wait until every client's connect completed (handshake seen by the
 * client), up to timeout_ms. Returns the number connected. */
int tu_clients_connected(struct tu_clients *c, int timeout_ms);

/* Serve on every listener in @lfds (accept, read TU_REQUEST, answer
 * TU_REPLY, close) while driving the clients, until every client has an
 * outcome or timeout_ms passes. *served counts requests answered per
 * listener (may be NULL). Returns the number of clients still pending. */
int tu_run(struct tu_clients *c, const int *lfds, int nl, int *served, int timeout_ms);

void tu_clients_close(struct tu_clients *c);

/* Print the outcome counts (shown when a case fails). */
void tu_clients_print(const struct tu_clients *c, const char *label);

/* Write a sysctl of the test's network namespace, e.g.
 * tu_sysctl("net/ipv4/tcp_migrate_req", "1"). */
int tu_sysctl(const char *name, const char *val);

/* Length of the accept queue of a listener (TCP_INFO tcpi_unacked). */
int tu_accept_queue(int lfd);

/* Wait until the accept queue of @lfd holds @n, up to timeout_ms. */
bool tu_wait_queue(int lfd, int n, int timeout_ms);

/* The XDP ACK dropper on lo. */
struct ackdrop_bpf;
struct ackdrop_bpf *tu_ackdrop_attach(int port);
void tu_ackdrop_set(struct ackdrop_bpf *s, bool on);
unsigned long long tu_ackdrop_dropped(struct ackdrop_bpf *s);
void tu_ackdrop_detach(struct ackdrop_bpf *s);

void tu_sleep_ms(int ms);
unsigned long long tu_now_ms(void);

#endif
