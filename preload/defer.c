// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Work out of signal handlers. A server may close a listener in a signal
 * handler (a SIGTERM or SIGUSR1 handler that stops listening). What the
 * shim does at a last close (the /proc scan, the group, libbpf) allocates
 * and takes locks: in a handler that interrupted malloc() it would wait
 * for the lock of the code it interrupted, for ever.
 *
 * So when the calling thread may be in a handler (shim_maybe_in_handler:
 * a signal that has a handler is blocked in it, as the kernel blocks a
 * signal while its handler runs), the interposer makes only
 * async-signal-safe calls: it takes the fd out of the table without a
 * lock, keeps the socket open on a private close-on-exec dup, makes the
 * server's call, puts the dup in a fixed array and wakes this process's
 * helper thread with a futex (no fd for the server to close). The helper
 * decides, drains and leaves on the dup, then closes it. A thread that
 * blocks signals for other reasons takes the same path, which is only
 * later, never wrong.
 *
 * The helper starts at the first registration in a process (or when
 * inherited listeners are adopted, or in a forked child that holds
 * tracked listeners), with every signal blocked. exit() releases what is
 * still waiting; a forked child closes the copies of its parent's dups.
 * Without a helper (none could start) the call is only made: under the
 * attached policy the kernel still migrates the queue at the close.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define SHIM_MAX_DEFERRED 64
/* At exit, how long to wait for the helper's release under way. */
#define FLUSH_WAIT_MS 3000

/* How long a range close waits for the helper's release in progress:
 * outside a handler, and inside one (where the helper may need a lock
 * the handler interrupted, so the wait must end). */
#define RANGE_WAIT_MS	      3000
#define RANGE_WAIT_HANDLER_MS 200

/* HELD: filled during a range close, released only after it */
enum { SLOT_FREE, SLOT_FILLING, SLOT_HELD, SLOT_READY, SLOT_BUSY };

static struct {
	_Atomic int state;
	int fd;	   /* the private dup */
	pid_t tid; /* HELD: the thread whose range close holds it */
	struct shim_entry e;
} slots[SHIM_MAX_DEFERRED];

/* this thread is inside a close_range()/closefrom() */
static __thread int in_range __attribute__((tls_model("initial-exec")));

static _Atomic unsigned int seq; /* bumped at each deferral: the futex */
static _Atomic pid_t helper_pid; /* the process whose helper runs */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

bool shim_maybe_in_handler(void)
{
	struct sigaction sa;
	sigset_t blocked;

	if (pthread_sigmask(SIG_BLOCK, NULL, &blocked) != 0)
		return true;
	for (int sig = 1; sig < NSIG; sig++) {
		if (sigismember(&blocked, sig) != 1 || sigaction(sig, NULL, &sa) < 0)
			continue;
		if (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN)
			return true;
	}
	return false;
}

static int op_close(int fd, void *arg)
{
	(void)arg;
	return shim_real.close(fd);
}

