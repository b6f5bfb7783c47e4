// SPDX-License-Identifier: GPL-2.0

//! `struct sock` with a family's state after it (`Sock<T>`), its weak
//! listing, and peer credentials.

use core::ptr;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::ffi::c_long;
use kernel::types::ARef;
use kernel::types::AlwaysRefCounted;
use kernel::types::Opaque;

use super::*;

/// The state a socket family keeps after `struct sock` in a [`Sock`].
///
/// # Safety
///
/// Values of the implementing type exist only as the `state` of a
/// [`Sock`], initialised in place by the family's `create` callback and
/// dropped by its `sk_destruct`: never anywhere else, so that a reference
/// to one is always a reference into a live `Sock`.
pub(crate) unsafe trait SockState: Send + Sync + Sized {
    /// The socket this is the state of.
    fn sock(&self) -> &Sock<Self> {
        // SAFETY: by the trait's contract `self` is the `state` field of a
        // live `Sock<Self>`, which lives as long as `self` is borrowed.
        unsafe { &*kernel::container_of!(self, Sock<Self>, state) }
    }
}

/// A socket of the family: `struct sock` followed by the family's state
/// `T` (AF_BUS's is `Endpoint`, the logic's type; this wrapper does not
/// name it).
///
/// # Invariants
///
/// `sk` was allocated by `sk_alloc` with a `struct proto` whose
/// `obj_size` is the size of this struct, and `state` is initialised
/// from the end of the family's `create` until its `sk_destruct`.
#[repr(C)]
pub(crate) struct Sock<T> {
    pub(crate) sk: Opaque<bindings::sock>,
    // Pinned: initialised in place by `create`, never moved.
    pub(crate) state: T,
}

// SAFETY: the socket layer is free-threaded; `T` is `Sync`, and the C
// part is protected by the C locks of `struct sock`.
unsafe impl<T: Sync> Sync for Sock<T> {}
// SAFETY: see above; references are counted by `sk_refcnt`.
unsafe impl<T: Send> Send for Sock<T> {}

impl<T> Sock<T> {
    /// # Safety
    ///
    /// `sk` must be a live sock of the family whose state is `T`, past
    /// its `create`, and stay alive for `'a`.
    pub(crate) unsafe fn from_sk<'a>(sk: *mut bindings::sock) -> &'a Sock<T> {
        // SAFETY: `sk` is the first field of `Sock` (`repr(C)`), and by
        // the type invariant the whole object is initialised.
        unsafe { &*sk.cast::<Sock<T>>() }
    }

    pub(crate) fn sk(&self) -> *mut bindings::sock {
        self.sk.get()
    }

    /// The family's state of this socket.
    pub(crate) fn state(&self) -> &T {
        &self.state
    }

    /// The socket inode number, as `/proc/net/bus` and `ss` show it.
    pub(crate) fn ino(&self) -> u64 {
        // SAFETY: `self.sk()` is a live sock (type invariant).
        let ino = unsafe { bindings::sock_i_ino(self.sk()) };
        // `unsigned long` is 64 bits on the architectures Rust supports.
        ino as u64
    }

    /// Identity of the socket's network namespace (never dereferenced).
    pub(crate) fn net_id(&self) -> usize {
        // SAFETY: `self.sk()` is a live sock; `sock_net` only reads it.
        unsafe { bindings::sock_net(self.sk()) as usize }
    }

    /// Runs the socket's filter (`SO_ATTACH_FILTER`, `SO_ATTACH_BPF`) on
    /// `skb`, which sees the payload at offset 0.  `false`: drop it.
    pub(crate) fn filter(&self, skb: &mut Skb) -> bool {
        // SAFETY: both are live; the filter runs under RCU inside.
        unsafe { bindings::sk_filter(self.sk(), skb.raw()) == 0 }
    }

    /// Whether a socket filter is attached.
    pub(crate) fn has_filter(&self) -> bool {
        // SAFETY: `sk_filter` is an RCU pointer of a live sock; only
        // whether it is null is looked at.
        unsafe { !ptr::read_volatile(&raw const (*self.sk()).sk_filter).is_null() }
    }

