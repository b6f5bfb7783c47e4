// SPDX-License-Identifier: GPL-2.0

//! The bloom scheme of afbusctl, its reference master and `bus-bloom.h`.
//!
//! A multicast address is a 512-bit bitmap, `af_bus_core`'s [`Bitmap`].
//! Each `KEY=VALUE` pair of a signal sets [`HASHES`] bits: with `h1` the
//! 64-bit FNV-1a hash of the pair's bytes (`KEY=VALUE`, no NUL) and `h2` the FNV-1a hash of the same
//! bytes started from the offset basis XOR `0x9e3779b97f4a7c15`, forced odd,
//! bit `i` is `(h1 + i * h2) mod 512` for `i` in `0..4` (wrapping 64-bit
//! arithmetic).  Bit `b` lives in component `b / 64`, at `1 << (b % 64)`.
//! A signal's bitmap is the union of its pairs' bits; a match on some pairs
//! is the union of theirs, and the kernel delivers when every bit of the
//! match is set in the signal (`(B & M) == M`).  Unrelated pairs can
//! collide; the 32-bit pair hash `(h1 >> 32) ^ h1` travels in the message
//! header so a BPF filter can drop those false positives (see `filter.rs`).

use std::fmt;
use std::str::FromStr;

use af_bus_core::bloom::{self, Bitmap};
use af_bus_core::uapi::BUS_ADDR_COMP_MAX;

/// Bits in the bitmap.
pub const BITS: u64 = bloom::BITS as u64;
/// Bits set per pair.
pub const HASHES: u64 = 4;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const SECOND_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

fn fnv1a(seed: u64, data: &[u8]) -> u64 {
    data.iter()
        .fold(seed, |h, b| (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME))
}

/// One `KEY=VALUE` pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub key: String,
    pub value: String,
}

impl FromStr for Pair {
    type Err = String;

    fn from_str(s: &str) -> Result<Pair, String> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("\"{s}\" is not a KEY=VALUE pair"))?;
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(format!("\"{s}\": a key is one or more of [A-Za-z0-9_.-]"));
        }
        if value.bytes().any(|b| b == 0 || b == b'\n') {
            return Err(format!("\"{s}\": a value cannot hold NUL or a newline"));
        }
        Ok(Pair {
            key: key.into(),
            value: value.into(),
        })
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

impl Pair {
    fn hashes(&self) -> (u64, u64) {
        let s = self.to_string();
        let h1 = fnv1a(FNV_OFFSET, s.as_bytes());
        let h2 = fnv1a(FNV_OFFSET ^ SECOND_SEED, s.as_bytes()) | 1;
        (h1, h2)
    }

    /// The bits this pair sets.
    pub fn bits(&self) -> [u16; HASHES as usize] {
        let (h1, h2) = self.hashes();
        let mut out = [0u16; HASHES as usize];
        for (i, o) in out.iter_mut().enumerate() {
            *o = (h1.wrapping_add((i as u64).wrapping_mul(h2)) % BITS) as u16;
        }
        out
    }

    /// The 32-bit hash a message header carries for this pair.
    pub fn hash32(&self) -> u32 {
        let (h1, _) = self.hashes();
        ((h1 >> 32) ^ h1) as u32
    }
}

/// The bitmap of a signal or a match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bloom(Bitmap);

impl From<Bitmap> for Bloom {
    fn from(b: Bitmap) -> Bloom {
        Bloom(b)
    }
}

impl Bloom {
    /// The bitmap of `pairs` (all zero for none: a monitor's mask).
    pub fn of_pairs(pairs: &[Pair]) -> Bloom {
        let mut b = Bitmap::default();
        for p in pairs {
            for bit in p.bits() {
                b.set(bit);
            }
        }
        Bloom(b)
    }

    /// The eight components.
    pub fn words(&self) -> [u64; BUS_ADDR_COMP_MAX] {
        self.0 .0
    }

    /// The core's bitmap.
    pub fn bitmap(&self) -> &Bitmap {
        &self.0
    }

    /// Whether a message sent to `self` reaches a match of `mask`, as the
    /// kernel decides it.
    #[cfg(test)]
    pub fn matches(&self, mask: &Bloom) -> bool {
        self.0.matches(&mask.0)
    }

    /// The set bits, lowest first.
    pub fn bits(&self) -> Vec<u16> {
        self.0.bits().collect()
    }

    /// A short form: the set bits.
    pub fn short(&self) -> String {
        let bits: Vec<String> = self.bits().iter().map(|b| b.to_string()).collect();
        format!("{{{}}}", bits.join(","))
    }

    /// The eight components in hex, as `afbusctl bloom` prints them.
    pub fn hex(&self) -> String {
        let w: Vec<String> = self.words().iter().map(|w| format!("{w:016x}")).collect();
        w.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pair {
        s.parse().unwrap()
    }

    #[test]
    fn fnv_reference() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn pairs_parse() {
        assert_eq!(p("member=Changed").key, "member");
        assert_eq!(p("k=a=b").value, "a=b");
        assert_eq!(p("k=").value, "");
        for bad in ["novalue", "=v", "bad key=v", "k=a\nb"] {
            assert!(bad.parse::<Pair>().is_err(), "{bad}");
        }
    }

    #[test]
    fn scheme() {
        let a = p("member=Changed");
        let bits = a.bits();
        assert!(bits.iter().all(|b| u64::from(*b) < BITS));
        let b = Bloom::of_pairs(std::slice::from_ref(&a));
        assert!(!b.bits().is_empty() && b.bits().len() <= HASHES as usize);
        let sig = Bloom::of_pairs(&[a, p("interface=org.example.Echo")]);
        assert!(sig.matches(&b));
        assert!(!b.matches(&sig));
        assert!(sig.matches(&Bloom::default()));
    }

    #[test]
    fn demo_collision() {
        // The demo's second listener: its pair differs from every pair of
        // the signal, yet all its bits are set in the signal's bitmap, so
        // only its BPF filter keeps it asleep.
        let sig: Vec<Pair> = crate::DEMO_SIGNAL.iter().map(|s| p(s)).collect();
        let l = p(crate::DEMO_COLLIDING_MATCH);
        assert!(!sig.contains(&l));
        assert!(Bloom::of_pairs(&sig).matches(&Bloom::of_pairs(std::slice::from_ref(&l))));
        assert!(sig.iter().all(|s| s.hash32() != l.hash32()));
    }
}
