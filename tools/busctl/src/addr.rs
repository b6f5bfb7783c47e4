// SPDX-License-Identifier: GPL-2.0

//! Bus paths and addresses as afbusctl's users write them, over `af_bus_core`'s.
//!
//! A bus is `/a/path` (a socket inode) or `@name` (abstract, per network
//! namespace).  An address is a name such as `org.example.Echo`, a unique
//! name such as `1.4`, or a kernel handle such as `:4`.  Their
//! `struct sockaddr_bus` form is the core's [`BusAddr`], which the module
//! itself parses and encodes with.

use af_bus_core::addr::{AddrPart, BusAddr, BusPath as CorePath, PathKind};
use af_bus_core::bloom::Bitmap;
use af_bus_core::uapi::{BUS_ADDR_COMP_MAX, BUS_ADDR_MAX, BUS_PATH_MAX};

use crate::bloom::Bloom;
use crate::sys::SockaddrBus;

/// Longest address: all components, less the terminating NUL.
pub const NAME_MAX: usize = BUS_ADDR_MAX - 1;

/// The path part of a bus address: which bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusPath(CorePath);

impl BusPath {
    /// Parses `/path` or `@abstract`.
    pub fn parse(s: &str) -> Result<BusPath, String> {
        let (abstract_, name) = if let Some(name) = s.strip_prefix('@') {
            if name.is_empty() {
                return Err("an abstract bus needs a name after '@'".into());
            }
            (true, name)
        } else if s.starts_with('/') {
            (false, s)
        } else {
            return Err(format!(
                "bus \"{s}\" is neither a path (/run/bus/NAME) nor abstract (@NAME)"
            ));
        };
        if name.bytes().any(|b| b == 0) {
            return Err("a bus path cannot contain NUL".into());
        }
        // The path part holds an abstract name's leading NUL, the name, its
        // NUL and, in a multicast address, the mark: the name may take the
        // rest.
        let room = BUS_PATH_MAX - 2 - usize::from(abstract_);
        if name.len() > room {
            return Err(format!(
                "bus path \"{s}\" is too long (at most {} bytes)",
                BUS_PATH_MAX - 2
            ));
        }
        // The kernel's address on that bus, read back by the core.
        let mut sa = SockaddrBus::empty();
        let start = usize::from(abstract_);
        sa.path[start..start + name.len()].copy_from_slice(name.as_bytes());
        sa.parse()
            .map(|a| BusPath(a.path))
            .ok_or_else(|| format!("bus path \"{s}\" is not valid"))
    }

    /// The core's form.
    pub fn core(&self) -> &CorePath {
        &self.0
    }

