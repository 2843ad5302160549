// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig's policy for kernels without socket migration (4.19 to 5.13):
 * the SYN selection of policy.bpf.c, loaded as a plain sk_reuseport select
 * program with the same maps, so that a group's pinned state is the same
 * whichever program serves it. What this object must not contain, because
 * those verifiers reject it: ctx->sk and ctx->migrating_sk (5.14),
 * bpf_get_socket_cookie() on a reuseport context, back-edges (5.3), global
 * functions (5.6). tests/test_legacy.c checks the instructions.
 */
#define SOCKMIG_LEGACY 1
#include "policy.bpf.c"
