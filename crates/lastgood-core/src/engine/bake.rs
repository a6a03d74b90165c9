//! Ending a running deploy from another process: `lastgood promote` (its bake window
//! passes now) and a preempting `lastgood rollback` (it stops at its next step
//! boundary, or within one interval of its window, and returns to the last good
//! release).
//!
//! Neither takes the lock: the deploy holds it. Each writes one audit event of the
//! deploy's operation (who asked, and why), which the deploy's journal reads
//! ([`crate::journal::bake`]); a preempting rollback then waits for the deploy to end
//! and reports how it ended.

use std::time::Duration;

use super::Engine;
use super::run::Report;
use crate::error::{Error, Result};
use crate::journal::Progress;
use crate::journal::bake::{PREEMPT, PROMOTE};
use crate::model::{OperationKind, Outcome};
use crate::plan::Step;

/// How often a preempting rollback looks whether the deploy ended.
const WAIT_POLL: Duration = Duration::from_millis(200);

/// What `promote` did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Promoted {
    /// The window of this operation will end as passed within a second.
    Promoted { operation: u64, release: u64 },
    /// No bake window runs in the environment (`running`: the step an operation is at).
    NoWindow { running: Option<String> },
}

impl Engine {
    /// The deploy running in the environment now, if one is (its process alive).
    pub fn running_deploy(&self, env_name: &str) -> Result<Option<crate::ledger::Operation>> {
        let env = self.env(env_name)?;
        let Some(op) = self.ledger.running_operation(&env.name)? else { return Ok(None) };
        let alive = match self.ledger.lock_info(&env.name)? {
            None => false,
            Some(l) => l.operation == Some(op.id) && !crate::lock::is_stale(&self.ctx, &l, self.ctx.now()),
        };
        Ok((op.kind == OperationKind::Deploy && alive).then_some(op))
    }

    /// Ends the environment's running bake window as passed.
    pub fn promote(&self, env_name: &str, reason: Option<String>) -> Result<Promoted> {
        let env = self.env(env_name)?;
        let Some(op) = self.ledger.running_operation(&env.name)? else {
            return Ok(Promoted::NoWindow { running: None });
        };
        let Some(open) = self.open_step(op.id)? else { return Ok(Promoted::NoWindow { running: None }) };
        if !matches!(open.step, Step::Bake { .. }) {
            return Ok(Promoted::NoWindow {
                running: Some(format!("{} {} at step `{}`", op.kind.as_str(), op.id, open.step.name())),
            });
        }
        let detail = serde_json::json!({ "reason": reason.clone().unwrap_or_default(), "release": op.to });
        self.ledger.apply_unfenced(&env.name, vec![self.audit(&env.name, Some(op.id), PROMOTE, detail)])?;
        Ok(Promoted::Promoted { operation: op.id, release: op.to.0 })
    }

    /// Asks the deploy running in the environment to stop and return to the last good
    /// release, and waits until it has ended; None when what runs is not a deploy (the
    /// caller then reports the lock as usual).
    pub fn preempt(
        &self,
        env_name: &str,
        reason: Option<String>,
        progress: &mut dyn Progress,
    ) -> Result<Option<Report>> {
        let env = self.env(env_name)?;
        let Some(op) = self.ledger.running_operation(&env.name)? else { return Ok(None) };
        if op.kind != OperationKind::Deploy {
            return Ok(None);
        }
        let detail = serde_json::json!({ "reason": reason.clone().unwrap_or_default(), "release": op.to });
        self.ledger.apply_unfenced(&env.name, vec![self.audit(&env.name, Some(op.id), PREEMPT, detail)])?;
        progress.note(&format!(
            "deploy {} of release {} is running: asked it to stop at its next step boundary and return to the last good release; waiting for it",
            op.id, op.to
        ));
        loop {
            std::thread::sleep(WAIT_POLL);
            let now = self.operation(op.id)?;
            if now.outcome != Outcome::Running {
                return self.report(op.id, vec![]).map(Some);
            }
            // A deploy that died meanwhile will never read the request.
            let gone = match self.ledger.lock_info(&env.name)? {
                None => true,
                Some(l) => crate::lock::holder_gone(&self.ctx, &l),
            };
            if gone && self.operation(op.id)?.outcome == Outcome::Running {
                return Err(Error::Interrupted {
                    env: env.name.to_string(),
                    operation: op.id,
                    kind: op.kind.as_str().into(),
                    step: self.pending_step(op.id)?,
                });
            }
        }
    }
}
