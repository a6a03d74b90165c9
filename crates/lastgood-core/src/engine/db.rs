//! `lastgood db ...`: the database on its own, outside a deploy or rollback.
//!
//! These use the migrations folder in `source`'s working tree (or `--migrations DIR`),
//! take the environment's lock for anything that changes the database (so they never
//! run beside a deploy; Alembic and friends have no lock of their own), refuse to run
//! over an interrupted operation, and write audit events. A destructive down needs
//! `--allow-data-loss` and runs only after a backup taken by the same command.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Engine;
use crate::database::driver::Applied;
use crate::database::environment::{self, EnvDatabase, Verdict};
use crate::database::lint::{self, Lint};
use crate::database::migrator::{DownTarget, Migrator, Planned, Status};
use crate::error::{Error, Result};
use crate::journal::Progress;
use crate::ledger::{BackupRecord, Change};
use crate::lock::LockGuard;
use crate::safety::{self, Consent, Migrations, Stage, Way};

/// What `db up` or `db down` would run, or ran.
#[derive(Debug, Clone, Serialize)]
pub struct DbPlan {
    pub database: String,
    pub migrations: Vec<Verdict>,
    pub sql: String,
    #[serde(skip)]
    pub planned: Vec<Planned>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DbRun {
    pub plan: DbPlan,
    pub ran: Vec<String>,
    pub backup: Option<BackupRecord>,
    pub current: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LintEntry {
    pub version: String,
    pub name: String,
    pub up: Lint,
    /// None when the migration has no down script.
    pub down: Option<Lint>,
}

impl Engine {
    fn env_database<'a>(&self, env: &'a crate::config::Environment) -> Result<EnvDatabase<'a>> {
        EnvDatabase::of(env)?.ok_or_else(|| Error::Usage {
            what: format!("environment `{}` has no [environments.{}.database] section", env.name, env.name),
        })
    }

    /// `--migrations DIR`, else the configured folder in `source`'s working tree.
    fn migrations_dir(&self, db: &EnvDatabase, dir: Option<&Path>) -> Option<PathBuf> {
        dir.map(Path::to_path_buf).or_else(|| db.migrations_in(&db.env.source))
    }

    fn open_migrator(&self, env_name: &str, dir: Option<&Path>) -> Result<(crate::config::Environment, Migrator)> {
        let env = self.config.environment(env_name)?.clone();
        if let Some(db) = &env.database {
            if db.adapter != crate::config::Adapter::Builtin {
                return Err(Error::Usage {
                    what: format!(
                        "environment `{}` migrates with its own tool (adapter = {}): use that tool for this; lastgood drives it in deploys and rollbacks, and `lastgood db status` shows its revision",
                        env.name,
                        match db.adapter {
                            crate::config::Adapter::Alembic(_) => "alembic",
                            _ => "command",
                        }
                    ),
                });
            }
        }
        let m = {
            let db = self.env_database(&env)?;
            let dir = self.migrations_dir(&db, dir);
            db.migrator(dir.as_deref(), &self.ctx.actor())?
        };
        Ok((env, m))
    }

    pub fn db_status(&self, env_name: &str, dir: Option<&Path>) -> Result<(String, Status)> {
        let env = self.config.environment(env_name)?.clone();
        let db = self.env_database(&env)?;
        if db.config.adapter != crate::config::Adapter::Builtin {
            // The tool keeps its own history: lastgood reports its current revision.
            let site = crate::runtime::Site::local(&env);
            let rt = crate::runtime::of(&site);
            let root = self.ledger().env_state(&env.name)?.current.map(|c| rt.workdir(c));
            let current = db.tool(root.as_deref().filter(|d| d.is_dir()), &self.ctx.actor())?.current()?;
            let status =
                Status { current: current.map(|c| (c.clone(), c)), applied: 0, pending: 0, migrations: Vec::new() };
            return Ok((db.url.to_string(), status));
        }
        let (_, mut m) = self.open_migrator(env_name, dir)?;
        Ok((m.describe(), m.status()?))
    }

    pub fn db_history(&self, env_name: &str) -> Result<(String, Vec<Applied>)> {
        let (_, mut m) = self.open_migrator(env_name, None)?;
        let mut applied = m.applied()?;
        applied.reverse();
        Ok((m.describe(), applied))
    }

