// SPDX-License-Identifier: GPL-2.0

//! Seeded random and mutated inputs for the address and control-message parsers (the fuzz targets' properties, without nightly).

#[path = "../fuzz/props.rs"]
mod props;

use af_bus_core::uapi::*;

/// xorshift64*: the same seed gives the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The seed, from `AF_BUS_FUZZ_SEED` if set, and how many inputs.
fn seed_and_rounds() -> (u64, usize) {
    let seed = std::env::var("AF_BUS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_af46);
    let rounds = std::env::var("AF_BUS_FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    (seed, rounds)
}

/// A valid address, fixed or compact, unicast or multicast.
fn valid_addr(r: &mut Rng) -> Vec<u8> {
    let mut raw = vec![0u8; SOCKADDR_BUS_SIZE];
    raw[0..2].copy_from_slice(&AF_BUS.to_ne_bytes());
    let multicast = r.below(4) == 0;
    let ncomp = if multicast {
        1 + r.below(8)
    } else {
        r.below(9)
    };
    raw[2..4].copy_from_slice(&(ncomp as u16).to_ne_bytes());
    let abstract_ = r.below(2) == 0;
    let name_len = 1 + r.below(if abstract_ { 57 } else { 58 });
    let start = SBUS_PATH_OFFSET + usize::from(abstract_);
    for b in &mut raw[start..start + name_len] {
        *b = b'a' + r.below(26) as u8;
    }
    if multicast {
        raw[SBUS_ADDR_OFFSET - 1] = BUS_MULTICAST_MARK;
    }
    for b in &mut raw[SBUS_ADDR_OFFSET..SBUS_ADDR_OFFSET + ncomp * 8] {
        *b = if r.below(2) == 0 { 0 } else { r.next() as u8 };
    }
    match af_bus_core::addr::BusAddr::parse(&raw) {
        Ok(a) if r.below(2) == 0 => props::compact(&a),
        _ => raw,
    }
}

/// Flips, overwrites, truncates or extends `v` a few times.
fn mutate(r: &mut Rng, v: &mut Vec<u8>) {
    for _ in 0..r.below(4) {
        match r.below(6) {
            0 if !v.is_empty() => {
                let i = r.below(v.len());
                v[i] ^= 1 << r.below(8);
            }
            1 if !v.is_empty() => {
                let i = r.below(v.len());
                v[i] = [0, b'*', b':', 0xff][r.below(4)];
            }
            2 => v.truncate(r.below(v.len() + 1)),
            3 => v.push(r.next() as u8),
            4 if v.len() >= 4 => v[2] = r.below(12) as u8,
            _ => {}
        }
    }
}

/// A control buffer of a few messages, mostly well formed.
fn valid_cmsgs(r: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..r.below(20) {
        let mut data = if r.below(8) == 0 {
            (0..r.below(40)).map(|_| r.next() as u8).collect()
        } else {
            valid_addr(r)
        };
        if r.below(10) == 0 {
            mutate(r, &mut data);
        }
        let level = match r.below(10) {
            0 => 1, // SOL_SOCKET
            1 => r.next() as i32,
            _ => SOL_BUS,
        };
        let kind = r.below(12) as i32;
        match (kind, r.below(3)) {
            // The shapes of the policy messages, now and then.
            (SCM_POLICY_CLASSES, 0) => data = r.next().to_ne_bytes().to_vec(),
            (SCM_EXPECT_REPLY, 0) => data.clear(),
            (SCM_ADDR_ACCESS, 0) => {
                let mut d = r.next().to_ne_bytes().to_vec();
                d.extend_from_slice(&r.next().to_ne_bytes());
                d.extend(data);
                data = d;
            }
            _ => {}
        }
        let len = 16 + data.len();
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&level.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&data);
        out.resize((out.len() + 7) & !7, 0);
    }
    out
}

#[test]
fn random_and_mutated_addresses() {
    let (seed, rounds) = seed_and_rounds();
    let mut r = Rng(seed | 1);
    for _ in 0..rounds {
        let mut v = match r.below(4) {
            0 => (0..r.below(140)).map(|_| r.next() as u8).collect(),
            _ => valid_addr(&mut r),
        };
        props::check_addr(&v);
        mutate(&mut r, &mut v);
        props::check_addr(&v);
    }
}

#[test]
fn random_and_mutated_control_messages() {
    let (seed, rounds) = seed_and_rounds();
    let mut r = Rng(seed.rotate_left(17) | 1);
    for _ in 0..rounds / 4 {
        let mut v = match r.below(6) {
            0 => (0..r.below(600)).map(|_| r.next() as u8).collect(),
            _ => valid_cmsgs(&mut r),
        };
        props::check_cmsgs(&v);
        if !v.is_empty() && r.below(2) == 0 {
            // A length field made to lie.
            let at = 8 * r.below(v.len().div_ceil(8));
            if at + 8 <= v.len() {
                let lie = [0usize, 15, 16, 17, 1 << 20, usize::MAX][r.below(6)];
                v[at..at + 8].copy_from_slice(&lie.to_ne_bytes());
            }
        }
        mutate(&mut r, &mut v);
        props::check_cmsgs(&v);
    }
}
