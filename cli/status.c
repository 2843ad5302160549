// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig status: the SO_REUSEPORT groups of this network namespace, their
 * members (owners, cookies, accept queues) and, where a sockmig group is
 * pinned for them, each member's role, generation, weight and counters.
 *
 * A group is the TCP listeners sharing family, address and port (two TCP
 * listeners can share them only with SO_REUSEPORT). Listeners come from
 * sock_diag, which anyone may dump; owners from /proc (a non-root user sees
 * its own processes); sockmig state from bpffs (root only). status.c
 * gathers it all, status_print.c prints it. The UDP groups pinned for the
 * namespace follow (status_udp.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "diag.h"
#include "sockmig.h"
#include "status.h"

#ifndef SO_BINDTOIFINDEX
#define SO_BINDTOIFINDEX 62
#endif

struct status_opts {
	int port;
	int family; /* of --addr, 0 without */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
};

static void status_usage(FILE *f)
{
	fprintf(f, "Usage: sockmig status [--port P] [--addr A] [-j]\n"
		   "  -p, --port P   only listeners on port P (1-65535)\n"
		   "  -a, --addr A   only listeners bound to IPv4 or IPv6 address A\n"
		   "  -j, --json     JSON output\n"
		   "  -h, --help     this text\n");
}

static bool parse_addr(const char *s, struct status_opts *o)
{
	char buf[INET6_ADDRSTRLEN + 2];
	size_t len = strlen(s);

	if (inet_pton(AF_INET, s, &o->addr.v4) == 1) {
		o->family = AF_INET;
		return true;
	}
	/* [::1] as well as ::1 */
	if (len > 2 && len < sizeof(buf) && s[0] == '[' && s[len - 1] == ']') {
		memcpy(buf, s + 1, len - 2);
		buf[len - 2] = '\0';
		s = buf;
	}
	if (inet_pton(AF_INET6, s, &o->addr.v6) == 1) {
		o->family = AF_INET6;
		return true;
	}
	cli_error("--addr: '%s' is not an IPv4 or IPv6 address", s);
	return false;
}

/* 0; 1 after the help; 2 after one error line. */
static int parse_args(int argc, char **argv, struct status_opts *o)
{
	const char *addr = NULL;
	const struct cli_opt opts[] = {
		{"port", 'p', CLI_PORT, &o->port},
		{"addr", 'a', CLI_STR, &addr},
		{0},
	};
	int n;

	memset(o, 0, sizeof(*o));
	n = cli_parse("status", argc, argv, opts, 0, status_usage);
	if (n < 0 || (addr && !parse_addr(addr, o)))
		return 2;
	return n == 0;
}

static size_t addr_len(int family)
{
	return family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr);
}

/* Groups in order of family, port, address; members in order of cookie. */
static int cmp_listener(const void *a, const void *b)
{
	const struct sm_listener *x = a, *y = b;
	int c;

	if (x->family != y->family)
		return x->family == AF_INET ? -1 : 1;
	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	c = memcmp(&x->addr, &y->addr, addr_len(x->family));
	if (c)
		return c;
	return x->cookie < y->cookie ? -1 : x->cookie > y->cookie;
}

static bool same_group(const struct sm_listener *x, const struct sm_listener *y)
{
	return x->family == y->family && x->port == y->port &&
	       memcmp(&x->addr, &y->addr, addr_len(x->family)) == 0;
}

static int read_sysctl_int(const char *path)
{
	FILE *f = fopen(path, "re");
	int v = UNKNOWN;

	if (!f)
		return UNKNOWN;
	if (fscanf(f, "%d", &v) != 1)
		v = UNKNOWN;
	fclose(f);
	return v;
}

/* The pinned group names; NULL and ns->state 0 when bpffs is not readable. */
static char (*pinned_names(struct netns_info *ns, int *n))[SOCKMIG_NAME_MAX]
{
	char(*names)[SOCKMIG_NAME_MAX] = NULL;
	int max = 64, got;

	for (;;) {
		char(*bigger)[SOCKMIG_NAME_MAX] = realloc(names, (size_t)max * SOCKMIG_NAME_MAX);

		if (!bigger) {
			got = -ENOMEM;
			break;
		}
		names = bigger;
		got = sockmig_group_list(NULL, names, max);
		if (got <= max)
			break;
		max = got;
	}
	if (got < 0) {
		ns->state = 0;
		if (got == -EACCES || got == -EPERM)
			snprintf(ns->state_msg, sizeof(ns->state_msg), "not readable (needs root)");
		else
			snprintf(ns->state_msg, sizeof(ns->state_msg), "not readable (%s)",
				 strerror(-got));
		free(names);
		*n = 0;
		return NULL;
	}
	ns->state = 1;
	*n = got;
	return names;
}

