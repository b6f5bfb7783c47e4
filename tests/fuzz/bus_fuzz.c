// SPDX-License-Identifier: GPL-2.0
/*
 * An AF_BUS-aware syscall fuzzer for the test guest.
 *
 * Threads share pools of file descriptors (AF_BUS sockets, some of them
 * masters of a few abstract buses, memfds, an AF_UNIX socket) and of ring
 * mappings, and call socket, bind, sendmsg (random and mutated sockaddr
 * bytes and lengths in both layouts, sequences of SOL_BUS and SOL_SOCKET
 * control messages, SCM_RIGHTS of any file), recvmsg, setsockopt and
 * getsockopt (ring geometries, policies, generic options), mmap and
 * munmap of rings (writing random frame status words), poll, ioctl,
 * getsockname, the unsupported calls, and close, at random; and the
 * operations that found the hardening bugs (MSG_PEEK racing receives of
 * messages with up to 200 files, bind / sendto / close racing on one
 * socket, sends from userfaultfd-stalled buffers, revokes racing sends),
 * described above op_peek.  A thread still in a call 30 s after the end
 * is a hang.
 *
 * Every call's errno must be one AF_BUS documents for it (plus EBADF and
 * ENOTSOCK, since another thread may close a descriptor): anything else,
 * or an output that breaks the UAPI (a name that is not a fixed-layout
 * AF_BUS address), prints the seed, the thread and its last calls as a
 * reproducer and fails.  A kernel splat fails the guest run anyway.
 *
 * Usage: bus_fuzz [-s SEED] [-n CALLS_PER_THREAD] [-d SECONDS] [-t THREADS] [-x]
 * -x: without the attack operations (op_peek and the others below).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
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
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <linux/bus.h>
#include <linux/filter.h>
#include <linux/sockios.h>
#include <linux/userfaultfd.h>

#define NFD		32
#define NMAP		8
#define NBUS		3
#define MAXT		8
#define LOGN		24
#define LOGW		200

static unsigned long long g_seed;
static long g_calls = 20000;
static int g_duration = 60, g_threads = 3;
static double g_end;

static int fds[NFD];			/* -1: free */
static pthread_mutex_t fd_lock = PTHREAD_MUTEX_INITIALIZER;	/* fd_lock: fds, maps */

struct map {
	char *p;
	size_t len;
};
static struct map maps[NMAP];

struct thr {
	int id;
	uint64_t s;
	long calls, ok, failed_calls, foreign, forks;
	char log[LOGN][LOGW];
	int logi;
	unsigned long errs[134];
	pthread_t th;
};
static struct thr thr[MAXT];
static volatile int stop;
static int g_no_attacks;		/* -x */

static uint64_t rnd(struct thr *t)
{
	t->s ^= t->s >> 12;
	t->s ^= t->s << 25;
	t->s ^= t->s >> 27;
	return t->s * 0x2545f4914f6cdd1dull;
}

static unsigned int rn(struct thr *t, unsigned int n)
{
	return n ? rnd(t) % n : 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void logf_(struct thr *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->log[t->logi % LOGN], LOGW, fmt, ap);
	va_end(ap);
	t->logi++;
}

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;	/* out_lock: stdout */

static void die(struct thr *t, const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	int i;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&out_lock);
	printf("bus_fuzz: FAIL thread %d call %ld: %s\n", t->id, t->calls, msg);
	printf("bus_fuzz: last calls of thread %d, oldest first:\n", t->id);
	for (i = t->logi > LOGN ? t->logi - LOGN : 0; i < t->logi; i++)
		printf("  %s\n", t->log[i % LOGN]);
	printf("bus_fuzz: reproduce with: bus_fuzz -s %llu -n %ld -t %d%s "
	       "(-t 1 replays one thread's sequence exactly)\n",
	       g_seed, t->calls + 1, g_threads, g_no_attacks ? " -x" : "");
	fflush(stdout);
	_exit(1);
}

/* errno sets */
typedef unsigned __int128 errset;
#define E(x) ((errset)1 << (x))
#define COMMON (E(EBADF) | E(ENOTSOCK) | E(EINTR))
#define PATHERR (E(ENOENT) | E(ENOTDIR) | E(EACCES) | E(ELOOP) | E(ENAMETOOLONG) | E(EROFS))
#define SENDERR (E(EINVAL) | E(EACCES) | E(EPERM) | E(EADDRINUSE) | E(EADDRNOTAVAIL) | \
		 E(ENOSPC) | E(ENOENT) | E(EHOSTUNREACH) | E(EMSGSIZE) | E(EAGAIN) | \
		 E(ECONNRESET) | E(ECONNREFUSED) | E(EISCONN) | E(EOPNOTSUPP) | \
		 E(EDESTADDRREQ) | E(ESRCH) | E(ENOBUFS) | E(ETOOMANYREFS) | PATHERR)

static __thread int cur_fd = -1;	/* the descriptor of the call checked */

/* Whether @fd is (still) an AF_BUS socket: other files' errnos are theirs. */
static int is_bus(int fd)
{
	int dom = 0;
	socklen_t l = sizeof(dom);

	return fd < 0 || (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l) == 0 && dom == AF_BUS);
}

static void check(struct thr *t, long rc, errset allowed, const char *what)
{
	int e = errno;

	t->calls++;
	if (rc >= 0) {
		t->ok++;
		logf_(t, "%s = %ld", what, rc);
		return;
	}
	logf_(t, "%s = -1 %s", what, strerror(e));
	t->failed_calls++;
	if (e >= 0 && e < 134)
		t->errs[e]++;
	if (e > 0 && e < 128 && (allowed | COMMON) & E(e))
		return;
	if (!is_bus(cur_fd)) {
		t->foreign++;
		return;
	}
	die(t, "%s: errno %d (%s) is not one AF_BUS documents for this call", what, e,
	    strerror(e));
}

static int pick_fd(struct thr *t)
{
	int i = rn(t, NFD + 2);

	if (i >= NFD)
		return cur_fd = (i == NFD ? -1 : 100000);	/* never valid */
	return cur_fd = fds[i];
}

static void put_fd(int fd)
{
	int i;

	pthread_mutex_lock(&fd_lock);
	for (i = 0; i < NFD; i++)
		if (fds[i] < 0) {
			fds[i] = fd;
			pthread_mutex_unlock(&fd_lock);
			return;
		}
	pthread_mutex_unlock(&fd_lock);
	close(fd);
}

