//! Backups of a database, and restoring one over it: the data's way back when a
//! rollback has to undo more than the schema.
//!
//! A backup is one file: a PostgreSQL custom-format archive (`pg_dump -Fc`,
//! `<name>.dump`) or a copy of an SQLite database made with SQLite's online backup API
//! (`<name>.sqlite3`). It is not a replica, nor point-in-time recovery: it is the
//! database as it was when the backup began, which is what a rollback needs just before
//! a migration runs.
//!
//! This module is the one place that runs `pg_dump` and `pg_restore`. They get argv
//! only (never a shell string) and the connection through libpq's environment
//! (`PGHOST`, `PGPASSWORD`, ...), so neither the URL nor the password is ever in argv,
//! where any user can read it in `/proc`, nor in the stderr tail that errors carry.
//! `--no-password` keeps them from ever waiting on a password prompt.
//!
//! A backup is written under a hidden temporary name (mode 0600: backups hold the
//! data), checked, synced and only then renamed to its name, so a file named
//! `<name>.dump` is always complete. The check of a dump is `pg_restore --list` (a
//! custom-format TOC must be there) and then a full read of the archive into
//! `/dev/null`: the TOC is at the head of the file, so `--list` alone accepts a
//! truncated dump, while the full read decompresses every block (0.4 s for a 17 MB
//! dump). The check of an SQLite copy is `PRAGMA integrity_check`. An existing backup
//! is never overwritten: when the name is taken the new one gets `<name>-2.dump` and
//! so on, and [`BackupFile::path`] says which.
//!
//! A restore first compares the file's sha256 with the one recorded at backup time
//! and refuses a file that changed. PostgreSQL's `pg_restore` then reads the very
//! file handle that was hashed (as its stdin, which is seekable), so the file cannot
//! be swapped between the check and the restore. It runs with `--clean --if-exists
//! --single-transaction --exit-on-error`: either the whole backup is back or nothing
//! changed. `-j 2` cannot be combined with `--single-transaction` (nor with stdin), and
//! a parallel restore that fails half-way has already dropped tables, the worst state
//! to leave a database in during a rollback; at the sizes measured below it was not
//! faster anyway on two cores, where the server and pg_restore share the CPUs.
//! `--clean` drops only the objects the dump contains: a table created after the
//! backup stays, and if it references a restored table the restore fails and, being
//! one transaction, changes nothing. SQLite is restored with the online backup API
//! into the live file, not by copying files over it: other connections may be open,
//! and SQLite tells them that the schema changed.
//!
//! Measured (2 vCPU VM, PostgreSQL 15 on the same host, a 65 MB database: 320,000
//! rows with an index plus a small table): `pg_dump -Fc` took 0.85 s at `-Z 0`
//! (48 MB file), 1.6 s at `-Z 1` (17.6 MB) and 3.2 s at the default `-Z 6` (16.6 MB);
//! `pg_restore --single-transaction --clean` over the live database took 1.8-1.9 s
//! whatever the level, and 1.8-2.3 s with `-j 2`. So `-Z 1`: half the dump time of the
//! default for a file 6% larger, and restore speed does not depend on the level
//! (PostgreSQL 15's pg_dump offers only gzip; lz4 and zstd came in 16). Through this
//! module (a debug build, by hand on 2026-11-22), [`backup`] took 2.5-2.7 s
//! (pg_dump, the full read, sha256, fsync) and [`restore`] 2.2-3.2 s (sha256 and
//! pg_restore over a database where half the rows had been deleted). BENCHMARKS.md
//! has the restore benchmark at 500 MB.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::url::{DbUrl, PgUrl};
pub use crate::config::tuning::PgMethod;
pub use crate::ledger::backup::{BackupFile, BackupKind};

/// gzip level 1: see the measurements above.
const PG_DUMP_COMPRESSION: &str = "--compress=1";
/// How long SQLite waits for other connections' locks, during a backup and a restore.
const SQLITE_BUSY_WAIT: Duration = Duration::from_secs(30);
/// How many lines of a program's stderr an error keeps.
const STDERR_LINES: usize = 10;

