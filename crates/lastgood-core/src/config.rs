//! `lastgood.toml`: read once, checked strictly, turned into typed values.
//!
//! Unknown keys, wrong types and bad values are errors that name the file, line and
//! column, because a typo in a rollback tool's config is discovered on the worst day.
//! Deserialisation into `Raw*` structs catches shape errors (with `toml`'s spans);
//! the checks after it catch values (with [`toml::Spanned`] fields), and produce an
//! [`Environment`] that the rest of the library can trust. Relative paths are resolved
//! against the config file's folder here, so nothing later depends on the cwd.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};
use crate::model::EnvName;
use crate::verify::{Check, Probe};

pub const DEFAULT_FILE: &str = "lastgood.toml";

/// Where the ledger lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub ledger: LedgerUrl,
    pub environments: BTreeMap<EnvName, Environment>,
}

/// How the app is (re)started after the code switched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// lastgood supervises this process itself.
    Run(Vec<String>),
    /// The user's supervisor restarts it.
    Restart(Vec<String>),
    /// Nothing to start (static files, or the app re-reads `current` by itself).
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// As written in the config, used as its name in plans and the ledger.
    pub name: String,
    pub path: PathBuf,
}

/// How code is switched (`runtime = ...`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub enum Runtime {
    /// Release directories and an atomic `current` symlink.
    Releases,
    /// The user's program does the switch: a CI job, a parameter store and a pipeline.
    Command {
        switch: Vec<String>,
        /// Prints the version running now (optional).
        current: Option<Vec<String>>,
    },
    /// The desired version lives in a file in a git repository a controller syncs.
    Gitops(Gitops),
    /// A Docker Compose project; the version is the image tag (`${LASTGOOD_VERSION}`).
    Compose(Compose),
    /// A Docker Swarm service; the version is the image tag.
    Swarm { service: String },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Compose {
    /// Absolute (resolved against the config's folder).
    pub file: PathBuf,
    pub project: String,
    /// The services lastgood brings up; empty: all of the project's.
    pub services: Vec<String>,
}

impl Runtime {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Releases => "releases",
            Self::Command { .. } => "command",
            Self::Gitops(_) => "gitops",
            Self::Compose(_) => "compose",
            Self::Swarm { .. } => "swarm",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Gitops {
    /// A path (resolved against the config's folder) or a URL, as git takes it.
    pub repo: String,
    pub branch: String,
    /// Relative to the repository's root; holds the version and nothing else.
    pub version_file: String,
    pub mode: GitopsMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
pub enum GitopsMode {
    /// Rollback commits reverts (history kept, a plain push).
    Revert,
    /// Rollback moves the branch back with `--force-with-lease`.
    Reset,
}

/// How a fleet deploy moves through its hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// At most this many hosts are worked on at once.
    pub parallel: usize,
    /// Hosts switched, started and verified together (None: all of them at once).
    pub batch: Option<usize>,
    /// The first N hosts go first, alone, and must pass their checks before the rest.
    pub canary: usize,
    pub on_failure: OnFailure,
}

/// What a fleet deploy does when a host fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Every host returns to the release it had (all or nothing).
    Rollback,
    /// Stop where it is and report; `lastgood resume` retries, `--abort` undoes.
    Halt,
}

#[derive(Debug, Clone)]
pub struct Environment {
    pub name: EnvName,
    pub runtime: Runtime,
    /// Empty: this machine (`hosts = ["local"]`).
    pub hosts: Vec<crate::model::SshHost>,
    /// Passed to ssh as `-F`.
    pub ssh_config: Option<PathBuf>,
    pub rollout: Rollout,
    pub source: PathBuf,
    /// Versions name commits in `source` (always for `releases`; for the other
    /// runtimes only when `source` is set, else a version is an opaque string).
    pub versions_in_source: bool,
    pub deploy_to: PathBuf,
    pub build: Option<Vec<String>>,
    pub start: Start,
    pub keep_releases: usize,
    pub config_files: Vec<ConfigFile>,
    pub checks: Vec<Check>,
    pub stop_timeout: Duration,
    pub lease: Duration,
    pub database: Option<Database>,
    pub notify: Option<Notify>,
}

