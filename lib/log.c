// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Logging and the last error message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static int default_print(enum sockmig_log_level level, const char *fmt, va_list ap)
{
	if (level != SOCKMIG_WARN)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static sockmig_print_fn print_fn = default_print;
static __thread char last_error[256];

sockmig_print_fn sockmig_set_print(sockmig_print_fn fn)
{
	sockmig_print_fn old = print_fn;

	print_fn = fn;
	return old;
}

const char *sockmig_last_error(void)
{
	return last_error;
}

void sm_log(enum sockmig_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (!print_fn)
		return;
	va_start(ap, fmt);
	print_fn(level, fmt, ap);
	va_end(ap);
}

int sm_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	sm_log(SOCKMIG_DEBUG, "libsockmig: %s\n", last_error);
	errno = err;
	return -err;
}

unsigned long long sm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* Options structs: a caller built against an older header passes a
 * smaller sz; bytes past what we know must be zero. */
bool sm_opts_valid(const void *opts, size_t sz, size_t known, const char *type)
{
	if (!opts)
		return true;
	if (sz < sizeof(size_t)) {
		sm_fail(EINVAL, "%s: sz %zu is too small", type, sz);
		return false;
	}
	for (size_t i = known; i < sz; i++)
		if (((const char *)opts)[i]) {
			sm_fail(EINVAL, "%s: unknown non-zero field at byte %zu", type, i);
			return false;
		}
	return true;
}

const char *sockmig_version(void)
{
	return SOCKMIG_VERSION;
}

int sockmig_set_lock_wait(int ms)
{
	int old = sm_lock_wait_ms;

	sm_lock_wait_ms = ms < 0 ? -1 : ms;
	return old;
}
