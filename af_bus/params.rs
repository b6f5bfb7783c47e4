// SPDX-License-Identifier: GPL-2.0

//! Module parameters (`/sys/module/af_bus/parameters/`), which the 6.12
//! `module!` macro cannot declare: `struct kernel_param` entries in the
//! `__param` section, as `module_param()` makes them.

use core::sync::atomic::{AtomicU32, Ordering};

use kernel::bindings;
use kernel::ffi::c_void;

/// An `unsigned int` parameter, read with [`UintParam::get`].
#[repr(transparent)]
pub(crate) struct UintParam(AtomicU32);

impl UintParam {
    const fn new(v: u32) -> Self {
        Self(AtomicU32::new(v))
    }

    /// The current value, at least 1.
    pub(crate) fn get(&self) -> usize {
        // `u32` always fits `usize` on the architectures Rust supports.
        self.0.load(Ordering::Relaxed).max(1) as usize
    }
}

/// A `struct kernel_param` in a static.
#[repr(transparent)]
struct KernelParam(bindings::kernel_param);

// SAFETY: the kernel reads these entries, and writes the value they point
// at through `param_ops_uint` under its own locking; the value is atomic.
unsafe impl Sync for KernelParam {}

macro_rules! uint_param {
    ($value:ident, $entry:ident, $name:literal, $default:expr, $desc:literal) => {
        #[doc = $desc]
        pub(crate) static $value: UintParam = UintParam::new($default);

        #[link_section = "__param"]
        #[used]
        static $entry: KernelParam = KernelParam(bindings::kernel_param {
            name: concat!($name, "\0").as_ptr().cast(),
            mod_: crate::sys::this_module(),
            // Only the address of the exported ops is taken.
            ops: &raw const bindings::param_ops_uint,
            perm: 0o644,
            level: -1,
            flags: 0,
            __bindgen_anon_1: bindings::kernel_param__bindgen_ty_1 {
                arg: $value.0.as_ptr().cast::<c_void>(),
            },
        });
    };
}

macro_rules! modinfo {
    ($entry:ident, $text:literal) => {
        #[link_section = ".modinfo"]
        #[used]
        static $entry: [u8; concat!($text, "\0").len()] = {
            let s = concat!($text, "\0").as_bytes();
            let mut out = [0u8; concat!($text, "\0").len()];
            let mut i = 0;
            while i < s.len() {
                out[i] = s[i];
                i += 1;
            }
            out
        };
    };
}

uint_param!(
    MAX_QUEUE_MSGS,
    MAX_QUEUE_MSGS_PARAM,
    "max_queue_msgs",
    256,
    "Most messages one receive queue holds."
);
modinfo!(MAX_QUEUE_MSGS_TYPE, "parmtype=max_queue_msgs:uint");
modinfo!(
    MAX_QUEUE_MSGS_DESC,
    "parm=max_queue_msgs:Most messages one receive queue holds (default 256)"
);

uint_param!(
    MAX_OWNED_ADDRS,
    MAX_OWNED_ADDRS_PARAM,
    "max_owned_addrs",
    64,
    "Most addresses a master may grant one endpoint, its handle aside."
);
modinfo!(MAX_OWNED_ADDRS_TYPE, "parmtype=max_owned_addrs:uint");
modinfo!(
    MAX_OWNED_ADDRS_DESC,
    "parm=max_owned_addrs:Most addresses granted to one endpoint (default 64)"
);

uint_param!(
    MAX_MATCHES,
    MAX_MATCHES_PARAM,
    "max_matches",
    64,
    "Most multicast match grants, and most send grants, of one endpoint."
);
modinfo!(MAX_MATCHES_TYPE, "parmtype=max_matches:uint");
modinfo!(
    MAX_MATCHES_DESC,
    "parm=max_matches:Most match (and send) grants of one endpoint (default 64)"
);
