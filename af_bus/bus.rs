// SPDX-License-Identifier: GPL-2.0

//! Buses, the registry that names them, and the state of each endpoint.
//!
//! Lock order: `BusSock::inner` before `Registry::inner`; nothing takes a
//! socket lock while holding the registry lock.

use kernel::error::{code::*, Result};
use kernel::new_mutex;
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation};
use kernel::sync::{Arc, Mutex, UniqueArc};
use kernel::types::ARef;

use crate::addr::{encode_unattached, AddrPart, BusAddr, BusPath, PathKind};
use crate::socket::{errno, BusSock, ListedSock, NewSocketNode, PathRef};
use crate::uapi::SOCKADDR_BUS_SIZE;

/// How a bus is found: by its socket inode, or by its abstract name in a
/// network namespace.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum BusKey {
    Inode(usize),
    Abstract(usize, [u8; crate::uapi::BUS_PATH_MAX]),
}

/// A bus: created by its master's `bind()`, dead when the master closes.
pub(crate) struct Bus {
    path: BusPath,
    key: BusKey,
    master_addr: AddrPart,
    /// The socket inode of a filesystem bus, held while the bus lives.
    _node: Option<PathRef>,
}

impl Bus {
    /// The master's address on its bus.
    pub(crate) fn master_addr(&self) -> BusAddr {
        BusAddr {
            path: self.path,
            addr: self.master_addr,
            multicast: false,
        }
    }

    /// The name of the bus.
    pub(crate) fn path(&self) -> &BusPath {
        &self.path
    }
}

/// What a socket is on its bus.
pub(crate) enum Role {
    /// Not on any bus.
    Unattached,
    /// The master of a bus.
    Master(Arc<Bus>),
}

/// State of an endpoint behind [`Endpoint::inner`].
pub(crate) struct EndpointInner {
    role: Role,
}

/// The family's part of a socket.
#[pin_data]
pub(crate) struct Endpoint {
    #[pin]
    inner: Mutex<EndpointInner>,
}

impl Endpoint {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Endpoint {
            inner <- new_mutex!(EndpointInner { role: Role::Unattached }, "BusSock::inner"),
        })
    }

    /// The socket's primary address in the fixed layout.
    pub(crate) fn name(&self) -> [u8; SOCKADDR_BUS_SIZE] {
        match &self.inner.lock().role {
            Role::Unattached => encode_unattached(),
            Role::Master(bus) => bus.master_addr().encode(),
        }
    }

    /// A short word for the role, as `/proc/net/bus` shows it.
    pub(crate) fn describe(&self) -> (&'static str, Option<BusPath>, usize) {
        match &self.inner.lock().role {
            Role::Unattached => ("unattached", None, 0),
            Role::Master(bus) => ("master", Some(*bus.path()), 1),
        }
    }

    /// Leaves the bus: a master takes its bus down.
    pub(crate) fn release(&self) {
        let role = core::mem::replace(&mut self.inner.lock().role, Role::Unattached);
        if let Role::Master(bus) = role {
            crate::registry().remove_bus(&bus);
        }
    }
}

/// Makes `sock` the master of a new bus named by `addr`.
pub(crate) fn bind(sock: &BusSock, addr: &BusAddr) -> Result {
    if addr.multicast || addr.addr.is_kernel() || addr.addr.is_reserved() {
        return Err(EINVAL);
    }
    // Allocate up front, so that nothing can fail once the inode exists.
    let slot = UniqueArc::<Bus>::new_uninit(GFP_KERNEL)?;
    let reservation = RBTreeNodeReservation::new(GFP_KERNEL)?;
    // Create the inode before taking the socket lock, as AF_UNIX does: the
    // VFS locks are never taken inside ours.
    let node = match addr.path.kind() {
        PathKind::Filesystem => Some(NewSocketNode::create(sock, &addr.path)?),
        PathKind::Abstract => None,
    };
    let mut inner = sock.endpoint().inner.lock();
    match inner.role {
        Role::Unattached => {}
        // Dropping `node` (after the lock) removes the inode again.
        Role::Master(_) => return Err(EINVAL),
    }
    let key = match &node {
        Some(node) => BusKey::Inode(node.inode_id()),
        None => {
            let mut name = [0u8; crate::uapi::BUS_PATH_MAX];
            name[..addr.path.name().len()].copy_from_slice(addr.path.name());
            BusKey::Abstract(sock.net_id(), name)
        }
    };
    // An inode is unique while its bus holds it, so only an abstract name
    // can be taken; check before the inode is kept.
    let registry = crate::registry();
    registry.claim(key, reservation, || {
        let bus: Arc<Bus> = slot
            .write(Bus {
                path: addr.path,
                key,
                master_addr: addr.addr,
                _node: node.map(NewSocketNode::commit),
            })
            .into();
        inner.role = Role::Master(bus.clone());
        bus
    })
}

/// Every bus and every socket of the module.
#[pin_data]
pub(crate) struct Registry {
    #[pin]
    inner: Mutex<RegistryInner>,
}

/// State of the registry behind [`Registry::inner`].
struct RegistryInner {
    buses: RBTree<BusKey, Arc<Bus>>,
    socks: RBTree<usize, ListedSock>,
}

impl Registry {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Registry {
            inner <- new_mutex!(
                RegistryInner { buses: RBTree::new(), socks: RBTree::new() },
                "Registry::inner"
            ),
        })
    }

    /// Lists a new socket.
    pub(crate) fn add_sock(&self, sock: &BusSock) -> Result {
        let listed = ListedSock::new(sock);
        let node = RBTreeNode::new(core::ptr::from_ref(sock) as usize, listed, GFP_KERNEL)?;
        self.inner.lock().socks.insert(node);
        Ok(())
    }

    /// Unlists a socket being released.
    pub(crate) fn remove_sock(&self, sock: &BusSock) {
        self.inner
            .lock()
            .socks
            .remove(&(core::ptr::from_ref(sock) as usize));
    }

    /// References to the listed sockets of one namespace.
    pub(crate) fn socks_of(&self, net_id: usize) -> Result<KVec<ARef<BusSock>>> {
        let inner = self.inner.lock();
        let mut out = KVec::new();
        for listed in inner.socks.values() {
            // SAFETY: the socket is listed, and stays so while we hold the lock.
            let sock = unsafe { listed.get() };
            if sock.net_id() == net_id {
                out.push(sock, GFP_KERNEL)?;
            }
        }
        Ok(out)
    }

    /// Names a new bus made by `make` under `key`; `EADDRINUSE`, without
    /// calling `make`, if the name is taken.
    fn claim(
        &self,
        key: BusKey,
        reservation: RBTreeNodeReservation<BusKey, Arc<Bus>>,
        make: impl FnOnce() -> Arc<Bus>,
    ) -> Result {
        let mut inner = self.inner.lock();
        if inner.buses.get(&key).is_some() {
            return Err(errno::eaddrinuse());
        }
        inner.buses.insert(reservation.into_node(key, make()));
        Ok(())
    }

    /// Forgets a dead bus.
    fn remove_bus(&self, bus: &Arc<Bus>) {
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
