// SPDX-License-Identifier: GPL-2.0
/*
 * The one-copy receive ring (BUS_RX_RING + mmap) and memfd payloads:
 * round trips byte for byte, order across senders, geometry and mmap
 * errors, backpressure and counted drops, mixing with SCM_RIGHTS, and
 * teardown with the ring mapped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/bus.h>
#include <linux/filter.h>
#include "bus_test.h"
#include "bus_stall.h"
#include "kselftest_harness.h"

#define FS 2048
#define NR 8

struct ring {
	char *mem;
	unsigned int fs, nr, next;
	int fd;
};

static int ring_setup(int fd, struct ring *r, unsigned int fs, unsigned int nr)
{
	struct bus_ring_req req = { fs, nr };

	if (setsockopt(fd, SOL_BUS, BUS_RX_RING, &req, sizeof(req)))
		return -1;
	r->mem = mmap(NULL, (size_t)fs * nr, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r->mem == MAP_FAILED)
		return -1;
	r->fs = fs;
	r->nr = nr;
	r->next = 0;
	r->fd = fd;
	return 0;
}

static struct bus_frame_hdr *frame(struct ring *r, unsigned int i)
{
	return (struct bus_frame_hdr *)(r->mem + (size_t)i * r->fs);
}

/* The next frame if the reader owns it, else NULL (acquire). */
static struct bus_frame_hdr *ring_peek(struct ring *r)
{
	struct bus_frame_hdr *h = frame(r, r->next);

	if (__atomic_load_n(&h->status, __ATOMIC_ACQUIRE) != BUS_FRAME_USER)
		return NULL;
	return h;
}

/*
 * Hands the current frame back and moves on; when a sender waits for the
 * frame, poll()s so that the kernel wakes it (the protocol of bus.h).
 */
static void ring_release(struct ring *r)
{
	struct pollfd p = { .fd = r->fd, .events = POLLIN };

	if (bus_frame_release(frame(r, r->next)))
		poll(&p, 1, 0);
	r->next = (r->next + 1) % r->nr;
}

/* Waits (poll) for the next frame. */
static struct bus_frame_hdr *ring_wait(int fd, struct ring *r, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct bus_frame_hdr *h;

	while (!(h = ring_peek(r)))
		if (poll(&p, 1, ms) <= 0)
			return NULL;
	return h;
}

FIXTURE(bus) {
	int master, s, r;
	struct sockaddr_bus maddr, saddr, raddr;
	struct ring ring;
};

FIXTURE_SETUP(bus)
{
	self->master = bus_master("ring", &self->maddr);
	ASSERT_LE(0, self->master);
	self->s = socket(AF_BUS, SOCK_DGRAM, 0);
	self->r = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->s, "sender", NULL));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->r, "reader", NULL));
	self->saddr = bus_on(&self->maddr, "sender");
	self->raddr = bus_on(&self->maddr, "reader");
	memset(&self->ring, 0, sizeof(self->ring));
}

FIXTURE_TEARDOWN(bus)
{
	if (self->ring.mem)
		munmap(self->ring.mem, (size_t)self->ring.fs * self->ring.nr);
	close(self->s);
	close(self->r);
	close(self->master);
}

TEST_F(bus, round_trips_from_empty_to_the_frame_limit)
{
	size_t sizes[] = { 0, 1, 7, 100, 1000, FS - sizeof(struct bus_frame_hdr) };
	static char out[FS], in[FS];
	unsigned int i, k;

	ASSERT_EQ(0, ring_setup(self->r, &self->ring, FS, NR));
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct bus_frame_hdr *h;

		for (k = 0; k < sizes[i]; k++)
			out[k] = (char)(i * 31 + k * 7);
		ASSERT_EQ(sizes[i], bus_send(self->s, &self->raddr, out, sizes[i], NULL, 0, 0));
		h = ring_wait(self->r, &self->ring, 2000);
		ASSERT_NE(NULL, h);
		ASSERT_EQ(sizes[i], h->len);
		ASSERT_EQ(sizeof(struct bus_frame_hdr), h->data_offset);
		ASSERT_EQ(0, h->flags);
		memcpy(in, (char *)h + h->data_offset, h->len);
		ASSERT_EQ(0, memcmp(in, out, sizes[i]));
		ASSERT_TRUE(bus_addr_eq(&self->saddr, &h->src));
		ASSERT_TRUE(bus_addr_eq(&self->raddr, &h->dst));
		ASSERT_EQ(getpid(), h->pid);
		ASSERT_EQ(getuid(), h->uid);
		ASSERT_EQ(getgid(), h->gid);
		ring_release(&self->ring);
	}
	/* Nothing went through the ordinary queue. */
	{
		char buf[8];

		errno = 0;
		ASSERT_EQ(-1, recv(self->r, buf, sizeof(buf), MSG_DONTWAIT));
		ASSERT_EQ(EAGAIN, errno);
	}
}

