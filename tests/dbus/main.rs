// SPDX-License-Identifier: GPL-2.0

//! afbus-dbus-test: real zbus services and clients over AF_BUS, checked
//! end to end in the guest, printing KTAP (`ok N name` / `not ok N name`).
//!
//! `afbus-dbus-test run` starts `afbus-dbus master` on a bus of its own and
//! runs every check; the other subcommands are the roles it spawns as
//! separate processes (a service, an unprivileged owner).

mod bench;
mod bridge;
mod broker;

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use afbus_dbus::addr::Addr;
use afbus_dbus::AfBus;
use clap::{Parser, Subcommand};
use futures_lite::StreamExt;
use zbus::connection::Builder;
use zbus::fdo::{DBusProxy, RequestNameFlags, RequestNameReply};
use zbus::message::Type;
use zbus::object_server::SignalEmitter;
use zbus::{Connection, MatchRule, MessageStream};

const ECHO: &str = "org.example.Echo";
const PATH: &str = "/org/example/Echo";
const NOBODY: u32 = 65534;

const POLICY: &str = r#"
[join]
uids = "*"

[[own]]
name = "org.example.*"
uids = [0]

[[own]]
name = "org.nobody.*"
uids = [65534]

[[send]]
name = "org.example.Admin"
uids = [0]

[[receive]]
name = "org.example.Secret"
uids = [0]
"#;

#[derive(Parser)]
#[command(
    name = "afbus-dbus-test",
    about = "zbus over AF_BUS, end to end (KTAP output)"
)]
struct Cli {
    /// The bus the checks use: /path or @abstract-name
    #[arg(long, default_value = "/run/afbus/test")]
    bus: String,
    /// What to do (default: run)
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the master (afbus-dbus, from PATH) and run every check
    Run {
        /// Run only the checks whose names contain this
        #[arg(long)]
        only: Option<String>,
    },
    /// A service: serve org.example.Echo at /org/example/Echo under NAME,
    /// print "ready UNIQUE-NAME" and wait to be killed
    Service {
        /// The well-known name to own
        #[arg(long)]
        name: String,
        /// What Whoami answers
        #[arg(long)]
        id: String,
    },
    /// A client, as `make run` shows it: call DEST's Ping with MESSAGE,
    /// set and read its State property, and receive a signal it emits
    Client {
        /// The service's name
        #[arg(long, default_value = ECHO)]
        dest: String,
        /// What to send
        message: String,
    },
    /// The same-library benchmark (make bench's dbus group): zbus calls
    /// over AF_BUS, through dbus-daemon and through the bridge; prints
    /// BENCH lines
    Bench {
        /// Measured rounds, after one warm-up
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Multiplies the number of calls per round (400)
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// The AF_BUS master's pid, for its memory
        #[arg(long)]
        master_pid: u32,
        /// The bridge's pid, for its memory
        #[arg(long)]
        bridge_pid: u32,
        /// The bridge's address (unix:path=...)
        #[arg(long)]
        bridge: String,
        /// dbus-daemon's address (unix:path=...)
        #[arg(long)]
        daemon: String,
        /// dbus-daemon's pid, for its memory
        #[arg(long)]
        daemon_pid: u32,
        /// Also measure dbus-broker, started by dbus-broker-launch with
        /// this configuration file (socket-activated, as systemd would)
        #[arg(long)]
        broker_config: Option<String>,
    },
    /// Join and request NAME, printing the reply or the error's name
    Own {
        /// The well-known name to request
        #[arg(long)]
        name: String,
    },
    /// Try DEST as the policy sees this process: call its Ping by name and
    /// by unique name with zbus, send it a raw datagram by both, then
    /// print "listening", count DEST's Changed signals for 3 s and print
    /// "signals N"; one line per attempt
    Probe {
        /// The service's well-known name
        #[arg(long)]
        dest: String,
    },
    /// Open COUNT connections to the bridge at PATH at once, start the
    /// handshake on each, and print one word per connection: "ok" if the
    /// bridge answered, "closed" if it closed the connection
    Connections {
        /// The bridge's socket file
        #[arg(long)]
        path: String,
        /// How many connections
        #[arg(long)]
        count: usize,
        /// Keep them open this many milliseconds after printing
        #[arg(long, default_value_t = 0)]
        hold_ms: u64,
    },
}

// ---------------------------------------------------------------- the service

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.example.Echo.Error")]
enum EchoError {
    #[zbus(error)]
    ZBus(zbus::Error),
    Refused(String),
}

struct Echo {
    id: String,
    state: u32,
}

#[zbus::interface(name = "org.example.Echo")]
impl Echo {
    fn ping(&self, s: String) -> String {
        format!("{}: {s}", self.id)
    }

    fn whoami(&self) -> String {
        self.id.clone()
    }

    /// The sender the call arrived with.
    fn caller(&self, #[zbus(header)] h: zbus::message::Header<'_>) -> String {
        h.sender().map(|s| s.to_string()).unwrap_or_default()
    }

    /// The uid the bus vouches for of the caller (its join credentials).
    async fn caller_uid(
        &self,
        #[zbus(header)] h: zbus::message::Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<u32, EchoError> {
        let sender = h
            .sender()
            .ok_or_else(|| EchoError::Refused("no sender".into()))?;
        let dbus = DBusProxy::new(conn).await?;
        dbus.get_connection_unix_user(sender.clone().into())
            .await
            .map_err(|e| EchoError::Refused(e.to_string()))
    }

    fn fail(&self, why: String) -> Result<(), EchoError> {
        Err(EchoError::Refused(format!("refused: {why}")))
    }

    /// Reads what the descriptor holds.
    fn read_fd(&self, fd: zbus::wire::Fd<'_>) -> Result<String, EchoError> {
        use std::os::fd::AsFd;
        let fd: OwnedFd = fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| EchoError::Refused(e.to_string()))?;
        let mut f = std::fs::File::from(fd);
        let mut s = String::new();
        f.read_to_string(&mut s)
            .map_err(|e| EchoError::Refused(e.to_string()))?;
        Ok(s)
    }

    /// A pipe holding `text`, to read from.
    fn make_fd(&self, text: String) -> Result<zbus::OwnedFd, EchoError> {
        let (r, w) = std::io::pipe().map_err(|e| EchoError::Refused(e.to_string()))?;
        std::fs::File::from(OwnedFd::from(w))
            .write_all(text.as_bytes())
            .map_err(|e| EchoError::Refused(e.to_string()))?;
        Ok(zbus::OwnedFd::from(OwnedFd::from(r)))
    }

    /// The length and byte sum of `data`.
    fn blob(&self, data: Vec<u8>) -> (u32, u64) {
        (data.len() as u32, data.iter().map(|b| u64::from(*b)).sum())
    }

    /// `len` bytes counting up from 0 (wrapping).
    fn make_blob(&self, len: u32) -> Vec<u8> {
        (0..len).map(|i| i as u8).collect()
    }

    /// Broadcasts `Changed(what, n)` from the object `path`.
    async fn announce(
        &self,
        path: String,
        what: String,
        n: u32,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), EchoError> {
        conn.emit_signal(None::<()>, path.as_str(), ECHO, "Changed", &(what, n))
            .await?;
        Ok(())
    }

    #[zbus(property)]
    fn state(&self) -> u32 {
        self.state
    }

    #[zbus(property)]
    async fn set_state(&mut self, v: u32, #[zbus(signal_emitter)] e: SignalEmitter<'_>) {
        self.state = v;
        let _ = self.state_changed(&e).await;
    }
}

