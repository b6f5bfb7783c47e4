// SPDX-License-Identifier: GPL-2.0

//! busctl: AF_BUS's command-line tool and reference bus master.

mod addr;
mod bloom;
mod client;
mod error;
mod filter;
mod master;
mod policy;
mod sys;
mod wire;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use addr::{check_well_known, Addr, BusPath};
use bloom::{Bloom, Pair};
use client::{Client, Incoming};
use error::{sys as syserr, Error, Result};
use wire::Kind;

/// The signal `make run` emits, and a pair found by search whose four
/// bloom bits all fall among the signal's: a listener matching it is
/// woken by the bloom filter alone, and kept asleep by its BPF filter.
pub const DEMO_SIGNAL: &[&str] = &[
    "interface=org.example.Echo",
    "member=Changed",
    "path=/org/example/Echo",
    "sender=org.example.Echo",
];
pub const DEMO_COLLIDING_MATCH: &str = "member=Changed27566";

const AFTER_HELP: &str = "\
Buses are /a/path (a socket inode) or @name (abstract). Client commands
join the bus through its master (--master, default org.afbus.Bus) first.

Exit status: 0 success; 1 a system call failed (the line names the errno);
2 bad usage; 3 the master or the peer refused; 4 bad policy file;
5 timed out; 6 a peer spoke something other than busctl's format.";

#[derive(Parser)]
#[command(name = "busctl", version, about = "AF_BUS tool and reference bus master", after_help = AFTER_HELP)]
struct Cli {
    /// The bus: /path or @abstract-name
    #[arg(
        long,
        global = true,
        env = "BUSCTL_BUS",
        default_value = "/run/bus/system"
    )]
    bus: String,
    /// The master's address on the bus
    #[arg(
        long,
        global = true,
        env = "BUSCTL_MASTER",
        default_value = "org.afbus.Bus"
    )]
    master: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a reference bus master on PATH
    Master {
        /// The bus to create: /path or @abstract-name
        path: String,
        /// The master's own address
        #[arg(long, default_value = "org.afbus.Bus")]
        name: String,
        /// The policy file (TOML)
        #[arg(long)]
        policy: String,
    },
    /// Join the bus, take well-known names, optionally serve calls
    Join {
        /// Request this well-known name (repeatable)
        #[arg(long = "name")]
        names: Vec<String>,
        /// Let a later requester take the names over
        #[arg(long)]
        allow_replacement: bool,
        /// Take the names over from an owner that allows it
        #[arg(long)]
        replace: bool,
        /// Do not wait in the queue for a name that is taken
        #[arg(long)]
        no_queue: bool,
        /// Then answer calls ("echo: MESSAGE") until killed
        #[arg(long)]
        serve: bool,
        /// With --serve: stop after this many calls
        #[arg(long)]
        count: Option<u64>,
    },
    /// Send MESSAGE to DST, expecting no reply
    Send {
        dst: String,
        message: String,
        /// Send from this well-known name (requested from the master)
        #[arg(long)]
        src: Option<String>,
    },
    /// Call DST with MESSAGE and print the reply
    Call {
        dst: String,
        message: String,
        /// Seconds to wait for the reply
        #[arg(long, default_value_t = 5)]
        timeout: u32,
    },
    /// Subscribe to signals matching KEY=VALUE pairs and print them
    Listen {
        /// A KEY=VALUE the signals must carry (repeatable; none: every
        /// signal, which the policy's [monitor] must allow)
        #[arg(long = "match")]
        matches: Vec<String>,
        /// Stop after this many messages
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds without a message
        #[arg(long)]
        timeout: Option<u32>,
    },
    /// Multicast a signal: KEY=VALUE... MESSAGE
    Emit {
        #[arg(required = true, num_args = 2..)]
        args: Vec<String>,
    },
    /// Print every multicast message on the bus (the all-zero match)
    Monitor {
        #[arg(long)]
        count: Option<u64>,
        #[arg(long)]
        timeout: Option<u32>,
    },
    /// List the AF_BUS sockets of this network namespace (/proc/net/bus)
    List,
    /// Print the bloom bits of KEY=VALUE pairs
    Bloom {
        #[arg(required = true)]
        pairs: Vec<String>,
    },
}

fn pairs_of(args: &[String]) -> Result<Vec<Pair>> {
    if args.len() > wire::MAX_PAIRS {
        return Err(Error::Usage(format!(
            "at most {} KEY=VALUE pairs per signal",
            wire::MAX_PAIRS
        )));
    }
    args.iter()
        .map(|a| a.parse().map_err(Error::Usage))
        .collect()
}

