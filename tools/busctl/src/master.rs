// SPDX-License-Identifier: GPL-2.0

//! The reference bus master: admission, names, multicast grants, announcements.
//!
//! It admits endpoints by their credentials, gives each a unique name,
//! arbitrates well-known names with D-Bus-like queueing, hands out
//! multicast grants, and announces name changes.
//!
//! [`Master`] is the policy state machine, free of sockets so it can be
//! tested on its own; [`serve`] runs it on a bound AF_BUS socket.
//!
//! Requests are afbusctl calls (see `wire.rs`) to the master's address with
//! the pair `member=<Method>` and one argument per body line:
//!
//! | method        | body                     | reply body, control messages |
//! |---------------|--------------------------|------------------------------|
//! | `Hello`       | empty                    | the unique name `1.N`; `SCM_OWNED_ADDR` of it |
//! | `RequestName` | name, then flags `allow-replacement,replace-existing,do-not-queue` | `primary-owner` (+ `SCM_OWNED_ADDR`), `in-queue`, `exists`, `already-owner` |
//! | `ReleaseName` | name                     | `released` (+ `SCM_REVOKE_ADDR` if it owned it), `not-owner` |
//! | `AddMatch`    | `KEY=VALUE` lines (none: monitor) | `ok` + `SCM_MULTICAST_MATCH` of their bloom |
//! | `RemoveMatch` | `KEY=VALUE` lines        | `ok` + `SCM_MULTICAST_UNMATCH` |
//! | `RequestSend` | `KEY=VALUE` lines        | `ok` + `SCM_MULTICAST_SEND` |
//! | `ListNames`   | empty                    | `NAME OWNER` lines |
//! | `GetStatus`   | empty                    | `KEY VALUE` lines: `bus`, `name`, `policy`, `version`, `uptime` (s), `require-send-grants`, `endpoints`, `names`, `queued` |
//!
//! Refusals are error messages whose body is `org.afbus.Error.<Name>: why`.
//! Unsolicited: `NameAcquired` / `NameLost` signals (unicast, carrying the
//! grant or the revocation) and the multicast `NameOwnerChanged` signal
//! with pairs `interface=org.afbus.Bus member=NameOwnerChanged name=NAME`
//! and body `NAME\nOLD\nNEW` (empty for none).

use std::collections::{BTreeMap, VecDeque};
use std::mem::size_of;
use std::time::Instant;

use af_bus_core::addr::BusAddr;
use af_bus_core::notify::NOTIFICATION_HDR_LEN;
use af_bus_core::uapi::{self, SOCKADDR_BUS_SIZE};

use crate::addr::{check_well_known, Addr, BusPath};
use crate::bloom::{Bloom, Pair};
use crate::error::{sys, Result};
use crate::policy::Policy;
use crate::sys::{
    read_plain, BusSocket, Creds, Plain, Received, BUS_NOTIFY_GONE, BUS_NOTIFY_OVERFLOW,
    BUS_POLICY_MCAST_SEND_GRANTED, SCM_MULTICAST_MATCH, SCM_MULTICAST_SEND, SCM_MULTICAST_UNMATCH,
    SCM_OWNED_ADDR, SCM_REVOKE_ADDR,
};
use crate::wire::{Kind, Message, FLAG_NO_REPLY};

/// Something the master sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    pub dst: Addr,
    pub msg: Message,
    pub cmsgs: Vec<(libc::c_int, Addr)>,
}

#[derive(Debug)]
struct Endpoint {
    uid: u32,
    pid: i32,
    unique: String,
}

#[derive(Debug)]
struct NameState {
    owner: u64,
    allow_replacement: bool,
    /// Waiting endpoints and whether each allows replacement.
    queue: VecDeque<(u64, bool)>,
}

#[derive(Default)]
struct Flags {
    allow_replacement: bool,
    replace_existing: bool,
    do_not_queue: bool,
}

fn parse_flags(s: &str) -> std::result::Result<Flags, String> {
    let mut f = Flags::default();
    for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match w {
            "allow-replacement" => f.allow_replacement = true,
            "replace-existing" => f.replace_existing = true,
            "do-not-queue" => f.do_not_queue = true,
            _ => return Err(format!("unknown flag \"{w}\"")),
        }
    }
    Ok(f)
}

fn pair(k: &str, v: &str) -> Pair {
    Pair {
        key: k.into(),
        value: v.into(),
    }
}

/// A request being answered.
struct Request<'a> {
    /// The sender, as the kernel named it.
    src: &'a str,
    call: &'a Message,
    /// The body's lines.
    args: Vec<String>,
}

