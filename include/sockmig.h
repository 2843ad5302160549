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
#include <netinet/in.h> /* struct in_addr, in6_addr */
#include <string.h>	/* memset, for SOCKMIG_OPTS() */
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
	/** Wake only where the kernel misses the wake-up, decided when the
	 *  group is opened (never inside a drain): environment
	 *  SOCKMIG_WAKE=0|1, else the wake-up step of sockmig_probe() alone,
	 *  run once per process by the first open of a native group. */
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
	/** Select program only (4.19+); sockmig_member_drain() drains without
	 *  migration there. Forced, it is what the tests use on newer kernels
	 *  (with net.ipv4.tcp_migrate_req=0). */
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

/**
 * A group's identity: the kernel puts listeners in one SO_REUSEPORT group
 * by network namespace, family, address and port; the pinned directory's
 * name spells the same. Callers build or read it with the functions below
 * and never parse names.
 */
struct sockmig_group_id {
	uint64_t netns; /**< the network namespace's inode (stat of ns/net) */
	int family;	/**< AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;			     /**< the bound address (network order) */
	uint16_t port;		     /**< the bound port (host order) */
	char name[SOCKMIG_NAME_MAX]; /**< the group's directory name */
};

/** The calling thread's network namespace inode, or 0 when unknown. */
SOCKMIG_API uint64_t sockmig_netns_self(void);

/**
 * Fill @p id for a listener of @p family bound to @p addr (struct in_addr
 * or struct in6_addr) and @p port in network namespace @p netns (0: the
 * calling thread's). @return 0 or -EINVAL.
 */
SOCKMIG_API int sockmig_group_id_make(int family, const void *addr, int port, uint64_t netns,
				      struct sockmig_group_id *id);

/** Fill @p id from a group name. @return 0 or -EINVAL (not a group name). */
SOCKMIG_API int sockmig_group_id_parse(const char *name, struct sockmig_group_id *id);

/**
 * Fill @p id for the TCP socket @p fd (another process's too, taken with
 * pidfd_getfd(): its own network namespace counts). @return 0, -EINVAL
 * (not a TCP socket with SO_REUSEPORT bound to a port), -EOPNOTSUPP
 * (bound to a device).
 */
SOCKMIG_API int sockmig_group_id_of_fd(int fd, struct sockmig_group_id *id);

/** The identity of an open group. @return 0 or -EINVAL. */
SOCKMIG_API int sockmig_group_id_get(const struct sockmig_group *g, struct sockmig_group_id *id);

/** Open the existing group @p id (as sockmig_group_open_name()). */
SOCKMIG_API struct sockmig_group *sockmig_group_open_id(const struct sockmig_group_id *id,
							const struct sockmig_group_opts *opts);

/**
 * List the pinned groups of network namespace @p netns (0: any) and port
 * @p port (0: any), sorted by name, the first @p max into @p out; entries
 * of the pin root that are not group names are skipped.
 * @return the number that match (may exceed @p max), or a negative errno.
 */
SOCKMIG_API int sockmig_group_list_ids(const struct sockmig_group_opts *opts, uint64_t netns,
				       int port, struct sockmig_group_id *out, int max);

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
 * again updates its role, generation and weight (a role change checked as
 * in sockmig_member_set()). A call that fails leaves the group as it was.
 * A group has SOCKMIG_SLOTS (1,024) slots: a listener beyond them is
 * registered without one (its slot reads SOCKMIG_NO_SLOT) and, while such
 * a member is active, new SYNs go by the kernel's hash over every listener
 * of the group (draining members included) rather than starve it; one
 * warning is logged.
 * @return 0; -EXDEV if @p fd is not in this group; -ENOSPC when the
 * group's state is full (4,096 members, live or not); -EBUSY when @p fd
 * does not listen yet (call after listen()); -EBUSY as sockmig_member_set().
 */
SOCKMIG_API int sockmig_member_add(struct sockmig_group *g, int fd,
				   const struct sockmig_member_opts *opts);

/**
 * Change the role, generation or weight of the member whose socket cookie
 * is @p cookie (for members of other processes). A field left 0 keeps its
 * value: a role or weight change keeps the member's generation (to set
 * generation 0, register the listener again with sockmig_member_add()).
 * Every change of role goes through one check, the one
 * sockmig_member_drain() makes: an active member is made draining only
 * while another member that still listens is active or a holder (else no
 * listener would be left for new SYNs, and the kernel's hash would give
 * them to it again). Register the new member first, then mark the old one.
 * @return 0; -ENOENT when no such member; -EBUSY when the change would
 * leave no active member or holder (the member is left as it was);
 * -EINVAL for an unknown role.
 */
