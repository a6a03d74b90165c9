//! Reading and marking: `status`, `history`, `verify`, `mark`, and holding the
//! environment by hand with `lock` and `unlock`.

use serde::Serialize;

use super::Engine;
use crate::error::{Error, Result};
use crate::executor::{Executor, Local};
use crate::fleet::HostState;
use crate::ledger::{AuditEvent, Change, LockInfo, LockRequest, Release};
use crate::lock;
use crate::model::{OperationKind, ReleaseEvent, ReleaseId, ReleaseState, next_state};
use crate::plan::placement;
use crate::runtime::{self, Site};
use crate::supervise::{Running, Supervisor};
use crate::verify::CheckOutcome;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub environment: String,
    pub current: Option<Release>,
    pub last_good: Option<Release>,
    pub lock: Option<LockInfo>,
    /// The lock's holder ran on this machine and its process is gone.
    pub lock_holder_gone: bool,
    pub interrupted: Option<Interrupted>,
    /// What `current` points at on disk (should equal `current`).
    pub current_link: Option<ReleaseId>,
    /// The process lastgood supervises, if any.
    pub app: Option<Running>,
    /// The config files in place came from this release (differs after `--scope` rollbacks).
    pub config_release: Option<ReleaseId>,
    /// Whether `rollback` to the last good release can run: its artifact is there.
    /// None when there is no last good release.
    pub rollback_ready: Option<bool>,
    /// Why not, when `rollback_ready` is false.
    pub rollback_not_ready: Option<String>,
    /// The runtime keeps a directory per release (and `current_link` says which serves).
    pub release_dirs: bool,
    /// lastgood runs the app itself (`run`), so `app` says whether it runs.
    pub supervised: bool,
    /// Migrations the database is ahead of the current release's code (an automatic
    /// rollback that would have destroyed data left them applied), as of lastgood's
    /// last schema change.
    pub schema_ahead: u32,
    /// Whether the way back to the last good release is proven, and what is missing.
    pub readiness: super::readiness::Readiness,
    /// The bake window of the running operation.
    pub bake: Option<crate::journal::bake::BakeProgress>,
    pub runtime: &'static str,
    /// For runtimes without release directories: the version the world says runs (the
    /// `current` command's answer, the gitops branch's version file at the last fetch).
    pub runtime_version: Option<String>,
    /// Each ssh host: reachable, the release its `current` names, the release its app runs.
    pub hosts: Vec<HostState>,
    /// This machine's proxy, with `[proxy]` and no ssh hosts (a fleet's hosts report
    /// their own).
    pub proxy: Option<crate::proxy::Observed>,
}

/// `lastgood history`: the releases, newest first, and which one serves.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub environment: String,
    pub releases: Vec<Release>,
    pub current: Option<ReleaseId>,
    /// Migrations the database is ahead of the current release's code.
    pub schema_ahead: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Interrupted {
    pub operation: u64,
    pub kind: OperationKind,
    pub step: Option<String>,
    pub holder_alive: bool,
}

