// SPDX-License-Identifier: GPL-2.0

//! `SOL_BUS` control messages of a `sendmsg`, parsed from the kernel's copy
//! of the control buffer.  Kernel-independent.

use crate::addr::{AddrError, BusAddr};
use crate::uapi::{
    ADDR_ACCESS_ADDR_OFFSET, ADDR_ACCESS_SIZE, SCM_ADDR_ACCESS, SCM_EXPECT_REPLY, SCM_MOVE_ADDR,
    SCM_MULTICAST_MATCH, SCM_MULTICAST_SEND, SCM_MULTICAST_UNMATCH, SCM_OWNED_ADDR,
    SCM_POLICY_CLASSES, SCM_REVOKE_ADDR, SCM_SRC_ADDR, SOL_BUS,
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
    /// `SCM_MOVE_ADDR`: `Own`, taking the address from its owner.
    Move,
    /// `SCM_ADDR_ACCESS`: the access masks of an owned address.
    Access,
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
            GrantKind::Move => SCM_MOVE_ADDR,
            GrantKind::Access => SCM_ADDR_ACCESS,
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
    /// `SCM_ADDR_ACCESS`'s masks; zero for the other kinds.
    pub access: Access,
}

/// The access masks of an address (`struct bus_addr_access`): the
/// classes that may send to its owner (`talk`) and receive from it
/// (`hear`); zero lets everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// Who may send to the owner.
    pub talk: u64,
    /// Who may receive from the owner.
    pub hear: u64,
}

impl Access {
    /// Whether the masks let everyone through.
    pub fn is_open(&self) -> bool {
        self.talk == 0 && self.hear == 0
    }
}

/// Whether a message from a member of classes `from`, owning addresses
/// with the masks `from_access`, may reach a member of classes `to`
/// owning addresses with the masks `to_access`: every talk mask of the
/// receiver and every hear mask of the sender must share a class with
/// the other side.
pub fn admits<'a>(
    from: u64,
    from_access: impl IntoIterator<Item = &'a Access>,
    to: u64,
    to_access: impl IntoIterator<Item = &'a Access>,
) -> bool {
    to_access
        .into_iter()
        .all(|a| a.talk == 0 || a.talk & from != 0)
        && from_access
            .into_iter()
            .all(|a| a.hear == 0 || a.hear & to != 0)
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
    /// Two `SCM_SRC_ADDR`, two `SCM_POLICY_CLASSES` or two
    /// `SCM_EXPECT_REPLY`.
    DuplicateSource,
    /// A control message whose data is not the size its type has.
    BadLength,
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

/// One control message: level, type, data.  `Err` for a header that
/// overruns the buffer or claims less than itself.
type RawCmsg<'a> = Result<(i32, i32, &'a [u8]), CmsgError>;

/// The control messages of `buf`, as the kernel's `for_each_cmsghdr`
/// walks them: it stops when no header fits.
fn walk(buf: &[u8]) -> impl Iterator<Item = RawCmsg<'_>> {
    let mut at = 0;
    core::iter::from_fn(move || {
        if buf.len() - at < CMSG_HDR {
            return None;
        }
        let len = usize::from_ne_bytes(buf[at..at + 8].try_into().unwrap_or([0; 8]));
        let level = i32::from_ne_bytes(buf[at + 8..at + 12].try_into().unwrap_or([0; 4]));
        let kind = i32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap_or([0; 4]));
        if len < CMSG_HDR || len > buf.len() - at {
            // Nothing after a malformed header is looked at.
            at = buf.len();
            return Some(Err(CmsgError::Malformed));
        }
        let data = &buf[at + CMSG_HDR..at + len];
        at += cmsg_align(len).min(buf.len() - at);
        Some(Ok((level, kind, data)))
    })
}

fn grant_kind(kind: i32) -> Option<GrantKind> {
    match kind {
        SCM_OWNED_ADDR => Some(GrantKind::Own),
        SCM_REVOKE_ADDR => Some(GrantKind::Revoke),
        SCM_MULTICAST_MATCH => Some(GrantKind::Match),
        SCM_MULTICAST_UNMATCH => Some(GrantKind::Unmatch),
        SCM_MULTICAST_SEND => Some(GrantKind::Send),
        SCM_MOVE_ADDR => Some(GrantKind::Move),
        SCM_ADDR_ACCESS => Some(GrantKind::Access),
        _ => None,
    }
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[at..at + 8]);
    u64::from_ne_bytes(b)
}

fn parse_grant(kind: GrantKind, data: &[u8]) -> Result<Grant, CmsgError> {
    let (access, data) = if kind == GrantKind::Access {
        if data.len() < ADDR_ACCESS_SIZE {
            return Err(CmsgError::BadLength);
        }
        let access = Access {
            talk: u64_at(data, 0),
            hear: u64_at(data, 8),
        };
        (access, &data[ADDR_ACCESS_ADDR_OFFSET..])
    } else {
        (Access::default(), data)
    };
    let addr = BusAddr::parse(data)?;
    if addr.multicast != kind.is_multicast() {
        return Err(CmsgError::WrongKind);
    }
    if !addr.multicast && (addr.addr.is_kernel() || addr.addr.is_reserved()) {
        return Err(CmsgError::ReservedAddress);
    }
    Ok(Grant { kind, addr, access })
}

