// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig run: a supervisor for one server (or N identical workers) that
 * listens with SO_REUSEPORT on --port.
 *
 *   start: the holder, then generation 1; sd_notify READY=1 once it listens.
 *   death: a worker that dies is started again (backoff 100 ms, doubling
 *          to 5 s); the holder takes its queue and new SYNs meanwhile.
 *   SIGHUP (or `sockmig reload`): start generation N+1; when it is ready
 *          (its listener joined the group, or READY=1 on the NOTIFY_SOCKET
 *          it is given), the older generation is marked draining (no new
 *          SYN), sent SIGTERM, and SIGKILL after --grace; its queue
 *          migrates to N+1. If N+1 exits or is not ready within
 *          --ready-timeout, it is killed and N keeps serving (rollback).
 *          At most --max-old generations may be stopping: a reload waits
 *          for one to go. --stop-start stops N first and starts N+1 after
 *          (the holder covers the gap), for servers that cannot overlap.
 *   SIGTERM/SIGINT: stop every generation, then the holder.
 * Without native migration (a 4.19-5.13 kernel, no BPF, no privilege, or
 * SOCKMIG_MODE=legacy), or with --handoff, there is no holder and no BPF:
 * run owns the listener and hands it to every generation, as fd 3
 * (LISTEN_FDS) and, for servers that bind the port themselves, through the
 * preload shim, which answers their bind() with it. It never closes.
 * One report line per reload. The supervisor is the main process for
 * systemd (Type=notify or notify-reload; MAINPID stays its pid).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "run.h"
#include "sockmig.h"

static void run_usage(FILE *f)
{
	fprintf(f,
		"Usage: sockmig run --port P [OPTIONS] -- COMMAND [ARGS...]\n"
		"Supervise a server that listens on port P: restarts, crashes and reloads\n"
		"(SIGHUP, or sockmig reload --port P) without a dropped connection.\n"
		"  -P, --port P              the port the server listens on (required)\n"
		"  -a, --addr A              the server's address; the holder opens there first\n"
		"  -u, --user U              the server's user when not run's (the holder's uid)\n"
		"  -w, --workers N           N identical processes of COMMAND (1-64, default 1)\n"
		"  -s, --stop-start          stop the old generation before the new one starts\n"
		"  -g, --grace SECS          SIGKILL an old generation after SECS (0-3600,\n"
		"                            default 10)\n"
		"  -t, --ready-timeout SECS  a new generation not ready by then is killed\n"
		"                            (1-3600, default 10)\n"
		"  -m, --max-old N           old generations stopping at once (1-14, default 1)\n"
		"  -S, --stop-signal SIG     TERM (default), QUIT, INT, USR1, USR2 or WINCH\n"
		"  -n, --no-holder           no holder listener (crashes then refuse connections)\n"
		"  -A, --socket-activation   run owns the listener, given as fd 3 (LISTEN_FDS)\n"
		"  -H, --handoff             the same; the shim hands it to the server's bind()\n"
		"  -R, --ready-after MS      without READY=1, ready after MS (0-600000, default\n"
		"                            500; fd 3 modes)\n"
		"      --proto P             tcp (default), udp or all: udp runs the server under\n"
		"                            the shim, its UDP sockets in their port's UDP group;\n"
		"                            the holder and the hand-off are TCP only\n"
		"  -h, --help                this help\n");
}

/* libsockmig-preload.so: $SOCKMIG_PRELOAD, else beside this binary, else
 * in ../lib from it, else in SOCKMIG_PRELOADDIR. false when none exists. */
