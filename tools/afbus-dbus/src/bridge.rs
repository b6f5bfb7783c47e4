// SPDX-License-Identifier: GPL-2.0

//! The bridge: unmodified D-Bus clients on an ordinary `unix:path=` socket,
//! each joined to the AF_BUS bus as an endpoint of its own.
//!
//! For each client it accepts, the bridge reads the peer's credentials
//! (`SO_PEERCRED`), answers the SASL handshake (`EXTERNAL` only, checked
//! against those credentials; `NEGOTIATE_UNIX_FD`), then opens an AF_BUS
//! socket whose every datagram carries the client's pid, uid and gid as
//! `SCM_CREDENTIALS`.  The master therefore admits, names and restricts the
//! client by its own credentials, never the bridge's; the kernel lets only
//! a process with `CAP_SYS_ADMIN`, `CAP_SETUID` and `CAP_SETGID` send
//! another's, so the bridge runs as root (or with those capabilities).
//!
//! Messages are relayed as they are: the stream's D-Bus messages go out
//! through [`AfBus`]'s write half (one datagram each, broadcasts to their
//! bloom, match rules kept for the exact check), and what the endpoint
//! receives (sender rewritten from the kernel's source address, bloom false
//! positives dropped) is written back to the stream.  What waits for a
//! client that does not read is bounded: past the bound the client is
//! disconnected, as dbus-broker does, and nobody else waits for it.  What
//! one local user can make the bridge hold is bounded too: connections per
//! uid, authenticated or not (each costs a thread and an endpoint), and the
//! time and bytes of a handshake.

use std::collections::HashMap;
use std::io::{self, Write};
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zruntime::{AsyncIo, Shared as SharedMode, SharedRuntime};

/// A stream watched by zbus's own runtime.
type Async<T> = AsyncIo<T, SharedMode>;
use zbus::connection::socket::{ReadHalf, Socket, WriteHalf};
use zbus::message::Message;

use crate::addr::BusPath;
use crate::socket::{expects_reply, guid_of, Replay};
use crate::AfBus;

/// What may wait for a client that does not read before it is dropped.
pub const DEFAULT_MAX_QUEUED: usize = 16 << 20;
/// Connections one uid may hold at once (dbus-daemon's system bus default).
pub const DEFAULT_MAX_PER_UID: usize = 256;
/// Connections the bridge holds at once, all uids together.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Bytes one uid's connections may have the bridge hold at once: messages
/// being read from them and messages waiting for them to read.
pub const DEFAULT_MAX_UID_BYTES: usize = 64 << 20;
/// The longest message a client may send (dbus-daemon's system bus limit).
pub const MAX_MESSAGE: usize = 32 << 20;
/// How long a client may take to authenticate, in all.
const SASL_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest handshake the bridge reads (commands are short lines).
const SASL_MAX: usize = 16 * 1024;
/// Descriptors one message may carry (the D-Bus reference's limit).
const MAX_FDS: usize = 253;
/// `CMSG_SPACE` of `MAX_FDS` descriptors.
const RIGHTS_SPACE: usize =
    size_of::<libc::cmsghdr>() + (MAX_FDS * size_of::<RawFd>()).next_multiple_of(8);

/// How the bridge runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The AF_BUS bus: `/path` or `@abstract-name`.
    pub bus: String,
    /// Bytes of messages that may wait for one client.
    pub max_queued: usize,
    /// Connections one uid may hold at once, authenticated or not.
    pub max_per_uid: usize,
    /// Connections the bridge holds at once.
    pub max_connections: usize,
    /// Bytes one uid's connections may have the bridge hold.
    pub max_uid_bytes: usize,
}

/// What each uid holds: connections, and bytes in the bridge.
#[derive(Default)]
struct PerUid {
    held: Mutex<HashMap<u32, Held>>,
    /// Connections of all uids.
    total: AtomicUsize,
}

#[derive(Default, Clone, Copy)]
struct Held {
    conns: usize,
    bytes: usize,
}

/// One counted connection; uncounted on drop, with any bytes it still
/// holds.
struct Slot {
    per_uid: Arc<PerUid>,
    uid: u32,
    /// Bytes this connection holds in the bridge.
    bytes: AtomicUsize,
    max_bytes: usize,
}

impl PerUid {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for `uid`, unless it holds `cfg.max_per_uid` connections
    /// already or the bridge `cfg.max_connections`.
    fn take(self: &Arc<Self>, uid: u32, cfg: &Config) -> Result<Slot, String> {
        let mut m = self.lock();
        if self.total.load(Ordering::Relaxed) >= cfg.max_connections {
            return Err(format!(
                "the bridge holds {} connections",
                cfg.max_connections
            ));
        }
        let h = m.entry(uid).or_default();
        if h.conns >= cfg.max_per_uid {
            return Err(format!("the uid holds {} connections", cfg.max_per_uid));
        }
        h.conns += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            per_uid: self.clone(),
            uid,
            bytes: AtomicUsize::new(0),
            max_bytes: cfg.max_uid_bytes,
        })
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("uid", &self.uid).finish()
    }
}

