/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers of the tests: the bursts of bench/burst.h and the ACK dropper. */
#ifndef SOCKMIG_TESTS_UTIL_H
#define SOCKMIG_TESTS_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "burst.h"

/* The XDP ACK dropper on lo. */
struct ackdrop_bpf;
struct ackdrop_bpf *tu_ackdrop_attach(int port);
void tu_ackdrop_set(struct ackdrop_bpf *s, bool on);
unsigned long long tu_ackdrop_dropped(struct ackdrop_bpf *s);
void tu_ackdrop_detach(struct ackdrop_bpf *s);

/* Whether this kernel migrates a closed listener's queue (sockmig_probe():
 * native, and no SOCKMIG_MODE=legacy); when not, one line in @why. */
bool tu_kernel_migrates(char *why, size_t size);

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

#endif
