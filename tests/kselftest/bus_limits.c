// SPDX-License-Identifier: GPL-2.0
/*
 * Limits under attack: queued messages and ring pages are charged to the
 * memory cgroup that allocated them; a flooding user cannot starve a
 * receiver (the half rule of spec section 8); a member hoarding grants
 * gets ENOSPC while the others still get theirs; a socket bomb is bounded
 * by RLIMIT_NOFILE and the queues' bounds, the master hears of every
 * socket that goes, and the bus keeps working.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/bus.h>
#include "bus_test.h"
#include "kselftest_harness.h"

#define CG "/sys/fs/cgroup"
#define MIB (1024L * 1024)
/* Charges are batched per CPU (64 pages each): the slack of a reading. */
#define SLACK (2 * MIB)

FIXTURE(bus) {
	int master, a, b;	/* members "a.svc", "b.svc" (b is the victim) */
	struct sockaddr_bus maddr, aaddr, baddr, ahandle, bhandle;
	char cgroup[64];
};

FIXTURE_SETUP(bus)
{
	int big = 8 << 20;
	char name[32];

	/* A bus of its own: a child a failed test left behind may still
	 * hold the previous one.
	 */
	snprintf(name, sizeof(name), "limits.%d", getpid());
	self->cgroup[0] = 0;
	self->master = bus_master(name, &self->maddr);
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
	ASSERT_EQ(0, setsockopt(self->master, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)));
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

FIXTURE_TEARDOWN(bus)
{
	char pid[16];

	close(self->a);
	close(self->b);
	close(self->master);
	if (self->cgroup[0]) {
		snprintf(pid, sizeof(pid), "%d", getpid());
		write_file(CG "/cgroup.procs", pid);
		rmdir(self->cgroup);
	}
}

/*
 * Mounts cgroup2 if it is not, enables the memory controller for the
 * children of the root, and moves this process into a fresh child.
 */
static int enter_cgroup(char *dir, size_t len)
{
	char line[256], pid[16];
	int mounted = 0;
	FILE *f = fopen("/proc/mounts", "r");

	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, " " CG " cgroup2 "))
			mounted = 1;
	if (f)
		fclose(f);
	if (!mounted && mount("cgroup2", CG, "cgroup2", 0, NULL))
		return -1;
	if (write_file(CG "/cgroup.subtree_control", "+memory"))
		return -1;
	snprintf(dir, len, CG "/af_bus_limits.%d", getpid());
	if (mkdir(dir, 0755))
		return -1;
	snprintf(line, sizeof(line), "%s/cgroup.procs", dir);
	snprintf(pid, sizeof(pid), "%d", getpid());
	return write_file(line, pid);
}

static long memory_current(const char *dir)
{
	char path[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/memory.current", dir);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

#define PAYLOAD 60000	/* one 64 KiB allocation per message */
#define NMSGS 96
static char payload[PAYLOAD];

TEST_F(bus, queued_messages_are_charged_to_the_senders_memcg)
{
	int big = 64 * MIB, a, b, i;
	long before, queued, after;

	memset(payload, 'p', sizeof(payload));
	ASSERT_EQ(0, enter_cgroup(self->cgroup, sizeof(self->cgroup)));
	/* Sockets made inside the cgroup, by this process. */
	a = socket(AF_BUS, SOCK_DGRAM, 0);
	b = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, a, "cg.a", NULL));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, b, "cg.b", NULL));
	ASSERT_EQ(0, setsockopt(b, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)));
	{
		struct sockaddr_bus to = bus_on(&self->maddr, "cg.b");

		before = memory_current(self->cgroup);
		ASSERT_LE(0, before);
		for (i = 0; i < NMSGS; i++)
			ASSERT_EQ(PAYLOAD, bus_send(a, &to, payload, PAYLOAD, NULL, 0,
						    MSG_DONTWAIT));
	}
	queued = memory_current(self->cgroup);
	TH_LOG("memory.current %ld before, %ld with %d x %d bytes queued", before, queued,
	       NMSGS, PAYLOAD);
	ASSERT_LE(before + (long)NMSGS * PAYLOAD, queued);
	ASSERT_GE(before + (long)NMSGS * 64 * 1024 + SLACK, queued);
	for (i = 0; i < NMSGS; i++)
		ASSERT_EQ(PAYLOAD, recv(b, payload, PAYLOAD, MSG_DONTWAIT));
	after = memory_current(self->cgroup);
	TH_LOG("memory.current %ld after receiving them", after);
	ASSERT_GE(before + SLACK, after);
	close(a);
	close(b);
}

