// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libsockmig-preload.so and what its environment and its rights change:
 * no BPF rights (fails open), SOCKMIG_REUSEPORT, SOCKMIG_HANDOFF (the
 * listener handed down by sockmig run --handoff), SOCKMIG_DISABLE, and the
 * symbols it exports. The server is tests/servers/prefork.c, run as in
 * test_preload.c (see preload.h).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gelf.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "preload.h"
#include "sockmig.h"
#include "util.h"

/*
 * No BPF rights (uid 65534): the server works as without the shim, one
 * "inactive" line says why (not one per listener), nothing in bpffs;
 * SOCKMIG_QUIET=1 silences the line.
 */
SM_TEST(preload_unprivileged_fails_open)
{
	static const char *const quiet[] = {"SOCKMIG_QUIET=1", NULL};
	struct tp_proc s = TP_PROC_INIT;
	struct burst *c = NULL;
	struct pl_ctx x;
	char args[32];
	int ret = pl_setup(&x);

	if (ret != SM_PASS)
		return ret;
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "%d -n 2 -s", PL_PORT);
	for (int round = 0; round < 2; round++) {
		c = pl_clients_new();
		if (!c ||
		    !ASSERT_TRUE(pl_copy_shim(&x), "copy the shim where uid 65534 reads it") ||
		    !ASSERT_TRUE(pl_srv_start(&x, &s, round ? "quiet" : "nobody", true, true,
					      round ? quiet : NULL, args),
				 "start as uid 65534") ||
		    !ASSERT_TRUE(pl_srv_expect(&s, "master", "ready", NULL, 0), "ready") ||
		    !ASSERT_OK(burst_start(c, AF_INET, PL_PORT, 30, false), "clients"))
			goto out;
		burst_serve(c, NULL, 0, NULL, 5000);
		burst_print(c, "unprivileged");
		if (!ASSERT_EQ(c->count[BURST_OK], 30, "served") ||
		    !ASSERT_EQ(pl_netns_groups(&x), 0, "groups in bpffs") ||
		    !ASSERT_EQ(pl_srv_exit(&s), 0, "exit code"))
			goto out;
		if (round == 0 && (!ASSERT_EQ(tp_proc_stderr(&s, NULL), 1, "lines on stderr") ||
				   !ASSERT_EQ(tp_proc_stderr(&s, "sockmig-preload: inactive: "), 1,
					      "the reason")))
			goto out;
		if (round == 1 &&
		    !ASSERT_EQ(tp_proc_stderr(&s, NULL), 0, "lines with SOCKMIG_QUIET=1"))
			goto out;
		tp_proc_kill(&s);
		pl_clients_free(c);
		c = NULL;
	}
	ret = SM_PASS;
out:
	tp_proc_kill(&s);
	pl_clients_free(c);
	pl_cleanup(&x);
	return ret;
}

/*
 * Servers that never set SO_REUSEPORT: two cannot bind one port, and the
 * shim leaves them alone; with SOCKMIG_REUSEPORT=1 both bind it, both
 * register, and the group's SYNs are shared between them.
 */