impl BackupKind {
    fn of(url: &DbUrl) -> Self {
        // A file backup's kind; template copies are chosen explicitly.
        match url {
            DbUrl::Postgres(_) => Self::PgDump,
            DbUrl::Sqlite(_) => Self::Sqlite,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("`{name}` cannot name a backup file: {why}")]
    Name { name: String, why: &'static str },

    #[error("cannot start `{program}` (is the PostgreSQL client installed and on PATH?): {source}")]
    Spawn { program: &'static str, source: io::Error },

    #[error("`{program}` failed ({status}){}", if stderr_tail.is_empty() { String::new() } else { format!(":\n{stderr_tail}") })]
    Program { program: &'static str, status: String, stderr_tail: String },

    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },

    #[error("backup {} is not usable: {why}", path.display())]
    Verify { path: PathBuf, why: String },

    #[error("SQLite database {}: {source}", path.display())]
    Sqlite { path: PathBuf, source: rusqlite::Error },

    #[error(
        "backup {} was changed after it was written (sha256 {actual}, recorded {expected}); refusing to restore it",
        path.display()
    )]
    Checksum { path: PathBuf, expected: String, actual: String },

    #[error("backup {} is a {kind:?} backup and cannot be restored into {url}", path.display())]
    WrongKind { path: PathBuf, kind: BackupKind, url: String },

    #[error("{what}: {message}")]
    Server { what: String, message: String },

    #[error("a template copy needs {database} to itself, and {sessions} other session(s) are connected")]
    Busy { database: String, sessions: i64 },
}

/// Writes a backup with the given method for PostgreSQL (SQLite has one way).
pub fn backup_with(url: &DbUrl, dir: &Path, name: &str, method: PgMethod) -> Result<BackupFile, BackupError> {
    if let DbUrl::Postgres(pg) = url {
        match method {
            PgMethod::PgDump => {}
            PgMethod::Template => return template::backup(pg, name),
            PgMethod::Auto => match template::backup(pg, name) {
                Err(BackupError::Busy { .. }) => {}
                other => return other,
            },
        }
    }
    backup(url, dir, name)
}

/// Writes a backup of the database into `dir` (created, mode 0700, if needed) as
/// `<name>.dump` or `<name>.sqlite3` (`<name>-2.dump`... when that file exists).
pub fn backup(url: &DbUrl, dir: &Path, name: &str) -> Result<BackupFile, BackupError> {
    check_name(name)?;
    let started = Instant::now();
    let kind = BackupKind::of(url);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| BackupError::Io { path: dir.to_path_buf(), source })?;
    let partial = Partial::create(dir, name, kind)?;
    match url {
        DbUrl::Postgres(pg) => dump_pg(pg, &partial)?,
        DbUrl::Sqlite(live) => copy_sqlite(live, &partial.path)?,
    }
    let (sha256, bytes) = {
        let mut f = open(&partial.path)?;
        f.sync_all().map_err(|source| BackupError::Io { path: partial.path.clone(), source })?;
        hash(&mut f, &partial.path)?
    };
    let path = partial.publish(dir, name, kind)?;
    Ok(BackupFile { path, kind, sha256, bytes, duration_ms: started.elapsed().as_millis() as u64 })
}

/// Restores a backup over the database, after checking that the file is the one that
/// was written. Returns how long the restore took (checksum included).
pub fn restore(url: &DbUrl, file: &BackupFile) -> Result<Duration, BackupError> {
    let started = Instant::now();
    if let (DbUrl::Postgres(pg), BackupKind::PgTemplate) = (url, file.kind) {
        template::restore(pg, file)?;
        return Ok(started.elapsed());
    }
    if BackupKind::of(url) != file.kind {
        return Err(BackupError::WrongKind { path: file.path.clone(), kind: file.kind, url: url.to_string() });
    }
    let mut f = open(&file.path)?;
    let (actual, _) = hash(&mut f, &file.path)?;
    if !actual.eq_ignore_ascii_case(&file.sha256) {
        return Err(BackupError::Checksum { path: file.path.clone(), expected: file.sha256.clone(), actual });
    }
    match url {
        DbUrl::Postgres(pg) => {
            f.seek(SeekFrom::Start(0)).map_err(|source| BackupError::Io { path: file.path.clone(), source })?;
            let args = [
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                "--no-password",
                &format!("--dbname={}", libpq_dbname(&pg.database)),
            ];
            run(PG_RESTORE, &args, &pg.libpq_env(), Stdio::from(f), Stdio::null())?;
        }
        DbUrl::Sqlite(live) => {
            drop(f);
            restore_sqlite(&file.path, live)?;
        }
    }
    Ok(started.elapsed())
}

