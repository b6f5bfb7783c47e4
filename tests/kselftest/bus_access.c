// SPDX-License-Identifier: GPL-2.0
/*
 * Who may talk to whom: the master's classes (SCM_POLICY_CLASSES) and
 * address access masks (SCM_ADDR_ACCESS), answers let through by
 * SCM_EXPECT_REPLY (once per call delivered, to whoever got it), every
 * errno, what the receiver sees, masks moving and going with their
 * address, cached routes, and a mask tightened on one vCPU while a member
 * sends or multicasts on another.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/bus.h>
#include "bus_test.h"
#include "kselftest_harness.h"

#define CTL_SPACE (8 * CMSG_SPACE(sizeof(struct bus_addr_access)))

/*
 * The master, and three members: a (owns "a.svc"), b ("b.svc") and c
 * ("c.svc"), with no classes and open addresses.
 */
FIXTURE(bus) {
	int master, a, b, c;
	struct sockaddr_bus maddr, ah, bh, ch, an, bn, cn;
};

FIXTURE_SETUP(bus)
{
	self->master = bus_master("access", &self->maddr);
	ASSERT_LE(0, self->master);
	self->a = socket(AF_BUS, SOCK_DGRAM, 0);
	self->b = socket(AF_BUS, SOCK_DGRAM, 0);
	self->c = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->a, "a.svc", &self->ah));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->b, "b.svc", &self->bh));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->c, "c.svc", &self->ch));
	self->an = bus_on(&self->maddr, "a.svc");
	self->bn = bus_on(&self->maddr, "b.svc");
	self->cn = bus_on(&self->maddr, "c.svc");
}

FIXTURE_TEARDOWN(bus)
{
	close(self->a);
	close(self->b);
	close(self->c);
	close(self->master);
}

static void add_classes(char *ctl, size_t *off, __u64 classes)
{
	struct cmsghdr *c = (struct cmsghdr *)(ctl + *off);

	c->cmsg_level = SOL_BUS;
	c->cmsg_type = SCM_POLICY_CLASSES;
	c->cmsg_len = CMSG_LEN(sizeof(classes));
	memcpy(CMSG_DATA(c), &classes, sizeof(classes));
	*off += CMSG_SPACE(sizeof(classes));
}

static void add_access(char *ctl, size_t *off, const struct sockaddr_bus *a,
		       __u64 talk, __u64 hear)
{
	struct cmsghdr *c = (struct cmsghdr *)(ctl + *off);
	struct bus_addr_access x = { .talk = talk, .hear = hear, .addr = *a };

	c->cmsg_level = SOL_BUS;
	c->cmsg_type = SCM_ADDR_ACCESS;
	c->cmsg_len = CMSG_LEN(sizeof(x));
	memcpy(CMSG_DATA(c), &x, sizeof(x));
	*off += CMSG_SPACE(sizeof(x));
}

static void add_expect_reply(char *ctl, size_t *off)
{
	struct cmsghdr *c = (struct cmsghdr *)(ctl + *off);

	c->cmsg_level = SOL_BUS;
	c->cmsg_type = SCM_EXPECT_REPLY;
	c->cmsg_len = CMSG_LEN(0);
	*off += CMSG_SPACE(0);
}

/* Sends @ctl from the master to @to, and has @fd read it. */
static int grant_ctl(int master, int fd, const struct sockaddr_bus *to,
		     char *ctl, size_t off)
{
	struct bus_msg m;

	if (bus_send(master, to, "g", 1, ctl, off, 0) != 1)
		return -1;
	return bus_recv(fd, &m, 0) == 1 ? 0 : -1;
}

static int set_classes(int master, int fd, const struct sockaddr_bus *to, __u64 classes)
{
	char ctl[CTL_SPACE];
	size_t off = 0;

	add_classes(ctl, &off, classes);
	return grant_ctl(master, fd, to, ctl, off);
}

static int set_access(int master, int fd, const struct sockaddr_bus *to,
		      const struct sockaddr_bus *a, __u64 talk, __u64 hear)
{
	char ctl[CTL_SPACE];
	size_t off = 0;

	add_access(ctl, &off, a, talk, hear);
	return grant_ctl(master, fd, to, ctl, off);
}

