// SPDX-License-Identifier: GPL-2.0
/*
 * bus_bench: AF_BUS against the kernel's other local transports, in one
 * boot.  Every figure is the median of REPS measured repetitions after
 * one warm-up, printed with its min and max as a CSV line (see bench.h).
 * The dbus-daemon peer is tests/bench/dbus/bus_dbus_bench.c; `make bench`
 * runs both and compares them (scripts/bench.sh).
 *
 *   bus_bench [-r REPS] [-s SCALE] [-k CASE] [-z SIZE] [rtt] [path] [tput] [mcast]
 *             [match] [svc] [join] [calib]
 *
 * -k runs only the cases named CASE: a transport of rtt, path, tput and
 * svc (to profile one of them, e.g. -k af_bus rtt), or bloom4, lowbit or
 * dbus in match.  -z runs only messages of SIZE bytes in rtt, path and tput.
 *
 * rtt    unicast round trip at 64 B and 4 KiB: AF_BUS, AF_UNIX SOCK_DGRAM
 *        and SOCK_SEQPACKET socketpairs, a pipe pair; also with both ends
 *        threads of one process ("1cpu-threads")
 * path   a send and its receive in one thread (the code, no wake-up)
 * tput   one-way throughput at 64 B, 4 KiB, 64 KiB: AF_BUS recvmsg,
 *        AF_BUS receive ring, AF_UNIX SOCK_DGRAM; every reader checksums
 *        every payload byte, the run is timed from a receiver set up to
 *        its last message read, and the transports' order rotates; also
 *        context switches per message (all CPUs, /proc/stat)
 * mcast  fan-out to 1, 8, 64 receivers: one AF_BUS multicast versus N
 *        AF_UNIX sends
 * match  a multicast's cost to its sender with 0 to 10,000 grants that
 *        do not match it: random 4-bit masks, masks filed where every
 *        send looks, and D-Bus-shaped rules (afbus-dbus's bloom mapping)
 * svc    a service process answering K = 1, 4, 16 client threads, each
 *        request's reply sent to the source recvfrom gave (no fixed
 *        destination for a cache to keep): AF_BUS, AF_UNIX SOCK_DGRAM
 * join   first sendmsg to a granted address, with a master in a loop
 * calib  what the guest clock counts: a loop of two instructions per
 *        turn, and 64 B, 4 KiB and 64 KiB copies by rep movsb, rep movsq
 *        and memcpy.  In make bench ICOUNT=1 (QEMU -icount shift=0) one
 *        nanosecond of guest time is one guest instruction, so the loop
 *        reads 2 ns per turn and the copies show how a string
 *        instruction's iterations are counted; not run by default
 *
 * Configurations: "2cpu" puts the two sides on CPU 0 and CPU 1, "1cpu"
 * both on CPU 0 (the total CPU cost of a message, no parallelism).
 */
#include "bench.h"
#include "../../tools/busctl/bus-bloom.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/bus.h>

#define FRAMES 128
#define WINDOW 32	/* multicasts in flight before the receivers ack */

static struct bench_opts opts = { .reps = 7, .scale = 1 };
static int bus_serial;
static const char *only;
/* -z: only this message size in rtt, path and tput (0: all). */
static size_t only_size;

static int skip_size(size_t size)
{
	return only_size && size != only_size;
}

/* ---- AF_BUS set-up ------------------------------------------------- */

struct bus {
	int master;
	struct sockaddr_bus maddr;
};

static struct sockaddr_bus bus_on(const struct bus *b, const char *s)
{
	struct sockaddr_bus a = b->maddr;

	memset(a.sbus_addr, 0, sizeof(a.sbus_addr));
	memcpy(a.sbus_addr, s, strlen(s) + 1);
	a.sbus_addr_ncomp = (strlen(s) + 8) / 8;
	return a;
}

static struct sockaddr_bus bus_mcast(const struct bus *b, const __u64 *bits)
{
	struct sockaddr_bus a = b->maddr;

	memcpy(a.sbus_addr, bits, BUS_ADDR_MAX);
	a.sbus_addr_ncomp = BUS_ADDR_COMP_MAX;
	a.sbus_path[BUS_PATH_MAX - 1] = '*';
	return a;
}

static void bus_new(struct bus *b)
{
	memset(&b->maddr, 0, sizeof(b->maddr));
	b->maddr.sbus_family = AF_BUS;
	snprintf(b->maddr.sbus_path + 1, BUS_PATH_MAX - 2, "bench-%d-%d", getpid(),
		 bus_serial++);
	memcpy(b->maddr.sbus_addr, "master", 7);
	b->maddr.sbus_addr_ncomp = 1;
	b->master = socket(AF_BUS, SOCK_DGRAM, 0);
	if (b->master < 0 || bind(b->master, (struct sockaddr *)&b->maddr, sizeof(b->maddr)))
		bench_die("bind a bus");
}

/* Sends @n grants of @type to @to, from the master, as one message. */
static void bus_grant(const struct bus *b, const struct sockaddr_bus *to, int type,
		      const struct sockaddr_bus *g, int n)
{
	char ctl[16 * CMSG_SPACE(sizeof(struct sockaddr_bus))];
	struct iovec iov = { "g", 1 };
	struct msghdr m = { (void *)to, sizeof(*to), &iov, 1, ctl, 0, 0 };
	struct cmsghdr *c;
	int i;

	memset(ctl, 0, sizeof(ctl));
	m.msg_controllen = n * CMSG_SPACE(sizeof(*g));
	for (i = 0, c = CMSG_FIRSTHDR(&m); i < n; i++, c = CMSG_NXTHDR(&m, c)) {
		c->cmsg_level = SOL_BUS;
		c->cmsg_type = type;
		c->cmsg_len = CMSG_LEN(sizeof(*g));
		memcpy(CMSG_DATA(c), &g[i], sizeof(*g));
	}
	if (sendmsg(b->master, &m, 0) != 1)
		bench_die("grant");
}

/* A new member of @b owning @name; @handle gets its handle. */
static int bus_member(const struct bus *b, const char *name, struct sockaddr_bus *handle)
{
	struct sockaddr_bus from, g = bus_on(b, name);
	socklen_t len = sizeof(from);
	int fd = socket(AF_BUS, SOCK_DGRAM, 0), big = 4 << 20;
	char buf[16];

	if (fd < 0 || sendto(fd, "hi", 3, 0, (struct sockaddr *)&b->maddr, sizeof(b->maddr)) < 0)
		bench_die("join");
	do {
		len = sizeof(from);
		if (recvfrom(b->master, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len) < 0)
			bench_die("join: master recv");
	} while (from.sbus_addr_ncomp == 0);	/* a kernel notification */
	bus_grant(b, &from, SCM_OWNED_ADDR, &g, 1);
	if (recv(fd, buf, sizeof(buf), 0) < 0)
		bench_die("join: grant");
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	if (handle)
		*handle = from;
	return fd;
}

/* ---- unicast round trip -------------------------------------------- */

enum kind { K_BUS, K_DGRAM, K_SEQPACKET, K_PIPE };
static const char *const kind_name[] = { "af_bus", "unix_dgram", "unix_seqpacket", "pipe" };

/* Two ends; each reads from rd and writes to wr (to dst for AF_BUS). */
struct end {
	int rd, wr;
	struct sockaddr_bus dst;
};

