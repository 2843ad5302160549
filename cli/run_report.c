// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sockmig run: what a reload moved, and the server listeners it cannot cover. */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/fsuid.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "diag.h"
#include "run.h"

#define CHECK_EVERY_MS 200

void run_note_listeners(struct runner *r)
{
	for (int j = 0; j < r->sc.nk; j++) {
		const struct known *k = &r->sc.k[j];
		struct generation *g;
		bool noted = false;

		if (k->holder || k->gone_ms)
			continue;
		g = run_gen_of_pid(r, k->owner);
		for (int i = 0; g && i < g->nck && !noted; i++)
			noted = g->ck[i].cookie == k->cookie;
		if (!g || noted || g->nck >= GEN_LISTENERS)
			continue;
		g->ck[g->nck].cookie = k->cookie;
		snprintf(g->ck[g->nck].group, sizeof(g->ck[g->nck].group), "%s", k->group);
		g->nck++;
	}
}

void run_gen_finished(struct runner *r, struct generation *g)
{
	if (r->listen_fd >= 0) {
		unsigned long long took = now_ms() - g->stopping;

		printf("%s report: generation %u stopped in %llu ms; the listener is "
		       "sockmig run's: nothing to migrate\n",
		       r->stopping ? "stop" : "reload", g->id, took);
		fflush(stdout);
		run_udp_report(r, g->id, false, took); /* --proto all: its UDP line */
		return;
	}
	/* its members stay in the group a few seconds after they closed */
	for (int i = 0; i < g->nck; i++) {
		struct sockmig_group *grp = sockmig_group_open_name(g->ck[i].group, NULL);
		struct sockmig_counters c;

		if (grp && sockmig_counters_read(grp, g->ck[i].cookie, &c) == 0) {
			for (int k = 0; k < SOCKMIG_KIND_MAX; k++)
				r->pend.out[k] += c.migrated_out[k];
			r->pend.cancelled += c.cancel_mismatch;
			r->pend.deferred += c.deferred;
		}
		sockmig_group_close(grp);
	}
	r->pend.n++;
	r->pend.id = g->id;
	r->pend.took_ms = now_ms() - g->stopping;
}

/*
 * One report per reload, once it is complete: the old generation gone and
 * the new one ready (with --stop-start the holder hands what waited on to
 * it). "migrated" is the kernel's TCPMigrateReqSuccess since the last
 * report (or run's start), so the reports add up to the kernel's count;
 * the kinds are the policy's counters of the stopped listeners.
 */
void run_report_flush(struct runner *r, bool now)
{
	struct sockmig_netstat ns, d;
	const struct run_pending *p = &r->pend;
	char lost[160] = "lost none";

	if (!p->n || (!now && (run_gen_state(r, G_STARTING) || r->reload_pending)))
		return;
	if (sockmig_netstat_read(&ns) < 0)
		ns = r->ns_mark;
	sockmig_netstat_delta(&r->ns_mark, &ns, &d);
	if (d.migrate_failure || d.embryonic_rsts)
		snprintf(lost, sizeof(lost),
			 "kernel: %llu TCPMigrateReqFailure, %llu EmbryonicRsts",
			 (unsigned long long)d.migrate_failure,
			 (unsigned long long)d.embryonic_rsts);
	if (r->tcp) /* --proto udp: the UDP line alone */
		printf("%s report: generation %u%s drained and stopped in %llu ms: migrated %llu "
		       "(by kind: established %llu, tfo %llu, req-timer %llu, req-ack %llu; %llu "
		       "handed on by the holder); cancelled %llu, hashed %llu; %s\n",
		       r->stopping ? "stop" : "reload", p->id, p->n > 1 ? " and older" : "",
		       p->took_ms, (unsigned long long)d.migrate_success,
		       (unsigned long long)p->out[SOCKMIG_KIND_ESTABLISHED],
		       (unsigned long long)p->out[SOCKMIG_KIND_TFO],
		       (unsigned long long)p->out[SOCKMIG_KIND_REQ_TIMER],
		       (unsigned long long)p->out[SOCKMIG_KIND_REQ_ACK],
		       (unsigned long long)(r->h.moved - r->holder_mark),
		       (unsigned long long)p->cancelled, (unsigned long long)p->deferred, lost);
	fflush(stdout);
	run_udp_report(r, p->id, p->n > 1, p->took_ms);
	r->ns_mark = ns;
	r->holder_mark = r->h.moved;
	memset(&r->pend, 0, sizeof(r->pend));
}

/* "ADDR:PORT" of @l. */
static void where(const struct sm_listener *l, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(l->family, &l->addr, a, sizeof(a));
	snprintf(buf, len, l->family == AF_INET6 ? "[%s]:%d" : "%s:%d", a, l->port);
}

