// SPDX-License-Identifier: GPL-2.0

//! The same-library D-Bus benchmark (`make bench`'s `dbus` group): zbus on
//! every side, a method call and reply over AF_BUS directly, through
//! dbus-daemon, through dbus-broker and through the bridge (a client
//! speaking the ordinary stream transport, as every legacy library does),
//! round by round in turn; a signal to 1, 10 and 100 subscribers of which
//! half match; 16 clients calling at once; memory per connected client.
//! Prints `BENCH,...` lines (tests/bench/bench.h's format).

use std::io::Write;
use std::time::{Duration, Instant};

use zbus::connection::Builder;
use zbus::Connection;

use crate::{echo, start_service};

/// Where a connection goes: an AF_BUS bus (`/path`, `@name`) or a D-Bus
/// address (`unix:path=...`).
pub async fn connect_via(via: &str) -> zbus::Result<Connection> {
    if via.starts_with("unix:") {
        Builder::address(via).build().await
    } else {
        Builder::socket(afbus_dbus::AfBus::open(via)?).build().await
    }
}

/// The service's well-known name in the benchmark.
const NAME: &str = "org.example.Echo";

fn report(
    group: &str,
    case: &str,
    config: &str,
    param: usize,
    metric: &str,
    unit: &str,
    v: &mut [f64],
) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    println!(
        "BENCH,{group},{case},{config},{param},{metric},{unit},{med:.4},{:.4},{:.4},{n}",
        v[0],
        v[n - 1]
    );
    std::io::stdout().flush().ok();
}

/// Microseconds per call of `count` calls of Ping with a `size`-byte string.
async fn calls(conn: &Connection, size: usize, count: usize) -> Result<f64, String> {
    let p = echo(conn, NAME).await?;
    let s = "x".repeat(size);
    let t = Instant::now();
    for _ in 0..count {
        p.ping(&s).await.map_err(|e| e.to_string())?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / count as f64)
}

/// Calls per second of 16 clients calling at once, each on its own thread
/// and connection, `count` calls in all.
fn concurrent(via: &str, count: usize) -> Result<f64, String> {
    const K: usize = 16;
    let per = count.div_ceil(K);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(K + 1));
    let mut threads = Vec::new();
    for _ in 0..K {
        let (via, barrier) = (via.to_string(), barrier.clone());
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            zbus::block_on(async {
                let conn = connect_via(&via).await.map_err(|e| e.to_string())?;
                let p = echo(&conn, NAME).await?;
                p.ping("warm").await.map_err(|e| e.to_string())?;
                barrier.wait();
                for _ in 0..per {
                    p.ping("sixteen clients").await.map_err(|e| e.to_string())?;
                }
                barrier.wait();
                Ok(())
            })
        }));
    }
    barrier.wait();
    let t = Instant::now();
    barrier.wait();
    let secs = t.elapsed().as_secs_f64();
    for t in threads {
        t.join().map_err(|_| "a client thread panicked")??;
    }
    Ok((per * K) as f64 / secs)
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    field_kib(&s, "VmRSS:")
}

fn slab_kib() -> u64 {
    field_kib(
        &std::fs::read_to_string("/proc/meminfo").unwrap_or_default(),
        "Slab:",
    )
}

