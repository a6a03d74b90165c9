//! The operations users run, as library calls: deploy, rollback, resume, status,
//! history, verify, mark, lock and unlock. The CLI and the dashboard call these and
//! only render what they return.
//!
//! Every state-changing call follows the same shape: validate input, preflight
//! (nothing changes if it fails), take the environment's lock, refuse to run over an
//! interrupted operation, record the operation and its plan, run the journal, free
//! the lock.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::{Config, Environment, LedgerUrl};
use crate::context::Context;
use crate::database::environment::EnvDatabase;
use crate::error::{Error, Result};
use crate::journal::{self, Journal, Progress};
use crate::ledger::{
    Acquired, AuditEvent, Change, Fence, Ledger, LockInfo, LockRequest, NewOperation, NewRelease, Operation, Release,
    SqliteLedger, StepRecord, StepState,
};
use crate::lock::{self, Heartbeat};
use crate::model::{
    EnvName, OperationKind, Outcome, ReleaseEvent, ReleaseId, ReleaseState, Scope, Target, Version, next_state,
};
use crate::plan::{self, Phase, Step};
use crate::runtime::{self, releases};
use crate::supervise::{Running, Supervisor};
use crate::verify::CheckOutcome;

pub struct Engine {
    pub config: Config,
    pub ctx: Context,
    ledger: Box<dyn Ledger>,
    /// A fleet's preflight answers, per environment and target, for this process: a
    /// command plans a rollback up to three times (to print it, before the lock, under
    /// it), and the hosts are asked once.
    preflights: std::cell::RefCell<BTreeMap<(String, Option<u64>), crate::fleet::HostReleases>>,
    /// Each fleet's hosts and their agent sessions, kept for the whole command.
    fleets: std::cell::RefCell<BTreeMap<String, std::rc::Rc<crate::fleet::Fleet>>>,
}

#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub reason: Option<String>,
    pub verify: bool,
    pub auto_rollback: bool,
}

#[derive(Debug, Clone)]
pub struct RollbackOptions {
    pub target: Target,
    pub scope: Scope,
    pub reason: Option<String>,
    /// Consent to destructive down migrations (a backup is taken first).
    pub allow_data_loss: bool,
}

/// A plan as shown before anything runs.
#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    pub kind: OperationKind,
    pub environment: String,
    pub from: Option<Release>,
    pub to: Release,
    pub scope: Scope,
    pub steps: Vec<Step>,
    /// The hosts each step acts on (`local`, or host labels joined with `,`).
    pub hosts: Vec<String>,
    /// Facts worth reading before going on.
    pub notes: Vec<String>,
    /// Reasons the user must confirm (a bad target, a newer target).
    pub confirm: Vec<String>,
    /// The migrations the plan runs, with the linter's verdict on each.
    pub migrations: Vec<crate::database::environment::Verdict>,
    /// Exactly the SQL the migration steps would run (bookkeeping included).
    pub sql: Option<String>,
    /// The target is already in place: running the plan would change nothing.
    pub in_place: bool,
    pub runtime: &'static str,
}

impl PlanView {
    /// The steps as the journal records them.
    fn forward(&self) -> Vec<(Step, Phase, String)> {
        self.steps.iter().cloned().zip(self.hosts.iter().cloned()).map(|(s, h)| (s, Phase::Forward, h)).collect()
    }
}

/// What an operation did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub operation: u64,
    pub kind: OperationKind,
    pub environment: String,
    pub from: Option<Release>,
    pub to: Release,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
    pub checks: Vec<CheckOutcome>,
    /// The release serving when the operation ended.
    pub current: Option<ReleaseId>,
}

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
    /// Whether `rollback` to the last good release can run: its release directory is
    /// there. None when there is no last good release.
    pub rollback_ready: Option<bool>,
    pub runtime: &'static str,
    /// For runtimes other than `releases`: the version the world says runs (the
    /// `current` command's answer, the gitops branch's version file at the last fetch).
    pub runtime_version: Option<String>,
    /// Each ssh host: reachable, the release its `current` names, the release its app runs.
    pub hosts: Vec<crate::fleet::HostState>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Interrupted {
    pub operation: u64,
    pub kind: OperationKind,
    pub step: Option<String>,
    pub holder_alive: bool,
}

