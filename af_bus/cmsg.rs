// SPDX-License-Identifier: GPL-2.0

//! `SOL_BUS` control messages of a `sendmsg`, parsed from the kernel's copy
//! of the control buffer.  Kernel-independent.

use crate::addr::{AddrError, BusAddr};
use crate::uapi::{
    SCM_MULTICAST_MATCH, SCM_MULTICAST_SEND, SCM_MULTICAST_UNMATCH, SCM_OWNED_ADDR,
    SCM_REVOKE_ADDR, SCM_SRC_ADDR, SOL_BUS,
};

/// Most `SOL_BUS` control messages one `sendmsg` may carry.
pub const MAX_BUS_CMSGS: usize = 16;

/// `sizeof(struct cmsghdr)` on 64-bit architectures.
const CMSG_HDR: usize = 16;

/// `CMSG_ALIGN()`.
const fn cmsg_align(len: usize) -> usize {
    (len + 7) & !7
}

/// What a grant does to its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    /// `SCM_OWNED_ADDR`.
    Own,
    /// `SCM_REVOKE_ADDR`.
    Revoke,
    /// `SCM_MULTICAST_MATCH`.
    Match,
    /// `SCM_MULTICAST_UNMATCH`.
    Unmatch,
    /// `SCM_MULTICAST_SEND`.
    Send,
}

impl GrantKind {
    /// The control message type that carries this grant.
    pub fn cmsg_type(self) -> i32 {
        match self {
            GrantKind::Own => SCM_OWNED_ADDR,
            GrantKind::Revoke => SCM_REVOKE_ADDR,
            GrantKind::Match => SCM_MULTICAST_MATCH,
            GrantKind::Unmatch => SCM_MULTICAST_UNMATCH,
            GrantKind::Send => SCM_MULTICAST_SEND,
        }
    }

    /// Whether the grant names a multicast mask rather than an address.
    pub fn is_multicast(self) -> bool {
        matches!(
            self,
            GrantKind::Match | GrantKind::Unmatch | GrantKind::Send
        )
    }
}

/// One grant of a master's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// What it does.
    pub kind: GrantKind,
    /// The address or mask it concerns.
    pub addr: BusAddr,
}

/// Why the control buffer was refused.  `EINVAL` at the C boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmsgError {
    /// A header that overruns the buffer or claims less than itself.
    Malformed,
    /// An unknown `SOL_BUS` type (or `SCM_DST_ADDR`, which only the
    /// kernel writes).
    UnknownType,
    /// More than [`MAX_BUS_CMSGS`] `SOL_BUS` messages.
    TooMany,
    /// Two `SCM_SRC_ADDR`.
    DuplicateSource,
    /// A grant of the wrong kind of address (unicast for a multicast
    /// grant or the reverse), or a malformed address.
    BadAddress(AddrError),
    /// A unicast address in a multicast grant, or the reverse.
    WrongKind,
    /// A unicast grant of a reserved or kernel address.
    ReservedAddress,
    /// A multicast `SCM_SRC_ADDR`.
    MulticastSource,
}

impl From<AddrError> for CmsgError {
    fn from(e: AddrError) -> Self {
        CmsgError::BadAddress(e)
    }
}

/// The `SOL_BUS` part of a control buffer.
#[derive(Debug, Default)]
pub struct BusCmsgs {
    grants: [Option<Grant>; MAX_BUS_CMSGS],
    ngrants: usize,
    /// `SCM_SRC_ADDR`, if given.
    pub src: Option<BusAddr>,
}

impl BusCmsgs {
    /// The grants, in the order they were given.
    pub fn grants(&self) -> impl Iterator<Item = &Grant> {
        self.grants[..self.ngrants].iter().flatten()
    }

    /// Whether there is any grant.
    pub fn has_grants(&self) -> bool {
        self.ngrants > 0
    }

    /// Parses `buf`, a kernel copy of `msg_control`.  Control messages of
    /// other levels are skipped: `SOL_SOCKET` is the socket layer's.
    pub fn parse(buf: &[u8]) -> Result<BusCmsgs, CmsgError> {
        let mut out = BusCmsgs::default();
        let mut count = 0;
        let mut at = 0;
        // The kernel's for_each_cmsghdr: stop when no header fits.
        while buf.len() - at >= CMSG_HDR {
            let len = usize::from_ne_bytes(buf[at..at + 8].try_into().unwrap_or([0; 8]));
            let level = i32::from_ne_bytes(buf[at + 8..at + 12].try_into().unwrap_or([0; 4]));
            let kind = i32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap_or([0; 4]));
            if len < CMSG_HDR || len > buf.len() - at {
                return Err(CmsgError::Malformed);
            }
            let data = &buf[at + CMSG_HDR..at + len];
            if level == SOL_BUS {
                count += 1;
                if count > MAX_BUS_CMSGS {
                    return Err(CmsgError::TooMany);
                }
                out.push(kind, data)?;
            }
            at += cmsg_align(len).min(buf.len() - at);
        }
        Ok(out)
    }

    fn push(&mut self, kind: i32, data: &[u8]) -> Result<(), CmsgError> {
        let grant = match kind {
            SCM_OWNED_ADDR => GrantKind::Own,
            SCM_REVOKE_ADDR => GrantKind::Revoke,
            SCM_MULTICAST_MATCH => GrantKind::Match,
            SCM_MULTICAST_UNMATCH => GrantKind::Unmatch,
            SCM_MULTICAST_SEND => GrantKind::Send,
            SCM_SRC_ADDR => {
                if self.src.is_some() {
                    return Err(CmsgError::DuplicateSource);
                }
                let addr = BusAddr::parse(data)?;
                if addr.multicast {
                    return Err(CmsgError::MulticastSource);
                }
                self.src = Some(addr);
                return Ok(());
            }
            // Includes SCM_DST_ADDR, which only the kernel writes.
            _ => return Err(CmsgError::UnknownType),
        };
        let addr = BusAddr::parse(data)?;
        if addr.multicast != grant.is_multicast() {
            return Err(CmsgError::WrongKind);
        }
        if !addr.multicast && (addr.addr.is_kernel() || addr.addr.is_reserved()) {
            return Err(CmsgError::ReservedAddress);
        }
        self.grants[self.ngrants] = Some(Grant { kind: grant, addr });
        self.ngrants += 1;
        Ok(())
    }
}
