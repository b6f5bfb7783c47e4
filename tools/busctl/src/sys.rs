// SPDX-License-Identifier: GPL-2.0

//! The AF_BUS socket calls busctl makes, over libc: addresses, sendmsg and
//! recvmsg with control messages, socket options, a classic BPF filter.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::addr::{Addr, BusPath};

/// The numbers of `include/uapi/linux/bus.h` (checked by a unit test).
pub const AF_BUS: libc::c_int = 46;
pub const SOL_BUS: libc::c_int = 288;
pub const BUS_PATH_MAX: usize = 60;
pub const BUS_ADDR_COMP_MAX: usize = 8;
pub const SCM_OWNED_ADDR: libc::c_int = 1;
pub const SCM_REVOKE_ADDR: libc::c_int = 2;
pub const SCM_MULTICAST_MATCH: libc::c_int = 3;
pub const SCM_MULTICAST_UNMATCH: libc::c_int = 4;
pub const SCM_MULTICAST_SEND: libc::c_int = 5;
pub const SCM_SRC_ADDR: libc::c_int = 6;
pub const SCM_DST_ADDR: libc::c_int = 7;
pub const BUS_POLICY: libc::c_int = 1;
pub const BUS_DROPS: libc::c_int = 5;
pub const BUS_POLICY_MCAST_SEND_GRANTED: u32 = 1;
pub const BUS_NOTIFY_GONE: u32 = 1;
pub const BUS_NOTIFY_OVERFLOW: u32 = 2;

/// `struct sockaddr_bus`, the fixed layout (128 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SockaddrBus {
    pub family: u16,
    pub ncomp: u16,
    pub path: [u8; BUS_PATH_MAX],
    pub addr: [u64; BUS_ADDR_COMP_MAX],
}

impl SockaddrBus {
    /// An all-zero address of the family.
    pub fn empty() -> SockaddrBus {
        SockaddrBus {
            family: AF_BUS as u16,
            ncomp: 0,
            path: [0; BUS_PATH_MAX],
            addr: [0; BUS_ADDR_COMP_MAX],
        }
    }

    /// The raw bytes of the address.
    pub fn as_bytes(&self) -> [u8; size_of::<SockaddrBus>()] {
        let mut out = [0u8; size_of::<SockaddrBus>()];
        out[0..2].copy_from_slice(&self.family.to_ne_bytes());
        out[2..4].copy_from_slice(&self.ncomp.to_ne_bytes());
        out[4..64].copy_from_slice(&self.path);
        for (i, w) in self.addr.iter().enumerate() {
            out[64 + i * 8..72 + i * 8].copy_from_slice(&w.to_ne_bytes());
        }
        out
    }

    /// Reads an address from `bytes` (the fixed layout, as the kernel writes).
    pub fn from_bytes(bytes: &[u8]) -> Option<SockaddrBus> {
        if bytes.len() < size_of::<SockaddrBus>() {
            return None;
        }
        let mut a = SockaddrBus::empty();
        a.family = u16::from_ne_bytes([bytes[0], bytes[1]]);
        a.ncomp = u16::from_ne_bytes([bytes[2], bytes[3]]);
        a.path.copy_from_slice(&bytes[4..64]);
        for (i, w) in a.addr.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[64 + i * 8..72 + i * 8]);
            *w = u64::from_ne_bytes(b);
        }
        Some(a)
    }
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

const CMSG_BUF: usize = 4096;