/* Sends "q" from @fd to @to expecting an answer. */
static ssize_t send_expecting(int fd, const struct sockaddr_bus *to)
{
	char ctl[CTL_SPACE];
	size_t off = 0;

	add_expect_reply(ctl, &off);
	return bus_send(fd, to, "q", 2, ctl, off, 0);
}

/* Whether @fd has nothing to read. */
static int nothing(int fd)
{
	struct bus_msg m;

	errno = 0;
	return bus_recv(fd, &m, MSG_DONTWAIT) == -1 && errno == EAGAIN;
}

TEST_F(bus, a_talk_mask_refuses_other_classes_by_name_and_handle)
{
	struct bus_msg m;

	ASSERT_EQ(0, set_classes(self->master, self->a, &self->ah, 1));
	ASSERT_EQ(0, set_classes(self->master, self->c, &self->ch, 2 | 4));
	ASSERT_EQ(0, set_access(self->master, self->b, &self->bh, &self->bn, 2, 0));
	/* a has no class of b.svc's talk mask: neither its name nor its
	 * handle lets it in.
	 */
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->bn, "x", 0));
	ASSERT_EQ(EACCES, errno);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->bh, "x", 0));
	ASSERT_EQ(EACCES, errno);
	ASSERT_TRUE(nothing(self->b));
	/* c has. */
	ASSERT_EQ(2, bus_send_str(self->c, &self->bn, "y", 0));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
	ASSERT_STREQ("y", m.data);
	/* b, restricted, still talks to open members. */
	ASSERT_EQ(2, bus_send_str(self->b, &self->an, "z", 0));
	ASSERT_EQ(2, bus_recv(self->a, &m, 0));
	/* Granted the class, a gets through. */
	ASSERT_EQ(0, set_classes(self->master, self->a, &self->ah, 1 | 2));
	ASSERT_EQ(2, bus_send_str(self->a, &self->bh, "w", 0));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
	ASSERT_STREQ("w", m.data);
	/* Opened again (zero masks), everyone may. */
	ASSERT_EQ(0, set_classes(self->master, self->a, &self->ah, 0));
	ASSERT_EQ(0, set_access(self->master, self->b, &self->bh, &self->bn, 0, 0));
	ASSERT_EQ(2, bus_send_str(self->a, &self->bn, "v", 0));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
}

TEST_F(bus, every_talk_mask_of_the_receiver_must_admit)
{
	struct sockaddr_bus b2 = bus_on(&self->maddr, "b2.svc");
	char ctl[CTL_SPACE];
	size_t off = 0;
	struct bus_msg m;

	/* b owns two names: b.svc for class 2, b2.svc for class 4. */
	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &b2);
	add_access(ctl, &off, &self->bn, 2, 0);
	add_access(ctl, &off, &b2, 4, 0);
	ASSERT_EQ(0, grant_ctl(self->master, self->b, &self->bh, ctl, off));
	ASSERT_EQ(0, set_classes(self->master, self->a, &self->ah, 2));
	ASSERT_EQ(0, set_classes(self->master, self->c, &self->ch, 2 | 4));
	/* The open name is no way round the other: a lacks class 4. */
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->bn, "x", 0));
	ASSERT_EQ(EACCES, errno);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &b2, "x", 0));
	ASSERT_EQ(EACCES, errno);
	ASSERT_EQ(2, bus_send_str(self->c, &b2, "y", 0));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
}

