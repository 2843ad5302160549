/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/**
 * @file sockmig.h
 * libsockmig: a select-or-migrate policy for SO_REUSEPORT groups.
 *
 * A *group* is the kernel's SO_REUSEPORT group of TCP listeners sharing one
 * network namespace, address family, address and port. libsockmig attaches
 * one BPF policy program to the group and keeps its state in maps pinned
 * under a root-only directory in bpffs, so that every process of the group
 * shares them. Listeners are registered as *members* with a role, a
 * generation and a weight:
 *
 * - new SYNs go to active members only (by hash, or by weight), to a holder
 *   only when no member is active;
 * - when a member stops listening, its queued children and half-open
 *   requests migrate to an active member of the newest generation (else a
 *   holder); they are cancelled when every such member's listener settings
 *   differ (TCP_SAVE_SYN, TCP_DEFER_ACCEPT, TCP_FASTOPEN, address family),
 *   and left to the kernel's hash over the listeners still live when no
 *   registered member is left (a listener not registered yet may be one).
 *
 * Conventions (as libbpf): handles are opaque; functions returning int
 * return 0 or a positive count on success and a negative errno on failure
 * (errno is set too); functions returning a pointer return NULL and set
 * errno. Options structs start with their size: declare them with
 * SOCKMIG_OPTS() so that old and new callers both work (a NULL options
 * pointer means every default; bytes past the fields this library knows
 * must be zero, else the call fails with EINVAL).
 */
#ifndef SOCKMIG_H
#define SOCKMIG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h> /* memset, for SOCKMIG_OPTS() */
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef SOCKMIG_API
#define SOCKMIG_API __attribute__((visibility("default")))
#endif

/** Declare an options struct @p NAME of @p TYPE with its size set. */
#define SOCKMIG_OPTS(TYPE, NAME, ...)                                                              \
	struct TYPE NAME = ({                                                                      \
		memset(&NAME, 0, sizeof(struct TYPE));                                             \
		(struct TYPE){.sz = sizeof(struct TYPE), __VA_ARGS__};                             \
	})

/** Default bpffs directory under which groups are pinned. */
#define SOCKMIG_PIN_ROOT "/sys/fs/bpf/sockmig"

/* ---- logging ---------------------------------------------------------- */

enum sockmig_log_level {
	SOCKMIG_WARN,
	SOCKMIG_INFO,
	SOCKMIG_DEBUG,
};

/** A log callback: one message of @p level, as a printf format and its
 *  arguments. Its return value is ignored. */
typedef int (*sockmig_print_fn)(enum sockmig_log_level level, const char *fmt, va_list ap);

/**
 * Set the log callback (NULL silences the library).
 * The default prints warnings to stderr.
 * @return the previous callback.
 */
SOCKMIG_API sockmig_print_fn sockmig_set_print(sockmig_print_fn fn);

/** The message of the last failed call of the calling thread ("" before
 *  any): a buffer of that thread, valid until its next failed call. */
SOCKMIG_API const char *sockmig_last_error(void);

/**
 * Bound every wait of this process for a group's lock to @p ms ms (the
 * lock every change of a group's members takes, held by one process at a
 * time); past it the call fails with -ETIMEDOUT. @p ms < 0 (the default):
 * wait as long as it takes; 0: fail at once when another process holds it.
 * For code that must not block behind another process (the preload shim,
 * inside a server's listen() and close(): a stopped process holding the
 * lock would stop the server). Process-wide; set it before other threads
 * use groups. @return the previous bound (-1: none).
 */
SOCKMIG_API int sockmig_set_lock_wait(int ms);

/* ---- capability probe -------------------------------------------------- */

enum sockmig_mode {
	SOCKMIG_MODE_NONE = 0,	 /**< no usable sk_reuseport BPF */
	SOCKMIG_MODE_SELECT = 1, /**< select programs only (4.19-5.13) */
	SOCKMIG_MODE_NATIVE = 2, /**< select-or-migrate (5.14+) */
};

/** Tri-state answers of the probe. */
enum sockmig_tristate {
	SOCKMIG_UNKNOWN = -1,
	SOCKMIG_NO = 0,
	SOCKMIG_YES = 1,
};

struct sockmig_probe {
	enum sockmig_mode mode;
	/** A select program loaded and steered a SYN. */
	enum sockmig_tristate bpf_select;
	/** A migrate program loaded (the verifier knows migrating_sk). */
	enum sockmig_tristate bpf_migrate;
	/** A child queued on A was found on B after shutdown(A), program attached. */
	enum sockmig_tristate migrate_bpf;
	/** The same with net.ipv4.tcp_migrate_req=1 and no program. */
	enum sockmig_tristate migrate_sysctl;
	/** Children migrated at close wake an epoll waiter on the target
	 *  (SOCKMIG_NO: the missing wake-up, CVE-2026-46015). */
	enum sockmig_tristate migrate_wakeup;
	/** The sysctl file exists (reported, never trusted). */
	bool sysctl_file;
	/** bpffs is mounted at /sys/fs/bpf. */
	bool bpffs;
	/** errno of the first BPF load that failed, 0 if none. */
	int bpf_errno;
	char kernel[65];
	/** Why mode is what it is, one line. */
	char reason[160];
};

/**
 * Find out what this kernel can do, by behaviour, in a scratch network
 * namespace (a child process; the caller's namespace is not touched).
 * Needs CAP_SYS_ADMIN for the namespace; without it the answers are
 * SOCKMIG_UNKNOWN and reason says why.
 * @return 0, or a negative errno when the probe itself could not run.
 */
SOCKMIG_API int sockmig_probe(struct sockmig_probe *out);

/** Name of a mode: "none", "select-only", "native". */
SOCKMIG_API const char *sockmig_mode_str(enum sockmig_mode mode);

/**
 * The migration step of sockmig_probe() without a program, in the calling
 * thread's network namespace as it is (its net.ipv4.tcp_migrate_req is
 * neither read nor changed): a child queued on a listener A of
 * 127.0.0.1:@p port (SO_REUSEPORT), a listener B joins, A is shut down.
 * It never blocks: every wait is bounded (about 2 s in all), so a kernel
 * that migrates nothing answers too.
 * @return SOCKMIG_YES: the child was found on B (the kernel migrated it by
 * the sysctl); SOCKMIG_NO: it was not; SOCKMIG_UNKNOWN: the step could not
 * be set up (@p port not in 1-65535, taken by a listener without
 * SO_REUSEPORT, lo down, no client connected within 1 s).
 */
