// SPDX-License-Identifier: GPL-2.0
/*
 * Joining a bus: the design documents' master/endpoint sequences as they
 * are written there, handles, SCM_OWNED_ADDR, SCM_SRC_ADDR and
 * SCM_DST_ADDR, getsockname and BUS_ADDRS.
 */
#define _GNU_SOURCE
#include <alloca.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/bus.h>
#include "bus_test.h"
#include "kselftest_harness.h"

/*
 * The English seed, verbatim but for the helper macros of bus_test.h, the
 * declarations it omits, and the bus path (under /tmp).
 */
TEST(english_seed)
{
	char bus_path[] = "/tmp/test"; /* non-abstract path */
	char bus_addr[] = "org.example.bus";
	struct sockaddr_bus addr = { .sbus_family = AF_BUS };
	int bus_fd, fd;
	struct msghdr msghdr;
	struct cmsghdr *cmsg;
	struct ucred *ucred;
	char auth_buf[] = "AUTH", reply_buf[] = "OK", msg_buf[] = "hi";
	struct iovec auth_iovec = { auth_buf, sizeof(auth_buf) };
	struct iovec reply_iovec = { reply_buf, sizeof(reply_buf) };
	struct iovec msg_iovec = { msg_buf, sizeof(msg_buf) };
	struct sockaddr_bus from, dst_addr, name;
	char rbuf[64];
	struct iovec riov = { rbuf, sizeof(rbuf) };
	char rctl[1024];
	int auth_ok = 1, got_owned = 0, got_cred = 0;
	socklen_t len;

	unlink(bus_path);
	/* The [bus master] acts: */
	strncpy(addr.sbus_path, bus_path, BUS_PATH_MAX - 2);
	memcpy(addr.sbus_addr, bus_addr, MIN(sizeof(bus_addr), BUS_ADDR_MAX));
	addr.sbus_addr_ncomp = MIN(ALIGN(sizeof(bus_addr), 8) / 8, BUS_ADDR_COMP_MAX);
	bus_fd = socket(AF_BUS, SOCK_DGRAM, 0); /* creates a Bus, becomes the master of the bus */
	ASSERT_EQ(0, bind(bus_fd, (struct sockaddr *)&addr, sizeof(struct sockaddr_bus)));

	/* The [bus endpoint] acts: */
	fd = socket(AF_BUS, SOCK_DGRAM, 0);
	/* AUTH message setup */
	msghdr = (struct msghdr) {
		.msg_name = &addr, /* bus master's addr */
		.msg_namelen = sizeof(struct sockaddr_bus),
		.msg_iov = &auth_iovec,
		.msg_iovlen = 1,
	};
	msghdr.msg_controllen = CMSG_SPACE(sizeof(struct ucred));
	msghdr.msg_control = alloca(msghdr.msg_controllen);
	cmsg = CMSG_FIRSTHDR(&msghdr);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_CREDENTIALS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(struct ucred));
	ucred = (struct ucred *) CMSG_DATA(cmsg);
	ucred->pid = getpid();
	ucred->uid = getuid();
	ucred->gid = getgid();
	ASSERT_EQ(sizeof(auth_buf), sendmsg(fd, &msghdr, MSG_NOSIGNAL));

	/* The [bus master] acts: */
	int optval = 1;
	setsockopt(bus_fd, SOL_SOCKET, SO_PASSCRED, &optval, sizeof(optval));
	msghdr = (struct msghdr) {
		.msg_name = &from, .msg_namelen = sizeof(from),
		.msg_iov = &riov, .msg_iovlen = 1,
		.msg_control = rctl, .msg_controllen = sizeof(rctl),
	};
	ASSERT_EQ(sizeof(auth_buf), recvmsg(bus_fd, &msghdr, MSG_NOSIGNAL));
	ASSERT_STREQ("AUTH", rbuf);
	/* The endpoint's handle, ":1", on the master's bus. */
	ASSERT_EQ(sizeof(struct sockaddr_bus), msghdr.msg_namelen);
	ASSERT_EQ(1, from.sbus_addr_ncomp);
	ASSERT_STREQ(":1", (char *)from.sbus_addr);
	ASSERT_STREQ(bus_path, from.sbus_path);
	for (cmsg = CMSG_FIRSTHDR(&msghdr); cmsg; cmsg = CMSG_NXTHDR(&msghdr, cmsg)) {
		if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_CREDENTIALS) {
			ucred = (struct ucred *)CMSG_DATA(cmsg);
			ASSERT_EQ(getpid(), ucred->pid);
			ASSERT_EQ(getuid(), ucred->uid);
			ASSERT_EQ(getgid(), ucred->gid);
			got_cred = 1;
		}
	}
	ASSERT_EQ(1, got_cred);
	/* do AUTH ... */
	msghdr.msg_iov = &reply_iovec;
	msghdr.msg_iovlen = 1;
	msghdr.msg_controllen = 0;
	msghdr.msg_control = NULL;
	if (auth_ok) {
		/* bus master allocates a bus addr */
		char bus_path[] = "/tmp/test";
		char ret_bus_addr[] = "1.1";
		struct sockaddr_bus ret_addr = { .sbus_family = AF_BUS };

		strncpy(ret_addr.sbus_path, bus_path, BUS_PATH_MAX - 2);
		memcpy(ret_addr.sbus_addr, ret_bus_addr, MIN(sizeof(ret_bus_addr), BUS_ADDR_MAX));
		ret_addr.sbus_addr_ncomp = MIN(ALIGN(sizeof(ret_bus_addr), 8) / 8, BUS_ADDR_COMP_MAX);
		/*
		 * 1. bus master returns the bus addr
		 * 2. kernel will apply it against the bus endpoint
		 * 3. the bus endpoint is then able to talk with endpoints on the bus.
		 */
		msghdr.msg_controllen = CMSG_SPACE(sizeof(struct sockaddr_bus));
		msghdr.msg_control = alloca(msghdr.msg_controllen);
		cmsg = CMSG_FIRSTHDR(&msghdr);
		cmsg->cmsg_level = BUS_SOCKET;
		cmsg->cmsg_type = SCM_OWNED_ADDR;
		cmsg->cmsg_len = CMSG_LEN(sizeof(struct sockaddr_bus));
		memcpy(CMSG_DATA(cmsg), &ret_addr, sizeof(struct sockaddr_bus));
	}
	ASSERT_EQ(sizeof(reply_buf), sendmsg(bus_fd, &msghdr, MSG_NOSIGNAL));

	/* The endpoint learns its address from the reply. */
	msghdr = (struct msghdr) {
		.msg_name = &from, .msg_namelen = sizeof(from),
		.msg_iov = &riov, .msg_iovlen = 1,
		.msg_control = rctl, .msg_controllen = sizeof(rctl),
	};
	ASSERT_EQ(sizeof(reply_buf), recvmsg(fd, &msghdr, 0));
	ASSERT_STREQ("OK", rbuf);
	ASSERT_TRUE(bus_addr_eq(&addr, &from));
	for (cmsg = CMSG_FIRSTHDR(&msghdr); cmsg; cmsg = CMSG_NXTHDR(&msghdr, cmsg)) {
		if (cmsg->cmsg_level == SOL_BUS && cmsg->cmsg_type == SCM_OWNED_ADDR) {
			memcpy(&name, CMSG_DATA(cmsg), sizeof(name));
			ASSERT_STREQ("1.1", (char *)name.sbus_addr);
			got_owned = 1;
		}
	}
	ASSERT_EQ(1, got_owned);
	len = sizeof(name);
	ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)&name, &len));
	ASSERT_STREQ("1.1", (char *)name.sbus_addr);
	ASSERT_STREQ(bus_path, name.sbus_path);

	/* P2P: the master grants a second address, the endpoint sends from it. */
	{
		char bus_addr[] = "com.example.service1";
		struct sockaddr_bus src_addr = { .sbus_family = AF_BUS };
		char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
		size_t off = 0;

		strncpy(src_addr.sbus_path, bus_path, BUS_PATH_MAX - 2);
		memcpy(src_addr.sbus_addr, bus_addr, MIN(sizeof(bus_addr), BUS_ADDR_MAX));
		src_addr.sbus_addr_ncomp = MIN(ALIGN(sizeof(bus_addr), 8) / 8, BUS_ADDR_COMP_MAX);
		bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &src_addr);
		ASSERT_EQ(2, bus_send(bus_fd, &name, "more", 2, ctl, off, 0));
		ASSERT_EQ(2, recv(fd, rbuf, sizeof(rbuf), 0));

		dst_addr = addr;
		msghdr = (struct msghdr) {
			.msg_name = &dst_addr,
			.msg_namelen = sizeof(struct sockaddr_bus),
			.msg_iov = &msg_iovec,
			.msg_iovlen = 1,
		};
		msghdr.msg_controllen = CMSG_SPACE(sizeof(struct sockaddr_bus));
		msghdr.msg_control = alloca(msghdr.msg_controllen);
		cmsg = CMSG_FIRSTHDR(&msghdr);
		cmsg->cmsg_level = BUS_SOCKET;
		cmsg->cmsg_type = SCM_SRC_ADDR;
		cmsg->cmsg_len = CMSG_LEN(sizeof(struct sockaddr_bus));
		memcpy(CMSG_DATA(cmsg), &src_addr, sizeof(struct sockaddr_bus));
		ASSERT_EQ(sizeof(msg_buf), sendmsg(fd, &msghdr, MSG_NOSIGNAL));

		/* The master sees the chosen source, and its own address as
		 * the destination.
		 */
		{
			struct bus_msg m;
			const struct sockaddr_bus *d;

			ASSERT_EQ(sizeof(msg_buf), bus_recv(bus_fd, &m, 0));
			ASSERT_TRUE(bus_addr_eq(&src_addr, &m.name));
			d = bus_msg_cmsg(&m, SCM_DST_ADDR);
			ASSERT_NE(NULL, d);
			ASSERT_TRUE(bus_addr_eq(&addr, d));
		}
	}
	close(fd);
	close(bus_fd);
	unlink(bus_path);
}

