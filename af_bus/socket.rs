// SPDX-License-Identifier: GPL-2.0

//! The thin unsafe layer: `struct sock`, `struct socket`, VFS paths and the
//! C callbacks of the family, wrapped in types with stated invariants.
//!
//! Everything above this file is safe Rust.  Errors become errnos here,
//! and only here.

use core::ptr::{self, NonNull};
use kernel::ffi::{c_char, c_int, c_uint, c_ulong, c_void};

use kernel::bindings;
use kernel::error::{code::*, Error, Result};
use kernel::init::PinInit;
use kernel::types::{ARef, AlwaysRefCounted, Opaque};

use crate::addr::{AddrError, BusAddr, BusPath};
use crate::bus::Endpoint;
use crate::uapi::{AF_BUS, SOCKADDR_BUS_SIZE};

/// The errnos the family returns that `kernel::error::code` lacks in 6.12.
pub(crate) mod errno {
    use kernel::bindings;
    use kernel::error::Error;

    fn from_code(code: u32) -> Error {
        // Errno values are small positive numbers: the cast is lossless.
        Error::from_errno(-(code as kernel::ffi::c_int))
    }

    /// `EADDRINUSE`.
    pub(crate) fn eaddrinuse() -> Error {
        from_code(bindings::EADDRINUSE)
    }

    /// `ENOTCONN`.
    pub(crate) fn enotconn() -> Error {
        from_code(bindings::ENOTCONN)
    }

    /// `EOPNOTSUPP`.
    pub(crate) fn eopnotsupp() -> Error {
        from_code(bindings::EOPNOTSUPP)
    }

    /// `EPROTONOSUPPORT`.
    pub(crate) fn eprotonosupport() -> Error {
        from_code(bindings::EPROTONOSUPPORT)
    }

    /// `ESOCKTNOSUPPORT`.
    pub(crate) fn esocktnosupport() -> Error {
        from_code(bindings::ESOCKTNOSUPPORT)
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

const fn this_module() -> *mut bindings::module {
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

    /// Messages waiting in the receive queue.
    pub(crate) fn queue_len(&self) -> u32 {
        // SAFETY: the queue is part of a live sock; reading its length
        // without the lock gives a snapshot.
        unsafe { bindings::skb_queue_len(&raw const (*self.sk()).sk_receive_queue) }
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

/// A counted reference to a filesystem path (`path_get`/`path_put`).
pub(crate) struct PathRef(bindings::path);

// SAFETY: `struct path` references may be dropped from any task.
unsafe impl Send for PathRef {}
// SAFETY: shared access only reads the pointers.
unsafe impl Sync for PathRef {}

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

    /// Keeps the inode and returns a counted reference to it.
    pub(crate) fn commit(mut self) -> PathRef {
        let path = bindings::path {
            mnt: self.parent.mnt,
            dentry: self.dentry,
        };
        // SAFETY: `path` points at a live mount and dentry; `path_get`
        // takes the references the returned `PathRef` owns.
        unsafe { bindings::path_get(&path) };
        // SAFETY: releases what `kern_path_create` took.
        unsafe { bindings::done_path_create(&mut self.parent, self.dentry) };
        core::mem::forget(self);
        PathRef(path)
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
    o.poll = Some(bindings::datagram_poll);
    o.ioctl = Some(bus_ioctl);
    o.listen = Some(bindings::sock_no_listen);
    o.shutdown = Some(bindings::sock_no_shutdown);
    o.sendmsg = Some(bus_sendmsg);
    o.recvmsg = Some(bus_recvmsg);
    o.mmap = Some(bindings::sock_no_mmap);
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
        let init = Endpoint::new();
        match init.__pinned_init(&raw mut (*bs).endpoint) {
            Ok(()) => {}
            Err(e) => match e {},
        }
        (*sk).sk_destruct = Some(bus_sock_destruct);
        // INVARIANT: the endpoint is initialised from here on.
        &*bs
    };
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
    bs.endpoint().release();
    crate::registry().remove_sock(bs);
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
            .and_then(|addr| crate::bus::bind(bs, &addr))
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
    let name = bs.endpoint().name();
    // SAFETY: `sockaddr_storage` holds 128 bytes, the size of `name`.
    unsafe { ptr::copy_nonoverlapping(name.as_ptr(), uaddr.cast::<u8>(), name.len()) };
    name.len() as c_int
}

/// # Safety
///
/// Called by the socket layer.
unsafe extern "C" fn bus_ioctl(_sock: *mut bindings::socket, _cmd: c_uint, _arg: c_ulong) -> c_int {
    ENOIOCTLCMD.to_errno()
}

/// # Safety
///
/// Called by the socket layer.
unsafe extern "C" fn bus_sendmsg(
    _sock: *mut bindings::socket,
    _msg: *mut bindings::msghdr,
    _len: usize,
) -> c_int {
    errno::eopnotsupp().to_errno()
}

/// # Safety
///
/// Called by the socket layer.
unsafe extern "C" fn bus_recvmsg(
    _sock: *mut bindings::socket,
    _msg: *mut bindings::msghdr,
    _len: usize,
    _flags: c_int,
) -> c_int {
    errno::eopnotsupp().to_errno()
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
    _private: (),
}

impl Registration {
    /// Registers the proto, the family and the per-namespace files.
    pub(crate) fn new() -> Result<Registration> {
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
        // SAFETY: as above, for the family.
        let err = unsafe { bindings::sock_register(BUS_FAMILY.get()) };
        if err != 0 {
            // SAFETY: registered above.
            unsafe {
                bindings::unregister_pernet_subsys(BUS_PERNET.get());
                bindings::proto_unregister(BUS_PROTO.get());
            }
            return Err(Error::from_errno(err));
        }
        Ok(Registration { _private: () })
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
    }
}
