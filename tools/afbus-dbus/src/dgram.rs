// SPDX-License-Identifier: GPL-2.0

//! The AF_BUS calls a D-Bus endpoint makes: datagrams with file
//! descriptors and `SOL_BUS` grants, and large messages in sealed memfds.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::sys::{
    cmsgs, push_cmsg, push_cmsg_at, SockaddrBus, AF_BUS, BUS_PATH_MAX, SCM_DST_ADDR,
    SCM_EXPECT_REPLY, SOL_BUS,
};

/// Messages longer than this travel in a sealed memfd: a datagram must fit
/// in half of the receiver's `SO_RCVBUF`, whose default is 208 KiB.
pub const MEMFD_THRESHOLD: usize = 32 * 1024;
/// The payload of a datagram whose message is in the first descriptor:
/// this magic (a D-Bus message starts with `l` or `B`), then its length.
pub const MEMFD_MAGIC: &[u8; 8] = b"AFBUSMFD";
/// The largest D-Bus message (the specification's 128 MiB).
pub const MAX_MESSAGE: usize = 128 << 20;
const SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// One received datagram.
pub struct Datagram {
    pub src: SockaddrBus,
    pub payload: Vec<u8>,
    pub fds: Vec<OwnedFd>,
    /// Sent to a multicast bitmap (a broadcast signal).
    pub multicast: bool,
}

