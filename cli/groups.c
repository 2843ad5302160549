// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The pinned groups of this network namespace (of one port), sorted. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_group_names(int port, char (**out)[SOCKMIG_NAME_MAX])
{
	uint64_t self = sockmig_netns_self();
	struct sockmig_group_id *ids = NULL;
	char(*names)[SOCKMIG_NAME_MAX];
	int n, max = 0;

	*out = NULL;
	if (!self)
		return -ENOENT;
	/* the list may grow between two reads: read again until it fits */
	for (;;) {
		n = sockmig_group_list_ids(NULL, self, port, ids, max);
		if (n < 0 || n <= max)
			break;
		free(ids);
		max = n + 16;
		ids = calloc((size_t)max, sizeof(*ids));
		if (!ids)
			return -ENOMEM;
	}
	names = n >= 0 ? calloc((size_t)n + 1, SOCKMIG_NAME_MAX) : NULL;
	if (n >= 0 && !names)
		n = -ENOMEM;
	for (int i = 0; i < n; i++)
		memcpy(names[i], ids[i].name, SOCKMIG_NAME_MAX);
	free(ids);
	*out = names;
	return n;
}
