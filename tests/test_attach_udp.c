// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig attach and UDP servers (cli/scanner_udp.c): the unmodified
 * datagram server tests/servers/udp_echo, reloaded by starting a new
 * process (a new binary installed) before stopping the old one, under
 * `sockmig attach --port P`: every flow stays with the process that took
 * it while that process lives, over several flips (the baseline without
 * attach: the kernel's hash gives old flows to the new process); when the
 * old process exits (SIGTERM) or is killed (SIGKILL), not one datagram
 * goes unanswered (the baseline: a copy of its socket kept by someone
 * else, as attach would keep if it held one, swallows every datagram of
 * its flows); and what attach says of sockets it cannot register. The
 * clients are the UDP rig's (tests/udp_rig.c: connected UDP sockets, one
 * per flow); the server answers with its ID, so the client sees who
 * answered.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "attach_rig.h"
#include "harness.h"
#include "itest.h"
#include "preload.h"
#include "sockmig.h"
#include "udp_rig.h"

#define FLOWS 200 /* new flows per generation */
#define FLIPS 3	  /* generations after the first */
#define NGEN  (FLIPS + 1)

struct au {
	struct ienv e;
	struct ur_rig r;
	struct tp_proc srv[NGEN + 1]; /* by ID, 1 to NGEN */
	time_t ctime;		      /* of the newest binary installed */
	uint32_t seq;
	int family;
	bool attach;
};

static void au_init(struct au *a, bool attach, int family)
{
	memset(a, 0, sizeof(*a));
	a->attach = attach;
	a->family = family;
	a->r.ep = a->r.cep = -1;
	for (int i = 0; i < UR_MAX_FLOWS; i++)
		a->r.cli[i] = -1;
	for (int k = 0; k <= NGEN; k++)
		a->srv[k] = (struct tp_proc)TP_PROC_INIT;
}

/* UDP groups pinned for the port in this case's network namespace. */
static int au_groups(void)
{
	struct sockmig_group_id id[4];
	uint64_t netns = 0;
	struct stat st;

	if (stat("/proc/self/ns/net", &st) == 0)
		netns = st.st_ino;
	return sockmig_udp_group_list(NULL, netns, UR_PORT, id, 4);
}

/* The port's UDP group of @family in this network namespace, or NULL
 * (never made). */
static struct sockmig_udp_group *au_group(int family)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(UR_PORT)};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(UR_PORT)};

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a6.sin6_addr = in6addr_loopback;
	if (au_groups() < 1)
		return NULL;
	if (family == AF_INET6)
		return sockmig_udp_group_open((struct sockaddr *)&a6, sizeof(a6), NULL);
	return sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), NULL);
}

static void au_cleanup(struct au *a)
{
	struct sockmig_udp_group *g;

	for (int k = 0; k <= NGEN; k++)
		tp_proc_kill(&a->srv[k]);
	if (a->e.attach > 0)
		ar_stop_daemon(&a->e);
	ur_stop(&a->r);
	g = au_group(a->family);
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
	it_teardown(&a->e, UR_PORT);
}

/*
 * Install udp_echo as a new file (a deployment: --generation-by exe, the
 * default, takes the file's ctime in seconds), in a later second than the
 * previous one, and start it as server @id: false unless it said ready.
 */
static bool au_start(struct au *a, int id, const char *more)
{
	char bin[128], args[64];
	struct stat st;
	int tries = 0;

	snprintf(bin, sizeof(bin), "%s/udp_echo%d", a->e.dir, id);
	for (;;) {
		if (!tp_server_copy("udp_echo", bin) || stat(bin, &st) < 0)
			return false;
		if (st.st_ctim.tv_sec > a->ctime || ++tries > 30)
			break;
		unlink(bin);
		burst_sleep_ms(50); /* within the same second: bounded, 1.5 s */
	}
	a->ctime = st.st_ctim.tv_sec;
	snprintf(args, sizeof(args), "%d %d%s%s", UR_PORT, id, a->family == AF_INET6 ? " -6" : "",
		 more ? more : "");
	return tp_proc_start(&a->srv[id], a->e.dir, "gen", bin, NULL, false, NULL, -1, args) &&
	       pl_srv_expect(&a->srv[id], "udp", "ready", NULL, 0);
}