/// The lock an operation holds, and its heartbeat.
pub(crate) struct Held {
    pub(crate) fence: Fence,
    _heartbeat: Heartbeat,
}

impl Engine {
    pub fn open(config: Config, ctx: Context) -> Result<Self> {
        let ledger = open_ledger(&config.ledger)?;
        Ok(Self { config, ctx, ledger, preflights: Default::default(), fleets: Default::default() })
    }

    /// The environment's fleet (None for `local`), shared by every step of the command.
    pub(crate) fn fleet(&self, env: &Environment) -> Option<std::rc::Rc<crate::fleet::Fleet>> {
        let mut fleets = self.fleets.borrow_mut();
        if let Some(f) = fleets.get(env.name.as_str()) {
            return Some(f.clone());
        }
        let f = std::rc::Rc::new(crate::fleet::Fleet::of(env)?);
        fleets.insert(env.name.to_string(), f.clone());
        Some(f)
    }

    pub fn ledger(&self) -> &dyn Ledger {
        self.ledger.as_ref()
    }

    fn env(&self, name: &str) -> Result<Environment> {
        self.config.environment(name).cloned()
    }

    pub(crate) fn audit(
        &self,
        env: &EnvName,
        operation: Option<u64>,
        event: &str,
        detail: serde_json::Value,
    ) -> Change {
        Change::Audit(AuditEvent::by(&self.ctx, env.as_str(), operation, event, detail))
    }

    fn must_release(&self, env: &EnvName, id: ReleaseId) -> Result<Release> {
        self.ledger.release(env, id)?.ok_or_else(|| Error::Ledger {
            path: self.ledger.describe(),
            message: format!("release {id} of `{env}` is missing from the ledger"),
        })
    }

    fn candidates(&self, env: &EnvName) -> Result<Vec<String>> {
        Ok(self
            .ledger
            .releases(env, 10)?
            .iter()
            .map(|r| {
                format!("{} {} ({}{})", r.id, r.version, r.state, if r.artifact { "" } else { ", directory removed" })
            })
            .collect())
    }

    // ---- the lock -------------------------------------------------------------------

    fn take_lock(&self, env: &Environment, reason: Option<&str>, progress: &mut dyn Progress) -> Result<Held> {
        let now = self.ctx.now();
        let req = LockRequest {
            env: env.name.clone(),
            holder: self.ctx.actor(),
            host: self.ctx.host.clone(),
            pid: Some(self.ctx.pid),
            pid_start: lock::process_start_time(self.ctx.pid),
            reason: reason.map(str::to_owned),
            now,
            expires_at: Some(now + env.lease.as_secs() as i64),
        };
        let ctx = self.ctx.clone();
        let Acquired { epoch, took_over } = self.ledger.acquire(&req, &|l| lock::is_stale(&ctx, l, now))?;
        if let Some(old) = took_over {
            progress.note(&format!(
                "took over the lock of `{}` from {} (its process is gone or its lease expired)",
                env.name, old.holder
            ));
        }
        let fence = Fence { env: env.name.clone(), epoch };
        let url = self.config.ledger.clone();
        let heartbeat =
            Heartbeat::start(Box::new(move || open_ledger(&url)), fence.clone(), env.lease, self.ctx.clone());
        Ok(Held { fence, _heartbeat: heartbeat })
    }

    /// The lock for a command that is not a recorded operation (`lastgood db ...`).
    pub(crate) fn lock_for(&self, env: &Environment, what: &str, progress: &mut dyn Progress) -> Result<Held> {
        let held = self.take_lock(env, Some(what), progress)?;
        self.refuse_interrupted(env, held)
    }

    pub(crate) fn free(&self, held: Held) {
        // Best effort: if this fails the lease expires, or the next command on this
        // machine sees our process gone and takes over.
        let _ = self.ledger.release_lock(&held.fence);
    }

    /// Refuses to start over an operation that did not finish.
    fn refuse_interrupted(&self, env: &Environment, held: Held) -> Result<Held> {
        match self.ledger.running_operation(&env.name)? {
            None => Ok(held),
            Some(op) => {
                let step = self.pending_step(op.id)?;
                self.free(held);
                Err(Error::Interrupted {
                    env: env.name.to_string(),
                    operation: op.id,
                    kind: op.kind.as_str().into(),
                    step,
                })
            }
        }
    }

