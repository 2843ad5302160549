// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libsockmig-preload.so: sockmig for dynamically linked servers that do
 * not use it.  LD_PRELOAD=libsockmig-preload.so server ...
 *
 * After listen() of a TCP socket with SO_REUSEPORT succeeds, the socket
 * is registered in its group as an active member whose generation is the
 * process's start time (newer processes are newer generations). When the
 * last reference to the socket goes away (close, dup2/dup3 onto it,
 * close_range/closefrom, exit()), the member is drained, so that its accept
 * queue moves under the policy to the newest generation, then the real
 * call closes it, then it leaves the group (after the close, by cookie: a
 * refused drain leaves the policy attached at the close, and the policy
 * can still hand the queue to a sibling listener that is not registered).
 * shutdown() of a member drains it. Listeners inherited across exec are
 * tracked from the start (member.c). UDP sockets with SO_REUSEPORT join
 * their port's UDP group after bind(), are tracked, leave it at connect()
 * and take the group with them when they were its last (udp.c).
 *
 * Which fds are listeners: a table of fds, filled at listen() and at
 * dup/dup2/dup3/fcntl(F_DUPFD*) of a tracked fd, read without locks. The
 * close() of an fd that is not a tracked listener costs a load and a
 * compare when nothing is tracked, a short scan of the table otherwise:
 * no allocation, no lock, no system call, safe in a signal handler as
 * close() itself is. The table belongs to one process (see table_pid).
 *
 * Which close is the last reference: decided at that close, from what the
 * kernel shows, not from counts kept by the shim. A listening socket is
 * one open file description shared by every fd and every process that
 * holds it (dup, fork, SCM_RIGHTS, pidfd_getfd, inheritance across exec).
 * A count in shared memory (made at listen(), inherited by fork) would
 * miss every path the shim does not see (posix_spawn and vfork children,
 * exec of a program without the shim, fd passing, _exit, SIGKILL), and a
 * count that is too low makes the shim shut down a socket that another
 * process still serves: the one mistake it must never make. So, only when
 * a tracked listener fd is about to go away (restarts, rare), refs.c reads
 * /proc/PID/fd (readlink: "socket:[INODE]") of this process, of its
 * parent, then of every process, and stops at the first other holder:
 *   - found: not the last reference, the close is only a close;
 *   - none: the last one: drain, close, leave;
 *   - a process could not be read (not root): unknown, handled as "not
 *     the last": a plain close, after which the kernel still migrates the
 *     queue under the attached policy when another member listens.
 * Two holders closing at the same time (a pre-fork master and its worker)
 * would each see the other and neither would drain. The decision and the
 * close therefore run under a POSIX record lock on the socket itself
 * (fcntl(F_SETLK) works on sockets; such locks belong to processes, not to
 * open file descriptions, so holders in different processes exclude each
 * other through the one description they share, and the kernel drops the
 * lock when the process closes the fd), plus a mutex between the threads
 * of a process. Cost: about 20 us per process on the machine, paid at a
 * listener's close only, and a child of the holder finds it in its parent
 * at once.
 *
 * No group handle is kept open between listen() and the close: a handle
 * is a dozen fds that the server's own fd handling (closefrom() after
 * fork, dup2 onto a number) could close or reuse, and its flock() would be
 * shared with every forked child. The group is opened when needed: at
 * listen() from the socket, at the close by name (from its pins: fast).
 *
 * Fail open: without the privileges, bpffs or kernel support, or on any
 * library error, nothing more is registered, the calls behave as without
 * the shim, and one line "sockmig-preload: inactive: WHY" goes to stderr,
 * once per process (SOCKMIG_QUIET=1 silences it). SOCKMIG_DISABLE=1 turns
 * the shim off. Every interposer returns what the real call returned,
 * with its errno, and leaves errno alone on success.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "shim.h"

#define SHIM_EXPORT __attribute__((visibility("default")))

/* bind()'s address argument is a transparent union under _GNU_SOURCE. */
#if defined(__USE_GNU) && !defined(__cplusplus)
#define SHIM_SA(a) ((a).__sockaddr__)
#else
#define SHIM_SA(a) (a)
#endif

struct shim_config shim_cfg = {.wake = -1};
__thread int shim_busy __attribute__((tls_model("initial-exec")));

