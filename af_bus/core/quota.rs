// SPDX-License-Identifier: GPL-2.0

//! Receive-queue admission: the queue bounds and the rule that no single
//! sending user may fill more than half of what is left.  Kernel-independent.

/// What a receive queue may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes (`SO_RCVBUF`), counted as the messages' true sizes.
    pub bytes: usize,
    /// Messages.
    pub msgs: usize,
}

/// What is queued, in total or from one user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes queued.
    pub bytes: usize,
    /// Messages queued.
    pub msgs: usize,
}

impl Usage {
    /// Adds one message of `bytes`.
    pub fn add(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.msgs = self.msgs.saturating_add(1);
    }

    /// Removes one message of `bytes`.
    pub fn sub(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_sub(bytes);
        self.msgs = self.msgs.saturating_sub(1);
    }
}

/// The answer to "may this message be queued now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Queue it.
    Yes,
    /// Not now: the queue, or this user's share of it, is full.
    Full,
    /// Never: larger than the share the sender could ever have.
    TooBig,
}

/// Decides whether a message of `size` bytes may join a queue holding
/// `total`, of which `user` came from the sending user.  `user` is `None`
/// for senders exempt from the fairness rule (the kernel).
///
/// A user may hold at most half of what the other users leave free:
/// `user + size <= (limit - (total - user)) / 2`, for bytes and for
/// messages alike (rounding up, so that a one-message queue is usable).
#[inline]
pub fn admit(limits: Limits, total: Usage, user: Option<Usage>, size: usize) -> Admit {
    let (share_bytes, share_msgs) = match user {
        None => (limits.bytes, limits.msgs),
        Some(_) => (limits.bytes / 2, limits.msgs.div_ceil(2)),
    };
    if size > share_bytes || share_msgs == 0 {
        return Admit::TooBig;
    }
    if total.msgs >= limits.msgs || total.bytes.saturating_add(size) > limits.bytes {
        return Admit::Full;
    }
    if let Some(user) = user {
        let others = Usage {
            bytes: total.bytes.saturating_sub(user.bytes),
            msgs: total.msgs.saturating_sub(user.msgs),
        };
        let left_bytes = limits.bytes.saturating_sub(others.bytes);
        let left_msgs = limits.msgs.saturating_sub(others.msgs);
        if user.bytes.saturating_add(size) > left_bytes / 2
            || user.msgs.saturating_add(1) > left_msgs.div_ceil(2)
        {
            return Admit::Full;
        }
    }
    Admit::Yes
}
