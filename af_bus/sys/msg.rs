// SPDX-License-Identifier: GPL-2.0

//! `struct msghdr` (`Msg`): the user's iovec, address and control buffer of one call.

use crate::uapi::SOCKADDR_BUS_SIZE;
use core::ptr;
use kernel::bindings;
use kernel::error::to_result;
use kernel::ffi::c_int;
use kernel::ffi::c_void;
use kernel::prelude::*;

use super::*;

/// A `struct msghdr` of a `sendmsg` or `recvmsg` in progress.
pub(crate) struct Msg<'a>(
    pub(crate) *mut bindings::msghdr,
    pub(crate) core::marker::PhantomData<&'a mut ()>,
);

impl<'a> Msg<'a> {
    /// The `MSG_*` flags of the call.
    pub(crate) fn flags(&self) -> u32 {
        // SAFETY: `self.0` is live for the call.
        unsafe { (*self.0).msg_flags }
    }

    /// The destination of a send: the kernel's copy of `msg_name`.
    pub(crate) fn name(&self) -> Option<&[u8]> {
        // SAFETY: for a send, `msg_name` points at `msg_namelen` bytes
        // of kernel memory (`move_addr_to_kernel`).
        unsafe {
            let name = (*self.0).msg_name;
            let len = usize::try_from((*self.0).msg_namelen).ok()?;
            if name.is_null() || len == 0 {
                return None;
            }
            Some(core::slice::from_raw_parts(name.cast::<u8>(), len))
        }
    }

