// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The UDP test rig of test_udp.c and test_udp_flows.c; see udp_rig.h.
 * Echo sockets (one per generation, SO_REUSEPORT on one port) served by
 * one thread, each answering with its own generation; clients, each a
 * connected UDP socket, send one datagram per round and read the answer.
 * A flow's owner is the generation that answered its first datagram; an
 * answer from any other generation afterwards is a misroute.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "udp_rig.h"

uint64_t ur_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *echo_thread(void *arg)
{
	struct ur_rig *r = arg;
	struct epoll_event ev[16];

	while (!atomic_load(&r->stop)) {
		int n = epoll_wait(r->ep, ev, 16, 50);

		for (int i = 0; i < n; i++) {
			int k = (int)ev[i].data.u32, fd = r->srv[k];
			struct sockaddr_storage from;
			socklen_t flen;
			struct ur_msg m;

			for (;;) {
				flen = sizeof(from);
				if (recvfrom(fd, &m, sizeof(m), 0, (struct sockaddr *)&from,
					     &flen) != sizeof(m))
					break;
				m.gen = r->gen[k];
				sendto(fd, &m, sizeof(m), 0, (struct sockaddr *)&from, flen);
			}
		}
	}
	return NULL;
}

/* One more echo socket of generation @gen, registered when the rig has a
 * group. Its index, or -1. */
int ur_add(struct ur_rig *r, uint32_t gen)
{
	int one = 1, buf = 8 << 20, k = atomic_load(&r->nsrv), fd;
	struct epoll_event ev = {.events = EPOLLIN};

	if (k >= UR_MAX_SOCK)
		return -1;
	fd = socket(r->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0 ||
	    bind(fd, (struct sockaddr *)&r->addr, r->alen) < 0) {
		printf("echo socket: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	r->srv[k] = fd;
	r->gen[k] = gen;
	ev.data.u32 = (uint32_t)k;
	if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close(fd);
		return -1;
	}
	atomic_store(&r->nsrv, k + 1);
	if (r->g) {
		SOCKMIG_OPTS(sockmig_udp_member_opts, mo, .generation = gen);
		int err = sockmig_udp_member_add(r->g, fd, &mo);

		if (err < 0) {
			printf("member_add: %s\n", sockmig_last_error());
			return -1;
		}
	}
	return k;
}

/* Close echo socket @k (between rounds: nothing in flight). */
int ur_two_generations(struct ur_rig *r, int old, int new)
{
	const char *failed = ur_add(r, 1) != 0			? "generation 1"
			     : ur_round(r, 0, old, 1) < 0	? "flows of generation 1"
			     : ur_add(r, 2) != 1		? "generation 2"
			     : ur_round(r, 0, old + new, 2) < 0 ? "flows of generation 2"
			     : r->lost || r->misrouted		? "unanswered or misrouted"
			     : sockmig_udp_generation_drain(r->g, 1) != 1 ? "drain generation 1"
									  : NULL;

	for (int i = 0; i < old + new && !failed; i++)
		if (r->first[i] != (i < old ? 1 : 2))
			failed = "a flow's owner";
	if (failed)
		printf("two generations: %s failed (%s)\n", failed, sockmig_last_error());
	return failed ? -1 : 0;
}

void ur_init(struct ur_rig *r)
{
	memset(r, 0, sizeof(*r));
	r->ep = r->cep = -1;
	for (int i = 0; i < UR_MAX_FLOWS; i++)
		r->cli[i] = -1;
}

void ur_close_sock(struct ur_rig *r, int k)
{
	epoll_ctl(r->ep, EPOLL_CTL_DEL, r->srv[k], NULL);
	close(r->srv[k]);
	r->srv[k] = -1;
}

/* Datagrams the kernel dropped for a full input backlog (netdev_max_backlog:
 * loopback queues every datagram there), all CPUs: the second column of
 * /proc/net/softnet_stat. */
unsigned long long ur_backlog_drops(void)
{
	FILE *f = fopen("/proc/net/softnet_stat", "r");
	unsigned long long sum = 0;
	unsigned int processed, dropped;
	char line[512];

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%x %x", &processed, &dropped) == 2)
			sum += dropped;
	if (f)
		fclose(f);
	return sum;
}

int ur_start(struct ur_rig *r, int family, bool sockmig, enum sockmig_udp_mode mode,
	     uint32_t idle_ms)
{
	memset(r, 0, sizeof(*r));
	r->drops0 = ur_backlog_drops();
	r->ep = -1;
	r->cep = epoll_create1(EPOLL_CLOEXEC);
	if (r->cep < 0)
		return -1;
	for (int i = 0; i < UR_MAX_FLOWS; i++) {
		r->cli[i] = -1;
		r->first[i] = r->last[i] = -1;
	}
	r->family = family;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&r->addr;

		a->sin_family = AF_INET;
		a->sin_port = htons(UR_PORT);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		r->alen = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&r->addr;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(UR_PORT);
		a->sin6_addr = in6addr_loopback;
		r->alen = sizeof(*a);
	}
	if (sockmig) {
		SOCKMIG_OPTS(sockmig_udp_group_opts, go, .mode = mode, .idle_timeout_ms = idle_ms);

		r->g = sockmig_udp_group_open((struct sockaddr *)&r->addr, r->alen, &go);
		if (!r->g) {
			printf("udp_group_open: %s\n", sockmig_last_error());
			return -1;
		}
	}
	r->ep = epoll_create1(EPOLL_CLOEXEC);
	if (r->ep < 0 || pthread_create(&r->th, NULL, echo_thread, r) != 0)
		return -1;
	r->running = true;
	return 0;
}

