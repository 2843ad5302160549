// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * UDP groups at scale (issue 13), the network namespaces: two of them,
 * each with a group on the same 127.0.0.1 port and flows of the very same
 * 4-tuples, never see each other's flows, members or counters: the pins
 * are named by namespace, listed and shown by `sockmig status` in their
 * own only. Its baseline: both tables hold the same keys, which one table
 * keyed without the namespace would have merged. Flows are crafted
 * datagrams (tests/udp_gen.c); the case in its own network namespace (A),
 * B in a child's.
 */
#include <arpa/inet.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "harness.h"
#include "sockmig.h"
#include "udp_gen.h"

#define PORT 34760

#define A_FLOWS 300 /* half learned by generation 1, half by 2 */
#define B_FLOWS 500 /* by generation 7; A's 300 tuples among them */

/* One namespace's group, receivers and flows. */
struct side {
	const char *who;
	struct sockmig_udp_group *g;
	struct ug_rx rx;
	struct ug_seen s;
	int raw;
	uint32_t owner[B_FLOWS];
	int per[8];
};

static bool side_open(struct side *d, const char *who)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(PORT),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	SOCKMIG_OPTS(sockmig_udp_group_opts, go, .idle_timeout_ms = SOCKMIG_UDP_NO_EXPIRY);

	memset(d, 0, sizeof(*d));
	d->who = who;
	d->raw = -1;
	d->rx.ep = -1;
	d->s.owner = d->owner;
	d->s.per = d->per;
	d->s.nflows = B_FLOWS;
	if (ug_rx_init(&d->rx, 8) < 0)
		return false;
	d->g = sockmig_udp_group_open((struct sockaddr *)&a, sizeof(a), &go);
	d->raw = ug_raw_open();
	return ASSERT_TRUE(d->g, sockmig_last_error()) && d->raw >= 0;
}

static void side_close(struct side *d)
{
	if (d->g) {
		sockmig_udp_group_destroy(d->g);
		sockmig_udp_group_close(d->g);
	}
	if (d->raw >= 0)
		close(d->raw);
	ug_rx_free(&d->rx);
}

/* @n members of generation @gen, which learn flows [from, to). */
static bool side_learn(struct side *d, uint32_t gen, int n, uint32_t from, uint32_t to)
{
	SOCKMIG_OPTS(sockmig_udp_member_opts, mo, .generation = gen);

	d->s.lo = d->rx.n;
	for (int k = 0; k < n; k++) {
		int i = ug_rx_socket(&d->rx, PORT, 1 << 20);

		if (i < 0 || !ASSERT_OK(sockmig_udp_member_add(d->g, d->rx.fd[i], &mo), "add"))
			return false;
	}
	d->s.hi = d->rx.n;
	d->s.learn = true;
	d->s.round = 1;
	return ug_round_trip(d->raw, PORT, &d->rx, &d->s, from, to) &&
	       ASSERT_EQ(d->s.off_gen + d->s.dup + d->s.stray + d->rx.bad, 0, "learned elsewhere");
}

/* Round @round of flows [0, @n): each to its owner. */
static bool side_again(struct side *d, uint32_t round, uint32_t n)
{
	d->s.learn = false;
	d->s.round = round;
	return ug_round_trip(d->raw, PORT, &d->rx, &d->s, 0, n) &&
	       ASSERT_EQ(d->s.mismatch + d->s.stray + d->rx.bad, 0, "at another socket");
}

/* What this namespace sees of its group: its own members, counters and
 * name only, through the library and `sockmig status`. */
static bool side_check(struct side *d, uint64_t flows, uint64_t hits, const char *other)
{
	struct sockmig_udp_member_info mi[8];
	struct sockmig_group_id ids[4];
	struct sockmig_udp_stats st;
	char want[256], *out = malloc(UG_OUT_MAX);
	uint64_t ns = sockmig_netns_self();
	int n = sockmig_udp_members(d->g, mi, 8);
	bool ok;

	snprintf(want, sizeof(want), "%llu-udp4-127_0_0_1-%d", (unsigned long long)ns, PORT);
	printf("%s: netns %llu, group %s\n", d->who, (unsigned long long)ns,
	       sockmig_udp_group_name(d->g));
	ok = out && ASSERT_EQ(n, d->rx.n, "members") &&
	     ASSERT_TRUE(strcmp(sockmig_udp_group_name(d->g), want) == 0, "pin name") &&
	     ASSERT_EQ(sockmig_udp_group_list(NULL, ns, PORT, ids, 4), 1, "groups of this netns") &&
	     ASSERT_TRUE(strcmp(ids[0].name, want) == 0, "listed") &&
	     ASSERT_OK(sockmig_udp_stats_read(d->g, &st), "stats") &&
	     ASSERT_EQ(st.new_flows, flows, "new flows") && ASSERT_EQ(st.flow_hits, hits, "hits") &&
	     ASSERT_EQ(st.fallbacks + st.kernel_hash + st.not_learned, 0, "others") &&
	     ASSERT_EQ(sockmig_udp_flows(d->g, NULL, 0), d->rx.n > 3 ? 2 : 1, "generations");
	for (int k = 0; ok && k < n; k++) {
		int i = 0;

		while (i < d->rx.n && sockmig_cookie(d->rx.fd[i]) != mi[k].cookie)
			i++;
		ok = ASSERT_TRUE(i < d->rx.n, "a member is one of this namespace's sockets");
	}
	if (ok && ASSERT_EQ(ug_status(out), 0, "sockmig status")) {
		snprintf(want, sizeof(want), "netns %llu: %d members, sockmig UDP group %s",
			 (unsigned long long)ns, d->rx.n, sockmig_udp_group_name(d->g));
		ok = ASSERT_TRUE(strstr(out, want), "status: this group") &&
		     ASSERT_TRUE(!other || !strstr(out, other), "status: not the other's");
		snprintf(want, sizeof(want), "new_flows=%llu flow_hits=%llu fallbacks=0",
			 (unsigned long long)flows, (unsigned long long)hits);
		ok = ok && ASSERT_TRUE(strstr(out, want), "status: this group's counters");
	} else {
		ok = false;
	}
	free(out);
	return ok;
}

