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

int cli_udp_members(struct sockmig_udp_group *g, struct sockmig_udp_member_info **out)
{
	struct sockmig_udp_member_info *m = NULL;
	int n = sockmig_udp_members(g, NULL, 0);

	*out = NULL;
	/* members that join meanwhile are left for the next call */
	if (n > 0) {
		m = calloc((size_t)n, sizeof(*m));
		if (!m)
			return -ENOMEM;
		int k = sockmig_udp_members(g, m, n);

		if (k < 0) {
			free(m);
			return k;
		}
		n = k < n ? k : n;
	}
	*out = m;
	return n;
}
