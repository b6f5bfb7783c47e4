// SPDX-License-Identifier: GPL-2.0
/*
 * The VFS is never entered under a module lock, and a bus is identified
 * by its inode or abstract key, never by the text of a path:
 *
 * - a path walk that sleeps (a FUSE mount whose server never answers
 *   LOOKUP) in SCM_SRC_ADDR or in a first send stalls only its caller:
 *   the bus's other sends, joins, closes and /proc/net/bus go on, and
 *   bind() of the same socket too;
 * - a path that names the bus's text but not its inode (chroot), or one
 *   the sender may not write, does not reach the bus; a relative path to
 *   the same inode does;
 * - bind() and sendto() racing on one socket over path buses of one
 *   directory do not deadlock (the directory's i_rwsem against the
 *   socket's lock).  This one runs last: on failure its tasks are stuck
 *   for good and the hung-task detector ends the run.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/bus.h>
#include "bus_test.h"
#include "bus_stall.h"
#include "kselftest_harness.h"

/* A blocking call run in a thread, so that the test can time it. */
struct job {
	pthread_t t;
	int (*fn)(struct job *j);
	int fd;
	struct sockaddr_bus to;
	const char *data;
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
	size_t nctl;
	int ret, err;
	int done;
	int started;
};

static void *job_main(void *p)
{
	struct job *j = p;

	errno = 0;
	j->ret = j->fn(j);
	j->err = errno;
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int job_start(struct job *j, int (*fn)(struct job *j))
{
	j->fn = fn;
	j->done = 0;
	j->started = !pthread_create(&j->t, NULL, job_main, j);
	return j->started ? 0 : -1;
}

/* Waits until @j is done or @deadline (bus_now_ms()) passes. */
static int job_wait(struct job *j, long long deadline)
{
	while (!__atomic_load_n(&j->done, __ATOMIC_ACQUIRE)) {
		if (bus_now_ms() >= deadline)
			return 0;
		usleep(5000);
	}
	return 1;
}

/* Joins @j if it is done (a stuck thread is left alone). */
static void job_reap(struct job *j)
{
	if (j->started && __atomic_load_n(&j->done, __ATOMIC_ACQUIRE))
		pthread_join(j->t, NULL);
	j->started = 0;
}

static int do_send(struct job *j)
{
	return bus_send(j->fd, &j->to, j->data, strlen(j->data) + 1, j->ctl, j->nctl, 0);
}

static int do_close(struct job *j)
{
	return close(j->fd);
}

static int do_bind(struct job *j)
{
	return bind(j->fd, (struct sockaddr *)&j->to, sizeof(j->to));
}

static int do_proc(struct job *j)
{
	char buf[4096];
	int fd = open("/proc/net/bus", O_RDONLY), n, total = 0;

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	close(fd);
	return total;
}

FIXTURE(bus) {
	int master, m1, m2, p;	/* members m1, m2; p is pending */
	struct sockaddr_bus maddr, phandle;
	struct bus_fuse fuse;
	char mnt[32];
};

FIXTURE_SETUP(bus)
{
	char name[32];
	struct timeval tv = { 1, 0 };

	snprintf(name, sizeof(name), "vfs.%d", getpid());
	snprintf(self->mnt, sizeof(self->mnt), "/tmp/afbus-fuse.%d", getpid());
	self->fuse.fd = -1;
	self->master = bus_master(name, &self->maddr);
	ASSERT_LE(0, self->master);
	ASSERT_EQ(0, setsockopt(self->master, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	self->m1 = socket(AF_BUS, SOCK_DGRAM, 0);
	self->m2 = socket(AF_BUS, SOCK_DGRAM, 0);
	self->p = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->m1, "m1", NULL));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->m2, "m2", NULL));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->p, NULL, &self->phandle));
}

FIXTURE_TEARDOWN(bus)
{
	bus_fuse_abort(&self->fuse);
	close(self->p);
	if (self->m2 >= 0)
		close(self->m2);
	close(self->m1);
	close(self->master);
}