impl Request<'_> {
    /// Argument `i`, empty if missing.
    fn arg(&self, i: usize) -> &str {
        self.args.get(i).map_or("", String::as_str)
    }
}

/// The joined endpoint a request came from.
struct Caller {
    id: u64,
    uid: u32,
    unique: String,
}

/// The multicast grants endpoints ask for.
#[derive(Clone, Copy)]
enum McastGrant {
    /// `AddMatch`.
    Match,
    /// `RemoveMatch`.
    Unmatch,
    /// `RequestSend`.
    Send,
}

/// The master's state.
pub struct Master {
    policy: Policy,
    endpoints: BTreeMap<u64, Endpoint>,
    names: BTreeMap<String, NameState>,
    serial: u32,
    started: Instant,
    /// What `GetStatus` says first: (key, value), set by [`serve`].
    pub about: Vec<(String, String)>,
    /// What happened, one line per event, for the operator.
    pub log: Vec<String>,
}

impl Master {
    pub fn new(policy: Policy) -> Master {
        Master {
            policy,
            endpoints: BTreeMap::new(),
            names: BTreeMap::new(),
            serial: 0,
            started: Instant::now(),
            about: Vec::new(),
            log: Vec::new(),
        }
    }

    fn next_serial(&mut self) -> u32 {
        self.serial = self.serial.wrapping_add(1).max(1);
        self.serial
    }

    /// The endpoint a request came from: its handle `:N`, its unique name
    /// `1.N`, or a well-known name it owns.
    fn endpoint_of(&self, src: &str) -> Option<u64> {
        if let Some(n) = src.strip_prefix(':') {
            return n.parse().ok();
        }
        if let Some(n) = src.strip_prefix("1.") {
            return n.parse().ok().filter(|n| self.endpoints.contains_key(n));
        }
        self.names.get(src).map(|n| n.owner)
    }

    fn unique(&self, id: u64) -> String {
        self.endpoints
            .get(&id)
            .map(|e| e.unique.clone())
            .unwrap_or_default()
    }

    fn reply(
        &mut self,
        to: &str,
        call: &Message,
        body: &str,
        cmsgs: Vec<(libc::c_int, Addr)>,
    ) -> Out {
        let serial = self.next_serial();
        Out {
            dst: Addr::Name(to.into()),
            msg: Message::reply_to(call, Kind::Reply, serial, body.as_bytes()),
            cmsgs,
        }
    }

    fn error(&mut self, to: &str, call: &Message, name: &str, why: &str) -> Out {
        let serial = self.next_serial();
        let body = format!("org.afbus.Error.{name}: {why}");
        self.log.push(format!("refused {to}: {body}"));
        Out {
            dst: Addr::Name(to.into()),
            msg: Message::reply_to(call, Kind::Error, serial, body.as_bytes()),
            cmsgs: Vec::new(),
        }
    }

    fn signal_to(&mut self, id: u64, member: &str, name: &str, cmsg: (libc::c_int, Addr)) -> Out {
        let serial = self.next_serial();
        let mut msg = Message::new(
            Kind::Signal,
            serial,
            vec![pair("interface", "org.afbus.Bus"), pair("member", member)],
            name.as_bytes(),
        );
        msg.flags = FLAG_NO_REPLY;
        Out {
            dst: Addr::Name(self.unique(id)),
            msg,
            cmsgs: vec![cmsg],
        }
    }

    fn owner_changed(&mut self, name: &str, old: &str, new: &str) -> Out {
        self.log
            .push(format!("NameOwnerChanged {name}: \"{old}\" -> \"{new}\""));
        let serial = self.next_serial();
        let pairs = vec![
            pair("interface", "org.afbus.Bus"),
            pair("member", "NameOwnerChanged"),
            pair("name", name),
        ];
        let bloom = Bloom::of_pairs(&pairs);
        let mut msg = Message::new(
            Kind::Signal,
            serial,
            pairs,
            format!("{name}\n{old}\n{new}").as_bytes(),
        );
        msg.flags = FLAG_NO_REPLY;
        Out {
            dst: Addr::Multicast(bloom),
            msg,
            cmsgs: Vec::new(),
        }
    }

