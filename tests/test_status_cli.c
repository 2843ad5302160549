// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmig status as an operator runs it: its output (JSON and columns, as
 * root and as an unprivileged user) against the sockets and the group a
 * case registers, and its errors.
 *
 * The binary is .output/sockmig from the current directory (the suite runs
 * from the repository's root); the JSON is checked with python3.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sockmig.h"
#include "statustest.h"
#include "util.h"

/* ---- running the binary --------------------------------------------------- */

struct run {
	int status; /* exit status, -1 if it did not exit */
	char out[32768];
	char err[4096];
};

static void slurp(int fd, char *buf, size_t len)
{
	ssize_t n, got = 0;

	lseek(fd, 0, SEEK_SET);
	while ((size_t)got < len - 1 && (n = read(fd, buf + got, len - 1 - (size_t)got)) > 0)
		got += n;
	buf[got] = '\0';
}

/*
 * Run @argv (execvp) with stdin from @in (a memfd, or -1 for /dev/null),
 * as @uid unless it is 0; r->out, r->err and r->status as it ends.
 */
static int run(char *const argv[], int in, uid_t uid, struct run *r)
{
	int out = memfd_create("status-out", MFD_CLOEXEC);
	int err = memfd_create("status-err", MFD_CLOEXEC);
	int status = 0;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	r->status = -1;
	if (out < 0 || err < 0)
		return -errno;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (in >= 0)
			lseek(in, 0, SEEK_SET);
		dup2(in >= 0 ? in : null, STDIN_FILENO);
		dup2(out, STDOUT_FILENO);
		dup2(err, STDERR_FILENO);
		if (uid && (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0))
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		close(out);
		close(err);
		return -ECHILD;
	}
	slurp(out, r->out, sizeof(r->out));
	slurp(err, r->err, sizeof(r->err));
	close(out);
	close(err);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	return 0;
}

/* What a check prints of sockmig -j status: one line per group and member. */
static const char summary_py[] =
	"import json, sys\n"
	"for g in json.load(sys.stdin):\n"
	"    print('G', g['local'], g['nmembers'], g['pinned'], g['reuseport'],\n"
	"          g['sockmig_state'], g['sockmig_group'])\n"
	"    for m in g['members']:\n"
	"        s = m['sockmig']\n"
	"        o = ','.join('%d:%d' % (x['pid'], x['fd']) for x in m['owners']) or '?'\n"
	"        print('M', m['cookie'], m['queue'], m['backlog'], o,\n"
	"              *((s['role'], s['generation'], s['steered']) if s else '---'))\n";

/* Run "sockmig -j status ARGS" as @uid and summarize its JSON into @sum. */
static int json_summary(char *const args[], uid_t uid, char *sum, size_t len)
{
	char *argv[16] = {SOCKMIG_BIN, "-j", "status"};
	char *py[] = {"python3", "-c", (char *)summary_py, NULL};
	struct run *r = calloc(1, sizeof(*r));
	int in = -1, ret = SM_FAIL, i;

	if (!r)
		return SM_FAIL;
	for (i = 0; args && args[i] && i < 12; i++)
		argv[3 + i] = args[i];
	argv[3 + i] = NULL;
	if (!ASSERT_OK(run(argv, -1, uid, r), "run sockmig") ||
	    !ASSERT_EQ(r->status, 0, "sockmig -j status exit status") ||
	    !ASSERT_EQ(strlen(r->err), 0, "sockmig -j status stderr")) {
		printf("stdout: %s\nstderr: %s\n", r->out, r->err);
		goto out;
	}
	in = memfd_create("status-json", MFD_CLOEXEC);
	if (in < 0 || write(in, r->out, strlen(r->out)) != (ssize_t)strlen(r->out))
		goto out;
	printf("sockmig -j status:\n%s", r->out);
	if (!ASSERT_OK(run(py, in, 0, r), "run python3"))
		goto out;
	if (r->status == 127) {
		ret = SKIP("python3 is needed to read the JSON");
		goto out;
	}
	if (!ASSERT_EQ(r->status, 0, "the JSON parses")) {
		printf("%s", r->err);
		goto out;
	}
	snprintf(sum, len, "%s", r->out);
	ret = SM_PASS;
out:
	if (in >= 0)
		close(in);
	free(r);
	return ret;
}