bool run_find_preload(char *out, size_t size)
{
	const char *env = getenv("SOCKMIG_PRELOAD");
	char exe[400], *slash;
	ssize_t n;

	if (env && *env) {
		snprintf(out, size, "%s", env);
		return access(out, R_OK) == 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return false;
	*slash = '\0';
	snprintf(out, size, "%s/libsockmig-preload.so", exe);
	if (access(out, R_OK) == 0)
		return true;
	snprintf(out, size, "%s/../lib/libsockmig-preload.so", exe);
	if (access(out, R_OK) == 0)
		return true;
	/* where make install put it (a distribution's multiarch directory) */
	snprintf(out, size, "%s/libsockmig-preload.so", SOCKMIG_PRELOADDIR);
	return access(out, R_OK) == 0;
}

/* Whether the kernel migrates under a policy here (cli.h). */
bool cli_native_migration(char *why, size_t size)
{
	const char *mode = getenv("SOCKMIG_MODE"), *missing;
	struct sockmig_probe p;
	int err;

	if (mode && strcmp(mode, "legacy") == 0) {
		snprintf(why, size, "SOCKMIG_MODE=legacy");
		return false;
	}
	err = sockmig_probe(&p);
	if (err) {
		snprintf(why, size, "the kernel could not be probed: %s", strerror(-err));
		return false;
	}
	missing = sockmig_missing_cap();
	if (p.mode == SOCKMIG_MODE_NATIVE && !missing)
		return true;
	if (p.mode == SOCKMIG_MODE_NATIVE)
		snprintf(why, size, "the policy program cannot be loaded without %s", missing);
	else
		snprintf(why, size, "%s", p.reason);
	return false;
}

/* --stop-signal NAME: its number, or 0 after one error line. */
static int stop_signal(const char *name)
{
	static const struct {
		const char *name;
		int sig;
	} sigs[] = {{"TERM", SIGTERM}, {"QUIT", SIGQUIT}, {"INT", SIGINT},
		    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"WINCH", SIGWINCH}};

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (strcmp(name, sigs[i].name) == 0)
			return sigs[i].sig;
	cli_error("--stop-signal: '%s' is not one of TERM, QUIT, INT, USR1, USR2, WINCH", name);
	return 0;
}

