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
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char why[300];
	int err;

	if (sockopt_int(fd, SO_PROTOCOL) != IPPROTO_UDP || sockopt_int(fd, SO_REUSEPORT) != 1)
		return; /* not ours: left alone */
	if (shim_is_inactive() || atomic_load(&udp_inactive))
		return;
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
	/* the address as bound (a v4-mapped or wildcard one as the kernel
	 * keeps it) names the group */
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	shim_quiet_begin();
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .mode = (enum sockmig_udp_mode)shim_cfg.udp_mode);
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
		/* an empty group is left pinned: another process may have
		 * opened it and be about to add its socket (no lock spans the
		 * open and the add) */
		udp_go_inactive(why);
		goto close_group;
	}
	shim_debug("fd %d registered in UDP group %s (mode %s): active, generation %u, pid %d", fd,
		   sockmig_udp_group_name(g), sockmig_udp_mode_str(sockmig_udp_group_mode(g)),
		   udp_gen, (int)getpid());
close_group:
	sockmig_udp_group_close(g);
quiet:
	shim_quiet_end();
}

/*
 * ---- close and exit ----------------------------------------------------
 *
 * Nothing here, on purpose: a member's close (or exit, or a fatal signal)
 * needs nothing of the shim for correctness. The kernel removes the socket
 * from the group's socket array, and the group's program then gives the
 * flows it owned to the working generation. The members are therefore not
 * tracked in table.c, and close() keeps its fast path.
 *
 * RETIRE HOOK (issue 13, queue-aware retire): to let an old generation
 * finish the datagrams already queued on its socket before the close
 * takes them, a registered socket would be tracked here at registration
 * (its fd, inode and cookie, and the group's name), and its last close
 * (close(), dup2/dup3 onto it, close_range/closefrom, exit(), as
 * member.c's shim_listener_release_entry() decides for TCP) would call the
 * library's retire on it before the real close. Not done yet.
 */
