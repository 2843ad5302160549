/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/**
 * @file sockmig/udp.h
 * libsockmig: UDP groups, where flows stay with the socket that owns them.
 * Part of the public API: include <sockmig.h>, which includes this file
 * with what it needs; not on its own.
 */
#ifndef SOCKMIG_PUBLIC_UDP_H
#define SOCKMIG_PUBLIC_UDP_H

#ifndef SOCKMIG_H
#error "include <sockmig.h>, not <sockmig/udp.h>"
#endif

/* ---- UDP groups ---------------------------------------------------------- */

/*
 * A *UDP group* is the kernel's SO_REUSEPORT group of the UDP sockets bound
 * to one address and port of a network namespace (QUIC, DNS, any datagram
 * server). A server "reloads" by binding new sockets in the same group; the
 * kernel's hash then moves datagrams of established flows to the new
 * sockets, whose process does not know them. A UDP group's select program
 * (any kernel from 4.19: UDP needs no migration) keeps them where they
 * belong. Its sockets are registered as *members* with a generation:
 *
 * - the *working generation* takes every new flow (hash over its
 *   members): the newest generation with an active member, unless one was
 *   set with sockmig_udp_set_working();
 * - mode SOCKMIG_UDP_MODE_FLOW (the default): each flow (the datagram's
 *   full 4-tuple and IP version, never a hash of it) is learned when its
 *   first datagram is received and assigned, so every later datagram goes
 *   to the socket that got the first, whatever its generation or role,
 *   while that socket lives; once it has closed, the flow falls to the
 *   working generation and is learned again there; a flow idle past the
 *   group's timeout is new again. A QUIC client's flow also records the
 *   client's own connection ID (the source CID of its Initials, the same
 *   in every Initial of a connection): an Initial from the same 4-tuple
 *   with another one, while the flow's owner is of an older generation
 *   than the working one, is a new connection (the client's port came
 *   back), a new flow for the working generation, and the 4-tuple's from
 *   then on (an owner of the working generation keeps it, as the kernel's
 *   hash would, and the flow records the newer ID; a client that runs several connections from one port at
 *   once is best served by mode quic-lb). A group made with
 *   SOCKMIG_UDP_LEARN_CLAIM learns only the flows its members claim
 *   (sockmig_udp_flow_claim()); any other datagram goes to the working
 *   generation, its flow left unlearned. The table is an LRU map of flow_max
 *   entries: beyond that many live flows the least recently seen are
 *   forgotten (and counted as new when they come back);
 * - mode SOCKMIG_UDP_MODE_NONE: stateless, every datagram to the working
 *   generation;
 * - mode SOCKMIG_UDP_MODE_QUIC_LB: QUIC, routed by the connection ID that
 *   the server chose (see "QUIC-LB connection IDs" below), whatever the
 *   client's address and port (NAT rebinding, migration); a datagram whose
 *   destination CID does not name a live member (a client's Initial,
 *   another config, a member gone) is handled as in mode flow, on its
 *   4-tuple.
 * When no registered socket can be selected (none is active, or all those
 * registered closed since), the kernel's hash chooses over every socket of
 * the group. The state is pinned under the same root as TCP groups, in
 * "<netns>-udp4-<address>-<port>" (udp6 for IPv6); sockmig_group_list()
 * does not list it.
 */

struct sockmig_udp_group;

/** How a UDP group finds the owner of a datagram. */
enum sockmig_udp_mode {
	/** A new group: SOCKMIG_UDP_MODE_FLOW; an existing one: as it is. */
	SOCKMIG_UDP_MODE_DEFAULT = 0,
	SOCKMIG_UDP_MODE_FLOW = 1,    /**< flows learned on receive, by 4-tuple */
	SOCKMIG_UDP_MODE_NONE = 2,    /**< stateless: the working generation only */
	SOCKMIG_UDP_MODE_QUIC_LB = 3, /**< QUIC: the server's connection ID, else as flow */
};