/* A random address: a mutated valid one, in either layout, or noise. */
static socklen_t gen_addr(struct thr *t, unsigned char *buf)
{
	struct sockaddr_bus a;
	static const char *names[] = { "m", "a", "bb", "org.example.bus", ":1", ":2", "" };
	unsigned int k = rn(t, 10), n, i;
	socklen_t len;

	memset(&a, 0, sizeof(a));
	a.sbus_family = AF_BUS;
	if (k < 2) {
		strcpy(a.sbus_path, "fzfs");
		a.sbus_path[rn(t, 2) ? 0 : 4] = rn(t, 2) ? 0 : 'f';
	} else {
		snprintf(a.sbus_path + 1, 8, "fz%u", rn(t, NBUS + 1));
	}
	if (rn(t, 4) == 0) {
		a.sbus_path[BUS_PATH_MAX - 1] = '*';
		a.sbus_addr_ncomp = rn(t, 9);
		for (i = 0; i < a.sbus_addr_ncomp; i++)
			a.sbus_addr[i] = rn(t, 2) ? 1ull << rn(t, 64) : rnd(t);
	} else {
		const char *s = names[rn(t, 7)];

		memcpy(a.sbus_addr, s, strlen(s) + 1);
		a.sbus_addr_ncomp = (strlen(s) + 8) / 8;
		if (rn(t, 10) == 0)
			a.sbus_addr_ncomp = 0;
	}
	if (rn(t, 3) == 0) {
		/* The compact layout. */
		unsigned int plen = 1 + rn(t, BUS_PATH_MAX + 4);

		n = a.sbus_addr_ncomp * 8;
		memcpy(buf, &a, 4);
		memcpy(buf + 4, a.sbus_path, plen > BUS_PATH_MAX ? BUS_PATH_MAX : plen);
		if (plen > BUS_PATH_MAX)
			memset(buf + 4 + BUS_PATH_MAX, 'x', plen - BUS_PATH_MAX);
		memcpy(buf + 4 + plen, a.sbus_addr, n);
		len = 4 + plen + n;
	} else {
		memcpy(buf, &a, sizeof(a));
		len = sizeof(a);
	}
	/* Mutations. */
	n = rn(t, 4);
	while (n--) {
		switch (rn(t, 5)) {
		case 0:
			buf[rn(t, len)] ^= 1 << rn(t, 8);
			break;
		case 1:
			buf[2 + rn(t, 2)] = rnd(t);	/* ncomp */
			break;
		case 2:
			len = rn(t, 140);
			break;
		case 3:
			buf[4 + rn(t, BUS_PATH_MAX)] = rn(t, 2) ? 0 : '*';
			break;
		default:
			buf[rn(t, 2)] = rnd(t);		/* family */
			break;
		}
	}
	return len;
}

/* A control buffer: a sequence of SOL_BUS grants, SCM_RIGHTS, creds, noise. */
static size_t gen_cmsgs(struct thr *t, char *ctl, size_t max, int *nfds_out)
{
	size_t off = 0;
	unsigned int n = rn(t, 5), i, j;
	char desc[64];

	*nfds_out = 0;
	for (i = 0; i < n; i++) {
		struct cmsghdr *c = (struct cmsghdr *)(ctl + off);
		unsigned char addr[160];
		size_t dlen;

		if (off + CMSG_SPACE(160) > max)
			break;
		switch (rn(t, 6)) {
		case 0: {	/* files: a few, or up to 200 */
			int k = rn(t, 4) ? 1 + rn(t, 3) : 1 + rn(t, 200), f;

			if (off + CMSG_SPACE(k * sizeof(int)) > max)
				k = 1 + rn(t, 3);

			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			for (j = 0; j < (unsigned int)k; j++) {
				f = pick_fd(t);
				if (rn(t, 3) == 0)
					f = fds[NFD - 1 - rn(t, 4)];	/* the memfds */
				memcpy(CMSG_DATA(c) + j * sizeof(int), &f, sizeof(int));
			}
			dlen = k * sizeof(int);
			*nfds_out += k;
			break;
		}
		case 1: {	/* credentials, usually our own */
			struct ucred cr = { getpid(), getuid(), getgid() };

			if (rn(t, 4) == 0)
				cr.pid = rn(t, 3) ? 1 : 99999;
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_CREDENTIALS;
			memcpy(CMSG_DATA(c), &cr, sizeof(cr));
			dlen = sizeof(cr);
			break;
		}
		case 2:		/* noise */
			c->cmsg_level = rn(t, 2) ? SOL_BUS : (int)rnd(t);
			c->cmsg_type = rn(t, 12);
			dlen = rn(t, 160);
			for (j = 0; j < dlen; j++)
				CMSG_DATA(c)[j] = rnd(t);
			break;
		default:	/* a SOL_BUS message with an address */
			c->cmsg_level = SOL_BUS;
			c->cmsg_type = 1 + rn(t, 11);
			dlen = gen_addr(t, addr);
			memcpy(CMSG_DATA(c), addr, dlen);
			break;
		}
		c->cmsg_len = CMSG_LEN(dlen);
		if (rn(t, 12) == 0)
			c->cmsg_len = rn(t, 2) ? rnd(t) : rn(t, 40);
		off += CMSG_SPACE(dlen);
	}
	snprintf(desc, sizeof(desc), "%u", n);
	return off;
}

