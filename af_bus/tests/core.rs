// SPDX-License-Identifier: GPL-2.0

//! Host tests of the control-message parser, queue admission, message
//! metadata and notification layout.

use af_bus_core::addr::{AddrPart, BusAddr, NamePrefix};
use af_bus_core::cmsg::{admits, Access, BusCmsgs, CmsgError, GrantKind, MAX_BUS_CMSGS};
use af_bus_core::meta::{self, Meta};
use af_bus_core::notify;
use af_bus_core::quota::{admit, Admit, Limits, Usage};
use af_bus_core::uapi::*;

fn addr(path: &[u8], a: &[u8], multicast: bool) -> Vec<u8> {
    let mut raw = vec![0u8; SOCKADDR_BUS_SIZE];
    raw[0..2].copy_from_slice(&AF_BUS.to_ne_bytes());
    let ncomp = a.len().div_ceil(8) as u16;
    raw[2..4].copy_from_slice(&ncomp.to_ne_bytes());
    raw[4..4 + path.len()].copy_from_slice(path);
    if multicast {
        raw[63] = b'*';
    }
    raw[64..64 + a.len()].copy_from_slice(a);
    raw
}

fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
    let len = 16 + data.len();
    let mut out = Vec::new();
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&level.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(data);
    out.resize((len + 7) & !7, 0);
    out
}

#[test]
fn cmsgs_grants_source_and_other_levels() {
    let mut buf = cmsg(1 /* SOL_SOCKET */, 2, &[0; 12]);
    buf.extend(cmsg(SOL_BUS, SCM_OWNED_ADDR, &addr(b"/b", b"a.b\0", false)));
    buf.extend(cmsg(
        SOL_BUS,
        SCM_REVOKE_ADDR,
        &addr(b"/b", b"c.d\0", false),
    ));
    buf.extend(cmsg(SOL_BUS, SCM_SRC_ADDR, &addr(b"/b", b"me\0", false)));
    buf.extend(cmsg(SOL_BUS, SCM_MOVE_ADDR, &addr(b"/b", b"e.f\0", false)));
    let c = BusCmsgs::parse(&buf).unwrap();
    let g: Vec<_> = c.grants().collect();
    assert_eq!(g.len(), 3);
    assert_eq!(g[0].kind, GrantKind::Own);
    assert_eq!(g[1].kind, GrantKind::Revoke);
    assert_eq!(g[2].kind, GrantKind::Move);
    assert_eq!(g[2].kind.cmsg_type(), SCM_MOVE_ADDR);
    assert!(!g[2].kind.is_multicast());
    assert_eq!(&g[0].addr.addr.bytes()[..4], b"a.b\0");
    assert_eq!(&c.src().unwrap().addr.bytes()[..3], b"me\0");
}

