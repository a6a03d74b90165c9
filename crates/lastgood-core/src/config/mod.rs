//! `lastgood.toml`: read once, checked strictly, turned into typed values.
//!
//! Unknown keys, wrong types and bad values are errors that name the file, line and
//! column, because a typo in a rollback tool's config is discovered on the worst day.
//! Deserialisation into `Raw*` structs catches shape errors (with `toml`'s spans);
//! the checks after it catch values (with [`toml::Spanned`] fields), and produce an
//! [`Environment`] that the rest of the library can trust. Relative paths are resolved
//! against the config file's folder here, so nothing later depends on the cwd.
//!
//! The parts, as cargo keeps its raw manifest schema apart from the typed one:
//! `raw.rs` is the file's shape for serde; `types.rs` the typed values the library
//! trusts; `runtime.rs`, `hosts.rs`, `database.rs` and `checks.rs` check one section
//! each, with what they share in `value.rs`; `tuning.rs` holds the database settings as
//! a leaf the database module can use; `template.rs` is what `lastgood init` writes.
//! This file reads the file, checks each environment table as a whole (the keys no
//! section owns and the rules across sections) and finds an environment by name.

mod checks;
mod database;
mod hosts;
pub mod monitor;
mod programs;
mod proxy;
mod raw;
mod runtime;
mod template;
pub mod tuning;
pub mod types;
mod value;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use self::raw::{RawConfig, RawEnv};
use self::value::{Fail, inside_release, parse_duration, resolve};
use crate::error::{Error, Result};
use crate::model::EnvName;
use crate::secret::Secret;

pub use self::template::{template, template_for};
pub use self::types::{
    Adapter, BackupPolicy, Compose, ConfigFile, Database, DbUrlSource, Environment, Gitops, GitopsMode, Notify,
    OnFailure, Rollout, Runtime, Start,
};

pub const DEFAULT_FILE: &str = "lastgood.toml";

/// Where the ledger lives.
#[derive(Debug, Clone)]
pub enum LedgerUrl {
    Sqlite(PathBuf),
    /// A team ledger: `[ledger] url` or `url_env` (completed as every libpq program
    /// completes it, when it is used), and the schema that holds this project's ledger.
    Postgres(TeamLedger),
}

#[derive(Debug, Clone)]
pub struct TeamLedger {
    pub url: DbUrlSource,
    /// `[ledger] schema`, default `lastgood`: one schema per project.
    pub schema: String,
    /// `[ledger] allow_superuser` (default false): write the ledger even when connected
    /// as a superuser, who bypasses the grants that keep the audit table append-only.
    pub allow_superuser: bool,
}

impl PartialEq for LedgerUrl {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Sqlite(a), Self::Sqlite(b)) => a == b,
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub ledger: LedgerUrl,
    /// `[ledger] schema` (default `lastgood`): the team ledger's schema, and where
    /// `ledger migrate` puts an SQLite ledger.
    pub ledger_schema: String,
    pub environments: BTreeMap<EnvName, Environment>,
}

