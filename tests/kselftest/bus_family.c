// SPDX-License-Identifier: GPL-2.0
/*
 * AF_BUS family: numbers, socket types, unsupported operations, the
 * name of an unattached socket, /proc/net/bus, and module unload rules.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/bus.h>
#include "bus_test.h"
#include "kselftest_harness.h"

#define AF_BUS_KO "/lib/modules/af_bus.ko"

static int module_loaded(void)
{
	char line[256];
	FILE *f = fopen("/proc/modules", "r");
	int found = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "af_bus ", 7))
			found = 1;
	fclose(f);
	return found;
}

static int load_module(void)
{
	int fd = open(AF_BUS_KO, O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -1;
	ret = syscall(SYS_finit_module, fd, "", 0);
	close(fd);
	return ret;
}

TEST(numbers)
{
	ASSERT_EQ(46, AF_BUS);
	ASSERT_EQ(AF_BUS, PF_BUS);
	ASSERT_EQ(288, SOL_BUS);
	ASSERT_EQ(SOL_BUS, BUS_SOCKET);
	ASSERT_EQ(128, sizeof(struct sockaddr_bus));
	ASSERT_EQ(64, offsetof(struct sockaddr_bus, sbus_addr));
	ASSERT_EQ(4, offsetof(struct sockaddr_bus, sbus_path));
	ASSERT_EQ(64, BUS_ADDR_MAX);
	ASSERT_GE(sizeof(struct sockaddr_storage), sizeof(struct sockaddr_bus));
}

TEST(dgram_socket)
{
	int fd = socket(AF_BUS, SOCK_DGRAM, 0);
	int type = 0, domain = 0;
	socklen_t len = sizeof(type);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len));
	ASSERT_EQ(SOCK_DGRAM, type);
	len = sizeof(domain);
	ASSERT_EQ(0, getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len));
	ASSERT_EQ(AF_BUS, domain);
	ASSERT_EQ(0, close(fd));

	fd = socket(PF_BUS, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(O_NONBLOCK, fcntl(fd, F_GETFL) & O_NONBLOCK);
	ASSERT_EQ(FD_CLOEXEC, fcntl(fd, F_GETFD));
	close(fd);
}

TEST(other_types_esocktnosupport)
{
	int types[] = { SOCK_STREAM, SOCK_SEQPACKET, SOCK_RAW, SOCK_RDM };
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(types); i++) {
		errno = 0;
		EXPECT_EQ(-1, socket(AF_BUS, types[i], 0));
		EXPECT_EQ(ESOCKTNOSUPPORT, errno)
			TH_LOG("type %d", types[i]);
	}
}

TEST(protocol_eprotonosupport)
{
	errno = 0;
	ASSERT_EQ(-1, socket(AF_BUS, SOCK_DGRAM, 1));
	ASSERT_EQ(EPROTONOSUPPORT, errno);
	errno = 0;
	ASSERT_EQ(-1, socket(AF_BUS, SOCK_DGRAM, -1));
	ASSERT_EQ(EPROTONOSUPPORT, errno);
}

TEST(no_stream_operations)
{
	struct sockaddr_bus a = bus_addr_str("/tmp/none", "x");
	int fd = socket(AF_BUS, SOCK_DGRAM, 0);

	ASSERT_LE(0, fd);
	errno = 0;
	EXPECT_EQ(-1, connect(fd, (struct sockaddr *)&a, sizeof(a)));
	EXPECT_EQ(EOPNOTSUPP, errno);
	errno = 0;
	EXPECT_EQ(-1, listen(fd, 1));
	EXPECT_EQ(EOPNOTSUPP, errno);
	errno = 0;
	EXPECT_EQ(-1, accept(fd, NULL, NULL));
	EXPECT_EQ(EOPNOTSUPP, errno);
	errno = 0;
	EXPECT_EQ(-1, shutdown(fd, SHUT_RDWR));
	EXPECT_EQ(EOPNOTSUPP, errno);
	close(fd);
}

TEST(socketpair_eopnotsupp)
{
	int sv[2];

	errno = 0;
	ASSERT_EQ(-1, socketpair(AF_BUS, SOCK_DGRAM, 0, sv));
	ASSERT_EQ(EOPNOTSUPP, errno);
}

TEST(unattached_name)
{
	struct sockaddr_bus a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_BUS, SOCK_DGRAM, 0);
	char zero[BUS_PATH_MAX] = { 0 };

	ASSERT_LE(0, fd);
	memset(&a, 0xa5, sizeof(a));
	ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)&a, &len));
	ASSERT_EQ(sizeof(struct sockaddr_bus), len);
	ASSERT_EQ(AF_BUS, a.sbus_family);
	ASSERT_EQ(0, a.sbus_addr_ncomp);
	ASSERT_EQ(0, memcmp(a.sbus_path, zero, sizeof(zero)));

	len = sizeof(a);
	errno = 0;
	ASSERT_EQ(-1, getpeername(fd, (struct sockaddr *)&a, &len));
	ASSERT_EQ(ENOTCONN, errno);
	close(fd);
}

TEST(proc_net_bus)
{
	struct sockaddr_bus a = bus_addr_abstract("proc-test", "org.proc");
	char line[512], want_master[64], want_other[64];
	int fd = socket(AF_BUS, SOCK_DGRAM, 0);
	int other = socket(AF_BUS, SOCK_DGRAM, 0);
	int found_master = 0, found_other = 0;
	struct stat st;
	FILE *f;

	ASSERT_LE(0, fd);
	ASSERT_LE(0, other);
	ASSERT_EQ(0, bind(fd, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_EQ(0, fstat(fd, &st));
	snprintf(want_master, sizeof(want_master),
		 "%lu master @proc-test - 1 0 0\n", (unsigned long)st.st_ino);
	ASSERT_EQ(0, fstat(other, &st));
	snprintf(want_other, sizeof(want_other),
		 "%lu unattached - - 0 0 0\n", (unsigned long)st.st_ino);

	f = fopen("/proc/net/bus", "r");
	ASSERT_NE(NULL, f);
	ASSERT_NE(NULL, fgets(line, sizeof(line), f));
	ASSERT_STREQ("Inode Role Path Handle Addrs Queue Drops\n", line);
	while (fgets(line, sizeof(line), f)) {
		found_master += !strcmp(line, want_master);
		found_other += !strcmp(line, want_other);
	}
	fclose(f);
	EXPECT_EQ(1, found_master);
	EXPECT_EQ(1, found_other);
	close(fd);
	close(other);

	/* Gone once closed. */
	f = fopen("/proc/net/bus", "r");
	ASSERT_NE(NULL, f);
	found_master = 0;
	while (fgets(line, sizeof(line), f))
		found_master += !!strstr(line, "@proc-test");
	fclose(f);
	EXPECT_EQ(0, found_master);
}

