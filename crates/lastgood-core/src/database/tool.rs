//! The schema tool of an environment: lastgood's builtin migration engine, Alembic, or
//! a team's own commands, behind one interface so that deploy, rollback and
//! `lastgood db` treat them alike.
//!
//! This file only dispatches: the builtin engine is [`super::migrator`], Alembic is
//! [`super::alembic`], running a program is [`super::program`]. What it adds is the
//! shape they share: a [`ToolPlan`] (which way, which migrations, their SQL and the
//! linter's verdicts) and the answers of `db status`, `db history` and `db lint`.
//!
//! Two ways of asking for a move exist, on purpose. `lastgood db up|down` says which
//! way ([`Tool::plan_up`], [`Tool::plan_revert`]) and a revision on the wrong side is
//! bad input. Deploys, rollbacks and resumes ask to be at a release's recorded
//! revision ([`Tool::plan_to`]), and the tool's own positions decide the way: a newer
//! release's revision is reached by going up, never by a "downgrade" to it.
//!
//! External tools run in a release directory (a rollback runs the NEWER release's
//! files, which know how to undo their migrations) with `DATABASE_URL` set exactly as
//! written in the config, never in argv, and under lastgood's environment lock, since
//! Alembic has no lock of its own. Plain commands cannot be previewed, so their downs
//! count as destructive: unknown is treated as destructive.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::alembic::{Alembic, History};
use super::dialect::Dialect;
use super::driver::Applied;
use super::lint::{self, Class, Lint};
pub use super::migrator::Direction;
use super::migrator::{DownTarget, MigrationState, Migrator, Planned, Status};
use super::program::{Program, ToolError};
use super::url::DbUrl;
use super::verdict::{self, Verdict};
use crate::config::Adapter;
use crate::error::Result;

/// One at a time per operation: the size difference between the variants (an external
/// tool carries the database URL) does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Tool {
    Builtin(Migrator),
    Alembic(Alembic),
    Commands(Commands),
}

/// `adapter = "command"`: the team's `current`, `up` and `down_to` programs.
pub struct Commands {
    current: Vec<String>,
    up: Vec<String>,
    down_to: Vec<String>,
    program: Program,
    dialect: Dialect,
    shown: String,
}

/// What `up` or `down` would do.
#[derive(Debug, Clone)]
pub struct ToolPlan {
    pub direction: Direction,
    /// The revision the move ends at (None: the beginning, or the newest for an up).
    pub target: Option<String>,
    pub verdicts: Vec<Verdict>,
    /// Exactly what runs, when the tool can say.
    pub sql: Option<String>,
    /// How many migrations move (None when the tool cannot say).
    pub count: Option<usize>,
    /// The migrations that move, in running order (when the tool can say).
    pub names: Vec<String>,
    planned: Vec<Planned>,
}

impl ToolPlan {
    pub fn is_empty(&self) -> bool {
        self.count == Some(0)
    }

    fn nothing(direction: Direction, target: Option<String>) -> Self {
        Self { direction, target, verdicts: vec![], sql: None, count: Some(0), names: vec![], planned: vec![] }
    }
}

/// `lastgood db lint`: one migration's up and down, judged.
#[derive(Debug, Clone, Serialize)]
pub struct LintEntry {
    pub version: String,
    pub name: String,
    pub up: Lint,
    /// None when the migration has no down script.
    pub down: Option<Lint>,
}

/// One revision of an external tool's history, and whether the database has it.
#[derive(Debug, Clone, Serialize)]
pub struct RevisionState {
    pub version: String,
    pub name: String,
    pub message: String,
    /// The revisions it follows (none for the first, several for a merge).
    pub parents: Vec<String>,
    pub head: bool,
    pub applied: bool,
}

/// `lastgood db history`: the builtin engine's bookkeeping rows, or the tool's own
/// history; newest first either way.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ToolHistory {
    Applied(Vec<Applied>),
    Revisions(Vec<RevisionState>),
}

/// Called after each migration that ran: its name, way and time (None when the tool
/// runs several at once and does not say).
pub type OnDone<'a> = dyn FnMut(&str, Direction, Option<Duration>) + 'a;

