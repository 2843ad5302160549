// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig run --proto udp|all: the UDP part of run (see run.c).
 *
 * The server runs under libsockmig-preload.so with SOCKMIG_REUSEPORT=udp,
 * so that each UDP socket it binds to a port joins that port's UDP group
 * (include/sockmig/udp.h) at bind(), and SOCKMIG_GENERATION, one UDP
 * generation per run generation (its workers share it): the clock ticks
 * since boot at its start, the clock of the TCP generations, and always
 * newer than the one before.
 *
 * A reload: while generation N+1 starts, the working generation of the
 * port's UDP groups is pinned to N (new flows keep going to N even once
 * N+1 has bound); when N+1 is ready (a UDP socket of it is a member, and a
 * TCP listener too with --proto all, or READY=1), the pin is lifted, so
 * N+1 takes every new flow, and N is drained: its sockets take no new
 * flow and keep their flows until they close (the server's stop, at most
 * --grace later: SIGKILL, before which run_udp_end.c retires them so that
 * nothing queued is lost). The report's UDP line says what happened from
 * the reload's start to the end of the old generation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "run.h"

int run_proto_parse(struct runner *r, const char *value)
{
	r->tcp = strcmp(value, "tcp") == 0 || strcmp(value, "all") == 0;
	r->udp = strcmp(value, "udp") == 0 || strcmp(value, "all") == 0;
	if (r->tcp || r->udp)
		return 0;
	cli_error("run: --proto: '%s' is not one of tcp, udp, all", value);
	return -1;
}

uint32_t run_udp_next_gen(struct runner *r)
{
	struct timespec ts;
	long hz = sysconf(_SC_CLK_TCK);
	uint32_t gen = 0;

	if (hz <= 0)
		hz = 100;
	if (clock_gettime(CLOCK_BOOTTIME, &ts) == 0)
		gen = (uint32_t)((uint64_t)ts.tv_sec * (uint64_t)hz +
				 (uint64_t)ts.tv_nsec / (1000000000ull / (uint64_t)hz));
	/* two starts in one tick: still one newer than the other */
	if (r->last_ugen && (int32_t)(gen - r->last_ugen) <= 0)
		gen = r->last_ugen + 1;
	if (gen == SOCKMIG_UDP_GEN_NEWEST || gen == 0)
		gen = 1; /* reserved, and 0 means none here */
	r->last_ugen = gen;
	return gen;
}

void run_udp_child_env(const struct runner *r, const struct generation *g)
{
	const char *old = getenv("LD_PRELOAD"), *rp;
	char *pre = NULL, gen[16];

	/* the shim first, then what the server would have had, whole */
	if (asprintf(&pre, "%s%s%s", r->preload, old && *old ? ":" : "", old ? old : "") < 0)
		pre = NULL;
	setenv("LD_PRELOAD", pre ? pre : r->preload, 1);
	free(pre);
	if (r->handoff) /* TCP: run's listener, handed to the server's bind() */
		setenv("SOCKMIG_HANDOFF", "1", 1);
	if (!r->udp)
		return;
	snprintf(gen, sizeof(gen), "%u", g->ugen);
	/* --proto all with SOCKMIG_REUSEPORT=1 asked for (a TCP listener
	 * without SO_REUSEPORT: run's own advice): both */
	rp = getenv("SOCKMIG_REUSEPORT");
	setenv("SOCKMIG_REUSEPORT",
	       r->tcp && rp && *rp && strcmp(rp, "0") != 0 && strcmp(rp, "udp") != 0 ? "all"
										     : "udp",
	       1);
	setenv("SOCKMIG_GENERATION", gen, 1);
}

