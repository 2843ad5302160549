/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Types shared by the policy program (policy.bpf.c) and libsockmig.
 *
 * One group = one SO_REUSEPORT group = one directory in bpffs holding:
 *   members   REUSEPORT_SOCKARRAY  slot -> listener
 *   state     HASH                 cookie -> struct sm_member
 *   counters  HASH                 cookie -> struct sm_counters
 *   pcounters PERCPU_ARRAY         slot -> struct sm_slot_counters
 *   table     ARRAY[2]             double-buffered struct sm_table
 *   tabidx    ARRAY[1]             which table copy is current
 *   gstats    ARRAY[1]             struct sm_gstats
 *   kick      HASH                 client source port -> slot (wake-ups)
 *   lease     ARRAY[2]             the maintainer's lease (SM_LEASE_*)
 *
 * User space owns state and the tables (rebuilt under the group lock);
 * the program only reads them and writes counters.
 *
 * A member's counters are the sum of its entry in "counters" and, while
 * the slot's owner is its cookie, of its slot's copies in "pcounters" (one
 * per CPU): the program counts there, without a hash lookup or an atomic
 * operation, for every member with a slot; in "counters" only for a
 * closing listener without a slot of its own. When a slot goes to another
 * member, user space first adds what the slot counted into its previous
 * owner's "counters" entry (lib/counters.c).
 */
#ifndef SOCKMIG_BPF_POLICY_H
#define SOCKMIG_BPF_POLICY_H

#include <linux/types.h>

/* Listeners with a slot in a group (a power of 2). Members beyond it are
 * registered without one (slot SM_NO_SLOT): while an active member has
 * none, new SYNs go by the kernel's hash over every listener. */
#define SM_MAX_MEMBERS 1024
#define SM_NO_SLOT     0xffffffffu
/* Steps of the binary search over cumulative weights: log2(SM_MAX_MEMBERS) + 1. */
#define SM_WPICK_STEPS 11

enum sm_role {
	SM_ROLE_ACTIVE = 1,
	SM_ROLE_DRAINING = 2,
	SM_ROLE_HOLDER = 3,
};

/* Listener settings that must match for a migration (struct sm_member.compat). */
#define SM_COMPAT_INET6	       (1u << 0)
#define SM_COMPAT_SAVE_SYN     (1u << 1)
#define SM_COMPAT_DEFER_ACCEPT (1u << 2)
#define SM_COMPAT_FASTOPEN     (1u << 3)

struct sm_member {
	__u32 slot;
	__u32 role;
	__u32 generation;
	__u32 weight;
	__u32 compat;
	__u32 pid;	   /* the listener's owner, for status and stale members */
	__u64 owner_start; /* its start time (clock ticks since boot), 0 if unknown */
};

/* Kinds of migration, as the program sees them. */
enum sm_kind {
	SM_KIND_ESTABLISHED = 0, /* accept-queue child, at close */
	SM_KIND_TFO = 1,	 /* TFO child in SYN_RECV, at close */
	SM_KIND_REQ_TIMER = 2,	 /* NEW_SYN_RECV at the SYN+ACK timer */
	SM_KIND_REQ_ACK = 3,	 /* NEW_SYN_RECV at the final ACK */
	SM_KIND_MAX = 4,
};

struct sm_counters {
	__u64 steered;		    /* new SYNs sent to this member */
	__u64 mig_in[SM_KIND_MAX];  /* migrated to this member */
	__u64 mig_out[SM_KIND_MAX]; /* migrated away from this member */
	__u64 deferred;		    /* away from it, no registered target: the kernel chose */
	__u64 cancel_mismatch;	    /* away from this member, settings differ */
	__u64 kicked;		    /* wake-up connections sent here */
};

/* A slot's counters on one CPU: the program's @c, and the member they
 * belong to (@cookie, the same on every CPU, 0: nobody), written by user
 * space only, before the member's socket can be selected in the slot. */
struct sm_slot_counters {
	struct sm_counters c;
	__u64 cookie;
};

/* Group-wide events that belong to no registered member. */
struct sm_gstats {
	__u64 syn_kernel_hash; /* no registered member: kernel's choice */
	__u64 syn_fallback;    /* no selectable candidate: kernel's choice */
	__u64 mig_unknown;     /* closing listener not registered */
	__u64 select_failed;   /* bpf_sk_select_reuseport() errors */
};

/*
 * The lease of the process that keeps the registration current (sockmig
 * attach): lease[SM_LEASE_EXPIRES] is the CLOCK_MONOTONIC time in ns
 * (read with bpf_ktime_get_coarse_ns() by the native program, up to a tick
 * behind; bpf_ktime_get_ns() by the legacy one) after which the registered set is not trusted for
 * new SYNs, 0 for no lease; user space renews it without the group lock.
 * lease[SM_LEASE_SYN_PASSED] counts the SYNs left to the kernel's hash
 * because the lease had expired (a map of its own rather than a field of
 * struct sm_gstats, so that groups pinned before it stay reusable).
 */
#define SM_LEASE_EXPIRES    0
#define SM_LEASE_SYN_PASSED 1
#define SM_LEASE_MAX	    2

/*
 * The selection table, rebuilt by user space whenever a member changes.
 * Arrays hold indexes into slot[]/cookie[] of the members it lists.
 */
struct sm_table {
	__u32 n_registered;
	__u32 n_active;
	__u32 n_newest; /* active members of the newest generation */
	__u32 n_holder;
	__u32 total_weight; /* 0: plain hash over active members */
	__u32 newest_gen;
	__u32 n_unslotted;	      /* active members without a slot: SYNs by the kernel's hash */
	__u32 active[SM_MAX_MEMBERS]; /* slot numbers */
	__u32 cumw[SM_MAX_MEMBERS];   /* cumulative weights of active[] */
	__u32 newest[SM_MAX_MEMBERS];
	__u32 holder[SM_MAX_MEMBERS];
	/* "kick" holds an entry: SYNs look their source port up there. In
	 * the 4 bytes of padding before cookie[] (see lib/abi_check.c): every
	 * other field keeps its offset and the table its size, so that a group
	 * pinned by an earlier version runs on (its program ignores the flag). */
	__u32 kick_pending;
	__u64 cookie[SM_MAX_MEMBERS]; /* by slot */
	__u32 compat[SM_MAX_MEMBERS]; /* by slot */
};

#endif