SM_TEST(preload_reuseport_env_joins_group)
{
	static const char *const env[] = {"SOCKMIG_REUSEPORT=1", NULL};
	struct tp_proc a = TP_PROC_INIT, b = a;
	struct sockmig_member_info info[4];
	struct burst *c = pl_clients_new();
	struct pl_ctx x;
	char args[32], line[128];
	int ret = pl_setup(&x), n;
	uint64_t steered = 0;

	if (ret != SM_PASS) {
		free(c);
		return ret;
	}
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "%d -R -s", PL_PORT);
	/* without it */
	if (!c || !ASSERT_TRUE(pl_srv_start(&x, &a, "a", true, false, NULL, args), "start a") ||
	    !ASSERT_TRUE(pl_srv_expect(&a, "master", "ready", NULL, 0), "a ready") ||
	    !ASSERT_TRUE(pl_srv_start(&x, &b, "b", true, false, NULL, args), "start b") ||
	    !ASSERT_TRUE(pl_srv_expect(&b, "master", "error", line, sizeof(line)), "b fails") ||
	    !ASSERT_TRUE(strstr(line, "Address already in use"), "EADDRINUSE") ||
	    !ASSERT_EQ(pl_srv_wait(&b, 5000), 2, "b's exit code") ||
	    !ASSERT_EQ(pl_netns_groups(&x), 0, "no group without SO_REUSEPORT") ||
	    !ASSERT_EQ(pl_srv_exit(&a), 0, "a exits"))
		goto out;
	tp_proc_kill(&a);
	tp_proc_kill(&b);
	/* with it */
	if (!ASSERT_TRUE(pl_srv_start(&x, &a, "a", true, false, env, args), "start a") ||
	    !ASSERT_TRUE(pl_srv_expect(&a, "master", "ready", NULL, 0), "a ready") ||
	    !ASSERT_TRUE(pl_srv_start(&x, &b, "b", true, false, env, args), "start b") ||
	    !ASSERT_TRUE(pl_srv_expect(&b, "master", "ready", NULL, 0), "b ready"))
		goto out;
	n = pl_group_members(&x, PL_PORT, info, 4);
	if (!ASSERT_EQ(n, 2, "members") ||
	    !ASSERT_TRUE((info[0].pid == (uint32_t)a.pid && info[1].pid == (uint32_t)b.pid) ||
				 (info[0].pid == (uint32_t)b.pid && info[1].pid == (uint32_t)a.pid),
			 "one member per server"))
		goto out;
	if (!ASSERT_OK(burst_start(c, AF_INET, PL_PORT, 40, false), "clients"))
		goto out;
	burst_serve(c, NULL, 0, NULL, 5000);
	burst_print(c, "two servers");
	n = pl_group_members(&x, PL_PORT, info, 4);
	for (int i = 0; i < n && i < 4; i++) {
		printf("member pid %u: steered %llu\n", info[i].pid,
		       (unsigned long long)info[i].counters.steered);
		steered += info[i].counters.steered;
	}
	if (!ASSERT_EQ(c->count[BURST_OK], 40, "served") ||
	    !ASSERT_EQ(steered, 40, "SYNs steered by the policy") ||
	    !ASSERT_EQ(pl_srv_exit(&a), 0, "a exits") ||
	    !ASSERT_EQ(pl_srv_exit(&b), 0, "b exits") ||
	    !ASSERT_EQ(pl_group_exists(&x, PL_PORT), false, "group removed"))
		goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&a);
	tp_proc_kill(&b);
	pl_clients_free(c);
	if (ret != SM_PASS)
		pl_group_cleanup(&x, PL_PORT);
	pl_cleanup(&x);
	return ret;
}

/* A supervisor's listener on @ip:@port (SO_REUSEPORT, as sockmig run's). */
static int supervisor_listener(const char *ip, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	inet_pton(AF_INET, ip, &a.sin_addr);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1024) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

#define N_HANDOFF 40

/*
 * SOCKMIG_HANDOFF=1 (sockmig run --handoff): the server is handed the
 * supervisor's listener as fd 3 (LISTEN_FDS) but does not know it: it
 * closes every fd above 2 (close(3), closefrom(3)), then binds the port
 * itself. With the shim its bind() gets the supervisor's listener: N
 * clients queue there, its shutdown() and close() of it close nothing, and
 * the next server, started after it exited, serves all N. Without the
 * shim (baseline) each server has a listener of its own beside the
 * supervisor's: the first one's queue dies with it, and what went to the
 * supervisor's is never accepted.
 */
