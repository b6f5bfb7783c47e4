// SPDX-License-Identifier: GPL-2.0

//! The family's state of one socket: its role on a bus, its receive
//! queue, and the send and receive paths.

use core::sync::atomic::{AtomicBool, Ordering};
use kernel::bindings;
use kernel::error::{code::*, Result};
use kernel::ffi::c_long;
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNodeReservation};
use kernel::sync::{Arc, CondVar, CondVarTimeoutResult, Mutex, UniqueArc};
use kernel::types::ARef;
use kernel::{new_condvar, new_mutex};

use crate::addr::{encode_unattached, AddrPart, BusAddr};
use crate::bus::{Bus, Delivery};
use crate::cmsg::BusCmsgs;
use crate::quota::{admit, Admit, Limits, Usage};
use crate::ring::{FrameInfo, Geometry};
use crate::socket::{
    errno, BusSock, FrameSource, Msg, RingBuf, RingCursor, RxQueue, Scm, Skb, Slot,
};
use crate::uapi::{BUS_FRAME_F_MULTICAST, SCM_DST_ADDR, SOCKADDR_BUS_SIZE, SOL_BUS};

/// Most distinct sending users a receive queue accounts separately;
/// messages from further users are refused as if the queue were full.
const MAX_QUEUE_USERS: usize = 64;

/// What a socket is on its bus.
enum Role {
    /// Not on any bus.
    Unattached,
    /// Pending or member of a bus (the bus knows which).
    Endpoint(Arc<Bus>),
    /// The master of a bus.
    Master(Arc<Bus>),
}

/// The last route of a unicast without grants or a source address
/// that this socket sent: good while its bus's route generation has not
/// moved.
struct CachedRoute {
    routes: u64,
    dst: AddrPart,
    src: AddrPart,
    receiver: ARef<BusSock>,
}

/// State of an endpoint behind [`Endpoint::inner`].
struct EndpointInner {
    role: Role,
    /// Saves the bus lock and the table walks when a socket sends to the
    /// same address again, as a client and a service do.  It holds a
    /// reference on the receiving socket (not its queue or ring, which
    /// its release frees) until it is found stale, replaced or released.
    route: Option<CachedRoute>,
}

/// The receive side, behind [`Endpoint::rx`].
struct RxState {
    /// The skbs (`sk_receive_queue`, which only this lock protects).
    queue: RxQueue,
    total: Usage,
    /// Per sending uid, for the fairness rule.
    users: RBTree<u32, Usage>,
    /// The socket is released: nothing more is queued.
    closed: bool,
    /// Its bus died: every call fails with `ECONNRESET`.
    dead: bool,
    /// Notifications lost because the master's queue was full.
    notify_dropped: u64,
    /// A multicast copy was dropped: the next `recvmsg` fails once with
    /// `ENOBUFS` (unless `no_enobufs`).
    overrun: bool,
    /// `BUS_NO_ENOBUFS`.
    no_enobufs: bool,
    /// The receive ring, if set up.
    ring: Option<RingCursor>,
    /// Senders waiting on `writers` for room here.
    waiters: usize,
    /// The socket's bus once it has one (also in `inner`), for the
    /// receive path, which holds this lock anyway.
    bus: Option<Arc<Bus>>,
}

/// What a reservation in a receive ring came to.
enum Reserve {
    /// The receiver has no ring: use its queue.
    NoRing,
    /// A frame to fill, the ring, and the sender's credentials as the
    /// reader sees them.
    Frame(Slot, Arc<RingBuf>, (i32, u32, u32)),
    /// The ring is full.
    Full,
}

/// The family's part of a socket.
#[pin_data]
pub(crate) struct Endpoint {
    #[pin]
    inner: Mutex<EndpointInner>,
    #[pin]
    rx: Mutex<RxState>,
    /// Senders waiting for room in this socket's receive queue.
    #[pin]
    writers: CondVar,
    /// Whether a receive ring was ever set up: lets a unicast sender skip
    /// the rx lock of a receiver that has none.  Only a hint, written
    /// under the rx lock and never cleared: a sender that misses a ring
    /// just set up queues an skb, which `enqueue` moves into the ring.
    ring_ever: AtomicBool,
}

impl Endpoint {
    pub(crate) fn new(queue: RxQueue) -> impl PinInit<Self> {
        pin_init!(Endpoint {
            inner <- new_mutex!(
                EndpointInner {
                    role: Role::Unattached,
                    route: None,
                },
                "BusSock::inner"
            ),
            rx <- new_mutex!(
                RxState {
                    queue,
                    total: Usage::default(),
                    users: RBTree::new(),
                    closed: false,
                    dead: false,
                    notify_dropped: 0,
                    overrun: false,
                    no_enobufs: false,
                    ring: None,
                    waiters: 0,
                    bus: None,
                },
                "BusSock::rx"
            ),
            writers <- new_condvar!("BusSock::writers"),
            ring_ever: AtomicBool::new(false),
        })
    }

