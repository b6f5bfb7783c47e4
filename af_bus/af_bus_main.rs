// SPDX-License-Identifier: GPL-2.0

//! AF_BUS: a socket address family for bus-oriented IPC.
//!
//! A socket `bind()`s a bus and becomes its master; other sockets join by
//! writing to the master, whose control messages grant them addresses.
//! See `Documentation/af_bus.rst`.

use core::sync::atomic::{AtomicPtr, Ordering};

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

/// The registry of the loaded module (null before `init` and after `drop`).
static REGISTRY: AtomicPtr<bus::Registry> = AtomicPtr::new(core::ptr::null_mut());

/// The registry of buses and sockets.
fn registry() -> &'static bus::Registry {
    let p = REGISTRY.load(Ordering::Acquire);
    // SAFETY: set before the family is registered, cleared after it is
    // unregistered; callers (socket and procfs operations) run in between:
    // sockets hold a module reference, procfs entries are removed first.
    unsafe { &*p }
}

struct AfBus {
    registration: Option<entry::Registration>,
    _registry: Pin<KBox<bus::Registry>>,
}

impl kernel::Module for AfBus {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let registry = KBox::pin_init(bus::Registry::new(), GFP_KERNEL)?;
        REGISTRY.store(
            core::ptr::from_ref(&*registry).cast_mut(),
            Ordering::Release,
        );
        let registration = match entry::Registration::new() {
            Ok(r) => r,
            Err(e) => {
                REGISTRY.store(core::ptr::null_mut(), Ordering::Release);
                return Err(e);
            }
        };
        pr_info!("AF_BUS family {} registered\n", uapi::AF_BUS);
        Ok(AfBus {
            registration: Some(registration),
            _registry: registry,
        })
    }
}

impl Drop for AfBus {
    fn drop(&mut self) {
        // Unregister the family, then forget the registry it used.
        drop(self.registration.take());
        REGISTRY.store(core::ptr::null_mut(), Ordering::Release);
    }
}