TEST_F(bus, oversize_emsgsize)
{
	static char big[FS];

	ASSERT_EQ(0, ring_setup(self->r, &self->ring, FS, NR));
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->s, &self->raddr, big,
			       FS - sizeof(struct bus_frame_hdr) + 1, NULL, 0, 0));
	ASSERT_EQ(EMSGSIZE, errno);
}

TEST_F(bus, geometry_errors_einval)
{
	struct bus_ring_req bad[] = {
		{ 2047, 8 },		/* not a multiple of 16 */
		{ 288, 64 },		/* no room for a payload */
		{ 2048, 0 },		/* no frame */
		{ 2048, 3 },		/* not whole pages */
		{ 1 << 20, 65 },	/* larger than 64 MiB */
		{ 0xfffffff0, 0xffffffff },
	};
	struct bus_ring_req ok = { FS, NR };
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		EXPECT_EQ(-1, setsockopt(self->r, SOL_BUS, BUS_RX_RING, &bad[i], sizeof(bad[i])));
		EXPECT_EQ(EINVAL, errno);
	}
	errno = 0;
	ASSERT_EQ(-1, setsockopt(self->r, SOL_BUS, BUS_RX_RING, &ok, 4));
	ASSERT_EQ(EINVAL, errno);
}

TEST_F(bus, mmap_errors_einval)
{
	struct bus_ring_req req = { FS, NR };
	void *p;

	/* No ring yet. */
	errno = 0;
	ASSERT_EQ(MAP_FAILED, mmap(NULL, FS * NR, PROT_READ, MAP_SHARED, self->r, 0));
	ASSERT_EQ(EINVAL, errno);
	ASSERT_EQ(0, setsockopt(self->r, SOL_BUS, BUS_RX_RING, &req, sizeof(req)));
	errno = 0;
	ASSERT_EQ(MAP_FAILED, mmap(NULL, FS * NR / 2, PROT_READ, MAP_SHARED, self->r, 0));
	ASSERT_EQ(EINVAL, errno);
	errno = 0;
	ASSERT_EQ(MAP_FAILED, mmap(NULL, FS * NR * 2, PROT_READ, MAP_SHARED, self->r, 0));
	ASSERT_EQ(EINVAL, errno);
	errno = 0;
	ASSERT_EQ(MAP_FAILED, mmap(NULL, FS * NR, PROT_READ, MAP_SHARED, self->r, 4096));
	ASSERT_EQ(EINVAL, errno);
	p = mmap(NULL, FS * NR, PROT_READ | PROT_WRITE, MAP_SHARED, self->r, 0);
	ASSERT_NE(MAP_FAILED, p);
	munmap(p, FS * NR);
}

TEST_F(bus, replacing_a_mapped_ring_ebusy)
{
	struct bus_ring_req other = { 4096, 4 }, none = { 0, 0 };

	ASSERT_EQ(0, ring_setup(self->r, &self->ring, FS, NR));
	errno = 0;
	ASSERT_EQ(-1, setsockopt(self->r, SOL_BUS, BUS_RX_RING, &other, sizeof(other)));
	ASSERT_EQ(EBUSY, errno);
	errno = 0;
	ASSERT_EQ(-1, setsockopt(self->r, SOL_BUS, BUS_RX_RING, &none, sizeof(none)));
	ASSERT_EQ(EBUSY, errno);
	munmap(self->ring.mem, FS * NR);
	self->ring.mem = NULL;
	/* Unmapped: replaced, then removed; messages use the queue again. */
	ASSERT_EQ(0, setsockopt(self->r, SOL_BUS, BUS_RX_RING, &other, sizeof(other)));
	ASSERT_EQ(0, setsockopt(self->r, SOL_BUS, BUS_RX_RING, &none, sizeof(none)));
	ASSERT_EQ(2, bus_send_str(self->s, &self->raddr, "q", 0));
	{
		char buf[4];

		ASSERT_EQ(2, recv(self->r, buf, sizeof(buf), 0));
	}
}

