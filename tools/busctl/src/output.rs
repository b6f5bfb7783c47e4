// SPDX-License-Identifier: GPL-2.0

//! What afbusctl prints: a line of text, or with `--json` one JSON value per line.

use serde_json::{json, Value};

use crate::addr::Addr;
use crate::client::Incoming;
use crate::error::{Error, PROG};
use crate::sys::{
    SCM_ADDR_ACCESS, SCM_DST_ADDR, SCM_MOVE_ADDR, SCM_MULTICAST_MATCH, SCM_MULTICAST_SEND,
    SCM_MULTICAST_UNMATCH, SCM_OWNED_ADDR, SCM_REVOKE_ADDR,
};

/// Where results go: standard output, as text or as JSON.
#[derive(Clone, Copy, Debug)]
pub struct Printer {
    /// `--json`.
    pub json: bool,
}

impl Printer {
    /// Prints one result: `text()`, or with `--json` `value()` on one line.
    pub fn print(&self, text: impl FnOnce() -> String, value: impl FnOnce() -> Value) {
        if self.json {
            println!("{}", value());
        } else {
            println!("{}", text());
        }
    }

    /// Prints a failure on standard error: `afbusctl: WHAT`, or a JSON
    /// object with the same text, its kind, errno and exit status.
    pub fn error(&self, e: &Error) {
        if self.json {
            let v = json!({
                "error": e.to_string(),
                "kind": e.kind(),
                "errno": e.errno_name(),
                "exit_status": e.exit_code(),
            });
            eprintln!("{v}");
        } else {
            eprintln!("{PROG}: {e}");
        }
    }
}

/// An address: a name, `{"multicast": [bits]}`, or `null` for the kernel.
pub fn addr(a: &Addr) -> Value {
    match a {
        Addr::Name(n) => json!(n),
        Addr::Multicast(b) => json!({ "multicast": b.bits() }),
        Addr::Kernel => Value::Null,
    }
}

/// What a `SOL_BUS` control message did, as text and as a JSON word.
pub fn grant_words(kind: libc::c_int) -> (&'static str, &'static str) {
    match kind {
        SCM_OWNED_ADDR => ("granted", "owned"),
        SCM_REVOKE_ADDR => ("revoked", "revoked"),
        SCM_MOVE_ADDR => ("granted (moved here)", "moved"),
        SCM_MULTICAST_MATCH => ("may hear", "match"),
        SCM_MULTICAST_UNMATCH => ("no longer hears", "unmatch"),
        SCM_MULTICAST_SEND => ("may send", "send"),
        SCM_ADDR_ACCESS => ("access masks set on", "access"),
        _ => ("control", "control"),
    }
}

/// A received message, with what came with it.
pub fn message(event: &str, inc: &Incoming) -> Value {
    let grants: Vec<_> = inc.grants();
    let dst = grants
        .iter()
        .find(|(t, _)| *t == SCM_DST_ADDR)
        .map_or(Value::Null, |(_, a)| addr(a));
    let grants: Vec<Value> = grants
        .iter()
        .filter(|(t, _)| *t != SCM_DST_ADDR)
        .map(|(t, a)| json!({ "grant": grant_words(*t).1, "addr": addr(a) }))
        .collect();
    let mut v = json!({
        "event": event,
        "src": addr(&inc.src),
        "dst": dst,
        "grants": grants,
        "truncated": inc.raw.truncated,
    });
    let fields = match &inc.msg {
        Some(m) => json!({
            "kind": m.kind.name(),
            "serial": m.serial,
            "reply_serial": m.reply_serial,
            "flags": m.flags,
            "pairs": m.pairs.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "body": m.body_text(),
        }),
        None => json!({ "kind": Value::Null, "bytes": inc.raw.payload.len() }),
    };
    if let (Some(v), Value::Object(f)) = (v.as_object_mut(), fields) {
        v.extend(f);
    }
    v
}

/// A table cell as JSON: a number if it is one, `null` for `-`.
pub fn cell(s: &str) -> Value {
    if s == "-" {
        Value::Null
    } else if let Ok(n) = s.parse::<u64>() {
        json!(n)
    } else {
        json!(s)
    }
}

/// Rows of cells, aligned in columns two spaces apart.
pub fn table(rows: &[Vec<&str>]) -> String {
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..ncols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let lines: Vec<String> = rows
        .iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(&[
            vec!["Inode", "Role"],
            vec!["36", "master"],
            vec!["1234567", "x"],
        ]);
        assert_eq!(t, "Inode    Role\n36       master\n1234567  x");
        assert_eq!(cell("-"), Value::Null);
        assert_eq!(cell("42"), json!(42));
        assert_eq!(cell("@demo"), json!("@demo"));
    }

    #[test]
    fn addresses() {
        assert_eq!(addr(&Addr::Name("1.2".into())), json!("1.2"));
        assert_eq!(addr(&Addr::Kernel), Value::Null);
        let b = crate::bloom::Bloom::of_pairs(&["k=v".parse().unwrap()]);
        assert_eq!(
            addr(&Addr::Multicast(b.clone())),
            json!({ "multicast": b.bits() })
        );
    }
}
