// SPDX-License-Identifier: GPL-2.0

//! The classic BPF filter a listener attaches, dropping bloom false positives.
//!
//! Attached with `SO_ATTACH_FILTER`, it makes the kernel drop bloom false
//! positives before they wake the listener.  It passes every message that
//! is not an afbusctl signal (replies from the master, calls), and passes
//! a signal only if, for each pair the listener matched on, one of the
//! signal's header hashes equals that pair's `hash32`.  The kernel runs it on each receiver's copy, with the
//! payload at offset 0 (AF_BUS's rule), before queueing.

use crate::bloom::Pair;
use crate::wire::{Kind, MAX_PAIRS, OFF_HASHES, OFF_KIND, OFF_NPAIRS};

const LD_W_ABS: u16 = 0x20;
const LD_B_ABS: u16 = 0x30;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const RET_K: u16 = 0x06;
const ACCEPT: u32 = 0xffff_ffff;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter for a listener that matched on `pairs`.
pub fn for_pairs(pairs: &[Pair]) -> Vec<libc::sock_filter> {
    let mut p = vec![
        insn(LD_B_ABS, 0, 0, OFF_KIND),
        insn(JEQ_K, 1, 0, Kind::Signal as u32),
        insn(RET_K, 0, 0, ACCEPT),
    ];
    // One block per wanted pair: scan the header's hashes; fall through
    // to the next block when found, return 0 (drop) when not.
    for pair in pairs {
        let h = pair.hash32();
        for j in 0..MAX_PAIRS as u32 {
            let jj = 4 * j as u8;
            p.push(insn(LD_B_ABS, 0, 0, OFF_NPAIRS));
            p.push(insn(JGT_K, 0, 30 - jj, j));
            p.push(insn(LD_W_ABS, 0, 0, OFF_HASHES + 4 * j));
            p.push(insn(JEQ_K, 29 - jj, 0, h));
        }
        p.push(insn(RET_K, 0, 0, 0));
    }
    p.push(insn(RET_K, 0, 0, ACCEPT));
    p
}

/// Runs `prog` on `pkt` as the kernel's classic BPF interpreter does for
/// the instructions `for_pairs` emits (a load past the end returns 0).
#[cfg(test)]
pub fn run(prog: &[libc::sock_filter], pkt: &[u8]) -> u32 {
    let mut a: u32 = 0;
    let mut pc = 0usize;
    loop {
        let i = &prog[pc];
        let k = i.k as usize;
        match i.code {
            LD_B_ABS => match pkt.get(k) {
                Some(b) => a = u32::from(*b),
                None => return 0,
            },
            LD_W_ABS => match pkt.get(k..k + 4) {
                Some(w) => a = u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
                None => return 0,
            },
            JEQ_K | JGT_K => {
                let taken = if i.code == JEQ_K { a == i.k } else { a > i.k };
                pc += if taken { i.jt as usize } else { i.jf as usize };
            }
            RET_K => return i.k,
            _ => panic!("opcode {:#x} not emitted", i.code),
        }
        pc += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Message;

    fn p(s: &str) -> Pair {
        s.parse().unwrap()
    }

    fn signal(pairs: &[&str]) -> Vec<u8> {
        Message::new(Kind::Signal, 1, pairs.iter().map(|s| p(s)).collect(), b"x").encode()
    }

    #[test]
    fn passes_what_matches() {
        let f = for_pairs(&[p("member=Changed")]);
        assert!(f.len() <= 4096);
        assert_eq!(run(&f, &signal(&["member=Changed"])), ACCEPT);
        assert_eq!(run(&f, &signal(&["a=1", "b=2", "member=Changed"])), ACCEPT);
        assert_eq!(run(&f, &signal(&["member=Other"])), 0);
        assert_eq!(run(&f, &signal(&[])), 0);
        let eight: Vec<String> = (0..7).map(|i| format!("k{i}=v")).collect();
        let mut all: Vec<&str> = eight.iter().map(|s| s.as_str()).collect();
        all.push("member=Changed");
        assert_eq!(run(&f, &signal(&all)), ACCEPT);
    }

    #[test]
    fn needs_every_pair() {
        let f = for_pairs(&[p("member=Changed"), p("path=/x")]);
        assert_eq!(run(&f, &signal(&["path=/x", "member=Changed"])), ACCEPT);
        assert_eq!(run(&f, &signal(&["member=Changed"])), 0);
        assert_eq!(run(&f, &signal(&["path=/x"])), 0);
    }

    #[test]
    fn other_messages_pass() {
        let f = for_pairs(&[p("member=Changed")]);
        let reply = Message::new(Kind::Reply, 1, vec![], b"ok").encode();
        assert_eq!(run(&f, &reply), ACCEPT);
        // Too short to hold a kind: dropped, as the kernel would.
        assert_eq!(run(&f, b"BUS"), 0);
    }

    #[test]
    fn monitor_filter_passes_all_signals() {
        let f = for_pairs(&[]);
        assert_eq!(run(&f, &signal(&["anything=at all"])), ACCEPT);
    }

    #[test]
    fn drops_the_demo_collision() {
        let f = for_pairs(&[p(crate::DEMO_COLLIDING_MATCH)]);
        assert_eq!(run(&f, &signal(crate::DEMO_SIGNAL)), 0);
        let f = for_pairs(&[p("member=Changed")]);
        assert_eq!(run(&f, &signal(crate::DEMO_SIGNAL)), ACCEPT);
    }
}
