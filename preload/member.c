// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What the shim does to a listener: register it after listen(), drain it
 * at its last reference and at shutdown(), leave the group after the
 * close. Every function here runs with shim_busy set, so the library's
 * own calls to close(), shutdown() and listen() go straight to libc.
 */
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"

static atomic_bool inactive;

/* ---- messages --------------------------------------------------------- */

static void say_va(const char *fmt, va_list ap)
{
	char buf[512];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	shim_say("%s", buf);
}

/* The library's and libbpf's messages: only with SOCKMIG_DEBUG. */
static int lib_print(enum sockmig_log_level level, const char *fmt, va_list ap)
{
	(void)level;
	if (shim_cfg.debug)
		say_va(fmt, ap);
	return 0;
}

static int bpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (shim_cfg.debug && level != LIBBPF_DEBUG)
		say_va(fmt, ap);
	return 0;
}

/* libbpf's print callback is process-wide (the server may use libbpf
 * too): ours only while some thread of the shim calls it (drains run in
 * parallel, without shim_decide_lock). */
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;
static int print_users;
static libbpf_print_fn_t print_saved;

static libbpf_print_fn_t quiet_begin(void)
{
	pthread_mutex_lock(&print_lock);
	sockmig_set_print(lib_print);
	if (print_users++ == 0)
		print_saved = libbpf_set_print(bpf_print);
	pthread_mutex_unlock(&print_lock);
	return NULL;
}

static void quiet_end(libbpf_print_fn_t old)
{
	(void)old;
	pthread_mutex_lock(&print_lock);
	if (--print_users == 0)
		libbpf_set_print(print_saved);
	pthread_mutex_unlock(&print_lock);
}

/*
 * Another process has held the group's lock for longer than
 * SHIM_LOCK_WAIT_MS (a stopped or stuck sockmig process): this call goes
 * on without sockmig. Said once per process.
 */
static bool lock_timed_out(void)
{
	static atomic_bool said;

	if (errno != ETIMEDOUT && !strstr(sockmig_last_error(), "is locked by another process"))
		return false;
	if (!atomic_exchange(&said, true) && !shim_cfg.quiet)
		shim_say("%s: calls go on without sockmig while it is", sockmig_last_error());
	return true;
}

/* Stop registering; say why, once per process (and its forked children). */
static void go_inactive(const char *why)
{
	if (atomic_exchange(&inactive, true))
		return;
	if (!shim_cfg.quiet)
		shim_say("inactive: %s", why);
}

void shim_quiet_begin(void)
{
	quiet_begin();
}

void shim_quiet_end(void)
{
	quiet_end(NULL);
}

void shim_go_inactive(const char *why)
{
	go_inactive(why);
}

bool shim_is_inactive(void)
{
	return atomic_load(&inactive);
}

bool shim_lock_timed_out(void)
{
	return lock_timed_out();
}

/* ---- wake-ups ----------------------------------------------------------- */

/*
 * Whether drains must wake the listeners that took migrated children
 * (kernels with the missing wake-up): SOCKMIG_WAKE, else sockmig_probe()
 * once, at the first registration, so that forked workers inherit the
 * answer. The probe runs a thread in a scratch network namespace whose
 * own listen() calls come back here: they are recognised by their
 * namespace while `probing` is set and left alone.
 */
static pthread_once_t wake_once = PTHREAD_ONCE_INIT;
static enum sockmig_wake wake_mode = SOCKMIG_WAKE_ALWAYS;
static atomic_bool probing;
static unsigned long probe_netns;

static void decide_wake(void)
{
	struct sockmig_probe p;
	int err;

	if (shim_cfg.wake >= 0) {
		wake_mode = shim_cfg.wake ? SOCKMIG_WAKE_ALWAYS : SOCKMIG_WAKE_NEVER;
		return;
	}
	probe_netns = sockmig_netns_self();
	atomic_store(&probing, true);
	quiet_begin(); /* a kernel's refusal of the probe's programs is libbpf's log */
	err = sockmig_probe(&p);
	quiet_end(NULL);
	atomic_store(&probing, false);
	/* unknown stays "wake", as in the library */
	wake_mode = err == 0 && p.migrate_wakeup == SOCKMIG_YES ? SOCKMIG_WAKE_NEVER
								: SOCKMIG_WAKE_ALWAYS;
	shim_debug("drains %s wake their targets (%s)",
		   wake_mode == SOCKMIG_WAKE_NEVER ? "need not" : "will",
		   err ? "probe failed" : p.reason);
}

void shim_member_atfork_child(void)
{
	/* the parent's registrations, answers and inactivity carry over; a
	 * probe cannot be under way in the child (no thread survives) */
	atomic_store(&probing, false);
	print_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
}

/* ---- registration ------------------------------------------------------- */