/* The Chinese seed's system bus: a master on ncomp 3, an endpoint joins. */
TEST(chinese_seed_system_bus)
{
	struct sockaddr_bus addr = {
		.sbus_family = AF_BUS,
		.sbus_addr_ncomp = 3
	};
	struct bus_msg m;
	int sock_fd, ep;

	mkdir("/var/run", 0755);
	unlink("/var/run/system_bus");
	memcpy(addr.sbus_path, "/var/run/system_bus",
	       sizeof("/var/run/system_bus"));
	memcpy(addr.sbus_addr, "org.freedesktop.DBus",
	       sizeof("org.freedesktop.DBus"));

	sock_fd = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bind(sock_fd, (struct sockaddr *)&addr, sizeof(struct sockaddr_bus)));
	ep = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bus_join(sock_fd, &addr, ep, ":not-allowed", NULL) == 0 ? -1 : 0);
	ASSERT_EQ(EINVAL, errno);
	close(ep);
	/* The master hears the refused endpoint go. */
	ASSERT_LT(0, bus_recv(sock_fd, &m, 0));
	ASSERT_EQ(0, m.name.sbus_addr_ncomp);

	ep = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bus_join(sock_fd, &addr, ep, "org.example.Service", NULL));
	close(ep);
	close(sock_fd);
	unlink("/var/run/system_bus");
}

