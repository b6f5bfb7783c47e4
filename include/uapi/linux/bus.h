/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * AF_BUS: sockets for bus-oriented IPC.
 *
 * A socket bind()s a bus and becomes its master.  Other sockets send
 * their first message to the master's address, which makes them pending
 * endpoints with a kernel handle; the master's replies carry SOL_BUS
 * control messages that grant addresses and multicast matches.  See
 * Documentation/af_bus.rst.
 */
#ifndef _UAPI_LINUX_BUS_H
#define _UAPI_LINUX_BUS_H

#include <linux/types.h>
#include <linux/socket.h>

/* The family and level numbers also live in <linux/socket.h> in-kernel. */
#ifndef AF_BUS
#define AF_BUS			46
#endif
#ifndef PF_BUS
#define PF_BUS			AF_BUS
#endif
#ifndef SOL_BUS
#define SOL_BUS			288
#endif
#define BUS_SOCKET		SOL_BUS		/* the design's name for SOL_BUS */

#define BUS_PATH_MAX		60
#define BUS_ADDR_COMP_MAX	8
#define BUS_ADDR_MAX		(BUS_ADDR_COMP_MAX * sizeof(__u64))

/*
 * An AF_BUS address: the bus (sbus_path) and an address on it
 * (sbus_addr_ncomp 64-bit components of sbus_addr, compared as bytes).
 *
 * sbus_path starting with a non-NUL byte is a filesystem path; starting
 * with NUL it is an abstract name (the bytes up to the next NUL) scoped
 * to the network namespace.  A path part whose last byte is '*' makes a
 * multicast address, whose components are a bloom-filter bitmap.
 * sbus_addr_ncomp == 0 is the kernel itself.
 *
 * Input may also use the compact layout: with an address length shorter
 * than sizeof(struct sockaddr_bus), the address part is the last
 * sbus_addr_ncomp * 8 bytes and the path part everything between
 * sbus_addr_ncomp and it.  The kernel always outputs this layout.
 */
struct sockaddr_bus {
	__kernel_sa_family_t	sbus_family;		/* AF_BUS */
	unsigned short		sbus_addr_ncomp;	/* components used */
	char			sbus_path[BUS_PATH_MAX];
	__u64			sbus_addr[BUS_ADDR_COMP_MAX];
};

/* The first byte of every endpoint handle (":<decimal id>"). */
#define BUS_HANDLE_PREFIX	':'
/* The last byte of the path part of a multicast address. */
#define BUS_MULTICAST_MARK	'*'

/*
 * Control messages at level SOL_BUS.  The grants (SCM_OWNED_ADDR to
 * SCM_MULTICAST_SEND, and SCM_MOVE_ADDR) are only accepted from the bus
 * master, are applied atomically with the delivery of the message
 * carrying them, and are seen by the receiver.  Each carries one struct
 * sockaddr_bus.
 */
#define SCM_OWNED_ADDR		1	/* destination now owns the address */
#define SCM_REVOKE_ADDR		2	/* destination loses the address */
#define SCM_MULTICAST_MATCH	3	/* destination receives this mask */
#define SCM_MULTICAST_UNMATCH	4	/* match grant withdrawn */
#define SCM_MULTICAST_SEND	5	/* destination may send in this mask */
#define SCM_SRC_ADDR		6	/* send from this owned address */
#define SCM_DST_ADDR		7	/* recvmsg: the address it was sent to */
#define SCM_MOVE_ADDR		8	/* destination now owns the address,
					 * taken from its owner in the same step
					 */
#define SCM_POLICY_CLASSES	9	/* __u64: the destination's classes */
#define SCM_ADDR_ACCESS		10	/* struct bus_addr_access */
#define SCM_EXPECT_REPLY	11	/* no data: the destination may answer
					 * this message once, whatever the
					 * access masks say
					 */

/*
 * Access masks (SCM_ADDR_ACCESS, a grant): who may talk to and hear from
 * the member owning addr.  A member's classes (SCM_POLICY_CLASSES, a
 * grant; 0 until granted) are a bitmap of the master's choosing.  A
 * unicast or multicast from member S reaches member R only if every
 * address R owns with a nonzero talk mask shares a class with S, and
 * every address S owns with a nonzero hear mask shares a class with R
 * (EACCES for a unicast; a multicast skips R).  The master's messages,
 * and those to it, are never checked.  The masks move with the address
 * (SCM_MOVE_ADDR) and go with its revocation.
 */
