//! What the proxy's folder holds on disk, `<deploy_to>/.lastgood/proxy/`: the route
//! (which release gets new connections), the release staged to get them next, and the
//! record of times the proxy was found not running.
//!
//! The route file is the truth about traffic: the proxy reads it when it starts and
//! when it is told to, and lastgood writes it (atomically: a reader sees the old route
//! or the new one, never a torn one) before telling the proxy. So a proxy restarted
//! after a crash, and a `resume` after lastgood was killed mid-switch, both know which
//! release receives new connections without asking anyone.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `<state>/proxy`.
pub fn dir(state: &Path) -> PathBuf {
    state.join("proxy")
}

pub fn route_file(state: &Path) -> PathBuf {
    dir(state).join("route.json")
}

pub fn staged_file(state: &Path) -> PathBuf {
    dir(state).join("staged.json")
}

pub fn outages_file(state: &Path) -> PathBuf {
    dir(state).join("outages.json")
}

pub fn control_socket(state: &Path) -> PathBuf {
    dir(state).join("control.sock")
}

/// Where the releases' processes keep their pid files, one per port.
pub fn instances_dir(state: &Path) -> PathBuf {
    state.join("instances")
}

/// Which release gets new connections, and at which address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The address the proxy listens on.
    pub listen: String,
    /// None: nothing is routed (a first deploy not switched yet, or everything
    /// stopped); the proxy closes the connections it accepts.
    pub release: Option<u64>,
    /// `host:port` of the release's process.
    pub backend: Option<String>,
    pub port: Option<u16>,
}

/// The release's process a `route` step switches to next (the `restart` step chose
/// it: started beside, or found running).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staged {
    pub release: u64,
    pub port: u16,
}

/// A time lastgood found the proxy not running and started it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    /// Unix milliseconds: when lastgood found it gone (it went down before that).
    pub found_at_ms: u64,
    /// Its pid file's pid, if it had one.
    pub pid: Option<i32>,
    /// The release it was routing to.
    pub release: Option<u64>,
}

/// How many outages are kept.
const OUTAGES_KEPT: usize = 10;

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    // Invariant: these are plain structs of strings and integers, which serialize.
    let bytes = serde_json::to_vec(value).expect("proxy state serializes");
    crate::atomic::write_atomic(path, &bytes).map_err(|e| io::Error::other(e.to_string()))
}

pub fn read_route(state: &Path) -> io::Result<Option<Route>> {
    read_json(&route_file(state))
}

pub fn write_route(state: &Path, route: &Route) -> io::Result<()> {
    create_dir(state)?;
    write_json(&route_file(state), route)
}

pub fn read_staged(state: &Path) -> Option<Staged> {
    read_json(&staged_file(state)).ok().flatten()
}

pub fn write_staged(state: &Path, staged: &Staged) -> io::Result<()> {
    create_dir(state)?;
    write_json(&staged_file(state), staged)
}

pub fn clear_staged(state: &Path) {
    let _ = std::fs::remove_file(staged_file(state));
}

pub fn read_outages(state: &Path) -> Vec<Outage> {
    read_json(&outages_file(state)).ok().flatten().unwrap_or_default()
}

pub fn record_outage(state: &Path, outage: Outage) -> io::Result<()> {
    let mut all = read_outages(state);
    all.push(outage);
    let from = all.len().saturating_sub(OUTAGES_KEPT);
    write_json(&outages_file(state), &all[from..].to_vec())
}

/// The proxy's folder, readable by its owner only: the control socket inside it
/// switches traffic, so nobody else may reach it.
pub fn create_dir(state: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let d = dir(state);
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&d)?;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
}
