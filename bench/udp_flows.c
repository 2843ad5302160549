// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig bench udp: one strategy's run (see udp_bench.h). In a network
 * namespace of its own: generation 1 bound (and registered), the clients
 * started; a flip every o->flip_ms (a socket of the next generation bound,
 * served, registered; the one before drained); a generation closed
 * o->grace_ms after it was superseded; after o->secs the clients stop, the
 * server reads what is left (bounded), and every generation closes.
 * Strategy quic-lb routes by the connection IDs that the server minted
 * (udp_side.c), whatever 4-tuple a flow moves to (o->rebind_ms).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "udp_priv.h"

static const char *const names[UB_NSTRATEGIES] = {"naive", "flow", "none", "quic-lb"};

const char *udp_strategy_str(enum udp_strategy s)
{
	return s < UB_NSTRATEGIES ? names[s] : "?";
}

int udp_strategy_parse(const char *name)
{
	for (int i = 0; i < UB_NSTRATEGIES; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

uint64_t udp_bench_flows_total(const struct udp_bench_opts *o)
{
	uint64_t lives = (uint64_t)o->secs * 1000 / (o->flow_ms ? o->flow_ms : 1) + 2;

	return (uint64_t)o->flows * lives;
}

uint64_t udp_bench_tuples_total(const struct udp_bench_opts *o)
{
	/* a slot's rebindings are rebind_ms apart at least, within secs */
	uint64_t moves = o->rebind_ms ? (uint64_t)o->secs * 1000 / o->rebind_ms + 1 : 0;

	return udp_bench_flows_total(o) + (uint64_t)o->flows * moves;
}

/* The group of the strategy (none for naive): 0, or -1 with @err set. */
static int ub_group_open(struct ub *b, char *err, size_t errlen)
{
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .pin_root = ub_pin_root(),
		     .idle_timeout_ms = SOCKMIG_UDP_NO_EXPIRY);
	uint64_t table = udp_bench_tuples_total(b->o);

	switch (b->o->strategy) {
	case UB_NAIVE:
		return 0;
	case UB_FLOW:
		go.mode = SOCKMIG_UDP_MODE_FLOW;
		/* every flow of the run fits: none forgotten by the LRU */
		go.flow_max = table < 65536	   ? 65536
			      : table > (1u << 24) ? 1u << 24
						   : (uint32_t)table;
		break;
	case UB_NONE:
		go.mode = SOCKMIG_UDP_MODE_NONE;
		break;
	case UB_QUIC_LB:
		/* datagrams without a CID of the group are learned as in flow */
		go.mode = SOCKMIG_UDP_MODE_QUIC_LB;
		go.flow_max = table < 65536	   ? 65536
			      : table > (1u << 24) ? 1u << 24
						   : (uint32_t)table;
		break;
	default:
		snprintf(err, errlen, "unknown strategy");
		return -1;
	}
	b->g = sockmig_udp_group_open((struct sockaddr *)&b->addr, sizeof(b->addr), &go);
	if (!b->g) {
		snprintf(err, errlen, "cannot open the UDP group: %s", sockmig_last_error());
		return -1;
	}
	return 0;
}

/* A socket of the next generation: bound, served, registered. */
static struct ub_gen *ub_gen_new(struct ub *b, char *err, size_t errlen)
{
	struct ub_gen *gn = NULL;

	for (int i = 0; i < UB_MAX_LIVE && !gn; i++)
		if (!b->gens[i].used)
			gn = &b->gens[i];
	if (!gn) {
		snprintf(err, errlen, "more than %d generations alive", UB_MAX_LIVE);
		return NULL;
	}
	memset(gn, 0, sizeof(*gn));
	gn->b = b;
	gn->gen = ++b->next_gen;
	gn->fd = ub_server_socket(&b->addr);
	if (gn->fd < 0) {
		snprintf(err, errlen, "generation %u: %s", gn->gen, strerror(errno));
		return NULL;
	}
	gn->used = true;
	if (ub_gen_start(gn) < 0) {
		snprintf(err, errlen, "generation %u: no thread", gn->gen);
		ub_gen_close(b, gn);
		return NULL;
	}
	if (b->g) {
		SOCKMIG_OPTS(sockmig_udp_member_opts, mo, .generation = gn->gen);

		if (sockmig_udp_member_add(b->g, gn->fd, &mo) < 0) {
			snprintf(err, errlen, "generation %u: %s", gn->gen, sockmig_last_error());
			return NULL;
		}
	}
	return gn;
}

/* A flip: the next generation, then the newest one before it drained. */
static int ub_flip(struct ub *b, struct ub_gen **newest, char *err, size_t errlen)
{
	struct ub_gen *old = *newest, *gn = ub_gen_new(b, err, errlen);

	if (!gn)
		return -1;
	old->retire_ns = ub_now_ns();
	if (b->g) {
		int n = sockmig_udp_generation_drain(b->g, old->gen);

		if (n < 0) {
			snprintf(err, errlen, "drain of generation %u: %s", old->gen, strerror(-n));
			return -1;
		}
	}
	*newest = gn;
	return 0;
}

/* Close the generations whose grace has passed (@all: every one). */
static uint64_t ub_close_due(struct ub *b, uint64_t now, bool all)
{
	uint64_t grace = (uint64_t)b->o->grace_ms * 1000000ull, n = 0;

	for (int i = 0; i < UB_MAX_LIVE; i++) {
		struct ub_gen *gn = &b->gens[i];

		if (gn->used && (all || (gn->retire_ns && now >= gn->retire_ns + grace))) {
			ub_gen_close(b, gn);
			n++;
		}
	}
	return n;
}

/* After the load: wait until the server has read every datagram sent, or
 * nothing more came for 500 ms (at most 5 s). */
static void ub_settle(struct ub *b)
{
	uint64_t end = ub_now_ns() + 5000000000ull, last = ub_received(b), quiet = ub_now_ns();

	while (ub_now_ns() < end && ub_received(b) < atomic_load(&b->sent)) {
		uint64_t n;

		ub_sleep_ns(10000000);
		n = ub_received(b);
		if (n != last) {
			last = n;
			quiet = ub_now_ns();
		} else if (ub_now_ns() - quiet > 500000000ull) {
			break;
		}
	}
}

static void ub_group_stats(struct ub *b, struct udp_bench_result *r)
{
	struct sockmig_udp_stats st;
	struct sockmig_quic_stats q;

	if (b->g && sockmig_quic_stats_read(b->g, &q) == 0) {
		r->cid_hits = q.hits;
		r->cid_stale = q.stale;
		r->cid_other = q.other;
	}
	if (!b->g || sockmig_udp_stats_read(b->g, &st) < 0)
		return;
	r->new_flows = st.new_flows;
	r->flow_hits = st.flow_hits;
	r->fallbacks = st.fallbacks;
	r->stateless = st.stateless;
	r->kernel_hash = st.kernel_hash;
}

struct run_args {
	struct udp_bench_opts o;
	struct udp_bench_result r;
};

static void ub_child(void *arg)
{
	struct run_args *a = arg;
	struct udp_bench_result *r = &a->r;
	struct ub *b = calloc(1, sizeof(*b));
	struct ub_gen *newest;
	struct sockmig_udp_snmp e0, e1;
	uint64_t t0, end, next_flip, flip = (uint64_t)a->o.flip_ms * 1000000ull;

	if (!b || ub_netns_setup((uint64_t)a->o.flows + UB_MAX_LIVE + 256, r->error,
				 sizeof(r->error)) < 0)
		goto out;
	b->o = &a->o;
	b->addr.sin_family = AF_INET;
	b->addr.sin_port = htons((uint16_t)a->o.port);
	b->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	b->nflows = udp_bench_flows_total(&a->o);
	b->ntuples = udp_bench_tuples_total(&a->o);
	b->owner = calloc(b->nflows, sizeof(*b->owner));
	if (!b->owner) {
		snprintf(r->error, sizeof(r->error), "out of memory");
		goto out;
	}
	if (ub_group_open(b, r->error, sizeof(r->error)) < 0 ||
	    !(newest = ub_gen_new(b, r->error, sizeof(r->error))))
		goto out;
	sockmig_udp_snmp_read(&e0);
	t0 = ub_now_ns();
	end = t0 + (uint64_t)a->o.secs * 1000000000ull;
	next_flip = t0 + flip;
	if (ub_client_start(b) < 0) {
		snprintf(r->error, sizeof(r->error), "cannot start the clients");
		goto out;
	}
	for (uint64_t now = ub_now_ns(); now < end && !atomic_load(&b->client_done);
	     now = ub_now_ns()) {
		if (now >= next_flip) {
			if (ub_flip(b, &newest, r->error, sizeof(r->error)) < 0)
				break;
			r->flips++;
			next_flip += flip;
			if (next_flip <= now) /* behind: no flips in a burst */
				next_flip = now + flip;
		}
		r->closed += ub_close_due(b, now, false);
		ub_sleep_ns(1000000);
	}
	ub_client_join(b);
	r->elapsed = (double)(ub_now_ns() - t0) / 1e9;
	if (!r->error[0] && b->client_error[0])
		snprintf(r->error, sizeof(r->error), "clients: %s", b->client_error);
	ub_settle(b);
	ub_group_stats(b, r);
	ub_close_due(b, 0, true);
	sockmig_udp_snmp_read(&e1);
	r->flows = atomic_load(&b->flows_started);
	r->sent = atomic_load(&b->sent);
	r->send_errors = atomic_load(&b->send_errors);
	r->rebinds = atomic_load(&b->rebinds);
	r->cids = atomic_load(&b->cids);
	r->received = b->received;
	r->misroutes = b->misroutes;
	r->lost = r->sent > r->received ? r->sent - r->received : 0;
	r->rcvbuf_errors = e1.rcvbuf_errors - e0.rcvbuf_errors;
	r->in_errors = e1.in_errors - e0.in_errors;
out:
	if (b) {
		ub_client_join(b);
		ub_close_due(b, 0, true);
		if (b->g) {
			sockmig_udp_group_destroy(b->g);
			sockmig_udp_group_close(b->g);
		}
		free(b->owner);
	}
	free(b);
}

int udp_bench_run(const struct udp_bench_opts *o, struct udp_bench_result *r)
{
	struct run_args *a = calloc(1, sizeof(*a));
	int err;

	memset(r, 0, sizeof(*r));
	if (!a) {
		snprintf(r->error, sizeof(r->error), "out of memory");
		return -1;
	}
	if (o->strategy >= UB_NSTRATEGIES || !o->flows || !o->rate || !o->flip_ms || !o->secs ||
	    !o->flow_ms || udp_bench_tuples_total(o) > UB_MAX_FLOWS_TOTAL ||
	    o->grace_ms / o->flip_ms + 2 > UB_MAX_LIVE) {
		snprintf(r->error, sizeof(r->error), "bad options");
		free(a);
		return -1;
	}
	a->o = *o;
	err = ub_in_child(ub_child, a, sizeof(*a), a->r.error, sizeof(a->r.error));
	*r = a->r;
	free(a);
	return err;
}
