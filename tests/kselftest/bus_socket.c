// SPDX-License-Identifier: GPL-2.0
/*
 * What the socket layer expects of a family, and what event loops need:
 *
 * - backpressure: POLLOUT (and EPOLLOUT) of a member follows room at its
 *   master, and a writer is woken when the master reads;
 * - poll without a lock: a message or a read racing a poll on the other
 *   vCPU is never a lost wake-up;
 * - waits: a signal with SA_RESTART restarts a send blocked on a full
 *   ring; a reader blocked on an empty queue wakes with ENOBUFS when a
 *   multicast to it is dropped;
 * - conventions: /proc/net/protocols counts the sockets, FIONREAD
 *   (SIOCINQ) and SIOCOUTQ, SO_PEERCRED of an endpoint (its master),
 *   O_ASYNC raises SIGIO.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/sockios.h>

#include <linux/bus.h>
#include "bus_test.h"
#include "bus_stall.h"
#include "kselftest_harness.h"

FIXTURE(bus) {
	int master, a, b;	/* members "a" and "b" */
	struct sockaddr_bus maddr, aaddr, baddr, ahandle, bhandle;
};

FIXTURE_SETUP(bus)
{
	char name[32];

	snprintf(name, sizeof(name), "socket.%d", getpid());
	self->master = bus_master(name, &self->maddr);
	ASSERT_LE(0, self->master);
	self->a = socket(AF_BUS, SOCK_DGRAM, 0);
	self->b = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->a, "a", &self->ahandle));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->b, "b", &self->bhandle));
	self->aaddr = bus_on(&self->maddr, "a");
	self->baddr = bus_on(&self->maddr, "b");
}

FIXTURE_TEARDOWN(bus)
{
	close(self->a);
	close(self->b);
	close(self->master);
}

/* Sends to @to without blocking until the queue refuses (errno set). */
static int fill(int fd, const struct sockaddr_bus *to)
{
	int n = 0;

	while (bus_send_str(fd, to, "fill", MSG_DONTWAIT) == 5)
		n++;
	return n;
}

struct delayed_read {
	pthread_t t;
	int fd, ms;
	ssize_t ret;
};

static void *delayed_read_main(void *p)
{
	struct delayed_read *d = p;
	char buf[64];

	usleep(d->ms * 1000);
	d->ret = recv(d->fd, buf, sizeof(buf), MSG_DONTWAIT);
	return NULL;
}

/*
 * a fills its master's queue: POLLOUT goes off; the master reads one
 * message 200 ms into a poll(): the poll wakes with POLLOUT.  The same
 * through an edge-triggered epoll.
 */
TEST_F(bus, pollout_follows_room_at_the_master_and_wakes)
{
	struct pollfd p = { .fd = self->a, .events = POLLOUT };
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLET }, out;
	struct delayed_read d = { .fd = self->master, .ms = 200 };
	long long t0;
	int n, ep;

	n = fill(self->a, &self->maddr);
	ASSERT_EQ(EAGAIN, errno);
	TH_LOG("%d messages queued at the master", n);
	ASSERT_LT(0, n);
	ASSERT_EQ(0, poll(&p, 1, 0));
	ASSERT_EQ(0, pthread_create(&d.t, NULL, delayed_read_main, &d));
	t0 = bus_now_ms();
	ASSERT_EQ(1, poll(&p, 1, 2000));
	pthread_join(d.t, NULL);
	ASSERT_LT(0, d.ret);
	ASSERT_TRUE(p.revents & POLLOUT);
	ASSERT_GT(1500, bus_now_ms() - t0);

	/* Full again; an edge-triggered epoll hears of the next read. */
	ASSERT_EQ(1, fill(self->a, &self->maddr));
	ep = epoll_create1(EPOLL_CLOEXEC);
	ASSERT_LE(0, ep);
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->a, &ev));
	ASSERT_EQ(0, epoll_wait(ep, &out, 1, 0));
	ASSERT_EQ(0, pthread_create(&d.t, NULL, delayed_read_main, &d));
	ASSERT_EQ(1, epoll_wait(ep, &out, 1, 2000));
	pthread_join(d.t, NULL);
	ASSERT_TRUE(out.events & EPOLLOUT);
	close(ep);
}

struct pingpong {
	int fd, n, edge;
	const struct sockaddr_bus *to;
	int sent, got, lost;
};