impl BusSocket {
    /// `socket(AF_BUS, SOCK_DGRAM, 0)` for the bus at `bus`.
    pub fn new(bus: &BusPath) -> io::Result<BusSocket> {
        // SAFETY: socket(2) takes no pointers.
        let fd = check(unsafe { libc::socket(AF_BUS, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: `fd` is a descriptor we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(BusSocket {
            fd,
            bus: bus.clone(),
        })
    }

    /// The raw descriptor (for poll).
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// `bind()`: make this socket the master of its bus, owning `name`.
    pub fn bind(&self, name: &Addr) -> io::Result<()> {
        let sa = name.to_sockaddr(&self.bus);
        // SAFETY: `sa` is a valid sockaddr_bus of the length passed.
        check(unsafe {
            libc::bind(
                self.raw(),
                &sa as *const SockaddrBus as *const libc::sockaddr,
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
                val as *const T as *const libc::c_void,
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
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut libc::sock_filter,
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
                &mut v as *mut u32 as *mut libc::c_void,
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
        let space = libc_cmsg_space(size_of::<SockaddrBus>());
        let mut ctl = vec![0u8; space * cmsgs.len()];
        let mut iov = libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        };
        // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
        let mut m: libc::msghdr = unsafe { zeroed() };
        m.msg_name = dst as *const SockaddrBus as *mut libc::c_void;
        m.msg_namelen = size_of::<SockaddrBus>() as libc::socklen_t;
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        if !cmsgs.is_empty() {
            m.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
            m.msg_controllen = ctl.len();
            // SAFETY: `m` describes `ctl`, which has room for one
            // CMSG_SPACE(sizeof(sockaddr_bus)) per control message, so each
            // header and its data written below lie inside it.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&m);
                for (ty, a) in cmsgs {
                    (*c).cmsg_level = SOL_BUS;
                    (*c).cmsg_type = *ty;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<SockaddrBus>() as u32) as usize;
                    let bytes = a.as_bytes();
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), libc::CMSG_DATA(c), bytes.len());
                    c = libc::CMSG_NXTHDR(&m, c);
                }
            }
        }
        let flags = libc::MSG_NOSIGNAL | if nonblock { libc::MSG_DONTWAIT } else { 0 };
        // SAFETY: `m` points to live buffers of the lengths it states.
        let n = unsafe { libc::sendmsg(self.raw(), &m, flags) };
        if n < 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` (negative: forever) for a message.
    /// `Ok(None)` on timeout.
    pub fn recv(&self, timeout_ms: i32) -> io::Result<Option<Received>> {
        let mut pfd = libc::pollfd {
            fd: self.raw(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if r < 0 {
                let e = last_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r == 0 {
                return Ok(None);
            }
            break;
        }
        let mut buf = vec![0u8; 65536];
        let mut ctl = vec![0u8; CMSG_BUF];
        let mut name = SockaddrBus::empty();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: an all-zero msghdr is valid.
        let mut m: libc::msghdr = unsafe { zeroed() };
        m.msg_name = &mut name as *mut SockaddrBus as *mut libc::c_void;
        m.msg_namelen = size_of::<SockaddrBus>() as libc::socklen_t;
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        m.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
        m.msg_controllen = ctl.len();
        // SAFETY: `m` points to live buffers of the lengths it states.
        let n = unsafe { libc::recvmsg(self.raw(), &mut m, 0) };
        if n < 0 {
            return Err(last_error());
        }
        buf.truncate(n as usize);
        let mut out = Received {
            src: name,
            payload: buf,
            bus_cmsgs: Vec::new(),
            creds: None,
            truncated: m.msg_flags & libc::MSG_TRUNC != 0,
        };
        // SAFETY: the kernel filled `ctl` with `msg_controllen` bytes of
        // well-formed control messages; CMSG_* walk only within them.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&m);
            while !c.is_null() {
                let data = libc::CMSG_DATA(c);
                let len = (*c).cmsg_len - libc::CMSG_LEN(0) as usize;
                if (*c).cmsg_level == SOL_BUS && len >= size_of::<SockaddrBus>() {
                    let bytes = std::slice::from_raw_parts(data, size_of::<SockaddrBus>());
                    if let Some(a) = SockaddrBus::from_bytes(bytes) {
                        out.bus_cmsgs.push(((*c).cmsg_type, a));
                    }
                } else if (*c).cmsg_level == libc::SOL_SOCKET
                    && (*c).cmsg_type == libc::SCM_CREDENTIALS
                    && len >= size_of::<libc::ucred>()
                {
                    let u = std::ptr::read_unaligned(data as *const libc::ucred);
                    out.creds = Some(Creds {
                        pid: u.pid,
                        uid: u.uid,
                        gid: u.gid,
                    });
                } else if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS
                {
                    // busctl takes no files: close what arrived.
                    let nfds = len / size_of::<libc::c_int>();
                    for i in 0..nfds {
                        let fd = std::ptr::read_unaligned((data as *const libc::c_int).add(i));
                        libc::close(fd);
                    }
                }
                c = libc::CMSG_NXTHDR(&m, c);
            }
        }
        Ok(Some(out))
    }
}

fn libc_cmsg_space(len: usize) -> usize {
    // SAFETY: CMSG_SPACE is arithmetic.
    unsafe { libc::CMSG_SPACE(len as u32) as usize }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every number above is the one `include/uapi/linux/bus.h` defines.
    #[test]
    fn numbers_match_the_uapi_header() {
        let h = include_str!("../../../include/uapi/linux/bus.h");
        let define = |name: &str| -> i64 {
            let line = h
                .lines()
                .find(|l| l.split_whitespace().take(2).eq(["#define", name]))
                .unwrap_or_else(|| panic!("{name} not in bus.h"));
            let v = line.split_whitespace().nth(2).unwrap();
            let v = v.trim_start_matches('(').trim_end_matches('U');
            if let Some(shift) = v.strip_prefix("1U << ").or(line.split("<<").nth(1)) {
                return 1 << shift.trim().trim_end_matches(')').parse::<i64>().unwrap();
            }
            v.parse().unwrap()
        };
        for (name, v) in [
            ("AF_BUS", AF_BUS as i64),
            ("SOL_BUS", SOL_BUS as i64),
            ("BUS_PATH_MAX", BUS_PATH_MAX as i64),
            ("BUS_ADDR_COMP_MAX", BUS_ADDR_COMP_MAX as i64),
            ("SCM_OWNED_ADDR", SCM_OWNED_ADDR as i64),
            ("SCM_REVOKE_ADDR", SCM_REVOKE_ADDR as i64),
            ("SCM_MULTICAST_MATCH", SCM_MULTICAST_MATCH as i64),
            ("SCM_MULTICAST_UNMATCH", SCM_MULTICAST_UNMATCH as i64),
            ("SCM_MULTICAST_SEND", SCM_MULTICAST_SEND as i64),
            ("SCM_SRC_ADDR", SCM_SRC_ADDR as i64),
            ("SCM_DST_ADDR", SCM_DST_ADDR as i64),
            ("BUS_POLICY", BUS_POLICY as i64),
            ("BUS_DROPS", BUS_DROPS as i64),
            (
                "BUS_POLICY_MCAST_SEND_GRANTED",
                BUS_POLICY_MCAST_SEND_GRANTED as i64,
            ),
        ] {
            assert_eq!(define(name), v, "{name}");
        }
        assert!(h.contains("BUS_NOTIFY_GONE") && h.contains("BUS_NOTIFY_OVERFLOW"));
        assert_eq!(size_of::<SockaddrBus>(), 128);
    }
}
