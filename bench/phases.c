// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Phases in pairs with and without a program, and a program's run time
 * from the kernel's BPF statistics; see phases.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