static void xsend(enum kind k, const struct end *e, const void *p, size_t n)
{
	ssize_t r = k == K_BUS ? sendto(e->wr, p, n, 0, (struct sockaddr *)&e->dst, sizeof(e->dst))
			       : write(e->wr, p, n);

	if (r != (ssize_t)n)
		bench_die("send");
}

static void xrecv(enum kind k, const struct end *e, void *p, size_t n)
{
	ssize_t r = k == K_PIPE ? (bench_read(e->rd, p, n), (ssize_t)n) : recv(e->rd, p, n + 1, 0);

	if (r != (ssize_t)n)
		bench_die("recv");
}

/* One transport's pair of ends, with its echo side running. */
struct rtt_pair {
	enum kind k;
	struct end a, b;
	struct bus bus;
	int fds[4];
	pid_t echo;
	/* The echo side as a thread of this process instead of a child. */
	int threaded;
	pthread_t thread;
	size_t size;
	long total;
	int cpu_b;
};

static void *rtt_echo(void *arg)
{
	struct rtt_pair *p = arg;
	char *buf = calloc(1, p->size + 1);
	long j;

	bench_pin(p->cpu_b);
	for (j = 0; j < p->total; j++) {
		xrecv(p->k, &p->b, buf, p->size);
		xsend(p->k, &p->b, buf, p->size);
	}
	free(buf);
	return NULL;
}

static void rtt_open(struct rtt_pair *p, enum kind k, size_t size, long total, int cpu_b,
		     int threaded)
{
	int sv[2], sv2[2], i;

	memset(p, 0, sizeof(*p));
	p->k = k;
	p->threaded = threaded;
	p->size = size;
	p->total = total;
	p->cpu_b = cpu_b;
	for (i = 0; i < 4; i++)
		p->fds[i] = -1;
	switch (k) {
	case K_BUS:
		bus_new(&p->bus);
		p->a.rd = p->a.wr = p->fds[0] = bus_member(&p->bus, "a", NULL);
		p->b.rd = p->b.wr = p->fds[1] = bus_member(&p->bus, "b", NULL);
		p->fds[2] = p->bus.master;
		p->a.dst = bus_on(&p->bus, "b");
		p->b.dst = bus_on(&p->bus, "a");
		break;
	case K_DGRAM:
	case K_SEQPACKET:
		if (socketpair(AF_UNIX, k == K_DGRAM ? SOCK_DGRAM : SOCK_SEQPACKET, 0, sv))
			bench_die("socketpair");
		p->a.rd = p->a.wr = p->fds[0] = sv[0];
		p->b.rd = p->b.wr = p->fds[1] = sv[1];
		break;
	case K_PIPE:
		if (pipe(sv) || pipe(sv2))
			bench_die("pipe");
		p->a.wr = p->fds[0] = sv[1];
		p->b.rd = p->fds[1] = sv[0];
		p->b.wr = p->fds[2] = sv2[1];
		p->a.rd = p->fds[3] = sv2[0];
		break;
	}
	if (threaded) {
		if (pthread_create(&p->thread, NULL, rtt_echo, p))
			bench_die("pthread_create");
		return;
	}
	p->echo = fork();
	if (p->echo == 0) {
		rtt_echo(p);
		_exit(0);
	}
}