TEST_F(bus, a_hear_mask_limits_unicast_and_multicast_receivers)
{
	struct sockaddr_bus all = bus_on(&self->maddr, ""), x = self->maddr;
	char ctl[CTL_SPACE];
	size_t off = 0;
	struct bus_msg m;

	/* a and c hear every multicast (a zero mask). */
	all.sbus_path[BUS_PATH_MAX - 1] = BUS_MULTICAST_MARK;
	all.sbus_addr_ncomp = 1;
	bus_cmsg_add(ctl, &off, SCM_MULTICAST_MATCH, &all);
	add_classes(ctl, &off, 1);
	ASSERT_EQ(0, grant_ctl(self->master, self->a, &self->ah, ctl, off));
	off = 0;
	bus_cmsg_add(ctl, &off, SCM_MULTICAST_MATCH, &all);
	add_classes(ctl, &off, 2);
	ASSERT_EQ(0, grant_ctl(self->master, self->c, &self->ch, ctl, off));
	/* Only class 2 hears b. */
	ASSERT_EQ(0, set_access(self->master, self->b, &self->bh, &self->bn, 0, 2));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->b, &self->an, "u", 0));
	ASSERT_EQ(EACCES, errno);
	ASSERT_EQ(2, bus_send_str(self->b, &self->cn, "u", 0));
	ASSERT_EQ(2, bus_recv(self->c, &m, 0));
	/* A multicast skips a, reaches c. */
	x = all;
	x.sbus_addr[0] = 0x101;
	ASSERT_EQ(2, bus_send_str(self->b, &x, "m", 0));
	ASSERT_EQ(2, bus_recv(self->c, &m, 0));
	ASSERT_STREQ("m", m.data);
	ASSERT_TRUE(nothing(self->a));
	/* a may still talk to b: hearing is b's restriction, not talking. */
	ASSERT_EQ(2, bus_send_str(self->a, &self->bn, "t", 0));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
	/* A talk mask applies to multicast too: c restricted to class 4. */
	ASSERT_EQ(0, set_access(self->master, self->c, &self->ch, &self->cn, 4, 0));
	ASSERT_EQ(0, set_access(self->master, self->b, &self->bh, &self->bn, 0, 0));
	ASSERT_EQ(2, bus_send_str(self->b, &x, "n", 0));
	ASSERT_EQ(2, bus_recv(self->a, &m, 0));
	ASSERT_STREQ("n", m.data);
	ASSERT_TRUE(nothing(self->c));
}

TEST_F(bus, the_master_is_never_checked)
{
	struct bus_msg m;

	/* a: no class hears it, and nobody may talk to it. */
	ASSERT_EQ(0, set_access(self->master, self->a, &self->ah, &self->an, 1 << 7, 1 << 7));
	ASSERT_EQ(2, bus_send_str(self->master, &self->an, "x", 0));
	ASSERT_EQ(2, bus_recv(self->a, &m, 0));
	ASSERT_EQ(2, bus_send_str(self->a, &self->maddr, "y", 0));
	ASSERT_EQ(2, bus_recv(self->master, &m, 0));
	ASSERT_STREQ("y", m.data);
	/* Members are. */
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->b, &self->ah, "z", 0));
	ASSERT_EQ(EACCES, errno);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->bn, "z", 0));
	ASSERT_EQ(EACCES, errno);
}

TEST_F(bus, expect_reply_lets_one_answer_through)
{
	struct sockaddr_bus x = bus_on(&self->maddr, "");
	char ctl[CTL_SPACE];
	size_t off = 0;
	struct bus_msg m;

	/* Only class 4 may talk to a; b (class 2) may not, but a calls b. */
	ASSERT_EQ(0, set_access(self->master, self->a, &self->ah, &self->an, 4, 0));
	ASSERT_EQ(0, set_classes(self->master, self->b, &self->bh, 2));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->b, &self->ah, "r", 0));
	ASSERT_EQ(EACCES, errno);
	/* Without SCM_EXPECT_REPLY, no answer. */
	ASSERT_EQ(2, bus_send_str(self->a, &self->bn, "q", 0));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->b, &m.name, "r", 0));
	ASSERT_EQ(EACCES, errno);
	/* Two calls expecting answers: two answers, by name or handle. */
	ASSERT_EQ(2, send_expecting(self->a, &self->bn));
	ASSERT_EQ(2, send_expecting(self->a, &self->bn));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
	ASSERT_EQ(2, bus_send_str(self->b, &self->an, "r", 0));
	ASSERT_EQ(2, bus_send_str(self->b, &self->ah, "s", 0));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->b, &self->ah, "t", 0));
	ASSERT_EQ(EACCES, errno);
	ASSERT_EQ(2, bus_recv(self->a, &m, 0));
	ASSERT_STREQ("r", m.data);
	ASSERT_EQ(2, bus_recv(self->a, &m, 0));
	ASSERT_STREQ("s", m.data);
	ASSERT_TRUE(nothing(self->a));
	/* An answer is b's to a: c, asked nothing, gets none. */
	ASSERT_EQ(2, send_expecting(self->a, &self->bn));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->c, &self->ah, "t", 0));
	ASSERT_EQ(EACCES, errno);
	/* Nor is it multicast. */
	x.sbus_path[BUS_PATH_MAX - 1] = BUS_MULTICAST_MARK;
	add_expect_reply(ctl, &off);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->a, &x, "m", 2, ctl, off, 0));
	ASSERT_EQ(EINVAL, errno);
}

