// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The sockmig command's usage: bad input that gets one clear error line
 * and a non-zero exit, global options anywhere, --help of every
 * subcommand that lists and describes every option.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"
#include "harness.h"
#include "sockmig.h"
#include "util.h"

SM_TEST(cli_bad_input_one_error_line)
{
	static const struct {
		const char *args;
		int status;
	} cases[] = {
		{"attach", 2},
		{"attach --pid abc", 2},
		{"attach --pid 0", 2},
		{"attach --pid 4194305", 2},
		{"attach --pid 999999", 1},
		{"attach --port 0", 2},
		{"attach --port 65536", 2},
		{"attach --port 1", 1},
		{"attach --port 1 --interval 1", 2},
		{"attach --bogus", 2},
		{"attach -p", 2},
		{"detach", 2},
		{"detach --port 1", 1},
		{"drain", 2},
		{"drain --pid 999999", 1},
		{"drain --cookie x", 2},
		{"drain --cookie 12345", 1},
		{"watch --port x", 2},
		{"watch --interval 0", 2},
		{"bench --workers 0", 2},
		{"bench --strategies naive,bogus", 2},
		{"bench nosuchmode", 2},
		{"demo --clients 0", 2},
		{"probe extra", 2},
		{"nosuchcommand", 2},
	};
	char out[4096], err[4096];

	if (!ct_have_tool())
		return SKIP("no .output/sockmig: run from the repository root");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int st = ct_run(cases[i].args, out, sizeof(out), err, sizeof(err));

		if (!ASSERT_EQ(st, cases[i].status, cases[i].args) ||
		    !ASSERT_EQ(ct_lines(err), 1, "one line on stderr") ||
		    !ASSERT_TRUE(strncmp(err, "Error: ", 7) == 0, "it starts with Error:"))
			return SM_FAIL;
	}
	/* under -j the error is a JSON object */
	if (!ASSERT_EQ(ct_run("-j attach --port 0", out, sizeof(out), err, sizeof(err)), 2, "-j") ||
	    !ASSERT_TRUE(ct_json_check(out, "'error' in j"), "{\"error\": ...}"))
		return SM_FAIL;
	return SM_PASS;
}

/* Exit 2 and one "Error: " line on stderr (with @says in it, unless
 * NULL), nothing on stdout. */
static bool one_error_saying(const char *args, const char *says)
{
	char out[4096], err[4096];
	int st = ct_run(args, out, sizeof(out), err, sizeof(err));

	return ASSERT_EQ(st, 2, args) && ASSERT_EQ(ct_lines(err), 1, "one line on stderr") &&
	       ASSERT_TRUE(strncmp(err, "Error: ", 7) == 0, "it starts with Error:") &&
	       ASSERT_TRUE(!says || strstr(err, says), says ? says : "") &&
	       ASSERT_EQ(strlen(out), 0, "nothing on stdout");
}

static bool one_error(const char *args)
{
	return one_error_saying(args, NULL);
}

/*
 * Every subcommand with an unknown option, a missing value, each kind of
 * bad number and an extra argument; and the options before the command.
 * Each fails while its options are read: nothing runs.
 */
SM_PURE(cli_bad_input_every_subcommand)
{
	static const struct {
		const char *cmd;    /* with what it needs besides the bad part */
		const char *numopt; /* an option taking a number, or NULL */
		const char *tail;   /* after it all (run: the command) */
	} cmds[] = {
		{"attach", "--port", ""},
		{"detach", "--port", ""},
		{"drain --cookie 1", "--port", ""},
		{"watch", "--interval", ""},
		{"hold", "--port", ""},
		{"run", "--port", " -- true"},
		{"reload", "--port", ""},
		{"bench storm", "--workers", ""},
		{"demo", "--clients", ""},
		{"status", "--port", ""},
		{"probe", NULL, ""},
		{"help", NULL, ""},
	};
	static const char *const numbers[] = {"' 80'", "+80", "0x50", "99999999", "-1", "''"};
	static const char *const global[] = {
		"--bogus",
		"-x status",
		"",
		"--json=1 status",
		"--ver",
		"nosuchcommand",
		"help nosuchcommand",
		"help status extra",
	};
	char args[256];

	if (!ct_have_tool())
		return SKIP("no .output/sockmig: run from the repository root");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *c = cmds[i].cmd, *t = cmds[i].tail;

		snprintf(args, sizeof(args), "%s --bogus%s", c, t);
		if (!one_error(args))
			return SM_FAIL;
		snprintf(args, sizeof(args), "%s -Y%s", c, t);
		if (!one_error(args))
			return SM_FAIL;
		snprintf(args, sizeof(args), "%s --help=1%s", c, t);
		if (!one_error(args))
			return SM_FAIL;
		/* run's first argument is the server's command */
		snprintf(args, sizeof(args), "%s%s extra", c,
			 strcmp(c, "run") == 0 ? " --port 1 --bogus --" : "");
		if (strcmp(c, "help") == 0)
			snprintf(args, sizeof(args), "help status extra");
		/* the error names the argument, not an option to give */
		if (!one_error_saying(args, strcmp(c, "run") ? "'extra'" : NULL))
			return SM_FAIL;
		if (!cmds[i].numopt)
			continue;
		snprintf(args, sizeof(args), "%s %s", c, cmds[i].numopt);
		if (!one_error(args))
			return SM_FAIL;
		snprintf(args, sizeof(args), "%s %.3s", c, cmds[i].numopt + 1);
		if (!one_error(args))
			return SM_FAIL;
		for (size_t j = 0; j < sizeof(numbers) / sizeof(numbers[0]); j++) {
			snprintf(args, sizeof(args), "%s %s %s%s", c, cmds[i].numopt, numbers[j],
				 t);
			if (!one_error(args))
				return SM_FAIL;
			/* --opt=val is the same option */
			snprintf(args, sizeof(args), "%s %s=%s%s", c, cmds[i].numopt, numbers[j],
				 t);
			if (!one_error(args))
				return SM_FAIL;
		}
	}
	for (size_t i = 0; i < sizeof(global) / sizeof(global[0]); i++)
		if (!one_error(global[i]))
			return SM_FAIL;
	return SM_PASS;
}

