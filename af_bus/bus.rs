// SPDX-License-Identifier: GPL-2.0

//! Buses: who is on them, which addresses they own, and the registry that
//! names them.
//!
//! Lock order (see "Locking" in `Documentation/af_bus.rst`): the parent
//! directory's `i_rwsem` (only `bind()` of a filesystem bus holds it, from
//! creating the socket inode until it is committed), then
//! `Endpoint::iolock` (a receiver's own), then `EndpointInner` (a socket's
//! own role), then `RegistryInner` or `BusInner`, then `RxState` (a
//! receiver's queue).  Nothing takes an `EndpointInner` while holding a
//! bus or registry lock, and nothing enters the VFS (a path walk, a
//! permission check), touches user memory or waits on another subsystem
//! while holding any of these but `iolock`: every path a call names is
//! resolved to a [`BusKey`] first, and keys are compared under the locks.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel::error::{code::*, Result};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation};
use kernel::sync::lock::{mutex::MutexBackend, Guard};
use kernel::sync::{Arc, Mutex, UniqueArc};
use kernel::types::ARef;

use crate::addr::{AddrPart, BusAddr, BusPath, NamePrefix, PathKind};
use crate::bloom::{self, Bitmap, IndexKey, MONITOR_KEY};
use crate::cmsg::{Access, BusCmsgs, GrantKind};
use crate::sys::{errno, ListedSock, NewSocketNode, PathRef, PeerCred, Sock};
use crate::uapi::{BUS_PATH_MAX, SOCKADDR_BUS_SIZE};

/// How a bus is found: by its socket inode, or by its abstract name in a
/// network namespace.  The identity of a bus: never its path's text.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum BusKey {
    Inode(usize),
    Abstract(usize, [u8; BUS_PATH_MAX]),
}

impl BusKey {
    #[inline(always)]
    fn of_abstract(net_id: usize, path: &BusPath) -> BusKey {
        let mut name = [0u8; BUS_PATH_MAX];
        name[..path.name().len()].copy_from_slice(path.name());
        BusKey::Abstract(net_id, name)
    }
}

/// A socket on a bus other than its master: pending until it owns an
/// address, a member after.
struct Member<T> {
    sock: ListedSock<T>,
    handle: AddrPart,
    /// The number in `handle`: never reused on its bus.
    id: u64,
    owned: KVec<AddrPart>,
    /// Match grants.
    matches: KVec<Match>,
    /// Send grants.
    sends: KVec<Bitmap>,
    /// Its classes (`SCM_POLICY_CLASSES`).
    classes: u64,
    /// The access masks (`SCM_ADDR_ACCESS`) of the addresses in `owned`
    /// that have any.
    access: KVec<(AddrPart, Access)>,
    /// The ids of the members that may each send it one message the
    /// masks refuse (its `SCM_EXPECT_REPLY` messages to them); 0 is a
    /// free slot.  At most [`MAX_REPLIES`]; a new one takes a free slot,
    /// else the one after the last taken.
    replies: KVec<u64>,
    /// The slot of `replies` the next one takes when none is free.
    next_reply: usize,
}

/// Most answers a member may be owed at once (see [`Member::replies`]):
/// kdbus's `KDBUS_CONN_MAX_REQUESTS_PENDING`.
const MAX_REPLIES: usize = 128;

impl<T> Member<T> {
    /// Whether a message from `self` may reach `to` (see
    /// [`crate::cmsg::admits`]).
    fn admits(&self, to: &Member<T>) -> bool {
        (self.access.is_empty() && to.access.is_empty())
            || crate::cmsg::admits(
                self.classes,
                self.access.iter().map(|(_, a)| a),
                to.classes,
                to.access.iter().map(|(_, a)| a),
            )
    }

    /// Takes the answer it owes `from`, if it owes one.
    fn take_reply(&mut self, from: u64) -> bool {
        match self.replies.iter().position(|&r| r == from) {
            Some(i) => {
                self.replies[i] = 0;
                true
            }
            None => false,
        }
    }

    /// Lets `from` answer it once more.
    fn owe_reply(&mut self, from: u64) -> Result {
        if let Some(free) = self.replies.iter().position(|&r| r == 0) {
            self.replies[free] = from;
        } else if self.replies.len() < MAX_REPLIES {
            self.replies.push(from, GFP_KERNEL)?;
        } else {
            // The oldest goes, roughly: its answer will be refused.
            let i = self.next_reply % MAX_REPLIES;
            self.replies[i] = from;
            self.next_reply = i + 1;
        }
        Ok(())
    }
}

/// A member's match grant.
#[derive(Clone, Copy)]
struct Match {
    /// Its id in the bus's index, in the order granted.
    id: u64,
    mask: Bitmap,
    /// Where it is filed: chosen when it is (see [`Bitmap::index_key`]).
    key: IndexKey,
}

/// A match grant in the bus's multicast index.
#[derive(Clone, Copy)]
struct MatchGrant {
    mask: Bitmap,
    member: usize,
    /// Its third key bit, for rebuilding the filter of third bits.
    third: u16,
}

/// The paths of a message resolved before any lock is taken: whether its
/// source address (`SCM_SRC_ADDR`) and each grant name the bus of its
/// destination.  Under the locks only keys are compared.
#[derive(Clone, Copy)]
pub(crate) struct Resolved {
    /// The destination's bus.
    pub(crate) dst: BusKey,
    /// `SCM_SRC_ADDR`'s path names that bus (true without one).
    pub(crate) src_here: bool,
    /// Every grant's path names that bus (true without grants).
    pub(crate) grants_here: bool,
}

impl Resolved {
    /// Walks the paths `dst` and `cmsgs` name, as seen from `sock`, with
    /// none of the module's locks held (a walk may sleep on any
    /// filesystem).  A path with the destination's text is walked once.
    #[inline]
    pub(crate) fn of<T: Send + Sync>(
        sock: &Sock<T>,
        dst: &BusAddr,
        cmsgs: &BusCmsgs<'_>,
    ) -> Result<Resolved> {
        let key = Registry::<T>::key_of(sock, &dst.path)?;
        let here = |path: &BusPath| -> Result<bool> {
            Ok(path == &dst.path || Registry::<T>::key_of(sock, path)? == key)
        };
        let src_here = match &cmsgs.src() {
            Some(a) => here(&a.path)?,
            None => true,
        };
        let mut grants_here = true;
        for g in cmsgs.grants() {
            grants_here &= here(&g.addr.path)?;
        }
        Ok(Resolved {
            dst: key,
            src_here,
            grants_here,
        })
    }
}

/// Who sends, as the bus sees it.
enum Sender<'a, T> {
    Master,
    Member(&'a Member<T>),
}

/// The most bits of a multicast bitmap that [`BusInner::matching`] pairs
/// one by one.
const MATCHING_BITS: usize = 64;

/// The most bits of a message above a pair's that
/// [`BusInner::matching`] looks up in the filter of third bits.
const THIRDS_MAX_ABOVE: usize = 6;

/// Fewest and most buckets of a bus's multicast index.
const INDEX_MIN_BUCKETS: usize = 64;
const INDEX_MAX_BUCKETS: usize = 16384;

