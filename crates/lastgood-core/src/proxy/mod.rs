//! The zero-downtime switch: lastgood's own TCP proxy in front of a `run` app.
//!
//! With `[environments.ENV.proxy]`, the public address (`listen`) belongs to a proxy
//! process lastgood starts and keeps (see [`server`]), and each release's process gets
//! a port of its own (`{port}`, `LASTGOOD_PORT`). An operation then never stops what
//! serves before what replaces it is proven: the target starts beside the current
//! release ([`Proxy::start`]), its checks reach it on its own port, the proxy sends new
//! connections to it ([`Proxy::route`]: the route file is replaced atomically, then
//! the proxy is told and confirms), and only then does the old process get `drain` to
//! finish its open connections before it is stopped ([`Proxy::retire`]). A release
//! that fails its checks is never routed, so a failed deploy costs users nothing.
//!
//! Each of these is a step of its own in the journal, idempotent and crash-safe: the
//! route file says which release gets traffic, the pid files which processes run, so
//! `resume` (or `--abort`) after a `kill -9` finishes with exactly one release routed
//! and every other one stopped. This is kamal-proxy's model, at the TCP level.
//!
//! A proxy found not running (killed, the machine rebooted) is started again by the
//! next step that needs it, and the time it was found down is recorded for `status`.
//!
//! - [`settings`]: the config section, as it travels to hosts.
//! - [`state`]: the route, staged and outage files.
//! - [`instances`]: the releases' processes, one pid file per port.
//! - [`server`]: the proxy process itself.

pub mod instances;
pub mod keeper;
pub mod server;
pub mod settings;
pub mod state;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use self::instances::Instance;
use self::server::Status;
use self::settings::ProxySettings;
use self::state::{Outage, Route, Staged};
use crate::supervise::{SuperviseError, Supervisor};

/// How long a newly started proxy may take to answer on its control socket.
const PROXY_START: Duration = Duration::from_secs(5);
/// How long a release's process may take to accept connections on its port before
/// the proxy is switched to it (its checks usually waited already).
const LISTEN_WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);
/// How long a process given a port is watched for dying at once.
const SETTLE: Duration = Duration::from_millis(50);

/// Why a proxy step could not do its part; each says what, why and what next.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(
        "the proxy cannot start on {listen}: {why}; if another program listens there, stop it or change \
         [proxy] listen (the release serving now, if any, keeps serving)"
    )]
    CannotListen { listen: String, why: String },
    #[error("the proxy's control socket {path} does not answer: {why}; its log is {log}")]
    NoAnswer { path: PathBuf, why: String, log: PathBuf },
    #[error(
        "no free port for release #{release}{}: every port is in use; free one or widen [proxy] ports \
         (the release serving now keeps serving)",
        range.map(|(a, b)| format!(" in {a}-{b}")).unwrap_or_default()
    )]
    NoFreePort { release: u64, range: Option<(u16, u16)> },
    #[error(
        "release #{release} is not running here: no process of it to {what}; `lastgood resume` starts it again \
         (or `lastgood restart ENV`)"
    )]
    NotRunning { release: u64, what: &'static str },
    #[error(
        "release #{release} does not accept connections on {backend} ({why}) after {}: its `run` must listen \
         on {{port}} / $LASTGOOD_PORT; new connections stay with the release serving now",
        humantime::format_duration(*waited)
    )]
    NotListening { release: u64, backend: String, why: String, waited: Duration },
    #[error("the proxy did not take the new route to release #{release}: {why}")]
    NotApplied { release: u64, why: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(transparent)]
    Supervise(#[from] SuperviseError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProxyError {
    let what = what.into();
    move |source| ProxyError::Io { what, source }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The proxy of one site: its state folder, the address releases listen on there
/// (`{host}`), and the environment's proxy settings.
pub struct Proxy {
    pub state: PathBuf,
    pub host: String,
    pub settings: ProxySettings,
    /// The grace a stopped process gets between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
}

/// What `status` shows of a site's proxy.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Observed {
    pub listen: String,
    /// The release new connections go to, per the route file.
    pub release: Option<u64>,
    pub port: Option<u16>,
    /// The proxy's pid, when it runs.
    pub pid: Option<i32>,
    pub running: bool,
    /// The last time it was found not running and started again.
    pub last_outage: Option<Outage>,
    /// Release processes running here, with their ports.
    pub instances: Vec<(u64, u16)>,
}

