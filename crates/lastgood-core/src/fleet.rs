//! Fleets: one environment on many ssh hosts, always on one release.
//!
//! The journal's steps stay the same (export, build, switch, restart, verify,
//! cleanup); for a fleet each step acts on a set of hosts, recorded in the step's
//! `host` column, and fans out over them with at most `parallel` at once: the fleet is
//! the [`Executor`] that carries each step's [`Action`] to the agent of every host. A
//! step succeeds only when it succeeded on every one of its hosts; its record holds one
//! line per host. The rollout shape is decided when the operation is planned
//! ([`crate::plan::placement`]): with `canary` or `batch`, switch/restart/verify are repeated per wave,
//! canary hosts first; every later wave starts only after the one before passed its
//! checks. The ledger's `current` moves only when the last wave has switched, so it
//! never names a release the whole fleet does not run once the operation has ended.
//!
//! When a step fails on any host, the failure policy of the journal applies to the
//! whole fleet: the automatic rollback switches every host back (a no-op on hosts that
//! never moved) and restarts and verifies them; `on_failure = "halt"` stops there
//! instead and leaves the operation for `lastgood resume` or `resume --abort`.
//!
//! Each host runs lastgood's own binary as an agent (`agent.rs`), uploaded once per
//! build; the agent checks the operation's fencing epoch before any change.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout};
use std::sync::{Arc, Mutex};

use crate::action::Action;
use crate::agent::{Answer, Request};
use crate::config::Environment;
use crate::error::Result as LgResult;
use crate::executor::{self, CheckRun, Executor, Failure, Payload};
use crate::model::{ReleaseId, SshHost};
use crate::runtime::{ReleaseFacts, Site};
use crate::ssh::{Ssh, SshError};
use crate::verify::CheckOutcome;

/// Free space a host must have before a deploy, in MB.
const MIN_FREE_MB: u64 = 64;

/// What went wrong on one host.
#[derive(Debug)]
pub enum HostError {
    Ssh(SshError),
    /// The agent ran and said no (or could not be run).
    Agent(String),
    /// The host has seen a newer lock epoch.
    Fenced(String),
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ssh(e) => write!(f, "{e}"),
            Self::Agent(m) | Self::Fenced(m) => f.write_str(m),
        }
    }
}

/// The hosts of one environment and how to reach them.
pub struct Fleet {
    pub env: Environment,
    ssh: Ssh,
    /// The agent's path on every host.
    agent: String,
    exe: PathBuf,
    /// One agent session per host, opened on first use and kept for the command.
    sessions: Mutex<HashMap<String, Arc<Mutex<Session>>>>,
}

/// An agent running on a host, reached through one ssh session.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Session {
    /// Sends a request and reads its answer; an I/O error means the session is gone.
    fn ask(&mut self, req: &Request, payload: &[u8]) -> std::io::Result<Answer> {
        let frame = crate::agent::Frame { len: payload.len() as u64, request: req.clone() };
        let mut line = serde_json::to_vec(&frame).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let stdin = self.stdin.as_mut().ok_or_else(|| std::io::Error::other("closed"))?;
        stdin.write_all(&line)?;
        stdin.write_all(payload)?;
        stdin.flush()?;
        let mut answer = String::new();
        if self.stdout.read_line(&mut answer)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the session ended"));
        }
        serde_json::from_str(&answer).map_err(std::io::Error::other)
    }

    /// Ends the session; ssh's exit status and what it said.
    fn finish(&mut self) -> (Option<i32>, String) {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s.code(),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                _ => {
                    let _ = self.child.kill();
                    break self.child.wait().ok().and_then(|s| s.code());
                }
            }
        };
        let mut said = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut said);
        }
        (status, said)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let sessions = std::mem::take(&mut *self.sessions.lock().unwrap_or_else(|e| e.into_inner()));
        // Closing stdin ends each agent and its ssh client; nothing waits for them (a
        // command ends right after, and its children are reaped by whoever adopts them).
        for (_, s) in sessions {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            drop(s.stdin.take());
            let _ = s.child.try_wait();
        }
    }
}

