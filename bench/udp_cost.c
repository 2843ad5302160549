// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig bench udp-cost: the packet rate of one flow at a UDP group of
 * two sockets, with no program (the kernel's hash) and with the group's
 * program (mode flow, quic-lb or none), in pairs of phases; and the
 * program's run time per datagram from the kernel's BPF statistics (see
 * udp_bench.h). In mode quic-lb every datagram is a QUIC short-header
 * packet to a connection ID minted for the first socket. With echo, the
 * group's reader sends each datagram back to the client, which keeps at most
 * UDP_COST_ECHO_WINDOW unanswered: the rate is then of round trips, as a UDP echo
 * or DNS server's (the program runs on the way in only). With senders,
 * the program's run time also with that many senders at once, one per CPU.
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

#define NSOCK	     2
#define WINDOW	     2048	    /* datagrams sent and not read yet, at most */
#define QUIET_NS     1000000000ull  /* a phase with nothing done this long ends */
#define PHASE_MAX_NS 60000000000ull /* a phase's time, at most */
#define BATCH	     64

struct cost {
	struct udp_cost_result *r;
	int srv[NSOCK];
	int cli;
	struct sockaddr_in addr; /* the group's */
	uint8_t d[64];		 /* the datagram sent */
	size_t dlen;
	pthread_t th;
	bool running, echo;
	atomic_bool stop;
	atomic_ullong received;
	uint64_t replied; /* echo: answers the client read (its thread only) */
};

static void *reader(void *arg)
{
	struct cost *c = arg;
	struct pollfd p[NSOCK];
	char buf[BATCH][64];
	struct sockaddr_in from[BATCH];
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];

	memset(m, 0, sizeof(m));
	for (int i = 0; i < BATCH; i++) {
		iov[i].iov_base = buf[i];
		m[i].msg_hdr.msg_iov = &iov[i];
		m[i].msg_hdr.msg_iovlen = 1;
		if (c->echo)
			m[i].msg_hdr.msg_name = &from[i];
	}
	for (int i = 0; i < NSOCK; i++)
		p[i] = (struct pollfd){.fd = c->srv[i], .events = POLLIN};
	while (!atomic_load(&c->stop)) {
		if (poll(p, NSOCK, 20) <= 0)
			continue;
		for (int i = 0; i < NSOCK; i++) {
			int n;

			for (;;) {
				for (int j = 0; j < BATCH; j++) {
					iov[j].iov_len = sizeof(buf[j]);
					m[j].msg_hdr.msg_namelen = c->echo ? sizeof(from[j]) : 0;
				}
				n = recvmmsg(c->srv[i], m, BATCH, MSG_DONTWAIT, NULL);
				if (n <= 0)
					break;
				atomic_fetch_add_explicit(&c->received, (unsigned long long)n,
							  memory_order_relaxed);
				if (!c->echo)
					continue;
				/* each one back to its sender, as it came */
				for (int j = 0; j < n; j++)
					iov[j].iov_len = m[j].msg_len;
				for (int sent = 0, k; sent < n; sent += k) {
					k = sendmmsg(c->srv[i], m + sent, (unsigned)(n - sent), 0);
					if (k <= 0)
						break; /* the client's count shows it lost */
				}
			}
		}
	}
	return NULL;
}

/* Echo: read the answers waiting at the client, waiting up to @wait_ms
 * for one when @wait_ms > 0. How many were read. */
static uint64_t read_answers(struct cost *c, int wait_ms)
{
	char buf[BATCH][64];
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	uint64_t got = 0;
	int n;

	if (wait_ms > 0) {
		struct pollfd p = {.fd = c->cli, .events = POLLIN};

		if (poll(&p, 1, wait_ms) <= 0)
			return 0;
	}
	memset(m, 0, sizeof(m));
	for (int i = 0; i < BATCH; i++) {
		iov[i].iov_base = buf[i];
		iov[i].iov_len = sizeof(buf[i]);
		m[i].msg_hdr.msg_iov = &iov[i];
		m[i].msg_hdr.msg_iovlen = 1;
	}
	while ((n = recvmmsg(c->cli, m, BATCH, MSG_DONTWAIT, NULL)) > 0) {
		got += (uint64_t)n;
		if (n < BATCH)
			break;
	}
	c->replied += got;
	return got;
}

/* What a phase counts as done since @base, at most @sent: datagrams the
 * group read, or with echo the answers the client read. (A late one of
 * the phase before may count here: never more than were sent.) */