impl Tool {
    /// The variables an external tool gets for the release it moves to (the builtin
    /// engine runs no program and needs none).
    pub fn set_vars(&mut self, vars: Vec<(String, String)>) {
        match self {
            Self::Builtin(_) => {}
            Self::Alembic(a) => a.set_vars(vars),
            Self::Commands(c) => c.program.set_vars(vars),
        }
    }

    /// Runs an external tool's programs through `runner` (on a host, in a container);
    /// the builtin engine runs in lastgood and has none.
    pub fn set_runner(&mut self, runner: std::rc::Rc<dyn super::program::Runner>) {
        match self {
            Self::Builtin(_) => {}
            Self::Alembic(a) => a.program_mut().set_runner(runner),
            Self::Commands(c) => c.program.set_runner(runner),
        }
    }

    /// Lets Alembic's plans read where the database is from its version table
    /// (`alembic current` costs a container start where Alembic runs in one).
    pub fn set_version_table(&mut self, table: std::rc::Rc<dyn super::alembic::VersionTable>) {
        if let Self::Alembic(a) = self {
            a.set_version_table(table);
        }
    }

    pub fn builtin(m: Migrator) -> Self {
        Self::Builtin(m)
    }

    /// An external tool working in `cwd` (the builtin adapter is [`Tool::builtin`]).
    pub fn external(adapter: &Adapter, cwd: &Path, url: &DbUrl) -> Option<Self> {
        match adapter {
            Adapter::Builtin => None,
            Adapter::Alembic(argv) => Some(Self::Alembic(Alembic::new(argv, cwd, url))),
            Adapter::Command { current, up, down_to } => {
                let (dialect, secret) = match url {
                    DbUrl::Postgres(p) => (Dialect::Postgres, p.password().map(str::to_owned)),
                    DbUrl::Sqlite(_) => (Dialect::Sqlite, None),
                };
                let env_url = match url {
                    DbUrl::Postgres(p) => p.expose().to_owned(),
                    DbUrl::Sqlite(path) => format!("sqlite:///{}", path.display()),
                };
                Some(Self::Commands(Commands {
                    current: current.clone(),
                    up: up.clone(),
                    down_to: down_to.clone(),
                    program: Program::new(cwd, env_url, secret),
                    dialect,
                    shown: url.to_string(),
                }))
            }
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Builtin(m) => m.dialect(),
            Self::Alembic(a) => a.dialect(),
            Self::Commands(c) => c.dialect,
        }
    }

    /// The database, its password masked.
    pub fn describe(&self) -> String {
        match self {
            Self::Builtin(m) => m.describe(),
            Self::Alembic(a) => a.describe(),
            Self::Commands(c) => c.shown.clone(),
        }
    }