    pub fn db_lint(&self, env_name: &str, dir: Option<&Path>) -> Result<Vec<LintEntry>> {
        let (_, m) = self.open_migrator(env_name, dir)?;
        let dialect = m.dialect();
        Ok(m.files()
            .iter()
            .map(|f| LintEntry {
                version: f.version.clone(),
                name: f.name.clone(),
                up: lint::classify(&f.up, dialect),
                down: f.down.as_deref().map(|d| lint::classify(d, dialect)),
            })
            .collect())
    }

    pub fn db_plan(
        &self,
        env_name: &str,
        dir: Option<&Path>,
        up: Option<Option<&str>>,
        down: Option<&DownTarget>,
    ) -> Result<DbPlan> {
        let (env, mut m) = self.open_migrator(env_name, dir)?;
        self.plan_with(&env, &mut m, up, down)
    }

    fn plan_with(
        &self,
        env: &crate::config::Environment,
        m: &mut Migrator,
        up: Option<Option<&str>>,
        down: Option<&DownTarget>,
    ) -> Result<DbPlan> {
        let planned = match (up, down) {
            (Some(to), _) => m.plan_up(to)?,
            (None, Some(target)) => m.plan_down(target)?,
            (None, None) => Vec::new(),
        };
        let db = self.env_database(env)?;
        Ok(DbPlan {
            database: m.describe(),
            migrations: db.verdicts(&planned, m.dialect()),
            sql: m.preview(&planned),
            planned,
        })
    }

    /// Runs `db up` or `db down` under the environment's lock.
    pub fn db_run(
        &self,
        env_name: &str,
        dir: Option<&Path>,
        up: Option<Option<&str>>,
        down: Option<&DownTarget>,
        allow_data_loss: bool,
        progress: &mut dyn Progress,
    ) -> Result<DbRun> {
        // One connection plans and runs (it is closed only for a template backup, which
        // needs the database to itself).
        let (env, mut m) = self.open_migrator(env_name, dir)?;
        let plan = self.plan_with(&env, &mut m, up, down)?;
        let destructive = environment::destructive(&plan.migrations);
        let way = if down.is_some() { Way::Down } else { Way::Up };
        let policy = self.env_database(&env)?.config.backup;
        let m_ = Migrations { way, count: Some(plan.planned.len()), destructive: &destructive };
        let clearance = safety::gate(m_, Consent::of(allow_data_loss), policy, Stage::Plan).map_err(|refusal| {
            Error::refused(env.name.to_string(), if way == Way::Down { "db down" } else { "db up" }, refusal)
        })?;
        let held = self.lock_for(&env, "db", progress)?;
        let result = (|| {
            let db = self.env_database(&env)?;
            let mut backup = None;
            if clearance.backup_first {
                progress.note("backing up the database first");
                drop(m);
                let record = self.record_backup(&env, &db, &held, None)?;
                backup = Some(record);
                let dir = self.migrations_dir(&db, dir);
                m = db.migrator(dir.as_deref(), &self.ctx.actor())?;
            }
            let mut ran = Vec::new();
            let outcome = m.run(&plan.planned, &mut |p, d| {
                progress.note(&format!("{:?} {} ({} ms)", p.direction, p.name, d.as_millis()).to_lowercase());
                ran.push(p.name.clone());
            });
            let current = m.current().ok().flatten();
            self.ledger().apply(
                &held.fence,
                vec![self.audit(
                    &env.name,
                    None,
                    if way == Way::Down { "db.down" } else { "db.up" },
                    serde_json::json!({
                        "ran": ran, "current": current, "error": outcome.as_ref().err().map(|e| e.to_string()),
                    }),
                )],
            )?;
            outcome?;
            Ok(DbRun { plan, ran, backup, current })
        })();
        drop(held);
        result
    }

