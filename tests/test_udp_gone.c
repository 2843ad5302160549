// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The end of a UDP group (lib/udp_gc.c, preload/udp.c): once its last
 * member is gone, its pins and its directory under the pin root go too.
 * A shim'ed tests/servers/udp_echo that exits at SIGTERM takes its group
 * with it; one killed with SIGKILL leaves it to `sockmig status`, which
 * removes it and lists it no more; a group with another server's member
 * stays. In the library: sockmig_udp_group_collect() removes a group with
 * no live member only; sockmig_udp_member_add() through a handle opened
 * before a removal makes the group again, as it was; a handle whose group
 * went removes nothing of the one made since; sockmig_udp_member_leave()
 * of the last member removes the group.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"
#include "harness.h"
#include "preload.h"
#include "sockmig.h"
#include "udp_rig.h"

#define FLOWS	50
#define OUT_LEN 32768

/* The pin directory of the UDP group of 127.0.0.1:UR_PORT in this netns. */
static void ug_dir(char *path, size_t len)
{
	snprintf(path, len, "%s/%llu-udp4-127_0_0_1-%d", SOCKMIG_PIN_ROOT,
		 (unsigned long long)sockmig_netns_self(), UR_PORT);
}

static bool ug_pinned(void)
{
	char path[256];
	struct stat st;

	ug_dir(path, sizeof(path));
	return stat(path, &st) == 0;
}

static socklen_t ug_addr(struct sockaddr_in *a)
{
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons(UR_PORT);
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sizeof(*a);
}

/* Live members of the pinned group (opened by name: nothing made), or -1. */
static int ug_members(struct sockmig_udp_member_info *info, int max)
{
	char path[256];
	struct sockmig_udp_group *g;
	int n;

	ug_dir(path, sizeof(path));
	g = sockmig_udp_group_open_name(strrchr(path, '/') + 1, NULL);
	if (!g)
		return -1;
	n = sockmig_udp_members(g, info, max);
	sockmig_udp_group_close(g);
	return n;
}

/* `sockmig status`: its exit status; whether it lists the UDP group, and
 * with how many members (*members, -1 when not listed). */
static int ug_status(int *members)
{
	char *out = malloc(OUT_LEN), err[4096], want[128];
	const char *p;
	int rc;

	*members = -1;
	if (!out)
		return -1;
	rc = ct_run("status", out, OUT_LEN, err, sizeof(err));
	snprintf(want, sizeof(want), "udp4 127.0.0.1:%d netns ", UR_PORT);
	p = strstr(out, want);
	if (p && (p = strstr(p, ": ")) && sscanf(p, ": %d member", members) != 1)
		*members = -1;
	printf("sockmig status: %d, the UDP group %s (%d members)\n", rc,
	       p ? "listed" : "not listed", *members);
	free(out);
	return rc;
}

static bool ug_start(struct pl_ctx *x, struct tp_proc *s, const char *name, int id)
{
	char args[64];

	snprintf(args, sizeof(args), "%d %d", UR_PORT, id);
	return pl_srv_start(x, s, name, true, false, NULL, args) &&
	       pl_srv_expect(s, "udp", "ready", NULL, 0);
}

/* SIGTERM: its "bye" line, then its exit code. */
static int ug_term(struct tp_proc *s)
{
	if (s->pid <= 0 || kill(s->pid, SIGTERM) < 0 || !pl_srv_expect(s, "udp", "bye", NULL, 0))
		return -1;
	return pl_srv_wait(s, 5000);
}

