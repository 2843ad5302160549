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

/**
 * The capability the calling thread lacks to load the policy program:
 * "CAP_BPF" (any BPF object), then "CAP_PERFMON" (the verifier refuses the
 * program without it), or "CAP_SYS_ADMIN" on a kernel before 5.8, which has
 * neither; NULL when it has what the kernel asks, or CAP_SYS_ADMIN, or when
 * its capabilities cannot be read (the load then says).
 */
SOCKMIG_API const char *sockmig_missing_cap(void);

/* The API by subject; <sockmig.h> is the one header to include. */
#include <sockmig/group.h>
#include <sockmig/member.h>
#include <sockmig/legacy.h>
#include <sockmig/holder.h>
#include <sockmig/udp.h>
#include <sockmig/quic.h>

#ifdef __cplusplus
}
#endif

#endif /* SOCKMIG_H */
