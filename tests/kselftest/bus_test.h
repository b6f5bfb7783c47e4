/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the AF_BUS kselftests: building addresses in both
 * layouts, and the macros the design documents' examples assume.
 */
#ifndef BUS_TEST_H
#define BUS_TEST_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/bus.h>

/*
 * Without AF_BUS (af_bus.ko not loaded), or not as root (the tests make
 * buses in /run, switch uids and set up namespaces), the whole program
 * skips as a kselftest does: an empty KTAP plan and exit code KSFT_SKIP.
 */
static void __attribute__((constructor)) bus_test_require(void)
{
	int fd = socket(AF_BUS, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		printf("TAP version 13\n1..0 # SKIP AF_BUS is not available (is af_bus.ko loaded?): %s\n",
		       strerror(errno));
		exit(4);	/* KSFT_SKIP */
	}
	close(fd);
	if (geteuid() != 0) {
		printf("TAP version 13\n1..0 # SKIP the AF_BUS selftests must run as root\n");
		exit(4);
	}
}

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef ALIGN
#define ALIGN(x, a) (((x) + (a) - 1) & ~((a) - 1))
#endif

/* A fixed-layout address: @path (NUL-terminated unless abstract) and
 * @addr, @addr_len bytes, rounded up to whole components.
 */
static inline struct sockaddr_bus bus_addr(const char *path, size_t path_len,
					   const void *addr, size_t addr_len)
{
	struct sockaddr_bus a;

	memset(&a, 0, sizeof(a));
	a.sbus_family = AF_BUS;
	memcpy(a.sbus_path, path, MIN(path_len, (size_t)BUS_PATH_MAX));
	memcpy(a.sbus_addr, addr, MIN(addr_len, (size_t)BUS_ADDR_MAX));
	a.sbus_addr_ncomp = ALIGN(addr_len, 8) / 8;
	return a;
}

/* A filesystem-path address with a string address. */
static inline struct sockaddr_bus bus_addr_str(const char *path, const char *addr)
{
	return bus_addr(path, strlen(path) + 1, addr, strlen(addr) + 1);
}

/* An abstract address "\0name" with a string address. */
static inline struct sockaddr_bus bus_addr_abstract(const char *name, const char *addr)
{
	char path[BUS_PATH_MAX] = { 0 };

	memcpy(path + 1, name, MIN(strlen(name), (size_t)BUS_PATH_MAX - 2));
	return bus_addr(path, sizeof(path), addr, strlen(addr) + 1);
}

/* The compact layout: header, @path_part_len bytes of path, then the
 * address part.  Writes into @buf and returns the address length.
 */
static inline socklen_t bus_addr_compact(void *buf, const char *path_part,
					 size_t path_part_len, const void *addr,
					 unsigned short ncomp)
{
	unsigned char *p = buf;
	unsigned short family = AF_BUS;

	memset(buf, 0, sizeof(struct sockaddr_bus));
	memcpy(p, &family, 2);
	memcpy(p + 2, &ncomp, 2);
	memcpy(p + 4, path_part, path_part_len);
	memcpy(p + 4 + path_part_len, addr, ncomp * 8);
	return 4 + path_part_len + ncomp * 8;
}

/* A message with an optional destination, payload and SOL_BUS cmsgs. */
struct bus_msg {
	struct sockaddr_bus name;
	socklen_t namelen;
	char data[4096];
	size_t len;
	int flags;			/* recvmsg's msg_flags */
	/* Control messages received, in order. */
	int ncmsg;
	int cmsg_level[16];
	int cmsg_type[16];
	struct sockaddr_bus cmsg_addr[16];
	struct ucred cred;
	int have_cred;
	int fds[8];
	int nfds;
};

/* Appends a SOL_BUS control message carrying @a to @ctl at @*off. */
static inline void bus_cmsg_add(char *ctl, size_t *off, int type,
				const struct sockaddr_bus *a)
{
	struct cmsghdr *c = (struct cmsghdr *)(ctl + *off);

	c->cmsg_level = SOL_BUS;
	c->cmsg_type = type;
	c->cmsg_len = CMSG_LEN(sizeof(*a));
	memcpy(CMSG_DATA(c), a, sizeof(*a));
	*off += CMSG_SPACE(sizeof(*a));
}

/*
 * Sends @len bytes of @data to @dst with @nctl bytes of control messages.
 * Returns sendmsg's result (errno set on -1).
 */
static inline ssize_t bus_send(int fd, const struct sockaddr_bus *dst,
			       const void *data, size_t len,
			       void *ctl, size_t nctl, int flags)
{
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr m = {
		.msg_name = (void *)dst,
		.msg_namelen = dst ? sizeof(*dst) : 0,
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = nctl ? ctl : NULL,
		.msg_controllen = nctl,
	};

	return sendmsg(fd, &m, flags | MSG_NOSIGNAL);
}