impl Fleet {
    pub fn of(env: &Environment) -> Option<Self> {
        if env.hosts.is_empty() {
            return None;
        }
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("lastgood"));
        // The agent is named after this build, so a new lastgood uploads itself again
        // and an old agent is never asked to speak a newer protocol.
        let key = std::fs::metadata(&exe)
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                format!("{}-{:x}-{:x}", env!("CARGO_PKG_VERSION"), m.len(), m.mtime())
            })
            .unwrap_or_else(|_| env!("CARGO_PKG_VERSION").to_owned());
        let agent = env.deploy_to.join(".lastgood/bin").join(format!("lastgood-{key}")).to_string_lossy().into_owned();
        Some(Self {
            env: env.clone(),
            ssh: Ssh::new(env.ssh_config.clone()),
            agent,
            exe,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    /// The configured hosts named by a step's `host` column.
    pub fn hosts_of(&self, column: &str) -> Result<Vec<SshHost>, String> {
        column
            .split(',')
            .map(|label| {
                self.env.hosts.iter().find(|h| h.label() == label).cloned().ok_or_else(|| {
                    format!("host {label} of this operation is no longer in the environment's `hosts`; put it back to finish, or run `lastgood resume --abort`")
                })
            })
            .collect()
    }

    /// Copies lastgood's binary to the host.
    fn install_agent(&self, host: &SshHost) -> Result<(), HostError> {
        let file = std::fs::File::open(&self.exe)
            .map_err(|e| HostError::Agent(format!("cannot read {}: {e}", self.exe.display())))?;
        let dir =
            std::path::Path::new(&self.agent).parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        // A fixed script; the paths arrive as its positional parameters.
        let script = "mkdir -p \"$1\" && cat > \"$2.tmp.$$\" && chmod 755 \"$2.tmp.$$\" && mv -f \"$2.tmp.$$\" \"$2\"";
        let reply = self
            .ssh
            .run(host, &["sh", "-c", script, "sh", &dir, &self.agent], &mut std::io::BufReader::new(file))
            .map_err(HostError::Ssh)?;
        if reply.status != Some(0) {
            return Err(HostError::Agent(format!(
                "cannot install lastgood's agent at {}: {}",
                self.agent,
                reply.stderr.trim()
            )));
        }
        Ok(())
    }

    /// Sends one request (and its payload) to the host's agent, over the host's session
    /// (opened on first use; the agent is installed when this build's is missing).
    pub fn call(&self, host: &SshHost, req: &Request, payload: &[u8]) -> Result<Answer, HostError> {
        let mut installed = false;
        loop {
            let session = self.session(host)?;
            let mut s = session.lock().unwrap_or_else(|e| e.into_inner());
            match s.ask(req, payload) {
                Ok(a) if a.fenced => return Err(HostError::Fenced(a.detail)),
                Ok(a) if a.ok => return Ok(a),
                Ok(a) => return Err(HostError::Agent(a.detail)),
                Err(io) => {
                    let (status, said) = s.finish();
                    drop(s);
                    self.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(&host.label());
                    match status {
                        // This build's agent is not on the host yet (a first contact, an upgrade).
                        Some(127) if !installed => {
                            self.install_agent(host)?;
                            installed = true;
                        }
                        Some(255) => return Err(HostError::Ssh(self.ssh.classify(host, &said))),
                        _ => {
                            let said = said.trim().lines().last().unwrap_or("").to_owned();
                            return Err(HostError::Agent(format!(
                                "lastgood's agent session ended ({io}; exit {}){}",
                                status.map(|s| s.to_string()).unwrap_or_else(|| "by signal".into()),
                                if said.is_empty() { String::new() } else { format!(": {said}") }
                            )));
                        }
                    }
                }
            }
        }
    }

    fn session(&self, host: &SshHost) -> Result<Arc<Mutex<Session>>, HostError> {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get(&host.label()) {
            return Ok(s.clone());
        }
        let mut child = self.ssh.spawn(host, &[self.agent.as_str(), "__agent"]).map_err(HostError::Ssh)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(HostError::Agent("ssh gave no pipes".into()));
        };
        let s = Arc::new(Mutex::new(Session { child, stdin: Some(stdin), stdout: BufReader::new(stdout) }));
        map.insert(host.label(), s.clone());
        Ok(s)
    }

    /// Runs `f` on every host, at most `parallel` at once; results in host order.
    pub fn each<T: Send>(&self, hosts: &[SshHost], f: impl Fn(&SshHost) -> T + Sync) -> Vec<(SshHost, T)> {
        let next = Mutex::new(0usize);
        let results: Mutex<Vec<Option<T>>> = Mutex::new((0..hosts.len()).map(|_| None).collect());
        let workers = self.env.rollout.parallel.clamp(1, hosts.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let i = {
                            let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                            let i = *n;
                            *n += 1;
                            i
                        };
                        let Some(host) = hosts.get(i) else { break };
                        let r = f(host);
                        results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        hosts.iter().cloned().zip(results.into_iter().map(|r| r.expect("every host ran"))).collect()
    }

    /// The site a host is: this environment's runtime, reached at the host's address.
    pub fn site(&self, host: &SshHost) -> Site {
        Site::on(&self.env, &host.host)
    }

    /// Preflight on every host: reachable with its pinned key, the agent installed,
    /// the runtime able to act (`deploy_to` writable) with room to spare, and for a
    /// rollback the target ready there (its release directory with the right commit).
    /// Returns each host's current release.
    pub fn preflight(&self, release: Option<&ReleaseFacts>) -> Result<HostReleases, Vec<Refusal>> {
        // Over the host's multiplexed connection: its key was checked against
        // known_hosts when that connection was made (at most ControlPersist ago). The
        // agent is installed when this build's is not there yet.
        let results = self.each(&self.env.hosts, |h| {
            let req = Request::Preflight { site: self.site(h), release: release.cloned(), min_free_mb: MIN_FREE_MB };
            self.call(h, &req, &[])
        });
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for (h, r) in results {
            match r {
                Ok(a) => ok.push((h, a.current)),
                Err(e) => failed.push((h, e.to_string())),
            }
        }
        if failed.is_empty() { Ok(ok) } else { Err(failed) }
    }

    /// What every host runs now (`current` and the app), for `status`.
    pub fn observe(&self) -> Vec<HostState> {
        self.each(&self.env.hosts, |h| self.call(h, &Request::Current { site: self.site(h) }, &[]))
            .into_iter()
            .map(|(h, r)| match r {
                Ok(a) => HostState {
                    host: h.label(),
                    reachable: true,
                    current: a.current,
                    app: a.app,
                    version: a.version,
                    error: None,
                    proxy: a.value.and_then(|v| serde_json::from_value(v).ok()),
                },
                Err(e) => HostState {
                    host: h.label(),
                    reachable: false,
                    current: None,
                    app: None,
                    version: None,
                    error: Some(e.to_string()),
                    proxy: None,
                },
            })
            .collect()
    }
}

/// Each host with the release its `current` names.
pub type HostReleases = Vec<(SshHost, Option<u64>)>;

/// A host that failed the preflight, and why.
pub type Refusal = (SshHost, String);

/// One host as `status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostState {
    pub host: String,
    pub reachable: bool,
    pub current: Option<u64>,
    pub app: Option<u64>,
    /// The version the host's runtime reports (an image tag; None for release folders).
    pub version: Option<String>,
    pub error: Option<String>,
    /// The host's proxy, with `[proxy]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<crate::proxy::Observed>,
}

