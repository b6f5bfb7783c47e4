// SPDX-License-Identifier: GPL-2.0
/*
 * bus-demo: create a bus on a filesystem path and one in the abstract
 * namespace, and show what the kernel says about them.
 *
 *   bus-demo [PATH]      (default /run/bus/demo)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/bus.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define ALIGN(x, a) (((x) + (a) - 1) & ~((a) - 1))

static void show(const char *what, int fd)
{
	struct sockaddr_bus name;
	socklen_t len = sizeof(name);

	if (getsockname(fd, (struct sockaddr *)&name, &len)) {
		perror("getsockname");
		exit(1);
	}
	printf("%s: family %u, path %s%s, address \"%.*s\" (%u components)\n",
	       what, name.sbus_family, name.sbus_path[0] ? "" : "@",
	       name.sbus_path[0] ? name.sbus_path : name.sbus_path + 1,
	       (int)(name.sbus_addr_ncomp * 8), (char *)name.sbus_addr,
	       name.sbus_addr_ncomp);
}

int main(int argc, char **argv)
{
	const char *bus_path = argc > 1 ? argv[1] : "/run/bus/demo";
	char bus_addr[] = "org.example.bus";
	struct sockaddr_bus addr = { .sbus_family = AF_BUS };
	struct stat st;
	int bus_fd, abs_fd;

	unlink(bus_path);
	strncpy(addr.sbus_path, bus_path, BUS_PATH_MAX - 2);
	memcpy(addr.sbus_addr, bus_addr, MIN(sizeof(bus_addr), BUS_ADDR_MAX));
	addr.sbus_addr_ncomp = MIN(ALIGN(sizeof(bus_addr), 8) / 8, BUS_ADDR_COMP_MAX);

	bus_fd = socket(AF_BUS, SOCK_DGRAM, 0);
	if (bus_fd < 0) {
		perror("socket(AF_BUS)");
		return 1;
	}
	if (bind(bus_fd, (struct sockaddr *)&addr, sizeof(addr))) {
		perror("bind");
		return 1;
	}
	show("master of a filesystem bus", bus_fd);
	if (stat(bus_path, &st) == 0)
		printf("%s is a %s inode, mode %o\n", bus_path,
		       S_ISSOCK(st.st_mode) ? "socket" : "non-socket",
		       st.st_mode & 07777);

	memset(addr.sbus_path, 0, sizeof(addr.sbus_path));
	memcpy(addr.sbus_path + 1, "demo", 4);
	abs_fd = socket(AF_BUS, SOCK_DGRAM, 0);
	if (abs_fd < 0 || bind(abs_fd, (struct sockaddr *)&addr, sizeof(addr))) {
		perror("abstract bus");
		return 1;
	}
	show("master of an abstract bus", abs_fd);

	if (socket(AF_BUS, SOCK_STREAM, 0) < 0)
		printf("socket(AF_BUS, SOCK_STREAM): %s (only datagrams)\n",
		       strerror(errno));
	if (bind(socket(AF_BUS, SOCK_DGRAM, 0), (struct sockaddr *)&addr,
		 sizeof(addr)) < 0)
		printf("a second master for @demo: %s\n", strerror(errno));

	printf("\n/proc/net/bus:\n");
	fflush(stdout);
	if (system("cat /proc/net/bus") != 0)
		return 1;
	return 0;
}