/** sockmig_udp_group_opts.learn: when a UDP group learns a flow. */
enum sockmig_udp_learn {
	/** A new group: SOCKMIG_UDP_LEARN_RECEIVE; an existing one: as it is. */
	SOCKMIG_UDP_LEARN_DEFAULT = 0,
	/** At its first datagram received (the default): a client's first
	 *  flight of several datagrams stays on one socket across a flip. */
	SOCKMIG_UDP_LEARN_RECEIVE = 1,
	/** Only when a member claims it (sockmig_udp_flow_claim()): a datagram
	 *  of a flow nobody claimed (or whose claimer closed, or idle past the
	 *  timeout) goes to the working generation and is not learned, so a
	 *  first flight that straddles a flip is split (the way groups that
	 *  learn on transmit behave). Counted in sockmig_udp_stats.stateless. */
	SOCKMIG_UDP_LEARN_CLAIM = 2,
};

/** Name of a mode: "default", "flow", "none", "quic-lb". */
SOCKMIG_API const char *sockmig_udp_mode_str(enum sockmig_udp_mode mode);

/** idle_timeout_ms: flows never expire by time (the LRU alone forgets them). */
#define SOCKMIG_UDP_NO_EXPIRY UINT32_MAX

struct sockmig_udp_group_opts {
	size_t sz;
	/** bpffs directory for groups; default SOCKMIG_PIN_ROOT. */
	const char *pin_root;
	/** Chosen by the group's maker; opening an existing group with another
	 *  mode fails with EEXIST. */
	enum sockmig_udp_mode mode;
	/** A flow idle longer than this is a new flow at its next datagram
	 *  (to the working generation). 0: 30,000 for a new group, and an
	 *  existing group's value kept; any other value replaces the group's. */
	uint32_t idle_timeout_ms;
	/** Live flows a new group's flow table holds (at most 2^24); 0:
	 *  65,536. Fixed when the group is made. The map has 256 entries
	 *  more per possible CPU: the kernel's LRU may keep that many free
	 *  per CPU, and would forget live flows before flow_max without them. */
	uint32_t flow_max;
	/** Mode quic-lb: length of the group's connection IDs, in octets,
	 *  SOCKMIG_QUIC_CID_MIN to SOCKMIG_QUIC_CID_MAX; 0: 8 for a new group.
	 *  Fixed when the group is made: another non-zero value fails with
	 *  EEXIST; other modes: must be 0. */
	uint32_t quic_cid_len;
	/** Mode quic-lb: the config rotation bits of the group's CIDs, 0 to
	 *  SOCKMIG_QUIC_CONFIG_MAX. Fixed when the group is made: checked
	 *  (EEXIST) only when quic_cid_len is given too. */
	uint32_t quic_config_id;
	/** When the group learns a flow (mode flow, and mode quic-lb's flow
	 *  fallback; mode none learns nothing, whatever this says). Fixed when
	 *  the group is made: another non-default value fails with EEXIST. */
	enum sockmig_udp_learn learn;
	/** Mode quic-lb: the 16-octet AES-128 key of the group's encrypted
	 *  CIDs (see "QUIC-LB connection IDs"; read, not kept: the caller may
	 *  wipe it on return); NULL: plaintext CIDs. Fixed when the group is
	 *  made: another key, or a key for a plaintext group, fails with
	 *  EEXIST, and so does NULL for an encrypted group when quic_cid_len
	 *  is given; other modes: must be NULL (EINVAL). An encrypted group
	 *  needs Linux 5.11 or later (EOPNOTSUPP); at quic_cid_len 17 its
	 *  CIDs are QUIC-LB's single-pass layout (one AES block). */
	const uint8_t *quic_key;
	size_t : 0;
};
#define sockmig_udp_group_opts__last_field quic_key