    fn bus(&self) -> Option<Arc<Bus>> {
        match &self.inner.lock().role {
            Role::Unattached => None,
            Role::Endpoint(bus) | Role::Master(bus) => Some(bus.clone()),
        }
    }

    /// The socket's primary address in the fixed layout.
    pub(crate) fn name(&self, sock: &BusSock) -> [u8; SOCKADDR_BUS_SIZE] {
        match self.bus() {
            None => encode_unattached(),
            Some(bus) => match bus.primary(sock) {
                Some((primary, _, _)) => bus.addr(primary).encode(),
                // Dropped by its dead bus: the handle is gone too.
                None => BusAddr::kernel(*bus.path()).encode(),
            },
        }
    }

    /// Role, bus, handle and owned-address count, for `/proc/net/bus`.
    pub(crate) fn describe(
        &self,
        sock: &BusSock,
    ) -> (&'static str, Option<Arc<Bus>>, Option<AddrPart>, usize) {
        let (is_master, bus) = match &self.inner.lock().role {
            Role::Unattached => return ("unattached", None, None, 0),
            Role::Endpoint(bus) => (false, bus.clone()),
            Role::Master(bus) => (true, bus.clone()),
        };
        match bus.primary(sock) {
            _ if is_master => ("master", Some(bus), None, 1),
            Some((_, handle, 0)) => ("pending", Some(bus), handle, 0),
            Some((_, handle, n)) => ("member", Some(bus), handle, n),
            None => ("dead", Some(bus), None, 0),
        }
    }

    /// Messages queued and lost, for `/proc/net/bus`.
    pub(crate) fn queue_stats(&self) -> (usize, u64) {
        let rx = self.rx.lock();
        (rx.total.msgs, rx.notify_dropped)
    }

    /// `bind()`: makes the socket the master of a new bus.
    pub(crate) fn bind(&self, sock: &BusSock, addr: &BusAddr) -> Result {
        // Allocate, and create the inode, before taking our lock.
        let slot = UniqueArc::<Bus>::new_uninit(GFP_KERNEL)?;
        let reservation = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let (key, node) = crate::bus::create(sock, addr)?;
        let mut inner = self.inner.lock();
        match inner.role {
            Role::Unattached => {}
            Role::Master(_) => return Err(EINVAL),
            Role::Endpoint(_) => return Err(errno::eisconn()),
        }
        let bus = crate::bus::register(sock, addr, key, node, slot, reservation)?;
        self.rx.lock().bus = Some(bus.clone());
        inner.role = Role::Master(bus);
        Ok(())
    }

    /// The bus a send to `dst` goes over, joining it as a pending
    /// endpoint on the first send to its master; with `cached`, also the
    /// route this socket last took to `dst` if it still holds.
    #[allow(clippy::type_complexity)]
    fn attach(
        &self,
        sock: &BusSock,
        dst: &BusAddr,
        cached: bool,
    ) -> Result<(Arc<Bus>, Option<(AddrPart, ARef<BusSock>)>)> {
        let mut inner = self.inner.lock();
        match &inner.role {
            Role::Endpoint(bus) | Role::Master(bus) => {
                if !bus.is_named(sock, &dst.path)? {
                    return Err(errno::eisconn());
                }
                let bus = bus.clone();
                let routes = bus.routes();
                let stale = inner.route.as_ref().is_some_and(|r| r.routes != routes);
                let old = if stale { inner.route.take() } else { None };
                let hit = inner
                    .route
                    .as_ref()
                    .filter(|r| cached && r.dst == dst.addr)
                    .map(|r| (r.src, r.receiver.clone()));
                drop(inner);
                // A route that no longer holds lets go of its receiver.
                drop(old);
                Ok((bus, hit))
            }
            Role::Unattached => {
                let bus = crate::registry().find(sock, &dst.path)?;
                if dst.addr != bus.master_addr().addr {
                    return Err(EACCES);
                }
                bus.join(sock)?;
                self.rx.lock().bus = Some(bus.clone());
                inner.role = Role::Endpoint(bus.clone());
                Ok((bus, None))
            }
        }
    }

    /// Remembers the route of a unicast to `dst` (see [`CachedRoute`]).
    fn cache_route(&self, routes: u64, dst: &BusAddr, src: AddrPart, receiver: &ARef<BusSock>) {
        let old = self.inner.lock().route.replace(CachedRoute {
            routes,
            dst: dst.addr,
            src,
            receiver: receiver.clone(),
        });
        // The socket it held, if the last reference, is freed unlocked.
        drop(old);
    }