#[zbus::proxy(interface = "org.example.Echo", default_path = "/org/example/Echo")]
trait EchoClient {
    fn ping(&self, s: &str) -> zbus::Result<String>;
    fn whoami(&self) -> zbus::Result<String>;
    fn caller(&self) -> zbus::Result<String>;
    fn fail(&self, why: &str) -> zbus::Result<()>;
    fn read_fd(&self, fd: zbus::wire::Fd<'_>) -> zbus::Result<String>;
    fn blob(&self, data: &[u8]) -> zbus::Result<(u32, u64)>;
    fn make_blob(&self, len: u32) -> zbus::Result<Vec<u8>>;
    fn announce(&self, path: &str, what: &str, n: u32) -> zbus::Result<()>;
    #[zbus(property)]
    fn state(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn set_state(&self, v: u32) -> zbus::Result<()>;
}

fn service(bus: &str, name: &str, id: &str) -> zbus::Result<()> {
    zbus::block_on(async {
        let echo = Echo {
            id: id.into(),
            state: 0,
        };
        // The one line that differs from a service on dbus-daemon (the
        // benchmark also runs it on one: a `unix:` address).
        let builder = if bus.starts_with("unix:") {
            Builder::address(bus)
        } else {
            Builder::socket(AfBus::open(bus)?)
        };
        let conn = builder.serve_at(PATH, echo).name(name).build().await?;
        println!("ready {}", conn.unique_name().unwrap());
        std::io::stdout().flush().ok();
        std::future::pending::<()>().await;
        Ok(())
    })
}

fn client(bus: &str, dest: &str, message: &str) -> Result<(), String> {
    zbus::block_on(async {
        // The one line that differs from a client of dbus-daemon.
        let conn = connect(bus).await?;
        println!("joined as {}", conn.unique_name().unwrap());
        let p = echo(&conn, dest).await?;
        println!("Ping({message:?}) -> {:?}", zerr(p.ping(message).await)?);
        zerr(p.set_state(42).await)?;
        println!("State = 42; State -> {}", zerr(p.state().await)?);
        let rule = format!("type='signal',interface='{ECHO}',member='Changed',arg0='demo'");
        let rule = MatchRule::try_from(rule.as_str()).map_err(|e| e.to_string())?;
        let mut stream = zerr(MessageStream::for_match_rule(rule.clone(), &conn, None).await)?;
        println!("AddMatch {rule}");
        zerr(p.announce("/org/example/Echo", "demo", 7).await)?;
        let m = next_within(&mut stream, 10_000)
            .await
            .ok_or("no signal in 10 s")?;
        let h = m.header();
        let body: (String, u32) = zerr(m.body().deserialize())?;
        println!(
            "signal {} from {} at {}: {body:?}",
            h.member().unwrap(),
            h.sender().unwrap(),
            h.path().unwrap()
        );
        Ok(())
    })
}

fn probe(bus: &str, dest: &str) -> Result<(), String> {
    zbus::block_on(async {
        let conn = connect(bus).await?;
        let dbus = zerr(DBusProxy::new(&conn).await)?;
        let owner = zerr(dbus.get_name_owner(dest.try_into().unwrap()).await)?.to_string();
        for to in [dest, owner.as_str()] {
            let p = echo(&conn, to).await?;
            match p.ping("probe").await {
                Ok(r) => println!("call {to}: reply {r}"),
                Err(e) => println!("call {to}: error {}", error_name::<(), _>(Err(e))?),
            }
        }
        // Past zbus and the socket crate: a raw endpoint, joined, sends
        // a call straight to the service's addresses.
        let raw = afbus_dbus::dgram::socket().map_err(|e| e.to_string())?;
        let hello = bus_call("Hello", &())?;
        raw_send(&raw, bus, "org.freedesktop.DBus", hello.data().bytes())
            .map_err(|e| e.to_string())?;
        raw_recv(&raw, 5000)?;
        for to in [dest, owner.as_str()] {
            let call = zbus::Message::method_call(PATH, "Ping")
                .destination(dest)
                .interface(ECHO)
                .build(&"raw")
                .map_err(|e| e.to_string())?;
            let addr = to.strip_prefix(':').unwrap_or(to);
            match raw_send(&raw, bus, addr, call.data().bytes()) {
                Ok(()) => println!("raw {to}: sent"),
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => println!("raw {to}: EACCES"),
                Err(e) => println!("raw {to}: {e}"),
            }
        }
        let rule = format!("type='signal',interface='{ECHO}',member='Changed'");
        let rule = MatchRule::try_from(rule.as_str()).map_err(|e| e.to_string())?;
        let mut stream = zerr(MessageStream::for_match_rule(rule, &conn, None).await)?;
        println!("listening");
        std::io::stdout().flush().ok();
        let got = signals_within(&mut stream, 3000).await;
        println!("signals {}", got.len());
        Ok(())
    })
}

fn own(bus: &str, name: &str) -> ExitCode {
    let r: zbus::Result<RequestNameReply> = zbus::block_on(async {
        let conn = Builder::socket(AfBus::open(bus)?).build().await?;
        let dbus = DBusProxy::new(&conn).await?;
        Ok(dbus
            .request_name(name.try_into()?, RequestNameFlags::DO_NOT_QUEUE)
            .await?)
    });
    match error_name(r) {
        Ok(name) => println!("error {name}"),
        Err(e) => println!("{e}"),
    }
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------- the checks

type Check = Result<(), String>;
/// A named check.
type NamedCheck = (&'static str, fn(&str) -> Check);

macro_rules! ensure {
    ($c:expr, $($t:tt)*) => {
        if !$c {
            return Err(format!($($t)*));
        }
    };
}

/// `a == b`, or an error saying both.
fn same<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Check {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

fn zerr<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, String> {
    r.map_err(|e| format!("zbus: {e}"))
}

/// The D-Bus error name of a failed call.
fn error_name<T: std::fmt::Debug, E: Into<zbus::Error>>(r: Result<T, E>) -> Result<String, String> {
    match r.map_err(Into::into) {
        Err(zbus::Error::MethodError(n, _, _)) => Ok(n.to_string()),
        Err(zbus::Error::FDO(e)) => match *e {
            zbus::fdo::Error::ZBus(zbus::Error::MethodError(n, _, _)) => Ok(n.to_string()),
            e => Ok(zbus::DBusError::name(&e).to_string()),
        },
        Err(e) => Err(format!("another error than a D-Bus error reply: {e}")),
        Ok(v) => Err(format!("reply {v:?}")),
    }
}

/// `f`, failing after `secs` seconds.
fn timed<F: Future<Output = Check>>(secs: u64, f: F) -> Check {
    zbus::block_on(futures_lite::future::or(f, async move {
        async_io::Timer::after(Duration::from_secs(secs)).await;
        Err(format!("timed out after {secs} s"))
    }))
}

async fn connect(bus: &str) -> Result<Connection, String> {
    zerr(
        Builder::socket(AfBus::open(bus).map_err(|e| e.to_string())?)
            .build()
            .await,
    )
}

/// Connections serving `Echo` (no name yet) with these ids, and a
/// `DBusProxy` on each.
async fn echo_services(
    bus: &str,
    ids: &[&str],
) -> Result<(Vec<Connection>, Vec<DBusProxy<'static>>), String> {
    let mut conns = Vec::new();
    let mut proxies = Vec::new();
    for id in ids {
        let conn = connect(bus).await?;
        let echo = Echo {
            id: (*id).into(),
            state: 0,
        };
        zerr(conn.object_server().at(PATH, echo).await)?;
        proxies.push(zerr(DBusProxy::new(&conn).await)?);
        conns.push(conn);
    }
    Ok((conns, proxies))
}

/// The next message of `s` within `ms` milliseconds.
async fn next_within(s: &mut MessageStream, ms: u64) -> Option<zbus::Message> {
    futures_lite::future::or(async { s.next().await.and_then(|m| m.ok()) }, async {
        async_io::Timer::after(Duration::from_millis(ms)).await;
        None
    })
    .await
}

/// The signals among what `s` receives within `ms` milliseconds, as
/// (path, member, arg0).
async fn signals_within(s: &mut MessageStream, ms: u64) -> Vec<(String, String, String)> {
    let end = Instant::now() + Duration::from_millis(ms);
    let mut out = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return out;
        }
        let Some(m) = next_within(s, left.as_millis() as u64).await else {
            return out;
        };
        if m.message_type() != Type::Signal {
            continue;
        }
        let h = m.header();
        if h.interface().map(|i| i.as_str()) == Some("org.freedesktop.DBus") {
            continue;
        }
        let a0 = m
            .body()
            .deserialize::<(String, u32)>()
            .map(|a| a.0)
            .unwrap_or_default();
        out.push((
            h.path().map(|p| p.to_string()).unwrap_or_default(),
            h.member().map(|p| p.to_string()).unwrap_or_default(),
            a0,
        ));
    }
}

struct Services {
    children: Vec<Child>,
}

impl Drop for Services {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Copies `child`'s output lines into `log` from a thread; whether it
/// said "serving" within 10 s.
fn follow_log(child: &mut Child, log: &std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> bool {
    let Some(out) = child.stdout.take() else {
        return false;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let log = log.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if l.contains("serving") {
                let _ = tx.send(());
            }
            log.lock().unwrap().push(l);
        }
    });
    rx.recv_timeout(Duration::from_secs(10)).is_ok()
}

/// A call of the bus's own `org.freedesktop.DBus` method `member`, as a
/// raw client sends it.
fn bus_call<B>(member: &str, body: &B) -> Result<zbus::Message, String>
where
    B: serde::Serialize + zbus::wire::DynamicType,
{
    zbus::Message::method_call("/org/freedesktop/DBus", member)
        .destination("org.freedesktop.DBus")
        .interface("org.freedesktop.DBus")
        .build(body)
        .map_err(|e| e.to_string())
}

/// Starts a service process and waits for its "ready" line.
fn start_service(bus: &str, name: &str, id: &str) -> Result<(Child, String), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["--bus", bus, "service", "--name", name, "--id", id])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn the service: {e}"))?;
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(l) if l.starts_with("ready :1.") => Ok((child, l.trim()[6..].to_string())),
        Ok(l) => {
            let _ = child.kill();
            Err(format!("the service {name} said {l:?} instead of ready"))
        }
        Err(_) => {
            let _ = child.kill();
            Err(format!("the service {name} was not ready in 20 s"))
        }
    }
}