TEST(rmmod_with_live_socket_fails)
{
	int fd;

	ASSERT_EQ(1, module_loaded());
	fd = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_LE(0, fd);

	/*
	 * delete_module(2) reports a module in use as EWOULDBLOCK (EAGAIN);
	 * see Documentation/af_bus.rst for why not EBUSY.
	 */
	errno = 0;
	ASSERT_EQ(-1, syscall(SYS_delete_module, "af_bus", O_NONBLOCK));
	ASSERT_EQ(EWOULDBLOCK, errno);
	ASSERT_EQ(1, module_loaded());
	close(fd);
}

TEST(rmmod_after_close_then_reload)
{
	struct sockaddr_bus a = bus_addr_abstract("unload-test", "m");
	int fd, master;

	/* A socket and a bus master, both closed before unloading. */
	fd = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_LE(0, fd);
	master = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_LE(0, master);
	ASSERT_EQ(0, bind(master, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_EQ(0, close(fd));
	ASSERT_EQ(0, close(master));

	ASSERT_EQ(0, syscall(SYS_delete_module, "af_bus", O_NONBLOCK));
	ASSERT_EQ(0, module_loaded());

	/* No family without the module (auto-loading is not wired up here). */
	errno = 0;
	EXPECT_EQ(-1, socket(AF_BUS, SOCK_DGRAM, 0));
	EXPECT_EQ(EAFNOSUPPORT, errno);
	ASSERT_NE(0, access("/proc/net/bus", F_OK));

	ASSERT_EQ(0, load_module());
	ASSERT_EQ(1, module_loaded());
	fd = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_LE(0, fd);
	/* The abstract name died with its master and the old module. */
	ASSERT_EQ(0, bind(fd, (struct sockaddr *)&a, sizeof(a)));
	close(fd);
}

TEST_HARNESS_MAIN
