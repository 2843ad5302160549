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
	const char *old = getenv("LD_PRELOAD");
	char pre[1100], gen[16];

	snprintf(pre, sizeof(pre), "%s%s%s", r->preload, old && *old ? ":" : "", old ? old : "");
	setenv("LD_PRELOAD", pre, 1);
	if (r->handoff) {
		setenv("SOCKMIG_HANDOFF", "1", 1);
		return;
	}
	snprintf(gen, sizeof(gen), "%u", g->ugen);
	setenv("SOCKMIG_REUSEPORT", "udp", 1);
	setenv("SOCKMIG_GENERATION", gen, 1);
}

int run_udp_open_groups(int port, struct sockmig_udp_group **g)
{
	struct sockmig_group_id ids[RUN_UDP_GROUPS];
	int n = sockmig_udp_group_list(NULL, sockmig_netns_self(), port, ids, RUN_UDP_GROUPS),
	    k = 0;

	for (int i = 0; i < n && i < RUN_UDP_GROUPS; i++) {
		g[k] = sockmig_udp_group_open_name(ids[i].name, NULL);
		if (g[k])
			k++;
	}
	return k;
}

void run_udp_close_groups(struct sockmig_udp_group **g, int n)
{
	for (int i = 0; i < n; i++)
		sockmig_udp_group_close(g[i]);
}

bool run_udp_joined(struct runner *r, const struct generation *g)
{
	struct sockmig_udp_group *grp[RUN_UDP_GROUPS];
	struct sockmig_udp_member_info *m;
	int n = run_udp_open_groups(r->port, grp);
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

void run_udp_mark_now(struct runner *r)
{
	struct sockmig_udp_group *grp[RUN_UDP_GROUPS];
	struct run_udp_mark *m = &r->udp_mark;
	int n;

	if (!r->udp)
		return;
	sockmig_udp_snmp_read(&m->snmp);
	m->hits = m->new_flows = m->fallbacks = m->expired = m->kernel_hash = m->old_gen = 0;
	n = run_udp_open_groups(r->port, grp);
	for (int i = 0; i < n; i++) {
		SOCKMIG_OPTS(sockmig_udp_counters, c);
		struct sockmig_udp_stats st;

		if (sockmig_udp_stats_read(grp[i], &st) < 0)
			continue;
		if (sockmig_udp_counters_read(grp[i], &c) == 0)
			m->old_gen += c.old_generation;
		m->hits += st.flow_hits;
		m->new_flows += st.new_flows;
		m->fallbacks += st.fallbacks;
		m->expired += st.expired;
		m->kernel_hash += st.kernel_hash;
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
	struct sockmig_udp_group *grp[RUN_UDP_GROUPS];
	struct sockmig_udp_flow_count fc[RUN_UDP_GENS];
	int n = run_udp_open_groups(r->port, grp);

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
	struct sockmig_udp_group *grp[RUN_UDP_GROUPS];
	int n;

	if (!r->udp || r->handoff)
		return;
	run_udp_mark_now(r);
	r->udp_start_ms = now_ms();
	r->udp_flip.n = 0;
	n = run_udp_open_groups(r->port, grp);
	/* none of cur's sockets active (its workers restarting): the new
	 * generation takes new flows as it binds, as the shim does alone */
	for (int i = 0; cur && cur->ugen && i < n; i++)
		sockmig_udp_set_working(grp[i], cur->ugen);
	run_udp_close_groups(grp, n);
}

void run_udp_flip(struct runner *r, const struct generation *st)
{
	struct sockmig_udp_group *grp[RUN_UDP_GROUPS];
	int n;

	(void)st;
	if (!r->udp || r->handoff)
		return;
	read_flows(r, &r->udp_flip);
	n = run_udp_open_groups(r->port, grp);
	for (int i = 0; i < n; i++)
		sockmig_udp_set_working(grp[i], SOCKMIG_UDP_GEN_NEWEST);
	run_udp_close_groups(grp, n);
}

void run_udp_drain(struct runner *r, const struct generation *g)
{
	struct sockmig_udp_group *grp[RUN_UDP_GROUPS];
	int n;

	if (!r->udp || r->handoff || !g->ugen)
		return;
	n = run_udp_open_groups(r->port, grp);
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
	struct run_udp_mark was = r->udp_mark, *now = &r->udp_mark;
	struct run_udp_flows after;

	if (!r->udp)
		return;
	if (r->handoff) {
		printf("%s report (udp): generation %u stopped in %llu ms; UDP is not covered "
		       "with the listener hand-off\n",
		       r->stopping ? "stop" : "reload", id, took_ms);
		fflush(stdout);
		return;
	}
	run_udp_mark_now(r);
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
	       r->udp_start_ms ? now_ms() - r->udp_start_ms : 0ull,
	       (unsigned long long)(now->hits - was.hits),
	       (unsigned long long)(now->old_gen - was.old_gen),
	       (unsigned long long)(now->new_flows - was.new_flows),
	       (unsigned long long)(now->fallbacks - was.fallbacks),
	       (unsigned long long)(now->expired - was.expired),
	       (unsigned long long)(now->kernel_hash - was.kernel_hash));
	run_udp_end_print(r); /* "; at --grace: ..." */
	printf("; UdpRcvbufErrors +%llu, UdpInErrors +%llu\n",
	       (unsigned long long)(now->snmp.rcvbuf_errors - was.snmp.rcvbuf_errors),
	       (unsigned long long)(now->snmp.in_errors - was.snmp.in_errors));
	fflush(stdout);
	r->udp_flip.n = 0;
	r->udp_start_ms = 0;
}

void run_udp_leave(struct runner *r)
{
	struct sockmig_udp_group *grp[RUN_UDP_GROUPS];
	int n;

	if (!r->udp || r->handoff)
		return;
	n = run_udp_open_groups(r->port, grp);
	/* a group with a live member is someone's: another server's socket;
	 * the collect decides under the group's lock, which a joiner takes too */
	for (int i = 0; i < n; i++)
		sockmig_udp_group_collect(grp[i]);
	run_udp_close_groups(grp, n);
}
