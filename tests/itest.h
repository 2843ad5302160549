/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers of the integration tests: real servers under a new-connection-
 * per-request load, sockmig's commands, exact outcomes. */
#ifndef SOCKMIG_TESTS_ITEST_H
#define SOCKMIG_TESTS_ITEST_H

#include <stdbool.h>
#include <sys/types.h>

#include "loadgen.h"

#define IPORT	     33000
#define HTTP_REQUEST "GET / HTTP/1.0\r\nHost: sockmig\r\n\r\n"
#define MAX_PROCS    64

enum imode { I_NONE, I_ATTACH, I_SHIM };
extern const char *const imode_names[];

struct ienv {
	enum imode mode;
	char dir[64];
	char sockmig[512], preload[512];
	pid_t procs[MAX_PROCS];
	int nprocs;
	pid_t attach;
};

/* A temp dir, the tools, tcp_migrate_req=0. false: skip the case. */
bool setup(struct ienv *e, enum imode m);
/* Stop what the case started, detach, remove the temp dir. */
void teardown(struct ienv *e, int port);
/* Start argv (output to dir/log), with the shim if @preload. */
pid_t spawn(struct ienv *e, char *const argv[], bool preload);
void stop_all(struct ienv *e);
/* One HTTP exchange on loopback @port: the reply's length, or -1. */
int probe_reply(int port, int timeout_ms);
/* The load in a forked child (concurrency 32, or @rate conn/s when > 0);
 * returns the pipe its result comes back on. */
int start_load(int port, int reply_len, double secs, pid_t *pid);
int start_load_rate(int port, int reply_len, double secs, unsigned rate, int timeout_ms,
		    pid_t *pid);
bool finish_load(int rfd, pid_t pid, struct lg_result *r);
void print_result(const char *what, enum imode m, const struct lg_result *r, int reloads);
/* `sockmig attach --port P --foreground` in the background. */
bool start_attach(struct ienv *e, int port);
void detach(struct ienv *e, int port);
void show_log(const struct ienv *e, const char *name);
/* Lines of dir/@name that contain @what. */
int log_count(const struct ienv *e, const char *name, const char *what);
/* The baseline (I_NONE) must fail, sockmig must not. */
int judge(enum imode m, const struct lg_result *r);
/* Build tests/servers/static_server.c into dir (static when asked).
 * Returns false when it cannot. */
bool build_test_server(const struct ienv *e, bool static_link, char *bin, size_t len);

/* dir/nginx.conf: @workers workers, `listen 127.0.0.1:@port reuseport`. */
bool nginx_conf(const struct ienv *e, int workers, int port);

#endif