/* The Chinese seed's kernel-message check (typos "strcut" and "bus_path"
 * fixed), on the notification of an endpoint that left.
 */
TEST(chinese_seed_kernel_message)
{
	struct sockaddr_bus maddr = {
		.sbus_family = AF_BUS,
		.sbus_addr_ncomp = 3
	};
	int sock_fd, ep, from_kernel = 0;
	char buf[1024];
	int buf_sz = sizeof(buf);

	mkdir("/var/run", 0755);
	unlink("/var/run/system_bus");
	memcpy(maddr.sbus_path, "/var/run/system_bus", sizeof("/var/run/system_bus"));
	memcpy(maddr.sbus_addr, "org.freedesktop.DBus", sizeof("org.freedesktop.DBus"));
	sock_fd = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bind(sock_fd, (struct sockaddr *)&maddr, sizeof(maddr)));
	ep = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bus_join(sock_fd, &maddr, ep, NULL, NULL));
	close(ep);

	{
		struct sockaddr_bus addr = { 0, };
		socklen_t addr_sz = sizeof(addr);

		ASSERT_LT(0, recvfrom(sock_fd, buf, buf_sz, 0,
				      (struct sockaddr *)&addr, &addr_sz));

		if (addr.sbus_family == AF_BUS &&
		    strcmp(addr.sbus_path,
			   "/var/run/system_bus") == 0 &&
		    addr.sbus_addr_ncomp == 0)

			// This is a message from kernel
			from_kernel = 1;
	}
	ASSERT_EQ(1, from_kernel);
	ASSERT_EQ(BUS_NOTIFY_GONE, ((struct bus_notification *)buf)->type);
	close(sock_fd);
	unlink("/var/run/system_bus");
}

FIXTURE(bus) {
	int master, ep;
	struct sockaddr_bus maddr, handle;
};

