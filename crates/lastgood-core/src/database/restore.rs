//! An emergency restore of a whole database, in phases a journal can resume or undo.
//!
//! The runbook's way is to drop the database, create it again and feed it a dump: if
//! the dump turns out to be bad half way, there is no database at all. Here the data
//! goes into a fresh database beside the live one first (a template copy of a
//! lastgood backup, `pg_restore -j 2` of a custom-format dump, `psql` of a plain SQL
//! dump); only when it loaded completely is the live database renamed aside and the
//! fresh one renamed into its place, two renames that take no time. The old database is
//! kept aside until the restore is verified ([`finish`] drops it); [`undo`] puts it
//! back. SQLite has no renames across connections: its safety copy is taken with the
//! online backup API first, then the source is written into the live file the same way.
//!
//! Every phase looks at what exists (the live, aside and fresh databases, named after
//! the operation) and does only what is missing, so a `kill -9` anywhere leaves a state
//! that [`restore`] finishes or [`undo`] reverses.
//!
//! Names a restore leaves on a server start with `lastgood_`, so nobody takes them for
//! the application's own: `lastgood_restore_<op>_<db>` while loading,
//! `lastgood_aside_<op>_<db>` for the database it replaced.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};

use super::backup::{self, BackupError, BackupFile, BackupKind, template};
use super::url::{DbUrl, PgUrl};

/// Where a restore's data comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum Source {
    /// A backup lastgood took and recorded (its checksum is checked before use).
    Backup { id: u64, file: BackupFile },
    /// A file the team brought: what `pg_dump` or SQLite wrote.
    File { path: PathBuf, format: Format },
}

/// What a restore file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `pg_dump` plain SQL (`pg_dump db > dump.sql`), loaded with `psql`.
    PlainSql,
    /// `pg_dump -Fc`, loaded with `pg_restore`.
    CustomDump,
    /// An SQLite database file.
    Sqlite,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlainSql => "plain SQL dump",
            Self::CustomDump => "custom-format dump",
            Self::Sqlite => "SQLite database",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{} does not exist or cannot be read: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error(
        "{} is not a dump lastgood can restore: expected a plain SQL dump (pg_dump), a custom-format dump (pg_dump -Fc) or an SQLite database",
        path.display()
    )]
    NotADump { path: PathBuf },
    #[error("{} is a {}, and the database is {database}: it cannot be restored there", path.display(), format.as_str())]
    WrongFormat { path: PathBuf, format: Format, database: &'static str },
    #[error("backup {id} no longer exists: {what} is gone")]
    Missing { id: u64, what: String },
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error("the restore left {what} in a state lastgood cannot read: {detail}")]
    State { what: String, detail: String },
}

impl Source {
    /// The file or database the data is read from, for messages.
    pub fn location(&self) -> String {
        match self {
            Self::Backup { file, .. } => file.path.display().to_string(),
            Self::File { path, .. } => path.display().to_string(),
        }
    }
}

/// Reads a file's first bytes to tell what it is; an unrecognised file is refused.
pub fn detect(path: &Path) -> Result<Format, RestoreError> {
    let unreadable = |source| RestoreError::Unreadable { path: path.to_path_buf(), source };
    let mut head = Vec::with_capacity(4096);
    fs::File::open(path).and_then(|f| f.take(4096).read_to_end(&mut head)).map_err(unreadable)?;
    if head.starts_with(b"SQLite format 3\0") {
        return Ok(Format::Sqlite);
    }
    if head.starts_with(b"PGDMP") {
        return Ok(Format::CustomDump);
    }
    // pg_dump's plain format opens with its banner; a hand-written script at least
    // with SQL text. Binary or empty files are neither.
    let text = std::str::from_utf8(&head).map(str::trim_start).unwrap_or("");
    let sql_start = ["--", "SET ", "CREATE ", "BEGIN", "SELECT ", "\\connect", "INSERT ", "COPY "];
    if text.contains("PostgreSQL database dump") || sql_start.iter().any(|p| text.starts_with(p)) {
        return Ok(Format::PlainSql);
    }
    Err(RestoreError::NotADump { path: path.to_path_buf() })
}

