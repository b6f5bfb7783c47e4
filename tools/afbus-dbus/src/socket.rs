// SPDX-License-Identifier: GPL-2.0

//! [`AfBus`], a zbus socket over AF_BUS: one D-Bus message per datagram,
//! sent straight to the destination's address.
//!
//! zbus drives it through its public traits.  The SASL handshake zbus
//! speaks is answered here, locally: on AF_BUS the kernel already checked
//! who the peer is, and the join request (the `Hello` call that follows
//! `BEGIN`) is what the master admits or refuses by its policy.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zbus::connection::socket::{ReadHalf, Socket, Split, WriteHalf};
use zbus::export::async_trait::async_trait;
use zbus::message::{Flags, Message, Type};
use zbus::{MatchRule, OwnedMatchRule};
use zruntime::{AsyncIo, Shared as SharedMode, SharedRuntime};

/// Match rules a connection keeps for its exact check.
pub const MAX_RULES: usize = 4096;

use crate::addr::{Addr, BusPath};
use crate::dgram::{self, Datagram, MEMFD_MAGIC, MEMFD_THRESHOLD};
use crate::header;

/// The master's address on every D-Bus bus, and the bus's own name.
pub const BUS_NAME: &str = "org.freedesktop.DBus";
/// Where [`AfBus::system`] looks when `AFBUS_SYSTEM_BUS` is not set.
pub const SYSTEM_BUS: &str = "/run/afbus/system";
/// How long a sender waits for room in a receiver's queue.
const SEND_TIMEOUT: Duration = Duration::from_secs(25);

/// Broadcasts this process received that no match rule of their
/// connection matched (bloom false positives), dropped.
static FALSE_POSITIVES: AtomicU64 = AtomicU64::new(0);

/// How many broadcasts the connections of this process dropped because
/// only the bloom filter, not a match rule, matched them.
pub fn bloom_false_positives() -> u64 {
    FALSE_POSITIVES.load(Ordering::Relaxed)
}

/// The AF_BUS address of a D-Bus bus name: `:1.N` is `1.N` (addresses
/// starting with `:` are the kernel's handles), the rest is itself.
pub fn name_to_addr(name: &str) -> Option<Addr> {
    let a = name.strip_prefix(':').unwrap_or(name);
    crate::addr::check_name(a).ok()?;
    Some(Addr::Name(a.to_string()))
}

/// The D-Bus name of a source address the kernel reports: `1.N` is the
/// unique name `:1.N`, the master is `org.freedesktop.DBus`.  Anything else
/// (a well-known name used as a source) is not a sender D-Bus knows.
pub fn addr_to_sender(a: &Addr) -> Option<String> {
    match a {
        Addr::Name(n) if n == BUS_NAME => Some(n.clone()),
        Addr::Name(n) => {
            let id = n.strip_prefix("1.")?;
            (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| format!(":{n}"))
        }
        _ => None,
    }
}

/// The server GUID the handshake reports: a hash of the bus path.
pub(crate) fn guid_of(bus: &BusPath) -> String {
    let d = bus.display();
    let h = |seed: u64| {
        d.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    };
    format!(
        "{:016x}{:016x}",
        h(0xcbf2_9ce4_8422_2325),
        h(0x9e37_79b9_7f4a_7c15)
    )
}

/// What the write half hands the read half.
enum Local {
    /// Answers of the emulated SASL handshake.
    Sasl(Vec<u8>),
    /// A D-Bus message made here (an error for an unreachable name).
    Message(Vec<u8>),
}

struct Shared {
    bus: BusPath,
    /// Watched by zbus's own runtime (zruntime), so that a datagram's
    /// arrival wakes the task that reads it with no other thread between.
    fd: AsyncIo<OwnedFd, SharedMode>,
    /// The match rules this connection asked the master for, which a
    /// broadcast must match exactly to be delivered.
    rules: Mutex<Vec<OwnedMatchRule>>,
    tx: async_channel::Sender<Local>,
    rx: async_channel::Receiver<Local>,
    /// The credentials every datagram is sent as: the bridge's legacy
    /// client's, not the bridge's own.
    creds: Option<libc::ucred>,
    /// Whether the handshake is answered elsewhere (the bridge's).
    preauthenticated: bool,
}

