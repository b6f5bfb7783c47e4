// SPDX-License-Identifier: GPL-2.0

//! Receive ring geometry and frame headers.  Kernel-independent.

use crate::uapi::{frame, BUS_FRAME_ALIGNMENT, SOCKADDR_BUS_SIZE};

/// `sizeof(struct bus_frame_hdr)`; the payload starts there.
pub const FRAME_HDR_LEN: usize = frame::HDR_LEN;

/// Where a frame header's `waiting` word is: nonzero while a sender waits
/// for the reader to hand the frame back.
pub const FRAME_WAITING_OFFSET: usize = frame::WAITING;

/// Largest ring, in bytes.
pub const RING_MAX: usize = 64 << 20;

/// Why a `struct bus_ring_req` was refused.  `EINVAL` at the C boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// A frame size that is not a multiple of `BUS_FRAME_ALIGNMENT`, or
    /// leaves no room for a payload byte.
    FrameSize,
    /// No frame.
    FrameCount,
    /// Larger than [`RING_MAX`], or not a whole number of pages.
    Size,
}

/// A valid ring layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    frame_size: usize,
    frame_nr: usize,
}

impl Geometry {
    /// Checks a `struct bus_ring_req`; `None` for `{0, 0}`, which removes
    /// the ring.
    pub fn new(
        frame_size: u32,
        frame_nr: u32,
        page_size: usize,
    ) -> Result<Option<Self>, RingError> {
        if frame_size == 0 && frame_nr == 0 {
            return Ok(None);
        }
        let (fs, nr) = (frame_size as usize, frame_nr as usize);
        if fs % BUS_FRAME_ALIGNMENT != 0 || fs <= FRAME_HDR_LEN {
            return Err(RingError::FrameSize);
        }
        if nr == 0 {
            return Err(RingError::FrameCount);
        }
        let size = fs.checked_mul(nr).ok_or(RingError::Size)?;
        if size > RING_MAX || size.checked_rem(page_size) != Some(0) {
            return Err(RingError::Size);
        }
        Ok(Some(Geometry {
            frame_size: fs,
            frame_nr: nr,
        }))
    }

    /// Bytes of the whole ring (what `mmap` maps).
    pub fn size(&self) -> usize {
        self.frame_size * self.frame_nr
    }

    /// Frames in the ring.
    pub fn frames(&self) -> usize {
        self.frame_nr
    }

    /// Offset of frame `i`.
    pub fn offset(&self, i: usize) -> usize {
        i * self.frame_size
    }

    /// The largest payload a frame holds.
    pub fn payload_max(&self) -> usize {
        self.frame_size - FRAME_HDR_LEN
    }
}

/// What a frame header says besides its status.
pub struct FrameInfo<'a> {
    /// Payload bytes.
    pub len: u32,
    /// `BUS_FRAME_F_*`.
    pub flags: u32,
    /// The sender, in the reader's namespaces.
    pub pid: i32,
    /// See `pid`.
    pub uid: u32,
    /// See `pid`.
    pub gid: u32,
    /// Source, fixed layout.
    pub src: &'a [u8; SOCKADDR_BUS_SIZE],
    /// Destination, fixed layout.
    pub dst: &'a [u8; SOCKADDR_BUS_SIZE],
}

/// The header bytes of a frame; its first four (the status word) are
/// zero, and are not what the kernel writes.  Its `waiting` word is zero:
/// a frame's first reservation after it came back clears the mark.
pub fn header(info: &FrameInfo<'_>) -> [u8; FRAME_HDR_LEN] {
    let mut hdr = [0u8; FRAME_HDR_LEN];
    let mut put = |at: usize, bytes: &[u8]| hdr[at..at + bytes.len()].copy_from_slice(bytes);
    put(frame::LEN, &info.len.to_ne_bytes());
    put(frame::FLAGS, &info.flags.to_ne_bytes());
    // The header length is a small constant.
    put(frame::DATA_OFFSET, &(FRAME_HDR_LEN as u32).to_ne_bytes());
    put(frame::PID, &info.pid.to_ne_bytes());
    put(frame::UID, &info.uid.to_ne_bytes());
    put(frame::GID, &info.gid.to_ne_bytes());
    put(frame::SRC, info.src);
    put(frame::DST, info.dst);
    hdr
}

const _: () = assert!(frame::STATUS == 0 && frame::SRC + SOCKADDR_BUS_SIZE <= FRAME_HDR_LEN);
