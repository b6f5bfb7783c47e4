// SPDX-License-Identifier: GPL-2.0
/*
 * bus-bloom: print the bitmap of KEY=VALUE pairs as busctl does
 * ("bitmap: " and eight 64-bit components in hex), computed with the C
 * helper tools/busctl/bus-bloom.h.  make check compares the two.
 *
 *   bus-bloom KEY=VALUE...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../tools/busctl/bus-bloom.h"

int main(int argc, char **argv)
{
	uint64_t bloom[BUS_BLOOM_WORDS] = { 0 };
	int i;

	for (i = 1; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (!eq || eq == argv[i]) {
			fprintf(stderr, "bus-bloom: \"%s\" is not a KEY=VALUE pair\n", argv[i]);
			return 2;
		}
		*eq = '\0';
		bus_bloom_add(bloom, argv[i], eq + 1);
	}
	printf("bitmap:");
	for (i = 0; i < BUS_BLOOM_WORDS; i++)
		printf(" %016llx", (unsigned long long)bloom[i]);
	printf("\n");
	return 0;
}
