//! What each step does: the one place that reads a [`Step`] and decides its action
//! (performed where the step's `host` column says, by an [`crate::executor::Executor`])
//! and the ledger changes that record it once it is done. Local and fleet steps go
//! through the same arm; only the dispatch differs.

use super::{Journal, release_vars};
use crate::action::{Action, FileContent};
use crate::config::Start;
use crate::error::{Error, Result};
use crate::executor::{self, Payload};
use crate::ledger::{Change, StepRecord};
use crate::model::{OperationKind, ReleaseId};
use crate::plan::{Phase, Step};
use crate::runtime::{Activation, ReleaseFacts};
use crate::verify;

/// How many recent releases' commits a reset may drop without asking (their commits
/// and deploy commits): far more than `keep_releases`, and one indexed read.
const KNOWN_RELEASES: usize = 200;

impl Journal<'_> {
    /// Applies one step; returns its detail and the ledger changes that record its effect.
    pub(super) fn apply(&mut self, rec: &StepRecord) -> Result<(String, Vec<Change>)> {
        let env = self.env;
        match &rec.step {
            Step::Export { release, commit } => {
                let action = Action::Export { release: *release, commit: commit.to_string() };
                let detail = self.perform(rec, &action, Payload::Tree { source: &env.source, commit })?;
                Ok((detail, vec![Change::SetArtifact { release: *release, present: true }]))
            }
            Step::Build { release } => {
                let Some(argv) = &env.build else { return Ok(("no build configured".into(), vec![])) };
                let log = format!("build-{}.log", release.0);
                Ok((self.run_program(rec, *release, argv, log)?, vec![]))
            }
            Step::Switch { release } => {
                let detail = self.perform(rec, &Action::Activate(self.activation(rec, *release)?), Payload::None)?;
                let mut changes = self.switched(rec, *release)?;
                // A GitOps switch leaves the branch at a commit: the release's deploy commit.
                let site = crate::runtime::Site::local(env);
                if let Some(commit) = crate::runtime::of(&site).deploy_commit(!self.ships(rec)) {
                    if let Ok(commit) = crate::model::CommitId::parse(&commit) {
                        changes.push(Change::SetDeployCommit { release: *release, commit });
                    }
                }
                Ok((detail, changes))
            }
            Step::RestoreConfig { release } => {
                let r = self.release(*release)?;
                let mut files = Vec::new();
                for file in &env.config_files {
                    let Some(sha) = r.config.get(&file.name) else { continue };
                    let content = self.ledger.blob(sha)?.ok_or_else(|| Error::Ledger {
                        path: self.ledger.describe(),
                        message: format!("the snapshot {sha} of {} is missing", file.name),
                    })?;
                    files.push(FileContent {
                        name: file.name.clone(),
                        path: file.path.clone(),
                        shared: env.config_files_shared(),
                        sha256: sha.clone(),
                        content,
                    });
                }
                let detail = self.perform(rec, &Action::Write { files }, Payload::None)?;
                Ok((detail, vec![Change::SetConfigRelease(Some(*release))]))
            }
            Step::Restart { release, service } => {
                let detail = match &env.start {
                    Start::Run(argv) if env.proxy.is_some() => {
                        let vars = release_vars(&env.name, &self.release(*release)?);
                        let fresh = self.restarts_in_place();
                        let action = Action::StartBeside { release: *release, argv: argv.clone(), vars, fresh };
                        self.perform(rec, &action, Payload::None)?
                    }
                    Start::Run(argv) => {
                        let vars = release_vars(&env.name, &self.release(*release)?);
                        let action = Action::Start { release: *release, argv: argv.clone(), vars };
                        self.perform(rec, &action, Payload::None)?
                    }
                    Start::Restart(argv) => self.run_program(rec, *release, argv, "restart.log".into())?,
                    Start::Nothing => {
                        let activation = self.activation(rec, *release)?;
                        self.perform(rec, &Action::Restart { activation, service: service.clone() }, Payload::None)?
                    }
                };
                Ok((detail, vec![]))
            }
            Step::Stop => Ok((self.stop(rec)?, vec![])),
            Step::Unlink => {
                let detail = self.perform(rec, &Action::Deactivate, Payload::None)?;
                Ok((detail, vec![Change::SetCurrent(None), Change::SetConfigRelease(None)]))
            }
            Step::Verify { release } => Ok((self.check(rec, *release)?, vec![])),
            Step::Bake { release, window_ms } => self.bake(rec, *release, *window_ms),
            Step::Route { release } => {
                Ok((self.perform(rec, &Action::Route { release: *release }, Payload::None)?, vec![]))
            }
            Step::Retire { release } => {
                Ok((self.perform(rec, &Action::Retire { release: *release }, Payload::None)?, vec![]))
            }
            Step::Cleanup => {
                let (remove, changes) = self.retention()?;
                if remove.is_empty() {
                    return Ok(("nothing to remove".into(), vec![]));
                }
                let detail = self.perform(rec, &Action::Remove { releases: remove }, Payload::None)?;
                Ok((detail, changes))
            }
            Step::Backup { release } => self.backup_step(*release),
            Step::MigrateUp { release } => self.migrate_up(*release),
            Step::MigrateDown { release } => self.migrate_down(*release),
            Step::RestoreDatabase { source } => self.restore_database(source),
            Step::FinishRestore => self.finish_restore(),
            Step::UndoRestore => self.undo_restore(),
        }
    }

    /// Stops the app before migrations go down (or a restore): lastgood's own process,
    /// the `stop` program, or the runtime's services except the database's.
    fn stop(&self, rec: &StepRecord) -> Result<String> {
        let env = self.env;
        if let Start::Run(_) = env.start {
            return self.perform(rec, &Action::Stop, Payload::None);
        }
        let Some(current) = self.ledger.env_state(&env.name)?.current else {
            return Ok("nothing serves: nothing to stop".into());
        };
        if let Some(argv) = &env.stop {
            return self.run_program(rec, current, argv, "stop.log".into());
        }
        let activation = self.activation(rec, current)?;
        let keep = env.database.as_ref().and_then(|d| d.service.clone());
        self.perform(rec, &Action::Halt { activation, keep }, Payload::None)
    }

    /// Carries an action to where the step runs.
    fn perform(&self, rec: &StepRecord, action: &Action, payload: Payload<'_>) -> Result<String> {
        self.executor(&rec.host)?.perform(&rec.host, action, payload, self.fence.epoch)
    }

    /// Runs one of the user's programs (`build`, `restart`) in the release's folder.
    fn run_program(&self, rec: &StepRecord, release: ReleaseId, argv: &[String], log: String) -> Result<String> {
        let vars = release_vars(&self.env.name, &self.release(release)?);
        let action = Action::Run { release, argv: argv.to_vec(), vars, log };
        self.perform(rec, &action, Payload::None)
    }

    /// What the runtime is asked to do to make `release` serve.
    fn activation(&self, rec: &StepRecord, release: ReleaseId) -> Result<Activation> {
        let r = self.release(release)?;
        // What lastgood may have left serving: the ledger's current release and, on the
        // way back, the release this operation was switching to.
        let current = self.ledger.env_state(&self.env.name)?.current;
        let mut may_serve = vec![current];
        if !self.ships(rec) {
            may_serve.extend([Some(self.op.to), self.op.from]);
        }
        let mut expected = Vec::new();
        for id in may_serve.into_iter().flatten().filter(|c| *c != release) {
            let v = self.release(id)?.version;
            if !expected.contains(&v) {
                expected.push(v);
            }
        }
        Ok(Activation {
            release: ReleaseFacts::of(&r),
            expected,
            operation: self.op.id,
            kind: self.op.kind,
            back: !self.ships(rec),
            actor: self.ctx.actor(),
            reason: self.op.reason.clone(),
            vars: release_vars(&self.env.name, &r),
            protect: self.ledger.schema_ahead_release(&self.env.name)?.into_iter().collect(),
            known: self
                .ledger
                .releases(&self.env.name, KNOWN_RELEASES)?
                .iter()
                .flat_map(|r| [r.commit.as_ref(), r.deploy_commit.as_ref()])
                .flatten()
                .map(|c| c.as_str().to_owned())
                .collect(),
            current: current == Some(release),
        })
    }

    /// Whether a restart must start the release's process anew even when it runs
    /// (behind a proxy, a process already running is otherwise kept): `lastgood
    /// restart`, and a rollback that stays on the same release (its config files or its
    /// schema changed under it, and the app reads them when it starts).
    fn restarts_in_place(&self) -> bool {
        self.op.kind == OperationKind::Restart
            || (self.op.kind == OperationKind::Rollback && self.op.from == Some(self.op.to))
    }

    /// This step ships a new release (a deploy's own path), rather than returning to one.
    fn ships(&self, rec: &StepRecord) -> bool {
        self.op.kind == OperationKind::Deploy && rec.phase == Phase::Forward
    }

    /// The ledger changes of a switch. On a fleet rolled out in waves, `current` moves
    /// with the last wave of the phase, so it never names a release the whole fleet
    /// does not run once the operation has ended.
    fn switched(&self, rec: &StepRecord, release: ReleaseId) -> Result<Vec<Change>> {
        let later = self
            .ledger
            .steps(self.op.id)?
            .iter()
            .any(|s| s.seq > rec.seq && s.phase == rec.phase && matches!(s.step, Step::Switch { .. }));
        if later {
            return Ok(vec![]);
        }
        let mut effects = vec![Change::SetCurrent(Some(release))];
        // Without config files of its own, the config in place follows the code; a
        // deploy snapshots the files in place, so they are its own.
        let config_follows = self.env.config_files.is_empty() && self.op.scope.includes_config();
        if config_follows || self.ships(rec) {
            effects.push(Change::SetConfigRelease(Some(release)));
        }
        Ok(effects)
    }

    /// Runs the health checks against the release wherever the step names, from here.
    fn check(&mut self, rec: &StepRecord, release: ReleaseId) -> Result<String> {
        let r = self.release(release)?;
        let env = self.env;
        let run = |host: &str, cwd: &std::path::Path, port: Option<u16>| super::check_release(env, &r, host, cwd, port);
        let results = self.executor(&rec.host)?.check(&rec.host, release, &run)?;
        let mut verdicts = Vec::new();
        for (place, outcomes) in results {
            let verdict =
                verify::summary(&outcomes).map_err(|e| executor::Failure { detail: e.to_string(), fenced: false });
            self.checks.extend(outcomes);
            verdicts.push((place, verdict));
        }
        executor::summarize(verdicts)
            .map_err(|failed| executor::into_error(env.name.as_str(), self.fence.epoch, failed))
    }
}
