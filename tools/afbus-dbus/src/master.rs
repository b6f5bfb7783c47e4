// SPDX-License-Identifier: GPL-2.0

//! The D-Bus master: the control plane of a D-Bus bus on AF_BUS, serving
//! `org.freedesktop.DBus` at the address `org.freedesktop.DBus`.
//!
//! It admits endpoints (`Hello`, by the credentials the kernel recorded and
//! the policy), names them `:1.N` (granting the AF_BUS address `1.N`, `N`
//! the kernel handle's number), arbitrates well-known names with the D-Bus
//! specification's queueing (each owner holds the name as a granted
//! address), turns match rules into multicast match grants, and announces
//! `NameOwnerChanged` when owners come and go.  Method calls between
//! endpoints never pass through it.
//!
//! [`Master`] is the state machine, free of sockets; [`serve`] runs it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use zbus::message::{Flags, Message, Type};
use zbus::wire::Variant;
use zbus::MatchRule;

use crate::addr::{check_well_known, Addr, BusPath, NAME_MAX};
use crate::bloom::Bloom;
use crate::dbloom;
use crate::header;
use crate::socket::BUS_NAME;
use crate::sys::{
    push_cmsg, BusSocket, Creds, BUS_NOTIFY_GONE, BUS_NOTIFY_OVERFLOW, SCM_ADDR_ACCESS,
    SCM_MOVE_ADDR, SCM_MULTICAST_MATCH, SCM_MULTICAST_UNMATCH, SCM_OWNED_ADDR, SCM_POLICY_CLASSES,
    SCM_REVOKE_ADDR,
};

use crate::policy::{Masks, Policy};

const PATH: &str = "/org/freedesktop/DBus";
const ERR: &str = "org.freedesktop.DBus.Error.";

/// RequestName flags and replies (D-Bus specification).
pub const ALLOW_REPLACEMENT: u32 = 1;
pub const REPLACE_EXISTING: u32 = 2;
pub const DO_NOT_QUEUE: u32 = 4;
pub const PRIMARY_OWNER: u32 = 1;
pub const IN_QUEUE: u32 = 2;
pub const EXISTS: u32 = 3;
pub const ALREADY_OWNER: u32 = 4;
pub const RELEASED: u32 = 1;
pub const NON_EXISTENT: u32 = 2;
pub const NOT_OWNER: u32 = 3;

const INTROSPECTION: &str = r#"<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node>
  <interface name="org.freedesktop.DBus">
    <method name="Hello"><arg direction="out" type="s"/></method>
    <method name="RequestName"><arg direction="in" type="s"/><arg direction="in" type="u"/><arg direction="out" type="u"/></method>
    <method name="ReleaseName"><arg direction="in" type="s"/><arg direction="out" type="u"/></method>
    <method name="StartServiceByName"><arg direction="in" type="s"/><arg direction="in" type="u"/><arg direction="out" type="u"/></method>
    <method name="NameHasOwner"><arg direction="in" type="s"/><arg direction="out" type="b"/></method>
    <method name="ListNames"><arg direction="out" type="as"/></method>
    <method name="ListActivatableNames"><arg direction="out" type="as"/></method>
    <method name="AddMatch"><arg direction="in" type="s"/></method>
    <method name="RemoveMatch"><arg direction="in" type="s"/></method>
    <method name="GetNameOwner"><arg direction="in" type="s"/><arg direction="out" type="s"/></method>
    <method name="ListQueuedOwners"><arg direction="in" type="s"/><arg direction="out" type="as"/></method>
    <method name="GetConnectionUnixUser"><arg direction="in" type="s"/><arg direction="out" type="u"/></method>
    <method name="GetConnectionUnixProcessID"><arg direction="in" type="s"/><arg direction="out" type="u"/></method>
    <method name="GetConnectionCredentials"><arg direction="in" type="s"/><arg direction="out" type="a{sv}"/></method>
    <method name="GetId"><arg direction="out" type="s"/></method>
    <signal name="NameOwnerChanged"><arg type="s"/><arg type="s"/><arg type="s"/></signal>
    <signal name="NameLost"><arg type="s"/></signal>
    <signal name="NameAcquired"><arg type="s"/></signal>
  </interface>
  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping"/>
    <method name="GetMachineId"><arg direction="out" type="s"/></method>
  </interface>
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect"><arg direction="out" type="s"/></method>
  </interface>
</node>
"#;

/// A datagram the master sends.
#[derive(Debug)]
pub struct Out {
    pub dst: Addr,
    pub msg: Message,
    /// Grants and revocations riding on it.
    pub cmsgs: Vec<(libc::c_int, Addr)>,
    /// Sent instead if the kernel refuses the grants (a limit reached).
    pub fallback: Option<Box<Out>>,
    /// Announces a name change that an earlier message of its batch
    /// grants: not sent if the kernel refused that grant.
    pub dependent: bool,
    /// What the master undoes if the kernel refuses this message's grants.
    pub on_refused: Option<Refused>,
}

/// A name change the kernel refused (its grant's receiver is gone, full
/// or at its limit), for [`Master::refused`] to undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// `new` did not get `name` from `old`, which keeps it (with its
    /// flags `old_flags`).
    Replacement {
        name: String,
        old: u64,
        old_flags: u32,
        new: u64,
    },
    /// `new`, next in line after `old`, did not get `name`: it passes on
    /// to the one after.
    HandOver { name: String, old: u64, new: u64 },
}

#[derive(Debug)]
struct Conn {
    uid: u32,
    pid: i32,
    groups: Vec<u32>,
    /// Match rules (as zbus writes them back) and their masks.
    matches: Vec<(String, Bloom)>,
}

#[derive(Debug)]
struct NameState {
    owner: u64,
    flags: u32,
    /// Waiting endpoints and their flags.
    queue: VecDeque<(u64, u32)>,
}

/// The master's state.
pub struct Master {
    policy: Policy,
    id: String,
    conns: BTreeMap<u64, Conn>,
    names: BTreeMap<String, NameState>,
    /// What happened, one line per event.
    pub log: Vec<String>,
}

fn unique(id: u64) -> String {
    format!(":1.{id}")
}

impl Master {
    /// The policy's grants that ride on `o`: the classes of a member
    /// whose unique name it grants (its join), and the masks of every
    /// well-known name it grants or moves, so that the kernel applies
    /// them in the same step as the name.
    pub fn policy_of(&self, o: &Out) -> Vec<PolicyGrant> {
        let mut out = Vec::new();
        for (t, a) in &o.cmsgs {
            let Addr::Name(n) = a else { continue };
            if *t != SCM_OWNED_ADDR && *t != SCM_MOVE_ADDR {
                continue;
            }
            match n.strip_prefix("1.").map(str::parse::<u64>) {
                Some(Ok(id)) => {
                    if let Some(c) = self.conns.get(&id) {
                        let classes = self.policy.classes(c.uid, &c.groups);
                        if classes != 0 {
                            out.push(PolicyGrant::Classes(classes));
                        }
                    }
                }
                _ => {
                    let m = self.policy.masks(n);
                    if m != Masks::default() {
                        out.push(PolicyGrant::Access(a.clone(), m));
                    }
                }
            }
        }
        out
    }
}

