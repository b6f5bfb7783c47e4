// SPDX-License-Identifier: GPL-2.0

//! The same-library D-Bus benchmark (`make bench`'s `dbus` group): zbus on
//! every side, a method call and reply over AF_BUS directly, through
//! dbus-daemon, and through the bridge (a client speaking the ordinary
//! stream transport, as every legacy library does), round by round in
//! turn; 16 clients calling at once; memory per connected client.
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
}

pub fn run(o: &Opts) -> Result<(), String> {
    // A service on AF_BUS (the bridge's clients reach it too) and one on
    // dbus-daemon, zbus both.
    let (a, _) = start_service(&o.afbus, NAME, "svc")?;
    let (d, _) = start_service(&o.daemon, NAME, "svc")?;
    let _s = crate::Services {
        children: vec![a, d],
    };
    let cases = [
        ("zbus_afbus", o.afbus.as_str()),
        ("zbus_dbus_daemon", o.daemon.as_str()),
        ("zbus_bridge", o.bridge.as_str()),
    ];
    let count = ((400.0 * o.scale) as usize).max(10);
    let conns = zbus::block_on(async {
        let mut v = Vec::new();
        for (_, via) in cases {
            v.push(connect_via(via).await.map_err(|e| e.to_string())?);
        }
        Ok::<_, String>(v)
    })?;
    for size in [64usize, 4096] {
        let mut us: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); 2];
        for round in 0..=o.reps {
            let mut this = [0f64; 3];
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
        }
        for (i, (case, _)) in cases.iter().enumerate() {
            report("dbus", case, "free", size, "rtt", "us", &mut us[i]);
        }
        report(
            "dbus",
            "afbus_speedup_over_daemon",
            "free",
            size,
            "ratio",
            "x",
            &mut ratios[0],
        );
        report(
            "dbus",
            "bridge_over_daemon",
            "free",
            size,
            "ratio",
            "x",
            &mut ratios[1],
        );
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
    let n = 32;
    let mut pids = o.afbus_pids.clone();
    pids.truncate(1);
    let native = memory(&o.afbus, &pids, n)?;
    let bridged = memory(&o.bridge, &o.afbus_pids, n)?;
    let daemon = memory(&o.daemon, &[o.daemon_pid], n)?;
    report(
        "dbusmem",
        "zbus_afbus",
        "free",
        n,
        "bytes",
        "B",
        &mut [native],
    );
    report(
        "dbusmem",
        "zbus_bridge",
        "free",
        n,
        "bytes",
        "B",
        &mut [bridged],
    );
    report(
        "dbusmem",
        "zbus_dbus_daemon",
        "free",
        n,
        "bytes",
        "B",
        &mut [daemon],
    );
    Ok(())
}