/* One sender (one user) may fill half of the ring: its share. */
TEST_F(bus, full_ring_blocks_or_eagain)
{
	struct timeval tv = { 0, 200000 };
	int i;

	ASSERT_EQ(0, ring_setup(self->r, &self->ring, FS, NR));
	for (i = 0; i < NR / 2; i++)
		ASSERT_EQ(2, bus_send_str(self->s, &self->raddr, "f", MSG_DONTWAIT));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->s, &self->raddr, "f", MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
	ASSERT_EQ(0, setsockopt(self->s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->s, &self->raddr, "f", 0));
	ASSERT_EQ(EAGAIN, errno);
	/* A frame handed back makes room for exactly one. */
	ASSERT_NE(NULL, ring_peek(&self->ring));
	ring_release(&self->ring);
	ASSERT_EQ(2, bus_send_str(self->s, &self->raddr, "g", MSG_DONTWAIT));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->s, &self->raddr, "h", MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
}

struct reader_arg {
	int fd;
	struct ring *ring;
	int count;
};

static void *slow_reader(void *p)
{
	struct reader_arg *a = p;
	int i;

	usleep(200000);
	for (i = 0; i < a->count; i++) {
		if (!ring_wait(a->fd, a->ring, 5000))
			break;
		ring_release(a->ring);
	}
	return NULL;
}

TEST_F(bus, blocked_sender_resumes_when_frames_come_back)
{
	struct reader_arg a = { self->r, &self->ring, NR / 2 + 1 };
	pthread_t t;
	int i;

	ASSERT_EQ(0, ring_setup(self->r, &self->ring, FS, NR));
	for (i = 0; i < NR / 2; i++)
		ASSERT_EQ(2, bus_send_str(self->s, &self->raddr, "f", 0));
	ASSERT_EQ(0, pthread_create(&t, NULL, slow_reader, &a));
	ASSERT_EQ(5, bus_send_str(self->s, &self->raddr, "last", 0));
	pthread_join(t, NULL);
}

struct waiting_sender {
	int fd;
	struct sockaddr_bus dst;
	pid_t tid;
	int ret, done;
};