const PG_DUMP: &str = "pg_dump";
pub(super) const PG_RESTORE: &str = "pg_restore";

/// `pg_dump` into the partial file (its stdout, a regular file and so seekable: the
/// TOC gets the data offsets, which `pg_restore` needs to seek), then the checks.
fn dump_pg(pg: &PgUrl, partial: &Partial) -> Result<(), BackupError> {
    let out = partial.file.try_clone().map_err(|source| BackupError::Io { path: partial.path.clone(), source })?;
    // PGDATABASE names the database: nothing about the connection is in argv.
    let args = ["--format=custom", PG_DUMP_COMPRESSION, "--no-password"];
    run(PG_DUMP, &args, &pg.libpq_env(), Stdio::null(), Stdio::from(out))?;
    verify_dump(&partial.path)
}

/// `pg_restore --list` must show a custom-format header and TOC, and the whole archive
/// must read back. Neither connects to a server.
fn verify_dump(path: &Path) -> Result<(), BackupError> {
    let verify = |why: String| BackupError::Verify { path: path.to_path_buf(), why };
    let list = run(PG_RESTORE, &["--list"], &[], Stdio::from(open(path)?), Stdio::piped())
        .map_err(|e| verify(e.to_string()))?;
    let list = String::from_utf8_lossy(&list);
    let field = |key: &str| {
        list.lines().find_map(|l| l.trim_start_matches(';').trim().strip_prefix(key).map(|v| v.trim().to_owned()))
    };
    if field("Format:").as_deref() != Some("CUSTOM") {
        return Err(verify(format!("`pg_restore --list` shows no custom-format header:\n{}", tail(&list))));
    }
    if field("TOC Entries:").and_then(|n| n.parse::<u64>().ok()).is_none() {
        return Err(verify(format!("`pg_restore --list` shows no TOC:\n{}", tail(&list))));
    }
    // `--file=-`: pg_restore writes the whole archive out as SQL, to /dev/null; reading
    // every data block is what catches a truncated or corrupt file.
    run(PG_RESTORE, &["--file=-"], &[], Stdio::from(open(path)?), Stdio::null()).map_err(|e| verify(e.to_string()))?;
    Ok(())
}

/// Runs a PostgreSQL client program with the connection (if any) in its environment;
/// its stdout when piped.
pub(super) fn run(
    program: &'static str,
    args: &[&str],
    env: &[(String, String)],
    stdin: Stdio,
    stdout: Stdio,
) -> Result<Vec<u8>, BackupError> {
    let mut cmd = Command::new(program);
    for var in super::url::LIBPQ_UNSET {
        cmd.env_remove(var);
    }
    let out = cmd
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("PGAPPNAME", format!("lastgood {program}"))
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| BackupError::Spawn { program, source })?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    Err(BackupError::Program {
        program,
        status: describe(out.status),
        stderr_tail: tail(&String::from_utf8_lossy(&out.stderr)),
    })
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        (None, None) => status.to_string(),
    }
}

pub(super) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(STDERR_LINES)..].join("\n")
}

/// The value of `--dbname`: the database's name, unless libpq would read that name as
/// a connection string (it contains `=` or starts with a URI scheme), in which case it
/// becomes `dbname='...'`, still with nothing but the name in it.
pub(super) fn libpq_dbname(name: &str) -> String {
    if name.contains('=') || name.starts_with("postgres://") || name.starts_with("postgresql://") {
        format!("dbname='{}'", name.replace('\\', "\\\\").replace('\'', "\\'"))
    } else {
        name.to_owned()
    }
}