int do_run(int argc, char **argv)
{
	static struct runner r;
	const char *addr = NULL, *user = NULL, *sig = NULL, *proto = "tcp";
	struct pollfd pfd[2];
	sigset_t mask;
	uint64_t workers = 1, max_old = 1, grace = 10, ready = 10, ready_after = 500;
	bool no_holder = false, activation = false;
	int optend, sfd, err, ret = 1;
	pid_t owner;
	const struct cli_opt opts[] = {
		{"port", 'P', CLI_PORT, &r.port},
		{"addr", 'a', CLI_STR, &addr},
		{"user", 'u', CLI_STR, &user},
		{"workers", 'w', CLI_U64, &workers, 1, MAX_WORKERS},
		{"stop-start", 's', CLI_FLAG, &r.stop_start},
		{"grace", 'g', CLI_U64, &grace, 0, 3600},
		{"ready-timeout", 't', CLI_U64, &ready, 1, 3600},
		{"max-old", 'm', CLI_U64, &max_old, 1, MAX_GENS - 2},
		{"no-holder", 'n', CLI_FLAG, &no_holder},
		{"stop-signal", 'S', CLI_STR, &sig},
		{"socket-activation", 'A', CLI_FLAG, &activation},
		{"ready-after", 'R', CLI_U64, &ready_after, 0, 600000},
		{"handoff", 'H', CLI_FLAG, &r.handoff},
		{"proto", CLI_LONG_ONLY('p'), CLI_STR, &proto},
		{0},
	};

	memset(&r, 0, sizeof(r));
	optend = cli_parse("run", argc, argv, opts, CLI_OPERANDS_FIRST, run_usage);
	if (optend <= 0)
		return optend == 0 ? 0 : 2;
	r.workers = (int)workers;
	r.max_old = (int)max_old;
	r.grace_ms = grace * 1000;
	r.ready_ms = ready * 1000;
	r.backoff_ms = 100;
	r.stop_sig = sig ? stop_signal(sig) : SIGTERM;
	if (!r.stop_sig || run_proto_parse(&r, proto) < 0)
		return 2;
	r.use_holder = !no_holder && r.tcp; /* the holder is a TCP listener */
	if (!r.tcp && (activation || r.handoff || r.stop_start)) {
		/* each needs a TCP listener of run's, or the holder */
		cli_error("run: --proto udp: %s is TCP only",
			  activation  ? "--socket-activation"
			  : r.handoff ? "--handoff"
				      : "--stop-start (the holder)");
		return 2;
	}
	if (r.udp && activation) {
		cli_error("run: --proto all: --socket-activation would leave UDP uncovered (the "
			  "shim registers no UDP socket with it)");
		return 2;
	}
	/* --socket-activation or --handoff: the listener is opened below */
	r.listen_fd = activation || r.handoff ? 0 : -1;
	r.ready_after_ms = ready_after;
	if (!r.port) {
		cli_error("run: give --port P (the port the server listens on)");
		return 2;
	}
	if (optend >= argc) {
		cli_error("run: give the server's command after --");
		return 2;
	}
	if (r.stop_start && !r.use_holder && r.tcp) {
		cli_error("run: --stop-start needs the holder (drop --no-holder)");
		return 2;
	}
	r.cmd = argv + optend;
	if (holder_config(&r.h, addr, r.port, user) < 0)
		return 2;
	if (r.listen_fd < 0 && r.tcp) {
		char why[200];

		if (!cli_native_migration(why, sizeof(why))) {
			printf("sockmig run: no native migration (%s): handing the listener to "
			       "every generation (--handoff)\n",
			       why);
			fflush(stdout);
			r.listen_fd = 0;
			r.handoff = true;
			if (r.udp)
				printf("sockmig run: --proto all: TCP by the listener hand-off, "
				       "UDP by its group (no migration needed)\n");
		}
	}
	if ((r.handoff || r.udp) && !run_find_preload(r.preload, sizeof(r.preload))) {
		const char *what = r.handoff ? "--handoff" : "--proto udp|all";

		if (getenv("SOCKMIG_PRELOAD") && *getenv("SOCKMIG_PRELOAD"))
			cli_error("run: %s: SOCKMIG_PRELOAD=%s: %s", what, r.preload,
				  strerror(errno));
		else
			cli_error("run: %s needs libsockmig-preload.so (not beside sockmig, "
				  "nor in ../lib or %s; set SOCKMIG_PRELOAD)",
				  what, SOCKMIG_PRELOADDIR);
		return 1;
	}
	/* from here on, a signal waits for the loop (a reload aimed at the pid
	 * file must not kill a run that is still starting) */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	err = pidfile_acquire(&r.pf, "run", r.port, &owner);
	if (err == -EBUSY) {
		cli_error("sockmig run (pid %d) already supervises port %d", (int)owner, r.port);
		return 1;
	} else if (err || rundir_file(r.gens_path, sizeof(r.gens_path), "run-%d.gens", r.port)) {
		cli_error("run: cannot write its pid file %s: %s", r.pf.path, strerror(-err));
		pidfile_release(&r.pf);
		return 1;
	}
	r.sc.port = r.port;
	r.sc.gen = -1;
	r.sc.quiet = true;
	run_gens_adopt(&r);
	if (r.listen_fd == 0) {
		/* no BPF at all: the listener is ours and never closes, every
		 * generation inherits it (for servers that take LISTEN_FDS); a
		 * killed run's, when its processes still hold it */
		int one = 1;

		r.use_holder = false;
		r.listen_fd = run_adopt_listener(&r);
		if (r.listen_fd < 0 &&
		    ((r.listen_fd = socket(r.h.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) <
			     0 ||
		     setsockopt(r.listen_fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
		     bind(r.listen_fd, (struct sockaddr *)&r.h.addr, r.h.alen) < 0 ||
		     listen(r.listen_fd, 4096) < 0)) {
			cli_error("run: cannot listen on port %d: %s", r.port, strerror(errno));
			goto out_pidfile;
		}
	}
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	r.notify_fd = run_notify_open(&r);
	if (sfd < 0 || r.notify_fd < 0) {
		cli_error("run: cannot set up signals or the notify socket %s: %s", r.notify_name,
			  strerror(errno));
		goto out_notify;
	}
	/* with --addr the holder covers even the first start; without, it opens
	 * where the first server listener appears (a holder elsewhere would be
	 * in another group, and what waited on it could not move) */
	if (r.use_holder && !r.h.follow && holder_open(&r.h) < 0)
		goto out_notify;
	sockmig_netstat_read(&r.ns_mark); /* the reports count from here */
	run_udp_mark_now(&r);
	r.first_start = now_ms();
	run_start_generation(&r);
	pfd[0].fd = sfd;
	pfd[0].events = POLLIN;
	pfd[1].fd = r.notify_fd;
	pfd[1].events = POLLIN;
	for (;;) {
		struct signalfd_siginfo si;
		int status;
		pid_t pid;

		poll(pfd, 2, TICK_MS);
		if (pfd[1].revents)
			run_notify_read(&r);
		while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo == SIGHUP && !r.stopping) {
				r.reload_pending = true;
			} else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
				if (!r.stopping) {
					r.stopping = true;
					run_sd_notify("STOPPING=1");
					for (int i = 0; i < MAX_GENS; i++)
						if (r.g[i].state != G_FREE &&
						    r.g[i].state != G_STOPPING)
							run_stop_generation(&r, &r.g[i]);
				}
			}
		}
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			run_reaped(&r, pid, status);
		if (r.refused && !r.stopping) {
			/* said in one line: stop as after --ready-timeout */
			r.stopping = true;
			r.gave_up = true;
			for (int i = 0; i < MAX_GENS; i++)
				if (r.g[i].state != G_FREE && r.g[i].state != G_STOPPING &&
				    !r.g[i].adopted)
					run_stop_generation(&r, &r.g[i]);
		}
		if (r.gave_up && !r.stopping) {
			if (r.last_status >= 0)
				cli_error("run: %s was not ready within %llu s (%u attempts; the "
					  "last exited with status %d)",
					  r.cmd[0], r.ready_ms / 1000, r.attempts, r.last_status);
			else
				cli_error("run: %s was not ready within %llu s (it did not listen "
					  "on port %d)",
					  r.cmd[0], r.ready_ms / 1000, r.port);
			r.stopping = true;
			for (int i = 0; i < MAX_GENS; i++)
				if (r.g[i].state != G_FREE && r.g[i].state != G_STOPPING &&
				    !r.g[i].adopted)
					run_stop_generation(&r, &r.g[i]);
		}
		if (r.stopping && !run_busy(&r))
			break;
		run_tick(&r);
		if (r.gens_dirty)
			run_gens_save(&r);
	}
	run_report_flush(&r, true);
	if (r.use_holder && r.h.lh)
		holder_close(&r.h, false);
	if (run_busy_adopted(&r)) {
		/* a killed run's server still listens: its registration stays */
		printf("sockmig run: the killed run's processes keep serving port %d\n", r.port);
	} else {
		scanner_leave_all(&r.sc); /* nothing of ours stays pinned */
		run_udp_leave(&r);
	}
	run_udp_mark_free(&r);
	run_gens_save(&r);
	if (!r.gave_up)
		printf(r.failed_reloads ? "stopped: %u reloads, %u rolled back\n"
					: "stopped: %u reloads, none rolled back\n",
		       r.reloads, r.failed_reloads);
	ret = r.gave_up ? 1 : 0;