    fn adapter(&self) -> &'static str {
        match self {
            Self::Builtin(_) => "builtin",
            Self::Alembic(_) => "alembic",
            Self::Commands(_) => "command",
        }
    }

    fn unsupported(&self, command: &'static str, why: &'static str) -> ToolError {
        ToolError::Unsupported { command, adapter: self.adapter(), why }
    }

    pub fn current(&mut self) -> Result<Option<String>> {
        match self {
            Self::Builtin(m) => Ok(m.current()?),
            Self::Alembic(a) => Ok(a.current()?),
            Self::Commands(c) => c.current(),
        }
    }

    /// The revision the schema is at after `plan` ran without an error. Alembic exits
    /// 0 only once it stamped the plan's target, so that is where it is, without
    /// another run of the tool (a container start, where it runs in one); the others
    /// are asked.
    pub fn reached(&mut self, plan: &ToolPlan) -> Result<Option<String>> {
        match (&*self, &plan.target) {
            (Self::Alembic(_), Some(target)) if target != "heads" && target != "head" => Ok(Some(target.clone())),
            _ => self.current(),
        }
    }

    /// `db status`: the current revision, what is applied and what is pending.
    pub fn status(&mut self) -> Result<Status> {
        match self {
            Self::Builtin(m) => Ok(m.status()?),
            Self::Alembic(a) => {
                let history = a.history()?;
                let current = a.current()?;
                let applied = history.applied(current.as_deref());
                let mut migrations: Vec<MigrationState> = history
                    .revisions()
                    .iter()
                    .map(|r| MigrationState {
                        version: r.id.clone(),
                        name: r.label(),
                        state: if applied.contains(&r.id) { "applied" } else { "pending" },
                        applied_at: None,
                        has_down: true,
                    })
                    .collect();
                migrations.reverse();
                let n = migrations.iter().filter(|m| m.state == "applied").count();
                Ok(Status {
                    current: current.map(|c| {
                        let name = history.get(&c).map(|r| r.label()).unwrap_or_else(|| c.clone());
                        (c, name)
                    }),
                    applied: n,
                    pending: migrations.len() - n,
                    migrations,
                })
            }
            // The commands say where the schema is, not what they hold.
            Self::Commands(c) => Ok(Status {
                current: c.current()?.map(|c| (c.clone(), c)),
                applied: 0,
                pending: 0,
                migrations: Vec::new(),
            }),
        }
    }

    /// `db history`, newest first.
    pub fn history(&mut self) -> Result<ToolHistory> {
        match self {
            Self::Builtin(m) => {
                let mut applied = m.applied()?;
                applied.reverse();
                Ok(ToolHistory::Applied(applied))
            }
            Self::Alembic(a) => {
                let history = a.history()?;
                let applied = history.applied(a.current()?.as_deref());
                Ok(ToolHistory::Revisions(
                    history
                        .revisions()
                        .iter()
                        .map(|r| RevisionState {
                            version: r.id.clone(),
                            name: r.label(),
                            message: r.message.clone(),
                            parents: r.parents.clone(),
                            head: r.head,
                            applied: applied.contains(&r.id),
                        })
                        .collect(),
                ))
            }
            Self::Commands(_) => Err(self
                .unsupported("history", "the current/up/down_to commands keep no history lastgood can read")
                .into()),
        }
    }

    /// `db lint`: every migration's up and down, oldest first.
    pub fn lint(&mut self) -> Result<Vec<LintEntry>> {
        match self {
            Self::Builtin(m) => {
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
            Self::Alembic(a) => {
                let history = a.history()?;
                Ok(a.lint_all(&history)?
                    .into_iter()
                    .map(|(r, up, down)| LintEntry { version: r.id.clone(), name: r.label(), up, down })
                    .collect())
            }
            Self::Commands(_) => Err(self.unsupported("lint", "the SQL of the commands cannot be previewed").into()),
        }
    }

    /// `db up`: the pending migrations, up to `to` (None: all).
    pub fn plan_up(&mut self, to: Option<&str>) -> Result<ToolPlan> {
        let dialect = self.dialect();
        match self {
            Self::Builtin(m) => {
                let planned = m.plan_up(to)?;
                Ok(builtin_plan(m, planned, Direction::Up, to, dialect))
            }
            Self::Alembic(a) => {
                let (history, current) = (a.history()?, a.current()?);
                let target = history.resolve(to.unwrap_or("head"), a.dir())?;
                let plan = alembic_plan(a, &history, current.as_deref(), target)?;
                if plan.direction == Direction::Down && !plan.is_empty() {
                    return Err(ToolError::Direction {
                        what: format!(
                            "Alembic revision {} is below the database's {}: `lastgood db down --to` reverts to it",
                            to.unwrap_or("head"),
                            current.as_deref().unwrap_or("base")
                        ),
                    }
                    .into());
                }
                Ok(plan)
            }
            Self::Commands(c) => c.plan(Direction::Up, None, dialect),
        }
    }

    /// `db down`: revert to a revision, or the newest N.
    pub fn plan_revert(&mut self, target: &DownTarget) -> Result<ToolPlan> {
        let dialect = self.dialect();
        match self {
            Self::Builtin(m) => {
                let planned = m.plan_down(target)?;
                let to = match target {
                    DownTarget::To(rev) if rev != "0" => Some(rev.as_str()),
                    _ => None,
                };
                Ok(builtin_plan(m, planned, Direction::Down, to, dialect))
            }
            Self::Alembic(a) => {
                let (history, current) = (a.history()?, a.current()?);
                // Alembic refuses `downgrade -1 --sql`: steps become a revision first.
                let resolved = match target {
                    DownTarget::Steps(n) => history.steps_below(current.as_deref(), *n)?,
                    DownTarget::To(rev) => history.resolve(rev, a.dir())?,
                };
                let plan = alembic_plan(a, &history, current.as_deref(), resolved)?;
                if plan.direction == Direction::Up && !plan.is_empty() {
                    let DownTarget::To(rev) = target else { unreachable!("steps only go down") };
                    return Err(ToolError::Direction {
                        what: format!(
                            "Alembic revision {rev} is not applied (the database is at {}): `lastgood db up --to {rev}` applies it",
                            current.as_deref().unwrap_or("base")
                        ),
                    }
                    .into());
                }
                Ok(plan)
            }
            Self::Commands(c) => match target {
                DownTarget::To(rev) => c.plan(Direction::Down, Some(rev.as_str()).filter(|r| *r != "0"), dialect),
                DownTarget::Steps(_) => Err(ToolError::Unsupported {
                    command: "down --steps",
                    adapter: "command",
                    why: "the commands cannot say which revision is N below; use --to REV",
                }
                .into()),
            },
        }
    }

    /// A deploy, rollback or resume: be at `target` (None: no migrations at all), the
    /// schema revision a release recorded. The way follows from where the database is.
    pub fn plan_to(&mut self, target: Option<&str>) -> Result<ToolPlan> {
        let dialect = self.dialect();
        match self {
            Self::Builtin(m) => {
                let applied = m.applied()?;
                let ahead = target.is_some_and(|t| {
                    !applied.iter().any(|a| a.version == t) && m.files().iter().any(|f| f.version == t)
                });
                if ahead {
                    let planned = m.plan_up(target)?;
                    return Ok(builtin_plan(m, planned, Direction::Up, target, dialect));
                }
                let planned = m.plan_down_to_revision(target)?;
                Ok(builtin_plan(m, planned, Direction::Down, target, dialect))
            }
            Self::Alembic(a) => {
                let history = a.history()?;
                let target = match target {
                    Some(t) => history.resolve(t, a.dir())?,
                    None => None,
                };
                if let Some(plan) = plan_from_table(a, &history, target.as_deref()) {
                    return Ok(plan);
                }
                let current = a.current()?;
                alembic_plan(a, &history, current.as_deref(), target)
            }
            Self::Commands(c) => c.plan(Direction::Down, target, dialect),
        }
    }

    /// The plan of the way back from `from` (where a move just left the schema) to
    /// `to` (where it was), asked of the release that made the move while it is at
    /// hand: Alembic's offline SQL of the downgrade, judged. The place that ran it keeps
    /// it (`crate::toolcache`), so the rollback that needs it later plans without
    /// starting the tool. None for the tools that cannot preview a move.
    pub fn way_back(&mut self, from: Option<&str>, to: Option<&str>) -> Result<Option<ToolPlan>> {
        match self {
            Self::Alembic(a) if from != to => {
                let history = a.history()?;
                Ok(Some(alembic_plan(a, &history, from, to.map(str::to_owned))?))
            }
            _ => Ok(None),
        }
    }

    /// Exactly what `plan` runs, as text (`--sql`).
    pub fn preview(&self, plan: &ToolPlan) -> String {
        match (self, &plan.sql) {
            (Self::Builtin(m), _) => m.preview(&plan.planned),
            (_, Some(sql)) => sql.clone(),
            (_, None) if plan.is_empty() => {
                format!("-- nothing to run: the schema is at {}\n", plan.target.as_deref().unwrap_or("base"))
            }
            (_, None) => "-- the commands' SQL cannot be previewed\n".to_owned(),
        }
    }

    /// Runs the plan; returns how many migrations moved, when known.
    pub fn run(&mut self, plan: &ToolPlan, on_done: &mut OnDone<'_>) -> Result<Option<usize>> {
        if plan.is_empty() {
            return Ok(Some(0));
        }
        match self {
            Self::Builtin(m) => {
                let mut n = 0;
                m.run(&plan.planned, &mut |p, d| {
                    n += 1;
                    on_done(&p.name, p.direction, Some(d));
                })?;
                Ok(Some(n))
            }
            Self::Alembic(a) => {
                // One Alembic run moves every revision of the plan; it says nothing per
                // revision that lastgood could time.
                a.migrate(plan.direction, plan.target.as_deref())?;
                for name in &plan.names {
                    on_done(name, plan.direction, None);
                }
                Ok(plan.count)
            }
            Self::Commands(c) => {
                match plan.direction {
                    Direction::Up => c.program.run(&c.up, &[])?,
                    Direction::Down => c.program.run(
                        &c.down_to,
                        &[("LASTGOOD_TARGET_REVISION".to_owned(), plan.target.clone().unwrap_or_default())],
                    )?,
                };
                Ok(None)
            }
        }
    }
}

