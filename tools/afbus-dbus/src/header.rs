// SPDX-License-Identifier: GPL-2.0

//! A D-Bus message's header fields read from its bytes, and the sender
//! field replaced by the one the kernel vouches for.
//!
//! A receiver on AF_BUS never trusts the `SENDER` field a peer wrote: it
//! drops it and writes the name derived from the datagram's source address
//! in its place, before zbus parses the message.

/// The primary header and the length of the fields array.
const FIXED: usize = 16;
/// The `SENDER` header field's code.
const FIELD_SENDER: u8 = 7;

/// Why a datagram is not a D-Bus message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed D-Bus message: {}", self.0)
    }
}

fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

fn read_u32(big: bool, b: &[u8]) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if big {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

fn write_u32(big: bool, v: u32) -> [u8; 4] {
    if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

/// The total length the primary header of `msg` announces.
pub fn total_len(msg: &[u8]) -> Result<usize, Malformed> {
    if msg.len() < FIXED {
        return Err(Malformed("shorter than the 16-byte fixed header"));
    }
    let big = match msg[0] {
        b'l' => false,
        b'B' => true,
        _ => return Err(Malformed("the endianness byte is neither 'l' nor 'B'")),
    };
    let body = read_u32(big, &msg[4..8]) as usize;
    let fields = read_u32(big, &msg[12..16]) as usize;
    Ok(pad8(FIXED + fields) + body)
}

/// One header field: its code and where it lies (start to end, unpadded).
struct Field {
    code: u8,
    start: usize,
    end: usize,
}

fn fields(msg: &[u8]) -> Result<(bool, usize, Vec<Field>), Malformed> {
    let total = total_len(msg)?;
    if total != msg.len() {
        return Err(Malformed("the length in the header is not the datagram's"));
    }
    let big = msg[0] == b'B';
    let end = FIXED + read_u32(big, &msg[12..16]) as usize;
    let mut out = Vec::new();
    let mut o = FIXED;
    while o < end {
        let start = o;
        if o + 3 > end {
            return Err(Malformed("a header field is cut short"));
        }
        let code = msg[o];
        let siglen = msg[o + 1] as usize;
        if siglen != 1 || o + 4 > end || msg[o + 3] != 0 {
            return Err(Malformed(
                "a header field's signature is not one basic type",
            ));
        }
        let sig = msg[o + 2];
        o += 4;
        match sig {
            b's' | b'o' => {
                o = pad4(o);
                if o + 4 > end {
                    return Err(Malformed("a string header field is cut short"));
                }
                let n = read_u32(big, &msg[o..o + 4]) as usize;
                o += 4 + n + 1;
            }
            b'g' => {
                if o + 1 > end {
                    return Err(Malformed("a signature header field is cut short"));
                }
                o += 1 + msg[o] as usize + 1;
            }
            b'u' => o = pad4(o) + 4,
            _ => return Err(Malformed("a header field of an unknown type")),
        }
        if o > end {
            return Err(Malformed("a header field runs past the fields array"));
        }
        out.push(Field {
            code,
            start,
            end: o,
        });
        o = pad8(o).min(end);
    }
    Ok((big, end, out))
}

/// `msg` with its `SENDER` field (if any) replaced by `sender`.
pub fn with_sender(msg: &[u8], sender: &str) -> Result<Vec<u8>, Malformed> {
    let (big, end, fields) = fields(msg)?;
    let body_start = pad8(end);
    let mut out = Vec::with_capacity(msg.len() + sender.len() + 16);
    out.extend_from_slice(&msg[..FIXED]);
    // The new field first: code, signature "s", the string.
    out.extend_from_slice(&[FIELD_SENDER, 1, b's', 0]);
    out.extend_from_slice(&write_u32(big, sender.len() as u32));
    out.extend_from_slice(sender.as_bytes());
    out.push(0);
    for f in fields.iter().filter(|f| f.code != FIELD_SENDER) {
        // Every field starts on an 8-byte boundary; what is kept keeps its
        // own alignment, as the shifts are multiples of 8.
        out.resize(pad8(out.len()), 0);
        out.extend_from_slice(&msg[f.start..f.end]);
    }
    let fields_len = out.len() - FIXED;
    out[12..16].copy_from_slice(&write_u32(big, fields_len as u32));
    out.resize(pad8(out.len()), 0);
    out.extend_from_slice(&msg[body_start..]);
    Ok(out)
}

/// The first body argument of `msg` read as a string (the caller knows the
/// body's signature starts with `s` or `o`).
pub fn first_string(msg: &[u8]) -> Option<String> {
    let big = msg.first()? == &b'B';
    if msg.len() < FIXED {
        return None;
    }
    let body = pad8(FIXED + read_u32(big, &msg[12..16]) as usize);
    let n = read_u32(big, msg.get(body..body + 4)?) as usize;
    let s = msg.get(body + 4..body + 4 + n)?;
    String::from_utf8(s.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::message::Message;

    fn call() -> Message {
        Message::method_call("/org/example/Echo", "Ping")
            .sender(":1.99")
            .destination("org.example.Echo")
            .interface("org.example.Echo")
            .build(&("hello", 7u32))
            .unwrap()
    }

    fn parse(bytes: Vec<u8>) -> Message {
        let ctx = zbus::wire::serialized::Context::new(
            if bytes[0] == b'B' {
                zbus::wire::Endian::Big
            } else {
                zbus::wire::Endian::Little
            },
            0,
        );
        // SAFETY: the test's own bytes, checked by the parse below.
        unsafe { Message::from_bytes(zbus::wire::serialized::Data::new(bytes, ctx)) }.unwrap()
    }

    #[test]
    fn the_sender_is_replaced() {
        let m = call();
        let out = with_sender(m.data().bytes(), ":1.4").unwrap();
        let m2 = parse(out);
        let h = m2.header();
        assert_eq!(h.sender().unwrap().as_str(), ":1.4");
        assert_eq!(h.destination().unwrap().as_str(), "org.example.Echo");
        assert_eq!(h.member().unwrap().as_str(), "Ping");
        assert_eq!(h.path().unwrap().as_str(), "/org/example/Echo");
        let (s, n): (String, u32) = m2.body().deserialize().unwrap();
        assert_eq!((s.as_str(), n), ("hello", 7));
    }

    #[test]
    fn a_message_without_sender_gets_one() {
        let m = Message::signal("/a", "org.example.I", "Changed")
            .build(&"x")
            .unwrap();
        let out = with_sender(m.data().bytes(), "org.freedesktop.DBus").unwrap();
        let m2 = parse(out);
        assert_eq!(
            m2.header().sender().unwrap().as_str(),
            "org.freedesktop.DBus"
        );
        assert_eq!(m2.body().deserialize::<String>().unwrap(), "x");
    }

    #[test]
    fn malformed_input_is_refused() {
        assert_eq!(
            with_sender(b"lx", ":1.1"),
            Err(Malformed("shorter than the 16-byte fixed header"))
        );
        let mut b = call().data().bytes().to_vec();
        b[0] = b'x';
        assert_eq!(
            with_sender(&b, ":1.1"),
            Err(Malformed("the endianness byte is neither 'l' nor 'B'"))
        );
        let mut b = call().data().bytes().to_vec();
        b.push(0);
        assert_eq!(
            with_sender(&b, ":1.1"),
            Err(Malformed("the length in the header is not the datagram's"))
        );
        let mut b = call().data().bytes().to_vec();
        b[17] = 2;
        assert!(with_sender(&b, ":1.1").is_err());
    }
}
