//! The [`Ledger`] trait: what every store offers the rest of lastgood.
//!
//! Two stores implement it: SQLite (the embedded default, [`super::sqlite`]) and
//! PostgreSQL (the team ledger, [`super::postgres`]); the same tests run on both. The trait says nothing about tables or SQL; its one rule is in
//! [`Ledger::apply`]: every write of an operation is fenced by its lock epoch.

use super::audit::{AuditCheck, AuditEvent, AuditRow};
use super::backup::BackupRecord;
use super::records::{
    Acquired, Change, EnvState, Fence, LockInfo, LockRequest, NewOperation, Operation, OperationCount, Release,
    StepRecord,
};
use crate::error::Result;
use crate::model::{EnvName, ReleaseId};

/// A store of the ledger. Reads are plain; every write of an operation goes through
/// [`Ledger::apply`] with its [`Fence`].
pub trait Ledger {
    /// Where it is, for messages (never with a password).
    fn describe(&self) -> String;

    fn env_state(&self, env: &EnvName) -> Result<EnvState>;
    fn release(&self, env: &EnvName, id: ReleaseId) -> Result<Option<Release>>;
    /// Newest first.
    fn releases(&self, env: &EnvName, limit: usize) -> Result<Vec<Release>>;
    /// A page of releases, newest first: those older than `before` (from the newest
    /// when None). Paged by key, so a page deep in a long history costs the same.
    fn releases_page(&self, env: &EnvName, before: Option<ReleaseId>, limit: usize) -> Result<Vec<Release>>;
    /// Operations newest first, of one environment (or all), older than `before`.
    fn operations(&self, env: Option<&EnvName>, before: Option<u64>, limit: usize) -> Result<Vec<Operation>>;
    /// How many operations each environment has had, by kind and outcome.
    fn operation_counts(&self) -> Result<Vec<OperationCount>>;
    /// The audit trail newest first, events older than `before`.
    fn audit_page(&self, before: Option<i64>, limit: usize) -> Result<Vec<AuditRow>>;
    fn next_release_id(&self, env: &EnvName) -> Result<ReleaseId>;
    /// The newest good release other than `except`.
    fn last_good(&self, env: &EnvName, except: Option<ReleaseId>) -> Result<Option<Release>>;
    /// The newest release with this version.
    fn release_by_version(&self, env: &EnvName, version: &str) -> Result<Option<Release>>;
    /// The newest release older than `before`.
    /// Releases whose commit or deploy commit starts with `prefix` (lower-case hex),
    /// newest first.
    fn releases_by_commit(&self, env: &EnvName, prefix: &str) -> Result<Vec<Release>>;
    fn release_before(&self, env: &EnvName, before: ReleaseId) -> Result<Option<Release>>;
    /// Releases whose directories exist, newest first.
    fn releases_with_artifacts(&self, env: &EnvName) -> Result<Vec<Release>>;

    /// The release whose migrations stay applied ahead of the current release's code
    /// (an automatic rollback that would have had to destroy data left them): its tree
    /// and images know how to revert them, so retention keeps them until they are, and
    /// a schema tool runs from it first.
    fn schema_ahead_release(&self, env: &EnvName) -> Result<Option<ReleaseId>> {
        let state = self.env_state(env)?;
        if state.schema_ahead == 0 {
            return Ok(None);
        }
        Ok(self
            .releases(env, 50)?
            .iter()
            .filter(|r| state.current.is_none_or(|c| r.id > c) && r.schema_revision.is_some())
            .map(|r| r.id)
            .max())
    }
    /// A config snapshot's content (SQLite keeps them beside the ledger file, see
    /// [`crate::snapshots`]; PostgreSQL in the ledger, so every operator can read them).
    fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>>;
    /// Backups of the environment's database, newest first.
    fn backups(&self, env: &EnvName, limit: usize) -> Result<Vec<BackupRecord>>;
    /// The audit events of one operation, oldest first.
    fn audit_events(&self, operation: u64) -> Result<Vec<AuditRow>>;
    /// Walks the whole audit chain, oldest first, for `lastgood audit verify`.
    fn verify_audit(&self) -> Result<AuditCheck>;

    fn lock_info(&self, env: &EnvName) -> Result<Option<LockInfo>>;
    /// Takes the lock, or takes it over when `is_stale` says its holder is dead or
    /// expired; otherwise fails with `Error::Locked`. Each grant raises the epoch.
    fn acquire(&self, req: &LockRequest, is_stale: &dyn Fn(&LockInfo) -> bool) -> Result<Acquired>;
    /// Extends the lease to `lease` from now (`now` on SQLite, the server's clock on
    /// PostgreSQL); false when the lock is no longer ours.
    fn heartbeat(&self, fence: &Fence, now: i64, lease: std::time::Duration) -> Result<bool>;
    /// Frees the lock if it is still ours.
    fn release_lock(&self, fence: &Fence) -> Result<()>;
    /// Frees whatever holds the lock (only if it is at `epoch`, when given: `unlock
    /// --force --epoch N` breaks the lock it names and no newer one); returns what it was.
    fn force_unlock(&self, env: &EnvName, epoch: Option<i64>, audit: AuditEvent) -> Result<Option<LockInfo>>;

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
