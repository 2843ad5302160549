// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The library services that sockmig, the bench and the preload shim once
 * reached through headers private to lib/, called here through the
 * public one only: a member read by cookie, the program detached from a
 * kernel group, the collection of members whose owner is gone, the
 * bound on a wait for a group's lock, and lo brought up in a namespace.
 * Exact results; each case in its own network namespace.
 */
#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "burst.h"
#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define PORT 34100

static int add(struct sockmig_group *g, int fd, enum sockmig_role role, uint32_t gen,
	       uint32_t weight, uint32_t pid)
{
	SOCKMIG_OPTS(sockmig_member_opts, o, .role = role, .generation = gen, .weight = weight,
		     .pid = pid);

	return sockmig_member_add(g, fd, &o);
}

/* @n clients to 127.0.0.1:@port, each closed once its handshake ended (the
 * policy chose a listener for its SYN); the number that connected. */
static int connect_n(int port, int n)
{
	struct sockaddr_storage ss;
	socklen_t len = burst_addr(AF_INET, port, &ss);
	int done = 0;

	for (int i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (c < 0)
			break;
		if (connect(c, (struct sockaddr *)&ss, len) == 0)
			done++;
		close(c);
	}
	return done;
}

/* Accept and close whatever waits on @lfd (non-blocking); how many. */
static int drain_queue(int lfd)
{
	int n = 0, fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		close(fd);
		n++;
	}
	return n;
}

static uint64_t steered(struct sockmig_group *g, int fd)
{
	struct sockmig_member_info m;

	if (sockmig_member_get(g, sockmig_cookie(fd), &m) < 0)
		return UINT64_MAX;
	return m.counters.steered;
}

static int members(struct sockmig_group *g)
{
	return sockmig_members(g, NULL, 0);
}

static void cleanup(struct sockmig_group *g, int *fds, int n)
{
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

SM_TEST(api_member_get_by_cookie)
{
	int l[2] = {-1, -1}, ret = SM_FAIL;
	struct sockmig_member_info m, all[2];
	struct sockmig_group *g = NULL;
	uint64_t ck_b;

	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 64, 0), "listener"))
			goto out;
	ck_b = sockmig_cookie(l[1]);
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 3, 2, (uint32_t)getpid()), "add A") ||
	    !ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_DRAINING, 4, 1, 1), "add B") ||
	    !ASSERT_EQ(sockmig_members(g, all, 2), 2, "members"))
		goto out;

	if (!ASSERT_OK(sockmig_member_get(g, sockmig_cookie(l[0]), &m), "get A") ||
	    !ASSERT_TRUE(m.cookie == sockmig_cookie(l[0]), "A's cookie") ||
	    !ASSERT_EQ(m.role, SOCKMIG_ROLE_ACTIVE, "A's role") ||
	    !ASSERT_EQ(m.generation, 3, "A's generation") ||
	    !ASSERT_EQ(m.weight, 2, "A's weight") || !ASSERT_EQ(m.pid, getpid(), "A's owner") ||
	    !ASSERT_TRUE(m.listening, "A listens") ||
	    !ASSERT_EQ(m.counters.steered, 0, "A steered"))
		goto out;
	/* the slot sockmig_members() reports for it */
	for (int i = 0; i < 2; i++)
		if (all[i].cookie == m.cookie && !ASSERT_EQ(m.slot, all[i].slot, "A's slot"))
			goto out;

	if (!ASSERT_OK(sockmig_member_get(g, sockmig_cookie(l[1]), &m), "get B") ||
	    !ASSERT_EQ(m.role, SOCKMIG_ROLE_DRAINING, "B's role") ||
	    !ASSERT_EQ(m.generation, 4, "B's generation") ||
	    !ASSERT_EQ(m.weight, 1, "B's weight") || !ASSERT_EQ(m.pid, 1, "B's owner") ||
	    !ASSERT_TRUE(m.listening, "B listens"))
		goto out;

	/* the counters are the policy's: 7 SYNs, all to the only active one */
	if (!ASSERT_EQ(connect_n(PORT, 7), 7, "clients") ||
	    !ASSERT_EQ(drain_queue(l[0]), 7, "queued on A") ||
	    !ASSERT_EQ(steered(g, l[0]), 7, "A") || !ASSERT_EQ(steered(g, l[1]), 0, "B"))
		goto out;

	/* a member that stopped listening is still one, not listening */
	close(l[1]);
	l[1] = -1;
	if (!ASSERT_OK(sockmig_member_get(g, ck_b, &m), "get B closed") ||
	    !ASSERT_TRUE(m.cookie == ck_b, "B's cookie") ||
	    !ASSERT_TRUE(!m.listening, "B no longer listens") ||
	    !ASSERT_EQ(m.role, SOCKMIG_ROLE_DRAINING, "B's role kept"))
		goto out;

	/* no such member */
	if (!ASSERT_ERR(sockmig_member_get(g, 12345, &m), ENOENT, "unknown cookie") ||
	    !ASSERT_EQ(errno, ENOENT, "errno"))
		goto out;
	ret = SM_PASS;
