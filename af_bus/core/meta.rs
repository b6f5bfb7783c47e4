// SPDX-License-Identifier: GPL-2.0

//! What travels with a message besides its payload (source, destination,
//! grants), as bytes kept in the skb's headroom.  Kernel-independent.

use crate::addr::{AddrPart, BusAddr};
use crate::cmsg::{Grant, GrantKind};
use crate::uapi::{
    ADDR_ACCESS_ADDR_OFFSET, ADDR_ACCESS_SIZE, BUS_ADDR_MAX, SCM_POLICY_CLASSES, SOCKADDR_BUS_SIZE,
};

/// Bytes before the grants: counts and flags, then source and
/// destination address parts.
const FIXED: usize = 8 + 2 * BUS_ADDR_MAX;
/// Bytes per grant: its control message type and data length, then the
/// data as the receiver sees it (an address, a `struct bus_addr_access`
/// or the classes), zero-padded.
const GRANT: usize = 8 + ADDR_ACCESS_SIZE;
const _: () = assert!(ADDR_ACCESS_ADDR_OFFSET + SOCKADDR_BUS_SIZE == ADDR_ACCESS_SIZE);

/// Flag: the destination is a multicast bitmap.
pub const META_MULTICAST: u8 = 1 << 0;

/// The metadata of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// The sender's address on the bus.
    pub src: AddrPart,
    /// The address (or bitmap) the message was sent to.
    pub dst: AddrPart,
    /// `META_*` flags.
    pub flags: u8,
}

/// Bytes of metadata for a message carrying `ngrants` grants.
pub const fn len(ngrants: usize) -> usize {
    FIXED + ngrants * GRANT
}

fn put_part(out: &mut [u8], part: &AddrPart) {
    out.copy_from_slice(part.raw().1);
}

fn get_part(ncomp: u8, raw: &[u8]) -> Option<AddrPart> {
    let mut bytes = [0u8; BUS_ADDR_MAX];
    bytes.copy_from_slice(raw);
    AddrPart::from_raw(usize::from(ncomp), &bytes)
}

/// Writes `meta`, the classes granted (if any) and `grants` into `out`,
/// `len(n)` bytes for `n` records.  Every byte is written once (the
/// address parts whole, padding zeroed on its own): this runs for every
/// message.
#[inline]
pub fn write(
    out: &mut [u8],
    meta: &Meta,
    classes: Option<u64>,
    grants: impl Iterator<Item = Grant>,
) {
    // `ncomp <= 8` by the invariant of `AddrPart`.
    out[0] = meta.src.ncomp() as u8;
    out[1] = meta.dst.ncomp() as u8;
    out[2] = meta.flags;
    out[4..8].fill(0);
    put_part(&mut out[8..8 + BUS_ADDR_MAX], &meta.src);
    put_part(&mut out[8 + BUS_ADDR_MAX..FIXED], &meta.dst);
    let mut n = 0u8;
    let mut end = FIXED;
    let mut record = |kind: i32, data: &[&[u8]]| {
        let at = end;
        let len: usize = data.iter().map(|d| d.len()).sum();
        out[at..at + 4].copy_from_slice(&kind.to_ne_bytes());
        // `len <= ADDR_ACCESS_SIZE`: fits.
        out[at + 4..at + 8].copy_from_slice(&(len as u32).to_ne_bytes());
        let mut p = at + 8;
        for d in data {
            out[p..p + d.len()].copy_from_slice(d);
            p += d.len();
        }
        out[p..at + GRANT].fill(0);
        n += 1;
        end = at + GRANT;
    };
    if let Some(c) = classes {
        record(SCM_POLICY_CLASSES, &[&c.to_ne_bytes()]);
    }
    for g in grants {
        let addr = g.addr.encode();
        if g.kind == GrantKind::Access {
            let (t, h) = (g.access.talk.to_ne_bytes(), g.access.hear.to_ne_bytes());
            record(g.kind.cmsg_type(), &[&t, &h, &addr]);
        } else {
            record(g.kind.cmsg_type(), &[&addr]);
        }
    }
    out[end..].fill(0);
    out[3] = n;
}

/// The source's component count and raw address part, read in place:
/// what the receive path needs for `msg_name`.
pub fn src_raw(raw: &[u8]) -> Option<(usize, &[u8; BUS_ADDR_MAX])> {
    let part = raw.get(8..8 + BUS_ADDR_MAX)?.try_into().ok()?;
    Some((usize::from(*raw.first()?), part))
}

/// Reads back what [`write`] wrote; `None` if `raw` is not such bytes.
pub fn read(raw: &[u8]) -> Option<Meta> {
    if raw.len() < FIXED {
        return None;
    }
    Some(Meta {
        src: get_part(raw[0], &raw[8..8 + BUS_ADDR_MAX])?,
        dst: get_part(raw[1], &raw[8 + BUS_ADDR_MAX..FIXED])?,
        flags: raw[2],
    })
}

/// The grants [`write`] wrote: control message type and fixed-layout
/// address of each.
pub fn grants(raw: &[u8]) -> impl Iterator<Item = (i32, &[u8])> {
    let n = raw.get(3).copied().map_or(0, usize::from);
    (0..n).filter_map(move |i| {
        let at = FIXED + i * GRANT;
        let rec = raw.get(at..at + GRANT)?;
        let kind = i32::from_ne_bytes([rec[0], rec[1], rec[2], rec[3]]);
        let len = u32::from_ne_bytes([rec[4], rec[5], rec[6], rec[7]]) as usize;
        Some((kind, rec.get(8..8 + len)?))
    })
}

/// The destination as the receiver's `SCM_DST_ADDR` shows it.
pub fn dst_addr(meta: &Meta, bus: &BusAddr) -> BusAddr {
    BusAddr {
        path: bus.path,
        addr: meta.dst,
        multicast: meta.flags & META_MULTICAST != 0,
    }
}