static int handoff_restart(struct pl_ctx *x, bool preload, int port)
{
	static const char *const env[] = {"SOCKMIG_HANDOFF=1", "SOCKMIG_DEBUG=1", NULL};
	struct tp_proc old = TP_PROC_INIT, new = old;
	struct burst *c = pl_clients_new();
	char args[32], line[128];
	int ret = SM_FAIL, lfd = supervisor_listener("127.0.0.1", port);

	printf("%s the shim:\n", preload ? "with" : "without");
	pl_listen_fd = lfd;
	snprintf(args, sizeof(args), "%d -C", port);
	if (!c || !ASSERT_GT(lfd, -1, "supervisor's listener") ||
	    !ASSERT_TRUE(pl_srv_start(x, &old, "gen1", preload, false, env, args), "start gen 1") ||
	    !ASSERT_TRUE(pl_srv_expect(&old, "master", "ready", NULL, 0), "gen 1 ready") ||
	    !ASSERT_TRUE(pl_clients_connect(c, port, N_HANDOFF), "clients connected"))
		goto out;
	if (preload) {
		if (!ASSERT_EQ(pl_srv_queue(&old, false), N_HANDOFF,
			       "queued on the listener gen 1 sees: the supervisor's") ||
		    !ASSERT_TRUE(tp_proc_cmd(&old, "shutdown"), "shutdown") ||
		    !ASSERT_TRUE(pl_srv_expect(&old, "master", "shutdown", line, sizeof(line)),
				 "shut down") ||
		    !ASSERT_TRUE(strstr(line, "ret=0 errno=kept") != NULL,
				 "shutdown succeeds, errno kept") ||
		    !ASSERT_EQ(pl_srv_queue(&old, false), N_HANDOFF, "still queued after shutdown"))
			goto out;
	} else {
		if (!ASSERT_TRUE(pl_srv_queue(&old, false) < N_HANDOFF,
				 "baseline: gen 1 has a listener of its own"))
			goto out;
		tp_proc_cmd(&old, "shutdown");
	}
	if (!ASSERT_TRUE(tp_proc_cmd(&old, "close"), "close") ||
	    !ASSERT_TRUE(pl_srv_expect(&old, NULL, "closed", NULL, 0), "closed") ||
	    !ASSERT_EQ(pl_srv_exit(&old), 0, "gen 1 exit code"))
		goto out;
	snprintf(args, sizeof(args), "%d -C -s", port);
	if (!ASSERT_TRUE(pl_srv_start(x, &new, "gen2", preload, false, env, args), "start gen 2") ||
	    !ASSERT_TRUE(pl_srv_expect(&new, "master", "ready", NULL, 0), "gen 2 ready"))
		goto out;
	burst_serve(c, NULL, 0, NULL, preload ? 5000 : 1500);
	burst_print(c, preload ? "with the shim" : "without the shim");
	tp_proc_stderr(&old, NULL);
	if (!preload) {
		if (!ASSERT_TRUE(c->count[BURST_OK] < N_HANDOFF,
				 "baseline: not every client served"))
			goto out;
	} else if (!ASSERT_EQ(c->count[BURST_OK], N_HANDOFF, "served by gen 2") ||
		   !ASSERT_EQ(c->count[BURST_RESET], 0, "resets") ||
		   !ASSERT_EQ(tp_proc_stderr(&old, "bind answered with the supervisor's listener"),
			      1, "gen 1's bind answered") ||
		   !ASSERT_EQ(tp_proc_stderr(&old, "shutdown of the shared listener not made"), 1,
			      "gen 1's shutdown not made") ||
		   !ASSERT_EQ(tp_proc_stderr(&new, "bind answered with the supervisor's listener"),
			      1, "gen 2's bind answered") ||
		   !ASSERT_EQ(pl_netns_groups(x), 0, "no group: no BPF")) {
		goto out;
	}
	if (!ASSERT_EQ(pl_srv_exit(&new), 0, "gen 2 exit code"))
		goto out;
	ret = SM_PASS;
out:
	pl_listen_fd = -1;
	if (lfd >= 0)
		close(lfd);
	tp_proc_kill(&old);
	tp_proc_kill(&new);
	pl_clients_free(c);
	return ret;
}

SM_TEST(preload_handoff_listener_survives_restarts)
{
	struct pl_ctx x;
	int ret = pl_setup(&x);

	if (ret != SM_PASS)
		return ret;
	ret = handoff_restart(&x, false, PL_PORT);
	if (ret == SM_PASS)
		ret = handoff_restart(&x, true, PL_PORT + 1);
	pl_cleanup(&x);
	return ret;
}

/*
 * SOCKMIG_HANDOFF=1 where it cannot act, the server unharmed either way:
 * nothing handed down to this process (a child of the server: not a word);
 * LISTEN_FDS holding no listener (one line says so); a listener handed down
 * for another address (one line names both, and the server binds its own).
 */