static int new_socket(struct thr *t)
{
	struct timeval tv = { 0, 5000 };
	int type = SOCK_DGRAM, proto = 0, fd;
	char what[64];

	if (rn(t, 8) == 0)
		type = rn(t, 2) ? SOCK_STREAM : SOCK_SEQPACKET;
	if (rn(t, 8) == 0)
		proto = rn(t, 3);
	if (rn(t, 4) == 0)
		type |= SOCK_NONBLOCK;
	fd = socket(AF_BUS, type, proto);
	snprintf(what, sizeof(what), "socket(AF_BUS, %#x, %d)", type, proto);
	check(t, fd, E(ESOCKTNOSUPPORT) | E(EPROTONOSUPPORT) | E(EMFILE), what);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static void check_name(struct thr *t, const void *name, socklen_t len, const char *what)
{
	const struct sockaddr_bus *a = name;

	if (len == 0)
		return;
	if (len != sizeof(*a) || a->sbus_family != AF_BUS || a->sbus_addr_ncomp > 8)
		die(t, "%s: returned a name of %u bytes, family %u, ncomp %u", what, len,
		    a->sbus_family, a->sbus_addr_ncomp);
}

static void op_bind(struct thr *t)
{
	unsigned char buf[160];
	socklen_t len = gen_addr(t, buf);
	char what[64];
	int fd = pick_fd(t);

	snprintf(what, sizeof(what), "bind(%d, len %u, ncomp %u)", fd, len, buf[2]);
	check(t, bind(fd, (void *)buf, len),
	      E(EINVAL) | E(EADDRINUSE) | E(EISCONN) | PATHERR, what);
}

static void op_sendmsg(struct thr *t)
{
	unsigned char name[160], data[512];
	char ctl[2048], what[96];
	struct iovec iov[2] = { { data, rn(t, 64) }, { data + 64, rn(t, 2) ? 0 : rn(t, 448) } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 1 + rn(t, 2) };
	int fd = pick_fd(t), nf, flags = MSG_NOSIGNAL | (rn(t, 2) ? MSG_DONTWAIT : 0);
	unsigned int i;

	for (i = 0; i < sizeof(data); i++)
		data[i] = rnd(t);
	if (rn(t, 8)) {
		m.msg_namelen = gen_addr(t, name);
		m.msg_name = name;
	}
	if (rn(t, 2))
		m.msg_controllen = gen_cmsgs(t, ctl, sizeof(ctl), &nf);
	if (m.msg_controllen)
		m.msg_control = ctl;
	cur_fd = fd;
	if (rn(t, 10) == 0)
		flags |= 1 << rn(t, 20);
	flags &= ~MSG_WAITALL;
	snprintf(what, sizeof(what), "sendmsg(%d, namelen %u, ctl %zu, flags %#x)", fd,
		 m.msg_namelen, (size_t)m.msg_controllen, flags);
	check(t, sendmsg(fd, &m, flags), SENDERR, what);
}

static void op_recvmsg(struct thr *t)
{
	static const int rflags[] = { MSG_PEEK, MSG_TRUNC, MSG_CMSG_CLOEXEC, MSG_ERRQUEUE,
				      MSG_OOB, MSG_WAITALL };
	struct sockaddr_bus name;
	char data[512], ctl[512], what[96];
	struct iovec iov = { data, rn(t, 513) };
	struct msghdr m = { .msg_name = rn(t, 4) ? &name : NULL, .msg_iov = &iov,
			    .msg_iovlen = 1 };
	int fd = pick_fd(t), flags = MSG_DONTWAIT;
	struct cmsghdr *c;
	long rc;

	m.msg_namelen = m.msg_name ? sizeof(name) : 0;
	if (rn(t, 2)) {
		m.msg_control = ctl;
		m.msg_controllen = rn(t, 513);
	}
	if (rn(t, 3) == 0)
		flags |= rflags[rn(t, 6)];
	snprintf(what, sizeof(what), "recvmsg(%d, iov %zu, ctl %zu, flags %#x)", fd,
		 iov.iov_len, (size_t)m.msg_controllen, flags);
	rc = recvmsg(fd, &m, flags);
	check(t, rc, E(EAGAIN) | E(ENOBUFS) | E(ECONNRESET) | E(EINVAL) | E(EOPNOTSUPP), what);
	if (rc < 0)
		return;
	if (m.msg_name)
		check_name(t, &name, m.msg_namelen, what);
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int), j, f;

			for (j = 0; j < n; j++) {
				memcpy(&f, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
				/* Only memfds may travel. */
				if (f >= 0) {
					struct stat st;

					if (fstat(f, &st) == 0 && S_ISSOCK(st.st_mode))
						die(t, "received a socket through SCM_RIGHTS");
					close(f);
				}
			}
		}
}

static void op_sockopt(struct thr *t)
{
	static const int so_opts[] = { SO_RCVBUF, SO_SNDBUF, SO_PASSCRED, SO_RXQ_OVFL,
				       SO_PEEK_OFF, SO_DETACH_FILTER, SO_LOCK_FILTER,
				       SO_PRIORITY, SO_MARK, SO_ZEROCOPY, SO_TIMESTAMP };
	unsigned char val[256];
	char what[96];
	socklen_t len = rn(t, 2) ? 4 : rn(t, 64);
	int fd = pick_fd(t), opt, set = rn(t, 2), level;
	unsigned int i;
	long rc;

	for (i = 0; i < sizeof(val); i++)
		val[i] = rn(t, 3) ? 0 : rnd(t);
	if (rn(t, 3)) {
		level = SOL_BUS;
		opt = rn(t, 7);
		if (opt == BUS_RX_RING && set) {
			struct bus_ring_req req;
			static const unsigned int sizes[] = { 0, 16, 288, 304, 2048, 4096,
							      8192, 65536 };

			req.frame_size = rn(t, 4) ? sizes[rn(t, 8)] : rnd(t);
			req.frame_nr = rn(t, 4) ? rn(t, 65) : rnd(t);
			memcpy(val, &req, sizeof(req));
			len = rn(t, 4) ? sizeof(req) : rn(t, 16);
		}
	} else {
		level = SOL_SOCKET;
		opt = so_opts[rn(t, sizeof(so_opts) / sizeof(so_opts[0]))];
		if (opt == SO_RCVBUF || opt == SO_SNDBUF) {
			int v = rn(t, 1 << 20);

			memcpy(val, &v, sizeof(v));
		}
	}
	if (set) {
		snprintf(what, sizeof(what), "setsockopt(%d, %d, %d, len %u)", fd, level, opt, len);
		rc = setsockopt(fd, level, opt, val, len);
		if (level == SOL_BUS)
			check(t, rc, E(EINVAL) | E(ENOPROTOOPT) | E(EPERM) | E(EBUSY) |
			      E(ECONNRESET) | (opt == BUS_RX_RING ? E(ENOMEM) : 0), what);
		else
			check(t, rc, E(EINVAL) | E(ENOPROTOOPT) | E(EPERM) | E(ENOENT) |
			      E(EOPNOTSUPP), what);
	} else {
		len = rn(t, 2) ? sizeof(val) : rn(t, 200);
		snprintf(what, sizeof(what), "getsockopt(%d, %d, %d, len %u)", fd, level, opt, len);
		rc = getsockopt(fd, level, opt, val, &len);
		if (level == SOL_BUS)
			check(t, rc, E(EINVAL) | E(ENOPROTOOPT) | E(ERANGE) | E(ECONNRESET) |
			      (opt == BUS_POLICY ? E(ENOTCONN) : 0), what);
		else
			check(t, rc, E(EINVAL) | E(ENOPROTOOPT) | E(EOPNOTSUPP), what);
		if (rc == 0 && level == SOL_BUS && opt == BUS_ADDRS &&
		    len % sizeof(struct sockaddr_bus))
			die(t, "BUS_ADDRS returned %u bytes", len);
	}
}