static void rtt_close(struct rtt_pair *p)
{
	int status, i;

	if (p->threaded) {
		pthread_join(p->thread, NULL);
	} else {
		waitpid(p->echo, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			bench_die("rtt: the echo side failed");
	}
	for (i = 0; i < 4; i++)
		if (p->fds[i] >= 0)
			close(p->fds[i]);
}

/*
 * Every transport at one size and configuration, their repetitions
 * interleaved (one burst of each per round, in a rotating order), so that
 * a slow spell of a shared host hits them alike.  AF_BUS over AF_UNIX SOCK_DGRAM is also
 * reported round by round, as "ratio".
 */
static void rtt_round(size_t size, int cpu_a, int cpu_b, const char *config, int threaded)
{
	long n = bench_count(&opts, 2000), i;
	double v[K_PIPE + 1][BENCH_MAX_REPS], ratio[BENCH_MAX_REPS];
	struct rtt_pair p[K_PIPE + 1];
	char *buf = calloc(1, size + 1);
	int j, k, r, want[K_PIPE + 1];

	for (k = K_BUS; k <= K_PIPE; k++) {
		want[k] = !only || !strcmp(only, kind_name[k]);
		if (want[k])
			rtt_open(&p[k], k, size, n * (opts.reps + 1), cpu_b, threaded);
	}
	bench_pin(cpu_a);
	for (r = -1; r < opts.reps; r++) {
		/* Each round starts with the next transport: none always
		 * follows the same one.
		 */
		for (j = 0; j <= K_PIPE; j++) {
			double t0 = bench_now();

			k = (j + r + 1) % (K_PIPE + 1);
			if (!want[k])
				continue;
			for (i = 0; i < n; i++) {
				xsend(k, &p[k].a, buf, size);
				xrecv(k, &p[k].a, buf, size);
			}
			if (r >= 0)
				v[k][r] = (bench_now() - t0) * 1e6 / n;
		}
		if (r >= 0 && want[K_BUS] && want[K_DGRAM])
			ratio[r] = v[K_BUS][r] / v[K_DGRAM][r];
	}
	bench_pin(-1);
	for (k = K_BUS; k <= K_PIPE; k++) {
		if (!want[k])
			continue;
		rtt_close(&p[k]);
		bench_report("rtt", kind_name[k], config, size, "rtt", "us", v[k], opts.reps);
	}
	if (want[K_BUS] && want[K_DGRAM])
		bench_report("rtt", "af_bus_over_unix_dgram", config, size, "ratio", "x", ratio,
			     opts.reps);
	free(buf);
}

static void bench_rtt(void)
{
	static const size_t sizes[] = { 64, 4096 };
	unsigned int s;

	for (s = 0; s < 2; s++) {
		if (skip_size(sizes[s]))
			continue;
		rtt_round(sizes[s], 0, 0, "1cpu", 0);
		rtt_round(sizes[s], 0, 1, "2cpu", 0);
		/* Both ends threads of one process on one CPU: no address
		 * space switch, so no TLB flush between them.
		 */
		rtt_round(sizes[s], 0, 0, "1cpu-threads", 1);
	}
}

/* ---- the path without scheduling ------------------------------------ */

/*
 * A send and its receive in one thread, so that no context switch or
 * wake-up is timed: the cost of the two system calls' code paths alone.
 * An AF_BUS member sends to its own name.  Compared with the round trip,
 * it tells the cost of the code from the cost of scheduling around it.
 */
static void bench_path(void)
{
	static const size_t sizes[] = { 64, 4096 };
	double v[K_PIPE + 1][BENCH_MAX_REPS], ratio[BENCH_MAX_REPS];
	long n = bench_count(&opts, 4000), i;
	char *buf = calloc(1, 4097);
	struct end e[K_PIPE + 1];
	struct bus bus;
	int sv[2], k, r;
	unsigned int s;

	bus_new(&bus);
	e[K_BUS].rd = e[K_BUS].wr = bus_member(&bus, "self", NULL);
	e[K_BUS].dst = bus_on(&bus, "self");
	for (k = K_DGRAM; k <= K_SEQPACKET; k++) {
		if (socketpair(AF_UNIX, k == K_DGRAM ? SOCK_DGRAM : SOCK_SEQPACKET, 0, sv))
			bench_die("socketpair");
		e[k].wr = sv[0];
		e[k].rd = sv[1];
	}
	if (pipe(sv))
		bench_die("pipe");
	e[K_PIPE].rd = sv[0];
	e[K_PIPE].wr = sv[1];
	bench_pin(0);
	for (s = 0; s < 2; s++) {
		if (skip_size(sizes[s]))
			continue;
		for (r = -1; r < opts.reps; r++) {
			for (k = K_BUS; k <= K_PIPE; k++) {
				double t0 = bench_now();

				if (only && strcmp(only, kind_name[k]))
					continue;
				for (i = 0; i < n; i++) {
					xsend(k, &e[k], buf, sizes[s]);
					xrecv(k, &e[k], buf, sizes[s]);
				}
				if (r >= 0)
					v[k][r] = (bench_now() - t0) * 1e6 / n;
			}
			if (r >= 0 && !only)
				ratio[r] = v[K_BUS][r] / v[K_DGRAM][r];
		}
		for (k = K_BUS; k <= K_PIPE; k++)
			if (!only || !strcmp(only, kind_name[k]))
				bench_report("path", kind_name[k], "1cpu", sizes[s], "send_recv",
					     "us", v[k], opts.reps);
		if (!only)
			bench_report("path", "af_bus_over_unix_dgram", "1cpu", sizes[s], "ratio",
				     "x", ratio, opts.reps);
	}
	bench_pin(-1);
	for (k = K_BUS; k <= K_PIPE; k++) {
		close(e[k].wr);
		if (e[k].rd != e[k].wr)
			close(e[k].rd);
	}
	close(bus.master);
	free(buf);
}

/* ---- what the clock counts ------------------------------------------ */

/* @turns turns of a two-instruction loop (dec, jnz). */
static void calib_loop(long turns)
{
	__asm__ volatile("1: dec %0\n\tjnz 1b" : "+r"(turns) : : "cc");
}

static void calib_movsb(void *d, const void *s, size_t n)
{
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
}

static void calib_movsq(void *d, const void *s, size_t n)
{
	n /= 8;
	__asm__ volatile("rep movsq" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
}

static void bench_calib(void)
{
	static const size_t sizes[] = { 64, 4096, 65536 };
	static const char *const how[] = { "rep_movsb", "rep_movsq", "memcpy" };
	long turns = bench_count(&opts, 2000000), n = bench_count(&opts, 2000), i;
	double v[BENCH_MAX_REPS];
	char *a = malloc(65536), *b = malloc(65536);
	unsigned int s, h;
	int r;

	if (!a || !b)
		bench_die("malloc");
	memset(a, 1, 65536);
	memset(b, 2, 65536);
	bench_pin(0);
	for (r = -1; r < opts.reps; r++) {
		double t0 = bench_now();

		calib_loop(turns);
		if (r >= 0)
			v[r] = (bench_now() - t0) * 1e9 / turns;
	}
	bench_report("calib", "loop", "1cpu", 2, "per_turn", "ns", v, opts.reps);
	for (h = 0; h < 3; h++) {
		for (s = 0; s < 3; s++) {
			for (r = -1; r < opts.reps; r++) {
				double t0 = bench_now();

				for (i = 0; i < n; i++) {
					if (h == 0)
						calib_movsb(b, a, sizes[s]);
					else if (h == 1)
						calib_movsq(b, a, sizes[s]);
					else
						memcpy(b, a, sizes[s]);
					/* Keeps the compiler from dropping the copies. */
					__asm__ volatile("" : : "r"(b) : "memory");
				}
				if (r >= 0)
					v[r] = (bench_now() - t0) * 1e9 / n;
			}
			bench_report("calib", how[h], "1cpu", sizes[s], "per_copy", "ns", v,
				     opts.reps);
		}
	}
	bench_pin(-1);
	free(a);
	free(b);
}

/* ---- one-way throughput -------------------------------------------- */

enum tkind { T_RECVMSG, T_RING, T_UNIX };
static const char *const tkind_name[] = { "af_bus_recvmsg", "af_bus_ring", "unix_dgram" };

static unsigned int frame_size(size_t size)
{
	return (sizeof(struct bus_frame_hdr) + size + 15) & ~15u;
}

/* What every reader does with a payload: reads each byte of it. */
static volatile unsigned long long payload_sum;

static void checksum(const void *p, size_t n)
{
	const unsigned char *b = p;
	unsigned long long s = 0, w;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&w, b + i, 8);
		s += w;
	}
	for (; i < n; i++)
		s += b[i];
	payload_sum += s;
}

/*
 * The receiving side of a throughput run: tells @ready once set up (its
 * ring mapped), reads @count messages, checksumming each payload whole
 * whether it came by recvmsg or from the ring, and tells @done before it
 * tears down, so that the run times the steady state only.
 */
static void tput_receive(enum tkind k, int fd, size_t size, long count, int ready, int done)
{
	char *buf = malloc(size + 1), *mem = NULL;
	unsigned int fs = frame_size(size), next = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	long i;

	if (k == T_RING) {
		mem = mmap(NULL, (size_t)fs * FRAMES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (mem == MAP_FAILED)
			bench_die("mmap");
	}
	bench_write(ready, "r", 1);
	for (i = 0; i < count; i++) {
		struct bus_frame_hdr *h;

		if (k != T_RING) {
			if (recv(fd, buf, size + 1, 0) != (ssize_t)size)
				bench_die("tput recv");
			checksum(buf, size);
			continue;
		}
		h = (void *)(mem + (size_t)next * fs);
		while (__atomic_load_n(&h->status, __ATOMIC_ACQUIRE) != BUS_FRAME_USER)
			poll(&p, 1, -1);
		if (h->len != size)
			bench_die("frame length");
		checksum((char *)h + h->data_offset, size);
		if (bus_frame_release(h))
			poll(&p, 1, 0);
		next = (next + 1) % FRAMES;
	}
	bench_write(done, "d", 1);
	if (mem)
		munmap(mem, (size_t)fs * FRAMES);
	free(buf);
}

/* One run: returns messages/s, and the busy CPU time per message in @cpu. */
/* Context switches so far, all CPUs (/proc/stat's ctxt). */
static double ctxt_switches(void)
{
	char line[256];
	double v = 0;
	FILE *f = fopen("/proc/stat", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "ctxt ", 5))
			v = atof(line + 5);
	fclose(f);
	return v;
}

