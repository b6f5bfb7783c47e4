// SPDX-License-Identifier: GPL-2.0
/*
 * Receives and sends racing what they must not race:
 *
 * - MSG_PEEK against a plain recvmsg() of messages carrying many files:
 *   every message is received once, in order, with its files (receives
 *   are serialised per socket); a receive that fails does not consume;
 * - a unicast whose copy from the sender stalls (userfaultfd) while its
 *   address moves to another member (revoked and granted, or moved in
 *   one step with SCM_MOVE_ADDR), or its receiver closes: it goes to
 *   the owner at the time it is queued;
 * - sends to an address that SCM_MOVE_ADDR moves back and forth from
 *   another thread: each finds an owner, and lands once;
 * - a ring sender whose copy stalls does not hide later frames nor pin
 *   the ring;
 * - multicasts against the master filing, taking out and re-filing
 *   D-Bus-shaped match grants (under pairs that move with the counts of
 *   bits held) and members with grants leaving: a grant that stays
 *   keeps every message, one that never matches gets none.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <linux/bus.h>
#include "bus_test.h"
#include "bus_stall.h"
#include "kselftest_harness.h"

FIXTURE(bus) {
	int master, a, b, s;	/* members owning "x", "b" and "s" */
	struct sockaddr_bus maddr, xaddr, baddr, ahandle, bhandle;
};

FIXTURE_SETUP(bus)
{
	struct timeval tv = { 1, 0 };
	char name[32];

	snprintf(name, sizeof(name), "races.%d", getpid());
	self->master = bus_master(name, &self->maddr);
	ASSERT_LE(0, self->master);
	self->a = socket(AF_BUS, SOCK_DGRAM, 0);
	self->b = socket(AF_BUS, SOCK_DGRAM, 0);
	self->s = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->a, "x", &self->ahandle));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->b, "b", &self->bhandle));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->s, "s", NULL));
	self->xaddr = bus_on(&self->maddr, "x");
	self->baddr = bus_on(&self->maddr, "b");
	ASSERT_EQ(0, setsockopt(self->master, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	ASSERT_EQ(0, setsockopt(self->a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	ASSERT_EQ(0, setsockopt(self->b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
}

FIXTURE_TEARDOWN(bus)
{
	close(self->s);
	close(self->b);
	if (self->a >= 0)
		close(self->a);
	close(self->master);
}

#define NFDS 200

/* Closes the SCM_RIGHTS files of @h; returns how many there were. */
static int close_rights(struct msghdr *h)
{
	struct cmsghdr *c;
	int n = 0, i, fd;

	for (c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (i = 0; i < (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)); i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			close(fd);
			n++;
		}
	}
	return n;
}

struct peek_race {
	int fd;
	int stop;
	int next;		/* the sequence number the reader expects */
	int out_of_order, bad_files, timed_out, peeks;
};

static void *peeker(void *p)
{
	struct peek_race *r = p;

	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus)) + CMSG_SPACE(4 * sizeof(int))];
		int seq;
		struct iovec iov = { &seq, sizeof(seq) };
		struct msghdr h = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl, .msg_controllen = sizeof(ctl),
		};

		if (recvmsg(r->fd, &h, MSG_PEEK | MSG_DONTWAIT) >= 0) {
			close_rights(&h);
			r->peeks++;
		}
	}
	return NULL;
}

static void *reader(void *p)
{
	struct peek_race *r = p;

	for (;;) {
		/* SCM_DST_ADDR, then room for one file (two, on 64-bit). */
		char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus)) + CMSG_SPACE(sizeof(int))];
		int seq;
		struct iovec iov = { &seq, sizeof(seq) };
		struct msghdr h = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl, .msg_controllen = sizeof(ctl),
		};

		if (recvmsg(r->fd, &h, 0) != sizeof(seq)) {
			r->timed_out = 1;
			break;
		}
		if (seq < 0)
			break;
		if (seq != r->next)
			r->out_of_order++;
		r->next = seq + 1;
		/* As many files as the control buffer has room for (two, on
		 * 64-bit: CMSG_SPACE rounds up), the rest closed by the kernel.
		 */
		if (close_rights(&h) !=
		    (int)((CMSG_SPACE(sizeof(int)) - sizeof(struct cmsghdr)) / sizeof(int)))
			r->bad_files++;
	}
	return NULL;
}

