// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig status: the UDP groups of this network namespace (see
 * sockmig_udp_group_open()), found where they are pinned: their mode,
 * working generation, members, flows per generation and counters (those
 * of sockmig_udp_counters_read() too: datagrams to old generations); read
 * here, printed as JSON here and as columns by status_print.c.
 *
 * Unlike TCP listeners (sock_diag, which anyone may dump), a UDP group is
 * known from its pins only: a user who may not read the pin root sees none.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "status.h"

static bool wanted(const struct sockmig_group_id *id, int family, const void *addr)
{
	if (!family)
		return true;
	return id->family == family &&
	       memcmp(&id->addr, addr,
		      family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr)) == 0;
}

/* Generation @gen's entry of u->gens, added in serial order when new. */
static struct udp_gen *gen_of(struct udp_group *u, uint32_t gen)
{
	struct udp_gen *ng;
	int i = 0;

	for (; i < u->ngens && (int32_t)(u->gens[i].gen - gen) < 0; i++)
		;
	if (i < u->ngens && u->gens[i].gen == gen)
		return &u->gens[i];
	ng = realloc(u->gens, (size_t)(u->ngens + 1) * sizeof(*ng));
	if (!ng)
		return NULL;
	u->gens = ng;
	memmove(&ng[i + 1], &ng[i], (size_t)(u->ngens - i) * sizeof(*ng));
	memset(&ng[i], 0, sizeof(*ng));
	ng[i].gen = gen;
	u->ngens++;
	return &ng[i];
}

/* Members, flows and counters of the UDP group @u->id, or u->error; false
 * when the group had no live member left (its last server exited or was
 * killed): removed here (sockmig_udp_group_collect()), not listed. */
static bool read_one(struct udp_group *u)
{
	struct sockmig_udp_group *g = sockmig_udp_group_open_name(u->id.name, NULL);
	struct sockmig_udp_flow_count *fc = NULL;
	int n, cap = 0, nfc = 0;

	if (!g && errno == ENOENT)
		return false; /* gone since the list */
	if (!g) {
		snprintf(u->error, sizeof(u->error), "%s",
			 errno == EPERM ? cli_not_readable() : sockmig_last_error());
		return true;
	}
	if (sockmig_udp_group_collect(g) == 1) {
		sockmig_udp_group_close(g);
		return false;
	}
	u->mode = sockmig_udp_group_mode(g);
	u->flow_max = sockmig_udp_group_flow_max(g);
	u->idle_ms = sockmig_udp_group_idle_timeout_ms(g);
	n = sockmig_udp_stats_read(g, &u->st);
	if (n == 0) {
		SOCKMIG_OPTS(sockmig_udp_counters, c);

		n = sockmig_udp_counters_read(g, &c);
		u->old_gen = c.old_generation;
		u->quic_new = c.quic_new_connections;
	}
	if (n == 0 && u->mode == SOCKMIG_UDP_MODE_QUIC_LB) {
		n = sockmig_quic_stats_read(g, &u->q);
		u->have_quic = n == 0;
	}
	if (n == 0)
		n = sockmig_udp_members(g, NULL, 0);
	if (n > 0) {
		/* members that join meanwhile are left for the next status */
		cap = n;
		u->mi = calloc((size_t)cap, sizeof(*u->mi));
		n = u->mi ? sockmig_udp_members(g, u->mi, cap) : -ENOMEM;
		u->nmi = n < 0 ? 0 : n < cap ? n : cap;
	}
	/* one walk of the flow table (a million flows take a fraction of a
	 * second): room for a generation per member and a few that joined
	 * since; a second walk only when more generations own flows */
	for (int walks = 0; n >= 0 && walks < 2; walks++) {
		free(fc);
		cap = (walks ? n : u->nmi) + 8;
		fc = calloc((size_t)cap, sizeof(*fc));
		n = fc ? sockmig_udp_flows(g, fc, cap) : -ENOMEM;
		nfc = n < 0 ? 0 : n < cap ? n : cap;
		if (n <= cap)
			break;
	}
	for (int i = 0; i < u->nmi && n >= 0; i++) {
		struct udp_gen *ge = gen_of(u, u->mi[i].generation);

		if (!ge)
			n = -ENOMEM;
		else
			ge->members++;
	}
	for (int i = 0; i < nfc && n >= 0; i++) {
		struct udp_gen *ge = gen_of(u, fc[i].generation);

		if (!ge)
			n = -ENOMEM;
		else
			ge->flows = fc[i].flows;
	}
	free(fc);
	if (n < 0)
		snprintf(u->error, sizeof(u->error), "%s",
			 n == -ENOMEM ? "out of memory" : sockmig_last_error());
	else
		u->readable = true;
	sockmig_udp_group_close(g);
	return true;
}

