// SPDX-License-Identifier: GPL-2.0
/*
 * Multicast: bloom-filter match grants, delivery once per matching
 * receiver, in-kernel BPF filtering of false positives, overrun
 * accounting (ENOBUFS, SO_RXQ_OVFL, BUS_NO_ENOBUFS), send grants, and
 * the design documents' multicast examples.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/filter.h>

#include <linux/bus.h>
#include "bus_test.h"
#include "kselftest_harness.h"

/* A multicast address of the abstract bus @name with bitmap @bits. */
static struct sockaddr_bus mcast(const struct sockaddr_bus *bus, const __u64 *bits,
				 int ncomp)
{
	struct sockaddr_bus a = *bus;

	memset(a.sbus_addr, 0, sizeof(a.sbus_addr));
	memcpy(a.sbus_addr, bits, ncomp * 8);
	a.sbus_addr_ncomp = ncomp;
	a.sbus_path[BUS_PATH_MAX - 1] = '*';
	return a;
}

static struct sockaddr_bus mcast1(const struct sockaddr_bus *bus, __u64 bits)
{
	return mcast(bus, &bits, 1);
}

static int grant_mcast(int master, const struct sockaddr_bus *to, int type,
		       const struct sockaddr_bus *mask)
{
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
	size_t off = 0;

	bus_cmsg_add(ctl, &off, type, mask);
	return bus_send(master, to, "g", 1, ctl, off, 0) == 1 ? 0 : -1;
}

/* Grants @mask to the endpoint @fd (handle @h) and consumes the reply. */
static int match(int master, int fd, const struct sockaddr_bus *h,
		 const struct sockaddr_bus *mask)
{
	char buf[8];

	if (grant_mcast(master, h, SCM_MULTICAST_MATCH, mask))
		return -1;
	return recv(fd, buf, sizeof(buf), 0) == 1 ? 0 : -1;
}

/* How many messages are waiting on @fd (drains them). */
static int pending(int fd)
{
	char buf[64];
	int n = 0;

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
		n++;
	return n;
}

FIXTURE(bus) {
	int master, s, r1, r2;
	struct sockaddr_bus maddr, sh, r1h, r2h;
};

FIXTURE_SETUP(bus)
{
	int big = 8 << 20;

	self->master = bus_master("mcast", &self->maddr);
	ASSERT_LE(0, self->master);
	self->s = socket(AF_BUS, SOCK_DGRAM, 0);
	self->r1 = socket(AF_BUS, SOCK_DGRAM, 0);
	self->r2 = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->s, "sender", &self->sh));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->r1, "r1", &self->r1h));
	ASSERT_EQ(0, bus_join(self->master, &self->maddr, self->r2, "r2", &self->r2h));
	ASSERT_EQ(0, setsockopt(self->r1, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)));
}

FIXTURE_TEARDOWN(bus)
{
	close(self->s);
	close(self->r1);
	close(self->r2);
	close(self->master);
}

TEST_F(bus, english_seed_multicast_address)
{
	/* "/tmp/test\0\0\0\0\0...*" with ncomp 8, as the seed writes it. */
	struct sockaddr_bus addr = {
		.sbus_family = AF_BUS,
		.sbus_addr_ncomp = 8,
	};
	struct sockaddr_bus m;
	struct bus_msg msg;
	__u64 bloom[8] = { 0x11, 0, 0, 0, 0, 0, 0, 0x80 };

	memcpy(addr.sbus_path, self->maddr.sbus_path, BUS_PATH_MAX);
	addr.sbus_path[BUS_PATH_MAX - 1] = '*';
	memcpy(addr.sbus_addr, bloom, sizeof(bloom));
	m = mcast1(&self->maddr, 0x01);
	ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &m));
	ASSERT_EQ(6, sendto(self->s, "event", 6, 0, (struct sockaddr *)&addr, sizeof(addr)));
	ASSERT_EQ(6, bus_recv(self->r1, &msg, 0));
	ASSERT_STREQ("event", msg.data);
	/* SCM_DST_ADDR: the bitmap it was sent to, marked multicast. */
	ASSERT_TRUE(bus_addr_eq(&addr, bus_msg_cmsg(&msg, SCM_DST_ADDR)));
	ASSERT_EQ('*', bus_msg_cmsg(&msg, SCM_DST_ADDR)->sbus_path[BUS_PATH_MAX - 1]);
	ASSERT_TRUE(bus_addr_eq(&self->maddr, &msg.name) == 0);
	ASSERT_STREQ("sender", (char *)msg.name.sbus_addr);
	ASSERT_EQ(0, pending(self->r2));
}

