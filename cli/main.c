// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig: keyword subcommands from a table (unique prefixes accepted),
 * global flags: -j (JSON) and -v (debug log) before or after the command
 * (cli_getopt()), -V and -h before it.
 */
#include <bpf/libbpf.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>

#include "cli.h"
#include "storm.h"
#include "sockmig.h"

static int verbose;

static int print_debug(enum sockmig_log_level level, const char *fmt, va_list ap)
{
	if (level == SOCKMIG_DEBUG && !verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static int print_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	return vfprintf(stderr, fmt, ap);
}

void cli_set_verbose(void)
{
	verbose = 1;
	libbpf_set_print(print_libbpf);
}

void cli_debug(const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "debug: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

const char *cli_not_readable(void)
{
	FILE *f = fopen("/proc/sys/kernel/unprivileged_bpf_disabled", "re");
	int v = 0;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v ? "not readable (needs CAP_BPF: kernel.unprivileged_bpf_disabled is set)"
		 : "not readable (needs root)";
}

static int do_help(int argc, char **argv);

static const struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} cmds[] = {
	{"probe", do_probe, "what this kernel can do for socket migration"},
	{"demo", do_demo, "reset counts with nothing, the sysctl and the policy, side by side"},
	{"attach", do_attach,
	 "protect a running server: register its listeners, keep them current"},
	{"detach", do_detach, "undo attach: stop its daemon, detach the policy, remove the pins"},
	{"drain", do_drain, "mark a server's listeners draining before it closes them"},
	{"watch", do_watch, "per-interval counters and per-reload reports of attached groups"},
	{"hold", do_hold, "keep a port's group alive while no server listens (stop-then-start)"},
	{"run", do_run, "supervise a server: holder, restarts, generational reloads on SIGHUP"},
	{"reload", do_reload, "ask the sockmig run of a port for a generational reload"},
	{"bench", do_bench, "reload-storm benchmark: naive, sysctl and policy side by side"},
	{"status", do_status, "SO_REUSEPORT groups, members, owners, queues, sockmig state"},
	{"metrics", do_metrics, "Prometheus metrics of the groups and the kernel"},
	{"help", do_help, "this list, or help COMMAND: that command's options"},
};

/* The command @name is, or is the unique prefix of; NULL after an error. */
static const struct cmd *find_cmd(const char *name)
{
	const struct cmd *found = NULL;

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strncmp(cmds[i].name, name, strlen(name)) != 0)
			continue;
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
		if (found) {
			cli_error("'%s' is ambiguous", name);
			return NULL;
		}
		found = &cmds[i];
	}
	if (!found)
		cli_error("unknown command '%s' (sockmig help lists them)", name);
	return found;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: sockmig [-j] [-v] COMMAND [ARGS]\n\nCommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].help);
	fprintf(f, "\nOptions:\n  -j, --json     JSON output\n  -v, --verbose  debug log\n"
		   "  -V, --version  print the version\n  -h, --help     this text\n"
		   "\nSee sockmig(8) and sockmig-COMMAND(8).\n");
}

static int do_help(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const struct cmd *c;
	char *sub[3] = {NULL, "--help", NULL};
	int opt;

	while ((opt = cli_getopt(argc, argv, "h", opts)) != -1) {
		if (opt != 'h') {
			cli_bad_option("help", argv);
			return 2;
		}
	}
	if (optind == argc) {
		usage(stdout);
		return 0;
	}
	if (optind + 1 < argc) {
		cli_error("help: unexpected argument '%s'", argv[optind + 1]);
		return 2;
	}
	/* help COMMAND is COMMAND --help */
	c = find_cmd(argv[optind]);
	if (!c)
		return 2;
	if (c->fn == do_help) {
		usage(stdout);
		return 0;
	}
	sub[0] = (char *)c->name;
	return c->fn(2, sub);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const struct cmd *found;
	int opt;

	sockmig_set_print(print_debug);
	libbpf_set_print(NULL);
	while ((opt = cli_getopt(argc, argv, "+Vh", opts)) != -1) {
		switch (opt) {
		case 'V':
			printf("sockmig %s\n", sockmig_version());
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			cli_bad_option(NULL, argv);
			return 2;
		}
	}
	if (optind >= argc) {
		cli_error("give a command (sockmig help lists them)");
		return 2;
	}
	/* not a command for people: a worker of sockmig bench's run strategy */
	if (strcmp(argv[optind], "__storm-worker") == 0 &&
	    (argc - optind == 3 || (argc - optind == 4 && !strcmp(argv[optind + 3], "report"))))
		storm_worker(atoi(argv[optind + 1]) == 6 ? AF_INET6 : AF_INET,
			     atoi(argv[optind + 2]), argc - optind == 4);
	found = find_cmd(argv[optind]);
	if (!found)
		return 2;
	optind++;
	return found->fn(argc - optind + 1, argv + optind - 1);
}