TEST_F(bus, an_answer_not_delivered_is_given_back)
{
	struct bus_msg m;
	int n = 0;

	ASSERT_EQ(0, set_access(self->master, self->a, &self->ah, &self->an, 4, 0));
	ASSERT_EQ(2, send_expecting(self->a, &self->bn));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
	/* a's queue full: the answer does not go, and stays owed. */
	while (bus_send_str(self->master, &self->an, "f", MSG_DONTWAIT) == 2)
		ASSERT_GT(100000, ++n);
	ASSERT_EQ(EAGAIN, errno);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->b, &self->an, "r", MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
	while (n--)
		ASSERT_EQ(2, bus_recv(self->a, &m, 0));
	ASSERT_EQ(2, bus_send_str(self->b, &self->an, "r", MSG_DONTWAIT));
	ASSERT_EQ(2, bus_recv(self->a, &m, 0));
	ASSERT_STREQ("r", m.data);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->b, &self->an, "r", MSG_DONTWAIT));
	ASSERT_EQ(EACCES, errno);
}

TEST_F(bus, a_tightened_mask_stops_a_cached_route)
{
	struct bus_msg m;

	/* c sends twice: the second time by its cached route. */
	ASSERT_EQ(2, bus_send_str(self->c, &self->bn, "1", 0));
	ASSERT_EQ(2, bus_send_str(self->c, &self->bn, "2", 0));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
	ASSERT_STREQ("2", m.data);
	ASSERT_EQ(0, set_access(self->master, self->b, &self->bh, &self->bn, 2, 0));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->c, &self->bn, "3", 0));
	ASSERT_EQ(EACCES, errno);
	ASSERT_TRUE(nothing(self->b));
	/* The same for the sender's classes taken away. */
	ASSERT_EQ(0, set_classes(self->master, self->c, &self->ch, 2));
	ASSERT_EQ(2, bus_send_str(self->c, &self->bn, "4", 0));
	ASSERT_EQ(2, bus_send_str(self->c, &self->bn, "5", 0));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
	ASSERT_EQ(0, set_classes(self->master, self->c, &self->ch, 1));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->c, &self->bn, "6", 0));
	ASSERT_EQ(EACCES, errno);
}

TEST_F(bus, masks_move_with_their_address_and_go_with_it)
{
	struct sockaddr_bus x = bus_on(&self->maddr, "x.svc");
	char ctl[CTL_SPACE];
	size_t off = 0;
	struct bus_msg m;

	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &x);
	add_access(ctl, &off, &x, 2, 0);
	ASSERT_EQ(0, grant_ctl(self->master, self->b, &self->bh, ctl, off));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->bh, "1", 0));
	ASSERT_EQ(EACCES, errno);
	/* x moves to c: c is restricted, b no longer. */
	off = 0;
	bus_cmsg_add(ctl, &off, SCM_MOVE_ADDR, &x);
	ASSERT_EQ(0, grant_ctl(self->master, self->c, &self->ch, ctl, off));
	ASSERT_EQ(2, bus_send_str(self->a, &self->bh, "2", 0));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &x, "3", 0));
	ASSERT_EQ(EACCES, errno);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->a, &self->cn, "3", 0));
	ASSERT_EQ(EACCES, errno);
	/* Revoked, it takes its masks along; granted again, it is open. */
	off = 0;
	bus_cmsg_add(ctl, &off, SCM_REVOKE_ADDR, &x);
	ASSERT_EQ(0, grant_ctl(self->master, self->c, &self->ch, ctl, off));
	ASSERT_EQ(2, bus_send_str(self->a, &self->cn, "4", 0));
	ASSERT_EQ(2, bus_recv(self->c, &m, 0));
	off = 0;
	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &x);
	ASSERT_EQ(0, grant_ctl(self->master, self->c, &self->ch, ctl, off));
	ASSERT_EQ(2, bus_send_str(self->a, &x, "5", 0));
	ASSERT_EQ(2, bus_recv(self->c, &m, 0));
}