/* The Chinese seed's compact multicast address, built as it builds it. */
TEST(chinese_seed_compact_multicast)
{
	struct sockaddr_bus maddr = { .sbus_family = AF_BUS, .sbus_addr_ncomp = 3 };
	int master, sender, rcv, sock_fd;
	unsigned char bloom_filter_bitmap[64] = { 0 };
	struct sockaddr_bus h, g;
	char message[] = "NameOwnerChanged";
	int message_sz = sizeof(message);
	struct bus_msg msg;

	mkdir("/var/run", 0755);
	unlink("/var/run/system_bus");
	memcpy(maddr.sbus_path, "/var/run/system_bus", sizeof("/var/run/system_bus"));
	memcpy(maddr.sbus_addr, "org.freedesktop.DBus", sizeof("org.freedesktop.DBus"));
	master = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bind(master, (struct sockaddr *)&maddr, sizeof(maddr)));
	sender = socket(AF_BUS, SOCK_DGRAM, 0);
	rcv = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(0, bus_join(master, &maddr, sender, "org.example.Sender", NULL));
	ASSERT_EQ(0, bus_join(master, &maddr, rcv, "org.example.Listener", &h));
	bloom_filter_bitmap[0] = 0x05;
	bloom_filter_bitmap[63] = 0x80;
	g = maddr;
	g.sbus_path[BUS_PATH_MAX - 1] = '*';
	memset(g.sbus_addr, 0, sizeof(g.sbus_addr));
	g.sbus_addr[0] = 0x04;
	g.sbus_addr_ncomp = 1;
	ASSERT_EQ(0, match(master, rcv, &h, &g));

	sock_fd = sender;
	{
		struct sockaddr_bus addr = {
			.sbus_family = AF_BUS,
			.sbus_addr_ncomp = 8
		};
		char *sbus_addr;

		int bus_path_sz = sizeof("/var/run/system_bus");
		int bus_path_aligned_sz = ((bus_path_sz + 1 /* +1 for the '*' */)
					    + 7) & ~7       /* 64-bit aligned */;
		int addr_sz = 4 /* .sbus_family + .sbus_addr_ncomp */ +
			      bus_path_aligned_sz +
			      64 /* .sbus_addr_n_comp == 8 */;

		memcpy(addr.sbus_path, "/var/run/system_bus", bus_path_sz);
		sbus_addr = (char *) &addr + addr_sz - 64;
		sbus_addr[-1] = '*'; /* a multicast address */

		memcpy(sbus_addr, bloom_filter_bitmap, 64);

		ASSERT_EQ(message_sz, sendto(sock_fd, message, message_sz, 0,
					     (struct sockaddr *)&addr, addr_sz));
	}
	ASSERT_EQ(message_sz, bus_recv(rcv, &msg, 0));
	ASSERT_STREQ("NameOwnerChanged", msg.data);
	close(rcv);
	close(sender);
	close(master);
	unlink("/var/run/system_bus");
}

TEST_F(bus, match_truth_table)
{
	struct sockaddr_bus m = mcast1(&self->maddr, 0x0f);
	__u64 wide[8] = { 0x0f, 0, 0, 0, 0, 0, 0, 0 };

	ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &m));
	/* Sent bitmap B reaches grant M iff (B & M) == M. */
	m = mcast1(&self->maddr, 0x0f);
	ASSERT_EQ(2, bus_send_str(self->s, &m, "e", 0));		/* equal */
	m = mcast1(&self->maddr, 0xff);
	ASSERT_EQ(2, bus_send_str(self->s, &m, "s", 0));		/* superset */
	m = mcast1(&self->maddr, 0x07);
	ASSERT_EQ(2, bus_send_str(self->s, &m, "b", 0));		/* subset: no */
	m = mcast1(&self->maddr, 0xf0);
	ASSERT_EQ(2, bus_send_str(self->s, &m, "d", 0));		/* disjoint: no */
	/* ncomp 8 with the same low word: missing components are zero. */
	m = mcast(&self->maddr, wide, 8);
	ASSERT_EQ(2, bus_send_str(self->s, &m, "w", 0));
	ASSERT_EQ(3, pending(self->r1));
	ASSERT_EQ(0, pending(self->r2));
	/* Nobody matches: sending still succeeds. */
	m = mcast1(&self->maddr, 0x100);
	ASSERT_EQ(2, bus_send_str(self->s, &m, "n", 0));
}

TEST_F(bus, wide_mask_high_components)
{
	__u64 mask[8] = { 0, 0, 0, 0, 0, 0, 0, 1ULL << 63 };
	__u64 msg[8] = { 1, 0, 0, 0, 0, 0, 0, 1ULL << 63 };
	struct sockaddr_bus m = mcast(&self->maddr, mask, 8);

	ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &m));
	m = mcast(&self->maddr, msg, 8);
	ASSERT_EQ(2, bus_send_str(self->s, &m, "x", 0));
	m = mcast(&self->maddr, msg, 1);	/* component 7 reads as 0 */
	ASSERT_EQ(2, bus_send_str(self->s, &m, "y", 0));
	ASSERT_EQ(1, pending(self->r1));
}

TEST_F(bus, zero_mask_is_a_monitor_and_one_copy_per_receiver)
{
	struct sockaddr_bus zero = mcast1(&self->maddr, 0), a = mcast1(&self->maddr, 1),
			    b = mcast1(&self->maddr, 2), m;

	ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &zero));
	ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &a));
	ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &b));
	ASSERT_EQ(0, match(self->master, self->r2, &self->r2h, &zero));
	m = mcast1(&self->maddr, 3);
	ASSERT_EQ(2, bus_send_str(self->s, &m, "x", 0));
	ASSERT_EQ(1, pending(self->r1));
	ASSERT_EQ(1, pending(self->r2));
	m = mcast1(&self->maddr, 1ULL << 40);
	ASSERT_EQ(2, bus_send_str(self->s, &m, "x", 0));
	ASSERT_EQ(1, pending(self->r1));
	ASSERT_EQ(1, pending(self->r2));
}

TEST_F(bus, the_sender_does_not_get_its_own)
{
	struct sockaddr_bus zero = mcast1(&self->maddr, 0), m = mcast1(&self->maddr, 1);

	ASSERT_EQ(0, match(self->master, self->s, &self->sh, &zero));
	ASSERT_EQ(2, bus_send_str(self->s, &m, "x", 0));
	ASSERT_EQ(0, pending(self->s));
}

