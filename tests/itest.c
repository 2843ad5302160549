// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Helpers of the integration tests: real servers, a load, and sockmig's
 * commands, in the case's network namespace; the load generator's test
 * server; see itest.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "itest.h"
#include "proc.h"
#include "sockmig.h"
#include "util.h"

const char *const it_mode_names[] = {"none", "attach", "shim"};

static bool find_tools(struct ienv *e)
{
	char cwd[256];

	if (!getcwd(cwd, sizeof(cwd)))
		return false;
	snprintf(e->sockmig, sizeof(e->sockmig), "%s/.output/sockmig", cwd);
	snprintf(e->preload, sizeof(e->preload), "%s/.output/libsockmig-preload.so", cwd);
	return access(e->sockmig, X_OK) == 0;
}

/* Start argv[0] with output to dir/log; LD_PRELOAD in shim mode. */
pid_t it_spawn(struct ienv *e, char *const argv[], bool preload)
{
	char log[128];
	pid_t pid;

	snprintf(log, sizeof(log), "%s/log", e->dir);
	pid = tp_spawn(log, argv, preload ? e->preload : NULL);
	if (pid > 0 && e->nprocs < MAX_PROCS)
		e->procs[e->nprocs++] = pid;
	return pid;
}

void it_stop_all(struct ienv *e)
{
	for (int i = 0; i < e->nprocs; i++)
		kill(e->procs[i], SIGTERM);
	if (e->attach > 0)
		kill(e->attach, SIGTERM);
	burst_sleep_ms(200);
	for (int i = 0; i < e->nprocs; i++) {
		kill(e->procs[i], SIGKILL);
		waitpid(e->procs[i], NULL, 0);
	}
	if (e->attach > 0)
		waitpid(e->attach, NULL, 0);
	e->nprocs = 0;
	e->attach = 0;
}

/* One HTTP exchange; returns the reply's length (the server closes).
 * Every call is bounded by what is left of @timeout_ms (SO_SNDTIMEO bounds
 * connect() too): a server that takes the connection and never answers
 * makes this return -1, not hang. */
int it_probe_reply(int port, int timeout_ms)
{
	unsigned long long end = burst_now_ms() + (unsigned long long)timeout_ms;
	struct sockaddr_storage ss;
	socklen_t len = burst_addr(AF_INET, port, &ss);
	unsigned long long left;
	struct timeval tv;
	char buf[4096];
	int total, n, fd;

	while ((left = burst_now_ms()) < end) {
		left = end - left;
		tv.tv_sec = (time_t)(left / 1000);
		tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, (struct sockaddr *)&ss, len) == 0 &&
		    write(fd, HTTP_REQUEST, strlen(HTTP_REQUEST)) > 0) {
			total = 0;
			while ((n = (int)read(fd, buf, sizeof(buf))) > 0)
				total += n;
			close(fd);
			if (total > 0)
				return total;
		} else {
			close(fd);
		}
		burst_sleep_ms(20);
	}
	return -1;
}

static volatile int load_stop;

static void load_stop_asked(int sig)
{
	(void)sig;
	load_stop = 1;
}