/* SIGKILL: no code of the shim runs. True once reaped. */
static bool ug_kill(struct tp_proc *s)
{
	int status;

	if (s->pid <= 0 || kill(s->pid, SIGKILL) < 0 || waitpid(s->pid, &status, 0) != s->pid)
		return false;
	s->pid = -1;
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

/* After a failure: what is left of the group goes. */
static void ug_destroy(void)
{
	struct sockaddr_in a;
	socklen_t len = ug_addr(&a);
	struct sockmig_udp_group *g;

	if (!ug_pinned())
		return;
	g = sockmig_udp_group_open((struct sockaddr *)&a, len, NULL);
	if (g) {
		sockmig_udp_group_destroy(g);
		sockmig_udp_group_close(g);
	}
}

static int ug_setup(struct pl_ctx *x)
{
	int ret;

	if (!ct_have_tool())
		return SKIP("no .output/sockmig (run make all from the repository's root)");
	ret = pl_setup(x);
	if (ret != SM_PASS)
		return ret;
	if (!tp_server_copy("udp_echo", x->server)) {
		pl_cleanup(x);
		return SM_FAIL;
	}
	return SM_PASS;
}

/*
 * One member: the server's exit at SIGTERM (its close, then exit())
 * removes the group at once; after a SIGKILL the group stays pinned, with
 * no live member, until `sockmig status` removes it (and lists it not).
 */
SM_TEST(preload_udp_group_gone_with_last_server)
{
	struct tp_proc s = TP_PROC_INIT;
	struct pl_ctx x;
	int ret = ug_setup(&x), members;

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	if (!ASSERT_TRUE(ug_start(&x, &s, "term", 1), "ready") ||
	    !ASSERT_TRUE(ug_pinned(), "the group is pinned") ||
	    !ASSERT_EQ(ug_status(&members), 0, "status") ||
	    !ASSERT_EQ(members, 1, "status lists the group, one member") ||
	    !ASSERT_EQ(ug_term(&s), 0, "SIGTERM: exit code") ||
	    !ASSERT_EQ(tp_proc_stderr(&s, NULL), 0, "stderr lines") ||
	    !ASSERT_TRUE(!ug_pinned(), "SIGTERM: the group's directory is gone") ||
	    !ASSERT_EQ(pl_netns_groups(&x), 0, "SIGTERM: groups of this netns") ||
	    !ASSERT_EQ(ug_status(&members), 0, "status") ||
	    !ASSERT_EQ(members, -1, "SIGTERM: status does not list it"))
		goto out;
	tp_proc_kill(&s);
	if (!ASSERT_TRUE(ug_start(&x, &s, "kill", 2), "ready") ||
	    !ASSERT_TRUE(ug_pinned(), "the group is pinned again") ||
	    !ASSERT_TRUE(ug_kill(&s), "SIGKILL") ||
	    !ASSERT_TRUE(ug_pinned(), "SIGKILL: pinned until someone looks") ||
	    !ASSERT_EQ(ug_members(NULL, 0), 0, "SIGKILL: no live member") ||
	    !ASSERT_EQ(ug_status(&members), 0, "status") ||
	    !ASSERT_EQ(members, -1, "SIGKILL: status does not list it") ||
	    !ASSERT_TRUE(!ug_pinned(), "SIGKILL: status removed the group's directory") ||
	    !ASSERT_EQ(pl_netns_groups(&x), 0, "SIGKILL: groups of this netns"))
		goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&s);
	if (ret != SM_PASS)
		ug_destroy();
	pl_cleanup(&x);
	return ret;
}

/*
 * Two servers: one exits (SIGTERM), the group stays with the other's
 * member, which serves every flow; the other killed, `sockmig status`
 * removes the group.
 */
SM_TEST(preload_udp_group_stays_with_other_server)
{
	struct tp_proc a = TP_PROC_INIT, b = TP_PROC_INIT;
	struct sockmig_udp_member_info info[4];
	struct pl_ctx x;
	struct ur_rig r;
	uint32_t seq = 0;
	int ret = ug_setup(&x), members, by_b = 0;

	ur_init(&r);
	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	if (!ASSERT_TRUE(ug_start(&x, &a, "a", 1), "a ready") ||
	    !ASSERT_TRUE(ug_start(&x, &b, "b", 2), "b ready") ||
	    !ASSERT_EQ(ug_members(info, 4), 2, "members") ||
	    !ASSERT_OK(ur_start(&r, AF_INET, false, SOCKMIG_UDP_MODE_DEFAULT, 0), "clients") ||
	    !ASSERT_OK(ur_round(&r, 0, FLOWS, ++seq), "round with both") ||
	    !ASSERT_EQ(ug_term(&a), 0, "a exits") || !ASSERT_TRUE(ug_pinned(), "the group stays") ||
	    !ASSERT_EQ(ug_members(info, 4), 1, "members after a's exit") ||
	    !ASSERT_EQ((int)info[0].pid, b.pid, "b's member") ||
	    !ASSERT_EQ(ug_status(&members), 0, "status") ||
	    !ASSERT_EQ(members, 1, "status lists the group, one member") ||
	    !ASSERT_TRUE(ug_pinned(), "status kept the group"))
		goto out;
	for (int k = 0; k < 2; k++)
		if (!ASSERT_OK(ur_round(&r, 0, FLOWS, ++seq), "round after a's exit"))
			goto out;
	for (int i = 0; i < FLOWS; i++)
		by_b += r.last[i] == 2;
	printf("after a's exit: %d of %d flows answered by b\n", by_b, FLOWS);
	if (!ASSERT_EQ(by_b, FLOWS, "every flow served by b") ||
	    !ASSERT_EQ(ur_unexplained_lost(&r), 0, "unanswered datagrams") ||
	    !ASSERT_EQ(tp_proc_stderr(&a, NULL) + tp_proc_stderr(&b, NULL), 0, "stderr lines") ||
	    !ASSERT_TRUE(ug_kill(&b), "SIGKILL b") ||
	    !ASSERT_EQ(ug_status(&members), 0, "status") ||
	    !ASSERT_EQ(members, -1, "status does not list it") ||
	    !ASSERT_TRUE(!ug_pinned(), "the group's directory is gone"))
		goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&a);
	tp_proc_kill(&b);
	ur_stop(&r);
	if (ret != SM_PASS)
		ug_destroy();
	pl_cleanup(&x);
	return ret;
}

