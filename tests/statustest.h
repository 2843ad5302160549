/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers of the tests of sockmig status (tests/test_status*.c; every
 * name here starts with st_): the listeners and clients a case makes on
 * the ports below. */
#ifndef SOCKMIG_TESTS_STATUSTEST_H
#define SOCKMIG_TESTS_STATUSTEST_H

#include <stdbool.h>

#define SOCKMIG_BIN "./.output/sockmig"
#define P_GROUP	    32100 /* three IPv4 listeners with SO_REUSEPORT */
#define P_V6	    32101 /* one IPv6 listener with SO_REUSEPORT */
#define P_PLAIN	    32102 /* one listener without SO_REUSEPORT */
#define P_NONE	    32103 /* nobody listens */
#define NOBODY	    65534

/* A listener of @family on loopback @port (SO_REUSEPORT when asked), or
 * -errno. */
int st_listener(int family, int port, bool reuseport, int backlog);
/* @n blocking clients of @family to @port into fds[]; the number connected. */
int st_connect_n(int family, int port, int n, int *fds);
/* Close the fds >= 0 of @fds, each set to -1. */
void st_close_all(int *fds, int n);
/* Wait (2 s at most) until the accept queues of @lfds hold @n in all:
 * what they hold. */
int st_wait_queues(const int *lfds, int nl, int n);

#endif
