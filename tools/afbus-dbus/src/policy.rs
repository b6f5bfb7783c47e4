// SPDX-License-Identifier: GPL-2.0

//! The D-Bus master's policy file (TOML): who may join the bus, own which
//! well-known names, and talk to and hear from their owners, by uid and by
//! group.
//!
//! ```toml
//! [join]
//! uids = "*"                     # or a list: [0, 1000]
//! groups = [100]                 # optional: these groups may join too
//!
//! [[own]]
//! name = "org.example.*"         # exact, or a prefix ending in ".*"
//! uids = [0]
//! groups = [27]
//!
//! [[send]]                       # only these may send to the owner
//! name = "org.example.Admin"
//! uids = [0]
//!
//! [[receive]]                    # only these may receive from the owner
//!                                # (answers to their calls excepted)
//! name = "org.example.Secret"
//! groups = [27]
//! ```
//!
//! Joining and owning: nothing is allowed unless a rule allows it; a
//! missing `[join]` lets nobody join.  Sending and receiving: a name that
//! no `[[send]]` (`[[receive]]`) rule names is open to everyone; one that
//! some rule names is open to the uids and groups of those rules only,
//! and then through every name and the unique name of its owner.  The
//! kernel enforces them (see [`Policy::classes`]).  Unknown keys are
//! errors, reported with their line.

use serde::Deserialize;

/// A set of uids or gids: `"*"` or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ids {
    Any,
    List(Vec<u32>),
}

impl Ids {
    fn allows(&self, id: u32) -> bool {
        match self {
            Ids::Any => true,
            Ids::List(l) => l.contains(&id),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdsRepr {
    Any(String),
    List(Vec<u32>),
}

impl<'de> Deserialize<'de> for Ids {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Ids, D::Error> {
        match IdsRepr::deserialize(d)? {
            IdsRepr::Any(s) if s == "*" => Ok(Ids::Any),
            IdsRepr::Any(s) => Err(serde::de::Error::custom(format!(
                "an id set is \"*\" or a list of numbers, not \"{s}\""
            ))),
            IdsRepr::List(l) => Ok(Ids::List(l)),
        }
    }
}

/// Who a rule is for: any listed uid or group.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Who {
    uids: Option<Ids>,
    groups: Option<Ids>,
}

impl Who {
    fn allows(&self, uid: u32, groups: &[u32]) -> bool {
        self.uids.as_ref().is_some_and(|u| u.allows(uid))
            || self
                .groups
                .as_ref()
                .is_some_and(|g| groups.iter().any(|x| g.allows(*x)))
    }
}

/// A rule about a well-known name: `[[own]]`, `[[send]]`, `[[receive]]`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct NameRule {
    name: String,
    uids: Option<Ids>,
    groups: Option<Ids>,
}

impl NameRule {
    fn fits(&self, name: &str) -> bool {
        match self.name.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => self.name == name,
        }
    }

    fn allows(&self, uid: u32, groups: &[u32]) -> bool {
        let who = Who {
            uids: self.uids.clone(),
            groups: self.groups.clone(),
        };
        who.allows(uid, groups)
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct File {
    join: Option<Who>,
    #[serde(default)]
    own: Vec<NameRule>,
    #[serde(default)]
    send: Vec<NameRule>,
    #[serde(default)]
    receive: Vec<NameRule>,
}

/// Most `[[send]]` rules, and most `[[receive]]` rules: each has a bit of
/// the 64-bit classes.
pub const MAX_ACCESS_RULES: usize = 32;

/// A checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    join: Option<Who>,
    own: Vec<NameRule>,
    send: Vec<NameRule>,
    receive: Vec<NameRule>,
}

/// The kernel's access masks of a name (`struct bus_addr_access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Masks {
    /// The classes that may send to its owner; 0 for everyone.
    pub talk: u64,
    /// The classes that may receive from its owner; 0 for everyone.
    pub hear: u64,
}