/*
 * The process the table describes: set at load and in the child of fork().
 * Any other process that runs this code shares or copied the memory
 * without the shim seeing how (vfork(), clone(), _Fork()): a vfork child
 * that changed the table would change its parent's. Such processes only
 * pass calls on. Checked on slow paths only (getpid() is a system call).
 */
static _Atomic pid_t table_pid;

static bool table_owner(void)
{
	return getpid() == atomic_load_explicit(&table_pid, memory_order_relaxed);
}

/* ---- initialisation --------------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static atomic_bool ready;

static void atfork_child(void);

static bool env_true(const char *name)
{
	const char *v = getenv(name);

	return v && *v && strcmp(v, "0") != 0;
}

/* A count of 1 to @max in variable value @v: 0 when unset or empty, -1
 * when it is anything else (said where it is used). */
static long long env_count(const char *v, unsigned long long max)
{
	unsigned long long n;
	char *end;

	if (!v || !*v)
		return 0;
	errno = 0;
	n = strtoull(v, &end, 10);
	return errno || *end || *v == '-' || n < 1 || n > max ? -1 : (long long)n;
}

static void init_once_fn(void)
{
	const char *v;
	char *end;

	shim_real_resolve();

	/*
	 * A setuid or setgid program (or one with file capabilities): its
	 * environment is the caller's, who must not steer what it does with
	 * its privileges. The shim stays out of it entirely, silently, and
	 * reads nothing from the environment.
	 */
	if (getauxval(AT_SECURE)) {
		shim_cfg.disabled = true;
		shim_cfg.quiet = true;
		atomic_store_explicit(&ready, true, memory_order_release);
		return;
	}
	/* glibc's own forks (daemon(3), system(3)...) do not go through the
	 * interposed fork(): the child's bookkeeping runs from here */
	pthread_atfork(NULL, NULL, atfork_child);
	sockmig_set_lock_wait(SHIM_LOCK_WAIT_MS);

	shim_cfg.disabled = env_true("SOCKMIG_DISABLE");
	shim_cfg.quiet = env_true("SOCKMIG_QUIET");
	shim_cfg.debug = env_true("SOCKMIG_DEBUG");
	v = getenv("SOCKMIG_REUSEPORT");
	shim_cfg.reuseport = !env_true("SOCKMIG_REUSEPORT") ? 0
			     : strcmp(v, "udp") == 0	    ? SHIM_REUSEPORT_UDP
			     : strcmp(v, "all") == 0 ? SHIM_REUSEPORT_TCP | SHIM_REUSEPORT_UDP
						     : SHIM_REUSEPORT_TCP;
	shim_cfg.handoff = env_true("SOCKMIG_HANDOFF");
	v = getenv("SOCKMIG_GENERATION");
	if (v && *v) {
		unsigned long long g;

		errno = 0;
		g = strtoull(v, &end, 10);
		if (!errno && !*end && g <= UINT32_MAX) {
			shim_cfg.have_generation = true;
			shim_cfg.generation = (uint32_t)g;
		}
	}
	v = getenv("SOCKMIG_WAKE");
	if (v && *v)
		shim_cfg.wake = *v == '1';
	v = getenv("SOCKMIG_UDP_MODE");
	shim_cfg.udp_mode_str = v;
	if (!v || !*v)
		shim_cfg.udp_mode = SOCKMIG_UDP_MODE_DEFAULT;
	else if (strcmp(v, "flow") == 0)
		shim_cfg.udp_mode = SOCKMIG_UDP_MODE_FLOW;
	else if (strcmp(v, "none") == 0)
		shim_cfg.udp_mode = SOCKMIG_UDP_MODE_NONE;
	else if (strcmp(v, "off") == 0)
		shim_cfg.udp_mode = SHIM_UDP_OFF;
	else
		shim_cfg.udp_mode = -1; /* said at the first UDP registration */
	shim_cfg.udp_idle_str = getenv("SOCKMIG_UDP_IDLE_MS");
	shim_cfg.udp_idle_ms = shim_cfg.udp_idle_str && strcmp(shim_cfg.udp_idle_str, "never") == 0
				       ? SOCKMIG_UDP_NO_EXPIRY
				       : env_count(shim_cfg.udp_idle_str, SHIM_UDP_IDLE_MAX_MS);
	shim_cfg.udp_flow_max_str = getenv("SOCKMIG_UDP_FLOW_MAX");
	shim_cfg.udp_flow_max = env_count(shim_cfg.udp_flow_max_str, SHIM_UDP_FLOW_MAX_LIMIT);
	atomic_store_explicit(&ready, true, memory_order_release);
}