/**
 * Open the UDP group of @p addr (struct sockaddr_in or sockaddr_in6 with a
 * port; the wildcard address is a group of its own) in the calling
 * thread's network namespace, making its pinned state when it is the
 * first. No socket is needed: the program is attached by the first
 * sockmig_udp_member_add(), and by every one after it.
 *
 * A group pinned by an older version of sockmig, whose flow values or
 * counters were shorter (fields were appended since), is upgraded by the
 * open: this version's program, the other maps reused as they are, a new
 * flow table and counters filled from the older ones, pinned in their
 * place (under the group lock, which the copies hold about 2 s for a
 * million flows, 0.1 s for 65,536 on a 2-vCPU VM: the shim of a server
 * that binds meanwhile waits 0.5 s for it, then runs without sockmig). The
 * program is attached in place of the older one through a UDP socket of
 * the calling process bound to @p addr when it has one, else by the next
 * sockmig_udp_member_add() of any process of this version (a new socket,
 * or one registered again); right after that first attach the flows that
 * the older program learned since the copy are copied too. The older
 * servers keep every flow. Processes of the older version are refused the
 * group from then on (they say to remove its directory: do not, stop them
 * instead), and one that still holds it open and adds a socket attaches
 * its own program again, which reads the older table. Not upgraded
 * (EEXIST): a group that learns flows when claimed
 * (SOCKMIG_UDP_LEARN_CLAIM), whose members of the older version would
 * claim into the older table, and a group of a version before 17-octet
 * encrypted CIDs.
 * @return a handle, or NULL with errno set (EINVAL: bad address or
 * options; EEXIST: another mode, or a group pinned by a build whose maps
 * differ otherwise (groups of the build before 17-octet encrypted CIDs
 * open), or an older group that learns flows when claimed;
 * ENOENT: no bpffs; EPERM: no privileges,
 * or a pin root or group directory that is not a 0700 directory of the
 * caller).
 */
SOCKMIG_API struct sockmig_udp_group *
sockmig_udp_group_open(const struct sockaddr *addr, socklen_t len,
		       const struct sockmig_udp_group_opts *opts);

/** Free the handle; the pinned state and the program stay. */
SOCKMIG_API void sockmig_udp_group_close(struct sockmig_udp_group *g);

/** Remove the group's pinned state (the program stays attached to the
 *  kernel's group until its last socket closes). @return 0; -ENOENT when
 *  the group was removed since @p g was opened (the path may name a group
 *  made again since: it is left alone); another negative errno. */
SOCKMIG_API int sockmig_udp_group_destroy(struct sockmig_udp_group *g);

/** The group's directory name, e.g. "4026531840-udp4-127_0_0_1-4433". */
SOCKMIG_API const char *sockmig_udp_group_name(const struct sockmig_udp_group *g);

/** The group's mode (SOCKMIG_UDP_MODE_FLOW, _NONE or _QUIC_LB). */
SOCKMIG_API enum sockmig_udp_mode sockmig_udp_group_mode(struct sockmig_udp_group *g);

/** How many flows the group's flow table can hold (its flow_max, fixed
 *  when it was made; beyond that many the least recently seen are
 *  forgotten), or 0 when @p g is NULL or its table could not be read. */
SOCKMIG_API uint32_t sockmig_udp_group_flow_max(const struct sockmig_udp_group *g);

/** The group's idle timeout as it is now (another opener's non-zero
 *  idle_timeout_ms replaces it): a flow idle longer is a new flow at its
 *  next datagram. @return milliseconds, SOCKMIG_UDP_NO_EXPIRY for never,
 *  or 0 when @p g is NULL or its config could not be read. */
SOCKMIG_API uint32_t sockmig_udp_group_idle_timeout_ms(struct sockmig_udp_group *g);

/** Sockets of a UDP group (slots of its socket array). */
#define SOCKMIG_UDP_SLOTS 4096
/** sockmig_udp_set_working(): the newest generation with an active member. */
#define SOCKMIG_UDP_GEN_NEWEST UINT32_MAX

struct sockmig_udp_member_opts {
	size_t sz;
	/** Default 0; SOCKMIG_UDP_GEN_NEWEST is reserved. Generations compare
	 *  as serial numbers (newer: ahead by less than 2^31). */
	uint32_t generation;
	/** The socket's owner, for the member list (default: the caller). */
	uint32_t pid;
	size_t : 0;
};
#define sockmig_udp_member_opts__last_field pid

