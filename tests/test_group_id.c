// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A group's identity as a struct: made, parsed, read from a socket and
 * from an open group, the same every way; names that are not a group's
 * refused; pinned groups listed by netns and port.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "burst.h"
#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define PORT 34150

static bool same_id(const struct sockmig_group_id *a, const struct sockmig_group_id *b)
{
	return a->netns == b->netns && a->family == b->family && a->port == b->port &&
	       memcmp(&a->addr, &b->addr, sizeof(a->addr)) == 0 && strcmp(a->name, b->name) == 0;
}

/* Every way to an id of listener @fd agrees, and the name is the group's. */
static int ids_agree(int family, int port)
{
	struct sockmig_group_id of_fd, of_g, parsed, made;
	struct sockmig_group *g = NULL;
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} lo;
	int fd = -1, ret = SM_FAIL;

	inet_pton(family, family == AF_INET ? "127.0.0.1" : "::1", &lo);
	if (!ASSERT_OK(fd = burst_listener(family, port, 16, 0), "listener") ||
	    !ASSERT_OK(sockmig_group_id_of_fd(fd, &of_fd), "id of fd") ||
	    !ASSERT_TRUE(g = sockmig_group_open(fd, NULL), sockmig_last_error()) ||
	    !ASSERT_OK(sockmig_group_id_get(g, &of_g), "id of group") ||
	    !ASSERT_OK(sockmig_group_id_parse(sockmig_group_name(g), &parsed), "parsed") ||
	    !ASSERT_OK(sockmig_group_id_make(family, &lo, port, 0, &made), "made"))
		goto out;
	if (!ASSERT_TRUE(of_fd.netns && of_fd.netns == sockmig_netns_self(), "this netns") ||
	    !ASSERT_EQ(of_fd.family, family, "family") || !ASSERT_EQ(of_fd.port, port, "port") ||
	    !ASSERT_TRUE(memcmp(&of_fd.addr, &lo, family == AF_INET ? 4 : 16) == 0, "address") ||
	    !ASSERT_TRUE(strcmp(of_fd.name, sockmig_group_name(g)) == 0, "the group's name") ||
	    !ASSERT_TRUE(same_id(&of_fd, &of_g), "fd = group") ||
	    !ASSERT_TRUE(same_id(&of_fd, &parsed), "fd = parsed") ||
	    !ASSERT_TRUE(same_id(&of_fd, &made), "fd = made"))
		goto out;
	sockmig_group_close(g);
	g = sockmig_group_open_id(&made, NULL);
	if (!ASSERT_TRUE(g, "open by id") ||
	    !ASSERT_TRUE(strcmp(sockmig_group_name(g), made.name) == 0, "the same group"))
		goto out;
	ret = SM_PASS;
out:
	tu_cleanup(g, &fd, 1);
	return ret;
}

SM_TEST(group_id_ipv4_every_way_agrees)
{
	return ids_agree(AF_INET, PORT);
}

SM_TEST(group_id_ipv6_every_way_agrees)
{
	return ids_agree(AF_INET6, PORT + 1);
}

SM_PURE(group_id_parse_refuses_non_names)
{
	static const char *const bad[] = {
		"",
		"abc",
		"0-tcp4-127_0_0_1-80",	   /* no netns 0 */
		"x12-tcp4-127_0_0_1-80",   /* netns not a number */
		"012-tcp4-127_0_0_1-80",   /* not the one spelling */
		"12-tcp5-127_0_0_1-80",	   /* family */
		"12-udp4-127_0_0_1-80",	   /* protocol */
		"12-tcp4-127_0_0_1-0",	   /* port 0 */
		"12-tcp4-127_0_0_1-65536", /* port too big */
		"12-tcp4-127_0_0_1-080",   /* not the one spelling */
		"12-tcp4-1_2_3-80",	   /* address */
		"12-tcp4-127.0.0.1-80",	   /* dots: never a name */
		"12-tcp6-127_0_0_1-80",	   /* a v4 address as v6 */
		"12-tcp4-127_0_0_1-80/x",  /* a path */
		"12-tcp4-127_0_0_1-80-1",  /* trailing */
	};
	struct sockmig_group_id id;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!ASSERT_EQ(sockmig_group_id_parse(bad[i], &id), -EINVAL, bad[i]))
			return SM_FAIL;
	if (!ASSERT_OK(sockmig_group_id_parse("4026531840-tcp6-::1-443", &id), "::1") ||
	    !ASSERT_EQ(id.family, AF_INET6, "family") || !ASSERT_EQ(id.port, 443, "port") ||
	    !ASSERT_TRUE(id.netns == 4026531840ull, "netns"))
		return SM_FAIL;
	return SM_PASS;
}

SM_TEST(group_id_list_by_netns_and_port)
{
	struct sockmig_group *g[3] = {NULL, NULL, NULL};
	struct sockmig_group_id out[3];
	uint64_t self = sockmig_netns_self();
	int fd[3] = {-1, -1, -1}, ret = SM_FAIL;
	/* 34152 sorts before 34153 and 34160 ("...-34152" < "...-34153") */
	static const int ports[3] = {PORT + 3, PORT + 2, PORT + 10};

	for (int i = 0; i < 3; i++)
		if (!ASSERT_OK(fd[i] = burst_listener(AF_INET, ports[i], 16, 0), "listener") ||
		    !ASSERT_TRUE(g[i] = sockmig_group_open(fd[i], NULL), sockmig_last_error()))
			goto out;
	if (!ASSERT_EQ(sockmig_group_list_ids(NULL, self, PORT + 2, out, 3), 1, "one port") ||
	    !ASSERT_EQ(out[0].port, PORT + 2, "its port") ||
	    !ASSERT_EQ(sockmig_group_list_ids(NULL, self, 0, out, 3), 3, "this netns") ||
	    !ASSERT_EQ(out[0].port, PORT + 2, "sorted 1") ||
	    !ASSERT_EQ(out[1].port, PORT + 3, "sorted 2") ||
	    !ASSERT_EQ(out[2].port, PORT + 10, "sorted 3") ||
	    !ASSERT_EQ(sockmig_group_list_ids(NULL, self + 1, 0, out, 3), 0, "another netns") ||
	    !ASSERT_EQ(sockmig_group_list_ids(NULL, self, 0, out, 1), 3, "more than fit") ||
	    !ASSERT_EQ(out[0].port, PORT + 2, "the first by name") ||
	    !ASSERT_EQ(sockmig_group_list_ids(NULL, self, 0, NULL, 0), 3, "count only") ||
	    !ASSERT_EQ(sockmig_group_list_ids(NULL, 0, 70000, out, 3), -EINVAL, "bad port"))
		goto out;
	ret = SM_PASS;
out:
	for (int i = 0; i < 3; i++)
		tu_cleanup(g[i], &fd[i], 1);
	return ret;
}