impl Environment {
    /// A rollback target as the user wrote it; versions are opaque strings when the
    /// runtime does not resolve them in git.
    pub fn parse_target(&self, s: &str) -> Result<crate::model::Target> {
        let t = if self.versions_in_source {
            crate::model::Target::parse(s)
        } else {
            crate::model::Target::parse_opaque(s)
        };
        Ok(t?)
    }
}

/// `[environments.X.notify]`: where to tell people what happens.
#[derive(Debug, Clone)]
pub struct Notify {
    /// Webhook URLs. They often carry a token, so they are never printed or logged.
    pub webhooks: Vec<crate::secret::Secret<String>>,
    /// Per attempt.
    pub timeout: Duration,
    pub attempts: u32,
}

/// `[environments.X.database]`.
#[derive(Debug, Clone)]
pub struct Database {
    pub url: DbUrlSource,
    /// The migrations folder, relative to a release (or to `source` for `lastgood db`);
    /// None: this database has no schema changes (backups and restore still work).
    pub migrations: Option<PathBuf>,
    pub adapter: Adapter,
    pub backup: BackupPolicy,
    /// Where backups are written; default `<config dir>/.lastgood/backups/<env>`.
    pub backup_dir: PathBuf,
    /// PostgreSQL: `auto` (a template copy when nobody else is connected, else
    /// `pg_dump`), `pg_dump` or `template`.
    pub backup_method: crate::database::backup::PgMethod,
    pub settings: crate::database::migrator::Settings,
}

/// Where the database URL comes from. An environment variable is read when it is
/// used, so a config can be checked without the secret at hand.
#[derive(Debug, Clone)]
pub enum DbUrlSource {
    Url(crate::database::url::DbUrl),
    Env { name: String, base: PathBuf },
}

