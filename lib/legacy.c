// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Legacy mode, for kernels that cannot migrate (4.19 to 5.13): the select
 * program in place of the select-or-migrate one, and the drain of the
 * original proposal, made exact.
 *
 * Counting handshakes in flight. The kernel does not say which listener a
 * half-open request belongs to (sock_diag and /proc list requests with
 * their addresses only, and every member of a group has the same ones),
 * and the program's count of SYNs steered is not a count of requests: a
 * SYN answered with a cookie makes none, a SYN dropped on a full queue and
 * sent again is counted twice. But every request holds a reference on its
 * listener (reqsk_alloc() takes it, reqsk_free() drops it), and so does
 * every child in the accept queue until accept() (SYN-cookie children do
 * not), and /proc/net/tcp{,6} prints each socket's reference count. Once
 * the listener gets no new SYN, a count of 1 (its own reference) plus the
 * accepted Fast Open children still in SYN_RECV (their request stays
 * attached until the handshake ends) means that no request is left. See
 * include/sockmig.h for what that does not cover.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/membarrier.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "legacy.h"
#include "policy.skel.h"
#include "policy_legacy.skel.h"

#define LEGACY_PROG_NAME "sockmig_legacy"
#define GRACE_SLEEP_MS	 20 /* when membarrier() cannot wait for a grace period */
#define POLL_MAX_MS	 5

/* ---- the program ------------------------------------------------------------ */

const char *sockmig_policy_str(enum sockmig_policy policy)
{
	switch (policy) {
	case SOCKMIG_POLICY_AUTO:
		return "auto";
	case SOCKMIG_POLICY_NATIVE:
		return "native";
	case SOCKMIG_POLICY_LEGACY:
		return "legacy";
	}
	return "?";
}

struct policy_bpf *sm_policy_open(bool legacy)
{
	struct policy_bpf *obj;
	int err;

	if (!legacy)
		return policy_bpf__open();
	obj = calloc(1, sizeof(*obj));
	if (!obj) {
		errno = ENOMEM;
		return NULL;
	}
	err = policy_bpf__create_skeleton(obj);
	if (!err) {
		/* The legacy object has the same maps by name; its one program
		 * takes the native one's place in the skeleton. */
		obj->skeleton->data = (void *)policy_legacy_bpf__elf_bytes(&obj->skeleton->data_sz);
		obj->skeleton->progs[0].name = LEGACY_PROG_NAME;
		err = bpf_object__open_skeleton(obj->skeleton, NULL);
	}
	if (err) {
		policy_bpf__destroy(obj);
		errno = -err;
		return NULL;
	}
	return obj;
}

int sm_policy_requested(int opt)
{
	const char *env;

	if (opt == SOCKMIG_POLICY_NATIVE || opt == SOCKMIG_POLICY_LEGACY)
		return opt;
	if (opt != SOCKMIG_POLICY_AUTO)
		return sm_fail(EINVAL, "unknown policy %d", opt);
	env = secure_getenv("SOCKMIG_MODE");
	if (!env || !*env || strcmp(env, "auto") == 0)
		return SOCKMIG_POLICY_AUTO;
	if (strcmp(env, "legacy") == 0)
		return SOCKMIG_POLICY_LEGACY;
	if (strcmp(env, "native") == 0)
		return SOCKMIG_POLICY_NATIVE;
	sm_log(SOCKMIG_WARN, "libsockmig: SOCKMIG_MODE=%s is not native, legacy or auto: auto\n",
	       env);
	return SOCKMIG_POLICY_AUTO;
}

int sm_policy_of_prog(int prog_fd, int requested, const char *group)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int actual;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) < 0)
		return sm_fail(errno, "cannot read the program of group %s: %s", group,
			       strerror(errno));
	actual = strcmp(info.name, LEGACY_PROG_NAME) == 0 ? SOCKMIG_POLICY_LEGACY
							  : SOCKMIG_POLICY_NATIVE;
	if (requested != SOCKMIG_POLICY_AUTO && requested != actual)
		return sm_fail(EEXIST, "group %s runs the %s policy, not the %s one asked for",
			       group, sockmig_policy_str(actual), sockmig_policy_str(requested));
	return actual;
}

/* ---- files of the socket's network namespace -------------------------------- */

struct ns_open {
	int nsfd;
	const char *path;
	int fd, err;
};

static void *open_in_ns(void *arg)
{
	struct ns_open *a = arg;

	if (setns(a->nsfd, CLONE_NEWNET) < 0) {
		a->err = -errno;
		return NULL;
	}
	a->fd = open(a->path, O_RDONLY | O_CLOEXEC);
	a->err = a->fd < 0 ? -errno : 0;
	return NULL;
}

/* Open @path (under /proc/thread-self/net or /proc/sys/net) as seen from
 * the network namespace of socket @sock: a taken socket may live in
 * another one than the calling thread. */
static int open_for_socket(int sock, const char *path)
{
	struct ns_open a = {.path = path, .fd = -1};
	struct stat sns, tns;
	pthread_t th;
	int err;

	a.nsfd = ioctl(sock, SIOCGSKNS);
	if (a.nsfd < 0 || fstat(a.nsfd, &sns) < 0 || stat("/proc/thread-self/ns/net", &tns) < 0 ||
	    sns.st_ino == tns.st_ino) {
		if (a.nsfd >= 0)
			close(a.nsfd);
		a.fd = open(path, O_RDONLY | O_CLOEXEC);
		return a.fd < 0 ? -errno : a.fd;
	}
	err = pthread_create(&th, NULL, open_in_ns, &a);
	if (err) {
		close(a.nsfd);
		return -err;
	}
	pthread_join(th, NULL);
	close(a.nsfd);
	return a.err ? a.err : a.fd;
}