TEST_F(bus, the_receiver_sees_its_classes_and_masks)
{
	char ctl[CTL_SPACE], in[CTL_SPACE], data[8];
	struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) };
	struct msghdr h = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = in, .msg_controllen = sizeof(in),
	};
	struct bus_addr_access got;
	struct cmsghdr *c;
	size_t off = 0;
	__u64 classes;
	int seen = 0;

	add_access(ctl, &off, &self->an, 6, 9);
	add_classes(ctl, &off, 0x8000000000000001ull);
	ASSERT_EQ(1, bus_send(self->master, &self->ah, "g", 1, ctl, off, 0));
	ASSERT_EQ(1, recvmsg(self->a, &h, 0));
	for (c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
		if (c->cmsg_level != SOL_BUS)
			continue;
		if (c->cmsg_type == SCM_POLICY_CLASSES) {
			ASSERT_EQ(CMSG_LEN(8), c->cmsg_len);
			memcpy(&classes, CMSG_DATA(c), 8);
			ASSERT_EQ(0x8000000000000001ull, classes);
			seen |= 1;
		}
		if (c->cmsg_type == SCM_ADDR_ACCESS) {
			ASSERT_EQ(CMSG_LEN(sizeof(got)), c->cmsg_len);
			memcpy(&got, CMSG_DATA(c), sizeof(got));
			ASSERT_EQ(6, got.talk);
			ASSERT_EQ(9, got.hear);
			ASSERT_TRUE(bus_addr_eq(&self->an, &got.addr));
			seen |= 2;
		}
	}
	ASSERT_EQ(3, seen);
}