/// The groups of `pid` (its supplementary groups and `gid`), read from
/// `/proc/PID/status`.  The pid was checked by the kernel when the join
/// request was sent, but may be another process's by now (the sender
/// exited and the pid was reused; or a bridge client whose authenticating
/// process is gone): the supplementary groups count only while the
/// process there still has the credentials' real uid and gid, else `gid`
/// alone does.
fn groups_of(pid: i32, uid: u32, gid: u32) -> Vec<u32> {
    let mut g = vec![gid];
    if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        let first = |key: &str| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l[key.len()..].split_whitespace().next())
                .and_then(|x| x.parse::<u32>().ok())
        };
        if first("Uid:") == Some(uid) && first("Gid:") == Some(gid) {
            if let Some(l) = s.lines().find(|l| l.starts_with("Groups:")) {
                g.extend(
                    l[7..]
                        .split_whitespace()
                        .filter_map(|x| x.parse::<u32>().ok()),
                );
            }
        }
    }
    g.sort_unstable();
    g.dedup();
    g
}

impl Master {
    /// A master with `policy`; `id` is the bus's 32-hex-digit GUID.
    pub fn new(policy: Policy, id: String) -> Master {
        Master {
            policy,
            id,
            conns: BTreeMap::new(),
            names: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    fn reply<B>(&self, call: &Message, body: &B) -> Message
    where
        B: serde::Serialize + zbus::wire::DynamicType,
    {
        Message::method_return(&call.header())
            .sender(BUS_NAME)
            .build(body)
            .expect("a reply to a parsed call builds")
    }

    fn error(&mut self, call: &Message, name: &str, text: &str) -> Message {
        self.log.push(format!("error {name}: {text}"));
        Master::error_msg(call, name, text)
    }

    /// An error reply, kept in reserve: logged only if it is sent.
    fn error_msg(call: &Message, name: &str, text: &str) -> Message {
        Message::error(&call.header(), format!("{ERR}{name}"))
            .sender(BUS_NAME)
            .build(&text)
            .expect("an error for a parsed call builds")
    }

    fn signal_to<B>(&self, id: u64, member: &str, body: &B) -> Out
    where
        B: serde::Serialize + zbus::wire::DynamicType,
    {
        let msg = Message::signal(PATH, BUS_NAME, member)
            .sender(BUS_NAME)
            .destination(unique(id))
            .build(body)
            .expect("a bus signal builds");
        Out {
            dst: Addr::Name(format!("1.{id}")),
            msg,
            cmsgs: Vec::new(),
            fallback: None,
            dependent: false,
            on_refused: None,
        }
    }

    fn owner_changed(&mut self, name: &str, old: &str, new: &str) -> Out {
        self.log
            .push(format!("NameOwnerChanged {name}: \"{old}\" -> \"{new}\""));
        let msg = Message::signal(PATH, BUS_NAME, "NameOwnerChanged")
            .sender(BUS_NAME)
            .build(&(name, old, new))
            .expect("NameOwnerChanged builds");
        Out {
            dst: Addr::Multicast(dbloom::of_signal(&msg)),
            msg,
            cmsgs: Vec::new(),
            fallback: None,
            dependent: false,
            on_refused: None,
        }
    }

    /// The endpoint a D-Bus name stands for: `:1.N`, or an owned name.
    fn resolve(&self, name: &str) -> Option<u64> {
        if let Some(n) = name.strip_prefix(":1.") {
            return n.parse().ok().filter(|n| self.conns.contains_key(n));
        }
        self.names.get(name).map(|s| s.owner)
    }

    /// `name`'s owner leaves it: the next in its queue gets it, or it is
    /// free.  The next owner's grant is an `SCM_MOVE_ADDR`, which takes
    /// the name from the old owner (if it still holds it) in the same
    /// step: calls to the name never find it unowned in between.
    fn pass_on(&mut self, name: &str, old: u64, out: &mut Vec<Out>) {
        let next = loop {
            let Some(st) = self.names.get_mut(name) else {
                return;
            };
            match st.queue.pop_front() {
                Some((id, flags)) if self.conns.contains_key(&id) => {
                    st.owner = id;
                    st.flags = flags;
                    break Some(id);
                }
                Some(_) => continue,
                None => break None,
            }
        };
        match next {
            Some(id) => {
                let mut s = self.signal_to(id, "NameAcquired", &name);
                s.cmsgs.push((SCM_MOVE_ADDR, Addr::Name(name.into())));
                s.on_refused = Some(Refused::HandOver {
                    name: name.into(),
                    old,
                    new: id,
                });
                out.push(s);
                let mut changed = self.owner_changed(name, &unique(old), &unique(id));
                changed.dependent = true;
                out.push(changed);
            }
            None => {
                self.names.remove(name);
                out.push(self.owner_changed(name, &unique(old), ""));
            }
        }
    }

    /// The kernel refused the grant of a name change (see [`Refused`]):
    /// the master's table follows the kernel's again.  Returns what to
    /// send for it.
    pub fn refused(&mut self, r: &Refused) -> Vec<Out> {
        let mut out = Vec::new();
        match r {
            Refused::Replacement {
                name,
                old,
                old_flags,
                new,
            } => {
                if let Some(st) = self.names.get_mut(name) {
                    if st.owner == *new && self.conns.contains_key(old) {
                        st.owner = *old;
                        st.flags = *old_flags;
                        st.queue.retain(|(q, _)| q != old);
                        self.log.push(format!(
                            "the kernel refused {name} to {}: {} keeps it",
                            unique(*new),
                            unique(*old)
                        ));
                    }
                }
            }
            Refused::HandOver { name, old, new } => {
                if self.names.get(name).is_some_and(|st| st.owner == *new) {
                    self.log.push(format!(
                        "the kernel refused {name} to {}: it passes on",
                        unique(*new)
                    ));
                    // As if `new` had released it at once; its old owner
                    // is who the bus last heard of.
                    self.pass_on(name, *old, &mut out);
                }
            }
        }
        out
    }

    /// The kernel reports endpoint `id` gone: its names pass on.
    pub fn gone(&mut self, id: u64) -> Vec<Out> {
        let mut out = Vec::new();
        if self.conns.remove(&id).is_none() {
            return out;
        }
        self.log.push(format!("{} is gone", unique(id)));
        let owned: Vec<String> = self
            .names
            .iter()
            .filter(|(_, s)| s.owner == id)
            .map(|(n, _)| n.clone())
            .collect();
        for st in self.names.values_mut() {
            st.queue.retain(|(q, _)| *q != id);
        }
        for n in owned {
            self.pass_on(&n, id, &mut out);
        }
        out.push(self.owner_changed(&unique(id), &unique(id), ""));
        out
    }

    /// A datagram from endpoint `id` (its kernel handle's number).
    pub fn handle(&mut self, id: u64, creds: Option<Creds>, payload: &[u8]) -> Vec<Out> {
        // The sender is who the kernel says, whatever the header claims.
        let parsed = header::with_sender(payload, &unique(id))
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                let ctx = zbus::wire::serialized::Context::new(
                    if bytes[0] == b'B' {
                        zbus::wire::Endian::Big
                    } else {
                        zbus::wire::Endian::Little
                    },
                    0,
                );
                // SAFETY: zbus parses and checks the header as it does for
                // every message it reads from a socket; bodies are checked
                // when they are deserialized below.
                unsafe { Message::from_bytes(zbus::wire::serialized::Data::new(bytes, ctx)) }
                    .map_err(|e| e.to_string())
            });
        let call = match parsed {
            Ok(m) => m,
            Err(e) => {
                self.log.push(format!(
                    "dropped a malformed message from {}: {e}",
                    unique(id)
                ));
                return Vec::new();
            }
        };
        if call.message_type() != Type::MethodCall {
            return Vec::new();
        }
        let no_reply = call
            .primary_header()
            .flags()
            .contains(Flags::NO_REPLY_EXPECTED);
        let mut out = self.dispatch(id, creds, &call);
        if no_reply {
            // Replies carrying grants still go: the grant rides on them.
            out.retain(|o| {
                !(o.msg.message_type() != Type::Signal
                    && o.cmsgs.is_empty()
                    && o.dst == Addr::Name(format!("1.{id}")))
            });
        }
        out
    }