    /// `name`'s owner is gone or gave it up: the next in its queue that
    /// is still on the bus gets it, or it is free.
    fn pass_on(&mut self, name: &str, old: u64, out: &mut Vec<Out>) {
        let old_unique = self.unique(old);
        let next = loop {
            let Some(st) = self.names.get_mut(name) else {
                return;
            };
            match st.queue.pop_front() {
                Some((id, allow)) if self.endpoints.contains_key(&id) => {
                    st.owner = id;
                    st.allow_replacement = allow;
                    break Some(id);
                }
                Some(_) => continue,
                None => break None,
            }
        };
        match next {
            Some(id) => {
                let new_unique = self.unique(id);
                self.log
                    .push(format!("{name} passes to {new_unique} (next in queue)"));
                let s = self.signal_to(
                    id,
                    "NameAcquired",
                    name,
                    (SCM_OWNED_ADDR, Addr::Name(name.into())),
                );
                out.push(s);
                let c = self.owner_changed(name, &old_unique, &new_unique);
                out.push(c);
            }
            None => {
                self.names.remove(name);
                let c = self.owner_changed(name, &old_unique, "");
                out.push(c);
            }
        }
    }

    /// A call from `src` (as the kernel named it), with the sender's
    /// credentials: one method per member.
    pub fn handle_call(&mut self, src: &str, creds: Option<Creds>, call: &Message) -> Vec<Out> {
        let req = Request {
            src,
            call,
            args: call.body_text().lines().map(str::to_string).collect(),
        };
        let member = call.get("member").unwrap_or("");
        if member == "Hello" {
            return self.hello(&req, creds);
        }
        let Some(id) = self
            .endpoint_of(src)
            .filter(|id| self.endpoints.contains_key(id))
        else {
            return vec![self.error(src, call, "NotJoined", "call Hello first")];
        };
        let who = Caller {
            id,
            uid: self.endpoints[&id].uid,
            unique: self.unique(id),
        };
        match member {
            "RequestName" => self.request_name(&req, &who),
            "ReleaseName" => self.release_name(&req, &who),
            "AddMatch" => self.multicast_grant(&req, &who, McastGrant::Match),
            "RemoveMatch" => self.multicast_grant(&req, &who, McastGrant::Unmatch),
            "RequestSend" => self.multicast_grant(&req, &who, McastGrant::Send),
            "ListNames" => self.list_names(&req),
            "GetStatus" => self.status(&req),
            _ => {
                let why = format!("no method \"{member}\"");
                vec![self.error(src, call, "UnknownMethod", &why)]
            }
        }
    }

    /// `Hello`: admits a pending endpoint, by its credentials, under the
    /// unique name `1.N`.
    fn hello(&mut self, req: &Request<'_>, creds: Option<Creds>) -> Vec<Out> {
        let (src, call) = (req.src, req.call);
        let id = self.endpoint_of(src).filter(|_| src.starts_with(':'));
        let Some(id) = id.filter(|id| !self.endpoints.contains_key(id)) else {
            let why = "this endpoint has joined already";
            return vec![self.error(src, call, "AlreadyJoined", why)];
        };
        let Some(c) = creds else {
            let why = "no credentials came with the request";
            return vec![self.error(src, call, "AccessDenied", why)];
        };
        if !self.policy.may_join(c.uid) {
            let why = format!("uid {} may not join this bus", c.uid);
            return vec![self.error(src, call, "AccessDenied", &why)];
        }
        let unique = format!("1.{id}");
        self.log.push(format!(
            "{src} (pid {}, uid {}) joined as {unique}",
            c.pid, c.uid
        ));
        self.endpoints.insert(
            id,
            Endpoint {
                uid: c.uid,
                pid: c.pid,
                unique: unique.clone(),
            },
        );
        let grant = vec![(SCM_OWNED_ADDR, Addr::Name(unique.clone()))];
        let mut r = self.reply(src, call, &unique, grant);
        r.msg.pairs.push(pair("handle", src));
        vec![r]
    }

