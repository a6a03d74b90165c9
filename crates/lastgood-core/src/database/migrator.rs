//! The migrator, lastgood's builtin migration engine: which migrations are applied,
//! what `up` and `down` would run (to the statement), and running it.
//!
//! It is not the reading of a migrations folder ([`super::migration_files`]), nor the
//! talking to a database ([`super::driver`]): it joins the two, building every
//! statement itself (bookkeeping included) so that `--sql` prints exactly what runs.
//! Teams that keep Alembic or their own commands use those instead, through
//! [`super::tool`].
//!
//! Every migration and its bookkeeping commit in one transaction, so there is no
//! "dirty" state: after a crash the database is at the last migration that committed.
//! The bookkeeping row stores the migration's down SQL when it is applied, so a
//! rollback can revert it even after the files that carried it are gone. A down
//! script in the files, when present, wins over the stored one (it may have been
//! fixed since); otherwise the stored one runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::dialect::Dialect;
use super::driver::{Applied, DbError, Driver, Role, Stmt, postgres, sqlite};
use super::migration_files::{self, Migration, MigrationsError};
use super::sql;
use super::url::DbUrl;
pub use crate::config::tuning::Settings;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Files(#[from] MigrationsError),
    #[error(
        "migration {name} was edited after it was applied: {file} has checksum {current}, the database recorded {recorded}"
    )]
    Modified { name: String, file: PathBuf, recorded: String, current: String },
    #[error("migration {name} has no down script, in the files or stored when it was applied")]
    NoDown { name: String },
    #[error("no migration matches `{rev}`")]
    UnknownRevision { rev: String, known: Vec<String> },
    #[error("migration {name} ran outside a transaction and failed part way: {source}")]
    Partial { name: String, source: DbError },
}

