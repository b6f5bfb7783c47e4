// SPDX-License-Identifier: GPL-2.0

//! Receive ring memory (`RingBuf`), its frames (`Slot`, `RingCursor`) and its mapping's `vm_operations_struct`.

use core::ptr;
use core::ptr::NonNull;
use kernel::alloc::flags::__GFP_NOWARN;
use kernel::alloc::flags::GFP_KERNEL_ACCOUNT;
use kernel::alloc::KVec;
use kernel::bindings;
use kernel::ffi::c_int;
use kernel::ffi::c_ulong;
use kernel::ffi::c_void;
use kernel::prelude::*;

use super::*;

/// The memory of a receive ring (vmalloc'ed, zeroed, so every frame
/// starts `BUS_FRAME_KERNEL`, and charged to the memory cgroup of the
/// task that set it up), shared by the socket and its mappings.
///
/// # Invariants
///
/// `mem` holds `geom.size()` bytes until drop, mapped into user space:
/// the kernel never makes a Rust reference to it but to status words
/// (atomics), and writes a frame only through raw copies by the holder
/// of its [`Slot`], while its status is `BUS_FRAME_KERNEL`.
/// `abandoned` has one flag per frame.
pub(crate) struct RingBuf {
    pub(crate) mem: NonNull<u8>,
    pub(crate) geom: crate::ring::Geometry,
    /// Live mappings (`vm_ops` open and close).
    pub(crate) mapped: core::sync::atomic::AtomicUsize,
    /// The thread group that set the ring up: senders' pids are shown in
    /// its pid namespace.  Counted.
    pub(crate) reader: *mut bindings::pid,
    /// Frames whose [`Slot`] was dropped without a commit: discarded,
    /// published by the cursor's next commit or reservation.
    pub(crate) abandoned: KVec<core::sync::atomic::AtomicBool>,
}

// SAFETY: the memory is shared with user space by design; the kernel
// side writes a frame only through its unique `Slot`, and the pid is a
// counted reference usable from any task.
unsafe impl Send for RingBuf {}
// SAFETY: see above.
unsafe impl Sync for RingBuf {}

/// The exclusive right to fill one frame, handed out by
/// [`RingCursor::reserve`] under the owning socket's rx lock.  Committed
/// by [`RingCursor::commit`]; dropped without a commit, it discards its
/// frame, which the cursor then publishes so that the reader skips it.
pub(crate) struct Slot {
    pub(crate) buf: kernel::sync::Arc<RingBuf>,
    pub(crate) i: usize,
    pub(crate) live: bool,
}

impl Slot {
    /// # Safety
    ///
    /// At most one `Slot` may exist for frame `i` at a time, and only
    /// while the frame's status is `BUS_FRAME_KERNEL`.
    pub(crate) unsafe fn new(buf: kernel::sync::Arc<RingBuf>, i: usize) -> Slot {
        Slot { buf, i, live: true }
    }

    /// The ring of the frame.
    pub(crate) fn buf(&self) -> &RingBuf {
        &self.buf
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.live {
            self.buf.discard(self.i);
            if let Some(a) = self.buf.abandoned.get(self.i) {
                a.store(true, core::sync::atomic::Ordering::Release);
            }
        }
    }
}

/// Where the kernel is in a receive ring; lives behind the owning
/// socket's rx lock.
///
/// # Invariants
///
/// Frames `tail..head` (modulo the ring), `reserved` of them, are the ones
/// a [`Slot`] exists for (or existed, abandoned); `done[i]` says frame
/// `i`'s slot was committed.  Frames `reclaim..tail`, `published` of
/// them, were handed to the reader and not yet seen back; `charge[i]` is
/// the user frame `i` is charged to.  `head` is `reclaim + published +
/// reserved`.  Frames are published strictly from `tail` on, so they
/// become visible in delivery order.
pub(crate) struct RingCursor {
    pub(crate) buf: kernel::sync::Arc<RingBuf>,
    pub(crate) head: usize,
    pub(crate) tail: usize,
    pub(crate) reclaim: usize,
    pub(crate) reserved: usize,
    pub(crate) published: usize,
    pub(crate) done: KVec<bool>,
    pub(crate) charge: KVec<u32>,
}