    /// `RequestName`: D-Bus's rules, with replacement and queueing.
    fn request_name(&mut self, req: &Request<'_>, who: &Caller) -> Vec<Out> {
        let (src, call) = (req.src, req.call);
        let (name, id, unique) = (req.arg(0), who.id, &who.unique);
        if let Err(e) = check_well_known(name) {
            return vec![self.error(src, call, "InvalidArgs", &e)];
        }
        let flags = match parse_flags(req.arg(1)) {
            Ok(f) => f,
            Err(e) => return vec![self.error(src, call, "InvalidArgs", &e)],
        };
        if !self.policy.may_own(who.uid, name) {
            let why = format!("uid {} may not own {name}", who.uid);
            return vec![self.error(src, call, "AccessDenied", &why)];
        }
        let grant = vec![(SCM_OWNED_ADDR, Addr::Name(name.into()))];
        let Some(st) = self.names.get_mut(name) else {
            self.names.insert(
                name.into(),
                NameState {
                    owner: id,
                    allow_replacement: flags.allow_replacement,
                    queue: VecDeque::new(),
                },
            );
            self.log.push(format!("{unique} owns {name}"));
            let r = self.reply(src, call, "primary-owner", grant);
            let c = self.owner_changed(name, "", unique);
            return vec![r, c];
        };
        if st.owner == id {
            st.allow_replacement = flags.allow_replacement;
            return vec![self.reply(src, call, "already-owner", Vec::new())];
        }
        if flags.replace_existing && st.allow_replacement {
            let old = st.owner;
            st.owner = id;
            st.allow_replacement = flags.allow_replacement;
            st.queue.retain(|(q, _)| *q != id);
            let old_unique = self.unique(old);
            self.log
                .push(format!("{unique} replaces {old_unique} as owner of {name}"));
            // The old owner loses the name before the new one gets it:
            // the kernel refuses two owners.
            let revoke = (SCM_REVOKE_ADDR, Addr::Name(name.into()));
            let lost = self.signal_to(old, "NameLost", name, revoke);
            let r = self.reply(src, call, "primary-owner", grant);
            let c = self.owner_changed(name, &old_unique, unique);
            return vec![lost, r, c];
        }
        if flags.do_not_queue {
            return vec![self.reply(src, call, "exists", Vec::new())];
        }
        if !st.queue.iter().any(|(q, _)| *q == id) {
            st.queue.push_back((id, flags.allow_replacement));
        }
        self.log.push(format!("{unique} queues for {name}"));
        vec![self.reply(src, call, "in-queue", Vec::new())]
    }

    /// `ReleaseName`: gives a name up (or leaves its queue).
    fn release_name(&mut self, req: &Request<'_>, who: &Caller) -> Vec<Out> {
        let (src, call) = (req.src, req.call);
        let (name, id) = (req.arg(0), who.id);
        match self.names.get_mut(name) {
            Some(st) if st.owner == id => {
                self.log.push(format!("{} releases {name}", who.unique));
                let revoke = vec![(SCM_REVOKE_ADDR, Addr::Name(name.into()))];
                let mut out = vec![self.reply(src, call, "released", revoke)];
                self.pass_on(name, id, &mut out);
                out
            }
            Some(st) if st.queue.iter().any(|(q, _)| *q == id) => {
                st.queue.retain(|(q, _)| *q != id);
                vec![self.reply(src, call, "released", Vec::new())]
            }
            _ => vec![self.reply(src, call, "not-owner", Vec::new())],
        }
    }

    /// `AddMatch`, `RemoveMatch`, `RequestSend`: a grant of the bitmap of
    /// the `KEY=VALUE` arguments, as the policy allows.
    fn multicast_grant(&mut self, req: &Request<'_>, who: &Caller, g: McastGrant) -> Vec<Out> {
        let (src, call) = (req.src, req.call);
        let pairs: std::result::Result<Vec<Pair>, String> =
            req.args.iter().map(|a| a.parse()).collect();
        let pairs = match pairs {
            Ok(p) => p,
            Err(e) => return vec![self.error(src, call, "InvalidArgs", &e)],
        };
        let shown: Vec<String> = pairs.iter().map(|p| p.to_string()).collect();
        let shown = if shown.is_empty() {
            "everything".to_string()
        } else {
            shown.join(" ")
        };
        let (allowed, ty, what) = match g {
            McastGrant::Match => (
                self.policy.may_match(who.uid, &pairs),
                SCM_MULTICAST_MATCH,
                "match",
            ),
            McastGrant::Unmatch => (true, SCM_MULTICAST_UNMATCH, "unmatch"),
            McastGrant::Send => (
                self.policy.may_send(who.uid, &pairs),
                SCM_MULTICAST_SEND,
                "send",
            ),
        };
        if !allowed {
            let why = format!("uid {} may not {what} {shown}", who.uid);
            return vec![self.error(src, call, "AccessDenied", &why)];
        }
        let bloom = Bloom::of_pairs(&pairs);
        self.log.push(format!(
            "{} may {what} {shown} (bits {})",
            who.unique,
            bloom.short()
        ));
        vec![self.reply(src, call, "ok", vec![(ty, Addr::Multicast(bloom))])]
    }

    /// `ListNames`: `NAME OWNER` lines, unique names first.
    fn list_names(&mut self, req: &Request<'_>) -> Vec<Out> {
        let mut lines: Vec<String> = self
            .endpoints
            .values()
            .map(|e| format!("{} {}", e.unique, e.unique))
            .collect();
        for (n, st) in &self.names {
            lines.push(format!("{n} {}", self.unique(st.owner)));
        }
        vec![self.reply(req.src, req.call, &lines.join("\n"), Vec::new())]
    }

