// SPDX-License-Identifier: GPL-2.0

//! The bridge's checks: unmodified D-Bus programs from Debian's packages
//! (`dbus-send`, `dbus-monitor`, `gdbus`, `dbus-test-tool`), joined to the
//! AF_BUS bus through `afbus-dbus bridge`, with native zbus peers.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zbus::fdo::DBusProxy;
use zbus::{MatchRule, MessageStream};

use crate::{
    bus_call, connect, echo, same, start_service, timed, zerr, Check, Services, ECHO, NOBODY, PATH,
};

/// Where the test run's bridge listens.
pub const BRIDGE: &str = "/tmp/afbus-dbus-test-bridge";
/// What the bridge lets wait for one client (small, so that the check of a
/// client that does not read is quick).
pub const MAX_QUEUED: usize = 4 << 20;

/// Connections one uid may hold on the test run's bridge.
pub const MAX_PER_UID: usize = 16;

fn address() -> String {
    format!("unix:path={BRIDGE}")
}

/// What a program printed, and how it ended.
struct Ran {
    code: Option<i32>,
    out: String,
    err: String,
}

/// Runs a legacy program whose system bus is the bridge, as `uid` (root if
/// `None`), killing it after 30 s.
fn legacy(prog: &str, args: &[&str], uid: Option<u32>) -> Result<Ran, String> {
    let mut c = Command::new(prog);
    c.args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", address())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
    let child = c.spawn().map_err(|e| format!("{prog}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(r) => r.map_err(|e| e.to_string())?,
        Err(_) => {
            // SAFETY: kill(2) takes no pointers.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Err(format!("{prog} {args:?} did not end in 30 s"));
        }
    };
    Ok(Ran {
        code: out.status.code(),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn dbus_send(args: &[&str], uid: Option<u32>) -> Result<Ran, String> {
    let mut all = vec!["--system", "--print-reply", "--reply-timeout=20000"];
    all.extend_from_slice(args);
    legacy("dbus-send", &all, uid)
}

/// `r` ended with `code` and `text` in its output (stdout, else stderr).
fn expect(what: &str, r: &Ran, code: i32, text: &str) -> Check {
    if r.code == Some(code) && (r.out.contains(text) || r.err.contains(text)) {
        return Ok(());
    }
    Err(format!(
        "{what}: want exit {code} and {text:?}; got exit {:?}, stdout {:?}, stderr {:?}",
        r.code, r.out, r.err
    ))
}

/// A long-running legacy program and its output, line by line.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    err: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Running {
    fn start(prog: &str, args: &[&str]) -> Result<Running, String> {
        let mut child = Command::new(prog)
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", address())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{prog}: {e}"))?;
        let (tx, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let err = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut e = child.stderr.take().unwrap();
        let err2 = err.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let mut buf = [0u8; 512];
            while let Ok(n) = e.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
                *err2.lock().unwrap() = s.clone();
            }
        });
        Ok(Running { child, lines, err })
    }

    /// Lines until one contains `text`, within `secs`; every line read.
    fn until(&self, text: &str, secs: u64, seen: &mut Vec<String>) -> Check {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.contains(text);
                    seen.push(l);
                    if hit {
                        return Ok(());
                    }
                }
                Err(_) => {
                    return Err(format!(
                        "no line with {text:?} in {secs} s; stdout {seen:?}, stderr {:?}",
                        self.err.lock().unwrap()
                    ))
                }
            }
        }
    }

    /// Every line that comes within `ms`.
    fn drain(&self, ms: u64, seen: &mut Vec<String>) {
        let end = Instant::now() + Duration::from_millis(ms);
        while let Ok(l) = self
            .lines
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            seen.push(l);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const DEST: &str = "--dest=org.example.Echo";

pub fn check_dbus_send_calls_a_zbus_service(bus: &str) -> Check {
    let (c, unique) = start_service(bus, ECHO, "svc")?;
    let _s = Services { children: vec![c] };
    let r = dbus_send(
        &[DEST, PATH, "org.example.Echo.Ping", "string:legacy"],
        None,
    )?;
    expect("dbus-send Ping", &r, 0, "string \"svc: legacy\"")?;
    // By the service's unique name, and the sender the service saw is a
    // unique name of the bus (the bridge's endpoint for dbus-send).
    let to = format!("--dest={unique}");
    let r = dbus_send(&[&to, PATH, "org.example.Echo.Caller"], None)?;
    expect("dbus-send Caller", &r, 0, "string \":1.")?;
    let r = dbus_send(&[DEST, PATH, "org.example.Echo.Fail", "string:why"], None)?;
    expect(
        "dbus-send Fail",
        &r,
        1,
        "Error org.example.Echo.Error.Refused: refused: why",
    )?;
    let r = dbus_send(
        &[
            "--dest=org.example.Nobody",
            PATH,
            "org.example.Echo.Ping",
            "string:x",
        ],
        None,
    )?;
    expect(
        "dbus-send to a name nobody owns",
        &r,
        1,
        "Error org.freedesktop.DBus.Error.ServiceUnknown",
    )?;
    // The bus itself, through the bridge.
    let r = dbus_send(
        &[
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.GetNameOwner",
            "string:org.example.Echo",
        ],
        None,
    )?;
    expect(
        "dbus-send GetNameOwner",
        &r,
        0,
        &format!("string \"{unique}\""),
    )
}

pub fn check_policy_by_the_legacy_clients_uid(bus: &str) -> Check {
    let (a, _) = start_service(bus, ECHO, "svc")?;
    let (b, _) = start_service(bus, "org.example.Admin", "admin")?;
    let _s = Services {
        children: vec![a, b],
    };
    // The uid the master recorded is the client's, not the bridge's.
    let r = dbus_send(&[DEST, PATH, "org.example.Echo.CallerUid"], Some(NOBODY))?;
    expect("CallerUid of dbus-send as uid 65534", &r, 0, "uint32 65534")?;
    let r = dbus_send(&[DEST, PATH, "org.example.Echo.CallerUid"], None)?;
    expect("CallerUid of dbus-send as root", &r, 0, "uint32 0")?;
    let request = |name: &str, uid| {
        dbus_send(
            &[
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.RequestName",
                &format!("string:{name}"),
                "uint32:4",
            ],
            uid,
        )
    };
    expect(
        "uid 65534 requests org.example.Legacy",
        &request("org.example.Legacy", Some(NOBODY))?,
        1,
        "Error org.freedesktop.DBus.Error.AccessDenied",
    )?;
    expect(
        "uid 65534 requests org.nobody.Legacy",
        &request("org.nobody.Legacy", Some(NOBODY))?,
        0,
        "uint32 1",
    )?;
    expect(
        "root requests org.example.Legacy",
        &request("org.example.Legacy", None)?,
        0,
        "uint32 1",
    )?;
    // The send rule: only uid 0 may call org.example.Admin.
    let admin = [
        "--dest=org.example.Admin",
        PATH,
        "org.example.Echo.Ping",
        "string:x",
    ];
    expect(
        "uid 65534 calls org.example.Admin",
        &dbus_send(&admin, Some(NOBODY))?,
        1,
        "Error org.freedesktop.DBus.Error.AccessDenied",
    )?;
    expect(
        "root calls org.example.Admin",
        &dbus_send(&admin, None)?,
        0,
        "string \"admin: x\"",
    )?;
    // A claimed uid that is not the kernel's is refused at the handshake.
    let mut s = UnixStream::connect(BRIDGE).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(b"\0AUTH EXTERNAL 31303030\r\n")
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).map_err(|e| e.to_string())?;
    same(
        "root claiming uid 1000",
        String::from_utf8_lossy(&buf[..n]).to_string(),
        "REJECTED EXTERNAL\r\n".into(),
    )
}