    /// Leaves the bus as the socket closes: an endpoint releases its
    /// addresses and its master hears of it; a master takes its bus down.
    pub(crate) fn release(&self, sock: &BusSock) {
        let (role, route) = {
            let mut inner = self.inner.lock();
            (
                core::mem::replace(&mut inner.role, Role::Unattached),
                inner.route.take(),
            )
        };
        drop(route);
        match role {
            Role::Unattached => {}
            Role::Endpoint(bus) => {
                if let Some((master, addrs)) = bus.leave(sock) {
                    let mut bytes = KVec::new();
                    let sent = addrs.is_some_and(|addrs| {
                        let len = crate::notify::gone_len(addrs.len());
                        let ok = bytes.extend_with(len, 0u8, GFP_KERNEL).is_ok();
                        if ok {
                            crate::notify::write_gone(&mut bytes, &addrs);
                        }
                        ok
                    });
                    if sent {
                        master.endpoint().notify(&master, &bus, &bytes);
                    } else {
                        // No memory for the news: the master learns that
                        // it lost some (BUS_NOTIFY_OVERFLOW).
                        master.endpoint().rx.lock().notify_dropped += 1;
                        master.wake_readers(bindings::EPOLLIN | bindings::EPOLLRDNORM);
                    }
                }
            }
            Role::Master(bus) => {
                crate::registry().remove_bus(&bus);
                for member in bus.kill().iter() {
                    member.endpoint().die(member);
                }
            }
        }
        // Nothing more is queued; free what is, and let blocked senders
        // find the receiver gone.
        // The ring goes too: a sender that still holds a route here only
        // keeps the socket itself (a mapping keeps its own reference).
        let (queued, bus, ring) = {
            let mut rx = self.rx.lock();
            rx.closed = true;
            (Self::drain(&mut rx), rx.bus.take(), rx.ring.take())
        };
        drop(queued);
        drop(bus);
        drop(ring);
        self.writers.notify_all();
    }

    /// Takes every queued message out, to be freed by the caller after
    /// the lock is dropped.
    fn drain(rx: &mut RxState) -> KVec<Skb> {
        let mut out = KVec::new();
        while let Some(skb) = rx.queue.pop() {
            // Without room to defer it, `push` frees it here (a mutex,
            // not a spinlock, is held).
            let _ = out.push(skb, GFP_KERNEL);
        }
        rx.total = Usage::default();
        rx.users = RBTree::new();
        out
    }

    /// The bus died under this member.
    pub(crate) fn die(&self, sock: &BusSock) {
        let queued = {
            let mut rx = self.rx.lock();
            rx.dead = true;
            Self::drain(&mut rx)
        };
        drop(queued);
        sock.shutdown_rx();
        sock.wake_readers(bindings::EPOLLIN | bindings::EPOLLERR | bindings::EPOLLHUP);
        self.writers.notify_all();
    }

    fn limits(sock: &BusSock) -> Limits {
        Limits {
            bytes: sock.rcvbuf(),
            msgs: crate::params::MAX_QUEUE_MSGS.get(),
        }
    }

    /// Whether a message of `size` bytes from `uid` may be queued now.
    /// `fair` applies the rule that one user may fill at most half of
    /// what the others leave.
    fn admission(sock: &BusSock, rx: &RxState, uid: u32, size: usize, fair: bool) -> Admit {
        let user = if fair {
            match rx.users.get(&uid) {
                Some(u) => Some(*u),
                // Too many users with messages queued: wait for one to
                // leave.  (Idle entries are pruned when a user is added.)
                None if rx.users.values().filter(|u| u.msgs > 0).count() >= MAX_QUEUE_USERS => {
                    return Admit::Full
                }
                None => Some(Usage::default()),
            }
        } else {
            None
        };
        admit(Self::limits(sock), rx.total, user, size)
    }

    /// Queues `skb` unless the queue is full.  A message the socket's
    /// filter drops counts as delivered.
    pub(crate) fn enqueue(
        &self,
        sock: &ARef<BusSock>,
        mut skb: Skb,
        fair: bool,
        filter: bool,
    ) -> Result<Delivery> {
        if filter && !sock.filter(&mut skb) {
            return Ok(Delivery::Queued);
        }
        let size = skb.truesize();
        let uid = skb.sender_uid();
        let mut rx = self.rx.lock();
        if rx.dead {
            return Err(errno::econnreset());
        }
        if rx.closed {
            return Err(errno::ehostunreach());
        }
        if rx.ring.is_some() && Self::ring_eligible(&skb) {
            let reserved = Self::reserve_locked(&mut rx, sock, skb.len(), skb.creds())?;
            // The bus as this lock has it: no role lock needed, and none
            // taken under a caller's bus lock.
            let bus = rx.bus.clone();
            drop(rx);
            return self.skb_to_ring(sock, bus, reserved, skb);
        }
        match Self::admission(sock, &rx, uid, size, fair) {
            Admit::TooBig => return Err(errno::emsgsize()),
            Admit::Full => return Ok(Delivery::Full(skb, sock.clone())),
            Admit::Yes => {}
        }
        if fair {
            match rx.users.get_mut(&uid) {
                Some(u) => u.add(size),
                None => {
                    Self::prune_idle_users(&mut rx);
                    let mut u = Usage::default();
                    u.add(size);
                    rx.users.try_create_and_insert(uid, u, GFP_KERNEL)?;
                }
            }
        }
        rx.total.add(size);
        skb.set_charged(fair);
        skb.set_dropcount(sock.drops());
        rx.queue.push(skb);
        drop(rx);
        sock.wake_readers(bindings::EPOLLIN | bindings::EPOLLRDNORM);
        Ok(Delivery::Queued)
    }

