// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A group's identity as a struct (netns, family, address, port, name):
 * made from an address, read from a socket, a name or an open group, and
 * the pinned groups listed by netns and port. The name's spelling stays
 * in group.c (sockmig_group_name_for and its parser); nobody else parses
 * names.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "group_priv.h"

uint64_t sockmig_netns_self(void)
{
	struct stat st;

	if (stat("/proc/thread-self/ns/net", &st) < 0)
		return 0;
	return st.st_ino;
}

/* The id of an address and port in netns @netns (name included). */
static int id_fill(const struct sm_addr *a, uint64_t netns, struct sockmig_group_id *id)
{
	memset(id, 0, sizeof(*id));
	id->netns = netns;
	id->family = a->family;
	id->port = (uint16_t)sm_addr_port(a);
	if (a->family == AF_INET)
		id->addr.v4 = a->v4.sin_addr;
	else
		id->addr.v6 = a->v6.sin6_addr;
	return sockmig_group_name_for(id->family, &id->addr, id->port, netns, id->name,
				      sizeof(id->name));
}

int sockmig_group_id_make(int family, const void *addr, int port, uint64_t netns,
			  struct sockmig_group_id *id)
{
	int err;

	if (!id || !addr)
		return -EINVAL;
	memset(id, 0, sizeof(*id));
	if (!netns)
		netns = sockmig_netns_self();
	err = sockmig_group_name_for(family, addr, port, netns, id->name, sizeof(id->name));
	if (err)
		return err;
	id->netns = netns;
	id->family = family;
	id->port = (uint16_t)port;
	memcpy(&id->addr, addr, family == AF_INET ? sizeof(id->addr.v4) : sizeof(id->addr.v6));
	return 0;
}

int sockmig_group_id_parse(const char *name, struct sockmig_group_id *id)
{
	struct sm_addr a;
	uint64_t netns;
	int err;

	if (!name || !id || strchr(name, '/') || sm_parse_group_name(name, &a, &netns) < 0)
		return -EINVAL;
	err = id_fill(&a, netns, id);
	if (err)
		return err;
	/* one spelling per group: "0x1-..." or "080" are not names */
	return strcmp(id->name, name) == 0 ? 0 : -EINVAL;
}

int sockmig_group_id_of_fd(int fd, struct sockmig_group_id *id)
{
	struct sm_addr a;
	uint64_t netns;
	int err;

	if (!id)
		return -EINVAL;
	err = sm_group_name_of_fd(fd, &a, &netns, id->name, sizeof(id->name));
	if (err)
		return err;
	return id_fill(&a, netns, id);
}

int sockmig_group_id_get(const struct sockmig_group *g, struct sockmig_group_id *id)
{
	if (!g || !id)
		return -EINVAL;
	return id_fill(&g->addr, g->netns, id);
}

struct sockmig_group *sockmig_group_open_id(const struct sockmig_group_id *id,
					    const struct sockmig_group_opts *opts)
{
	if (!id) {
		errno = EINVAL;
		return NULL;
	}
	return sockmig_group_open_name(id->name, opts);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct sockmig_group_id *)a)->name,
		      ((const struct sockmig_group_id *)b)->name);
}

int sockmig_group_list_ids(const struct sockmig_group_opts *opts, uint64_t netns, int port,
			   struct sockmig_group_id *out, int max)
{
	char(*names)[SOCKMIG_NAME_MAX];
	struct sockmig_group_id *ids;
	int n, all, kept = 0;

	if (max < 0 || (max > 0 && !out) || port < 0 || port > 65535)
		return -EINVAL;
	all = sockmig_group_list(opts, NULL, 0);
	for (;;) {
		if (all <= 0)
			return all;
		names = calloc((size_t)all, sizeof(*names));
		if (!names)
			return -ENOMEM;
		n = sockmig_group_list(opts, names, all);
		if (n <= all)
			break;
		free(names); /* groups were added meanwhile: again, bigger */
		all = n;
	}
	ids = n > 0 ? calloc((size_t)n, sizeof(*ids)) : NULL;
	if (n > 0 && !ids)
		n = -ENOMEM;
	for (int i = 0; i < n; i++) {
		if (sockmig_group_id_parse(names[i], &ids[kept]) < 0 ||
		    (netns && ids[kept].netns != netns) || (port && ids[kept].port != port))
			continue;
		kept++;
	}
	free(names);
	if (n < 0) {
		free(ids);
		return n;
	}
	qsort(ids, (size_t)kept, sizeof(*ids), by_name);
	for (int i = 0; i < kept && i < max; i++)
		out[i] = ids[i];
	free(ids);
	return kept;
}