TEST_F(bus, unmatch_and_revoke_take_effect_for_the_next_message)
{
	struct sockaddr_bus a = mcast1(&self->maddr, 1), r1 = bus_on(&self->maddr, "r1");
	char buf[8];

	ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &a));
	ASSERT_EQ(2, bus_send_str(self->s, &a, "x", 0));
	ASSERT_EQ(1, pending(self->r1));
	ASSERT_EQ(0, grant_mcast(self->master, &self->r1h, SCM_MULTICAST_UNMATCH, &a));
	ASSERT_EQ(1, recv(self->r1, buf, sizeof(buf), 0));
	ASSERT_EQ(2, bus_send_str(self->s, &a, "x", 0));
	ASSERT_EQ(0, pending(self->r1));
	/* Unmatching what is not granted. */
	errno = 0;
	ASSERT_EQ(-1, grant_mcast(self->master, &self->r1h, SCM_MULTICAST_UNMATCH, &a));
	ASSERT_EQ(ENOENT, errno);
	/* A member whose last address is revoked is pending: it no longer
	 * multicasts.
	 */
	ASSERT_EQ(0, grant_mcast(self->master, &self->r1h, SCM_REVOKE_ADDR, &r1));
	ASSERT_EQ(1, recv(self->r1, buf, sizeof(buf), 0));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->r1, &a, "x", 0));
	ASSERT_EQ(EACCES, errno);
}

/*
 * Grants are indexed by a pair of bits of their mask (on an empty bus,
 * the two lowest).  Grants that share those bits, one-bit masks, and a
 * key whose last grant goes away (and comes back) must all keep
 * matching exactly.
 */
TEST_F(bus, grants_sharing_an_index_key)
{
	struct sockaddr_bus m125 = mcast1(&self->maddr, 0x26);	/* bits 1, 2, 5 */
	struct sockaddr_bus m129 = mcast1(&self->maddr, 0x206);	/* bits 1, 2, 9 */
	struct sockaddr_bus m1 = mcast1(&self->maddr, 0x2);	/* bit 1 alone */
	struct sockaddr_bus to125 = mcast1(&self->maddr, 0x2f);
	struct sockaddr_bus to129 = mcast1(&self->maddr, 0x20f);
	char buf[8];

	ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &m125));
	ASSERT_EQ(0, match(self->master, self->r2, &self->r2h, &m129));
	ASSERT_EQ(2, bus_send_str(self->s, &to125, "x", 0));
	ASSERT_EQ(2, bus_send_str(self->s, &to129, "x", 0));
	ASSERT_EQ(1, pending(self->r1));
	ASSERT_EQ(1, pending(self->r2));
	/* The one-bit mask under bit 1 alone. */
	ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &m1));
	ASSERT_EQ(2, bus_send_str(self->s, &to129, "x", 0));
	ASSERT_EQ(1, pending(self->r1));
	ASSERT_EQ(1, pending(self->r2));
	/* r1 loses {1,2,5}: r2's {1,2,9}, filed under the same bits, stays. */
	ASSERT_EQ(0, grant_mcast(self->master, &self->r1h, SCM_MULTICAST_UNMATCH, &m125));
	ASSERT_EQ(1, recv(self->r1, buf, sizeof(buf), 0));
	ASSERT_EQ(2, bus_send_str(self->s, &to125, "x", 0));
	ASSERT_EQ(1, pending(self->r1));	/* through its one-bit grant */
	ASSERT_EQ(0, pending(self->r2));
	ASSERT_EQ(2, bus_send_str(self->s, &to129, "x", 0));
	ASSERT_EQ(1, pending(self->r1));	/* its one-bit grant again */
	ASSERT_EQ(1, pending(self->r2));
	/* The last grants under (1, 2) and (1, 1) go: nobody matches. */
	ASSERT_EQ(0, grant_mcast(self->master, &self->r2h, SCM_MULTICAST_UNMATCH, &m129));
	ASSERT_EQ(1, recv(self->r2, buf, sizeof(buf), 0));
	ASSERT_EQ(0, grant_mcast(self->master, &self->r1h, SCM_MULTICAST_UNMATCH, &m1));
	ASSERT_EQ(1, recv(self->r1, buf, sizeof(buf), 0));
	ASSERT_EQ(2, bus_send_str(self->s, &to129, "x", 0));
	ASSERT_EQ(0, pending(self->r1));
	ASSERT_EQ(0, pending(self->r2));
	/* And a key that comes back works again; so does a member's close. */
	ASSERT_EQ(0, match(self->master, self->r2, &self->r2h, &m129));
	ASSERT_EQ(2, bus_send_str(self->s, &to129, "x", 0));
	ASSERT_EQ(1, pending(self->r2));
	close(self->r2);
	self->r2 = socket(AF_BUS, SOCK_DGRAM, 0);
	ASSERT_EQ(2, bus_send_str(self->s, &to129, "x", 0));
	ASSERT_EQ(0, pending(self->r1));
}

/* A bus that never had a match grant has no index: nobody gets a copy. */
TEST_F(bus, multicast_before_any_match_grant)
{
	struct sockaddr_bus to = mcast1(&self->maddr, 0xff);

	ASSERT_EQ(2, bus_send_str(self->s, &to, "x", 0));
	ASSERT_EQ(2, bus_send_str(self->master, &to, "x", 0));
	ASSERT_EQ(0, pending(self->r1));
	ASSERT_EQ(0, pending(self->r2));
}