TEST_F(bus, ring_pages_are_charged_to_the_memcg_of_its_owner)
{
	struct bus_ring_req req = { 4096, 1024 }, none = { 0, 0 };	/* 4 MiB */
	long before, with, mapped, after;
	void *map;
	int fd;

	ASSERT_EQ(0, enter_cgroup(self->cgroup, sizeof(self->cgroup)));
	fd = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_LE(0, fd);
	before = memory_current(self->cgroup);
	ASSERT_EQ(0, setsockopt(fd, SOL_BUS, BUS_RX_RING, &req, sizeof(req)));
	with = memory_current(self->cgroup);
	TH_LOG("memory.current %ld before, %ld with a 4 MiB ring", before, with);
	ASSERT_LE(before + 4 * MIB, with);
	ASSERT_GE(before + 4 * MIB + SLACK, with);
	/* Removing it gives the charge back. */
	ASSERT_EQ(0, setsockopt(fd, SOL_BUS, BUS_RX_RING, &none, sizeof(none)));
	ASSERT_GE(before + SLACK, memory_current(self->cgroup));
	/* A mapped ring is charged once, and freed with its last user. */
	ASSERT_EQ(0, setsockopt(fd, SOL_BUS, BUS_RX_RING, &req, sizeof(req)));
	map = mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, map);
	mapped = memory_current(self->cgroup);
	ASSERT_GE(before + 4 * MIB + SLACK, mapped);
	close(fd);
	/* The socket's own objects go, the ring's 4 MiB stay. */
	ASSERT_LE(before + 4 * MIB - SLACK / 4, memory_current(self->cgroup));
	ASSERT_EQ(0, munmap(map, 4 * MIB));
	after = memory_current(self->cgroup);
	TH_LOG("memory.current %ld mapped, %ld after close and munmap", mapped, after);
	ASSERT_GE(before + SLACK, after);
}

/* Sends to @to until the queue refuses; returns the count (errno set). */
static int fill(int fd, const struct sockaddr_bus *to, const char *tag)
{
	int n = 0;

	while (bus_send_str(fd, to, tag, MSG_DONTWAIT) == (ssize_t)strlen(tag) + 1)
		n++;
	return n;
}

/* Runs fill() as @uid in a child: returns the count, or -1 unless the
 * last send failed with EAGAIN.
 */
static int fill_as(int fd, const struct sockaddr_bus *to, const char *tag, uid_t uid)
{
	int status, n;
	pid_t pid = fork();

	if (pid == 0) {
		if (setresuid(uid, uid, uid))
			_exit(255);
		n = fill(fd, to, tag);
		_exit(errno == EAGAIN ? n : 255);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) == 255)
		return -1;
	return WEXITSTATUS(status);
}

