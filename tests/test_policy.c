// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The policy: where new SYNs go (draining, weights, holder, kicks, 1,024 members and beyond). */
#include <stdarg.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define PORT TU_BURST_PORT

SM_TEST(policy_draining_member_gets_no_syn)
{
	int l[3] = {-1, -1, -1}, per[3] = {0}, ret = SM_FAIL;
	struct sockmig_group *g = NULL;

	for (int i = 0; i < 3; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()))
		goto out;
	for (int i = 0; i < 3; i++)
		if (!ASSERT_OK(tu_add(g, l[i], SOCKMIG_ROLE_ACTIVE, 1, 1), "register"))
			goto out;
	/* baseline: while B is active it gets its share */
	if (!ASSERT_EQ(tu_burst(AF_INET, l, 3, 300, per), 300, "accepted") ||
	    !ASSERT_GT(per[1], 0, "B's share while active") ||
	    !ASSERT_EQ(tu_steered(g, l[1]), per[1], "B steered"))
		goto out;
	memset(per, 0, sizeof(per));
	if (!ASSERT_OK(tu_set_role(g, l[1], SOCKMIG_ROLE_DRAINING), "B draining"))
		goto out;
	if (!ASSERT_EQ(tu_burst(AF_INET, l, 3, 300, per), 300, "accepted") ||
	    !ASSERT_EQ(per[1], 0, "B's share while draining") ||
	    !ASSERT_EQ(per[0] + per[2], 300, "A and C"))
		goto out;
	if (!ASSERT_EQ(tu_steered(g, l[0]) + tu_steered(g, l[2]), 600 - tu_steered(g, l[1]),
		       "steered"))
		goto out;
	ret = SM_PASS;
out:
	tu_cleanup(g, l, 3);
	return ret;
}

SM_TEST(policy_weights_split_syns)
{
	int l[2] = {-1, -1}, per[2] = {0}, ret = SM_FAIL, total = 0;
	struct sockmig_group *g = NULL;
	double share;

	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A (weight 1)") ||
	    !ASSERT_OK(tu_add(g, l[1], SOCKMIG_ROLE_ACTIVE, 1, 3), "register B (weight 3)"))
		goto out;
	/* a source address of its own for each client: from one address,
	 * 10,000 connects wrap the ephemeral ports about 3 times, and a port
	 * that comes again hashes as before (not 10,000 draws: 3.8 sigma
	 * from 0.75 is 1.5e-4 a run, 4.6 sigma of independent draws 4e-6) */
	for (int round = 0; round < 20; round++)
		total += tu_burst_spread(l, 2, 500, per);
	share = (double)per[1] / (double)total;
	printf("A %d, B %d: B's share %.4f (want 0.75)\n", per[0], per[1], share);
	if (!ASSERT_EQ(total, 10000, "accepted") ||
	    !ASSERT_TRUE(share > 0.73 && share < 0.77, "B's share within 2 points of 75%") ||
	    !ASSERT_EQ(tu_steered(g, l[0]), per[0], "A steered") ||
	    !ASSERT_EQ(tu_steered(g, l[1]), per[1], "B steered"))
		goto out;
	ret = SM_PASS;
out:
	tu_cleanup(g, l, 2);
	return ret;
}

SM_TEST(policy_holder_only_without_active)
{
	int l[3] = {-1, -1, -1}, per[3] = {0}, ret = SM_FAIL; /* holder, A, A2 */
	struct sockmig_group *g = NULL;
	struct sockmig_counters ch;

	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_HOLDER, 0, 1), "register holder") ||
	    !ASSERT_OK(tu_add(g, l[1], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A"))
		goto out;
	if (!ASSERT_EQ(tu_burst(AF_INET, l, 2, 200, per), 200, "accepted") ||
	    !ASSERT_EQ(per[0], 0, "holder while A is active") || !ASSERT_EQ(per[1], 200, "A"))
		goto out;
	/* A stops taking SYNs: the holder takes them */
	if (!ASSERT_OK(tu_set_role(g, l[1], SOCKMIG_ROLE_DRAINING), "A draining") ||
	    !ASSERT_EQ(tu_burst(AF_INET, l, 2, 200, per), 200, "accepted") ||
	    !ASSERT_EQ(per[0], 200, "holder with no active member") || !ASSERT_EQ(per[1], 200, "A"))
		goto out;
	/* queue 10 on the holder, then a new active member: the holder's queue
	 * migrates to it when the holder shuts down */
	l[2] = burst_listener(AF_INET, PORT, 1024, 0);
	if (!ASSERT_OK(l[2], "listener A2") ||
	    !ASSERT_OK(tu_add(g, l[2], SOCKMIG_ROLE_ACTIVE, 2, 1), "register A2"))
		goto out;
	memset(per, 0, sizeof(per));
	if (!ASSERT_EQ(tu_burst(AF_INET, l, 3, 100, per), 100, "accepted") ||
	    !ASSERT_EQ(per[0], 0, "holder once A2 is active") || !ASSERT_EQ(per[2], 100, "A2"))
		goto out;
	if (!ASSERT_OK(sockmig_counters_read(g, sockmig_cookie(l[0]), &ch), "holder counters") ||
	    !ASSERT_EQ(ch.steered, 200, "holder steered"))
		goto out;
	ret = SM_PASS;
out:
	tu_cleanup(g, l, 3);
	return ret;
}

/*
 * A wake-up connection goes to the member asked for, whatever the hash
 * says, and counts as kicked, not steered: 20 kicks of B, with A and B
 * active, put 20 connections in B's queue and none in A's.
 */
SM_TEST(policy_kick_goes_to_its_member)
{
	int l[2] = {-1, -1}, ret = SM_FAIL;
	struct sockmig_counters ca = {0}, cb = {0};
	struct sockmig_group *g = NULL;

	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
	    !ASSERT_OK(tu_add(g, l[1], SOCKMIG_ROLE_ACTIVE, 1, 1), "register B"))
		goto out;
	for (int i = 0; i < 20; i++)
		if (!ASSERT_OK(sockmig_member_kick(g, sockmig_cookie(l[1])), sockmig_last_error()))
			goto out;
	if (!ASSERT_TRUE(burst_wait_queue(l[1], 20, 2000), "20 queued on B") ||
	    !ASSERT_EQ(burst_accept_queue(l[1]), 20, "exactly 20 on B") ||
	    !ASSERT_EQ(burst_accept_queue(l[0]), 0, "none on A") ||
	    !ASSERT_OK(sockmig_counters_read(g, sockmig_cookie(l[0]), &ca), "A's counters") ||
	    !ASSERT_OK(sockmig_counters_read(g, sockmig_cookie(l[1]), &cb), "B's counters"))
		goto out;
	printf("A kicked %llu steered %llu, B kicked %llu steered %llu\n",
	       (unsigned long long)ca.kicked, (unsigned long long)ca.steered,
	       (unsigned long long)cb.kicked, (unsigned long long)cb.steered);
	if (!ASSERT_EQ(cb.kicked, 20, "B kicked") || !ASSERT_EQ(cb.steered, 0, "B steered") ||
	    !ASSERT_EQ(ca.kicked + ca.steered, 0, "A"))
		goto out;
	ret = SM_PASS;
out:
	tu_cleanup(g, l, 2);
	return ret;
}

