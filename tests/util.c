// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The XDP ACK dropper of the tests, what the kernel can do, groups and
 * members, legacy drains, hand-off endpoints; see util.h. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ackdrop.skel.h"
#include "harness.h"
#include "sockmig.h"
#include "util.h"

struct ackdrop_bpf *tu_ackdrop_attach(int port)
{
	struct ackdrop_bpf *s = ackdrop_bpf__open();
	int ifindex = (int)if_nametoindex("lo");

	if (!s)
		return NULL;
	/* before the load: the globals' initial image, on every kernel */
	s->bss->port = (__u16)port;
	s->bss->enabled = 1;
	if (ackdrop_bpf__load(s) < 0 || bpf_xdp_attach(ifindex, bpf_program__fd(s->progs.ackdrop),
						       XDP_FLAGS_SKB_MODE, NULL) < 0) {
		ackdrop_bpf__destroy(s);
		return NULL;
	}
	return s;
}

/*
 * After the load the globals are mapped where the kernel can (5.5 and
 * later); before 5.5 libbpf leaves s->bss NULL and they are read and
 * written through their map, the whole value at once (a drop counted
 * between the read and the write of tu_ackdrop_set() is then lost from
 * the count, which no case asserts exactly).
 */
static void bss_read(struct ackdrop_bpf *s, struct ackdrop_bpf__bss *b)
{
	int zero = 0;

	memset(b, 0, sizeof(*b));
	if (s->bss)
		*b = *s->bss;
	else
		(void)bpf_map_lookup_elem(bpf_map__fd(s->maps.bss), &zero, b);
}

void tu_ackdrop_set(struct ackdrop_bpf *s, bool on)
{
	struct ackdrop_bpf__bss b;
	int zero = 0;

	if (s->bss) {
		s->bss->enabled = on;
		return;
	}
	bss_read(s, &b);
	b.enabled = on;
	(void)bpf_map_update_elem(bpf_map__fd(s->maps.bss), &zero, &b, BPF_ANY);
}

unsigned long long tu_ackdrop_dropped(struct ackdrop_bpf *s)
{
	struct ackdrop_bpf__bss b;

	bss_read(s, &b);
	return b.dropped;
}

void tu_ackdrop_detach(struct ackdrop_bpf *s)
{
	if (!s)
		return;
	bpf_xdp_detach((int)if_nametoindex("lo"), XDP_FLAGS_SKB_MODE, NULL);
	ackdrop_bpf__destroy(s);
}

bool tu_kernel_has_cap_bpf(void)
{
	return prctl(PR_CAPBSET_READ, CAP_BPF, 0, 0, 0) >= 0 || errno != EINVAL;
}

bool tu_kernel_has_pidfd_getfd(void)
{
	return syscall(SYS_pidfd_getfd, -1, 0, 0) >= 0 || errno != ENOSYS;
}

bool tu_kernel_migrates(char *why, size_t size)
{
	const char *mode = getenv("SOCKMIG_MODE");
	struct sockmig_probe p = {0};
	int err;

	/* what sockmig's commands and the shim take it to mean */
	if (mode && strcmp(mode, "legacy") == 0) {
		snprintf(why, size, "SOCKMIG_MODE=legacy");
		return false;
	}
	err = sockmig_probe(&p);
	if (err) {
		snprintf(why, size, "the probe failed: %s", strerror(-err));
		return false;
	}
	if (p.mode == SOCKMIG_MODE_NATIVE)
		return true;
	snprintf(why, size, "%s", p.reason);
	return false;
}

