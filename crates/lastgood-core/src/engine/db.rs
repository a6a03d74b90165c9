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
use crate::config::Adapter;
use crate::database::alembic;
use crate::database::environment::{self, EnvDatabase, Verdict};
use crate::database::migrator::{DownTarget, Status};
pub use crate::database::tool::LintEntry;
use crate::database::tool::{Direction, Tool, ToolHistory, ToolPlan};
use crate::error::{Error, Result};
use crate::journal::Progress;
use crate::ledger::{BackupRecord, Change};
use crate::lock::LockGuard;
use crate::refusal::Refusal;
use crate::safety::{self, Consent, Migrations, Stage, Way};
use crate::toolsite;

/// What `db up` or `db down` would run, or ran.
#[derive(Debug, Clone, Serialize)]
pub struct DbPlan {
    pub database: String,
    pub migrations: Vec<Verdict>,
    pub sql: String,
    #[serde(skip)]
    pub plan: ToolPlan,
}

#[derive(Debug, Clone, Serialize)]
pub struct DbRun {
    pub plan: DbPlan,
    pub ran: Vec<String>,
    pub backup: Option<BackupRecord>,
    pub current: Option<String>,
}

/// A recorded backup, and whether its data is gone (removed by hand, by retention, or
/// a template copy dropped on the server).
#[derive(Debug, Clone)]
pub struct ListedBackup {
    pub record: BackupRecord,
    pub missing: bool,
    /// Where its data lives: `machine:path`, or the database server.
    pub place: String,
}

