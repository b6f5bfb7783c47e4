// SPDX-License-Identifier: GPL-2.0

//! `struct seq_file` (`SeqFile`) as a `core::fmt::Write`.

use kernel::bindings;
use kernel::ffi::c_void;

/// A `seq_file` being filled by a show callback.
pub(crate) struct SeqFile(pub(crate) *mut bindings::seq_file);

impl core::fmt::Write for SeqFile {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // SAFETY: `self.0` is the seq_file of the running show callback;
        // `seq_write` copies `s` and records overflow itself.
        unsafe { bindings::seq_write(self.0, s.as_ptr().cast::<c_void>(), s.len()) };
        Ok(())
    }
}