    fn dispatch(&mut self, id: u64, creds: Option<Creds>, call: &Message) -> Vec<Out> {
        let h = call.header();
        let iface = h.interface().map(|i| i.to_string()).unwrap_or_default();
        let member = h.member().map(|m| m.to_string()).unwrap_or_default();
        drop(h);
        let me = Addr::Name(format!("1.{id}"));
        let to_me = |msg: Message| Out {
            dst: Addr::Name(format!("1.{id}")),
            msg,
            cmsgs: Vec::new(),
            fallback: None,
            dependent: false,
            on_refused: None,
        };

        if !self.conns.contains_key(&id) {
            // Before Hello the endpoint is pending: answer its handle.
            let dst = Addr::Name(format!(":{id}"));
            let msg = if member != "Hello" || !matches!(iface.as_str(), "" | BUS_NAME) {
                self.error(
                    call,
                    "AccessDenied",
                    "Client tried to send a message other than Hello without being registered",
                )
            } else {
                return self.hello(id, creds, call, dst);
            };
            return vec![Out {
                dst,
                msg,
                cmsgs: Vec::new(),
                fallback: None,
                dependent: false,
                on_refused: None,
            }];
        }

        let msg = match (iface.as_str(), member.as_str()) {
            ("org.freedesktop.DBus.Peer", "Ping") => self.reply(call, &()),
            ("org.freedesktop.DBus.Peer", "GetMachineId") => {
                let m = std::fs::read_to_string("/etc/machine-id")
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| self.id.clone());
                self.reply(call, &m)
            }
            ("org.freedesktop.DBus.Introspectable", "Introspect") => {
                self.reply(call, &INTROSPECTION)
            }
            ("org.freedesktop.DBus.Monitoring", "BecomeMonitor") => self.error(
                call,
                "AccessDenied",
                "Monitoring is not possible on an AF_BUS bus: unicast messages go from \
                 sender to receiver through the kernel, never through the bus",
            ),
            ("" | BUS_NAME, m) => return self.bus_method(id, &me, m, call),
            (
                i @ ("org.freedesktop.DBus.Peer"
                | "org.freedesktop.DBus.Introspectable"
                | "org.freedesktop.DBus.Monitoring"),
                m,
            ) => {
                let text = format!("Interface \"{i}\" of the bus has no method \"{m}\"");
                self.error(call, "UnknownMethod", &text)
            }
            // As dbus-daemon: an interface the bus does not implement at
            // all is UnknownInterface.
            (i, _) => {
                let text = format!("The bus does not implement the interface \"{i}\"");
                self.error(call, "UnknownInterface", &text)
            }
        };
        vec![to_me(msg)]
    }

    fn hello(&mut self, id: u64, creds: Option<Creds>, call: &Message, dst: Addr) -> Vec<Out> {
        let refuse = |m: &mut Master, why: &str| {
            let msg = m.error(call, "AccessDenied", why);
            vec![Out {
                dst: dst.clone(),
                msg,
                cmsgs: Vec::new(),
                fallback: None,
                dependent: false,
                on_refused: None,
            }]
        };
        let Some(c) = creds else {
            return refuse(self, "no credentials came with the join request");
        };
        let groups = groups_of(c.pid, c.uid, c.gid);
        if !self.policy.may_join(c.uid, &groups) {
            return refuse(self, &format!("uid {} may not join this bus", c.uid));
        }
        let name = unique(id);
        self.log
            .push(format!("{name} joined (pid {}, uid {})", c.pid, c.uid));
        self.conns.insert(
            id,
            Conn {
                uid: c.uid,
                pid: c.pid,
                groups,
                matches: Vec::new(),
            },
        );
        let reply = Message::method_return(&call.header())
            .sender(BUS_NAME)
            .destination(name.as_str())
            .build(&name.as_str())
            .expect("the Hello reply builds");
        let mut out = vec![Out {
            dst,
            msg: reply,
            cmsgs: vec![(SCM_OWNED_ADDR, Addr::Name(format!("1.{id}")))],
            fallback: None,
            dependent: false,
            on_refused: None,
        }];
        out.push(self.signal_to(id, "NameAcquired", &name.as_str()));
        out.push(self.owner_changed(&name, "", &name));
        out
    }

    fn conn_of(&mut self, call: &Message, name: &str, what: &str) -> Result<&Conn, Message> {
        if name == BUS_NAME {
            // The master itself: root, this process.
            return Err(self.error(
                call,
                "NameHasNoOwner",
                &format!("Could not get {what} of name '{name}': it is the bus"),
            ));
        }
        match self.resolve(name) {
            Some(id) => Ok(&self.conns[&id]),
            None => Err(self.error(
                call,
                "NameHasNoOwner",
                &format!("Could not get {what} of name '{name}': no such name"),
            )),
        }
    }

    fn bus_method(&mut self, id: u64, me: &Addr, member: &str, call: &Message) -> Vec<Out> {
        let to_me = |msg: Message| Out {
            dst: me.clone(),
            msg,
            cmsgs: Vec::new(),
            fallback: None,
            dependent: false,
            on_refused: None,
        };
        macro_rules! args {
            ($t:ty) => {
                match call.body().deserialize::<$t>() {
                    Ok(a) => a,
                    Err(_) => {
                        let sig = call.body().signature().to_string();
                        let text = format!("{member} does not take the arguments \"{sig}\"");
                        return vec![to_me(self.error(call, "InvalidArgs", &text))];
                    }
                }
            };
        }
        let msg = match member {
            "Hello" => self.error(call, "Failed", "Already handled an Hello message"),
            "RequestName" => {
                let (name, flags) = args!((String, u32));
                return self.request_name(id, me, call, &name, flags);
            }
            "ReleaseName" => {
                let name = args!(String);
                return self.release_name(id, me, call, &name);
            }
            "ListQueuedOwners" => {
                let name = args!(String);
                match self.names.get(&name) {
                    Some(st) => {
                        let mut v = vec![unique(st.owner)];
                        v.extend(st.queue.iter().map(|(q, _)| unique(*q)));
                        self.reply(call, &v)
                    }
                    None if name == BUS_NAME => self.reply(call, &vec![BUS_NAME]),
                    None => {
                        let text = format!("Could not get owners of name '{name}': no such name");
                        self.error(call, "NameHasNoOwner", &text)
                    }
                }
            }
            "ListNames" => {
                let mut v = vec![BUS_NAME.to_string()];
                v.extend(self.conns.keys().map(|i| unique(*i)));
                v.extend(self.names.keys().cloned());
                self.reply(call, &v)
            }
            "ListActivatableNames" => self.reply(call, &vec![BUS_NAME]),
            "NameHasOwner" => {
                let name = args!(String);
                let has = name == BUS_NAME || self.resolve(&name).is_some();
                self.reply(call, &has)
            }
            "GetNameOwner" => {
                let name = args!(String);
                match self.resolve(&name) {
                    _ if name == BUS_NAME => self.reply(call, &BUS_NAME),
                    Some(o) => self.reply(call, &unique(o)),
                    None => {
                        let text = format!("Could not get owner of name '{name}': no such name");
                        self.error(call, "NameHasNoOwner", &text)
                    }
                }
            }
            "StartServiceByName" => {
                let (name, _flags) = args!((String, u32));
                if name == BUS_NAME || self.resolve(&name).is_some() {
                    // DBUS_START_REPLY_ALREADY_RUNNING
                    self.reply(call, &2u32)
                } else {
                    let text = format!(
                        "Service activation is not supported on an AF_BUS bus: {name} has no owner"
                    );
                    self.error(call, "NotSupported", &text)
                }
            }
            "AddMatch" | "RemoveMatch" => {
                let rule = args!(String);
                return self.match_rule(id, me, call, member == "AddMatch", &rule);
            }
            "GetConnectionUnixUser" => {
                let name = args!(String);
                match self.conn_of(call, &name, "UID") {
                    Ok(c) => {
                        let uid = c.uid;
                        self.reply(call, &uid)
                    }
                    Err(e) => e,
                }
            }
            "GetConnectionUnixProcessID" => {
                let name = args!(String);
                match self.conn_of(call, &name, "PID") {
                    Ok(c) => {
                        let pid = c.pid as u32;
                        self.reply(call, &pid)
                    }
                    Err(e) => e,
                }
            }
            "GetConnectionCredentials" => {
                let name = args!(String);
                match self.conn_of(call, &name, "credentials") {
                    Ok(c) => {
                        let mut m: HashMap<&str, Variant> = HashMap::new();
                        m.insert("UnixUserID", Variant::from(c.uid));
                        m.insert("ProcessID", Variant::from(c.pid as u32));
                        m.insert("UnixGroupIDs", Variant::from(c.groups.clone()));
                        self.reply(call, &m)
                    }
                    Err(e) => e,
                }
            }
            "GetId" => {
                let id = self.id.clone();
                self.reply(call, &id)
            }
            m => {
                let text = format!("org.freedesktop.DBus does not understand message {m}");
                self.error(call, "UnknownMethod", &text)
            }
        };
        vec![to_me(msg)]
    }

    fn request_name(
        &mut self,
        id: u64,
        me: &Addr,
        call: &Message,
        name: &str,
        flags: u32,
    ) -> Vec<Out> {
        let reply_only = |msg: Message| {
            vec![Out {
                dst: me.clone(),
                msg,
                cmsgs: Vec::new(),
                fallback: None,
                dependent: false,
                on_refused: None,
            }]
        };
        if name == BUS_NAME {
            let text = "Connection is not allowed to own the service \"org.freedesktop.DBus\" \
                        because it is reserved for D-Bus' use only";
            return reply_only(self.error(call, "InvalidArgs", text));
        }
        if let Err(e) = check_well_known(name) {
            let text = format!("Requested bus name \"{name}\" is not valid: {e}");
            return reply_only(self.error(call, "InvalidArgs", &text));
        }
        if name.len() > NAME_MAX {
            let text =
                format!("\"{name}\" is longer than the {NAME_MAX} bytes of an AF_BUS address");
            return reply_only(self.error(call, "LimitsExceeded", &text));
        }
        let c = &self.conns[&id];
        if !self.policy.may_own(c.uid, &c.groups, name) {
            let text = format!(
                "Connection \"{}\" is not allowed to own the service \"{name}\" due to security \
                 policies in the configuration file",
                unique(id)
            );
            return reply_only(self.error(call, "AccessDenied", &text));
        }
        let mut out = Vec::new();
        let grant = |out: &mut Vec<Out>, m: &mut Master, kind: i32| {
            out.push(Out {
                dst: me.clone(),
                msg: m.reply(call, &PRIMARY_OWNER),
                cmsgs: vec![(kind, Addr::Name(name.into()))],
                fallback: Some(Box::new(Out {
                    dst: me.clone(),
                    msg: Master::error_msg(
                        call,
                        "LimitsExceeded",
                        "the kernel refused the name's grant",
                    ),
                    cmsgs: Vec::new(),
                    fallback: None,
                    dependent: false,
                    on_refused: None,
                })),
                dependent: false,
                on_refused: None,
            });
        };
        let Some(st) = self.names.get_mut(name) else {
            self.names.insert(
                name.into(),
                NameState {
                    owner: id,
                    flags,
                    queue: VecDeque::new(),
                },
            );
            self.log.push(format!("{name} granted to {}", unique(id)));
            grant(&mut out, self, SCM_OWNED_ADDR);
            out.push(self.signal_to(id, "NameAcquired", &name));
            out.push(self.owner_changed(name, "", &unique(id)));
            return out;
        };
        if st.owner == id {
            st.flags = flags;
            let r = self.reply(call, &ALREADY_OWNER);
            return reply_only(r);
        }
        if flags & REPLACE_EXISTING != 0 && st.flags & ALLOW_REPLACEMENT != 0 {
            let old = st.owner;
            let old_flags = st.flags;
            st.queue.retain(|(q, _)| *q != id);
            if old_flags & DO_NOT_QUEUE == 0 {
                st.queue.push_front((old, old_flags));
            }
            st.owner = id;
            st.flags = flags;
            self.log.push(format!(
                "{name} passes from {} to {}",
                unique(old),
                unique(id)
            ));
            // The new owner's grant takes the name from the old one in the
            // same step; the old one hears of it after, unless the kernel
            // refused the move (then the old one keeps it: `refused`).
            grant(&mut out, self, SCM_MOVE_ADDR);
            out[0].on_refused = Some(Refused::Replacement {
                name: name.into(),
                old,
                old_flags,
                new: id,
            });
            let mut lost = self.signal_to(old, "NameLost", &name);
            let mut acquired = self.signal_to(id, "NameAcquired", &name);
            let mut changed = self.owner_changed(name, &unique(old), &unique(id));
            for o in [&mut lost, &mut acquired, &mut changed] {
                o.dependent = true;
            }
            out.extend([lost, acquired, changed]);
            return out;
        }
        let code = if flags & DO_NOT_QUEUE != 0 {
            st.queue.retain(|(q, _)| *q != id);
            EXISTS
        } else {
            match st.queue.iter_mut().find(|(q, _)| *q == id) {
                Some(q) => q.1 = flags,
                None => st.queue.push_back((id, flags)),
            }
            IN_QUEUE
        };
        let r = self.reply(call, &code);
        reply_only(r)
    }

    fn release_name(&mut self, id: u64, me: &Addr, call: &Message, name: &str) -> Vec<Out> {
        let mut out = Vec::new();
        let code = match self.names.get_mut(name) {
            None => NON_EXISTENT,
            Some(st) if st.owner == id => {
                self.log.push(format!("{} released {name}", unique(id)));
                let mut handed = Vec::new();
                self.pass_on(name, id, &mut handed);
                // With a next owner, its grant moves the name first, and
                // the reply revokes nothing; else the reply revokes it.
                let next = self.names.contains_key(name);
                if next {
                    // Should the move fail (the next owner's queue stays
                    // full), the releaser still loses the name: its
                    // NameLost carries the revocation instead.
                    if let Some(first) = handed.first_mut() {
                        let mut lost = self.signal_to(id, "NameLost", &name);
                        lost.cmsgs.push((SCM_REVOKE_ADDR, Addr::Name(name.into())));
                        first.fallback = Some(Box::new(lost));
                    }
                    out.append(&mut handed);
                }
                out.push(Out {
                    dst: me.clone(),
                    msg: self.reply(call, &RELEASED),
                    cmsgs: if next {
                        Vec::new()
                    } else {
                        vec![(SCM_REVOKE_ADDR, Addr::Name(name.into()))]
                    },
                    fallback: None,
                    dependent: false,
                    on_refused: None,
                });
                // If the move was refused, the fallback above told it.
                let mut lost = self.signal_to(id, "NameLost", &name);
                lost.dependent = next;
                out.push(lost);
                out.append(&mut handed);
                return out;
            }
            Some(st) => match st.queue.iter().position(|(q, _)| *q == id) {
                Some(i) => {
                    st.queue.remove(i);
                    RELEASED
                }
                None => NOT_OWNER,
            },
        };
        if name == BUS_NAME || name.starts_with(':') {
            let text = format!("Cannot release the name \"{name}\"");
            out.push(Out {
                dst: me.clone(),
                msg: self.error(call, "InvalidArgs", &text),
                cmsgs: Vec::new(),
                fallback: None,
                dependent: false,
                on_refused: None,
            });
            return out;
        }
        out.push(Out {
            dst: me.clone(),
            msg: self.reply(call, &code),
            cmsgs: Vec::new(),
            fallback: None,
            dependent: false,
            on_refused: None,
        });
        out
    }

    fn match_rule(
        &mut self,
        id: u64,
        me: &Addr,
        call: &Message,
        add: bool,
        text: &str,
    ) -> Vec<Out> {
        let one = |msg: Message, cmsgs: Vec<(libc::c_int, Addr)>, fallback: Option<Box<Out>>| {
            vec![Out {
                dst: me.clone(),
                msg,
                cmsgs,
                fallback,
                dependent: false,
                on_refused: None,
            }]
        };
        if add && eavesdrops(text) {
            let t = "Eavesdropping is not possible on an AF_BUS bus: a match rule \
                     receives broadcasts only";
            return one(self.error(call, "AccessDenied", t), Vec::new(), None);
        }
        let rule = match MatchRule::try_from(text) {
            Ok(r) => r,
            Err(e) => {
                let t = format!("The match rule \"{text}\" is not valid: {e}");
                return one(self.error(call, "MatchRuleInvalid", &t), Vec::new(), None);
            }
        };
        let key = rule.to_string();
        let mask = dbloom::of_rule(&rule);
        let conn = self.conns.get_mut(&id).expect("a joined endpoint");
        if add {
            conn.matches.push((key, mask.clone()));
            let fallback =
                Master::error_msg(call, "LimitsExceeded", "the kernel refused the match grant");
            let r = self.reply(call, &());
            one(
                r,
                vec![(SCM_MULTICAST_MATCH, Addr::Multicast(mask))],
                Some(Box::new(Out {
                    dst: me.clone(),
                    msg: fallback,
                    cmsgs: Vec::new(),
                    fallback: None,
                    dependent: false,
                    on_refused: None,
                })),
            )
        } else {
            match conn.matches.iter().position(|(k, _)| *k == key) {
                Some(i) => {
                    let (_, mask) = conn.matches.remove(i);
                    let r = self.reply(call, &());
                    one(
                        r,
                        vec![(SCM_MULTICAST_UNMATCH, Addr::Multicast(mask))],
                        None,
                    )
                }
                None => {
                    let t =
                        format!("The given match rule wasn't found and can't be removed: {text}");
                    one(self.error(call, "MatchRuleNotFound", &t), Vec::new(), None)
                }
            }
        }
    }
}

