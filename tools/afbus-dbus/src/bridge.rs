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
//! disconnected, as dbus-broker does, and nobody else waits for it.

use std::io::{self, Read, Write};
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_io::Async;
use zbus::connection::socket::{ReadHalf, Socket, WriteHalf};
use zbus::export::async_trait::async_trait;
use zbus::message::Message;

use crate::addr::BusPath;
use crate::socket::{expects_reply, guid_of};
use crate::AfBus;

/// What may wait for a client that does not read before it is dropped.
pub const DEFAULT_MAX_QUEUED: usize = 16 << 20;
/// How long a client may take to authenticate.
const SASL_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest handshake the bridge reads (commands are short lines).
const SASL_MAX: usize = 16 * 1024;
/// Descriptors one message may carry (the D-Bus reference's limit).
const MAX_FDS: usize = 253;

/// How the bridge runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The AF_BUS bus: `/path` or `@abstract-name`.
    pub bus: String,
    /// Bytes of messages that may wait for one client.
    pub max_queued: usize,
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
    let listener = UnixListener::bind(listen)?;
    std::fs::set_permissions(listen, std::fs::Permissions::from_mode(0o666))?;
    let log = Arc::new(log);
    let cfg = Arc::new(cfg);
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
        let (cfg, log) = (cfg.clone(), log.clone());
        std::thread::spawn(move || {
            let who = match peer_creds(&stream) {
                Ok(c) => c,
                Err(e) => return log(format!("a client without credentials: {e}")),
            };
            let name = format!("client pid {} uid {}", who.pid, who.uid);
            log(format!("{name} connected"));
            let why = match relay(stream, who, &cfg) {
                Ok(()) => "disconnected".to_string(),
                Err(e) => format!("dropped: {e}"),
            };
            log(format!("{name} {why}"));
        });
    }
    Ok(())
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
        }
    }

    /// Takes bytes the client sent; returns the reply lines to write and,
    /// once `BEGIN` came, the outcome.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(Vec<u8>, Option<Authenticated>), String> {
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
        if self.buf.len() > SASL_MAX {
            return Err("a handshake line longer than 16 KiB".into());
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
fn relay(mut stream: UnixStream, who: libc::ucred, cfg: &Config) -> io::Result<()> {
    let bus = BusPath::parse(&cfg.bus).map_err(io::Error::other)?;
    let mut sasl = Sasl::new(who.uid, guid_of(&bus));
    stream.set_read_timeout(Some(SASL_TIMEOUT))?;
    // The handshake is consumed a line at a time, after a peek: a plain
    // read past `BEGIN` could take the start of a message that carries
    // descriptors, and drop them (read(2) takes no control messages).
    let mut buf = [0u8; 4096];
    let auth = loop {
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
        stream.read_exact(&mut buf[..line])?;
        let (reply, done) = sasl.feed(&buf[..line]).map_err(io::Error::other)?;
        stream.write_all(&reply)?;
        if let Some(a) = done {
            break a;
        }
    };
    stream.set_read_timeout(None)?;
    let socket = AfBus::for_client(&cfg.bus, who)?;
    let (mut from_bus, mut to_bus) = socket.split().take();
    let stream = Arc::new(Async::new(stream)?);
    let queued = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = async_channel::unbounded::<Message>();
    // The serial of the client's Hello, and word when its answer came: until
    // then the endpoint is not a member and may send nothing else (a
    // client such as sd-bus sends its first calls right behind Hello).
    let hello = AtomicU32::new(0);
    let (joined_tx, joined_rx) = async_channel::bounded::<()>(1);

    // The client's messages, to the bus.
    let inbound = async {
        let mut client = ClientIn(stream.clone());
        let mut rest = auth.rest;
        let mut seq = 0;
        loop {
            let msg = match client
                .receive_message(seq, &mut rest, &mut Vec::new())
                .await
            {
                Ok(m) => m,
                Err(zbus::Error::InputOutput(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Ok(())
                }
                Err(e) => return Err(io::Error::other(format!("a malformed message: {e}"))),
            };
            seq += 1;
            let is_hello = seq == 1 && is_hello(&msg);
            if is_hello {
                hello.store(msg.primary_header().serial_num().get(), Ordering::Relaxed);
            }
            if let Err(e) = to_bus.send_message(&msg).await {
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
            let len = msg.data().len();
            if queued.fetch_add(len, Ordering::Relaxed) + len > cfg.max_queued {
                return Err(io::Error::other(format!(
                    "stopped reading ({} bytes waiting)",
                    queued.load(Ordering::Relaxed)
                )));
            }
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

/// The client's stream, read by zbus's own message assembly.
#[derive(Debug)]
struct ClientIn(Arc<Async<UnixStream>>);

#[async_trait]
impl ReadHalf for ClientIn {
    async fn recvmsg(&mut self, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
        self.0.read_with(|s| recv_fds(s.as_raw_fd(), buf)).await
    }
}

/// One `recvmsg` on a stream: bytes and the descriptors that came with them.
fn recv_fds(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: CMSG_SPACE is arithmetic.
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS * size_of::<RawFd>()) as u32) } as usize;
    let mut ctl = vec![0u8; space];
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
    let mut fds = Vec::new();
    // SAFETY: the kernel wrote `msg_controllen` bytes of control messages;
    // each SCM_RIGHTS descriptor is ours to own.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&m);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const libc::c_int;
                let dlen = (*c).cmsg_len - libc::CMSG_LEN(0) as usize;
                for i in 0..dlen / size_of::<libc::c_int>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(&m, c);
        }
    }
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
    let fd_bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is arithmetic.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut ctl = vec![0u8; if fds.is_empty() { 0 } else { space }];
    // SAFETY: an all-zero msghdr is valid.
    let mut m: libc::msghdr = unsafe { zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    if !fds.is_empty() {
        m.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
        m.msg_controllen = ctl.len();
        // SAFETY: `ctl` has room for one header and `fds`.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&m);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr() as *const u8, libc::CMSG_DATA(c), fd_bytes);
        }
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
}
