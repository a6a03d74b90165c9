//! The per-environment lock: a lease with an expiry, a heartbeat and a fencing epoch.
//!
//! A lock alone is not mutual exclusion: a holder can pause past its lease and wake up
//! believing it still holds it. So each grant raises the environment's epoch, and the
//! ledger refuses any write of an operation whose epoch is no longer the lock's
//! ([`crate::ledger::Ledger::apply`]). The lease only decides when someone else may take over.
//!
//! A holder is stale when its lease expired, or, without waiting, when it ran on this
//! machine and its process is gone (pid plus start time, so a recycled pid is not
//! mistaken for the holder). A lock taken by hand with `lastgood lock` has neither pid
//! nor expiry: it lasts until `unlock`.
//!
//! An operation holds its lock through a [`LockGuard`], which frees it when dropped,
//! on every path out (an error included): nobody frees a lock by hand. Freeing is
//! fenced too, so a guard whose lock was taken over, or already freed with the
//! operation's last write, changes nothing.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::context::Context;
use crate::error::Result;
use crate::ledger::{Fence, Ledger, LockInfo};

/// The start time of a process (field 22 of `/proc/<pid>/stat`), or None if it is gone
/// or a zombie.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

pub fn is_stale(ctx: &Context, lock: &LockInfo, now: i64) -> bool {
    if lock.expires_at.is_some_and(|e| e < now) {
        return true;
    }
    match lock.pid {
        Some(pid) if lock.host == ctx.host => process_start_time(pid) != lock.pid_start || lock.pid_start.is_none(),
        _ => false,
    }
}

/// Whether the holder is known to be dead (not merely expired).
pub fn holder_gone(ctx: &Context, lock: &LockInfo) -> bool {
    match lock.pid {
        Some(pid) if lock.host == ctx.host => process_start_time(pid) != lock.pid_start,
        _ => false,
    }
}

/// A held lock: its fence, the heartbeat that renews its lease, and the ledger that
/// frees it when the guard goes.
pub struct LockGuard<'a> {
    ledger: &'a dyn Ledger,
    pub fence: Fence,
    heartbeat: Option<Heartbeat>,
}

impl<'a> LockGuard<'a> {
    pub fn new(ledger: &'a dyn Ledger, fence: Fence, heartbeat: Heartbeat) -> Self {
        Self { ledger, fence, heartbeat: Some(heartbeat) }
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Stop renewing first, then free. Best effort: if this fails the lease
        // expires, or the next command on this machine sees our process gone and
        // takes over.
        drop(self.heartbeat.take());
        let _ = self.ledger.release_lock(&self.fence);
    }
}

/// Keeps a lease alive from a thread of its own, with its own ledger connection.
pub struct Heartbeat {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Heartbeat {
    pub fn start(
        open: Box<dyn Fn() -> Result<Box<dyn Ledger>> + Send>,
        fence: Fence,
        lease: Duration,
        ctx: Context,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            let every = lease / 3;
            let mut ledger = None;
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                if ledger.is_none() {
                    ledger = open().ok();
                }
                if let Some(l) = &ledger {
                    let expires = ctx.now() + lease.as_secs() as i64;
                    // A lost lock ends the beat; the operation finds out at its next
                    // fenced write, which is where it must stop anyway.
                    if let Ok(false) = l.heartbeat(&fence, expires) {
                        return;
                    }
                }
            }
        });
        Self { stop: Some(tx), handle: Some(handle) }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
