// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "harness.h"
#include "sockmig.h"

SM_TEST(probe_runs)
{
	struct sockmig_probe p;

	if (!ASSERT_OK(sockmig_probe(&p), "probe"))
		return SM_FAIL;
	return SM_PASS;
}