fn bus_of(cli: &Cli) -> Result<BusPath> {
    BusPath::parse(&cli.bus).map_err(Error::Usage)
}

/// One line for a received message.
fn describe(inc: &Incoming) -> String {
    let src = inc.src.display();
    let grants: Vec<String> = inc
        .grants()
        .iter()
        .filter(|(t, _)| *t != sys::SCM_DST_ADDR)
        .map(|(t, a)| {
            let what = match *t {
                sys::SCM_OWNED_ADDR => "granted",
                sys::SCM_REVOKE_ADDR => "revoked",
                sys::SCM_MULTICAST_MATCH => "may hear",
                sys::SCM_MULTICAST_UNMATCH => "no longer hears",
                sys::SCM_MULTICAST_SEND => "may send",
                _ => "control",
            };
            format!(" [{what} {}]", a.display())
        })
        .collect();
    match &inc.msg {
        Some(m) => {
            let pairs: Vec<String> = m.pairs.iter().map(|p| p.to_string()).collect();
            let pairs = if pairs.is_empty() {
                String::new()
            } else {
                format!(" [{}]", pairs.join(" "))
            };
            format!(
                "{} from {src}{pairs}: \"{}\"{}{}",
                m.kind.name(),
                m.body_text().replace('\n', "\\n"),
                grants.concat(),
                if inc.raw.truncated {
                    " (truncated)"
                } else {
                    ""
                }
            )
        }
        None => format!(
            "{} bytes from {src} (not busctl's format){}",
            inc.raw.payload.len(),
            grants.concat()
        ),
    }
}

fn timeout_ms(secs: Option<u32>) -> i32 {
    secs.map_or(-1, |s| (s.min(3600) * 1000) as i32)
}