/// The bus GUID: 32 hex digits from the kernel's random source.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    // SAFETY: a buffer of the length given.
    let n = unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, b.len(), 0) };
    if n != 16 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = t.to_ne_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The data of `SCM_ADDR_ACCESS` (`struct bus_addr_access`).
fn addr_access(talk: u64, hear: u64, addr: &crate::sys::SockaddrBus) -> Vec<u8> {
    use af_bus_core::uapi::{ADDR_ACCESS_ADDR_OFFSET, ADDR_ACCESS_SIZE};
    let mut d = Vec::with_capacity(ADDR_ACCESS_SIZE);
    d.extend_from_slice(&talk.to_ne_bytes());
    d.extend_from_slice(&hear.to_ne_bytes());
    d.resize(ADDR_ACCESS_ADDR_OFFSET, 0);
    d.extend_from_slice(&addr.as_bytes());
    d
}

/// What the policy adds to a message's grants (see [`Master::policy_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyGrant {
    /// `SCM_POLICY_CLASSES`: the joining member's classes.
    Classes(u64),
    /// `SCM_ADDR_ACCESS`: the masks of a name granted in the same message.
    Access(Addr, Masks),
}

/// Sends `o`, never blocking: a full receiver loses what carries no grant
/// (counted), and what carries one is tried for up to half a second.
/// `policy`: the policy's grants riding along.
/// Whether a match rule asks for `eavesdrop='true'` (other connections'
/// unicast messages), which no rule can have here.
fn eavesdrops(rule: &str) -> bool {
    rule.split(',').any(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        k.trim() == "eavesdrop" && v.trim().trim_matches('\'') == "true"
    })
}

