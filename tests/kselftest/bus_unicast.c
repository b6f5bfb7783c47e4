// SPDX-License-Identifier: GPL-2.0
/*
 * Unicast: who may send to whom (the state table), every errno of the
 * send path, ordering, datagram semantics, backpressure and poll.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/bus.h>
#include "bus_test.h"
#include "kselftest_harness.h"

FIXTURE(bus) {
	int master, a, b;	/* a and b are members "a.svc" and "b.svc" */
	struct sockaddr_bus maddr, aaddr, baddr, ahandle, bhandle;
};

FIXTURE_SETUP(bus)
{
	int big = 8 << 20;

	self->master = bus_master("unicast", &self->maddr);
	ASSERT_LE(0, self->master);
	self->a = socket(AF_BUS, SOCK_DGRAM, 0);
	self->b = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->a, "a.svc", &self->ahandle));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->b, "b.svc", &self->bhandle));
	self->aaddr = bus_on(&self->maddr, "a.svc");
	self->baddr = bus_on(&self->maddr, "b.svc");
	/* Large buffers, so that the message count is the bound that bites. */
	ASSERT_EQ(0, setsockopt(self->a, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)));
	ASSERT_EQ(0, setsockopt(self->b, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)));
}

FIXTURE_TEARDOWN(bus)
{
	close(self->a);
	close(self->b);
	close(self->master);
}

TEST_F(bus, member_to_member_by_name_and_by_handle)
{
	struct bus_msg m;

	ASSERT_EQ(6, bus_send_str(self->a, &self->baddr, "hello", 0));
	ASSERT_EQ(6, bus_recv(self->b, &m, 0));
	ASSERT_STREQ("hello", m.data);
	/* Source: a's primary address; destination: the one used. */
	ASSERT_TRUE(bus_addr_eq(&self->aaddr, &m.name));
	ASSERT_TRUE(bus_addr_eq(&self->baddr, bus_msg_cmsg(&m, SCM_DST_ADDR)));

	ASSERT_EQ(6, bus_send_str(self->a, &self->bhandle, "world", 0));
	ASSERT_EQ(6, bus_recv(self->b, &m, 0));
	ASSERT_TRUE(bus_addr_eq(&self->bhandle, bus_msg_cmsg(&m, SCM_DST_ADDR)));
}

TEST_F(bus, member_and_master_talk_both_ways)
{
	struct bus_msg m;

	ASSERT_EQ(3, bus_send_str(self->a, &self->maddr, "up", 0));
	ASSERT_EQ(3, bus_recv(self->master, &m, 0));
	ASSERT_TRUE(bus_addr_eq(&self->aaddr, &m.name));
	ASSERT_EQ(5, bus_send_str(self->master, &self->aaddr, "down", 0));
	ASSERT_EQ(5, bus_recv(self->a, &m, 0));
	ASSERT_TRUE(bus_addr_eq(&self->maddr, &m.name));
}

TEST_F(bus, src_addr_chooses_and_eaddrnotavail)
{
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
	size_t off = 0;
	struct bus_msg m;

	/* Its handle is its own too. */
	bus_cmsg_add(ctl, &off, SCM_SRC_ADDR, &self->ahandle);
	ASSERT_EQ(1, bus_send(self->a, &self->baddr, "x", 1, ctl, off, 0));
	ASSERT_EQ(1, bus_recv(self->b, &m, 0));
	ASSERT_TRUE(bus_addr_eq(&self->ahandle, &m.name));

	/* Not its own. */
	off = 0;
	bus_cmsg_add(ctl, &off, SCM_SRC_ADDR, &self->baddr);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->a, &self->baddr, "x", 1, ctl, off, 0));
	ASSERT_EQ(EADDRNOTAVAIL, errno);
	off = 0;
	bus_cmsg_add(ctl, &off, SCM_SRC_ADDR, &self->maddr);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->a, &self->baddr, "x", 1, ctl, off, 0));
	ASSERT_EQ(EADDRNOTAVAIL, errno);
}

/*
 * A sender that sends to the same address again follows it wherever the
 * grants move it, and sees at once that its own address, the receiver
 * or the bus went away (the kernel keeps the last route of each
 * socket; this is what must not go stale).
 */