/* Sends one message at a time, each once the reader has the last. */
static void *pingpong_sender(void *p)
{
	struct pingpong *pp = p;
	int i;

	for (i = 0; i < pp->n && !__atomic_load_n(&pp->lost, __ATOMIC_ACQUIRE); i++) {
		while (__atomic_load_n(&pp->got, __ATOMIC_ACQUIRE) < i &&
		       !__atomic_load_n(&pp->lost, __ATOMIC_ACQUIRE))
			;
		if (bus_send_str(pp->fd, pp->to, "p", 0) != 2)
			break;
		__atomic_store_n(&pp->sent, i + 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/*
 * poll() reads the receive side without a lock: a message queued while
 * the reader is between registering and reading the mask must still wake
 * it.  A sender on the other vCPU sends the next message the moment the
 * reader has the last, so the two meet in that window again and again; a
 * missed wake-up is a poll that times out.  Then through an
 * edge-triggered epoll.
 */
TEST_F_TIMEOUT(bus, poll_without_a_lock_never_misses_a_message, 240)
{
	struct pingpong pp = { .fd = self->a, .to = &self->baddr, .n = 1000 };
	int round;

	for (round = 0; round < 2; round++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLET }, out;
		int ep = -1, i;
		pthread_t t;
		char buf[8];

		pp.edge = round;
		pp.sent = pp.got = pp.lost = 0;
		if (pp.edge) {
			ep = epoll_create1(EPOLL_CLOEXEC);
			ASSERT_LE(0, ep);
			ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->b, &ev));
		}
		ASSERT_EQ(0, pthread_create(&t, NULL, pingpong_sender, &pp));
		for (i = 0; i < pp.n; i++) {
			struct pollfd p = { .fd = self->b, .events = POLLIN };
			int r = pp.edge ? epoll_wait(ep, &out, 1, 5000) : poll(&p, 1, 5000);

			if (r != 1) {
				__atomic_store_n(&pp.lost, 1, __ATOMIC_RELEASE);
				break;
			}
			if (recv(self->b, buf, sizeof(buf), MSG_DONTWAIT) != 2) {
				/* Woken before the message landed: wait again. */
				i--;
				continue;
			}
			__atomic_store_n(&pp.got, i + 1, __ATOMIC_RELEASE);
		}
		pthread_join(t, NULL);
		if (ep >= 0)
			close(ep);
		ASSERT_EQ(0, pp.lost) TH_LOG("%s: no wake-up for message %d of %d",
					     pp.edge ? "epoll" : "poll", pp.got + 1, pp.n);
		ASSERT_EQ(pp.n, pp.got);
	}
}

struct drip {
	int fd, stop;
};

/* The master reads a message whenever there is one, until told. */
static void *drip_reader(void *p)
{
	struct drip *d = p;
	char buf[8];

	while (!__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE))
		recv(d->fd, buf, sizeof(buf), MSG_DONTWAIT);
	return NULL;
}

/*
 * POLLOUT of a member near its master's limit races the master's reads:
 * the member sends without blocking whenever poll says it may, and a
 * poll that says no must be woken by the next read.  Every message goes
 * through; a lost EPOLLOUT is a poll that times out.
 */
