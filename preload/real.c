// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The real functions the interposers pass calls on to: resolved with
 * dlsym(RTLD_NEXT), or raw system calls should dlsym() ever fail.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

struct shim_real shim_real;

static int sys_close(int fd)
{
	return (int)syscall(SYS_close, fd);
}

static int sys_listen(int fd, int backlog)
{
	return (int)syscall(SYS_listen, fd, backlog);
}

static int sys_shutdown(int fd, int how)
{
	return (int)syscall(SYS_shutdown, fd, how);
}

static int sys_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	return (int)syscall(SYS_bind, fd, sa, len);
}

static int sys_dup(int fd)
{
	return (int)syscall(SYS_dup, fd);
}

static int sys_dup3(int oldfd, int newfd, int flags)
{
	return (int)syscall(SYS_dup3, oldfd, newfd, flags);
}

static int sys_fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return (int)syscall(SYS_fcntl, fd, cmd, arg);
}

static int sys_dup2(int oldfd, int newfd)
{
	if (oldfd == newfd)
		return sys_fcntl(oldfd, F_GETFD) < 0 ? -1 : newfd;
	return sys_dup3(oldfd, newfd, 0);
}

static pid_t sys_fork(void)
{
#ifdef SYS_fork
	return (pid_t)syscall(SYS_fork);
#else
	return (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
#endif
}

static int sys_close_range(unsigned int first, unsigned int last, int flags)
{
	return (int)syscall(SYS_close_range, first, last, flags);
}

static int sys_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	return (int)syscall(SYS_accept4, fd, sa, len, flags);
}

static int sys_accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	return sys_accept4(fd, sa, len, 0);
}

static int sys_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	return (int)syscall(SYS_connect, fd, sa, len);
}

static void sys_closefrom(int lowfd)
{
	sys_close_range((unsigned int)lowfd, ~0U, 0);
}

#define RESOLVE(name, fallback)                                                                    \
	do {                                                                                       \
		void *sym_ = dlsym(RTLD_NEXT, #name);                                              \
		shim_real.name = sym_ ? (__typeof__(shim_real.name))sym_ : (fallback);             \
	} while (0)

void shim_real_resolve(void)
{
	RESOLVE(close, sys_close);
	RESOLVE(listen, sys_listen);
	RESOLVE(shutdown, sys_shutdown);
	RESOLVE(bind, sys_bind);
	RESOLVE(dup, sys_dup);
	RESOLVE(dup2, sys_dup2);
	RESOLVE(dup3, sys_dup3);
	RESOLVE(fcntl, sys_fcntl);
	RESOLVE(fcntl64, sys_fcntl);
	RESOLVE(fork, sys_fork);
	RESOLVE(close_range, sys_close_range);
	RESOLVE(closefrom, sys_closefrom);
	RESOLVE(accept, sys_accept);
	RESOLVE(accept4, sys_accept4);
	RESOLVE(connect, sys_connect);
}

bool shim_real_fork_is_raw(void)
{
	return shim_real.fork == sys_fork;
}