/// A D-Bus connection's socket on an AF_BUS bus.
///
/// ```no_run
/// # async fn f() -> zbus::Result<()> {
/// let conn = zbus::connection::Builder::socket(afbus_dbus::AfBus::system()?)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AfBus {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AF_BUS {}", self.bus.display())
    }
}

impl AfBus {
    /// The system bus: `$AFBUS_SYSTEM_BUS`, else `/run/afbus/system`.
    pub fn system() -> io::Result<AfBus> {
        let bus = std::env::var("AFBUS_SYSTEM_BUS").unwrap_or_else(|_| SYSTEM_BUS.into());
        AfBus::open(&bus)
    }

    /// The session bus: `$AFBUS_SESSION_BUS`, else `/run/afbus/user/UID`.
    pub fn session() -> io::Result<AfBus> {
        let bus = std::env::var("AFBUS_SESSION_BUS").unwrap_or_else(|_| {
            // SAFETY: getuid cannot fail.
            format!("/run/afbus/user/{}", unsafe { libc::getuid() })
        });
        AfBus::open(&bus)
    }

    /// The bus at `bus`: `/a/path` or `@abstract-name`.  The socket joins
    /// it when zbus sends `Hello`.
    pub fn open(bus: &str) -> io::Result<AfBus> {
        AfBus::with(bus, None)
    }

    /// An endpoint of the bus at `bus` for a client someone else
    /// authenticated, whose every datagram carries `creds` as
    /// `SCM_CREDENTIALS` (the bridge: the kernel lets only a process with
    /// `CAP_SYS_ADMIN`, `CAP_SETUID` and `CAP_SETGID` claim another's).
    /// Its first message must be the client's `Hello`; no SASL is spoken.
    pub fn for_client(bus: &str, creds: libc::ucred) -> io::Result<AfBus> {
        AfBus::with(bus, Some(creds))
    }

    fn with(bus: &str, creds: Option<libc::ucred>) -> io::Result<AfBus> {
        let bus =
            BusPath::parse(bus).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let fd = dgram::socket()?;
        // The descriptor stays blocking: every call passes MSG_DONTWAIT.
        let fd = AsyncIo::new_nonblocking(&SharedRuntime::current()?, fd)?;
        let (tx, rx) = async_channel::unbounded();
        Ok(AfBus {
            shared: Arc::new(Shared {
                bus,
                fd,
                rules: Mutex::new(Vec::new()),
                tx,
                rx,
                creds,
                preauthenticated: creds.is_some(),
            }),
        })
    }
}

impl Socket for AfBus {
    type ReadHalf = Reader;
    type WriteHalf = Writer;

    fn split(self) -> Split<Reader, Writer> {
        Split::new(
            Reader {
                shared: self.shared.clone(),
                sasl: VecDeque::new(),
            },
            Writer {
                begun: self.shared.preauthenticated,
                shared: self.shared,
                sasl: Vec::new(),
            },
        )
    }
}

/// The half zbus receives through.
#[derive(Debug)]
pub struct Reader {
    shared: Arc<Shared>,
    sasl: VecDeque<u8>,
}

/// Reads nothing: hands zbus's own message assembly the bytes and
/// descriptors of one datagram.
#[derive(Debug)]
pub(crate) struct Replay;

#[async_trait]
impl ReadHalf for Replay {
    async fn recvmsg(&mut self, _buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
        Ok((0, Vec::new()))
    }
}

impl Reader {
    /// The next datagram, or a message the write half made.
    async fn next(&mut self) -> io::Result<Result<Datagram, Vec<u8>>> {
        let rx = self.shared.rx.clone();
        let local = async {
            loop {
                match rx.recv().await {
                    Ok(Local::Message(m)) => return Ok(Err(m)),
                    Ok(Local::Sasl(b)) => self.sasl.extend(b),
                    Err(_) => std::future::pending::<()>().await,
                }
            }
        };
        let shared = self.shared.clone();
        let sock = async move {
            shared
                .fd
                .read_with(|fd| dgram::recv(fd.as_raw_fd()))
                .await
                .map(Ok)
        };
        futures_lite::future::or(local, sock).await
    }

