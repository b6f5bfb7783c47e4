/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the AF_BUS kselftests: building addresses in both
 * layouts, and the macros the design documents' examples assume.
 */
#ifndef BUS_TEST_H
#define BUS_TEST_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/bus.h>

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

#endif /* BUS_TEST_H */
