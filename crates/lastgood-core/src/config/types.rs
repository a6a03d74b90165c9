//! The typed values of an environment: what the rest of lastgood reads once the config
//! has been checked.
//!
//! Every value here has passed its section's check (`runtime.rs`, `hosts.rs`,
//! `database.rs`, `checks.rs` beside this file), paths are absolute, and nothing here
//! remembers how it was spelled in TOML: that is `raw.rs`'s business, as cargo keeps its
//! raw manifest schema apart from the typed manifest. The code that acts on these
//! values (runtimes, the database module, verification) depends on this file, never on
//! the parser.

use std::path::PathBuf;
use std::time::Duration;

use super::tuning::{PgMethod, Settings};
use crate::database::url::DbUrl;
use crate::error::{Error, Result};
use crate::model::{EnvName, SshHost, Target};
use crate::secret::Secret;
use crate::verify::Check;

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Compose {
    /// Absolute (resolved against the config's folder); relative to the release's
    /// directory (unless absolute) when the release is built from source.
    pub file: PathBuf,
    pub project: String,
    /// The services lastgood brings up; empty: all of the project's.
    pub services: Vec<String>,
    /// Releases are exported from `source` into release directories, built there
    /// (`build`), and brought up from there.
    pub from_source: bool,
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

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Gitops {
    /// A path (resolved against the config's folder) or a URL, as git takes it.
    pub repo: String,
    pub branch: String,
    /// Relative to the repository's root; holds the version and nothing else. None:
    /// branch mode, where the branch's commits are the releases.
    pub version_file: Option<String>,
    pub mode: GitopsMode,
    /// The pipeline to start once the branch is where a release needs it (argv, its
    /// program resolved against the config's folder).
    #[serde(default)]
    pub trigger: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    pub hosts: Vec<SshHost>,
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
    /// With `restart`: the program that stops the app before migrations go down.
    pub stop: Option<Vec<String>>,
    pub keep_releases: usize,
    pub config_files: Vec<ConfigFile>,
    pub checks: Vec<Check>,
    pub stop_timeout: Duration,
    pub lease: Duration,
    pub database: Option<Database>,
    pub notify: Option<Notify>,
    /// The bake window after a switch and the watch after a rollback.
    pub monitor: super::monitor::Monitor,
    /// Refuse a deploy or rollback that lowers the major version without
    /// `--allow-major` (`major_guard = false` turns it off).
    pub major_guard: bool,
    /// `[proxy]`: the zero-downtime switch (releases runtime with `run`).
    pub proxy: Option<crate::proxy::settings::ProxySettings>,
}

impl Environment {
    /// A rollback target as the user wrote it; versions are opaque strings when the
    /// runtime does not resolve them in git.
    pub fn parse_target(&self, s: &str) -> Result<Target> {
        let t = if self.versions_in_source { Target::parse(s) } else { Target::parse_opaque(s) };
        Ok(t?)
    }

    /// Whether config files live in `<deploy_to>/shared/`, linked into each release's
    /// folder, rather than where lastgood.toml names them: on ssh hosts, and for compose
    /// releases built from source (compose reads `.env` beside the compose file).
    pub fn config_files_shared(&self) -> bool {
        !self.config_files.is_empty()
            && (!self.hosts.is_empty() || matches!(&self.runtime, Runtime::Compose(Compose { from_source: true, .. })))
    }

    /// The compose service whose container runs the schema tool, if any.
    pub fn schema_tool_service(&self) -> Option<&str> {
        self.database.as_ref().and_then(|d| d.run_in.as_deref())
    }
}

/// `[environments.X.notify]`: where to tell people what happens.
#[derive(Debug, Clone)]
pub struct Notify {
    /// Webhook URLs. They often carry a token, so they are never printed or logged.
    pub webhooks: Vec<Secret<String>>,
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
    pub backup_method: PgMethod,
    /// How many of the backups lastgood took are kept; older ones are removed when a
    /// new one is taken.
    pub backup_keep: usize,
    /// Compose: the service whose container (the release's image) runs the schema tool.
    pub run_in: Option<String>,
    /// Compose: the database's own service, which a stop before a downgrade leaves up.
    pub service: Option<String>,
    pub settings: Settings,
    /// `rehearse = "deploy"`: a deploy rehearses its release's way back (the new head
    /// down to the revision a failure returns to) on a scratch database first.
    pub rehearse_at_deploy: bool,
}

/// Where the database URL comes from. It is completed from the environment (`PG*`,
/// the password file), and an environment variable read, when it is used, so a config
/// can be checked without the secret at hand.
#[derive(Debug, Clone)]
pub enum DbUrlSource {
    /// `url = "..."`, checked when the config was loaded.
    Url {
        text: Secret<String>,
        base: PathBuf,
    },
    Env {
        name: String,
        base: PathBuf,
    },
}

impl DbUrlSource {
    /// The URL as written (or as `url_env` holds it here), for a host that completes it
    /// from its own environment.
    pub fn text(&self) -> Result<Secret<String>> {
        match self {
            Self::Url { text, .. } => Ok(Secret::new(text.expose().clone())),
            Self::Env { name, .. } => std::env::var(name).map(Secret::new).map_err(|_| Error::Usage {
                what: format!("database url_env: the environment variable {name} is not set"),
            }),
        }
    }

    /// The URL completed from this process's environment; bad input is a usage error
    /// (exit 2). Notes about how it was completed go to [`crate::notice`].
    pub fn resolve(&self) -> Result<DbUrl> {
        let url = match self {
            Self::Url { text, base } => {
                DbUrl::parse(text.expose(), base).map_err(|e| Error::Usage { what: e.to_string() })?
            }
            Self::Env { name, base } => {
                let value = std::env::var(name).map_err(|_| Error::Usage {
                    what: format!("database url_env: the environment variable {name} is not set"),
                })?;
                DbUrl::parse(&value, base).map_err(|e| Error::Usage { what: format!("{name}: {e}") })?
            }
        };
        if let DbUrl::Postgres(pg) = &url {
            pg.notes.iter().for_each(|n| crate::notice::emit(n));
        }
        Ok(url)
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