out:
	cleanup(g, l, 2);
	return ret;
}

SM_TEST(api_group_detach_gives_the_kernel_its_selection)
{
	int l[2] = {-1, -1}, p[2] = {-1, -1}, plain = -1, ret = SM_FAIL;
	struct sockmig_group *g = NULL;

	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 64, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1, 0), "add A") ||
	    !ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_ACTIVE, 1, 1, 0), "add B"))
		goto out;
	/* attached: the policy counts every SYN */
	if (!ASSERT_EQ(connect_n(PORT, 10), 10, "clients") ||
	    !ASSERT_EQ(drain_queue(l[0]) + drain_queue(l[1]), 10, "queued") ||
	    !ASSERT_EQ(steered(g, l[0]) + steered(g, l[1]), 10, "steered while attached"))
		goto out;
	/* detached through either socket of the group: the kernel's hash
	 * chooses, the program no longer runs */
	if (!ASSERT_OK(sockmig_group_detach(l[1]), "detach") ||
	    !ASSERT_EQ(connect_n(PORT, 10), 10, "clients") ||
	    !ASSERT_EQ(drain_queue(l[0]) + drain_queue(l[1]), 10, "queued") ||
	    !ASSERT_EQ(steered(g, l[0]) + steered(g, l[1]), 10, "steered after the detach"))
		goto out;
	/* nothing attached any more; the group's state is still there */
	if (!ASSERT_ERR(sockmig_group_detach(l[0]), ENOENT, "second detach") ||
	    !ASSERT_EQ(members(g), 2, "members kept"))
		goto out;
	/* attached again, detached again */
	if (!ASSERT_OK(sockmig_group_attach(g, l[0]), "attach") ||
	    !ASSERT_EQ(connect_n(PORT, 4), 4, "clients") ||
	    !ASSERT_EQ(drain_queue(l[0]) + drain_queue(l[1]), 4, "queued") ||
	    !ASSERT_EQ(steered(g, l[0]) + steered(g, l[1]), 14, "steered once attached again") ||
	    !ASSERT_OK(sockmig_group_detach(l[0]), "detach again"))
		goto out;
	/* bad input */
	plain = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!ASSERT_OK(plain, "socket") || !ASSERT_OK(pipe2(p, O_CLOEXEC), "pipe") ||
	    !ASSERT_ERR(sockmig_group_detach(plain), EINVAL, "no SO_REUSEPORT") ||
	    !ASSERT_ERR(sockmig_group_detach(p[0]), ENOTSOCK, "a pipe") ||
	    !ASSERT_ERR(sockmig_group_detach(-1), EBADF, "no fd"))
		goto out;
	ret = SM_PASS;
out:
	if (plain >= 0)
		close(plain);
	if (p[0] >= 0) {
		close(p[0]);
		close(p[1]);
	}
	cleanup(g, l, 2);
	return ret;
}