/// Words of a bus's filter of third index bits (16 KiB, 131,072 bits:
/// with 10,000 grants, about 7% of its bits set).
const THIRDS_WORDS: usize = 2048;

/// The bit of `thirds` for the index bits (`k1`, `k2`, `k3`).
#[inline]
fn third_bit(k1: u16, k2: u16, k3: u16) -> (usize, u64) {
    let key = (u64::from(k1) << 32) | (u64::from(k2) << 16) | u64::from(k3);
    let h = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 47) as usize;
    (h / 64 % THIRDS_WORDS, 1 << (h % 64))
}

/// Whether a grant filed under (`k1`, `k2`) may match a message whose
/// bits above `k2` are `above`, by the filter `thirds`: the filter knows
/// a grant of fewer than three bits there, or one whose third bit is in
/// `above`.  Without a filter, every pair may.
#[inline]
fn may_match(thirds: &KVVec<u64>, k1: u16, k2: u16, above: &[u16]) -> bool {
    let known = |k3| {
        let (word, bit) = third_bit(k1, k2, k3);
        thirds.get(word).map_or(true, |w| w & bit != 0)
    };
    known(MONITOR_KEY) || above.iter().any(|&k3| known(k3))
}

/// What a match grant is filed under: its index pair, then its id.
type FiledKey = (u16, u16, u64);

/// The bucket of the index pair (`k1`, `k2`) in an index of `buckets`
/// buckets (a power of two): Fibonacci hashing of the pair.
#[inline]
fn index_bucket(k1: u16, k2: u16, buckets: usize) -> usize {
    if buckets <= 1 {
        // No index yet (or one bucket): whatever is asked of it is empty.
        return 0;
    }
    let pair = u32::from(k1) * (bloom::BITS as u32 + 1) + u32::from(k2);
    // `buckets` is a power of two from 2 to `INDEX_MAX_BUCKETS`.
    let shift = buckets.trailing_zeros().min(31);
    (pair.wrapping_mul(0x9e37_79b9) >> (32 - shift)) as usize
}

/// State of a bus behind [`Bus::inner`].
struct BusInner<T> {
    master: Option<ListedSock<T>>,
    next_handle: u64,
    policy: u32,
    /// Granted addresses and handles, to the key of their member.
    owners: RBTree<AddrPart, usize>,
    /// Members by socket address.
    members: RBTree<usize, Member<T>>,
    /// Match grants, filed under a pair of bits of their mask (the two
    /// lower of its three least held bits when filed, see
    /// [`Bitmap::index_key`]; the zero masks under `(MONITOR_KEY,
    /// MONITOR_KEY)`) in a hash table of small trees: bucket
    /// [`index_bucket`]`(k1, k2)` holds the grants of that pair by (k1,
    /// k2, id).  A message with
    /// bitmap `B` only looks at the grants filed under two bits set in
    /// `B`, and monitors.  Empty until the bus's first match grant (see
    /// `reserve_index`), and holds about two grants per bucket.
    filed: KVVec<RBTree<FiledKey, MatchGrant>>,
    /// Grants in `filed`, and how many of them are monitors (zero masks).
    nfiled: usize,
    monitors: usize,
    /// The first index bits that have grants filed under them.
    firsts: Bitmap,
    /// For each first index bit, the second index bits that have grants
    /// filed under them, so that a message seeks only pairs that exist.
    seconds: KVVec<Bitmap>,
    /// A bloom filter of the grants' (first, second, third) index bits
    /// (see [`third_bit`]): a message looks at the grants of a pair only
    /// if it has a third bit the filter knows under that pair.  Bits are
    /// not cleared when grants go, only when the filter is rebuilt.
    thirds: KVVec<u64>,
    /// Grants taken out since `thirds` was last rebuilt.
    thirds_stale: usize,
    /// For each bit, how many grants filed have it in their mask: what
    /// a new grant's key avoids.
    held: KVVec<u32>,
    next_match: u64,
}

impl<T: Send + Sync> BusInner<T> {
    /// Makes sure the index exists with buckets for `extra` more
    /// grants, so that filing them cannot fail: 48 KiB of summaries and
    /// 512 B to 128 KiB of buckets, charged to the master's memory
    /// cgroup; a failure is the grant's ENOMEM, not a warning.  Growing
    /// moves the filed grants' nodes to the new buckets, allocating
    /// nothing else.
    fn reserve_index(&mut self, extra: usize) -> Result {
        let gfp = GFP_KERNEL_ACCOUNT | __GFP_NOWARN;
        if self.seconds.is_empty() {
            self.thirds = KVVec::from_elem(0u64, THIRDS_WORDS, gfp)?;
            self.seconds = KVVec::from_elem(Bitmap::default(), bloom::BITS, gfp)?;
        }
        // On its own: a failure above must not leave a bus without counts
        // for good (its grants would all go under their lowest bits).
        if self.held.is_empty() {
            self.held = KVVec::from_elem(0u32, bloom::BITS, gfp)?;
        }
        let want = self
            .nfiled
            .saturating_add(extra)
            .div_ceil(2)
            .clamp(INDEX_MIN_BUCKETS, INDEX_MAX_BUCKETS)
            .next_power_of_two();
        if self.filed.len() >= want {
            return Ok(());
        }
        let mut filed = KVVec::with_capacity(want, gfp)?;
        for _ in 0..want {
            filed.push(RBTree::new(), gfp)?;
        }
        for tree in self.filed.iter_mut() {
            while let Some(cursor) = tree.cursor_front() {
                let (key, grant) = {
                    let (k, g) = cursor.current();
                    (*k, *g)
                };
                let (_, node) = cursor.remove_current();
                let node = node.into_reservation().into_node(key, grant);
                if let Some(to) = filed.get_mut(index_bucket(key.0, key.1, want)) {
                    to.insert(node);
                }
            }
        }
        self.filed = filed;
        Ok(())
    }

    /// The tree of the bucket of (`k1`, `k2`), once the index exists.
    fn bucket(&mut self, k1: u16, k2: u16) -> Option<&mut RBTree<FiledKey, MatchGrant>> {
        let at = index_bucket(k1, k2, self.filed.len());
        self.filed.get_mut(at)
    }