/**
 * Register UDP socket @p fd, bound with SO_REUSEPORT to the group's address
 * and port, as an active member of opts->generation, and attach the
 * group's program to the kernel's group through it. From then on it takes
 * new flows when its generation is the working one; a newer generation
 * than every other active member's becomes the working one (a flip).
 * Registering it again sets its generation and makes it active again.
 * @return 0; -EINVAL (not a bound UDP socket with SO_REUSEPORT, or a
 * reserved generation); -EXDEV (another address, port or network
 * namespace); -ENOSPC (SOCKMIG_UDP_SLOTS live members); another errno.
 */
SOCKMIG_API int sockmig_udp_member_add(struct sockmig_udp_group *g, int fd,
				       const struct sockmig_udp_member_opts *opts);

/**
 * Make @p generation the working generation (new flows go to its active
 * members), e.g. to roll back to an older one; SOCKMIG_UDP_GEN_NEWEST
 * returns to the newest. A generation set by hand that has no live active
 * member left (closed, or drained) is replaced by the newest.
 * @return 0; -ENOENT when it has no live active member.
 */
SOCKMIG_API int sockmig_udp_set_working(struct sockmig_udp_group *g, uint32_t generation);

/**
 * Drain @p generation: its members take no new flow from now on; the flows
 * they own stay with them while their sockets live (close a socket when its
 * flows have ended: its remaining flows then fall to the working
 * generation). @return the number of members drained; -ENOENT when it has
 * no live active member; -EBUSY when no active member of another
 * generation would be left.
 */
SOCKMIG_API int sockmig_udp_generation_drain(struct sockmig_udp_group *g, uint32_t generation);

/** One live member, as sockmig_udp_members() reports it. */
struct sockmig_udp_member_info {
	uint64_t cookie;
	uint32_t slot;
	uint32_t generation;
	enum sockmig_role role; /**< SOCKMIG_ROLE_ACTIVE or SOCKMIG_ROLE_DRAINING */
	uint32_t pid;
};

/**
 * List up to @p max live members (sockets still open) into @p out; members
 * whose socket has closed are forgotten here.
 * @return the number of live members (may exceed @p max), or a negative errno.
 */
SOCKMIG_API int sockmig_udp_members(struct sockmig_udp_group *g,
				    struct sockmig_udp_member_info *out, int max);

/** A UDP group's counters (datagrams, since the group was made). */
struct sockmig_udp_stats {
	/** First datagram of a flow, learned for the working generation. */
	uint64_t new_flows;
	/** Datagrams of a known flow, to the socket that owns it. */
	uint64_t flow_hits;
	/** Datagrams of a known flow whose owner had closed: to the working
	 *  generation (the flow is learned again there). */
	uint64_t fallbacks;
	/** Datagrams of a flow idle past the timeout: learned again as new. */
	uint64_t expired;
	/** Datagrams to the working generation without learning their flow:
	 *  every one in mode none; in a SOCKMIG_UDP_LEARN_CLAIM group, those
	 *  of a flow no live claim holds (never claimed, its claimer closed,
	 *  or idle past the timeout). */
	uint64_t stateless;
	/** No registered socket selectable: the kernel's hash chose. */
	uint64_t kernel_hash;
	/** The flow table refused an entry (the datagram was delivered). */
	uint64_t not_learned;
	/** No readable IP or UDP header: the kernel's hash chose. */
	uint64_t parse_failed;
	/** The table in force: the working generation, its live active
	 *  members, and every live active member. */
	uint32_t working_generation;
	uint32_t n_working;
	uint32_t n_active;
};

/** Read the group's counters into @p out. @return 0 or a negative errno. */
SOCKMIG_API int sockmig_udp_stats_read(struct sockmig_udp_group *g, struct sockmig_udp_stats *out);