void shim_listener_listen(int fd)
{
	struct shim_entry e;
	struct sockmig_group *g;
	libbpf_print_fn_t old;
	struct stat st;
	char why[300];
	uint32_t gen;
	int err;

	if (!shim_tcp_reuseport_listener(fd))
		return;
	if (atomic_load(&probing) && shim_sock_netns(fd) != probe_netns)
		return; /* the probe's own listener */
	if (atomic_load(&inactive) || fstat(fd, &st) < 0)
		return;
	if (!shim_bpf_privileged()) {
		go_inactive("no privilege to load the policy program (needs CAP_BPF and "
			    "CAP_PERFMON, or root)");
		return;
	}
	pthread_once(&wake_once, decide_wake);
	gen = shim_process_generation();

	pthread_mutex_lock(&shim_decide_lock);
	if (shim_table_full() && shim_table_find(fd) < 0) {
		snprintf(why, sizeof(why), "more than %d listener fds to track", SHIM_MAX_FDS);
		go_inactive(why);
		goto unlock;
	}
	old = quiet_begin();
	SOCKMIG_OPTS(sockmig_group_opts, go, .wake_targets = wake_mode);
	g = sockmig_group_open(fd, &go);
	if (!g) {
		if (!lock_timed_out())
			go_inactive(sockmig_last_error());
		goto quiet;
	}
	SOCKMIG_OPTS(sockmig_member_opts, mo, .role = SOCKMIG_ROLE_ACTIVE, .generation = gen,
		     .pid = (uint32_t)getpid());
	err = sockmig_member_add(g, fd, &mo);
	if (err) {
		if (lock_timed_out())
			goto close_group;
		snprintf(why, sizeof(why), "%s", sockmig_last_error());
		/* leave no empty group behind */
		if (sockmig_members(g, NULL, 0) == 0)
			sockmig_group_destroy(g);
		go_inactive(why);
		goto close_group;
	}
	memset(&e, 0, sizeof(e));
	e.ino = st.st_ino;
	e.cookie = sockmig_cookie(fd);
	snprintf(e.group, sizeof(e.group), "%s", sockmig_group_name(g));
	if (!shim_table_put(fd, &e)) {
		/* cannot happen: checked above under the same lock */
		sockmig_member_leave(g, fd);
		goto close_group;
	}
	shim_debug("fd %d registered in group %s: active, generation %u, pid %d", fd, e.group, gen,
		   (int)getpid());
	shim_defer_start();
	/* natively too: a plain last close leaves its handshakes in flight to
	 * the kernel's close race; a drain waits for them */
	shim_delegate_start();
	if (sockmig_group_policy(g) == SOCKMIG_POLICY_LEGACY && shim_endpoint_of(e.ino) < 0) {
		int ep = sockmig_handoff_listen(g, fd);

		if (ep < 0) {
			/* a member nothing can be handed to would lose its
			 * share at every drain: not one */
			snprintf(why, sizeof(why), "%s", sockmig_last_error());
			sockmig_member_leave(g, fd);
			shim_table_get(fd, &e, true);
			if (sockmig_members(g, NULL, 0) == 0)
				sockmig_group_destroy(g);
			go_inactive(why);
			goto close_group;
		}
		shim_endpoint_add(e.ino, ep);
		shim_debug("fd %d: legacy group: hand-off endpoint open", fd);
	}
close_group:
	sockmig_group_close(g);
quiet:
	quiet_end(old);
unlock:
	pthread_mutex_unlock(&shim_decide_lock);
}

/*
 * Listeners inherited across exec (a binary upgrade, a server that
 * re-executes itself): this image never calls listen() on them, so they
 * are tracked from the start, to be drained at their last close like the
 * others. Only the name of their group is computed here, no BPF, no
 * bpffs: whether they are members is found at that close (the drain of a
 * socket that is not one is refused and nothing happens).
 */
void shim_listeners_adopt(void)
{
	struct shim_entry e;
	struct dirent *de;
	struct stat st;
	DIR *d = opendir("/proc/self/fd");
	int fd;

	while (d && (de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		fd = atoi(de->d_name);
		if (fd == dirfd(d) || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) ||
		    !shim_tcp_reuseport_listener(fd) || !shim_is_listening(fd))
			continue;
		memset(&e, 0, sizeof(e));
		if (shim_group_of(fd, e.group) < 0)
			continue;
		e.ino = st.st_ino;
		e.cookie = sockmig_cookie(fd);
		if (shim_table_put(fd, &e))
			shim_debug("fd %d: inherited listener of group %s", fd, e.group);
	}
	if (d)
		closedir(d);
	if (atomic_load(&shim_ntracked) > 0) {
		shim_defer_start();
		shim_delegate_start();
	}
}

/* ---- drain -------------------------------------------------------------- */

static struct sockmig_group *open_group(const struct shim_entry *e)
{
	struct sockmig_group *g;

