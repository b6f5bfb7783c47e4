// SPDX-License-Identifier: GPL-2.0

//! The thin unsafe layer: `struct sock`, `struct socket`, VFS paths and the
//! C callbacks of the family, wrapped in types with stated invariants.
//!
//! Everything above this file is safe Rust.  Errors become errnos here,
//! and only here.

use core::ptr::{self, NonNull};
use kernel::ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void};

use kernel::alloc::{
    flags::{__GFP_NOWARN, GFP_KERNEL, GFP_KERNEL_ACCOUNT},
    KVec,
};
use kernel::bindings;
use kernel::error::{code::*, Error, Result};
use kernel::init::PinInit;
use kernel::new_spinlock;
use kernel::prelude::*;
use kernel::sync::SpinLock;
use kernel::types::{ARef, AlwaysRefCounted, Opaque};

use crate::addr::{AddrError, BusAddr, BusPath};
use crate::endpoint::Endpoint;
use crate::uapi::{AF_BUS, SOCKADDR_BUS_SIZE};

/// The errnos the family returns that `kernel::error::code` lacks in 6.12.
pub(crate) mod errno {
    use kernel::bindings;
    use kernel::error::Error;

    fn from_code(code: u32) -> Error {
        // Errno values are small positive numbers: the cast is lossless.
        Error::from_errno(-(code as kernel::ffi::c_int))
    }

    macro_rules! errnos {
        ($($name:ident => $code:ident),* $(,)?) => {
            $(
                #[doc = concat!("`", stringify!($code), "`.")]
                pub(crate) fn $name() -> Error {
                    from_code(bindings::$code)
                }
            )*
        };
    }

    errnos! {
        eaddrinuse => EADDRINUSE,
        eaddrnotavail => EADDRNOTAVAIL,
        econnrefused => ECONNREFUSED,
        econnreset => ECONNRESET,
        edestaddrreq => EDESTADDRREQ,
        ehostunreach => EHOSTUNREACH,
        eisconn => EISCONN,
        emsgsize => EMSGSIZE,
        enobufs => ENOBUFS,
        enoprotoopt => ENOPROTOOPT,
        etoomanyrefs => ETOOMANYREFS,
        enotconn => ENOTCONN,
        eopnotsupp => EOPNOTSUPP,
        eprotonosupport => EPROTONOSUPPORT,
        esocktnosupport => ESOCKTNOSUPPORT,
    }
}

impl From<AddrError> for Error {
    fn from(_: AddrError) -> Error {
        EINVAL
    }
}

/// A C object the kernel owns and mutates, kept in a Rust static.
#[repr(transparent)]
pub(crate) struct CStatic<T>(Opaque<T>);

// SAFETY: the wrapped C objects are only handed to C registration
// functions, which do their own locking; Rust never reads them.
unsafe impl<T> Sync for CStatic<T> {}

impl<T> CStatic<T> {
    const fn new(value: T) -> Self {
        Self(Opaque::new(value))
    }

    pub(crate) const fn get(&self) -> *mut T {
        self.0.get()
    }
}

extern "C" {
    // The `struct module` of this module, built by modpost; the symbol
    // `module!` refers to.  Declared as a byte: only its address is used.
    static __this_module: u8;
}

// `helpers.c`: static inline functions of the kernel, as functions.
extern "C" {
    fn af_bus_pagefault_disable();
    fn af_bus_pagefault_enable();
    fn af_bus_rlimit_nofile() -> c_ulong;
    fn af_bus_prot_inuse_add(sk: *mut c_void, val: c_int);
    fn af_bus_consume_skb(skb: *mut c_void);
    fn af_bus_quota_uid() -> u32;
}

pub(crate) const fn this_module() -> *mut bindings::module {
    // `addr_of!` takes the address without reading the extern static.
    ptr::addr_of!(__this_module)
        .cast::<bindings::module>()
        .cast_mut()
}

const fn c_name<const N: usize>(s: &[u8]) -> [c_char; N] {
    let mut out = [0; N];
    let mut i = 0;
    while i < s.len() && i < N - 1 {
        out[i] = s[i] as c_char;
        i += 1;
    }
    out
}

/// An AF_BUS socket: `struct sock` followed by the family's state.
///
/// # Invariants
///
/// `sk` was allocated by `sk_alloc` with [`BUS_PROTO`], whose `obj_size`
/// is the size of this struct, and `endpoint` is initialised from the
/// end of `bus_create` until `bus_sock_destruct`.
#[repr(C)]
pub(crate) struct BusSock {
    sk: Opaque<bindings::sock>,
    // Pinned: initialised in place by `bus_create`, never moved.
    endpoint: Endpoint,
}

// SAFETY: the socket layer is free-threaded; `Endpoint` is `Sync`, and the
// C part is protected by the C locks of `struct sock`.
unsafe impl Sync for BusSock {}
// SAFETY: see above; references are counted by `sk_refcnt`.
unsafe impl Send for BusSock {}

impl BusSock {
    /// # Safety
    ///
    /// `sk` must be a live AF_BUS sock, past `bus_create`, and stay alive
    /// for `'a`.
    unsafe fn from_sk<'a>(sk: *mut bindings::sock) -> &'a BusSock {
        // SAFETY: `sk` is the first field of `BusSock` (`repr(C)`), and by
        // the type invariant the whole object is initialised.
        unsafe { &*sk.cast::<BusSock>() }
    }

    fn sk(&self) -> *mut bindings::sock {
        self.sk.get()
    }