    /// Files match grants of `member` in the index, and records in each
    /// where it went; `reserve_index` has succeeded before.
    fn index<'a>(
        &mut self,
        member: usize,
        grants: impl Iterator<Item = &'a mut Match>,
        nodes: KVec<RBTreeNodeReservation<FiledKey, MatchGrant>>,
    ) {
        for (m, node) in grants.zip(nodes) {
            let held = &self.held;
            let key = m
                .mask
                .index_key(|bit| held.get(usize::from(bit)).copied().unwrap_or(0));
            m.key = key;
            let IndexKey { k1, k2, k3 } = key;
            let grant = MatchGrant {
                mask: m.mask,
                member,
                third: k3,
            };
            if let Some(tree) = self.bucket(k1, k2) {
                tree.insert(node.into_node((k1, k2, m.id), grant));
                self.nfiled += 1;
                self.monitors += usize::from(k1 == MONITOR_KEY);
            }
            if let Some(seconds) = self.seconds.get_mut(usize::from(k1)) {
                seconds.set(k2);
                self.firsts.set(k1);
            }
            self.note_third(k1, k2, k3);
            for bit in m.mask.bits() {
                if let Some(h) = self.held.get_mut(usize::from(bit)) {
                    *h = h.saturating_add(1);
                }
            }
        }
    }

    /// Sets the bit of (`k1`, `k2`, `k3`) in the filter of third bits.
    fn note_third(&mut self, k1: u16, k2: u16, k3: u16) {
        let (word, bit) = third_bit(k1, k2, k3);
        if let Some(w) = self.thirds.get_mut(word) {
            *w |= bit;
        }
    }

    /// Rebuilds the filter of third bits from the grants filed, once as
    /// many grants went since the last rebuild as are left (and at least
    /// 64): stale bits only cost a look at a pair, never a lost match.
    fn refresh_thirds(&mut self) {
        if self.thirds_stale < self.nfiled.max(64) {
            return;
        }
        self.thirds_stale = 0;
        let Self { filed, thirds, .. } = self;
        for w in thirds.iter_mut() {
            *w = 0;
        }
        for tree in filed.iter() {
            for (k, g) in tree.iter() {
                let (word, bit) = third_bit(k.0, k.1, g.third);
                if let Some(w) = thirds.get_mut(word) {
                    *w |= bit;
                }
            }
        }
    }

    /// Whether any grant is filed under (`k1`, `k2`).
    fn filed(&mut self, k1: u16, k2: u16) -> bool {
        self.bucket(k1, k2).is_some_and(|tree| {
            tree.cursor_lower_bound(&(k1, k2, 0)).is_some_and(|c| {
                let k = c.current().0;
                (k.0, k.1) == (k1, k2)
            })
        })
    }

    /// Takes match grants out of the index.
    fn unindex(&mut self, grants: &[Match]) {
        for m in grants {
            let IndexKey { k1, k2, .. } = m.key;
            if let Some(tree) = self.bucket(k1, k2) {
                if tree.remove(&(k1, k2, m.id)).is_some() {
                    self.nfiled -= 1;
                    self.monitors -= usize::from(k1 == MONITOR_KEY);
                    self.thirds_stale += 1;
                    for bit in m.mask.bits() {
                        if let Some(h) = self.held.get_mut(usize::from(bit)) {
                            *h = h.saturating_sub(1);
                        }
                    }
                }
            }
            if self.filed(k1, k2) {
                continue;
            }
            if let Some(seconds) = self.seconds.get_mut(usize::from(k1)) {
                seconds.clear(k2);
                if seconds.is_zero() {
                    self.firsts.clear(k1);
                }
            }
        }
        self.refresh_thirds();
    }

    /// Adds to `out` the members of the grants filed under (`k1`, `k2`)
    /// that a message to `b` matches, but `except`.
    fn scan(
        filed: &mut KVVec<RBTree<FiledKey, MatchGrant>>,
        k1: u16,
        k2: u16,
        b: &Bitmap,
        except: usize,
        out: &mut KVec<usize>,
    ) -> Result {
        let at = index_bucket(k1, k2, filed.len());
        let Some(tree) = filed.get_mut(at) else {
            return Ok(());
        };
        let mut cursor = match tree.cursor_lower_bound(&(k1, k2, 0)) {
            Some(c) => c,
            None => return Ok(()),
        };
        loop {
            let (k, g) = cursor.current();
            if (k.0, k.1) != (k1, k2) {
                return Ok(());
            }
            if g.member != except && b.matches(&g.mask) {
                out.push(g.member, GFP_KERNEL)?;
            }
            cursor = match cursor.move_next() {
                Some(c) => c,
                None => return Ok(()),
            };
        }
    }

    /// The members holding a grant that a message to `b` matches, sorted,
    /// `except` the sender.  Only the pairs of bits of `b` that have
    /// grants filed under them are looked at, and monitors.
    fn matching(&mut self, b: &Bitmap, except: usize) -> Result<KVec<usize>> {
        let mut out = KVec::new();
        if self.monitors > 0 {
            Self::scan(
                &mut self.filed,
                MONITOR_KEY,
                MONITOR_KEY,
                b,
                except,
                &mut out,
            )?;
        }
        // A message sets a few bits (a D-Bus signal's bloom about 30): its
        // bits are listed for the filter of third bits.  A bitmap with
        // more bits set skips the filter.
        let mut bits = [0u16; MATCHING_BITS];
        let mut n = 0;
        for bit in b.bits() {
            if n == MATCHING_BITS {
                return self.matching_dense(b, except, out);
            }
            bits[n] = bit;
            n += 1;
        }
        let bits = &bits[..n];
        let Self {
            filed,
            firsts,
            seconds,
            thirds,
            ..
        } = self;
        // The first and second index bits with grants filed under them
        // that the message has, a word at a time.
        // Plain indexing: iterator adapters here cost a multicast more
        // than the index saves it.
        let words = b.0.len();
        for w1 in 0..words {
            let mut m1 = b.0[w1] & firsts.0[w1];
            while m1 != 0 {
                // `w1 < 8`: below 512.
                let k1 = (w1 * 64) as u16 + m1.trailing_zeros() as u16;
                m1 &= m1 - 1;
                let Some(row) = seconds.get(usize::from(k1)) else {
                    break;
                };
                // From `k1` itself: a one-bit mask is filed under (k1, k1).
                for w2 in w1..words {
                    let mut m2 = b.0[w2] & row.0[w2];
                    while m2 != 0 {
                        let k2 = (w2 * 64) as u16 + m2.trailing_zeros() as u16;
                        m2 &= m2 - 1;
                        // The filter costs a hash per bit above `k2`:
                        // past a few, looking at the pair is cheaper.
                        let above = &bits[bits.partition_point(|&x| x <= k2)..];
                        if above.len() > THIRDS_MAX_ABOVE || may_match(thirds, k1, k2, above) {
                            Self::scan(filed, k1, k2, b, except, &mut out)?;
                        }
                    }
                }
            }
        }
        out.as_mut_slice().sort_unstable();
        Ok(out)
    }

    /// [`BusInner::matching`] for a bitmap with many bits set: the
    /// summaries are intersected with it word by word.
    fn matching_dense(
        &mut self,
        b: &Bitmap,
        except: usize,
        mut out: KVec<usize>,
    ) -> Result<KVec<usize>> {
        let firsts = b.and(&self.firsts);
        for k1 in firsts.bits() {
            let Some(seconds) = self.seconds.get(usize::from(k1)) else {
                break;
            };
            let seconds = b.and(seconds);
            for k2 in seconds.bits() {
                Self::scan(&mut self.filed, k1, k2, b, except, &mut out)?;
            }
        }
        out.as_mut_slice().sort_unstable();
        Ok(out)
    }
}

impl<T: Send + Sync> BusInner<T> {
    fn sender(&self, sock: &Sock<T>) -> Option<Sender<'_, T>> {
        if self.master.as_ref().is_some_and(|m| m.is(sock)) {
            return Some(Sender::Master);
        }
        self.members.get(&sock_key(sock)).map(Sender::Member)
    }
}

fn sock_key<T>(sock: &Sock<T>) -> usize {
    core::ptr::from_ref(sock) as usize
}