    fn pending_step(&self, op: u64) -> Result<Option<String>> {
        Ok(self
            .ledger
            .steps(op)?
            .into_iter()
            .find(|s| matches!(s.state, StepState::Intended | StepState::Planned))
            .map(|s| s.step.name().to_owned()))
    }

    // ---- deploy -----------------------------------------------------------------------

    /// Plans a deploy: resolves the version, snapshots config files, reads what
    /// serves now. Changes nothing.
    pub fn plan_deploy(&self, env_name: &str, version: &str, opts: &DeployOptions) -> Result<(PlanView, NewRelease)> {
        let env = self.env(env_name)?;
        let (version, commit) = if env.versions_in_source {
            let version = Version::parse(version)?;
            let commit = crate::git::resolve(&env.source, &version)?;
            (version, Some(commit))
        } else {
            (Version::opaque(version)?, None)
        };
        runtime::of(&env).check_version(version.as_str())?;
        let mut config = BTreeMap::new();
        let mut blobs = Vec::new();
        for f in &env.config_files {
            let content = std::fs::read(&f.path).map_err(|e| Error::Usage {
                what: format!(
                    "config file {} ({}) cannot be read: {e}; create it or remove it from config_files",
                    f.name,
                    f.path.display()
                ),
            })?;
            let sha = crate::digest::sha256_hex(&content);
            config.insert(f.name.clone(), sha.clone());
            blobs.push((sha, content));
        }
        let id = self.ledger.next_release_id(&env.name)?;
        let before = self.ledger.release_before(&env.name, id)?;
        let features = match &commit {
            Some(c) => crate::git::subjects(&env.source, before.as_ref().and_then(|r| r.commit.as_ref()), c, 50)?,
            None => Vec::new(),
        };
        let state = self.ledger.env_state(&env.name)?;
        let from = state.current.map(|c| self.must_release(&env.name, c)).transpose()?;
        let release = NewRelease { id, version: version.to_string(), commit: commit.clone(), features, config, blobs };
        let to = Release {
            id,
            version: release.version.clone(),
            commit: commit.clone(),
            state: ReleaseState::Pending,
            schema_revision: None,
            created_at: self.ctx.now(),
            created_by: self.ctx.actor(),
            reason: opts.reason.clone(),
            operation: None,
            features: release.features.clone(),
            config: release.config.clone(),
            artifact: false,
        };
        let placed = crate::fleet::place(
            &env,
            plan::deploy(journal::shape(&env, opts.verify), id, commit),
            Phase::Forward,
            OperationKind::Deploy,
        );
        let hosts = placed.iter().map(|p| p.2.clone()).collect();
        let steps = placed.into_iter().map(|p| p.0).collect();
        let mut notes = Vec::new();
        if env.checks.is_empty() {
            notes.push("no health checks are configured: the release will count as good once it starts".into());
        } else if !opts.verify {
            notes.push("--no-verify: health checks are skipped and the release will count as good".into());
        }
        if !opts.auto_rollback {
            notes.push("--no-auto-rollback: a failed release stays current".into());
        }
        let view = PlanView {
            kind: OperationKind::Deploy,
            environment: env.name.to_string(),
            from,
            to,
            scope: Scope::Full,
            steps,
            hosts,
            notes,
            confirm: vec![],
            migrations: vec![],
            sql: None,
            in_place: false,
            runtime: env.runtime.name(),
        };
        Ok((view, release))
    }

