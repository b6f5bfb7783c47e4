// SPDX-License-Identifier: GPL-2.0
/*
 * AF_BUS stress: buses created and destroyed over and over, worker
 * processes (each with a sender, a receiver and a chaos thread) joining,
 * being granted and revoked addresses, sending unicast, multicast and
 * SCM_RIGHTS, receiving through recvmsg or the ring, with socket
 * filters, killed at random, and masters killed mid-flight.
 *
 * Invariants checked as it goes:
 *  - unicast: no message accepted by sendmsg is lost while both ends
 *    live, none is duplicated, each pair's messages arrive in order and
 *    at the socket owning the destination address, payloads intact;
 *  - multicast: per sender order, no duplicates, the filter drops
 *    exactly what it must; what is missing is never more than the drop
 *    count, and in a quiesced burst received + filtered + dropped equals
 *    what was sent, exactly;
 *  - the master gets one BUS_NOTIFY_GONE per endpoint (or an OVERFLOW
 *    accounting for it), never two;
 *  - a dead bus is ECONNRESET for every member, POLLHUP | POLLERR;
 *  - after teardown: module references, /proc/net/bus and the AF_BUS
 *    slab return to their starting values.
 *
 * Beside the epochs, an attack process replays the operations that found
 * the hardening bugs (MSG_PEEK racing receives of SCM_RIGHTS, bind /
 * sendto / close racing on one socket, sends from userfaultfd-stalled
 * buffers, revokes racing sends), each with its own checks: see "The
 * attacks" below.
 *
 * Usage: bus_stress [-s SEED] [-d SECONDS] [-i EPOCHS] [-w WORKERS] [-a ATTACKS]
 * ATTACKS: the attack rounds to run, a comma-separated subset of
 * peek,bind,stall,revoke (default all of them), or none.
 * Prints a summary line at the end and, on failure, a reproducer.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/bus.h>
#include <linux/filter.h>
#include <linux/userfaultfd.h>

#ifndef F_SEAL_SHRINK
#include <linux/fcntl.h>
#endif

#define MAXW		8
#define MSLOT		MAXW		/* the master's sender index */
#define NSRC		(MAXW + 1)
#define MAXSEEN		8192
#define MAGIC		0x53545253u	/* "STRS" */
#define FRAME_SIZE	2048
#define MAX_FILL	1024
#define FS_BUS_PATH	"/tmp/afbus-stress.sock"
/* skbs the rest of the system may hold (loose: not all of them are ours). */
#define SKB_SLACK	64

enum phase { PH_CHAOS, PH_QUIESCE, PH_DRAIN, PH_BURST, PH_COUNT, PH_STOP };

/* The payload of every message between the stress processes. */
struct pay {
	uint32_t magic;
	uint8_t kind;		/* 'H'ello 'C'haos 'T'oggle 'G'rant 'U' 'F' 'M' 'B'urst */
	uint8_t filt;		/* 1: the receivers' filter drops it (offset 5) */
	uint8_t src;		/* sender slot, MSLOT for the master */
	uint8_t dst;		/* destination slot of a unicast */
	uint32_t inc;		/* sender incarnation */
	uint32_t epoch;
	uint64_t seq;		/* per (sender, destination) for U and F */
	uint64_t mcnt[NSRC];	/* multicasts sent matching each slot; [MSLOT] all */
	uint64_t fcnt[NSRC];	/* of which flagged for the filter */
	uint32_t fill;		/* filler bytes that follow */
	uint32_t monitor;	/* hello: the worker wants the all-zero mask */
};

struct stats {
	uint64_t sent, received, fds_sent, fds_received;
	uint64_t msent, mreceived, filtered, dropped, enobufs;
	uint64_t ring_frames, eagain, unreach, kills, master_kills;
	uint64_t buses, gone, overflow_lost, bursts, chaos_ops, joins;
	/* the attack process */
	uint64_t atk_rounds, atk_peek_msgs, atk_peeks, atk_peek_fds, atk_binds, atk_bind_sends;
	uint64_t atk_stalls, atk_long_stalls, atk_stall_msgs, atk_stall_efault, atk_stall_skipped;
	uint64_t atk_moves, atk_revoke_msgs, atk_revoke_unreach;
};

struct shm {
	volatile int phase;
	volatile int epoch;
	volatile int master_ready;
	volatile int master_dead;	/* the master was killed this epoch */
	volatile int master_finish;	/* all workers reaped: check GONEs */
	volatile int master_quiet;
	volatile int nworkers;
	volatile int alive[MAXW];
	volatile int joined[MAXW];
	volatile uint32_t inc[MAXW];
	volatile int tx_stopped, drained, burst_done, counted;
	uint64_t burst_k[NSRC], burst_flagged[NSRC];
	/* At quiesce: each sender's last sequence numbers, per destination. */
	uint64_t final_useq[MAXW][MAXW], final_fseq[MAXW][MAXW];
	uint32_t final_inc[MAXW];
	struct sockaddr_bus bus;	/* the master's address */
	struct stats st;
	volatile int atk_stop;		/* the attack process ends its round and exits */
	volatile int failed;
	char failmsg[1024];
};

static struct shm *shm;
static unsigned long long g_seed;
static int g_duration = 60, g_epochs = 1000000, g_workers = 4;

/* Per process */
static int my_slot = -1;
static uint32_t my_inc;
static const char *my_role = "supervisor";
static pid_t supervisor_pid;

static void kill_all(void);
static void report_failure(int epochs);

#define ST_ADD(f, n) __atomic_fetch_add(&shm->st.f, (n), __ATOMIC_RELAXED)

static void fail(const char *fmt, ...)
{
	char buf[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (!__atomic_exchange_n(&shm->failed, 1, __ATOMIC_SEQ_CST))
		snprintf(shm->failmsg, sizeof(shm->failmsg),
			 "%s slot %d inc %u epoch %d: %s", my_role, my_slot,
			 my_inc, shm->epoch, buf);
	fprintf(stderr, "bus_stress: FAIL %s slot %d: %s\n", my_role, my_slot, buf);
	if (getpid() == supervisor_pid) {
		/* First: a child stuck in the kernel may never be reaped. */
		report_failure(shm->epoch);
		kill_all();
		exit(1);
	}
	_exit(1);
}

/* xorshift64*: every process and thread seeds its own from g_seed. */
struct rng { uint64_t s; };

static void rng_init(struct rng *r, uint64_t a, uint64_t b, uint64_t c)
{
	r->s = g_seed * 0x9e3779b97f4a7c15ull ^ (a << 40) ^ (b << 20) ^ c ^ 0x2545f4914f6cdd1dull;
	if (!r->s)
		r->s = 1;
}

static uint64_t rnd(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dull;
}

static unsigned int rn(struct rng *r, unsigned int n)
{
	return n ? rnd(r) % n : 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* The address @name (a string) on the stress bus. */
static struct sockaddr_bus on_bus(const char *name)
{
	struct sockaddr_bus a = shm->bus;
	size_t len = strlen(name) + 1;

	memset(a.sbus_addr, 0, sizeof(a.sbus_addr));
	memcpy(a.sbus_addr, name, len);
	a.sbus_addr_ncomp = (len + 7) / 8;
	return a;
}

/* A multicast address of the stress bus with bitmap @bits. */
static struct sockaddr_bus mcast(uint64_t bits)
{
	struct sockaddr_bus a = shm->bus;

	memset(a.sbus_addr, 0, sizeof(a.sbus_addr));
	a.sbus_path[BUS_PATH_MAX - 1] = BUS_MULTICAST_MARK;
	a.sbus_addr[0] = bits;
	a.sbus_addr_ncomp = 1;
	return a;
}

static void slot_name(char *buf, char c, int slot)
{
	buf[0] = c;
	buf[1] = '0' + slot;
	buf[2] = 0;
}

static void cmsg_add(char *ctl, size_t *off, int type, const struct sockaddr_bus *a)
{
	struct cmsghdr *c = (struct cmsghdr *)(ctl + *off);

	c->cmsg_level = SOL_BUS;
	c->cmsg_type = type;
	c->cmsg_len = CMSG_LEN(sizeof(*a));
	memcpy(CMSG_DATA(c), a, sizeof(*a));
	*off += CMSG_SPACE(sizeof(*a));
}

/* Fills the filler bytes of @p (total length @len). */
static void fill_pay(struct pay *p, size_t len)
{
	unsigned char *b = (unsigned char *)(p + 1);
	size_t i;

	p->fill = len - sizeof(*p);
	for (i = 0; i < p->fill; i++)
		b[i] = (unsigned char)(p->seq * 31 + p->inc + i);
}

static int check_fill(const struct pay *p, size_t len)
{
	const unsigned char *b = (const unsigned char *)(p + 1);
	size_t i;

	if (p->fill != len - sizeof(*p))
		return -1;
	for (i = 0; i < p->fill; i++)
		if (b[i] != (unsigned char)(p->seq * 31 + p->inc + i))
			return -1;
	return 0;
}

static ssize_t send_pay(int fd, const struct sockaddr_bus *dst, struct pay *p, size_t len,
			void *ctl, size_t nctl, int flags)
{
	struct iovec iov = { p, len };
	struct msghdr m = {
		.msg_name = (void *)dst, .msg_namelen = sizeof(*dst),
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = nctl ? ctl : NULL, .msg_controllen = nctl,
	};

	p->magic = MAGIC;
	p->epoch = shm->epoch;
	return sendmsg(fd, &m, flags | MSG_NOSIGNAL);
}

/* ---------------------------------------------------------------- */
/* The master                                                        */

struct seen {
	struct sockaddr_bus handle;
	int gone;
};

static struct seen seen[MAXSEEN];
static int nseen;

static int seen_find(const struct sockaddr_bus *h)
{
	int i;

	for (i = 0; i < nseen; i++)
		if (seen[i].handle.sbus_addr_ncomp == h->sbus_addr_ncomp &&
		    !memcmp(seen[i].handle.sbus_addr, h->sbus_addr, h->sbus_addr_ncomp * 8))
			return i;
	return -1;
}

static void seen_add(const struct sockaddr_bus *h)
{
	if (h->sbus_addr_ncomp == 0 || ((char *)h->sbus_addr)[0] != ':')
		return;
	if (seen_find(h) >= 0 || nseen >= MAXSEEN)
		return;
	seen[nseen].handle = *h;
	seen[nseen].gone = 0;
	nseen++;
}

static int x_owned[MAXW], extra_match[MAXW];
static uint64_t m_mcnt[NSRC], m_fcnt[NSRC];

/* Sends the grant reply to the handle of a fresh worker. */
static void master_join(int fd, const struct sockaddr_bus *handle, const struct pay *hello,
			int policy)
{
	char ctl[6 * CMSG_SPACE(sizeof(struct sockaddr_bus))];
	struct sockaddr_bus w, x, m, s;
	char name[4];
	size_t off = 0;
	int slot = hello->src;
	struct pay p = { .kind = 'G', .src = MSLOT, .dst = slot };

	slot_name(name, 'w', slot);
	w = on_bus(name);
	slot_name(name, 'x', slot);
	x = on_bus(name);
	m = mcast(hello->monitor ? 0 : 1ull << slot);
	s = mcast(~0ull);
	cmsg_add(ctl, &off, SCM_OWNED_ADDR, &w);
	cmsg_add(ctl, &off, SCM_OWNED_ADDR, &x);
	cmsg_add(ctl, &off, SCM_MULTICAST_MATCH, &m);
	if (policy)
		cmsg_add(ctl, &off, SCM_MULTICAST_SEND, &s);
	fill_pay(&p, sizeof(p));
	if (send_pay(fd, handle, &p, sizeof(p), ctl, off, 0) >= 0) {
		x_owned[slot] = 1;
		extra_match[slot] = 0;
		ST_ADD(joins, 1);
	} else if (errno == EADDRINUSE) {
		/*
		 * The previous incarnation's addresses are released before
		 * its GONE is queued, and it was reaped before this one was
		 * forked: an address still in use is a leak.
		 */
		fail("join grant of slot %d: EADDRINUSE", slot);
	} else if (errno != EHOSTUNREACH && errno != EAGAIN) {
		fail("join grant of slot %d: %s", slot, strerror(errno));
	}
}

/* Revokes or grants back x<slot>, or toggles an extra match grant. */
static void master_toggle(int fd, int slot, struct rng *r)
{
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
	struct sockaddr_bus w, a;
	char name[4];
	size_t off = 0;
	int type, which = rn(r, 2);
	struct pay p = { .kind = 'G', .src = MSLOT, .dst = slot };

	slot_name(name, 'w', slot);
	w = on_bus(name);
	if (which == 0) {
		slot_name(name, 'x', slot);
		a = on_bus(name);
		type = x_owned[slot] ? SCM_REVOKE_ADDR : SCM_OWNED_ADDR;
	} else {
		a = mcast(1ull << 60 | 1ull << 61);
		type = extra_match[slot] ? SCM_MULTICAST_UNMATCH : SCM_MULTICAST_MATCH;
	}
	cmsg_add(ctl, &off, type, &a);
	fill_pay(&p, sizeof(p));
	if (send_pay(fd, &w, &p, sizeof(p), ctl, off, 0) >= 0) {
		if (which == 0)
			x_owned[slot] = !x_owned[slot];
		else
			extra_match[slot] = !extra_match[slot];
	} else if (errno != EHOSTUNREACH && errno != EAGAIN) {
		fail("toggle %d of slot %d: %s", type, slot, strerror(errno));
	}
}

static void master_mcast(int fd, struct rng *r)
{
	char buf[sizeof(struct pay) + MAX_FILL];
	struct pay *p = (struct pay *)buf;
	uint64_t bits = 0;
	struct sockaddr_bus m;
	size_t len;
	int j;

	while (!bits)
		bits = rnd(r) & ((1ull << g_workers) - 1);
	memset(p, 0, sizeof(*p));
	p->kind = 'M';
	p->src = MSLOT;
	p->filt = rn(r, 4) == 0;
	for (j = 0; j < MAXW; j++)
		if (bits >> j & 1) {
			m_mcnt[j]++;
			m_fcnt[j] += p->filt;
		}
	m_mcnt[MSLOT]++;
	m_fcnt[MSLOT] += p->filt;
	memcpy(p->mcnt, m_mcnt, sizeof(m_mcnt));
	memcpy(p->fcnt, m_fcnt, sizeof(m_fcnt));
	p->seq = m_mcnt[MSLOT];
	len = sizeof(*p) + rn(r, MAX_FILL);
	fill_pay(p, len);
	m = mcast(bits);
	if (send_pay(fd, &m, p, len, NULL, 0, MSG_DONTWAIT) >= 0) {
		ST_ADD(msent, 1);
		return;
	}
	fail("master multicast: %s", strerror(errno));
}

static void master_notification(const char *buf, ssize_t n)
{
	const struct bus_notification *note = (const void *)buf;
	const struct sockaddr_bus *h;
	int i;

	if (n < (ssize_t)sizeof(*note) || note->hdr_len < sizeof(*note))
		fail("short notification (%zd bytes)", n);
	if (note->type == BUS_NOTIFY_OVERFLOW) {
		ST_ADD(overflow_lost, note->count);
		return;
	}
	if (note->type != BUS_NOTIFY_GONE)
		fail("unknown notification type %u", note->type);
	if (note->count < 1 || n != (ssize_t)(note->hdr_len + note->count * sizeof(*h)))
		fail("GONE of %zd bytes with count %llu", n, (unsigned long long)note->count);
	h = (const void *)(buf + note->hdr_len);
	if (h->sbus_addr_ncomp == 0 || ((const char *)h->sbus_addr)[0] != ':')
		fail("GONE does not start with a handle");
	ST_ADD(gone, 1);
	i = seen_find(h);
	if (i < 0) {
		seen_add(h);
		i = seen_find(h);
		if (i < 0)
			return;
	}
	if (seen[i].gone)
		fail("two GONE for handle %s", (const char *)h->sbus_addr);
	seen[i].gone = 1;
}

static void master_main(int fs_path, int policy)
{
	char buf[sizeof(struct pay) + MAX_FILL + 4096];
	struct sockaddr_bus src;
	struct rng r;
	struct timeval tv = { 0, 100000 };
	uint32_t pol = policy ? BUS_POLICY_MCAST_SEND_GRANTED : 0;
	unsigned long long lost;
	double deadline = 0;
	int fd, i, missing;

	my_role = "master";
	rng_init(&r, shm->epoch, MSLOT, 0);
	fd = socket(AF_BUS, SOCK_DGRAM, 0);
	if (fd < 0)
		fail("socket: %s", strerror(errno));
	memset(&shm->bus, 0, sizeof(shm->bus));
	shm->bus.sbus_family = AF_BUS;
	if (fs_path) {
		unlink(FS_BUS_PATH);
		strcpy(shm->bus.sbus_path, FS_BUS_PATH);
		umask(0);
	} else {
		strcpy(shm->bus.sbus_path + 1, "afbus-stress");
	}
	shm->bus = on_bus("master");
	if (bind(fd, (struct sockaddr *)&shm->bus, sizeof(shm->bus)))
		fail("bind epoch %d: %s", shm->epoch, strerror(errno));
	if (setsockopt(fd, SOL_BUS, BUS_POLICY, &pol, sizeof(pol)))
		fail("BUS_POLICY: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	tv.tv_usec = 200000;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ST_ADD(buses, 1);
	shm->master_ready = 1;

	for (;;) {
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr h = { .msg_name = &src, .msg_namelen = sizeof(src),
				    .msg_iov = &iov, .msg_iovlen = 1 };
		struct pay *p = (struct pay *)buf;
		ssize_t n;

		if (shm->failed)
			_exit(1);
		if (shm->phase == PH_CHAOS && rn(&r, 8) == 0)
			master_mcast(fd, &r);
		if (shm->phase != PH_CHAOS)
			shm->master_quiet = 1;
		n = recvmsg(fd, &h, 0);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				fail("master recvmsg: %s", strerror(errno));
		} else if (src.sbus_addr_ncomp == 0) {
			master_notification(buf, n);
		} else {
			if (n < (ssize_t)sizeof(*p) || p->magic != MAGIC || check_fill(p, n))
				fail("master: corrupt message of %zd bytes", n);
			seen_add(&src);
			if (p->kind == 'H' && p->src < MAXW)
				master_join(fd, &src, p, policy);
			else if (p->kind == 'T' && p->src < MAXW && shm->phase == PH_CHAOS)
				master_toggle(fd, p->src, &r);
		}
		if (!shm->master_finish)
			continue;
		if (!deadline)
			deadline = now() + 60;
		lost = __atomic_load_n(&shm->st.overflow_lost, __ATOMIC_RELAXED);
		for (missing = 0, i = 0; i < nseen; i++)
			missing += !seen[i].gone;
		if (n < 0 && (unsigned long long)missing <= lost)
			break;
		if (now() > deadline)
			fail("%d endpoints never reported GONE (%llu lost to overflow)",
			     missing, lost);
	}
	close(fd);
	if (fs_path)
		unlink(FS_BUS_PATH);
	_exit(0);
}

/* ---------------------------------------------------------------- */
/* The workers                                                       */

struct stream {
	uint32_t inc;
	int valid;
	uint64_t last;		/* U and F: seq; M: mcnt of my index */
	uint64_t lastf;
};

struct worker {
	int fd;
	int use_ring, filter, monitor, passcred, no_enobufs, policy;
	char *ring;
	unsigned int ring_nr, ring_next;
	volatile int bus_gone;
	/* receive side, rx thread only */
	struct stream us[NSRC], fs[NSRC], ms[NSRC];
	uint64_t gaps;		/* multicast copies missing, not filtered */
	uint64_t burst_recv, drops0;
	/* send side, tx thread only */
	uint64_t useq[MAXW], fseq[MAXW], mcnt[NSRC], fcnt[NSRC];
};

static struct worker W;

static void bus_gone_check(int fd)
{
	struct pollfd pf = { fd, POLLIN | POLLOUT, 0 };
	struct sockaddr_bus m = shm->bus;
	char c = 0;

	W.bus_gone = 1;
	if (sendto(fd, &c, 1, MSG_DONTWAIT | MSG_NOSIGNAL, (void *)&m, sizeof(m)) != -1 ||
	    errno != ECONNRESET)
		fail("send after the bus died: not ECONNRESET (%s)", strerror(errno));
	if (poll(&pf, 1, 0) != 1 || (pf.revents & (POLLHUP | POLLERR)) != (POLLHUP | POLLERR))
		fail("poll after the bus died: revents %#x", pf.revents);
}

static uint32_t drops_of(int fd)
{
	uint32_t d = 0;
	socklen_t l = sizeof(d);

	if (getsockopt(fd, SOL_BUS, BUS_DROPS, &d, &l) && errno != ECONNRESET)
		fail("BUS_DROPS: %s", strerror(errno));
	return d;
}

static int attach_filter(int fd)
{
	/* Drops the messages whose byte 5 (struct pay.filt) is 1. */
	struct sock_filter code[] = {
		{ BPF_LD | BPF_B | BPF_ABS, 0, 0, 5 },
		{ BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 1 },
		{ BPF_RET | BPF_K, 0, 0, 0 },
		{ BPF_RET | BPF_K, 0, 0, 0xffffffff },
	};
	struct sock_fprog prog = { 4, code };

	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog));
}