int run_udp_open_groups(int port, struct sockmig_udp_group ***g)
{
	uint64_t netns = sockmig_netns_self();
	struct sockmig_group_id *ids = NULL;
	int n = 0, k = 0, cap;

	*g = NULL;
	if (!netns) /* 0 would list every namespace's groups */
		return 0;
	/* as many as there are (a server bound per interface has one group
	 * per address), listed again when more came meanwhile */
	for (int tries = 0; tries < 4; tries++) {
		cap = n + 4;
		free(ids);
		ids = calloc((size_t)cap, sizeof(*ids));
		n = ids ? sockmig_udp_group_list(NULL, netns, port, ids, cap) : -ENOMEM;
		if (n <= cap)
			break;
	}
	if (n > cap)
		n = cap;
	*g = n > 0 ? calloc((size_t)n, sizeof(**g)) : NULL;
	for (int i = 0; *g && i < n; i++) {
		(*g)[k] = sockmig_udp_group_open_name(ids[i].name, NULL);
		if ((*g)[k])
			k++;
	}
	free(ids);
	return k;
}

void run_udp_close_groups(struct sockmig_udp_group **g, int n)
{
	for (int i = 0; g && i < n; i++)
		sockmig_udp_group_close(g[i]);
	free(g);
}

bool run_udp_joined(struct runner *r, const struct generation *g)
{
	struct sockmig_udp_group **grp;
	struct sockmig_udp_member_info *m;
	int n = run_udp_open_groups(r->port, &grp);
	bool found = false;

	for (int i = 0; i < n && !found; i++) {
		int k = cli_udp_members(grp[i], &m);

		for (int j = 0; j < k && !found; j++)
			found = m[j].generation == g->ugen && m[j].role == SOCKMIG_ROLE_ACTIVE;
		free(m);
	}
	run_udp_close_groups(grp, n);
	return found;
}

/* @g's counters into @s: 0, or -1 when they could not be read. */
static int sums_read(struct sockmig_udp_group *g, struct run_udp_sums *s)
{
	SOCKMIG_OPTS(sockmig_udp_counters, c);
	struct sockmig_udp_stats st;

	memset(s, 0, sizeof(*s));
	if (sockmig_udp_stats_read(g, &st) < 0)
		return -1;
	if (sockmig_udp_counters_read(g, &c) == 0)
		s->old_gen = c.old_generation;
	s->hits = st.flow_hits;
	s->new_flows = st.new_flows;
	s->fallbacks = st.fallbacks;
	s->expired = st.expired;
	s->kernel_hash = st.kernel_hash;
	return 0;
}

/* @d += @now - @was, field by field (a counter never goes back; a group
 * upgraded since would: nothing then). */
static void sums_add(struct run_udp_sums *d, const struct run_udp_sums *now,
		     const struct run_udp_sums *was)
{
	const uint64_t *n = (const uint64_t *)now, *w = (const uint64_t *)was;
	uint64_t *o = (uint64_t *)d;

	for (size_t i = 0; i < sizeof(*d) / sizeof(uint64_t); i++)
		o[i] += n[i] >= w[i] ? n[i] - w[i] : 0;
}

static void mark_drop(struct run_udp_mark *m)
{
	run_udp_close_groups(m->g, m->n);
	free(m->at);
	m->g = NULL;
	m->at = NULL;
	m->n = 0;
}

void run_udp_mark_now(struct runner *r)
{
	struct run_udp_mark *m = &r->udp_mark;

	if (!r->udp)
		return;
	mark_drop(m);
	sockmig_udp_snmp_read(&m->snmp);
	m->ms = now_ms();
	m->n = run_udp_open_groups(r->port, &m->g);
	m->at = m->n ? calloc((size_t)m->n, sizeof(*m->at)) : NULL;
	if (!m->at) {
		mark_drop(m);
		return;
	}
	for (int i = 0; i < m->n; i++)
		sums_read(m->g[i], &m->at[i]);
}

/*
 * The groups' datagrams since the mark into @d: those of each group kept
 * from the mark (read through its handle: one that ended since, its last
 * server gone, counts what it had), and all of those of a group made
 * since (a name not marked, or marked but made again).
 */