/// The `SOL_BUS` part of a control buffer, validated; the grants are
/// read from the buffer again when iterated, so that a send without any
/// costs nothing.
#[derive(Debug)]
pub struct BusCmsgs<'a> {
    buf: &'a [u8],
    ngrants: usize,
    /// Where `SCM_SRC_ADDR`'s data starts in `buf`, if given (see
    /// [`BusCmsgs::src`]): kept as an offset, so that the struct is small
    /// to move on every send.
    src_at: Option<usize>,
    /// `SCM_POLICY_CLASSES`, if given (a grant, counted in `ngrants`).
    pub classes: Option<u64>,
    /// Whether `SCM_EXPECT_REPLY` was given.
    pub expect_reply: bool,
}

impl<'a> BusCmsgs<'a> {
    /// The grants, in the order they were given.
    pub fn grants(&self) -> impl Iterator<Item = Grant> + '_ {
        walk(self.buf).filter_map(|c| {
            let (level, kind, data) = c.ok()?;
            if level != SOL_BUS {
                return None;
            }
            // Validated by `parse`.
            parse_grant(grant_kind(kind)?, data).ok()
        })
    }

    /// Every grant's type and data as given, `SCM_POLICY_CLASSES`
    /// included, in order: what the receiver is shown.
    pub fn records(&self) -> impl Iterator<Item = (i32, &[u8])> + '_ {
        walk(self.buf).filter_map(|c| {
            let (level, kind, data) = c.ok()?;
            (level == SOL_BUS && (kind == SCM_POLICY_CLASSES || grant_kind(kind).is_some()))
                .then_some((kind, data))
        })
    }

    /// `SCM_SRC_ADDR`, if given: parsed again from the buffer, which
    /// `parse` validated.
    pub fn src(&self) -> Option<BusAddr> {
        let at = self.src_at?;
        let len = usize::from_ne_bytes(self.buf[at - CMSG_HDR..at - 8].try_into().ok()?);
        BusAddr::parse(&self.buf[at..at - CMSG_HDR + len]).ok()
    }

    /// Whether `SCM_SRC_ADDR` was given.
    pub fn has_src(&self) -> bool {
        self.src_at.is_some()
    }

    /// Whether there is any grant.
    pub fn has_grants(&self) -> bool {
        self.ngrants > 0
    }

    /// How many grants there are.
    pub fn ngrants(&self) -> usize {
        self.ngrants
    }

    /// Parses `buf`, a kernel copy of `msg_control`.  Control messages of
    /// other levels are skipped: `SOL_SOCKET` is the socket layer's.
    #[inline]
    pub fn parse(buf: &'a [u8]) -> Result<BusCmsgs<'a>, CmsgError> {
        let mut out = BusCmsgs {
            buf,
            ngrants: 0,
            src_at: None,
            classes: None,
            expect_reply: false,
        };
        if buf.is_empty() {
            return Ok(out);
        }
        let mut count = 0;
        for c in walk(buf) {
            let (level, kind, data) = c?;
            if level != SOL_BUS {
                continue;
            }
            count += 1;
            if count > MAX_BUS_CMSGS {
                return Err(CmsgError::TooMany);
            }
            if kind == SCM_SRC_ADDR {
                if out.src_at.is_some() {
                    return Err(CmsgError::DuplicateSource);
                }
                let addr = BusAddr::parse(data)?;
                if addr.multicast {
                    return Err(CmsgError::MulticastSource);
                }
                // `data` is a subslice of `buf`.
                out.src_at = Some(data.as_ptr() as usize - buf.as_ptr() as usize);
                continue;
            }
            if kind == SCM_POLICY_CLASSES {
                if out.classes.is_some() {
                    return Err(CmsgError::DuplicateSource);
                }
                if data.len() != 8 {
                    return Err(CmsgError::BadLength);
                }
                out.classes = Some(u64_at(data, 0));
                out.ngrants += 1;
                continue;
            }
            if kind == SCM_EXPECT_REPLY {
                if out.expect_reply {
                    return Err(CmsgError::DuplicateSource);
                }
                if !data.is_empty() {
                    return Err(CmsgError::BadLength);
                }
                out.expect_reply = true;
                continue;
            }
            // Anything else must be a grant (SCM_DST_ADDR is the kernel's).
            let kind = grant_kind(kind).ok_or(CmsgError::UnknownType)?;
            parse_grant(kind, data)?;
            out.ngrants += 1;
        }
        Ok(out)
    }
}
