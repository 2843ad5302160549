// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Compile-time ties between the public header and the policy program's
 * types (bpf/policy.h). The library passes roles and kinds through as
 * numbers and copies counters and slots from one side to the other, so a
 * value changed on one side only must fail the build: here. No code.
 */
#include <limits.h>
#include <netinet/in.h>

#include "internal.h"
#include "policy.h"

/* (long long): the two sides may be of different enum types */
#define SAME(a, b) _Static_assert((long long)(a) == (long long)(b), #a " == " #b)

/* Roles: struct sm_member.role holds enum sockmig_role as it is. */
SAME(SOCKMIG_ROLE_ACTIVE, SM_ROLE_ACTIVE);
SAME(SOCKMIG_ROLE_DRAINING, SM_ROLE_DRAINING);
SAME(SOCKMIG_ROLE_HOLDER, SM_ROLE_HOLDER);

/* Kinds: the per-kind counters are indexed by either enum. */
SAME(SOCKMIG_KIND_ESTABLISHED, SM_KIND_ESTABLISHED);
SAME(SOCKMIG_KIND_TFO, SM_KIND_TFO);
SAME(SOCKMIG_KIND_REQ_TIMER, SM_KIND_REQ_TIMER);
SAME(SOCKMIG_KIND_REQ_ACK, SM_KIND_REQ_ACK);
SAME(SOCKMIG_KIND_MAX, SM_KIND_MAX);

/* The pending-kick flag took the padding before cookie[]: the table keeps
 * the layout and size that groups pinned by earlier versions have. */
_Static_assert(__builtin_offsetof(struct sm_table, kick_pending) + sizeof(__u32) ==
		       __builtin_offsetof(struct sm_table, cookie),
	       "kick_pending fills the padding before cookie[]");
_Static_assert(sizeof(struct sm_table) ==
		       7 * 4 + 4 * 4 * SM_MAX_MEMBERS + 4 + 8 * SM_MAX_MEMBERS + 4 * SM_MAX_MEMBERS,
	       "struct sm_table keeps its size");

/* struct sockmig_counters is struct sm_counters under public names, field
 * for field, in the same order. */
#define SAME_COUNTER(pub, bpf)                                                                     \
	SAME(offsetof(struct sockmig_counters, pub), offsetof(struct sm_counters, bpf));           \
	SAME(sizeof(((struct sockmig_counters *)0)->pub), sizeof(((struct sm_counters *)0)->bpf))
SAME_COUNTER(steered, steered);
SAME_COUNTER(migrated_in, mig_in);
SAME_COUNTER(migrated_out, mig_out);
SAME_COUNTER(deferred, deferred);
SAME_COUNTER(cancel_mismatch, cancel_mismatch);
SAME_COUNTER(kicked, kicked);
SAME(sizeof(struct sockmig_counters), sizeof(struct sm_counters));

/* Slots: the socket array's size and the mark of a member without one;
 * the member fields copied from struct sm_member keep their width. */
SAME(SOCKMIG_SLOTS, SM_MAX_MEMBERS);
SAME(SOCKMIG_NO_SLOT, SM_NO_SLOT);
#define SAME_MEMBER(pub, bpf)                                                                      \
	SAME(sizeof(((struct sockmig_member_info *)0)->pub), sizeof(((struct sm_member *)0)->bpf))
SAME_MEMBER(slot, slot);
SAME_MEMBER(generation, generation);
SAME_MEMBER(weight, weight);
SAME_MEMBER(pid, pid);

/* Names: the longest group name, "<netns>-tcp6-<IPv6 address>-<port>",
 * fits SOCKMIG_NAME_MAX, which fits a bpffs directory name. */
_Static_assert(sizeof("18446744073709551615-tcp6-") - 1 + INET6_ADDRSTRLEN - 1 + sizeof("-65535") <=
		       SOCKMIG_NAME_MAX,
	       "the longest group name fits SOCKMIG_NAME_MAX");
_Static_assert(SOCKMIG_NAME_MAX - 1 <= NAME_MAX, "SOCKMIG_NAME_MAX fits a file name");