int it_start_load_rate(int port, int reply_len, double secs, unsigned rate, int timeout_ms,
		       pid_t *pid)
{
	sigset_t usr1, old;
	int p[2];

	if (pipe(p) < 0)
		return -1;
	/* SIGUSR1 (it_stop_load) stays pending until the child can take it */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	*pid = fork();
	if (*pid == 0) {
		struct sigaction sa = {.sa_handler = load_stop_asked};
		struct lg_opts o = {0};
		struct lg_result *r = calloc(1, sizeof(*r));
		size_t done = 0;

		sigaction(SIGUSR1, &sa, NULL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(p[0]);
		o.stop = &load_stop;
		o.dstlen = burst_addr(AF_INET, port, &o.dst);
		o.max_conns = 10000000;
		o.max_secs = secs;
		o.concurrency = rate ? 4096 : 32;
		o.rate = rate;
		o.request = HTTP_REQUEST;
		o.request_len = strlen(HTTP_REQUEST);
		o.reply_len = (size_t)reply_len;
		o.timeout_ms = timeout_ms;
		if (!r || lg_run(&o, r) < 0)
			_exit(1);
		while (done < sizeof(*r)) {
			ssize_t n = write(p[1], (char *)r + done, sizeof(*r) - done);

			if (n <= 0)
				_exit(1);
			done += (size_t)n;
		}
		_exit(0);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(p[1]);
	return p[0];
}

void it_stop_load(pid_t pid)
{
	kill(pid, SIGUSR1);
}

int it_start_load(int port, int reply_len, double secs, pid_t *pid)
{
	return it_start_load_rate(port, reply_len, secs, 0, 4000, pid);
}

bool it_finish_load(int rfd, pid_t pid, struct lg_result *r)
{
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(*r) && (n = read(rfd, (char *)r + got, sizeof(*r) - got)) > 0)
		got += (size_t)n;
	close(rfd);
	waitpid(pid, NULL, 0);
	return got == sizeof(*r);
}

void it_print_result(const char *what, enum imode m, const struct lg_result *r, int reloads)
{
	printf("%s/%s: %llu connections, %d reloads: ok %llu, refused %llu, reset %llu+%llu, "
	       "eof %llu, timeout %llu, other %llu\n",
	       what, it_mode_names[m], (unsigned long long)r->started, reloads,
	       (unsigned long long)r->count[LG_OK], (unsigned long long)r->count[LG_REFUSED],
	       (unsigned long long)r->count[LG_RESET_BEFORE_REQUEST],
	       (unsigned long long)r->count[LG_RESET_AFTER_REQUEST],
	       (unsigned long long)r->count[LG_EOF_EARLY], (unsigned long long)r->count[LG_TIMEOUT],
	       (unsigned long long)r->count[LG_OTHER]);
}

bool it_start_attach(struct ienv *e, int port)
{
	char portarg[16], log[128];
	char *argv[] = {e->sockmig,	"attach",     "--port", portarg,
			"--foreground", "--interval", "20",	NULL};

	snprintf(portarg, sizeof(portarg), "%d", port);
	snprintf(log, sizeof(log), "%s/attach.log", e->dir);
	e->attach = tp_spawn(log, argv, NULL);
	/* the server listens already: attach has started when it says it
	 * registered its listener (bounded: probing takes seconds under
	 * emulation) */
	for (int t = 0;
	     t < 1500 && e->attach > 0 && it_log_count(e, "attach.log", "registered ") == 0; t++) {
		if (waitpid(e->attach, NULL, WNOHANG) == e->attach)
			e->attach = 0; /* reaped: never signalled again */
		else
			burst_sleep_ms(10);
	}
	if (e->attach > 0 && waitpid(e->attach, NULL, WNOHANG) == e->attach)
		e->attach = 0;
	return e->attach > 0 && it_log_count(e, "attach.log", "registered ") > 0;
}

void it_detach(struct ienv *e, int port)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "%s detach --port %d >/dev/null 2>&1", e->sockmig, port);
	if (system(cmd) < 0)
		printf("detach failed\n");
}

int it_log_count(const struct ienv *e, const char *name, const char *what)
{
	char path[128], line[1024];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, what) != NULL;
	fclose(f);
	return n;
}

void it_show_log(const struct ienv *e, const char *name)
{
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "tail -5 %s/%s 2>/dev/null", e->dir, name);
	if (system(cmd) < 0)
		return;
}

bool it_setup(struct ienv *e, enum imode m)
{
	memset(e, 0, sizeof(*e));
	e->mode = m;
	snprintf(e->dir, sizeof(e->dir), "/tmp/sockmig-it-XXXXXX");
	if (!mkdtemp(e->dir) || !find_tools(e))
		return false;
	if (m == I_SHIM && access(e->preload, R_OK) < 0)
		return false;
	return burst_migrate_req(false) == 0;
}

void it_teardown(struct ienv *e, int port)
{
	char cmd[128];

	it_stop_all(e);
	if (e->mode != I_NONE)
		it_detach(e, port);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
	if (system(cmd) < 0)
		printf("cannot remove %s\n", e->dir);
}

