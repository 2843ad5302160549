/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Internals of libsockmig-preload.so, shared by its files:
 *   preload.c   the interposers and the configuration;
 *   real.c      the real symbols (raw system calls as fallbacks);
 *   table.c     the lock-free table of tracked listener fds;
 *   member.c    what happens to a listener: registration at listen(),
 *               drain and leave at its last close, drain at shutdown();
 *   endpoint.c  the hand-off endpoints of legacy groups, and accept();
 *   sockinfo.c  facts about sockets and this process;
 *   refs.c      "is this the last reference to the socket?", across
 *               processes;
 *   delegate.c  decisions handed to a root ancestor;
 *   defer.c     work out of signal handlers;
 *   inherit.c   the listener a supervisor hands down (SOCKMIG_HANDOFF=1),
 *               put in place of the server's own at bind();
 *   udp.c       UDP sockets with SO_REUSEPORT: registered at bind() in
 *               their port's UDP group, tracked in the table, out of it
 *               at connect(), the group collected after their close.
 * Everything here is hidden (-fvisibility=hidden); the version script
 * preload/preload.map exports only the interposers.
 */
#ifndef SOCKMIG_PRELOAD_SHIM_H
#define SOCKMIG_PRELOAD_SHIM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "sockmig.h"

/* The real functions, resolved once with dlsym(RTLD_NEXT). */
struct shim_real {
	int (*close)(int);
	int (*listen)(int, int);
	int (*shutdown)(int, int);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
	pid_t (*fork)(void);
	int (*close_range)(unsigned int, unsigned int, int);
	void (*closefrom)(int);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*connect)(int, const struct sockaddr *, socklen_t);
};
extern struct shim_real shim_real;
/* Fill shim_real (real.c); the raw system call where dlsym() fails. */
void shim_real_resolve(void);
/* fork() is the raw system call, which runs no fork handlers. */
bool shim_real_fork_is_raw(void);

/* SOCKMIG_UDP_MODE=off: no UDP socket is registered */
#define SHIM_UDP_OFF		(-2)
#define SHIM_UDP_IDLE_MAX_MS	86400000ull  /* a day */
#define SHIM_UDP_FLOW_MAX_LIMIT (1ull << 24) /* the library's (udp.h) */
#define SHIM_REUSEPORT_TCP	1u
#define SHIM_REUSEPORT_UDP	2u

/* Configuration, read once from the environment. */
struct shim_config {
	bool disabled; /* SOCKMIG_DISABLE=1: every call goes straight through */
	bool quiet;    /* SOCKMIG_QUIET=1: not even the "inactive" line */
	bool debug;    /* SOCKMIG_DEBUG=1: one line per action on stderr */
	/* SOCKMIG_REUSEPORT: SO_REUSEPORT before bind() on TCP sockets (1),
	 * UDP sockets (udp) or both (all) */
	unsigned int reuseport;
	bool have_generation;
	uint32_t generation; /* SOCKMIG_GENERATION */
	int wake;	     /* SOCKMIG_WAKE: -1 unset, 0 never, 1 always */
	bool handoff;	     /* SOCKMIG_HANDOFF=1: inherited listeners, no BPF */
	/* SOCKMIG_UDP_MODE: an enum sockmig_udp_mode, -1 when bad; as given */
	int udp_mode;
	const char *udp_mode_str;
	/* SOCKMIG_UDP_IDLE_MS and SOCKMIG_UDP_FLOW_MAX (a new group's table):
	 * 0 unset (the library's default), -1 bad; as given */
	long long udp_idle_ms, udp_flow_max;
	const char *udp_idle_str, *udp_flow_max_str;
};
extern struct shim_config shim_cfg;

/* Resolve the real symbols and read the configuration (once). */
void shim_init(void);

/*
 * Nonzero while this thread runs the shim's own code: the library's and
 * libbpf's calls to close(), shutdown(), listen()... then go straight to
 * libc. Initial-exec TLS: a plain load, safe in a signal handler.
 */
extern __thread int shim_busy __attribute__((tls_model("initial-exec")));

/* ---- the table of tracked listener fds (table.c) --------------------- */

#define SHIM_MAX_FDS 512

/* One fd that refers to a registered listener. */
struct shim_entry {
	_Atomic int fdp1;  /* fd + 1; 0 when the entry is free */
	unsigned long ino; /* the socket's inode, to catch a reused fd number */
	uint64_t cookie;   /* SO_COOKIE: the member's key in the group */
	char group[SOCKMIG_NAME_MAX];
};

/* Number of tracked fds: 0 keeps every interposer on its fast path. */
extern _Atomic int shim_ntracked;