impl Engine {
    pub fn status(&self, env_name: &str) -> Result<Status> {
        let env = self.env(env_name)?;
        let state = self.ledger.env_state(&env.name)?;
        let current = state.current.map(|c| self.must_release(&env.name, c)).transpose()?;
        let last_good = self.ledger.last_good(&env.name, state.current)?;
        let site = Site::local(&env);
        let rt = runtime::of(&site);
        let hosts = self.fleet(&env).map(|f| f.observe()).unwrap_or_default();
        let readiness = self.readiness(&env, current.as_ref(), last_good.as_ref(), &hosts)?;
        let not_ready = last_good.as_ref().map(|_| (!readiness.ready).then(|| readiness.reasons.join("; ")));
        let rollback_ready = not_ready.as_ref().map(Option::is_none);
        let lock = self.ledger.lock_info(&env.name)?;
        let lock_holder_gone = lock.as_ref().is_some_and(|l| lock::holder_gone(&self.ctx, l));
        let interrupted = match self.ledger.running_operation(&env.name)? {
            Some(op) => Some(Interrupted {
                operation: op.id,
                kind: op.kind,
                step: self.pending_step(op.id)?,
                holder_alive: lock
                    .as_ref()
                    .is_some_and(|l| l.operation == Some(op.id) && !lock::is_stale(&self.ctx, l, self.ctx.now())),
            }),
            None => None,
        };
        let bake = match &interrupted {
            Some(i) => crate::journal::bake::progress_of(self.ledger.as_ref(), i.operation)?,
            None => None,
        };
        // A proxy never started (nothing deployed yet) is not shown as down.
        let started = |p: &crate::proxy::Proxy| crate::proxy::state::route_file(&p.state).exists();
        let proxy = if env.hosts.is_empty() { site.proxy().filter(started).map(|p| p.observe()) } else { None };
        let app = match site.proxy() {
            // Behind the proxy, the app is the process it routes to.
            Some(p) => proxy.as_ref().and_then(|o| {
                let port = o.port?;
                crate::proxy::instances::alive(&p.state).into_iter().find(|i| i.port == port).map(|i| i.running)
            }),
            None => Supervisor::new(&site.state_dir()).running().ok().flatten(),
        };
        // What this machine sees serving; a fleet's hosts report their own, and the
        // version is theirs when every host reports the same one.
        let mut observed = if env.hosts.is_empty() { rt.observe_fresh() } else { Default::default() };
        if let Some(first) = hosts.first().filter(|_| !env.hosts.is_empty()) {
            if hosts.iter().all(|h| h.reachable && h.version == first.version) {
                observed.version = first.version.clone();
            }
        }
        Ok(Status {
            environment: env.name.to_string(),
            current,
            last_good,
            lock,
            lock_holder_gone,
            interrupted,
            current_link: observed.release,
            runtime: env.runtime.name(),
            runtime_version: observed.version,
            hosts,
            app,
            config_release: state.config_release,
            rollback_ready,
            rollback_not_ready: not_ready.flatten(),
            release_dirs: rt.artifacts(),
            supervised: matches!(env.start, crate::config::Start::Run(_)),
            schema_ahead: state.schema_ahead,
            bake,
            readiness,
            proxy,
        })
    }

    /// Releases newest first, with which one serves and how far the schema is ahead of it.
    pub fn history(&self, env_name: &str, limit: usize) -> Result<History> {
        let env = self.env(env_name)?;
        let state = self.ledger.env_state(&env.name)?;
        Ok(History {
            environment: env.name.to_string(),
            releases: self.ledger.releases(&env.name, limit)?,
            current: state.current,
            schema_ahead: state.schema_ahead,
        })
    }

    /// Runs the health checks against the current release now, on every host.
    pub fn verify(&self, env_name: &str) -> Result<(Release, Vec<CheckOutcome>)> {
        let env = self.env(env_name)?;
        let state = self.ledger.env_state(&env.name)?;
        let Some(current) = state.current else {
            return Err(Error::Usage { what: format!("nothing is deployed to `{}` yet", env.name) });
        };
        let r = self.must_release(&env.name, current)?;
        // With a proxy: the release on its own port, then the same checks through the
        // proxy's address (what users reach).
        let run = |host: &str, cwd: &std::path::Path, port: Option<u16>| {
            let mut outcomes = crate::journal::check_release(&env, &r, host, cwd, port);
            if let Some(p) = &env.proxy {
                let through = crate::journal::check_release(&env, &r, host, cwd, p.listen_port());
                outcomes.extend(through.into_iter().map(|mut o| {
                    o.check = format!("{} (through the proxy on {})", o.check, p.at(host).listen);
                    o
                }));
            }
            outcomes
        };
        let column = placement::everywhere(&env);
        let results = match self.fleet(&env) {
            Some(fleet) => fleet.check(&column, current, &run)?,
            None => Local { site: Site::local(&env) }.check(&column, current, &run)?,
        };
        Ok((r.clone(), results.into_iter().flat_map(|(_, outcomes)| outcomes).collect()))
    }

