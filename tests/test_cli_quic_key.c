// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * --quic-key-file (cli/quic_key.c), through bench udp-cost, the command
 * that makes a quic-lb group: an encrypted group's program routes every
 * datagram by its encrypted CID; key files that another user could read,
 * or that hold no key, are refused with one error line.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clitest.h"
#include "harness.h"
#include "quic_rig.h"
#include "sockmig.h"

/* A key file of @len octets of @text, mode @mode, in @path (room for
 * 64). 0 or -1. */
static int key_file(char *path, const char *text, size_t len, mode_t mode)
{
	int fd;

	strcpy(path, "/tmp/sockmig-key-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	if (write(fd, text, len) != (ssize_t)len || fchmod(fd, mode) < 0) {
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	return 0;
}

SM_TEST(bench_udp_cost_quic_lb_enc_routes_every_datagram_by_cid)
{
	char *out, err[8192], path[64], args[256];
	int rc, ret = SM_FAIL;

	QS_NEED_ENC();
	out = malloc(65536);
	if (!out)
		return SM_FAIL;
	if (!ct_have_tool()) {
		free(out);
		return SKIP("no .output/sockmig: run from the repository root");
	}
	if (!ASSERT_OK(key_file(path, "8f95f09245765f80256934e50c66207f\n", 33, 0600), "key file"))
		goto out;
	snprintf(args, sizeof(args),
		 "--json bench udp-cost --mode quic-lb --quic-key-file %s --phases 2 --count 20000",
		 path);
	rc = ct_run(args, out, 65536, err, sizeof(err));
	unlink(path);
	if (!ASSERT_EQ(rc, 0, "bench exit status") ||
	    !ASSERT_TRUE(ct_json_check(out, "j['group_mode'] == 'quic-lb-enc' and "
					    "j['flow_runs'] == 20000"),
			 "one encrypted quic-lb program run per datagram") ||
	    !ASSERT_TRUE(ct_json_check(out, "j['group_quic_hits'] == 20000 and "
					    "j['group_flow_hits'] == 0"),
			 "every datagram by its encrypted connection ID"))
		goto out;
	ret = SM_PASS;
out:
	if (ret != SM_PASS)
		printf("stderr: %s\n", err);
	free(out);
	return ret;
}

/* Key files refused: exit 2, one Error line, nothing run. */
SM_PURE(quic_key_file_refused_unless_private_and_a_key)
{
	static const struct {
		const char *text;
		size_t len;
		mode_t mode;
		const char *why;
	} bad[] = {
		{"8f95f09245765f80256934e50c66207f", 32, 0644, "must be 0600"},
		{"8f95f09245765f80256934e50c66207f", 32, 0640, "must be 0600"},
		{"8f95f09245765f80256934e50c6620", 30, 0600, "not 16 octets"},
		{"8f95f09245765f80256934e50c66207g", 32, 0600, "not 16 octets"},
		{"0123456789abcdef0", 17, 0400, "not 16 octets"},
	};
	char out[4096], err[4096], path[64], args[256];

	if (!ct_have_tool())
		return SKIP("no .output/sockmig: run from the repository root");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st;

		if (!ASSERT_OK(key_file(path, bad[i].text, bad[i].len, bad[i].mode), "key file"))
			return SM_FAIL;
		snprintf(args, sizeof(args), "bench udp-cost --mode quic-lb --quic-key-file %s",
			 path);
		st = ct_run(args, out, sizeof(out), err, sizeof(err));
		unlink(path);
		if (!ASSERT_EQ(st, 2, args) || !ASSERT_EQ(ct_lines(err), 1, "one line") ||
		    !ASSERT_TRUE(strstr(err, bad[i].why), bad[i].why))
			return SM_FAIL;
	}
	/* a key for another mode */
	if (!ASSERT_OK(key_file(path, "0123456789abcdef", 16, 0600), "key file"))
		return SM_FAIL;
	snprintf(args, sizeof(args), "bench udp-cost --mode flow --quic-key-file %s", path);
	if (!ASSERT_EQ(ct_run(args, out, sizeof(out), err, sizeof(err)), 2, "mode flow") ||
	    !ASSERT_TRUE(strstr(err, "quic-lb only"), "says why"))
		return unlink(path), SM_FAIL;
	/* bench udp makes no group of a key: refused, not read and ignored */
	snprintf(args, sizeof(args), "bench udp --mode quic-lb --quic-key-file %s", path);
	if (!ASSERT_EQ(ct_run(args, out, sizeof(out), err, sizeof(err)), 2, "bench udp") ||
	    !ASSERT_EQ(ct_lines(err), 1, "one line") ||
	    !ASSERT_TRUE(strstr(err, "udp-cost"), "says for what"))
		return unlink(path), SM_FAIL;
	unlink(path);
	snprintf(args, sizeof(args), "bench udp-cost --mode quic-lb --quic-key-file %s",
		 "/nonexistent/key");
	if (!ASSERT_EQ(ct_run(args, out, sizeof(out), err, sizeof(err)), 2, "no such file"))
		return SM_FAIL;
	/* --cid-len: 8 to 20, and for mode quic-lb only */
	if (!ASSERT_EQ(ct_run("bench udp-cost --mode quic-lb --cid-len 21", out, sizeof(out), err,
			      sizeof(err)),
		       2, "--cid-len 21") ||
	    !ASSERT_EQ(ct_lines(err), 1, "one line") ||
	    !ASSERT_EQ(ct_run("bench udp-cost --mode flow --cid-len 17", out, sizeof(out), err,
			      sizeof(err)),
		       2, "--cid-len in mode flow") ||
	    !ASSERT_TRUE(strstr(err, "quic-lb only"), "says why"))
		return SM_FAIL;
	return SM_PASS;
}