/* Lock-free: index of @fd's entry, or -1. */
int shim_table_find(int fd);
/* Copy @fd's entry into @out; with @take, free it too. */
bool shim_table_get(int fd, struct shim_entry *out, bool take);
/* Track @fd as @e (replacing an entry of the same fd). False when full. */
bool shim_table_put(int fd, const struct shim_entry *e);
bool shim_table_full(void);
/* Up to @max tracked fds into @fds; returns their number. Lock-free. */
int shim_table_fds(int *fds, int max);
/* Lock-free (for signal handlers): copy @fd's entry into @out and free it. */
bool shim_table_take_nolock(int fd, struct shim_entry *out);
/* In the child of fork(): fresh table and decision locks. */
void shim_table_atfork_child(void);

/* Serializes the slow paths of this process (registration, release,
 * shutdown); taken before the table's own lock. */
extern pthread_mutex_t shim_decide_lock;

/* ---- listeners (member.c) -------------------------------------------- */

/* After a successful listen(): register @fd if it is a TCP listener with
 * SO_REUSEPORT. */
void shim_listener_listen(int fd);

/* The real call @op is about to make tracked @fd go away (close, dup2 or
 * dup3 onto it, close_range): decide whether it is the last reference to
 * the socket, drain when it is, run @op, leave the group. Returns what
 * @op returned, with its errno. */
typedef int (*shim_op_fn)(int fd, void *arg);
int shim_listener_release(int fd, shim_op_fn op, void *arg);

/* The same for a listener already out of the table: its entry @e, on
 * @fd, which @op makes go away. */
int shim_listener_release_entry(int fd, const struct shim_entry *e, shim_op_fn op, void *arg);

/* Longest wait for a group's lock held by another process (ms): past it,
 * the call goes on without sockmig. */
#define SHIM_LOCK_WAIT_MS 500
/* Longest legacy drain inside close() (ms). */
#define SHIM_LEGACY_DRAIN_MS 2000

/* ---- work out of signal handlers (defer.c) ------------------------------ */

/* This thread may be running a signal handler: some signal that has a
 * handler is blocked in it. Async-signal-safe. */
bool shim_maybe_in_handler(void);

/* shim_listener_release(), or, when shim_maybe_in_handler(), its
 * async-signal-safe half: keep the socket open on a private dup, make
 * @op, and leave the decision and the drain to this process's helper
 * thread. */
int shim_release(int fd, shim_op_fn op, void *arg);

/* Start this process's helper thread (once per process; not from a
 * signal handler). */
void shim_defer_start(void);
/* Release what is still deferred, in the calling thread (exit). */
void shim_defer_flush(void);
/* close_range() that leaves the dups of deferred releases open. */
int shim_defer_close_range(unsigned int first, unsigned int last, int flags);
/* Around a whole close_range()/closefrom(): wait (bounded) for a release
 * in progress, hold the releases deferred inside, hand them to the helper
 * at the end. Async-signal-safe. */
void shim_defer_range_begin(void);
void shim_defer_range_end(void);
/* In the child of fork(): the parent's deferred work is not its own. */
void shim_defer_atfork_child(void);

/* shutdown(@fd, @how) of a tracked listener: drain first. */
int shim_listener_shutdown(int fd, int how);

/* At exit(): release every tracked listener whose last reference this
 * process holds. */
void shim_listeners_exit(void);
/* At exit, after shim_listeners_exit(): the groups of this network
 * namespace lose the members nobody listens with any more whose owner is
 * gone or this process, and go when none is left. */
void shim_groups_exit(void);

/* At load: track the listeners inherited across exec. */
void shim_listeners_adopt(void);

/* After fork(), in the child. */
void shim_member_atfork_child(void);

/* Listeners of legacy groups with a hand-off endpoint in this process:
 * 0 keeps accept() on its fast path. */
extern _Atomic int shim_nendpoints;

/* accept()/accept4() on tracked @fd: a connection another process's drain
 * handed to this listener's endpoint, made as accept4(@flags) would have
 * made it (and its peer address in @addr), or -1 when none waits. */
int shim_handoff_take(int fd, struct sockaddr *addr, socklen_t *len, int flags);

/* The hand-off endpoint of listener @ino in this process, or -1
 * (endpoint.c). */
int shim_endpoint_of(unsigned long ino);
/* Note endpoint @ep of listener @ino (closed when the table is full). */
void shim_endpoint_add(unsigned long ino, int ep);
/* This process no longer holds the socket @ino: its endpoint goes; its
 * name too when no process holds the socket any more (@last). */
void shim_endpoint_drop(unsigned long ino, bool last);
/* Another tracked fd of this process refers to socket @ino. */
bool shim_holds_socket(unsigned long ino);

/* Shared with udp.c: the library's and libbpf's messages only with
 * SOCKMIG_DEBUG, between begin and end; "inactive: WHY" once per process
 * (no more registrations, TCP or UDP); whether that was said; whether the
 * last library call failed because another process holds a group's lock
 * (said once). */
