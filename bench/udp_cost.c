// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig bench udp-cost: the packet rate of one flow at a UDP group of
 * two sockets, with no program (the kernel's hash) and with the flow
 * program, in pairs of phases; and the program's run time per datagram
 * from the kernel's BPF statistics (see udp_bench.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "udp_priv.h"

#define NSOCK  2
#define WINDOW 2048 /* datagrams sent and not read yet, at most */

struct cost {
	struct udp_cost_result *r;
	int srv[NSOCK];
	int cli;
	pthread_t th;
	bool running;
	atomic_bool stop;
	atomic_ullong received;
};

static void *reader(void *arg)
{
	struct cost *c = arg;
	struct pollfd p[NSOCK];
	char buf[64][16];
	struct mmsghdr m[64];
	struct iovec iov[64];

	memset(m, 0, sizeof(m));
	for (int i = 0; i < 64; i++) {
		iov[i].iov_base = buf[i];
		iov[i].iov_len = sizeof(buf[i]);
		m[i].msg_hdr.msg_iov = &iov[i];
		m[i].msg_hdr.msg_iovlen = 1;
	}
	for (int i = 0; i < NSOCK; i++)
		p[i] = (struct pollfd){.fd = c->srv[i], .events = POLLIN};
	while (!atomic_load(&c->stop)) {
		if (poll(p, NSOCK, 20) <= 0)
			continue;
		for (int i = 0; i < NSOCK; i++) {
			int n;

			while ((n = recvmmsg(c->srv[i], m, 64, MSG_DONTWAIT, NULL)) > 0)
				atomic_fetch_add_explicit(&c->received, (unsigned long long)n,
							  memory_order_relaxed);
		}
	}
	return NULL;
}

/* One phase: @count datagrams, at most WINDOW unread; its rate (datagrams
 * read per second), the unread ones added to r->lost. */
static double phase(struct cost *c, uint64_t count)
{
	uint64_t base = atomic_load(&c->received), sent = 0, t0 = ub_now_ns(), t1, quiet;
	char d[16] = "udp-cost";

	for (uint64_t i = 0; sent < count; i++) {
		uint64_t got = atomic_load_explicit(&c->received, memory_order_relaxed) - base;

		/* bounded: a phase of a minute at most */
		if (!(i % 1024) && ub_now_ns() - t0 > 60000000000ull)
			break;
		if (sent - got >= WINDOW) {
			sched_yield();
			continue;
		}
		if (send(c->cli, d, sizeof(d), 0) == sizeof(d))
			sent++;
		else
			sched_yield();
	}
	/* what is in flight: read, or lost after 200 ms of nothing */
	quiet = ub_now_ns();
	for (uint64_t last = 0; atomic_load(&c->received) - base < sent;) {
		uint64_t got = atomic_load(&c->received) - base;

		if (got != last) {
			last = got;
			quiet = ub_now_ns();
		} else if (ub_now_ns() - quiet > 200000000ull) {
			break;
		}
		sched_yield();
	}
	t1 = ub_now_ns();
	sent -= atomic_load(&c->received) - base;
	c->r->lost += sent;
	return (double)(atomic_load(&c->received) - base) / ((double)(t1 - t0) / 1e9);
}

static int prog_stats(int fd, uint64_t *ns, uint64_t *runs, char *err, size_t errlen)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0) {
		snprintf(err, errlen, "cannot read the program's run-time statistics: %s",
			 strerror(errno));
		return -1;
	}
	*ns = info.run_time_ns;
	*runs = info.run_cnt;
	return 0;
}

/* An sk_reuseport program that returns SK_PASS and nothing else. */
static int pass_prog(void)
{
	const struct bpf_insn insns[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = SK_PASS},
		{.code = BPF_JMP | BPF_EXIT},
	};
	struct bpf_prog_load_opts po;

	memset(&po, 0, sizeof(po));
	po.sz = sizeof(po);
	po.expected_attach_type = BPF_SK_REUSEPORT_SELECT;
	return bpf_prog_load(BPF_PROG_TYPE_SK_REUSEPORT, "sm_udp_pass", "Dual BSD/GPL", insns, 2,
			     &po);
}

