// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig metrics scraped by a real Prometheus (Debian's package) in the
 * test's namespace, after a burst and a drain: what PromQL returns is what
 * sockmig -j status says and what the burst made.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "statustest.h"
#include "util.h"

#define PORT	 32200
#define MPORT	 32201 /* sockmig metrics --listen */
#define PPORT	 32202 /* prometheus --web.listen-address */
#define SERVED	 200
#define QUEUED	 40
#define PROM_BIN "/usr/bin/prometheus"

static pid_t start(char *const argv[], const char *log)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static void finish(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 100 && waitpid(pid, NULL, WNOHANG) == 0; i++)
		burst_sleep_ms(50);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* GET @path from 127.0.0.1:@port: the body into @buf, or -1. */
static int http_get(int port, const char *path, char *buf, size_t len)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {2, 0};
	size_t have = 0;
	char req[512];
	char *body;
	int fd;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	if (write(fd, req, strlen(req)) < 0) {
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, buf + have, len - 1 - have);

		if (n <= 0 || (have += (size_t)n) >= len - 1)
			break;
	}
	close(fd);
	buf[have] = '\0';
	body = strstr(buf, "\r\n\r\n");
	if (strncmp(buf, "HTTP/1.", 7) != 0 || strncmp(buf + 9, "200", 3) != 0 || !body)
		return -1;
	memmove(buf, body + 4, strlen(body + 4) + 1);
	return 0;
}

/* The value of a one-sample instant vector that Prometheus returns for
 * @promql (no spaces or special characters in it), or -1 with no sample. */
static long long prom_query(const char *promql)
{
	char path[256], buf[8192];
	const char *v;

	snprintf(path, sizeof(path), "/api/v1/query?query=%s", promql);
	if (http_get(PPORT, path, buf, sizeof(buf)) < 0)
		return -1;
	/* {"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[T,"N"]}]}} */
	v = strstr(buf, "\"value\":[");
	if (!v || !(v = strchr(v, ',')) || v[1] != '"')
		return -1;
	return strtoll(v + 2, NULL, 10);
}

/* Sum of every "@key":N in @json. */
static long long json_sum(const char *json, const char *key)
{
	char pat[64];
	long long sum = 0;
	const char *p = json;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	while ((p = strstr(p, pat))) {
		p += strlen(pat);
		sum += strtoll(p, NULL, 10);
	}
	return sum;
}

static int run_status_json(char *buf, size_t len)
{
	FILE *p = popen(".output/sockmig -j status", "r");
	size_t n;

	if (!p)
		return -1;
	n = fread(buf, 1, len - 1, p);
	buf[n] = '\0';
	return pclose(p) == 0 ? 0 : -1;
}

