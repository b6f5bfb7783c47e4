// SPDX-License-Identifier: GPL-2.0

//! VFS paths: a counted `struct path`, and a socket inode being created by `bind()`.

use crate::addr::BusPath;
use core::ptr;
use kernel::bindings;
use kernel::error::to_result;
use kernel::ffi::c_int;
use kernel::ffi::c_uint;
use kernel::prelude::*;

use super::*;

/// A counted reference to a filesystem path (`path_get`/`path_put`).
pub(crate) struct PathRef(pub(crate) bindings::path);

// SAFETY: `struct path` references may be dropped from any task.
unsafe impl Send for PathRef {}
// SAFETY: shared access only reads the pointers.
unsafe impl Sync for PathRef {}

/// `LOOKUP_FOLLOW` of `<linux/namei.h>` (a `BIT()`, which bindgen skips).
pub(crate) const LOOKUP_FOLLOW: c_uint = 1;

impl PathRef {
    /// Looks `path` up, following links.
    pub(crate) fn lookup(path: &BusPath) -> Result<PathRef> {
        let name = path.c_name();
        let mut p = bindings::path {
            mnt: ptr::null_mut(),
            dentry: ptr::null_mut(),
        };
        // SAFETY: `name` is NUL-terminated; `p` is filled on success.
        let err = unsafe { bindings::kern_path(name.as_ptr().cast(), LOOKUP_FOLLOW, &mut p) };
        to_result(err)?;
        // INVARIANT: `kern_path` returned a counted reference.
        Ok(PathRef(p))
    }

    pub(crate) fn inode(&self) -> *mut bindings::inode {
        // SAFETY: the dentry is pinned by our reference.
        unsafe { bindings::d_backing_inode(self.0.dentry) }
    }

    /// Identity of the inode (never dereferenced by callers).
    pub(crate) fn inode_id(&self) -> usize {
        self.inode() as usize
    }

    /// Whether the path ends at a socket inode.
    pub(crate) fn is_socket(&self) -> bool {
        let inode = self.inode();
        // SAFETY: a positive dentry's inode lives as long as it.
        !inode.is_null()
            && u32::from(unsafe { (*inode).i_mode }) & bindings::S_IFMT == bindings::S_IFSOCK
    }

    /// `EACCES` unless the caller may write the inode.
    pub(crate) fn may_write(&self) -> Result {
        // SAFETY: the mount and inode are pinned by our reference.
        let err = unsafe {
            bindings::inode_permission(
                bindings::mnt_idmap(self.0.mnt),
                self.inode(),
                bindings::MAY_WRITE as c_int,
            )
        };
        to_result(err)
    }
}

impl Drop for PathRef {
    fn drop(&mut self) {
        // SAFETY: the path holds a reference (type invariant).
        unsafe { bindings::path_put(&self.0) };
    }
}

/// A socket inode just created by `mknod`, with its parent still locked.
///
/// Dropping it removes the inode again; [`NewSocketNode::commit`] keeps it.
pub(crate) struct NewSocketNode {
    pub(crate) parent: bindings::path,
    pub(crate) dentry: *mut bindings::dentry,
    pub(crate) idmap: *mut bindings::mnt_idmap,
}

impl NewSocketNode {
    /// Creates a socket inode at `path`, as `bind()` of AF_UNIX does.
    /// `EADDRINUSE` if something exists there.
    pub(crate) fn create<T>(sock: &Sock<T>, path: &BusPath) -> Result<NewSocketNode> {
        let name = path.c_name();
        let mode = sock.inode_mode();
        let mut parent = bindings::path {
            mnt: ptr::null_mut(),
            dentry: ptr::null_mut(),
        };
        // SAFETY: `name` is NUL-terminated; on success `parent` holds a
        // reference and its inode is locked until `done_path_create`.
        let dentry = unsafe {
            bindings::kern_path_create(bindings::AT_FDCWD, name.as_ptr().cast(), &mut parent, 0)
        };
        let dentry = kernel::error::from_err_ptr(dentry).map_err(|err| {
            if err == EEXIST {
                errno::eaddrinuse()
            } else {
                err
            }
        })?;
        // SAFETY: `parent.mnt` is a counted reference.
        let idmap = unsafe { bindings::mnt_idmap(parent.mnt) };
        // SAFETY: `parent` and `dentry` come from `kern_path_create`.
        let mut err = unsafe { bindings::security_path_mknod(&parent, dentry, mode, 0) };
        if err == 0 {
            // SAFETY: as above; the parent inode is locked.
            err = unsafe { bindings::vfs_mknod(idmap, (*parent.dentry).d_inode, dentry, mode, 0) };
        }
        if let Err(err) = to_result(err) {
            // SAFETY: releases what `kern_path_create` took.
            unsafe { bindings::done_path_create(&mut parent, dentry) };
            return Err(if err == EEXIST {
                errno::eaddrinuse()
            } else {
                err
            });
        }
        Ok(NewSocketNode {
            parent,
            dentry,
            idmap,
        })
    }

    /// Identity of the new inode (never dereferenced).
    pub(crate) fn inode_id(&self) -> usize {
        // SAFETY: `kern_path_create` gave us a reference on the dentry,
        // which `vfs_mknod` made positive.
        unsafe { bindings::d_backing_inode(self.dentry) as usize }
    }

    /// A counted reference to the new inode.  Takes no VFS lock (only
    /// references), so it may be called under the module's locks.
    pub(crate) fn path(&self) -> PathRef {
        let path = bindings::path {
            mnt: self.parent.mnt,
            dentry: self.dentry,
        };
        // SAFETY: `path` points at a live mount and dentry (ours until
        // `done_path_create`); `path_get` takes the references the
        // returned `PathRef` owns.
        unsafe { bindings::path_get(&path) };
        // INVARIANT: counted just above.
        PathRef(path)
    }

    /// Keeps the inode and unlocks its directory.  Call it with none of
    /// the module's locks held.
    pub(crate) fn commit(mut self) {
        // SAFETY: releases what `kern_path_create` took.
        unsafe { bindings::done_path_create(&mut self.parent, self.dentry) };
        core::mem::forget(self);
    }
}

impl Drop for NewSocketNode {
    fn drop(&mut self) {
        // SAFETY: the parent is still locked; undo the mknod, then release
        // what `kern_path_create` took.
        unsafe {
            bindings::vfs_unlink(
                self.idmap,
                (*self.parent.dentry).d_inode,
                self.dentry,
                ptr::null_mut(),
            );
            bindings::done_path_create(&mut self.parent, self.dentry);
        }
    }
}
