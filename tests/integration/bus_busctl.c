// SPDX-License-Identifier: GPL-2.0
/*
 * busctl end to end: the reference master and busctl clients on a real
 * bus in the guest.  Checks the facts of make run's transcript (names
 * owned, replies received, the filtered listener never woken, the name
 * released after a kill, NameOwnerChanged), name queueing, the policy,
 * and that bad input gives one clear line and the documented exit status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"

#define BUSCTL "/usr/bin/afbusctl"
#define POLICY "/tmp/busctl-test.toml"

static const char policy[] =
	"[bus]\nrequire_send_grants = true\n"
	"[join]\nuids = \"*\"\n"
	"[monitor]\nuids = [0]\n"
	"[[own]]\nname = \"org.example.*\"\nuids = [0]\n"
	"[[match]]\npairs = [\"*\"]\nuids = \"*\"\n"
	"[[send]]\npairs = [\"member=*\", \"interface=org.example.*\", \"path=*\", \"sender=*\"]\nuids = [0]\n";

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f))
		ksft_exit_fail_msg("write %s: %s\n", path, strerror(errno));
}

static char *read_file(const char *path)
{
	static char buf[2][16384];
	static int i;
	char *out = buf[i++ % 2];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? 0 : read(fd, out, sizeof(buf[0]) - 1);

	out[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	return out;
}

static pid_t spawned[32];
static unsigned int nspawned;

/* Starts busctl ARGS... as @uid with its output in @log; returns its pid. */
static pid_t spawn(uid_t uid, const char *log, const char *const *args)
{
	pid_t pid;

	/* A fresh log: an old one may hold the line a test waits for. */
	unlink(log);
	pid = fork();
	if (pid > 0 && nspawned < ARRAY_SIZE(spawned))
		spawned[nspawned++] = pid;

	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(fd, 1);
		dup2(fd, 2);
		if (uid && (setresgid(uid, uid, uid) || setresuid(uid, uid, uid)))
			_exit(120);
		/* Die with the test, even if the harness kills it mid-way. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(BUSCTL, (char *const *)args);
		_exit(121);
	}
	return pid;
}

/* Runs busctl to completion; returns its exit status, output in @log. */
static int run(uid_t uid, const char *log, const char *const *args)
{
	int status;
	pid_t pid = spawn(uid, log, args);

	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Waits up to 20 s for @pattern in @log. */
static int wait_for(const char *log, const char *pattern)
{
	int i;

	for (i = 0; i < 400; i++) {
		if (strstr(read_file(log), pattern))
			return 0;
		usleep(50000);
	}
	fprintf(stderr, "# no \"%s\" in %s:\n%s\n", pattern, log, read_file(log));
	return -1;
}

static int count(const char *text, const char *needle)
{
	int n = 0;

	while ((text = strstr(text, needle))) {
		n++;
		text++;
	}
	return n;
}

#define ARGS(...) ((const char *const[]){ BUSCTL, __VA_ARGS__, NULL })

FIXTURE(busctl) {
	char bus[64];
	pid_t master;
};

FIXTURE_SETUP(busctl)
{
	snprintf(self->bus, sizeof(self->bus), "/tmp/busctl-%d", getpid());
	setenv("BUSCTL_BUS", self->bus, 1);
	write_file(POLICY, policy);
	self->master = spawn(0, "/tmp/master.log",
			     ARGS("master", self->bus, "--policy", POLICY));
	ASSERT_EQ(0, wait_for("/tmp/master.log", "master: serving"));
}

FIXTURE_TEARDOWN(busctl)
{
	unsigned int i;

	/* Whatever a failed assertion left running, the master last. */
	for (i = nspawned; i-- > 0;) {
		kill(spawned[i], SIGKILL);
		waitpid(spawned[i], NULL, 0);
	}
	unlink(self->bus);
}

/* A service takes a name; a client calls it by that name and gets the reply. */
TEST_F(busctl, call_and_reply)
{
	pid_t service = spawn(0, "/tmp/service.log",
			      ARGS("join", "--name", "org.example.Echo", "--serve"));

	ASSERT_EQ(0, wait_for("/tmp/service.log", "org.example.Echo: primary-owner"));
	ASSERT_EQ(0, run(0, "/tmp/client.log", ARGS("call", "org.example.Echo", "ping")));
	EXPECT_NE(NULL, strstr(read_file("/tmp/client.log"),
			       "reply from org.example.Echo: \"echo: ping\""));
	ASSERT_EQ(0, wait_for("/tmp/service.log", "serve: call from 1."));
	ASSERT_EQ(0, wait_for("/tmp/master.log", "owns org.example.Echo"));
	/* A one-way send from a second well-known name. */
	ASSERT_EQ(0, run(0, "/tmp/client.log",
			 ARGS("send", "--src", "org.example.Client", "org.example.Echo", "hi")));
	ASSERT_EQ(0, wait_for("/tmp/service.log", "call from org.example.Client: \"hi\""));
	kill(service, SIGKILL);
	waitpid(service, NULL, 0);
}

/*
 * Two listeners on the demo's signal: one matches it; the other's pair
 * collides in the bloom filter, so only its BPF filter keeps it asleep.
 */
TEST_F(busctl, filtered_listener_not_woken)
{
	pid_t l1 = spawn(0, "/tmp/l1.log",
			 ARGS("listen", "--match", "member=Changed", "--count", "1",
			      "--timeout", "20"));
	pid_t l2 = spawn(0, "/tmp/l2.log",
			 ARGS("listen", "--match", "member=Changed27566", "--timeout", "3"));
	char *out;

	ASSERT_EQ(0, wait_for("/tmp/l1.log", "listening as"));
	ASSERT_EQ(0, wait_for("/tmp/l2.log", "listening as"));
	/* The collision is real: every bit of the match is in the signal. */
	ASSERT_EQ(0, run(0, "/tmp/bloom.log",
			 ARGS("bloom", "interface=org.example.Echo", "member=Changed",
			      "path=/org/example/Echo", "sender=org.example.Echo")));
	ASSERT_EQ(0, run(0, "/tmp/emit.log",
			 ARGS("emit", "interface=org.example.Echo", "member=Changed",
			      "path=/org/example/Echo", "sender=org.example.Echo",
			      "state is now 42")));
	ASSERT_EQ(0, wait_for("/tmp/l1.log", "\"state is now 42\""));
	ASSERT_EQ(0, wait_for("/tmp/l2.log", "nothing more"));
	out = read_file("/tmp/l2.log");
	EXPECT_NE(NULL, strstr(out, "(0 message(s) received, 0 dropped)"));
	EXPECT_EQ(NULL, strstr(out, "state is now 42"));
	waitpid(l1, NULL, 0);
	waitpid(l2, NULL, 0);
	EXPECT_EQ(1, count(read_file("/tmp/l1.log"), "signal from"));
}

/* The owner is killed: the kernel tells the master, which frees the name. */
TEST_F(busctl, name_released_after_kill)
{
	pid_t service = spawn(0, "/tmp/service.log",
			      ARGS("join", "--name", "org.example.Echo", "--serve"));
	pid_t watcher;

	ASSERT_EQ(0, wait_for("/tmp/service.log", "primary-owner"));
	watcher = spawn(0, "/tmp/watcher.log",
			ARGS("listen", "--match", "member=NameOwnerChanged", "--count", "1",
			     "--timeout", "20"));
	ASSERT_EQ(0, wait_for("/tmp/watcher.log", "listening as"));
	kill(service, SIGKILL);
	waitpid(service, NULL, 0);
	ASSERT_EQ(0, wait_for("/tmp/master.log", "is gone; the kernel released 1."));
	ASSERT_EQ(0, wait_for("/tmp/watcher.log", "\"org.example.Echo\\n1."));
	waitpid(watcher, NULL, 0);
	EXPECT_EQ(1, run(0, "/tmp/client.log", ARGS("call", "org.example.Echo", "ping")));
	EXPECT_NE(NULL, strstr(read_file("/tmp/client.log"), "(EHOSTUNREACH)"));
}

/* A taken name queues; the owner's death passes it to the next in line. */
TEST_F(busctl, name_queue)
{
	pid_t a = spawn(0, "/tmp/a.log", ARGS("join", "--name", "org.example.Q", "--serve"));
	pid_t b;

	ASSERT_EQ(0, wait_for("/tmp/a.log", "org.example.Q: primary-owner"));
	b = spawn(0, "/tmp/b.log", ARGS("join", "--name", "org.example.Q", "--serve"));
	ASSERT_EQ(0, wait_for("/tmp/b.log", "org.example.Q: in-queue"));
	ASSERT_EQ(2, run(0, "/tmp/c.log",
			 ARGS("join", "--name", "org.example.Q", "--no-queue", "--bogus")));
	ASSERT_EQ(0, run(0, "/tmp/c.log", ARGS("join", "--name", "org.example.Q", "--no-queue")));
	EXPECT_NE(NULL, strstr(read_file("/tmp/c.log"), "org.example.Q: exists"));
	kill(a, SIGKILL);
	waitpid(a, NULL, 0);
	ASSERT_EQ(0, wait_for("/tmp/b.log", "NameAcquired"));
	ASSERT_EQ(0, wait_for("/tmp/master.log", "passes to 1."));
	ASSERT_EQ(0, run(0, "/tmp/c.log", ARGS("call", "org.example.Q", "who")));
	ASSERT_EQ(0, wait_for("/tmp/b.log", "\"who\""));
	kill(b, SIGKILL);
	waitpid(b, NULL, 0);
}

/* The policy: a user may join and listen, not own names or emit. */
TEST_F(busctl, policy_as_unprivileged_user)
{
	chmod(self->bus, 0777);
	ASSERT_EQ(3, run(1000, "/tmp/u.log", ARGS("join", "--name", "org.example.Mine")));
	EXPECT_NE(NULL, strstr(read_file("/tmp/u.log"),
			       "AccessDenied: uid 1000 may not own org.example.Mine"));
	ASSERT_EQ(3, run(1000, "/tmp/u.log", ARGS("emit", "member=Changed", "hello")));
	EXPECT_NE(NULL, strstr(read_file("/tmp/u.log"), "uid 1000 may not send"));
	ASSERT_EQ(3, run(1000, "/tmp/u.log", ARGS("monitor", "--timeout", "1")));
	ASSERT_EQ(0, run(1000, "/tmp/u.log",
			 ARGS("listen", "--match", "member=X", "--timeout", "1")));
	/* The master saw the user's own uid in its credentials. */
	ASSERT_EQ(0, wait_for("/tmp/master.log", "uid 1000) joined"));
	/* Without write permission on the inode the kernel refuses. */
	chmod(self->bus, 0755);
	ASSERT_EQ(1, run(1000, "/tmp/u.log", ARGS("join")));
	EXPECT_NE(NULL, strstr(read_file("/tmp/u.log"), "(EACCES)"));
}

/* Bad input: one line, the documented status, never a panic. */
TEST_F(busctl, bad_input)
{
	const struct {
		int status;
		const char *const *args;
		const char *says;
	} cases[] = {
		{ 2, ARGS("frobnicate"), "unrecognized subcommand" },
		{ 2, ARGS("call", "bad address", "x"), "not printable ASCII" },
		{ 2, ARGS("--bus", "relative/path", "join"), "neither a path" },
		{ 2, ARGS("join", "--name", "1.4"), "not a well-known name" },
		{ 2, ARGS("emit", "novalue", "msg"), "not a KEY=VALUE pair" },
		{ 2, ARGS("bloom", "a=1", "b=2", "c=3", "d=4", "e=5", "f=6", "g=7", "h=8", "i=9"),
		  "at most 8" },
		{ 1, ARGS("--bus", "/tmp/no-such-bus", "join"), "(ENOENT)" },
		{ 1, ARGS("--bus", "@no-such-bus", "call", "org.x.Y", "hi"), "(ECONNREFUSED)" },
		{ 4, ARGS("master", "/tmp/x-bus", "--policy", "/tmp/bad.toml"),
		  "policy /tmp/bad.toml: line 2: unknown field `uid`" },
		{ 4, ARGS("master", "/tmp/x-bus", "--policy", "/nonexistent.toml"),
		  "No such file or directory" },
		{ 1, ARGS("master", "/tmp", "--policy", POLICY), "(EADDRINUSE)" },
		{ 1, ARGS("--master", "org.example.Nobody", "join"), "(EACCES)" },
	};
	unsigned int i;

	write_file("/tmp/bad.toml", "[join]\nuid = [0]\n");
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		int status = run(0, "/tmp/bad.log", cases[i].args);
		char *out = read_file("/tmp/bad.log");

		EXPECT_EQ(cases[i].status, status) TH_LOG("case %u: %s", i, out);
		EXPECT_NE(NULL, strstr(out, cases[i].says)) TH_LOG("case %u: %s", i, out);
		EXPECT_EQ(1, count(out, "\n")) TH_LOG("case %u: %s", i, out);
		EXPECT_EQ(0, strncmp(out, "afbusctl: ", 10)) TH_LOG("case %u: %s", i, out);
		EXPECT_EQ(NULL, strstr(out, "panicked"));
	}
}

TEST_HARNESS_MAIN
