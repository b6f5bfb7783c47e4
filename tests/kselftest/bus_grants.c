// SPDX-License-Identifier: GPL-2.0
/*
 * The master's grants: SCM_OWNED_ADDR, SCM_REVOKE_ADDR and SCM_MOVE_ADDR
 * with every error of the grant table, atomicity with delivery, and what
 * the receiver sees.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/bus.h>
#include "bus_test.h"
#include "kselftest_harness.h"

#define CTL_SPACE (20 * CMSG_SPACE(sizeof(struct sockaddr_bus)))

FIXTURE(bus) {
	int master, a, b;
	struct sockaddr_bus maddr, ah, bh;
	char ctl[CTL_SPACE];
	size_t off;
};

FIXTURE_SETUP(bus)
{
	self->master = bus_master("grants", &self->maddr);
	ASSERT_LE(0, self->master);
	self->a = socket(AF_BUS, SOCK_DGRAM, 0);
	self->b = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->a, NULL, &self->ah));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->b, "b.svc", &self->bh));
	self->off = 0;
}

FIXTURE_TEARDOWN(bus)
{
	close(self->a);
	close(self->b);
	close(self->master);
}

static int grant(int from, const struct sockaddr_bus *to, int type,
		 const struct sockaddr_bus *addr)
{
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
	size_t off = 0;

	bus_cmsg_add(ctl, &off, type, addr);
	return bus_send(from, to, "g", 1, ctl, off, 0) == 1 ? 0 : -1;
}

TEST_F(bus, owned_addr_makes_pending_a_member)
{
	struct sockaddr_bus x = bus_on(&self->maddr, "a.svc");
	struct bus_msg m;

	/* Pending: EACCES to b. */
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->bh, "x", 0));
	ASSERT_EQ(EACCES, errno);
	ASSERT_EQ(0, grant(self->master, &self->ah, SCM_OWNED_ADDR, &x));
	ASSERT_EQ(1, bus_recv(self->a, &m, 0));
	ASSERT_EQ(1, m.ncmsg - 1);	/* the grant, then SCM_DST_ADDR */
	ASSERT_EQ(SOL_BUS, m.cmsg_level[0]);
	ASSERT_EQ(SCM_OWNED_ADDR, m.cmsg_type[0]);
	ASSERT_TRUE(bus_addr_eq(&x, &m.cmsg_addr[0]));
	/* Member: b is reachable, and a is reachable by its new name. */
	ASSERT_EQ(2, bus_send_str(self->a, &self->bh, "x", 0));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
	ASSERT_TRUE(bus_addr_eq(&x, &m.name));
	ASSERT_EQ(2, bus_send_str(self->b, &x, "y", 0));
	ASSERT_EQ(2, bus_recv(self->a, &m, 0));
}

TEST_F(bus, only_the_master_grants_eperm)
{
	struct sockaddr_bus x = bus_on(&self->maddr, "x.svc"), b = bus_on(&self->maddr, "b.svc");

	errno = 0;
	ASSERT_EQ(-1, grant(self->b, &self->ah, SCM_OWNED_ADDR, &x));
	ASSERT_EQ(EPERM, errno);
	errno = 0;
	ASSERT_EQ(-1, grant(self->b, &self->maddr, SCM_REVOKE_ADDR, &b));
	ASSERT_EQ(EPERM, errno);
	/* A pending endpoint cannot either (to the master, its only peer). */
	errno = 0;
	ASSERT_EQ(-1, grant(self->a, &self->maddr, SCM_OWNED_ADDR, &x));
	ASSERT_EQ(EPERM, errno);
}

