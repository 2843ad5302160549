// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Hand-off endpoints: a group directory others own or may write, and the shim's failure. */
/*
 * As in test_handoff_auth.c, a legacy group owned by root on 127.0.0.1:
 *   3. a group directory that another uid owns, or others may write, is
 *      refused by the receiver (a hard error) and by the sender;
 *   4. the preload shim, whose endpoint cannot be opened there, says why
 *      and leaves the listener out of the group instead of registering a
 *      member nothing can be handed to.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sockmig.h>

#include "harness.h"
#include "util.h"

#define PORT   TU_HANDOFF_PORT
#define NOBODY 65534
#define RUNDIR "/run/sockmig/handoff"

/* ---- 3. unsafe directory ---------------------------------------------------- */

SM_TEST(handoff_refuses_unsafe_directory)
{
	static const struct {
		const char *what;
		uid_t uid;
		mode_t mode;
		bool link;
	} bad[] = {
		{"owned by uid 65534", NOBODY, 0700, false},
		{"mode 0755", 0, 0755, false},
		{"mode 0770", 0, 0770, false},
		{"a symbolic link", 0, 0700, true},
	};
	struct tu_handoff s = {.a = -1, .b = -1, .hfd = -1};
	struct tu_recv_count rc = {0};
	char dir[256], elsewhere[] = "/tmp/sockmig-handoff-XXXXXX";
	int cl = -1, conn, err, ret = SM_FAIL;
	bool made_elsewhere = false;

	if (!tu_handoff_open(&s))
		goto out;
	snprintf(dir, sizeof(dir), "%s/%s", RUNDIR, sockmig_group_name(s.g));
	mkdir("/run/sockmig", 0700);
	mkdir(RUNDIR, 0755);
	if (!ASSERT_TRUE(mkdtemp(elsewhere) != NULL, "a directory elsewhere"))
		goto out;
	made_elsewhere = true;
	/* the receiver: a hard error, no endpoint */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (bad[i].link)
			err = symlink(elsewhere, dir);
		else
			err = mkdir(dir, 0700) < 0 || chown(dir, bad[i].uid, (gid_t)-1) < 0 ||
					      chmod(dir, bad[i].mode) < 0
				      ? -1
				      : 0;
		if (!ASSERT_OK(err, bad[i].what))
			goto out;
		s.hfd = sockmig_handoff_listen(s.g, s.b);
		printf("%s: %s\n", bad[i].what, s.hfd < 0 ? sockmig_last_error() : "endpoint open");
		if (bad[i].link ? unlink(dir) : rmdir(dir)) {
			printf("%s: cannot remove it: %s\n", dir, strerror(errno));
			goto out;
		}
		if (!ASSERT_TRUE(s.hfd < 0, "an endpoint in it"))
			goto out;
	}
	/* the sender: nothing goes to an endpoint whose directory others can
	 * reach */
	s.hfd = sockmig_handoff_listen(s.g, s.b);
	if (!ASSERT_OK(s.hfd, "B's endpoint") || !ASSERT_OK(chmod(dir, 0755), "chmod 0755"))
		goto out;
	cl = tu_tcp_connect(PORT);
	conn = cl >= 0 ? tu_accept_either(s.a, s.b) : -1;
	err = sockmig_handoff_accept(conn, s.g);
	printf("send through a directory of mode 0755: %s\n", err ? sockmig_last_error() : "sent");
	chmod(dir, 0700);
	tu_recv_all(s.hfd, &rc);
	if (!ASSERT_OK(conn, "a connection") || !ASSERT_TRUE(err < 0, "sent") ||
	    !ASSERT_EQ(rc.conn + rc.other, 0, "received"))
		goto out;
	if (cl >= 0)
		close(cl);
	cl = tu_tcp_connect(PORT);
	conn = cl >= 0 ? tu_accept_either(s.a, s.b) : -1;
	if (!ASSERT_OK(conn, "a connection") ||
	    !ASSERT_OK(sockmig_handoff_accept(conn, s.g), "send once the directory is 0700"))
		goto out;
	tu_recv_all(s.hfd, &rc);
	if (!ASSERT_EQ(rc.conn, 1, "received") || !ASSERT_EQ(rc.other, 0, "others"))
		goto out;
	ret = SM_PASS;
out:
	if (cl >= 0)
		close(cl);
	tu_handoff_close(&s);
	if (made_elsewhere)
		rmdir(elsewhere);
	return ret;
}

/* ---- 4. the shim ------------------------------------------------------------ */

/* The normal build of the shim, next to the runner (.output/ or, for the
 * sanitizer runner, one directory up). */
