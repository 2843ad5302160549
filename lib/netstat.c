// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* TcpExt counters of the calling thread's network namespace. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Index of the word @name in the space-separated line [p, end), or -1. */
static int word_index(const char *p, const char *end, const char *name)
{
	size_t len = strlen(name);

	for (int i = 0; p < end; i++) {
		const char *sp = memchr(p, ' ', (size_t)(end - p));
		const char *w_end = sp ? sp : end;

		if ((size_t)(w_end - p) == len && memcmp(p, name, len) == 0)
			return i;
		p = w_end + 1;
	}
	return -1;
}

/*
 * /proc/net/netstat holds pairs of lines, "TcpExt: names..." then
 * "TcpExt: values...". One read() of the whole file: it is read around
 * every drain, so it is kept cheap.
 */
int sockmig_netstat_read(struct sockmig_netstat *out)
{
	char buf[16384], *names, *nl, *values, *vend;
	ssize_t len = 0, n;
	int fd;

	memset(out, 0, sizeof(*out));
	/* thread-self: the netns is per thread (the probe unshares one). */
	fd = open("/proc/thread-self/net/netstat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sm_fail(errno, "cannot open /proc/thread-self/net/netstat: %s",
			       strerror(errno));
	while (len < (ssize_t)sizeof(buf) - 1 &&
	       (n = read(fd, buf + len, sizeof(buf) - 1 - (size_t)len)) > 0)
		len += n;
	close(fd);
	buf[len] = '\0';
	names = strstr(buf, "TcpExt: ");
	nl = names ? strchr(names, '\n') : NULL;
	if (!nl || strncmp(nl + 1, "TcpExt: ", 8) != 0)
		return sm_fail(ENOENT, "no TcpExt line in /proc/thread-self/net/netstat");
	values = nl + 1 + 8;
	vend = strchr(values, '\n');
	if (!vend)
		vend = buf + len;
	for (size_t f = 0; f < NFIELDS; f++) {
		int idx = word_index(names + 8, nl, fields[f].name);
		const char *p = values;

		for (int i = 0; idx >= 0 && i < idx && p && p < vend; i++) {
			p = memchr(p, ' ', (size_t)(vend - p));
			if (p)
				p++;
		}
		if (idx >= 0 && p && p < vend)
			*(uint64_t *)((char *)out + fields[f].off) = strtoull(p, NULL, 10);
	}
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