async fn echo<'a>(conn: &Connection, dest: &'a str) -> Result<EchoClientProxy<'a>, String> {
    EchoClientProxy::builder(conn)
        .destination(dest)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(|e| format!("zbus: {e}"))
}

fn check_call_reply(bus: &str) -> Check {
    let (c, unique) = start_service(bus, ECHO, "svc")?;
    let _s = Services { children: vec![c] };
    timed(30, async {
        let conn = connect(bus).await?;
        let p = echo(&conn, ECHO).await?;
        same("Ping", zerr(p.ping("hello").await)?, "svc: hello".into())?;
        // By unique name too, and the sender the service saw is ours.
        let p2 = echo(&conn, &unique).await?;
        same(
            "Whoami by unique name",
            zerr(p2.whoami().await)?,
            "svc".into(),
        )?;
        let dbus = zerr(DBusProxy::new(&conn).await)?;
        let owner = zerr(dbus.get_name_owner(ECHO.try_into().unwrap()).await)?;
        same("GetNameOwner", owner.to_string(), unique.clone())?;
        ensure!(
            conn.unique_name().unwrap().starts_with(":1."),
            "our unique name {:?} is not :1.N",
            conn.unique_name()
        );
        Ok(())
    })
}

fn check_error_reply(bus: &str) -> Check {
    let (c, _) = start_service(bus, ECHO, "svc")?;
    let _s = Services { children: vec![c] };
    timed(30, async {
        let conn = connect(bus).await?;
        let p = echo(&conn, ECHO).await?;
        match p.fail("no").await {
            Err(zbus::Error::MethodError(n, Some(text), _)) => {
                same("error name", n.as_str(), "org.example.Echo.Error.Refused")?;
                same("error text", text.as_str(), "refused: no")?;
            }
            r => return Err(format!("Fail gave {r:?}")),
        }
        let r = conn
            .call_method(Some(ECHO), PATH, Some(ECHO), "NoSuchMethod", &())
            .await;
        same(
            "an unknown method of the service",
            error_name(r)?,
            "org.freedesktop.DBus.Error.UnknownMethod".into(),
        )
    })
}

fn check_missing_name(bus: &str) -> Check {
    timed(30, async {
        let conn = connect(bus).await?;
        let p = echo(&conn, "org.example.Nobody").await?;
        same(
            "a call to a well-known name nobody owns",
            error_name(p.ping("x").await)?,
            "org.freedesktop.DBus.Error.ServiceUnknown".into(),
        )?;
        let p = echo(&conn, ":1.99999").await?;
        same(
            "a call to a unique name that is gone",
            error_name(p.ping("x").await)?,
            "org.freedesktop.DBus.Error.NameHasNoOwner".into(),
        )?;
        let dbus = zerr(DBusProxy::new(&conn).await)?;
        same(
            "GetNameOwner of a free name",
            error_name(
                dbus.get_name_owner("org.example.Nobody".try_into().unwrap())
                    .await,
            )?,
            "org.freedesktop.DBus.Error.NameHasNoOwner".into(),
        )?;
        same(
            "NameHasOwner of a free name",
            zerr(
                dbus.name_has_owner("org.example.Nobody".try_into().unwrap())
                    .await,
            )?,
            false,
        )
    })
}

fn check_properties(bus: &str) -> Check {
    let (c, _) = start_service(bus, ECHO, "svc")?;
    let _s = Services { children: vec![c] };
    timed(30, async {
        let conn = connect(bus).await?;
        let p = echo(&conn, ECHO).await?;
        same("State", zerr(p.state().await)?, 0)?;
        zerr(p.set_state(42).await)?;
        same("State after Set", zerr(p.state().await)?, 42)?;
        // A caching proxy follows PropertiesChanged, a broadcast signal.
        let cached = zerr(
            EchoClientProxy::builder(&conn)
                .destination(ECHO)
                .build()
                .await,
        )?;
        same(
            "State through a caching proxy",
            zerr(cached.state().await)?,
            42,
        )?;
        let mut changes = cached.receive_state_changed().await;
        zerr(p.set_state(7).await)?;
        loop {
            let c = changes.next().await.ok_or("the property stream ended")?;
            if zerr(c.get().await)? == 7 {
                break;
            }
        }
        same(
            "State cached from PropertiesChanged",
            cached.cached_state().ok().flatten(),
            Some(7),
        )
    })
}

/// A value for `arg0` whose bloom bits all fall among those of the signal
/// `Changed(arg0 = "state")` at `path`: a rule on it is woken by the
/// kernel, and must be dropped by the exact check.
fn colliding_arg0(path: &str) -> String {
    let sig = afbus_dbus::bloom::Bloom::of_pairs(&afbus_dbus::dbloom::signal_pairs(
        Some(ECHO),
        Some("Changed"),
        Some(path),
        Some("state"),
    ));
    (0u64..)
        .map(|i| format!("collide{i}"))
        .find(|v| {
            let m = afbus_dbus::bloom::Bloom::of_pairs(&afbus_dbus::dbloom::signal_pairs(
                None,
                None,
                None,
                Some(v),
            ));
            sig.words()
                .iter()
                .zip(m.words().iter())
                .all(|(b, m)| b & m == *m)
        })
        .unwrap()
}

