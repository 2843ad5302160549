/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The test harness. A case is a function declared with SM_TEST(name) at
 * the start of a line in any tests/NAME.c; the build collects them in file
 * order. The runner forks every case into its own private network
 * namespace (lo up) with a time limit, shows a case's output only when it
 * fails, and ends with "Summary: N passed, N failed, N skipped".
 * SM_PURE(name) declares a pure case instead (a parser, a formatter: no
 * root, no network, no BPF): the runner forks it without a namespace, and
 * a user other than root may run such cases, and only those
 * (test_sockmig -l lists every case, "pure" after the pure ones; -p, or
 * make check T=-p, runs only those). SM_LONG(name, secs) declares a case
 * with a time limit of its own, for a bound longer than the default.
 *
 * A case returns SM_PASS, SM_FAIL or SM_SKIP. The ASSERT_* macros log
 * what was expected and evaluate to a bool, so a case can jump to its
 * cleanup:   if (!ASSERT_EQ(served, 10, "served")) goto close_servers;
 */
#ifndef SOCKMIG_TESTS_HARNESS_H
#define SOCKMIG_TESTS_HARNESS_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

enum { SM_PASS = 0, SM_FAIL = 1, SM_SKIP = 77 };

#define SM_TEST(name) int test_##name(void)
#define SM_PURE(name) int test_##name(void)
/* A case whose bound (a count it must reach, on a slow machine) is longer
 * than the runner's default time limit: @secs is its own. */
#define SM_LONG(name, secs) int test_##name(void)

/* Print a reason and return SM_SKIP. */
#define SKIP(...)                                                                                  \
	({                                                                                         \
		printf("SKIP: " __VA_ARGS__);                                                      \
		printf("\n");                                                                      \
		SM_SKIP;                                                                           \
	})

#define ASSERT_TRUE(cond, what)                                                                    \
	({                                                                                         \
		bool ok_ = (cond);                                                                 \
		if (!ok_)                                                                          \
			printf("%s:%d: %s: expected true: %s\n", __FILE__, __LINE__, what, #cond); \
		ok_;                                                                               \
	})

#define ASSERT_EQ(a, b, what)                                                                      \
	({                                                                                         \
		long long a_ = (long long)(a), b_ = (long long)(b);                                \
		bool ok_ = a_ == b_;                                                               \
		if (!ok_)                                                                          \
			printf("%s:%d: %s: %s = %lld, expected %lld\n", __FILE__, __LINE__, what,  \
			       #a, a_, b_);                                                        \
		ok_;                                                                               \
	})

#define ASSERT_GT(a, b, what)                                                                      \
	({                                                                                         \
		long long a_ = (long long)(a), b_ = (long long)(b);                                \
		bool ok_ = a_ > b_;                                                                \
		if (!ok_)                                                                          \
			printf("%s:%d: %s: %s = %lld, expected > %lld\n", __FILE__, __LINE__,      \
			       what, #a, a_, b_);                                                  \
		ok_;                                                                               \
	})

#define ASSERT_LE(a, b, what)                                                                      \
	({                                                                                         \
		long long a_ = (long long)(a), b_ = (long long)(b);                                \
		bool ok_ = a_ <= b_;                                                               \
		if (!ok_)                                                                          \
			printf("%s:%d: %s: %s = %lld, expected <= %lld\n", __FILE__, __LINE__,     \
			       what, #a, a_, b_);                                                  \
		ok_;                                                                               \
	})

/* err is 0 or a negative errno, or -1 with errno set. */
#define ASSERT_OK(err, what)                                                                       \
	({                                                                                         \
		long long e_ = (long long)(err);                                                   \
		bool ok_ = e_ >= 0;                                                                \
		if (!ok_)                                                                          \
			printf("%s:%d: %s failed: %s\n", __FILE__, __LINE__, what,                 \
			       strerror(e_ == -1 ? errno : (int)-e_));                             \
		ok_;                                                                               \
	})

#define ASSERT_ERR(err, expect, what)                                                              \
	({                                                                                         \
		long long e_ = (long long)(err);                                                   \
		bool ok_ = e_ == -(expect);                                                        \
		if (!ok_)                                                                          \
			printf("%s:%d: %s: returned %lld, expected -%s\n", __FILE__, __LINE__,     \
			       what, e_, #expect);                                                 \
		ok_;                                                                               \
	})

#endif
