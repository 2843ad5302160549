// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sockmig bench cost: the policy's accept rate against the kernel's hash,
 * and its program's run time from the kernel's BPF statistics; see storm.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "burst.h"
#include "storm_priv.h"

struct cost_args {
	struct cost_result r;
	int phases;
	double phase_secs;
};

/* The program pinned for group @g, or -1 with @err set. */
static int prog_of(struct sockmig_group *g, char *err, size_t errlen)
{
	char pin[4096];
	int fd;

	snprintf(pin, sizeof(pin), "%s/prog", sockmig_group_path(g));
	fd = bpf_obj_get(pin);
	if (fd < 0)
		snprintf(err, errlen, "cannot open the group's program %s: %s", pin,
			 strerror(errno));
	return fd;
}

/* Members of the migration step, and the clients queued on them. */
#define MIG_LISTENERS 4
#define MIG_CLIENTS   2000

/*
 * The migration path's cost: MIG_LISTENERS members of a group of their own
 * (the next port), none accepting, MIG_CLIENTS connections queued on them;
 * then every member but the last closes, and the kernel migrates each
 * queued child under the policy (one run per child, kind "established").
 * The stats' delta over the closes is the migration runs' alone: no SYN
 * arrives meanwhile.
 */
static int cost_migration(const struct storm_opts *o, int prog_port, struct cost_result *r)
{
	SOCKMIG_OPTS(sockmig_member_opts, mo, .role = SOCKMIG_ROLE_ACTIVE, .generation = 1);
	struct sockmig_member_info mi[MIG_LISTENERS];
	struct burst *c = calloc(1, sizeof(*c));
	struct sockmig_group *g = NULL;
	struct prog_stats s0, s1;
	int l[MIG_LISTENERS], pfd = -1, queued = 0, n, ret = -1;

	for (int i = 0; i < MIG_LISTENERS; i++)
		l[i] = -1;
	if (!c)
		goto out;
	for (int i = 0; i < MIG_LISTENERS; i++) {
		l[i] = burst_listener(o->family, prog_port, MIG_CLIENTS, 0);
		if (l[i] < 0) {
			snprintf(r->error, sizeof(r->error), "migration step: no listener: %s",
				 strerror(-l[i]));
			goto out;
		}
	}
	g = sockmig_group_open(l[0], NULL);
	for (int i = 0; g && i < MIG_LISTENERS; i++)
		if (sockmig_member_add(g, l[i], &mo) < 0) {
			sockmig_group_destroy(g);
			sockmig_group_close(g);
			g = NULL;
		}
	if (!g) {
		snprintf(r->error, sizeof(r->error), "migration step: %s", sockmig_last_error());
		goto out;
	}
	pfd = prog_of(g, r->error, sizeof(r->error));
	if (pfd < 0)
		goto out;
	if (burst_start(c, o->family, prog_port, MIG_CLIENTS, false) < 0 ||
	    burst_connected(c, 5000) != MIG_CLIENTS) {
		snprintf(r->error, sizeof(r->error), "migration step: the clients did not connect");
		goto out;
	}
	for (int tries = 0; tries < 500 && queued != MIG_CLIENTS; tries++) {
		queued = 0;
		for (int i = 0; i < MIG_LISTENERS; i++)
			queued += burst_accept_queue(l[i]);
		if (queued != MIG_CLIENTS)
			burst_sleep_ms(10);
	}
	if (queued != MIG_CLIENTS) {
		snprintf(r->error, sizeof(r->error), "migration step: %d of %d clients queued",
			 queued, MIG_CLIENTS);
		goto out;
	}
	if (ph_prog_stats(pfd, &s0, r->error, sizeof(r->error)) < 0)
		goto out;
	for (int i = 0; i < MIG_LISTENERS - 1; i++) {
		close(l[i]);
		l[i] = -1;
	}
	if (ph_prog_stats(pfd, &s1, r->error, sizeof(r->error)) < 0)
		goto out;
	r->mig_ns = s1.ns - s0.ns;
	r->mig_runs = s1.runs - s0.runs;
	n = sockmig_members(g, mi, MIG_LISTENERS);
	for (int i = 0; i < n && i < MIG_LISTENERS; i++)
		r->migrated += mi[i].counters.migrated_out[SOCKMIG_KIND_ESTABLISHED];
	ret = 0;
out:
	for (int i = 0; i < MIG_LISTENERS; i++)
		if (l[i] >= 0)
			close(l[i]);
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	if (pfd >= 0)
		close(pfd);
	if (c)
		burst_close(c);
	free(c);
	return ret;
}

/* One closed-loop load of @secs on the workers: its outcome in @lr, its
 * failed connections added to @r's. */
static int cost_load(const struct storm *s, double secs, struct lg_result *lr,
		     struct cost_result *r)
{
	pid_t lpid;
	int rfd = storm_start_load(s, secs, ~0ull >> 1, &lpid);

	if (rfd < 0 || !burst_read_full(rfd, lr, sizeof(*lr))) {
		snprintf(r->error, sizeof(r->error), "the load generator failed");
		return -1;
	}
	close(rfd);
	waitpid(lpid, NULL, 0);
	r->failed += lr->started - lr->count[LG_OK];
	return 0;
}

/* One phase with the reference program @prog attached: its run time and
 * runs added to *@ns and *@runs. */