/* Members of the pinned group @gr->name, into gr->mi. */
static void read_pinned(struct group *gr)
{
	struct sockmig_group *g = sockmig_group_open_name(gr->name, NULL);
	int n;

	if (!g) {
		snprintf(gr->error, sizeof(gr->error), "%s",
			 errno == EPERM ? cli_not_readable() : sockmig_last_error());
		return;
	}
	gr->policy = sockmig_policy_str(sockmig_group_policy(g));
	gr->have_lease = sockmig_group_lease(g, &gr->lease) == 0;
	n = sockmig_members(g, NULL, 0);
	if (n > 0) {
		gr->mi = calloc((size_t)n, sizeof(*gr->mi));
		if (gr->mi)
			n = sockmig_members(g, gr->mi, n);
	}
	if (n < 0)
		snprintf(gr->error, sizeof(gr->error), "%s", sockmig_last_error());
	else if (gr->mi)
		gr->nmi = n;
	sockmig_group_close(g);
}

/* ---- the command ----------------------------------------------------------- */

static bool wanted_addr(const struct sm_listener *l, const struct status_opts *o)
{
	return !o->family ||
	       (l->family == o->family && memcmp(&l->addr, &o->addr, addr_len(o->family)) == 0);
}

/* Split the sorted listeners into groups and decide which to show. */
static int find_groups(struct sm_listener *ls, int n, struct netns_info *ns, struct group *gs)
{
	char(*names)[SOCKMIG_NAME_MAX];
	int ng = 0, nnames = 0;

	names = pinned_names(ns, &nnames);
	for (int i = 0; i < n;) {
		struct group *gr = &gs[ng];
		int j = i + 1;

		while (j < n && same_group(&ls[i], &ls[j]))
			j++;
		memset(gr, 0, sizeof(*gr));
		gr->l = &ls[i];
		gr->count = j - i;
		sockmig_group_name_for(ls[i].family, &ls[i].addr, ls[i].port, ns->ino, gr->name,
				       sizeof(gr->name));
		gr->pinned = ns->state ? 0 : UNKNOWN;
		for (int k = 0; k < nnames && names; k++)
			if (strcmp(names[k], gr->name) == 0)
				gr->pinned = 1;
		/* two TCP listeners share an address and port only with SO_REUSEPORT */
		gr->reuseport = gr->count >= 2 ? 1 : sm_diag_reuseport(&ls[i]);
		gr->show = gr->count >= 2 || gr->pinned == 1 || gr->reuseport == 1;
		ng++;
		i = j;
	}
	free(names);
	return ng;
}

int do_status(int argc, char **argv)
{
	struct status_opts o;
	struct netns_info ns;
	struct sm_listener *ls = NULL;
	struct group *gs = NULL;
	struct udp_group *us = NULL;
	sockmig_print_fn prev;
	bool any = false;
	int n, ng = 0, nu, kept = 0, err;

	err = parse_args(argc, argv, &o);
	if (err)
		return err == 1 ? 0 : err;
	memset(&ns, 0, sizeof(ns));
	ns.root = geteuid() == 0;
	ns.ino = sockmig_netns_self();
	n = sm_diag_listeners(o.family, o.port, &ls);
	if (n < 0) {
		cli_error("cannot list the TCP listeners (sock_diag): %s", strerror(-n));
		return 1;
	}
	for (int i = 0; i < n; i++)
		if (wanted_addr(&ls[i], &o))
			ls[kept++] = ls[i];
	n = kept;
	if (n > 1)
		qsort(ls, (size_t)n, sizeof(*ls), cmp_listener);

	/* expected refusals (bpffs as non-root) are reported, not logged */
	prev = sockmig_set_print(NULL);
	gs = calloc((size_t)(n ? n : 1), sizeof(*gs));
	if (!gs) {
		sockmig_set_print(prev);
		free(ls);
		cli_error("out of memory");
		return 1;
	}
	ng = find_groups(ls, n, &ns, gs);
	for (int i = 0; i < ng; i++) {
		any |= gs[i].show;
		if (gs[i].show && gs[i].pinned == 1)
			read_pinned(&gs[i]);
	}
	/* UDP groups are known from their pins only: none when not readable */
	nu = ns.ino ? status_udp_read(ns.ino, o.port, o.family, &o.addr, &us) : 0;
	if (nu < 0)
		nu = 0;
	if (any) {
		if (ns.root)
			ns.probed = sockmig_probe(&ns.probe) == 0;
		ns.migrate_req = read_sysctl_int("/proc/sys/net/ipv4/tcp_migrate_req");
		ns.have_netstat = sockmig_netstat_read(&ns.ns) == 0;
	}
	sockmig_set_print(prev);

	if (json_output)
		status_json(gs, ng, &ns, us, nu);
	else
		status_table(gs, ng, &ns, us, nu);
	status_udp_free(us, nu);
	for (int i = 0; i < ng; i++)
		free(gs[i].mi);
	free(gs);
	free(ls);
	return 0;
}
