// SPDX-License-Identifier: GPL-2.0
/*
 * bus_faults: representative AF_BUS operations in a loop, each run with
 * allocation failures injected into this task (failslab and
 * fail_page_alloc with task-filter, switched by /proc/self/make-it-fail),
 * then checked with injection off:
 *
 * - a failed call fails with a clean errno (ENOMEM, ENOBUFS, ENFILE for
 *   a socket, EAGAIN where it may block, EFAULT with -u) and changes
 *   nothing: the same call without faults then succeeds;
 * - a call that succeeded did all it says: every message a send accepted
 *   is received once, in order, intact; every grant it carried is in
 *   force; a multicast copy is received or counted as dropped;
 * - a receive that failed lost nothing, unless its copy to user space
 *   faulted (EFAULT, -u only): that consumes the message, as for every
 *   datagram socket;
 * - an endpoint that closes is reported to its master (GONE, or the
 *   OVERFLOW count if the news could not be built).
 *
 * With -n the same loop is a sweep instead: in iteration k every
 * operation fails its k-th call that may fail (/proc/thread-self/
 * fail-nth, limited by the stack filter set up for failslab,
 * fail_page_alloc and fail_usercopy), so that each allocation and user
 * copy of each operation is failed once, in turn.
 *
 *   bus_faults [-i ITERATIONS] [-s SEED] [-u] [-n]
 *
 * Prints the operations tried, how many failed (by errno) and every
 * violation; exits 1 if there was any.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/bus.h>
#include "../kselftest/bus_test.h"

static int fail_fd = -1;
static int usercopy, nth;
static unsigned int cur_iter;
static unsigned long ops, failed, violations, by_errno[256], swept;

/* Switches injection for this task; the write itself may fail (EFAULT
 * from fail_usercopy), so it is retried with injection on.  With -n,
 * arms fail-nth for the iteration's call, and on the way off counts
 * whether it was used.
 */
static void faults(int on)
{
	char buf[16];
	int len;

	if (!nth) {
		while (write(fail_fd, on ? "1" : "0", 1) != 1)
			;
		return;
	}
	if (on) {
		len = snprintf(buf, sizeof(buf), "%u", cur_iter + 1);
		while (pwrite(fail_fd, buf, len, 0) != len)
			;
		return;
	}
	len = pread(fail_fd, buf, sizeof(buf) - 1, 0);
	if (len > 0 && buf[0] == '0')
		swept++;
	while (pwrite(fail_fd, "0", 1, 0) != 1)
		;
}

