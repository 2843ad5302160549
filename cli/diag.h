/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * TCP listeners and UDP sockets of the calling thread's network namespace,
 * as sock_diag reports them, with the processes that hold them: the sockmig command's
 * own (status, attach, drain, hold, run), not the library's; the tests
 * link it too.
 */
#ifndef SOCKMIG_DIAG_H
#define SOCKMIG_DIAG_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <netinet/in.h>

/* Owners kept per listener; owners_total counts them all. */
#define SM_DIAG_MAX_OWNERS 16

struct sm_owner {
	pid_t pid;
	int fd;
};

struct sm_listener {
	int family; /* AF_INET / AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
	int port;
	uint64_t cookie; /* inet_diag id.idiag_cookie (same as SO_COOKIE) */
	uint32_t inode, uid;
	uint32_t queue, backlog; /* idiag_rqueue / idiag_wqueue for a LISTEN socket */
	uint32_t ifindex;	 /* SO_BINDTODEVICE, 0 for any */
	bool v6only;		 /* IPV6_V6ONLY (IPv6 only) */
	int nowners;		 /* owners[] filled, at most SM_DIAG_MAX_OWNERS */
	int owners_total;	 /* every fd seen holding it (may exceed nowners) */
	struct sm_owner owners[SM_DIAG_MAX_OWNERS]; /* from /proc/<pid>/fd */
};

/*
 * Every TCP LISTEN socket of the calling thread's network namespace
 * (NETLINK_SOCK_DIAG, inet_diag_req_v2), both families unless @family is
 * AF_INET or AF_INET6, only @port unless it is 0, with their owners where
 * /proc lets the caller see them (a non-root caller sees its own
 * processes only: nowners 0 means "not visible").
 * @return the number found (>= 0) and *out (caller frees; NULL when 0),
 * or a negative errno.
 */
int sm_diag_listeners(int family, int port, struct sm_listener **out);

/* sm_diag_listeners() without the owners (nowners 0): no /proc scan, for
 * callers that poll and need owners only for sockets they have not seen. */
int sm_diag_dump(int family, int port, struct sm_listener **out);

/*
 * Parse @len bytes of a sock_diag dump reply (netlink messages, as one
 * recv() returns them) and append the TCP LISTEN sockets of @family (0:
 * both) and @port (0: any) to *@v, which holds *@n entries and room for
 * *@cap (grown with realloc; start with NULL, 0, 0).
 * @return 1 when the buffer ends the dump (NLMSG_DONE), 0 when more is to
 * come, or a negative errno: the one NLMSG_ERROR carried, -EBADMSG for a
 * truncated or malformed message, -ENOMEM.
 */
int sm_diag_parse(const void *buf, size_t len, int family, int port, struct sm_listener **v, int *n,
		  int *cap);

/*
 * Fill the owners of @n listeners from one scan of /proc/<pid>/fd.
 * @return 0, or a negative errno when /proc cannot be read at all, or a
 * process's fds could not be for another reason than its owner's (out of
 * fds or memory: then a listener without owners may have some).
 */
int sm_diag_owners(struct sm_listener *v, int n);

/* sm_diag_owners() from /proc/@pid/fd alone: the fds of that one process
 * that hold one of the @n listeners (none when it cannot be read).
 * @return 0, -EINVAL for a @pid <= 0, or -ENOMEM. */
int sm_diag_owners_of(struct sm_listener *v, int n, pid_t pid);

/*
 * A copy of the listener that owner @i of @l holds (pidfd_getfd(): the
 * rights of ptrace over it), checked to be the same socket (cookie).
 * @return the new fd (caller closes), or a negative errno: -EPERM,
 * -ESRCH (the process is gone), -EBADF (the fd is closed), -ESTALE (the
 * fd now holds another file), -ENOSYS.
 */
int sm_diag_take(const struct sm_listener *l, int i);

/*
 * Whether listener @l has SO_REUSEPORT, without a copy of it (a copy held
 * while the server closes its own would make the caller the listener's
 * last holder): a socket of the listener's user (fsuid: the uid the kernel
 * compares) binds the same address and port, which the kernel allows only
 * when both have SO_REUSEPORT. It never listens, so it joins no group.
 * @return 1, 0, or -1 when it cannot tell (another user's, not root).
 */
int sm_diag_reuseport(const struct sm_listener *l);

/*
 * The UDP sockets of @port (0: any bound port) in @states (TCPF_ bits: a
 * bound, unconnected UDP socket is in TCP_CLOSE, a connected one in
 * TCP_ESTABLISHED), both families, without owners (sm_diag_owners_of()
 * fills them). @return the number found (>= 0) and *out (caller frees;
 * NULL when 0), or a negative errno (-ENOENT: no UDP sock_diag, the
 * udp_diag module).
 */
int sm_diag_udp(int port, uint32_t states, struct sm_listener **out);

#endif
