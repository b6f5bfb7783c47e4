// SPDX-License-Identifier: GPL-2.0

//! Checks that the Rust mirror of the UAPI header matches the C header.

use af_bus_core::uapi::*;
use std::collections::HashMap;

fn header_defines() -> HashMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../include/uapi/linux/bus.h");
    let text = std::fs::read_to_string(path).expect("read bus.h");
    let mut out = HashMap::new();
    for line in text.lines() {
        // Drop a trailing comment.
        let line = line.split("/*").next().unwrap().trim();
        if let Some(rest) = line.strip_prefix("#define") {
            let rest = rest.trim();
            if let Some((name, value)) = rest.split_once(char::is_whitespace) {
                out.insert(name.to_string(), value.trim().to_string());
            }
        } else if let Some((name, value)) = line.split_once('=') {
            // Enumerators: "NAME = value,".
            let value = value.trim().trim_end_matches(',').trim();
            out.insert(name.trim().to_string(), value.to_string());
        }
    }
    out
}

fn value(defs: &HashMap<String, String>, name: &str) -> i64 {
    let v = defs
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing from bus.h"));
    let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(shift) = compact
        .strip_prefix("(1U<<")
        .and_then(|s| s.strip_suffix(')'))
    {
        return 1 << shift.parse::<i64>().unwrap();
    }
    if let Some(c) = compact.strip_prefix('\'') {
        return i64::from(c.as_bytes()[0]);
    }
    if compact.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return value(defs, &compact);
    }
    compact
        .parse()
        .unwrap_or_else(|_| panic!("{name}: cannot read {v}"))
}

#[test]
fn constants_match_the_c_header() {
    let d = header_defines();
    let expect: &[(&str, i64)] = &[
        ("AF_BUS", AF_BUS.into()),
        ("PF_BUS", AF_BUS.into()),
        ("SOL_BUS", SOL_BUS.into()),
        ("BUS_SOCKET", SOL_BUS.into()),
        ("BUS_PATH_MAX", BUS_PATH_MAX as i64),
        ("BUS_ADDR_COMP_MAX", BUS_ADDR_COMP_MAX as i64),
        ("BUS_HANDLE_PREFIX", BUS_HANDLE_PREFIX.into()),
        ("BUS_MULTICAST_MARK", BUS_MULTICAST_MARK.into()),
        ("SCM_OWNED_ADDR", SCM_OWNED_ADDR.into()),
        ("SCM_REVOKE_ADDR", SCM_REVOKE_ADDR.into()),
        ("SCM_MULTICAST_MATCH", SCM_MULTICAST_MATCH.into()),
        ("SCM_MULTICAST_UNMATCH", SCM_MULTICAST_UNMATCH.into()),
        ("SCM_MULTICAST_SEND", SCM_MULTICAST_SEND.into()),
        ("SCM_SRC_ADDR", SCM_SRC_ADDR.into()),
        ("SCM_DST_ADDR", SCM_DST_ADDR.into()),
        ("BUS_POLICY", BUS_POLICY.into()),
        ("BUS_ADDRS", BUS_ADDRS.into()),
        ("BUS_RX_RING", BUS_RX_RING.into()),
        ("BUS_NO_ENOBUFS", BUS_NO_ENOBUFS.into()),
        ("BUS_DROPS", BUS_DROPS.into()),
        (
            "BUS_POLICY_MCAST_SEND_GRANTED",
            BUS_POLICY_MCAST_SEND_GRANTED.into(),
        ),
        ("BUS_NOTIFY_GONE", BUS_NOTIFY_GONE.into()),
        ("BUS_NOTIFY_OVERFLOW", BUS_NOTIFY_OVERFLOW.into()),
        ("BUS_FRAME_ALIGNMENT", BUS_FRAME_ALIGNMENT as i64),
        ("BUS_FRAME_KERNEL", BUS_FRAME_KERNEL.into()),
        ("BUS_FRAME_USER", BUS_FRAME_USER.into()),
        ("BUS_FRAME_F_MULTICAST", BUS_FRAME_F_MULTICAST.into()),
        ("BUS_FRAME_F_DISCARDED", BUS_FRAME_F_DISCARDED.into()),
        ("BUS_FRAME_F_QUEUED", BUS_FRAME_F_QUEUED.into()),
    ];
    for &(name, want) in expect {
        assert_eq!(value(&d, name), want, "{name}");
    }
    assert_eq!(SOCKADDR_BUS_SIZE, 128);
    assert_eq!(SBUS_ADDR_OFFSET, 64);
}
