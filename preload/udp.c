// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP sockets: once bind() of a UDP socket (IPv4 or IPv6) with
 * SO_REUSEPORT to a port succeeds, it joins its port's UDP group (see
 * include/sockmig/udp.h) as an active member of this image's generation,
 * owned by this process. A newer generation than every other active
 * member's becomes the working one by itself (the library flips): its
 * sockets take the new flows, and each flow the older sockets took stays
 * with them while they live (mode flow, the default; SOCKMIG_UDP_MODE=none
 * makes a new group stateless). Runs with shim_busy set.
 *
 * A registered socket is tracked in the fd table (table.c) under its UDP
 * group's name, so that two calls find it:
 *   - connect() to a peer: servers that open one socket per connection
 *     (HAProxy's QUIC) bind it to the listener's address and port with
 *     SO_REUSEPORT, then connect it to their client. Such a socket takes
 *     that one peer's datagrams (the kernel's lookup prefers a connected
 *     socket for its own 4-tuple), and no new flow must be steered to it:
 *     it leaves the group before the real connect() (so that at no time a
 *     connected socket is selectable), and joins again when the connect
 *     fails. A socket already connected at bind() is not registered.
 *   - its last close (close, dup2/dup3 onto it, close_range/closefrom,
 *     exit() through member.c's shim_listeners_exit()): after the real
 *     call, when no other fd of this process holds the socket, the group
 *     goes if no live member is left (sockmig_udp_group_collect(): the
 *     pins and the directory, under the group's lock). A socket still
 *     open in another process (a pre-fork worker) keeps it. What _exit(),
 *     SIGKILL or an untracked close leave is removed by `sockmig status`.
 *
 * The generation is the time this program image was loaded (the shim's
 * constructor, at exec), in clock ticks since boot: the clock and the unit
 * of the TCP listeners' generation (the process's start time), taken once
 * per image and inherited by forked children. The working generation of a
 * UDP group is the newest alone, so the TCP choice (each process its own
 * start time) would give all new flows to the last worker a pre-fork
 * server forked; here its workers are one generation, and a server started
 * (or re-executed) later is a newer one. SOCKMIG_GENERATION overrides.
 *
 * Fail open: no privileges (the shim's one "inactive" line, as for TCP),
 * a bad SOCKMIG_UDP_MODE or any library error ("inactive for UDP: WHY",
 * once per process): the socket stays as bound, and no other UDP socket
 * of the process is registered. A socket that is not registered takes no
 * datagram while a registered one can (the group's program chooses among
 * members): a reload whose registration failed keeps the old generation
 * serving until it closes, then the kernel's hash serves the new one.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

static uint32_t udp_gen;
static atomic_bool udp_inactive;

void shim_udp_init(void)
{
	struct timespec ts;
	long hz = sysconf(_SC_CLK_TCK);

	if (hz <= 0)
		hz = 100;
	if (shim_cfg.have_generation)
		udp_gen = shim_cfg.generation;
	else if (clock_gettime(CLOCK_BOOTTIME, &ts) == 0)
		udp_gen = (uint32_t)((uint64_t)ts.tv_sec * (uint64_t)hz +
				     (uint64_t)ts.tv_nsec / (1000000000ull / (uint64_t)hz));
	/* SOCKMIG_UDP_GEN_NEWEST is reserved (SOCKMIG_GENERATION may say it) */
	if (udp_gen == SOCKMIG_UDP_GEN_NEWEST)
		udp_gen--;
}

bool shim_udp_candidate(const struct sockaddr *sa, socklen_t len)
{
	/* sin_port and sin6_port sit at the same offset */
	return sa && len >= sizeof(struct sockaddr_in) &&
	       (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) &&
	       ((const struct sockaddr_in *)sa)->sin_port != 0;
}

static void udp_go_inactive(const char *why)
{
	if (atomic_exchange(&udp_inactive, true))
		return;
	if (!shim_cfg.quiet)
		shim_say("inactive for UDP: %s", why);
}

static int sockopt_int(int fd, int name)
{
	int val = 0;
	socklen_t len = sizeof(val);

	return getsockopt(fd, SOL_SOCKET, name, &val, &len) < 0 ? -1 : val;
}

void shim_udp_bind(int fd)
{
	SOCKMIG_OPTS(sockmig_udp_member_opts, mo, .generation = udp_gen, .pid = (uint32_t)getpid());
	struct sockmig_udp_group *g;
	struct sockaddr_storage ss, peer;
	socklen_t len = sizeof(ss), plen = sizeof(peer);
	struct shim_entry e;
	char why[300];
	int err;
	struct stat st;

	if (sockopt_int(fd, SO_PROTOCOL) != IPPROTO_UDP || sockopt_int(fd, SO_REUSEPORT) != 1)
		return; /* not ours: left alone */
	if (shim_is_inactive() || atomic_load(&udp_inactive))
		return;
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0) {
		shim_debug("fd %d: a connected UDP socket: not registered", fd);
		return;
	}
	if (fstat(fd, &st) < 0)
		return;
	if (shim_table_full() && shim_table_find(fd) < 0) {
		/* untracked, it could not leave at connect(): not registered */
		shim_debug("fd %d: more than %d fds tracked: not registered", fd, SHIM_MAX_FDS);
		return;
	}
	if (!shim_bpf_privileged()) {
		shim_go_inactive("no privilege to load the policy program (needs CAP_BPF and "
				 "CAP_PERFMON, or root)");
		return;
	}
	if (shim_cfg.udp_mode < 0) {
		snprintf(why, sizeof(why), "SOCKMIG_UDP_MODE=%s is not flow or none",
			 shim_cfg.udp_mode_str);
		udp_go_inactive(why);
		return;
	}
	if (shim_cfg.udp_idle_ms < 0 || shim_cfg.udp_flow_max < 0) {
		snprintf(why, sizeof(why), "%s=%s is not a number of 1 to %llu%s",
			 shim_cfg.udp_idle_ms < 0 ? "SOCKMIG_UDP_IDLE_MS" : "SOCKMIG_UDP_FLOW_MAX",
			 shim_cfg.udp_idle_ms < 0 ? shim_cfg.udp_idle_str
						  : shim_cfg.udp_flow_max_str,
			 shim_cfg.udp_idle_ms < 0 ? SHIM_UDP_IDLE_MAX_MS : SHIM_UDP_FLOW_MAX_LIMIT,
			 shim_cfg.udp_idle_ms < 0 ? " (or never)" : "");
		udp_go_inactive(why);
		return;
	}
	/* the address as bound (a v4-mapped or wildcard one as the kernel
	 * keeps it) names the group */
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	shim_quiet_begin();
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .mode = (enum sockmig_udp_mode)shim_cfg.udp_mode,
		     .idle_timeout_ms = (uint32_t)shim_cfg.udp_idle_ms,
		     .flow_max = (uint32_t)shim_cfg.udp_flow_max);
	g = sockmig_udp_group_open((struct sockaddr *)&ss, len, &go);
	if (!g) {
		if (!shim_lock_timed_out())
			udp_go_inactive(sockmig_last_error());
		goto quiet;
	}
	err = sockmig_udp_member_add(g, fd, &mo);
	if (err) {
		if (shim_lock_timed_out())
			goto close_group;
		snprintf(why, sizeof(why), "%s", sockmig_last_error());
		/* no empty group left behind: a process that opened it and is
		 * about to add its socket makes it again (see lib/udp_gc.c) */
		sockmig_udp_group_collect(g);
		udp_go_inactive(why);
		goto close_group;
	}
	memset(&e, 0, sizeof(e));
	e.ino = st.st_ino;
	e.cookie = sockmig_cookie(fd);
	snprintf(e.group, sizeof(e.group), "%s", sockmig_udp_group_name(g));
	if (!shim_table_put(fd, &e)) {
		sockmig_udp_member_leave(g, fd);
		goto close_group;
	}
	shim_debug("fd %d registered in UDP group %s (mode %s): active, generation %u, pid %d", fd,
		   sockmig_udp_group_name(g), sockmig_udp_mode_str(sockmig_udp_group_mode(g)),
		   udp_gen, (int)getpid());
	/* a close with a handled signal blocked is released by it */
	shim_defer_start();
close_group:
	sockmig_udp_group_close(g);
quiet:
	shim_quiet_end();
}