/// Copies the live database with the online backup API, in one step so that the copy
/// is one consistent snapshot even while others write, then checks it.
pub(super) fn copy_sqlite(live: &Path, copy: &Path) -> Result<(), BackupError> {
    // READ_WRITE without CREATE: a missing database is an error, not an empty backup.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let src = Connection::open_with_flags(live, flags).map_err(at(live))?;
    src.busy_timeout(SQLITE_BUSY_WAIT).map_err(at(live))?;
    let mut dst = Connection::open(copy).map_err(at(copy))?;
    copy_all(&src, &mut dst).map_err(at(copy))?;
    drop(src);
    // The copy takes the source's header, WAL flag included: make it one
    // self-contained file.
    let mode: String = dst.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0)).map_err(at(copy))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(BackupError::Verify { path: copy.to_path_buf(), why: format!("journal mode stays `{mode}`") });
    }
    let check: Vec<String> = dst
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(at(copy))?;
    if check != ["ok"] {
        return Err(BackupError::Verify {
            path: copy.to_path_buf(),
            why: format!("integrity_check: {}", check.join("; ")),
        });
    }
    dst.close().map_err(|(_, source)| BackupError::Sqlite { path: copy.to_path_buf(), source })
}

/// Writes the backup into the live database through SQLite, which locks it for the
/// copy and makes the other connections reload their schema.
pub(super) fn restore_sqlite(file: &Path, live: &Path) -> Result<(), BackupError> {
    let src = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(at(file))?;
    let mut dst = Connection::open(live).map_err(at(live))?;
    dst.busy_timeout(SQLITE_BUSY_WAIT).map_err(at(live))?;
    copy_all(&src, &mut dst).map_err(at(live))
}

/// The whole database in one `step(-1)`, retried while another connection holds a lock
/// the busy handler gave up on (SQLITE_LOCKED does not call it).
fn copy_all(src: &Connection, dst: &mut Connection) -> rusqlite::Result<()> {
    let deadline = Instant::now() + SQLITE_BUSY_WAIT;
    let backup = Backup::new(src, dst)?;
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            // More cannot follow step(-1); treat it like the transient results.
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some(format!("the database stayed locked for {} s", SQLITE_BUSY_WAIT.as_secs())),
                ));
            }
        }
    }
}

/// Maps an SQLite error to one that names the file.
pub(super) fn at(path: &Path) -> impl Fn(rusqlite::Error) -> BackupError + '_ {
    move |source| BackupError::Sqlite { path: path.to_path_buf(), source }
}

fn check_name(name: &str) -> Result<(), BackupError> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name.contains(['/', '\0']) {
        Some("it contains `/` or NUL")
    } else if name.starts_with('.') {
        Some("it starts with `.` (hidden names are for files being written)")
    } else {
        None
    };
    match why {
        Some(why) => Err(BackupError::Name { name: name.to_owned(), why }),
        None => Ok(()),
    }
}

pub(super) fn open(path: &Path) -> Result<File, BackupError> {
    File::open(path).map_err(|source| BackupError::Io { path: path.to_path_buf(), source })
}

/// SHA-256 (lowercase hex) and size of what `f` holds from its current position.
pub(super) fn hash(f: &mut File, path: &Path) -> Result<(String, u64), BackupError> {
    let mut h = crate::digest::Hasher::default();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(BackupError::Io { path: path.to_path_buf(), source }),
        };
        h.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((h.finish(), bytes))
}

/// A backup being written: a hidden file in the backup directory, removed unless it is
/// published.
struct Partial {
    path: PathBuf,
    file: File,
    published: bool,
}

