// SPDX-License-Identifier: GPL-2.0
/*
 * Concurrency: many senders (threads and processes) to one receiver and
 * one sender to many receivers, with exact counts: nothing lost, nothing
 * duplicated, each sender's order kept.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/bus.h>
#include "bus_test.h"
#include "kselftest_harness.h"

#define PROCS 4
#define THREADS 3
#define MSGS 400
#define RECEIVERS 8

struct rec {
	unsigned int sender;
	unsigned int seq;
};

struct sender_arg {
	int fd;
	unsigned int id;
	const struct sockaddr_bus *to;
	int failed;
};

static void *sender(void *p)
{
	struct sender_arg *a = p;
	struct rec r = { a->id, 0 };

	for (r.seq = 0; r.seq < MSGS; r.seq++)
		if (bus_send(a->fd, a->to, &r, sizeof(r), NULL, 0, 0) != sizeof(r))
			a->failed++;
	return NULL;
}

TEST(many_senders_one_receiver)
{
	struct sockaddr_bus maddr, raddr;
	int master = bus_master("conc-many", &maddr);
	int rcv = socket(AF_BUS, SOCK_DGRAM, 0);
	unsigned int next[PROCS * THREADS] = { 0 };
	int fds[PROCS], i, status, total = 0;
	pid_t pids[PROCS];
	struct bus_msg m;

	ASSERT_LE(0, master);
	ASSERT_EQ(0, bus_join(master, &maddr, rcv, "rcv", NULL));
	raddr = bus_on(&maddr, "rcv");
	for (i = 0; i < PROCS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "s%d", i);
		fds[i] = socket(AF_BUS, SOCK_DGRAM, 0);
		ASSERT_EQ(0, bus_join(master, &maddr, fds[i], name, NULL));
	}
	for (i = 0; i < PROCS; i++) {
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (pids[i] == 0) {
			struct sender_arg args[THREADS];
			pthread_t t[THREADS];
			int j, failed = 0;

			for (j = 0; j < THREADS; j++) {
				args[j] = (struct sender_arg){ fds[i], i * THREADS + j, &raddr, 0 };
				pthread_create(&t[j], NULL, sender, &args[j]);
			}
			for (j = 0; j < THREADS; j++) {
				pthread_join(t[j], NULL);
				failed += args[j].failed;
			}
			_exit(failed ? 1 : 0);
		}
	}
	while (total < PROCS * THREADS * MSGS) {
		struct rec r;

		ASSERT_EQ(sizeof(r), bus_recv(rcv, &m, 0));
		memcpy(&r, m.data, sizeof(r));
		ASSERT_LT(r.sender, PROCS * THREADS);
		/* Per sender, in order, no gap, no duplicate. */
		ASSERT_EQ(next[r.sender], r.seq);
		next[r.sender]++;
		total++;
	}
	for (i = 0; i < PROCS; i++) {
		ASSERT_EQ(pids[i], waitpid(pids[i], &status, 0));
		ASSERT_EQ(0, WEXITSTATUS(status));
	}
	errno = 0;
	ASSERT_EQ(-1, bus_recv(rcv, &m, MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
	for (i = 0; i < PROCS; i++)
		close(fds[i]);
	close(rcv);
	close(master);
}

TEST(one_sender_many_receivers)
{
	struct sockaddr_bus maddr, addrs[RECEIVERS];
	int master = bus_master("conc-fan", &maddr);
	int snd = socket(AF_BUS, SOCK_DGRAM, 0);
	int rcv[RECEIVERS], i, j, status;
	pid_t pids[RECEIVERS];

	ASSERT_LE(0, master);
	ASSERT_EQ(0, bus_join(master, &maddr, snd, "snd", NULL));
	for (i = 0; i < RECEIVERS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "r%d", i);
		rcv[i] = socket(AF_BUS, SOCK_DGRAM, 0);
		ASSERT_EQ(0, bus_join(master, &maddr, rcv[i], name, NULL));
		addrs[i] = bus_on(&maddr, name);
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (pids[i] == 0) {
			struct bus_msg m;
			struct rec r;
			unsigned int k;

			for (k = 0; k < MSGS; k++) {
				if (bus_recv(rcv[i], &m, 0) != sizeof(r))
					_exit(1);
				memcpy(&r, m.data, sizeof(r));
				if (r.sender != (unsigned int)i || r.seq != k)
					_exit(2);
			}
			_exit(bus_recv(rcv[i], &m, MSG_DONTWAIT) == -1 && errno == EAGAIN ? 0 : 3);
		}
	}
	for (j = 0; j < MSGS; j++)
		for (i = 0; i < RECEIVERS; i++) {
			struct rec r = { i, j };

			ASSERT_EQ(sizeof(r), bus_send(snd, &addrs[i], &r, sizeof(r), NULL, 0, 0));
		}
	for (i = 0; i < RECEIVERS; i++) {
		ASSERT_EQ(pids[i], waitpid(pids[i], &status, 0));
		ASSERT_EQ(0, WEXITSTATUS(status));
		close(rcv[i]);
	}
	close(snd);
	close(master);
}

TEST(join_and_leave_races_with_the_master_closing)
{
	int round;

	for (round = 0; round < 20; round++) {
		struct sockaddr_bus maddr;
		int master = bus_master("conc-race", &maddr);
		pid_t pid;
		int status;

		ASSERT_LE(0, master);
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			int k;

			for (k = 0; k < 50; k++) {
				int fd = socket(AF_BUS, SOCK_DGRAM, 0);

				bus_send_str(fd, &maddr, "hi", MSG_DONTWAIT);
				close(fd);
			}
			_exit(0);
		}
		usleep(1000 * (round % 5));
		close(master);
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		ASSERT_EQ(0, WEXITSTATUS(status));
	}
}

TEST_HARNESS_MAIN
