// SPDX-License-Identifier: GPL-2.0
/*
 * bus_ring_bench: one-way throughput of AF_BUS unicast into a receiver
 * that uses recvmsg() versus one that uses the mmap'ed receive ring, at
 * 64 B, 4 KiB and 64 KiB, in one boot.  Prints messages/s, MB/s, and the
 * CPU time both sides spent per message: with the sender and the
 * receiver on two CPUs the second copy of recvmsg() runs in parallel, so
 * the one-copy gain shows as CPU time saved more than as throughput.
 * A benchmark, not a test: run it with `make ring-bench`.
 *
 *   bus_ring_bench [SCALE]    (SCALE multiplies the message counts; 1)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/bus.h>

#define FRAMES 128

static struct sockaddr_bus on(const struct sockaddr_bus *bus, const char *s)
{
	struct sockaddr_bus a = *bus;

	memset(a.sbus_addr, 0, sizeof(a.sbus_addr));
	memcpy(a.sbus_addr, s, strlen(s) + 1);
	a.sbus_addr_ncomp = (strlen(s) + 8) / 8;
	return a;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* Joins @fd to the bus of @master as @name. */
static void join(int master, const struct sockaddr_bus *maddr, int fd, const char *name)
{
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))], buf[16];
	struct sockaddr_bus from, g = on(maddr, name);
	socklen_t len = sizeof(from);
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr m = { &from, sizeof(from), &iov, 1, ctl, sizeof(ctl), 0 };
	struct cmsghdr *c = (struct cmsghdr *)ctl;

	if (sendto(fd, "hi", 3, 0, (struct sockaddr *)maddr, sizeof(*maddr)) < 0)
		die("join");
	if (recvfrom(master, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len) < 0)
		die("join recv");
	c->cmsg_level = SOL_BUS;
	c->cmsg_type = SCM_OWNED_ADDR;
	c->cmsg_len = CMSG_LEN(sizeof(g));
	memcpy(CMSG_DATA(c), &g, sizeof(g));
	m.msg_controllen = sizeof(ctl);
	if (sendmsg(master, &m, 0) < 0 || recv(fd, buf, sizeof(buf), 0) < 0)
		die("grant");
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Receives @count messages of @size on @fd, with recvmsg or the ring. */
static void receive(int fd, size_t size, long count, int ring)
{
	char *buf = malloc(size + 1);
	long i;

	if (!ring) {
		for (i = 0; i < count; i++)
			if (recv(fd, buf, size + 1, 0) != (ssize_t)size)
				die("recv");
		return;
	}
	{
		unsigned int fs = (sizeof(struct bus_frame_hdr) + size + 15) & ~15u;
		struct bus_ring_req req = { fs, FRAMES };
		struct pollfd p = { .fd = fd, .events = POLLIN };
		unsigned int next = 0;
		char *mem;

		(void)req;
		mem = mmap(NULL, (size_t)fs * FRAMES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (mem == MAP_FAILED)
			die("mmap");
		for (i = 0; i < count; i++) {
			struct bus_frame_hdr *h = (void *)(mem + (size_t)next * fs);

			while (__atomic_load_n(&h->status, __ATOMIC_ACQUIRE) != BUS_FRAME_USER)
				poll(&p, 1, -1);
			if (h->len != size)
				die("frame length");
			/* Touch the payload as a reader would. */
			memcpy(buf, (char *)h + h->data_offset, size < 64 ? size : 64);
			__atomic_store_n(&h->status, BUS_FRAME_KERNEL, __ATOMIC_RELEASE);
			next = (next + 1) % FRAMES;
		}
		munmap(mem, (size_t)fs * FRAMES);
	}
	free(buf);
}

struct result {
	double msgs_per_s;
	double cpu_us_per_msg;
};

static double cpu_seconds(void)
{
	struct rusage self, kids;

	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	return self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec +
	       kids.ru_stime.tv_sec + (self.ru_utime.tv_usec + self.ru_stime.tv_usec +
	       kids.ru_utime.tv_usec + kids.ru_stime.tv_usec) / 1e6;
}

static struct result run(size_t size, long count, int ring)
{
	struct sockaddr_bus maddr = { .sbus_family = AF_BUS }, raddr;
	int master = socket(AF_BUS, SOCK_DGRAM, 0), s = socket(AF_BUS, SOCK_DGRAM, 0);
	int r = socket(AF_BUS, SOCK_DGRAM, 0), big = 64 << 20, status;
	char *payload = calloc(1, size);
	double t0, t1, c0, c1;
	pid_t pid;
	long i;

	strcpy(maddr.sbus_path + 1, "bench");
	memcpy(maddr.sbus_addr, "master", 7);
	maddr.sbus_addr_ncomp = 1;
	if (bind(master, (struct sockaddr *)&maddr, sizeof(maddr)))
		die("bind");
	join(master, &maddr, s, "sender");
	join(master, &maddr, r, "receiver");
	raddr = on(&maddr, "receiver");
	setsockopt(r, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	if (ring) {
		unsigned int fs = (sizeof(struct bus_frame_hdr) + size + 15) & ~15u;
		struct bus_ring_req req = { fs, FRAMES };

		if (setsockopt(r, SOL_BUS, BUS_RX_RING, &req, sizeof(req)))
			die("BUS_RX_RING");
	}
	c0 = cpu_seconds();
	pid = fork();
	if (pid == 0) {
		receive(r, size, count, ring);
		_exit(0);
	}
	t0 = now();
	for (i = 0; i < count; i++)
		if (sendto(s, payload, size, 0, (struct sockaddr *)&raddr, sizeof(raddr)) != (ssize_t)size)
			die("send");
	waitpid(pid, &status, 0);
	t1 = now();
	c1 = cpu_seconds();
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		die("receiver");
	close(r);
	close(s);
	close(master);
	free(payload);
	return (struct result){ count / (t1 - t0), (c1 - c0) * 1e6 / count };
}

int main(int argc, char **argv)
{
	long scale = argc > 1 ? atol(argv[1]) : 1;
	size_t sizes[] = { 64, 4096, 65536 };
	long counts[] = { 20000, 10000, 2000 };
	unsigned int i;

	printf("%-6s | %-27s | %-27s | %s\n", "", "recvmsg", "ring", "ring vs recvmsg");
	printf("%-6s | %9s %7s %9s | %9s %7s %9s | %9s %9s\n", "size", "msg/s", "MB/s",
	       "cpu us/m", "msg/s", "MB/s", "cpu us/m", "speed", "cpu");
	for (i = 0; i < 3; i++) {
		long n = counts[i] * (scale > 0 ? scale : 1);
		struct result rx = run(sizes[i], n, 0), rg = run(sizes[i], n, 1);

		printf("%-6zu | %9.0f %7.1f %9.2f | %9.0f %7.1f %9.2f | %8.2fx %8.2fx\n",
		       sizes[i], rx.msgs_per_s, rx.msgs_per_s * sizes[i] / 1e6,
		       rx.cpu_us_per_msg, rg.msgs_per_s, rg.msgs_per_s * sizes[i] / 1e6,
		       rg.cpu_us_per_msg, rg.msgs_per_s / rx.msgs_per_s,
		       rx.cpu_us_per_msg / rg.cpu_us_per_msg);
	}
	printf("(speed: ring msg/s over recvmsg msg/s; cpu: recvmsg CPU time per message\n"
	       " over the ring's, both sides counted: above 1 means the ring is cheaper)\n");
	return 0;
}