SM_TEST(preload_handoff_says_why_not)
{
	static const char *const env[] = {"SOCKMIG_HANDOFF=1", NULL};
	struct tp_proc a = TP_PROC_INIT, b = a;
	struct burst *c = pl_clients_new();
	struct pl_ctx x;
	char args[32];
	int ret = pl_setup(&x), lfd = -1;

	if (ret != SM_PASS) {
		free(c);
		return ret;
	}
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "%d -s", PL_PORT);
	if (!c || !ASSERT_TRUE(pl_srv_start(&x, &a, "a", true, false, env, args), "start a") ||
	    !ASSERT_TRUE(pl_srv_expect(&a, "master", "ready", NULL, 0), "a ready") ||
	    !ASSERT_OK(burst_start(c, AF_INET, PL_PORT, 10, false), "clients"))
		goto out;
	burst_serve(c, NULL, 0, NULL, 5000);
	if (!ASSERT_EQ(c->count[BURST_OK], 10, "a serves") ||
	    !ASSERT_EQ(pl_srv_exit(&a), 0, "a exits") ||
	    !ASSERT_EQ(tp_proc_stderr(&a, NULL), 0, "a says nothing"))
		goto out;
	/* a UDP socket as fd 3 */
	lfd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	pl_listen_fd = lfd;
	tp_proc_kill(&a);
	burst_close(c);
	memset(c, 0, sizeof(*c));
	if (!ASSERT_TRUE(pl_srv_start(&x, &a, "a2", true, false, env, args), "start a2") ||
	    !ASSERT_TRUE(pl_srv_expect(&a, "master", "ready", NULL, 0), "a2 ready") ||
	    !ASSERT_OK(burst_start(c, AF_INET, PL_PORT, 10, false), "clients"))
		goto out;
	burst_serve(c, NULL, 0, NULL, 5000);
	if (!ASSERT_EQ(c->count[BURST_OK], 10, "a2 serves") ||
	    !ASSERT_EQ(pl_srv_exit(&a), 0, "a2 exits") ||
	    !ASSERT_EQ(tp_proc_stderr(&a, "inactive: SOCKMIG_HANDOFF is set but LISTEN_FDS=1 holds "
					  "no listening TCP socket"),
		       1, "a2 says why"))
		goto out;
	close(lfd);
	lfd = supervisor_listener("127.0.0.2", PL_PORT + 1);
	pl_listen_fd = lfd;
	snprintf(args, sizeof(args), "%d -s", PL_PORT + 1);
	if (!ASSERT_GT(lfd, -1, "listener on 127.0.0.2") ||
	    !ASSERT_TRUE(pl_srv_start(&x, &b, "b", true, false, env, args), "start b") ||
	    !ASSERT_TRUE(pl_srv_expect(&b, "master", "ready", NULL, 0), "b ready"))
		goto out;
	burst_close(c);
	memset(c, 0, sizeof(*c));
	if (!ASSERT_OK(burst_start(c, AF_INET, PL_PORT + 1, 10, false), "clients"))
		goto out;
	burst_serve(c, NULL, 0, NULL, 5000);
	if (!ASSERT_EQ(c->count[BURST_OK], 10, "b serves on its own listener") ||
	    !ASSERT_EQ(pl_srv_exit(&b), 0, "b exits") ||
	    !ASSERT_EQ(tp_proc_stderr(&b, "bind to 127.0.0.1 port 33001 is not the supervisor's "
					  "listener (127.0.0.2): not handed off (give sockmig run "
					  "--addr 127.0.0.1)"),
		       1, "b says why, once"))
		goto out;
	ret = SM_PASS;
out:
	pl_listen_fd = -1;
	if (lfd >= 0)
		close(lfd);
	tp_proc_kill(&a);
	tp_proc_kill(&b);
	pl_clients_free(c);
	pl_cleanup(&x);
	return ret;
}

/* SOCKMIG_DISABLE=1: no registration (no group), no SO_REUSEPORT either,
 * not a word on stderr even with SOCKMIG_DEBUG=1. */