/* Checks one unicast or multicast stream message. */
static void stream_check(const struct pay *p, size_t len, int nfds, int *fds,
			 const struct ucred *cred, int multicast_flag)
{
	struct stream *s;
	int idx = W.monitor ? MSLOT : my_slot;
	uint64_t d, mf;

	if (len < sizeof(*p) || p->magic != MAGIC || check_fill(p, len))
		fail("corrupt payload (%zu bytes, kind %c)", len, p->kind);
	/* The master sends grants and multicast only; workers no grants. */
	if (p->src > MSLOT ||
	    (p->src == MSLOT) != (p->kind == 'G' || (p->kind == 'M' && p->src == MSLOT)))
		fail("bad source slot %d for kind %c", p->src, p->kind);
	if (p->src == my_slot)
		fail("got my own message (kind %c)", p->kind);
	if (cred && W.passcred) {
		uid_t want = p->src == MSLOT ? 0 : 1000 + p->src;

		if (cred->uid != want)
			fail("credentials uid %u, sender slot %d", cred->uid, p->src);
	}
	if (multicast_flag >= 0 && multicast_flag != (p->kind == 'M' || p->kind == 'B'))
		fail("multicast flag %d on kind %c", multicast_flag, p->kind);
	if (p->kind != 'F' && nfds)
		fail("%d files on kind %c", nfds, p->kind);
	switch (p->kind) {
	case 'G':
		return;
	case 'U':
	case 'F':
		if (p->dst != my_slot)
			fail("unicast for slot %d delivered to me", p->dst);
		s = p->kind == 'U' ? &W.us[p->src] : &W.fs[p->src];
		if (s->valid && p->inc < s->inc)
			fail("unicast from an older incarnation after a newer one");
		if (s->valid && p->inc == s->inc) {
			if (p->seq <= s->last)
				fail("duplicate or reordered unicast %c from %d: %llu after %llu",
				     p->kind, p->src, (unsigned long long)p->seq,
				     (unsigned long long)s->last);
			if (p->seq != s->last + 1)
				fail("unicast %c from slot %d lost: %llu after %llu", p->kind,
				     p->src, (unsigned long long)p->seq,
				     (unsigned long long)s->last);
		}
		s->valid = 1;
		s->inc = p->inc;
		s->last = p->seq;
		if (p->kind == 'U') {
			ST_ADD(received, 1);
			return;
		}
		if (nfds != 1)
			fail("F message with %d files", nfds);
		{
			uint64_t v = 0;
			int seals = fcntl(fds[0], F_GET_SEALS);

			if (pread(fds[0], &v, sizeof(v), 0) != sizeof(v) || v != p->seq)
				fail("memfd content %llu, want %llu", (unsigned long long)v,
				     (unsigned long long)p->seq);
			if (seals < 0 || !(seals & F_SEAL_WRITE))
				fail("memfd seals %#x", seals);
		}
		ST_ADD(fds_received, 1);
		return;
	case 'M':
		if (W.filter && p->filt)
			fail("the filter let a flagged multicast through");
		s = &W.ms[p->src];
		if (s->valid && p->inc < s->inc)
			fail("multicast from an older incarnation after a newer one");
		if (s->valid && p->inc == s->inc) {
			if (p->mcnt[idx] <= s->last)
				fail("duplicate or reordered multicast from %d: %llu after %llu",
				     p->src, (unsigned long long)p->mcnt[idx],
				     (unsigned long long)s->last);
			d = p->mcnt[idx] - s->last - 1;
			mf = W.filter ? p->fcnt[idx] - s->lastf : 0;
			if (mf > d)
				fail("more filtered than missing");
			W.gaps += d - mf;
			ST_ADD(filtered, mf);
		}
		s->valid = 1;
		s->inc = p->inc;
		s->last = p->mcnt[idx];
		s->lastf = p->fcnt[idx];
		ST_ADD(mreceived, 1);
		return;
	case 'B':
		if (W.filter && p->filt)
			fail("the filter let a flagged burst message through");
		W.burst_recv++;
		ST_ADD(mreceived, 1);
		return;
	default:
		fail("unexpected kind %c", p->kind);
	}
}

/*
 * Reads one message from the queue.  1: got one, 2: ENOBUFS (counted;
 * no message taken), 0: empty, -1: bus gone.
 */
static int rx_queue_one(void)
{
	static char buf[sizeof(struct pay) + MAX_FILL + 64];
	char ctl[1024];
	struct sockaddr_bus src;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr h = { .msg_name = &src, .msg_namelen = sizeof(src),
			    .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *c;
	struct ucred cred, *credp = NULL;
	int fds[8], nfds = 0, i;
	ssize_t n;

	n = recvmsg(W.fd, &h, MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN)
			return 0;
		if (errno == ENOBUFS) {
			if (W.no_enobufs)
				fail("ENOBUFS with BUS_NO_ENOBUFS set");
			ST_ADD(enobufs, 1);
			return 2;
		}
		if (errno == ECONNRESET)
			return -1;
		fail("recvmsg: %s", strerror(errno));
	}
	if (h.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		fail("recvmsg flags %#x", h.msg_flags);
	if (src.sbus_addr_ncomp == 0)
		fail("a worker got a kernel notification");
	for (c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds, CMSG_DATA(c), nfds * sizeof(int));
		}
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			memcpy(&cred, CMSG_DATA(c), sizeof(cred));
			credp = &cred;
		}
	}
	if (W.passcred && !credp)
		fail("no SCM_CREDENTIALS with SO_PASSCRED");
	stream_check((struct pay *)buf, n, nfds, fds, credp, -1);
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	return 1;
}

/* Hands a frame back, and polls when a sender waits for it (bus.h). */
static void ring_hand_back(int fd, struct bus_frame_hdr *f)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (bus_frame_release(f))
		poll(&p, 1, 0);
}

/*
 * Consumes the ring frames ready, and at each BUS_FRAME_F_QUEUED frame
 * the message waiting in the queue at that place of the order.  Returns
 * how many, or -1 when the bus is gone.
 */
