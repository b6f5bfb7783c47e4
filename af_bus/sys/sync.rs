// SPDX-License-Identifier: GPL-2.0

//! Statics the kernel mutates (`CStatic`) and a lock-free set-once `Arc` cell (`OnceArc`).

use core::ptr;
use kernel::types::Opaque;

/// A C object the kernel owns and mutates, kept in a Rust static.
#[repr(transparent)]
pub(crate) struct CStatic<T>(pub(crate) Opaque<T>);

// SAFETY: the wrapped C objects are only handed to C registration
// functions, which do their own locking; Rust never reads them.
unsafe impl<T> Sync for CStatic<T> {}

impl<T> CStatic<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(Opaque::new(value))
    }

    pub(crate) const fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// An `Arc<T>` set at most once and kept until the cell is dropped, so
/// that it is read without a lock.
///
/// # Invariants
///
/// `ptr` is null, or came from [`Arc::into_raw`] and owns that reference
/// until the cell is dropped.
pub(crate) struct OnceArc<T> {
    pub(crate) ptr: core::sync::atomic::AtomicPtr<T>,
}

// SAFETY: the cell hands out `&T` to any thread and drops an `Arc<T>` on
// any thread, which `Arc<T>` allows when `T` is `Send + Sync`.
unsafe impl<T: Send + Sync> Sync for OnceArc<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Send for OnceArc<T> {}

impl<T> OnceArc<T> {
    /// An empty cell.
    pub(crate) const fn new() -> Self {
        // INVARIANT: null.
        OnceArc {
            ptr: core::sync::atomic::AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Stores `v` if the cell is empty; else drops it and returns false.
    pub(crate) fn set(&self, v: kernel::sync::Arc<T>) -> bool {
        let p = kernel::sync::Arc::into_raw(v).cast_mut();
        let stored = self
            .ptr
            .compare_exchange(
                ptr::null_mut(),
                p,
                core::sync::atomic::Ordering::AcqRel,
                core::sync::atomic::Ordering::Acquire,
            )
            .is_ok();
        if !stored {
            // SAFETY: `p` came from `into_raw` just above and was not stored.
            drop(unsafe { kernel::sync::Arc::from_raw(p) });
        }
        // INVARIANT: a stored pointer owns the reference `into_raw` gave.
        stored
    }

    /// The value, if set: it lives as long as the cell.
    pub(crate) fn get(&self) -> Option<&T> {
        let p = self.ptr.load(core::sync::atomic::Ordering::Acquire);
        // SAFETY: a non-null `ptr` owns a reference until the cell is dropped, which cannot
        // happen while `self` is borrowed (type invariant).
        unsafe { p.as_ref() }
    }
}

impl<T> Drop for OnceArc<T> {
    fn drop(&mut self) {
        let p = *self.ptr.get_mut();
        if !p.is_null() {
            // SAFETY: the reference the cell owned (type invariant), given back once.
            drop(unsafe { kernel::sync::Arc::from_raw(p) });
        }
    }
}