#[test]
fn cmsg_errors() {
    let ok = addr(b"/b", b"x\0", false);
    let one = |kind, data: &[u8]| BusCmsgs::parse(&cmsg(SOL_BUS, kind, data)).map(|c| c.src());
    assert_eq!(one(99, &ok).unwrap_err(), CmsgError::UnknownType);
    assert_eq!(one(SCM_DST_ADDR, &ok).unwrap_err(), CmsgError::UnknownType);
    assert_eq!(
        one(SCM_OWNED_ADDR, &addr(b"/b", b":1\0", false)).unwrap_err(),
        CmsgError::ReservedAddress
    );
    assert_eq!(
        one(SCM_OWNED_ADDR, &addr(b"/b", b"", false)).unwrap_err(),
        CmsgError::ReservedAddress
    );
    assert_eq!(
        one(SCM_OWNED_ADDR, &addr(b"/b", b"\xff", true)).unwrap_err(),
        CmsgError::WrongKind
    );
    assert_eq!(
        one(SCM_MOVE_ADDR, &addr(b"/b", b"\xff", true)).unwrap_err(),
        CmsgError::WrongKind
    );
    assert_eq!(
        one(SCM_MOVE_ADDR, &addr(b"/b", b":1\0", false)).unwrap_err(),
        CmsgError::ReservedAddress
    );
    assert_eq!(
        one(SCM_MULTICAST_MATCH, &ok).unwrap_err(),
        CmsgError::WrongKind
    );
    assert_eq!(
        one(SCM_SRC_ADDR, &addr(b"/b", b"\xff", true)).unwrap_err(),
        CmsgError::MulticastSource
    );
    assert!(matches!(
        one(SCM_OWNED_ADDR, &ok[..3]),
        Err(CmsgError::BadAddress(_))
    ));
    let mut two = cmsg(SOL_BUS, SCM_SRC_ADDR, &ok);
    two.extend(cmsg(SOL_BUS, SCM_SRC_ADDR, &ok));
    assert_eq!(
        BusCmsgs::parse(&two).unwrap_err(),
        CmsgError::DuplicateSource
    );
    let mut many = Vec::new();
    for _ in 0..=MAX_BUS_CMSGS {
        many.extend(cmsg(SOL_BUS, SCM_OWNED_ADDR, &ok));
    }
    assert_eq!(BusCmsgs::parse(&many).unwrap_err(), CmsgError::TooMany);
    // A header claiming more than the buffer, or less than itself.
    let mut bad = cmsg(SOL_BUS, SCM_OWNED_ADDR, &ok);
    bad[0..8].copy_from_slice(&4096usize.to_ne_bytes());
    assert_eq!(BusCmsgs::parse(&bad).unwrap_err(), CmsgError::Malformed);
    bad[0..8].copy_from_slice(&8usize.to_ne_bytes());
    assert_eq!(BusCmsgs::parse(&bad).unwrap_err(), CmsgError::Malformed);
    // Trailing bytes too short for a header are ignored, as the kernel does.
    assert!(BusCmsgs::parse(&[0u8; 8]).unwrap().src().is_none());
}

fn access(talk: u64, hear: u64, a: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&talk.to_ne_bytes());
    d.extend_from_slice(&hear.to_ne_bytes());
    d.extend(addr(b"/b", a, false));
    assert_eq!(d.len(), ADDR_ACCESS_SIZE);
    d
}

