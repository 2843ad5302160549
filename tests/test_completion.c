// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bash completion (completion/sockmig) under the real bash-completion,
 * driven by tests/complete.sh: commands, options read from the binary's
 * --help (bench udp's from its own), and values (TCP and UDP ports of the
 * namespace, run's stop signals, bench strategies, the server's command
 * after --).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define PORT	 32123
#define UDP_PORT 32124

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
		{"status --port ", "32123 32124"}, /* TCP and UDP */
		{"bench --strategies naive,po", "naive,policy"},
		{"run --stop-signal QU", "QUIT"},
		{"run --stop-signal ", "INT QUIT TERM USR1 USR2 WINCH"}, /* what run takes */
		{"bench u", "udp udp-cost"},
		{"bench udp --fl", "--flip-ms --flow-ms --flows"},
		{"bench udp-cost --sen", "--senders"},
		{"bench udp --strategies n", "naive none"},
		{"bench udp --strategies flow,q", "flow,quic-lb"},
		{"metrics --listen --p", ""}, /* --listen takes ADDR:PORT: no option */
		{"attach --generation-by ", "exe none process tree"},
		{"attach --gen", "--generation --generation-by"},
		{"attach --proto ", "all tcp udp"},
		{"attach --udp-mode ", "flow none"},
		{"run --port 32123 -- bash", "bash bashbug"},
		{"probe --port ", ""}, /* probe has no --port: nothing */
	};
	char cmd[4096], line[512];
	size_t off, i = 0;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(UDP_PORT)};
	int lfd, ufd, ret = SM_FAIL;
	FILE *p;

	if (access(".output/sockmig", X_OK) != 0 || access("completion/sockmig", R_OK) != 0)
		return SKIP("run from the repository root, after make");
	if (!ASSERT_TRUE(access("/usr/share/bash-completion/bash_completion", R_OK) == 0,
			 "bash-completion installed (scripts/deps)"))
		return SM_FAIL;
	lfd = burst_listener(AF_INET, PORT, 16, 0);
	if (!ASSERT_TRUE(lfd >= 0, "a listener for --port"))
		return SM_FAIL;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ufd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (!ASSERT_TRUE(ufd >= 0 && bind(ufd, (struct sockaddr *)&sin, sizeof(sin)) == 0,
			 "a UDP socket for --port")) {
		if (ufd >= 0)
			close(ufd);
		close(lfd);
		return SM_FAIL;
	}
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
	close(ufd);
	close(lfd);
	return ret;
}
