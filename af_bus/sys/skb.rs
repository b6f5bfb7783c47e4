// SPDX-License-Identifier: GPL-2.0

//! `struct sk_buff` (`Skb`) with the family's control block, and a socket's receive queue.

use core::ptr;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::error::to_result;
use kernel::ffi::c_int;
use kernel::ffi::c_uint;
use kernel::ffi::c_ulong;
use kernel::ffi::c_void;
use kernel::prelude::*;

use super::*;

/// A socket's receive queue (`sk_receive_queue`), owned by the state
/// behind the socket's rx lock: holding `&mut RxQueue` is holding that
/// lock, so the queue needs no lock of its own.
///
/// # Invariants
///
/// `0` is the `sk_receive_queue` of a live sock, which only this value
/// touches, and which outlives it (the value is dropped by the sock's
/// destructor).
pub(crate) struct RxQueue(pub(crate) NonNull<bindings::sk_buff_head>);

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
pub(crate) const SKB_LINEAR_MAX: usize = 16 << 10;
/// Order of the pages of a paged payload (`PAGE_ALLOC_COSTLY_ORDER`).
pub(crate) const SKB_FRAG_ORDER: c_int = 3;
/// Payload bytes one skb's fragments hold at most.
pub(crate) const SKB_FRAGS_MAX: usize =
    (bindings::MAX_SKB_FRAGS as usize) * (bindings::PAGE_SIZE << 3);

/// The family's part of `skb->cb`.
#[repr(C)]
pub(crate) struct BusCb {
    /// Sender's thread group, counted; null for kernel messages.
    pub(crate) pid: *mut bindings::pid,
    /// `SCM_RIGHTS` files in flight, or null.
    pub(crate) fp: *mut bindings::scm_fp_list,
    pub(crate) uid: bindings::kuid_t,
    pub(crate) gid: bindings::kgid_t,
    /// Bytes of metadata just before `skb->data`.
    pub(crate) meta_len: u32,
    /// Whether the receiver charged it to the sending user.
    pub(crate) charged: bool,
    /// Who the queues charge it to (see [`quota_uid`]).
    pub(crate) quota_uid: u32,
    /// The user `fp`'s files are counted in flight for (see
    /// [`Inflight`]), or `NO_CHARGE`.
    pub(crate) fp_uid: u32,
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
pub(crate) struct Skb(pub(crate) NonNull<bindings::sk_buff>);

// SAFETY: an skb may be freed from any task.
unsafe impl Send for Skb {}

impl Skb {
    /// # Safety
    ///
    /// `p` must be an skb of this family whose user the caller owns.
    pub(crate) unsafe fn from_raw(p: NonNull<bindings::sk_buff>) -> Self {
        Skb(p)
    }

    pub(crate) fn into_raw(self) -> *mut bindings::sk_buff {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }

    pub(crate) fn raw(&self) -> *mut bindings::sk_buff {
        self.0.as_ptr()
    }

    pub(crate) fn cb(&self) -> *mut BusCb {
        // SAFETY: `cb` is 48 bytes of a live skb, ours to use.
        unsafe { (&raw mut (*self.raw()).cb).cast::<BusCb>() }
    }

    pub(crate) fn init(p: *mut bindings::sk_buff, meta_len: usize) -> Result<Skb> {
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
        to_result(err)
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
    pub(crate) fn set_owner<T>(&mut self, sock: &Sock<T>) {
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
    pub(crate) fn discard<T>(self, sock: &Sock<T>, why: DropReason) {
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

    /// The credentials recorded at send time: pid, uid, gid.
    pub(crate) fn creds(&self) -> SenderCreds {
        // SAFETY: `cb` was initialised by `init`.
        unsafe {
            let cb = self.cb();
            SenderCreds {
                pid: (*cb).pid,
                uid: (*cb).uid.val,
                gid: (*cb).gid.val,
            }
        }
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
pub(crate) unsafe extern "C" fn bus_skb_destruct(skb: *mut bindings::sk_buff) {
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
pub(crate) unsafe fn wmem_charge(sk: *mut bindings::sock, n: u32) {
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
pub(crate) unsafe fn wmem_uncharge(sk: *mut bindings::sock, n: u32) {
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

/// Who sent a message, as recorded at send time: its pid (borrowed from
/// the send's cookie, the task or the skb, never counted here) and its
/// ids in the initial user namespace.
#[derive(Clone, Copy)]
pub(crate) struct SenderCreds {
    pub(crate) pid: *mut bindings::pid,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}
