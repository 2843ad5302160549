/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/**
 * @file sockmig/group.h
 * libsockmig: groups: open, identity, list, attach, lease.
 * Part of the public API: include <sockmig.h>, which includes this file
 * with what it needs; not on its own.
 */
#ifndef SOCKMIG_PUBLIC_GROUP_H
#define SOCKMIG_PUBLIC_GROUP_H

#ifndef SOCKMIG_H
#error "include <sockmig.h>, not <sockmig/group.h>"
#endif

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

#endif /* SOCKMIG_PUBLIC_GROUP_H */