SOCKMIG_API enum sockmig_tristate sockmig_probe_migrate_sysctl(int port);

/* ---- groups and members ------------------------------------------------ */

struct sockmig_group;

/** When drains wake the owners of the listeners that took connections. */
enum sockmig_wake {
	/** Ask sockmig_probe() once per process (environment SOCKMIG_WAKE=0|1
	 *  overrides): wake only where the kernel misses the wake-up. */
	SOCKMIG_WAKE_AUTO = 0,
	SOCKMIG_WAKE_ALWAYS = 1,
	SOCKMIG_WAKE_NEVER = 2,
};

/** Which policy program serves a group (see "legacy mode" below). */
enum sockmig_policy {
	/** Environment SOCKMIG_MODE=native|legacy|auto decides; else native
	 *  when the kernel's verifier loads the migrate program, legacy when
	 *  it does not (the kernels sockmig_probe() calls select-only). */
	SOCKMIG_POLICY_AUTO = 0,
	/** Select-or-migrate program (5.14+): the kernel migrates. */
	SOCKMIG_POLICY_NATIVE = 1,
	/** Select program only (4.19+); drain with
	 *  sockmig_member_drain_legacy(). Forced, it is what the tests use on
	 *  newer kernels (with net.ipv4.tcp_migrate_req=0). */
	SOCKMIG_POLICY_LEGACY = 2,
};

struct sockmig_group_opts {
	size_t sz;
	/** bpffs directory for groups; default SOCKMIG_PIN_ROOT. */
	const char *pin_root;
	/** Wake the targets of migrations made at close with a connection of
	 *  their own (needed on kernels with the missing wake-up). */
	enum sockmig_wake wake_targets;
	/** Which policy program; default SOCKMIG_POLICY_AUTO. (It was an
	 *  int: the enum has the same size and offset.) */
	enum sockmig_policy policy;
	size_t : 0;
};
#define sockmig_group_opts__last_field policy

/**
 * Open the group of the listening TCP socket @p fd, creating its pinned
 * state and attaching the policy program when it is the first.
 * The socket must be bound with SO_REUSEPORT (it need not listen yet).
 * @return a handle, or NULL with errno set (EINVAL: not a TCP socket with
 * SO_REUSEPORT bound to a port; ENOENT: no bpffs; EPERM: no privileges,
 * or a pin root or group directory that is not a 0700 directory of the
 * caller; a root caller moves a pin root of another user aside instead,
 * see libsockmig(3)).
 */
SOCKMIG_API struct sockmig_group *sockmig_group_open(int fd, const struct sockmig_group_opts *opts);

/** Longest group name, with its NUL. */
#define SOCKMIG_NAME_MAX 96

/**
 * Open the existing group pinned as @p name (see sockmig_group_name()),
 * without a socket of it: to read it, change members by cookie, drain
 * by cookie. @return a handle, or NULL with errno set (ENOENT: no such
 * group; EPERM: not readable by the caller; EINVAL: not a group name).
 */
SOCKMIG_API struct sockmig_group *sockmig_group_open_name(const char *name,
							  const struct sockmig_group_opts *opts);

/**
 * List the pinned groups (only opts->pin_root is used; opts may be NULL):
 * up to @p max names into @p names.
 * @return the number of groups (may exceed @p max), or a negative errno.
 */
SOCKMIG_API int sockmig_group_list(const struct sockmig_group_opts *opts,
				   char (*names)[SOCKMIG_NAME_MAX], int max);

/**
 * The group name of a listener of @p family (AF_INET/AF_INET6) bound to
 * @p addr (struct in_addr / struct in6_addr) and @p port in the network
 * namespace whose inode is @p netns. @return 0 or -EINVAL.
 */
SOCKMIG_API int sockmig_group_name_for(int family, const void *addr, int port, uint64_t netns,
				       char *buf, size_t len);

/** Free the handle; pinned state stays (see sockmig_member_leave()). */
SOCKMIG_API void sockmig_group_close(struct sockmig_group *g);

/** The group's directory name, e.g. "4026531840-tcp4-127_0_0_1-8080"
 *  (bpffs allows no dots in names). */
SOCKMIG_API const char *sockmig_group_name(const struct sockmig_group *g);

/** The group's pinned directory. */
SOCKMIG_API const char *sockmig_group_path(const struct sockmig_group *g);

/**
 * (Re)attach the policy program to the group through member socket @p fd.
 * sockmig_group_open() does it; call this for a listener that may have
 * started a new kernel group (all old members had closed).
 * @return 0 or a negative errno.
 */
SOCKMIG_API int sockmig_group_attach(struct sockmig_group *g, int fd);

/**
 * Give the kernel's SO_REUSEPORT group of listener @p fd its own selection
 * back: detach the program attached to it (sockmig's policy or any other),
 * through any socket of the group (SO_DETACH_REUSEPORT_BPF). The pinned
 * state of a sockmig group is not touched (see sockmig_group_destroy()).
 * @return 0; -ENOENT when no program was attached; -EINVAL when @p fd has
 * no SO_REUSEPORT; -ENOPROTOOPT before Linux 5.3; -ENOTSOCK, -EBADF.
 */
SOCKMIG_API int sockmig_group_detach(int fd);

/*
 * The lease: a process that keeps a group's registration current for
 * servers that do not register themselves (sockmig attach) sets a lease
 * and renews it while it runs. When it is set and has run out (that
 * process crashed, was killed or stopped), the policy trusts the
 * registered set no more for new SYNs: they go by the kernel's hash over
 * every live listener of the group, so that none that appeared since
 * starves (draining members get SYNs again too, until the lease is
 * renewed). Migrations still follow the registered set. Servers that
 * maintain their own membership set no lease (the default: 0).
 */

