// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel notifications and teardown in every order: an endpoint closes
 * or is killed (BUS_NOTIFY_GONE), the master's queue overflows
 * (BUS_NOTIFY_OVERFLOW), the master closes (ECONNRESET, POLLHUP|POLLERR),
 * blocked senders and receivers, and re-creating a bus.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/bus.h>
#include "bus_test.h"
#include "kselftest_harness.h"

FIXTURE(bus) {
	int master, a, b;
	struct sockaddr_bus maddr, ah, bh, aaddr, baddr;
};

FIXTURE_SETUP(bus)
{
	self->master = bus_master("teardown", &self->maddr);
	ASSERT_LE(0, self->master);
	self->a = socket(AF_BUS, SOCK_DGRAM, 0);
	self->b = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->a, "a.svc", &self->ah));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->b, "b.svc", &self->bh));
	self->aaddr = bus_on(&self->maddr, "a.svc");
	self->baddr = bus_on(&self->maddr, "b.svc");
}

FIXTURE_TEARDOWN(bus)
{
	if (self->a >= 0)
		close(self->a);
	if (self->b >= 0)
		close(self->b);
	if (self->master >= 0)
		close(self->master);
}

/* Reads the next notification of @master and checks it is a GONE for
 * @handle followed by the addresses @addrs (NULL-terminated list).
 */
static int expect_gone(struct __test_metadata *_metadata, int master,
		       const struct sockaddr_bus *handle, const char **names)
{
	struct bus_msg m;
	struct bus_notification n;
	const struct sockaddr_bus *addrs;
	size_t count = 0;

	while (names[count])
		count++;
	EXPECT_EQ(sizeof(n) + (1 + count) * sizeof(struct sockaddr_bus),
		  bus_recv(master, &m, 0));
	/* From the kernel: ncomp 0, the bus path. */
	EXPECT_EQ(AF_BUS, m.name.sbus_family);
	EXPECT_EQ(0, m.name.sbus_addr_ncomp);
	EXPECT_EQ(0, memcmp(m.name.sbus_path, handle->sbus_path, BUS_PATH_MAX));
	memcpy(&n, m.data, sizeof(n));
	EXPECT_EQ(BUS_NOTIFY_GONE, n.type);
	EXPECT_EQ(sizeof(n), n.hdr_len);
	EXPECT_EQ(1 + count, n.count);
	addrs = (const struct sockaddr_bus *)(m.data + n.hdr_len);
	EXPECT_TRUE(bus_addr_eq(handle, &addrs[0]));
	for (size_t i = 0; i < count; i++) {
		struct sockaddr_bus want = bus_on(handle, names[i]);

		EXPECT_TRUE(bus_addr_eq(&want, &addrs[1 + i]));
	}
	return 0;
}

