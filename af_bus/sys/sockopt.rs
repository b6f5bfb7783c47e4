// SPDX-License-Identifier: GPL-2.0

//! Socket option values: `setsockopt`'s `sockptr_t` and `getsockopt`'s user buffer and length.

use core::mem::size_of;
use kernel::bindings;
use kernel::error::{code::*, Result};
use kernel::ffi::{c_char, c_int};
use kernel::types::{AsBytes, FromBytes};
use kernel::uaccess::UserSlice;

/// The value `setsockopt` passes: user or kernel memory, as `sockptr_t`
/// says, of `len` bytes.
///
/// # Invariants
///
/// `ptr` points to `len` readable bytes of the memory it names, for as long
/// as this lives: kernel memory that stays valid, or user memory (checked
/// by every copy).
pub(crate) struct OptIn {
    ptr: bindings::sockptr_t,
    len: usize,
}

impl OptIn {
    /// # Safety
    ///
    /// `ptr` and `len` are what the socket layer passed to `setsockopt`,
    /// and the value is not used after that call returns.
    pub(crate) unsafe fn new(ptr: bindings::sockptr_t, len: u32) -> Self {
        // INVARIANT: the socket layer's contract, for the call.
        OptIn {
            ptr,
            len: len as usize,
        }
    }

    /// Reads a `T` from the start of the value: `EINVAL` if it is shorter,
    /// `EFAULT` if user memory is not readable (as `copy_from_sockptr`).
    pub(crate) fn read<T: FromBytes>(&self) -> Result<T> {
        if self.len < size_of::<T>() {
            return Err(EINVAL);
        }
        if self.ptr.is_kernel() {
            // SAFETY: kernel memory of at least `size_of::<T>()` bytes (type
            // invariant), any bit pattern of which is a `T` (`FromBytes`).
            Ok(unsafe {
                self.ptr
                    .__bindgen_anon_1
                    .kernel
                    .cast::<T>()
                    .read_unaligned()
            })
        } else {
            // SAFETY: the user arm of the union, as the tag says.
            let user = unsafe { self.ptr.__bindgen_anon_1.user };
            UserSlice::new(user as usize, size_of::<T>())
                .reader()
                .read::<T>()
        }
    }
}

/// `getsockopt`'s value buffer and the length it has room for, both in
/// user memory; every access is a checked copy.
pub(crate) struct OptOut {
    val: usize,
    len: usize,
}

impl OptOut {
    /// The buffer `optval` and its length `optlen`, as `getsockopt` passes
    /// them (user pointers).
    pub(crate) fn new(optval: *mut c_char, optlen: *mut c_int) -> Self {
        OptOut {
            val: optval as usize,
            len: optlen as usize,
        }
    }

    /// The room the caller gave: `EFAULT` if unreadable, `EINVAL` if
    /// negative.
    pub(crate) fn room(&self) -> Result<usize> {
        let room = UserSlice::new(self.len, size_of::<c_int>())
            .reader()
            .read::<c_int>()?;
        usize::try_from(room).map_err(|_| EINVAL)
    }

    /// Writes `bytes` at byte `at` of the buffer.
    pub(crate) fn write_at(&self, at: usize, bytes: &[u8]) -> Result {
        let to = self.val.checked_add(at).ok_or(EFAULT)?;
        UserSlice::new(to, bytes.len()).writer().write_slice(bytes)
    }

    /// Writes `value` at the start of the buffer.
    pub(crate) fn write<T: AsBytes>(&self, value: &T) -> Result {
        UserSlice::new(self.val, size_of::<T>())
            .writer()
            .write(value)
    }

    /// Tells the caller how long the value is.
    pub(crate) fn set_len(&self, n: usize) -> Result {
        let n = c_int::try_from(n).map_err(|_| EINVAL)?;
        UserSlice::new(self.len, size_of::<c_int>())
            .writer()
            .write(&n)
    }
}
