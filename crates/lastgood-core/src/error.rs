//! The errors the library reports, with the facts a person needs as fields.
//!
//! The CLI turns each into a message, a hint and an exit code (SPEC.md); the library
//! only says which class of failure it is through [`Error::exit_code`], so that the
//! dashboard and the CLI can never disagree about what a failure means.

use std::path::PathBuf;

use crate::model::InvalidValue;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no config file at {path}")]
    ConfigNotFound { path: PathBuf },

    #[error("cannot read {path}: {source}")]
    ConfigRead { path: PathBuf, source: std::io::Error },

    #[error("{path}:{line}:{column}: {message}")]
    Config { path: PathBuf, line: usize, column: usize, message: String },

    #[error("unknown environment `{env}`")]
    UnknownEnvironment { env: String, known: Vec<String> },

    #[error(transparent)]
    Invalid(#[from] InvalidValue),

    #[error("version `{version}` was not found in {source_dir}: no tag, branch or commit has that name")]
    UnknownVersion { version: String, source_dir: PathBuf },

    #[error("no release of `{env}` matches `{target}`")]
    UnknownTarget { env: String, target: String, candidates: Vec<String> },

    #[error("`{target}` names more than one release of `{env}`")]
    AmbiguousTarget { env: String, target: String, matches: Vec<String> },

    #[error("{what}")]
    Usage { what: String },

    #[error("`{env}` is locked by {holder}{}", operation.map(|o| format!(" (operation {o})")).unwrap_or_default())]
    Locked { env: String, holder: String, operation: Option<u64>, reason: Option<String>, expires_at: Option<String> },

    #[error("{kind} operation {operation} on `{env}` was interrupted{}", step.as_ref().map(|s| format!(" at step `{s}`")).unwrap_or_default())]
    Interrupted { env: String, operation: u64, kind: String, step: Option<String> },

    #[error("{kind} operation {operation} on `{env}` halted at step `{step}` (on_failure = \"halt\"): {detail}")]
    Halted { env: String, operation: u64, kind: String, step: String, detail: String },

    #[error("operation on `{env}` lost its lock to a newer holder (epoch {epoch} is stale)")]
    Fenced { env: String, epoch: i64 },

    /// `unlock --force --epoch N` named a lock that is no longer the one held.
    #[error("the lock of `{env}` is not at epoch {asked} ({}); nothing was unlocked", held.map(|e| format!("it is at epoch {e}")).unwrap_or_else(|| "it is free".into()))]
    LockChanged { env: String, asked: i64, held: Option<i64> },

    /// The SQLite ledger was moved to a team ledger (`lastgood ledger migrate`): it
    /// refuses writes and names where the ledger is now.
    #[error("this ledger was moved to {url} (schema {schema}); set [ledger] url to it")]
    LedgerMoved { url: String, schema: String },

    /// A safety check refused the operation; nothing was changed. The refusal's facts
    /// say which check and what consents to it.
    #[error("{what} of `{env}` was refused: {refusal}")]
    Refused { env: String, what: String, refusal: Box<crate::refusal::Refusal> },

    /// The ledger names a release it does not hold: it is damaged or was edited by hand.
    #[error("release {release} of `{env}` is missing from the ledger")]
    ReleaseMissing { env: String, release: crate::model::ReleaseId },

    #[error("operation {operation} is missing from the ledger")]
    OperationMissing { operation: u64 },

    /// A config file the environment snapshots cannot be read.
    #[error("config file {name} ({}) cannot be read: {source}", path.display())]
    ConfigFile { name: String, path: PathBuf, source: std::io::Error },

    #[error("git failed in {dir}: {message}")]
    Git { dir: PathBuf, message: String },

    #[error("ledger {path}: {message}")]
    Ledger { path: String, message: String },

    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },

    /// A step of an operation failed (a build, a restart, a health check).
    #[error("{message}")]
    Step { message: String },

    #[error(transparent)]
    Supervise(#[from] crate::supervise::SuperviseError),

    #[error(transparent)]
    Migrate(Box<crate::database::migrator::MigrateError>),

    /// The schema tool (Alembic, the adapter's commands) failed or was asked the impossible.
    #[error(transparent)]
    Tool(Box<crate::database::program::ToolError>),

    #[error("backup failed: {0}")]
    Backup(#[source] Box<crate::database::backup::BackupError>),
}

impl Error {
    /// The exit code SPEC.md assigns to this class of failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::ConfigNotFound { .. }
            | Self::ConfigRead { .. }
            | Self::Config { .. }
            | Self::UnknownEnvironment { .. }
            | Self::Invalid(_)
            | Self::UnknownVersion { .. }
            | Self::UnknownTarget { .. }
            | Self::AmbiguousTarget { .. }
            | Self::ConfigFile { .. }
            | Self::Usage { .. }
            | Self::LedgerMoved { .. } => 2,
            Self::Locked { .. } | Self::LockChanged { .. } => 3,
            Self::Refused { .. } => 4,
            Self::Interrupted { .. } | Self::Fenced { .. } | Self::Halted { .. } => 5,
            Self::Migrate(e) => e.exit_code(),
            Self::Tool(e) => e.exit_code(),
            Self::Backup(_) => 1,
            Self::Step { .. }
            | Self::Git { .. }
            | Self::Ledger { .. }
            | Self::ReleaseMissing { .. }
            | Self::OperationMissing { .. }
            | Self::Io { .. }
            | Self::Supervise(_) => 1,
        }
    }

    /// A refusal of `what` (an operation, a step) on `env`.
    pub fn refused(env: impl ToString, what: impl Into<String>, refusal: impl Into<crate::refusal::Refusal>) -> Self {
        Self::Refused { env: env.to_string(), what: what.into(), refusal: Box::new(refusal.into()) }
    }

    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { action, path, source }
    }
}