pub fn check_eavesdropping_is_refused(bus: &str) -> Check {
    let (c, _) = start_service(bus, ECHO, "svc")?;
    let _s = Services { children: vec![c] };
    let monitor = Running::start("dbus-monitor", &["--system"])?;
    let mut seen = Vec::new();
    // dbus-monitor asks to become a monitor, then falls back to
    // eavesdropping match rules: both are refused.
    let end = Instant::now() + Duration::from_secs(20);
    while !monitor.err.lock().unwrap().contains("AccessDenied") {
        if Instant::now() > end {
            return Err(format!(
                "dbus-monitor was not refused in 20 s: stdout {seen:?}, stderr {:?}",
                monitor.err.lock().unwrap()
            ));
        }
        monitor.drain(200, &mut seen);
    }
    monitor.drain(1000, &mut seen);
    timed(30, async {
        let conn = connect(bus).await?;
        let p = echo(&conn, ECHO).await?;
        same(
            "Ping",
            zerr(p.ping("unicast-secret").await)?,
            "svc: unicast-secret".into(),
        )?;
        // A broadcast anyone may hear, to show the monitor was listening.
        zerr(p.announce(PATH, "broadcast-public", 1).await)
    })?;
    let r = dbus_send(
        &[DEST, PATH, "org.example.Echo.Ping", "string:legacy-secret"],
        None,
    )?;
    expect("dbus-send Ping", &r, 0, "svc: legacy-secret")?;
    let heard = monitor.until("broadcast-public", 10, &mut seen);
    monitor.drain(500, &mut seen);
    let all = seen.join("\n");
    if all.contains("secret") {
        return Err(format!("dbus-monitor saw a unicast message: {all}"));
    }
    heard.map_err(|e| format!("dbus-monitor did not hear the broadcast either: {e}"))
}