static uint64_t done_since(struct cost *c, uint64_t base, uint64_t sent)
{
	uint64_t d =
		(c->echo ? c->replied : atomic_load_explicit(&c->received, memory_order_relaxed)) -
		base;

	return d < sent ? d : sent;
}

/* One phase: @count datagrams, at most WINDOW unread (UDP_COST_ECHO_WINDOW
 * unanswered with echo: the client reads the answers, in batches, when its
 * window is full or all is sent); those done (read, or answered) into
 * *@done, in *@secs; the others added to r->lost. A phase lasts a minute at
 * most, and ends when nothing is done for QUIET_NS (datagrams lost, or no
 * answers): its time then ends at the last one done. */
static void phase(struct cost *c, uint64_t count, double *done, double *secs)
{
	uint64_t base = c->echo ? c->replied : atomic_load(&c->received);
	uint64_t window = c->echo ? UDP_COST_ECHO_WINDOW : WINDOW;
	uint64_t sent = 0, last = 0, t0 = ub_now_ns(), now = t0, quiet = t0;
	bool silent = false;

	for (uint64_t i = 0;; i++) {
		uint64_t got = done_since(c, base, sent);

		if (sent < count && sent - got < window) {
			if (send(c->cli, c->d, c->dlen, 0) == (ssize_t)c->dlen)
				sent++;
			else
				sched_yield();
			if (!(i % 1024) && ub_now_ns() - t0 > PHASE_MAX_NS)
				break;
			continue;
		}
		if (got == sent)
			break; /* all sent, all done */
		/* the window full, or all sent: wait for what is in flight */
		if (c->echo)
			read_answers(c, 10);
		else
			sched_yield();
		now = ub_now_ns();
		got = done_since(c, base, sent);
		if (got != last) {
			last = got;
			quiet = now;
		} else if (now - quiet > QUIET_NS) {
			silent = true;
			break;
		}
		if (now - t0 > PHASE_MAX_NS)
			break;
	}
	*done = (double)done_since(c, base, sent);
	c->r->lost += sent - done_since(c, base, sent);
	*secs = (double)((silent ? quiet : ub_now_ns()) - t0) / 1e9;
}

/* The kernel's BPF run-time statistics, on while the fd returned is open;
 * -1 with r->error set. */
static int stats_on(struct udp_cost_result *r)
{
	int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);

	if (fd < 0)
		snprintf(r->error, sizeof(r->error),
			 "cannot enable the kernel's BPF run-time statistics: %s (needs "
			 "CAP_SYS_ADMIN and Linux 5.8 or later)",
			 strerror(errno));
	return fd;
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

/* One phase of @count datagrams with the reference program @prog
 * attached: its run time and runs added to *@ns and *@runs. */
static int ref_phase(struct cost *c, int prog, uint64_t count, uint64_t *ns, uint64_t *runs)
{
	struct prog_stats s0, s1;
	double done, secs;

	if (ph_prog_stats(prog, &s0, c->r->error, sizeof(c->r->error)) < 0)
		return -1;
	if (attach(c, prog) < 0) {
		snprintf(c->r->error, sizeof(c->r->error), "cannot attach a reference program: %s",
			 strerror(errno));
		return -1;
	}
	phase(c, count, &done, &secs);
	if (ph_prog_stats(prog, &s1, c->r->error, sizeof(c->r->error)) < 0)
		return -1;
	*ns += s1.ns - s0.ns;
	*runs += s1.runs - s0.runs;
	return 0;
}

/* A sender of the contended phase. */
struct sender {
	const struct cost *c;
	int cpu, err; /* err: the first errno of its socket or sends */
	uint64_t count, sent;
};

static void *sender(void *arg)
{
	struct sender *s = arg;
	cpu_set_t set;
	int fd;

	CPU_ZERO(&set);
	CPU_SET(s->cpu, &set);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (const struct sockaddr *)&s->c->addr, sizeof(s->c->addr)) < 0) {
		s->err = errno;
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	for (uint64_t i = 0; i < s->count; i++) {
		if (send(fd, s->c->d, s->c->dlen, 0) == (ssize_t)s->c->dlen)
			s->sent++;
		else if (!s->err)
			s->err = errno;
	}
	close(fd);
	return NULL;
}

/* Until the reader has read what the sockets still queue: nothing read
 * for 50 ms (2 s at most). */
static void settle(struct cost *c)
{
	unsigned long long last = atomic_load(&c->received), now;

	for (int i = 0, still = 0; i < 200 && still < 5; i++) {
		usleep(10000);
		now = atomic_load(&c->received);
		still = now == last ? still + 1 : 0;
		last = now;
	}
}

