// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A walk of a UDP group's flow table, for the readers that need all of it
 * (flow counts, a retire's wait, an upgrade's copy): in batches of
 * WALK_BATCH entries where the kernel has them (5.6+: a million flows in
 * a fraction of a second, not the seconds of two syscalls per entry),
 * else key by key. The program learns and evicts flows meanwhile: a batch
 * walk goes bucket by bucket and ends; a key walk restarts from the first
 * key when the key it stands on is evicted, so it is bounded by twice the
 * table's entries (-EAGAIN past that: the caller may try again). No lock is taken here: callers walk outside the
 * group's lock, which a server that joins waits for.
 */
#include <bpf/bpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "udp_priv.h"

#define WALK_BATCH 4096
#ifndef ENOTSUPP
#define ENOTSUPP 524 /* the kernel's, for a map without batches */
#endif

/* Key by key: each value as it is, the fields past the table's zero. */
static int walk_each(int fd, uint32_t max_entries, sm_udp_flows_fn fn, void *arg)
{
	struct smu_flow_key key, next;
	struct smu_flow v;
	void *prev = NULL;
	int err = 0;

	for (uint64_t steps = 0; !err && steps < 2ull * max_entries + 2; steps++) {
		if (bpf_map_get_next_key(fd, prev, &next) < 0)
			return errno == ENOENT ? 0 : -errno;
		key = next;
		prev = &key;
		memset(&v, 0, sizeof(v));
		if (bpf_map_lookup_elem(fd, &key, &v) < 0)
			continue; /* evicted or expired meanwhile */
		err = fn(&key, &v, 1, arg);
	}
	/* the bound, reached: entries evicted under the walk again and
	 * again; what it saw is not the table */
	return err ? err : -EAGAIN;
}

/* In batches: -EOPNOTSUPP when the kernel has none, before any call of @fn. */
static int walk_batch(int fd, uint32_t vsz, sm_udp_flows_fn fn, void *arg)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	struct smu_flow_key *keys = calloc(WALK_BATCH, sizeof(*keys));
	struct smu_flow *v = calloc(WALK_BATCH, sizeof(*v));
	uint8_t *raw = calloc(WALK_BATCH, vsz);
	uint64_t in = 0, out = 0; /* the kernel's position: a bucket */
	int err = 0;

	if (!keys || !v || !raw) {
		err = -ENOMEM;
		goto out;
	}
	for (bool first = true; !err; first = false) {
		uint32_t count = WALK_BATCH;
		int r = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, keys, raw, &count,
					     &opts);

		if (r < 0 && errno != ENOENT) {
			err = first && (errno == EINVAL || errno == ENOTSUPP || errno == EOPNOTSUPP)
				      ? -EOPNOTSUPP
				      : -errno;
			break;
		}
		memset(v, 0, (size_t)count * sizeof(*v));
		for (uint32_t i = 0; i < count; i++)
			memcpy(&v[i], raw + (size_t)i * vsz, vsz);
		if (count)
			err = fn(keys, v, count, arg);
		if (r < 0)
			break; /* ENOENT: the last batch */
		in = out;
	}
out:
	free(keys);
	free(v);
	free(raw);
	return err;
}

int sm_udp_flow_walk(int fd, sm_udp_flows_fn fn, void *arg)
{
	struct bpf_map_info info;
	uint32_t len = sizeof(info);
	int err;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
		return -errno;
	if (info.value_size > sizeof(struct smu_flow) ||
	    info.key_size != sizeof(struct smu_flow_key))
		return -EINVAL;
	err = walk_batch(fd, info.value_size, fn, arg);
	return err == -EOPNOTSUPP ? walk_each(fd, info.max_entries, fn, arg) : err;
}
