//! The ledger: the durable record of releases, operations, their journals, locks and
//! the audit trail.
//!
//! It is a trait because two stores implement it: SQLite, the embedded default, and
//! PostgreSQL, for teams that share history and the lock. The interface is shaped by
//! one rule: **every write an operation makes is fenced by its lock epoch**. Rather than
//! trusting each caller to check, writes go through [`Ledger::apply`], which takes a
//! [`Fence`] and a batch of [`Change`]s and commits them in one transaction only if the
//! environment's lock still carries that epoch. An operation whose lease was taken over
//! cannot change anything afterwards, whatever it believes.
//!
//! Reads are plain and cheap: `status` and `history` must stay in single-digit
//! milliseconds with 100,000 releases, so every read is an index lookup.

pub mod sqlite;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{CommitId, EnvName, OperationKind, Outcome, ReleaseId, ReleaseState, Scope};
use crate::plan::{Phase, Step};

pub use sqlite::SqliteLedger;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    pub id: ReleaseId,
    pub version: String,
    pub commit: Option<CommitId>,
    pub state: ReleaseState,
    pub schema_revision: Option<String>,
    pub created_at: i64,
    pub created_by: String,
    pub reason: Option<String>,
    pub operation: Option<u64>,
    /// Commit subjects since the release before it.
    pub features: Vec<String>,
    /// Config file name to the sha256 of its content when the release was made.
    pub config: BTreeMap<String, String>,
    /// Whether its release directory still exists (retention removes old ones).
    pub artifact: bool,
}

/// What an environment runs now, according to the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvState {
    /// The release whose code `current` points at.
    pub current: Option<ReleaseId>,
    /// The release whose config files are in place (differs after `--scope` rollbacks).
    pub config_release: Option<ReleaseId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockInfo {
    pub holder: String,
    pub host: String,
    pub pid: Option<i32>,
    pub pid_start: Option<u64>,
    pub operation: Option<u64>,
    pub reason: Option<String>,
    pub epoch: i64,
    pub acquired_at: i64,
    /// None for a lock taken by hand (`lastgood lock`), which lasts until `unlock`.
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct LockRequest {
    pub env: EnvName,
    pub holder: String,
    pub host: String,
    pub pid: Option<i32>,
    pub pid_start: Option<u64>,
    pub reason: Option<String>,
    pub now: i64,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Acquired {
    pub epoch: i64,
    /// The lock this acquisition took over from a dead or expired holder.
    pub took_over: Option<LockInfo>,
}

/// Proof of holding an environment's lock at an epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub env: EnvName,
    pub epoch: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    pub id: u64,
    pub env: EnvName,
    pub kind: OperationKind,
    pub from: Option<ReleaseId>,
    pub to: ReleaseId,
    pub scope: Scope,
    pub outcome: Outcome,
    pub auto_rollback: bool,
    pub reason: Option<String>,
    pub actor: String,
    pub host: String,
    pub pid: i32,
    pub epoch: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    /// `--allow-data-loss` was given: destructive down migrations may run.
    pub allow_data_loss: bool,
}

/// A database backup, as the ledger records it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupRecord {
    pub id: u64,
    pub operation: Option<u64>,
    pub release: Option<ReleaseId>,
    pub file: crate::database::backup::BackupFile,
    pub schema_revision: Option<String>,
    pub created_at: i64,
    pub created_by: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    Planned,
    Intended,
    Done,
    Failed,
    Skipped,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Intended => "intended",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "planned" => Self::Planned,
            "intended" => Self::Intended,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "skipped" => Self::Skipped,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub seq: u32,
    pub step: Step,
    pub phase: Phase,
    pub host: String,
    pub state: StepState,
    pub started_at_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub detail: Option<String>,
}

/// A new operation and, for a deploy, the release it creates.
#[derive(Debug, Clone)]
pub struct NewOperation {
    pub kind: OperationKind,
    pub from: Option<ReleaseId>,
    pub to: ReleaseId,
    pub scope: Scope,
    pub auto_rollback: bool,
    pub reason: Option<String>,
    pub actor: String,
    pub host: String,
    pub pid: i32,
    pub started_at: i64,
    /// Each step with its phase and the hosts it acts on (`local`, or host labels
    /// joined with `,`).
    pub steps: Vec<(Step, Phase, String)>,
    pub release: Option<NewRelease>,
    pub allow_data_loss: bool,
}

#[derive(Debug, Clone)]
pub struct NewRelease {
    pub id: ReleaseId,
    pub version: String,
    pub commit: Option<CommitId>,
    pub features: Vec<String>,
    /// name -> sha256, and the content of each sha256.
    pub config: BTreeMap<String, String>,
    pub blobs: Vec<(String, Vec<u8>)>,
}

/// An audit event; the store chains it to the previous one by hash.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub at: i64,
    pub actor: String,
    pub host: String,
    pub env: Option<String>,
    pub operation: Option<u64>,
    pub event: String,
    pub detail: serde_json::Value,
}