/*
 * The master sends messages carrying 200 files each for 1.5 s while one
 * thread of the receiver peeks (room for 4 files) and another receives
 * (room for one file, which is two on 64-bit).  Every message is received
 * once, in order, with as many files as fit.  (A module that lets the
 * peek duplicate the files that the receive frees shows KASAN's
 * use-after-free here.)
 */
TEST_F(bus, peek_and_receive_with_rights_race_safely)
{
	struct rlimit nofile = { 65536, 65536 };
	struct timeval tv = { 3, 0 };
	struct peek_race r = { .fd = self->b };
	char ctl[CMSG_SPACE(NFDS * sizeof(int))];
	struct cmsghdr *c = (struct cmsghdr *)ctl;
	int null = open("/dev/null", O_RDONLY), i, seq, sent = 0, send_err = 0;
	pthread_t tp, tr;
	long long end;

	ASSERT_LE(0, null);
	ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &nofile));
	ASSERT_EQ(0, setsockopt(self->b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	memset(ctl, 0, sizeof(ctl));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(NFDS * sizeof(int));
	for (i = 0; i < NFDS; i++)
		memcpy(CMSG_DATA(c) + i * sizeof(int), &null, sizeof(int));
	ASSERT_EQ(0, pthread_create(&tp, NULL, peeker, &r));
	ASSERT_EQ(0, pthread_create(&tr, NULL, reader, &r));
	end = bus_now_ms() + 1500;
	for (seq = 0; bus_now_ms() < end; seq++) {
		ssize_t n;

		do {
			n = bus_send(self->master, &self->baddr, &seq, sizeof(seq), ctl,
				     sizeof(ctl), 0);
			/* Files in flight past the limit: let the reader catch up. */
		} while (n < 0 && errno == ETOOMANYREFS && !usleep(1000));
		if (n != sizeof(seq)) {
			send_err = errno;
			break;
		}
		sent++;
	}
	seq = -1;
	EXPECT_EQ(sizeof(seq), bus_send(self->master, &self->baddr, &seq, sizeof(seq), NULL,
					0, 0));
	pthread_join(tr, NULL);
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
	pthread_join(tp, NULL);
	close(null);
	TH_LOG("%d messages of %d files sent, %d received, %d peeks", sent, NFDS, r.next,
	       r.peeks);
	ASSERT_EQ(0, send_err);
	ASSERT_LT(0, sent);
	ASSERT_EQ(0, r.timed_out);
	ASSERT_EQ(0, r.out_of_order);
	ASSERT_EQ(0, r.bad_files);
	ASSERT_EQ(sent, r.next);
}

/* A receive into memory that is not mapped fails and leaves the message. */
TEST_F(bus, a_failed_receive_does_not_consume)
{
	void *bad = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iovec iov = { bad, 64 };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct bus_msg m;

	ASSERT_NE(MAP_FAILED, bad);
	ASSERT_EQ(5, bus_send_str(self->master, &self->baddr, "keep", 0));
	errno = 0;
	ASSERT_EQ(-1, recvmsg(self->b, &h, MSG_DONTWAIT));
	ASSERT_EQ(EFAULT, errno);
	munmap(bad, 4096);
	ASSERT_EQ(5, bus_recv(self->b, &m, MSG_DONTWAIT));
	ASSERT_STREQ("keep", m.data);
}

/* A send from @u's stalled page, in a thread. */
struct stalled_send {
	pthread_t t;
	int fd;
	struct sockaddr_bus to;
	struct bus_uffd *u;
	size_t len;
	ssize_t ret;
	int err, done;
};

static void *stalled_send_main(void *p)
{
	struct stalled_send *s = p;

	s->ret = bus_send(s->fd, &s->to, s->u->mem, s->len, NULL, 0, 0);
	s->err = errno;
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int stalled_send_wait(struct stalled_send *s, int ms)
{
	long long end = bus_now_ms() + ms;

	while (!__atomic_load_n(&s->done, __ATOMIC_ACQUIRE) && bus_now_ms() < end)
		usleep(5000);
	return __atomic_load_n(&s->done, __ATOMIC_ACQUIRE);
}

/* The master sends @type of @a to the endpoint @to, which reads it. */
static int grant(int master, const struct sockaddr_bus *to, int fd, int type,
		 const struct sockaddr_bus *a)
{
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))], buf[8];
	size_t off = 0;

	bus_cmsg_add(ctl, &off, type, a);
	if (bus_send(master, to, "g", 1, ctl, off, 0) != 1)
		return -1;
	return recv(fd, buf, sizeof(buf), 0) == 1 ? 0 : -1;
}