    /// The kernel's copy of a send's control buffer, which lives as long
    /// as the call (the socket layer frees it after `sendmsg` returns) and
    /// which nothing here writes.
    pub(crate) fn control(&self) -> &'a [u8] {
        // SAFETY: for a send, `msg_control` is a kernel buffer of
        // `msg_controllen` bytes (`____sys_sendmsg` copied it).
        unsafe {
            let ctl = (*self.0).__bindgen_anon_1.msg_control;
            let len = (*self.0).msg_controllen;
            if ctl.is_null() || len == 0 || (*self.0).msg_control_is_user() {
                return &[];
            }
            core::slice::from_raw_parts(ctl.cast::<u8>(), len)
        }
    }

    /// Whether the caller of a receive asked for the source address
    /// (`recv` and `read` do not).
    pub(crate) fn wants_name(&self) -> bool {
        // SAFETY: `self.0` is live for the call; only the pointer is read.
        unsafe { !(*self.0).msg_name.is_null() }
    }

    /// Writes the source of a received message, if the caller asked.
    pub(crate) fn set_name(&mut self, name: &[u8; SOCKADDR_BUS_SIZE]) {
        // SAFETY: for a receive, a non-null `msg_name` is a kernel
        // `sockaddr_storage` (128 bytes).
        unsafe {
            let dst = (*self.0).msg_name;
            if !dst.is_null() {
                ptr::copy_nonoverlapping(name.as_ptr(), dst.cast::<u8>(), name.len());
                (*self.0).msg_namelen = name.len() as c_int;
            }
        }
    }

    /// Whether the caller gave a control buffer: asking for control
    /// messages.
    pub(crate) fn has_control(&self) -> bool {
        // SAFETY: `self.0` is live for the call; only the pointer and
        // length are read.
        unsafe { !(*self.0).__bindgen_anon_1.msg_control.is_null() && (*self.0).msg_controllen > 0 }
    }

    /// Adds `MSG_*` flags to what `recvmsg` returns.
    pub(crate) fn add_flags(&mut self, flags: u32) {
        // SAFETY: `self.0` is live for the call.
        unsafe { (*self.0).msg_flags |= flags };
    }

    /// Appends a control message for the receiver (`MSG_CTRUNC` when it
    /// does not fit).
    pub(crate) fn put_cmsg(&mut self, level: i32, kind: i32, data: &[u8]) -> Result {
        // SAFETY: `put_cmsg` copies `data` to the user's control buffer.
        let err = unsafe {
            bindings::put_cmsg(
                self.0,
                level,
                kind,
                data.len() as c_int,
                data.as_ptr().cast::<c_void>().cast_mut(),
            )
        };
        to_result(err)
    }

    /// Copies `bytes` to the user's iovec.
    pub(crate) fn copy_to_iter(&mut self, bytes: &[u8]) -> Result {
        // SAFETY: `msg_iter` of a receive describes user memory; the
        // copy checks it.
        let n = unsafe {
            bindings::_copy_to_iter(
                bytes.as_ptr().cast::<c_void>(),
                bytes.len(),
                &raw mut (*self.0).msg_iter,
            )
        };
        if n != bytes.len() {
            return Err(EFAULT);
        }
        Ok(())
    }

    /// Faults in the next `len` bytes of the sender's iovec (sleeping as
    /// long as that takes, with nothing held): whether all of them are
    /// readable now.
    pub(crate) fn fault_in(&self, len: usize) -> bool {
        // SAFETY: `msg_iter` of a send describes the sender's memory; the
        // call only touches its pages.
        unsafe { bindings::fault_in_iov_iter_readable(&raw const (*self.0).msg_iter, len) == 0 }
    }

    /// Copies `len` bytes of the sender's iovec to `to` with page faults
    /// disabled: `false`, with the iovec left where it was, if the bytes
    /// are not all in memory (or not readable).  A sender whose buffer
    /// faults slowly (FUSE, userfaultfd) thus cannot stall whoever waits
    /// for the copy to end.
    pub(crate) fn copy_nofault(&mut self, to: *mut u8, len: usize) -> bool {
        // SAFETY: `to` is `len` bytes of kernel memory the caller may write (raw: user space maps
        // the ring).  Between `pagefault_disable()` and `pagefault_enable()` a fault in the copy
        // fails it (a short copy) instead of sleeping.
        unsafe {
            af_bus_pagefault_disable();
            let iter = &raw mut (*self.0).msg_iter;
            let n = bindings::copy_from_iter(to.cast::<c_void>(), len, iter);
            af_bus_pagefault_enable();
            if n != len {
                bindings::iov_iter_revert(iter, n);
                return false;
            }
        }
        true
    }

    /// Copies `len` payload bytes of `skb` to the user's iovec.
    pub(crate) fn copy_from_skb(&mut self, skb: &Skb, len: usize) -> Result {
        // SAFETY: `skb` holds at least `len` linear bytes.
        let err = unsafe { bindings::skb_copy_datagram_msg(skb.raw(), 0, self.0, len as c_int) };
        to_result(err)
    }

    /// Delivers the credentials (with `SO_PASSCRED`) and the files of
    /// `skb`; with `peek` the files are duplicated, not taken.
    pub(crate) fn put_scm<T>(&mut self, sock: &Sock<T>, skb: &Skb, flags: u32, peek: bool) {
        // SAFETY: the cookie gets its own pid reference and either the
        // skb's files (taken out of `cb`) or a duplicate; `scm_recv`
        // consumes all of it.
        unsafe {
            let cb = skb.cb();
            let mut scm: bindings::scm_cookie = core::mem::zeroed();
            if peek {
                if !(*cb).fp.is_null() {
                    scm.fp = bindings::scm_fp_dup((*cb).fp);
                }
            } else {
                scm.fp = (*cb).fp;
                (*cb).fp = ptr::null_mut();
                if !scm.fp.is_null() {
                    // Installed (or closed) now: no longer in flight.
                    Inflight::sub((*cb).fp_uid, fp_count(scm.fp));
                }
            }
            bindings::scm_set_cred(&mut scm, (*cb).pid, (*cb).uid, (*cb).gid);
            bindings::sock_recv_cmsgs(self.0, sock.sk(), skb.raw());
            bindings::scm_recv((*sock.sk()).sk_socket, self.0, &mut scm, flags as c_int);
        }
    }
}