/* Filler @j of member @i of the test below: 2 to 4 bits below 384. */
static struct sockaddr_bus filler_of(const struct sockaddr_bus *maddr, int i, int j)
{
	__u64 f[8] = { 0 };
	int k;

	for (k = 0; k < 2 + j % 3; k++) {
		unsigned int b = (i * 131 + j * 37 + k * 101) % 384;

		f[b / 64] |= 1ULL << (b % 64);
	}
	return mcast(maddr, f, 8);
}

/*
 * The index's buckets grow with the grants (64, then 128, then 256 for
 * the 328 grants here): every grant filed before, during and after
 * growing still reaches its holder and nobody else; taking grants out
 * works on the grown index, and so does the filter of third bits once
 * half the grants went and it was rebuilt from those left.
 */
TEST_F(bus, index_grows_and_keeps_every_grant)
{
	struct sockaddr_bus h[8], probe[8], filler;
	int m[8], i, j;
	char name[8];

	for (i = 0; i < 8; i++) {
		__u64 bits[8] = { 0 };

		m[i] = socket(AF_BUS, SOCK_DGRAM, 0);
		snprintf(name, sizeof(name), "m%d", i);
		ASSERT_EQ(0, bus_join(self->master, &self->maddr, m[i], name, &h[i]));
		/* Probes use bits 448-467 only: {448 + i, 460 + i}. */
		bits[7] = 1ULL << i | 1ULL << (12 + i);
		probe[i] = mcast(&self->maddr, bits, 8);
		ASSERT_EQ(0, match(self->master, m[i], &h[i], &probe[i]));
		/* Fillers use bits below 384: a probe never matches them. */
		for (j = 0; j < 40; j++) {
			filler = filler_of(&self->maddr, i, j);
			ASSERT_EQ(0, match(self->master, m[i], &h[i], &filler));
		}
	}
	for (i = 0; i < 8; i++) {
		ASSERT_EQ(2, bus_send_str(self->s, &probe[i], "x", 0));
		for (j = 0; j < 8; j++)
			ASSERT_EQ(i == j, pending(m[j]));
	}
	/* The last filler, member 7's, reaches it. */
	ASSERT_EQ(2, bus_send_str(self->s, &filler, "x", 0));
	ASSERT_EQ(1, pending(m[7]));
	for (j = 0; j < 8; j++)
		pending(m[j]);
	/* Even members lose their probe grants on the grown index. */
	for (i = 0; i < 8; i += 2) {
		ASSERT_EQ(0, grant_mcast(self->master, &h[i], SCM_MULTICAST_UNMATCH,
					 &probe[i]));
		ASSERT_EQ(1, recv(m[i], name, sizeof(name), MSG_DONTWAIT));
	}
	for (i = 0; i < 8; i++) {
		ASSERT_EQ(2, bus_send_str(self->s, &probe[i], "x", 0));
		for (j = 0; j < 8; j++)
			ASSERT_EQ(i == j && i % 2, pending(m[j]));
	}
	/* Members 0 to 3 lose their fillers: 164 of 328 grants gone. */
	for (i = 0; i < 4; i++)
		for (j = 0; j < 40; j++) {
			filler = filler_of(&self->maddr, i, j);
			ASSERT_EQ(0, grant_mcast(self->master, &h[i], SCM_MULTICAST_UNMATCH,
						 &filler));
			ASSERT_EQ(1, recv(m[i], name, sizeof(name), MSG_DONTWAIT));
		}
	for (i = 1; i < 8; i += 2) {
		ASSERT_EQ(2, bus_send_str(self->s, &probe[i], "x", 0));
		for (j = 0; j < 8; j++)
			ASSERT_EQ(i == j, pending(m[j]));
	}
	for (i = 4; i < 8; i++) {
		filler = filler_of(&self->maddr, i, 0);
		ASSERT_EQ(2, bus_send_str(self->s, &filler, "x", 0));
		ASSERT_EQ(1, pending(m[i]));
		for (j = 0; j < 8; j++)
			pending(m[j]);
	}
	filler = filler_of(&self->maddr, 1, 0);
	ASSERT_EQ(2, bus_send_str(self->s, &filler, "x", 0));
	ASSERT_EQ(0, pending(m[1]));
	/* Members leaving take their grants out: nobody is left to match. */
	for (i = 0; i < 8; i++)
		close(m[i]);
	ASSERT_EQ(2, bus_send_str(self->s, &filler, "x", 0));
	ASSERT_EQ(0, pending(self->r1));
	ASSERT_EQ(0, pending(self->r2));
}

#define MODEL_MEMBERS 8
#define MODEL_MASKS 24
#define MODEL_STEPS 300

static unsigned long long model_rng = 0x9e3779b97f4a7c15ULL;

static unsigned int model_rand(unsigned int n)
{
	model_rng ^= model_rng << 13;
	model_rng ^= model_rng >> 7;
	model_rng ^= model_rng << 17;
	return model_rng % n;
}

/* Bit @i of the 32 the model's masks draw from, spread over 8 words:
 * 0-7 are the bits every rule shares (an interface and member).
 */
static void model_set(__u64 *m, unsigned int i)
{
	unsigned int b = (i * 83 + 5) % 512;

	m[b / 64] |= 1ULL << (b % 64);
}

