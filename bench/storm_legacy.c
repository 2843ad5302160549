// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The legacy strategy's drain in the workers; see storm_legacy.h. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "storm_legacy.h"

struct shared {
	pthread_mutex_t mu;
	struct storm_legacy_stats st;
};

struct storm_legacy_stats *storm_legacy_stats_new(void)
{
	struct shared *sh =
		mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pthread_mutexattr_t a;

	if (sh == MAP_FAILED)
		return NULL;
	memset(sh, 0, sizeof(*sh));
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(&sh->mu, &a);
	pthread_mutexattr_destroy(&a);
	return &sh->st;
}

static struct shared *shared_of(struct storm_legacy_stats *st)
{
	return (struct shared *)((char *)st - offsetof(struct shared, st));
}

void storm_legacy_stats_free(struct storm_legacy_stats *st)
{
	if (st)
		munmap(shared_of(st), sizeof(struct shared));
}

void storm_legacy_stats_read(struct storm_legacy_stats *st, struct storm_legacy_stats *out)
{
	struct shared *sh = shared_of(st);

	pthread_mutex_lock(&sh->mu);
	*out = sh->st;
	pthread_mutex_unlock(&sh->mu);
}

struct storm_legacy_drain {
	struct sockmig_group *g;
	int lfd;
	sockmig_accept_fn adopt;
	void *ctx;
	struct storm_legacy_stats *st;
	atomic_bool done;
	pthread_t th;
};

static void *drain_thread(void *arg)
{
	struct storm_legacy_drain *d = arg;
	SOCKMIG_OPTS(sockmig_legacy_drain_opts, o, .on_accept = d->adopt, .ctx = d->ctx);
	struct sockmig_legacy_drain_report rep;
	struct storm_legacy_stats *st = d->st;
	struct shared *sh = shared_of(st);
	int err;

	err = sockmig_member_drain_legacy(d->g, d->lfd, &o, &rep);
	pthread_mutex_lock(&sh->mu);
	if (err) {
		st->errors++;
	} else {
		lg_hist_add(&st->drain_us, rep.elapsed_ns / 1000);
		st->drains++;
		st->accepted += rep.accepted;
		st->inflight += rep.inflight_start;
		st->abandoned += rep.abandoned;
	}
	pthread_mutex_unlock(&sh->mu);
	atomic_store(&d->done, true);
	return NULL;
}

struct storm_legacy_drain *storm_legacy_drain_start(struct sockmig_group *g, int lfd,
						    sockmig_accept_fn adopt, void *ctx,
						    struct storm_legacy_stats *st)
{
	struct storm_legacy_drain *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->g = g;
	d->lfd = lfd;
	d->adopt = adopt;
	d->ctx = ctx;
	d->st = st;
	atomic_init(&d->done, false);
	if (pthread_create(&d->th, NULL, drain_thread, d)) {
		free(d);
		return NULL;
	}
	return d;
}

bool storm_legacy_drain_end(struct storm_legacy_drain *d)
{
	if (!d)
		return true;
	if (!atomic_load(&d->done))
		return false;
	pthread_join(d->th, NULL);
	free(d);
	return true;
}