TEST_F_TIMEOUT(bus, pollout_racing_the_masters_reads_is_never_lost, 240)
{
	struct drip d = { .fd = self->master };
	struct pollfd p = { .fd = self->a, .events = POLLOUT };
	int n, sent = 0, want = 1000, eagain = 0;
	pthread_t t;

	n = fill(self->a, &self->maddr);
	ASSERT_LT(0, n);
	ASSERT_EQ(0, pthread_create(&t, NULL, drip_reader, &d));
	while (sent < want) {
		int r = poll(&p, 1, 5000);

		if (r != 1)
			break;
		if (bus_send_str(self->a, &self->maddr, "fill", MSG_DONTWAIT) == 5)
			sent++;
		else if (errno == EAGAIN)
			eagain++;
		else
			break;
	}
	__atomic_store_n(&d.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	TH_LOG("%d sent, %d EAGAIN after POLLOUT", sent, eagain);
	ASSERT_EQ(want, sent);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	alarms++;
}

struct blocked_send {
	pthread_t t;
	pid_t tid;
	int fd;
	struct sockaddr_bus to;
	ssize_t ret;
	int err, done;
};

static void *blocked_send_main(void *p)
{
	struct blocked_send *s = p;

	s->tid = gettid();
	s->ret = bus_send_str(s->fd, &s->to, "wait", 0);
	s->err = errno;
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * b's ring has one frame, full.  a's send blocks; SIGALRM (SA_RESTART)
 * interrupts it; b hands the frame back and polls: the send, restarted,
 * completes with its length.
 */
TEST_F(bus, a_signal_restarts_a_send_blocked_on_a_full_ring)
{
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	struct bus_ring_req req = { 4096, 1 };
	struct blocked_send s = { .fd = self->a, .to = self->baddr };
	struct pollfd p = { .fd = self->b, .events = POLLIN };
	struct bus_frame_hdr *h;
	int asleep, done_early;
	long long end;

	ASSERT_EQ(0, sigaction(SIGALRM, &sa, NULL));
	ASSERT_EQ(0, setsockopt(self->b, SOL_BUS, BUS_RX_RING, &req, sizeof(req)));
	h = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, self->b, 0);
	ASSERT_NE(MAP_FAILED, h);
	ASSERT_EQ(5, bus_send_str(self->a, &self->baddr, "full", MSG_DONTWAIT));
	ASSERT_EQ(BUS_FRAME_USER, __atomic_load_n(&h->status, __ATOMIC_ACQUIRE));
	ASSERT_EQ(0, pthread_create(&s.t, NULL, blocked_send_main, &s));
	while (!__atomic_load_n(&s.tid, __ATOMIC_RELAXED))
		usleep(1000);
	asleep = !bus_wait_asleep(s.tid, 2000);
	usleep(100000);
	pthread_kill(s.t, SIGALRM);
	usleep(300000);
	done_early = __atomic_load_n(&s.done, __ATOMIC_ACQUIRE);
	/* b hands the frame back and polls, as a ring reader does. */
	__atomic_store_n(&h->status, BUS_FRAME_KERNEL, __ATOMIC_RELEASE);
	poll(&p, 1, 0);
	end = bus_now_ms() + 2000;
	while (!__atomic_load_n(&s.done, __ATOMIC_ACQUIRE) && bus_now_ms() < end)
		usleep(5000);
	if (!s.done) {
		/* Do not leave it blocked: one more frame back ends it. */
		__atomic_store_n(&h->status, BUS_FRAME_KERNEL, __ATOMIC_RELEASE);
		poll(&p, 1, 0);
		usleep(200000);
	}
	TH_LOG("signals %d; done before the frame came back %d; returned %zd, errno %d (%s)",
	       (int)alarms, done_early, s.ret, s.err, strerror(s.err));
	if (s.done)
		pthread_join(s.t, NULL);
	ASSERT_TRUE(asleep);
	ASSERT_EQ(1, alarms);
	ASSERT_FALSE(done_early);
	ASSERT_TRUE(s.done);
	ASSERT_EQ(5, s.ret);
	/* The restarted send is in the frame. */
	ASSERT_EQ(BUS_FRAME_USER, __atomic_load_n(&h->status, __ATOMIC_ACQUIRE));
	ASSERT_STREQ("wait", (char *)h + h->data_offset);
	munmap(h, 4096);
}

struct blocked_recv {
	pthread_t t;
	pid_t tid;
	int fd;
	ssize_t ret;
	int err, done;
	long long at;
};

static void *blocked_recv_main(void *p)
{
	struct blocked_recv *r = p;
	char buf[64];

	r->tid = gettid();
	r->ret = recv(r->fd, buf, sizeof(buf), 0);
	r->err = errno;
	r->at = bus_now_ms();
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * b (a tiny SO_RCVBUF, a match grant) blocks in recvmsg on an empty
 * queue with a 3 s timeout; a multicasts a message too large for b's
 * queue, a counted drop: b's recvmsg returns ENOBUFS at once.
 */
TEST_F(bus, a_blocked_reader_wakes_with_enobufs_on_a_drop)
{
	struct timeval tv = { 3, 0 };
	struct sockaddr_bus mc = self->maddr;
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))], buf[8];
	static char big[16384];
	struct blocked_recv r = { .fd = self->b };
	socklen_t len = sizeof(__u32);
	int small = 1, asleep;
	__u32 drops = 0;
	long long sent;
	size_t off = 0;

	memset(mc.sbus_addr, 0, sizeof(mc.sbus_addr));
	mc.sbus_addr[0] = 1;
	mc.sbus_addr_ncomp = 1;
	mc.sbus_path[BUS_PATH_MAX - 1] = BUS_MULTICAST_MARK;
	bus_cmsg_add(ctl, &off, SCM_MULTICAST_MATCH, &mc);
	ASSERT_EQ(1, bus_send(self->master, &self->bhandle, "g", 1, ctl, off, 0));
	ASSERT_EQ(1, recv(self->b, buf, sizeof(buf), 0));
	ASSERT_EQ(0, setsockopt(self->b, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)));
	ASSERT_EQ(0, setsockopt(self->b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	ASSERT_EQ(0, pthread_create(&r.t, NULL, blocked_recv_main, &r));
	while (!__atomic_load_n(&r.tid, __ATOMIC_RELAXED))
		usleep(1000);
	asleep = !bus_wait_asleep(r.tid, 2000);
	usleep(100000);
	sent = bus_now_ms();
	ASSERT_EQ(sizeof(big), bus_send(self->a, &mc, big, sizeof(big), NULL, 0, 0));
	pthread_join(r.t, NULL);
	ASSERT_EQ(0, getsockopt(self->b, SOL_BUS, BUS_DROPS, &drops, &len));
	TH_LOG("recvmsg returned %zd, errno %d (%s), %lld ms after the send; drops %u", r.ret,
	       r.err, strerror(r.err), r.at - sent, drops);
	ASSERT_TRUE(asleep);
	ASSERT_EQ(1, drops);
	ASSERT_EQ(-1, r.ret);
	ASSERT_EQ(ENOBUFS, r.err);
	ASSERT_GT(1000, r.at - sent);
}

/* The "sockets" column of the AF_BUS line of /proc/net/protocols. */
static long proto_sockets(void)
{
	char line[512], name[64];
	long n = -1, v;
	FILE *f = fopen("/proc/net/protocols", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %*d %ld", name, &v) == 2 && !strcmp(name, "AF_BUS"))
			n = v;
	if (f)
		fclose(f);
	return n;
}

TEST_F(bus, proc_net_protocols_counts_the_sockets)
{
	long before = proto_sockets(), opened, closed;
	int fds[3], i;

	for (i = 0; i < 3; i++)
		fds[i] = socket(AF_BUS, SOCK_DGRAM, 0);
	opened = proto_sockets();
	for (i = 0; i < 3; i++)
		close(fds[i]);
	closed = proto_sockets();
	TH_LOG("AF_BUS sockets in /proc/net/protocols: %ld, %ld with 3 more, %ld closed",
	       before, opened, closed);
	ASSERT_LE(3, before);
	ASSERT_EQ(before + 3, opened);
	ASSERT_EQ(before, closed);
}

TEST_F(bus, fionread_and_siocoutq)
{
	static char msg[100];
	int n = -1;

	ASSERT_EQ(0, ioctl(self->b, FIONREAD, &n));
	ASSERT_EQ(0, n);
	ASSERT_EQ(100, bus_send(self->a, &self->baddr, msg, sizeof(msg), NULL, 0, 0));
	ASSERT_EQ(3, bus_send_str(self->a, &self->baddr, "hi", 0));
	n = -1;
	ASSERT_EQ(0, ioctl(self->b, SIOCINQ, &n));
	ASSERT_EQ(100, n);
	ASSERT_EQ(100, recv(self->b, msg, sizeof(msg), 0));
	n = -1;
	ASSERT_EQ(0, ioctl(self->b, FIONREAD, &n));
	ASSERT_EQ(3, n);
	ASSERT_EQ(3, recv(self->b, msg, sizeof(msg), 0));
	n = -1;
	ASSERT_EQ(0, ioctl(self->b, FIONREAD, &n));
	ASSERT_EQ(0, n);

	/* What a sent and its master has not read is a's, in SIOCOUTQ. */
	n = -1;
	ASSERT_EQ(0, ioctl(self->a, SIOCOUTQ, &n));
	ASSERT_EQ(0, n);
	ASSERT_EQ(100, bus_send(self->a, &self->maddr, msg, sizeof(msg), NULL, 0, 0));
	n = -1;
	ASSERT_EQ(0, ioctl(self->a, SIOCOUTQ, &n));
	ASSERT_LT(0, n);
	ASSERT_EQ(100, recv(self->master, msg, sizeof(msg), 0));
	n = -1;
	ASSERT_EQ(0, ioctl(self->a, SIOCOUTQ, &n));
	ASSERT_EQ(0, n);
}

/* An endpoint's SO_PEERCRED: the master's process, bound in a child. */
TEST_F(bus, so_peercred_of_an_endpoint_is_its_master)
{
	struct ucred cred = { 0 };
	socklen_t len = sizeof(cred);
	struct sockaddr_bus maddr;
	int up[2], down[2], fd, status;
	char name[32], c;
	pid_t pid;

	snprintf(name, sizeof(name), "peercred.%d", getpid());
	ASSERT_EQ(0, pipe(up));
	ASSERT_EQ(0, pipe(down));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int m;

		if (setresgid(1234, 1234, 1234))
			_exit(1);
		m = bus_master(name, &maddr);
		if (m < 0 || write(up[1], "r", 1) != 1 || read(down[0], &c, 1) != 1)
			_exit(1);
		_exit(0);
	}
	ASSERT_EQ(1, read(up[0], &c, 1));
	maddr = bus_addr_abstract(name, "master");
	fd = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(6, bus_send_str(fd, &maddr, "hello", 0));
	ASSERT_EQ(0, getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len));
	ASSERT_EQ(1, write(down[1], "x", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	close(fd);
	TH_LOG("SO_PEERCRED pid %d uid %d gid %d (master: pid %d uid 0 gid 1234)", cred.pid,
	       cred.uid, cred.gid, pid);
	ASSERT_EQ(sizeof(cred), len);
	ASSERT_EQ(pid, cred.pid);
	ASSERT_EQ(0, cred.uid);
	ASSERT_EQ(1234, cred.gid);
}

TEST_F(bus, o_async_raises_sigio)
{
	struct timespec ts = { 1, 0 };
	sigset_t set, old;
	siginfo_t info;

	sigemptyset(&set);
	sigaddset(&set, SIGIO);
	ASSERT_EQ(0, sigprocmask(SIG_BLOCK, &set, &old));
	ASSERT_EQ(0, fcntl(self->b, F_SETOWN, getpid()));
	ASSERT_EQ(0, fcntl(self->b, F_SETFL, fcntl(self->b, F_GETFL) | O_ASYNC));
	ASSERT_EQ(5, bus_send_str(self->a, &self->baddr, "ping", 0));
	ASSERT_EQ(SIGIO, sigtimedwait(&set, &info, &ts));
	sigprocmask(SIG_SETMASK, &old, NULL);
}

struct overflow_race {
	int fd;
	int armed;		/* the reader's round about to receive */
	int stop;
	int rounds, enobufs, missed;
};

static void *overflow_reader(void *p)
{
	struct overflow_race *r = p;
	char buf[64];
	int i;

	for (i = 1; !__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE); i++) {
		__atomic_store_n(&r->armed, i, __ATOMIC_RELEASE);
		if (recv(r->fd, buf, sizeof(buf), 0) < 0 && errno == ENOBUFS)
			r->enobufs++;
		else
			r->missed++;
		r->rounds = i;
	}
	return NULL;
}

/*
 * The same as a race, for 2 s: each round, a drop lands while b's reader
 * enters recvmsg (SO_RCVTIMEO 200 ms).  Every round must end in ENOBUFS;
 * a wake-up lost between the reader's check and its sleep shows as a
 * time-out.  (Statistical: it may pass on a module with the window.)
 */
TEST_F(bus, no_overflow_wakeup_is_lost_to_a_racing_reader)
{
	struct timeval tv = { 0, 200000 };
	struct sockaddr_bus mc = self->maddr;
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))], buf[8];
	static char big[16384];
	struct overflow_race r = { .fd = self->b };
	long long end = bus_now_ms() + 2000;
	int small = 1, i, spin;
	pthread_t t;
	size_t off = 0;

	memset(mc.sbus_addr, 0, sizeof(mc.sbus_addr));
	mc.sbus_addr[0] = 1;
	mc.sbus_addr_ncomp = 1;
	mc.sbus_path[BUS_PATH_MAX - 1] = BUS_MULTICAST_MARK;
	bus_cmsg_add(ctl, &off, SCM_MULTICAST_MATCH, &mc);
	ASSERT_EQ(1, bus_send(self->master, &self->bhandle, "g", 1, ctl, off, 0));
	ASSERT_EQ(1, recv(self->b, buf, sizeof(buf), 0));
	ASSERT_EQ(0, setsockopt(self->b, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)));
	ASSERT_EQ(0, setsockopt(self->b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	ASSERT_EQ(0, pthread_create(&t, NULL, overflow_reader, &r));
	for (i = 1; bus_now_ms() < end; i++) {
		while (__atomic_load_n(&r.armed, __ATOMIC_ACQUIRE) < i)
			;
		/* A varying head start for the reader, a few microseconds. */
		for (spin = 0; spin < (i * 37) % 4000; spin++)
			__asm__ __volatile__("" ::: "memory");
		if (bus_send(self->a, &mc, big, sizeof(big), NULL, 0, 0) != sizeof(big))
			break;
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	bus_send(self->a, &mc, big, sizeof(big), NULL, 0, 0);
	pthread_join(t, NULL);
	TH_LOG("%d rounds: %d ENOBUFS, %d timed out", r.rounds, r.enobufs, r.missed);
	ASSERT_LT(0, r.rounds);
	ASSERT_EQ(0, r.missed);
}

TEST_HARNESS_MAIN
