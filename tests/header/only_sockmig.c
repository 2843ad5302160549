/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The public header as a user's file sees it: nothing included before it,
 * no _GNU_SOURCE, ISO C11, every warning an error (the Makefile builds it
 * with every `make`). Each options struct is declared with SOCKMIG_OPTS()
 * and has its __last_field marker, which the library validates sz with.
 * A new options struct in include/sockmig.h gets a line in each list.
 */
#include "sockmig.h"

#define HAS_LAST_FIELD(T)                                                                          \
	_Static_assert(offsetof(struct T, T##__last_field) +                                       \
				       sizeof(((struct T *)0)->T##__last_field) <=                 \
			       sizeof(struct T),                                                   \
		       #T " has a last-field marker")

HAS_LAST_FIELD(sockmig_group_opts);
HAS_LAST_FIELD(sockmig_member_opts);
HAS_LAST_FIELD(sockmig_drain_opts);
HAS_LAST_FIELD(sockmig_legacy_drain_opts);
HAS_LAST_FIELD(sockmig_holder_opts);

int sm_header_only(void);

int sm_header_only(void)
{
	SOCKMIG_OPTS(sockmig_group_opts, go, .policy = SOCKMIG_POLICY_LEGACY);
	SOCKMIG_OPTS(sockmig_member_opts, mo, .role = SOCKMIG_ROLE_HOLDER);
	SOCKMIG_OPTS(sockmig_drain_opts, dro);
	SOCKMIG_OPTS(sockmig_legacy_drain_opts, ldo, .force = true);
	SOCKMIG_OPTS(sockmig_holder_opts, ho, .backlog = 16);

	return (int)(go.sz + mo.sz + dro.sz + ldo.sz + ho.sz);
}