pub fn check_gdbus_and_native_signals(bus: &str) -> Check {
    let (c, _) = start_service(bus, ECHO, "svc")?;
    let _s = Services { children: vec![c] };
    let r = legacy(
        "gdbus",
        &[
            "call",
            "--system",
            "--dest",
            ECHO,
            "--object-path",
            PATH,
            "--method",
            "org.example.Echo.Ping",
            "gdbus",
        ],
        None,
    )?;
    expect("gdbus call Ping", &r, 0, "('svc: gdbus',)")?;
    // gdbus monitor: a legacy subscriber of a native service's signals.
    let mon = Running::start(
        "gdbus",
        &["monitor", "--system", "--dest", ECHO, "--object-path", PATH],
    )?;
    let mut seen = Vec::new();
    mon.until("is owned by", 20, &mut seen)?;
    mon.drain(500, &mut seen);
    timed(30, async {
        let conn = connect(bus).await?;
        let p = echo(&conn, ECHO).await?;
        zerr(p.announce(PATH, "to-gdbus", 9).await)?;
        // Elsewhere: gdbus's rule names this path only.
        zerr(p.announce("/org/example/Other", "elsewhere", 1).await)
    })?;
    mon.until(
        "org.example.Echo.Changed ('to-gdbus', uint32 9)",
        10,
        &mut seen,
    )?;
    mon.drain(500, &mut seen);
    if seen.iter().any(|l| l.contains("elsewhere")) {
        return Err(format!(
            "gdbus monitor got a signal of another path: {seen:?}"
        ));
    }
    // And the other way: dbus-send broadcasts, a zbus subscriber hears it.
    timed(30, async {
        let conn = connect(bus).await?;
        let rule = "type='signal',interface='org.example.Legacy',member='Said',arg0='hello'";
        let rule = MatchRule::try_from(rule).map_err(|e| e.to_string())?;
        let mut stream = zerr(MessageStream::for_match_rule(rule, &conn, None).await)?;
        let r = legacy(
            "dbus-send",
            &[
                "--system",
                "--type=signal",
                "/org/example/Legacy",
                "org.example.Legacy.Said",
                "string:hello",
                "uint32:3",
            ],
            None,
        )?;
        expect("dbus-send a signal", &r, 0, "")?;
        let m = crate::next_within(&mut stream, 10_000)
            .await
            .ok_or("the zbus subscriber got no signal from dbus-send")?;
        let body: (String, u32) = zerr(m.body().deserialize())?;
        same("the signal's body", body, ("hello".into(), 3))?;
        let sender = m
            .header()
            .sender()
            .map(|s| s.to_string())
            .unwrap_or_default();
        if !sender.starts_with(":1.") {
            return Err(format!(
                "the signal's sender {sender:?} is not a unique name"
            ));
        }
        Ok(())
    })
}