    /// Counts one message this socket did not get; returns the new count.
    pub(crate) fn count_drop(&self) -> u32 {
        // SAFETY: `sk_drops` is an `atomic_t` of a live sock; this is
        // `atomic_inc_return`.
        let drops = unsafe {
            core::sync::atomic::AtomicI32::from_ptr(&raw mut (*self.sk()).sk_drops.counter)
        };
        drops
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed)
            .wrapping_add(1)
            .unsigned_abs()
    }

    /// Messages this socket failed to receive.
    pub(crate) fn drops(&self) -> u32 {
        // SAFETY: `sk_drops` is an `atomic_t` of a live sock; a volatile
        // read is what `atomic_read` does.
        let d = unsafe { ptr::read_volatile(&raw const (*self.sk()).sk_drops.counter) };
        d.unsigned_abs()
    }

    /// The file mode a socket inode bound by this socket gets.
    pub(crate) fn inode_mode(&self) -> u16 {
        // SAFETY: a socket with a file is embedded in a `socket_alloc`
        // next to its inode; `sk_socket` is set while the socket is not
        // released, and `bind` is only called before release.
        let mode = unsafe {
            let sock = (*self.sk()).sk_socket;
            let alloc = kernel::container_of!(sock, bindings::socket_alloc, socket);
            (*alloc).vfs_inode.i_mode
        };
        // SAFETY: `current_umask` reads the calling task's fs struct.
        let umask = unsafe { bindings::current_umask() };
        (bindings::S_IFSOCK as u16) | (mode & !(umask as u16) & 0o777)
    }

    /// The receive buffer size, `SO_RCVBUF`.
    pub(crate) fn rcvbuf(&self) -> usize {
        // SAFETY: `sk_rcvbuf` is an int of a live sock, read once.
        let v = unsafe { ptr::read_volatile(&raw const (*self.sk()).sk_rcvbuf) };
        usize::try_from(v).unwrap_or(0)
    }

    /// The largest payload a send may carry: the send buffer less a
    /// little, as AF_UNIX has it.
    pub(crate) fn max_payload(&self) -> usize {
        // SAFETY: `sk_sndbuf` is an int of a live sock, read once.
        let v = unsafe { ptr::read_volatile(&raw const (*self.sk()).sk_sndbuf) };
        usize::try_from(v).unwrap_or(0).saturating_sub(32)
    }

    /// The send timeout, or 0 for a non-blocking send.
    pub(crate) fn sndtimeo(&self, nonblock: bool) -> c_long {
        // SAFETY: reads a field of a live sock.
        unsafe { bindings::sock_sndtimeo(self.sk(), nonblock) }
    }

    /// The receive timeout, or 0 for a non-blocking receive.
    pub(crate) fn rcvtimeo(&self, nonblock: bool) -> c_long {
        // SAFETY: reads a field of a live sock.
        unsafe { bindings::sock_rcvtimeo(self.sk(), nonblock) }
    }

    /// Wakes every waiter and poller of this socket (`sk_state_change`):
    /// its bus died.
    pub(crate) fn state_change(&self) {
        // SAFETY: `sk_state_change` is set by `sock_init_data` and never
        // cleared; the sock is live.
        unsafe {
            if let Some(f) = (*self.sk()).sk_state_change {
                f(self.sk());
            }
        }
    }

    /// Wakes pollers for an error to report (`sk_error_report`: `EPOLLERR`,
    /// and `SIGIO` for `O_ASYNC`).
    pub(crate) fn error_report(&self) {
        // SAFETY: `sk_error_report` is set by `sock_init_data` and never
        // cleared; the sock is live.
        unsafe {
            if let Some(f) = (*self.sk()).sk_error_report {
                f(self.sk());
            }
        }
    }

    /// Wakes writers and pollers for room at a destination
    /// (`sk_write_space`, the family's `af_bus_write_space`).
    pub(crate) fn write_space(&self) {
        // SAFETY: `sk_write_space` is set by `bus_create` and never
        // cleared; the sock is live.
        unsafe {
            if let Some(f) = (*self.sk()).sk_write_space {
                f(self.sk());
            }
        }
    }

    /// Sets what `SO_PEERCRED` gives: `peer`'s identity.
    pub(crate) fn set_peer(&self, peer: &PeerCred) {
        let PeerRefs { pid, cred } = peer.get();
        // SAFETY: `sk_peer_lock` guards the two fields, as in `sock_getsockopt`; the references
        // taken by `get` move in, the old ones (dropped by `__sk_destruct` otherwise) are put
        // after the lock is dropped.
        unsafe {
            let sk = self.sk();
            bindings::spin_lock(&raw mut (*sk).sk_peer_lock);
            let old_pid = core::mem::replace(&mut (*sk).sk_peer_pid, pid);
            let old_cred = core::mem::replace(&mut (*sk).sk_peer_cred, cred);
            bindings::spin_unlock(&raw mut (*sk).sk_peer_lock);
            bindings::put_pid(old_pid);
            put_cred(old_cred);
        }
    }

    /// Wakes readers for new data (`sk_data_ready`: poll, and `SIGIO` for
    /// `O_ASYNC`).
    pub(crate) fn data_ready(&self) {
        // SAFETY: `sk_data_ready` is set by `sock_init_data` and never
        // cleared; the sock is live.
        unsafe {
            if let Some(f) = (*self.sk()).sk_data_ready {
                f(self.sk());
            }
        }
    }

    /// Bytes of this socket's messages not yet received (`SIOCOUTQ`).
    pub(crate) fn outq(&self) -> usize {
        // SAFETY: reads a counter of a live sock.
        let v = unsafe { bindings::sk_wmem_alloc_get(self.sk()) };
        usize::try_from(v).unwrap_or(0)
    }

    /// Marks the socket shut down for reading, so that a receiver asleep
    /// in [`Sock::wait_for_data`] returns at once.
    pub(crate) fn shutdown_rx(&self) {
        // SAFETY: `sk_shutdown` is a byte of a live sock; a racy store is
        // what the socket layer does too (`WRITE_ONCE`).
        unsafe {
            ptr::write_volatile(
                &raw mut (*self.sk()).sk_shutdown,
                bindings::SHUTDOWN_MASK as u8,
            )
        };
    }
}