static bool have_binary(void)
{
	return access(SOCKMIG_BIN, X_OK) == 0;
}

static bool expect_text(const char *got, const char *want, const char *what)
{
	bool ok = strcmp(got, want) == 0;

	if (!ok)
		printf("%s: got:\n%s--- expected:\n%s---\n", what, got, want);
	return ok;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* ---- the binary's output -------------------------------------------------- */

/* The summary json_summary() prints for the group (registered with
 * generation 3 in @sg, unless NULL) and the IPv6 listener. */
static void expected_summary(char *buf, size_t len, const int *g, int v6, struct sockmig_group *sg)
{
	struct in_addr lo = {htonl(INADDR_LOOPBACK)};
	struct in6_addr lo6 = IN6ADDR_LOOPBACK_INIT;
	struct sockmig_group_id id;
	const char *name = id.name;
	int order[3] = {0, 1, 2};
	size_t off = 0;

	sockmig_group_id_make(AF_INET, &lo, P_GROUP, 0, &id);
	off += (size_t)snprintf(buf + off, len - off, "G 127.0.0.1:%d 3 %s True readable %s\n",
				P_GROUP, sg ? "True" : "False", name);
	/* members in order of cookie */
	for (int i = 1; i < 3; i++)
		for (int k = i;
		     k > 0 && sockmig_cookie(g[order[k - 1]]) > sockmig_cookie(g[order[k]]); k--) {
			int t = order[k];

			order[k] = order[k - 1];
			order[k - 1] = t;
		}
	for (int i = 0; i < 3; i++) {
		int fd = g[order[i]];
		uint64_t ck = sockmig_cookie(fd);
		struct sockmig_counters c = {0};

		off += (size_t)snprintf(buf + off, len - off, "M %llu %d 128 %d:%d",
					(unsigned long long)ck, burst_accept_queue(fd),
					(int)getpid(), fd);
		if (sg && sockmig_counters_read(sg, ck, &c) == 0)
			off += (size_t)snprintf(buf + off, len - off, " active 3 %llu\n",
						(unsigned long long)c.steered);
		else
			off += (size_t)snprintf(buf + off, len - off, " - - -\n");
	}
	sockmig_group_id_make(AF_INET6, &lo6, P_V6, 0, &id);
	off += (size_t)snprintf(buf + off, len - off, "G [::1]:%d 1 False True readable %s\n", P_V6,
				name);
	snprintf(buf + off, len - off, "M %llu 0 64 %d:%d - - -\n",
		 (unsigned long long)sockmig_cookie(v6), (int)getpid(), v6);
}

/* Member rows of the columns: fields by whitespace, the process last. */
static bool check_row(const char *out, int fd, struct sockmig_group *sg)
{
	char want[256], line[512], local[64], role[16], proc[128];
	unsigned long long cookie = sockmig_cookie(fd), ck, gen, weight, steered;
	unsigned q, b;
	struct sockmig_counters c = {0};
	const char *p = out;

	sockmig_counters_read(sg, cookie, &c);
	snprintf(want, sizeof(want), "test_sockmig(pid=%d,fd=%d)", (int)getpid(), fd);
	while (*p) {
		size_t n = strcspn(p, "\n");

		snprintf(line, sizeof(line), "%.*s",
			 (int)(n < sizeof(line) - 1 ? n : sizeof(line) - 1), p);
		p += n + (p[n] == '\n');
		if (sscanf(line, "%u %u %63s %llu %15s %llu %llu %llu %*s %*s %*s %127s", &q, &b,
			   local, &ck, role, &gen, &weight, &steered, proc) != 9 ||
		    ck != cookie)
			continue;
		return ASSERT_EQ(q, burst_accept_queue(fd), "Recv-Q") &&
		       ASSERT_EQ(b, 128, "Send-Q") &&
		       ASSERT_TRUE(strcmp(local, "127.0.0.1:32100") == 0, "Local Address:Port") &&
		       ASSERT_TRUE(strcmp(role, "active") == 0, "Role") &&
		       ASSERT_EQ(gen, 3, "Gen") && ASSERT_EQ(weight, 1, "Weight") &&
		       ASSERT_EQ(steered, c.steered, "Steered") &&
		       ASSERT_TRUE(strcmp(proc, want) == 0, "Process");
	}
	printf("no row for cookie %llu in:\n%s", cookie, out);
	return false;
}

SM_TEST(status_cli_json_and_columns)
{
	enum { K = 4, S = 6 };
	int g[3] = {-1, -1, -1}, v6 = -1, plain = -1, ck[K], cs[S], ret = SM_FAIL, rc;
	char *want = malloc(4096), *got = malloc(32768), head[256];
	char *cols[] = {SOCKMIG_BIN, "status", "--port", "32100", NULL};
	char *none[] = {SOCKMIG_BIN, "status", "--port", "32103", NULL};
	char *none_j[] = {SOCKMIG_BIN, "-j", "status", "--port", "32103", NULL};
	char *tool[] = {"python3", "-m", "json.tool", NULL};
	struct run *r = calloc(1, sizeof(*r));
	struct sockmig_group *sg = NULL;
	uint64_t steered = 0;
	int in = -1;

	for (int i = 0; i < K; i++)
		ck[i] = -1;
	for (int i = 0; i < S; i++)
		cs[i] = -1;
	if (!want || !got || !r)
		goto out;
	if (!have_binary()) {
		ret = SKIP("no %s (run make all from the repository's root)", SOCKMIG_BIN);
		goto out;
	}
	for (int i = 0; i < 3; i++)
		if (!ASSERT_OK(g[i] = st_listener(AF_INET, P_GROUP, true, 128), "group listener"))
			goto out;
	if (!ASSERT_OK(v6 = st_listener(AF_INET6, P_V6, true, 64), "IPv6 listener") ||
	    !ASSERT_OK(plain = st_listener(AF_INET, P_PLAIN, false, 32), "plain listener") ||
	    !ASSERT_EQ(st_connect_n(AF_INET, P_GROUP, K, ck), K, "clients") ||
	    !ASSERT_EQ(st_wait_queues(g, 3, K), K, "queued"))
		goto out;

	/* the group, the IPv6 listener alone (SO_REUSEPORT), not the plain one */
	expected_summary(want, 4096, g, v6, NULL);
	rc = json_summary(NULL, 0, got, 32768);
	if (rc != SM_PASS) {
		ret = rc;
		goto out;
	}
	if (!expect_text(got, want, "before registration"))
		goto out;

	/* registered: role, generation 3, the SYNs the policy steered */
	sg = sockmig_group_open(g[0], NULL);
	if (!ASSERT_TRUE(sg, sockmig_last_error()))
		goto out;
	for (int i = 0; i < 3; i++) {
		SOCKMIG_OPTS(sockmig_member_opts, mo, .generation = 3);

		if (!ASSERT_OK(sockmig_member_add(sg, g[i], &mo), "sockmig_member_add"))
			goto out;
	}
	if (!ASSERT_EQ(st_connect_n(AF_INET, P_GROUP, S, cs), S, "clients after registration") ||
	    !ASSERT_EQ(st_wait_queues(g, 3, K + S), K + S, "queued"))
		goto out;
	for (int i = 0; i < 3; i++) {
		struct sockmig_counters c = {0};

		sockmig_counters_read(sg, sockmig_cookie(g[i]), &c);
		steered += c.steered;
	}
	if (!ASSERT_EQ(steered, S, "SYNs steered by the policy"))
		goto out;
	expected_summary(want, 4096, g, v6, sg);
	if (json_summary(NULL, 0, got, 32768) != SM_PASS ||
	    !expect_text(got, want, "after registration"))
		goto out;

	/* the whole output is JSON for python3 -m json.tool too */
	in = memfd_create("status-json", MFD_CLOEXEC);
	if (!ASSERT_OK(run((char *[]){SOCKMIG_BIN, "-j", "status", NULL}, -1, 0, r), "run") ||
	    !ASSERT_TRUE(in >= 0 && write(in, r->out, strlen(r->out)) == (ssize_t)strlen(r->out),
			 "memfd") ||
	    !ASSERT_OK(run(tool, in, 0, r), "run json.tool") ||
	    !ASSERT_EQ(r->status, 0, "python3 -m json.tool"))
		goto out;

	/* the columns: header, two heading lines for the group, one row a member */
	if (!ASSERT_OK(run(cols, -1, 0, r), "run") || !ASSERT_EQ(r->status, 0, "exit status") ||
	    !ASSERT_EQ(strlen(r->err), 0, "stderr"))
		goto out;
	printf("sockmig status --port %d:\n%s", P_GROUP, r->out);
	snprintf(head, sizeof(head), "sockmig group %s (native policy, 3 registered)",
		 sockmig_group_name(sg));
	if (!ASSERT_EQ(count_lines(r->out), 6, "lines") ||
	    !ASSERT_TRUE(strncmp(r->out, "Recv-Q Send-Q Local Address:Port", 32) == 0, "header") ||
	    !ASSERT_TRUE(strstr(r->out, "tcp4 127.0.0.1:32100 netns ") != NULL, "heading") ||
	    !ASSERT_TRUE(strstr(r->out, ": 3 members, SO_REUSEPORT yes, ") != NULL, "members") ||
	    !ASSERT_TRUE(strstr(r->out, head) != NULL, "the pinned group") ||
	    !ASSERT_TRUE(strstr(r->out, "  kernel native") || strstr(r->out, "  kernel select"),
			 "the probe's verdict") ||
	    !ASSERT_TRUE(strstr(r->out, "TCPMigrateReqSuccess=0 TCPMigrateReqFailure=0") != NULL,
			 "TcpExt counters"))
		goto out;
	for (int i = 0; i < 3; i++)
		if (!check_row(r->out, g[i], sg))
			goto out;

	/* a port without listener: the header alone, an empty list */
	if (!ASSERT_OK(run(none, -1, 0, r), "run") || !ASSERT_EQ(r->status, 0, "exit status") ||
	    !ASSERT_EQ(count_lines(r->out), 1, "lines without listener") ||
	    !ASSERT_TRUE(strncmp(r->out, "Recv-Q ", 7) == 0, "header"))
		goto out;
	if (!ASSERT_OK(run(none_j, -1, 0, r), "run") || !ASSERT_EQ(r->status, 0, "exit status") ||
	    !expect_text(r->out, "[]\n", "JSON without listener"))
		goto out;
	ret = SM_PASS;
out:
	if (sg) {
		sockmig_group_destroy(sg);
		sockmig_group_close(sg);
	}
	if (in >= 0)
		close(in);
	st_close_all(ck, K);
	st_close_all(cs, S);
	st_close_all(g, 3);
	st_close_all((int[]){v6, plain}, 2);
	free(want);
	free(got);
	free(r);
	return ret;
}

SM_TEST(status_cli_unprivileged)
{
	int g[3] = {-1, -1, -1}, ret = SM_FAIL, rc;
	char *want = malloc(4096), *got = malloc(32768), name[SOCKMIG_NAME_MAX];
	char *cols[] = {SOCKMIG_BIN, "status", NULL};
	struct run *r = calloc(1, sizeof(*r));
	struct sockmig_group *sg = NULL;
	int order[3] = {0, 1, 2};
	size_t off;

	if (!want || !got || !r)
		goto out;
	if (!have_binary()) {
		ret = SKIP("no %s (run make all from the repository's root)", SOCKMIG_BIN);
		goto out;
	}
	for (int i = 0; i < 3; i++)
		if (!ASSERT_OK(g[i] = st_listener(AF_INET, P_GROUP, true, 128), "group listener"))
			goto out;
	/* pinned state exists, in a directory only root may read */
	sg = sockmig_group_open(g[0], NULL);
	if (!ASSERT_TRUE(sg, sockmig_last_error()))
		goto out;
	for (int i = 0; i < 3; i++)
		if (!ASSERT_OK(sockmig_member_add(sg, g[i], NULL), "sockmig_member_add"))
			goto out;
	if (!ASSERT_OK(run(cols, -1, NOBODY, r), "run"))
		goto out;
	if (r->status == 126 || r->status == 127) {
		ret = SKIP("uid %d cannot run %s", NOBODY, SOCKMIG_BIN);
		goto out;
	}
	printf("sockmig status as uid %d:\n%s%s", NOBODY, r->out, r->err);
	if (!ASSERT_EQ(r->status, 0, "exit status") || !ASSERT_EQ(strlen(r->err), 0, "stderr") ||
	    !ASSERT_EQ(count_lines(r->out), 6, "lines") ||
	    !ASSERT_TRUE(strstr(r->out, ", sockmig state: not readable (needs root)\n"), "state") ||
	    !ASSERT_TRUE(strstr(r->out, "  kernel not probed (needs root); "), "probe"))
		goto out;

	/* cookies and queues as root sees them; owners, role, pinned unknown */
	for (int i = 1; i < 3; i++)
		for (int k = i;
		     k > 0 && sockmig_cookie(g[order[k - 1]]) > sockmig_cookie(g[order[k]]); k--) {
			int t = order[k];

			order[k] = order[k - 1];
			order[k - 1] = t;
		}
	snprintf(name, sizeof(name), "%s", sockmig_group_name(sg));
	off = (size_t)snprintf(want, 4096,
			       "G 127.0.0.1:%d 3 None True not readable (needs root) %s\n", P_GROUP,
			       name);
	for (int i = 0; i < 3; i++)
		off += (size_t)snprintf(want + off, 4096 - off, "M %llu 0 128 ? - - -\n",
					(unsigned long long)sockmig_cookie(g[order[i]]));
	rc = json_summary(NULL, NOBODY, got, 32768);
	if (rc != SM_PASS) {
		ret = rc;
		goto out;
	}
	if (!expect_text(got, want, "as an unprivileged user"))
		goto out;
	ret = SM_PASS;
out:
	if (sg) {
		sockmig_group_destroy(sg);
		sockmig_group_close(sg);
	}
	st_close_all(g, 3);
	free(want);
	free(got);
	free(r);
	return ret;
}

SM_TEST(status_cli_errors)
{
	static const struct {
		const char *args[3];
		const char *err; /* the whole of stderr */
	} cases[] = {
		{{"--port", "x"}, "Error: --port: 'x' is not a number\n"},
		{{"--port", "-1"}, "Error: --port: '-1' is not a number\n"},
		{{"--port", "12ab"}, "Error: --port: '12ab' is not a number\n"},
		{{"--port", "0"}, "Error: --port: 0 is out of range (1 to 65535)\n"},
		{{"--port", "65536"}, "Error: --port: 65536 is out of range (1 to 65535)\n"},
		{{"--port"}, "Error: status: --port needs a value\n"},
		{{"--addr", "1.2.3"}, "Error: --addr: '1.2.3' is not an IPv4 or IPv6 address\n"},
		{{"--addr", "localhost"},
		 "Error: --addr: 'localhost' is not an IPv4 or IPv6 address\n"},
		{{"--addr", "::1::2"}, "Error: --addr: '::1::2' is not an IPv4 or IPv6 address\n"},
		{{"--bogus"}, "Error: status: unknown option '--bogus' (sockmig status --help)\n"},
		{{"-x"}, "Error: status: unknown option '-x' (sockmig status --help)\n"},
		{{"extra"}, "Error: status: unexpected argument 'extra'\n"},
	};
	struct run *r = calloc(1, sizeof(*r));
	int ret = SM_FAIL;

	if (!r)
		return SM_FAIL;
	if (!have_binary()) {
		free(r);
		return SKIP("no %s (run make all from the repository's root)", SOCKMIG_BIN);
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[6] = {SOCKMIG_BIN, "status", (char *)cases[i].args[0],
				 (char *)cases[i].args[1], NULL};

		printf("sockmig status %s %s\n", cases[i].args[0],
		       cases[i].args[1] ? cases[i].args[1] : "");
		if (!ASSERT_OK(run(argv, -1, 0, r), "run") ||
		    !ASSERT_EQ(r->status, 2, "exit status") ||
		    !ASSERT_EQ(count_lines(r->err), 1, "lines on stderr") ||
		    !ASSERT_TRUE(strncmp(r->err, "Error: ", 7) == 0, "starts with Error:") ||
		    !expect_text(r->err, cases[i].err, "stderr") ||
		    !ASSERT_EQ(strlen(r->out), 0, "stdout"))
			goto out;
	}
	/* with -j the error is JSON on stdout */
	if (!ASSERT_OK(run((char *[]){SOCKMIG_BIN, "-j", "status", "--port", "x", NULL}, -1, 0, r),
		       "run") ||
	    !ASSERT_EQ(r->status, 2, "exit status") || !ASSERT_EQ(strlen(r->err), 0, "stderr") ||
	    !expect_text(r->out, "{\"error\":\"--port: 'x' is not a number\"}\n", "JSON error"))
		goto out;
	ret = SM_PASS;
out:
	free(r);
	return ret;
}
