// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig watch: one line per interval and group with what the policy
 * steered, migrated, cancelled and deferred, and the network namespace's
 * kernel counters (migrations, drops, resets); every drain from the
 * group's event ring (lib/events.c), which outlives the drained member;
 * a report when a generation has finished draining (all its listeners
 * stopped listening); and at the end, the totals: drains, what they
 * migrated, and the kernel's TCPMigrateReqSuccess/Failure over the watch.
 * The UDP groups' counters follow each interval's TCP lines (watch_udp.c).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "sockmig.h"
#include "watch_udp.h"

#define MAX_MEMBERS 512
#define MAX_GENS    64

struct gen_state {
	uint32_t gen;
	int live; /* members of it still listening */
	bool reported;
	struct sockmig_counters c;  /* summed over its members */
	struct sockmig_netstat ns0; /* kernel counters when it started draining */
	bool draining;
};

struct watched {
	char name[SOCKMIG_NAME_MAX];
	uint64_t ring_id, seq;		 /* the event ring read up to seq */
	uint64_t drains, drain_migrated; /* in this interval, from the ring */
	struct sockmig_counters total, last;
	struct gen_state gens[MAX_GENS];
	int ngens;
};

static volatile sig_atomic_t stop_watch;

/* Over the whole watch, every group. */
static struct {
	uint64_t drains, lost, migrated;
} totals;

static void on_stop(int sig)
{
	(void)sig;
	stop_watch = 1;
}

static void add_counters(struct sockmig_counters *to, const struct sockmig_counters *c)
{
	to->steered += c->steered;
	for (int k = 0; k < SOCKMIG_KIND_MAX; k++) {
		to->migrated_in[k] += c->migrated_in[k];
		to->migrated_out[k] += c->migrated_out[k];
	}
	to->cancel_mismatch += c->cancel_mismatch;
	to->deferred += c->deferred;
	to->kicked += c->kicked;
}

/* a - b, or 0 when members were forgotten in between */
static unsigned long long sub(uint64_t a, uint64_t b)
{
	return a > b ? (unsigned long long)(a - b) : 0;
}

static uint64_t migrated(const struct sockmig_counters *c)
{
	uint64_t n = 0;

	for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
		n += c->migrated_out[k];
	return n;
}

static struct gen_state *gen_of(struct watched *w, uint32_t gen)
{
	for (int i = 0; i < w->ngens; i++)
		if (w->gens[i].gen == gen)
			return &w->gens[i];
	if (w->ngens == MAX_GENS) {
		memmove(w->gens, w->gens + 1, sizeof(w->gens[0]) * (MAX_GENS - 1));
		w->ngens--;
	}
	memset(&w->gens[w->ngens], 0, sizeof(w->gens[0]));
	w->gens[w->ngens].gen = gen;
	return &w->gens[w->ngens++];
}