static double tput_run(enum tkind k, size_t size, long count, int cpu_s, int cpu_r, double *cpu,
		       double *switches)
{
	char *payload = calloc(1, size), c;
	int s, r, big = 64 << 20, status, sv[2], ready[2], done[2];
	struct sockaddr_bus dst;
	double t0, t1, c0, c1, x0, x1;
	struct bus bus;
	pid_t pid;
	long i;

	if (k == T_UNIX) {
		if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv))
			bench_die("socketpair");
		s = sv[0];
		r = sv[1];
		setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
	} else {
		bus_new(&bus);
		s = bus_member(&bus, "sender", NULL);
		r = bus_member(&bus, "receiver", NULL);
		dst = bus_on(&bus, "receiver");
	}
	setsockopt(r, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	if (k == T_RING) {
		struct bus_ring_req req = { frame_size(size), FRAMES };

		if (setsockopt(r, SOL_BUS, BUS_RX_RING, &req, sizeof(req)))
			bench_die("BUS_RX_RING");
	}
	if (pipe(ready) || pipe(done))
		bench_die("pipe");
	pid = fork();
	if (pid == 0) {
		bench_pin(cpu_r);
		tput_receive(k, r, size, count, ready[1], done[1]);
		_exit(0);
	}
	bench_pin(cpu_s);
	/* Timed from a receiver ready to its last message read. */
	bench_read(ready[0], &c, 1);
	x0 = ctxt_switches();
	c0 = bench_busy();
	t0 = bench_now();
	for (i = 0; i < count; i++) {
		ssize_t n = k == T_UNIX ? write(s, payload, size)
					: sendto(s, payload, size, 0, (struct sockaddr *)&dst,
						 sizeof(dst));

		if (n != (ssize_t)size)
			bench_die("tput send");
	}
	bench_read(done[0], &c, 1);
	t1 = bench_now();
	c1 = bench_busy();
	x1 = ctxt_switches();
	waitpid(pid, &status, 0);
	for (i = 0; i < 2; i++) {
		close(ready[i]);
		close(done[i]);
	}
	bench_pin(-1);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		bench_die("tput: the receiver failed");
	close(r);
	close(s);
	if (k != T_UNIX)
		close(bus.master);
	free(payload);
	*cpu = (c1 - c0) * 1e6 / count;
	*switches = (x1 - x0) / count;
	return count / (t1 - t0);
}

/*
 * The three receivers at one size and configuration, interleaved round
 * by round; the ring over recvmsg is also reported per round ("ratio").
 */
static void bench_tput(void)
{
	static const size_t sizes[] = { 64, 4096, 65536 };
	static const long counts[] = { 20000, 10000, 2000 };
	static const struct { int s, r; const char *name; } cfg[] = {
		{ 0, 1, "2cpu" }, { 0, 0, "1cpu" },
	};
	double v[T_UNIX + 1][BENCH_MAX_REPS], c[T_UNIX + 1][BENCH_MAX_REPS];
	double x[T_UNIX + 1][BENCH_MAX_REPS], ratio[BENCH_MAX_REPS], cpu, sw;
	unsigned int s, g;
	int r, k, j;

	for (s = 0; s < 3; s++)
		for (g = 0; g < 2 && !skip_size(sizes[s]); g++) {
			long n = bench_count(&opts, counts[s]);

			for (r = -1; r < opts.reps; r++)
				for (j = 0; j <= T_UNIX; j++) {
					double m;

					/* The order of the transports rotates by round. */
					k = (j + r + 1) % (T_UNIX + 1);
					if (only && strcmp(only, tkind_name[k]))
						continue;
					m = tput_run(k, sizes[s], r < 0 ? n / 4 + 2 : n, cfg[g].s,
						     cfg[g].r, &cpu, &sw);
					if (r >= 0) {
						v[k][r] = m;
						c[k][r] = cpu;
						x[k][r] = sw;
					}
				}
			/* Before bench_report sorts them. */
			for (r = 0; r < opts.reps; r++)
				ratio[r] = v[T_RING][r] / v[T_RECVMSG][r];
			for (k = T_RECVMSG; k <= T_UNIX; k++) {
				if (only && strcmp(only, tkind_name[k]))
					continue;
				bench_report("tput", tkind_name[k], cfg[g].name, sizes[s], "rate",
					     "msg/s", v[k], opts.reps);
				bench_report("tput", tkind_name[k], cfg[g].name, sizes[s], "cpu",
					     "us/msg", c[k], opts.reps);
				bench_report("tput", tkind_name[k], cfg[g].name, sizes[s], "ctxsw",
					     "switches/msg", x[k], opts.reps);
			}
			if (!only)
				bench_report("tput", "ring_over_recvmsg", cfg[g].name, sizes[s],
					     "ratio", "x", ratio, opts.reps);
		}
}

/* ---- multicast fan-out -------------------------------------------- */

/* The bitmap a multicast is sent to: 12 bits, as a bloom filter of a
 * D-Bus signal's interface, member, path and sender would set; a
 * receiver's match is 4 of them.
 */
static __u64 sent_bits[8], match_bits[8];

static void make_bitmaps(void)
{
	static const int bits[12] = { 3, 41, 77, 130, 161, 200, 260, 301, 333, 390, 431, 500 };
	int i;

	for (i = 0; i < 12; i++)
		sent_bits[bits[i] / 64] |= 1ULL << (bits[i] % 64);
	for (i = 0; i < 12; i += 3)
		match_bits[bits[i] / 64] |= 1ULL << (bits[i] % 64);
}

/* Receives @count messages of 64 bytes on @fd, acking every WINDOW. */
static void mcast_receiver(int fd, long count, int ack)
{
	char buf[128];
	long i;

	for (i = 1; i <= count; i++) {
		if (recv(fd, buf, sizeof(buf), 0) != 64)
			bench_die("mcast recv");
		if (i % WINDOW == 0)
			bench_write(ack, "a", 1);
	}
}

/* One way of reaching @nmatch receivers: one AF_BUS multicast on a bus
 * of @nrecv members with match grants, of which the first @nmatch
 * match, or one AF_UNIX SOCK_DGRAM send to each of @nmatch (a sender
 * that knew who matches).
 */
struct fanout {
	int bus_case, nrecv, nmatch, s;
	int *rx, *tx;
	struct sockaddr_bus dst;
	struct bus bus;
};

static void fanout_open(struct fanout *f, int bus_case, int nrecv, int nmatch)
{
	int i;

	memset(f, 0, sizeof(*f));
	f->bus_case = bus_case;
	f->nrecv = bus_case ? nrecv : nmatch;
	f->nmatch = nmatch;
	f->rx = calloc(nrecv, sizeof(int));
	f->tx = calloc(nrecv, sizeof(int));
	if (bus_case) {
		struct sockaddr_bus h, m, miss;
		__u64 other[8];
		char name[16];

		bus_new(&f->bus);
		m = bus_mcast(&f->bus, match_bits);
		for (i = 0; i < nrecv; i++) {
			/* A rule sharing the receivers' bits but for one the
			 * message lacks (another object path, say).
			 */
			memcpy(other, match_bits, sizeof(other));
			other[7] |= 1ULL << (i % 52);
			miss = bus_mcast(&f->bus, other);
			snprintf(name, sizeof(name), "r%d", i);
			f->rx[i] = bus_member(&f->bus, name, &h);
			bus_grant(&f->bus, &h, SCM_MULTICAST_MATCH, i < nmatch ? &m : &miss, 1);
			if (recv(f->rx[i], name, sizeof(name), 0) < 0)
				bench_die("match reply");
		}
		f->s = bus_member(&f->bus, "sender", NULL);
		f->dst = bus_mcast(&f->bus, sent_bits);
		return;
	}
	for (i = 0; i < nmatch; i++) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv))
			bench_die("socketpair");
		f->tx[i] = sv[0];
		f->rx[i] = sv[1];
	}
}

static void fanout_close(struct fanout *f)
{
	int i;

	for (i = 0; i < f->nrecv; i++) {
		close(f->rx[i]);
		if (!f->bus_case)
			close(f->tx[i]);
	}
	if (f->bus_case) {
		close(f->s);
		close(f->bus.master);
	}
	free(f->rx);
	free(f->tx);
}