    /// The D-Bus message bytes of a datagram, with the sender the kernel
    /// vouches for; `None` to drop it.
    fn unpack(&self, mut d: Datagram) -> Option<(Vec<u8>, Vec<OwnedFd>)> {
        let sender = addr_to_sender(&Addr::from_sockaddr(&d.src))?;
        if d.payload.len() == 16 && d.payload[..8] == MEMFD_MAGIC[..] && !d.fds.is_empty() {
            let len = u64::from_ne_bytes(d.payload[8..16].try_into().ok()?) as usize;
            let memfd = d.fds.remove(0);
            d.payload = dgram::read_memfd(&memfd, len).ok()?;
        }
        let bytes = header::with_sender(&d.payload, &sender).ok()?;
        Some((bytes, d.fds))
    }
}

#[async_trait]
impl ReadHalf for Reader {
    async fn recvmsg(&mut self, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
        // Only the handshake reads bytes: it gets the local answers.
        while self.sasl.is_empty() {
            match self.shared.rx.recv().await {
                Ok(Local::Sasl(b)) => self.sasl.extend(b),
                Ok(Local::Message(_)) => {}
                Err(_) => return Ok((0, Vec::new())),
            }
        }
        let n = buf.len().min(self.sasl.len());
        for (i, b) in self.sasl.drain(..n).enumerate() {
            buf[i] = b;
        }
        Ok((n, Vec::new()))
    }