static int read_int(int sock, const char *path, int def)
{
	char buf[32];
	int fd = open_for_socket(sock, path), v = def;
	ssize_t n;

	if (fd < 0)
		return def;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		if (sscanf(buf, "%d", &v) != 1)
			v = def;
	}
	return v;
}

/* ---- the listener's reference count ----------------------------------------- */

struct refs_file {
	int fd;		   /* /proc/thread-self/net/tcp or tcp6 */
	unsigned long ino; /* the listener's socket inode */
	char buf[16384];
};

static int refs_open(struct refs_file *r, int sock)
{
	struct sm_addr a;
	struct stat st;
	int err;

	err = sm_sock_addr(sock, &a);
	if (err)
		return sm_fail(-err, "fd %d is not an IPv4 or IPv6 socket", sock);
	if (fstat(sock, &st) < 0)
		return sm_fail(errno, "fd %d: %s", sock, strerror(errno));
	r->ino = (unsigned long)st.st_ino;
	r->fd = open_for_socket(sock, a.family == AF_INET6 ? "/proc/thread-self/net/tcp6"
							   : "/proc/thread-self/net/tcp");
	if (r->fd < 0)
		return sm_fail(-r->fd, "cannot open /proc/net/tcp: %s", strerror(-r->fd));
	return 0;
}

/* One line of /proc/net/tcp: 1 when it is the listener's (*refs, *queued
 * set), 0 when it is another listener's, -ENOENT past the listeners (they
 * come first) or unparsable. */
static int refs_line(const struct refs_file *r, const char *line, unsigned *refs, unsigned *queued)
{
	unsigned state, rxq;
	unsigned long ino;
	int refcnt;

	/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode refcnt */
	if (sscanf(line, " %*u: %*s %*s %x %*x:%x %*x:%*x %*x %*u %*d %lu %d", &state, &rxq, &ino,
		   &refcnt) != 4)
		return -ENOENT;
	if (ino == r->ino && state == TCP_LISTEN) {
		*refs = refcnt > 0 ? (unsigned)refcnt : 0;
		*queued = rxq;
		return 1;
	}
	return state == TCP_LISTEN ? 0 : -ENOENT;
}

/* The listener's reference count and accept queue, as one line prints
 * them. -ENOENT when it does not listen. */
static int refs_read(struct refs_file *r, unsigned *refs, unsigned *queued)
{
	size_t have = 0;
	bool header = true;
	ssize_t n;

	if (lseek(r->fd, 0, SEEK_SET) < 0)
		return -errno;
	for (;;) {
		char *line, *nl;

		n = read(r->fd, r->buf + have, sizeof(r->buf) - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENOENT;
		have += (size_t)n;
		line = r->buf;
		while ((nl = memchr(line, '\n', (size_t)(r->buf + have - line)))) {
			int res;

			*nl = '\0';
			res = header ? 0 : refs_line(r, line, refs, queued);
			header = false;
			if (res)
				return res > 0 ? 0 : res;
			line = nl + 1;
		}
		have = (size_t)(r->buf + have - line);
		memmove(r->buf, line, have);
		if (have >= sizeof(r->buf) - 1)
			return -EOVERFLOW;
	}
}

int sockmig_listener_inflight(int fd)
{
	struct refs_file *r = calloc(1, sizeof(*r));
	unsigned refs, queued;
	int err;

	if (!r)
		return sm_fail(ENOMEM, "out of memory");
	err = refs_open(r, fd);
	if (!err) {
		err = refs_read(r, &refs, &queued);
		close(r->fd);
	}
	free(r);
	if (err)
		return sm_fail(-err, "fd %d is not a listening TCP socket of this netns", fd);
	return refs > 1 + queued ? (int)(refs - 1 - queued) : 0;
}

/* ---- the deadline -------------------------------------------------------------- */

/* Retransmissions that TCP_DEFER_ACCEPT's @secs stand for (the kernel
 * stores the option as a number of SYN+ACK timeouts: 1 s, doubling, at
 * most 120 s each). */
static int defer_rounds(int secs)
{
	int rounds = 0, timeout = 1, covered = 0;

	while (secs > covered && rounds < 255) {
		covered += timeout;
		rounds++;
		timeout = timeout * 2 > 120 ? 120 : timeout * 2;
	}
	return rounds;
}

/* Longest life of a request on listener @fd, in ms: its first SYN+ACK
 * timeout (1 s), then one per retransmission, doubling up to 120 s. */
static uint32_t synack_budget_ms(int fd)
{
	int retries = read_int(fd, "/proc/sys/net/ipv4/tcp_synack_retries", 5);
	int syn_retries = read_int(fd, "/proc/sys/net/ipv4/tcp_syn_retries", 6);
	int val = 0;
	socklen_t len = sizeof(val);
	uint64_t ms = 0, t = 1000;

	/* TCP_SYNCNT reads back tcp_syn_retries unless it was set, and
	 * then stands for tcp_synack_retries: count it only when it differs */
	if (getsockopt(fd, IPPROTO_TCP, TCP_SYNCNT, &val, &len) == 0 && val > 0 &&
	    val != syn_retries && val > retries)
		retries = val;
	val = 0;
	len = sizeof(val);
	if (getsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &val, &len) == 0 &&
	    defer_rounds(val) > retries)
		retries = defer_rounds(val);
	if (retries < 0)
		retries = 0;
	for (int i = 0; i <= retries && i < 256; i++) {
		ms += t;
		t = t * 2 > 120000 ? 120000 : t * 2;
	}
	return ms > UINT32_MAX - 1000 ? UINT32_MAX - 1000 : (uint32_t)ms;
}