TEST_F(bus, owned_addr_eaddrinuse)
{
	struct sockaddr_bus b = bus_on(&self->maddr, "b.svc");

	/* Owned by someone else, by the destination itself, or the master's. */
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->ah, SCM_OWNED_ADDR, &b));
	ASSERT_EQ(EADDRINUSE, errno);
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->bh, SCM_OWNED_ADDR, &b));
	ASSERT_EQ(EADDRINUSE, errno);
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->ah, SCM_OWNED_ADDR, &self->maddr));
	ASSERT_EQ(EADDRINUSE, errno);
	/* Twice in one message. */
	{
		struct sockaddr_bus x = bus_on(&self->maddr, "x.svc");

		bus_cmsg_add(self->ctl, &self->off, SCM_OWNED_ADDR, &x);
		bus_cmsg_add(self->ctl, &self->off, SCM_OWNED_ADDR, &x);
		errno = 0;
		ASSERT_EQ(-1, bus_send(self->master, &self->ah, "g", 1, self->ctl, self->off, 0));
		ASSERT_EQ(EADDRINUSE, errno);
	}
}

TEST_F(bus, owned_addr_einval)
{
	struct sockaddr_bus handle = bus_on(&self->maddr, ":7"), kernel = self->maddr,
			    mcast = bus_on(&self->maddr, "m"), other = bus_addr_abstract("elsewhere", "x");

	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->ah, SCM_OWNED_ADDR, &handle));
	ASSERT_EQ(EINVAL, errno);
	kernel.sbus_addr_ncomp = 0;
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->ah, SCM_OWNED_ADDR, &kernel));
	ASSERT_EQ(EINVAL, errno);
	mcast.sbus_path[BUS_PATH_MAX - 1] = '*';
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->ah, SCM_OWNED_ADDR, &mcast));
	ASSERT_EQ(EINVAL, errno);
	/* An address of another bus. */
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->ah, SCM_OWNED_ADDR, &other));
	ASSERT_EQ(EINVAL, errno);
	/* To the master itself. */
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->maddr, SCM_OWNED_ADDR, &self->ah));
	ASSERT_EQ(EINVAL, errno);
}

TEST_F(bus, owned_addr_enospc_past_the_limit)
{
	struct sockaddr_bus x;
	char name[32];
	struct bus_msg m;
	int i;

	for (i = 0; i < 64; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		x = bus_on(&self->maddr, name);
		ASSERT_EQ(0, grant(self->master, &self->ah, SCM_OWNED_ADDR, &x));
		ASSERT_EQ(1, bus_recv(self->a, &m, 0));
	}
	x = bus_on(&self->maddr, "one.too.many");
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->ah, SCM_OWNED_ADDR, &x));
	ASSERT_EQ(ENOSPC, errno);
}

TEST_F(bus, revoke_and_eaddrnotavail)
{
	struct sockaddr_bus b = bus_on(&self->maddr, "b.svc"), x = bus_on(&self->maddr, "x");
	struct bus_msg m;

	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->ah, SCM_REVOKE_ADDR, &b));
	ASSERT_EQ(EADDRNOTAVAIL, errno);
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->bh, SCM_REVOKE_ADDR, &x));
	ASSERT_EQ(EADDRNOTAVAIL, errno);
	/* A handle is not granted, so it cannot be revoked. */
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->bh, SCM_REVOKE_ADDR, &self->bh));
	ASSERT_EQ(EINVAL, errno);

	ASSERT_EQ(0, grant(self->master, &self->bh, SCM_REVOKE_ADDR, &b));
	ASSERT_EQ(1, bus_recv(self->b, &m, 0));
	ASSERT_EQ(SCM_REVOKE_ADDR, m.cmsg_type[0]);
	ASSERT_TRUE(bus_addr_eq(&b, &m.cmsg_addr[0]));
	/* The name is free again: unreachable, and grantable to another. */
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->master, &b, "x", 0));
	ASSERT_EQ(EHOSTUNREACH, errno);
	ASSERT_EQ(0, grant(self->master, &self->ah, SCM_OWNED_ADDR, &b));
	ASSERT_EQ(1, bus_recv(self->a, &m, 0));
	ASSERT_EQ(2, bus_send_str(self->master, &b, "x", 0));
	ASSERT_EQ(2, bus_recv(self->a, &m, 0));
	/* b owns nothing now: pending again. */
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->b, &b, "x", 0));
	ASSERT_EQ(EACCES, errno);
}