/* Sends @n messages to every receiver, WINDOW at a time; returns the
 * delivered messages/s and the busy CPU time per delivered message.
 */
static double fanout_run(struct fanout *f, long n, double *cpu)
{
	char payload[64] = "signal", acks[64];
	double t0, t1, c0, c1;
	int ack[2], status, i;
	long sent;

	if (pipe(ack))
		bench_die("pipe");
	for (i = 0; i < f->nmatch; i++) {
		if (fork() == 0) {
			close(ack[0]);
			bench_pin(1);
			mcast_receiver(f->rx[i], n, ack[1]);
			_exit(0);
		}
	}
	close(ack[1]);
	bench_pin(0);
	c0 = bench_busy();
	t0 = bench_now();
	for (sent = 0; sent < n; sent += WINDOW) {
		int j;

		for (j = 0; j < WINDOW; j++) {
			if (f->bus_case) {
				if (sendto(f->s, payload, 64, 0, (struct sockaddr *)&f->dst,
					   sizeof(f->dst)) != 64)
					bench_die("multicast");
				continue;
			}
			for (i = 0; i < f->nmatch; i++)
				bench_write(f->tx[i], payload, 64);
		}
		bench_read(ack[0], acks, f->nmatch);
	}
	t1 = bench_now();
	c1 = bench_busy();
	bench_pin(-1);
	for (i = 0; i < f->nmatch; i++) {
		wait(&status);
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			bench_die("mcast: a receiver failed");
	}
	close(ack[0]);
	*cpu = (c1 - c0) * 1e6 / ((double)n * f->nmatch);
	return (double)n * f->nmatch / (t1 - t0);
}

/*
 * Fan-out to 1, 8 and 64 receivers: "2cpu", every one matching; "some",
 * a quarter of them matching (at least one), the others holding a rule
 * the message misses by one bit, against AF_UNIX sends to the matching
 * ones only.
 */
static void bench_mcast(void)
{
	static const int nrecv[] = { 1, 8, 64 };
	static const char *const configs[] = { "2cpu", "some" };
	static const char *const name[] = { "unix_dgram_n_sends", "af_bus" };
	double v[2][BENCH_MAX_REPS], c[2][BENCH_MAX_REPS], ratio[BENCH_MAX_REPS];
	struct fanout f[2];
	unsigned int i, g;
	int r, b;

	for (g = 0; g < 2; g++)
		for (i = 0; i < 3; i++) {
			int nmatch = g ? (nrecv[i] + 3) / 4 : nrecv[i];
			long k = bench_count(&opts, 20000 / nmatch + 200);

			k = (k + WINDOW - 1) / WINDOW * WINDOW;
			fanout_open(&f[0], 0, nrecv[i], nmatch);
			fanout_open(&f[1], 1, nrecv[i], nmatch);
			for (r = -1; r < opts.reps; r++)
				for (b = 0; b < 2; b++) {
					/* The order of the two rotates by round. */
					int x = (b + r + 1) % 2;
					long count = r < 0 ? WINDOW * 2 : k;
					double cpu, m = fanout_run(&f[x], count, &cpu);

					if (r >= 0) {
						v[x][r] = m;
						c[x][r] = cpu;
					}
				}
			for (r = 0; r < opts.reps; r++)
				ratio[r] = c[1][r] / c[0][r];
			for (b = 1; b >= 0; b--) {
				bench_report("mcast", name[b], configs[g], nrecv[i], "delivered",
					     "msg/s", v[b], opts.reps);
				bench_report("mcast", name[b], configs[g], nrecv[i], "cpu",
					     "us/delivered", c[b], opts.reps);
				fanout_close(&f[b]);
			}
			bench_report("mcast", "af_bus_over_unix_cpu", configs[g], nrecv[i], "ratio",
				     "x", ratio, opts.reps);
		}
}

/* ---- match scaling ------------------------------------------------- */

static unsigned long long rng = 88172645463325252ULL;

static unsigned int rand_bit(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng % 512;
}

static int lowest_sent_bit(void)
{
	int i;

	for (i = 0; i < 512; i++)
		if (sent_bits[i / 64] & (1ULL << (i % 64)))
			return i;
	return -1;
}

/*
 * The D-Bus-shaped level (afbus-dbus's bloom mapping, bus-bloom.h): the
 * signal is PropertiesChanged of org.freedesktop.DBus.Properties on
 * /org/example/obj0 with arg0 org.example.Iface (its path, the path's
 * prefixes and arg0 set bits too); the receiver's rule names interface,
 * member and path; every other rule names the same interface and member
 * and another object's path, so all the rules share 8 of their bits.
 */
#define DBUS_IFACE "org.freedesktop.DBus.Properties"
#define DBUS_MEMBER "PropertiesChanged"
static __u64 dbus_sent[8], dbus_match[8];

static void dbus_rule(__u64 *mask, int obj)
{
	char path[64];

	memset(mask, 0, 64);
	snprintf(path, sizeof(path), "/org/example/obj%d", obj);
	bus_bloom_add((uint64_t *)mask, "interface", DBUS_IFACE);
	bus_bloom_add((uint64_t *)mask, "member", DBUS_MEMBER);
	bus_bloom_add((uint64_t *)mask, "path", path);
}

static void make_dbus_bitmaps(void)
{
	static const char *const prefixes[] = { "/org/example/obj0", "/org/example",
						"/org", "/" };
	uint64_t *b = (uint64_t *)dbus_sent;
	unsigned int i;

	memset(dbus_sent, 0, sizeof(dbus_sent));
	bus_bloom_add(b, "interface", DBUS_IFACE);
	bus_bloom_add(b, "member", DBUS_MEMBER);
	bus_bloom_add(b, "path", "/org/example/obj0");
	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		bus_bloom_add(b, "path-prefix", prefixes[i]);
	bus_bloom_add(b, "arg0", "org.example.Iface");
	dbus_rule(dbus_match, 0);
}

enum mlevel_mode { ML_BLOOM4, ML_LOWBIT, ML_DBUS };

static const __u64 *mode_sent(enum mlevel_mode mode)
{
	return mode == ML_DBUS ? dbus_sent : sent_bits;
}

static const __u64 *mode_match(enum mlevel_mode mode)
{
	return mode == ML_DBUS ? dbus_match : match_bits;
}

/* A grant mask that the sent bitmap does not match.  "bloom4": 4 random
 * bits, as a match rule's bloom sets; "lowbit": its lowest bit is the
 * sent bitmap's lowest, so the index files it where every send looks;
 * "dbus": the rule of object @n + 1 (skipping any whose bits the signal
 * happens to hold: a bloom false positive would be delivered).
 */
static void filler_mask(enum mlevel_mode mode, int n, __u64 *mask)
{
	int lowbit = mode == ML_LOWBIT, obj = n + 1;
	const __u64 *sent = mode_sent(mode);
	int i, ok;

	do {
		memset(mask, 0, 64);
		if (mode == ML_DBUS) {
			dbus_rule(mask, obj);
			obj += 1000000;
		} else {
			for (i = 0; i < 4; i++) {
				unsigned int b = rand_bit();

				if (lowbit && b <= (unsigned int)lowest_sent_bit())
					b = 511 - b % 64;
				mask[b / 64] |= 1ULL << (b % 64);
			}
		}
		if (lowbit) {
			int l = lowest_sent_bit();

			mask[l / 64] |= 1ULL << (l % 64);
		}
		for (i = 0, ok = 0; i < 8; i++)
			ok |= (mask[i] & ~sent[i]) != 0;
	} while (!ok);
}

