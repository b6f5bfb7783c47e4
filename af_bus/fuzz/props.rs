// SPDX-License-Identifier: GPL-2.0

//! Properties of the address and control-message parsers, shared by the fuzz targets and the seeded test.
//!
//! Each function takes arbitrary bytes, runs the parser, and panics if a
//! property does not hold: no panic inside the parser, a parsed address
//! re-encodes to itself in both layouts, and the control-message parser
//! agrees with an independent walk done the way the kernel's
//! `for_each_cmsghdr` and `CMSG_OK` do it.

#![allow(dead_code)]

use af_bus_core::addr::{AddrError, AddrPart, BusAddr, PathKind};
use af_bus_core::cmsg::{Access, BusCmsgs, CmsgError, GrantKind, MAX_BUS_CMSGS};
use af_bus_core::uapi::*;

/// The compact-layout encoding of `a`: header, the shortest path part,
/// then the address part.
pub fn compact(a: &BusAddr) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&AF_BUS.to_ne_bytes());
    out.extend_from_slice(&(a.addr.ncomp() as u16).to_ne_bytes());
    if a.path.kind() == PathKind::Abstract {
        out.push(0);
    }
    out.extend_from_slice(a.path.name());
    out.push(0);
    if a.multicast {
        out.push(BUS_MULTICAST_MARK);
    }
    out.extend_from_slice(a.addr.bytes());
    out
}

/// Parses `data` as a `struct sockaddr_bus` of `data.len()` bytes.
pub fn check_addr(data: &[u8]) {
    let parsed = BusAddr::parse(data);
    if data.len() < SBUS_PATH_OFFSET {
        assert_eq!(parsed, Err(AddrError::Short));
        return;
    }
    if data.len() > SOCKADDR_BUS_SIZE {
        assert_eq!(parsed, Err(AddrError::Long));
        return;
    }
    let a = match parsed {
        Ok(a) => a,
        Err(_) => return,
    };
    assert_eq!(u16::from_ne_bytes([data[0], data[1]]), AF_BUS);
    assert!(a.addr.ncomp() <= BUS_ADDR_COMP_MAX);
    assert_eq!(
        a.addr.ncomp(),
        usize::from(u16::from_ne_bytes([data[2], data[3]]))
    );
    assert!(!a.path.name().is_empty());
    assert!(!a.path.name().contains(&0));
    assert!(!a.multicast || a.addr.ncomp() >= 1);
    // The fixed layout round-trips.
    let fixed = a.encode();
    assert_eq!(BusAddr::parse(&fixed), Ok(a));
    // So does the compact one, unless it happens to be the fixed size.
    let c = compact(&a);
    assert!(c.len() <= SOCKADDR_BUS_SIZE);
    if c.len() != SOCKADDR_BUS_SIZE {
        assert_eq!(BusAddr::parse(&c), Ok(a));
    }
    // The address bytes are what the input held.
    let (ncomp, raw) = a.addr.raw();
    assert_eq!(AddrPart::from_raw(ncomp, raw), Some(a.addr));
    if data.len() == SOCKADDR_BUS_SIZE {
        let at = SBUS_ADDR_OFFSET;
        assert_eq!(a.addr.bytes(), &data[at..at + ncomp * 8]);
        // Bytes past ncomp are ignored.
        if ncomp < BUS_ADDR_COMP_MAX {
            let mut other = data.to_vec();
            other[at + ncomp * 8] ^= 0xff;
            assert_eq!(BusAddr::parse(&other), Ok(a));
        }
    } else {
        assert_eq!(a.addr.bytes(), &data[data.len() - ncomp * 8..]);
    }
}

/// One control message as the kernel's walk sees it.
enum Ref<'a> {
    Ok(i32, i32, &'a [u8]),
    Bad,
}