static void *waiting_send(void *p)
{
	struct waiting_sender *w = p;

	__atomic_store_n(&w->tid, gettid(), __ATOMIC_RELEASE);
	w->ret = bus_send_str(w->fd, &w->dst, "last", 0);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Starts @w's send in @t and waits until it sleeps; 0 or -1. */
static int waiting_send_start(struct waiting_sender *w, pthread_t *t)
{
	long long end = bus_now_ms() + 2000;

	if (pthread_create(t, NULL, waiting_send, w))
		return -1;
	while (!__atomic_load_n(&w->tid, __ATOMIC_ACQUIRE) && bus_now_ms() < end)
		usleep(1000);
	return bus_wait_asleep(w->tid, 2000);
}

/* Waits up to 5 s for @w's send to end, joins it, returns what it sent. */
static int waiting_send_end(struct waiting_sender *w, pthread_t t)
{
	long long end = bus_now_ms() + 5000;

	while (!__atomic_load_n(&w->done, __ATOMIC_ACQUIRE) && bus_now_ms() < end)
		usleep(1000);
	if (!__atomic_load_n(&w->done, __ATOMIC_ACQUIRE))
		return -1;
	pthread_join(t, NULL);
	return w->ret;
}

/*
 * A sender waiting for a frame marks the oldest frame the reader holds
 * and sleeps with no timer: a frame handed back without a call leaves it
 * asleep (the module used to look again every 50 ms), the reader's poll
 * wakes it.
 */
TEST_F(bus, a_waiting_sender_marks_the_frame_and_only_the_reader_wakes_it)
{
	struct waiting_sender w = { .fd = self->s, .dst = self->raddr };
	struct pollfd p = { .fd = self->r, .events = POLLIN };
	struct bus_frame_hdr *h;
	pthread_t t;
	int i;

	ASSERT_EQ(0, ring_setup(self->r, &self->ring, FS, NR));
	/* The sender's share is half of the ring. */
	for (i = 0; i < NR / 2; i++)
		ASSERT_EQ(2, bus_send_str(self->s, &self->raddr, "f", 0));
	h = frame(&self->ring, 0);
	ASSERT_EQ(0, __atomic_load_n(&h->waiting, __ATOMIC_ACQUIRE));
	ASSERT_EQ(0, waiting_send_start(&w, &t));
	/* The oldest frame it waits for says so; the others do not. */
	ASSERT_NE(0, __atomic_load_n(&h->waiting, __ATOMIC_ACQUIRE));
	ASSERT_EQ(0, __atomic_load_n(&frame(&self->ring, 1)->waiting, __ATOMIC_ACQUIRE));
	/* Handed back by a reader that makes no call: nothing looks. */
	__atomic_store_n(&h->status, BUS_FRAME_KERNEL, __ATOMIC_SEQ_CST);
	usleep(500000);
	ASSERT_EQ(0, __atomic_load_n(&w.done, __ATOMIC_ACQUIRE));
	/* The reader's poll wakes it. */
	ASSERT_EQ(1, poll(&p, 1, 0));
	ASSERT_EQ(5, waiting_send_end(&w, t));
	/* The next frame in the ring holds it, with no mark. */
	h = frame(&self->ring, NR / 2);
	ASSERT_EQ(BUS_FRAME_USER, __atomic_load_n(&h->status, __ATOMIC_ACQUIRE));
	ASSERT_EQ(0, h->waiting);
	ASSERT_STREQ("last", (char *)h + h->data_offset);
}

/* bus_frame_release() tells the reader when a sender waits. */
TEST_F(bus, bus_frame_release_says_when_to_poll)
{
	struct waiting_sender w = { .fd = self->s, .dst = self->raddr };
	pthread_t t;
	int i;

	ASSERT_EQ(0, ring_setup(self->r, &self->ring, FS, NR));
	for (i = 0; i < NR / 2; i++)
		ASSERT_EQ(2, bus_send_str(self->s, &self->raddr, "f", 0));
	/* Nobody waits: no call needed. */
	ASSERT_NE(NULL, ring_peek(&self->ring));
	ASSERT_EQ(0, bus_frame_release(frame(&self->ring, 0)));
	self->ring.next = 1;
	ASSERT_EQ(2, bus_send_str(self->s, &self->raddr, "g", 0));
	ASSERT_EQ(0, waiting_send_start(&w, &t));
	ASSERT_NE(NULL, ring_peek(&self->ring));
	ASSERT_NE(0, bus_frame_release(frame(&self->ring, 1)));
	ASSERT_EQ(0, __atomic_load_n(&w.done, __ATOMIC_ACQUIRE));
	ASSERT_EQ(1, poll(&(struct pollfd){ .fd = self->r, .events = POLLIN }, 1, 0));
	ASSERT_EQ(5, waiting_send_end(&w, t));
}

/* Removing the ring wakes a sender waiting for one of its frames. */
TEST_F(bus, removing_the_ring_wakes_a_waiting_sender)
{
	struct waiting_sender w = { .fd = self->s, .dst = self->raddr };
	struct bus_ring_req none = { 0, 0 };
	char buf[8];
	pthread_t t;
	int i;

	ASSERT_EQ(0, ring_setup(self->r, &self->ring, FS, NR));
	for (i = 0; i < NR / 2; i++)
		ASSERT_EQ(2, bus_send_str(self->s, &self->raddr, "f", 0));
	ASSERT_EQ(0, waiting_send_start(&w, &t));
	ASSERT_EQ(0, munmap(self->ring.mem, (size_t)FS * NR));
	self->ring.mem = NULL;
	ASSERT_EQ(0, setsockopt(self->r, SOL_BUS, BUS_RX_RING, &none, sizeof(none)));
	/* It goes to the queue now, which has room. */
	ASSERT_EQ(5, waiting_send_end(&w, t));
	ASSERT_EQ(5, recv(self->r, buf, sizeof(buf), MSG_DONTWAIT));
	ASSERT_STREQ("last", buf);
}

struct pollout_wait {
	int fd, ms, ret;
	pid_t tid;
	short revents;
};

static void *pollout_wait_main(void *p)
{
	struct pollout_wait *pw = p;
	struct pollfd pf = { .fd = pw->fd, .events = POLLOUT };

	__atomic_store_n(&pw->tid, gettid(), __ATOMIC_RELEASE);
	pw->ret = poll(&pf, 1, pw->ms);
	pw->revents = pf.revents;
	return NULL;
}

/*
 * A member whose master's ring is full polls for POLLOUT; the master's
 * reader hands a frame back and polls, as bus.h says: the member wakes.
 */
TEST_F(bus, a_member_polling_a_full_ring_master_wakes_when_a_frame_comes_back)
{
	struct pollout_wait pw = { .fd = self->s, .ms = 5000 };
	struct pollfd mp = { .fd = self->master, .events = POLLIN };
	struct pollfd sp = { .fd = self->s, .events = POLLOUT };
	struct bus_frame_hdr *h;
	long long t0;
	pthread_t t;
	int n = 0;

	ASSERT_EQ(0, ring_setup(self->master, &self->ring, FS, NR));
	while (bus_send_str(self->s, &self->maddr, "req", MSG_DONTWAIT) == 4)
		n++;
	ASSERT_EQ(EAGAIN, errno);
	ASSERT_LT(0, n);
	ASSERT_EQ(0, poll(&sp, 1, 0));
	ASSERT_EQ(0, pthread_create(&t, NULL, pollout_wait_main, &pw));
	while (!__atomic_load_n(&pw.tid, __ATOMIC_ACQUIRE))
		usleep(1000);
	/* Asleep in poll() before the frame comes back. */
	ASSERT_EQ(0, bus_wait_asleep(pw.tid, 2000));
	usleep(100000);
	/* The master reads its first frame and hands it back. */
	h = ring_peek(&self->ring);
	ASSERT_NE(NULL, h);
	bus_frame_release(h);
	self->ring.next = 1;
	t0 = bus_now_ms();
	ASSERT_EQ(1, poll(&mp, 1, 0));
	pthread_join(t, NULL);
	ASSERT_EQ(1, pw.ret);
	ASSERT_TRUE(pw.revents & POLLOUT);
	/* Woken by the reader's poll, not found at the end of its timeout. */
	ASSERT_GT(2000, bus_now_ms() - t0);
	ASSERT_EQ(4, bus_send_str(self->s, &self->maddr, "req", MSG_DONTWAIT));
}

TEST_F(bus, order_is_kept_across_many_senders)
{
	enum { SENDERS = 4, MSGS = 200 };
	int fds[SENDERS], next[SENDERS] = { 0 }, i, status, total = 0;
	pid_t pids[SENDERS];

	ASSERT_EQ(0, ring_setup(self->r, &self->ring, FS, NR));
	for (i = 0; i < SENDERS; i++) {
		char name[8];

		snprintf(name, sizeof(name), "w%d", i);
		fds[i] = socket(AF_BUS, SOCK_DGRAM, 0);
		ASSERT_EQ(0, bus_join(self->master, &self->maddr, fds[i], name, NULL));
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (pids[i] == 0) {
			int k;

			for (k = 0; k < MSGS; k++) {
				int rec[2] = { i, k };

				if (bus_send(fds[i], &self->raddr, rec, sizeof(rec), NULL, 0, 0) != sizeof(rec))
					_exit(1);
			}
			_exit(0);
		}
	}
	while (total < SENDERS * MSGS) {
		struct bus_frame_hdr *h = ring_wait(self->r, &self->ring, 5000);
		int rec[2];

		ASSERT_NE(NULL, h);
		ASSERT_EQ(sizeof(rec), h->len);
		memcpy(rec, (char *)h + h->data_offset, sizeof(rec));
		ASSERT_EQ(next[rec[0]], rec[1]);
		next[rec[0]]++;
		total++;
		ring_release(&self->ring);
	}
	for (i = 0; i < SENDERS; i++) {
		ASSERT_EQ(pids[i], waitpid(pids[i], &status, 0));
		ASSERT_EQ(0, WEXITSTATUS(status));
		close(fds[i]);
	}
}

/* The multicast bitmap 0x1 of the bus, granted as a match to the reader. */
static struct sockaddr_bus match_one(struct __test_metadata *_metadata, int master,
				     const struct sockaddr_bus *maddr, int reader)
{
	struct sockaddr_bus m = *maddr, h = bus_on(maddr, "reader");
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))], buf[8];
	size_t off = 0;

	memset(m.sbus_addr, 0, sizeof(m.sbus_addr));
	m.sbus_addr[0] = 1;
	m.sbus_addr_ncomp = 1;
	m.sbus_path[BUS_PATH_MAX - 1] = '*';
	bus_cmsg_add(ctl, &off, SCM_MULTICAST_MATCH, &m);
	EXPECT_EQ(1, bus_send(master, &h, "g", 1, ctl, off, 0));
	EXPECT_EQ(1, recv(reader, buf, sizeof(buf), 0));
	return m;
}