/* Sample one group: its totals, and the generations that just finished. */
static void sample(struct watched *w, const struct sockmig_netstat *ns, bool report)
{
	struct sockmig_member_info *m = calloc(MAX_MEMBERS, sizeof(*m));
	struct sockmig_group *g = sockmig_group_open_name(w->name, NULL);
	uint32_t newest = 0;
	int n;

	memset(&w->total, 0, sizeof(w->total));
	if (!g || !m) {
		free(m);
		sockmig_group_close(g);
		return;
	}
	n = sockmig_members(g, m, MAX_MEMBERS);
	for (int i = 0; i < w->ngens; i++) {
		w->gens[i].live = 0;
		memset(&w->gens[i].c, 0, sizeof(w->gens[i].c));
	}
	for (int i = 0; i < n && i < MAX_MEMBERS; i++) {
		struct gen_state *gs = gen_of(w, m[i].generation);

		add_counters(&w->total, &m[i].counters);
		add_counters(&gs->c, &m[i].counters);
		if (m[i].listening) {
			gs->live++;
			if (m[i].role == SOCKMIG_ROLE_ACTIVE && m[i].generation > newest)
				newest = m[i].generation;
		}
		if (m[i].role == SOCKMIG_ROLE_DRAINING && !gs->draining) {
			gs->draining = true;
			gs->ns0 = *ns;
		}
	}
	for (int i = 0; report && i < w->ngens; i++) {
		struct gen_state *gs = &w->gens[i];
		struct sockmig_netstat d;

		if (gs->reported || gs->live || gs->gen >= newest || !newest)
			continue;
		gs->reported = true;
		if (!gs->draining)
			gs->ns0 = *ns;
		sockmig_netstat_delta(&gs->ns0, ns, &d);
		if (json_output) {
			jw_open(NULL, '{');
			jw_str("event", "generation-drained");
			jw_str("group", w->name);
			jw_u64("generation", gs->gen);
			jw_u64("migrated", migrated(&gs->c));
			jw_u64("cancelled", gs->c.cancel_mismatch);
			jw_u64("deferred", gs->c.deferred);
			jw_u64("kernel_migrate_failures", d.migrate_failure);
			jw_u64("kernel_embryonic_rsts", d.embryonic_rsts);
			jw_close('}');
			jw_end();
		} else {
			printf("reload: %s generation %u drained: migrated %llu (established %llu, "
			       "tfo %llu, req-timer %llu, req-ack %llu), cancelled %llu, deferred "
			       "%llu; kernel meanwhile: %llu failed migrations, %llu embryonic "
			       "resets\n",
			       w->name, gs->gen, (unsigned long long)migrated(&gs->c),
			       (unsigned long long)gs->c.migrated_out[0],
			       (unsigned long long)gs->c.migrated_out[1],
			       (unsigned long long)gs->c.migrated_out[2],
			       (unsigned long long)gs->c.migrated_out[3],
			       (unsigned long long)gs->c.cancel_mismatch,
			       (unsigned long long)gs->c.deferred,
			       (unsigned long long)d.migrate_failure,
			       (unsigned long long)d.embryonic_rsts);
		}
	}
	sockmig_group_close(g);
	free(m);
}

static void print_drain(struct watched *w, const struct sockmig_event *e)
{
	const char *group = w->name;
	uint64_t m = 0;

	for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
		m += e->migrated[k];
	totals.drains++;
	totals.migrated += m;
	w->drains++;
	w->drain_migrated += m;
	if (json_output) {
		jw_open(NULL, '{');
		jw_str("event", "drain");
		jw_str("group", group);
		jw_u64("seq", e->seq);
		jw_u64("time_ns", e->time_ns);
		jw_u64("cookie", e->cookie);
		jw_str("type", e->type == SOCKMIG_EVENT_DRAIN_LEGACY ? "legacy" : "native");
		jw_str("role", sockmig_role_str((enum sockmig_role)e->role));
		jw_u64("generation", e->generation);
		jw_u64("pid", e->pid);
		jw_u64("wait_ns", e->wait_ns);
		jw_u64("inflight_left", e->inflight_left);
		jw_u64("duration_ns", e->duration_ns);
		jw_u64("migrated", m);
		jw_u64("established", e->migrated[SOCKMIG_KIND_ESTABLISHED]);
		jw_u64("tfo", e->migrated[SOCKMIG_KIND_TFO]);
		jw_u64("req_timer", e->migrated[SOCKMIG_KIND_REQ_TIMER]);
		jw_u64("req_ack", e->migrated[SOCKMIG_KIND_REQ_ACK]);
		jw_u64("cancelled", e->cancelled);
		jw_u64("deferred", e->deferred);
		jw_close('}');
		jw_end();
		return;
	}
	printf("drain: %s #%llu cookie %llu generation %u (%s%s): waited %.1f ms, %u in flight "
	       "left, drained in %.1f ms; migrated %llu (established %llu, tfo %llu, req-timer "
	       "%llu, req-ack %llu), cancelled %llu, deferred %llu\n",
	       group, (unsigned long long)e->seq, (unsigned long long)e->cookie, e->generation,
	       sockmig_role_str((enum sockmig_role)e->role),
	       e->type == SOCKMIG_EVENT_DRAIN_LEGACY ? ", legacy" : "", (double)e->wait_ns / 1e6,
	       e->inflight_left, (double)e->duration_ns / 1e6, (unsigned long long)m,
	       (unsigned long long)e->migrated[0], (unsigned long long)e->migrated[1],
	       (unsigned long long)e->migrated[2], (unsigned long long)e->migrated[3],
	       (unsigned long long)e->cancelled, (unsigned long long)e->deferred);
}