/* attach's daemon on the port, with its first @n registrations. */
static bool au_attach(struct au *a, int n)
{
	char portarg[16];
	char *args[] = {"attach", "--port", portarg, "--foreground", NULL};

	snprintf(portarg, sizeof(portarg), "%d", UR_PORT);
	a->e.attach = ar_spawn(&a->e, "attach.log", args);
	return ASSERT_TRUE(a->e.attach > 0, "attach started") &&
	       ASSERT_TRUE(ar_wait_log_lines(&a->e, "attach.log", "registered udp", n, 5000),
			   "attach registered the server's socket");
}

/* @rounds rounds of flows [0, @to). */
static bool au_rounds(struct au *a, int to, int rounds, const char *what)
{
	for (int k = 0; k < rounds; k++)
		if (!ASSERT_OK(ur_round(&a->r, 0, to, ++a->seq), what))
			return false;
	return true;
}

/* Flows [from, to) whose first answer came from @id: their count. */
static int au_first_by(const struct au *a, int from, int to, int id)
{
	int n = 0;

	for (int i = from; i < to; i++)
		n += a->r.first[i] == id;
	return n;
}

/* Server @id exits by @sig: its flows are the next one's from now on. */
static bool au_stop(struct au *a, int id, int sig, int flows)
{
	struct tp_proc *s = &a->srv[id];

	if (!ASSERT_OK(kill(s->pid, sig), "signal the old server"))
		return false;
	if (sig == SIGTERM && !ASSERT_TRUE(pl_srv_expect(s, "udp", "bye", NULL, 0), "bye"))
		return false;
	pl_srv_wait(s, 5000);
	for (int i = 0; i < flows; i++)
		if (a->r.first[i] == id)
			a->r.first[i] = -1; /* learned again by whoever answers next */
	return true;
}

/*
 * Generation 1 serves FLOWS flows; then FLIPS times: generation k starts
 * (a new binary) while the live flows send, attach registers it (k-th
 * "registered udp4" line), FLOWS new flows start, 3 rounds of every flow
 * with both processes (the grace), generation k-1 stops (SIGTERM), 2
 * rounds. Returns the datagrams answered by another process than the one
 * that took the flow while it lived, or -1.
 */
static long flips_run(struct au *a)
{
	int flows = FLOWS;

	if (!ASSERT_TRUE(au_start(a, 1, NULL), "generation 1 ready") ||
	    (a->attach && !au_attach(a, 1)) ||
	    !ASSERT_OK(ur_start(&a->r, a->family, false, SOCKMIG_UDP_MODE_DEFAULT, 0), "clients") ||
	    !ASSERT_OK(ur_enough_fds(UR_FDS_NEEDED(NGEN * FLOWS)), "fds") ||
	    !au_rounds(a, flows, 3, "round of generation 1") ||
	    !ASSERT_EQ(au_first_by(a, 0, flows, 1), flows, "generation 1 took every flow"))
		return -1;
	for (int id = 2; id <= NGEN; id++) {
		if (!ASSERT_TRUE(au_start(a, id, NULL), "the next generation ready") ||
		    !au_rounds(a, flows, 2, "round while it registers") ||
		    (a->attach && !ASSERT_TRUE(ar_wait_log_lines(&a->e, "attach.log",
								 "registered udp", id, 5000),
					       "attach registered it")))
			return -1;
		if (!au_rounds(a, flows + FLOWS, 3, "round of the grace"))
			return -1;
		printf("generation %d: %d of %d new flows answered first by it; %ld misrouted "
		       "so far\n",
		       id, au_first_by(a, flows, flows + FLOWS, id), FLOWS, a->r.misrouted);
		if (a->attach && !ASSERT_EQ(au_first_by(a, flows, flows + FLOWS, id), FLOWS,
					    "every new flow to the newest generation"))
			return -1;
		flows += FLOWS;
		if (!au_stop(a, id - 1, SIGTERM, flows) ||
		    !au_rounds(a, flows, 2, "round after the old one stopped"))
			return -1;
		if (!ASSERT_EQ(au_first_by(a, 0, flows, id), flows,
			       "every flow answered by the newest after the stop"))
			return -1;
	}
	return a->r.misrouted;
}