/* ---- grace period ----------------------------------------------------------- */

/*
 * A SYN's selection (the program reading the table) and the request it
 * makes happen in one softirq, inside one RCU read-side critical section
 * (tcp_v4_rcv() and tcp_v6_rcv() run under rcu_read_lock()). After
 * synchronize_rcu(), which MEMBARRIER_CMD_GLOBAL is, every selection that
 * read the table from before the member was marked draining has made its
 * request. Run in a thread, so that accepting goes on meanwhile.
 */
static void *grace_thread(void *arg)
{
	atomic_bool *done = arg;

	if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) < 0) {
		struct timespec ts = {0, GRACE_SLEEP_MS * 1000000L};

		sm_log(SOCKMIG_DEBUG, "libsockmig: membarrier: %s; sleeping %d ms instead\n",
		       strerror(errno), GRACE_SLEEP_MS);
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	atomic_store(done, true);
	return NULL;
}

/* ---- the drain ---------------------------------------------------------------- */

/* Accepted Fast Open children still in SYN_RECV: copies of their fds. */
struct tfo_set {
	int *fd;
	int n, cap;
};

static int sock_state(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -1;
	return ti.tcpi_state;
}

static void tfo_add(struct tfo_set *t, int fd)
{
	int c;

	if (t->n == t->cap) {
		int ncap = t->cap ? t->cap * 2 : 16;
		int *nfd = realloc(t->fd, (size_t)ncap * sizeof(*nfd));

		if (!nfd)
			return; /* not tracked: the wait may run to its deadline */
		t->fd = nfd;
		t->cap = ncap;
	}
	c = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (c >= 0)
		t->fd[t->n++] = c;
}

/* How many are still in SYN_RECV (forgetting the others). Call it after
 * reading the reference count: a child in SYN_RECV now was then too. */
static int tfo_pending(struct tfo_set *t)
{
	int w = 0;

	for (int i = 0; i < t->n; i++) {
		if (sock_state(t->fd[i]) == TCP_SYN_RECV)
			t->fd[w++] = t->fd[i];
		else
			close(t->fd[i]);
	}
	t->n = w;
	return w;
}

static void tfo_free(struct tfo_set *t)
{
	for (int i = 0; i < t->n; i++)
		close(t->fd[i]);
	free(t->fd);
}

/* Accept until EAGAIN, each connection to @fn. */
static int accept_all(int lfd, sockmig_accept_fn fn, void *ctx, bool track_tfo, struct tfo_set *tfo,
		      struct sockmig_legacy_drain_report *rep)
{
	for (;;) {
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return sm_fail(errno, "accept on fd %d: %s", lfd, strerror(errno));
		}
		if (track_tfo && sock_state(c) == TCP_SYN_RECV)
			tfo_add(tfo, c);
		if (fn(c, ctx) < 0)
			rep->refused++;
		else
			rep->accepted++;
	}
}

static bool has_fastopen(int fd)
{
	int val = 0;
	socklen_t len = sizeof(val);

	return getsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &val, &len) == 0 && val > 0;
}

/*
 * The members that took connections through sockmig_handoff_accept()
 * during the drain running on this thread, for opts->wake_receivers (the
 * drain calls on_accept on its own thread).
 */
#define RECEIVERS_MAX 64
static __thread struct {
	bool on;
	int n;
	uint64_t cookie[RECEIVERS_MAX];
} receivers;

static void note_receiver(uint64_t cookie)
{
	if (!receivers.on)
		return;
	for (int i = 0; i < receivers.n; i++)
		if (receivers.cookie[i] == cookie)
			return;
	if (receivers.n < RECEIVERS_MAX)
		receivers.cookie[receivers.n++] = cookie;
}

int sockmig_member_drain_legacy(struct sockmig_group *g, int fd,
				const struct sockmig_legacy_drain_opts *opts,
				struct sockmig_legacy_drain_report *report)
{
	struct sockmig_legacy_drain_report rep;
	struct sockmig_event ev = {.type = SOCKMIG_EVENT_DRAIN_LEGACY};
	bool have_ev;
	sockmig_accept_fn on_accept;
	struct sockmig_counters c0, c1;
	struct sockmig_netstat ns0, ns1;
	struct refs_file *rf = NULL;
	struct tfo_set tfo = {0};
	atomic_bool grace_done = false;
	unsigned long long t0 = sm_now_ns(), t_mark, deadline_at;
	unsigned refs = 0, queued = 0, prev_refs = ~0u, prev_queued = ~0u;
	bool have_c, track_tfo, grace_thread_ok;
	int flags = -1, err, step_ms = 1;
	pthread_t grace;
	void *ctx;