impl Partial {
    fn create(dir: &Path, name: &str, kind: BackupKind) -> Result<Self, BackupError> {
        for n in 0u32.. {
            let path = dir.join(format!(".{name}.{}.{}-{n}.partial", kind.extension(), std::process::id()));
            match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
                Ok(file) => return Ok(Self { path, file, published: false }),
                // A leftover of a crashed run with the same pid: take the next number.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => continue,
                Err(source) => return Err(BackupError::Io { path, source }),
            }
        }
        unreachable!("the loop returns by n == 100")
    }

    /// Renames the finished file to the first free `<name>[-N].<ext>` and syncs the
    /// directory. Two writers cannot race for a name: backups run under the
    /// environment's lock.
    fn publish(mut self, dir: &Path, name: &str, kind: BackupKind) -> Result<PathBuf, BackupError> {
        let ext = kind.extension();
        let mut n = 1u32;
        let target = loop {
            let candidate =
                if n == 1 { dir.join(format!("{name}.{ext}")) } else { dir.join(format!("{name}-{n}.{ext}")) };
            match fs::symlink_metadata(&candidate) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => break candidate,
                Err(source) => return Err(BackupError::Io { path: candidate, source }),
                Ok(_) => n += 1,
            }
        };
        fs::rename(&self.path, &target).map_err(|source| BackupError::Io { path: target.clone(), source })?;
        self.published = true;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| BackupError::Io { path: dir.to_path_buf(), source })?;
        Ok(target)
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_file(&self.path);
            let _ = fs::remove_file(self.path.with_extension("partial-journal"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::test_pg::TestPg;

    fn pg_count(db: &TestPg, sql: &str) -> i64 {
        db.client().query_one(sql, &[]).unwrap().get(0)
    }

    #[test]
    fn postgres_round_trip_brings_rows_back() {
        let db = TestPg::new("backup_rt");
        db.client()
            .batch_execute(
                "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
                 INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;
                 CREATE TABLE notes (id int PRIMARY KEY, item int REFERENCES items(id));
                 INSERT INTO notes VALUES (1, 7);",
            )
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = backup(&db.url, &dir.path().join("backups"), "before-deploy").unwrap();

        assert_eq!(file.kind, BackupKind::PgDump);
        assert_eq!(file.path, dir.path().join("backups/before-deploy.dump"));
        assert_eq!(file.sha256.len(), 64);
        let meta = fs::metadata(&file.path).unwrap();
        assert_eq!(file.bytes, meta.len());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let leftovers: Vec<_> =
            fs::read_dir(dir.path().join("backups")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, ["before-deploy.dump"]);

        db.client()
            .batch_execute("DROP TABLE notes; UPDATE items SET name = 'changed'; DELETE FROM items WHERE id > 100;")
            .unwrap();
        restore(&db.url, &file).unwrap();
        assert_eq!(pg_count(&db, "SELECT count(*) FROM items"), 500);
        assert_eq!(pg_count(&db, "SELECT count(*) FROM items WHERE name = 'item ' || id"), 500);
        assert_eq!(pg_count(&db, "SELECT count(*) FROM notes WHERE item = 7"), 1);

        // Restoring reads the file without changing it, so its checksum stays valid.
        let (again, _) = hash(&mut open(&file.path).unwrap(), &file.path).unwrap();
        assert_eq!(again, file.sha256);
        restore(&db.url, &file).unwrap();

        // A second backup under the same name does not overwrite the first.
        let second = backup(&db.url, &dir.path().join("backups"), "before-deploy").unwrap();
        assert_eq!(second.path, dir.path().join("backups/before-deploy-2.dump"));
        assert_eq!(hash(&mut open(&file.path).unwrap(), &file.path).unwrap().0, file.sha256);
    }

    #[test]
    fn a_changed_dump_is_refused_before_anything_is_restored() {
        let db = TestPg::new("backup_flip");
        db.client().batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = backup(&db.url, dir.path(), "b").unwrap();
        let mut bytes = fs::read(&file.path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        fs::write(&file.path, bytes).unwrap();
        db.client().batch_execute("DELETE FROM t").unwrap();

        let err = restore(&db.url, &file).unwrap_err();
        assert!(
            matches!(&err, BackupError::Checksum { expected, actual, .. } if *expected == file.sha256 && *actual != file.sha256),
            "{err}"
        );
        assert_eq!(pg_count(&db, "SELECT count(*) FROM t"), 0, "nothing was restored");
    }

    #[test]
    fn a_file_that_is_not_a_dump_fails_verification() {
        let dir = tempfile::tempdir().unwrap();
        for (what, content) in [("text", b"hello, not a dump\n".to_vec()), ("empty", Vec::new())] {
            let path = dir.path().join(what);
            fs::write(&path, content).unwrap();
            let err = verify_dump(&path).unwrap_err();
            assert!(matches!(&err, BackupError::Verify { path: p, .. } if *p == path), "{err}");
            assert!(err.to_string().contains("pg_restore"), "{err}");
        }

        // A real dump cut short keeps its TOC (at the head), so only the full read
        // catches it.
        let db = TestPg::new("backup_verify");
        db.client()
            .batch_execute("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g")
            .unwrap();
        let file = backup(&db.url, dir.path(), "whole").unwrap();
        verify_dump(&file.path).unwrap();
        let bytes = fs::read(&file.path).unwrap();
        let cut = dir.path().join("cut.dump");
        fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
        let err = verify_dump(&cut).unwrap_err();
        assert!(matches!(err, BackupError::Verify { .. }), "{err}");
    }

    #[test]
    fn a_missing_database_names_pg_dump_without_the_password() {
        let db = TestPg::new("backup_missing");
        let DbUrl::Postgres(pg) = &db.url else { unreachable!() };
        let gone = pg.with_database("lg_backup_no_such_database");
        let password = gone.password().expect("LASTGOOD_TEST_PG has a password").to_owned();
        let dir = tempfile::tempdir().unwrap();

        let err = backup(&DbUrl::Postgres(gone), dir.path(), "b").unwrap_err();
        let BackupError::Program { program, stderr_tail, .. } = &err else { panic!("{err:?}") };
        assert_eq!(*program, "pg_dump");
        assert!(stderr_tail.contains("lg_backup_no_such_database"), "{stderr_tail}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(&password), "{shown}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "the partial file is removed");
    }

    #[test]
    fn sqlite_round_trip_while_a_connection_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("app.db");
        let app = Connection::open(&live).unwrap();
        app.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 300)
             INSERT INTO items SELECT n, 'item ' || n FROM g;",
        )
        .unwrap();
        let url = DbUrl::Sqlite(live.clone());
        let file = backup(&url, &dir.path().join("backups"), "before").unwrap();
        assert_eq!(file.kind, BackupKind::Sqlite);
        assert_eq!(file.path, dir.path().join("backups/before.sqlite3"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&file.path).unwrap().permissions().mode() & 0o777, 0o600);
        let copy = Connection::open(&file.path).unwrap();
        let mode: String = copy.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "delete");
        drop(copy);
        assert_eq!(hash(&mut open(&file.path).unwrap(), &file.path).unwrap().0, file.sha256);

        app.execute_batch("DELETE FROM items WHERE id > 10; UPDATE items SET name = 'x'; CREATE TABLE extra (a);")
            .unwrap();
        let count = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM items WHERE name = 'item ' || id", [], |r| r.get(0)).unwrap()
        };
        assert_eq!(count(&app), 0);

        restore(&url, &file).unwrap();
        // The connection that stayed open sees the restored data and schema.
        assert_eq!(count(&app), 300);
        let extra: i64 =
            app.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'extra'", [], |r| r.get(0)).unwrap();
        assert_eq!(extra, 0);
        let check: String = app.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");

        // A changed copy is refused.
        let mut bytes = fs::read(&file.path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&file.path, bytes).unwrap();
        assert!(matches!(restore(&url, &file), Err(BackupError::Checksum { .. })));
    }

    #[test]
    fn sqlite_backup_of_a_missing_database_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = backup(&DbUrl::Sqlite(dir.path().join("nope.db")), &dir.path().join("b"), "x").unwrap_err();
        assert!(matches!(err, BackupError::Sqlite { .. }), "{err}");
        assert!(!dir.path().join("nope.db").exists());
        assert_eq!(fs::read_dir(dir.path().join("b")).unwrap().count(), 0);
    }

    #[test]
    fn names_and_kinds_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let url = DbUrl::Sqlite(dir.path().join("a.db"));
        for bad in ["", "../x", ".hidden", "a/b"] {
            assert!(matches!(backup(&url, dir.path(), bad), Err(BackupError::Name { .. })), "{bad:?}");
        }
        let pg = DbUrl::parse("postgres://u:secret@localhost/app", Path::new("/")).unwrap();
        let file = BackupFile {
            path: dir.path().join("x.sqlite3"),
            kind: BackupKind::Sqlite,
            sha256: String::new(),
            bytes: 0,
            duration_ms: 0,
        };
        let err = restore(&pg, &file).unwrap_err();
        assert!(matches!(err, BackupError::WrongKind { .. }), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert_eq!(libpq_dbname("app"), "app");
        assert_eq!(libpq_dbname("a=b'c"), r"dbname='a=b\'c'");
        assert_eq!(serde_json::to_value(BackupKind::PgDump).unwrap(), serde_json::Value::String("pg_dump".into()));
    }
}

