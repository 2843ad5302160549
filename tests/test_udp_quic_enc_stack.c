// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The encrypted quic-lb program (sockmig_udp_enc) indexes the stack at
 * constant offsets only: kernels before 5.12 refuse a variable offset into
 * the stack (the frame pointer r10 plus a register), and later ones allow
 * it only with CAP_PERFMON (bypass_spec_v1). Checked on the instructions
 * the kernel kept (xlated), the AES rounds' subprogram included.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <stdlib.h>

#include "harness.h"
#include "quic_rig.h"
#include "udp.skel.h"

/* Registers holding the stack pointer plus a constant, linearly: count
 * the additions of a register to one (or of one to a register). */
static int stack_plus_register(const struct bpf_insn *in, __u32 n)
{
	bool sp[MAX_BPF_REG] = {false};
	int bad = 0;

	for (__u32 i = 0; i < n; i++) {
		__u8 cls = BPF_CLASS(in[i].code), op = BPF_OP(in[i].code);
		__u8 d = in[i].dst_reg, s = in[i].src_reg;
		bool reg = BPF_SRC(in[i].code) == BPF_X;

		if (d >= MAX_BPF_REG || s >= MAX_BPF_REG)
			continue;
		if (cls == BPF_JMP && (op == BPF_CALL || op == BPF_EXIT)) {
			for (int r = 0; r <= 5; r++)
				sp[r] = false;
			continue;
		}
		if (cls == BPF_LD && in[i].code == (BPF_LD | BPF_IMM | BPF_DW)) {
			sp[d] = false;
			i++;
			continue;
		}
		if (cls == BPF_LDX) {
			sp[d] = false;
			continue;
		}
		if (cls != BPF_ALU64 && cls != BPF_ALU)
			continue;
		if (op == BPF_MOV) {
			sp[d] = cls == BPF_ALU64 && reg && (s == BPF_REG_10 || sp[s]);
		} else if (op == BPF_ADD && !reg) {
			/* the stack pointer plus a constant: still one */
		} else if (op == BPF_ADD && (sp[d] || sp[s])) {
			printf("insn %u: r%u += r%u, a stack pointer plus a register\n", i, d, s);
			bad++;
			sp[d] = false;
		} else {
			sp[d] = false;
		}
	}
	return bad;
}

SM_TEST(udp_quic_enc_stack_offsets_constant)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info), n;
	struct bpf_insn *insns = NULL;
	struct udp_bpf *skel;
	int ret = SM_FAIL, fd;

	QS_NEED_ENC();
	skel = udp_bpf__open();
	if (!ASSERT_TRUE(skel != NULL, "open the UDP object"))
		return SM_FAIL;
	bpf_program__set_autoload(skel->progs.sockmig_udp, false);
	bpf_program__set_autoload(skel->progs.sockmig_udp_ktime, false);
	if (!ASSERT_OK(udp_bpf__load(skel), "load sockmig_udp_enc"))
		goto out;
	fd = bpf_program__fd(skel->progs.sockmig_udp_enc);
	if (!ASSERT_OK(bpf_obj_get_info_by_fd(fd, &info, &len), "its info") ||
	    !ASSERT_TRUE(info.xlated_prog_len > 0, "its instructions readable"))
		goto out;
	n = info.xlated_prog_len / sizeof(*insns);
	insns = calloc(n, sizeof(*insns));
	memset(&info, 0, sizeof(info));
	info.xlated_prog_len = n * sizeof(*insns);
	info.xlated_prog_insns = (__u64)(unsigned long)insns;
	len = sizeof(info);
	if (!ASSERT_TRUE(insns != NULL, "calloc") ||
	    !ASSERT_OK(bpf_obj_get_info_by_fd(fd, &info, &len), "its instructions"))
		goto out;
	printf("sockmig_udp_enc: %u instructions\n", n);
	if (ASSERT_EQ(stack_plus_register(insns, n), 0, "no variable stack offset"))
		ret = SM_PASS;
out:
	free(insns);
	udp_bpf__destroy(skel);
	return ret;
}
