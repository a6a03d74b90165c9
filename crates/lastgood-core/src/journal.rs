//! Executing a plan: the crash-safe journal.
//!
//! For each step: record the intent (durable), apply the effect, observe it, record it
//! done, all under the operation's fence. Each step's `apply` first checks whether its
//! effect is already in place (`readlink current`, the supervised pid, the config
//! file's hash), so running a step twice is harmless. That is the whole of crash
//! recovery: `resume` re-runs the journal from the first step that is not done.
//!
//! What happens when a step fails is policy, and it lives here too: a deploy that fails
//! after it switched returns to the last good release by appending rollback steps to
//! the same journal (so a crash during the automatic rollback resumes into it), and
//! the release states at the end follow [`crate::model::next_state`].

use std::collections::BTreeSet;
use std::time::{Duration, Instant};


use crate::config::{Environment, Start};
use crate::context::{Context, now_ms};
use crate::database::{self, environment::EnvDatabase};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::ledger::{AuditEvent, BackupRecord, Change, Fence, Ledger, Operation, Release, StepRecord, StepState};
use crate::model::{OperationKind, Outcome, ReleaseEvent, ReleaseId, ReleaseState, next_state};
use crate::plan::{self, Phase, Shape, Step};
use crate::runtime::{self, releases};
use crate::supervise::Supervisor;
use crate::verify::{self, CheckOutcome};

/// What a caller is told as the journal runs (the CLI draws progress from it).
pub trait Progress {
    fn step_started(&mut self, _step: &StepRecord) {}
    fn step_finished(&mut self, _step: &StepRecord) {}
    fn note(&mut self, _text: &str) {}
}

/// Progress that goes nowhere.
pub struct Quiet;
impl Progress for Quiet {}

pub fn shape(env: &Environment, verify: bool) -> Shape {
    let db = env.database.as_ref();
    let releases = env.runtime == crate::config::Runtime::Releases;
    Shape {
        artifacts: releases,
        unlink: releases,
        build: env.build.is_some(),
        start: env.start != Start::Nothing,
        config_files: !env.config_files.is_empty(),
        verify: verify && !env.checks.is_empty(),
        migrations: db.is_some_and(EnvDatabase::has_migrations),
        stoppable: matches!(env.start, Start::Run(_)),
        backup_always: db.is_some_and(|d| d.backup == crate::config::BackupPolicy::Always),
    }
}

/// The address `{host}` and `LASTGOOD_HOST` name on this machine.
pub const LOCAL_HOST: &str = "127.0.0.1";

/// What `build`, `run`, `restart` and command checks get in their environment, on
/// `host` (its address; [`LOCAL_HOST`] for `local`).
pub fn program_env(env: &crate::model::EnvName, r: &Release, host: &str) -> Vec<(String, String)> {
    vec![
        ("LASTGOOD_VERSION".into(), r.version.clone()),
        ("LASTGOOD_RELEASE".into(), r.id.0.to_string()),
        ("LASTGOOD_ENV".into(), env.to_string()),
        ("LASTGOOD_COMMIT".into(), r.commit.as_ref().map(|c| c.to_string()).unwrap_or_default()),
        ("LASTGOOD_HOST".into(), host.into()),
    ]
}

/// Runs the environment's health checks against a release on one host.
pub fn check_release(env: &Environment, r: &Release, host: &str, cwd: &std::path::Path) -> Vec<CheckOutcome> {
    let vars = program_env(&env.name, r, host);
    verify::run_checks(&env.checks, &verify::Vars { version: &r.version, host, env: &vars, cwd })
}

pub(crate) struct Journal<'a> {
    pub ledger: &'a dyn Ledger,
    pub fence: Fence,
    pub env: &'a Environment,
    pub ctx: &'a Context,
    pub op: Operation,
    pub progress: &'a mut dyn Progress,
    pub checks: Vec<CheckOutcome>,
    pub verify: bool,
    pub notifier: Option<crate::notify::Notifier>,
    /// The hosts of a fleet and their agent sessions (None for `local`).
    pub fleet: Option<std::rc::Rc<crate::fleet::Fleet>>,
}

/// The end of a journal run.
pub struct Finished {
    pub outcome: Outcome,
    pub error: Option<String>,
}