TEST_F(bus, repeated_sends_follow_the_address)
{
	struct sockaddr_bus chandle;
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))], buf[16];
	size_t off;
	int c = socket(AF_BUS, SOCK_DGRAM, 0);

	ASSERT_EQ(0, bus_join(self->master, &self->maddr, c, "c.svc", &chandle));
	ASSERT_EQ(2, bus_send_str(self->a, &self->baddr, "1", 0));
	ASSERT_EQ(2, bus_send_str(self->a, &self->baddr, "2", 0));
	ASSERT_EQ(2, bus_send_str(self->a, &self->bhandle, "3", 0));
	ASSERT_EQ(2, recv(self->b, buf, sizeof(buf), 0));
	ASSERT_EQ(2, recv(self->b, buf, sizeof(buf), 0));
	ASSERT_EQ(2, recv(self->b, buf, sizeof(buf), 0));
	/* b.svc moves from b to c. */
	off = 0;
	bus_cmsg_add(ctl, &off, SCM_REVOKE_ADDR, &self->baddr);
	ASSERT_EQ(1, bus_send(self->master, &self->bhandle, "r", 1, ctl, off, 0));
	ASSERT_EQ(1, recv(self->b, buf, sizeof(buf), 0));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->baddr, "4", 0));
	ASSERT_EQ(EHOSTUNREACH, errno);
	off = 0;
	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &self->baddr);
	ASSERT_EQ(1, bus_send(self->master, &chandle, "g", 1, ctl, off, 0));
	ASSERT_EQ(1, recv(c, buf, sizeof(buf), 0));
	ASSERT_EQ(2, bus_send_str(self->a, &self->baddr, "5", 0));
	ASSERT_EQ(2, bus_send_str(self->a, &self->baddr, "6", 0));
	ASSERT_EQ(2, recv(c, buf, sizeof(buf), MSG_DONTWAIT));
	ASSERT_EQ(0, strcmp(buf, "5"));
	ASSERT_EQ(2, recv(c, buf, sizeof(buf), MSG_DONTWAIT));
	ASSERT_EQ(0, strcmp(buf, "6"));
	errno = 0;
	ASSERT_EQ(-1, recv(self->b, buf, sizeof(buf), MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
	/* The receiver closes. */
	close(c);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->baddr, "7", 0));
	ASSERT_EQ(EHOSTUNREACH, errno);
	/* b lost its only address: pending again, it hears its master only. */
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->bhandle, "8", 0));
	ASSERT_EQ(EACCES, errno);
	/* The sender loses its only address: pending again, master only. */
	ASSERT_EQ(2, bus_send_str(self->a, &self->maddr, "8", 0));
	off = 0;
	bus_cmsg_add(ctl, &off, SCM_REVOKE_ADDR, &self->aaddr);
	ASSERT_EQ(1, bus_send(self->master, &self->ahandle, "r", 1, ctl, off, 0));
	ASSERT_EQ(1, recv(self->a, buf, sizeof(buf), 0));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->bhandle, "9", 0));
	ASSERT_EQ(EACCES, errno);
	/* The bus dies under a route to its master. */
	ASSERT_EQ(2, bus_send_str(self->a, &self->maddr, "x", 0));
	ASSERT_EQ(2, bus_send_str(self->a, &self->maddr, "y", 0));
	close(self->master);
	self->master = socket(AF_BUS, SOCK_DGRAM, 0);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->maddr, "z", 0));
	ASSERT_EQ(ECONNRESET, errno);
}

/*
 * The same, with the sender woken by the revoke itself while the master
 * may still be inside its send (the member on CPU 1, the master on CPU
 * 0): whatever it sends after reading that it lost its only address
 * must be refused (EACCES), 200 times over.  The kernel moves the bus's
 * route generation before it queues the revoke; this checks the
 * guarantee, it cannot force the narrow interleaving that would break
 * it (it did not, under TCG, with the generation moved after).
 */
