// SPDX-License-Identifier: GPL-2.0

//! `struct sockaddr_bus` parsing, validation and encoding, kernel-independent.
//!
//! Two input layouts are accepted (see `include/uapi/linux/bus.h`): the
//! fixed one, when the length is exactly `sizeof(struct sockaddr_bus)`,
//! and the compact one of the design document, where the address part is
//! the last `ncomp * 8` bytes and the path part is what lies between the
//! header and it.  Output is always the fixed layout.

use crate::uapi::{
    AF_BUS, BUS_ADDR_COMP_MAX, BUS_ADDR_MAX, BUS_HANDLE_PREFIX, BUS_MULTICAST_MARK, BUS_PATH_MAX,
    SBUS_ADDR_OFFSET, SBUS_PATH_OFFSET, SOCKADDR_BUS_SIZE,
};

/// Why an address was refused.  Each one is `EINVAL` at the C boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrError {
    /// Shorter than the family and component count.
    Short,
    /// Longer than `struct sockaddr_bus`.
    Long,
    /// `sbus_family` is not `AF_BUS`.
    Family,
    /// `sbus_addr_ncomp` is larger than `BUS_ADDR_COMP_MAX`.
    TooManyComponents,
    /// The compact layout leaves no room for the address part.
    NoRoomForAddress,
    /// The compact layout's path part is longer than `BUS_PATH_MAX`.
    PathTooLong,
    /// The path part holds no terminating NUL.
    PathNotTerminated,
    /// The path names nothing.
    EmptyPath,
    /// A multicast address with no bitmap component.
    EmptyBitmap,
}

/// How a bus is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A socket inode in the filesystem.
    Filesystem,
    /// A name in the network namespace's abstract namespace.
    Abstract,
}

/// The name of a bus: a filesystem path or an abstract name, without NULs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BusPath {
    kind: PathKind,
    len: usize,
    // INVARIANT: `name[..len]` holds no NUL and `len >= 1`; the rest is zero.
    name: [u8; BUS_PATH_MAX],
}

impl BusPath {
    /// Which namespace the name lives in.
    pub fn kind(&self) -> PathKind {
        self.kind
    }

    /// The name, without the leading NUL of an abstract name.
    pub fn name(&self) -> &[u8] {
        &self.name[..self.len]
    }

    /// The name followed by a NUL, for the C path walk.  Only meaningful
    /// for filesystem paths.
    pub fn c_name(&self) -> [u8; BUS_PATH_MAX + 1] {
        let mut out = [0u8; BUS_PATH_MAX + 1];
        out[..self.len].copy_from_slice(self.name());
        out
    }

    /// Writes the fixed-layout `sbus_path` field.
    fn encode(&self, multicast: bool, out: &mut [u8; BUS_PATH_MAX]) {
        *out = [0; BUS_PATH_MAX];
        let start = match self.kind {
            PathKind::Filesystem => 0,
            PathKind::Abstract => 1,
        };
        out[start..start + self.len].copy_from_slice(self.name());
        if multicast {
            out[BUS_PATH_MAX - 1] = BUS_MULTICAST_MARK;
        }
    }
}

impl core::fmt::Debug for BusPath {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.kind == PathKind::Abstract {
            f.write_str("@")?;
        }
        for &b in self.name() {
            if b.is_ascii_graphic() {
                core::fmt::Write::write_char(f, char::from(b))?;
            } else {
                write!(f, "\\x{:02x}", b)?;
            }
        }
        Ok(())
    }
}

/// The address part: `ncomp` components, compared as raw bytes.
#[derive(Clone, Copy, Eq, PartialOrd, Ord)]
pub struct AddrPart {
    ncomp: usize,
    // INVARIANT: `ncomp <= BUS_ADDR_COMP_MAX` and `bytes[ncomp * 8..]` is zero.
    bytes: [u8; BUS_ADDR_MAX],
}

impl PartialEq for AddrPart {
    /// The components only, not the zeros after them: most addresses
    /// have one or two of the eight.
    #[inline]
    fn eq(&self, other: &AddrPart) -> bool {
        self.ncomp == other.ncomp && self.bytes() == other.bytes()
    }
}

impl AddrPart {
    /// The kernel's own address (no component).
    pub const KERNEL: AddrPart = AddrPart {
        ncomp: 0,
        bytes: [0; BUS_ADDR_MAX],
    };

    /// Rebuilds an address part from `ncomp` and its bytes, as
    /// [`AddrPart::raw`] gave them.
    pub fn from_raw(ncomp: usize, bytes: &[u8; BUS_ADDR_MAX]) -> Option<AddrPart> {
        if ncomp > BUS_ADDR_COMP_MAX || bytes[ncomp * 8..].iter().any(|&b| b != 0) {
            return None;
        }
        // INVARIANT: checked just above.
        Some(AddrPart {
            ncomp,
            bytes: *bytes,
        })
    }

