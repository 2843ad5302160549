// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The table of tracked listener fds (see the top of preload.c): filled at
 * listen() and at the copies of a tracked fd, read without locks by every
 * interposer; and the locks of the slow paths.
 */
#include <limits.h>
#include <string.h>

#include "shim.h"

static struct shim_entry table[SHIM_MAX_FDS];
static _Atomic int table_hi; /* entries [0, table_hi) have been used */
_Atomic int shim_ntracked;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t shim_decide_lock = PTHREAD_MUTEX_INITIALIZER;

int shim_table_find(int fd)
{
	int hi;

	if (fd < 0 || fd == INT_MAX ||
	    atomic_load_explicit(&shim_ntracked, memory_order_acquire) == 0)
		return -1;
	hi = atomic_load_explicit(&table_hi, memory_order_acquire);
	for (int i = 0; i < hi; i++)
		if (atomic_load_explicit(&table[i].fdp1, memory_order_acquire) == fd + 1)
			return i;
	return -1;
}

bool shim_table_get(int fd, struct shim_entry *out, bool take)
{
	int i;

	pthread_mutex_lock(&table_lock);
	i = shim_table_find(fd);
	if (i >= 0) {
		atomic_store_explicit(&out->fdp1, fd + 1, memory_order_relaxed);
		out->ino = table[i].ino;
		out->cookie = table[i].cookie;
		memcpy(out->group, table[i].group, sizeof(out->group));
		if (take) {
			atomic_store_explicit(&table[i].fdp1, 0, memory_order_release);
			atomic_fetch_sub_explicit(&shim_ntracked, 1, memory_order_acq_rel);
		}
	}
	pthread_mutex_unlock(&table_lock);
	return i >= 0;
}

bool shim_table_put(int fd, const struct shim_entry *e)
{
	int i, hi, free_i = -1;
	bool ok = true;

	if (fd < 0 || fd == INT_MAX)
		return false;
	pthread_mutex_lock(&table_lock);
	i = shim_table_find(fd);
	hi = atomic_load_explicit(&table_hi, memory_order_relaxed);
	if (i < 0) {
		for (int k = 0; k < hi && free_i < 0; k++)
			if (!atomic_load_explicit(&table[k].fdp1, memory_order_relaxed))
				free_i = k;
		if (free_i < 0 && hi < SHIM_MAX_FDS)
			free_i = hi;
	}
	if (i >= 0) {
		/* the same fd again (listen() twice): refresh it, readers see the fd
		 * throughout */
		table[i].ino = e->ino;
		table[i].cookie = e->cookie;
		memcpy(table[i].group, e->group, sizeof(table[i].group));
	} else if (free_i >= 0) {
		table[free_i].ino = e->ino;
		table[free_i].cookie = e->cookie;
		memcpy(table[free_i].group, e->group, sizeof(table[free_i].group));
		/* count first: a reader that finds the fd must not see 0 tracked */
		atomic_fetch_add_explicit(&shim_ntracked, 1, memory_order_acq_rel);
		atomic_store_explicit(&table[free_i].fdp1, fd + 1, memory_order_release);
		if (free_i == hi)
			atomic_store_explicit(&table_hi, hi + 1, memory_order_release);
	} else {
		ok = false;
	}
	pthread_mutex_unlock(&table_lock);
	return ok;
}

bool shim_table_full(void)
{
	return atomic_load_explicit(&shim_ntracked, memory_order_acquire) >= SHIM_MAX_FDS;
}

int shim_table_fds(int *fds, int max)
{
	int n = 0, hi, v;

	/* lock-free: may run in a signal handler (close_range) */
	hi = atomic_load_explicit(&table_hi, memory_order_acquire);
	for (int i = 0; i < hi && n < max; i++) {
		v = atomic_load_explicit(&table[i].fdp1, memory_order_acquire);
		if (v)
			fds[n++] = v - 1;
	}
	return n;
}

bool shim_table_take_nolock(int fd, struct shim_entry *out)
{
	int i = shim_table_find(fd), want = fd + 1;

	if (i < 0)
		return false;
	out->ino = table[i].ino;
	out->cookie = table[i].cookie;
	memcpy(out->group, table[i].group, sizeof(out->group));
	if (!atomic_compare_exchange_strong(&table[i].fdp1, &want, 0))
		return false; /* another thread took it first */
	atomic_store_explicit(&out->fdp1, fd + 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&shim_ntracked, 1, memory_order_acq_rel);
	return true;
}

/* In the child of fork(): a thread of the parent may have held them. */
void shim_table_atfork_child(void)
{
	table_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	shim_decide_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
}
