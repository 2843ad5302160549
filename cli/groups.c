// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The pinned groups of this network namespace, all of them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

int cli_group_names(int port, char (**out)[SOCKMIG_NAME_MAX])
{
	char(*names)[SOCKMIG_NAME_MAX] = NULL;
	int max = 64, n, kept = 0;
	struct stat st;

	*out = NULL;
	if (stat("/proc/thread-self/ns/net", &st) < 0)
		return -errno;
	/* the list may grow between two reads: read again until it fits */
	for (;;) {
		char(*bigger)[SOCKMIG_NAME_MAX] = realloc(names, (size_t)max * SOCKMIG_NAME_MAX);

		if (!bigger) {
			free(names);
			return -ENOMEM;
		}
		names = bigger;
		n = sockmig_group_list(NULL, names, max);
		if (n < 0) {
			free(names);
			return n;
		}
		if (n <= max)
			break;
		max = n + 16;
	}
	for (int i = 0; i < n; i++) {
		const char *dash = strrchr(names[i], '-');
		char *end;

		/* NETNS-tcpF-ADDR-PORT */
		if (strtoull(names[i], &end, 10) != (unsigned long long)st.st_ino || *end != '-' ||
		    (port && (!dash || strtol(dash + 1, NULL, 10) != port)))
			continue;
		memmove(names[kept++], names[i], SOCKMIG_NAME_MAX);
	}
	*out = names;
	return kept;
}