/*
 * s sends to "x" (owned by a) from a page whose copy stalls; meanwhile
 * the master revokes "x" from a, which reads the revoke, and grants it
 * to b.  Once the copy completes the message goes to b, not to a.
 */
TEST_F(bus, an_address_moved_during_the_copy_is_routed_at_queueing)
{
	struct stalled_send st = { .fd = self->s, .to = self->xaddr, .len = 16 };
	int faulted, revoked, granted, done;
	struct bus_uffd u;
	struct bus_msg m;
	ssize_t got_b, got_a;
	int err_a;

	ASSERT_EQ(0, bus_uffd_setup(&u, 4096));
	st.u = &u;
	ASSERT_EQ(0, pthread_create(&st.t, NULL, stalled_send_main, &st));
	faulted = !bus_uffd_wait_fault(&u, 3000);
	revoked = !grant(self->master, &self->ahandle, self->a, SCM_REVOKE_ADDR, &self->xaddr);
	granted = !grant(self->master, &self->bhandle, self->b, SCM_OWNED_ADDR, &self->xaddr);
	bus_uffd_fill(&u, "routed", 7);
	done = stalled_send_wait(&st, 3000);
	bus_uffd_close(&u);
	if (done)
		pthread_join(st.t, NULL);
	got_b = bus_recv(self->b, &m, 0);
	errno = 0;
	got_a = recv(self->a, m.data, sizeof(m.data), MSG_DONTWAIT);
	err_a = errno;
	TH_LOG("send returned %zd (errno %d); b got %zd, a got %zd (errno %d)", st.ret, st.err,
	       got_b, got_a, err_a);
	ASSERT_TRUE(faulted);
	ASSERT_TRUE(revoked);
	ASSERT_TRUE(granted);
	ASSERT_TRUE(done);
	ASSERT_EQ(16, st.ret);
	ASSERT_EQ(16, got_b);
	ASSERT_STREQ("routed", m.data);
	ASSERT_TRUE(bus_addr_eq(&self->xaddr, bus_msg_cmsg(&m, SCM_DST_ADDR)));
	ASSERT_EQ(-1, got_a);
	ASSERT_EQ(EAGAIN, err_a);
}

/* The same, with "x" moved from a to b in one step (SCM_MOVE_ADDR). */
TEST_F(bus, an_address_moved_in_one_step_during_the_copy_is_routed_at_queueing)
{
	struct stalled_send st = { .fd = self->s, .to = self->xaddr, .len = 16 };
	int faulted, moved, done;
	struct bus_uffd u;
	struct bus_msg m;
	ssize_t got_b, got_a;
	int err_a;

	ASSERT_EQ(0, bus_uffd_setup(&u, 4096));
	st.u = &u;
	ASSERT_EQ(0, pthread_create(&st.t, NULL, stalled_send_main, &st));
	faulted = !bus_uffd_wait_fault(&u, 3000);
	moved = !grant(self->master, &self->bhandle, self->b, SCM_MOVE_ADDR, &self->xaddr);
	bus_uffd_fill(&u, "routed", 7);
	done = stalled_send_wait(&st, 3000);
	bus_uffd_close(&u);
	if (done)
		pthread_join(st.t, NULL);
	got_b = bus_recv(self->b, &m, 0);
	errno = 0;
	got_a = recv(self->a, m.data, sizeof(m.data), MSG_DONTWAIT);
	err_a = errno;
	TH_LOG("send returned %zd (errno %d); b got %zd, a got %zd (errno %d)", st.ret, st.err,
	       got_b, got_a, err_a);
	ASSERT_TRUE(faulted);
	ASSERT_TRUE(moved);
	ASSERT_TRUE(done);
	ASSERT_EQ(16, st.ret);
	ASSERT_EQ(16, got_b);
	ASSERT_EQ(-1, got_a);
	ASSERT_EQ(EAGAIN, err_a);
}