    /// The component count and all `BUS_ADDR_MAX` bytes (zero past
    /// `ncomp`).
    pub fn raw(&self) -> (usize, &[u8; BUS_ADDR_MAX]) {
        (self.ncomp, &self.bytes)
    }

    /// Number of 64-bit components.
    pub fn ncomp(&self) -> usize {
        self.ncomp
    }

    /// The `ncomp * 8` bytes that identify the address.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.ncomp * 8]
    }

    /// Whether this is the kernel's address.
    pub fn is_kernel(&self) -> bool {
        self.ncomp == 0
    }

    /// Whether the address lies in the range reserved for handles.
    pub fn is_reserved(&self) -> bool {
        self.ncomp > 0 && self.bytes[0] == BUS_HANDLE_PREFIX
    }

    /// The handle `":<id>"` of an endpoint.
    pub fn handle(id: u64) -> AddrPart {
        let mut digits = [0u8; 20];
        let mut n = id;
        let mut i = digits.len();
        loop {
            i -= 1;
            // `n % 10 < 10`, so the cast cannot truncate.
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let text = &digits[i..];
        let mut bytes = [0u8; BUS_ADDR_MAX];
        bytes[0] = BUS_HANDLE_PREFIX;
        bytes[1..1 + text.len()].copy_from_slice(text);
        // The string, its NUL, rounded up to whole components.
        let len = 1 + text.len() + 1;
        AddrPart {
            ncomp: len.div_ceil(8),
            bytes,
        }
    }

    /// The components as 64-bit words (missing ones read as zero), for
    /// the bloom-filter view of a multicast address.
    pub fn words(&self) -> [u64; BUS_ADDR_COMP_MAX] {
        let mut out = [0u64; BUS_ADDR_COMP_MAX];
        for (i, w) in out.iter_mut().enumerate() {
            let b = &self.bytes;
            let at = i * 8;
            *w = u64::from_ne_bytes([
                b[at],
                b[at + 1],
                b[at + 2],
                b[at + 3],
                b[at + 4],
                b[at + 5],
                b[at + 6],
                b[at + 7],
            ]);
        }
        out
    }
}

impl core::fmt::Debug for AddrPart {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let text = self.bytes();
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        if text[..end].iter().all(|b| b.is_ascii_graphic()) {
            for &b in &text[..end] {
                core::fmt::Write::write_char(f, char::from(b))?;
            }
            Ok(())
        } else {
            for b in text {
                write!(f, "{:02x}", b)?;
            }
            Ok(())
        }
    }
}

/// A parsed `struct sockaddr_bus`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BusAddr {
    /// The bus.
    pub path: BusPath,
    /// The address on the bus (a bitmap when `multicast`).
    pub addr: AddrPart,
    /// Whether the path part ended in `'*'`.
    pub multicast: bool,
}

#[inline(always)]
fn read_u16(raw: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([raw[at], raw[at + 1]])
}

impl BusAddr {
    /// Parses an address of `raw.len()` bytes, in whichever layout its
    /// length selects.
    #[inline(always)]
    pub fn parse(raw: &[u8]) -> Result<BusAddr, AddrError> {
        if raw.len() < SBUS_PATH_OFFSET {
            return Err(AddrError::Short);
        }
        if raw.len() > SOCKADDR_BUS_SIZE {
            return Err(AddrError::Long);
        }
        if read_u16(raw, 0) != AF_BUS {
            return Err(AddrError::Family);
        }
        let ncomp = usize::from(read_u16(raw, 2));
        if ncomp > BUS_ADDR_COMP_MAX {
            return Err(AddrError::TooManyComponents);
        }
        let addr_len = ncomp * 8;
        let (path_part, addr_bytes) = if raw.len() == SOCKADDR_BUS_SIZE {
            (
                &raw[SBUS_PATH_OFFSET..SBUS_ADDR_OFFSET],
                &raw[SBUS_ADDR_OFFSET..SBUS_ADDR_OFFSET + addr_len],
            )
        } else {
            let split = raw
                .len()
                .checked_sub(addr_len)
                .filter(|&s| s >= SBUS_PATH_OFFSET)
                .ok_or(AddrError::NoRoomForAddress)?;
            if split - SBUS_PATH_OFFSET > BUS_PATH_MAX {
                return Err(AddrError::PathTooLong);
            }
            (&raw[SBUS_PATH_OFFSET..split], &raw[split..])
        };

        let multicast = path_part.last() == Some(&BUS_MULTICAST_MARK);
        let body = if multicast {
            &path_part[..path_part.len() - 1]
        } else {
            path_part
        };
        let path = Self::parse_path(body)?;
        if multicast && ncomp == 0 {
            return Err(AddrError::EmptyBitmap);
        }
        let mut bytes = [0u8; BUS_ADDR_MAX];
        bytes[..addr_len].copy_from_slice(addr_bytes);
        Ok(BusAddr {
            path,
            // INVARIANT: `ncomp <= BUS_ADDR_COMP_MAX`, only `addr_len` bytes copied.
            addr: AddrPart { ncomp, bytes },
            multicast,
        })
    }

