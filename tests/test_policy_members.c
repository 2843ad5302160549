// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Members: set keeps the generation, counters outlive a slot, stale owners, failed adds. */
#include <bpf/bpf.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define PORT TU_BURST_PORT

/*
 * sockmig_member_set() with only a role or a weight keeps the generation:
 * A (gen 1) has 30 children queued; B and C are gen 2; C's weight changes
 * and A is marked draining by cookie, then A closes: its children go to
 * B and C, the newest generation, and both generations read back as set.
 */
SM_TEST(policy_member_set_keeps_generation)
{
	int l[3] = {-1, -1, -1}, per[3] = {0}, ret = SM_FAIL, fd;
	struct sockmig_group *g = NULL;
	struct sockmig_member_info info[3];
	struct burst *c = calloc(1, sizeof(*c));
	SOCKMIG_OPTS(sockmig_member_opts, w3, .weight = 3);

	if (!c)
		return SM_FAIL;
	for (int i = 0; i < 3; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A (gen 1)"))
		goto out;
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT, 30, false), "clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), 30, "connected") ||
	    !ASSERT_TRUE(burst_wait_queue(l[0], 30, 2000), "queued on A"))
		goto out;
	if (!ASSERT_OK(tu_add(g, l[1], SOCKMIG_ROLE_ACTIVE, 2, 1), "register B (gen 2)") ||
	    !ASSERT_OK(tu_add(g, l[2], SOCKMIG_ROLE_ACTIVE, 2, 1), "register C (gen 2)") ||
	    !ASSERT_OK(sockmig_member_set(g, sockmig_cookie(l[2]), &w3), "C weight 3") ||
	    !ASSERT_OK(tu_set_role(g, l[0], SOCKMIG_ROLE_DRAINING), "A draining"))
		goto out;
	if (!ASSERT_EQ(sockmig_members(g, info, 3), 3, "members"))
		goto out;
	for (int i = 0; i < 3; i++) {
		int k = info[i].cookie == sockmig_cookie(l[0])	 ? 0
			: info[i].cookie == sockmig_cookie(l[1]) ? 1
								 : 2;

		printf("member %d: role %s, generation %u, weight %u\n", k,
		       sockmig_role_str(info[i].role), info[i].generation, info[i].weight);
		if (!ASSERT_EQ(info[i].generation, k == 0 ? 1 : 2, "generation kept") ||
		    !ASSERT_EQ(info[i].weight, k == 2 ? 3 : 1, "weight"))
			goto out;
	}
	close(l[0]);
	l[0] = -1;
	for (int i = 1; i < 3; i++) {
		per[i] = burst_accept_queue(l[i]);
		while ((fd = accept4(l[i], NULL, NULL, SOCK_CLOEXEC)) >= 0)
			close(fd);
	}
	printf("after A closed: B %d, C %d\n", per[1], per[2]);
	if (!ASSERT_EQ(per[1] + per[2], 30, "B + C") ||
	    !ASSERT_GT(per[2], 0, "C (newest) got some"))
		goto out;
	ret = SM_PASS;
out:
	burst_close(c);
	free(c);
	tu_cleanup(g, l, 3);
	return ret;
}

/* Slot of member @fd, -1 when it is not one. */
static int slot_of(struct sockmig_group *g, int fd)
{
	struct sockmig_member_info info[8];
	int n = sockmig_members(g, info, 8);

	for (int i = 0; i < n && i < 8; i++)
		if (info[i].cookie == sockmig_cookie(fd))
			return (int)info[i].slot;
	return -1;
}

/*
 * SYN counters belong to the member, not to its slot: A gets 50 SYNs,
 * closes without leaving (the kernel frees its slot) and stays registered;
 * C takes A's slot and gets 40 (B is draining). A keeps 50 and C has 40.
 */
SM_TEST(policy_syn_counters_survive_slot_reuse)
{
	int l[3] = {-1, -1, -1}, per[3] = {0}, ret = SM_FAIL, slot_a;
	struct sockmig_counters ca = {0}, cc = {0};
	struct sockmig_group *g = NULL;
	uint64_t cookie_a;

	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
	    !ASSERT_OK(tu_add(g, l[1], SOCKMIG_ROLE_DRAINING, 1, 1), "register B (draining)") ||
	    !ASSERT_EQ(tu_burst(AF_INET, l, 2, 50, per), 50, "accepted") ||
	    !ASSERT_EQ(per[0], 50, "all on A"))
		goto out;
	cookie_a = sockmig_cookie(l[0]);
	slot_a = slot_of(g, l[0]);
	close(l[0]);
	l[0] = -1;
	if (!ASSERT_OK(l[2] = burst_listener(AF_INET, PORT, 1024, 0), "listener C") ||
	    !ASSERT_OK(tu_add(g, l[2], SOCKMIG_ROLE_ACTIVE, 2, 1), "register C") ||
	    !ASSERT_EQ(slot_of(g, l[2]), slot_a, "C in A's slot"))
		goto out;
	memset(per, 0, sizeof(per));
	if (!ASSERT_EQ(tu_burst(AF_INET, &l[1], 2, 40, &per[1]), 40, "accepted") ||
	    !ASSERT_EQ(per[2], 40, "all on C"))
		goto out;
	if (!ASSERT_OK(sockmig_counters_read(g, cookie_a, &ca), "A's counters") ||
	    !ASSERT_OK(sockmig_counters_read(g, sockmig_cookie(l[2]), &cc), "C's counters"))
		goto out;
	printf("slot %d: A steered %llu, C steered %llu\n", slot_a, (unsigned long long)ca.steered,
	       (unsigned long long)cc.steered);
	if (!ASSERT_EQ(ca.steered, 50, "A keeps its 50") ||
	    !ASSERT_EQ(cc.steered, 40, "C has its 40") || !ASSERT_EQ(tu_steered(g, l[1]), 0, "B"))
		goto out;
	ret = SM_PASS;