/* A process's life here: fork, exec and reap /bin/true, mean of 20. */
static double exec_ms(void)
{
	struct timespec t0, t1;
	int n = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 20; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		if (pid > 0 && waitpid(pid, NULL, 0) == pid)
			n++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return n ? ((double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) /
			       n
		 : 1e9;
}

bool tu_machine_too_slow(char *why, size_t size)
{
	double ms = exec_ms();

	if (ms <= SLOW_EXEC_MS)
		return false;
	snprintf(why, size,
		 "a process takes %.1f ms to start and end on this machine, over %d ms "
		 "(emulated?)",
		 ms, SLOW_EXEC_MS);
	return true;
}

/* ---- groups and members ---- */

/* Open a connection burst of n clients and count where they were queued:
 * per[i] += children accepted from lfds[i]. Returns the total accepted. */
/* Accept (and reset) what @n clients queued on @lfds, within 3 s: per[i]
 * counts those of lfds[i]; the total accepted. */
static int accept_all(const int *lfds, int nl, int n, int *per)
{
	unsigned long long end = burst_now_ms() + 3000;
	struct linger lg = {1, 0};
	int total = 0, fd;

	while (total < n && burst_now_ms() < end) {
		for (int i = 0; i < nl; i++) {
			while ((fd = accept4(lfds[i], NULL, NULL, SOCK_CLOEXEC)) >= 0) {
				setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
				close(fd);
				per[i]++;
				total++;
			}
		}
		if (total < n)
			burst_sleep_ms(1);
	}
	return total;
}

int tu_burst(int family, const int *lfds, int nl, int n, int *per)
{
	struct burst *c = calloc(1, sizeof(*c));
	int total = 0;

	if (!c)
		return -1;
	if (burst_start(c, family, TU_BURST_PORT, n, false) == 0 && burst_connected(c, 3000) == n)
		total = accept_all(lfds, nl, n, per);
	for (int k = 0; k < c->n; k++) {
		struct linger lg = {1, 0};

		if (c->fd[k] >= 0)
			setsockopt(c->fd[k], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	burst_close(c);
	free(c);
	return total;
}

int tu_burst_spread(const int *lfds, int nl, int n, int *per)
{
	static uint32_t next;
	struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(TU_BURST_PORT)};
	struct linger lg = {1, 0};
	int *fds = calloc((size_t)n, sizeof(*fds)), total;

	if (!fds)
		return -1;
	dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int k = 0; k < n; k++) {
		/* 127.1.0.1 on: a source of its own for each client of the run */
		uint32_t i = next++ % (250u * 250u * 250u);
		struct sockaddr_in src = {.sin_family = AF_INET};

		src.sin_addr.s_addr = htonl(0x7f000000u | (1 + i / 62500) << 16 |
					    (i / 250 % 250) << 8 | (1 + i % 250));
		fds[k] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fds[k] >= 0 && (bind(fds[k], (struct sockaddr *)&src, sizeof(src)) < 0 ||
				    (connect(fds[k], (struct sockaddr *)&dst, sizeof(dst)) < 0 &&
				     errno != EINPROGRESS))) {
			close(fds[k]);
			fds[k] = -1;
		}
	}
	total = accept_all(lfds, nl, n, per);
	for (int k = 0; k < n; k++) {
		if (fds[k] < 0)
			continue;
		setsockopt(fds[k], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fds[k]);
	}
	free(fds);
	return total;
}

int tu_add(struct sockmig_group *g, int fd, enum sockmig_role role, uint32_t gen, uint32_t weight)
{
	SOCKMIG_OPTS(sockmig_member_opts, o, .role = role, .generation = gen, .weight = weight);

	return sockmig_member_add(g, fd, &o);
}

int tu_set_role(struct sockmig_group *g, int fd, enum sockmig_role role)
{
	SOCKMIG_OPTS(sockmig_member_opts, o, .role = role);

	return sockmig_member_set(g, sockmig_cookie(fd), &o);
}