/**
 * Set the group's lease to run out @p ms from now (CLOCK_MONOTONIC);
 * calling it again renews it; 0 removes the lease. Takes no lock: cheap
 * enough for every renewal interval. @return 0 or a negative errno.
 */
SOCKMIG_API int sockmig_group_set_lease(struct sockmig_group *g, uint32_t ms);

/** A group's lease, as sockmig_group_lease() reads it. */
struct sockmig_lease {
	bool set;	     /**< a lease was set (and not removed) */
	bool expired;	     /**< set and run out: new SYNs by the kernel's hash */
	uint64_t left_ms;    /**< time left, 0 when expired or not set */
	uint64_t syn_passed; /**< SYNs left to the kernel's hash on expiry */
};

/** Read the group's lease into @p out. @return 0 or a negative errno. */
SOCKMIG_API int sockmig_group_lease(struct sockmig_group *g, struct sockmig_lease *out);

enum sockmig_role {
	SOCKMIG_ROLE_ACTIVE = 1,
	SOCKMIG_ROLE_DRAINING = 2,
	SOCKMIG_ROLE_HOLDER = 3,
};

/** Name of a role: "active", "draining", "holder". */
SOCKMIG_API const char *sockmig_role_str(enum sockmig_role role);

struct sockmig_member_opts {
	size_t sz;
	enum sockmig_role role; /**< default active */
	/** Default 0. Generations compare as serial numbers: one is newer
	 *  than another when ahead of it by less than 2^31 (start times in
	 *  clock ticks may wrap). */
	uint32_t generation;
	uint32_t weight; /**< default 1; 0 means 1 */
	/** The process that owns the listener (default: the caller); shown
	 *  by status and used to forget members that stopped listening and
	 *  whose owner is gone (no such pid, or a pid reused by a process of
	 *  another start time). */
	uint32_t pid;
	size_t : 0;
};
#define sockmig_member_opts__last_field pid

/** Slots of a group's socket array: members beyond them have none. */
#define SOCKMIG_SLOTS 1024
/** The slot of a member registered without one. */
#define SOCKMIG_NO_SLOT UINT32_MAX

/**
 * Register listener @p fd (of this group) as a member. Its listener
 * settings are recorded for the migration check. Registering a member
 * again updates its role, generation and weight. A call that fails leaves
 * the group as it was.
 * A group has SOCKMIG_SLOTS (1,024) slots: a listener beyond them is
 * registered without one (its slot reads SOCKMIG_NO_SLOT) and, while such
 * a member is active, new SYNs go by the kernel's hash over every listener
 * of the group (draining members included) rather than starve it; one
 * warning is logged.
 * @return 0; -EXDEV if @p fd is not in this group; -ENOSPC when the
 * group's state is full (4,096 members, live or not); -EBUSY when @p fd
 * does not listen yet (call after listen()).
 */
SOCKMIG_API int sockmig_member_add(struct sockmig_group *g, int fd,
				   const struct sockmig_member_opts *opts);

/**
 * Change the role, generation or weight of the member whose socket cookie
 * is @p cookie (for members of other processes). A field left 0 keeps its
 * value: a role or weight change keeps the member's generation (to set
 * generation 0, register the listener again with sockmig_member_add()).
 * @return 0, -ENOENT when no such member.
 */
SOCKMIG_API int sockmig_member_set(struct sockmig_group *g, uint64_t cookie,
				   const struct sockmig_member_opts *opts);

/** Socket cookie of @p fd (SO_COOKIE), 0 on error. */
SOCKMIG_API uint64_t sockmig_cookie(int fd);

/** Migration kinds, as counted. */
enum sockmig_kind {
	SOCKMIG_KIND_ESTABLISHED = 0, /**< accept-queue child, at close */
	SOCKMIG_KIND_TFO = 1,	      /**< TFO child (SYN_RECV), at close */
	SOCKMIG_KIND_REQ_TIMER = 2,   /**< half-open request, SYN+ACK timer */
	SOCKMIG_KIND_REQ_ACK = 3,     /**< half-open request, final ACK */
	SOCKMIG_KIND_MAX = 4,
};

/** Name of a kind: "established", "tfo", "req-timer", "req-ack". */
SOCKMIG_API const char *sockmig_kind_str(enum sockmig_kind kind);

/** A member's counters, as the policy program counts them. */
struct sockmig_counters {
	uint64_t steered; /**< new SYNs sent to it */
	uint64_t migrated_in[SOCKMIG_KIND_MAX];
	uint64_t migrated_out[SOCKMIG_KIND_MAX];
	/** Migrations away from it with no registered target: left to the
	 *  kernel's hash over the listeners still live (it fails them, as
	 *  TCPMigrateReqFailure, when none is). */
	uint64_t deferred;
	uint64_t cancel_mismatch; /**< cancelled: settings differ */
	uint64_t kicked;	  /**< wake-up connections sent to it */
};

/** Kernel counters of the calling thread's network namespace (TcpExt). */
struct sockmig_netstat {
	uint64_t migrate_success;  /**< TCPMigrateReqSuccess */
	uint64_t migrate_failure;  /**< TCPMigrateReqFailure */
	uint64_t listen_drops;	   /**< ListenDrops */
	uint64_t listen_overflows; /**< ListenOverflows */
	uint64_t embryonic_rsts;   /**< EmbryonicRsts */
	uint64_t abort_on_close;   /**< TCPAbortOnClose */
};

/** Read the netns's TcpExt counters. @return 0 or a negative errno. */
SOCKMIG_API int sockmig_netstat_read(struct sockmig_netstat *out);

/** @p out = @p after - @p before, field by field. */
SOCKMIG_API void sockmig_netstat_delta(const struct sockmig_netstat *before,
				       const struct sockmig_netstat *after,
				       struct sockmig_netstat *out);

/** Read the counters of the member with socket cookie @p cookie.
 *  @return 0; -ENOENT when no such member. */
SOCKMIG_API int sockmig_counters_read(struct sockmig_group *g, uint64_t cookie,
				      struct sockmig_counters *out);

/** One member, as sockmig_members() reports it. */
struct sockmig_member_info {
	uint64_t cookie;
	uint32_t slot; /**< SOCKMIG_NO_SLOT: beyond the group's slots */
	enum sockmig_role role;
	uint32_t generation;
	uint32_t weight;
	uint32_t pid;	/**< the process that registered it */
	bool listening; /**< still in the group's socket array */
	struct sockmig_counters counters;
};

