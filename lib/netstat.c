// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* TcpExt counters of the calling thread's network namespace. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const struct {
	const char *name;
	size_t off;
} fields[] = {
	{"TCPMigrateReqSuccess", offsetof(struct sockmig_netstat, migrate_success)},
	{"TCPMigrateReqFailure", offsetof(struct sockmig_netstat, migrate_failure)},
	{"ListenDrops", offsetof(struct sockmig_netstat, listen_drops)},
	{"ListenOverflows", offsetof(struct sockmig_netstat, listen_overflows)},
	{"EmbryonicRsts", offsetof(struct sockmig_netstat, embryonic_rsts)},
	{"TCPAbortOnClose", offsetof(struct sockmig_netstat, abort_on_close)},
};

#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

/* /proc/net/netstat holds pairs of lines: "TcpExt: name..." then values. */
int sockmig_netstat_read(struct sockmig_netstat *out)
{
	char *names = NULL, *values = NULL, *sn, *sv, *n, *v;
	size_t ncap = 0, vcap = 0;
	int err = -ENOENT;
	FILE *f;

	memset(out, 0, sizeof(*out));
	/* thread-self: the netns is per thread (the probe unshares one). */
	f = fopen("/proc/thread-self/net/netstat", "re");
	if (!f)
		return sm_fail(errno, "cannot open /proc/thread-self/net/netstat: %s",
			       strerror(errno));
	while (getline(&names, &ncap, f) > 0 && getline(&values, &vcap, f) > 0) {
		if (strncmp(names, "TcpExt:", 7) != 0)
			continue;
		n = strtok_r(names + 7, " \n", &sn);
		v = strtok_r(values + 7, " \n", &sv);
		while (n && v) {
			for (size_t i = 0; i < NFIELDS; i++)
				if (strcmp(n, fields[i].name) == 0)
					*(uint64_t *)((char *)out + fields[i].off) =
						strtoull(v, NULL, 10);
			n = strtok_r(NULL, " \n", &sn);
			v = strtok_r(NULL, " \n", &sv);
		}
		err = 0;
		break;
	}
	fclose(f);
	free(names);
	free(values);
	if (err)
		return sm_fail(-err, "no TcpExt line in /proc/thread-self/net/netstat");
	return 0;
}

void sockmig_netstat_delta(const struct sockmig_netstat *before,
			   const struct sockmig_netstat *after, struct sockmig_netstat *out)
{
	for (size_t i = 0; i < NFIELDS; i++) {
		size_t off = fields[i].off;

		*(uint64_t *)((char *)out + off) = *(const uint64_t *)((const char *)after + off) -
						   *(const uint64_t *)((const char *)before + off);
	}
}