/// Checks, before anything changes, that the source can be restored into `url`: it is
/// there, it is the right kind for the database, and a backup is the one recorded.
pub fn check(url: &DbUrl, source: &Source) -> Result<(), RestoreError> {
    let database = match url {
        DbUrl::Postgres(_) => "PostgreSQL",
        DbUrl::Sqlite(_) => "SQLite",
    };
    match source {
        Source::File { path, format } => {
            let fits = matches!(
                (url, format),
                (DbUrl::Postgres(_), Format::PlainSql | Format::CustomDump) | (DbUrl::Sqlite(_), Format::Sqlite)
            );
            if !fits {
                return Err(RestoreError::WrongFormat { path: path.clone(), format: *format, database });
            }
            fs::metadata(path).map_err(|source| RestoreError::Unreadable { path: path.clone(), source })?;
            Ok(())
        }
        Source::Backup { id, file } => match (url, file.kind) {
            (DbUrl::Postgres(pg), BackupKind::PgTemplate) => {
                let copy = file.path.to_string_lossy();
                let (actual, _) = template::fingerprint(pg, &copy)
                    .map_err(|e| RestoreError::Missing { id: *id, what: format!("its copy {copy} ({e})") })?;
                if actual != file.sha256 {
                    return Err(BackupError::Checksum {
                        path: file.path.clone(),
                        expected: file.sha256.clone(),
                        actual,
                    }
                    .into());
                }
                Ok(())
            }
            (DbUrl::Postgres(_), BackupKind::PgDump) | (DbUrl::Sqlite(_), BackupKind::Sqlite) => {
                checksum(*id, file).map(drop)
            }
            (_, kind) => Err(BackupError::WrongKind { path: file.path.clone(), kind, url: url.to_string() }.into()),
        },
    }
}

/// Whether a backup's data is still where it was written (a file, or a template copy
/// on the server).
pub fn exists(url: &DbUrl, file: &BackupFile) -> bool {
    match (url, file.kind) {
        (DbUrl::Postgres(pg), BackupKind::PgTemplate) => {
            template::fingerprint(pg, &file.path.to_string_lossy()).is_ok()
        }
        _ => file.path.is_file(),
    }
}

/// Removes a backup lastgood took (retention): its file, or its template copy.
pub fn remove(url: &DbUrl, file: &BackupFile) -> Result<(), RestoreError> {
    match (url, file.kind) {
        (DbUrl::Postgres(pg), BackupKind::PgTemplate) => {
            let mut c = template::maintenance(pg)?;
            let name = file.path.to_string_lossy();
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {}", template::ident(&name)))
                .map_err(template::server("drop an old backup copy"))?;
            Ok(())
        }
        _ => match fs::remove_file(&file.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(BackupError::Io { path: file.path.clone(), source: e }.into())
            }
            _ => Ok(()),
        },
    }
}

fn checksum(id: u64, file: &BackupFile) -> Result<fs::File, RestoreError> {
    let mut f = fs::File::open(&file.path)
        .map_err(|e| RestoreError::Missing { id, what: format!("{} ({e})", file.path.display()) })?;
    let (actual, _) = backup::hash(&mut f, &file.path)?;
    if !actual.eq_ignore_ascii_case(&file.sha256) {
        return Err(BackupError::Checksum { path: file.path.clone(), expected: file.sha256.clone(), actual }.into());
    }
    Ok(f)
}

/// The names a restore of operation `op` uses on a PostgreSQL server.
struct Names {
    live: String,
    aside: String,
    fresh: String,
}

impl Names {
    fn of(pg: &PgUrl, op: impl std::fmt::Display) -> Self {
        // Database names are at most 63 bytes.
        let name = |what: &str| {
            let mut n =
                format!("lastgood_{what}_{op}_{}", pg.database.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
            n.truncate(63);
            n
        };
        Self { live: pg.database.clone(), aside: name("aside"), fresh: name("restore") }
    }
}

/// Where the database that a restore replaced is kept, for messages (`op` is the
/// operation's restore key (see `journal`), or a placeholder for a plan not recorded
/// yet). The key, not the id alone, names the copies: two ledgers (two operators'
/// SQLite files) number their operations alike, and one's copy kept aside must never be
/// taken for the other's restore being already done.
pub fn aside(url: &DbUrl, op: impl std::fmt::Display) -> String {
    match url {
        DbUrl::Postgres(pg) => Names::of(pg, op).aside,
        DbUrl::Sqlite(live) => aside_file(live, op).display().to_string(),
    }
}

fn aside_file(live: &Path, op: impl std::fmt::Display) -> PathBuf {
    let name = live.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    live.with_file_name(format!("{name}.lastgood-aside-{op}"))
}

/// Puts the source's data in place of the database. Finishes what a crashed run of the
/// same operation left; does nothing when that run already got to the end.
pub fn restore(url: &DbUrl, source: &Source, op: &str) -> Result<String, RestoreError> {
    match url {
        DbUrl::Postgres(pg) => restore_pg(pg, source, op),
        DbUrl::Sqlite(live) => restore_sqlite(live, source, op),
    }
}

fn exists_db(c: &mut postgres::Client, name: &str) -> Result<bool, BackupError> {
    Ok(c.query_one("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", &[&name])
        .map_err(template::server("look for a database"))?
        .get(0))
}

fn drop_db(c: &mut postgres::Client, name: &str) -> Result<(), BackupError> {
    end_sessions(c, name)?;
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {}", template::ident(name)))
        .map_err(template::server("drop a database"))
}

/// Ends the client sessions on a database (the app is stopped, or was warned about).
fn end_sessions(c: &mut postgres::Client, name: &str) -> Result<(), BackupError> {
    c.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
        &[&name],
    )
    .map(drop)
    .map_err(template::server("end the sessions on the database"))
}

