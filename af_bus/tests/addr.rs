// SPDX-License-Identifier: GPL-2.0

//! Host tests of `struct sockaddr_bus` parsing in both layouts.

use af_bus_core::addr::{AddrError, AddrPart, BusAddr, PathKind};
use af_bus_core::uapi::*;

/// A fixed-layout address.
fn fixed(path: &[u8], ncomp: u16, addr: &[u8]) -> Vec<u8> {
    let mut raw = vec![0u8; SOCKADDR_BUS_SIZE];
    raw[0..2].copy_from_slice(&AF_BUS.to_ne_bytes());
    raw[2..4].copy_from_slice(&ncomp.to_ne_bytes());
    raw[4..4 + path.len()].copy_from_slice(path);
    raw[64..64 + addr.len()].copy_from_slice(addr);
    raw
}

/// A compact-layout address: header, path part, address part.
fn compact(path_part: &[u8], ncomp: u16, addr: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    raw.extend_from_slice(&AF_BUS.to_ne_bytes());
    raw.extend_from_slice(&ncomp.to_ne_bytes());
    raw.extend_from_slice(path_part);
    let mut a = addr.to_vec();
    a.resize(usize::from(ncomp) * 8, 0);
    raw.extend_from_slice(&a);
    raw
}

#[test]
fn fixed_filesystem_unicast() {
    let a = BusAddr::parse(&fixed(b"/tmp/test", 2, b"org.example.bus\0")).unwrap();
    assert_eq!(a.path.kind(), PathKind::Filesystem);
    assert_eq!(a.path.name(), b"/tmp/test");
    assert_eq!(a.addr.ncomp(), 2);
    assert_eq!(a.addr.bytes(), b"org.example.bus\0");
    assert!(!a.multicast);
    assert!(!a.addr.is_reserved());
}

#[test]
fn fixed_ignores_bytes_past_ncomp() {
    let mut raw = fixed(b"/tmp/test", 1, b"1.1\0\0\0\0\0garbage!");
    let a = BusAddr::parse(&raw).unwrap();
    raw[72] = b'x';
    assert_eq!(a, BusAddr::parse(&raw).unwrap());
    assert_eq!(a.addr.bytes(), b"1.1\0\0\0\0\0");
}

#[test]
fn abstract_name() {
    let a = BusAddr::parse(&fixed(b"\0system", 1, b"a")).unwrap();
    assert_eq!(a.path.kind(), PathKind::Abstract);
    assert_eq!(a.path.name(), b"system");
}

#[test]
fn compact_layout_chinese_seed_system_bus() {
    // "/var/run/system_bus" padded to 8 bytes with room for the mark.
    let mut part = b"/var/run/system_bus\0".to_vec();
    part.resize(24, 0);
    let a = BusAddr::parse(&compact(&part, 3, b"org.freedesktop.DBus\0")).unwrap();
    assert_eq!(a.path.name(), b"/var/run/system_bus");
    assert_eq!(a.addr.ncomp(), 3);
    assert_eq!(&a.addr.bytes()[..21], b"org.freedesktop.DBus\0");
    assert!(!a.multicast);
}

#[test]
fn compact_multicast_as_the_seed_builds_it() {
    let bus_path_sz = b"/var/run/system_bus\0".len();
    let aligned = ((bus_path_sz + 1) + 7) & !7;
    let addr_sz = 4 + aligned + 64;
    let mut raw = vec![0u8; SOCKADDR_BUS_SIZE];
    raw[0..2].copy_from_slice(&AF_BUS.to_ne_bytes());
    raw[2..4].copy_from_slice(&8u16.to_ne_bytes());
    raw[4..4 + bus_path_sz].copy_from_slice(b"/var/run/system_bus\0");
    let bitmap_at = addr_sz - 64;
    raw[bitmap_at - 1] = b'*';
    for (i, b) in raw[bitmap_at..addr_sz].iter_mut().enumerate() {
        *b = i as u8 | 1;
    }
    let a = BusAddr::parse(&raw[..addr_sz]).unwrap();
    assert!(a.multicast);
    assert_eq!(a.path.name(), b"/var/run/system_bus");
    assert_eq!(a.addr.ncomp(), 8);
    assert_eq!(a.addr.bytes(), &raw[bitmap_at..addr_sz]);
}

#[test]
fn fixed_multicast_mark_is_last_path_byte() {
    let mut path = [0u8; BUS_PATH_MAX];
    path[..9].copy_from_slice(b"/tmp/test");
    path[BUS_PATH_MAX - 1] = b'*';
    let a = BusAddr::parse(&fixed(&path, 1, &[0xff; 8])).unwrap();
    assert!(a.multicast);
    assert_eq!(a.path.name(), b"/tmp/test");
    assert_eq!(a.addr.words()[0], u64::MAX);
    assert_eq!(a.addr.words()[1], 0);
}