/* Judge a run: the baseline must show failures, sockmig none. */
int it_judge(enum imode m, const struct lg_result *r)
{
	uint64_t failed = r->started - r->count[LG_OK];

	if (!ASSERT_GT(r->started, 1000, "connections made"))
		return SM_FAIL;
	if (m == I_NONE) {
		char why[200];

		/* the baseline races reloads: on a machine too slow for the race
		 * (measured) no failure proves nothing either way */
		if (failed == 0 && tu_machine_too_slow(why, sizeof(why)))
			return SKIP("the baseline saw no failure in %llu connections, so it "
				    "cannot show that the case can fail here: %s",
				    (unsigned long long)r->started, why);
		return ASSERT_GT(failed, 0, "baseline failures (the test can fail)") ? SM_PASS
										     : SM_FAIL;
	}
	return ASSERT_EQ(failed, 0, "failed connections with sockmig") ? SM_PASS : SM_FAIL;
}

bool it_test_server(const struct ienv *e, bool static_link, char *bin, size_t len)
{
	snprintf(bin, len, "%s/test_server", e->dir);
	return tp_server_copy(static_link ? "static_server" : "dynamic_server", bin);
}

bool it_nginx_conf(const struct ienv *e, int workers, int port)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/nginx.conf", e->dir);
	f = fopen(path, "w");
	if (!f)
		return false;
	fprintf(f,
		"worker_processes %d;\nerror_log %s/error.log;\npid %s/nginx.pid;\n"
		"events { worker_connections 4096; }\n"
		"http {\n\taccess_log off;\n\tclient_body_temp_path %s;\n"
		"\tproxy_temp_path %s;\n\tfastcgi_temp_path %s;\n\tuwsgi_temp_path %s;\n"
		"\tscgi_temp_path %s;\n"
		"\tserver {\n\t\tlisten 127.0.0.1:%d reuseport backlog=4096;\n"
		"\t\tlocation / { return 200 \"ok\\n\"; }\n\t}\n}\n",
		workers, e->dir, e->dir, e->dir, e->dir, e->dir, e->dir, e->dir, port);
	fclose(f);
	return true;
}

/* ---- the load generator's test server ---- */

/* a server child lives no longer than this */
#define SRV_ALARM_SECS 40

static void fill_addr(struct sockaddr_storage *ss, socklen_t *len, int family, uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sin6->sin6_addr = in6addr_loopback;
		*len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*len = sizeof(*sin);
	}
}

