//! Settling an operation: its outcome and its releases' states, judged on the journal
//! as recorded, then finishing the operation and freeing the lock in one fact.

use super::{Finished, Journal};
use crate::error::Result;
use crate::ledger::{Change, Ledger, StepRecord, StepState};
use crate::model::{OperationKind, Outcome, ReleaseEvent, ReleaseId, next_state};
use crate::plan::{Phase, Step};

impl Journal<'_> {
    /// Works out the outcome and release states from the journal, and records them.
    pub(super) fn settle(&mut self, steps: &[StepRecord], failure: Option<(StepRecord, String)>) -> Result<Finished> {
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
        // Only stopping the old release's process failed, after the new one took the
        // traffic and passed its checks: the new release is good and serves; the
        // operation still failed (a process is left over).
        let only_retire = forward_failed
            && verified(self.op.to, Phase::Forward)
            && steps
                .iter()
                .filter(|s| s.phase == Phase::Forward && s.state == StepState::Failed)
                .all(|s| matches!(s.step, Step::Retire { .. }));
        match (self.op.kind, outcome) {
            (OperationKind::Deploy, Outcome::Succeeded) => {
                set(self.ledger, env, self.op.to, ReleaseEvent::ChecksPassed)?
            }
            (OperationKind::Deploy, Outcome::Failed) if only_retire => {
                set(self.ledger, env, self.op.to, ReleaseEvent::ChecksPassed)?
            }
            (OperationKind::Deploy, _) => set(self.ledger, env, self.op.to, ReleaseEvent::DeployFailed)?,
            // A restore changes the data, not which release serves nor its state.
            (OperationKind::Restore | OperationKind::Restart, _) => {}
            (OperationKind::Rollback, Outcome::Aborted) => {}
            (OperationKind::Rollback, _) => {
                // Only moving the code away from a release judges it: a config or schema
                // rollback leaves its code serving.
                if let Some(from) = self.op.from {
                    if from != self.op.to
                        && self.op.scope.includes_code()
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
        let mut error = failure.map(|(rec, detail)| format!("step `{}` failed: {detail}", rec.step.name()));
        if let Some(e) = error.as_mut().filter(|_| only_retire) {
            e.push_str(&format!(
                "; release {} serves and passed its checks, and stays current; an older release's process may still run: `lastgood restart {} --reason ...` stops every process the proxy does not route to",
                self.op.to, env
            ));
        }
        // A deploy whose release still serves at the end runs on its own schema, even
        // if an automatic rollback that never got as far as switching said otherwise.
        let state = self.ledger.env_state(env)?;
        if self.op.kind == OperationKind::Deploy && state.current == Some(self.op.to) && state.schema_ahead > 0 {
            changes.push(Change::SetSchemaAhead(0));
        }
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
}
