// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Kernel counters of the calling thread's network namespace: TcpExt of
 * /proc/net/netstat, Udp of /proc/net/snmp and Udp6 of /proc/net/snmp6. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct field {
	const char *name;
	size_t off;
};

static const struct field tcp_fields[] = {
	{"TCPMigrateReqSuccess", offsetof(struct sockmig_netstat, migrate_success)},
	{"TCPMigrateReqFailure", offsetof(struct sockmig_netstat, migrate_failure)},
	{"ListenDrops", offsetof(struct sockmig_netstat, listen_drops)},
	{"ListenOverflows", offsetof(struct sockmig_netstat, listen_overflows)},
	{"EmbryonicRsts", offsetof(struct sockmig_netstat, embryonic_rsts)},
	{"TCPAbortOnClose", offsetof(struct sockmig_netstat, abort_on_close)},
};

static const struct field udp_fields[] = {
	{"RcvbufErrors", offsetof(struct sockmig_udp_snmp, rcvbuf_errors)},
	{"InErrors", offsetof(struct sockmig_udp_snmp, in_errors)},
};

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

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

/* The file @name of /proc/thread-self/net (the netns is per thread: the
 * probe unshares one) in @buf, in one read() loop: it is read around every
 * drain, so it is kept cheap. Its length, or a negative errno (no error
 * set: snmp6 is missing where IPv6 is off; -EFBIG for a file longer than
 * @size, whose last counters would read as 0). */
static int read_net_file(const char *name, char *buf, size_t size)
{
	char path[64];
	ssize_t len = 0, n;
	int fd;

	snprintf(path, sizeof(path), "/proc/thread-self/net/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (len < (ssize_t)size - 1 && (n = read(fd, buf + len, size - 1 - (size_t)len)) > 0)
		len += n;
	/* a file longer than @buf: its last counters would read as 0 */
	n = len == (ssize_t)size - 1 ? read(fd, &(char){0}, 1) : 0;
	close(fd);
	if (n > 0)
		return -EFBIG;
	buf[len] = '\0';
	return (int)len;
}

/*
 * /proc/net/netstat and /proc/net/snmp hold pairs of lines, "@prefix
 * names..." then "@prefix values...": the values of @fields from file
 * @name into @out, added to what it holds.
 */
static int read_pairs(const char *name, const char *prefix, const struct field *fields,
		      size_t nfields, void *out)
{
	char buf[16384], *names, *nl, *values, *vend;
	size_t plen = strlen(prefix);
	int len = read_net_file(name, buf, sizeof(buf));

	if (len < 0)
		return sm_fail(-len, "cannot read /proc/thread-self/net/%s: %s", name,
			       strerror(-len));
	names = buf;
	while (names && strncmp(names, prefix, plen) != 0) {
		names = strchr(names, '\n');
		if (names)
			names++;
	}
	nl = names ? strchr(names, '\n') : NULL;
	if (!nl || strncmp(nl + 1, prefix, plen) != 0)
		return sm_fail(ENOENT, "no %s line in /proc/thread-self/net/%s", prefix, name);
	values = nl + 1 + plen;
	vend = strchr(values, '\n');
	if (!vend)
		vend = buf + len;
	for (size_t f = 0; f < nfields; f++) {
		int idx = word_index(names + plen, nl, fields[f].name);
		const char *p = values;

		for (int i = 0; idx >= 0 && i < idx && p && p < vend; i++) {
			p = memchr(p, ' ', (size_t)(vend - p));
			if (p)
				p++;
		}
		if (idx >= 0 && p && p < vend)
			*(uint64_t *)((char *)out + fields[f].off) += strtoull(p, NULL, 10);
	}
	return 0;
}

int sockmig_netstat_read(struct sockmig_netstat *out)
{
	memset(out, 0, sizeof(*out));
	return read_pairs("netstat", "TcpExt: ", tcp_fields, NFIELDS(tcp_fields), out);
}

void sockmig_netstat_delta(const struct sockmig_netstat *before,
			   const struct sockmig_netstat *after, struct sockmig_netstat *out)
{
	for (size_t i = 0; i < NFIELDS(tcp_fields); i++) {
		size_t off = tcp_fields[i].off;

		*(uint64_t *)((char *)out + off) = *(const uint64_t *)((const char *)after + off) -
						   *(const uint64_t *)((const char *)before + off);
	}
}

int sockmig_udp_snmp_read(struct sockmig_udp_snmp *out)
{
	char buf[16384];
	int err, len;

	memset(out, 0, sizeof(*out));
	err = read_pairs("snmp", "Udp: ", udp_fields, NFIELDS(udp_fields), out);
	if (err)
		return err;
	/* "Udp6InErrors 0" lines; no file without IPv6 */
	len = read_net_file("snmp6", buf, sizeof(buf));
	if (len == -EFBIG)
		return sm_fail(EFBIG, "cannot read /proc/thread-self/net/snmp6: %s",
			       strerror(EFBIG));
	for (char *p = len > 0 ? buf : NULL; p && *p;) {
		for (size_t f = 0; f < NFIELDS(udp_fields); f++) {
			size_t n = strlen(udp_fields[f].name);

			if (strncmp(p, "Udp6", 4) == 0 &&
			    strncmp(p + 4, udp_fields[f].name, n) == 0 &&
			    (p[4 + n] == ' ' || p[4 + n] == '\t'))
				*(uint64_t *)((char *)out + udp_fields[f].off) +=
					strtoull(p + 4 + n, NULL, 10);
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return 0;
}