bool tu_group_settled(struct sockmig_group *g)
{
	int d = open(sockmig_group_path(g), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	bool got = false;

	for (int t = 0; d >= 0 && t < 500 && !got; t++) {
		got = flock(d, LOCK_EX | LOCK_NB) == 0;
		if (!got)
			burst_sleep_ms(10);
	}
	if (got)
		flock(d, LOCK_UN);
	if (d >= 0)
		close(d);
	return got;
}

uint64_t tu_steered(struct sockmig_group *g, int fd)
{
	struct sockmig_counters c = {0};

	sockmig_counters_read(g, sockmig_cookie(fd), &c);
	return c.steered;
}

void tu_cleanup(struct sockmig_group *g, int *fds, int n)
{
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* ---- legacy drains ---- */

int tu_sink_accept(int fd, void *ctx)
{
	struct tu_sink *s = ctx;
	int err = 0;

	pthread_mutex_lock(&s->mu);
	if (s->n < TU_SINK_MAX)
		s->fd[s->n++] = fd;
	else
		err = -ENOSPC;
	pthread_mutex_unlock(&s->mu);
	if (err)
		close(fd);
	return err;
}

/* Answer every connection of the sink (read BURST_REQUEST, write
 * BURST_REPLY, close). Returns how many were answered. */
int tu_sink_serve(struct tu_sink *s, int timeout_ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)timeout_ms;
	const int reqlen = (int)strlen(BURST_REQUEST);
	int *got = calloc((size_t)s->n + 1, sizeof(*got)), left = s->n, answered = 0;
	struct pollfd *p = calloc((size_t)s->n + 1, sizeof(*p));

	if (!got || !p)
		goto out;
	for (int i = 0; i < s->n; i++)
		fcntl(s->fd[i], F_SETFL, fcntl(s->fd[i], F_GETFL) | O_NONBLOCK);
	while (left > 0 && burst_now_ms() < end) {
		for (int i = 0; i < s->n; i++) {
			p[i].fd = s->fd[i];
			p[i].events = POLLIN;
			p[i].revents = 0;
		}
		if (poll(p, (nfds_t)s->n, 20) <= 0)
			continue;
		for (int i = 0; i < s->n; i++) {
			char buf[256];
			ssize_t n;

			if (s->fd[i] < 0 || !p[i].revents)
				continue;
			n = read(s->fd[i], buf, sizeof(buf));
			if (n > 0)
				got[i] += (int)n;
			if (n > 0 && got[i] >= reqlen &&
			    write(s->fd[i], BURST_REPLY, strlen(BURST_REPLY)) > 0)
				answered++;
			if (n == 0 || (n < 0 && errno != EAGAIN) || got[i] >= reqlen) {
				close(s->fd[i]);
				s->fd[i] = -1;
				left--;
			}
		}
	}
out:
	for (int i = 0; i < s->n; i++)
		if (s->fd[i] >= 0)
			close(s->fd[i]);
	s->n = 0;
	free(got);
	free(p);
	return answered;
}

struct sockmig_group *tu_open_legacy(int fd)
{
	SOCKMIG_OPTS(sockmig_group_opts, go, .policy = SOCKMIG_POLICY_LEGACY);
	struct sockmig_group *g = sockmig_group_open(fd, &go);

	if (g && sockmig_group_policy(g) != SOCKMIG_POLICY_LEGACY) {
		printf("group policy %s, expected legacy\n",
		       sockmig_policy_str(sockmig_group_policy(g)));
		sockmig_group_close(g);
		return NULL;
	}
	return g;
}

int tu_add_gen(struct sockmig_group *g, int fd, uint32_t gen)
{
	SOCKMIG_OPTS(sockmig_member_opts, o, .generation = gen);

	return sockmig_member_add(g, fd, &o);
}

void tu_legacy_report(const struct sockmig_legacy_drain_report *r)
{
	printf("drain: inflight_start %u queued_start %u late_syns %u accepted %llu refused %llu "
	       "abandoned %u deadline_hit %d deadline %u ms wait %.1f ms elapsed %.1f ms\n",
	       r->inflight_start, r->queued_start, r->late_syns, (unsigned long long)r->accepted,
	       (unsigned long long)r->refused, r->abandoned, r->deadline_hit, r->deadline_ms,
	       (double)r->wait_ns / 1e6, (double)r->elapsed_ns / 1e6);
}

static void *drain_thread(void *arg)
{
	struct tu_drain_job *j = arg;

	if (j->legacy)
		j->err = sockmig_member_drain_legacy(j->g, j->fd, &j->opts, &j->rep);
	else
		j->err = sockmig_member_drain(j->g, j->fd, NULL, &j->nrep);
	return NULL;
}

int tu_drain_start(struct tu_drain_job *j)
{
	int err = pthread_create(&j->th, NULL, drain_thread, j);

	return err ? -err : 0;
}

int tu_drain_join(struct tu_drain_job *j)
{
	pthread_join(j->th, NULL);
	if (j->legacy)
		tu_legacy_report(&j->rep);
	return j->err;
}

bool tu_listening(int fd)
{
	int val = 0;
	socklen_t len = sizeof(val);

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &val, &len) == 0 && val;
}