TEST_F(bus, access_errors)
{
	struct sockaddr_bus x = bus_on(&self->maddr, "x.svc");
	char ctl[CTL_SPACE];
	size_t off = 0;
	struct cmsghdr *c;

	/* An address the destination does not own (b's, or nobody's). */
	add_access(ctl, &off, &self->bn, 1, 0);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->master, &self->ah, "g", 1, ctl, off, 0));
	ASSERT_EQ(EADDRNOTAVAIL, errno);
	off = 0;
	add_access(ctl, &off, &x, 1, 0);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->master, &self->ah, "g", 1, ctl, off, 0));
	ASSERT_EQ(EADDRNOTAVAIL, errno);
	/* Granted earlier in the same message: fine; revoked earlier: not. */
	off = 0;
	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &x);
	add_access(ctl, &off, &x, 1, 0);
	ASSERT_EQ(1, bus_send(self->master, &self->ah, "g", 1, ctl, off, 0));
	off = 0;
	bus_cmsg_add(ctl, &off, SCM_REVOKE_ADDR, &x);
	add_access(ctl, &off, &x, 1, 0);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->master, &self->ah, "g", 1, ctl, off, 0));
	ASSERT_EQ(EADDRNOTAVAIL, errno);
	/* A handle has no masks: it is reserved. */
	off = 0;
	add_access(ctl, &off, &self->ah, 1, 0);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->master, &self->ah, "g", 1, ctl, off, 0));
	ASSERT_EQ(EINVAL, errno);
	/* Only the master. */
	off = 0;
	add_access(ctl, &off, &self->bn, 1, 0);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->a, &self->bn, "g", 1, ctl, off, 0));
	ASSERT_EQ(EPERM, errno);
	off = 0;
	add_classes(ctl, &off, 1);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->a, &self->bn, "g", 1, ctl, off, 0));
	ASSERT_EQ(EPERM, errno);
	/* Sizes: classes of 4 bytes, masks without an address, a reply
	 * flag with data; two of the flag, two of the classes.
	 */
	off = 0;
	add_classes(ctl, &off, 1);
	c = (struct cmsghdr *)ctl;
	c->cmsg_len = CMSG_LEN(4);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->master, &self->ah, "g", 1, ctl, off, 0));
	ASSERT_EQ(EINVAL, errno);
	off = 0;
	add_access(ctl, &off, &self->an, 1, 0);
	c->cmsg_len = CMSG_LEN(16);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->master, &self->ah, "g", 1, ctl, off, 0));
	ASSERT_EQ(EINVAL, errno);
	off = 0;
	add_classes(ctl, &off, 1);
	c->cmsg_type = SCM_EXPECT_REPLY;
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->a, &self->bn, "q", 1, ctl, off, 0));
	ASSERT_EQ(EINVAL, errno);
	off = 0;
	add_expect_reply(ctl, &off);
	add_expect_reply(ctl, &off);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->a, &self->bn, "q", 1, ctl, off, 0));
	ASSERT_EQ(EINVAL, errno);
	off = 0;
	add_classes(ctl, &off, 1);
	add_classes(ctl, &off, 2);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->master, &self->ah, "g", 1, ctl, off, 0));
	ASSERT_EQ(EINVAL, errno);
}

/* Fills @to's queue from the master; *@n messages. */
static void fill(int master, const struct sockaddr_bus *to, int *n)
{
	*n = 0;
	while (bus_send_str(master, to, "f", MSG_DONTWAIT) == 2)
		(*n)++;
}

static void drain(int fd, int n)
{
	struct bus_msg m;

	while (n--)
		bus_recv(fd, &m, 0);
}

TEST_F(bus, a_call_not_delivered_is_owed_no_answer)
{
	char ctl[CTL_SPACE];
	size_t off = 0;
	int n, i;

	/* b may not talk to a; a's calls to b fail, b's queue full. */
	ASSERT_EQ(0, set_access(self->master, self->a, &self->ah, &self->an, 4, 0));
	ASSERT_EQ(0, set_classes(self->master, self->b, &self->bh, 2));
	fill(self->master, &self->bn, &n);
	add_expect_reply(ctl, &off);
	for (i = 0; i < 10; i++) {
		errno = 0;
		ASSERT_EQ(-1, bus_send(self->a, &self->bn, "q", 2, ctl, off, MSG_DONTWAIT));
		ASSERT_EQ(EAGAIN, errno);
	}
	drain(self->b, n);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->b, &self->an, "r", MSG_DONTWAIT));
	ASSERT_EQ(EACCES, errno);
}

TEST_F(bus, retries_push_out_no_answer_owed)
{
	char ctl[CTL_SPACE];
	size_t off = 0;
	struct bus_msg m;
	int n, i;

	ASSERT_EQ(0, set_access(self->master, self->a, &self->ah, &self->an, 4, 0));
	add_expect_reply(ctl, &off);
	/* A call to c, delivered; then 200 tries of one call to a busy b,
	 * as a client that retries on EAGAIN makes them.
	 */
	ASSERT_EQ(2, bus_send(self->a, &self->cn, "q", 2, ctl, off, 0));
	ASSERT_EQ(2, bus_recv(self->c, &m, 0));
	fill(self->master, &self->bn, &n);
	for (i = 0; i < 200; i++)
		ASSERT_EQ(-1, bus_send(self->a, &self->bn, "q", 2, ctl, off, MSG_DONTWAIT));
	drain(self->b, n);
	ASSERT_EQ(2, bus_send_str(self->c, &self->an, "r", MSG_DONTWAIT));
	ASSERT_EQ(2, bus_recv(self->a, &m, 0));
	ASSERT_STREQ("r", m.data);
}