fn builtin_plan(
    m: &Migrator,
    planned: Vec<Planned>,
    direction: Direction,
    target: Option<&str>,
    dialect: Dialect,
) -> ToolPlan {
    ToolPlan {
        direction,
        target: target.map(str::to_owned),
        verdicts: verdict::of_plan(&planned, dialect),
        sql: if planned.is_empty() { None } else { Some(m.preview(&planned)) },
        count: Some(planned.len()),
        names: planned.iter().map(|p| p.name.clone()).collect(),
        planned,
    }
}

/// The plan from where lastgood read the version table to be, without `alembic
/// current`, when Alembic's own SQL for that move starts from that row of that table
/// ([`alembic::moves_from`]); None otherwise (Alembic is then asked). A move of nothing
/// has no SQL to confirm it, so it is never planned from a reading alone.
fn plan_from_table(a: &Alembic, history: &History, target: Option<&str>) -> Option<ToolPlan> {
    let read = a.read_current(history)?;
    if target == Some(read.as_str()) {
        return None;
    }
    let plan = alembic_plan(a, history, Some(&read), target.map(str::to_owned)).ok()?;
    let confirmed = plan.sql.as_deref().is_some_and(|sql| super::alembic::moves_from(sql, &read, a.dialect()));
    confirmed.then(|| {
        a.confirm_current(&read);
        plan
    })
}