void shim_init(void)
{
	int err;

	if (atomic_load_explicit(&ready, memory_order_acquire))
		return;
	err = errno;
	pthread_once(&init_once, init_once_fn);
	errno = err;
}

__attribute__((constructor)) static void shim_ctor(void)
{
	int err = errno;

	shim_init();
	atomic_store_explicit(&table_pid, getpid(), memory_order_relaxed);
	if (!shim_cfg.disabled) {
		shim_busy++;
		if (shim_cfg.handoff)
			shim_inherit_init();
		else
			shim_listeners_adopt();
		shim_udp_init();
		shim_busy--;
	}
	errno = err;
}

__attribute__((destructor)) static void shim_dtor(void)
{
	int err = errno;

	if (!shim_cfg.disabled && !shim_busy && table_owner()) {
		shim_busy++;
		shim_defer_flush(); /* what signal handlers left to the helper */
		shim_busy--;
		if (atomic_load_explicit(&shim_ntracked, memory_order_acquire) > 0)
			shim_listeners_exit();
		shim_busy++;
		shim_groups_exit();
		shim_busy--;
	}
	errno = err;
}

void shim_say(const char *fmt, ...)
{
	char buf[600];
	int err = errno, n;
	va_list ap;

	n = snprintf(buf, sizeof(buf), "sockmig-preload: ");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	while (n > 0 && buf[n - 1] == '\n')
		n--;
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		errno = err; /* nothing else to do with a closed stderr */
	errno = err;
}

/* Nothing tracked, or the shim's own code calling: straight through. */
static inline bool fast(void)
{
	return shim_busy || atomic_load_explicit(&shim_ntracked, memory_order_relaxed) == 0;
}

/* @fd is a tracked listener and this process may act on it. */
static bool tracked(int fd)
{
	return shim_table_find(fd) >= 0 && table_owner();
}

/* @newfd is a copy of @oldfd: track it too when @oldfd is tracked. */
static void track_copy(int oldfd, int newfd)
{
	struct shim_entry e;
	int err = errno;

	if (oldfd != newfd && shim_table_get(oldfd, &e, false) && shim_fd_is_socket(newfd, e.ino))
		shim_table_put(newfd, &e);
	errno = err;
}

/* ---- the interposers -------------------------------------------------- */

static int op_close(int fd, void *arg)
{
	(void)arg;
	return shim_real.close(fd);
}

/* With SOCKMIG_HANDOFF: nothing is tracked, the inherited listeners are
 * guarded instead (see inherit.c). */
static inline bool handing_off(void)
{
	return shim_cfg.handoff && !shim_cfg.disabled && !shim_busy && shim_inherit_count() > 0;
}

/* A tracked UDP member goes through shim_udp_release() (udp.c). */
SHIM_EXPORT int close(int fd)
{
	shim_init();
	if (handing_off() && shim_inherit_private(fd))
		return 0; /* the server closes what it does not know: keep it */
	if (fast() || !tracked(fd))
		return shim_real.close(fd);
	return shim_release(fd, op_close, NULL);
}

SHIM_EXPORT int listen(int fd, int backlog)
{
	int ret, err;

	shim_init();
	ret = shim_real.listen(fd, backlog);
	if (ret != 0 || shim_busy || shim_cfg.disabled || shim_cfg.handoff || !table_owner())
		return ret;
	err = errno;
	shim_busy++;
	shim_listener_listen(fd);
	shim_busy--;
	errno = err;
	return ret;
}

SHIM_EXPORT int shutdown(int fd, int how)
{
	shim_init();
	if (handing_off() && how != SHUT_WR && shim_inherit_shared(fd)) {
		shim_debug("fd %d: shutdown of the shared listener not made", fd);
		return 0;
	}
	if (fast() || !tracked(fd))
		return shim_real.shutdown(fd, how);
	/* a drain is no work for a signal handler: the plain shutdown, under
	 * the policy the kernel still migrates the queue */
	if (shim_maybe_in_handler())
		return shim_real.shutdown(fd, how);
	return shim_listener_shutdown(fd, how);
}