    /// Forgets the users with nothing queued, once there are too many to
    /// keep.  Users stay accounted while idle, so that a steady sender
    /// costs no allocation per message.
    fn prune_idle_users(rx: &mut RxState) {
        if rx.users.iter().count() < MAX_QUEUE_USERS {
            return;
        }
        let mut idle = [0u32; MAX_QUEUE_USERS];
        let mut n = 0;
        for (uid, u) in rx.users.iter() {
            if u.msgs == 0 && n < idle.len() {
                idle[n] = *uid;
                n += 1;
            }
        }
        for uid in &idle[..n] {
            rx.users.remove(uid);
        }
    }

    /// Gives a message's charge back once it leaves the queue.
    fn uncharge(rx: &mut RxState, skb: &Skb) {
        let size = skb.truesize();
        let uid = skb.sender_uid();
        rx.total.sub(size);
        if !skb.charged() {
            return;
        }
        if let Some(u) = rx.users.get_mut(&uid) {
            u.sub(size);
        }
    }

    /// Queues a kernel notification for this master, or counts it lost.
    fn notify(&self, sock: &ARef<BusSock>, bus: &Bus, bytes: &[u8]) {
        let mut skb = match Skb::alloc_kernel(crate::meta::len(0), bytes.len()) {
            Ok(skb) => skb,
            Err(_) => {
                self.rx.lock().notify_dropped += 1;
                sock.wake_readers(bindings::EPOLLIN | bindings::EPOLLRDNORM);
                return;
            }
        };
        skb.put_bytes(bytes);
        let meta = crate::meta::Meta {
            src: AddrPart::KERNEL,
            dst: bus.master_addr().addr,
            flags: 0,
        };
        crate::meta::write(skb.meta_mut(), &meta, core::iter::empty());
        match self.enqueue(sock, skb, false, true) {
            Ok(Delivery::Queued) => {}
            Ok(Delivery::Full(skb, _)) => {
                self.rx.lock().notify_dropped += 1;
                drop(skb);
                sock.wake_readers(bindings::EPOLLIN | bindings::EPOLLRDNORM);
            }
            Err(e) if e == errno::emsgsize() => {
                self.rx.lock().notify_dropped += 1;
                sock.wake_readers(bindings::EPOLLIN | bindings::EPOLLRDNORM);
            }
            // The master is closing.
            Err(_) => {}
        }
    }

    /// `BUS_RX_RING`: sets up (or, with `{0, 0}`, removes) the receive
    /// ring.  `EBUSY` while the current one is mapped or being filled.
    pub(crate) fn set_ring(&self, _sock: &BusSock, frame_size: u32, frame_nr: u32) -> Result {
        let geom = Geometry::new(frame_size, frame_nr, bindings::PAGE_SIZE).map_err(|_| EINVAL)?;
        let new = match geom {
            None => None,
            Some(geom) => Some(RingCursor::new(RingBuf::new(geom)?)?),
        };
        let old = {
            let mut rx = self.rx.lock();
            if let Some(cur) = &rx.ring {
                if cur.ring().is_mapped() || cur.busy() {
                    return Err(EBUSY);
                }
            }
            if new.is_some() {
                self.ring_ever.store(true, Ordering::Relaxed);
            }
            core::mem::replace(&mut rx.ring, new)
        };
        // Freed unlocked (`vfree` may sleep).
        drop(old);
        Ok(())
    }

    /// The receive ring, counted as mapped (under the lock that
    /// `set_ring` checks that count under), for `mmap`.
    pub(crate) fn map_ring(&self) -> Option<Arc<RingBuf>> {
        let rx = self.rx.lock();
        let buf = rx.ring.as_ref()?.ring().clone();
        buf.map();
        Some(buf)
    }

    /// Reserves the next frame of this socket's ring for `len` bytes.
    fn reserve(
        &self,
        sock: &BusSock,
        len: usize,
        creds: (*mut bindings::pid, u32, u32),
    ) -> Result<Reserve> {
        let mut rx = self.rx.lock();
        if rx.dead {
            return Err(errno::econnreset());
        }
        if rx.closed {
            return Err(errno::ehostunreach());
        }
        Self::reserve_locked(&mut rx, sock, len, creds)
    }

