// SPDX-License-Identifier: GPL-2.0

//! The C functions of `helpers.c` (static inline kernel functions, as functions) and this module's `struct module`.

use core::ptr;
use kernel::bindings;
use kernel::ffi::c_int;
use kernel::ffi::c_ulong;
use kernel::ffi::c_void;

extern "C" {
    // The `struct module` of this module, built by modpost; the symbol
    // `module!` refers to.  Declared as a byte: only its address is used.
    static __this_module: u8;
}

// `helpers.c`: static inline functions of the kernel, as functions.
extern "C" {
    pub(crate) fn af_bus_pagefault_disable();
    pub(crate) fn af_bus_pagefault_enable();
    pub(crate) fn af_bus_rlimit_nofile() -> c_ulong;
    pub(crate) fn af_bus_prot_inuse_add(sk: *mut c_void, val: c_int);
    pub(crate) fn af_bus_consume_skb(skb: *mut c_void);
    pub(crate) fn af_bus_quota_uid() -> u32;
    pub(crate) fn af_bus_write_space(sk: *mut c_void);
}

pub(crate) const fn this_module() -> *mut bindings::module {
    // `addr_of!` takes the address without reading the extern static.
    ptr::addr_of!(__this_module)
        .cast::<bindings::module>()
        .cast_mut()
}