TEST_F(bus, several_grants_apply_in_order)
{
	struct sockaddr_bus b = bus_on(&self->maddr, "b.svc"), c = bus_on(&self->maddr, "c.svc");
	struct sockaddr_bus addrs[4];
	socklen_t len = sizeof(addrs);
	struct bus_msg m;

	/* Rename b.svc to c.svc in one message. */
	bus_cmsg_add(self->ctl, &self->off, SCM_REVOKE_ADDR, &b);
	bus_cmsg_add(self->ctl, &self->off, SCM_OWNED_ADDR, &c);
	ASSERT_EQ(1, bus_send(self->master, &self->bh, "r", 1, self->ctl, self->off, 0));
	ASSERT_EQ(1, bus_recv(self->b, &m, 0));
	ASSERT_EQ(SCM_REVOKE_ADDR, m.cmsg_type[0]);
	ASSERT_EQ(SCM_OWNED_ADDR, m.cmsg_type[1]);
	ASSERT_EQ(SCM_DST_ADDR, m.cmsg_type[2]);
	ASSERT_EQ(0, getsockopt(self->b, SOL_BUS, BUS_ADDRS, addrs, &len));
	ASSERT_EQ(2 * sizeof(struct sockaddr_bus), len);
	ASSERT_TRUE(bus_addr_eq(&c, &addrs[1]));
}

TEST_F(bus, a_refused_message_applies_no_grant)
{
	struct sockaddr_bus x = bus_on(&self->maddr, "x"), y = bus_on(&self->maddr, "b.svc");
	struct sockaddr_bus addrs[4];
	socklen_t len = sizeof(addrs);

	/* The second grant fails: the first is not applied either. */
	bus_cmsg_add(self->ctl, &self->off, SCM_OWNED_ADDR, &x);
	bus_cmsg_add(self->ctl, &self->off, SCM_OWNED_ADDR, &y);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->master, &self->ah, "g", 1, self->ctl, self->off, 0));
	ASSERT_EQ(EADDRINUSE, errno);
	ASSERT_EQ(0, getsockopt(self->a, SOL_BUS, BUS_ADDRS, addrs, &len));
	ASSERT_EQ(sizeof(struct sockaddr_bus), len);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->master, &x, "x", 0));
	ASSERT_EQ(EHOSTUNREACH, errno);
}

TEST_F(bus, grant_is_not_applied_when_the_queue_is_full)
{
	struct sockaddr_bus x = bus_on(&self->maddr, "x");
	int n = 0;

	while (bus_send_str(self->master, &self->ah, "f", MSG_DONTWAIT) > 0)
		n++;
	ASSERT_LT(0, n);
	bus_cmsg_add(self->ctl, &self->off, SCM_OWNED_ADDR, &x);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->master, &self->ah, "g", 1, self->ctl, self->off,
			       MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->b, &x, "x", 0));
	ASSERT_EQ(EHOSTUNREACH, errno);
}

/* How many addresses @fd owns, its handle included. */
static int naddrs(int fd)
{
	struct sockaddr_bus addrs[8];
	socklen_t len = sizeof(addrs);

	if (getsockopt(fd, SOL_BUS, BUS_ADDRS, addrs, &len))
		return -1;
	return len / sizeof(struct sockaddr_bus);
}

/*
 * A name passes from b to a in one step, as a D-Bus name does to the
 * next in its queue: no instant at which nobody owns it.
 */
