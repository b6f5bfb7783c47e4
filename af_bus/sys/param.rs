// SPDX-License-Identifier: GPL-2.0

//! Module parameters as `module_param()` makes them (`struct kernel_param`
//! entries in the `__param` section), which the 6.12 `module!` macro
//! cannot declare.

use core::sync::atomic::{AtomicU32, Ordering};

use kernel::bindings;
use kernel::ffi::c_void;

/// An `unsigned int` parameter, read with [`UintParam::get`].
#[repr(transparent)]
pub(crate) struct UintParam(AtomicU32);

impl UintParam {
    /// A parameter of default value `v`.
    pub(crate) const fn new(v: u32) -> Self {
        Self(AtomicU32::new(v))
    }

    /// Where the kernel stores the value, for its `kernel_param` entry.
    pub(crate) const fn as_arg(&self) -> *mut c_void {
        self.0.as_ptr().cast::<c_void>()
    }

    /// The current value, at least 1.
    pub(crate) fn get(&self) -> usize {
        // `u32` always fits `usize` on the architectures Rust supports.
        self.0.load(Ordering::Relaxed).max(1) as usize
    }
}

/// A `struct kernel_param` in a static.
#[repr(transparent)]
pub(crate) struct KernelParam(pub(crate) bindings::kernel_param);

// SAFETY: the kernel reads these entries, and writes the value they point
// at through `param_ops_uint` under its own locking; the value is atomic.
unsafe impl Sync for KernelParam {}

/// Declares an `unsigned int` parameter `$value` and its entry.
macro_rules! uint_param {
    ($value:ident, $entry:ident, $name:literal, $default:expr, $desc:literal) => {
        #[doc = $desc]
        pub(crate) static $value: $crate::sys::UintParam = $crate::sys::UintParam::new($default);

        #[link_section = "__param"]
        #[used]
        static $entry: $crate::sys::KernelParam =
            $crate::sys::KernelParam(kernel::bindings::kernel_param {
                name: concat!($name, "\0").as_ptr().cast(),
                mod_: crate::sys::this_module(),
                // Only the address of the exported ops is taken.
                ops: &raw const kernel::bindings::param_ops_uint,
                perm: 0o644,
                level: -1,
                flags: 0,
                __bindgen_anon_1: kernel::bindings::kernel_param__bindgen_ty_1 {
                    arg: $value.as_arg(),
                },
            });
    };
}

/// Declares a `.modinfo` string.
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

pub(crate) use modinfo;
pub(crate) use uint_param;