    pub fn deploy(
        &self,
        env_name: &str,
        version: &str,
        opts: &DeployOptions,
        progress: &mut dyn Progress,
    ) -> Result<Report> {
        let env = self.env(env_name)?;
        // Preflight before the lock: a bad version or unreadable config is a usage error.
        self.plan_deploy(env_name, version, opts)?;
        self.preflight_database(&env)?;
        self.preflight_runtime(&env, "deploy")?;
        let held = self.take_lock(&env, opts.reason.as_deref(), progress)?;
        crate::failpoint::hit("locked");
        let held = self.refuse_interrupted(&env, held)?;
        // Plan again under the lock: the release id and `from` must not race.
        let (view, release) = match self.plan_deploy(env_name, version, opts) {
            Ok(p) => p,
            Err(e) => {
                self.free(held);
                return Err(e);
            }
        };
        let new = NewOperation {
            kind: OperationKind::Deploy,
            from: view.from.as_ref().map(|r| r.id),
            to: release.id,
            scope: Scope::Full,
            auto_rollback: opts.auto_rollback,
            reason: opts.reason.clone(),
            actor: self.ctx.actor(),
            host: self.ctx.host.clone(),
            pid: self.ctx.pid,
            started_at: self.ctx.now(),
            steps: view.forward(),
            release: Some(release),
            allow_data_loss: false,
        };
        self.execute(&env, held, new, progress)
    }

    fn notifier(&self, env: &Environment) -> Option<crate::notify::Notifier> {
        env.notify.as_ref().map(|n| crate::notify::Notifier {
            notify: n.clone(),
            spool: crate::notify::spool_dir(&self.config.dir),
            config_path: self.config.path.clone(),
        })
    }

    fn execute(&self, env: &Environment, held: Held, new: NewOperation, progress: &mut dyn Progress) -> Result<Report> {
        let summary = format!(
            "lastgood: {} of {} to {} started by {}{}",
            new.kind.as_str(),
            env.name,
            new.release.as_ref().map(|r| r.version.clone()).unwrap_or_else(|| new.to.to_string()),
            new.actor,
            new.reason.as_ref().map(|r| format!(" (reason: {r})")).unwrap_or_default()
        );
        let op_id = match self.ledger.begin_operation(&held.fence, new) {
            Ok(id) => id,
            Err(e) => {
                self.free(held);
                return Err(e);
            }
        };
        if let Some(n) = self.notifier(env) {
            if let Err(why) = n.send(env.name.as_str(), op_id, "started", summary, serde_json::json!({})) {
                progress.note(&why);
            }
        }
        self.run_journal(env, held, op_id, progress)
    }

    fn run_journal(&self, env: &Environment, held: Held, op_id: u64, progress: &mut dyn Progress) -> Result<Report> {
        let op = self.operation(op_id)?;
        let steps = self.ledger.steps(op_id)?;
        let verify = env.checks.is_empty() || steps.iter().any(|s| matches!(s.step, Step::Verify { .. }));
        let mut j = Journal {
            fleet: self.fleet(env),
            ledger: self.ledger.as_ref(),
            fence: held.fence.clone(),
            env,
            ctx: &self.ctx,
            op,
            progress,
            checks: Vec::new(),
            verify,
            notifier: self.notifier(env),
        };
        let result = j.run();
        let checks = std::mem::take(&mut j.checks);
        match result {
            Ok(_) => {
                // The journal freed the lock when it settled; this stops the heartbeat.
                drop(held);
                self.report(op_id, checks)
            }
            // Fenced: the lock is someone else's now; do not touch it.
            Err(e @ Error::Fenced { .. }) => Err(e),
            Err(e) => {
                // The journal could not record progress (a ledger or I/O error). The
                // operation stays `running` so that `resume` can finish it.
                self.free(held);
                Err(e)
            }
        }
    }

    fn operation(&self, id: u64) -> Result<Operation> {
        self.ledger.operation(id)?.ok_or_else(|| Error::Ledger {
            path: self.ledger.describe(),
            message: format!("operation {id} is missing"),
        })
    }

    /// The record of one operation.
    pub fn report(&self, op_id: u64, checks: Vec<CheckOutcome>) -> Result<Report> {
        let op = self.operation(op_id)?;
        Ok(Report {
            operation: op.id,
            kind: op.kind,
            environment: op.env.to_string(),
            from: op.from.map(|f| self.must_release(&op.env, f)).transpose()?,
            to: self.must_release(&op.env, op.to)?,
            outcome: op.outcome,
            error: op.error.clone(),
            steps: self.ledger.steps(op.id)?,
            checks,
            current: self.ledger.env_state(&op.env)?.current,
        })
    }

    // ---- rollback ---------------------------------------------------------------------

