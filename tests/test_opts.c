// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Options structs as callers built against another version of sockmig.h
 * pass them: a larger sz is accepted when the bytes the library does not
 * know are zero, and refused with EINVAL and one exact message when one is
 * not; a smaller sz leaves the newer fields at their defaults. Every
 * function that takes options is asked.
 */
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "util.h"

#define PORT 32400

/* An options struct of a newer header: 8 bytes past what this one knows. */
#define BIG(T)                                                                                     \
	struct {                                                                                   \
		struct T o;                                                                        \
		unsigned char more[8];                                                             \
	}
/* Zeroed, sz set to the whole; byte 3 of the unknown tail set when @junk. */
#define BIG_INIT(v, junk)                                                                          \
	do {                                                                                       \
		memset(&(v), 0, sizeof(v));                                                        \
		(v).o.sz = sizeof(v);                                                              \
		(v).more[3] = (junk);                                                              \
	} while (0)

/* @ret is the call's negative errno: -EINVAL, and the message names the
 * struct @type and the byte @at. */
static bool refused(const char *what, int ret, const char *type, size_t at)
{
	char want[128];

	snprintf(want, sizeof(want), "%s: unknown non-zero field at byte %zu", type, at);
	if (!ASSERT_ERR(ret, EINVAL, what))
		return false;
	if (strcmp(sockmig_last_error(), want) != 0) {
		printf("%s: last error \"%s\", expected \"%s\"\n", what, sockmig_last_error(),
		       want);
		return false;
	}
	return true;
}

