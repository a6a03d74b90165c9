//! The schema tool of an environment: lastgood's builtin migration engine, or the
//! tool a team already has (Alembic, or its own commands), behind one interface so
//! that deploy, rollback and `lastgood db` treat them alike.
//!
//! External tools run in a release directory (a rollback runs the NEWER release's
//! files, which know how to undo their migrations) with `DATABASE_URL` set exactly as
//! written in the config, never in argv. They run under lastgood's environment lock,
//! since Alembic has no lock of its own. Alembic's plans are linted from its own
//! offline SQL (`downgrade <current>:<target> --sql`; it refuses `-1 --sql`). Plain
//! commands cannot be previewed, so their downs count as destructive: unknown is
//! treated as destructive.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::dialect::Dialect;
use super::lint::{self, Class, Lint};
use super::migrator::{Direction, Migrator, Planned};
use super::sql;
use super::url::DbUrl;
use super::verdict::{self, Verdict};
use crate::config::Adapter;
use crate::error::{Error, Result};

pub enum Tool {
    Builtin(Migrator),
    External(External),
}

pub struct External {
    adapter: Adapter,
    cwd: PathBuf,
    url: DbUrl,
}

/// What `up` or `down` would do.
pub struct ToolPlan {
    pub direction: Direction,
    /// The revision a down goes to (None: the beginning).
    pub target: Option<String>,
    pub verdicts: Vec<Verdict>,
    /// Exactly what runs, when the tool can say.
    pub sql: Option<String>,
    /// How many migrations move (None when the tool cannot say).
    pub count: Option<usize>,
    planned: Vec<Planned>,
}

impl ToolPlan {
    pub fn is_empty(&self) -> bool {
        self.count == Some(0)
    }
}

impl Tool {
    pub fn builtin(m: Migrator) -> Self {
        Self::Builtin(m)
    }