struct bus_addr_access {
	__u64			talk;	/* classes that may send to the owner */
	__u64			hear;	/* classes that may receive from it */
	struct sockaddr_bus	addr;	/* an address the destination owns */
};

/* Socket options at level SOL_BUS. */
#define BUS_POLICY		1	/* __u32 BUS_POLICY_* flags; master only */
#define BUS_ADDRS		2	/* get: owned addresses, handle first */
#define BUS_RX_RING		3	/* set: struct bus_ring_req */
#define BUS_NO_ENOBUFS		4	/* int: no ENOBUFS after drops */
#define BUS_DROPS		5	/* get: __u32 messages dropped so far */

/* BUS_POLICY flags. */
#define BUS_POLICY_MCAST_SEND_GRANTED	(1U << 0)

/*
 * Kernel notifications to the master.  Source address: ncomp 0 with the
 * bus path.  The layout is versioned by size: hdr_len is the size of
 * this header as the sending kernel knows it, and what follows starts
 * hdr_len bytes after its beginning.
 */
enum bus_notification_type {
	BUS_NOTIFY_GONE		= 1,	/* count addresses follow, handle first */
	BUS_NOTIFY_OVERFLOW	= 2,	/* count notifications were dropped */
};

struct bus_notification {
	__u32	type;		/* enum bus_notification_type */
	__u32	hdr_len;	/* sizeof(struct bus_notification) */
	__u64	count;
};

/* Receive ring: setsockopt(SOL_BUS, BUS_RX_RING), then mmap. */
struct bus_ring_req {
	__u32	frame_size;	/* multiple of BUS_FRAME_ALIGNMENT */
	__u32	frame_nr;
};

#define BUS_FRAME_ALIGNMENT	16

/*
 * One frame.  The reader waits for status == BUS_FRAME_USER (read with
 * acquire ordering, e.g. __atomic_load_n(&h->status, __ATOMIC_ACQUIRE)),
 * consumes the frame, and hands it back with bus_frame_release() below,
 * then moves to the next frame, poll()ing when it is not ready.  Frames
 * are handed to the reader in delivery order.
 *
 * A sender waiting for room in a full ring marks the oldest frame the
 * reader holds (waiting != 0) and sleeps; handing a frame back is a plain
 * store the kernel cannot see, so a reader that finds the mark calls
 * poll(2) or ppoll(2) on the socket (a zero timeout will do), which wakes
 * the sender.  epoll_wait() does not: it may not call into the socket.
 *
 * Payloads too large to copy travel as a memfd with SCM_RIGHTS, sealed
 * with F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE; a receiver checks the
 * seals (F_GET_SEALS) before trusting or mapping the contents, since an
 * unsealed file can change or shrink under it.
 */
struct bus_frame_hdr {
	__u32			status;		/* BUS_FRAME_* */
	__u32			len;		/* payload bytes */
	__u32			flags;		/* BUS_FRAME_F_* */
	__u32			data_offset;	/* payload offset in the frame */
	__s32			pid;		/* sender, in the reader's namespaces */
	__u32			uid;
	__u32			gid;
	__u32			waiting;	/* a sender waits for this frame */
	struct sockaddr_bus	src;
	struct sockaddr_bus	dst;
};

#define BUS_FRAME_KERNEL	0
#define BUS_FRAME_USER		1

#ifndef __KERNEL__
/*
 * Hands frame h back to the kernel.  Returns nonzero when a sender waits
 * for it: poll(2) the socket then.  The full barrier between the store and
 * the load pairs with the kernel's between marking a frame and looking at
 * its status, so that a mark is never missed.
 */
static __inline__ int bus_frame_release(struct bus_frame_hdr *h)
{
	__atomic_store_n(&h->status, BUS_FRAME_KERNEL, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return __atomic_load_n(&h->waiting, __ATOMIC_RELAXED) != 0;
}
#endif

#define BUS_FRAME_F_MULTICAST	(1U << 0)	/* dst is a multicast bitmap */
#define BUS_FRAME_F_DISCARDED	(1U << 1)	/* no message: hand it back */
/*
 * The message in this place of the delivery order carries files or grants
 * and waits in the receive queue: hand the frame back and recvmsg() it
 * now (len is 0; src and dst are those of the queued message).
 */
#define BUS_FRAME_F_QUEUED	(1U << 2)

#endif /* _UAPI_LINUX_BUS_H */