    /// `GetStatus`: `KEY VALUE` lines about the master and its bus.
    fn status(&mut self, req: &Request<'_>) -> Vec<Out> {
        let queued: usize = self.names.values().map(|st| st.queue.len()).sum();
        let mut lines: Vec<String> = self.about.iter().map(|(k, v)| format!("{k} {v}")).collect();
        lines.extend([
            format!("version {}", env!("CARGO_PKG_VERSION")),
            format!("uptime {}", self.started.elapsed().as_secs()),
            format!("require-send-grants {}", self.policy.require_send_grants),
            format!("endpoints {}", self.endpoints.len()),
            format!("names {}", self.names.len()),
            format!("queued {queued}"),
        ]);
        vec![self.reply(req.src, req.call, &lines.join("\n"), Vec::new())]
    }

    /// The kernel's `BUS_NOTIFY_GONE`: `addrs` are the handle, then what
    /// the endpoint owned (all released by the kernel already).
    pub fn handle_gone(&mut self, addrs: &[String]) -> Vec<Out> {
        let mut out = Vec::new();
        let Some(id) = addrs
            .first()
            .and_then(|h| h.strip_prefix(':'))
            .and_then(|n| n.parse().ok())
        else {
            return out;
        };
        let Some(ep) = self.endpoints.get(&id) else {
            self.log.push(format!("{} left before joining", addrs[0]));
            return out;
        };
        self.log.push(format!(
            "{} ({}, pid {}) is gone; the kernel released {}",
            addrs[0],
            ep.unique,
            ep.pid,
            addrs[1..].join(" ")
        ));
        for st in self.names.values_mut() {
            st.queue.retain(|(q, _)| *q != id);
        }
        let owned: Vec<String> = self
            .names
            .iter()
            .filter(|(_, st)| st.owner == id)
            .map(|(n, _)| n.clone())
            .collect();
        // The endpoint stays known until its names are passed on, so that
        // NameOwnerChanged can name it.
        for n in owned {
            self.pass_on(&n, id, &mut out);
        }
        self.endpoints.remove(&id);
        out
    }
}

/// `struct bus_notification`, as bindgen makes it of bus.h.
type NotificationHdr = uapi::bus_h::bus_notification;

// SAFETY: bus.h's `struct bus_notification`: `#[repr(C)]`, two `__u32`s
// then a `__u64`, no padding (its size is the sum of theirs).
unsafe impl Plain for NotificationHdr {}

const _: () = assert!(size_of::<NotificationHdr>() == 2 * size_of::<u32>() + size_of::<u64>());

/// A kernel notification to the master.
#[derive(Debug, PartialEq, Eq)]
enum Notification {
    /// An endpoint is gone: its handle, then what it owned.
    Gone(Vec<BusAddr>),
    /// This many notifications were dropped.
    Overflow(u64),
}

/// Parses a notification's payload; `None` for what is not one.  What
/// follows the header starts `hdr_len` bytes in, so that a kernel with a
/// longer header is still understood.
fn parse_notification(p: &[u8]) -> Option<Notification> {
    let h: NotificationHdr = read_plain(p)?;
    match h.type_ {
        BUS_NOTIFY_GONE => {
            let hdr_len = usize::try_from(h.hdr_len).ok()?;
            let count = usize::try_from(h.count).ok()?;
            if hdr_len < NOTIFICATION_HDR_LEN {
                return None;
            }
            let addrs: Vec<BusAddr> = p
                .get(hdr_len..)?
                .chunks_exact(SOCKADDR_BUS_SIZE)
                .take(count)
                .map(|a| BusAddr::parse(a).ok())
                .collect::<Option<_>>()?;
            (addrs.len() == count).then_some(Notification::Gone(addrs))
        }
        BUS_NOTIFY_OVERFLOW => Some(Notification::Overflow(h.count)),
        _ => None,
    }
}

fn log(line: &str) {
    println!("master: {line}");
}

/// Binds the bus as its master, owning `name`, with the kernel policy
/// the policy file asks for.
fn bind(bus: &BusPath, name: &str, policy: &Policy) -> Result<BusSocket> {
    let sock = BusSocket::new(bus).map_err(sys("socket(AF_BUS)"))?;
    let me = Addr::parse(name).map_err(crate::error::Error::Usage)?;
    sock.bind(&me)
        .map_err(sys(format!("bind {} as {name}", bus.display())))?;
    sock.set_passcred()
        .map_err(sys("setsockopt(SO_PASSCRED)"))?;
    if policy.require_send_grants {
        sock.set_policy(BUS_POLICY_MCAST_SEND_GRANTED)
            .map_err(sys("setsockopt(BUS_POLICY)"))?;
    }
    Ok(sock)
}

