// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Legacy mode: the choice of the policy, and the legacy object against 4.19 to 5.13 verifiers. */
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"
#include "policy.skel.h"
#include "policy_legacy.skel.h"

#define PORT 33000

/* Forced by option or environment; a group keeps the policy it was
 * created with; auto is native on this kernel. */
SM_TEST(legacy_policy_choice)
{
	SOCKMIG_OPTS(sockmig_group_opts, legacy, .policy = SOCKMIG_POLICY_LEGACY);
	SOCKMIG_OPTS(sockmig_group_opts, native, .policy = SOCKMIG_POLICY_NATIVE);
	SOCKMIG_OPTS(sockmig_group_opts, bad, .policy = 7);
	struct sockmig_group *g1 = NULL, *g2 = NULL, *g3 = NULL;
	int l[3] = {-1, -1, -1}, ret = SM_FAIL;

	unsetenv("SOCKMIG_MODE");
	for (int i = 0; i < 3; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT + i, 16, 0), "listener"))
			goto out;
	g1 = sockmig_group_open(l[0], &legacy);
	if (!ASSERT_TRUE(g1 != NULL, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_group_policy(g1), SOCKMIG_POLICY_LEGACY, "forced legacy"))
		goto out;
	g2 = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g2 != NULL, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_group_policy(g2), SOCKMIG_POLICY_LEGACY, "the pinned one"))
		goto out;
	sockmig_group_close(g2);
	g2 = sockmig_group_open(l[0], &native);
	if (!ASSERT_TRUE(g2 == NULL, "forcing native on a legacy group fails") ||
	    !ASSERT_EQ(errno, EEXIST, "errno"))
		goto out;
	g2 = sockmig_group_open(l[0], &bad);
	if (!ASSERT_TRUE(g2 == NULL, "an unknown policy fails") ||
	    !ASSERT_EQ(errno, EINVAL, "errno"))
		goto out;

	setenv("SOCKMIG_MODE", "legacy", 1);
	g2 = sockmig_group_open(l[1], NULL);
	unsetenv("SOCKMIG_MODE");
	if (!ASSERT_TRUE(g2 != NULL, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_group_policy(g2), SOCKMIG_POLICY_LEGACY, "SOCKMIG_MODE=legacy"))
		goto out;
	g3 = sockmig_group_open(l[2], NULL);
	if (!ASSERT_TRUE(g3 != NULL, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_group_policy(g3), SOCKMIG_POLICY_NATIVE, "auto on this kernel"))
		goto out;
	ret = SM_PASS;
out:
	for (struct sockmig_group **gp = (struct sockmig_group *[]){g1, g2, g3}, **e = gp + 3;
	     gp < e; gp++)
		if (*gp) {
			sockmig_group_destroy(*gp);
			sockmig_group_close(*gp);
		}
	for (int i = 0; i < 3; i++)
		if (l[i] >= 0)
			close(l[i]);
	return ret;
}

/* ---- the legacy object against 4.19 to 5.13 verifiers --------------------- */

struct obj_check {
	size_t insns;
	int bad_helpers, bad_ctx, jmp32, subprog_calls, bad_atomics;
	bool cycle;
};

/* Successor @k of instruction @i, -1 if none. */
static long succ(const struct bpf_insn *in, size_t n, size_t i, int k)
{
	__u8 code = in[i].code, cls = BPF_CLASS(code), op = BPF_OP(code);
	long s[2] = {-1, -1};
	int ns = 0;

	if (code == (BPF_LD | BPF_IMM | BPF_DW)) {
		s[ns++] = (long)i + 2;
	} else if (cls == BPF_JMP || cls == BPF_JMP32) {
		if (op == BPF_CALL) {
			s[ns++] = (long)i + 1;
		} else if (op == BPF_JA) {
			s[ns++] = (long)i + 1 + in[i].off;
		} else if (op != BPF_EXIT) {
			s[ns++] = (long)i + 1;
			s[ns++] = (long)i + 1 + in[i].off;
		}
	} else {
		s[ns++] = (long)i + 1;
	}
	return k < ns && s[k] >= 0 && s[k] < (long)n ? s[k] : -1;
}