impl Proxy {
    fn supervisor(&self) -> Supervisor {
        let dir = state::dir(&self.state);
        Supervisor::at(dir.join("proxy.pid"), dir.join("proxy.log")).clean_env()
    }

    fn route_now(&self) -> Result<Route, ProxyError> {
        let path = state::route_file(&self.state);
        Ok(state::read_route(&self.state)
            .map_err(io(format!("read {}", path.display())))?
            .unwrap_or_else(|| Route { listen: self.settings.listen.clone(), ..Route::default() }))
    }

    /// Asks the running proxy one control command.
    fn ask(&self, command: &str) -> Result<Status, ProxyError> {
        let path = state::control_socket(&self.state);
        let no_answer =
            |why: String| ProxyError::NoAnswer { path: path.clone(), why, log: self.supervisor().log_file().into() };
        let mut conn = UnixStream::connect(&path).map_err(|e| no_answer(e.to_string()))?;
        conn.set_read_timeout(Some(PROXY_START)).map_err(|e| no_answer(e.to_string()))?;
        writeln!(conn, "{command}").map_err(|e| no_answer(e.to_string()))?;
        let mut line = String::new();
        BufReader::new(conn).read_line(&mut line).map_err(|e| no_answer(e.to_string()))?;
        serde_json::from_str(&line).map_err(|e| no_answer(format!("unreadable answer {line:?}: {e}")))
    }

    /// Starts the proxy unless it runs (on the configured address); says what it did.
    pub fn ensure(&self) -> Result<String, ProxyError> {
        match self.ensure_once() {
            // The app lastgood started before the environment had a proxy may hold the
            // address (it served there): once a release runs beside it, it goes, and
            // the proxy takes its place (the one moment without a listener).
            Err(ProxyError::CannotListen { listen, why }) => {
                let legacy = Supervisor::new(&self.state);
                let Some(old) = legacy.stop(self.stop_grace)? else {
                    return Err(ProxyError::CannotListen { listen, why });
                };
                let started = self.ensure_once()?;
                Ok(format!(
                    "stopped pid {} (#{}, started before the environment had a proxy), which held {listen}; {started}",
                    old.pid, old.release
                ))
            }
            other => other,
        }
    }

    /// Whether the app lastgood started without a proxy still runs here.
    fn legacy_runs(&self) -> bool {
        Supervisor::new(&self.state).running().ok().flatten().is_some()
    }