static int model_matches(const __u64 *b, const __u64 *m)
{
	int i;

	for (i = 0; i < 8; i++)
		if ((b[i] & m[i]) != m[i])
			return 0;
	return 1;
}

/*
 * Rules shaped like D-Bus ones (8 shared bits, 1 to 4 of their own)
 * granted and taken out at random while the counts of bits held move,
 * so that grants of one mask are filed under different pairs: after
 * every step each of a few multicasts reaches exactly the members a
 * model of (B & M) == M says, once each.
 */
TEST_F(bus, the_index_agrees_with_a_model_under_churn)
{
	static __u64 masks[MODEL_MEMBERS][MODEL_MASKS][8];
	int fd[MODEL_MEMBERS], n[MODEL_MEMBERS] = { 0 };
	struct sockaddr_bus h[MODEL_MEMBERS], a;
	int i, j, k, step, sends = 0, hits = 0;
	char name[8], buf[8];

	for (i = 0; i < MODEL_MEMBERS; i++) {
		fd[i] = socket(AF_BUS, SOCK_DGRAM, 0);
		snprintf(name, sizeof(name), "d%d", i);
		ASSERT_EQ(0, bus_join(self->master, &self->maddr, fd[i], name, &h[i]));
	}
	for (step = 0; step < MODEL_STEPS; step++) {
		i = model_rand(MODEL_MEMBERS);
		if (n[i] < MODEL_MASKS && (n[i] == 0 || model_rand(3))) {
			__u64 *m = masks[i][n[i]];

			memset(m, 0, 64);
			for (k = 0; k < 8 && model_rand(8); k++)
				model_set(m, k);
			for (k = 1 + model_rand(4); k > 0; k--)
				model_set(m, 8 + model_rand(24));
			a = mcast(&self->maddr, m, 8);
			ASSERT_EQ(0, match(self->master, fd[i], &h[i], &a));
			n[i]++;
		} else {
			/* The oldest grant of that mask goes: the model's first. */
			j = model_rand(n[i]);
			a = mcast(&self->maddr, masks[i][j], 8);
			ASSERT_EQ(0, grant_mcast(self->master, &h[i], SCM_MULTICAST_UNMATCH, &a));
			ASSERT_EQ(1, recv(fd[i], buf, sizeof(buf), 0));
			for (k = 0; k < n[i]; k++)
				if (!memcmp(masks[i][k], masks[i][j], 64))
					break;
			memmove(masks[i][k], masks[i][k + 1], (n[i] - k - 1) * 64);
			n[i]--;
		}
		for (j = 0; j < 4; j++) {
			__u64 b[8] = { 0 };

			for (k = 0; k < 8; k++)
				if (model_rand(6))
					model_set(b, k);
			for (k = 8 + model_rand(3); k < 32; k += 1 + model_rand(3))
				model_set(b, k);
			a = mcast(&self->maddr, b, 8);
			ASSERT_EQ(2, bus_send_str(self->s, &a, "m", 0));
			sends++;
			for (i = 0; i < MODEL_MEMBERS; i++) {
				int want = 0;

				for (k = 0; k < n[i]; k++)
					want |= model_matches(b, masks[i][k]);
				hits += want;
				ASSERT_EQ(want, pending(fd[i])) {
					TH_LOG("step %d, member %d, %d grants", step, i, n[i]);
				}
			}
		}
	}
	TH_LOG("%d multicasts, %d deliveries checked", sends, hits);
	ASSERT_LT(sends / 10, hits);
	for (i = 0; i < MODEL_MEMBERS; i++)
		close(fd[i]);
}

TEST_F(bus, match_grant_errors)
{
	struct sockaddr_bus a = mcast1(&self->maddr, 1), uni = bus_on(&self->maddr, "u");
	char name[8];
	int i;

	errno = 0;
	ASSERT_EQ(-1, grant_mcast(self->r2, &self->r1h, SCM_MULTICAST_MATCH, &a));
	ASSERT_EQ(EPERM, errno);
	errno = 0;
	ASSERT_EQ(-1, grant_mcast(self->master, &self->r1h, SCM_MULTICAST_MATCH, &uni));
	ASSERT_EQ(EINVAL, errno);
	errno = 0;
	ASSERT_EQ(-1, grant_mcast(self->master, &self->r1h, SCM_MULTICAST_SEND, &uni));
	ASSERT_EQ(EINVAL, errno);
	for (i = 0; i < 64; i++) {
		a = mcast1(&self->maddr, 1ULL << i);
		ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &a));
	}
	errno = 0;
	ASSERT_EQ(-1, grant_mcast(self->master, &self->r1h, SCM_MULTICAST_MATCH, &a));
	ASSERT_EQ(ENOSPC, errno);
	for (i = 0; i < 64; i++) {
		a = mcast1(&self->maddr, 1ULL << i);
		ASSERT_EQ(0, grant_mcast(self->master, &self->r2h, SCM_MULTICAST_SEND, &a));
		ASSERT_EQ(1, recv(self->r2, name, sizeof(name), 0));
	}
	errno = 0;
	ASSERT_EQ(-1, grant_mcast(self->master, &self->r2h, SCM_MULTICAST_SEND, &a));
	ASSERT_EQ(ENOSPC, errno);
}

