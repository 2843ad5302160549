// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Test runner: each case in a forked child, in a private network
 * namespace with lo up, output captured and shown only on failure,
 * killed after its time limit. Usage: test_sockmig [-v] [-t SECS] [FILTER...]
 * runs the cases whose name contains one of the FILTERs (all without; a
 * FILTER ending in '$' must end the name);
 * test_sockmig -l [FILTER...] lists them, -p keeps only the pure ones. A
 * pure case (SM_PURE) runs without a namespace, and is all a user other
 * than root may run: make check T=-p.
 *
 * The runner is a child subreaper and runs one case at a time: whatever a
 * case started, in any process group or session, double-forked or not,
 * comes back to the runner when its parent dies, and is killed and reaped
 * when the case ends, however it ends (-K keeps them: the old way, the
 * baseline of the runner's own tests).
 */
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "burst.h"
#include "harness.h"
#include "proc.h"
#include "sockmig.h"

#define SM_CASE(name, pure, limit) int test_##name(void);
#include "cases.inc"
#undef SM_CASE

static const struct {
	const char *name;
	int (*fn)(void);
	bool pure; /* SM_PURE: no root, no network namespace */
	int limit; /* SM_LONG: seconds, when longer than the default */
} cases[] = {
#define SM_CASE(name, pure, limit) {#name, test_##name, pure, limit},
#include "cases.inc"
#undef SM_CASE
};

static volatile sig_atomic_t timed_out;

/* How long the sweep after a case may take: SIGKILL is quick, unless a
 * task is stuck in the kernel. */
#define REAP_MS 5000

/* Print the last "SKIP: " line of a case's output @fd, indented. */
static void skip_reason(int fd)
{
	FILE *f = fdopen(dup(fd), "r");
	char *line = NULL, *last = NULL;
	size_t cap = 0;

	if (!f)
		return;
	rewind(f);
	while (getline(&line, &cap, f) > 0)
		if (strncmp(line, "SKIP: ", 6) == 0) {
			free(last);
			last = strdup(line);
		}
	if (last)
		printf("  %s", last);
	free(last);
	free(line);
	fclose(f);
}

/* The network namespace each case ran in: a group pinned for one of them
 * that is still there at the end was left by this run, whether or not the
 * namespace is still alive (a process that escaped the case keeps it). */
static struct {
	unsigned long ino;
	int i;
} our_ns[4096];
static int n_our_ns;

static void on_alarm(int sig)
{
	(void)sig;
	timed_out = 1;
}

/*
 * The cases listen on fixed ports from 10000 to 40999, and the kernel's
 * default ephemeral range starts at 32768: a client's connect() to a port
 * nobody listens on at that instant (a server starting, a baseline's
 * reload) may then be given that very port and connect to itself, on
 * loopback. It reads its own request back (a "reply"), and holds the port
 * so the server's bind() fails with EADDRINUSE. In each case's namespace
 * the ephemeral range starts above every test port.
 */
static bool ephemeral_ports_apart(void)
{
	return burst_sysctl("net/ipv4/ip_local_port_range", "41000 60999") == 0;
}

/*
 * Wait for the case @pid to end, without reaping it (its pid must stay
 * its own while its group is killed), reaping on the way the orphans of
 * the case that end before it does, as init would have. Kills it once
 * SIGALRM said @limit s passed.
 */
static void wait_case(pid_t pid, int limit)
{
	bool killed = false;
	siginfo_t si;

	for (;;) {
		if (timed_out && !killed) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			printf("  (killed after %d s)\n", limit);
			killed = true;
		}
		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WNOWAIT) < 0) {
			if (errno != EINTR)
				return;
			continue;
		}
		if (si.si_pid == pid)
			return;
		waitpid(si.si_pid, NULL, 0);
	}
}

