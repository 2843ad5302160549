// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Test runner: each case in a forked child, in a private network
 * namespace with lo up, output captured and shown only on failure,
 * killed after its time limit. Usage: test_sockmig [-v] [-t SECS] [FILTER...]
 * runs the cases whose name contains one of the FILTERs (all without).
 */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "internal.h"

#define SM_CASE(name) int test_##name(void);
#include "cases.inc"
#undef SM_CASE

static const struct {
	const char *name;
	int (*fn)(void);
} cases[] = {
#define SM_CASE(name) { #name, test_##name },
#include "cases.inc"
#undef SM_CASE
};

static volatile sig_atomic_t timed_out;

static void on_alarm(int sig)
{
	(void)sig;
	timed_out = 1;
}

static int run_case(int i, int limit, bool verbose, double *secs)
{
	struct timespec t0, t1;
	int out, status = 0, rc;
	pid_t pid;
	char buf[4096];
	ssize_t n;

	out = memfd_create("sockmig-test", MFD_CLOEXEC);
	if (out < 0)
		return SM_FAIL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (!verbose) {
			dup2(out, STDOUT_FILENO);
			dup2(out, STDERR_FILENO);
		}
		setvbuf(stdout, NULL, _IONBF, 0);
		if (unshare(CLONE_NEWNET) < 0) {
			printf("cannot create a network namespace: %s (run as root)\n",
			       strerror(errno));
			_exit(SM_FAIL);
		}
		if (sm_lo_up() < 0) {
			printf("cannot bring lo up\n");
			_exit(SM_FAIL);
		}
		_exit(cases[i].fn());
	}
	timed_out = 0;
	alarm((unsigned)limit);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
		if (timed_out) {
			kill(pid, SIGKILL);
			printf("  (killed after %d s)\n", limit);
		}
	}
	alarm(0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (WIFEXITED(status))
		rc = WEXITSTATUS(status) == SM_PASS   ? SM_PASS
		     : WEXITSTATUS(status) == SM_SKIP ? SM_SKIP
						      : SM_FAIL;
	else
		rc = SM_FAIL;
	if (rc != SM_PASS && !verbose) {
		lseek(out, 0, SEEK_SET);
		while ((n = read(out, buf, sizeof(buf))) > 0) {
			if (rc == SM_SKIP) {
				/* one line is enough for a skip */
				char *nl = memchr(buf, '\n', (size_t)n);

				n = nl ? nl - buf + 1 : n;
				fputs("  ", stdout);
				fwrite(buf, 1, (size_t)n, stdout);
				break;
			}
			fwrite(buf, 1, (size_t)n, stdout);
		}
		if (WIFSIGNALED(status))
			printf("  (killed by signal %d)\n", WTERMSIG(status));
	}
	close(out);
	return rc;
}

static bool selected(const char *name, int argc, char **argv)
{
	if (argc == 0)
		return true;
	for (int i = 0; i < argc; i++)
		if (strstr(name, argv[i]))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0, skipped = 0, limit = 60, opt;
	bool verbose = false;
	struct sigaction sa = { .sa_handler = on_alarm };
	double secs;

	while ((opt = getopt(argc, argv, "vt:")) != -1) {
		switch (opt) {
		case 'v':
			verbose = true;
			break;
		case 't':
			limit = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-v] [-t SECS] [FILTER...]\n", argv[0]);
			return 2;
		}
	}
	if (geteuid() != 0) {
		fprintf(stderr, "Error: the tests need root (network namespaces, BPF)\n");
		return 2;
	}
	sigaction(SIGALRM, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	sockmig_set_print(NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!selected(cases[i].name, argc - optind, argv + optind))
			continue;
		switch (run_case((int)i, limit, verbose, &secs)) {
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
	}
	printf("Summary: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
	return failed ? 1 : 0;
}
