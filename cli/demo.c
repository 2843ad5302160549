// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sockmig demo: placeholder until written */
#include "cli.h"
int do_demo(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return 0;
}