static int run_case(int i, int limit, bool verbose, bool reap, double *secs, int *left_out)
{
	struct timespec t0, t1;
	unsigned long ino;
	struct stat st;
	int out, status = 0, rc, nsp[2], left, stuck;
	pid_t pid;
	char buf[4096];
	ssize_t n;

	out = memfd_create("sockmig-test", MFD_CLOEXEC);
	if (out < 0)
		return SM_FAIL;
	if (pipe2(nsp, O_CLOEXEC | O_NONBLOCK) < 0) {
		close(out);
		return SM_FAIL;
	}
	if (cases[i].limit > limit)
		limit = cases[i].limit;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		/* a process group of its own: whatever the case starts goes with it */
		setpgid(0, 0);
		if (!verbose) {
			dup2(out, STDOUT_FILENO);
			dup2(out, STDERR_FILENO);
		}
		setvbuf(stdout, NULL, _IONBF, 0);
		if (cases[i].pure) {
			/* no namespace of its own to report: it makes no group */
			close(nsp[0]);
			close(nsp[1]);
			_exit(cases[i].fn());
		}
		if (unshare(CLONE_NEWNET) < 0) {
			printf("cannot create a network namespace: %s (run as root)\n",
			       strerror(errno));
			_exit(SM_FAIL);
		}
		if (sockmig_lo_up() < 0) {
			printf("cannot bring lo up\n");
			_exit(SM_FAIL);
		}
		if (!ephemeral_ports_apart()) {
			printf("cannot keep ephemeral ports from the test ports: %s\n",
			       strerror(errno));
			_exit(SM_FAIL);
		}
		if (stat("/proc/self/ns/net", &st) == 0) {
			unsigned long ino = st.st_ino;

			if (write(nsp[1], &ino, sizeof(ino)) != sizeof(ino))
				printf("cannot report the namespace\n");
		}
		close(nsp[0]);
		close(nsp[1]);
		_exit(cases[i].fn());
	}
	close(nsp[1]);
	timed_out = 0;
	/* SIGALRM at the limit, then every second: one that lands between
	 * wait_case's check and its waitid() is not the last */
	setitimer(ITIMER_REAL, &(struct itimerval){{1, 0}, {limit, 0}}, NULL);
	wait_case(pid, limit);
	alarm(0);
	/* what the case left running: reparented to us, the subreaper, by now */
	left = tp_descendants(getpid());
	/* its group, while its pid, unreaped, cannot be anyone else's */
	kill(-pid, SIGKILL);
	if (waitpid(pid, &status, 0) != pid)
		status = -1;
	stuck = reap ? tp_reap_all(REAP_MS) : 0;
	if (left > 0 || stuck > 0) {
		dprintf(verbose ? STDOUT_FILENO : out,
			"runner: the case left %d process%s running: %s\n", left,
			left == 1 ? "" : "es",
			reap ? "killed" : "-K: its process group killed, no more");
		if (stuck > 0)
			dprintf(verbose ? STDOUT_FILENO : out,
				"runner: %d still there after %d ms: they may hold ports and "
				"pins\n",
				stuck, REAP_MS);
	}
	if (read(nsp[0], &ino, sizeof(ino)) == sizeof(ino) &&
	    n_our_ns < (int)(sizeof(our_ns) / sizeof(our_ns[0]))) {
		our_ns[n_our_ns].ino = ino;
		our_ns[n_our_ns++].i = i;
	}
	close(nsp[0]);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (WIFEXITED(status))
		rc = WEXITSTATUS(status) == SM_PASS   ? SM_PASS
		     : WEXITSTATUS(status) == SM_SKIP ? SM_SKIP
						      : SM_FAIL;
	else
		rc = SM_FAIL;
	if (stuck > 0)
		rc = SM_FAIL;
	*left_out = left;
	if (rc == SM_SKIP && !verbose) {
		/* one line is enough for a skip: its reason (SKIP() prints it
		 * last, after whatever the case measured) */
		skip_reason(out);
	} else if (rc != SM_PASS && !verbose) {
		lseek(out, 0, SEEK_SET);
		while ((n = read(out, buf, sizeof(buf))) > 0)
			fwrite(buf, 1, (size_t)n, stdout);
		if (WIFSIGNALED(status))
			printf("  (killed by signal %d)\n", WTERMSIG(status));
	}
	close(out);
	return rc;
}

/* Is some task still in the network namespace with inode @ino? */
static bool netns_alive(unsigned long ino)
{
	char path[300];
	struct dirent *p, *t;
	struct stat st;
	DIR *procs = opendir("/proc"), *tasks;
	bool alive = false;

	while (procs && !alive && (p = readdir(procs))) {
		if (p->d_name[0] < '0' || p->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/task", p->d_name);
		tasks = opendir(path);
		while (tasks && !alive && (t = readdir(tasks))) {
			snprintf(path, sizeof(path), "/proc/%s/task/%s/ns/net", p->d_name,
				 t->d_name);
			alive = stat(path, &st) == 0 && st.st_ino == ino;
		}
		if (tasks)
			closedir(tasks);
	}
	if (procs)
		closedir(procs);
	return alive;
}

/* Entries under the pin root, to find what a run left behind. */
static int pinned_entries(char names[][128], int max)
{
	DIR *d = opendir(SOCKMIG_PIN_ROOT);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) && n < max)
		if (de->d_name[0] != '.')
			snprintf(names[n++], 128, "%s", de->d_name);
	closedir(d);
	return n;
}

static void remove_group_dir(const char *name)
{
	char path[512], pin[800];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", SOCKMIG_PIN_ROOT, name);
	d = opendir(path);
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.') {
			snprintf(pin, sizeof(pin), "%s/%s", path, de->d_name);
			unlink(pin);
		}
	if (d)
		closedir(d);
	rmdir(path);
}

