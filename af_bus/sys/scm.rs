// SPDX-License-Identifier: GPL-2.0

//! `struct scm_cookie` (`Scm`): passed credentials and files, and files in flight per user.

use crate::uapi::AF_BUS;
use core::ptr;
use kernel::bindings;
use kernel::error::to_result;
use kernel::ffi::c_int;
use kernel::prelude::*;
use kernel::sync::SpinLock;

use super::*;

/// The `SOL_SOCKET` control messages of a send: credentials and files.
///
/// # Invariants
///
/// `0` was filled by `scm_send` and is destroyed on drop unless moved
/// into an skb.
pub(crate) struct Scm(pub(crate) bindings::scm_cookie, pub(crate) u32);

impl Scm {
    /// Runs `scm_send`: validates `SCM_CREDENTIALS` (`EPERM` for a
    /// forgery) and takes `SCM_RIGHTS` files.
    pub(crate) fn send<T>(sock: &Sock<T>, msg: &mut Msg<'_>) -> Result<Scm> {
        // SAFETY: all-zero is a valid cookie; `scm_send` fills it.
        let mut scm: bindings::scm_cookie = unsafe { core::mem::zeroed() };
        // SAFETY: the socket and message are live for the call.
        let err = unsafe { bindings::scm_send((*sock.sk()).sk_socket, msg.0, &mut scm, false) };
        if let Err(e) = to_result(err) {
            // SAFETY: `scm_send` leaves a cookie that may be destroyed.
            unsafe { bindings::scm_destroy(&mut scm) };
            return Err(e);
        }
        Ok(Scm(scm, NO_CHARGE))
    }

    /// Counts the files in flight for the user `uid`, refusing them
    /// (`ETOOMANYREFS`) past the caller's `RLIMIT_NOFILE` unless it has
    /// `CAP_SYS_RESOURCE` or `CAP_SYS_ADMIN`, as AF_UNIX does.
    pub(crate) fn charge_files(&mut self, uid: u32) -> Result {
        if self.0.fp.is_null() {
            return Ok(());
        }
        // SAFETY: reads the current task's rlimit.
        let limit = unsafe { af_bus_rlimit_nofile() };
        let exempt = || {
            // SAFETY: `capable` only looks at the current task.
            unsafe {
                bindings::capable(bindings::CAP_SYS_RESOURCE as c_int)
                    || bindings::capable(bindings::CAP_SYS_ADMIN as c_int)
            }
        };
        let n = fp_count(self.0.fp);
        Inflight::charge(uid, n, limit as u64, exempt)?;
        self.1 = uid;
        Ok(())
    }

    /// Refuses AF_UNIX and AF_BUS sockets among the files: a socket in
    /// flight could hold its own receive queue alive.
    pub(crate) fn refuse_sockets(&self) -> Result {
        let fpl = self.0.fp;
        if fpl.is_null() {
            return Ok(());
        }
        // SAFETY: `fpl` holds `count` counted files.
        unsafe {
            let count = usize::try_from((*fpl).count).unwrap_or(0);
            for &file in (*fpl).fp.iter().take(count) {
                let sock = bindings::sock_from_file(file);
                if sock.is_null() || (*sock).sk.is_null() {
                    continue;
                }
                let family = (*(*sock).sk).__sk_common.skc_family;
                if family == bindings::AF_UNIX as u16 || family == AF_BUS {
                    return Err(errno::eopnotsupp());
                }
            }
        }
        Ok(())
    }

    /// Moves the credentials (the sender's own when it gave none) and the
    /// files into `skb`, which is charged to `quota_uid`.
    pub(crate) fn into_skb(mut self, skb: &mut Skb, quota_uid: u32) {
        // SAFETY: `cb` was initialised by `Skb::init` and holds no
        // references yet; the cookie's are moved there, then forgotten.
        unsafe {
            let cb = skb.cb();
            (*cb).quota_uid = quota_uid;
            if self.0.pid.is_null() {
                let task = bindings::get_current();
                (*cb).pid = bindings::get_pid(bindings::task_tgid(task));
                (*cb).uid = bindings::current_uid();
                (*cb).gid = bindings::current_gid();
            } else {
                (*cb).pid = self.0.pid;
                (*cb).uid = self.0.creds.uid;
                (*cb).gid = self.0.creds.gid;
                self.0.pid = ptr::null_mut();
            }
            (*cb).fp = self.0.fp;
            (*cb).fp_uid = self.1;
            self.0.fp = ptr::null_mut();
        }
    }