/* ---- connect, close and exit ------------------------------------------- */

bool shim_udp_entry(const struct shim_entry *e)
{
	return strstr(e->group, "-udp4-") || strstr(e->group, "-udp6-");
}

static struct sockmig_udp_group *open_udp(const char *name)
{
	struct sockmig_udp_group *g = sockmig_udp_group_open_name(name, NULL);

	if (!g && !shim_lock_timed_out())
		shim_debug("UDP group %s: %s", name, sockmig_last_error());
	return g;
}

/*
 * RETIRE HOOK (issue 13, queue-aware retire, not done yet): to let an old
 * generation finish the datagrams already queued on its socket, the
 * library's retire would run here, before @op, when this close is the
 * socket's last reference (decided as member.c decides it for TCP).
 */
int shim_udp_release(int fd, const struct shim_entry *e, shim_op_fn op, void *arg)
{
	struct sockmig_udp_group *g;
	int saved = errno, ret, err, rc;

	shim_busy++;
	ret = op(fd, arg);
	err = errno;
	/* the socket lives on in this process through another fd: nothing
	 * went; in another process: the collect finds it live */
	if (shim_fd_is_socket(fd, e->ino) || shim_holds_socket(e->ino))
		goto out;
	shim_quiet_begin();
	g = open_udp(e->group);
	if (g) {
		rc = sockmig_udp_group_collect(g);
		if (rc == 1)
			shim_debug("fd %d closed: UDP group %s had no live member left: removed",
				   fd, e->group);
		else if (rc < 0 && !shim_lock_timed_out())
			shim_debug("fd %d closed: UDP group %s: %s", fd, e->group,
				   sockmig_last_error());
		sockmig_udp_group_close(g);
	}
	shim_quiet_end();
out:
	shim_busy--;
	errno = ret < 0 ? err : saved;
	return ret;
}