/// The move from `current` to `target` in Alembic's history, with Alembic's offline SQL
/// for it and the linter's verdict on each revision.
fn alembic_plan(a: &Alembic, history: &History, current: Option<&str>, target: Option<String>) -> Result<ToolPlan> {
    let route = history.route(current, target.as_deref())?;
    if route.revisions.is_empty() {
        return Ok(ToolPlan::nothing(route.direction, target));
    }
    let sql = a.offline_sql(route.direction, current, target.as_deref())?;
    Ok(ToolPlan {
        direction: route.direction,
        verdicts: a.verdicts(&route, &sql),
        sql: Some(sql),
        count: Some(route.revisions.len()),
        names: route.revisions.iter().map(|r| r.label()).collect(),
        target,
        planned: Vec::new(),
    })
}

impl Commands {
    fn current(&self) -> Result<Option<String>> {
        let out = self.program.run(&self.current, &[])?;
        let v = out.trim();
        Ok(if v.is_empty() { None } else { Some(v.to_owned()) })
    }

    fn plan(&self, direction: Direction, target: Option<&str>, dialect: Dialect) -> Result<ToolPlan> {
        let current = self.current()?;
        if direction == Direction::Down && current.as_deref() == target {
            return Ok(ToolPlan::nothing(direction, target.map(str::to_owned)));
        }
        let lint = match direction {
            Direction::Up => Lint { class: Class::Safe, findings: vec![], data_changes: vec![] },
            Direction::Down => lint::classify("-- a command whose SQL cannot be previewed\nUNKNOWN COMMAND", dialect),
        };
        Ok(ToolPlan {
            direction,
            target: target.map(str::to_owned),
            verdicts: vec![Verdict {
                name: match direction {
                    Direction::Up => "the up command (its SQL cannot be previewed)".into(),
                    Direction::Down => "the down_to command (its SQL cannot be previewed)".into(),
                },
                direction,
                lint,
            }],
            sql: None,
            count: None,
            names: Vec::new(),
            planned: Vec::new(),
        })
    }
}
