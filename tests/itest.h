/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers of the integration tests (every name here starts with it_):
 * real servers under a new-connection-per-request load, sockmig's
 * commands, exact outcomes. */
#ifndef SOCKMIG_TESTS_ITEST_H
#define SOCKMIG_TESTS_ITEST_H

#include <stdbool.h>
#include <stdint.h>
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
/* `sockmig attach --port P --foreground` in the background, once it has
 * registered the listener of the server already running. */
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

/*
 * The load generator's own tests (tests/test_loadgen*.c): a server child
 * forked by the case, listening before the fork (so no connection can come
 * before it is ready), serving a fixed number of connections one at a time
 * with blocking calls, killed by its own alarm if the case forgets it, and
 * killed by the case at the end; lg_opts for it.
 */
#define LG_PORT	  18080
#define REQ_LEN	  64
#define REPLY_LEN 256

enum srv_mode {
	SRV_NORMAL,	      /* read the request, write the reply, close */
	SRV_RESET_AFTER_READ, /* read the request, close with SO_LINGER {1, 0} */
	SRV_RESET_AT_ACCEPT,  /* close with SO_LINGER {1, 0} before reading */
	SRV_HALF_REPLY,	      /* read the request, write half the reply, close */
	SRV_HOLD,	      /* accept, keep the socket open, never read */
};

struct srv {
	pid_t pid;
};

/* Listen on the loopback of @family at LG_PORT (with a fastopen queue when
 * @tfo_qlen) and fork a server child serving up to @max connections in
 * @mode; 0 or -errno. */
int it_srv_start_tfo(struct srv *s, int family, enum srv_mode mode, uint64_t max, int tfo_qlen);
int it_srv_start(struct srv *s, int family, enum srv_mode mode, uint64_t max);
void it_srv_stop(struct srv *s);
/* @conns connections to LG_PORT, @concurrency at once, REQ_LEN bytes each,
 * REPLY_LEN back, 20 s and 5 s a connection at most. */
void it_lg_opts(struct lg_opts *o, int family, uint64_t conns, uint32_t concurrency);
/* The outcomes counted in @r. */
uint64_t it_lg_total(const struct lg_result *r);
void it_lg_print(const struct lg_result *r);
/* Run o; expect every one of its max_conns connections to end as outcome. */
bool it_lg_expect(const struct lg_opts *o, struct lg_result *r, enum lg_outcome outcome);

#endif