int shim_udp_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct sockmig_udp_group *g;
	struct shim_entry e;
	int saved = errno, ret, err;
	bool left = false;

	shim_busy++;
	if (!shim_table_get(fd, &e, false) || !shim_udp_entry(&e) ||
	    !shim_fd_is_socket(fd, e.ino)) {
		/* a TCP listener's connect() fails as it would have */
		errno = saved;
		ret = shim_real.connect(fd, sa, len);
		shim_busy--;
		return ret;
	}
	shim_quiet_begin();
	g = open_udp(e.group);
	if (g) {
		int r = sockmig_udp_member_leave(g, fd);

		left = r == 0;
		if (left)
			shim_debug("fd %d connects: left UDP group %s", fd, e.group);
		else if (!shim_lock_timed_out())
			shim_debug("fd %d connects: leave UDP group %s: %s", fd, e.group,
				   sockmig_last_error());
		/* untracked only once it is no member: one that could not
		 * leave stays tracked, and its close still collects the group */
		if (left || r == -ENOENT)
			shim_table_get(fd, &e, true);
		sockmig_udp_group_close(g);
	}
	shim_quiet_end();
	errno = saved;
	ret = shim_real.connect(fd, sa, len);
	err = errno;
	if (ret < 0 && left && err != EINPROGRESS && err != EALREADY) {
		shim_debug("fd %d: connect failed: joins UDP group %s again", fd, e.group);
		shim_udp_bind(fd);
	}
	shim_busy--;
	errno = ret < 0 ? err : saved;
	return ret;
}
