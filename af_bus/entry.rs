// SPDX-License-Identifier: GPL-2.0

//! The C entry points of the family: the `proto_ops` and `net_proto_family`
//! callbacks, `/proc/net/bus`, `mmap` and registration.  Thin: they convert
//! arguments, call the logic, and turn its errors into errnos.

use crate::addr::BusAddr;
use crate::uapi::AF_BUS;
use crate::uapi::SOCKADDR_BUS_SIZE;
use core::ptr;
use kernel::bindings;
use kernel::error::to_result;
use kernel::error::Error;
use kernel::ffi::c_char;
use kernel::ffi::c_int;
use kernel::ffi::c_uint;
use kernel::ffi::c_ulong;
use kernel::ffi::c_void;
use kernel::new_spinlock;
use kernel::prelude::*;
use kernel::uaccess::UserSlice;

use crate::endpoint::{BusSock, Endpoint};
use crate::sys::*;

// SAFETY: an `Endpoint` is only ever made by `bus_create`, in place as the
// state of a fresh AF_BUS sock, and dropped by `bus_sock_destruct`.
unsafe impl SockState for Endpoint {}

const fn c_name<const N: usize>(s: &[u8]) -> [c_char; N] {
    let mut out = [0; N];
    let mut i = 0;
    while i < s.len() && i < N - 1 {
        out[i] = s[i] as c_char;
        i += 1;
    }
    out
}

/// The family's `struct proto`; `proto_register` creates its slab.
pub(crate) static BUS_PROTO: CStatic<bindings::proto> = CStatic::new(bindings::proto {
    name: c_name(b"AF_BUS"),
    owner: this_module(),
    obj_size: core::mem::size_of::<BusSock>() as c_uint,
    // SAFETY: all-zero is a valid `struct proto` (null pointers, no ops).
    ..unsafe { core::mem::zeroed() }
});

/// The family's socket operations.
static BUS_OPS: CStatic<bindings::proto_ops> = CStatic::new(bindings::proto_ops {
    family: AF_BUS as c_int,
    owner: this_module(),
    release: Some(bus_release),
    bind: Some(bus_bind),
    connect: Some(bindings::sock_no_connect),
    socketpair: Some(bindings::sock_no_socketpair),
    accept: Some(bindings::sock_no_accept),
    getname: Some(bus_getname),
    poll: Some(bus_poll),
    ioctl: Some(bus_ioctl),
    listen: Some(bindings::sock_no_listen),
    shutdown: Some(bindings::sock_no_shutdown),
    setsockopt: Some(bus_setsockopt),
    getsockopt: Some(bus_getsockopt),
    sendmsg: Some(bus_sendmsg),
    recvmsg: Some(bus_recvmsg),
    mmap: Some(bus_mmap),
    // SAFETY: all-zero is a valid `struct proto_ops` (no operations).
    ..unsafe { core::mem::zeroed() }
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
        match init.__pinned_init(&raw mut (*bs).state) {
            Ok(()) => {}
            Err(e) => match e {},
        }
        (*sk).sk_destruct = Some(bus_sock_destruct);
        (*sk).sk_write_space = Some(bus_write_space);
        // INVARIANT: the endpoint is initialised from here on.
        &*bs
    };
    if let Err(e) = crate::endpoint::registry().and_then(|r| r.add_sock(bs)) {
        // SAFETY: the socket was never listed; undo `sock_init_data` and
        // free the sock (its destructor drops the endpoint).
        unsafe {
            (*sock).sk = ptr::null_mut();
            (*sk).sk_socket = ptr::null_mut();
            bindings::sk_free(sk);
        }
        return e.to_errno();
    }
    // Once listed, so that the link's reference is dropped by release.
    bs.state().link_to(bs);
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
    unsafe { ptr::drop_in_place(&raw mut (*sk.cast::<BusSock>()).state) };
}