/// What the master does about one received datagram.
fn dispatch(m: &mut Master, r: &Received) -> Vec<Out> {
    match Addr::from_sockaddr(&r.src) {
        Addr::Kernel => match parse_notification(&r.payload) {
            Some(Notification::Gone(addrs)) => {
                let names: Vec<String> = addrs
                    .iter()
                    .map(|a| Addr::from_bus_addr(a).display())
                    .collect();
                m.handle_gone(&names)
            }
            Some(Notification::Overflow(n)) => {
                m.log.push(format!(
                    "the kernel dropped {n} notification(s): queue full"
                ));
                Vec::new()
            }
            None => {
                m.log.push("an unknown notification from the kernel".into());
                Vec::new()
            }
        },
        Addr::Name(s) => match Message::decode(&r.payload) {
            Ok(msg) if msg.kind == Kind::Call => m.handle_call(&s, r.creds, &msg),
            Ok(msg) => {
                m.log
                    .push(format!("ignored a {} from {s}", msg.kind.name()));
                Vec::new()
            }
            Err(e) => {
                m.log.push(format!("ignored a message from {s}: {e}"));
                Vec::new()
            }
        },
        Addr::Multicast(_) => Vec::new(),
    }
}

/// Sends `o`, never blocking on a slow endpoint: the master serves
/// everybody.  A reply whose grant the kernel refused becomes an error.
fn send_out(sock: &BusSocket, bus: &BusPath, o: &Out) {
    let cmsgs: Vec<_> = o
        .cmsgs
        .iter()
        .map(|(t, a)| (*t, a.to_sockaddr(bus)))
        .collect();
    let dst = o.dst.to_sockaddr(bus);
    let Err(e) = sock.send(&dst, &o.msg.encode(), &cmsgs, true) else {
        return;
    };
    let err = sys(format!("send to {}", o.dst.display()))(e);
    log(&err.to_string());
    if o.msg.kind == Kind::Reply && !o.cmsgs.is_empty() {
        // The kernel refused the grant (a limit): say so.
        let mut e = o.msg.clone();
        e.kind = Kind::Error;
        e.body = format!("org.afbus.Error.LimitsExceeded: {err}").into_bytes();
        let _ = sock.send(&dst, &e.encode(), &[], true);
    }
}