    pub(crate) fn resolve_target(
        &self,
        env: &Environment,
        target: &Target,
        current: Option<ReleaseId>,
    ) -> Result<Release> {
        let found = match target {
            Target::LastGood => self.ledger.last_good(&env.name, current)?,
            Target::Previous => match current {
                Some(c) => self.ledger.release_before(&env.name, c)?,
                None => None,
            },
            Target::Id(id) => self.ledger.release(&env.name, *id)?,
            Target::Version(v) => self.ledger.release_by_version(&env.name, v)?,
        };
        found.ok_or_else(|| {
            let target = match target {
                Target::LastGood => "last-good".to_owned(),
                Target::Previous => "previous".to_owned(),
                Target::Id(id) => id.to_string(),
                Target::Version(v) => v.clone(),
            };
            match self.candidates(&env.name) {
                Ok(candidates) => Error::UnknownTarget { env: env.name.to_string(), target, candidates },
                Err(e) => e,
            }
        })
    }

    /// Plans a rollback; changes nothing. Refuses (exit 4) when the target's release
    /// directory is gone.
    pub fn plan_rollback(&self, env_name: &str, opts: &RollbackOptions) -> Result<PlanView> {
        let env = self.env(env_name)?;
        if opts.scope == Scope::Db && !env.database.as_ref().is_some_and(EnvDatabase::has_migrations) {
            return Err(Error::Usage {
                what: format!("--scope db: environment `{}` has no [database] with migrations", env.name),
            });
        }
        let state = self.ledger.env_state(&env.name)?;
        let from = state.current.map(|c| self.must_release(&env.name, c)).transpose()?;
        let to = self.resolve_target(&env, &opts.target, state.current)?;
        let mut drift = false;
        if let Some(fleet) = self.fleet(&env) {
            if opts.scope.includes_code() {
                let hosts = self.preflight_fleet(&fleet, "rollback", Some(&to))?;
                drift = hosts.iter().any(|(_, current)| *current != Some(to.id.0));
            }
        } else if opts.scope.includes_code() {
            if let Err(why) = runtime::of(&env).ready(&to) {
                return Err(Error::Refused { env: env.name.to_string(), what: "rollback".into(), why });
            }
        }
        let mut confirm = Vec::new();
        if opts.target != Target::LastGood {
            if matches!(to.state, ReleaseState::Bad | ReleaseState::Failed) {
                confirm.push(format!("{} ({}) is marked {}", to.id, to.version, to.state));
            }
            if let Some(f) = &from {
                if to.id > f.id {
                    confirm.push(format!("{} is newer than the current release {}", to.id, f.id));
                }
            }
        }
        let mut notes = Vec::new();
        if env.checks.is_empty() {
            notes.push("no health checks are configured: the rollback is not verified".into());
        }
        let shape = journal::shape(&env, true);
        let mut schema = plan::SchemaChange::default();
        let mut migrations = Vec::new();
        let mut sql = None;
        let schema_moves = from.as_ref().is_some_and(|f| f.schema_revision != to.schema_revision);
        if shape.migrations && opts.scope.includes_db() && schema_moves {
            if let Some(db) = EnvDatabase::of(&env)? {
                let root = state.current.map(|c| runtime::of(&env).workdir(c)).filter(|d| d.is_dir());
                let mut tool = db.tool(root.as_deref(), &self.ctx.actor()).map_err(|e| self.unreachable(&env, e))?;
                let downs = tool.plan_down(to.schema_revision.as_deref()).map_err(|e| self.unreachable(&env, e))?;
                migrations = downs.verdicts.clone();
                let destructive = crate::database::environment::destructive(&migrations);
                schema.migrate_down = !downs.is_empty();
                schema.backup = schema.migrate_down
                    && (!destructive.is_empty() || db.config.backup == crate::config::BackupPolicy::Always);
                if !destructive.is_empty() {
                    if !opts.allow_data_loss {
                        return Err(Error::Refused {
                            env: env.name.to_string(),
                            what: "rollback".into(),
                            why: format!(
                                "it would revert destructive migrations: {}; review them with `lastgood rollback {} --dry-run --sql` and pass --allow-data-loss (a backup is taken first)",
                                destructive.join(", "),
                                env.name
                            ),
                        });
                    }
                    if db.config.backup == crate::config::BackupPolicy::Never {
                        return Err(Error::Refused {
                            env: env.name.to_string(),
                            what: "rollback".into(),
                            why: "a destructive down migration needs a backup in the same operation, and backup = \"never\"".into(),
                        });
                    }
                    notes.push(format!("destructive, with your consent: {} (backed up first)", destructive.join(", ")));
                }
                sql = downs.sql.clone();
            }
        }
        // A host that runs something else than the ledger says is switched too.
        let current = if drift { None } else { state.current };
        let placed = crate::fleet::place(
            &env,
            plan::rollback(shape, current, to.id, opts.scope, schema),
            Phase::Forward,
            OperationKind::Rollback,
        );
        let hosts: Vec<String> = placed.iter().map(|p| p.2.clone()).collect();
        let steps: Vec<Step> = placed.into_iter().map(|p| p.0).collect();
        let in_place = !drift && in_place(&state, &to, opts.scope, &steps);
        if in_place {
            notes.push(format!("{} is already in place for scope {}: nothing to do", to.id, opts.scope));
        }
        Ok(PlanView {
            kind: OperationKind::Rollback,
            environment: env.name.to_string(),
            from,
            to,
            scope: opts.scope,
            steps,
            hosts,
            notes,
            confirm,
            migrations,
            sql,
            in_place,
            runtime: env.runtime.name(),
        })
    }

