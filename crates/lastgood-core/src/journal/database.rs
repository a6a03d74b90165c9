//! The database steps of an operation: backup, migrate up, migrate down, each through
//! the data-safety gate ([`crate::safety`]), which is asked again here whatever path
//! led to the step (a plan, an automatic rollback, a resume, an abort).
//!
//! Migrations run from the newest release that may have migrated the database: its
//! files know how to undo what it applied (the builtin engine also has every applied
//! migration's down SQL in its bookkeeping).

use std::path::PathBuf;

use super::Journal;
use crate::context::now_ms;
use crate::database::environment::{self, EnvDatabase};
use crate::error::{Error, Result};
use crate::ledger::{BackupRecord, Change, Release};
use crate::model::{OperationKind, ReleaseId};
use crate::runtime::{self, Site};
use crate::safety::{self, Consent, Migrations, Stage, Way};

/// What a return to a release would revert.
pub(super) struct Downs {
    pub count: Option<usize>,
    pub destructive: Vec<String>,
}

impl Journal<'_> {
    pub(super) fn backup_step(&self, release: ReleaseId) -> Result<(String, Vec<Change>)> {
        let db = self.database()?;
        let revision = db.tool(self.newest_root()?.as_deref(), &self.ctx.actor())?.current().ok().flatten();
        let (detail, change) = self.take_backup(&db, release, revision)?;
        Ok((detail, vec![change]))
    }

    pub(super) fn migrate_up(&self, release: ReleaseId) -> Result<(String, Vec<Change>)> {
        let db = self.database()?;
        let root = runtime::of(&Site::local(self.env)).workdir(release);
        let mut tool = db.tool(Some(&root), &self.ctx.actor())?;
        let plan = tool.plan_up()?;
        let destructive = environment::destructive(&plan.verdicts);
        let mut notes = Vec::new();
        let m = Migrations { way: Way::Up, count: plan.count, destructive: &destructive };
        let clearance = safety::gate(m, Consent::of(self.op.allow_data_loss), db.config.backup, self.stage()?)
            .map_err(|refusal| self.refused(refusal))?;
        if clearance.backup_first {
            let (detail, change) = self.take_backup(&db, release, tool.current()?)?;
            notes.push(format!("{detail} first: {} is destructive", destructive.join(", ")));
            // Record the backup before migrating: it must survive a failure below.
            self.ledger.apply(&self.fence, vec![change])?;
        }
        let moved = tool.run(&plan)?;
        let revision = tool.current()?;
        notes.push(format!(
            "applied {} migration(s); schema at {}",
            moved.map(|n| n.to_string()).unwrap_or_else(|| "the pending".into()),
            revision.as_deref().unwrap_or("none")
        ));
        Ok((notes.join("; "), vec![Change::SetSchemaRevision { release, revision }]))
    }

    pub(super) fn migrate_down(&self, release: ReleaseId) -> Result<(String, Vec<Change>)> {
        let target = self.release(release)?.schema_revision;
        let db = self.database()?;
        let mut tool = db.tool(self.newest_root()?.as_deref(), &self.ctx.actor())?;
        let plan = tool.plan_down(target.as_deref())?;
        let destructive = environment::destructive(&plan.verdicts);
        let m = Migrations { way: Way::Down, count: plan.count, destructive: &destructive };
        let clearance = safety::gate(m, Consent::of(self.op.allow_data_loss), db.config.backup, self.stage()?)
            .map_err(|refusal| self.refused(refusal))?;
        let mut notes = Vec::new();
        if clearance.backup_first {
            let (detail, change) = self.take_backup(&db, release, tool.current()?)?;
            notes.push(format!("{detail} first"));
            self.ledger.apply(&self.fence, vec![change])?;
        }
        let moved = tool.run(&plan)?;
        let now = tool.current()?;
        notes.push(format!(
            "reverted {} migration(s); schema at {}",
            moved.map(|n| n.to_string()).unwrap_or_else(|| "the".into()),
            now.as_deref().unwrap_or("none")
        ));
        Ok((notes.join("; "), vec![]))
    }

    /// What a return to `target` would revert.
    pub(super) fn downs_to(&self, target: &Release) -> Result<Downs> {
        let Some(db) = EnvDatabase::of(self.env)? else { return Ok(Downs { count: Some(0), destructive: vec![] }) };
        let mut tool = db.tool(self.newest_root()?.as_deref(), &self.ctx.actor())?;
        let plan = tool.plan_down(target.schema_revision.as_deref())?;
        Ok(Downs { count: plan.count, destructive: environment::destructive(&plan.verdicts) })
    }

    /// The stage the gate is asked at: the migrations run now, with the backups this
    /// operation took so far.
    fn stage(&self) -> Result<Stage> {
        let taken = self.ledger.backups(&self.env.name, 50)?.iter().filter(|b| b.operation == Some(self.op.id)).count();
        Ok(Stage::Run { backups_taken: taken })
    }

    fn refused(&self, refusal: crate::refusal::DataLoss) -> Error {
        Error::refused(self.env.name.to_string(), "the migration step", refusal)
    }

    /// The directory of the newest release that may have migrated the database: the
    /// one this operation deployed if it got that far, else the one serving. Its files
    /// know how to undo what it applied.
    fn newest_root(&self) -> Result<Option<PathBuf>> {
        let current = self.ledger.env_state(&self.env.name)?.current;
        let newest = match (self.op.kind, current) {
            (OperationKind::Deploy, Some(c)) => Some(c.max(self.op.to)),
            (OperationKind::Deploy, None) => Some(self.op.to),
            (OperationKind::Rollback, c) => c,
        };
        let site = Site::local(self.env);
        let rt = runtime::of(&site);
        Ok(newest.map(|c| rt.workdir(c)).filter(|d| d.is_dir()))
    }

    fn take_backup(&self, db: &EnvDatabase, release: ReleaseId, revision: Option<String>) -> Result<(String, Change)> {
        let label = format!("{}-op{}-{}", self.env.name, self.op.id, now_ms());
        let file = db.backup(&label)?;
        let detail =
            format!("backed up to {} ({} bytes, sha256 {})", file.path.display(), file.bytes, &file.sha256[..12]);
        let record = BackupRecord {
            id: 0,
            operation: Some(self.op.id),
            release: Some(release),
            file,
            schema_revision: revision,
            created_at: self.ctx.now(),
            created_by: self.ctx.actor(),
        };
        Ok((detail, Change::RecordBackup(record)))
    }

    fn database(&self) -> Result<EnvDatabase<'_>> {
        EnvDatabase::of(self.env)?.ok_or_else(|| Error::Step {
            message: format!("environment `{}` has no [database] section", self.env.name),
        })
    }
}
