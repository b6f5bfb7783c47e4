// SPDX-License-Identifier: GPL-2.0

//! The D-Bus master's policy file (TOML): who may join the bus and who may
//! own which well-known names, by uid and by group.
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
//! ```
//!
//! Nothing is allowed unless a rule allows it; a missing `[join]` lets
//! nobody join.  Unknown keys are errors, reported with their line.

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

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct OwnRule {
    name: String,
    uids: Option<Ids>,
    groups: Option<Ids>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct File {
    join: Option<Who>,
    #[serde(default)]
    own: Vec<OwnRule>,
}

/// A checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    join: Option<Who>,
    own: Vec<OwnRule>,
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
        for r in &f.own {
            let pattern = r.name.strip_suffix(".*").unwrap_or(&r.name);
            if pattern.is_empty() || pattern.contains('*') || pattern.starts_with(':') {
                return Err(format!(
                    "own rule \"{}\": a well-known name, or a prefix ending in \".*\"",
                    r.name
                ));
            }
        }
        Ok(Policy {
            join: f.join,
            own: f.own,
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
        self.own.iter().any(|r| {
            let fits = match r.name.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => r.name == name,
            };
            let who = Who {
                uids: r.uids.clone(),
                groups: r.groups.clone(),
            };
            fits && who.allows(uid, groups)
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