SOCKMIG_API int sockmig_member_set(struct sockmig_group *g, uint64_t cookie,
				   const struct sockmig_member_opts *opts);

/** Socket cookie of @p fd (SO_COOKIE), 0 on error. */
SOCKMIG_API uint64_t sockmig_cookie(int fd);

/**
 * Bring the loopback interface up in the calling thread's network namespace
 * (a new namespace starts with lo down: 127.0.0.1 and ::1 unreachable), as
 * sockmig_probe() does in its scratch one. Needs CAP_NET_ADMIN there; does
 * nothing to an interface already up. @return 0 or a negative errno.
 */
SOCKMIG_API int sockmig_lo_up(void);

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
	/** Wake-up connections made: native, to the targets of its migrations
	 *  (missing wake-up workaround); legacy, to the members that took its
	 *  hand-offs (opts->wake_receivers). */
	uint32_t kicked;
	/** TcpExt delta around the shutdown (legacy: around the drain) */
	struct sockmig_netstat netstat;
	/** Native: the shutdown (the migration of the queue); legacy: the
	 *  whole call. */
	uint64_t elapsed_ns;
	/** Time from the mark (no new SYN) to the shutdown: one RCU grace
	 *  period, then until no handshake was in flight or the deadline. */
	uint64_t wait_ns;
	/** Handshakes still in flight at the shutdown (the deadline passed):
	 *  they migrate later, but a final ACK processed during the shutdown
	 *  itself is reset by the kernel. 0 when the drain was exact. In a
	 *  legacy drain: those left at the deadline, reset when the listener
	 *  stops (an upper bound: see sockmig_listener_inflight()). */
	uint32_t inflight_left;
	/*
	 * The fields below came with the legacy drain's options in struct
	 * sockmig_drain_opts (on_accept to keep_listening): the library writes
	 * them only for a caller whose opts->sz covers them (as SOCKMIG_OPTS()
	 * sets it), so that a report of an older size is never overrun. With
	 * NULL opts or older ones, only the fields above are written.
	 */
	/** Which drain ran: SOCKMIG_POLICY_NATIVE (the queue migrated at the
	 *  shutdown) or SOCKMIG_POLICY_LEGACY (nothing migrates: the drain
	 *  waited, and accepted what on_accept or the hand-off took). */
	enum sockmig_policy policy;
	uint32_t deadline_ms; /**< the deadline used */
	bool deadline_hit;    /**< the wait for the handshakes in flight ran to it */
	/** Legacy: when no SYN could reach the listener any more, its
	 *  handshakes in flight and its accept queue. */
	uint32_t inflight_start;
	uint32_t queued_start;
	/** Legacy: SYNs steered to it by a selection that had read the table
	 *  before it was marked draining (already in inflight_start). */
	uint32_t late_syns;
	/** Legacy: connections accepted and given to on_accept or handed off;
	 *  refused: on_accept or the hand-off failed (the client is reset). */
	uint64_t accepted;
	uint64_t refused;
	/** The whole call, in either drain (elapsed_ns is the shutdown alone
	 *  in a native drain). */
	uint64_t total_ns;
};

/**
 * Called by a legacy drain with each connection it accepts from the
 * draining listener; @p fd is then the callee's (it closes it on error).
 * Return 0, or a negative errno: the connection is counted as refused.
 */
typedef int (*sockmig_accept_fn)(int fd, void *ctx);

