/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers of the integration tests (every name here starts with it_):
 * real servers under a new-connection-per-request load, sockmig's
 * commands, exact outcomes. */
#ifndef SOCKMIG_TESTS_ITEST_H
#define SOCKMIG_TESTS_ITEST_H

#include <stdbool.h>
#include <sys/types.h>

#include "loadgen.h"

#define IPORT	     33000
#define HTTP_REQUEST "GET / HTTP/1.0\r\nHost: sockmig\r\n\r\n"
#define MAX_PROCS    64

enum imode { I_NONE, I_ATTACH, I_SHIM };
extern const char *const it_mode_names[];

struct ienv {
	enum imode mode;
	char dir[64];
	char sockmig[512], preload[512];
	pid_t procs[MAX_PROCS];
	int nprocs;
	pid_t attach;
};

/* A temp dir, the tools, tcp_migrate_req=0. false: skip the case. */
bool it_setup(struct ienv *e, enum imode m);
/* Stop what the case started, detach, remove the temp dir. */
void it_teardown(struct ienv *e, int port);
/* Start argv (output to dir/log), with the shim if @preload. */
pid_t it_spawn(struct ienv *e, char *const argv[], bool preload);
void it_stop_all(struct ienv *e);
/* One HTTP exchange on loopback @port: the reply's length, or -1. */
int it_probe_reply(int port, int timeout_ms);
/* The load in a forked child (concurrency 32, or @rate conn/s when > 0);
 * returns the pipe its result comes back on. */
int it_start_load(int port, int reply_len, double secs, pid_t *pid);
int it_start_load_rate(int port, int reply_len, double secs, unsigned rate, int timeout_ms,
		       pid_t *pid);
/* Ask the load to start no more connections: it finishes those in flight
 * and reports (it_finish_load) before its time is up. */
void it_stop_load(pid_t pid);
bool it_finish_load(int rfd, pid_t pid, struct lg_result *r);
void it_print_result(const char *what, enum imode m, const struct lg_result *r, int reloads);
/* `sockmig attach --port P --foreground` in the background. */
bool it_start_attach(struct ienv *e, int port);
void it_detach(struct ienv *e, int port);
void it_show_log(const struct ienv *e, const char *name);
/* Lines of dir/@name that contain @what. */
int it_log_count(const struct ienv *e, const char *name, const char *what);
/* The baseline (I_NONE) must fail, sockmig must not. */
int it_judge(enum imode m, const struct lg_result *r);
/* tests/servers/static_server.c as make built it (static when asked),
 * copied to dir/test_server (@bin). Returns false when it cannot. */
bool it_test_server(const struct ienv *e, bool static_link, char *bin, size_t len);

/* dir/nginx.conf: @workers workers, `listen 127.0.0.1:@port reuseport`. */
bool it_nginx_conf(const struct ienv *e, int workers, int port);

#endif
