// SPDX-License-Identifier: GPL-2.0

//! The AF_BUS system calls afbusctl makes, over libc, and the C structures they take.
//!
//! Only the glue lives here: `socket`, `bind`, `sendmsg`, `recvmsg`,
//! socket options, the `msghdr` and its control buffer.  The wire format
//! (bus.h's numbers, the layout of `struct sockaddr_bus`, address
//! validation) is `af_bus_core`'s, the crate the module is built from: a
//! number changed in bus.h changes it here too, and a layout that no
//! longer matches fails the build (the `const` assertions below).

use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use af_bus_core::addr::BusAddr;
use af_bus_core::uapi;

use crate::addr::{Addr, BusPath};

// bus.h's numbers, typed as the libc calls take them.  The casts only
// change the type (`c_int` for levels and types), never the value.
/// `AF_BUS`.
pub const AF_BUS: libc::c_int = uapi::AF_BUS as libc::c_int;
/// `SOL_BUS`.
pub const SOL_BUS: libc::c_int = uapi::SOL_BUS as libc::c_int;
/// `BUS_PATH_MAX`.
pub const BUS_PATH_MAX: usize = uapi::BUS_PATH_MAX;
/// `BUS_ADDR_COMP_MAX`.
pub const BUS_ADDR_COMP_MAX: usize = uapi::BUS_ADDR_COMP_MAX;
/// `SCM_OWNED_ADDR`.
pub const SCM_OWNED_ADDR: libc::c_int = uapi::SCM_OWNED_ADDR as libc::c_int;
/// `SCM_REVOKE_ADDR`.
pub const SCM_REVOKE_ADDR: libc::c_int = uapi::SCM_REVOKE_ADDR as libc::c_int;
/// `SCM_MOVE_ADDR`: an address granted, taken from its owner in the same step.
pub const SCM_MOVE_ADDR: libc::c_int = uapi::SCM_MOVE_ADDR as libc::c_int;
/// `SCM_POLICY_CLASSES`: the destination's classes, a `u64`.
pub const SCM_POLICY_CLASSES: libc::c_int = uapi::SCM_POLICY_CLASSES as libc::c_int;
/// `SCM_ADDR_ACCESS`: the access masks of an address the destination owns.
pub const SCM_ADDR_ACCESS: libc::c_int = uapi::SCM_ADDR_ACCESS as libc::c_int;
/// `SCM_EXPECT_REPLY`: the destination may answer once, whatever the masks.
pub const SCM_EXPECT_REPLY: libc::c_int = uapi::SCM_EXPECT_REPLY as libc::c_int;
/// `SCM_MULTICAST_MATCH`.
pub const SCM_MULTICAST_MATCH: libc::c_int = uapi::SCM_MULTICAST_MATCH as libc::c_int;
/// `SCM_MULTICAST_UNMATCH`.
pub const SCM_MULTICAST_UNMATCH: libc::c_int = uapi::SCM_MULTICAST_UNMATCH as libc::c_int;
/// `SCM_MULTICAST_SEND`.
pub const SCM_MULTICAST_SEND: libc::c_int = uapi::SCM_MULTICAST_SEND as libc::c_int;
/// `SCM_SRC_ADDR`.
pub const SCM_SRC_ADDR: libc::c_int = uapi::SCM_SRC_ADDR as libc::c_int;
/// `SCM_DST_ADDR`.
pub const SCM_DST_ADDR: libc::c_int = uapi::SCM_DST_ADDR as libc::c_int;
/// `BUS_POLICY`.
pub const BUS_POLICY: libc::c_int = uapi::BUS_POLICY as libc::c_int;
/// `BUS_DROPS`.
pub const BUS_DROPS: libc::c_int = uapi::BUS_DROPS as libc::c_int;
/// `BUS_POLICY_MCAST_SEND_GRANTED`.
pub const BUS_POLICY_MCAST_SEND_GRANTED: u32 = uapi::BUS_POLICY_MCAST_SEND_GRANTED;
/// `BUS_NOTIFY_GONE`.
pub const BUS_NOTIFY_GONE: u32 = uapi::BUS_NOTIFY_GONE;
/// `BUS_NOTIFY_OVERFLOW`.
pub const BUS_NOTIFY_OVERFLOW: u32 = uapi::BUS_NOTIFY_OVERFLOW;

/// C structures of integers only, without padding: every byte pattern of
/// their size is a value, and every byte of a value is initialized.
///
/// # Safety
///
/// Only for `#[repr(C)]` types made of integers (and arrays of them) with
/// no padding between or after their fields.
pub unsafe trait Plain: Copy {}