    fn ensure_once(&self) -> Result<String, ProxyError> {
        let sup = self.supervisor();
        let recorded = std::fs::read(sup.pid_file()).ok();
        let mut found_down = false;
        if sup.running()?.is_some() {
            match self.ask("status") {
                Ok(s) if s.listen == self.settings.listen => return Ok(String::new()),
                // Moved to another address by a config change, or hung: start it anew.
                _ => {
                    sup.stop(self.stop_grace)?;
                }
            }
        } else if recorded.is_some() {
            found_down = true;
            // It was started once and is gone: traffic was down from then to now.
            let route = state::read_route(&self.state).ok().flatten();
            let pid =
                recorded.and_then(|b| serde_json::from_slice::<crate::supervise::Running>(&b).ok()).map(|r| r.pid);
            state::record_outage(
                &self.state,
                Outage { found_at_ms: now_ms(), pid, release: route.and_then(|r| r.release) },
            )
            .map_err(io("record the proxy's outage"))?;
        }
        let mut route = self.route_now()?;
        route.listen = self.settings.listen.clone();
        state::write_route(&self.state, &route).map_err(io("write the proxy's route"))?;
        let exe = std::env::current_exe().map_err(io("find lastgood's own program"))?;
        let argv = [exe.to_string_lossy().into_owned(), "__proxy".into(), self.state.to_string_lossy().into_owned()];
        let started = match sup.start(&argv, &self.state, &[], route.release.unwrap_or(0), Duration::ZERO) {
            Ok(r) => r,
            Err(SuperviseError::ExitedAtStart { log_tail, .. }) => {
                return Err(ProxyError::CannotListen { listen: route.listen, why: last_line(&log_tail) });
            }
            Err(e) => return Err(e.into()),
        };
        let deadline = Instant::now() + PROXY_START;
        loop {
            match self.ask("status") {
                Ok(_) => break,
                Err(e) => {
                    if sup.running()?.is_none() {
                        // It never served: no pid file names it, and no outage is recorded.
                        sup.stop(self.stop_grace)?;
                        let log = std::fs::read_to_string(sup.log_file()).unwrap_or_default();
                        return Err(ProxyError::CannotListen { listen: route.listen, why: last_line(&log) });
                    }
                    if Instant::now() >= deadline {
                        let _ = sup.stop(self.stop_grace);
                        return Err(e);
                    }
                }
            }
            thread::sleep(POLL);
        }
        Ok(if found_down {
            format!(
                "the proxy was not running (traffic to {} was down): started it again, pid {}",
                route.listen, started.pid
            )
        } else {
            format!("started the proxy on {}, pid {}", route.listen, started.pid)
        })
    }

    /// Makes a process of `release` ready beside whatever serves, on a port of its own:
    /// the one already running when `reuse` allows (a resumed step, a rollback to a
    /// release still running), else a new one. `argv` and `vars` are the `run` line
    /// and its variables; `LASTGOOD_PORT` is added.
    pub fn start(
        &self,
        release: u64,
        argv: &[String],
        cwd: &Path,
        vars: &[(String, String)],
        reuse: Reuse,
    ) -> Result<String, ProxyError> {
        // Beside an app started before the proxy existed, the proxy starts when traffic
        // moves (it may need that app's address), not before the release is checked.
        let started_proxy = if self.legacy_runs() { String::new() } else { self.ensure()? };
        let route = self.route_now()?;
        let staged = state::read_staged(&self.state);
        let reusable = instances::of_release(&self.state, release).filter(|i| match reuse {
            Reuse::Any => true,
            // A fresh start may still take the one an interrupted run of this same step
            // started (it was staged and never routed).
            Reuse::Staged => {
                staged.as_ref().is_some_and(|s| s.port == i.port && s.release == release) && route.port != Some(i.port)
            }
        });
        let mut detail = match reusable {
            Some(i) => {
                state::write_staged(&self.state, &Staged { release, port: i.port }).map_err(io("stage the release"))?;
                format!("#{release} already runs: pid {} on port {}", i.running.pid, i.port)
            }
            None => {
                let taken: Vec<u16> = instances::alive(&self.state).iter().map(|i| i.port).collect();
                let port = instances::free_port(self.settings.ports, &taken)
                    .ok_or(ProxyError::NoFreePort { release, range: self.settings.ports })?;
                let mut vars = vars.to_vec();
                vars.push(("LASTGOOD_PORT".into(), port.to_string()));
                let running = instances::supervisor(&self.state, port).start(argv, cwd, &vars, release, SETTLE)?;
                state::write_staged(&self.state, &Staged { release, port }).map_err(io("stage the release"))?;
                let beside = match route.release.zip(route.port) {
                    Some((r, p)) if p != port => format!(" beside #{r} (port {p})"),
                    _ => String::new(),
                };
                format!("started pid {} (#{release}) on port {port}{beside}", running.pid)
            }
        };
        if !started_proxy.is_empty() {
            detail = format!("{started_proxy}; {detail}");
        }
        Ok(detail)
    }

    /// The port of the process of `release` checks reach, if it runs.
    pub fn port_of(&self, release: u64) -> Option<u16> {
        instances::of_release(&self.state, release).map(|i| i.port)
    }

