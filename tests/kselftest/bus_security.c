// SPDX-License-Identifier: GPL-2.0
/*
 * The security model: what an unprivileged user, or root without
 * capabilities, may and may not do; credentials across user namespaces
 * (translated, never forged); abstract buses confined to their network
 * namespace; the socket inode's permissions; and an LSM (Landlock)
 * deciding on the creation of a bus's socket inode.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/landlock.h>

#include <linux/bus.h>
#include "bus_test.h"
#include "kselftest_harness.h"

#define DIR_ "/tmp/af_bus_sec"
#define USER 1000
#define OTHER 2000

/* Runs @fn(@arg) in a child; returns its exit status (or -1). */
static int in_child(int (*fn)(void *), void *arg)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0)
		_exit(fn(arg));
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static int become(uid_t uid)
{
	return setresgid(uid, uid, uid) || setresuid(uid, uid, uid) ? -1 : 0;
}

/* Keeps uid 0 but drops every capability. */
static int drop_caps(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	return syscall(SYS_capset, &h, d);
}

static ssize_t send_cred(int fd, const struct sockaddr_bus *to, pid_t pid, uid_t uid,
			 gid_t gid)
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

FIXTURE(bus) {
	int master, a, b;	/* a, b: members "a.svc", "b.svc"; b has SO_PASSCRED */
	struct sockaddr_bus maddr, aaddr, baddr;
};