    /// [`Endpoint::reserve`], with the rx lock held.
    fn reserve_locked(
        rx: &mut RxState,
        sock: &BusSock,
        len: usize,
        creds: (*mut bindings::pid, u32, u32),
    ) -> Result<Reserve> {
        let cur = match rx.ring.as_mut() {
            None => return Ok(Reserve::NoRing),
            Some(cur) => cur,
        };
        if len > cur.ring().geometry().payload_max() {
            return Err(errno::emsgsize());
        }
        Ok(match cur.reserve() {
            None => Reserve::Full,
            Some(slot) => {
                let creds = cur.ring().creds_for_reader(creds, sock);
                Reserve::Frame(slot, cur.ring().clone(), creds)
            }
        })
    }

    /// Whether a message may go into a ring: not one carrying files or
    /// grants, which need the queue's control messages.
    fn ring_eligible(skb: &Skb) -> bool {
        !skb.has_files() && crate::meta::grants(skb.meta()).next().is_none()
    }

    /// Marks a reserved frame filled (or, if `ok` is false, discarded) and
    /// publishes every frame that is ready, in order.
    fn commit(&self, sock: &BusSock, slot: Slot, ok: bool) {
        if let Some(cur) = self.rx.lock().ring.as_mut() {
            // The ring cannot change while a frame is reserved.
            cur.commit(slot, ok);
        }
        sock.wake_readers(bindings::EPOLLIN | bindings::EPOLLRDNORM);
    }

    /// Fills a reserved frame and commits it (discarded if the copy
    /// fails, so that the reader is never left waiting on it).
    #[allow(clippy::too_many_arguments)]
    fn write_frame(
        &self,
        sock: &BusSock,
        mut slot: Slot,
        buf: &RingBuf,
        (pid, uid, gid): (i32, u32, u32),
        (src, dst): &([u8; SOCKADDR_BUS_SIZE], [u8; SOCKADDR_BUS_SIZE]),
        len: usize,
        flags: u32,
        from: FrameSource<'_, '_>,
    ) -> Result {
        let info = FrameInfo {
            // Bounded by the frame size, itself below 64 MiB.
            len: len as u32,
            flags,
            pid,
            uid,
            gid,
            src,
            dst,
        };
        let r = buf.fill(&mut slot, &info, from);
        self.commit(sock, slot, r.is_ok());
        r
    }

    /// Copies a unicast straight from the sender into the receiver's
    /// ring, waiting for a free frame unless non-blocking.  `Ok(false)`:
    /// the receiver has no ring.
    #[allow(clippy::too_many_arguments)]
    fn send_to_ring(
        &self,
        bus: &Bus,
        receiver: &ARef<BusSock>,
        src: AddrPart,
        dst: &BusAddr,
        msg: &mut Msg<'_>,
        len: usize,
        creds: (*mut bindings::pid, u32, u32),
        timeo: &mut c_long,
    ) -> Result<bool> {
        let ep = receiver.endpoint();
        // Both addresses are on this bus: its prefix and the address
        // parts, encoded before a frame is reserved.
        let (sn, sa) = src.raw();
        let (dn, da) = dst.addr.raw();
        let addrs = (
            bus.encode_raw(sn, sa).ok_or(EINVAL)?,
            bus.encode_raw(dn, da).ok_or(EINVAL)?,
        );
        loop {
            match ep.reserve(receiver, len, creds)? {
                Reserve::NoRing => return Ok(false),
                Reserve::Frame(slot, buf, creds) => {
                    let from = FrameSource::Msg(msg);
                    ep.write_frame(receiver, slot, &buf, creds, &addrs, len, 0, from)?;
                    return Ok(true);
                }
                Reserve::Full => ep.wait_for_frame(timeo)?,
            }
        }
    }

    /// Sleeps until the reader may have handed a frame back: it is woken
    /// by the reader's `poll` and `recvmsg`, and looks again every 50 ms.
    fn wait_for_frame(&self, timeo: &mut c_long) -> Result {
        if *timeo <= 0 {
            return Err(EAGAIN);
        }
        let mut rx = self.rx.lock();
        // Look again under the lock that `poll` notifies under: a frame
        // handed back, and the reader's `poll` that followed, between the
        // failed reservation and now would otherwise leave us asleep.
        let full = rx.ring.as_ref().is_some_and(|c| !c.has_room());
        if rx.dead || rx.closed || !full {
            return Ok(());
        }
        let step = (*timeo).min(kernel::time::msecs_to_jiffies(50) as c_long);
        rx.waiters += 1;
        let woke = self.writers.wait_interruptible_timeout(&mut rx, step as _);
        rx.waiters -= 1;
        match woke {
            CondVarTimeoutResult::Signal { jiffies } => {
                Err(crate::socket::intr_errno(jiffies as c_long))
            }
            CondVarTimeoutResult::Timeout => {
                *timeo -= step;
                Ok(())
            }
            CondVarTimeoutResult::Woken { jiffies } => {
                *timeo -= step - jiffies as c_long;
                Ok(())
            }
        }
    }