/* struct sockmig_group_opts.policy was an int: same size and offset. */
struct sm_group_opts_v0 {
	size_t sz;
	const char *pin_root;
	enum sockmig_wake wake_targets;
	int policy;
	size_t : 0;
};
SAME(sizeof(((struct sockmig_group_opts *)0)->policy), sizeof(int));
SAME(_Alignof(enum sockmig_policy), _Alignof(int));
SAME(offsetof(struct sockmig_group_opts, policy), offsetof(struct sm_group_opts_v0, policy));
SAME(sizeof(struct sockmig_group_opts), sizeof(struct sm_group_opts_v0));

/* The drain-duration histogram: one bound per bucket. */
SAME(sizeof((const unsigned long long[])SOCKMIG_DRAIN_BUCKET_NS) / sizeof(unsigned long long),
     SOCKMIG_DRAIN_BUCKETS);

/* UDP groups (bpf/udp.h): modes and roles pass through as numbers, the
 * slots and the reserved generation are the program's, and struct
 * sockmig_udp_stats starts with struct smu_stats under public names. */
#include "udp.h"
SAME(SOCKMIG_UDP_MODE_FLOW, SMU_MODE_FLOW);
SAME(SOCKMIG_UDP_MODE_NONE, SMU_MODE_NONE);
SAME(SOCKMIG_UDP_LEARN_RECEIVE, SMU_LEARN_RECEIVE);
SAME(SOCKMIG_UDP_LEARN_CLAIM, SMU_LEARN_CLAIM);
SAME(SOCKMIG_ROLE_ACTIVE, SMU_ROLE_ACTIVE);
SAME(SOCKMIG_ROLE_DRAINING, SMU_ROLE_DRAINING);
SAME(SOCKMIG_UDP_SLOTS, SMU_MAX_MEMBERS);
_Static_assert((SMU_MAX_MEMBERS & (SMU_MAX_MEMBERS - 1)) == 0, "SMU_MAX_MEMBERS is a power of 2");
#define SAME_UDP_STAT(f)                                                                           \
	SAME(offsetof(struct sockmig_udp_stats, f), offsetof(struct smu_stats, f));                \
	SAME(sizeof(((struct sockmig_udp_stats *)0)->f), sizeof(((struct smu_stats *)0)->f))
SAME_UDP_STAT(new_flows);
SAME_UDP_STAT(flow_hits);
SAME_UDP_STAT(fallbacks);
SAME_UDP_STAT(expired);
SAME_UDP_STAT(stateless);
SAME_UDP_STAT(kernel_hash);
SAME_UDP_STAT(not_learned);
SAME_UDP_STAT(parse_failed);
SAME(offsetof(struct sockmig_udp_stats, working_generation), offsetof(struct smu_stats, quic_hits));
/* mode quic-lb: its constants are the program's; its counters are struct
 * sockmig_quic_stats, the tail of struct smu_stats */
SAME(SOCKMIG_UDP_MODE_QUIC_LB, SMU_MODE_QUIC_LB);
SAME(SOCKMIG_QUIC_CID_MIN, SMU_QUIC_CID_MIN);
SAME(SOCKMIG_QUIC_CID_MAX, SMU_QUIC_CID_MAX);
SAME(SOCKMIG_QUIC_CONFIG_MAX, SMU_QUIC_CR_MAX);
SAME(SOCKMIG_QUIC_GEN_BITS, SMU_QUIC_GEN_BITS);
SAME(sizeof(struct sockmig_quic_stats),
     sizeof(struct smu_stats) - offsetof(struct smu_stats, quic_hits));
SAME(offsetof(struct sockmig_quic_stats, stale) - offsetof(struct sockmig_quic_stats, hits),
     offsetof(struct smu_stats, quic_stale) - offsetof(struct smu_stats, quic_hits));
SAME(offsetof(struct sockmig_quic_stats, other) - offsetof(struct sockmig_quic_stats, hits),
     offsetof(struct smu_stats, quic_other) - offsetof(struct smu_stats, quic_hits));
/* the flow key: the full 4-tuple, 40 bytes, no padding the program leaves unset */
_Static_assert(sizeof(struct smu_flow_key) == 4 + 2 + 2 + 16 + 16, "smu_flow_key is packed");
/* the longest UDP group name fits as the TCP one does ("udp6" as long as "tcp6") */
_Static_assert(sizeof("18446744073709551615-udp6-") == sizeof("18446744073709551615-tcp6-"),
	       "UDP group names are as long as TCP ones");