    /// A runtime that cannot act (deploy_to not writable, repository unreachable)
    /// refuses the operation before anything changes.
    fn preflight_runtime(&self, env: &Environment, what: &str) -> Result<()> {
        if let Some(fleet) = self.fleet(env) {
            return self.preflight_fleet(&fleet, what, None).map(drop);
        }
        runtime::of(env).prepare().map_err(|e| Error::Refused {
            env: env.name.to_string(),
            what: what.into(),
            why: match env.runtime {
                crate::config::Runtime::Releases => format!("deploy_to is not usable: {e}"),
                _ => e.to_string(),
            },
        })
    }

    /// Every host must be ready before any host changes; one that is not refuses the
    /// whole operation and is named. Returns each host's current release.
    fn preflight_fleet(
        &self,
        fleet: &crate::fleet::Fleet,
        what: &str,
        release: Option<&Release>,
    ) -> Result<crate::fleet::HostReleases> {
        let key = (fleet.env.name.to_string(), release.map(|r| r.id.0));
        if let Some(hosts) = self.preflights.borrow().get(&key) {
            return Ok(hosts.clone());
        }
        let need = release.map(|r| (r.id.0, r.commit.as_ref().map(ToString::to_string)));
        let hosts = fleet.preflight(need).map_err(|failed| Error::Refused {
            env: fleet.env.name.to_string(),
            what: what.into(),
            why: format!(
                "{} of {} host(s) failed the preflight:\n  {}",
                failed.len(),
                fleet.env.hosts.len(),
                failed.iter().map(|(h, e)| format!("{}: {e}", h.label())).collect::<Vec<_>>().join("\n  ")
            ),
        })?;
        self.preflights.borrow_mut().insert(key, hosts.clone());
        Ok(hosts)
    }

    /// A database that cannot be reached refuses the operation before anything changes.
    fn preflight_database(&self, env: &Environment) -> Result<()> {
        let Some(db) = EnvDatabase::of(env)? else { return Ok(()) };
        db.migrator(None, &self.ctx.actor()).map(drop).map_err(|e| self.unreachable(env, e))
    }

    fn unreachable(&self, env: &Environment, e: Error) -> Error {
        match e {
            Error::Migrate(m)
                if matches!(
                    *m,
                    crate::database::migrator::MigrateError::Db(crate::database::driver::DbError::Connect { .. })
                ) =>
            {
                Error::Refused { env: env.name.to_string(), what: "the operation".into(), why: m.to_string() }
            }
            other => other,
        }
    }