fn check_signals(bus: &str) -> Check {
    let (c, _) = start_service(bus, ECHO, "svc")?;
    let _s = Services { children: vec![c] };
    let collide = colliding_arg0("/org/example/Echo/a");
    timed(60, async {
        let emitter = connect(bus).await?;
        let p = echo(&emitter, ECHO).await?;
        // Subscribers, each with one rule added straight through AddMatch,
        // each watching everything its connection receives.
        let rules = [
            (
                "member",
                format!("type='signal',interface='{ECHO}',member='Changed'"),
            ),
            (
                "arg0",
                format!("type='signal',interface='{ECHO}',arg0='state'"),
            ),
            (
                "arg0-other",
                format!("type='signal',interface='{ECHO}',arg0='other'"),
            ),
            (
                "namespace",
                "type='signal',path_namespace='/org/example/Echo'".to_string(),
            ),
            (
                "namespace-b",
                "type='signal',path_namespace='/org/example/Echo/b'".to_string(),
            ),
            (
                "namespace-prefix",
                "type='signal',path_namespace='/org/example/Ech'".to_string(),
            ),
            ("collision", format!("type='signal',arg0='{collide}'")),
            ("none", String::new()),
        ];
        let mut subs = Vec::new();
        for (name, rule) in &rules {
            let conn = connect(bus).await?;
            let stream = MessageStream::from(&conn);
            if !rule.is_empty() {
                let dbus = zerr(DBusProxy::new(&conn).await)?;
                let r = MatchRule::try_from(rule.as_str()).map_err(|e| e.to_string())?;
                zerr(dbus.add_match_rule(r).await)?;
            }
            subs.push((*name, conn, stream));
        }
        let before = afbus_dbus::bloom_false_positives();
        zerr(p.announce("/org/example/Echo/a", "state", 1).await)?;
        zerr(p.announce("/org/example/Echo/b", "other", 2).await)?;
        zerr(p.announce("/org/example/Echoes", "state", 3).await)?;
        let a = (
            "/org/example/Echo/a".to_string(),
            "Changed".to_string(),
            "state".to_string(),
        );
        let b = (
            "/org/example/Echo/b".to_string(),
            "Changed".to_string(),
            "other".to_string(),
        );
        let c = (
            "/org/example/Echoes".to_string(),
            "Changed".to_string(),
            "state".to_string(),
        );
        let want: HashMap<&str, Vec<_>> = HashMap::from([
            ("member", vec![a.clone(), b.clone(), c.clone()]),
            ("arg0", vec![a.clone(), c.clone()]),
            ("arg0-other", vec![b.clone()]),
            ("namespace", vec![a.clone(), b.clone()]),
            ("namespace-b", vec![b.clone()]),
            ("namespace-prefix", vec![]),
            ("collision", vec![]),
            ("none", vec![]),
        ]);
        for (i, (name, _conn, stream)) in subs.iter_mut().enumerate() {
            // Everything has arrived once the first waited long enough.
            let got = signals_within(stream, if i == 0 { 2000 } else { 300 }).await;
            same(
                &format!("what the subscriber \"{name}\" received"),
                &got,
                &want[*name],
            )?;
        }
        let dropped = afbus_dbus::bloom_false_positives() - before;
        ensure!(
            dropped >= 1,
            "the colliding subscriber's bloom match woke no exact check ({dropped} dropped)"
        );
        Ok(())
    })
}

fn check_name_owner_changed(bus: &str) -> Check {
    timed(30, async {
        let conn = connect(bus).await?;
        let dbus = zerr(DBusProxy::new(&conn).await)?;
        let mut changes = zerr(
            dbus.receive_name_owner_changed_with_args(&[(0, "org.example.Killed")])
                .await,
        )?;
        let (c, unique) = start_service(bus, "org.example.Killed", "k")?;
        let mut s = Services { children: vec![c] };
        let got = changes.next().await.ok_or("no NameOwnerChanged")?;
        let a = zerr(got.args())?;
        same(
            "NameOwnerChanged on acquisition",
            (
                a.name().to_string(),
                a.old_owner().as_ref().map(|o| o.to_string()),
                a.new_owner().as_ref().map(|o| o.to_string()),
            ),
            ("org.example.Killed".into(), None, Some(unique.clone())),
        )?;
        s.children[0].kill().map_err(|e| e.to_string())?;
        let got = changes.next().await.ok_or("no NameOwnerChanged")?;
        let a = zerr(got.args())?;
        same(
            "NameOwnerChanged when the service is killed",
            (
                a.name().to_string(),
                a.old_owner().as_ref().map(|o| o.to_string()),
                a.new_owner().as_ref().map(|o| o.to_string()),
            ),
            ("org.example.Killed".into(), Some(unique.clone()), None),
        )?;
        same(
            "NameHasOwner after the kill",
            zerr(
                dbus.name_has_owner("org.example.Killed".try_into().unwrap())
                    .await,
            )?,
            false,
        )
    })
}

/// A name changes hands in one step: a client calling it all the while, as
/// its owners replace each other and release it to the next in line, gets
/// one owner or the other, never `ServiceUnknown`.
fn check_hand_over(bus: &str) -> Check {
    timed(120, async {
        const H: &str = "org.example.HandOver";
        const ROUNDS: usize = 40;
        let (conns, proxies) = echo_services(bus, &["a", "b"]).await?;
        let name = || H.try_into().unwrap();
        let allow = RequestNameFlags::ALLOW_REPLACEMENT;
        same(
            "a requests",
            zerr(proxies[0].request_name(name(), allow).await)?,
            RequestNameReply::PrimaryOwner,
        )?;
        let caller = connect(bus).await?;
        let wp = echo(&caller, H).await?;
        let done = std::sync::atomic::AtomicBool::new(false);
        let calls = async {
            let mut n = 0usize;
            // At least one call, however slow the machine: the last one
            // starts after the hand-overs.
            loop {
                let last = done.load(std::sync::atomic::Ordering::Relaxed);
                match wp.whoami().await {
                    Ok(id) if id == "a" || id == "b" => n += 1,
                    Ok(id) => return Err(format!("call {n}: answered by {id:?}")),
                    Err(e) => return Err(format!("call {n} during the hand-overs: {e}")),
                }
                if last {
                    return Ok(n);
                }
            }
        };
        let flips = async {
            let r = async {
                for round in 0..ROUNDS {
                    if round % 2 == 0 {
                        // b replaces a, which waits in line.
                        same(
                            "b replaces",
                            zerr(
                                proxies[1]
                                    .request_name(
                                        name(),
                                        allow | RequestNameFlags::REPLACE_EXISTING,
                                    )
                                    .await,
                            )?,
                            RequestNameReply::PrimaryOwner,
                        )?;
                    } else {
                        // b releases: a, next in line, gets it; b queues.
                        same(
                            "b releases",
                            zerr(proxies[1].release_name(name()).await)?,
                            zbus::fdo::ReleaseNameReply::Released,
                        )?;
                        same(
                            "b queues",
                            zerr(proxies[1].request_name(name(), allow).await)?,
                            RequestNameReply::InQueue,
                        )?;
                    }
                }
                Ok::<(), String>(())
            }
            .await;
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            r
        };
        let (calls, flips) = futures_lite::future::zip(calls, flips).await;
        flips?;
        calls?;
        // The last round was a release to a, next in line: a owns it.
        same("the owner at the end", zerr(wp.whoami().await)?, "a".into())?;
        let q = zerr(proxies[0].list_queued_owners(name()).await)?;
        same(
            "the queue at the end",
            q.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            vec![
                conns[0].unique_name().unwrap().to_string(),
                conns[1].unique_name().unwrap().to_string(),
            ],
        )
    })
}