TEST_F(bus, multicast_to_a_full_ring_is_a_counted_drop)
{
	struct sockaddr_bus m = match_one(_metadata, self->master, &self->maddr, self->r);
	char buf[8];
	__u32 drops = 0;
	socklen_t len = sizeof(drops);
	static char big[FS];
	int i;

	ASSERT_EQ(0, ring_setup(self->r, &self->ring, FS, NR));
	/* The sender's share of the ring is half of it: the rest drop. */
	for (i = 0; i < NR + 3; i++)
		ASSERT_EQ(2, bus_send_str(self->s, &m, "m", 0));
	/* Oversized for a frame: dropped and counted too. */
	ASSERT_EQ(FS, bus_send(self->s, &m, big, FS, NULL, 0, 0));
	ASSERT_EQ(0, getsockopt(self->r, SOL_BUS, BUS_DROPS, &drops, &len));
	ASSERT_EQ(NR / 2 + 4, drops);
	errno = 0;
	ASSERT_EQ(-1, recv(self->r, buf, sizeof(buf), MSG_DONTWAIT));
	ASSERT_EQ(ENOBUFS, errno);
	for (i = 0; i < NR / 2; i++) {
		struct bus_frame_hdr *f = ring_peek(&self->ring);

		ASSERT_NE(NULL, f);
		ASSERT_EQ(BUS_FRAME_F_MULTICAST, f->flags);
		ASSERT_TRUE(bus_addr_eq(&m, &f->dst));
		ring_release(&self->ring);
	}
	ASSERT_EQ(NULL, ring_peek(&self->ring));
}