impl RingCursor {
    /// A cursor at the start of a fresh ring.
    pub(crate) fn new(buf: kernel::sync::Arc<RingBuf>) -> Result<RingCursor> {
        let frames = buf.geometry().frames();
        let gfp = GFP_KERNEL_ACCOUNT | __GFP_NOWARN;
        let mut done = KVec::with_capacity(frames, gfp)?;
        let mut charge = KVec::with_capacity(frames, gfp)?;
        for _ in 0..frames {
            done.push(false, gfp)?;
            charge.push(NO_CHARGE, gfp)?;
        }
        // INVARIANT: no slot exists yet, nothing is published.
        Ok(RingCursor {
            buf,
            head: 0,
            tail: 0,
            reclaim: 0,
            reserved: 0,
            published: 0,
            done,
            charge,
        })
    }

    /// The frame after frame `i`, wrapping (no division: `frames` is never
    /// zero, which the compiler cannot know).
    pub(crate) fn next(&self, i: usize) -> usize {
        if i + 1 >= self.buf.geometry().frames() {
            0
        } else {
            i + 1
        }
    }

    /// The ring.
    pub(crate) fn ring(&self) -> &kernel::sync::Arc<RingBuf> {
        &self.buf
    }

    /// The oldest frame handed to the reader and not seen back, if any:
    /// the one a sender waiting for room marks (`RingBuf::wait_for`).
    pub(crate) fn oldest_published(&self) -> Option<usize> {
        (self.published > 0).then_some(self.reclaim)
    }

    /// Whether a sender is filling a frame.
    pub(crate) fn busy(&self) -> bool {
        self.reserved > 0
    }

    /// Whether the last published frame is still the reader's.
    pub(crate) fn ready(&self) -> bool {
        let frames = self.buf.geometry().frames();
        let last = if self.tail == 0 {
            frames - 1
        } else {
            self.tail - 1
        };
        self.buf.is_ready(last)
    }

    /// Whether `reserve` would find a frame now.
    pub(crate) fn has_room(&self) -> bool {
        self.reserved + self.published < self.buf.geometry().frames() && self.buf.is_free(self.head)
    }

    /// The user charged for the oldest published frame, once the reader
    /// has handed it back; `None` while it has not.
    pub(crate) fn reclaim(&mut self) -> Option<u32> {
        if self.published == 0 || !self.buf.is_free(self.reclaim) {
            return None;
        }
        let uid = self.charge[self.reclaim];
        // INVARIANT: the frame leaves `reclaim..tail`.
        self.reclaim = self.next(self.reclaim);
        self.published -= 1;
        Some(uid)
    }

    /// Reserves the next frame, charged to `uid`, unless the ring is full.
    pub(crate) fn reserve(&mut self, uid: u32) -> Option<Slot> {
        self.publish_ready();
        if !self.has_room() {
            return None;
        }
        // SAFETY: frame `head` is free and outside `tail..head`, so no slot
        // exists for it (type invariant).
        let slot = unsafe { Slot::new(self.buf.clone(), self.head) };
        self.charge[self.head] = uid;
        // INVARIANT: `head` advances over the frame its slot now holds.
        self.head = self.next(self.head);
        self.reserved += 1;
        Some(slot)
    }

    /// Gives back the frame of `slot`, never filled, if no frame was
    /// reserved after it (and uncharges it: returns the user it was
    /// charged to); else discards it (`None`).
    pub(crate) fn cancel(&mut self, mut slot: Slot) -> Option<u32> {
        if self.next(slot.i) != self.head {
            self.commit(slot, false);
            return None;
        }
        slot.live = false;
        // INVARIANT: the last reservation is undone.
        self.head = slot.i;
        self.reserved -= 1;
        Some(self.charge[slot.i])
    }

    /// Commits a filled slot (discarding the frame if `ok` is false) and
    /// publishes every frame that is ready, in order.
    pub(crate) fn commit(&mut self, mut slot: Slot, ok: bool) {
        if !ok {
            self.buf.discard(slot.i);
        }
        slot.live = false;
        self.done[slot.i] = true;
        drop(slot);
        self.publish_ready();
    }