    /// Copies a message that is already in an skb into the frame reserved
    /// for it (a filtered unicast, or a multicast copy).
    fn skb_to_ring(
        &self,
        sock: &ARef<BusSock>,
        bus: Option<Arc<Bus>>,
        reserved: Reserve,
        skb: Skb,
    ) -> Result<Delivery> {
        let (slot, buf, creds) = match reserved {
            Reserve::Frame(slot, buf, creds) => (slot, buf, creds),
            Reserve::Full => return Ok(Delivery::Full(skb, sock.clone())),
            // The ring was there under the lock just dropped.
            Reserve::NoRing => return Err(errno::ehostunreach()),
        };
        let meta = crate::meta::read(skb.meta()).ok_or(EINVAL)?;
        let (src, dst, flags) = match bus {
            Some(bus) => {
                let multicast = meta.flags & crate::meta::META_MULTICAST != 0;
                (
                    bus.addr(meta.src).encode(),
                    crate::meta::dst_addr(&meta, &bus.master_addr()).encode(),
                    if multicast { BUS_FRAME_F_MULTICAST } else { 0 },
                )
            }
            None => {
                // Released meanwhile: hand the frame back empty.
                self.commit(sock, slot, false);
                return Err(errno::ehostunreach());
            }
        };
        let len = skb.len();
        self.write_frame(
            sock,
            slot,
            &buf,
            creds,
            &(src, dst),
            len,
            flags,
            FrameSource::Skb(&skb),
        )?;
        Ok(Delivery::Queued)
    }

    /// `sendmsg`.
    pub(crate) fn sendmsg(&self, sock: &BusSock, msg: &mut Msg<'_>, len: usize) -> Result<usize> {
        let flags = msg.flags();
        if flags & bindings::MSG_OOB != 0 {
            return Err(errno::eopnotsupp());
        }
        let nonblock = flags & bindings::MSG_DONTWAIT != 0;
        let dst = BusAddr::parse(msg.name().ok_or_else(errno::edestaddrreq)?)?;
        let cmsgs = BusCmsgs::parse(msg.control()).map_err(|_| EINVAL)?;
        if dst.addr.is_kernel() || (dst.multicast && cmsgs.has_grants()) {
            // Grants go to one endpoint; nobody sends to the kernel.
            return Err(EINVAL);
        }
        if len > sock.max_payload() {
            return Err(errno::emsgsize());
        }
        let scm = Scm::send(sock, msg)?;
        scm.refuse_sockets()?;
        let plain = !dst.multicast && !cmsgs.has_grants();
        let cacheable = plain && cmsgs.src.is_none();
        let (bus, hit) = self.attach(sock, &dst, cacheable)?;
        let mut timeo: c_long = sock.sndtimeo(nonblock);
        // A unicast without grants is routed once, here: by the route this
        // socket took last if it still holds, else under the bus lock,
        // which is only for the lookup, as in `Bus::deliver`.
        let mut routed = None;
        if plain {
            let (src, receiver) = match hit {
                Some(hit) => hit,
                None => {
                    let (src, receiver, routes) = bus.lookup(sock, &dst, cmsgs.src.as_ref())?;
                    if cacheable {
                        self.cache_route(routes, &dst, src, &receiver);
                    }
                    (src, receiver)
                }
            };
            // One copy, when the receiver has a ring.  A receiver's
            // filter needs the message in an skb: those take the
            // ordinary path, and the ring from there.
            if !scm.has_files()
                && receiver.endpoint().ring_ever.load(Ordering::Relaxed)
                && !receiver.has_filter()
            {
                let creds = crate::socket::sender_creds(&scm);
                if self.send_to_ring(&bus, &receiver, src, &dst, msg, len, creds, &mut timeo)? {
                    return Ok(len);
                }
            }
            routed = Some((src, receiver));
        }
        let ngrants = cmsgs.ngrants();
        let mut skb = Skb::alloc_send(crate::meta::len(ngrants), len)?;
        skb.put_from_msg(msg, len)?;
        scm.into_skb(&mut skb);
        if dst.multicast {
            self.multicast(sock, &bus, &dst, cmsgs.src.as_ref(), skb)?;
            return Ok(len);
        }
        let mut delivery = match routed {
            Some((src, receiver)) => {
                let meta = crate::meta::Meta {
                    src,
                    dst: dst.addr,
                    flags: 0,
                };
                crate::meta::write(skb.meta_mut(), &meta, core::iter::empty());
                receiver.endpoint().enqueue(&receiver, skb, true, true)?
            }
            None => bus.deliver(sock, &dst, &cmsgs, skb)?,
        };
        loop {
            let (skb, receiver) = match delivery {
                Delivery::Queued => return Ok(len),
                Delivery::Full(skb, receiver) => (skb, receiver),
            };
            receiver
                .endpoint()
                .wait_for_room(&receiver, &skb, &mut timeo)?;
            // Routed again: the address may have moved meanwhile.
            delivery = bus.deliver(sock, &dst, &cmsgs, skb)?;
        }
    }