FIXTURE_SETUP(bus)
{
	self->master = bus_master("join", &self->maddr);
	ASSERT_LE(0, self->master);
	self->ep = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_LE(0, self->ep);
}

FIXTURE_TEARDOWN(bus)
{
	close(self->ep);
	close(self->master);
}

TEST_F(bus, handles_are_unique_and_not_reused)
{
	struct sockaddr_bus h1, h2, h3;
	int a = socket(AF_BUS, SOCK_DGRAM, 0), b = socket(AF_BUS, SOCK_DGRAM, 0);
	struct bus_msg m;

	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->ep, NULL, &h1));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, a, NULL, &h2));
	ASSERT_STREQ(":1", (char *)h1.sbus_addr);
	ASSERT_STREQ(":2", (char *)h2.sbus_addr);
	close(a);
	ASSERT_LT(0, bus_recv(self->master, &m, 0)); /* a's BUS_NOTIFY_GONE */
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, b, NULL, &h3));
	ASSERT_STREQ(":3", (char *)h3.sbus_addr);
	/* A second send does not join again. */
	ASSERT_EQ(3, bus_send_str(self->ep, &self->maddr, "hi", 0));
	ASSERT_EQ(3, bus_recv(self->master, &m, 0));
	ASSERT_TRUE(bus_addr_eq(&h1, &m.name));
	close(b);
}

TEST_F(bus, pending_name_is_handle_member_name_is_first_grant)
{
	struct sockaddr_bus name, addrs[4];
	socklen_t len = sizeof(name);

	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->ep, NULL, &self->handle));
	ASSERT_EQ(0, getsockname(self->ep, (struct sockaddr *)&name, &len));
	ASSERT_TRUE(bus_addr_eq(&self->handle, &name));

	len = sizeof(addrs);
	ASSERT_EQ(0, getsockopt(self->ep, SOL_BUS, BUS_ADDRS, addrs, &len));
	ASSERT_EQ(sizeof(struct sockaddr_bus), len);
	ASSERT_TRUE(bus_addr_eq(&self->handle, &addrs[0]));
}

TEST_F(bus, bus_addrs_lists_handle_then_grants_erange)
{
	struct sockaddr_bus addrs[4], g1 = bus_on(&self->maddr, "a.one"),
			   g2 = bus_on(&self->maddr, "a.two"), name;
	char ctl[2 * CMSG_SPACE(sizeof(struct sockaddr_bus))];
	size_t off = 0;
	socklen_t len;
	struct bus_msg m;

	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->ep, NULL, &self->handle));
	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &g1);
	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &g2);
	ASSERT_EQ(1, bus_send(self->master, &self->handle, "x", 1, ctl, off, 0));
	ASSERT_EQ(1, bus_recv(self->ep, &m, 0));
	/* The receiver sees both grants, in order. */
	ASSERT_EQ(SCM_OWNED_ADDR, m.cmsg_type[0]);
	ASSERT_TRUE(bus_addr_eq(&g1, &m.cmsg_addr[0]));
	ASSERT_EQ(SCM_OWNED_ADDR, m.cmsg_type[1]);
	ASSERT_TRUE(bus_addr_eq(&g2, &m.cmsg_addr[1]));

	len = sizeof(addrs);
	ASSERT_EQ(0, getsockopt(self->ep, SOL_BUS, BUS_ADDRS, addrs, &len));
	ASSERT_EQ(3 * sizeof(struct sockaddr_bus), len);
	ASSERT_TRUE(bus_addr_eq(&self->handle, &addrs[0]));
	ASSERT_TRUE(bus_addr_eq(&g1, &addrs[1]));
	ASSERT_TRUE(bus_addr_eq(&g2, &addrs[2]));

	len = sizeof(struct sockaddr_bus);
	errno = 0;
	ASSERT_EQ(-1, getsockopt(self->ep, SOL_BUS, BUS_ADDRS, addrs, &len));
	ASSERT_EQ(ERANGE, errno);
	ASSERT_EQ(3 * sizeof(struct sockaddr_bus), len);

	len = sizeof(name);
	ASSERT_EQ(0, getsockname(self->ep, (struct sockaddr *)&name, &len));
	ASSERT_TRUE(bus_addr_eq(&g1, &name));

	/* The master's own: its bound address. */
	len = sizeof(addrs);
	ASSERT_EQ(0, getsockopt(self->master, SOL_BUS, BUS_ADDRS, addrs, &len));
	ASSERT_EQ(sizeof(struct sockaddr_bus), len);
	ASSERT_TRUE(bus_addr_eq(&self->maddr, &addrs[0]));
}