/**
 * List up to @p max members into @p out.
 * @return the number of members (may exceed @p max), or a negative errno.
 */
SOCKMIG_API int sockmig_members(struct sockmig_group *g, struct sockmig_member_info *out, int max);

/**
 * Read the member with socket cookie @p cookie into @p out (the fields of
 * sockmig_members(), counters included), whatever its number of members.
 * @return 0, or -ENOENT when the group has no such member.
 */
SOCKMIG_API int sockmig_member_get(struct sockmig_group *g, uint64_t cookie,
				   struct sockmig_member_info *out);

/** What a drain did. */
struct sockmig_drain_report {
	uint64_t cookie;
	/** Migrated away at close, per kind (children; requests move later). */
	uint64_t migrated[SOCKMIG_KIND_MAX];
	uint64_t cancelled; /**< cancelled: every target had other settings */
	uint64_t deferred;  /**< no registered target: the kernel's hash chose */
	/** Wake-up connections made to targets (missing wake-up workaround). */
	uint32_t kicked;
	struct sockmig_netstat netstat; /**< TcpExt delta around the shutdown */
	uint64_t elapsed_ns;		/**< the shutdown: migration of the queue */
	/** Time from the mark (no new SYN) to the shutdown: one RCU grace
	 *  period, then until no handshake was in flight or the deadline. */
	uint64_t wait_ns;
	/** Handshakes still in flight at the shutdown (the deadline passed):
	 *  they migrate later, but a final ACK processed during the shutdown
	 *  itself is reset by the kernel. 0 when the drain was exact. */
	uint32_t inflight_left;
};

struct sockmig_drain_opts {
	size_t sz;
	/** Only stop steering SYNs (role draining); do not shut down. */
	bool no_shutdown;
	/** Drain even the last active member when no holder exists. */
	bool force;
	/** Longest wait for the handshakes in flight before the shutdown, in
	 *  ms; 0: 1000. */
	uint32_t deadline_ms;
	size_t : 0;
};
#define sockmig_drain_opts__last_field deadline_ms

/**
 * Drain member @p fd: stop steering new SYNs to it, wait one RCU grace
 * period and until no handshake is in flight for it (at most
 * opts->deadline_ms), then shutdown() it so that the kernel migrates its
 * accept queue under the policy. Waiting first closes the kernel's one
 * unmigrated case: a final ACK processed while the listener closes is
 * reset (see inflight_left in the report). The group is not locked
 * while it waits. The caller closes @p fd.
 * In a legacy group (see sockmig_group_policy()) nothing can migrate: it
 * stops SYNs and waits for the handshakes in flight, as
 * sockmig_member_drain_legacy() without on_accept, and does not shut @p fd
 * down: accept until EAGAIN before closing it.
 * @return 0; -EBUSY when @p fd is the last active member and no holder
 * exists (nothing could take its connections); -ENOENT when not a member.
 */
SOCKMIG_API int sockmig_member_drain(struct sockmig_group *g, int fd,
				     const struct sockmig_drain_opts *opts,
				     struct sockmig_drain_report *report);

/** What an event of a group's ring records (struct sockmig_event.type). */
enum sockmig_event_type {
	SOCKMIG_EVENT_DRAIN = 1,	/**< sockmig_member_drain() shut a member down */
	SOCKMIG_EVENT_DRAIN_LEGACY = 2, /**< sockmig_member_drain_legacy() finished */
};

/**
 * One drain, as the group's event ring keeps it. Every drain through the
 * library (sockmig_member_drain() with the shutdown, a legacy drain, a
 * holder's rotation, which drains the old holder) records one, under the
 * group lock, in a ring pinned in the group's directory ("events", mode
 * 0600): unlike the member and its counters, it stays after the member
 * left. A drain with no_shutdown records nothing (the kernel migrates at
 * the owner's close, not in the drain).
 */
struct sockmig_event {
	uint64_t seq;	  /**< 1, 2, ... in the group's ring */
	uint64_t time_ns; /**< CLOCK_REALTIME when the drain ended */
	uint64_t cookie;  /**< the drained listener */
	uint32_t type;	  /**< enum sockmig_event_type */
	uint32_t role;	  /**< its role before the drain (enum sockmig_role) */
	uint32_t generation;
	uint32_t pid;		/**< the member's owner */
	uint32_t inflight_left; /**< handshakes still in flight at the end of the wait */
	uint32_t flags;		/**< 0 */
	uint64_t wait_ns;	/**< mark (no new SYN) to the end of the wait */
	uint64_t duration_ns;	/**< the whole drain: mark to shutdown done */
	/** The member's migrated_out counters right after the drain, per kind:
	 *  what the policy moved away from it (it closes once, so this is what
	 *  its drain migrated; requests in flight past the deadline move later). */
	uint64_t migrated[SOCKMIG_KIND_MAX];
	uint64_t cancelled; /**< its cancel_mismatch then */
	uint64_t deferred;  /**< its deferred then */
};

/** Events the ring of a group holds (older ones are overwritten). */
#define SOCKMIG_EVENT_RING 256

/** Buckets of the drain-duration histogram (struct sockmig_event_ring). */
#define SOCKMIG_DRAIN_BUCKETS 11
/** Their upper bounds in ns: 1, 5, 10, 25, 50, 100, 250, 500 ms, 1, 2.5, 5 s. */
#define SOCKMIG_DRAIN_BUCKET_NS                                                                    \
	{                                                                                          \
		1000000ull, 5000000ull, 10000000ull, 25000000ull, 50000000ull, 100000000ull,       \
			250000000ull, 500000000ull, 1000000000ull, 2500000000ull, 5000000000ull    \
	}