/* The group's program @prog under @n senders at once (udp_bench.h). */
static int contended_phase(struct cost *c, int prog, uint64_t count, int n)
{
	struct udp_cost_result *r = c->r;
	struct sender s[UDP_COST_SENDERS_MAX];
	pthread_t th[UDP_COST_SENDERS_MAX];
	int cpus[UDP_COST_SENDERS_MAX], ncpu = 0, started = 0;
	struct prog_stats s0, s1;
	cpu_set_t allowed;

	CPU_ZERO(&allowed);
	if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
		CPU_SET(0, &allowed);
	for (int i = 0; i < CPU_SETSIZE && ncpu < n; i++)
		if (CPU_ISSET(i, &allowed))
			cpus[ncpu++] = i;
	r->con_cpus = ncpu;
	if (ph_prog_stats(prog, &s0, r->error, sizeof(r->error)) < 0)
		return -1;
	if (attach(c, prog) < 0) {
		snprintf(r->error, sizeof(r->error), "cannot attach the program: %s",
			 strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		/* the phase's count between them, the first ones one more */
		s[i] = (struct sender){c, cpus[i % ncpu], 0,
				       count / (uint64_t)n + ((uint64_t)i < count % (uint64_t)n),
				       0};
		if (pthread_create(&th[i], NULL, sender, &s[i]) != 0)
			break;
		started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		r->con_sent += s[i].sent;
	}
	settle(c);
	if (started < n) {
		snprintf(r->error, sizeof(r->error), "cannot start sender %d of %d", started + 1,
			 n);
		return -1;
	}
	for (int i = 0; i < n; i++)
		if (s[i].err) {
			snprintf(r->error, sizeof(r->error), "sender %d: %s (%llu of %llu sent)",
				 i + 1, strerror(s[i].err), (unsigned long long)s[i].sent,
				 (unsigned long long)s[i].count);
			return -1;
		}
	if (ph_prog_stats(prog, &s1, r->error, sizeof(r->error)) < 0)
		return -1;
	r->con_ns = s1.ns - s0.ns;
	r->con_runs = s1.runs - s0.runs;
	return 0;
}

struct cost_args {
	struct udp_cost_result r;
	int port, phases, mode, senders;
	uint32_t cid_len; /* mode quic-lb: the group's CID length (0: its default) */
	uint64_t count;
	uint8_t key[16]; /* mode quic-lb: encrypted CIDs when has_key */
	bool has_key, echo;
};

/* The datagram of the run: in mode quic-lb a short-header packet (first
 * octet, then a CID of the first socket's, then 24 octets of packet number
 * and payload); else 16 octets of text. */
static int cost_datagram(struct cost *c, struct sockmig_udp_group *g, int mode)
{
	int n;

	memset(c->d, 0, sizeof(c->d));
	if (mode != SOCKMIG_UDP_MODE_QUIC_LB) {
		memcpy(c->d, "udp-cost", 8);
		c->dlen = 16;
		return 0;
	}
	c->d[0] = 0x40; /* short header: form 0, fixed bit */
	n = sockmig_quic_cid_encode(g, c->srv[0], c->d + 1, sizeof(c->d) - 1 - 24);
	if (n < 0) {
		snprintf(c->r->error, sizeof(c->r->error), "cannot mint a connection ID: %s",
			 strerror(-n));
		return -1;
	}
	memset(c->d + 1 + n, 0x5a, 24);
	c->dlen = 1 + (size_t)n + 24;
	return 0;
}

static void cost_child(void *arg)
{
	struct cost_args *a = arg;
	struct udp_cost_result *r = &a->r;
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .pin_root = ub_pin_root(),
		     .mode = (enum sockmig_udp_mode)a->mode, .quic_cid_len = a->cid_len,
		     .quic_key = a->has_key ? a->key : NULL);
	SOCKMIG_OPTS(sockmig_udp_member_opts, mo, .generation = 1);
	struct sockaddr_in addr = {.sin_family = AF_INET};
	struct sockmig_udp_group *g = NULL;
	struct cost c = {.r = r, .srv = {-1, -1}, .cli = -1, .echo = a->echo};
	int stats = -1, prog = -1, empty = -1, sel = -1;
	uint64_t lost;
	struct sockmig_udp_stats gs;
	struct prog_stats s0, s1;
	uint64_t on_phases = 0;
	struct sockmig_quic_stats qs = {0};
	double done, secs;
	char pin[4200];

	if (ub_netns_setup(64, r->error, sizeof(r->error)) < 0)
		return;
	/* the statistics cost every run of any program two clock reads: on
	 * only for the run-time phases at the end, not under the rates. Tried
	 * here, so that a refusal comes before any work */
	r->stats_were_on = ph_stats_on();
	stats = stats_on(r);
	if (stats < 0)
		return;
	close(stats);
	stats = -1;
	addr.sin_port = htons((uint16_t)a->port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c.addr = addr;
	g = sockmig_udp_group_open((struct sockaddr *)&addr, sizeof(addr), &go);
	explicit_bzero(a->key, sizeof(a->key)); /* read: the group keeps its round keys */
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
	if (cost_datagram(&c, g, a->mode) < 0)
		goto out;
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
	phase(&c, a->count, &done, &secs);
	r->ph.warmup_rate = secs > 0 ? done / secs : 0;
	/* the program's runs counted in the rate phases: none unless
	 * something else has the statistics on */
	if (ph_prog_stats(prog, &s0, r->error, sizeof(r->error)) < 0)
		goto out;
	for (int ph = 0; ph < a->phases && ph < PH_MAX; ph++) {
		bool on = ph_on(ph);

		if (attach(&c, on ? prog : -1) < 0 && on) {
			snprintf(r->error, sizeof(r->error), "cannot attach the program: %s",
				 strerror(errno));
			goto out;
		}
		phase(&c, a->count, &done, &secs);
		ph_record(&r->ph, ph, done, secs);
		on_phases += on;
	}
	ph_finish(&r->ph);
	if (ph_prog_stats(prog, &s1, r->error, sizeof(r->error)) < 0)
		goto out;
	r->rate_runs = s1.runs - s0.runs;
	r->stats_were_on = r->stats_were_on || r->rate_runs > 0;
	if (sockmig_udp_stats_read(g, &gs) < 0 ||
	    (a->mode == SOCKMIG_UDP_MODE_QUIC_LB && sockmig_quic_stats_read(g, &qs) < 0)) {
		snprintf(r->error, sizeof(r->error), "cannot read the group's counters: %s",
			 sockmig_last_error());
		goto out;
	}
	r->flow_hits = gs.flow_hits;
	r->quic_hits = qs.hits;
	/* the run times, statistics on: the group's program over as many
	 * datagrams as its rate phases had, then the reference programs */
	stats = stats_on(r);
	if (stats < 0 || ref_phase(&c, prog, a->count * on_phases, &r->ns, &r->runs) < 0)
		goto out;
	r->senders = a->senders;
	if (a->senders > 1 && contended_phase(&c, prog, a->count, a->senders) < 0)
		goto out;
	/* one more phase with a program that does nothing: the floor */
	empty = ph_empty_prog(r->error, sizeof(r->error));
	if (empty < 0 || ref_phase(&c, empty, a->count, &r->empty_ns, &r->empty_runs) < 0)
		goto out;
	/* and one with the least steering program, over the same sockets out
	 * of the group (a socket is in one socket array at most) */
	for (int i = 0; i < NSOCK; i++)
		if (sockmig_udp_member_leave(g, c.srv[i]) < 0) {
			snprintf(r->error, sizeof(r->error), "cannot take a socket out: %s",
				 sockmig_last_error());
			goto out;
		}
	sel = ph_select_prog(c.srv, NSOCK, r->error, sizeof(r->error));
	lost = r->lost;
	if (sel < 0 || ref_phase(&c, sel, a->count, &r->sel_ns, &r->sel_runs) < 0)
		goto out;
	r->sel_lost = r->lost - lost;
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
	if (sel >= 0)
		close(sel);
	if (stats >= 0)
		close(stats);
}

int udp_cost_run(int port, int phases, uint64_t count, int mode, uint32_t cid_len,
		 const uint8_t *key, bool echo, int senders, struct udp_cost_result *r)
{
	struct cost_args *a = calloc(1, sizeof(*a));
	int err;

	memset(r, 0, sizeof(*r));
	if (!a)
		return -1;
	a->port = port;
	a->phases = phases;
	a->count = count;
	a->mode = mode;
	a->cid_len = cid_len;
	a->echo = echo;
	a->senders = senders;
	if (key) {
		memcpy(a->key, key, sizeof(a->key));
		a->has_key = true;
	}
	err = ub_in_child(cost_child, a, sizeof(*a), a->r.error, sizeof(a->r.error));
	explicit_bzero(a->key, sizeof(a->key));
	*r = a->r;
	free(a);
	return err;
}