/// A bus: created by its master's `bind()`, dead when the master closes.
#[pin_data]
pub(crate) struct Bus<T> {
    path: BusPath,
    /// The family and path part of every unicast address on the bus.
    prefix: NamePrefix,
    key: BusKey,
    master_addr: AddrPart,
    /// The master's identity, its endpoints' `SO_PEERCRED`.
    master_cred: PeerCred,
    /// The socket inode of a filesystem bus, held while the bus lives.
    _node: Option<PathRef>,
    /// The route generation: moves, under the bus lock, whenever what a
    /// unicast without grants would be routed to may change (a member
    /// leaves, addresses are granted or revoked, the bus dies), before
    /// the change can be seen.  A sender's cached route (see
    /// `Endpoint::attach`) is good while it has not moved.
    routes: AtomicU64,
    /// Set, under the bus lock, when the bus dies; read under it by the
    /// bus's operations, and without it by `poll`, which must not report
    /// a live bus to a member that a send already told `ECONNRESET`.
    dead: AtomicBool,
    /// Whether the master's queue has room for a small message from
    /// anyone, whatever its share: stored by the master at every unlock
    /// of its receive side, read without a lock by members' `poll`.
    master_room: AtomicBool,
    #[pin]
    inner: Mutex<BusInner<T>>,
}

/// What a member's leaving tells its master: who to notify, and the
/// addresses released (handle first), or `None` if there was no memory
/// to list them.
pub(crate) struct Left<T: Send + Sync> {
    pub(crate) master: ARef<Sock<T>>,
    pub(crate) addrs: Option<KVec<[u8; SOCKADDR_BUS_SIZE]>>,
}

/// What a socket is on its bus (see [`Bus::primary`]).
pub(crate) struct Primary {
    /// The address it sends from by default: its first granted address,
    /// else its handle; the master's address for the master.
    pub(crate) addr: AddrPart,
    /// Its handle (`None` for the master).
    pub(crate) handle: Option<AddrPart>,
    /// How many addresses it was granted (1 for the master).
    pub(crate) owned: usize,
}

/// Where a unicast goes (see `Bus::route`).
struct Routed<T: Send + Sync> {
    /// The source address it carries.
    src: AddrPart,
    receiver: ARef<Sock<T>>,
    /// The receiver's member key; `None` for the master.
    member: Option<usize>,
    /// The sender's member key; `None` for the master.
    sender: Option<usize>,
    /// Whether the access masks let the message through (see
    /// [`Member::admits`]); the master's messages and those to it always.
    admitted: bool,
}

/// Where a unicast without grants goes, and the route generation that
/// holds for (see [`Bus::lookup`]).
pub(crate) struct Lookup<T: Send + Sync> {
    /// The source address it carries.
    pub(crate) src: AddrPart,
    pub(crate) receiver: ARef<Sock<T>>,
    pub(crate) routes: u64,
    /// The message passes on an answer the receiver owed the sender (see
    /// [`Bus::lookup`]): not a route to remember.
    pub(crate) answer: bool,
    /// The receiver now owes the sender an answer (`SCM_EXPECT_REPLY`).
    pub(crate) noted: bool,
}

/// Who a multicast reaches (see [`Bus::multicast`]).
pub(crate) struct Fanout<T: Send + Sync> {
    /// The source address it carries.
    pub(crate) src: AddrPart,
    pub(crate) receivers: KVec<ARef<Sock<T>>>,
    /// The route generation the receivers were found under: a copy
    /// queued after it moved is checked again ([`Bus::still_reaches`]).
    pub(crate) routes: u64,
}

/// The members of a dead bus, unlisted: each still referenced until this
/// is dropped.
pub(crate) struct Members<T>(RBTree<usize, Member<T>>);

impl<T: Send + Sync> Members<T> {
    /// The sockets.
    pub(crate) fn socks(&self) -> impl Iterator<Item = &Sock<T>> {
        self.0.values().map(|m| m.sock.sock())
    }
}

impl<T: Send + Sync> Bus<T> {
    /// The route generation now (see [`Bus::routes`]).
    pub(crate) fn routes(&self) -> u64 {
        self.routes.load(Ordering::Acquire)
    }

    /// Moves the route generation; the caller holds the bus lock.
    fn routes_changed(&self) {
        self.routes.fetch_add(1, Ordering::Release);
    }

    /// Whether the master's queue surely has room for a member's small
    /// message (see [`Bus::master_room`]); `false` means "look".
    pub(crate) fn master_room(&self) -> bool {
        self.master_room.load(Ordering::Acquire)
    }

    /// Stored by the master's receive side as its rx lock is dropped.
    pub(crate) fn set_master_room(&self, room: bool) {
        self.master_room.store(room, Ordering::Release);
    }

    /// Whether the bus has died (its master closed).
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// The name of the bus.
    pub(crate) fn path(&self) -> &BusPath {
        &self.path
    }

    /// An address on this bus.
    pub(crate) fn addr(&self, addr: AddrPart) -> BusAddr {
        BusAddr {
            path: self.path,
            addr,
            multicast: false,
        }
    }

    /// The fixed layout of the address part `ncomp`, `addr` on this bus
    /// (see [`NamePrefix::encode`]).
    pub(crate) fn encode_raw(
        &self,
        ncomp: usize,
        addr: &[u8; crate::uapi::BUS_ADDR_MAX],
    ) -> Option<[u8; SOCKADDR_BUS_SIZE]> {
        self.prefix.encode(ncomp, addr)
    }

    /// The master's socket, while the bus lives.
    pub(crate) fn master_sock(&self) -> Option<ARef<Sock<T>>> {
        let inner = self.inner.lock();
        inner.master.as_ref().map(ListedSock::get)
    }

    /// The master's identity, as `SO_PEERCRED` gives it.
    pub(crate) fn master_cred(&self) -> &PeerCred {
        &self.master_cred
    }

    /// The master's address.
    pub(crate) fn master_addr(&self) -> BusAddr {
        self.addr(self.master_addr)
    }

    /// The bus's identity, to compare a resolved path with.
    pub(crate) fn key(&self) -> BusKey {
        self.key
    }

    /// Adds `sock` as a pending endpoint and gives it a handle.
    pub(crate) fn join(&self, sock: &Sock<T>) -> Result {
        let member = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let owner = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let mut inner = self.inner.lock();
        if self.is_dead() {
            return Err(errno::econnrefused());
        }
        let id = inner.next_handle;
        let handle = AddrPart::handle(id);
        inner.next_handle += 1;
        inner.owners.insert(owner.into_node(handle, sock_key(sock)));
        inner.members.insert(member.into_node(
            sock_key(sock),
            Member {
                sock: ListedSock::new(sock),
                handle,
                id,
                owned: KVec::new(),
                matches: KVec::new(),
                sends: KVec::new(),
                classes: 0,
                access: KVec::new(),
                replies: KVec::new(),
                next_reply: 0,
            },
        ));
        // No route changes: the handle is new, and failed lookups are
        // not remembered.
        Ok(())
    }