/* Raise RLIMIT_NOFILE to @need when it is lower (a boot without a login
 * leaves 1,024: the kernel matrix's guests); -EMFILE when not allowed. */
int ur_enough_fds(rlim_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
		return 0;
	rl.rlim_cur = need;
	if (rl.rlim_max < need)
		rl.rlim_max = need; /* needs CAP_SYS_RESOURCE */
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		return 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max >= need) {
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			return 0;
	}
	return -EMFILE;
}

void ur_stop(struct ur_rig *r)
{
	if (r->running) {
		atomic_store(&r->stop, true);
		pthread_join(r->th, NULL);
	}
	for (int i = 0; i < atomic_load(&r->nsrv); i++)
		if (r->srv[i] >= 0)
			close(r->srv[i]);
	for (int i = 0; i < UR_MAX_FLOWS; i++)
		if (r->cli[i] >= 0)
			close(r->cli[i]);
	if (r->ep >= 0)
		close(r->ep);
	if (r->cep >= 0)
		close(r->cep);
	if (r->g) {
		sockmig_udp_group_destroy(r->g);
		sockmig_udp_group_close(r->g);
	}
}

/* The unanswered datagrams that no backlog drop since the rig started
 * explains (the rig's own load can overflow the backlog on a slow machine:
 * 1,000 datagrams sent at once; that is loss on loopback, not routing). */
long ur_unexplained_lost(struct ur_rig *r)
{
	unsigned long long drops = ur_backlog_drops() - r->drops0;

	if (r->lost)
		printf("%ld datagrams unanswered, %llu dropped by the input backlog meanwhile\n",
		       r->lost, drops);
	return r->lost > (long)drops ? r->lost - (long)drops : 0;
}

/* Client @i's socket, connected to the rig's address (made on first use). */
static int client(struct ur_rig *r, int i)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};

	if (r->cli[i] >= 0)
		return r->cli[i];
	r->cli[i] = socket(r->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (r->cli[i] >= 0 && (connect(r->cli[i], (struct sockaddr *)&r->addr, r->alen) < 0 ||
			       epoll_ctl(r->cep, EPOLL_CTL_ADD, r->cli[i], &ev) < 0)) {
		close(r->cli[i]);
		r->cli[i] = -1;
	}
	return r->cli[i];
}

/* One datagram from each flow in [from, to), then every answer (within
 * 5 s): the owner recorded at a flow's first answer, misroutes counted. */
int ur_round(struct ur_rig *r, int from, int to, uint32_t seq)
{
	struct epoll_event ev[256];
	int waiting = 0;
	uint64_t end;

	for (int i = from; i < to; i++) {
		struct ur_msg m = {.flow = (uint32_t)i, .seq = seq};
		int fd = client(r, i);

		if (fd < 0 || send(fd, &m, sizeof(m), 0) != sizeof(m)) {
			printf("client %d: %s\n", i, strerror(errno));
			return -1;
		}
		r->sent++;
		waiting++;
	}
	end = ur_now_ms() + 5000;
	while (waiting > 0 && ur_now_ms() < end) {
		int n = epoll_wait(r->cep, ev, 256, 100);

		for (int j = 0; j < n; j++) {
			int i = (int)ev[j].data.u32;
			struct ur_msg m;

			while (recv(r->cli[i], &m, sizeof(m), 0) == sizeof(m)) {
				/* an answer of an earlier round came late: lost then */
				if (m.seq != seq || r->got[i] == seq || i < from || i >= to)
					continue;
				r->got[i] = seq;
				waiting--;
				r->answered++;
				if (r->first[i] < 0)
					r->first[i] = (int)m.gen;
				else if ((int)m.gen != r->first[i])
					r->misrouted++;
				r->last[i] = (int)m.gen;
			}
		}
	}
	r->lost += waiting;
	return 0;
}

/* The group's table holds, per generation, the flows whose first answer
 * came from it (and no other): 0 or -1. */
int ur_flows_match(struct ur_rig *r)
{
	struct sockmig_udp_flow_count fc[UR_MAX_SOCK];
	long want[UR_MAX_SOCK + 2] = {0}, total = 0;
	int n = sockmig_udp_flows(r->g, fc, UR_MAX_SOCK);

	for (int i = 0; i < UR_MAX_FLOWS; i++)
		if (r->first[i] >= 0 && r->first[i] < UR_MAX_SOCK + 2)
			want[r->first[i]]++;
	if (n < 0 || n > UR_MAX_SOCK) {
		printf("sockmig_udp_flows: %d\n", n);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (fc[i].generation >= UR_MAX_SOCK + 2 ||
		    (long)fc[i].flows != want[fc[i].generation]) {
			printf("generation %u: %llu flows in the table, %ld answered by it first\n",
			       fc[i].generation, (unsigned long long)fc[i].flows,
			       fc[i].generation < UR_MAX_SOCK + 2 ? want[fc[i].generation] : -1L);
			return -1;
		}
		total += (long)fc[i].flows;
		if (i && fc[i].generation <= fc[i - 1].generation) {
			printf("generations out of order\n");
			return -1;
		}
	}
	for (int i = 0; i < UR_MAX_SOCK + 2; i++)
		total -= want[i];
	if (total) {
		printf("%ld flows answered first by a generation the table does not list\n",
		       -total);
		return -1;
	}
	return 0;
}