impl Slot {
    /// Charges `n` bytes to the connection's uid, unless that takes the uid
    /// past its bound.
    fn charge(&self, n: usize) -> io::Result<()> {
        let mut m = self.per_uid.lock();
        let h = m.entry(self.uid).or_default();
        if h.bytes + n > self.max_bytes {
            return Err(io::Error::other(format!(
                "the uid's connections hold {} bytes in the bridge, {n} more would pass {}",
                h.bytes, self.max_bytes
            )));
        }
        h.bytes += n;
        self.bytes.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// Gives back `n` bytes charged before.
    fn release(&self, n: usize) {
        let mut m = self.per_uid.lock();
        if let Some(h) = m.get_mut(&self.uid) {
            h.bytes = h.bytes.saturating_sub(n);
        }
        self.bytes.fetch_sub(n, Ordering::Relaxed);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let left = *self.bytes.get_mut();
        let mut m = self.per_uid.lock();
        if let Some(h) = m.get_mut(&self.uid) {
            h.conns -= 1;
            h.bytes = h.bytes.saturating_sub(left);
            if h.conns == 0 {
                m.remove(&self.uid);
            }
        }
        self.per_uid.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Listens on `listen` (a new socket file, mode 0666: the master's policy
/// decides who joins) and serves every client until killed.  `log` gets
/// one line per client event.
pub fn serve(
    listen: &Path,
    cfg: Config,
    log: impl Fn(String) + Send + Sync + 'static,
) -> io::Result<()> {
    BusPath::parse(&cfg.bus).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    if let Ok(m) = std::fs::symlink_metadata(listen) {
        use std::os::unix::fs::FileTypeExt;
        if m.file_type().is_socket() {
            std::fs::remove_file(listen)?;
        }
    }
    // The socket file is made 0666 by the umask at bind, not by a chmod
    // of the path afterwards, which would follow a symlink put there
    // meanwhile.  (The bridge is single-threaded until it serves.)
    // SAFETY: umask(2) takes no pointers.
    let old = unsafe { libc::umask(0o111) };
    let bound = UnixListener::bind(listen);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = bound?;
    let mut cfg = cfg;
    // Each connection holds about three descriptors (the stream, the
    // endpoint, a descriptor in flight): the open-file limit goes up to its
    // hard limit, and the connection bound comes down to fit it.
    let fit = raise_nofile().saturating_sub(64) / 3;
    if cfg.max_connections > fit {
        log(format!(
            "at most {fit} connections: the open-file limit allows no more"
        ));
        cfg.max_connections = fit;
    }
    let log = Arc::new(log);
    let cfg = Arc::new(cfg);
    let per_uid = Arc::new(PerUid::default());
    log(format!(
        "serving unix:path={} for the AF_BUS bus {}",
        listen.display(),
        cfg.bus
    ));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => {
                log(format!("accept: {e}"));
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        // Counted before a thread is spent on it: a uid at its limit is
        // closed at once.
        let who = match peer_creds(&stream) {
            Ok(c) => c,
            Err(e) => {
                log(format!("a client without credentials: {e}"));
                continue;
            }
        };
        let slot = match per_uid.take(who.uid, &cfg) {
            Ok(s) => Arc::new(s),
            Err(why) => {
                log(format!(
                    "client pid {} uid {} refused: {why}",
                    who.pid, who.uid
                ));
                continue;
            }
        };
        let (cfg, log2) = (cfg.clone(), log.clone());
        let spawned = std::thread::Builder::new().spawn(move || {
            let name = format!("client pid {} uid {}", who.pid, who.uid);
            log2(format!("{name} connected"));
            let why = match relay(stream, who, &cfg, slot) {
                Ok(()) => "disconnected".to_string(),
                Err(e) => format!("dropped: {e}"),
            };
            log2(format!("{name} {why}"));
        });
        // Out of threads: this client is closed (the closure drops it and
        // its slot), the others go on.
        if let Err(e) = spawned {
            log(format!(
                "client pid {} uid {} refused: {e}",
                who.pid, who.uid
            ));
        }
    }
    Ok(())
}

/// Raises the soft open-file limit to the hard one; returns the limit.
pub fn raise_nofile() -> usize {
    // SAFETY: an all-zero rlimit is valid.
    let mut r: libc::rlimit = unsafe { zeroed() };
    // SAFETY: `r` is live.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } < 0 {
        return 1024;
    }
    r.rlim_cur = r.rlim_max;
    // SAFETY: `r` is live.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } < 0 {
        // SAFETY: `r` is live.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    }
    usize::try_from(r.rlim_cur).unwrap_or(usize::MAX)
}

/// The credentials of the process at the other end of `s`.
fn peer_creds(s: &UnixStream) -> io::Result<libc::ucred> {
    // SAFETY: an all-zero ucred is valid.
    let mut c: libc::ucred = unsafe { zeroed() };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `c` and `len` are live and describe each other.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut c as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(c)
}

/// The outcome of the handshake.
#[derive(Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// Bytes after `BEGIN`: the start of the first message.
    pub rest: Vec<u8>,
    /// Whether the client negotiated descriptor passing.
    pub unix_fd: bool,
}

/// The server side of the D-Bus SASL handshake, for a client whose
/// kernel-checked uid is `uid`: `EXTERNAL` (with or without an initial
/// response) is the only mechanism.  `answer` takes each reply line.
pub struct Sasl {
    uid: u32,
    guid: String,
    buf: Vec<u8>,
    nul: bool,
    authed: bool,
    unix_fd: bool,
    /// `AUTH EXTERNAL` came without an identity: the next `DATA` has it.
    awaiting_data: bool,
    /// Bytes taken so far, for the bound on the whole handshake.
    seen: usize,
}

impl Sasl {
    /// A handshake for a client of uid `uid` on a bus of GUID `guid`.
    pub fn new(uid: u32, guid: String) -> Sasl {
        Sasl {
            uid,
            guid,
            buf: Vec::new(),
            nul: false,
            authed: false,
            unix_fd: false,
            awaiting_data: false,
            seen: 0,
        }
    }

    /// Takes bytes the client sent; returns the reply lines to write and,
    /// once `BEGIN` came, the outcome.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(Vec<u8>, Option<Authenticated>), String> {
        self.seen += bytes.len();
        if self.seen > SASL_MAX {
            return Err("a handshake longer than 16 KiB".into());
        }
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        if !self.nul {
            match self.buf.first() {
                None => return Ok((out, None)),
                Some(0) => {
                    self.buf.remove(0);
                    self.nul = true;
                }
                Some(_) => return Err("the handshake did not start with a NUL byte".into()),
            }
        }
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            if line == "BEGIN" {
                if !self.authed {
                    out.extend_from_slice(b"ERROR \"BEGIN before authentication\"\r\n");
                    continue;
                }
                let rest = std::mem::take(&mut self.buf);
                let unix_fd = self.unix_fd;
                return Ok((out, Some(Authenticated { rest, unix_fd })));
            }
            let reply = self.command(line);
            out.extend_from_slice(reply.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Ok((out, None))
    }

    fn command(&mut self, line: &str) -> String {
        let mut words = line.split(' ');
        let cmd = words.next().unwrap_or("");
        let arg = words.next();
        let arg2 = words.next();
        match (cmd, arg, arg2) {
            ("AUTH", Some("EXTERNAL"), None) if !self.authed => {
                self.awaiting_data = true;
                "DATA".into()
            }
            ("AUTH", Some("EXTERNAL"), Some(id)) if !self.authed => self.identity(id),
            ("AUTH", _, _) if !self.authed => "REJECTED EXTERNAL".into(),
            ("DATA", id, None) if self.awaiting_data => {
                self.awaiting_data = false;
                self.identity(id.unwrap_or(""))
            }
            ("CANCEL" | "ERROR", _, _) if !self.authed => {
                self.awaiting_data = false;
                "REJECTED EXTERNAL".into()
            }
            ("NEGOTIATE_UNIX_FD", None, None) if self.authed => {
                self.unix_fd = true;
                "AGREE_UNIX_FD".into()
            }
            _ => format!("ERROR \"{cmd} is not expected here\""),
        }
    }

    /// `EXTERNAL`'s identity: hex-encoded decimal uid, or empty for "the
    /// uid the kernel sees".
    fn identity(&mut self, hex: &str) -> String {
        let claimed = if hex.is_empty() {
            Some(self.uid)
        } else {
            hex_decode(hex)
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<u32>().ok())
        };
        if claimed == Some(self.uid) {
            self.authed = true;
            format!("OK {}", self.guid)
        } else {
            "REJECTED EXTERNAL".into()
        }
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Authenticates the client of `stream`, then relays its messages both
/// ways until either side goes.
fn relay(
    mut stream: UnixStream,
    who: libc::ucred,
    cfg: &Config,
    slot: Arc<Slot>,
) -> io::Result<()> {
    let bus = BusPath::parse(&cfg.bus).map_err(io::Error::other)?;
    let mut sasl = Sasl::new(who.uid, guid_of(&bus));
    // One deadline for the whole handshake, not one per read: a client
    // sending a byte now and then cannot hold its slot for long.
    let deadline = Instant::now() + SASL_TIMEOUT;
    // The handshake is consumed a line at a time, after a peek: a plain
    // read past `BEGIN` could take the start of a message that carries
    // descriptors, and drop them (read(2) takes no control messages).
    let mut buf = [0u8; 4096];
    let mut early_fds = Vec::new();
    let auth = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no authentication within 30 s",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        // A client that does not read the replies cannot stall it either.
        stream.set_write_timeout(Some(left))?;
        // SAFETY: the buffer is live and as long as said.
        let n = unsafe {
            libc::recv(
                stream.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_PEEK,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(());
        }
        let n = n as usize;
        let line = buf[..n]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(n, |i| i + 1);
        // Taken with recvmsg: if the client wrote BEGIN and its first
        // message in one sendmsg with descriptors, they arrive here.
        let mut got = 0;
        while got < line {
            let (k, fds) = recv_fds(stream.as_raw_fd(), &mut buf[got..line])?;
            if k == 0 {
                return Ok(());
            }
            got += k;
            early_fds.extend(fds);
        }
        if early_fds.len() > MAX_FDS {
            return Err(io::Error::other("too many descriptors in the handshake"));
        }
        let (reply, done) = sasl.feed(&buf[..line]).map_err(io::Error::other)?;
        stream.write_all(&reply)?;
        if let Some(a) = done {
            break a;
        }
    };
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(None)?;
    let socket = AfBus::for_client(&cfg.bus, who)?;
    let (mut from_bus, mut to_bus) = socket.split().take();
    let stream = Arc::new(Async::new(&SharedRuntime::current()?, stream)?);
    let queued = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = async_channel::unbounded::<Message>();
    // The serial of the client's Hello, and word when its answer came: until
    // then the endpoint is not a member and may send nothing else (a
    // client such as sd-bus sends its first calls right behind Hello).
    let hello = AtomicU32::new(0);
    let (joined_tx, joined_rx) = async_channel::bounded::<()>(1);

    // The client's messages, to the bus.
    let inbound = async {
        let mut client = ClientIn::new(stream.clone(), auth.unix_fd, slot.clone());
        // The handshake is fed a line at a time, so nothing follows BEGIN
        // in what it was given.
        if !auth.rest.is_empty() {
            return Err(io::Error::other("bytes after BEGIN in its line"));
        }
        // Descriptors that came with the handshake's last bytes wait for
        // the message that declares them, like any others.
        client.take_fds(early_fds)?;
        let mut seq = 0;
        loop {
            let msg = match client.next_message(seq).await {
                Ok(m) => m,
                Err(zbus::Error::InputOutput(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Ok(())
                }
                Err(e) => return Err(io::Error::other(format!("a malformed message: {e}"))),
            };
            seq += 1;
            // The message leaves the bridge's hands with this send.
            let charged = msg.data().len();
            let is_hello = seq == 1 && is_hello(&msg);
            if is_hello {
                hello.store(msg.primary_header().serial_num().get(), Ordering::Relaxed);
            }
            let sent = to_bus.send_message(&msg).await;
            slot.release(charged);
            if let Err(e) = sent {
                if let zbus::Error::InputOutput(io) = &e {
                    if matches!(
                        io.raw_os_error(),
                        Some(libc::ECONNRESET | libc::ENOTCONN | libc::EPIPE)
                    ) {
                        return Err(io::Error::other(format!("the bus went: {e}")));
                    }
                }
                if expects_reply(&msg) {
                    let text = format!("The bridge could not send the message: {e}");
                    let _ = to_bus
                        .local_error(&msg, "org.freedesktop.DBus.Error.Failed", &text)
                        .await;
                }
            } else if is_hello && joined_rx.recv().await.is_err() {
                return Ok(());
            }
        }
    };
    // The bus's messages, queued for the client within the bound.
    let from = async {
        let mut seq = 0;
        loop {
            let msg = from_bus
                .receive_message(seq, &mut Vec::new(), &mut Vec::new())
                .await
                .map_err(|e| io::Error::other(format!("the bus endpoint: {e}")))?;
            seq += 1;
            let serial = hello.load(Ordering::Relaxed);
            if serial != 0 && msg.header().reply_serial().map(|s| s.get()) == Some(serial) {
                hello.store(0, Ordering::Relaxed);
                let _ = joined_tx.try_send(());
            }
            if !auth.unix_fd && !msg.data().fds().is_empty() {
                // The client cannot take descriptors: like dbus-daemon, it
                // does not get the message.
                continue;
            }
            // The bound is checked before the message is added: one
            // message larger than the bound goes to a client that reads.
            let len = msg.data().len();
            let waiting = queued.load(Ordering::Relaxed);
            if waiting > 0 && waiting + len > cfg.max_queued {
                return Err(io::Error::other(format!(
                    "stopped reading ({waiting} bytes waiting)"
                )));
            }
            slot.charge(len)?;
            queued.fetch_add(len, Ordering::Relaxed);
            let _ = tx.send(msg).await;
        }
    };
    // And written to it.
    let outbound = async {
        while let Ok(msg) = rx.recv().await {
            let data = msg.data();
            let fds: Vec<RawFd> = data.fds().iter().map(|f| f.as_raw_fd()).collect();
            write_all(&stream, data.bytes(), &fds).await?;
            queued.fetch_sub(data.len(), Ordering::Relaxed);
            slot.release(data.len());
        }
        Ok(())
    };
    zbus::block_on(futures_lite::future::or(
        inbound,
        futures_lite::future::or(from, outbound),
    ))
}

/// Whether `msg` is a call of the bus's `Hello`.
fn is_hello(msg: &Message) -> bool {
    let h = msg.header();
    msg.message_type() == zbus::message::Type::MethodCall
        && h.destination().map(|d| d.as_str()) == Some(crate::BUS_NAME)
        && h.member().map(|m| m.as_str()) == Some("Hello")
}

/// The client's stream, cut into messages here rather than by zbus's
/// default assembly, for three reasons: a message's length is checked
/// (at most [`MAX_MESSAGE`], charged to the uid until sent) before any of
/// it is allocated; descriptors are taken first in, first out, each
/// message the number its header declares, as dbus-daemon does, whichever
/// `sendmsg` carried them (the handshake's included); and at most
/// [`MAX_FDS`] may wait, none unless the client negotiated them.
struct ClientIn {
    stream: Arc<Async<UnixStream>>,
    unix_fd: bool,
    slot: Arc<Slot>,
    /// Descriptors received and not yet given to a message.
    pending: std::collections::VecDeque<OwnedFd>,
}

impl std::fmt::Debug for ClientIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIn")
            .field("pending", &self.pending.len())
            .finish()
    }
}

/// The length of the message a fixed header starts: the header, the
/// header fields padded to 8, the body; `None` for a bad endianness mark.
pub fn message_length(h: &[u8; 16]) -> Option<u64> {
    let num = |b: [u8; 4]| match h[0] {
        b'l' => Some(u64::from(u32::from_le_bytes(b))),
        b'B' => Some(u64::from(u32::from_be_bytes(b))),
        _ => None,
    };
    let body = num([h[4], h[5], h[6], h[7]])?;
    let fields = num([h[12], h[13], h[14], h[15]])?;
    Some(16 + fields.div_ceil(8) * 8 + body)
}

/// The UNIX_FDS header field of the message in `bytes`, if it has one.
fn declared_fds(bytes: &[u8]) -> Option<u32> {
    with_header(bytes, |_, h| {
        h.6.iter()
            .find(|(code, _)| *code == 9)
            .and_then(|(_, v)| u32::try_from(v).ok())
    })
}

/// A message's fixed header and header fields, as zvariant reads them.
type Header<'a> = (u8, u8, u8, u8, u32, u32, Vec<(u8, zbus::Variant<'a>)>);