/**
 * Member @p fd of @p g claims the flow from @p peer (struct sockaddr_in or
 * sockaddr_in6: the remote address and port) to the socket's own address
 * and port: from now on that flow's datagrams go to fd's socket while it
 * lives, whatever its generation or role, as if the flow had been learned
 * there (an entry of another member is replaced); once it has closed, or
 * the flow stays idle past the group's timeout, they fall to the working
 * generation as a learned flow's do. For a server that sends first on a
 * flow (its replies must come back to it), and in a
 * SOCKMIG_UDP_LEARN_CLAIM group the only way a flow is learned. The local
 * address is fd's bound address, which is the group's: a socket bound to
 * the wildcard address cannot tell which of its addresses the peer sends
 * to, and fails with -EINVAL (bind the members to one address to claim).
 * An IPv4 peer of an IPv6 group is given as an IPv4-mapped IPv6 address
 * (the group's address is one then too). A few system calls (the fd's
 * checks, one slot read while fd keeps its slot): call it when a flow
 * starts, not for every datagram.
 * @return 0; -EINVAL (@p g or @p peer missing or not an address with a
 * port of the group's family, a wildcard group, mode none, or @p fd not a
 * bound UDP socket with SO_REUSEPORT); -ENOENT (@p fd is not a live member
 * of @p g); -EXDEV (@p fd belongs to another address, port or network
 * namespace); another negative errno.
 */
SOCKMIG_API int sockmig_udp_flow_claim(struct sockmig_udp_group *g, int fd,
				       const struct sockaddr *peer, socklen_t len);

/** Counters of a UDP group that struct sockmig_udp_stats (which has no
 *  size, so never grows) lacks (datagrams, since the group was made).
 *  Versioned: the caller sets sz (SOCKMIG_OPTS() does); the library writes
 *  no byte past it, and a size below this first version's fails with
 *  EINVAL. Later versions append fields. */
struct sockmig_udp_counters {
	size_t sz;
	/** Datagrams the program delivered to a member that was not of the
	 *  working generation at that moment: those of known flows (mode
	 *  flow, quic-lb) and those of a member's QUIC CID (quic-lb) that went
	 *  to their owner of an older generation after a flip (or of a newer
	 *  one after sockmig_udp_set_working() rolled back). New flows,
	 *  fallbacks and mode none go to the working generation: never here.
	 *  "The working generation" is the program's copy of the selection
	 *  table's, updated with it (struct sockmig_udp_stats
	 *  .working_generation; 0 while no member is active). */
	uint64_t old_generation;
	/** Second version. New QUIC connections from the 4-tuple of a known
	 *  flow (modes flow and quic-lb): a client's QUIC Initial whose own
	 *  connection ID (its source CID) is not the one the flow recorded,
	 *  while the flow's owner, of another generation than the working one,
	 *  lived (the client's port came back).
	 *  Each went to the working generation as a new flow (also counted in
	 *  struct sockmig_udp_stats .new_flows), not to the flow's owner.
	 *  Never in a SOCKMIG_UDP_LEARN_CLAIM group, whose program learns no
	 *  flow. */
	uint64_t quic_new_connections;
	size_t : 0;
};

/**
 * Read the counters of @p g that struct sockmig_udp_counters holds into
 * @p out, whose sz says how many bytes it has (SOCKMIG_OPTS(
 * sockmig_udp_counters, c) then sockmig_udp_counters_read(g, &c)).
 * @return 0; -EINVAL (no group, no @p out, or out->sz below the first
 * version's); another negative errno.
 */
SOCKMIG_API int sockmig_udp_counters_read(struct sockmig_udp_group *g,
					  struct sockmig_udp_counters *out);

/** Flows owned by one generation, as sockmig_udp_flows() counts them. */
struct sockmig_udp_flow_count {
	uint32_t generation;
	uint64_t flows;
};