SM_TEST(metrics_prometheus_scrape_agrees_with_status)
{
	SOCKMIG_OPTS(sockmig_group_opts, go, .wake_targets = SOCKMIG_WAKE_NEVER);
	SOCKMIG_OPTS(sockmig_member_opts, m1, .role = SOCKMIG_ROLE_ACTIVE, .generation = 1);
	SOCKMIG_OPTS(sockmig_member_opts, m2, .role = SOCKMIG_ROLE_ACTIVE, .generation = 2);
	char dir[] = "/tmp/sockmig-metrics-XXXXXX", path[256], log_m[256], log_p[256];
	char *status = NULL;
	struct burst *c = NULL;
	struct sockmig_drain_report rep;
	struct sockmig_group *g = NULL;
	int l[2] = {-1, -1}, ret = SM_FAIL, queued_a;
	long long steered = -1, out = -1, success = -1, b_steered = -1, b_in = -1;
	long long drains = -1, drain_count = -1, drain_le_inf = -1, drain_le_5s = -1;
	char q_b_steered[160], q_b_in[160];
	pid_t metrics = -1, prom = -1;
	FILE *f;

	if (access(".output/sockmig", X_OK) != 0)
		return SKIP("run from the repository root, after make");
	status = malloc(1 << 20);
	c = calloc(1, sizeof(*c));
	if (!ASSERT_TRUE(access(PROM_BIN, X_OK) == 0, "prometheus installed (scripts/deps)") ||
	    !status || !c || !mkdtemp(dir))
		goto out;
	/* a group of two, a burst served by both, then A drained with a queue */
	l[0] = burst_listener(AF_INET, PORT, 1024, 0);
	l[1] = burst_listener(AF_INET, PORT, 1024, 0);
	g = sockmig_group_open(l[0], &go);
	if (!ASSERT_TRUE(g, sockmig_last_error()) ||
	    !ASSERT_OK(sockmig_member_add(g, l[0], &m1), "A") ||
	    !ASSERT_OK(sockmig_member_add(g, l[1], &m2), "B") ||
	    !ASSERT_OK(burst_start(c, AF_INET, PORT, SERVED, false), "clients"))
		goto out;
	burst_serve(c, l, 2, NULL, 5000);
	if (!ASSERT_EQ(c->count[BURST_OK], SERVED, "served"))
		goto out;
	burst_close(c);
	memset(c, 0, sizeof(*c));
	if (!ASSERT_OK(burst_start(c, AF_INET, PORT, QUEUED, false), "queued clients") ||
	    !ASSERT_EQ(burst_connected(c, 2000), QUEUED, "connected"))
		goto out;
	/* every child in a queue (A's or B's) before A's is read */
	if (!ASSERT_EQ(st_wait_queues(l, 2, QUEUED), QUEUED, "children queued"))
		goto out;
	queued_a = burst_accept_queue(l[0]);
	if (!ASSERT_OK(sockmig_member_drain(g, l[0], NULL, &rep), "drain A") ||
	    !ASSERT_EQ(rep.migrated[SOCKMIG_KIND_ESTABLISHED], (uint64_t)queued_a, "migrated"))
		goto out;
	burst_serve(c, &l[1], 1, NULL, 5000);
	if (!ASSERT_EQ(c->count[BURST_OK], QUEUED, "queued clients served"))
		goto out;

	/* sockmig metrics over HTTP, scraped by Prometheus every second */
	snprintf(path, sizeof(path), "%s/prometheus.yml", dir);
	f = fopen(path, "w");
	if (!f)
		goto out;
	fprintf(f,
		"global:\n  scrape_interval: 1s\n"
		"scrape_configs:\n  - job_name: sockmig\n    static_configs:\n"
		"      - targets: ['127.0.0.1:%d']\n",
		MPORT);
	fclose(f);
	snprintf(log_m, sizeof(log_m), "%s/metrics.log", dir);
	snprintf(log_p, sizeof(log_p), "%s/prometheus.log", dir);
	{
		char listen[32], cfg[300], data[300], web[64];
		char *margv[] = {".output/sockmig", "metrics", "--listen", listen, NULL};
		char *pargv[] = {PROM_BIN, cfg, data, web, NULL};

		snprintf(listen, sizeof(listen), "127.0.0.1:%d", MPORT);
		snprintf(cfg, sizeof(cfg), "--config.file=%s", path);
		snprintf(data, sizeof(data), "--storage.tsdb.path=%s/data", dir);
		snprintf(web, sizeof(web), "--web.listen-address=127.0.0.1:%d", PPORT);
		metrics = start(margv, log_m);
		prom = start(pargv, log_p);
	}
	/* bounded: Prometheus starts, scrapes, and answers */
	snprintf(q_b_steered, sizeof(q_b_steered),
		 "sockmig_member_syn_steered_total%%7Bmember%%3D%%22%llu%%22%%7D",
		 (unsigned long long)sockmig_cookie(l[1]));
	snprintf(q_b_in, sizeof(q_b_in),
		 "sum(sockmig_member_migrated_in_total%%7Bmember%%3D%%22%llu%%22%%7D)",
		 (unsigned long long)sockmig_cookie(l[1]));
	for (int i = 0; i < 120 && (steered < 0 || out < 0 || success < 0 || b_in < 0 ||
				    drain_count < 0 || drain_le_5s < 0);
	     i++) {
		burst_sleep_ms(250);
		steered = prom_query("sum(sockmig_member_syn_steered_total)");
		out = prom_query("sum(sockmig_member_migrated_out_total)");
		success = prom_query("sockmig_kernel_tcp_migrate_req_success_total");
		b_steered = prom_query(q_b_steered);
		b_in = prom_query(q_b_in);
		drains = prom_query("sum(sockmig_drains_total)");
		drain_count = prom_query("sum(sockmig_drain_duration_seconds_count)");
		drain_le_inf = prom_query(
			"sum(sockmig_drain_duration_seconds_bucket%7Ble%3D%22%2BInf%22%7D)");
		drain_le_5s =
			prom_query("sum(sockmig_drain_duration_seconds_bucket%7Ble%3D%225%22%7D)");
	}
	printf("PromQL: drains %lld, drain durations counted %lld (le +Inf %lld, le 5 s %lld)\n",
	       drains, drain_count, drain_le_inf, drain_le_5s);
	printf("PromQL: steered %lld (B %lld), migrated out %lld, into B %lld, "
	       "TCPMigrateReqSuccess %lld\n",
	       steered, b_steered, out, b_in, success);
	if (!ASSERT_TRUE(steered >= 0, "Prometheus scraped sockmig metrics") ||
	    !ASSERT_OK(run_status_json(status, 1 << 20), "sockmig -j status"))
		goto out;
	/* status shows the listeners that still listen: B */
	printf("status: steered %lld, migrated in %lld, TCPMigrateReqSuccess %lld\n",
	       json_sum(status, "steered"), json_sum(status, "migrated_in"),
	       json_sum(status, "TCPMigrateReqSuccess"));
	if (!ASSERT_EQ(steered, SERVED + QUEUED, "every SYN steered, by PromQL") ||
	    !ASSERT_EQ(out, queued_a, "migrated out of A, by PromQL") ||
	    !ASSERT_EQ(b_in, queued_a, "migrated into B, by PromQL") ||
	    !ASSERT_EQ(success, queued_a, "TCPMigrateReqSuccess, by PromQL") ||
	    !ASSERT_EQ(b_steered, json_sum(status, "steered"), "PromQL = status: B's SYNs") ||
	    !ASSERT_EQ(b_in, json_sum(status, "migrated_in"), "PromQL = status: into B") ||
	    !ASSERT_EQ(success, json_sum(status, "TCPMigrateReqSuccess"),
		       "PromQL = status: TCPMigrateReqSuccess"))
		goto out;
	/* A's drain, from the group's event ring: it stays after A left */
	if (!ASSERT_EQ(drains, 1, "sockmig_drains_total") ||
	    !ASSERT_EQ(drain_count, 1, "sockmig_drain_duration_seconds_count") ||
	    !ASSERT_EQ(drain_le_inf, 1, "le=+Inf bucket") ||
	    !ASSERT_EQ(drain_le_5s, 1, "le=5 bucket (the drain waits at most 1 s)"))
		goto out;
	if (!ASSERT_OK(system("promtool check rules examples/prometheus/sockmig.rules.yml"),
		       "the example alerting rules"))
		goto out;
	ret = SM_PASS;
out:
	finish(prom);
	finish(metrics);
	if (ret != SM_PASS && prom > 0) {
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "tail -n 20 %s %s", log_p, log_m);
		if (system(cmd) < 0)
			perror("tail");
	}
	if (dir[sizeof(dir) - 2] != 'X') {
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) < 0)
			perror("rm");
	}
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	for (int i = 0; i < 2; i++)
		if (l[i] >= 0)
			close(l[i]);
	if (c) {
		burst_close(c);
		free(c);
	}
	free(status);
	return ret;
}
