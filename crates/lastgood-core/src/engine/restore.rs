//! `lastgood db restore`: the emergency restore of the runbooks as one operation.
//!
//! The runbook says: stop the app, drop and recreate the database, `psql db < backup`,
//! start the app. Here that is a plan like any other (stop, restore, restart, verify,
//! then drop the database it replaced), under the environment's lock, journaled, so a
//! `kill -9` anywhere is finished by `resume` or undone by `resume --abort` (the
//! database before the restore is kept aside until the restore is verified). It asks
//! first: a restore loses every write made since the backup.

use std::path::PathBuf;

use super::Engine;
use super::preview::{self, PlanView};
use super::run::Report;
use crate::context::rfc3339;
use crate::database::environment::EnvDatabase;
use crate::database::restore::{self, RestoreError, Source};
use crate::error::{Error, Result};
use crate::journal::{self, Progress};
use crate::ledger::BackupRecord;
use crate::model::{OperationKind, Scope};
use crate::plan::{self, Phase, placement};
use crate::refusal::Refusal;
use crate::runtime::{self, Site};

/// Which data a restore puts back.
#[derive(Debug, Clone)]
pub enum RestoreFrom {
    /// The newest backup lastgood recorded.
    Newest,
    /// A recorded backup, by its id (`lastgood db backups`).
    Backup(u64),
    /// A dump or database file the team brought.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub from: RestoreFrom,
    pub reason: Option<String>,
}

impl Engine {
    /// The data a restore would put back, checked: a usage error (exit 2) for a file
    /// that is missing or not a dump.
    fn restore_source(&self, db: &EnvDatabase, from: &RestoreFrom) -> Result<(Source, Option<BackupRecord>)> {
        let env = &db.env.name;
        let usage = |e: RestoreError| Error::Usage { what: e.to_string() };
        match from {
            RestoreFrom::File(path) if db.remote() => {
                // A file on the host, where the database is (relative: to deploy_to there).
                let path = db.env.deploy_to.join(path);
                let unchecked = Source::File { path, format: restore::Format::PlainSql };
                let source = db.check_source(&unchecked).map_err(|e| Error::Usage { what: e.to_string() })?;
                Ok((source, None))
            }
            RestoreFrom::File(path) => {
                let path = std::path::absolute(path).map_err(Error::io("find", path))?;
                let format = restore::detect(&path).map_err(usage)?;
                Ok((Source::File { path, format }, None))
            }
            RestoreFrom::Newest | RestoreFrom::Backup(_) => {
                let backups = self.ledger.backups(env, 1000)?;
                let chosen = match from {
                    RestoreFrom::Backup(id) => backups.iter().find(|b| b.id == *id),
                    _ => backups.first(),
                };
                let Some(b) = chosen else {
                    return Err(Error::UnknownTarget {
                        env: env.to_string(),
                        target: match from {
                            RestoreFrom::Backup(id) => format!("backup {id}"),
                            _ => "the newest backup".into(),
                        },
                        candidates: backups
                            .iter()
                            .take(10)
                            .map(|b| format!("backup {} ({}, {})", b.id, rfc3339(b.created_at), b.file.path.display()))
                            .collect(),
                    });
                };
                Ok((Source::Backup { id: b.id, file: b.file.clone() }, Some(b.clone())))
            }
        }
    }

