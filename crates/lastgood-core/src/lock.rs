//! The per-environment lock: a lease with an expiry, a heartbeat and a fencing epoch.
//!
//! A lock alone is not mutual exclusion: a holder can pause past its lease and wake up
//! believing it still holds it. So each grant raises the environment's epoch, and the
//! ledger refuses any write of an operation whose epoch is no longer the lock's
//! ([`crate::ledger::Ledger::apply`]). The lease only decides when someone else may take over.
//!
//! A holder is stale when its lease expired, or, without waiting, when it ran on this
//! machine and its process is gone (pid plus start time, so a recycled pid is not
//! mistaken for the holder). "This machine" is the host name and, when the store keeps
//! it, `/etc/machine-id` with the pid namespace: containers and CI runners share host
//! names, and a pid means nothing in another namespace. A lock taken by hand with
//! `lastgood lock` has neither pid nor expiry: it lasts until `unlock`.
//!
//! Whether a lease expired is the store's clock's to say when it has one (the
//! PostgreSQL ledger asks its server, [`LockInfo::expired`]); the holder itself keeps
//! a monotonic deadline ([`Lease`]): the end of the last lease it renewed, measured
//! from before it asked. It starts no step after that deadline, nor after a renewal
//! found the lock gone, whatever its wall clock says.
//!
//! An operation holds its lock through a [`LockGuard`], which frees it when dropped,
//! on every path out (an error included): nobody frees a lock by hand. Freeing is
//! fenced too, so a guard whose lock was taken over, or already freed with the
//! operation's last write, changes nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::error::{Error, Result};
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

/// Whether the lock was taken on this machine: the same host name, and the same
/// machine id and pid namespace when the lock records them.
fn same_machine(ctx: &Context, lock: &LockInfo) -> bool {
    lock.host == ctx.host && (lock.machine.is_none() || lock.machine == ctx.machine)
}

pub fn is_stale(ctx: &Context, lock: &LockInfo, now: i64) -> bool {
    if lock.expired.unwrap_or_else(|| lock.expires_at.is_some_and(|e| e < now)) {
        return true;
    }
    match lock.pid {
        Some(pid) if same_machine(ctx, lock) => process_start_time(pid) != lock.pid_start || lock.pid_start.is_none(),
        _ => false,
    }
}

/// Whether the holder is known to be dead (not merely expired).
pub fn holder_gone(ctx: &Context, lock: &LockInfo) -> bool {
    match lock.pid {
        Some(pid) if same_machine(ctx, lock) => process_start_time(pid) != lock.pid_start,
        _ => false,
    }
}

/// The holder's own view of its lease: a monotonic deadline, and whether a renewal
/// found the lock gone. Shared by the heartbeat, which moves it, and the journal, which
/// checks it before each step.
#[derive(Clone)]
pub struct Lease {
    deadline: Arc<Mutex<Instant>>,
    lost: Arc<AtomicBool>,
}

impl Lease {
    /// A lease granted for `length`, asked for at `asked`.
    pub fn new(asked: Instant, length: Duration) -> Self {
        Self { deadline: Arc::new(Mutex::new(asked + length)), lost: Arc::new(AtomicBool::new(false)) }
    }

    fn renewed(&self, asked: Instant, length: Duration) {
        if let Ok(mut d) = self.deadline.lock() {
            *d = (*d).max(asked + length);
        }
    }

    /// Fails with [`Error::Fenced`] once the lock is known lost or its deadline passed:
    /// the holder must not start another step.
    pub fn check(&self, fence: &Fence) -> Result<()> {
        let past = self.deadline.lock().map(|d| Instant::now() >= *d).unwrap_or(true);
        if past || self.lost.load(Ordering::SeqCst) {
            return Err(Error::Fenced { env: fence.env.to_string(), epoch: fence.epoch });
        }
        Ok(())
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

    /// The holder's view of the lease, for the journal to check between steps.
    pub fn lease(&self) -> Option<Lease> {
        self.heartbeat.as_ref().map(|h| h.lease.clone())
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
    lease: Lease,
}

impl Heartbeat {
    /// Renews the lease every third of its length. `granted` is when the grant was
    /// asked for (the deadline counts from then, never from the answer).
    pub fn start(
        open: Box<dyn Fn() -> Result<Box<dyn Ledger>> + Send>,
        fence: Fence,
        length: Duration,
        granted: Instant,
        ctx: Context,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        let lease = Lease::new(granted, length);
        let mine = lease.clone();
        let handle = std::thread::spawn(move || {
            let every = length / 3;
            let mut ledger = None;
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                if ledger.is_none() {
                    ledger = open().ok();
                }
                let asked = Instant::now();
                match ledger.as_ref().map(|l| l.heartbeat(&fence, ctx.now(), length)) {
                    Some(Ok(true)) => mine.renewed(asked, length),
                    // The lock is someone else's: the operation stops at its next step
                    // (and its next fenced write would fail anyway).
                    Some(Ok(false)) => {
                        mine.lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    // Unreachable ledger: try a fresh connection next time; the
                    // deadline stops the operation if it stays unreachable.
                    Some(Err(_)) => ledger = None,
                    None => {}
                }
            }
        });
        Self { stop: Some(tx), handle: Some(handle), lease }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_pid() -> i32 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id() as i32;
        c.wait().unwrap();
        pid
    }

    fn held_by(host: &str, machine: Option<&str>, pid: i32) -> LockInfo {
        LockInfo {
            holder: "ann@web".into(),
            host: host.into(),
            pid: Some(pid),
            pid_start: Some(1),
            operation: None,
            reason: None,
            epoch: 1,
            acquired_at: 0,
            expires_at: Some(i64::MAX),
            expired: Some(false),
            machine: machine.map(str::to_owned),
        }
    }

    /// Containers and CI runners share host names: a dead pid means something only in
    /// the same machine and pid namespace.
    #[test]
    fn a_dead_holder_is_taken_over_at_once_only_on_the_same_machine() {
        let mut ctx = Context::from_env();
        ctx.host = "web".into();
        ctx.machine = Some("m1/pid:[1]".into());
        let pid = dead_pid();
        assert!(holder_gone(&ctx, &held_by("web", Some("m1/pid:[1]"), pid)));
        assert!(is_stale(&ctx, &held_by("web", Some("m1/pid:[1]"), pid), 0));
        // Same host name, another container.
        assert!(!holder_gone(&ctx, &held_by("web", Some("m2/pid:[9]"), pid)));
        assert!(!is_stale(&ctx, &held_by("web", Some("m2/pid:[9]"), pid), 0));
        // Another host name.
        assert!(!holder_gone(&ctx, &held_by("db", Some("m1/pid:[1]"), pid)));
        // The store's judgement of the lease wins over the caller's clock.
        let mut l = held_by("db", None, pid);
        l.expires_at = Some(0);
        assert!(!is_stale(&ctx, &l, 100), "expired: Some(false) from the server");
        l.expired = None;
        assert!(is_stale(&ctx, &l, 100));
    }
}
