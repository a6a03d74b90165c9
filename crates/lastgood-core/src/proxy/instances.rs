//! The releases' processes behind the proxy: several may run at once (the one
//! serving, the one being started and checked beside it, one still draining), so each
//! has a pid file of its own, named after the port it was given:
//! `<deploy_to>/.lastgood/instances/<port>.pid` (the same [`Running`] record, start
//! time included, as the single `app.pid` of an environment without a proxy). Their
//! output goes to the one `app.log`, after the usual start marker.

use std::net::TcpListener;
use std::path::Path;

use super::state::{self, instances_dir};
use crate::supervise::{Running, Supervisor};

/// One release's process and its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub port: u16,
    pub running: Running,
}

/// The supervisor of the process given `port`.
pub fn supervisor(state: &Path, port: u16) -> Supervisor {
    Supervisor::at(instances_dir(state).join(format!("{port}.pid")), state.join("app.log"))
}

/// Every release process alive here, oldest first; stale pid files are removed.
pub fn alive(state: &Path) -> Vec<Instance> {
    let Ok(entries) = std::fs::read_dir(instances_dir(state)) else { return Vec::new() };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(port) = name.to_str().and_then(|n| n.strip_suffix(".pid")).and_then(|p| p.parse::<u16>().ok()) else {
            continue;
        };
        match supervisor(state, port).running() {
            Ok(Some(running)) => out.push(Instance { port, running }),
            // A corrupt or stale pid file names nothing alive: it goes.
            _ => {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    out.sort_by_key(|i| i.running.start_time);
    out
}

/// The process of `release` that steps act on: the one a `restart` step staged, else
/// the one the proxy routes to, else the newest.
pub fn of_release(state: &Path, release: u64) -> Option<Instance> {
    let alive = alive(state);
    let mine = |port: u16| alive.iter().find(|i| i.port == port && i.running.release == release).cloned();
    if let Some(found) = state::read_staged(state).filter(|s| s.release == release).and_then(|s| mine(s.port)) {
        return Some(found);
    }
    if let Some(found) = state::read_route(state).ok().flatten().and_then(|r| r.port).and_then(mine) {
        return Some(found);
    }
    alive.iter().rev().find(|i| i.running.release == release).cloned()
}

/// A port nobody listens on: one the kernel picks, or the first free one of `range`
/// (after the ports already given to release processes).
pub fn free_port(range: Option<(u16, u16)>, taken: &[u16]) -> Option<u16> {
    // Bound on every address, so a port some other program holds on any of them is
    // never given out.
    let try_port = |p: u16| TcpListener::bind(("0.0.0.0", p)).and_then(|l| l.local_addr()).map(|a| a.port()).ok();
    match range {
        None => try_port(0),
        Some((low, high)) => (low..=high).filter(|p| !taken.contains(p)).find_map(try_port),
    }
}