int status_udp_read(uint64_t netns, int port, int family, const void *addr, struct udp_group **out)
{
	struct sockmig_group_id *ids = NULL;
	struct udp_group *us;
	int n, max = 0, kept = 0;

	*out = NULL;
	/* the list may grow between two reads: read again until it fits */
	for (;;) {
		n = sockmig_udp_group_list(NULL, netns, port, ids, max);
		if (n < 0 || n <= max)
			break;
		free(ids);
		max = n + 8;
		ids = calloc((size_t)max, sizeof(*ids));
		if (!ids)
			return -ENOMEM;
	}
	if (n <= 0) {
		free(ids);
		return n;
	}
	us = calloc((size_t)n, sizeof(*us));
	if (!us) {
		free(ids);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		if (!wanted(&ids[i], family, addr))
			continue;
		us[kept].id = ids[i];
		if (read_one(&us[kept]))
			kept++;
		else
			memset(&us[kept], 0, sizeof(us[kept]));
	}
	free(ids);
	*out = us;
	return kept;
}

void status_udp_free(struct udp_group *us, int n)
{
	for (int i = 0; i < n; i++) {
		free(us[i].mi);
		free(us[i].gens);
	}
	free(us);
}

void status_udp_local(const struct udp_group *u, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (!inet_ntop(u->id.family, &u->id.addr, host, sizeof(host)))
		snprintf(host, sizeof(host), "?");
	snprintf(buf, len, u->id.family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, u->id.port);
}

static void json_counters(const struct sockmig_udp_stats *st, uint64_t old_gen, uint64_t quic_new)
{
	jw_open("counters", '{');
	jw_u64("new_flows", st->new_flows);
	jw_u64("flow_hits", st->flow_hits);
	jw_u64("fallbacks", st->fallbacks);
	jw_u64("expired", st->expired);
	jw_u64("stateless", st->stateless);
	jw_u64("kernel_hash", st->kernel_hash);
	jw_u64("not_learned", st->not_learned);
	jw_u64("parse_failed", st->parse_failed);
	jw_u64("old_generation", old_gen);
	jw_u64("quic_new_connections", quic_new);
	jw_close('}');
}

/* One object of the top-level array per UDP group, after the TCP groups. */
void status_udp_json(const struct udp_group *us, int n)
{
	for (int i = 0; i < n; i++) {
		const struct udp_group *u = &us[i];
		char host[INET6_ADDRSTRLEN], local[INET6_ADDRSTRLEN + 32];

		if (!inet_ntop(u->id.family, &u->id.addr, host, sizeof(host)))
			snprintf(host, sizeof(host), "?");
		status_udp_local(u, local, sizeof(local));
		jw_open(NULL, '{');
		jw_str("family", u->id.family == AF_INET ? "udp4" : "udp6");
		jw_str("addr", host);
		jw_i64("port", u->id.port);
		jw_str("local", local);
		jw_u64("netns", u->id.netns);
		jw_str("sockmig_group", u->id.name);
		jw_bool("pinned", true);
		jw_str("sockmig_state", u->readable ? "readable" : u->error);
		if (!u->readable) {
			jw_null("mode");
			jw_null("working_generation");
			jw_null("idle_timeout_ms");
			jw_null("flow_max");
			jw_null("counters");
			jw_close('}');
			continue;
		}
		jw_str("mode", sockmig_udp_mode_str(u->mode));
		jw_u64("working_generation", u->st.working_generation);
		if (u->idle_ms == SOCKMIG_UDP_NO_EXPIRY)
			jw_null("idle_timeout_ms"); /* flows never expire by time */
		else
			jw_u64("idle_timeout_ms", u->idle_ms);
		jw_u64("flow_max", u->flow_max);
		jw_u64("n_working", u->st.n_working);
		jw_u64("n_active", u->st.n_active);
		jw_i64("nmembers", u->nmi);
		jw_open("members", '[');
		for (int k = 0; k < u->nmi; k++) {
			jw_open(NULL, '{');
			jw_u64("cookie", u->mi[k].cookie);
			jw_u64("slot", u->mi[k].slot);
			jw_u64("generation", u->mi[k].generation);
			jw_str("role", sockmig_role_str(u->mi[k].role));
			jw_u64("pid", u->mi[k].pid);
			jw_close('}');
		}
		jw_close(']');
		jw_open("generations", '[');
		for (int k = 0; k < u->ngens; k++) {
			jw_open(NULL, '{');
			jw_u64("generation", u->gens[k].gen);
			jw_i64("members", u->gens[k].members);
			jw_u64("flows", u->gens[k].flows);
			jw_close('}');
		}
		jw_close(']');
		json_counters(&u->st, u->old_gen, u->quic_new);
		if (u->have_quic) {
			jw_open("quic", '{');
			jw_u64("hits", u->q.hits);
			jw_u64("stale", u->q.stale);
			jw_u64("other", u->q.other);
			jw_close('}');
		} else {
			jw_null("quic");
		}
		jw_close('}');
	}
}