fn rename(c: &mut postgres::Client, from: &str, to: &str) -> Result<(), BackupError> {
    end_sessions(c, from)?;
    c.batch_execute(&format!("ALTER DATABASE {} RENAME TO {}", template::ident(from), template::ident(to)))
        .map_err(template::server("rename a database"))
}

fn restore_pg(pg: &PgUrl, source: &Source, op: &str) -> Result<String, RestoreError> {
    let n = Names::of(pg, op);
    let mut c = template::maintenance(pg)?;
    let (live, aside, fresh) =
        (exists_db(&mut c, &n.live)?, exists_db(&mut c, &n.aside)?, exists_db(&mut c, &n.fresh)?);
    match (live, aside, fresh) {
        (true, true, false) => return Ok(format!("already restored; the database before it is kept as {}", n.aside)),
        (false, true, true) => {
            // Killed between the two renames: the fresh copy is complete.
            rename(&mut c, &n.fresh, &n.live)?;
            return Ok(format!("restored; the database before it is kept as {}", n.aside));
        }
        (true, true, true) => {
            drop_db(&mut c, &n.fresh)?;
            return Ok(format!("already restored; the database before it is kept as {}", n.aside));
        }
        (false, true, false) => {
            return Err(RestoreError::State {
                what: format!("database {}", n.live),
                detail: format!("it is missing and only {} (the one it replaced) exists", n.aside),
            });
        }
        _ => {}
    }
    // A fresh copy that exists now is a load cut short: start it again.
    if fresh {
        drop_db(&mut c, &n.fresh)?;
    }
    let owner: String = if live {
        c.query_one("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", &[&n.live])
            .map_err(template::server("read the database's owner"))?
            .get(0)
    } else {
        c.query_one("SELECT current_user::text", &[]).map_err(template::server("read the current user"))?.get(0)
    };
    let create = |template_of: Option<&str>| {
        format!(
            "CREATE DATABASE {}{} OWNER {}",
            template::ident(&n.fresh),
            template_of.map(|t| format!(" TEMPLATE {}", template::ident(t))).unwrap_or_default(),
            template::ident(&owner)
        )
    };
    let target = pg.with_database(&n.fresh);
    let env = target.libpq_env();
    let loaded = match source {
        Source::Backup { file, .. } if file.kind == BackupKind::PgTemplate => {
            let copy = file.path.to_string_lossy().into_owned();
            c.batch_execute(&create(Some(&copy))).map_err(template::server("copy the backup into a fresh database"))?;
            format!("copied backup {copy}")
        }
        Source::Backup { id, file } => {
            checksum(*id, file)?;
            c.batch_execute(&create(None)).map_err(template::server("create a fresh database"))?;
            pg_restore(&file.path, &n.fresh, &env)?;
            // The file was read by path (pg_restore -j needs one): it must still be the
            // one that was checked.
            checksum(*id, file)?;
            format!("pg_restore -j 2 of {}", file.path.display())
        }
        Source::File { path, format: Format::CustomDump } => {
            c.batch_execute(&create(None)).map_err(template::server("create a fresh database"))?;
            pg_restore(path, &n.fresh, &env)?;
            format!("pg_restore -j 2 of {}", path.display())
        }
        Source::File { path, format: Format::PlainSql } => {
            c.batch_execute(&create(None)).map_err(template::server("create a fresh database"))?;
            let file = backup::open(path)?;
            let args = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "--no-password"];
            backup::run(PSQL, &args, &env, Stdio::from(file), Stdio::null())?;
            format!("psql of {}", path.display())
        }
        Source::File { path, format } => {
            return Err(RestoreError::WrongFormat { path: path.clone(), format: *format, database: "PostgreSQL" });
        }
    };
    crate::failpoint::hit("mid:restore-db");
    if live {
        rename(&mut c, &n.live, &n.aside)?;
    }
    crate::failpoint::hit("mid:restore-db-swap");
    rename(&mut c, &n.fresh, &n.live)?;
    Ok(if live {
        format!("{loaded} into a fresh database, now {}; the one it replaced is kept as {}", n.live, n.aside)
    } else {
        format!("{loaded} into a fresh database, now {}", n.live)
    })
}