out:
	tu_cleanup(g, l, 3);
	return ret;
}

static int wait_byte(int fd)
{
	char ch;

	return read(fd, &ch, 1) == 1 ? 0 : 1;
}

/* A child that waits until pipe @p is closed; its pid. */
static pid_t idle_child(const int *p)
{
	pid_t pid = fork();

	if (pid == 0) {
		close(p[1]);
		_exit(wait_byte(p[0]));
	}
	return pid;
}

/* In a new pid namespace, as its pid 1, with its own /proc. */
static int pid_reuse_body(void)
{
	int l[2] = {-1, -1}, p[2], ret = SM_FAIL, status, n;
	struct sockmig_group *g = NULL, *g2 = NULL;
	struct sockmig_member_info info[4];
	pid_t x, y;
	FILE *f;

	if (!ASSERT_OK(mount("proc", "/proc", "proc", 0, NULL), "mount /proc") ||
	    !ASSERT_OK(pipe(p), "pipe"))
		return SM_FAIL;
	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	/* X first: the group's open may run a thread (the wake-up check),
	 * which takes a pid of the namespace too */
	x = idle_child(p);
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) || !ASSERT_EQ(x, 2, "X is pid 2"))
		goto out;
	SOCKMIG_OPTS(sockmig_member_opts, ox, .pid = (uint32_t)x);
	if (!ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A (ours)") ||
	    !ASSERT_OK(sockmig_member_add(g, l[1], &ox), "register B (owned by X)"))
		goto out;
	/* B stops listening and X exits; Y gets X's pid */
	close(l[1]);
	l[1] = -1;
	kill(x, SIGKILL);
	waitpid(x, &status, 0);
	f = fopen("/proc/sys/kernel/ns_last_pid", "w");
	if (!ASSERT_TRUE(f, "ns_last_pid"))
		goto out;
	fprintf(f, "1");
	fclose(f);
	burst_sleep_ms(30); /* start times count clock ticks (10 ms) */
	y = idle_child(p);
	if (!ASSERT_EQ(y, x, "Y got X's pid"))
		goto out;
	n = sockmig_members(g, info, 4);
	if (!ASSERT_EQ(n, 2, "members before the next open"))
		goto out;
	/* the next open forgets members whose owner is gone */
	g2 = sockmig_group_open(l[0], NULL);
	n = sockmig_members(g, info, 4);
	printf("members after the open: %d\n", n);
	if (!ASSERT_TRUE(g2, sockmig_last_error()) ||
	    !ASSERT_EQ(n, 1, "B forgotten although its pid lives") ||
	    !ASSERT_EQ(info[0].cookie, sockmig_cookie(l[0]), "A kept"))
		goto out;
	ret = SM_PASS;
out:
	close(p[1]); /* the idle children exit */
	while (wait(&status) > 0)
		;
	sockmig_group_close(g2);
	tu_cleanup(g, l, 2);
	return ret;
}

/*
 * PID reuse: a member that stopped listening is forgotten when its owner
 * is gone, also when its pid has been given to another process since.
 */
SM_TEST(policy_stale_member_pid_reuse)
{
	int status = 0;
	pid_t pid;

	if (!ASSERT_OK(unshare(CLONE_NEWPID | CLONE_NEWNS), "unshare(CLONE_NEWPID)") ||
	    !ASSERT_OK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / rprivate"))
		return SM_FAIL;
	pid = fork();
	if (pid == 0)
		_exit(pid_reuse_body());
	if (!ASSERT_TRUE(pid > 0 && waitpid(pid, &status, 0) == pid, "pid 1 of the namespace"))
		return SM_FAIL;
	return WIFEXITED(status) ? WEXITSTATUS(status) : SM_FAIL;
}

/*
 * A member_add that fails after taking a slot (the listener has
 * SO_LOCK_FILTER: the policy cannot be attached through it) leaves
 * nothing: no slot in the socket array, no member.
 */
SM_TEST(policy_failed_add_frees_slot)
{
	int l[2] = {-1, -1}, ret = SM_FAIL, one = 1, mfd = -1, held = 0;
	struct sockmig_group *g = NULL;
	struct sockmig_member_info info[4];
	uint32_t key, *prev = NULL;
	uint64_t cookie, val;
	char pin[512];

	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
	    !ASSERT_OK(setsockopt(l[1], SOL_SOCKET, SO_LOCK_FILTER, &one, sizeof(one)),
		       "SO_LOCK_FILTER on B") ||
	    !ASSERT_ERR(tu_add(g, l[1], SOCKMIG_ROLE_ACTIVE, 1, 1), EPERM, "register B"))
		goto out;
	printf("B: %s\n", sockmig_last_error());
	cookie = sockmig_cookie(l[1]);
	snprintf(pin, sizeof(pin), "%s/members", sockmig_group_path(g));
	mfd = bpf_obj_get(pin);
	if (!ASSERT_OK(mfd, "members map"))
		goto out;
	for (int i = 0; i < 4096 && bpf_map_get_next_key(mfd, prev, &key) == 0; i++) {
		if (bpf_map_lookup_elem(mfd, &key, &val) == 0 && val == cookie)
			held++;
		prev = &key;
	}
	if (!ASSERT_EQ(held, 0, "slots holding B") ||
	    !ASSERT_EQ(sockmig_members(g, info, 4), 1, "members") ||
	    !ASSERT_EQ(info[0].cookie, sockmig_cookie(l[0]), "A"))
		goto out;
	ret = SM_PASS;
out:
	if (mfd >= 0)
		close(mfd);
	tu_cleanup(g, l, 2);
	return ret;
}