struct mover {
	int master, rounds, err;
	struct sockaddr_bus to[2], x;
};

/* Moves "x" to b, a, b, ... without reading the grant messages. */
static void *mover_main(void *p)
{
	struct mover *mv = p;
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
	int i;

	for (i = 0; i < mv->rounds; i++) {
		size_t off = 0;

		bus_cmsg_add(ctl, &off, SCM_MOVE_ADDR, &mv->x);
		if (bus_send(mv->master, &mv->to[(i + 1) % 2], "g", 1, ctl, off, 0) != 1) {
			mv->err = errno;
			break;
		}
	}
	return NULL;
}

struct drain {
	int fd, stop;
	long got, grants;
};

/* Counts the 16-byte messages and the grants @fd receives until stopped. */
static void *drain_main(void *p)
{
	struct drain *d = p;
	char buf[64];

	for (;;) {
		ssize_t n = recv(d->fd, buf, sizeof(buf), 0);

		if (n == 16)
			__atomic_add_fetch(&d->got, 1, __ATOMIC_RELEASE);
		else if (n == 1)
			d->grants++;
		else if (__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE))
			break;	/* SO_RCVTIMEO (1 s) with nothing left */
	}
	return NULL;
}

#define MOVE_SENDS 2000
#define MOVE_ROUNDS 400

/*
 * The master moves "x" between a and b while s sends to it, each on its
 * own thread (two vCPUs): no send finds "x" unowned, and every message
 * is received once, by a or by b.
 */
TEST_F(bus, sends_race_an_address_moving_between_members)
{
	struct mover mv = { .master = self->master, .rounds = MOVE_ROUNDS,
			    .to = { self->ahandle, self->bhandle }, .x = self->xaddr };
	struct drain da = { .fd = self->a }, db = { .fd = self->b };
	pthread_t tm, ta, tb;
	char payload[16] = "racing";
	int i, failed = 0, err = 0;

	ASSERT_EQ(0, pthread_create(&ta, NULL, drain_main, &da));
	ASSERT_EQ(0, pthread_create(&tb, NULL, drain_main, &db));
	ASSERT_EQ(0, pthread_create(&tm, NULL, mover_main, &mv));
	for (i = 0; i < MOVE_SENDS; i++) {
		if (bus_send(self->s, &self->xaddr, payload, 16, NULL, 0, 0) != 16) {
			failed++;
			err = errno;
		}
	}
	pthread_join(tm, NULL);
	__atomic_store_n(&da.stop, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&db.stop, 1, __ATOMIC_RELEASE);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	TH_LOG("a got %ld (+%ld grants), b got %ld (+%ld grants); %d sends failed (errno %d)",
	       da.got, da.grants, db.got, db.grants, failed, err);
	ASSERT_EQ(0, mv.err);
	ASSERT_EQ(0, failed);
	ASSERT_EQ(MOVE_SENDS, da.got + db.got);
	ASSERT_EQ(MOVE_ROUNDS, da.grants + db.grants);
}

/*
 * The same with the receiver gone: a closes while the copy stalls and
 * the master grants "x" to b.  The send succeeds and b has the message.
 */