/** Where a group's event ring stands, and every drain since the group was made. */
struct sockmig_event_ring {
	uint64_t head; /**< seq of the newest event = drains recorded, 0 when none */
	/** Identity of the ring: it changes when the group was removed (its
	 *  last member left) and made again, and its seq started over. 0 when
	 *  the group has no ring yet. */
	uint64_t id;
	uint32_t capacity; /**< SOCKMIG_EVENT_RING */
	/** Sum of every drain's duration_ns (not only those the ring still holds). */
	uint64_t duration_sum_ns;
	/** Drains whose duration_ns was <= each bound of SOCKMIG_DRAIN_BUCKET_NS
	 *  (cumulative, as Prometheus buckets; all of them: head). */
	uint64_t duration_le[SOCKMIG_DRAIN_BUCKETS];
};

/**
 * Copy the events of group @p g with seq > @p after_seq, oldest first, at
 * most @p n, into @p out. Events lost to the ring's overwriting show as a
 * gap: out[0].seq - after_seq - 1 were lost when that is > 0 (read again
 * from out[n-1].seq when @p n were returned).
 * @return the number copied (0 when none, or the group has no ring yet),
 * or a negative errno.
 */
SOCKMIG_API int sockmig_group_events(struct sockmig_group *g, uint64_t after_seq,
				     struct sockmig_event *out, int n);

/** Fill @p out with the ring's head and identity. @return 0 or a negative errno. */
SOCKMIG_API int sockmig_group_event_ring(struct sockmig_group *g, struct sockmig_event_ring *out);

/* ---- legacy mode: kernels without socket migration (4.19 to 5.13) ------ */

/*
 * Where the kernel cannot migrate (no migrating_sk: 4.19 to 5.13, and the
 * 5.10.y series whose tcp_migrate_req file does nothing), the group's
 * program is a plain sk_reuseport select program with the same selection
 * and the same pinned maps, and a member is drained the way the original
 * proposal describes: no new SYN for it, wait until no handshake is in
 * flight for it, accept everything, then close. Nothing the kernel would
 * have completed is reset, so long as the handshakes in flight finish
 * before the deadline and one other active member or holder listens.
 */

/** Name of a policy: "auto", "native", "legacy". */
SOCKMIG_API const char *sockmig_policy_str(enum sockmig_policy policy);

/**
 * The policy program in force in the group: SOCKMIG_POLICY_NATIVE or
 * SOCKMIG_POLICY_LEGACY. The first process to open a group chooses it;
 * opening it later with another policy forced fails with EEXIST.
 */
SOCKMIG_API enum sockmig_policy sockmig_group_policy(const struct sockmig_group *g);

/**
 * Handshakes in flight (half-open requests, TCP_NEW_SYN_RECV) of listener
 * @p fd, from its reference count (/proc/net/tcp{,6}): every request
 * holds one reference on its listener, and so does each child in its
 * accept queue, but for SYN-cookie children. Exact when the accept queue
 * is empty; otherwise the queue is subtracted as read in the same line.
 * Accepted TCP Fast Open children hold theirs until their handshake ends.
 * @return the count (>= 0), or a negative errno (-ENOENT: not listening).
 */
SOCKMIG_API int sockmig_listener_inflight(int fd);

/**
 * Called by sockmig_member_drain_legacy() with each connection it accepts
 * from the draining listener; @p fd is then the callee's (it closes it on
 * error). Return 0, or a negative errno: the connection is counted as
 * refused.
 */
typedef int (*sockmig_accept_fn)(int fd, void *ctx);

struct sockmig_legacy_drain_opts {
	size_t sz;
	/** Where every connection accepted from the listener goes: the old
	 *  process's own serving loop, or sockmig_handoff_accept() (with the
	 *  group as @p ctx) to pass it to a live member. NULL: the library
	 *  only waits for the handshakes in flight and does not shut the
	 *  listener down; the caller accepts until EAGAIN, then closes. */
	sockmig_accept_fn on_accept;
	void *ctx;
	/** Longest wait for handshakes in flight, in ms. 0: the listener's
	 *  SYN+ACK retry budget plus 1 s; past it, the kernel has dropped
	 *  every request the listener had (tcp_synack_retries, or TCP_SYNCNT
	 *  when set, or TCP_DEFER_ACCEPT's rounds when larger: 63 s for the
	 *  default 5 retries). */
	uint32_t deadline_ms;
	/** Do not shut the listener down at the end (the caller closes it). */
	bool no_shutdown;
	/** Drain even the last active member when no holder exists. */
	bool force;
	/** At the end, sockmig_member_kick() once each member that took
	 *  connections through sockmig_handoff_accept() in this drain, for
	 *  processes that serve hand-offs from accept() (the preload shim). */
	bool wake_receivers;
	size_t : 0;
};
#define sockmig_legacy_drain_opts__last_field wake_receivers

/** What a legacy drain did. */
struct sockmig_legacy_drain_report {
	uint64_t cookie;
	/** When no SYN could reach the listener any more: its handshakes in
	 *  flight and its accept queue. */
	uint32_t inflight_start;
	uint32_t queued_start;
	/** SYNs steered to it by a selection that had read the table before
	 *  it was marked draining (already in inflight_start). */
	uint32_t late_syns;
	/** Connections accepted and given to on_accept; refused: on_accept
	 *  returned an error. */
	uint64_t accepted;
	uint64_t refused;
	/** Handshakes still in flight at the deadline, reset when the listener
	 *  stops (an upper bound: see sockmig_listener_inflight()). */
	uint32_t abandoned;
	bool deadline_hit;
	uint32_t deadline_ms;		/**< the deadline used */
	uint64_t wait_ns;		/**< marked draining to no handshake left */
	uint64_t elapsed_ns;		/**< the whole call */
	struct sockmig_netstat netstat; /**< TcpExt delta around the drain */
};

