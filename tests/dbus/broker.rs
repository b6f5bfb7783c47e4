// SPDX-License-Identifier: GPL-2.0

//! dbus-broker for the benchmark guest, which has no systemd: a journal
//! socket that drains what the launcher logs, and the listening socket
//! handed over the way systemd's socket activation does (fd 3,
//! `LISTEN_FDS=1`, `LISTEN_PID`).

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where sd-journal clients (dbus-broker-launch) send their log.
const JOURNAL: &str = "/run/systemd/journal/socket";

/// A running dbus-broker-launch and its dbus-broker; killed on drop.
pub struct Broker {
    launcher: Child,
    /// `unix:path=...`, for clients.
    pub address: String,
}

impl Broker {
    /// Starts `dbus-broker-launch --scope user --config-file CONFIG` on a
    /// new listening socket at `listen`, and waits until it answers.
    pub fn launch(listen: &str, config: &str) -> Result<Broker, String> {
        std::fs::create_dir_all("/run/systemd/journal").map_err(|e| format!("{JOURNAL}: {e}"))?;
        let _ = std::fs::remove_file(JOURNAL);
        let journal = UnixDatagram::bind(JOURNAL).map_err(|e| format!("{JOURNAL}: {e}"))?;
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while journal.recv(&mut buf).is_ok() {}
        });
        let _ = std::fs::remove_file(listen);
        let l = UnixListener::bind(listen).map_err(|e| format!("{listen}: {e}"))?;
        let fd = l.as_raw_fd();
        let address = format!("unix:path={listen}");
        let mut cmd = Command::new("/bin/sh");
        // LISTEN_PID must be the launcher's pid: the shell's, kept by exec.
        cmd.args([
            "-c",
            "LISTEN_PID=$$ exec dbus-broker-launch --scope user --config-file \"$0\"",
            config,
        ])
        .env("LISTEN_FDS", "1")
        .env("DBUS_SESSION_BUS_ADDRESS", &address)
        .stdin(Stdio::null());
        // A kernel without inotify: the launcher gets a shim for it
        // (tests/bench/dbus/no-inotify.c).  The broker it starts inherits
        // the variable but calls no inotify function: it runs as shipped.
        if let Ok(shim) = std::env::var("AFBUS_BROKER_PRELOAD") {
            cmd.env("LD_PRELOAD", shim);
        }
        // SAFETY: between fork and exec the closure only calls dup2 and
        // fcntl, which are async-signal-safe, on descriptors this process
        // owns (`fd` stays open in the parent until `l` drops below).
        unsafe {
            cmd.pre_exec(move || {
                if fd == 3 {
                    // dup2 onto itself keeps FD_CLOEXEC: clear it.
                    if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let launcher = cmd
            .spawn()
            .map_err(|e| format!("spawn dbus-broker-launch: {e}"))?;
        drop(l);
        let b = Broker { launcher, address };
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = zbus::block_on(async {
                let c = zbus::connection::Builder::address(b.address.as_str())
                    .build()
                    .await?;
                zbus::fdo::DBusProxy::new(&c).await?.get_id().await?;
                Ok::<_, zbus::Error>(())
            });
            match ok {
                Ok(()) => return Ok(b),
                Err(e) if Instant::now() > end => {
                    return Err(format!("dbus-broker did not answer in 20 s: {e}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The pids whose memory counts for the broker: the launcher and the
    /// dbus-broker it forked.
    pub fn pids(&self) -> Vec<u32> {
        let me = self.launcher.id();
        let mut v = vec![me];
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid ...
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(me) {
                v.push(pid);
            }
        }
        v
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // The broker dies with its launcher (PR_SET_PDEATHSIG).
        let _ = self.launcher.kill();
        let _ = self.launcher.wait();
    }
}