impl Engine {
    fn env_database<'a>(&self, env: &'a crate::config::Environment) -> Result<EnvDatabase<'a>> {
        toolsite::database(env, self.fleet(env), None)?.ok_or_else(|| Error::Usage {
            what: format!("environment `{}` has no [environments.{}.database] section", env.name, env.name),
        })
    }

    /// `--migrations DIR`, else the configured folder in `source`'s working tree.
    fn migrations_dir(&self, db: &EnvDatabase, dir: Option<&Path>) -> Option<PathBuf> {
        dir.map(Path::to_path_buf).or_else(|| db.migrations_in(&db.env.source))
    }

    /// The schema tool `lastgood db` works with. The builtin engine reads the migrations
    /// folder; an external tool runs in `source`'s working tree, or with `--migrations
    /// DIR` in DIR (its parent when DIR is Alembic's script folder beside alembic.ini).
    fn db_tool(&self, db: &EnvDatabase, dir: Option<&Path>) -> Result<Tool> {
        match db.config.adapter {
            Adapter::Builtin => {
                let dir = self.migrations_dir(db, dir);
                Ok(Tool::builtin(db.migrator(dir.as_deref(), &self.ctx.actor())?))
            }
            _ if dir.is_none() && toolsite::placed(db.env) => {
                // On the host, or in the release's container: the serving release's tool.
                let state = self.ledger.env_state(&db.env.name)?;
                let Some(current) = state.current else {
                    return Err(Error::Usage {
                        what: format!(
                            "environment `{}` runs its schema tool in a release ({}), and no release serves yet; deploy one first, or pass --migrations DIR to run it here",
                            db.env.name,
                            db.env
                                .schema_tool_service()
                                .map_or("on its first host".to_owned(), |s| format!("in its `{s}` container"))
                        ),
                    });
                };
                let release = self.must_release(&db.env.name, current)?;
                let mut tool = toolsite::tool(
                    db,
                    self.fleet(db.env),
                    vec![crate::runtime::ReleaseFacts::of(&release)],
                    None,
                    &self.ctx.actor(),
                )?;
                tool.set_vars(crate::journal::program_env(&db.env.name, &release, crate::runtime::api::LOCAL_HOST));
                Ok(tool)
            }
            _ => {
                let root = dir.map(alembic::project_dir).unwrap_or_else(|| db.env.source.clone());
                db.tool(Some(&root), &self.ctx.actor())
            }
        }
    }

    fn open_tool(&self, env_name: &str, dir: Option<&Path>) -> Result<(crate::config::Environment, Tool)> {
        let env = self.config.environment(env_name)?.clone();
        let tool = {
            let db = self.env_database(&env)?;
            self.db_tool(&db, dir)?
        };
        Ok((env, tool))
    }

    pub fn db_status(&self, env_name: &str, dir: Option<&Path>) -> Result<(String, Status)> {
        let (_, mut tool) = self.open_tool(env_name, dir)?;
        Ok((tool.describe(), tool.status()?))
    }

    /// The migrations applied (builtin), or the tool's whole history with which are
    /// applied (Alembic); newest first.
    pub fn db_history(&self, env_name: &str, dir: Option<&Path>) -> Result<(String, ToolHistory)> {
        let (_, mut tool) = self.open_tool(env_name, dir)?;
        Ok((tool.describe(), tool.history()?))
    }

    pub fn db_lint(&self, env_name: &str, dir: Option<&Path>) -> Result<Vec<LintEntry>> {
        let (_, mut tool) = self.open_tool(env_name, dir)?;
        tool.lint()
    }

    pub fn db_plan(
        &self,
        env_name: &str,
        dir: Option<&Path>,
        up: Option<Option<&str>>,
        down: Option<&DownTarget>,
    ) -> Result<DbPlan> {
        let (_, mut tool) = self.open_tool(env_name, dir)?;
        plan_with(&mut tool, up, down)
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
        let (env, mut tool) = self.open_tool(env_name, dir)?;
        let plan = plan_with(&mut tool, up, down)?;
        let destructive = environment::destructive(&plan.migrations);
        let way = if down.is_some() { Way::Down } else { Way::Up };
        let policy = self.env_database(&env)?.config.backup;
        let m_ = Migrations { way, count: plan.plan.count, destructive: &destructive };
        let clearance = safety::gate(m_, Consent::of(allow_data_loss), policy, Stage::Plan).map_err(|refusal| {
            Error::refused(env.name.to_string(), if way == Way::Down { "db down" } else { "db up" }, refusal)
        })?;
        let held = self.lock_for(&env, "db", progress)?;
        let result = (|| {
            let db = self.env_database(&env)?;
            let mut backup = None;
            if clearance.backup_first {
                progress.note("backing up the database first");
                drop(tool);
                let record = self.record_backup(&env, &db, &held, None)?;
                backup = Some(record);
                tool = self.db_tool(&db, dir)?;
            }
            let mut ran = Vec::new();
            let outcome = tool.run(&plan.plan, &mut |name, direction, took| {
                let way = if direction == Direction::Up { "up" } else { "down" };
                match took {
                    Some(d) => progress.note(&format!("{way} {name} ({} ms)", d.as_millis())),
                    None => progress.note(&format!("{way} {name}")),
                }
                ran.push(name.to_owned());
            });
            let current = tool.current().ok().flatten();
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
        let all = self.ledger().backups(&env.name, 1000)?;
        let (removed, failed) = db.prune(&all, None);
        if !removed.is_empty() || !failed.is_empty() {
            let detail = serde_json::json!({ "removed": removed, "failed": failed });
            self.ledger().apply(&held.fence, vec![self.audit(&env.name, None, "db.backup.pruned", detail)])?;
        }
        Ok(all.into_iter().next().unwrap_or(record))
    }

    pub fn db_backup(&self, env_name: &str, progress: &mut dyn Progress) -> Result<BackupRecord> {
        let env = self.config.environment(env_name)?.clone();
        let held = self.lock_for(&env, "db backup", progress)?;
        let result = (|| {
            let db = self.env_database(&env)?;
            let revision = self.db_tool(&db, None).and_then(|mut t| t.current()).ok().flatten();
            self.record_backup(&env, &db, &held, revision)
        })();
        drop(held);
        result
    }

    /// The recorded backups, newest first, each with whether its data is still there.
    pub fn db_backups(&self, env_name: &str) -> Result<Vec<ListedBackup>> {
        let env = self.config.environment(env_name)?;
        let db = self.env_database(env)?;
        Ok(self
            .ledger()
            .backups(&env.name, 100)?
            .into_iter()
            .map(|record| ListedBackup {
                missing: !db.backup_exists(&record),
                place: self.backup_place(env, &record),
                record,
            })
            .collect())
    }
}

/// What `db up` (to a revision or all) or `db down` would run.
fn plan_with(tool: &mut Tool, up: Option<Option<&str>>, down: Option<&DownTarget>) -> Result<DbPlan> {
    let plan = match (up, down) {
        (Some(to), _) => tool.plan_up(to)?,
        (None, Some(target)) => tool.plan_revert(target)?,
        (None, None) => tool.plan_up(None)?,
    };
    Ok(DbPlan { database: tool.describe(), migrations: plan.verdicts.clone(), sql: tool.preview(&plan), plan })
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
        use crate::database::rehearse::{self, RehearseError};
        // What the down path would destroy, for readiness (a backup is then needed too).
        let destructive = self
            .db_tool(&db, dir)
            .and_then(|mut t| t.plan_to(target.as_deref()))
            .map(|p| environment::destructive(&p.verdicts))
            .unwrap_or_default();
        let rehearsal = match self.db_tool(&db, dir)? {
            Tool::Builtin(m) => {
                let dir = m.migrations_dir().map(Path::to_path_buf).ok_or_else(|| Error::Usage {
                    what: "db rehearse needs a migrations folder (set `migrations` or pass --migrations DIR)".into(),
                })?;
                drop(m);
                rehearse::rehearse(&db.url, &dir, &db.config.settings, target.as_deref())
            }
            Tool::Alembic(a) => rehearse::rehearse_alembic(&db.url, &a, target.as_deref()),
            Tool::Commands(_) => {
                return Err(crate::database::program::ToolError::Unsupported {
                    command: "rehearse",
                    adapter: "command",
                    why: "the commands can only move the real database; rehearse with your own tooling",
                }
                .into());
            }
        };
        let rehearsal = rehearsal.map_err(|e| match e {
            RehearseError::Migrate(m) => m.into(),
            RehearseError::Tool(t) => t.into(),
            other => Error::Step { message: other.to_string() },
        })?;
        // The evidence of the serving release's way back (its readiness reads it).
        let serving = match self.ledger().env_state(&env.name)?.current {
            Some(c) => self.must_release(&env.name, c)?.operation,
            None => None,
        };
        self.record_rehearsal(&env, serving, &rehearsal, &destructive)?;
        Ok(rehearsal)
    }
}

impl Engine {
    /// What a real `db down` of this plan would refuse (a preview lists it instead).
    pub fn db_refusals(&self, env_name: &str, plan: &DbPlan, allow_data_loss: bool) -> Result<Vec<Refusal>> {
        let env = self.config.environment(env_name)?.clone();
        let policy = self.env_database(&env)?.config.backup;
        let destructive = environment::destructive(&plan.migrations);
        let m = Migrations { way: Way::Down, count: plan.plan.count, destructive: &destructive };
        Ok(safety::gate(m, Consent::of(allow_data_loss), policy, Stage::Plan)
            .err()
            .map(Refusal::from)
            .into_iter()
            .collect())
    }
}