fn check_queueing(bus: &str) -> Check {
    timed(60, async {
        const Q: &str = "org.example.Queued";
        let (conns, proxies) = echo_services(bus, &["a", "b", "c"]).await?;
        let uniq: Vec<String> = conns
            .iter()
            .map(|c| c.unique_name().unwrap().to_string())
            .collect();
        let name = || Q.try_into().unwrap();
        let watcher = connect(bus).await?;
        let wp = echo(&watcher, Q).await?;
        let wd = zerr(DBusProxy::new(&watcher).await)?;
        let mut lost = zerr(proxies[0].receive_name_lost().await)?;
        let mut acquired = zerr(proxies[0].receive_name_acquired().await)?;

        same(
            "a requests",
            zerr(
                proxies[0]
                    .request_name(name(), RequestNameFlags::ALLOW_REPLACEMENT)
                    .await,
            )?,
            RequestNameReply::PrimaryOwner,
        )?;
        same(
            "a requests again",
            zerr(
                proxies[0]
                    .request_name(name(), RequestNameFlags::ALLOW_REPLACEMENT)
                    .await,
            )?,
            RequestNameReply::AlreadyOwner,
        )?;
        same(
            "b requests",
            zerr(
                proxies[1]
                    .request_name(name(), RequestNameFlags::empty())
                    .await,
            )?,
            RequestNameReply::InQueue,
        )?;
        same(
            "b with DoNotQueue",
            zerr(
                proxies[1]
                    .request_name(name(), RequestNameFlags::DO_NOT_QUEUE)
                    .await,
            )?,
            RequestNameReply::Exists,
        )?;
        same(
            "b queues again",
            zerr(
                proxies[1]
                    .request_name(name(), RequestNameFlags::empty())
                    .await,
            )?,
            RequestNameReply::InQueue,
        )?;
        same(
            "the owner answers calls",
            zerr(wp.whoami().await)?,
            "a".into(),
        )?;
        let q = zerr(wd.list_queued_owners(name()).await)?;
        same(
            "ListQueuedOwners",
            q.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            vec![uniq[0].clone(), uniq[1].clone()],
        )?;
        // c replaces a, which allowed it; a waits in line first.
        same(
            "c replaces",
            zerr(
                proxies[2]
                    .request_name(name(), RequestNameFlags::REPLACE_EXISTING)
                    .await,
            )?,
            RequestNameReply::PrimaryOwner,
        )?;
        let l = lost.next().await.ok_or("a got no NameLost")?;
        same(
            "NameLost to a",
            zerr(l.args())?.name().to_string(),
            Q.to_string(),
        )?;
        same(
            "the new owner answers calls",
            zerr(wp.whoami().await)?,
            "c".into(),
        )?;
        let q = zerr(wd.list_queued_owners(name()).await)?;
        same(
            "ListQueuedOwners after the replacement",
            q.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            vec![uniq[2].clone(), uniq[0].clone(), uniq[1].clone()],
        )?;
        // c leaves: a is next.
        same(
            "c releases",
            zerr(proxies[2].release_name(name()).await)?,
            zbus::fdo::ReleaseNameReply::Released,
        )?;
        // The stream has held a's first NameAcquired since a requested the
        // name: the hand-over is the second (a call before it may find
        // the name between owners).
        let mut seen = 0;
        while seen < 2 {
            let m = acquired.next().await.ok_or("a got no NameAcquired")?;
            if zerr(m.args())?.name().as_str() == Q {
                seen += 1;
            }
        }
        same(
            "the owner after the release",
            zerr(wp.whoami().await)?,
            "a".into(),
        )?;
        same(
            "c releases again",
            zerr(proxies[2].release_name(name()).await)?,
            zbus::fdo::ReleaseNameReply::NotOwner,
        )?;
        same(
            "releasing a free name",
            zerr(
                proxies[2]
                    .release_name("org.example.Free".try_into().unwrap())
                    .await,
            )?,
            zbus::fdo::ReleaseNameReply::NonExistent,
        )?;
        // b leaves the queue, a leaves: the name is free.
        same(
            "b leaves the queue",
            zerr(proxies[1].release_name(name()).await)?,
            zbus::fdo::ReleaseNameReply::Released,
        )?;
        same(
            "a releases",
            zerr(proxies[0].release_name(name()).await)?,
            zbus::fdo::ReleaseNameReply::Released,
        )?;
        same(
            "NameHasOwner at the end",
            zerr(wd.name_has_owner(Q.try_into().unwrap()).await)?,
            false,
        )?;
        same(
            "a call to the released name",
            error_name(wp.whoami().await)?,
            "org.freedesktop.DBus.Error.ServiceUnknown".into(),
        )
    })
}

fn check_fd_passing(bus: &str) -> Check {
    let (c, _) = start_service(bus, ECHO, "svc")?;
    let _s = Services { children: vec![c] };
    timed(30, async {
        let conn = connect(bus).await?;
        let p = echo(&conn, ECHO).await?;
        let mut fds = [0; 2];
        // SAFETY: a two-int array for pipe(2).
        ensure!(unsafe { libc::pipe(fds.as_mut_ptr()) } == 0, "pipe failed");
        // SAFETY: both descriptors are ours.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut wf = std::fs::File::from(w);
        wf.write_all(b"through a pipe, by SCM_RIGHTS")
            .map_err(|e| e.to_string())?;
        drop(wf);
        let got = zerr(p.read_fd(zbus::wire::Fd::from(&r)).await)?;
        same(
            "what the service read",
            got.as_str(),
            "through a pipe, by SCM_RIGHTS",
        )
    })
}

fn check_one_mib(bus: &str) -> Check {
    let (c, _) = start_service(bus, ECHO, "svc")?;
    let _s = Services { children: vec![c] };
    timed(60, async {
        let conn = connect(bus).await?;
        let p = echo(&conn, ECHO).await?;
        let data: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7) as u8).collect();
        let sum: u64 = data.iter().map(|b| u64::from(*b)).sum();
        same("Blob of 1 MiB", zerr(p.blob(&data).await)?, (1 << 20, sum))?;
        let back = zerr(p.make_blob(1 << 20).await)?;
        same("MakeBlob length", back.len(), 1 << 20)?;
        ensure!(
            back.iter().enumerate().all(|(i, b)| *b == i as u8),
            "MakeBlob's bytes are not 0, 1, 2, ..."
        );
        Ok(())
    })
}

fn check_many(bus: &str) -> Check {
    let (c1, _) = start_service(bus, "org.example.One", "one")?;
    let (c2, _) = start_service(bus, "org.example.Two", "two")?;
    let _s = Services {
        children: vec![c1, c2],
    };
    let bus = bus.to_string();
    let threads: Vec<_> = (0..10)
        .map(|t| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                timed(90, async move {
                    let conn = connect(&bus).await?;
                    let one = echo(&conn, "org.example.One").await?;
                    let two = echo(&conn, "org.example.Two").await?;
                    for i in 0..20 {
                        let m = format!("client {t} call {i}");
                        same("One", zerr(one.ping(&m).await)?, format!("one: {m}"))?;
                        same("Two", zerr(two.ping(&m).await)?, format!("two: {m}"))?;
                    }
                    Ok(())
                })
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        t.join()
            .map_err(|_| format!("client {i} panicked"))?
            .map_err(|e| format!("client {i}: {e}"))?;
    }
    Ok(())
}