// SAFETY: three integers, `size_t` then two `int`s: no padding (asserted).
unsafe impl Plain for libc::cmsghdr {}
const _: () =
    assert!(size_of::<libc::cmsghdr>() == size_of::<usize>() + 2 * size_of::<libc::c_int>());
// SAFETY: three 32-bit integers.
unsafe impl Plain for libc::ucred {}
// SAFETY: an integer.
unsafe impl Plain for libc::c_int {}

/// Reads a `T` from the start of `bytes`; `None` if they are too few.
pub fn read_plain<T: Plain>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: `bytes` holds at least `size_of::<T>()` readable bytes, any
    // of which make a valid `T` (`T: Plain`), and `read_unaligned` needs
    // no alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// The bytes of `v`, as the kernel reads them.
pub fn bytes_of<T: Plain>(v: &T) -> &[u8] {
    // SAFETY: `v` is a live `T` of `size_of::<T>()` bytes, all of them
    // initialized (`T: Plain` has no padding), borrowed for as long as
    // the slice.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

/// `struct sockaddr_bus`, the fixed layout, as a typed value: what
/// `msg_name` points to.  Read and written through `af_bus_core`'s
/// [`BusAddr`], which validates and encodes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockaddrBus {
    /// `sbus_family`.
    pub family: u16,
    /// `sbus_addr_ncomp`.
    pub ncomp: u16,
    /// `sbus_path`.
    pub path: [u8; BUS_PATH_MAX],
    /// `sbus_addr`.
    pub addr: [u64; BUS_ADDR_COMP_MAX],
}

// The core's layout of `struct sockaddr_bus` is this structure's.
const _: () = {
    assert!(size_of::<SockaddrBus>() == uapi::SOCKADDR_BUS_SIZE);
    assert!(offset_of!(SockaddrBus, path) == uapi::SBUS_PATH_OFFSET);
    assert!(offset_of!(SockaddrBus, addr) == uapi::SBUS_ADDR_OFFSET);
    // No padding: the fields end where the next begins.
    assert!(offset_of!(SockaddrBus, path) == 2 * size_of::<u16>());
    assert!(offset_of!(SockaddrBus, addr) == offset_of!(SockaddrBus, path) + BUS_PATH_MAX);
};

// SAFETY: `#[repr(C)]`, integers only, no padding (asserted just above).
unsafe impl Plain for SockaddrBus {}

impl SockaddrBus {
    /// The family alone: a buffer for the kernel to fill.
    pub fn empty() -> SockaddrBus {
        SockaddrBus {
            family: uapi::AF_BUS,
            ncomp: 0,
            path: [0; BUS_PATH_MAX],
            addr: [0; BUS_ADDR_COMP_MAX],
        }
    }

    /// Its bytes, as the kernel reads them.
    pub fn as_bytes(&self) -> [u8; uapi::SOCKADDR_BUS_SIZE] {
        let mut out = [0u8; uapi::SOCKADDR_BUS_SIZE];
        out.copy_from_slice(bytes_of(self));
        out
    }

    /// The address in `bytes` (either layout bus.h allows, by length; a
    /// longer slice is read as the fixed layout), if it is a valid one.
    pub fn from_bytes(bytes: &[u8]) -> Option<SockaddrBus> {
        let bytes = bytes.get(..uapi::SOCKADDR_BUS_SIZE).unwrap_or(bytes);
        BusAddr::parse(bytes).ok().map(|a| SockaddrBus::from(&a))
    }

    /// The address, validated by the core; `None` if it is not one.
    pub fn parse(&self) -> Option<BusAddr> {
        BusAddr::parse(&self.as_bytes()).ok()
    }
}

impl From<&BusAddr> for SockaddrBus {
    fn from(a: &BusAddr) -> SockaddrBus {
        // The core's encoding is exactly `size_of::<SockaddrBus>()` bytes.
        read_plain(&a.encode()).unwrap_or_else(SockaddrBus::empty)
    }
}

/// `CMSG_ALIGN()`.
const fn cmsg_align(len: usize) -> usize {
    (len + size_of::<usize>() - 1) & !(size_of::<usize>() - 1)
}

/// `CMSG_LEN()`: a control message header and `data` bytes.
pub const fn cmsg_len(data: usize) -> usize {
    cmsg_align(size_of::<libc::cmsghdr>()) + data
}

/// `CMSG_SPACE()`: what a control message of `data` bytes takes up.
pub const fn cmsg_space(data: usize) -> usize {
    cmsg_align(size_of::<libc::cmsghdr>()) + cmsg_align(data)
}

