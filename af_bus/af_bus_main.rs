// SPDX-License-Identifier: GPL-2.0

//! AF_BUS: a socket address family for bus-oriented IPC.
//!
//! A socket `bind()`s a bus and becomes its master; other sockets join by
//! writing to the master, whose control messages grant them addresses.
//! See `Documentation/af_bus.rst`.

use kernel::prelude::*;

// The kernel-free core (`core/`), shared with the host crate
// (`core/lib.rs`) that `cargo test` checks and busctl builds on.
#[path = "core/addr.rs"]
pub mod addr;
#[path = "core/bloom.rs"]
pub mod bloom;
#[path = "core/cmsg.rs"]
pub mod cmsg;
#[path = "core/meta.rs"]
pub mod meta;
#[path = "core/notify.rs"]
pub mod notify;
#[path = "core/quota.rs"]
pub mod quota;
#[path = "core/ring.rs"]
pub mod ring;
#[path = "core/uapi.rs"]
pub mod uapi;

mod bus;
mod endpoint;
mod entry;
mod params;
mod proc;
mod sys;

module! {
    type: AfBus,
    name: "af_bus",
    author: "AF_BUS developers",
    description: "AF_BUS: bus-oriented IPC sockets",
    license: "GPL",
    alias: ["net-pf-46"],
}

use entry::AfBus;