fn cvt(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// `socket(AF_BUS, SOCK_DGRAM)`.
pub fn socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(AF_BUS, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor we just opened.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `payload` with `fds` to `dst`; `flags` as for sendmsg(2).  With
/// `expect_reply`, the receiver may answer once even where the policy's
/// masks would refuse it (`SCM_EXPECT_REPLY`).  `creds` are the
/// credentials to send as (`SCM_CREDENTIALS`, which the kernel checks: a
/// pid, uid or gid not the caller's own needs `CAP_SYS_ADMIN`,
/// `CAP_SETUID`, `CAP_SETGID`).
pub fn send(
    fd: RawFd,
    dst: &SockaddrBus,
    payload: &[u8],
    fds: &[RawFd],
    flags: libc::c_int,
    expect_reply: bool,
    creds: Option<&libc::ucred>,
) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    let mut ctl = Vec::new();
    push_rights(&mut ctl, fds);
    if expect_reply {
        push_cmsg(&mut ctl, SCM_EXPECT_REPLY, &[]);
    }
    if let Some(c) = creds {
        let bytes = [
            c.pid.to_ne_bytes(),
            c.uid.to_ne_bytes(),
            c.gid.to_ne_bytes(),
        ]
        .concat();
        push_cmsg_at(&mut ctl, libc::SOL_SOCKET, libc::SCM_CREDENTIALS, &bytes);
    }
    // SAFETY: an all-zero msghdr is valid.
    let mut m: libc::msghdr = unsafe { zeroed() };
    m.msg_name = dst as *const SockaddrBus as *mut libc::c_void;
    m.msg_namelen = size_of::<SockaddrBus>() as libc::socklen_t;
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    if !ctl.is_empty() {
        m.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
        m.msg_controllen = ctl.len();
    }
    // SAFETY: `m` describes live buffers.
    cvt(unsafe { libc::sendmsg(fd, &m, flags | libc::MSG_NOSIGNAL) })?;
    Ok(())
}

/// Receives one datagram without blocking (`WouldBlock` when none waits).
pub fn recv(fd: RawFd) -> io::Result<Datagram> {
    // The length first: a peek with MSG_TRUNC returns the datagram's size.
    let mut probe = [0u8; 1];
    // SAFETY: a one-byte buffer.
    let len = cvt(unsafe {
        libc::recv(
            fd,
            probe.as_mut_ptr() as *mut libc::c_void,
            1,
            libc::MSG_PEEK | libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        )
    })?;
    let mut buf = vec![0u8; len.max(1)];
    let mut ctl = [0u8; 4096];
    let mut src = SockaddrBus::empty();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid.
    let mut m: libc::msghdr = unsafe { zeroed() };
    m.msg_name = &mut src as *mut SockaddrBus as *mut libc::c_void;
    m.msg_namelen = size_of::<SockaddrBus>() as libc::socklen_t;
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
    m.msg_controllen = ctl.len();
    // SAFETY: `m` describes live buffers.
    let n = cvt(unsafe { libc::recvmsg(fd, &mut m, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) })?;
    buf.truncate(n);
    let mut out = Datagram {
        src,
        payload: buf,
        fds: Vec::new(),
        multicast: false,
    };
    let ctl = &ctl[..m.msg_controllen.min(ctl.len())];
    // SAFETY: recvmsg just wrote `ctl` for this process: its descriptors
    // (MSG_CMSG_CLOEXEC) are open and nobody else's.
    out.fds = unsafe { take_rights(ctl) };
    for (level, kind, data) in cmsgs(ctl) {
        if level == SOL_BUS && kind == SCM_DST_ADDR {
            if let Some(a) = data
                .get(..size_of::<SockaddrBus>())
                .and_then(SockaddrBus::from_bytes)
            {
                out.multicast = a.path[BUS_PATH_MAX - 1] == b'*';
            }
        }
    }
    if m.msg_flags & libc::MSG_TRUNC != 0 {
        return Err(io::Error::other("a datagram grew between peek and receive"));
    }
    if m.msg_flags & libc::MSG_CTRUNC != 0 {
        // Descriptors that did not fit are closed by the kernel: the
        // message would arrive without some of its `h` arguments.
        return Err(io::Error::other(
            "a datagram's control messages did not fit (descriptors lost)",
        ));
    }
    Ok(out)
}

/// Appends `fds` to `ctl` as one `SCM_RIGHTS` control message (nothing
/// for none).
pub fn push_rights(ctl: &mut Vec<u8>, fds: &[RawFd]) {
    if fds.is_empty() {
        return;
    }
    let bytes: Vec<u8> = fds.iter().flat_map(|f| f.to_ne_bytes()).collect();
    push_cmsg_at(ctl, libc::SOL_SOCKET, libc::SCM_RIGHTS, &bytes);
}

/// The descriptors of the `SCM_RIGHTS` messages in `ctl`, owned.
///
/// # Safety
///
/// `ctl` is control data `recvmsg` just wrote for this process, and
/// nothing else takes its descriptors: each is open and becomes the
/// returned `OwnedFd`'s alone.
pub unsafe fn take_rights(ctl: &[u8]) -> Vec<OwnedFd> {
    let mut out = Vec::new();
    for (level, kind, data) in cmsgs(ctl) {
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            for f in data.chunks_exact(size_of::<libc::c_int>()) {
                let raw = libc::c_int::from_ne_bytes([f[0], f[1], f[2], f[3]]);
                // SAFETY: by this function's contract, `raw` is an open
                // descriptor that nothing else owns.
                out.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
    }
    out
}

/// A sealed memfd holding `bytes`.
pub fn sealed_memfd(bytes: &[u8]) -> io::Result<OwnedFd> {
    let name = c"afbus-dbus-message";
    // SAFETY: a NUL-terminated name.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor we just opened.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut off = 0;
    while off < bytes.len() {
        // SAFETY: the slice is live for the call.
        let n = cvt(unsafe {
            libc::write(
                fd.as_raw_fd(),
                bytes[off..].as_ptr() as *const libc::c_void,
                bytes.len() - off,
            )
        })?;
        off += n;
    }
    // SAFETY: fcntl on our own descriptor.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// The message in a sealed memfd of `len` bytes, checked to be sealed so
/// that it cannot change under the reader.
pub fn read_memfd(fd: &OwnedFd, len: usize) -> io::Result<Vec<u8>> {
    if len > MAX_MESSAGE {
        return Err(io::Error::other("a memfd message longer than 128 MiB"));
    }
    // SAFETY: fcntl on a descriptor we own.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if seals < 0 || seals & SEALS != SEALS {
        return Err(io::Error::other("a memfd message that is not sealed"));
    }
    let mut buf = vec![0u8; len];
    let mut off = 0;
    while off < len {
        // SAFETY: the buffer is live and `len - off` long past `off`.
        let n = cvt(unsafe {
            libc::pread(
                fd.as_raw_fd(),
                buf[off..].as_mut_ptr() as *mut libc::c_void,
                len - off,
                off as libc::off_t,
            )
        })?;
        if n == 0 {
            return Err(io::Error::other("a memfd message shorter than announced"));
        }
        off += n;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memfd_round_trip() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let fd = sealed_memfd(&data).unwrap();
        assert_eq!(read_memfd(&fd, data.len()).unwrap(), data);
        assert_eq!(
            read_memfd(&fd, data.len() + 1).unwrap_err().to_string(),
            "a memfd message shorter than announced"
        );
    }
}