/* A UDP socket bound with SO_REUSEPORT to 127.0.0.1:UR_PORT. */
static int ug_socket(void)
{
	struct sockaddr_in a;
	socklen_t len = ug_addr(&a);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
			bind(fd, (struct sockaddr *)&a, len) < 0)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/*
 * The library: a collect removes only a group with no live member; a
 * handle opened before the removal adds its socket to the group made
 * again as it was (mode none here); a handle whose group went removes
 * nothing of the group made since; the last member's leave removes it.
 */
SM_TEST(udp_group_collect_and_join)
{
	struct sockmig_udp_group *a = NULL, *b = NULL, *c = NULL;
	struct sockaddr_in addr;
	socklen_t len = ug_addr(&addr);
	char path[256];
	int ret = SM_FAIL, s1 = -1, s2 = -1;

	SOCKMIG_OPTS(sockmig_udp_group_opts, o, .mode = SOCKMIG_UDP_MODE_NONE);
	ug_dir(path, sizeof(path));
	if (!ASSERT_TRUE((a = sockmig_udp_group_open((struct sockaddr *)&addr, len, &o)) != NULL,
			 "open (made)") ||
	    !ASSERT_TRUE((b = sockmig_udp_group_open_name(strrchr(path, '/') + 1, NULL)) != NULL,
			 "open by name") ||
	    !ASSERT_EQ(sockmig_udp_group_collect(b), 1, "collect: no member, removed") ||
	    !ASSERT_TRUE(!ug_pinned(), "the directory is gone") ||
	    !ASSERT_EQ(sockmig_udp_group_collect(b), 1, "collect again: gone before") ||
	    !ASSERT_TRUE((s1 = ug_socket()) >= 0, "socket 1") ||
	    !ASSERT_OK(sockmig_udp_member_add(a, s1, NULL), "add through the older handle") ||
	    !ASSERT_TRUE(ug_pinned(), "the group is pinned again") ||
	    !ASSERT_EQ(ug_members(NULL, 0), 1, "its member is in the pinned group") ||
	    !ASSERT_TRUE((c = sockmig_udp_group_open_name(strrchr(path, '/') + 1, NULL)) != NULL,
			 "open by name") ||
	    !ASSERT_EQ(sockmig_udp_group_mode(c), SOCKMIG_UDP_MODE_NONE, "made as it was") ||
	    !ASSERT_EQ(sockmig_udp_group_collect(c), 0, "collect: a live member, kept") ||
	    !ASSERT_EQ(sockmig_udp_group_collect(b), 1,
		       "collect through a handle of the old one") ||
	    !ASSERT_TRUE(ug_pinned(), "the new one is kept") ||
	    !ASSERT_TRUE((s2 = ug_socket()) >= 0, "socket 2") ||
	    !ASSERT_OK(sockmig_udp_member_add(c, s2, NULL), "add socket 2") ||
	    !ASSERT_EQ(ug_members(NULL, 0), 2, "two members") ||
	    !ASSERT_OK(sockmig_udp_member_leave(c, s2), "socket 2 leaves") ||
	    !ASSERT_EQ(sockmig_udp_member_leave(c, s2), -ENOENT, "leaves again: no member") ||
	    !ASSERT_EQ(ug_members(NULL, 0), 1, "one member") || !ASSERT_TRUE(ug_pinned(), "kept"))
		goto out;
	close(s1);
	s1 = -1;
	if (!ASSERT_EQ(sockmig_udp_group_collect(c), 1, "socket 1 closed: removed") ||
	    !ASSERT_TRUE(!ug_pinned(), "the directory is gone"))
		goto out;
	/* the last member's leave */
	sockmig_udp_group_close(c);
	c = NULL;
	if (!ASSERT_TRUE((c = sockmig_udp_group_open((struct sockaddr *)&addr, len, NULL)) != NULL,
			 "open (made)") ||
	    !ASSERT_OK(sockmig_udp_member_add(c, s2, NULL), "add socket 2") ||
	    !ASSERT_OK(sockmig_udp_member_leave(c, s2), "the last member leaves") ||
	    !ASSERT_TRUE(!ug_pinned(), "the group went with it"))
		goto out;
	ret = SM_PASS;
out:
	if (s1 >= 0)
		close(s1);
	if (s2 >= 0)
		close(s2);
	sockmig_udp_group_close(a);
	sockmig_udp_group_close(b);
	sockmig_udp_group_close(c);
	if (ret != SM_PASS)
		ug_destroy();
	return ret;
}
