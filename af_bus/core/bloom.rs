// SPDX-License-Identifier: GPL-2.0

//! Bloom-filter bitmaps of multicast addresses: matching, send-grant
//! coverage, and the bits a match grant is indexed under.
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
    #[inline]
    pub fn matches(&self, mask: &Bitmap) -> bool {
        self.0.iter().zip(mask.0.iter()).all(|(b, m)| b & m == *m)
    }

    /// Whether every bit of `self` lies within `grant` (send grants).
    pub fn within(&self, grant: &Bitmap) -> bool {
        self.0.iter().zip(grant.0.iter()).all(|(b, g)| b & !g == 0)
    }

    /// The key a match grant of this mask is indexed under: its two
    /// lowest set bits (the lowest twice for a one-bit mask), or
    /// [`MONITOR_KEY`] twice for the zero mask.  A message can only match
    /// grants whose two key bits it has both set (or monitors).
    pub fn index_pair(&self) -> (u16, u16) {
        let mut bits = self.bits();
        match (bits.next(), bits.next()) {
            (None, _) => (MONITOR_KEY, MONITOR_KEY),
            (Some(a), None) => (a, a),
            (Some(a), Some(b)) => (a, b),
        }
    }

    /// The third-lowest set bit, past the two [`Bitmap::index_pair`]
    /// gives: a message can only match a grant whose third bit it has
    /// too.  [`MONITOR_KEY`] for a mask of fewer than three bits.
    pub fn index_third(&self) -> u16 {
        self.bits().nth(2).unwrap_or(MONITOR_KEY)
    }

    /// The bits set in both.
    #[inline]
    pub fn and(&self, other: &Bitmap) -> Bitmap {
        let mut out = *self;
        for (o, w) in out.0.iter_mut().zip(other.0.iter()) {
            *o &= *w;
        }
        out
    }

    /// Sets bit `bit` (below [`BITS`]).
    pub fn set(&mut self, bit: u16) {
        self.0[usize::from(bit) / 64] |= 1 << (bit % 64);
    }

    /// Clears bit `bit` (below [`BITS`]).
    pub fn clear(&mut self, bit: u16) {
        self.0[usize::from(bit) / 64] &= !(1 << (bit % 64));
    }

    /// Whether bit `bit` is set (never for `bit >= BITS`).
    #[inline]
    pub fn test(&self, bit: u16) -> bool {
        self.0
            .get(usize::from(bit) / 64)
            .is_some_and(|w| w & (1 << (bit % 64)) != 0)
    }

    /// Whether no bit is set.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
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
                // `i < 8` and `b < 64`: below 512.
                Some((i * 64 + b) as u16)
            })
        })
    }
}
