// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig attach: protect a running, unmodified server (its options and
 * its daemon's loop; the scanner it runs is in scanner*.c, detach in
 * detach.c).
 *
 * attach finds the server's listeners through sock_diag, takes each one
 * from its process with pidfd_getfd() (the rights of ptrace), opens its
 * group, registers it (generation: by default the ctime of its owner's
 * executable, see --generation-by) and attaches the policy. With --once it
 * closes the copy it took; the daemon keeps it, so that the server's
 * close() ends nothing: it drains the listener once no owner holds it.
 * The daemon keeps the registration current: new listeners of the group
 * are registered as they appear, members that stopped listening are
 * forgotten a few seconds later (their half-open requests may still move).
 * It holds a lease on each group and renews it on every scan: should it
 * die or stop, new SYNs go by the kernel's hash once the lease runs out.
 * A clean stop (SIGTERM, SIGINT) unregisters every member it registered.
 *
 * UDP sockets (--proto udp or all, the default) are registered in their
 * port's UDP group; attach keeps no copy of them (scanner_udp.c says why)
 * and they stay registered at its stop: their flows stay with them.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attach.h"
#include "cli.h"
#include "pidfile.h"
#include "sockmig.h"

/* attach's start-up: scans again when nothing registered for a race */
#define START_RESCANS 3

static volatile sig_atomic_t stop_attach;

static void on_stop(int sig)
{
	(void)sig;
	stop_attach = 1;
}

/* SIGHUP (a stray `kill -HUP`, a reload aimed at another daemon): scan now. */
static void on_hup(int sig)
{
	(void)sig;
}

static void attach_usage(FILE *f)
{
	fprintf(f,
		"Usage: sockmig attach (--pid PID [--port P] | --port P) [options]\n"
		"  -p, --pid PID           the server process whose listeners to register\n"
		"  -P, --port P            the port whose listeners to register (every process)\n"
		"  -b, --generation-by M   generations by exe (default), tree, process or none\n"
		"  -g, --generation G      register every listener with generation G\n"
		"  -k, --keep-old          never drain older generations (as -b none)\n"
		"  -1, --once              register and exit: no daemon, no lease\n"
		"  -f, --foreground        stay in the foreground and log to stdout\n"
		"  -i, --interval MS       scan every MS ms (100); lease max(2 s, 10 x MS)\n"
		"  -r, --release-interval MS  check every MS ms (5) whether a server let go\n"
		"                          of a listener, and drain it then\n"
		"  -t, --proto P           tcp (listeners), udp (sockets that share their\n"
		"                          port) or all (default: both)\n"
		"  -m, --udp-mode M        a new UDP group's mode: flow (default) or none\n"
		"  --udp-idle-ms MS|never  a flow idle this long falls to the working generation\n"
		"                          (1-86400000; default: the group's, 30000 for a new "
		"one)\n"
		"  --udp-flow-max N        a new UDP group's flow table (1-16777216, 65536)\n"
		"  -h, --help              this help\n");
}

/* The lease of an attach daemon scanning every @interval ms: long enough
 * that a slow scan (a drain waits up to 1 s) never lets it run out, short
 * enough that listeners added after a crash wait a few seconds at most. */
static uint32_t lease_for(uint64_t interval)
{
	return interval * 10 > 2000 ? (uint32_t)(interval * 10) : 2000;
}

static bool parse_gen_by(const char *arg, enum gen_by *out)
{
	static const char *const names[] = {[GEN_BY_PROCESS] = "process",
					    [GEN_BY_EXE] = "exe",
					    [GEN_BY_TREE] = "tree",
					    [GEN_BY_NONE] = "none"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(arg, names[i]) == 0) {
			*out = (enum gen_by)i;
			return true;
		}
	cli_error("--generation-by: '%s' is not exe, tree, process or none", arg);
	return false;
}