SM_TEST(opts_unknown_fields_refused)
{
	int a = burst_listener(AF_INET, PORT, 16, 0), b = burst_listener(AF_INET, PORT, 16, 0);
	struct sockmig_group *g = NULL, *g2 = NULL;
	struct sockmig_holder *h = NULL;
	char names[4][SOCKMIG_NAME_MAX];
	struct sockaddr_storage ss;
	socklen_t len = burst_addr(AF_INET, PORT, &ss);
	BIG(sockmig_group_opts) go;
	BIG(sockmig_member_opts) mo;
	BIG(sockmig_drain_opts) dro;
	BIG(sockmig_legacy_drain_opts) lo;
	BIG(sockmig_holder_opts) ho;
	struct sockmig_member_info info[4];
	int ret = SM_FAIL, holders = 0, weights = 0;

	g = sockmig_group_open(a, NULL);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(sockmig_member_add(g, a, NULL), "register a") ||
	    !ASSERT_OK(sockmig_member_add(g, b, NULL), "register b"))
		goto out;

	/* a non-zero byte the library does not know: refused, nothing done */
	BIG_INIT(go, 1);
	BIG_INIT(mo, 1);
	BIG_INIT(dro, 1);
	BIG_INIT(lo, 1);
	BIG_INIT(ho, 1);
	g2 = sockmig_group_open(a, &go.o);
	if (!refused("group_open", g2 ? 0 : -errno, "sockmig_group_opts",
		     sizeof(struct sockmig_group_opts) + 3))
		goto out;
	g2 = sockmig_group_open_name(sockmig_group_name(g), &go.o);
	if (!refused("group_open_name", g2 ? 0 : -errno, "sockmig_group_opts",
		     sizeof(struct sockmig_group_opts) + 3) ||
	    !refused("group_list", sockmig_group_list(&go.o, names, 4), "sockmig_group_opts",
		     sizeof(struct sockmig_group_opts) + 3) ||
	    !refused("member_add", sockmig_member_add(g, a, &mo.o), "sockmig_member_opts",
		     sizeof(struct sockmig_member_opts) + 3) ||
	    !refused("member_set", sockmig_member_set(g, sockmig_cookie(a), &mo.o),
		     "sockmig_member_opts", sizeof(struct sockmig_member_opts) + 3) ||
	    !refused("member_drain", sockmig_member_drain(g, a, &dro.o, NULL), "sockmig_drain_opts",
		     sizeof(struct sockmig_drain_opts) + 3) ||
	    !refused("member_drain_legacy", sockmig_member_drain_legacy(g, a, &lo.o, NULL),
		     "sockmig_legacy_drain_opts", sizeof(struct sockmig_legacy_drain_opts) + 3))
		goto out;
	h = sockmig_holder_open((struct sockaddr *)&ss, len, &ho.o);
	if (!refused("holder_open", h ? 0 : -errno, "sockmig_holder_opts",
		     sizeof(struct sockmig_holder_opts) + 3) ||
	    !ASSERT_EQ(sockmig_members(g, NULL, 0), 2, "no holder joined"))
		goto out;

	/* the same with the unknown bytes zero: accepted */
	BIG_INIT(go, 0);
	BIG_INIT(mo, 0);
	BIG_INIT(dro, 0);
	BIG_INIT(lo, 0);
	BIG_INIT(ho, 0);
	mo.o.weight = 3;
	dro.o.no_shutdown = true;
	lo.o.no_shutdown = true;
	g2 = sockmig_group_open(a, &go.o);
	if (!ASSERT_TRUE(g2, sockmig_last_error()))
		goto out;
	sockmig_group_close(g2);
	g2 = sockmig_group_open_name(sockmig_group_name(g), &go.o);
	if (!ASSERT_TRUE(g2, sockmig_last_error()))
		goto out;
	sockmig_group_close(g2);
	h = sockmig_holder_open((struct sockaddr *)&ss, len, &ho.o);
	/* the pin root is the machine's: other groups may be listed too */
	if (!ASSERT_GT(sockmig_group_list(&go.o, names, 4), 0, "group_list") ||
	    !ASSERT_OK(sockmig_member_add(g, a, &mo.o), "member_add") ||
	    !ASSERT_OK(sockmig_member_set(g, sockmig_cookie(b), &mo.o), "member_set") ||
	    !ASSERT_TRUE(h, sockmig_last_error()) ||
	    !ASSERT_EQ(sockmig_members(g, info, 4), 3, "the holder joined"))
		goto out;
	for (int i = 0; i < 3; i++) {
		holders += info[i].role == SOCKMIG_ROLE_HOLDER;
		weights += info[i].weight;
	}
	if (!ASSERT_EQ(holders, 1, "holders") || !ASSERT_EQ(weights, 3 + 3 + 1, "weights") ||
	    !ASSERT_OK(sockmig_member_drain(g, a, &dro.o, NULL), "member_drain") ||
	    !ASSERT_OK(sockmig_member_drain_legacy(g, b, &lo.o, NULL), "member_drain_legacy"))
		goto out;
	ret = SM_PASS;
out:
	if (h)
		sockmig_holder_close(h, false);
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	close(a);
	close(b);
	return ret;
}

/* A holder's options from an older header: sz ends before pin_root, so
 * whatever lies past it is not read (the default root is used); an sz
 * smaller than sz itself is refused. */
SM_TEST(opts_holder_older_sz)
{
	struct sockmig_holder_opts o = {.pin_root = "/tmp/sockmig-not-bpffs"};
	struct sockaddr_storage ss;
	socklen_t len = burst_addr(AF_INET, PORT, &ss);
	struct sockmig_holder *h;

	o.sz = 4;
	h = sockmig_holder_open((struct sockaddr *)&ss, len, &o);
	if (!ASSERT_TRUE(!h && errno == EINVAL, "sz 4 refused"))
		return SM_FAIL;
	if (strcmp(sockmig_last_error(), "sockmig_holder_opts: sz 4 is too small") != 0) {
		printf("last error \"%s\"\n", sockmig_last_error());
		return SM_FAIL;
	}
	o.sz = offsetof(struct sockmig_holder_opts, pin_root);
	h = sockmig_holder_open((struct sockaddr *)&ss, len, &o);
	if (!ASSERT_TRUE(h, sockmig_last_error()))
		return SM_FAIL;
	sockmig_holder_close(h, false);
	return SM_PASS;
}