/// One `SOL_BUS` control message as `sendmsg` takes it: a header, then
/// one address.  An array of these is a well-formed control buffer.
#[repr(C)]
#[derive(Clone, Copy)]
struct BusCmsg {
    hdr: libc::cmsghdr,
    addr: SockaddrBus,
}

const _: () = {
    assert!(offset_of!(BusCmsg, addr) == cmsg_len(0));
    assert!(size_of::<BusCmsg>() == cmsg_space(size_of::<SockaddrBus>()));
};

// SAFETY: `#[repr(C)]`, two `Plain` fields with no padding between them
// or after the second (asserted just above).
unsafe impl Plain for BusCmsg {}

impl BusCmsg {
    fn new(kind: libc::c_int, addr: SockaddrBus) -> BusCmsg {
        BusCmsg {
            hdr: libc::cmsghdr {
                cmsg_len: cmsg_len(size_of::<SockaddrBus>()),
                cmsg_level: SOL_BUS,
                cmsg_type: kind,
            },
            addr,
        }
    }
}

/// Appends a `SOL_BUS` control message of type `kind` carrying `data` to
/// the control buffer `ctl`.
pub fn push_cmsg(ctl: &mut Vec<u8>, kind: libc::c_int, data: &[u8]) {
    push_cmsg_at(ctl, SOL_BUS, kind, data);
}

/// Appends one control message of any level to `ctl`.
pub fn push_cmsg_at(ctl: &mut Vec<u8>, level: libc::c_int, kind: libc::c_int, data: &[u8]) {
    let hdr = libc::cmsghdr {
        cmsg_len: cmsg_len(data.len()),
        cmsg_level: level,
        cmsg_type: kind,
    };
    let end = ctl.len() + cmsg_space(data.len());
    ctl.extend_from_slice(bytes_of(&hdr));
    ctl.resize(ctl.len() + cmsg_len(0) - size_of::<libc::cmsghdr>(), 0);
    ctl.extend_from_slice(data);
    ctl.resize(end, 0);
}

/// The control messages of a buffer `recvmsg` filled: level, type, data.
/// Stops at the first header that does not fit, as `CMSG_NXTHDR` does.
pub fn cmsgs(buf: &[u8]) -> impl Iterator<Item = (libc::c_int, libc::c_int, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = buf.get(at..)?;
        let hdr: libc::cmsghdr = read_plain(rest)?;
        let len = hdr.cmsg_len;
        if len < cmsg_len(0) || len > rest.len() {
            return None;
        }
        at += cmsg_align(len);
        Some((hdr.cmsg_level, hdr.cmsg_type, &rest[cmsg_len(0)..len]))
    })
}

/// Credentials from `SCM_CREDENTIALS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Creds {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// One received datagram.
pub struct Received {
    /// The source address, as the kernel wrote it (always valid).
    pub src: SockaddrBus,
    pub payload: Vec<u8>,
    /// `SOL_BUS` control messages: (type, address).
    pub bus_cmsgs: Vec<(libc::c_int, SockaddrBus)>,
    pub creds: Option<Creds>,
    pub truncated: bool,
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(last_error())
    } else {
        Ok(ret)
    }
}

/// An AF_BUS datagram socket.
pub struct BusSocket {
    fd: OwnedFd,
    /// The bus this socket talks on (for building destination addresses).
    pub bus: BusPath,
}

/// Control buffer room for what a receiver may get.
const CMSG_BUF: usize = 4096;