FIXTURE_SETUP(bus)
{
	int one = 1;

	char name[32];

	snprintf(name, sizeof(name), "security.%d", getpid());
	self->master = bus_master(name, &self->maddr);
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

/* What any user may do: make buses, join them, talk; what it may not. */
static int unprivileged(void *arg)
{
	struct sockaddr_bus *maddr = arg, mine, aaddr = bus_on(maddr, "a.svc");
	int fd, m, big = 1 << 20;

	if (become(USER))
		return 100;
	/* Its own bus, abstract: any user may be a master. */
	m = bus_master("security.user", &mine);
	if (m < 0)
		return 1;
	/* Not someone else's name. */
	fd = socket(AF_BUS, SOCK_DGRAM, 0);
	if (bind(fd, (struct sockaddr *)maddr, sizeof(*maddr)) != -1 || errno != EADDRINUSE)
		return 2;
	/* Joining root's bus is open to anyone (abstract: no inode). */
	if (bus_send_str(fd, maddr, "hello", 0) != 6)
		return 3;
	/* A pending endpoint reaches nobody but the master. */
	if (bus_send_str(fd, &aaddr, "x", 0) != -1 || errno != EACCES)
		return 4;
	/* Queue bounds beyond the sysctl are root's: SO_RCVBUFFORCE. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) != -1 ||
	    errno != EPERM)
		return 5;
	/* The module's limits are root's. */
	if (open("/sys/module/af_bus/parameters/max_queue_msgs", O_WRONLY) != -1 ||
	    errno != EACCES)
		return 6;
	/* Credentials are its own: another uid, gid or pid is EPERM. */
	if (send_cred(fd, maddr, getpid(), 0, USER) != -1 || errno != EPERM)
		return 7;
	if (send_cred(fd, maddr, getpid(), USER, 0) != -1 || errno != EPERM)
		return 8;
	if (send_cred(fd, maddr, 1, USER, USER) != -1 || errno != EPERM)
		return 9;
	if (send_cred(fd, maddr, getpid(), USER, USER) != 1)
		return 10;
	/* Setting the policy of a bus is its master's. */
	{
		__u32 p = BUS_POLICY_MCAST_SEND_GRANTED;

		if (setsockopt(fd, SOL_BUS, BUS_POLICY, &p, sizeof(p)) != -1 || errno != EPERM)
			return 11;
	}
	close(fd);
	close(m);
	return 0;
}

TEST_F(bus, unprivileged_user_may_make_and_join_buses_but_not_forge_or_force)
{
	struct bus_msg m;
	int one = 1;

	ASSERT_EQ(0, setsockopt(self->master, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)));
	ASSERT_EQ(0, in_child(unprivileged, &self->maddr));
	/* The master saw the user's true credentials, twice. */
	ASSERT_EQ(6, bus_recv(self->master, &m, 0));
	ASSERT_TRUE(m.have_cred);
	ASSERT_EQ(USER, m.cred.uid);
	ASSERT_EQ(USER, m.cred.gid);
	ASSERT_EQ(1, bus_recv(self->master, &m, 0));
	ASSERT_EQ(USER, m.cred.uid);
	/* Nothing else reached it (the GONE of the user's socket aside). */
	ASSERT_LT(0, bus_recv(self->master, &m, 0));
	ASSERT_EQ(0, m.name.sbus_addr_ncomp);
	errno = 0;
	ASSERT_EQ(-1, bus_recv(self->master, &m, MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
}

static int capless_root(void *arg)
{
	struct sockaddr_bus *baddr = arg;
	int fd, big = 1 << 20;

	if (drop_caps())
		return 100;
	fd = socket(AF_BUS, SOCK_DGRAM, 0);
	/* uid 0 without CAP_SETUID/CAP_SETGID/CAP_SYS_ADMIN forges nothing. */
	if (send_cred(fd, baddr, getpid(), USER, 0) != -1 || errno != EPERM)
		return 1;
	if (send_cred(fd, baddr, getpid(), 0, USER) != -1 || errno != EPERM)
		return 2;
	if (send_cred(fd, baddr, 1, 0, 0) != -1 || errno != EPERM)
		return 3;
	/* Without CAP_NET_ADMIN no SO_RCVBUFFORCE. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) != -1 ||
	    errno != EPERM)
		return 4;
	/* Without CAP_DAC_OVERRIDE, another user's 0600 bus is closed. */
	if (bus_send_str(fd, baddr, "hello", 0) != -1 || errno != EACCES)
		return 5;
	return 0;
}

TEST(root_without_capabilities_is_an_ordinary_user)
{
	struct sockaddr_bus maddr = bus_addr_str(DIR_ "/caps", "master");
	struct bus_msg m;
	int master;

	mkdir(DIR_, 0755);
	unlink(DIR_ "/caps");
	master = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bind(master, (struct sockaddr *)&maddr, sizeof(maddr)));
	ASSERT_EQ(0, chown(DIR_ "/caps", OTHER, OTHER));
	ASSERT_EQ(0, chmod(DIR_ "/caps", 0600));
	ASSERT_EQ(0, in_child(capless_root, &maddr));
	errno = 0;
	ASSERT_EQ(-1, bus_recv(master, &m, MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
	close(master);
	unlink(DIR_ "/caps");
}

static int join_as(void *arg)
{
	struct sockaddr_bus *maddr = arg;
	int fd = socket(AF_BUS, SOCK_DGRAM, 0);

	if (become(USER))
		return 100;
	if (bus_send_str(fd, maddr, "hello", 0) == 6)
		return 0;
	return errno == EACCES ? 1 : 2;
}

TEST(socket_inode_needs_write_permission_for_the_joining_user)
{
	struct sockaddr_bus maddr = bus_addr_str(DIR_ "/perm", "master");
	struct bus_msg m;
	struct stat st;
	int master;

	mkdir(DIR_, 0755);
	unlink(DIR_ "/perm");
	master = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bind(master, (struct sockaddr *)&maddr, sizeof(maddr)));
	ASSERT_EQ(0, stat(DIR_ "/perm", &st));
	ASSERT_TRUE(S_ISSOCK(st.st_mode));
	/* Owned by another user, mode 0600: EACCES. */
	ASSERT_EQ(0, chown(DIR_ "/perm", OTHER, OTHER));
	ASSERT_EQ(0, chmod(DIR_ "/perm", 0600));
	ASSERT_EQ(1, in_child(join_as, &maddr));
	/* Read permission is not enough. */
	ASSERT_EQ(0, chmod(DIR_ "/perm", 0644));
	ASSERT_EQ(1, in_child(join_as, &maddr));
	/* The group's write bit, for a member of the group. */
	ASSERT_EQ(0, chown(DIR_ "/perm", OTHER, USER));
	ASSERT_EQ(0, chmod(DIR_ "/perm", 0620));
	ASSERT_EQ(0, in_child(join_as, &maddr));
	ASSERT_EQ(6, bus_recv(master, &m, 0));
	ASSERT_LT(0, bus_recv(master, &m, 0));	/* its GONE */
	ASSERT_EQ(0, m.name.sbus_addr_ncomp);
	/* Owned by the user itself, 0200. */
	ASSERT_EQ(0, chown(DIR_ "/perm", USER, OTHER));
	ASSERT_EQ(0, chmod(DIR_ "/perm", 0200));
	ASSERT_EQ(0, in_child(join_as, &maddr));
	ASSERT_EQ(6, bus_recv(master, &m, 0));
	close(master);
	unlink(DIR_ "/perm");
}

struct userns_ctx {
	int a, b, master, ready[2], mapped[2];
	struct sockaddr_bus maddr, aaddr, baddr;
};

/*
 * As uid USER, in a fresh user namespace where it is root (0 -> USER):
 * sends to b (outside) with and without given credentials, then reads
 * its own message and one from outside with SO_PASSCRED.
 */
static int in_userns(void *arg)
{
	struct userns_ctx *c = arg;
	struct bus_msg m;
	int one = 1;
	char x;

	if (become(USER))
		return 100;
	if (unshare(CLONE_NEWUSER))
		return 101;
	if (write(c->ready[1], "r", 1) != 1 || read(c->mapped[0], &x, 1) != 1)
		return 102;
	if (getuid() != 0 || getgid() != 0)
		return 103;
	/* Its own credentials. */
	if (bus_send_str(c->a, &c->baddr, "plain", 0) != 6)
		return 1;
	/* Claiming its own uid 0 here is allowed: outside it is USER. */
	if (send_cred(c->a, &c->baddr, getpid(), 0, 0) != 1)
		return 2;
	/* Anything unmapped here cannot even be named: EINVAL. */
	if (send_cred(c->a, &c->baddr, getpid(), 5, 0) != -1 || errno != EINVAL)
		return 3;
	/* Inside, a receiver sees ids as this namespace maps them. */
	if (setsockopt(c->a, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)))
		return 4;
	if (bus_send_str(c->a, &c->aaddr, "self", 0) != 5)
		return 5;
	/* The real root outside (queued first), unmapped here: overflow ids. */
	if (bus_recv(c->a, &m, 0) != 5 || strcmp(m.data, "root") || !m.have_cred ||
	    m.cred.uid != 65534 || m.cred.gid != 65534)
		return 6;
	if (bus_recv(c->a, &m, 0) != 5 || strcmp(m.data, "self") || !m.have_cred ||
	    m.cred.uid != 0 || m.cred.gid != 0)
		return 7;
	return 0;
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, s, strlen(s)) == (ssize_t)strlen(s);
	close(fd);
	return ok ? 0 : -1;
}