/*
 * A pending endpoint sends to its master from its own handle, named on a
 * path through the stalled FUSE mount: its send sleeps in the walk.  The
 * bus does not: within 2 s a member's send, a join, a close and a read
 * of /proc/net/bus all complete.  Aborting the connection ends the walk.
 */
TEST_F(bus, stalled_scm_src_addr_walk_holds_no_bus_lock)
{
	struct job stall = { 0 }, send = { 0 }, join = { 0 }, leave = { 0 }, proc = { 0 };
	int fresh = socket(AF_BUS, SOCK_DGRAM, 0), got_m1 = 0, got_hello = 0, got_gone = 0;
	int looked_up, send_done, join_done, leave_done, proc_done, stall_done, i;
	struct sockaddr_bus src = self->phandle;
	long long deadline;
	size_t off = 0;
	struct bus_msg m;

	ASSERT_LE(0, fresh);
	ASSERT_EQ(0, bus_fuse_mount(&self->fuse, self->mnt));
	memset(src.sbus_path, 0, sizeof(src.sbus_path));
	snprintf(src.sbus_path, sizeof(src.sbus_path), "%s/x", self->mnt);
	bus_cmsg_add(stall.ctl, &off, SCM_SRC_ADDR, &src);
	stall.nctl = off;
	stall.fd = self->p;
	stall.to = self->maddr;
	stall.data = "stalled";
	ASSERT_EQ(0, job_start(&stall, do_send));
	looked_up = !bus_fuse_wait_lookup(&self->fuse, 3000);

	send.fd = self->m1;
	send.to = self->maddr;
	send.data = "m1";
	join.fd = fresh;
	join.to = self->maddr;
	join.data = "hello";
	leave.fd = self->m2;
	self->m2 = -1;
	deadline = bus_now_ms() + 2000;
	job_start(&send, do_send);
	job_start(&join, do_send);
	job_start(&leave, do_close);
	job_start(&proc, do_proc);
	send_done = job_wait(&send, deadline);
	join_done = job_wait(&join, deadline);
	leave_done = job_wait(&leave, deadline);
	proc_done = job_wait(&proc, deadline);
	TH_LOG("within 2 s: send %d, join %d, close %d, /proc/net/bus %d",
	       send_done, join_done, leave_done, proc_done);

	/* The abort ends the walk (and, on a module that walks under the
	 * bus lock, frees everything it held up).
	 */
	bus_fuse_abort(&self->fuse);
	stall_done = job_wait(&stall, bus_now_ms() + 3000);
	deadline = bus_now_ms() + 3000;
	job_wait(&send, deadline);
	job_wait(&join, deadline);
	job_wait(&leave, deadline);
	job_wait(&proc, deadline);
	for (i = 0; i < 3; i++) {
		if (bus_recv(self->master, &m, 0) < 0)
			break;
		got_m1 += !strcmp(m.data, "m1");
		got_hello += !strcmp(m.data, "hello");
		got_gone += m.name.sbus_addr_ncomp == 0;
	}
	job_reap(&stall);
	job_reap(&send);
	job_reap(&join);
	job_reap(&leave);
	job_reap(&proc);
	close(fresh);
	TH_LOG("the stalled send: done %d, returned %d, errno %d (%s)", stall_done, stall.ret,
	       stall.err, strerror(stall.err));

	ASSERT_TRUE(looked_up);
	EXPECT_TRUE(send_done);
	EXPECT_EQ(3, send.ret);
	EXPECT_TRUE(join_done);
	EXPECT_EQ(6, join.ret);
	EXPECT_TRUE(leave_done);
	EXPECT_EQ(0, leave.ret);
	EXPECT_TRUE(proc_done);
	EXPECT_LT(0, proc.ret);
	EXPECT_EQ(1, got_m1);
	EXPECT_EQ(1, got_hello);
	EXPECT_EQ(1, got_gone);
	ASSERT_TRUE(stall_done);
	ASSERT_EQ(-1, stall.ret);
	ASSERT_TRUE(stall.err == ECONNABORTED || stall.err == ENOTCONN || stall.err == ENOENT);
}

/*
 * An unattached socket's first send walks a stalled path; bind() of the
 * same socket to an abstract bus meanwhile completes (the walk holds no
 * lock of the socket).
 */
