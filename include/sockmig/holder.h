/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/**
 * @file sockmig/holder.h
 * libsockmig: the holder, a listener that keeps a port when no server does.
 * Part of the public API: include <sockmig.h>, which includes this file
 * with what it needs; not on its own.
 */
#ifndef SOCKMIG_PUBLIC_HOLDER_H
#define SOCKMIG_PUBLIC_HOLDER_H

#ifndef SOCKMIG_H
#error "include <sockmig.h>, not <sockmig/holder.h>"
#endif

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

#endif /* SOCKMIG_PUBLIC_HOLDER_H */
