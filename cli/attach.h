/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared by attach, detach, drain, hold and run: taking another process's
 * sockets, and the scanner that registers them (scanner*.c). */
#ifndef SOCKMIG_CLI_ATTACH_H
#define SOCKMIG_CLI_ATTACH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/types.h>

#include "sockmig.h"

struct sm_listener;

/* A copy of listener @l from the first of its owners that lets us take it
 * (pidfd_getfd: the rights of ptrace), or -1 after one error line unless
 * @quiet (a debug line for a race: see take_race()). */
int take_listener(const struct sm_listener *l, bool quiet);

/* The same, silent: a copy of @l, or a negative errno with, in @why, each
 * owner tried and what it said ("fd 5 of pid 123: gone (EBADF: ...)"), or
 * that no owner is visible (-ENOENT). */
int take_listener_why(const struct sm_listener *l, char *why, size_t size);

/* Whether take_listener_why()'s @err is a race: the owner let go of the
 * listener since the scan (ESRCH, EBADF, or ESTALE: the fd is another
 * socket now). */
bool take_race(int err);

/* The start time of @pid in clock ticks since boot (its generation). */
uint32_t process_generation(pid_t pid);

unsigned long long now_ms(void);

#define KNOWN_OWNERS 8

/* A listener registered by a scanner. */
struct known {
	uint64_t cookie;
	int family; /* and address, as sock_diag gave them */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
	uint32_t gen;
	pid_t owner;
	uint32_t inode;		    /* of the socket, to find its owners again */
	bool holder;		    /* a holder: never drained, never "newest" */
	bool drained;		    /* marked draining */
	unsigned long long gone_ms; /* 0 while listening */
	char group[SOCKMIG_NAME_MAX];
	/* With hold_refs, attach's own reference to the listener (-1: none):
	 * the server's close() then ends nothing, and attach drains the
	 * listener (an announced close) once no owner holds it any more. */
	int fd;
	bool let_go; /* its noted owners let go of it (seen at a scan's start) */
	int nown;
	struct {
		pid_t pid;
		int fd;
	} own[KNOWN_OWNERS]; /* some owners, to ask kcmp() whether they hold it */
};

#define SCANNER_MAX	 1024
#define SCANNER_SKIP_MAX 256
#define SCANNER_WHY_MAX	 8
#define SCANNER_WHY_LEN	 320

/* A listener the scanner could not register (no SO_REUSEPORT, group full,
 * another user's) or that is not --pid's: not looked at again before
 * retry_ms, with a backoff that doubles on each failure. */
struct skipped {
	uint64_t cookie;
	unsigned long long retry_ms;
	unsigned int backoff_ms;
	bool udp; /* a UDP socket: forgotten by the UDP scan only */
	/* a TCP listener whose tries since @unreg_since (to @unreg_last) all
	 * failed with @unreg_err: -ENOENT, no process that holds it could be
	 * seen (another pid namespace, another user's), or -EPERM, taking it
	 * was not permitted; @unreg_since 0 when the last try failed
	 * otherwise */
	unsigned long long unreg_since, unreg_last;
	int unreg_err;
	int family; /* and its address, where it was last tried */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
	bool v6only;
};

/* A UDP socket registered by attach (scanner_udp.c). attach keeps no copy
 * of it: the server's last close() takes it out of the kernel's group and
 * of the group's socket array at once, so no datagram goes to a socket
 * nobody reads. */
struct known_udp {
	uint64_t cookie;
	uint32_t gen;
	pid_t owner;
	char group[SOCKMIG_NAME_MAX];
};

/* Where a listener's generation comes from (--generation-by). */
enum gen_by {
	GEN_BY_PROCESS = 0, /* its oldest owner's start time (hold, run) */
	GEN_BY_EXE,	    /* its oldest owner's executable: the file's ctime */
	GEN_BY_TREE,	    /* the start of the oldest ancestor running the same executable */
	GEN_BY_NONE,	    /* as exe, but older generations are never drained */
};

/* A group whose lease the scanner renews. */
struct lease_ref {
	char name[SOCKMIG_NAME_MAX];
	struct sockmig_group *g;
};

