/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Shared by the sockmig subcommands: output (human or JSON) and errors. */
#ifndef SOCKMIG_CLI_H
#define SOCKMIG_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "sockmig.h"

extern bool json_output;

/* Print "Error: ..." on stderr, or {"error": "..."} on stdout with -j. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The Error lines cli_error() printed so far. */
extern int cli_errors;

/* A small JSON writer: nesting and commas are tracked for the caller. */
void jw_open(const char *key, char bracket); /* key NULL inside arrays / at top */
void jw_close(char bracket);
void jw_str(const char *key, const char *val);
void jw_u64(const char *key, uint64_t val);
void jw_i64(const char *key, int64_t val);
void jw_f64(const char *key, double val);
void jw_bool(const char *key, bool val);
void jw_null(const char *key);
void jw_end(void); /* final newline */
/* true or false, null when unknown */
void jw_tristate(const char *key, enum sockmig_tristate t);
/* The kernel's TcpExt counters of @ns, by their names, in the open object. */
void jw_netstat(const struct sockmig_netstat *ns);

/* "yes", "no" or "unknown". */
const char *tristate_str(enum sockmig_tristate t);

struct option;

/*
 * getopt_long() for a subcommand, with the global options -j/--json and
 * -v/--verbose accepted anywhere (handled here, never returned), --opt=val
 * for every long option, and no message of getopt's own: after it returns
 * '?' or ':', cli_bad_option() prints the one error line.
 */
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);

/* After cli_getopt() returned '?' or ':': one error line. @cmd NULL: the
 * global options before the command. */
void cli_bad_option(const char *cmd, char **argv);

/* -v: the library's and libbpf's debug log (main.c). */
void cli_set_verbose(void);

/* One "debug: ..." line on stderr under -v. */
void cli_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "not readable (...)" for a pinned group that its opener was refused
 * (EPERM): bpf() itself without CAP_BPF while the kernel's
 * unprivileged_bpf_disabled is set, else the pins' mode (root). */
const char *cli_not_readable(void);

/* Parse a whole decimal number in [min, max] (digits only: no sign, space or
 * base prefix); false (and an error) if not. */
bool parse_u64(const char *what, const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* --port (1-65535) and --pid (1-4194304, the kernel's pid_max limit), the
 * same way: false after one error line. */
bool parse_port(const char *s, int *port);
bool parse_pid(const char *s, pid_t *pid);

/* --quic-key-file PATH (cli/quic_key.c): the 16-octet key into @key from a
 * regular file of the caller's, mode 0600 or 0400, holding 16 raw octets
 * or 32 hex digits. 0, or -1 after one error line. The caller wipes it. */
int cli_quic_key_file(const char *path, uint8_t *key);

/* One option of a subcommand's table, for cli_parse(). */
enum cli_kind {
	CLI_FLAG, /* bool *: set */
	CLI_STR,  /* const char **: the value as given */
	CLI_PORT, /* int *: parse_port() */
	CLI_PID,  /* pid_t *: parse_pid() */
	CLI_U64,  /* uint64_t *: parse_u64() in [min, max], named --NAME */
};

struct cli_opt {
	const char *name; /* the long option, without "--" */
	int key;	  /* its short option character, or CLI_LONG_ONLY(c) */
	enum cli_kind kind;
	void *dst;
	uint64_t min, max; /* CLI_U64 */
};

/* A key for an option with no short form. */
#define CLI_LONG_ONLY(c) (256 + (c))

/* cli_parse() flags: operands may follow the options (the command checks
 * them); CLI_OPERANDS_FIRST: and the first operand ends the options. */
#define CLI_OPERANDS	   1u
#define CLI_OPERANDS_FIRST 2u

/*
 * Parse a subcommand's options by @opts (ended by an entry without a
 * name), and -h/--help, which prints @usage on stdout. Without a flag, an
 * operand is an error. Returns the index of the first operand (argc when
 * none): go on; 0: the help was printed (exit 0); -1 after one error line.
 */
int cli_parse(const char *cmd, int argc, char **argv, const struct cli_opt *opts, unsigned flags,
	      void (*usage)(FILE *f));

/* After a subcommand's options: true when no argument is left, else false
 * after one error line ("CMD: unexpected argument 'X'"). */
bool cli_no_more_args(const char *cmd, int argc, char **argv);

/* Whether process @pid exists; false after "--pid: no process PID". */
bool cli_pid_exists(pid_t pid);

/* The pinned groups of this network namespace (of @port, unless 0), however
 * many: their count and *@names (free() it), or a negative errno. */
int cli_group_names(int port, char (**names)[SOCKMIG_NAME_MAX]);
/* The UDP group's members, in @out (calloc'ed, for the caller to free;
 * NULL when none): their number, or a negative errno. */
int cli_udp_members(struct sockmig_udp_group *g, struct sockmig_udp_member_info **out);

/* Whether the kernel migrates under a policy here (sockmig_probe() says
 * native); when not, one line in @why. SOCKMIG_MODE=legacy answers no
 * without asking (the tests). */
bool cli_native_migration(char *why, size_t size);

int do_probe(int argc, char **argv);
int do_demo(int argc, char **argv);
int do_bench(int argc, char **argv);
int do_status(int argc, char **argv);
int do_metrics(int argc, char **argv);
int do_attach(int argc, char **argv);
int do_detach(int argc, char **argv);
int do_drain(int argc, char **argv);
int do_watch(int argc, char **argv);
int do_hold(int argc, char **argv);
int do_run(int argc, char **argv);
int do_reload(int argc, char **argv);

/* --strategies LIST of the benches: @run[0..n) true for each of the
 * comma-separated names @parse knows; false after one error line naming
 * the @kind of strategy and the @names it knows. */
bool bench_strategies(const char *arg, int (*parse)(const char *name), bool *run, int n,
		      const char *kind, const char *names);

/* bench cost and bench udp-cost: their phases (bench/phases.h) in the open
 * JSON object, or as lines with the rates in @unit. */
struct phases;
void bench_phases_json(const struct phases *p);
void bench_phases_print(const struct phases *p, const char *unit);

/* libsockmig-preload.so into @out: $SOCKMIG_PRELOAD, else beside this
 * binary, else in ../lib from it, else where make install puts it. false
 * when none is there. */
bool run_find_preload(char *out, size_t size);

#endif