SM_TEST(api_group_collect_forgets_gone_owners)
{
	int l[3] = {-1, -1, -1}, e = -1, ret = SM_FAIL;
	struct sockmig_group *g = NULL, *empty = NULL;
	struct sockmig_member_info m;
	uint64_t ck[3];
	char path[512];
	struct stat st;
	pid_t child;

	for (int i = 0; i < 3; i++) {
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 64, 0), "listener"))
			goto out;
		ck[i] = sockmig_cookie(l[i]);
	}
	/* a process that is gone: B's owner */
	child = fork();
	if (child == 0)
		_exit(0);
	if (!ASSERT_OK(child, "fork") || !ASSERT_EQ(waitpid(child, NULL, 0), child, "reaped"))
		goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1, (uint32_t)getpid()), "add A") ||
	    !ASSERT_OK(add(g, l[1], SOCKMIG_ROLE_ACTIVE, 1, 1, (uint32_t)child), "add B") ||
	    !ASSERT_OK(add(g, l[2], SOCKMIG_ROLE_ACTIVE, 1, 1, (uint32_t)getpid()), "add C"))
		goto out;
	snprintf(path, sizeof(path), "%s", sockmig_group_path(g));

	/* all listen: nothing to forget, whoever exits */
	if (!ASSERT_EQ(sockmig_group_collect(g, (uint32_t)getpid()), 0, "all listen") ||
	    !ASSERT_EQ(members(g), 3, "members"))
		goto out;
	/* B and C stop listening: B's owner is gone, C's (us) lives */
	close(l[1]);
	close(l[2]);
	l[1] = l[2] = -1;
	if (!ASSERT_EQ(sockmig_group_collect(g, 0), 0, "B's owner gone") ||
	    !ASSERT_EQ(members(g), 2, "A and C left") ||
	    !ASSERT_ERR(sockmig_member_get(g, ck[1], &m), ENOENT, "B forgotten") ||
	    !ASSERT_OK(sockmig_member_get(g, ck[2], &m), "C kept"))
		goto out;
	/* we are exiting: C goes; A listens and stays */
	if (!ASSERT_EQ(sockmig_group_collect(g, (uint32_t)getpid()), 0, "C's owner exiting") ||
	    !ASSERT_EQ(members(g), 1, "A left") ||
	    !ASSERT_ERR(sockmig_member_get(g, ck[2], &m), ENOENT, "C forgotten") ||
	    !ASSERT_OK(sockmig_member_get(g, ck[0], &m), "A kept"))
		goto out;
	/* the last one: the group goes with it */
	close(l[0]);
	l[0] = -1;
	if (!ASSERT_EQ(sockmig_group_collect(g, (uint32_t)getpid()), 1, "group removed") ||
	    !ASSERT_TRUE(stat(path, &st) < 0 && errno == ENOENT, "no pinned directory"))
		goto out;

	/* a group being made (no member yet) is not removed */
	if (!ASSERT_OK(e = burst_listener(AF_INET, PORT + 1, 64, 0), "listener"))
		goto out;
	empty = sockmig_group_open(e, NULL);
	if (!ASSERT_TRUE(empty, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_group_collect(empty, (uint32_t)getpid()), 0, "empty group") ||
	    !ASSERT_OK(stat(sockmig_group_path(empty), &st), "its directory stays"))
		goto out;
	ret = SM_PASS;
out:
	if (empty) {
		sockmig_group_destroy(empty);
		sockmig_group_close(empty);
	}
	if (e >= 0)
		close(e);
	if (g)
		sockmig_group_close(g);
	for (int i = 0; i < 3; i++)
		if (l[i] >= 0)
			close(l[i]);
	return ret;
}

SM_TEST(api_lock_wait_bounds_a_held_lock)
{
	int l = -1, lockfd = -1, ret = SM_FAIL;
	struct sockmig_group *g = NULL;
	struct sockmig_member_info m;
	uint64_t ck;

	/* a role change the last active member may make (not draining:
	 * sockmig_member_set() refuses that, see drain_one_*) */
	SOCKMIG_OPTS(sockmig_member_opts, o, .role = SOCKMIG_ROLE_HOLDER);
	if (!ASSERT_OK(l = burst_listener(AF_INET, PORT, 64, 0), "listener"))
		goto out;
	ck = sockmig_cookie(l);
	g = sockmig_group_open(l, NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(add(g, l, SOCKMIG_ROLE_ACTIVE, 1, 1, 0), "add"))
		goto out;
	/* another holder of the group's lock (flock on its directory) */
	lockfd = open(sockmig_group_path(g), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!ASSERT_OK(lockfd, "open the group's directory") ||
	    !ASSERT_OK(flock(lockfd, LOCK_EX), "take the lock"))
		goto out;

	if (!ASSERT_EQ(sockmig_set_lock_wait(50), -1, "no bound by default") ||
	    !ASSERT_ERR(sockmig_member_set(g, ck, &o), ETIMEDOUT, "set, lock held, 50 ms") ||
	    !ASSERT_EQ(errno, ETIMEDOUT, "errno") ||
	    !ASSERT_EQ(sockmig_set_lock_wait(0), 50, "previous bound") ||
	    !ASSERT_ERR(sockmig_member_set(g, ck, &o), ETIMEDOUT, "set, lock held, 0 ms") ||
	    !ASSERT_OK(sockmig_member_get(g, ck, &m), "get") ||
	    !ASSERT_EQ(m.role, SOCKMIG_ROLE_ACTIVE, "nothing changed"))
		goto out;
	/* released: the same call goes through */
	if (!ASSERT_OK(flock(lockfd, LOCK_UN), "release") ||
	    !ASSERT_OK(sockmig_member_set(g, ck, &o), "set, lock free") ||
	    !ASSERT_OK(sockmig_member_get(g, ck, &m), "get") ||
	    !ASSERT_EQ(m.role, SOCKMIG_ROLE_HOLDER, "changed"))
		goto out;
	/* any negative bound is "none" */
	if (!ASSERT_EQ(sockmig_set_lock_wait(-7), 0, "previous bound") ||
	    !ASSERT_EQ(sockmig_set_lock_wait(-1), -1, "none"))
		goto out;
	ret = SM_PASS;
out:
	if (lockfd >= 0)
		close(lockfd);
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	if (l >= 0)
		close(l);
	return ret;
}