impl DbUrlSource {
    pub fn resolve(&self) -> Result<crate::database::url::DbUrl> {
        match self {
            Self::Url(u) => Ok(u.clone()),
            Self::Env { name, base } => {
                let value = std::env::var(name).map_err(|_| Error::Usage {
                    what: format!("database url_env: the environment variable {name} is not set"),
                })?;
                crate::database::url::DbUrl::parse(&value, base)
                    .map_err(|e| Error::Usage { what: format!("{name}: {e}") })
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adapter {
    Builtin,
    /// The real Alembic program (argv to run it).
    Alembic(Vec<String>),
    /// The user's own commands.
    Command {
        current: Vec<String>,
        up: Vec<String>,
        down_to: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupPolicy {
    /// Before any destructive step (by the linter).
    Auto,
    /// Before every migration run.
    Always,
    Never,
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

        let ledger = match raw.ledger.and_then(|l| l.url) {
            None => LedgerUrl::Sqlite(dir.join(".lastgood/ledger.db")),
            Some(url) => parse_ledger_url(url.get_ref(), dir).map_err(|m| at(Some(url.span()), m))?,
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
        Ok(Self { path: path.to_path_buf(), dir: dir.to_path_buf(), ledger, environments })
    }

    pub fn environment(&self, name: &str) -> Result<&Environment> {
        EnvName::parse(name).ok().and_then(|n| self.environments.get(&n)).ok_or_else(|| Error::UnknownEnvironment {
            env: name.escape_debug().to_string(),
            known: self.environments.keys().map(|k| k.to_string()).collect(),
        })
    }
}

fn parse_ledger_url(url: &str, dir: &Path) -> std::result::Result<LedgerUrl, String> {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        if rest.is_empty() {
            return Err("ledger.url: `sqlite://` needs a path, like sqlite://.lastgood/ledger.db".into());
        }
        return Ok(LedgerUrl::Sqlite(dir.join(rest)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(LedgerUrl::Postgres(url.to_owned()));
    }
    Err("ledger.url: expected sqlite://PATH or postgres://...".into())
}

type Fail = (Option<Range<usize>>, String);

fn check_env(name: &EnvName, raw: RawEnv, dir: &Path) -> std::result::Result<Environment, Fail> {
    let runtime = check_runtime(&raw, dir)?;
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
                webhooks: n.webhooks.iter().cloned().map(crate::secret::Secret::new).collect(),
                timeout,
                attempts: n.attempts.unwrap_or(4).clamp(1, 10),
            })
        }
    };
    let (hosts, ssh_config, rollout) = check_hosts(&raw, &runtime, dir)?;
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
    if runtime != Runtime::Releases {
        for (key, value) in
            [("build", raw.build.as_ref().map(Spanned::span)), ("run", raw.run.as_ref().map(Spanned::span))]
        {
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
    let argv = |key: &str, v: &Option<Spanned<Vec<String>>>| -> std::result::Result<Option<Vec<String>>, Fail> {
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
    let mut checks = Vec::new();
    for c in raw.checks {
        checks.push(check_check(c)?);
    }
    let dur = |v: &Option<Spanned<String>>, key: &str, default: Duration| -> std::result::Result<Duration, Fail> {
        match v {
            None => Ok(default),
            Some(s) => parse_duration(s.get_ref()).map_err(|m| (Some(s.span()), format!("{key}: {m}"))),
        }
    };
    let stop_timeout = dur(&raw.stop_timeout, "stop_timeout", Duration::from_secs(10))?;
    let lease = dur(&raw.lease, "lease", Duration::from_secs(60))?;
    let database = match raw.database {
        None => None,
        Some(db) => Some(check_database(name, db, dir)?),
    };
    if runtime != Runtime::Releases && database.as_ref().is_some_and(|d| d.migrations.is_some()) {
        return Err((
            None,
            format!(
                "database.migrations: migrations travel with release directories, which runtime `{}` does not have; \
                 run them in your pipeline, or keep the [database] section without `migrations` for backups",
                runtime.name()
            ),
        ));
    }
    if lease < Duration::from_secs(3) {
        return Err((raw.lease.as_ref().map(Spanned::span), "lease: must be at least 3s".into()));
    }
    if !hosts.is_empty() {
        let refuse = |key: &str, span: Option<Range<usize>>, why: &str| -> std::result::Result<(), Fail> {
            Err((span, format!("{key}: {why} with ssh hosts in this version of lastgood")))
        };
        if let Some(f) = &raw.config_files {
            refuse("config_files", Some(f.span()), "config files are not shipped to hosts")?;
        }
        if database.as_ref().is_some_and(|d| d.migrations.is_some()) {
            refuse("database.migrations", None, "migrations are not run")?;
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
        checks,
        stop_timeout,
        lease,
        database,
        notify,
    })
}

fn check_hosts(
    raw: &RawEnv,
    runtime: &Runtime,
    dir: &Path,
) -> std::result::Result<(Vec<crate::model::SshHost>, Option<PathBuf>, Rollout), Fail> {
    let mut hosts = Vec::new();
    if let Some(list) = &raw.hosts {
        let span = Some(list.span());
        if list.get_ref().is_empty() {
            return Err((span, "hosts: the list is empty; use [\"local\"] or ssh:// hosts".into()));
        }
        let local = list.get_ref().iter().filter(|h| h.as_str() == "local").count();
        if local > 0 && local < list.get_ref().len() {
            return Err((
                span,
                "hosts: mix of \"local\" and ssh hosts; list either [\"local\"] or ssh:// hosts".into(),
            ));
        }
        if local == 0 {
            for h in list.get_ref() {
                let host = crate::model::SshHost::parse(h).map_err(|e| (span.clone(), format!("hosts: {e}")))?;
                if hosts.iter().any(|o: &crate::model::SshHost| o.label() == host.label()) {
                    return Err((span, format!("hosts: {} is listed twice", host.label())));
                }
                hosts.push(host);
            }
            if *runtime != Runtime::Releases {
                return Err((
                    span,
                    format!("hosts: ssh hosts work with the releases runtime, not `{}`", runtime.name()),
                ));
            }
        }
    }
    let ssh_config = match &raw.ssh_config {
        Some(s) if hosts.is_empty() => {
            return Err((Some(s.span()), "ssh_config: applies to ssh hosts, and `hosts` lists none".into()));
        }
        Some(s) if s.get_ref().is_empty() || s.get_ref().starts_with('-') => {
            return Err((Some(s.span()), "ssh_config: must be a path to an ssh config file".into()));
        }
        Some(s) => Some(resolve(dir, s.get_ref())),
        None => None,
    };
    let count = |key: &str, v: &Option<Spanned<i64>>| -> std::result::Result<Option<usize>, Fail> {
        match v {
            None => Ok(None),
            Some(_) if hosts.is_empty() => {
                Err((v.as_ref().map(Spanned::span), format!("{key}: applies to ssh hosts, and `hosts` lists none")))
            }
            Some(n) if *n.get_ref() < 0 || *n.get_ref() > 10_000 => {
                Err((Some(n.span()), format!("{key}: must be between 0 and 10000")))
            }
            Some(n) => Ok(Some(*n.get_ref() as usize)),
        }
    };
    let parallel = count("parallel", &raw.parallel)?.unwrap_or(hosts.len().clamp(1, 16));
    if parallel == 0 {
        return Err((raw.parallel.as_ref().map(Spanned::span), "parallel: must be at least 1".into()));
    }
    let batch = count("batch", &raw.batch)?;
    if batch == Some(0) {
        return Err((raw.batch.as_ref().map(Spanned::span), "batch: must be at least 1".into()));
    }
    let canary = count("canary", &raw.canary)?.unwrap_or(0);
    if canary > 0 && canary >= hosts.len() {
        return Err((
            raw.canary.as_ref().map(Spanned::span),
            format!("canary: {canary} of {} hosts leaves none to follow; use fewer", hosts.len()),
        ));
    }
    let on_failure = match raw.on_failure.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("rollback") => OnFailure::Rollback,
        Some("halt") => OnFailure::Halt,
        Some(other) => {
            return Err((
                raw.on_failure.as_ref().map(Spanned::span),
                format!("on_failure: `{}` is not rollback or halt", other.escape_debug()),
            ));
        }
    };
    Ok((hosts, ssh_config, Rollout { parallel, batch, canary, on_failure }))
}

fn check_runtime(raw: &RawEnv, dir: &Path) -> std::result::Result<Runtime, Fail> {
    let span = raw.runtime.as_ref().map(Spanned::span);
    let name = raw.runtime.as_ref().map(|r| r.get_ref().as_str()).unwrap_or("releases");
    let keys: [(&str, &[&str]); 5] = [
        ("releases", &[]),
        ("command", &["switch", "current"]),
        ("gitops", &["repo", "branch", "version_file", "mode"]),
        ("compose", &["compose_file", "project", "services"]),
        ("swarm", &["service"]),
    ];
    let own: &[&str] = match keys.iter().find(|(k, _)| *k == name) {
        Some((_, own)) => own,
        None if name == "kubernetes" => {
            return Err((
                span,
                format!(
                    "runtime: `{name}` is planned but not available in this version of lastgood; use releases, compose, swarm, command or gitops"
                ),
            ));
        }
        None => {
            return Err((
                span,
                format!("runtime: unknown runtime `{name}`; expected releases, compose, swarm, command or gitops"),
            ));
        }
    };
    for (key, value) in [
        ("compose_file", &raw.compose_file),
        ("project", &raw.project),
        ("services", &raw.services),
        ("service", &raw.service),
        ("switch", &raw.switch),
        ("current", &raw.current),
        ("repo", &raw.repo),
        ("branch", &raw.branch),
        ("version_file", &raw.version_file),
        ("mode", &raw.mode),
    ] {
        if let Some(v) = value {
            if !own.contains(&key) {
                return Err((Some(v.span()), format!("{key}: applies to another runtime, not `{name}`")));
            }
        }
    }
    let string = |key: &str, v: &Option<Spanned<toml::Value>>| -> std::result::Result<Option<String>, Fail> {
        match v {
            None => Ok(None),
            Some(s) => match s.get_ref() {
                toml::Value::String(text) if !text.is_empty() => Ok(Some(text.clone())),
                _ => Err((Some(s.span()), format!("{key}: expected a non-empty string"))),
            },
        }
    };
    let argv = |key: &str, v: &Option<Spanned<toml::Value>>| -> std::result::Result<Option<Vec<String>>, Fail> {
        let Some(s) = v else { return Ok(None) };
        let bad = || {
            (Some(s.span()), format!("{key}: needs a program and its arguments, like [\"./pipeline.sh\", \"--wait\"]"))
        };
        let toml::Value::Array(items) = s.get_ref() else { return Err(bad()) };
        let words: Option<Vec<String>> = items.iter().map(|i| i.as_str().map(str::to_owned)).collect();
        match words {
            Some(w) if !w.is_empty() && !w[0].is_empty() => Ok(Some(w)),
            _ => Err(bad()),
        }
    };
    match name {
        "command" => {
            let Some(switch) = argv("switch", &raw.switch)? else {
                return Err((span, "switch: missing; runtime `command` needs `switch = [argv]`".into()));
            };
            Ok(Runtime::Command { switch, current: argv("current", &raw.current)? })
        }
        "gitops" => {
            let Some(repo) = string("repo", &raw.repo)? else {
                return Err((span, "repo: missing; runtime `gitops` needs the repository the controller syncs".into()));
            };
            let repo_span = raw.repo.as_ref().map(Spanned::span);
            if repo.starts_with('-') || repo.chars().any(char::is_control) {
                return Err((repo_span, "repo: must not start with `-` or hold control characters".into()));
            }
            // A URL as written; anything else is a path relative to this file's folder.
            let is_url =
                repo.contains("://") || (repo.contains(':') && !repo.starts_with('/') && !repo.starts_with('.'));
            let repo = if is_url { repo } else { resolve(dir, &repo).to_string_lossy().into_owned() };
            let branch = string("branch", &raw.branch)?.unwrap_or_else(|| "main".into());
            if let Err(e) = crate::model::Version::parse(&branch) {
                return Err((raw.branch.as_ref().map(Spanned::span), format!("branch: {e}")));
            }
            let Some(version_file) = string("version_file", &raw.version_file)? else {
                return Err((
                    span,
                    "version_file: missing; name the file in the repository that holds the version".into(),
                ));
            };
            let vf_span = raw.version_file.as_ref().map(Spanned::span);
            let path = Path::new(&version_file);
            if path.is_absolute()
                || version_file.starts_with('-')
                || version_file.chars().any(char::is_control)
                || path.components().any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err((
                    vf_span,
                    "version_file: must be a plain relative path inside the repository (no `..`, no leading `-` or `/`)"
                        .into(),
                ));
            }
            let mode = match string("mode", &raw.mode)?.as_deref() {
                None | Some("revert") => GitopsMode::Revert,
                Some("reset") => GitopsMode::Reset,
                Some(other) => {
                    return Err((
                        raw.mode.as_ref().map(Spanned::span),
                        format!("mode: `{}` is not revert or reset", other.escape_debug()),
                    ));
                }
            };
            Ok(Runtime::Gitops(Gitops { repo, branch, version_file, mode }))
        }
        "compose" => {
            let Some(file) = string("compose_file", &raw.compose_file)? else {
                return Err((
                    span,
                    "compose_file: missing; runtime `compose` needs the compose file to bring up".into(),
                ));
            };
            if file.starts_with('-') || file.chars().any(char::is_control) {
                return Err((
                    raw.compose_file.as_ref().map(Spanned::span),
                    "compose_file: must not start with `-` or hold control characters".into(),
                ));
            }
            let Some(project) = string("project", &raw.project)? else {
                return Err((span, "project: missing; runtime `compose` needs the compose project name (-p)".into()));
            };
            if let Err(why) = crate::runtime::docker::check_name(&project).and_then(|()| {
                match project.chars().any(|c| c.is_ascii_uppercase()) {
                    true => Err("compose project names are lowercase".into()),
                    false => Ok(()),
                }
            }) {
                return Err((raw.project.as_ref().map(Spanned::span), format!("project: {why}")));
            }
            let services = match &raw.services {
                None => Vec::new(),
                Some(s) => {
                    let bad = || {
                        (
                            Some(s.span()),
                            "services: expected a list of service names, like [\"web\", \"worker\"]".into(),
                        )
                    };
                    let toml::Value::Array(items) = s.get_ref() else { return Err(bad()) };
                    let mut names = Vec::new();
                    for item in items {
                        let Some(name) = item.as_str() else { return Err(bad()) };
                        if let Err(why) = crate::runtime::docker::check_name(name) {
                            return Err((Some(s.span()), format!("services: `{}`: {why}", name.escape_debug())));
                        }
                        names.push(name.to_owned());
                    }
                    names
                }
            };
            Ok(Runtime::Compose(Compose { file: resolve(dir, &file), project, services }))
        }
        "swarm" => {
            let Some(service) = string("service", &raw.service)? else {
                return Err((span, "service: missing; runtime `swarm` needs the name of the Swarm service".into()));
            };
            if let Err(why) = crate::runtime::docker::check_name(&service) {
                return Err((raw.service.as_ref().map(Spanned::span), format!("service: {why}")));
            }
            Ok(Runtime::Swarm { service })
        }
        _ => Ok(Runtime::Releases),
    }
}

fn check_database(env: &EnvName, raw: Spanned<RawDatabase>, dir: &Path) -> std::result::Result<Database, Fail> {
    let span = raw.span();
    let raw = raw.into_inner();
    let fail = |s: Option<Range<usize>>, m: String| (s.or(Some(span.clone())), format!("database.{m}"));
    let url = match (&raw.url, &raw.url_env) {
        (Some(u), None) => DbUrlSource::Url(
            crate::database::url::DbUrl::parse(u.get_ref(), dir)
                .map_err(|e| fail(Some(u.span()), format!("url: {e}")))?,
        ),
        (None, Some(v)) => DbUrlSource::Env { name: v.get_ref().clone(), base: dir.to_path_buf() },
        (Some(u), Some(_)) => return Err(fail(Some(u.span()), "url: set either `url` or `url_env`, not both".into())),
        (None, None) => return Err(fail(None, "url: missing; set `url` or `url_env` (e.g. \"DATABASE_URL\")".into())),
    };
    let argv = |key: &str, v: &Option<Vec<String>>| -> std::result::Result<Option<Vec<String>>, Fail> {
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
    let d = |v: &Option<Spanned<String>>, key: &str| -> std::result::Result<Option<Duration>, Fail> {
        v.as_ref()
            .map(|s| parse_duration(s.get_ref()).map_err(|m| fail(Some(s.span()), format!("{key}: {m}"))))
            .transpose()
    };
    let settings = crate::database::migrator::Settings {
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
        "auto" => crate::database::backup::PgMethod::Auto,
        "pg_dump" => crate::database::backup::PgMethod::PgDump,
        "template" => crate::database::backup::PgMethod::Template,
        other => {
            return Err(fail(
                raw.backup_method.as_ref().map(Spanned::span),
                format!("backup_method: `{other}` is not auto, pg_dump or template"),
            ));
        }
    };
    Ok(Database { url, migrations, adapter, backup, backup_dir, backup_method, settings })
}

fn check_check(c: Spanned<RawCheck>) -> std::result::Result<Check, Fail> {
    let span = c.span();
    let c = c.into_inner();
    let fail = |m: &str| (Some(span.clone()), format!("checks: {m}"));
    let probe = match (c.http, c.tcp, c.command) {
        (Some(url), None, None) => {
            if !url.starts_with("http://") {
                return Err(fail(
                    "http: only http:// URLs are supported (check a plain-HTTP health endpoint, for example on loopback)",
                ));
            }
            Probe::Http { url, expect_status: c.expect_status.unwrap_or(200), expect_body: c.expect_body }
        }
        (None, Some(addr), None) => {
            if c.expect_status.is_some() || c.expect_body.is_some() {
                return Err(fail("expect_status and expect_body apply to http checks only"));
            }
            Probe::Tcp { addr }
        }
        (None, None, Some(argv)) => {
            if argv.is_empty() || argv[0].is_empty() {
                return Err(fail("command: needs a program"));
            }
            if c.expect_status.is_some() || c.expect_body.is_some() {
                return Err(fail("expect_status and expect_body apply to http checks only"));
            }
            Probe::Command { argv }
        }
        _ => {
            return Err(fail("each check needs exactly one of `http`, `tcp` or `command`"));
        }
    };
    let d = |v: Option<String>, default: Duration| match v {
        None => Ok(default),
        Some(s) => parse_duration(&s).map_err(|m| fail(&m)),
    };
    let retries = c.retries.unwrap_or(20);
    if retries == 0 {
        return Err(fail("retries: must be at least 1 (it counts attempts)"));
    }
    Ok(Check {
        probe,
        interval: d(c.interval, Duration::from_millis(500))?,
        timeout: d(c.timeout, Duration::from_secs(2))?,
        retries,
    })
}

fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| {
        format!("`{}` is not a duration ({e}); write it like \"500ms\", \"2s\" or \"1m\"", s.escape_debug())
    })
}

fn resolve(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() { p.to_path_buf() } else { dir.join(p) }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    ledger: Option<RawLedger>,
    #[serde(default)]
    environments: BTreeMap<String, Spanned<RawEnv>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnv {
    runtime: Option<Spanned<String>>,
    hosts: Option<Spanned<Vec<String>>>,
    source: Option<Spanned<String>>,
    deploy_to: Option<Spanned<String>>,
    build: Option<Spanned<Vec<String>>>,
    run: Option<Spanned<Vec<String>>>,
    restart: Option<Spanned<Vec<String>>>,
    keep_releases: Option<Spanned<i64>>,
    ssh_config: Option<Spanned<String>>,
    parallel: Option<Spanned<i64>>,
    batch: Option<Spanned<i64>>,
    canary: Option<Spanned<i64>>,
    on_failure: Option<Spanned<String>>,
    config_files: Option<Spanned<Vec<String>>>,
    stop_timeout: Option<Spanned<String>>,
    lease: Option<Spanned<String>>,
    #[serde(default)]
    checks: Vec<Spanned<RawCheck>>,
    database: Option<Spanned<RawDatabase>>,
    notify: Option<Spanned<RawNotify>>,
    // Keys of the other runtimes (SPEC.md), accepted by name so that the error says
    // which runtime they belong to instead of "unknown field".
    compose_file: Option<Spanned<toml::Value>>,
    project: Option<Spanned<toml::Value>>,
    services: Option<Spanned<toml::Value>>,
    service: Option<Spanned<toml::Value>>,
    switch: Option<Spanned<toml::Value>>,
    current: Option<Spanned<toml::Value>>,
    repo: Option<Spanned<toml::Value>>,
    branch: Option<Spanned<toml::Value>>,
    version_file: Option<Spanned<toml::Value>>,
    mode: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    #[serde(default)]
    webhooks: Vec<String>,
    timeout: Option<String>,
    attempts: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<Spanned<String>>,
    url_env: Option<Spanned<String>>,
    migrations: Option<Spanned<String>>,
    adapter: Option<Spanned<String>>,
    backup: Option<Spanned<String>>,
    backup_dir: Option<String>,
    backup_method: Option<Spanned<String>>,
    alembic: Option<Vec<String>>,
    current: Option<Vec<String>>,
    up: Option<Vec<String>>,
    down_to: Option<Vec<String>>,
    lock_timeout: Option<Spanned<String>>,
    statement_timeout: Option<Spanned<String>>,
    lock_wait: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    http: Option<String>,
    tcp: Option<String>,
    command: Option<Vec<String>>,
    expect_status: Option<u16>,
    expect_body: Option<String>,
    interval: Option<String>,
    timeout: Option<String>,
    retries: Option<u32>,
}

/// The commented file `lastgood init` writes.
pub fn template(source_name: &str) -> String {
    format!(
        r#"# lastgood.toml: how lastgood deploys {source_name} and returns it to its last good state.
# Paths are relative to this file's folder. Unknown keys are errors.

[ledger]
# Where releases, operations and the audit trail are recorded.
url = "sqlite://.lastgood/ledger.db"

[environments.production]
runtime = "releases"            # release directories and an atomic `current` symlink
hosts = ["local"]
source = "."                    # the git repository versions are resolved in
deploy_to = "/srv/{source_name}"   # <deploy_to>/releases/<id>/ and <deploy_to>/current
# build = ["make", "build"]     # run in the new release directory (never on rollback)
# run = ["./server", "--port", "8080"]            # lastgood starts and stops this process itself
# restart = ["systemctl", "restart", "{source_name}"]   # or: your supervisor restarts the app
keep_releases = 5               # good releases whose directories are never cleaned up
# config_files = ["app.env"]    # snapshotted with each release, restored on rollback
# stop_timeout = "10s"          # SIGTERM, then SIGKILL after this long

# The app's database: migrations travel with releases (docs/database.md).
# [environments.production.database]
# url_env = "DATABASE_URL"        # or url = "postgres://app@127.0.0.1/app" / "sqlite://app.db"
# migrations = "migrations"       # relative to a release; diesel or sqlx layout
# adapter = "builtin"             # builtin | alembic | command
# backup = "auto"                 # auto (before destructive steps) | always | never

# Where to tell people what happens (JSON with a `text` field chat tools show).
# [environments.production.notify]
# webhooks = ["https://chat.example.com/hooks/..."]

# Health checks: a release becomes good only when all of them pass.
# [[environments.production.checks]]
# http = "http://127.0.0.1:8080/health"
# expect_status = 200
# expect_body = "{{version}}"     # substring; {{version}} is the release's version
# interval = "500ms"
# timeout = "2s"
# retries = 20
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/x/lastgood.toml"), Path::new("/x"))
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
}
