//! A database backup as the ledger records it: the file a backup wrote, and the
//! operation and release it was taken for.
//!
//! The types are the ledger's, not the database module's, although
//! [`crate::database::backup`] writes the files they describe: the ledger must store
//! and read them back without depending on how backups are taken (a dependency that
//! used to close an import cycle through the whole database module). The database
//! module re-exports [`BackupFile`] and [`BackupKind`] under its own name.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::ReleaseId;

/// A database backup, as the ledger records it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupRecord {
    pub id: u64,
    pub operation: Option<u64>,
    pub release: Option<ReleaseId>,
    pub file: BackupFile,
    pub schema_revision: Option<String>,
    pub created_at: i64,
    pub created_by: String,
}

/// A backup written by [`crate::database::backup::backup`]: what the ledger records and
/// [`crate::database::backup::restore`] takes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    pub path: PathBuf,
    pub kind: BackupKind,
    /// Lowercase hex of the file's SHA-256.
    pub sha256: String,
    pub bytes: u64,
    /// How long writing and checking the backup took.
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    /// A `pg_dump` custom-format archive (`-Fc`), restored with `pg_restore`.
    PgDump,
    /// A copy of an SQLite database, itself an SQLite database.
    Sqlite,
    /// A server-side copy, `CREATE DATABASE <copy> TEMPLATE <db>`: `path` holds the
    /// copy's database name and `sha256` a fingerprint of its relations and sizes.
    PgTemplate,
}

impl BackupKind {
    pub fn extension(self) -> &'static str {
        match self {
            Self::PgDump => "dump",
            Self::Sqlite => "sqlite3",
            Self::PgTemplate => "",
        }
    }
}