	if (!OPTS_VALID(opts, sockmig_legacy_drain_opts))
		return -EINVAL;
	memset(&rep, 0, sizeof(rep));
	on_accept = OPTS_GET(opts, on_accept, NULL);
	ctx = OPTS_GET(opts, ctx, NULL);
	rep.cookie = sockmig_cookie(fd);
	if (!rep.cookie)
		return sm_fail(EINVAL, "fd %d is not a socket", fd);
	rf = calloc(1, sizeof(*rf));
	if (!rf)
		return sm_fail(ENOMEM, "out of memory");
	err = refs_open(rf, fd);
	if (err)
		goto free_rf;
	err = refs_read(rf, &refs, &queued);
	if (err) {
		err = sm_fail(EINVAL, "fd %d does not listen", fd);
		goto close_rf;
	}
	rep.deadline_ms = OPTS_GET(opts, deadline_ms, 0);
	if (!rep.deadline_ms)
		rep.deadline_ms = synack_budget_ms(fd) + 1000;
	track_tfo = on_accept && has_fastopen(fd);
	receivers.on = OPTS_GET(opts, wake_receivers, false);
	receivers.n = 0;
	sockmig_netstat_read(&ns0);

	have_ev = sm_member_get(g, rep.cookie, &ev.role, &ev.generation, &ev.pid) == 0;

	/* 1. no new SYN for it */
	{
		SOCKMIG_OPTS(sockmig_drain_opts, dopts, .no_shutdown = true,
			     .force = OPTS_GET(opts, force, false));

		err = sockmig_member_drain(g, fd, &dopts, NULL);
		if (err)
			goto close_rf;
	}
	t_mark = sm_now_ns();
	deadline_at = t_mark + (unsigned long long)rep.deadline_ms * 1000000ull;
	have_c = sockmig_counters_read(g, rep.cookie, &c0) == 0;

	/* 2. a grace period, accepting meanwhile */
	grace_thread_ok = pthread_create(&grace, NULL, grace_thread, &grace_done) == 0;
	if (!grace_thread_ok)
		grace_thread(&grace_done);

	if (on_accept) {
		flags = fcntl(fd, F_GETFL);
		if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
			err = sm_fail(errno, "fd %d: cannot make it non-blocking: %s", fd,
				      strerror(errno));
			flags = -1;
			goto join;
		}
	}

	/* 3. wait for the handshakes in flight, accepting what completes */
	for (bool first = true;;) {
		long long pending;
		bool settled;

		settled = atomic_load(&grace_done);
		if (first && settled) {
			/* no SYN reaches it any more: what it has is all it gets */
			err = refs_read(rf, &refs, &queued);
			if (!err) {
				pending = (long long)refs - 1 - queued - tfo_pending(&tfo);
				rep.inflight_start = pending > 0 ? (uint32_t)pending : 0;
				rep.queued_start = queued;
			}
			first = false;
		}
		if (on_accept) {
			err = accept_all(fd, on_accept, ctx, track_tfo, &tfo, &rep);
			if (err)
				break;
		}
		err = refs_read(rf, &refs, &queued);
		if (err) {
			err = sm_fail(ENOTCONN, "fd %d stopped listening during the drain", fd);
			break;
		}
		if (on_accept)
			pending = (long long)refs - 1 - tfo_pending(&tfo);
		else
			pending = (long long)refs - 1 - queued;
		/* without accepting, the queue is read apart from the count:
		 * believe it once two readings agree */
		if (settled && pending <= 0 &&
		    (on_accept || (refs == prev_refs && queued == prev_queued)))
			break;
		if (sm_now_ns() >= deadline_at) {
			rep.deadline_hit = true;
			rep.abandoned = pending > 0 ? (uint32_t)pending : 0;
			break;
		}
		prev_refs = refs;
		prev_queued = queued;
		if (on_accept) {
			struct pollfd p = {.fd = fd, .events = POLLIN};

			poll(&p, 1, step_ms);
		} else {
			struct timespec ts = {0, step_ms * 1000000L};

			nanosleep(&ts, NULL);
		}
		if (settled && step_ms < POLL_MAX_MS)
			step_ms++;
	}
	rep.wait_ns = sm_now_ns() - t_mark;
	if (have_c && sockmig_counters_read(g, rep.cookie, &c1) == 0)
		rep.late_syns = (uint32_t)(c1.steered - c0.steered);

	/* 4. nothing left in flight: what is queued, then no more listening */
	if (on_accept && !err) {
		err = accept_all(fd, on_accept, ctx, track_tfo, &tfo, &rep);
		if (!err && rep.deadline_hit && refs_read(rf, &refs, &queued) == 0) {
			/* what completed meanwhile was accepted: count what is left */
			long long left = (long long)refs - 1 - tfo_pending(&tfo);

			rep.abandoned = left > 0 ? (uint32_t)left : 0;
		}
		if (!err && !OPTS_GET(opts, no_shutdown, false) && shutdown(fd, SHUT_RDWR) < 0 &&
		    errno != ENOTCONN)
			err = sm_fail(errno, "shutdown of fd %d: %s", fd, strerror(errno));
	}
	/* 5. wake the processes that got connections and only poll listeners */
	for (int i = 0; !err && i < receivers.n; i++)
		if (sockmig_member_kick(g, receivers.cookie[i]) < 0)
			sm_log(SOCKMIG_WARN, "%s", sockmig_last_error());
