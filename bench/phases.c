// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Phases in pairs with and without a program, and a program's run time
 * from the kernel's BPF statistics; see phases.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "phases.h"

void ph_record(struct phases *p, int ph, double done, double secs)
{
	bool on = ph_on(ph);

	if (ph < 0 || ph >= PH_MAX)
		return;
	p->phase_rate[ph] = secs > 0 ? done / secs : 0;
	p->phase_on[ph] = on;
	p->done[on] += done;
	p->secs[on] += secs;
	if (ph + 1 > p->phases)
		p->phases = ph + 1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

void ph_finish(struct phases *p)
{
	double sorted[PH_MAX / 2] = {0};
	int n = p->phases / 2;

	for (int i = 0; i < n; i++) {
		double a = p->phase_rate[2 * i], b = p->phase_rate[2 * i + 1];
		double on = p->phase_on[2 * i] ? a : b, off = p->phase_on[2 * i] ? b : a;

		p->pair_ratio[i] = off > 0 ? on / off : 0;
		sorted[i] = p->pair_ratio[i];
	}
	p->pairs = n;
	qsort(sorted, (size_t)n, sizeof(sorted[0]), cmp_double);
	if (n)
		p->ratio = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
	p->rate_off = p->secs[0] > 0 ? p->done[0] / p->secs[0] : 0;
	p->rate_on = p->secs[1] > 0 ? p->done[1] / p->secs[1] : 0;
	p->ratio_pooled = p->rate_off > 0 ? p->rate_on / p->rate_off : 0;
}

bool ph_stats_on(void)
{
	FILE *f = fopen("/proc/sys/kernel/bpf_stats_enabled", "re");
	int on = 0;

	if (!f)
		return false;
	if (fscanf(f, "%d", &on) != 1)
		on = 0;
	fclose(f);
	return on != 0;
}

int ph_prog_stats(int fd, struct prog_stats *st, char *err, size_t errlen)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0) {
		snprintf(err, errlen, "cannot read the program's run-time statistics: %s",
			 strerror(errno));
		return -1;
	}
	st->ns = info.run_time_ns;
	st->runs = info.run_cnt;
	return 0;
}

int ph_empty_prog(char *err, size_t errlen)
{
	const struct bpf_insn insns[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = SK_PASS},
		{.code = BPF_JMP | BPF_EXIT},
	};
	struct bpf_prog_load_opts po;
	int fd;

	memset(&po, 0, sizeof(po));
	po.sz = sizeof(po);
	po.expected_attach_type = BPF_SK_REUSEPORT_SELECT;
	fd = bpf_prog_load(BPF_PROG_TYPE_SK_REUSEPORT, "sm_empty", "Dual BSD/GPL", insns,
			   sizeof(insns) / sizeof(insns[0]), &po);
	if (fd < 0)
		snprintf(err, errlen, "cannot load an empty sk_reuseport program: %s",
			 strerror(errno));
	return fd;
}

/* One instruction, in BPF's own encoding. */
static struct bpf_insn ins(__u8 code, __u8 dst, __u8 src, __s16 off, __s32 imm)
{
	return (struct bpf_insn){
		.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
}

int ph_select_prog(const int *fds, int n, char *err, size_t errlen)
{
	const __u8 alu64k = BPF_ALU64 | BPF_K, alu64x = BPF_ALU64 | BPF_X;
	/* r6 = ctx; slot = ctx->hash % n, on the stack as the array's key;
	 * r0 = bpf_sk_select_reuseport(ctx, map, &slot, 0);
	 * return r0 ? SK_DROP : SK_PASS; */
	struct bpf_insn insns[] = {
		ins(alu64x | BPF_MOV, BPF_REG_6, BPF_REG_1, 0, 0),
		ins(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1,
		    offsetof(struct sk_reuseport_md, hash), 0),
		ins(BPF_ALU | BPF_K | BPF_MOD, BPF_REG_2, 0, 0, n),
		ins(BPF_STX | BPF_MEM | BPF_W, BPF_REG_10, BPF_REG_2, -4, 0),
		ins(alu64x | BPF_MOV, BPF_REG_1, BPF_REG_6, 0, 0),
		ins(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_2, BPF_PSEUDO_MAP_FD, 0, 0), /* the map */
		ins(0, 0, 0, 0, 0), /* its upper half */
		ins(alu64x | BPF_MOV, BPF_REG_3, BPF_REG_10, 0, 0),
		ins(alu64k | BPF_ADD, BPF_REG_3, 0, 0, -4),
		ins(alu64k | BPF_MOV, BPF_REG_4, 0, 0, 0),
		ins(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_sk_select_reuseport),
		ins(BPF_JMP | BPF_K | BPF_JNE, BPF_REG_0, 0, 2, 0),
		ins(alu64k | BPF_MOV, BPF_REG_0, 0, 0, SK_PASS),
		ins(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
		ins(alu64k | BPF_MOV, BPF_REG_0, 0, 0, SK_DROP),
		ins(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	struct bpf_prog_load_opts po;
	int map, fd = -1;

	if (n < 1) {
		snprintf(err, errlen, "select-only program: %d sockets", n);
		return -1;
	}
	map = bpf_map_create(BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, "sm_select", sizeof(__u32),
			     sizeof(__u32), (__u32)n, NULL);
	if (map < 0) {
		snprintf(err, errlen, "cannot make a socket array: %s", strerror(errno));
		return -1;
	}
	for (__u32 i = 0; i < (__u32)n; i++) {
		__u32 v = (__u32)fds[i];

		if (bpf_map_update_elem(map, &i, &v, BPF_ANY) < 0) {
			snprintf(err, errlen,
				 "cannot put fd %d in the select-only socket array: %s", fds[i],
				 strerror(errno));
			goto out;
		}
	}
	insns[5].imm = map;
	memset(&po, 0, sizeof(po));
	po.sz = sizeof(po);
	po.expected_attach_type = BPF_SK_REUSEPORT_SELECT;
	fd = bpf_prog_load(BPF_PROG_TYPE_SK_REUSEPORT, "sm_select_only", "Dual BSD/GPL", insns,
			   sizeof(insns) / sizeof(insns[0]), &po);
	if (fd < 0)
		snprintf(err, errlen, "cannot load the select-only sk_reuseport program: %s",
			 strerror(errno));
out:
	close(map); /* the program holds the map */
	return fd;
}