    /// Sends new connections to `release`'s process, once it accepts connections.
    pub fn route(&self, release: u64) -> Result<String, ProxyError> {
        let started_proxy = self.ensure()?;
        let inst =
            instances::of_release(&self.state, release).ok_or(ProxyError::NotRunning { release, what: "route to" })?;
        let backend = format!("{}:{}", self.host, inst.port);
        self.wait_listening(release, &inst, &backend)?;
        let old = self.route_now()?;
        // What the proxy does, not what the file says: lastgood may have been killed
        // between writing the file and telling the proxy.
        let live = self.ask("status")?;
        let mut detail = if live.backend.as_deref() == Some(backend.as_str()) && old.port == Some(inst.port) {
            format!("new connections to {} already went to #{release} (port {})", self.settings.listen, inst.port)
        } else {
            let route = Route {
                listen: self.settings.listen.clone(),
                release: Some(release),
                backend: Some(backend.clone()),
                port: Some(inst.port),
            };
            state::write_route(&self.state, &route).map_err(io("write the proxy's route"))?;
            crate::failpoint::hit("mid:route");
            let applied = self.ask("route")?;
            if let Some(why) = applied.error {
                return Err(ProxyError::NotApplied { release, why });
            }
            if applied.backend.as_deref() != Some(backend.as_str()) {
                return Err(ProxyError::NotApplied {
                    release,
                    why: format!("it routes to {}", applied.backend.unwrap_or_else(|| "nothing".into())),
                });
            }
            let was = match old.release.zip(old.port) {
                Some((r, p)) => format!(" (was #{r} on port {p})"),
                None => String::new(),
            };
            format!("new connections to {} go to #{release} on port {}{was}", self.settings.listen, inst.port)
        };
        state::clear_staged(&self.state);
        if !started_proxy.is_empty() {
            detail = format!("{started_proxy}; {detail}");
        }
        Ok(detail)
    }

    fn wait_listening(&self, release: u64, inst: &Instance, backend: &str) -> Result<(), ProxyError> {
        let started = Instant::now();
        let addr = backend.to_socket_addrs().ok().and_then(|mut a| a.next());
        loop {
            let why = match addr {
                None => "the address does not resolve".to_owned(),
                Some(a) => match TcpStream::connect_timeout(&a, Duration::from_secs(1)) {
                    Ok(_) => return Ok(()),
                    Err(e) => e.to_string(),
                },
            };
            let alive = instances::supervisor(&self.state, inst.port).running()?.is_some();
            if !alive || started.elapsed() >= LISTEN_WAIT {
                let why = if alive { why } else { format!("{why}; its process exited, see the app's log") };
                return Err(ProxyError::NotListening {
                    release,
                    backend: backend.to_owned(),
                    why,
                    waited: started.elapsed(),
                });
            }
            thread::sleep(POLL);
        }
    }

    /// Stops every release process the proxy does not route to, each once its open
    /// connections are done or `drain` is over.
    pub fn retire(&self) -> Result<String, ProxyError> {
        let route = self.route_now()?;
        // The proxy must route as the file says before anything it might still send
        // connections to is stopped.
        if let Ok(live) = self.ask("status") {
            if live.backend != route.backend {
                let applied = self.ask("route")?;
                if applied.backend != route.backend {
                    return Err(ProxyError::NotApplied {
                        release: route.release.unwrap_or(0),
                        why: applied.error.unwrap_or_else(|| "it routes elsewhere".into()),
                    });
                }
            }
        }
        let old: Vec<Instance> =
            instances::alive(&self.state).into_iter().filter(|i| Some(i.port) != route.port).collect();
        let legacy = Supervisor::new(&self.state);
        let mut lines = Vec::new();
        if old.is_empty() && legacy.running()?.is_none() {
            return Ok("no other release process runs".into());
        }
        let deadline = Instant::now() + Duration::from_millis(self.settings.drain_ms);
        for inst in &old {
            let backend = format!("{}:{}", self.host, inst.port);
            let began = Instant::now();
            let left = loop {
                // A proxy that does not answer holds no connection worth waiting for.
                let open = self.ask("status").ok().and_then(|s| s.connections.get(&backend).copied()).unwrap_or(0);
                if open == 0 || Instant::now() >= deadline {
                    break open;
                }
                thread::sleep(POLL);
            };
            instances::supervisor(&self.state, inst.port).stop(self.stop_grace)?;
            let drained = if left == 0 {
                format!("drained in {} ms", began.elapsed().as_millis())
            } else {
                format!("{left} connection(s) still open when drain ended")
            };
            lines.push(format!(
                "stopped pid {} (#{}, port {}): {drained}",
                inst.running.pid, inst.running.release, inst.port
            ));
        }
        // A process started before the environment had a proxy.
        if let Some(old) = legacy.stop(self.stop_grace)? {
            lines.push(format!("stopped pid {} (#{}, started before the proxy)", old.pid, old.release));
        }
        Ok(lines.join("; "))
    }