    fn record_backup(
        &self,
        env: &crate::config::Environment,
        db: &EnvDatabase,
        held: &LockGuard<'_>,
        revision: Option<String>,
    ) -> Result<BackupRecord> {
        let label = format!("{}-manual-{}", env.name, crate::context::now_ms());
        let file = db.backup(&label)?;
        let record = BackupRecord {
            id: 0,
            operation: None,
            release: None,
            file,
            schema_revision: revision,
            created_at: self.ctx.now(),
            created_by: self.ctx.actor(),
        };
        self.ledger().apply(&held.fence, vec![Change::RecordBackup(record.clone())])?;
        Ok(self.ledger().backups(&env.name, 1)?.into_iter().next().unwrap_or(record))
    }

    pub fn db_backup(&self, env_name: &str, progress: &mut dyn Progress) -> Result<BackupRecord> {
        let env = self.config.environment(env_name)?.clone();
        let held = self.lock_for(&env, "db backup", progress)?;
        let result = (|| {
            let db = self.env_database(&env)?;
            let revision = db.migrator(None, &self.ctx.actor()).and_then(|mut m| Ok(m.current()?)).ok().flatten();
            self.record_backup(&env, &db, &held, revision)
        })();
        drop(held);
        result
    }

    pub fn db_backups(&self, env_name: &str) -> Result<Vec<BackupRecord>> {
        let env = self.config.environment(env_name)?;
        self.ledger().backups(&env.name, 100)
    }

    /// Restores a recorded backup (the newest when `id` is None) over the database.
    pub fn db_restore(&self, env_name: &str, id: Option<u64>, progress: &mut dyn Progress) -> Result<BackupRecord> {
        let env = self.config.environment(env_name)?.clone();
        let backups = self.ledger().backups(&env.name, 1000)?;
        let chosen = match id {
            None => backups.first().cloned(),
            Some(id) => backups.iter().find(|b| b.id == id).cloned(),
        }
        .ok_or_else(|| Error::UnknownTarget {
            env: env.name.to_string(),
            target: id.map(|i| format!("backup {i}")).unwrap_or_else(|| "the newest backup".into()),
            candidates: backups
                .iter()
                .take(10)
                .map(|b| format!("backup {} ({})", b.id, b.file.path.display()))
                .collect(),
        })?;
        let held = self.lock_for(&env, "db restore", progress)?;
        let result = (|| {
            let db = self.env_database(&env)?;
            let took = crate::database::backup::restore(&db.url, &chosen.file)?;
            self.ledger().apply(
                &held.fence,
                vec![self.audit(
                    &env.name,
                    None,
                    "db.restore",
                    serde_json::json!({ "backup": chosen.id, "ms": took.as_millis() as u64 }),
                )],
            )?;
            Ok(chosen.clone())
        })();
        drop(held);
        result
    }
}

impl Engine {
    /// Rehearses the rollback path on scratch databases: down to `to` (a revision, `0`
    /// for none), by default to the last good release's schema revision.
    pub fn db_rehearse(
        &self,
        env_name: &str,
        to: Option<&str>,
        dir: Option<&Path>,
    ) -> Result<crate::database::rehearse::Rehearsal> {
        let env = self.config.environment(env_name)?.clone();
        let db = self.env_database(&env)?;
        if db.config.adapter != crate::config::Adapter::Builtin {
            return Err(Error::Usage {
                what: "db rehearse drives lastgood's builtin engine; with another adapter, rehearse with that tool"
                    .into(),
            });
        }
        let dir = self.migrations_dir(&db, dir).ok_or_else(|| Error::Usage {
            what: "db rehearse needs a migrations folder (set `migrations` or pass --migrations DIR)".into(),
        })?;
        let target = match to {
            Some("0") => None,
            Some(rev) => Some(rev.to_owned()),
            None => {
                let current = self.ledger().env_state(&env.name)?.current;
                let good = self.ledger().last_good(&env.name, current)?.ok_or_else(|| Error::Usage {
                    what: format!("`{}` has no last good release to rehearse a rollback to; pass --to REV", env.name),
                })?;
                good.schema_revision
            }
        };
        crate::database::rehearse::rehearse(&db.url, &dir, &db.config.settings, target.as_deref()).map_err(
            |e| match e {
                crate::database::rehearse::RehearseError::Migrate(m) => m.into(),
                other => Error::Step { message: other.to_string() },
            },
        )
    }
}