/// `f` of the header of the message in `b` and the context it is encoded
/// in (the header borrows from what it was read from, hence a closure).
fn with_header<R>(
    b: &[u8],
    f: impl FnOnce(zbus::wire::serialized::Context, Header<'_>) -> Option<R>,
) -> Option<R> {
    use zbus::wire::serialized::{Context, Data};
    use zbus::wire::Endian;
    let endian = match b.first()? {
        b'l' => Endian::Little,
        b'B' => Endian::Big,
        _ => return None,
    };
    let ctxt = Context::new(endian, 0);
    let data = Data::new(b, ctxt);
    let (h, _): (Header<'_>, usize) = data.deserialize().ok()?;
    f(ctxt, h)
}

/// Whether the header fields of the message in `b` hold a code other than
/// the nine the D-Bus specification defines.  A quick walk: the known
/// fields' types are fixed; anything it does not expect is left to the
/// parser to judge (`false`).
fn has_unknown_fields(b: &[u8]) -> bool {
    let le = b.first() == Some(&b'l');
    let u32_at = |i: usize| -> Option<usize> {
        let x: [u8; 4] = b.get(i..i + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(x)
        } else {
            u32::from_be_bytes(x)
        } as usize)
    };
    let walk = || -> Option<bool> {
        let end = 16 + u32_at(12)?;
        let mut i: usize = 16;
        loop {
            i = i.div_ceil(8) * 8;
            if i >= end {
                return Some(false);
            }
            let code = *b.get(i)?;
            if !(1..=9).contains(&code) {
                return Some(true);
            }
            let sig_len = usize::from(*b.get(i + 1)?);
            let sig = b.get(i + 2..i + 2 + sig_len)?;
            i += 3 + sig_len;
            i = match sig {
                b"o" | b"s" => {
                    let at = i.div_ceil(4) * 4;
                    at + 4 + u32_at(at)? + 1
                }
                b"g" => i + 2 + usize::from(*b.get(i)?),
                b"u" => i.div_ceil(4) * 4 + 4,
                _ => return None,
            };
        }
    };
    walk().unwrap_or(false)
}

/// The message in `b` without its header fields of unknown codes, which
/// the specification says a receiver must ignore and zbus refuses (as
/// dbus-daemon does, the bus drops them before relaying); `None` if its
/// header does not parse.
fn without_unknown_fields(b: &[u8]) -> Option<Vec<u8>> {
    with_header(b, |ctxt, mut h| {
        // The body is the message's last `h.4` bytes.
        let body = b.get(b.len().checked_sub(usize::try_from(h.4).ok()?)?..)?;
        h.6.retain(|(code, _)| (1..=9).contains(code));
        let mut out = zbus::wire::to_bytes(ctxt, &h).ok()?.to_vec();
        out.resize(out.len().div_ceil(8) * 8, 0);
        out.extend_from_slice(body);
        Some(out)
    })
}

impl ClientIn {
    fn new(stream: Arc<Async<UnixStream>>, unix_fd: bool, slot: Arc<Slot>) -> ClientIn {
        ClientIn {
            stream,
            unix_fd,
            slot,
            pending: std::collections::VecDeque::new(),
        }
    }

    /// Takes descriptors that came with bytes.
    fn take_fds(&mut self, fds: Vec<OwnedFd>) -> io::Result<()> {
        if fds.is_empty() {
            return Ok(());
        }
        if !self.unix_fd {
            return Err(io::Error::other(
                "descriptors sent without NEGOTIATE_UNIX_FD",
            ));
        }
        self.pending.extend(fds);
        if self.pending.len() > MAX_FDS {
            return Err(io::Error::other(format!(
                "more than {MAX_FDS} descriptors waiting for their messages"
            )));
        }
        Ok(())
    }

    /// Fills `buf[from..]` from the stream.
    async fn fill(&mut self, buf: &mut [u8], mut from: usize) -> io::Result<()> {
        while from < buf.len() {
            let (n, fds) = self
                .stream
                .read_with(|s| recv_fds(s.as_raw_fd(), &mut buf[from..]))
                .await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the stream",
                ));
            }
            self.take_fds(fds)?;
            from += n;
        }
        Ok(())
    }

    /// The next message; its length stays charged to the uid until the
    /// caller gives it back.
    async fn next_message(&mut self, seq: u64) -> zbus::Result<Message> {
        let mut header = [0u8; 16];
        self.fill(&mut header, 0).await?;
        let len = message_length(&header)
            .ok_or_else(|| io::Error::other("a message with a bad endianness mark"))?;
        if len > MAX_MESSAGE as u64 {
            return Err(io::Error::other(format!(
                "a message of {len} bytes (at most {MAX_MESSAGE})"
            ))
            .into());
        }
        let len = len as usize;
        self.slot.charge(len)?;
        let mut bytes = vec![0u8; len];
        bytes[..16].copy_from_slice(&header);
        if let Err(e) = self.fill(&mut bytes, 16).await {
            self.slot.release(len);
            return Err(e.into());
        }
        let mut fds = Vec::new();
        if !self.pending.is_empty() {
            // The message takes the number its UNIX_FDS field declares,
            // oldest first; a message declaring more than have come is
            // refused (zbus would take what is missing from its own reads).
            let declared = declared_fds(&bytes).unwrap_or(0) as usize;
            if declared > self.pending.len() {
                self.slot.release(len);
                return Err(io::Error::other(format!(
                    "a message declares {declared} descriptors, {} came",
                    self.pending.len()
                ))
                .into());
            }
            fds = self.pending.drain(..declared).collect();
        }
        if has_unknown_fields(&bytes) {
            match without_unknown_fields(&bytes) {
                Some(b) => bytes = b,
                None => {
                    self.slot.release(len);
                    return Err(io::Error::other("a message whose header does not parse").into());
                }
            }
        }
        let m = Replay.receive_message(seq, &mut bytes, &mut fds).await;
        if m.is_err() {
            self.slot.release(len);
        }
        m
    }
}