    /// Whether the message carries files.
    pub(crate) fn has_files(&self) -> bool {
        !self.0.fp.is_null()
    }
}

impl Drop for Scm {
    fn drop(&mut self) {
        if !self.0.fp.is_null() {
            Inflight::sub(self.1, fp_count(self.0.fp));
        }
        // SAFETY: destroys what the cookie still holds (type invariant).
        unsafe { bindings::scm_destroy(&mut self.0) };
    }
}

/// Files in a list of files in flight.
pub(crate) fn fp_count(fpl: *mut bindings::scm_fp_list) -> u32 {
    // SAFETY: callers pass a live list; `count` is a small positive short.
    unsafe { u32::try_from((*fpl).count).unwrap_or(0) }
}

/// Most users with files in flight at once; a further one's files are
/// refused (`ETOOMANYREFS`).
pub(crate) const INFLIGHT_USERS: usize = 256;

/// The files in flight (in messages sent and not yet received or freed)
/// per user, as AF_UNIX counts `user->unix_inflight`: no user may have
/// more than its `RLIMIT_NOFILE` in flight, so that passing files cannot
/// pin an unbounded number of them.
#[pin_data]
pub(crate) struct Inflight {
    #[pin]
    pub(crate) users: SpinLock<[(u32, u64); INFLIGHT_USERS]>,
}

/// The table of the loaded module, set by [`Registration::new`].
pub(crate) static INFLIGHT: core::sync::atomic::AtomicPtr<Inflight> =
    core::sync::atomic::AtomicPtr::new(ptr::null_mut());

impl Inflight {
    pub(crate) fn get() -> Option<&'static Inflight> {
        let p = INFLIGHT.load(core::sync::atomic::Ordering::Acquire);
        // SAFETY: set while the family is registered, to a table that
        // outlives every socket and skb of the module (each holds a
        // module reference).
        unsafe { p.as_ref() }
    }

    /// Adds `n` files for `uid`, unless that takes it past `limit` and
    /// it is not `exempt` (asked only then, as AF_UNIX asks `capable`).
    pub(crate) fn charge(uid: u32, n: u32, limit: u64, exempt: impl Fn() -> bool) -> Result {
        let Some(t) = Self::get() else {
            return Ok(());
        };
        let now = t
            .users
            .lock()
            .iter()
            .find(|e| e.0 == uid && e.1 > 0)
            .map_or(0, |e| e.1);
        if now + u64::from(n) > limit && !exempt() {
            return Err(errno::etoomanyrefs());
        }
        if Self::add(uid, n) {
            Ok(())
        } else {
            Err(errno::etoomanyrefs())
        }
    }

    /// Adds `n` files for `uid` without a limit (a multicast copy);
    /// `false` if the table has no room for another user.
    pub(crate) fn add(uid: u32, n: u32) -> bool {
        if uid == NO_CHARGE {
            return true;
        }
        let Some(t) = Self::get() else {
            return true;
        };
        let mut users = t.users.lock();
        let at = users
            .iter()
            .position(|e| e.0 == uid && e.1 > 0)
            .or_else(|| users.iter().position(|e| e.1 == 0));
        match at.and_then(|at| users.get_mut(at)) {
            Some(e) => {
                *e = (uid, e.1 + u64::from(n));
                true
            }
            None => false,
        }
    }

    /// Takes `n` files of `uid` out of flight.
    pub(crate) fn sub(uid: u32, n: u32) {
        if uid == NO_CHARGE {
            return;
        }
        if let Some(t) = Self::get() {
            let mut users = t.users.lock();
            if let Some(e) = users.iter_mut().find(|e| e.0 == uid && e.1 > 0) {
                e.1 = e.1.saturating_sub(u64::from(n));
            }
        }
    }
}

/// The sender's credentials, for a message that goes straight into a
/// ring: the ones it gave, or its own.
pub(crate) fn sender_creds(scm: &Scm) -> SenderCreds {
    // SAFETY: reads the cookie, or the current task's credentials; the
    // pid is only used while the cookie (or the task) holds it.
    unsafe {
        if scm.0.pid.is_null() {
            SenderCreds {
                pid: bindings::task_tgid(bindings::get_current()),
                uid: bindings::current_uid().val,
                gid: bindings::current_gid().val,
            }
        } else {
            SenderCreds {
                pid: scm.0.pid,
                uid: scm.0.creds.uid.val,
                gid: scm.0.creds.gid.val,
            }
        }
    }
}
