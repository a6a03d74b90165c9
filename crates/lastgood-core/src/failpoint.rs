//! Crash injection for tests: `LASTGOOD_FAILPOINT=<name>` makes the process kill
//! itself with SIGKILL when it reaches that point, exactly like `kill -9` from outside.
//!
//! Names are `intent:<step>` (the step's intent is durable, nothing applied yet),
//! `mid:<step>` (inside the step's side effect), `apply:<step>` (the effect happened
//! but is not recorded) and `done:<step>` (recorded). `err:<step>` is no crash: the
//! step fails with an error instead of running, as if its effect had failed. A suffix
//! `@N` fires on the N-th hit only (`done:verify@2`). The variable is read once; when it is unset this costs
//! one comparison per point.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

static SPEC: OnceLock<Option<(String, u32)>> = OnceLock::new();
static HITS: AtomicU32 = AtomicU32::new(0);

pub fn hit(name: &str) {
    if fires(name) {
        // SAFETY: kill(2) on our own pid with a constant signal has no memory effects.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Whether the failpoint `name` fires here (its N-th hit), for faults other than a
/// crash: `ledger:ack-lost` makes the PostgreSQL ledger drop its connection right
/// after a COMMIT, as if the acknowledgement was lost on the way back.
pub fn fires(name: &str) -> bool {
    let spec = SPEC.get_or_init(|| {
        let v = std::env::var("LASTGOOD_FAILPOINT").ok()?;
        Some(match v.rsplit_once('@') {
            Some((n, k)) => (n.to_owned(), k.parse().unwrap_or(1)),
            None => (v, 1),
        })
    });
    match spec {
        Some((want, nth)) => want == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth,
        None => false,
    }
}
