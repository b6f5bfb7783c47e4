// SPDX-License-Identifier: GPL-2.0

//! The layout of kernel notifications to a bus master.  Kernel-independent.

pub use crate::uapi::NOTIFICATION_HDR_LEN;
use crate::uapi::{
    BUS_NOTIFY_GONE, BUS_NOTIFY_OVERFLOW, NOTIFICATION_COUNT_OFFSET, NOTIFICATION_HDR_LEN_OFFSET,
    NOTIFICATION_TYPE_OFFSET, SOCKADDR_BUS_SIZE,
};

fn header(kind: u32, count: u64) -> [u8; NOTIFICATION_HDR_LEN] {
    let mut h = [0u8; NOTIFICATION_HDR_LEN];
    let mut put = |at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
    put(NOTIFICATION_TYPE_OFFSET, &kind.to_ne_bytes());
    // The header length is a small constant.
    put(
        NOTIFICATION_HDR_LEN_OFFSET,
        &(NOTIFICATION_HDR_LEN as u32).to_ne_bytes(),
    );
    put(NOTIFICATION_COUNT_OFFSET, &count.to_ne_bytes());
    h
}

/// Bytes of a `BUS_NOTIFY_GONE` carrying `naddrs` addresses.
pub const fn gone_len(naddrs: usize) -> usize {
    NOTIFICATION_HDR_LEN + naddrs * SOCKADDR_BUS_SIZE
}

/// Writes a `BUS_NOTIFY_GONE` for the fixed-layout `addrs` (handle first)
/// into `out`, which must be `gone_len(addrs.len())` bytes long.
pub fn write_gone(out: &mut [u8], addrs: &[[u8; SOCKADDR_BUS_SIZE]]) {
    out[..NOTIFICATION_HDR_LEN].copy_from_slice(&header(BUS_NOTIFY_GONE, addrs.len() as u64));
    for (i, a) in addrs.iter().enumerate() {
        let at = NOTIFICATION_HDR_LEN + i * SOCKADDR_BUS_SIZE;
        out[at..at + SOCKADDR_BUS_SIZE].copy_from_slice(a);
    }
}

/// A `BUS_NOTIFY_OVERFLOW` for `dropped` lost notifications.
pub fn overflow(dropped: u64) -> [u8; NOTIFICATION_HDR_LEN] {
    header(BUS_NOTIFY_OVERFLOW, dropped)
}