join:
	if (grace_thread_ok)
		pthread_join(grace, NULL);
	if (flags >= 0)
		fcntl(fd, F_SETFL, flags);
	tfo_free(&tfo);
	sockmig_netstat_read(&ns1);
	sockmig_netstat_delta(&ns0, &ns1, &rep.netstat);
	rep.elapsed_ns = sm_now_ns() - t0;
	if (!err && have_ev) {
		/* the drain's record, which outlives the member and its counters */
		ev.cookie = rep.cookie;
		ev.wait_ns = rep.wait_ns;
		ev.inflight_left = rep.abandoned;
		ev.duration_ns = sm_now_ns() - t_mark;
		if (sockmig_counters_read(g, rep.cookie, &c1) == 0) {
			for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
				ev.migrated[k] = c1.migrated_out[k];
			ev.cancelled = c1.cancel_mismatch;
			ev.deferred = c1.deferred;
		}
		sm_event_record(g, &ev); /* a failure is logged; the drain happened */
	}
close_rf:
	close(rf->fd);
free_rf:
	free(rf);
	receivers.on = false;
	if (!err && report)
		*report = rep;
	return err;
}

int sm_legacy_drain_wait(struct sockmig_group *g, int fd, bool force,
			 struct sockmig_drain_report *report)
{
	SOCKMIG_OPTS(sockmig_legacy_drain_opts, o, .force = force);
	struct sockmig_legacy_drain_report lr;
	int err;

	err = sockmig_member_drain_legacy(g, fd, &o, &lr);
	if (!err && report) {
		memset(report, 0, sizeof(*report));
		report->cookie = lr.cookie;
		report->netstat = lr.netstat;
		report->elapsed_ns = lr.elapsed_ns;
	}
	return err;
}

/* ---- hand-off of accepted connections ----------------------------------------- */

/*
 * Endpoints are unix SOCK_SEQPACKET listeners in the filesystem, at
 * HANDOFF_DIR/<group>/<listener cookie>. Socket cookies are public (ss
 * prints them) and abstract names can be bound by anyone in the network
 * namespace, so the name is not what protects an endpoint: the directory
 * is. Every level down to HANDOFF_DIR is a real directory owned by root
 * and writable by nobody else; the group's directory has mode 0700 and
 * belongs to the listener's uid (a SO_REUSEPORT group admits one), or to
 * root. Only root and that uid can bind or connect there. On top of that,
 * each side checks the other's credentials (SO_PEERCRED), and the receiver
 * checks every fd it gets: a TCP connection of the listener's family,
 * address and port, established; anything else is closed and refused.
 */
#define HANDOFF_DIR	  "/run/sockmig/handoff"
#define HANDOFF_MAX	  256 /* endpoints open in one process */
#define HANDOFF_MSG_WAIT  200 /* ms a receiver waits for a connected sender's message */
#define HANDOFF_RECV_SKIP 64  /* empty connections skipped in one receive */

/* What this process's endpoints accept; inherited by forked children. */
struct handoff_ep {
	int hfd; /* -1: free */
	ino_t ino;
	pid_t creator;
	uid_t owner;
	struct sm_addr addr;
};

static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;
static struct handoff_ep handoff_eps[HANDOFF_MAX];
static int handoff_neps;

static bool ep_find(int hfd, struct handoff_ep *out, bool take)
{
	struct stat st;
	bool found = false;

	if (hfd < 0 || fstat(hfd, &st) < 0)
		return false;
	pthread_mutex_lock(&handoff_lock);
	for (int i = 0; i < handoff_neps; i++) {
		if (handoff_eps[i].hfd != hfd || handoff_eps[i].ino != st.st_ino)
			continue;
		*out = handoff_eps[i];
		if (take)
			handoff_eps[i] = handoff_eps[--handoff_neps];
		found = true;
		break;
	}
	pthread_mutex_unlock(&handoff_lock);
	return found;
}

static int ep_add(const struct handoff_ep *ep)
{
	int err = 0;

	pthread_mutex_lock(&handoff_lock);
	/* forget endpoints closed without sockmig_handoff_close() */
	for (int i = 0; i < handoff_neps;) {
		struct stat st;

		if (handoff_eps[i].hfd == ep->hfd || fstat(handoff_eps[i].hfd, &st) < 0 ||
		    st.st_ino != handoff_eps[i].ino)
			handoff_eps[i] = handoff_eps[--handoff_neps];
		else
			i++;
	}
	if (handoff_neps < HANDOFF_MAX)
		handoff_eps[handoff_neps++] = *ep;
	else
		err = -ENOSPC;
	pthread_mutex_unlock(&handoff_lock);
	return err;
}

/*
 * @path must be a directory itself (not a symlink), owned by root or by
 * @uid, and writable by nobody else; with @private, no access at all for
 * group and others. @return 0 or a negative errno, with a message.
 */
static int check_dir(const char *path, uid_t uid, bool private, struct stat *st)
{
	if (lstat(path, st) < 0)
		return sm_fail(errno, "hand-off: %s: %s", path, strerror(errno));
	if (S_ISLNK(st->st_mode))
		return sm_fail(ELOOP, "hand-off: %s is a symbolic link", path);
	if (!S_ISDIR(st->st_mode))
		return sm_fail(ENOTDIR, "hand-off: %s is not a directory", path);
	if (st->st_uid != 0 && st->st_uid != uid)
		return sm_fail(EPERM, "hand-off: %s belongs to uid %u, not to root or uid %u", path,
			       (unsigned)st->st_uid, (unsigned)uid);
	if (st->st_mode & (private ? 077 : 022))
		return sm_fail(EPERM, "hand-off: %s has mode %04o: it must be %s", path,
			       (unsigned)(st->st_mode & 07777),
			       private ? "0700" : "writable by its owner only");
	return 0;
}

