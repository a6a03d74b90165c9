//! `lastgood db rehearse`: prove a rollback path before production needs it.
//!
//! On scratch databases (never the real one): reproduce the current schema by applying
//! the applied migrations' up scripts, run the down path to the target revision, then
//! compare the result with a fresh apply of the target using the semantic schema diff
//! ([`super::schema`]). When a down script fails, the failure is recorded with its file,
//! statement and the server's error, the scratch database is rebuilt at the revision
//! just below it, and the rehearsal goes on, so one run names every broken down script
//! (the comparison then only covers what could be reverted).
//!
//! With Alembic ([`rehearse_alembic`]) the same proof runs through Alembic itself:
//! `upgrade` a scratch database to the current revision, `downgrade` one revision at a
//! time to the target (a failed one is recorded with Alembic's own error, the scratch is
//! rebuilt just below it, and the rest go on), and compare with a scratch upgraded to
//! the target only. Alembic's `alembic_version` table is left out of the comparison: a
//! downgrade to base keeps it (empty), a fresh database never had it.
//!
//! PostgreSQL scratch databases are created on the same server (`CREATE DATABASE`
//! needs the CREATEDB privilege) and dropped afterwards, even on failure; SQLite ones
//! are temporary files.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::alembic::Alembic;
use super::driver::DbError;
use super::migrator::Direction;
use super::migrator::{DownTarget, MigrateError, Migrator, Settings};
use super::pg_client::{self, ConnectError};
use super::program::ToolError;
use super::schema::{self, Difference, SchemaError, Severity};
use super::url::{DbUrl, PgUrl};

#[derive(Debug, Clone, Serialize)]
pub struct DownFailure {
    pub migration: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rehearsal {
    pub from: Option<String>,
    pub to: Option<String>,
    pub reverted: Vec<String>,
    pub failures: Vec<DownFailure>,
    pub differences: Vec<Difference>,
    /// No down failed and no semantic difference was found.
    pub ok: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RehearseError {
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error("cannot prepare a scratch database: {source}")]
    Scratch { source: ScratchError },
    #[error(
        "cannot reproduce the current schema: migration {name} is applied but its up script is not in the migrations folder"
    )]
    MissingUp { name: String },
    #[error("cannot read a schema: {source}")]
    Schema { source: ScratchError },
    #[error(transparent)]
    Tool(#[from] ToolError),
}

/// What failed on a scratch database, as the database or the file system said it.
#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// `CREATE DATABASE` or `DROP DATABASE` on the server.
    #[error("{}", pg_client::message(.0))]
    Server(#[source] postgres::Error),
    #[error(transparent)]
    TempDir(std::io::Error),
    #[error(transparent)]
    Open(rusqlite::Error),
    #[error(transparent)]
    Read(#[from] SchemaError),
}

/// A scratch database that is removed when dropped. Few exist at a time, so the size
/// difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Scratch {
    Pg { admin: PgUrl, url: PgUrl, name: String },
    Sqlite { _dir: tempfile::TempDir, path: PathBuf },
}

impl Scratch {
    fn new(real: &DbUrl, tag: &str) -> Result<Self, RehearseError> {
        Self::create(real, tag).map_err(|source| RehearseError::Scratch { source })
    }

    fn create(real: &DbUrl, tag: &str) -> Result<Self, ScratchError> {
        match real {
            DbUrl::Postgres(pg) => {
                // Unique per scratch: a replacement is created before the one it
                // replaces is dropped, so the two must never share a name.
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let name = format!("lastgood_rehearse_{}_{tag}_{n}", std::process::id());
                let mut c = pg_client::connect(pg, "lastgood rehearse")?;
                for sql in [format!("DROP DATABASE IF EXISTS {name}"), format!("CREATE DATABASE {name}")] {
                    c.batch_execute(&sql).map_err(ScratchError::Server)?;
                }
                Ok(Self::Pg { admin: pg.clone(), url: pg.with_database(&name), name })
            }
            DbUrl::Sqlite(_) => {
                let dir = tempfile::tempdir().map_err(ScratchError::TempDir)?;
                let path = dir.path().join(format!("{tag}.db"));
                Ok(Self::Sqlite { _dir: dir, path })
            }
        }
    }

