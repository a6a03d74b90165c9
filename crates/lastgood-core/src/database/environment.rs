//! One environment's database: its URL resolved, a migrator on the right folder, backups
//! recorded in the ledger, and the linter's verdict on a plan. The journal, the engine
//! and `lastgood db` all go through here, so they agree on every rule.
//!
//! It adds no rule of its own: migrations are the [`super::migrator`]'s or the
//! [`super::tool`]'s, backups [`super::backup`]'s, verdicts [`super::verdict`]'s. This is
//! where an environment's `[database]` config is joined to them, once.

use std::path::{Path, PathBuf};

use super::backup::{self, BackupFile};
use super::dialect::Dialect;
use super::migrator::{Migrator, Planned};
use super::tool::Tool;
use super::url::DbUrl;
use super::verdict;
use crate::config::{self, Environment};
use crate::error::{Error, Result};

/// Verdicts are defined in a leaf module the schema tool shares; the engine, the journal
/// and the data-safety gate find them here, beside the database they judge.
pub use super::verdict::{Verdict, destructive};

pub struct EnvDatabase<'a> {
    pub env: &'a Environment,
    pub config: &'a config::Database,
    pub url: DbUrl,
}

impl<'a> EnvDatabase<'a> {
    /// None when the environment has no `[database]`.
    pub fn of(env: &'a Environment) -> Result<Option<Self>> {
        let Some(config) = env.database.as_ref() else { return Ok(None) };
        Ok(Some(Self { env, config, url: config.url.resolve()? }))
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
            other => Ok(Tool::external(other.clone(), root.unwrap_or(&self.env.source), &self.url)),
        }
    }

    /// Whether deploys change this database's schema at all.
    pub fn has_migrations(config: &config::Database) -> bool {
        config.migrations.is_some() || config.adapter != config::Adapter::Builtin
    }

    /// Writes a backup named after what it protects.
    pub fn backup(&self, label: &str) -> Result<BackupFile> {
        Ok(backup::backup_with(&self.url, &self.config.backup_dir, label, self.config.backup_method)?)
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
impl From<super::backup::BackupError> for Error {
    fn from(e: super::backup::BackupError) -> Self {
        Error::Backup(Box::new(e))
    }
}