/// One `recvmsg` on a stream: bytes and the descriptors that came with them.
fn recv_fds(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // Room for one SCM_RIGHTS message of MAX_FDS descriptors, on the stack.
    let mut ctl = [0u8; RIGHTS_SPACE];
    // SAFETY: an all-zero msghdr is valid.
    let mut m: libc::msghdr = unsafe { zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
    m.msg_controllen = ctl.len();
    // SAFETY: `m` describes live buffers.
    let n = unsafe { libc::recvmsg(fd, &mut m, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: recvmsg just wrote the first `msg_controllen` bytes of `ctl`
    // for this process (MSG_CMSG_CLOEXEC): its descriptors are ours alone.
    let fds = unsafe { crate::dgram::take_rights(&ctl[..m.msg_controllen.min(ctl.len())]) };
    if m.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other("more than 253 descriptors in one message"));
    }
    Ok((n as usize, fds))
}

/// Writes one message and its descriptors (with its first bytes).
async fn write_all(s: &Async<UnixStream>, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let mut off = 0;
    while off < bytes.len() {
        let with = if off == 0 { fds } else { &[] };
        off += s
            .write_with(|s| send_fds(s.as_raw_fd(), &bytes[off..], with))
            .await?;
    }
    Ok(())
}

fn send_fds(fd: RawFd, bytes: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let mut ctl = Vec::new();
    crate::dgram::push_rights(&mut ctl, fds);
    // SAFETY: an all-zero msghdr is valid.
    let mut m: libc::msghdr = unsafe { zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    if !ctl.is_empty() {
        m.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
        m.msg_controllen = ctl.len();
    }
    // SAFETY: `m` describes live buffers.
    let n = unsafe { libc::sendmsg(fd, &m, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &mut Sasl, input: &str) -> (String, Option<Authenticated>) {
        let (out, done) = s.feed(input.as_bytes()).unwrap();
        (String::from_utf8(out).unwrap(), done)
    }

    #[test]
    fn libdbus_and_gdbus_handshakes() {
        // libdbus and GDBus: the identity with AUTH, pipelined.
        let mut s = Sasl::new(1000, "g".into());
        let (out, done) = run(
            &mut s,
            "\0AUTH EXTERNAL 31303030\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\nlrest",
        );
        assert_eq!(out, "OK g\r\nAGREE_UNIX_FD\r\n");
        assert_eq!(
            done,
            Some(Authenticated {
                rest: b"lrest".to_vec(),
                unix_fd: true
            })
        );
        // sd-bus and zbus: AUTH EXTERNAL, then an empty DATA.
        let mut s = Sasl::new(0, "g".into());
        let (out, done) = run(&mut s, "\0AUTH\r\nAUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n");
        assert_eq!(out, "REJECTED EXTERNAL\r\nDATA\r\nOK g\r\n");
        assert!(!done.unwrap().unix_fd);
    }

    #[test]
    fn a_claimed_uid_must_be_the_kernels() {
        let mut s = Sasl::new(65534, "g".into());
        // uid 0 claimed by uid 65534.
        let (out, done) = run(&mut s, "\0AUTH EXTERNAL 30\r\nBEGIN\r\n");
        assert_eq!(
            out,
            "REJECTED EXTERNAL\r\nERROR \"BEGIN before authentication\"\r\n"
        );
        assert!(done.is_none());
        let (out, _) = run(
            &mut s,
            "AUTH DBUS_COOKIE_SHA1 726f6f74\r\nAUTH EXTERNAL zz\r\n",
        );
        assert_eq!(out, "REJECTED EXTERNAL\r\nREJECTED EXTERNAL\r\n");
        let (out, done) = run(&mut s, "AUTH EXTERNAL 3635353334\r\nBEGIN\r\n");
        assert_eq!(out, "OK g\r\n");
        assert!(done.is_some());
    }

    #[test]
    fn bad_handshakes() {
        assert!(Sasl::new(0, "g".into()).feed(b"AUTH\r\n").is_err());
        let mut s = Sasl::new(0, "g".into());
        assert!(s.feed(b"\0").is_ok());
        assert!(s.feed(&vec![b'A'; SASL_MAX + 1]).is_err());
        let mut s = Sasl::new(0, "g".into());
        let (out, _) = run(&mut s, "\0NEGOTIATE_UNIX_FD\r\nDATA\r\n");
        assert_eq!(
            out,
            "ERROR \"NEGOTIATE_UNIX_FD is not expected here\"\r\nERROR \"DATA is not expected here\"\r\n"
        );
    }

    #[test]
    fn a_handshake_is_bounded_in_all_not_per_line() {
        let mut s = Sasl::new(0, "g".into());
        assert!(s.feed(b"\0").is_ok());
        // Short lines, each answered, until the whole passes 16 KiB.
        let line = b"NOPE\r\n";
        let mut fed = 1;
        while fed + line.len() <= SASL_MAX {
            assert!(s.feed(line).is_ok());
            fed += line.len();
        }
        assert!(s.feed(line).is_err());
    }

    fn config() -> Config {
        Config {
            bus: "@b".into(),
            max_queued: 100,
            max_per_uid: 2,
            max_connections: 3,
            max_uid_bytes: 1000,
        }
    }

    #[test]
    fn connections_are_bounded_per_uid_and_in_all() {
        let p = Arc::new(PerUid::default());
        let c = config();
        let a = p.take(1, &c).unwrap();
        let _b = p.take(1, &c).unwrap();
        assert!(p.take(1, &c).unwrap_err().contains("the uid holds 2"));
        let _d = p.take(2, &c).unwrap();
        assert!(p.take(3, &c).unwrap_err().contains("the bridge holds 3"));
        drop(a);
        assert!(p.take(1, &c).is_ok());
    }

    #[test]
    fn bytes_are_charged_to_the_uid_and_given_back() {
        let p = Arc::new(PerUid::default());
        let c = config();
        let a = p.take(1, &c).unwrap();
        let b = p.take(1, &c).unwrap();
        a.charge(600).unwrap();
        assert!(b.charge(500).is_err());
        b.charge(400).unwrap();
        a.release(600);
        b.charge(500).unwrap();
        // A connection that goes gives back what it held.
        drop(b);
        a.charge(1000).unwrap();
    }

    #[test]
    fn the_message_length_comes_from_the_fixed_header() {
        let mut h = [0u8; 16];
        h[0] = b'l';
        h[4..8].copy_from_slice(&5u32.to_le_bytes());
        h[12..16].copy_from_slice(&9u32.to_le_bytes());
        assert_eq!(message_length(&h), Some(16 + 16 + 5));
        h[0] = b'B';
        h[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        h[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            message_length(&h),
            Some(16 + (1u64 << 32) + u64::from(u32::MAX))
        );
        h[0] = b'x';
        assert_eq!(message_length(&h), None);
    }

    /// A client's end of a stream, and the bridge's reader of the other.
    fn client_pair(unix_fd: bool, slot: &Arc<Slot>) -> (UnixStream, ClientIn) {
        let (a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let stream = Arc::new(Async::new(&SharedRuntime::current().unwrap(), b).unwrap());
        (a, ClientIn::new(stream, unix_fd, slot.clone()))
    }

    /// Sends `bytes` on `s` with `fds` attached.
    fn send_with(s: &UnixStream, bytes: &[u8], fds: &[RawFd]) {
        let mut off = 0;
        while off < bytes.len() {
            off += send_fds(
                s.as_raw_fd(),
                &bytes[off..],
                if off == 0 { fds } else { &[] },
            )
            .unwrap();
        }
    }

    fn call(member: &str, fd: Option<&std::os::fd::OwnedFd>) -> Message {
        use std::os::fd::AsFd;
        let b = Message::method_call("/p", member)
            .destination("org.example.X")
            .interface("org.example.X");
        match fd {
            Some(f) => b.build(&(zbus::Fd::from(f.as_fd()),)).unwrap(),
            None => b.build(&("no descriptor",)).unwrap(),
        }
    }

    #[test]
    fn descriptors_go_to_the_message_that_declares_them() {
        let p = Arc::new(PerUid::default());
        let slot = Arc::new(p.take(0, &config_big()).unwrap());
        let (a, mut c) = client_pair(true, &slot);
        let (r, _w) = std::io::pipe().unwrap();
        let r = OwnedFd::from(r);
        // A message without, then one with a descriptor in its own sendmsg.
        send_with(&a, call("First", None).data().bytes(), &[]);
        let second = call("Second", Some(&r));
        send_with(&a, second.data().bytes(), &[r.as_raw_fd()]);
        // Both in one sendmsg, the descriptor with the first bytes.
        let mut both = call("Third", None).data().bytes().to_vec();
        both.extend_from_slice(call("Fourth", Some(&r)).data().bytes());
        send_with(&a, &both, &[r.as_raw_fd()]);
        zbus::block_on(async {
            for (seq, (member, n)) in [("First", 0), ("Second", 1), ("Third", 0), ("Fourth", 1)]
                .into_iter()
                .enumerate()
            {
                let m = c.next_message(seq as u64).await.unwrap();
                assert_eq!(m.header().member().unwrap().as_str(), member);
                assert_eq!(m.data().fds().len(), n, "{member}");
                slot.release(m.data().len());
            }
        });
        assert!(c.pending.is_empty());
    }

    fn config_big() -> Config {
        Config {
            max_uid_bytes: 1 << 20,
            ..config()
        }
    }

    #[test]
    fn descriptors_not_negotiated_or_not_declared_are_refused() {
        let p = Arc::new(PerUid::default());
        let slot = Arc::new(p.take(0, &config_big()).unwrap());
        let (r, _w) = std::io::pipe().unwrap();
        let r = OwnedFd::from(r);
        for (unix_fd, member) in [(false, "Plain"), (true, "Declares")] {
            let (a, mut c) = client_pair(unix_fd, &slot);
            // Without NEGOTIATE_UNIX_FD any descriptor drops the client;
            // with it, a message declaring one that never came does.
            if unix_fd {
                send_with(&a, call(member, Some(&r)).data().bytes(), &[]);
            } else {
                send_with(&a, call(member, None).data().bytes(), &[r.as_raw_fd()]);
            }
            zbus::block_on(async { assert!(c.next_message(0).await.is_err(), "{member}") });
        }
        // Whatever the failed reads charged was given back.
        assert_eq!(slot.bytes.load(Ordering::Relaxed), 0);
    }

    /// `m` with an 8-byte field of unknown code 123 (type `u`) inserted at
    /// the start (`at_end` false) or the end of its header fields.
    fn with_weird_field(m: &Message, at_end: bool) -> Vec<u8> {
        let mut b = m.data().bytes().to_vec();
        let flen = u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
        let at = if at_end {
            16 + flen.div_ceil(8) * 8
        } else {
            16
        };
        b.splice(at..at, [123u8, 1, b'u', 0, 0x12, 0x34, 0x56, 0x78]);
        let nl = if at_end {
            flen.div_ceil(8) * 8 + 8
        } else {
            flen + 8
        } as u32;
        b[12..16].copy_from_slice(&nl.to_le_bytes());
        b
    }

    #[test]
    fn unknown_header_fields_are_dropped_not_the_client() {
        let m = call("Weird", None);
        assert!(!has_unknown_fields(m.data().bytes()));
        for at_end in [false, true] {
            let b = with_weird_field(&m, at_end);
            assert!(has_unknown_fields(&b));
            // zbus refuses it as it is...
            assert!(
                zbus::block_on(Replay.receive_message(0, &mut b.clone(), &mut Vec::new())).is_err()
            );
            // ...and takes it without the field, the same message.
            let s = without_unknown_fields(&b).unwrap();
            assert!(!has_unknown_fields(&s));
            let back =
                zbus::block_on(Replay.receive_message(0, &mut s.clone(), &mut Vec::new())).unwrap();
            assert_eq!(back.header().member().unwrap().as_str(), "Weird");
            assert_eq!(
                back.body().deserialize::<String>().unwrap(),
                "no descriptor"
            );
            assert_eq!(s, m.data().bytes());
        }
    }
}
