/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Holding a kernel path at a known point, for the AF_BUS kselftests:
 *
 * - a raw /dev/fuse "server" that answers FUSE_INIT and nothing else, so
 *   that a path walk through its mount sleeps in FUSE_LOOKUP until the
 *   connection is aborted;
 * - userfaultfd helpers: a page whose first touch (a user copy in the
 *   kernel included) sleeps until the test fills it.
 *
 * Both need root (a FUSE mount; kernel-mode userfaults).
 */
#ifndef BUS_STALL_H
#define BUS_STALL_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/fuse.h>
#include <linux/userfaultfd.h>

#define BUS_FUSE_BUF (64 * 1024)

struct bus_fuse {
	int fd;			/* /dev/fuse, -1 once aborted */
	char mnt[64];		/* the mount point */
	unsigned int conn;	/* the connection's number in fusectl */
};

/* The minor device number of the mount at @mnt (its fusectl name). */
static inline int bus_fuse_conn(const char *mnt, unsigned int *conn)
{
	char line[512], point[256];
	unsigned int major, minor;
	int found = -1;
	FILE *f = fopen("/proc/self/mountinfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%*d %*d %u:%u %*s %255s", &major, &minor, point) == 3 &&
		    !strcmp(point, mnt)) {
			*conn = minor;
			found = 0;
		}
	if (f)
		fclose(f);
	return found;
}

/* Reads one request into @buf (waiting up to @ms); returns its opcode. */
static inline int bus_fuse_read(struct bus_fuse *f, char *buf, int ms)
{
	struct pollfd p = { .fd = f->fd, .events = POLLIN };
	struct fuse_in_header *in = (struct fuse_in_header *)buf;

	if (poll(&p, 1, ms) != 1)
		return -1;
	if (read(f->fd, buf, BUS_FUSE_BUF) < (ssize_t)sizeof(*in))
		return -1;
	return in->opcode;
}

/*
 * Mounts a FUSE file system at @mnt (made if missing) and answers its
 * FUSE_INIT.  Nothing else is ever answered: a walk below @mnt sleeps in
 * FUSE_LOOKUP (killable) until bus_fuse_abort().  Returns 0 or -1.
 */
static inline int bus_fuse_mount(struct bus_fuse *f, const char *mnt)
{
	static char buf[BUS_FUSE_BUF];
	struct fuse_in_header *in = (struct fuse_in_header *)buf;
	struct fuse_init_in *init = (struct fuse_init_in *)(in + 1);
	struct {
		struct fuse_out_header h;
		struct fuse_init_out o;
	} out;
	char opts[128];

	memset(f, 0, sizeof(*f));
	f->fd = -1;
	snprintf(f->mnt, sizeof(f->mnt), "%s", mnt);
	mkdir(mnt, 0755);
	f->fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (f->fd < 0)
		return -1;
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other",
		 f->fd);
	if (mount("afbus-stall", mnt, "fuse", MS_NOSUID | MS_NODEV, opts))
		goto fail;
	if (bus_fuse_read(f, buf, 5000) != FUSE_INIT)
		goto fail_umount;
	memset(&out, 0, sizeof(out));
	out.h.len = sizeof(out);
	out.h.unique = in->unique;
	out.o.major = FUSE_KERNEL_VERSION;
	out.o.minor = FUSE_KERNEL_MINOR_VERSION;
	out.o.max_readahead = init->max_readahead;
	out.o.max_write = 4096;
	out.o.max_background = 16;
	out.o.congestion_threshold = 12;
	if (write(f->fd, &out, sizeof(out)) != sizeof(out))
		goto fail_umount;
	if (bus_fuse_conn(mnt, &f->conn))
		f->conn = 0;
	return 0;
fail_umount:
	umount2(mnt, MNT_DETACH);
fail:
	close(f->fd);
	f->fd = -1;
	return -1;
}

/*
 * Waits up to @ms for a FUSE_LOOKUP to arrive (a walk is then asleep in
 * it) and leaves it unanswered.  Returns 0, or -1 if none came.
 */
static inline int bus_fuse_wait_lookup(struct bus_fuse *f, int ms)
{
	static char buf[BUS_FUSE_BUF];
	int op;

	do {
		op = bus_fuse_read(f, buf, ms);
	} while (op >= 0 && op != FUSE_LOOKUP);
	return op == FUSE_LOOKUP ? 0 : -1;
}