TEST_F(bus, endpoint_close_notifies_and_releases)
{
	const char *names[] = { "a.svc", NULL };
	struct bus_msg m;

	ASSERT_EQ(0, close(self->a));
	self->a = -1;
	expect_gone(_metadata, self->master, &self->ah, names);
	/* Released: unreachable by name and by handle. */
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->b, &self->aaddr, "x", 0));
	ASSERT_EQ(EHOSTUNREACH, errno);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->b, &self->ah, "x", 0));
	ASSERT_EQ(EHOSTUNREACH, errno);
	/* Nothing else for the master. */
	errno = 0;
	ASSERT_EQ(-1, bus_recv(self->master, &m, MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
}

TEST_F(bus, pending_endpoint_close_notifies_its_handle)
{
	const char *none[] = { NULL };
	int p = socket(AF_BUS, SOCK_DGRAM, 0);
	struct sockaddr_bus ph;

	ASSERT_EQ(0, bus_join(self->master, &self->maddr, p, NULL, &ph));
	close(p);
	expect_gone(_metadata, self->master, &ph, none);
}

TEST_F(bus, close_with_queued_messages_frees_them)
{
	const char *names[] = { "a.svc", NULL };
	int i;

	for (i = 0; i < 50; i++)
		ASSERT_EQ(2, bus_send_str(self->b, &self->aaddr, "q", 0));
	close(self->a);
	self->a = -1;
	expect_gone(_metadata, self->master, &self->ah, names);
}

TEST_F(bus, killed_process_mid_send_is_cleaned_up)
{
	const char *names[] = { "c.svc", NULL };
	struct sockaddr_bus ch;
	int status, c = socket(AF_BUS, SOCK_DGRAM, 0);
	pid_t pid;

	ASSERT_EQ(0, bus_join(self->master, &self->maddr, c, "c.svc", &ch));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(self->master);
		/* Blocks once b's queue is full. */
		for (;;)
			bus_send_str(c, &self->baddr, "flood", 0);
	}
	close(c);
	usleep(300000);
	kill(pid, SIGKILL);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status));
	expect_gone(_metadata, self->master, &ch, names);
	/* What it had queued is still b's to read, in order. */
	{
		struct bus_msg m;

		ASSERT_EQ(6, bus_recv(self->b, &m, MSG_DONTWAIT));
		ASSERT_STREQ("flood", m.data);
	}
}

struct blocked {
	int fd;
	const struct sockaddr_bus *to;
	int ret, err;
};

static void *blocked_send(void *p)
{
	struct blocked *b = p;

	b->ret = bus_send_str(b->fd, b->to, "blocked", 0);
	b->err = errno;
	return NULL;
}

static void *blocked_recv(void *p)
{
	struct blocked *b = p;
	char buf[16];

	b->ret = recv(b->fd, buf, sizeof(buf), 0);
	b->err = errno;
	return NULL;
}

TEST_F(bus, blocked_sender_fails_when_the_receiver_closes)
{
	struct blocked bl = { self->a, &self->baddr, 0, 0 };
	pthread_t t;

	while (bus_send_str(self->a, &self->baddr, "f", MSG_DONTWAIT) > 0)
		;
	ASSERT_EQ(0, pthread_create(&t, NULL, blocked_send, &bl));
	usleep(200000);
	close(self->b);
	self->b = -1;
	pthread_join(t, NULL);
	ASSERT_EQ(-1, bl.ret);
	ASSERT_EQ(EHOSTUNREACH, bl.err);
}

TEST_F(bus, master_close_kills_the_bus)
{
	struct pollfd p = { .events = POLLIN | POLLOUT };
	char buf[16];

	/* Something queued for b, which the bus death frees. */
	ASSERT_EQ(2, bus_send_str(self->a, &self->baddr, "q", 0));
	close(self->master);
	self->master = -1;

	p.fd = self->b;
	ASSERT_EQ(1, poll(&p, 1, 0));
	ASSERT_EQ(POLLHUP | POLLERR, p.revents & (POLLHUP | POLLERR | POLLOUT));
	/* Every later operation: ECONNRESET. */
	errno = 0;
	ASSERT_EQ(-1, recv(self->b, buf, sizeof(buf), 0));
	ASSERT_EQ(ECONNRESET, errno);
	errno = 0;
	ASSERT_EQ(-1, recv(self->b, buf, sizeof(buf), MSG_DONTWAIT));
	ASSERT_EQ(ECONNRESET, errno);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->baddr, "x", 0));
	ASSERT_EQ(ECONNRESET, errno);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->maddr, "x", 0));
	ASSERT_EQ(ECONNRESET, errno);
}