/* Print the drains of @w's ring not seen yet; with !report only skip to its head. */
static void read_events(struct watched *w, bool report)
{
	struct sockmig_group *g = sockmig_group_open_name(w->name, NULL);
	struct sockmig_event ev[32];
	struct sockmig_event_ring r;
	int n;

	if (!g)
		return; /* gone: its ring went with it */
	if (sockmig_group_event_ring(g, &r) < 0 || !r.id)
		goto out;
	if (r.id != w->ring_id) {
		/* a ring first seen, or the group made again: all of it is new */
		w->ring_id = r.id;
		w->seq = 0;
	}
	if (!report) {
		w->seq = r.head;
		goto out;
	}
	while ((n = sockmig_group_events(g, w->seq, ev, 32)) > 0) {
		if (ev[0].seq > w->seq + 1) {
			uint64_t lost = ev[0].seq - w->seq - 1;

			totals.lost += lost;
			if (json_output) {
				jw_open(NULL, '{');
				jw_str("event", "events-lost");
				jw_str("group", w->name);
				jw_u64("lost", lost);
				jw_close('}');
				jw_end();
			} else {
				printf("drain: %s: the event ring overflowed (%d events): %llu "
				       "drains "
				       "lost\n",
				       w->name, SOCKMIG_EVENT_RING, (unsigned long long)lost);
			}
		}
		for (int i = 0; i < n; i++)
			print_drain(w, &ev[i]);
		w->seq = ev[n - 1].seq;
	}
out:
	sockmig_group_close(g);
}

/* Groups of this network namespace (and port, if given), however many:
 * the new ones join *@w; -1 when they cannot be read. */
static int list_groups(int port, struct watched **w, int *nw, int *cap)
{
	char(*names)[SOCKMIG_NAME_MAX];
	int n = cli_group_names(port, &names);

	for (int i = 0; i < n; i++) {
		bool known = false;

		for (int j = 0; j < *nw && !known; j++)
			known = strcmp((*w)[j].name, names[i]) == 0;
		if (known)
			continue;
		if (*nw == *cap) {
			struct watched *bigger = realloc(*w, (size_t)(*cap * 2) * sizeof(**w));

			if (!bigger)
				break;
			*w = bigger;
			*cap *= 2;
		}
		memset(&(*w)[*nw], 0, sizeof(**w));
		snprintf((*w)[(*nw)++].name, SOCKMIG_NAME_MAX, "%s", names[i]);
	}
	free(names);
	return n < 0 ? -1 : 0;
}

static void watch_usage(FILE *f)
{
	fprintf(f, "Usage: sockmig watch [--port P] [--interval MS] [--count N]\n"
		   "  -P, --port P       only the groups of port P (1-65535)\n"
		   "  -i, --interval MS  one line per group every MS ms (10-3600000, default "
		   "1000)\n"
		   "  -c, --count N      stop after N intervals (default: at SIGINT or SIGTERM)\n"
		   "  -j, --json         JSON lines\n"
		   "  -h, --help         this text\n");
}