static void violation(int iter, const char *fmt, ...)
{
	va_list ap;

	violations++;
	printf("# VIOLATION (iteration %d): ", iter);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/*
 * Whether @e is a clean errno for a failure under injection; @extra is
 * one more the call may return (EAGAIN for a non-blocking send, ENFILE
 * for socket()), or 0.
 */
static int clean(int e, int extra)
{
	if (e == ENOMEM || e == ENOBUFS || (extra && e == extra))
		return 1;
	return usercopy && e == EFAULT;
}

/* Records the result of one call made under injection: 1 if it failed
 * cleanly (the caller then checks nothing changed and retries), 0 if it
 * succeeded, -1 on a violation.
 */
static int outcome(int iter, const char *what, long ret, int extra)
{
	int e = errno;

	ops++;
	if (ret >= 0)
		return 0;
	failed++;
	by_errno[e & 255]++;
	if (clean(e, extra))
		return 1;
	violation(iter, "%s failed with %s", what, strerrorname_np(e));
	return -1;
}

/* socket() under injection, retried without. */
static int new_socket(int iter)
{
	int fd;

	faults(1);
	fd = socket(AF_BUS, SOCK_DGRAM, 0);
	faults(0);
	if (outcome(iter, "socket", fd, ENFILE) < 0)
		return -1;
	if (fd < 0)
		fd = socket(AF_BUS, SOCK_DGRAM, 0);
	return fd;
}

/* Whether @fd has nothing to read (injection off). */
static int queue_empty(int fd)
{
	char c;

	return recv(fd, &c, 1, MSG_DONTWAIT) == -1 && errno == EAGAIN;
}

/* How many addresses @fd owns, handle included (injection off). */
static int naddrs(int fd)
{
	struct sockaddr_bus a[72];
	socklen_t len = sizeof(a);

	if (getsockopt(fd, SOL_BUS, BUS_ADDRS, a, &len))
		return -1;
	return len / sizeof(a[0]);
}

#define CONSUMED (-2)

/* Receives one message into @m under injection; a failed receive must
 * leave it queued for the next one, unless the copy to user space
 * faulted after it was taken (EFAULT may also come before, from the
 * msghdr).  Returns the length, -1, or CONSUMED for a message lost to
 * EFAULT.  Only for queues holding at most one message.
 */
static ssize_t recv_one(int iter, int fd, struct bus_msg *m)
{
	ssize_t n;
	int r;

	faults(1);
	n = bus_recv(fd, m, MSG_DONTWAIT);
	faults(0);
	r = outcome(iter, "recvmsg", n, EAGAIN);
	if (r) {
		int efault = errno == EFAULT;

		n = bus_recv(fd, m, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN && efault)
			return CONSUMED;
	}
	return n;
}

/*
 * The master's grant of @grant (SCM_OWNED_ADDR) and optionally @match
 * (SCM_MULTICAST_MATCH) to @handle, endpoint @fd: under injection, then
 * checked.
 */
static int grant(int iter, int master, int fd, const struct sockaddr_bus *handle,
		 const struct sockaddr_bus *g, const struct sockaddr_bus *match)
{
	char ctl[2 * CMSG_SPACE(sizeof(struct sockaddr_bus))];
	struct bus_msg m;
	size_t off = 0;
	int before = naddrs(fd), r;
	ssize_t n;

	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, g);
	if (match)
		bus_cmsg_add(ctl, &off, SCM_MULTICAST_MATCH, match);
	faults(1);
	n = bus_send(master, handle, "welcome", 8, ctl, off, 0);
	faults(0);
	r = outcome(iter, "grant", n, 0);
	if (r < 0)
		return -1;
	if (r) {
		/* Refused: no grant applied, nothing queued. */
		if (naddrs(fd) != before)
			violation(iter, "a refused grant changed the owner's addresses");
		if (!queue_empty(fd))
			violation(iter, "a refused grant was queued");
		if (bus_send(master, handle, "welcome", 8, ctl, off, 0) != 8) {
			violation(iter, "grant retried without faults: %s", strerrorname_np(errno));
			return -1;
		}
	}
	if (naddrs(fd) != before + 1)
		violation(iter, "an accepted grant is not in force");
	n = recv_one(iter, fd, &m);
	if (n != CONSUMED && (n != 8 || !bus_msg_cmsg(&m, SCM_OWNED_ADDR)))
		violation(iter, "the grant's message was lost (%zd)", n);
	return 0;
}

/* Joins @fd: hello to the master under injection, then the grant. */
static int join(int iter, int master, const struct sockaddr_bus *maddr, int fd,
		const struct sockaddr_bus *g, const struct sockaddr_bus *match)
{
	struct bus_msg m;
	ssize_t n;
	int r;

	faults(1);
	n = bus_send_str(fd, maddr, "hello", 0);
	faults(0);
	r = outcome(iter, "join", n, 0);
	if (r < 0)
		return -1;
	if (r) {
		if (!queue_empty(master))
			violation(iter, "a refused join was queued");
		if (bus_send_str(fd, maddr, "hello", 0) != 6) {
			violation(iter, "join retried without faults: %s", strerrorname_np(errno));
			return -1;
		}
	}
	n = recv_one(iter, master, &m);
	if (n == CONSUMED) {
		/* The handle was in the message: ask again. */
		if (bus_send_str(fd, maddr, "hello", 0) != 6)
			return -1;
		n = bus_recv(master, &m, 0);
	}
	if (n != 6) {
		violation(iter, "the master lost a join (%zd)", n);
		return -1;
	}
	return grant(iter, master, fd, &m.name, g, match);
}

struct msg {
	unsigned int iter, seq;
	char fill[8192];
};

/* a sends a burst of unicasts to b under injection (some receives too);
 * b must then hold exactly the accepted ones, in order.
 */