#define GRANTS_PER_MEMBER 50

/* A bus with one matching receiver, a sender, and @grants non-matching
 * match grants held by other members (GRANTS_PER_MEMBER each).
 */
struct mlevel {
	struct bus bus;
	int rx, s, members, *fill;
	struct sockaddr_bus dst;
};

static void mlevel_open(struct mlevel *l, int grants, enum mlevel_mode mode)
{
	struct sockaddr_bus h, m, g[16];
	char buf[128];
	int have = 0;

	bus_new(&l->bus);
	l->fill = calloc(grants / GRANTS_PER_MEMBER + 1, sizeof(int));
	l->members = 0;
	m = bus_mcast(&l->bus, mode_match(mode));
	l->rx = bus_member(&l->bus, "rx", &h);
	bus_grant(&l->bus, &h, SCM_MULTICAST_MATCH, &m, 1);
	if (recv(l->rx, buf, sizeof(buf), 0) < 0)
		bench_die("match reply");
	l->s = bus_member(&l->bus, "sender", NULL);
	l->dst = bus_mcast(&l->bus, mode_sent(mode));
	while (have < grants) {
		int in_member = 0, fd;

		snprintf(buf, sizeof(buf), "f%d", l->members);
		fd = l->fill[l->members++] = bus_member(&l->bus, buf, &h);
		while (in_member < GRANTS_PER_MEMBER && have < grants) {
			int j, batch = 0;

			for (j = 0; j < 16 && in_member < GRANTS_PER_MEMBER && have < grants;
			     j++, batch++, in_member++, have++) {
				__u64 mask[8];

				filler_mask(mode, have, mask);
				g[j] = bus_mcast(&l->bus, mask);
			}
			bus_grant(&l->bus, &h, SCM_MULTICAST_MATCH, g, batch);
			if (recv(fd, buf, sizeof(buf), 0) < 0)
				bench_die("filler grant reply");
		}
	}
}

static void mlevel_close(struct mlevel *l)
{
	while (l->members > 0)
		close(l->fill[--l->members]);
	free(l->fill);
	close(l->rx);
	close(l->s);
	close(l->bus.master);
}

/* The time spent in sendmsg per multicast, over @n of them, the
 * receiver draining after every WINDOW outside the timed part.
 */
static double mlevel_run(struct mlevel *l, long n)
{
	char buf[128], payload[64] = "signal";
	double spent = 0;
	long sent;

	for (sent = 0; sent < n; sent += WINDOW) {
		double t0 = bench_now();
		int j;

		for (j = 0; j < WINDOW; j++)
			if (sendto(l->s, payload, 64, 0, (struct sockaddr *)&l->dst,
				   sizeof(l->dst)) != 64)
				bench_die("multicast");
		spent += bench_now() - t0;
		for (j = 0; j < WINDOW; j++)
			if (recv(l->rx, buf, sizeof(buf), 0) != 64)
				bench_die("match recv");
	}
	return spent * 1e6 / n;
}

/*
 * Every level on its own bus, measured round by round in turn.  Each
 * round builds its buses afresh: where the allocator happens to put a
 * bus's sockets and grants moves a level's figure by 10-20% under TCG
 * (its software TLB is direct-mapped), so one set of buses would carry
 * one layout's luck into every round.
 */
static void match_levels(enum mlevel_mode mode)
{
	static const int levels[] = { 0, 100, 1000, 10000 };
	static const char *const configs[] = { "bloom4", "lowbit", "dbus" };
	double v[4][BENCH_MAX_REPS], ratio[BENCH_MAX_REPS];
	long k = bench_count(&opts, 2000);
	const char *config = configs[mode];
	struct mlevel l[4];
	int i, r;

	k = (k + WINDOW - 1) / WINDOW * WINDOW;
	/*
	 * A smoke run (make check: tiny scale, one round) skips the warm-up
	 * round, the costliest part of it: 11,100 grants per round.
	 */
	for (r = opts.scale < 0.1 ? 0 : -1; r < opts.reps; r++) {
		for (i = 0; i < 4; i++)
			mlevel_open(&l[i], levels[i], mode);
		bench_pin(0);
		for (i = 0; i < 4; i++) {
			double us;

			mlevel_run(&l[i], WINDOW * 2);	/* warm */
			us = mlevel_run(&l[i], r < 0 ? WINDOW * 4 : k);
			if (r >= 0)
				v[i][r] = us;
		}
		bench_pin(-1);
		for (i = 0; i < 4; i++)
			mlevel_close(&l[i]);
	}
	for (r = 0; r < opts.reps; r++)
		ratio[r] = v[3][r] / v[0][r];
	for (i = 0; i < 4; i++)
		bench_report("match", "af_bus", config, levels[i], "send", "us/multicast", v[i],
			     opts.reps);
	bench_report("match", "grants_10000_over_0", config, 10000, "ratio", "x", ratio,
		     opts.reps);
}

static void bench_match(void)
{
	make_dbus_bitmaps();
	if (!only || !strcmp(only, "bloom4"))
		match_levels(ML_BLOOM4);
	if (!only || !strcmp(only, "lowbit"))
		match_levels(ML_LOWBIT);
	if (!only || !strcmp(only, "dbus"))
		match_levels(ML_DBUS);
}

/* ---- a service and K clients -------------------------------------- */

enum skind { S_BUS, S_DGRAM };
static const char *const skind_name[] = { "af_bus", "unix_dgram" };

#define SVC_MAX_CLIENTS 16

struct svc {
	enum skind k;
	struct bus bus;
	int srv, cl[SVC_MAX_CLIENTS], nclients;
	union {
		struct sockaddr_bus bus;
		struct sockaddr_un un;
	} dst;
	socklen_t dstlen;
	pid_t pid;
	/* One round's work for each client thread. */
	long per;
	pthread_barrier_t start;
};

struct svc_client {
	struct svc *s;
	int i;
};

/* The service: every request answered to its source, until killed. */
static void svc_serve(int fd)
{
	union {
		struct sockaddr_bus bus;
		struct sockaddr_un un;
	} src;
	char buf[128];

	for (;;) {
		socklen_t len = sizeof(src);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&src, &len);

		if (n < 0)
			bench_die("svc: recvfrom");
		if (sendto(fd, buf, n, 0, (struct sockaddr *)&src, len) != n)
			bench_die("svc: reply");
	}
}

