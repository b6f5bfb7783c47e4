// SPDX-License-Identifier: GPL-2.0

//! afbusctl's command line, from which `--help`, the man pages and the completions come.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// What `--help` says after the options.
const AFTER_HELP: &str = "\
Buses are /a/path (a socket inode) or @name (abstract). Client commands
join the bus through its master (--master, default org.afbus.Bus) first.

Exit status: 0 success; 1 a system call failed (the line names the errno);
2 bad usage; 3 the master or the peer refused; 4 bad policy file;
5 timed out; 6 a peer spoke something other than afbusctl's format.";

/// Addresses, as `DST` takes them.
const DST_HELP: &str = "Destination: a well-known name (org.example.Echo), \
                        a unique name (1.4) or a kernel handle (:4)";

#[derive(Parser, Debug)]
#[command(
    name = "afbusctl",
    bin_name = "afbusctl",
    version,
    about = "AF_BUS tool and reference bus master",
    long_about = "AF_BUS tool and reference bus master.\n\n\
                  afbusctl runs the reference master of an AF_BUS bus (`afbusctl master`), \
                  and talks to a bus as a client of that master: joins it, takes \
                  well-known names, calls and serves, emits and listens to signals.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// The bus: /path or @abstract-name
    #[arg(
        long,
        global = true,
        env = "BUSCTL_BUS",
        default_value = "/run/bus/system",
        value_name = "BUS"
    )]
    pub bus: String,
    /// The master's address on the bus
    #[arg(
        long,
        global = true,
        env = "BUSCTL_MASTER",
        default_value = "org.afbus.Bus",
        value_name = "ADDR"
    )]
    pub master: String,
    /// Print results as JSON, one value per line
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run a reference bus master on PATH
    #[command(long_about = "Run a reference bus master on PATH.\n\n\
                            Binds the bus, applies the policy file, and serves the master's \
                            protocol (Hello, RequestName, ReleaseName, AddMatch, RemoveMatch, \
                            RequestSend, ListNames, GetStatus) until killed, printing one \
                            line per event.")]
    Master {
        /// The bus to create: /path (a socket inode) or @name (abstract)
        #[arg(value_name = "PATH")]
        path: String,
        /// The master's own address
        #[arg(long, default_value = "org.afbus.Bus", value_name = "ADDR")]
        name: String,
        /// The policy file (TOML)
        #[arg(long, value_name = "FILE")]
        policy: String,
    },
    /// Join the bus, take well-known names, optionally serve calls
    Join {
        /// Request this well-known name (repeatable)
        #[arg(long = "name", value_name = "NAME")]
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
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Send MESSAGE to DST, expecting no reply
    Send {
        #[arg(value_name = "DST", help = DST_HELP)]
        dst: String,
        /// The message body (text)
        #[arg(value_name = "MESSAGE")]
        message: String,
        /// Send from this well-known name (requested from the master)
        #[arg(long, value_name = "NAME")]
        src: Option<String>,
    },
    /// Call DST with MESSAGE and print the reply
    #[command(long_about = "Call DST with MESSAGE and print the reply.\n\n\
                            A service started with `afbusctl join --name NAME --serve` \
                            answers \"echo: MESSAGE\".")]
    Call {
        #[arg(value_name = "DST", help = DST_HELP)]
        dst: String,
        /// The call's body (text)
        #[arg(value_name = "MESSAGE")]
        message: String,
        /// Seconds to wait for the reply
        #[arg(long, default_value_t = 5, value_name = "S")]
        timeout: u32,
    },
    /// Subscribe to signals matching KEY=VALUE pairs and print them
    Listen {
        /// A KEY=VALUE the signals must carry (repeatable; none: every
        /// signal, which the policy's [monitor] must allow)
        #[arg(long = "match", value_name = "KEY=VALUE")]
        matches: Vec<String>,
        /// Stop after this many messages
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Stop after this many seconds without a message
        #[arg(long, value_name = "S")]
        timeout: Option<u32>,
    },
    /// Multicast a signal: KEY=VALUE... MESSAGE
    Emit {
        /// The signal's KEY=VALUE pairs (at most 8); listeners match on them
        #[arg(value_name = "KEY=VALUE", required = true, num_args = 1..)]
        pairs: Vec<String>,
        /// The signal's body (text): the last argument
        #[arg(value_name = "MESSAGE", required = true)]
        message: String,
    },
    /// Print every multicast message on the bus (the all-zero match)
    Monitor {
        /// Stop after this many messages
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Stop after this many seconds without a message
        #[arg(long, value_name = "S")]
        timeout: Option<u32>,
    },
    /// List the AF_BUS sockets of this network namespace (/proc/net/bus)
    List,
    /// List the names the master knows, with their owners
    Names,
    /// Ask the master to release well-known names held by this endpoint
    #[command(
        long_about = "Ask the master to release well-known names held by this endpoint.\n\n\
                            Prints the master's answer for each: released, or not-owner. \
                            A name belongs to the endpoint that requested it, and this \
                            command joins as a new endpoint: names another process owns \
                            stay its own (not-owner)."
    )]
    Release {
        /// A well-known name to release (repeatable)
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
    /// Print the master's status (its GetStatus call)
    Status,
    /// Print the bloom bits of KEY=VALUE pairs
    Bloom {
        /// The pairs (at most 8), as a signal or a match carries them
        #[arg(value_name = "KEY=VALUE", required = true)]
        pairs: Vec<String>,
    },
}

/// `afbusctl generate ...`, for packagers: parsed on its own, so that the
/// man pages and completions of [`Cli`] do not offer it.
#[derive(Parser, Debug)]
#[command(
    name = "afbusctl generate",
    bin_name = "afbusctl generate",
    about = "Write afbusctl's man pages or shell completions"
)]
pub struct GenerateCli {
    #[command(subcommand)]
    pub what: Generate,
}

#[derive(Subcommand, Debug)]
pub enum Generate {
    /// Man pages: afbusctl.1 and one per command (afbusctl-call.1, ...)
    Man {
        /// The directory to write them to
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// The completion script for SHELL
    Completions {
        /// The shell
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
        /// The directory to write it to
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
        GenerateCli::command().debug_assert();
    }

    #[test]
    fn every_positional_is_described() {
        fn walk(cmd: &clap::Command) {
            for a in cmd.get_positionals() {
                assert!(
                    a.get_help().is_some(),
                    "{} {}: no help",
                    cmd.get_name(),
                    a.get_id()
                );
            }
            for s in cmd.get_subcommands() {
                walk(s);
            }
        }
        walk(&Cli::command());
        walk(&GenerateCli::command());
    }

    #[test]
    fn emit_takes_pairs_then_the_message() {
        let cli = Cli::try_parse_from(["afbusctl", "emit", "a=1", "b=2", "the message"]).unwrap();
        let Cmd::Emit { pairs, message } = cli.cmd else {
            panic!("not emit")
        };
        assert_eq!(pairs, ["a=1", "b=2"]);
        assert_eq!(message, "the message");
        assert!(Cli::try_parse_from(["afbusctl", "emit", "a=1"]).is_err());
    }
}