static int ref_phase(const struct storm *s, int prog, struct cost_args *a, uint64_t *ns,
		     uint64_t *runs)
{
	struct lg_result *lr = calloc(1, sizeof(*lr));
	struct prog_stats st0, st1;
	int ret = -1;

	if (!lr || ph_prog_stats(prog, &st0, a->r.error, sizeof(a->r.error)) < 0)
		goto out;
	if (setsockopt(s->w[0].fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog, sizeof(prog)) < 0) {
		snprintf(a->r.error, sizeof(a->r.error), "cannot attach a reference program: %s",
			 strerror(errno));
		goto out;
	}
	if (cost_load(s, a->phase_secs, lr, &a->r) < 0 ||
	    ph_prog_stats(prog, &st1, a->r.error, sizeof(a->r.error)) < 0)
		goto out;
	*ns += st1.ns - st0.ns;
	*runs += st1.runs - st0.runs;
	ret = 0;
out:
	free(lr);
	return ret;
}

static void cost_child(const struct storm_opts *o, void *res)
{
	struct cost_args *a = res;
	struct storm_result sr = {0};
	struct storm *s = calloc(1, sizeof(*s));
	struct lg_result *lr = calloc(1, sizeof(*lr));
	struct prog_stats st0, st1;
	int fds[MAX_WORKERS];
	int probe_fd, stats_fd = -1, pfd = -1, efd = -1, sfd = -1;
	uint64_t failed;

	if (!s || !lr || storm_netns_setup(o, a->r.error, sizeof(a->r.error)) < 0)
		goto out;
	/* run_time_ns and run_cnt count while this descriptor is open */
	stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (stats_fd < 0) {
		snprintf(a->r.error, sizeof(a->r.error),
			 "cannot enable the kernel's BPF run-time statistics: %s (needs "
			 "CAP_SYS_ADMIN and Linux 5.8 or later)",
			 strerror(errno));
		goto out;
	}
	s->o = o;
	s->r = &sr;
	s->gen = 1;
	s->rep.fd = s->rep_w = -1;
	for (int i = 0; i < o->workers; i++)
		s->w[i].fd = -1;
	probe_fd = burst_listener(o->family, o->port, 16, 0);
	if (probe_fd < 0 || storm_open_group(s, probe_fd) < 0) {
		snprintf(a->r.error, sizeof(a->r.error), "%s", sr.error);
		goto out;
	}
	close(probe_fd);
	pfd = prog_of(s->g, a->r.error, sizeof(a->r.error));
	if (pfd < 0)
		goto out;
	for (int i = 0; i < o->workers; i++)
		if (storm_start_worker(s, &s->w[i]) < 0) {
			snprintf(a->r.error, sizeof(a->r.error), "%s", sr.error);
			goto out;
		}
	/*
	 * A phase first that does not count: the namespace's first ~28,000
	 * connections (its ephemeral ports) find their 4-tuples free, every
	 * later one a TIME_WAIT left by the server's close; the first counted
	 * phase would run faster than the others for that alone.
	 */
	sockmig_group_detach(s->w[0].fd);
	if (cost_load(s, a->phase_secs, lr, &a->r) < 0)
		goto out;
	a->r.ph.warmup_rate = (double)lr->count[LG_OK] / lr->elapsed;
	for (int ph = 0; ph < a->phases && ph < PH_MAX; ph++) {
		bool on = ph_on(ph);

		if (on)
			sockmig_group_attach(s->g, s->w[0].fd);
		else
			sockmig_group_detach(s->w[0].fd);
		if (on && ph_prog_stats(pfd, &st0, a->r.error, sizeof(a->r.error)) < 0)
			goto out;
		if (cost_load(s, a->phase_secs, lr, &a->r) < 0)
			goto out;
		if (on && ph_prog_stats(pfd, &st1, a->r.error, sizeof(a->r.error)) < 0)
			goto out;
		if (on) {
			a->r.syn_ns += st1.ns - st0.ns;
			a->r.syn_runs += st1.runs - st0.runs;
		}
		ph_record(&a->r.ph, ph, (double)lr->count[LG_OK], lr->elapsed);
	}
	ph_finish(&a->r.ph);
	/* one more phase with the empty program: the floor */
	efd = ph_empty_prog(a->r.error, sizeof(a->r.error));
	if (efd < 0 || ref_phase(s, efd, a, &a->r.empty_ns, &a->r.empty_runs) < 0)
		goto out;
	/* and one with the least steering program, over the same listeners
	 * out of the group (a socket is in one socket array at most) */
	for (int i = 0; i < o->workers; i++)
		fds[i] = s->w[i].fd;
	for (int i = 0; i < o->workers; i++)
		if (sockmig_member_leave(s->g, fds[i]) < 0) {
			snprintf(a->r.error, sizeof(a->r.error), "cannot take a worker out: %s",
				 sockmig_last_error());
			goto out;
		}
	sfd = ph_select_prog(fds, o->workers, a->r.error, sizeof(a->r.error));
	failed = a->r.failed;
	if (sfd < 0 || ref_phase(s, sfd, a, &a->r.sel_ns, &a->r.sel_runs) < 0)
		goto out;
	a->r.sel_failed = a->r.failed - failed;
	sockmig_group_detach(s->w[0].fd);
	cost_migration(o, o->port + 1, &a->r);
out:
	if (s) {
		storm_stop_all(s);
		if (s->g) {
			sockmig_group_destroy(s->g);
			sockmig_group_close(s->g);
		}
	}
	if (pfd >= 0)
		close(pfd);
	if (efd >= 0)
		close(efd);
	if (sfd >= 0)
		close(sfd);
	if (stats_fd >= 0)
		close(stats_fd);
	free(s);
	free(lr);
}

int storm_cost(const struct storm_opts *o, int phases, double phase_secs, struct cost_result *r)
{
	struct cost_args *a = calloc(1, sizeof(*a));
	int err;

	if (!a)
		return -1;
	a->phases = phases;
	a->phase_secs = phase_secs;
	err = storm_in_child(cost_child, o, a, sizeof(*a), a->r.error, sizeof(a->r.error));
	*r = a->r;
	free(a);
	return err;
}