    /// Stops every release process and routes nothing (before migrations go down, or
    /// undoing a first deploy); the proxy keeps its address.
    pub fn stop_all(&self) -> Result<String, ProxyError> {
        let mut route = self.route_now()?;
        let mut lines = Vec::new();
        if route.release.is_some() {
            route.release = None;
            route.backend = None;
            route.port = None;
            state::write_route(&self.state, &route).map_err(io("write the proxy's route"))?;
            if self.supervisor().running()?.is_some() {
                let _ = self.ask("route")?;
            }
            lines.push(format!("the proxy on {} routes nothing", route.listen));
        }
        state::clear_staged(&self.state);
        for inst in instances::alive(&self.state) {
            instances::supervisor(&self.state, inst.port).stop(self.stop_grace)?;
            lines.push(format!("stopped pid {} (#{}, port {})", inst.running.pid, inst.running.release, inst.port));
        }
        if let Some(old) = Supervisor::new(&self.state).stop(self.stop_grace)? {
            lines.push(format!("stopped pid {}", old.pid));
        }
        Ok(if lines.is_empty() { "nothing was running".into() } else { lines.join("; ") })
    }

    /// The proxy and the release processes here, for `status`.
    pub fn observe(&self) -> Observed {
        let route = self.route_now().unwrap_or_default();
        let running = self.supervisor().running().ok().flatten();
        Observed {
            listen: self.settings.listen.clone(),
            release: route.release,
            port: route.port,
            pid: running.as_ref().map(|r| r.pid),
            running: running.is_some(),
            last_outage: state::read_outages(&self.state).pop(),
            instances: instances::alive(&self.state).iter().map(|i| (i.running.release, i.port)).collect(),
        }
    }
}

/// Undoes the proxy of an environment whose `[proxy]` was removed: every release
/// process it fronted and the proxy itself are stopped (the app without a proxy wants
/// the address back), and the route forgotten. Says what it stopped; nothing when the
/// environment never had a proxy here.
pub fn teardown(state: &Path, grace: Duration) -> Result<Vec<String>, ProxyError> {
    let mut stopped = Vec::new();
    for inst in instances::alive(state) {
        instances::supervisor(state, inst.port).stop(grace)?;
        stopped.push(format!("stopped pid {} (#{}, port {})", inst.running.pid, inst.running.release, inst.port));
    }
    let dir = state::dir(state);
    if let Some(p) = Supervisor::at(dir.join("proxy.pid"), dir.join("proxy.log")).stop(grace)? {
        stopped.push(format!("stopped the proxy (pid {}): the environment has no [proxy] any more", p.pid));
    }
    for file in [state::route_file(state), state::staged_file(state)] {
        let _ = std::fs::remove_file(file);
    }
    Ok(stopped)
}

/// Which running process of a release a start may take instead of starting one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Any (a rollback to a release still running, a resumed or undone operation).
    Any,
    /// Only one this same step staged and never routed (`lastgood restart`, a config
    /// change: the app must start again to read it).
    Staged,
}

fn last_line(text: &str) -> String {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("it exited").trim().to_owned()
}
