// SPDX-License-Identifier: GPL-2.0

//! Errors: the errnos the 6.12 kernel crate lacks, and the conversions at the C boundary.

use crate::addr::AddrError;
use kernel::bindings;
use kernel::error::Error;
use kernel::ffi::c_int;
use kernel::ffi::c_long;
use kernel::prelude::*;

/// The errnos the family returns that `kernel::error::code` lacks in 6.12.
pub(crate) mod errno {
    use kernel::bindings;
    use kernel::error::Error;

    pub(crate) fn from_code(code: u32) -> Error {
        // Errno values are small positive numbers: the cast is lossless.
        Error::from_errno(-(code as kernel::ffi::c_int))
    }

    macro_rules! errnos {
        ($($name:ident => $code:ident),* $(,)?) => {
            $(
                #[doc = concat!("`", stringify!($code), "`.")]
                pub(crate) fn $name() -> Error {
                    from_code(bindings::$code)
                }
            )*
        };
    }

    errnos! {
        eaddrinuse => EADDRINUSE,
        eaddrnotavail => EADDRNOTAVAIL,
        econnrefused => ECONNREFUSED,
        econnreset => ECONNRESET,
        edestaddrreq => EDESTADDRREQ,
        ehostunreach => EHOSTUNREACH,
        eisconn => EISCONN,
        emsgsize => EMSGSIZE,
        enobufs => ENOBUFS,
        enoprotoopt => ENOPROTOOPT,
        etoomanyrefs => ETOOMANYREFS,
        enotconn => ENOTCONN,
        eopnotsupp => EOPNOTSUPP,
        eprotonosupport => EPROTONOSUPPORT,
        esocktnosupport => ESOCKTNOSUPPORT,
    }
}

impl From<AddrError> for Error {
    fn from(_: AddrError) -> Error {
        EINVAL
    }
}

pub(crate) fn to_errno(r: Result<c_int>) -> c_int {
    match r {
        Ok(v) => v,
        Err(e) => e.to_errno(),
    }
}

pub(crate) fn to_ssize(r: Result<usize>) -> c_int {
    match r {
        // A datagram is at most `INT_MAX` bytes (the socket layer checks).
        Ok(v) => v.min(c_int::MAX as usize) as c_int,
        Err(e) => e.to_errno(),
    }
}

/// The errno for a wait interrupted with `timeo` jiffies left
/// (`ERESTARTSYS`, or `EINTR` once a timeout was given).
pub(crate) fn intr_errno(timeo: c_long) -> Error {
    // SAFETY: pure function of its argument.
    Error::from_errno(unsafe { bindings::sock_intr_errno(timeo) })
}
