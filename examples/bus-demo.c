// SPDX-License-Identifier: GPL-2.0
/*
 * bus-demo: a bus at work, as a transcript.  A master binds a bus; a
 * service and a client join and are granted names; the client calls the
 * service; a listener subscribes to a signal; the service leaves and the
 * master hears of it from the kernel.
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
#include <sys/uio.h>
#include <unistd.h>
#include <linux/bus.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define ALIGN(x, a) (((x) + (a) - 1) & ~((a) - 1))

static struct sockaddr_bus bus;	/* the master's address */

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* The address @name on the bus, or its multicast bitmap @bits. */
static struct sockaddr_bus on_bus(const char *name, unsigned long long bits)
{
	struct sockaddr_bus a = bus;

	memset(a.sbus_addr, 0, sizeof(a.sbus_addr));
	if (name) {
		memcpy(a.sbus_addr, name, MIN(strlen(name) + 1, BUS_ADDR_MAX));
		a.sbus_addr_ncomp = ALIGN(strlen(name) + 1, 8) / 8;
	} else {
		a.sbus_addr[0] = bits;
		a.sbus_addr_ncomp = 1;
		a.sbus_path[BUS_PATH_MAX - 1] = '*';
	}
	return a;
}

static const char *show(const struct sockaddr_bus *a)
{
	static char buf[2][96];
	static int i;
	char *out = buf[i++ % 2];

	if (a->sbus_addr_ncomp == 0)
		snprintf(out, 96, "the kernel");
	else if (a->sbus_path[BUS_PATH_MAX - 1] == '*')
		snprintf(out, 96, "bitmap %#llx", (unsigned long long)a->sbus_addr[0]);
	else
		snprintf(out, 96, "\"%.*s\"", a->sbus_addr_ncomp * 8, (char *)a->sbus_addr);
	return out;
}

/* Sends @text to @to, with one SOL_BUS control message if @type. */
static void say(int fd, const struct sockaddr_bus *to, const char *text,
		int type, const struct sockaddr_bus *arg)
{
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
	struct iovec iov = { (void *)text, strlen(text) + 1 };
	struct msghdr m = { (void *)to, sizeof(*to), &iov, 1, NULL, 0, 0 };

	if (type) {
		struct cmsghdr *c = (struct cmsghdr *)ctl;

		c->cmsg_level = SOL_BUS;
		c->cmsg_type = type;
		c->cmsg_len = CMSG_LEN(sizeof(*arg));
		memcpy(CMSG_DATA(c), arg, sizeof(*arg));
		m.msg_control = ctl;
		m.msg_controllen = sizeof(ctl);
	}
	if (sendmsg(fd, &m, 0) < 0)
		die("sendmsg");
}

/* Receives one message on @fd and prints it as @who saw it. */
static struct sockaddr_bus hear(int fd, const char *who)
{
	char data[512], ctl[1024];
	struct sockaddr_bus from;
	struct iovec iov = { data, sizeof(data) };
	struct msghdr m = { &from, sizeof(from), &iov, 1, ctl, sizeof(ctl), 0 };
	struct cmsghdr *c;
	ssize_t n = recvmsg(fd, &m, 0);

	if (n < 0)
		die("recvmsg");
	if (from.sbus_addr_ncomp == 0) {
		struct bus_notification note;

		memcpy(&note, data, sizeof(note));
		printf("  %-9s <- the kernel: %s, %llu address(es), first %s\n", who,
		       note.type == BUS_NOTIFY_GONE ? "BUS_NOTIFY_GONE" : "BUS_NOTIFY_OVERFLOW",
		       (unsigned long long)note.count,
		       show((struct sockaddr_bus *)(data + note.hdr_len)));
		return from;
	}
	printf("  %-9s <- %s: \"%s\"", who, show(&from), data);
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_BUS && c->cmsg_type == SCM_OWNED_ADDR)
			printf(" [granted %s]", show((struct sockaddr_bus *)CMSG_DATA(c)));
		else if (c->cmsg_level == SOL_BUS && c->cmsg_type == SCM_MULTICAST_MATCH)
			printf(" [may hear %s]", show((struct sockaddr_bus *)CMSG_DATA(c)));
		else if (c->cmsg_level == SOL_BUS && c->cmsg_type == SCM_DST_ADDR)
			printf(" (to %s)", show((struct sockaddr_bus *)CMSG_DATA(c)));
	printf("\n");
	return from;
}

/* An endpoint asks to join; the master grants it @name. */
static int join(int master, const char *who, const char *name)
{
	struct sockaddr_bus handle, granted = on_bus(name, 0);
	int fd = socket(AF_BUS, SOCK_DGRAM, 0);

	if (fd < 0)
		die("socket");
	printf("%s joins:\n", who);
	say(fd, &bus, "hello", 0, NULL);
	handle = hear(master, "master");
	say(master, &handle, "welcome", SCM_OWNED_ADDR, &granted);
	hear(fd, who);
	return fd;
}

int main(int argc, char **argv)
{
	const char *bus_path = argc > 1 ? argv[1] : "/run/bus/demo";
	char bus_addr[] = "org.example.bus";
	struct sockaddr_bus svc, cli, lis, signal, any;
	int master, service, client, listener;
	struct stat st;

	unlink(bus_path);
	memset(&bus, 0, sizeof(bus));
	bus.sbus_family = AF_BUS;
	strncpy(bus.sbus_path, bus_path, BUS_PATH_MAX - 2);
	memcpy(bus.sbus_addr, bus_addr, MIN(sizeof(bus_addr), BUS_ADDR_MAX));
	bus.sbus_addr_ncomp = MIN(ALIGN(sizeof(bus_addr), 8) / 8, BUS_ADDR_COMP_MAX);

	master = socket(AF_BUS, SOCK_DGRAM, 0);
	if (master < 0)
		die("socket(AF_BUS)");
	if (bind(master, (struct sockaddr *)&bus, sizeof(bus)))
		die("bind");
	stat(bus_path, &st);
	printf("master binds %s as %s (a socket inode: %s)\n", bus_path, show(&bus),
	       S_ISSOCK(st.st_mode) ? "yes" : "no");

	service = join(master, "service", "org.example.Echo");
	client = join(master, "client", "org.example.Client");
	listener = join(master, "listener", "org.example.Listener");

	printf("client calls the service by name:\n");
	svc = on_bus("org.example.Echo", 0);
	say(client, &svc, "ping", 0, NULL);
	hear(service, "service");
	cli = on_bus("org.example.Client", 0);
	say(service, &cli, "pong", 0, NULL);
	hear(client, "client");

	printf("listener subscribes to a signal (bloom bits 0x6):\n");
	signal = on_bus(NULL, 0x6);
	lis = on_bus("org.example.Listener", 0);
	say(master, &lis, "subscribed", SCM_MULTICAST_MATCH, &signal);
	hear(listener, "listener");
	printf("service emits bitmap 0x7 (it covers 0x6):\n");
	any = on_bus(NULL, 0x7);
	say(service, &any, "Changed", 0, NULL);
	hear(listener, "listener");

	printf("service closes:\n");
	close(service);
	hear(master, "master");
	if (sendto(client, "ping", 5, 0, (struct sockaddr *)&svc, sizeof(svc)) < 0)
		printf("  client    -> \"org.example.Echo\": %s\n", strerror(errno));

	printf("\n/proc/net/bus:\n");
	fflush(stdout);
	if (system("cat /proc/net/bus") != 0)
		return 1;
	close(client);
	close(listener);
	close(master);
	return 0;
}