/* What attach does on every interval, for attach, hold and run. */
struct scanner {
	int port;	    /* 0: every port */
	pid_t pid;	    /* 0: every process */
	int64_t gen;	    /* -1: from gen_by */
	enum gen_by gen_by; /* GEN_BY_NONE: do not drain older generations */
	bool hold_refs;	    /* keep a reference to each listener (attach's daemon) */
	bool quiet;
	/* > 0: set a lease of this many ms on every group registered in, and
	 * renew it on every scan (attach's daemon) */
	uint32_t lease_ms;
	int nlease;
	struct lease_ref *lease;
	int nk;
	struct known k[SCANNER_MAX];
	int first_new; /* k[first_new] to k[nk - 1]: registered by the last scan */
	int nskip;
	struct skipped skip[SCANNER_SKIP_MAX];
	/* attach --proto: UDP sockets too (udp), TCP listeners not (no_tcp);
	 * hold and run leave both false: TCP alone */
	bool udp, no_tcp;
	bool udp_said;	      /* --proto udp or all given: a socket passed over is an error */
	bool udp_list_failed; /* the scan's error was listing UDP sockets */
	enum sockmig_udp_mode udp_mode;
	uint32_t udp_idle_ms, udp_flow_max; /* 0: the library's */
	int nu;
	struct known_udp u[SCANNER_MAX];
	unsigned long owner_scans; /* of /proc (or of --pid's fds) for owners */
	/* attach's start-up: the reasons listeners were not registered are
	 * kept in why[] (each once) rather than said as they come; ntried
	 * counts the listeners tried, nrace the races seen */
	bool collect;
	int ntried, nrace, nwhy;
	struct {
		char text[SCANNER_WHY_LEN];
		bool race;
		bool soft; /* not an error when something was registered */
	} why[SCANNER_WHY_MAX];
};

/*
 * One scan: register the listeners (of port/pid) not seen before (one it
 * failed to register or that is not pid's: once its backoff ran out, with
 * an error line the first time only), mark older generations draining
 * when a newer one appeared (unless keep_old), forget members that
 * stopped listening a few seconds ago.
 * Returns the number registered, or a negative errno.
 */
int scanner_scan(struct scanner *sc);

/* Between two scans (hold_refs): when the noted owners of a listener
 * attach holds all let go of it (kcmp() against attach's own fd: cheap),
 * a scan now (the new listeners registered first, then the owner scan
 * that confirms nobody else holds it, then its drain). Returns 1 when it
 * scanned, 0 otherwise. */
int scanner_release(struct scanner *sc);

/* The UDP part of a scan (scanner_udp.c, called by scanner_scan() when
 * sc->udp): the UDP sockets of port/pid bound with SO_REUSEPORT and not
 * connected, registered in their port's UDP group (mode sc->udp_mode) with
 * their generation, each taken just for its registration; those that
 * closed are forgotten. The number registered, or a negative errno (no
 * UDP sock_diag in this kernel: -ENOENT). */
int scanner_udp_scan(struct scanner *sc);

/* The UDP sockets registered by the scanner that are still open (those
 * that closed are forgotten). */
int scanner_udp_live(struct scanner *sc);

/* Listeners and UDP sockets registered and known to the scanner. */
int scanner_count(const struct scanner *sc);

/* The next TCP listener, from skip[*@from] on, that the scans could not
 * register for at least @ms, every try failing for the same lasting reason
 * (unreg_err): its entry (*@from moves past it), else NULL. */
const struct skipped *scanner_unregistrable(const struct scanner *sc, unsigned long long ms,
					    int *from);
/* Forget what the scans recorded of skipped listener @cookie's failures
 * (a fresh look found it registrable), and try it at the next scan. */
void scanner_unregistrable_forget(struct scanner *sc, uint64_t cookie);

/* Shared by scanner.c and scanner_udp.c: a socket not registered is not
 * tried again before its backoff (doubling) runs out. */
struct skipped *skipped_of(struct scanner *sc, uint64_t cookie);
void skip_listener(struct scanner *sc, uint64_t cookie, unsigned long long now, bool udp);
void skipped_forget_gone(struct scanner *sc, const struct sm_listener *ls, int n, bool udp);

/* Why a socket was not registered: said now (an error line; a debug line
 * for a race or when @soft), or kept for attach's start-up (sc->collect).
 * A @soft reason is said as an error only when nothing was registered. */
void scanner_why(struct scanner *sc, bool quiet, bool race, bool soft, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Unregister everything the scanner registered (the last member's leave
 * removes the group's pins) and close the references it held. */
void scanner_leave_all(struct scanner *sc);

/* Renew the lease of every group the scanner registered in (lease_ms). */
void scanner_renew(struct scanner *sc);

/* attach's clean stop: one last release pass (listeners whose owners let
 * go are drained), then every member it registered leaves (no drain, the
 * server's listeners untouched) and its leases are removed. Returns the
 * number of members that left. */
int scanner_stop(struct scanner *sc);

/* The generation of a listener owned by @pid, by @mode. */
uint32_t generation_of(pid_t pid, enum gen_by mode);

/* A listener's generation: that of its oldest owner (scanner_gen.c). */
uint32_t listener_generation(const struct sm_listener *l, enum gen_by mode);

/* The let-go checks of attach's kept references (scanner_release.c). */

/* Note some owners of @l other than ourselves in @k, to ask kcmp() later. */
void note_owners(struct known *k, const struct sm_listener *l);

/* Whether one of the owners noted in @k still holds its listener. */
bool still_held(const struct known *k);

/* Drain and close the listeners attach holds whose owners let go of them
 * (@ls: this scan's @n listeners; @fresh: their owners were read in it). */
void release_let_go(struct scanner *sc, struct sm_listener *ls, int n, bool fresh);

#endif