static int rx_ring(void)
{
	int got = 0, r;

	for (;;) {
		struct bus_frame_hdr *f = (void *)(W.ring + (size_t)W.ring_next * FRAME_SIZE);
		struct ucred cred;

		if (__atomic_load_n(&f->status, __ATOMIC_ACQUIRE) != BUS_FRAME_USER)
			return got;
		if (f->flags & BUS_FRAME_F_QUEUED) {
			ring_hand_back(W.fd, f);
			W.ring_next = (W.ring_next + 1) % W.ring_nr;
			got++;
			/* An ENOBUFS may come before the message. */
			while ((r = rx_queue_one()) == 2)
				;
			if (r < 0)
				return -1;
			if (r == 0)
				fail("a queued frame but no message in the queue");
			continue;
		}
		if (!(f->flags & BUS_FRAME_F_DISCARDED)) {
			if (f->data_offset + f->len > FRAME_SIZE)
				fail("frame of %u bytes at %u", f->len, f->data_offset);
			cred.pid = f->pid;
			cred.uid = f->uid;
			cred.gid = f->gid;
			stream_check((struct pay *)((char *)f + f->data_offset), f->len, 0, NULL,
				     &cred, !!(f->flags & BUS_FRAME_F_MULTICAST));
			ST_ADD(ring_frames, 1);
		}
		ring_hand_back(W.fd, f);
		W.ring_next = (W.ring_next + 1) % W.ring_nr;
		got++;
	}
}

/* Everything queued now.  Returns -1 when the bus is gone. */
static int rx_drain(void)
{
	int r, got;

	do {
		/* With a ring, the queue is read at its frames' marks only. */
		if (W.ring) {
			got = rx_ring();
			if (got < 0)
				return -1;
			continue;
		}
		got = 0;
		while ((r = rx_queue_one()) > 0)
			got++;
		if (r < 0)
			return -1;
	} while (got);
	return 0;
}

/*
 * Everything is drained and every sender stopped: from each sender whose
 * messages reached this incarnation, the last one it had accepted for us
 * must have arrived (no message lost at the tail of a stream).
 */
static void tail_check(void)
{
	int j;

	for (j = 0; j < g_workers; j++) {
		if (j == my_slot)
			continue;
		if (W.us[j].valid && W.us[j].inc == shm->final_inc[j] &&
		    W.us[j].last != shm->final_useq[j][my_slot])
			fail("unicast from slot %d lost at the tail: last %llu, sent %llu", j,
			     (unsigned long long)W.us[j].last,
			     (unsigned long long)shm->final_useq[j][my_slot]);
		if (W.fs[j].valid && W.fs[j].inc == shm->final_inc[j] &&
		    W.fs[j].last != shm->final_fseq[j][my_slot])
			fail("unicast with a file from slot %d lost at the tail: last %llu, sent %llu",
			     j, (unsigned long long)W.fs[j].last,
			     (unsigned long long)shm->final_fseq[j][my_slot]);
	}
}

static void wait_phase_leave(int ph)
{
	while (shm->phase == ph && !shm->failed)
		msleep(5);
}

static void *rx_thread(void *arg)
{
	struct pollfd pf = { W.fd, POLLIN, 0 };
	uint64_t expect, flagged;
	uint32_t d;
	int j;

	for (;;) {
		if (shm->failed || W.bus_gone)
			return NULL;
		switch (shm->phase) {
		case PH_DRAIN:
			if (rx_drain() < 0)
				goto gone;
			tail_check();
			W.drops0 = drops_of(W.fd);
			W.burst_recv = 0;
			__atomic_fetch_add(&shm->drained, 1, __ATOMIC_SEQ_CST);
			wait_phase_leave(PH_DRAIN);
			wait_phase_leave(PH_BURST);
			continue;
		case PH_COUNT:
			if (rx_drain() < 0)
				goto gone;
			d = drops_of(W.fd);
			expect = flagged = 0;
			for (j = 0; j < NSRC; j++) {
				if (j == my_slot)
					continue;
				expect += shm->burst_k[j];
				flagged += shm->burst_flagged[j];
			}
			if (!W.filter)
				flagged = 0;
			if (W.burst_recv + flagged + (d - W.drops0) != expect)
				fail("burst: received %llu + filtered %llu + dropped %u != sent %llu",
				     (unsigned long long)W.burst_recv,
				     (unsigned long long)flagged, d - W.drops0,
				     (unsigned long long)expect);
			ST_ADD(filtered, flagged);
			ST_ADD(bursts, 1);
			__atomic_fetch_add(&shm->counted, 1, __ATOMIC_SEQ_CST);
			wait_phase_leave(PH_COUNT);
			continue;
		case PH_STOP:
			if (rx_drain() < 0)
				goto gone;
			return NULL;
		case PH_BURST:
			msleep(5);
			continue;
		default:
			break;
		}
		poll(&pf, 1, 50);
		if (rx_drain() < 0)
			goto gone;
	}
gone:
	W.bus_gone = 1;
	return NULL;
}

static int pick_peer(struct rng *r)
{
	int k, tries;

	for (tries = 0; tries < 8; tries++) {
		k = rn(r, g_workers);
		if (k != my_slot && shm->alive[k])
			return k;
	}
	return -1;
}

/* sendmsg errors a worker may see while peers die and addresses move. */
static void tx_err(const char *what)
{
	if (errno == ECONNRESET) {
		W.bus_gone = 1;
		return;
	}
	if (errno == EAGAIN) {
		ST_ADD(eagain, 1);
		return;
	}
	if (errno == EHOSTUNREACH) {
		ST_ADD(unreach, 1);
		return;
	}
	fail("%s: %s", what, strerror(errno));
}

static void tx_unicast(struct rng *r, int with_fd)
{
	char buf[sizeof(struct pay) + MAX_FILL];
	char ctl[CMSG_SPACE(sizeof(int))];
	struct pay *p = (struct pay *)buf;
	struct sockaddr_bus dst;
	struct cmsghdr *c = (struct cmsghdr *)ctl;
	char name[4];
	int k = pick_peer(r), mfd = -1, flags = rn(r, 4) ? MSG_DONTWAIT : 0;
	uint64_t *seq = with_fd ? W.fseq : W.useq;
	size_t len;

	if (k < 0)
		return;
	memset(p, 0, sizeof(*p));
	p->kind = with_fd ? 'F' : 'U';
	p->src = my_slot;
	p->dst = k;
	p->inc = my_inc;
	p->seq = seq[k] + 1;
	len = sizeof(*p) + rn(r, MAX_FILL);
	fill_pay(p, len);
	slot_name(name, rn(r, 5) ? 'w' : 'x', k);
	dst = on_bus(name);
	if (with_fd) {
		mfd = memfd_create("stress", MFD_ALLOW_SEALING);
		if (mfd < 0 || pwrite(mfd, &p->seq, sizeof(p->seq), 0) != sizeof(p->seq) ||
		    fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE))
			fail("memfd: %s", strerror(errno));
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &mfd, sizeof(int));
	}
	if (send_pay(W.fd, &dst, p, len, ctl, with_fd ? sizeof(ctl) : 0, flags) >= 0) {
		seq[k]++;
		if (with_fd)
			ST_ADD(fds_sent, 1);
		else
			ST_ADD(sent, 1);
	} else {
		tx_err(with_fd ? "unicast with a file" : "unicast");
	}
	if (mfd >= 0)
		close(mfd);
}

static void tx_mcast(struct rng *r, uint64_t bits, int kind)
{
	char buf[sizeof(struct pay) + MAX_FILL];
	struct pay *p = (struct pay *)buf;
	struct sockaddr_bus m;
	size_t len;
	int j;

	memset(p, 0, sizeof(*p));
	p->kind = kind;
	p->src = my_slot;
	p->inc = my_inc;
	p->filt = rn(r, 4) == 0;
	if (kind == 'M') {
		for (j = 0; j < MAXW; j++)
			if (bits >> j & 1) {
				W.mcnt[j]++;
				W.fcnt[j] += p->filt;
			}
		W.mcnt[MSLOT]++;
		W.fcnt[MSLOT] += p->filt;
		memcpy(p->mcnt, W.mcnt, sizeof(W.mcnt));
		memcpy(p->fcnt, W.fcnt, sizeof(W.fcnt));
		p->seq = W.mcnt[MSLOT];
	}
	len = sizeof(*p) + rn(r, MAX_FILL);
	fill_pay(p, len);
	m = mcast(bits);
	if (send_pay(W.fd, &m, p, len, NULL, 0, rn(r, 2) ? MSG_DONTWAIT : 0) >= 0) {
		ST_ADD(msent, 1);
		if (kind == 'B') {
			shm->burst_k[my_slot]++;
			shm->burst_flagged[my_slot] += p->filt;
		}
		return;
	}
	if (kind == 'M') {
		/* Not sent: roll the counters back. */
		for (j = 0; j < MAXW; j++)
			if (bits >> j & 1) {
				W.mcnt[j]--;
				W.fcnt[j] -= p->filt;
			}
		W.mcnt[MSLOT]--;
		W.fcnt[MSLOT] -= p->filt;
	}
	if (errno == ECONNRESET) {
		W.bus_gone = 1;
		return;
	}
	fail("multicast %c: %s", kind, strerror(errno));
}

/* Checks of errnos that must be exact whatever else happens. */
static void tx_probe(struct rng *r)
{
	struct sockaddr_bus a, list[8];
	socklen_t l = sizeof(list);
	struct pollfd pf = { W.fd, POLLOUT, 0 };
	char c = 0, name[4];
	int sv[2], x;

	switch (rn(r, 5)) {
	case 0:
		if (getsockopt(W.fd, SOL_BUS, BUS_ADDRS, list, &l)) {
			if (errno == ECONNRESET) {
				W.bus_gone = 1;
				return;
			}
			fail("BUS_ADDRS: %s", strerror(errno));
		}
		if (l < 2 * sizeof(list[0]) || ((char *)list[0].sbus_addr)[0] != ':')
			fail("BUS_ADDRS: %u bytes, first not a handle", l);
		slot_name(name, 'w', my_slot);
		if (strcmp((char *)list[1].sbus_addr, name))
			fail("BUS_ADDRS: second address %s, want %s", (char *)list[1].sbus_addr,
			     name);
		l = sizeof(a);
		memset(&a, 0, sizeof(a));
		if (getsockname(W.fd, (void *)&a, &l)) {
			if (errno == ECONNRESET) {
				W.bus_gone = 1;
				return;
			}
			fail("getsockname: %s", strerror(errno));
		}
		if (l != sizeof(a) || a.sbus_addr_ncomp != 1 || strcmp((char *)a.sbus_addr, name)) {
			/* A dead bus's sockets have no address any more. */
			if (shm->master_dead) {
				W.bus_gone = 1;
				return;
			}
			fail("getsockname: %u bytes, ncomp %u, \"%.8s\", want %s", l,
			     a.sbus_addr_ncomp, (char *)a.sbus_addr, name);
		}
		return;
	case 1:
		a = on_bus("nobody");
		if (sendto(W.fd, &c, 1, MSG_DONTWAIT, (void *)&a, sizeof(a)) != -1)
			fail("send to nobody succeeded");
		if (errno == ECONNRESET) {
			W.bus_gone = 1;
			return;
		}
		if (errno != EHOSTUNREACH)
			fail("send to nobody: %s, want EHOSTUNREACH", strerror(errno));
		return;
	case 2:
		a = on_bus("k");
		a.sbus_addr_ncomp = 0;
		if (sendto(W.fd, &c, 1, MSG_DONTWAIT, (void *)&a, sizeof(a)) != -1 ||
		    (errno != EINVAL && errno != ECONNRESET))
			fail("send to the kernel address: %s, want EINVAL", strerror(errno));
		return;
	case 3:
		/* AF_UNIX and AF_BUS sockets cannot travel. */
		if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv))
			fail("socketpair: %s", strerror(errno));
		{
			char ctl[CMSG_SPACE(sizeof(int))];
			struct cmsghdr *cm = (struct cmsghdr *)ctl;
			struct iovec iov = { &c, 1 };
			struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
					    .msg_control = ctl, .msg_controllen = sizeof(ctl) };

			a = on_bus("master");
			m.msg_name = &a;
			m.msg_namelen = sizeof(a);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			x = rn(r, 2) ? sv[0] : W.fd;
			memcpy(CMSG_DATA(cm), &x, sizeof(int));
			if (sendmsg(W.fd, &m, MSG_DONTWAIT) != -1 ||
			    (errno != EOPNOTSUPP && errno != ECONNRESET))
				fail("passing a socket: %s, want EOPNOTSUPP", strerror(errno));
		}
		close(sv[0]);
		close(sv[1]);
		return;
	default:
		/*
		 * An endpoint's POLLOUT follows the room at its master: it is
		 * absent while the master's queue is full, so not judged here.
		 */
		if (poll(&pf, 1, 0) < 0)
			fail("poll: %s", strerror(errno));
		if (pf.revents & POLLNVAL)
			fail("poll: POLLNVAL on a live socket (revents %#x)", pf.revents);
		return;
	}
}

