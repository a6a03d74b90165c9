//! When a step fails: the policy that decides what happens next, for every runtime.
//!
//! A deploy that fails after something moved (the code switched, or migrations
//! committed) returns to the last good release by itself, unless told not to
//! (`--no-auto-rollback`): the rollback steps are appended to the same journal, so a
//! crash during the automatic rollback resumes into it. A switch that failed counts as
//! "maybe switched" whenever the runtime's switch is not atomic (containers half
//! replaced, a pipeline that may have run, a push that may have landed, some hosts of a
//! fleet moved): the return then switches back too, which is a no-op where nothing
//! moved. The data-safety gate decides whether the schema can go back with it.
//!
//! A fleet with `on_failure = "halt"` instead stops at the failed step and leaves the
//! operation for `lastgood resume` or `resume --abort`.

use super::{Journal, shape};
use crate::config::{BackupPolicy, OnFailure};
use crate::error::Result;
use crate::ledger::{Change, Release, StepRecord, StepState};
use crate::model::{OperationKind, Scope};
use crate::plan::placement::{self, LOCAL};
use crate::plan::{self, Phase, Step};
use crate::runtime::{self, NotReady, ReleaseFacts, Site};
use crate::safety::{self, Consent, Stage, Way};

impl Journal<'_> {
    /// Whether a failed step halts the operation (`on_failure = "halt"` on a fleet's
    /// forward path) instead of failing it.
    pub(super) fn halts(&self, rec: &StepRecord) -> bool {
        rec.host != LOCAL && rec.phase == Phase::Forward && self.env.rollout.on_failure == OnFailure::Halt
    }

    /// Whether a failed step may have moved what serves anyway.
    fn maybe_switched(&self, failed: &StepRecord) -> bool {
        matches!(failed.step, Step::Switch { .. })
            && (failed.host != LOCAL || !runtime::of(&Site::local(self.env)).atomic())
    }

    /// A failed step: decide whether to return to the last good release; the steps that
    /// do, placed on their hosts.
    pub(super) fn on_failure(
        &mut self,
        failed: &StepRecord,
        steps: &[StepRecord],
    ) -> Result<Option<Vec<(Step, Phase, String)>>> {
        let deploy = self.op.kind == OperationKind::Deploy;
        let maybe_switched = self.maybe_switched(failed);
        let switched = maybe_switched
            || steps.iter().any(|s| {
                s.phase == Phase::Forward && matches!(s.step, Step::Switch { .. }) && s.state == StepState::Done
            });
        // A failed migration run may have committed some of its migrations: the
        // schema moved even though the code did not.
        let migrated = steps.iter().any(|s| {
            s.phase == Phase::Forward
                && matches!(s.step, Step::MigrateUp { .. })
                && matches!(s.state, StepState::Done | StepState::Failed)
        });
        // Stopping the old release's process failed after the new one took the traffic:
        // the new release serves and passed its checks; going back would not help.
        let retiring = matches!(failed.step, Step::Retire { .. });
        if !deploy || failed.phase != Phase::Forward || !(switched || migrated) || retiring {
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
        if let Err(why) = self.ready(&good) {
            self.progress.note(&format!("cannot return to the last good release {}: {why}", good.id));
            return Ok(None);
        }
        let shape = shape(self.env, self.verify);
        let mut schema =
            plan::SchemaChange { migrate_down: shape.migrations && migrated, backup: false, ..Default::default() };
        let mut ahead = None;
        if schema.migrate_down {
            match self.downs_to(&good) {
                Ok(downs) => {
                    let m = safety::Migrations { way: Way::Down, count: downs.count, destructive: &downs.destructive };
                    let policy = self.env.database.as_ref().map_or(BackupPolicy::Auto, |d| d.backup);
                    if let Err(refusal) = safety::gate(m, Consent::Automatic, policy, Stage::Plan) {
                        // Nobody is there to consent to losing data, and a release known
                        // to be broken must not keep serving: code and config go back,
                        // the schema stays ahead (expand/contract: the older code runs on
                        // the newer, additive schema), and an operator reverts it later
                        // with consent.
                        schema.migrate_down = false;
                        let n = downs.count.unwrap_or(downs.destructive.len()) as u32;
                        self.progress.note(&format!(
                            "returning to {} with code and config only: {refusal}; the schema stays ahead of the code by {n} migration(s) until `lastgood rollback {} --scope db --allow-data-loss` reverts them",
                            good.id, self.env.name
                        ));
                        ahead = Some((n, refusal));
                    }
                }
                Err(e) => {
                    self.progress
                        .note(&format!("not returning to {} by itself: cannot plan its migrations: {e}", good.id));
                    return Ok(None);
                }
            }
        }
        if let Some((n, refusal)) = ahead {
            let event = self.audit(
                "schema.left_ahead",
                serde_json::json!({ "count": n, "release": good.id, "migrations": refusal.migrations() }),
            );
            self.ledger.apply(&self.fence, vec![event, Change::SetSchemaAhead(n)])?;
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
        if maybe_switched || !self.env.hosts.is_empty() {
            // Something may have moved before the ledger's `current` did (a switch that
            // failed half way; on a fleet, `current` moves with the last wave): switch
            // back everywhere; where nothing moved, that is a no-op.
            current = Some(self.op.to);
        }
        let steps = plan::rollback(shape, current, good.id, Scope::Full, schema);
        Ok(Some(placement::place(self.env, steps, Phase::Rollback, self.op.kind)))
    }

    /// Whether the automatic rollback can return to `good`. A fleet's hosts are checked
    /// when the rollback steps run on them.
    fn ready(&self, good: &Release) -> std::result::Result<(), NotReady> {
        if self.env.hosts.is_empty() {
            runtime::of(&Site::local(self.env)).ready(&ReleaseFacts::of(good))
        } else if good.artifact {
            Ok(())
        } else {
            Err(NotReady::DirectoryGone {
                release: good.id,
                version: good.version.clone(),
                path: crate::runtime::releases::release_dir(&self.env.deploy_to, good.id),
            })
        }
    }
}