/**
 * Count the flows of the group's table that still belong to a live socket
 * and were seen within the idle timeout, by the generation of their owner
 * (at the flow's learning): up to @p max generations into @p out, oldest
 * first. It reads the whole table (up to flow_max entries; in batches
 * where the kernel has them, 5.6+, else one lookup per entry), after the
 * group's lock: for status and reports, not for every datagram.
 * -EAGAIN when, key by key, flows were evicted under the walk faster than
 * it read them.
 * @return the number of generations (may exceed @p max), or a negative
 * errno.
 */
SOCKMIG_API int sockmig_udp_flows(struct sockmig_udp_group *g, struct sockmig_udp_flow_count *out,
				  int max);

/** The kernel's UDP error counters of the calling thread's network
 *  namespace, IPv4 and IPv6 added (Udp of /proc/net/snmp, Udp6 of
 *  /proc/net/snmp6), every socket's, not the group's alone. */
struct sockmig_udp_snmp {
	/** RcvbufErrors: datagrams dropped because a socket's receive queue
	 *  was full. */
	uint64_t rcvbuf_errors;
	/** InErrors: datagrams that could not be delivered (rcvbuf_errors
	 *  among them, and checksum errors). */
	uint64_t in_errors;
};

/** Read them. @return 0 or a negative errno (no /proc/net/snmp). */
SOCKMIG_API int sockmig_udp_snmp_read(struct sockmig_udp_snmp *out);

/* ---- UDP groups for readers ---------------------------------------------- */

/**
 * List the pinned UDP groups of network namespace @p netns (0: any) and
 * port @p port (0: any), sorted by name, the first @p max into @p out
 * (family, address, port, netns and name, as sockmig_group_list_ids() gives
 * them for TCP groups; the name is the UDP group's, e.g.
 * "4026531840-udp4-127_0_0_1-4433"). Only opts->pin_root is used (opts may
 * be NULL); entries that are not UDP group names are skipped, and a pin
 * root the caller may not read lists none.
 * @return the number that match (may exceed @p max), or a negative errno.
 */
SOCKMIG_API int sockmig_udp_group_list(const struct sockmig_udp_group_opts *opts, uint64_t netns,
				       int port, struct sockmig_group_id *out, int max);

/**
 * Open the existing UDP group pinned as @p name (see
 * sockmig_udp_group_list()), from any network namespace and whatever its
 * mode, to read it (sockmig_udp_group_mode(), sockmig_udp_members(),
 * sockmig_udp_stats_read(), sockmig_udp_flows()) or change it. Nothing is
 * made or changed by the open (unlike sockmig_udp_group_open(), which needs
 * the group's network namespace and makes a missing group). Only
 * opts->pin_root is used (opts may be NULL).
 * @return a handle, or NULL with errno set (ENOENT: no such group; EPERM:
 * not readable by the caller; EINVAL: not a UDP group name; ESTALE: a
 * group of an older version, which sockmig_udp_group_open() upgrades;
 * EEXIST: a group of another version, or an older one it does not).
 */
SOCKMIG_API struct sockmig_udp_group *
sockmig_udp_group_open_name(const char *name, const struct sockmig_udp_group_opts *opts);
/* ---- retiring a member: close without losing what is queued ------------ */