    /// Removes a member that is closing.  Returns the master, to notify,
    /// and the addresses released (handle first), or `None` for them if
    /// there was no memory to list them (the notification is then
    /// counted as lost).
    pub(crate) fn leave(&self, sock: &Sock<T>) -> Option<Left<T>> {
        let mut inner = self.inner.lock();
        let member = inner.members.remove(&sock_key(sock))?;
        self.routes_changed();
        inner.unindex(&member.matches);
        inner.owners.remove(&member.handle);
        for a in member.owned.iter() {
            inner.owners.remove(a);
        }
        let master = inner.master.as_ref()?.get();
        let addrs = KVec::with_capacity(1 + member.owned.len(), GFP_KERNEL)
            .ok()
            .map(|mut addrs| {
                for a in Iterator::chain(core::iter::once(&member.handle), member.owned.iter()) {
                    // Capacity was reserved above.
                    let _ = addrs.push(self.addr(*a).encode(), GFP_KERNEL);
                }
                addrs
            });
        Some(Left { master, addrs })
    }

    /// The bus dies with its master: returns its members, unlisted, for
    /// the caller to wake once the bus lock is dropped.
    pub(crate) fn kill(&self) -> Members<T> {
        let mut inner = self.inner.lock();
        self.dead.store(true, Ordering::Release);
        self.routes_changed();
        inner.master = None;
        inner.owners = RBTree::new();
        inner.filed = KVVec::new();
        inner.nfiled = 0;
        inner.monitors = 0;
        inner.seconds = KVVec::new();
        inner.thirds = KVVec::new();
        inner.thirds_stale = 0;
        inner.held = KVVec::new();
        inner.firsts = Bitmap::default();
        Members(core::mem::take(&mut inner.members))
    }

    /// What `sock` is on the bus, or `None` if it is not on it.
    pub(crate) fn primary(&self, sock: &Sock<T>) -> Option<Primary> {
        let inner = self.inner.lock();
        match inner.sender(sock)? {
            Sender::Master => Some(Primary {
                addr: self.master_addr,
                handle: None,
                owned: 1,
            }),
            Sender::Member(m) => Some(Primary {
                addr: m.owned.first().copied().unwrap_or(m.handle),
                handle: Some(m.handle),
                owned: m.owned.len(),
            }),
        }
    }

    /// Every address `sock` owns, handle first.  `ECONNRESET` once the
    /// bus is dead: its sockets own nothing any more.
    pub(crate) fn addrs(&self, sock: &Sock<T>) -> Result<KVec<[u8; SOCKADDR_BUS_SIZE]>> {
        let inner = self.inner.lock();
        let mut out = KVec::new();
        if self.is_dead() {
            return Err(errno::econnreset());
        }
        match inner.sender(sock) {
            // Only a dead bus drops a socket attached to it.
            None => return Err(errno::econnreset()),
            Some(Sender::Master) => out.push(self.master_addr().encode(), GFP_KERNEL)?,
            Some(Sender::Member(m)) => {
                for a in Iterator::chain(core::iter::once(&m.handle), m.owned.iter()) {
                    out.push(self.addr(*a).encode(), GFP_KERNEL)?;
                }
            }
        }
        Ok(out)
    }

    /// Sets the bus policy; only the master may.
    pub(crate) fn set_policy(&self, sock: &Sock<T>, policy: u32) -> Result {
        let mut inner = self.inner.lock();
        match inner.sender(sock) {
            Some(Sender::Master) => {
                inner.policy = policy;
                Ok(())
            }
            _ => Err(EPERM),
        }
    }

    /// The bus policy; `ECONNRESET` once the bus is dead.
    pub(crate) fn policy(&self) -> Result<u32> {
        let inner = self.inner.lock();
        if self.is_dead() {
            return Err(errno::econnreset());
        }
        Ok(inner.policy)
    }

    /// Where a unicast from `sender` to `dst` goes: the source address it
    /// carries, the receiver, and the receiver's member key (`None` for
    /// the master).  Checks who may send what to whom.
    fn route(
        &self,
        inner: &BusInner<T>,
        sender: &Sock<T>,
        dst: &BusAddr,
        src: Option<&BusAddr>,
        resolved: &Resolved,
        grants: bool,
    ) -> Result<Routed<T>> {
        if self.is_dead() {
            return Err(errno::econnreset());
        }
        let me = inner.sender(sender).ok_or(errno::econnreset())?;
        if let Sender::Member(m) = &me {
            if m.owned.is_empty() && dst.addr != self.master_addr {
                // Pending: the master only.
                return Err(EACCES);
            }
        }
        if grants && !matches!(me, Sender::Master) {
            return Err(EPERM);
        }
        let src = match src {
            None => match &me {
                Sender::Master => self.master_addr,
                Sender::Member(m) => m.owned.first().copied().unwrap_or(m.handle),
            },
            Some(a) => {
                let owned = match &me {
                    Sender::Master => a.addr == self.master_addr,
                    Sender::Member(m) => a.addr == m.handle || m.owned.contains(&a.addr),
                };
                if !owned || !resolved.src_here {
                    return Err(errno::eaddrnotavail());
                }
                a.addr
            }
        };
        let from = match &me {
            Sender::Master => None,
            Sender::Member(_) => Some(sock_key(sender)),
        };
        if dst.addr == self.master_addr {
            let master = inner.master.as_ref().ok_or(errno::ehostunreach())?;
            return Ok(Routed {
                src,
                receiver: master.get(),
                member: None,
                sender: from,
                admitted: true,
            });
        }
        let key = *inner.owners.get(&dst.addr).ok_or(errno::ehostunreach())?;
        let m = inner.members.get(&key).ok_or(errno::ehostunreach())?;
        if m.owned.is_empty() && !matches!(me, Sender::Master) {
            // A pending endpoint hears from its master only: its handle
            // is no way in for anyone else.
            return Err(EACCES);
        }
        Ok(Routed {
            src,
            receiver: m.sock.get(),
            member: Some(key),
            sender: from,
            admitted: match &me {
                Sender::Master => true,
                Sender::Member(s) => s.admits(m),
            },
        })
    }

    /// The receiver of a unicast without grants, the source address it
    /// carries, and the route generation they hold for.
    ///
    /// A message the access masks refuse passes as an answer the
    /// receiver owed the sender (`answer` in the result), which is then
    /// taken, unless the sender already took one from that receiver for
    /// this message (`held`: the receiver of an earlier try); `EACCES`
    /// when none is owed.  With `expect_reply`, if the masks would refuse
    /// the receiver's answer, the sender is owed one (`noted`), which the
    /// caller withdraws ([`Bus::withdraw_answer`]) if the message is not
    /// delivered there after all.  A failed lookup takes and notes
    /// nothing.
    pub(crate) fn lookup(
        &self,
        sender: &Sock<T>,
        dst: &BusAddr,
        src: Option<&BusAddr>,
        resolved: &Resolved,
        expect_reply: bool,
        held: Option<&Sock<T>>,
    ) -> Result<Lookup<T>> {
        let mut inner = self.inner.lock();
        let routed = self.route(&inner, sender, dst, src, resolved, false)?;
        let (mut answer, mut noted) = (false, false);
        if let (Some(to), Some(from)) = (routed.member, routed.sender) {
            let (Some(s), Some(r)) = (inner.members.get(&from), inner.members.get(&to)) else {
                return Err(errno::ehostunreach());
            };
            let (sid, rid) = (s.id, r.id);
            let note = expect_reply && !r.admits(s);
            let again = held.is_some_and(|h| core::ptr::eq(h, &*routed.receiver));
            let take = !routed.admitted && !again;
            // What can fail for memory comes first: nothing is taken then.
            if note {
                inner
                    .members
                    .get_mut(&from)
                    .ok_or(errno::econnreset())?
                    .owe_reply(rid)?;
            }
            if take {
                let owed = inner.members.get_mut(&to).ok_or(errno::ehostunreach())?;
                if !owed.take_reply(sid) {
                    if let Some(s) = inner.members.get_mut(&from).filter(|_| note) {
                        s.take_reply(rid);
                    }
                    return Err(EACCES);
                }
            }
            answer = !routed.admitted;
            noted = note;
        }
        Ok(Lookup {
            src: routed.src,
            receiver: routed.receiver,
            // Stable while we hold the bus lock, under which it moves.
            routes: self.routes.load(Ordering::Relaxed),
            answer,
            noted,
        })
    }