static void op_mmap(struct thr *t)
{
	static const size_t lens[] = { 4096, 8192, 16384, 65536, 2048 * 8, 4096 * 64 };
	size_t len = rn(t, 4) ? lens[rn(t, 6)] : rn(t, 1 << 20);
	off_t off = rn(t, 4) ? 0 : 4096 * rn(t, 4);
	int fd = pick_fd(t), prot = rn(t, 4) ? PROT_READ | PROT_WRITE : PROT_READ;
	int flags = rn(t, 6) ? MAP_SHARED : MAP_PRIVATE;
	char what[96];
	struct stat st;
	void *p;
	int i;

	snprintf(what, sizeof(what), "mmap(len %zu, prot %d, flags %#x, fd %d, off %ld)", len,
		 prot, flags, fd, (long)off);
	p = mmap(NULL, len, prot, flags, fd, off);
	check(t, p == MAP_FAILED ? -1 : 0, E(EINVAL) | E(ENODEV) | E(ENOMEM) | E(EACCES) |
	      E(EAGAIN) | E(EBUSY), what);
	if (p == MAP_FAILED)
		return;
	/* Only a ring is scribbled on: past a memfd's end is SIGBUS. */
	if (prot & PROT_WRITE && len >= sizeof(struct bus_frame_hdr) && rn(t, 2) &&
	    fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
		/* The reader hands frames back, or scribbles on them. */
		struct bus_frame_hdr *h = p;

		h->status = rn(t, 3) ? BUS_FRAME_KERNEL : rnd(t);
		if (rn(t, 4) == 0)
			h->len = rnd(t);
	}
	pthread_mutex_lock(&fd_lock);
	for (i = 0; i < NMAP; i++)
		if (!maps[i].p) {
			maps[i].p = p;
			maps[i].len = len;
			p = NULL;
			break;
		}
	pthread_mutex_unlock(&fd_lock);
	if (p)
		munmap(p, len);
}

static void op_unmap(struct thr *t)
{
	struct map m = { NULL, 0 };
	int i = rn(t, NMAP);

	pthread_mutex_lock(&fd_lock);
	m = maps[i];
	maps[i].p = NULL;
	pthread_mutex_unlock(&fd_lock);
	if (m.p) {
		check(t, munmap(m.p, m.len), 0, "munmap");
	}
}

static void op_misc(struct thr *t)
{
	struct sockaddr_bus name;
	socklen_t len = rn(t, 2) ? sizeof(name) : rn(t, 140);
	struct pollfd pf;
	int fd = pick_fd(t), v = 0, sv[2];
	char what[64];
	long rc;

	switch (rn(t, 9)) {
	case 0:
		snprintf(what, sizeof(what), "getsockname(%d, len %u)", fd, len);
		{
			socklen_t in = len;

			rc = getsockname(fd, (void *)&name, &len);
			check(t, rc, 0, what);
			if (rc == 0 && in >= sizeof(name) && is_bus(fd))
				check_name(t, &name, len, what);
		}
		break;
	case 1:
		snprintf(what, sizeof(what), "getpeername(%d)", fd);
		check(t, getpeername(fd, (void *)&name, &len), E(ENOTCONN), what);
		break;
	case 2:
		snprintf(what, sizeof(what), "connect(%d)", fd);
		len = gen_addr(t, (void *)&name);
		check(t, connect(fd, (void *)&name, len), E(EOPNOTSUPP) | E(EINVAL), what);
		break;
	case 3:
		snprintf(what, sizeof(what), "listen/shutdown(%d)", fd);
		check(t, rn(t, 2) ? listen(fd, 1) : shutdown(fd, rn(t, 3)), E(EOPNOTSUPP), what);
		break;
	case 4:
		check(t, socketpair(AF_BUS, SOCK_DGRAM, 0, sv), E(EOPNOTSUPP), "socketpair");
		break;
	case 5:
		pf.fd = fd;
		pf.events = POLLIN | POLLOUT | POLLERR;
		check(t, poll(&pf, 1, 0), 0, "poll");
		break;
	case 6: {
		static const unsigned long cmds[] = { FIONREAD, SIOCOUTQ, SIOCINQ, FIONBIO,
						      SIOCATMARK, 0x89e0 };
		unsigned long cmd = cmds[rn(t, 6)];

		snprintf(what, sizeof(what), "ioctl(%d, %#lx)", fd, cmd);
		check(t, ioctl(fd, cmd, &v), E(ENOTTY) | E(EINVAL) | E(EOPNOTSUPP), what);
		break;
	}
	case 7:
		snprintf(what, sizeof(what), "accept(%d)", fd);
		rc = accept(fd, NULL, NULL);
		check(t, rc, E(EOPNOTSUPP) | E(EINVAL), what);
		if (rc >= 0)
			die(t, "accept succeeded");
		break;
	default: {
		int i = rn(t, NFD - 4), old;

		pthread_mutex_lock(&fd_lock);
		old = fds[i];
		fds[i] = -1;
		pthread_mutex_unlock(&fd_lock);
		if (old >= 0) {
			snprintf(what, sizeof(what), "close(%d)", old);
			check(t, close(old), 0, what);
		}
		break;
	}
	}
}