/// # Safety
///
/// Called by the socket layer as `sk_write_space` of a live sock.
unsafe extern "C" fn bus_write_space(sk: *mut bindings::sock) {
    // SAFETY: `sk` is live for the call; the helper is `sk_write_space`'s.
    unsafe { af_bus_write_space(sk.cast()) };
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
    bs.state().release(bs);
    if let Ok(registry) = crate::endpoint::registry() {
        registry.remove_sock(bs);
    }
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
            .and_then(|addr| bs.state().bind(bs, &addr))
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
    let name = bs.state().name(bs);
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
        SIOCINQ => bs.state().next_len(),
        SIOCOUTQ => bs.outq(),
        _ => return ENOIOCTLCMD.to_errno(),
    };
    let r = c_int::try_from(v).map_err(|_| EINVAL).and_then(|v| {
        UserSlice::new(arg, core::mem::size_of::<c_int>())
            .writer()
            .write(&v)
    });
    to_errno(r.map(|()| 0))
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
    to_ssize(bs.state().sendmsg(bs, &mut msg, len))
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
    to_ssize(bs.state().recvmsg(bs, &mut msg, len, flags as u32))
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
    bs.state().poll()
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
    // SAFETY: as the socket layer passed them, used during this call only.
    let opt = unsafe { OptIn::new(optval, optlen) };
    let r = match name {
        crate::uapi::BUS_POLICY => opt.read::<u32>().and_then(|v| bs.state().set_policy(bs, v)),
        crate::uapi::BUS_RX_RING => opt
            .read::<[u32; 2]>()
            .and_then(|[size, nr]| bs.state().set_ring(bs, size, nr)),
        crate::uapi::BUS_NO_ENOBUFS => opt.read::<u32>().map(|v| {
            bs.state().set_no_enobufs(v != 0);
        }),
        _ => Err(errno::enoprotoopt()),
    };
    to_errno(r.map(|()| 0))
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
    let opt = OptOut::new(optval, optlen);
    let r = (|| -> Result<c_int> {
        let room = opt.room()?;
        // A word's room is checked before its value is worked out, so a
        // short buffer is EINVAL whatever state the socket is in.
        let word = |value: &dyn Fn() -> Result<u32>| -> Result {
            if room < 4 {
                return Err(EINVAL);
            }
            opt.write(&value()?)?;
            opt.set_len(4)
        };
        match name {
            crate::uapi::BUS_ADDRS => {
                let addrs = bs.state().addrs(bs)?;
                let need = addrs.len() * SOCKADDR_BUS_SIZE;
                if room < need {
                    opt.set_len(need)?;
                    return Err(ERANGE);
                }
                for (i, a) in addrs.iter().enumerate() {
                    opt.write_at(i * SOCKADDR_BUS_SIZE, a)?;
                }
                opt.set_len(need)?;
            }
            crate::uapi::BUS_POLICY => word(&|| bs.state().policy())?,
            crate::uapi::BUS_NO_ENOBUFS => word(&|| Ok(u32::from(bs.state().no_enobufs())))?,
            crate::uapi::BUS_DROPS => word(&|| Ok(bs.drops()))?,
            _ => return Err(errno::enoprotoopt()),
        }
        Ok(0)
    })();
    to_errno(r)
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
pub(crate) static BUS_PERNET: CStatic<bindings::pernet_operations> =
    CStatic::new(bindings::pernet_operations {
        init: Some(bus_net_init),
        exit: Some(bus_net_exit),
        // SAFETY: all-zero is a valid `struct pernet_operations`.
        ..unsafe { core::mem::zeroed() }
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
        to_result(err)?;
        // SAFETY: as above, for the per-namespace operations.
        let err = unsafe { bindings::register_pernet_subsys(BUS_PERNET.get()) };
        if let Err(e) = to_result(err) {
            // SAFETY: registered above.
            unsafe { bindings::proto_unregister(BUS_PROTO.get()) };
            return Err(e);
        }
        // Sockets may exist from the next call on.
        INFLIGHT.store(
            core::ptr::from_ref(&*inflight).cast_mut(),
            core::sync::atomic::Ordering::Release,
        );
        // SAFETY: as above, for the family.
        let err = unsafe { bindings::sock_register(BUS_FAMILY.get()) };
        if let Err(e) = to_result(err) {
            INFLIGHT.store(ptr::null_mut(), core::sync::atomic::Ordering::Release);
            // SAFETY: registered above.
            unsafe {
                bindings::unregister_pernet_subsys(BUS_PERNET.get());
                bindings::proto_unregister(BUS_PROTO.get());
            }
            return Err(e);
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
    let ring = match bs.state().map_ring() {
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

/// The module: the registry of buses and sockets, and the family's
/// registration that uses it.
pub(crate) struct AfBus {
    registration: Option<Registration>,
}

impl kernel::Module for AfBus {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let registry = KBox::pin_init(crate::endpoint::Registry::new(), GFP_KERNEL)?;
        crate::endpoint::REGISTRY.set(registry)?;
        let registration = match Registration::new() {
            Ok(r) => r,
            Err(e) => {
                // SAFETY: the family never registered: nothing used the
                // registry.
                drop(unsafe { crate::endpoint::REGISTRY.take() });
                return Err(e);
            }
        };
        pr_info!("AF_BUS family {} registered\n", AF_BUS);
        Ok(AfBus {
            registration: Some(registration),
        })
    }
}

impl Drop for AfBus {
    fn drop(&mut self) {
        // Unregister the family, then free the registry it used.
        drop(self.registration.take());
        // SAFETY: the family is unregistered and its procfs entries are
        // removed; every socket held a module reference, so none is left.
        drop(unsafe { crate::endpoint::REGISTRY.take() });
    }
}