/*
 * In a legacy group, a draining process hands what it accepts to a live
 * member's endpoint and then makes one connection to it: the server wakes
 * on its listener, and its accept() gets the hand-offs first.
 */
static int accept_common(int fd, struct sockaddr *addr, socklen_t *len, int flags, bool four)
{
	int c, err = errno;

	shim_init();
	if (!fast() && atomic_load_explicit(&shim_nendpoints, memory_order_relaxed) > 0 &&
	    tracked(fd)) {
		c = shim_handoff_take(fd, addr, len, flags);
		if (c >= 0)
			return c;
		errno = err;
	}
	return four ? shim_real.accept4(fd, addr, len, flags) : shim_real.accept(fd, addr, len);
}

SHIM_EXPORT int accept(int fd, __SOCKADDR_ARG addr, socklen_t *len)
{
	return accept_common(fd, SHIM_SA(addr), len, 0, false);
}

SHIM_EXPORT int accept4(int fd, __SOCKADDR_ARG addr, socklen_t *len, int flags)
{
	return accept_common(fd, SHIM_SA(addr), len, flags, true);
}

/* SOCKMIG_REUSEPORT: SO_REUSEPORT on a TCP (1, all) or UDP (udp, all)
 * socket about to be bound to a port, so that servers which never set it
 * share the port. UDP only when asked: a program that binds UDP ports to
 * find a free one relies on EADDRINUSE. */
static void set_reuseport(int fd, const struct sockaddr *sa, socklen_t len)
{
	int err = errno, type = 0, proto = 0, one = 1;
	socklen_t l = sizeof(int);

	if (!sa || len < sizeof(struct sockaddr_in) ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return;
	/* sin_port and sin6_port sit at the same offset */
	if (((const struct sockaddr_in *)sa)->sin_port == 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) == 0 &&
	    ((type == SOCK_STREAM && (shim_cfg.reuseport & SHIM_REUSEPORT_TCP)) ||
	     (type == SOCK_DGRAM && (shim_cfg.reuseport & SHIM_REUSEPORT_UDP))) &&
	    (l = sizeof(int), getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l)) == 0 &&
	    proto == (type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP))
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	errno = err;
}

SHIM_EXPORT int bind(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	int ret, err;

	shim_init();
	if (handing_off() && shim_inherit_bind(fd, SHIM_SA(addr), len))
		return 0;
	if (shim_cfg.reuseport && !shim_cfg.disabled && !shim_busy)
		set_reuseport(fd, SHIM_SA(addr), len);
	ret = shim_real.bind(fd, SHIM_SA(addr), len);
	/* UDP: registered once bound (a port, not 0); listen() does it for
	 * TCP. With SOCKMIG_HANDOFF (no BPF for TCP) only when asked for
	 * (SOCKMIG_REUSEPORT=udp: sockmig run --proto all where the kernel
	 * cannot migrate, and UDP groups need no migration). */
	if (ret != 0 || shim_busy || shim_cfg.disabled ||
	    (shim_cfg.handoff && !(shim_cfg.reuseport & SHIM_REUSEPORT_UDP)) ||
	    shim_cfg.udp_mode == SHIM_UDP_OFF || !shim_udp_candidate(SHIM_SA(addr), len) ||
	    !table_owner())
		return ret;
	err = errno;
	shim_busy++;
	shim_udp_bind(fd);
	shim_busy--;
	errno = err;
	return ret;
}

/* A tracked UDP member connected to one peer leaves its group (udp.c).
 * Nothing of the caller's address is read before the fd is known to be
 * tracked (a bad pointer fails with EFAULT, as without the shim), and a
 * connect() from a signal handler (async-signal-safe) is only the real one. */
SHIM_EXPORT int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	const struct sockaddr *sa = SHIM_SA(addr);

	shim_init();
	if (fast() || !tracked(fd) || !sa || len < sizeof(sa_family_t) ||
	    sa->sa_family == AF_UNSPEC || shim_maybe_in_handler())
		return shim_real.connect(fd, sa, len);
	return shim_udp_connect(fd, sa, len);
}

SHIM_EXPORT int dup(int oldfd)
{
	int ret;

	shim_init();
	ret = shim_real.dup(oldfd);
	if (ret >= 0 && !fast() && tracked(oldfd))
		track_copy(oldfd, ret);
	return ret;
}

struct dup_args {
	int oldfd, flags;
	bool three;
};