static void *chaos_thread(void *arg)
{
	struct rng r;
	struct pay p;
	struct sockaddr_bus a;
	char name[4];
	int fd, err;

	rng_init(&r, shm->epoch, my_slot, my_inc * 2 + 1);
	while (shm->phase == PH_CHAOS && !W.bus_gone && !shm->failed) {
		struct bus_ring_req req;
		void *map = MAP_FAILED;
		size_t sz = 0;

		ST_ADD(chaos_ops, 1);
		fd = socket(AF_BUS, SOCK_DGRAM, 0);
		if (fd < 0)
			fail("socket: %s", strerror(errno));
		if (rn(&r, 2)) {
			/* A ring, valid or not. */
			req.frame_size = rn(&r, 2) ? 4096 : 16 * rn(&r, 300);
			req.frame_nr = rn(&r, 3) ? 1u << rn(&r, 5) : rn(&r, 100);
			err = setsockopt(fd, SOL_BUS, BUS_RX_RING, &req, sizeof(req)) ? errno : 0;
			if (err && err != EINVAL)
				fail("BUS_RX_RING %u x %u: %s", req.frame_size, req.frame_nr,
				     strerror(err));
			if (!err && req.frame_nr) {
				sz = (size_t)req.frame_size * req.frame_nr;
				size_t len = sz + (rn(&r, 4) ? 0 : 4096);

				map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
				if (map == MAP_FAILED && errno != EINVAL)
					fail("mmap ring: %s", strerror(errno));
			}
		}
		if (rn(&r, 3) == 0 && attach_filter(fd))
			fail("SO_ATTACH_FILTER: %s", strerror(errno));
		/* An unattached socket may only reach a master. */
		slot_name(name, 'w', rn(&r, g_workers));
		a = on_bus(name);
		if ((sendto(fd, "x", 1, MSG_DONTWAIT, (void *)&a, sizeof(a)) != -1 ||
		     errno != EACCES) && !shm->master_dead)
			fail("unattached send to %s: %s, want EACCES", name, strerror(errno));
		if (rn(&r, 2)) {
			memset(&p, 0, sizeof(p));
			p.kind = 'C';
			p.src = my_slot;
			p.inc = my_inc;
			fill_pay(&p, sizeof(p));
			a = on_bus("master");
			if (send_pay(fd, &a, &p, sizeof(p), NULL, 0, MSG_DONTWAIT) < 0 &&
			    errno != EAGAIN && !shm->master_dead)
				fail("pending hello: %s", strerror(errno));
			/* Pending: only the master is reachable. */
			a = on_bus(name);
			if ((sendto(fd, "x", 1, MSG_DONTWAIT, (void *)&a, sizeof(a)) != -1 ||
			     errno != EACCES) && !shm->master_dead)
				fail("pending send to %s: %s, want EACCES", name, strerror(errno));
			{
				uint32_t pol = 0;

				if ((setsockopt(fd, SOL_BUS, BUS_POLICY, &pol, sizeof(pol)) != -1 ||
				     errno != EPERM) && !shm->master_dead)
					fail("BUS_POLICY by an endpoint: %s, want EPERM",
					     strerror(errno));
			}
		} else if (rn(&r, 4) == 0) {
			/* The bus name is taken. */
			a = on_bus("other");
			err = bind(fd, (void *)&a, sizeof(a)) ? errno : 0;
			/* Once the master is dead, the name is free again. */
			if (err != EADDRINUSE && !shm->master_dead)
				fail("second bind: %s, want EADDRINUSE",
				     err ? strerror(err) : "success");
		}
		close(fd);
		if (map != MAP_FAILED) {
			/* The mapping outlives the socket. */
			(void)((volatile char *)map)[0];
			munmap(map, sz);
		}
		msleep(rn(&r, 20));
	}
	return NULL;
}

static void worker_main(int slot)
{
	struct timeval tv = { 0, 20000 };
	pthread_t rx, chaos;
	struct rng r;
	struct pay p;
	struct sockaddr_bus m;
	char buf[2048];
	int one = 1, rcvbuf, chaos_started = 0, op;
	uint32_t d;

	my_role = "worker";
	my_slot = slot;
	my_inc = shm->inc[slot];
	rng_init(&r, shm->epoch, slot, my_inc * 2);
	if (setgid(1000 + slot) || setuid(1000 + slot))
		fail("setuid: %s", strerror(errno));
	memset(&W, 0, sizeof(W));
	W.use_ring = rn(&r, 3) == 0;
	W.filter = rn(&r, 3) == 0;
	W.monitor = slot == 0 && rn(&r, 2);
	W.passcred = rn(&r, 2);
	W.no_enobufs = rn(&r, 2);
	W.fd = socket(AF_BUS, SOCK_DGRAM, 0);
	if (W.fd < 0)
		fail("socket: %s", strerror(errno));
	if (rn(&r, 3) == 0) {
		rcvbuf = 8192 + rn(&r, 32768);
		setsockopt(W.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	}
	if (W.passcred)
		setsockopt(W.fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	if (W.no_enobufs &&
	    setsockopt(W.fd, SOL_BUS, BUS_NO_ENOBUFS, &one, sizeof(one)))
		fail("BUS_NO_ENOBUFS: %s", strerror(errno));
	setsockopt(W.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (W.filter && attach_filter(W.fd))
		fail("SO_ATTACH_FILTER: %s", strerror(errno));
	if (W.use_ring) {
		struct bus_ring_req req = { FRAME_SIZE, 8u << rn(&r, 3) };

		if (setsockopt(W.fd, SOL_BUS, BUS_RX_RING, &req, sizeof(req)))
			fail("BUS_RX_RING: %s", strerror(errno));
		W.ring = mmap(NULL, (size_t)FRAME_SIZE * req.frame_nr, PROT_READ | PROT_WRITE,
			      MAP_SHARED, W.fd, 0);
		if (W.ring == MAP_FAILED)
			fail("mmap: %s", strerror(errno));
		W.ring_nr = req.frame_nr;
	}

	/* Join: hello to the master, whose reply carries the grants. */
	memset(&p, 0, sizeof(p));
	p.kind = 'H';
	p.src = slot;
	p.inc = my_inc;
	p.monitor = W.monitor;
	fill_pay(&p, sizeof(p));
	m = on_bus("master");
	while (send_pay(W.fd, &m, &p, sizeof(p), NULL, 0, 0) < 0) {
		if (errno == ECONNRESET || errno == ECONNREFUSED)
			_exit(0);
		/* A dead master's name may be taken by a chaos socket's bus. */
		if (shm->master_dead)
			_exit(0);
		if (errno != EAGAIN)
			fail("hello: %s", strerror(errno));
		if (shm->phase == PH_STOP)
			_exit(0);
	}
	tv.tv_usec = 100000;
	setsockopt(W.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (;;) {
		ssize_t n = recv(W.fd, buf, sizeof(buf), 0);

		if (n >= (ssize_t)sizeof(p) && ((struct pay *)buf)->kind == 'G')
			break;
		if (n >= 0)
			fail("join: unexpected message of %zd bytes", n);
		if (errno == ECONNRESET) {
			bus_gone_check(W.fd);
			_exit(0);
		}
		/*
		 * The match grant applies when the reply is queued: multicast
		 * may overrun the queue before the reply is read.
		 */
		if (errno == ENOBUFS && !W.no_enobufs) {
			ST_ADD(enobufs, 1);
			continue;
		}
		if (errno != EAGAIN)
			fail("join reply: %s", strerror(errno));
		if (shm->phase == PH_STOP || shm->failed)
			_exit(0);
	}
	if (W.ring) {
		/* The reply's place in the ring: the first frame. */
		struct bus_frame_hdr *f = (void *)W.ring;

		if (__atomic_load_n(&f->status, __ATOMIC_ACQUIRE) != BUS_FRAME_USER ||
		    !(f->flags & BUS_FRAME_F_QUEUED))
			fail("join: no queued frame for the reply in the ring");
		__atomic_store_n(&f->status, BUS_FRAME_KERNEL, __ATOMIC_RELEASE);
		W.ring_next = 1 % W.ring_nr;
	}
	shm->joined[slot] = 1;
	if (pthread_create(&rx, NULL, rx_thread, NULL))
		fail("pthread_create");
	if (shm->phase == PH_CHAOS) {
		if (pthread_create(&chaos, NULL, chaos_thread, NULL))
			fail("pthread_create");
		chaos_started = 1;
	}

	while (!W.bus_gone && !shm->failed) {
		switch (shm->phase) {
		case PH_CHAOS:
			op = rn(&r, 100);
			if (op < 45)
				tx_unicast(&r, 0);
			else if (op < 55)
				tx_unicast(&r, 1);
			else if (op < 75) {
				uint64_t bits = 0;

				while (!bits)
					bits = rnd(&r) & ((1ull << g_workers) - 1);
				tx_mcast(&r, bits, 'M');
			} else if (op < 82) {
				memset(&p, 0, sizeof(p));
				p.kind = 'T';
				p.src = slot;
				p.inc = my_inc;
				fill_pay(&p, sizeof(p));
				if (send_pay(W.fd, &m, &p, sizeof(p), NULL, 0, MSG_DONTWAIT) < 0 &&
				    errno != EAGAIN) {
					if (errno != ECONNRESET)
						fail("toggle request: %s", strerror(errno));
					W.bus_gone = 1;
				}
			} else {
				tx_probe(&r);
			}
			continue;
		case PH_QUIESCE:
			if (chaos_started)
				pthread_join(chaos, NULL);
			chaos_started = 0;
			memcpy(shm->final_useq[slot], W.useq, sizeof(W.useq));
			memcpy(shm->final_fseq[slot], W.fseq, sizeof(W.fseq));
			shm->final_inc[slot] = my_inc;
			__atomic_fetch_add(&shm->tx_stopped, 1, __ATOMIC_SEQ_CST);
			wait_phase_leave(PH_QUIESCE);
			wait_phase_leave(PH_DRAIN);
			if (shm->phase == PH_BURST) {
				unsigned int k = 50 + rn(&r, 250);

				while (k-- && !W.bus_gone)
					tx_mcast(&r, (1ull << g_workers) - 1, 'B');
				__atomic_fetch_add(&shm->burst_done, 1, __ATOMIC_SEQ_CST);
			}
			continue;
		case PH_STOP:
			goto out;
		default:
			msleep(5);
			continue;
		}
	}
out:
	if (chaos_started)
		pthread_join(chaos, NULL);
	pthread_join(rx, NULL);
	if (shm->failed)
		_exit(1);
	if (W.bus_gone) {
		bus_gone_check(W.fd);
		_exit(0);
	}
	d = drops_of(W.fd);
	if (W.gaps > d)
		fail("%llu multicast copies missing but only %u dropped",
		     (unsigned long long)W.gaps, d);
	ST_ADD(dropped, d);
	close(W.fd);
	_exit(0);
}

/* ---------------------------------------------------------------- */
/* The attacks                                                       */

/*
 * One more process, beside the epochs, runs the operations that found
 * the hardening bugs of issue 17, round after round, each round on buses
 * of its own:
 *
 *  peek    MSG_PEEK racing plain receives on one socket while its master
 *          sends messages carrying up to 200 SCM_RIGHTS files: every file
 *          received is the one sent and is closed, the plain reader gets
 *          each message exactly once and in order, and no descriptor is
 *          left over;
 *  bind    bind, sendto and close racing on one socket from three
 *          threads, to buses on paths in one directory (names that exist
 *          and names that do not, so that the walk takes the directory's
 *          lock) and to abstract ones: only documented errnos, no hang;
 *  stall   sends whose buffer is a userfaultfd page, resolved 10-200 ms
 *          later by a resolver thread, to a receiver with a ring and to
 *          one without, while another sender sends small messages: each
 *          arrives exactly once, in order, intact; once a round the stall
 *          lasts a second, and the other sender's messages must reach
 *          the ring receiver meanwhile (a stalled copy must not hide
 *          later frames);
 *  revoke  the master moves two addresses between two members (revoke,
 *          then grant) while two members send to them: nothing is lost
 *          or duplicated, and a member never receives a message for an
 *          address after reading its revoke (or before reading its grant).
 *
 * A round in which no operation completes for 10 s is a hang: the
 * process fails with the operations its threads are in (a kernel in D
 * state also panics on its own after 30 s, with stacks).
 */
#define ATK_DIR		"/tmp/afbus-atk"
#define ATK_MAGIC	0x41544b21u	/* "ATK!" */
#define ATK_FDS_MAX	200
#define ATK_SEQ_MAX	(1u << 18)

enum { ATK_PEEK, ATK_BIND, ATK_STALL, ATK_REVOKE, ATK_KINDS };
static const char *const atk_names[ATK_KINDS] = { "peek", "bind", "stall", "revoke" };

struct atk_pay {
	uint32_t magic;
	uint8_t kind;		/* 'P'eek 'S'tall 'R'evoke traffic, 'O'wned 'V' revoke */
	uint8_t src;
	uint8_t dst;		/* which moving address / receiver */
	uint8_t nfds;
	uint64_t seq;
	uint64_t t_ns;		/* stall: when it was sent */
	uint32_t fill;
	uint32_t pad;
};

static volatile int atk_stop_round;
static volatile unsigned long atk_progress;
static const char *volatile atk_op[8];
static int atk_kind;
static unsigned int atk_round;
static volatile double atk_round_until;
static unsigned int atk_mask = (1u << ATK_KINDS) - 1;	/* -a */

#define ATK_STEP(i, what) do { atk_op[i] = (what); \
	__atomic_fetch_add(&atk_progress, 1, __ATOMIC_RELAXED); } while (0)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void atk_fill(struct atk_pay *p, size_t len)
{
	unsigned char *b = (unsigned char *)(p + 1);
	size_t i;

	p->magic = ATK_MAGIC;
	p->fill = len - sizeof(*p);
	for (i = 0; i < p->fill; i++)
		b[i] = (unsigned char)(p->seq * 7 + p->src + i);
}

static int atk_check(const struct atk_pay *p, size_t len)
{
	const unsigned char *b = (const unsigned char *)(p + 1);
	size_t i;

	if (len < sizeof(*p) || p->magic != ATK_MAGIC || p->fill != len - sizeof(*p))
		return -1;
	for (i = 0; i < p->fill; i++)
		if (b[i] != (unsigned char)(p->seq * 7 + p->src + i))
			return -1;
	return 0;
}

/* The address @name on the bus @bus (abstract when it starts with '@'). */
static struct sockaddr_bus atk_addr(const char *bus, const char *name)
{
	struct sockaddr_bus a;
	size_t len = strlen(name) + 1;

	memset(&a, 0, sizeof(a));
	a.sbus_family = AF_BUS;
	if (bus[0] == '@')
		snprintf(a.sbus_path + 1, BUS_PATH_MAX - 2, "%s", bus + 1);
	else
		snprintf(a.sbus_path, BUS_PATH_MAX - 1, "%s", bus);
	memcpy(a.sbus_addr, name, len);
	a.sbus_addr_ncomp = (len + 7) / 8;
	return a;
}

static void atk_timeouts(int fd, int rcv_ms, int snd_ms)
{
	struct timeval r = { rcv_ms / 1000, (rcv_ms % 1000) * 1000 };
	struct timeval s = { snd_ms / 1000, (snd_ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &r, sizeof(r));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &s, sizeof(s));
}

/* A master of a fresh bus @bus. */
static int atk_master(const char *bus)
{
	struct sockaddr_bus a = atk_addr(bus, "m");
	int fd = socket(AF_BUS, SOCK_DGRAM, 0);

	if (fd < 0)
		fail("attack socket: %s", strerror(errno));
	if (bus[0] != '@')
		unlink(bus);
	if (bind(fd, (void *)&a, sizeof(a)))
		fail("attack bind %s: %s", bus, strerror(errno));
	atk_timeouts(fd, 1000, 1000);
	return fd;
}

/*
 * A new member of @bus (master @m) owning @name; with @ring_nr frames of
 * FRAME_SIZE, mapped at *@ring.
 */
static int atk_join(int m, const char *bus, const char *name, unsigned int ring_nr,
		    char **ring)
{
	struct sockaddr_bus ma = atk_addr(bus, "m"), h, g = atk_addr(bus, name);
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))], buf[256];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_name = &h, .msg_namelen = sizeof(h),
			     .msg_iov = &iov, .msg_iovlen = 1 };
	size_t off = 0;
	int fd = socket(AF_BUS, SOCK_DGRAM, 0);

	if (fd < 0)
		fail("attack socket: %s", strerror(errno));
	atk_timeouts(fd, 1000, 1000);
	if (ring_nr) {
		struct bus_ring_req req = { FRAME_SIZE, ring_nr };

		if (setsockopt(fd, SOL_BUS, BUS_RX_RING, &req, sizeof(req)))
			fail("attack BUS_RX_RING: %s", strerror(errno));
		*ring = mmap(NULL, (size_t)FRAME_SIZE * ring_nr, PROT_READ | PROT_WRITE,
			     MAP_SHARED, fd, 0);
		if (*ring == MAP_FAILED)
			fail("attack ring mmap: %s", strerror(errno));
	}
	if (sendto(fd, "hello", 5, 0, (void *)&ma, sizeof(ma)) != 5)
		fail("attack hello to %s: %s", bus, strerror(errno));
	for (;;) {
		ssize_t n = recvmsg(m, &mh, 0);

		if (n < 0)
			fail("attack master recvmsg: %s", strerror(errno));
		if (h.sbus_addr_ncomp && n == 5)
			break;		/* a GONE of an earlier socket otherwise */
		mh.msg_namelen = sizeof(h);
	}
	cmsg_add(ctl, &off, SCM_OWNED_ADDR, &g);
	iov.iov_len = 1;
	mh.msg_control = ctl;
	mh.msg_controllen = off;
	if (sendmsg(m, &mh, MSG_NOSIGNAL) != 1)
		fail("attack grant of %s: %s", name, strerror(errno));
	if (recv(fd, buf, sizeof(buf), 0) != 1)
		fail("attack join reply for %s: %s", name, strerror(errno));
	return fd;
}

