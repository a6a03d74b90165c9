//! What the migrator needs from a database, behind one trait: run statements (in a
//! transaction or not), keep the bookkeeping table, and hold the migration lock. The
//! statements, the bookkeeping row and the errors a driver returns are defined here too.
//!
//! The migrator builds every statement itself, bookkeeping included, and the driver
//! runs exactly those strings; that is how `--sql` can print exactly what would run.
//! Transactions are plain `BEGIN`/`COMMIT` statements in that list for the same reason.
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
}

impl Stmt {
    pub fn ours(text: impl Into<String>) -> Self {
        Self { text: text.into(), origin: None }
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
    /// Session settings applied once after connecting (shown by `--sql`).
    fn session(&self) -> Vec<String>;

    fn execute(&mut self, stmt: &Stmt) -> Result<(), DbError>;
    fn applied(&mut self) -> Result<Vec<Applied>, DbError>;
    /// Takes the migration lock, waiting at most `wait`; it dies with the process.
    fn lock(&mut self, wait: Duration) -> Result<(), DbError>;
    fn unlock(&mut self) -> Result<(), DbError>;
    /// A rollback after a failed statement (best effort).
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