    /// Publishes the frames from `tail` on whose slots were committed or
    /// abandoned.
    pub(crate) fn publish_ready(&mut self) {
        while self.reserved > 0 {
            let t = self.tail;
            let abandoned =
                self.buf.abandoned[t].swap(false, core::sync::atomic::Ordering::Acquire);
            if !self.done[t] && !abandoned {
                break;
            }
            self.done[t] = false;
            self.buf.publish(t);
            // INVARIANT: the frame moves from `tail..head` to
            // `reclaim..tail`.
            self.tail = self.next(t);
            self.reserved -= 1;
            self.published += 1;
        }
    }
}

impl RingBuf {
    /// Allocates a ring of `geom`, its pids shown to the calling task.
    pub(crate) fn new(geom: crate::ring::Geometry) -> Result<kernel::sync::Arc<RingBuf>> {
        // Zeroed (user space maps it), charged to the caller's memory
        // cgroup, and quiet on failure: the size is the caller's choice.
        let gfp = bindings::GFP_KERNEL_ACCOUNT | bindings::__GFP_ZERO | bindings::__GFP_NOWARN;
        let kgfp = GFP_KERNEL_ACCOUNT | __GFP_NOWARN;
        let mut abandoned = KVec::with_capacity(geom.frames(), kgfp)?;
        for _ in 0..geom.frames() {
            abandoned.push(core::sync::atomic::AtomicBool::new(false), kgfp)?;
        }
        // SAFETY: plain allocation.
        let mem = unsafe { bindings::__vmalloc_noprof(geom.size() as c_ulong, gfp) };
        let mem = NonNull::new(mem.cast::<u8>()).ok_or(ENOMEM)?;
        // SAFETY: the current task's thread group pid, counted.
        let reader = unsafe { bindings::get_pid(bindings::task_tgid(bindings::get_current())) };
        let ring = RingBuf {
            mem,
            geom,
            mapped: core::sync::atomic::AtomicUsize::new(0),
            reader,
            abandoned,
        };
        // On failure `ring` is dropped, freeing both.
        Ok(kernel::sync::Arc::new(ring, kgfp)?)
    }

    /// The layout.
    pub(crate) fn geometry(&self) -> crate::ring::Geometry {
        self.geom
    }

    /// Counts one more mapping; the caller holds the owner's rx lock.
    pub(crate) fn map(&self) {
        self.mapped
            .fetch_add(1, core::sync::atomic::Ordering::AcqRel);
    }

    /// Whether user space has it mapped.
    pub(crate) fn is_mapped(&self) -> bool {
        self.mapped.load(core::sync::atomic::Ordering::Acquire) > 0
    }

    /// The status word of frame `i`, read as `READ_ONCE` with acquire
    /// ordering (the reader writes it at any time, so no reference to it
    /// is ever made).
    pub(crate) fn load_status(&self, i: usize) -> u32 {
        // SAFETY: frame `i` starts 16-byte aligned inside `mem` (type
        // invariant); a volatile read of user-shared memory makes no claim
        // about what else accesses it.
        let v = unsafe { ptr::read_volatile(self.frame_ptr(i).cast::<u32>()) };
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
        v
    }

    /// Whether frame `i` is the kernel's (acquire ordering, pairing with
    /// the reader's release store).
    pub(crate) fn is_free(&self, i: usize) -> bool {
        self.load_status(i) == crate::uapi::BUS_FRAME_KERNEL
    }

    /// Whether frame `i` is the reader's.
    pub(crate) fn is_ready(&self, i: usize) -> bool {
        self.load_status(i) == crate::uapi::BUS_FRAME_USER
    }

