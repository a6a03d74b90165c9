//! Executing a plan: the crash-safe journal.
//!
//! For each step: record the intent (durable), apply the effect, observe it, record it
//! done, all under the operation's fence. Each step's action first checks whether its
//! effect is already in place (`readlink current`, the supervised pid, the config
//! file's hash), so running a step twice is harmless. That is the whole of crash
//! recovery: `resume` re-runs the journal from the first step that is not done.
//!
//! What a step does is decided here once, whatever runs it ([`steps`]): the action,
//! dispatched to this machine or to each host of a fleet ([`crate::executor`]), and
//! the ledger changes that record it. What happens when a step fails is policy, and it
//! lives here too ([`failure`]): a deploy that fails after it switched (or whose switch
//! failed half way, for every runtime whose switch is not atomic) returns to the last
//! good release by appending rollback steps to the same journal (so a crash during the
//! automatic rollback resumes into it); the release states at the end follow
//! [`crate::model::next_state`] ([`settle`]).
//!
//! - [`steps`]: the one match over [`Step`]: action and ledger effects.
//! - [`database`]: the backup and migrate steps, through the data-safety gate.
//! - [`failure`]: automatic rollback, halting a fleet.
//! - [`settle`]: the outcome and the release states.
//! - [`retention`]: which artifacts cleanup removes.

pub mod bake;
mod database;
mod failure;
mod retention;
mod settle;
mod steps;

use std::rc::Rc;
use std::time::Instant;

use crate::config::{Environment, Start};
use crate::context::{Context, now_ms};
use crate::error::{Error, Result};
use crate::executor::{Executor, Local};
use crate::failpoint;
use crate::fleet::Fleet;
use crate::ledger::{AuditEvent, Change, Fence, Ledger, Operation, Release, StepRecord, StepState};
use crate::model::{EnvName, Outcome, ReleaseId};
use crate::plan::Shape;
use crate::plan::placement::LOCAL;
use crate::runtime::{self, Site};
use crate::verify::{self, CheckOutcome};

pub use crate::runtime::api::LOCAL_HOST;

/// What a caller is told as the journal runs (the CLI draws progress from it).
pub trait Progress {
    /// The operation is recorded (its id is known) and its journal is about to run:
    /// the dashboard sends its user to the operation's page here.
    fn operation_started(&mut self, _operation: u64) {}
    fn step_started(&mut self, _step: &StepRecord) {}
    fn step_finished(&mut self, _step: &StepRecord) {}
    fn note(&mut self, _text: &str) {}
}

/// Progress that goes nowhere.
pub struct Quiet;
impl Progress for Quiet {}

/// What the environment's configuration makes an operation do.
pub fn shape(env: &Environment, verify: bool) -> Shape {
    let db = env.database.as_ref();
    let site = Site::local(env);
    let rt = runtime::of(&site);
    let artifacts = rt.artifacts();
    let migrations = db.is_some_and(crate::database::environment::EnvDatabase::has_migrations);
    // A runtime without release directories keeps a release's tree only for its
    // migrations, and only when versions are commits of `source`.
    let trees = env.versions_in_source && migrations && rt.tree(crate::model::ReleaseId(0)).is_some();
    Shape {
        artifacts,
        export: artifacts || trees,
        unlink: artifacts,
        build: env.build.is_some(),
        start: env.start != Start::Nothing,
        config_files: !env.config_files.is_empty(),
        ship_config: env.config_files_shared(),
        switch_starts: rt.starts_on_switch(),
        verify: verify && !env.checks.is_empty(),
        migrations,
        stoppable: matches!(env.start, Start::Run(_)) || env.stop.is_some() || rt.stops(),
        backup_always: db.is_some_and(|d| d.backup == crate::config::BackupPolicy::Always),
        proxy: env.proxy.is_some() && matches!(env.start, Start::Run(_)),
    }
}