static int warnings;

static int count_warnings(enum sockmig_log_level level, const char *fmt, va_list ap)
{
	(void)fmt;
	(void)ap;
	if (level == SOCKMIG_WARN)
		warnings++;
	return 0;
}

/*
 * @nl active listeners in one group, all registered: bursts of 2,048
 * clients, 24 per listener in all, every one accepted; every listener must
 * get at least one. Sets *unslotted to the members beyond the slots.
 */
static int many_listeners(int nl, int *unslotted)
{
	struct rlimit rl = {nl + 8192, nl + 8192};
	struct sockmig_group *g = NULL;
	struct sockmig_member_info *info = calloc((size_t)nl, sizeof(*info));
	int *l = calloc((size_t)nl, sizeof(*l)), *per = calloc((size_t)nl, sizeof(*per));
	int ret = SM_FAIL, total = 0, want = 24 * nl, min = -1, n;

	if (!info || !l || !per || !ASSERT_OK(setrlimit(RLIMIT_NOFILE, &rl), "RLIMIT_NOFILE"))
		goto out;
	for (int i = 0; i < nl; i++)
		l[i] = -1;
	for (int i = 0; i < nl; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 128, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()))
		goto out;
	warnings = 0;
	sockmig_set_print(count_warnings);
	for (int i = 0; i < nl; i++)
		if (!ASSERT_OK(tu_add(g, l[i], SOCKMIG_ROLE_ACTIVE, 1, 1), "register"))
			goto out;
	sockmig_set_print(NULL);
	n = sockmig_members(g, info, nl);
	*unslotted = 0;
	for (int i = 0; i < n && i < nl; i++)
		*unslotted += info[i].slot == UINT32_MAX;
	if (!ASSERT_EQ(n, nl, "members"))
		goto out;
	/* each client from an address of its own: from one address the
	 * hash saw only the ~10,000 ports connect() takes, over and over,
	 * and a listener got none of them about once in 20 runs. The hash
	 * still spreads unevenly: past the 24 per listener, more bursts until
	 * every listener had one, bounded at 4 times as many; a listener the
	 * policy starves never gets one */
	while (total < want || (min == 0 && total < 4 * want)) {
		int b = total < want && want - total < 2048 ? want - total : 2048;

		if (!ASSERT_EQ(tu_burst_spread(l, nl, b, per), b, "burst accepted"))
			goto out;
		total += b;
		min = -1;
		for (int i = 0; i < nl; i++)
			if (min < 0 || per[i] < min)
				min = per[i];
	}
	printf("%d listeners (%d without a slot, %d warning(s)): %d connections, fewest on one "
	       "listener %d\n",
	       nl, *unslotted, warnings, total, min);
	if (!ASSERT_GT(min, 0, "fewest SYNs on a listener"))
		goto out;
	ret = SM_PASS;
out:
	sockmig_set_print(NULL);
	if (l)
		tu_cleanup(g, l, nl);
	free(info);
	free(l);
	free(per);
	return ret;
}

/* 1,024 listeners fit: each has a slot, and the policy steers to every one. */
SM_TEST(policy_1024_members)
{
	int unslotted = -1;

	if (many_listeners(1024, &unslotted) != SM_PASS ||
	    !ASSERT_EQ(unslotted, 0, "members without a slot") ||
	    !ASSERT_EQ(warnings, 0, "warnings"))
		return SM_FAIL;
	return SM_PASS;
}

/*
 * 1,100 listeners: the 76 beyond the slots are registered without one, one
 * warning says so, and new SYNs go by the kernel's hash: none starves.
 */
SM_TEST(policy_beyond_limit_degrades)
{
	int unslotted = -1;

	if (many_listeners(1100, &unslotted) != SM_PASS ||
	    !ASSERT_EQ(unslotted, 1100 - 1024, "members without a slot") ||
	    !ASSERT_EQ(warnings, 1, "warnings"))
		return SM_FAIL;
	return SM_PASS;
}