static void udp_since_mark(struct runner *r, struct run_udp_sums *d)
{
	const struct run_udp_mark *m = &r->udp_mark;
	struct sockmig_udp_group **grp;
	struct run_udp_sums now, zero = {0};
	int n;

	memset(d, 0, sizeof(*d));
	for (int i = 0; i < m->n; i++)
		if (sums_read(m->g[i], &now) == 0)
			sums_add(d, &now, &m->at[i]);
	n = run_udp_open_groups(r->port, &grp);
	for (int i = 0; i < n; i++) {
		bool marked = false;

		for (int j = 0; j < m->n && !marked; j++)
			marked = strcmp(sockmig_udp_group_name(m->g[j]),
					sockmig_udp_group_name(grp[i])) == 0 &&
				 sockmig_udp_group_current(m->g[j]) == 1;
		if (!marked && sums_read(grp[i], &now) == 0)
			sums_add(d, &now, &zero);
	}
	run_udp_close_groups(grp, n);
}

/* Run's generation of UDP generation @ugen (0: none of ours). */
static unsigned gen_id(const struct runner *r, uint32_t ugen)
{
	for (int i = 0; i < MAX_GENS; i++)
		if (r->g[i].ugen == ugen && ugen)
			return r->g[i].id;
	return 0;
}

/* Flows per generation now, the generations of ours that have a member
 * (or are alive) included with 0. */
static void read_flows(const struct runner *r, struct run_udp_flows *out)
{
	struct sockmig_udp_group **grp;
	struct sockmig_udp_flow_count fc[RUN_UDP_GENS];
	int n = run_udp_open_groups(r->port, &grp);

	memset(out, 0, sizeof(*out));
	for (int i = 0; i < MAX_GENS && out->n < RUN_UDP_GENS; i++)
		if (r->g[i].state != G_FREE && r->g[i].ugen) {
			out->g[out->n].id = r->g[i].id;
			out->g[out->n++].ugen = r->g[i].ugen;
		}
	for (int i = 0; i < n; i++) {
		int k = sockmig_udp_flows(grp[i], fc, RUN_UDP_GENS);

		for (int j = 0; j < k && j < RUN_UDP_GENS; j++) {
			int s = 0;

			while (s < out->n && out->g[s].ugen != fc[j].generation)
				s++;
			if (s == out->n && out->n < RUN_UDP_GENS) {
				out->g[s].ugen = fc[j].generation;
				out->g[s].id = gen_id(r, fc[j].generation);
				out->n++;
			}
			if (s < out->n)
				out->g[s].flows += fc[j].flows;
		}
	}
	run_udp_close_groups(grp, n);
	/* oldest first, as sockmig_udp_flows() lists them */
	for (int i = 1; i < out->n; i++)
		for (int j = i; j > 0 && (int32_t)(out->g[j].ugen - out->g[j - 1].ugen) < 0; j--) {
			__typeof__(out->g[0]) t = out->g[j];

			out->g[j] = out->g[j - 1];
			out->g[j - 1] = t;
		}
}

void run_udp_reload_start(struct runner *r, const struct generation *cur)
{
	struct sockmig_udp_group **grp;
	int n;

	if (!r->udp)
		return;
	run_udp_mark_now(r);
	r->udp_start_ms = now_ms();
	r->udp_flip.n = 0;
	n = run_udp_open_groups(r->port, &grp);
	/* none of cur's sockets active (its workers restarting): the new
	 * generation takes new flows as it binds, as the shim does alone */
	for (int i = 0; cur && cur->ugen && i < n; i++)
		sockmig_udp_set_working(grp[i], cur->ugen);
	run_udp_close_groups(grp, n);
}