impl AuditEvent {
    /// An event by this actor, on this host, now.
    pub fn by(
        ctx: &crate::context::Context,
        env: &str,
        operation: Option<u64>,
        event: &str,
        detail: serde_json::Value,
    ) -> Self {
        Self {
            at: ctx.now(),
            actor: ctx.actor(),
            host: ctx.host.clone(),
            env: Some(env.to_owned()),
            operation,
            event: event.to_owned(),
            detail,
        }
    }
}

/// An audit event as stored, with its place in the chain.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub event: AuditEvent,
    pub hash: String,
}

/// One write of an operation, applied with others in one fenced transaction.
#[derive(Debug, Clone)]
pub enum Change {
    StepIntended {
        op: u64,
        seq: u32,
        at_ms: i64,
    },
    StepFinished {
        op: u64,
        seq: u32,
        state: StepState,
        duration_ms: i64,
        detail: Option<String>,
    },
    /// Every step from `from_seq` on that is not done becomes skipped.
    SkipRemaining {
        op: u64,
        from_seq: u32,
    },
    AppendSteps {
        op: u64,
        steps: Vec<(Step, Phase, String)>,
    },
    SetCurrent(Option<ReleaseId>),
    SetConfigRelease(Option<ReleaseId>),
    SetReleaseState {
        release: ReleaseId,
        state: ReleaseState,
    },
    SetArtifact {
        release: ReleaseId,
        present: bool,
    },
    /// The operation now runs under the fence's epoch (after `resume` took it over).
    AdoptOperation {
        op: u64,
        pid: i32,
    },
    FinishOperation {
        op: u64,
        outcome: Outcome,
        at: i64,
        error: Option<String>,
    },
    /// Frees the lock (the fence's epoch).
    ReleaseLock,
    SetSchemaRevision {
        release: ReleaseId,
        revision: Option<String>,
    },
    RecordBackup(BackupRecord),
    Audit(AuditEvent),
}

pub trait Ledger {
    /// Where it is, for messages (never with a password).
    fn describe(&self) -> String;

    fn env_state(&self, env: &EnvName) -> Result<EnvState>;
    fn release(&self, env: &EnvName, id: ReleaseId) -> Result<Option<Release>>;
    /// Newest first.
    fn releases(&self, env: &EnvName, limit: usize) -> Result<Vec<Release>>;
    fn next_release_id(&self, env: &EnvName) -> Result<ReleaseId>;
    /// The newest good release other than `except`.
    fn last_good(&self, env: &EnvName, except: Option<ReleaseId>) -> Result<Option<Release>>;
    /// The newest release with this version.
    fn release_by_version(&self, env: &EnvName, version: &str) -> Result<Option<Release>>;
    /// The newest release older than `before`.
    fn release_before(&self, env: &EnvName, before: ReleaseId) -> Result<Option<Release>>;
    /// Releases whose directories exist, newest first.
    fn releases_with_artifacts(&self, env: &EnvName) -> Result<Vec<Release>>;
    /// A config snapshot's content (kept outside the ledger: see [`crate::snapshots`]).
    fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>>;
    /// Backups of the environment's database, newest first.
    fn backups(&self, env: &EnvName, limit: usize) -> Result<Vec<BackupRecord>>;
    /// The audit events of one operation, oldest first.
    fn audit_events(&self, operation: u64) -> Result<Vec<AuditRow>>;

    fn lock_info(&self, env: &EnvName) -> Result<Option<LockInfo>>;
    /// Takes the lock, or takes it over when `is_stale` says its holder is dead or
    /// expired; otherwise fails with `Error::Locked`. Each grant raises the epoch.
    fn acquire(&self, req: &LockRequest, is_stale: &dyn Fn(&LockInfo) -> bool) -> Result<Acquired>;
    /// Extends the lease; false when the lock is no longer ours.
    fn heartbeat(&self, fence: &Fence, expires_at: i64) -> Result<bool>;
    /// Frees the lock if it is still ours.
    fn release_lock(&self, fence: &Fence) -> Result<()>;
    /// Frees whatever holds the lock; returns what it was.
    fn force_unlock(&self, env: &EnvName, audit: AuditEvent) -> Result<Option<LockInfo>>;

    /// Creates the operation (and its release) and binds the lock to it.
    fn begin_operation(&self, fence: &Fence, new: NewOperation) -> Result<u64>;
    fn running_operation(&self, env: &EnvName) -> Result<Option<Operation>>;
    fn operation(&self, id: u64) -> Result<Option<Operation>>;
    fn steps(&self, op: u64) -> Result<Vec<StepRecord>>;
    /// Applies the changes in one transaction, only while `fence` holds the lock.
    fn apply(&self, fence: &Fence, changes: Vec<Change>) -> Result<()>;
    /// Writes that need no lock of an operation: `mark` and manual lock events.
    fn apply_unfenced(&self, env: &EnvName, changes: Vec<Change>) -> Result<()>;
}