static int make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) == 0)
		return chmod(path, mode) < 0 ? -errno : 1; /* whatever the umask */
	return errno == EEXIST ? 0 : -errno;
}

/*
 * The directory of @group's endpoints, checked level by level: "/", /run
 * and the levels under it owned by root; the group's own 0700 and owned by
 * root or @owner. With @create (the receiver), what is missing is made and
 * the group's directory given to @owner; otherwise (the sender) @owner is
 * read from it: only root can have made it there. @return 0 or a negative
 * errno (for the sender, -ENOENT without a message: no endpoint there).
 */
static int handoff_dir(const char *group, uid_t *owner, bool create, char *dir, size_t len)
{
	static const char *const levels[] = {"/", "/run", "/run/sockmig", HANDOFF_DIR};
	struct stat st;
	int err;

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (create && i >= 2) {
			err = make_dir(levels[i], 0755);
			if (err < 0)
				return sm_fail(-err, "hand-off: cannot create %s: %s%s", levels[i],
					       strerror(-err),
					       err == -EACCES ? " (needs root)" : "");
		}
		if (!create && lstat(levels[i], &st) < 0 && errno == ENOENT)
			return -ENOENT; /* no endpoint anywhere yet */
		err = check_dir(levels[i], 0, false, &st);
		if (err)
			return err;
	}
	if ((size_t)snprintf(dir, len, "%s/%s", HANDOFF_DIR, group) >= len || strchr(group, '/') ||
	    group[0] == '.' || !group[0])
		return sm_fail(EINVAL, "hand-off: bad group name %s", group);
	if (create) {
		err = make_dir(dir, 0700);
		if (err < 0)
			return sm_fail(-err, "hand-off: cannot create %s: %s", dir, strerror(-err));
		if (err > 0 && *owner != geteuid() && chown(dir, *owner, (gid_t)-1) < 0) {
			err = errno;
			rmdir(dir);
			return sm_fail(err, "hand-off: cannot give %s to uid %u: %s", dir,
				       (unsigned)*owner, strerror(err));
		}
		return check_dir(dir, *owner, true, &st);
	}
	if (lstat(dir, &st) < 0)
		return errno == ENOENT ? -ENOENT /* no endpoint in this group */
				       : sm_fail(errno, "hand-off: %s: %s", dir, strerror(errno));
	*owner = st.st_uid;
	return check_dir(dir, st.st_uid, true, &st);
}

static int handoff_path(const char *dir, uint64_t cookie, struct sockaddr_un *sun, socklen_t *len)
{
	int n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%016llx", dir,
		     (unsigned long long)cookie);
	if (n < 0 || (size_t)n >= sizeof(sun->sun_path))
		return sm_fail(ENAMETOOLONG, "hand-off: %s: path too long", dir);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
	return 0;
}

/* Whether a process listens at @sun (a connection attempt, which a live
 * endpoint sees as an empty connection and skips). */
static bool endpoint_live(const struct sockaddr_un *sun, socklen_t len)
{
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	bool live;

	if (s < 0)
		return true; /* cannot tell: leave it */
	live = connect(s, (const struct sockaddr *)sun, len) == 0 || errno != ECONNREFUSED;
	close(s);
	return live;
}

/* Remove the endpoints in @dir whose process is gone (killed, or closed
 * without sockmig_handoff_close()). */
static void remove_stale(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)) && n++ < 4096) {
		struct sockaddr_un sun;
		socklen_t len = 0;
		struct stat st;

		if (de->d_name[0] == '.' || strlen(de->d_name) != 16 ||
		    handoff_path(dir, strtoull(de->d_name, NULL, 16), &sun, &len) ||
		    strcmp(strrchr(sun.sun_path, '/') + 1, de->d_name) != 0)
			continue;
		if (lstat(sun.sun_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    !endpoint_live(&sun, len))
			unlink(sun.sun_path);
	}
	if (d)
		closedir(d);
}

void sm_handoff_forget(const char *group)
{
	char dir[PATH_MAX];
	struct stat st;
	uid_t owner = 0;

	snprintf(dir, sizeof(dir), "%s/%s", HANDOFF_DIR, group);
	if (lstat(dir, &st) < 0 || handoff_dir(group, &owner, false, dir, sizeof(dir)) < 0)
		return; /* none (a native group), or not ours to clean */
	remove_stale(dir);
	rmdir(dir);
}