/* A master of one of the fuzz buses accepts a pending endpoint with grants. */
static void op_master(struct thr *t)
{
	struct sockaddr_bus a, from;
	char buf[256], ctl[2048], what[96];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof(from),
			    .msg_iov = &iov, .msg_iovlen = 1 };
	int fd = pick_fd(t), nf;
	long rc;

	if (rn(t, 3) == 0) {
		/* A fresh endpoint says hello to a fuzz master. */
		fd = new_socket(t);
		if (fd < 0)
			return;
		memset(&a, 0, sizeof(a));
		a.sbus_family = AF_BUS;
		snprintf(a.sbus_path + 1, 8, "fz%u", rn(t, NBUS));
		strcpy((char *)a.sbus_addr, "m");
		a.sbus_addr_ncomp = 1;
		cur_fd = fd;
		check(t, sendto(fd, "hello", 5, MSG_DONTWAIT, (void *)&a, sizeof(a)),
		      E(EAGAIN) | E(ECONNREFUSED) | E(ECONNRESET) | E(EACCES) |
		      E(EHOSTUNREACH), "sendto(hello)");
		put_fd(fd);
		return;
	}
	if (rn(t, 3) == 0) {
		/* A new master on a fuzz bus. */
		fd = new_socket(t);
		if (fd < 0)
			return;
		memset(&a, 0, sizeof(a));
		a.sbus_family = AF_BUS;
		snprintf(a.sbus_path + 1, 8, "fz%u", rn(t, NBUS));
		strcpy((char *)a.sbus_addr, "m");
		a.sbus_addr_ncomp = 1;
		cur_fd = fd;
		check(t, bind(fd, (void *)&a, sizeof(a)), E(EADDRINUSE), "bind(master)");
		put_fd(fd);
		return;
	}
	rc = recvmsg(fd, &m, MSG_DONTWAIT);
	snprintf(what, sizeof(what), "recvmsg(master %d)", fd);
	check(t, rc, E(EAGAIN) | E(ENOBUFS) | E(ECONNRESET), what);
	if (rc < 0 || from.sbus_addr_ncomp == 0)
		return;
	check_name(t, &from, m.msg_namelen, what);
	iov.iov_len = rn(t, 64);
	if (rn(t, 2)) {
		/* Valid grants on the master's own bus, so that endpoints
		 * become members, own names and match multicast.
		 */
		static const char *names[] = { "a", "bb", "c1", "c2", "org.example.bus" };
		socklen_t l = sizeof(a);
		size_t off = 0;
		unsigned int i, n = 1 + rn(t, 3);

		if (getsockname(fd, (void *)&a, &l))
			return;
		for (i = 0; i < n; i++) {
			struct cmsghdr *c = (struct cmsghdr *)(ctl + off);
			struct sockaddr_bus g = a;
			int type = 1 + rn(t, 8);

			if (type == 6)
				type = SCM_MOVE_ADDR;
			if (type == 7) {
				/* Classes over a few low bits, so that masks meet. */
				__u64 classes = rn(t, 8);

				c->cmsg_level = SOL_BUS;
				c->cmsg_type = SCM_POLICY_CLASSES;
				c->cmsg_len = CMSG_LEN(sizeof(classes));
				memcpy(CMSG_DATA(c), &classes, sizeof(classes));
				off += CMSG_SPACE(sizeof(classes));
				continue;
			}
			memset(g.sbus_addr, 0, sizeof(g.sbus_addr));
			if (type >= SCM_MULTICAST_MATCH && type <= SCM_MULTICAST_SEND) {
				g.sbus_path[BUS_PATH_MAX - 1] = '*';
				g.sbus_addr[0] = rn(t, 4) ? 1ull << rn(t, 8) : 0;
				g.sbus_addr_ncomp = 1;
			} else {
				const char *nm = names[rn(t, 5)];

				memcpy(g.sbus_addr, nm, strlen(nm) + 1);
				g.sbus_addr_ncomp = (strlen(nm) + 8) / 8;
			}
			c->cmsg_level = SOL_BUS;
			if (type == 8) {
				/* Access masks on one of the names. */
				struct bus_addr_access x = { rn(t, 8), rn(t, 8), g };

				c->cmsg_type = SCM_ADDR_ACCESS;
				c->cmsg_len = CMSG_LEN(sizeof(x));
				memcpy(CMSG_DATA(c), &x, sizeof(x));
				off += CMSG_SPACE(sizeof(x));
				continue;
			}
			c->cmsg_type = type;
			c->cmsg_len = CMSG_LEN(sizeof(g));
			memcpy(CMSG_DATA(c), &g, sizeof(g));
			off += CMSG_SPACE(sizeof(g));
		}
		m.msg_controllen = off;
	} else {
		m.msg_controllen = gen_cmsgs(t, ctl, sizeof(ctl), &nf);
	}
	m.msg_control = m.msg_controllen ? ctl : NULL;
	cur_fd = fd;
	snprintf(what, sizeof(what), "sendmsg(master %d reply, ctl %zu)", fd,
		 (size_t)m.msg_controllen);
	check(t, sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL), SENDERR, what);
}

static void fuzz_calls(struct thr *t, long n);

/*
 * The attacks (issue 17), as calls mixed with the others.  A bus of their
 * own, "fzp": its master, two members e0 and e1 (e1 with a receive ring)
 * that an address "r" moves between, and a member s that sends to it.
 * Not in the descriptor pool, so that they live the whole run:
 *
 *  op_peek      MSG_PEEK with room for every file, or a plain receive
 *               with room for one, on e0 or e1; every file received is
 *               closed; e1's ring frames are handed back;
 *  op_fdstorm   the master sends e0 or e1 a message carrying up to 200
 *               files;
 *  op_revoke    the master revokes, grants or moves "r" (SCM_MOVE_ADDR
 *               takes it from the other member), sets access masks on it
 *               or classes on e0, e1 or s, or s sends to it (half the
 *               time asking for an answer: owed answers wrap around);
 *  op_bindrace  bind, sendto and close on one shared socket, to buses on
 *               paths in one directory (rd/, where names come and go) and
 *               abstract ones;
 *  op_stall     a send whose buffer is a userfaultfd page that a resolver
 *               thread fills 10-200 ms later (at most one per thread
 *               every 300 ms), to e0, e1's ring, or a pool socket.
 */
#define FZP_FRAMES	8
#define FZP_FRAME	2048

static int pm = -1, pe[2] = { -1, -1 }, ps = -1, rdm = -1, race_fd = -1;
static char *pe_ring;
static unsigned int pe_ring_next;
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;	/* ring_lock: pe_ring_next */
static int uffd = -1;
static pid_t main_pid;		/* forked children do not stall: uffd is the parent's */
static volatile int resolver_stop;

static struct sockaddr_bus fzp_addr(const char *name)
{
	struct sockaddr_bus a;

	memset(&a, 0, sizeof(a));
	a.sbus_family = AF_BUS;
	strcpy(a.sbus_path + 1, "fzp");
	memcpy(a.sbus_addr, name, strlen(name) + 1);
	a.sbus_addr_ncomp = (strlen(name) + 8) / 8;
	return a;
}

/* Joins @fd to fzp as @name.  0 on success. */
static int fzp_join(int fd, const char *name)
{
	struct sockaddr_bus m = fzp_addr("m"), h, g = fzp_addr(name);
	char ctl[CMSG_SPACE(sizeof(g))], buf[16];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_name = &h, .msg_namelen = sizeof(h),
			     .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c = (struct cmsghdr *)ctl;

	if (sendto(fd, "hi", 2, 0, (void *)&m, sizeof(m)) != 2)
		return -1;
	do {
		mh.msg_namelen = sizeof(h);
		if (recvmsg(pm, &mh, 0) < 0)
			return -1;
	} while (!h.sbus_addr_ncomp);
	c->cmsg_level = SOL_BUS;
	c->cmsg_type = SCM_OWNED_ADDR;
	c->cmsg_len = CMSG_LEN(sizeof(g));
	memcpy(CMSG_DATA(c), &g, sizeof(g));
	mh.msg_control = ctl;
	mh.msg_controllen = sizeof(ctl);
	iov.iov_len = 1;
	if (sendmsg(pm, &mh, 0) != 1 || recv(fd, buf, sizeof(buf), 0) != 1)
		return -1;
	return 0;
}