/**
 * Drain member @p fd of a group of either policy, without migration:
 *   1. mark it draining: the program steers no new SYN to it;
 *   2. wait one RCU grace period (membarrier(MEMBARRIER_CMD_GLOBAL)), so
 *      that every SYN whose selection read the older table has made its
 *      request: from then on its set of handshakes in flight only shrinks;
 *   3. accept every connection (to opts->on_accept) until its reference
 *      count says no request is left, or the deadline passes;
 *   4. shutdown() it (unless no_shutdown). The caller closes @p fd.
 * Exactness: step 3 ends when the listener's reference count is 1 plus
 * the accepted TCP Fast Open children still in SYN_RECV, which is when no
 * request is attached to it, whatever SYN cookies, SYN retransmissions or
 * queue overflows did (the counter of SYNs steered is not used: a SYN
 * answered with a cookie, or dropped and sent again, counts without a
 * request). Not exact: (a) when no active member or holder is selectable,
 * the kernel's hash may give the listener new SYNs; (b) a Fast Open child
 * reset by its client before its handshake ended keeps a reference for up
 * to 60 s, so the wait runs to the deadline and counts it in abandoned;
 * (c) without membarrier (nohz_full), step 2 is a 20 ms sleep; (d) the
 * kernel's own close: it detaches the listener from its group before it
 * leaves the listening hash, and a lookup that found it in between gives
 * it a SYN (dropped, or a request that dies with it). IPv6 lookups start
 * at the oldest member, so this can hit an IPv6 drain (about 1 in 10^6
 * connections in the bench); a listener that never closes (a holder)
 * older than the drained one prevents it.
 * While it runs, nobody else may accept from @p fd (it is made
 * non-blocking for the call).
 * @return 0 (also when the deadline passed: see report->deadline_hit);
 * -EINVAL; -EBUSY and -ENOENT as sockmig_member_drain().
 */
SOCKMIG_API int sockmig_member_drain_legacy(struct sockmig_group *g, int fd,
					    const struct sockmig_legacy_drain_opts *opts,
					    struct sockmig_legacy_drain_report *report);

/*
 * Hand-off of accepted connections to a live member: SCM_RIGHTS over a
 * unix SOCK_SEQPACKET endpoint at /run/sockmig/handoff/<group>/<member
 * cookie>. Every level down to /run/sockmig/handoff is a directory owned by
 * root and writable by nobody else; the group's directory has mode 0700 and
 * belongs to the listener's uid (or root): only root and that uid can bind
 * or connect there (creating the levels under /run needs root, as the
 * group's bpffs pins do). The sender checks that the endpoint is served by
 * root or that uid, the receiver that the sender is (SO_PEERCRED), and the
 * receiver keeps only a TCP connection of the listener's family, address and
 * port, established. Already accepted connections never move in the
 * kernel: this passes the file to the process of another member, which
 * serves it from then on.
 */

/**
 * Open the hand-off endpoint of this process for its member listener
 * @p fd: a non-blocking socket to poll for POLLIN, then
 * sockmig_handoff_recv(); release it with sockmig_handoff_close(). Forked
 * children may receive on it too. Callable by root or the listener's uid.
 * @return the socket, or a negative errno (-EADDRINUSE: the listener has an
 * endpoint already; -EPERM: a level of the directory is not owned or
 * moded as above, or the caller is neither root nor the listener's uid).
 * A failure leaves no endpoint: no connection is handed to this listener's
 * process.
 */
SOCKMIG_API int sockmig_handoff_listen(struct sockmig_group *g, int fd);

/**
 * One connection passed to endpoint @p hfd, opened by
 * sockmig_handoff_listen() in this process or the one it was forked from
 * (close-on-exec, blocking as it was accepted). @return its fd, -EAGAIN when
 * none waits, or a negative errno: -EPERM (a sender that is neither root
 * nor the listener's uid) and -EBADMSG (what was sent is not one TCP
 * connection of the listener's family, address and port, established) for
 * a hand-off refused, whose fds were closed; call it again for the next.
 * -EBADF: @p hfd is not such an endpoint.
 */
SOCKMIG_API int sockmig_handoff_recv(int hfd);

/**
 * Close endpoint @p hfd; in the process that opened it, also remove its
 * name (and the group's directory with its last endpoint), so call it there
 * once no process receives on it any more. @return 0 or a negative errno.
 */
SOCKMIG_API int sockmig_handoff_close(int hfd);

/**
 * A sockmig_accept_fn for sockmig_member_drain_legacy(), with the group as
 * @p ctx: pass @p fd to the endpoint of an active, listening member of the
 * newest generation that has one (waiting up to 1 s while its queue is
 * full), and close it here. An endpoint whose directory or process is not
 * owned by root or the group's uid is not used. @return 0, or a negative errno when no member
 * took it (-ENOENT: no endpoint; @p fd is closed: the client is reset).
 */
SOCKMIG_API int sockmig_handoff_accept(int fd, void *ctx);

/**
 * Make one connection to the group's address that the policy steers to
 * member @p cookie (whatever its role), and close it at once: its listener
 * becomes readable, so a process that only polls its listener calls
 * accept(). After connections were handed to a process that serves them
 * from accept() (the preload shim does), this wakes it; that process then
 * accepts the kick connection too, and reads EOF.
 * @return 0, or a negative errno (-ENOENT: no such member; -ENOTCONN: it
 * no longer listens).
 */
SOCKMIG_API int sockmig_member_kick(struct sockmig_group *g, uint64_t cookie);

/**
 * Unregister member @p fd (the socket is left as it is). When no member
 * is left, the group's pinned state is removed.
 * @return 0; -ENOENT when @p fd is not a member; -EINVAL when it is not a
 * socket; or another negative errno.
 */
SOCKMIG_API int sockmig_member_leave(struct sockmig_group *g, int fd);

/**
 * Unregister the member with cookie @p cookie (see sockmig_member_leave()).
 * @return 0; -ENOENT when no such member; or another negative errno.
 */
SOCKMIG_API int sockmig_member_leave_cookie(struct sockmig_group *g, uint64_t cookie);

/**
 * Forget the members that no longer listen (sockmig_member_info.listening
 * false) and whose owner is gone (no such pid, or a pid reused by a process
 * of another start time) or is @p exiting (a process in its exit, usually
 * the caller's own pid; 0: none); a member registered with pid 0 is kept.
 * When that leaves no member, the group's pinned state is removed, as at
 * the last sockmig_member_leave(); a group with no member before the call
 * (one being made) is left alone.
 * @return 1 when the group was removed, 0 when it was not, or a negative
 * errno (-ETIMEDOUT: see sockmig_set_lock_wait()).
 */
SOCKMIG_API int sockmig_group_collect(struct sockmig_group *g, uint32_t exiting);

/**
 * Remove every pinned object of the group, whatever its members.
 * @return 0 or a negative errno.
 */