    pub fn mark(&self, env_name: &str, target: &str, state: ReleaseState, reason: Option<&str>) -> Result<Release> {
        let env = self.env(env_name)?;
        let t = env.parse_target(target)?;
        let current = self.ledger.env_state(&env.name)?.current;
        let r = self.resolve_target(&env, &t, current)?;
        let next = next_state(r.state, ReleaseEvent::Marked(state))
            .map_err(|why| Error::Usage { what: format!("{} cannot be marked {state}: {why}", r.id) })?;
        self.ledger.apply_unfenced(
            &env.name,
            vec![
                Change::SetReleaseState { release: r.id, state: next },
                self.audit(
                    &env.name,
                    None,
                    "release.mark",
                    serde_json::json!({ "release": r.id, "from": r.state, "to": next, "reason": reason }),
                ),
            ],
        )?;
        self.must_release(&env.name, r.id)
    }

    /// Appends a note to an operation's follow-up (`lastgood report OPERATION --note
    /// TEXT`), as an audit event of the operation, by this actor, now. It needs no lock:
    /// it changes nothing but the record, and the audit log only ever grows.
    pub fn note(&self, operation: u64, text: &str) -> Result<()> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::Usage { what: "--note: the note is empty".into() });
        }
        let Some(op) = self.ledger.operation(operation)? else {
            return Err(crate::report::unknown_operation(self.ledger(), &self.config, operation));
        };
        let event = self.audit(&op.env, Some(op.id), crate::report::NOTE_EVENT, serde_json::json!({ "text": text }));
        self.ledger.apply_unfenced(&op.env, vec![event])
    }

    /// Holds the environment by hand until `unlock`.
    pub fn lock(&self, env_name: &str, reason: &str) -> Result<LockInfo> {
        let env = self.env(env_name)?;
        let now = self.ctx.now();
        let req = LockRequest {
            env: env.name.clone(),
            holder: self.ctx.actor(),
            host: self.ctx.host.clone(),
            pid: None,
            pid_start: None,
            reason: Some(reason.to_owned()),
            now,
            lease: None,
            machine: self.ctx.machine.clone(),
        };
        let ctx = self.ctx.clone();
        self.ledger.acquire(&req, &|l| lock::is_stale(&ctx, l, now))?;
        self.ledger.lock_info(&env.name)?.ok_or_else(|| Error::Ledger {
            path: self.ledger.describe(),
            message: "the lock just taken is missing".into(),
        })
    }

    /// Frees a lock taken by hand; a running operation's lock only with `force`. With
    /// `epoch`, only the lock at that epoch (a newer grant is left alone).
    pub fn unlock(&self, env_name: &str, force: bool, epoch: Option<i64>) -> Result<Option<LockInfo>> {
        let env = self.env(env_name)?;
        let Some(l) = self.ledger.lock_info(&env.name)? else {
            return Ok(None);
        };
        let live_operation = l.pid.is_some() && !lock::is_stale(&self.ctx, &l, self.ctx.now());
        if live_operation && !force {
            return Err(Error::Locked {
                env: env.name.to_string(),
                holder: l.holder,
                operation: l.operation,
                reason: l.reason,
                expires_at: l.expires_at.map(crate::context::rfc3339),
            });
        }
        // On a team ledger another machine's operation may hold it: breaking it must
        // name the grant seen (`status` shows its epoch), so a newer one is never broken.
        if live_operation && epoch.is_none() && matches!(self.config.ledger, crate::config::LedgerUrl::Postgres(_)) {
            return Err(Error::Usage {
                what: format!(
                    "the lock of `{}` is held by a running operation of {} (epoch {}); on a team ledger, break it with `lastgood unlock {} --force --epoch {}`",
                    env.name, l.holder, l.epoch, env.name, l.epoch
                ),
            });
        }
        let detail = match epoch {
            Some(e) => serde_json::json!({ "force": force, "epoch": e }),
            None => serde_json::json!({ "force": force }),
        };
        let event = AuditEvent::by(&self.ctx, env.name.as_str(), None, "lock.release", detail);
        self.ledger.force_unlock(&env.name, Some(epoch.unwrap_or(l.epoch)), event)
    }
}