fn check_policy(bus: &str) -> Check {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let run = |name: &str| -> Result<String, String> {
        let out = Command::new(&exe)
            .args(["--bus", bus, "own", "--name", name])
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    same(
        "uid 65534 requests org.example.Echo",
        run(ECHO)?,
        "error org.freedesktop.DBus.Error.AccessDenied".into(),
    )?;
    same(
        "uid 65534 requests org.nobody.Mine (allowed)",
        run("org.nobody.Mine")?,
        "reply PrimaryOwner".into(),
    )?;
    timed(30, async {
        let conn = connect(bus).await?;
        let dbus = zerr(DBusProxy::new(&conn).await)?;
        same(
            "root requests org.nobody.Mine",
            error_name(
                dbus.request_name(
                    "org.nobody.Mine".try_into().unwrap(),
                    RequestNameFlags::empty(),
                )
                .await,
            )?,
            "org.freedesktop.DBus.Error.AccessDenied".into(),
        )?;
        same(
            "requesting org.freedesktop.DBus",
            error_name(
                dbus.request_name(
                    "org.freedesktop.DBus".try_into().unwrap(),
                    RequestNameFlags::empty(),
                )
                .await,
            )?,
            "org.freedesktop.DBus.Error.InvalidArgs".into(),
        )
    })
}

/// Runs `probe --dest DEST` as uid 65534; once it listens, `then` runs.
fn probe_as_nobody(
    bus: &str,
    dest: &str,
    then: impl FnOnce() -> Check,
) -> Result<Vec<String>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(&exe)
        .args(["--bus", bus, "probe", "--dest", dest])
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    let mut r = BufReader::new(out);
    let mut then = Some(then);
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).map_err(|e| e.to_string())? == 0 {
            break;
        }
        let l = l.trim().to_string();
        if l == "listening" {
            if let Some(f) = then.take() {
                if let Err(e) = f() {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(e);
                }
            }
        }
        lines.push(l);
    }
    let st = child.wait().map_err(|e| e.to_string())?;
    ensure!(st.success(), "the probe of {dest} failed ({st}): {lines:?}");
    Ok(lines)
}

fn check_access(bus: &str) -> Check {
    let (a, admin) = start_service(bus, "org.example.Admin", "admin")?;
    let (b, secret) = start_service(bus, "org.example.Secret", "secret")?;
    let _s = Services {
        children: vec![a, b],
    };
    // Root, whom both rules list, calls Admin and hears Secret.
    timed(30, async {
        let conn = connect(bus).await?;
        let p = echo(&conn, "org.example.Admin").await?;
        same(
            "root calls Admin",
            zerr(p.ping("root").await)?,
            "admin: root".into(),
        )
    })?;
    // uid 65534 calls Admin: refused, by name, by unique name, and past
    // zbus by the kernel.
    let lines = probe_as_nobody(bus, "org.example.Admin", || Ok(()))?;
    let denied = "error org.freedesktop.DBus.Error.AccessDenied";
    same(
        "uid 65534 and org.example.Admin",
        lines[..4].to_vec(),
        vec![
            format!("call org.example.Admin: {denied}"),
            format!("call {admin}: {denied}"),
            "raw org.example.Admin: EACCES".to_string(),
            format!("raw {admin}: EACCES"),
        ],
    )?;
    // uid 65534 calls Secret, whose rule is about hearing it: the calls
    // go, their replies come back (they were asked for), and Secret's
    // broadcast reaches root but not uid 65534.
    let heard = std::sync::Arc::new(std::sync::Mutex::new(0usize));
    let heard2 = heard.clone();
    let bus2 = bus.to_string();
    let lines = probe_as_nobody(bus, "org.example.Secret", move || {
        timed(30, async move {
            let conn = connect(&bus2).await?;
            let rule = format!("type='signal',interface='{ECHO}',member='Changed'");
            let rule = MatchRule::try_from(rule.as_str()).map_err(|e| e.to_string())?;
            let mut stream = zerr(MessageStream::for_match_rule(rule, &conn, None).await)?;
            let p = echo(&conn, "org.example.Secret").await?;
            zerr(p.announce("/org/example/Echo", "secret", 1).await)?;
            *heard2.lock().unwrap() = signals_within(&mut stream, 2000).await.len();
            Ok(())
        })
    })?;
    same(
        "uid 65534 and org.example.Secret",
        lines,
        vec![
            "call org.example.Secret: reply secret: probe".to_string(),
            format!("call {secret}: reply secret: probe"),
            "raw org.example.Secret: sent".to_string(),
            format!("raw {secret}: sent"),
            "listening".to_string(),
            "signals 0".to_string(),
        ],
    )?;
    let heard = *heard.lock().unwrap();
    same("signals root heard from Secret", heard, 1)
}

fn check_bus_interface(bus: &str) -> Check {
    timed(30, async {
        let conn = connect(bus).await?;
        let me = conn.unique_name().unwrap().to_string();
        let dbus = zerr(DBusProxy::new(&conn).await)?;
        let names: Vec<String> = zerr(dbus.list_names().await)?
            .iter()
            .map(|n| n.to_string())
            .collect();
        ensure!(
            names.contains(&me) && names[0] == "org.freedesktop.DBus",
            "ListNames: {names:?}"
        );
        let act: Vec<String> = zerr(dbus.list_activatable_names().await)?
            .iter()
            .map(|n| n.to_string())
            .collect();
        same(
            "ListActivatableNames",
            act,
            vec!["org.freedesktop.DBus".to_string()],
        )?;
        let bn = |s: &str| zbus::names::BusName::try_from(s.to_string()).unwrap();
        same(
            "GetConnectionUnixUser",
            zerr(dbus.get_connection_unix_user(bn(&me)).await)?,
            0,
        )?;
        same(
            "GetConnectionUnixProcessID",
            zerr(dbus.get_connection_unix_process_id(bn(&me)).await)?,
            std::process::id(),
        )?;
        let cr = zerr(dbus.get_connection_credentials(bn(&me)).await)?;
        same("credentials: uid", cr.unix_user_id(), Some(0))?;
        same(
            "credentials: pid",
            cr.process_id(),
            Some(std::process::id()),
        )?;
        ensure!(
            cr.unix_group_ids().is_some_and(|g| g.contains(&0)),
            "credentials: groups {:?}",
            cr.unix_group_ids()
        );
        let id = zerr(dbus.get_id().await)?;
        ensure!(id.as_str().len() == 32, "GetId: {id}");
        same(
            "StartServiceByName of a free name",
            error_name(
                dbus.start_service_by_name("org.example.Nobody".try_into().unwrap(), 0)
                    .await,
            )?,
            "org.freedesktop.DBus.Error.NotSupported".into(),
        )?;
        same(
            "StartServiceByName of the bus",
            zerr(
                dbus.start_service_by_name("org.freedesktop.DBus".try_into().unwrap(), 0)
                    .await,
            )?,
            zbus::fdo::StartServiceReply::AlreadyRunning,
        )?;
        let peer = zerr(
            zbus::fdo::PeerProxy::builder(&conn)
                .destination("org.freedesktop.DBus")
                .path("/org/freedesktop/DBus")
                .build()
                .await,
        )?;
        zerr(peer.ping().await)?;
        let mid = zerr(peer.get_machine_id().await)?;
        ensure!(!mid.is_empty(), "GetMachineId is empty");
        let intro = zerr(
            zbus::fdo::IntrospectableProxy::builder(&conn)
                .destination("org.freedesktop.DBus")
                .path("/org/freedesktop/DBus")
                .build()
                .await,
        )?;
        let xml = zerr(intro.introspect().await)?;
        ensure!(
            xml.contains("<method name=\"RequestName\">"),
            "Introspect lacks RequestName"
        );
        let r = || MatchRule::try_from("type='signal',member='Nope'").unwrap();
        zerr(dbus.add_match_rule(r()).await)?;
        zerr(dbus.remove_match_rule(r()).await)?;
        same(
            "RemoveMatch of a rule not added",
            error_name(dbus.remove_match_rule(r()).await)?,
            "org.freedesktop.DBus.Error.MatchRuleNotFound".into(),
        )?;
        same(
            "AddMatch of a malformed rule",
            error_name(
                conn.call_method(
                    Some("org.freedesktop.DBus"),
                    "/org/freedesktop/DBus",
                    Some("org.freedesktop.DBus"),
                    "AddMatch",
                    &"type='nonsense'",
                )
                .await,
            )?,
            "org.freedesktop.DBus.Error.MatchRuleInvalid".into(),
        )
    })
}