// SAFETY: `sock_hold` and `sock_put` maintain `sk_refcnt`, and the sock
// (with its `Sock`) is freed only when that count drops to zero.
unsafe impl<T: Send + Sync> AlwaysRefCounted for Sock<T> {
    fn inc_ref(&self) {
        // SAFETY: `self` is a live sock.
        unsafe { bindings::sock_hold(self.sk()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller owns a reference, which this gives back.
        unsafe { bindings::sock_put(obj.as_ptr().cast()) };
    }
}

/// A socket as a table lists it: a counted reference, as `sk_add_node`
/// takes one for the tables of the C families.  Release unlists the
/// socket, which drops that reference, so a listed socket is never freed.
/// (A dying bus hands its members' references to the master's release,
/// which wakes them and then drops them: a member that closed meanwhile
/// is freed there, with no lock held.)
///
/// Not an [`ARef`] only so that the family's state may hold one (a link
/// to itself) without making its `Send` depend on itself.
///
/// # Invariants
///
/// Owns one reference (`sk_refcnt`) on the sock it points to.
pub(crate) struct ListedSock<T>(NonNull<Sock<T>>);

// SAFETY: a reference on a sock may be dropped on any thread, and `&Sock<T>`
// is shared between threads when `T` is `Sync`.
unsafe impl<T: Send + Sync> Send for ListedSock<T> {}
// SAFETY: as above; `&ListedSock<T>` gives out `&Sock<T>` only.
unsafe impl<T: Send + Sync> Sync for ListedSock<T> {}

impl<T> ListedSock<T> {
    /// Lists `s`: takes a reference on it.
    pub(crate) fn new(s: &Sock<T>) -> Self {
        // SAFETY: `s` is a live sock.
        unsafe { bindings::sock_hold(s.sk()) };
        // INVARIANT: the reference just taken.
        Self(NonNull::from(s))
    }

    /// The socket.
    pub(crate) fn sock(&self) -> &Sock<T> {
        // SAFETY: the reference this owns keeps the sock alive while `self`
        // is borrowed (type invariant).
        unsafe { self.0.as_ref() }
    }

    /// Whether this is `s`.
    pub(crate) fn is(&self, s: &Sock<T>) -> bool {
        ptr::eq(self.0.as_ptr(), s)
    }
}

impl<T: Send + Sync> ListedSock<T> {
    /// Another reference on the socket.
    pub(crate) fn get(&self) -> ARef<Sock<T>> {
        ARef::from(self.sock())
    }
}

impl<T> Clone for ListedSock<T> {
    fn clone(&self) -> Self {
        Self::new(self.sock())
    }
}

impl<T> Drop for ListedSock<T> {
    fn drop(&mut self) {
        // SAFETY: gives back the reference this owned (type invariant).
        unsafe { bindings::sock_put(self.0.as_ptr().cast()) };
    }
}

/// Drops a reference to `cred` (`put_cred`, inline in <linux/cred.h>).
///
/// # Safety
///
/// `cred` is null or a credential the caller holds a reference to.
pub(crate) unsafe fn put_cred(cred: *const bindings::cred) {
    if cred.is_null() {
        return;
    }
    // SAFETY: `usage` is the credential's `atomic_long_t` count, which
    // the caller holds one of; `__put_cred` frees it at zero.
    unsafe {
        let usage =
            core::sync::atomic::AtomicI64::from_ptr(&raw mut (*cred.cast_mut()).usage.counter);
        if usage.fetch_sub(1, core::sync::atomic::Ordering::Release) == 1 {
            core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
            bindings::__put_cred(cred.cast_mut());
        }
    }
}

/// A task's identity as its peers see it (`SO_PEERCRED`): its thread
/// group and objective credentials.
///
/// # Invariants
///
/// Both pointers are counted references, dropped on drop.
pub(crate) struct PeerCred {
    pub(crate) pid: NonNull<bindings::pid>,
    pub(crate) cred: NonNull<bindings::cred>,
}

// SAFETY: counted references, usable and droppable from any task.
unsafe impl Send for PeerCred {}
// SAFETY: shared access only takes more references.
unsafe impl Sync for PeerCred {}

impl PeerCred {
    /// The calling task's.
    pub(crate) fn current() -> PeerCred {
        // SAFETY: both functions return counted references to the
        // current task's thread group pid and objective credentials,
        // which are never null for a running task.
        unsafe {
            let task = bindings::get_current();
            let pid = bindings::get_pid(bindings::task_tgid(task));
            let cred = bindings::get_task_cred(task);
            // INVARIANT: counted just above.
            PeerCred {
                pid: NonNull::new_unchecked(pid),
                cred: NonNull::new_unchecked(cred.cast_mut()),
            }
        }
    }

    /// New references to both, for the caller to keep.
    pub(crate) fn get(&self) -> PeerRefs {
        // SAFETY: we hold a reference to each (type invariant); `get_cred`
        // (inline) is an increment of `usage`.
        unsafe {
            let pid = bindings::get_pid(self.pid.as_ptr());
            core::sync::atomic::AtomicI64::from_ptr(&raw mut (*self.cred.as_ptr()).usage.counter)
                .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            PeerRefs {
                pid,
                cred: self.cred.as_ptr(),
            }
        }
    }
}

/// References to a pid and a credential that [`PeerCred::get`] took for
/// its caller, who must keep or put them.
pub(crate) struct PeerRefs {
    pub(crate) pid: *mut bindings::pid,
    pub(crate) cred: *const bindings::cred,
}

impl Drop for PeerCred {
    fn drop(&mut self) {
        // SAFETY: the references are ours (type invariant).
        unsafe {
            bindings::put_pid(self.pid.as_ptr());
            put_cred(self.cred.as_ptr());
        }
    }
}
