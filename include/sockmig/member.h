/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/**
 * @file sockmig/member.h
 * libsockmig: members: roles, registration, counters, drains, events.
 * Part of the public API: include <sockmig.h>, which includes this file
 * with what it needs; not on its own.
 */
#ifndef SOCKMIG_PUBLIC_MEMBER_H
#define SOCKMIG_PUBLIC_MEMBER_H

#ifndef SOCKMIG_H
#error "include <sockmig.h>, not <sockmig/member.h>"
#endif

/* ---- members ----------------------------------------------------------- */

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

#endif /* SOCKMIG_PUBLIC_MEMBER_H */
