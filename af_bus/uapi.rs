// SPDX-License-Identifier: GPL-2.0

//! The numbers of `include/uapi/linux/bus.h`, mirrored for Rust.
//!
//! The host tests check every value here against the C header.

/// `AF_BUS` and `PF_BUS`.
pub const AF_BUS: u16 = 46;
/// The socket option and control message level of AF_BUS.
pub const SOL_BUS: i32 = 288;

/// Bytes of `sbus_path` in the fixed layout.
pub const BUS_PATH_MAX: usize = 60;
/// Components of `sbus_addr`.
pub const BUS_ADDR_COMP_MAX: usize = 8;
/// Bytes of `sbus_addr`.
pub const BUS_ADDR_MAX: usize = BUS_ADDR_COMP_MAX * 8;
/// `sizeof(struct sockaddr_bus)`.
pub const SOCKADDR_BUS_SIZE: usize = 4 + BUS_PATH_MAX + BUS_ADDR_MAX;
/// Offset of `sbus_path` in `struct sockaddr_bus`.
pub const SBUS_PATH_OFFSET: usize = 4;
/// Offset of `sbus_addr` in `struct sockaddr_bus`.
pub const SBUS_ADDR_OFFSET: usize = SBUS_PATH_OFFSET + BUS_PATH_MAX;

/// First byte of every endpoint handle.
pub const BUS_HANDLE_PREFIX: u8 = b':';
/// Last byte of the path part of a multicast address.
pub const BUS_MULTICAST_MARK: u8 = b'*';

/// Control message types at level `SOL_BUS`.
pub const SCM_OWNED_ADDR: i32 = 1;
/// See [`SCM_OWNED_ADDR`].
pub const SCM_REVOKE_ADDR: i32 = 2;
/// See [`SCM_OWNED_ADDR`].
pub const SCM_MULTICAST_MATCH: i32 = 3;
/// See [`SCM_OWNED_ADDR`].
pub const SCM_MULTICAST_UNMATCH: i32 = 4;
/// See [`SCM_OWNED_ADDR`].
pub const SCM_MULTICAST_SEND: i32 = 5;
/// See [`SCM_OWNED_ADDR`].
pub const SCM_SRC_ADDR: i32 = 6;
/// See [`SCM_OWNED_ADDR`].
pub const SCM_DST_ADDR: i32 = 7;

/// Socket options at level `SOL_BUS`.
pub const BUS_POLICY: i32 = 1;
/// See [`BUS_POLICY`].
pub const BUS_ADDRS: i32 = 2;
/// See [`BUS_POLICY`].
pub const BUS_RX_RING: i32 = 3;
/// See [`BUS_POLICY`].
pub const BUS_NO_ENOBUFS: i32 = 4;
/// See [`BUS_POLICY`].
pub const BUS_DROPS: i32 = 5;

/// `BUS_POLICY` flag: multicast senders need a send grant.
pub const BUS_POLICY_MCAST_SEND_GRANTED: u32 = 1 << 0;

/// Kernel notification types.
pub const BUS_NOTIFY_GONE: u32 = 1;
/// See [`BUS_NOTIFY_GONE`].
pub const BUS_NOTIFY_OVERFLOW: u32 = 2;

/// Receive ring frame alignment.
pub const BUS_FRAME_ALIGNMENT: usize = 16;
/// Frame status: owned by the kernel.
pub const BUS_FRAME_KERNEL: u32 = 0;
/// Frame status: owned by the reader.
pub const BUS_FRAME_USER: u32 = 1;
/// Frame flag: the destination is a multicast bitmap.
pub const BUS_FRAME_F_MULTICAST: u32 = 1 << 0;
/// Frame flag: the frame carries no message (a failed copy); hand it back.
pub const BUS_FRAME_F_DISCARDED: u32 = 1 << 1;
/// The message at this place in delivery order waits in the queue.
pub const BUS_FRAME_F_QUEUED: u32 = 1 << 2;
