// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig watch: one line per interval and UDP group with what its
 * program counted meanwhile (sockmig_udp_stats_read(): new flows, hits of
 * known flows, fallbacks from closed owners, expiries, stateless
 * datagrams, the kernel's hash, flows not learned, parse failures;
 * sockmig_udp_counters_read(): datagrams to old generations) and
 * its working generation. The UDP groups are found like status finds
 * them: pinned for this network namespace.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "watch_udp.h"

static int read_stats(const char *name, struct sockmig_udp_stats *st, uint64_t *old)
{
	struct sockmig_udp_group *g = sockmig_udp_group_open_name(name, NULL);
	SOCKMIG_OPTS(sockmig_udp_counters, c);
	int err;

	if (!g)
		return -1;
	err = sockmig_udp_stats_read(g, st);
	if (!err)
		err = sockmig_udp_counters_read(g, &c);
	*old = c.old_generation;
	sockmig_udp_group_close(g);
	return err;
}

void watch_udp_list(struct udp_watch *w, int port, bool baseline)
{
	uint64_t self = sockmig_netns_self();
	struct sockmig_group_id *ids = NULL;
	int n = self ? sockmig_udp_group_list(NULL, self, port, NULL, 0) : 0, max = n + 8;

	/* groups made meanwhile beyond 8 more wait for the next round */
	if (n > 0)
		ids = calloc((size_t)max, sizeof(*ids));
	n = ids ? sockmig_udp_group_list(NULL, self, port, ids, max) : 0;
	for (int i = 0; i < n && i < max; i++) {
		bool known = false;

		for (int j = 0; j < w->n && !known; j++)
			known = strcmp(w->g[j].name, ids[i].name) == 0;
		if (known)
			continue;
		if (w->n == w->cap) {
			int ncap = w->cap ? w->cap * 2 : 8;
			struct udp_watched *bigger = realloc(w->g, (size_t)ncap * sizeof(*bigger));

			if (!bigger)
				break;
			w->g = bigger;
			w->cap = ncap;
		}
		memset(&w->g[w->n], 0, sizeof(w->g[0]));
		snprintf(w->g[w->n].name, SOCKMIG_NAME_MAX, "%s", ids[i].name);
		/* a baseline that cannot be read: the next read is one */
		if (baseline)
			w->g[w->n].rebase = read_stats(w->g[w->n].name, &w->g[w->n].last,
						       &w->g[w->n].last_old) < 0;
		w->n++;
	}
	free(ids);
}

/* a - b, or a when the counter went back (the group was made again) */
static unsigned long long grew(uint64_t a, uint64_t b)
{
	return (unsigned long long)(a >= b ? a - b : a);
}

void watch_udp_round(struct udp_watch *w, const char *stamp)
{
	for (int i = 0; i < w->n; i++) {
		struct sockmig_udp_stats s, *l = &w->g[i].last;
		uint64_t old;

		if (read_stats(w->g[i].name, &s, &old) < 0)
			continue; /* gone: nothing to count */
		if (w->g[i].rebase) {
			*l = s;
			w->g[i].last_old = old;
			w->g[i].rebase = false;
			continue;
		}
		if (json_output) {
			jw_open(NULL, '{');
			jw_str("time", stamp);
			jw_str("group", w->g[i].name);
			jw_str("family", strstr(w->g[i].name, "-udp6-") ? "udp6" : "udp4");
			jw_u64("new_flows", grew(s.new_flows, l->new_flows));
			jw_u64("flow_hits", grew(s.flow_hits, l->flow_hits));
			jw_u64("fallbacks", grew(s.fallbacks, l->fallbacks));
			jw_u64("expired", grew(s.expired, l->expired));
			jw_u64("stateless", grew(s.stateless, l->stateless));
			jw_u64("kernel_hash", grew(s.kernel_hash, l->kernel_hash));
			jw_u64("not_learned", grew(s.not_learned, l->not_learned));
			jw_u64("parse_failed", grew(s.parse_failed, l->parse_failed));
			jw_u64("old_generation", grew(old, w->g[i].last_old));
			jw_u64("working_generation", s.working_generation);
			jw_close('}');
			jw_end();
		} else {
			printf("%s %s new_flows %llu flow_hits %llu fallbacks %llu expired %llu "
			       "stateless %llu kernel_hash %llu not_learned %llu parse_failed %llu "
			       "old_generation %llu | working generation %u\n",
			       stamp, w->g[i].name, grew(s.new_flows, l->new_flows),
			       grew(s.flow_hits, l->flow_hits), grew(s.fallbacks, l->fallbacks),
			       grew(s.expired, l->expired), grew(s.stateless, l->stateless),
			       grew(s.kernel_hash, l->kernel_hash),
			       grew(s.not_learned, l->not_learned),
			       grew(s.parse_failed, l->parse_failed), grew(old, w->g[i].last_old),
			       s.working_generation);
		}
		*l = s;
		w->g[i].last_old = old;
	}
}

void watch_udp_free(struct udp_watch *w)
{
	free(w->g);
	memset(w, 0, sizeof(*w));
}