/*
 * The first scan, its reasons kept for one line. When it registered nothing
 * and some owner let go of a listener between the scan and the take (a
 * server still starting: a listener closed, or replaced under the same fd),
 * it scans again once each such listener may be retried (the scanner's
 * backoff: 0.1, 0.2, 0.4 s), at most START_RESCANS times.
 */
static int first_scan(struct scanner *sc)
{
	int n;

	sc->collect = true;
	n = scanner_scan(sc);
	for (int t = 0; n >= 0 && scanner_count(sc) == 0 && sc->nrace && t < START_RESCANS; t++) {
		unsigned long long until = 0;
		struct timespec nap = {0, 10000000};

		for (int j = 0; j < sc->nskip; j++)
			if (sc->skip[j].retry_ms > until)
				until = sc->skip[j].retry_ms;
		while (now_ms() < until)
			nanosleep(&nap, NULL);
		cli_debug("nothing registered, %d listener%s let go since the scan: scan again",
			  sc->nrace, sc->nrace == 1 ? "" : "s");
		sc->nrace = 0;
		n = scanner_scan(sc);
	}
	sc->collect = false;
	/* some registered: the others' reasons, a line each (a UDP socket
	 * that does not share its port, under the default --proto, is none) */
	for (int i = 0; i < sc->nwhy && scanner_count(sc); i++) {
		if (sc->why[i].race)
			cli_debug("%s (it let go since the scan)", sc->why[i].text);
		else if (sc->why[i].soft)
			cli_debug("%s", sc->why[i].text);
		else
			cli_error("%s", sc->why[i].text);
	}
	return n;
}

/* --proto: false after one error line. */
static bool parse_proto(const char *arg, struct scanner *sc)
{
	if (strcmp(arg, "tcp") == 0) {
		sc->udp = false;
	} else if (strcmp(arg, "udp") == 0) {
		sc->udp = sc->no_tcp = sc->udp_said = true;
	} else if (strcmp(arg, "all") == 0) {
		sc->udp = sc->udp_said = true;
	} else {
		cli_error("--proto: '%s' is not tcp, udp or all", arg);
		return false;
	}
	return true;
}

/* --udp-mode: false after one error line. */
static bool parse_udp_mode(const char *arg, enum sockmig_udp_mode *mode)
{
	if (strcmp(arg, "flow") == 0)
		*mode = SOCKMIG_UDP_MODE_FLOW;
	else if (strcmp(arg, "none") == 0)
		*mode = SOCKMIG_UDP_MODE_NONE;
	else {
		cli_error("--udp-mode: '%s' is not flow or none (quic-lb needs a server that "
			  "mints its connection IDs with libsockmig)",
			  arg);
		return false;
	}
	return true;
}

/* What attach registers, for its error lines. */
static const char *what_of(const struct scanner *sc)
{
	return sc->no_tcp ? "UDP socket" : sc->udp ? "listener or UDP socket" : "listener";
}

/* Nothing registered: one error line, with what each listener tried said. */
static void say_none_registered(const struct scanner *sc, pid_t pid, int port)
{
	char fddir[64], why[SCANNER_WHY_MAX * (SCANNER_WHY_LEN + 2) + 64] = "";
	size_t len = 0;

	for (int i = 0; i < sc->nwhy && len < sizeof(why); i++)
		len += (size_t)snprintf(why + len, sizeof(why) - len, "%s%s", i ? "; " : ": ",
					sc->why[i].text);
	if (!sc->ntried && !pid)
		snprintf(why, sizeof(why), ": %s in this network namespace",
			 sc->no_tcp ? "no UDP socket is bound to it"
			 : sc->udp  ? "nothing listens on it and no UDP socket is bound to it"
				    : "nothing listens on it");
	snprintf(fddir, sizeof(fddir), "/proc/%d/fd", (int)pid);
	if (pid && access(fddir, R_OK) < 0 && errno == EACCES)
		cli_error("cannot see the sockets of pid %d: not permitted (sockmig needs "
			  "the rights of ptrace over it: CAP_DAC_READ_SEARCH and "
			  "CAP_SYS_PTRACE, or its owner)",
			  (int)pid);
	else if (pid)
		cli_error("pid %d has no SO_REUSEPORT %s%s that sockmig could register%s", (int)pid,
			  what_of(sc), port ? " on that port" : "", why);
	else
		cli_error("port %d has no %s that sockmig could register%s", port, what_of(sc),
			  why);
}