int sockmig_handoff_listen(struct sockmig_group *g, int fd)
{
	struct handoff_ep ep = {.hfd = -1};
	struct sockaddr_un sun;
	char dir[PATH_MAX];
	uint64_t cookie = sockmig_cookie(fd);
	uid_t euid = geteuid();
	struct stat st;
	socklen_t len = 0;
	int s = -1, err;

	if (!g || !cookie || fstat(fd, &st) < 0 || sm_sock_addr(fd, &ep.addr) < 0)
		return sm_fail(EINVAL, "fd %d is not a TCP socket", fd);
	ep.owner = st.st_uid;
	ep.creator = getpid();
	if (euid != 0 && euid != ep.owner)
		return sm_fail(EPERM,
			       "hand-off: the listener fd %d belongs to uid %u: only it or root "
			       "may open its endpoint",
			       fd, (unsigned)ep.owner);
	for (int tries = 0;; tries++) {
		err = handoff_dir(sockmig_group_name(g), &ep.owner, true, dir, sizeof(dir));
		if (!err)
			err = handoff_path(dir, cookie, &sun, &len);
		if (err)
			return err;
		if (tries == 0)
			remove_stale(dir);
		s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (s < 0)
			return sm_fail(errno, "socket: %s", strerror(errno));
		if (bind(s, (struct sockaddr *)&sun, len) == 0)
			break;
		err = errno;
		close(s);
		if (tries < 2 && err == ENOENT)
			continue; /* the directory went with its last endpoint: again */
		if (tries < 2 && err == EADDRINUSE && !endpoint_live(&sun, len) &&
		    unlink(sun.sun_path) == 0)
			continue; /* left by a process that is gone */
		return sm_fail(err, "cannot open the hand-off endpoint %s of fd %d: %s%s",
			       sun.sun_path, fd, strerror(err),
			       err == EADDRINUSE ? " (the listener has an endpoint already)" : "");
	}
	/* the directory keeps others out; the file lets only its owner in */
	if ((ep.owner != euid && chown(sun.sun_path, ep.owner, (gid_t)-1) < 0) ||
	    chmod(sun.sun_path, 0600) < 0 || listen(s, SOMAXCONN) < 0 || fstat(s, &st) < 0) {
		err = sm_fail(errno, "hand-off endpoint %s: %s", sun.sun_path, strerror(errno));
		goto unlink;
	}
	ep.hfd = s;
	ep.ino = st.st_ino;
	err = ep_add(&ep);
	if (err) {
		err = sm_fail(-err, "hand-off: more than %d endpoints in this process",
			      HANDOFF_MAX);
		goto unlink;
	}
	return s;
unlink:
	unlink(sun.sun_path);
	close(s);
	return err;
}

int sockmig_handoff_close(int hfd)
{
	struct handoff_ep ep;
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);

	if (!ep_find(hfd, &ep, true))
		return close(hfd) < 0 ? -errno : 0;
	/* forked children that hold it too only close their copy */
	if (ep.creator == getpid() && getsockname(hfd, (struct sockaddr *)&sun, &len) == 0 &&
	    len > offsetof(struct sockaddr_un, sun_path) + 1 && sun.sun_path[0] == '/') {
		char *slash;

		sun.sun_path[sizeof(sun.sun_path) - 1] = '\0';
		unlink(sun.sun_path);
		slash = strrchr(sun.sun_path, '/');
		*slash = '\0';
		rmdir(sun.sun_path); /* only when it was the group's last endpoint */
	}
	return close(hfd) < 0 ? -errno : 0;
}

static int sockopt_int(int fd, int level, int name)
{
	int val = 0;
	socklen_t len = sizeof(val);

	return getsockopt(fd, level, name, &val, &len) < 0 ? -1 : val;
}

/* Whether @fd is a connection accepted from a listener at @l: a TCP
 * socket of its family, address and port, established (or a Fast Open
 * child still in SYN_RECV, or half-closed by its client). */
static const char *not_a_connection(int fd, const struct sm_addr *l)
{
	struct sm_addr a;
	struct stat st;
	int state;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return "not a socket";
	if (sm_sock_addr(fd, &a) < 0 || a.family != l->family)
		return "another address family";
	if (sockopt_int(fd, SOL_SOCKET, SO_TYPE) != SOCK_STREAM ||
	    sockopt_int(fd, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP)
		return "not a TCP socket";
	if (sm_addr_port(&a) != sm_addr_port(l))
		return "another port";
	if (l->family == AF_INET && l->v4.sin_addr.s_addr != htonl(INADDR_ANY) &&
	    a.v4.sin_addr.s_addr != l->v4.sin_addr.s_addr)
		return "another address";
	if (l->family == AF_INET6 && !IN6_IS_ADDR_UNSPECIFIED(&l->v6.sin6_addr) &&
	    !IN6_ARE_ADDR_EQUAL(&a.v6.sin6_addr, &l->v6.sin6_addr))
		return "another address";
	state = sock_state(fd);
	if (sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN) != 0 ||
	    (state != TCP_ESTABLISHED && state != TCP_SYN_RECV && state != TCP_CLOSE_WAIT))
		return "not an established connection";
	return NULL;
}

/* One message from connection @c: its one fd, -EAGAIN (empty: the sender
 * went without a word), or a negative errno for a message refused. */