    /// Runs a rollback. `confirmed` answers the plan's `confirm` list; without it such a
    /// plan is refused. Returns None when the target is already in place.
    pub fn rollback(
        &self,
        env_name: &str,
        opts: &RollbackOptions,
        confirmed: bool,
        progress: &mut dyn Progress,
    ) -> Result<Option<Report>> {
        let env = self.env(env_name)?;
        let view = self.plan_rollback(env_name, opts)?;
        if opts.scope.includes_code() && !view.in_place && env.hosts.is_empty() {
            self.preflight_runtime(&env, "rollback")?;
        }
        if !view.confirm.is_empty() && !confirmed {
            return Err(Error::Refused {
                env: env.name.to_string(),
                what: "rollback".into(),
                why: format!("{}; confirm with --yes", view.confirm.join("; ")),
            });
        }
        let held = self.take_lock(&env, opts.reason.as_deref(), progress)?;
        let held = self.refuse_interrupted(&env, held)?;
        let view = match self.plan_rollback(env_name, opts) {
            Ok(v) => v,
            Err(e) => {
                self.free(held);
                return Err(e);
            }
        };
        if view.in_place {
            self.free(held);
            return Ok(None);
        }
        let new = NewOperation {
            kind: OperationKind::Rollback,
            from: view.from.as_ref().map(|r| r.id),
            to: view.to.id,
            scope: opts.scope,
            auto_rollback: false,
            reason: opts.reason.clone(),
            actor: self.ctx.actor(),
            host: self.ctx.host.clone(),
            pid: self.ctx.pid,
            started_at: self.ctx.now(),
            steps: view.forward(),
            release: None,
            allow_data_loss: opts.allow_data_loss,
        };
        self.execute(&env, held, new, progress).map(Some)
    }

    // ---- resume -----------------------------------------------------------------------

    /// Finishes the interrupted operation, or with `abort` returns to where it started.
    /// None when nothing was interrupted.
    pub fn resume(&self, env_name: &str, abort: bool, progress: &mut dyn Progress) -> Result<Option<Report>> {
        let env = self.env(env_name)?;
        let Some(op) = self.ledger.running_operation(&env.name)? else {
            // A lock left by a dead process with no operation is cleared here too.
            if let Some(l) = self.ledger.lock_info(&env.name)? {
                if lock::holder_gone(&self.ctx, &l) {
                    self.ledger
                        .force_unlock(&env.name, self.audit_event(&env.name, "lock.cleared", serde_json::json!({})))?;
                    progress.note(&format!("cleared a lock left by {} (its process is gone)", l.holder));
                }
            }
            return Ok(None);
        };
        let held = self.take_lock(&env, op.reason.as_deref(), progress)?;
        let mut changes = vec![
            Change::AdoptOperation { op: op.id, pid: self.ctx.pid },
            self.audit(
                &env.name,
                Some(op.id),
                if abort { "operation.abort" } else { "operation.resume" },
                serde_json::json!({}),
            ),
        ];
        if abort {
            let steps = self.ledger.steps(op.id)?;
            let first_open =
                steps.iter().find(|s| matches!(s.state, StepState::Planned | StepState::Intended)).map(|s| s.seq);
            if let Some(seq) = first_open {
                changes.push(Change::SkipRemaining { op: op.id, from_seq: seq });
            }
            let verify = env.checks.is_empty() || steps.iter().any(|s| matches!(s.step, Step::Verify { .. }));
            let undo = plan::undo(journal::shape(&env, verify), op.from);
            changes
                .push(Change::AppendSteps { op: op.id, steps: crate::fleet::place(&env, undo, Phase::Abort, op.kind) });
        }
        if let Err(e) = self.ledger.apply(&held.fence, changes) {
            self.free(held);
            return Err(e);
        }
        progress.note(&format!(
            "{} {} operation {} ({} -> {})",
            if abort { "aborting" } else { "resuming" },
            op.kind.as_str(),
            op.id,
            op.from.map(|f| f.to_string()).unwrap_or_else(|| "nothing".into()),
            op.to
        ));
        self.run_journal(&env, held, op.id, progress).map(Some)
    }

    fn audit_event(&self, env: &EnvName, event: &str, detail: serde_json::Value) -> AuditEvent {
        AuditEvent::by(&self.ctx, env.as_str(), None, event, detail)
    }

    // ---- reading ----------------------------------------------------------------------

