/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the AF_BUS benchmark programs: timing, CPU time,
 * pinning, repetitions with a median and its spread, and the CSV line
 * every figure is printed as:
 *
 *   BENCH,<group>,<case>,<config>,<param>,<metric>,<unit>,<median>,<min>,<max>,<reps>
 *
 * The CPU time is the guest's busy time from /proc/stat (every process,
 * the kernel and softirqs included), so a user-space daemon's share is
 * counted as well as the kernel's.
 */
#ifndef BENCH_H
#define BENCH_H

#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_REPS 32

static inline void bench_die(const char *what)
{
	fprintf(stderr, "bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static inline double bench_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Busy CPU seconds of the whole machine so far. */
static inline double bench_busy(void)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (!f)
		bench_die("/proc/stat");
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		   &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 7)
		bench_die("/proc/stat format");
	/* user nice system [idle] [iowait] irq softirq steal */
	return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / sysconf(_SC_CLK_TCK);
}

/* Pins the calling process to @cpu when the guest has it; quietly does
 * nothing otherwise (the config label says what was asked for).
 */
static inline void bench_pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu % sysconf(_SC_NPROCESSORS_ONLN), &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static inline int bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Prints the median, min and max of @n values. */
static inline void bench_report(const char *group, const char *name, const char *config,
				long param, const char *metric, const char *unit,
				double *v, int n)
{
	double med;

	qsort(v, n, sizeof(*v), bench_cmp);
	med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	printf("BENCH,%s,%s,%s,%ld,%s,%s,%.4g,%.4g,%.4g,%d\n", group, name, config, param,
	       metric, unit, med, v[0], v[n - 1], n);
	fflush(stdout);
}

/* The run length options every program takes. */
struct bench_opts {
	int reps;	/* measured repetitions, after one warm-up */
	double scale;	/* multiplies the message counts */
};

static inline long bench_count(const struct bench_opts *o, long n)
{
	long c = (long)(n * o->scale);

	return c < 2 ? 2 : c;
}

/* Writes and reads exactly, or dies. */
static inline void bench_write(int fd, const void *p, size_t n)
{
	if (write(fd, p, n) != (ssize_t)n)
		bench_die("write");
}

static inline void bench_read(int fd, void *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (char *)p + got, n - got);

		if (r <= 0)
			bench_die("read");
		got += r;
	}
}

#endif /* BENCH_H */
