// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Error printing and a minimal JSON writer for -j. */
#include <errno.h>
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

void cli_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

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

	errno = 0;
	if (!s || !*s || *s == '-') {
		cli_error("%s: '%s' is not a number", what, s ? s : "");
		return false;
	}
	v = strtoull(s, &end, 10);
	if (errno || *end) {
		cli_error("%s: '%s' is not a number", what, s);
		return false;
	}
	if (v < min || v > max) {
		cli_error("%s: %llu is out of range (%llu to %llu)", what, v,
			  (unsigned long long)min, (unsigned long long)max);
		return false;
	}
	*out = v;
	return true;
}

void cli_bad_option(const char *cmd, char **argv)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";

	if (optopt && strchr(arg, optopt) && arg[0] == '-' && arg[1] != '-' && !arg[2])
		cli_error("%s: option '%s' needs a value (sockmig %s --help)", cmd, arg, cmd);
	else
		cli_error("%s: unknown option or missing value '%s' (sockmig %s --help)", cmd, arg,
			  cmd);
}