/* A FILTER matches a name that contains it; one that ends in '$' matches
 * a name that ends with the rest ("pod_restart_sidecar$": that case only). */
static bool selected(const char *name, int argc, char **argv)
{
	if (argc == 0)
		return true;
	for (int i = 0; i < argc; i++) {
		size_t n = strlen(argv[i]), len = strlen(name);

		if (n && argv[i][n - 1] == '$') {
			if (n - 1 <= len && !strncmp(name + len - (n - 1), argv[i], n - 1))
				return true;
		} else if (strstr(name, argv[i])) {
			return true;
		}
	}
	return false;
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0, skipped = 0, limit = 60, opt, left, rc;
	bool verbose = false, list = false, pure = false, reap = true;
	struct sigaction sa = {.sa_handler = on_alarm};
	static const int inherited[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
	sigset_t none;
	double secs;

	/* The cases and the servers they start see default signal handling,
	 * whatever started the runner: nohup, a CI shell or a job control-less
	 * script leave SIGINT and SIGQUIT ignored, which exec keeps, and a
	 * server told to stop with SIGINT would not. */
	for (size_t i = 0; i < sizeof(inherited) / sizeof(inherited[0]); i++)
		signal(inherited[i], SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	while ((opt = getopt(argc, argv, "lpvKt:")) != -1) {
		switch (opt) {
		case 'K':
			reap = false;
			break;
		case 'l':
			list = true;
			break;
		case 'p':
			pure = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 't':
			limit = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-l] [-p] [-v] [-K] [-t SECS] [FILTER...]\n",
				argv[0]);
			return 2;
		}
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!selected(cases[i].name, argc - optind, argv + optind) ||
		    (pure && !cases[i].pure))
			continue;
		if (list) {
			printf("%s%s\n", cases[i].name, cases[i].pure ? " pure" : "");
		} else if (!cases[i].pure && geteuid() != 0) {
			fprintf(stderr,
				"Error: the tests need root (network namespaces, BPF); %s is not "
				"pure (test_sockmig -l: the cases another user may run)\n",
				cases[i].name);
			return 2;
		}
	}
	if (list)
		return 0;
	static char before[64][128];
	int nbefore = pinned_entries(before, 64);

	/* every process a case starts comes back to us when its parent dies */
	if (reap && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		fprintf(stderr, "Error: cannot become a child subreaper: %s\n", strerror(errno));
		return 2;
	}
	sigaction(SIGALRM, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	sockmig_set_print(NULL);
	if (!verbose)
		libbpf_set_print(NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!selected(cases[i].name, argc - optind, argv + optind) ||
		    (pure && !cases[i].pure))
			continue;
		rc = run_case((int)i, limit, verbose, reap, &secs, &left);
		switch (rc) {
		case SM_PASS:
			passed++;
			printf("ok   %-50s %6.2fs\n", cases[i].name, secs);
			break;
		case SM_SKIP:
			skipped++;
			printf("skip %-50s\n", cases[i].name);
			break;
		default:
			failed++;
			printf("FAIL %-50s %6.2fs\n", cases[i].name, secs);
		}
		/* seen, not failed: the sweep is the cleanup that cases rely on
		 * (a return after an assert); a failure's log says it already */
		if (left > 0 && rc != SM_FAIL && !verbose)
			printf("  (left %d process%s running: killed)\n", left,
			       left == 1 ? "" : "es");
	}
	/* the suite must leave bpffs as it found it */
	static char after[64][128];
	int na = pinned_entries(after, 64), leaked = 0;

	for (int i = 0; i < na; i++) {
		struct sockmig_group_id id;
		/* a group's namespace; another entry's leading number */
		unsigned long ns = sockmig_group_id_parse(after[i], &id) == 0
					   ? (unsigned long)id.netns
					   : strtoul(after[i], NULL, 10);
		const char *by = NULL;
		bool known = false;

		for (int j = 0; j < nbefore; j++)
			known |= strcmp(after[i], before[j]) == 0;
		for (int j = 0; j < n_our_ns && !by; j++)
			if (our_ns[j].ino == ns)
				by = cases[our_ns[j].i].name;
		/* ours: a case's namespace, alive or not; or a namespace gone
		 * (one a case made inside its own). A group of another live
		 * namespace belongs to someone else (a real server). */
		if (!known && (by || !netns_alive(ns))) {
			printf("  left in %s: %s%s%s (removed now)\n", SOCKMIG_PIN_ROOT, after[i],
			       by ? " by " : "", by ? by : "");
			remove_group_dir(after[i]);
			leaked++;
		}
	}
	if (leaked) {
		failed++;
		printf("FAIL %-50s\n", "bpffs_left_clean");
	} else {
		passed++;
		printf("ok   %-50s\n", "bpffs_left_clean");
	}
	printf("Summary: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
	return failed ? 1 : 0;
}