TEST_F(bus, a_receiver_closed_during_the_copy_is_routed_at_queueing)
{
	struct stalled_send st = { .fd = self->s, .to = self->xaddr, .len = 16 };
	int faulted, granted, done;
	struct bus_uffd u;
	struct bus_msg m;
	ssize_t got_b;

	ASSERT_EQ(0, bus_uffd_setup(&u, 4096));
	st.u = &u;
	ASSERT_EQ(0, pthread_create(&st.t, NULL, stalled_send_main, &st));
	faulted = !bus_uffd_wait_fault(&u, 3000);
	close(self->a);
	self->a = -1;
	/* The master hears that a is gone (and "x" released). */
	bus_recv(self->master, &m, 0);
	granted = !grant(self->master, &self->bhandle, self->b, SCM_OWNED_ADDR, &self->xaddr);
	bus_uffd_fill(&u, "routed", 7);
	done = stalled_send_wait(&st, 3000);
	bus_uffd_close(&u);
	if (done)
		pthread_join(st.t, NULL);
	got_b = bus_recv(self->b, &m, 0);
	TH_LOG("send returned %zd (errno %d: %s); b got %zd", st.ret, st.err, strerror(st.err),
	       got_b);
	ASSERT_TRUE(faulted);
	ASSERT_TRUE(granted);
	ASSERT_TRUE(done);
	ASSERT_EQ(16, st.ret);
	ASSERT_EQ(16, got_b);
	ASSERT_STREQ("routed", m.data);
}

#define RFS 4096
#define RNR 16

static struct bus_frame_hdr *rframe(char *ring, int i)
{
	return (struct bus_frame_hdr *)(ring + (size_t)i * RFS);
}

/* A published frame of @ring holding the string @s, or NULL. */
static struct bus_frame_hdr *ring_find(char *ring, const char *s)
{
	int i;

	for (i = 0; i < RNR; i++) {
		struct bus_frame_hdr *h = rframe(ring, i);

		if (__atomic_load_n(&h->status, __ATOMIC_ACQUIRE) == BUS_FRAME_USER &&
		    h->len == strlen(s) + 1 && !memcmp((char *)h + h->data_offset, s, h->len))
			return h;
	}
	return NULL;
}

static struct bus_frame_hdr *ring_find_wait(int fd, char *ring, const char *s, int ms)
{
	long long end = bus_now_ms() + ms;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct bus_frame_hdr *h;

	while (!(h = ring_find(ring, s)) && bus_now_ms() < end)
		poll(&p, 1, 10);
	return h;
}

/*
 * b has a ring.  s sends to it from a page whose copy stalls; then a
 * sends "second": b sees "second" published within 1 s, and can unmap
 * and replace its ring while s is stalled.  Once the copy completes,
 * s's message arrives (in the ring or the queue).
 */