    async fn receive_message(
        &mut self,
        seq: u64,
        _already_received_bytes: &mut Vec<u8>,
        _already_received_fds: &mut Vec<OwnedFd>,
    ) -> zbus::Result<Message> {
        loop {
            let next = match self.next().await {
                // Broadcasts were dropped for want of room (netlink's rule):
                // D-Bus has no way to say so; the connection goes on.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                r => r?,
            };
            let (mut bytes, mut fds) = match next {
                Err(local) => (local, Vec::new()),
                Ok(d) => {
                    let multicast = d.multicast;
                    let Some((bytes, fds)) = self.unpack(d) else {
                        continue;
                    };
                    if multicast {
                        // A bloom match only says "maybe": the rule decides.
                        let msg = match Replay
                            .receive_message(0, &mut bytes.clone(), &mut Vec::new())
                            .await
                        {
                            Ok(m) => m,
                            Err(_) => continue,
                        };
                        let rules = self.shared.rules.lock().unwrap();
                        if !rules.iter().any(|r| crate::dbloom::rule_matches(r, &msg)) {
                            FALSE_POSITIVES.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                    (bytes, fds)
                }
            };
            match Replay.receive_message(seq, &mut bytes, &mut fds).await {
                Ok(m) => return Ok(m),
                // A malformed datagram from a peer is dropped, as a bus
                // drops what it cannot parse; the connection goes on.
                Err(_) => continue,
            }
        }
    }

    fn can_pass_unix_fd(&self) -> bool {
        true
    }
}

/// The half zbus sends through.
#[derive(Debug)]
pub struct Writer {
    shared: Arc<Shared>,
    /// Handshake bytes not yet understood.
    sasl: Vec<u8>,
    begun: bool,
}

impl Writer {
    /// Answers the SASL commands in `self.sasl`; after `BEGIN`, what
    /// follows is a D-Bus message (the `Hello` call), sent when whole.
    async fn handshake(&mut self) -> io::Result<()> {
        while !self.begun {
            let Some(nl) = self.sasl.iter().position(|b| *b == b'\n') else {
                return Ok(());
            };
            let line: Vec<u8> = self.sasl.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_start_matches('\0').trim_end();
            let answer = if line.starts_with("AUTH") {
                format!("OK {}\r\n", guid_of(&self.shared.bus))
            } else if line == "NEGOTIATE_UNIX_FD" {
                "AGREE_UNIX_FD\r\n".into()
            } else if line == "BEGIN" {
                self.begun = true;
                continue;
            } else {
                "ERROR \"not understood by the AF_BUS socket\"\r\n".into()
            };
            let _ = self.shared.tx.send(Local::Sasl(answer.into_bytes())).await;
        }
        while self.sasl.len() >= 16 {
            let len = header::total_len(&self.sasl)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            if self.sasl.len() < len {
                break;
            }
            let bytes: Vec<u8> = self.sasl.drain(..len).collect();
            self.send_datagram(&Addr::Name(BUS_NAME.into()), &bytes, &[], false)
                .await?;
        }
        Ok(())
    }

    /// Sends one datagram, waiting while the receiver's queue is full;
    /// `expect_reply` as for [`dgram::send`].
    async fn send_datagram(
        &self,
        dst: &Addr,
        bytes: &[u8],
        fds: &[RawFd],
        expect_reply: bool,
    ) -> io::Result<()> {
        let sa = dst.to_sockaddr(&self.shared.bus);
        let raw = self.shared.fd.as_fd().as_raw_fd();
        let (memfd, payload, fds) = if bytes.len() > MEMFD_THRESHOLD {
            let memfd = dgram::sealed_memfd(bytes)?;
            let mut p = MEMFD_MAGIC.to_vec();
            p.extend_from_slice(&(bytes.len() as u64).to_ne_bytes());
            let mut all = vec![memfd.as_raw_fd()];
            all.extend_from_slice(fds);
            (Some(memfd), p, all)
        } else {
            (None, bytes.to_vec(), fds.to_vec())
        };
        let start = Instant::now();
        let mut backoff = Duration::from_micros(200);
        loop {
            let creds = self.shared.creds.as_ref();
            match dgram::send(
                raw,
                &sa,
                &payload,
                &fds,
                libc::MSG_DONTWAIT,
                expect_reply,
                creds,
            ) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if start.elapsed() > SEND_TIMEOUT {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("{} has not read its messages for 25 s", dst.display()),
                        ));
                    }
                    SharedRuntime::current()?.sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                }
                r => {
                    drop(memfd);
                    return r;
                }
            }
        }
    }

    /// Keeps the connection's match rules (at most [`MAX_RULES`]), which the
    /// read half applies.
    fn note_match(&self, msg: &Message) {
        let h = msg.header();
        let (Some(member), Some(dst)) = (h.member(), h.destination()) else {
            return;
        };
        if dst.as_str() != BUS_NAME {
            return;
        }
        let Ok(rule) = msg.body().deserialize::<String>() else {
            return;
        };
        let Ok(rule) = MatchRule::try_from(rule.as_str()) else {
            return;
        };
        let rule = OwnedMatchRule::from(rule.to_owned());
        let mut rules = self.shared.rules.lock().unwrap();
        match member.as_str() {
            // Past the kernel's grants per member (max_matches, 64 by
            // default) the master refuses the rule anyway: a client that
            // keeps asking does not grow this list without end.
            "AddMatch" if rules.len() < MAX_RULES => rules.push(rule),
            "RemoveMatch" => {
                if let Some(i) = rules.iter().position(|r| *r == rule) {
                    rules.remove(i);
                }
            }
            _ => {}
        }
    }

    /// The error a bus gives a caller the policy refuses (`EACCES` from
    /// the kernel): a denied reply or signal is dropped, as dbus-daemon
    /// drops them.
    async fn denied(&self, msg: &Message, dst: &str) -> zbus::Result<()> {
        if !expects_reply(msg) {
            return Ok(());
        }
        let text = format!("The policy does not let this connection send to {dst}");
        self.local_error(msg, "org.freedesktop.DBus.Error.AccessDenied", &text)
            .await
    }

    /// Queues an error reply to `msg`, from the bus, to this connection.
    pub(crate) async fn local_error(
        &self,
        msg: &Message,
        name: &str,
        text: &str,
    ) -> zbus::Result<()> {
        let err = Message::error(&msg.header(), name).build(&text)?;
        let bytes = header::with_sender(err.data().bytes(), BUS_NAME)
            .map_err(|e| zbus::Error::Failure(e.to_string()))?;
        let _ = self.shared.tx.send(Local::Message(bytes)).await;
        Ok(())
    }

    /// The error a bus gives a caller of a name nobody owns.
    async fn unreachable(&self, msg: &Message, dst: &str) -> zbus::Result<()> {
        if !expects_reply(msg) {
            return Ok(());
        }
        let (name, text) = if dst.starts_with(':') {
            (
                "org.freedesktop.DBus.Error.NameHasNoOwner",
                format!("Could not get owner of name '{dst}': no such name"),
            )
        } else {
            (
                "org.freedesktop.DBus.Error.ServiceUnknown",
                format!("The name {dst} was not provided by any .service files"),
            )
        };
        self.local_error(msg, name, &text).await
    }
}

