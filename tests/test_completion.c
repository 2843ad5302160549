// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bash completion (completion/sockmig) under the real bash-completion,
 * driven by tests/complete.sh: commands, options read from the binary's
 * --help, and values (listening ports of the namespace, signals, bench
 * strategies, the server's command after --).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define PORT 32123

struct comp_case {
	const char *line;   /* after ".output/sockmig " */
	const char *expect; /* the candidates, sorted, one space apart */
};

SM_TEST(completion_commands_options_values)
{
	static const struct comp_case cases[] = {
		{"at", "attach"},
		{"-j sta", "status"},
		{"--ver", "--verbose --version"},
		{"run --rea", "--ready-after --ready-timeout"},
		{"status --port ", "32123"},
		{"bench --strategies naive,po", "naive,policy"},
		{"run --stop-signal QU", "QUIT"},
		{"attach --generation-by ", "exe none process tree"},
		{"attach --gen", "--generation --generation-by"},
		{"attach --proto ", "all tcp udp"},
		{"attach --udp-mode ", "flow none"},
		{"run --port 32123 -- bash", "bash bashbug"},
		{"probe --port ", ""}, /* probe has no --port: nothing */
	};
	char cmd[4096], line[512];
	size_t off, i = 0;
	int lfd, ret = SM_FAIL;
	FILE *p;

	if (access(".output/sockmig", X_OK) != 0 || access("completion/sockmig", R_OK) != 0)
		return SKIP("run from the repository root, after make");
	if (!ASSERT_TRUE(access("/usr/share/bash-completion/bash_completion", R_OK) == 0,
			 "bash-completion installed (scripts/deps)"))
		return SM_FAIL;
	lfd = burst_listener(AF_INET, PORT, 16, 0);
	if (!ASSERT_TRUE(lfd >= 0, "a listener for --port"))
		return SM_FAIL;
	off = (size_t)snprintf(cmd, sizeof(cmd), "tests/complete.sh completion/sockmig");
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
		off += (size_t)snprintf(cmd + off, sizeof(cmd) - off, " '.output/sockmig %s'",
					cases[k].line);
	p = popen(cmd, "r");
	if (!ASSERT_TRUE(p, "tests/complete.sh"))
		goto out;
	while (fgets(line, sizeof(line), p) && i < sizeof(cases) / sizeof(cases[0])) {
		line[strcspn(line, "\n")] = '\0';
		printf("sockmig %s<TAB> -> '%s'\n", cases[i].line, line);
		if (strcmp(line, cases[i].expect) != 0) {
			printf("expected '%s'\n", cases[i].expect);
			pclose(p);
			goto out;
		}
		i++;
	}
	if (pclose(p) != 0 || !ASSERT_EQ(i, sizeof(cases) / sizeof(cases[0]), "lines"))
		goto out;
	ret = SM_PASS;
out:
	close(lfd);
	return ret;
}
