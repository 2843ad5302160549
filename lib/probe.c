// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The capability probe: what this kernel does, found by behaviour in a
 * scratch network namespace owned by one short-lived thread (a netns is
 * per thread, so the caller's namespace is never touched). Without
 * CAP_SYS_ADMIN for that namespace (a service given only CAP_BPF and
 * CAP_NET_ADMIN), the select and migrate steps run in the caller's own
 * namespace, on 127.0.0.1 ports the kernel picks, and the sysctl step,
 * which would change that namespace's net.ipv4.tcp_migrate_req, is not run.
 *
 *   select:  A and B listen, slot 0 = B, a select program attached;
 *            a client must land on B.
 *   migrate: a child queued on A; B listens; shutdown(A); a non-blocking
 *            accept() on B must find it. Once with the migrate program,
 *            once with net.ipv4.tcp_migrate_req=1 and no program.
 *   wake-up: B is in an epoll set before shutdown(A); the migrated child
 *            must make epoll_wait() report B (CVE-2026-46015 when not).
 *
 * Nothing here blocks: every socket is non-blocking and every wait is a
 * poll() with a time limit, so a kernel that does not do what a step
 * expects (5.10.y's tcp_migrate_req file with nothing behind it) gets a
 * "no" or, when a step could not even be set up, "unknown", in bounded
 * time.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "internal.h"
#include "probe.skel.h"

#define PROBE_PORT 40111
/* Upper bound of each wait: a connect, a child reaching a queue. */
#define PROBE_WAIT_MS 1000

const char *sockmig_mode_str(enum sockmig_mode mode)
{
	static const char *const names[] = {
		[SOCKMIG_MODE_NONE] = "none",
		[SOCKMIG_MODE_SELECT] = "select-only",
		[SOCKMIG_MODE_NATIVE] = "native",
	};

	return (unsigned)mode < sizeof(names) / sizeof(names[0]) ? names[mode] : "none";
}

/* The port @fd is bound to (a listener bound to port 0 got one). */
static int bound_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	if (getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		return -1;
	return ntohs(sin.sin_port);
}

/* Port 0: one the kernel picks (then ask bound_port() for siblings). */
static int listener(int port, bool do_listen)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd, one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* listen(2) by its syscall: an LD_PRELOAD shim's listen() must not take
	 * the probe's listeners for its server's, which they look like when
	 * the probe runs in the caller's netns (no CAP_SYS_ADMIN) */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    (do_listen && syscall(SYS_listen, fd, 8) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A connected client, or -1 when the handshake did not end in @ms. */
static int client(int port, int ms)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct pollfd p = {.events = POLLOUT};
	socklen_t len = sizeof(int);
	int fd, soerr = 0;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
		return fd;
	p.fd = fd;
	if (errno != EINPROGRESS || poll(&p, 1, ms) != 1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Close the fds of @fd that are open (>= 0). */
static void close_all(const int *fd, int n)
{
	for (int i = 0; i < n; i++)
		if (fd[i] >= 0)
			close(fd[i]);
}

static bool readable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms) == 1;
}

static int attach(int fd, const struct bpf_program *prog)
{
	int pfd = bpf_program__fd(prog);

	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &pfd, sizeof(pfd));
}

/* Load only @prog of a fresh probe object. */
static struct probe_bpf *load_one(const char *name, int *err)
{
	struct probe_bpf *skel = probe_bpf__open();
	struct bpf_program *prog;

	if (!skel) {
		*err = -errno;
		return NULL;
	}
	bpf_object__for_each_program(prog, skel->obj)
		bpf_program__set_autoload(prog, strcmp(bpf_program__name(prog), name) == 0);
	*err = probe_bpf__load(skel);
	if (*err) {
		probe_bpf__destroy(skel);
		return NULL;
	}
	return skel;
}

/*
 * Whether this kernel's verifier loads a migrate program at all, asked
 * with the probe's 3-instruction one and remembered for the process. The
 * policy program is far larger: a verifier without migrating_sk (5.10)
 * walks many of its states before it reaches that field and rejects it,
 * seconds of work on every group open (and twice: libbpf loads again for
 * the log).
 */
int sm_verifier_loads_migrate(void)
{
	static atomic_int known; /* 0 not asked, 1 yes, 2 no */
	struct probe_bpf *skel;
	int err, k = atomic_load(&known);

	if (k)
		return k == 1;
	skel = load_one("probe_migrate", &err);
	if (!skel) {
		if (err == -EPERM)
			return err; /* no rights says nothing about the verifier */
		atomic_store(&known, 2);
		return 0;
	}
	probe_bpf__destroy(skel);
	atomic_store(&known, 1);
	return 1;
}

static enum sockmig_tristate try_select(struct sockmig_probe *p, int port)
{
	enum sockmig_tristate res = SOCKMIG_NO;
	struct probe_bpf *skel;
	int a, b = -1, c = -1, err, conn;
	uint32_t zero = 0;
	uint64_t val;

