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

/// Where a match grant is filed (see [`Bitmap::index_key`]): under the
/// pair `k1 <= k2` of its bits, and its third bit `k3 > k2` in the
/// bus's filter of third bits ([`MONITOR_KEY`] for none).  A message
/// that matches the grant has all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexKey {
    /// The pair's first bit.
    pub k1: u16,
    /// The pair's second bit, not below `k1`.
    pub k2: u16,
    /// The third bit, above `k2`, or [`MONITOR_KEY`].
    pub k3: u16,
}

impl IndexKey {
    /// The key of the zero mask, a monitor's: every message looks.
    pub const MONITOR: IndexKey = IndexKey {
        k1: MONITOR_KEY,
        k2: MONITOR_KEY,
        k3: MONITOR_KEY,
    };
}

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

    /// Where a match grant of this mask is filed, given how many grants
    /// already filed hold each bit (`held`): under the pair of the lower
    /// two of its three least held bits (the lower bit first among
    /// equals), with the highest of the three as its third key bit.  A
    /// message can only match it if it has all three, and the rarer the
    /// bits the fewer messages look: D-Bus rules on one interface and
    /// member share those bits, and are filed under their paths' bits.
    /// A one-bit mask is filed under its bit twice, with no third; a
    /// two-bit mask under its bits, with no third; the zero mask (a
    /// monitor) under [`MONITOR_KEY`] three times.
    pub fn index_key(&self, held: impl Fn(u16) -> u32) -> IndexKey {
        let none = (u32::MAX, MONITOR_KEY);
        let mut least = [none; 3];
        let mut n = 0;
        for bit in self.bits() {
            n += 1;
            let c = (held(bit), bit);
            // Bits come lowest first: among equals, the earlier stays.
            if c < least[2] {
                least[2] = c;
                if least[2] < least[1] {
                    least.swap(1, 2);
                    if least[1] < least[0] {
                        least.swap(0, 1);
                    }
                }
            }
        }
        let mut k = [least[0].1, least[1].1, least[2].1];
        match n {
            0 => IndexKey::MONITOR,
            1 => IndexKey {
                k1: k[0],
                k2: k[0],
                k3: MONITOR_KEY,
            },
            2 => IndexKey {
                k1: k[0].min(k[1]),
                k2: k[0].max(k[1]),
                k3: MONITOR_KEY,
            },
            _ => {
                k.sort_unstable();
                IndexKey {
                    k1: k[0],
                    k2: k[1],
                    k3: k[2],
                }
            }
        }
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