SOCKMIG_API int sockmig_group_destroy(struct sockmig_group *g);

/* ---- the holder ---------------------------------------------------------- */

struct sockmig_holder;

struct sockmig_holder_opts {
	size_t sz;
	/** Create the holder's sockets with these effective ids (the
	 *  server's: a SO_REUSEPORT group admits one effective uid). */
	bool set_ids;
	uid_t uid;
	gid_t gid;
	/** listen() backlog of the holder (default 65535, capped by the
	 *  kernel at net.core.somaxconn). */
	int backlog;
	/** As in struct sockmig_group_opts. */
	const char *pin_root;
	size_t : 0;
};
#define sockmig_holder_opts__last_field pin_root

/**
 * Open a holder: a listener of its own on @p addr (with SO_REUSEPORT),
 * registered with role holder in that address's group. While an active
 * member exists it gets nothing; when none is left, the policy gives it the
 * closing member's queue and the new SYNs, whose handshakes complete and
 * wait in its accept queue (it never accepts). Call sockmig_holder_rotate()
 * when a server listener has joined (and is registered active): what waited
 * on the holder then migrates to the server.
 * @return a handle, or NULL with errno set (EINVAL: not an IPv4 or IPv6
 * address, or bad @p opts; EADDRINUSE: the port is held by a listener of
 * another user or without SO_REUSEPORT, see set_ids; as
 * sockmig_group_open() and sockmig_member_add() otherwise).
 */
SOCKMIG_API struct sockmig_holder *sockmig_holder_open(const struct sockaddr *addr, socklen_t len,
						       const struct sockmig_holder_opts *opts);

/**
 * A fresh holder joins (on @p addr if given, else the same address); the old
 * one is drained into the active members of the newest generation and
 * closed. *@p moved (may be NULL): the connections that migrated.
 * @return 0 or a negative errno (the old holder stays then).
 */
SOCKMIG_API int sockmig_holder_rotate(struct sockmig_holder *h, const struct sockaddr *addr,
				      socklen_t len, uint64_t *moved);

/** Socket cookie of the current holder listener (0 when @p h is NULL). */
SOCKMIG_API uint64_t sockmig_holder_cookie(const struct sockmig_holder *h);

/** Close the holder (draining it into the active members first when
 *  @p migrate), leave the group, and free the handle (NULL: nothing). */
SOCKMIG_API void sockmig_holder_close(struct sockmig_holder *h, bool migrate);

/* ---- UDP groups ---------------------------------------------------------- */

/*
 * A *UDP group* is the kernel's SO_REUSEPORT group of the UDP sockets bound
 * to one address and port of a network namespace (QUIC, DNS, any datagram
 * server). A server "reloads" by binding new sockets in the same group; the
 * kernel's hash then moves datagrams of established flows to the new
 * sockets, whose process does not know them. A UDP group's select program
 * (any kernel from 4.19: UDP needs no migration) keeps them where they
 * belong. Its sockets are registered as *members* with a generation:
 *
 * - the *working generation* takes every new flow (hash over its
 *   members): the newest generation with an active member, unless one was
 *   set with sockmig_udp_set_working();
 * - mode SOCKMIG_UDP_MODE_FLOW (the default): each flow (the datagram's
 *   full 4-tuple and IP version, never a hash of it) is learned when its
 *   first datagram is received and assigned, so every later datagram goes
 *   to the socket that got the first, whatever its generation or role,
 *   while that socket lives; once it has closed, the flow falls to the
 *   working generation and is learned again there; a flow idle past the
 *   group's timeout is new again. The table is an LRU map of flow_max
 *   entries: beyond that many live flows the least recently seen are
 *   forgotten (and counted as new when they come back);
 * - mode SOCKMIG_UDP_MODE_NONE: stateless, every datagram to the working
 *   generation.
 * When no registered socket can be selected (none is active, or all those
 * registered closed since), the kernel's hash chooses over every socket of
 * the group. The state is pinned under the same root as TCP groups, in
 * "<netns>-udp4-<address>-<port>" (udp6 for IPv6); sockmig_group_list()
 * does not list it.
 */

struct sockmig_udp_group;

/** How a UDP group finds the owner of a datagram. */
enum sockmig_udp_mode {
	/** A new group: SOCKMIG_UDP_MODE_FLOW; an existing one: as it is. */
	SOCKMIG_UDP_MODE_DEFAULT = 0,
	SOCKMIG_UDP_MODE_FLOW = 1, /**< flows learned on receive, by 4-tuple */
	SOCKMIG_UDP_MODE_NONE = 2, /**< stateless: the working generation only */
};

/** Name of a mode: "default", "flow", "none". */
SOCKMIG_API const char *sockmig_udp_mode_str(enum sockmig_udp_mode mode);

/** idle_timeout_ms: flows never expire by time (the LRU alone forgets them). */
#define SOCKMIG_UDP_NO_EXPIRY UINT32_MAX

struct sockmig_udp_group_opts {
	size_t sz;
	/** bpffs directory for groups; default SOCKMIG_PIN_ROOT. */
	const char *pin_root;
	/** Chosen by the group's maker; opening an existing group with another
	 *  mode fails with EEXIST. */
	enum sockmig_udp_mode mode;
	/** A flow idle longer than this is a new flow at its next datagram
	 *  (to the working generation). 0: 30,000 for a new group, and an
	 *  existing group's value kept; any other value replaces the group's. */
	uint32_t idle_timeout_ms;
	/** Entries of a new group's flow table (at most 2^24); 0: 65,536.
	 *  Fixed when the group is made. */
	uint32_t flow_max;
	size_t : 0;
};
#define sockmig_udp_group_opts__last_field flow_max

/**
 * Open the UDP group of @p addr (struct sockaddr_in or sockaddr_in6 with a
 * port; the wildcard address is a group of its own) in the calling
 * thread's network namespace, making its pinned state when it is the
 * first. No socket is needed: the program is attached by the first
 * sockmig_udp_member_add().
 * @return a handle, or NULL with errno set (EINVAL: bad address or
 * options; EEXIST: another mode; ENOENT: no bpffs; EPERM: no privileges,
 * or a pin root or group directory that is not a 0700 directory of the
 * caller).
 */
