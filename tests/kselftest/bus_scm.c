// SPDX-License-Identifier: GPL-2.0
/*
 * Credentials and file descriptors: SO_PASSCRED (filled in by the kernel,
 * or given and checked), translation into the receiver's namespaces,
 * SCM_RIGHTS (memfds, pipes), refusal of AF_UNIX and AF_BUS sockets, and
 * release of undelivered files.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/bus.h>
#include "bus_test.h"
#include "kselftest_harness.h"

FIXTURE(bus) {
	int master, a, b;
	struct sockaddr_bus maddr, aaddr, baddr;
};

FIXTURE_SETUP(bus)
{
	int one = 1;

	self->master = bus_master("scm", &self->maddr);
	ASSERT_LE(0, self->master);
	self->a = socket(AF_BUS, SOCK_DGRAM, 0);
	self->b = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->a, "a.svc", NULL));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->b, "b.svc", NULL));
	self->aaddr = bus_on(&self->maddr, "a.svc");
	self->baddr = bus_on(&self->maddr, "b.svc");
	ASSERT_EQ(0, setsockopt(self->b, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)));
}

FIXTURE_TEARDOWN(bus)
{
	close(self->a);
	close(self->b);
	close(self->master);
}

static ssize_t send_cred(int fd, const struct sockaddr_bus *to, pid_t pid,
			 uid_t uid, gid_t gid)
{
	char ctl[CMSG_SPACE(sizeof(struct ucred))];
	struct cmsghdr *c = (struct cmsghdr *)ctl;
	struct ucred u = { pid, uid, gid };

	memset(ctl, 0, sizeof(ctl));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_CREDENTIALS;
	c->cmsg_len = CMSG_LEN(sizeof(u));
	memcpy(CMSG_DATA(c), &u, sizeof(u));
	return bus_send(fd, to, "c", 1, ctl, sizeof(ctl), 0);
}

static ssize_t send_fds(int fd, const struct sockaddr_bus *to, const int *fds, int n)
{
	char ctl[CMSG_SPACE(8 * sizeof(int))];
	struct cmsghdr *c = (struct cmsghdr *)ctl;

	memset(ctl, 0, sizeof(ctl));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	return bus_send(fd, to, "f", 1, ctl, CMSG_SPACE(n * sizeof(int)), 0);
}

TEST_F(bus, kernel_fills_in_credentials)
{
	struct bus_msg m;

	ASSERT_EQ(2, bus_send_str(self->a, &self->baddr, "x", 0));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
	ASSERT_TRUE(m.have_cred);
	ASSERT_EQ(getpid(), m.cred.pid);
	ASSERT_EQ(getuid(), m.cred.uid);
	ASSERT_EQ(getgid(), m.cred.gid);
}

TEST_F(bus, no_credentials_without_passcred)
{
	struct bus_msg m;

	ASSERT_EQ(2, bus_send_str(self->b, &self->aaddr, "x", 0));
	ASSERT_EQ(2, bus_recv(self->a, &m, 0));
	ASSERT_FALSE(m.have_cred);
}

TEST_F(bus, credentials_of_another_process_are_the_senders)
{
	struct bus_msg m;
	int status;
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (setgid(1234) || setuid(4321))
			_exit(2);
		_exit(bus_send_str(self->a, &self->baddr, "x", 0) == 2 ? 0 : 3);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, WEXITSTATUS(status));
	ASSERT_EQ(2, bus_recv(self->b, &m, 0));
	ASSERT_EQ(pid, m.cred.pid);
	ASSERT_EQ(4321, m.cred.uid);
	ASSERT_EQ(1234, m.cred.gid);
}

TEST_F(bus, given_credentials_are_checked)
{
	struct bus_msg m;
	int status;
	pid_t pid;

	/* Root may speak for others (CAP_SYS_ADMIN/SETUID), as in AF_UNIX. */
	ASSERT_EQ(1, send_cred(self->a, &self->baddr, getpid(), 42, 43));
	ASSERT_EQ(1, bus_recv(self->b, &m, 0));
	ASSERT_EQ(42, m.cred.uid);
	ASSERT_EQ(43, m.cred.gid);

	/* An unprivileged sender cannot. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (setgid(1000) || setuid(1000))
			_exit(2);
		if (send_cred(self->a, &self->baddr, getpid(), 0, 0) != -1 || errno != EPERM)
			_exit(3);
		if (send_cred(self->a, &self->baddr, 1, 1000, 1000) != -1 || errno != EPERM)
			_exit(4);
		/* Its own are fine. */
		_exit(send_cred(self->a, &self->baddr, getpid(), 1000, 1000) == 1 ? 0 : 5);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, WEXITSTATUS(status));
	ASSERT_EQ(1, bus_recv(self->b, &m, 0));
	ASSERT_EQ(1000, m.cred.uid);
}

TEST_F(bus, credentials_translated_into_the_receivers_user_namespace)
{
	struct bus_msg m;
	int status, p[2];
	pid_t pid;
	char c;

	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(2, bus_send_str(self->a, &self->baddr, "x", 0));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* A fresh user namespace with no mapping: root is unmapped. */
		if (unshare(CLONE_NEWUSER))
			_exit(2);
		if (bus_recv(self->b, &m, 0) != 2 || !m.have_cred)
			_exit(3);
		_exit(m.cred.uid == 65534 && m.cred.gid == 65534 ? 0 : 4);
	}
	close(p[1]);
	read(p[0], &c, 1);
	close(p[0]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, WEXITSTATUS(status));
}