    pub fn external(adapter: Adapter, cwd: &Path, url: &DbUrl) -> Self {
        Self::External(External { adapter, cwd: cwd.to_path_buf(), url: url.clone() })
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Builtin(m) => m.dialect(),
            Self::External(e) => match e.url {
                DbUrl::Postgres(_) => Dialect::Postgres,
                DbUrl::Sqlite(_) => Dialect::Sqlite,
            },
        }
    }

    pub fn current(&mut self) -> Result<Option<String>> {
        match self {
            Self::Builtin(m) => Ok(m.current()?),
            Self::External(e) => e.current(),
        }
    }

    pub fn plan_up(&mut self) -> Result<ToolPlan> {
        let dialect = self.dialect();
        match self {
            Self::Builtin(m) => {
                let planned = m.plan_up(None)?;
                Ok(builtin_plan(m, planned, Direction::Up, None, dialect))
            }
            Self::External(e) => e.plan(Direction::Up, None, dialect),
        }
    }

    /// Reverting everything applied after `target` (None: everything).
    pub fn plan_down(&mut self, target: Option<&str>) -> Result<ToolPlan> {
        let dialect = self.dialect();
        match self {
            Self::Builtin(m) => {
                let planned = m.plan_down_to_revision(target)?;
                Ok(builtin_plan(m, planned, Direction::Down, target, dialect))
            }
            Self::External(e) => e.plan(Direction::Down, target, dialect),
        }
    }

    /// Runs the plan; returns how many migrations moved, when known.
    pub fn run(&mut self, plan: &ToolPlan) -> Result<Option<usize>> {
        match self {
            Self::Builtin(m) => {
                let mut n = 0;
                m.run(&plan.planned, &mut |_, _| n += 1)?;
                Ok(Some(n))
            }
            Self::External(e) => {
                e.run(plan)?;
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
    let verdicts = verdict::of_plan(&planned, dialect);
    ToolPlan {
        direction,
        target: target.map(str::to_owned),
        verdicts,
        sql: if planned.is_empty() { None } else { Some(m.preview(&planned)) },
        count: Some(planned.len()),
        planned,
    }
}

impl External {
    fn env(&self) -> Vec<(String, String)> {
        let url = match &self.url {
            DbUrl::Postgres(p) => p.expose().to_owned(),
            DbUrl::Sqlite(path) => format!("sqlite:///{}", path.display()),
        };
        vec![("DATABASE_URL".to_owned(), url)]
    }

    /// Runs one of the tool's commands in the release directory; stdout on success.
    fn exec(&self, argv: &[String], extra: &[(String, String)]) -> Result<String> {
        let program = crate::exec::program_path(&argv[0], &self.cwd);
        let out = Command::new(&program)
            .args(&argv[1..])
            .current_dir(&self.cwd)
            .envs(self.env())
            .envs(extra.iter().cloned())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Step { message: format!("cannot run `{}` in {}: {e}", argv[0], self.cwd.display()) })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = stderr.lines().collect();
            let tail = lines[lines.len().saturating_sub(8)..].join("\n");
            return Err(Error::Step {
                message: format!("`{}` failed ({}) in {}:\n{tail}", argv.join(" "), out.status, self.cwd.display()),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn alembic(&self, program: &[String], args: &[&str]) -> Result<String> {
        let mut argv = program.to_vec();
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        self.exec(&argv, &[])
    }

    fn current(&self) -> Result<Option<String>> {
        match &self.adapter {
            Adapter::Alembic(program) => {
                let out = self.alembic(program, &["current"])?;
                // Lines look like `ae1027a6acf (head)`; logging goes to stderr.
                Ok(out
                    .lines()
                    .filter_map(|l| l.split_whitespace().next())
                    .find(|t| t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                    .map(str::to_owned))
            }
            Adapter::Command { current, .. } => {
                let out = self.exec(current, &[])?;
                let v = out.trim();
                Ok(if v.is_empty() { None } else { Some(v.to_owned()) })
            }
            Adapter::Builtin => Ok(None),
        }
    }

    fn plan(&self, direction: Direction, target: Option<&str>, dialect: Dialect) -> Result<ToolPlan> {
        let current = self.current()?;
        let (verdicts, sql, count) = match &self.adapter {
            Adapter::Alembic(program) => {
                let range = match direction {
                    Direction::Up => match &current {
                        Some(c) => format!("{c}:head"),
                        None => "head".to_owned(),
                    },
                    Direction::Down => {
                        format!("{}:{}", current.clone().unwrap_or_else(|| "base".into()), target.unwrap_or("base"))
                    }
                };
                let verb = if direction == Direction::Up { "upgrade" } else { "downgrade" };
                let nothing =
                    direction == Direction::Down && current.as_deref().unwrap_or("base") == target.unwrap_or("base");
                if nothing {
                    (Vec::new(), None, Some(0))
                } else {
                    let sql = self.alembic(program, &[verb, &range, "--sql"])?;
                    let lint = lint::classify(&strip_alembic_bookkeeping(&sql, dialect), dialect);
                    let verdict = Verdict { name: format!("alembic {verb} {range}"), direction, lint };
                    let moves = sql.contains("alembic_version");
                    (vec![verdict], Some(sql), if moves { None } else { Some(0) })
                }
            }
            Adapter::Command { .. } => {
                let same = direction == Direction::Down && current.as_deref() == target;
                if same {
                    (Vec::new(), None, Some(0))
                } else {
                    let lint = match direction {
                        Direction::Up => Lint { class: Class::Safe, findings: vec![] },
                        Direction::Down => {
                            lint::classify("-- a command whose SQL cannot be previewed\nUNKNOWN COMMAND", dialect)
                        }
                    };
                    (
                        vec![Verdict {
                            name: "the down_to command (its SQL cannot be previewed)".into(),
                            direction,
                            lint,
                        }],
                        None,
                        None,
                    )
                }
            }
            Adapter::Builtin => (Vec::new(), None, Some(0)),
        };
        Ok(ToolPlan { direction, target: target.map(str::to_owned), verdicts, sql, count, planned: Vec::new() })
    }

    fn run(&self, plan: &ToolPlan) -> Result<()> {
        if plan.is_empty() {
            return Ok(());
        }
        match (&self.adapter, plan.direction) {
            (Adapter::Alembic(program), Direction::Up) => self.alembic(program, &["upgrade", "head"]).map(drop),
            (Adapter::Alembic(program), Direction::Down) => {
                self.alembic(program, &["downgrade", plan.target.as_deref().unwrap_or("base")]).map(drop)
            }
            (Adapter::Command { up, .. }, Direction::Up) => self.exec(up, &[]).map(drop),
            (Adapter::Command { down_to, .. }, Direction::Down) => self
                .exec(down_to, &[("LASTGOOD_TARGET_REVISION".to_owned(), plan.target.clone().unwrap_or_default())])
                .map(drop),
            (Adapter::Builtin, _) => Ok(()),
        }
    }
}

/// Alembic's offline SQL includes its own `alembic_version` bookkeeping (an UPDATE
/// without WHERE, a DROP TABLE at base): the linter judges the migrations, not that.
fn strip_alembic_bookkeeping(script: &str, dialect: Dialect) -> String {
    sql::split(script, dialect)
        .into_iter()
        .filter(|s| !s.text.contains("alembic_version"))
        .map(|s| format!("{};\n", s.text))
        .collect()
}