/* Attach @prog to the group (-1: detach whatever is attached). */
static int attach(struct cost *c, int prog)
{
	int dummy = 0;

	if (prog < 0)
		return setsockopt(c->srv[0], SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &dummy,
				  sizeof(dummy));
	return setsockopt(c->srv[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog, sizeof(prog));
}

struct cost_args {
	struct udp_cost_result r;
	int port, phases;
	uint64_t count;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void ratios(struct udp_cost_result *r, const double sum[2], const int n[2])
{
	double sorted[32] = {0};
	int pairs = r->phases / 2;

	for (int p = 0; p < pairs; p++) {
		double a = r->phase_rate[2 * p], b = r->phase_rate[2 * p + 1];
		double on = r->phase_on[2 * p] ? a : b, off = r->phase_on[2 * p] ? b : a;

		r->pair_ratio[p] = off > 0 ? on / off : 0;
		sorted[p] = r->pair_ratio[p];
	}
	r->pairs = pairs;
	qsort(sorted, (size_t)pairs, sizeof(sorted[0]), cmp_double);
	if (pairs)
		r->ratio = pairs % 2 ? sorted[pairs / 2]
				     : (sorted[pairs / 2 - 1] + sorted[pairs / 2]) / 2;
	r->rate_off = n[0] ? sum[0] / n[0] : 0;
	r->rate_on = n[1] ? sum[1] / n[1] : 0;
}

static void cost_child(void *arg)
{
	struct cost_args *a = arg;
	struct udp_cost_result *r = &a->r;
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .pin_root = ub_pin_root(),
		     .mode = SOCKMIG_UDP_MODE_FLOW);
	SOCKMIG_OPTS(sockmig_udp_member_opts, mo, .generation = 1);
	struct sockaddr_in addr = {.sin_family = AF_INET};
	struct sockmig_udp_group *g = NULL;
	struct cost c = {.r = r, .srv = {-1, -1}, .cli = -1};
	int stats = -1, prog = -1, empty = -1, n[2] = {0};
	uint64_t ns0, runs0, ns1, runs1;
	double sum[2] = {0};
	char pin[4200];

	if (ub_netns_setup(64, r->error, sizeof(r->error)) < 0)
		return;
	/* run_time_ns and run_cnt count while this descriptor is open */
	stats = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (stats < 0) {
		snprintf(r->error, sizeof(r->error),
			 "cannot enable the kernel's BPF run-time statistics: %s (needs "
			 "CAP_SYS_ADMIN and Linux 5.8 or later)",
			 strerror(errno));
		return;
	}
	addr.sin_port = htons((uint16_t)a->port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g = sockmig_udp_group_open((struct sockaddr *)&addr, sizeof(addr), &go);
	if (!g) {
		snprintf(r->error, sizeof(r->error), "cannot open the UDP group: %s",
			 sockmig_last_error());
		goto out;
	}
	for (int i = 0; i < NSOCK; i++) {
		c.srv[i] = ub_server_socket(&addr);
		if (c.srv[i] < 0 || sockmig_udp_member_add(g, c.srv[i], &mo) < 0) {
			snprintf(r->error, sizeof(r->error), "server socket: %s",
				 c.srv[i] < 0 ? strerror(errno) : sockmig_last_error());
			goto out;
		}
	}
	snprintf(pin, sizeof(pin), "%s/%s/prog", ub_pin_root(), sockmig_udp_group_name(g));
	prog = bpf_obj_get(pin);
	c.cli = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (prog < 0 || c.cli < 0 || connect(c.cli, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		snprintf(r->error, sizeof(r->error), "cannot open %s or the client: %s", pin,
			 strerror(errno));
		goto out;
	}
	if (pthread_create(&c.th, NULL, reader, &c) != 0)
		goto out;
	c.running = true;
	attach(&c, -1);
	r->warmup_rate = phase(&c, a->count);
	for (int ph = 0; ph < a->phases && ph < 64; ph++) {
		/* off-on, on-off, off-on, ...: a drift falls on both alike */
		int on = (ph % 2) ^ (ph / 2 % 2);

		if (attach(&c, on ? prog : -1) < 0 && on) {
			snprintf(r->error, sizeof(r->error), "cannot attach the program: %s",
				 strerror(errno));
			goto out;
		}
		if (on && prog_stats(prog, &ns0, &runs0, r->error, sizeof(r->error)) < 0)
			goto out;
		r->phase_rate[ph] = phase(&c, a->count);
		r->phase_on[ph] = on;
		r->phases = ph + 1;
		sum[on] += r->phase_rate[ph];
		n[on]++;
		if (on && prog_stats(prog, &ns1, &runs1, r->error, sizeof(r->error)) < 0)
			goto out;
		if (on) {
			r->ns += ns1 - ns0;
			r->runs += runs1 - runs0;
		}
	}
	ratios(r, sum, n);
	/* one more phase with a program that does nothing: the floor */
	empty = pass_prog();
	if (empty < 0 || attach(&c, empty) < 0 ||
	    prog_stats(empty, &ns0, &runs0, r->error, sizeof(r->error)) < 0) {
		if (!r->error[0])
			snprintf(r->error, sizeof(r->error), "the empty program: %s",
				 strerror(errno));
		goto out;
	}
	phase(&c, a->count);
	if (prog_stats(empty, &ns1, &runs1, r->error, sizeof(r->error)) < 0)
		goto out;
	r->empty_ns = ns1 - ns0;
	r->empty_runs = runs1 - runs0;
out:
	if (c.running) {
		atomic_store(&c.stop, true);
		pthread_join(c.th, NULL);
	}
	for (int i = 0; i < NSOCK; i++)
		if (c.srv[i] >= 0)
			close(c.srv[i]);
	if (c.cli >= 0)
		close(c.cli);
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
	if (prog >= 0)
		close(prog);
	if (empty >= 0)
		close(empty);
	if (stats >= 0)
		close(stats);
}

int udp_cost_run(int port, int phases, uint64_t count, struct udp_cost_result *r)
{
	struct cost_args *a = calloc(1, sizeof(*a));
	int err;

	memset(r, 0, sizeof(*r));
	if (!a)
		return -1;
	a->port = port;
	a->phases = phases;
	a->count = count;
	err = ub_in_child(cost_child, a, sizeof(*a), a->r.error, sizeof(a->r.error));
	*r = a->r;
	free(a);
	return err;
}