/* ---- hand-off endpoints ---- */

int tu_tcp_listener(int type, int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	int one = 1, s = socket(AF_INET, type | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0)
		return -1;
	if (setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(s, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    (type == SOCK_STREAM && listen(s, 128) < 0)) {
		close(s);
		return -1;
	}
	return s;
}

int tu_tcp_connect(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s >= 0 && connect(s, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(s);
		return -1;
	}
	return s;
}

/* One connection accepted from @a or @b, waiting up to 1 s. */
int tu_accept_either(int a, int b)
{
	struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};

	if (poll(p, b >= 0 ? 2 : 1, 1000) <= 0)
		return -1;
	return accept4(p[0].revents ? a : b, NULL, NULL, SOCK_CLOEXEC);
}

bool tu_handoff_open(struct tu_handoff *s)
{
	SOCKMIG_OPTS(sockmig_group_opts, go, .policy = SOCKMIG_POLICY_LEGACY);
	SOCKMIG_OPTS(sockmig_member_opts, m1, .generation = 1);
	SOCKMIG_OPTS(sockmig_member_opts, m2, .generation = 2);

	if (s->a < 0)
		s->a = tu_tcp_listener(SOCK_STREAM, TU_HANDOFF_PORT);
	if (!ASSERT_OK(s->a, "listener A"))
		return false;
	s->g = sockmig_group_open(s->a, &go);
	if (!ASSERT_TRUE(s->g != NULL, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_group_policy(s->g), SOCKMIG_POLICY_LEGACY, "legacy group") ||
	    !ASSERT_OK(sockmig_member_add(s->g, s->a, &m1), "add A"))
		return false;
	s->b = tu_tcp_listener(SOCK_STREAM, TU_HANDOFF_PORT);
	return ASSERT_OK(s->b, "listener B") &&
	       ASSERT_OK(sockmig_member_add(s->g, s->b, &m2), "add B");
}

void tu_handoff_close(struct tu_handoff *s)
{
	if (s->hfd >= 0)
		sockmig_handoff_close(s->hfd);
	if (s->g) {
		sockmig_group_destroy(s->g);
		sockmig_group_close(s->g);
	}
	if (s->a >= 0)
		close(s->a);
	if (s->b >= 0)
		close(s->b);
}

/* Every hand-off waiting at @hfd. */
void tu_recv_all(int hfd, struct tu_recv_count *rc)
{
	for (int i = 0; i < 64; i++) {
		struct sockaddr_in sin;
		socklen_t len = sizeof(sin);
		struct tcp_info ti;
		socklen_t tlen = sizeof(ti);
		int c = sockmig_handoff_recv(hfd);

		if (c == -EAGAIN)
			return;
		if (c == -EBADMSG)
			rc->refused++;
		else if (c == -EPERM)
			rc->perm++;
		if (c < 0)
			continue;
		if (getsockname(c, (struct sockaddr *)&sin, &len) == 0 &&
		    sin.sin_family == AF_INET && ntohs(sin.sin_port) == TU_HANDOFF_PORT &&
		    getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &tlen) == 0 &&
		    ti.tcpi_state == TCP_ESTABLISHED)
			rc->conn++;
		else
			rc->other++;
		close(c);
	}
}
