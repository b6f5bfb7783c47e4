// SPDX-License-Identifier: GPL-2.0

//! The numbers and layouts of `include/uapi/linux/bus.h`, for Rust.
//!
//! Nothing here is written by hand: `bus_h` is what bindgen makes of the
//! header (`scripts/uapi-bindgen.sh`, run by `build.rs` for the host
//! crate and by `scripts/build.sh` for the module, with `OUT_DIR` naming
//! where it lands), and the constants below only give its values the
//! Rust types the code uses, or read sizes and offsets off its structs.
//! A change to the header changes both builds, or fails them.

/// The header as bindgen sees it.
#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]
pub mod bus_h {
    include!(concat!(env!("OUT_DIR"), "/bus_h.rs"));
}

use core::mem::{offset_of, size_of};

/// A `#define` whose value must fit the type the code uses it as: checked
/// at compile time.
macro_rules! narrow {
    ($v:expr, $t:ty) => {{
        const V: $t = $v as $t;
        const _: () = assert!(V as u64 == $v as u64, "bus.h value out of range");
        V
    }};
}

/// `AF_BUS` and `PF_BUS`.
pub const AF_BUS: u16 = narrow!(bus_h::AF_BUS, u16);
/// The socket option and control message level of AF_BUS.
pub const SOL_BUS: i32 = narrow!(bus_h::SOL_BUS, i32);

/// Bytes of `sbus_path` in the fixed layout.
pub const BUS_PATH_MAX: usize = narrow!(bus_h::BUS_PATH_MAX, usize);
/// Components of `sbus_addr`.
pub const BUS_ADDR_COMP_MAX: usize = narrow!(bus_h::BUS_ADDR_COMP_MAX, usize);
/// Bytes of `sbus_addr` (`BUS_ADDR_MAX`, which bindgen cannot evaluate).
pub const BUS_ADDR_MAX: usize = size_of::<[u64; BUS_ADDR_COMP_MAX]>();
/// `sizeof(struct sockaddr_bus)`.
pub const SOCKADDR_BUS_SIZE: usize = size_of::<bus_h::sockaddr_bus>();
/// Offset of `sbus_addr_ncomp` in `struct sockaddr_bus`.
pub const SBUS_NCOMP_OFFSET: usize = offset_of!(bus_h::sockaddr_bus, sbus_addr_ncomp);
/// Offset of `sbus_path` in `struct sockaddr_bus`.
pub const SBUS_PATH_OFFSET: usize = offset_of!(bus_h::sockaddr_bus, sbus_path);
/// Offset of `sbus_addr` in `struct sockaddr_bus`.
pub const SBUS_ADDR_OFFSET: usize = offset_of!(bus_h::sockaddr_bus, sbus_addr);

/// First byte of every endpoint handle.
pub const BUS_HANDLE_PREFIX: u8 = narrow!(bus_h::BUS_HANDLE_PREFIX, u8);
/// Last byte of the path part of a multicast address.
pub const BUS_MULTICAST_MARK: u8 = narrow!(bus_h::BUS_MULTICAST_MARK, u8);

/// Control message types at level `SOL_BUS`.
pub const SCM_OWNED_ADDR: i32 = narrow!(bus_h::SCM_OWNED_ADDR, i32);
/// See [`SCM_OWNED_ADDR`].
pub const SCM_REVOKE_ADDR: i32 = narrow!(bus_h::SCM_REVOKE_ADDR, i32);
/// See [`SCM_OWNED_ADDR`].
pub const SCM_MULTICAST_MATCH: i32 = narrow!(bus_h::SCM_MULTICAST_MATCH, i32);
/// See [`SCM_OWNED_ADDR`].
pub const SCM_MULTICAST_UNMATCH: i32 = narrow!(bus_h::SCM_MULTICAST_UNMATCH, i32);
/// See [`SCM_OWNED_ADDR`].
pub const SCM_MULTICAST_SEND: i32 = narrow!(bus_h::SCM_MULTICAST_SEND, i32);
/// See [`SCM_OWNED_ADDR`].
pub const SCM_SRC_ADDR: i32 = narrow!(bus_h::SCM_SRC_ADDR, i32);
/// See [`SCM_OWNED_ADDR`].
pub const SCM_DST_ADDR: i32 = narrow!(bus_h::SCM_DST_ADDR, i32);
/// See [`SCM_OWNED_ADDR`].
pub const SCM_MOVE_ADDR: i32 = narrow!(bus_h::SCM_MOVE_ADDR, i32);
/// See [`SCM_OWNED_ADDR`].
pub const SCM_POLICY_CLASSES: i32 = narrow!(bus_h::SCM_POLICY_CLASSES, i32);
/// See [`SCM_OWNED_ADDR`].
pub const SCM_ADDR_ACCESS: i32 = narrow!(bus_h::SCM_ADDR_ACCESS, i32);
/// See [`SCM_OWNED_ADDR`].
pub const SCM_EXPECT_REPLY: i32 = narrow!(bus_h::SCM_EXPECT_REPLY, i32);
/// `sizeof(struct bus_addr_access)`.
pub const ADDR_ACCESS_SIZE: usize = size_of::<bus_h::bus_addr_access>();
/// Offset of `addr` in `struct bus_addr_access`.
pub const ADDR_ACCESS_ADDR_OFFSET: usize = offset_of!(bus_h::bus_addr_access, addr);