static void unicast(int iter, int a, int b, const struct sockaddr_bus *baddr)
{
	static struct msg out, in;
	unsigned int accepted[64], nacc = 0, got = 0, i;
	struct bus_msg m;
	ssize_t n;
	size_t len;
	int r;

	for (i = 0; i < 64; i++) {
		len = 8 + rand() % (sizeof(out.fill) - 1);
		out.iter = iter;
		out.seq = i;
		memset(out.fill, 'a' + i % 26, len - 8);
		faults(1);
		n = bus_send(a, baddr, &out, len, NULL, 0, MSG_DONTWAIT);
		faults(0);
		r = outcome(iter, "unicast send", n, EAGAIN);
		if (r < 0)
			continue;
		if (r == 0) {
			if ((size_t)n != len)
				violation(iter, "unicast send returned %zd of %zu", n, len);
			accepted[nacc++] = i | (unsigned int)len << 16;
		}
		/* Now and then a receive under injection too. */
		if (rand() % 4)
			continue;
		faults(1);
		n = bus_recv(b, &m, MSG_DONTWAIT);
		faults(0);
		r = outcome(iter, "unicast recvmsg", n, EAGAIN);
		if (r > 0 && errno == EFAULT && got < nacc) {
			/* Consumed, unless the next one is still the expected one. */
			if (recv(b, &in, 8, MSG_PEEK | MSG_DONTWAIT) != 8 ||
			    in.seq != (accepted[got] & 0xffff))
				got++;
			continue;
		}
		if (n < 0)
			continue;
		if (got >= nacc) {
			violation(iter, "received a message never accepted");
			continue;
		}
		memcpy(&in, m.data, MIN((size_t)n, sizeof(m.data)));
		if (in.seq != (accepted[got] & 0xffff) || in.iter != (unsigned int)iter ||
		    (size_t)n != MIN(accepted[got] >> 16, sizeof(m.data)))
			violation(iter, "unicast %u out of order or changed (seq %u, len %zd)",
				  accepted[got] & 0xffff, in.seq, n);
		got++;
	}
	/* The rest, without injection. */
	while (bus_recv(b, &m, MSG_DONTWAIT) >= 0) {
		memcpy(&in, m.data, 8);
		if (got >= nacc || in.seq != (accepted[got] & 0xffff))
			violation(iter, "unicast drain: unexpected seq %u", in.seq);
		got++;
	}
	if (errno != EAGAIN)
		violation(iter, "unicast drain ended with %s", strerrorname_np(errno));
	if (got != nacc)
		violation(iter, "%u unicasts accepted, %u received", nacc, got);
}

static unsigned int drops(int fd)
{
	unsigned int d = 0;
	socklen_t len = sizeof(d);

	getsockopt(fd, SOL_BUS, BUS_DROPS, &d, &len);
	return d;
}

/* The master multicasts under injection: every matching receiver gets
 * each accepted message or counts it as dropped.
 */
static void multicast(int iter, int master, int b, const struct sockaddr_bus *mc)
{
	unsigned int before = drops(b), sent = 0, got = 0, enobufs = 0, i;
	struct bus_msg m;
	ssize_t n;
	int r;

	for (i = 0; i < 16; i++) {
		faults(1);
		n = bus_send(master, mc, "mc", 3, NULL, 0, MSG_DONTWAIT);
		faults(0);
		r = outcome(iter, "multicast send", n, 0);
		if (r == 0)
			sent++;
	}
	for (;;) {
		n = bus_recv(b, &m, MSG_DONTWAIT);
		if (n >= 0) {
			got++;
			continue;
		}
		if (errno == ENOBUFS && !enobufs++)
			continue;
		break;
	}
	if (errno != EAGAIN)
		violation(iter, "multicast drain ended with %s", strerrorname_np(errno));
	if (got + (drops(b) - before) != sent)
		violation(iter, "multicast: %u sent, %u received, %u dropped", sent, got,
			  drops(b) - before);
	if ((drops(b) != before) != (enobufs != 0))
		violation(iter, "multicast drops not reported by ENOBUFS");
}