	/* an image that never registered (inherited listeners) decides now */
	pthread_once(&wake_once, decide_wake);
	SOCKMIG_OPTS(sockmig_group_opts, go, .wake_targets = wake_mode);
	g = sockmig_group_open_name(e->group, &go);

	if (!g && !lock_timed_out())
		shim_debug("group %s: %s", e->group, sockmig_last_error());
	return g;
}

/* Drain @fd's member; 0 when its queue has moved (legacy: was handed to a
 * live member) and it is shut down. */
static int drain(struct sockmig_group *g, int fd, const char *when)
{
	/* legacy: nothing migrates, the library takes the queue and hands it
	 * to a live member; the server waits in its close(): not for the
	 * whole SYN+ACK retry budget (63 s), what is left is reported */
	SOCKMIG_OPTS(sockmig_drain_opts, o, .handoff = true, .wake_receivers = true,
		     .deadline_ms = sockmig_group_policy(g) == SOCKMIG_POLICY_LEGACY
					    ? SHIM_LEGACY_DRAIN_MS
					    : 0);
	struct sockmig_drain_report rep;
	int err;

	if (!shim_is_listening(fd)) {
		shim_debug("fd %d %s: not listening, nothing to drain", fd, when);
		return -ENOTCONN;
	}
	err = sockmig_member_drain(g, fd, &o, &rep);
	if (err && lock_timed_out())
		return err;
	if (err)
		shim_debug("fd %d %s: not drained: %s", fd, when, sockmig_last_error());
	else if (rep.policy == SOCKMIG_POLICY_LEGACY)
		shim_debug("fd %d %s: drained (legacy): %llu handed off, %llu refused, %u "
			   "abandoned",
			   fd, when, (unsigned long long)rep.accepted,
			   (unsigned long long)rep.refused, rep.inflight_left);
	else
		shim_debug("fd %d %s: drained: %llu migrated, %llu cancelled, %u woken", fd, when,
			   (unsigned long long)(rep.migrated[SOCKMIG_KIND_ESTABLISHED] +
						rep.migrated[SOCKMIG_KIND_TFO]),
			   (unsigned long long)rep.cancelled, rep.kicked);
	return err;
}

/*
 * The order is drain, close, leave: after a drain the queue has already
 * moved; after a refused drain (-EBUSY: no other registered member could
 * take the queue) the policy is still attached at the close, so that it
 * can hand the queue to a sibling listener that is not registered (a new
 * generation run without the shim); leaving first would detach it.
 */
int shim_listener_release(int fd, shim_op_fn op, void *arg)
{
	struct shim_entry e;
	bool have;
	int ret;

	shim_busy++;
	pthread_mutex_lock(&shim_decide_lock);
	have = shim_table_get(fd, &e, true);
	pthread_mutex_unlock(&shim_decide_lock);
	if (have) {
		ret = shim_listener_release_entry(fd, &e, op, arg);
	} else {
		ret = op(fd, arg);
	}
	shim_busy--;
	return ret;
}

/*
 * The process-wide mutex covers the decision and, when the fd is not the
 * last reference, the close (two threads closing two fds of one socket
 * must not each see the other). The drain of a last reference, which can
 * take seconds, runs without it, so that the other threads' listen() and
 * close() do not wait for it: no other fd of the socket is left to race.
 */
int shim_listener_release_entry(int fd, const struct shim_entry *e, shim_op_fn op, void *arg)
{
	struct sockmig_group *g = NULL;
	libbpf_print_fn_t old = NULL;
	int saved = errno, ret, err, refs = -1;
	bool have, locked = false, quieted = false, last;

	if (shim_udp_entry(e))
		return shim_udp_release(fd, e, op, arg);
	shim_busy++;
	pthread_mutex_lock(&shim_decide_lock);
	have = shim_fd_is_socket(fd, e->ino);
	if (have) {
		locked = shim_refs_lock(fd);
		refs = locked ? shim_refs_others(e->ino, fd) : -1;
		if (refs > 0)
			shim_debug("fd %d closed: not the last reference to its socket", fd);
		else if (refs < 0 && !(locked && shim_delegate(fd, e)))
			shim_debug("fd %d closed: cannot tell whether other processes hold its "
				   "socket (%s): closed only",
				   fd, shim_refs_why);
	}
	last = have && refs == 0;
	if (last) {
		pthread_mutex_unlock(&shim_decide_lock);
		old = quiet_begin();
		quieted = true;
		g = open_group(e);
		if (g)
			drain(g, fd, "closed, last reference");
	}
	errno = saved;
	ret = op(fd, arg);
	err = errno;
	if (locked && shim_fd_is_socket(fd, e->ino))
		shim_refs_unlock(fd); /* the call failed: the fd is still ours */
	if (last)
		pthread_mutex_lock(&shim_decide_lock);
	if (have && !shim_fd_is_socket(fd, e->ino) && !shim_holds_socket(e->ino))
		shim_endpoint_drop(e->ino, locked && refs == 0);
	pthread_mutex_unlock(&shim_decide_lock);
	if (g) {
		if (sockmig_member_leave_cookie(g, e->cookie) == 0)
			shim_debug("fd %d left group %s", fd, e->group);
		else if (!lock_timed_out())
			shim_debug("fd %d: leave group %s: %s", fd, e->group, sockmig_last_error());
		sockmig_group_close(g);
	}
	if (quieted)
		quiet_end(old);
	shim_busy--;
	errno = err;
	return ret;
}

