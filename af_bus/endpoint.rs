// SPDX-License-Identifier: GPL-2.0

//! The family's state of one socket: its role on a bus, its receive
//! queue, and the send and receive paths.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use kernel::bindings;
use kernel::error::{code::*, Result};
use kernel::ffi::c_long;
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNodeReservation};
use kernel::sync::{Arc, CondVar, CondVarTimeoutResult, Mutex, SpinLock, UniqueArc};
use kernel::types::ARef;
use kernel::{new_condvar, new_mutex, new_spinlock};

use crate::addr::{encode_unattached, AddrPart, BusAddr};
use crate::bus::{BusKey, Resolved};
use crate::cmsg::BusCmsgs;
use crate::quota::{admit, Admit, Limits, Usage};
use crate::ring::{FrameInfo, Geometry};
use crate::sys::{
    errno, DropReason, FrameSource, Global, Msg, OnceArc, ReaderCreds, RingBuf, RingCursor,
    RxQueue, Scm, SenderCreds, Skb, Slot, SockState, NO_CHARGE,
};
use crate::uapi::{
    BUS_FRAME_F_MULTICAST, BUS_FRAME_F_QUEUED, SCM_DST_ADDR, SOCKADDR_BUS_SIZE, SOL_BUS,
};

/// Most distinct sending users a receive queue accounts separately;
/// messages from further users are refused as if the queue were full.
const MAX_QUEUE_USERS: usize = 64;

/// The true size of a small message, about (an skb with its metadata):
/// what `POLLOUT` promises room for.
const SMALL_MESSAGE: usize = 2048;

/// An AF_BUS socket: the kernel's sock with an [`Endpoint`] after it.
pub(crate) type BusSock = crate::sys::Sock<Endpoint>;

/// A bus of AF_BUS sockets.
pub(crate) type Bus = crate::bus::Bus<Endpoint>;

/// The registry of the module's buses and sockets.
pub(crate) type Registry = crate::bus::Registry<Endpoint>;

/// The registry, installed by the module's `init` (see `entry.rs`).
pub(crate) static REGISTRY: Global<Registry> = Global::new();

/// The registry: `ENXIO` only outside the module's life, when no socket
/// or procfs file of the family can call this.
pub(crate) fn registry() -> Result<&'static Registry> {
    REGISTRY.get().ok_or(ENXIO)
}

/// What a delivery attempt came to.
pub(crate) enum Delivery {
    /// Queued at the receiver.
    Queued,
    /// The receiver's queue is full: wait on it and try again.
    Full(Skb, ARef<BusSock>),
    /// The bus's routes changed since the sender routed it: route again.
    Moved(Skb),
}

/// A listed AF_BUS socket (see [`crate::sys::ListedSock`]).
pub(crate) type ListedSock = crate::sys::ListedSock<Endpoint>;

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
    receiver: SockLink,
}

/// A link to a socket that does not keep it alive: it names the socket
/// until the socket is released, then nothing.  A cached route holds
/// one, so that a closed receiver (and its network namespace) is freed
/// whatever its senders do.
pub(crate) type SockLink = Arc<SpinLock<Option<ListedSock>>>;

/// A new, empty [`SockLink`].
pub(crate) fn new_link() -> Result<SockLink> {
    Arc::pin_init(new_spinlock!(None, "SockLink"), GFP_KERNEL)
}

/// Where a unicast without grants goes: the source address it carries,
/// its receiver, and the route generation of the bus that both hold for.
struct Route {
    src: AddrPart,
    receiver: ARef<BusSock>,
    routes: u64,
    /// It passes on an answer the receiver owed (see [`Bus::lookup`]).
    answer: bool,
    /// The receiver was noted to owe the sender an answer.
    noted: bool,
}

/// The answers a unicast deals in (see [`Bus::lookup`]): the one it took
/// from its receiver to pass the access masks, given back unless the
/// message is delivered, and the one its receiver was noted to owe it
/// (`SCM_EXPECT_REPLY`), withdrawn unless the message is delivered there.
struct Owed<'a> {
    bus: &'a Bus,
    sender: &'a BusSock,
    /// The receiver whose answer the message took.
    taken: Option<ARef<BusSock>>,
    /// The receiver noted to owe the sender an answer for it.
    noted: Option<ARef<BusSock>>,
}

impl<'a> Owed<'a> {
    fn new(bus: &'a Bus, sender: &'a BusSock) -> Self {
        Owed {
            bus,
            sender,
            taken: None,
            noted: None,
        }
    }

    /// The receiver whose answer the message holds, if any.
    fn held(&self) -> Option<&BusSock> {
        self.taken.as_deref()
    }

    /// Follows the message's latest route: an answer held from another
    /// receiver, or no longer needed, is given back.  (The one noted was
    /// withdrawn before the route was looked up again: see `reroute`.)
    #[inline]
    fn track(&mut self, r: &Route) {
        let same = self
            .taken
            .as_ref()
            .is_some_and(|h| core::ptr::eq::<BusSock>(&**h, &*r.receiver));
        if !(same && r.answer) {
            self.give_back();
            if r.answer {
                self.taken = Some(r.receiver.clone());
            }
        }
        if r.noted {
            self.noted = Some(r.receiver.clone());
        }
    }

    /// Before the message is routed again: the answer noted for its old
    /// receiver goes (the new lookup notes one for the new receiver).
    fn reroute(&mut self) {
        if let Some(r) = self.noted.take() {
            self.bus.withdraw_answer(self.sender, &r);
        }
    }

    #[inline]
    fn give_back(&mut self) {
        if let Some(r) = self.taken.take() {
            self.bus.refund_answer(self.sender, &r);
        }
    }

    /// The message was delivered: the answer taken is spent, the one
    /// noted stays owed.
    #[inline]
    fn spent(mut self) {
        self.taken = None;
        self.noted = None;
    }
}

impl Drop for Owed<'_> {
    fn drop(&mut self) {
        self.give_back();
        self.reroute();
    }
}

/// The bus and route generation a unicast was routed under: its delivery
/// is refused (`Delivery::Moved`) if the generation has moved since.
struct RoutedAt<'a> {
    bus: &'a Bus,
    routes: u64,
}

/// What `/proc/net/bus` shows of a socket.
pub(crate) struct Description {
    /// `unattached`, `master`, `pending`, `member` or `dead`.
    pub(crate) role: &'static str,
    pub(crate) bus: Option<Arc<Bus>>,
    pub(crate) handle: Option<AddrPart>,
    /// Addresses owned (1 for a master).
    pub(crate) addrs: usize,
    /// Messages queued.
    pub(crate) queued: usize,
    /// Notifications lost.
    pub(crate) lost: u64,
}

/// The source and destination of a queued message as a frame header
/// shows them, and its frame flags.
struct FrameAddrs {
    src: [u8; SOCKADDR_BUS_SIZE],
    dst: [u8; SOCKADDR_BUS_SIZE],
    flags: u32,
}

/// A sender, for the one copy into a ring: its credentials as recorded,
/// the user its frames are charged to (`Skb::quota_uid`), and where it
/// sent.
struct RingSender<'a> {
    creds: SenderCreds,
    quota_uid: u32,
    /// The address the message was sent to.
    dst: &'a AddrPart,
}

/// State of an endpoint behind [`Endpoint::inner`].
struct EndpointInner {
    role: Role,
    /// Saves the bus lock and the table walks when a socket sends to the
    /// same address again, as a client and a service do.  It names the
    /// receiving socket by its link, which keeps nothing of it alive.
    route: Option<CachedRoute>,
}

