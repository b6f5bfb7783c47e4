// SPDX-License-Identifier: GPL-2.0

//! afbusctl: AF_BUS's command-line tool and reference bus master.
//!
//! The wire format (bus.h's numbers, addresses, bitmaps) is the module's
//! own kernel-free core, the `af_bus_core` crate; this crate adds the
//! system calls, the master, its protocol and the command line.

mod addr;
mod bloom;
mod cli;
mod client;
mod cmd;
mod error;
mod filter;
mod master;
mod output;
mod policy;
mod sys;
mod wire;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, GenerateCli};
use output::Printer;

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

/// clap's whole message on one line: what is wrong (with every missing
/// argument), a tip if clap has one, and the usage.
fn usage_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let parts: Vec<String> = text
        .split("\n\n")
        .map(|para| {
            let words: Vec<&str> = para
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            words.join(" ")
        })
        .filter(|p| !p.is_empty() && !p.starts_with("For more information"))
        .map(|p| {
            let p = p.strip_prefix("error: ").unwrap_or(&p);
            match p.strip_prefix("Usage: ") {
                Some(u) => format!("usage: {u}"),
                None => p.to_string(),
            }
        })
        .collect();
    parts.join("; ")
}

/// Prints `e` and gives the exit status.
fn fail(out: Printer, e: &error::Error) -> ExitCode {
    out.error(e);
    ExitCode::from(e.exit_code() as u8)
}

/// What to do about clap's refusal of the command line: help and version
/// are printed as clap prints them, errors on one line.
fn parse_failure(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        // No command at all: the help, on standard error.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(error::EXIT_USAGE as u8)
        }
        _ => {
            // `--json` may be what clap did not get to.
            let json = std::env::args_os().any(|a| a == "--json");
            fail(Printer { json }, &error::Error::Usage(usage_line(e)))
        }
    }
}

/// `afbusctl generate man|completions ...`.
fn generate() -> ExitCode {
    match GenerateCli::try_parse_from(std::env::args_os().skip(1)) {
        Ok(g) => match cmd::generate(&g.what) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(Printer { json: false }, &e),
        },
        Err(e) => parse_failure(&e),
    }
}

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "generate") {
        return generate();
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return parse_failure(&e),
    };
    let out = Printer { json: cli.json };
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(out, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(args: &[&str]) -> String {
        usage_line(&Cli::try_parse_from(args).unwrap_err())
    }

    #[test]
    fn usage_errors_are_whole_and_one_line() {
        let e = parse_error(&["afbusctl", "call"]);
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("<DST>") && e.contains("<MESSAGE>"), "{e}");
        assert!(e.contains("usage: afbusctl call"), "{e}");
        let e = parse_error(&["afbusctl", "frobnicate"]);
        assert!(e.starts_with("unrecognized subcommand 'frobnicate'"), "{e}");
        let e = parse_error(&["afbusctl", "join", "--bogus"]);
        assert!(e.contains("--bogus") && !e.contains('\n'), "{e}");
    }
}
