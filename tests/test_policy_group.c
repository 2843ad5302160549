// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Groups: two processes sharing one, opening by listener or name, bad input, pins. */
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define PORT TU_BURST_PORT

SM_TEST(group_shared_by_two_processes)
{
	int l[2] = {-1, -1}, per[2] = {0}, ret = SM_FAIL, pipes[2][2], status;
	struct sockmig_group *g = NULL;
	struct sockmig_member_info info[4];
	struct stat st;
	char path[512], ch;
	pid_t pid;

	l[0] = burst_listener(AF_INET, PORT, 1024, 0);
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A"))
		goto out;
	snprintf(path, sizeof(path), "%s", sockmig_group_path(g));
	if (pipe(pipes[0]) < 0 || pipe(pipes[1]) < 0)
		goto out;
	pid = fork();
	if (pid == 0) {
		/* the second process: its own listener, its own handle */
		int b = burst_listener(AF_INET, PORT, 1024, 0);
		struct sockmig_group *g2 = sockmig_group_open(b, NULL);
		char ok = g2 && tu_add(g2, b, SOCKMIG_ROLE_ACTIVE, 2, 1) == 0 ? 'y' : 'n';

		if (write(pipes[0][1], &ok, 1) != 1 || read(pipes[1][0], &ok, 1) != 1)
			_exit(1);
		/* the parent counted; B leaves, the group stays for A */
		ok = sockmig_member_leave(g2, b) == 0 ? 0 : 1;
		sockmig_group_close(g2);
		close(b);
		_exit(ok);
	}
	if (!ASSERT_EQ(read(pipes[0][0], &ch, 1), 1, "child ready") ||
	    !ASSERT_EQ(ch, 'y', "child registered B"))
		goto reap;
	if (!ASSERT_EQ(sockmig_members(g, info, 4), 2, "members seen by the parent") ||
	    !ASSERT_TRUE(info[0].pid != info[1].pid, "two registering processes"))
		goto reap;
	/* A drains (no shutdown): every SYN goes to the child's B */
	SOCKMIG_OPTS(sockmig_drain_opts, d, .no_shutdown = true);
	if (!ASSERT_OK(sockmig_member_drain(g, l[0], &d, NULL), "A draining"))
		goto reap;
	/* the child's B is not ours to accept: count its steering instead */
	l[1] = -1;
	{
		struct burst *c = calloc(1, sizeof(*c));

		if (c && burst_start(c, AF_INET, PORT, 50, false) == 0)
			burst_connected(c, 2000);
		per[0] = burst_accept_queue(l[0]);
		if (c)
			burst_close(c);
		free(c);
	}
	if (!ASSERT_EQ(per[0], 0, "A's queue") ||
	    !ASSERT_EQ(sockmig_members(g, info, 4), 2, "members") ||
	    !ASSERT_EQ(info[0].counters.steered + info[1].counters.steered, 50,
		       "steered to the child's B"))
		goto reap;
	ret = SM_PASS;
reap:
	ch = 'x';
	if (write(pipes[1][1], &ch, 1) != 1)
		ret = SM_FAIL;
	waitpid(pid, &status, 0);
	if (!ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child left the group"))
		ret = SM_FAIL;
	/* the last member leaves: the pinned state goes */
	if (!ASSERT_OK(sockmig_member_leave(g, l[0]), "A leaves") ||
	    !ASSERT_TRUE(stat(path, &st) < 0 && errno == ENOENT, "pinned directory removed"))
		ret = SM_FAIL;
out:
	sockmig_group_close(g);
	for (int i = 0; i < 2; i++)
		if (l[i] >= 0)
			close(l[i]);
	return ret;
}

SM_TEST(group_open_bad_input)
{
	int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int plain = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int unbound = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, ret = SM_FAIL;
	int a = burst_listener(AF_INET, PORT, 16, 0),
	    other = burst_listener(AF_INET, PORT + 1, 16, 0);
	int quiet = burst_listener(AF_INET, PORT, 0, 0);
	struct sockaddr_storage ss;
	struct sockmig_group *g = NULL;
	SOCKMIG_OPTS(sockmig_group_opts, tmp, .pin_root = "/tmp/sockmig-not-bpffs");

	setsockopt(unbound, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	bind(plain, (struct sockaddr *)&ss, burst_addr(AF_INET, PORT + 2, &ss));
	if (!ASSERT_TRUE(!sockmig_group_open(udp, NULL) && errno == EINVAL, "UDP socket") ||
	    !ASSERT_TRUE(!sockmig_group_open(plain, NULL) && errno == EINVAL, "no SO_REUSEPORT") ||
	    !ASSERT_TRUE(strstr(sockmig_last_error(), "SO_REUSEPORT"), "message") ||
	    !ASSERT_TRUE(!sockmig_group_open(unbound, NULL) && errno == EINVAL, "unbound") ||
	    !ASSERT_TRUE(!sockmig_group_open(12345, NULL) && errno == EBADF, "bad fd") ||
	    !ASSERT_TRUE(!sockmig_group_open(a, &tmp) && errno == ENOENT,
			 "pin root not on bpffs") ||
	    !ASSERT_TRUE(strstr(sockmig_last_error(), "no BPF filesystem"), "message"))
		goto out;
	printf("%s\n", sockmig_last_error());
	g = sockmig_group_open(a, NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_ERR(sockmig_member_add(g, other, NULL), EXDEV, "member of another group") ||
	    !ASSERT_ERR(sockmig_member_add(g, quiet, NULL), EBUSY, "not listening") ||
	    !ASSERT_ERR(sockmig_member_set(g, 42, NULL), ENOENT, "unknown cookie") ||
	    !ASSERT_ERR(sockmig_member_drain(g, a, NULL, NULL), ENOENT, "drain a non-member"))
		goto out;
	ret = SM_PASS;
out:
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	close(udp);
	close(plain);
	close(unbound);
	close(a);
	close(other);
	close(quiet);
	return ret;
}

/* A listener bound to a device is in a kernel reuseport group of its own;
 * a sockmig group is named by address and port only: refused, never mixed
 * with the unbound listeners' group. */
SM_TEST(group_refuses_device_bound_listener)
{
	int a = burst_listener(AF_INET, PORT, 16, 0), one = 1, ret = SM_FAIL;
	int d = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockmig_group *g = NULL, *gd;
	struct sockaddr_storage ss;

	if (!ASSERT_OK(setsockopt(d, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), "reuseport") ||
	    !ASSERT_OK(setsockopt(d, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3), "SO_BINDTODEVICE lo") ||
	    !ASSERT_OK(bind(d, (struct sockaddr *)&ss, burst_addr(AF_INET, PORT, &ss)), "bind") ||
	    !ASSERT_OK(listen(d, 16), "listen"))
		goto out;
	g = sockmig_group_open(a, NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_ERR(sockmig_member_add(g, d, NULL), EOPNOTSUPP, "device-bound member"))
		goto out;
	printf("%s\n", sockmig_last_error());
	gd = sockmig_group_open(d, NULL);
	if (gd)
		sockmig_group_close(gd);
	if (!ASSERT_TRUE(!gd && errno == EOPNOTSUPP, "group of a device-bound listener") ||
	    !ASSERT_TRUE(strstr(sockmig_last_error(), "SO_BINDTODEVICE"), "message"))
		goto out;
	ret = SM_PASS;
out:
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	close(a);
	close(d);
	return ret;
}

SM_TEST(group_open_unprivileged_leaves_nothing)
{
	struct sockmig_group *g;
	struct stat st;
	int a = burst_listener(AF_INET, PORT, 16, 0);
	bool existed = stat(SOCKMIG_PIN_ROOT, &st) == 0;

	if (!ASSERT_OK(setresgid(65534, 65534, 65534), "setresgid") ||
	    !ASSERT_OK(setresuid(65534, 65534, 65534), "setresuid nobody"))
		return SM_FAIL;
	g = sockmig_group_open(a, NULL);
	printf("as nobody: %s\n", sockmig_last_error());
	if (!ASSERT_TRUE(!g && errno == EPERM, "refused with EPERM"))
		return SM_FAIL;
	if (!existed && !ASSERT_TRUE(stat(SOCKMIG_PIN_ROOT, &st) < 0, "no directory left"))
		return SM_FAIL;
	return SM_PASS;
}

SM_TEST(group_open_by_name_and_list)
{
	int a = burst_listener(AF_INET6, PORT, 16, 0), ret = SM_FAIL, n;
	struct sockmig_group *g = NULL, *h = NULL;
	char names[8][SOCKMIG_NAME_MAX], name[SOCKMIG_NAME_MAX];
	struct sockmig_member_info info[2];
	struct stat st;

	g = sockmig_group_open(a, NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add(g, a, SOCKMIG_ROLE_ACTIVE, 7, 1), "register"))
		goto out;
	/* the name spells netns, family, address and port */
	if (!ASSERT_OK(stat("/proc/self/ns/net", &st), "netns") ||
	    !ASSERT_OK(sockmig_group_name_for(AF_INET6, &in6addr_loopback, PORT, st.st_ino, name,
					      sizeof(name)),
		       "name_for") ||
	    !ASSERT_TRUE(strcmp(name, sockmig_group_name(g)) == 0, "same name"))
		goto out;
	n = sockmig_group_list(NULL, names, 8);
	if (!ASSERT_GT(n, 0, "groups listed"))
		goto out;
	h = sockmig_group_open_name(name, NULL);
	if (!ASSERT_TRUE(h, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_members(h, info, 2), 1, "members seen by name") ||
	    !ASSERT_EQ(info[0].generation, 7, "generation") ||
	    !ASSERT_EQ(info[0].cookie, sockmig_cookie(a), "cookie"))
		goto out;
	if (!ASSERT_TRUE(!sockmig_group_open_name("1-tcp4-127_0_0_1-9", NULL) && errno == ENOENT,
			 "missing group") ||
	    !ASSERT_TRUE(!sockmig_group_open_name("../etc", NULL) && errno == EINVAL, "bad name"))
		goto out;
	ret = SM_PASS;
out:
	sockmig_group_close(h);
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	close(a);
	return ret;
}

/* A bpffs of the case's own, mounted with @opts in a private mount
 * namespace (the machine's /sys/fs/bpf is not touched); its path in @dir. */
static bool own_bpffs(char *dir, const char *opts)
{
	strcpy(dir, "/tmp/sockmig-bpffs-XXXXXX");
	if (!ASSERT_OK(unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)") ||
	    !ASSERT_OK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make / rprivate") ||
	    !ASSERT_TRUE(mkdtemp(dir), "mkdtemp"))
		return false;
	if (!ASSERT_OK(mount("bpf", dir, "bpf", 0, opts), "mount bpffs")) {
		rmdir(dir);
		return false;
	}
	return true;
}

static void own_bpffs_gone(const char *dir)
{
	umount2(dir, MNT_DETACH);
	rmdir(dir);
}

/* Run @fn(@arg) as uid 65534 in a child; its exit status (0 for success). */
static int as_nobody(int (*fn)(const char *), const char *arg)
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
		if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
			_exit(2);
		_exit(fn(arg) ? 1 : 0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static int squat(const char *root)
{
	return mkdir(root, 0777) < 0 ? -errno : 0;
}

/*
 * bpffs mounted 1777 (as scripts/deps used to): uid 65534 makes the pin
 * root first. Root must still open a group there (the squatter's directory
 * moved aside, a private root in its place) and the policy must steer; the
 * root stays when the last group goes, so that the window does not reopen.
 */
SM_TEST(policy_pin_root_squatted_by_other_uid)
{
	int l[2] = {-1, -1}, per[2] = {0}, ret = SM_FAIL, foreign = 0;
	char dir[64], root[128];
	struct sockmig_group *g = NULL;
	struct dirent *de;
	struct stat st;
	DIR *d;
	SOCKMIG_OPTS(sockmig_group_opts, go, .pin_root = root);

	if (!own_bpffs(dir, "mode=1777"))
		return SM_FAIL;
	snprintf(root, sizeof(root), "%s/sockmig", dir);
	if (!ASSERT_EQ(as_nobody(squat, root), 0, "uid 65534 makes the pin root") ||
	    !ASSERT_OK(stat(root, &st), "stat root") || !ASSERT_EQ(st.st_uid, 65534, "its owner"))
		goto out;
	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], &go);
	if (!ASSERT_TRUE(g, sockmig_last_error()))
		goto out;
	if (!ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
	    !ASSERT_OK(tu_add(g, l[1], SOCKMIG_ROLE_DRAINING, 1, 1), "register B draining") ||
	    !ASSERT_EQ(tu_burst(AF_INET, l, 2, 100, per), 100, "accepted") ||
	    !ASSERT_EQ(per[0], 100, "A (the policy steers)") ||
	    !ASSERT_EQ(tu_steered(g, l[0]), 100, "A steered"))
		goto out;
	if (!ASSERT_OK(lstat(root, &st), "stat root") || !ASSERT_EQ(st.st_uid, 0, "root's owner") ||
	    !ASSERT_EQ(st.st_mode & 07777, 0700, "root's mode"))
		goto out;
	d = opendir(dir);
	while (d && (de = readdir(d)))
		if (strncmp(de->d_name, "sockmig-foreign-65534-", 22) == 0)
			foreign++;
	if (d)
		closedir(d);
	if (!ASSERT_EQ(foreign, 1, "the squatter's directory, moved aside"))
		goto out;
	/* the last group goes: the root stays, and nobody cannot take it */
	sockmig_group_destroy(g);
	sockmig_group_close(g);
	g = NULL;
	if (!ASSERT_OK(lstat(root, &st), "root after the last group") ||
	    !ASSERT_EQ(st.st_uid, 0, "still root's") ||
	    !ASSERT_EQ(as_nobody(squat, root), 1, "uid 65534 cannot make it again"))
		goto out;
	ret = SM_PASS;
out:
	tu_cleanup(g, l, 2);
	own_bpffs_gone(dir);
	return ret;
}