/* A cycle in the control flow: what verifiers before 5.3 call a back-edge. */
static bool has_cycle(const struct bpf_insn *in, size_t n)
{
	unsigned char *color = calloc(n, 1);
	unsigned char *edge = calloc(n, 1);
	size_t *stack = calloc(n + 1, sizeof(*stack)), top = 0;
	bool cycle = false;

	if (!color || !edge || !stack || !n)
		goto out;
	stack[top++] = 0;
	color[0] = 1;
	while (top && !cycle) {
		size_t i = stack[top - 1];
		long w;

		if (edge[i] >= 2) {
			color[i] = 2;
			top--;
			continue;
		}
		w = succ(in, n, i, edge[i]++);
		if (w < 0)
			continue;
		if (color[w] == 1)
			cycle = true;
		else if (color[w] == 0) {
			color[w] = 1;
			stack[top++] = (size_t)w;
		}
	}
out:
	free(color);
	free(edge);
	free(stack);
	return cycle;
}

static void check_prog(const struct bpf_program *prog, struct obj_check *r)
{
	const struct bpf_insn *in = bpf_program__insns(prog);
	size_t n = bpf_program__insn_cnt(prog);
	unsigned ctx = 1u << BPF_REG_1; /* registers holding the context */

	memset(r, 0, sizeof(*r));
	r->insns = n;
	for (size_t i = 0; i < n; i++) {
		__u8 code = in[i].code, cls = BPF_CLASS(code);
		int dst = in[i].dst_reg, src = in[i].src_reg;

		if (code == (BPF_LD | BPF_IMM | BPF_DW)) {
			ctx &= ~(1u << dst);
			i++;
			continue;
		}
		switch (cls) {
		case BPF_LDX:
			/* sk and migrating_sk: 5.14 */
			if (BPF_MODE(code) == BPF_MEM && (ctx >> src & 1) &&
			    in[i].off >= (int)offsetof(struct sk_reuseport_md, sk)) {
				printf("insn %zu reads the context at %d\n", i, in[i].off);
				r->bad_ctx++;
			}
			ctx &= ~(1u << dst);
			break;
		case BPF_ALU:
		case BPF_ALU64:
			if (cls == BPF_ALU64 && BPF_OP(code) == BPF_MOV && BPF_SRC(code) == BPF_X &&
			    (ctx >> src & 1))
				ctx |= 1u << dst;
			else
				ctx &= ~(1u << dst);
			break;
		case BPF_JMP32: /* 5.1 */
			r->jmp32++;
			break;
		case BPF_JMP:
			if (BPF_OP(code) != BPF_CALL)
				break;
			if (src == BPF_PSEUDO_CALL) {
				r->subprog_calls++;
			} else if (in[i].imm != BPF_FUNC_map_lookup_elem &&
				   in[i].imm != BPF_FUNC_map_update_elem &&
				   in[i].imm != BPF_FUNC_map_delete_elem &&
				   in[i].imm != BPF_FUNC_skb_load_bytes &&
				   in[i].imm != BPF_FUNC_skb_load_bytes_relative &&
				   in[i].imm != BPF_FUNC_ktime_get_ns &&
				   in[i].imm != BPF_FUNC_sk_select_reuseport) {
				printf("insn %zu calls helper %d\n", i, in[i].imm);
				r->bad_helpers++;
			}
			ctx &= ~0x3fu; /* r0 to r5 */
			break;
		case BPF_STX:
			/* fetching atomics: 5.12 */
			if (BPF_MODE(code) == BPF_ATOMIC && in[i].imm != BPF_ADD)
				r->bad_atomics++;
			break;
		}
	}
	r->cycle = has_cycle(in, n);
	printf("%s: %zu insns, cycle %d, helpers not in 4.19 %d, context past hash %d, jmp32 %d, "
	       "calls %d, fetching atomics %d\n",
	       bpf_program__name(prog), r->insns, r->cycle, r->bad_helpers, r->bad_ctx, r->jmp32,
	       r->subprog_calls, r->bad_atomics);
}