/// `LASTGOOD_VERSION` and the other variables `build`, `run`, `restart`, `switch` and
/// command checks get, except `LASTGOOD_HOST`, which the place they run at adds.
pub fn release_vars(env: &EnvName, r: &Release) -> Vec<(String, String)> {
    vec![
        ("LASTGOOD_VERSION".into(), r.version.clone()),
        ("LASTGOOD_RELEASE".into(), r.id.0.to_string()),
        ("LASTGOOD_ENV".into(), env.to_string()),
        ("LASTGOOD_COMMIT".into(), r.commit.as_ref().map(|c| c.to_string()).unwrap_or_default()),
    ]
}

/// The variables programs get on `host` (its address; [`LOCAL_HOST`] for `local`).
pub fn program_env(env: &EnvName, r: &Release, host: &str) -> Vec<(String, String)> {
    let mut vars = release_vars(env, r);
    vars.push(("LASTGOOD_HOST".into(), host.into()));
    vars
}

/// Runs the environment's health checks against a release on one host; `port` is the
/// port of its process there (`{port}`), with a proxy. A release with a proxy whose
/// process runs nowhere fails every check that would need its port.
pub fn check_release(
    env: &Environment,
    r: &Release,
    host: &str,
    cwd: &std::path::Path,
    port: Option<u16>,
) -> Vec<CheckOutcome> {
    let mut vars = program_env(&env.name, r, host);
    match port {
        Some(port) => vars.push(("LASTGOOD_PORT".into(), port.to_string())),
        None if env.proxy.is_some() => {
            return vec![CheckOutcome {
                check: format!("the process of {} on {host}", r.id),
                passed: false,
                attempts: 0,
                detail: format!(
                    "{} has no process running on {host}, so its checks have no {{port}} to reach; `lastgood restart {}` starts it",
                    r.id, env.name
                ),
                duration_ms: 0,
            }];
        }
        None => {}
    }
    verify::run_checks(&env.checks, &verify::Vars { version: &r.version, host, env: &vars, cwd })
}

pub(crate) struct Journal<'a> {
    pub ledger: &'a dyn Ledger,
    pub fence: Fence,
    /// The holder's view of its lease: no step starts after its deadline.
    pub lease: Option<crate::lock::Lease>,
    pub env: &'a Environment,
    pub ctx: &'a Context,
    pub op: Operation,
    pub progress: &'a mut dyn Progress,
    pub checks: Vec<CheckOutcome>,
    pub verify: bool,
    pub notifier: Option<crate::notify::Notifier>,
    /// This machine.
    pub local: Local,
    /// The hosts of a fleet and their agent sessions (None for `local`).
    pub fleet: Option<Rc<Fleet>>,
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
                vec![self.audit("notify.failed", serde_json::json!({ "event": event, "error": why.to_string() }))],
            )?;
        }
        Ok(())
    }

    fn audit(&self, event: &str, detail: serde_json::Value) -> Change {
        Change::Audit(AuditEvent::by(self.ctx, self.env.name.as_str(), Some(self.op.id), event, detail))
    }

    fn release(&self, id: ReleaseId) -> Result<Release> {
        self.ledger
            .release(&self.env.name, id)?
            .ok_or_else(|| Error::ReleaseMissing { env: self.env.name.to_string(), release: id })
    }

    /// Where a step's `host` column says it runs.
    fn executor(&self, column: &str) -> Result<&dyn Executor> {
        if column == LOCAL {
            return Ok(&self.local);
        }
        match &self.fleet {
            Some(f) => Ok(f.as_ref()),
            None => Err(Error::Step {
                message: format!(
                    "this operation's step runs on hosts {column}, and the environment has no ssh hosts now; put them back in `hosts` to finish, or run `lastgood resume --abort`"
                ),
            }),
        }
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
            if let Some(lease) = &self.lease {
                lease.check(&self.fence)?;
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
            let result = match self.preempted(&rec)? {
                Some(why) => Err(Error::Step { message: why }),
                None if failpoint::fires(&format!("err:{}", rec.step.name())) => {
                    Err(Error::Step { message: "failed on purpose (LASTGOOD_FAILPOINT, a test)".into() })
                }
                None => self.apply(&rec),
            };
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
}
