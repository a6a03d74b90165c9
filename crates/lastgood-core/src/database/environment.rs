//! One environment's database: its URL resolved, a migrator on the right folder, backups
//! recorded in the ledger, and the linter's verdict on a plan. The journal, the engine
//! and `lastgood db` all go through here, so they agree on every rule.
//!
//! It adds no rule of its own: migrations are the [`super::migrator`]'s or the
//! [`super::tool`]'s, backups [`super::backup`]'s, verdicts [`super::verdict`]'s. This is
//! where an environment's `[database]` config is joined to them, once.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::backup::{self, BackupFile};
use super::dialect::Dialect;
use super::migrator::{Migrator, Planned};
use super::restore::Source;
use super::tool::Tool;
use super::url::DbUrl;
use super::verdict;
use super::work::{DbWork, DbWorker};
use crate::config::{self, Environment};
use crate::error::{Error, Result};

/// Verdicts are defined in a leaf module the schema tool shares; the engine, the journal
/// and the data-safety gate find them here, beside the database they judge.
pub use super::verdict::{Verdict, destructive};

pub struct EnvDatabase<'a> {
    pub env: &'a Environment,
    pub config: &'a config::Database,
    pub url: DbUrl,
    /// Where backups, restores and the connection check happen when not here (the
    /// first ssh host).
    worker: Option<Rc<dyn DbWorker>>,
}

impl<'a> EnvDatabase<'a> {
    /// None when the environment has no `[database]`.
    pub fn of(env: &'a Environment) -> Result<Option<Self>> {
        let Some(config) = env.database.as_ref() else { return Ok(None) };
        Ok(Some(Self { env, config, url: config.url.resolve()?, worker: None }))
    }

    /// The same database, its backups, restores and connection check done by `worker`.
    pub fn worked_by(self, worker: Rc<dyn DbWorker>) -> Self {
        Self { worker: Some(worker), ..self }
    }

    /// Does one piece of work here or through the worker.
    fn work(&self, work: &DbWork) -> Result<serde_json::Value> {
        match &self.worker {
            None => super::work::perform(&self.url, &self.config.backup_dir, self.config.backup_method, work)
                .map_err(|message| Error::Step { message }),
            Some(w) => w.work(work).map_err(|message| Error::Step { message: format!("on {}: {message}", w.place()) }),
        }
    }

    fn answer<T: serde::de::DeserializeOwned>(&self, work: &DbWork) -> Result<T> {
        let value = self.work(work)?;
        serde_json::from_value(value)
            .map_err(|e| Error::Step { message: format!("an answer lastgood cannot read: {e}") })
    }

    /// Reads Alembic's version table from where the database's work is done (see
    /// [`super::alembic::Alembic::read_current`]).
    pub fn version_table(&self) -> Rc<dyn super::alembic::VersionTable> {
        Rc::new(VersionRows { worker: self.worker.clone(), url: self.url.clone() })
    }

    /// Whether the database answers (from where its work is done).
    pub fn ping(&self) -> Result<()> {
        self.work(&DbWork::Ping).map(drop)
    }

    /// Whether the work happens on a host rather than here.
    pub fn remote(&self) -> bool {
        self.worker.is_some()
    }

    /// The migrations folder inside a release directory (or any folder holding the tree).
    pub fn migrations_in(&self, root: &Path) -> Option<PathBuf> {
        self.config.migrations.as_ref().map(|m| root.join(m))
    }

    pub fn migrator(&self, dir: Option<&Path>, actor: &str) -> Result<Migrator> {
        Ok(Migrator::open(&self.url, dir, &self.config.settings, actor)?)
    }

    /// The schema tool working from `root`: a release directory (or the source tree).
    /// The builtin engine reads the migrations folder inside it, when there is one, and
    /// the down SQL stored in the database otherwise; other tools run in it.
    pub fn tool(&self, root: Option<&Path>, actor: &str) -> Result<Tool> {
        match &self.config.adapter {
            crate::config::Adapter::Builtin => {
                let dir = root.and_then(|r| self.migrations_in(r)).filter(|d| d.is_dir());
                Ok(Tool::builtin(self.migrator(dir.as_deref(), actor)?))
            }
            other => {
                let mut tool = Tool::external(other, root.unwrap_or(&self.env.source), &self.url)
                    .expect("only the builtin adapter has no external tool, and it is matched above");
                tool.set_version_table(self.version_table());
                Ok(tool)
            }
        }
    }