int do_watch(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_stop};
	struct sockmig_netstat ns0, ns1, d, start;
	int opt, port = 0, nw = 0, cap = 16;
	struct watched *w;
	struct udp_watch uw = {0};
	uint64_t interval = 1000, count = 0;
	const struct cli_opt opts[] = {
		{"port", 'P', CLI_PORT, &port},
		{"interval", 'i', CLI_U64, &interval, 10, 3600000},
		{"count", 'c', CLI_U64, &count, 1, UINT32_MAX},
		{0},
	};

	opt = cli_parse("watch", argc, argv, opts, 0, watch_usage);
	if (opt <= 0)
		return opt == 0 ? 0 : 2;
	w = calloc((size_t)cap, sizeof(*w));
	if (!w)
		return 1;
	if (sockmig_netstat_read(&ns0) < 0) {
		cli_error("%s", sockmig_last_error());
		free(w);
		return 1;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	list_groups(port, &w, &nw, &cap);
	for (int i = 0; i < nw; i++) {
		sample(&w[i], &ns0, false);
		read_events(&w[i], false);
		w[i].last = w[i].total;
	}
	watch_udp_list(&uw, port, true);
	start = ns0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* from here on, every drain and migration is counted */
	if (json_output) {
		jw_open(NULL, '{');
		jw_str("event", "start");
		jw_u64("groups", (uint64_t)nw);
		jw_u64("interval_ms", interval);
		jw_u64("udp_groups", (uint64_t)uw.n);
		jw_close('}');
		jw_end();
	} else if (uw.n) {
		printf("watch: %d group%s and %d UDP group%s, every %llu ms\n", nw,
		       nw == 1 ? "" : "s", uw.n, uw.n == 1 ? "" : "s",
		       (unsigned long long)interval);
	} else {
		printf("watch: %d group%s, every %llu ms\n", nw, nw == 1 ? "" : "s",
		       (unsigned long long)interval);
	}
	for (uint64_t round = 0; !stop_watch && (!count || round < count); round++) {
		struct timespec ts = {.tv_sec = (time_t)(interval / 1000),
				      .tv_nsec = (long)(interval % 1000) * 1000000L};
		char stamp[16];
		time_t now;

		nanosleep(&ts, NULL);
		sockmig_netstat_read(&ns1);
		sockmig_netstat_delta(&ns0, &ns1, &d);
		ns0 = ns1;
		list_groups(port, &w, &nw, &cap);
		now = time(NULL);
		strftime(stamp, sizeof(stamp), "%H:%M:%S", localtime(&now));
		for (int i = 0; i < nw; i++) {
			const struct sockmig_counters *t = &w[i].total, *l = &w[i].last;

			read_events(&w[i], true);
			sample(&w[i], &ns1, true);
			if (json_output) {
				jw_open(NULL, '{');
				jw_str("time", stamp);
				jw_str("group", w[i].name);
				jw_u64("steered", sub(t->steered, l->steered));
				jw_u64("migrated", sub(migrated(t), migrated(l)));
				jw_u64("drains", w[i].drains);
				jw_u64("drain_migrated", w[i].drain_migrated);
				jw_u64("cancelled", sub(t->cancel_mismatch, l->cancel_mismatch));
				jw_u64("deferred", sub(t->deferred, l->deferred));
				jw_netstat(&d);
				jw_close('}');
				jw_end();
			} else {
				printf("%s %s steered %llu migrated %llu cancelled %llu deferred "
				       "%llu drains %llu (migrated %llu)"
				       " | kernel: migrated %llu failed %llu drops %llu overflows "
				       "%llu "
				       "embryonic-rst %llu abort-on-close %llu\n",
				       stamp, w[i].name, sub(t->steered, l->steered),
				       sub(migrated(t), migrated(l)),
				       sub(t->cancel_mismatch, l->cancel_mismatch),
				       sub(t->deferred, l->deferred),
				       (unsigned long long)w[i].drains,
				       (unsigned long long)w[i].drain_migrated,
				       (unsigned long long)d.migrate_success,
				       (unsigned long long)d.migrate_failure,
				       (unsigned long long)d.listen_drops,
				       (unsigned long long)d.listen_overflows,
				       (unsigned long long)d.embryonic_rsts,
				       (unsigned long long)d.abort_on_close);
			}
			w[i].last = w[i].total;
			w[i].drains = w[i].drain_migrated = 0;
		}
		watch_udp_list(&uw, port, false);
		watch_udp_round(&uw, stamp);
		if (!nw && !uw.n && !json_output)
			printf("%s no attached group%s\n", stamp, port ? " on that port" : "");
	}
	/* the last round ran after the signal: the totals cover the whole watch */
	sockmig_netstat_delta(&start, &ns0, &d);
	if (json_output) {
		jw_open(NULL, '{');
		jw_str("event", "total");
		jw_u64("drains", totals.drains);
		jw_u64("lost", totals.lost);
		jw_u64("migrated", totals.migrated);
		jw_u64("TCPMigrateReqSuccess", d.migrate_success);
		jw_u64("TCPMigrateReqFailure", d.migrate_failure);
		jw_close('}');
		jw_end();
	} else {
		printf("total: %llu drains (%llu lost to the ring), migrated %llu | kernel: "
		       "migrated "
		       "%llu failed %llu\n",
		       (unsigned long long)totals.drains, (unsigned long long)totals.lost,
		       (unsigned long long)totals.migrated, (unsigned long long)d.migrate_success,
		       (unsigned long long)d.migrate_failure);
	}
	watch_udp_free(&uw);
	free(w);
	return 0;
}
