/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers of the tests: the bursts of bench/burst.h and the ACK dropper. */
#ifndef SOCKMIG_TESTS_UTIL_H
#define SOCKMIG_TESTS_UTIL_H

#include <stdbool.h>

#include "burst.h"

/* The XDP ACK dropper on lo. */
struct ackdrop_bpf;
struct ackdrop_bpf *tu_ackdrop_attach(int port);
void tu_ackdrop_set(struct ackdrop_bpf *s, bool on);
unsigned long long tu_ackdrop_dropped(struct ackdrop_bpf *s);
void tu_ackdrop_detach(struct ackdrop_bpf *s);

#endif