impl BusSocket {
    /// `socket(AF_BUS, SOCK_DGRAM, 0)` for the bus at `bus`.
    pub fn new(bus: &BusPath) -> io::Result<BusSocket> {
        // SAFETY: socket(2) takes no pointers.
        let fd = check(unsafe { libc::socket(AF_BUS, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: `fd` is a descriptor we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(BusSocket { fd, bus: *bus })
    }

    /// The raw descriptor (for poll).
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// `bind()`: make this socket the master of its bus, owning `name`.
    pub fn bind(&self, name: &Addr) -> io::Result<()> {
        let sa = name.to_sockaddr(&self.bus);
        // SAFETY: `sa` is a `struct sockaddr_bus` of the length passed.
        check(unsafe {
            libc::bind(
                self.raw(),
                (&sa as *const SockaddrBus).cast::<libc::sockaddr>(),
                size_of::<SockaddrBus>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    fn setsockopt<T>(&self, level: libc::c_int, opt: libc::c_int, val: &T) -> io::Result<()> {
        // SAFETY: `val` points to a `T` of the size passed.
        check(unsafe {
            libc::setsockopt(
                self.raw(),
                level,
                opt,
                (val as *const T).cast::<libc::c_void>(),
                size_of::<T>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    /// `SO_PASSCRED`: receive the sender's credentials with every message.
    pub fn set_passcred(&self) -> io::Result<()> {
        self.setsockopt(libc::SOL_SOCKET, libc::SO_PASSCRED, &1i32)
    }

    /// `BUS_POLICY` (masters only).
    pub fn set_policy(&self, flags: u32) -> io::Result<()> {
        self.setsockopt(SOL_BUS, BUS_POLICY, &flags)
    }

    /// `SO_ATTACH_FILTER` with a classic BPF program.
    pub fn attach_filter(&self, prog: &[libc::sock_filter]) -> io::Result<()> {
        let len =
            u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let fprog = libc::sock_fprog {
            len,
            filter: prog.as_ptr().cast_mut(),
        };
        self.setsockopt(libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
    }

    /// `BUS_DROPS`: multicast messages dropped for this socket so far.
    pub fn drops(&self) -> io::Result<u32> {
        let mut v = 0u32;
        let mut len = size_of::<u32>() as libc::socklen_t;
        // SAFETY: `v` and `len` are valid for writes of the sizes given.
        check(unsafe {
            libc::getsockopt(
                self.raw(),
                SOL_BUS,
                BUS_DROPS,
                (&mut v as *mut u32).cast::<libc::c_void>(),
                &mut len,
            )
        })?;
        Ok(v)
    }

    /// `sendmsg()` of `payload` to `dst`, with `SOL_BUS` control messages.
    pub fn send(
        &self,
        dst: &SockaddrBus,
        payload: &[u8],
        cmsgs: &[(libc::c_int, SockaddrBus)],
        nonblock: bool,
    ) -> io::Result<()> {
        let mut ctl = Vec::with_capacity(cmsgs.len() * size_of::<BusCmsg>());
        for (t, a) in cmsgs {
            ctl.extend_from_slice(bytes_of(&BusCmsg::new(*t, *a)));
        }
        self.send_ctl(dst, payload, &mut ctl, nonblock)
    }

    /// `sendmsg()` of `payload` to `dst`, with the control buffer `ctl`
    /// (see [`push_cmsg`]).
    pub fn send_ctl(
        &self,
        dst: &SockaddrBus,
        payload: &[u8],
        ctl: &mut [u8],
        nonblock: bool,
    ) -> io::Result<()> {
        let mut iov = libc::iovec {
            iov_base: payload.as_ptr().cast_mut().cast::<libc::c_void>(),
            iov_len: payload.len(),
        };
        let m = libc::msghdr {
            msg_name: (dst as *const SockaddrBus)
                .cast_mut()
                .cast::<libc::c_void>(),
            msg_namelen: size_of::<SockaddrBus>() as libc::socklen_t,
            msg_iov: &mut iov,
            msg_iovlen: 1,
            msg_control: if ctl.is_empty() {
                std::ptr::null_mut()
            } else {
                ctl.as_mut_ptr().cast::<libc::c_void>()
            },
            msg_controllen: ctl.len(),
            msg_flags: 0,
        };
        let flags = libc::MSG_NOSIGNAL | if nonblock { libc::MSG_DONTWAIT } else { 0 };
        // SAFETY: `m` points to live buffers of the lengths it states; the
        // kernel only reads them.
        let n = unsafe { libc::sendmsg(self.raw(), &m, flags) };
        if n < 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` (negative: forever) for the socket to be
    /// readable; `false` on timeout.
    fn wait_readable(&self, timeout_ms: i32) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.raw(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if r >= 0 {
                return Ok(r > 0);
            }
            let e = last_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Waits up to `timeout_ms` (negative: forever) for a message.
    /// `Ok(None)` on timeout.
    pub fn recv(&self, timeout_ms: i32) -> io::Result<Option<Received>> {
        if !self.wait_readable(timeout_ms)? {
            return Ok(None);
        }
        let mut buf = vec![0u8; 65536];
        // The kernel needs no alignment, and `cmsgs` reads unaligned.
        let mut ctl = vec![0u8; CMSG_BUF];
        let mut name = SockaddrBus::empty();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast::<libc::c_void>(),
            iov_len: buf.len(),
        };
        let mut m = libc::msghdr {
            msg_name: (&mut name as *mut SockaddrBus).cast::<libc::c_void>(),
            msg_namelen: size_of::<SockaddrBus>() as libc::socklen_t,
            msg_iov: &mut iov,
            msg_iovlen: 1,
            msg_control: ctl.as_mut_ptr().cast::<libc::c_void>(),
            msg_controllen: ctl.len(),
            msg_flags: 0,
        };
        // SAFETY: `m` points to live buffers of the lengths it states.
        let n = unsafe { libc::recvmsg(self.raw(), &mut m, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            return Err(last_error());
        }
        buf.truncate(n as usize);
        let malformed = || io::Error::new(io::ErrorKind::InvalidData, "malformed source address");
        let namelen = (m.msg_namelen as usize).min(size_of::<SockaddrBus>());
        let src = BusAddr::parse(&name.as_bytes()[..namelen]).map_err(|_| malformed())?;
        let mut out = Received {
            src: SockaddrBus::from(&src),
            payload: buf,
            bus_cmsgs: Vec::new(),
            creds: None,
            truncated: m.msg_flags & libc::MSG_TRUNC != 0,
        };
        for (level, kind, data) in cmsgs(&ctl[..m.msg_controllen.min(ctl.len())]) {
            match (level, kind) {
                // The classes are no address; the access masks come
                // before theirs (shown as the address they are set on).
                (SOL_BUS, SCM_POLICY_CLASSES) => {}
                (SOL_BUS, SCM_ADDR_ACCESS) => {
                    let a = data.get(uapi::ADDR_ACCESS_ADDR_OFFSET..);
                    if let Some(a) = a.and_then(SockaddrBus::from_bytes) {
                        out.bus_cmsgs.push((kind, a));
                    }
                }
                (SOL_BUS, _) => {
                    if let Some(a) = SockaddrBus::from_bytes(data) {
                        out.bus_cmsgs.push((kind, a));
                    }
                }
                (libc::SOL_SOCKET, libc::SCM_CREDENTIALS) => {
                    out.creds = read_plain::<libc::ucred>(data).map(|u| Creds {
                        pid: u.pid,
                        uid: u.uid,
                        gid: u.gid,
                    });
                }
                (libc::SOL_SOCKET, libc::SCM_RIGHTS) => {
                    // afbusctl takes no files: close what arrived.
                    for fd in data.chunks_exact(size_of::<libc::c_int>()) {
                        let fd = read_plain::<libc::c_int>(fd).unwrap_or(-1);
                        if fd >= 0 {
                            // SAFETY: the kernel installed `fd` for this
                            // process with the message; nobody else has it.
                            drop(unsafe { OwnedFd::from_raw_fd(fd) });
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmsg_arithmetic_is_libcs() {
        for n in [0usize, 1, 4, 12, 128, 129] {
            // SAFETY: CMSG_LEN and CMSG_SPACE are arithmetic.
            let (len, space) = unsafe { (libc::CMSG_LEN(n as u32), libc::CMSG_SPACE(n as u32)) };
            assert_eq!(cmsg_len(n), len as usize, "{n}");
            assert_eq!(cmsg_space(n), space as usize, "{n}");
        }
    }

    #[test]
    fn control_buffer_walks_back() {
        let bus = BusPath::parse("@b").unwrap();
        let a = Addr::Name("org.example.A".into()).to_sockaddr(&bus);
        let b = Addr::Name(":7".into()).to_sockaddr(&bus);
        let ctl = [
            BusCmsg::new(SCM_OWNED_ADDR, a),
            BusCmsg::new(SCM_DST_ADDR, b),
        ];
        // What `send` hands the kernel is what `recv` walks.
        let bytes: Vec<u8> = ctl.iter().flat_map(|c| bytes_of(c).to_vec()).collect();
        let got: Vec<_> = cmsgs(&bytes)
            .map(|(l, t, d)| (l, t, SockaddrBus::from_bytes(d).unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![(SOL_BUS, SCM_OWNED_ADDR, a), (SOL_BUS, SCM_DST_ADDR, b)]
        );
        // A header claiming more than the buffer holds ends the walk.
        assert_eq!(cmsgs(&bytes[..bytes.len() - 1]).count(), 1);
        assert_eq!(cmsgs(&[]).count(), 0);
    }

    #[test]
    fn sockaddr_is_the_cores_encoding() {
        let bus = BusPath::parse("/run/bus/x").unwrap();
        let a = Addr::Name("org.example.Echo".into()).to_bus_addr(&bus);
        let sa = SockaddrBus::from(&a);
        assert_eq!(sa.as_bytes(), a.encode());
        assert_eq!(usize::from(sa.ncomp), a.addr.ncomp());
        assert_eq!(sa.family, uapi::AF_BUS);
        assert_eq!(sa.parse(), Some(a));
        assert_eq!(SockaddrBus::from_bytes(&a.encode()), Some(sa));
        // Not an address: refused by the core.
        assert_eq!(SockaddrBus::from_bytes(&[0u8; 128]), None);
        assert_eq!(SockaddrBus::empty().parse(), None);
    }
}