TEST_F(bus, a_revoke_read_is_a_revoke_in_force)
{
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))], buf[16];
	cpu_set_t one;
	size_t off;
	pid_t pid;
	int i, status;

	pid = fork();
	ASSERT_LE(0, pid);
	CPU_ZERO(&one);
	CPU_SET(pid == 0 && sysconf(_SC_NPROCESSORS_ONLN) > 1, &one);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(one), &one));
	if (pid == 0) {
		for (i = 0; i < 200; i++) {
			int err;

			/* Granted a.svc: send to b (the route is kept), say so. */
			if (i && recv(self->a, buf, sizeof(buf), 0) < 0)
				_exit(10);
			if (bus_send_str(self->a, &self->bhandle, "r", 0) != 2)
				_exit(11);
			if (bus_send_str(self->a, &self->maddr, "ready", 0) != 6)
				_exit(12);
			/* The revoke; then the kept route must not be used. */
			if (recv(self->a, buf, sizeof(buf), 0) < 0)
				_exit(13);
			errno = 0;
			err = bus_send_str(self->a, &self->bhandle, "late", 0) < 0 ? errno : 0;
			if (bus_send_str(self->a, &self->maddr, err == EACCES ? "ok" : "bad", 0) < 0)
				_exit(14);
		}
		_exit(0);
	}
	for (i = 0; i < 200; i++) {
		if (i) {
			off = 0;
			bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &self->aaddr);
			ASSERT_EQ(1, bus_send(self->master, &self->ahandle, "g", 1, ctl, off, 0));
		}
		ASSERT_EQ(6, recv(self->master, buf, sizeof(buf), 0));
		ASSERT_EQ(0, strcmp(buf, "ready"));
		ASSERT_EQ(2, recv(self->b, buf, sizeof(buf), 0));
		off = 0;
		bus_cmsg_add(ctl, &off, SCM_REVOKE_ADDR, &self->aaddr);
		ASSERT_EQ(1, bus_send(self->master, &self->ahandle, "r", 1, ctl, off, 0));
		ASSERT_LT(0, recv(self->master, buf, sizeof(buf), 0));
		ASSERT_EQ(0, strcmp(buf, "ok"));
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	errno = 0;
	ASSERT_EQ(-1, recv(self->b, buf, sizeof(buf), MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
}

TEST_F(bus, no_owner_ehostunreach)
{
	struct sockaddr_bus nobody = bus_on(&self->maddr, "nobody"),
			    gone = bus_on(&self->maddr, ":99");

	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &nobody, "x", 0));
	ASSERT_EQ(EHOSTUNREACH, errno);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &gone, "x", 0));
	ASSERT_EQ(EHOSTUNREACH, errno);
}

TEST_F(bus, kernel_address_and_multicast_destinations)
{
	struct sockaddr_bus k = self->maddr;

	k.sbus_addr_ncomp = 0;
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &k, "x", 0));
	ASSERT_EQ(EINVAL, errno);
}

TEST_F(bus, no_destination_edestaddrreq)
{
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, NULL, "x", 0));
	ASSERT_EQ(EDESTADDRREQ, errno);
	errno = 0;
	ASSERT_EQ(-1, send(self->a, "x", 1, 0));
	ASSERT_EQ(EDESTADDRREQ, errno);
}

TEST_F(bus, malformed_destination_and_cmsg_einval)
{
	struct sockaddr_bus bad = self->baddr;
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
	struct cmsghdr *c = (struct cmsghdr *)ctl;
	size_t off = 0;

	bad.sbus_addr_ncomp = 9;
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &bad, "x", 0));
	ASSERT_EQ(EINVAL, errno);

	/* An unknown SOL_BUS type, and SCM_DST_ADDR, which only the kernel
	 * writes.
	 */
	bus_cmsg_add(ctl, &off, 99, &self->aaddr);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->a, &self->baddr, "x", 1, ctl, off, 0));
	ASSERT_EQ(EINVAL, errno);
	off = 0;
	bus_cmsg_add(ctl, &off, SCM_DST_ADDR, &self->aaddr);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->a, &self->baddr, "x", 1, ctl, off, 0));
	ASSERT_EQ(EINVAL, errno);
	/* A SOL_BUS cmsg with a malformed address. */
	off = 0;
	bus_cmsg_add(ctl, &off, SCM_SRC_ADDR, &self->aaddr);
	c->cmsg_len = CMSG_LEN(3);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->a, &self->baddr, "x", 1, ctl, off, 0));
	ASSERT_EQ(EINVAL, errno);
}