static void svc_open(struct svc *s, enum skind k, int nclients)
{
	int i;

	memset(s, 0, sizeof(*s));
	s->k = k;
	s->nclients = nclients;
	if (k == S_BUS) {
		char name[16];

		bus_new(&s->bus);
		s->srv = bus_member(&s->bus, "svc", NULL);
		for (i = 0; i < nclients; i++) {
			snprintf(name, sizeof(name), "c%d", i);
			s->cl[i] = bus_member(&s->bus, name, NULL);
		}
		s->dst.bus = bus_on(&s->bus, "svc");
		s->dstlen = sizeof(s->dst.bus);
	} else {
		struct sockaddr_un un = { .sun_family = AF_UNIX };
		socklen_t len = offsetof(struct sockaddr_un, sun_path) + 1 +
			snprintf(un.sun_path + 1, sizeof(un.sun_path) - 1, "bench-svc-%d-%d",
				 getpid(), bus_serial++);

		s->srv = socket(AF_UNIX, SOCK_DGRAM, 0);
		if (s->srv < 0 || bind(s->srv, (struct sockaddr *)&un, len))
			bench_die("svc: bind the AF_UNIX service");
		for (i = 0; i < nclients; i++) {
			/* Autobind: a reply needs an address to go to. */
			s->cl[i] = socket(AF_UNIX, SOCK_DGRAM, 0);
			if (s->cl[i] < 0 ||
			    bind(s->cl[i], (struct sockaddr *)&un, sizeof(sa_family_t)))
				bench_die("svc: autobind a client");
		}
		s->dst.un = un;
		s->dstlen = len;
	}
	s->pid = fork();
	if (s->pid < 0)
		bench_die("fork");
	if (s->pid == 0) {
		svc_serve(s->srv);
		_exit(0);
	}
}

static void svc_close(struct svc *s)
{
	int i;

	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	for (i = 0; i < s->nclients; i++)
		close(s->cl[i]);
	close(s->srv);
	if (s->k == S_BUS)
		close(s->bus.master);
}

static void *svc_client_run(void *arg)
{
	struct svc_client *c = arg;
	struct svc *s = c->s;
	char buf[128];
	long j;

	memset(buf, c->i, 64);
	pthread_barrier_wait(&s->start);
	for (j = 0; j < s->per; j++) {
		if (sendto(s->cl[c->i], buf, 64, 0, (struct sockaddr *)&s->dst, s->dstlen) != 64)
			bench_die("svc: request");
		if (recv(s->cl[c->i], buf, sizeof(buf), 0) != 64)
			bench_die("svc: answer");
	}
	pthread_barrier_wait(&s->start);
	return NULL;
}

/* Microseconds per call, over all clients calling at once. */
static double svc_run(struct svc *s, long per)
{
	struct svc_client c[SVC_MAX_CLIENTS];
	pthread_t t[SVC_MAX_CLIENTS];
	double t0;
	int i;

	s->per = per;
	if (pthread_barrier_init(&s->start, NULL, s->nclients + 1))
		bench_die("pthread_barrier_init");
	for (i = 0; i < s->nclients; i++) {
		c[i].s = s;
		c[i].i = i;
		if (pthread_create(&t[i], NULL, svc_client_run, &c[i]))
			bench_die("pthread_create");
	}
	pthread_barrier_wait(&s->start);
	t0 = bench_now();
	pthread_barrier_wait(&s->start);
	t0 = bench_now() - t0;
	for (i = 0; i < s->nclients; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&s->start);
	return t0 * 1e6 / (per * s->nclients);
}

static void bench_svc(void)
{
	static const int ks[] = { 1, 4, 16 };
	double v[S_DGRAM + 1][BENCH_MAX_REPS], ratio[BENCH_MAX_REPS];
	long n = bench_count(&opts, 2000);
	struct svc s[S_DGRAM + 1];
	unsigned int q;
	int j, k, r, want[S_DGRAM + 1];

	for (q = 0; q < sizeof(ks) / sizeof(ks[0]); q++) {
		long per = (n + ks[q] - 1) / ks[q];

		for (k = S_BUS; k <= S_DGRAM; k++) {
			want[k] = !only || !strcmp(only, skind_name[k]);
			if (want[k])
				svc_open(&s[k], k, ks[q]);
		}
		for (r = -1; r < opts.reps; r++) {
			for (j = 0; j <= S_DGRAM; j++) {
				double us;

				k = (j + r + 1) % (S_DGRAM + 1);
				if (!want[k])
					continue;
				us = svc_run(&s[k], r < 0 ? (per + 3) / 4 : per);
				if (r >= 0)
					v[k][r] = us;
			}
			if (r >= 0 && want[S_BUS] && want[S_DGRAM])
				ratio[r] = v[S_BUS][r] / v[S_DGRAM][r];
		}
		for (k = S_BUS; k <= S_DGRAM; k++) {
			if (!want[k])
				continue;
			svc_close(&s[k]);
			bench_report("svc", skind_name[k], "free", ks[q], "call", "us", v[k],
				     opts.reps);
		}
		if (want[S_BUS] && want[S_DGRAM])
			bench_report("svc", "af_bus_over_unix_dgram", "free", ks[q], "ratio", "x",
				     ratio, opts.reps);
	}
}

/* ---- joining ------------------------------------------------------- */

static void join_master(const struct bus *b)
{
	struct sockaddr_bus from, g;
	char buf[64], name[24];
	long next = 0;

	for (;;) {
		socklen_t len = sizeof(from);
		ssize_t n = recvfrom(b->master, buf, sizeof(buf), 0, (struct sockaddr *)&from,
				     &len);

		if (n < 0 && errno == ENOBUFS)
			continue;
		if (n < 0)
			bench_die("join master");
		if (from.sbus_addr_ncomp == 0)
			continue;	/* BUS_NOTIFY_GONE of an earlier joiner */
		if (n == 5 && !memcmp(buf, "quit", 5))
			return;
		snprintf(name, sizeof(name), "j%ld", next++);
		g = bus_on(b, name);
		bus_grant(b, &from, SCM_OWNED_ADDR, &g, 1);
	}
}

static void bench_join(void)
{
	long n = bench_count(&opts, 1000), i;
	double v[BENCH_MAX_REPS];
	struct bus bus;
	int r, status;
	char buf[16];
	pid_t pid;

	bus_new(&bus);
	pid = fork();
	if (pid == 0) {
		bench_pin(1);
		join_master(&bus);
		_exit(0);
	}
	bench_pin(0);
	for (r = -1; r < opts.reps; r++) {
		double spent = 0;

		for (i = 0; i < n; i++) {
			int fd = socket(AF_BUS, SOCK_DGRAM, 0);
			double t0 = bench_now();

			if (sendto(fd, "hi", 3, 0, (struct sockaddr *)&bus.maddr,
				   sizeof(bus.maddr)) != 3 || recv(fd, buf, sizeof(buf), 0) < 0)
				bench_die("join");
			spent += bench_now() - t0;
			close(fd);
		}
		if (r >= 0)
			v[r] = spent * 1e6 / n;
	}
	{
		int fd = socket(AF_BUS, SOCK_DGRAM, 0);

		if (sendto(fd, "quit", 5, 0, (struct sockaddr *)&bus.maddr, sizeof(bus.maddr)) != 5)
			bench_die("quit");
		waitpid(pid, &status, 0);
		close(fd);
	}
	bench_pin(-1);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		bench_die("join: the master failed");
	close(bus.master);
	bench_report("join", "af_bus", "2cpu", 0, "join", "us", v, opts.reps);
}

/* ---- memory -------------------------------------------------------- */

/* The guest's free memory, bytes (/proc/meminfo's MemFree). */
static double mem_free(void)
{
	char line[256];
	double kb = 0;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		bench_die("/proc/meminfo");
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "MemFree:", 8))
			kb = atof(line + 8);
	fclose(f);
	return kb * 1024;
}

#define MEM_MEMBERS 400
#define MEM_GRANT_MEMBERS 200	/* GRANTS_PER_MEMBER each: 10,000 grants */
#define MEM_QUEUES 40
#define MEM_QUEUED 120		/* per queue: a user may fill half of max_queue_msgs (256) */

