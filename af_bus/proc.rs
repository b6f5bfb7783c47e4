// SPDX-License-Identifier: GPL-2.0

//! `/proc/net/bus`: one line per AF_BUS socket of the namespace.

use core::fmt::Write;

use kernel::error::{code::*, Result};

use crate::sys::SeqFile;

/// Fills `/proc/net/bus` for the namespace `net_id`.
pub(crate) fn show(seq: &mut SeqFile, net_id: usize) -> Result {
    // Take references under the registry lock, print without it.
    let socks = crate::endpoint::registry()?.socks_of(net_id)?;
    writeln!(seq, "Inode Role Path Handle Addrs Queue Drops").map_err(|_| EINVAL)?;
    for sock in socks.iter() {
        let d = sock.state().describe(sock);
        let drops = u64::from(sock.drops()) + d.lost;
        write!(seq, "{} {} ", sock.ino(), d.role).map_err(|_| EINVAL)?;
        match &d.bus {
            Some(bus) => write!(seq, "{:?} ", bus.path()),
            None => write!(seq, "- "),
        }
        .map_err(|_| EINVAL)?;
        match d.handle {
            Some(h) => write!(seq, "{:?} ", h),
            None => write!(seq, "- "),
        }
        .map_err(|_| EINVAL)?;
        writeln!(seq, "{} {} {}", d.addrs, d.queued, drops).map_err(|_| EINVAL)?;
    }
    Ok(())
}