/// Sends `bytes` to the master from a raw AF_BUS socket.
fn raw_send(fd: &OwnedFd, bus: &str, dst: &str, bytes: &[u8]) -> std::io::Result<()> {
    let bus = afbus_dbus::parse_bus(bus).map_err(std::io::Error::other)?;
    let sa = Addr::Name(dst.into()).to_sockaddr(&bus);
    afbus_dbus::dgram::send(
        fd.as_raw_fd(),
        &sa,
        bytes,
        &[],
        libc::MSG_DONTWAIT,
        false,
        None,
    )
}

fn check_bad_input(bus: &str) -> Check {
    timed(60, async {
        let conn = connect(bus).await?;
        let dbus = zerr(DBusProxy::new(&conn).await)?;
        // Unknown methods and wrong arguments: clean errors.
        same(
            "an unknown bus method",
            error_name(
                conn.call_method(
                    Some("org.freedesktop.DBus"),
                    "/org/freedesktop/DBus",
                    Some("org.freedesktop.DBus"),
                    "Frobnicate",
                    &(),
                )
                .await,
            )?,
            "org.freedesktop.DBus.Error.UnknownMethod".into(),
        )?;
        same(
            "an unknown bus interface",
            error_name(
                conn.call_method(
                    Some("org.freedesktop.DBus"),
                    "/org/freedesktop/DBus",
                    Some("org.example.Nope"),
                    "Frobnicate",
                    &(),
                )
                .await,
            )?,
            // As dbus-daemon answers.
            "org.freedesktop.DBus.Error.UnknownInterface".into(),
        )?;
        same(
            "RequestName with the wrong arguments",
            error_name(
                conn.call_method(
                    Some("org.freedesktop.DBus"),
                    "/org/freedesktop/DBus",
                    Some("org.freedesktop.DBus"),
                    "RequestName",
                    &(7u32,),
                )
                .await,
            )?,
            "org.freedesktop.DBus.Error.InvalidArgs".into(),
        )?;
        // Malformed datagrams from a pending and from a joined endpoint.
        let raw = afbus_dbus::dgram::socket().map_err(|e| e.to_string())?;
        for junk in [
            &b"hello"[..],
            b"l\x01\x00\x01\xff\xff\xff\xff\x01\x00\x00\x00\x00\x00\x00\x00",
            &[0u8; 300][..],
        ] {
            raw_send(&raw, bus, "org.freedesktop.DBus", junk)
                .map_err(|e| format!("raw send: {e}"))?;
        }
        let hello = bus_call("Hello", &())?;
        // Not Hello first: AccessDenied; then Hello.
        let list = bus_call("ListNames", &())?;
        raw_send(&raw, bus, "org.freedesktop.DBus", list.data().bytes())
            .map_err(|e| e.to_string())?;
        let d = raw_recv(&raw, 5000)?;
        let m = parse(&d)?;
        same(
            "a call before Hello",
            m.header().error_name().map(|e| e.to_string()),
            Some("org.freedesktop.DBus.Error.AccessDenied".into()),
        )?;
        raw_send(&raw, bus, "org.freedesktop.DBus", hello.data().bytes())
            .map_err(|e| e.to_string())?;
        let d = raw_recv(&raw, 5000)?;
        let m = parse(&d)?;
        let unique: String = m.body().deserialize().map_err(|e| e.to_string())?;
        ensure!(unique.starts_with(":1."), "the raw Hello reply: {unique:?}");
        for junk in [&b"l\x01\x00\x01"[..], &[b'l'; 64][..]] {
            raw_send(&raw, bus, "org.freedesktop.DBus", junk).map_err(|e| e.to_string())?;
        }
        // This client now floods the master and never reads its replies.
        let start = Instant::now();
        let mut sent = 0;
        let mut stalled = Instant::now();
        while sent < 2000 {
            match raw_send(&raw, bus, "org.freedesktop.DBus", list.data().bytes()) {
                Ok(()) => {
                    sent += 1;
                    stalled = Instant::now();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // The master's queue is full: it must drain it.
                    ensure!(
                        stalled.elapsed() < Duration::from_secs(10),
                        "the master has not read for 10 s ({sent} calls sent)"
                    );
                    async_io::Timer::after(Duration::from_millis(2)).await;
                    continue;
                }
                Err(e) => return Err(format!("flooding the master: {e}")),
            }
            if sent % 100 == 0 {
                // The master keeps answering others meanwhile.
                let t = Instant::now();
                zerr(dbus.get_id().await)?;
                ensure!(
                    t.elapsed() < Duration::from_secs(5),
                    "GetId took {:?} during the flood",
                    t.elapsed()
                );
            }
        }
        let t = Instant::now();
        let names = zerr(dbus.list_names().await)?;
        ensure!(
            t.elapsed() < Duration::from_secs(5),
            "ListNames took {:?} after the flood",
            t.elapsed()
        );
        ensure!(
            names.iter().any(|n| n.as_str() == unique),
            "the flooding client is still listed"
        );
        ensure!(
            start.elapsed() < Duration::from_secs(50),
            "the flood took {:?}",
            start.elapsed()
        );
        Ok(())
    })
}

fn check_sender(bus: &str) -> Check {
    let (c, service) = start_service(bus, ECHO, "svc")?;
    let _s = Services { children: vec![c] };
    timed(30, async {
        let conn = connect(bus).await?;
        let p = echo(&conn, ECHO).await?;
        same(
            "the sender a zbus call arrives with",
            zerr(p.caller().await)?,
            conn.unique_name().unwrap().to_string(),
        )?;
        // A raw endpoint joins, then writes the service's own name as the
        // SENDER of its call: the service must see the raw endpoint's.
        let raw = afbus_dbus::dgram::socket().map_err(|e| e.to_string())?;
        let hello = bus_call("Hello", &())?;
        raw_send(&raw, bus, "org.freedesktop.DBus", hello.data().bytes())
            .map_err(|e| e.to_string())?;
        let me: String = parse(&raw_recv(&raw, 5000)?)?
            .body()
            .deserialize()
            .map_err(|e| e.to_string())?;
        let forged = zbus::Message::method_call(PATH, "Caller")
            .destination(ECHO)
            .interface(ECHO)
            .sender(service.as_str())
            .build(&())
            .map_err(|e| e.to_string())?;
        let serial = forged.primary_header().serial_num();
        raw_send(&raw, bus, ECHO, forged.data().bytes()).map_err(|e| e.to_string())?;
        for _ in 0..5 {
            let m = parse(&raw_recv(&raw, 5000)?)?;
            if m.header().reply_serial() != Some(serial) {
                continue; // NameAcquired and the like
            }
            let seen: String = m.body().deserialize().map_err(|e| e.to_string())?;
            return same("the sender the service saw for a forged call", seen, me);
        }
        Err("no reply to the forged call".into())
    })
}

fn raw_recv(fd: &OwnedFd, ms: i32) -> Result<Vec<u8>, String> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd.
    if unsafe { libc::poll(&mut p, 1, ms) } != 1 {
        return Err(format!("no answer from the master in {ms} ms"));
    }
    afbus_dbus::dgram::recv(fd.as_raw_fd())
        .map(|d| d.payload)
        .map_err(|e| e.to_string())
}