    /// Hands frame `i` to the reader (release ordering: its contents are
    /// visible before its status).
    pub(crate) fn publish(&self, i: usize) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        // SAFETY: as in `load_status`; `WRITE_ONCE` of the status word.
        unsafe {
            ptr::write_volatile(self.frame_ptr(i).cast::<u32>(), crate::uapi::BUS_FRAME_USER)
        };
    }

    /// Tells the reader that a sender waits for frame `i` (its `waiting`
    /// word), then looks whether it was handed back meanwhile.  The full
    /// barrier between the two pairs with the reader's between handing
    /// the frame back and reading `waiting` (`bus_frame_release`): either
    /// the reader sees the mark and wakes us, or we see the frame free.
    pub(crate) fn wait_for(&self, i: usize) -> bool {
        let at = self
            .frame_ptr(i)
            .wrapping_add(crate::ring::FRAME_WAITING_OFFSET);
        // SAFETY: frame `i` is published, so the kernel writes nothing else in
        // it until it comes back; `WRITE_ONCE` of an aligned word it holds.
        unsafe { ptr::write_volatile(at.cast::<u32>(), 1) };
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.is_free(i)
    }

    /// Where frame `i` starts.
    pub(crate) fn frame_ptr(&self, i: usize) -> *mut u8 {
        // SAFETY: `offset(i)` of a frame index is inside the allocation
        // (type invariant and `Geometry`).
        unsafe { self.mem.as_ptr().add(self.geom.offset(i)) }
    }

    /// Writes the header of frame `i`, all but its status word.
    pub(crate) fn write_header(&self, i: usize, info: &crate::ring::FrameInfo<'_>) {
        let hdr = crate::ring::header(info);
        // SAFETY: the caller holds frame `i`'s slot (or is discarding
        // it): the bytes after the status word are ours to write; a raw
        // copy, since the reader may scribble on them.
        unsafe {
            ptr::copy_nonoverlapping(hdr.as_ptr().add(4), self.frame_ptr(i).add(4), hdr.len() - 4)
        };
    }

    /// Fills the frame of `slot`: header, then the payload from the
    /// sender's iovec (with page faults disabled: `false`, and the iovec
    /// left as it was, if it is not all in memory) or from an skb.
    pub(crate) fn fill(
        &self,
        slot: &Slot,
        info: &crate::ring::FrameInfo<'_>,
        from: FrameSource<'_, '_>,
    ) -> bool {
        let len = info.len as usize;
        if len > self.geom.payload_max() {
            return false;
        }
        self.write_header(slot.i, info);
        // SAFETY: the payload area of the slot's frame, `len` bytes of it
        // (checked above), is ours to write.
        let to = unsafe { self.frame_ptr(slot.i).add(crate::ring::FRAME_HDR_LEN) };
        match from {
            FrameSource::Msg(msg) => msg.copy_nofault(to, len),
            FrameSource::Skb(skb) => skb.copy_to(to, len),
        }
    }

    /// Fills the header of the frame of `slot` for a message that waits in
    /// the queue (`BUS_FRAME_F_QUEUED`, no payload).
    pub(crate) fn mark(&self, slot: &Slot, info: &crate::ring::FrameInfo<'_>) {
        self.write_header(slot.i, info);
    }

    /// Marks frame `i` as carrying no message (a failed copy), so that the
    /// reader skips it.
    pub(crate) fn discard(&self, i: usize) {
        let words = [
            0u32.to_ne_bytes(),
            crate::uapi::BUS_FRAME_F_DISCARDED.to_ne_bytes(),
        ];
        let f = self.frame_ptr(i);
        // SAFETY: frame `i` is held by a slot being committed or dropped: its
        // `len`, `flags` and `waiting` words are ours to write (raw copies).
        unsafe {
            ptr::copy_nonoverlapping(words[0].as_ptr(), f.add(crate::uapi::frame::LEN), 4);
            ptr::copy_nonoverlapping(words[1].as_ptr(), f.add(crate::uapi::frame::FLAGS), 4);
            ptr::copy_nonoverlapping(words[0].as_ptr(), f.add(crate::uapi::frame::WAITING), 4);
        }
    }

    /// The sender's credentials as the ring's reader sees them.
    pub(crate) fn creds_for_reader<T>(&self, sender: SenderCreds, sock: &Sock<T>) -> ReaderCreds {
        let SenderCreds { pid, uid, gid } = sender;
        // SAFETY: `reader` is a counted pid whose namespaces it pins; the
        // receiving socket is live and not yet released (callers hold its
        // rx lock and checked), so its file's credentials are.
        unsafe {
            let level = (*self.reader).level as usize;
            let ns = (*(*self.reader).numbers.as_ptr().add(level)).ns;
            let nr = if pid.is_null() {
                0
            } else {
                bindings::pid_nr_ns(pid, ns)
            };
            // A kernel socket has no file: show the ids as the initial
            // namespace has them.
            let socket = (*sock.sk()).sk_socket;
            let file = if socket.is_null() {
                ptr::null_mut()
            } else {
                (*socket).file
            };
            let user_ns = if file.is_null() {
                &raw mut bindings::init_user_ns
            } else {
                (*(*file).f_cred).user_ns
            };
            ReaderCreds {
                pid: nr,
                uid: bindings::from_kuid_munged(user_ns, bindings::kuid_t { val: uid }),
                gid: bindings::from_kgid_munged(user_ns, bindings::kgid_t { val: gid }),
            }
        }
    }

    /// Maps every page of the ring into `vma`, as `remap_vmalloc_range`
    /// does for `vmalloc_user` memory (which cannot be charged to a
    /// memory cgroup).  Returns 0 or a negative errno.
    ///
    /// # Safety
    ///
    /// `vma` is a mapping being set up by `mmap`, with the mm's lock held,
    /// exactly `self.geom.size()` bytes long.
    pub(crate) unsafe fn insert_pages(&self, vma: *mut bindings::vm_area_struct) -> c_int {
        let page = bindings::PAGE_SIZE;
        // SAFETY: the caller's contract: `vma` is ours to fill.
        let start = unsafe { (*vma).__bindgen_anon_1.__bindgen_anon_1.vm_start };
        let mut off = 0;
        while off < self.geom.size() {
            // SAFETY: `off` is inside the allocation (type invariant); the
            // page is the vmalloc'ed one, and `vm_insert_page` takes its
            // own reference for the mapping.
            let err = unsafe {
                let p = bindings::vmalloc_to_page(self.mem.as_ptr().add(off).cast::<c_void>());
                bindings::vm_insert_page(vma, start + off as c_ulong, p)
            };
            if err != 0 {
                return err;
            }
            off += page;
        }
        // SAFETY: `vma` is being set up under the mm's write lock (the
        // caller's contract), as `vm_flags_set` requires; these are the
        // flags `remap_vmalloc_range` sets.
        unsafe {
            bindings::vm_flags_set(
                vma,
                (bindings::VM_DONTEXPAND | bindings::VM_DONTDUMP) as bindings::vm_flags_t,
            )
        };
        0
    }
}

