// SPDX-License-Identifier: GPL-2.0

//! Statics the kernel mutates (`CStatic`), a module-wide value (`Global`) and a lock-free
//! set-once `Arc` cell (`OnceArc`).

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

/// A module-wide value in a static: installed by the module's `init`
/// before anything can reach it, taken back by its exit once nothing can.
///
/// # Invariants
///
/// `ptr` is null, or came from [`KBox::into_raw`] of a pinned box that
/// the cell owns until [`Global::take`].
pub(crate) struct Global<T> {
    ptr: core::sync::atomic::AtomicPtr<T>,
}

// SAFETY: the cell hands out `&T` to any thread and gives the box back on
// any thread, which `T: Send + Sync` allows.
unsafe impl<T: Send + Sync> Sync for Global<T> {}

impl<T> Global<T> {
    /// An empty cell.
    pub(crate) const fn new() -> Self {
        // INVARIANT: null.
        Global {
            ptr: core::sync::atomic::AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Installs `value`; `EBUSY` (dropping it) if the cell holds one.
    pub(crate) fn set(
        &self,
        value: core::pin::Pin<kernel::alloc::KBox<T>>,
    ) -> kernel::error::Result {
        // SAFETY: the box stays pinned: the cell never moves the value and
        // gives it back as a pinned box.
        let p =
            kernel::alloc::KBox::into_raw(unsafe { core::pin::Pin::into_inner_unchecked(value) });
        if self
            .ptr
            .compare_exchange(
                ptr::null_mut(),
                p,
                core::sync::atomic::Ordering::AcqRel,
                core::sync::atomic::Ordering::Acquire,
            )
            .is_err()
        {
            // SAFETY: `p` came from `into_raw` just above and was not stored.
            drop(unsafe { kernel::alloc::KBox::from_raw(p) });
            return Err(kernel::error::code::EBUSY);
        }
        // INVARIANT: the stored pointer owns the box.
        Ok(())
    }

    /// The value, if installed.
    pub(crate) fn get(&self) -> Option<&T> {
        let p = self.ptr.load(core::sync::atomic::Ordering::Acquire);
        // SAFETY: a non-null `ptr` owns its box until `take`, whose caller
        // guarantees that no reference `get` returned is still in use.
        unsafe { p.as_ref() }
    }

    /// Empties the cell and gives back its value.
    ///
    /// # Safety
    ///
    /// No reference that [`Global::get`] returned may be used after this:
    /// the module calls it on exit, once the family is unregistered and
    /// its sockets (which each hold a module reference) and procfs entries
    /// are gone.
    pub(crate) unsafe fn take(&self) -> Option<core::pin::Pin<kernel::alloc::KBox<T>>> {
        let p = self
            .ptr
            .swap(ptr::null_mut(), core::sync::atomic::Ordering::AcqRel);
        if p.is_null() {
            return None;
        }
        // SAFETY: the box the cell owned (type invariant), given back once;
        // it was pinned when installed.
        Some(unsafe { core::pin::Pin::new_unchecked(kernel::alloc::KBox::from_raw(p)) })
    }
}