fn parse(bytes: &[u8]) -> Result<zbus::Message, String> {
    let b = afbus_dbus::header::with_sender(bytes, "org.freedesktop.DBus")
        .map_err(|e| e.to_string())?;
    let ctx = zbus::wire::serialized::Context::new(zbus::wire::Endian::Little, 0);
    // SAFETY: zbus checks the header; the test reads one string.
    unsafe { zbus::Message::from_bytes(zbus::wire::serialized::Data::new(b, ctx)) }
        .map_err(|e| e.to_string())
}

fn check_master_death(bus: &str) -> Check {
    // A master of its own, killed under a connected client.
    let bus2 = format!("{bus}-dying");
    let policy = "/tmp/afbus-dbus-test-policy.toml";
    let mut m = Command::new("afbus-dbus")
        .args(["--bus", &bus2, "master", "--policy", policy])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start afbus-dbus: {e}"))?;
    let mut first = String::new();
    let _ = BufReader::new(m.stdout.take().unwrap()).read_line(&mut first);
    ensure!(
        first.contains("serving"),
        "the second master said {first:?}"
    );
    let r = timed(30, async {
        let conn = connect(&bus2).await?;
        let dbus = zerr(DBusProxy::new(&conn).await)?;
        zerr(dbus.get_id().await)?;
        m.kill().map_err(|e| e.to_string())?;
        let _ = m.wait();
        match dbus.get_id().await {
            Ok(id) => Err(format!("GetId answered {id} after the master died")),
            Err(_) => Ok(()),
        }
    });
    let _ = m.kill();
    let _ = m.wait();
    r
}

fn run(bus: &str, only: Option<&str>) -> ExitCode {
    let checks: &[NamedCheck] = &[
        ("dbus_method_call_and_reply", check_call_reply),
        ("dbus_sender_is_the_kernel_verified_source", check_sender),
        ("dbus_error_reply", check_error_reply),
        ("dbus_call_to_a_missing_name", check_missing_name),
        ("dbus_properties", check_properties),
        (
            "dbus_signals_match_rules_arg0_path_namespace_bloom_collision",
            check_signals,
        ),
        (
            "dbus_name_owner_changed_when_a_service_is_killed",
            check_name_owner_changed,
        ),
        ("dbus_name_queueing_and_replacement", check_queueing),
        ("dbus_name_hand_over_is_atomic", check_hand_over),
        ("dbus_fd_passing", check_fd_passing),
        ("dbus_one_mib_message", check_one_mib),
        ("dbus_two_services_ten_clients", check_many),
        ("dbus_policy_refuses_an_unprivileged_owner", check_policy),
        ("dbus_policy_send_and_receive_rules", check_access),
        ("dbus_bus_interface", check_bus_interface),
        ("dbus_master_under_bad_input", check_bad_input),
        (
            "bridge_dbus_send_calls_a_zbus_service",
            bridge::check_dbus_send_calls_a_zbus_service,
        ),
        (
            "bridge_policy_by_the_legacy_clients_uid",
            bridge::check_policy_by_the_legacy_clients_uid,
        ),
        (
            "bridge_dbus_monitor_eavesdropping_is_refused",
            bridge::check_eavesdropping_is_refused,
        ),
        (
            "bridge_gdbus_call_monitor_and_a_legacy_signal",
            bridge::check_gdbus_and_native_signals,
        ),
        (
            "bridge_zbus_calls_dbus_test_tool_echo",
            bridge::check_zbus_calls_a_legacy_service,
        ),
        ("bridge_fds_both_ways", bridge::check_fds_across_the_bridge),
        (
            "bridge_a_client_that_stops_reading_is_dropped",
            bridge::check_a_client_that_stops_reading,
        ),
        (
            "bridge_a_uid_at_its_connection_limit_is_refused",
            bridge::check_connection_limit_per_uid,
        ),
        (
            "bridge_oversize_messages_and_unasked_fds_drop_the_client",
            bridge::check_oversize_and_unasked_fds,
        ),
        ("dbus_master_death", check_master_death),
    ];
    let checks: Vec<_> = checks
        .iter()
        .filter(|(n, _)| only.is_none_or(|o| n.contains(o)))
        .collect();
    let policy = "/tmp/afbus-dbus-test-policy.toml";
    if let Err(e) = std::fs::write(policy, POLICY) {
        println!("Bail out! writing {policy}: {e}");
        return ExitCode::FAILURE;
    }
    let mut master = match Command::new("afbus-dbus")
        .args(["--bus", bus, "master", "--policy", policy])
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(m) => m,
        Err(e) => {
            println!("Bail out! starting afbus-dbus master: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The master's log, kept for failures.
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    if !follow_log(&mut master, &log) {
        println!("Bail out! the master did not start");
        let _ = master.kill();
        return ExitCode::FAILURE;
    }
    // The bridge for the legacy programs, its lines in the same log.
    let mut bridge = match Command::new("afbus-dbus")
        .args(["--bus", bus, "bridge", "--listen", bridge::BRIDGE])
        .arg(format!("--max-queued={}", bridge::MAX_QUEUED))
        .arg(format!("--max-per-uid={}", bridge::MAX_PER_UID))
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(b) => b,
        Err(e) => {
            println!("Bail out! starting afbus-dbus bridge: {e}");
            let _ = master.kill();
            return ExitCode::FAILURE;
        }
    };
    if !follow_log(&mut bridge, &log) {
        println!("Bail out! the bridge did not start");
        let _ = master.kill();
        let _ = bridge.kill();
        return ExitCode::FAILURE;
    }
    println!("TAP version 13");
    println!("1..{}", checks.len());
    let mut failed = 0;
    for (i, (name, f)) in checks.iter().enumerate() {
        let start = Instant::now();
        let seen = log.lock().unwrap().len();
        let r = f(bus);
        if let Ok(Some(st)) = master.try_wait() {
            println!("# the master exited: {st}");
        }
        match r {
            Ok(()) => {
                println!("# {name}: {:.1} s", start.elapsed().as_secs_f64());
                println!("ok {} {name}", i + 1);
            }
            Err(e) => {
                failed += 1;
                println!("# {name}: {e}");
                for l in log.lock().unwrap().iter().skip(seen).take(40) {
                    println!("#   {l}");
                }
                println!("not ok {} {name}", i + 1);
            }
        }
        std::io::stdout().flush().ok();
    }
    let _ = bridge.kill();
    let _ = bridge.wait();
    let _ = master.kill();
    let _ = master.wait();
    println!(
        "# afbus-dbus-test: {} passed, {failed} failed",
        checks.len() - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd.unwrap_or(Cmd::Run { only: None }) {
        Cmd::Run { only } => run(&cli.bus, only.as_deref()),
        Cmd::Client { dest, message } => match client(&cli.bus, &dest, &message) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("afbus-dbus-test: client: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Service { name, id } => match service(&cli.bus, &name, &id) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                println!("failed {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Own { name } => own(&cli.bus, &name),
        Cmd::Bench {
            reps,
            scale,
            master_pid,
            bridge_pid,
            bridge,
            daemon,
            daemon_pid,
            broker_config,
        } => {
            let o = bench::Opts {
                reps,
                scale,
                afbus: cli.bus.clone(),
                afbus_pids: vec![master_pid, bridge_pid],
                bridge,
                daemon,
                daemon_pid,
                broker_config,
            };
            match bench::run(&o) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("afbus-dbus-test: bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Connections {
            path,
            count,
            hold_ms,
        } => {
            let (words, held) = bridge::connections(&path, count);
            println!("{}", words.join(" "));
            let _ = std::io::stdout().flush();
            std::thread::sleep(Duration::from_millis(hold_ms));
            drop(held);
            ExitCode::SUCCESS
        }
        Cmd::Probe { dest } => match probe(&cli.bus, &dest) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                println!("error {e}");
                ExitCode::FAILURE
            }
        },
    }
}
