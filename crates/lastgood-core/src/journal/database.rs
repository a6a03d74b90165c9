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
use crate::database::restore;
use crate::database::tool::{Direction, Tool, ToolPlan};
use crate::error::{Error, Result};
use crate::ledger::{BackupRecord, Change, Release};
use crate::model::ReleaseId;
use crate::runtime::{self, ReleaseFacts, Site};
use crate::safety::{self, Consent, Migrations, Stage, Way};
use crate::toolsite;

/// What a return to a release would revert.
pub(super) struct Downs {
    pub count: Option<usize>,
    pub destructive: Vec<String>,
}

impl Journal<'_> {
    pub(super) fn backup_step(&self, release: ReleaseId) -> Result<(String, Vec<Change>)> {
        let db = self.database()?;
        let revision = self.newest_tool(&db)?.current().ok().flatten();
        Ok((self.backup_now(&db, release, revision)?, vec![]))
    }

    /// A deploy's migrations (to the newest revision in the release's files), or a
    /// return to a newer release's recorded revision: from the release's own directory,
    /// which knows the revisions it brings (its release directory, or the tree a
    /// pipeline runtime exported for it).
    pub(super) fn migrate_up(&self, release: ReleaseId) -> Result<(String, Vec<Change>)> {
        let target = self.release(release)?.schema_revision;
        let db = self.database()?;
        let mut tool = if toolsite::placed(self.env) {
            self.placed_tool(&db, &[release])?
        } else {
            let site = Site::local(self.env);
            db.tool(runtime::of(&site).tree(release).as_deref(), &self.ctx.actor())?
        };
        tool.set_vars(self.tool_vars(release, target.as_deref())?);
        let plan = match &target {
            None => tool.plan_up(None)?,
            Some(rev) => tool.plan_to(Some(rev))?,
        };
        // Where the way back returns (Alembic's answer is the one its plan just read).
        let before = match tool {
            Tool::Alembic(_) if !plan.is_empty() => tool.current()?,
            _ => None,
        };
        let (mut notes, revision) = self.move_schema(&db, &mut tool, &plan, release)?;
        if !plan.is_empty() && plan.direction == Direction::Up {
            notes.push_str(&way_back_note(tool.way_back(revision.as_deref(), before.as_deref())));
        }
        // The schema is the release's now, and its code serves or is about to.
        Ok((notes, vec![Change::SetSchemaRevision { release, revision }, Change::SetSchemaAhead(0)]))
    }

    /// A return to the release's recorded revision, from the newest release's files.
    /// Usually a revert; when the release is newer than the schema (a rollback "forward",
    /// an abort after one), the tool's own positions make it an upgrade instead.
    pub(super) fn migrate_down(&self, release: ReleaseId) -> Result<(String, Vec<Change>)> {
        let target = self.release(release)?.schema_revision;
        let db = self.database()?;
        let mut tool = self.newest_tool(&db)?;
        tool.set_vars(self.tool_vars(release, target.as_deref())?);
        let plan = tool.plan_to(target.as_deref())?;
        let (notes, _) = self.move_schema(&db, &mut tool, &plan, release)?;
        Ok((notes, vec![Change::SetSchemaAhead(0)]))
    }

    /// Runs a planned move through the data-safety gate (asked again here, whatever
    /// path led to the step), backing up first when it says so; the notes and the
    /// revision the schema is at afterwards.
    fn move_schema(
        &self,
        db: &EnvDatabase,
        tool: &mut Tool,
        plan: &ToolPlan,
        release: ReleaseId,
    ) -> Result<(String, Option<String>)> {
        let way = Way::from(plan.direction);
        let destructive = environment::destructive(&plan.verdicts);
        let m = Migrations { way, count: plan.count, destructive: &destructive };
        let clearance = safety::gate(m, Consent::of(self.op.allow_data_loss), db.config.backup, self.stage()?)
            .map_err(|refusal| self.refused(refusal))?;
        let mut notes = Vec::new();
        if clearance.backup_first {
            let detail = self.backup_now(db, release, tool.current()?)?;
            if way == Way::Up && !destructive.is_empty() {
                notes.push(format!("{detail} first: {} is destructive", destructive.join(", ")));
            } else {
                notes.push(format!("{detail} first"));
            }
        }
        let moved = tool.run(plan, &mut |_, _, _| {})?;
        let revision = tool.reached(plan)?;
        notes.push(format!(
            "{} {} migration(s); schema at {}",
            if way == Way::Up { "applied" } else { "reverted" },
            moved.map(|n| n.to_string()).unwrap_or_else(|| if way == Way::Up { "the pending" } else { "the" }.into()),
            revision.as_deref().unwrap_or("none")
        ));
        Ok((notes.join("; "), revision))
    }

    /// Puts the source's data in place of the database (a resumed step finishes what a
    /// crash left; see [`crate::database::restore`]).
    pub(super) fn restore_database(&self, source: &restore::Source) -> Result<(String, Vec<Change>)> {
        let db = self.database()?;
        let detail = if db.remote() {
            db.restore(source, &self.restore_key())?
        } else {
            restore::restore(&db.url, source, &self.restore_key()).map_err(restore_failed)?
        };
        let event = self.audit("db.restore", serde_json::json!({ "source": source, "detail": detail }));
        Ok((detail, vec![event]))
    }

    pub(super) fn finish_restore(&self) -> Result<(String, Vec<Change>)> {
        let db = self.database()?;
        if db.remote() {
            return Ok((db.finish_restore(&self.restore_key())?, vec![]));
        }
        Ok((restore::finish(&db.url, &self.restore_key()).map_err(restore_failed)?, vec![]))
    }

    pub(super) fn undo_restore(&self) -> Result<(String, Vec<Change>)> {
        let db = self.database()?;
        if db.remote() {
            return Ok((db.undo_restore(&self.restore_key())?, vec![]));
        }
        Ok((restore::undo(&db.url, &self.restore_key()).map_err(restore_failed)?, vec![]))
    }

    /// What names this operation's restore copies (the database kept aside, the fresh
    /// one loaded): its id and start time, unique across ledgers that number their
    /// operations alike.
    fn restore_key(&self) -> String {
        format!("{}_{:x}", self.op.id, self.op.started_at)
    }

    /// What a return to `target` would revert.
    pub(super) fn downs_to(&self, target: &Release) -> Result<Downs> {
        let Some(db) = toolsite::database(self.env, self.fleet.clone(), Some(self.fence.epoch))? else {
            return Ok(Downs { count: Some(0), destructive: vec![] });
        };
        let mut tool = self.newest_tool(&db)?;
        let plan = tool.plan_to(target.schema_revision.as_deref())?;
        // Going up to the target reverts nothing, whatever its ups do.
        if plan.direction == Direction::Up {
            return Ok(Downs { count: Some(0), destructive: vec![] });
        }
        Ok(Downs { count: plan.count, destructive: environment::destructive(&plan.verdicts) })
    }

    /// What a schema tool gets for a move to `release`'s schema: the release's variables
    /// (`LASTGOOD_VERSION`, `LASTGOOD_RELEASE`, `LASTGOOD_COMMIT`, ...) and the revision
    /// it moves to (`LASTGOOD_TARGET_REVISION`, empty for the newest a tree holds).
    fn tool_vars(&self, release: ReleaseId, target: Option<&str>) -> Result<Vec<(String, String)>> {
        let mut vars = super::program_env(&self.env.name, &self.release(release)?, super::LOCAL_HOST);
        vars.push(("LASTGOOD_TARGET_REVISION".into(), target.unwrap_or_default().to_owned()));
        Ok(vars)
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

    /// The schema tool of the newest release that may have migrated the database: the
    /// newest of the one serving, the two this operation moves between (a deploy's
    /// new release, a rollback's newer target or its starting point after a switch) and
    /// one whose migrations stay applied ahead of the code, that is there (its directory, or its images). Its files know every revision the
    /// others ran, and how to undo its own.
    fn newest_tool(&self, db: &EnvDatabase) -> Result<Tool> {
        let current = self.ledger.env_state(&self.env.name)?.current;
        let ahead = self.ledger.schema_ahead_release(&self.env.name)?;
        let mut releases: Vec<ReleaseId> =
            [current, Some(self.op.to), self.op.from, ahead].into_iter().flatten().collect();
        releases.sort_unstable_by(|a, b| b.cmp(a));
        releases.dedup();
        if toolsite::placed(self.env) {
            return self.placed_tool(db, &releases);
        }
        let site = Site::local(self.env);
        let rt = runtime::of(&site);
        let root: Option<PathBuf> = releases.into_iter().filter_map(|r| rt.tree(r)).find(|d| d.is_dir());
        db.tool(root.as_deref(), &self.ctx.actor())
    }

    /// The schema tool run on the first host or in a container, by the first of
    /// `releases` that can there; fenced by this operation's epoch.
    fn placed_tool(&self, db: &EnvDatabase, releases: &[ReleaseId]) -> Result<Tool> {
        let candidates =
            releases.iter().map(|r| self.release(*r).map(|r| ReleaseFacts::of(&r))).collect::<Result<_>>()?;
        toolsite::tool(db, self.fleet.clone(), candidates, Some(self.fence.epoch), &self.ctx.actor())
    }

    /// Takes a backup and records it at once (it must survive whatever fails after it),
    /// then applies the retention for backups.
    fn backup_now(&self, db: &EnvDatabase, release: ReleaseId, revision: Option<String>) -> Result<String> {
        let label = format!("{}-op{}-{}", self.env.name, self.op.id, now_ms());
        let file = db.backup(&label)?;
        let mut detail =
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
        self.ledger.apply(&self.fence, vec![Change::RecordBackup(record)])?;
        let (removed, failed) = db.prune(&self.ledger.backups(&self.env.name, 1000)?, Some(self.op.id));
        if !removed.is_empty() || !failed.is_empty() {
            let event = self.audit("db.backup.pruned", serde_json::json!({ "removed": removed, "failed": failed }));
            self.ledger.apply(&self.fence, vec![event])?;
            if !removed.is_empty() {
                detail.push_str(&format!("; removed {} older backup(s) beyond backup_keep", removed.len()));
            }
        }
        Ok(detail)
    }

    fn database(&self) -> Result<EnvDatabase<'_>> {
        toolsite::database(self.env, self.fleet.clone(), Some(self.fence.epoch))?.ok_or_else(|| Error::Step {
            message: format!("environment `{}` has no [database] section", self.env.name),
        })
    }
}

fn restore_failed(e: restore::RestoreError) -> Error {
    Error::Step { message: e.to_string() }
}

/// What the deploy learnt of the way back it just prepared (see [`Tool::way_back`]): a
/// way back that cannot be previewed now is a finding for the operator, not a failure
/// of the move that ran.
fn way_back_note(back: Result<Option<ToolPlan>>) -> String {
    match back {
        Ok(Some(plan)) if !plan.is_empty() => {
            let destructive = environment::destructive(&plan.verdicts);
            format!(
                "; the way back previewed: {} revision(s) down{}",
                plan.count.unwrap_or(0),
                if destructive.is_empty() {
                    String::new()
                } else {
                    format!(", destructive: {}", destructive.join(", "))
                }
            )
        }
        Ok(_) => String::new(),
        Err(e) => format!("; the way back could not be previewed: {e}"),
    }
}