static int op_dup(int newfd, void *arg)
{
	const struct dup_args *a = arg;

	return a->three ? shim_real.dup3(a->oldfd, newfd, a->flags)
			: shim_real.dup2(a->oldfd, newfd);
}

/* dup2/dup3: the old @newfd is closed by the call itself. */
static int dup_common(int oldfd, int newfd, int flags, bool three)
{
	struct dup_args a = {oldfd, flags, three};
	int ret;

	shim_init();
	if (handing_off() && oldfd != newfd)
		shim_inherit_move(newfd); /* a private copy is not the server's to replace */
	if (fast())
		return op_dup(newfd, &a);
	if (oldfd != newfd && tracked(newfd) &&
	    shim_real.fcntl(oldfd, F_GETFD) >= 0 /* else it fails, @newfd stays */)
		ret = shim_release(newfd, op_dup, &a);
	else
		ret = op_dup(newfd, &a);
	if (ret >= 0 && !fast() && tracked(oldfd))
		track_copy(oldfd, ret);
	return ret;
}

SHIM_EXPORT int dup2(int oldfd, int newfd)
{
	return dup_common(oldfd, newfd, 0, false);
}

SHIM_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	return dup_common(oldfd, newfd, flags, true);
}

static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
	int ret = real(fd, cmd, arg);

	if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && ret >= 0 && !fast() && tracked(fd))
		track_copy(fd, ret);
	return ret;
}

/* The argument, when there is one, is an int or a pointer: passed on as a
 * pointer-sized word, as glibc itself does. */
SHIM_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	shim_init();
	return fcntl_common(shim_real.fcntl, fd, cmd, arg);
}

SHIM_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	shim_init();
	return fcntl_common(shim_real.fcntl64, fd, cmd, arg);
}

/*
 * A forked child holds every listener of its parent: nothing to count,
 * refs.c will see both at the close. The child only gets fresh locks (a
 * thread of the parent may have held one; the table itself is always
 * consistent for readers). Run by pthread_atfork(), so that the forks
 * glibc makes itself (daemon(3)) get it too; fork() is still interposed
 * for the fallback to the raw system call, which runs no handlers.
 */
static void atfork_child(void)
{
	int err = errno;

	atomic_store_explicit(&table_pid, getpid(), memory_order_relaxed);
	shim_table_atfork_child();
	shim_member_atfork_child();
	shim_defer_atfork_child();
	shim_delegate_atfork_child();
	errno = err;
}

SHIM_EXPORT pid_t fork(void)
{
	pid_t pid;

	shim_init();
	pid = shim_real.fork();
	if (pid == 0 && shim_real_fork_is_raw())
		atfork_child();
	return pid;
}

/* Tracked fds in [first, last] go through the release one by one first. */
static void release_range(unsigned int first, unsigned int last)
{
	int fds[SHIM_MAX_FDS], n, err = errno;

	n = shim_table_fds(fds, SHIM_MAX_FDS);
	for (int i = 0; i < n; i++)
		if ((unsigned int)fds[i] >= first && (unsigned int)fds[i] <= last)
			shim_release(fds[i], op_close, NULL);
	errno = err;
}

SHIM_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	int ret, err;

	shim_init();
	shim_defer_range_begin();
	/* CLOEXEC closes nothing now; UNSHARE closes in a private copy of the
	 * fd table, the listeners stay open in the shared one */
	if (!fast() && !(flags & (int)(CLOSE_RANGE_CLOEXEC | CLOSE_RANGE_UNSHARE)) && table_owner())
		release_range(first, last);
	if (handing_off())
		ret = shim_inherit_close_range(first, last, flags);
	else
		ret = shim_defer_close_range(first, last, flags);
	err = errno;
	shim_defer_range_end();
	errno = err;
	return ret;
}

SHIM_EXPORT void closefrom(int lowfd)
{
	int err;

	shim_init();
	shim_defer_range_begin();
	if (!fast() && lowfd >= 0 && table_owner())
		release_range((unsigned int)lowfd, ~0U);
	if (handing_off() && lowfd >= 0)
		shim_inherit_close_range((unsigned int)lowfd, ~0U, 0);
	else if (lowfd < 0 || shim_defer_close_range((unsigned int)lowfd, ~0U, 0) != 0)
		shim_real.closefrom(lowfd);
	err = errno;
	shim_defer_range_end();
	errno = err;
}
