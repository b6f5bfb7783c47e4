// SPDX-License-Identifier: GPL-2.0
/*
 * The examples of examples/ (the README's, and the main job's transcript)
 * and of the documentation run in the guest, so that they cannot rot.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "kselftest_harness.h"

static int run(const char *cmd, char *out, size_t len)
{
	FILE *p = popen(cmd, "r");
	size_t n;

	if (!p)
		return -1;
	n = fread(out, 1, len - 1, p);
	out[n] = 0;
	return pclose(p);
}

TEST(readme_example)
{
	char out[256];

	ASSERT_EQ(0, run("/usr/bin/readme-example", out, sizeof(out)));
}

TEST(bus_demo_transcript)
{
	static char out[8192];

	ASSERT_EQ(0, run("/usr/bin/bus-demo /tmp/bus-demo 2>&1", out, sizeof(out)));
	ASSERT_NE(NULL, strstr(out, "[granted \"org.example.Echo\"]"));
	ASSERT_NE(NULL, strstr(out, "client    <- \"org.example.Echo\": \"pong\""));
	ASSERT_NE(NULL, strstr(out, "listener  <- \"org.example.Echo\": \"Changed\" (to bitmap 0x7)"));
	ASSERT_NE(NULL, strstr(out, "the kernel: BUS_NOTIFY_GONE, 2 address(es), first \":1\""));
	ASSERT_NE(NULL, strstr(out, "No route to host"));
}

/* Every worked example of Documentation/af_bus.rst (/usr/bin/doc-*). */
TEST(documentation_examples)
{
	static char out[8192];
	struct dirent *d;
	char cmd[300];
	int n = 0;
	DIR *dir;

	dir = opendir("/usr/bin");
	ASSERT_NE(NULL, dir);
	while ((d = readdir(dir))) {
		if (strncmp(d->d_name, "doc-", 4))
			continue;
		snprintf(cmd, sizeof(cmd), "cd /tmp && /usr/bin/%s 2>&1", d->d_name);
		EXPECT_EQ(0, run(cmd, out, sizeof(out))) TH_LOG("%s:\n%s", d->d_name, out);
		n++;
	}
	closedir(dir);
	/* join, compact, multicast, ring, memfd */
	ASSERT_EQ(5, n);
}

TEST_HARNESS_MAIN