TEST_F(bus, rights_go_through_the_queue_poll_reports_both)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct cmsghdr *c = (struct cmsghdr *)ctl;
	struct pollfd p = { .fd = self->r, .events = POLLIN };
	struct bus_msg m;
	int pipefd[2];

	ASSERT_EQ(0, ring_setup(self->r, &self->ring, FS, NR));
	ASSERT_EQ(0, pipe(pipefd));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &pipefd[0], sizeof(int));
	ASSERT_EQ(0, poll(&p, 1, 0));
	ASSERT_EQ(3, bus_send(self->s, &self->raddr, "fd", 3, ctl, sizeof(ctl), 0));
	ASSERT_EQ(1, poll(&p, 1, 0));
	/* Its place in the ring: a frame saying it waits in the queue. */
	ASSERT_NE(NULL, ring_peek(&self->ring));
	ASSERT_EQ(BUS_FRAME_F_QUEUED, ring_peek(&self->ring)->flags);
	ASSERT_EQ(0, ring_peek(&self->ring)->len);
	ring_release(&self->ring);
	ASSERT_EQ(3, bus_recv(self->r, &m, 0));
	ASSERT_EQ(1, m.nfds);
	close(m.fds[0]);
	ASSERT_EQ(0, poll(&p, 1, 0));
	ASSERT_EQ(5, bus_send_str(self->s, &self->raddr, "ring", 0));
	ASSERT_EQ(1, poll(&p, 1, 0));
	ASSERT_NE(NULL, ring_peek(&self->ring));
	ring_release(&self->ring);
	close(pipefd[0]);
	close(pipefd[1]);
}

TEST_F(bus, close_with_the_ring_mapped)
{
	struct bus_frame_hdr *h;

	ASSERT_EQ(0, ring_setup(self->r, &self->ring, FS, NR));
	ASSERT_EQ(6, bus_send_str(self->s, &self->raddr, "still", 0));
	close(self->r);
	/* The mapping outlives the socket. */
	h = ring_peek(&self->ring);
	ASSERT_NE(NULL, h);
	ASSERT_STREQ("still", (char *)h + h->data_offset);
	self->r = socket(AF_BUS, SOCK_DGRAM, 0);
}

TEST_F(bus, blocked_sender_when_the_reader_unmaps_and_closes)
{
	int status, i;
	pid_t pid;

	ASSERT_EQ(0, ring_setup(self->r, &self->ring, FS, NR));
	for (i = 0; i < NR / 2; i++)
		ASSERT_EQ(2, bus_send_str(self->s, &self->raddr, "f", 0));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* Only the parent holds the reader open (a mapping holds its
		 * file too).
		 */
		munmap(self->ring.mem, FS * NR);
		close(self->r);
		if (bus_send_str(self->s, &self->raddr, "blocked", 0) != -1)
			_exit(1);
		_exit(errno == EHOSTUNREACH ? 0 : 2);
	}
	usleep(200000);
	munmap(self->ring.mem, FS * NR);
	self->ring.mem = NULL;
	usleep(100000);
	close(self->r);
	self->r = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, WEXITSTATUS(status));
}