/// Socket options at level `SOL_BUS`.
pub const BUS_POLICY: i32 = narrow!(bus_h::BUS_POLICY, i32);
/// See [`BUS_POLICY`].
pub const BUS_ADDRS: i32 = narrow!(bus_h::BUS_ADDRS, i32);
/// See [`BUS_POLICY`].
pub const BUS_RX_RING: i32 = narrow!(bus_h::BUS_RX_RING, i32);
/// See [`BUS_POLICY`].
pub const BUS_NO_ENOBUFS: i32 = narrow!(bus_h::BUS_NO_ENOBUFS, i32);
/// See [`BUS_POLICY`].
pub const BUS_DROPS: i32 = narrow!(bus_h::BUS_DROPS, i32);

/// `BUS_POLICY` flag: multicast senders need a send grant.
pub const BUS_POLICY_MCAST_SEND_GRANTED: u32 = narrow!(bus_h::BUS_POLICY_MCAST_SEND_GRANTED, u32);

/// Kernel notification types.
pub const BUS_NOTIFY_GONE: u32 = narrow!(bus_h::BUS_NOTIFY_GONE, u32);
/// See [`BUS_NOTIFY_GONE`].
pub const BUS_NOTIFY_OVERFLOW: u32 = narrow!(bus_h::BUS_NOTIFY_OVERFLOW, u32);
/// `sizeof(struct bus_notification)`.
pub const NOTIFICATION_HDR_LEN: usize = size_of::<bus_h::bus_notification>();
/// Offsets in `struct bus_notification`.
pub const NOTIFICATION_TYPE_OFFSET: usize = offset_of!(bus_h::bus_notification, type_);
/// See [`NOTIFICATION_TYPE_OFFSET`].
pub const NOTIFICATION_HDR_LEN_OFFSET: usize = offset_of!(bus_h::bus_notification, hdr_len);
/// See [`NOTIFICATION_TYPE_OFFSET`].
pub const NOTIFICATION_COUNT_OFFSET: usize = offset_of!(bus_h::bus_notification, count);

/// Receive ring frame alignment.
pub const BUS_FRAME_ALIGNMENT: usize = narrow!(bus_h::BUS_FRAME_ALIGNMENT, usize);
/// Frame status: owned by the kernel.
pub const BUS_FRAME_KERNEL: u32 = narrow!(bus_h::BUS_FRAME_KERNEL, u32);
/// Frame status: owned by the reader.
pub const BUS_FRAME_USER: u32 = narrow!(bus_h::BUS_FRAME_USER, u32);
/// Frame flag: the destination is a multicast bitmap.
pub const BUS_FRAME_F_MULTICAST: u32 = narrow!(bus_h::BUS_FRAME_F_MULTICAST, u32);
/// Frame flag: the frame carries no message (a failed copy); hand it back.
pub const BUS_FRAME_F_DISCARDED: u32 = narrow!(bus_h::BUS_FRAME_F_DISCARDED, u32);
/// The message at this place in delivery order waits in the queue.
pub const BUS_FRAME_F_QUEUED: u32 = narrow!(bus_h::BUS_FRAME_F_QUEUED, u32);

/// `struct bus_ring_req`, as the kernel reads it.
pub const RING_REQ_SIZE: usize = size_of::<bus_h::bus_ring_req>();

/// Offsets in `struct bus_frame_hdr`, and its size.
pub mod frame {
    use super::bus_h::bus_frame_hdr as H;
    use core::mem::{offset_of, size_of};

    /// `sizeof(struct bus_frame_hdr)`: the payload starts there.
    pub const HDR_LEN: usize = size_of::<H>();
    /// `status`.
    pub const STATUS: usize = offset_of!(H, status);
    /// `len`.
    pub const LEN: usize = offset_of!(H, len);
    /// `flags`.
    pub const FLAGS: usize = offset_of!(H, flags);
    /// `data_offset`.
    pub const DATA_OFFSET: usize = offset_of!(H, data_offset);
    /// `pid`.
    pub const PID: usize = offset_of!(H, pid);
    /// `uid`.
    pub const UID: usize = offset_of!(H, uid);
    /// `gid`.
    pub const GID: usize = offset_of!(H, gid);
    /// `waiting`.
    pub const WAITING: usize = offset_of!(H, waiting);
    /// `src`.
    pub const SRC: usize = offset_of!(H, src);
    /// `dst`.
    pub const DST: usize = offset_of!(H, dst);
}