    /// The family's state of this socket.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
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
    fn inode_mode(&self) -> u16 {
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
}

// SAFETY: `sock_hold` and `sock_put` maintain `sk_refcnt`, and the sock
// (with its `BusSock`) is freed only when that count drops to zero.
unsafe impl AlwaysRefCounted for BusSock {
    fn inc_ref(&self) {
        // SAFETY: `self` is a live sock.
        unsafe { bindings::sock_hold(self.sk()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller owns a reference, which this gives back.
        unsafe { bindings::sock_put(obj.as_ptr().cast()) };
    }
}

/// A raw pointer to a socket that a table may keep while the socket is
/// listed: release unlists it before dropping its own reference.
#[derive(Clone, Copy)]
pub(crate) struct ListedSock(NonNull<BusSock>);

// SAFETY: only dereferenced under the lock of the table that lists it.
unsafe impl Send for ListedSock {}

impl ListedSock {
    pub(crate) fn new(s: &BusSock) -> Self {
        Self(NonNull::from(s))
    }

    /// Whether this is `s`.
    pub(crate) fn is(&self, s: &BusSock) -> bool {
        ptr::eq(self.0.as_ptr(), s)
    }

    /// Takes a reference on the socket.
    ///
    /// # Safety
    ///
    /// The socket must still be listed (its release has not unlisted it).
    pub(crate) unsafe fn get(&self) -> ARef<BusSock> {
        // SAFETY: a listed socket has not dropped its last reference.
        ARef::from(unsafe { self.0.as_ref() })
    }
}

/// Drops a reference to `cred` (`put_cred`, inline in <linux/cred.h>).
///
/// # Safety
///
/// `cred` is null or a credential the caller holds a reference to.
unsafe fn put_cred(cred: *const bindings::cred) {
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
    pid: NonNull<bindings::pid>,
    cred: NonNull<bindings::cred>,
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
    fn get(&self) -> (*mut bindings::pid, *const bindings::cred) {
        // SAFETY: we hold a reference to each (type invariant); `get_cred`
        // (inline) is an increment of `usage`.
        unsafe {
            let pid = bindings::get_pid(self.pid.as_ptr());
            core::sync::atomic::AtomicI64::from_ptr(&raw mut (*self.cred.as_ptr()).usage.counter)
                .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            (pid, self.cred.as_ptr())
        }
    }
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

/// A counted reference to a filesystem path (`path_get`/`path_put`).
pub(crate) struct PathRef(bindings::path);

// SAFETY: `struct path` references may be dropped from any task.
unsafe impl Send for PathRef {}
// SAFETY: shared access only reads the pointers.
unsafe impl Sync for PathRef {}

/// `LOOKUP_FOLLOW` of `<linux/namei.h>` (a `BIT()`, which bindgen skips).
const LOOKUP_FOLLOW: c_uint = 1;

impl PathRef {
    /// Looks `path` up, following links.
    pub(crate) fn lookup(path: &BusPath) -> Result<PathRef> {
        let name = path.c_name();
        let mut p = bindings::path {
            mnt: ptr::null_mut(),
            dentry: ptr::null_mut(),
        };
        // SAFETY: `name` is NUL-terminated; `p` is filled on success.
        let err = unsafe { bindings::kern_path(name.as_ptr().cast(), LOOKUP_FOLLOW, &mut p) };
        if err != 0 {
            return Err(Error::from_errno(err));
        }
        // INVARIANT: `kern_path` returned a counted reference.
        Ok(PathRef(p))
    }

    fn inode(&self) -> *mut bindings::inode {
        // SAFETY: the dentry is pinned by our reference.
        unsafe { bindings::d_backing_inode(self.0.dentry) }
    }

    /// Identity of the inode (never dereferenced by callers).
    pub(crate) fn inode_id(&self) -> usize {
        self.inode() as usize
    }

    /// Whether the path ends at a socket inode.
    pub(crate) fn is_socket(&self) -> bool {
        let inode = self.inode();
        // SAFETY: a positive dentry's inode lives as long as it.
        !inode.is_null()
            && u32::from(unsafe { (*inode).i_mode }) & bindings::S_IFMT == bindings::S_IFSOCK
    }

    /// `EACCES` unless the caller may write the inode.
    pub(crate) fn may_write(&self) -> Result {
        // SAFETY: the mount and inode are pinned by our reference.
        let err = unsafe {
            bindings::inode_permission(
                bindings::mnt_idmap(self.0.mnt),
                self.inode(),
                bindings::MAY_WRITE as c_int,
            )
        };
        if err != 0 {
            return Err(Error::from_errno(err));
        }
        Ok(())
    }
}

impl Drop for PathRef {
    fn drop(&mut self) {
        // SAFETY: the path holds a reference (type invariant).
        unsafe { bindings::path_put(&self.0) };
    }
}

/// A socket inode just created by `mknod`, with its parent still locked.
///
/// Dropping it removes the inode again; [`NewSocketNode::commit`] keeps it.
pub(crate) struct NewSocketNode {
    parent: bindings::path,
    dentry: *mut bindings::dentry,
    idmap: *mut bindings::mnt_idmap,
}

impl NewSocketNode {
    /// Creates a socket inode at `path`, as `bind()` of AF_UNIX does.
    /// `EADDRINUSE` if something exists there.
    pub(crate) fn create(sock: &BusSock, path: &BusPath) -> Result<NewSocketNode> {
        let name = path.c_name();
        let mode = sock.inode_mode();
        let mut parent = bindings::path {
            mnt: ptr::null_mut(),
            dentry: ptr::null_mut(),
        };
        // SAFETY: `name` is NUL-terminated; on success `parent` holds a
        // reference and its inode is locked until `done_path_create`.
        let dentry = unsafe {
            bindings::kern_path_create(bindings::AT_FDCWD, name.as_ptr().cast(), &mut parent, 0)
        };
        if let Some(err) = ptr_err(dentry) {
            return Err(if err == EEXIST {
                errno::eaddrinuse()
            } else {
                err
            });
        }
        // SAFETY: `parent.mnt` is a counted reference.
        let idmap = unsafe { bindings::mnt_idmap(parent.mnt) };
        // SAFETY: `parent` and `dentry` come from `kern_path_create`.
        let mut err = unsafe { bindings::security_path_mknod(&parent, dentry, mode, 0) };
        if err == 0 {
            // SAFETY: as above; the parent inode is locked.
            err = unsafe { bindings::vfs_mknod(idmap, (*parent.dentry).d_inode, dentry, mode, 0) };
        }
        if err != 0 {
            // SAFETY: releases what `kern_path_create` took.
            unsafe { bindings::done_path_create(&mut parent, dentry) };
            let err = Error::from_errno(err);
            return Err(if err == EEXIST {
                errno::eaddrinuse()
            } else {
                err
            });
        }
        Ok(NewSocketNode {
            parent,
            dentry,
            idmap,
        })
    }

    /// Identity of the new inode (never dereferenced).
    pub(crate) fn inode_id(&self) -> usize {
        // SAFETY: `kern_path_create` gave us a reference on the dentry,
        // which `vfs_mknod` made positive.
        unsafe { bindings::d_backing_inode(self.dentry) as usize }
    }

    /// A counted reference to the new inode.  Takes no VFS lock (only
    /// references), so it may be called under the module's locks.
    pub(crate) fn path(&self) -> PathRef {
        let path = bindings::path {
            mnt: self.parent.mnt,
            dentry: self.dentry,
        };
        // SAFETY: `path` points at a live mount and dentry (ours until
        // `done_path_create`); `path_get` takes the references the
        // returned `PathRef` owns.
        unsafe { bindings::path_get(&path) };
        // INVARIANT: counted just above.
        PathRef(path)
    }

    /// Keeps the inode and unlocks its directory.  Call it with none of
    /// the module's locks held.
    pub(crate) fn commit(mut self) {
        // SAFETY: releases what `kern_path_create` took.
        unsafe { bindings::done_path_create(&mut self.parent, self.dentry) };
        core::mem::forget(self);
    }
}

impl Drop for NewSocketNode {
    fn drop(&mut self) {
        // SAFETY: the parent is still locked; undo the mknod, then release
        // what `kern_path_create` took.
        unsafe {
            bindings::vfs_unlink(
                self.idmap,
                (*self.parent.dentry).d_inode,
                self.dentry,
                ptr::null_mut(),
            );
            bindings::done_path_create(&mut self.parent, self.dentry);
        }
    }
}

fn ptr_err<T>(p: *mut T) -> Option<Error> {
    let v = p as isize;
    if (-(bindings::MAX_ERRNO as isize)..0).contains(&v) {
        // `v` is in -MAX_ERRNO..0, so it fits a c_int.
        Some(Error::from_errno(v as c_int))
    } else {
        None
    }
}

fn to_errno(r: Result<c_int>) -> c_int {
    match r {
        Ok(v) => v,
        Err(e) => e.to_errno(),
    }
}

fn to_ssize(r: Result<usize>) -> c_int {
    match r {
        // A datagram is at most `INT_MAX` bytes (the socket layer checks).
        Ok(v) => v.min(c_int::MAX as usize) as c_int,
        Err(e) => e.to_errno(),
    }
}

impl BusSock {
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

    /// Wakes readers (and poll) of this socket with `mask`.
    pub(crate) fn wake_readers(&self, mask: u32) {
        // SAFETY: `self.sk()` is live; the helper takes the RCU read lock
        // for the wait queue.
        unsafe { bindings::sk_wake_poll(self.sk(), mask) };
    }

    /// Sets what `SO_PEERCRED` gives: `peer`'s identity.
    pub(crate) fn set_peer(&self, peer: &PeerCred) {
        let (pid, cred) = peer.get();
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
    /// in [`BusSock::wait_for_data`] returns at once.
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

/// The errno for a wait interrupted with `timeo` jiffies left
/// (`ERESTARTSYS`, or `EINTR` once a timeout was given).
pub(crate) fn intr_errno(timeo: c_long) -> Error {
    // SAFETY: pure function of its argument.
    Error::from_errno(unsafe { bindings::sock_intr_errno(timeo) })
}

/// A socket's receive queue (`sk_receive_queue`), owned by the state
/// behind the socket's rx lock: holding `&mut RxQueue` is holding that
/// lock, so the queue needs no lock of its own.
///
/// # Invariants
///
/// `0` is the `sk_receive_queue` of a live sock, which only this value
/// touches, and which outlives it (the value is dropped by the sock's
/// destructor).
pub(crate) struct RxQueue(NonNull<bindings::sk_buff_head>);

// SAFETY: the queue is only touched through `&mut RxQueue`, which the rx
// mutex hands out to one task at a time.
unsafe impl Send for RxQueue {}

impl RxQueue {
    /// # Safety
    ///
    /// `sk` must be a sock being set up whose receive queue nothing else
    /// will touch, and the value must be dropped before the sock is freed.
    pub(crate) unsafe fn new(sk: *mut bindings::sock) -> RxQueue {
        // SAFETY: `sk` is valid (function safety requirement).
        RxQueue(unsafe { NonNull::new_unchecked(&raw mut (*sk).sk_receive_queue) })
    }

    /// Appends `skb`.
    pub(crate) fn push(&mut self, skb: Skb) {
        // SAFETY: the queue is ours alone (type invariant, `&mut self`);
        // it takes the skb.
        unsafe { bindings::__skb_queue_tail(self.0.as_ptr(), skb.into_raw()) };
    }

    /// Takes the first message.
    pub(crate) fn pop(&mut self) -> Option<Skb> {
        // SAFETY: as for `push`.
        let skb = unsafe { bindings::__skb_dequeue(self.0.as_ptr()) };
        // SAFETY: a dequeued skb of ours is owned by the caller.
        NonNull::new(skb).map(|p| unsafe { Skb::from_raw(p) })
    }

    /// Another reference to the first message, for `MSG_PEEK`.
    pub(crate) fn peek(&mut self) -> Option<Skb> {
        // SAFETY: as for `push`; the extra user keeps the skb alive after
        // the lock is dropped.
        unsafe {
            let skb = NonNull::new(bindings::skb_peek(self.0.as_ptr()))?;
            bindings::refcount_inc(&raw mut (*skb.as_ptr()).users);
            Some(Skb::from_raw(skb))
        }
    }

    /// Payload bytes of the first message, 0 when none.
    pub(crate) fn first_len(&self) -> usize {
        // SAFETY: as for `push`; the first skb, if any, is live.
        unsafe {
            let first = bindings::skb_peek(self.0.as_ptr());
            if first.is_null() {
                0
            } else {
                (*first).len as usize
            }
        }
    }

    /// Takes the first message out if it is `skb` (a receive that
    /// delivered it), returning the queue's reference.
    pub(crate) fn unlink_first(&mut self, skb: &Skb) -> Option<Skb> {
        // SAFETY: as for `push`; `skb` is only compared, then unlinked
        // from this queue, which holds it.
        unsafe {
            let first = bindings::skb_peek(self.0.as_ptr());
            if first != skb.raw() {
                return None;
            }
            bindings::__skb_unlink(first, self.0.as_ptr());
            // The queue's user, now the caller's.
            Some(Skb::from_raw(NonNull::new_unchecked(first)))
        }
    }
}

/// Payload bytes kept in an skb's linear buffer; more go in pages.
const SKB_LINEAR_MAX: usize = 16 << 10;
/// Order of the pages of a paged payload (`PAGE_ALLOC_COSTLY_ORDER`).
const SKB_FRAG_ORDER: c_int = 3;
/// Payload bytes one skb's fragments hold at most.
const SKB_FRAGS_MAX: usize = (bindings::MAX_SKB_FRAGS as usize) * (bindings::PAGE_SIZE << 3);

/// The family's part of `skb->cb`.
#[repr(C)]
struct BusCb {
    /// Sender's thread group, counted; null for kernel messages.
    pid: *mut bindings::pid,
    /// `SCM_RIGHTS` files in flight, or null.
    fp: *mut bindings::scm_fp_list,
    uid: bindings::kuid_t,
    gid: bindings::kgid_t,
    /// Bytes of metadata just before `skb->data`.
    meta_len: u32,
    /// Whether the receiver charged it to the sending user.
    charged: bool,
    /// Who the queues charge it to (see [`quota_uid`]).
    quota_uid: u32,
    /// The user `fp`'s files are counted in flight for (see
    /// [`Inflight`]), or `NO_CHARGE`.
    fp_uid: u32,
}

// `struct sock_skb_cb` takes the last four bytes of `cb`.
const _: () = assert!(core::mem::size_of::<BusCb>() <= 48 - 4);

/// An owned `sk_buff` of the family: metadata in its headroom, the
/// payload at `data`, credentials and files in `cb`.
///
/// # Invariants
///
/// The pointer is a live skb we hold one user of, allocated by
/// [`Skb::alloc_send`] or [`Skb::alloc_kernel`].
pub(crate) struct Skb(NonNull<bindings::sk_buff>);

// SAFETY: an skb may be freed from any task.
unsafe impl Send for Skb {}

impl Skb {
    /// # Safety
    ///
    /// `p` must be an skb of this family whose user the caller owns.
    unsafe fn from_raw(p: NonNull<bindings::sk_buff>) -> Self {
        Skb(p)
    }

    fn into_raw(self) -> *mut bindings::sk_buff {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }

    fn raw(&self) -> *mut bindings::sk_buff {
        self.0.as_ptr()
    }

    fn cb(&self) -> *mut BusCb {
        // SAFETY: `cb` is 48 bytes of a live skb, ours to use.
        unsafe { (&raw mut (*self.raw()).cb).cast::<BusCb>() }
    }

    fn init(p: *mut bindings::sk_buff, meta_len: usize) -> Result<Skb> {
        let p = NonNull::new(p).ok_or(ENOMEM)?;
        // SAFETY: a fresh skb with at least `meta_len` bytes of room.
        unsafe {
            bindings::skb_reserve(p.as_ptr(), meta_len as c_int);
            ptr::write(
                (&raw mut (*p.as_ptr()).cb).cast::<BusCb>(),
                BusCb {
                    pid: ptr::null_mut(),
                    fp: ptr::null_mut(),
                    uid: bindings::kuid_t { val: 0 },
                    gid: bindings::kgid_t { val: 0 },
                    meta_len: meta_len as u32,
                    charged: false,
                    quota_uid: NO_CHARGE,
                    fp_uid: NO_CHARGE,
                },
            );
            (*p.as_ptr()).__bindgen_anon_3.__bindgen_anon_1.destructor = Some(bus_skb_destruct);
        }
        // INVARIANT: allocated just above, one user.
        Ok(Skb(p))
    }

    /// Allocates a message of `len` payload bytes.  It is charged to the
    /// sender's memory cgroup, and to the receiver's queue once queued,
    /// but not to the sender's send buffer: a slow receiver must not
    /// hold up the sender's traffic to others.  Past `SKB_LINEAR_MAX`
    /// bytes the payload goes in page fragments (and, past what one skb's
    /// fragments hold, in a chain of skbs), never in one high-order
    /// buffer; a failure is quiet (the size is the sender's choice).
    pub(crate) fn alloc_send(meta_len: usize, len: usize) -> Result<Skb> {
        let gfp = bindings::GFP_KERNEL_ACCOUNT | bindings::__GFP_NOWARN;
        let linear = len.min(SKB_LINEAR_MAX);
        let mut left = len - linear;
        let mut err: c_int = 0;
        let head_paged = left.min(SKB_FRAGS_MAX);
        // SAFETY: plain allocation; `err` is written on failure.
        let p = unsafe {
            bindings::alloc_skb_with_frags(
                (meta_len + linear) as c_ulong,
                head_paged as c_ulong,
                SKB_FRAG_ORDER,
                &mut err,
                gfp,
            )
        };
        let skb = Self::init(p, meta_len)?;
        // SAFETY: a fresh skb with `linear` bytes of tailroom after the headroom and `head_paged`
        // bytes of fragments, which `skb_put`/`data_len` make part of it, as the callers of
        // `sock_alloc_send_pskb` do; `put_from_msg` fills the bytes.
        unsafe {
            let raw = skb.raw();
            bindings::skb_put(raw, linear as c_uint);
            (*raw).data_len = head_paged as c_uint;
            (*raw).len += head_paged as c_uint;
        }
        left -= head_paged;
        // The rest in a chain (`frag_list`), each link all fragments.
        let mut tail: *mut bindings::sk_buff = ptr::null_mut();
        while left > 0 {
            let chunk = left.min(SKB_FRAGS_MAX);
            // SAFETY: plain allocation, as above.
            let c = unsafe {
                bindings::alloc_skb_with_frags(0, chunk as c_ulong, SKB_FRAG_ORDER, &mut err, gfp)
            };
            if c.is_null() {
                return Err(ENOMEM);
            }
            // SAFETY: `c` is a fresh skb of `chunk` bytes of fragments, linked at the end of the
            // head's `frag_list`, which then owns it (freed with it); the head's lengths and true
            // size count it, as `skb_gro_receive_list` does.
            unsafe {
                (*c).data_len = chunk as c_uint;
                (*c).len = chunk as c_uint;
                let head = skb.raw();
                if tail.is_null() {
                    // `skb_shinfo()`: at `head + end` (offsets on 64-bit).
                    let shinfo = (*head).head.add((*head).end as usize);
                    (*shinfo.cast::<bindings::skb_shared_info>()).frag_list = c;
                } else {
                    (*tail).__bindgen_anon_1.__bindgen_anon_1.next = c;
                }
                tail = c;
                (*head).data_len += chunk as c_uint;
                (*head).len += chunk as c_uint;
                (*head).truesize += (*c).truesize;
            }
            left -= chunk;
        }
        Ok(skb)
    }

    /// Allocates a kernel-generated message (a notification).
    pub(crate) fn alloc_kernel(meta_len: usize, len: usize) -> Result<Skb> {
        // SAFETY: plain allocation.
        let p = unsafe { bindings::alloc_skb((meta_len + len) as c_uint, bindings::GFP_KERNEL) };
        Self::init(p, meta_len)
    }

    /// Copies the payload, `len` bytes (what `alloc_send` made room
    /// for), from the sender's iovec.
    pub(crate) fn put_from_msg(&mut self, msg: &mut Msg<'_>, len: usize) -> Result {
        // SAFETY: the skb holds `len` payload bytes, linear and paged;
        // the copy checks the user memory.
        let err = unsafe {
            bindings::skb_copy_datagram_from_iter(
                self.raw(),
                0,
                &raw mut (*msg.0).msg_iter,
                len as c_int,
            )
        };
        if err != 0 {
            return Err(Error::from_errno(err));
        }
        Ok(())
    }

    /// Copies the first `len` payload bytes to `to` (a ring frame).
    pub(crate) fn copy_to(&self, to: *mut u8, len: usize) -> bool {
        if len > self.len() {
            return false;
        }
        // SAFETY: `to` is `len` bytes of kernel memory the caller may
        // write; `skb_copy_bits` walks the linear part, fragments and
        // chain.
        unsafe { bindings::skb_copy_bits(self.raw(), 0, to.cast::<c_void>(), len as c_int) == 0 }
    }

    /// Appends `bytes` to the payload.
    pub(crate) fn put_bytes(&mut self, bytes: &[u8]) {
        // SAFETY: as above; `bytes` is kernel memory.
        unsafe {
            let to = bindings::skb_put(self.raw(), bytes.len() as c_uint);
            ptr::copy_nonoverlapping(bytes.as_ptr(), to.cast::<u8>(), bytes.len());
        }
    }

    /// The metadata bytes, in the headroom just before the payload.
    pub(crate) fn meta(&self) -> &[u8] {
        // SAFETY: `init` reserved `meta_len` bytes before `data`, which
        // nothing else writes.
        unsafe {
            let len = (*self.cb()).meta_len as usize;
            core::slice::from_raw_parts((*self.raw()).data.sub(len), len)
        }
    }

    /// The metadata bytes, to fill in.
    pub(crate) fn meta_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `meta`; `&mut self` makes the access unique.
        unsafe {
            let len = (*self.cb()).meta_len as usize;
            core::slice::from_raw_parts_mut((*self.raw()).data.sub(len), len)
        }
    }

    /// Payload bytes.
    pub(crate) fn len(&self) -> usize {
        // SAFETY: reads a field of a live skb.
        unsafe { (*self.raw()).len as usize }
    }

    /// Bytes the skb takes in memory, the queue's unit of account.
    pub(crate) fn truesize(&self) -> usize {
        // SAFETY: reads a field of a live skb.
        unsafe { (*self.raw()).truesize as usize }
    }

    /// A copy for one more receiver of a multicast: the payload is shared,
    /// the credentials and files are the copy's own.
    pub(crate) fn clone_for_receiver(&self) -> Result<Skb> {
        // SAFETY: `skb_clone` shares the data and copies `cb`, but not the
        // destructor; the copy gets its own pid reference and file list
        // before the destructor that drops them is set.
        unsafe {
            let p = bindings::skb_clone(self.raw(), bindings::GFP_KERNEL);
            let p = NonNull::new(p).ok_or(ENOMEM)?;
            let cb = (&raw mut (*p.as_ptr()).cb).cast::<BusCb>();
            (*cb).charged = false;
            if !(*cb).fp.is_null() {
                (*cb).fp = bindings::scm_fp_dup((*cb).fp);
                if (*cb).fp.is_null() {
                    (*cb).pid = ptr::null_mut();
                    bindings::kfree_skb(p.as_ptr());
                    return Err(ENOMEM);
                }
                // Each copy's files are in flight: counted, not refused
                // (a copy the table has no room for is not counted).
                if !Inflight::add((*cb).fp_uid, fp_count((*cb).fp)) {
                    (*cb).fp_uid = NO_CHARGE;
                }
            }
            (*cb).pid = bindings::get_pid((*cb).pid);
            // `skb_clone` leaves the copy unowned: it is its sender's too.
            let owner = (*self.raw()).sk;
            if !owner.is_null() {
                wmem_charge(owner, (*p.as_ptr()).truesize);
                (*p.as_ptr()).sk = owner;
            }
            (*p.as_ptr()).__bindgen_anon_3.__bindgen_anon_1.destructor = Some(bus_skb_destruct);
            // INVARIANT: a fresh clone, one user, `cb` initialised.
            Ok(Skb(p))
        }
    }

    /// Counts the message against its sender's `sk_wmem_alloc` until it
    /// is freed (`SIOCOUTQ`; the sender's sock memory stays until then,
    /// as for AF_UNIX).  Once, before the message is queued anywhere.
    pub(crate) fn set_owner(&mut self, sock: &BusSock) {
        // SAFETY: the skb has no owner yet; the charge of its true size (kept as it is while `sk`
        // is set) keeps the sock's memory alive until the destructor gives it back (`sk_free`
        // frees it at zero), as `skb_set_owner_w` does.
        unsafe {
            let raw = self.raw();
            wmem_charge(sock.sk(), (*raw).truesize);
            (*raw).sk = sock.sk();
        }
    }

    /// Stamps the receiver's drop count, for `SO_RXQ_OVFL`.
    pub(crate) fn set_dropcount(&mut self, drops: u32) {
        // SAFETY: `struct sock_skb_cb` (`dropcount`) sits in the last four
        // bytes of `cb`, which `BusCb` leaves free.
        unsafe {
            let cb = (&raw mut (*self.raw()).cb).cast::<u8>();
            ptr::write_unaligned(cb.add(48 - 4).cast::<u32>(), drops);
        }
    }

    /// Records whether the receiver charged the message to its sender's
    /// uid.
    pub(crate) fn set_charged(&mut self, charged: bool) {
        // SAFETY: `cb` was initialised by `init`.
        unsafe { (*self.cb()).charged = charged };
    }

    /// Whether the receiver charged the message to its sender's uid.
    pub(crate) fn charged(&self) -> bool {
        // SAFETY: `cb` was initialised by `init`.
        unsafe { (*self.cb()).charged }
    }

    /// Whether the message carries files.
    pub(crate) fn has_files(&self) -> bool {
        // SAFETY: `cb` was initialised by `init`.
        unsafe { !(*self.cb()).fp.is_null() }
    }

    /// Who the receiver's queue charges the message to, for fairness:
    /// the real sender (see [`quota_uid`]), never the uid it claimed.
    pub(crate) fn quota_uid(&self) -> u32 {
        // SAFETY: `cb` was initialised by `init`.
        unsafe { (*self.cb()).quota_uid }
    }

    /// Frees a message `sock` did not get, saying why (the `kfree_skb`
    /// tracepoint and drop monitor see it).
    pub(crate) fn discard(self, sock: &BusSock, why: DropReason) {
        let reason = match why {
            DropReason::Filter => bindings::skb_drop_reason_SKB_DROP_REASON_SOCKET_FILTER,
            DropReason::Full => bindings::skb_drop_reason_SKB_DROP_REASON_SOCKET_RCVBUFF,
            DropReason::Close => bindings::skb_drop_reason_SKB_DROP_REASON_SOCKET_CLOSE,
        };
        let p = self.into_raw();
        // SAFETY: we owned one user of `p`, which this gives back; `sock`
        // is live.
        unsafe { bindings::sk_skb_reason_drop(sock.sk(), p, reason) };
    }

    /// Frees a message that was delivered (not a drop).
    pub(crate) fn consume(self) {
        let p = self.into_raw();
        // SAFETY: we owned one user of `p`, which this gives back.
        unsafe { af_bus_consume_skb(p.cast()) };
    }
}

/// Why a receiver did not get a message.
pub(crate) enum DropReason {
    /// Its socket filter dropped it.
    Filter,
    /// No room in its queue (or ring).
    Full,
    /// It closed, or its bus died, with the message queued.
    Close,
}

/// `quota_uid` of a message no user is charged for.
pub(crate) const NO_CHARGE: u32 = u32::MAX;

/// The user a message of the calling task is charged to, for the
/// fairness rules: its real uid (not one claimed in `SCM_CREDENTIALS`),
/// and for a task in a user namespace other than the initial one, the
/// owner of that namespace's outermost ancestor below the initial one, so
/// that a range of subordinate uids counts as the one user it was given to.
pub(crate) fn quota_uid() -> u32 {
    // SAFETY: reads the current task's credentials, which it pins.
    unsafe { af_bus_quota_uid() }
}

impl Drop for Skb {
    fn drop(&mut self) {
        // SAFETY: we own one user (type invariant).
        unsafe { bindings::kfree_skb(self.raw()) };
    }
}

/// # Safety
///
/// Called by the skb core when an skb of this family is freed.
unsafe extern "C" fn bus_skb_destruct(skb: *mut bindings::sk_buff) {
    // SAFETY: `cb` was initialised by `Skb::init`; the references in it
    // are ours to drop.
    unsafe {
        let cb = (&raw mut (*skb).cb).cast::<BusCb>();
        if !(*skb).sk.is_null() {
            let owner = core::mem::take(&mut (*skb).sk);
            wmem_uncharge(owner, (*skb).truesize);
        }
        if !(*cb).pid.is_null() {
            bindings::put_pid((*cb).pid);
            (*cb).pid = ptr::null_mut();
        }
        if !(*cb).fp.is_null() {
            Inflight::sub((*cb).fp_uid, fp_count((*cb).fp));
            let mut scm: bindings::scm_cookie = core::mem::zeroed();
            scm.fp = (*cb).fp;
            (*cb).fp = ptr::null_mut();
            bindings::__scm_destroy(&mut scm);
        }
    }
}

/// Adds `n` bytes to `sk`'s `sk_wmem_alloc` (`refcount_add`, inline).
///
/// # Safety
///
/// `sk` is a sock whose `sk_wmem_alloc` is above zero (it is not freed).
unsafe fn wmem_charge(sk: *mut bindings::sock, n: u32) {
    // SAFETY: the `refcount_t` is an atomic int of a live sock.
    unsafe {
        core::sync::atomic::AtomicI32::from_ptr(&raw mut (*sk).sk_wmem_alloc.refs.counter)
            .fetch_add(n as i32, core::sync::atomic::Ordering::Relaxed)
    };
}

/// Gives back `n` bytes charged by [`wmem_charge`], freeing the sock if
/// that was the last of it (as `sock_wfree` does).
///
/// # Safety
///
/// `n` bytes of `sk`'s `sk_wmem_alloc` are the caller's to give back.
unsafe fn wmem_uncharge(sk: *mut bindings::sock, n: u32) {
    // SAFETY: all but one of the bytes go back without reaching zero (the
    // caller's last one is still counted); `sk_free` drops that one and
    // frees the sock at zero.
    unsafe {
        if n > 1 {
            core::sync::atomic::AtomicI32::from_ptr(&raw mut (*sk).sk_wmem_alloc.refs.counter)
                .fetch_sub((n - 1) as i32, core::sync::atomic::Ordering::Release);
        }
        if n > 0 {
            bindings::sk_free(sk);
        }
    }
}

/// The `SOL_SOCKET` control messages of a send: credentials and files.
///
/// # Invariants
///
/// `0` was filled by `scm_send` and is destroyed on drop unless moved
/// into an skb.
pub(crate) struct Scm(bindings::scm_cookie, u32);

impl Scm {
    /// Runs `scm_send`: validates `SCM_CREDENTIALS` (`EPERM` for a
    /// forgery) and takes `SCM_RIGHTS` files.
    pub(crate) fn send(sock: &BusSock, msg: &mut Msg<'_>) -> Result<Scm> {
        // SAFETY: all-zero is a valid cookie; `scm_send` fills it.
        let mut scm: bindings::scm_cookie = unsafe { core::mem::zeroed() };
        // SAFETY: the socket and message are live for the call.
        let err = unsafe { bindings::scm_send((*sock.sk()).sk_socket, msg.0, &mut scm, false) };
        if err != 0 {
            // SAFETY: `scm_send` leaves a cookie that may be destroyed.
            unsafe { bindings::scm_destroy(&mut scm) };
            return Err(Error::from_errno(err));
        }
        Ok(Scm(scm, NO_CHARGE))
    }

    /// Counts the files in flight for the user `uid`, refusing them
    /// (`ETOOMANYREFS`) past the caller's `RLIMIT_NOFILE` unless it has
    /// `CAP_SYS_RESOURCE` or `CAP_SYS_ADMIN`, as AF_UNIX does.
    pub(crate) fn charge_files(&mut self, uid: u32) -> Result {
        if self.0.fp.is_null() {
            return Ok(());
        }
        // SAFETY: reads the current task's rlimit.
        let limit = unsafe { af_bus_rlimit_nofile() };
        let exempt = || {
            // SAFETY: `capable` only looks at the current task.
            unsafe {
                bindings::capable(bindings::CAP_SYS_RESOURCE as c_int)
                    || bindings::capable(bindings::CAP_SYS_ADMIN as c_int)
            }
        };
        let n = fp_count(self.0.fp);
        Inflight::charge(uid, n, limit as u64, exempt)?;
        self.1 = uid;
        Ok(())
    }

    /// Refuses AF_UNIX and AF_BUS sockets among the files: a socket in
    /// flight could hold its own receive queue alive.
    pub(crate) fn refuse_sockets(&self) -> Result {
        let fpl = self.0.fp;
        if fpl.is_null() {
            return Ok(());
        }
        // SAFETY: `fpl` holds `count` counted files.
        unsafe {
            let count = usize::try_from((*fpl).count).unwrap_or(0);
            for &file in (*fpl).fp.iter().take(count) {
                let sock = bindings::sock_from_file(file);
                if sock.is_null() || (*sock).sk.is_null() {
                    continue;
                }
                let family = (*(*sock).sk).__sk_common.skc_family;
                if family == bindings::AF_UNIX as u16 || family == AF_BUS {
                    return Err(errno::eopnotsupp());
                }
            }
        }
        Ok(())
    }

    /// Moves the credentials (the sender's own when it gave none) and the
    /// files into `skb`, which is charged to `quota_uid`.
    pub(crate) fn into_skb(mut self, skb: &mut Skb, quota_uid: u32) {
        // SAFETY: `cb` was initialised by `Skb::init` and holds no
        // references yet; the cookie's are moved there, then forgotten.
        unsafe {
            let cb = skb.cb();
            (*cb).quota_uid = quota_uid;
            if self.0.pid.is_null() {
                let task = bindings::get_current();
                (*cb).pid = bindings::get_pid(bindings::task_tgid(task));
                (*cb).uid = bindings::current_uid();
                (*cb).gid = bindings::current_gid();
            } else {
                (*cb).pid = self.0.pid;
                (*cb).uid = self.0.creds.uid;
                (*cb).gid = self.0.creds.gid;
                self.0.pid = ptr::null_mut();
            }
            (*cb).fp = self.0.fp;
            (*cb).fp_uid = self.1;
            self.0.fp = ptr::null_mut();
        }
    }
}

impl Drop for Scm {
    fn drop(&mut self) {
        if !self.0.fp.is_null() {
            Inflight::sub(self.1, fp_count(self.0.fp));
        }
        // SAFETY: destroys what the cookie still holds (type invariant).
        unsafe { bindings::scm_destroy(&mut self.0) };
    }
}

/// Files in a list of files in flight.
fn fp_count(fpl: *mut bindings::scm_fp_list) -> u32 {
    // SAFETY: callers pass a live list; `count` is a small positive short.
    unsafe { u32::try_from((*fpl).count).unwrap_or(0) }
}

/// Most users with files in flight at once; a further one's files are
/// refused (`ETOOMANYREFS`).
const INFLIGHT_USERS: usize = 256;

/// The files in flight (in messages sent and not yet received or freed)
/// per user, as AF_UNIX counts `user->unix_inflight`: no user may have
/// more than its `RLIMIT_NOFILE` in flight, so that passing files cannot
/// pin an unbounded number of them.
#[pin_data]
pub(crate) struct Inflight {
    #[pin]
    users: SpinLock<[(u32, u64); INFLIGHT_USERS]>,
}

/// The table of the loaded module, set by [`Registration::new`].
static INFLIGHT: core::sync::atomic::AtomicPtr<Inflight> =
    core::sync::atomic::AtomicPtr::new(ptr::null_mut());

impl Inflight {
    fn get() -> Option<&'static Inflight> {
        let p = INFLIGHT.load(core::sync::atomic::Ordering::Acquire);
        // SAFETY: set while the family is registered, to a table that
        // outlives every socket and skb of the module (each holds a
        // module reference).
        unsafe { p.as_ref() }
    }

    /// Adds `n` files for `uid`, unless that takes it past `limit` and
    /// it is not `exempt` (asked only then, as AF_UNIX asks `capable`).
    fn charge(uid: u32, n: u32, limit: u64, exempt: impl Fn() -> bool) -> Result {
        let Some(t) = Self::get() else {
            return Ok(());
        };
        let now = t
            .users
            .lock()
            .iter()
            .find(|e| e.0 == uid && e.1 > 0)
            .map_or(0, |e| e.1);
        if now + u64::from(n) > limit && !exempt() {
            return Err(errno::etoomanyrefs());
        }
        if Self::add(uid, n) {
            Ok(())
        } else {
            Err(errno::etoomanyrefs())
        }
    }

    /// Adds `n` files for `uid` without a limit (a multicast copy);
    /// `false` if the table has no room for another user.
    fn add(uid: u32, n: u32) -> bool {
        if uid == NO_CHARGE {
            return true;
        }
        let Some(t) = Self::get() else {
            return true;
        };
        let mut users = t.users.lock();
        let at = users
            .iter()
            .position(|e| e.0 == uid && e.1 > 0)
            .or_else(|| users.iter().position(|e| e.1 == 0));
        match at.and_then(|at| users.get_mut(at)) {
            Some(e) => {
                *e = (uid, e.1 + u64::from(n));
                true
            }
            None => false,
        }
    }

    /// Takes `n` files of `uid` out of flight.
    fn sub(uid: u32, n: u32) {
        if uid == NO_CHARGE {
            return;
        }
        if let Some(t) = Self::get() {
            let mut users = t.users.lock();
            if let Some(e) = users.iter_mut().find(|e| e.0 == uid && e.1 > 0) {
                e.1 = e.1.saturating_sub(u64::from(n));
            }
        }
    }
}

/// A `struct msghdr` of a `sendmsg` or `recvmsg` in progress.
pub(crate) struct Msg<'a>(*mut bindings::msghdr, core::marker::PhantomData<&'a mut ()>);

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
        if err != 0 {
            return Err(Error::from_errno(err));
        }
        Ok(())
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
        if err != 0 {
            return Err(Error::from_errno(err));
        }
        Ok(())
    }