    /// Plans a restore; changes nothing and never refuses (a preview lists what a real
    /// run would refuse: always the confirmation, since later writes are lost).
    pub fn plan_restore(&self, env_name: &str, opts: &RestoreOptions) -> Result<PlanView> {
        let env = self.env(env_name)?;
        let db = crate::toolsite::database(&env, self.fleet(&env), None)?.ok_or_else(|| Error::Usage {
            what: format!("environment `{}` has no [environments.{}.database] section", env.name, env.name),
        })?;
        let state = self.ledger.env_state(&env.name)?;
        let current =
            state.current.map(|c| self.must_release(&env.name, c)).transpose()?.ok_or_else(|| Error::Usage {
                what: format!(
                    "nothing is deployed to `{}` yet: a restore returns a running environment's data",
                    env.name
                ),
            })?;
        let (source, record) = self.restore_source(&db, &opts.from)?;
        let mut refusals = Vec::new();
        let checked = if db.remote() {
            // Checked on the host: a file as it was read, a backup's checksum there.
            db.check_source(&source).map(drop).map_err(|e| RestoreError::State {
                what: format!("the restore's source {}", source.location()),
                detail: e.to_string(),
            })
        } else {
            restore::check(&db.url, &source)
        };
        match checked {
            Err(RestoreError::State { what, detail }) => refusals.push(Refusal::Unusable { what, detail }),
            Ok(()) => {}
            Err(e @ (RestoreError::Missing { .. } | RestoreError::Backup(_))) => {
                let what = |b: &BackupRecord| format!("backup {} ({})", b.id, self.backup_place(&env, b));
                let elsewhere = record.as_ref().and_then(|b| self.elsewhere(&env, what(b), &b.created_by));
                refusals.push(match elsewhere {
                    Some(there) => Refusal::NotReady(there),
                    None => Refusal::Unusable {
                        what: format!("the restore's source {}", source.location()),
                        detail: e.to_string(),
                    },
                })
            }
            Err(e) => return Err(Error::Usage { what: e.to_string() }),
        }
        let mut notes = Vec::new();
        let lost = match &record {
            Some(b) => {
                notes.push(format!(
                    "restores backup {} taken {} by {} ({:?}, {} bytes, schema {}), kept at {}",
                    b.id,
                    rfc3339(b.created_at),
                    b.created_by,
                    b.file.kind,
                    b.file.bytes,
                    b.schema_revision.as_deref().unwrap_or("unknown"),
                    self.backup_place(&env, b)
                ));
                if b.schema_revision != current.schema_revision {
                    notes.push(format!(
                        "WARNING: the backup's schema revision ({}) differs from the current release's ({}); {} may not run on it",
                        b.schema_revision.as_deref().unwrap_or("unknown"),
                        current.schema_revision.as_deref().unwrap_or("none"),
                        current.id
                    ));
                }
                format!("every write since the backup was taken ({}) is lost", rfc3339(b.created_at))
            }
            None => {
                if let Source::File { path, format } = &source {
                    notes.push(format!("restores {} ({})", path.display(), format.as_str()));
                }
                "every write since that dump was made is lost".to_owned()
            }
        };
        let shape = journal::shape(&env, true);
        if !shape.stoppable {
            notes.push(
                "lastgood does not run this app itself, so it cannot stop it: writes may continue until the database is swapped; the app is restarted after"
                    .into(),
            );
        }
        let aside = restore::aside(&db.url, "<operation>");
        notes.push(if shape.verify {
            format!("the database it replaces is kept aside as {aside} until the checks pass, then dropped")
        } else {
            format!("the database it replaces is kept aside as {aside}: no health checks are configured to verify the restore, so dropping it is yours")
        });
        let confirm = vec![format!("restoring replaces the whole database: {lost}")];
        refusals.push(Refusal::Unconfirmed { reasons: confirm.clone() });
        let placed = placement::place(
            &env,
            plan::restore(shape, Some(current.id), source),
            Phase::Forward,
            OperationKind::Restore,
        );
        let site = Site::local(&env);
        let rt = runtime::of(&site);
        let version = current.version.clone();
        let steps = preview::describe(rt.as_ref(), placed, |s| s.release().map(|_| version.clone()), false);
        Ok(PlanView {
            kind: OperationKind::Restore,
            environment: env.name.to_string(),
            from: Some(current.clone()),
            to: current,
            scope: Scope::Db,
            steps,
            notes,
            confirm,
            migrations: vec![],
            sql: None,
            in_place: false,
            runtime: env.runtime.name(),
            refusals,
        })
    }

    /// Runs a restore. `confirmed` answers the plan's confirmation (a terminal's yes,
    /// or `--yes`); without it the restore is refused.
    pub fn restore(
        &self,
        env_name: &str,
        opts: &RestoreOptions,
        confirmed: bool,
        progress: &mut dyn Progress,
    ) -> Result<Report> {
        let env = self.env(env_name)?;
        let view = self.plan_restore(env_name, opts)?;
        let consented = |r: &Refusal| confirmed && matches!(r, Refusal::Unconfirmed { .. });
        if let Some(refused) = view.refused(consented) {
            return Err(refused);
        }
        self.preflight_database(&env)?;
        let held = self.take_lock(&env, opts.reason.as_deref(), progress)?;
        self.refuse_interrupted(&env)?;
        let view = self.plan_restore(env_name, opts)?;
        if let Some(refused) = view.refused(consented) {
            return Err(refused);
        }
        // A restore loses the writes since its source; the confirmation consented to it.
        let new = self.new_operation(&view, opts.reason.clone(), true);
        self.execute(&env, held, new, progress)
    }
}
