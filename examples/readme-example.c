// SPDX-License-Identifier: GPL-2.0
/* The README's first example, compiled by every build so it cannot rot. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/bus.h>

int main(void)
{
	struct sockaddr_bus a = { .sbus_family = AF_BUS, .sbus_addr_ncomp = 2 };
	int fd = socket(AF_BUS, SOCK_DGRAM, 0);

	memcpy(a.sbus_path + 1, "my-bus", 6);        /* abstract: leading NUL */
	memcpy(a.sbus_addr, "org.example.bus", 16);  /* 2 components */
	return bind(fd, (struct sockaddr *)&a, sizeof(a)) ? perror("bind"), 1 : 0;
}