/* lo's flags in this namespace, after taking it down if @down; -1 on error. */
static int lo_flags(bool down)
{
	struct ifreq ifr = {.ifr_name = "lo"};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = -1;

	if (fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags &= down ? ~IFF_UP : ~0;
		if (!down || ioctl(fd, SIOCSIFFLAGS, &ifr) == 0)
			ret = ifr.ifr_flags & 0xffff;
	}
	if (fd >= 0)
		close(fd);
	return ret;
}

/* What the bench, the demo and the runner bring up in their namespaces.
 * While lo is down a connect to 127.0.0.1 waits for SYN retransmits: the
 * flag, not a connect, tells that it is down. */
SM_TEST(api_lo_up_brings_loopback_up)
{
	int l = burst_listener(AF_INET, PORT, 64, 0), ret = SM_FAIL, f;

	if (!ASSERT_OK(l, "listener") || !ASSERT_EQ(connect_n(PORT, 1), 1, "lo up: connects") ||
	    !ASSERT_EQ(drain_queue(l), 1, "queued") || !ASSERT_OK(f = lo_flags(true), "lo down") ||
	    !ASSERT_EQ(f & IFF_UP, 0, "lo is down") ||
	    !ASSERT_OK(sockmig_lo_up(), "sockmig_lo_up") ||
	    !ASSERT_OK(f = lo_flags(false), "flags") ||
	    !ASSERT_EQ(f & IFF_UP, IFF_UP, "lo up again") ||
	    !ASSERT_EQ(connect_n(PORT, 3), 3, "up again: connects") ||
	    !ASSERT_EQ(drain_queue(l), 3, "queued") ||
	    !ASSERT_OK(sockmig_lo_up(), "sockmig_lo_up, already up") ||
	    !ASSERT_OK(f = lo_flags(false), "flags") ||
	    !ASSERT_EQ(f & IFF_UP, IFF_UP, "still up") ||
	    !ASSERT_EQ(connect_n(PORT, 1), 1, "still connects"))
		goto out;
	ret = SM_PASS;
out:
	if (l >= 0)
		close(l);
	return ret;
}

/* Drop @caps from this process's effective set (a forked child's). */
static bool drop_effective(uint64_t caps)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0)
		return false;
	data[0].effective &= ~(uint32_t)caps;
	data[1].effective &= ~(uint32_t)(caps >> 32);
	return syscall(SYS_capset, &hdr, data) == 0;
}

/* In a child: the answer with @caps dropped is @want (NULL or a name). */
static bool missing_with(uint64_t caps, const char *want)
{
	int st = -1;
	pid_t c = fork();

	if (c == 0) {
		const char *m;

		if (!drop_effective(caps))
			_exit(3);
		m = sockmig_missing_cap();
		_exit(want ? !(m && strcmp(m, want) == 0) : m != NULL);
	}
	return c > 0 && waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

SM_TEST(api_missing_cap_names_the_capability)
{
	const uint64_t admin = 1ULL << CAP_SYS_ADMIN, bpf = 1ULL << CAP_BPF,
		       perfmon = 1ULL << CAP_PERFMON;

	/* before 5.8 the kernel has neither CAP_BPF nor CAP_PERFMON */
	if (!tu_kernel_has_cap_bpf())
		return ASSERT_TRUE(sockmig_missing_cap() == NULL, "root lacks nothing") &&
				       ASSERT_TRUE(missing_with(admin, "CAP_SYS_ADMIN"),
						   "no CAP_BPF here: CAP_SYS_ADMIN")
			       ? SM_PASS
			       : SM_FAIL;
	if (!ASSERT_TRUE(sockmig_missing_cap() == NULL, "root lacks nothing") ||
	    !ASSERT_TRUE(missing_with(perfmon, NULL), "CAP_SYS_ADMIN covers CAP_PERFMON") ||
	    !ASSERT_TRUE(missing_with(admin, NULL), "CAP_BPF and CAP_PERFMON suffice") ||
	    !ASSERT_TRUE(missing_with(admin | perfmon, "CAP_PERFMON"), "no CAP_PERFMON") ||
	    !ASSERT_TRUE(missing_with(admin | bpf, "CAP_BPF"), "no CAP_BPF") ||
	    !ASSERT_TRUE(missing_with(admin | bpf | perfmon, "CAP_BPF"), "CAP_BPF first"))
		return SM_FAIL;
	return SM_PASS;
}
