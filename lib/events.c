// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The event ring of a group: one record per drain, kept after the member
 * and its counters are gone, so that a reader that polls (sockmig watch,
 * sockmig metrics) sees every drain.
 *
 * An ARRAY map pinned as "events" in the group's directory, made by user
 * space alone (the policy program never reads it): SOCKMIG_EVENT_RING
 * entries, plus one at index SOCKMIG_EVENT_RING, struct ring_head: the
 * newest event's seq and the duration histogram of every drain. Event seq
 * s lives at index (s - 1) % SOCKMIG_EVENT_RING.
 * Written and read under the group lock.
 */
#include <bpf/bpf.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define EVENTS_PIN "events"
#define HEAD_KEY   SOCKMIG_EVENT_RING

/* The entry at HEAD_KEY, in an entry's room. */
struct ring_head {
	uint64_t seq;
	uint64_t sum_ns;
	uint64_t le[SOCKMIG_DRAIN_BUCKETS];
};
_Static_assert(sizeof(struct ring_head) <= sizeof(struct sockmig_event),
	       "the ring's head fits in an entry");

union ring_entry {
	struct sockmig_event ev;
	struct ring_head head;
};

static const uint64_t bucket_ns[SOCKMIG_DRAIN_BUCKETS] = SOCKMIG_DRAIN_BUCKET_NS;

/* Whether @fd is a ring of this version's layout; its map id in *id. */
static bool ring_ok(int fd, uint64_t *id)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
		return false;
	if (id)
		*id = info.id;
	return info.type == BPF_MAP_TYPE_ARRAY && info.key_size == sizeof(__u32) &&
	       info.value_size == sizeof(struct sockmig_event) &&
	       info.max_entries == SOCKMIG_EVENT_RING + 1;
}

/* The group's ring, made (and pinned 0600) when @create and missing or of
 * another layout; -ENOENT when missing and not @create. Under the lock. */
static int ring_open(struct sockmig_group *g, bool create, uint64_t *id)
{
	char pin[PATH_MAX + 64];
	int fd;

	snprintf(pin, sizeof(pin), "%s/%s", sockmig_group_path(g), EVENTS_PIN);
	fd = bpf_obj_get(pin);
	if (fd >= 0 && ring_ok(fd, id))
		return fd;
	if (fd >= 0) {
		close(fd);
		if (!create)
			return -ENOENT;
		unlink(pin); /* another layout: its events cannot be read */
	}
	if (!create)
		return -ENOENT;
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "sm_events", sizeof(__u32),
			    sizeof(struct sockmig_event), SOCKMIG_EVENT_RING + 1, NULL);
	if (fd < 0)
		return sm_fail(errno, "cannot make the event ring of group %s: %s",
			       sockmig_group_name(g), strerror(errno));
	if (bpf_obj_pin(fd, pin) < 0) {
		int err = errno;

		close(fd);
		return sm_fail(err, "cannot pin %s: %s", pin, strerror(err));
	}
	if (!ring_ok(fd, id)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static void ring_head(int fd, struct ring_head *h)
{
	union ring_entry e;
	__u32 key = HEAD_KEY;

	if (bpf_map_lookup_elem(fd, &key, &e) < 0)
		memset(&e, 0, sizeof(e));
	*h = e.head;
}

int sm_event_record_locked(struct sockmig_group *g, struct sockmig_event *ev)
{
	union ring_entry h;
	struct timespec ts;
	__u32 key, hk = HEAD_KEY;
	int fd = ring_open(g, true, NULL), err = 0;

	if (fd < 0)
		return fd;
	clock_gettime(CLOCK_REALTIME, &ts);
	ev->time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	memset(&h, 0, sizeof(h));
	ring_head(fd, &h.head);
	ev->seq = ++h.head.seq;
	key = (__u32)((ev->seq - 1) % SOCKMIG_EVENT_RING);
	h.head.sum_ns += ev->duration_ns;
	for (int b = 0; b < SOCKMIG_DRAIN_BUCKETS; b++)
		h.head.le[b] += ev->duration_ns <= bucket_ns[b];
	/* the event first, then the head that makes it visible */
	if (bpf_map_update_elem(fd, &key, ev, BPF_ANY) < 0 ||
	    bpf_map_update_elem(fd, &hk, &h, BPF_ANY) < 0)
		err = sm_fail(errno, "cannot record an event of group %s: %s",
			      sockmig_group_name(g), strerror(errno));
	close(fd);
	return err;
}

int sm_event_record(struct sockmig_group *g, struct sockmig_event *ev)
{
	int err = sm_group_lock(g);

	if (err)
		return err;
	err = sm_event_record_locked(g, ev);
	sm_group_unlock(g);
	return err;
}

int sockmig_group_event_ring(struct sockmig_group *g, struct sockmig_event_ring *out)
{
	uint64_t id = 0;
	int fd, err;

	if (!g || !out)
		return sm_fail(EINVAL, "event ring: no group or no output");
	memset(out, 0, sizeof(*out));
	out->capacity = SOCKMIG_EVENT_RING;
	err = sm_group_lock(g);
	if (err)
		return err;
	fd = ring_open(g, false, &id);
	if (fd >= 0) {
		struct ring_head h;

		ring_head(fd, &h);
		out->head = h.seq;
		out->id = id;
		out->duration_sum_ns = h.sum_ns;
		memcpy(out->duration_le, h.le, sizeof(out->duration_le));
		close(fd);
	}
	sm_group_unlock(g);
	return 0;
}

int sockmig_group_events(struct sockmig_group *g, uint64_t after_seq, struct sockmig_event *out,
			 int n)
{
	struct ring_head h;
	uint64_t head, first;
	int fd, got = 0, err;

	if (!g || n < 0 || (n > 0 && !out))
		return sm_fail(EINVAL, "events: no group or no buffer");
	err = sm_group_lock(g);
	if (err)
		return err;
	fd = ring_open(g, false, NULL);
	if (fd < 0)
		goto unlock; /* no drain yet */
	ring_head(fd, &h);
	head = h.seq;
	first = after_seq + 1;
	if (head > SOCKMIG_EVENT_RING && first < head - SOCKMIG_EVENT_RING + 1)
		first = head - SOCKMIG_EVENT_RING + 1; /* the older ones were overwritten */
	for (uint64_t s = first; s <= head && got < n; s++) {
		__u32 key = (__u32)((s - 1) % SOCKMIG_EVENT_RING);

		if (bpf_map_lookup_elem(fd, &key, &out[got]) < 0 || out[got].seq != s)
			continue;
		got++;
	}
	close(fd);
unlock:
	sm_group_unlock(g);
	return got;
}