SOCKMIG_API struct sockmig_udp_group *
sockmig_udp_group_open(const struct sockaddr *addr, socklen_t len,
		       const struct sockmig_udp_group_opts *opts);

/** Free the handle; the pinned state and the program stay. */
SOCKMIG_API void sockmig_udp_group_close(struct sockmig_udp_group *g);

/** Remove the group's pinned state (the program stays attached to the
 *  kernel's group until its last socket closes). @return 0 or a negative
 *  errno. */
SOCKMIG_API int sockmig_udp_group_destroy(struct sockmig_udp_group *g);

/** The group's directory name, e.g. "4026531840-udp4-127_0_0_1-4433". */
SOCKMIG_API const char *sockmig_udp_group_name(const struct sockmig_udp_group *g);

/** The group's mode (SOCKMIG_UDP_MODE_FLOW or SOCKMIG_UDP_MODE_NONE). */
SOCKMIG_API enum sockmig_udp_mode sockmig_udp_group_mode(struct sockmig_udp_group *g);

/** Sockets of a UDP group (slots of its socket array). */
#define SOCKMIG_UDP_SLOTS 4096
/** sockmig_udp_set_working(): the newest generation with an active member. */
#define SOCKMIG_UDP_GEN_NEWEST UINT32_MAX

struct sockmig_udp_member_opts {
	size_t sz;
	/** Default 0; SOCKMIG_UDP_GEN_NEWEST is reserved. Generations compare
	 *  as serial numbers (newer: ahead by less than 2^31). */
	uint32_t generation;
	/** The socket's owner, for the member list (default: the caller). */
	uint32_t pid;
	size_t : 0;
};
#define sockmig_udp_member_opts__last_field pid

/**
 * Register UDP socket @p fd, bound with SO_REUSEPORT to the group's address
 * and port, as an active member of opts->generation, and attach the
 * group's program to the kernel's group through it. From then on it takes
 * new flows when its generation is the working one; a newer generation
 * than every other active member's becomes the working one (a flip).
 * Registering it again sets its generation and makes it active again.
 * @return 0; -EINVAL (not a bound UDP socket with SO_REUSEPORT, or a
 * reserved generation); -EXDEV (another address, port or network
 * namespace); -ENOSPC (SOCKMIG_UDP_SLOTS live members); another errno.
 */
SOCKMIG_API int sockmig_udp_member_add(struct sockmig_udp_group *g, int fd,
				       const struct sockmig_udp_member_opts *opts);

/**
 * Make @p generation the working generation (new flows go to its active
 * members), e.g. to roll back to an older one; SOCKMIG_UDP_GEN_NEWEST
 * returns to the newest. A generation set by hand that has no live active
 * member left (closed, or drained) is replaced by the newest.
 * @return 0; -ENOENT when it has no live active member.
 */
SOCKMIG_API int sockmig_udp_set_working(struct sockmig_udp_group *g, uint32_t generation);

/**
 * Drain @p generation: its members take no new flow from now on; the flows
 * they own stay with them while their sockets live (close a socket when its
 * flows have ended: its remaining flows then fall to the working
 * generation). @return the number of members drained; -ENOENT when it has
 * no live active member; -EBUSY when no active member of another
 * generation would be left.
 */
SOCKMIG_API int sockmig_udp_generation_drain(struct sockmig_udp_group *g, uint32_t generation);

/** One live member, as sockmig_udp_members() reports it. */
struct sockmig_udp_member_info {
	uint64_t cookie;
	uint32_t slot;
	uint32_t generation;
	enum sockmig_role role; /**< SOCKMIG_ROLE_ACTIVE or SOCKMIG_ROLE_DRAINING */
	uint32_t pid;
};

/**
 * List up to @p max live members (sockets still open) into @p out; members
 * whose socket has closed are forgotten here.
 * @return the number of live members (may exceed @p max), or a negative errno.
 */
SOCKMIG_API int sockmig_udp_members(struct sockmig_udp_group *g,
				    struct sockmig_udp_member_info *out, int max);

/** A UDP group's counters (datagrams, since the group was made). */
struct sockmig_udp_stats {
	/** First datagram of a flow, learned for the working generation. */
	uint64_t new_flows;
	/** Datagrams of a known flow, to the socket that owns it. */
	uint64_t flow_hits;
	/** Datagrams of a known flow whose owner had closed: to the working
	 *  generation (the flow is learned again there). */
	uint64_t fallbacks;
	/** Datagrams of a flow idle past the timeout: learned again as new. */
	uint64_t expired;
	/** Mode none: datagrams to the working generation. */
	uint64_t stateless;
	/** No registered socket selectable: the kernel's hash chose. */
	uint64_t kernel_hash;
	/** The flow table refused an entry (the datagram was delivered). */
	uint64_t not_learned;
	/** No readable IP or UDP header: the kernel's hash chose. */
	uint64_t parse_failed;
	/** The table in force: the working generation, its live active
	 *  members, and every live active member. */
	uint32_t working_generation;
	uint32_t n_working;
	uint32_t n_active;
};

/** Read the group's counters into @p out. @return 0 or a negative errno. */
SOCKMIG_API int sockmig_udp_stats_read(struct sockmig_udp_group *g, struct sockmig_udp_stats *out);

/** Flows owned by one generation, as sockmig_udp_flows() counts them. */
struct sockmig_udp_flow_count {
	uint32_t generation;
	uint64_t flows;
};

/**
 * Count the flows of the group's table that still belong to a live socket
 * and were seen within the idle timeout, by the generation of their owner
 * (at the flow's learning): up to @p max generations into @p out, oldest
 * first. It reads the whole table (one lookup per entry, up to flow_max):
 * for status and reports, not for every datagram.
 * @return the number of generations (may exceed @p max), or a negative
 * errno.
 */
SOCKMIG_API int sockmig_udp_flows(struct sockmig_udp_group *g, struct sockmig_udp_flow_count *out,
				  int max);

/** Version string of the library. */
SOCKMIG_API const char *sockmig_version(void);

#ifdef __cplusplus
}
#endif

#endif /* SOCKMIG_H */
