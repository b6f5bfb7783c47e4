// SPDX-License-Identifier: GPL-2.0

//! The reference master's policy file (TOML).
//!
//! It says who may join, own which names, match and send which signals.
//!
//! ```toml
//! [bus]
//! require_send_grants = true   # BUS_POLICY_MCAST_SEND_GRANTED
//!
//! [join]
//! uids = "*"                   # or a list: [0, 1000]
//!
//! [monitor]
//! uids = [0]                   # who may install the all-zero match
//!
//! [[own]]
//! name = "org.example.*"       # exact, or a prefix ending in ".*"
//! uids = [0]
//!
//! [[match]]
//! pairs = ["member=*"]         # each requested pair must fit a pattern
//! uids = "*"
//!
//! [[send]]
//! pairs = ["interface=org.example.*", "member=*", "path=*", "sender=*"]
//! uids = [0]
//! ```
//!
//! Nothing is allowed unless a rule allows it; a missing `[join]` lets
//! nobody join.  Unknown keys are errors.

use serde::Deserialize;

use crate::addr::check_well_known;
use crate::bloom::Pair;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uids {
    Any,
    List(Vec<u32>),
}

impl Uids {
    pub fn allows(&self, uid: u32) -> bool {
        match self {
            Uids::Any => true,
            Uids::List(l) => l.contains(&uid),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum UidsRepr {
    Any(String),
    List(Vec<u32>),
}

impl<'de> Deserialize<'de> for Uids {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Uids, D::Error> {
        match UidsRepr::deserialize(d)? {
            UidsRepr::Any(s) if s == "*" => Ok(Uids::Any),
            UidsRepr::Any(s) => Err(serde::de::Error::custom(format!(
                "uids is \"*\" or a list of numbers, not \"{s}\""
            ))),
            UidsRepr::List(l) => Ok(Uids::List(l)),
        }
    }
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct BusSection {
    #[serde(default)]
    require_send_grants: bool,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct UidsSection {
    uids: Uids,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct OwnRule {
    pub name: String,
    pub uids: Uids,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct PairRule {
    pub pairs: Vec<String>,
    pub uids: Uids,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    bus: BusSection,
    join: Option<UidsSection>,
    monitor: Option<UidsSection>,
    #[serde(default)]
    own: Vec<OwnRule>,
    #[serde(default, rename = "match")]
    matches: Vec<PairRule>,
    #[serde(default)]
    send: Vec<PairRule>,
}

/// A checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub require_send_grants: bool,
    join: Option<Uids>,
    monitor: Option<Uids>,
    own: Vec<OwnRule>,
    matches: Vec<PairRule>,
    send: Vec<PairRule>,
}

/// `*` matches anything; `prefix*` matches what starts with prefix.
fn glob(pattern: &str, s: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => s.starts_with(prefix),
        None => pattern == s,
    }
}

fn check_pattern(what: &str, pat: &str) -> Result<(), String> {
    if pat.find('*').is_some_and(|i| i != pat.len() - 1) {
        return Err(format!("{what}: \"{pat}\": '*' may only end a pattern"));
    }
    Ok(())
}

impl Policy {
    /// Parses and checks the text of a policy file.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let f: File = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let msg = e.message().trim().replace('\n', " ");
            match line {
                Some(l) => format!("line {l}: {msg}"),
                None => msg,
            }
        })?;
        for r in &f.own {
            check_pattern("[[own]] name", &r.name)?;
            match r.name.strip_suffix('*') {
                None => check_well_known(&r.name).map_err(|e| format!("[[own]] name: {e}"))?,
                Some(prefix) => {
                    let ok = prefix
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                        && !prefix.starts_with(|c: char| c.is_ascii_digit() || c == '.');
                    if !ok {
                        return Err(format!(
                            "[[own]] name: \"{}\" is not a well-known name prefix",
                            r.name
                        ));
                    }
                }
            }
        }
        for (what, rules) in [("[[match]]", &f.matches), ("[[send]]", &f.send)] {
            for r in rules {
                if r.pairs.is_empty() {
                    return Err(format!("{what}: pairs is empty; it would allow nothing"));
                }
                for p in &r.pairs {
                    check_pattern(&format!("{what} pairs"), p)?;
                    if p != "*" && !p.contains('=') {
                        return Err(format!("{what} pairs: \"{p}\" is not KEY=VALUE (or \"*\")"));
                    }
                }
            }
        }
        Ok(Policy {
            require_send_grants: f.bus.require_send_grants,
            join: f.join.map(|s| s.uids),
            monitor: f.monitor.map(|s| s.uids),
            own: f.own,
            matches: f.matches,
            send: f.send,
        })
    }

    pub fn may_join(&self, uid: u32) -> bool {
        self.join.as_ref().is_some_and(|u| u.allows(uid))
    }

    pub fn may_own(&self, uid: u32, name: &str) -> bool {
        self.own
            .iter()
            .any(|r| r.uids.allows(uid) && glob(&r.name, name))
    }

    fn pairs_allowed(rules: &[PairRule], uid: u32, pairs: &[Pair]) -> bool {
        pairs.iter().all(|p| {
            let s = p.to_string();
            rules
                .iter()
                .any(|r| r.uids.allows(uid) && r.pairs.iter().any(|pat| glob(pat, &s)))
        })
    }

    /// A match on `pairs`; no pairs is a monitor (the zero mask).
    pub fn may_match(&self, uid: u32, pairs: &[Pair]) -> bool {
        if pairs.is_empty() {
            return self.monitor.as_ref().is_some_and(|u| u.allows(uid));
        }
        Self::pairs_allowed(&self.matches, uid, pairs)
    }

    pub fn may_send(&self, uid: u32, pairs: &[Pair]) -> bool {
        !pairs.is_empty() && Self::pairs_allowed(&self.send, uid, pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: &str = include_str!("../demo-policy.toml");

    fn p(s: &str) -> Pair {
        s.parse().unwrap()
    }

    #[test]
    fn demo_policy() {
        let pol = Policy::parse(DEMO).unwrap();
        assert!(pol.may_join(0) && pol.may_join(1000));
        assert!(pol.may_own(0, "org.example.Echo"));
        assert!(!pol.may_own(1000, "org.example.Echo"));
        assert!(!pol.may_own(0, "org.other.Thing"));
        assert!(pol.may_match(1000, &[p("member=Changed")]));
        assert!(!pol.may_match(1000, &[]));
        assert!(pol.may_match(0, &[]));
        assert!(pol.may_send(0, &[p("interface=org.example.Echo"), p("member=Changed")]));
        assert!(!pol.may_send(1000, &[p("member=Changed")]));
        assert!(!pol.may_send(0, &[]));
    }

    #[test]
    fn nothing_by_default() {
        let pol = Policy::parse("").unwrap();
        assert!(!pol.may_join(0));
        assert!(!pol.may_own(0, "org.x.Y"));
        assert!(!pol.may_match(0, &[p("a=b")]));
    }

    #[test]
    fn errors_are_one_line_and_precise() {
        for (text, want) in [
            ("[join]\nuids = \"all\"", "uids is \"*\" or a list"),
            ("[join]\nuid = [0]", "unknown field"),
            (
                "[[own]]\nname = \"1.4\"\nuids = \"*\"",
                "not a well-known name",
            ),
            (
                "[[own]]\nname = \"org.*.x\"\nuids = \"*\"",
                "may only end a pattern",
            ),
            ("[[match]]\npairs = []\nuids = \"*\"", "would allow nothing"),
            (
                "[[send]]\npairs = [\"member\"]\nuids = \"*\"",
                "not KEY=VALUE",
            ),
            ("[join\n", "line 1:"),
            ("[bus]\nrequire_send_grants = 3", "invalid type"),
        ] {
            let e = Policy::parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