/*
 * A UDP socket's receive queue is lost when it closes: datagrams of its
 * flows already queued are never read (its flows fall to the working
 * generation only for the datagrams that come later). Retire a member
 * first, then close it:
 *   1. it becomes draining (no new flows);
 *   2. (unless SOCKMIG_UDP_RETIRE_FLOWS_OK) the library waits until it
 *      owns no flow seen within the group's idle timeout, and (quic-lb)
 *      no datagram reached it by its CIDs within that timeout: its
 *      clients' datagrams keep coming to it meanwhile;
 *   3. it is taken out of the group's socket array: from then on the
 *      program selects it no more, its remaining flows fall to the working
 *      generation (as at its close), and after one RCU grace period no
 *      datagram the program steered reaches its queue;
 *   4. the library waits until its receive queue is empty;
 * all of it within opts->deadline_ms (step 4 gets 30 ms at least, past it
 * when step 2 took it all). The call blocks (it polls every
 * 10 ms): the server's reader must keep reading the socket all along, so
 * call it from another thread than the reader's (or another process
 * holding the group); when it returns, the socket is no member any more
 * and the caller closes it (making the reader stop first, e.g. by
 * shutdown(fd, SHUT_RD), which wakes a blocked recv() with 0). The group
 * lock is the handle's (flock on the group's directory): a thread that
 * retires while others change the group's members uses a handle of its
 * own (sockmig_udp_group_open() again). Only the kernel's own hash can still reach it
 * (when the group has no selectable active member, or a header that
 * cannot be parsed), which a lossless reload never has.
 * The queue is measured from the kernel: FIONREAD (the first queued
 * datagram's length: cheap, and non-zero means not empty) while it says
 * more is queued, then sock_diag (NETLINK_SOCK_DIAG, the UDP socket's
 * idiag_rqueue: every queued datagram's buffer, zero-length datagrams
 * included) for the true count; where sock_diag cannot see the socket
 * (no UDP sock_diag in the kernel, or another network namespace)
 * FIONREAD alone, which misses zero-length datagrams.
 */

/** sockmig_udp_retire_opts.flags: do not wait for the member's flows to
 *  go idle (they fall to the working generation at step 3). Without it, a
 *  group with SOCKMIG_UDP_NO_EXPIRY waits to the deadline while a flow is
 *  in the table (flows never go idle there). */
#define SOCKMIG_UDP_RETIRE_FLOWS_OK (1u << 0)

struct sockmig_udp_retire_opts {
	size_t sz;
	/** Longest whole wait, in ms; 0: 10,000. */
	uint32_t deadline_ms;
	/** SOCKMIG_UDP_RETIRE_* (others: EINVAL). */
	uint32_t flags;
	size_t : 0;
};
#define sockmig_udp_retire_opts__last_field flags

/** What sockmig_udp_member_retire() saw. Versioned: the caller sets sz
 *  (SOCKMIG_OPTS() does); the library writes no byte past it, and a size
 *  below this first version's fails with EINVAL. */
struct sockmig_udp_retire_report {
	size_t sz;
	uint64_t cookie;
	/** Live flows it still owned when it left the socket array: moved to
	 *  the working generation then (0 when the wait for them ended). Before
	 *  Linux 5.6, a table whose entries are evicted faster than it is read
	 *  key by key gets an approximate count (a walk that restarts counts
	 *  some twice and misses others). */
	uint64_t flows_left;
	/** Bytes still in its receive queue at the end (as
	 *  sockmig_udp_queued() counts them): 0 unless the deadline passed. */
	uint64_t bytes_queued;
	uint64_t flows_wait_ns; /**< the wait for its flows (step 2) */
	uint64_t total_ns;	/**< the whole call */
	uint32_t deadline_ms;	/**< the deadline used */
	/** The deadline cut a wait short (flows_left or bytes_queued tell
	 *  which). */
	bool deadline_hit;
	/** The queue was measured by sock_diag (else FIONREAD alone). */
	bool queue_exact;
	size_t : 0;
};

/**
 * Retire member @p fd of @p g, as described above; @p opts and @p report
 * may be NULL. Blocks up to the deadline: the socket's reader must run
 * elsewhere meanwhile. The caller closes @p fd afterwards (also after an
 * error past step 1, when report->cookie is set).
 * @return 0: nothing left (no live flow, an empty queue); -ETIMEDOUT: the
 * deadline passed (the report says what was left; the socket has left the
 * socket array all the same); -EINVAL (bad options, flags or report size,
 * or @p fd is not a bound UDP socket with SO_REUSEPORT); -EXDEV (another
 * group's socket); -ENOENT (not a live member); -EBUSY (the last active
 * member: new flows would have nowhere to go).
 */
SOCKMIG_API int sockmig_udp_member_retire(struct sockmig_udp_group *g, int fd,
					  const struct sockmig_udp_retire_opts *opts,
					  struct sockmig_udp_retire_report *report);