TEST_F(bus, sender_pid_is_translated_into_the_receivers_pid_namespace)
{
	int status;
	pid_t pid;

	ASSERT_EQ(2, bus_send_str(self->a, &self->baddr, "x", 0));
	ASSERT_EQ(0, unshare(CLONE_NEWPID));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct bus_msg m;
		struct sockaddr_bus aaddr = self->aaddr;

		/* We are pid 1 here; the sender, outside, has no pid here. */
		if (bus_recv(self->b, &m, 0) != 2 || !m.have_cred)
			_exit(3);
		if (m.cred.pid != 0)
			_exit(4);
		/* And our own pid is the one the receiver outside sees. */
		_exit(bus_send_str(self->b, &aaddr, "y", 0) == 2 ? 0 : 5);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, WEXITSTATUS(status));
	{
		struct bus_msg m;
		int one = 1;

		ASSERT_EQ(0, setsockopt(self->a, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)));
		ASSERT_EQ(2, bus_recv(self->a, &m, 0));
		ASSERT_EQ(pid, m.cred.pid);
	}
}

TEST_F(bus, rights_pass_a_sealed_memfd)
{
	int mfd = memfd_create("payload", MFD_ALLOW_SEALING);
	struct bus_msg m;
	char *p;

	ASSERT_LE(0, mfd);
	ASSERT_EQ(0, ftruncate(mfd, 1 << 20));
	p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, p);
	strcpy(p + 4096, "shared payload");
	munmap(p, 1 << 20);
	ASSERT_EQ(0, fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE));
	ASSERT_EQ(1, send_fds(self->a, &self->baddr, &mfd, 1));
	close(mfd);

	ASSERT_EQ(1, bus_recv(self->b, &m, 0));
	ASSERT_EQ(1, m.nfds);
	ASSERT_EQ(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE,
		  fcntl(m.fds[0], F_GET_SEALS) & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE));
	p = mmap(NULL, 1 << 20, PROT_READ, MAP_SHARED, m.fds[0], 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_STREQ("shared payload", p + 4096);
	munmap(p, 1 << 20);
	close(m.fds[0]);
}

TEST_F(bus, sockets_are_refused_eopnotsupp)
{
	int sv[2], bus = socket(AF_BUS, SOCK_DGRAM, 0), pipefd[2], fds[2];

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	errno = 0;
	ASSERT_EQ(-1, send_fds(self->a, &self->baddr, &sv[0], 1));
	ASSERT_EQ(EOPNOTSUPP, errno);
	errno = 0;
	ASSERT_EQ(-1, send_fds(self->a, &self->baddr, &bus, 1));
	ASSERT_EQ(EOPNOTSUPP, errno);
	errno = 0;
	ASSERT_EQ(-1, send_fds(self->a, &self->baddr, &self->a, 1));
	ASSERT_EQ(EOPNOTSUPP, errno);
	/* One socket among other files spoils the lot. */
	ASSERT_EQ(0, pipe(pipefd));
	fds[0] = pipefd[0];
	fds[1] = sv[1];
	errno = 0;
	ASSERT_EQ(-1, send_fds(self->a, &self->baddr, fds, 2));
	ASSERT_EQ(EOPNOTSUPP, errno);
	close(sv[0]);
	close(sv[1]);
	close(bus);
	close(pipefd[0]);
	close(pipefd[1]);
}

TEST_F(bus, undelivered_files_are_released)
{
	int p[2], c = socket(AF_BUS, SOCK_DGRAM, 0);
	struct sockaddr_bus caddr = bus_on(&self->maddr, "c.svc");
	struct pollfd pf;
	char buf[4];

	ASSERT_EQ(0, bus_join(self->master, &self->maddr, c, "c.svc", NULL));
	ASSERT_EQ(0, pipe(p));
	/* The write end travels to c, which closes without reading. */
	ASSERT_EQ(1, send_fds(self->a, &caddr, &p[1], 1));
	close(p[1]);
	pf = (struct pollfd){ .fd = p[0], .events = POLLIN };
	ASSERT_EQ(0, poll(&pf, 1, 0));	/* a writer is still in flight */
	close(c);
	/* Freed with the message: the pipe sees its last writer go. */
	ASSERT_EQ(1, poll(&pf, 1, 2000));
	ASSERT_EQ(0, read(p[0], buf, sizeof(buf)));
	close(p[0]);
}

TEST_F(bus, files_without_a_control_buffer_are_closed_ctrunc)
{
	int p[2];
	char buf[4];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1 };

	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(1, send_fds(self->a, &self->baddr, &p[1], 1));
	close(p[1]);
	ASSERT_EQ(1, recvmsg(self->b, &h, 0));
	ASSERT_EQ(MSG_CTRUNC, h.msg_flags & MSG_CTRUNC);
	ASSERT_EQ(0, read(p[0], buf, sizeof(buf)));
	close(p[0]);
}

TEST_F(bus, peek_duplicates_files)
{
	int p[2];
	struct bus_msg m1, m2;

	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(1, send_fds(self->a, &self->baddr, &p[1], 1));
	ASSERT_EQ(1, bus_recv(self->b, &m1, MSG_PEEK));
	ASSERT_EQ(1, m1.nfds);
	ASSERT_EQ(1, bus_recv(self->b, &m2, 0));
	ASSERT_EQ(1, m2.nfds);
	ASSERT_NE(m1.fds[0], m2.fds[0]);
	close(m1.fds[0]);
	close(m2.fds[0]);
	close(p[0]);
	close(p[1]);
}

TEST_HARNESS_MAIN