#[test]
fn policy_cmsgs() {
    let mut buf = cmsg(SOL_BUS, SCM_OWNED_ADDR, &addr(b"/b", b"a\0", false));
    buf.extend(cmsg(SOL_BUS, SCM_POLICY_CLASSES, &5u64.to_ne_bytes()));
    buf.extend(cmsg(SOL_BUS, SCM_ADDR_ACCESS, &access(2, 4, b"a\0")));
    buf.extend(cmsg(SOL_BUS, SCM_EXPECT_REPLY, &[]));
    let c = BusCmsgs::parse(&buf).unwrap();
    assert_eq!(c.classes, Some(5));
    assert!(c.expect_reply);
    // The classes count as a grant (the master's only), the reply flag not.
    assert_eq!(c.ngrants(), 3);
    let g: Vec<_> = c.grants().collect();
    assert_eq!(g.len(), 2);
    assert_eq!(g[1].kind, GrantKind::Access);
    assert_eq!(g[1].kind.cmsg_type(), SCM_ADDR_ACCESS);
    assert_eq!(g[1].access, Access { talk: 2, hear: 4 });
    assert_eq!(&g[1].addr.addr.bytes()[..2], b"a\0");
    assert_eq!(g[0].access, Access::default());
    let kinds: Vec<_> = c.records().map(|(k, _)| k).collect();
    assert_eq!(kinds, [SCM_OWNED_ADDR, SCM_POLICY_CLASSES, SCM_ADDR_ACCESS]);

    // The receiver sees each as given: classes first, then the grants.
    let m = Meta {
        src: AddrPart::handle(0),
        dst: AddrPart::handle(1),
        flags: 0,
    };
    let mut raw = vec![0xa5u8; meta::len(c.ngrants())];
    meta::write(&mut raw, &m, c.classes, c.grants());
    let got: Vec<_> = meta::grants(&raw).collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], (SCM_POLICY_CLASSES, &5u64.to_ne_bytes()[..]));
    assert_eq!(got[1].0, SCM_OWNED_ADDR);
    assert_eq!(got[1].1.len(), SOCKADDR_BUS_SIZE);
    assert_eq!(got[2], (SCM_ADDR_ACCESS, &access(2, 4, b"a\0")[..]));

    let one = |kind, data: &[u8]| BusCmsgs::parse(&cmsg(SOL_BUS, kind, data)).map(|c| c.src());
    assert_eq!(
        one(SCM_POLICY_CLASSES, &[0; 4]).unwrap_err(),
        CmsgError::BadLength
    );
    assert_eq!(
        one(SCM_EXPECT_REPLY, &[0; 4]).unwrap_err(),
        CmsgError::BadLength
    );
    assert_eq!(
        one(SCM_ADDR_ACCESS, &access(1, 1, b"a\0")[..20]).unwrap_err(),
        CmsgError::BadLength
    );
    assert_eq!(
        one(SCM_ADDR_ACCESS, &access(1, 1, b":1\0")).unwrap_err(),
        CmsgError::ReservedAddress
    );
    let mut two = cmsg(SOL_BUS, SCM_EXPECT_REPLY, &[]);
    two.extend(cmsg(SOL_BUS, SCM_EXPECT_REPLY, &[]));
    assert_eq!(
        BusCmsgs::parse(&two).unwrap_err(),
        CmsgError::DuplicateSource
    );
    let mut two = cmsg(SOL_BUS, SCM_POLICY_CLASSES, &[0; 8]);
    two.extend(cmsg(SOL_BUS, SCM_POLICY_CLASSES, &[0; 8]));
    assert_eq!(
        BusCmsgs::parse(&two).unwrap_err(),
        CmsgError::DuplicateSource
    );
}

#[test]
fn access_masks() {
    let open = [Access::default()];
    let talk = |t| [Access { talk: t, hear: 0 }];
    let hear = |h| [Access { talk: 0, hear: h }];
    // Nothing restricted: everyone, classes or not.
    assert!(admits(0, &open, 0, &open));
    assert!(admits(0, &[], 0, &[]));
    // The receiver's talk masks: the sender needs a class of each.
    assert!(admits(0b10, &[], 0, &talk(0b110)));
    assert!(!admits(0b01, &[], 0, &talk(0b110)));
    assert!(!admits(0b10, &[], 0, &[talk(0b10)[0], talk(0b100)[0]]));
    assert!(admits(0b110, &[], 0, &[talk(0b10)[0], talk(0b100)[0]]));
    // The sender's hear masks: the receiver needs a class of each.
    assert!(admits(0, &hear(1), 1, &[]));
    assert!(!admits(0, &hear(1), 2, &[]));
    // Talk masks of the sender and hear masks of the receiver do not count.
    assert!(admits(0, &talk(1), 0, &hear(1)));
}

#[test]
fn admission() {
    let l = Limits {
        bytes: 1000,
        msgs: 8,
    };
    let none = Usage::default();
    let u = |bytes, msgs| Usage { bytes, msgs };
    assert_eq!(admit(l, none, Some(none), 10), Admit::Yes);
    // A lone user: half the messages, half the bytes.
    assert_eq!(admit(l, u(40, 4), Some(u(40, 4)), 10), Admit::Full);
    assert_eq!(admit(l, u(40, 3), Some(u(40, 3)), 10), Admit::Yes);
    assert_eq!(admit(l, u(495, 1), Some(u(495, 1)), 10), Admit::Full);
    // A second user gets half of what the first left.
    assert_eq!(admit(l, u(40, 4), Some(u(0, 1)), 10), Admit::Yes);
    assert_eq!(admit(l, u(40, 6), Some(u(20, 2)), 10), Admit::Full);
    // Exempt senders (the kernel) fill the queue.
    assert_eq!(admit(l, u(40, 7), None, 10), Admit::Yes);
    assert_eq!(admit(l, u(40, 8), None, 10), Admit::Full);
    assert_eq!(admit(l, u(995, 1), None, 10), Admit::Full);
    // Never fits.
    assert_eq!(admit(l, none, Some(none), 501), Admit::TooBig);
    assert_eq!(admit(l, none, None, 1001), Admit::TooBig);
    // A one-message queue is usable.
    let one = Limits {
        bytes: 1000,
        msgs: 1,
    };
    assert_eq!(admit(one, none, Some(none), 10), Admit::Yes);
    assert_eq!(admit(one, u(10, 1), Some(u(10, 1)), 10), Admit::Full);
}

