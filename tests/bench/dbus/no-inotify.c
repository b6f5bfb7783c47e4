// SPDX-License-Identifier: GPL-2.0
/*
 * no-inotify.so: an LD_PRELOAD shim for dbus-broker-launch in the
 * benchmark guest, whose kernels are built without CONFIG_INOTIFY_USER.
 * The launcher watches its configuration directories to reload on change
 * and exits if it cannot; here nothing changes them, so an eventfd that
 * never becomes readable stands in for the inotify descriptor.  It is
 * preloaded into the launcher (scripts/bench-guest.sh, tests/dbus/broker.rs);
 * the broker it starts, which carries the messages, inherits it but calls
 * no inotify function, so it runs as shipped.
 */
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>

int inotify_init1(int flags)
{
	return eventfd(0, ((flags & IN_CLOEXEC) ? EFD_CLOEXEC : 0) |
			  ((flags & IN_NONBLOCK) ? EFD_NONBLOCK : 0));
}

int inotify_init(void)
{
	return inotify_init1(0);
}

int inotify_add_watch(int fd, const char *path, uint32_t mask)
{
	(void)fd;
	(void)path;
	(void)mask;
	return 1;
}

int inotify_rm_watch(int fd, int wd)
{
	(void)fd;
	(void)wd;
	return 0;
}