impl Executor for Fleet {
    fn perform(&self, column: &str, action: &Action, payload: Payload<'_>, epoch: i64) -> LgResult<String> {
        let hosts = self.hosts_of(column).map_err(|message| crate::error::Error::Step { message })?;
        let tar = match payload {
            Payload::None => Vec::new(),
            Payload::Tree { source, commit } => crate::git::archive(source, commit)?,
        };
        let results = self.each(&hosts, |h| {
            let req = Request::Perform { site: self.site(h), action: action.clone(), epoch };
            self.call(h, &req, &tar)
                .map(|a| a.detail)
                .map_err(|e| Failure { fenced: matches!(e, HostError::Fenced(_)), detail: e.to_string() })
        });
        let results = results.into_iter().map(|(h, r)| (h.label(), r)).collect();
        executor::summarize(results).map_err(|failed| executor::into_error(self.env.name.as_str(), epoch, failed))
    }

    fn check(
        &self,
        column: &str,
        release: ReleaseId,
        run: &CheckRun<'_>,
    ) -> LgResult<Vec<(String, Vec<CheckOutcome>)>> {
        let hosts = self.hosts_of(column).map_err(|message| crate::error::Error::Step { message })?;
        // Checks run from the controller, against each host's address; command checks
        // in the source tree (the release directory is on the host). With a proxy, the
        // host says which port the release's process has there.
        let results = self.each(&hosts, |h| {
            let port = match self.env.proxy {
                None => None,
                Some(_) => self
                    .call(h, &Request::Port { site: self.site(h), release }, &[])
                    .ok()
                    .and_then(|a| a.value)
                    .and_then(|v| v.as_u64())
                    .and_then(|p| u16::try_from(p).ok()),
            };
            run(&h.host, &self.env.source, port)
        });
        Ok(results.into_iter().map(|(h, o)| (h.label(), o)).collect())
    }
}