impl Journal<'_> {
    /// Queues a notification; a failure to queue is recorded, never raised.
    fn notify(&self, event: &str, text: String, facts: serde_json::Value) -> Result<()> {
        let Some(n) = &self.notifier else { return Ok(()) };
        if let Err(why) = n.send(self.env.name.as_str(), self.op.id, event, text, facts) {
            self.ledger.apply(
                &self.fence,
                vec![self.audit("notify.failed", serde_json::json!({ "event": event, "error": why }))],
            )?;
        }
        Ok(())
    }

    fn audit(&self, event: &str, detail: serde_json::Value) -> Change {
        Change::Audit(AuditEvent::by(self.ctx, self.env.name.as_str(), Some(self.op.id), event, detail))
    }

    fn release(&self, id: ReleaseId) -> Result<Release> {
        self.ledger.release(&self.env.name, id)?.ok_or_else(|| Error::Ledger {
            path: self.ledger.describe(),
            message: format!("release {id} of `{}` is missing from the ledger", self.env.name),
        })
    }

    fn vars(&self, r: &Release) -> Vec<(String, String)> {
        program_env(&self.env.name, r, LOCAL_HOST)
    }

    /// Runs every step not yet done, handling failures, then settles the operation.
    pub fn run(&mut self) -> Result<Finished> {
        let mut steps = self.ledger.steps(self.op.id)?;
        let mut i = 0;
        let mut failure: Option<(StepRecord, String)> = None;
        // The intent of the next step is recorded in the same transaction as the done of
        // the one before (one fsync instead of two); this says which step that was.
        let mut intended_early: Option<(u32, i64)> = None;
        while i < steps.len() {
            let mut rec = steps[i].clone();
            i += 1;
            if !matches!(rec.state, StepState::Planned | StepState::Intended) {
                continue;
            }
            let started = match intended_early.take() {
                Some((seq, at)) if seq == rec.seq => at,
                _ => {
                    let at = now_ms();
                    self.ledger
                        .apply(&self.fence, vec![Change::StepIntended { op: self.op.id, seq: rec.seq, at_ms: at }])?;
                    at
                }
            };
            rec.state = StepState::Intended;
            rec.started_at_ms = Some(started);
            self.progress.step_started(&rec);
            failpoint::hit(&format!("intent:{}", rec.step.name()));
            let t = Instant::now();
            let result = self.apply(&rec);
            failpoint::hit(&format!("apply:{}", rec.step.name()));
            let duration_ms = t.elapsed().as_millis() as i64;
            rec.duration_ms = Some(duration_ms);
            match result {
                Ok((detail, mut effects)) => {
                    rec.state = StepState::Done;
                    rec.detail = Some(detail.clone());
                    effects.push(self.audit(
                        "step.done",
                        serde_json::json!({
                            "seq": rec.seq, "step": rec.step.name(), "phase": rec.phase,
                            "host": rec.host, "duration_ms": duration_ms, "detail": detail,
                        }),
                    ));
                    effects.insert(
                        0,
                        Change::StepFinished {
                            op: self.op.id,
                            seq: rec.seq,
                            state: StepState::Done,
                            duration_ms,
                            detail: Some(detail),
                        },
                    );
                    if let Some(next) =
                        steps[i..].iter().find(|s| matches!(s.state, StepState::Planned | StepState::Intended))
                    {
                        let at = now_ms();
                        effects.push(Change::StepIntended { op: self.op.id, seq: next.seq, at_ms: at });
                        intended_early = Some((next.seq, at));
                    }
                    self.ledger.apply(&self.fence, effects)?;
                    failpoint::hit(&format!("done:{}", rec.step.name()));
                    self.progress.step_finished(&rec);
                }
                Err(e) => {
                    // A lost lock is not a step failure: stop at once, touch nothing.
                    if matches!(e, Error::Fenced { .. }) {
                        return Err(e);
                    }
                    let detail = e.to_string();
                    if self.halts(&rec) {
                        // The step stays open: `resume` retries it, `resume --abort` undoes.
                        self.ledger.apply(
                            &self.fence,
                            vec![self.audit(
                                "step.halted",
                                serde_json::json!({ "step": rec.step.name(), "host": rec.host, "error": detail }),
                            )],
                        )?;
                        self.progress.step_finished(&rec);
                        return Err(Error::Halted {
                            env: self.env.name.to_string(),
                            operation: self.op.id,
                            kind: self.op.kind.as_str().into(),
                            step: rec.step.name().into(),
                            detail,
                        });
                    }
                    rec.state = StepState::Failed;
                    rec.detail = Some(detail.clone());
                    self.ledger.apply(
                        &self.fence,
                        vec![
                            Change::StepFinished {
                                op: self.op.id,
                                seq: rec.seq,
                                state: StepState::Failed,
                                duration_ms,
                                detail: Some(detail.clone()),
                            },
                            Change::SkipRemaining { op: self.op.id, from_seq: rec.seq + 1 },
                            self.audit("step.failed", serde_json::json!({ "step": rec.step.name(), "error": detail })),
                        ],
                    )?;
                    self.progress.step_finished(&rec);
                    self.notify(
                        "step_failed",
                        format!(
                            "lastgood: step `{}` of {} {} on {} failed: {}",
                            rec.step.name(),
                            self.op.kind.as_str(),
                            self.op.id,
                            self.env.name,
                            detail
                        ),
                        serde_json::json!({ "step": rec.step.name(), "error": detail }),
                    )?;
                    steps = self.ledger.steps(self.op.id)?;
                    if let Some(more) = self.on_failure(&rec, &steps)? {
                        self.ledger.apply(&self.fence, vec![Change::AppendSteps { op: self.op.id, steps: more }])?;
                        steps = self.ledger.steps(self.op.id)?;
                    }
                    if failure.is_none() {
                        failure = Some((rec, detail));
                    }
                }
            }
        }
        // Judge the outcome on the journal as recorded, not on the copy read at the start.
        let steps = self.ledger.steps(self.op.id)?;
        self.settle(&steps, failure)
    }

    /// A failed step: decide whether to return to the last good release.
    fn on_failure(&mut self, failed: &StepRecord, steps: &[StepRecord]) -> Result<Option<Vec<(Step, Phase, String)>>> {
        let deploy = self.op.kind == OperationKind::Deploy;
        let switched = steps
            .iter()
            .any(|s| s.phase == Phase::Forward && matches!(s.step, Step::Switch { .. }) && s.state == StepState::Done)
            // On a fleet a failed switch may have moved some of its hosts.
            || (failed.host != crate::fleet::LOCAL && matches!(failed.step, Step::Switch { .. }));
        // A failed migration run may have committed some of its migrations: the
        // schema moved even though the code did not.
        let migrated = steps.iter().any(|s| {
            s.phase == Phase::Forward
                && matches!(s.step, Step::MigrateUp { .. })
                && matches!(s.state, StepState::Done | StepState::Failed)
        });
        if !deploy || failed.phase != Phase::Forward || !(switched || migrated) {
            return Ok(None);
        }
        if !self.op.auto_rollback {
            self.progress.note("automatic rollback is off (--no-auto-rollback): the failed release stays current");
            return Ok(None);
        }
        let Some(good) = self.ledger.last_good(&self.env.name, Some(self.op.to))? else {
            self.progress.note("there is no good release to return to: the failed release stays current");
            return Ok(None);
        };
        // A fleet's hosts are checked when the rollback steps run on them.
        let ready = if self.env.hosts.is_empty() {
            runtime::of(self.env).ready(&good)
        } else if good.artifact {
            Ok(())
        } else {
            Err(format!("its release directories were removed by retention ({})", good.id))
        };
        if let Err(why) = ready {
            self.progress.note(&format!("cannot return to the last good release {}: {why}", good.id));
            return Ok(None);
        }
        let shape = shape(self.env, self.verify);
        let schema = plan::SchemaChange { migrate_down: shape.migrations && migrated, backup: false };
        if schema.migrate_down {
            // The policy for automatic rollbacks: never a destructive down. Nobody is
            // there to consent, so the failed release stays and the message says what
            // an operator can run after reading the plan.
            match self.downs_to(&good) {
                Ok(destructive) if destructive.is_empty() => {}
                Ok(destructive) => {
                    self.progress.note(&format!(
                        "not returning to {} by itself: that would revert destructive migrations ({}); \
                         check the plan with `lastgood rollback {} --dry-run --sql`, then run it with --allow-data-loss",
                        good.id,
                        destructive.join(", "),
                        self.env.name
                    ));
                    return Ok(None);
                }
                Err(e) => {
                    self.progress
                        .note(&format!("not returning to {} by itself: cannot plan its migrations: {e}", good.id));
                    return Ok(None);
                }
            }
        }
        self.progress.note(&format!("returning to the last good release {} ({})", good.id, good.version));
        self.notify(
            "automatic_rollback",
            format!(
                "lastgood: {} {} on {} failed; returning {} to the last good release {} ({}) by itself",
                self.op.kind.as_str(),
                self.op.id,
                self.env.name,
                self.env.name,
                good.id,
                good.version
            ),
            serde_json::json!({ "to": good.id }),
        )?;
        let mut current = self.ledger.env_state(&self.env.name)?.current;
        if !self.env.hosts.is_empty() {
            // Some hosts may have switched before the ledger's `current` moved (it moves
            // with the last wave): switch every host back; where one never moved, that
            // is a no-op.
            current = Some(self.op.to);
        }
        let steps = plan::rollback(shape, current, good.id, crate::model::Scope::Full, schema);
        Ok(Some(crate::fleet::place(self.env, steps, Phase::Rollback, self.op.kind)))
    }

    /// The destructive migrations a return to `target` would revert.
    fn downs_to(&self, target: &Release) -> Result<Vec<String>> {
        let Some(db) = EnvDatabase::of(self.env)? else { return Ok(Vec::new()) };
        let mut tool = db.tool(self.newest_root()?.as_deref(), &self.ctx.actor())?;
        let plan = tool.plan_down(target.schema_revision.as_deref())?;
        Ok(database::environment::destructive(&plan.verdicts))
    }

    /// The directory of the newest release that may have migrated the database: the
    /// one this operation deployed if it got that far, else the one serving. Its files
    /// know how to undo what it applied.
    fn newest_root(&self) -> Result<Option<std::path::PathBuf>> {
        let current = self.ledger.env_state(&self.env.name)?.current;
        let newest = match (self.op.kind, current) {
            (OperationKind::Deploy, Some(c)) => Some(c.max(self.op.to)),
            (OperationKind::Deploy, None) => Some(self.op.to),
            (OperationKind::Rollback, c) => c,
        };
        Ok(newest.map(|c| runtime::of(self.env).workdir(c)).filter(|d| d.is_dir()))
    }

    fn backups_in_this_operation(&self) -> Result<usize> {
        Ok(self.ledger.backups(&self.env.name, 50)?.iter().filter(|b| b.operation == Some(self.op.id)).count())
    }

    fn take_backup(&self, db: &EnvDatabase, release: ReleaseId, revision: Option<String>) -> Result<(String, Change)> {
        let label = format!("{}-op{}-{}", self.env.name, self.op.id, now_ms());
        let file = db.backup(&label)?;
        let detail =
            format!("backed up to {} ({} bytes, sha256 {})", file.path.display(), file.bytes, &file.sha256[..12]);
        let record = BackupRecord {
            id: 0,
            operation: Some(self.op.id),
            release: Some(release),
            file,
            schema_revision: revision,
            created_at: self.ctx.now(),
            created_by: self.ctx.actor(),
        };
        Ok((detail, Change::RecordBackup(record)))
    }

    fn database(&self) -> Result<EnvDatabase<'_>> {
        EnvDatabase::of(self.env)?.ok_or_else(|| Error::Step {
            message: format!("environment `{}` has no [database] section", self.env.name),
        })
    }

    /// Works out the outcome and release states from the journal, and records them.
    fn settle(&mut self, steps: &[StepRecord], failure: Option<(StepRecord, String)>) -> Result<Finished> {
        let any = |phase: Phase, state: StepState| steps.iter().any(|s| s.phase == phase && s.state == state);
        let has = |phase: Phase| steps.iter().any(|s| s.phase == phase);
        let forward_failed = any(Phase::Forward, StepState::Failed);
        let outcome = if has(Phase::Abort) {
            if any(Phase::Abort, StepState::Failed) { Outcome::Failed } else { Outcome::Aborted }
        } else if forward_failed {
            if has(Phase::Rollback) && !any(Phase::Rollback, StepState::Failed) {
                Outcome::RolledBack
            } else {
                Outcome::Failed
            }
        } else {
            Outcome::Succeeded
        };

        let mut changes = Vec::new();
        let mut set = |ledger: &dyn Ledger, env, id: ReleaseId, event: ReleaseEvent| -> Result<()> {
            if let Some(r) = ledger.release(env, id)? {
                if let Ok(state) = next_state(r.state, event) {
                    if state != r.state {
                        changes.push(Change::SetReleaseState { release: id, state });
                    }
                }
            }
            Ok(())
        };
        let env = &self.env.name;
        let verified = |id: ReleaseId, phase: Phase| {
            steps
                .iter()
                .any(|s| s.phase == phase && s.step == Step::Verify { release: id } && s.state == StepState::Done)
        };
        match (self.op.kind, outcome) {
            (OperationKind::Deploy, Outcome::Succeeded) => {
                set(self.ledger, env, self.op.to, ReleaseEvent::ChecksPassed)?
            }
            (OperationKind::Deploy, _) => set(self.ledger, env, self.op.to, ReleaseEvent::DeployFailed)?,
            (OperationKind::Rollback, Outcome::Aborted) => {}
            (OperationKind::Rollback, _) => {
                if let Some(from) = self.op.from {
                    if from != self.op.to
                        && steps.iter().any(|s| s.state == StepState::Done && s.phase == Phase::Forward)
                    {
                        set(self.ledger, env, from, ReleaseEvent::MovedAwayFrom)?;
                    }
                }
                if verified(self.op.to, Phase::Forward) {
                    set(self.ledger, env, self.op.to, ReleaseEvent::ChecksPassed)?;
                }
            }
        }
        let error = failure.map(|(rec, detail)| format!("step `{}` failed: {detail}", rec.step.name()));
        let now = self.ctx.now();
        changes.push(Change::FinishOperation { op: self.op.id, outcome, at: now, error: error.clone() });
        // Finishing and unlocking are one fact: an operation is never seen finished
        // while still holding the lock, nor unlocked while still running.
        changes.push(Change::ReleaseLock);
        changes.push(self.audit(
            &format!("{}.finish", self.op.kind.as_str()),
            serde_json::json!({ "outcome": outcome.as_str(), "error": error, "checks": self.checks }),
        ));
        self.ledger.apply(&self.fence, changes)?;
        let serving = self.ledger.env_state(&self.env.name)?.current;
        let serving_text = match serving.map(|c| self.release(c)).transpose()? {
            Some(r) => format!("{} runs {} ({})", self.env.name, r.id, r.version),
            None => format!("{} runs nothing", self.env.name),
        };
        let verb = match outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack => "failed and was rolled back",
            Outcome::Aborted => "was aborted",
            Outcome::Failed => "FAILED",
            Outcome::Running => "is still running",
        };
        self.notify(
            "finished",
            format!(
                "lastgood: {} {} on {} {verb}; {serving_text}{}",
                self.op.kind.as_str(),
                self.op.id,
                self.env.name,
                error.as_ref().map(|e| format!(". {e}")).unwrap_or_default()
            ),
            serde_json::json!({ "outcome": outcome.as_str(), "current": serving }),
        )?;
        Ok(Finished { outcome, error })
    }

    /// Applies one step; returns its detail and the ledger changes that record its effect.
    fn apply(&mut self, rec: &StepRecord) -> Result<(String, Vec<Change>)> {
        let env = self.env;
        if rec.host != crate::fleet::LOCAL {
            if let Some(fleet) = self.fleet.clone() {
                return self.apply_fleet(&fleet, rec);
            }
        }
        let rt = runtime::of(env);
        let state_dir = runtime::state_dir(env);
        match &rec.step {
            Step::Export { release, commit } => {
                let fresh = rt.export(commit, *release)?;
                let detail = if fresh {
                    format!("exported {} into releases/{}", commit.short(), release.0)
                } else {
                    "already exported".into()
                };
                Ok((detail, vec![Change::SetArtifact { release: *release, present: true }]))
            }
            Step::Build { release } => {
                let r = self.release(*release)?;
                let Some(argv) = &env.build else {
                    return Ok(("no build configured".into(), vec![]));
                };
                let dir = rt.workdir(*release);
                let log = state_dir.join(format!("build-{}.log", release.0));
                crate::exec::run_logged(argv, &dir, &self.vars(&r), &log)
                    .map_err(|e| Error::Step { message: e.to_string() })?;
                Ok((format!("built (log: {})", log.display()), vec![]))
            }
            Step::Switch { release } => {
                let r = self.release(*release)?;
                let state = self.ledger.env_state(&env.name)?;
                let expected = match state.current.filter(|c| c != release) {
                    Some(c) => Some(self.release(c)?.version),
                    None => None,
                };
                let actor = self.ctx.actor();
                let vars = self.vars(&r);
                let detail = rt.activate(&runtime::Activation {
                    env: &env.name,
                    release: &r,
                    expected: expected.as_deref(),
                    operation: self.op.id,
                    kind: self.op.kind,
                    back: !(self.op.kind == OperationKind::Deploy && rec.phase == Phase::Forward),
                    auto_rollback: self.op.auto_rollback,
                    actor: &actor,
                    reason: self.op.reason.as_deref(),
                    vars: &vars,
                })?;
                let mut effects = vec![Change::SetCurrent(Some(*release))];
                let config_follows = env.config_files.is_empty() && self.op.scope.includes_config();
                if config_follows || (self.op.kind == OperationKind::Deploy && rec.phase == Phase::Forward) {
                    // A deploy snapshots the config files that are in place, so they are its own.
                    effects.push(Change::SetConfigRelease(Some(*release)));
                }
                Ok((detail, effects))
            }
            Step::RestoreConfig { release } => {
                let r = self.release(*release)?;
                let mut restored = Vec::new();
                for file in &env.config_files {
                    let Some(sha) = r.config.get(&file.name) else {
                        continue;
                    };
                    let now = std::fs::read(&file.path).ok().map(|b| crate::digest::sha256_hex(&b));
                    if now.as_deref() == Some(sha.as_str()) {
                        continue;
                    }
                    let content = self.ledger.blob(sha)?.ok_or_else(|| Error::Ledger {
                        path: self.ledger.describe(),
                        message: format!("the snapshot {sha} of {} is missing", file.name),
                    })?;
                    releases::write_atomic(&file.path, &content)?;
                    restored.push(file.name.clone());
                }
                let detail = if restored.is_empty() {
                    "config files already matched".into()
                } else {
                    format!("restored {}", restored.join(", "))
                };
                Ok((detail, vec![Change::SetConfigRelease(Some(*release))]))
            }
            Step::Restart { release } => {
                let r = self.release(*release)?;
                let dir = rt.workdir(*release);
                match &env.start {
                    Start::Run(argv) => {
                        // Always a real restart, even when the release already runs: a
                        // config-only rollback needs the app to read its files again.
                        let sup = Supervisor::new(&state_dir);
                        let stopped = sup.stop(env.stop_timeout)?;
                        let started = sup
                            .start(argv, &dir, &self.vars(&r), release.0, Duration::from_millis(50))
                            .map_err(|e| {
                                match &e {
                                    // The app's own last words say why; put them in the record.
                                    crate::supervise::SuperviseError::ExitedAtStart { log_tail, .. } => {
                                        let tail: Vec<&str> = log_tail.lines().rev().take(5).collect();
                                        let tail: Vec<&str> = tail.into_iter().rev().collect();
                                        Error::Step { message: format!("{e}; its log ends:\n{}", tail.join("\n")) }
                                    }
                                    _ => Error::Supervise(e),
                                }
                            })?;
                        let detail = match stopped {
                            Some(old) => format!(
                                "stopped pid {} ({}), started pid {}",
                                old.pid,
                                ReleaseId(old.release),
                                started.pid
                            ),
                            None => format!("started pid {}", started.pid),
                        };
                        Ok((detail, vec![]))
                    }
                    Start::Restart(argv) => {
                        let log = state_dir.join("restart.log");
                        crate::exec::run_logged(argv, &dir, &self.vars(&r), &log)
                            .map_err(|e| Error::Step { message: e.to_string() })?;
                        Ok(("restarted".into(), vec![]))
                    }
                    Start::Nothing => Ok(("nothing to restart".into(), vec![])),
                }
            }
            Step::Stop => {
                let sup = Supervisor::new(&state_dir);
                Ok(match sup.stop(env.stop_timeout)? {
                    Some(old) => (format!("stopped pid {}", old.pid), vec![]),
                    None => ("nothing was running".into(), vec![]),
                })
            }
            Step::Unlink => {
                let detail =
                    rt.deactivate()?.unwrap_or_else(|| format!("runtime {} has nothing to remove", env.runtime.name()));
                Ok((detail, vec![Change::SetCurrent(None), Change::SetConfigRelease(None)]))
            }
            Step::Verify { release } => {
                let r = self.release(*release)?;
                let outcomes = check_release(env, &r, LOCAL_HOST, &rt.workdir(*release));
                let verdict = verify::summary(&outcomes);
                self.checks.extend(outcomes);
                verdict.map(|line| (line, vec![])).map_err(|message| Error::Step { message })
            }
            Step::Cleanup => self.cleanup(),
            Step::Backup { release } => {
                let db = self.database()?;
                let revision = db.tool(self.newest_root()?.as_deref(), &self.ctx.actor())?.current().ok().flatten();
                let (detail, change) = self.take_backup(&db, *release, revision)?;
                Ok((detail, vec![change]))
            }
            Step::MigrateUp { release } => {
                let db = self.database()?;
                let root = rt.workdir(*release);
                let mut tool = db.tool(Some(&root), &self.ctx.actor())?;
                let plan = tool.plan_up()?;
                let mut effects = Vec::new();
                let mut notes = Vec::new();
                let destructive = database::environment::destructive(&plan.verdicts);
                if !destructive.is_empty()
                    && db.config.backup == crate::config::BackupPolicy::Auto
                    && self.backups_in_this_operation()? == 0
                {
                    let (detail, change) = self.take_backup(&db, *release, tool.current()?)?;
                    notes.push(format!("{detail} first: {} is destructive", destructive.join(", ")));
                    // Record the backup before migrating: it must survive a failure below.
                    self.ledger.apply(&self.fence, vec![change])?;
                }
                let moved = tool.run(&plan)?;
                let revision = tool.current()?;
                effects.push(Change::SetSchemaRevision { release: *release, revision: revision.clone() });
                notes.push(format!(
                    "applied {} migration(s); schema at {}",
                    moved.map(|n| n.to_string()).unwrap_or_else(|| "the pending".into()),
                    revision.as_deref().unwrap_or("none")
                ));
                Ok((notes.join("; "), effects))
            }
            Step::MigrateDown { release } => {
                let target = self.release(*release)?.schema_revision;
                let db = self.database()?;
                let mut tool = db.tool(self.newest_root()?.as_deref(), &self.ctx.actor())?;
                let plan = tool.plan_down(target.as_deref())?;
                let destructive = database::environment::destructive(&plan.verdicts);
                if !destructive.is_empty() {
                    // The last line of defence, whatever path led here (a plan, an
                    // abort, a resume): consent and a backup from this operation.
                    if !self.op.allow_data_loss {
                        return Err(Error::Step {
                            message: format!(
                                "refusing destructive down migrations without --allow-data-loss: {}",
                                destructive.join(", ")
                            ),
                        });
                    }
                    if self.backups_in_this_operation()? == 0 {
                        return Err(Error::Step {
                            message: format!(
                                "refusing destructive down migrations without a backup taken in this operation: {}",
                                destructive.join(", ")
                            ),
                        });
                    }
                }
                let moved = tool.run(&plan)?;
                let now = tool.current()?;
                Ok((
                    format!(
                        "reverted {} migration(s); schema at {}",
                        moved.map(|n| n.to_string()).unwrap_or_else(|| "the".into()),
                        now.as_deref().unwrap_or("none")
                    ),
                    vec![],
                ))
            }
        }
    }

    /// Whether a failed step halts the operation (`on_failure = "halt"` on a fleet's
    /// forward path) instead of failing it.
    fn halts(&self, rec: &StepRecord) -> bool {
        rec.host != crate::fleet::LOCAL
            && rec.phase == Phase::Forward
            && self.env.rollout.on_failure == crate::config::OnFailure::Halt
    }

    /// One step on the hosts its record names, in parallel; done only if done on all.
    fn apply_fleet(&mut self, fleet: &crate::fleet::Fleet, rec: &StepRecord) -> Result<(String, Vec<Change>)> {
        use crate::agent::Request;
        use crate::fleet::summarize;
        let env = self.env;
        let hosts = fleet.hosts_of(&rec.host).map_err(|message| Error::Step { message })?;
        let epoch = self.fence.epoch;
        let deploy_to = env.deploy_to.clone();
        let finish = |r: std::result::Result<String, (String, bool)>| match r {
            Ok(text) => Ok(text),
            Err((_, true)) => Err(Error::Fenced { env: env.name.to_string(), epoch }),
            Err((message, false)) => Err(Error::Step { message }),
        };
        let host_vars = |r: &Release, h: &crate::model::SshHost| program_env(&env.name, r, &h.host);
        let stop_ms = env.stop_timeout.as_millis() as u64;
        let detail = |a: &crate::agent::Answer| a.detail.clone();
        match &rec.step {
            Step::Export { release, commit } => {
                let tar = crate::git::archive(&env.source, commit)?;
                let req = Request::Export { deploy_to, release: release.0, commit: commit.to_string(), epoch };
                let results = fleet.each(&hosts, |h| fleet.call(h, &req, &tar));
                Ok((
                    finish(summarize(results, detail))?,
                    vec![Change::SetArtifact { release: *release, present: true }],
                ))
            }
            Step::Build { release } => {
                let Some(argv) = &env.build else { return Ok(("no build configured".into(), vec![])) };
                let r = self.release(*release)?;
                let results = fleet.each(&hosts, |h| {
                    let req = Request::Exec {
                        deploy_to: deploy_to.clone(),
                        release: release.0,
                        argv: argv.clone(),
                        env: host_vars(&r, h),
                        log: format!("build-{}.log", release.0),
                        epoch,
                    };
                    fleet.call(h, &req, &[])
                });
                Ok((finish(summarize(results, detail))?, vec![]))
            }
            Step::Switch { release } => {
                let req = Request::Switch { deploy_to, release: release.0, epoch };
                let results = fleet.each(&hosts, |h| fleet.call(h, &req, &[]));
                let text = finish(summarize(results, detail))?;
                // The ledger's `current` moves with the last wave of this phase.
                let later = self
                    .ledger
                    .steps(self.op.id)?
                    .iter()
                    .any(|s| s.seq > rec.seq && s.phase == rec.phase && matches!(s.step, Step::Switch { .. }));
                let mut effects = Vec::new();
                if !later {
                    effects.push(Change::SetCurrent(Some(*release)));
                    if self.op.scope.includes_config() || self.op.kind == OperationKind::Deploy {
                        effects.push(Change::SetConfigRelease(Some(*release)));
                    }
                }
                Ok((text, effects))
            }
            Step::Restart { release } => {
                let r = self.release(*release)?;
                let results = match &env.start {
                    Start::Nothing => return Ok(("nothing to restart".into(), vec![])),
                    Start::Run(argv) => fleet.each(&hosts, |h| {
                        let req = Request::Start {
                            deploy_to: deploy_to.clone(),
                            release: release.0,
                            argv: argv.clone(),
                            env: host_vars(&r, h),
                            stop_timeout_ms: stop_ms,
                            epoch,
                        };
                        fleet.call(h, &req, &[])
                    }),
                    Start::Restart(argv) => fleet.each(&hosts, |h| {
                        let req = Request::Exec {
                            deploy_to: deploy_to.clone(),
                            release: release.0,
                            argv: argv.clone(),
                            env: host_vars(&r, h),
                            log: "restart.log".into(),
                            epoch,
                        };
                        fleet.call(h, &req, &[])
                    }),
                };
                Ok((finish(summarize(results, detail))?, vec![]))
            }
            Step::Stop => {
                let req = Request::Stop { deploy_to, stop_timeout_ms: stop_ms, epoch };
                let results = fleet.each(&hosts, |h| fleet.call(h, &req, &[]));
                Ok((finish(summarize(results, detail))?, vec![]))
            }
            Step::Unlink => {
                let req = Request::Unlink { deploy_to, epoch };
                let results = fleet.each(&hosts, |h| fleet.call(h, &req, &[]));
                let text = finish(summarize(results, detail))?;
                Ok((text, vec![Change::SetCurrent(None), Change::SetConfigRelease(None)]))
            }
            Step::Verify { release } => {
                let r = self.release(*release)?;
                let results = fleet.each(&hosts, |h| {
                    let outcomes = check_release(env, &r, &h.host, &env.source);
                    let verdict = verify::summary(&outcomes).map_err(crate::fleet::HostError::Agent);
                    (outcomes, verdict)
                });
                let mut per_host = Vec::new();
                for (h, (outcomes, verdict)) in results {
                    self.checks.extend(outcomes);
                    per_host.push((h, verdict));
                }
                Ok((finish(summarize(per_host, |s: &String| s.clone()))?, vec![]))
            }
            Step::Cleanup => {
                let (remove, changes) = self.retention()?;
                if remove.is_empty() {
                    return Ok(("nothing to remove".into(), vec![]));
                }
                let ids: Vec<u64> = remove.iter().map(|r| r.0).collect();
                let req = Request::Remove { deploy_to, releases: ids, epoch };
                let results = fleet.each(&hosts, |h| fleet.call(h, &req, &[]));
                let text = finish(summarize(results, detail))?;
                Ok((text, changes))
            }
            other => Err(Error::Step { message: format!("step `{}` cannot run on hosts", other.name()) }),
        }
    }

    /// The releases retention removes now, and the ledger changes that record it.
    fn retention(&self) -> Result<(Vec<ReleaseId>, Vec<Change>)> {
        let env = self.env;
        let state = self.ledger.env_state(&env.name)?;
        let with_dirs = self.ledger.releases_with_artifacts(&env.name)?;
        let mut keep: BTreeSet<ReleaseId> =
            [state.current, state.config_release, Some(self.op.to)].into_iter().flatten().collect();
        // Cleanup runs after the deploy's checks passed, so its release is about to be
        // good: it counts among the `keep_releases` newest good ones.
        let good = with_dirs.iter().filter(|r| r.state == ReleaseState::Good || r.id == self.op.to).map(|r| r.id);
        keep.extend(good.take(env.keep_releases));
        // Failed and bad releases among the newest few stay a while for inspection;
        // they are never what a rollback needs, so they do not count as protected.
        keep.extend(with_dirs.iter().map(|r| r.id).take(env.keep_releases));
        let remove: Vec<ReleaseId> = with_dirs
            .iter()
            .filter(|r| !keep.contains(&r.id) && r.state != ReleaseState::Pending)
            .map(|r| r.id)
            .collect();
        let changes = remove.iter().map(|id| Change::SetArtifact { release: *id, present: false }).collect();
        Ok((remove, changes))
    }

    /// Retention: keep the current release, the config release, this operation's
    /// release and the newest `keep_releases` good ones; remove the other directories.
    fn cleanup(&mut self) -> Result<(String, Vec<Change>)> {
        let (remove, changes) = self.retention()?;
        let rt = runtime::of(self.env);
        for id in &remove {
            rt.remove(*id)?;
        }
        let detail = if remove.is_empty() {
            "nothing to remove".into()
        } else {
            format!("removed {}", remove.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
        };
        Ok((detail, changes))
    }
}