TEST_F(bus, unattached_bus_addrs_is_empty)
{
	struct sockaddr_bus addrs[1];
	socklen_t len = sizeof(addrs);

	ASSERT_EQ(0, getsockopt(self->ep, SOL_BUS, BUS_ADDRS, addrs, &len));
	ASSERT_EQ(0, len);
}

/* The line of @fd in /proc/net/bus, without its inode. */
static int proc_line(int fd, char *out, size_t len)
{
	struct stat st;
	char line[512], ino[32];
	FILE *f = fopen("/proc/net/bus", "r");
	int found = 0;

	if (!f || fstat(fd, &st))
		return -1;
	snprintf(ino, sizeof(ino), "%lu ", (unsigned long)st.st_ino);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, ino, strlen(ino))) {
			snprintf(out, len, "%s", line + strlen(ino));
			found = 1;
		}
	fclose(f);
	return found ? 0 : -1;
}

TEST_F(bus, proc_net_bus_shows_roles)
{
	char line[256];
	struct sockaddr_bus x = bus_on(&self->maddr, "x.svc");
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
	size_t off = 0;
	struct bus_msg m;

	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->ep, NULL, &self->handle));
	ASSERT_EQ(0, proc_line(self->ep, line, sizeof(line)));
	ASSERT_STREQ("pending @join :1 0 0 0\n", line);
	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &x);
	ASSERT_EQ(1, bus_send(self->master, &self->handle, "g", 1, ctl, off, 0));
	ASSERT_EQ(0, proc_line(self->ep, line, sizeof(line)));
	ASSERT_STREQ("member @join :1 1 1 0\n", line);
	ASSERT_EQ(1, bus_recv(self->ep, &m, 0));
	ASSERT_EQ(0, proc_line(self->ep, line, sizeof(line)));
	ASSERT_STREQ("member @join :1 1 0 0\n", line);
	ASSERT_EQ(0, proc_line(self->master, line, sizeof(line)));
	ASSERT_STREQ("master @join - 1 0 0\n", line);
}

/*
 * A pending endpoint receives only what its master sends it: a member's
 * send to its handle is EACCES and delivers nothing; a match grant alone
 * is refused (EINVAL), one that comes with an address grant (which makes
 * it a member) is applied.
 */
TEST_F(bus, a_pending_endpoint_hears_only_its_master)
{
	struct sockaddr_bus mc = self->maddr, x = bus_on(&self->maddr, "x.pend");
	char ctl[2 * CMSG_SPACE(sizeof(struct sockaddr_bus))], buf[8];
	int mem = socket(AF_BUS, SOCK_DGRAM, 0);
	struct bus_msg m;
	size_t off = 0;

	memset(mc.sbus_addr, 0, sizeof(mc.sbus_addr));
	mc.sbus_addr[0] = 1;
	mc.sbus_addr_ncomp = 1;
	mc.sbus_path[BUS_PATH_MAX - 1] = BUS_MULTICAST_MARK;
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, mem, "mem", NULL));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->ep, NULL, &self->handle));

	errno = 0;
	ASSERT_EQ(-1, bus_send_str(mem, &self->handle, "evil", 0));
	ASSERT_EQ(EACCES, errno);
	errno = 0;
	ASSERT_EQ(-1, recv(self->ep, buf, sizeof(buf), MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);

	bus_cmsg_add(ctl, &off, SCM_MULTICAST_MATCH, &mc);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->master, &self->handle, "m", 1, ctl, off, 0));
	ASSERT_EQ(EINVAL, errno);
	errno = 0;
	ASSERT_EQ(-1, recv(self->ep, buf, sizeof(buf), MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);

	off = 0;
	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &x);
	bus_cmsg_add(ctl, &off, SCM_MULTICAST_MATCH, &mc);
	ASSERT_EQ(1, bus_send(self->master, &self->handle, "g", 1, ctl, off, 0));
	ASSERT_EQ(1, bus_recv(self->ep, &m, MSG_DONTWAIT));
	ASSERT_TRUE(bus_addr_eq(&x, bus_msg_cmsg(&m, SCM_OWNED_ADDR)));
	ASSERT_TRUE(bus_addr_eq(&mc, bus_msg_cmsg(&m, SCM_MULTICAST_MATCH)));
	close(mem);
}

TEST_HARNESS_MAIN