static bool shim_path(char *out, size_t len)
{
	char dir[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	char *slash;

	if (n <= 0)
		return false;
	dir[n] = '\0';
	slash = strrchr(dir, '/');
	if (!slash)
		return false;
	*slash = '\0';
	slash = strrchr(dir, '/');
	if (slash && strcmp(slash, "/asan") == 0)
		*slash = '\0';
	snprintf(out, len, "%s/libsockmig-preload.so", dir);
	return access(out, R_OK) == 0;
}

SM_TEST(handoff_shim_endpoint_failure_is_loud)
{
	static const char script[] = "import socket, sys\n"
				     "s = socket.socket()\n"
				     "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)\n"
				     "s.bind(('127.0.0.1', int(sys.argv[1])))\n"
				     "s.listen(16)\n"
				     "print('ready', flush=True)\n"
				     "sys.stdin.read()\n";
	char shim[PATH_MAX], pre[PATH_MAX + 16], name[SOCKMIG_NAME_MAX], dir[256], port[16];
	char err[4096] = "", line[16] = "";
	struct in_addr lo = {.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockmig_group *g = NULL;
	struct stat st;
	int in[2] = {-1, -1}, out[2] = {-1, -1}, efd = -1, members = -1, ret = SM_FAIL;
	bool made = false;
	pid_t pid = -1;

	if (!shim_path(shim, sizeof(shim)))
		return SKIP("no libsockmig-preload.so next to the runner");
	if (access("/usr/bin/python3", X_OK) < 0)
		return SKIP("no /usr/bin/python3 to run under the shim");
	if (!ASSERT_OK(stat("/proc/self/ns/net", &st), "netns") ||
	    !ASSERT_OK(
		    sockmig_group_name_for(AF_INET, &lo, PORT + 2, st.st_ino, name, sizeof(name)),
		    "group name"))
		return SM_FAIL;
	/* the group's directory is another uid's before the server starts */
	snprintf(dir, sizeof(dir), "%s/%s", RUNDIR, name);
	mkdir("/run/sockmig", 0700);
	mkdir(RUNDIR, 0755);
	made = mkdir(dir, 0700) == 0;
	if (!ASSERT_TRUE(made, "the group's directory") ||
	    !ASSERT_OK(chown(dir, NOBODY, NOBODY), "chown it to uid 65534"))
		goto out;
	snprintf(pre, sizeof(pre), "LD_PRELOAD=%s", shim);
	snprintf(port, sizeof(port), "%d", PORT + 2);
	efd = memfd_create("stderr", 0);
	if (!ASSERT_OK(efd, "memfd") || !ASSERT_OK(pipe2(in, O_CLOEXEC), "pipe") ||
	    !ASSERT_OK(pipe2(out, O_CLOEXEC), "pipe"))
		goto out;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		char *argv[] = {"python3", "-c", (char *)script, port, NULL};
		char *envp[] = {pre, "SOCKMIG_MODE=legacy", "PATH=/usr/bin:/bin", NULL};

		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(efd, 2) < 0)
			_exit(126);
		execve("/usr/bin/python3", argv, envp);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	in[0] = out[1] = -1;
	{
		struct pollfd p = {.fd = out[0], .events = POLLIN};

		if (!ASSERT_OK(pid, "fork") ||
		    !ASSERT_TRUE(poll(&p, 1, 10000) > 0 && read(out[0], line, 5) == 5 &&
					 strncmp(line, "ready", 5) == 0,
				 "server ready"))
			goto out;
	}
	g = sockmig_group_open_name(name, NULL);
	members = g ? sockmig_members(g, NULL, 0) : 0;
	ret = SM_PASS;
out:
	if (in[1] >= 0)
		close(in[1]); /* the server exits */
	if (pid > 0) {
		int status;

		for (int i = 0; i < 500 && waitpid(pid, &status, WNOHANG) == 0; i++) {
			struct timespec ts = {0, 10 * 1000000L};

			nanosleep(&ts, NULL);
		}
		if (waitpid(pid, &status, WNOHANG) == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
		}
	}
	if (efd >= 0) {
		ssize_t n = pread(efd, err, sizeof(err) - 1, 0);

		err[n > 0 ? n : 0] = '\0';
		printf("server's stderr:\n%s", err);
		close(efd);
	}
	if (ret == SM_PASS &&
	    (!ASSERT_EQ(members, 0, "members registered by the shim") ||
	     !ASSERT_TRUE(strstr(err, "belongs to uid 65534") != NULL, "the shim says why")))
		ret = SM_FAIL;
	if (g) {
		sockmig_group_destroy(g);
		sockmig_group_close(g);
	}
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	if (made)
		rmdir(dir);
	return ret;
}