/// Runs the master of `bus`, owning `name`, until killed.
pub fn serve(bus: &BusPath, name: &str, policy: Policy, policy_file: &str) -> Result<()> {
    let sock = bind(bus, name, &policy)?;
    log(&format!(
        "serving {} as {name} (policy {policy_file}{})",
        bus.display(),
        if policy.require_send_grants {
            ", multicast needs send grants"
        } else {
            ""
        }
    ));
    let mut m = Master::new(policy);
    m.about = vec![
        ("bus".into(), bus.display()),
        ("name".into(), name.into()),
        ("policy".into(), policy_file.into()),
    ];
    loop {
        let Some(r) = sock.recv(-1).map_err(sys("receive"))? else {
            continue;
        };
        let outs = dispatch(&mut m, &r);
        for line in m.log.drain(..) {
            log(&line);
        }
        for o in &outs {
            send_out(&sock, bus, o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use af_bus_core::notify;

    const ROOT: Option<Creds> = Some(Creds {
        pid: 10,
        uid: 0,
        gid: 0,
    });
    const USER: Option<Creds> = Some(Creds {
        pid: 11,
        uid: 1000,
        gid: 1000,
    });

    fn master() -> Master {
        Master::new(Policy::parse(include_str!("../demo-policy.toml")).unwrap())
    }

    fn call(member: &str, body: &str) -> Message {
        Message::new(Kind::Call, 5, vec![pair("member", member)], body.as_bytes())
    }

    fn hello(m: &mut Master, h: u64, c: Option<Creds>) -> Vec<Out> {
        m.handle_call(&format!(":{h}"), c, &call("Hello", ""))
    }

    fn body(o: &Out) -> String {
        o.msg.body_text()
    }

    #[test]
    fn join_grants_a_unique_name() {
        let mut m = master();
        let o = hello(&mut m, 3, USER);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].dst, Addr::Name(":3".into()));
        assert_eq!(o[0].msg.kind, Kind::Reply);
        assert_eq!(o[0].msg.reply_serial, 5);
        assert_eq!(body(&o[0]), "1.3");
        assert_eq!(o[0].cmsgs, vec![(SCM_OWNED_ADDR, Addr::Name("1.3".into()))]);
        // Twice: refused.
        assert_eq!(hello(&mut m, 3, USER)[0].msg.kind, Kind::Error);
        // Without credentials: refused.
        assert!(body(&hello(&mut m, 4, None)[0]).contains("AccessDenied"));
    }

    #[test]
    fn policy_refusals() {
        let mut m = Master::new(Policy::parse("[join]\nuids = [0]").unwrap());
        assert!(body(&hello(&mut m, 1, USER)[0]).contains("uid 1000 may not join"));
        let mut m = master();
        hello(&mut m, 1, USER);
        let o = m.handle_call("1.1", USER, &call("RequestName", "org.example.Echo"));
        assert!(body(&o[0]).starts_with("org.afbus.Error.AccessDenied: uid 1000 may not own"));
        let o = m.handle_call("1.1", USER, &call("AddMatch", ""));
        assert!(body(&o[0]).contains("may not match everything"));
        let o = m.handle_call("1.1", USER, &call("RequestSend", "member=Changed"));
        assert_eq!(o[0].msg.kind, Kind::Error);
        let o = m.handle_call(":9", USER, &call("RequestName", "org.example.Echo"));
        assert!(body(&o[0]).contains("NotJoined"));
        let o = m.handle_call("1.1", USER, &call("Frobnicate", ""));
        assert!(body(&o[0]).contains("UnknownMethod"));
        let o = m.handle_call("1.1", USER, &call("AddMatch", "nonsense"));
        assert!(body(&o[0]).contains("InvalidArgs"));
    }

    #[test]
    fn names_queue_and_pass_on() {
        let mut m = master();
        hello(&mut m, 1, ROOT);
        hello(&mut m, 2, ROOT);
        let o = m.handle_call("1.1", ROOT, &call("RequestName", "org.example.Echo"));
        assert_eq!(body(&o[0]), "primary-owner");
        assert_eq!(
            o[0].cmsgs[0],
            (SCM_OWNED_ADDR, Addr::Name("org.example.Echo".into()))
        );
        assert_eq!(body(&o[1]), "org.example.Echo\n\n1.1");
        assert!(matches!(o[1].dst, Addr::Multicast(_)));
        let o = m.handle_call("1.2", ROOT, &call("RequestName", "org.example.Echo"));
        assert_eq!(body(&o[0]), "in-queue");
        let o = m.handle_call(
            "1.2",
            ROOT,
            &call("RequestName", "org.example.Echo\ndo-not-queue"),
        );
        assert_eq!(body(&o[0]), "exists");
        // The owner calls from its well-known name too.
        let o = m.handle_call(
            "org.example.Echo",
            ROOT,
            &call("RequestName", "org.example.Echo"),
        );
        assert_eq!(body(&o[0]), "already-owner");
        // The owner dies: 1.2 gets the name, and everybody hears of it.
        let o = m.handle_gone(&[":1".into(), "1.1".into(), "org.example.Echo".into()]);
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].dst, Addr::Name("1.2".into()));
        assert_eq!(o[0].msg.get("member"), Some("NameAcquired"));
        assert_eq!(
            o[0].cmsgs[0],
            (SCM_OWNED_ADDR, Addr::Name("org.example.Echo".into()))
        );
        assert_eq!(body(&o[1]), "org.example.Echo\n1.1\n1.2");
        // 1.2 releases it: revoked in the reply, then free.
        let o = m.handle_call("1.2", ROOT, &call("ReleaseName", "org.example.Echo"));
        assert_eq!(body(&o[0]), "released");
        assert_eq!(
            o[0].cmsgs[0],
            (SCM_REVOKE_ADDR, Addr::Name("org.example.Echo".into()))
        );
        assert_eq!(body(&o[1]), "org.example.Echo\n1.2\n");
        let o = m.handle_call("1.2", ROOT, &call("ReleaseName", "org.example.Echo"));
        assert_eq!(body(&o[0]), "not-owner");
    }

    #[test]
    fn replacement_revokes_first() {
        let mut m = master();
        hello(&mut m, 1, ROOT);
        hello(&mut m, 2, ROOT);
        m.handle_call(
            "1.1",
            ROOT,
            &call("RequestName", "org.example.Echo\nallow-replacement"),
        );
        let o = m.handle_call(
            "1.2",
            ROOT,
            &call("RequestName", "org.example.Echo\nreplace-existing"),
        );
        assert_eq!(o[0].dst, Addr::Name("1.1".into()));
        assert_eq!(o[0].msg.get("member"), Some("NameLost"));
        assert_eq!(o[0].cmsgs[0].0, SCM_REVOKE_ADDR);
        assert_eq!(body(&o[1]), "primary-owner");
        assert_eq!(o[1].cmsgs[0].0, SCM_OWNED_ADDR);
        assert_eq!(body(&o[2]), "org.example.Echo\n1.1\n1.2");
        // Without allow-replacement the owner keeps it.
        let o = m.handle_call(
            "1.1",
            ROOT,
            &call("RequestName", "org.example.Echo\nreplace-existing"),
        );
        assert_eq!(body(&o[0]), "in-queue");
    }

    #[test]
    fn grants_carry_the_bloom() {
        let mut m = master();
        hello(&mut m, 1, USER);
        let o = m.handle_call("1.1", USER, &call("AddMatch", "member=Changed"));
        let want = Bloom::of_pairs(&["member=Changed".parse().unwrap()]);
        assert_eq!(
            o[0].cmsgs,
            vec![(SCM_MULTICAST_MATCH, Addr::Multicast(want.clone()))]
        );
        let o = m.handle_call("1.1", USER, &call("RemoveMatch", "member=Changed"));
        assert_eq!(
            o[0].cmsgs,
            vec![(SCM_MULTICAST_UNMATCH, Addr::Multicast(want))]
        );
        hello(&mut m, 2, ROOT);
        let o = m.handle_call(
            "1.2",
            ROOT,
            &call("RequestSend", "interface=org.example.Echo\nmember=Changed"),
        );
        assert_eq!(o[0].cmsgs[0].0, SCM_MULTICAST_SEND);
        let o = m.handle_call("1.2", ROOT, &call("AddMatch", ""));
        assert_eq!(
            o[0].cmsgs,
            vec![(SCM_MULTICAST_MATCH, Addr::Multicast(Bloom::default()))]
        );
    }

    #[test]
    fn gone_before_joining_and_queued() {
        let mut m = master();
        assert!(m.handle_gone(&[":7".into()]).is_empty());
        hello(&mut m, 1, ROOT);
        hello(&mut m, 2, ROOT);
        m.handle_call("1.1", ROOT, &call("RequestName", "org.example.A"));
        m.handle_call("1.2", ROOT, &call("RequestName", "org.example.A"));
        // The queued one leaves first: the owner's death frees the name.
        assert!(m.handle_gone(&[":2".into(), "1.2".into()]).is_empty());
        let o = m.handle_gone(&[":1".into(), "1.1".into(), "org.example.A".into()]);
        assert_eq!(o.len(), 1);
        assert_eq!(body(&o[0]), "org.example.A\n1.1\n");
    }

    #[test]
    fn notification_layout() {
        // What the module writes (af_bus_core::notify) is what the master reads.
        let bus = BusPath::parse("@b").unwrap();
        let addrs = [
            Addr::Name(":4".into()).to_bus_addr(&bus),
            Addr::Name("org.example.Echo".into()).to_bus_addr(&bus),
        ];
        let mut p = vec![0u8; notify::gone_len(addrs.len())];
        notify::write_gone(&mut p, &addrs.map(|a| a.encode()));
        assert_eq!(
            parse_notification(&p),
            Some(Notification::Gone(addrs.to_vec()))
        );
        assert!(parse_notification(&p[..p.len() - 1]).is_none());
        assert!(parse_notification(&p[..20]).is_none());
        assert_eq!(
            parse_notification(&notify::overflow(3)),
            Some(Notification::Overflow(3))
        );
        let mut unknown = notify::overflow(3);
        unknown[0] = 0x7f;
        assert!(parse_notification(&unknown).is_none());
    }

    #[test]
    fn status_and_names() {
        let mut m = master();
        m.about = vec![("bus".into(), "@b".into())];
        hello(&mut m, 1, ROOT);
        hello(&mut m, 2, ROOT);
        m.handle_call("1.1", ROOT, &call("RequestName", "org.example.A"));
        m.handle_call("1.2", ROOT, &call("RequestName", "org.example.A"));
        let o = m.handle_call("1.2", ROOT, &call("GetStatus", ""));
        let b = body(&o[0]);
        assert!(b.starts_with("bus @b\nversion "), "{b}");
        for line in [
            "endpoints 2",
            "names 1",
            "queued 1",
            "require-send-grants true",
        ] {
            assert!(b.lines().any(|l| l == line), "{line}: {b}");
        }
        let o = m.handle_call("1.2", ROOT, &call("ListNames", ""));
        assert_eq!(body(&o[0]), "1.1 1.1\n1.2 1.2\norg.example.A 1.1");
    }
}