TEST_F(bus, a_stalled_ring_copy_hides_no_frame_and_pins_no_ring)
{
	struct stalled_send st = { .fd = self->s, .to = self->baddr, .len = 6 };
	struct bus_ring_req req = { RFS, RNR };
	int faulted, second_seen, replaced, replace_err = 0, done, first_seen = 0;
	struct bus_uffd u;
	char *ring, *ring2 = MAP_FAILED;
	ssize_t second;
	long long end;

	ASSERT_EQ(0, setsockopt(self->b, SOL_BUS, BUS_RX_RING, &req, sizeof(req)));
	ring = mmap(NULL, RFS * RNR, PROT_READ | PROT_WRITE, MAP_SHARED, self->b, 0);
	ASSERT_NE(MAP_FAILED, ring);
	ASSERT_EQ(0, bus_uffd_setup(&u, 4096));
	st.u = &u;
	ASSERT_EQ(0, pthread_create(&st.t, NULL, stalled_send_main, &st));
	faulted = !bus_uffd_wait_fault(&u, 3000);
	second = bus_send_str(self->a, &self->baddr, "second", MSG_DONTWAIT);
	second_seen = !!ring_find_wait(self->b, ring, "second", 1000);
	munmap(ring, RFS * RNR);
	replaced = !setsockopt(self->b, SOL_BUS, BUS_RX_RING, &req, sizeof(req));
	if (replaced)
		ring2 = mmap(NULL, RFS * RNR, PROT_READ | PROT_WRITE, MAP_SHARED, self->b, 0);
	else
		replace_err = errno;
	bus_uffd_fill(&u, "first", 6);
	done = stalled_send_wait(&st, 3000);
	bus_uffd_close(&u);
	if (done)
		pthread_join(st.t, NULL);
	end = bus_now_ms() + 2000;
	while (!first_seen && bus_now_ms() < end) {
		char buf[16];

		if (ring2 != MAP_FAILED && ring_find(ring2, "first"))
			first_seen = 1;
		else if (recv(self->b, buf, sizeof(buf), MSG_DONTWAIT) == 6 &&
			 !strcmp(buf, "first"))
			first_seen = 1;
		else
			usleep(10000);
	}
	if (ring2 != MAP_FAILED)
		munmap(ring2, RFS * RNR);
	TH_LOG("\"second\" sent %zd, published %d; ring replaced %d (errno %d); the stalled "
	       "send returned %zd, its message seen %d", second, second_seen, replaced,
	       replace_err, st.ret, first_seen);
	ASSERT_TRUE(faulted);
	ASSERT_EQ(7, second);
	ASSERT_TRUE(second_seen);
	ASSERT_TRUE(replaced);
	ASSERT_NE(MAP_FAILED, ring2);
	ASSERT_TRUE(done);
	ASSERT_EQ(6, st.ret);
	ASSERT_TRUE(first_seen);
}

/* A multicast address on @bus with the bits @bits of 512 set. */
static struct sockaddr_bus mcast_bits(const struct sockaddr_bus *bus, const int *bits, int n)
{
	struct sockaddr_bus a = *bus;
	__u64 m[8] = { 0 };
	int i;

	for (i = 0; i < n; i++)
		m[bits[i] / 64] |= 1ULL << (bits[i] % 64);
	memset(a.sbus_addr, 0, sizeof(a.sbus_addr));
	memcpy(a.sbus_addr, m, sizeof(m));
	a.sbus_addr_ncomp = 8;
	a.sbus_path[BUS_PATH_MAX - 1] = '*';
	return a;
}

/* The bits every rule below shares: one interface and member. */
static const int shared_bits[8] = { 17, 66, 130, 199, 260, 333, 401, 477 };

/* Rule @i: the shared bits and two of its own below 500, which no
 * message below has (they set the shared bits and 500-511).
 */
static struct sockaddr_bus churn_rule(const struct sockaddr_bus *bus, int i)
{
	int bits[10], k, j;

	memcpy(bits, shared_bits, sizeof(shared_bits));
	bits[8] = (i * 7) % 499;
	bits[9] = (i * 13 + 3) % 499;
	/* Shared bits are never adjacent: the next bit is the rule's own. */
	for (k = 8; k < 10; k++)
		for (j = 0; j < 8; j++)
			if (bits[k] == shared_bits[j])
				bits[k]++;
	return mcast_bits(bus, bits, 10);
}

struct churn {
	int master, filler, rounds, err, done;
	struct sockaddr_bus maddr, fh;
};

/*
 * Grants rules 0..15 to the filler, takes out the even ones, grants
 * 16..31, takes out those even and 1, 3, ... 15, ...: each filing sees
 * other counts of bits held, and the filler never holds more than 24
 * (max_matches is 64).  Every 8th round a member joins, is granted a
 * rule and closes.
 */
