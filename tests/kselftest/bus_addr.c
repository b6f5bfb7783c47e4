// SPDX-License-Identifier: GPL-2.0
/*
 * AF_BUS addresses and bind(): both layouts, filesystem and abstract
 * buses, every malformed-address EINVAL, EADDRINUSE, getsockname, and the
 * design documents' bind examples.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/bus.h>
#include "bus_test.h"
#include "kselftest_harness.h"

#define DIR "/tmp/af_bus_addr"

static int bind_raw(int fd, const void *addr, socklen_t len)
{
	return bind(fd, (const struct sockaddr *)addr, len);
}

FIXTURE(sock) {
	int fd;
};

FIXTURE_SETUP(sock)
{
	mkdir(DIR, 0755);
	self->fd = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_LE(0, self->fd);
}

FIXTURE_TEARDOWN(sock)
{
	close(self->fd);
}

/* The English design document's master, as written there. */
TEST_F(sock, english_seed_master_bind)
{
	char bus_path[] = DIR "/test"; /* non-abstract path */
	char bus_addr[] = "org.example.bus";
	struct sockaddr_bus addr = { .sbus_family = AF_BUS };
	struct sockaddr_bus name;
	socklen_t len = sizeof(name);
	struct stat st;
	int bus_fd;

	unlink(bus_path);
	strncpy(addr.sbus_path, bus_path, BUS_PATH_MAX - 2);
	memcpy(addr.sbus_addr, bus_addr, MIN(sizeof(bus_addr), BUS_ADDR_MAX));
	addr.sbus_addr_ncomp = MIN(ALIGN(sizeof(bus_addr), 8) / 8, BUS_ADDR_COMP_MAX);
	bus_fd = socket(AF_BUS, SOCK_DGRAM, 0); /* creates a Bus, becomes the master of the bus */
	ASSERT_LE(0, bus_fd);
	ASSERT_EQ(0, bind(bus_fd, (struct sockaddr *)&addr, sizeof(struct sockaddr_bus)));

	ASSERT_EQ(0, stat(bus_path, &st));
	ASSERT_TRUE(S_ISSOCK(st.st_mode));
	ASSERT_EQ(0, getsockname(bus_fd, (struct sockaddr *)&name, &len));
	ASSERT_EQ(sizeof(name), len);
	ASSERT_EQ(2, name.sbus_addr_ncomp);
	ASSERT_EQ(0, memcmp(&name, &addr, sizeof(name)));
	close(bus_fd);
	unlink(bus_path);
}

/* The Chinese design document's system bus: ncomp 3, fixed layout. */
TEST_F(sock, chinese_seed_system_bus_bind)
{
	struct sockaddr_bus addr = {
		.sbus_family = AF_BUS,
		.sbus_addr_ncomp = 3
	};
	struct sockaddr_bus name;
	socklen_t len = sizeof(name);

	mkdir("/var/run", 0755);
	unlink("/var/run/system_bus");
	memcpy(addr.sbus_path, "/var/run/system_bus",
	       sizeof("/var/run/system_bus"));
	memcpy(addr.sbus_addr, "org.freedesktop.DBus",
	       sizeof("org.freedesktop.DBus"));

	ASSERT_EQ(0, bind(self->fd, (struct sockaddr *)&addr, sizeof(struct sockaddr_bus)));
	ASSERT_EQ(0, getsockname(self->fd, (struct sockaddr *)&name, &len));
	ASSERT_EQ(3, name.sbus_addr_ncomp);
	ASSERT_STREQ("/var/run/system_bus", name.sbus_path);
	ASSERT_STREQ("org.freedesktop.DBus", (char *)name.sbus_addr);
	unlink("/var/run/system_bus");
}

TEST_F(sock, compact_layout_bind_and_fixed_name)
{
	char path_part[32] = DIR "/compact";
	unsigned char raw[sizeof(struct sockaddr_bus)];
	struct sockaddr_bus name;
	socklen_t len = sizeof(name), alen;
	char addr[8] = "1.1";
	struct stat st;

	unlink(DIR "/compact");
	alen = bus_addr_compact(raw, path_part, sizeof(path_part), addr, 1);
	ASSERT_EQ(4 + 32 + 8, alen);
	ASSERT_EQ(0, bind_raw(self->fd, raw, alen));
	ASSERT_EQ(0, stat(DIR "/compact", &st));
	ASSERT_TRUE(S_ISSOCK(st.st_mode));

	ASSERT_EQ(0, getsockname(self->fd, (struct sockaddr *)&name, &len));
	ASSERT_EQ(sizeof(struct sockaddr_bus), len);
	ASSERT_EQ(AF_BUS, name.sbus_family);
	ASSERT_EQ(1, name.sbus_addr_ncomp);
	ASSERT_STREQ(DIR "/compact", name.sbus_path);
	ASSERT_EQ(0, memcmp(name.sbus_addr, addr, 8));
	unlink(DIR "/compact");
}