static int count_fds(void)
{
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;	/* the directory's own */
}

/* ---- peek ---- */

struct peek {
	int m, e, memfd;
	ino_t ino;
	struct sockaddr_bus dst;
	volatile int sender_done;
	volatile uint64_t sent, last;	/* last: the plain reader's */
	double until;
	struct rng r;
};

/* Closes the files of @h, checking each is the memfd.  Returns how many. */
static int peek_files(struct peek *pk, struct msghdr *h, const char *who)
{
	struct cmsghdr *c;
	int n = 0, j, f;
	struct stat st;

	for (c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (j = 0; j < (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)); j++) {
			memcpy(&f, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
			if (fstat(f, &st) || st.st_ino != pk->ino)
				fail("peek round: the %s got descriptor %d that is not the file "
				     "sent (%s, inode %lu, want %lu)", who, f,
				     strerror(errno), (unsigned long)st.st_ino,
				     (unsigned long)pk->ino);
			close(f);
			n++;
		}
	}
	return n;
}

static void *peek_sender(void *arg)
{
	struct peek *pk = arg;
	static char ctl[CMSG_SPACE(ATK_FDS_MAX * sizeof(int))];
	struct atk_pay p;
	struct iovec iov = { &p, sizeof(p) };
	struct msghdr h = { .msg_name = &pk->dst, .msg_namelen = sizeof(pk->dst),
			    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl };
	struct cmsghdr *c = (struct cmsghdr *)ctl;
	int i, k;

	while (now() < pk->until && !shm->failed) {
		ATK_STEP(0, "peek: send with files");
		memset(&p, 0, sizeof(p));
		p.kind = 'P';
		p.seq = pk->sent + 1;
		k = 1 + rn(&pk->r, ATK_FDS_MAX);
		p.nfds = k;
		atk_fill(&p, sizeof(p));
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(k * sizeof(int));
		for (i = 0; i < k; i++)
			memcpy(CMSG_DATA(c) + i * sizeof(int), &pk->memfd, sizeof(int));
		h.msg_controllen = CMSG_SPACE(k * sizeof(int));
		if (sendmsg(pk->m, &h, MSG_DONTWAIT | MSG_NOSIGNAL) == sizeof(p)) {
			pk->sent++;
			continue;
		}
		/* A full queue, or too many files in flight for the user. */
		if (errno != EAGAIN && errno != ETOOMANYREFS)
			fail("peek round: send with %d files: %s", k, strerror(errno));
		msleep(1);
	}
	pk->sender_done = 1;
	return NULL;
}

static void *peek_reader(void *arg)
{
	struct peek *pk = arg;
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus)) + CMSG_SPACE(sizeof(int))];
	struct atk_pay p;
	double idle = 0;

	for (;;) {
		struct iovec iov = { &p, sizeof(p) };
		struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = ctl, .msg_controllen = sizeof(ctl) };
		ssize_t n;
		int got;

		if (shm->failed)
			return NULL;
		if (pk->sender_done && pk->last == pk->sent)
			return NULL;
		ATK_STEP(1, "peek: plain receive (room for one file)");
		n = recvmsg(pk->e, &h, 0);
		if (n < 0) {
			if (errno != EAGAIN)
				fail("peek round: plain recvmsg: %s", strerror(errno));
			if (!pk->sender_done)
				continue;
			if (!idle)
				idle = now();
			if (now() - idle > 5)
				fail("peek round: %llu of %llu messages received, then nothing "
				     "for 5 s", (unsigned long long)pk->last,
				     (unsigned long long)pk->sent);
			continue;
		}
		idle = 0;
		if (atk_check(&p, n) || p.kind != 'P')
			fail("peek round: corrupt message (%zd bytes, kind %c)", n, p.kind);
		if (p.seq != pk->last + 1)
			fail("peek round: plain receive got message %llu after %llu (%s)",
			     (unsigned long long)p.seq, (unsigned long long)pk->last,
			     p.seq <= pk->last ? "twice" : "lost");
		got = peek_files(pk, &h, "plain reader");
		if (got > p.nfds || (got < p.nfds && !(h.msg_flags & MSG_CTRUNC)))
			fail("peek round: %d of %d files, msg_flags %#x", got, p.nfds,
			     h.msg_flags);
		__atomic_store_n(&pk->last, p.seq, __ATOMIC_SEQ_CST);
		ST_ADD(atk_peek_msgs, 1);
	}
}

static void *peek_peeker(void *arg)
{
	struct peek *pk = arg;
	static char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus)) +
			CMSG_SPACE(sizeof(struct ucred)) +
			CMSG_SPACE(ATK_FDS_MAX * sizeof(int))];
	struct atk_pay p;

	while (!shm->failed && !(pk->sender_done && pk->last == pk->sent)) {
		struct iovec iov = { &p, sizeof(p) };
		struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = ctl, .msg_controllen = sizeof(ctl) };
		uint64_t before = __atomic_load_n(&pk->last, __ATOMIC_SEQ_CST);
		ssize_t n;
		int got;

		ATK_STEP(2, "peek: MSG_PEEK");
		n = recvmsg(pk->e, &h, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0) {
			if (errno != EAGAIN)
				fail("peek round: MSG_PEEK: %s", strerror(errno));
			sched_yield();
			continue;
		}
		got = peek_files(pk, &h, "peeker");
		if (atk_check(&p, n) || p.kind != 'P')
			fail("peek round: corrupt peeked message (%zd bytes)", n);
		/* A message read before the peek began cannot be peeked. */
		if (p.seq <= before)
			fail("peek round: peeked message %llu, already received (reader at %llu)",
			     (unsigned long long)p.seq, (unsigned long long)before);
		if (got != p.nfds && !(h.msg_flags & MSG_CTRUNC))
			fail("peek round: peeked message %llu came with %d of its %d files and "
			     "no MSG_CTRUNC (did a plain receive take them meanwhile?)",
			     (unsigned long long)p.seq, got, p.nfds);
		ST_ADD(atk_peeks, 1);
		ST_ADD(atk_peek_fds, got);
	}
	return NULL;
}

static void atk_peek(struct rng *r, double until)
{
	struct peek pk;
	pthread_t th[3];
	char bus[64];
	struct stat st;
	int before, after;

	memset(&pk, 0, sizeof(pk));
	pk.r = *r;
	rnd(r);
	pk.until = until;
	snprintf(bus, sizeof(bus), "@afbus-atk-p%u", atk_round);
	pk.m = atk_master(bus);
	pk.e = atk_join(pk.m, bus, "e", 0, NULL);
	atk_timeouts(pk.e, 50, 1000);
	pk.dst = atk_addr(bus, "e");
	pk.memfd = memfd_create("atk-peek", 0);
	if (pk.memfd < 0 || fstat(pk.memfd, &st))
		fail("memfd: %s", strerror(errno));
	pk.ino = st.st_ino;
	before = count_fds();
	if (pthread_create(&th[0], NULL, peek_sender, &pk) ||
	    pthread_create(&th[1], NULL, peek_reader, &pk) ||
	    pthread_create(&th[2], NULL, peek_peeker, &pk))
		fail("pthread_create");
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	pthread_join(th[2], NULL);
	if (shm->failed)
		_exit(1);
	after = count_fds();
	if (after != before)
		fail("peek round: %d descriptors open after the race, %d before", after, before);
	close(pk.e);
	close(pk.m);
	close(pk.memfd);
}

/* ---- bind ---- */

struct bindrace {
	double until;
	int idx;
	struct rng r;
};

static volatile int bind_fd;

static void bind_target(struct rng *r, char *bus, size_t len)
{
	switch (rn(r, 6)) {
	case 0:
		snprintf(bus, len, ATK_DIR "/m0");		/* a live master */
		break;
	case 1:
		snprintf(bus, len, ATK_DIR "/n%u", rn(r, 4));	/* raced over */
		break;
	case 2:
		snprintf(bus, len, ATK_DIR "/x%u", rn(r, 64));	/* never there */
		break;
	case 3:
		snprintf(bus, len, "@afbus-atk-m0-%u", atk_round);
		break;
	default:
		snprintf(bus, len, "@afbus-atk-n%u-%u", atk_round, rn(r, 4));
		break;
	}
}

static void *bind_racer(void *arg)
{
	struct bindrace *b = arg;
	struct sockaddr_bus a;
	char bus[64], path[64];
	int fd, nfd, op;
	long rc;

	while (now() < b->until && !shm->failed) {
		fd = bind_fd;
		op = rn(&b->r, 10);
		if (op < 4) {
			bind_target(&b->r, bus, sizeof(bus));
			if (rn(&b->r, 3))
				snprintf(bus, sizeof(bus), rn(&b->r, 2) ? ATK_DIR "/n%u" :
					 "@afbus-atk-n%u", rn(&b->r, 4));
			a = atk_addr(bus, "m");
			ATK_STEP(b->idx, "bind: bind");
			rc = bind(fd, (void *)&a, sizeof(a));
			if (rc == 0)
				ST_ADD(atk_binds, 1);
			else if (errno != EINVAL && errno != EADDRINUSE && errno != EISCONN &&
				 errno != EBADF && errno != ENOTSOCK && errno != ENOENT)
				fail("bind round: bind %s: %s", bus, strerror(errno));
		} else if (op < 7) {
			bind_target(&b->r, bus, sizeof(bus));
			a = atk_addr(bus, "m");
			ATK_STEP(b->idx, "bind: sendto");
			rc = sendto(fd, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL, (void *)&a, sizeof(a));
			if (rc == 1)
				ST_ADD(atk_bind_sends, 1);
			else if (errno != EACCES && errno != EAGAIN && errno != ECONNREFUSED &&
				 errno != ENOENT && errno != EISCONN && errno != EHOSTUNREACH &&
				 errno != ECONNRESET && errno != EINVAL && errno != EBADF &&
				 errno != ENOTSOCK)
				fail("bind round: sendto %s: %s", bus, strerror(errno));
		} else if (op < 9) {
			ATK_STEP(b->idx, "bind: close and a new socket");
			nfd = socket(AF_BUS, SOCK_DGRAM, 0);
			if (nfd < 0)
				fail("socket: %s", strerror(errno));
			close(__atomic_exchange_n(&bind_fd, nfd, __ATOMIC_SEQ_CST));
		} else {
			snprintf(path, sizeof(path), ATK_DIR "/n%u", rn(&b->r, 4));
			ATK_STEP(b->idx, "bind: unlink");
			unlink(path);
		}
	}
	return NULL;
}

