// SPDX-License-Identifier: GPL-2.0

//! `/proc/net/bus`: one line per AF_BUS socket of the namespace.

use core::fmt::Write;

use kernel::error::{code::*, Result};

use crate::socket::SeqFile;

/// Fills `/proc/net/bus` for the namespace `net_id`.
pub(crate) fn show(seq: &mut SeqFile, net_id: usize) -> Result {
    // Take references under the registry lock, print without it.
    let socks = crate::registry().socks_of(net_id)?;
    writeln!(seq, "Inode Role Path Handle Addrs Queue Drops").map_err(|_| EINVAL)?;
    for sock in socks.iter() {
        let (role, path, addrs) = sock.endpoint().describe();
        let r = match path {
            Some(path) => writeln!(
                seq,
                "{} {} {:?} - {} {} {}",
                sock.ino(),
                role,
                path,
                addrs,
                sock.queue_len(),
                sock.drops()
            ),
            None => writeln!(
                seq,
                "{} {} - - {} {} {}",
                sock.ino(),
                role,
                addrs,
                sock.queue_len(),
                sock.drops()
            ),
        };
        r.map_err(|_| EINVAL)?;
    }
    Ok(())
}