TEST_F(bus, who_may_multicast)
{
	struct sockaddr_bus a = mcast1(&self->maddr, 1), other;
	int p = socket(AF_BUS, SOCK_DGRAM, 0), u = socket(AF_BUS, SOCK_DGRAM, 0);
	int m2 = bus_master("mcast-other", &other);
	char ctl[CMSG_SPACE(sizeof(struct sockaddr_bus))];
	size_t off = 0;

	ASSERT_EQ(0, bus_join(self->master, &self->maddr, p, NULL, NULL));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(p, &a, "x", 0));
	ASSERT_EQ(EACCES, errno);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(u, &a, "x", 0));
	ASSERT_EQ(EACCES, errno);
	/* The master may. */
	ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &a));
	ASSERT_EQ(2, bus_send_str(self->master, &a, "x", 0));
	ASSERT_EQ(1, pending(self->r1));
	/* Another bus's multicast. */
	other = mcast1(&other, 1);
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->s, &other, "x", 0));
	ASSERT_EQ(EISCONN, errno);
	/* Grants travel to one endpoint, not to a multicast. */
	bus_cmsg_add(ctl, &off, SCM_OWNED_ADDR, &self->r1h);
	errno = 0;
	ASSERT_EQ(-1, bus_send(self->master, &a, "x", 1, ctl, off, 0));
	ASSERT_EQ(EINVAL, errno);
	close(p);
	close(u);
	close(m2);
}

TEST_F(bus, send_grants_under_policy)
{
	unsigned int policy = BUS_POLICY_MCAST_SEND_GRANTED;
	struct sockaddr_bus grant = mcast1(&self->maddr, 0x0f), in = mcast1(&self->maddr, 0x03),
			    out = mcast1(&self->maddr, 0x13), zero = mcast1(&self->maddr, 0);
	char buf[8];

	ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &zero));
	ASSERT_EQ(2, bus_send_str(self->s, &in, "x", 0));
	ASSERT_EQ(0, setsockopt(self->master, SOL_BUS, BUS_POLICY, &policy, sizeof(policy)));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->s, &in, "x", 0));
	ASSERT_EQ(EACCES, errno);
	ASSERT_EQ(0, grant_mcast(self->master, &self->sh, SCM_MULTICAST_SEND, &grant));
	ASSERT_EQ(1, recv(self->s, buf, sizeof(buf), 0));
	ASSERT_EQ(2, bus_send_str(self->s, &in, "x", 0));
	ASSERT_EQ(2, bus_send_str(self->s, &grant, "x", 0));
	errno = 0;
	ASSERT_EQ(-1, bus_send_str(self->s, &out, "x", 0));
	ASSERT_EQ(EACCES, errno);
	ASSERT_EQ(3, pending(self->r1));
}

/* 64 receivers, half of them matching: exact counts. */
TEST(sixty_four_receivers_half_match)
{
	struct sockaddr_bus maddr, h, m;
	int master = bus_master("mcast-64", &maddr), s = socket(AF_BUS, SOCK_DGRAM, 0);
	int r[64], i;

	ASSERT_LE(0, master);
	ASSERT_EQ(0, bus_join(master, &maddr, s, "sender", NULL));
	for (i = 0; i < 64; i++) {
		char name[8];

		snprintf(name, sizeof(name), "r%d", i);
		r[i] = socket(AF_BUS, SOCK_DGRAM, 0);
		ASSERT_EQ(0, bus_join(master, &maddr, r[i], name, &h));
		m = mcast1(&maddr, i % 2 ? 0x10 : 0x20);
		ASSERT_EQ(0, match(master, r[i], &h, &m));
	}
	m = mcast1(&maddr, 0x11);
	for (i = 0; i < 10; i++)
		ASSERT_EQ(2, bus_send_str(s, &m, "x", 0));
	for (i = 0; i < 64; i++) {
		ASSERT_EQ(i % 2 ? 10 : 0, pending(r[i]));
		close(r[i]);
	}
	close(s);
	close(master);
}

/* Thousands of grants that a message does not match cost it nothing. */
TEST(thousands_of_non_matching_grants)
{
	struct sockaddr_bus maddr, h, m;
	int master = bus_master("mcast-many", &maddr), s = socket(AF_BUS, SOCK_DGRAM, 0);
	int r[32], hit = socket(AF_BUS, SOCK_DGRAM, 0), i, j;

	ASSERT_LE(0, master);
	ASSERT_EQ(0, bus_join(master, &maddr, s, "sender", NULL));
	for (i = 0; i < 32; i++) {
		char name[8];

		snprintf(name, sizeof(name), "r%d", i);
		r[i] = socket(AF_BUS, SOCK_DGRAM, 0);
		ASSERT_EQ(0, bus_join(master, &maddr, r[i], name, &h));
		for (j = 0; j < 64; j++) {
			__u64 bits[8] = { 0 };

			/* Bits 64..511: never set by the messages below. */
			bits[1 + (j % 7)] = 1ULL << ((i + j) % 64);
			m = mcast(&maddr, bits, 8);
			ASSERT_EQ(0, match(master, r[i], &h, &m));
		}
	}
	ASSERT_EQ(0, bus_join(master, &maddr, hit, "hit", &h));
	m = mcast1(&maddr, 0x3);
	ASSERT_EQ(0, match(master, hit, &h, &m));
	m = mcast1(&maddr, 0x7);
	for (i = 0; i < 100; i++)
		ASSERT_EQ(2, bus_send_str(s, &m, "x", 0));
	ASSERT_EQ(100, pending(hit));
	for (i = 0; i < 32; i++) {
		ASSERT_EQ(0, pending(r[i]));
		close(r[i]);
	}
	close(hit);
	close(s);
	close(master);
}

