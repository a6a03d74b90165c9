//! Database work that must happen where the database can be reached: on an
//! environment's first ssh host, when it has hosts (the database is often a service on
//! that server, reachable as `localhost` there and not at all from an operator's
//! laptop). Backups, their checks and removal, restores and the connection check all
//! go through one [`DbWorker`]: here ([`perform`]) or through lastgood's agent on the
//! host, which calls [`perform`] there. Backups then live on the host, in
//! `<deploy_to>/backups/`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::backup::{self, BackupFile, PgMethod};
use super::restore::{self, Source};
use super::url::DbUrl;

/// One piece of database work.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "work", rename_all = "snake_case")]
pub enum DbWork {
    /// Connect, and say so.
    Ping,
    /// The rows of Alembic's `alembic_version` table (null: no such table).
    VersionRows,
    Backup {
        label: String,
    },
    /// Check a restore's source (a file there, a recorded backup).
    Check {
        source: Source,
    },
    Restore {
        source: Source,
        op: String,
    },
    Finish {
        op: String,
    },
    Undo {
        op: String,
    },
    Exists {
        file: BackupFile,
    },
    Remove {
        file: BackupFile,
    },
}

/// Where database work is done when not by this process.
pub trait DbWorker: std::fmt::Debug {
    /// The work's answer (see [`perform`]), or why it could not be done.
    fn work(&self, work: &DbWork) -> Result<serde_json::Value, String>;
    /// Where, in words (`deploy@web1`).
    fn place(&self) -> String;
}

/// Does the work here against `url`, backups in `dir`. The answer: a backup's
/// [`BackupFile`], a restore's detail, whether a backup exists, or null.
pub fn perform(url: &DbUrl, dir: &Path, method: PgMethod, work: &DbWork) -> Result<serde_json::Value, String> {
    let s = |e: &dyn std::fmt::Display| e.to_string();
    Ok(match work {
        DbWork::Ping => {
            if let DbUrl::Postgres(pg) = url {
                let mut c = super::pg_client::connect(pg, "lastgood").map_err(|e| s(&e))?;
                c.simple_query("SELECT 1").map_err(|e| super::pg_client::message(&e))?;
            }
            serde_json::Value::Null
        }
        DbWork::VersionRows => serde_json::to_value(version_rows(url)).map_err(|e| s(&e))?,
        DbWork::Backup { label } => {
            let file = backup::backup_with(url, dir, label, method).map_err(|e| s(&e))?;
            serde_json::to_value(file).map_err(|e| s(&e))?
        }
        DbWork::Check { source } => {
            if let Source::File { path, .. } = source {
                let format = restore::detect(path).map_err(|e| s(&e))?;
                let source = Source::File { path: path.clone(), format };
                restore::check(url, &source).map_err(|e| s(&e))?;
                return serde_json::to_value(source).map_err(|e| s(&e));
            }
            restore::check(url, source).map_err(|e| s(&e))?;
            serde_json::to_value(source).map_err(|e| s(&e))?
        }
        DbWork::Restore { source, op } => restore::restore(url, source, op).map_err(|e| s(&e))?.into(),
        DbWork::Finish { op } => restore::finish(url, op).map_err(|e| s(&e))?.into(),
        DbWork::Undo { op } => restore::undo(url, op).map_err(|e| s(&e))?.into(),
        DbWork::Exists { file } => restore::exists(url, file).into(),
        DbWork::Remove { file } => {
            restore::remove(url, file).map_err(|e| s(&e))?;
            serde_json::Value::Null
        }
    })
}

/// The rows of `alembic_version`, read-only; None when there is no such table (or it
/// cannot be read: whoever asked then asks Alembic).
pub fn version_rows(url: &DbUrl) -> Option<Vec<String>> {
    const QUERY: &str = "SELECT version_num FROM alembic_version";
    match url {
        DbUrl::Postgres(pg) => {
            let mut c = super::pg_client::connect(pg, "lastgood").ok()?;
            let rows = c.simple_query(QUERY).ok()?;
            Some(
                rows.iter()
                    .filter_map(|m| match m {
                        postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                        _ => None,
                    })
                    .collect(),
            )
        }
        DbUrl::Sqlite(path) => {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let c = rusqlite::Connection::open_with_flags(path, flags).ok()?;
            let mut st = c.prepare(QUERY).ok()?;
            let rows = st.query_map([], |r| r.get::<_, String>(0)).ok()?;
            rows.collect::<Result<Vec<_>, _>>().ok()
        }
    }
}