impl Policy {
    /// Parses and checks a policy file's text.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let f: File = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start].matches('\n').count() + 1)
                .unwrap_or(0);
            format!("line {line}: {}", e.message())
        })?;
        for (kind, rules) in [("own", &f.own), ("send", &f.send), ("receive", &f.receive)] {
            for r in rules {
                let pattern = r.name.strip_suffix(".*").unwrap_or(&r.name);
                if pattern.is_empty() || pattern.contains('*') || pattern.starts_with(':') {
                    return Err(format!(
                        "{kind} rule \"{}\": a well-known name, or a prefix ending in \".*\"",
                        r.name
                    ));
                }
            }
            if kind != "own" && rules.len() > MAX_ACCESS_RULES {
                return Err(format!(
                    "{} [[{kind}]] rules: at most {MAX_ACCESS_RULES}",
                    rules.len()
                ));
            }
        }
        Ok(Policy {
            join: f.join,
            own: f.own,
            send: f.send,
            receive: f.receive,
        })
    }

    /// Reads a policy file.
    pub fn load(path: &str) -> Result<Policy, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("policy {path}: {e}"))?;
        Policy::parse(&text).map_err(|e| format!("policy {path}: {e}"))
    }

    /// May a process of `uid` in `groups` join?
    pub fn may_join(&self, uid: u32, groups: &[u32]) -> bool {
        self.join.as_ref().is_some_and(|w| w.allows(uid, groups))
    }

    /// May it own `name`?
    pub fn may_own(&self, uid: u32, groups: &[u32], name: &str) -> bool {
        self.own
            .iter()
            .any(|r| r.fits(name) && r.allows(uid, groups))
    }

    /// The classes (`SCM_POLICY_CLASSES`) of a process of `uid` in
    /// `groups`: bit `i` for the `i`th `[[send]]` rule that lists it, bit
    /// `32 + j` for the `j`th `[[receive]]` rule.
    pub fn classes(&self, uid: u32, groups: &[u32]) -> u64 {
        let bits = |rules: &[NameRule], base: u32| {
            rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.allows(uid, groups))
                .fold(0u64, |acc, (i, _)| acc | 1 << (base + i as u32))
        };
        bits(&self.send, 0) | bits(&self.receive, 32)
    }

    /// The access masks (`SCM_ADDR_ACCESS`) of the well-known name `name`:
    /// the bits of the rules that name it.
    pub fn masks(&self, name: &str) -> Masks {
        let bits = |rules: &[NameRule], base: u32| {
            rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.fits(name))
                .fold(0u64, |acc, (i, _)| acc | 1 << (base + i as u32))
        };
        Masks {
            talk: bits(&self.send, 0),
            hear: bits(&self.receive, 32),
        }
    }

    /// May a process of `uid` in `groups` send to the owner of `names`
    /// (and receive from it, with `receive`)?  What the kernel's masks
    /// decide, for the tests and the tools.
    pub fn may_talk(&self, uid: u32, groups: &[u32], names: &[&str], receive: bool) -> bool {
        let c = self.classes(uid, groups);
        names.iter().all(|n| {
            let m = self.masks(n);
            let mask = if receive { m.hear } else { m.talk };
            mask == 0 || mask & c != 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = r#"
[join]
uids = "*"

[[own]]
name = "org.example.*"
uids = [0]
groups = [27]

[[own]]
name = "org.other.Exact"
uids = "*"
"#;

    #[test]
    fn rules() {
        let p = Policy::parse(P).unwrap();
        assert!(p.may_join(1000, &[]));
        assert!(p.may_own(0, &[0], "org.example.Echo"));
        assert!(p.may_own(1000, &[100, 27], "org.example.Echo"));
        assert!(!p.may_own(1000, &[100], "org.example.Echo"));
        assert!(!p.may_own(0, &[0], "org.examples.Echo"));
        assert!(p.may_own(1000, &[], "org.other.Exact"));
        assert!(!p.may_own(1000, &[], "org.other.Exact2"));
        let none = Policy::parse("").unwrap();
        assert!(!none.may_join(0, &[0]));
    }

    #[test]
    fn send_and_receive_rules_become_classes_and_masks() {
        let p = Policy::parse(
            r#"
[join]
uids = "*"

[[send]]
name = "org.example.Admin"
uids = [0]

[[send]]
name = "org.example.*"
groups = [27]

[[receive]]
name = "org.example.Secret"
uids = [0, 1000]
"#,
        )
        .unwrap();
        assert_eq!(p.classes(0, &[0]), 1 | 1 << 32);
        assert_eq!(p.classes(1000, &[27]), 2 | 1 << 32);
        assert_eq!(p.classes(65534, &[65534]), 0);
        assert_eq!(p.masks("org.example.Admin"), Masks { talk: 3, hear: 0 });
        assert_eq!(p.masks("org.example.Echo"), Masks { talk: 2, hear: 0 });
        assert_eq!(
            p.masks("org.example.Secret"),
            Masks {
                talk: 2,
                hear: 1 << 32
            }
        );
        assert_eq!(p.masks("org.other.Open"), Masks::default());
        // Root may call Admin (rule 1), group 27 too (rule 2 names it).
        assert!(p.may_talk(0, &[0], &["org.example.Admin"], false));
        assert!(p.may_talk(1000, &[27], &["org.example.Admin"], false));
        assert!(!p.may_talk(65534, &[65534], &["org.example.Admin"], false));
        assert!(p.may_talk(65534, &[65534], &["org.other.Open"], false));
        // Every name of an owner counts.
        assert!(!p.may_talk(65534, &[], &["org.other.Open", "org.example.Admin"], false));
        assert!(p.may_talk(1000, &[], &["org.example.Secret"], true));
        assert!(!p.may_talk(2000, &[], &["org.example.Secret"], true));
        let many = "[[send]]\nname = \"a.b\"\nuids = [0]\n".repeat(33);
        assert_eq!(
            Policy::parse(&many).unwrap_err(),
            "33 [[send]] rules: at most 32"
        );
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            Policy::parse("[join]\nuids = \"all\"\n").unwrap_err(),
            "line 2: an id set is \"*\" or a list of numbers, not \"all\""
        );
        assert_eq!(
            Policy::parse("[join]\nuid = [0]\n").unwrap_err(),
            "line 2: unknown field `uid`, expected `uids` or `groups`"
        );
        assert_eq!(
            Policy::parse("[[own]]\nname = \"org.*.x\"\nuids = [0]\n").unwrap_err(),
            "own rule \"org.*.x\": a well-known name, or a prefix ending in \".*\""
        );
    }
}