fn field_kib(text: &str, key: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Bytes per connected client: the resident memory of `pids` (the bus's
/// processes) and the kernel's slab, before and after `n` idle clients
/// connect by `via`.
fn memory(via: &str, pids: &[u32], n: usize) -> Result<f64, String> {
    let before: u64 = pids.iter().map(|p| rss_kib(*p)).sum::<u64>() + slab_kib();
    let conns = zbus::block_on(async {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(connect_via(via).await.map_err(|e| e.to_string())?);
        }
        Ok::<_, String>(v)
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let after: u64 = pids.iter().map(|p| rss_kib(*p)).sum::<u64>() + slab_kib();
    drop(conns);
    Ok(after.saturating_sub(before) as f64 * 1024.0 / n as f64)
}

/// What `bench` measures, and with what.
pub struct Opts {
    pub reps: usize,
    pub scale: f64,
    /// The AF_BUS bus, and the pids of its master and bridge.
    pub afbus: String,
    pub afbus_pids: Vec<u32>,
    /// The bridge's address.
    pub bridge: String,
    /// dbus-daemon's address and pid.
    pub daemon: String,
    pub daemon_pid: u32,
    /// A configuration file for dbus-broker-launch; none: no dbus-broker.
    pub broker_config: Option<String>,
}

pub fn run(o: &Opts) -> Result<(), String> {
    // 100 subscribers on each of three buses are several hundred
    // connections in this process.
    afbus_dbus::bridge::raise_nofile();
    let broker = match &o.broker_config {
        Some(c) => Some(crate::broker::Broker::launch("/tmp/bench-broker.sock", c)?),
        None => None,
    };
    // A service on AF_BUS (the bridge's clients reach it too), one on
    // dbus-daemon and one on dbus-broker, zbus all.
    let (a, _) = start_service(&o.afbus, NAME, "svc")?;
    let (d, _) = start_service(&o.daemon, NAME, "svc")?;
    let mut children = vec![a, d];
    if let Some(b) = &broker {
        children.push(start_service(&b.address, NAME, "svc")?.0);
    }
    let _s = crate::Services { children };
    let mut cases = vec![
        ("zbus_afbus", o.afbus.as_str()),
        ("zbus_dbus_daemon", o.daemon.as_str()),
        ("zbus_bridge", o.bridge.as_str()),
    ];
    if let Some(b) = &broker {
        cases.push(("zbus_dbus_broker", b.address.as_str()));
    }
    // Memory first, while every bus is as fresh as the others (after the
    // fan-out's hundreds of connections, a daemon's allocator has pools
    // to reuse and 32 more clients cost it nothing to see).
    let n = 32;
    let mut pids = o.afbus_pids.clone();
    pids.truncate(1);
    let mut mem = vec![
        ("zbus_afbus", memory(&o.afbus, &pids, n)?),
        ("zbus_bridge", memory(&o.bridge, &o.afbus_pids, n)?),
        ("zbus_dbus_daemon", memory(&o.daemon, &[o.daemon_pid], n)?),
    ];
    if let Some(b) = &broker {
        mem.push(("zbus_dbus_broker", memory(&b.address, &b.pids(), n)?));
    }
    for (case, bytes) in mem {
        report("dbusmem", case, "free", n, "bytes", "B", &mut [bytes]);
    }
    let count = ((400.0 * o.scale) as usize).max(10);
    let conns = zbus::block_on(async {
        let mut v = Vec::new();
        for (_, via) in &cases {
            v.push(connect_via(via).await.map_err(|e| e.to_string())?);
        }
        Ok::<_, String>(v)
    })?;
    for size in [64usize, 4096] {
        let mut us: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); 3];
        for round in 0..=o.reps {
            let mut this = vec![0f64; cases.len()];
            for k in 0..cases.len() {
                // The order rotates by round.
                let i = (k + round) % cases.len();
                this[i] = zbus::block_on(calls(&conns[i], size, count))?;
            }
            if round == 0 {
                continue;
            }
            for i in 0..cases.len() {
                us[i].push(this[i]);
            }
            ratios[0].push(this[1] / this[0]);
            ratios[1].push(this[2] / this[1]);
            if cases.len() > 3 {
                ratios[2].push(this[3] / this[0]);
            }
        }
        for (i, (case, _)) in cases.iter().enumerate() {
            report("dbus", case, "free", size, "rtt", "us", &mut us[i]);
        }
        let names = [
            "afbus_speedup_over_daemon",
            "bridge_over_daemon",
            "afbus_speedup_over_broker",
        ];
        for (name, r) in names.iter().zip(ratios.iter_mut()) {
            if !r.is_empty() {
                report("dbus", name, "free", size, "ratio", "x", r);
            }
        }
    }
    drop(conns);
    // Signals: the bridge is left out (100 endpoints for each of its
    // subscribers would measure the bridge's threads, not a bus).
    let sig: Vec<(&str, &str)> = cases
        .iter()
        .filter(|(c, _)| *c != "zbus_bridge")
        .copied()
        .collect();
    // A smoke run (make check) stops at 10 subscribers: 300 joins cost
    // minutes on the debug kernel under TCG.
    let fanouts: &[usize] = if o.scale < 0.1 {
        &[1, 10]
    } else {
        &[1, 10, 100]
    };
    for &n in fanouts {
        let per = (count / 4).max(5);
        let mut fans = Vec::new();
        for (_, via) in &sig {
            fans.push(Fan::new(via, n)?);
        }
        let mut us: Vec<Vec<f64>> = vec![Vec::new(); sig.len()];
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); sig.len() - 1];
        for round in 0..=o.reps {
            let mut this = vec![0f64; sig.len()];
            for k in 0..sig.len() {
                let i = (k + round) % sig.len();
                this[i] = fans[i].signals(per)?;
            }
            if round == 0 {
                continue;
            }
            for i in 0..sig.len() {
                us[i].push(this[i]);
            }
            for i in 1..sig.len() {
                ratios[i - 1].push(this[i] / this[0]);
            }
        }
        for f in fans {
            f.stop()?;
        }
        for (i, (case, _)) in sig.iter().enumerate() {
            report("dbussig", case, "free", n, "latency", "us", &mut us[i]);
        }
        for (i, (case, _)) in sig.iter().enumerate().skip(1) {
            let name = format!("afbus_speedup_over_{}", &case[5..]);
            report(
                "dbussig",
                &name,
                "free",
                n,
                "ratio",
                "x",
                &mut ratios[i - 1],
            );
        }
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..=o.reps {
        for k in 0..cases.len() {
            let i = (k + round) % cases.len();
            let r = concurrent(cases[i].1, count * 4)?;
            if round > 0 {
                rates[i].push(r);
            }
        }
    }
    for (i, (case, _)) in cases.iter().enumerate() {
        report("dbus16", case, "free", 16, "rate", "calls/s", &mut rates[i]);
    }
    Ok(())
}