/* Reads and drops what the masters of the bind round get. */
static void *bind_drain(void *arg)
{
	int *m = arg, i;
	char buf[512];

	while (!atk_stop_round && !shm->failed) {
		struct pollfd pf[2] = { { m[0], POLLIN, 0 }, { m[1], POLLIN, 0 } };

		ATK_STEP(4, "bind: masters drain");
		if (poll(pf, 2, 50) <= 0)
			continue;
		for (i = 0; i < 2; i++)
			while (recv(m[i], buf, sizeof(buf), MSG_DONTWAIT) >= 0)
				;
	}
	return NULL;
}

static void atk_bind(struct rng *r, double until)
{
	struct bindrace b[3];
	pthread_t th[3], dr;
	char bus[64];
	int m[2], i;

	snprintf(bus, sizeof(bus), "@afbus-atk-m0-%u", atk_round);
	m[0] = atk_master(ATK_DIR "/m0");
	m[1] = atk_master(bus);
	bind_fd = socket(AF_BUS, SOCK_DGRAM, 0);
	if (bind_fd < 0)
		fail("socket: %s", strerror(errno));
	atk_stop_round = 0;
	if (pthread_create(&dr, NULL, bind_drain, m))
		fail("pthread_create");
	for (i = 0; i < 3; i++) {
		b[i].idx = i;
		b[i].until = until;
		b[i].r = *r;
		b[i].r.s ^= (uint64_t)(i + 1) << 32;
		rnd(&b[i].r);
		if (pthread_create(&th[i], NULL, bind_racer, &b[i]))
			fail("pthread_create");
	}
	rnd(r);
	for (i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	atk_stop_round = 1;
	pthread_join(dr, NULL);
	if (shm->failed)
		_exit(1);
	close(bind_fd);
	close(m[0]);
	close(m[1]);
	for (i = 0; i < 4; i++) {
		snprintf(bus, sizeof(bus), ATK_DIR "/n%d", i);
		unlink(bus);
	}
	unlink(ATK_DIR "/m0");
}

/* ---- stall ---- */

#ifndef BUS_FRAME_F_QUEUED
#define BUS_FRAME_F_QUEUED	(1U << 2)
#endif

struct stall {
	int m, r[2], s[2], uffd;
	char *ring;			/* r[0]'s, STALL_FRAMES frames */
	unsigned int ring_next;
	char *page;			/* the userfaultfd page of the send */
	char src[4096];			/* what the resolver copies in */
	struct sockaddr_bus dst[2];
	volatile int stall_ms, long_stall, senders_done;
	volatile uint64_t stall_start_ns;
	volatile uint64_t sent[2][2];	/* [sender][receiver] */
	volatile uint64_t got[2][2];
	volatile uint64_t r0_s1_last_sent_ns;	/* newest s1 message r0 has read */
	volatile uint64_t s1_to_r0_ns;		/* newest s1 message sent to r0 */
	double until;
	struct rng r1, r2;
};

#define STALL_FRAMES	16

static void stall_got(struct stall *st, int rx, const struct atk_pay *p, size_t n)
{
	if (atk_check(p, n) || p->kind != 'S' || p->src > 1 || p->dst != rx)
		fail("stall round: receiver %d got a corrupt message (%zu bytes, kind %c, "
		     "src %d, dst %d)", rx, n, p->kind, p->src, p->dst);
	if (p->seq != st->got[p->src][rx] + 1)
		fail("stall round: receiver %d got message %llu from sender %d after %llu (%s)",
		     rx, (unsigned long long)p->seq, p->src,
		     (unsigned long long)st->got[p->src][rx],
		     p->seq <= st->got[p->src][rx] ? "twice or reordered" : "lost");
	st->got[p->src][rx] = p->seq;
	if (rx == 0 && p->src == 1)
		st->r0_s1_last_sent_ns = p->t_ns;
	ST_ADD(atk_stall_msgs, 1);
}

/* One message from @rx's queue; 0 when none. */
static int stall_queue_one(struct stall *st, int rx, int flags)
{
	char buf[FRAME_SIZE];
	ssize_t n = recv(st->r[rx], buf, sizeof(buf), flags);

	if (n < 0) {
		if (errno != EAGAIN)
			fail("stall round: recv %d: %s", rx, strerror(errno));
		return 0;
	}
	stall_got(st, rx, (struct atk_pay *)buf, n);
	return 1;
}

static void *stall_ring_reader(void *arg)
{
	struct stall *st = arg;
	struct pollfd pf = { st->r[0], POLLIN, 0 };

	while (!atk_stop_round && !shm->failed) {
		struct bus_frame_hdr *f =
			(void *)(st->ring + (size_t)st->ring_next * FRAME_SIZE);

		ATK_STEP(2, "stall: ring reader");
		if (__atomic_load_n(&f->status, __ATOMIC_ACQUIRE) != BUS_FRAME_USER) {
			poll(&pf, 1, 10);
			continue;
		}
		if (f->flags & BUS_FRAME_F_QUEUED) {
			/* Its message waits in the queue, in this place of the order. */
			if (!stall_queue_one(st, 0, 0))
				fail("stall round: a queued frame but no message in the queue");
		} else if (!(f->flags & BUS_FRAME_F_DISCARDED)) {
			if (f->data_offset + f->len > FRAME_SIZE)
				fail("stall round: frame of %u bytes at %u", f->len, f->data_offset);
			stall_got(st, 0, (struct atk_pay *)((char *)f + f->data_offset), f->len);
		}
		ring_hand_back(st->r[0], f);
		st->ring_next = (st->ring_next + 1) % STALL_FRAMES;
	}
	return NULL;
}

static void *stall_queue_reader(void *arg)
{
	struct stall *st = arg;

	while (!atk_stop_round && !shm->failed) {
		ATK_STEP(3, "stall: queue reader");
		stall_queue_one(st, 1, 0);
	}
	return NULL;
}

/* A page registered with the round's userfaultfd, not yet there. */
static char *stall_page(struct stall *st)
{
	struct uffdio_register reg;
	char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);

	if (page == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	reg.range.start = (unsigned long)page;
	reg.range.len = 4096;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(st->uffd, UFFDIO_REGISTER, &reg))
		fail("UFFDIO_REGISTER: %s", strerror(errno));
	return page;
}

/* Sender 0: its buffer is a userfaultfd page, missing at every send. */
static void *stall_sender(void *arg)
{
	struct stall *st = arg;
	struct atk_pay *p = (struct atk_pay *)st->src;
	int rx, long_done = 0;
	size_t len;
	ssize_t n;

	while (now() < st->until && !shm->failed) {
		rx = rn(&st->r1, 3) == 0;
		len = sizeof(*p) + rn(&st->r1, 1024);
		memset(p, 0, sizeof(*p));
		p->kind = 'S';
		p->src = 0;
		p->dst = rx;
		p->seq = st->sent[0][rx] + 1;
		atk_fill(p, len);
		/*
		 * A fresh page for every send, missing until the resolver
		 * fills it (the guest kernels have no madvise to zap it).
		 */
		st->page = stall_page(st);
		/* Once a round, to the ring receiver, a long stall. */
		st->long_stall = rx == 0 && !long_done && now() > st->until - 1.6;
		long_done |= st->long_stall;
		st->stall_ms = st->long_stall ? 1000 : 10 + rn(&st->r1, 191);
		st->stall_start_ns = now_ns();
		ATK_STEP(0, st->long_stall ? "stall: send from a page stalled 1 s" :
			 "stall: send from a stalled page");
		n = sendto(st->s[0], st->page, len, MSG_NOSIGNAL, (void *)&st->dst[rx],
			   sizeof(st->dst[rx]));
		st->long_stall = 0;
		munmap(st->page, 4096);
		if (n == (ssize_t)len) {
			st->sent[0][rx]++;
			ST_ADD(atk_stalls, 1);
		} else if (n >= 0 || (errno != EAGAIN && errno != EFAULT)) {
			fail("stall round: send from the stalled page to %d: %zd, %s", rx, n,
			     strerror(errno));
		} else if (errno == EFAULT) {
			/* Only if the kernel gave up waiting on the fault. */
			ST_ADD(atk_stall_efault, 1);
		}
	}
	return NULL;
}

/* Sender 1: small messages, every few milliseconds, stamped. */
static void *stall_other(void *arg)
{
	struct stall *st = arg;
	char buf[sizeof(struct atk_pay) + 64];
	struct atk_pay *p = (struct atk_pay *)buf;
	int rx;

	while (!st->senders_done && !shm->failed) {
		/* During a long stall: to the ring receiver only. */
		rx = st->long_stall ? 0 : (int)rn(&st->r2, 2);
		memset(p, 0, sizeof(*p));
		p->kind = 'S';
		p->src = 1;
		p->dst = rx;
		p->seq = st->sent[1][rx] + 1;
		p->t_ns = now_ns();
		atk_fill(p, sizeof(buf));
		ATK_STEP(1, "stall: the other sender");
		if (sendto(st->s[1], buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL,
			   (void *)&st->dst[rx], sizeof(st->dst[rx])) == sizeof(buf)) {
			st->sent[1][rx]++;
			if (rx == 0)
				st->s1_to_r0_ns = p->t_ns;
		} else if (errno != EAGAIN) {
			fail("stall round: send to %d: %s", rx, strerror(errno));
		}
		msleep(2 + rn(&st->r2, 8));
	}
	return NULL;
}

static void *stall_resolver(void *arg)
{
	struct stall *st = arg;
	struct uffd_msg msg;
	struct pollfd pf = { st->uffd, POLLIN, 0 };

	while (!atk_stop_round && !shm->failed) {
		struct uffdio_copy cp;
		uint64_t start;

		if (poll(&pf, 1, 50) <= 0 || read(st->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		start = st->stall_start_ns;
		msleep(st->stall_ms);
		if (st->long_stall) {
			/*
			 * The sender is stuck in its copy for a second: the
			 * other sender's messages to the ring receiver, sent
			 * after the first 100 ms of it, must have arrived.
			 */
			if (st->r0_s1_last_sent_ns < start + 100000000ull)
				fail("stall round: while a sender's copy to the ring receiver "
				     "stalled for %d ms, none of the other sender's messages "
				     "sent after 100 ms reached it (newest read: sent at %+.0f "
				     "ms; newest accepted at %+.0f ms): a stalled copy hides "
				     "later frames",
				     st->stall_ms,
				     ((double)st->r0_s1_last_sent_ns - start) / 1e6,
				     ((double)st->s1_to_r0_ns - start) / 1e6);
			ST_ADD(atk_long_stalls, 1);
		}
		cp.dst = msg.arg.pagefault.address & ~4095ull;
		cp.src = (unsigned long)st->src;
		cp.len = 4096;
		cp.mode = 0;
		cp.copy = 0;
		if (ioctl(st->uffd, UFFDIO_COPY, &cp) && errno != EEXIST)
			fail("UFFDIO_COPY: %s", strerror(errno));
	}
	return NULL;
}

static void atk_stall(struct rng *r, double until)
{
	static struct stall st;
	struct uffdio_api api = { .api = UFFD_API };
	pthread_t th[5];
	char bus[64];
	double deadline;
	int i, j, done;

	memset(&st, 0, sizeof(st));
	st.uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (st.uffd < 0) {
		/* A kernel without CONFIG_USERFAULTFD: the round cannot run. */
		ST_ADD(atk_stall_skipped, 1);
		return;
	}
	if (ioctl(st.uffd, UFFDIO_API, &api))
		fail("UFFDIO_API: %s", strerror(errno));
	st.until = until;
	st.r1 = *r;
	rnd(r);
	st.r2 = *r;
	rnd(r);
	snprintf(bus, sizeof(bus), "@afbus-atk-s%u", atk_round);
	st.m = atk_master(bus);
	st.r[0] = atk_join(st.m, bus, "r0", STALL_FRAMES, &st.ring);
	{
		/* The join reply's place in the ring, if it marks one. */
		struct bus_frame_hdr *f = (void *)st.ring;

		if (__atomic_load_n(&f->status, __ATOMIC_ACQUIRE) == BUS_FRAME_USER &&
		    f->flags & BUS_FRAME_F_QUEUED) {
			__atomic_store_n(&f->status, BUS_FRAME_KERNEL, __ATOMIC_RELEASE);
			st.ring_next = 1;
		}
	}
	st.r[1] = atk_join(st.m, bus, "r1", 0, NULL);
	st.s[0] = atk_join(st.m, bus, "s0", 0, NULL);
	st.s[1] = atk_join(st.m, bus, "s1", 0, NULL);
	atk_timeouts(st.r[1], 50, 1000);
	atk_timeouts(st.s[0], 1000, 500);
	st.dst[0] = atk_addr(bus, "r0");
	st.dst[1] = atk_addr(bus, "r1");
	atk_stop_round = 0;
	if (pthread_create(&th[0], NULL, stall_resolver, &st) ||
	    pthread_create(&th[1], NULL, stall_ring_reader, &st) ||
	    pthread_create(&th[2], NULL, stall_queue_reader, &st) ||
	    pthread_create(&th[3], NULL, stall_other, &st) ||
	    pthread_create(&th[4], NULL, stall_sender, &st))
		fail("pthread_create");
	pthread_join(th[4], NULL);
	st.senders_done = 1;
	pthread_join(th[3], NULL);
	/* Everything accepted arrives, exactly once. */
	deadline = now() + 5;
	do {
		for (done = 1, i = 0; i < 2; i++)
			for (j = 0; j < 2; j++)
				done &= st.got[i][j] == st.sent[i][j];
		if (!done)
			msleep(10);
	} while (!done && now() < deadline && !shm->failed);
	atk_stop_round = 1;
	for (i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	if (shm->failed)
		_exit(1);
	for (i = 0; i < 2; i++)
		for (j = 0; j < 2; j++)
			if (st.got[i][j] != st.sent[i][j])
				fail("stall round: %llu of the %llu messages sender %d sent to "
				     "receiver %d arrived (5 s after the last send)",
				     (unsigned long long)st.got[i][j],
				     (unsigned long long)st.sent[i][j], i, j);
	for (i = 0; i < 2; i++) {
		close(st.r[i]);
		close(st.s[i]);
	}
	close(st.m);
	munmap(st.ring, (size_t)FRAME_SIZE * STALL_FRAMES);
	close(st.uffd);
}

/* ---- revoke ---- */

struct revoke {
	int m, rx[2], tx[2];
	char bus[64];
	volatile int senders_done, master_done;
	volatile uint64_t sent[2][2];		/* [sender][address] */
	uint8_t *seen[2][2];			/* [sender][address][seq] */
	volatile uint64_t last[2][2][2];	/* [receiver][sender][address] */
	double until;
	struct rng rm, rs[2];
};

struct revoke_arg {
	struct revoke *rv;
	int i;
};

static void *revoke_master(void *arg)
{
	struct revoke *rv = arg;
	int owner[2] = { -1, -1 }, k, cur, nxt, type, i;
	unsigned int gen = 0;

	while (!rv->senders_done && !shm->failed) {
		k = rn(&rv->rm, 2);
		cur = owner[k];
		nxt = (int)rn(&rv->rm, 3) - 1;
		for (i = 0; i < 2; i++) {
			char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))], name[4];
			struct sockaddr_bus dst, a;
			struct atk_pay p;
			size_t off = 0;
			int who = i == 0 ? cur : nxt;

			if (who < 0)
				continue;
			snprintf(name, sizeof(name), "r%d", k);
			a = atk_addr(rv->bus, name);
			dst = atk_addr(rv->bus, who ? "b" : "a");
			type = i == 0 ? SCM_REVOKE_ADDR : SCM_OWNED_ADDR;
			cmsg_add(ctl, &off, type, &a);
			memset(&p, 0, sizeof(p));
			p.kind = i == 0 ? 'V' : 'O';
			p.dst = k;
			p.seq = ++gen;
			atk_fill(&p, sizeof(p));
			for (;;) {
				struct iovec iov = { &p, sizeof(p) };
				struct msghdr h = { .msg_name = &dst, .msg_namelen = sizeof(dst),
						    .msg_iov = &iov, .msg_iovlen = 1,
						    .msg_control = ctl, .msg_controllen = off };

				ATK_STEP(0, i == 0 ? "revoke: master revokes" :
					 "revoke: master grants");
				if (sendmsg(rv->m, &h, MSG_NOSIGNAL) == sizeof(p))
					break;
				if (errno != EAGAIN)
					fail("revoke round: %s of r%d to %c: %s",
					     i == 0 ? "revoke" : "grant", k, who ? 'b' : 'a',
					     strerror(errno));
				if (shm->failed)
					return NULL;
			}
			owner[k] = i == 0 ? -1 : who;
			ST_ADD(atk_moves, 1);
		}
		if (rn(&rv->rm, 2))
			msleep(rn(&rv->rm, 3));
	}
	rv->master_done = 1;
	return NULL;
}

