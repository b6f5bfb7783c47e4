// SPDX-License-Identifier: GPL-2.0

//! afbusctl's errors: one line each, naming the errno and what to do.
//!
//! Each maps to a documented exit status.

use std::fmt;
use std::io;

/// The installed name of the program, which starts every error line.
pub const PROG: &str = "afbusctl";

/// Exit statuses (documented in `afbusctl --help` and af_bus.rst).
pub const EXIT_SYSCALL: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_REFUSED: i32 = 3;
pub const EXIT_CONFIG: i32 = 4;
pub const EXIT_TIMEOUT: i32 = 5;
pub const EXIT_PROTOCOL: i32 = 6;

#[derive(Debug)]
pub enum Error {
    /// A system call failed.
    Sys { what: String, err: io::Error },
    /// Bad command-line input.
    Usage(String),
    /// The master or the peer answered with an error.
    Refused { what: String, reason: String },
    /// The policy file is missing or wrong.
    Config(String),
    /// No answer in time.
    Timeout(String),
    /// A peer spoke something that is not afbusctl's format.
    Protocol(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `Error::Sys` for `what`.
pub fn sys(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |err| Error::Sys { what, err }
}

/// The text of strerror, without Rust's " (os error N)".
pub fn io_text(err: &io::Error) -> String {
    let text = err.to_string();
    text.split(" (os error").next().unwrap_or(&text).to_string()
}

/// The errno's symbolic name and a hint for the ones AF_BUS users meet.
fn errno_info(e: i32) -> (&'static str, &'static str) {
    match e {
        libc::EAFNOSUPPORT => ("EAFNOSUPPORT", "AF_BUS is not available: load it with `insmod af_bus.ko`"),
        libc::ECONNREFUSED => ("ECONNREFUSED", "no bus is bound there, or its master is gone: start one with `afbusctl master`"),
        libc::ENOENT => ("ENOENT", "nothing is bound at that path: start a master there with `afbusctl master`"),
        libc::EACCES => ("EACCES", "no write permission on the bus inode, or not admitted by the master for this (a pending endpoint may only talk to the master)"),
        libc::EPERM => ("EPERM", "only the bus master may do that"),
        libc::EADDRINUSE => ("EADDRINUSE", "the path or address is taken: remove a stale socket inode, or pick another name"),
        libc::EADDRNOTAVAIL => ("EADDRNOTAVAIL", "this endpoint does not own that address"),
        libc::EHOSTUNREACH => ("EHOSTUNREACH", "nobody on the bus owns that address"),
        libc::ECONNRESET => ("ECONNRESET", "the bus master has gone away"),
        libc::EISCONN => ("EISCONN", "the socket is already on another bus"),
        libc::EMSGSIZE => ("EMSGSIZE", "the message is larger than the receiver's buffer"),
        libc::EAGAIN => ("EAGAIN", "the receiver's queue is full: try again later"),
        libc::ENOSPC => ("ENOSPC", "a per-socket limit was reached (module parameters max_owned_addrs, max_matches)"),
        libc::ENOBUFS => ("ENOBUFS", "multicast messages were dropped because this queue was full"),
        libc::EINVAL => ("EINVAL", "an address or argument is malformed"),
        libc::EOPNOTSUPP => ("EOPNOTSUPP", "AF_BUS does not support that"),
        libc::ENOMEM => ("ENOMEM", "the kernel is out of memory"),
        libc::EINTR => ("EINTR", "interrupted by a signal"),
        libc::ETIMEDOUT => ("ETIMEDOUT", "no answer in time"),
        _ => ("", ""),
    }
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Sys { .. } => EXIT_SYSCALL,
            Error::Usage(_) => EXIT_USAGE,
            Error::Refused { .. } => EXIT_REFUSED,
            Error::Config(_) => EXIT_CONFIG,
            Error::Timeout(_) => EXIT_TIMEOUT,
            Error::Protocol(_) => EXIT_PROTOCOL,
        }
    }

    /// The errno of a failed system call.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Sys { err, .. } => err.raw_os_error(),
            _ => None,
        }
    }

    /// The errno's symbolic name (`ENOENT`), if it has one afbusctl knows.
    pub fn errno_name(&self) -> Option<&'static str> {
        Some(errno_info(self.errno()?).0).filter(|n| !n.is_empty())
    }

    /// What kind of failure, one word, for `--json`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Sys { .. } => "syscall",
            Error::Usage(_) => "usage",
            Error::Refused { .. } => "refused",
            Error::Config(_) => "config",
            Error::Timeout(_) => "timeout",
            Error::Protocol(_) => "protocol",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sys { what, err } => {
                let code = err.raw_os_error().unwrap_or(0);
                let (name, hint) = errno_info(code);
                write!(f, "{what}: {}", io_text(err))?;
                if !name.is_empty() {
                    write!(f, " ({name})")?;
                }
                if !hint.is_empty() {
                    write!(f, ": {hint}")?;
                }
                Ok(())
            }
            Error::Usage(m) => write!(f, "{m} (see {PROG} --help)"),
            Error::Refused { what, reason } => write!(f, "{what}: refused: {reason}"),
            Error::Config(m) => write!(f, "{m}"),
            Error::Timeout(m) => write!(f, "{m}"),
            Error::Protocol(m) => write!(f, "{m}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_with_the_errno_name() {
        let e = sys("connect to /run/bus/x")(io::Error::from_raw_os_error(libc::ECONNREFUSED));
        let s = e.to_string();
        assert!(
            s.starts_with("connect to /run/bus/x: Connection refused (ECONNREFUSED): "),
            "{s}"
        );
        assert!(!s.contains('\n') && !s.contains("os error"));
        assert_eq!(e.exit_code(), EXIT_SYSCALL);
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
    }
}
