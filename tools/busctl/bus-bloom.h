/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * bus-bloom.h: the bloom scheme of afbusctl and its reference master, for C
 * programs (header only).  A multicast address is a 512-bit bitmap; each
 * KEY=VALUE pair sets BUS_BLOOM_HASHES bits, computed from two 64-bit
 * FNV-1a hashes of the pair's bytes "KEY=VALUE" (no NUL):
 *
 *   h1 = fnv1a(0xcbf29ce484222325, pair)
 *   h2 = fnv1a(0xcbf29ce484222325 ^ 0x9e3779b97f4a7c15, pair) | 1
 *   bit i = (h1 + i * h2) mod 512,  i = 0 .. 3   (64-bit wrapping)
 *
 * Bit b is (1 << (b % 64)) in sbus_addr[b / 64].  A signal's bitmap is
 * the union of its pairs' bits, a match's likewise.  afbusctl's message
 * header carries bus_bloom_hash32() of each pair, which a BPF filter
 * compares to drop the bloom filter's false positives.
 * Documentation/af_bus.rst describes the scheme; `afbusctl bloom` prints it.
 */
#ifndef BUS_BLOOM_H
#define BUS_BLOOM_H

#include <stdint.h>
#include <string.h>

#define BUS_BLOOM_BITS		512
#define BUS_BLOOM_HASHES	4
#define BUS_BLOOM_WORDS		(BUS_BLOOM_BITS / 64)

static inline uint64_t bus_bloom_fnv1a(uint64_t h, const char *key,
				       const char *value)
{
	const char *parts[3] = { key, "=", value };
	int i;

	for (i = 0; i < 3; i++) {
		const unsigned char *p = (const unsigned char *)parts[i];

		for (; *p; p++)
			h = (h ^ *p) * 0x100000001b3ULL;
	}
	return h;
}

/* Sets the bits of KEY=VALUE in @bloom (BUS_BLOOM_WORDS words). */
static inline void bus_bloom_add(uint64_t *bloom, const char *key,
				 const char *value)
{
	uint64_t h1 = bus_bloom_fnv1a(0xcbf29ce484222325ULL, key, value);
	uint64_t h2 = bus_bloom_fnv1a(0xcbf29ce484222325ULL ^
				      0x9e3779b97f4a7c15ULL, key, value) | 1;
	uint64_t i;

	for (i = 0; i < BUS_BLOOM_HASHES; i++) {
		unsigned int bit = (h1 + i * h2) % BUS_BLOOM_BITS;

		bloom[bit / 64] |= 1ULL << (bit % 64);
	}
}

/* The 32-bit hash of KEY=VALUE that afbusctl's message header carries. */
static inline uint32_t bus_bloom_hash32(const char *key, const char *value)
{
	uint64_t h1 = bus_bloom_fnv1a(0xcbf29ce484222325ULL, key, value);

	return (uint32_t)((h1 >> 32) ^ h1);
}

#endif /* BUS_BLOOM_H */
