// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups for readers: the pinned UDP groups listed by network
 * namespace and port, and an existing one opened by its name, from any
 * network namespace and without knowing its mode (what sockmig status
 * needs). Nothing here makes or changes a group; lib/udp.c opens and
 * makes them by address.
 *
 * A UDP group's name is a TCP group's name with "udp" for "tcp" (lib/udp.c
 * spells it): the spelling is checked by the one parser of names
 * (lib/group.c) on the name with "tcp" put back.
 */
#include <bpf/bpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "udp_priv.h"

static const char *udp_root_of(const struct sockmig_udp_group_opts *opts)
{
	return sm_pin_root(OPTS_GET(opts, pin_root, NULL));
}

/*
 * What UDP group name @name spells, into @id (its name kept) and @a:
 * -EINVAL when it is not one, or not in its one spelling.
 */
static int udp_parse_name(const char *name, struct sockmig_group_id *id, struct sm_addr *a)
{
	char tcp[SOCKMIG_NAME_MAX];
	const char *dash = name ? strchr(name, '-') : NULL;
	uint64_t netns;

	if (!dash || strchr(name, '/') || strlen(name) >= sizeof(tcp) ||
	    strncmp(dash, "-udp", 4) != 0)
		return -EINVAL;
	snprintf(tcp, sizeof(tcp), "%s", name);
	memcpy(tcp + (dash - name) + 1, "tcp", 3);
	if (sockmig_group_id_parse(tcp, id) < 0 || sm_parse_group_name(tcp, a, &netns) < 0)
		return -EINVAL;
	snprintf(id->name, sizeof(id->name), "%s", name);
	return 0;
}

static int by_udp_name(const void *a, const void *b)
{
	return strcmp(((const struct sockmig_group_id *)a)->name,
		      ((const struct sockmig_group_id *)b)->name);
}

int sockmig_udp_group_list(const struct sockmig_udp_group_opts *opts, uint64_t netns, int port,
			   struct sockmig_group_id *out, int max)
{
	struct sockmig_group_id *ids = NULL, id;
	const char *root;
	struct dirent *de;
	struct sm_addr a;
	int n = 0, cap = 0, err;
	DIR *d;

	if (!OPTS_VALID(opts, sockmig_udp_group_opts) || max < 0 || (max > 0 && !out) || port < 0 ||
	    port > 65535)
		return -EINVAL;
	root = udp_root_of(opts);
	err = sm_root_opendir(root, &d);
	if (err || !d)
		return err;
	while ((de = readdir(d))) {
		if (udp_parse_name(de->d_name, &id, &a) < 0 || (netns && id.netns != netns) ||
		    (port && id.port != port))
			continue;
		if (n == cap) {
			struct sockmig_group_id *bigger;

			cap = cap ? cap * 2 : 16;
			bigger = realloc(ids, (size_t)cap * sizeof(*ids));
			if (!bigger) {
				closedir(d);
				free(ids);
				return -ENOMEM;
			}
			ids = bigger;
		}
		ids[n++] = id;
	}
	closedir(d);
	if (n)
		qsort(ids, (size_t)n, sizeof(*ids), by_udp_name);
	for (int i = 0; i < n && i < max; i++)
		out[i] = ids[i];
	free(ids);
	return n;
}

struct sockmig_udp_group *sockmig_udp_group_open_name(const char *name,
						      const struct sockmig_udp_group_opts *opts)
{
	struct sockmig_udp_group *g;
	struct sockmig_group_id id;
	char pin[PATH_MAX + 256];
	struct stat st;
	int err = 0;

	if (!OPTS_VALID(opts, sockmig_udp_group_opts)) {
		errno = EINVAL;
		return NULL;
	}
	g = sm_udp_alloc();
	if (!g) {
		errno = ENOMEM;
		return NULL;
	}
	if (udp_parse_name(name, &id, &g->base.addr) < 0) {
		err = sm_fail(EINVAL, "'%s' is not a sockmig UDP group name", name ? name : "");
		goto fail;
	}
	g->netns = id.netns;
	snprintf(g->base.name, sizeof(g->base.name), "%s", name);
	snprintf(g->base.root, sizeof(g->base.root), "%s", udp_root_of(opts));
	snprintf(g->base.path, sizeof(g->base.path), "%s/%s", g->base.root, g->base.name);
	err = sm_root_readable(g->base.root);
	if (err == -EPERM)
		goto fail;
	snprintf(pin, sizeof(pin), "%s/config", g->base.path);
	if (stat(pin, &st) < 0) {
		err = sm_fail(errno == EACCES ? EPERM : ENOENT, "no sockmig UDP group %s in %s%s",
			      name, g->base.root, errno == EACCES ? " (needs root)" : "");
		goto fail;
	}
	g->base.dirfd = open(g->base.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (g->base.dirfd < 0) {
		err = sm_fail(errno, "cannot open %s: %s", g->base.path, strerror(errno));
		goto fail;
	}
	if (fstat(g->base.dirfd, &st) < 0 || !sm_dir_private(&st)) {
		err = sm_fail(EPERM, "%s is not a private directory of uid %u: not read",
			      g->base.path, (unsigned)geteuid());
		goto fail;
	}
	/* under the lock: a group being made has all its pins or none */
	err = sm_group_lock(&g->base);
	if (err)
		goto fail;
	err = sm_udp_get_pinned(g);
	if (err == -ENOENT || err == -EPERM)
		err = sm_fail(-err, "cannot open the pins of %s: %s", g->base.path, strerror(-err));
	if (!err)
		sm_udp_note_made(g);
	sm_group_unlock(&g->base);
	if (err)
		goto fail;
	return g;
fail:
	sockmig_udp_group_close(g);
	errno = -err;
	return NULL;
}