out_notify:
	if (r.notify_name[0])
		unlink(r.notify_name);
out_pidfile:
	pidfile_release(&r.pf);
	return ret;
}

/* sockmig reload --port P: SIGHUP to the supervisor of that port: the live
 * sockmig run that holds its pid file locked, never a pid a stale file names. */
static void reload_usage(FILE *f)
{
	fprintf(f, "Usage: sockmig reload --port P\n"
		   "Start the next generation of the sockmig run that supervises port P\n"
		   "(its SIGHUP).\n"
		   "  -P, --port P  the port of that sockmig run (required)\n"
		   "  -h, --help    this help\n");
}

int do_reload(int argc, char **argv)
{
	pid_t pid;
	int n, port = 0;
	const struct cli_opt opts[] = {
		{"port", 'P', CLI_PORT, &port},
		{0},
	};

	n = cli_parse("reload", argc, argv, opts, 0, reload_usage);
	if (n <= 0)
		return n == 0 ? 0 : 2;
	if (!port) {
		cli_error("reload: give --port P");
		return 2;
	}
	pid = pidfile_owner("run", port);
	if (!pid) {
		cli_error("no sockmig run supervises port %d", port);
		return 1;
	}
	if (kill(pid, SIGHUP) < 0) {
		cli_error("cannot signal %d: %s", (int)pid, strerror(errno));
		return 1;
	}
	return 0;
}
