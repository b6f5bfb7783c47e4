// SPDX-License-Identifier: GPL-2.0

//! afbusctl's message format: a header a BPF filter can read, pairs, body.
//!
//! A fixed header, the message's `KEY=VALUE` pairs, then the body.
//!
//! ```text
//!  0  u32 magic         0x4255534d ("BUSM"), big-endian like every field
//!  4  u8  kind          1 call, 2 reply, 3 error, 4 signal
//!  5  u8  npairs        at most 8
//!  6  u16 flags         1: no reply expected
//!  8  u32 serial        chosen by the sender, never 0
//! 12  u32 reply_serial  the call a reply or error answers, else 0
//! 16  u32 hash[npairs]  Pair::hash32 of each pair
//!     npairs NUL-terminated "KEY=VALUE" strings
//!     the body: everything up to the end of the datagram
//! ```

use crate::bloom::Pair;

pub const MAGIC: u32 = 0x4255_534d;
pub const HEADER_LEN: usize = 16;
pub const MAX_PAIRS: usize = 8;
pub const OFF_KIND: u32 = 4;
pub const OFF_NPAIRS: u32 = 5;
pub const OFF_HASHES: u32 = 16;
pub const FLAG_NO_REPLY: u16 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Call = 1,
    Reply = 2,
    Error = 3,
    Signal = 4,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        match v {
            1 => Some(Kind::Call),
            2 => Some(Kind::Reply),
            3 => Some(Kind::Error),
            4 => Some(Kind::Signal),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Call => "call",
            Kind::Reply => "reply",
            Kind::Error => "error",
            Kind::Signal => "signal",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub kind: Kind,
    pub flags: u16,
    pub serial: u32,
    pub reply_serial: u32,
    pub pairs: Vec<Pair>,
    pub body: Vec<u8>,
}

impl Message {
    pub fn new(kind: Kind, serial: u32, pairs: Vec<Pair>, body: &[u8]) -> Message {
        Message {
            kind,
            flags: 0,
            serial,
            reply_serial: 0,
            pairs,
            body: body.to_vec(),
        }
    }

    /// A reply (or error) to `call`.
    pub fn reply_to(call: &Message, kind: Kind, serial: u32, body: &[u8]) -> Message {
        Message {
            kind,
            flags: 0,
            serial,
            reply_serial: call.serial,
            pairs: Vec::new(),
            body: body.to_vec(),
        }
    }

    /// The value of the first pair with `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn encode(&self) -> Vec<u8> {
        assert!(self.pairs.len() <= MAX_PAIRS);
        let mut out = Vec::with_capacity(HEADER_LEN + self.body.len() + 64);
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.push(self.kind as u8);
        out.push(self.pairs.len() as u8);
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend_from_slice(&self.serial.to_be_bytes());
        out.extend_from_slice(&self.reply_serial.to_be_bytes());
        for p in &self.pairs {
            out.extend_from_slice(&p.hash32().to_be_bytes());
        }
        for p in &self.pairs {
            out.extend_from_slice(p.to_string().as_bytes());
            out.push(0);
        }
        out.extend_from_slice(&self.body);
        out
    }

    pub fn decode(data: &[u8]) -> Result<Message, String> {
        let be32 = |o: usize| u32::from_be_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
        if data.len() < HEADER_LEN || be32(0) != MAGIC {
            return Err("not an afbusctl message (no BUSM header)".into());
        }
        let kind = Kind::from_u8(data[4]).ok_or("unknown message kind")?;
        let npairs = data[5] as usize;
        if npairs > MAX_PAIRS || data.len() < HEADER_LEN + 4 * npairs {
            return Err("truncated message header".into());
        }
        let mut pos = HEADER_LEN + 4 * npairs;
        let mut pairs = Vec::with_capacity(npairs);
        for i in 0..npairs {
            let end = data[pos..]
                .iter()
                .position(|b| *b == 0)
                .ok_or("unterminated pair")?;
            let s = std::str::from_utf8(&data[pos..pos + end]).map_err(|_| "pair is not UTF-8")?;
            let p: Pair = s.parse()?;
            if p.hash32() != be32(HEADER_LEN + 4 * i) {
                return Err(format!("pair {p} does not match its hash"));
            }
            pairs.push(p);
            pos += end + 1;
        }
        Ok(Message {
            kind,
            flags: u16::from_be_bytes([data[6], data[7]]),
            serial: be32(8),
            reply_serial: be32(12),
            pairs,
            body: data[pos..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs = vec!["member=Hello".parse().unwrap(), "a=b=c".parse().unwrap()];
        let m = Message::new(Kind::Call, 7, pairs, b"body\nlines");
        let bytes = m.encode();
        assert_eq!(&bytes[0..4], b"BUSM");
        assert_eq!(Message::decode(&bytes).unwrap(), m);
        let r = Message::reply_to(&m, Kind::Reply, 9, b"ok");
        assert_eq!(Message::decode(&r.encode()).unwrap().reply_serial, 7);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(Message::decode(b"").is_err());
        assert!(Message::decode(b"hello, this is not it").is_err());
        let mut b = Message::new(Kind::Signal, 1, vec!["k=v".parse().unwrap()], b"").encode();
        b[5] = 9;
        assert!(Message::decode(&b).is_err());
        let mut b = Message::new(Kind::Signal, 1, vec!["k=v".parse().unwrap()], b"").encode();
        b[16] ^= 1;
        assert!(Message::decode(&b).is_err());
        b.truncate(18);
        assert!(Message::decode(&b).is_err());
    }
}