/// Whether `msg` is a method call that expects a reply.
pub(crate) fn expects_reply(msg: &Message) -> bool {
    msg.message_type() == Type::MethodCall
        && !msg
            .primary_header()
            .flags()
            .contains(Flags::NO_REPLY_EXPECTED)
}

#[async_trait]
impl WriteHalf for Writer {
    async fn sendmsg(
        &mut self,
        buffer: &[u8],
        _fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> io::Result<usize> {
        self.sasl.extend_from_slice(buffer);
        self.handshake().await?;
        Ok(buffer.len())
    }

    async fn send_message(&mut self, msg: &Message) -> zbus::Result<()> {
        let h = msg.header();
        let dst = match h.destination() {
            Some(d) => d.to_string(),
            None if msg.message_type() == Type::Signal => String::new(),
            None => BUS_NAME.to_string(),
        };
        drop(h);
        if dst == BUS_NAME {
            self.note_match(msg);
        }
        let addr = if dst.is_empty() {
            Addr::Multicast(crate::dbloom::of_signal(msg))
        } else {
            match name_to_addr(&dst) {
                Some(a) => a,
                None => return self.unreachable(msg, &dst).await,
            }
        };
        let data = msg.data();
        let fds: Vec<RawFd> = data.fds().iter().map(|f| f.as_raw_fd()).collect();
        // A call that expects a reply lets its callee answer it whatever
        // the policy's masks say (the callee's restrictions are its own).
        let expect = expects_reply(msg) && dst != BUS_NAME;
        match self.send_datagram(&addr, data.bytes(), &fds, expect).await {
            Err(e) if e.raw_os_error() == Some(libc::EHOSTUNREACH) => {
                self.unreachable(msg, &dst).await
            }
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => self.denied(msg, &dst).await,
            r => Ok(r?),
        }
    }

    async fn close(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn can_pass_unix_fd(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        assert_eq!(name_to_addr(":1.7"), Some(Addr::Name("1.7".into())));
        assert_eq!(
            name_to_addr("org.example.Echo"),
            Some(Addr::Name("org.example.Echo".into()))
        );
        assert_eq!(name_to_addr(&format!("org.{}", "x".repeat(60))), None);
        assert_eq!(
            addr_to_sender(&Addr::Name("1.7".into())).as_deref(),
            Some(":1.7")
        );
        assert_eq!(
            addr_to_sender(&Addr::Name(BUS_NAME.into())).as_deref(),
            Some(BUS_NAME)
        );
        assert_eq!(addr_to_sender(&Addr::Name("org.example.Echo".into())), None);
        assert_eq!(addr_to_sender(&Addr::Name("1.x".into())), None);
        assert_eq!(addr_to_sender(&Addr::Kernel), None);
    }

    #[test]
    fn the_guid_is_32_hex_digits() {
        let g = guid_of(&BusPath::parse("/run/afbus/system").unwrap());
        assert_eq!(g.len(), 32);
        assert!(zbus::Guid::try_from(g.as_str()).is_ok());
    }
}
