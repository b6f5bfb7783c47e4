// SPDX-License-Identifier: GPL-2.0

//! Bus paths and addresses as busctl's users write them, and their
//! `struct sockaddr_bus` form.
//!
//! A bus is `/a/path` (a socket inode) or `@name` (abstract, per network
//! namespace).  An address is a name such as `org.example.Echo`, a unique
//! name such as `1.4`, or a kernel handle such as `:4`.

use crate::bloom::Bloom;
use crate::sys::{SockaddrBus, AF_BUS, BUS_ADDR_COMP_MAX, BUS_PATH_MAX};

/// Longest address: 8 components of 8 bytes, with the terminating NUL.
pub const NAME_MAX: usize = BUS_ADDR_COMP_MAX * 8 - 1;

/// The path part of a bus address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusPath {
    /// The bytes of `sbus_path` up to (not including) the terminating NUL;
    /// a leading NUL for an abstract bus.
    bytes: Vec<u8>,
}

impl BusPath {
    /// Parses `/path` or `@abstract`.
    pub fn parse(s: &str) -> Result<BusPath, String> {
        let bytes: Vec<u8> = if let Some(name) = s.strip_prefix('@') {
            if name.is_empty() {
                return Err("an abstract bus needs a name after '@'".into());
            }
            std::iter::once(0).chain(name.bytes()).collect()
        } else if s.starts_with('/') {
            s.bytes().collect()
        } else {
            return Err(format!(
                "bus \"{s}\" is neither a path (/run/bus/NAME) nor abstract (@NAME)"
            ));
        };
        if bytes.iter().skip(1).any(|b| *b == 0) {
            return Err("a bus path cannot contain NUL".into());
        }
        // The multicast mark is the last byte of the path part: leave room
        // for the path's NUL and the mark.
        if bytes.len() > BUS_PATH_MAX - 2 {
            return Err(format!(
                "bus path \"{s}\" is too long (at most {} bytes)",
                BUS_PATH_MAX - 2
            ));
        }
        Ok(BusPath { bytes })
    }

    /// How users write it.
    pub fn display(&self) -> String {
        match self.bytes.split_first() {
            Some((0, rest)) => format!("@{}", String::from_utf8_lossy(rest)),
            _ => String::from_utf8_lossy(&self.bytes).into_owned(),
        }
    }

    fn fill(&self, sa: &mut SockaddrBus) {
        sa.path[..self.bytes.len()].copy_from_slice(&self.bytes);
    }
}

/// An address on a bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    /// A unicast name (handles included), without its NUL.
    Name(String),
    /// A multicast bloom bitmap.
    Multicast(Bloom),
    /// The kernel (`ncomp == 0`): the source of notifications.
    Kernel,
}

/// Checks a name busctl may ask the master for, or send to.
pub fn check_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("an empty address".into());
    }
    if s.len() > NAME_MAX {
        return Err(format!("address \"{s}\" is longer than {NAME_MAX} bytes"));
    }
    if s.bytes()
        .any(|b| b == 0 || b.is_ascii_whitespace() || !b.is_ascii_graphic())
    {
        return Err(format!(
            "address \"{s}\" has a byte that is not printable ASCII"
        ));
    }
    Ok(())
}

/// Checks a well-known name: dot-separated elements of `[A-Za-z0-9_-]`,
/// at least two, none starting with a digit, as D-Bus requires.  Unique
/// names (`1.N`) and handles (`:N`) are not well-known names.
pub fn check_well_known(s: &str) -> Result<(), String> {
    check_name(s)?;
    let elems: Vec<&str> = s.split('.').collect();
    let ok = elems.len() >= 2
        && elems.iter().all(|e| {
            !e.is_empty()
                && !e.as_bytes()[0].is_ascii_digit()
                && e.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{s}\" is not a well-known name (like org.example.Service: two or more \
             dot-separated elements of letters, digits, '_' and '-', none starting with a digit)"
        ))
    }
}