TEST_F(bus, user_namespace_credentials_are_translated_never_forged)
{
	struct userns_ctx c = { .a = self->a, .b = self->b, .master = self->master,
				.maddr = self->maddr, .aaddr = self->aaddr,
				.baddr = self->baddr };
	char path[64], map[32], x;
	struct bus_msg m;
	int status;
	pid_t pid;

	ASSERT_EQ(0, pipe(c.ready));
	ASSERT_EQ(0, pipe(c.mapped));
	/* Root outside sends to a first: the child reads it later. */
	ASSERT_EQ(5, bus_send_str(self->b, &self->aaddr, "root", 0));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(in_userns(&c));
	ASSERT_EQ(1, read(c.ready[0], &x, 1));
	snprintf(map, sizeof(map), "0 %d 1", USER);
	snprintf(path, sizeof(path), "/proc/%d/uid_map", pid);
	ASSERT_EQ(0, write_file(path, map));
	snprintf(path, sizeof(path), "/proc/%d/gid_map", pid);
	ASSERT_EQ(0, write_file(path, map));
	ASSERT_EQ(1, write(c.mapped[1], "m", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	/* Outside, both messages carry USER: its "0" was translated. */
	ASSERT_EQ(6, bus_recv(self->b, &m, 0));
	ASSERT_TRUE(m.have_cred);
	ASSERT_EQ(USER, m.cred.uid);
	ASSERT_EQ(USER, m.cred.gid);
	ASSERT_EQ(pid, m.cred.pid);
	ASSERT_EQ(1, bus_recv(self->b, &m, 0));
	ASSERT_TRUE(m.have_cred);
	ASSERT_EQ(USER, m.cred.uid);
	ASSERT_EQ(USER, m.cred.gid);
	errno = 0;
	ASSERT_EQ(-1, bus_recv(self->b, &m, MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
}

struct netns_ctx {
	int old;			/* a socket made in the first namespace */
	struct sockaddr_bus abstract, path;
};

static int in_netns(void *arg)
{
	struct netns_ctx *c = arg;
	struct sockaddr_bus mine;
	char line[256];
	int fd, m, lines = 0;
	FILE *f;

	if (unshare(CLONE_NEWNET))
		return 100;
	/* The first namespace's abstract bus does not exist here. */
	fd = socket(AF_BUS, SOCK_DGRAM, 0);
	if (bus_send_str(fd, &c->abstract, "hello", 0) != -1 || errno != ECONNREFUSED)
		return 1;
	/* Its name is free here. */
	m = socket(AF_BUS, SOCK_DGRAM, 0);
	mine = c->abstract;
	if (bind(m, (struct sockaddr *)&mine, sizeof(mine)))
		return 2;
	if (bus_send_str(fd, &mine, "hello", 0) != 6)
		return 3;
	/* /proc/net/bus shows this namespace's sockets only. */
	f = fopen("/proc/net/bus", "r");
	if (!f)
		return 4;
	while (fgets(line, sizeof(line), f))
		lines++;
	fclose(f);
	if (lines != 3)		/* header, m and fd */
		return 5;
	/* A filesystem bus is named by its inode: reachable from here, as
	 * an AF_UNIX path socket is.
	 */
	close(fd);
	fd = socket(AF_BUS, SOCK_DGRAM, 0);
	if (bus_send_str(fd, &c->path, "path", 0) != 5)
		return 6;
	/* A socket made in the first namespace stays there. */
	if (bus_send_str(c->old, &c->abstract, "old", 0) != 4)
		return 7;
	return 0;
}

TEST(network_namespaces_isolate_abstract_buses)
{
	struct netns_ctx c;
	struct bus_msg m;
	int am, pm;

	mkdir(DIR_, 0755);
	unlink(DIR_ "/netns");
	am = bus_master("security.netns", &c.abstract);
	ASSERT_LE(0, am);
	c.path = bus_addr_str(DIR_ "/netns", "master");
	pm = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bind(pm, (struct sockaddr *)&c.path, sizeof(c.path)));
	c.old = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, in_child(in_netns, &c));
	ASSERT_EQ(4, bus_recv(am, &m, 0));
	ASSERT_STREQ("old", m.data);
	ASSERT_EQ(5, bus_recv(pm, &m, 0));
	ASSERT_STREQ("path", m.data);
	/* The bus made in the other namespace never showed up here. */
	errno = 0;
	ASSERT_EQ(-1, bus_recv(am, &m, MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
	close(c.old);
	close(am);
	close(pm);
	unlink(DIR_ "/netns");
}

/* Restricts this process with a Landlock ruleset handling MAKE_SOCK,
 * allowing it beneath @allowed only (if not NULL).
 */
static int landlock_restrict(const char *allowed)
{
	struct landlock_ruleset_attr attr = {
		.handled_access_fs = LANDLOCK_ACCESS_FS_MAKE_SOCK,
	};
	int rs, ok = 1;

	rs = syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (rs < 0)
		return -1;
	if (allowed) {
		struct landlock_path_beneath_attr pb = {
			.allowed_access = LANDLOCK_ACCESS_FS_MAKE_SOCK,
			.parent_fd = open(allowed, O_PATH | O_CLOEXEC),
		};

		ok = pb.parent_fd >= 0 &&
		     !syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
		close(pb.parent_fd);
	}
	if (!ok || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    syscall(SYS_landlock_restrict_self, rs, 0))
		return -1;
	close(rs);
	return 0;
}

static int landlocked(void *arg)
{
	struct sockaddr_bus *joined = arg, a;
	struct stat st;
	int fd, m;

	if (landlock_restrict(DIR_ "/allowed"))
		return 100;
	/* No bus inode outside what the ruleset allows: EACCES, no inode. */
	a = bus_addr_str(DIR_ "/denied", "master");
	fd = socket(AF_BUS, SOCK_DGRAM, 0);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != -1 || errno != EACCES)
		return 1;
	if (stat(DIR_ "/denied", &st) != -1 || errno != ENOENT)
		return 2;
	/* The same socket may still bind where it is allowed ... */
	a = bus_addr_str(DIR_ "/allowed/bus", "master");
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)))
		return 3;
	/* ... and abstract buses make no inode: nothing to decide. */
	m = socket(AF_BUS, SOCK_DGRAM, 0);
	a = bus_addr_abstract("security.landlock", "master");
	if (bind(m, (struct sockaddr *)&a, sizeof(a)))
		return 4;
	/* Joining an existing bus creates nothing either. */
	close(m);
	m = socket(AF_BUS, SOCK_DGRAM, 0);
	if (bus_send_str(m, joined, "hello", 0) != 6)
		return 5;
	close(fd);
	close(m);
	return 0;
}

TEST(landlock_decides_on_making_a_bus_inode)
{
	struct sockaddr_bus maddr = bus_addr_str(DIR_ "/ll", "master");
	struct bus_msg m;
	int abi, master;

	abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	TH_LOG("Landlock ABI %d", abi);
	ASSERT_LE(1, abi);
	mkdir(DIR_, 0755);
	mkdir(DIR_ "/allowed", 0755);
	unlink(DIR_ "/ll");
	unlink(DIR_ "/denied");
	unlink(DIR_ "/allowed/bus");
	master = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bind(master, (struct sockaddr *)&maddr, sizeof(maddr)));
	ASSERT_EQ(0, in_child(landlocked, &maddr));
	ASSERT_EQ(6, bus_recv(master, &m, 0));
	close(master);
	unlink(DIR_ "/ll");
	unlink(DIR_ "/allowed/bus");
	rmdir(DIR_ "/allowed");
}

TEST_HARNESS_MAIN