/**
 * Bytes in UDP socket @p fd's receive queue now, into *@p bytes, from
 * sock_diag (idiag_rqueue: what the kernel charges for the queued
 * datagrams' buffers, headers and overhead included, so more than their
 * payload; 0 exactly when none is queued). Called just before close():
 * what the close loses (for a reload's report). @return 0; -EINVAL (not
 * a UDP socket); -ENOENT (sock_diag does not see it: another network
 * namespace); -EPROTONOSUPPORT (no UDP sock_diag in this kernel).
 */
SOCKMIG_API int sockmig_udp_queued(int fd, uint64_t *bytes);

/**
 * A deadline for a drained generation, applied by the caller when it
 * passes: take every draining member of @p generation out of the group's
 * socket array at once, so that every flow they still own falls to the
 * working generation from its next datagram on (as if they had closed),
 * while their sockets stay open for their servers to read what is already
 * queued (then sockmig_udp_queued() and close): on return, every datagram
 * the program steered to them before is in their queues (one RCU grace
 * period). Their active members, if
 * any, are left alone. The library has no timer: the caller's deadline
 * (e.g. a reload's) decides when.
 * @return the number of members taken out (0 when a concurrent cutoff
 * took them out first); -ENOENT when @p generation has no live draining
 * member. *@p flows (may be NULL): their live flows moved (approximate in
 * the case flows_left of struct sockmig_udp_retire_report names).
 */
SOCKMIG_API int sockmig_udp_generation_cutoff(struct sockmig_udp_group *g, uint32_t generation,
					      uint64_t *flows);

/* ---- leaving, and the group's end ----------------------------------------- */

/*
 * A UDP group ends with its last member: once no registered socket is
 * live (closed, its process exited or was killed), the group's pins and
 * its directory under the pin root are removed, by
 * sockmig_udp_member_leave() of the last member, by
 * sockmig_udp_group_collect() (the preload shim at a member's close and at
 * exit, `sockmig status` for what a killed process left), or by the
 * caller. The lock is the group's (flock on its directory, as for TCP
 * groups): a removal reads the socket array and removes under it, and
 * sockmig_udp_member_add() checks under it that the group it opened is
 * still the pinned one; when a removal came between the open and the add,
 * the add opens the group again, made as it was (mode, timeout, flow
 * table size, QUIC CID length and config). A handle kept across the end
 * reads what it had (the counters of the group that went).
 */

/**
 * Take member @p fd out of the group: the program selects it no more, its
 * flows fall to the working generation, the socket itself is left as it
 * is (in the kernel's SO_REUSEPORT group: a socket connected to one peer
 * still gets that peer's datagrams from the kernel's lookup). When no live
 * member is left, the group is removed as above.
 * @return 0; -ENOENT (not a live member of the group, or the group was
 * removed since @p g was opened); -EINVAL (not a socket); another
 * negative errno.
 */
SOCKMIG_API int sockmig_udp_member_leave(struct sockmig_udp_group *g, int fd);

/**
 * Remove the group when it has no live member (every registered socket
 * closed), under the group's lock; a group with a live member is left
 * alone, as is a group pinned again by another process since @p g was
 * opened. A process about to add a socket is not raced (see above).
 * @return 1 when the group that @p g opened is gone (removed now, or
 * before), 0 when it stays, or a negative errno.
 */
SOCKMIG_API int sockmig_udp_group_collect(struct sockmig_udp_group *g);

/**
 * Whether the group @p g opened is still the one pinned under its name: a
 * reader that keeps a handle across reports (counters since a mark) tells
 * by it a group that ended, whose last counts it reads through @p g, from
 * one made again under the same name since, whose counts all came after.
 * @return 1 when current, 0 when it was removed since @p g opened it,
 * -EINVAL when @p g is NULL.
 */
SOCKMIG_API int sockmig_udp_group_current(struct sockmig_udp_group *g);

#endif /* SOCKMIG_PUBLIC_UDP_H */