/* Namespace B, in a child: B_FLOWS flows, A's tuples among them; its
 * name to @wr once checked ("-" if not), then it waits for @rd to close
 * its group. */
static int side_b(int rd, int wr)
{
	struct side d;
	char c;
	bool ok;

	ok = unshare(CLONE_NEWNET) == 0 && sockmig_lo_up() == 0 && read(rd, &c, 1) == 1 &&
	     side_open(&d, "B") && side_learn(&d, 7, 3, 0, B_FLOWS) && side_again(&d, 2, B_FLOWS) &&
	     side_check(&d, B_FLOWS, B_FLOWS, NULL);
	if (write(wr, ok ? sockmig_udp_group_name(d.g) : "-",
		  ok ? strlen(sockmig_udp_group_name(d.g)) : 1) < 0 ||
	    read(rd, &c, 1) != 1)
		ok = false;
	side_close(&d);
	return ok ? 0 : 1;
}

/* Flow keys of pinned table @a also in pinned table @b, or -1. */
static long same_keys(const char *a, const char *b)
{
	const char *root = getenv("SOCKMIG_PIN_ROOT");
	char pa[512], pb[512], key[128], next[128], val[128];
	struct bpf_map_info info = {0};
	uint32_t len = sizeof(info);
	int fa, fb;
	long n = 0;
	void *prev = NULL;

	if (!root || !*root)
		root = SOCKMIG_PIN_ROOT;
	snprintf(pa, sizeof(pa), "%s/%s/flows", root, a);
	snprintf(pb, sizeof(pb), "%s/%s/flows", root, b);
	fa = bpf_obj_get(pa);
	fb = bpf_obj_get(pb);
	if (fa < 0 || fb < 0 || bpf_obj_get_info_by_fd(fa, &info, &len) < 0 ||
	    info.key_size > sizeof(key) || info.value_size > sizeof(val))
		n = -1;
	while (n >= 0 && bpf_map_get_next_key(fa, prev, next) == 0) {
		memcpy(key, next, info.key_size);
		prev = key;
		n += bpf_map_lookup_elem(fb, key, val) == 0;
	}
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return n;
}

SM_TEST(udp_scale_two_netns_same_port_never_share_state)
{
	char other[SOCKMIG_NAME_MAX] = "";
	int a2b[2] = {-1, -1}, b2a[2] = {-1, -1}, ret = SM_FAIL, status = -1;
	struct sockmig_group_id ids[4];
	struct side d;
	pid_t pid = -1;
	long same;

	if (!ASSERT_OK(pipe(a2b), "pipe") || !ASSERT_OK(pipe(b2a), "pipe"))
		goto out;
	pid = fork();
	if (pid == 0) {
		close(a2b[1]);
		close(b2a[0]);
		_exit(side_b(a2b[0], b2a[1]));
	}
	close(b2a[1]);
	b2a[1] = -1;
	/* A first: 300 flows, 150 learned by generation 1, 150 by 2 */
	if (!side_open(&d, "A") || !side_learn(&d, 1, 2, 0, A_FLOWS / 2) ||
	    !side_learn(&d, 2, 2, A_FLOWS / 2, A_FLOWS) || !side_again(&d, 2, A_FLOWS))
		goto close;
	/* then B, in its namespace, learns the same 300 tuples and 200 more */
	if (!ASSERT_EQ(write(a2b[1], "g", 1), 1, "go") ||
	    !ASSERT_TRUE(read(b2a[0], other, sizeof(other) - 1) > 1, "B's group"))
		goto close;
	/* A's flows are all still A's, its counters its own */
	if (!side_again(&d, 3, A_FLOWS) || !side_check(&d, A_FLOWS, 2 * A_FLOWS, other) ||
	    !ASSERT_EQ(sockmig_udp_group_list(NULL, 0, PORT, ids, 4), 2, "groups under the root"))
		goto close;
	/* contrast: the two tables hold the same keys (a flow key is the
	 * 4-tuple, which both namespaces saw): one table for both, keyed
	 * without the netns, would have made B's first datagrams of them
	 * hits of A's sockets */
	same = same_keys(sockmig_udp_group_name(d.g), other);
	printf("%ld of A's %d flow keys are in B's table too, byte for byte\n", same, A_FLOWS);
	if (!ASSERT_EQ(same, A_FLOWS, "keys shared by the two namespaces' tables"))
		goto close;
	ret = SM_PASS;
close:
	side_close(&d);
out:
	if (a2b[1] >= 0 && write(a2b[1], "d", 1) < 0)
		ret = SM_FAIL;
	if (pid > 0 &&
	    (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		printf("namespace B's side failed\n");
		ret = SM_FAIL;
	}
	for (int i = 0; i < 2; i++) {
		if (a2b[i] >= 0)
			close(a2b[i]);
		if (b2a[i] >= 0)
			close(b2a[i]);
	}
	return ret;
}