static void *revoke_sender(void *arg)
{
	struct revoke_arg *ra = arg;
	struct revoke *rv = ra->rv;
	struct sockaddr_bus dst[2];
	char buf[sizeof(struct atk_pay) + 32];
	struct atk_pay *p = (struct atk_pay *)buf;
	int k;

	dst[0] = atk_addr(rv->bus, "r0");
	dst[1] = atk_addr(rv->bus, "r1");
	while (now() < rv->until && !shm->failed) {
		k = rn(&rv->rs[ra->i], 2);
		if (rv->sent[ra->i][k] + 1 >= ATK_SEQ_MAX)
			break;
		memset(p, 0, sizeof(*p));
		p->kind = 'R';
		p->src = ra->i;
		p->dst = k;
		p->seq = rv->sent[ra->i][k] + 1;
		atk_fill(p, sizeof(buf));
		ATK_STEP(1 + ra->i, "revoke: member sends to a moving address");
		if (sendto(rv->tx[ra->i], buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL,
			   (void *)&dst[k], sizeof(dst[k])) == sizeof(buf)) {
			rv->sent[ra->i][k]++;
			ST_ADD(atk_revoke_msgs, 1);
		} else if (errno == EHOSTUNREACH) {
			ST_ADD(atk_revoke_unreach, 1);
		} else if (errno == EAGAIN) {
			sched_yield();
		} else {
			fail("revoke round: send to r%d: %s", k, strerror(errno));
		}
	}
	return NULL;
}

static void *revoke_receiver(void *arg)
{
	struct revoke_arg *ra = arg;
	struct revoke *rv = ra->rv;
	int own[2] = { 0, 0 }, ever[2] = { 0, 0 };
	char buf[256], ctl[1024];
	double idle = 0;

	for (;;) {
		struct sockaddr_bus src;
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr h = { .msg_name = &src, .msg_namelen = sizeof(src),
				    .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = ctl, .msg_controllen = sizeof(ctl) };
		struct atk_pay *p = (struct atk_pay *)buf;
		ssize_t n;

		if (shm->failed)
			return NULL;
		ATK_STEP(3 + ra->i, "revoke: member receives");
		n = recvmsg(rv->rx[ra->i], &h, 0);
		if (n < 0) {
			if (errno != EAGAIN)
				fail("revoke round: recvmsg: %s", strerror(errno));
			/* Done: everyone stopped and nothing came for 300 ms. */
			if (!rv->master_done)
				continue;
			if (!idle)
				idle = now();
			if (now() - idle > 0.3)
				return NULL;
			continue;
		}
		idle = 0;
		if (src.sbus_addr_ncomp == 0)
			fail("revoke round: a member got a kernel notification");
		if (atk_check(p, n) || p->dst > 1)
			fail("revoke round: corrupt message (%zd bytes)", n);
		if (p->kind == 'O' || p->kind == 'V') {
			own[p->dst] = p->kind == 'O';
			ever[p->dst] = 1;
			continue;
		}
		if (p->kind != 'R' || p->src > 1)
			fail("revoke round: unexpected message kind %c", p->kind);
		if (!own[p->dst])
			fail("revoke round: %c received message %llu from sender %d for r%d "
			     "after it %s", ra->i ? 'b' : 'a', (unsigned long long)p->seq, p->src,
			     p->dst, ever[p->dst] ? "read its revoke" : "owned nothing of it yet "
			     "(before reading its grant)");
		if (p->seq <= rv->last[ra->i][p->src][p->dst])
			fail("revoke round: %c received message %llu from sender %d for r%d "
			     "after %llu", ra->i ? 'b' : 'a', (unsigned long long)p->seq, p->src,
			     p->dst, (unsigned long long)rv->last[ra->i][p->src][p->dst]);
		rv->last[ra->i][p->src][p->dst] = p->seq;
		if (p->seq >= ATK_SEQ_MAX ||
		    __atomic_exchange_n(&rv->seen[p->src][p->dst][p->seq], 1, __ATOMIC_RELAXED))
			fail("revoke round: message %llu from sender %d for r%d received twice",
			     (unsigned long long)p->seq, p->src, p->dst);
	}
}

static void atk_revoke(struct rng *r, double until)
{
	static struct revoke rv;
	struct revoke_arg ra[2][2];
	pthread_t th[5];
	uint64_t q;
	int i, k;

	memset(&rv, 0, sizeof(rv));
	rv.until = until;
	rv.rm = *r;
	rnd(r);
	for (i = 0; i < 2; i++) {
		rv.rs[i] = *r;
		rnd(r);
		for (k = 0; k < 2; k++) {
			rv.seen[i][k] = calloc(ATK_SEQ_MAX, 1);
			if (!rv.seen[i][k])
				fail("calloc");
		}
	}
	if (rn(r, 3) == 0)
		snprintf(rv.bus, sizeof(rv.bus), ATK_DIR "/v");
	else
		snprintf(rv.bus, sizeof(rv.bus), "@afbus-atk-v%u", atk_round);
	rv.m = atk_master(rv.bus);
	rv.rx[0] = atk_join(rv.m, rv.bus, "a", 0, NULL);
	rv.rx[1] = atk_join(rv.m, rv.bus, "b", 0, NULL);
	rv.tx[0] = atk_join(rv.m, rv.bus, "c", 0, NULL);
	rv.tx[1] = atk_join(rv.m, rv.bus, "d", 0, NULL);
	for (i = 0; i < 2; i++)
		atk_timeouts(rv.rx[i], 50, 1000);
	atk_timeouts(rv.m, 1000, 200);
	for (i = 0; i < 2; i++)
		for (k = 0; k < 2; k++)
			ra[i][k] = (struct revoke_arg){ &rv, k };
	if (pthread_create(&th[0], NULL, revoke_master, &rv) ||
	    pthread_create(&th[1], NULL, revoke_sender, &ra[0][0]) ||
	    pthread_create(&th[2], NULL, revoke_sender, &ra[0][1]) ||
	    pthread_create(&th[3], NULL, revoke_receiver, &ra[1][0]) ||
	    pthread_create(&th[4], NULL, revoke_receiver, &ra[1][1]))
		fail("pthread_create");
	pthread_join(th[1], NULL);
	pthread_join(th[2], NULL);
	rv.senders_done = 1;
	for (i = 0; i < 5; i++)
		if (i != 1 && i != 2)
			pthread_join(th[i], NULL);
	if (shm->failed)
		_exit(1);
	/* Every message sendmsg accepted arrived at one of the two. */
	for (i = 0; i < 2; i++)
		for (k = 0; k < 2; k++) {
			for (q = 1; q <= rv.sent[i][k]; q++)
				if (!rv.seen[i][k][q])
					fail("revoke round: message %llu of %llu from sender %d to "
					     "r%d never arrived", (unsigned long long)q,
					     (unsigned long long)rv.sent[i][k], i, k);
			free(rv.seen[i][k]);
		}
	for (i = 0; i < 2; i++) {
		close(rv.rx[i]);
		close(rv.tx[i]);
	}
	close(rv.m);
	if (rv.bus[0] == '/')
		unlink(rv.bus);
}

/* Fails the attack process when its round stops making progress. */
static void *atk_watchdog(void *arg)
{
	unsigned long last = ~0ul;
	double since = now();
	char ops[512];
	int i;
	size_t off;

	for (;;) {
		int stuck, late;

		msleep(500);
		if (atk_progress != last) {
			last = atk_progress;
			since = now();
		}
		stuck = now() - since >= 10;
		/* A thread may loop while another is stuck: rounds end in time. */
		late = atk_round_until && now() > atk_round_until + 15;
		if (!stuck && !late)
			continue;
		for (off = 0, i = 0; i < 8 && off < sizeof(ops); i++)
			if (atk_op[i])
				off += snprintf(ops + off, sizeof(ops) - off, "%s[%s]",
						off ? ", " : "", atk_op[i]);
		fail("hang: %s round %u: %s; threads in (last operation of each): %s",
		     atk_names[atk_kind], atk_round,
		     stuck ? "no operation completed for 10 s" :
		     "still running 15 s after its end", ops);
	}
	return NULL;
}

static void attack_main(void)
{
	pthread_t wd;
	struct rng r;
	double until;

	my_role = "attack";
	rng_init(&r, 0, 0xa7, 0);
	mkdir(ATK_DIR, 0755);
	if (pthread_create(&wd, NULL, atk_watchdog, NULL))
		fail("pthread_create");
	while (!shm->atk_stop && !shm->failed) {
		atk_kind = atk_round % ATK_KINDS;
		if (!(atk_mask >> atk_kind & 1)) {
			atk_round++;
			continue;
		}
		memset((void *)atk_op, 0, sizeof(atk_op));
		until = now() + 0.7 + rn(&r, 800) / 1000.0;
		if (atk_kind == ATK_STALL)
			until += 1.2;	/* room for its long stall */
		atk_round_until = until;
		switch (atk_kind) {
		case ATK_PEEK:
			atk_peek(&r, until);
			break;
		case ATK_BIND:
			atk_bind(&r, until);
			break;
		case ATK_STALL:
			atk_stall(&r, until);
			break;
		default:
			atk_revoke(&r, until);
			break;
		}
		ST_ADD(atk_rounds, 1);
		atk_round++;
	}
	_exit(shm->failed ? 1 : 0);
}

/* ---------------------------------------------------------------- */
/* The supervisor                                                    */

static pid_t master_pid, worker_pid[MAXW], attack_pid;

static pid_t spawn_worker(int slot)
{
	pid_t pid;

	shm->inc[slot]++;
	shm->joined[slot] = 0;
	pid = fork();
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	if (pid == 0)
		worker_main(slot);
	shm->alive[slot] = 1;
	return pid;
}

static void reap(pid_t pid, const char *what)
{
	double deadline = now() + 120;
	int status;
	pid_t got;

	while ((got = waitpid(pid, &status, WNOHANG)) == 0) {
		if (now() > deadline)
			fail("hang: %s %d did not exit", what, pid);
		msleep(5);
	}
	if (got != pid)
		fail("waitpid %s: %s", what, strerror(errno));
	if (WIFEXITED(status) && WEXITSTATUS(status))
		fail("%s exited with %d", what, WEXITSTATUS(status));
	if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
		fail("%s killed by signal %d", what, WTERMSIG(status));
}