TEST_F(bus, other_bus_eisconn)
{
	struct sockaddr_bus other;
	int m2 = bus_master("unicast-other", &other);

	ASSERT_LE(0, m2);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &other, "x", 0));
	ASSERT_EQ(EISCONN, errno);
	/* A master belongs to its bus too. */
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->master, &other, "x", 0));
	ASSERT_EQ(EISCONN, errno);
	/* And a master cannot bind again, nor an endpoint become one. */
	errno = 0;
	ASSERT_EQ(-1, bind(self->a, (struct sockaddr *)&other, sizeof(other)));
	ASSERT_EQ(EISCONN, errno);
	close(m2);
}

TEST_F(bus, unattached_reaches_masters_only)
{
	int u = socket(AF_BUS, SOCK_DGRAM, 0);
	struct sockaddr_bus none = bus_addr_abstract("no-such-bus", "master");

	errno = 0;
	ASSERT_EQ(-1, bus_send_str(u, &self->baddr, "x", 0));
	ASSERT_EQ(EACCES, errno);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(u, &none, "x", 0));
	ASSERT_EQ(ECONNREFUSED, errno);
	/* Still unattached after both. */
	{
		struct sockaddr_bus name;
		socklen_t len = sizeof(name);

		ASSERT_EQ(0, getsockname(u, (struct sockaddr *)&name, &len));
		ASSERT_EQ(0, name.sbus_path[0] | name.sbus_path[1]);
	}
	close(u);
}

TEST_F(bus, unattached_receives_nothing)
{
	int u = socket(AF_BUS, SOCK_DGRAM, 0);
	char buf[8];

	errno = 0;
	ASSERT_EQ(-1, recv(u, buf, sizeof(buf), MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
	close(u);
}

TEST_F(bus, pending_reaches_master_only_eacces)
{
	int p = socket(AF_BUS, SOCK_DGRAM, 0);
	struct bus_msg m;

	ASSERT_EQ(0, bus_join(self->master, &self->maddr, p, NULL, NULL));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(p, &self->baddr, "x", 0));
	ASSERT_EQ(EACCES, errno);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(p, &self->bhandle, "x", 0));
	ASSERT_EQ(EACCES, errno);
	ASSERT_EQ(2, bus_send_str(p, &self->maddr, "x", 0));
	ASSERT_EQ(2, bus_recv(self->master, &m, 0));
	close(p);
}

/* A pending endpoint's handle is its master's alone (no handshake
 * injection); once a member, its handle reaches it from anyone.
 */
TEST_F(bus, members_reach_endpoints_by_handle_once_admitted)
{
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
	struct sockaddr_bus ph, pname = bus_on(&self->maddr, "p.svc");
	struct bus_msg m;
	size_t off = 0;
	int p = socket(AF_BUS, SOCK_DGRAM, 0);

	ASSERT_EQ(0, bus_join(self->master, &self->maddr, p, NULL, &ph));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &ph, "x", 0));
	ASSERT_EQ(EACCES, errno);
	errno = 0;
	ASSERT_EQ(-1, bus_recv(p, &m, MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &pname);
	ASSERT_EQ(1, bus_send(self->master, &ph, "g", 1, ctl, off, 0));
	ASSERT_EQ(1, bus_recv(p, &m, 0));
	ASSERT_EQ(2, bus_send_str(self->a, &ph, "x", 0));
	ASSERT_EQ(2, bus_recv(p, &m, 0));
	ASSERT_TRUE(bus_addr_eq(&self->aaddr, &m.name));
	close(p);
}