static bool registered(const struct runner *r, uint64_t cookie)
{
	for (int j = 0; j < r->sc.nk; j++)
		if (r->sc.k[j].cookie == cookie)
			return true;
	return false;
}

/* Run keeps @l (a copy of the server's) and hands it to every generation. */
static bool hand_off(struct runner *r, const struct sm_listener *l)
{
	int fd;

	if (!run_find_preload(r->preload, sizeof(r->preload)))
		return false;
	fd = take_listener(l, true);
	if (fd < 0)
		return false;
	if (r->h.lh)
		holder_close(&r->h, false);
	r->use_holder = false;
	r->listen_fd = fd;
	r->handoff = true;
	return true;
}

void run_check_listeners(struct runner *r, struct generation *st)
{
	unsigned long long now = now_ms();
	struct sm_listener *ls = NULL;
	const struct sm_listener *l = NULL;
	int n, mine = 0;
	bool unknown = false;
	char at[80];

	/* only while nothing of ours serves: a reload's failure is a rollback */
	if (now < r->check_at || run_own_ready(r))
		return;
	r->check_at = now + CHECK_EVERY_MS;
	n = sm_diag_dump(0, r->port, &ls);
	for (int i = 0; i < n; i++)
		unknown |= !registered(r, ls[i].cookie);
	if (unknown && sm_diag_owners(ls, n) == 0) {
		for (int i = 0; i < n; i++) {
			bool of_st = false;

			for (int o = 0; o < ls[i].nowners && !of_st; o++)
				of_st = run_gen_of_pid(r, ls[i].owners[o].pid) == st;
			if (!of_st || registered(r, ls[i].cookie))
				continue;
			l = l ? l : &ls[i];
			mine++;
		}
	}
	/* another reason than SO_REUSEPORT (a scan to come): not ours to judge */
	if (!l || sm_diag_reuseport(l) != 0) {
		free(ls);
		return;
	}
	where(l, at, sizeof(at));
	if (mine == 1 && hand_off(r, l)) {
		printf("sockmig run: the server's listener on %s has no SO_REUSEPORT, so no "
		       "other socket can share its port: run keeps it and hands it to every "
		       "generation (--handoff; SOCKMIG_REUSEPORT=1 with the shim would set it)\n",
		       at);
		fflush(stdout);
	} else {
		cli_error("run: the server's listener on %s has no SO_REUSEPORT, so sockmig cannot "
			  "cover its restarts%s: set it (SOCKMIG_REUSEPORT=1 with "
			  "libsockmig-preload.so) or use --handoff, which needs none",
			  at,
			  mine > 1 ? " (and run hands off one listener, not several)"
				   : " (run could not take it over)");
		r->refused = true;
	}
	free(ls);
}

void run_check_addr(struct runner *r, const struct known *k)
{
	struct sm_listener *ls = NULL, *l = NULL;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&r->h.addr;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&r->h.addr;
	char at[80], hat[80];
	int n;

	if (r->addr_warned)
		return;
	n = sm_diag_dump(0, r->port, &ls);
	for (int i = 0; i < n && !l; i++)
		if (ls[i].cookie == k->cookie)
			l = &ls[i];
	if (!l) {
		free(ls);
		return;
	}
	where(l, at, sizeof(at));
	if (!r->h.follow &&
	    (l->family != r->h.addr.ss_family ||
	     (l->family == AF_INET ? sin->sin_addr.s_addr != l->addr.v4.s_addr
				   : memcmp(&sin6->sin6_addr, &l->addr.v6, sizeof(l->addr.v6))))) {
		struct sm_listener h = {.family = r->h.addr.ss_family, .port = r->port};

		if (h.family == AF_INET)
			h.addr.v4 = sin->sin_addr;
		else
			h.addr.v6 = sin6->sin6_addr;
		where(&h, hat, sizeof(hat));
		printf("sockmig run: the server listens on %s, the holder on %s (--addr): a "
		       "SO_REUSEPORT group is one address, so the holder cannot cover the "
		       "server's restarts; give --addr the server's address\n",
		       at, hat);
		r->addr_warned = true;
	} else if (l->uid != r->h.uid) {
		printf("sockmig run: the server's listener on %s belongs to uid %u, the holder "
		       "to uid %u: the kernel admits one uid per SO_REUSEPORT group; give "
		       "--user the server's user\n",
		       at, (unsigned)l->uid, (unsigned)r->h.uid);
		r->addr_warned = true;
	}
	fflush(stdout);
	free(ls);
}
