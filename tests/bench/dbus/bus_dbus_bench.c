// SPDX-License-Identifier: GPL-2.0
/*
 * bus_dbus_bench: the user-space bus peer of bus_bench, through a real
 * dbus-daemon with libdbus.  Prints the same CSV lines (see ../bench.h).
 *
 *   bus_dbus_bench [-r REPS] [-s SCALE] [-p DAEMON_PID] ADDRESS [rtt] [mcast]
 *
 * rtt    a method call "Echo" with a 64 B or 4 KiB byte array, answered
 *        by a service through the daemon: "2cpu" has the client on CPU 0,
 *        the service on CPU 1 and the daemon free; "1cpu" all three on
 *        CPU 0 (the daemon is pinned when -p gives its pid)
 * mcast  a signal to 1, 8, 64 subscribers holding a match rule for it
 *
 * ADDRESS is the daemon's (unix:path=...).  Linked against libdbus-1;
 * scripts/bench.sh ships it, the daemon and their libraries to the guest.
 */
#include "../bench.h"

#include <signal.h>
#include <sys/wait.h>
#include <dbus/dbus.h>

#define NAME "org.afbus.Bench"
#define PATH "/org/afbus/Bench"
#define IFACE "org.afbus.Bench"
#define WINDOW 32

static struct bench_opts opts = { .reps = 7, .scale = 1 };
static const char *address;
static pid_t daemon_pid;

/* Pins the daemon to @cpu, or lets it run anywhere (-1). */
static void pin_daemon(int cpu)
{
	cpu_set_t set;
	int i;

	if (!daemon_pid)
		return;
	CPU_ZERO(&set);
	for (i = 0; i < sysconf(_SC_NPROCESSORS_ONLN); i++)
		if (cpu < 0 || i == cpu)
			CPU_SET(i, &set);
	sched_setaffinity(daemon_pid, sizeof(set), &set);
}

static DBusConnection *connect_bus(void)
{
	DBusConnection *c;
	DBusError err;

	dbus_error_init(&err);
	c = dbus_connection_open_private(address, &err);
	if (!c || !dbus_bus_register(c, &err)) {
		fprintf(stderr, "bus_dbus_bench: %s: %s\n", address, err.message);
		exit(1);
	}
	return c;
}

static void fail(const char *what, DBusError *err)
{
	fprintf(stderr, "bus_dbus_bench: %s: %s\n", what, err && err->message ? err->message : "");
	exit(1);
}

/* The service: answers Echo with its argument until Quit. */
static void service(int ready)
{
	DBusConnection *c = connect_bus();
	DBusError err;

	dbus_error_init(&err);
	if (dbus_bus_request_name(c, NAME, DBUS_NAME_FLAG_DO_NOT_QUEUE, &err) !=
	    DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER)
		fail("request name", &err);
	bench_write(ready, "r", 1);
	while (dbus_connection_read_write(c, -1)) {
		DBusMessage *m;

		while ((m = dbus_connection_pop_message(c))) {
			if (dbus_message_is_method_call(m, IFACE, "Echo")) {
				DBusMessage *rep = dbus_message_new_method_return(m);
				unsigned char *p;
				int len;

				if (!dbus_message_get_args(m, &err, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE,
							   &p, &len, DBUS_TYPE_INVALID) ||
				    !dbus_message_append_args(rep, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE,
							      &p, len, DBUS_TYPE_INVALID))
					fail("echo", &err);
				dbus_connection_send(c, rep, NULL);
				dbus_connection_flush(c);
				dbus_message_unref(rep);
			} else if (dbus_message_is_method_call(m, IFACE, "Quit")) {
				dbus_message_unref(m);
				dbus_connection_close(c);
				_exit(0);
			}
			dbus_message_unref(m);
		}
	}
	_exit(1);
}

static void rtt_case(int size, int cpu_service, const char *config)
{
	long n = bench_count(&opts, 1000), i;
	unsigned char *buf = calloc(1, size);
	double v[BENCH_MAX_REPS];
	DBusConnection *c;
	int ready[2], r, status;
	DBusError err;
	DBusMessage *m;
	pid_t pid;
	char b;

	dbus_error_init(&err);
	if (pipe(ready))
		bench_die("pipe");
	pin_daemon(cpu_service == 0 ? 0 : -1);
	pid = fork();
	if (pid == 0) {
		bench_pin(cpu_service);
		service(ready[1]);
	}
	bench_read(ready[0], &b, 1);
	bench_pin(0);
	c = connect_bus();
	for (r = -1; r < opts.reps; r++) {
		long count = r < 0 ? n / 4 + 2 : n;
		double t0 = bench_now();

		for (i = 0; i < count; i++) {
			DBusMessage *rep;
			unsigned char *p;
			int len;

			m = dbus_message_new_method_call(NAME, PATH, IFACE, "Echo");
			if (!m || !dbus_message_append_args(m, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &buf,
							    size, DBUS_TYPE_INVALID))
				fail("method call", NULL);
			rep = dbus_connection_send_with_reply_and_block(c, m, -1, &err);
			if (!rep)
				fail("call Echo", &err);
			if (!dbus_message_get_args(rep, &err, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &p,
						   &len, DBUS_TYPE_INVALID) || len != size)
				fail("Echo reply", &err);
			dbus_message_unref(rep);
			dbus_message_unref(m);
		}
		if (r >= 0)
			v[r] = (bench_now() - t0) * 1e6 / count;
	}
	m = dbus_message_new_method_call(NAME, PATH, IFACE, "Quit");
	dbus_message_set_no_reply(m, TRUE);
	dbus_connection_send(c, m, NULL);
	dbus_connection_flush(c);
	dbus_message_unref(m);
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail("the service failed", NULL);
	dbus_connection_close(c);
	dbus_connection_unref(c);
	close(ready[0]);
	close(ready[1]);
	bench_pin(-1);
	pin_daemon(-1);
	bench_report("rtt", "dbus_daemon", config, size, "rtt", "us", v, opts.reps);
	free(buf);
}