    /// Whether deploys change this database's schema at all.
    pub fn has_migrations(config: &config::Database) -> bool {
        config.migrations.is_some() || config.adapter != config::Adapter::Builtin
    }

    /// Writes a backup named after what it protects.
    pub fn backup(&self, label: &str) -> Result<BackupFile> {
        if self.worker.is_none() {
            return Ok(backup::backup_with(&self.url, &self.config.backup_dir, label, self.config.backup_method)?);
        }
        self.answer(&DbWork::Backup { label: label.to_owned() })
    }

    /// Whether a recorded backup's data is still there (a file, or a template copy).
    pub fn backup_exists(&self, record: &crate::ledger::BackupRecord) -> bool {
        if self.worker.is_none() {
            return super::restore::exists(&self.url, &record.file);
        }
        self.answer(&DbWork::Exists { file: record.file.clone() }).unwrap_or(false)
    }

    /// Checks a restore's source where the restore will run; the source completed (a
    /// file's format, read there).
    pub fn check_source(&self, source: &Source) -> Result<Source> {
        self.answer(&DbWork::Check { source: source.clone() })
    }

    /// Restores `source` for operation `op` (see [`super::restore`]); its detail.
    pub fn restore(&self, source: &Source, op: &str) -> Result<String> {
        self.answer(&DbWork::Restore { source: source.clone(), op: op.to_owned() })
    }

    /// Drops the database a verified restore replaced.
    pub fn finish_restore(&self, op: &str) -> Result<String> {
        self.answer(&DbWork::Finish { op: op.to_owned() })
    }

    /// Puts back the database an interrupted restore replaced.
    pub fn undo_restore(&self, op: &str) -> Result<String> {
        self.answer(&DbWork::Undo { op: op.to_owned() })
    }

    /// Retention for backups: keeps the newest `backup_keep` that still exist, and one
    /// taken by the running operation whatever its age; removes the others' data (the
    /// ledger keeps their records, shown as missing). Returns what it removed, and what
    /// it could not remove with why.
    pub fn prune(
        &self,
        newest_first: &[crate::ledger::BackupRecord],
        running: Option<u64>,
    ) -> (Vec<u64>, Vec<(u64, String)>) {
        let mut kept = 0;
        let (mut removed, mut failed) = (Vec::new(), Vec::new());
        for b in newest_first {
            if !self.backup_exists(b) {
                continue;
            }
            if kept < self.config.backup_keep || (running.is_some() && b.operation == running) {
                kept += 1;
                continue;
            }
            match self.work(&DbWork::Remove { file: b.file.clone() }) {
                Ok(_) => removed.push(b.id),
                Err(e) => failed.push((b.id, e.to_string())),
            }
        }
        (removed, failed)
    }

    pub fn verdicts(&self, plan: &[Planned], dialect: Dialect) -> Vec<Verdict> {
        verdict::of_plan(plan, dialect)
    }
}

impl From<super::migrator::MigrateError> for Error {
    fn from(e: super::migrator::MigrateError) -> Self {
        Error::Migrate(Box::new(e))
    }
}
impl From<super::program::ToolError> for Error {
    fn from(e: super::program::ToolError) -> Self {
        Error::Tool(Box::new(e))
    }
}
impl From<super::backup::BackupError> for Error {
    fn from(e: super::backup::BackupError) -> Self {
        Error::Backup(Box::new(e))
    }
}

/// [`EnvDatabase::version_table`]: [`DbWork::VersionRows`] here or through the worker.
#[derive(Debug)]
struct VersionRows {
    worker: Option<Rc<dyn DbWorker>>,
    url: DbUrl,
}

impl super::alembic::VersionTable for VersionRows {
    fn rows(&self) -> Option<Vec<String>> {
        match &self.worker {
            None => super::work::version_rows(&self.url),
            Some(w) => serde_json::from_value(w.work(&DbWork::VersionRows).ok()?).ok()?,
        }
    }
}