impl Drop for RingBuf {
    fn drop(&mut self) {
        // SAFETY: no mapping is left (each holds a reference), and the
        // allocation and pid reference are ours.
        unsafe {
            bindings::vfree(self.mem.as_ptr().cast::<c_void>());
            bindings::put_pid(self.reader);
        }
    }
}

/// Where a frame's payload comes from.
pub(crate) enum FrameSource<'a, 'b> {
    /// The sender's iovec: the one copy.
    Msg(&'a mut Msg<'b>),
    /// A message already in an skb (multicast to several rings).
    Skb(&'a Skb),
}

/// A sender's credentials as the reader of a ring sees them.
#[derive(Clone, Copy)]
pub(crate) struct ReaderCreds {
    pub(crate) pid: i32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// # Safety
///
/// Called by the mm when a mapping of a ring is duplicated.
pub(crate) unsafe extern "C" fn bus_ring_vm_open(vma: *mut bindings::vm_area_struct) {
    // SAFETY: `vm_private_data` is a ring reference made by `bus_mmap`,
    // copied into this new mapping (fork, split), which takes its own.
    unsafe {
        let ring = (*vma).vm_private_data as *const RingBuf;
        let held = core::mem::ManuallyDrop::new(kernel::sync::Arc::from_raw(ring));
        let _ = kernel::sync::Arc::into_raw((*held).clone());
        (*ring)
            .mapped
            .fetch_add(1, core::sync::atomic::Ordering::AcqRel);
    }
}

/// # Safety
///
/// Called by the mm when a mapping of a ring goes.
pub(crate) unsafe extern "C" fn bus_ring_vm_close(vma: *mut bindings::vm_area_struct) {
    // SAFETY: drops the reference `bus_mmap` or `bus_ring_vm_open` took.
    unsafe {
        let ring = (*vma).vm_private_data as *const RingBuf;
        (*ring)
            .mapped
            .fetch_sub(1, core::sync::atomic::Ordering::AcqRel);
        drop(kernel::sync::Arc::from_raw(ring));
    }
}

pub(crate) static BUS_RING_VM_OPS: CStatic<bindings::vm_operations_struct> =
    CStatic::new(bindings::vm_operations_struct {
        open: Some(bus_ring_vm_open),
        close: Some(bus_ring_vm_close),
        // SAFETY: all-zero is a valid `struct vm_operations_struct`.
        ..unsafe { core::mem::zeroed() }
    });
