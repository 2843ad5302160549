// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Helpers of the tests of the sockmig command: see clitest.h. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"

char ct_tool[512];

bool ct_have_tool(void)
{
	char cwd[256];

	if (!getcwd(cwd, sizeof(cwd)))
		return false;
	snprintf(ct_tool, sizeof(ct_tool), "%s/.output/sockmig", cwd);
	return access(ct_tool, X_OK) == 0;
}

/* Run `sockmig ARGS` (a shell string); stdout and stderr into buffers.
 * Returns the exit status, or -1. */
int ct_run(const char *args, char *out, size_t outlen, char *err, size_t errlen)
{
	char cmd[1024], path_o[64], path_e[64];
	int status, fd;
	ssize_t n;

	snprintf(path_o, sizeof(path_o), "/tmp/sockmig-cli-%d.out", (int)getpid());
	snprintf(path_e, sizeof(path_e), "/tmp/sockmig-cli-%d.err", (int)getpid());
	snprintf(cmd, sizeof(cmd), "%s %s >%s 2>%s", ct_tool, args, path_o, path_e);
	status = system(cmd);
	out[0] = err[0] = '\0';
	fd = open(path_o, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, out, outlen - 1);
		out[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	fd = open(path_e, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, err, errlen - 1);
		err[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	unlink(path_o);
	unlink(path_e);
	printf("$ sockmig %s -> %d\n%s%s", args, WIFEXITED(status) ? WEXITSTATUS(status) : -1, out,
	       err);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int ct_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Does @json parse, and does the python expression @check hold on it (j:
 * the object, or the list of the objects of a JSON-lines output)? */
bool ct_json_check(const char *json, const char *check)
{
	char data[64], script[64], cmd[256];
	FILE *f;
	int st;

	snprintf(data, sizeof(data), "/tmp/sockmig-json-%d", (int)getpid());
	snprintf(script, sizeof(script), "/tmp/sockmig-json-%d.py", (int)getpid());
	f = fopen(data, "w");
	if (!f)
		return false;
	fputs(json, f);
	fclose(f);
	f = fopen(script, "w");
	if (!f)
		return false;
	fprintf(f,
		"import json, sys\n"
		"j = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]\n"
		"j = j[0] if len(j) == 1 else j\n"
		"sys.exit(0 if (%s) else 1)\n",
		check);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "python3 %s %s", script, data);
	st = system(cmd);
	unlink(data);
	unlink(script);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}