static void *churn_main(void *p)
{
	struct churn *c = p;
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))], buf[256];
	struct sockaddr_bus a, h;
	int r, i, next = 0;

	for (r = 0; r < c->rounds && !c->err; r++) {
		for (i = 0; i < 16; i++) {
			a = churn_rule(&c->maddr, next + i);
			if (grant(c->master, &c->fh, c->filler, SCM_MULTICAST_MATCH, &a))
				c->err = errno ? errno : EIO;
		}
		/* This round's even rules go, and the last round's odd ones. */
		for (i = 0; i < 16; i++) {
			if (i % 2 && r == 0)
				continue;
			a = churn_rule(&c->maddr, next + i - (i % 2) * 16);
			if (grant(c->master, &c->fh, c->filler, SCM_MULTICAST_UNMATCH, &a))
				c->err = errno ? errno : EIO;
		}
		next += 16;
		if (r % 8 == 7) {
			int fd = socket(AF_BUS, SOCK_DGRAM, 0);
			size_t off = 0;

			if (bus_join(c->master, &c->maddr, fd, "leaver", &h)) {
				c->err = errno;
				break;
			}
			a = churn_rule(&c->maddr, next + 1000);
			bus_cmsg_add(ctl, &off, SCM_MULTICAST_MATCH, &a);
			if (bus_send(c->master, &h, "g", 1, ctl, off, 0) != 1 ||
			    recv(fd, buf, sizeof(buf), 0) != 1)
				c->err = errno ? errno : EIO;
			close(fd);
			/* Its leaving, told to the master. */
			if (recv(c->master, buf, sizeof(buf), 0) < 0)
				c->err = errno;
		}
	}
	/* Over, or stopped by an error (in c->err). */
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

#define CHURN_SENDS 3000
#define CHURN_ROUNDS 48

/*
 * s multicasts to the receiver's rule (shared bits and 500-503) while
 * the master churns the filler's grants and members come and go on
 * another vCPU: b has every message once; the filler a, whose rules
 * each hold a bit below 500 that no message has, has none.
 */
TEST_F(bus, multicasts_race_grants_filed_under_moving_pairs)
{
	struct churn c = { .master = self->master, .filler = self->a, .rounds = CHURN_ROUNDS,
			   .maddr = self->maddr, .fh = self->ahandle };
	int rx_bits[20], i, failed = 0, err = 0, big = 8 << 20;
	struct drain db = { .fd = self->b };
	struct sockaddr_bus rule, to;
	char payload[16] = "signal";
	pthread_t tc, tb;

	memcpy(rx_bits, shared_bits, sizeof(shared_bits));
	for (i = 0; i < 12; i++)
		rx_bits[8 + i] = 500 + i;
	rule = mcast_bits(&self->maddr, rx_bits, 12);	/* shared, 500-503 */
	ASSERT_EQ(0, grant(self->master, &self->bhandle, self->b, SCM_MULTICAST_MATCH, &rule));
	to = mcast_bits(&self->maddr, rx_bits, 20);	/* shared, 500-511 */
	ASSERT_EQ(0, setsockopt(self->b, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)));
	ASSERT_EQ(0, pthread_create(&tb, NULL, drain_main, &db));
	ASSERT_EQ(0, pthread_create(&tc, NULL, churn_main, &c));
	/* At least CHURN_SENDS, and on until the churn is over. */
	for (i = 0; i < CHURN_SENDS || !__atomic_load_n(&c.done, __ATOMIC_ACQUIRE); i++) {
		/* At most 64 ahead of b's reader: a multicast never waits for
		 * room (a copy without it is dropped), and the sender may hold
		 * half of b's 256 messages.
		 */
		long long end = bus_now_ms() + 2000;

		while (i - __atomic_load_n(&db.got, __ATOMIC_ACQUIRE) >= 64 &&
		       bus_now_ms() < end)
			usleep(200);
		if (bus_send(self->s, &to, payload, 16, NULL, 0, 0) != 16) {
			failed++;
			err = errno;
		}
	}
	pthread_join(tc, NULL);
	__atomic_store_n(&db.stop, 1, __ATOMIC_RELEASE);
	pthread_join(tb, NULL);
	TH_LOG("%d multicasts, b got %ld; %d sends failed (errno %d); churn errno %d", i, db.got,
	       failed, err, c.err);
	ASSERT_EQ(0, c.err);
	ASSERT_EQ(0, failed);
	ASSERT_EQ(i, db.got);
	/* The filler read its grants' messages: no multicast is left. */
	ASSERT_EQ(-1, recv(self->a, payload, sizeof(payload), MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
}

TEST_HARNESS_MAIN