TEST_F(bus, stalled_first_send_does_not_hold_the_socket)
{
	struct job send = { 0 }, bnd = { 0 };
	int u = socket(AF_BUS, SOCK_DGRAM, 0), looked_up, bind_done, send_done;
	char path[BUS_PATH_MAX], name[32];

	ASSERT_LE(0, u);
	ASSERT_EQ(0, bus_fuse_mount(&self->fuse, self->mnt));
	snprintf(path, sizeof(path), "%s/y", self->mnt);
	send.fd = u;
	send.to = bus_addr_str(path, "master");
	send.data = "x";
	ASSERT_EQ(0, job_start(&send, do_send));
	looked_up = !bus_fuse_wait_lookup(&self->fuse, 3000);

	snprintf(name, sizeof(name), "vfs-bind.%d", getpid());
	bnd.fd = u;
	bnd.to = bus_addr_abstract(name, "master");
	job_start(&bnd, do_bind);
	bind_done = job_wait(&bnd, bus_now_ms() + 2000);

	bus_fuse_abort(&self->fuse);
	send_done = job_wait(&send, bus_now_ms() + 3000);
	job_wait(&bnd, bus_now_ms() + 3000);
	job_reap(&send);
	job_reap(&bnd);
	close(u);
	TH_LOG("bind within 2 s: %d (returned %d, errno %d); the stalled send: done %d, "
	       "returned %d, errno %d (%s)", bind_done, bnd.ret, bnd.err, send_done, send.ret,
	       send.err, strerror(send.err));

	ASSERT_TRUE(looked_up);
	EXPECT_TRUE(bind_done);
	EXPECT_EQ(0, bnd.ret);
	ASSERT_TRUE(send_done);
	ASSERT_EQ(-1, send.ret);
}

/* Runs @fn(@arg) in a child; returns its exit status, or -1. */
static int in_child(int (*fn)(int fd, const char *arg), int fd, const char *arg)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0)
		_exit(fn(fd, arg));
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* Exit statuses of the children below: 0 as expected, 1 the send went
 * through, 2 + errno otherwise (when it fits).
 */
static int send_result(ssize_t ret, int want)
{
	if (ret >= 0)
		return want ? 1 : 0;
	if (!want)
		return 2;
	return errno == want ? 0 : 2 + (errno < 200 ? errno : 0);
}

static int send_in_chroot(int fd, const char *dir)
{
	char root[96];
	struct sockaddr_bus to;

	snprintf(root, sizeof(root), "%s/root", dir);
	if (chroot(root) || chdir("/"))
		return 250;
	snprintf(root, sizeof(root), "%s/bus", dir);
	to = bus_addr_str(root, "master");
	errno = 0;
	return send_result(bus_send_str(fd, &to, "chroot", 0), ENOENT);
}

static int send_relative(int fd, const char *dir)
{
	struct sockaddr_bus to = bus_addr_str("bus", "master");

	if (chdir(dir))
		return 250;
	return send_result(bus_send_str(fd, &to, "relative", 0), 0);
}

static int send_as_1000(int fd, const char *dir)
{
	char path[96];
	struct sockaddr_bus to;

	if (setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000))
		return 250;
	snprintf(path, sizeof(path), "%s/bus", dir);
	to = bus_addr_str(path, "master");
	errno = 0;
	return send_result(bus_send_str(fd, &to, "uid1000", 0), EACCES);
}

/*
 * A member joined by its bus's absolute path: from a chroot where that
 * path names nothing the send is ENOENT; without write permission on the
 * socket inode (uid 1000, no capabilities, mode 0) it is EACCES; a
 * relative path to the same inode reaches the bus.
 */