struct blocked {
	int fd;
	struct sockaddr_bus to;
	ssize_t r;
};

static void *blocked_main(void *p)
{
	struct blocked *b = p;
	char ctl[CTL_SPACE];
	size_t off = 0;

	add_expect_reply(ctl, &off);
	b->r = bus_send(b->fd, &b->to, "q", 2, ctl, off, 0);
	return NULL;
}

TEST_F(bus, the_answer_follows_a_call_to_the_new_owner)
{
	struct sockaddr_bus svc = bus_on(&self->maddr, "svc");
	struct blocked bl = { .fd = self->a, .to = svc };
	char ctl[CTL_SPACE];
	size_t off = 0;
	struct bus_msg m;
	pthread_t t;
	int n;

	/* a's call to svc waits for room at b; svc moves to c meanwhile. */
	ASSERT_EQ(0, set_access(self->master, self->a, &self->ah, &self->an, 4, 0));
	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &svc);
	ASSERT_EQ(0, grant_ctl(self->master, self->b, &self->bh, ctl, off));
	fill(self->master, &self->bn, &n);
	ASSERT_EQ(0, pthread_create(&t, NULL, blocked_main, &bl));
	usleep(300000);
	off = 0;
	bus_cmsg_add(ctl, &off, SCM_MOVE_ADDR, &svc);
	ASSERT_EQ(0, grant_ctl(self->master, self->c, &self->ch, ctl, off));
	drain(self->b, n);
	pthread_join(t, NULL);
	ASSERT_EQ(2, bl.r);
	ASSERT_EQ(2, bus_recv(self->c, &m, 0));
	ASSERT_STREQ("q", m.data);
	ASSERT_TRUE(nothing(self->b));
	/* c, which got the call, answers; b, which did not, may not. */
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->b, &self->an, "rb", MSG_DONTWAIT));
	ASSERT_EQ(EACCES, errno);
	ASSERT_EQ(3, bus_send_str(self->c, &self->an, "rc", MSG_DONTWAIT));
	ASSERT_EQ(3, bus_recv(self->a, &m, 0));
	ASSERT_STREQ("rc", m.data);
}

/*
 * A member sends to b.svc as fast as it can on one vCPU while the master
 * closes and opens b.svc's talk mask on another.  b's queue then holds
 * the master's grants and the member's messages in delivery order: no
 * message of the member may sit between a closing grant and the next
 * opening one, whatever route the member had cached.
 */
struct hammer {
	int fd;
	struct sockaddr_bus to;
	volatile int stop;
	int sent, refused;
};

static void *hammer_main(void *p)
{
	struct hammer *h = p;

	while (!h->stop) {
		if (bus_send_str(h->fd, &h->to, "m", MSG_DONTWAIT) == 2)
			h->sent++;
		else if (errno == EACCES)
			h->refused++;
		else
			usleep(100);
	}
	return NULL;
}

/* b's reader: counts, in delivery order, what came while closed. */
struct drain {
	int fd;
	struct sockaddr_bus maddr;
	int got, grants, leaks;
};

static void *drain_main(void *p)
{
	struct drain *d = p;
	struct bus_msg m;

	while (bus_recv(d->fd, &m, 0) > 0) {
		if (!bus_addr_eq(&m.name, &d->maddr)) {
			d->got++;
			/* An odd number of grants: b.svc is closed. */
			d->leaks += d->grants & 1;
		} else if (!strcmp(m.data, "end")) {
			break;
		} else {
			d->grants++;
		}
	}
	return NULL;
}

