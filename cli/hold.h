/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The holder: a listening member of role holder that keeps a group alive
 * while no server listens (a stop-then-start restart, a crash). It takes
 * nothing while an active member exists; with none, the policy migrates
 * the last member's queue to it and sends it the new SYNs, whose
 * handshakes complete and wait. When a server listener comes back, the
 * holder is rotated: a fresh one joins, the old one is drained, and what
 * waited on it migrates to the new server.
 */
#ifndef SOCKMIG_CLI_HOLD_H
#define SOCKMIG_CLI_HOLD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct holder {
	struct sockaddr_storage addr;
	socklen_t alen;
	int port;
	uid_t uid; /* the server's: a group admits one effective uid */
	gid_t gid;
	struct sockmig_holder *lh;
	uint64_t cookie;
	bool follow; /* no --addr: move to the address the server listens on */
	unsigned rotations;
	uint64_t moved; /* what rotations migrated to servers */
};

/* Parse --addr (NULL: 0.0.0.0) and --port into @h. -1 after an error line. */
int holder_config(struct holder *h, const char *addr, int port, const char *user);

/* Open the first holder. -1 after an error line. */
int holder_open(struct holder *h);

/* A fresh holder joins; the old one is drained into the active members. */
int holder_rotate(struct holder *h);

struct known;
/* A server listener @k appeared: rotate the holder, onto k's address when
 * the holder follows the server (no --addr) and is elsewhere; open it there
 * when it is not open yet. */
int holder_server_joined(struct holder *h, const struct known *k);

/* Drain (when @migrate) and close the holder, and leave the group. */
void holder_close(struct holder *h, bool migrate);

#endif