    pub fn status(&self, env_name: &str) -> Result<Status> {
        let env = self.env(env_name)?;
        let state = self.ledger.env_state(&env.name)?;
        let current = state.current.map(|c| self.must_release(&env.name, c)).transpose()?;
        let last_good = self.ledger.last_good(&env.name, state.current)?;
        let rt = runtime::of(&env);
        let hosts = self.fleet(&env).map(|f| f.observe()).unwrap_or_default();
        let rollback_ready = match &last_good {
            None => None,
            // On a fleet: known on every host (the directory is checked when the
            // rollback's preflight runs).
            Some(g) if !env.hosts.is_empty() => Some(g.artifact && hosts.iter().all(|h| h.reachable)),
            Some(g) => Some(rt.ready(g).is_ok()),
        };
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
        let app = Supervisor::new(&runtime::state_dir(&env)).running().ok().flatten();
        let releases_runtime = env.runtime == crate::config::Runtime::Releases;
        Ok(Status {
            environment: env.name.to_string(),
            current,
            last_good,
            lock,
            lock_holder_gone,
            interrupted,
            current_link: if releases_runtime && env.hosts.is_empty() {
                releases::current(&env.deploy_to)
            } else {
                None
            },
            runtime: env.runtime.name(),
            runtime_version: if releases_runtime { None } else { rt.observe() },
            hosts,
            app,
            config_release: state.config_release,
            rollback_ready,
        })
    }

    pub fn history(&self, env_name: &str, limit: usize) -> Result<Vec<Release>> {
        let env = self.env(env_name)?;
        self.ledger.releases(&env.name, limit)
    }

    /// Runs the health checks against the current release now.
    pub fn verify(&self, env_name: &str) -> Result<(Release, Vec<CheckOutcome>)> {
        let env = self.env(env_name)?;
        let state = self.ledger.env_state(&env.name)?;
        let Some(current) = state.current else {
            return Err(Error::Usage { what: format!("nothing is deployed to `{}` yet", env.name) });
        };
        let r = self.must_release(&env.name, current)?;
        let outcomes = if env.hosts.is_empty() {
            journal::check_release(&env, &r, journal::LOCAL_HOST, &runtime::of(&env).workdir(current))
        } else {
            env.hosts.iter().flat_map(|h| journal::check_release(&env, &r, &h.host, &env.source)).collect()
        };
        Ok((r, outcomes))
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
            expires_at: None,
        };
        let ctx = self.ctx.clone();
        self.ledger.acquire(&req, &|l| lock::is_stale(&ctx, l, now))?;
        self.ledger.lock_info(&env.name)?.ok_or_else(|| Error::Ledger {
            path: self.ledger.describe(),
            message: "the lock just taken is missing".into(),
        })
    }

    /// Frees a lock taken by hand; a running operation's lock only with `force`.
    pub fn unlock(&self, env_name: &str, force: bool) -> Result<Option<LockInfo>> {
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
        self.ledger
            .force_unlock(&env.name, self.audit_event(&env.name, "lock.release", serde_json::json!({ "force": force })))
    }
}

/// Whether the target is already in place for this scope: its code current, its config
/// files in place, and no migration to revert.
fn in_place(state: &crate::ledger::EnvState, to: &Release, scope: Scope, steps: &[Step]) -> bool {
    let code = !scope.includes_code() || state.current == Some(to.id);
    let config = !scope.includes_config() || state.config_release == Some(to.id);
    let schema = !steps.iter().any(|s| matches!(s, Step::MigrateDown { .. }));
    code && config && schema
}

pub fn open_ledger(url: &LedgerUrl) -> Result<Box<dyn Ledger>> {
    match url {
        LedgerUrl::Sqlite(path) => Ok(Box::new(SqliteLedger::open(path)?)),
        LedgerUrl::Postgres(_) => Err(Error::Usage {
            what: "ledger.url: the PostgreSQL ledger is not available in this version of lastgood yet; use sqlite://"
                .into(),
        }),
    }
}

/// Where a relative ledger path ends up, for messages.
pub fn ledger_path(url: &LedgerUrl) -> Option<PathBuf> {
    match url {
        LedgerUrl::Sqlite(p) => Some(p.clone()),
        LedgerUrl::Postgres(_) => None,
    }
}