/* -j and -v before or after the command, as bpftool and ip take them. */
SM_TEST(cli_global_options_anywhere)
{
	static const char *const ok[] = {
		"-j status",	      "status -j",    "status --json", "status --port 1 -j",
		"status -j --port=1", "-v status -j", "probe -j",      "status -v",
	};
	static const char *const bad[] = {
		"attach --port 0 -j",  "status --bogus --json", "reload -j --port=1",
		"drain --cookie 1 -j", "watch -j --port x",
	};
	char out[4096], err[4096];

	if (!ct_have_tool())
		return SKIP("no .output/sockmig: run from the repository root");
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		bool json = strstr(ok[i], "-j") || strstr(ok[i], "--json");

		if (!ASSERT_EQ(ct_run(ok[i], out, sizeof(out), err, sizeof(err)), 0, ok[i]) ||
		    (json && !ASSERT_TRUE(ct_json_check(out, "isinstance(j, (list, dict))"),
					  "JSON on stdout")))
			return SM_FAIL;
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!ASSERT_GT(ct_run(bad[i], out, sizeof(out), err, sizeof(err)), 0, bad[i]) ||
		    !ASSERT_TRUE(ct_json_check(out, "'error' in j"), "{\"error\": ...}") ||
		    !ASSERT_EQ(strlen(err), 0, "nothing on stderr"))
			return SM_FAIL;
	return SM_PASS;
}

/* --help, -h and help COMMAND: the usage on stdout, exit 0. */
SM_PURE(cli_help_every_subcommand)
{
	static const char *const cmds[] = {
		"probe", "demo", "attach", "detach", "drain",  "watch",
		"hold",	 "run",	 "reload", "bench",  "status", "help",
	};
	static const char *const forms[] = {"%s --help", "%s -h", "help %s", "%s --help -j"};
	char out[4096], err[4096], args[128], usage[64];

	if (!ct_have_tool())
		return SKIP("no .output/sockmig: run from the repository root");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		snprintf(usage, sizeof(usage), "Usage: sockmig %s", cmds[i]);
		for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
			snprintf(args, sizeof(args), forms[f], cmds[i]);
			if (!ASSERT_EQ(ct_run(args, out, sizeof(out), err, sizeof(err)), 0, args) ||
			    !ASSERT_TRUE(
				    strstr(out, strcmp(cmds[i], "help") ? usage : "Usage: sockmig"),
				    "the usage on stdout") ||
			    !ASSERT_EQ(strlen(err), 0, "nothing on stderr"))
				return SM_FAIL;
		}
	}
	if (!ASSERT_EQ(ct_run("--help", out, sizeof(out), err, sizeof(err)), 0, "--help") ||
	    !ASSERT_TRUE(strstr(out, "Usage: sockmig"), "the usage on stdout"))
		return SM_FAIL;
	return SM_PASS;
}

/* Whether @help has a line describing option @opt ("  -x, --opt ..." or
 * "      --opt ..."), not only the usage line. */
static bool help_describes(const char *help, const char *opt)
{
	char pat[64];

	snprintf(pat, sizeof(pat), ", %s", opt);
	if (strstr(help, pat))
		return true;
	snprintf(pat, sizeof(pat), "\n      %s", opt);
	return strstr(help, pat) != NULL;
}

/*
 * --help lists every option of the command, one line each (watch, demo,
 * probe and drain printed only the usage line). The options are those
 * each command's getopt table accepts.
 */
SM_PURE(cli_help_lists_every_option)
{
	static const struct {
		const char *cmd, *opts[20];
	} cmds[] = {
		{"status", {"--port", "--addr", "--json", "--help"}},
		{"watch", {"--port", "--interval", "--count", "--json", "--help"}},
		{"drain",
		 {"--pid", "--cookie", "--port", "--now", "--wait", "--timeout", "--json",
		  "--help"}},
		{"demo", {"--listeners", "--clients", "--json", "--help"}},
		{"probe", {"--json", "--help"}},
		{"bench",
		 {"--workers", "--conns", "--secs", "--restart-rate", "--concurrency", "--rate",
		  "--strategies", "--ipv6", "--phases", "--phase-secs", "--short", "--gap",
		  "--json", "--help"}},
		{"bench udp",
		 {"--flows", "--rate", "--flip-ms", "--seconds", "--flow-ms", "--grace-ms",
		  "--strategies", "--rebind-ms", "--phases", "--count", "--mode", "--quic-key-file",
		  "--cid-len", "--echo", "--senders", "--json", "--help"}},
		{"metrics", {"--port", "--listen", "--textfile", "--interval", "--help"}},
		{"help", {"--json", "--verbose", "--version", "--help"}},
	};
	char out[8192], err[4096], args[64];

	if (!ct_have_tool())
		return SKIP("no .output/sockmig: run from the repository root");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		snprintf(args, sizeof(args), "%s --help", cmds[i].cmd);
		if (!ASSERT_EQ(ct_run(args, out, sizeof(out), err, sizeof(err)), 0, args))
			return SM_FAIL;
		for (int o = 0; cmds[i].opts[o]; o++)
			if (!ASSERT_TRUE(help_describes(out, cmds[i].opts[o]), cmds[i].opts[o]))
				return SM_FAIL;
	}
	return SM_PASS;
}