/// The receive side, behind [`Endpoint::rx`].
struct RxState {
    /// The skbs (`sk_receive_queue`, which only this lock protects).
    queue: RxQueue,
    total: Usage,
    /// Per sending user (see `Skb::quota_uid`), for the fairness rule.
    users: RBTree<u32, Usage>,
    /// Frames of the ring reserved or not yet handed back, in total and
    /// per sending user: the ring is a queue with the same rules.
    ring_total: Usage,
    ring_users: RBTree<u32, Usage>,
    /// Moves whenever a blocked reader may have something to do: a
    /// message queued or published, a drop counted, the bus died.
    /// Readers sleep until it moves, not until the queue changes.
    events: u64,
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
    /// Endpoints whose `poll` found no room here for them: woken (with
    /// `EPOLLOUT`) when a message leaves the queue.
    pollers: KVec<SockLink>,
    /// The socket's bus once it has one (also in `inner`), for the
    /// receive path, which holds this lock anyway.
    bus: Option<Arc<Bus>>,
    /// The socket is the master of `bus`: each unlock tells the bus
    /// whether its members may send without looking (`Bus::master_room`).
    is_master: bool,
}

/// The rx lock, held.  On unlock it brings up to date what `poll` reads
/// without the lock: the socket's own readiness, and a master's room.
struct RxGuard<'a> {
    ep: &'a Endpoint,
    guard: kernel::sync::lock::Guard<'a, RxState, kernel::sync::lock::mutex::MutexBackend>,
}

impl core::ops::Deref for RxGuard<'_> {
    type Target = RxState;

    fn deref(&self) -> &RxState {
        &self.guard
    }
}

impl core::ops::DerefMut for RxGuard<'_> {
    fn deref_mut(&mut self) -> &mut RxState {
        &mut self.guard
    }
}

impl Drop for RxGuard<'_> {
    fn drop(&mut self) {
        // Stored before the mutex is released (the fields drop after
        // this), so the stores are ordered as the critical sections are.
        let rx = &*self.guard;
        self.ep
            .pollmask
            .store(Endpoint::own_mask(rx), Ordering::Release);
        if let Some(bus) = rx.bus.as_ref().filter(|_| rx.is_master) {
            let sock = self.ep.sock();
            bus.set_master_room(Endpoint::room_for_anyone(sock, rx));
        }
    }
}

/// What a reservation in a receive ring came to.
enum Reserve {
    /// The receiver has no ring: use its queue.
    NoRing,
    /// A frame to fill, and the sender's credentials as the reader sees
    /// them.
    Frame(Slot, ReaderCreds),
    /// The ring is full, or the sender's share of it is.
    Full,
}

/// The family's part of a socket.
#[pin_data]
pub(crate) struct Endpoint {
    /// Serialises receives, from the look at the queue to the end of
    /// the delivery to user space (as AF_UNIX's `iolock`): a `MSG_PEEK`
    /// and a receive never handle one message's files at once, and a
    /// receive that fails leaves its message queued.  Held over user
    /// copies, so nothing else is ever taken before it.
    #[pin]
    iolock: Mutex<()>,
    #[pin]
    inner: Mutex<EndpointInner>,
    #[pin]
    rx: Mutex<RxState>,
    /// Senders waiting for room in this socket's receive queue.
    #[pin]
    writers: CondVar,
    /// Receivers waiting for `RxState::events` to move.
    #[pin]
    readers: CondVar,
    /// This socket, for the routes its senders cache; emptied on release.
    link: SockLink,
    /// Whether this socket waits in its master's `pollers`.
    polling: AtomicBool,
    /// `poll`'s view of the receive side (`EPOLLIN`, `EPOLLERR`,
    /// `EPOLLHUP`), stored at every unlock of `rx`: `poll` reads it
    /// without the lock.
    pollmask: AtomicU32,
    /// The bus of an endpoint (not of a master), set once as it joins
    /// and kept with the socket: `poll` reads it without a lock.
    endpoint_of: OnceArc<Bus>,
    /// Whether a receive ring was ever set up: lets a unicast sender skip
    /// the rx lock of a receiver that has none.  Only a hint, written
    /// under the rx lock and never cleared: a sender that misses a ring
    /// just set up queues an skb, which `enqueue` moves into the ring.
    ring_ever: AtomicBool,
}

impl Endpoint {
    pub(crate) fn new(queue: RxQueue, link: SockLink) -> impl PinInit<Self> {
        pin_init!(Endpoint {
            iolock <- new_mutex!((), "Endpoint::iolock"),
            inner <- new_mutex!(
                EndpointInner {
                    role: Role::Unattached,
                    route: None,
                },
                "EndpointInner"
            ),
            rx <- new_mutex!(
                RxState {
                    queue,
                    total: Usage::default(),
                    users: RBTree::new(),
                    ring_total: Usage::default(),
                    ring_users: RBTree::new(),
                    events: 0,
                    closed: false,
                    dead: false,
                    notify_dropped: 0,
                    overrun: false,
                    no_enobufs: false,
                    ring: None,
                    waiters: 0,
                    pollers: KVec::new(),
                    bus: None,
                    is_master: false,
                },
                "RxState"
            ),
            writers <- new_condvar!("Endpoint::writers"),
            readers <- new_condvar!("Endpoint::readers"),
            link,
            polling: AtomicBool::new(false),
            pollmask: AtomicU32::new(0),
            endpoint_of: OnceArc::new(),
            ring_ever: AtomicBool::new(false),
        })
    }