TEST_F(bus, order_is_kept_and_truncation_is_datagram)
{
	struct bus_msg m;
	char buf[4];
	int i;

	for (i = 0; i < 100; i++) {
		char s[16];

		snprintf(s, sizeof(s), "msg %d", i);
		ASSERT_LT(0, bus_send_str(self->a, &self->baddr, s, 0));
	}
	for (i = 0; i < 100; i++) {
		char s[16];

		snprintf(s, sizeof(s), "msg %d", i);
		ASSERT_LT(0, bus_recv(self->b, &m, 0));
		ASSERT_STREQ(s, m.data);
	}

	ASSERT_EQ(11, bus_send_str(self->a, &self->baddr, "0123456789", 0));
	ASSERT_EQ(11, bus_send_str(self->a, &self->baddr, "0123456789", 0));
	/* MSG_PEEK leaves it; MSG_TRUNC reports the real length. */
	ASSERT_EQ(4, recv(self->b, buf, sizeof(buf), MSG_PEEK));
	ASSERT_EQ(11, recv(self->b, buf, sizeof(buf), MSG_TRUNC));
	ASSERT_EQ(0, memcmp(buf, "0123", 4));
	{
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1 };

		ASSERT_EQ(4, recvmsg(self->b, &h, 0));
		ASSERT_EQ(MSG_TRUNC, h.msg_flags & MSG_TRUNC);
	}
	/* Without a control buffer: no SCM_DST_ADDR, and no MSG_CTRUNC for it. */
	{
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1 };

		ASSERT_EQ(3, bus_send_str(self->a, &self->baddr, "no", 0));
		ASSERT_EQ(3, recvmsg(self->b, &h, 0));
		ASSERT_EQ(0, h.msg_flags & (MSG_CTRUNC | MSG_TRUNC));
	}
	/* Zero-length datagrams exist. */
	ASSERT_EQ(0, bus_send(self->a, &self->baddr, "", 0, NULL, 0, 0));
	ASSERT_EQ(0, recv(self->b, buf, sizeof(buf), 0));
	errno = 0;
	ASSERT_EQ(-1, recv(self->b, buf, sizeof(buf), MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
}

TEST_F(bus, emsgsize)
{
	int size = 4096;
	char *big = calloc(1, 1 << 20);

	ASSERT_EQ(0, setsockopt(self->b, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)));
	/* Larger than b's buffer can ever take from one user. */
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->a, &self->baddr, big, 8192, NULL, 0, 0));
	ASSERT_EQ(EMSGSIZE, errno);
	/* Larger than the sender's buffer. */
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->a, &self->aaddr, big, 1 << 20, NULL, 0, 0));
	ASSERT_EQ(EMSGSIZE, errno);
	free(big);
}

