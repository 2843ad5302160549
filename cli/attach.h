/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared by attach, detach and drain: taking another process's sockets. */
#ifndef SOCKMIG_CLI_ATTACH_H
#define SOCKMIG_CLI_ATTACH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct sm_listener;

/* A copy of listener @l from the first of its owners that lets us take it
 * (pidfd_getfd: the rights of ptrace), or -1 after one error line unless
 * @quiet. */
int take_listener(const struct sm_listener *l, bool quiet);

/* The start time of @pid in clock ticks since boot (its generation). */
uint32_t process_generation(pid_t pid);

#endif