/* Waits until @counter reaches @n or fails after a minute. */
static void barrier(volatile int *counter, int n, const char *what)
{
	double deadline = now() + 120;

	while (__atomic_load_n(counter, __ATOMIC_SEQ_CST) < n) {
		if (shm->failed)
			return;
		if (now() > deadline)
			fail("hang: %s (%d of %d)", what, *counter, n);
		msleep(5);
	}
}

static void kill_all(void)
{
	double deadline;
	int i;

	if (master_pid > 0)
		kill(master_pid, SIGKILL);
	for (i = 0; i < g_workers; i++)
		if (worker_pid[i] > 0)
			kill(worker_pid[i], SIGKILL);
	if (attack_pid > 0)
		kill(attack_pid, SIGKILL);
	/*
	 * A child with a thread stuck in the kernel (a deadlock, an oops) is
	 * never reaped: give up after 10 s, the failure is reported already.
	 */
	deadline = now() + 10;
	while (waitpid(-1, NULL, WNOHANG) >= 0 && now() < deadline)
		msleep(10);
}

/* Reads or writes a module parameter; -1 if it cannot be read. */
static long param(const char *name, long set)
{
	char path[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/module/af_bus/parameters/%s", name);
	f = fopen(path, set >= 0 ? "w" : "r");
	if (!f)
		return -1;
	if (set >= 0)
		fprintf(f, "%ld\n", set);
	else if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static void set_param(const char *name, long v)
{
	param(name, v);
}

static void run_epoch(int epoch, double end, struct rng *r)
{
	int i, fs_path = rn(r, 4) == 0, policy = rn(r, 2);
	int kill_master = rn(r, 3) == 0;
	double chaos_end = now() + 1 + rn(r, 3000) / 1000.0;
	double master_kill_at = now() + rn(r, 2000) / 1000.0;

	if (chaos_end > end)
		chaos_end = end;
	shm->epoch = epoch;
	shm->phase = PH_CHAOS;
	shm->master_ready = shm->master_dead = shm->master_finish = shm->master_quiet = 0;
	shm->tx_stopped = shm->drained = shm->burst_done = shm->counted = 0;
	memset(shm->burst_k, 0, sizeof(shm->burst_k));
	memset(shm->burst_flagged, 0, sizeof(shm->burst_flagged));
	memset(m_mcnt, 0, sizeof(m_mcnt));
	memset(m_fcnt, 0, sizeof(m_fcnt));

	master_pid = fork();
	if (master_pid < 0)
		fail("fork: %s", strerror(errno));
	if (master_pid == 0)
		master_main(fs_path, policy);
	barrier(&shm->master_ready, 1, "master ready");
	for (i = 0; i < g_workers; i++)
		worker_pid[i] = spawn_worker(i);

	while (now() < chaos_end && !shm->failed) {
		msleep(20 + rn(r, 40));
		if (kill_master && now() >= master_kill_at) {
			shm->master_dead = 1;
			kill(master_pid, SIGKILL);
			reap(master_pid, "master");
			master_pid = 0;
			ST_ADD(master_kills, 1);
			break;
		}
		if (rn(r, 20) == 0) {
			/* Limits change under full queues. */
			static const int qmsgs[] = { 8, 32, 128, 256 };

			set_param("max_queue_msgs", qmsgs[rn(r, 4)]);
		}
		if (rn(r, 10) == 0) {
			i = rn(r, g_workers);
			shm->alive[i] = 0;
			kill(worker_pid[i], SIGKILL);
			reap(worker_pid[i], "worker");
			ST_ADD(kills, 1);
			worker_pid[i] = spawn_worker(i);
		}
	}
	if (shm->failed)
		return;
	if (shm->master_dead) {
		/* Every worker must notice the dead bus and leave by itself. */
		for (i = 0; i < g_workers; i++) {
			reap(worker_pid[i], "worker");
			worker_pid[i] = 0;
			shm->alive[i] = 0;
		}
		return;
	}

	/* Orderly end: quiesce, drain, a burst of multicast, count. */
	for (i = 0; i < g_workers; i++)
		barrier(&shm->joined[i], 1, "worker joined");
	shm->phase = PH_QUIESCE;
	barrier(&shm->tx_stopped, g_workers, "senders stopped");
	barrier(&shm->master_quiet, 1, "master quiet");
	shm->phase = PH_DRAIN;
	barrier(&shm->drained, g_workers, "receivers drained");
	shm->phase = PH_BURST;
	barrier(&shm->burst_done, g_workers, "bursts sent");
	shm->phase = PH_COUNT;
	barrier(&shm->counted, g_workers, "bursts counted");
	shm->phase = PH_STOP;
	for (i = 0; i < g_workers; i++) {
		reap(worker_pid[i], "worker");
		worker_pid[i] = 0;
		shm->alive[i] = 0;
	}
	shm->master_finish = 1;
	reap(master_pid, "master");
	master_pid = 0;
}

struct counts {
	long refcnt, bus_lines, slab, skb, kmalloc;
};

/* Flushes the per-CPU slabs of @cache, so that active objects are exact. */
static void shrink(const char *cache)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/slab/%s/shrink", cache);
	f = fopen(path, "w");
	if (f) {
		fputs("1\n", f);
		fclose(f);
	}
}

static struct counts read_counts(void)
{
	struct counts c = { -1, 0, -1, -1, -1 };
	struct dirent *e;
	DIR *d;
	char line[512];
	FILE *f;

	f = fopen("/sys/module/af_bus/refcnt", "r");
	if (f) {
		if (fscanf(f, "%ld", &c.refcnt) != 1)
			c.refcnt = -1;
		fclose(f);
	}
	f = fopen("/proc/net/bus", "r");
	if (f) {
		while (fgets(line, sizeof(line), f))
			c.bus_lines++;
		fclose(f);
	}
	shrink("AF_BUS");
	shrink("skbuff_head_cache");
	d = opendir("/sys/kernel/slab");
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "kmalloc-", 8))
			shrink(e->d_name);
	if (d)
		closedir(d);
	f = fopen("/proc/slabinfo", "r");
	if (f) {
		long n;

		c.skb = c.kmalloc = 0;
		while (fgets(line, sizeof(line), f)) {
			char name[64];

			if (sscanf(line, "%63s %ld", name, &n) != 2)
				continue;
			if (!strcmp(name, "AF_BUS"))
				c.slab = n;
			else if (!strcmp(name, "skbuff_head_cache"))
				c.skb = n;
			else if (!strncmp(name, "kmalloc-", 8))
				c.kmalloc += n;
		}
		fclose(f);
	}
	return c;
}

static void report_failure(int epochs)
{
	printf("bus_stress: FAIL: %s\n", shm->failmsg);
	char atk[64] = "";
	int i;

	if (atk_mask != (1u << ATK_KINDS) - 1) {
		strcpy(atk, " -a ");
		if (!atk_mask)
			strcat(atk, "none");
		for (i = 0; i < ATK_KINDS; i++)
			if (atk_mask >> i & 1) {
				if (atk[4])
					strcat(atk, ",");
				strcat(atk, atk_names[i]);
			}
	}
	printf("bus_stress: reproduce with: bus_stress -s %llu -d %d -i %d -w %d%s\n", g_seed,
	       g_duration, epochs, g_workers, atk);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct counts before, after;
	long qmsgs;
	double start, end;
	struct rng r;
	int opt, epoch, i;

	g_seed = time(NULL);
	while ((opt = getopt(argc, argv, "s:d:i:w:a:")) != -1) {
		switch (opt) {
		case 'a':
			atk_mask = 0;
			for (i = 0; i < ATK_KINDS; i++)
				if (strstr(optarg, atk_names[i]))
					atk_mask |= 1u << i;
			if (!atk_mask && strcmp(optarg, "none")) {
				fprintf(stderr, "bus_stress: -a takes peek,bind,stall,revoke or none\n");
				return 2;
			}
			break;
		case 's':
			g_seed = strtoull(optarg, NULL, 0);
			break;
		case 'd':
			g_duration = atoi(optarg);
			break;
		case 'i':
			g_epochs = atoi(optarg);
			break;
		case 'w':
			g_workers = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-s SEED] [-d SECONDS] [-i EPOCHS] [-w WORKERS] "
				"[-a peek,bind,stall,revoke|none]\n", argv[0]);
			return 2;
		}
	}
	if (g_workers < 2 || g_workers > MAXW)
		g_workers = 4;
	shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED)
		return 1;
	memset(shm, 0, sizeof(*shm));
	supervisor_pid = getpid();
	setvbuf(stdout, NULL, _IOLBF, 0);
	shm->nworkers = g_workers;
	printf("bus_stress: seed=%llu duration=%d iterations=%d workers=%d attacks=%#x\n",
	       g_seed, g_duration, g_epochs, g_workers, atk_mask);
	fflush(stdout);
	rng_init(&r, 0, 0xff, 0);
	before = read_counts();
	qmsgs = param("max_queue_msgs", -1);
	start = now();
	end = start + g_duration;
	attack_pid = atk_mask ? fork() : 0;
	if (attack_pid < 0)
		fail("fork: %s", strerror(errno));
	if (attack_pid == 0 && atk_mask)
		attack_main();
	for (epoch = 1; epoch <= g_epochs && now() < end && !shm->failed; epoch++) {
		run_epoch(epoch, end, &r);
		if (shm->failed)
			break;
	}
	if (!shm->failed)
		epoch--;	/* the loop went one past the last epoch run */
	if (!shm->failed && attack_pid > 0) {
		shm->atk_stop = 1;
		reap(attack_pid, "attack process");
		attack_pid = 0;
	}
	if (qmsgs > 0)
		set_param("max_queue_msgs", qmsgs);
	if (shm->failed) {
		report_failure(epoch);
		kill_all();
		return 1;
	}

	/* Everything is closed: the counts must come back (RCU, deferred frees). */
	for (i = 0; i < 100; i++) {
		after = read_counts();
		if (after.refcnt == before.refcnt && after.bus_lines == before.bus_lines &&
		    after.slab <= before.slab && after.skb <= before.skb + SKB_SLACK)
			break;
		msleep(100);
	}
	printf("bus_stress: module refcnt %ld -> %ld, /proc/net/bus lines %ld -> %ld, "
	       "AF_BUS slab objects %ld -> %ld; loosely: skbuff_head_cache %ld -> %ld, "
	       "kmalloc-* objects %ld -> %ld\n", before.refcnt, after.refcnt,
	       before.bus_lines, after.bus_lines, before.slab, after.slab, before.skb, after.skb,
	       before.kmalloc, after.kmalloc);
	if (after.refcnt != before.refcnt || after.bus_lines != before.bus_lines ||
	    after.slab > before.slab || after.skb > before.skb + SKB_SLACK) {
		snprintf(shm->failmsg, sizeof(shm->failmsg),
			 "counts did not return to their starting values");
		shm->failed = 1;
		goto failed;
	}
	printf("bus_stress: seed=%llu iterations=%d duration=%.1fs sent=%llu received=%llu "
	       "dropped=%llu mcast_sent=%llu mcast_received=%llu filtered=%llu enobufs=%llu "
	       "fds_sent=%llu fds_received=%llu ring_frames=%llu eagain=%llu unreachable=%llu "
	       "kills=%llu master_kills=%llu buses=%llu joins=%llu gone=%llu overflow_lost=%llu "
	       "bursts_checked=%llu chaos_ops=%llu\n",
	       g_seed, epoch, now() - start,
	       (unsigned long long)shm->st.sent, (unsigned long long)shm->st.received,
	       (unsigned long long)shm->st.dropped, (unsigned long long)shm->st.msent,
	       (unsigned long long)shm->st.mreceived, (unsigned long long)shm->st.filtered,
	       (unsigned long long)shm->st.enobufs,
	       (unsigned long long)shm->st.fds_sent, (unsigned long long)shm->st.fds_received,
	       (unsigned long long)shm->st.ring_frames, (unsigned long long)shm->st.eagain,
	       (unsigned long long)shm->st.unreach, (unsigned long long)shm->st.kills,
	       (unsigned long long)shm->st.master_kills, (unsigned long long)shm->st.buses,
	       (unsigned long long)shm->st.joins, (unsigned long long)shm->st.gone,
	       (unsigned long long)shm->st.overflow_lost, (unsigned long long)shm->st.bursts,
	       (unsigned long long)shm->st.chaos_ops);
	printf("bus_stress: attacks: rounds=%llu peek_msgs=%llu peeks=%llu peeked_fds=%llu "
	       "binds=%llu bind_sends=%llu stalled_sends=%llu long_stalls=%llu stall_msgs=%llu "
	       "stall_efault=%llu stall_skipped=%llu revoke_moves=%llu revoke_msgs=%llu "
	       "revoke_unreachable=%llu\n",
	       (unsigned long long)shm->st.atk_rounds, (unsigned long long)shm->st.atk_peek_msgs,
	       (unsigned long long)shm->st.atk_peeks, (unsigned long long)shm->st.atk_peek_fds,
	       (unsigned long long)shm->st.atk_binds, (unsigned long long)shm->st.atk_bind_sends,
	       (unsigned long long)shm->st.atk_stalls, (unsigned long long)shm->st.atk_long_stalls,
	       (unsigned long long)shm->st.atk_stall_msgs,
	       (unsigned long long)shm->st.atk_stall_efault,
	       (unsigned long long)shm->st.atk_stall_skipped,
	       (unsigned long long)shm->st.atk_moves, (unsigned long long)shm->st.atk_revoke_msgs,
	       (unsigned long long)shm->st.atk_revoke_unreach);
	printf("bus_stress: PASS\n");
	return 0;

failed:
	report_failure(epoch);
	return 1;
}
