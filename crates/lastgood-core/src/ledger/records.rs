//! What the ledger holds about releases, operations, their steps and locks, and the
//! writes an operation makes ([`Change`]), as plain values.
//!
//! These are the ledger's vocabulary, shared by every store and by the code that reads
//! and writes through the [`super::store::Ledger`] trait. They are not rows: each
//! store maps them to its own tables. Keeping them apart from the trait and the stores
//! lets a store depend on them without depending on the module that re-exports it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::audit::AuditEvent;
use super::backup::BackupRecord;
use crate::model::{CommitId, EnvName, OperationKind, Outcome, ReleaseId, ReleaseState, Scope};
use crate::plan::{Phase, Step};

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
    /// The GitOps commit that set it: the commit a version-file deploy pushed, or the
    /// branch tip lastgood left for it in branch mode.
    pub deploy_commit: Option<CommitId>,
}

/// What an environment runs now, according to the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvState {
    /// The release whose code `current` points at.
    pub current: Option<ReleaseId>,
    /// The release whose config files are in place (differs after `--scope` rollbacks).
    pub config_release: Option<ReleaseId>,
    /// How many migrations the database is ahead of the current release's code, as of
    /// lastgood's last schema change: an automatic rollback that would have had to
    /// destroy data leaves them applied (`lastgood db status` reads the database now).
    pub schema_ahead: u32,
    /// The epoch of the last lock granted on the environment (0: never locked). A
    /// grant at `epoch + 1` means nobody held the lock in between.
    pub epoch: i64,
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
    /// Whether the lease has expired, when the store judged it on its own clock (the
    /// PostgreSQL ledger asks its server, so that no client's clock is ever compared
    /// with another's); None when the caller judges `expires_at` against its clock.
    #[serde(skip)]
    pub expired: Option<bool>,
    /// The holder's machine (`/etc/machine-id` and pid namespace), when the store keeps
    /// it: a dead holder is taken over at once only from the same machine.
    #[serde(skip)]
    pub machine: Option<String>,
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
    /// How long the lease lasts from the grant (None: until `unlock`). The store adds it
    /// to its own clock: SQLite to `now`, PostgreSQL to the server's `clock_timestamp()`.
    pub lease: Option<std::time::Duration>,
    /// This machine (see [`LockInfo::machine`]).
    pub machine: Option<String>,
}

impl LockRequest {
    /// The audit event of granting this request at `epoch` (`lock.takeover` when it
    /// took the lock over from `took_over`), the same in every store.
    pub fn granted(&self, epoch: i64, took_over: Option<&LockInfo>) -> AuditEvent {
        let mut detail = serde_json::json!({ "epoch": epoch, "reason": self.reason, "pid": self.pid });
        let event = match took_over {
            Some(old) => {
                detail["taken_over_from"] = serde_json::to_value(old).unwrap_or_default();
                "lock.takeover"
            }
            None => "lock.acquire",
        };
        AuditEvent {
            at: self.now,
            actor: self.holder.clone(),
            host: self.host.clone(),
            env: Some(self.env.as_str().to_owned()),
            operation: None,
            event: event.to_owned(),
            detail,
        }
    }
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

/// How many operations of one kind ended one way in an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationCount {
    pub env: String,
    pub kind: String,
    pub outcome: String,
    pub count: u64,
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
    SetDeployCommit {
        release: ReleaseId,
        commit: CommitId,
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
    /// The database is this many migrations ahead of the current release's code.
    SetSchemaAhead(u32),
    SetSchemaRevision {
        release: ReleaseId,
        revision: Option<String>,
    },
    RecordBackup(BackupRecord),
    Audit(AuditEvent),
}

/// A page size as SQL wants it (`LIMIT`), for the paged reads of both stores.
pub(crate) fn page_limit(limit: usize) -> i64 {
    limit.min(i64::MAX as usize) as i64
}

/// A page's cursor as SQL wants it (`id < before`): no cursor is the newest page.
pub(crate) fn page_before(before: Option<u64>) -> i64 {
    before.map(|b| b.min(i64::MAX as u64) as i64).unwrap_or(i64::MAX)
}
