/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers of the tests of the sockmig command (tests/test_cli*.c; every
 * name here starts with ct_): .output/sockmig run as a shell command, its
 * output, its JSON. */
#ifndef SOCKMIG_TESTS_CLITEST_H
#define SOCKMIG_TESTS_CLITEST_H

#include <stdbool.h>
#include <stddef.h>

#define CPORT 34000

/* The path of .output/sockmig, once ct_have_tool() found it. */
extern char ct_tool[512];
/* Is there an .output/sockmig under the current directory? */
bool ct_have_tool(void);
/* Run `sockmig ARGS` (a shell string); stdout and stderr into buffers.
 * Returns the exit status, or -1. */
int ct_run(const char *args, char *out, size_t outlen, char *err, size_t errlen);
/* Newlines in @s. */
int ct_lines(const char *s);
/* Does @json parse, and does the python expression @check hold on it (j:
 * the object, or the list of the objects of a JSON-lines output)? */
bool ct_json_check(const char *json, const char *check);

#endif