static int flips_case(bool attach, int family)
{
	struct au a;
	long misrouted;
	int ret = SM_FAIL;

	au_init(&a, attach, family);
	if (!it_setup(&a.e, attach ? I_ATTACH : I_NONE))
		return SKIP("no .output/sockmig: run from the repository root");
	misrouted = flips_run(&a);
	printf("%s: %ld datagrams sent, %ld answered, %ld by a process that did not own the "
	       "flow\n",
	       attach ? "attach" : "baseline", a.r.sent, a.r.answered, misrouted);
	if (misrouted < 0 || !ASSERT_EQ(ur_unexplained_lost(&a.r), 0, "unanswered datagrams"))
		goto out;
	if (attach ? !ASSERT_EQ(misrouted, 0, "answered by a process that did not own the flow")
		   : !ASSERT_GT(misrouted, 0, "without attach, old flows go to the new process"))
		goto out;
	if (attach && !ASSERT_EQ(it_log_count(&a.e, "attach.log", "Error"), 0, "attach's errors"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS && attach)
		it_show_log(&a.e, "attach.log");
	au_cleanup(&a);
	return ret;
}

/* Under attach's daemon, 0 datagrams of a flow answered by a process that
 * did not take it, over 3 flips (800 flows), every new flow of a flip to
 * the new process, every datagram answered. */
SM_TEST(attach_udp_flips_keep_flows)
{
	return flips_case(true, AF_INET);
}

SM_TEST(attach_udp_flips_keep_flows_ipv6)
{
	return flips_case(true, AF_INET6);
}

/* The baseline: the same flips with plain SO_REUSEPORT misroute. */
SM_TEST(attach_udp_flips_baseline_misroutes)
{
	return flips_case(false, AF_INET);
}

/* ---- the old process goes ------------------------------------------------- */

/* A copy of server @s's UDP socket on the port, as a daemon that kept one
 * would hold: -1 when it cannot be taken. */
static int copy_socket(const struct tp_proc *s)
{
	int pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0), fd = -1;

	for (int i = 3; pidfd >= 0 && i < 64 && fd < 0; i++) {
		struct sockaddr_in6 a; /* the port where a sockaddr_in has it too */
		socklen_t len = sizeof(a);
		int type = 0;
		socklen_t tl = sizeof(type);

		fd = (int)syscall(SYS_pidfd_getfd, pidfd, i, 0);
		if (fd >= 0 &&
		    (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_DGRAM ||
		     getsockname(fd, (struct sockaddr *)&a, &len) < 0 ||
		     a.sin6_port != htons(UR_PORT))) {
			close(fd);
			fd = -1;
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	return fd;
}

/*
 * Generations 1 and 2 under attach, FLOWS old flows on 1 and FLOWS new on
 * 2; generation 1 stops by @sig; at once, 2 rounds of every flow: each is
 * answered, by generation 2. @keep: the baseline, a copy of generation 1's
 * socket held by the test (what attach would hold, were it to keep its
 * copy): its flows' datagrams go to a socket nobody reads, 1 round.
 */
static int gone_case(int sig, bool keep)
{
	struct sockmig_udp_member_info info[4];
	struct sockmig_udp_group *g;
	int copy = -1, ret = SM_FAIL, n;
	struct au a;

	au_init(&a, true, AF_INET);
	if (!it_setup(&a.e, I_ATTACH))
		return SKIP("no .output/sockmig: run from the repository root");
	if (!ASSERT_TRUE(au_start(&a, 1, NULL), "generation 1 ready") || !au_attach(&a, 1) ||
	    !ASSERT_OK(ur_start(&a.r, a.family, false, SOCKMIG_UDP_MODE_DEFAULT, 0), "clients") ||
	    !ASSERT_OK(ur_enough_fds(UR_FDS_NEEDED(2 * FLOWS)), "fds") ||
	    !au_rounds(&a, FLOWS, 2, "round of generation 1") ||
	    !ASSERT_TRUE(au_start(&a, 2, NULL), "generation 2 ready") ||
	    !ASSERT_TRUE(ar_wait_log_lines(&a.e, "attach.log", "registered udp", 2, 5000),
			 "attach registered generation 2") ||
	    !au_rounds(&a, 2 * FLOWS, 2, "round of both") ||
	    !ASSERT_EQ(au_first_by(&a, 0, FLOWS, 1), FLOWS, "old flows on generation 1") ||
	    !ASSERT_EQ(au_first_by(&a, FLOWS, 2 * FLOWS, 2), FLOWS, "new flows on generation 2") ||
	    !ASSERT_EQ(a.r.misrouted, 0, "misrouted while both live"))
		goto out;
	if (keep &&
	    !ASSERT_TRUE((copy = copy_socket(&a.srv[1])) >= 0, "copy generation 1's socket"))
		goto out;
	if (!au_stop(&a, 1, sig, 2 * FLOWS) ||
	    !au_rounds(&a, 2 * FLOWS, keep ? 1 : 2, "round after generation 1 went"))
		goto out;
	printf("after generation 1 went (%s): %ld sent, %ld answered, %ld unanswered\n",
	       sig == SIGKILL ? "SIGKILL" : "SIGTERM", a.r.sent, a.r.answered, a.r.lost);
	if (keep) {
		/* exactly its flows, each round: nothing else explains them */
		if (!ASSERT_EQ(a.r.lost, FLOWS, "its flows' datagrams to the kept socket"))
			goto out;
		ret = SM_PASS;
		goto out;
	}
	if (!ASSERT_EQ(a.r.lost, 0, "unanswered datagrams") ||
	    !ASSERT_EQ(au_first_by(&a, 0, 2 * FLOWS, 2), 2 * FLOWS, "every flow on generation 2"))
		goto out;
	g = au_group(AF_INET);
	n = g ? sockmig_udp_members(g, info, 4) : -1;
	sockmig_udp_group_close(g);
	if (!ASSERT_EQ(n, 1, "live members: generation 2's socket") ||
	    !ASSERT_EQ((int)info[0].pid, a.srv[2].pid, "its pid") ||
	    !ASSERT_EQ(it_log_count(&a.e, "attach.log", "Error"), 0, "attach's errors"))
		goto out;
	/* a clean stop leaves it registered, and says so; its flows stay */
	if (!ar_stop_daemon(&a.e) ||
	    !ASSERT_EQ(it_log_count(&a.e, "attach.log", "stopped: 1 UDP socket stays registered"),
		       1, "the stop's line") ||
	    !ASSERT_EQ(it_log_count(&a.e, "attach.log", "stopped: "), 1, "and no other") ||
	    !au_rounds(&a, 2 * FLOWS, 1, "round after attach stopped") ||
	    !ASSERT_EQ(a.r.lost, 0, "unanswered datagrams") ||
	    !ASSERT_EQ(au_first_by(&a, 0, 2 * FLOWS, 2), 2 * FLOWS, "every flow on generation 2"))
		goto out;
	ret = SM_PASS;
out:
	if (copy >= 0)
		close(copy);
	if (ret != SM_PASS)
		it_show_log(&a.e, "attach.log");
	au_cleanup(&a);
	return ret;
}

/* The old process exits (SIGTERM): every datagram is answered after. */
SM_TEST(attach_udp_old_exits_nothing_lost)
{
	return gone_case(SIGTERM, false);
}

/* The old process is killed (SIGKILL): the same. */
SM_TEST(attach_udp_old_killed_nothing_lost)
{
	return gone_case(SIGKILL, false);
}

/* The baseline: a copy of the old process's socket kept elsewhere (as a
 * copy kept by attach would): every datagram of its flows is lost. */
SM_TEST(attach_udp_kept_copy_blackholes_baseline)
{
	return gone_case(SIGKILL, true);
}

/* ---- what attach says ------------------------------------------------------ */

/* `sockmig ARGS` to @log: its exit code (-1: it did not exit in 10 s). */
static int au_run(struct au *a, const char *log, char *const args[])
{
	pid_t pid = ar_spawn(&a->e, log, args);
	int st = pid > 0 ? ar_wait_status(pid, 10000) : -1;

	it_show_log(&a->e, log);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* @log holds one line, an Error line with @what. */
static bool au_one_error(struct au *a, const char *log, const char *what)
{
	return ASSERT_EQ(it_log_count(&a->e, log, "Error: "), 1, "one error line") &&
	       ASSERT_EQ(it_log_count(&a->e, log, what), 1, "it says why") &&
	       ASSERT_EQ(it_log_count(&a->e, log, ""), 1, "nothing else");
}

/* A UDP socket of this process on the port with SO_REUSEPORT, connected
 * to the discard port when @peer: its fd, or -1. */
static int au_socket(bool peer)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(UR_PORT)};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	a.sin_port = htons(9);
	if (peer && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * A server whose UDP socket lacks SO_REUSEPORT (--pid, --once; then the
 * daemon by --port): exit 1, one line naming the socket and the reason,
 * no group made. A connected UDP socket (--proto udp): passed over, said
 * in the one line. With an unconnected one beside it: that one alone is
 * registered, silently for the other. Bad values: exit 2, one line.
 */
SM_TEST(attach_udp_says_why_not_registered)
{
	struct sockmig_udp_member_info info[4];
	char pidarg[16], portarg[16], want[160];
	char *once[] = {"attach", "--pid", pidarg, "--once", NULL};
	char *daemon[] = {"attach", "--port", portarg, "--foreground", NULL};
	char *udp[] = {"attach",  "--pid", pidarg,   "--port", portarg,
		       "--proto", "udp",   "--once", NULL};
	char *mixed[] = {"attach", "--pid", pidarg, "--port", portarg, "--once", NULL};
	char *badp[] = {"attach", "--port", portarg, "--proto", "udpx", NULL};
	char *badm[] = {"attach", "--port", portarg, "--udp-mode", "quic-lb", NULL};
	int conn = -1, open_fd = -1, ret = SM_FAIL, n;
	struct sockmig_udp_group *g = NULL;
	struct au a;

	au_init(&a, true, AF_INET);
	if (!it_setup(&a.e, I_ATTACH))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(portarg, sizeof(portarg), "%d", UR_PORT);
	if (!ASSERT_TRUE(au_start(&a, 1, " -R"), "a server without SO_REUSEPORT"))
		goto out;
	snprintf(pidarg, sizeof(pidarg), "%d", (int)a.srv[1].pid);
	snprintf(want, sizeof(want), "of pid %d does not set SO_REUSEPORT", (int)a.srv[1].pid);
	if (!ASSERT_EQ(au_run(&a, "once.log", once), 1, "exit 1") ||
	    !au_one_error(&a, "once.log", want) ||
	    !ASSERT_EQ(au_run(&a, "daemon.log", daemon), 1, "the daemon: exit 1") ||
	    !au_one_error(&a, "daemon.log", want) ||
	    !ASSERT_EQ(au_groups(), 0, "no UDP group made"))
		goto out;
	tp_proc_kill(&a.srv[1]);

	/* a connected socket alone: nothing to register */
	snprintf(pidarg, sizeof(pidarg), "%d", (int)getpid());
	conn = au_socket(true);
	if (!ASSERT_TRUE(conn >= 0, "a connected UDP socket") ||
	    !ASSERT_EQ(au_run(&a, "conn.log", udp), 1, "exit 1") ||
	    !au_one_error(&a, "conn.log", "1 connected UDP socket passed over") ||
	    !ASSERT_EQ(au_groups(), 0, "no UDP group made"))
		goto out;
	/* and an unconnected one: registered, the connected one left alone */
	open_fd = au_socket(false);
	if (!ASSERT_TRUE(open_fd >= 0, "an unconnected UDP socket") ||
	    !ASSERT_EQ(au_run(&a, "mixed.log", mixed), 0, "exit 0") ||
	    !ASSERT_EQ(it_log_count(&a.e, "mixed.log", "registered udp4"), 1, "one registered") ||
	    !ASSERT_EQ(it_log_count(&a.e, "mixed.log", ""), 1, "nothing else said"))
		goto out;
	g = au_group(AF_INET);
	n = g ? sockmig_udp_members(g, info, 4) : -1;
	if (!ASSERT_EQ(n, 1, "one member") ||
	    !ASSERT_EQ(info[0].cookie, sockmig_cookie(open_fd), "the unconnected socket"))
		goto out;
	if (!ASSERT_EQ(au_run(&a, "badp.log", badp), 2, "--proto udpx: exit 2") ||
	    !au_one_error(&a, "badp.log", "--proto: 'udpx' is not tcp, udp or all") ||
	    !ASSERT_EQ(au_run(&a, "badm.log", badm), 2, "--udp-mode quic-lb: exit 2") ||
	    !au_one_error(&a, "badm.log", "--udp-mode: 'quic-lb' is not flow or none"))
		goto out;
	ret = SM_PASS;
out:
	sockmig_udp_group_close(g);
	if (conn >= 0)
		close(conn);
	if (open_fd >= 0)
		close(open_fd);
	au_cleanup(&a);
	return ret;
}

/* The members of the port's group: their count, generations into @gen. */
static int au_member_gens(enum sockmig_udp_mode *mode, uint32_t *gen, int max, bool destroy)
{
	struct sockmig_udp_member_info info[4];
	struct sockmig_udp_group *g = au_group(AF_INET);
	int n = g ? sockmig_udp_members(g, info, 4) : -1;

	*mode = g ? sockmig_udp_group_mode(g) : SOCKMIG_UDP_MODE_DEFAULT;
	for (int i = 0; i < n && i < max && i < 4; i++)
		gen[i] = info[i].generation;
	printf("group: mode %s, %d members\n", sockmig_udp_mode_str(*mode), n);
	if (g && destroy)
		sockmig_udp_group_destroy(g);
	sockmig_udp_group_close(g);
	return n;
}

/*
 * Two deployments (binaries installed a second apart). By default (--once):
 * a flow group, two generations. Two others, in a new group, with
 * --udp-mode none --generation-by none: a stateless group, one generation
 * (0) for both, so that both take new flows. A group of another mode than
 * --udp-mode asks: exit 1, one line.
 */
SM_TEST(attach_udp_mode_and_generation_options)
{
	char portarg[16];
	char *plain[] = {"attach", "--port", portarg, "--once", NULL};
	char *none[] = {"attach", "--port",	     portarg, "--once", "--udp-mode",
			"none",	  "--generation-by", "none",  NULL};
	char *flow[] = {"attach", "--port", portarg, "--once", "--udp-mode", "flow", NULL};
	enum sockmig_udp_mode mode;
	int ret = SM_FAIL;
	uint32_t gen[2];
	struct au a;

	au_init(&a, true, AF_INET);
	if (!it_setup(&a.e, I_ATTACH))
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(portarg, sizeof(portarg), "%d", UR_PORT);
	if (!ASSERT_TRUE(au_start(&a, 1, NULL) && au_start(&a, 2, NULL), "two deployments") ||
	    !ASSERT_EQ(au_run(&a, "plain.log", plain), 0, "exit 0") ||
	    !ASSERT_EQ(au_member_gens(&mode, gen, 2, true), 2, "two members") ||
	    !ASSERT_EQ(mode, SOCKMIG_UDP_MODE_FLOW, "mode flow by default") ||
	    !ASSERT_TRUE(gen[0] != gen[1], "two generations"))
		goto out;
	/* a socket leaves a group's socket array only when it closes */
	tp_proc_kill(&a.srv[1]);
	tp_proc_kill(&a.srv[2]);
	if (!ASSERT_TRUE(au_start(&a, 3, NULL) && au_start(&a, 4, NULL), "two more") ||
	    !ASSERT_EQ(au_run(&a, "none.log", none), 0, "exit 0") ||
	    !ASSERT_EQ(au_member_gens(&mode, gen, 2, false), 2, "two members") ||
	    !ASSERT_EQ(mode, SOCKMIG_UDP_MODE_NONE, "--udp-mode none") ||
	    !ASSERT_TRUE(gen[0] == 0 && gen[1] == 0, "--generation-by none: generation 0"))
		goto out;
	/* a group of mode none, kept: --udp-mode flow cannot register in it */
	if (!ASSERT_EQ(au_run(&a, "none2.log", none), 0, "exit 0") ||
	    !ASSERT_EQ(au_run(&a, "flow.log", flow), 1, "another mode: exit 1") ||
	    !ASSERT_EQ(it_log_count(&a.e, "flow.log", "Error: "), 1, "one error line") ||
	    !ASSERT_EQ(it_log_count(&a.e, "flow.log", ""), 1, "nothing else"))
		goto out;
	ret = SM_PASS;
out:
	au_cleanup(&a);
	return ret;
}
