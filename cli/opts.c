// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A subcommand's options as a table (struct cli_opt): getopt's tables are
 * made from it, each value is parsed and checked by its kind, -h/--help
 * prints the command's usage. A subcommand then only checks how its
 * options go together.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define MAX_OPTS 32

/* One value into its destination: false after one error line. */
static bool take(const struct cli_opt *o, const char *arg)
{
	char what[48];

	switch (o->kind) {
	case CLI_FLAG:
		*(bool *)o->dst = true;
		return true;
	case CLI_STR:
		*(const char **)o->dst = arg;
		return true;
	case CLI_PORT:
		return parse_port(arg, o->dst);
	case CLI_PID:
		return parse_pid(arg, o->dst);
	case CLI_U64:
		snprintf(what, sizeof(what), "--%s", o->name);
		return parse_u64(what, arg, o->min, o->max, o->dst);
	}
	return false;
}

int cli_parse(const char *cmd, int argc, char **argv, const struct cli_opt *opts, unsigned flags,
	      void (*usage)(FILE *f))
{
	struct option lo[MAX_OPTS + 2];
	char shorts[2 * MAX_OPTS + 4];
	size_t n = 0, s = 0;
	int opt;

	if (flags & CLI_OPERANDS_FIRST)
		shorts[s++] = '+';
	for (; n < MAX_OPTS && opts[n].name; n++) {
		lo[n] = (struct option){opts[n].name,
					opts[n].kind == CLI_FLAG ? no_argument : required_argument,
					NULL, opts[n].key};
		if (opts[n].key < 128) {
			shorts[s++] = (char)opts[n].key;
			if (opts[n].kind != CLI_FLAG)
				shorts[s++] = ':';
		}
	}
	if (n == MAX_OPTS && opts[n].name) {
		/* a table this long is a mistake of ours: never drop its tail */
		cli_error("%s: more than %d options", cmd, MAX_OPTS);
		return -1;
	}
	lo[n] = (struct option){"help", no_argument, NULL, 'h'};
	memset(&lo[n + 1], 0, sizeof(lo[0]));
	shorts[s++] = 'h';
	shorts[s] = '\0';
	while ((opt = cli_getopt(argc, argv, shorts, lo)) != -1) {
		const struct cli_opt *o = NULL;

		if (opt == 'h') {
			usage(stdout);
			return 0;
		}
		for (size_t i = 0; i < n && !o; i++)
			if (opts[i].key == opt)
				o = &opts[i];
		if (!o) {
			cli_bad_option(cmd, argv);
			return -1;
		}
		if (!take(o, optarg))
			return -1;
	}
	if (!(flags & (CLI_OPERANDS | CLI_OPERANDS_FIRST)) && !cli_no_more_args(cmd, argc, argv))
		return -1;
	return optind;
}