impl Config {
    /// `--config PATH`, else `LASTGOOD_CONFIG`, else `./lastgood.toml`.
    pub fn locate(flag: Option<&Path>) -> PathBuf {
        flag.map(Path::to_path_buf)
            .or_else(|| std::env::var_os("LASTGOOD_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_FILE))
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::ConfigNotFound { path: path.to_path_buf() });
            }
            Err(source) => {
                return Err(Error::ConfigRead { path: path.to_path_buf(), source });
            }
        };
        let abs = std::path::absolute(path).map_err(|source| Error::ConfigRead { path: path.to_path_buf(), source })?;
        let dir = abs.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
        Self::parse(&text, &abs, &dir)
    }

    pub fn parse(text: &str, path: &Path, dir: &Path) -> Result<Self> {
        let at = |span: Option<Range<usize>>, message: String| {
            let (line, column) = span.map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            Error::Config { path: path.to_path_buf(), line, column, message }
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| at(e.span(), e.message().to_owned()))?;

        let (ledger, ledger_schema) = match raw.ledger {
            None => (LedgerUrl::Sqlite(dir.join(".lastgood/ledger.db")), "lastgood".to_owned()),
            Some(l) => check_ledger(l, dir).map_err(|(s, m)| at(s, m))?,
        };

        let mut environments = BTreeMap::new();
        for (name, env) in raw.environments {
            let span = env.span();
            let key =
                EnvName::parse(&name).map_err(|e| at(Some(span.clone()), format!("[environments.{name}]: {e}")))?;
            let env = check_env(&key, env.into_inner(), dir)
                .map_err(|(s, m)| at(s.or(Some(span)), format!("environments.{name}.{m}")))?;
            environments.insert(key, env);
        }
        Ok(Self { path: path.to_path_buf(), dir: dir.to_path_buf(), ledger, ledger_schema, environments })
    }

    pub fn environment(&self, name: &str) -> Result<&Environment> {
        EnvName::parse(name).ok().and_then(|n| self.environments.get(&n)).ok_or_else(|| Error::UnknownEnvironment {
            env: name.escape_debug().to_string(),
            known: self.environments.keys().map(|k| k.to_string()).collect(),
        })
    }
}

/// Why `ledger.url` names no ledger.
#[derive(Debug, thiserror::Error)]
enum LedgerUrlError {
    #[error("ledger.url: `sqlite://` needs a path, like sqlite://.lastgood/ledger.db")]
    SqliteWithoutPath,
    #[error("ledger.url: expected sqlite://PATH or postgres://...")]
    UnknownScheme { url: String },
}

/// `[ledger]`: `url` (sqlite://PATH or a PostgreSQL URL), or `url_env` naming the
/// variable that holds a PostgreSQL URL, and `schema` for a team ledger.
fn check_ledger(l: raw::RawLedger, dir: &Path) -> Result<(LedgerUrl, String), Fail> {
    let schema = match &l.schema {
        None => "lastgood".to_owned(),
        Some(s) => {
            let ok = s.get_ref().len() <= 63
                && s.get_ref().starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && s.get_ref().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err((
                    Some(s.span()),
                    "ledger.schema: use at most 63 lowercase letters, digits and `_`, starting with a letter".into(),
                ));
            }
            s.get_ref().clone()
        }
    };
    let allow_superuser = l.allow_superuser.unwrap_or(false);
    let team = |url: DbUrlSource| LedgerUrl::Postgres(TeamLedger { url, schema: schema.clone(), allow_superuser });
    let ledger = match (&l.url, &l.url_env) {
        (Some(u), Some(_)) => Err((Some(u.span()), "ledger.url: set either `url` or `url_env`, not both".into())),
        (None, Some(v)) => Ok(team(DbUrlSource::Env { name: v.get_ref().clone(), base: dir.to_path_buf() })),
        (None, None) => {
            if let Some(s) = &l.schema {
                return Err((
                    Some(s.span()),
                    "ledger.schema: applies to a PostgreSQL ledger (`url` or `url_env`)".into(),
                ));
            }
            Ok(LedgerUrl::Sqlite(dir.join(".lastgood/ledger.db")))
        }
        (Some(u), None) => {
            let url = u.get_ref();
            if let Some(rest) = url.strip_prefix("sqlite://") {
                if rest.is_empty() {
                    return Err((Some(u.span()), LedgerUrlError::SqliteWithoutPath.to_string()));
                }
                return Ok((LedgerUrl::Sqlite(dir.join(rest)), schema));
            }
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                crate::database::url::DbUrl::check(url, dir)
                    .map_err(|e| (Some(u.span()), format!("ledger.url: {e}")))?;
                return Ok((
                    team(DbUrlSource::Url { text: Secret::new(url.clone()), base: dir.to_path_buf() }),
                    schema,
                ));
            }
            Err((Some(u.span()), LedgerUrlError::UnknownScheme { url: url.clone() }.to_string()))
        }
    }?;
    Ok((ledger, schema))
}

