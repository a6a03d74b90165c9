//! What deploy, rollback and resume share once their plan is decided: recording the
//! operation, telling people it started, running its journal under the lock, and the
//! report of what it did.

use serde::Serialize;

use super::Engine;
use crate::config::Environment;
use crate::error::{Error, Result};
use crate::executor::Local;
use crate::journal::{Journal, Progress};
use crate::ledger::{NewOperation, Operation, Release, StepRecord, StepState};
use crate::lock::LockGuard;
use crate::model::{OperationKind, Outcome, ReleaseId};
use crate::plan::Step;
use crate::runtime::Site;
use crate::verify::CheckOutcome;

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

impl Engine {
    pub(crate) fn notifier(&self, env: &Environment) -> Option<crate::notify::Notifier> {
        env.notify.as_ref().map(|n| crate::notify::Notifier {
            notify: n.clone(),
            spool: crate::notify::spool_dir(&self.config.dir),
            config_path: self.config.path.clone(),
        })
    }

    /// The operation a previewed plan becomes: its kind, releases and steps, by this
    /// actor, now, for `reason` (a deploy adds its release and its failure policy).
    pub(crate) fn new_operation(
        &self,
        view: &super::preview::PlanView,
        reason: Option<String>,
        allow_data_loss: bool,
    ) -> NewOperation {
        NewOperation {
            kind: view.kind,
            from: view.from.as_ref().map(|r| r.id),
            to: view.to.id,
            scope: view.scope,
            auto_rollback: false,
            reason,
            actor: self.ctx.actor(),
            host: self.ctx.host.clone(),
            pid: self.ctx.pid,
            started_at: self.ctx.now(),
            steps: view.forward(),
            release: None,
            allow_data_loss,
        }
    }

    /// Records the operation (and its release), says it started, runs its journal.
    pub(crate) fn execute(
        &self,
        env: &Environment,
        held: LockGuard<'_>,
        new: NewOperation,
        progress: &mut dyn Progress,
    ) -> Result<Report> {
        self.execute_with(env, held, new, vec![], progress)
    }

    /// [`Engine::execute`], recording the rehearsals done before the lock with the new
    /// operation (the evidence its release's readiness reads).
    pub(crate) fn execute_with(
        &self,
        env: &Environment,
        held: LockGuard<'_>,
        new: NewOperation,
        rehearsals: Vec<super::ready_deploy::Evidence>,
        progress: &mut dyn Progress,
    ) -> Result<Report> {
        let summary = format!(
            "lastgood: {} of {} to {} started by {}{}",
            new.kind.as_str(),
            env.name,
            new.release.as_ref().map(|r| r.version.clone()).unwrap_or_else(|| new.to.to_string()),
            new.actor,
            new.reason.as_ref().map(|r| format!(" (reason: {r})")).unwrap_or_default()
        );
        let op_id = self.ledger.begin_operation(&held.fence, new)?;
        for (r, destructive) in &rehearsals {
            self.record_rehearsal(env, Some(op_id), r, destructive)?;
        }
        progress.operation_started(op_id);
        if let Some(n) = self.notifier(env) {
            if let Err(why) = n.send(env.name.as_str(), op_id, "started", summary, serde_json::json!({})) {
                progress.note(&why.to_string());
            }
        }
        self.run_journal(env, held, op_id, progress)
    }

    /// Runs the operation's journal from its first open step. If the journal cannot
    /// record progress (a ledger or I/O error), the operation stays `running` so that
    /// `resume` can finish it; the guard frees the lock either way (a lock taken over
    /// by someone else meanwhile is not theirs to lose: the free is fenced).
    pub(crate) fn run_journal(
        &self,
        env: &Environment,
        held: LockGuard<'_>,
        op_id: u64,
        progress: &mut dyn Progress,
    ) -> Result<Report> {
        let op = self.operation(op_id)?;
        let steps = self.ledger.steps(op_id)?;
        let verify = env.checks.is_empty() || steps.iter().any(|s| matches!(s.step, Step::Verify { .. }));
        let mut j = Journal {
            fleet: self.fleet(env),
            local: Local { site: Site::local(env) },
            ledger: self.ledger.as_ref(),
            fence: held.fence.clone(),
            lease: held.lease(),
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
        drop(held);
        result?;
        let report = self.report(op_id, checks)?;
        if let Some(note) = self.spawn_watch(env, &report) {
            progress.note(&note);
        }
        Ok(report)
    }

    pub(crate) fn operation(&self, id: u64) -> Result<Operation> {
        self.ledger.operation(id)?.ok_or(Error::OperationMissing { operation: id })
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

    /// The step an interrupted operation stopped at.
    pub(crate) fn open_step(&self, op: u64) -> Result<Option<StepRecord>> {
        Ok(self.ledger.steps(op)?.into_iter().find(|s| matches!(s.state, StepState::Planned | StepState::Intended)))
    }
}
