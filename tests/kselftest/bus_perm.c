// SPDX-License-Identifier: GPL-2.0
/*
 * Permissions, as an unprivileged user: reaching a filesystem bus needs
 * write permission on its inode; no grants without being the master; no
 * address one does not own; nobody reads another member's unicast.
 */
#define _GNU_SOURCE
#include <errno.h>
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

#define BUS_DIR "/tmp/af_bus_perm"
#define NOBODY 65534

/* Runs @fn as uid/gid NOBODY in a child; returns its exit status. */
static int as_nobody(int (*fn)(void *), void *arg)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (setgid(NOBODY) || setuid(NOBODY))
			_exit(100);
		_exit(fn(arg));
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

FIXTURE(fsbus) {
	int master;
	struct sockaddr_bus maddr;
};

FIXTURE_SETUP(fsbus)
{
	mkdir(BUS_DIR, 0777);
	chmod(BUS_DIR, 0777);
	unlink(BUS_DIR "/bus");
	self->maddr = bus_addr_str(BUS_DIR "/bus", "master");
	self->master = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bind(self->master, (struct sockaddr *)&self->maddr, sizeof(self->maddr)));
}

FIXTURE_TEARDOWN(fsbus)
{
	close(self->master);
	unlink(BUS_DIR "/bus");
}

static int try_join(void *arg)
{
	int fd = socket(AF_BUS, SOCK_DGRAM, 0);

	if (bus_send_str(fd, arg, "hello", 0) == 6)
		return 0;
	return errno == EACCES ? 1 : 2;
}

TEST_F(fsbus, joining_needs_write_permission_on_the_inode)
{
	struct bus_msg m;

	ASSERT_EQ(0, chmod(BUS_DIR "/bus", 0755));
	ASSERT_EQ(1, as_nobody(try_join, &self->maddr));
	ASSERT_EQ(0, chmod(BUS_DIR "/bus", 0757));
	ASSERT_EQ(0, as_nobody(try_join, &self->maddr));
	ASSERT_EQ(6, bus_recv(self->master, &m, 0));
	/* A directory it cannot search hides the bus too. */
	ASSERT_EQ(0, chmod(BUS_DIR, 0700));
	ASSERT_EQ(1, as_nobody(try_join, &self->maddr));
	chmod(BUS_DIR, 0777);
}

struct member_ctx {
	int fd;
	struct sockaddr_bus maddr, other, mine;
};

static int try_grant(void *arg)
{
	struct member_ctx *c = arg;
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
	size_t off = 0;

	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &c->mine);
	if (bus_send(c->fd, &c->maddr, "g", 1, ctl, off, 0) != -1)
		return 2;
	return errno == EPERM ? 0 : 3;
}

static int try_spoof_source(void *arg)
{
	struct member_ctx *c = arg;
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
	size_t off = 0;

	bus_cmsg_add(ctl, &off, SCM_SRC_ADDR, &c->other);
	if (bus_send(c->fd, &c->maddr, "s", 1, ctl, off, 0) != -1)
		return 2;
	if (errno != EADDRNOTAVAIL)
		return 3;
	off = 0;
	bus_cmsg_add(ctl, &off, SCM_SRC_ADDR, &c->maddr);
	if (bus_send(c->fd, &c->maddr, "s", 1, ctl, off, 0) != -1)
		return 4;
	return errno == EADDRNOTAVAIL ? 0 : 5;
}

static int try_spoof_creds(void *arg)
{
	struct member_ctx *c = arg;
	char ctl[CMSG_SPACE(sizeof(struct ucred))];
	struct cmsghdr *h = (struct cmsghdr *)ctl;
	struct ucred u = { getpid(), 0, 0 };

	memset(ctl, 0, sizeof(ctl));
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_CREDENTIALS;
	h->cmsg_len = CMSG_LEN(sizeof(u));
	memcpy(CMSG_DATA(h), &u, sizeof(u));
	if (bus_send(c->fd, &c->maddr, "c", 1, ctl, sizeof(ctl), 0) != -1)
		return 2;
	return errno == EPERM ? 0 : 3;
}

static int try_steal_name(void *arg)
{
	struct member_ctx *c = arg;
	int fd = socket(AF_BUS, SOCK_DGRAM, 0);

	/* Binding the bus's name again, or another member's address. */
	if (bind(fd, (struct sockaddr *)&c->maddr, sizeof(c->maddr)) != -1)
		return 2;
	if (errno != EADDRINUSE)
		return 3;
	close(fd);
	return 0;
}

TEST_F(fsbus, unprivileged_member_cannot_grant_spoof_or_steal)
{
	struct member_ctx c = { .maddr = self->maddr };
	int victim = socket(AF_BUS, SOCK_DGRAM, 0);
	struct bus_msg m;

	ASSERT_EQ(0, chmod(BUS_DIR "/bus", 0777));
	c.fd = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, c.fd, "me", NULL));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, victim, "victim", NULL));
	c.other = bus_on(&self->maddr, "victim");
	c.mine = bus_on(&self->maddr, "stolen");
	ASSERT_EQ(0, as_nobody(try_grant, &c));
	ASSERT_EQ(0, as_nobody(try_spoof_source, &c));
	ASSERT_EQ(0, as_nobody(try_spoof_creds, &c));
	ASSERT_EQ(0, as_nobody(try_steal_name, &c));
	/* Nothing of that reached the master. */
	errno = 0;
	ASSERT_EQ(-1, bus_recv(self->master, &m, MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
	close(victim);
	close(c.fd);
}

TEST_F(fsbus, unicast_reaches_its_owner_only)
{
	int a = socket(AF_BUS, SOCK_DGRAM, 0), b = socket(AF_BUS, SOCK_DGRAM, 0);
	int c = socket(AF_BUS, SOCK_DGRAM, 0);
	struct sockaddr_bus baddr = bus_on(&self->maddr, "b");
	struct bus_msg m;

	ASSERT_EQ(0, bus_join(self->master, &self->maddr, a, "a", NULL));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, b, "b", NULL));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, c, "c", NULL));
	ASSERT_EQ(7, bus_send_str(a, &baddr, "secret", 0));
	errno = 0;
	ASSERT_EQ(-1, bus_recv(c, &m, MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
	errno = 0;
	ASSERT_EQ(-1, bus_recv(self->master, &m, MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
	ASSERT_EQ(7, bus_recv(b, &m, 0));
	close(a);
	close(b);
	close(c);
}

TEST_HARNESS_MAIN