#[test]
fn metadata_round_trip() {
    let src = AddrPart::handle(7);
    let dst = BusAddr::parse(&addr(b"/b", b"org.x\0", false)).unwrap();
    let mut buf = Vec::new();
    for (kind, a) in [(SCM_OWNED_ADDR, b"a\0"), (SCM_REVOKE_ADDR, b"b\0")] {
        buf.extend(cmsg(SOL_BUS, kind, &addr(b"/b", a, false)));
    }
    let c = BusCmsgs::parse(&buf).unwrap();
    let m = Meta {
        src,
        dst: dst.addr,
        flags: 0,
    };
    // Stale bytes in the headroom: everything gets written.
    let mut raw = vec![0xa5u8; meta::len(2)];
    meta::write(&mut raw, &m, c.classes, c.grants());
    assert_eq!(meta::read(&raw), Some(m));
    assert!(raw[4..8].iter().all(|&b| b == 0));
    // The receive path's in-place source and cached prefix give what
    // the full encoding gives.
    let (ncomp, part) = meta::src_raw(&raw).unwrap();
    let prefix = NamePrefix::new(&dst.path);
    assert_eq!(
        prefix.encode(ncomp, part),
        Some(
            BusAddr {
                path: dst.path,
                addr: src,
                multicast: false
            }
            .encode()
        )
    );
    assert_eq!(prefix.encode(9, part), None);
    assert_eq!(meta::src_raw(&raw[..20]), None);
    let mut again = vec![0xa5u8; meta::len(0)];
    meta::write(&mut again, &m, None, core::iter::empty());
    // The same but for the grant count.
    assert_eq!(again[3], 0);
    assert_eq!(&again[..3], &raw[..3]);
    assert_eq!(&again[4..], &raw[4..meta::len(0)]);
    let g: Vec<_> = meta::grants(&raw).collect();
    assert_eq!(g.len(), 2);
    assert_eq!(g[0].0, SCM_OWNED_ADDR);
    assert_eq!(BusAddr::parse(g[1].1).unwrap().addr.bytes()[0], b'b');
    assert_eq!(meta::read(&raw[..10]), None);
    // A corrupted count (non-zero past ncomp) is refused.
    raw[0] = 0;
    assert_eq!(meta::read(&raw), None);
}

#[test]
fn notifications() {
    let a = addr(b"/b", b":1\0", false);
    let mut fixed = [0u8; SOCKADDR_BUS_SIZE];
    fixed.copy_from_slice(&a);
    let mut out = vec![0u8; notify::gone_len(2)];
    notify::write_gone(&mut out, &[fixed, fixed]);
    assert_eq!(
        u32::from_ne_bytes(out[0..4].try_into().unwrap()),
        BUS_NOTIFY_GONE
    );
    assert_eq!(u32::from_ne_bytes(out[4..8].try_into().unwrap()), 16);
    assert_eq!(u64::from_ne_bytes(out[8..16].try_into().unwrap()), 2);
    assert_eq!(&out[16 + 128..], &a[..]);
    let o = notify::overflow(5);
    assert_eq!(
        u32::from_ne_bytes(o[0..4].try_into().unwrap()),
        BUS_NOTIFY_OVERFLOW
    );
    assert_eq!(u64::from_ne_bytes(o[8..16].try_into().unwrap()), 5);
}