pub fn check_zbus_calls_a_legacy_service(bus: &str) -> Check {
    const LEGACY: &str = "org.example.LegacyEcho";
    // dbus-test-tool echo answers every call with an empty reply.
    let svc = Running::start(
        "dbus-test-tool",
        &["echo", "--system", &format!("--name={LEGACY}")],
    )?;
    timed(40, async {
        let conn = connect(bus).await?;
        let dbus = zerr(DBusProxy::new(&conn).await)?;
        let end = Instant::now() + Duration::from_secs(20);
        while !zerr(dbus.name_has_owner(LEGACY.try_into().unwrap()).await)? {
            if Instant::now() > end {
                return Err(format!(
                    "dbus-test-tool did not own {LEGACY} in 20 s: {:?}",
                    svc.err.lock().unwrap()
                ));
            }
            async_io::Timer::after(Duration::from_millis(100)).await;
        }
        let owner = zerr(dbus.get_name_owner(LEGACY.try_into().unwrap()).await)?;
        let p = zbus::Proxy::new(&conn, LEGACY, "/", "org.example.Anything")
            .await
            .map_err(|e| e.to_string())?;
        zerr(
            p.call::<_, _, ()>("Whatever", &("over the bridge", 5u32))
                .await,
        )?;
        // A descriptor to the legacy service (libdbus drops a connection
        // whose message lacks the descriptors it announces).
        let (r, _w) = std::io::pipe().map_err(|e| e.to_string())?;
        zerr(
            p.call::<_, _, ()>("TakeFd", &(zbus::Fd::from(r.as_fd()),))
                .await,
        )?;
        // It is still there, under the same owner.
        let again = zerr(dbus.get_name_owner(LEGACY.try_into().unwrap()).await)?;
        same(
            "the legacy service's owner",
            again.to_string(),
            owner.to_string(),
        )
    })
}

pub fn check_fds_across_the_bridge(bus: &str) -> Check {
    let (c, _) = start_service(bus, ECHO, "svc")?;
    let _s = Services { children: vec![c] };
    // To the legacy client: dbus-send prints a descriptor it received.
    let r = dbus_send(&[DEST, PATH, "org.example.Echo.MakeFd", "string:abc"], None)?;
    expect("dbus-send MakeFd", &r, 0, "file descriptor")?;
    // From a legacy client (dbus-send cannot send one): a raw stream
    // client sends ReadFd with SCM_RIGHTS through the bridge, pipelined
    // right behind Hello; once in a sendmsg of its own, once in the same
    // sendmsg as the handshake's BEGIN.
    for together in [false, true] {
        let mut s = UnixStream::connect(BRIDGE).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(20))).ok();
        let hello = bus_call("Hello", &())?;
        let mut bytes = b"\0AUTH EXTERNAL 30\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n".to_vec();
        bytes.extend_from_slice(hello.data().bytes());
        let (r, w) = std::io::pipe().map_err(|e| e.to_string())?;
        std::fs::File::from(OwnedFd::from(w))
            .write_all(b"sent by a stream client")
            .map_err(|e| e.to_string())?;
        let call = zbus::Message::method_call(PATH, "ReadFd")
            .destination(ECHO)
            .interface(ECHO)
            .build(&(zbus::Fd::from(r.as_fd()),))
            .map_err(|e| e.to_string())?;
        let fd = r.as_fd().as_raw_fd();
        if together {
            bytes.extend_from_slice(call.data().bytes());
            same(
                "sendmsg (BEGIN, Hello and ReadFd)",
                send_with_fd(&s, &bytes, fd),
                bytes.len() as isize,
            )?;
        } else {
            s.write_all(&bytes).map_err(|e| e.to_string())?;
            let data = call.data().bytes();
            same(
                "sendmsg (ReadFd)",
                send_with_fd(&s, data, fd),
                data.len() as isize,
            )?;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let end = Instant::now() + Duration::from_secs(20);
        while !String::from_utf8_lossy(&got).contains("sent by a stream client") {
            let what = if together { "with BEGIN" } else { "alone" };
            if Instant::now() > end {
                return Err(format!(
                    "no answer to ReadFd sent {what}: {:?}",
                    String::from_utf8_lossy(&got)
                ));
            }
            match s.read(&mut buf) {
                Ok(0) => {
                    return Err(format!(
                        "the bridge closed (ReadFd sent {what}): {:?}",
                        String::from_utf8_lossy(&got)
                    ))
                }
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => {
                    return Err(format!(
                        "reading the answer (ReadFd sent {what}): {e}; got {:?}",
                        String::from_utf8_lossy(&got)
                    ))
                }
            }
        }
    }
    Ok(())
}

