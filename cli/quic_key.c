// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * --quic-key-file PATH: the 16-octet AES-128 key of a UDP group's
 * encrypted QUIC CIDs (sockmig_udp_group_opts.quic_key), read from a file
 * that only its owner, the caller, can read: 16 raw octets, or 32 hex
 * digits (a newline after them allowed).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

int cli_quic_key_file(const char *path, uint8_t *key)
{
	char buf[72];
	struct stat st;
	ssize_t n;
	size_t len;
	int fd, ret = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		cli_error("--quic-key-file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		cli_error("--quic-key-file %s: not a regular file", path);
		goto out;
	}
	if (st.st_uid != geteuid() ||
	    ((st.st_mode & 07777) != 0600 && (st.st_mode & 07777) != 0400)) {
		cli_error("--quic-key-file %s: mode %04o, owner %u: must be 0600 or 0400 and the "
			  "caller's (uid %u)",
			  path, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid,
			  (unsigned)geteuid());
		goto out;
	}
	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		cli_error("--quic-key-file %s: %s", path, strerror(errno));
		goto out;
	}
	len = (size_t)n;
	if (len == 16) {
		memcpy(key, buf, 16);
		ret = 0;
		goto out;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len == 32) {
		ret = 0;
		for (size_t i = 0; i < 32 && ret == 0; i++)
			if (!isxdigit((unsigned char)buf[i]))
				ret = -1;
		for (size_t i = 0; i < 16 && ret == 0; i++) {
			char h[3] = {buf[2 * i], buf[2 * i + 1], 0};

			key[i] = (uint8_t)strtoul(h, NULL, 16);
			explicit_bzero(h, sizeof(h));
		}
	}
	if (ret < 0)
		cli_error("--quic-key-file %s: not 16 octets nor 32 hex digits", path);
out:
	if (ret < 0)
		explicit_bzero(key, 16);
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return ret;
}