fn check_env(name: &EnvName, raw: RawEnv, dir: &Path) -> Result<Environment, Fail> {
    let runtime = runtime::check_runtime(&raw, dir, name)?;
    let notify = match &raw.notify {
        None => None,
        Some(n) => {
            let span = n.span();
            let n = n.get_ref();
            for w in &n.webhooks {
                if !(w.starts_with("http://") || w.starts_with("https://"))
                    || w.chars().any(|c| c.is_control() || c == '"')
                {
                    return Err((
                        Some(span),
                        "notify.webhooks: each webhook must be an http:// or https:// URL".into(),
                    ));
                }
            }
            let timeout = match &n.timeout {
                Some(t) => parse_duration(t).map_err(|m| (Some(span.clone()), format!("notify.timeout: {m}")))?,
                None => Duration::from_secs(5),
            };
            Some(Notify {
                webhooks: n.webhooks.iter().cloned().map(Secret::new).collect(),
                timeout,
                attempts: n.attempts.unwrap_or(4).clamp(1, 10),
            })
        }
    };
    let (hosts, ssh_config, rollout) = hosts::check_hosts(&raw, &runtime, dir)?;
    let source = resolve(dir, raw.source.as_ref().map(|s| s.get_ref().as_str()).unwrap_or("."));
    let versions_in_source = runtime == Runtime::Releases || raw.source.is_some();
    let deploy_to = match &raw.deploy_to {
        Some(d) if d.get_ref().is_empty() => {
            return Err((Some(d.span()), "deploy_to: is empty".into()));
        }
        Some(d) => resolve(dir, d.get_ref()),
        // The other runtimes keep only logs and working copies, next to the ledger.
        None if runtime != Runtime::Releases => dir.join(".lastgood/work").join(name.as_str()),
        None => {
            return Err((None, "deploy_to: missing; the releases runtime needs a folder to deploy to".into()));
        }
    };
    // A compose release built from source has a folder of its own to build in.
    let builds = matches!(&runtime, Runtime::Releases | Runtime::Compose(Compose { from_source: true, .. }));
    if runtime != Runtime::Releases {
        for (key, value) in
            [("build", raw.build.as_ref().map(Spanned::span)), ("run", raw.run.as_ref().map(Spanned::span))]
        {
            if key == "build" && builds {
                continue;
            }
            if let Some(span) = value {
                return Err((
                    Some(span),
                    format!(
                        "{key}: applies to the releases runtime; with runtime `{}` your pipeline or controller builds and runs the app",
                        runtime.name()
                    ),
                ));
            }
        }
    }
    let argv = |key: &str, v: &Option<Spanned<Vec<String>>>| -> Result<Option<Vec<String>>, Fail> {
        match v {
            None => Ok(None),
            Some(s) if s.get_ref().is_empty() || s.get_ref()[0].is_empty() => {
                Err((Some(s.span()), format!("{key}: needs a program, like [\"make\", \"build\"]")))
            }
            Some(s) => Ok(Some(s.get_ref().clone())),
        }
    };
    let build = argv("build", &raw.build)?;
    let start = match (argv("run", &raw.run)?, argv("restart", &raw.restart)?) {
        (Some(_), Some(_)) => {
            return Err((
                raw.restart.as_ref().map(Spanned::span),
                "restart: set either `run` or `restart`, not both".into(),
            ));
        }
        (Some(r), None) => Start::Run(r),
        (None, Some(r)) => Start::Restart(r),
        (None, None) => Start::Nothing,
    };
    let stop = argv("stop", &raw.stop)?;
    if let (Some(_), Some(s)) = (&stop, &raw.stop) {
        if matches!(start, Start::Run(_)) {
            return Err((
                Some(s.span()),
                "stop: with `run`, lastgood stops its own process before migrations go down; `stop` is for an app \
                 that `restart` manages (compose stops its services itself)"
                    .into(),
            ));
        }
    }
    let keep_releases = match &raw.keep_releases {
        None => 5,
        Some(k) if *k.get_ref() < 1 || *k.get_ref() > 1000 => {
            return Err((
                Some(k.span()),
                "keep_releases: must be between 1 and 1000 (a rollback needs at least one good release kept)".into(),
            ));
        }
        Some(k) => *k.get_ref() as usize,
    };
    let mut config_files = Vec::new();
    if let Some(files) = &raw.config_files {
        for f in files.get_ref() {
            if f.is_empty() || f.contains('\0') {
                return Err((Some(files.span()), "config_files: an entry is empty".into()));
            }
            config_files.push(ConfigFile { name: f.clone(), path: resolve(dir, f) });
        }
    }
    let proxy = proxy::check_proxy(&raw, &runtime, &start)?;
    proxy::check_port_placeholder(&raw, proxy.is_some(), name)?;
    let mut checks = Vec::new();
    for c in raw.checks {
        checks.push(checks::check_check(c)?);
    }
    let dur = |v: &Option<Spanned<String>>, key: &str, default: Duration| -> Result<Duration, Fail> {
        match v {
            None => Ok(default),
            Some(s) => parse_duration(s.get_ref()).map_err(|m| (Some(s.span()), format!("{key}: {m}"))),
        }
    };
    let stop_timeout = dur(&raw.stop_timeout, "stop_timeout", Duration::from_secs(10))?;
    let lease = dur(&raw.lease, "lease", Duration::from_secs(60))?;
    let monitor = monitor::check_monitor(raw.monitor.as_ref(), dir)?;
    let app_log = |s: &monitor::Signal| matches!(&s.source, monitor::Source::Log { log: monitor::LogFile::App, .. });
    if monitor.signals.iter().any(app_log) && (!matches!(start, Start::Run(_)) || !hosts.is_empty()) {
        return Err((
            raw.monitor.as_ref().map(Spanned::span),
            "monitor.signals: log = \"app\" reads the log of the process lastgood supervises (`run`), on this machine; use file = PATH for another log".into(),
        ));
    }
    let database = match raw.database {
        None => None,
        Some(db) => Some(database::check_database(name, db, dir)?),
    };
    // Schema changes: a migrations folder, or a tool of the team's own (Alembic, commands).
    let migrations = database.as_ref().is_some_and(|d| d.migrations.is_some() || d.adapter != Adapter::Builtin);
    if migrations && !versions_in_source {
        return Err((
            None,
            format!(
                "database.migrations: runtime `{}` runs migrations from a release's tree, exported from its commit: \
                 set `source` to the repository that holds them (versions are then its tags or commits), \
                 or keep the [database] section without `migrations` for backups",
                runtime.name()
            ),
        ));
    }
    // A compose release built from source has a tree (and images) to migrate from.
    if migrations && matches!(runtime, Runtime::Swarm { .. }) {
        return Err((
            None,
            format!(
                "database.migrations: runtime `{}` does not run migrations in this version of lastgood; \
                 run them in your pipeline, or keep the [database] section without `migrations` for backups",
                runtime.name()
            ),
        ));
    }
    if lease < Duration::from_secs(3) {
        return Err((raw.lease.as_ref().map(Spanned::span), "lease: must be at least 3s".into()));
    }
    // Config files that live in `<deploy_to>/shared/` and are linked into each release's
    // folder are named as paths inside that folder.
    let shared = !hosts.is_empty() || matches!(&runtime, Runtime::Compose(Compose { from_source: true, .. }));
    if shared {
        if let Some(bad) = config_files.iter().find(|f| !inside_release(&f.name)) {
            return Err((
                raw.config_files.as_ref().map(Spanned::span),
                format!(
                    "config_files: `{}` must be a relative path inside the release's folder (like `.env` or \
                     `config/app.env`): on ssh hosts and for compose releases built from source, config files live \
                     in <deploy_to>/shared/ and are linked into each release",
                    bad.name
                ),
            ));
        }
    }
    if !hosts.is_empty() {
        // On hosts, a schema tool runs as a program in the release's folder there (or in
        // its container); lastgood's own engine runs in lastgood, on the controller,
        // which has no release folders.
        if database.as_ref().is_some_and(|d| d.migrations.is_some() && d.adapter == Adapter::Builtin) {
            return Err((
                None,
                "database.migrations: with ssh hosts, migrations run on the first host through a tool of your own: \
                 set `adapter = \"alembic\"` (or \"command\"), with `run_in` for a compose service's container"
                    .into(),
            ));
        }
        if matches!(&runtime, Runtime::Compose(Compose { from_source: false, .. })) {
            return Err((
                raw.hosts.as_ref().map(Spanned::span),
                "hosts: compose on ssh hosts builds each release from its commit: set `source` to the repository \
                 (the compose file is then read from each release's folder on the host)"
                    .into(),
            ));
        }
    }
    if let Some(db) = &database {
        if let Some(service) = &db.run_in {
            let Runtime::Compose(c) = &runtime else {
                return Err((
                    None,
                    format!(
                        "database.run_in: `{service}` names a compose service, and runtime `{}` has none",
                        runtime.name()
                    ),
                ));
            };
            if db.adapter == Adapter::Builtin {
                return Err((
                    None,
                    "database.run_in: runs a migration tool in a container; set `adapter` (alembic or command)".into(),
                ));
            }
            if !c.services.is_empty() && !c.services.contains(service) {
                return Err((
                    None,
                    format!("database.run_in: `{service}` is not one of `services` ({})", c.services.join(", ")),
                ));
            }
        }
        if db.service.is_some() && !matches!(runtime, Runtime::Compose(_)) {
            return Err((
                None,
                format!("database.service: names a compose service, and runtime `{}` has none", runtime.name()),
            ));
        }
    }
    Ok(Environment {
        name: name.clone(),
        runtime,
        hosts,
        ssh_config,
        rollout,
        source,
        versions_in_source,
        deploy_to,
        build,
        start,
        keep_releases,
        config_files,
        stop,
        checks,
        stop_timeout,
        lease,
        database,
        notify,
        monitor,
        major_guard: raw.major_guard.unwrap_or(true),
        proxy,
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/x/lastgood.toml"), Path::new("/x"))
    }

    #[test]
    fn every_runtime_template_parses() {
        for runtime in ["releases", "command", "gitops", "compose", "swarm"] {
            let text = template_for("app", runtime);
            let c = parse(&text).unwrap_or_else(|e| panic!("{runtime}: {e}\n{text}"));
            assert_eq!(c.environment("production").unwrap().runtime.name(), runtime, "{text}");
            assert!(text.contains("[[environments.production.checks]]"), "{text}");
        }
    }

    #[test]
    fn the_template_parses() {
        let c = parse(&template("app")).unwrap();
        let env = c.environment("production").unwrap();
        assert_eq!(env.deploy_to, PathBuf::from("/srv/app"));
        assert_eq!(c.ledger, LedgerUrl::Sqlite(PathBuf::from("/x/.lastgood/ledger.db")));
    }

    #[test]
    fn unknown_keys_name_line_and_column() {
        let err = parse("[environments.prod]\ndeploy_to = \"d\"\n  colour = 1\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("/x/lastgood.toml:3:3:"), "{msg}");
        assert!(msg.contains("colour"), "{msg}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = parse("[environments.prod]\ndeploy_to = \"d\"\nkeep_releases = 0\n").unwrap_err();
        assert!(err.to_string().contains(":3:17: environments.prod.keep_releases"), "{err}");
        let err = parse("[environments.prod]\ndeploy_to = \"d\"\n[[environments.prod.checks]]\nhttp = \"http://x\"\ninterval = \"soon\"\n").unwrap_err();
        assert!(err.to_string().contains("not a duration"), "{err}");
        let err = parse("[environments.Prod]\ndeploy_to = \"d\"\n").unwrap_err();
        assert!(err.to_string().contains("environment name"), "{err}");
        let err = parse("[environments.prod]\ndeploy_to = \"d\"\nrun = [\"a\"]\nrestart = [\"b\"]\n").unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
    }

    #[test]
    fn docker_names_are_checked_as_container_names() {
        let compose = |project: &str, services: &str| {
            parse(&format!(
                "[environments.prod]\nruntime = \"compose\"\ncompose_file = \"c.yml\"\nproject = \"{project}\"\nservices = {services}\n"
            ))
        };
        assert!(compose("app", "[\"web\", \"worker.1\"]").is_ok());
        let err = compose("App", "[]").unwrap_err().to_string();
        assert!(err.contains("environments.prod.project: compose project names are lowercase"), "{err}");
        let err = compose("a/b", "[]").unwrap_err().to_string();
        assert!(err.contains("project: `a/b` is not a valid name: use at most 63 letters"), "{err}");
        let err = compose("app", "[\"-web\"]").unwrap_err().to_string();
        assert!(err.contains("services: `-web`: `-web` is not a valid name"), "{err}");
        let err = parse("[environments.prod]\nruntime = \"swarm\"\nservice = \"web?x\"\n").unwrap_err().to_string();
        assert!(err.contains("service: `web?x` is not a valid name"), "{err}");
    }

    #[test]
    fn the_proxy_section_and_port_placeholders() {
        let env = |extra: &str| {
            parse(&format!("[environments.prod]\ndeploy_to = \"d\"\nrun = [\"./app\", \"{{port}}\"]\n{extra}"))
        };
        let c = env("[environments.prod.proxy]\nlisten = \"{host}:8080\"\nports = \"20000-20009\"\n").unwrap();
        let p = c.environment("prod").unwrap().proxy.clone().unwrap();
        assert_eq!((p.drain_ms, p.ports), (30_000, Some((20000, 20009))));
        assert_eq!(p.at("10.0.0.5").listen, "10.0.0.5:8080");
        let err = env("").unwrap_err().to_string();
        assert!(err.contains(":3:7: environments.prod.run: `{port}` is the port lastgood gives"), "{err}");
        assert_eq!(env("").unwrap_err().exit_code(), 2);
        let err = env("[environments.prod.proxy]\nlisten = \"localhost\"\n").unwrap_err().to_string();
        assert!(err.contains("proxy.listen: `localhost` is not an address"), "{err}");
        let err =
            env("[environments.prod.proxy]\nlisten = \"127.0.0.1:1\"\ndrain = \"soon\"\n").unwrap_err().to_string();
        assert!(err.contains("proxy.drain: `soon` is not a duration"), "{err}");
        let err =
            env("[environments.prod.proxy]\nlisten = \"127.0.0.1:1\"\nports = \"0-5\"\n").unwrap_err().to_string();
        assert!(err.contains("proxy.ports: `0-5` is not a range of ports"), "{err}");
        let err = env("[environments.prod.proxy]\ndrain = \"1s\"\n").unwrap_err().to_string();
        assert!(err.contains("proxy.listen: missing"), "{err}");
    }

    #[test]
    fn ledger_urls_and_durations_keep_their_messages() {
        let err = parse("[ledger]\nurl = \"sqlite://\"\n").unwrap_err().to_string();
        assert!(err.ends_with("ledger.url: `sqlite://` needs a path, like sqlite://.lastgood/ledger.db"), "{err}");
        let err = parse("[ledger]\nurl = \"mysql://x\"\n").unwrap_err().to_string();
        assert!(err.ends_with("ledger.url: expected sqlite://PATH or postgres://..."), "{err}");
        let err = parse("[environments.prod]\ndeploy_to = \"d\"\nlease = \"soon\"\n").unwrap_err().to_string();
        assert!(
            err.contains("environments.prod.lease: `soon` is not a duration (")
                && err.ends_with("write it like \"500ms\", \"2s\" or \"1m\""),
            "{err}"
        );
    }
}