static int recv_one(int c, const struct handoff_ep *ep)
{
	union {
		char buf[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} u;
	char byte;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;
	const char *why;
	int fds[8], nfds = 0;
	ssize_t n;

	memset(&u, 0, sizeof(u));
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	n = recvmsg(c, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		struct pollfd p = {.fd = c, .events = POLLIN};

		if (poll(&p, 1, HANDOFF_MSG_WAIT) > 0)
			n = recvmsg(c, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	}
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		return sm_fail(errno, "hand-off: %s", strerror(errno));
	for (cm = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL; cm; cm = CMSG_NXTHDR(&msg, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k && nfds < 8; i++)
			memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
	}
	if (n <= 0 && !nfds)
		return -EAGAIN;
	why = nfds != 1 || (msg.msg_flags & MSG_CTRUNC) ? "not one fd"
							: not_a_connection(fds[0], &ep->addr);
	if (!why)
		return fds[0];
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	return sm_fail(EBADMSG, "hand-off: refused and closed what was sent: %s", why);
}

int sockmig_handoff_recv(int hfd)
{
	struct handoff_ep ep;

	if (!ep_find(hfd, &ep, false))
		return sm_fail(EBADF,
			       "fd %d is not a hand-off endpoint opened by this process "
			       "(sockmig_handoff_listen())",
			       hfd);
	for (int i = 0; i < HANDOFF_RECV_SKIP; i++) {
		struct ucred cr = {.pid = 0, .uid = (uid_t)-1};
		socklen_t len = sizeof(cr);
		int c, fd;

		c = accept4(hfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK
				       ? -EAGAIN
				       : sm_fail(errno, "hand-off: %s", strerror(errno));
		}
		if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 ||
		    (cr.uid != 0 && cr.uid != ep.owner)) {
			close(c); /* and what it sent with it */
			return sm_fail(EPERM,
				       "hand-off: refused a sender of uid %u, pid %d: only root "
				       "and uid %u may hand connections over",
				       (unsigned)cr.uid, (int)cr.pid, (unsigned)ep.owner);
		}
		fd = recv_one(c, &ep);
		close(c);
		if (fd != -EAGAIN)
			return fd;
	}
	return -EAGAIN;
}

/*
 * Send @fd to the endpoint of member @cookie of @group: 0, -EAGAIN (its
 * queue is full and stayed full for @wait_ms), -EPERM (it is not owned by
 * root or the group's uid), or another negative errno.
 */
static int handoff_send(const char *group, uint64_t cookie, int fd, int wait_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	char byte = 0, dir[PATH_MAX];
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct sockaddr_un sun;
	struct ucred cr = {.pid = 0, .uid = (uid_t)-1};
	socklen_t len = 0, crlen = sizeof(cr);
	struct cmsghdr *cm;
	uid_t owner = 0;
	int s, err;

	err = handoff_dir(group, &owner, false, dir, sizeof(dir));
	if (!err)
		err = handoff_path(dir, cookie, &sun, &len);
	if (err)
		return err;
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | (wait_ms > 0 ? 0 : SOCK_NONBLOCK), 0);
	if (s < 0)
		return -errno;
	if (wait_ms > 0) {
		struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};

		setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (connect(s, (struct sockaddr *)&sun, len) < 0) {
		err = errno == EINPROGRESS ? -EAGAIN : -errno;
		goto out;
	}
	if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 ||
	    (cr.uid != 0 && cr.uid != owner)) {
		err = sm_fail(EPERM, "hand-off: %s is served by uid %u, not by root or uid %u",
			      sun.sun_path, (unsigned)cr.uid, (unsigned)owner);
		goto out;
	}
	memset(&u, 0, sizeof(u));
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	if (sendmsg(s, &msg, MSG_NOSIGNAL) != 1)
		err = -errno;
out:
	close(s);
	return err;
}

static int cmp_generation_desc(const void *a, const void *b)
{
	const struct sockmig_member_info *x = a, *y = b;

	return x->generation < y->generation ? 1 : x->generation > y->generation ? -1 : 0;
}

int sockmig_handoff_accept(int fd, void *ctx)
{
	struct sockmig_group *g = ctx;
	const char *group = g ? sockmig_group_name(g) : "";
	struct sockmig_member_info *m;
	int n, err = -ENOENT, busy = -1, last = 0, tried = 0;

	m = calloc(4 * 128, sizeof(*m));
	if (!m) {
		close(fd);
		return sm_fail(ENOMEM, "out of memory");
	}
	n = g ? sockmig_members(g, m, 4 * 128) : -EINVAL;
	if (n > 4 * 128)
		n = 4 * 128;
	if (n > 0)
		qsort(m, (size_t)n, sizeof(*m), cmp_generation_desc);
	for (int i = 0; i < n; i++) {
		int e;

		if (m[i].role != SOCKMIG_ROLE_ACTIVE || !m[i].listening)
			continue;
		e = handoff_send(group, m[i].cookie, fd, 0);
		if (e == -EAGAIN && receivers.on) {
			/* its queue is full (net.unix.max_dgram_qlen): it serves
			 * hand-offs from accept(), wake it now */
			sockmig_member_kick(g, m[i].cookie);
			e = handoff_send(group, m[i].cookie, fd, 1000);
		}
		tried++;
		last = e;
		if (e == 0) {
			note_receiver(m[i].cookie);
			err = 0;
			break;
		}
		if (e == -EAGAIN && busy < 0)
			busy = i;
	}
	/* every endpoint busy: wait for the first that was */
	if (err && busy >= 0 && handoff_send(group, m[busy].cookie, fd, 1000) == 0) {
		note_receiver(m[busy].cookie);
		err = 0;
	}
	free(m);
	close(fd);
	if (err && !tried)
		return sm_fail(ENOENT, "no live member to hand the connection to: none active");
	if (err)
		return sm_fail(-last, "no live member took the connection (%d tried; last: %s)",
			       tried, strerror(-last));
	return 0;
}