TEST_F(bus, move_addr_takes_the_address_from_its_owner)
{
	struct sockaddr_bus b = bus_on(&self->maddr, "b.svc");
	struct bus_msg m;

	/* The master's route to b.svc is cached: the move must retire it. */
	ASSERT_EQ(2, bus_send_str(self->master, &b, "w", 0));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
	ASSERT_EQ(0, grant(self->master, &self->ah, SCM_MOVE_ADDR, &b));
	ASSERT_EQ(1, bus_recv(self->a, &m, 0));
	ASSERT_EQ(SCM_MOVE_ADDR, m.cmsg_type[0]);
	ASSERT_TRUE(bus_addr_eq(&b, &m.cmsg_addr[0]));
	ASSERT_EQ(2, naddrs(self->a));
	ASSERT_EQ(1, naddrs(self->b));
	/* The name reaches a now; b, left with its handle, is pending. */
	ASSERT_EQ(2, bus_send_str(self->master, &b, "y", 0));
	ASSERT_EQ(2, bus_recv(self->a, &m, 0));
	ASSERT_STREQ("y", m.data);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->b, &self->ah, "x", 0));
	ASSERT_EQ(EACCES, errno);
	/* And back: a loses it, b owns it again. */
	ASSERT_EQ(0, grant(self->master, &self->bh, SCM_MOVE_ADDR, &b));
	ASSERT_EQ(1, naddrs(self->a));
	ASSERT_EQ(2, naddrs(self->b));
}

TEST_F(bus, move_addr_of_a_free_address_is_a_grant)
{
	struct sockaddr_bus x = bus_on(&self->maddr, "x.svc");
	struct bus_msg m;

	ASSERT_EQ(0, grant(self->master, &self->ah, SCM_MOVE_ADDR, &x));
	ASSERT_EQ(1, bus_recv(self->a, &m, 0));
	ASSERT_EQ(2, naddrs(self->a));
	ASSERT_EQ(2, bus_send_str(self->b, &x, "z", 0));
	ASSERT_EQ(2, bus_recv(self->a, &m, 0));
}

TEST_F(bus, move_addr_errors)
{
	struct sockaddr_bus b = bus_on(&self->maddr, "b.svc"), mc = bus_on(&self->maddr, "m");
	struct sockaddr_bus handle = bus_on(&self->maddr, ":7");
	struct sockaddr_bus other = bus_addr_abstract("elsewhere", "x");

	/* The master's address, or to its owner already. */
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->ah, SCM_MOVE_ADDR, &self->maddr));
	ASSERT_EQ(EADDRINUSE, errno);
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->bh, SCM_MOVE_ADDR, &b));
	ASSERT_EQ(EADDRINUSE, errno);
	/* An address of another bus. */
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->ah, SCM_MOVE_ADDR, &other));
	ASSERT_EQ(EINVAL, errno);
	/* Only the master moves addresses. */
	errno = 0;
	ASSERT_EQ(-1, grant(self->b, &self->ah, SCM_MOVE_ADDR, &b));
	ASSERT_EQ(EPERM, errno);
	/* A multicast address or a handle is no address to own. */
	mc.sbus_path[BUS_PATH_MAX - 1] = '*';
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->ah, SCM_MOVE_ADDR, &mc));
	ASSERT_EQ(EINVAL, errno);
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->ah, SCM_MOVE_ADDR, &self->bh));
	ASSERT_EQ(EINVAL, errno);
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->ah, SCM_MOVE_ADDR, &handle));
	ASSERT_EQ(EINVAL, errno);
	/* Nothing moved. */
	ASSERT_EQ(1, naddrs(self->a));
	ASSERT_EQ(2, naddrs(self->b));
}

/* A move counts against the destination's limit, and takes nothing then. */
TEST_F(bus, move_addr_enospc_past_the_limit)
{
	struct sockaddr_bus x, b = bus_on(&self->maddr, "b.svc");
	char name[32];
	struct bus_msg m;
	int i;

	for (i = 0; i < 64; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		x = bus_on(&self->maddr, name);
		ASSERT_EQ(0, grant(self->master, &self->ah, SCM_OWNED_ADDR, &x));
		ASSERT_EQ(1, bus_recv(self->a, &m, 0));
	}
	errno = 0;
	ASSERT_EQ(-1, grant(self->master, &self->ah, SCM_MOVE_ADDR, &b));
	ASSERT_EQ(ENOSPC, errno);
	ASSERT_EQ(2, naddrs(self->b));
}