impl MigrateError {
    /// SPEC.md exit codes: a busy lock is 3, a refusal 4, bad input 2, a failure 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Db(DbError::Locked { .. }) => 3,
            Self::Modified { .. } | Self::NoDown { .. } => 4,
            Self::UnknownRevision { .. } | Self::Files(_) => 2,
            _ => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

/// One migration to run in one direction, as exact statements.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    pub version: String,
    pub name: String,
    pub direction: Direction,
    pub transactional: bool,
    pub statements: Vec<Stmt>,
    /// The migration's own SQL (without bookkeeping), for the linter.
    pub script: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrationState {
    pub version: String,
    pub name: String,
    /// applied | pending | applied-missing-file | modified
    pub state: &'static str,
    pub applied_at: Option<String>,
    pub has_down: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub current: Option<(String, String)>,
    pub applied: usize,
    pub pending: usize,
    pub migrations: Vec<MigrationState>,
}

#[derive(Debug, Clone)]
pub enum DownTarget {
    /// Revert everything applied after this revision (version or full name); `0`
    /// reverts every migration.
    To(String),
    Steps(usize),
}

pub struct Migrator {
    driver: Box<dyn Driver>,
    files: Vec<Migration>,
    dir: Option<PathBuf>,
    actor: String,
    lock_wait: Duration,
}

impl Migrator {
    pub fn open(url: &DbUrl, dir: Option<&Path>, settings: &Settings, actor: &str) -> Result<Self, MigrateError> {
        let driver: Box<dyn Driver> = match url {
            DbUrl::Postgres(pg) => Box::new(postgres::Pg::connect(
                pg,
                actor,
                &postgres::PgSettings {
                    lock_timeout: settings.lock_timeout,
                    statement_timeout: settings.statement_timeout,
                },
            )?),
            DbUrl::Sqlite(path) => Box::new(sqlite::Sqlite::open(path, actor)?),
        };
        let files = match dir {
            Some(d) => migration_files::discover(d)?,
            None => Vec::new(),
        };
        Ok(Self {
            driver,
            files,
            dir: dir.map(Path::to_path_buf),
            actor: actor.to_owned(),
            lock_wait: settings.lock_wait,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.driver.dialect()
    }

    pub fn describe(&self) -> String {
        self.driver.describe()
    }

    pub fn files(&self) -> &[Migration] {
        &self.files
    }

    pub fn applied(&mut self) -> Result<Vec<Applied>, MigrateError> {
        Ok(self.driver.applied()?)
    }

    /// The newest applied migration's version (the schema revision).
    pub fn current(&mut self) -> Result<Option<String>, MigrateError> {
        Ok(self.driver.applied()?.last().map(|a| a.version.clone()))
    }

    pub fn status(&mut self) -> Result<Status, MigrateError> {
        let applied = self.driver.applied()?;
        let mut migrations = Vec::new();
        for a in &applied {
            let file = self.files.iter().find(|m| m.version == a.version);
            let state = match file {
                None => "applied-missing-file",
                Some(m) if m.checksum != a.checksum => "modified",
                Some(_) => "applied",
            };
            let has_down = a.down_sql.is_some() || file.is_some_and(|m| m.down.is_some());
            migrations.push(MigrationState {
                version: a.version.clone(),
                name: a.name.clone(),
                state,
                applied_at: Some(a.applied_at.clone()),
                has_down,
            });
        }
        let mut pending = 0;
        for m in &self.files {
            if !applied.iter().any(|a| a.version == m.version) {
                pending += 1;
                migrations.push(MigrationState {
                    version: m.version.clone(),
                    name: m.name.clone(),
                    state: "pending",
                    applied_at: None,
                    has_down: m.down.is_some(),
                });
            }
        }
        migrations.sort_by(|a, b| migration_files::compare_versions(&a.version, &b.version));
        Ok(Status {
            current: applied.last().map(|a| (a.version.clone(), a.name.clone())),
            applied: applied.len(),
            pending,
            migrations,
        })
    }

    fn refuse_modified(&self, applied: &[Applied]) -> Result<(), MigrateError> {
        for a in applied {
            if let Some(m) = self.files.iter().find(|m| m.version == a.version) {
                if m.checksum != a.checksum {
                    return Err(MigrateError::Modified {
                        name: m.name.clone(),
                        file: m.up_path.clone(),
                        recorded: a.checksum.clone(),
                        current: m.checksum.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    fn matches(rev: &str, version: &str, name: &str) -> bool {
        rev == version || rev == name
    }

    /// The pending migrations up to and including `to` (all when None).
    pub fn plan_up(&mut self, to: Option<&str>) -> Result<Vec<Planned>, MigrateError> {
        let applied = self.driver.applied()?;
        self.refuse_modified(&applied)?;
        if let Some(rev) = to {
            if !self.files.iter().any(|m| Self::matches(rev, &m.version, &m.name)) {
                return Err(MigrateError::UnknownRevision {
                    rev: rev.to_owned(),
                    known: self.files.iter().map(|m| m.name.clone()).collect(),
                });
            }
        }
        let mut out = Vec::new();
        for m in &self.files {
            if !applied.iter().any(|a| a.version == m.version) {
                out.push(self.up_statements(m));
            }
            if to.is_some_and(|rev| Self::matches(rev, &m.version, &m.name)) {
                break;
            }
        }
        Ok(out)
    }

    /// The applied migrations to revert, newest first.
    pub fn plan_down(&mut self, target: &DownTarget) -> Result<Vec<Planned>, MigrateError> {
        let applied = self.driver.applied()?;
        self.refuse_modified(&applied)?;
        let revert: Vec<&Applied> = match target {
            DownTarget::Steps(n) => applied.iter().rev().take(*n).collect(),
            DownTarget::To(rev) if rev == "0" => applied.iter().rev().collect(),
            DownTarget::To(rev) => {
                let Some(pos) = applied.iter().position(|a| Self::matches(rev, &a.version, &a.name)) else {
                    return Err(MigrateError::UnknownRevision {
                        rev: rev.clone(),
                        known: applied.iter().map(|a| a.name.clone()).collect(),
                    });
                };
                applied[pos + 1..].iter().rev().collect()
            }
        };
        revert.into_iter().map(|a| self.down_statements(a)).collect()
    }

    /// The applied migrations newer than `version` (None: all), newest first, for a
    /// rollback to a release whose schema revision is `version`.
    pub fn plan_down_to_revision(&mut self, version: Option<&str>) -> Result<Vec<Planned>, MigrateError> {
        let applied = self.driver.applied()?;
        let revert: Vec<&Applied> = applied
            .iter()
            .rev()
            .filter(|a| version.is_none_or(|v| migration_files::compare_versions(&a.version, v).is_gt()))
            .collect();
        revert.into_iter().map(|a| self.down_statements(a)).collect()
    }

    /// What opens a migration's transaction: `BEGIN`, the transaction's settings, and
    /// the lock and the check that the migration is still to do when the driver's lock
    /// lives in transactions (PostgreSQL: nothing depends on the session, so a pooler in
    /// transaction mode is fine).
    fn begin(&self, version: &str, direction: Direction) -> Vec<Stmt> {
        let d = &self.driver;
        let mut out = vec![Stmt::ours(d.begin())];
        out.extend(d.transaction_settings().into_iter().map(Stmt::ours));
        out.extend(self.claim(version, direction));
        out
    }

    /// The lock and the check that the migration is still to do; none for drivers
    /// whose run holds a lock of its own (SQLite).
    fn claim(&self, version: &str, direction: Direction) -> Vec<Stmt> {
        let d = &self.driver;
        let Some(lock) = d.lock_sql() else { return Vec::new() };
        let exists = format!("EXISTS (SELECT 1 FROM {} WHERE version = {})", d.table(), sql::literal(version));
        let check = match direction {
            Direction::Up => format!("SELECT NOT {exists}"),
            Direction::Down => format!("SELECT {exists}"),
        };
        vec![Stmt::ours(lock).with_role(Role::Lock), Stmt::ours(check).with_role(Role::StillToDo)]
    }

    /// A migration outside a transaction: its statements and bookkeeping, wrapped, when
    /// the lock lives in transactions, in a transaction on a second connection that
    /// holds the lock meanwhile.
    fn outside_transaction(&self, version: &str, direction: Direction, mut body: Vec<Stmt>) -> Vec<Stmt> {
        let claim = self.claim(version, direction);
        if claim.is_empty() {
            return body;
        }
        let mut out = vec![Stmt::ours(self.driver.begin()).on_guard()];
        out.extend(claim.into_iter().map(Stmt::on_guard));
        out.append(&mut body);
        out.push(Stmt::ours("COMMIT").on_guard());
        out
    }

    fn up_statements(&self, m: &Migration) -> Planned {
        let d = &self.driver;
        let t = d.table();
        let file = m.up_path.display().to_string();
        let body: Vec<Stmt> =
            sql::split(&m.up, d.dialect()).into_iter().map(|s| Stmt::from_file(s.text, &file, s.line)).collect();
        let down = m.down.as_deref().map(sql::literal).unwrap_or_else(|| "NULL".to_owned());
        let insert = format!(
            "INSERT INTO {t} (version, name, checksum, applied_at, down_sql, no_transaction, applied_by) VALUES ({}, {}, {}, {}, {down}, {}, {})",
            sql::literal(&m.version),
            sql::literal(&m.name),
            sql::literal(&m.checksum),
            d.now_expr(),
            if m.no_transaction { "TRUE" } else { "FALSE" },
            sql::literal(&self.actor),
        );
        let statements = if m.no_transaction {
            // Outside a transaction the bookkeeping can only follow the migration.
            let mut run = body;
            run.push(Stmt::ours(insert));
            self.outside_transaction(&m.version, Direction::Up, run)
        } else {
            let mut run = self.begin(&m.version, Direction::Up);
            run.push(Stmt::ours(insert));
            run.extend(body);
            run.push(Stmt::ours(format!(
                "UPDATE {t} SET duration_ms = {} WHERE version = {}",
                d.elapsed_ms_expr(),
                sql::literal(&m.version)
            )));
            run.push(Stmt::ours("COMMIT"));
            run
        };
        Planned {
            version: m.version.clone(),
            name: m.name.clone(),
            direction: Direction::Up,
            transactional: !m.no_transaction,
            statements,
            script: m.up.clone(),
        }
    }

    fn down_statements(&self, a: &Applied) -> Result<Planned, MigrateError> {
        let file = self.files.iter().find(|m| m.version == a.version);
        let (script, origin) = match (file.and_then(|m| m.down.as_ref().zip(m.down_path.as_ref())), &a.down_sql) {
            (Some((text, path)), _) => (text.clone(), path.display().to_string()),
            (None, Some(stored)) => (stored.clone(), format!("stored down.sql of {}", a.name)),
            (None, None) => return Err(MigrateError::NoDown { name: a.name.clone() }),
        };
        let no_transaction = file.map(|m| m.no_transaction).unwrap_or(a.no_transaction)
            || migration_files::no_transaction_marker(&script);
        let body: Vec<Stmt> = sql::split(&script, self.driver.dialect())
            .into_iter()
            .map(|s| Stmt::from_file(s.text, &origin, s.line))
            .collect();
        let delete =
            Stmt::ours(format!("DELETE FROM {} WHERE version = {}", self.driver.table(), sql::literal(&a.version)));
        let statements = if no_transaction {
            let mut run = body;
            run.push(delete);
            self.outside_transaction(&a.version, Direction::Down, run)
        } else {
            let mut run = self.begin(&a.version, Direction::Down);
            run.extend(body);
            run.push(delete);
            run.push(Stmt::ours("COMMIT"));
            run
        };
        Ok(Planned {
            version: a.version.clone(),
            name: a.name.clone(),
            direction: Direction::Down,
            transactional: !no_transaction,
            statements,
            script,
        })
    }

    /// What every run does first: create the bookkeeping if missing, under the lock
    /// when the lock lives in transactions.
    fn prologue(&self) -> Vec<Stmt> {
        let d = &self.driver;
        let ddl = d.bookkeeping_ddl().into_iter().map(Stmt::ours);
        let Some(lock) = d.lock_sql() else { return ddl.collect() };
        let mut out = vec![Stmt::ours(d.begin())];
        out.extend(d.transaction_settings().into_iter().map(Stmt::ours));
        out.push(Stmt::ours(lock).with_role(Role::Lock));
        out.extend(ddl);
        out.push(Stmt::ours("COMMIT"));
        out
    }

    /// Every statement a run of `plan` executes, in order: the bookkeeping table, then
    /// each migration with its bookkeeping, the lock and the checks lastgood reads the
    /// answers of marked by a comment.
    pub fn preview(&self, plan: &[Planned]) -> String {
        let mut out = format!("-- lastgood: {} migration(s) against {}\n", plan.len(), self.driver.describe());
        let show = |out: &mut String, s: &Stmt| {
            match s.role {
                Role::Run => {}
                Role::Lock => out.push_str(&format!(
                    "-- the migration lock, for this transaction: tried again (after ROLLBACK and BEGIN) until taken, for at most {}\n",
                    humantime::format_duration(self.lock_wait)
                )),
                Role::StillToDo => {
                    out.push_str("-- false when another run did this migration meanwhile: ROLLBACK, and on to the next\n")
                }
            }
            out.push_str(&s.text);
            out.push(';');
            if s.guard {
                out.push_str(" -- on a second connection, which holds the lock while the migration runs");
            }
            out.push('\n');
        };
        for s in self.prologue() {
            show(&mut out, &s);
        }
        for p in plan {
            out.push_str(&format!(
                "\n-- {} {}{}\n",
                match p.direction {
                    Direction::Up => "up",
                    Direction::Down => "down",
                },
                p.name,
                if p.transactional { "" } else { " (outside a transaction)" }
            ));
            for s in &p.statements {
                show(&mut out, s);
            }
        }
        out
    }

    /// Runs the plan. Stops at the first failure; everything before it stays applied
    /// (each migration committed on its own). A migration another run did meanwhile is
    /// skipped.
    pub fn run(&mut self, plan: &[Planned], on_done: &mut dyn FnMut(&Planned, Duration)) -> Result<(), MigrateError> {
        self.driver.lock(self.lock_wait)?;
        let result = self.run_locked(plan, on_done);
        let unlocked = self.driver.unlock();
        result?;
        unlocked?;
        Ok(())
    }

    fn run_locked(
        &mut self,
        plan: &[Planned],
        on_done: &mut dyn FnMut(&Planned, Duration),
    ) -> Result<(), MigrateError> {
        let prologue = self.prologue();
        self.run_statements(&prologue, None).map_err(|(_, e)| e)?;
        // Another run may have applied or reverted some of these while we waited; the
        // check inside each migration's transaction is the one that counts.
        let applied = self.driver.applied()?;
        for p in plan {
            let is_applied = applied.iter().any(|a| a.version == p.version);
            if (p.direction == Direction::Up) == is_applied {
                continue;
            }
            let t = Instant::now();
            match self.run_statements(&p.statements, Some(&p.version)) {
                Ok(true) => on_done(p, t.elapsed()),
                Ok(false) => {}
                Err((i, source)) if !p.transactional && !p.statements[i].guard => {
                    return Err(MigrateError::Partial { name: p.name.clone(), source });
                }
                Err((_, e)) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Runs statements in order: true when all ran, false when a [`Role::StillToDo`]
    /// check said the work was done meanwhile (and it was rolled back). On an error,
    /// everything open is rolled back and the failing statement's index returned.
    fn run_statements(&mut self, stmts: &[Stmt], version: Option<&str>) -> Result<bool, (usize, DbError)> {
        for (i, s) in stmts.iter().enumerate() {
            if let Some(v) = version {
                crate::failpoint::hit(&format!("migrate:{v}:{i}"));
            }
            let done = match s.role {
                Role::Run => self.driver.execute(s).map(|()| true),
                Role::StillToDo => self.driver.query_flag(s),
                Role::Lock => self.take_lock(&stmts[..i], s).map(|()| true),
            };
            match done {
                Ok(true) => {}
                Ok(false) => {
                    self.driver.rollback();
                    return Ok(false);
                }
                Err(e) => {
                    self.driver.rollback();
                    return Err((i, e));
                }
            }
        }
        Ok(true)
    }

    /// Tries the lock until it is taken or `lock_wait` has passed. Between tries the
    /// transaction is rolled back and `opening` (its `BEGIN` and settings) runs again,
    /// so a waiting run holds nothing that another run's `CREATE INDEX CONCURRENTLY`
    /// would wait for (it waits for every transaction that had a snapshot when it
    /// looked, a deadlock if that transaction waits for the lock in turn).
    fn take_lock(&mut self, opening: &[Stmt], lock: &Stmt) -> Result<(), DbError> {
        let start = Instant::now();
        loop {
            if self.driver.query_flag(lock)? {
                return Ok(());
            }
            if start.elapsed() >= self.lock_wait {
                let holder = self.driver.holder();
                return Err(DbError::Locked { url: self.driver.describe(), holder, waited: start.elapsed() });
            }
            self.driver.rollback();
            std::thread::sleep(Duration::from_millis(100));
            for s in opening {
                self.driver.execute(s)?;
            }
        }
    }

    pub fn migrations_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::test_pg::TestPg;

    fn settings() -> Settings {
        Settings {
            lock_timeout: Some(Duration::from_secs(5)),
            statement_timeout: None,
            lock_wait: Duration::from_millis(300),
        }
    }

    fn write(dir: &Path, name: &str, text: &str) {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Three diesel-layout migrations: users, an email column, an index.
    fn diesel_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "2024-01-01-000000_users/up.sql",
            "CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL);\nINSERT INTO users VALUES (1, 'ada');\n",
        );
        write(d.path(), "2024-01-01-000000_users/down.sql", "DROP TABLE users;\n");
        write(d.path(), "2024-02-01-000000_email/up.sql", "ALTER TABLE users ADD COLUMN email text;\n");
        write(d.path(), "2024-02-01-000000_email/down.sql", "ALTER TABLE users DROP COLUMN email;\n");
        write(d.path(), "2024-03-01-000000_index/up.sql", "CREATE INDEX users_name ON users (name);\n");
        write(d.path(), "2024-03-01-000000_index/down.sql", "DROP INDEX users_name;\n");
        d
    }

    fn run(m: &mut Migrator, plan: &[Planned]) -> Result<Vec<String>, MigrateError> {
        let mut names = Vec::new();
        m.run(plan, &mut |p, _| names.push(p.name.clone()))?;
        Ok(names)
    }

    fn up(m: &mut Migrator) -> Result<Vec<String>, MigrateError> {
        let plan = m.plan_up(None)?;
        run(m, &plan)
    }

    fn down(m: &mut Migrator, target: &DownTarget) -> Result<Vec<String>, MigrateError> {
        let plan = m.plan_down(target)?;
        run(m, &plan)
    }

    fn round_trip(url: &DbUrl) {
        let dir = diesel_dir();
        let mut m = Migrator::open(url, Some(dir.path()), &settings(), "tester").unwrap();
        assert_eq!(m.status().unwrap().pending, 3);
        let plan = m.plan_up(Some("2024-02-01-000000")).unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!(run(&mut m, &plan).unwrap().len(), 2);
        assert_eq!(m.current().unwrap().as_deref(), Some("2024-02-01-000000"));
        let plan = m.plan_up(None).unwrap();
        assert_eq!(plan.len(), 1);
        run(&mut m, &plan).unwrap();
        let st = m.status().unwrap();
        assert_eq!((st.applied, st.pending), (3, 0));
        let applied = m.applied().unwrap();
        assert!(
            applied
                .iter()
                .all(|a| a.down_sql.is_some() && a.duration_ms.is_some() && a.applied_by.as_deref() == Some("tester"))
        );

        // Down by full name, then by steps; the stored down SQL is used once the files are gone.
        let plan = m.plan_down(&DownTarget::To("2024-01-01-000000_users".into())).unwrap();
        assert_eq!(
            plan.iter().map(|p| p.version.as_str()).collect::<Vec<_>>(),
            ["2024-03-01-000000", "2024-02-01-000000"]
        );
        run(&mut m, &plan).unwrap();
        assert_eq!(m.current().unwrap().as_deref(), Some("2024-01-01-000000"));
        drop(dir);
        let mut m = Migrator::open(url, None, &settings(), "tester").unwrap();
        let plan = m.plan_down(&DownTarget::Steps(1)).unwrap();
        assert!(
            plan[0].statements.iter().any(|s| s.origin.as_ref().is_some_and(|(o, _)| o.starts_with("stored down.sql")))
        );
        run(&mut m, &plan).unwrap();
        assert_eq!(m.current().unwrap(), None);
    }

    #[test]
    fn postgres_up_and_down_in_both_directions() {
        let db = TestPg::new("roundtrip");
        round_trip(&db.url);
        let mut c = db.client();
        let n: i64 = c.query_one("SELECT count(*) FROM lastgood.migrations", &[]).unwrap().get(0);
        assert_eq!(n, 0);
    }

    #[test]
    fn sqlite_up_and_down_in_both_directions() {
        let d = tempfile::tempdir().unwrap();
        round_trip(&DbUrl::Sqlite(d.path().join("app.db")));
    }

    #[test]
    fn the_sqlx_layout_and_no_transaction_migrations_on_postgres() {
        let db = TestPg::new("sqlx");
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "1_t.up.sql", "CREATE TABLE t (a int);");
        write(d.path(), "1_t.down.sql", "DROP TABLE t;");
        write(d.path(), "2_idx.up.sql", "-- no-transaction\nCREATE INDEX CONCURRENTLY t_a ON t (a);");
        write(d.path(), "2_idx.down.sql", "-- no-transaction\nDROP INDEX CONCURRENTLY t_a;");
        let mut m = Migrator::open(&db.url, Some(d.path()), &settings(), "tester").unwrap();
        let plan = m.plan_up(None).unwrap();
        assert!(!plan[1].transactional);
        // Its lock is held by a transaction on a second connection.
        assert!(!plan[1].statements.iter().any(|s| s.text == "BEGIN" && !s.guard), "{:?}", plan[1].statements);
        run(&mut m, &plan).unwrap();
        down(&mut m, &DownTarget::Steps(2)).unwrap();
        assert_eq!(m.current().unwrap(), None);
    }

    #[test]
    fn a_failing_statement_names_file_line_and_error_and_keeps_what_committed() {
        let db = TestPg::new("failing");
        let d = diesel_dir();
        write(
            d.path(),
            "2024-02-01-000000_email/up.sql",
            "ALTER TABLE users ADD COLUMN email text;\n\nUPDATE users SET email = nosuchcolumn;\n",
        );
        let mut m = Migrator::open(&db.url, Some(d.path()), &settings(), "tester").unwrap();
        let err = up(&mut m).unwrap_err().to_string();
        assert!(err.contains("2024-02-01-000000_email/up.sql:3"), "{err}");
        assert!(err.contains("nosuchcolumn") && err.contains("UPDATE users SET email"), "{err}");
        // The first migration committed; the failed one left nothing behind (no dirty state).
        assert_eq!(m.current().unwrap().as_deref(), Some("2024-01-01-000000"));
        let cols: i64 = db
            .client()
            .query_one(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'email'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(cols, 0);
        // Fixed, a re-run continues from there.
        write(d.path(), "2024-02-01-000000_email/up.sql", "ALTER TABLE users ADD COLUMN email text;\n");
        let mut m = Migrator::open(&db.url, Some(d.path()), &settings(), "tester").unwrap();
        assert_eq!(up(&mut m).unwrap().len(), 2);
    }

    #[test]
    fn an_edited_applied_migration_is_refused_with_both_checksums() {
        let d = tempfile::tempdir().unwrap();
        let url = DbUrl::Sqlite(d.path().join("app.db"));
        let dir = diesel_dir();
        let mut m = Migrator::open(&url, Some(dir.path()), &settings(), "tester").unwrap();
        up(&mut m).unwrap();
        // Line endings and trailing spaces are not an edit...
        write(
            dir.path(),
            "2024-01-01-000000_users/up.sql",
            "CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL);   \r\nINSERT INTO users VALUES (1, 'ada');\r\n\r\n",
        );
        let mut m = Migrator::open(&url, Some(dir.path()), &settings(), "tester").unwrap();
        assert!(m.plan_up(None).is_ok());
        // ...a changed statement is.
        write(
            dir.path(),
            "2024-01-01-000000_users/up.sql",
            "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);\n",
        );
        let mut m = Migrator::open(&url, Some(dir.path()), &settings(), "tester").unwrap();
        let err = m.plan_up(None).unwrap_err();
        assert_eq!(err.exit_code(), 4);
        let text = err.to_string();
        assert!(text.contains("up.sql has checksum") && text.contains("recorded"), "{text}");
        assert_eq!(m.status().unwrap().migrations[0].state, "modified");
    }

    #[test]
    fn a_missing_down_is_refused_before_anything_runs() {
        let d = tempfile::tempdir().unwrap();
        let url = DbUrl::Sqlite(d.path().join("app.db"));
        let dir = diesel_dir();
        std::fs::remove_file(dir.path().join("2024-03-01-000000_index/down.sql")).unwrap();
        let mut m = Migrator::open(&url, Some(dir.path()), &settings(), "tester").unwrap();
        up(&mut m).unwrap();
        let err = m.plan_down(&DownTarget::Steps(2)).unwrap_err();
        assert!(matches!(err, MigrateError::NoDown { .. }), "{err}");
        assert_eq!(m.current().unwrap().as_deref(), Some("2024-03-01-000000"));
    }

    #[test]
    fn a_second_run_waits_for_the_lock_then_names_its_holder() {
        let db = TestPg::new("lock");
        let d = diesel_dir();
        // Another run, inside one of its migrations' transactions.
        let DbUrl::Postgres(pg) = &db.url else { unreachable!() };
        let mut first = crate::database::pg_client::connect(pg, "lastgood first@host").unwrap();
        first.batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock({})", postgres::LOCK_KEY)).unwrap();
        let mut second = Migrator::open(&db.url, Some(d.path()), &settings(), "second@host").unwrap();
        let plan = second.plan_up(None).unwrap();
        let err = run(&mut second, &plan).unwrap_err();
        assert_eq!(err.exit_code(), 3);
        assert!(err.to_string().contains("lastgood first@host"), "{err}");
        // The lock ends with the transaction.
        first.batch_execute("COMMIT").unwrap();
        assert_eq!(run(&mut second, &plan).unwrap().len(), 3);
    }

    #[test]
    fn two_runs_at_once_apply_each_migration_once_and_in_order() {
        let db = TestPg::new("race");
        let d = tempfile::tempdir().unwrap();
        for n in 1..=12 {
            // Each migration fails if run twice, or before the one it follows.
            let prev = if n == 1 { String::new() } else { format!("SELECT 1 FROM t{};\n", n - 1) };
            write(
                d.path(),
                &format!("{n}_t{n}.up.sql"),
                &format!("{prev}CREATE TABLE t{n} (a int);\nSELECT pg_sleep(0.02);"),
            );
            write(d.path(), &format!("{n}_t{n}.down.sql"), &format!("DROP TABLE t{n};"));
        }
        write(d.path(), "13_idx.up.sql", "-- no-transaction\nCREATE INDEX CONCURRENTLY t12_a ON t12 (a);");
        write(d.path(), "13_idx.down.sql", "-- no-transaction\nDROP INDEX CONCURRENTLY t12_a;");
        let settings = Settings { lock_wait: Duration::from_secs(20), ..settings() };
        let runs: Vec<_> = (0..2)
            .map(|i| {
                let (url, dir, settings) = (db.url.clone(), d.path().to_path_buf(), settings.clone());
                std::thread::spawn(move || {
                    let mut m = Migrator::open(&url, Some(&dir), &settings, &format!("run{i}")).unwrap();
                    up(&mut m)
                })
            })
            .collect();
        let ran: Vec<Vec<String>> = runs.into_iter().map(|r| r.join().unwrap().unwrap()).collect();
        assert_eq!(ran[0].len() + ran[1].len(), 13, "{ran:?}");
        let mut m = Migrator::open(&db.url, Some(d.path()), &settings, "check").unwrap();
        assert_eq!(m.status().unwrap().applied, 13);
        let runs: Vec<_> = (0..2)
            .map(|i| {
                let (url, dir, settings) = (db.url.clone(), d.path().to_path_buf(), settings.clone());
                std::thread::spawn(move || {
                    let mut m = Migrator::open(&url, Some(&dir), &settings, &format!("down{i}")).unwrap();
                    down(&mut m, &DownTarget::To("0".into()))
                })
            })
            .collect();
        let ran: Vec<Vec<String>> = runs.into_iter().map(|r| r.join().unwrap().unwrap()).collect();
        assert_eq!(ran[0].len() + ran[1].len(), 13, "{ran:?}");
        assert_eq!(m.current().unwrap(), None);
    }

    #[test]
    fn postgres_migrations_depend_on_no_session_state() {
        let db = TestPg::new("nosession");
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "1_t.up.sql", "CREATE TABLE t (a int);");
        write(d.path(), "2_idx.up.sql", "-- no-transaction\nCREATE INDEX CONCURRENTLY t_a ON t (a);");
        let mut m = Migrator::open(&db.url, Some(d.path()), &settings(), "tester").unwrap();
        let plan = m.plan_up(None).unwrap();
        let sql = m.preview(&plan);
        assert!(!sql.contains("\nSET lock_timeout") && !sql.contains("pg_advisory_lock"), "{sql}");
        assert!(sql.contains("BEGIN;\nSET LOCAL lock_timeout = '5000ms';\n"), "{sql}");
        assert_eq!(sql.matches("pg_try_advisory_xact_lock").count(), 3, "{sql}");
        assert!(sql.contains("SELECT NOT EXISTS (SELECT 1 FROM lastgood.migrations WHERE version = '1');"), "{sql}");
        assert!(sql.contains("CREATE INDEX CONCURRENTLY t_a ON t (a);\n"), "{sql}");
        assert!(sql.contains("COMMIT; -- on a second connection"), "{sql}");
    }

    #[test]
    fn sqlite_runs_exclude_each_other_too() {
        let d = tempfile::tempdir().unwrap();
        let url = DbUrl::Sqlite(d.path().join("app.db"));
        let dir = diesel_dir();
        let mut first = Migrator::open(&url, Some(dir.path()), &settings(), "first@host").unwrap();
        first.driver.lock(Duration::from_secs(1)).unwrap();
        let mut second = Migrator::open(&url, Some(dir.path()), &settings(), "second@host").unwrap();
        let err = up(&mut second).unwrap_err();
        assert!(err.to_string().contains("first@host"), "{err}");
        first.driver.unlock().unwrap();
        assert_eq!(up(&mut second).unwrap().len(), 3);
    }

    #[test]
    fn connections_use_tls_as_sslmode_says() {
        let db = TestPg::new("tls");
        let DbUrl::Postgres(pg) = &db.url else { unreachable!() };
        let encrypted = |mode: &str| -> Result<bool, String> {
            let url = format!("{}?sslmode={mode}", pg.expose());
            let DbUrl::Postgres(p) = DbUrl::parse(&url, Path::new("/")).unwrap() else { unreachable!() };
            let mut c = crate::database::pg_client::connect(&p, "lastgood-test").map_err(|e| e.to_string())?;
            Ok(c.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).unwrap().get(0))
        };
        // The test server uses Debian's self-signed certificate.
        assert_eq!(encrypted("require"), Ok(true));
        assert_eq!(encrypted("prefer"), Ok(true));
        assert_eq!(encrypted("disable"), Ok(false));
        let refused = encrypted("verify-full").unwrap_err();
        assert!(refused.to_lowercase().contains("certificate"), "{refused}");
        // With sslrootcert, only that authority is trusted (as libpq does): Debian's
        // self-signed certificate for `localhost` verifies against itself.
        let snakeoil = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
        assert!(
            Path::new(snakeoil).exists(),
            "{snakeoil} is missing: the test server's certificate (Debian's ssl-cert)"
        );
        let local = pg.expose().replace("@127.0.0.1:", "@localhost:");
        assert_ne!(local, pg.expose(), "the test URL names 127.0.0.1");
        let verified = |mode: &str, root: &str| -> Result<bool, String> {
            let url = format!("{local}?sslmode={mode}&sslrootcert={root}");
            let DbUrl::Postgres(p) = DbUrl::parse(&url, Path::new("/")).unwrap() else { unreachable!() };
            let mut c = crate::database::pg_client::connect(&p, "lastgood-test").map_err(|e| e.to_string())?;
            Ok(c.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).unwrap().get(0))
        };
        assert_eq!(verified("verify-full", snakeoil), Ok(true));
        assert_eq!(verified("verify-ca", snakeoil), Ok(true));
        // Another authority than the server's: refused, however often it is asked.
        let other = "/etc/ssl/certs/ISRG_Root_X1.pem";
        if Path::new(other).exists() {
            assert!(verified("verify-full", other).is_err());
            assert!(verified("verify-full", other).is_err());
        }
    }

    #[test]
    fn lock_timeout_bounds_a_migration_blocked_by_another_session() {
        let db = TestPg::new("locktimeout");
        let mut other = db.client();
        other.batch_execute("CREATE TABLE busy (a int)").unwrap();
        let mut tx = other.transaction().unwrap();
        tx.batch_execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE").unwrap();
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "1_alter.up.sql", "ALTER TABLE busy ADD COLUMN b int;");
        let settings = Settings { lock_timeout: Some(Duration::from_millis(200)), ..settings() };
        let mut m = Migrator::open(&db.url, Some(d.path()), &settings, "tester").unwrap();
        let t = Instant::now();
        let err = up(&mut m).unwrap_err().to_string();
        assert!(err.contains("lock timeout"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        tx.rollback().unwrap();
        assert_eq!(m.current().unwrap(), None);
    }

    #[test]
    fn a_long_history_goes_up_and_all_the_way_down() {
        let db = TestPg::new("long");
        let d = tempfile::tempdir().unwrap();
        for i in 1..=300 {
            write(
                d.path(),
                &format!("{i:04}_t{i}.up.sql"),
                &format!("CREATE TABLE t{i} (id int PRIMARY KEY, v text);\nINSERT INTO t{i} VALUES ({i}, 'x');"),
            );
            write(d.path(), &format!("{i:04}_t{i}.down.sql"), &format!("DROP TABLE t{i};"));
        }
        let mut m = Migrator::open(&db.url, Some(d.path()), &settings(), "tester").unwrap();
        assert_eq!(up(&mut m).unwrap().len(), 300);
        assert_eq!(m.current().unwrap().as_deref(), Some("0300"));
        assert_eq!(down(&mut m, &DownTarget::To("0150".into())).unwrap().len(), 150);
        assert_eq!(down(&mut m, &DownTarget::To("0".into())).unwrap().len(), 150);
        assert_eq!(m.current().unwrap(), None);
    }

    #[test]
    fn a_sqlite_trigger_migration_runs_whole() {
        let d = tempfile::tempdir().unwrap();
        let url = DbUrl::Sqlite(d.path().join("app.db"));
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "1_audit/up.sql",
            "CREATE TABLE t (a int);\nCREATE TABLE log (a int);\nCREATE TRIGGER t_log AFTER INSERT ON t BEGIN\n  INSERT INTO log VALUES (new.a);\n  INSERT INTO log VALUES (new.a + 1);\nEND;\n",
        );
        write(dir.path(), "1_audit/down.sql", "DROP TRIGGER t_log;\nDROP TABLE log;\nDROP TABLE t;\n");
        let mut m = Migrator::open(&url, Some(dir.path()), &settings(), "tester").unwrap();
        assert_eq!(up(&mut m).unwrap().len(), 1);
        let c = rusqlite::Connection::open(d.path().join("app.db")).unwrap();
        c.execute_batch("INSERT INTO t VALUES (1)").unwrap();
        let n: i64 = c.query_row("SELECT count(*) FROM log", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn the_preview_is_the_statements_that_run() {
        let d = tempfile::tempdir().unwrap();
        let url = DbUrl::Sqlite(d.path().join("app.db"));
        let dir = diesel_dir();
        let m = &mut Migrator::open(&url, Some(dir.path()), &settings(), "tester").unwrap();
        let plan = m.plan_up(None).unwrap();
        let sql = m.preview(&plan);
        for p in &plan {
            for s in &p.statements {
                assert!(sql.contains(&format!("{};\n", s.text)), "preview lacks {}", s.text);
            }
        }
        assert!(
            sql.contains("INSERT INTO lastgood_migrations")
                && sql.contains("BEGIN IMMEDIATE;")
                && sql.contains("COMMIT;")
        );
    }
}