    /// Takes the rx lock.
    fn rx_lock(&self) -> RxGuard<'_> {
        RxGuard {
            ep: self,
            guard: self.rx.lock(),
        }
    }

    /// What `poll` reports of the receive side, but the ring's frames.
    fn own_mask(rx: &RxState) -> u32 {
        let mut mask = 0;
        if rx.dead {
            mask |= bindings::EPOLLHUP | bindings::EPOLLERR;
        }
        if rx.overrun && !rx.no_enobufs {
            mask |= bindings::EPOLLERR;
        }
        if rx.total.msgs > 0 || rx.notify_dropped > 0 {
            mask |= bindings::EPOLLIN | bindings::EPOLLRDNORM;
        }
        mask
    }

    /// Whether a small message from any user, whatever its share, would
    /// be admitted to this master's queue now (see `quota::admit`): the
    /// queue is less than half full, in bytes and in messages, and holds
    /// fewer messages than there are user slots.  A master with a ring is
    /// never said to have room this way: its members look under the lock.
    fn room_for_anyone(sock: &BusSock, rx: &RxState) -> bool {
        let limits = Self::limits(sock);
        let (bytes, msgs) = (rx.total.bytes, rx.total.msgs);
        !rx.closed
            && !rx.dead
            && rx.ring.is_none()
            && msgs < MAX_QUEUE_USERS
            && bytes.saturating_add(SMALL_MESSAGE).saturating_mul(2) <= limits.bytes
            && (msgs + 1) * 2 <= limits.msgs
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
                Some(p) => bus.addr(p.addr).encode(),
                // Dropped by its dead bus: the handle is gone too.
                None => BusAddr::kernel(*bus.path()).encode(),
            },
        }
    }

    /// What `/proc/net/bus` shows of the socket.
    pub(crate) fn describe(&self, sock: &BusSock) -> Description {
        let (is_master, bus) = match &self.inner.lock().role {
            Role::Unattached => {
                return Description {
                    role: "unattached",
                    bus: None,
                    handle: None,
                    addrs: 0,
                    queued: 0,
                    lost: 0,
                }
            }
            Role::Endpoint(bus) => (false, bus.clone()),
            Role::Master(bus) => (true, bus.clone()),
        };
        let (role, handle, addrs) = match bus.primary(sock) {
            _ if is_master => ("master", None, 1),
            Some(p) if p.owned == 0 => ("pending", p.handle, 0),
            Some(p) => ("member", p.handle, p.owned),
            None => ("dead", None, 0),
        };
        let rx = self.rx_lock();
        Description {
            role,
            bus: Some(bus),
            handle,
            addrs,
            queued: rx.total.msgs,
            lost: rx.notify_dropped,
        }
    }

    /// `bind()`: makes the socket the master of a new bus.
    ///
    /// The socket inode of a filesystem bus is created first, with none
    /// of our locks held; its directory stays locked (as AF_UNIX's bind
    /// keeps it) while our locks are taken inside it, and the inode is
    /// committed, or removed on failure, once they are dropped.
    pub(crate) fn bind(&self, sock: &BusSock, addr: &BusAddr) -> Result {
        // A socket already on a bus makes no inode.
        Self::unattached(&self.inner.lock().role)?;
        let slot = UniqueArc::<Bus>::new_uninit(GFP_KERNEL)?;
        let reservation = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let crate::bus::NewName { key, node } = crate::bus::create(sock, addr)?;
        let r = (|| {
            let mut inner = self.inner.lock();
            Self::unattached(&inner.role)?;
            let pathref = node.as_ref().map(|n| n.path());
            let bus = registry()?.register(sock, addr, key, pathref, slot, reservation)?;
            {
                let mut rx = self.rx_lock();
                rx.bus = Some(bus.clone());
                rx.is_master = true;
            }
            inner.role = Role::Master(bus);
            Ok(())
        })();
        if let Some(node) = node {
            if r.is_ok() {
                node.commit();
            }
            // Dropped uncommitted, it removes the inode again.
        }
        r
    }

    /// `EINVAL` for a master, `EISCONN` for an endpoint.
    fn unattached(role: &Role) -> Result {
        match role {
            Role::Unattached => Ok(()),
            Role::Master(_) => Err(EINVAL),
            Role::Endpoint(_) => Err(errno::eisconn()),
        }
    }

    /// The bus a send to the bus of `key` goes over, joining it as a
    /// pending endpoint on the first send to its master (`dst`); with
    /// `cached`, also the route this socket last took to `dst` and the
    /// route generation it holds for, if it still holds.
    fn attach(
        &self,
        sock: &BusSock,
        dst: &BusAddr,
        key: BusKey,
        cached: bool,
    ) -> Result<(Arc<Bus>, Option<Route>)> {
        let mut inner = self.inner.lock();
        match &inner.role {
            Role::Endpoint(bus) | Role::Master(bus) => {
                if bus.key() != key {
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
                    .and_then(|r| {
                        let receiver = r.receiver.lock().as_ref().map(ListedSock::get)?;
                        Some(Route {
                            src: r.src,
                            receiver,
                            routes: r.routes,
                            answer: false,
                            noted: false,
                        })
                    });
                drop(inner);
                // A route that no longer holds lets go of its receiver.
                drop(old);
                Ok((bus, hit))
            }
            Role::Unattached => {
                let bus = registry()?.find(key)?;
                if dst.addr != bus.master_addr().addr {
                    return Err(EACCES);
                }
                bus.join(sock)?;
                // `SO_PEERCRED`: the master's.
                sock.set_peer(bus.master_cred());
                self.rx_lock().bus = Some(bus.clone());
                // Unattached until now: the cell was empty.
                self.endpoint_of.set(bus.clone());
                inner.role = Role::Endpoint(bus.clone());
                Ok((bus, None))
            }
        }
    }

    /// Remembers the route of a unicast to `dst` (see [`CachedRoute`]).
    fn cache_route(&self, dst: &BusAddr, route: &Route) {
        let old = self.inner.lock().route.replace(CachedRoute {
            routes: route.routes,
            dst: dst.addr,
            src: route.src,
            receiver: route.receiver.state().link.clone(),
        });
        // The socket it held, if the last reference, is freed unlocked.
        drop(old);
    }

    /// Makes the socket's link name it (once, as it is created).
    pub(crate) fn link_to(&self, sock: &BusSock) {
        *self.link.lock() = Some(ListedSock::new(sock));
    }

    /// `SIOCINQ`: the size of the next queued message, 0 when none.
    pub(crate) fn next_len(&self) -> usize {
        self.rx_lock().queue.first_len()
    }

    /// Leaves the bus as the socket closes: an endpoint releases its
    /// addresses and its master hears of it; a master takes its bus down.
    pub(crate) fn release(&self, sock: &BusSock) {
        // Senders' cached routes stop naming this socket.
        *self.link.lock() = None;
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
                if let Some(crate::bus::Left { master, addrs }) = bus.leave(sock) {
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
                        master.state().notify(&master, &bus, &bytes);
                    } else {
                        // No memory for the news: the master learns that
                        // it lost some (BUS_NOTIFY_OVERFLOW).
                        master.state().lose_notification(&master);
                    }
                }
            }
            Role::Master(bus) => {
                if let Ok(registry) = registry() {
                    registry.remove_bus(&bus);
                }
                for member in bus.kill().socks() {
                    member.state().die(member);
                }
            }
        }
        // Nothing more is queued; free what is, and let blocked senders
        // find the receiver gone.
        // The ring goes too: a sender that still holds a route here only
        // keeps the socket itself (a mapping keeps its own reference).
        let (queued, bus, ring) = {
            let mut rx = self.rx_lock();
            rx.closed = true;
            (Self::drain(&mut rx), rx.bus.take(), rx.ring.take())
        };
        for skb in queued {
            skb.discard(sock, DropReason::Close);
        }
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
        rx.events += 1;
        out
    }

    /// The bus died under this member.
    pub(crate) fn die(&self, sock: &BusSock) {
        let queued = {
            let mut rx = self.rx_lock();
            rx.dead = true;
            rx.events += 1;
            Self::drain(&mut rx)
        };
        for skb in queued {
            skb.discard(sock, DropReason::Close);
        }
        sock.shutdown_rx();
        self.wake(
            sock,
            bindings::EPOLLIN | bindings::EPOLLERR | bindings::EPOLLHUP,
        );
        self.writers.notify_all();
    }

    /// Wakes blocked readers and pollers through the sock's callbacks;
    /// `RxState::events` has moved.  `EPOLLHUP` wakes everyone, and says
    /// so to `O_ASYNC` as `EPOLLIN` does.
    fn wake(&self, sock: &BusSock, mask: u32) {
        self.readers.notify_all();
        if mask & bindings::EPOLLHUP != 0 {
            sock.state_change();
        }
        if mask & bindings::EPOLLIN != 0 {
            sock.data_ready();
        } else if mask & bindings::EPOLLERR != 0 {
            sock.error_report();
        }
    }

    /// Counts a notification the master lost, and tells it.
    fn lose_notification(&self, sock: &BusSock) {
        {
            let mut rx = self.rx_lock();
            rx.notify_dropped += 1;
            rx.events += 1;
        }
        self.wake(sock, bindings::EPOLLIN | bindings::EPOLLRDNORM);
    }

    fn limits(sock: &BusSock) -> Limits {
        Limits {
            bytes: sock.rcvbuf(),
            msgs: crate::params::MAX_QUEUE_MSGS.get(),
        }
    }

    /// What a user holds of `users`, for the fairness rule: `Full` when
    /// too many other users have messages there.  (Idle entries are
    /// pruned when a user is added.)
    fn share(users: &RBTree<u32, Usage>, uid: u32) -> Option<Usage> {
        match users.get(&uid) {
            Some(u) => Some(*u),
            None if users.values().filter(|u| u.msgs > 0).count() >= MAX_QUEUE_USERS => None,
            None => Some(Usage::default()),
        }
    }

    /// Charges `size` to `uid` in `users`.
    #[inline]
    fn charge(users: &mut RBTree<u32, Usage>, uid: u32, size: usize) -> Result {
        if let Some(u) = users.get_mut(&uid) {
            u.add(size);
            return Ok(());
        }
        Self::prune_idle_users(users);
        let mut u = Usage::default();
        u.add(size);
        users.try_create_and_insert(uid, u, GFP_KERNEL)?;
        Ok(())
    }

    /// Whether a message of `size` bytes from the user `uid` may be
    /// queued now; `None` for a sender exempt from the fairness rule (the
    /// kernel).  A user may fill at most half of what the others leave.
    fn admission(sock: &BusSock, rx: &RxState, uid: Option<u32>, size: usize) -> Admit {
        let user = match uid {
            Some(uid) => match Self::share(&rx.users, uid) {
                Some(u) => Some(u),
                None => return Admit::Full,
            },
            None => None,
        };
        admit(Self::limits(sock), rx.total, user, size)
    }

    /// The ring's limits: its frames, and no more than a queue holds
    /// (counted in frames only: a frame's bytes are fixed).
    fn ring_limits(cur: &RingCursor) -> Limits {
        let frames = cur.ring().geometry().frames();
        let msgs = frames.min(crate::params::MAX_QUEUE_MSGS.get());
        Limits {
            bytes: usize::MAX / 2,
            msgs,
        }
    }

    /// Gives the frames the reader handed back to their senders' shares.
    fn ring_reclaim(rx: &mut RxState) {
        let RxState {
            ring,
            ring_total,
            ring_users,
            ..
        } = rx;
        let Some(cur) = ring.as_mut() else {
            return;
        };
        // Frames whose slots were dropped unfilled are published (as
        // discarded) first: they count as the reader's until it hands them
        // back, and must not stay reserved for ever.
        cur.publish_ready();
        while let Some(uid) = cur.reclaim() {
            Self::ring_uncharge(ring_total, ring_users, uid);
        }
    }

    /// Gives one frame of `uid` (`NO_CHARGE`: of nobody) back.
    fn ring_uncharge(total: &mut Usage, users: &mut RBTree<u32, Usage>, uid: u32) {
        total.sub(1);
        if let Some(u) = users.get_mut(&uid).filter(|_| uid != NO_CHARGE) {
            u.sub(1);
        }
    }

    /// Whether `uid` (`None`: exempt) may have one more frame of the ring.
    fn ring_admission(rx: &RxState, uid: Option<u32>) -> Admit {
        let Some(cur) = rx.ring.as_ref() else {
            return Admit::Yes;
        };
        if !cur.has_room() {
            return Admit::Full;
        }
        let user = match uid {
            Some(uid) => match Self::share(&rx.ring_users, uid) {
                Some(u) => Some(u),
                None => return Admit::Full,
            },
            None => None,
        };
        admit(Self::ring_limits(cur), rx.ring_total, user, 0)
    }

    /// Reserves the next frame of the ring for a message of `len` bytes
    /// from `uid` (`None`: exempt from the fairness rule), charging it.
    fn reserve_locked(
        rx: &mut RxState,
        sock: &BusSock,
        len: usize,
        creds: SenderCreds,
        uid: Option<u32>,
    ) -> Result<Reserve> {
        let Some(cur) = rx.ring.as_ref() else {
            return Ok(Reserve::NoRing);
        };
        if len > cur.ring().geometry().payload_max() {
            return Err(errno::emsgsize());
        }
        Self::ring_reclaim(rx);
        match Self::ring_admission(rx, uid) {
            Admit::Yes => {}
            Admit::Full => return Ok(Reserve::Full),
            Admit::TooBig => return Err(errno::emsgsize()),
        }
        if let Some(uid) = uid {
            Self::charge(&mut rx.ring_users, uid, 1)?;
        }
        rx.ring_total.add(1);
        let Some(cur) = rx.ring.as_mut() else {
            return Ok(Reserve::NoRing);
        };
        // Room was checked above, under this lock; a reader that took the
        // frame back meanwhile (status written by hand) makes it full.
        let Some(slot) = cur.reserve(uid.unwrap_or(NO_CHARGE)) else {
            let RxState {
                ring_total,
                ring_users,
                ..
            } = rx;
            Self::ring_uncharge(ring_total, ring_users, uid.unwrap_or(NO_CHARGE));
            return Ok(Reserve::Full);
        };
        let creds = cur.ring().creds_for_reader(creds, sock);
        Ok(Reserve::Frame(slot, creds))
    }

    /// Queues `skb` unless the queue (or the ring) is full.  A message
    /// the socket's filter drops counts as delivered.  With `route`, the
    /// bus's route generation the sender routed by: if it moved, the
    /// message is handed back to be routed again (`Delivery::Moved`), so
    /// that it never lands at an address's old owner after the owner has
    /// read its revoke, nor fails while a new owner exists.
    fn enqueue(
        &self,
        sock: &ARef<BusSock>,
        mut skb: Skb,
        fair: bool,
        filter: bool,
        route: Option<RoutedAt<'_>>,
    ) -> Result<Delivery> {
        let uid = fair.then(|| skb.quota_uid());
        let mut rx = self.rx_lock();
        if let Some(at) = route {
            if at.bus.routes() != at.routes {
                return Ok(Delivery::Moved(skb));
            }
        }
        if rx.dead {
            return Err(errno::econnreset());
        }
        if rx.closed {
            return Err(errno::ehostunreach());
        }
        if filter && !sock.filter(&mut skb) {
            drop(rx);
            skb.discard(sock, DropReason::Filter);
            return Ok(Delivery::Queued);
        }
        let eligible = Self::ring_eligible(&skb);
        if rx.ring.is_some() && eligible {
            let reserved = Self::reserve_locked(&mut rx, sock, skb.len(), skb.creds(), uid)?;
            // The bus as this lock has it: no role lock needed, and none
            // taken under a caller's bus lock.
            let bus = rx.bus.clone();
            drop(rx);
            return self.skb_to_ring(sock, bus, reserved, skb);
        }
        let size = skb.truesize();
        match Self::admission(sock, &rx, uid, size) {
            Admit::TooBig => return Err(errno::emsgsize()),
            Admit::Full => return Ok(Delivery::Full(skb, sock.clone())),
            Admit::Yes => {}
        }
        // With a ring, a message that needs the queue (files, grants) takes
        // a frame too, marking its place in the delivery order.
        // Its addresses as the frame shows them are found before anything
        // is reserved or charged, so that no failure leaves a charge.
        let addrs = match rx.ring.is_some() {
            true => {
                let bus = rx.bus.as_deref().ok_or(errno::econnreset())?;
                Some(Self::frame_addrs(bus, &skb)?)
            }
            false => None,
        };
        let marker = match addrs {
            Some(addrs) => match Self::reserve_locked(&mut rx, sock, 0, skb.creds(), uid)? {
                Reserve::Frame(slot, creds) => Some((slot, creds, addrs)),
                Reserve::Full => return Ok(Delivery::Full(skb, sock.clone())),
                Reserve::NoRing => None,
            },
            None => None,
        };
        if let Some(uid) = uid {
            // On failure the marker's slot, dropped, is published as
            // discarded, and its frame's charge comes back when reclaimed.
            Self::charge(&mut rx.users, uid, size)?;
        }
        rx.total.add(size);
        skb.set_charged(uid.is_some());
        skb.set_dropcount(sock.drops());
        let mut wake_senders = false;
        if let Some((slot, creds, FrameAddrs { src, dst, flags })) = marker {
            let info = FrameInfo {
                len: 0,
                flags: flags | BUS_FRAME_F_QUEUED,
                pid: creds.pid,
                uid: creds.uid,
                gid: creds.gid,
                src: &src,
                dst: &dst,
            };
            slot.buf().mark(&slot, &info);
            rx.queue.push(skb);
            if let Some(cur) = rx.ring.as_mut() {
                cur.commit(slot, true);
            }
            // Reserving may have reclaimed (and reused) the frame a waiting
            // sender marked, rewriting its mark: that sender looks again.
            wake_senders = rx.waiters > 0;
        } else {
            rx.queue.push(skb);
        }
        rx.events += 1;
        drop(rx);
        self.wake(sock, bindings::EPOLLIN | bindings::EPOLLRDNORM);
        if wake_senders {
            self.writers.notify_all();
        }
        Ok(Delivery::Queued)
    }

    /// Forgets the users with nothing queued, once there are too many to
    /// keep.  Users stay accounted while idle, so that a steady sender
    /// costs no allocation per message.
    fn prune_idle_users(users: &mut RBTree<u32, Usage>) {
        if users.iter().count() < MAX_QUEUE_USERS {
            return;
        }
        let mut idle = [0u32; MAX_QUEUE_USERS];
        let mut n = 0;
        for (uid, u) in users.iter() {
            if u.msgs == 0 && n < idle.len() {
                idle[n] = *uid;
                n += 1;
            }
        }
        for uid in &idle[..n] {
            users.remove(uid);
        }
    }

    /// Gives a message's charge back once it leaves the queue.
    fn uncharge(rx: &mut RxState, skb: &Skb) {
        let size = skb.truesize();
        rx.total.sub(size);
        if !skb.charged() {
            return;
        }
        if let Some(u) = rx.users.get_mut(&skb.quota_uid()) {
            u.sub(size);
        }
    }

    /// Queues a kernel notification for this master, or counts it lost.
    fn notify(&self, sock: &ARef<BusSock>, bus: &Bus, bytes: &[u8]) {
        let mut skb = match Skb::alloc_kernel(crate::meta::len(0), bytes.len()) {
            Ok(skb) => skb,
            Err(_) => return self.lose_notification(sock),
        };
        skb.put_bytes(bytes);
        let meta = crate::meta::Meta {
            src: AddrPart::KERNEL,
            dst: bus.master_addr().addr,
            flags: 0,
        };
        crate::meta::write(skb.meta_mut(), &meta, None, core::iter::empty());
        match self.enqueue(sock, skb, false, true, None) {
            Ok(Delivery::Queued) => {}
            Ok(Delivery::Full(skb, _) | Delivery::Moved(skb)) => {
                skb.discard(sock, DropReason::Full);
                self.lose_notification(sock);
            }
            Err(e) if e == errno::emsgsize() => self.lose_notification(sock),
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
            let mut rx = self.rx_lock();
            if let Some(cur) = &rx.ring {
                if cur.ring().is_mapped() || cur.busy() {
                    return Err(EBUSY);
                }
            }
            if new.is_some() {
                self.ring_ever.store(true, Ordering::Relaxed);
            }
            rx.ring_total = Usage::default();
            rx.ring_users = RBTree::new();
            let old = core::mem::replace(&mut rx.ring, new);
            (old, core::mem::take(&mut rx.pollers))
        };
        let (old, pollers) = old;
        // Freed unlocked (`vfree` may sleep).
        drop(old);
        // Senders that waited for a frame of the old ring look again.
        self.wake_senders(pollers);
        Ok(())
    }

    /// Wakes the senders blocked on this receiver and the endpoints that
    /// polled it full (`pollers`, taken under the rx lock by the caller).
    fn wake_senders(&self, pollers: KVec<SockLink>) {
        self.writers.notify_all();
        for link in pollers.iter() {
            let sock = link.lock().as_ref().map(ListedSock::get);
            if let Some(sock) = sock {
                sock.state().polling.store(false, Ordering::Relaxed);
                sock.write_space();
            }
        }
    }

    /// The receive ring, counted as mapped (under the lock that
    /// `set_ring` checks that count under), for `mmap`.
    pub(crate) fn map_ring(&self) -> Option<Arc<RingBuf>> {
        let rx = self.rx_lock();
        let buf = rx.ring.as_ref()?.ring().clone();
        buf.map();
        Some(buf)
    }

    /// Whether a message may go into a ring: not one carrying files or
    /// grants, which need the queue's control messages.
    #[inline]
    fn ring_eligible(skb: &Skb) -> bool {
        !skb.has_files() && crate::meta::grants(skb.meta()).next().is_none()
    }

    /// Marks a reserved frame filled (or, if `ok` is false, discarded) and
    /// publishes every frame that is ready, in order.
    fn commit(&self, sock: &BusSock, slot: Slot, ok: bool) {
        let waiters = {
            let mut rx = self.rx_lock();
            if let Some(cur) = rx.ring.as_mut() {
                // The ring cannot change while a frame is reserved.
                cur.commit(slot, ok);
            }
            rx.events += 1;
            rx.waiters > 0
        };
        self.wake(sock, bindings::EPOLLIN | bindings::EPOLLRDNORM);
        if waiters {
            // A sender that found every frame reserved had none to mark
            // `waiting`: the published frame now is one.
            self.writers.notify_all();
        }
    }

    /// Gives back a frame reserved and not filled (see
    /// [`RingCursor::cancel`]).
    fn cancel(&self, slot: Slot) {
        let mut rx = self.rx_lock();
        let uid = match rx.ring.as_mut() {
            Some(cur) => cur.cancel(slot),
            None => return,
        };
        if let Some(uid) = uid {
            let RxState {
                ring_total,
                ring_users,
                ..
            } = &mut *rx;
            Self::ring_uncharge(ring_total, ring_users, uid);
        }
        // The frame is free again.
        let wake = rx.waiters > 0 || !rx.pollers.is_empty();
        let pollers = core::mem::take(&mut rx.pollers);
        drop(rx);
        if wake {
            self.wake_senders(pollers);
        }
    }

    /// Copies a unicast straight from the sender into the receiver's
    /// ring, waiting for a free frame unless non-blocking.  `Ok(false)`:
    /// the receiver has no ring, or the sender's buffer is not in memory
    /// (the copy runs with page faults disabled, so that a sender whose
    /// buffer faults slowly, or forever, never holds a frame that later
    /// frames wait behind): the message then takes the queue's path.
    fn send_to_ring(
        &self,
        bus: &Bus,
        route: &Route,
        msg: &mut Msg<'_>,
        len: usize,
        sender: RingSender<'_>,
        timeo: &mut c_long,
    ) -> Result<bool> {
        let RingSender {
            creds,
            quota_uid: uid,
            dst,
        } = sender;
        let receiver = &route.receiver;
        let ep = receiver.state();
        // Both addresses are on this bus: its prefix and the address
        // parts, encoded before a frame is reserved.
        let (sn, sa) = route.src.raw();
        let (dn, da) = dst.raw();
        let (src, dst) = (
            bus.encode_raw(sn, sa).ok_or(EINVAL)?,
            bus.encode_raw(dn, da).ok_or(EINVAL)?,
        );
        // The sender's pages are brought in before a frame is reserved:
        // however long that takes (a slow or stalled filesystem,
        // userfaultfd), no frame waits for it.  An unreadable buffer
        // takes the queue's path, which reports it.
        if !msg.fault_in(len) {
            return Ok(false);
        }
        loop {
            let reserved = {
                let mut rx = ep.rx_lock();
                if bus.routes() != route.routes {
                    // Routed again by the queue's path.
                    return Ok(false);
                }
                if rx.dead {
                    return Err(errno::econnreset());
                }
                if rx.closed {
                    return Err(errno::ehostunreach());
                }
                Self::reserve_locked(&mut rx, receiver, len, creds, Some(uid))?
            };
            match reserved {
                Reserve::NoRing => return Ok(false),
                Reserve::Frame(slot, ReaderCreds { pid, uid, gid }) => {
                    let info = FrameInfo {
                        // Bounded by the frame size, itself below 64 MiB.
                        len: len as u32,
                        flags: 0,
                        pid,
                        uid,
                        gid,
                        src: &src,
                        dst: &dst,
                    };
                    if slot.buf().fill(&slot, &info, FrameSource::Msg(msg)) {
                        ep.commit(receiver, slot, true);
                        return Ok(true);
                    }
                    // The pages went again since: the queue's path.
                    ep.cancel(slot);
                    return Ok(false);
                }
                Reserve::Full => ep.wait_for_frame(Some(uid), timeo)?,
            }
        }
    }

    /// Sleeps until the reader may have handed a frame back.  The oldest
    /// frame the reader holds is marked `waiting`; the reader, handing it
    /// back, sees the mark and `poll`s, which wakes us (so do its
    /// `recvmsg`, a commit while every frame is still being filled, and
    /// the socket's close or death).  No timer looks again.  `EAGAIN` once
    /// `timeo` has run out; a signal gives `ERESTARTSYS` (or `EINTR` when
    /// a timeout was set), and `MAX_SCHEDULE_TIMEOUT` stays infinite.
    fn wait_for_frame(&self, uid: Option<u32>, timeo: &mut c_long) -> Result {
        if *timeo <= 0 {
            return Err(EAGAIN);
        }
        let mut rx = self.rx_lock();
        // Look again under the lock that `poll` notifies under: a frame
        // handed back, and the reader's `poll` that followed, between the
        // failed reservation and now would otherwise leave us asleep.
        Self::ring_reclaim(&mut rx);
        let full = Self::ring_admission(&rx, uid) == Admit::Full;
        if rx.dead || rx.closed || !full {
            return Ok(());
        }
        if let Some(cur) = rx.ring.as_ref() {
            // Handed back between the look above and the mark: look again.
            if cur
                .oldest_published()
                .is_some_and(|i| cur.ring().wait_for(i))
            {
                return Ok(());
            }
        }
        rx.waiters += 1;
        let woke = self
            .writers
            .wait_interruptible_timeout(&mut rx.guard, *timeo as _);
        rx.waiters -= 1;
        match woke {
            CondVarTimeoutResult::Signal { .. } => Err(crate::sys::intr_errno(*timeo)),
            CondVarTimeoutResult::Timeout => {
                *timeo = 0;
                Ok(())
            }
            CondVarTimeoutResult::Woken { jiffies } => {
                if *timeo != bindings::MAX_SCHEDULE_TIMEOUT as c_long {
                    *timeo = jiffies as c_long;
                }
                Ok(())
            }
        }
    }

    /// The source and destination of a queued message, as a frame header
    /// shows them, and its frame flags.
    fn frame_addrs(bus: &Bus, skb: &Skb) -> Result<FrameAddrs> {
        let meta = crate::meta::read(skb.meta()).ok_or(EINVAL)?;
        let multicast = meta.flags & crate::meta::META_MULTICAST != 0;
        Ok(FrameAddrs {
            src: bus.addr(meta.src).encode(),
            dst: crate::meta::dst_addr(&meta, &bus.master_addr()).encode(),
            flags: if multicast { BUS_FRAME_F_MULTICAST } else { 0 },
        })
    }

    /// Copies a message that is already in an skb into the frame reserved
    /// for it (a filtered unicast, a multicast copy, a sender's fallback).
    fn skb_to_ring(
        &self,
        sock: &ARef<BusSock>,
        bus: Option<Arc<Bus>>,
        reserved: Reserve,
        skb: Skb,
    ) -> Result<Delivery> {
        let (slot, ReaderCreds { pid, uid, gid }) = match reserved {
            Reserve::Frame(slot, creds) => (slot, creds),
            Reserve::Full => return Ok(Delivery::Full(skb, sock.clone())),
            // The ring was there under the lock just dropped.
            Reserve::NoRing => return Err(errno::ehostunreach()),
        };
        // Released meanwhile: the slot, dropped, hands the frame back.
        let bus = bus.ok_or(errno::ehostunreach())?;
        let FrameAddrs { src, dst, flags } = Self::frame_addrs(&bus, &skb)?;
        let info = FrameInfo {
            // Bounded by the frame size, itself below 64 MiB.
            len: skb.len() as u32,
            flags,
            pid,
            uid,
            gid,
            src: &src,
            dst: &dst,
        };
        let ok = slot.buf().fill(&slot, &info, FrameSource::Skb(&skb));
        self.commit(sock, slot, ok);
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
        if dst.addr.is_kernel() || (dst.multicast && (cmsgs.has_grants() || cmsgs.expect_reply)) {
            // Grants and expected answers are of one endpoint; nobody
            // sends to the kernel.
            return Err(EINVAL);
        }
        if len > sock.max_payload() {
            return Err(errno::emsgsize());
        }
        let mut scm = Scm::send(sock, msg)?;
        scm.refuse_sockets()?;
        // Every path the message names is walked now, before any lock of
        // ours is taken; under the locks only keys are compared.
        let resolved = Resolved::of(sock, &dst, &cmsgs)?;
        let plain = !dst.multicast && !cmsgs.has_grants();
        // A message expecting an answer is looked up: the bus notes it.
        let cacheable = plain && !cmsgs.has_src() && !cmsgs.expect_reply;
        let (bus, hit) = self.attach(sock, &dst, resolved.dst, cacheable)?;
        let mut timeo: c_long = sock.sndtimeo(nonblock);
        let uid = crate::sys::quota_uid();
        scm.charge_files(uid)?;
        // A unicast without grants is routed here: by the route this
        // socket took last if it still holds, else under the bus lock,
        // which is only for the lookup.  The route is checked again where
        // the message is queued (or its frame reserved).
        let mut route = None;
        let mut owed = Owed::new(&bus, sock);
        if plain {
            let r = route.insert(match hit {
                Some(hit) => hit,
                None => self.route(sock, &bus, &dst, &cmsgs, &resolved, None)?,
            });
            owed.track(r);
            // One copy, when the receiver has a ring.  A receiver's
            // filter needs the message in an skb: those take the
            // ordinary path, and the ring from there.
            if !scm.has_files()
                && r.receiver.state().ring_ever.load(Ordering::Relaxed)
                && !r.receiver.has_filter()
            {
                let sender = RingSender {
                    creds: crate::sys::sender_creds(&scm),
                    quota_uid: uid,
                    dst: &dst.addr,
                };
                if self.send_to_ring(&bus, r, msg, len, sender, &mut timeo)? {
                    owed.spent();
                    return Ok(len);
                }
            }
        }
        let ngrants = cmsgs.ngrants();
        let mut skb = Skb::alloc_send(crate::meta::len(ngrants), len)?;
        skb.put_from_msg(msg, len)?;
        scm.into_skb(&mut skb, uid);
        skb.set_owner(sock);
        if dst.multicast {
            self.multicast(sock, &bus, &dst, cmsgs.src().as_ref(), &resolved, skb)?;
            return Ok(len);
        }
        if !plain {
            loop {
                match Self::deliver_granting(sock, &bus, &dst, &cmsgs, &resolved, skb)? {
                    Delivery::Queued => return Ok(len),
                    Delivery::Full(full, receiver) => {
                        receiver
                            .state()
                            .wait_for_room(&receiver, &full, &mut timeo)?;
                        // Routed again: the address may have moved.
                        skb = full;
                    }
                    Delivery::Moved(moved) => skb = moved,
                }
            }
        }
        let mut r = route.ok_or(EINVAL)?;
        loop {
            let meta = crate::meta::Meta {
                src: r.src,
                dst: dst.addr,
                flags: 0,
            };
            crate::meta::write(skb.meta_mut(), &meta, None, core::iter::empty());
            let receiver = r.receiver.clone();
            let delivery = receiver.state().enqueue(
                &receiver,
                skb,
                true,
                true,
                Some(RoutedAt {
                    bus: &bus,
                    routes: r.routes,
                }),
            )?;
            skb = match delivery {
                Delivery::Queued => {
                    owed.spent();
                    return Ok(len);
                }
                Delivery::Full(skb, _) => {
                    receiver
                        .state()
                        .wait_for_room(&receiver, &skb, &mut timeo)?;
                    skb
                }
                Delivery::Moved(skb) => skb,
            };
            // Routed again: the address may have moved meanwhile.
            owed.reroute();
            r = self.route(sock, &bus, &dst, &cmsgs, &resolved, Some(&owed))?;
            owed.track(&r);
        }
    }

    /// Looks up the route of a unicast without grants under the bus lock,
    /// and remembers it if it may be taken again without one (no source
    /// address, no answer expected or passed on: see [`Bus::lookup`]).
    /// `again`: the message was routed before, and holds those answers.
    fn route(
        &self,
        sock: &BusSock,
        bus: &Bus,
        dst: &BusAddr,
        cmsgs: &BusCmsgs<'_>,
        resolved: &Resolved,
        again: Option<&Owed<'_>>,
    ) -> Result<Route> {
        let cache = !cmsgs.has_src() && !cmsgs.expect_reply;
        let found = bus.lookup(
            sock,
            dst,
            cmsgs.src().as_ref(),
            resolved,
            cmsgs.expect_reply,
            again.and_then(Owed::held),
        )?;
        let r = Route {
            src: found.src,
            receiver: found.receiver,
            routes: found.routes,
            answer: found.answer,
            noted: found.noted,
        };
        if cache && !r.answer {
            self.cache_route(dst, &r);
        }
        Ok(r)
    }

    /// Tries to deliver `skb`, carrying the grants of `cmsgs`, from the
    /// master `sock` to `dst`: the bus checks the grants and keeps its lock
    /// while the message is queued, then applies them, so that a member
    /// never sees its grants without the message or the message without
    /// them.
    fn deliver_granting(
        sock: &BusSock,
        bus: &Bus,
        dst: &BusAddr,
        cmsgs: &BusCmsgs<'_>,
        resolved: &Resolved,
        mut skb: Skb,
    ) -> Result<Delivery> {
        let plan = bus.plan_grants(sock, dst, cmsgs, resolved, &mut skb)?;
        let delivery = plan
            .receiver
            .state()
            .enqueue(&plan.receiver, skb, true, false, None)?;
        match delivery {
            Delivery::Queued => {
                plan.apply();
                Ok(Delivery::Queued)
            }
            other => Ok(other),
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
        resolved: &Resolved,
        mut skb: Skb,
    ) -> Result {
        let crate::bus::Fanout {
            src,
            receivers,
            routes,
        } = bus.multicast(sock, dst, src, resolved)?;
        let meta = crate::meta::Meta {
            src,
            dst: dst.addr,
            flags: crate::meta::META_MULTICAST,
        };
        crate::meta::write(skb.meta_mut(), &meta, None, core::iter::empty());
        let mut skb = Some(skb);
        let last = receivers.len().saturating_sub(1);
        for (i, r) in receivers.iter().enumerate() {
            // The last receiver gets the message itself, the others
            // copies.  No memory for a copy: a counted drop for that
            // receiver (as netlink does), and the others still get theirs.
            let copy = match i == last {
                true => skb.take(),
                false => skb.as_ref().and_then(|s| s.clone_for_receiver().ok()),
            };
            let Some(copy) = copy else {
                r.state().overrun(r);
                continue;
            };
            // Queued under the generation it was routed under, or checked
            // again: a grant queued before it may have closed the masks.
            let (mut copy, mut routes) = (copy, routes);
            let delivery = loop {
                let at = RoutedAt { bus, routes };
                match r.state().enqueue(r, copy, true, true, Some(at)) {
                    Ok(Delivery::Moved(moved)) => match bus.still_reaches(sock, r) {
                        Ok(Some(now)) => (copy, routes) = (moved, now),
                        Ok(None) => {
                            moved.discard(r, DropReason::Filter);
                            break Ok(Delivery::Queued);
                        }
                        Err(e) => {
                            moved.discard(r, DropReason::Close);
                            break Err(e);
                        }
                    },
                    other => break other,
                }
            };
            match delivery {
                Ok(Delivery::Queued) => {}
                Ok(Delivery::Full(copy, _) | Delivery::Moved(copy)) => {
                    copy.discard(r, DropReason::Full);
                    r.state().overrun(r);
                }
                // The receiver is going, or its bus is: nobody to tell.
                Err(e) if e == errno::econnreset() || e == errno::ehostunreach() => {}
                // Too large for its queue or its ring, or no memory to
                // queue it: a counted drop.
                Err(_) => r.state().overrun(r),
            }
        }
        Ok(())
    }

    /// Counts a lost multicast copy.
    fn overrun(&self, sock: &BusSock) {
        sock.count_drop();
        let report = {
            let mut rx = self.rx_lock();
            rx.overrun = true;
            rx.events += 1;
            !rx.no_enobufs
        };
        if report {
            self.wake(sock, bindings::EPOLLERR);
        }
    }

    /// `BUS_NO_ENOBUFS`.
    pub(crate) fn set_no_enobufs(&self, on: bool) {
        let mut rx = self.rx_lock();
        rx.no_enobufs = on;
        if on {
            rx.overrun = false;
        }
    }

    /// `BUS_NO_ENOBUFS`, read.
    pub(crate) fn no_enobufs(&self) -> bool {
        self.rx_lock().no_enobufs
    }

    /// Sleeps until `skb` would fit in this receiver's queue (or ring), it
    /// closes or dies, the timeout runs out (`EAGAIN`) or a signal comes.
    fn wait_for_room(&self, sock: &BusSock, skb: &Skb, timeo: &mut c_long) -> Result {
        let uid = Some(skb.quota_uid());
        let mut rx = self.rx_lock();
        loop {
            if rx.closed || rx.dead {
                return Ok(());
            }
            if rx.ring.is_some() {
                Self::ring_reclaim(&mut rx);
                if Self::ring_admission(&rx, uid) == Admit::Full {
                    // The reader hands frames back without a call: mark
                    // the frame we wait for, and sleep until its poll.
                    drop(rx);
                    self.wait_for_frame(uid, timeo)?;
                    rx = self.rx_lock();
                    continue;
                }
                if Self::ring_eligible(skb) {
                    return Ok(());
                }
            }
            if Self::admission(sock, &rx, uid, skb.truesize()) != Admit::Full {
                return Ok(());
            }
            if *timeo <= 0 {
                return Err(EAGAIN);
            }
            rx.waiters += 1;
            // `timeo` is positive here.
            let woke = self
                .writers
                .wait_interruptible_timeout(&mut rx.guard, *timeo as _);
            rx.waiters -= 1;
            match woke {
                CondVarTimeoutResult::Timeout => return Err(EAGAIN),
                CondVarTimeoutResult::Signal { .. } => return Err(crate::sys::intr_errno(*timeo)),
                CondVarTimeoutResult::Woken { jiffies } => {
                    if *timeo != bindings::MAX_SCHEDULE_TIMEOUT as c_long {
                        *timeo = jiffies as c_long;
                    }
                }
            }
        }
    }

    /// `recvmsg`.  Receives are serialised by `iolock` from the look at
    /// the queue to the end of the delivery: a message leaves the queue
    /// only once it was delivered, so a receive that fails leaves it.
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
            let seen = {
                let _io = self.iolock.lock();
                let mut rx = self.rx_lock();
                if rx.dead {
                    return Err(errno::econnreset());
                }
                if rx.overrun && !peek {
                    rx.overrun = false;
                    if !rx.no_enobufs {
                        return Err(errno::enobufs());
                    }
                }
                if let Some(skb) = rx.queue.peek() {
                    let bus = rx.bus.clone().ok_or(errno::econnreset())?;
                    drop(rx);
                    let n = Self::deliver_to_user(&bus, sock, msg, &skb, size, flags, peek)?;
                    if !peek {
                        self.consume(&skb);
                    }
                    return Ok(n);
                }
                if rx.notify_dropped > 0 {
                    let dropped = rx.notify_dropped;
                    let bus = rx.bus.clone().ok_or(errno::econnreset())?;
                    drop(rx);
                    let n = Self::deliver_overflow(&bus, msg, dropped, size)?;
                    if !peek {
                        let mut rx = self.rx_lock();
                        rx.notify_dropped = rx.notify_dropped.saturating_sub(dropped);
                    }
                    return Ok(n);
                }
                rx.events
            };
            if timeo == 0 {
                return Err(EAGAIN);
            }
            self.wait_for_event(seen, &mut timeo)?;
        }
    }

    /// Takes a delivered message out of the queue (unless the bus died
    /// and took it first), and lets blocked and polling senders look for
    /// room.
    fn consume(&self, skb: &Skb) {
        let (taken, wake, pollers) = {
            let mut rx = self.rx_lock();
            let taken = rx.queue.unlink_first(skb);
            if let Some(skb) = &taken {
                Self::uncharge(&mut rx, skb);
            }
            (taken, rx.waiters > 0, core::mem::take(&mut rx.pollers))
        };
        if let Some(skb) = taken {
            skb.consume();
        }
        if wake || !pollers.is_empty() {
            self.wake_senders(pollers);
        }
    }

    /// Whether the master of `bus` has room for a small message from the
    /// calling task (`POLLOUT` of an endpoint, whose master is the one
    /// destination it always has, as AF_UNIX reports it for a connected
    /// datagram socket).  Without room, the endpoint waits in the
    /// master's `pollers` to be woken when the master reads.
    fn writable(&self, bus: &Bus) -> bool {
        let Some(master) = bus.master_sock() else {
            return true;
        };
        let uid = Some(crate::sys::quota_uid());
        let ep = master.state();
        let mut rx = ep.rx_lock();
        if rx.closed || rx.dead {
            return true;
        }
        if rx.ring.is_some() {
            Self::ring_reclaim(&mut rx);
        }
        let full = Self::ring_admission(&rx, uid) == Admit::Full
            || Self::admission(&master, &rx, uid, SMALL_MESSAGE) == Admit::Full;
        if !full {
            return true;
        }
        if !self.polling.swap(true, Ordering::Relaxed)
            && rx.pollers.push(self.link.clone(), GFP_KERNEL).is_err()
        {
            // Cannot wait to be told: say writable, and let the send's
            // `EAGAIN` speak.
            self.polling.store(false, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Sleeps until `RxState::events` is no longer `seen`, a signal
    /// (`ERESTARTSYS`, or `EINTR` with a timeout set) or the timeout
    /// (`EAGAIN`).
    fn wait_for_event(&self, seen: u64, timeo: &mut c_long) -> Result {
        let mut rx = self.rx_lock();
        while rx.events == seen {
            if *timeo <= 0 {
                return Err(EAGAIN);
            }
            match self
                .readers
                .wait_interruptible_timeout(&mut rx.guard, *timeo as _)
            {
                CondVarTimeoutResult::Timeout => *timeo = 0,
                CondVarTimeoutResult::Signal { .. } => return Err(crate::sys::intr_errno(*timeo)),
                CondVarTimeoutResult::Woken { jiffies } => {
                    if *timeo != bindings::MAX_SCHEDULE_TIMEOUT as c_long {
                        *timeo = jiffies as c_long;
                    }
                }
            }
        }
        Ok(())
    }

    fn deliver_to_user(
        bus: &Bus,
        sock: &BusSock,
        msg: &mut Msg<'_>,
        skb: &Skb,
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
        msg.copy_from_skb(skb, copied)?;
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
        // Last, since it cannot be undone: files are installed (or, with
        // `peek`, duplicates of them).
        msg.put_scm(sock, skb, flags, peek);
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

    /// The poll mask.  No lock is taken but where the state lives behind
    /// one: the frames of a receive ring (memory the reader writes, read
    /// under the lock that keeps the ring in place, which senders waiting
    /// for a frame are woken under), and an endpoint's room at a master
    /// whose queue is at least half full (`writable`).
    pub(crate) fn poll(&self) -> u32 {
        let mut mask = self.pollmask.load(Ordering::Acquire);
        let endpoint_of = self.endpoint_of.get();
        // A member learns of its bus's death from `die`, after the bus
        // was marked dead: from then on, already, its calls fail.
        if endpoint_of.is_some_and(Bus::is_dead) {
            mask |= bindings::EPOLLHUP | bindings::EPOLLERR;
        }
        if self.ring_ever.load(Ordering::Relaxed) {
            let mut rx = self.rx_lock();
            if rx.ring.as_ref().is_some_and(RingCursor::ready) {
                mask |= bindings::EPOLLIN | bindings::EPOLLRDNORM;
            }
            // The reader may have handed frames back: senders blocked
            // here, and endpoints that polled this ring full, look again.
            let wake = rx.ring.is_some() && (rx.waiters > 0 || !rx.pollers.is_empty());
            let pollers = match wake {
                true => core::mem::take(&mut rx.pollers),
                false => KVec::new(),
            };
            drop(rx);
            if wake {
                self.wake_senders(pollers);
            }
        }
        // Sending never waits for the sender's own buffer: only a full
        // receiver makes a send wait, and that is per destination.  An
        // endpoint's is its master.
        let writable = match endpoint_of {
            None => true,
            Some(bus) => bus.master_room() || self.writable(bus),
        };
        if mask & bindings::EPOLLHUP == 0 && writable {
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