    /// Delivers the credentials (with `SO_PASSCRED`) and the files of
    /// `skb`; with `peek` the files are duplicated, not taken.
    pub(crate) fn put_scm(&mut self, sock: &BusSock, skb: &Skb, flags: u32, peek: bool) {
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

/// The family's `struct proto`; `proto_register` creates its slab.
pub(crate) static BUS_PROTO: CStatic<bindings::proto> = CStatic::new({
    // SAFETY: all-zero is a valid `struct proto` (null pointers, no ops).
    let mut p: bindings::proto = unsafe { core::mem::zeroed() };
    p.name = c_name(b"AF_BUS");
    p.owner = this_module();
    p.obj_size = core::mem::size_of::<BusSock>() as c_uint;
    p
});

/// The family's socket operations.
static BUS_OPS: CStatic<bindings::proto_ops> = CStatic::new({
    // SAFETY: all-zero is a valid `struct proto_ops` (no operations).
    let mut o: bindings::proto_ops = unsafe { core::mem::zeroed() };
    o.family = AF_BUS as c_int;
    o.owner = this_module();
    o.release = Some(bus_release);
    o.bind = Some(bus_bind);
    o.connect = Some(bindings::sock_no_connect);
    o.socketpair = Some(bindings::sock_no_socketpair);
    o.accept = Some(bindings::sock_no_accept);
    o.getname = Some(bus_getname);
    o.poll = Some(bus_poll);
    o.ioctl = Some(bus_ioctl);
    o.listen = Some(bindings::sock_no_listen);
    o.shutdown = Some(bindings::sock_no_shutdown);
    o.setsockopt = Some(bus_setsockopt);
    o.getsockopt = Some(bus_getsockopt);
    o.sendmsg = Some(bus_sendmsg);
    o.recvmsg = Some(bus_recvmsg);
    o.mmap = Some(bus_mmap);
    o
});

/// The family, as `sock_register` takes it.
pub(crate) static BUS_FAMILY: CStatic<bindings::net_proto_family> =
    CStatic::new(bindings::net_proto_family {
        family: AF_BUS as c_int,
        create: Some(bus_create),
        owner: this_module(),
    });

/// # Safety
///
/// Called by `__sock_create` with a socket that has no sock yet.
unsafe extern "C" fn bus_create(
    net: *mut bindings::net,
    sock: *mut bindings::socket,
    protocol: c_int,
    kern: c_int,
) -> c_int {
    if protocol != 0 {
        return errno::eprotonosupport().to_errno();
    }
    // SAFETY: `sock` is valid (function safety requirement).
    if i32::from(unsafe { (*sock).type_ }) != bindings::sock_type_SOCK_DGRAM as i32 {
        return errno::esocktnosupport().to_errno();
    }
    let link = match crate::endpoint::new_link() {
        Ok(link) => link,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: `net` and `sock` are valid; `BUS_PROTO` is registered while
    // the module is loaded, and the module is loaded while we run.
    let sk = unsafe {
        (*sock).state = bindings::socket_state_SS_UNCONNECTED;
        (*sock).ops = BUS_OPS.get();
        bindings::sk_alloc(
            net,
            AF_BUS as c_int,
            bindings::GFP_KERNEL,
            BUS_PROTO.get(),
            kern,
        )
    };
    if sk.is_null() {
        return ENOMEM.to_errno();
    }
    // SAFETY: `sk` is a fresh sock of `obj_size` bytes; `sock_init_data`
    // grafts it onto `sock`.  The endpoint is initialised in place, in
    // memory that never moves until `sk_free`.
    let bs = unsafe {
        bindings::sock_init_data(sock, sk);
        let bs = sk.cast::<BusSock>();
        let init = Endpoint::new(RxQueue::new(sk), link);
        match init.__pinned_init(&raw mut (*bs).endpoint) {
            Ok(()) => {}
            Err(e) => match e {},
        }
        (*sk).sk_destruct = Some(bus_sock_destruct);
        // INVARIANT: the endpoint is initialised from here on.
        &*bs
    };
    bs.endpoint().link_to(bs);
    if let Err(e) = crate::registry().add_sock(bs) {
        // SAFETY: the socket was never listed; undo `sock_init_data` and
        // free the sock (its destructor drops the endpoint).
        unsafe {
            (*sock).sk = ptr::null_mut();
            (*sk).sk_socket = ptr::null_mut();
            bindings::sk_free(sk);
        }
        return e.to_errno();
    }
    // SAFETY: a live sock of the family; counted in /proc/net/protocols
    // until `bus_release`.
    unsafe { af_bus_prot_inuse_add(sk.cast(), 1) };
    0
}

/// # Safety
///
/// Called by `sk_free` once, when the last reference is gone.
unsafe extern "C" fn bus_sock_destruct(sk: *mut bindings::sock) {
    // SAFETY: the endpoint was initialised by `bus_create` and nobody
    // can reach the sock any more.
    unsafe { ptr::drop_in_place(&raw mut (*sk.cast::<BusSock>()).endpoint) };
}

/// # Safety
///
/// Called by `sock_release` once per socket.
unsafe extern "C" fn bus_release(sock: *mut bindings::socket) -> c_int {
    // SAFETY: `sock` is valid.
    let sk = unsafe { (*sock).sk };
    if sk.is_null() {
        return 0;
    }
    // SAFETY: `sk` is live until the `sock_put` below.
    let bs = unsafe { BusSock::from_sk(sk) };
    bs.endpoint().release(bs);
    crate::registry().remove_sock(bs);
    // SAFETY: counted by `bus_create`.
    unsafe { af_bus_prot_inuse_add(sk.cast(), -1) };
    // SAFETY: detach the sock from the socket, free what is queued, and
    // drop the reference `sk_alloc` gave the socket.
    unsafe {
        bindings::sock_orphan(sk);
        (*sock).sk = ptr::null_mut();
        bindings::skb_queue_purge_reason(
            &raw mut (*sk).sk_receive_queue,
            bindings::skb_drop_reason_SKB_DROP_REASON_SOCKET_CLOSE,
        );
        bindings::sock_put(sk);
    }
    0
}

/// # Safety
///
/// Called by the socket layer with `uaddr` holding `len` bytes copied from
/// user space.
unsafe extern "C" fn bus_bind(
    sock: *mut bindings::socket,
    uaddr: *mut bindings::sockaddr,
    len: c_int,
) -> c_int {
    let len = match usize::try_from(len) {
        Ok(len) if len <= SOCKADDR_BUS_SIZE => len,
        _ => return EINVAL.to_errno(),
    };
    // SAFETY: `uaddr` holds `len` bytes (see above).
    let raw = unsafe { core::slice::from_raw_parts(uaddr.cast::<u8>(), len) };
    // SAFETY: `sock` is a live AF_BUS socket with a sock.
    let bs = unsafe { BusSock::from_sk((*sock).sk) };
    to_errno(
        BusAddr::parse(raw)
            .map_err(Error::from)
            .and_then(|addr| bs.endpoint().bind(bs, &addr))
            .map(|()| 0),
    )
}

/// # Safety
///
/// Called by the socket layer with `uaddr` pointing at a
/// `sockaddr_storage`.
unsafe extern "C" fn bus_getname(
    sock: *mut bindings::socket,
    uaddr: *mut bindings::sockaddr,
    peer: c_int,
) -> c_int {
    if peer != 0 {
        return errno::enotconn().to_errno();
    }
    // SAFETY: `sock` is a live AF_BUS socket with a sock.
    let bs = unsafe { BusSock::from_sk((*sock).sk) };
    let name = bs.endpoint().name(bs);
    // SAFETY: `sockaddr_storage` holds 128 bytes, the size of `name`.
    unsafe { ptr::copy_nonoverlapping(name.as_ptr(), uaddr.cast::<u8>(), name.len()) };
    name.len() as c_int
}

/// `SIOCINQ` (`FIONREAD`) and `SIOCOUTQ` (`TIOCOUTQ`) of x86's
/// <asm-generic/ioctls.h>, which bindgen does not see.
const SIOCINQ: c_uint = 0x541b;
const SIOCOUTQ: c_uint = 0x5411;

/// # Safety
///
/// Called by the socket layer.
unsafe extern "C" fn bus_ioctl(sock: *mut bindings::socket, cmd: c_uint, arg: c_ulong) -> c_int {
    // SAFETY: `sock` is a live AF_BUS socket with a sock.
    let bs = unsafe { BusSock::from_sk((*sock).sk) };
    let v = match cmd {
        // `FIONREAD`: the next datagram's size, as for AF_UNIX datagrams.
        SIOCINQ => bs.endpoint().next_len(),
        SIOCOUTQ => bs.outq(),
        _ => return ENOIOCTLCMD.to_errno(),
    };
    to_errno(put_user_int(arg as *mut c_int, v).map(|()| 0))
}

/// # Safety
///
/// Called by the socket layer with a live message.
unsafe extern "C" fn bus_sendmsg(
    sock: *mut bindings::socket,
    msg: *mut bindings::msghdr,
    len: usize,
) -> c_int {
    // SAFETY: `sock` is a live AF_BUS socket with a sock.
    let bs = unsafe { BusSock::from_sk((*sock).sk) };
    let mut msg = Msg(msg, core::marker::PhantomData);
    to_ssize(bs.endpoint().sendmsg(bs, &mut msg, len))
}

/// # Safety
///
/// Called by the socket layer with a live message.
unsafe extern "C" fn bus_recvmsg(
    sock: *mut bindings::socket,
    msg: *mut bindings::msghdr,
    len: usize,
    flags: c_int,
) -> c_int {
    // SAFETY: `sock` is a live AF_BUS socket with a sock.
    let bs = unsafe { BusSock::from_sk((*sock).sk) };
    let mut msg = Msg(msg, core::marker::PhantomData);
    to_ssize(bs.endpoint().recvmsg(bs, &mut msg, len, flags as u32))
}

/// # Safety
///
/// Called by the socket layer for `poll` and friends.
unsafe extern "C" fn bus_poll(
    file: *mut bindings::file,
    sock: *mut bindings::socket,
    wait: *mut bindings::poll_table_struct,
) -> bindings::__poll_t {
    // SAFETY: all three are live for the call; register on `sk_sleep`
    // before looking at the state.
    unsafe { bindings::sock_poll_wait(file, sock, wait) };
    // SAFETY: `sock` is a live AF_BUS socket with a sock.
    let bs = unsafe { BusSock::from_sk((*sock).sk) };
    bs.endpoint().poll()
}

/// # Safety
///
/// Called by the socket layer with an option value in user memory.
unsafe extern "C" fn bus_setsockopt(
    sock: *mut bindings::socket,
    level: c_int,
    name: c_int,
    optval: bindings::sockptr_t,
    optlen: c_uint,
) -> c_int {
    if level != crate::uapi::SOL_BUS {
        return errno::enoprotoopt().to_errno();
    }
    // SAFETY: `sock` is a live AF_BUS socket with a sock.
    let bs = unsafe { BusSock::from_sk((*sock).sk) };
    let r = match name {
        crate::uapi::BUS_POLICY => {
            read_u32_opt(optval, optlen).and_then(|v| bs.endpoint().set_policy(bs, v))
        }
        crate::uapi::BUS_RX_RING => read_ring_req(optval, optlen)
            .and_then(|(size, nr)| bs.endpoint().set_ring(bs, size, nr)),
        crate::uapi::BUS_NO_ENOBUFS => read_u32_opt(optval, optlen).map(|v| {
            bs.endpoint().set_no_enobufs(v != 0);
        }),
        _ => Err(errno::enoprotoopt()),
    };
    to_errno(r.map(|()| 0))
}

fn read_ring_req(optval: bindings::sockptr_t, optlen: c_uint) -> Result<(u32, u32)> {
    if (optlen as usize) < 8 {
        return Err(EINVAL);
    }
    let mut v = [0u32; 2];
    // SAFETY: copies 8 bytes from the option, user or kernel memory as
    // `sockptr_t` says.
    let left = unsafe {
        if optval.is_kernel() {
            ptr::copy_nonoverlapping(
                optval.__bindgen_anon_1.kernel.cast::<u8>(),
                v.as_mut_ptr().cast::<u8>(),
                8,
            );
            0
        } else {
            bindings::_copy_from_user(
                v.as_mut_ptr().cast::<c_void>(),
                optval.__bindgen_anon_1.user,
                8,
            )
        }
    };
    if left != 0 {
        return Err(EFAULT);
    }
    Ok((v[0], v[1]))
}

fn read_u32_opt(optval: bindings::sockptr_t, optlen: c_uint) -> Result<u32> {
    if (optlen as usize) < core::mem::size_of::<u32>() {
        return Err(EINVAL);
    }
    let mut v: u32 = 0;
    // SAFETY: copies 4 bytes from the option, user or kernel memory as
    // `sockptr_t` says.
    let left = unsafe {
        if optval.is_kernel() {
            ptr::copy_nonoverlapping(
                optval.__bindgen_anon_1.kernel.cast::<u8>(),
                (&raw mut v).cast::<u8>(),
                4,
            );
            0
        } else {
            bindings::_copy_from_user(
                (&raw mut v).cast::<c_void>(),
                optval.__bindgen_anon_1.user,
                4,
            )
        }
    };
    if left != 0 {
        return Err(EFAULT);
    }
    Ok(v)
}

/// # Safety
///
/// Called by the socket layer with `optval` and `optlen` in user memory.
unsafe extern "C" fn bus_getsockopt(
    sock: *mut bindings::socket,
    level: c_int,
    name: c_int,
    optval: *mut c_char,
    optlen: *mut c_int,
) -> c_int {
    if level != crate::uapi::SOL_BUS {
        return errno::enoprotoopt().to_errno();
    }
    // SAFETY: `sock` is a live AF_BUS socket with a sock.
    let bs = unsafe { BusSock::from_sk((*sock).sk) };
    let r = (|| -> Result<c_int> {
        let mut room: c_int = 0;
        // SAFETY: `optlen` is a user pointer to an int.
        if unsafe { bindings::_copy_from_user((&raw mut room).cast(), optlen.cast(), 4) } != 0 {
            return Err(EFAULT);
        }
        let room = usize::try_from(room).map_err(|_| EINVAL)?;
        match name {
            crate::uapi::BUS_ADDRS => {
                let addrs = bs.endpoint().addrs(bs)?;
                let need = addrs.len() * SOCKADDR_BUS_SIZE;
                if room < need {
                    put_user_int(optlen, need)?;
                    return Err(ERANGE);
                }
                for (i, a) in addrs.iter().enumerate() {
                    copy_to_user_at(optval, i * SOCKADDR_BUS_SIZE, a)?;
                }
                put_user_int(optlen, need)?;
            }
            crate::uapi::BUS_POLICY => {
                if room < 4 {
                    return Err(EINVAL);
                }
                copy_to_user_at(optval, 0, &bs.endpoint().policy()?.to_ne_bytes())?;
                put_user_int(optlen, 4)?;
            }
            crate::uapi::BUS_NO_ENOBUFS => {
                if room < 4 {
                    return Err(EINVAL);
                }
                let v = u32::from(bs.endpoint().no_enobufs());
                copy_to_user_at(optval, 0, &v.to_ne_bytes())?;
                put_user_int(optlen, 4)?;
            }
            crate::uapi::BUS_DROPS => {
                if room < 4 {
                    return Err(EINVAL);
                }
                copy_to_user_at(optval, 0, &bs.drops().to_ne_bytes())?;
                put_user_int(optlen, 4)?;
            }
            _ => return Err(errno::enoprotoopt()),
        }
        Ok(0)
    })();
    to_errno(r)
}

fn copy_to_user_at(to: *mut c_char, at: usize, bytes: &[u8]) -> Result {
    // SAFETY: `to` is a user pointer; the copy checks access and reports
    // what it could not copy.
    let left = unsafe {
        bindings::_copy_to_user(
            to.add(at).cast::<c_void>(),
            bytes.as_ptr().cast::<c_void>(),
            bytes.len() as c_ulong,
        )
    };
    if left != 0 {
        return Err(EFAULT);
    }
    Ok(())
}

fn put_user_int(to: *mut c_int, v: usize) -> Result {
    let v = c_int::try_from(v).map_err(|_| EINVAL)?;
    copy_to_user_at(to.cast::<c_char>(), 0, &v.to_ne_bytes())
}

/// A `seq_file` being filled by a show callback.
pub(crate) struct SeqFile(*mut bindings::seq_file);

impl core::fmt::Write for SeqFile {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // SAFETY: `self.0` is the seq_file of the running show callback;
        // `seq_write` copies `s` and records overflow itself.
        unsafe { bindings::seq_write(self.0, s.as_ptr().cast::<c_void>(), s.len()) };
        Ok(())
    }
}

/// # Safety
///
/// Called by procfs for `/proc/net/bus` of a live namespace.
unsafe extern "C" fn bus_proc_show(seq: *mut bindings::seq_file, _v: *mut c_void) -> c_int {
    // SAFETY: the namespace of a proc_net single file is pinned while it
    // is open; only its address is used.
    let net = unsafe { bindings::seq_file_single_net(seq) } as usize;
    to_errno(crate::proc::show(&mut SeqFile(seq), net).map(|()| 0))
}

/// # Safety
///
/// Called by the namespace code for each new network namespace.
unsafe extern "C" fn bus_net_init(net: *mut bindings::net) -> c_int {
    // SAFETY: `net` is being set up and its `proc_net` exists.
    let pde = unsafe {
        bindings::proc_create_net_single(
            c"bus".as_ptr().cast::<c_char>(),
            0o444,
            (*net).proc_net,
            Some(bus_proc_show),
            ptr::null_mut(),
        )
    };
    if pde.is_null() {
        ENOMEM.to_errno()
    } else {
        0
    }
}

/// # Safety
///
/// Called by the namespace code when a namespace dies.
unsafe extern "C" fn bus_net_exit(net: *mut bindings::net) {
    // SAFETY: removes the entry `bus_net_init` created.
    unsafe { bindings::remove_proc_entry(c"bus".as_ptr().cast::<c_char>(), (*net).proc_net) };
}

/// Per-namespace setup: `/proc/net/bus`.
pub(crate) static BUS_PERNET: CStatic<bindings::pernet_operations> = CStatic::new({
    // SAFETY: all-zero is a valid `struct pernet_operations`.
    let mut o: bindings::pernet_operations = unsafe { core::mem::zeroed() };
    o.init = Some(bus_net_init);
    o.exit = Some(bus_net_exit);
    o
});

/// The registration of the family, undone on drop.
pub(crate) struct Registration {
    inflight: Pin<KBox<Inflight>>,
}

impl Registration {
    /// Registers the proto, the family and the per-namespace files.
    pub(crate) fn new() -> Result<Registration> {
        let inflight = KBox::pin_init(
            pin_init!(Inflight {
                users <- new_spinlock!([(NO_CHARGE, 0); INFLIGHT_USERS], "Inflight::users"),
            }),
            GFP_KERNEL,
        )?;

        // SAFETY: `BUS_PROTO` lives as long as the module and is
        // unregistered in `drop` (or below on failure).
        let err = unsafe { bindings::proto_register(BUS_PROTO.get(), 1) };
        if err != 0 {
            return Err(Error::from_errno(err));
        }
        // SAFETY: as above, for the per-namespace operations.
        let err = unsafe { bindings::register_pernet_subsys(BUS_PERNET.get()) };
        if err != 0 {
            // SAFETY: registered above.
            unsafe { bindings::proto_unregister(BUS_PROTO.get()) };
            return Err(Error::from_errno(err));
        }
        // Sockets may exist from the next call on.
        INFLIGHT.store(
            core::ptr::from_ref(&*inflight).cast_mut(),
            core::sync::atomic::Ordering::Release,
        );
        // SAFETY: as above, for the family.
        let err = unsafe { bindings::sock_register(BUS_FAMILY.get()) };
        if err != 0 {
            INFLIGHT.store(ptr::null_mut(), core::sync::atomic::Ordering::Release);
            // SAFETY: registered above.
            unsafe {
                bindings::unregister_pernet_subsys(BUS_PERNET.get());
                bindings::proto_unregister(BUS_PROTO.get());
            }
            return Err(Error::from_errno(err));
        }
        Ok(Registration { inflight })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: undoes `new` in reverse.  Every socket holds a module
        // reference, so no AF_BUS sock is left when the module unloads.
        unsafe {
            bindings::sock_unregister(AF_BUS as c_int);
            bindings::unregister_pernet_subsys(BUS_PERNET.get());
            bindings::proto_unregister(BUS_PROTO.get());
        }
        // No skb of ours is left: forget the table before it goes.
        INFLIGHT.store(ptr::null_mut(), core::sync::atomic::Ordering::Release);
        let _ = &self.inflight;
    }
}

/// The memory of a receive ring (vmalloc'ed, zeroed, so every frame
/// starts `BUS_FRAME_KERNEL`, and charged to the memory cgroup of the
/// task that set it up), shared by the socket and its mappings.
///
/// # Invariants
///
/// `mem` holds `geom.size()` bytes until drop, mapped into user space:
/// the kernel never makes a Rust reference to it but to status words
/// (atomics), and writes a frame only through raw copies by the holder
/// of its [`Slot`], while its status is `BUS_FRAME_KERNEL`.
/// `abandoned` has one flag per frame.
pub(crate) struct RingBuf {
    mem: NonNull<u8>,
    geom: crate::ring::Geometry,
    /// Live mappings (`vm_ops` open and close).
    mapped: core::sync::atomic::AtomicUsize,
    /// The thread group that set the ring up: senders' pids are shown in
    /// its pid namespace.  Counted.
    reader: *mut bindings::pid,
    /// Frames whose [`Slot`] was dropped without a commit: discarded,
    /// published by the cursor's next commit or reservation.
    abandoned: KVec<core::sync::atomic::AtomicBool>,
}

// SAFETY: the memory is shared with user space by design; the kernel
// side writes a frame only through its unique `Slot`, and the pid is a
// counted reference usable from any task.
unsafe impl Send for RingBuf {}
// SAFETY: see above.
unsafe impl Sync for RingBuf {}

/// The exclusive right to fill one frame, handed out by
/// [`RingCursor::reserve`] under the owning socket's rx lock.  Committed
/// by [`RingCursor::commit`]; dropped without a commit, it discards its
/// frame, which the cursor then publishes so that the reader skips it.
pub(crate) struct Slot {
    buf: kernel::sync::Arc<RingBuf>,
    i: usize,
    live: bool,
}

impl Slot {
    /// # Safety
    ///
    /// At most one `Slot` may exist for frame `i` at a time, and only
    /// while the frame's status is `BUS_FRAME_KERNEL`.
    unsafe fn new(buf: kernel::sync::Arc<RingBuf>, i: usize) -> Slot {
        Slot { buf, i, live: true }
    }

    /// The ring of the frame.
    pub(crate) fn buf(&self) -> &RingBuf {
        &self.buf
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.live {
            self.buf.discard(self.i);
            if let Some(a) = self.buf.abandoned.get(self.i) {
                a.store(true, core::sync::atomic::Ordering::Release);
            }
        }
    }
}

/// Where the kernel is in a receive ring; lives behind the owning
/// socket's rx lock.
///
/// # Invariants
///
/// Frames `tail..head` (modulo the ring), `reserved` of them, are the ones
/// a [`Slot`] exists for (or existed, abandoned); `done[i]` says frame
/// `i`'s slot was committed.  Frames `reclaim..tail`, `published` of
/// them, were handed to the reader and not yet seen back; `charge[i]` is
/// the user frame `i` is charged to.  `head` is `reclaim + published +
/// reserved`.  Frames are published strictly from `tail` on, so they
/// become visible in delivery order.
pub(crate) struct RingCursor {
    buf: kernel::sync::Arc<RingBuf>,
    head: usize,
    tail: usize,
    reclaim: usize,
    reserved: usize,
    published: usize,
    done: KVec<bool>,
    charge: KVec<u32>,
}

impl RingCursor {
    /// A cursor at the start of a fresh ring.
    pub(crate) fn new(buf: kernel::sync::Arc<RingBuf>) -> Result<RingCursor> {
        let frames = buf.geometry().frames();
        let gfp = GFP_KERNEL_ACCOUNT | __GFP_NOWARN;
        let mut done = KVec::with_capacity(frames, gfp)?;
        let mut charge = KVec::with_capacity(frames, gfp)?;
        for _ in 0..frames {
            done.push(false, gfp)?;
            charge.push(NO_CHARGE, gfp)?;
        }
        // INVARIANT: no slot exists yet, nothing is published.
        Ok(RingCursor {
            buf,
            head: 0,
            tail: 0,
            reclaim: 0,
            reserved: 0,
            published: 0,
            done,
            charge,
        })
    }

    /// The ring.
    pub(crate) fn ring(&self) -> &kernel::sync::Arc<RingBuf> {
        &self.buf
    }

    /// Whether a sender is filling a frame.
    pub(crate) fn busy(&self) -> bool {
        self.reserved > 0
    }

    /// Whether the last published frame is still the reader's.
    pub(crate) fn ready(&self) -> bool {
        let frames = self.buf.geometry().frames();
        self.buf.is_ready((self.tail + frames - 1) % frames)
    }

    /// Whether `reserve` would find a frame now.
    pub(crate) fn has_room(&self) -> bool {
        self.reserved + self.published < self.buf.geometry().frames() && self.buf.is_free(self.head)
    }

    /// The user charged for the oldest published frame, once the reader
    /// has handed it back; `None` while it has not.
    pub(crate) fn reclaim(&mut self) -> Option<u32> {
        if self.published == 0 || !self.buf.is_free(self.reclaim) {
            return None;
        }
        let uid = self.charge[self.reclaim];
        // INVARIANT: the frame leaves `reclaim..tail`.
        self.reclaim = (self.reclaim + 1) % self.buf.geometry().frames();
        self.published -= 1;
        Some(uid)
    }

    /// Reserves the next frame, charged to `uid`, unless the ring is full.
    pub(crate) fn reserve(&mut self, uid: u32) -> Option<Slot> {
        self.publish_ready();
        if !self.has_room() {
            return None;
        }
        // SAFETY: frame `head` is free and outside `tail..head`, so no slot
        // exists for it (type invariant).
        let slot = unsafe { Slot::new(self.buf.clone(), self.head) };
        self.charge[self.head] = uid;
        // INVARIANT: `head` advances over the frame its slot now holds.
        self.head = (self.head + 1) % self.buf.geometry().frames();
        self.reserved += 1;
        Some(slot)
    }

    /// Gives back the frame of `slot`, never filled, if no frame was
    /// reserved after it (and uncharges it: returns the user it was
    /// charged to); else discards it (`None`).
    pub(crate) fn cancel(&mut self, mut slot: Slot) -> Option<u32> {
        let frames = self.buf.geometry().frames();
        if (slot.i + 1) % frames != self.head {
            self.commit(slot, false);
            return None;
        }
        slot.live = false;
        // INVARIANT: the last reservation is undone.
        self.head = slot.i;
        self.reserved -= 1;
        Some(self.charge[slot.i])
    }

    /// Commits a filled slot (discarding the frame if `ok` is false) and
    /// publishes every frame that is ready, in order.
    pub(crate) fn commit(&mut self, mut slot: Slot, ok: bool) {
        if !ok {
            self.buf.discard(slot.i);
        }
        slot.live = false;
        self.done[slot.i] = true;
        drop(slot);
        self.publish_ready();
    }

    /// Publishes the frames from `tail` on whose slots were committed or
    /// abandoned.
    fn publish_ready(&mut self) {
        let frames = self.buf.geometry().frames();
        while self.reserved > 0 {
            let t = self.tail;
            let abandoned =
                self.buf.abandoned[t].swap(false, core::sync::atomic::Ordering::Acquire);
            if !self.done[t] && !abandoned {
                break;
            }
            self.done[t] = false;
            self.buf.publish(t);
            // INVARIANT: the frame moves from `tail..head` to
            // `reclaim..tail`.
            self.tail = (t + 1) % frames;
            self.reserved -= 1;
            self.published += 1;
        }
    }
}

impl RingBuf {
    /// Allocates a ring of `geom`, its pids shown to the calling task.
    pub(crate) fn new(geom: crate::ring::Geometry) -> Result<kernel::sync::Arc<RingBuf>> {
        // Zeroed (user space maps it), charged to the caller's memory
        // cgroup, and quiet on failure: the size is the caller's choice.
        let gfp = bindings::GFP_KERNEL_ACCOUNT | bindings::__GFP_ZERO | bindings::__GFP_NOWARN;
        let kgfp = GFP_KERNEL_ACCOUNT | __GFP_NOWARN;
        let mut abandoned = KVec::with_capacity(geom.frames(), kgfp)?;
        for _ in 0..geom.frames() {
            abandoned.push(core::sync::atomic::AtomicBool::new(false), kgfp)?;
        }
        // SAFETY: plain allocation.
        let mem = unsafe { bindings::__vmalloc_noprof(geom.size() as c_ulong, gfp) };
        let mem = NonNull::new(mem.cast::<u8>()).ok_or(ENOMEM)?;
        // SAFETY: the current task's thread group pid, counted.
        let reader = unsafe { bindings::get_pid(bindings::task_tgid(bindings::get_current())) };
        let ring = RingBuf {
            mem,
            geom,
            mapped: core::sync::atomic::AtomicUsize::new(0),
            reader,
            abandoned,
        };
        // On failure `ring` is dropped, freeing both.
        Ok(kernel::sync::Arc::new(ring, kgfp)?)
    }

    /// The layout.
    pub(crate) fn geometry(&self) -> crate::ring::Geometry {
        self.geom
    }

    /// Counts one more mapping; the caller holds the owner's rx lock.
    pub(crate) fn map(&self) {
        self.mapped
            .fetch_add(1, core::sync::atomic::Ordering::AcqRel);
    }

    /// Whether user space has it mapped.
    pub(crate) fn is_mapped(&self) -> bool {
        self.mapped.load(core::sync::atomic::Ordering::Acquire) > 0
    }

    fn status(&self, i: usize) -> &core::sync::atomic::AtomicU32 {
        // SAFETY: frame `i` starts 16-byte aligned inside `mem` (type
        // invariant); its first word is only accessed atomically, by the
        // reader too, so an atomic reference to it is sound.
        unsafe {
            core::sync::atomic::AtomicU32::from_ptr(
                self.mem.as_ptr().add(self.geom.offset(i)).cast::<u32>(),
            )
        }
    }

    /// Whether frame `i` is the kernel's (read with acquire ordering,
    /// pairing with the reader's release store).
    pub(crate) fn is_free(&self, i: usize) -> bool {
        self.status(i).load(core::sync::atomic::Ordering::Acquire) == crate::uapi::BUS_FRAME_KERNEL
    }

    /// Whether frame `i` is the reader's.
    pub(crate) fn is_ready(&self, i: usize) -> bool {
        self.status(i).load(core::sync::atomic::Ordering::Acquire) == crate::uapi::BUS_FRAME_USER
    }

    /// Hands frame `i` to the reader (release ordering: its contents are
    /// visible before its status).
    fn publish(&self, i: usize) {
        self.status(i).store(
            crate::uapi::BUS_FRAME_USER,
            core::sync::atomic::Ordering::Release,
        );
    }

    /// Where frame `i` starts.
    fn frame_ptr(&self, i: usize) -> *mut u8 {
        // SAFETY: `offset(i)` of a frame index is inside the allocation
        // (type invariant and `Geometry`).
        unsafe { self.mem.as_ptr().add(self.geom.offset(i)) }
    }

    /// Writes the header of frame `i`, all but its status word.
    fn write_header(&self, i: usize, info: &crate::ring::FrameInfo<'_>) {
        let hdr = crate::ring::header(info);
        // SAFETY: the caller holds frame `i`'s slot (or is discarding
        // it): the bytes after the status word are ours to write; a raw
        // copy, since the reader may scribble on them.
        unsafe {
            ptr::copy_nonoverlapping(hdr.as_ptr().add(4), self.frame_ptr(i).add(4), hdr.len() - 4)
        };
    }

    /// Fills the frame of `slot`: header, then the payload from the
    /// sender's iovec (with page faults disabled: `false`, and the iovec
    /// left as it was, if it is not all in memory) or from an skb.
    pub(crate) fn fill(
        &self,
        slot: &Slot,
        info: &crate::ring::FrameInfo<'_>,
        from: FrameSource<'_, '_>,
    ) -> bool {
        let len = info.len as usize;
        if len > self.geom.payload_max() {
            return false;
        }
        self.write_header(slot.i, info);
        // SAFETY: the payload area of the slot's frame, `len` bytes of it
        // (checked above), is ours to write.
        let to = unsafe { self.frame_ptr(slot.i).add(crate::ring::FRAME_HDR_LEN) };
        match from {
            FrameSource::Msg(msg) => msg.copy_nofault(to, len),
            FrameSource::Skb(skb) => skb.copy_to(to, len),
        }
    }

    /// Fills the header of the frame of `slot` for a message that waits in
    /// the queue (`BUS_FRAME_F_QUEUED`, no payload).
    pub(crate) fn mark(&self, slot: &Slot, info: &crate::ring::FrameInfo<'_>) {
        self.write_header(slot.i, info);
    }

    /// Marks frame `i` as carrying no message (a failed copy), so that the
    /// reader skips it.
    fn discard(&self, i: usize) {
        let words = [
            0u32.to_ne_bytes(),
            crate::uapi::BUS_FRAME_F_DISCARDED.to_ne_bytes(),
        ];
        // SAFETY: frame `i` is held by a slot being committed or dropped:
        // its `len` and `flags` words (bytes 4..12) are ours to write.
        unsafe {
            ptr::copy_nonoverlapping(words[0].as_ptr(), self.frame_ptr(i).add(4), 4);
            ptr::copy_nonoverlapping(words[1].as_ptr(), self.frame_ptr(i).add(8), 4);
        }
    }

    /// The sender's credentials as the ring's reader sees them.
    pub(crate) fn creds_for_reader(
        &self,
        skb_creds: (*mut bindings::pid, u32, u32),
        sock: &BusSock,
    ) -> (i32, u32, u32) {
        let (pid, uid, gid) = skb_creds;
        // SAFETY: `reader` is a counted pid whose namespaces it pins; the
        // receiving socket is live and not yet released (callers hold its
        // rx lock and checked), so its file's credentials are.
        unsafe {
            let level = (*self.reader).level as usize;
            let ns = (*(*self.reader).numbers.as_ptr().add(level)).ns;
            let nr = if pid.is_null() {
                0
            } else {
                bindings::pid_nr_ns(pid, ns)
            };
            // A kernel socket has no file: show the ids as the initial
            // namespace has them.
            let socket = (*sock.sk()).sk_socket;
            let file = if socket.is_null() {
                ptr::null_mut()
            } else {
                (*socket).file
            };
            let user_ns = if file.is_null() {
                &raw mut bindings::init_user_ns
            } else {
                (*(*file).f_cred).user_ns
            };
            (
                nr,
                bindings::from_kuid_munged(user_ns, bindings::kuid_t { val: uid }),
                bindings::from_kgid_munged(user_ns, bindings::kgid_t { val: gid }),
            )
        }
    }
}

impl RingBuf {
    /// Maps every page of the ring into `vma`, as `remap_vmalloc_range`
    /// does for `vmalloc_user` memory (which cannot be charged to a
    /// memory cgroup).  Returns 0 or a negative errno.
    ///
    /// # Safety
    ///
    /// `vma` is a mapping being set up by `mmap`, with the mm's lock held,
    /// exactly `self.geom.size()` bytes long.
    unsafe fn insert_pages(&self, vma: *mut bindings::vm_area_struct) -> c_int {
        let page = bindings::PAGE_SIZE;
        // SAFETY: the caller's contract: `vma` is ours to fill.
        let start = unsafe { (*vma).__bindgen_anon_1.__bindgen_anon_1.vm_start };
        let mut off = 0;
        while off < self.geom.size() {
            // SAFETY: `off` is inside the allocation (type invariant); the
            // page is the vmalloc'ed one, and `vm_insert_page` takes its
            // own reference for the mapping.
            let err = unsafe {
                let p = bindings::vmalloc_to_page(self.mem.as_ptr().add(off).cast::<c_void>());
                bindings::vm_insert_page(vma, start + off as c_ulong, p)
            };
            if err != 0 {
                return err;
            }
            off += page;
        }
        // SAFETY: `vma` is being set up under the mm's write lock (the
        // caller's contract), as `vm_flags_set` requires; these are the
        // flags `remap_vmalloc_range` sets.
        unsafe {
            bindings::vm_flags_set(
                vma,
                (bindings::VM_DONTEXPAND | bindings::VM_DONTDUMP) as bindings::vm_flags_t,
            )
        };
        0
    }
}

impl Drop for RingBuf {
    fn drop(&mut self) {
        // SAFETY: no mapping is left (each holds a reference), and the
        // allocation and pid reference are ours.
        unsafe {
            bindings::vfree(self.mem.as_ptr().cast::<c_void>());
            bindings::put_pid(self.reader);
        }
    }
}

/// Where a frame's payload comes from.
pub(crate) enum FrameSource<'a, 'b> {
    /// The sender's iovec: the one copy.
    Msg(&'a mut Msg<'b>),
    /// A message already in an skb (multicast to several rings).
    Skb(&'a Skb),
}

impl Skb {
    /// The credentials recorded at send time: pid, uid, gid.
    pub(crate) fn creds(&self) -> (*mut bindings::pid, u32, u32) {
        // SAFETY: `cb` was initialised by `init`.
        unsafe {
            let cb = self.cb();
            ((*cb).pid, (*cb).uid.val, (*cb).gid.val)
        }
    }
}

/// The sender's credentials, for a message that goes straight into a
/// ring: the ones it gave, or its own.
pub(crate) fn sender_creds(scm: &Scm) -> (*mut bindings::pid, u32, u32) {
    // SAFETY: reads the cookie, or the current task's credentials; the
    // pid is only used while the cookie (or the task) holds it.
    unsafe {
        if scm.0.pid.is_null() {
            (
                bindings::task_tgid(bindings::get_current()),
                bindings::current_uid().val,
                bindings::current_gid().val,
            )
        } else {
            (scm.0.pid, scm.0.creds.uid.val, scm.0.creds.gid.val)
        }
    }
}

impl Scm {
    /// Whether the message carries files.
    pub(crate) fn has_files(&self) -> bool {
        !self.0.fp.is_null()
    }
}

/// # Safety
///
/// Called by the mm when a mapping of a ring is duplicated.
unsafe extern "C" fn bus_ring_vm_open(vma: *mut bindings::vm_area_struct) {
    // SAFETY: `vm_private_data` is a ring reference made by `bus_mmap`,
    // copied into this new mapping (fork, split), which takes its own.
    unsafe {
        let ring = (*vma).vm_private_data as *const RingBuf;
        let held = core::mem::ManuallyDrop::new(kernel::sync::Arc::from_raw(ring));
        let _ = kernel::sync::Arc::into_raw((*held).clone());
        (*ring)
            .mapped
            .fetch_add(1, core::sync::atomic::Ordering::AcqRel);
    }
}

/// # Safety
///
/// Called by the mm when a mapping of a ring goes.
unsafe extern "C" fn bus_ring_vm_close(vma: *mut bindings::vm_area_struct) {
    // SAFETY: drops the reference `bus_mmap` or `bus_ring_vm_open` took.
    unsafe {
        let ring = (*vma).vm_private_data as *const RingBuf;
        (*ring)
            .mapped
            .fetch_sub(1, core::sync::atomic::Ordering::AcqRel);
        drop(kernel::sync::Arc::from_raw(ring));
    }
}

static BUS_RING_VM_OPS: CStatic<bindings::vm_operations_struct> = CStatic::new({
    // SAFETY: all-zero is a valid `struct vm_operations_struct`.
    let mut o: bindings::vm_operations_struct = unsafe { core::mem::zeroed() };
    o.open = Some(bus_ring_vm_open);
    o.close = Some(bus_ring_vm_close);
    o
});

/// # Safety
///
/// Called by the socket layer's `mmap` with the mm's lock held.
unsafe extern "C" fn bus_mmap(
    _file: *mut bindings::file,
    sock: *mut bindings::socket,
    vma: *mut bindings::vm_area_struct,
) -> c_int {
    // SAFETY: `sock` is a live AF_BUS socket with a sock.
    let bs = unsafe { BusSock::from_sk((*sock).sk) };
    // Counted as mapped from here, so that it cannot be replaced.
    let ring = match bs.endpoint().map_ring() {
        Some(r) => r,
        None => return EINVAL.to_errno(),
    };
    // SAFETY: `vma` is being set up and is ours to fill.
    unsafe {
        let len = (*vma).__bindgen_anon_1.__bindgen_anon_1.vm_end
            - (*vma).__bindgen_anon_1.__bindgen_anon_1.vm_start;
        let err = if (*vma).vm_pgoff != 0 || len != ring.geometry().size() {
            EINVAL.to_errno()
        } else {
            ring.insert_pages(vma)
        };
        if err != 0 {
            ring.mapped
                .fetch_sub(1, core::sync::atomic::Ordering::AcqRel);
            return err;
        }
        (*vma).vm_ops = BUS_RING_VM_OPS.get();
        (*vma).vm_private_data = kernel::sync::Arc::into_raw(ring)
            .cast_mut()
            .cast::<c_void>();
    }
    0
}