TEST_F(sock, abstract_bind_no_inode_and_eaddrinuse)
{
	struct sockaddr_bus a = bus_addr_abstract("abstract-test", "org.a");
	struct sockaddr_bus name;
	socklen_t len = sizeof(name);
	int other = socket(AF_BUS, SOCK_DGRAM, 0);

	ASSERT_LE(0, other);
	ASSERT_EQ(0, bind(self->fd, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_EQ(0, getsockname(self->fd, (struct sockaddr *)&name, &len));
	ASSERT_EQ(0, memcmp(&name, &a, sizeof(a)));

	/* Same name, any address part: the bus exists. */
	a = bus_addr_abstract("abstract-test", "org.b");
	errno = 0;
	ASSERT_EQ(-1, bind(other, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_EQ(EADDRINUSE, errno);

	/* The name is free again once its master is gone. */
	close(self->fd);
	self->fd = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bind(other, (struct sockaddr *)&a, sizeof(a)));
	close(other);
}

TEST_F(sock, abstract_names_are_per_netns)
{
	struct sockaddr_bus a = bus_addr_abstract("netns-test", "org.a");
	int status;
	pid_t pid;

	ASSERT_EQ(0, bind(self->fd, (struct sockaddr *)&a, sizeof(a)));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd;

		if (unshare(CLONE_NEWNET))
			_exit(2);
		fd = socket(AF_BUS, SOCK_DGRAM, 0);
		if (fd < 0)
			_exit(3);
		_exit(bind(fd, (struct sockaddr *)&a, sizeof(a)) ? 4 : 0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
}

TEST_F(sock, path_exists_eaddrinuse_until_unlinked)
{
	struct sockaddr_bus a = bus_addr_str(DIR "/inuse", "org.a");
	int other = socket(AF_BUS, SOCK_DGRAM, 0);
	FILE *f;

	ASSERT_LE(0, other);
	unlink(DIR "/inuse");
	f = fopen(DIR "/inuse", "w");
	ASSERT_NE(NULL, f);
	fclose(f);
	errno = 0;
	ASSERT_EQ(-1, bind(self->fd, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_EQ(EADDRINUSE, errno);
	ASSERT_EQ(0, unlink(DIR "/inuse"));

	ASSERT_EQ(0, bind(self->fd, (struct sockaddr *)&a, sizeof(a)));
	errno = 0;
	ASSERT_EQ(-1, bind(other, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_EQ(EADDRINUSE, errno);

	/* As for AF_UNIX, the inode outlives its socket. */
	close(self->fd);
	self->fd = socket(AF_BUS, SOCK_DGRAM, 0);
	errno = 0;
	ASSERT_EQ(-1, bind(other, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_EQ(EADDRINUSE, errno);
	ASSERT_EQ(0, unlink(DIR "/inuse"));
	ASSERT_EQ(0, bind(other, (struct sockaddr *)&a, sizeof(a)));
	close(other);
	unlink(DIR "/inuse");
}

TEST_F(sock, bind_twice_einval)
{
	struct sockaddr_bus a = bus_addr_abstract("twice-1", "x");
	struct sockaddr_bus b = bus_addr_abstract("twice-2", "x");
	struct sockaddr_bus c = bus_addr_str(DIR "/twice", "x");
	struct stat st;

	unlink(DIR "/twice");
	ASSERT_EQ(0, bind(self->fd, (struct sockaddr *)&a, sizeof(a)));
	errno = 0;
	ASSERT_EQ(-1, bind(self->fd, (struct sockaddr *)&b, sizeof(b)));
	ASSERT_EQ(EINVAL, errno);
	errno = 0;
	ASSERT_EQ(-1, bind(self->fd, (struct sockaddr *)&c, sizeof(c)));
	ASSERT_EQ(EINVAL, errno);
	/* The refused filesystem bind left no inode behind. */
	ASSERT_EQ(-1, stat(DIR "/twice", &st));
	ASSERT_EQ(ENOENT, errno);
}

TEST_F(sock, bind_missing_directory_enoent)
{
	struct sockaddr_bus a = bus_addr_str(DIR "/no/such/dir", "x");

	errno = 0;
	ASSERT_EQ(-1, bind(self->fd, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_EQ(ENOENT, errno);
}

TEST_F(sock, bind_unwritable_directory_eacces)
{
	struct sockaddr_bus a = bus_addr_str(DIR "/ro/bus", "x");
	int status;
	pid_t pid;

	mkdir(DIR "/ro", 0755);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd;

		if (setgid(65534) || setuid(65534))
			_exit(2);
		fd = socket(AF_BUS, SOCK_DGRAM, 0);
		if (fd < 0)
			_exit(3);
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			_exit(4);
		_exit(errno == EACCES ? 0 : 5);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
}

TEST_F(sock, socket_inode_mode_follows_umask)
{
	struct sockaddr_bus a = bus_addr_str(DIR "/mode", "x");
	mode_t old = umask(027);
	struct stat st;

	unlink(DIR "/mode");
	ASSERT_EQ(0, bind(self->fd, (struct sockaddr *)&a, sizeof(a)));
	umask(old);
	ASSERT_EQ(0, stat(DIR "/mode", &st));
	ASSERT_EQ(0750, st.st_mode & 0777);
	unlink(DIR "/mode");
}

/* Every malformed address is EINVAL, and leaves the socket unattached. */
TEST_F(sock, malformed_einval)
{
	struct sockaddr_bus good = bus_addr_abstract("einval", "org.x");
	struct sockaddr_bus a;
	unsigned char raw[sizeof(struct sockaddr_bus) + 8];
	char path[BUS_PATH_MAX];
	socklen_t len;

#define EXPECT_EINVAL(addr, alen) do {						\
		errno = 0;							\
		EXPECT_EQ(-1, bind_raw(self->fd, (addr), (alen)));		\
		EXPECT_EQ(EINVAL, errno);					\
	} while (0)

	/* Wrong family. */
	a = good;
	a.sbus_family = AF_UNIX;
	EXPECT_EINVAL(&a, sizeof(a));
	/* Shorter than the header. */
	EXPECT_EINVAL(&good, 0);
	EXPECT_EINVAL(&good, 2);
	EXPECT_EINVAL(&good, 3);
	/* Longer than struct sockaddr_storage (refused by the socket layer). */
	memset(raw, 0, sizeof(raw));
	memcpy(raw, &good, sizeof(good));
	EXPECT_EINVAL(raw, sizeof(raw));
	/* ncomp > BUS_ADDR_COMP_MAX. */
	a = good;
	a.sbus_addr_ncomp = BUS_ADDR_COMP_MAX + 1;
	EXPECT_EINVAL(&a, sizeof(a));
	a.sbus_addr_ncomp = 0xffff;
	EXPECT_EINVAL(&a, sizeof(a));
	/* A path part with no NUL. */
	memset(path, 'p', sizeof(path));
	a = bus_addr(path, sizeof(path), "x", 2);
	EXPECT_EINVAL(&a, sizeof(a));
	/* An abstract name with no NUL after it. */
	path[0] = 0;
	a = bus_addr(path, sizeof(path), "x", 2);
	EXPECT_EINVAL(&a, sizeof(a));
	/* Empty path, empty abstract name. */
	a = bus_addr("", 1, "x", 2);
	EXPECT_EINVAL(&a, sizeof(a));
	len = bus_addr_compact(raw, "\0\0", 2, "x\0\0\0\0\0\0\0", 1);
	EXPECT_EINVAL(raw, len);
	/* The kernel address (ncomp 0) cannot be bound. */
	a = good;
	a.sbus_addr_ncomp = 0;
	EXPECT_EINVAL(&a, sizeof(a));
	/* Handles are reserved. */
	a = bus_addr_abstract("einval", ":1");
	EXPECT_EINVAL(&a, sizeof(a));
	/* A multicast address where a unicast one is needed. */
	a = good;
	a.sbus_path[BUS_PATH_MAX - 1] = '*';
	EXPECT_EINVAL(&a, sizeof(a));
	len = bus_addr_compact(raw, "/tmp/m\0*", 8, "\xff\0\0\0\0\0\0\0", 1);
	EXPECT_EINVAL(raw, len);
	/* Compact: no room for the address part, or no path part at all. */
	len = bus_addr_compact(raw, "", 0, "org.xxxxorg.yyyy", 2);
	EXPECT_EINVAL(raw, len);
	EXPECT_EINVAL(raw, 4 + 8);
	/* Compact: a path part longer than BUS_PATH_MAX. */
	memset(path, 'q', sizeof(path));
	memset(raw, 0, sizeof(raw));
	len = bus_addr_compact(raw, DIR, sizeof(DIR) - 1, "", 0);
	memset(raw + 4, 'q', BUS_PATH_MAX);
	raw[4 + BUS_PATH_MAX] = 0;
	raw[2] = 1;
	EXPECT_EINVAL(raw, 4 + BUS_PATH_MAX + 1 + 8);
#undef EXPECT_EINVAL

	/* After all that, the socket can still become a master. */
	ASSERT_EQ(0, bind(self->fd, (struct sockaddr *)&good, sizeof(good)));
}

TEST_HARNESS_MAIN