/*
 * Kernel memory per member, per match grant and per queued 64 B message,
 * from the fall of MemFree over many of them (all kernel and user memory
 * the guest uses, so a quiet guest is assumed): AF_BUS members (each with
 * an address) against AF_UNIX SOCK_DGRAM sockets (socketpairs, per
 * socket); D-Bus-shaped match grants; messages queued on AF_BUS members
 * and on one AF_UNIX socket (its sender's buffer raised, as tput's).
 */
static void bench_mem(void)
{
	/* A smoke run (make check) makes a tenth of everything. */
	int div = opts.scale < 0.1 ? 10 : 1;
	int nmembers = MEM_MEMBERS / div, ngrant = MEM_GRANT_MEMBERS / div;
	int nqueues = MEM_QUEUES / div;
	double member[2][BENCH_MAX_REPS], grant[BENCH_MAX_REPS], queued[2][BENCH_MAX_REPS];
	static int fds[2 * MEM_MEMBERS];
	static struct sockaddr_bus handle[MEM_GRANT_MEMBERS];
	char payload[64] = "queued", name[16];
	struct rlimit rl = { 4096, 4096 };
	int r, i, j, big = 64 << 20;

	setrlimit(RLIMIT_NOFILE, &rl);
	make_dbus_bitmaps();
	for (r = 0; r < opts.reps; r++) {
		struct sockaddr_bus g[16], dst;
		struct bus b;
		double m0;
		int sv[2];

		/* Members, then sockets. */
		bus_new(&b);
		m0 = mem_free();
		for (i = 0; i < nmembers; i++) {
			snprintf(name, sizeof(name), "m%d", i);
			fds[i] = bus_member(&b, name, NULL);
		}
		member[0][r] = (m0 - mem_free()) / nmembers;
		for (i = 0; i < nmembers; i++)
			close(fds[i]);
		close(b.master);
		m0 = mem_free();
		for (i = 0; i < nmembers; i++) {
			if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv))
				bench_die("socketpair");
			fds[2 * i] = sv[0];
			fds[2 * i + 1] = sv[1];
		}
		member[1][r] = (m0 - mem_free()) / (2 * nmembers);
		for (i = 0; i < 2 * nmembers; i++)
			close(fds[i]);

		/* 10,000 D-Bus-shaped match grants on 200 members. */
		bus_new(&b);
		for (i = 0; i < ngrant; i++) {
			snprintf(name, sizeof(name), "g%d", i);
			fds[i] = bus_member(&b, name, &handle[i]);
		}
		m0 = mem_free();
		for (i = 0; i < ngrant; i++) {
			for (j = 0; j < GRANTS_PER_MEMBER; j++) {
				__u64 mask[8];

				filler_mask(ML_DBUS, i * GRANTS_PER_MEMBER + j, mask);
				g[j % 16] = bus_mcast(&b, mask);
				if (j % 16 == 15 || j == GRANTS_PER_MEMBER - 1) {
					bus_grant(&b, &handle[i], SCM_MULTICAST_MATCH, g,
						  j % 16 + 1);
					if (recv(fds[i], name, sizeof(name), 0) < 0)
						bench_die("grant reply");
				}
			}
		}
		grant[r] = (m0 - mem_free()) / (ngrant * GRANTS_PER_MEMBER);
		for (i = 0; i < ngrant; i++)
			close(fds[i]);
		close(b.master);

		/* Queued 64 B messages. */
		bus_new(&b);
		fds[nqueues] = bus_member(&b, "sender", NULL);
		for (i = 0; i < nqueues; i++) {
			snprintf(name, sizeof(name), "q%d", i);
			fds[i] = bus_member(&b, name, NULL);
		}
		m0 = mem_free();
		for (i = 0; i < nqueues; i++) {
			snprintf(name, sizeof(name), "q%d", i);
			dst = bus_on(&b, name);
			for (j = 0; j < MEM_QUEUED; j++)
				if (sendto(fds[nqueues], payload, 64, MSG_DONTWAIT,
					   (struct sockaddr *)&dst, sizeof(dst)) != 64)
					bench_die("queue a message");
		}
		queued[0][r] = (m0 - mem_free()) / (nqueues * MEM_QUEUED);
		for (i = 0; i <= nqueues; i++)
			close(fds[i]);
		close(b.master);
		if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv))
			bench_die("socketpair");
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
		m0 = mem_free();
		for (j = 0; j < nqueues * MEM_QUEUED; j++)
			if (send(sv[0], payload, 64, MSG_DONTWAIT) != 64)
				bench_die("queue an AF_UNIX message");
		queued[1][r] = (m0 - mem_free()) / (nqueues * MEM_QUEUED);
		close(sv[0]);
		close(sv[1]);
	}
	bench_report("mem", "af_bus", "kernel", MEM_MEMBERS, "member", "B/member", member[0],
		     opts.reps);
	bench_report("mem", "unix_dgram", "kernel", MEM_MEMBERS, "member", "B/socket", member[1],
		     opts.reps);
	bench_report("mem", "af_bus", "kernel", MEM_GRANT_MEMBERS * GRANTS_PER_MEMBER, "grant",
		     "B/grant", grant, opts.reps);
	bench_report("mem", "af_bus", "kernel", 64, "queued", "B/message", queued[0], opts.reps);
	bench_report("mem", "unix_dgram", "kernel", 64, "queued", "B/message", queued[1],
		     opts.reps);
}

int main(int argc, char **argv)
{
	static const struct { const char *name; void (*fn)(void); } groups[] = {
		{ "rtt", bench_rtt }, { "path", bench_path }, { "tput", bench_tput },
		{ "mcast", bench_mcast },
		{ "match", bench_match }, { "svc", bench_svc }, { "join", bench_join },
		{ "mem", bench_mem },
		{ "calib", bench_calib },
	};
	unsigned int g;
	int c, i;

	while ((c = getopt(argc, argv, "r:s:k:z:")) != -1) {
		switch (c) {
		case 'z':
			only_size = atol(optarg);
			break;
		case 'k':
			only = optarg;
			break;
		case 'r':
			opts.reps = atoi(optarg);
			break;
		case 's':
			opts.scale = atof(optarg);
			break;
		default:
			fprintf(stderr,
				"usage: bus_bench [-r REPS] [-s SCALE] [-k CASE] [-z SIZE] [GROUP...]\n");
			return 2;
		}
	}
	if (opts.reps < 1 || opts.reps > BENCH_MAX_REPS || opts.scale <= 0) {
		fprintf(stderr, "bus_bench: REPS is 1..%d, SCALE above 0\n", BENCH_MAX_REPS);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	make_bitmaps();
	for (g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		/* calib is asked for by name only. */
		int want = optind == argc && strcmp(groups[g].name, "calib");

		for (i = optind; i < argc; i++)
			want |= !strcmp(argv[i], groups[g].name);
		if (want) {
			double t0 = bench_now();

			fprintf(stderr, "bus_bench: %s\n", groups[g].name);
			groups[g].fn();
			/* Where a run's wall time goes (smoke runs in make check). */
			printf("# bus_bench: group %s took %.1f s\n", groups[g].name,
			       bench_now() - t0);
			fflush(stdout);
		}
	}
	return 0;
}