/// Prints messages until `count` arrived or `timeout` passed quietly.
fn print_messages(
    c: &mut Client,
    count: Option<u64>,
    timeout: Option<u32>,
    what: &str,
) -> Result<()> {
    let mut n = 0u64;
    while count.is_none_or(|c| n < c) {
        match c.recv(timeout_ms(timeout))? {
            Some(inc) => {
                n += 1;
                println!("{what}: {}", describe(&inc));
            }
            None => {
                let drops = c.sock.drops().unwrap_or(0);
                println!(
                    "{what}: nothing more for {} s ({n} message(s) received, {drops} dropped)",
                    timeout.unwrap_or(0)
                );
                break;
            }
        }
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match &cli.cmd {
        Cmd::Master { path, name, policy } => {
            let bus = BusPath::parse(path).map_err(Error::Usage)?;
            Addr::parse(name).map_err(Error::Usage)?;
            let text = std::fs::read_to_string(policy)
                .map_err(|e| Error::Config(format!("policy {policy}: {}", error::io_text(&e))))?;
            let pol = policy::Policy::parse(&text)
                .map_err(|e| Error::Config(format!("policy {policy}: {e}")))?;
            master::serve(&bus, name, pol, policy)
        }
        Cmd::Join {
            names,
            allow_replacement,
            replace,
            no_queue,
            serve,
            count,
        } => {
            for n in names {
                check_well_known(n).map_err(Error::Usage)?;
            }
            let mut flags = Vec::new();
            if *allow_replacement {
                flags.push("allow-replacement");
            }
            if *replace {
                flags.push("replace-existing");
            }
            if *no_queue {
                flags.push("do-not-queue");
            }
            let bus = bus_of(&cli)?;
            let mut c = Client::join(&bus, &cli.master)?;
            println!(
                "joined {} as {} (handle {})",
                bus.display(),
                c.unique,
                c.handle
            );
            for n in names {
                let answer = c.request_name(n, &flags)?;
                println!("{n}: {answer}");
            }
            if *serve {
                let mut served = 0u64;
                while count.is_none_or(|c| served < c) {
                    let Some(inc) = c.recv(-1)? else { continue };
                    println!("serve: {}", describe(&inc));
                    if let Some(m) = &inc.msg {
                        if m.kind == Kind::Call && m.flags & wire::FLAG_NO_REPLY == 0 {
                            let to = inc.src.clone();
                            c.reply(&to, &inc, &format!("echo: {}", m.body_text()))?;
                            served += 1;
                        }
                    }
                }
            }
            Ok(())
        }
        Cmd::Send { dst, message, src } => {
            let dst = Addr::parse(dst).map_err(Error::Usage)?;
            let bus = bus_of(&cli)?;
            let mut c = Client::join(&bus, &cli.master)?;
            if let Some(s) = src {
                if *s != c.unique {
                    check_well_known(s).map_err(Error::Usage)?;
                    let answer = c.request_name(s, &["do-not-queue"])?;
                    if answer != "primary-owner" && answer != "already-owner" {
                        return Err(Error::Refused {
                            what: format!("send from {s}"),
                            reason: format!("the master answered \"{answer}\""),
                        });
                    }
                }
            }
            c.send_oneway(&dst, message, src.as_deref())?;
            println!(
                "sent {} bytes to {} from {}",
                message.len(),
                dst.display(),
                src.as_deref().unwrap_or(&c.unique)
            );
            Ok(())
        }
        Cmd::Call {
            dst,
            message,
            timeout,
        } => {
            let dst = Addr::parse(dst).map_err(Error::Usage)?;
            let bus = bus_of(&cli)?;
            let mut c = Client::join(&bus, &cli.master)?;
            let (reply, inc) = c.call(&dst, Vec::new(), message, timeout_ms(Some(*timeout)))?;
            println!(
                "reply from {}: \"{}\"",
                inc.src.display(),
                reply.body_text()
            );
            Ok(())
        }
        Cmd::Listen {
            matches,
            count,
            timeout,
        } => {
            let pairs = pairs_of(matches)?;
            let bus = bus_of(&cli)?;
            let mut c = Client::join(&bus, &cli.master)?;
            // The filter first: no false positive may slip in between.
            c.sock
                .attach_filter(&filter::for_pairs(&pairs))
                .map_err(syserr("setsockopt(SO_ATTACH_FILTER)"))?;
            c.add_match(&pairs)?;
            let shown: Vec<String> = pairs.iter().map(|p| p.to_string()).collect();
            let shown = if shown.is_empty() {
                vec!["every signal".to_string()]
            } else {
                shown
            };
            println!(
                "listening as {} for {} (bloom bits {}, BPF filter attached)",
                c.unique,
                shown.join(" "),
                Bloom::of_pairs(&pairs).short()
            );
            print_messages(&mut c, *count, *timeout, "listen")
        }
        Cmd::Emit { args } => {
            let (message, pairs) = args.split_last().expect("clap requires two arguments");
            if message.contains('=') && !message.contains(' ') {
                return Err(Error::Usage(format!(
                    "the last argument is the message; \"{message}\" looks like a pair (add a message)"
                )));
            }
            let pairs = pairs_of(pairs)?;
            let bus = bus_of(&cli)?;
            let mut c = Client::join(&bus, &cli.master)?;
            // The master's policy decides; a bus that needs no send
            // grants still lets the send through.
            let refusal = c.request_send(&pairs).err();
            match c.emit(pairs, message) {
                Ok(bloom) => {
                    println!("emitted \"{message}\" to bloom bits {}", bloom.short());
                    Ok(())
                }
                Err(e) if e.errno() == Some(libc::EACCES) && refusal.is_some() => {
                    Err(refusal.unwrap())
                }
                Err(e) => Err(e),
            }
        }
        Cmd::Monitor { count, timeout } => {
            let bus = bus_of(&cli)?;
            let mut c = Client::join(&bus, &cli.master)?;
            c.add_match(&[])?;
            println!("monitoring {} as {}", bus.display(), c.unique);
            print_messages(&mut c, *count, *timeout, "monitor")
        }
        Cmd::List => {
            let text = std::fs::read_to_string("/proc/net/bus").map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::Config(
                        "/proc/net/bus is missing: load AF_BUS with `insmod af_bus.ko`".into(),
                    )
                } else {
                    syserr("read /proc/net/bus")(e)
                }
            })?;
            let rows: Vec<Vec<&str>> = text
                .lines()
                .map(|l| l.split_whitespace().collect())
                .collect();
            let widths: Vec<usize> = (0..7)
                .map(|i| {
                    rows.iter()
                        .filter_map(|r| r.get(i))
                        .map(|c| c.len())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for r in &rows {
                let cells: Vec<String> = r
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
                    .collect();
                println!("{}", cells.join("  ").trim_end());
            }
            Ok(())
        }
        Cmd::Bloom { pairs } => {
            let pairs = pairs_of(pairs)?;
            for p in &pairs {
                let bits: Vec<String> = p.bits().iter().map(|b| b.to_string()).collect();
                println!("{p}: bits {} hash32 {:#010x}", bits.join(" "), p.hash32());
            }
            println!("bitmap: {}", Bloom::of_pairs(&pairs).hex());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // clap's own message, reduced to its first line.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("bad usage");
            let first = first.trim_start_matches("error: ");
            eprintln!("busctl: {first} (see busctl --help)");
            return ExitCode::from(error::EXIT_USAGE as u8);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("busctl: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