/*
 * Part of a group's pins removed (here the selection table): the next open
 * makes new maps for what is missing, and the program it attaches must
 * read those, not the old ones. A and B active; the table pins go; a new
 * handle marks B draining: B must get no SYN.
 */
SM_TEST(policy_partly_removed_pins)
{
	int l[2] = {-1, -1}, per[2] = {0}, ret = SM_FAIL;
	struct sockmig_group *g = NULL, *g2 = NULL;
	char pin[512];

	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
	    !ASSERT_OK(tu_add(g, l[1], SOCKMIG_ROLE_ACTIVE, 1, 1), "register B"))
		goto out;
	snprintf(pin, sizeof(pin), "%s/table", sockmig_group_path(g));
	if (!ASSERT_OK(unlink(pin), "unlink table"))
		goto out;
	snprintf(pin, sizeof(pin), "%s/tabidx", sockmig_group_path(g));
	if (!ASSERT_OK(unlink(pin), "unlink tabidx"))
		goto out;
	g2 = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g2, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add(g2, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A again") ||
	    !ASSERT_OK(tu_set_role(g2, l[1], SOCKMIG_ROLE_DRAINING), "B draining"))
		goto out;
	if (!ASSERT_EQ(tu_burst(AF_INET, l, 2, 200, per), 200, "accepted"))
		goto out;
	printf("A %d, B (draining) %d\n", per[0], per[1]);
	if (!ASSERT_EQ(per[1], 0, "B draining") ||
	    !ASSERT_EQ(tu_steered(g2, l[0]), 200, "A steered"))
		goto out;
	ret = SM_PASS;