TEST_F(bus, flooder_gets_eagain_and_cannot_starve_other_senders)
{
	int flood = 0, peer = 0, own = 0, i;
	struct bus_msg m;

	/* uid 1000 floods the victim: half of its 256 messages, then EAGAIN. */
	ASSERT_EQ(128, fill_as(self->a, &self->baddr, "flood", 1000));
	/* And again: still EAGAIN, for it alone. */
	ASSERT_EQ(0, fill_as(self->a, &self->baddr, "flood", 1000));
	/* Another user still reaches the victim: half of what is left. */
	ASSERT_EQ(64, fill_as(self->a, &self->baddr, "peer", 1001));
	/* And root, the master's user, half of the rest. */
	ASSERT_EQ(32, fill(self->master, &self->baddr, "own"));
	ASSERT_EQ(EAGAIN, errno);
	/* The victim keeps working: it still talks to the master ... */
	ASSERT_EQ(3, bus_send_str(self->b, &self->maddr, "ok", MSG_DONTWAIT));
	ASSERT_EQ(3, bus_recv(self->master, &m, 0));
	/* ... and reads everything, in order per sender. */
	for (i = 0; i < 224; i++) {
		ASSERT_LT(0, bus_recv(self->b, &m, MSG_DONTWAIT));
		flood += !strcmp(m.data, "flood");
		peer += !strcmp(m.data, "peer");
		own += !strcmp(m.data, "own");
	}
	errno = 0;
	ASSERT_EQ(-1, bus_recv(self->b, &m, MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
	ASSERT_EQ(128, flood);
	ASSERT_EQ(64, peer);
	ASSERT_EQ(32, own);
	/* Drained, the flooder gets its half again, no more. */
	ASSERT_EQ(128, fill_as(self->a, &self->baddr, "flood", 1000));
}

TEST_F(bus, blocked_flooder_times_out_while_others_are_delivered)
{
	struct timeval tv = { 0, 200000 };
	int status;
	pid_t pid;

	ASSERT_EQ(128, fill_as(self->a, &self->baddr, "flood", 1000));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* A blocking flooder waits for room, then gives up: EAGAIN. */
		if (setresuid(1000, 1000, 1000) ||
		    setsockopt(self->a, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
			_exit(2);
		if (bus_send_str(self->a, &self->baddr, "flood", 0) != -1)
			_exit(3);
		_exit(errno == EAGAIN ? 0 : 4);
	}
	/* Meanwhile other users' sends to the same receiver go through. */
	ASSERT_EQ(64, fill_as(self->a, &self->baddr, "peer", 1001));
	ASSERT_EQ(4, bus_send_str(self->master, &self->baddr, "own", 0));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
}

static int get_param(const char *name)
{
	char path[128];
	int v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/module/af_bus/parameters/%s", name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%d", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* The master grants @type of @addr to @to and the endpoint @fd reads it:
 * 0, or -1 with the sendmsg errno.
 */
static int grant(int master, int fd, const struct sockaddr_bus *to, int type,
		 const struct sockaddr_bus *addr)
{
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
	struct bus_msg m;
	size_t off = 0;

	bus_cmsg_add(ctl, &off, type, addr);
	if (bus_send(master, to, "g", 1, ctl, off, MSG_DONTWAIT) != 1)
		return -1;
	return bus_recv(fd, &m, 0) == 1 ? 0 : -2;
}

static struct sockaddr_bus mcast(const struct sockaddr_bus *bus, int bit)
{
	struct sockaddr_bus a = *bus;

	memset(a.sbus_addr, 0, sizeof(a.sbus_addr));
	a.sbus_addr[bit / 64] = 1ULL << (bit % 64);
	a.sbus_addr_ncomp = BUS_ADDR_COMP_MAX;
	a.sbus_path[BUS_PATH_MAX - 1] = '*';
	return a;
}

static int naddrs(int fd)
{
	struct sockaddr_bus a[80];
	socklen_t len = sizeof(a);

	if (getsockopt(fd, SOL_BUS, BUS_ADDRS, a, &len))
		return -1;
	return len / sizeof(a[0]);
}

TEST_F(bus, grant_hoarder_gets_enospc_and_others_still_get_theirs)
{
	int max_addrs = get_param("max_owned_addrs"), max_matches = get_param("max_matches");
	struct sockaddr_bus x;
	char name[32];
	int i;

	ASSERT_EQ(64, max_addrs);
	ASSERT_EQ(64, max_matches);
	/* a asks for addresses, matches and send grants past every limit. */
	for (i = 0; i < max_addrs + 8; i++) {
		snprintf(name, sizeof(name), "hoard.%d", i);
		x = bus_on(&self->maddr, name);
		errno = 0;
		if (i < max_addrs - 1) {	/* it owns "a.svc" already */
			ASSERT_EQ(0, grant(self->master, self->a, &self->ahandle,
					   SCM_OWNED_ADDR, &x));
		} else {
			ASSERT_EQ(-1, grant(self->master, self->a, &self->ahandle,
					    SCM_OWNED_ADDR, &x));
			ASSERT_EQ(ENOSPC, errno);
		}
	}
	ASSERT_EQ(1 + max_addrs, naddrs(self->a));
	for (i = 0; i < max_matches + 8; i++) {
		x = mcast(&self->maddr, i);
		errno = 0;
		if (i < max_matches) {
			ASSERT_EQ(0, grant(self->master, self->a, &self->ahandle,
					   SCM_MULTICAST_MATCH, &x));
			ASSERT_EQ(0, grant(self->master, self->a, &self->ahandle,
					   SCM_MULTICAST_SEND, &x));
		} else {
			ASSERT_EQ(-1, grant(self->master, self->a, &self->ahandle,
					    SCM_MULTICAST_MATCH, &x));
			ASSERT_EQ(ENOSPC, errno);
			errno = 0;
			ASSERT_EQ(-1, grant(self->master, self->a, &self->ahandle,
					    SCM_MULTICAST_SEND, &x));
			ASSERT_EQ(ENOSPC, errno);
		}
	}
	/* The refused grants left nothing queued for the hoarder. */
	{
		struct bus_msg m;

		errno = 0;
		ASSERT_EQ(-1, bus_recv(self->a, &m, MSG_DONTWAIT));
		ASSERT_EQ(EAGAIN, errno);
	}
	/* b, another member, still gets its full share of each. */
	for (i = 0; i < max_addrs - 1; i++) {
		snprintf(name, sizeof(name), "fair.%d", i);
		x = bus_on(&self->maddr, name);
		ASSERT_EQ(0, grant(self->master, self->b, &self->bhandle, SCM_OWNED_ADDR, &x));
	}
	ASSERT_EQ(1 + max_addrs, naddrs(self->b));
	for (i = 0; i < max_matches; i++) {
		x = mcast(&self->maddr, i);
		ASSERT_EQ(0, grant(self->master, self->b, &self->bhandle,
				   SCM_MULTICAST_MATCH, &x));
	}
	/* The hoarder leaves: everything it held is free again. */
	close(self->a);
	self->a = socket(AF_BUS, SOCK_DGRAM, 0);
	{
		struct bus_msg m;
		struct bus_notification *n = (struct bus_notification *)m.data;

		ASSERT_LT(0, bus_recv(self->master, &m, 0));
		ASSERT_EQ(BUS_NOTIFY_GONE, n->type);
		ASSERT_EQ(1 + max_addrs, n->count);
	}
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->a, "hoard.0", NULL));
	ASSERT_EQ(2, naddrs(self->a));
}

static int proc_net_bus_lines(void)
{
	char line[256];
	int n = 0;
	FILE *f = fopen("/proc/net/bus", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

#define BOMB_NOFILE 200

/*
 * The bomber, as uid 1000 with RLIMIT_NOFILE BOMB_NOFILE: opens sockets
 * until EMFILE; each asks to join (non-blocking).  Reports on @p how many
 * it opened and how many joined, then waits to be killed.
 */
static void bomber(const struct sockaddr_bus *maddr, int p)
{
	struct rlimit rl = { BOMB_NOFILE, BOMB_NOFILE };
	int counts[2] = { 0, 0 }, fd;

	if (setrlimit(RLIMIT_NOFILE, &rl) || setresuid(1000, 1000, 1000))
		_exit(2);
	for (;;) {
		fd = socket(AF_BUS, SOCK_DGRAM, 0);
		if (fd < 0)
			break;
		counts[0]++;
		if (bus_send_str(fd, maddr, "hello", MSG_DONTWAIT) == 6)
			counts[1]++;
		else if (errno != EAGAIN)
			_exit(3);
	}
	if (errno != EMFILE)
		_exit(4);
	if (write(p, counts, sizeof(counts)) != sizeof(counts))
		_exit(5);
	pause();
	_exit(0);
}

TEST_F(bus, socket_bomb_is_bounded_and_the_bus_keeps_working)
{
	int p[2], counts[2], hellos = 0, gone = 0, lost = 0, lines, status;
	struct bus_notification *n;
	struct bus_msg m;
	pid_t pid;
	int c;

	lines = proc_net_bus_lines();
	ASSERT_LT(0, lines);
	ASSERT_EQ(0, pipe(p));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		bomber(&self->maddr, p[1]);
	ASSERT_EQ(sizeof(counts), read(p[0], counts, sizeof(counts)));
	TH_LOG("the bomber opened %d sockets, %d of them reached the master",
	       counts[0], counts[1]);
	/* Every descriptor it could open (a few are stdio and the pipe). */
	ASSERT_LT(BOMB_NOFILE - 16, counts[0]);
	/* One user fills at most half of the master's queue; the others
	 * are pending endpoints all the same (EAGAIN for their request).
	 */
	ASSERT_EQ(128, counts[1]);
	ASSERT_EQ(lines + counts[0], proc_net_bus_lines());
	/* The bus keeps working: another user joins, members talk. */
	c = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(6, bus_send_str(c, &self->maddr, "hello", MSG_DONTWAIT));
	ASSERT_EQ(4, bus_send_str(self->a, &self->baddr, "msg", 0));
	ASSERT_EQ(4, bus_recv(self->b, &m, 0));
	/* The bomber dies: every socket it had is closed. */
	kill(pid, SIGKILL);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	close(p[0]);
	close(p[1]);
	ASSERT_EQ(lines + 1, proc_net_bus_lines());
	/* The master hears of every one that reached the bus: GONE, or
	 * counted as lost and reported by BUS_NOTIFY_OVERFLOW.
	 */
	while (bus_recv(self->master, &m, MSG_DONTWAIT) >= 0) {
		n = (struct bus_notification *)m.data;
		if (m.name.sbus_addr_ncomp != 0)
			hellos++;
		else if (n->type == BUS_NOTIFY_GONE)
			gone++;
		else if (n->type == BUS_NOTIFY_OVERFLOW)
			lost += n->count;
	}
	ASSERT_EQ(EAGAIN, errno);
	TH_LOG("master: %d requests, %d GONE, %d lost and reported by OVERFLOW", hellos, gone,
	       lost);
	ASSERT_EQ(counts[1] + 1, hellos);
	ASSERT_EQ(counts[0], gone + lost);
	close(c);
}

TEST(bind_bomb_is_bounded_and_every_name_is_freed)
{
	struct rlimit rl = { BOMB_NOFILE, BOMB_NOFILE };
	struct sockaddr_bus a;
	int lines = proc_net_bus_lines(), status, i, fd;
	char name[32];
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int n = 0;

		if (setrlimit(RLIMIT_NOFILE, &rl) || setresuid(1000, 1000, 1000))
			_exit(2);
		for (;;) {
			fd = socket(AF_BUS, SOCK_DGRAM, 0);
			if (fd < 0)
				break;
			snprintf(name, sizeof(name), "bomb.%d", n);
			a = bus_addr_abstract(name, "master");
			if (bind(fd, (struct sockaddr *)&a, sizeof(a)))
				_exit(3);
			n++;
		}
		_exit(errno == EMFILE && n > BOMB_NOFILE - 16 ? 0 : 4);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	/* All closed with the process: no socket left, every name free. */
	ASSERT_EQ(lines, proc_net_bus_lines());
	for (i = 0; i < BOMB_NOFILE - 16; i++) {
		snprintf(name, sizeof(name), "bomb.%d", i);
		fd = bus_master(name, &a);
		ASSERT_LE(0, fd);
		close(fd);
	}
}

/* A socket whose creator is @uid (seteuid around socket()). */
static int socket_as(uid_t uid)
{
	int fd;

	if (seteuid(uid))
		return -1;
	fd = socket(AF_BUS, SOCK_DGRAM, 0);
	if (seteuid(0))
		abort();
	return fd;
}

/* A non-blocking send of "late" on @fd to @to in a child running as @uid:
 * 0 if it went through, else the errno (255: the child failed).
 */
static int send_as(int fd, const struct sockaddr_bus *to, uid_t uid)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		if (setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
			_exit(255);
		if (bus_send_str(fd, to, "late", MSG_DONTWAIT) == 5)
			_exit(0);
		_exit(errno < 255 ? errno : 254);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return 255;
	return WEXITSTATUS(status);
}

/*
 * Fairness is keyed by who really sends: root sending 64 messages each
 * claiming another uid in SCM_CREDENTIALS (which it may) is one user of
 * the master's queue, so a new user (uid 2000) still gets in.
 */
TEST_F(bus, claimed_credentials_do_not_fill_the_user_table)
{
	char ctl[CMSG_SPACE(sizeof(struct ucred))];
	struct cmsghdr *c = (struct cmsghdr *)ctl;
	struct ucred cred = { .pid = getpid(), .gid = 0 };
	int i, fd, rc;

	for (i = 0; i < 64; i++) {
		memset(ctl, 0, sizeof(ctl));
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_CREDENTIALS;
		c->cmsg_len = CMSG_LEN(sizeof(cred));
		cred.uid = 1000 + i;
		memcpy(CMSG_DATA(c), &cred, sizeof(cred));
		ASSERT_EQ(7, bus_send(self->a, &self->maddr, "forged", 7, ctl, sizeof(ctl),
				      MSG_DONTWAIT));
	}
	fd = socket_as(2000);
	ASSERT_LE(0, fd);
	rc = send_as(fd, &self->maddr, 2000);
	close(fd);
	TH_LOG("uid 2000 after 64 claimed uids: %s", rc ? strerror(rc) : "sent");
	ASSERT_EQ(0, rc);
}

/*
 * The subordinate-uid attack: uid 1000 makes a user namespace mapping
 * 65536 uids (root writes the map, as newuidmap would) and sends to the
 * master as 64 of them.  All of them count as the namespace's owner, so
 * a new user (uid 2000) still gets in.
 */
TEST_F(bus, a_user_namespace_counts_as_its_owner)
{
	int ready[2], go[2], res[2], hold[2], sent = -1, fd, rc, status, f;
	char c = 0, path[64];
	pid_t pid;

	f = open("/proc/sys/kernel/unprivileged_userns_clone", O_WRONLY);
	if (f >= 0) {
		if (write(f, "1", 1) != 1)
			TH_LOG("could not allow unprivileged user namespaces");
		close(f);
	}
	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(go));
	ASSERT_EQ(0, pipe(res));
	ASSERT_EQ(0, pipe(hold));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int k, n = 0;

		close(hold[1]);
		if (setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000) ||
		    unshare(CLONE_NEWUSER)) {
			c = 'E';
			if (write(ready[1], &c, 1) != 1)
				_exit(3);
			_exit(2);
		}
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(3);
		for (k = 0; k < 64; k++) {
			if (fork() == 0) {
				int s;

				c = 1;
				if (!setresgid(0, 0, 0) && !setresuid(k, k, k)) {
					s = socket(AF_BUS, SOCK_DGRAM, 0);
					c = bus_send_str(s, &self->maddr, "ns", MSG_DONTWAIT) == 3 ?
					    0 : errno;
				}
				if (write(res[1], &c, 1) != 1)
					_exit(1);
				/* Alive, with the socket, until the test ends. */
				while (read(hold[0], &c, 1) > 0)
					;
				_exit(0);
			}
		}
		for (k = 0; k < 64; k++)
			if (read(res[0], &c, 1) == 1 && c == 0)
				n++;
		if (write(ready[1], &n, sizeof(n)) != sizeof(n))
			_exit(3);
		while (wait(NULL) > 0)
			;
		_exit(0);
	}
	close(hold[0]);
	ASSERT_EQ(1, read(ready[0], &c, 1));
	if (c == 'E') {
		waitpid(pid, &status, 0);
		SKIP(return, "no unprivileged user namespaces");
	}
	snprintf(path, sizeof(path), "/proc/%d/setgroups", pid);
	ASSERT_EQ(0, write_file(path, "deny"));
	snprintf(path, sizeof(path), "/proc/%d/uid_map", pid);
	ASSERT_EQ(0, write_file(path, "0 100000 65536"));
	snprintf(path, sizeof(path), "/proc/%d/gid_map", pid);
	ASSERT_EQ(0, write_file(path, "0 100000 65536"));
	ASSERT_EQ(1, write(go[1], "g", 1));
	ASSERT_EQ(sizeof(sent), read(ready[0], &sent, sizeof(sent)));
	fd = socket_as(2000);
	rc = send_as(fd, &self->maddr, 2000);
	close(fd);
	close(hold[1]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	TH_LOG("%d of 64 namespace uids sent; uid 2000 then: %s", sent,
	       rc ? strerror(rc) : "sent");
	ASSERT_EQ(64, sent);
	ASSERT_EQ(0, rc);
}

#define FDS_PER_MSG 10

/*
 * Files in flight are counted per user and bounded by RLIMIT_NOFILE:
 * uid 1000 with a limit of 64 sends messages of 10 files each to a
 * master that does not read: 6 go, the 7th is ETOOMANYREFS; once the
 * master has read them, sending works again.
 */
TEST_F(bus, files_in_flight_are_bounded_by_rlimit_nofile)
{
	int up[2], down[2], results[8], status, i, k;
	pid_t pid;
	char c;

	ASSERT_EQ(0, pipe(up));
	ASSERT_EQ(0, pipe(down));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct rlimit rl = { 64, 64 };
		char ctl[CMSG_SPACE(FDS_PER_MSG * sizeof(int))];
		struct cmsghdr *cm = (struct cmsghdr *)ctl;
		int fd, null;

		if (setrlimit(RLIMIT_NOFILE, &rl) || setresgid(1000, 1000, 1000) ||
		    setresuid(1000, 1000, 1000))
			_exit(2);
		fd = socket(AF_BUS, SOCK_DGRAM, 0);
		null = open("/dev/null", O_RDONLY);
		memset(ctl, 0, sizeof(ctl));
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(FDS_PER_MSG * sizeof(int));
		for (k = 0; k < FDS_PER_MSG; k++)
			memcpy(CMSG_DATA(cm) + k * sizeof(int), &null, sizeof(int));
		for (i = 0; i < 7; i++)
			results[i] = bus_send(fd, &self->maddr, "f", 2, ctl, sizeof(ctl),
					      MSG_DONTWAIT) == 2 ? 0 : errno;
		if (write(up[1], results, 7 * sizeof(int)) != 7 * sizeof(int) ||
		    read(down[0], &c, 1) != 1)
			_exit(3);
		results[7] = bus_send(fd, &self->maddr, "f", 2, ctl, sizeof(ctl),
				      MSG_DONTWAIT) == 2 ? 0 : errno;
		if (write(up[1], &results[7], sizeof(int)) != sizeof(int) ||
		    read(down[0], &c, 1) != 1)
			_exit(3);
		_exit(0);
	}
	ASSERT_EQ(7 * sizeof(int), read(up[0], results, 7 * sizeof(int)));
	/* The master reads what came, closing the files. */
	for (i = 0; ; i++) {
		char ctl[CMSG_SPACE(FDS_PER_MSG * sizeof(int))], buf[8];
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr h = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl, .msg_controllen = sizeof(ctl),
		};
		struct cmsghdr *cm;
		int fd;

		if (recvmsg(self->master, &h, MSG_DONTWAIT) < 0)
			break;
		for (cm = CMSG_FIRSTHDR(&h); cm; cm = CMSG_NXTHDR(&h, cm))
			for (k = 0; cm->cmsg_type == SCM_RIGHTS &&
			     k < (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int)); k++) {
				memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
				close(fd);
			}
	}
	ASSERT_EQ(1, write(down[1], "r", 1));
	ASSERT_EQ(sizeof(int), read(up[0], &results[7], sizeof(int)));
	ASSERT_EQ(1, write(down[1], "x", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	while (recv(self->master, &c, 1, MSG_DONTWAIT) >= 0)
		;
	TH_LOG("sends of %d files as uid 1000 (RLIMIT_NOFILE 64): %d %d %d %d %d %d %d, "
	       "after the master read %d of them: %d", FDS_PER_MSG, results[0], results[1],
	       results[2], results[3], results[4], results[5], results[6], i, results[7]);
	for (i = 0; i < 6; i++)
		ASSERT_EQ(0, results[i]);
	ASSERT_EQ(ETOOMANYREFS, results[6]);
	ASSERT_EQ(0, results[7]);
}

/* A payload of 5 MiB, with buffers that allow it, arrives intact. */
TEST_F(bus, a_five_mib_message_round_trips)
{
	const size_t size = 5 * MIB;
	int big = 16 * MIB;
	unsigned char *out = malloc(size), *in = malloc(size + 1);
	ssize_t n, got;
	size_t i;

	ASSERT_NE(NULL, out);
	ASSERT_NE(NULL, in);
	for (i = 0; i < size; i++)
		out[i] = (unsigned char)(i * 7 + (i >> 12));
	ASSERT_EQ(0, setsockopt(self->a, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)));
	ASSERT_EQ(0, setsockopt(self->b, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)));
	n = bus_send(self->a, &self->baddr, out, size, NULL, 0, 0);
	TH_LOG("send of 5 MiB: %zd (%s)", n, n < 0 ? strerror(errno) : "ok");
	ASSERT_EQ(size, n);
	got = recv(self->b, in, size + 1, MSG_DONTWAIT);
	ASSERT_EQ(size, got);
	ASSERT_EQ(0, memcmp(in, out, size));
	free(out);
	free(in);
}