/* Sends a NUL-terminated string. */
static inline ssize_t bus_send_str(int fd, const struct sockaddr_bus *dst,
				   const char *s, int flags)
{
	return bus_send(fd, dst, s, strlen(s) + 1, NULL, 0, flags);
}

/* Receives into @m, parsing the control messages.  Returns recvmsg's
 * result (errno set on -1).
 */
static inline ssize_t bus_recv(int fd, struct bus_msg *m, int flags)
{
	char ctl[4096];
	struct iovec iov = { .iov_base = m->data, .iov_len = sizeof(m->data) };
	struct msghdr h = {
		.msg_name = &m->name,
		.msg_namelen = sizeof(m->name),
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl,
		.msg_controllen = sizeof(ctl),
	};
	struct cmsghdr *c;
	ssize_t n;

	memset(m, 0, sizeof(*m));
	n = recvmsg(fd, &h, flags);
	if (n < 0)
		return n;
	m->len = n;
	m->namelen = h.msg_namelen;
	m->flags = h.msg_flags;
	for (c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
		if (m->ncmsg < 16) {
			m->cmsg_level[m->ncmsg] = c->cmsg_level;
			m->cmsg_type[m->ncmsg] = c->cmsg_type;
			if (c->cmsg_level == SOL_BUS)
				memcpy(&m->cmsg_addr[m->ncmsg], CMSG_DATA(c),
				       sizeof(struct sockaddr_bus));
			m->ncmsg++;
		}
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			memcpy(&m->cred, CMSG_DATA(c), sizeof(m->cred));
			m->have_cred = 1;
		}
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			m->nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(m->fds, CMSG_DATA(c), m->nfds * sizeof(int));
		}
	}
	return n;
}

/* The SOL_BUS control message of @type in @m, or NULL. */
static inline const struct sockaddr_bus *bus_msg_cmsg(const struct bus_msg *m,
						      int type)
{
	int i;

	for (i = 0; i < m->ncmsg; i++)
		if (m->cmsg_level[i] == SOL_BUS && m->cmsg_type[i] == type)
			return &m->cmsg_addr[i];
	return NULL;
}

/* Whether two addresses name the same thing (fixed layout, ncomp bytes). */
static inline int bus_addr_eq(const struct sockaddr_bus *a,
			      const struct sockaddr_bus *b)
{
	return a->sbus_family == b->sbus_family &&
	       a->sbus_addr_ncomp == b->sbus_addr_ncomp &&
	       !memcmp(a->sbus_path, b->sbus_path, BUS_PATH_MAX) &&
	       !memcmp(a->sbus_addr, b->sbus_addr, a->sbus_addr_ncomp * 8);
}

/* A bound master on a fresh abstract bus named @name, address "master". */
static inline int bus_master(const char *name, struct sockaddr_bus *addr)
{
	int fd = socket(AF_BUS, SOCK_DGRAM, 0);

	*addr = bus_addr_abstract(name, "master");
	if (fd < 0 || bind(fd, (struct sockaddr *)addr, sizeof(*addr)))
		return -1;
	return fd;
}

/*
 * Joins @fd to the bus of @master (whose address is @maddr): the endpoint
 * sends "hello", the master replies granting @grant (if not NULL).
 * Returns 0, or -1 with errno set.  @handle receives the endpoint's handle.
 */
static inline int bus_join(int master, const struct sockaddr_bus *maddr,
			   int fd, const char *grant, struct sockaddr_bus *handle)
{
	struct bus_msg m;
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
	size_t off = 0;
	struct sockaddr_bus g;

	if (bus_send_str(fd, maddr, "hello", 0) < 0)
		return -1;
	if (bus_recv(master, &m, 0) < 0)
		return -1;
	if (handle)
		*handle = m.name;
	if (!grant)
		return 0;
	g = *maddr;
	memset(g.sbus_addr, 0, sizeof(g.sbus_addr));
	memcpy(g.sbus_addr, grant, strlen(grant) + 1);
	g.sbus_addr_ncomp = ALIGN(strlen(grant) + 1, 8) / 8;
	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &g);
	if (bus_send(master, &m.name, "welcome", 8, ctl, off, 0) < 0)
		return -1;
	return bus_recv(fd, &m, 0) < 0 ? -1 : 0;
}

/* The address @s on the bus of @bus. */
static inline struct sockaddr_bus bus_on(const struct sockaddr_bus *bus,
					 const char *s)
{
	struct sockaddr_bus a = *bus;

	memset(a.sbus_addr, 0, sizeof(a.sbus_addr));
	memcpy(a.sbus_addr, s, MIN(strlen(s) + 1, (size_t)BUS_ADDR_MAX));
	a.sbus_addr_ncomp = ALIGN(strlen(s) + 1, 8) / 8;
	return a;
}

#endif /* BUS_TEST_H */