/* a passes a memfd to b under injection. */
static void rights(int iter, int a, int b, const struct sockaddr_bus *baddr)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct cmsghdr *c = (struct cmsghdr *)ctl;
	int fd = memfd_create("payload", 0), r;
	struct bus_msg m;
	ssize_t n;

	memset(ctl, 0, sizeof(ctl));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	faults(1);
	n = bus_send(a, baddr, "f", 1, ctl, sizeof(ctl), MSG_DONTWAIT);
	faults(0);
	r = outcome(iter, "SCM_RIGHTS send", n, 0);
	close(fd);
	if (r < 0)
		return;
	if (r) {
		if (!queue_empty(b))
			violation(iter, "a refused SCM_RIGHTS send was queued");
		return;
	}
	n = recv_one(iter, b, &m);
	if (n == CONSUMED)
		return;
	if (n != 1)
		violation(iter, "SCM_RIGHTS message lost (%zd)", n);
	else if (m.nfds != 1 && !(m.flags & MSG_CTRUNC))
		violation(iter, "the file was neither received nor reported (MSG_CTRUNC)");
	if (m.nfds == 1)
		close(m.fds[0]);
}

/* b sets up a ring under injection; a sends into it. */
static void ring(int iter, int a, int b, const struct sockaddr_bus *baddr)
{
	struct bus_ring_req req = { 4096, 4 }, none = { 0, 0 };
	struct bus_frame_hdr *h;
	void *map;
	ssize_t n;
	int r;

	faults(1);
	r = setsockopt(b, SOL_BUS, BUS_RX_RING, &req, sizeof(req));
	faults(0);
	r = outcome(iter, "BUS_RX_RING", r, 0);
	if (r < 0)
		return;
	if (r && setsockopt(b, SOL_BUS, BUS_RX_RING, &req, sizeof(req))) {
		violation(iter, "BUS_RX_RING retried: %s", strerrorname_np(errno));
		return;
	}
	faults(1);
	map = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, b, 0);
	faults(0);
	r = outcome(iter, "ring mmap", map == MAP_FAILED ? -1 : 0, EAGAIN);
	if (r > 0)
		map = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, b, 0);
	if (map == MAP_FAILED) {
		violation(iter, "ring mmap: %s", strerrorname_np(errno));
		goto out;
	}
	faults(1);
	n = bus_send(a, baddr, "ring", 5, NULL, 0, MSG_DONTWAIT);
	faults(0);
	r = outcome(iter, "ring send", n, 0);
	h = map;
	if (r == 0 && (__atomic_load_n(&h->status, __ATOMIC_ACQUIRE) != BUS_FRAME_USER ||
		       h->len != 5 || memcmp((char *)h + h->data_offset, "ring", 5)))
		violation(iter, "an accepted ring message is not in the ring");
	/* A copy that faulted leaves a frame marked discarded. */
	if (r > 0 && __atomic_load_n(&h->status, __ATOMIC_ACQUIRE) != BUS_FRAME_KERNEL &&
	    !(errno == EFAULT && (h->flags & BUS_FRAME_F_DISCARDED)))
		violation(iter, "a refused ring message was published");
	munmap(map, 4 * 4096);
out:
	if (setsockopt(b, SOL_BUS, BUS_RX_RING, &none, sizeof(none)))
		violation(iter, "ring removal: %s", strerrorname_np(errno));
}

/* Reads under injection that allocate: BUS_ADDRS and /proc/net/bus. */
static void reads(int iter, int a)
{
	struct sockaddr_bus addrs[72];
	socklen_t len = sizeof(addrs);
	char buf[4096];
	int fd, r;

	faults(1);
	r = getsockopt(a, SOL_BUS, BUS_ADDRS, addrs, &len);
	faults(0);
	outcome(iter, "BUS_ADDRS", r, 0);
	faults(1);
	fd = open("/proc/net/bus", O_RDONLY);
	if (fd >= 0) {
		while ((r = read(fd, buf, sizeof(buf))) > 0)
			;
		faults(0);
		outcome(iter, "read /proc/net/bus", r, 0);
		close(fd);
	}
	faults(0);
}

