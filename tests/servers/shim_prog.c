// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The program of tests/test_shim_safety.c, built by make into
 * .output/tests/servers/shim_prog (cc -O2 -Wall, -ldl -lpthread): one mode
 * per case, each doing something unusual but legal around its listeners.
 *
 * Program modes (stdout: one line per step, "WORD ..."):
 *   signal P N      N listeners on ports P.., closed one by one from a
 *                   SIGALRM handler while the main loop mallocs hard
 *   signalfrom P N  the same, all closed by one closefrom() in the handler
 *   daemon P        listen, daemon(1, 1), close in the daemon once its
 *                   parent has exited
 *   worker P FIRST  listen as root, fork a child that becomes uid 65534;
 *                   FIRST "parent": the parent closes, then the child;
 *                   "child": the child closes, the parent still listens;
 *                   the parent goes on at a line on stdin (the test saw
 *                   its shim decide on the child's close)
 *   handfork P      "worker parent", and the parent forks the moment its
 *                   shim holds the listener the child handed over (kept
 *                   there 100 ms by the group's lock, held meanwhile);
 *                   "fork made ms=N": how long fork() took; the forked
 *                   child says whether it holds the listener ("copy N")
 *   setuid P SHIM   dlopen(SHIM), listen and close through its symbols
 *   unshare P       close_range(3, ~0U, CLOSE_RANGE_UNSHARE), then bind P
 *   dup2 P          dup2() a file onto fds 3..31, then bind P
 *   lock P          listen on P, close it; prints how long each took
 *   two P Q         listeners on P and Q; at "go", one thread closes P
 *                   and the main thread then closes Q; prints the times
 *   badconnect P    listen on P (a tracked fd), then connect() a client
 *                   socket with a bad address pointer: "connect ERRNO"
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <linux/close_range.h>

static int (*do_listen)(int, int) = listen;
static int (*do_close)(int) = close;
static volatile sig_atomic_t nclosed, from;
static int lfd[16], nl;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char b[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(b, sizeof(b) - 1, fmt, ap);
	va_end(ap);
	b[n++] = '\n';
	if (write(1, b, (size_t)n) < 0)
		_exit(3);
}

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int sock(int port, int reuse, int do_bind)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, r;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (reuse)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (!do_bind)
		return fd;
	r = bind(fd, (struct sockaddr *)&a, sizeof(a));
	say("bind %d %s", r, r ? strerror(errno) : "ok");
	return r ? -1 : fd;
}

static int listener(int port)
{
	int fd = sock(port, 1, 1);

	if (fd < 0 || do_listen(fd, 128) < 0) {
		say("error listen: %s", strerror(errno));
		exit(2);
	}
	return fd;
}

/* This process has an fd below 64 on the socket with inode @ino (fstat:
 * a few microseconds for all, to fork as soon as one appears). */
static int holds(unsigned long ino)
{
	struct stat st;

	for (int fd = 3; fd < 64; fd++)
		if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == ino)
			return 1;
	return 0;
}

/* Lock the group of 127.0.0.1:@port as libsockmig does (flock on its
 * directory under the pin root): an fd on it, locked, or -1. */
static int group_lock(int port)
{
	const char *root = getenv("SOCKMIG_PIN_ROOT");
	char path[PATH_MAX];
	struct stat ns;
	int fd;

	if (stat("/proc/self/ns/net", &ns) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/%lu-tcp4-127_0_0_1-%d",
		 root && *root ? root : "/sys/fs/bpf/sockmig", (unsigned long)ns.st_ino, port);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		say("error lock %s: %s", path, strerror(errno));
		return -1;
	}
	return fd;
}

static atomic_int seen;

/* Let the group's lock go 100 ms after the main thread saw the shim's
 * copy (it forks at once), 3 s at most after the start. */
static void *unlock_later(void *arg)
{
	for (int t = 0; t < 3000 && !atomic_load(&seen); t++)
		usleep(1000);
	usleep(100000);
	flock(*(int *)arg, LOCK_UN);
	return NULL;
}

static void wait_line(void)
{
	char c;

	while (read(0, &c, 1) == 1 && c != '\n')
		;
}