#[test]
fn errors() {
    let good = fixed(b"/tmp/test", 1, b"x");
    assert_eq!(BusAddr::parse(&good[..3]), Err(AddrError::Short));
    assert_eq!(BusAddr::parse(&[]), Err(AddrError::Short));
    let mut long = good.clone();
    long.push(0);
    assert_eq!(BusAddr::parse(&long), Err(AddrError::Long));
    let mut fam = good.clone();
    fam[0] = 1;
    fam[1] = 0;
    assert_eq!(BusAddr::parse(&fam), Err(AddrError::Family));
    assert_eq!(
        BusAddr::parse(&fixed(b"/tmp/test", 9, b"")),
        Err(AddrError::TooManyComponents)
    );
    assert_eq!(
        BusAddr::parse(&fixed(&[b'a'; BUS_PATH_MAX], 1, b"x")),
        Err(AddrError::PathNotTerminated)
    );
    assert_eq!(
        BusAddr::parse(&fixed(b"", 1, b"x")),
        Err(AddrError::EmptyPath)
    );
    // Abstract with an empty name.
    assert_eq!(
        BusAddr::parse(&compact(b"\0\0", 1, b"x")),
        Err(AddrError::EmptyPath)
    );
    assert_eq!(
        BusAddr::parse(&compact(b"\0", 1, b"x")),
        Err(AddrError::EmptyPath)
    );
    assert_eq!(
        BusAddr::parse(&compact(b"\0abc", 1, b"x")),
        Err(AddrError::PathNotTerminated)
    );
    // Compact: only the header, or an address part eating the header.
    assert_eq!(
        BusAddr::parse(&compact(b"", 0, b"")),
        Err(AddrError::EmptyPath)
    );
    let mut tight = compact(b"", 2, b"");
    tight.truncate(12);
    assert_eq!(BusAddr::parse(&tight), Err(AddrError::NoRoomForAddress));
    let mut part = vec![b'a'; 61];
    part[60] = 0;
    assert_eq!(
        BusAddr::parse(&compact(&part, 1, b"")),
        Err(AddrError::PathTooLong)
    );
    // Multicast needs a bitmap.
    assert_eq!(
        BusAddr::parse(&compact(b"/b\0*", 0, b"")),
        Err(AddrError::EmptyBitmap)
    );
    // A '*' path part with no NUL before the mark.
    assert_eq!(
        BusAddr::parse(&compact(b"/b*", 1, b"")),
        Err(AddrError::PathNotTerminated)
    );
}

#[test]
fn longest_paths() {
    let mut p = vec![b'p'; BUS_PATH_MAX - 1];
    p.push(0);
    let a = BusAddr::parse(&fixed(&p, 1, b"x")).unwrap();
    assert_eq!(a.path.name().len(), BUS_PATH_MAX - 1);
    let back = BusAddr::parse(&a.encode()).unwrap();
    assert_eq!(a, back);
    // Compact, 60-byte path part.
    let a = BusAddr::parse(&compact(&p, 1, b"x")).unwrap();
    assert_eq!(a.path.name().len(), BUS_PATH_MAX - 1);
}

#[test]
fn encode_round_trips_both_layouts() {
    let mut part = b"\0sys\0".to_vec();
    part.resize(8, 0);
    part[7] = b'*';
    let a = BusAddr::parse(&compact(&part, 2, &[0x55; 16])).unwrap();
    let enc = a.encode();
    assert_eq!(enc.len(), SOCKADDR_BUS_SIZE);
    assert_eq!(enc[4], 0);
    assert_eq!(&enc[5..9], b"sys\0");
    assert_eq!(enc[63], b'*');
    assert_eq!(BusAddr::parse(&enc).unwrap(), a);
}

#[test]
fn kernel_address() {
    let bus = BusAddr::parse(&fixed(b"/tmp/k", 1, b"m")).unwrap();
    let k = BusAddr::kernel(bus.path);
    assert!(k.addr.is_kernel());
    let enc = k.encode();
    assert_eq!(u16::from_ne_bytes([enc[2], enc[3]]), 0);
    assert_eq!(&enc[4..11], b"/tmp/k\0");
    assert_eq!(BusAddr::parse(&enc).unwrap(), k);
}

#[test]
fn handles() {
    let h = AddrPart::handle(0);
    assert_eq!(h.ncomp(), 1);
    assert_eq!(h.bytes(), b":0\0\0\0\0\0\0");
    assert!(h.is_reserved());
    // ":123456" + NUL is 8 bytes: one component.
    assert_eq!(AddrPart::handle(123_456).ncomp(), 1);
    // ":1234567" + NUL is 9 bytes: two.
    let h = AddrPart::handle(1_234_567);
    assert_eq!(h.ncomp(), 2);
    assert_eq!(&h.bytes()[..9], b":1234567\0");
    let h = AddrPart::handle(u64::MAX);
    assert_eq!(h.ncomp(), 3);
    assert_eq!(&h.bytes()[..22], b":18446744073709551615\0");
    assert_ne!(AddrPart::handle(1), AddrPart::handle(10));
}

#[test]
fn reserved_range() {
    let a = BusAddr::parse(&fixed(b"/b", 1, b":1")).unwrap();
    assert!(a.addr.is_reserved());
    let a = BusAddr::parse(&fixed(b"/b", 1, b"1:")).unwrap();
    assert!(!a.addr.is_reserved());
}