    /// How users write it.
    pub fn display(&self) -> String {
        let name = String::from_utf8_lossy(self.0.name());
        match self.0.kind() {
            PathKind::Abstract => format!("@{name}"),
            PathKind::Filesystem => name.into_owned(),
        }
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

/// Checks a name afbusctl may ask the master for, or send to.
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

/// The address part of a unicast name: its bytes and a NUL, in whole
/// components.  `None` past [`NAME_MAX`] bytes.
pub fn name_part(name: &[u8]) -> Option<AddrPart> {
    let mut bytes = [0u8; BUS_ADDR_MAX];
    bytes.get_mut(..name.len())?.copy_from_slice(name);
    AddrPart::from_raw((name.len() + 1).div_ceil(8), &bytes)
}

/// The address part of a multicast bitmap: all components.
pub fn bitmap_part(b: &Bitmap) -> AddrPart {
    let mut bytes = [0u8; BUS_ADDR_MAX];
    for (out, w) in bytes.chunks_exact_mut(8).zip(b.0.iter()) {
        out.copy_from_slice(&w.to_ne_bytes());
    }
    // All components are in use: nothing past them to be non-zero.
    AddrPart::from_raw(BUS_ADDR_COMP_MAX, &bytes).unwrap_or(AddrPart::KERNEL)
}

impl Addr {
    /// Parses a unicast address as users write it.
    pub fn parse(s: &str) -> Result<Addr, String> {
        check_name(s)?;
        Ok(Addr::Name(s.to_string()))
    }

    /// This address on `bus`.  A name longer than [`NAME_MAX`] (which
    /// [`check_name`] refuses) is cut there.
    pub fn to_bus_addr(&self, bus: &BusPath) -> BusAddr {
        let (addr, multicast) = match self {
            Addr::Name(n) => {
                let n = &n.as_bytes()[..n.len().min(NAME_MAX)];
                (name_part(n).unwrap_or(AddrPart::KERNEL), false)
            }
            Addr::Multicast(b) => (bitmap_part(b.bitmap()), true),
            Addr::Kernel => (AddrPart::KERNEL, false),
        };
        BusAddr {
            path: *bus.core(),
            addr,
            multicast,
        }
    }

    /// The `struct sockaddr_bus` of this address on `bus`.
    pub fn to_sockaddr(&self, bus: &BusPath) -> SockaddrBus {
        SockaddrBus::from(&self.to_bus_addr(bus))
    }

    /// The address part of `a`.
    pub fn from_bus_addr(a: &BusAddr) -> Addr {
        if a.multicast {
            return Addr::Multicast(Bloom::from(Bitmap::of(&a.addr)));
        }
        if a.addr.is_kernel() {
            return Addr::Kernel;
        }
        let bytes = a.addr.bytes();
        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        Addr::Name(String::from_utf8_lossy(&bytes[..end]).into_owned())
    }

    /// Reads an address the kernel wrote.  One the core refuses (the
    /// kernel writes none) reads as the empty name, which nobody owns.
    pub fn from_sockaddr(sa: &SockaddrBus) -> Addr {
        sa.parse()
            .map_or(Addr::Name(String::new()), |a| Addr::from_bus_addr(&a))
    }

    /// How afbusctl prints it.
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
        assert_eq!(
            BusPath::parse("@demo").unwrap().core().kind(),
            PathKind::Abstract
        );
        assert!(BusPath::parse("@").is_err());
        assert!(BusPath::parse("relative").is_err());
        assert!(BusPath::parse(&format!("/{}", "x".repeat(60))).is_err());
        // The longest ones leave room for the multicast mark.
        assert!(BusPath::parse(&format!("/{}", "x".repeat(BUS_PATH_MAX - 3))).is_ok());
        assert!(BusPath::parse(&format!("/{}", "x".repeat(BUS_PATH_MAX - 2))).is_err());
        assert!(BusPath::parse(&format!("@{}", "x".repeat(BUS_PATH_MAX - 3))).is_ok());
        assert!(BusPath::parse(&format!("@{}", "x".repeat(BUS_PATH_MAX - 2))).is_err());
        let long = BusPath::parse(&format!("@{}", "x".repeat(BUS_PATH_MAX - 3))).unwrap();
        let bloom = Bloom::of_pairs(&["k=v".parse().unwrap()]);
        let a = Addr::Multicast(bloom.clone()).to_bus_addr(&long);
        assert_eq!(BusAddr::parse(&a.encode()), Ok(a));
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
    fn handles_are_the_cores() {
        let bus = BusPath::parse("@b").unwrap();
        let a = Addr::Name(":42".into()).to_bus_addr(&bus);
        assert_eq!(a.addr, AddrPart::handle(42));
        assert!(a.addr.is_reserved());
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
        let a = Addr::Multicast(b.clone()).to_bus_addr(&bus);
        assert!(a.multicast);
        assert_eq!(a.addr.ncomp(), BUS_ADDR_COMP_MAX);
        assert_eq!(Bitmap::of(&a.addr), *b.bitmap());
        let sa = SockaddrBus::from(&a);
        assert_eq!(Addr::from_sockaddr(&sa), Addr::Multicast(b));
        // The all-zero mask of a monitor is an address too.
        let zero = Addr::Multicast(Bloom::default()).to_bus_addr(&bus);
        assert_eq!(BusAddr::parse(&zero.encode()), Ok(zero));
    }

    #[test]
    fn kernel() {
        let bus = BusPath::parse("@b").unwrap();
        let a = Addr::Kernel.to_bus_addr(&bus);
        assert_eq!(a, BusAddr::kernel(*bus.core()));
        assert_eq!(Addr::from_bus_addr(&a), Addr::Kernel);
    }
}
