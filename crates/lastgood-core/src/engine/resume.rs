//! Resume: finish an interrupted operation from the first step not done, or with
//! `--abort` return to where it started. Every step is idempotent, so re-running the
//! journal is all crash recovery needs.

use super::Engine;
use super::run::Report;
use crate::error::Result;
use crate::journal::{self, Progress};
use crate::ledger::{AuditEvent, Change};
use crate::lock;
use crate::plan::{self, Phase, Step, placement};

impl Engine {
    /// Finishes the interrupted operation, or with `abort` returns to where it started.
    /// None when nothing was interrupted.
    pub fn resume(&self, env_name: &str, abort: bool, progress: &mut dyn Progress) -> Result<Option<Report>> {
        let env = self.env(env_name)?;
        let Some(op) = self.ledger.running_operation(&env.name)? else {
            // A lock left by a dead process with no operation is cleared here too.
            if let Some(l) = self.ledger.lock_info(&env.name)? {
                if lock::holder_gone(&self.ctx, &l) {
                    let event =
                        AuditEvent::by(&self.ctx, env.name.as_str(), None, "lock.cleared", serde_json::json!({}));
                    self.ledger.force_unlock(&env.name, Some(l.epoch), event)?;
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
            if let Some(open) = self.open_step(op.id)? {
                changes.push(Change::SkipRemaining { op: op.id, from_seq: open.seq });
            }
            let verify = env.checks.is_empty() || steps.iter().any(|s| matches!(s.step, Step::Verify { .. }));
            let shape = journal::shape(&env, verify);
            let undo = match op.kind {
                crate::model::OperationKind::Restore => plan::undo_restore(shape, Some(op.to)),
                _ => plan::undo(shape, op.from),
            };
            changes.push(Change::AppendSteps { op: op.id, steps: placement::place(&env, undo, Phase::Abort, op.kind) });
        }
        self.ledger.apply(&held.fence, changes)?;
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
}