int do_attach(int argc, char **argv)
{
	uint64_t genv = UINT64_MAX, interval = 100, release_ms = 5, idle_ms = 0, flow_max = 0;
	int64_t gen = -1;
	pid_t pid = 0;
	int port = 0, n, left, udp_left, tcp_had;
	bool once = false, fg = false, keep_old = false;
	const char *by_arg = NULL, *proto_arg = NULL, *mode_arg = NULL, *idle_arg = NULL;
	const struct cli_opt opts[] = {
		{"pid", 'p', CLI_PID, &pid},
		{"port", 'P', CLI_PORT, &port},
		{"generation", 'g', CLI_U64, &genv, 0, UINT32_MAX},
		{"once", '1', CLI_FLAG, &once},
		{"keep-old", 'k', CLI_FLAG, &keep_old},
		{"generation-by", 'b', CLI_STR, &by_arg},
		{"foreground", 'f', CLI_FLAG, &fg},
		{"interval", 'i', CLI_U64, &interval, 10, 60000},
		{"release-interval", 'r', CLI_U64, &release_ms, 1, 60000},
		{"proto", 't', CLI_STR, &proto_arg},
		{"udp-mode", 'm', CLI_STR, &mode_arg},
		{"udp-idle-ms", CLI_LONG_ONLY('I'), CLI_STR, &idle_arg},
		{"udp-flow-max", CLI_LONG_ONLY('F'), CLI_U64, &flow_max, 1, 1u << 24},
		{0},
	};
	enum gen_by by = GEN_BY_EXE;
	static struct scanner sc;
	struct sigaction sa = {.sa_handler = on_stop}, hup = {.sa_handler = on_hup};
	struct pidfile pf = {.fd = -1};

	n = cli_parse("attach", argc, argv, opts, 0, attach_usage);
	if (n <= 0)
		return n == 0 ? 0 : 2;
	if (by_arg && !parse_gen_by(by_arg, &by))
		return 2;
	/* UDP too unless --proto tcp: a TCP server has no UDP socket that
	 * shares its port, and one that does (HTTP/3, DNS) wants both */
	sc.udp = true;
	sc.udp_mode = SOCKMIG_UDP_MODE_DEFAULT;
	if (proto_arg && !parse_proto(proto_arg, &sc))
		return 2;
	if (mode_arg && !parse_udp_mode(mode_arg, &sc.udp_mode))
		return 2;
	/* "never": flows expire by the table's LRU alone */
	if (idle_arg && strcmp(idle_arg, "never") == 0)
		idle_ms = SOCKMIG_UDP_NO_EXPIRY;
	else if (idle_arg && !parse_u64("--udp-idle-ms", idle_arg, 1, 86400000, &idle_ms))
		return 2;
	if ((mode_arg || idle_ms || flow_max) && !sc.udp) {
		cli_error("attach: --%s is for UDP sockets, not with --proto tcp",
			  mode_arg  ? "udp-mode"
			  : idle_ms ? "udp-idle-ms"
				    : "udp-flow-max");
		return 2;
	}
	sc.udp_idle_ms = (uint32_t)idle_ms;
	sc.udp_flow_max = (uint32_t)flow_max;
	/* the UDP groups' SOCKMIG_UDP_GEN_NEWEST: every add would fail */
	if (genv == UINT32_MAX && sc.udp) {
		cli_error("attach: --generation %u is reserved for UDP groups: at most %u, or "
			  "--proto tcp",
			  UINT32_MAX, UINT32_MAX - 1);
		return 2;
	}
	if (genv != UINT64_MAX)
		gen = (int64_t)genv;
	if (!pid && !port) {
		cli_error("attach: give --pid PID, --port P or both");
		return 2;
	}
	if (keep_old && by_arg && by != GEN_BY_NONE) {
		cli_error("attach: --keep-old is --generation-by none, not with --generation-by %s",
			  by == GEN_BY_EXE    ? "exe"
			  : by == GEN_BY_TREE ? "tree"
					      : "process");
		return 2;
	}
	if (keep_old)
		by = GEN_BY_NONE;
	if (pid && !cli_pid_exists(pid))
		return 1;
	sc.port = port;
	sc.pid = pid;
	sc.gen = gen;
	sc.gen_by = by;
	/* the daemon keeps a reference to each listener (not --once: nobody
	 * would be left to drain it), and a lease on each group: nobody would
	 * renew one of --once */
	sc.hold_refs = !once;
	sc.lease_ms = once ? 0 : lease_for(interval);
	/* the pid file first: a second daemon of the port registers nothing,
	 * and in the foreground the file names this process before its first
	 * "registered" line */
	if (port && !once) {
		pid_t owner;
		int err = pidfile_acquire(&pf, "attach", port, &owner);

		if (err == -EBUSY) {
			cli_error("sockmig attach (pid %d) already watches port %d", (int)owner,
				  port);
			return 1;
		} else if (err) {
			cli_error("attach: cannot write its pid file %s: %s", pf.path,
				  strerror(-err));
			return 1;
		}
		if (fg)
			pidfile_write(&pf);
	}
	n = first_scan(&sc);
	if (n < 0) {
		if (sc.udp_list_failed)
			cli_error("cannot list UDP sockets: %s%s", strerror(-n),
				  n == -ENOENT ? " (no UDP sock_diag: the udp_diag module)" : "");
		else
			cli_error("cannot list listening sockets: %s", strerror(-n));
		/* what the TCP part of the scan registered is not left behind */
		scanner_stop(&sc);
		pidfile_release(&pf);
		return 1;
	}
	if (scanner_count(&sc) == 0) {
		say_none_registered(&sc, pid, port);
		scanner_stop(&sc);
		pidfile_release(&pf);
		return 1;
	}
	if (once)
		return 0;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &hup, NULL);
	if (!fg && daemon(0, 0) < 0) {
		cli_error("cannot become a daemon: %s", strerror(errno));
		pidfile_release(&pf);
		return 1;
	}
	if (port && !fg)
		pidfile_write(&pf);
	sc.quiet = !fg;
	while (!stop_attach) {
		unsigned long long next = now_ms() + interval;

		/* the release check every release_ms (a server's close is
		 * drained within it), the full scan every interval */
		for (unsigned long long t = now_ms(); t < next && !stop_attach; t = now_ms()) {
			uint64_t nap = next - t < release_ms ? next - t : release_ms;
			struct timespec ts = {.tv_sec = (time_t)(nap / 1000),
					      .tv_nsec = (long)(nap % 1000) * 1000000L};

			nanosleep(&ts, NULL);
			if (!stop_attach && nap == release_ms)
				scanner_release(&sc);
		}
		if (!stop_attach)
			scanner_scan(&sc);
	}
	/* nobody keeps the registration current any more: unregister it all,
	 * so that the policy leaves new SYNs to the kernel's hash over every
	 * listener rather than to a set that no longer changes */
	udp_left = sc.udp ? scanner_udp_live(&sc) : 0;
	tcp_had = sc.nk;
	left = scanner_stop(&sc);
	if (tcp_had || !udp_left)
		printf("stopped: %d member%s unregistered; the policy stays attached and leaves "
		       "new connections to the kernel's hash (sockmig detach --port P removes "
		       "it)\n",
		       left, left == 1 ? "" : "s");
	if (udp_left)
		printf("stopped: %d UDP socket%s stay%s registered (each keeps its flows until "
		       "it closes; a later server's sockets take new flows once these have "
		       "closed)\n",
		       udp_left, udp_left == 1 ? "" : "s", udp_left == 1 ? "s" : "");
	fflush(stdout);
	pidfile_release(&pf);
	return 0;
}