pub fn check_a_client_that_stops_reading(bus: &str) -> Check {
    let (c, _) = start_service(bus, ECHO, "svc")?;
    let _s = Services { children: vec![c] };
    // A raw legacy client: handshake, Hello, a match on the service's
    // signals, then it never reads again.
    let mut s = UnixStream::connect(BRIDGE).map_err(|e| e.to_string())?;
    let hello = bus_call("Hello", &())?;
    let add = bus_call("AddMatch", &"type='signal',interface='org.example.Echo'")?;
    let mut bytes = b"\0AUTH EXTERNAL 30\r\nBEGIN\r\n".to_vec();
    bytes.extend_from_slice(hello.data().bytes());
    bytes.extend_from_slice(add.data().bytes());
    s.write_all(&bytes).map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(500));
    let big = "x".repeat(16 * 1024);
    timed(120, async {
        let conn = connect(bus).await?;
        let p = echo(&conn, ECHO).await?;
        // 6 MiB of broadcasts, past what the bridge keeps for a client.
        for i in 0..(6 << 20) / big.len() {
            zerr(p.announce(PATH, &big, i as u32).await)?;
        }
        // Everyone else goes on: a call is answered at once.
        let t = Instant::now();
        same(
            "Ping after the flood",
            zerr(p.ping("still here").await)?,
            "svc: still here".into(),
        )?;
        if t.elapsed() > Duration::from_secs(5) {
            return Err(format!("a call took {:?} after the flood", t.elapsed()));
        }
        Ok(())
    })?;
    // The stuck client was disconnected: what the socket holds, then EOF.
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0usize;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => {
                return Err(format!(
                "the client that did not read was not disconnected ({total} bytes read, then {e})"
            ))
            }
        }
    }
    if total >= MAX_QUEUED + (1 << 20) {
        return Err(format!("the client got {total} bytes: more than the bound"));
    }
    Ok(())
}

/// Sends `data` on `s` with `fd` attached (`SCM_RIGHTS`); what sendmsg
/// returned.
fn send_with_fd(s: &UnixStream, data: &[u8], fd: std::os::fd::RawFd) -> isize {
    let mut ctl = Vec::new();
    afbus_dbus::dgram::push_rights(&mut ctl, &[fd]);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: an all-zero msghdr is valid; it then describes `iov` and
    // `ctl`, which outlive the call.
    unsafe {
        let mut m: libc::msghdr = std::mem::zeroed();
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        m.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
        m.msg_controllen = ctl.len();
        libc::sendmsg(s.as_raw_fd(), &m, 0)
    }
}

/// Reads `s` until the bridge closes it; an error if it does not within
/// `secs`.
fn closed_within(s: &mut UnixStream, secs: u64, what: &str) -> Check {
    s.set_read_timeout(Some(Duration::from_secs(secs))).ok();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(format!("{what}: the bridge kept the client ({e})")),
        }
    }
}