fn send(
    sock: &BusSocket,
    o: &Out,
    policy: &[PolicyGrant],
    dropped: &mut u64,
    log: &mut Vec<String>,
) -> bool {
    let dst = o.dst.to_sockaddr(&sock.bus);
    let mut ctl = Vec::new();
    for (t, a) in &o.cmsgs {
        push_cmsg(&mut ctl, *t, &a.to_sockaddr(&sock.bus).as_bytes());
    }
    for g in policy {
        match g {
            PolicyGrant::Classes(c) => push_cmsg(&mut ctl, SCM_POLICY_CLASSES, &c.to_ne_bytes()),
            PolicyGrant::Access(a, m) => {
                let data = addr_access(m.talk, m.hear, &a.to_sockaddr(&sock.bus));
                push_cmsg(&mut ctl, SCM_ADDR_ACCESS, &data);
            }
        }
    }
    let bytes = o.msg.data().bytes();
    let start = Instant::now();
    loop {
        match sock.send_ctl(&dst, bytes, &mut ctl, true) {
            Ok(()) => return true,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    && !ctl.is_empty()
                    && start.elapsed() < Duration::from_millis(500) =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    *dropped += 1;
                }
                log.push(format!(
                    "could not send to {}: {e}{}",
                    o.dst.display(),
                    if o.fallback.is_some() {
                        "; sending the error instead"
                    } else {
                        ""
                    }
                ));
                if let Some(f) = &o.fallback {
                    send(sock, f, &[], dropped, log);
                }
                return false;
            }
        }
    }
}