    /// Delivers a multicast: one copy per matching receiver, through its
    /// filter, never waiting; a receiver with no room loses its copy and
    /// learns of it (`ENOBUFS`, `SO_RXQ_OVFL`).
    fn multicast(
        &self,
        sock: &BusSock,
        bus: &Bus,
        dst: &BusAddr,
        src: Option<&BusAddr>,
        mut skb: Skb,
    ) -> Result {
        let (src, receivers) = bus.multicast(sock, dst, src)?;
        let meta = crate::meta::Meta {
            src,
            dst: dst.addr,
            flags: crate::meta::META_MULTICAST,
        };
        crate::meta::write(skb.meta_mut(), &meta, core::iter::empty());
        for r in receivers.iter() {
            // No memory for this receiver's copy: a counted drop for it
            // (as netlink does), and the others still get theirs.
            let Ok(copy) = skb.clone_for_receiver() else {
                r.endpoint().overrun(r);
                continue;
            };
            match r.endpoint().enqueue(r, copy, true, true) {
                Ok(Delivery::Queued) => {}
                Ok(Delivery::Full(copy, _)) => {
                    drop(copy);
                    r.endpoint().overrun(r);
                }
                // The receiver is going, or its bus is: nobody to tell.
                Err(e) if e == errno::econnreset() || e == errno::ehostunreach() => {}
                // Too large for its queue or its ring, or no memory to
                // queue it: a counted drop.
                Err(_) => r.endpoint().overrun(r),
            }
        }
        Ok(())
    }

    /// Counts a lost multicast copy.
    fn overrun(&self, sock: &BusSock) {
        sock.count_drop();
        let report = {
            let mut rx = self.rx.lock();
            rx.overrun = true;
            !rx.no_enobufs
        };
        if report {
            sock.wake_readers(bindings::EPOLLERR);
        }
    }

    /// `BUS_NO_ENOBUFS`.
    pub(crate) fn set_no_enobufs(&self, on: bool) {
        let mut rx = self.rx.lock();
        rx.no_enobufs = on;
        if on {
            rx.overrun = false;
        }
    }

    /// `BUS_NO_ENOBUFS`, read.
    pub(crate) fn no_enobufs(&self) -> bool {
        self.rx.lock().no_enobufs
    }

    /// Sleeps until `skb` would fit in this receiver's queue, it closes or
    /// dies, the timeout runs out (`EAGAIN`) or a signal comes.
    fn wait_for_room(&self, sock: &BusSock, skb: &Skb, timeo: &mut c_long) -> Result {
        let size = skb.truesize();
        let uid = skb.sender_uid();
        let mut rx = self.rx.lock();
        if rx.ring.is_some() && Self::ring_eligible(skb) {
            drop(rx);
            return self.wait_for_frame(timeo);
        }
        loop {
            if rx.closed || rx.dead {
                return Ok(());
            }
            if Self::admission(sock, &rx, uid, size, true) != Admit::Full {
                return Ok(());
            }
            if *timeo <= 0 {
                return Err(EAGAIN);
            }
            // `timeo` is positive here.
            rx.waiters += 1;
            let woke = self
                .writers
                .wait_interruptible_timeout(&mut rx, *timeo as _);
            rx.waiters -= 1;
            match woke {
                CondVarTimeoutResult::Timeout => return Err(EAGAIN),
                CondVarTimeoutResult::Signal { jiffies } => {
                    return Err(crate::socket::intr_errno(jiffies as c_long))
                }
                CondVarTimeoutResult::Woken { jiffies } => *timeo = jiffies as c_long,
            }
        }
    }

    /// `recvmsg`.
    pub(crate) fn recvmsg(
        &self,
        sock: &BusSock,
        msg: &mut Msg<'_>,
        size: usize,
        flags: u32,
    ) -> Result<usize> {
        if flags & (bindings::MSG_OOB | bindings::MSG_ERRQUEUE) != 0 {
            return Err(errno::eopnotsupp());
        }
        let peek = flags & bindings::MSG_PEEK != 0;
        let mut timeo = sock.rcvtimeo(flags & bindings::MSG_DONTWAIT != 0);
        loop {
            let mut rx = self.rx.lock();
            if rx.dead {
                return Err(errno::econnreset());
            }
            if rx.overrun && !peek {
                rx.overrun = false;
                if !rx.no_enobufs {
                    return Err(errno::enobufs());
                }
            }
            let skb = if peek {
                rx.queue.peek()
            } else {
                rx.queue.pop()
            };
            if let Some(skb) = skb {
                if !peek {
                    Self::uncharge(&mut rx, &skb);
                }
                let wake = !peek && rx.waiters > 0;
                let bus = rx.bus.clone().ok_or(errno::econnreset())?;
                drop(rx);
                if wake {
                    self.writers.notify_all();
                }
                return Self::deliver_to_user(&bus, sock, msg, skb, size, flags, peek);
            }
            if rx.notify_dropped > 0 {
                let dropped = if peek {
                    rx.notify_dropped
                } else {
                    core::mem::take(&mut rx.notify_dropped)
                };
                let bus = rx.bus.clone().ok_or(errno::econnreset())?;
                drop(rx);
                return Self::deliver_overflow(&bus, msg, dropped, size);
            }
            let last = rx.queue.last();
            drop(rx);
            if timeo == 0 {
                return Err(EAGAIN);
            }
            sock.wait_for_data(&mut timeo, last)?;
        }
    }