/// A client that sends descriptors it did not negotiate, or announces a
/// message larger than 32 MiB, is dropped at once: before, the bridge
/// took the descriptors anyway (they count against nobody) and allocated
/// whatever length a header announced, up to zbus's 128 MiB, per
/// connection.
pub fn check_oversize_and_unasked_fds(bus: &str) -> Check {
    let (c, _) = start_service(bus, ECHO, "svc")?;
    let _s = Services { children: vec![c] };
    let hello = bus_call("Hello", &())?;
    // Descriptors without NEGOTIATE_UNIX_FD.
    let mut s = UnixStream::connect(BRIDGE).map_err(|e| e.to_string())?;
    let mut bytes = b"\0AUTH EXTERNAL 30\r\nBEGIN\r\n".to_vec();
    bytes.extend_from_slice(hello.data().bytes());
    s.write_all(&bytes).map_err(|e| e.to_string())?;
    let ping = zbus::Message::method_call(PATH, "Ping")
        .destination(ECHO)
        .interface(ECHO)
        .build(&("with a descriptor attached",))
        .map_err(|e| e.to_string())?;
    let (r, _w) = std::io::pipe().map_err(|e| e.to_string())?;
    let data = ping.data().bytes();
    same(
        "sendmsg",
        send_with_fd(&s, data, r.as_fd().as_raw_fd()),
        data.len() as isize,
    )?;
    closed_within(&mut s, 10, "descriptors it did not negotiate")?;
    // A fixed header announcing a body of 100 MiB.
    let mut s = UnixStream::connect(BRIDGE).map_err(|e| e.to_string())?;
    let mut bytes = b"\0AUTH EXTERNAL 30\r\nBEGIN\r\n".to_vec();
    bytes.extend_from_slice(hello.data().bytes());
    let mut h = [0u8; 16];
    h[0] = b'l';
    h[1] = 1; // a method call
    h[3] = 1; // protocol version
    h[4..8].copy_from_slice(&(100u32 << 20).to_le_bytes());
    h[8..12].copy_from_slice(&7u32.to_le_bytes());
    bytes.extend_from_slice(&h);
    s.write_all(&bytes).map_err(|e| e.to_string())?;
    closed_within(&mut s, 10, "a 100 MiB message announced")?;
    // Everyone else goes on.
    let r = dbus_send(&[DEST, PATH, "org.example.Echo.Ping", "string:after"], None)?;
    expect("dbus-send Ping afterwards", &r, 0, "svc: after")
}

/// What `afbus-dbus-test connections` does: `count` connections to the
/// bridge at `path`, all open at once, each sent `AUTH EXTERNAL` with this
/// process's uid; "ok" for each the bridge answered with `OK`, "closed" for
/// each it closed, "silent" for each it kept without answering for 10 s;
/// and the connections.
pub fn connections(path: &str, count: usize) -> (Vec<String>, Vec<UnixStream>) {
    // SAFETY: getuid(2) cannot fail and takes no pointers.
    let uid = unsafe { libc::getuid() };
    let hex: String = uid
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut held = Vec::new();
    let mut out = Vec::new();
    for _ in 0..count {
        let word = match UnixStream::connect(path) {
            Err(_) => "closed".to_string(),
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = s.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes());
                let mut line = [0u8; 2];
                let w = match s.read(&mut line) {
                    Ok(2) if &line == b"OK" => "ok",
                    Ok(_) => "closed",
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "closed",
                    Err(_) => "silent",
                };
                held.push(s);
                w.to_string()
            }
        };
        out.push(word);
    }
    (out, held)
}

/// The bridge holds at most `MAX_PER_UID` connections of one uid, counted
/// before authentication (each costs the bridge a thread and an endpoint):
/// one more is closed at once, another uid is not affected, and a slot
/// comes back when its connection closes.
pub fn check_connection_limit_per_uid(bus: &str) -> Check {
    let _ = bus;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let run = |uid: u32, count: usize| -> Result<String, String> {
        let out = Command::new(&exe)
            .args(["connections", "--path", BRIDGE, "--count"])
            .arg(count.to_string())
            .uid(uid)
            .gid(uid)
            .output()
            .map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let mut want = vec!["ok"; MAX_PER_UID];
    want.push("closed");
    // Nobody's connections, one over the limit, held open for a while.
    let mut held = Command::new(&exe)
        .args([
            "connections",
            "--path",
            BRIDGE,
            "--hold-ms",
            "4000",
            "--count",
        ])
        .arg((MAX_PER_UID + 1).to_string())
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(held.stdout.take().unwrap())
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let first = same(
        "nobody's connections, one over the limit",
        line.trim().to_string(),
        want.join(" "),
    );
    // Another uid is counted apart: root's connection goes through while
    // nobody holds its limit.
    let root = run(0, 1);
    let _ = held.wait();
    first?;
    same("root's connection meanwhile", root?, "ok".to_string())?;
    // The first run's process has exited: its slots come back once the
    // bridge has seen the connections close.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let got = run(NOBODY, MAX_PER_UID)?;
        if got == vec!["ok"; MAX_PER_UID].join(" ") {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(format!("after the first run closed, nobody got: {got}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