/* A subscriber: counts @count Tick signals, acking every WINDOW. */
static void subscriber(long count, int ready, int ack)
{
	DBusConnection *c = connect_bus();
	DBusError err;
	long got = 0;

	dbus_error_init(&err);
	dbus_bus_add_match(c, "type='signal',interface='" IFACE "',member='Tick'", &err);
	if (dbus_error_is_set(&err))
		fail("add match", &err);
	bench_write(ready, "r", 1);
	while (got < count && dbus_connection_read_write(c, -1)) {
		DBusMessage *m;

		while ((m = dbus_connection_pop_message(c))) {
			if (dbus_message_is_signal(m, IFACE, "Tick") && ++got % WINDOW == 0)
				bench_write(ack, "a", 1);
			dbus_message_unref(m);
		}
	}
	_exit(got == count ? 0 : 1);
}

static void mcast_case(int nrecv)
{
	long k = bench_count(&opts, 20000 / nrecv + 200);
	unsigned char payload[64] = "signal", *pp = payload;
	double v[BENCH_MAX_REPS], cpu[BENCH_MAX_REPS];
	DBusConnection *c = connect_bus();
	int i, r;

	k = (k + WINDOW - 1) / WINDOW * WINDOW;
	for (r = -1; r < opts.reps; r++) {
		long n = r < 0 ? WINDOW * 2 : k, sent;
		int ack[2], ready[2], status;
		double t0, t1, c0, c1;
		char acks[64];

		if (pipe(ack) || pipe(ready))
			bench_die("pipe");
		for (i = 0; i < nrecv; i++) {
			if (fork() == 0) {
				close(ack[0]);
				close(ready[0]);
				bench_pin(1);
				subscriber(n, ready[1], ack[1]);
			}
		}
		close(ack[1]);
		close(ready[1]);
		bench_read(ready[0], acks, nrecv);
		close(ready[0]);
		bench_pin(0);
		c0 = bench_busy();
		t0 = bench_now();
		for (sent = 0; sent < n; sent += WINDOW) {
			int j;

			for (j = 0; j < WINDOW; j++) {
				DBusMessage *m = dbus_message_new_signal(PATH, IFACE, "Tick");

				if (!m || !dbus_message_append_args(m, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE,
								    &pp, 64, DBUS_TYPE_INVALID) ||
				    !dbus_connection_send(c, m, NULL))
					fail("signal", NULL);
				dbus_message_unref(m);
			}
			dbus_connection_flush(c);
			bench_read(ack[0], acks, nrecv);
		}
		t1 = bench_now();
		c1 = bench_busy();
		bench_pin(-1);
		for (i = 0; i < nrecv; i++) {
			wait(&status);
			if (!WIFEXITED(status) || WEXITSTATUS(status))
				fail("a subscriber failed", NULL);
		}
		close(ack[0]);
		if (r >= 0) {
			v[r] = (double)n * nrecv / (t1 - t0);
			cpu[r] = (c1 - c0) * 1e6 / ((double)n * nrecv);
		}
	}
	dbus_connection_close(c);
	dbus_connection_unref(c);
	bench_report("mcast", "dbus_daemon_signal", "2cpu", nrecv, "delivered", "msg/s", v,
		     opts.reps);
	bench_report("mcast", "dbus_daemon_signal", "2cpu", nrecv, "cpu", "us/delivered", cpu,
		     opts.reps);
}

int main(int argc, char **argv)
{
	int c, i, all;

	while ((c = getopt(argc, argv, "r:s:p:")) != -1) {
		switch (c) {
		case 'p':
			daemon_pid = atoi(optarg);
			break;
		case 'r':
			opts.reps = atoi(optarg);
			break;
		case 's':
			opts.scale = atof(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (optind >= argc || opts.reps < 1 || opts.reps > BENCH_MAX_REPS || opts.scale <= 0)
		goto usage;
	address = argv[optind++];
	signal(SIGPIPE, SIG_IGN);
	all = optind == argc;
	for (i = optind; i < argc || all; i++) {
		const char *g = all ? NULL : argv[i];

		if (!g || !strcmp(g, "rtt")) {
			fprintf(stderr, "bus_dbus_bench: rtt\n");
			rtt_case(64, 0, "1cpu");
			rtt_case(64, 1, "2cpu");
			rtt_case(4096, 0, "1cpu");
			rtt_case(4096, 1, "2cpu");
		}
		if (!g || !strcmp(g, "mcast")) {
			fprintf(stderr, "bus_dbus_bench: mcast\n");
			mcast_case(1);
			mcast_case(8);
			mcast_case(64);
		}
		if (all)
			break;
	}
	return 0;
usage:
	fprintf(stderr, "usage: bus_dbus_bench [-r REPS] [-s SCALE] [-p PID] ADDRESS [rtt] [mcast]\n");
	return 2;
}