    fn deliver_to_user(
        bus: &Bus,
        sock: &BusSock,
        msg: &mut Msg<'_>,
        skb: Skb,
        size: usize,
        flags: u32,
        peek: bool,
    ) -> Result<usize> {
        // The source, straight from the headroom and only for a caller
        // that asked; the rest of the metadata only for a caller with a
        // control buffer.
        if msg.wants_name() {
            let (ncomp, src) = crate::meta::src_raw(skb.meta()).ok_or(EINVAL)?;
            msg.set_name(&bus.encode_raw(ncomp, src).ok_or(EINVAL)?);
        }
        let copied = skb.len().min(size);
        if copied < skb.len() {
            msg.add_flags(bindings::MSG_TRUNC);
        }
        msg.copy_from_skb(&skb, copied)?;
        // Grants always (without a control buffer: MSG_CTRUNC); the
        // destination only for a caller that asked for control messages.
        for (kind, addr) in crate::meta::grants(skb.meta()) {
            msg.put_cmsg(SOL_BUS, kind, addr)?;
        }
        if msg.has_control() {
            let meta = crate::meta::read(skb.meta()).ok_or(EINVAL)?;
            let dst = crate::meta::dst_addr(&meta, &bus.master_addr()).encode();
            msg.put_cmsg(SOL_BUS, SCM_DST_ADDR, &dst)?;
        }
        msg.put_scm(sock, &skb, flags, peek);
        Ok(if flags & bindings::MSG_TRUNC != 0 {
            skb.len()
        } else {
            copied
        })
    }

    /// A `BUS_NOTIFY_OVERFLOW`, made up on the spot.
    fn deliver_overflow(bus: &Bus, msg: &mut Msg<'_>, dropped: u64, size: usize) -> Result<usize> {
        msg.set_name(&BusAddr::kernel(*bus.path()).encode());
        let bytes = crate::notify::overflow(dropped);
        let copied = bytes.len().min(size);
        if copied < bytes.len() {
            msg.add_flags(bindings::MSG_TRUNC);
        }
        msg.copy_to_iter(&bytes[..copied])?;
        Ok(copied)
    }

    /// The poll mask.
    pub(crate) fn poll(&self) -> u32 {
        let rx = self.rx.lock();
        let mut mask = 0;
        if rx.dead {
            mask |= bindings::EPOLLHUP | bindings::EPOLLERR;
        }
        if rx.overrun && !rx.no_enobufs {
            mask |= bindings::EPOLLERR;
        }
        let ring_ready = rx.ring.as_ref().is_some_and(RingCursor::ready);
        if rx.total.msgs > 0 || rx.notify_dropped > 0 || ring_ready {
            mask |= bindings::EPOLLIN | bindings::EPOLLRDNORM;
        }
        if rx.ring.is_some() && rx.waiters > 0 {
            // The reader may have handed frames back: let senders look.
            self.writers.notify_all();
        }
        // Sending never waits for the sender's own buffer: only a full
        // receiver makes a send wait, and that is per destination.
        if !rx.dead {
            mask |= bindings::EPOLLOUT | bindings::EPOLLWRNORM | bindings::EPOLLWRBAND;
        }
        mask
    }

    /// `BUS_ADDRS`: every address owned, handle first.
    pub(crate) fn addrs(&self, sock: &BusSock) -> Result<KVec<[u8; SOCKADDR_BUS_SIZE]>> {
        match self.bus() {
            None => Ok(KVec::new()),
            Some(bus) => bus.addrs(sock),
        }
    }

    /// `BUS_POLICY`, set.
    pub(crate) fn set_policy(&self, sock: &BusSock, policy: u32) -> Result {
        if policy & !crate::uapi::BUS_POLICY_MCAST_SEND_GRANTED != 0 {
            return Err(EINVAL);
        }
        match &self.inner.lock().role {
            Role::Master(bus) => bus.set_policy(sock, policy),
            _ => Err(EPERM),
        }
    }

    /// `BUS_POLICY`, read: that of the socket's bus.
    pub(crate) fn policy(&self) -> Result<u32> {
        self.bus().ok_or(errno::enotconn())?.policy()
    }
}