/* An endpoint closes under injection: its master hears of it. */
static void leave(int iter, int master, int fd)
{
	struct bus_notification *n;
	struct bus_msg m;

	faults(1);
	close(fd);
	faults(0);
	if (bus_recv(master, &m, MSG_DONTWAIT) < (ssize_t)sizeof(*n)) {
		violation(iter, "the master was not told of a closed endpoint (%s)",
			  strerrorname_np(errno));
		return;
	}
	n = (struct bus_notification *)m.data;
	if (n->type != BUS_NOTIFY_GONE && n->type != BUS_NOTIFY_OVERFLOW)
		violation(iter, "unexpected notification %u", n->type);
}

static void iteration(int iter)
{
	struct sockaddr_bus maddr, ga, gb, mc;
	char name[32];
	int master, a, b, r;
	long one = 1;

	snprintf(name, sizeof(name), "faults-%d", iter);
	master = new_socket(iter);
	if (master < 0)
		return;
	maddr = bus_addr_abstract(name, "master");
	faults(1);
	r = bind(master, (struct sockaddr *)&maddr, sizeof(maddr));
	faults(0);
	r = outcome(iter, "bind", r, 0);
	if (r > 0 && bind(master, (struct sockaddr *)&maddr, sizeof(maddr))) {
		violation(iter, "bind retried without faults: %s", strerrorname_np(errno));
		close(master);
		return;
	}
	a = new_socket(iter);
	b = new_socket(iter);
	if (a < 0 || b < 0)
		goto out;
	ga = bus_on(&maddr, "a.svc");
	gb = bus_on(&maddr, "b.svc");
	mc = maddr;
	mc.sbus_path[BUS_PATH_MAX - 1] = '*';
	memset(mc.sbus_addr, 0, sizeof(mc.sbus_addr));
	mc.sbus_addr[0] = 1ULL << (iter % 64);
	mc.sbus_addr_ncomp = 1;
	if (join(iter, master, &maddr, a, &ga, NULL) ||
	    join(iter, master, &maddr, b, &gb, &mc))
		goto out;
	setsockopt(b, SOL_SOCKET, SO_PASSCRED, &one, sizeof(int));
	unicast(iter, a, b, &gb);
	multicast(iter, master, b, &mc);
	rights(iter, a, b, &gb);
	ring(iter, a, b, &gb);
	reads(iter, a);
	leave(iter, master, a);
	a = -1;
	leave(iter, master, b);
	b = -1;
out:
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	faults(1);
	close(master);
	faults(0);
}

int main(int argc, char **argv)
{
	unsigned int seed = time(NULL);
	int iters = 100, i, opt;
	struct timespec t0, t1;

	while ((opt = getopt(argc, argv, "i:s:un")) != -1) {
		switch (opt) {
		case 'i':
			iters = atoi(optarg);
			break;
		case 's':
			seed = strtoul(optarg, NULL, 0);
			break;
		case 'u':
			usercopy = 1;
			break;
		case 'n':
			nth = 1;
			usercopy = 1;
			break;
		default:
			fprintf(stderr, "usage: %s [-i ITERATIONS] [-s SEED] [-u] [-n]\n", argv[0]);
			return 2;
		}
	}
	fail_fd = nth ? open("/proc/thread-self/fail-nth", O_RDWR) :
			open("/proc/self/make-it-fail", O_WRONLY);
	if (fail_fd < 0) {
		perror(nth ? "/proc/thread-self/fail-nth" : "/proc/self/make-it-fail");
		return 2;
	}
	srand(seed);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < iters; i++) {
		cur_iter = i;
		iteration(i);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("# bus_faults%s: seed %u, %d iterations, %lu operations under injection, ",
	       nth ? " -n" : "", seed, iters, ops);
	if (nth)
		printf("%lu with their n-th call failed, ", swept);
	printf("%lu failed (", failed);
	for (i = 1; i < 256; i++)
		if (by_errno[i])
			printf(" %s %lu", strerrorname_np(i), by_errno[i]);
	printf(" ), %lu violations, %ld s\n", violations, (long)(t1.tv_sec - t0.tv_sec));
	return violations ? 1 : 0;
}