const PSQL: &str = "psql";

fn pg_restore(path: &Path, database: &str, env: &[(String, String)]) -> Result<(), BackupError> {
    let file = path.to_string_lossy();
    let dbname = format!("--dbname={}", backup::libpq_dbname(database));
    let args = ["--exit-on-error", "--no-owner", "--no-privileges", "--no-password", "--jobs=2", &dbname, &file];
    backup::run(backup::PG_RESTORE, &args, env, Stdio::null(), Stdio::null()).map(drop)
}

fn restore_sqlite(live: &Path, source: &Source, op: &str) -> Result<String, RestoreError> {
    let file = match source {
        Source::Backup { id, file } => {
            checksum(*id, file)?;
            file.path.clone()
        }
        Source::File { path, .. } => path.clone(),
    };
    let aside = aside_file(live, op);
    // The safety copy first, once: a resumed run must not copy the restored data over it.
    if live.exists() && !aside.exists() {
        let tmp = aside.with_extension("partial");
        let _ = fs::remove_file(&tmp);
        backup::copy_sqlite(live, &tmp)?;
        fs::rename(&tmp, &aside).map_err(|source| BackupError::Io { path: aside.clone(), source })?;
    }
    crate::failpoint::hit("mid:restore-db");
    backup::restore_sqlite(&file, live)?;
    Ok(format!(
        "wrote {} into {}; the database before it is kept as {}",
        file.display(),
        live.display(),
        aside.display()
    ))
}

/// Puts back the database a restore replaced (`resume --abort`).
pub fn undo(url: &DbUrl, op: &str) -> Result<String, RestoreError> {
    match url {
        DbUrl::Postgres(pg) => {
            let n = Names::of(pg, op);
            let mut c = template::maintenance(pg)?;
            if exists_db(&mut c, &n.fresh)? {
                drop_db(&mut c, &n.fresh)?;
            }
            if !exists_db(&mut c, &n.aside)? {
                return Ok(format!("nothing to undo: {} was never replaced", n.live));
            }
            // The live database is the restored copy: the backup still has its data.
            if exists_db(&mut c, &n.live)? {
                drop_db(&mut c, &n.live)?;
            }
            rename(&mut c, &n.aside, &n.live)?;
            Ok(format!("put back the database the restore replaced ({} -> {})", n.aside, n.live))
        }
        DbUrl::Sqlite(live) => {
            let aside = aside_file(live, op);
            if !aside.exists() {
                return Ok(format!("nothing to undo: {} was never replaced", live.display()));
            }
            backup::restore_sqlite(&aside, live)?;
            fs::remove_file(&aside).map_err(|source| BackupError::Io { path: aside.clone(), source })?;
            Ok(format!("put back the database the restore replaced into {}", live.display()))
        }
    }
}

/// Drops the database a verified restore replaced.
pub fn finish(url: &DbUrl, op: &str) -> Result<String, RestoreError> {
    match url {
        DbUrl::Postgres(pg) => {
            let n = Names::of(pg, op);
            let mut c = template::maintenance(pg)?;
            if !exists_db(&mut c, &n.aside)? {
                return Ok("nothing was kept aside".into());
            }
            drop_db(&mut c, &n.aside)?;
            Ok(format!("dropped {}, the database the restore replaced", n.aside))
        }
        DbUrl::Sqlite(live) => {
            let aside = aside_file(live, op);
            match fs::remove_file(&aside) {
                Ok(()) => Ok(format!("removed {}, the database the restore replaced", aside.display())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok("nothing was kept aside".into()),
                Err(source) => Err(BackupError::Io { path: aside, source }.into()),
            }
        }
    }
}