    fn url(&self) -> DbUrl {
        match self {
            Self::Pg { url, .. } => DbUrl::Postgres(url.clone()),
            Self::Sqlite { path, .. } => DbUrl::Sqlite(path.clone()),
        }
    }

    fn schema(&self) -> Result<schema::Schema, RehearseError> {
        self.read_schema().map_err(|source| RehearseError::Schema { source })
    }

    fn read_schema(&self) -> Result<schema::Schema, ScratchError> {
        match self {
            Self::Pg { url, .. } => {
                Ok(schema::introspect_postgres(&mut pg_client::connect(url, "lastgood rehearse")?)?)
            }
            Self::Sqlite { path, .. } => {
                let c = rusqlite::Connection::open(path).map_err(ScratchError::Open)?;
                Ok(schema::introspect_sqlite(&c)?)
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Self::Pg { admin, name, .. } = self {
            if let Ok(mut c) = pg_client::connect(admin, "lastgood rehearse") {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

fn up_to(url: &DbUrl, dir: &Path, settings: &Settings, to: Option<&str>) -> Result<Migrator, MigrateError> {
    let mut m = Migrator::open(url, Some(dir), settings, "lastgood rehearse")?;
    if let Some(to) = to {
        let plan = m.plan_up(Some(to))?;
        m.run(&plan, &mut |_, _| {})?;
    }
    Ok(m)
}

/// Rehearses the way from the real database's current revision down to `target`
/// (None: no migrations at all), using the up and down scripts in `dir`.
pub fn rehearse(
    real: &DbUrl,
    dir: &Path,
    settings: &Settings,
    target: Option<&str>,
) -> Result<Rehearsal, RehearseError> {
    rehearse_from(real, dir, settings, target, false)
}

/// Rehearses the way back of a release about to be deployed: from the newest migration
/// in `dir` (its head, applied on a scratch copy) down to `target`, a revision of the
/// real database's history (`[database] rehearse = "deploy"`).
pub fn rehearse_release(
    real: &DbUrl,
    dir: &Path,
    settings: &Settings,
    target: Option<&str>,
) -> Result<Rehearsal, RehearseError> {
    rehearse_from(real, dir, settings, target, true)
}

fn rehearse_from(
    real: &DbUrl,
    dir: &Path,
    settings: &Settings,
    target: Option<&str>,
    from_head: bool,
) -> Result<Rehearsal, RehearseError> {
    let mut live = Migrator::open(real, Some(dir), settings, "lastgood rehearse")?;
    let applied = live.applied()?;
    drop(live);
    let files = super::migration_files::discover(dir).map_err(MigrateError::from)?;
    if let Some(a) = applied.iter().find(|a| !files.iter().any(|m| m.version == a.version)) {
        return Err(RehearseError::MissingUp { name: a.name.clone() });
    }
    let from =
        if from_head { files.last().map(|m| m.version.clone()) } else { applied.last().map(|a| a.version.clone()) };
    let target_version = match target {
        None => None,
        Some(t) => Some(applied.iter().find(|a| a.version == t || a.name == t).map(|a| a.version.clone()).ok_or_else(
            || MigrateError::UnknownRevision {
                rev: t.to_owned(),
                known: applied.iter().map(|a| a.name.clone()).collect(),
            },
        )?),
    };

    // The down path, on a copy of the current schema.
    let mut scratch = Scratch::new(real, "down")?;
    let mut m = up_to(&scratch.url(), dir, settings, from.as_deref())?;
    let mut reverted = Vec::new();
    let mut failures = Vec::new();
    let down_target = DownTarget::To(target_version.clone().unwrap_or_else(|| "0".into()));
    loop {
        let plan = m.plan_down(&down_target)?;
        let Some(first) = plan.first().cloned() else { break };
        match m.run(std::slice::from_ref(&first), &mut |p, _| reverted.push(p.name.clone())) {
            Ok(()) => {}
            Err(MigrateError::Db(e @ DbError::Statement { .. })) | Err(MigrateError::Partial { source: e, .. }) => {
                failures.push(DownFailure { migration: first.name.clone(), error: e.to_string() });
                // Rebuild just below the failed migration and go on with the rest.
                let below = m.applied()?.iter().rev().nth(1).map(|a| a.version.clone());
                drop(m);
                scratch = Scratch::new(real, "down")?;
                m = up_to(&scratch.url(), dir, settings, below.as_deref())?;
            }
            Err(other) => return Err(other.into()),
        }
    }
    let rolled_back = scratch.schema()?;
    drop(m);
    drop(scratch);

    // A fresh apply of the target, for comparison.
    let fresh = Scratch::new(real, "fresh")?;
    let fresh_m = up_to(&fresh.url(), dir, settings, target_version.as_deref())?;
    let expected = fresh.schema()?;
    drop(fresh_m);
    let differences = schema::diff(&expected, &rolled_back);
    let ok = failures.is_empty() && !differences.iter().any(|d| d.severity == Severity::Semantic);
    Ok(Rehearsal { from, to: target_version, reverted, failures, differences, ok })
}

/// Rehearses Alembic's way from the real database's current revision down to `target`
/// (a revision as a user writes it; None or `base`: no revision at all), with the
/// revisions in `alembic`'s folder.
pub fn rehearse_alembic(real: &DbUrl, alembic: &Alembic, target: Option<&str>) -> Result<Rehearsal, RehearseError> {
    let history = alembic.history()?;
    let from = alembic.current()?;
    let to = match target {
        Some(t) => history.resolve(t, alembic.dir())?,
        None => None,
    };
    let route = history.route(from.as_deref(), to.as_deref())?;
    if route.direction == Direction::Up && !route.revisions.is_empty() {
        return Err(ToolError::Direction {
            what: format!(
                "Alembic revision {} is above the database's {}: a rehearsal proves a way back down",
                to.as_deref().unwrap_or("base"),
                from.as_deref().unwrap_or("base")
            ),
        }
        .into());
    }
    let scratch_at = |rev: Option<&str>, tag: &str| -> Result<(Scratch, Alembic), RehearseError> {
        let scratch = Scratch::new(real, tag)?;
        let a = alembic.against(&scratch.url());
        if let Some(rev) = rev {
            a.migrate(Direction::Up, Some(rev))?;
        }
        Ok((scratch, a))
    };

    // The down path, one revision at a time, on a copy of the current schema.
    let (mut scratch, mut a) = scratch_at(from.as_deref(), "down")?;
    let mut reverted = Vec::new();
    let mut failures = Vec::new();
    for r in &route.revisions {
        let below = match r.parents.as_slice() {
            [] => None,
            [one] => Some(one.as_str()),
            several => {
                return Err(ToolError::Direction {
                    what: format!(
                        "Alembic revision {} merges {}: rehearse down to a revision above the merge",
                        r.id,
                        several.join(" and ")
                    ),
                }
                .into());
            }
        };
        match a.migrate(Direction::Down, below.or(Some("base"))) {
            Ok(()) => reverted.push(r.label()),
            Err(e @ ToolError::Failed { .. }) => {
                failures.push(DownFailure { migration: r.label(), error: e.to_string() });
                // Rebuild just below the failed revision and go on with the rest.
                drop(a);
                drop(scratch);
                (scratch, a) = scratch_at(below, "down")?;
            }
            Err(other) => return Err(other.into()),
        }
    }
    let rolled_back = without_alembic_version(scratch.schema()?);
    drop(a);
    drop(scratch);

    // A fresh upgrade to the target, for comparison.
    let (fresh, _fresh_a) = scratch_at(to.as_deref(), "fresh")?;
    let expected = without_alembic_version(fresh.schema()?);
    let differences = schema::diff(&expected, &rolled_back);
    let ok = failures.is_empty() && !differences.iter().any(|d| d.severity == Severity::Semantic);
    Ok(Rehearsal { from, to, reverted, failures, differences, ok })
}

fn without_alembic_version(mut s: schema::Schema) -> schema::Schema {
    s.tables.remove("alembic_version");
    s.indexes.retain(|_, i| i.table != "alembic_version");
    s
}