    /// Withdraws an answer `sender` was owed by `receiver` for a message
    /// that was not delivered to it after all (see [`Bus::lookup`]).
    pub(crate) fn withdraw_answer(&self, sender: &Sock<T>, receiver: &Sock<T>) {
        let mut inner = self.inner.lock();
        let Some(rid) = inner.members.get(&sock_key(receiver)).map(|m| m.id) else {
            return;
        };
        if let Some(s) = inner.members.get_mut(&sock_key(sender)) {
            s.take_reply(rid);
        }
    }

    /// Whether a multicast from `sender` routed before the route
    /// generation moved still reaches `receiver` (a member whose masks
    /// admit it), and the generation that holds for; `None` if not.
    pub(crate) fn still_reaches(
        &self,
        sender: &Sock<T>,
        receiver: &Sock<T>,
    ) -> Result<Option<u64>> {
        let inner = self.inner.lock();
        if self.is_dead() {
            return Err(errno::econnreset());
        }
        let Some(r) = inner.members.get(&sock_key(receiver)) else {
            return Ok(None);
        };
        let admitted = match inner.sender(sender).ok_or(errno::econnreset())? {
            Sender::Master => true,
            Sender::Member(s) => s.admits(r),
        };
        Ok((admitted && !r.owned.is_empty()).then(|| self.routes.load(Ordering::Relaxed)))
    }

    /// Gives back the answer `receiver` owed `sender`, taken by a message
    /// that was not delivered after all.
    pub(crate) fn refund_answer(&self, sender: &Sock<T>, receiver: &Sock<T>) {
        let mut inner = self.inner.lock();
        let Some(id) = inner.members.get(&sock_key(sender)).map(|m| m.id) else {
            return;
        };
        if let Some(r) = inner.members.get_mut(&sock_key(receiver)) {
            // No memory: the answer is lost, as if pushed out.
            let _ = r.owe_reply(id);
        }
    }