struct sockmig_drain_opts {
	size_t sz;
	/** Only stop steering SYNs (role draining): no wait, no accept, no
	 *  shutdown; the kernel migrates the queue at the owner's close. */
	bool no_shutdown;
	/** Drain even the last active member when no holder exists. */
	bool force;
	/** Longest wait for the handshakes in flight, in ms. 0: native, 1000;
	 *  legacy, the listener's SYN+ACK retry budget plus 1 s (past it the
	 *  kernel has dropped every request the listener had:
	 *  tcp_synack_retries, or TCP_SYNCNT when set, or TCP_DEFER_ACCEPT's
	 *  rounds when larger; 63 s for the default 5 retries). */
	uint32_t deadline_ms;
	/* Legacy drains only (a native group migrates its queue instead): */
	/** Where every connection accepted from the listener goes: the old
	 *  process's own serving loop, or sockmig_handoff_accept() (with a
	 *  handle of the group as @p ctx). NULL and no hand-off: the library
	 *  only waits for the handshakes in flight and does not shut the
	 *  listener down; the caller accepts until EAGAIN, then closes. */
	sockmig_accept_fn on_accept;
	void *ctx;
	/** Hand every accepted connection to a live member, as
	 *  sockmig_handoff_accept() with this group (not with on_accept). */
	bool handoff;
	/** At the end, sockmig_member_kick() once each member that took
	 *  connections handed off by this drain (handoff, or on_accept being
	 *  sockmig_handoff_accept() itself), for processes that serve
	 *  hand-offs from accept() (the preload shim); a member whose
	 *  endpoint is full is kicked at once. */
	bool wake_receivers;
	/** Wait (and accept) as a full drain does, but do not shut the
	 *  listener down at the end: the caller closes it (a native group's
	 *  kernel then migrates the queue at that close). */
	bool keep_listening;
	size_t : 0;
};
#define sockmig_drain_opts__last_field keep_listening

/**
 * Drain member @p fd, the one way for either policy; the library picks the
 * drain by the group's policy (sockmig_group_policy(); report->policy says
 * which ran).
 * Native: stop steering new SYNs to it, wait one RCU grace period and
 * until no handshake is in flight for it (at most opts->deadline_ms), then
 * shutdown() it so that the kernel migrates its accept queue under the
 * policy. Waiting first closes the kernel's one unmigrated case: a final
 * ACK processed while the listener closes is reset (see inflight_left in
 * the report). Where the kernel misses the wake-up of migrated children
 * (decided when the group was opened, see enum sockmig_wake), each member
 * that took some gets one connection of its own (report->kicked).
 * Legacy (nothing can migrate): the drain of the original proposal, made
 * exact, described at sockmig_member_drain_legacy(): mark, grace period,
 * accept everything to opts->on_accept (or hand it off, opts->handoff)
 * until no handshake is in flight or the deadline, then shutdown(). With
 * neither on_accept nor handoff it only waits for the handshakes in flight
 * and does not shut @p fd down: accept until EAGAIN before closing it.
 * Either way opts->no_shutdown only marks the member draining, and the
 * group is not locked while the drain waits. The caller closes @p fd.
 * @return 0 (also when the deadline passed); -EBUSY when @p fd is the last
 * active member and no holder exists (nothing could take its
 * connections); -ENOENT when not a member; -EINVAL (bad opts, or both
 * on_accept and handoff).
 */
SOCKMIG_API int sockmig_member_drain(struct sockmig_group *g, int fd,
				     const struct sockmig_drain_opts *opts,
				     struct sockmig_drain_report *report);

/** What an event of a group's ring records (struct sockmig_event.type). */
enum sockmig_event_type {
	SOCKMIG_EVENT_DRAIN = 1,	/**< a native drain shut a member down */
	SOCKMIG_EVENT_DRAIN_LEGACY = 2, /**< a legacy drain finished */
};

/**
 * One drain, as the group's event ring keeps it. Every drain through the
 * library (sockmig_member_drain() with the shutdown, a legacy drain, a
 * holder's rotation, which drains the old holder) records one, under the
 * group lock, in a ring pinned in the group's directory ("events", mode
 * 0600): unlike the member and its counters, it stays after the member
 * left. A drain with no_shutdown records nothing, nor does a native one
 * with keep_listening (the kernel migrates at the owner's close, not in
 * the drain).
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
 * Kept for programs written before sockmig_member_drain() took the legacy
 * drain's options: new code calls sockmig_member_drain(). This wrapper
 * runs the legacy drain on a group of either policy (on a native one too,
 * where it migrates nothing) with the same options (no_shutdown here is
 * opts->keep_listening there) and reports in the older struct
 * (abandoned is report->inflight_left there).
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
 * A sockmig_accept_fn for a legacy drain, with the group as @p ctx (what
 * sockmig_drain_opts.handoff does without it): pass @p fd to the endpoint of an active, listening member of the
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

/** Version string of the library. */
SOCKMIG_API const char *sockmig_version(void);

#ifdef __cplusplus
}
#endif

#endif /* SOCKMIG_H */