    #[inline(always)]
    fn parse_path(body: &[u8]) -> Result<BusPath, AddrError> {
        let (kind, rest) = match body.first() {
            None => return Err(AddrError::EmptyPath),
            Some(0) => (PathKind::Abstract, &body[1..]),
            Some(_) => (PathKind::Filesystem, body),
        };
        let len = match rest.iter().position(|&b| b == 0) {
            Some(len) => len,
            None if rest.is_empty() => return Err(AddrError::EmptyPath),
            None => return Err(AddrError::PathNotTerminated),
        };
        if len == 0 {
            return Err(AddrError::EmptyPath);
        }
        // The path part is at most `BUS_PATH_MAX` bytes in both layouts and
        // `body` excludes the multicast mark, so the name, its NULs and
        // the mark always fit the fixed layout's `sbus_path`.
        let mut name = [0u8; BUS_PATH_MAX];
        name[..len].copy_from_slice(&rest[..len]);
        // INVARIANT: `rest[..len]` holds no NUL, and `len >= 1`.
        Ok(BusPath { kind, len, name })
    }

    /// The address of the kernel on the bus named `path`.
    pub fn kernel(path: BusPath) -> BusAddr {
        BusAddr {
            path,
            addr: AddrPart::KERNEL,
            multicast: false,
        }
    }

    /// Encodes the address in the fixed layout.
    pub fn encode(&self) -> [u8; SOCKADDR_BUS_SIZE] {
        let mut out = [0u8; SOCKADDR_BUS_SIZE];
        out[0..2].copy_from_slice(&AF_BUS.to_ne_bytes());
        // `ncomp <= 8` by the invariant of `AddrPart`.
        out[2..4].copy_from_slice(&(self.addr.ncomp as u16).to_ne_bytes());
        let mut path = [0u8; BUS_PATH_MAX];
        self.path.encode(self.multicast, &mut path);
        out[SBUS_PATH_OFFSET..SBUS_ADDR_OFFSET].copy_from_slice(&path);
        out[SBUS_ADDR_OFFSET..].copy_from_slice(&self.addr.bytes);
        out
    }
}

/// The fixed-layout encoding of the unicast addresses of one bus, with
/// the family and the path part written once: [`NamePrefix::encode`]
/// only adds an address part, as the receive path does per message.
#[derive(Clone, Copy)]
pub struct NamePrefix([u8; SBUS_ADDR_OFFSET]);

impl NamePrefix {
    /// The prefix of the unicast addresses on `path`.
    pub fn new(path: &BusPath) -> NamePrefix {
        let mut out = [0u8; SBUS_ADDR_OFFSET];
        out[0..2].copy_from_slice(&AF_BUS.to_ne_bytes());
        let mut enc = [0u8; BUS_PATH_MAX];
        path.encode(false, &mut enc);
        out[SBUS_PATH_OFFSET..].copy_from_slice(&enc);
        NamePrefix(out)
    }

    /// The fixed layout of the address part `addr` (`ncomp` components,
    /// all `BUS_ADDR_MAX` bytes, zero past them) on this bus; `None` if
    /// `ncomp` is out of range.
    pub fn encode(
        &self,
        ncomp: usize,
        addr: &[u8; BUS_ADDR_MAX],
    ) -> Option<[u8; SOCKADDR_BUS_SIZE]> {
        if ncomp > BUS_ADDR_COMP_MAX {
            return None;
        }
        let mut out = [0u8; SOCKADDR_BUS_SIZE];
        out[..SBUS_ADDR_OFFSET].copy_from_slice(&self.0);
        // `ncomp <= 8`, checked above.
        out[2..4].copy_from_slice(&(ncomp as u16).to_ne_bytes());
        out[SBUS_ADDR_OFFSET..].copy_from_slice(addr);
        Some(out)
    }
}

/// The fixed-layout encoding of an unattached socket's name: the family
/// alone, with an empty path and no component.
pub fn encode_unattached() -> [u8; SOCKADDR_BUS_SIZE] {
    let mut out = [0u8; SOCKADDR_BUS_SIZE];
    out[0..2].copy_from_slice(&AF_BUS.to_ne_bytes());
    out
}