TEST_F(bus, process_exit_with_the_ring_mapped)
{
	int status;
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct ring r;
		int fd = socket(AF_BUS, SOCK_DGRAM, 0);

		if (bus_join(self->master, &self->maddr, fd, "child", NULL))
			_exit(1);
		if (ring_setup(fd, &r, FS, NR))
			_exit(2);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, WEXITSTATUS(status));
}

/* Keeps messages starting with "KEY1". */
static int attach_key1_filter(int fd)
{
	struct sock_filter code[] = {
		{ BPF_LD | BPF_W | BPF_ABS, 0, 0, 0 },
		{ BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0x4b455931 },
		{ BPF_RET | BPF_K, 0, 0, 0xffffffff },
		{ BPF_RET | BPF_K, 0, 0, 0 },
	};
	struct sock_fprog prog = { 4, code };

	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog));
}

TEST_F(bus, a_filter_runs_before_the_ring_for_unicast_and_multicast)
{
	struct sockaddr_bus m = match_one(_metadata, self->master, &self->maddr, self->r);
	struct pollfd p = { .fd = self->r, .events = POLLIN };
	struct bus_frame_hdr *f;

	ASSERT_EQ(0, ring_setup(self->r, &self->ring, FS, NR));
	ASSERT_EQ(0, attach_key1_filter(self->r));

	ASSERT_EQ(5, bus_send(self->s, &self->raddr, "KEY2", 5, NULL, 0, 0));
	ASSERT_EQ(5, bus_send(self->s, &m, "KEY2", 5, NULL, 0, 0));
	ASSERT_EQ(0, poll(&p, 1, 200));
	ASSERT_EQ(NULL, ring_peek(&self->ring));

	ASSERT_EQ(5, bus_send(self->s, &self->raddr, "KEY1", 5, NULL, 0, 0));
	ASSERT_EQ(5, bus_send(self->s, &m, "KEY1", 5, NULL, 0, 0));
	f = ring_wait(self->r, &self->ring, 2000);
	ASSERT_NE(NULL, f);
	ASSERT_EQ(0, f->flags);
	ASSERT_STREQ("KEY1", (char *)f + f->data_offset);
	ASSERT_TRUE(bus_addr_eq(&self->saddr, &f->src));
	ring_release(&self->ring);
	f = ring_wait(self->r, &self->ring, 2000);
	ASSERT_NE(NULL, f);
	ASSERT_EQ(BUS_FRAME_F_MULTICAST, f->flags);
	ASSERT_TRUE(bus_addr_eq(&m, &f->dst));
	ring_release(&self->ring);
	ASSERT_EQ(NULL, ring_peek(&self->ring));
}

/* A 64 MiB sealed memfd: the payload that is never copied at all. */
TEST_F(bus, sixty_four_mib_sealed_memfd)
{
	const size_t size = 64 << 20;
	char ctl[CMSG_SPACE(sizeof(int))];
	struct cmsghdr *c = (struct cmsghdr *)ctl;
	unsigned long long sum = 0, check = 0;
	int mfd = memfd_create("big", MFD_ALLOW_SEALING), seals;
	struct bus_msg m;
	unsigned int *p;
	size_t i;

	ASSERT_LE(0, mfd);
	ASSERT_EQ(0, ftruncate(mfd, size));
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, p);
	for (i = 0; i < size / 4; i += 1024) {
		p[i] = i * 2654435761u;
		sum += p[i];
	}
	munmap(p, size);
	ASSERT_EQ(0, fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &mfd, sizeof(int));
	ASSERT_EQ(4, bus_send(self->s, &self->raddr, "big", 4, ctl, sizeof(ctl), 0));
	close(mfd);

	ASSERT_EQ(4, bus_recv(self->r, &m, 0));
	ASSERT_EQ(1, m.nfds);
	/* The receiver checks the seals before trusting the contents. */
	seals = fcntl(m.fds[0], F_GET_SEALS);
	ASSERT_EQ(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL, seals);
	ASSERT_EQ(-1, ftruncate(m.fds[0], 0));
	ASSERT_EQ(EPERM, errno);
	p = mmap(NULL, size, PROT_READ, MAP_SHARED, m.fds[0], 0);
	ASSERT_NE(MAP_FAILED, p);
	for (i = 0; i < size / 4; i += 1024)
		check += p[i];
	ASSERT_EQ(sum, check);
	/* Writable mappings are refused by the seal. */
	ASSERT_EQ(MAP_FAILED, mmap(NULL, size, PROT_WRITE, MAP_SHARED, m.fds[0], 0));
	munmap(p, size);
	close(m.fds[0]);
}

