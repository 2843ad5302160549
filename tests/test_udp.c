// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups (lib/udp.c, bpf/udp.bpf.c): established flows stay with the
 * socket that took their first datagram across generation flips, new flows
 * go to the working generation, a closed owner's flows fall to it, idle
 * flows expire; with the baselines that must fail (plain SO_REUSEPORT, and
 * the stateless mode). Loopback, each case in its own network namespace.
 *
 * The rig: echo sockets (one per generation, SO_REUSEPORT on one port)
 * served by one thread, each answering with its own generation; NFLOWS
 * clients, each a connected UDP socket, send one datagram per round and
 * read the answer. A flow's owner is the generation that answered its
 * first datagram; an answer from any other generation afterwards is a
 * misroute.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"

#define PORT	  34600
#define NFLOWS	  1000
#define MAX_FLOWS 2000
#define MAX_SOCK  128
#define FLIPS	  60

struct msg {
	uint32_t flow;
	uint32_t seq;
	uint32_t gen; /* the answer's */
};

struct rig {
	int family;
	struct sockaddr_storage addr;
	socklen_t alen;
	struct sockmig_udp_group *g; /* NULL: plain SO_REUSEPORT */
	int ep;			     /* the echo thread's epoll */
	int srv[MAX_SOCK];
	uint32_t gen[MAX_SOCK];
	atomic_int nsrv;
	atomic_bool stop;
	pthread_t th;
	bool running;
	/* clients */
	int cep; /* their epoll (data: the flow) */
	int cli[MAX_FLOWS];
	uint32_t got[MAX_FLOWS]; /* seq of the latest answer */
	int first[MAX_FLOWS];	 /* generation of the first answer, -1 before */
	int last[MAX_FLOWS];	 /* generation of the latest answer */
	long sent, answered, misrouted, lost;
	unsigned long long drops0; /* softnet backlog drops at the start */
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *echo_thread(void *arg)
{
	struct rig *r = arg;
	struct epoll_event ev[16];

	while (!atomic_load(&r->stop)) {
		int n = epoll_wait(r->ep, ev, 16, 50);

		for (int i = 0; i < n; i++) {
			int k = (int)ev[i].data.u32, fd = r->srv[k];
			struct sockaddr_storage from;
			socklen_t flen;
			struct msg m;

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
static int rig_add(struct rig *r, uint32_t gen)
{
	int one = 1, buf = 8 << 20, k = atomic_load(&r->nsrv), fd;
	struct epoll_event ev = {.events = EPOLLIN};

	if (k >= MAX_SOCK)
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
static void rig_close_sock(struct rig *r, int k)
{
	epoll_ctl(r->ep, EPOLL_CTL_DEL, r->srv[k], NULL);
	close(r->srv[k]);
	r->srv[k] = -1;
}

/* Datagrams the kernel dropped for a full input backlog (netdev_max_backlog:
 * loopback queues every datagram there), all CPUs: the second column of
 * /proc/net/softnet_stat. */
static unsigned long long backlog_drops(void)
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

static int rig_start(struct rig *r, int family, bool sockmig, enum sockmig_udp_mode mode,
		     uint32_t idle_ms)
{
	memset(r, 0, sizeof(*r));
	r->drops0 = backlog_drops();
	r->ep = -1;
	r->cep = epoll_create1(EPOLL_CLOEXEC);
	if (r->cep < 0)
		return -1;
	for (int i = 0; i < MAX_FLOWS; i++) {
		r->cli[i] = -1;
		r->first[i] = r->last[i] = -1;
	}
	r->family = family;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&r->addr;

		a->sin_family = AF_INET;
		a->sin_port = htons(PORT);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		r->alen = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&r->addr;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(PORT);
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

/* Fds a case with @flows clients needs: theirs, the echo sockets', the
 * runner's and the library's. */
#define FDS_NEEDED(flows) ((flows) + MAX_SOCK + 64)

/* Raise RLIMIT_NOFILE to @need when it is lower (a boot without a login
 * leaves 1,024: the kernel matrix's guests); -EMFILE when not allowed. */
static int enough_fds(rlim_t need)
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

/* rig_start() in a case (with its ret and out:), which skips when the fd
 * limit cannot cover @flows clients. */
#define RIG_START(flows, r, ...)                                                                   \
	({                                                                                         \
		int rc_ = rig_start(r, __VA_ARGS__);                                               \
		if (rc_ == 0 && enough_fds(FDS_NEEDED(flows)) < 0) {                               \
			ret = SKIP("RLIMIT_NOFILE is below %d and may not be raised here",         \
				   FDS_NEEDED(flows));                                             \
			goto out;                                                                  \
		}                                                                                  \
		rc_;                                                                               \
	})

static void rig_stop(struct rig *r)
{
	if (r->running) {
		atomic_store(&r->stop, true);
		pthread_join(r->th, NULL);
	}
	for (int i = 0; i < atomic_load(&r->nsrv); i++)
		if (r->srv[i] >= 0)
			close(r->srv[i]);
	for (int i = 0; i < MAX_FLOWS; i++)
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
static long unexplained_lost(struct rig *r)
{
	unsigned long long drops = backlog_drops() - r->drops0;

	if (r->lost)
		printf("%ld datagrams unanswered, %llu dropped by the input backlog meanwhile\n",
		       r->lost, drops);
	return r->lost > (long)drops ? r->lost - (long)drops : 0;
}

/* Client @i's socket, connected to the rig's address (made on first use). */
static int client(struct rig *r, int i)
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
static int rig_round(struct rig *r, int from, int to, uint32_t seq)
{
	struct epoll_event ev[256];
	int waiting = 0;
	uint64_t end;

	for (int i = from; i < to; i++) {
		struct msg m = {.flow = (uint32_t)i, .seq = seq};
		int fd = client(r, i);

		if (fd < 0 || send(fd, &m, sizeof(m), 0) != sizeof(m)) {
			printf("client %d: %s\n", i, strerror(errno));
			return -1;
		}
		r->sent++;
		waiting++;
	}
	end = now_ms() + 5000;
	while (waiting > 0 && now_ms() < end) {
		int n = epoll_wait(r->cep, ev, 256, 100);

		for (int j = 0; j < n; j++) {
			int i = (int)ev[j].data.u32;
			struct msg m;

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

static long udp_rcvbuf_errors(void)
{
	char line[1024], names[1024] = "";
	FILE *f = fopen("/proc/thread-self/net/snmp", "r");
	long v = -1;

	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Udp: ", 5) != 0)
			continue;
		if (!names[0]) {
			snprintf(names, sizeof(names), "%s", line);
			continue;
		}
		/* the value under "RcvbufErrors" */
		char *n = names, *val = line, *sn, *sv;
		char *tn = strtok_r(n, " \n", &sn), *tv = strtok_r(val, " \n", &sv);

		while (tn && tv) {
			if (strcmp(tn, "RcvbufErrors") == 0)
				v = atol(tv);
			tn = strtok_r(NULL, " \n", &sn);
			tv = strtok_r(NULL, " \n", &sv);
		}
		break;
	}
	if (f)
		fclose(f);
	return v;
}

/* ---- 1,000 flows across 60 flips, 40 of them with every flow started ---- */

struct flipper {
	struct rig *r;
	atomic_int rounds; /* rounds the clients finished */
	atomic_int flips;
	atomic_bool failed, stop;
};

/* Flip i (a socket of generation i + 2 joins, and is registered when the
 * rig has a group) once the clients have finished 2 (i + 1) rounds: every
 * flow sends between two flips, and a flip happens while a round is in
 * flight, whatever the speed of the machine. */
static void *flip_thread(void *arg)
{
	struct flipper *f = arg;
	struct timespec nap = {0, 200000};

	for (int i = 0; i < FLIPS && !atomic_load(&f->stop); i++) {
		while (atomic_load(&f->rounds) < 2 * (i + 1) && !atomic_load(&f->stop))
			nanosleep(&nap, NULL);
		if (atomic_load(&f->stop))
			break;
		if (rig_add(f->r, (uint32_t)i + 2) < 0) {
			atomic_store(&f->failed, true);
			break;
		}
		atomic_fetch_add(&f->flips, 1);
	}
	return NULL;
}

/*
 * Flows start over the first 20 flips (NFLOWS / 20 after each) and send
 * one datagram per round until two rounds after the last flip (at least
 * 2 * FLIPS + 2 rounds). The number of answers from a generation other
 * than the flow's owner; -1 when the run itself failed.
 */
static long flip_run(struct rig *r, long *rounds)
{
	struct flipper f = {.r = r};
	pthread_t th;
	int after = 0, started;
	uint32_t seq = 0;
	uint64_t end = now_ms() + 40000;

	if (rig_add(r, 1) < 0 || pthread_create(&th, NULL, flip_thread, &f) != 0)
		return -1;
	while (after < 2 && now_ms() < end) {
		int done = atomic_load(&f.flips);

		started = (done + 1) * (NFLOWS / 20);
		if (started > NFLOWS)
			started = NFLOWS;
		if (rig_round(r, 0, started, ++seq) < 0)
			break;
		atomic_fetch_add(&f.rounds, 1);
		if (done == FLIPS || atomic_load(&f.failed))
			after++;
	}
	atomic_store(&f.stop, true);
	pthread_join(th, NULL);
	*rounds = seq;
	if (atomic_load(&f.failed) || atomic_load(&f.flips) != FLIPS || after < 2)
		return -1;
	return r->misrouted;
}

/* The group's table holds, per generation, the flows whose first answer
 * came from it (and no other): 0 or -1. */
static int flows_match(struct rig *r)
{
	struct sockmig_udp_flow_count fc[MAX_SOCK];
	long want[MAX_SOCK + 2] = {0}, total = 0;
	int n = sockmig_udp_flows(r->g, fc, MAX_SOCK);

	for (int i = 0; i < MAX_FLOWS; i++)
		if (r->first[i] >= 0 && r->first[i] < MAX_SOCK + 2)
			want[r->first[i]]++;
	if (n < 0 || n > MAX_SOCK) {
		printf("sockmig_udp_flows: %d\n", n);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (fc[i].generation >= MAX_SOCK + 2 ||
		    (long)fc[i].flows != want[fc[i].generation]) {
			printf("generation %u: %llu flows in the table, %ld answered by it first\n",
			       fc[i].generation, (unsigned long long)fc[i].flows,
			       fc[i].generation < MAX_SOCK + 2 ? want[fc[i].generation] : -1L);
			return -1;
		}
		total += (long)fc[i].flows;
		if (i && fc[i].generation <= fc[i - 1].generation) {
			printf("generations out of order\n");
			return -1;
		}
	}
	for (int i = 0; i < MAX_SOCK + 2; i++)
		total -= want[i];
	if (total) {
		printf("%ld flows answered first by a generation the table does not list\n",
		       -total);
		return -1;
	}
	return 0;
}

SM_TEST(udp_flips_flow_mode_keeps_every_flow_with_its_owner)
{
	struct sockmig_udp_stats st;
	struct rig r;
	long mis, rounds = 0, gens = 0;
	int ret = SM_FAIL;
	bool seen[FLIPS + 2] = {false};

	if (!ASSERT_OK(RIG_START(NFLOWS, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 0), "rig"))
		goto out;
	mis = flip_run(&r, &rounds);
	printf("rounds %ld, sent %ld, answered %ld, lost %ld, misrouted %ld\n", rounds, r.sent,
	       r.answered, r.lost, mis);
	for (int i = 0; i < NFLOWS; i++)
		if (r.first[i] > 0 && r.first[i] < FLIPS + 2)
			seen[r.first[i]] = true;
	for (int i = 0; i < FLIPS + 2; i++)
		gens += seen[i];
	if (!ASSERT_OK(mis, "run") || !ASSERT_EQ(mis, 0, "answers from a non-owning generation") ||
	    !ASSERT_EQ(unexplained_lost(&r), 0, "datagrams unanswered") ||
	    !ASSERT_GT(rounds, 2 * FLIPS, "rounds (datagrams per flow)") ||
	    /* owners spread over the generations that were working when flows started */
	    !ASSERT_GT(gens, 15, "generations owning flows") ||
	    !ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    !ASSERT_EQ(st.new_flows, NFLOWS, "new flows") ||
	    !ASSERT_EQ(st.new_flows + st.flow_hits, r.sent, "every datagram a new flow or a hit") ||
	    !ASSERT_EQ(st.fallbacks + st.expired + st.kernel_hash + st.not_learned +
			       st.parse_failed,
		       0, "no other path") ||
	    !ASSERT_EQ(st.working_generation, FLIPS + 1, "working generation") ||
	    !ASSERT_EQ(st.n_active, FLIPS + 1, "active members") ||
	    !ASSERT_EQ(udp_rcvbuf_errors(), 0, "UdpRcvbufErrors") ||
	    !ASSERT_OK(flows_match(&r), "the table's flows"))
		goto out;
	ret = SM_PASS;
out:
	rig_stop(&r);
	return ret;
}

SM_TEST(udp_flips_naive_reuseport_misroutes)
{
	struct rig r;
	long mis, rounds = 0;
	int ret = SM_FAIL;

	if (!ASSERT_OK(RIG_START(NFLOWS, &r, AF_INET, false, 0, 0), "rig"))
		goto out;
	mis = flip_run(&r, &rounds);
	printf("rounds %ld, sent %ld, answered %ld, lost %ld, misrouted %ld\n", rounds, r.sent,
	       r.answered, r.lost, mis);
	/* the baseline the flow mode is measured against: the kernel's hash
	 * moves established flows whenever a socket joins */
	if (!ASSERT_OK(mis, "run") || !ASSERT_GT(mis, 0, "answers from a non-owning generation") ||
	    !ASSERT_GT(rounds, 2 * FLIPS, "rounds"))
		goto out;
	ret = SM_PASS;
out:
	rig_stop(&r);
	return ret;
}

SM_TEST(udp_flips_mode_none_moves_flows_to_the_working_generation)
{
	struct sockmig_udp_stats st;
	struct rig r;
	long mis, rounds = 0;
	int ret = SM_FAIL;

	if (!ASSERT_OK(RIG_START(NFLOWS, &r, AF_INET, true, SOCKMIG_UDP_MODE_NONE, 0), "rig"))
		goto out;
	mis = flip_run(&r, &rounds);
	printf("rounds %ld, sent %ld, answered %ld, lost %ld, misrouted %ld\n", rounds, r.sent,
	       r.answered, r.lost, mis);
	/* stateless: what the flow table is for; every datagram to the working
	 * generation, so the last round is answered by the last one alone */
	if (!ASSERT_OK(mis, "run") || !ASSERT_GT(mis, 0, "answers from a non-owning generation") ||
	    !ASSERT_EQ(unexplained_lost(&r), 0, "datagrams unanswered") ||
	    !ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    !ASSERT_EQ(st.stateless, r.sent, "every datagram stateless") ||
	    !ASSERT_EQ(st.new_flows + st.flow_hits + st.kernel_hash, 0, "no flow path") ||
	    !ASSERT_EQ(sockmig_udp_flows(r.g, NULL, 0), 0, "no flow learned"))
		goto out;
	for (int i = 0; i < NFLOWS; i++)
		if (!ASSERT_EQ(r.last[i], FLIPS + 1, "last answer by the working generation"))
			goto out;
	ret = SM_PASS;
out:
	rig_stop(&r);
	return ret;
}

/* ---- new flows, closed owners, expiry, roll-back ------------------------- */

#define WAVE  200
#define WAVES 5

/* After each flip, WAVE new flows: every one lands on the new generation,
 * and every older flow stays where it was. */
static int new_flows_case(int family)
{
	struct sockmig_udp_stats st;
	struct rig r;
	int ret = SM_FAIL;
	uint32_t seq = 0;

	if (!ASSERT_OK(RIG_START((WAVES + 2) * WAVE, &r, family, true, SOCKMIG_UDP_MODE_FLOW, 0),
		       "rig") ||
	    !ASSERT_OK(rig_add(&r, 1), "generation 1"))
		goto out;
	for (int w = 0; w < WAVES; w++) {
		/* a flip: generation w + 2 joins and is working from now on */
		if (!ASSERT_OK(rig_add(&r, (uint32_t)w + 2), "flip") ||
		    !ASSERT_OK(rig_round(&r, 0, (w + 1) * WAVE, ++seq), "round"))
			goto out;
		for (int i = w * WAVE; i < (w + 1) * WAVE; i++)
			if (!ASSERT_EQ(r.first[i], w + 2, "a new flow's generation"))
				goto out;
	}
	if (!ASSERT_OK(rig_round(&r, 0, WAVES * WAVE, ++seq), "last round") ||
	    !ASSERT_EQ(r.misrouted, 0, "old flows answered elsewhere") ||
	    !ASSERT_EQ(unexplained_lost(&r), 0, "unanswered") ||
	    !ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    !ASSERT_EQ(st.new_flows, WAVES * WAVE, "new flows") ||
	    !ASSERT_EQ(st.flow_hits, r.sent - WAVES * WAVE, "hits") ||
	    !ASSERT_EQ(st.working_generation, WAVES + 1, "working"))
		goto out;

	/* roll back: generation 3 set by hand takes the next new flows */
	if (!ASSERT_OK(sockmig_udp_set_working(r.g, 3), "set working 3") ||
	    !ASSERT_ERR(sockmig_udp_set_working(r.g, 99), ENOENT, "no such generation"))
		goto out;
	if (!ASSERT_OK(rig_round(&r, WAVES * WAVE, WAVES * WAVE + WAVE, ++seq), "rollback round"))
		goto out;
	for (int i = WAVES * WAVE; i < WAVES * WAVE + WAVE; i++)
		if (!ASSERT_EQ(r.first[i], 3, "a new flow after the roll-back"))
			goto out;
	/* draining generation 3 gives new flows to the newest again; its
	 * flows stay with it */
	if (!ASSERT_EQ(sockmig_udp_generation_drain(r.g, 3), 1, "drain 3") ||
	    !ASSERT_OK(rig_round(&r, 0, WAVES * WAVE + 2 * WAVE, ++seq), "after the drain"))
		goto out;
	for (int i = WAVES * WAVE + WAVE; i < WAVES * WAVE + 2 * WAVE; i++)
		if (!ASSERT_EQ(r.first[i], WAVES + 1, "a new flow after the drain"))
			goto out;
	if (!ASSERT_EQ(r.misrouted, 0, "misrouted") ||
	    !ASSERT_EQ(unexplained_lost(&r), 0, "unanswered") ||
	    !ASSERT_OK(flows_match(&r), "the table's flows"))
		goto out;
	ret = SM_PASS;
out:
	rig_stop(&r);
	return ret;
}

SM_TEST(udp_new_flows_after_a_flip_land_on_the_new_generation)
{
	return new_flows_case(AF_INET);
}

SM_TEST(udp_new_flows_after_a_flip_land_on_the_new_generation_ipv6)
{
	return new_flows_case(AF_INET6);
}

SM_TEST(udp_closed_owner_flows_fall_to_the_working_generation)
{
	struct sockmig_udp_stats st;
	struct sockmig_udp_member_info mi[4];
	struct sockmig_udp_flow_count fc[4];
	struct rig r;
	int ret = SM_FAIL, old;
	const int n = 300;

	if (!ASSERT_OK(RIG_START(n, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 0), "rig") ||
	    !ASSERT_OK(old = rig_add(&r, 1), "generation 1") ||
	    !ASSERT_OK(rig_round(&r, 0, n, 1), "round 1") ||
	    !ASSERT_OK(rig_add(&r, 2), "generation 2") ||
	    !ASSERT_OK(rig_round(&r, 0, n, 2), "round 2"))
		goto out;
	for (int i = 0; i < n; i++)
		if (!ASSERT_EQ(r.last[i], 1, "kept by generation 1 while it lives"))
			goto out;
	/* generation 1 closes: its flows go to generation 2, once each as a
	 * fallback, then as hits of their new owner */
	rig_close_sock(&r, old);
	if (!ASSERT_OK(rig_round(&r, 0, n, 3), "round 3") ||
	    !ASSERT_OK(rig_round(&r, 0, n, 4), "round 4") ||
	    !ASSERT_EQ(unexplained_lost(&r), 0, "unanswered"))
		goto out;
	for (int i = 0; i < n; i++)
		if (!ASSERT_EQ(r.last[i], 2, "moved to the working generation"))
			goto out;
	if (!ASSERT_EQ(sockmig_udp_flows(r.g, fc, 4), 1, "generations owning flows") ||
	    !ASSERT_EQ(fc[0].generation, 2, "generation 2") ||
	    !ASSERT_EQ(fc[0].flows, n, "its flows"))
		goto out;
	if (!ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    !ASSERT_EQ(st.new_flows, n, "new flows") || !ASSERT_EQ(st.fallbacks, n, "fallbacks") ||
	    !ASSERT_EQ(st.flow_hits, 2 * n, "hits") ||
	    !ASSERT_EQ(st.kernel_hash, 0, "kernel hash") ||
	    !ASSERT_EQ(sockmig_udp_members(r.g, mi, 4), 1, "live members") ||
	    !ASSERT_EQ(mi[0].generation, 2, "the live one"))
		goto out;
	ret = SM_PASS;
out:
	rig_stop(&r);
	return ret;
}

SM_TEST(udp_idle_flows_expire_to_the_working_generation)
{
	struct sockmig_udp_stats st;
	struct timespec nap = {0, 400 * 1000000};
	struct rig r;
	int ret = SM_FAIL;
	const int n = 100;

	if (!ASSERT_OK(RIG_START(n, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 200), "rig") ||
	    !ASSERT_OK(rig_add(&r, 1), "generation 1") ||
	    !ASSERT_OK(rig_round(&r, 0, n, 1), "round 1") ||
	    !ASSERT_OK(rig_add(&r, 2), "generation 2") ||
	    !ASSERT_OK(rig_round(&r, 0, n, 2), "round 2"))
		goto out;
	for (int i = 0; i < n; i++)
		if (!ASSERT_EQ(r.last[i], 1, "within the timeout"))
			goto out;
	/* idle for twice the timeout: no flow is counted, and they are new again */
	nanosleep(&nap, NULL);
	if (!ASSERT_EQ(sockmig_udp_flows(r.g, NULL, 0), 0, "flows after the timeout") ||
	    !ASSERT_OK(rig_round(&r, 0, n, 3), "round 3") ||
	    !ASSERT_EQ(unexplained_lost(&r), 0, "unanswered"))
		goto out;
	for (int i = 0; i < n; i++)
		if (!ASSERT_EQ(r.last[i], 2, "after the timeout"))
			goto out;
	if (!ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    !ASSERT_EQ(st.new_flows, n, "new") || !ASSERT_EQ(st.flow_hits, n, "hits") ||
	    !ASSERT_EQ(st.expired, n, "expired"))
		goto out;
	ret = SM_PASS;
out:
	rig_stop(&r);
	return ret;
}

SM_TEST(udp_group_refuses_bad_input)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PORT)};
	struct sockaddr_in other = a;
	struct sockmig_udp_group *g = NULL, *g2;
	int one = 1, u = -1, plain = -1, far = -1, tcp = -1, ret = SM_FAIL;
	SOCKMIG_OPTS(sockmig_udp_group_opts, none, .mode = SOCKMIG_UDP_MODE_NONE);
	SOCKMIG_OPTS(sockmig_udp_group_opts, bad, .mode = 7);
	SOCKMIG_OPTS(sockmig_udp_member_opts, reserved, .generation = SOCKMIG_UDP_GEN_NEWEST);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	other.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	other.sin_port = htons(PORT + 1);
	if (!ASSERT_TRUE(!sockmig_udp_group_open((struct sockaddr *)&a, 4, NULL) && errno == EINVAL,
			 "short address") ||
	    !ASSERT_TRUE(!sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &bad) &&
				 errno == EINVAL,
			 "unknown mode"))
		goto out;
	g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_udp_group_mode(g), SOCKMIG_UDP_MODE_FLOW, "default mode") ||
	    !ASSERT_TRUE(strstr(sockmig_udp_group_name(g), "-udp4-127_0_0_1-34600"), "name"))
		goto out;
	g2 = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &none);
	if (!ASSERT_TRUE(!g2 && errno == EEXIST, "another mode"))
		goto out;
	/* not listed as a TCP group */
	if (!ASSERT_EQ(sockmig_group_list(NULL, NULL, 0), 0, "TCP groups"))
		goto out;

	u = socket(AF_INET, SOCK_DGRAM, 0);
	plain = socket(AF_INET, SOCK_DGRAM, 0);
	far = socket(AF_INET, SOCK_DGRAM, 0);
	tcp = socket(AF_INET, SOCK_STREAM, 0);
	if (!ASSERT_OK(setsockopt(u, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), "reuseport") ||
	    !ASSERT_OK(setsockopt(far, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), "reuseport") ||
	    !ASSERT_OK(setsockopt(tcp, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), "reuseport") ||
	    !ASSERT_ERR(sockmig_udp_member_add(g, u, NULL), EINVAL, "not bound") ||
	    !ASSERT_OK(bind(u, (struct sockaddr *)&a, sizeof(a)), "bind") ||
	    !ASSERT_OK(bind(plain, (struct sockaddr *)&other, sizeof(other)), "bind plain") ||
	    !ASSERT_OK(bind(far,
			    (struct sockaddr *)&(struct sockaddr_in){
				    .sin_family = AF_INET,
				    .sin_port = htons(PORT + 2),
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
			    sizeof(a)),
		       "bind far") ||
	    !ASSERT_OK(bind(tcp, (struct sockaddr *)&a, sizeof(a)), "bind tcp") ||
	    !ASSERT_ERR(sockmig_udp_member_add(g, tcp, NULL), EINVAL, "a TCP socket") ||
	    !ASSERT_ERR(sockmig_udp_member_add(g, plain, NULL), EINVAL, "no SO_REUSEPORT") ||
	    !ASSERT_ERR(sockmig_udp_member_add(g, far, NULL), EXDEV, "another port") ||
	    !ASSERT_ERR(sockmig_udp_member_add(g, u, &reserved), EINVAL, "reserved generation") ||
	    !ASSERT_ERR(sockmig_udp_member_add(g, -1, NULL), EBADF, "no socket") ||
	    !ASSERT_OK(sockmig_udp_member_add(g, u, NULL), "member") ||
	    !ASSERT_ERR(sockmig_udp_generation_drain(g, 0), EBUSY, "the last active generation") ||
	    !ASSERT_ERR(sockmig_udp_generation_drain(g, 5), ENOENT, "no such generation") ||
	    !ASSERT_EQ(sockmig_udp_members(g, NULL, 0), 1, "members"))
		goto out;
	ret = SM_PASS;
out:
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
	for (int i = 0; i < 4; i++)
		if ((int[]){u, plain, far, tcp}[i] >= 0)
			close((int[]){u, plain, far, tcp}[i]);
	return ret;
}

/* Two network namespaces with the same address and port: two groups, and
 * neither sees the other's members or flows. */
SM_TEST(udp_groups_of_two_netns_are_apart)
{
	struct sockmig_udp_stats st;
	struct rig r;
	int ret = SM_FAIL, status = -1, p[2] = {-1, -1};
	char other[SOCKMIG_NAME_MAX] = "";
	pid_t pid;

	if (!ASSERT_OK(RIG_START(10, &r, AF_INET, true, SOCKMIG_UDP_MODE_FLOW, 0), "rig") ||
	    !ASSERT_OK(rig_add(&r, 1), "generation 1") ||
	    !ASSERT_OK(rig_round(&r, 0, 10, 1), "round") || !ASSERT_OK(pipe(p), "pipe"))
		goto out;
	pid = fork();
	if (pid == 0) {
		struct sockmig_udp_group *g;
		int rc = 1;

		close(p[0]);
		if (unshare(CLONE_NEWNET) == 0) {
			g = sockmig_udp_group_open((struct sockaddr *)&r.addr, r.alen, NULL);
			if (g) {
				if (write(p[1], sockmig_udp_group_name(g),
					  strlen(sockmig_udp_group_name(g))) > 0 &&
				    sockmig_udp_members(g, NULL, 0) == 0 &&
				    sockmig_udp_stats_read(g, &st) == 0 && st.new_flows == 0)
					rc = 0;
				sockmig_udp_group_destroy(g);
				sockmig_udp_group_close(g);
			}
		}
		_exit(rc);
	}
	close(p[1]);
	p[1] = -1;
	if (!ASSERT_TRUE(read(p[0], other, sizeof(other) - 1) > 0, "the other's name") ||
	    !ASSERT_TRUE(pid > 0 && waitpid(pid, &status, 0) == pid, "child") ||
	    !ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "the other namespace's group is empty") ||
	    !ASSERT_TRUE(strcmp(other, sockmig_udp_group_name(r.g)) != 0, "two names") ||
	    !ASSERT_OK(sockmig_udp_stats_read(r.g, &st), "stats") ||
	    !ASSERT_EQ(st.new_flows, 10, "this namespace's flows") ||
	    !ASSERT_EQ(sockmig_udp_members(r.g, NULL, 0), 1, "this namespace's members"))
		goto out;
	ret = SM_PASS;
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	rig_stop(&r);
	return ret;
}