static int attach_classic(int fd)
{
	struct sock_filter code[] = {
		{ BPF_LD | BPF_W | BPF_ABS, 0, 0, 0 },
		{ BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0x4b455931 },	/* "KEY1" */
		{ BPF_RET | BPF_K, 0, 0, 0xffffffff },
		{ BPF_RET | BPF_K, 0, 0, 0 },
	};
	struct sock_fprog prog = { 4, code };

	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog));
}

static int attach_ebpf(int fd)
{
	struct bpf_insn insns[] = {
		{ BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_6, BPF_REG_1, 0, 0 },
		{ BPF_LD | BPF_W | BPF_ABS, 0, 0, 0, 0 },
		{ BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 2, 0x4b455931 },
		{ BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0 },
		{ BPF_JMP | BPF_EXIT, 0, 0, 0, 0 },
		{ BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, -1 },
		{ BPF_JMP | BPF_EXIT, 0, 0, 0, 0 },
	};
	union bpf_attr attr;
	int prog;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	attr.insns = (unsigned long)insns;
	attr.insn_cnt = sizeof(insns) / sizeof(insns[0]);
	attr.license = (unsigned long)"GPL";
	prog = syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	if (prog < 0)
		return -1;
	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &prog, sizeof(prog));
}

/*
 * A bloom false positive: the listener matches key "KEY1", whose bits
 * are {3, 17}; a message about "KEY2" sets {3, 17, 40} by collision.  The
 * filter, which checks the real key in the payload, drops it in the
 * kernel: the listener is never woken.
 */
static void false_positive(struct __test_metadata *_metadata, int master,
			   const struct sockaddr_bus *maddr, int s, int (*attach)(int))
{
	struct sockaddr_bus h, key1 = mcast1(maddr, (1 << 3) | (1 << 17));
	struct sockaddr_bus key2 = mcast1(maddr, (1ULL << 3) | (1ULL << 17) | (1ULL << 40));
	int l = socket(AF_BUS, SOCK_DGRAM, 0), plain = socket(AF_BUS, SOCK_DGRAM, 0);
	struct pollfd p = { .fd = l, .events = POLLIN };
	struct bus_msg m;

	ASSERT_EQ(0, bus_join(master, maddr, l, "listener", &h));
	ASSERT_EQ(0, match(master, l, &h, &key1));
	ASSERT_EQ(0, bus_join(master, maddr, plain, "plain", &h));
	ASSERT_EQ(0, match(master, plain, &h, &key1));
	ASSERT_EQ(0, attach(l));

	ASSERT_EQ(5, bus_send(s, &key2, "KEY2", 5, NULL, 0, 0));
	ASSERT_EQ(0, poll(&p, 1, 300));
	/* Without a filter the false positive arrives. */
	ASSERT_EQ(1, pending(plain));
	ASSERT_EQ(5, bus_send(s, &key1, "KEY1", 5, NULL, 0, 0));
	ASSERT_EQ(1, poll(&p, 1, 2000));
	ASSERT_EQ(5, bus_recv(l, &m, 0));
	ASSERT_STREQ("KEY1", m.data);
	/* Unicast is filtered the same way. */
	{
		struct sockaddr_bus la = bus_on(maddr, "listener");

		ASSERT_EQ(5, bus_send(s, &la, "KEY2", 5, NULL, 0, 0));
		ASSERT_EQ(0, poll(&p, 1, 100));
	}
	close(l);
	close(plain);
}

TEST_F(bus, false_positive_dropped_by_classic_bpf)
{
	false_positive(_metadata, self->master, &self->maddr, self->s, attach_classic);
}

TEST_F(bus, false_positive_dropped_by_ebpf)
{
	false_positive(_metadata, self->master, &self->maddr, self->s, attach_ebpf);
}