/// Sends a batch of messages in order.  A message announcing a name
/// change (`dependent`) goes only if the grant before it in the batch was
/// taken; a refused grant is undone (`Master::refused`), and what that
/// sends is a batch of its own.
fn deliver(sock: &BusSocket, m: &mut Master, out: Vec<Out>, dropped: &mut u64) {
    let mut refused = false;
    for o in out {
        if o.dependent && refused {
            continue;
        }
        let policy = m.policy_of(&o);
        let sent = send(sock, &o, &policy, dropped, &mut m.log);
        if !sent && !o.cmsgs.is_empty() {
            refused = true;
            if let Some(r) = &o.on_refused {
                let repair = m.refused(r);
                deliver(sock, m, repair, dropped);
            }
        }
    }
}

/// The handle number of a source the kernel reports: `:N`, or `1.N`.
fn endpoint_of(src: &Addr, m: &Master) -> Option<u64> {
    let Addr::Name(n) = src else { return None };
    if let Some(h) = n.strip_prefix(':') {
        return h.parse().ok();
    }
    if let Some(h) = n.strip_prefix("1.") {
        return h.parse().ok();
    }
    m.resolve(n)
}

/// Binds `bus` as its master and serves it until killed.
pub fn serve(bus: &BusPath, policy: Policy, mut emit: impl FnMut(&str)) -> std::io::Result<()> {
    let sock = BusSocket::new(bus)?;
    let display = bus.display();
    if display.starts_with('/') {
        // A stale socket inode of an earlier master is replaced.
        if let Ok(md) = std::fs::symlink_metadata(&display) {
            use std::os::unix::fs::FileTypeExt;
            if md.file_type().is_socket() {
                std::fs::remove_file(&display)?;
            }
        }
        if let Some(dir) = std::path::Path::new(&display).parent() {
            std::fs::create_dir_all(dir)?;
        }
    }
    sock.bind(&Addr::Name(BUS_NAME.into()))?;
    if display.starts_with('/') {
        // Everyone may reach the bus; the policy decides who joins.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&display, std::fs::Permissions::from_mode(0o666))?;
    }
    sock.set_passcred()?;
    let mut m = Master::new(policy, new_id());
    emit(&format!("serving {display} as {BUS_NAME}, bus id {}", m.id));
    let mut dropped = 0u64;
    loop {
        let r = match sock.recv(-1) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => return Err(e),
            Err(e) => {
                // Nothing a peer sends may stop the master.
                emit(&format!("recvmsg: {e}; going on"));
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let src = Addr::from_sockaddr(&r.src);
        let out = if src == Addr::Kernel {
            let p = &r.payload;
            if p.len() < 16 {
                continue;
            }
            let ty = u32::from_ne_bytes(p[0..4].try_into().unwrap());
            let hdr = u32::from_ne_bytes(p[4..8].try_into().unwrap()) as usize;
            if ty == BUS_NOTIFY_OVERFLOW {
                m.log
                    .push("the kernel dropped notifications (overflow)".into());
                Vec::new()
            } else if ty == BUS_NOTIFY_GONE && p.len() >= hdr + 128 {
                match crate::sys::SockaddrBus::from_bytes(&p[hdr..hdr + 128])
                    .map(|a| Addr::from_sockaddr(&a))
                {
                    Some(Addr::Name(h)) => match h.strip_prefix(':').and_then(|n| n.parse().ok()) {
                        Some(id) => m.gone(id),
                        None => Vec::new(),
                    },
                    _ => Vec::new(),
                }
            } else {
                Vec::new()
            }
        } else if r.truncated {
            m.log.push(format!(
                "dropped a message from {} larger than 64 KiB",
                src.display()
            ));
            Vec::new()
        } else {
            match endpoint_of(&src, &m) {
                Some(id) => m.handle(id, r.creds, &r.payload),
                None => Vec::new(),
            }
        };
        deliver(&sock, &mut m, out, &mut dropped);
        for l in m.log.drain(..) {
            emit(&l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_count_only_while_the_pid_has_the_credentials() {
        // SAFETY: these calls take no pointers and cannot fail.
        let (pid, uid, gid) = unsafe { (libc::getpid(), libc::getuid(), libc::getgid()) };
        let mine = groups_of(pid, uid, gid);
        assert!(mine.contains(&gid));
        // Someone else's credentials with this pid: the gid alone.
        assert_eq!(groups_of(pid, uid.wrapping_add(1), 4242), vec![4242]);
        assert_eq!(
            groups_of(pid, uid, gid.wrapping_add(1)),
            vec![gid.wrapping_add(1)]
        );
        // A pid that is gone: the gid alone.
        assert_eq!(groups_of(i32::MAX, uid, gid), vec![gid]);
    }

    const POLICY: &str = "[join]\nuids = \"*\"\n[[own]]\nname = \"org.example.*\"\nuids = [0]\n";

    fn master() -> Master {
        Master::new(Policy::parse(POLICY).unwrap(), "0".repeat(32))
    }

    fn root() -> Option<Creds> {
        Some(Creds {
            pid: 1,
            uid: 0,
            gid: 0,
        })
    }

    fn call<B>(member: &str, body: &B) -> Vec<u8>
    where
        B: serde::Serialize + zbus::wire::DynamicType,
    {
        Message::method_call(PATH, member)
            .destination(BUS_NAME)
            .interface(BUS_NAME)
            .build(body)
            .unwrap()
            .data()
            .bytes()
            .to_vec()
    }

    /// What a datagram is: destination, kind and member or error name,
    /// grants.
    type Summary = (String, String, Vec<(libc::c_int, String)>);

    fn summary(out: &[Out]) -> Vec<Summary> {
        out.iter()
            .map(|o| {
                let h = o.msg.header();
                let what = match o.msg.message_type() {
                    Type::MethodReturn => "return".to_string(),
                    Type::Error => format!("error {}", h.error_name().unwrap()),
                    Type::Signal => format!("signal {}", h.member().unwrap()),
                    Type::MethodCall => "call".to_string(),
                };
                let dst = match &o.dst {
                    Addr::Multicast(_) => "multicast".to_string(),
                    a => a.display(),
                };
                let g = o.cmsgs.iter().map(|(t, a)| (*t, a.display())).collect();
                (dst, what, g)
            })
            .collect()
    }

    fn s(
        dst: &str,
        what: &str,
        g: &[(libc::c_int, &str)],
    ) -> (String, String, Vec<(libc::c_int, String)>) {
        (
            dst.into(),
            what.into(),
            g.iter().map(|(t, a)| (*t, a.to_string())).collect(),
        )
    }

    fn join(m: &mut Master, id: u64) {
        let out = m.handle(id, root(), &call("Hello", &()));
        assert_eq!(
            out[0].msg.body().deserialize::<String>().unwrap(),
            format!(":1.{id}")
        );
    }

    #[test]
    fn hello_grants_the_unique_name() {
        let mut m = master();
        let out = m.handle(5, root(), &call("Hello", &()));
        assert_eq!(
            summary(&out),
            vec![
                s(":5", "return", &[(SCM_OWNED_ADDR, "1.5")]),
                s("1.5", "signal NameAcquired", &[]),
                s("multicast", "signal NameOwnerChanged", &[]),
            ]
        );
        assert_eq!(out[0].msg.body().deserialize::<String>().unwrap(), ":1.5");
        assert_eq!(out[0].msg.header().destination().unwrap().as_str(), ":1.5");
        let again = m.handle(5, root(), &call("Hello", &()));
        assert_eq!(
            summary(&again),
            vec![s("1.5", "error org.freedesktop.DBus.Error.Failed", &[])]
        );
    }

    #[test]
    fn the_policy_rides_on_the_grants() {
        let p = "[join]\nuids = \"*\"\n[[own]]\nname = \"org.example.*\"\nuids = [0]\n\
                 [[send]]\nname = \"org.example.Admin\"\nuids = [0]\n\
                 [[receive]]\nname = \"org.example.*\"\nuids = [0, 1000]\n";
        let mut m = Master::new(Policy::parse(p).unwrap(), "0".repeat(32));
        // Root's join carries its classes (send rule 0, receive rule 0).
        let out = m.handle(1, root(), &call("Hello", &()));
        assert_eq!(
            m.policy_of(&out[0]),
            vec![PolicyGrant::Classes(1 | 1 << 32)]
        );
        assert!(m.policy_of(&out[1]).is_empty());
        // A member no rule lists has none: nothing rides along.
        let nobody = Some(Creds {
            pid: 2,
            uid: 65534,
            gid: 65534,
        });
        let out = m.handle(2, nobody, &call("Hello", &()));
        assert!(m.policy_of(&out[0]).is_empty());
        // A name's grant carries its masks; a name no rule names, none.
        let out = m.handle(
            1,
            root(),
            &call("RequestName", &("org.example.Admin", 0u32)),
        );
        let admin = Addr::Name("org.example.Admin".into());
        assert_eq!(
            m.policy_of(&out[0]),
            vec![PolicyGrant::Access(
                admin,
                Masks {
                    talk: 1,
                    hear: 1 << 32
                }
            )]
        );
        let out = m.handle(1, root(), &call("RequestName", &("org.example.Echo", 0u32)));
        let echo = Addr::Name("org.example.Echo".into());
        assert_eq!(
            m.policy_of(&out[0]),
            vec![PolicyGrant::Access(
                echo,
                Masks {
                    talk: 0,
                    hear: 1 << 32
                }
            )]
        );
    }

    #[test]
    fn joining_needs_credentials_and_the_policy() {
        let mut m = master();
        assert_eq!(
            summary(&m.handle(1, None, &call("Hello", &()))),
            vec![s(
                ":1",
                "error org.freedesktop.DBus.Error.AccessDenied",
                &[]
            )]
        );
        assert_eq!(
            summary(&m.handle(2, root(), &call("ListNames", &()))),
            vec![s(
                ":2",
                "error org.freedesktop.DBus.Error.AccessDenied",
                &[]
            )]
        );
        let mut closed = Master::new(Policy::parse("").unwrap(), "0".repeat(32));
        assert_eq!(
            summary(&closed.handle(3, root(), &call("Hello", &()))),
            vec![s(
                ":3",
                "error org.freedesktop.DBus.Error.AccessDenied",
                &[]
            )]
        );
    }

    #[test]
    fn names_queue_and_pass_on() {
        let mut m = master();
        for id in 1..=3 {
            join(&mut m, id);
        }
        let n = "org.example.Q";
        let req = |f: u32| call("RequestName", &(n, f));
        let code = |out: &[Out]| out[0].msg.body().deserialize::<u32>().unwrap();

        let out = m.handle(1, root(), &req(ALLOW_REPLACEMENT));
        assert_eq!(code(&out), PRIMARY_OWNER);
        assert_eq!(
            summary(&out),
            vec![
                s("1.1", "return", &[(SCM_OWNED_ADDR, n)]),
                s("1.1", "signal NameAcquired", &[]),
                s("multicast", "signal NameOwnerChanged", &[]),
            ]
        );
        assert_eq!(code(&m.handle(1, root(), &req(0))), ALREADY_OWNER);
        assert_eq!(code(&m.handle(2, root(), &req(0))), IN_QUEUE);
        assert_eq!(code(&m.handle(2, root(), &req(DO_NOT_QUEUE))), EXISTS);
        assert_eq!(code(&m.handle(2, root(), &req(0))), IN_QUEUE);
        // 1 allowed it (its latest flags are 0 now: it asked again).
        let out = m.handle(3, root(), &req(REPLACE_EXISTING));
        assert_eq!(code(&out), IN_QUEUE);
        assert_eq!(
            code(&m.handle(1, root(), &req(ALLOW_REPLACEMENT))),
            ALREADY_OWNER
        );
        let out = m.handle(3, root(), &req(REPLACE_EXISTING));
        assert_eq!(
            summary(&out),
            vec![
                s("1.3", "return", &[(SCM_MOVE_ADDR, n)]),
                s("1.1", "signal NameLost", &[]),
                s("1.3", "signal NameAcquired", &[]),
                s("multicast", "signal NameOwnerChanged", &[]),
            ]
        );
        let owners = m.handle(2, root(), &call("ListQueuedOwners", &n));
        assert_eq!(
            owners[0].msg.body().deserialize::<Vec<String>>().unwrap(),
            [":1.3", ":1.1", ":1.2"]
        );
        // 3 dies: 1 is next.
        let out = m.gone(3);
        assert_eq!(
            summary(&out),
            vec![
                s("1.1", "signal NameAcquired", &[(SCM_MOVE_ADDR, n)]),
                s("multicast", "signal NameOwnerChanged", &[]),
                s("multicast", "signal NameOwnerChanged", &[]),
            ]
        );
        let (name, old, new): (String, String, String) = out[1].msg.body().deserialize().unwrap();
        assert_eq!(
            (name.as_str(), old.as_str(), new.as_str()),
            (n, ":1.3", ":1.1")
        );
        let (name, old, new): (String, String, String) = out[2].msg.body().deserialize().unwrap();
        assert_eq!(
            (name.as_str(), old.as_str(), new.as_str()),
            (":1.3", ":1.3", "")
        );
        // 1 releases: 2 is next; then 2 releases: the name is free.
        let out = m.handle(1, root(), &call("ReleaseName", &n));
        assert_eq!(
            summary(&out),
            vec![
                s("1.2", "signal NameAcquired", &[(SCM_MOVE_ADDR, n)]),
                s("multicast", "signal NameOwnerChanged", &[]),
                s("1.1", "return", &[]),
                s("1.1", "signal NameLost", &[]),
            ]
        );
        assert_eq!(
            code(&m.handle(1, root(), &call("ReleaseName", &n))),
            NOT_OWNER
        );
        assert_eq!(
            code(&m.handle(2, root(), &call("ReleaseName", &n))),
            RELEASED
        );
        assert_eq!(
            code(&m.handle(2, root(), &call("ReleaseName", &n))),
            NON_EXISTENT
        );
    }

    #[test]
    fn a_refused_name_change_is_undone() {
        let mut m = master();
        for id in 1..=3 {
            join(&mut m, id);
        }
        let n = "org.example.R";
        let req = |f: u32| call("RequestName", &(n, f));
        let owners = |m: &mut Master| {
            let out = m.handle(3, root(), &call("ListQueuedOwners", &n));
            out[0].msg.body().deserialize::<Vec<String>>().unwrap()
        };
        m.handle(1, root(), &req(ALLOW_REPLACEMENT));
        // 2 replaces 1, but the kernel refuses the move: 1 keeps the name,
        // and nobody is told otherwise.
        let out = m.handle(2, root(), &req(REPLACE_EXISTING));
        assert_eq!(out[0].cmsgs[0].0, SCM_MOVE_ADDR);
        assert!(out[1..].iter().all(|o| o.dependent));
        let r = out[0].on_refused.clone().unwrap();
        assert!(m.refused(&r).is_empty());
        assert_eq!(owners(&mut m), [":1.1"]);
        // 2 and 3 queue; 1 releases; the move to 2 is refused: 3 gets it.
        m.handle(2, root(), &req(0));
        m.handle(3, root(), &req(0));
        let out = m.handle(1, root(), &call("ReleaseName", &n));
        assert_eq!(
            summary(&out),
            vec![
                s("1.2", "signal NameAcquired", &[(SCM_MOVE_ADDR, n)]),
                s("multicast", "signal NameOwnerChanged", &[]),
                s("1.1", "return", &[]),
                s("1.1", "signal NameLost", &[]),
            ]
        );
        // The releaser loses the name whatever happens to the move.
        let fallback = out[0].fallback.as_ref().unwrap();
        assert_eq!(
            fallback.cmsgs,
            vec![(SCM_REVOKE_ADDR, Addr::Name(n.into()))]
        );
        assert!(out[1].dependent && out[3].dependent && !out[2].dependent);
        let repair = m.refused(out[0].on_refused.as_ref().unwrap());
        assert_eq!(
            summary(&repair),
            vec![
                s("1.3", "signal NameAcquired", &[(SCM_MOVE_ADDR, n)]),
                s("multicast", "signal NameOwnerChanged", &[]),
            ]
        );
        let (_, old, new): (String, String, String) = repair[1].msg.body().deserialize().unwrap();
        assert_eq!((old.as_str(), new.as_str()), (":1.1", ":1.3"));
        assert_eq!(owners(&mut m), [":1.3"]);
    }

    #[test]
    fn unknown_interfaces_and_methods_of_the_bus() {
        let mut m = master();
        join(&mut m, 1);
        let err = |out: Vec<Out>| summary(&out)[0].1.clone();
        let on = |iface: &str, member: &str| {
            Message::method_call(PATH, member)
                .destination(BUS_NAME)
                .interface(iface)
                .build(&())
                .unwrap()
                .data()
                .bytes()
                .to_vec()
        };
        assert_eq!(
            err(m.handle(
                1,
                root(),
                &on("org.freedesktop.DBus.Containers1", "GetConnectionInstance")
            )),
            "error org.freedesktop.DBus.Error.UnknownInterface"
        );
        assert_eq!(
            err(m.handle(1, root(), &on("org.freedesktop.DBus.Peer", "Nope"))),
            "error org.freedesktop.DBus.Error.UnknownMethod"
        );
        assert_eq!(
            err(m.handle(1, root(), &on(BUS_NAME, "Nope"))),
            "error org.freedesktop.DBus.Error.UnknownMethod"
        );
    }

    #[test]
    fn refusals_are_clean_errors() {
        let mut m = master();
        join(&mut m, 1);
        let err = |out: Vec<Out>| summary(&out)[0].1.clone();
        assert_eq!(
            err(m.handle(1, root(), &call("RequestName", &("org.other.X", 0u32)))),
            "error org.freedesktop.DBus.Error.AccessDenied"
        );
        assert_eq!(
            err(m.handle(1, root(), &call("RequestName", &(BUS_NAME, 0u32)))),
            "error org.freedesktop.DBus.Error.InvalidArgs"
        );
        assert_eq!(
            err(m.handle(1, root(), &call("RequestName", &(":1.9", 0u32)))),
            "error org.freedesktop.DBus.Error.InvalidArgs"
        );
        assert_eq!(
            err(m.handle(1, root(), &call("RequestName", &7u32))),
            "error org.freedesktop.DBus.Error.InvalidArgs"
        );
        assert_eq!(
            err(m.handle(1, root(), &call("Frobnicate", &()))),
            "error org.freedesktop.DBus.Error.UnknownMethod"
        );
        assert_eq!(
            err(m.handle(1, root(), &call("GetNameOwner", &"org.example.None"))),
            "error org.freedesktop.DBus.Error.NameHasNoOwner"
        );
        assert_eq!(
            err(m.handle(1, root(), &call("AddMatch", &"type='bogus'"))),
            "error org.freedesktop.DBus.Error.MatchRuleInvalid"
        );
        // Eavesdropping and monitoring cannot be had (dbus-monitor's
        // two ways), for root neither.
        assert_eq!(
            err(m.handle(
                1,
                root(),
                &call("AddMatch", &"type='method_call', eavesdrop='true'")
            )),
            "error org.freedesktop.DBus.Error.AccessDenied"
        );
        let monitor = Message::method_call("/org/freedesktop/DBus", "BecomeMonitor")
            .destination(BUS_NAME)
            .interface("org.freedesktop.DBus.Monitoring")
            .build(&(Vec::<String>::new(), 0u32))
            .unwrap();
        assert_eq!(
            err(m.handle(1, root(), monitor.data().bytes())),
            "error org.freedesktop.DBus.Error.AccessDenied"
        );
        assert_eq!(
            err(m.handle(1, root(), &call("RemoveMatch", &"type='signal'"))),
            "error org.freedesktop.DBus.Error.MatchRuleNotFound"
        );
        assert_eq!(
            err(m.handle(
                1,
                root(),
                &call("StartServiceByName", &("org.example.None", 0u32))
            )),
            "error org.freedesktop.DBus.Error.NotSupported"
        );
        // Malformed datagrams: nothing to answer, logged.
        m.log.clear();
        assert!(m.handle(1, root(), b"hello").is_empty());
        assert_eq!(
            m.log,
            [
                "dropped a malformed message from :1.1: malformed D-Bus message: \
              shorter than the 16-byte fixed header"
            ]
        );
    }

    #[test]
    fn matches_become_grants() {
        let mut m = master();
        join(&mut m, 1);
        let rule = "type='signal',interface='org.example.Echo',arg0='x'";
        let out = m.handle(1, root(), &call("AddMatch", &rule));
        let mask = dbloom::of_rule(&MatchRule::try_from(rule).unwrap());
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].cmsgs,
            vec![(SCM_MULTICAST_MATCH, Addr::Multicast(mask.clone()))]
        );
        let out = m.handle(1, root(), &call("RemoveMatch", &rule));
        assert_eq!(
            out[0].cmsgs,
            vec![(SCM_MULTICAST_UNMATCH, Addr::Multicast(mask))]
        );
    }
}