/// The fan-out case: `n` subscribers on one bus, each on its own
/// connection and thread, every other one with a rule that matches the
/// signal the publisher sends (`arg0='hit'`), the rest with rules that
/// share its interface and member but not its arg0 (on AF_BUS their bloom
/// masks share those bits).
struct Fan {
    publisher: Connection,
    /// One message per matching subscriber per signal it received.
    got: async_channel::Receiver<()>,
    matching: usize,
    /// Closing it stops the subscribers.
    stop: async_channel::Sender<()>,
    threads: Vec<std::thread::JoinHandle<Result<(), String>>>,
}

const FAN_PATH: &str = "/org/example/Fan";
const FAN_IFACE: &str = "org.example.Fan";

impl Fan {
    fn new(via: &str, n: usize) -> Result<Fan, String> {
        let (tx, got) = async_channel::unbounded();
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let ready = std::sync::Arc::new(std::sync::Barrier::new(n + 1));
        // Subscribers connect one at a time: a burst of 100 handshakes
        // would meet dbus-daemon's limit of 64 incomplete connections.
        let gate = std::sync::Arc::new(std::sync::Mutex::new(()));
        let (setup_tx, setup_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let mut threads = Vec::new();
        for i in 0..n {
            let (via, tx, stopped, ready) =
                (via.to_string(), tx.clone(), stopped.clone(), ready.clone());
            let (gate, setup_tx) = (gate.clone(), setup_tx.clone());
            let want = if i % 2 == 0 {
                "hit".to_string()
            } else {
                format!("miss{i}")
            };
            threads.push(std::thread::spawn(move || {
                let setup = {
                    let _one_at_a_time = gate.lock().unwrap_or_else(|e| e.into_inner());
                    zbus::block_on(subscribe(&via, &want))
                };
                let _ = setup_tx.send(setup.as_ref().map(|_| ()).map_err(|e| e.clone()));
                // Always meet the barrier, or a failed subscriber would
                // hang the rest.
                ready.wait();
                let (conn, s) = setup?;
                zbus::block_on(forward(conn, s, tx, stopped))
            }));
        }
        ready.wait();
        // Every subscriber said how its set-up went before the barrier.
        let failed: Vec<String> = setup_rx.try_iter().filter_map(|r| r.err()).collect();
        let publisher = zbus::block_on(connect_via(via)).map_err(|e| e.to_string());
        let fan = Fan {
            publisher: match publisher {
                Ok(p) => p,
                Err(e) => {
                    drop(stop);
                    return Err(format!("{via}: the publisher: {e}"));
                }
            },
            got,
            matching: n.div_ceil(2),
            stop,
            threads,
        };
        if let Some(e) = failed.first() {
            let _ = fan.stop();
            return Err(format!(
                "{via}: {} of {n} subscribers could not subscribe: {e}",
                failed.len()
            ));
        }
        Ok(fan)
    }

    /// Microseconds from a signal's emission to its arrival at every
    /// matching subscriber, over `count` signals sent one after another.
    fn signals(&self, count: usize) -> Result<f64, String> {
        zbus::block_on(async {
            let t = Instant::now();
            for k in 0..count as u32 {
                self.publisher
                    .emit_signal(None::<()>, FAN_PATH, FAN_IFACE, "Tick", &("hit", k))
                    .await
                    .map_err(|e| e.to_string())?;
                for _ in 0..self.matching {
                    let r = futures_lite::future::or(
                        async { self.got.recv().await.map_err(|e| e.to_string()) },
                        async {
                            async_io::Timer::after(Duration::from_secs(10)).await;
                            Err("a matching subscriber missed a signal for 10 s".to_string())
                        },
                    );
                    r.await?;
                }
            }
            Ok(t.elapsed().as_secs_f64() * 1e6 / count as f64)
        })
    }

    /// Stops the subscribers, with the first error one of them met.
    fn stop(self) -> Result<(), String> {
        drop(self.stop);
        for t in self.threads {
            t.join().map_err(|_| "a subscriber panicked")??;
        }
        Ok(())
    }
}

/// One subscriber's connection and its stream of the signals its rule
/// (`arg0='want'`) matches.
async fn subscribe(via: &str, want: &str) -> Result<(Connection, zbus::MessageStream), String> {
    let conn = connect_via(via).await.map_err(|e| e.to_string())?;
    let text = format!("type='signal',interface='{FAN_IFACE}',member='Tick',arg0='{want}'");
    let rule = zbus::MatchRule::try_from(text.as_str()).map_err(|e| e.to_string())?;
    let s = zbus::MessageStream::for_match_rule(rule, &conn, std::num::NonZeroUsize::new(1024))
        .await
        .map_err(|e| e.to_string())?;
    Ok((conn, s))
}

/// Forwards each signal `s` yields to `tx` until `stopped` closes.
/// (zbus checks every rule itself too, so a subscriber whose rule does
/// not match sees nothing here on any bus; what differs is what each bus
/// sends it, which the receivers' CPU pays for.)
async fn forward(
    _conn: Connection,
    mut s: zbus::MessageStream,
    tx: async_channel::Sender<()>,
    stopped: async_channel::Receiver<()>,
) -> Result<(), String> {
    use futures_lite::StreamExt;
    loop {
        let next = futures_lite::future::or(async { s.next().await.map(|m| m.ok()) }, async {
            let _ = stopped.recv().await;
            None
        });
        match next.await {
            None => return Ok(()),
            Some(None) => continue,
            Some(Some(_)) => {
                if tx.send(()).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}
