//! What the migrator needs from a database, behind one trait: run statements (in a
//! transaction or not), keep the bookkeeping table, and hold the migration lock. The
//! statements, the bookkeeping row and the errors a driver returns are defined here too.
//!
//! The migrator builds every statement itself, bookkeeping included, and the driver
//! runs exactly those strings; that is how `--sql` can print exactly what would run.
//! Transactions are plain `BEGIN`/`COMMIT` statements in that list for the same reason,
//! and so are the migration lock and the check that a migration is still to do, which
//! the migrator reads the answers of ([`Role`]).
//! The trait lives in this file rather than in `driver/mod.rs` so that the drivers,
//! which implement it, never depend on the folder that lists them.

use std::time::Duration;

use crate::database::dialect::Dialect;

/// One statement to run, and where it came from (for errors).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stmt {
    pub text: String,
    /// The migration file and line, or None for lastgood's own bookkeeping.
    pub origin: Option<(String, usize)>,
    /// What the migrator does with it: run it, or read its one boolean answer.
    #[serde(skip)]
    pub role: Role,
    /// Runs on the driver's second connection, whose transaction holds the migration
    /// lock while a migration that runs outside a transaction runs on the first.
    #[serde(skip)]
    pub guard: bool,
}

/// How the migrator treats a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Run it; an error stops the migration.
    #[default]
    Run,
    /// Try to take the migration lock for the open transaction (`true` when taken):
    /// tried again until `lock_wait` has passed, then the run stops naming the holder.
    Lock,
    /// Whether the migration still has to run: `false` when another run did it while
    /// this one waited, and then the transaction is rolled back and the migration
    /// skipped.
    StillToDo,
}

impl Stmt {
    pub fn ours(text: impl Into<String>) -> Self {
        Self { text: text.into(), origin: None, role: Role::Run, guard: false }
    }

    /// A statement of a migration's file, at `line`.
    pub fn from_file(text: impl Into<String>, file: &str, line: usize) -> Self {
        Self { origin: Some((file.to_owned(), line)), ..Self::ours(text) }
    }

    pub fn with_role(self, role: Role) -> Self {
        Self { role, ..self }
    }

    pub fn on_guard(self) -> Self {
        Self { guard: true, ..self }
    }
}

/// A migration as recorded in the database's bookkeeping table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    pub version: String,
    pub name: String,
    pub checksum: String,
    pub applied_at: String,
    pub duration_ms: Option<i64>,
    pub down_sql: Option<String>,
    pub no_transaction: bool,
    pub applied_by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the migrations of {url} are locked by {holder}; waited {waited:?}")]
    Locked { url: String, holder: String, waited: Duration },
    #[error("{origin} failed: {message}\n  statement: {statement}")]
    Statement { origin: String, statement: String, message: String },
    #[error("{what}: {message}")]
    Database { what: String, message: String },
}

pub trait Driver {
    fn dialect(&self) -> Dialect;
    /// The URL with the password redacted.
    fn describe(&self) -> String;
    /// The bookkeeping table's qualified name.
    fn table(&self) -> &'static str;
    /// Statements that create the bookkeeping if missing (idempotent).
    fn bookkeeping_ddl(&self) -> Vec<String>;
    /// `BEGIN` as this database should take it.
    fn begin(&self) -> &'static str;
    /// An SQL expression for "now" with sub-second precision, as text.
    fn now_expr(&self) -> &'static str;
    /// An SQL expression for milliseconds since the `applied_at` column's value.
    fn elapsed_ms_expr(&self) -> &'static str;
    /// Settings for each transaction lastgood opens (`SET LOCAL ...`), right after
    /// `BEGIN`: a setting of the session would stay behind on a pooled server
    /// connection, and apply to a transaction on another one not at all.
    fn transaction_settings(&self) -> Vec<String>;
    /// The statement that tries to take the migration lock for the open transaction
    /// ([`Role::Lock`]), when the lock lives in transactions (PostgreSQL); None when
    /// the run holds a lock of its own instead ([`Driver::lock`], SQLite).
    fn lock_sql(&self) -> Option<String>;

    fn execute(&mut self, stmt: &Stmt) -> Result<(), DbError>;
    /// Runs a statement that answers one boolean ([`Role::Lock`], [`Role::StillToDo`]).
    fn query_flag(&mut self, stmt: &Stmt) -> Result<bool, DbError>;
    fn applied(&mut self) -> Result<Vec<Applied>, DbError>;
    /// Takes the lock for a whole run, waiting at most `wait`; it dies with the
    /// process. Drivers whose lock lives in each transaction take none here.
    fn lock(&mut self, wait: Duration) -> Result<(), DbError>;
    fn unlock(&mut self) -> Result<(), DbError>;
    /// Who holds the migration lock, for the error after waiting for it.
    fn holder(&mut self) -> String {
        "another session".to_owned()
    }
    /// A rollback after a failed statement or a skipped migration (best effort), on
    /// every connection.
    fn rollback(&mut self);
}

fn origin_text(origin: &Option<(String, usize)>) -> String {
    match origin {
        Some((file, line)) => format!("{file}:{line}"),
        None => "lastgood's bookkeeping".to_owned(),
    }
}

pub(crate) fn statement_error(stmt: &Stmt, message: String) -> DbError {
    let mut shown: String = stmt.text.split_whitespace().collect::<Vec<_>>().join(" ");
    if shown.len() > 200 {
        let cut = (0..=200).rev().find(|i| shown.is_char_boundary(*i)).unwrap_or(0);
        shown.truncate(cut);
        shown.push_str("...");
    }
    DbError::Statement { origin: origin_text(&stmt.origin), statement: shown, message }
}