TEST_F(bus, master_close_wakes_blocked_receivers_and_senders)
{
	struct blocked r = { self->b, NULL, 0, 0 }, s = { self->a, &self->baddr, 0, 0 };
	pthread_t tr, ts;

	while (bus_send_str(self->a, &self->baddr, "f", MSG_DONTWAIT) > 0)
		;
	{
		/* Drain b on another socket's behalf: b keeps a full queue. */
	}
	ASSERT_EQ(0, pthread_create(&ts, NULL, blocked_send, &s));
	r.fd = self->a;	/* a has nothing queued: blocks in recv */
	ASSERT_EQ(0, pthread_create(&tr, NULL, blocked_recv, &r));
	usleep(200000);
	close(self->master);
	self->master = -1;
	pthread_join(ts, NULL);
	pthread_join(tr, NULL);
	ASSERT_EQ(-1, s.ret);
	ASSERT_EQ(ECONNRESET, s.err);
	ASSERT_EQ(-1, r.ret);
	ASSERT_EQ(ECONNRESET, r.err);
}

TEST_F(bus, pending_endpoint_dies_with_the_bus)
{
	int p = socket(AF_BUS, SOCK_DGRAM, 0);
	char buf[8];

	ASSERT_EQ(0, bus_join(self->master, &self->maddr, p, NULL, NULL));
	close(self->master);
	self->master = -1;
	errno = 0;
	ASSERT_EQ(-1, recv(p, buf, sizeof(buf), 0));
	ASSERT_EQ(ECONNRESET, errno);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(p, &self->maddr, "x", 0));
	ASSERT_EQ(ECONNRESET, errno);
	close(p);
}

/*
 * Found by bus_stress: a member of a dead bus read an empty BUS_ADDRS
 * (and the old policy) instead of ECONNRESET.
 */
TEST_F(bus, socket_options_of_a_dead_bus_are_econnreset)
{
	struct sockaddr_bus list[4];
	unsigned int policy;
	socklen_t len = sizeof(list);

	ASSERT_EQ(0, getsockopt(self->b, SOL_BUS, BUS_ADDRS, list, &len));
	ASSERT_EQ(2 * sizeof(list[0]), len);
	close(self->master);
	self->master = -1;
	len = sizeof(list);
	errno = 0;
	ASSERT_EQ(-1, getsockopt(self->b, SOL_BUS, BUS_ADDRS, list, &len));
	ASSERT_EQ(ECONNRESET, errno);
	len = sizeof(policy);
	errno = 0;
	ASSERT_EQ(-1, getsockopt(self->a, SOL_BUS, BUS_POLICY, &policy, &len));
	ASSERT_EQ(ECONNRESET, errno);
}

TEST_F(bus, members_close_after_the_master)
{
	close(self->master);
	self->master = -1;
	ASSERT_EQ(0, close(self->a));
	ASSERT_EQ(0, close(self->b));
	self->a = self->b = -1;
}