TEST_F(bus, a_path_reaches_the_bus_by_lookup_not_by_text)
{
	char dir[64], root[96], path[96];
	struct sockaddr_bus paddr;
	int master, mem, chroot_rc, rel_rc, uid_rc;
	struct bus_msg m;
	struct timeval tv = { 1, 0 };

	snprintf(dir, sizeof(dir), "/tmp/afbus-vfs.%d", getpid());
	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(path, sizeof(path), "%s/bus", dir);
	ASSERT_EQ(0, mkdir(dir, 0755));
	ASSERT_EQ(0, mkdir(root, 0755));
	paddr = bus_addr_str(path, "master");
	master = socket(AF_BUS, SOCK_DGRAM, 0);
	mem = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bind(master, (struct sockaddr *)&paddr, sizeof(paddr)));
	ASSERT_EQ(0, setsockopt(master, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	ASSERT_EQ(0, bus_join(master, &paddr, mem, "mem", NULL));

	chroot_rc = in_child(send_in_chroot, mem, dir);
	rel_rc = in_child(send_relative, mem, dir);
	ASSERT_EQ(0, chmod(path, 0));
	uid_rc = in_child(send_as_1000, mem, dir);
	TH_LOG("exit codes (0 expected, 1 the send went through, 2+ errno): chroot %d, "
	       "relative %d, uid 1000 on mode 0 %d", chroot_rc, rel_rc, uid_rc);

	/* What reached the master: the relative send only. */
	ASSERT_LT(0, bus_recv(master, &m, 0));
	EXPECT_STREQ("relative", m.data);
	errno = 0;
	EXPECT_EQ(-1, bus_recv(master, &m, MSG_DONTWAIT));
	EXPECT_EQ(EAGAIN, errno);

	close(mem);
	close(master);
	unlink(path);
	rmdir(root);
	rmdir(dir);
	EXPECT_EQ(0, chroot_rc);
	EXPECT_EQ(0, rel_rc);
	EXPECT_EQ(0, uid_rc);
}

struct abba {
	int fd;
	const char *dir;
	long long end;
	int binds, sends;
};

static void *abba_bind(void *p)
{
	struct abba *a = p;
	struct sockaddr_bus to;
	char path[BUS_PATH_MAX];

	while (bus_now_ms() < a->end) {
		snprintf(path, sizeof(path), "%s/b%d", a->dir, a->binds++);
		to = bus_addr_str(path, "m");
		bind(a->fd, (struct sockaddr *)&to, sizeof(to));
	}
	return NULL;
}

static void *abba_send(void *p)
{
	struct abba *a = p;
	struct sockaddr_bus to;
	char path[BUS_PATH_MAX];

	while (bus_now_ms() < a->end) {
		snprintf(path, sizeof(path), "%s/x%d", a->dir, a->sends++);
		to = bus_addr_str(path, "m");
		bus_send_str(a->fd, &to, "x", MSG_DONTWAIT);
	}
	return NULL;
}

/*
 * bind() (the directory's i_rwsem, then the socket) against sendto()
 * (the socket, then a walk of the same directory) on one socket, for
 * 3 s, in a child.  It must end; a deadlock is reported as a failure
 * and its tasks are left to the hung-task detector.  Keep this last.
 */
TEST_F(bus, zz_bind_and_sendto_on_one_socket_do_not_deadlock)
{
	char dir[64], path[320];
	int status = 0, exited = 0;
	long long deadline;
	struct dirent *e;
	pid_t pid;
	DIR *d;

	snprintf(dir, sizeof(dir), "/tmp/afbus-abba.%d", getpid());
	ASSERT_EQ(0, mkdir(dir, 0755));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct abba a = { socket(AF_BUS, SOCK_DGRAM, 0), dir, bus_now_ms() + 3000 };
		pthread_t t1, t2;

		if (a.fd < 0 || pthread_create(&t1, NULL, abba_bind, &a) ||
		    pthread_create(&t2, NULL, abba_send, &a))
			_exit(2);
		pthread_join(t1, NULL);
		pthread_join(t2, NULL);
		dprintf(1, "# %d binds, %d sends\n", a.binds, a.sends);
		_exit(0);
	}
	deadline = bus_now_ms() + 8000;
	while (bus_now_ms() < deadline) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			exited = 1;
			break;
		}
		usleep(20000);
	}
	if (!exited) {
		TH_LOG("bind() and sendto() on one socket deadlocked (child %d stuck)", pid);
		ASSERT_TRUE(exited);
	}
	d = opendir(dir);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
}

TEST_HARNESS_MAIN