TEST_F(bus, rcvtimeo)
{
	struct timeval tv = { 0, 200000 };
	struct timespec t0, t1;
	char buf[4];

	ASSERT_EQ(0, setsockopt(self->b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	errno = 0;
	ASSERT_EQ(-1, recv(self->b, buf, sizeof(buf), 0));
	ASSERT_EQ(EAGAIN, errno);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ASSERT_LE(150, (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
}

/* Fills b's queue from a; returns how many were accepted. */
static int fill(int from, const struct sockaddr_bus *to)
{
	int n = 0;

	while (bus_send_str(from, to, "fill", MSG_DONTWAIT) > 0)
		n++;
	return n;
}

TEST_F(bus, full_queue_eagain_and_pollout_is_per_socket)
{
	struct pollfd p;
	int n;

	n = fill(self->a, &self->baddr);
	ASSERT_EQ(EAGAIN, errno);
	/* One user fills at most half of the queue (256 messages). */
	ASSERT_EQ(128, n);
	/* a can still reach the master: b's full queue is b's alone. */
	ASSERT_EQ(3, bus_send_str(self->a, &self->maddr, "ok", MSG_DONTWAIT));
	p = (struct pollfd){ .fd = self->a, .events = POLLOUT };
	ASSERT_EQ(1, poll(&p, 1, 0));
	ASSERT_EQ(POLLOUT, p.revents);
	p = (struct pollfd){ .fd = self->b, .events = POLLIN };
	ASSERT_EQ(1, poll(&p, 1, 0));
	ASSERT_EQ(POLLIN, p.revents & POLLIN);
	/* Reading one makes room for one. */
	{
		char buf[8];

		ASSERT_EQ(5, recv(self->b, buf, sizeof(buf), 0));
	}
	ASSERT_EQ(5, bus_send_str(self->a, &self->baddr, "fill", MSG_DONTWAIT));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->baddr, "fill", MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
}

TEST_F(bus, queue_is_bounded_in_bytes_by_so_rcvbuf)
{
	int size = 32768, n = 0;
	char payload[1024] = { 0 };

	ASSERT_EQ(0, setsockopt(self->b, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)));
	while (bus_send(self->a, &self->baddr, payload, sizeof(payload), NULL, 0,
			MSG_DONTWAIT) == sizeof(payload))
		n++;
	ASSERT_EQ(EAGAIN, errno);
	/* 64 KiB of buffer, half of it for one user, each message > 1 KiB. */
	ASSERT_LT(10, n);
	ASSERT_GT(32, n);
}

TEST_F(bus, no_user_fills_more_than_half_of_what_is_left)
{
	int n, status;
	pid_t pid;

	/* root (uid 0) takes half of the queue ... */
	n = fill(self->a, &self->baddr);
	ASSERT_EQ(128, n);
	/* ... another user still gets half of what is left. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (setuid(65534))
			_exit(2);
		_exit(fill(self->a, &self->baddr) == 64 ? 0 : 3);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
}

/* Sends one message to @to as uid @uid; returns the errno (0 if sent). */
static int send_as(int fd, const struct sockaddr_bus *to, uid_t uid)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		if (setuid(uid))
			_exit(255);
		_exit(bus_send_str(fd, to, "u", MSG_DONTWAIT) == 2 ? 0 : errno);
	}
	waitpid(pid, &status, 0);
	return WEXITSTATUS(status);
}

TEST_F(bus, a_queue_accounts_64_users_at_a_time)
{
	char buf[4];
	int i;

	for (i = 0; i < 64; i++)
		ASSERT_EQ(0, send_as(self->a, &self->baddr, 1000 + i));
	ASSERT_EQ(EAGAIN, send_as(self->a, &self->baddr, 2000));
	/* Once one user has nothing queued, a new one is accounted. */
	ASSERT_EQ(2, recv(self->b, buf, sizeof(buf), 0));
	ASSERT_EQ(0, send_as(self->a, &self->baddr, 2000));
	ASSERT_EQ(EAGAIN, send_as(self->a, &self->baddr, 2001));
	/* A user already queued is not a new one. */
	ASSERT_EQ(0, send_as(self->a, &self->baddr, 1001));
}

TEST_F(bus, blocking_send_waits_sndtimeo_eagain)
{
	struct timeval tv = { 0, 200000 };
	struct timespec t0, t1;

	fill(self->a, &self->baddr);
	ASSERT_EQ(0, setsockopt(self->a, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->baddr, "late", 0));
	ASSERT_EQ(EAGAIN, errno);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ASSERT_LE(150, (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
}

struct drain_arg {
	int fd;
	int count;
};

static void *drain_later(void *p)
{
	struct drain_arg *d = p;
	char buf[16];
	int i;

	usleep(200000);
	for (i = 0; i < d->count; i++)
		recv(d->fd, buf, sizeof(buf), 0);
	return NULL;
}

TEST_F(bus, blocking_send_resumes_when_room_is_made)
{
	struct drain_arg d = { self->b, 1 };
	struct bus_msg m;
	pthread_t t;
	int i, n;

	n = fill(self->a, &self->baddr);
	ASSERT_EQ(0, pthread_create(&t, NULL, drain_later, &d));
	ASSERT_EQ(5, bus_send_str(self->a, &self->baddr, "last", 0));
	pthread_join(t, NULL);
	/* Nothing lost, order kept: n-1 "fill", then "last". */
	for (i = 0; i < n - 1; i++) {
		ASSERT_EQ(5, bus_recv(self->b, &m, 0));
		ASSERT_STREQ("fill", m.data);
	}
	ASSERT_EQ(5, bus_recv(self->b, &m, 0));
	ASSERT_STREQ("last", m.data);
}

static void on_alarm(int sig)
{
	(void)sig;
}

TEST_F(bus, blocking_send_interrupted_by_signal_eintr)
{
	struct sigaction sa = { .sa_handler = on_alarm };

	fill(self->a, &self->baddr);
	sigaction(SIGALRM, &sa, NULL);	/* no SA_RESTART */
	ualarm(200000, 0);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->baddr, "x", 0));
	ASSERT_EQ(EINTR, errno);
}

TEST_F(bus, slow_receiver_does_not_delay_others)
{
	struct bus_msg m;
	int c = socket(AF_BUS, SOCK_DGRAM, 0);
	struct sockaddr_bus caddr = bus_on(&self->maddr, "c.svc");

	ASSERT_EQ(0, bus_join(self->master, &self->maddr, c, "c.svc", NULL));
	fill(self->a, &self->baddr);
	ASSERT_EQ(2, bus_send_str(self->a, &caddr, "x", MSG_DONTWAIT));
	ASSERT_EQ(2, bus_recv(c, &m, MSG_DONTWAIT));
	close(c);
}

TEST_F(bus, poll_in_out)
{
	struct pollfd p = { .fd = self->b, .events = POLLIN | POLLOUT };

	ASSERT_EQ(1, poll(&p, 1, 0));
	ASSERT_EQ(POLLOUT, p.revents);
	ASSERT_EQ(2, bus_send_str(self->a, &self->baddr, "x", 0));
	ASSERT_EQ(1, poll(&p, 1, 0));
	ASSERT_EQ(POLLIN | POLLOUT, p.revents);
}

static void *send_later(void *p)
{
	struct sockaddr_bus *to = ((struct sockaddr_bus **)p)[1];
	int fd = *((int **)p)[0];

	usleep(200000);
	bus_send_str(fd, to, "wake", 0);
	return NULL;
}

TEST_F(bus, blocking_recv_wakes_on_arrival)
{
	void *args[2] = { &self->a, &self->baddr };
	struct pollfd p = { .fd = self->b, .events = POLLIN };
	struct bus_msg m;
	pthread_t t;

	ASSERT_EQ(0, pthread_create(&t, NULL, send_later, args));
	ASSERT_EQ(1, poll(&p, 1, 5000));
	ASSERT_EQ(5, bus_recv(self->b, &m, 0));
	ASSERT_STREQ("wake", m.data);
	pthread_join(t, NULL);
	ASSERT_EQ(0, pthread_create(&t, NULL, send_later, args));
	ASSERT_EQ(5, bus_recv(self->b, &m, 0));
	pthread_join(t, NULL);
}

static int set_param(const char *name, int value)
{
	char path[128];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "/sys/module/af_bus/parameters/%s", name);
	f = fopen(path, "w");
	if (!f)
		return -1;
	ok = fprintf(f, "%d\n", value) > 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static int get_param(const char *name)
{
	char path[128];
	FILE *f;
	int v = -1;

	snprintf(path, sizeof(path), "/sys/module/af_bus/parameters/%s", name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%d", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

TEST_F(bus, queue_bound_is_a_module_parameter)
{
	ASSERT_EQ(256, get_param("max_queue_msgs"));
	ASSERT_EQ(64, get_param("max_owned_addrs"));
	ASSERT_EQ(0, set_param("max_queue_msgs", 8));
	/* Half of 8 for one user. */
	ASSERT_EQ(4, fill(self->a, &self->baddr));
	ASSERT_EQ(0, set_param("max_queue_msgs", 256));
	ASSERT_EQ(124, fill(self->a, &self->baddr));
}

TEST_F(bus, owned_address_limit_is_a_module_parameter)
{
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
	struct sockaddr_bus x = bus_on(&self->maddr, "a.two"), y = bus_on(&self->maddr, "a.three");
	size_t off = 0;
	struct bus_msg m;

	ASSERT_EQ(0, set_param("max_owned_addrs", 2));
	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &x);
	ASSERT_EQ(1, bus_send(self->master, &self->ahandle, "g", 1, ctl, off, 0));
	ASSERT_EQ(1, bus_recv(self->a, &m, 0));
	off = 0;
	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &y);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->master, &self->ahandle, "g", 1, ctl, off, 0));
	ASSERT_EQ(ENOSPC, errno);
	ASSERT_EQ(0, set_param("max_owned_addrs", 64));
	ASSERT_EQ(1, bus_send(self->master, &self->ahandle, "g", 1, ctl, off, 0));
}

TEST_HARNESS_MAIN
