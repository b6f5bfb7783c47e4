// SPDX-License-Identifier: GPL-2.0

//! afbus-dbus: the D-Bus master of an AF_BUS bus, the bridge for
//! unmodified D-Bus clients, and a client command that shows the names.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use afbus_dbus::policy::Policy;
use afbus_dbus::AfBus;

const AFTER_HELP: &str = "\
A bus is /a/path (a socket inode, made writable by everyone: the policy
decides who joins) or @name (abstract). zbus applications reach it with
zbus::connection::Builder::socket(afbus_dbus::AfBus::open(BUS)?).

Exit status: 0 success; 1 a system call or D-Bus call failed;
2 bad usage; 4 the policy file is missing or wrong.";

#[derive(Parser)]
#[command(
    name = "afbus-dbus",
    version,
    about = "D-Bus on AF_BUS: the bus master (org.freedesktop.DBus) and a client",
    after_help = AFTER_HELP
)]
struct Cli {
    /// The bus: /path or @abstract-name
    #[arg(long, global = true, env = "AFBUS_SYSTEM_BUS", default_value = afbus_dbus::SYSTEM_BUS)]
    bus: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bind the bus and serve org.freedesktop.DBus on it, printing one line
    /// per event, until killed
    Master {
        /// The policy file (TOML: [join] and [[own]] rules by uids and groups)
        #[arg(long)]
        policy: String,
    },
    /// Join the bus and list its names with their owners, uids and pids
    Names,
    /// Listen on an ordinary D-Bus socket (unix:path=LISTEN) and join each
    /// client that connects to the bus as an endpoint of its own, with the
    /// client's credentials (needs CAP_SYS_ADMIN, CAP_SETUID, CAP_SETGID:
    /// run it as root), printing one line per client, until killed
    Bridge {
        /// The socket file to create, e.g. /run/dbus/system_bus_socket
        /// (mode 0666: the master's policy decides who joins)
        #[arg(long)]
        listen: String,
        /// Bytes of messages that may wait for a client that does not
        /// read before it is disconnected
        #[arg(long, default_value_t = afbus_dbus::bridge::DEFAULT_MAX_QUEUED)]
        max_queued: usize,
        /// Connections one uid may hold at once, authenticated or not; a
        /// uid at the limit has further connections closed at once
        #[arg(long, default_value_t = afbus_dbus::bridge::DEFAULT_MAX_PER_UID)]
        max_per_uid: usize,
        /// Connections the bridge holds at once, all uids together (lowered
        /// to what the open-file limit allows, 3 descriptors each)
        #[arg(long, default_value_t = afbus_dbus::bridge::DEFAULT_MAX_CONNECTIONS)]
        max_connections: usize,
        /// Bytes one uid's connections may have the bridge hold at once
        /// (messages being read from them or waiting for them); a
        /// connection that would pass it is dropped
        #[arg(long, default_value_t = afbus_dbus::bridge::DEFAULT_MAX_UID_BYTES)]
        max_uid_bytes: usize,
    },
}

fn names(bus: &str) -> zbus::Result<Vec<String>> {
    zbus::block_on(async {
        let conn = zbus::connection::Builder::socket(AfBus::open(bus)?)
            .build()
            .await?;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
        let me = conn
            .unique_name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        let mut lines = Vec::new();
        for n in dbus.list_names().await? {
            if n.as_str() == afbus_dbus::BUS_NAME {
                lines.push(format!("{n:<28} (the master)"));
                continue;
            }
            let owner = dbus.get_name_owner(n.as_ref()).await?;
            let uid = dbus.get_connection_unix_user(n.as_ref()).await?;
            let pid = dbus.get_connection_unix_process_id(n.as_ref()).await?;
            let mark = if owner.as_str() == me {
                " (this command)"
            } else {
                ""
            };
            lines.push(format!("{n:<28} {owner:<8} uid {uid:<6} pid {pid}{mark}"));
        }
        Ok(lines)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Master { policy } => {
            let policy = match Policy::load(&policy) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("afbus-dbus: {e}");
                    return ExitCode::from(4);
                }
            };
            let bus = match afbus_dbus::parse_bus(&cli.bus) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("afbus-dbus: {e}");
                    return ExitCode::from(2);
                }
            };
            let out = std::io::stdout();
            let r = afbus_dbus::master::serve(&bus, policy, |line| {
                let mut o = out.lock();
                let _ = writeln!(o, "master: {line}");
                let _ = o.flush();
            });
            if let Err(e) = r {
                eprintln!(
                    "afbus-dbus: master of {}: {e} (is af_bus.ko loaded, and is the bus free?)",
                    cli.bus
                );
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Cmd::Bridge {
            listen,
            max_queued,
            max_per_uid,
            max_connections,
            max_uid_bytes,
        } => {
            let cfg = afbus_dbus::bridge::Config {
                bus: cli.bus.clone(),
                max_queued,
                max_per_uid,
                max_connections,
                max_uid_bytes,
            };
            let r = afbus_dbus::bridge::serve(std::path::Path::new(&listen), cfg, |line| {
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "bridge: {line}");
                let _ = o.flush();
            });
            if let Err(e) = r {
                eprintln!("afbus-dbus: bridge on {listen}: {e}");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Cmd::Names => match names(&cli.bus) {
            Ok(lines) => {
                for l in lines {
                    println!("{l}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("afbus-dbus: names on {}: {e}", cli.bus);
                ExitCode::from(1)
            }
        },
    }
}