/*
 * Order per sender holds across the ring and the queue: a message with a
 * file (queued) then a plain one (ring).  Frame 0 stands for the queued
 * message (BUS_FRAME_F_QUEUED, no payload, its source), frame 1 holds
 * the plain one, and recvmsg() gives the first with its file.
 */
TEST_F(bus, a_queued_message_keeps_its_place_in_the_ring)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct cmsghdr *c = (struct cmsghdr *)ctl;
	int mfd = memfd_create("one", 0);
	struct bus_frame_hdr *h;
	struct bus_msg m;

	ASSERT_LE(0, mfd);
	ASSERT_EQ(0, ring_setup(self->r, &self->ring, FS, NR));
	memset(ctl, 0, sizeof(ctl));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &mfd, sizeof(int));
	ASSERT_EQ(4, bus_send(self->s, &self->raddr, "one", 4, ctl, sizeof(ctl), 0));
	ASSERT_EQ(4, bus_send_str(self->s, &self->raddr, "two", 0));
	close(mfd);

	h = ring_wait(self->r, &self->ring, 2000);
	ASSERT_NE(NULL, h);
	TH_LOG("frame 0: flags %#x len %u \"%.*s\"", h->flags, h->len, (int)MIN(h->len, 8u),
	       (char *)h + h->data_offset);
	ASSERT_EQ(BUS_FRAME_F_QUEUED, h->flags & BUS_FRAME_F_QUEUED);
	ASSERT_EQ(0, h->len);
	ASSERT_TRUE(bus_addr_eq(&self->saddr, &h->src));
	ring_release(&self->ring);
	ASSERT_EQ(4, bus_recv(self->r, &m, MSG_DONTWAIT));
	ASSERT_STREQ("one", m.data);
	ASSERT_EQ(1, m.nfds);
	close(m.fds[0]);
	h = ring_wait(self->r, &self->ring, 2000);
	ASSERT_NE(NULL, h);
	ASSERT_EQ(0, h->flags);
	ASSERT_EQ(4, h->len);
	ASSERT_STREQ("two", (char *)h + h->data_offset);
	ring_release(&self->ring);
}

/* A member of the bus whose socket was made by @uid ("u<uid>"). */
static int member_as(struct __test_metadata *_metadata, int master,
		     const struct sockaddr_bus *maddr, uid_t uid)
{
	char name[16];
	int fd;

	snprintf(name, sizeof(name), "u%u", uid);
	EXPECT_EQ(0, seteuid(uid));
	fd = socket(AF_BUS, SOCK_DGRAM, 0);
	EXPECT_EQ(0, seteuid(0));
	EXPECT_EQ(0, bus_join(master, maddr, fd, name, NULL));
	return fd;
}

/* Sends to @to without blocking until refused, in a child as @uid: the
 * count, or -1 unless the refusal was EAGAIN.
 */
static int fill_ring_as(int fd, const struct sockaddr_bus *to, uid_t uid)
{
	int status, n = 0;
	pid_t pid = fork();

	if (pid == 0) {
		if (setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
			_exit(255);
		while (bus_send_str(fd, to, "fill", MSG_DONTWAIT) == 5)
			n++;
		_exit(errno == EAGAIN ? n : 255);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) == 255)
		return -1;
	return WEXITSTATUS(status);
}

/*
 * The ring obeys the fairness rule of the queue: into a 16-frame ring
 * that is never handed back, one user gets 8 frames, the next 4, the
 * next 2.
 */
TEST_F(bus, one_user_cannot_fill_another_users_ring)
{
	int a = member_as(_metadata, self->master, &self->maddr, 1001);
	int b = member_as(_metadata, self->master, &self->maddr, 1002);
	int c = member_as(_metadata, self->master, &self->maddr, 1003);
	int na, nb, nc;

	ASSERT_EQ(0, ring_setup(self->r, &self->ring, 4096, 16));
	na = fill_ring_as(a, &self->raddr, 1001);
	nb = fill_ring_as(b, &self->raddr, 1002);
	nc = fill_ring_as(c, &self->raddr, 1003);
	TH_LOG("frames taken: uid 1001 %d, uid 1002 %d, uid 1003 %d", na, nb, nc);
	close(a);
	close(b);
	close(c);
	ASSERT_EQ(8, na);
	ASSERT_EQ(4, nb);
	ASSERT_EQ(2, nc);
}

TEST_HARNESS_MAIN