#[test]
fn bloom_matching() {
    use af_bus_core::bloom::{Bitmap, IndexKey, MONITOR_KEY};
    let b = Bitmap([0b1011, 0, 0, 0, 0, 0, 0, 1 << 63]);
    // Subset matches, superset and disjoint do not, zero always does.
    assert!(b.matches(&Bitmap([0b0011, 0, 0, 0, 0, 0, 0, 0])));
    assert!(b.matches(&Bitmap([0, 0, 0, 0, 0, 0, 0, 1 << 63])));
    assert!(!b.matches(&Bitmap([0b0111, 0, 0, 0, 0, 0, 0, 0])));
    assert!(!b.matches(&Bitmap([0, 1, 0, 0, 0, 0, 0, 0])));
    assert!(b.matches(&Bitmap::default()));
    // Send grants: the message's bits within the grant.
    assert!(Bitmap([0b0011, 0, 0, 0, 0, 0, 0, 0]).within(&b));
    assert!(!Bitmap([0b0100, 0, 0, 0, 0, 0, 0, 0]).within(&b));
    // Index keys and bits: with no bit held, the lowest three.
    let none = |_| 0;
    let key = |k1, k2, k3| IndexKey { k1, k2, k3 };
    assert_eq!(b.index_key(none), key(0, 1, 3));
    assert_eq!(
        Bitmap([0, 0, 0b100, 0, 0, 0, 0, 0]).index_key(none),
        key(130, 130, MONITOR_KEY)
    );
    assert_eq!(
        Bitmap([0b1010, 0, 0, 0, 0, 0, 0, 0]).index_key(none),
        key(1, 3, MONITOR_KEY)
    );
    assert_eq!(Bitmap::default().index_key(none), IndexKey::MONITOR);
    assert_eq!(b.bits().collect::<Vec<_>>(), vec![0, 1, 3, 511]);
    // The least held bits, in order whatever their counts' order; the
    // lower bit among equals.
    let held = |bit: u16| match bit {
        0 => 9,
        1 => 5,
        3 => 1,
        _ => 5,
    };
    assert_eq!(b.index_key(held), key(1, 3, 511));
    assert_eq!(b.index_key(|bit| u32::from(511 - bit)), key(1, 3, 511));
    assert_eq!(
        Bitmap([0b1010, 0, 0, 0, 0, 0, 0, 0]).index_key(|bit| u32::from(9 - bit)),
        key(1, 3, MONITOR_KEY)
    );
    // A mask matches a message only if the message has its key bits.
    let m = Bitmap([0b1010, 0, 0, 0, 0, 0, 0, 0]);
    assert!(b.matches(&m));
    let k = m.index_key(none);
    assert!(b.test(k.k1) && b.test(k.k2) && k.k1 <= k.k2);
    // The summary operations.
    let mut s = Bitmap::default();
    s.set(511);
    s.set(3);
    assert_eq!(s.and(&b).bits().collect::<Vec<_>>(), vec![3, 511]);
    assert!(s.test(3) && s.test(511) && !s.test(0) && !s.test(64) && !b.test(512));
    assert_eq!(
        (0..512).filter(|&x| b.test(x)).collect::<Vec<_>>(),
        b.bits().collect::<Vec<_>>()
    );
    s.clear(3);
    s.clear(511);
    assert!(s.is_zero() && !b.is_zero());
}

