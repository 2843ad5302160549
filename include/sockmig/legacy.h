/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/**
 * @file sockmig/legacy.h
 * libsockmig: legacy mode, for kernels without socket migration.
 * Part of the public API: include <sockmig.h>, which includes this file
 * with what it needs; not on its own.
 */
#ifndef SOCKMIG_PUBLIC_LEGACY_H
#define SOCKMIG_PUBLIC_LEGACY_H

#ifndef SOCKMIG_H
#error "include <sockmig.h>, not <sockmig/legacy.h>"
#endif

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

#endif /* SOCKMIG_PUBLIC_LEGACY_H */