void run_udp_flip(struct runner *r, const struct generation *st)
{
	struct sockmig_udp_group **grp;
	int n;

	(void)st;
	if (!r->udp)
		return;
	read_flows(r, &r->udp_flip);
	n = run_udp_open_groups(r->port, &grp);
	for (int i = 0; i < n; i++)
		sockmig_udp_set_working(grp[i], SOCKMIG_UDP_GEN_NEWEST);
	run_udp_close_groups(grp, n);
}

void run_udp_drain(struct runner *r, const struct generation *g)
{
	struct sockmig_udp_group **grp;
	int n;

	if (!r->udp || !g->ugen)
		return;
	n = run_udp_open_groups(r->port, &grp);
	/* -EBUSY (its members are the last active ones: run stops) and
	 * -ENOENT (none left) change nothing */
	for (int i = 0; i < n; i++)
		sockmig_udp_generation_drain(grp[i], g->ugen);
	run_udp_close_groups(grp, n);
}

static void print_flows(const char *what, const struct run_udp_flows *f)
{
	printf("%s", what);
	for (int i = 0; i < f->n; i++) {
		if (f->g[i].id)
			printf("%s generation %u %llu", i ? "," : "", f->g[i].id,
			       (unsigned long long)f->g[i].flows);
		else
			printf("%s UDP generation %u %llu", i ? "," : "", f->g[i].ugen,
			       (unsigned long long)f->g[i].flows);
	}
	if (!f->n)
		printf(" none");
}

void run_udp_report(struct runner *r, unsigned id, bool older, unsigned long long took_ms)
{
	struct sockmig_udp_snmp was = r->udp_mark.snmp, *snmp = &r->udp_mark.snmp;
	unsigned long long since = r->udp_start_ms ? r->udp_start_ms : r->udp_mark.ms;
	struct run_udp_flows after;
	struct run_udp_sums d;

	if (!r->udp)
		return;
	udp_since_mark(r, &d);
	run_udp_mark_now(r); /* the next report's counts start here */
	read_flows(r, &after);
	printf("%s report (udp): generation %u%s stopped in %llu ms;",
	       r->stopping ? "stop" : "reload", id, older ? " and older" : "", took_ms);
	if (r->udp_flip.n)
		print_flows(" flows when the new generation was ready:", &r->udp_flip);
	print_flows(r->udp_flip.n ? "; flows now:" : " flows now:", &after);
	printf("; datagrams since the %s (%llu ms): %llu of known flows to their socket, %llu "
	       "to older generations, %llu new flows, %llu to the working generation from "
	       "closed sockets, %llu expired, %llu by the kernel's hash",
	       r->udp_start_ms ? "reload's start" : "last report",
	       since ? r->udp_mark.ms - since : 0ull, (unsigned long long)d.hits,
	       (unsigned long long)d.old_gen, (unsigned long long)d.new_flows,
	       (unsigned long long)d.fallbacks, (unsigned long long)d.expired,
	       (unsigned long long)d.kernel_hash);
	run_udp_end_print(r); /* "; at --grace: ..." */
	printf("; UdpRcvbufErrors +%llu, UdpInErrors +%llu\n",
	       (unsigned long long)(snmp->rcvbuf_errors >= was.rcvbuf_errors
					    ? snmp->rcvbuf_errors - was.rcvbuf_errors
					    : 0),
	       (unsigned long long)(snmp->in_errors >= was.in_errors
					    ? snmp->in_errors - was.in_errors
					    : 0));
	fflush(stdout);
	r->udp_flip.n = 0;
	r->udp_start_ms = 0;
}

void run_udp_mark_free(struct runner *r)
{
	mark_drop(&r->udp_mark);
}

void run_udp_leave(struct runner *r)
{
	struct sockmig_udp_group **grp;
	int n;

	if (!r->udp)
		return;
	n = run_udp_open_groups(r->port, &grp);
	/* a group with a live member is someone's: another server's socket;
	 * the collect decides under the group's lock, which a joiner takes too */
	for (int i = 0; i < n; i++)
		sockmig_udp_group_collect(grp[i]);
	run_udp_close_groups(grp, n);
}