/// A xorshift generator for the index tests.
fn next(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

#[test]
fn index_keys_are_bits_of_the_mask() {
    use af_bus_core::bloom::{Bitmap, MONITOR_KEY};
    let mut rng = 88172645463325252u64;
    for round in 0..20000 {
        let mut m = Bitmap::default();
        for _ in 0..round % 14 {
            m.set((next(&mut rng) % 512) as u16);
        }
        let salt = next(&mut rng);
        let held = |bit: u16| (u64::from(bit).wrapping_mul(salt) >> 59) as u32;
        let k = m.index_key(held);
        let n = m.bits().count();
        match n {
            0 => assert_eq!((k.k1, k.k2, k.k3), (MONITOR_KEY, MONITOR_KEY, MONITOR_KEY)),
            1 => assert!(m.test(k.k1) && k.k1 == k.k2 && k.k3 == MONITOR_KEY),
            2 => assert!(m.test(k.k1) && m.test(k.k2) && k.k1 < k.k2 && k.k3 == MONITOR_KEY),
            _ => {
                assert!(m.test(k.k1) && m.test(k.k2) && m.test(k.k3));
                assert!(k.k1 < k.k2 && k.k2 < k.k3);
                // No bit outside the key is held less than one in it.
                let most = [k.k1, k.k2, k.k3].map(held).into_iter().max().unwrap();
                let keyed = [k.k1, k.k2, k.k3];
                assert!(m
                    .bits()
                    .filter(|b| !keyed.contains(b))
                    .all(|b| held(b) >= most));
            }
        }
    }
}

/// 10,000 rules sharing 8 bits (one interface and member, as the D-Bus
/// mapping sets them) and 4 bits of their own (a path), filed with the
/// counts of bits held growing as the bus's do: a signal on that
/// interface and member to another path looks at a handful of them,
/// where filing under the two lowest bits put nearly all under one pair.
#[test]
fn shared_bits_do_not_crowd_one_pair() {
    use af_bus_core::bloom::{Bitmap, IndexKey};
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut shared = Bitmap::default();
    while shared.bits().count() < 8 {
        shared.set((next(&mut rng) % 512) as u16);
    }
    let own = |rng: &mut u64| {
        let mut m = shared;
        for _ in 0..4 {
            m.set((next(rng) % 512) as u16);
        }
        m
    };
    let mut held = vec![0u32; 512];
    let mut keys = Vec::new();
    let mut lowest = Vec::new();
    for _ in 0..10000 {
        let m = own(&mut rng);
        keys.push(m.index_key(|b| held[usize::from(b)]));
        lowest.push(m.index_key(|_| 0));
        for b in m.bits() {
            held[usize::from(b)] += 1;
        }
    }
    // A signal: the shared bits and another path's, plus 16 bits more
    // (the path's prefixes, arg0).  How many grants it looks at, filed
    // both ways.
    let (mut now, mut before) = (0, 0);
    for _ in 0..100 {
        let mut sig = own(&mut rng);
        for _ in 0..16 {
            sig.set((next(&mut rng) % 512) as u16);
        }
        let looks = |keys: &[IndexKey]| {
            keys.iter()
                .filter(|k| sig.test(k.k1) && sig.test(k.k2))
                .count()
        };
        now += looks(&keys);
        before += looks(&lowest);
    }
    assert!(before / 100 > 1000, "by the lowest bits: {}", before / 100);
    assert!(now / 100 < 20, "by the least held bits: {}", now / 100);
}

#[test]
fn ring_geometry() {
    use af_bus_core::ring::{Geometry, RingError, FRAME_HDR_LEN};
    assert_eq!(FRAME_HDR_LEN, 288);
    assert_eq!(Geometry::new(0, 0, 4096), Ok(None));
    let g = Geometry::new(2048, 4, 4096).unwrap().unwrap();
    assert_eq!(
        (g.size(), g.frames(), g.offset(3), g.payload_max()),
        (8192, 4, 6144, 1760)
    );
    assert_eq!(Geometry::new(2047, 4, 4096), Err(RingError::FrameSize));
    assert_eq!(Geometry::new(288, 4096, 4096), Err(RingError::FrameSize));
    assert_eq!(Geometry::new(2048, 0, 4096), Err(RingError::FrameCount));
    assert_eq!(Geometry::new(2048, 3, 4096), Err(RingError::Size));
    assert_eq!(Geometry::new(1 << 20, 65, 4096), Err(RingError::Size));
    assert_eq!(
        Geometry::new(u32::MAX & !15, u32::MAX, 4096),
        Err(RingError::Size)
    );
}
