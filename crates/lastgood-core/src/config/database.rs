//! The `[environments.X.database]` section: which database, how its schema changes
//! (the adapter and the migrations folder), and how it is protected (backups).
//!
//! The URL is checked here when it is written in the file; `url_env` names a variable
//! that is read only when the database is used, so a config can be checked without the
//! secret at hand. Either way, the `PG*` variables and the password file that complete
//! a PostgreSQL connection are read when the database is used, too. The values that only tune the database code (backup method,
//! timeouts) are the leaf types of `tuning.rs`.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::raw::RawDatabase;
use super::tuning::{PgMethod, Settings};
use super::types::{Adapter, BackupPolicy, Database, DbUrlSource};
use super::value::{Fail, parse_duration, resolve};
use crate::database::url::DbUrl;
use crate::model::EnvName;
use crate::secret::Secret;

pub(super) fn check_database(env: &EnvName, raw: Spanned<RawDatabase>, dir: &Path) -> Result<Database, Fail> {
    let span = raw.span();
    let raw = raw.into_inner();
    let fail = |s: Option<Range<usize>>, m: String| (s.or(Some(span.clone())), format!("database.{m}"));
    let url = match (&raw.url, &raw.url_env) {
        (Some(u), None) => {
            DbUrl::check(u.get_ref(), dir).map_err(|e| fail(Some(u.span()), format!("url: {e}")))?;
            DbUrlSource::Url { text: Secret::new(u.get_ref().clone()), base: dir.to_path_buf() }
        }
        (None, Some(v)) => DbUrlSource::Env { name: v.get_ref().clone(), base: dir.to_path_buf() },
        (Some(u), Some(_)) => return Err(fail(Some(u.span()), "url: set either `url` or `url_env`, not both".into())),
        (None, None) => return Err(fail(None, "url: missing; set `url` or `url_env` (e.g. \"DATABASE_URL\")".into())),
    };
    let argv = |key: &str, v: &Option<Vec<String>>| -> Result<Option<Vec<String>>, Fail> {
        match v {
            Some(a) if a.is_empty() || a[0].is_empty() => Err(fail(None, format!("{key}: needs a program"))),
            other => Ok(other.clone()),
        }
    };
    let adapter = match raw.adapter.as_ref().map(|a| a.get_ref().as_str()).unwrap_or("builtin") {
        "builtin" => Adapter::Builtin,
        "alembic" => Adapter::Alembic(argv("alembic", &raw.alembic)?.unwrap_or_else(|| vec!["alembic".to_owned()])),
        "command" => match (argv("current", &raw.current)?, argv("up", &raw.up)?, argv("down_to", &raw.down_to)?) {
            (Some(current), Some(up), Some(down_to)) => Adapter::Command { current, up, down_to },
            _ => return Err(fail(None, "adapter = \"command\" needs `current`, `up` and `down_to` commands".into())),
        },
        other => {
            return Err(fail(
                raw.adapter.as_ref().map(Spanned::span),
                format!("adapter: unknown adapter `{other}`; expected builtin, alembic or command"),
            ));
        }
    };
    let backup = match raw.backup.as_ref().map(|b| b.get_ref().as_str()).unwrap_or("auto") {
        "auto" => BackupPolicy::Auto,
        "always" => BackupPolicy::Always,
        "never" => BackupPolicy::Never,
        other => {
            return Err(fail(
                raw.backup.as_ref().map(Spanned::span),
                format!("backup: `{other}` is not auto, always or never"),
            ));
        }
    };
    let d = |v: &Option<Spanned<String>>, key: &str| -> Result<Option<Duration>, Fail> {
        v.as_ref()
            .map(|s| parse_duration(s.get_ref()).map_err(|m| fail(Some(s.span()), format!("{key}: {m}"))))
            .transpose()
    };
    let settings = Settings {
        lock_timeout: d(&raw.lock_timeout, "lock_timeout")?.or(Some(Duration::from_secs(5))),
        statement_timeout: d(&raw.statement_timeout, "statement_timeout")?,
        lock_wait: d(&raw.lock_wait, "lock_wait")?.unwrap_or(Duration::from_secs(30)),
    };
    let migrations = match &raw.migrations {
        Some(m) if m.get_ref().is_empty() => return Err(fail(Some(m.span()), "migrations: is empty".into())),
        Some(m) if Path::new(m.get_ref()).is_absolute() => {
            return Err(fail(Some(m.span()), "migrations: must be relative to the release".into()));
        }
        Some(m) => Some(PathBuf::from(m.get_ref())),
        None => None,
    };
    let backup_dir = match &raw.backup_dir {
        Some(b) => resolve(dir, b),
        None => dir.join(".lastgood/backups").join(env.as_str()),
    };
    let backup_method = match raw.backup_method.as_ref().map(|m| m.get_ref().as_str()).unwrap_or("auto") {
        "auto" => PgMethod::Auto,
        "pg_dump" => PgMethod::PgDump,
        "template" => PgMethod::Template,
        other => {
            return Err(fail(
                raw.backup_method.as_ref().map(Spanned::span),
                format!("backup_method: `{other}` is not auto, pg_dump or template"),
            ));
        }
    };
    let backup_keep = match &raw.backup_keep {
        None => 5,
        Some(k) if !(1..=1000).contains(k.get_ref()) => {
            return Err((
                Some(k.span()),
                "backup_keep: must be between 1 and 1000 (a destructive rollback needs the backup it takes)".into(),
            ));
        }
        Some(k) => *k.get_ref() as usize,
    };
    let name = |key: &str, v: &Option<Spanned<String>>| -> Result<Option<String>, Fail> {
        match v {
            None => Ok(None),
            Some(s) => match crate::model::ContainerName::parse(s.get_ref()) {
                Ok(_) => Ok(Some(s.get_ref().clone())),
                Err(e) => Err((Some(s.span()), format!("{key}: {e}"))),
            },
        }
    };
    let run_in = name("run_in", &raw.run_in)?;
    let service = name("service", &raw.service)?;
    let rehearse_at_deploy = match &raw.rehearse {
        None => false,
        Some(r) if r.get_ref() == "deploy" => true,
        Some(r) if r.get_ref() == "manual" => false,
        Some(r) => {
            return Err((
                Some(r.span()),
                format!(
                    "rehearse: expected \"deploy\" (rehearse the way back at each deploy) or \"manual\", not {:?}",
                    r.get_ref()
                ),
            ));
        }
    };
    if rehearse_at_deploy && (migrations.is_none() || adapter != Adapter::Builtin) {
        return Err((
            raw.rehearse.as_ref().map(Spanned::span),
            "rehearse: \"deploy\" rehearses lastgood's own migrations (a `migrations` folder with the builtin adapter); rehearse other tools with `lastgood db rehearse`".into(),
        ));
    }
    Ok(Database {
        url,
        migrations,
        adapter,
        backup,
        backup_dir,
        backup_method,
        backup_keep,
        run_in,
        service,
        settings,
        rehearse_at_deploy,
    })
}