TEST_F(bus, notifications_overflow_is_reported)
{
	int big = 8 << 20, n = 0, i, gone = 0;
	struct bus_msg m;
	struct bus_notification note;
	int eps[200];

	/* Fill the master's queue (its own half: 128 from root) ... */
	ASSERT_EQ(0, setsockopt(self->master, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)));
	while (bus_send_str(self->a, &self->maddr, "f", MSG_DONTWAIT) > 0)
		n++;
	ASSERT_EQ(128, n);
	/*
	 * ... then make the kernel notify past what is left: 200 endpoints
	 * join (their own hello does not fit, but they are on the bus) and
	 * leave; 128 notifications fit the 256-message queue.
	 */
	for (i = 0; i < 200; i++) {
		eps[i] = socket(AF_BUS, SOCK_DGRAM, 0);
		errno = 0;
		ASSERT_EQ(-1, bus_send_str(eps[i], &self->maddr, "join", MSG_DONTWAIT));
		ASSERT_EQ(EAGAIN, errno);
	}
	for (i = 0; i < 200; i++)
		close(eps[i]);
	/* Drain everything; the last one says how many were lost. */
	for (;;) {
		ASSERT_LT(0, bus_recv(self->master, &m, MSG_DONTWAIT));
		memcpy(&note, m.data, sizeof(note));
		if (m.name.sbus_addr_ncomp != 0)
			continue;
		if (note.type == BUS_NOTIFY_OVERFLOW)
			break;
		ASSERT_EQ(BUS_NOTIFY_GONE, note.type);
		gone++;
	}
	ASSERT_EQ(sizeof(note), m.len);
	ASSERT_EQ(128, gone);
	ASSERT_EQ(200 - 128, note.count);
	errno = 0;
	ASSERT_EQ(-1, bus_recv(self->master, &m, MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
}

TEST(rebind_after_master_close)
{
	struct sockaddr_bus a = bus_addr_str("/tmp/af_bus_rebind", "m");
	struct sockaddr_bus abs = bus_addr_abstract("rebind", "m");
	int m1 = socket(AF_BUS, SOCK_DGRAM, 0), m2 = socket(AF_BUS, SOCK_DGRAM, 0);
	int ep = socket(AF_BUS, SOCK_DGRAM, 0);

	unlink("/tmp/af_bus_rebind");
	ASSERT_EQ(0, bind(m1, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_EQ(0, bus_join(m1, &a, ep, "x", NULL));
	close(m1);
	/* The inode stays: EADDRINUSE until it is removed; the old path
	 * reaches no bus.
	 */
	errno = 0;
	ASSERT_EQ(-1, bind(m2, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_EQ(EADDRINUSE, errno);
	{
		int u = socket(AF_BUS, SOCK_DGRAM, 0);

		errno = 0;
		ASSERT_EQ(-1, bus_send_str(u, &a, "x", 0));
		ASSERT_EQ(ECONNREFUSED, errno);
		close(u);
	}
	ASSERT_EQ(0, unlink("/tmp/af_bus_rebind"));
	ASSERT_EQ(0, bind(m2, (struct sockaddr *)&a, sizeof(a)));
	close(m2);
	close(ep);
	unlink("/tmp/af_bus_rebind");

	m1 = socket(AF_BUS, SOCK_DGRAM, 0);
	m2 = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bind(m1, (struct sockaddr *)&abs, sizeof(abs)));
	close(m1);
	ASSERT_EQ(0, bind(m2, (struct sockaddr *)&abs, sizeof(abs)));
	close(m2);
}

TEST(filesystem_bus_reached_by_path)
{
	struct sockaddr_bus a = bus_addr_str("/tmp/af_bus_fs", "m");
	struct sockaddr_bus viadir = bus_addr_str("/tmp/./af_bus_fs", "m");
	int m = socket(AF_BUS, SOCK_DGRAM, 0), ep = socket(AF_BUS, SOCK_DGRAM, 0);
	struct bus_msg msg;

	unlink("/tmp/af_bus_fs");
	ASSERT_EQ(0, bind(m, (struct sockaddr *)&a, sizeof(a)));
	/* Another spelling of the same inode is the same bus. */
	ASSERT_EQ(2, bus_send_str(ep, &viadir, "x", 0));
	ASSERT_EQ(2, bus_recv(m, &msg, 0));
	ASSERT_EQ(2, bus_send_str(ep, &a, "y", 0));
	ASSERT_EQ(2, bus_recv(m, &msg, 0));
	/* A path that is not a socket, or does not exist. */
	{
		int u = socket(AF_BUS, SOCK_DGRAM, 0);
		struct sockaddr_bus notsock = bus_addr_str("/tmp", "m");
		struct sockaddr_bus missing = bus_addr_str("/tmp/af_bus_missing", "m");

		errno = 0;
		ASSERT_EQ(-1, bus_send_str(u, &notsock, "x", 0));
		ASSERT_EQ(ECONNREFUSED, errno);
		errno = 0;
		ASSERT_EQ(-1, bus_send_str(u, &missing, "x", 0));
		ASSERT_EQ(ENOENT, errno);
		close(u);
	}
	close(ep);
	close(m);
	unlink("/tmp/af_bus_fs");
}

TEST_HARNESS_MAIN