    /// Checks a message from the master `sender` to `dst` that carries
    /// the grants of `cmsgs` against the bus's tables, and writes its
    /// metadata into `skb`.  The [`Granting`] returned holds the bus lock:
    /// the caller queues the message at [`Granting::receiver`] and then
    /// applies the grants ([`Granting::apply`]) or, if it could not queue
    /// it, drops the plan: both happen under the bus lock, or neither.
    pub(crate) fn plan_grants<'a>(
        &'a self,
        sender: &Sock<T>,
        dst: &BusAddr,
        cmsgs: &BusCmsgs<'_>,
        resolved: &Resolved,
        skb: &mut crate::sys::Skb,
    ) -> Result<Granting<'a, T>> {
        let inner = self.inner.lock();
        let Routed {
            src,
            receiver,
            member: member_key,
            ..
        } = self.route(&inner, sender, dst, cmsgs.src().as_ref(), resolved, true)?;

        let meta = crate::meta::Meta {
            src,
            dst: dst.addr,
            flags: 0,
        };
        crate::meta::write(skb.meta_mut(), &meta, cmsgs.classes, cmsgs.grants());

        // Validate against the tables.
        let key = member_key.ok_or(EINVAL)?;
        if !resolved.grants_here {
            // A grant of an address on another bus.
            return Err(EINVAL);
        }
        let target = inner.members.get(&key).ok_or(errno::ehostunreach())?;
        let max_matches = crate::params::MAX_MATCHES.get();
        let mut owned = copy_list(target.owned.iter())?;
        let mut matches = copy_list(target.matches.iter())?;
        let mut sends = copy_list(target.sends.iter())?;
        let mut access = copy_list(target.access.iter())?;
        let classes = cmsgs.classes.unwrap_or(target.classes);
        // Whether who may reach whom changes otherwise than by addresses.
        let mut admission = classes != target.classes;
        let mut adds = KVec::new();
        let mut removes = KVec::new();
        // Members an SCM_MOVE_ADDR takes addresses from: their lists after.
        let mut moved: KVec<Moved> = KVec::new();
        let mut next_match = inner.next_match;
        for g in cmsgs.grants() {
            let a = g.addr.addr;
            let mask = Bitmap::of(&a);
            match g.kind {
                GrantKind::Own | GrantKind::Move => {
                    // Another member's address: a move takes it, an own
                    // grant is refused.
                    let elsewhere = inner.owners.get(&a).copied().filter(|&k| k != key);
                    let taken = elsewhere.is_some() && g.kind == GrantKind::Own;
                    if a == self.master_addr || taken || owned.contains(&a) {
                        return Err(errno::eaddrinuse());
                    }
                    if owned.len() >= crate::params::MAX_OWNED_ADDRS.get() {
                        return Err(ENOSPC);
                    }
                    if let Some(from) = elsewhere {
                        let i = match moved.iter().position(|m| m.key == from) {
                            Some(i) => i,
                            None => {
                                let m = inner.members.get(&from).ok_or(errno::ehostunreach())?;
                                let m = Moved {
                                    key: from,
                                    owned: copy_list(m.owned.iter())?,
                                    access: copy_list(m.access.iter())?,
                                };
                                moved.push(m, GFP_KERNEL)?;
                                moved.len() - 1
                            }
                        };
                        let m = &mut moved[i];
                        m.owned = copy_list(m.owned.iter().filter(|x| **x != a))?;
                        // The address's masks come with it.
                        if let Some(&(_, masks)) = m.access.iter().find(|(x, _)| *x == a) {
                            m.access = copy_list(m.access.iter().filter(|(x, _)| *x != a))?;
                            access.push((a, masks), GFP_KERNEL)?;
                            admission = true;
                        }
                    }
                    owned.push(a, GFP_KERNEL)?;
                    adds.push((a, RBTreeNodeReservation::new(GFP_KERNEL)?), GFP_KERNEL)?;
                }
                GrantKind::Revoke => {
                    if !owned.contains(&a) {
                        return Err(errno::eaddrnotavail());
                    }
                    owned = copy_list(owned.iter().filter(|x| **x != a))?;
                    removes.push(a, GFP_KERNEL)?;
                    if access.iter().any(|(x, _)| *x == a) {
                        access = copy_list(access.iter().filter(|(x, _)| *x != a))?;
                    }
                }
                GrantKind::Access => {
                    if !owned.contains(&a) {
                        return Err(errno::eaddrnotavail());
                    }
                    access = copy_list(access.iter().filter(|(x, _)| *x != a))?;
                    if !g.access.is_open() {
                        access.push((a, g.access), GFP_KERNEL)?;
                    }
                    admission = true;
                }
                GrantKind::Match => {
                    if matches.len() >= max_matches {
                        return Err(ENOSPC);
                    }
                    matches.push(
                        Match {
                            id: next_match,
                            mask,
                            // Chosen when filed, by `BusInner::index`.
                            key: IndexKey::MONITOR,
                        },
                        GFP_KERNEL,
                    )?;
                    next_match += 1;
                }
                GrantKind::Unmatch => {
                    // The oldest grant of that mask goes.
                    let pos = matches.iter().position(|m| m.mask == mask).ok_or(ENOENT)?;
                    matches = copy_list(
                        matches
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| *i != pos)
                            .map(|(_, x)| x),
                    )?;
                }
                GrantKind::Send => {
                    if sends.len() >= max_matches {
                        return Err(ENOSPC);
                    }
                    sends.push(mask, GFP_KERNEL)?;
                }
            }
        }
        // Index nodes for the match grants that are new.
        let mut nodes = KVec::new();
        let fresh = matches.iter().filter(|m| m.id >= inner.next_match).count();
        for _ in 0..fresh {
            nodes.push(RBTreeNodeReservation::new(GFP_KERNEL)?, GFP_KERNEL)?;
        }
        if owned.is_empty() && fresh > 0 {
            // A pending endpoint (or one left pending by this message)
            // receives from its master only: no multicast.
            return Err(EINVAL);
        }
        let mut gone = KVec::new();
        for m in target.matches.iter() {
            if !matches.iter().any(|x| x.id == m.id) {
                gone.push(*m, GFP_KERNEL)?;
            }
        }
        let mut inner = inner;
        if fresh > 0 {
            inner.reserve_index(fresh)?;
        }

        // Before the message is queued: its receiver, once woken, and
        // anyone it tells must not send by a route from before it.  (A
        // message that does not fit costs the bus's senders one lookup.)
        if !adds.is_empty() || !removes.is_empty() || admission {
            self.routes_changed();
        }
        Ok(Granting {
            inner,
            receiver,
            key,
            moved,
            owned,
            matches,
            sends,
            classes,
            access,
            adds,
            removes,
            next_match,
            nodes,
            gone,
        })
    }

    /// Who a multicast from `sender` to the bitmap `dst` reaches, and the
    /// source address it carries.  Checks that the sender may multicast:
    /// a member (or the master), holding a send grant that covers the
    /// bitmap when the bus policy asks for one (`EACCES`).
    pub(crate) fn multicast(
        &self,
        sender: &Sock<T>,
        dst: &BusAddr,
        src: Option<&BusAddr>,
        resolved: &Resolved,
    ) -> Result<Fanout<T>> {
        let b = Bitmap::of(&dst.addr);
        let mut inner = self.inner.lock();
        if self.is_dead() {
            return Err(errno::econnreset());
        }
        let policy = inner.policy;
        let (primary, owns_src) = match inner.sender(sender).ok_or(errno::econnreset())? {
            Sender::Master => (self.master_addr, src.map(|a| a.addr == self.master_addr)),
            Sender::Member(m) => {
                if m.owned.is_empty() {
                    return Err(EACCES);
                }
                if policy & crate::uapi::BUS_POLICY_MCAST_SEND_GRANTED != 0
                    && !m.sends.iter().any(|g| b.within(g))
                {
                    return Err(EACCES);
                }
                let owns = src.map(|a| a.addr == m.handle || m.owned.contains(&a.addr));
                (m.owned[0], owns)
            }
        };
        let src_addr = match (src, owns_src) {
            (None, _) => primary,
            (Some(a), Some(true)) if resolved.src_here => a.addr,
            _ => return Err(errno::eaddrnotavail()),
        };
        let keys = inner.matching(&b, sock_key(sender))?;
        // Under the masks (see `Member::admits`); the master's reach all.
        let from = match inner.sender(sender) {
            Some(Sender::Member(m)) => Some(m),
            _ => None,
        };
        let mut out = KVec::with_capacity(keys.len(), GFP_KERNEL)?;
        let mut last = None;
        for k in keys.iter() {
            if last == Some(*k) {
                continue;
            }
            last = Some(*k);
            match inner.members.get(k) {
                // A member whose addresses were all revoked is pending
                // again: its master's messages only.
                Some(m) if !m.owned.is_empty() && from.map_or(true, |s| s.admits(m)) => {
                    out.push(m.sock.get(), GFP_KERNEL)?;
                }
                _ => {}
            }
        }
        Ok(Fanout {
            src: src_addr,
            receivers: out,
            // Stable while we hold the bus lock, under which it moves.
            routes: self.routes.load(Ordering::Relaxed),
        })
    }
}

/// A master's message with grants, checked and holding the bus lock,
/// waiting to be queued (see [`Bus::plan_grants`]).
pub(crate) struct Granting<'a, T: Send + Sync> {
    inner: Guard<'a, BusInner<T>, MutexBackend>,
    /// Where the message goes.
    pub(crate) receiver: ARef<Sock<T>>,
    key: usize,
    moved: KVec<Moved>,
    owned: KVec<AddrPart>,
    matches: KVec<Match>,
    sends: KVec<Bitmap>,
    classes: u64,
    access: KVec<(AddrPart, Access)>,
    adds: KVec<(AddrPart, RBTreeNodeReservation<AddrPart, usize>)>,
    removes: KVec<AddrPart>,
    next_match: u64,
    nodes: KVec<RBTreeNodeReservation<FiledKey, MatchGrant>>,
    /// The grants the message takes out.
    gone: KVec<Match>,
}

impl<T: Send + Sync> Granting<'_, T> {
    /// Applies the grants of a message that was queued, and drops the bus
    /// lock.  Removals first, so that a revoke and re-grant in one message
    /// keeps the address.
    pub(crate) fn apply(self) {
        let Granting {
            mut inner,
            key,
            moved,
            owned,
            mut matches,
            sends,
            classes,
            access,
            adds,
            removes,
            next_match,
            nodes,
            gone,
            ..
        } = self;
        for a in removes.iter() {
            inner.owners.remove(a);
        }
        // An address moved here from another member: its entry is replaced.
        for (a, node) in adds {
            if owned.contains(&a) {
                inner.owners.insert(node.into_node(a, key));
            }
        }
        for from in moved {
            if let Some(m) = inner.members.get_mut(&from.key) {
                m.owned = from.owned;
                m.access = from.access;
            }
        }
        inner.unindex(&gone);
        // The grants this message added: ids from the bus's next.
        let first_new = inner.next_match;
        let fresh = matches.iter_mut().filter(|m| m.id >= first_new);
        inner.index(key, fresh, nodes);
        inner.next_match = next_match;
        if let Some(target) = inner.members.get_mut(&key) {
            target.owned = owned;
            target.matches = matches;
            target.sends = sends;
            target.classes = classes;
            target.access = access;
        }
    }
}