/*
 * Aborts the connection: every request waiting ends (ECONNABORTED), later
 * ones fail (ENOTCONN).  Through fusectl when it can be mounted (a forked
 * child may still hold the /dev/fuse fd), and by closing the fd.  Then
 * detaches the mount.  Safe to call twice.
 */
static inline void bus_fuse_abort(struct bus_fuse *f)
{
	char path[96];
	int fd;

	if (f->fd < 0)
		return;
	mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL);
	snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort", f->conn);
	fd = f->conn ? open(path, O_WRONLY) : -1;
	if (fd >= 0) {
		if (write(fd, "1", 1) != 1)
			perror("fusectl abort");
		close(fd);
	}
	close(f->fd);
	f->fd = -1;
	umount2(f->mnt, MNT_DETACH);
	rmdir(f->mnt);
}

struct bus_uffd {
	int fd;
	char *mem;		/* @size bytes, registered MISSING */
	size_t size;
};

/*
 * Maps @size bytes (whole pages) that nothing has touched, registered
 * with a new userfaultfd: the first access to each page sleeps until
 * bus_uffd_fill().  Returns 0 or -1.
 */
static inline int bus_uffd_setup(struct bus_uffd *u, size_t size)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;

	u->mem = MAP_FAILED;
	u->size = size;
	u->fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (u->fd < 0)
		return -1;
	if (ioctl(u->fd, UFFDIO_API, &api))
		return -1;
	u->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (u->mem == MAP_FAILED)
		return -1;
	memset(&reg, 0, sizeof(reg));
	reg.range.start = (unsigned long)u->mem;
	reg.range.len = size;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	return ioctl(u->fd, UFFDIO_REGISTER, &reg);
}

/* Waits up to @ms for a fault on the region: 0 once a thread sleeps in one. */
static inline int bus_uffd_wait_fault(struct bus_uffd *u, int ms)
{
	struct pollfd p = { .fd = u->fd, .events = POLLIN };
	struct uffd_msg msg;

	if (poll(&p, 1, ms) != 1)
		return -1;
	if (read(u->fd, &msg, sizeof(msg)) != sizeof(msg))
		return -1;
	return msg.event == UFFD_EVENT_PAGEFAULT ? 0 : -1;
}

/*
 * Fills the whole region with @len bytes of @data (zeros after), which
 * wakes the faulting threads.  Safe to call twice.
 */
static inline int bus_uffd_fill(struct bus_uffd *u, const void *data, size_t len)
{
	struct uffdio_copy copy;
	char *src;
	int ret;

	if (u->fd < 0 || u->mem == MAP_FAILED)
		return -1;
	src = mmap(NULL, u->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED)
		return -1;
	memcpy(src, data, len < u->size ? len : u->size);
	memset(&copy, 0, sizeof(copy));
	copy.dst = (unsigned long)u->mem;
	copy.src = (unsigned long)src;
	copy.len = u->size;
	ret = ioctl(u->fd, UFFDIO_COPY, &copy);
	if (ret && errno == EEXIST)
		ret = 0;
	munmap(src, u->size);
	return ret;
}

/* Unregisters and unmaps (faulting threads are woken first). */
static inline void bus_uffd_close(struct bus_uffd *u)
{
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
	if (u->mem != MAP_FAILED)
		munmap(u->mem, u->size);
	u->mem = MAP_FAILED;
}

/* Milliseconds on the monotonic clock. */
static inline long long bus_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/*
 * Waits up to @ms for the thread @tid of this process to sleep (state S
 * or D in /proc), so that a signal or an event reaches a thread that is
 * blocked, not one about to block.  Returns 0 or -1.
 */
static inline int bus_wait_asleep(pid_t tid, int ms)
{
	long long end = bus_now_ms() + ms;
	char path[64], buf[256], *p;
	int fd, n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	do {
		fd = open(path, O_RDONLY);
		if (fd < 0)
			return -1;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = 0;
			p = strrchr(buf, ')');
			if (p && (p[2] == 'S' || p[2] == 'D'))
				return 0;
		}
		usleep(10000);
	} while (bus_now_ms() < end);
	return -1;
}

#endif /* BUS_STALL_H */