/*
 * shutdown(SHUT_RD or SHUT_RDWR) stops a listener for every holder: drain
 * it whoever else holds it. A drain shuts the listener down itself; the
 * server's call would then fail with ENOTCONN, which it would not have
 * seen without the shim, so it is made only when the drain did not
 * happen. (SHUT_RD and SHUT_RDWR do the same to a listener; SHUT_WR does
 * nothing to it and is passed on.) The member stays registered, draining,
 * until the close: the server may listen() again.
 */
int shim_listener_shutdown(int fd, int how)
{
	struct sockmig_group *g;
	struct shim_entry e;
	libbpf_print_fn_t old;
	int saved = errno, ret, err, rc = -1;

	if (how != SHUT_RD && how != SHUT_RDWR)
		return shim_real.shutdown(fd, how);
	shim_busy++;
	/* no shim_decide_lock: a drain can take seconds (see above) */
	if (shim_table_get(fd, &e, false) && shim_fd_is_socket(fd, e.ino) &&
	    shim_is_listening(fd)) {
		old = quiet_begin();
		g = open_group(&e);
		if (g) {
			rc = drain(g, fd, "shut down");
			sockmig_group_close(g);
		}
		quiet_end(old);
	}
	if (rc == 0) {
		ret = 0;
		err = saved;
	} else {
		errno = saved;
		ret = shim_real.shutdown(fd, how);
		err = errno;
	}
	shim_busy--;
	errno = err;
	return ret;
}

static int op_close(int fd, void *arg)
{
	(void)arg;
	return shim_real.close(fd);
}

/*
 * exit() (or return from main) with listeners open: the kernel would close
 * them right after; close them here instead so that the last holder
 * drains and leaves. _exit(), a fatal signal or exec through FD_CLOEXEC
 * close them without the shim: the kernel still migrates the queue under
 * the policy when another member listens, and the stale member is removed
 * by the next process that opens the group.
 */
void shim_listeners_exit(void)
{
	int fds[SHIM_MAX_FDS], n;

	n = shim_table_fds(fds, SHIM_MAX_FDS);
	for (int i = 0; i < n; i++)
		shim_listener_release(fds[i], op_close, NULL);
}

/*
 * A master that registered the listeners and gave them to its workers
 * (haproxy -W, nginx) closes its own fds early, without leaving (the
 * workers still hold the sockets), or re-executes itself and forgets them
 * (haproxy -W's master does, into its wait mode); the workers may die by
 * a signal, which runs no shim code. Its member then stayed in the group,
 * with nobody left to remove it or the group: the pins outlived the
 * server. At exit, in every group of this network namespace, the members
 * that no longer listen and whose owner is gone, or is this process, are
 * forgotten; a group with no member left is removed, as the last leave
 * removes it. A member still listening (a worker alive, a new
 * generation's) keeps its group. Only a process that may load BPF looks.
 */
void shim_groups_exit(void)
{
	struct sockmig_group_id *ids = NULL;
	uint64_t self = sockmig_netns_self();
	libbpf_print_fn_t old;
	int n;

	if (atomic_load(&inactive) || !shim_bpf_privileged() || !self)
		return;
	old = quiet_begin();
	n = sockmig_group_list_ids(NULL, self, 0, NULL, 0);
	if (n > 0)
		ids = calloc((size_t)n, sizeof(*ids));
	if (ids)
		n = sockmig_group_list_ids(NULL, self, 0, ids, n);
	for (int i = 0; ids && i < n; i++) {
		const char *name = ids[i].name;
		struct shim_entry e;
		struct sockmig_group *g;
		int rc;

		memset(&e, 0, sizeof(e));
		snprintf(e.group, sizeof(e.group), "%s", name);
		g = open_group(&e);
		if (!g)
			continue; /* gone already: its last member left */
		rc = sockmig_group_collect(g, (uint32_t)getpid());
		if (rc == 1)
			shim_debug("exit: group %s had no member left: removed", name);
		else if (rc < 0 && !lock_timed_out())
			shim_debug("exit: group %s: %s", name, sockmig_last_error());
		sockmig_group_close(g);
	}
	free(ids);
	quiet_end(old);
}
