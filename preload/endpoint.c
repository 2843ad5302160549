// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Hand-off endpoints of the listeners in legacy groups: which endpoint
 * belongs to which listener of this process, and accept() taking the
 * connections another process's drain handed to it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>

#include "shim.h"

/*
 * Listener inode -> this process's hand-off endpoint (sockmig_handoff_listen),
 * for the listeners registered in a legacy group. Written under
 * shim_decide_lock, read without it (accept()).
 */
#define SHIM_MAX_ENDPOINTS 64
static struct {
	_Atomic unsigned long ino; /* 0: free */
	_Atomic int ep;
} endpoints[SHIM_MAX_ENDPOINTS];
_Atomic int shim_nendpoints;

int shim_endpoint_of(unsigned long ino)
{
	for (int i = 0; i < SHIM_MAX_ENDPOINTS; i++)
		if (atomic_load_explicit(&endpoints[i].ino, memory_order_acquire) == ino)
			return atomic_load_explicit(&endpoints[i].ep, memory_order_relaxed);
	return -1;
}

void shim_endpoint_add(unsigned long ino, int ep)
{
	for (int i = 0; i < SHIM_MAX_ENDPOINTS; i++) {
		if (atomic_load(&endpoints[i].ino))
			continue;
		atomic_store_explicit(&endpoints[i].ep, ep, memory_order_relaxed);
		atomic_store_explicit(&endpoints[i].ino, ino, memory_order_release);
		atomic_fetch_add(&shim_nendpoints, 1);
		return;
	}
	sockmig_handoff_close(ep); /* full: this listener takes no hand-off */
}

/* This process no longer holds the socket @ino: its endpoint goes; its
 * name too when no process holds the socket any more (@last). */
void shim_endpoint_drop(unsigned long ino, bool last)
{
	for (int i = 0; i < SHIM_MAX_ENDPOINTS; i++) {
		int ep;

		if (atomic_load(&endpoints[i].ino) != ino)
			continue;
		atomic_store(&endpoints[i].ino, 0);
		atomic_fetch_sub(&shim_nendpoints, 1);
		ep = atomic_load(&endpoints[i].ep);
		if (last)
			sockmig_handoff_close(ep);
		else
			shim_real.close(ep);
		return;
	}
}

/* Another tracked fd of this process refers to socket @ino. */
bool shim_holds_socket(unsigned long ino)
{
	int fds[SHIM_MAX_FDS], n = shim_table_fds(fds, SHIM_MAX_FDS);
	struct shim_entry o;

	for (int i = 0; i < n; i++)
		if (shim_table_get(fds[i], &o, false) && o.ino == ino)
			return true;
	return false;
}

int shim_handoff_take(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	struct shim_entry e;
	int ep, c, fl;

	if (!shim_table_get(fd, &e, false) || (ep = shim_endpoint_of(e.ino)) < 0)
		return -1;
	shim_busy++;
	/* a refused hand-off (wrong sender, not a connection of this
	 * listener) was closed: say so and take the next */
	for (int i = 0; i < 16; i++) {
		c = sockmig_handoff_recv(ep);
		if (c >= 0 || c == -EAGAIN || c == -EBADF)
			break;
		shim_say("fd %d: %s", fd, sockmig_last_error());
	}
	if (c >= 0) {
		/* as accept4(@flags) makes it */
		shim_real.fcntl(c, F_SETFD, (flags & SOCK_CLOEXEC) ? FD_CLOEXEC : 0);
		fl = shim_real.fcntl(c, F_GETFL);
		if (fl >= 0)
			shim_real.fcntl(c, F_SETFL,
					(flags & SOCK_NONBLOCK) ? fl | O_NONBLOCK
								: fl & ~O_NONBLOCK);
		if (addr && len && getpeername(c, addr, len) < 0)
			*len = 0;
		shim_debug("fd %d: accept() took connection fd %d handed off by a drain", fd, c);
	}
	shim_busy--;
	return c >= 0 ? c : -1;
}