/// A member an `SCM_MOVE_ADDR` takes addresses from: its addresses and
/// their access masks after the message.
struct Moved {
    key: usize,
    owned: KVec<AddrPart>,
    access: KVec<(AddrPart, Access)>,
}

/// A copy of a short list, with room to grow.
fn copy_list<'a, T: Copy + 'a>(from: impl Iterator<Item = &'a T>) -> Result<KVec<T>> {
    let mut out = KVec::new();
    for x in from {
        out.push(*x, GFP_KERNEL)?;
    }
    Ok(out)
}

/// Every bus and every socket of the module.
#[pin_data]
pub(crate) struct Registry<T> {
    #[pin]
    inner: Mutex<RegistryInner<T>>,
}

/// State of the registry behind [`Registry::inner`].
struct RegistryInner<T> {
    buses: RBTree<BusKey, Arc<Bus<T>>>,
    socks: RBTree<usize, ListedSock<T>>,
}

impl<T: Send + Sync> Registry<T> {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Registry {
            inner <- new_mutex!(
                RegistryInner { buses: RBTree::new(), socks: RBTree::new() },
                "RegistryInner"
            ),
        })
    }

    /// Lists a new socket.
    pub(crate) fn add_sock(&self, sock: &Sock<T>) -> Result {
        let listed = ListedSock::new(sock);
        let node = RBTreeNode::new(sock_key(sock), listed, GFP_KERNEL)?;
        self.inner.lock().socks.insert(node);
        Ok(())
    }

    /// Unlists a socket being released.
    pub(crate) fn remove_sock(&self, sock: &Sock<T>) {
        self.inner.lock().socks.remove(&sock_key(sock));
    }

    /// References to the listed sockets of one namespace.
    pub(crate) fn socks_of(&self, net_id: usize) -> Result<KVec<ARef<Sock<T>>>> {
        let inner = self.inner.lock();
        let mut out = KVec::new();
        for listed in inner.socks.values() {
            let sock = listed.get();
            if sock.net_id() == net_id {
                out.push(sock, GFP_KERNEL)?;
            }
        }
        Ok(out)
    }

    /// The key under which `path` is (or would be) registered, as seen
    /// from `sock`'s namespace and credentials: reaching a filesystem bus
    /// needs write permission on its inode.
    ///
    /// Walks the filesystem: never call it with a lock of the module held.
    #[inline]
    pub(crate) fn key_of(sock: &Sock<T>, path: &BusPath) -> Result<BusKey> {
        match path.kind() {
            PathKind::Abstract => Ok(BusKey::of_abstract(sock.net_id(), path)),
            PathKind::Filesystem => {
                let node = PathRef::lookup(path)?;
                if !node.is_socket() {
                    return Err(errno::econnrefused());
                }
                node.may_write()?;
                Ok(BusKey::Inode(node.inode_id()))
            }
        }
    }

    /// The live bus of `key`.
    pub(crate) fn find(&self, key: BusKey) -> Result<Arc<Bus<T>>> {
        self.inner
            .lock()
            .buses
            .get(&key)
            .cloned()
            .ok_or(errno::econnrefused())
    }

    /// Names a new bus made by `make` under `key`; `EADDRINUSE`, without
    /// calling `make`, if the name is taken.
    fn claim(
        &self,
        key: BusKey,
        reservation: RBTreeNodeReservation<BusKey, Arc<Bus<T>>>,
        make: impl FnOnce() -> Arc<Bus<T>>,
    ) -> Result {
        let mut inner = self.inner.lock();
        if inner.buses.get(&key).is_some() {
            return Err(errno::eaddrinuse());
        }
        inner.buses.insert(reservation.into_node(key, make()));
        Ok(())
    }

    /// Registers the bus of a `bind()`, once the socket is known to be free;
    /// `node` is a reference to its socket inode, which the caller commits
    /// (or removes, on failure) once its locks are dropped.
    pub(crate) fn register(
        &self,
        sock: &Sock<T>,
        addr: &BusAddr,
        key: BusKey,
        node: Option<PathRef>,
        slot: UniqueArc<core::mem::MaybeUninit<Bus<T>>>,
        reservation: RBTreeNodeReservation<BusKey, Arc<Bus<T>>>,
    ) -> Result<Arc<Bus<T>>> {
        let mut made = None;
        let init = pin_init!(Bus {
            path: addr.path,
            prefix: NamePrefix::new(&addr.path),
            key,
            master_addr: addr.addr,
            master_cred: PeerCred::current(),
            _node: node,
            routes: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            master_room: AtomicBool::new(true),
            inner <- new_mutex!(
                BusInner {
                    master: Some(ListedSock::new(sock)),
                    next_handle: 1,
                    policy: 0,
                    owners: RBTree::new(),
                    members: RBTree::new(),
                    filed: KVVec::new(),
                    nfiled: 0,
                    monitors: 0,
                    firsts: Bitmap::default(),
                    seconds: KVVec::new(),
                    thirds: KVVec::new(),
                    thirds_stale: 0,
                    held: KVVec::new(),
                    next_match: 1,
                },
                "BusInner"
            ),
        });
        self.claim(key, reservation, || {
            let bus: Arc<Bus<T>> = match slot.pin_init_with(init) {
                Ok(b) => b.into(),
                Err(e) => match e {},
            };
            made = Some(bus.clone());
            bus
        })?;
        made.ok_or(EINVAL)
    }

    /// Forgets a dead bus.
    pub(crate) fn remove_bus(&self, bus: &Arc<Bus<T>>) {
        let removed = {
            let mut inner = self.inner.lock();
            match inner.buses.get(&bus.key) {
                Some(b) if Arc::ptr_eq(b, bus) => inner.buses.remove(&bus.key),
                _ => None,
            }
        };
        // The last reference may put the inode: do it unlocked.
        drop(removed);
    }
}

/// The name of a new bus, made before it is registered.
pub(crate) struct NewName {
    /// The key it will be found by.
    pub(crate) key: BusKey,
    /// The socket inode of a filesystem bus, whose parent directory stays
    /// locked until the node is committed or dropped.
    pub(crate) node: Option<NewSocketNode>,
}

/// Creates the name of a new bus for `addr`: its socket inode for a
/// filesystem bus, and its key.
pub(crate) fn create<T: Send + Sync>(sock: &Sock<T>, addr: &BusAddr) -> Result<NewName> {
    if addr.multicast || addr.addr.is_kernel() || addr.addr.is_reserved() {
        return Err(EINVAL);
    }
    // Create the inode before any lock of ours is taken, as AF_UNIX does:
    // our locks nest inside the directory's, never the reverse.
    Ok(match addr.path.kind() {
        PathKind::Filesystem => {
            let node = NewSocketNode::create(sock, &addr.path)?;
            NewName {
                key: BusKey::Inode(node.inode_id()),
                node: Some(node),
            }
        }
        PathKind::Abstract => NewName {
            key: BusKey::of_abstract(sock.net_id(), &addr.path),
            node: None,
        },
    })
}