impl Addr {
    /// Parses a unicast address as users write it.
    pub fn parse(s: &str) -> Result<Addr, String> {
        check_name(s)?;
        Ok(Addr::Name(s.to_string()))
    }

    /// The `struct sockaddr_bus` of this address on `bus`.
    pub fn to_sockaddr(&self, bus: &BusPath) -> SockaddrBus {
        let mut sa = SockaddrBus::empty();
        sa.family = AF_BUS as u16;
        bus.fill(&mut sa);
        match self {
            Addr::Name(n) => {
                let len = n.len() + 1;
                let ncomp = len.div_ceil(8);
                let mut bytes = [0u8; BUS_ADDR_COMP_MAX * 8];
                bytes[..n.len()].copy_from_slice(n.as_bytes());
                for (i, w) in sa.addr.iter_mut().enumerate() {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
                    *w = u64::from_ne_bytes(b);
                }
                sa.ncomp = ncomp as u16;
            }
            Addr::Multicast(bloom) => {
                sa.path[BUS_PATH_MAX - 1] = b'*';
                sa.addr = bloom.words();
                sa.ncomp = BUS_ADDR_COMP_MAX as u16;
            }
            Addr::Kernel => {}
        }
        sa
    }

    /// Reads an address the kernel wrote.
    pub fn from_sockaddr(sa: &SockaddrBus) -> Addr {
        if sa.ncomp == 0 {
            return Addr::Kernel;
        }
        let ncomp = (sa.ncomp as usize).min(BUS_ADDR_COMP_MAX);
        if sa.path[BUS_PATH_MAX - 1] == b'*' {
            let mut words = [0u64; BUS_ADDR_COMP_MAX];
            words[..ncomp].copy_from_slice(&sa.addr[..ncomp]);
            return Addr::Multicast(Bloom::from_words(words));
        }
        let bytes: Vec<u8> = sa.addr[..ncomp]
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .take_while(|b| *b != 0)
            .collect();
        Addr::Name(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// How busctl prints it.
    pub fn display(&self) -> String {
        match self {
            Addr::Name(n) => n.clone(),
            Addr::Multicast(b) => format!("multicast {}", b.short()),
            Addr::Kernel => "the kernel".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            BusPath::parse("/run/bus/x").unwrap().display(),
            "/run/bus/x"
        );
        assert_eq!(BusPath::parse("@demo").unwrap().display(), "@demo");
        assert!(BusPath::parse("@").is_err());
        assert!(BusPath::parse("relative").is_err());
        assert!(BusPath::parse(&format!("/{}", "x".repeat(60))).is_err());
    }

    #[test]
    fn names_round_trip() {
        let bus = BusPath::parse("@b").unwrap();
        for n in ["org.example.Echo", "1.1", ":12", "a", &"x".repeat(NAME_MAX)] {
            let a = Addr::parse(n).unwrap();
            let sa = a.to_sockaddr(&bus);
            assert_eq!(sa.ncomp as usize, (n.len() + 1).div_ceil(8));
            assert_eq!(Addr::from_sockaddr(&sa), a);
        }
        assert!(Addr::parse(&"x".repeat(NAME_MAX + 1)).is_err());
        assert!(Addr::parse("").is_err());
        assert!(Addr::parse("a b").is_err());
    }

    #[test]
    fn well_known() {
        assert!(check_well_known("org.example.Echo").is_ok());
        assert!(check_well_known("org.example-1.Echo_2").is_ok());
        for bad in ["1.4", ":4", "org", "org..x", "org.9x", "org.ex ample"] {
            assert!(check_well_known(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn multicast_round_trip() {
        let bus = BusPath::parse("/run/bus/x").unwrap();
        let b = Bloom::of_pairs(&["member=Changed".parse().unwrap()]);
        let sa = Addr::Multicast(b.clone()).to_sockaddr(&bus);
        assert_eq!(sa.path[BUS_PATH_MAX - 1], b'*');
        assert_eq!(Addr::from_sockaddr(&sa), Addr::Multicast(b));
    }
}
