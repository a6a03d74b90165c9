//! The SQLite driver for application databases: the migrator's [`Driver`] over a
//! `rusqlite` connection. It is not the ledger's SQLite store (`ledger/sqlite.rs`), which
//! keeps lastgood's own history in lastgood's own file; this one migrates the
//! application's database.
//!
//! Bookkeeping lives in `lastgood_migrations`. Concurrent runs are kept apart by an
//! exclusive `flock` on a file beside the database, held for the whole run: like
//! PostgreSQL's advisory locks, the kernel releases it when the process dies, so it can
//! never be left stuck. The file holds the holder's description for the error message.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::api::{Applied, DbError, Driver, Stmt, statement_error};
use crate::database::dialect::Dialect;
use crate::database::migration_files;

pub struct Sqlite {
    conn: Connection,
    path: PathBuf,
    actor: String,
    lock: Option<File>,
}

impl Sqlite {
    pub fn open(path: &Path, actor: &str) -> Result<Self, DbError> {
        let conn = Connection::open(path)
            .map_err(|e| DbError::Connect { url: format!("sqlite://{}", path.display()), message: e.to_string() })?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(|e| DbError::Connect { url: format!("sqlite://{}", path.display()), message: e.to_string() })?;
        Ok(Self { conn, path: path.to_path_buf(), actor: actor.to_owned(), lock: None })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// Where a lock file for a SQLite database lives.
fn lock_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".lastgood-migrate.lock");
    PathBuf::from(p)
}

impl Driver for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    fn describe(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
    fn table(&self) -> &'static str {
        "lastgood_migrations"
    }
    fn bookkeeping_ddl(&self) -> Vec<String> {
        vec![
            "CREATE TABLE IF NOT EXISTS lastgood_migrations (version TEXT PRIMARY KEY, name TEXT NOT NULL, \
             checksum TEXT NOT NULL, applied_at TEXT NOT NULL, duration_ms INTEGER, down_sql TEXT, \
             no_transaction INTEGER NOT NULL DEFAULT 0, applied_by TEXT)"
                .to_owned(),
        ]
    }
    fn begin(&self) -> &'static str {
        "BEGIN IMMEDIATE"
    }
    fn now_expr(&self) -> &'static str {
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    }
    fn elapsed_ms_expr(&self) -> &'static str {
        "CAST((julianday('now') - julianday(applied_at)) * 86400000 AS INTEGER)"
    }
    fn transaction_settings(&self) -> Vec<String> {
        Vec::new()
    }
    /// The run holds the `flock` ([`Driver::lock`]); transactions take nothing more.
    fn lock_sql(&self) -> Option<String> {
        None
    }

    fn execute(&mut self, stmt: &Stmt) -> Result<(), DbError> {
        self.conn.execute_batch(&stmt.text).map_err(|e| statement_error(stmt, e.to_string()))
    }

    fn query_flag(&mut self, stmt: &Stmt) -> Result<bool, DbError> {
        self.conn
            .query_row(&stmt.text, [], |r| r.get::<_, i64>(0))
            .map(|n| n != 0)
            .map_err(|e| statement_error(stmt, e.to_string()))
    }

    fn applied(&mut self) -> Result<Vec<Applied>, DbError> {
        let err =
            |e: rusqlite::Error| DbError::Database { what: "read the bookkeeping".into(), message: e.to_string() };
        let exists: bool = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'lastgood_migrations'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(err)?;
        if !exists {
            return Ok(Vec::new());
        }
        let mut s = self
            .conn
            .prepare("SELECT version, name, checksum, applied_at, duration_ms, down_sql, no_transaction, applied_by FROM lastgood_migrations")
            .map_err(err)?;
        let rows = s
            .query_map([], |r| {
                Ok(Applied {
                    version: r.get(0)?,
                    name: r.get(1)?,
                    checksum: r.get(2)?,
                    applied_at: r.get(3)?,
                    duration_ms: r.get(4)?,
                    down_sql: r.get(5)?,
                    no_transaction: r.get(6)?,
                    applied_by: r.get(7)?,
                })
            })
            .map_err(err)?;
        let mut out = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(err)?;
        out.sort_by(|a, b| migration_files::compare_versions(&a.version, &b.version));
        Ok(out)
    }

    fn lock(&mut self, wait: Duration) -> Result<(), DbError> {
        let path = lock_path(&self.path);
        let file =
            std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(
                |e| DbError::Database {
                    what: format!("open the lock file {}", path.display()),
                    message: e.to_string(),
                },
            )?;
        let start = Instant::now();
        loop {
            // SAFETY: flock on a descriptor we own; no memory is involved.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                let mut f = &file;
                let _ = f.set_len(0);
                let _ = writeln!(f, "{} (pid {})", self.actor, std::process::id());
                self.lock = Some(file);
                return Ok(());
            }
            if start.elapsed() >= wait {
                let holder = std::fs::read_to_string(&path).unwrap_or_default().trim().to_owned();
                return Err(DbError::Locked {
                    url: self.describe(),
                    holder: if holder.is_empty() { "another process".into() } else { holder },
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn unlock(&mut self) -> Result<(), DbError> {
        // Closing the descriptor releases the flock.
        self.lock = None;
        Ok(())
    }

    fn rollback(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }
}