/// Template copies: the fast way back for PostgreSQL.
///
/// `CREATE DATABASE copy TEMPLATE db` copies the database's files inside the server, at
/// disk speed, where `pg_restore` replays every row and rebuilds every index. The price
/// is that PostgreSQL requires the source to have no other sessions while it copies:
/// fine during a rollback, after lastgood stopped the app, and otherwise `auto` falls
/// back to `pg_dump`. Restoring renames the live database aside, creates it again from
/// the copy, and drops the aside one only after that succeeded, so a failure leaves the
/// original in place. The copy is kept (it is the backup). Restoring needs a role that
/// owns the database and may create databases; the new database keeps the old owner.
pub(super) mod template {
    use super::*;
    use crate::database::pg_client::{self, message};

    pub(in crate::database) fn maintenance(pg: &PgUrl) -> Result<postgres::Client, BackupError> {
        let other = if pg.database == "postgres" { "template1" } else { "postgres" };
        pg_client::connect(&pg.with_database(other), "lastgood backup").map_err(|e| BackupError::Server {
            what: format!("connect to the `{other}` database"),
            message: e.to_string(),
        })
    }

    pub(in crate::database) fn ident(name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    pub(in crate::database) fn server(what: &str) -> impl Fn(postgres::Error) -> BackupError + '_ {
        move |e| BackupError::Server { what: what.to_owned(), message: message(&e) }
    }

