// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Error printing, a minimal JSON writer for -j, and the parsing of the
 * options several subcommands share. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

bool json_output;

static int depth;
static bool need_comma[32];

static void json_escaped(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

int cli_errors;

void cli_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	cli_errors++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (json_output) {
		printf("{\"error\":");
		json_escaped(msg);
		printf("}\n");
	} else {
		fprintf(stderr, "Error: %s\n", msg);
	}
}

static void jw_key(const char *key)
{
	if (need_comma[depth])
		putchar(',');
	need_comma[depth] = true;
	if (key) {
		json_escaped(key);
		putchar(':');
	}
}

void jw_open(const char *key, char bracket)
{
	jw_key(key);
	putchar(bracket);
	if (depth < 31)
		depth++;
	need_comma[depth] = false;
}

void jw_close(char bracket)
{
	putchar(bracket);
	if (depth > 0)
		depth--;
}

void jw_str(const char *key, const char *val)
{
	jw_key(key);
	json_escaped(val);
}

void jw_u64(const char *key, uint64_t val)
{
	jw_key(key);
	printf("%llu", (unsigned long long)val);
}

void jw_i64(const char *key, int64_t val)
{
	jw_key(key);
	printf("%lld", (long long)val);
}

void jw_f64(const char *key, double val)
{
	jw_key(key);
	printf("%.6g", val);
}

void jw_bool(const char *key, bool val)
{
	jw_key(key);
	fputs(val ? "true" : "false", stdout);
}

void jw_null(const char *key)
{
	jw_key(key);
	fputs("null", stdout);
}

void jw_tristate(const char *key, enum sockmig_tristate t)
{
	if (t == SOCKMIG_UNKNOWN)
		jw_null(key);
	else
		jw_bool(key, t == SOCKMIG_YES);
}

void jw_netstat(const struct sockmig_netstat *ns)
{
	jw_u64("TCPMigrateReqSuccess", ns->migrate_success);
	jw_u64("TCPMigrateReqFailure", ns->migrate_failure);
	jw_u64("ListenDrops", ns->listen_drops);
	jw_u64("ListenOverflows", ns->listen_overflows);
	jw_u64("EmbryonicRsts", ns->embryonic_rsts);
	jw_u64("TCPAbortOnClose", ns->abort_on_close);
}

const char *tristate_str(enum sockmig_tristate t)
{
	return t == SOCKMIG_YES ? "yes" : t == SOCKMIG_NO ? "no" : "unknown";
}

void jw_end(void)
{
	putchar('\n');
	depth = 0;
	need_comma[0] = false;
}

bool parse_u64(const char *what, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	/* strtoull() alone takes " 80", "+80" and "-1" (as 2^64 - 1) */
	errno = 0;
	if (!s || !isdigit((unsigned char)*s)) {
		cli_error("%s: '%s' is not a number", what, s ? s : "");
		return false;
	}
	v = strtoull(s, &end, 10);
	if (*end) {
		cli_error("%s: '%s' is not a number", what, s);
		return false;
	}
	if (errno || v < min || v > max) {
		cli_error("%s: %s is out of range (%llu to %llu)", what, s, (unsigned long long)min,
			  (unsigned long long)max);
		return false;
	}
	*out = v;
	return true;
}

bool parse_port(const char *s, int *port)
{
	uint64_t v;

	if (!parse_u64("--port", s, 1, 65535, &v))
		return false;
	*port = (int)v;
	return true;
}

bool parse_pid(const char *s, pid_t *pid)
{
	uint64_t v;

	if (!parse_u64("--pid", s, 1, 4194304, &v))
		return false;
	*pid = (pid_t)v;
	return true;
}

bool cli_no_more_args(const char *cmd, int argc, char **argv)
{
	if (optind >= argc)
		return true;
	cli_error("%s: unexpected argument '%s'", cmd, argv[optind]);
	return false;
}

bool cli_pid_exists(pid_t pid)
{
	if (kill(pid, 0) == 0 || errno != ESRCH)
		return true;
	cli_error("--pid: no process %d", (int)pid);
	return false;
}

#define MAX_LONGOPTS 40

static const struct option global_opts[] = {
	{"json", no_argument, NULL, 'j'},
	{"verbose", no_argument, NULL, 'v'},
};

/* The table of the last cli_getopt() call: the subcommand's and ours. */
static struct option all_opts[MAX_LONGOPTS];
static int last_ret;

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
	static char **parsing;
	char shorts[80];
	size_t n = 0, g;
	int opt;

	/* a new argv: getopt starts afresh, in the order this table asks for */
	if (argv != parsing) {
		parsing = argv;
		optind = 0;
	}
	opterr = 0;
	/* "+" (stop at the first argument) stays first; ":" tells a missing value */
	snprintf(shorts, sizeof(shorts), "%s:jv%s", *shortopts == '+' ? "+" : "",
		 shortopts + (*shortopts == '+') + (shortopts[*shortopts == '+'] == ':'));
	for (; longopts && longopts[n].name && n < MAX_LONGOPTS - 3; n++)
		all_opts[n] = longopts[n];
	for (g = 0; g < sizeof(global_opts) / sizeof(global_opts[0]); g++)
		all_opts[n + g] = global_opts[g];
	memset(&all_opts[n + g], 0, sizeof(all_opts[0]));
	/* a first pass for -j alone: an error before it is JSON as well */
	if (optind == 0) {
		while ((opt = getopt_long(argc, argv, shorts, all_opts, NULL)) != -1)
			if (opt == 'j')
				json_output = true;
		optind = 0;
	}
	for (;;) {
		opt = getopt_long(argc, argv, shorts, all_opts, NULL);
		if (opt == 'j')
			json_output = true;
		else if (opt == 'v')
			cli_set_verbose();
		else
			break;
	}
	last_ret = opt;
	return opt;
}

/* How many options of the last table @name (without "--", up to '=' or its
 * end) is a prefix of, and whether one is exactly it. */
static int long_matches(const char *name, bool *exact)
{
	size_t len = strcspn(name, "=");
	int n = 0;

	*exact = false;
	for (const struct option *o = all_opts; o->name; o++) {
		if (strncmp(o->name, name, len) != 0)
			continue;
		n++;
		if (strlen(o->name) == len)
			*exact = true;
	}
	return n;
}

void cli_bad_option(const char *cmd, char **argv)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "";
	char where[64], help[64];
	bool exact = false;
	int matches = 0;

	snprintf(where, sizeof(where), "%s%s", cmd ? cmd : "", cmd ? ": " : "");
	snprintf(help, sizeof(help), "sockmig %s%s", cmd ? cmd : "", cmd ? " --help" : "help");
	if (strncmp(arg, "--", 2) == 0 && arg[2])
		matches = long_matches(arg + 2, &exact);
	if (last_ret == ':' && strncmp(arg, "--", 2) == 0)
		cli_error("%s%s needs a value", where, arg);
	else if (last_ret == ':')
		cli_error("%s-%c needs a value", where, optopt);
	else if (optopt && matches && strchr(arg, '='))
		cli_error("%soption '%.*s' takes no value (%s)", where, (int)strcspn(arg, "="), arg,
			  help);
	else if (optopt)
		cli_error("%sunknown option '-%c' (%s)", where, optopt, help);
	else if (matches > 1 && !exact)
		cli_error("%soption '%.*s' is ambiguous (%s)", where, (int)strcspn(arg, "="), arg,
			  help);
	else
		cli_error("%sunknown option '%.*s' (%s)", where, (int)strcspn(arg, "="), arg, help);
}