static void wake_helper(void)
{
	atomic_fetch_add(&seq, 1);
	syscall(SYS_futex, &seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void release_slot(int i)
{
	int want = SLOT_READY;

	if (!atomic_compare_exchange_strong(&slots[i].state, &want, SLOT_BUSY))
		return;
	/* the server may have closed our dup (closefrom) and reused its
	 * number: then it is not ours to close */
	if (shim_fd_is_socket(slots[i].fd, slots[i].e.ino))
		shim_listener_release_entry(slots[i].fd, &slots[i].e, op_close, NULL);
	atomic_store(&slots[i].state, SLOT_FREE);
}

static void release_ready(void)
{
	for (int i = 0; i < SHIM_MAX_DEFERRED; i++)
		if (atomic_load(&slots[i].state) == SLOT_READY)
			release_slot(i);
}

static void *helper(void *arg)
{
	unsigned int s;

	(void)arg;
	shim_busy = 1; /* its own calls go straight to libc */
	for (;;) {
		s = atomic_load(&seq);
		release_ready();
		syscall(SYS_futex, &seq, FUTEX_WAIT_PRIVATE, s, NULL, NULL, 0);
	}
	return NULL;
}

void shim_defer_start(void)
{
	pid_t me = getpid();
	sigset_t all, old;
	pthread_t t;

	if (atomic_load(&helper_pid) == me)
		return;
	pthread_mutex_lock(&start_lock);
	if (atomic_load(&helper_pid) != me) {
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		if (pthread_create(&t, NULL, helper, NULL) == 0) {
			pthread_detach(t);
			atomic_store(&helper_pid, me);
		} else {
			shim_debug("no helper thread: closes in signal handlers will not drain");
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	pthread_mutex_unlock(&start_lock);
}

static int claim_slot(void)
{
	for (int i = 0; i < SHIM_MAX_DEFERRED; i++) {
		int want = SLOT_FREE;

		if (atomic_compare_exchange_strong(&slots[i].state, &want, SLOT_FILLING)) {
			slots[i].fd = -1;
			return i;
		}
	}
	return -1;
}

int shim_release(int fd, shim_op_fn op, void *arg)
{
	int saved = errno, ret, err, keep = -1, i = -1;
	struct shim_entry e;

	if (!shim_maybe_in_handler())
		return shim_listener_release(fd, op, arg);
	shim_busy++;
	if (!shim_table_take_nolock(fd, &e) || !shim_fd_is_socket(fd, e.ino) ||
	    atomic_load(&helper_pid) != getpid() || (i = claim_slot()) < 0 ||
	    (keep = shim_real.fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		if (i >= 0)
			atomic_store(&slots[i].state, SLOT_FREE);
		errno = saved;
		ret = op(fd, arg);
		shim_busy--;
		return ret;
	}
	slots[i].fd = keep; /* before the call: close_range() goes around it */
	errno = saved;
	ret = op(fd, arg);
	err = errno;
	slots[i].e.ino = e.ino;
	slots[i].e.cookie = e.cookie;
	memcpy(slots[i].e.group, e.group, sizeof(e.group));
	if (in_range) {
		/* the helper's own fds (the /proc scan, the group's maps)
		 * would be in the range still to close: it starts after */
		slots[i].tid = (pid_t)syscall(SYS_gettid);
		atomic_store(&slots[i].state, SLOT_HELD);
	} else {
		atomic_store(&slots[i].state, SLOT_READY);
		wake_helper();
	}
	shim_busy--;
	errno = err;
	return ret;
}

void shim_defer_flush(void)
{
	struct timespec ms = {0, 1000000};
	bool busy = true;

	for (int i = 0; i < SHIM_MAX_DEFERRED; i++) {
		int want = SLOT_HELD; /* a range close that never ended */

		atomic_compare_exchange_strong(&slots[i].state, &want, SLOT_READY);
	}
	release_ready();
	for (int t = 0; busy && t < FLUSH_WAIT_MS; t++) {
		busy = false;
		for (int i = 0; i < SHIM_MAX_DEFERRED; i++)
			busy |= atomic_load(&slots[i].state) == SLOT_BUSY;
		if (busy)
			nanosleep(&ms, NULL);
	}
}

void shim_defer_atfork_child(void)
{
	for (int i = 0; i < SHIM_MAX_DEFERRED; i++) {
		if (atomic_load(&slots[i].state) == SLOT_FREE)
			continue;
		if (slots[i].fd >= 0)
			shim_real.close(slots[i].fd); /* the parent's, not ours */
		atomic_store(&slots[i].state, SLOT_FREE);
	}
	atomic_store(&helper_pid, 0);
	start_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	if (atomic_load(&shim_ntracked) > 0)
		shim_defer_start();
}

/*
 * A close_range() or closefrom() must not close what the helper has open
 * in this shared fd table: the dups it is about to release, and the fds
 * of a release in progress (its /proc scan, the group's maps). So a range
 * close waits, bounded, for a release in progress to end; the tracked
 * listeners in the range are deferred but held (shim_release) until the
 * range is closed, around the dups, and only then go to the helper.
 */
void shim_defer_range_begin(void)
{
	struct timespec ms = {0, 1000000};
	int limit = shim_maybe_in_handler() ? RANGE_WAIT_HANDLER_MS : RANGE_WAIT_MS;
	bool busy = true;

	in_range++;
	if (atomic_load(&helper_pid) != getpid())
		return;
	for (int t = 0; busy && t < limit; t++) {
		busy = false;
		for (int i = 0; i < SHIM_MAX_DEFERRED; i++)
			busy |= atomic_load(&slots[i].state) == SLOT_BUSY;
		if (busy)
			nanosleep(&ms, NULL);
	}
}

void shim_defer_range_end(void)
{
	pid_t me = (pid_t)syscall(SYS_gettid);
	bool any = false;

	if (--in_range > 0)
		return;
	for (int i = 0; i < SHIM_MAX_DEFERRED; i++) {
		int want = SLOT_HELD;

		if (slots[i].tid == me &&
		    atomic_compare_exchange_strong(&slots[i].state, &want, SLOT_READY))
			any = true;
	}
	if (any)
		wake_helper();
}

int shim_defer_close_range(unsigned int first, unsigned int last, int flags)
{
	unsigned int keep[SHIM_MAX_DEFERRED] = {0}, lo = first;
	int n = 0, ret = 0;

	if (!(flags & (int)(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC))) {
		for (int i = 0; i < SHIM_MAX_DEFERRED; i++) {
			int fd = slots[i].fd, j = n;

			if (atomic_load(&slots[i].state) == SLOT_FREE || fd < 0)
				continue;
			for (; j > 0 && keep[j - 1] > (unsigned int)fd; j--)
				keep[j] = keep[j - 1];
			keep[j] = (unsigned int)fd;
			n++;
		}
	}
	if (!n)
		return shim_real.close_range(first, last, flags);
	for (int k = 0; k < n && lo <= last; k++) {
		if (keep[k] < lo || keep[k] > last)
			continue;
		if (keep[k] > lo && shim_real.close_range(lo, keep[k] - 1, flags) < 0)
			ret = -1;
		lo = keep[k] + 1;
		if (keep[k] == ~0U)
			return ret;
	}
	if (lo <= last && shim_real.close_range(lo, last, flags) < 0)
		ret = -1;
	return ret;
}