out:
	sockmig_group_close(g);
	tu_cleanup(g2, l, 2);
	return ret;
}

/*
 * A group pinned before the per-CPU counters ("pcounters" missing, made
 * here by removing its pin): the next open makes the map, gives each live
 * member the counters of its slot, and replaces the program, which
 * registering A again attaches. B, not registered again, counts too: 200
 * SYNs over A and B, each member's counters equal to what it accepted.
 */
SM_TEST(policy_counters_pin_made_again)
{
	int l[2] = {-1, -1}, per[2] = {0}, ret = SM_FAIL;
	struct sockmig_group *g = NULL, *g2 = NULL;
	char pin[512];

	for (int i = 0; i < 2; i++)
		if (!ASSERT_OK(l[i] = burst_listener(AF_INET, PORT, 1024, 0), "listener"))
			goto out;
	g = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add(g, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A") ||
	    !ASSERT_OK(tu_add(g, l[1], SOCKMIG_ROLE_ACTIVE, 1, 1), "register B"))
		goto out;
	snprintf(pin, sizeof(pin), "%s/pcounters", sockmig_group_path(g));
	if (!ASSERT_OK(unlink(pin), "unlink pcounters"))
		goto out;
	g2 = sockmig_group_open(l[0], NULL);
	if (!ASSERT_TRUE(g2, sockmig_last_error()) ||
	    !ASSERT_OK(tu_add(g2, l[0], SOCKMIG_ROLE_ACTIVE, 1, 1), "register A again"))
		goto out;
	if (!ASSERT_EQ(tu_burst(AF_INET, l, 2, 200, per), 200, "accepted"))
		goto out;
	printf("A %d (steered %llu), B %d (steered %llu)\n", per[0],
	       (unsigned long long)tu_steered(g2, l[0]), per[1],
	       (unsigned long long)tu_steered(g2, l[1]));
	if (!ASSERT_GT(per[1], 0, "B took some") ||
	    !ASSERT_EQ(tu_steered(g2, l[0]), per[0], "A steered") ||
	    !ASSERT_EQ(tu_steered(g2, l[1]), per[1], "B steered"))
		goto out;
	ret = SM_PASS;
out:
	sockmig_group_close(g);
	tu_cleanup(g2, l, 2);
	return ret;
}
