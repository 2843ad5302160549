/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The maps of a UDP group program (udp.h says what each holds), for
 * bpf/udp.bpf.c and for the tests' program of an older layout
 * (tests/bpf/udp_older.bpf.c), which must define them as the group pins
 * them: libbpf reuses a pinned map only when its definition matches.
 * SMU_FLOW_VALUE and SMU_STATS_VALUE name the value types of the flow
 * table and of the counters, this version's unless defined before.
 */
#ifndef SOCKMIG_BPF_UDP_MAPS_H
#define SOCKMIG_BPF_UDP_MAPS_H

#include "udp.h"

#ifndef SMU_FLOW_VALUE
#define SMU_FLOW_VALUE struct smu_flow
#endif
#ifndef SMU_STATS_VALUE
#define SMU_STATS_VALUE struct smu_stats
#endif

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, SMU_MAX_MEMBERS);
	__type(key, __u32);
	__type(value, __u64);
} members SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SMU_MAX_MEMBERS);
	__type(key, __u32);
	__type(value, struct smu_slot);
} slots SEC(".maps");

/* max_entries set by user space before load (sockmig_udp_group_opts.flow_max) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct smu_flow_key);
	__type(value, SMU_FLOW_VALUE);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct smu_table);
} table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} tabidx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct smu_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct smu_qkey);
} qkey SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, SMU_STATS_VALUE);
} stats SEC(".maps");

#endif /* SOCKMIG_BPF_UDP_MAPS_H */