SM_TEST(legacy_object_is_what_4_19_loads)
{
	struct policy_legacy_bpf *l = policy_legacy_bpf__open();
	struct policy_bpf *nat = policy_bpf__open();
	struct obj_check r;
	int ret = SM_FAIL;

	if (!ASSERT_TRUE(l && nat, "open the objects"))
		goto out;
	if (!ASSERT_EQ(bpf_program__type(l->progs.sockmig_legacy), BPF_PROG_TYPE_SK_REUSEPORT,
		       "type") ||
	    !ASSERT_EQ(bpf_program__expected_attach_type(l->progs.sockmig_legacy),
		       BPF_SK_REUSEPORT_SELECT, "a select program"))
		goto out;
	check_prog(l->progs.sockmig_legacy, &r);
	if (!ASSERT_TRUE(r.insns <= 4096, "at most 4096 instructions (4.19)") ||
	    !ASSERT_EQ(r.cycle, 0, "no loop (5.3)") ||
	    !ASSERT_EQ(r.bad_helpers, 0, "only 4.19 sk_reuseport helpers") ||
	    !ASSERT_EQ(r.bad_ctx, 0, "no ctx->sk, ctx->migrating_sk (5.14)") ||
	    !ASSERT_EQ(r.jmp32, 0, "no 32-bit jumps (5.1)") ||
	    !ASSERT_EQ(r.subprog_calls, 0, "no function calls (global: 5.6)") ||
	    !ASSERT_EQ(r.bad_atomics, 0, "no fetching atomics (5.12)"))
		goto out;
	/* the baseline that must fail: the native program */
	check_prog(nat->progs.sockmig_policy, &r);
	if (!ASSERT_GT(r.bad_ctx, 0, "native reads migrating_sk") ||
	    !ASSERT_GT(r.bad_helpers, 0, "native calls bpf_get_socket_cookie") ||
	    !ASSERT_GT(r.subprog_calls, 0, "native calls a global function"))
		goto out;
	/* and this kernel's verifier takes it */
	if (!ASSERT_OK(policy_legacy_bpf__load(l), "load the legacy object"))
		goto out;
	ret = SM_PASS;
out:
	policy_legacy_bpf__destroy(l);
	policy_bpf__destroy(nat);
	return ret;
}

/* The library opens either object and takes the group's maps by name: the
 * legacy object must define the native one's maps, alike, and no other. */
SM_TEST(legacy_object_has_the_native_maps)
{
	struct policy_legacy_bpf *l = policy_legacy_bpf__open();
	struct policy_bpf *nat = policy_bpf__open();
	const struct bpf_map *m, *lm;
	int n_nat = 0, n_leg = 0, ret = SM_FAIL;

	if (!ASSERT_TRUE(l && nat, "open the objects"))
		goto out;
	bpf_object__for_each_map(m, nat->obj)
	{
		n_nat++;
		lm = bpf_object__find_map_by_name(l->obj, bpf_map__name(m));
		if (!ASSERT_TRUE(lm != NULL, bpf_map__name(m)) ||
		    !ASSERT_EQ(bpf_map__type(lm), bpf_map__type(m), "type") ||
		    !ASSERT_EQ(bpf_map__key_size(lm), bpf_map__key_size(m), "key size") ||
		    !ASSERT_EQ(bpf_map__value_size(lm), bpf_map__value_size(m), "value size") ||
		    !ASSERT_EQ(bpf_map__max_entries(lm), bpf_map__max_entries(m), "max entries") ||
		    !ASSERT_EQ(bpf_map__map_flags(lm), bpf_map__map_flags(m), "flags"))
			goto out;
	}
	bpf_object__for_each_map(lm, l->obj) n_leg++;
	if (!ASSERT_EQ(n_nat, 9, "the group's nine maps") ||
	    !ASSERT_EQ(n_leg, n_nat, "no map of its own"))
		goto out;
	ret = SM_PASS;
out:
	policy_legacy_bpf__destroy(l);
	policy_bpf__destroy(nat);
	return ret;
}
