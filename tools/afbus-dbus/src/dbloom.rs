// SPDX-License-Identifier: GPL-2.0

//! The bloom bitmap of a broadcast D-Bus signal, and the mask of a match
//! rule, in busctl's bloom scheme (512 bits, 4 bits per `KEY=VALUE` pair).
//!
//! A signal sets the pairs `interface=I`, `member=M`, `path=P`, one
//! `path-prefix=Q` for `P` and each of its ancestors (`/`, `/a`, `/a/b` of
//! `/a/b/c`), and `arg0=A` when its first argument is a string or object
//! path.  A rule's mask is the union of the pairs of what it names:
//! `interface`, `member`, `path`, `path_namespace` (as `path-prefix`) and
//! `arg0`.  What the mask cannot express (`sender`, `arg1`..., `arg0namespace`,
//! `argNpath`) is checked exactly by the receiver, which also drops the
//! bloom's false positives.

use zbus::message::Message;
use zbus::MatchRule;

use crate::bloom::{Bloom, Pair};

fn pair(key: &str, value: &str) -> Pair {
    Pair {
        key: key.into(),
        value: value.into(),
    }
}

/// `/a/b/c` and its ancestors `/a/b`, `/a` and `/`.
fn path_prefixes(path: &str) -> Vec<String> {
    let mut out = vec![path.to_string()];
    let mut p = path;
    while let Some(i) = p.rfind('/') {
        p = &p[..i];
        out.push(if p.is_empty() { "/".into() } else { p.into() });
        if p.is_empty() {
            break;
        }
    }
    out.dedup();
    out
}

/// The pairs a signal with these fields sets.
pub fn signal_pairs(
    interface: Option<&str>,
    member: Option<&str>,
    path: Option<&str>,
    arg0: Option<&str>,
) -> Vec<Pair> {
    let mut v = Vec::new();
    if let Some(i) = interface {
        v.push(pair("interface", i));
    }
    if let Some(m) = member {
        v.push(pair("member", m));
    }
    if let Some(p) = path {
        v.push(pair("path", p));
        for q in path_prefixes(p) {
            v.push(pair("path-prefix", &q));
        }
    }
    if let Some(a) = arg0 {
        v.push(pair("arg0", a));
    }
    v
}

/// The first argument of `msg` if it is a string or an object path.
pub fn arg0(msg: &Message) -> Option<String> {
    let sig = msg.body().signature().to_string();
    let sig = sig.trim_start_matches('(');
    if !(sig.starts_with('s') || sig.starts_with('o')) {
        return None;
    }
    crate::header::first_string(msg.data().bytes())
}

/// The bitmap a broadcast signal is sent to.
pub fn of_signal(msg: &Message) -> Bloom {
    let h = msg.header();
    let a0 = arg0(msg);
    Bloom::of_pairs(&signal_pairs(
        h.interface().map(|i| i.as_str()),
        h.member().map(|m| m.as_str()),
        h.path().map(|p| p.as_str()),
        a0.as_deref(),
    ))
}

/// The mask the master grants for a match rule.
pub fn of_rule(rule: &MatchRule<'_>) -> Bloom {
    let mut v = Vec::new();
    if let Some(i) = rule.interface() {
        v.push(pair("interface", i.as_str()));
    }
    if let Some(m) = rule.member() {
        v.push(pair("member", m.as_str()));
    }
    match rule.path_spec() {
        Some(zbus::match_rule::PathSpec::Path(p)) => v.push(pair("path", p.as_str())),
        Some(zbus::match_rule::PathSpec::PathNamespace(p)) => {
            v.push(pair("path-prefix", p.as_str()))
        }
        None => {}
    }
    if let Some((_, a)) = rule.args().iter().find(|(i, _)| *i == 0) {
        v.push(pair("arg0", a.as_str()));
    }
    Bloom::of_pairs(&v)
}

/// Whether `rule` matches `msg` exactly (the bloom only says "maybe").
///
/// zbus's `MatchRule::matches` does most of it; a `path_namespace` is
/// checked here by path elements (`/a/b` does not contain `/a/bc`), and a
/// `sender` that is a well-known name is left to zbus's proxies, which
/// follow the name's owner.
pub fn rule_matches(rule: &MatchRule<'_>, msg: &Message) -> bool {
    if let Some(zbus::match_rule::PathSpec::PathNamespace(ns)) = rule.path_spec() {
        let h = msg.header();
        let Some(p) = h.path() else { return false };
        let (p, ns) = (p.as_str(), ns.as_str());
        let inside = ns == "/"
            || p == ns
            || (p.starts_with(ns) && p.as_bytes().get(ns.len()) == Some(&b'/'));
        if !inside {
            return false;
        }
    }
    rule.matches(msg).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(path: &str, member: &str, a0: &str) -> Message {
        Message::signal(path, "org.example.Echo", member)
            .build(&(a0, 5u32))
            .unwrap()
    }

    #[test]
    fn prefixes() {
        assert_eq!(path_prefixes("/a/b/c"), ["/a/b/c", "/a/b", "/a", "/"]);
        assert_eq!(path_prefixes("/"), ["/"]);
    }

    #[test]
    fn a_matching_rule_is_covered_by_the_signal() {
        let m = sig("/org/example/Echo/x", "Changed", "state");
        assert_eq!(arg0(&m).as_deref(), Some("state"));
        let b = of_signal(&m);
        for r in [
            "type='signal',interface='org.example.Echo',member='Changed'",
            "type='signal',path_namespace='/org/example'",
            "type='signal',path='/org/example/Echo/x',arg0='state'",
            "type='signal'",
        ] {
            let rule = MatchRule::try_from(r).unwrap();
            assert!(b.matches(&of_rule(&rule)), "{r}");
            assert!(rule_matches(&rule, &m), "{r}");
        }
        for r in [
            "type='signal',member='Other'",
            "type='signal',arg0='other'",
            "type='signal',path_namespace='/org/ex'",
        ] {
            let rule = MatchRule::try_from(r).unwrap();
            assert!(!rule_matches(&rule, &m), "{r}");
        }
    }
}