/* A key "file" that is no regular file: refused at once in one line, the
 * open itself not waiting for a writer (O_NONBLOCK); nor a symbolic link,
 * even to a good key file. */
SM_PURE(quic_key_file_refused_unless_a_regular_file)
{
	char out[4096], err[4096], path[80], key[64], args[256];
	int st;

	if (!ct_have_tool())
		return SKIP("no .output/sockmig: run from the repository root");
	snprintf(path, sizeof(path), "/tmp/sockmig-key-fifo-%d", (int)getpid());
	unlink(path);
	if (!ASSERT_OK(mkfifo(path, 0600), "a FIFO"))
		return SM_FAIL;
	snprintf(args, sizeof(args), "bench udp-cost --mode quic-lb --quic-key-file %s", path);
	st = ct_run(args, out, sizeof(out), err, sizeof(err));
	unlink(path);
	if (!ASSERT_EQ(st, 2, "a FIFO: exit 2") || !ASSERT_EQ(ct_lines(err), 1, "one line") ||
	    !ASSERT_TRUE(strstr(err, "not a regular file"), "says why"))
		return SM_FAIL;
	/* a symbolic link to a good key file: not followed (O_NOFOLLOW) */
	if (!ASSERT_OK(key_file(key, "0123456789abcdef", 16, 0600), "key file"))
		return SM_FAIL;
	snprintf(path, sizeof(path), "%s.link", key);
	st = symlink(key, path);
	snprintf(args, sizeof(args), "bench udp-cost --mode quic-lb --quic-key-file %s", path);
	if (ASSERT_OK(st, "a symbolic link to it"))
		st = ct_run(args, out, sizeof(out), err, sizeof(err));
	else
		st = -1;
	unlink(path);
	unlink(key);
	if (!ASSERT_EQ(st, 2, "a symbolic link: exit 2") ||
	    !ASSERT_EQ(ct_lines(err), 1, "one line") || !ASSERT_TRUE(strstr(err, path), "names it"))
		return SM_FAIL;
	return SM_PASS;
}