	skel = load_one("probe_select", &err);
	if (!skel) {
		p->bpf_errno = -err;
		return SOCKMIG_NO;
	}
	a = listener(port, true);
	if (a >= 0 && !port)
		port = bound_port(a);
	b = port > 0 ? listener(port, true) : -1;
	if (a < 0 || b < 0)
		goto out;
	val = (uint64_t)b;
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.target), &zero, &val, BPF_ANY) < 0 ||
	    attach(a, skel->progs.probe_select) < 0)
		goto out;
	c = client(port, PROBE_WAIT_MS);
	if (c < 0) {
		res = SOCKMIG_UNKNOWN;
		goto out;
	}
	if (readable(b, PROBE_WAIT_MS)) {
		conn = accept4(b, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (conn >= 0) {
			res = SOCKMIG_YES;
			close(conn);
		}
	}
out:
	close_all((int[]){c, b, a}, 3);
	probe_bpf__destroy(skel);
	return res;
}

/*
 * Queue a child on A, let B join, shut A down. With @skel, its migrate
 * program is attached; without, the netns sysctl must be on. YES: the
 * child was on B; NO: B's queue was empty; UNKNOWN: a step before the
 * shutdown failed, so the kernel was not asked.
 */
static enum sockmig_tristate try_migrate(struct probe_bpf *skel, int port,
					 enum sockmig_tristate *wakeup)
{
	enum sockmig_tristate res = SOCKMIG_UNKNOWN;
	struct epoll_event ev = {.events = EPOLLIN};
	int a, b = -1, c = -1, ep = -1, conn, n;
	uint32_t zero = 0;
	uint64_t val;

	a = listener(port, true);
	if (a < 0)
		return SOCKMIG_UNKNOWN;
	if (!port && (port = bound_port(a)) <= 0)
		goto out;
	if (skel && attach(a, skel->progs.probe_migrate) < 0)
		goto out;
	c = client(port, PROBE_WAIT_MS);
	if (c < 0 || !readable(a, PROBE_WAIT_MS))
		goto out;
	b = listener(port, true);
	if (b < 0)
		goto out;
	val = (uint64_t)b;
	if (skel && bpf_map_update_elem(bpf_map__fd(skel->maps.target), &zero, &val, BPF_ANY) < 0)
		goto out;
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = b;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, b, &ev) < 0)
		goto out;
	shutdown(a, SHUT_RDWR);
	/* Migration at shutdown is synchronous: the child is on B now or
	 * never; the wait only tells whether B's waiter was woken. */
	n = epoll_wait(ep, &ev, 1, 100);
	/* B is non-blocking: an empty queue is EAGAIN, not a wait. */
	conn = accept4(b, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (conn >= 0) {
		res = SOCKMIG_YES;
		if (wakeup)
			*wakeup = n > 0 ? SOCKMIG_YES : SOCKMIG_NO;
		close(conn);
	} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
		res = SOCKMIG_NO;
	}
out:
	close_all((int[]){ep, c, b, a}, 4);
	return res;
}

enum sockmig_tristate sockmig_probe_migrate_sysctl(int port)
{
	if (port <= 0 || port > 65535) {
		sm_fail(EINVAL, "port %d is not in 1-65535", port);
		return SOCKMIG_UNKNOWN;
	}
	return try_migrate(NULL, port, NULL);
}

static int write_sysctl(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	close(fd);
	return n < 0 ? -errno : 0;
}

/* Make the calling thread's scratch network namespace, lo up; else say
 * why. Without CAP_SYS_ADMIN (EPERM) the caller's own namespace serves,
 * on ports the kernel picks: *port 0 then, and *scratch false. */
static bool scratch_netns(struct sockmig_probe *p, bool *scratch, int *port)
{
	*scratch = true;
	*port = PROBE_PORT;
	if (unshare(CLONE_NEWNET) < 0) {
		if (errno != EPERM) {
			snprintf(p->reason, sizeof(p->reason),
				 "cannot create a scratch network namespace: %s", strerror(errno));
			return false;
		}
		*scratch = false;
		*port = 0;
	} else if (sockmig_lo_up() < 0) {
		snprintf(p->reason, sizeof(p->reason),
			 "cannot bring lo up in the scratch netns (needs CAP_NET_ADMIN)");
		return false;
	}
	return true;
}

/* Run @fn on @p in a thread of its own (its netns goes with it). */
static int probe_in_thread(void *(*fn)(void *), struct sockmig_probe *p)
{
	pthread_t th;
	int err = pthread_create(&th, NULL, fn, p);

	if (err)
		return sm_fail(err, "cannot start the probe thread: %s", strerror(err));
	pthread_join(th, NULL);
	return 0;
}

/* A migration under the migrate program on @port (0: any), and whether it
 * woke the target's epoll waiter; false (*err set) when the program does
 * not load. */
static bool migrate_step(struct sockmig_probe *p, int port, int *err)
{
	struct probe_bpf *skel = load_one("probe_migrate", err);

	if (!skel)
		return false;
	p->migrate_bpf = try_migrate(skel, port, &p->migrate_wakeup);
	probe_bpf__destroy(skel);
	return true;
}

