// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Programs of the capability probe: each picks slot 0 of "target".
 * probe_select is what 4.19+ loads; probe_migrate reads migrating_sk,
 * which only a verifier with socket migration (5.14+) accepts.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} target SEC(".maps");

SEC("sk_reuseport")
int probe_select(struct sk_reuseport_md *ctx)
{
	__u32 zero = 0;

	bpf_sk_select_reuseport(ctx, &target, &zero, 0);
	return SK_PASS;
}

SEC("sk_reuseport/migrate")
int probe_migrate(struct sk_reuseport_md *ctx)
{
	__u32 zero = 0;

	/* New SYNs: the kernel's choice; migrations: slot 0. */
	if (ctx->migrating_sk)
		bpf_sk_select_reuseport(ctx, &target, &zero, 0);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
