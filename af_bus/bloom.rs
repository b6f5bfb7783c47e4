// SPDX-License-Identifier: GPL-2.0

//! Bloom-filter bitmaps of multicast addresses: matching, send-grant
//! coverage, and the bit a match grant is indexed under.
//! Kernel-independent.

use crate::addr::AddrPart;
use crate::uapi::BUS_ADDR_COMP_MAX;

/// Bits in a bitmap.
pub const BITS: usize = BUS_ADDR_COMP_MAX * 64;

/// A 512-bit bitmap; components past an address's `ncomp` read as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bitmap(pub [u64; BUS_ADDR_COMP_MAX]);

/// The index key of the match grants that every message matches (the
/// all-zero mask, a monitor).
pub const MONITOR_KEY: u16 = BITS as u16;

impl Bitmap {
    /// The bitmap of a multicast address.
    pub fn of(addr: &AddrPart) -> Bitmap {
        Bitmap(addr.words())
    }

    /// Whether a message sent to `self` reaches a grant of `mask`:
    /// `(B & M) == M`.
    pub fn matches(&self, mask: &Bitmap) -> bool {
        self.0.iter().zip(mask.0.iter()).all(|(b, m)| b & m == *m)
    }

    /// Whether every bit of `self` lies within `grant` (send grants).
    pub fn within(&self, grant: &Bitmap) -> bool {
        self.0.iter().zip(grant.0.iter()).all(|(b, g)| b & !g == 0)
    }

    /// The key a match grant of this mask is indexed under: its lowest
    /// set bit, or [`MONITOR_KEY`] for the zero mask.  A message can only
    /// match grants whose key bit it has set (or monitors).
    pub fn index_key(&self) -> u16 {
        for (i, w) in self.0.iter().enumerate() {
            if *w != 0 {
                // `i < 8` and `trailing_zeros() < 64`: the key is below 512.
                return (i * 64 + w.trailing_zeros() as usize) as u16;
            }
        }
        MONITOR_KEY
    }

    /// The set bits, lowest first.
    pub fn bits(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            core::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                // As for `index_key`.
                Some((i * 64 + b) as u16)
            })
        })
    }
}
