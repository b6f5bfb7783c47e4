// SPDX-License-Identifier: GPL-2.0

//! A bus endpoint as afbusctl's client commands use it.
//!
//! It joins through the master, asks it for names and grants, calls,
//! sends and receives.

use std::collections::VecDeque;

use crate::addr::{Addr, BusPath};
use crate::bloom::{Bloom, Pair};
use crate::error::{sys, Error, Result};
use crate::sys::{
    push_cmsg, BusSocket, Received, SCM_DST_ADDR, SCM_EXPECT_REPLY, SCM_OWNED_ADDR, SCM_SRC_ADDR,
};
use crate::wire::{Kind, Message, FLAG_NO_REPLY};

/// How long a request to the master may take.
pub const MASTER_TIMEOUT_MS: i32 = 5000;

/// A message as a client receives it.
pub struct Incoming {
    pub src: Addr,
    pub raw: Received,
    /// `None` when the payload is not in afbusctl's format.
    pub msg: Option<Message>,
}

impl Incoming {
    /// The addresses granted (or revoked etc.) with it: (cmsg type, addr).
    pub fn grants(&self) -> Vec<(libc::c_int, Addr)> {
        self.raw
            .bus_cmsgs
            .iter()
            .map(|(t, a)| (*t, Addr::from_sockaddr(a)))
            .collect()
    }
}

pub struct Client {
    pub sock: BusSocket,
    master: Addr,
    serial: u32,
    /// The unique name the master granted.
    pub unique: String,
    /// The kernel handle (`:N`) the master saw us under.
    pub handle: String,
    stash: VecDeque<Incoming>,
}

impl Client {
    /// Joins the bus at `bus` through its master `master`.
    pub fn join(bus: &BusPath, master: &str) -> Result<Client> {
        let sock = BusSocket::new(bus).map_err(sys("socket(AF_BUS)"))?;
        let mut c = Client {
            sock,
            master: Addr::parse(master).map_err(Error::Usage)?,
            serial: 0,
            unique: String::new(),
            handle: String::new(),
            stash: VecDeque::new(),
        };
        let what = format!("join {} (master {master})", bus.display());
        let (reply, inc) = c.master_call("Hello", "").map_err(|e| match e {
            Error::Sys { err, .. } => Error::Sys {
                what: what.clone(),
                err,
            },
            Error::Refused { reason, .. } => Error::Refused {
                what: what.clone(),
                reason,
            },
            e => e,
        })?;
        c.unique = reply.body_text();
        c.handle = reply.get("handle").unwrap_or_default().to_string();
        if !inc
            .grants()
            .iter()
            .any(|(t, a)| *t == SCM_OWNED_ADDR && *a == Addr::Name(c.unique.clone()))
        {
            return Err(Error::Protocol(format!(
                "{what}: the master's welcome did not grant \"{}\"",
                c.unique
            )));
        }
        Ok(c)
    }

    fn next_serial(&mut self) -> u32 {
        self.serial = self.serial.wrapping_add(1).max(1);
        self.serial
    }

    /// Sends `msg` to `dst`, from the owned address `src` if given
    /// (`SCM_SRC_ADDR`); with `expect_reply`, `dst` may answer once even
    /// where the bus's access masks would refuse it (`SCM_EXPECT_REPLY`).
    pub fn send_to(
        &self,
        dst: &Addr,
        msg: &Message,
        src: Option<&str>,
        expect_reply: bool,
    ) -> Result<()> {
        let sa = dst.to_sockaddr(&self.sock.bus);
        let mut ctl = Vec::new();
        if let Some(s) = src {
            let a = Addr::Name(s.into()).to_sockaddr(&self.sock.bus);
            push_cmsg(&mut ctl, SCM_SRC_ADDR, &a.as_bytes());
        }
        if expect_reply {
            push_cmsg(&mut ctl, SCM_EXPECT_REPLY, &[]);
        }
        self.sock
            .send_ctl(&sa, &msg.encode(), &mut ctl, false)
            .map_err(sys(format!("send to {}", dst.display())))
    }

    /// Waits up to `timeout_ms` (negative: forever) for the next message.
    pub fn recv(&mut self, timeout_ms: i32) -> Result<Option<Incoming>> {
        if let Some(i) = self.stash.pop_front() {
            return Ok(Some(i));
        }
        let raw = match self.sock.recv(timeout_ms).map_err(sys("receive"))? {
            Some(r) => r,
            None => return Ok(None),
        };
        let msg = Message::decode(&raw.payload).ok();
        Ok(Some(Incoming {
            src: Addr::from_sockaddr(&raw.src),
            raw,
            msg,
        }))
    }

