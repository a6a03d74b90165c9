//! The `[database]` settings the database code takes as they are: how to back up a
//! PostgreSQL database, and the migration timeouts.
//!
//! A leaf with no dependency on the rest of lastgood. The database module uses these
//! types (and re-exports them under their old names, `database::backup::PgMethod` and
//! `database::migrator::Settings`), and the error type depends on the database module, so
//! anything here that reached back into the crate would close an import cycle.

use std::time::Duration;

/// How to back up a PostgreSQL database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PgMethod {
    /// A template copy when no other session is connected (as during a rollback,
    /// after the app was stopped), else `pg_dump`.
    #[default]
    Auto,
    PgDump,
    Template,
}

/// How migrations run.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
    /// How long to wait for another run's migration lock.
    pub lock_wait: Duration,
}