static void *resolver(void *arg)
{
	struct thr t = { .s = g_seed ^ 0x5bd1e995ull };
	struct pollfd pf = { uffd, POLLIN, 0 };
	struct uffd_msg msg;
	static char src[4096];

	memset(src, 0x5a, sizeof(src));
	while (!resolver_stop) {
		struct uffdio_copy cp;
		struct timespec ts;

		if (poll(&pf, 1, 50) <= 0 || read(uffd, &msg, sizeof(msg)) != sizeof(msg) ||
		    msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		ts.tv_sec = 0;
		ts.tv_nsec = (10 + rn(&t, 191)) * 1000000L;
		nanosleep(&ts, NULL);
		cp.dst = msg.arg.pagefault.address & ~4095ull;
		cp.src = (unsigned long)src;
		cp.len = 4096;
		cp.mode = 0;
		cp.copy = 0;
		ioctl(uffd, UFFDIO_COPY, &cp);	/* EEXIST: resolved already */
	}
	return NULL;
}

/* The fzp bus, rd/m and the stalling pages.  0 on success. */
static int setup_attacks(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct bus_ring_req req = { FZP_FRAME, FZP_FRAMES };
	struct sockaddr_bus a = fzp_addr("m");
	struct timeval tv = { 0, 200000 };
	int i;

	pm = socket(AF_BUS, SOCK_DGRAM, 0);
	if (pm < 0 || bind(pm, (void *)&a, sizeof(a)))
		return -1;
	setsockopt(pm, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (i = 0; i < 2; i++) {
		pe[i] = socket(AF_BUS, SOCK_DGRAM, 0);
		if (pe[i] < 0)
			return -1;
		setsockopt(pe[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	if (setsockopt(pe[1], SOL_BUS, BUS_RX_RING, &req, sizeof(req)))
		return -1;
	pe_ring = mmap(NULL, FZP_FRAME * FZP_FRAMES, PROT_READ | PROT_WRITE, MAP_SHARED, pe[1], 0);
	ps = socket(AF_BUS, SOCK_DGRAM, 0);
	if (pe_ring == MAP_FAILED || ps < 0 || fzp_join(pe[0], "e0") || fzp_join(pe[1], "e1") ||
	    fzp_join(ps, "s"))
		return -1;
	tv.tv_usec = 5000;
	for (i = 0; i < 2; i++) {
		setsockopt(pe[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(pe[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	setsockopt(ps, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(pm, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

	/* rd/m: a path bus in the directory the bind race works in. */
	memset(&a, 0, sizeof(a));
	a.sbus_family = AF_BUS;
	strcpy(a.sbus_path, "rd/m");
	strcpy((char *)a.sbus_addr, "m");
	a.sbus_addr_ncomp = 1;
	rdm = socket(AF_BUS, SOCK_DGRAM, 0);
	if (mkdir("rd", 0755) || rdm < 0 || bind(rdm, (void *)&a, sizeof(a)))
		return -1;
	race_fd = socket(AF_BUS, SOCK_DGRAM, 0);

	/* Pages whose first touch waits for the resolver (if the kernel has it). */
	main_pid = getpid();
	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		return 0;
	return ioctl(uffd, UFFDIO_API, &api) ? -1 : 0;
}

/* Closes the files a receive got.  A socket among them is a failure. */
static void close_files(struct thr *t, struct msghdr *m)
{
	struct cmsghdr *c;
	struct stat st;
	int j, f;

	for (c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (j = 0; j < (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)); j++) {
			memcpy(&f, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
			if (f < 0)
				continue;
			if (fstat(f, &st) == 0 && S_ISSOCK(st.st_mode))
				die(t, "received a socket through SCM_RIGHTS");
			close(f);
		}
	}
}

static void op_peek(struct thr *t)
{
	static __thread char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus)) +
				 CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(253 * sizeof(int))];
	char data[256], what[80];
	struct iovec iov = { data, sizeof(data) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl };
	int k = rn(t, 2), peek = rn(t, 2);
	long rc;

	if (k == 1 && rn(t, 2)) {
		/* e1's ring: hand back the frames ready. */
		pthread_mutex_lock(&ring_lock);
		for (;;) {
			struct bus_frame_hdr *f = (void *)(pe_ring + pe_ring_next * FZP_FRAME);

			if (__atomic_load_n(&f->status, __ATOMIC_ACQUIRE) != BUS_FRAME_USER)
				break;
			if (bus_frame_release(f))
				poll(&(struct pollfd){ .fd = pe[1], .events = POLLIN }, 1, 0);
			pe_ring_next = (pe_ring_next + 1) % FZP_FRAMES;
		}
		pthread_mutex_unlock(&ring_lock);
	}
	/* The peek has room for every file, the plain receive for one. */
	m.msg_controllen = peek ? sizeof(ctl) : CMSG_SPACE(sizeof(struct sockaddr_bus)) +
					       CMSG_SPACE(sizeof(int));
	snprintf(what, sizeof(what), "recvmsg(e%d, %s)", k, peek ? "MSG_PEEK" : "room for one file");
	cur_fd = pe[k];
	rc = recvmsg(pe[k], &m, MSG_DONTWAIT | (peek ? MSG_PEEK : 0));
	check(t, rc, E(EAGAIN) | E(ENOBUFS) | E(ECONNRESET), what);
	if (rc >= 0)
		close_files(t, &m);
}

static void op_fdstorm(struct thr *t)
{
	static __thread char ctl[CMSG_SPACE(200 * sizeof(int))];
	struct cmsghdr *c = (struct cmsghdr *)ctl;
	struct sockaddr_bus dst = fzp_addr(rn(t, 2) ? "e1" : "e0");
	struct iovec iov = { "files", 5 };
	struct msghdr m = { .msg_name = &dst, .msg_namelen = sizeof(dst),
			    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl };
	int k = 1 + rn(t, 200), i, f;
	char what[80];

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(k * sizeof(int));
	for (i = 0; i < k; i++) {
		f = fds[NFD - 1 - rn(t, 2)];	/* the memfds */
		memcpy(CMSG_DATA(c) + i * sizeof(int), &f, sizeof(int));
	}
	m.msg_controllen = CMSG_SPACE(k * sizeof(int));
	snprintf(what, sizeof(what), "sendmsg(fzp master, %d files)", k);
	cur_fd = pm;
	check(t, sendmsg(pm, &m, MSG_DONTWAIT | MSG_NOSIGNAL), SENDERR, what);
}

static void op_revoke(struct thr *t)
{
	char ctl[CMSG_SPACE(sizeof(struct bus_addr_access))], what[80];
	struct cmsghdr *c = (struct cmsghdr *)ctl;
	struct sockaddr_bus r = fzp_addr("r"), dst;
	struct iovec iov = { "move", 4 };
	struct msghdr m = { .msg_name = &dst, .msg_namelen = sizeof(dst),
			    .msg_iov = &iov, .msg_iovlen = 1 };
	static const int types[] = { SCM_REVOKE_ADDR, SCM_OWNED_ADDR, SCM_MOVE_ADDR,
				     SCM_ADDR_ACCESS, SCM_POLICY_CLASSES };
	static const char *const verbs[] = { "revoke", "grant", "move", "mask", "classes" };
	int k = rn(t, 3), v = rn(t, 5), type = types[v];

	if (rn(t, 2)) {
		/* s sends to r, now and then asking for an answer, which
		 * nobody gives: the owed answers wrap around.
		 */
		dst = r;
		m.msg_control = NULL;
		m.msg_controllen = 0;
		if (rn(t, 2)) {
			c->cmsg_level = SOL_BUS;
			c->cmsg_type = SCM_EXPECT_REPLY;
			c->cmsg_len = CMSG_LEN(0);
			m.msg_control = ctl;
			m.msg_controllen = CMSG_SPACE(0);
		}
		iov.iov_base = "to r";
		snprintf(what, sizeof(what), "sendmsg(s -> r)");
		cur_fd = ps;
		check(t, sendmsg(ps, &m, MSG_DONTWAIT | MSG_NOSIGNAL), SENDERR, what);
		return;
	}
	dst = fzp_addr(k == 2 ? "s" : k ? "e1" : "e0");
	c->cmsg_level = SOL_BUS;
	c->cmsg_type = type;
	if (type == SCM_ADDR_ACCESS) {
		/* Masks over classes 1 and 2 on r, which may be elsewhere. */
		struct bus_addr_access x = { rn(t, 4), rn(t, 4), r };

		c->cmsg_len = CMSG_LEN(sizeof(x));
		memcpy(CMSG_DATA(c), &x, sizeof(x));
		m.msg_controllen = CMSG_SPACE(sizeof(x));
	} else if (type == SCM_POLICY_CLASSES) {
		__u64 classes = rn(t, 4);

		c->cmsg_len = CMSG_LEN(sizeof(classes));
		memcpy(CMSG_DATA(c), &classes, sizeof(classes));
		m.msg_controllen = CMSG_SPACE(sizeof(classes));
	} else {
		c->cmsg_len = CMSG_LEN(sizeof(r));
		memcpy(CMSG_DATA(c), &r, sizeof(r));
		m.msg_controllen = CMSG_SPACE(sizeof(r));
	}
	m.msg_control = ctl;
	snprintf(what, sizeof(what), "sendmsg(fzp master, %s r to %s)", verbs[v],
		 k == 2 ? "s" : k ? "e1" : "e0");
	cur_fd = pm;
	check(t, sendmsg(pm, &m, MSG_DONTWAIT | MSG_NOSIGNAL), SENDERR, what);
}

static void op_bindrace(struct thr *t)
{
	struct sockaddr_bus a;
	char what[96], buf[64];
	int fd = race_fd, nfd;

	memset(&a, 0, sizeof(a));
	a.sbus_family = AF_BUS;
	strcpy((char *)a.sbus_addr, "m");
	a.sbus_addr_ncomp = 1;
	switch (rn(t, 8)) {
	case 0: case 1: case 2:
		if (rn(t, 3))
			snprintf(a.sbus_path, BUS_PATH_MAX, "rd/n%u", rn(t, 4));
		else
			snprintf(a.sbus_path + 1, BUS_PATH_MAX - 1, "fzr%u", rn(t, 4));
		snprintf(what, sizeof(what), "bind(race %d, %s)", fd,
			 a.sbus_path[0] ? a.sbus_path : "abstract");
		cur_fd = fd;
		check(t, bind(fd, (void *)&a, sizeof(a)),
		      E(EINVAL) | E(EADDRINUSE) | E(EISCONN) | PATHERR, what);
		break;
	case 3: case 4: case 5:
		switch (rn(t, 4)) {
		case 0:
			strcpy(a.sbus_path, "rd/m");
			break;
		case 1:
			snprintf(a.sbus_path, BUS_PATH_MAX, "rd/n%u", rn(t, 4));
			break;
		case 2:
			snprintf(a.sbus_path, BUS_PATH_MAX, "rd/x%u", rn(t, 64));
			break;
		default:
			snprintf(a.sbus_path + 1, BUS_PATH_MAX - 1, "fzr%u", rn(t, 4));
			break;
		}
		snprintf(what, sizeof(what), "sendto(race %d, %s)", fd,
			 a.sbus_path[0] ? a.sbus_path : "abstract");
		cur_fd = fd;
		check(t, sendto(fd, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL, (void *)&a, sizeof(a)),
		      SENDERR, what);
		break;
	case 6:
		nfd = socket(AF_BUS, SOCK_DGRAM, 0);
		check(t, nfd, E(EMFILE), "socket(race)");
		if (nfd < 0)
			break;
		fd = __atomic_exchange_n(&race_fd, nfd, __ATOMIC_SEQ_CST);
		snprintf(what, sizeof(what), "close(race %d)", fd);
		cur_fd = -1;
		check(t, close(fd), 0, what);
		break;
	default:
		snprintf(buf, sizeof(buf), "rd/n%u", rn(t, 4));
		unlink(buf);
		/* rd/m's queue fills with hellos: drain some. */
		while (recv(rdm, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
			;
		break;
	}
}

static void op_stall(struct thr *t)
{
	static __thread double last;
	struct uffdio_register reg;
	struct sockaddr_bus dst;
	unsigned char name[160];
	socklen_t nlen = sizeof(dst);
	char what[96];
	char *p;
	size_t len = 1 + rn(t, 1024);
	int fd;

	if (uffd < 0 || now() - last < 0.3 || getpid() != main_pid)
		return;
	/* A fresh page: its first touch waits for the resolver. */
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return;
	reg.range.start = (unsigned long)p;
	reg.range.len = 4096;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg)) {
		munmap(p, 4096);
		return;
	}
	switch (rn(t, 3)) {
	case 0:
		dst = fzp_addr(rn(t, 2) ? "e1" : "e0");
		fd = rn(t, 2) ? ps : pm;
		snprintf(what, sizeof(what), "sendto(%s, stalled buffer %zu to e%c)",
			 fd == ps ? "s" : "master", len, ((char *)dst.sbus_addr)[1]);
		break;
	case 1:
		dst = fzp_addr("r");
		fd = ps;
		snprintf(what, sizeof(what), "sendto(s, stalled buffer %zu to r)", len);
		break;
	default:
		nlen = gen_addr(t, name);
		memcpy(&dst, name, sizeof(dst));
		fd = pick_fd(t);
		snprintf(what, sizeof(what), "sendto(%d, stalled buffer %zu)", fd, len);
		break;
	}
	cur_fd = fd;
	check(t, sendto(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL,
			(void *)(nlen <= sizeof(dst) ? (void *)&dst : name), nlen),
	      SENDERR, what);
	munmap(p, 4096);
	last = now();
}

/*
 * A child inherits the descriptors and mappings, makes calls of its own
 * and is SIGKILLed a few milliseconds later, wherever it is: in a send,
 * a receive, holding a ring mapping.
 */
static void op_fork(struct thr *t)
{
	struct timespec ts = { 0, 1000000L * rn(t, 20) };
	int status;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return;
	if (pid == 0) {
		t->s ^= 0x9e3779b97f4a7c15ull;
		fuzz_calls(t, 500);
		_exit(0);
	}
	t->forks++;
	nanosleep(&ts, NULL);
	kill(pid, SIGKILL);
	if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status))
		die(t, "a forked child failed (its report is above)");
}

static void *fuzz_thread(void *arg)
{
	struct thr *t = arg;

	fuzz_calls(t, g_calls);
	return NULL;
}

static void fuzz_calls(struct thr *t, long n)
{
	long i;
	int fd;

	for (i = 0; i < n && !stop; i++) {
		if ((i & 63) == 0 && now() > g_end)
			break;
		if (rn(t, 1000) == 0) {
			op_fork(t);
			continue;
		}
		if (rn(t, 8) == 0) {
			if (g_no_attacks)
				continue;
			switch (rn(t, 5)) {
			case 0:
				op_peek(t);
				break;
			case 1:
				op_fdstorm(t);
				break;
			case 2:
				op_revoke(t);
				break;
			case 3:
				op_bindrace(t);
				break;
			default:
				op_stall(t);
				break;
			}
			continue;
		}
		switch (rn(t, 16)) {
		case 0:
			fd = new_socket(t);
			if (fd >= 0)
				put_fd(fd);
			break;
		case 1:
			op_bind(t);
			break;
		case 2: case 3: case 4:
			op_sendmsg(t);
			break;
		case 5: case 6:
			op_recvmsg(t);
			break;
		case 7: case 8:
			op_sockopt(t);
			break;
		case 9:
			op_mmap(t);
			break;
		case 10:
			op_unmap(t);
			break;
		case 11: case 12:
			op_misc(t);
			break;
		default:
			op_master(t);
			break;
		}
	}
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/bus_fuzz.XXXXXX";
	unsigned long errs[134] = { 0 };
	long calls = 0, ok = 0, foreign = 0, forks = 0;
	double start;
	int opt, i, j, sv[2];
	pthread_t res;

	g_seed = time(NULL);
	while ((opt = getopt(argc, argv, "s:n:d:t:x")) != -1) {
		switch (opt) {
		case 'x':
			g_no_attacks = 1;
			break;
		case 's':
			g_seed = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			g_calls = atol(optarg);
			break;
		case 'd':
			g_duration = atoi(optarg);
			break;
		case 't':
			g_threads = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-s SEED] [-n CALLS] [-d SECONDS] [-t THREADS] [-x]\n",
				argv[0]);
			return 2;
		}
	}
	if (g_threads < 1 || g_threads > MAXT)
		g_threads = 3;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("bus_fuzz: seed=%llu threads=%d calls_per_thread=%ld duration=%d%s\n", g_seed,
	       g_threads, g_calls, g_duration, g_no_attacks ? " (-x: no attacks)" : "");
	/* Relative filesystem paths land in a fresh directory. */
	if (!mkdtemp(dir) || chdir(dir))
		return 1;
	for (i = 0; i < NFD; i++)
		fds[i] = -1;
	/* The last four slots: files that may travel and ones that may not. */
	fds[NFD - 1] = memfd_create("fz", MFD_ALLOW_SEALING);
	fds[NFD - 2] = memfd_create("fz2", 0);
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv))
		return 1;
	fds[NFD - 3] = sv[0];
	fds[NFD - 4] = open("/dev/null", O_RDWR);
	if (setup_attacks()) {
		printf("bus_fuzz: FAIL: setting up the attack bus: %s\n", strerror(errno));
		return 1;
	}
	if (uffd >= 0 && pthread_create(&res, NULL, resolver, NULL))
		return 1;
	start = now();
	g_end = start + g_duration;
	for (i = 0; i < g_threads; i++) {
		thr[i].id = i;
		thr[i].s = g_seed * 0x9e3779b97f4a7c15ull + i + 1;
		if (pthread_create(&thr[i].th, NULL, fuzz_thread, &thr[i]))
			return 1;
	}
	for (i = 0; i < g_threads; i++) {
		/* A thread still in a call 30 s after the end is a hang. */
		struct timespec dl;

		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += (g_end > now() ? (time_t)(g_end - now()) : 0) + 30;
		if (pthread_timedjoin_np(thr[i].th, NULL, &dl))
			die(&thr[i], "hang: still in a call 30 s after the end of the run");
		calls += thr[i].calls;
		ok += thr[i].ok;
		foreign += thr[i].foreign;
		forks += thr[i].forks;
		for (j = 0; j < 134; j++)
			errs[j] += thr[i].errs[j];
	}
	resolver_stop = 1;
	if (uffd >= 0)
		pthread_join(res, NULL);
	for (i = 0; i < NMAP; i++)
		if (maps[i].p)
			munmap(maps[i].p, maps[i].len);
	for (i = 0; i < NFD; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	close(sv[1]);
	printf("bus_fuzz: seed=%llu threads=%d iterations=%ld duration=%.1fs calls=%ld ok=%ld "
	       "errors=%ld (of other files: %ld) forks=%ld\nbus_fuzz: errnos:", g_seed, g_threads,
	       calls, now() - start, calls, ok, calls - ok, foreign, forks);
	for (j = 0; j < 134; j++)
		if (errs[j])
			printf(" %s=%lu", strerrorname_np(j) ? strerrorname_np(j) : "?", errs[j]);
	printf("\nbus_fuzz: PASS\n");
	return 0;
}