/* The wake-up step alone. */
static void *wake_thread(void *arg)
{
	bool scratch;
	int err, port;

	if (scratch_netns(arg, &scratch, &port))
		migrate_step(arg, port ? port + 1 : 0, &err);
	return NULL;
}

enum sockmig_tristate sm_kernel_wakes_migrated(void)
{
	static atomic_int known; /* 0 not asked, else the answer + 2 */
	struct sockmig_probe p;
	int k = atomic_load(&known);

	if (k)
		return (enum sockmig_tristate)(k - 2);
	memset(&p, 0, sizeof(p));
	p.migrate_bpf = p.migrate_wakeup = SOCKMIG_UNKNOWN;
	if (probe_in_thread(wake_thread, &p) < 0)
		return SOCKMIG_UNKNOWN; /* asked again at the next open */
	atomic_store(&known, (int)p.migrate_wakeup + 2);
	sm_log(SOCKMIG_DEBUG, "libsockmig: migrated children %s their listener's waiter\n",
	       p.migrate_wakeup == SOCKMIG_YES	? "wake"
	       : p.migrate_wakeup == SOCKMIG_NO ? "do not wake"
						: "may not wake");
	return p.migrate_wakeup;
}

static void *probe_thread(void *arg)
{
	struct sockmig_probe *p = arg;
	bool loaded, scratch;
	int err = 0, port;

	if (!scratch_netns(p, &scratch, &port))
		return NULL;
	p->bpf_select = try_select(p, port);

	loaded = migrate_step(p, port ? port + 1 : 0, &err);
	p->bpf_migrate = loaded ? SOCKMIG_YES : SOCKMIG_NO;
	if (!loaded && !p->bpf_errno && p->bpf_select == SOCKMIG_YES)
		p->bpf_errno = 0; /* select works: the verifier just lacks migration */
	else if (!loaded && !p->bpf_errno)
		p->bpf_errno = -err;
	if (!loaded)
		p->migrate_bpf = SOCKMIG_NO;
	if (!scratch)
		p->migrate_sysctl = SOCKMIG_UNKNOWN; /* not this netns's sysctl to change */
	else if (p->sysctl_file && write_sysctl("/proc/sys/net/ipv4/tcp_migrate_req", "1") == 0)
		p->migrate_sysctl =
			try_migrate(NULL, PROBE_PORT + 2,
				    p->migrate_bpf == SOCKMIG_YES ? NULL : &p->migrate_wakeup);
	else
		p->migrate_sysctl = SOCKMIG_NO;

	if (p->migrate_bpf == SOCKMIG_YES) {
		p->mode = SOCKMIG_MODE_NATIVE;
		snprintf(p->reason, sizeof(p->reason),
			 "a queued child moved to a sibling under a migrate program%s",
			 scratch ? "" : "; probed in this netns (no CAP_SYS_ADMIN)");
	} else if (p->bpf_select == SOCKMIG_YES && p->migrate_bpf == SOCKMIG_UNKNOWN) {
		p->mode = SOCKMIG_MODE_SELECT;
		snprintf(p->reason, sizeof(p->reason),
			 "a migrate program loads, but no child could be queued within %d ms to "
			 "test it: undecided, so sockmig's legacy mode",
			 PROBE_WAIT_MS);
	} else if (p->bpf_select == SOCKMIG_YES) {
		p->mode = SOCKMIG_MODE_SELECT;
		snprintf(p->reason, sizeof(p->reason),
			 "select programs work, but no child moved under a migrate program: "
			 "sockmig's legacy mode");
	} else if (p->bpf_select == SOCKMIG_UNKNOWN) {
		p->mode = SOCKMIG_MODE_NONE;
		snprintf(p->reason, sizeof(p->reason),
			 "undecided: no client connected within %d ms to test the select program",
			 PROBE_WAIT_MS);
	} else {
		p->mode = SOCKMIG_MODE_NONE;
		snprintf(p->reason, sizeof(p->reason), "no sk_reuseport program could be used: %s",
			 p->bpf_errno == EPERM ? "not permitted (needs CAP_BPF)"
					       : strerror(p->bpf_errno ? p->bpf_errno : EINVAL));
	}
	return NULL;
}

int sockmig_probe(struct sockmig_probe *out)
{
	struct sockmig_probe p;
	struct utsname u;
	struct statfs sfs;
	int err;

	memset(&p, 0, sizeof(p));
	p.mode = SOCKMIG_MODE_NONE;
	p.bpf_select = p.bpf_migrate = SOCKMIG_UNKNOWN;
	p.migrate_bpf = p.migrate_sysctl = p.migrate_wakeup = SOCKMIG_UNKNOWN;
	if (uname(&u) == 0)
		snprintf(p.kernel, sizeof(p.kernel), "%s", u.release);
	p.sysctl_file = access("/proc/sys/net/ipv4/tcp_migrate_req", F_OK) == 0;
	p.bpffs = statfs("/sys/fs/bpf", &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC;

	err = probe_in_thread(probe_thread, &p);
	if (err)
		return err;
	*out = p;
	return 0;
}