    /// Relations and their sizes: changes when anyone writes to the copy.
    pub(in crate::database) fn fingerprint(pg: &PgUrl, database: &str) -> Result<(String, u64), BackupError> {
        let mut c = pg_client::connect(&pg.with_database(database), "lastgood backup")
            .map_err(|e| BackupError::Server { what: "connect to the backup copy".into(), message: e.to_string() })?;
        let row = c
            .query_one(
                "SELECT coalesce(string_agg(n.nspname || '.' || c.relname || ':' || c.relkind::text || ':' || pg_relation_size(c.oid), ',' \
                 ORDER BY n.nspname, c.relname), ''), pg_database_size(current_database()) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
                &[],
            )
            .map_err(server("fingerprint the backup copy"))?;
        let text: String = row.get(0);
        let bytes: i64 = row.get(1);
        Ok((crate::digest::sha256_hex(text.as_bytes()), bytes.max(0) as u64))
    }

    pub(super) fn backup(pg: &PgUrl, name: &str) -> Result<BackupFile, BackupError> {
        check_name(name)?;
        let started = Instant::now();
        let mut c = maintenance(pg)?;
        // A client that just disconnected can linger in pg_stat_activity for a moment.
        let mut sessions = 0;
        for _ in 0..10 {
            sessions = c
                .query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", &[&pg.database])
                .map_err(server("count the database's sessions"))?
                .get(0);
            if sessions == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if sessions > 0 {
            return Err(BackupError::Busy { database: pg.database.clone(), sessions });
        }
        // Database names are at most 63 bytes; an existing backup is never replaced.
        let safe = |s: &str| s.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        let mut base: String = format!("lastgood_backup_{}_{}", safe(&pg.database), safe(name));
        base.truncate(58);
        let mut copy = base.clone();
        for n in 2..1000 {
            let taken: bool = c
                .query_one("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", &[&copy])
                .map_err(server("look for a free backup name"))?
                .get(0);
            if !taken {
                break;
            }
            copy = format!("{base}_{n}");
        }
        let sql = format!("CREATE DATABASE {} TEMPLATE {}", ident(&copy), ident(&pg.database));
        match c.batch_execute(&sql) {
            Ok(()) => {}
            // Someone connected between the count and the copy.
            Err(e) if e.as_db_error().is_some_and(|d| d.message().contains("is being accessed by other users")) => {
                return Err(BackupError::Busy { database: pg.database.clone(), sessions: 1 });
            }
            Err(e) => return Err(server("copy the database")(e)),
        }
        let (sha256, bytes) = fingerprint(pg, &copy)?;
        Ok(BackupFile {
            path: PathBuf::from(copy),
            kind: BackupKind::PgTemplate,
            sha256,
            bytes,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    pub(super) fn restore(pg: &PgUrl, file: &BackupFile) -> Result<(), BackupError> {
        let copy = file.path.to_string_lossy().into_owned();
        let (actual, _) = fingerprint(pg, &copy)?;
        if actual != file.sha256 {
            return Err(BackupError::Checksum { path: file.path.clone(), expected: file.sha256.clone(), actual });
        }
        let mut c = maintenance(pg)?;
        let owner: String = c
            .query_one("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", &[&pg.database])
            .map_err(server("read the database's owner"))?
            .get(0);
        let aside = format!("lastgood_aside_{}", std::process::id());
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {}", ident(&aside)))
            .map_err(server("clear the aside name"))?;
        // Restoring replaces the database: client sessions still on it are ended.
        // Autovacuum workers are left alone (a role that is not superuser may not end
        // them); PostgreSQL stops them itself for RENAME and DROP.
        c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            &[&pg.database],
        )
        .map_err(server("end the sessions on the database"))?;
        c.batch_execute(&format!("ALTER DATABASE {} RENAME TO {}", ident(&pg.database), ident(&aside)))
            .map_err(server("move the live database aside"))?;
        let create =
            format!("CREATE DATABASE {} TEMPLATE {} OWNER {}", ident(&pg.database), ident(&copy), ident(&owner));
        if let Err(e) = c.batch_execute(&create) {
            // Put the original back before reporting.
            let _ = c.batch_execute(&format!("ALTER DATABASE {} RENAME TO {}", ident(&aside), ident(&pg.database)));
            return Err(server("create the database from the backup copy")(e));
        }
        // A plain DROP first: FORCE would also try to end autovacuum workers.
        if c.batch_execute(&format!("DROP DATABASE {}", ident(&aside))).is_err() {
            c.batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", ident(&aside)))
                .map_err(server("drop the replaced database"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod template_tests {
    use super::*;
    use crate::database::test_pg::TestPg;

    #[test]
    fn a_template_copy_restores_the_database_exactly_and_a_busy_one_falls_back_to_pg_dump() {
        let db = TestPg::new("template");
        {
            let mut c = db.client();
            c.batch_execute("CREATE TABLE keep (id int); INSERT INTO keep SELECT generate_series(1, 1000);").unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        // A session stays connected: the copy is impossible, pg_dump is used.
        let held = db.client();
        let f = backup_with(&db.url, dir.path(), "busy", PgMethod::Auto).unwrap();
        assert_eq!(f.kind, BackupKind::PgDump);
        assert!(matches!(backup_with(&db.url, dir.path(), "busy2", PgMethod::Template), Err(BackupError::Busy { .. })));
        drop(held);
        let f = backup_with(&db.url, dir.path(), "quiet", PgMethod::Auto).unwrap();
        assert_eq!(f.kind, BackupKind::PgTemplate);
        {
            let mut c = db.client();
            c.batch_execute("DELETE FROM keep WHERE id > 10; CREATE TABLE newer (id int);").unwrap();
        }
        restore(&db.url, &f).unwrap();
        let mut c = db.client();
        let n: i64 = c.query_one("SELECT count(*) FROM keep", &[]).unwrap().get(0);
        assert_eq!(n, 1000);
        let newer: bool = c.query_one("SELECT to_regclass('newer') IS NULL", &[]).unwrap().get(0);
        assert!(newer, "objects created after the backup are gone too");
        drop(c);
        // A copy someone changed is refused.
        let DbUrl::Postgres(pg) = &db.url else { unreachable!() };
        let mut copy = pg.with_database(&f.path.to_string_lossy()).client_config("t").connect(postgres::NoTls).unwrap();
        copy.batch_execute("CREATE TABLE tampered (id int)").unwrap();
        drop(copy);
        assert!(matches!(restore(&db.url, &f), Err(BackupError::Checksum { .. })));
    }
}