static void on_alarm(int sig)
{
	(void)sig;
	if (from && nclosed < nl) {
		closefrom(lfd[0]);
		nclosed = nl;
	} else if (nclosed < nl) {
		close(lfd[nclosed]);
		nclosed++;
	}
}

/* blocks above the tcache and below the mmap threshold: every malloc
 * and free takes the arena's lock */
static void malloc_hard(long until)
{
	void *keep[64] = {0};
	unsigned int r = 1;

	while (now_ms() < until) {
		for (int i = 0; i < 64; i++) {
			r = r * 1103515245u + 12345u;
			free(keep[i]);
			keep[i] = malloc(2048 + (r >> 8) % 60000);
			if (keep[i])
				memset(keep[i], 1, 64);
		}
		if (nclosed >= nl)
			break;
	}
	for (int i = 0; i < 64; i++)
		free(keep[i]);
}

static void *close_first(void *arg)
{
	long t0 = now_ms();

	(void)arg;
	close(lfd[0]);
	say("closedA ms=%ld", now_ms() - t0);
	return NULL;
}

static void serve_one(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int c = -1;

	if (poll(&p, 1, 3000) == 1)
		c = accept(fd, NULL, NULL);
	say("accept %s", c >= 0 ? "ok" : "none");
}

int main(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[1] : "";
	int port = argc > 2 ? atoi(argv[2]) : 0, fd, r;
	long t0;

	if (!strcmp(mode, "signal") || !strcmp(mode, "signalfrom")) {
		struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
		struct itimerval it = {{0, 20000}, {0, 20000}};

		nl = atoi(argv[3]);
		from = !strcmp(mode, "signalfrom");
		for (int i = 0; i < nl; i++)
			lfd[i] = listener(port + i);
		sigaction(SIGALRM, &sa, NULL);
		say("ready");
		setitimer(ITIMER_REAL, &it, NULL);
		malloc_hard(now_ms() + 3000);
		memset(&it, 0, sizeof(it));
		setitimer(ITIMER_REAL, &it, NULL);
		say("closed %d", (int)nclosed);
	} else if (!strcmp(mode, "worker")) {
		int first = !strcmp(argv[3], "parent"), pp[2], v = 0;
		socklen_t vl = sizeof(v);
		char b;
		pid_t c;

		fd = listener(port);
		if (pipe(pp) < 0 || (c = fork()) < 0)
			return 2;
		if (c == 0) {
			if (setresgid(65534, 65534, 65534) < 0 ||
			    setresuid(65534, 65534, 65534) < 0)
				say("error setuid: %s", strerror(errno));
			prctl(PR_SET_DUMPABLE, 1, 0, 0, 0); /* as nginx's workers */
			if (first && read(pp[0], &b, 1) != 1)
				return 2;
			close(fd);
			say("child closed");
			_exit(0);
		}
		if (first) {
			close(fd);
			say("parent closed");
			if (write(pp[1], "x", 1) != 1)
				return 2;
		}
		waitpid(c, NULL, 0);
		wait_line(); /* the test saw the decision made for the child */
		if (!first) {
			getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl);
			say("listening %d", v);
			close(fd);
		}
		say("done");
	} else if (!strcmp(mode, "handfork")) {
		struct stat st;
		char b;
		pid_t w, c = -1;
		int pp[2], gdir;
		long t1 = 0;
		pthread_t t;

		fd = listener(port);
		if (fstat(fd, &st) < 0 || pipe(pp) < 0 || (w = fork()) < 0)
			return 2;
		if (w == 0) {
			if (setresgid(65534, 65534, 65534) < 0 ||
			    setresuid(65534, 65534, 65534) < 0)
				say("error setuid: %s", strerror(errno));
			prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
			if (read(pp[0], &b, 1) != 1)
				return 2;
			close(fd);
			say("child closed");
			_exit(0);
		}
		close(fd);
		say("parent closed");
		/* the group's lock, taken before the child hands its listener
		 * over, keeps the shim's copy in this fd table until it is let
		 * go: the shim's decision waits for the lock (at most
		 * SHIM_LOCK_WAIT_MS, 500 ms), so the fork below always falls
		 * inside the hand-over, whatever the scheduler does */
		gdir = group_lock(port);
		if (gdir < 0 || pthread_create(&t, NULL, unlock_later, &gdir) != 0 ||
		    write(pp[1], "x", 1) != 1)
			return 2;
		for (t0 = now_ms(); c < 0 && now_ms() - t0 < 3000;)
			if (holds(st.st_ino)) {
				atomic_store(&seen, 1); /* let go while fork() waits */
				t1 = now_ms();
				c = fork();
				t1 = now_ms() - t1;
			}
		if (c != 0) {
			pthread_join(t, NULL);
			close(gdir);
		}
		if (c == 0) {
			usleep(300000); /* the parent's shim decides meanwhile */
			say("copy %d", holds(st.st_ino));
			_exit(0);
		}
		if (c > 0)
			say("fork made ms=%ld", t1); /* its wait for the decision */
		else
			say("fork missed");
		waitpid(w, NULL, 0);
		if (c > 0)
			waitpid(c, NULL, 0);
		usleep(500000);
		say("done");
	} else if (!strcmp(mode, "daemon")) {
		pid_t parent = getpid();

		fd = listener(port);
		say("ready");
		if (daemon(1, 1) < 0)
			say("error daemon: %s", strerror(errno));
		say("daemon %d", (int)getpid());
		/* close once the parent has gone, as a daemon's first close
		 * comes (else its copy is another reference) */
		for (t0 = now_ms(); getppid() == parent && now_ms() - t0 < 5000;)
			usleep(1000);
		close(fd);
		say("closed");
	} else if (!strcmp(mode, "setuid")) {
		void *h = dlopen(argv[3], RTLD_NOW | RTLD_LOCAL);

		if (!h || !(do_listen = (int (*)(int, int))dlsym(h, "listen")) ||
		    !(do_close = (int (*)(int))dlsym(h, "close"))) {
			say("error dlopen: %s", dlerror());
			return 2;
		}
		fd = listener(port);
		say("listened secure=%lu euid=%d", getauxval(AT_SECURE), (int)geteuid());
		wait_line();
		do_close(fd);
		say("closed");
	} else if (!strcmp(mode, "unshare") || !strcmp(mode, "dup2")) {
		if (!strcmp(mode, "unshare")) {
			r = close_range(3, ~0U, CLOSE_RANGE_UNSHARE);
			for (int i = 0; i < 16; i++)
				open("/dev/null", O_RDONLY);
		} else {
			int log = open("/dev/null", O_WRONLY);

			r = 0;
			for (int i = 3; i < 32; i++)
				if (i != log && dup2(log, i) < 0)
					r = -1;
		}
		say("cleared %d", r);
		fd = sock(port, 0, 1);
		if (fd < 0)
			return 2;
		r = listen(fd, 128);
		say("listen %d %s", r, r ? strerror(errno) : "ok");
		if (r == 0)
			serve_one(fd);
	} else if (!strcmp(mode, "lock")) {
		t0 = now_ms();
		fd = listener(port);
		say("listened ms=%ld", now_ms() - t0);
		t0 = now_ms();
		close(fd);
		say("closed ms=%ld", now_ms() - t0);
	} else if (!strcmp(mode, "two")) {
		pthread_t t;

		lfd[0] = listener(port);
		lfd[1] = listener(atoi(argv[3]));
		say("ready");
		wait_line();
		pthread_create(&t, NULL, close_first, NULL);
		usleep(300000);
		t0 = now_ms();
		close(lfd[1]);
		say("closedB ms=%ld", now_ms() - t0);
		pthread_join(t, NULL);
	} else if (!strcmp(mode, "badconnect")) {
		int c = socket(AF_INET, SOCK_STREAM, 0);

		fd = listener(port);
		say("ready");
		/* the kernel says EFAULT; nothing of the address is read before */
		r = connect(c, (const struct sockaddr *)8, sizeof(struct sockaddr_in));
		say("connect %s", r == 0 ? "0" : errno == EFAULT ? "EFAULT" : strerror(errno));
		close(c);
		close(fd);
	} else {
		say("error mode");
		return 2;
	}
	say("bye");
	return 0;
}