SM_TEST(preload_disable_env)
{
	static const char *const env[] = {"SOCKMIG_DISABLE=1", "SOCKMIG_DEBUG=1",
					  "SOCKMIG_REUSEPORT=1", NULL};
	struct tp_proc a = TP_PROC_INIT, b = a;
	struct burst *c = pl_clients_new();
	struct pl_ctx x;
	char args[32], line[128];
	int ret = pl_setup(&x);

	if (ret != SM_PASS) {
		free(c);
		return ret;
	}
	ret = SM_FAIL;
	snprintf(args, sizeof(args), "%d -s", PL_PORT);
	if (!c || !ASSERT_TRUE(pl_srv_start(&x, &a, "a", true, false, env, args), "start a") ||
	    !ASSERT_TRUE(pl_srv_expect(&a, "master", "ready", NULL, 0), "a ready") ||
	    !ASSERT_EQ(pl_netns_groups(&x), 0, "groups"))
		goto out;
	snprintf(args, sizeof(args), "%d -R -s", PL_PORT);
	if (!ASSERT_TRUE(pl_srv_start(&x, &b, "b", true, false, env, args), "start b") ||
	    !ASSERT_TRUE(pl_srv_expect(&b, "master", "error", line, sizeof(line)), "b fails") ||
	    !ASSERT_TRUE(strstr(line, "Address already in use"), "SO_REUSEPORT not set for b") ||
	    !ASSERT_EQ(pl_srv_wait(&b, 5000), 2, "b's exit code"))
		goto out;
	if (!ASSERT_OK(burst_start(c, AF_INET, PL_PORT, 20, false), "clients"))
		goto out;
	burst_serve(c, NULL, 0, NULL, 5000);
	burst_print(c, "disabled");
	if (!ASSERT_EQ(c->count[BURST_OK], 20, "served") ||
	    !ASSERT_EQ(pl_netns_groups(&x), 0, "groups") ||
	    !ASSERT_EQ(pl_srv_exit(&a), 0, "a exits") ||
	    !ASSERT_EQ(tp_proc_stderr(&a, NULL), 0, "lines on a's stderr") ||
	    !ASSERT_EQ(tp_proc_stderr(&b, "sockmig"), 0, "b's stderr"))
		goto out;
	ret = SM_PASS;
out:
	tp_proc_kill(&a);
	tp_proc_kill(&b);
	pl_clients_free(c);
	pl_cleanup(&x);
	return ret;
}

/* The shim's dynamic symbol table defines the interposers and nothing
 * else: libsockmig inside it must not leak into the server. */
SM_TEST(preload_exports_only_interposers)
{
	static const char *const want[] = {"accept",	  "accept4",   "bind",	  "close",
					   "close_range", "closefrom", "dup",	  "dup2",
					   "dup3",	  "fcntl",     "fcntl64", "fork",
					   "listen",	  "shutdown",  "connect"};
	const size_t nwant = sizeof(want) / sizeof(want[0]);
	char shim[PATH_MAX];
	bool seen[sizeof(want) / sizeof(want[0])] = {false};
	int fd, ret = SM_FAIL, extra = 0;
	Elf_Scn *scn = NULL;
	Elf *e = NULL;

	if (!tp_find_shim(shim))
		return SKIP("no libsockmig-preload.so of the normal build next to the runner");
	fd = open(shim, O_RDONLY | O_CLOEXEC);
	if (!ASSERT_OK(fd, "open the shim") ||
	    !ASSERT_TRUE(elf_version(EV_CURRENT) != EV_NONE, "libelf") ||
	    !ASSERT_TRUE(e = elf_begin(fd, ELF_C_READ, NULL), "ELF"))
		goto out;
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *data;
		GElf_Sym sym;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM ||
		    !(data = elf_getdata(scn, NULL)))
			continue;
		for (size_t i = 0; sh.sh_entsize && i < sh.sh_size / sh.sh_entsize; i++) {
			const char *name;
			bool known = false;

			if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF ||
			    GELF_ST_BIND(sym.st_info) == STB_LOCAL)
				continue;
			name = elf_strptr(e, sh.sh_link, sym.st_name);
			if (!name || !*name)
				continue;
			for (size_t k = 0; k < nwant; k++)
				if (strcmp(name, want[k]) == 0)
					known = seen[k] = true;
			if (!known) {
				printf("exported but not an interposer: %s\n", name);
				extra++;
			}
		}
	}
	for (size_t k = 0; k < nwant; k++)
		if (!ASSERT_TRUE(seen[k], want[k]))
			goto out;
	if (!ASSERT_EQ(extra, 0,
		       "other exported symbols (link with "
		       "-Wl,--version-script=preload/preload.map)"))
		goto out;
	ret = SM_PASS;
out:
	if (e)
		elf_end(e);
	if (fd >= 0)
		close(fd);
	return ret;
}