TEST_F(bus, a_mask_tightened_on_another_vcpu_stops_every_later_send)
{
	struct hammer h = { .fd = self->a, .to = self->bn };
	struct drain d = { .fd = self->b, .maddr = self->maddr };
	char ctl[CTL_SPACE];
	pthread_t th, td;
	int i;

	ASSERT_EQ(0, pthread_create(&td, NULL, drain_main, &d));
	ASSERT_EQ(0, pthread_create(&th, NULL, hammer_main, &h));
	for (i = 0; i < 400; i++) {
		size_t off = 0;

		/* Closed to a (no classes) at even i, open at odd. */
		add_access(ctl, &off, &self->bn, (i & 1) ? 0 : 2, 0);
		ASSERT_EQ(1, bus_send(self->master, &self->bh, "g", 1, ctl, off, 0));
		if (i % 50 == 0)
			usleep(1000);
	}
	h.stop = 1;
	pthread_join(th, NULL);
	ASSERT_EQ(4, bus_send_str(self->master, &self->bn, "end", 0));
	pthread_join(td, NULL);
	TH_LOG("a sent %d, refused %d; b got %d, and %d grants", h.sent, h.refused, d.got,
	       d.grants);
	ASSERT_EQ(400, d.grants);
	ASSERT_EQ(h.sent, d.got);
	ASSERT_EQ(0, d.leaks);
	ASSERT_LT(0, h.refused);
	ASSERT_LT(0, h.sent);
}

/*
 * The same for multicast: a multicasts on one vCPU while the master closes
 * and opens b.svc's talk mask on another, with 24 more receivers to widen
 * the fan-out.  No copy may reach b between a closing grant and the next
 * opening one.
 */
#define NX 24

static void *mhammer_main(void *p)
{
	struct hammer *h = p;

	while (!h->stop)
		if (bus_send_str(h->fd, &h->to, "m", MSG_DONTWAIT) == 2)
			h->sent++;
	return NULL;
}

TEST_F(bus, a_mask_tightened_on_another_vcpu_stops_every_later_multicast)
{
	struct sockaddr_bus all = bus_on(&self->maddr, "");
	struct hammer h = { .fd = self->a };
	struct drain d = { .fd = self->b, .maddr = self->maddr };
	int xs[NX], i, k, sz = 1 << 20;
	char ctl[CTL_SPACE];
	size_t off = 0;
	struct bus_msg m;
	pthread_t th, td;

	all.sbus_path[BUS_PATH_MAX - 1] = BUS_MULTICAST_MARK;
	all.sbus_addr_ncomp = 1;
	bus_cmsg_add(ctl, &off, SCM_MULTICAST_MATCH, &all);
	ASSERT_EQ(0, grant_ctl(self->master, self->b, &self->bh, ctl, off));
	for (i = 0; i < NX; i++) {
		struct sockaddr_bus xh;
		char name[16];

		snprintf(name, sizeof(name), "x%d", i);
		xs[i] = socket(AF_BUS, SOCK_DGRAM, 0);
		ASSERT_EQ(0, bus_join(self->master, &self->maddr, xs[i], name, &xh));
		ASSERT_EQ(0, grant_ctl(self->master, xs[i], &xh, ctl, off));
		ASSERT_EQ(0, setsockopt(xs[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)));
	}
	h.to = all;
	h.to.sbus_addr[0] = 0x101;
	ASSERT_EQ(0, pthread_create(&td, NULL, drain_main, &d));
	ASSERT_EQ(0, pthread_create(&th, NULL, mhammer_main, &h));
	for (i = 0; i < 1000; i++) {
		off = 0;
		add_access(ctl, &off, &self->bn, (i & 1) ? 0 : 2, 0);
		ASSERT_EQ(1, bus_send(self->master, &self->bh, "g", 1, ctl, off, 0));
		if (i % 16 == 0)
			for (k = 0; k < NX; k++)
				while (bus_recv(xs[k], &m, MSG_DONTWAIT) > 0)
					;
	}
	h.stop = 1;
	pthread_join(th, NULL);
	ASSERT_EQ(4, bus_send_str(self->master, &self->bn, "end", 0));
	pthread_join(td, NULL);
	for (i = 0; i < NX; i++)
		close(xs[i]);
	TH_LOG("a multicast %d; b got %d, and %d grants", h.sent, d.got, d.grants);
	ASSERT_EQ(1000, d.grants);
	ASSERT_EQ(0, d.leaks);
	ASSERT_LT(0, d.got);
}

TEST_HARNESS_MAIN