    /// Calls `dst` and waits for its reply; other messages that arrive
    /// meanwhile are kept for `recv`.
    pub fn call(
        &mut self,
        dst: &Addr,
        pairs: Vec<Pair>,
        body: &str,
        timeout_ms: i32,
    ) -> Result<(Message, Incoming)> {
        let serial = self.next_serial();
        let msg = Message::new(Kind::Call, serial, pairs, body.as_bytes());
        self.send_to(dst, &msg, None, true)?;
        let mut stash = VecDeque::new();
        let res = loop {
            let inc = match self.sock.recv(timeout_ms).map_err(sys("receive"))? {
                Some(raw) => {
                    let msg = Message::decode(&raw.payload).ok();
                    Incoming {
                        src: Addr::from_sockaddr(&raw.src),
                        raw,
                        msg,
                    }
                }
                None => {
                    break Err(Error::Timeout(format!(
                        "call {}: no reply within {} ms",
                        dst.display(),
                        timeout_ms
                    )))
                }
            };
            match &inc.msg {
                Some(m) if m.reply_serial == serial && m.kind == Kind::Reply => {
                    break Ok((m.clone(), inc));
                }
                Some(m) if m.reply_serial == serial && m.kind == Kind::Error => {
                    break Err(Error::Refused {
                        what: format!("call {}", dst.display()),
                        reason: m.body_text(),
                    });
                }
                _ => stash.push_back(inc),
            }
        };
        self.stash.extend(stash);
        res
    }

    /// Calls the master's `member` with `body` (one argument per line).
    pub fn master_call(&mut self, member: &str, body: &str) -> Result<(Message, Incoming)> {
        let master = self.master.clone();
        let pairs = vec![Pair {
            key: "member".into(),
            value: member.into(),
        }];
        self.call(&master, pairs, body, MASTER_TIMEOUT_MS)
    }

    /// Asks the master for `name`; returns its answer (`primary-owner`,
    /// `in-queue`, `exists`, `already-owner`).
    pub fn request_name(&mut self, name: &str, flags: &[&str]) -> Result<String> {
        let (r, _) = self
            .master_call("RequestName", &format!("{name}\n{}", flags.join(",")))
            .map_err(|e| rewhat(e, format!("request name {name}")))?;
        Ok(r.body_text())
    }

    /// Asks the master to release `name`; returns its answer (`released`,
    /// `not-owner`).
    pub fn release_name(&mut self, name: &str) -> Result<String> {
        let (r, _) = self
            .master_call("ReleaseName", name)
            .map_err(|e| rewhat(e, format!("release name {name}")))?;
        Ok(r.body_text())
    }

    /// The names the master knows: (name, owner's unique name).
    pub fn list_names(&mut self) -> Result<Vec<(String, String)>> {
        let (r, _) = self
            .master_call("ListNames", "")
            .map_err(|e| rewhat(e, "list names".into()))?;
        Ok(key_values(&r.body_text()))
    }

    /// The master's `GetStatus`: (key, value) lines.
    pub fn status(&mut self) -> Result<Vec<(String, String)>> {
        let (r, _) = self
            .master_call("GetStatus", "")
            .map_err(|e| rewhat(e, "master status".into()))?;
        Ok(key_values(&r.body_text()))
    }

    /// Asks the master for a match on `pairs` (none: a monitor).
    pub fn add_match(&mut self, pairs: &[Pair]) -> Result<()> {
        let body: Vec<String> = pairs.iter().map(|p| p.to_string()).collect();
        self.master_call("AddMatch", &body.join("\n"))
            .map_err(|e| rewhat(e, "add match".into()))?;
        Ok(())
    }

    /// Asks the master for a send grant covering `pairs`.
    pub fn request_send(&mut self, pairs: &[Pair]) -> Result<()> {
        let body: Vec<String> = pairs.iter().map(|p| p.to_string()).collect();
        self.master_call("RequestSend", &body.join("\n"))
            .map_err(|e| rewhat(e, "request send grant".into()))?;
        Ok(())
    }

    /// Multicasts a signal with `pairs` and `body`.
    pub fn emit(&mut self, pairs: Vec<Pair>, body: &str) -> Result<Bloom> {
        let bloom = Bloom::of_pairs(&pairs);
        let serial = self.next_serial();
        let mut msg = Message::new(Kind::Signal, serial, pairs, body.as_bytes());
        msg.flags = FLAG_NO_REPLY;
        self.send_to(&Addr::Multicast(bloom.clone()), &msg, None, false)?;
        Ok(bloom)
    }

    /// Answers `call` (received from `to`), from the address it was sent
    /// to, as a D-Bus service answers from the name it was called at.
    pub fn reply(&mut self, to: &Addr, call: &Incoming, body: &str) -> Result<()> {
        let Some(m) = &call.msg else { return Ok(()) };
        let serial = self.next_serial();
        let r = Message::reply_to(m, Kind::Reply, serial, body.as_bytes());
        let src = call.grants().into_iter().find_map(|(t, a)| match a {
            Addr::Name(n) if t == SCM_DST_ADDR && n != self.unique => Some(n),
            _ => None,
        });
        self.send_to(to, &r, src.as_deref(), false)
    }

    /// Sends `body` to `dst` expecting no reply, from `src` if given.
    pub fn send_oneway(&mut self, dst: &Addr, body: &str, src: Option<&str>) -> Result<()> {
        let serial = self.next_serial();
        let mut m = Message::new(Kind::Call, serial, Vec::new(), body.as_bytes());
        m.flags = FLAG_NO_REPLY;
        self.send_to(dst, &m, src, false)
    }
}

/// `KEY VALUE` lines: the key is the first word, the value the rest.
fn key_values(body: &str) -> Vec<(String, String)> {
    body.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn rewhat(e: Error, what: String) -> Error {
    match e {
        Error::Sys { err, .. } => Error::Sys { what, err },
        Error::Refused { reason, .. } => Error::Refused { what, reason },
        e => e,
    }
}