TEST_F(bus, move_addr_is_not_applied_when_the_queue_is_full)
{
	struct sockaddr_bus b = bus_on(&self->maddr, "b.svc");
	struct bus_msg m;
	int n = 0;

	while (bus_send_str(self->master, &self->ah, "f", MSG_DONTWAIT) > 0)
		n++;
	ASSERT_LT(0, n);
	bus_cmsg_add(self->ctl, &self->off, SCM_MOVE_ADDR, &b);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->master, &self->ah, "g", 1, self->ctl, self->off,
			       MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
	/* b keeps the name and gets what is sent to it. */
	ASSERT_EQ(2, naddrs(self->b));
	ASSERT_EQ(2, bus_send_str(self->master, &b, "k", 0));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
}

TEST_F(bus, src_addr_of_a_revoked_address)
{
	struct sockaddr_bus b = bus_on(&self->maddr, "b.svc");
	struct bus_msg m;

	ASSERT_EQ(0, grant(self->master, &self->bh, SCM_REVOKE_ADDR, &b));
	ASSERT_EQ(1, bus_recv(self->b, &m, 0));
	bus_cmsg_add(self->ctl, &self->off, SCM_SRC_ADDR, &b);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->b, &self->maddr, "x", 1, self->ctl, self->off, 0));
	ASSERT_EQ(EADDRNOTAVAIL, errno);
}

TEST_F(bus, bus_policy_is_the_masters)
{
	unsigned int v = BUS_POLICY_MCAST_SEND_GRANTED;
	socklen_t len = sizeof(v);

	errno = 0;
	ASSERT_EQ(-1, setsockopt(self->b, SOL_BUS, BUS_POLICY, &v, sizeof(v)));
	ASSERT_EQ(EPERM, errno);
	ASSERT_EQ(0, setsockopt(self->master, SOL_BUS, BUS_POLICY, &v, sizeof(v)));
	v = 0;
	ASSERT_EQ(0, getsockopt(self->b, SOL_BUS, BUS_POLICY, &v, &len));
	ASSERT_EQ(BUS_POLICY_MCAST_SEND_GRANTED, v);
	v = 1 << 30;
	errno = 0;
	ASSERT_EQ(-1, setsockopt(self->master, SOL_BUS, BUS_POLICY, &v, sizeof(v)));
	ASSERT_EQ(EINVAL, errno);
	errno = 0;
	ASSERT_EQ(-1, setsockopt(self->master, SOL_BUS, BUS_POLICY, &v, 2));
	ASSERT_EQ(EINVAL, errno);
	errno = 0;
	ASSERT_EQ(-1, setsockopt(self->master, SOL_BUS, 12345, &v, sizeof(v)));
	ASSERT_EQ(ENOPROTOOPT, errno);
}

/* Found by bus_fuzz: an unattached socket has no bus, hence no policy. */
TEST(bus_policy_of_an_unattached_socket)
{
	int fd = socket(AF_BUS, SOCK_DGRAM, 0);
	unsigned int v = 0;
	socklen_t len = sizeof(v);

	ASSERT_LE(0, fd);
	errno = 0;
	ASSERT_EQ(-1, getsockopt(fd, SOL_BUS, BUS_POLICY, &v, &len));
	ASSERT_EQ(ENOTCONN, errno);
	errno = 0;
	ASSERT_EQ(-1, setsockopt(fd, SOL_BUS, BUS_POLICY, &v, sizeof(v)));
	ASSERT_EQ(EPERM, errno);
	/* A buffer too short for the word is EINVAL before anything else. */
	len = 2;
	errno = 0;
	ASSERT_EQ(-1, getsockopt(fd, SOL_BUS, BUS_POLICY, &v, &len));
	ASSERT_EQ(EINVAL, errno);
	len = 2;
	errno = 0;
	ASSERT_EQ(-1, getsockopt(fd, SOL_BUS, BUS_DROPS, &v, &len));
	ASSERT_EQ(EINVAL, errno);
	/* An unreadable optlen is EFAULT. */
	errno = 0;
	ASSERT_EQ(-1, getsockopt(fd, SOL_BUS, BUS_POLICY, &v, (socklen_t *)8));
	ASSERT_EQ(EFAULT, errno);
	close(fd);
}

TEST_HARNESS_MAIN