void shim_quiet_begin(void);
void shim_quiet_end(void);
void shim_go_inactive(const char *why);
bool shim_is_inactive(void);
bool shim_lock_timed_out(void);

/* ---- UDP sockets (udp.c) ---------------------------------------------- */

/* At load (not from a forked child): this image's UDP generation. */
void shim_udp_init(void);
/* @sa is an IPv4 or IPv6 address with a port (not 0). No system call. */
bool shim_udp_candidate(const struct sockaddr *sa, socklen_t len);
/* After a successful bind() of @fd to such an address: a UDP socket with
 * SO_REUSEPORT (not connected) joins its port's UDP group, and is tracked
 * in the table with the group's name. */
void shim_udp_bind(int fd);
/* The table's entry @e is a UDP member's (its group is a UDP group). */
bool shim_udp_entry(const struct shim_entry *e);
/* shim_listener_release_entry() of a UDP member: @op, then, when this
 * process holds the socket no more, the group goes if no live member is
 * left. */
int shim_udp_release(int fd, const struct shim_entry *e, shim_op_fn op, void *arg);
/* connect() of tracked @fd to @sa (not AF_UNSPEC): a UDP member leaves its
 * group first (registered again when the connect fails). */
int shim_udp_connect(int fd, const struct sockaddr *sa, socklen_t len);

/* ---- facts about sockets and this process (sockinfo.c) ---------------- */

/* The socket behind @fd is still the socket with inode @ino. */
bool shim_fd_is_socket(int fd, unsigned long ino);
bool shim_is_listening(int fd);
/* A TCP socket (IPv4 or IPv6) with SO_REUSEPORT. */
bool shim_tcp_reuseport_listener(int fd);
/* The socket's network namespace; the thread's when the kernel will not
 * say. */
unsigned long shim_sock_netns(int fd);
/* CAP_NET_ADMIN and CAP_BPF (or CAP_SYS_ADMIN) in the effective set. */
bool shim_bpf_privileged(void);
/* This process's generation: its start time, or SOCKMIG_GENERATION. */
uint32_t shim_process_generation(void);
/* The name of @fd's group into @name (SOCKMIG_NAME_MAX); < 0 when none. */
int shim_group_of(int fd, char *name);
/* @fd's entry computed from the socket alone (a TCP SO_REUSEPORT
 * listener); false when it is none. */
bool shim_entry_of_fd(int fd, struct shim_entry *e);

/* ---- inherited listeners (inherit.c) ---------------------------------- */

/* At load, with SOCKMIG_HANDOFF=1: keep the listeners of LISTEN_FDS (when
 * LISTEN_PID is this process) on private fds. */
void shim_inherit_init(void);
int shim_inherit_count(void);

/* bind(@fd, @sa) to the address of an inherited listener: put that
 * listener in place of @fd. 1 when done (the bind succeeded), else 0. */
int shim_inherit_bind(int fd, const struct sockaddr *sa, socklen_t len);

/* @fd is one of the shim's private copies. */
bool shim_inherit_private(int fd);

/* @fd refers to an inherited (shared) listening socket. */
bool shim_inherit_shared(int fd);

/* dup2()/dup3() onto @fd follows: a private copy there moves away. */
void shim_inherit_move(int fd);

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* close_range() that leaves the private copies open (in the unshared fd
 * table with CLOSE_RANGE_UNSHARE). */
int shim_inherit_close_range(unsigned int first, unsigned int last, int flags);

/* ---- references (refs.c) ---------------------------------------------- */

/* Take this process's POSIX write lock on socket @fd (the cross-process
 * decision lock; released by the close itself). */
bool shim_refs_lock(int fd);
void shim_refs_unlock(int fd);

/* References to the socket with inode @ino other than fd @fd of this
 * process: > 0 some, 0 none, < 0 unknown (a process could not be read). */
int shim_refs_others(unsigned long ino, int fd);
/* Why the last shim_refs_lock() or shim_refs_others() of this thread
 * could not answer (for the debug line). */
extern __thread char shim_refs_why[96];

/* ---- decisions handed to a root ancestor (delegate.c) ------------------ */

/* In a root process, at its first registration or adoption (before it
 * forks): the channel and the thread that decides for its children. */
void shim_delegate_start(void);
void shim_delegate_atfork_child(void);
/* Under the decision lock on @fd, before its plain close: hand a copy of
 * @fd (entry @e) to the root ancestor that decides. True when sent. */
bool shim_delegate(int fd, const struct shim_entry *e);

/* ---- messages --------------------------------------------------------- */

/* One line "sockmig-preload: ..." on stderr, in one write(). */
void shim_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define shim_debug(...)                                                                            \
	do {                                                                                       \
		if (shim_cfg.debug)                                                                \
			shim_say(__VA_ARGS__);                                                     \
	} while (0)

#endif