/// `for_each_cmsghdr` with the `CMSG_OK` check of `__scm_send`.
fn reference_walk(buf: &[u8]) -> Vec<Ref<'_>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while buf.len() >= at + 16 {
        let len = usize::from_ne_bytes(buf[at..at + 8].try_into().unwrap());
        let level = i32::from_ne_bytes(buf[at + 8..at + 12].try_into().unwrap());
        let kind = i32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap());
        if len < 16 || len > buf.len() - at {
            out.push(Ref::Bad);
            break;
        }
        out.push(Ref::Ok(level, kind, &buf[at + 16..at + len]));
        match len.checked_add(7).map(|l| l & !7) {
            Some(step) if step <= buf.len() - at => at += step,
            _ => break,
        }
    }
    out
}

fn grant_kind(kind: i32) -> Option<GrantKind> {
    [
        GrantKind::Own,
        GrantKind::Revoke,
        GrantKind::Match,
        GrantKind::Unmatch,
        GrantKind::Send,
        GrantKind::Move,
        GrantKind::Access,
    ]
    .into_iter()
    .find(|g| g.cmsg_type() == kind)
}

/// Parses `data` as a `sendmsg` control buffer.
pub fn check_cmsgs(data: &[u8]) {
    let parsed = BusCmsgs::parse(data);
    let walk = reference_walk(data);
    let malformed = walk.iter().any(|c| matches!(c, Ref::Bad));
    let bus: Vec<(i32, &[u8])> = walk
        .iter()
        .filter_map(|c| match c {
            Ref::Ok(level, kind, d) if *level == SOL_BUS => Some((*kind, *d)),
            _ => None,
        })
        .collect();
    // What the reference says a valid buffer is.
    let mut valid = !malformed && bus.len() <= MAX_BUS_CMSGS;
    let mut grants = Vec::new();
    let mut src = None;
    let mut classes = None;
    let mut expect_reply = false;
    for &(kind, d) in &bus {
        if kind == SCM_SRC_ADDR {
            match BusAddr::parse(d) {
                Ok(a) if !a.multicast && src.is_none() => src = Some(a),
                _ => valid = false,
            }
            continue;
        }
        if kind == SCM_POLICY_CLASSES {
            match <[u8; 8]>::try_from(d) {
                Ok(b) if classes.is_none() => classes = Some(u64::from_ne_bytes(b)),
                _ => valid = false,
            }
            continue;
        }
        if kind == SCM_EXPECT_REPLY {
            valid &= d.is_empty() && !expect_reply;
            expect_reply = true;
            continue;
        }
        let Some(g) = grant_kind(kind) else {
            valid = false;
            continue;
        };
        let (access, d) = if g == GrantKind::Access {
            if d.len() < ADDR_ACCESS_SIZE {
                valid = false;
                continue;
            }
            let word = |at: usize| u64::from_ne_bytes(d[at..at + 8].try_into().unwrap());
            (
                Access {
                    talk: word(0),
                    hear: word(8),
                },
                &d[16..],
            )
        } else {
            (Access::default(), d)
        };
        match BusAddr::parse(d) {
            Ok(a)
                if a.multicast == g.is_multicast()
                    && (a.multicast || !(a.addr.is_kernel() || a.addr.is_reserved())) =>
            {
                grants.push((g, a, access))
            }
            _ => valid = false,
        }
    }
    match parsed {
        Ok(c) => {
            assert!(valid, "accepted a buffer the reference refuses");
            let n = grants.len() + usize::from(classes.is_some());
            assert_eq!(c.ngrants(), n);
            assert_eq!(c.has_grants(), n > 0);
            assert_eq!(c.records().count(), n);
            assert_eq!(c.src(), src);
            assert_eq!(c.classes, classes);
            assert_eq!(c.expect_reply, expect_reply);
            let got: Vec<_> = c.grants().map(|g| (g.kind, g.addr, g.access)).collect();
            assert_eq!(got, grants);
        }
        Err(e) => {
            assert!(!valid, "refused ({:?}) a buffer the reference accepts", e);
            if e == CmsgError::Malformed {
                assert!(malformed);
            }
            if e == CmsgError::TooMany {
                assert!(bus.len() > MAX_BUS_CMSGS);
            }
        }
    }
}