/* Active objects of the AF_BUS slab (flushed first), or -1. */
static long bus_slab_objects(void)
{
	char line[512], name[64];
	long n = -1, v;
	FILE *f;

	write_file("/sys/kernel/slab/AF_BUS/shrink", "1");
	f = fopen("/proc/slabinfo", "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %ld", name, &v) == 2 && !strcmp(name, "AF_BUS"))
			n = v;
	if (f)
		fclose(f);
	return n;
}

/*
 * The route a sender keeps to its last receiver does not keep that
 * receiver alive: a sends once to c, c closes, a does nothing more; c's
 * socket is freed (the AF_BUS slab has one object fewer) within 1 s.
 */
TEST_F(bus, a_route_cache_does_not_keep_a_closed_receiver)
{
	struct sockaddr_bus caddr = bus_on(&self->maddr, "c.svc");
	int c = socket(AF_BUS, SOCK_DGRAM, 0);
	long before, after;
	int i = 0;

	ASSERT_EQ(0, bus_join(self->master, &self->maddr, c, "c.svc", NULL));
	ASSERT_EQ(5, bus_send_str(self->a, &caddr, "once", 0));
	/* Settled: what earlier tests closed is freed first. */
	before = bus_slab_objects();
	do {
		usleep(200000);
		after = before;
		before = bus_slab_objects();
	} while (before != after && ++i < 10);
	if (before < 0)
		SKIP(return, "no AF_BUS line in /proc/slabinfo");
	i = 0;
	close(c);
	do {
		usleep(20000);
		after = bus_slab_objects();
	} while (after > before - 1 && ++i < 50);
	TH_LOG("AF_BUS slab objects: %ld with c open, %ld after its close", before, after);
	ASSERT_GE(before - 1, after);
}

TEST_HARNESS_MAIN