static void close_rst(int fd)
{
	struct linger lin = {.l_onoff = 1, .l_linger = 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
	close(fd);
}

/* Read a request of REQ_LEN bytes: true when all came. */
static bool read_request(int fd)
{
	char buf[REQ_LEN];
	size_t got = 0;

	while (got < REQ_LEN) {
		ssize_t n = read(fd, buf, REQ_LEN - got);

		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

static void write_all(int fd, size_t len)
{
	char buf[REPLY_LEN];
	size_t off = 0;

	memset(buf, 'r', sizeof(buf));
	while (off < len) {
		ssize_t n = send(fd, buf, len - off, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		off += (size_t)n;
	}
}

/* The server child: serve up to max connections, then wait to be killed. */
static void __attribute__((noreturn)) serve(int lfd, enum srv_mode mode, uint64_t max)
{
	static int held[64];
	unsigned int nheld = 0;

	alarm(SRV_ALARM_SECS);
	for (uint64_t i = 0; i < max; i++) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			printf("server: accept: %s\n", strerror(errno));
			_exit(1);
		}
		switch (mode) {
		case SRV_NORMAL:
			if (read_request(fd))
				write_all(fd, REPLY_LEN);
			close(fd);
			break;
		case SRV_RESET_AFTER_READ:
			read_request(fd);
			close_rst(fd);
			break;
		case SRV_RESET_AT_ACCEPT:
			close_rst(fd);
			break;
		case SRV_HALF_REPLY:
			if (read_request(fd))
				write_all(fd, REPLY_LEN / 2);
			close(fd);
			break;
		case SRV_HOLD:
			if (nheld < sizeof(held) / sizeof(held[0]))
				held[nheld++] = fd;
			else
				close(fd);
			break;
		}
	}
	for (;;)
		pause();
}

/*
 * Listen on the loopback of family at LG_PORT (with a fastopen queue when
 * tfo_qlen) and fork a server child.
 */
int it_srv_start_tfo(struct srv *s, int family, enum srv_mode mode, uint64_t max, int tfo_qlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int lfd, one = 1, err;

	s->pid = -1;
	fill_addr(&ss, &len, family, LG_PORT);
	lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (tfo_qlen &&
	    setsockopt(lfd, IPPROTO_TCP, TCP_FASTOPEN, &tfo_qlen, sizeof(tfo_qlen)) < 0) {
		err = -errno;
		goto close_listener;
	}
	if (bind(lfd, (struct sockaddr *)&ss, len) < 0 || listen(lfd, 1024) < 0) {
		err = -errno;
		goto close_listener;
	}
	fflush(stdout);
	s->pid = fork();
	if (s->pid < 0) {
		err = -errno;
		goto close_listener;
	}
	if (s->pid == 0)
		serve(lfd, mode, max);
	err = 0;
close_listener:
	close(lfd);
	return err;
}

int it_srv_start(struct srv *s, int family, enum srv_mode mode, uint64_t max)
{
	return it_srv_start_tfo(s, family, mode, max, 0);
}

void it_srv_stop(struct srv *s)
{
	if (s->pid <= 0)
		return;
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	s->pid = -1;
}

static const char lg_request[REQ_LEN] =
	"GET / one connection per request, padded to 64 bytes.....\n";

void it_lg_opts(struct lg_opts *o, int family, uint64_t conns, uint32_t concurrency)
{
	memset(o, 0, sizeof(*o));
	fill_addr(&o->dst, &o->dstlen, family, LG_PORT);
	o->max_conns = conns;
	o->max_secs = 20;
	o->concurrency = concurrency;
	o->request = lg_request;
	o->request_len = REQ_LEN;
	o->reply_len = REPLY_LEN;
	o->timeout_ms = 5000;
}

uint64_t it_lg_total(const struct lg_result *r)
{
	uint64_t sum = 0;

	for (int i = 0; i < LG_NOUTCOMES; i++)
		sum += r->count[i];
	return sum;
}

void it_lg_print(const struct lg_result *r)
{
	printf("started %llu in %.3f s:", (unsigned long long)r->started, r->elapsed);
	for (int i = 0; i < LG_NOUTCOMES; i++)
		printf(" %s %llu", lg_outcome_str(i), (unsigned long long)r->count[i]);
	printf(" (last other errno: %s)\n", strerror(r->last_other_errno));
}

/* Run o; expect every one of its max_conns connections to end as outcome. */
bool it_lg_expect(const struct lg_opts *o, struct lg_result *r, enum lg_outcome outcome)
{
	bool ok = ASSERT_OK(lg_run(o, r), "lg_run");

	it_lg_print(r);
	ok = ok && ASSERT_EQ(r->started, o->max_conns, "connections started");
	ok = ok && ASSERT_EQ(it_lg_total(r), r->started, "outcomes counted");
	ok = ok && ASSERT_EQ(r->count[outcome], o->max_conns, lg_outcome_str(outcome));
	if (outcome == LG_OK)
		return ok && ASSERT_EQ(r->nfails, 0, "failures named") &&
		       ASSERT_EQ(lg_ok_between(r, r->t0_ms, UINT64_MAX), r->count[LG_OK],
				 "served connections by their start") &&
		       ASSERT_EQ(lg_ok_between(r, 0, r->t0_ms), 0, "none before the run");
	/* the first failures named, each with its outcome and times (a refused
	 * connect has no port) */
	ok = ok && ASSERT_EQ(r->nfails, o->max_conns < LG_FAILS_KEPT ? o->max_conns : LG_FAILS_KEPT,
			     "failures named");
	for (uint32_t i = 0; ok && i < r->nfails; i++)
		ok = ASSERT_EQ(r->fails[i].outcome, outcome, "a named failure's outcome") &&
		     ASSERT_TRUE(outcome == LG_REFUSED || r->fails[i].port != 0, "its port") &&
		     ASSERT_TRUE(r->fails[i].end_ms >= r->fails[i].start_ms, "its times");
	return ok;
}