TEST_F(bus, overrun_enobufs_once_and_rxq_ovfl)
{
	struct sockaddr_bus a = mcast1(&self->maddr, 1);
	int one = 1, sent, got = 0, i;
	__u32 drops = 0;
	socklen_t len = sizeof(drops);
	char buf[16];

	ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &a));
	ASSERT_EQ(0, match(self->master, self->r2, &self->r2h, &a));
	ASSERT_EQ(0, setsockopt(self->r1, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one)));
	/*
	 * Never blocks: 200 sent, r1 keeps the 128 one user may fill; r2,
	 * which keeps up, gets all 200 and loses nothing.
	 */
	for (sent = 0; sent < 200; sent++) {
		ASSERT_EQ(2, bus_send_str(self->s, &a, "x", 0));
		ASSERT_EQ(2, recv(self->r2, buf, sizeof(buf), 0));
	}
	ASSERT_EQ(0, getsockopt(self->r2, SOL_BUS, BUS_DROPS, &drops, &len));
	ASSERT_EQ(0, drops);
	ASSERT_EQ(0, getsockopt(self->r1, SOL_BUS, BUS_DROPS, &drops, &len));
	ASSERT_EQ(72, drops);
	{
		struct pollfd p = { .fd = self->r1, .events = POLLIN };

		ASSERT_EQ(1, poll(&p, 1, 0));
		ASSERT_EQ(POLLIN | POLLERR, p.revents);
	}
	errno = 0;
	ASSERT_EQ(-1, recv(self->r1, buf, sizeof(buf), 0));
	ASSERT_EQ(ENOBUFS, errno);
	/* Once: then the queued messages, the last one carrying the count. */
	for (i = 0; i < 128; i++) {
		struct bus_msg m;
		__u32 ovfl = 0;
		int c;

		ASSERT_EQ(2, bus_recv(self->r1, &m, 0));
		for (c = 0; c < m.ncmsg; c++)
			if (m.cmsg_level[c] == SOL_SOCKET && m.cmsg_type[c] == SO_RXQ_OVFL)
				ovfl = 1;
		got++;
		(void)ovfl;
	}
	ASSERT_EQ(128, got);
	errno = 0;
	ASSERT_EQ(-1, recv(self->r1, buf, sizeof(buf), MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
	/* r2 never overran: no ENOBUFS for it. */
	errno = 0;
	ASSERT_EQ(-1, recv(self->r2, buf, sizeof(buf), MSG_DONTWAIT));
	ASSERT_EQ(EAGAIN, errno);
}

TEST_F(bus, rxq_ovfl_reports_the_drop_count)
{
	struct sockaddr_bus a = mcast1(&self->maddr, 1);
	int one = 1, i, c;
	char ctl[256], buf[8];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	__u32 ovfl = 0;

	ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &a));
	ASSERT_EQ(0, setsockopt(self->r1, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one)));
	ASSERT_EQ(0, setsockopt(self->r1, SOL_BUS, BUS_NO_ENOBUFS, &one, sizeof(one)));
	for (i = 0; i < 130; i++)
		ASSERT_EQ(2, bus_send_str(self->s, &a, "x", 0));
	/* Room for one more after a read: it carries the count (2). */
	ASSERT_EQ(2, recv(self->r1, buf, sizeof(buf), 0));
	ASSERT_EQ(2, bus_send_str(self->s, &a, "y", 0));
	for (c = 0; c < 128; c++) {
		h.msg_control = ctl;
		h.msg_controllen = sizeof(ctl);
		ASSERT_EQ(2, recvmsg(self->r1, &h, 0));
	}
	for (cm = CMSG_FIRSTHDR(&h); cm; cm = CMSG_NXTHDR(&h, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL)
			memcpy(&ovfl, CMSG_DATA(cm), sizeof(ovfl));
	ASSERT_STREQ("y", buf);
	ASSERT_EQ(2, ovfl);
}

TEST_F(bus, no_enobufs_is_respected)
{
	struct sockaddr_bus a = mcast1(&self->maddr, 1);
	int one = 1, i;
	socklen_t len = sizeof(one);
	char buf[8];

	ASSERT_EQ(0, setsockopt(self->r1, SOL_BUS, BUS_NO_ENOBUFS, &one, sizeof(one)));
	one = 0;
	ASSERT_EQ(0, getsockopt(self->r1, SOL_BUS, BUS_NO_ENOBUFS, &one, &len));
	ASSERT_EQ(1, one);
	ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &a));
	for (i = 0; i < 200; i++)
		ASSERT_EQ(2, bus_send_str(self->s, &a, "x", 0));
	ASSERT_EQ(2, recv(self->r1, buf, sizeof(buf), 0));
}

TEST_F(bus, creds_and_files_reach_every_receiver)
{
	struct sockaddr_bus a = mcast1(&self->maddr, 1);
	char ctl[CMSG_SPACE(sizeof(int))];
	struct cmsghdr *c = (struct cmsghdr *)ctl;
	struct bus_msg m1, m2;
	int p[2], one = 1;

	ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &a));
	ASSERT_EQ(0, match(self->master, self->r2, &self->r2h, &a));
	ASSERT_EQ(0, setsockopt(self->r2, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)));
	ASSERT_EQ(0, pipe(p));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &p[1], sizeof(int));
	ASSERT_EQ(1, bus_send(self->s, &a, "f", 1, ctl, sizeof(ctl), 0));
	close(p[1]);
	ASSERT_EQ(1, bus_recv(self->r1, &m1, 0));
	ASSERT_EQ(1, bus_recv(self->r2, &m2, 0));
	ASSERT_EQ(1, m1.nfds);
	ASSERT_EQ(1, m2.nfds);
	ASSERT_TRUE(m2.have_cred);
	ASSERT_EQ(getpid(), m2.cred.pid);
	ASSERT_EQ(1, write(m1.fds[0], "a", 1));
	ASSERT_EQ(1, write(m2.fds[0], "b", 1));
	close(m1.fds[0]);
	close(m2.fds[0]);
	{
		char buf[4];

		ASSERT_EQ(2, read(p[0], buf, sizeof(buf)));
		ASSERT_EQ(0, read(p[0], buf, sizeof(buf)));
	}
	close(p[0]);
}

TEST_F(bus, teardown_while_multicast_is_in_flight)
{
	struct sockaddr_bus a = mcast1(&self->maddr, 1);
	int status;
	pid_t pid;

	ASSERT_EQ(0, match(self->master, self->r1, &self->r1h, &a));
	ASSERT_EQ(0, match(self->master, self->r2, &self->r2h, &a));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int i;

		for (i = 0; i < 2000; i++) {
			if (bus_send_str(self->s, &a, "x", 0) < 0)
				_exit(errno == ECONNRESET ? 0 : 1);
		}
		_exit(0);
	}
	usleep(20000);
	close(self->r1);
	usleep(20000);
	close(self->master);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, WEXITSTATUS(status));
	self->r1 = socket(AF_BUS, SOCK_DGRAM, 0);
	self->master = socket(AF_BUS, SOCK_DGRAM, 0);
}

TEST_HARNESS_MAIN
