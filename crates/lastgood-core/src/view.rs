//! Views: what lastgood shows of its values, as plain serializable data. Every JSON
//! document the CLI prints (and, later, every document the dashboard's API answers
//! with) is the `Serialize` of one type in this module, so a key is named once and
//! means the same thing in `status`, `history`, plans and reports.
//!
//! A view is not a model: it holds strings and numbers in the shape SPEC.md promises
//! ("JSON shapes", stable keys; keys may be added, never renamed or dropped), built from
//! the library's values by `From` or a small constructor, and nothing reads it back.
//! Keeping the shape here, apart from the types the engine works with, lets those types
//! change without changing what scripts read.
//!
//! Some library types are records made to be shown and already serialize in their
//! published shape (the incident record, `diff`, `diagnose`, the `db` results): they are
//! re-exported at the end, so this module is the one index of every JSON document.

use serde::Serialize;

use crate::context::rfc3339;
use crate::database::environment::Verdict;
use crate::database::migrator::MigrationState;
use crate::engine::preview::PlanView;
use crate::engine::run::Report;
use crate::fleet::HostState;
use crate::ledger::{self, AuditCheck, BackupRecord, LockInfo, StepRecord};
use crate::verify::CheckOutcome;

/// A release as status, plans and reports name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    pub id: u64,
    pub version: String,
    pub commit: Option<String>,
    pub state: &'static str,
    pub schema_revision: Option<String>,
}

impl From<&ledger::Release> for Release {
    fn from(r: &ledger::Release) -> Self {
        Self {
            id: r.id.0,
            version: r.version.clone(),
            commit: r.commit.as_ref().map(|c| c.as_str().to_owned()),
            state: r.state.as_str(),
            schema_revision: r.schema_revision.clone(),
        }
    }
}

/// One row of `history`: the release, and who made it, when and why.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    #[serde(flatten)]
    pub release: Release,
    /// The GitOps commit that set the release (None for other runtimes).
    pub deploy_commit: Option<String>,
    pub created_at: String,
    pub created_by: String,
    /// Commit subjects since the release before.
    pub features: Vec<String>,
    pub reason: Option<String>,
    /// Whether its release directory (or image) still exists.
    pub artifact: bool,
    /// It is the release that serves.
    pub current: bool,
    /// Migrations the database is ahead of this release's code (only ever non-zero for
    /// the current release).
    pub schema_ahead: u32,
}

impl From<&ledger::Release> for HistoryEntry {
    fn from(r: &ledger::Release) -> Self {
        Self {
            release: r.into(),
            deploy_commit: r.deploy_commit.as_ref().map(|c| c.as_str().to_owned()),
            created_at: rfc3339(r.created_at),
            created_by: r.created_by.clone(),
            features: r.features.clone(),
            reason: r.reason.clone(),
            artifact: r.artifact,
            current: false,
            schema_ahead: 0,
        }
    }
}

impl HistoryEntry {
    /// The entries of `lastgood history`, with the current release marked.
    pub fn list(h: &crate::engine::inspect::History) -> Vec<Self> {
        h.releases
            .iter()
            .map(|r| {
                let mut e = Self::from(r);
                e.current = h.current == Some(r.id);
                e.schema_ahead = if e.current { h.schema_ahead } else { 0 };
                e
            })
            .collect()
    }
}

/// Who holds an environment's lock.
#[derive(Debug, Clone, Serialize)]
pub struct Lock {
    pub holder: String,
    pub operation: Option<u64>,
    /// None for a lock taken by hand, which lasts until `unlock`.
    pub expires_at: Option<String>,
    pub reason: Option<String>,
    pub acquired_at: String,
    pub pid: Option<i32>,
    pub epoch: i64,
}

impl From<&LockInfo> for Lock {
    fn from(l: &LockInfo) -> Self {
        Self {
            holder: l.holder.clone(),
            operation: l.operation,
            expires_at: l.expires_at.map(rfc3339),
            reason: l.reason.clone(),
            acquired_at: rfc3339(l.acquired_at),
            pid: l.pid,
            epoch: l.epoch,
        }
    }
}

/// `status`: what runs, what the way back is, and what holds the environment.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub environment: String,
    pub current: Option<Release>,
    pub last_good: Option<Release>,
    pub lock: Option<Lock>,
    pub lock_holder_gone: bool,
    pub interrupted: Option<Interrupted>,
    pub current_link: Option<u64>,
    pub config_release: Option<u64>,
    pub rollback_ready: Option<bool>,
    pub app: Option<App>,
    pub runtime: String,
    pub runtime_version: Option<String>,
    pub hosts: Vec<HostState>,
    /// Why `rollback_ready` is false.
    pub rollback_not_ready: Option<String>,
    /// Migrations the database is ahead of the current release's code (0 when none).
    pub schema_ahead: u32,
    /// `{"target", "ready", "reasons"}`: the way back to the last good release.
    pub readiness: crate::engine::readiness::Readiness,
    /// The running bake window: its start, length, latest measurement of each signal.
    pub bake: Option<crate::journal::bake::BakeProgress>,
    /// With `[proxy]`: where it listens, the release it sends new connections to, its
    /// pid (null when it is not running).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyView>,
}

/// The proxy as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyView {
    pub listen: String,
    pub release: Option<u64>,
    pub pid: Option<i32>,
    pub running: bool,
    /// The port of the process it routes to.
    pub port: Option<u16>,
    /// The last time lastgood found it not running (traffic was down) and started it again.
    pub last_outage: Option<crate::proxy::state::Outage>,
}

impl From<&crate::proxy::Observed> for ProxyView {
    fn from(o: &crate::proxy::Observed) -> Self {
        Self {
            listen: o.listen.clone(),
            release: o.release,
            pid: o.pid,
            running: o.running,
            port: o.port,
            last_outage: o.last_outage.clone(),
        }
    }
}

/// An operation that did not finish.
#[derive(Debug, Clone, Serialize)]
pub struct Interrupted {
    pub operation: u64,
    pub kind: &'static str,
    pub step: Option<String>,
    pub holder_alive: bool,
}

/// The process lastgood supervises.
#[derive(Debug, Clone, Serialize)]
pub struct App {
    pub pid: i32,
    pub release: u64,
}

impl From<&crate::engine::inspect::Status> for Status {
    fn from(s: &crate::engine::inspect::Status) -> Self {
        Self {
            environment: s.environment.clone(),
            current: s.current.as_ref().map(Release::from),
            last_good: s.last_good.as_ref().map(Release::from),
            lock: s.lock.as_ref().map(Lock::from),
            lock_holder_gone: s.lock_holder_gone,
            interrupted: s.interrupted.as_ref().map(|i| Interrupted {
                operation: i.operation,
                kind: i.kind.as_str(),
                step: i.step.clone(),
                holder_alive: i.holder_alive,
            }),
            current_link: s.current_link.map(|c| c.0),
            config_release: s.config_release.map(|c| c.0),
            rollback_ready: s.rollback_ready,
            app: s.app.as_ref().map(|a| App { pid: a.pid, release: a.release }),
            runtime: s.runtime.to_owned(),
            runtime_version: s.runtime_version.clone(),
            hosts: s.hosts.clone(),
            rollback_not_ready: s.rollback_not_ready.clone(),
            schema_ahead: s.schema_ahead,
            bake: s.bake.clone(),
            readiness: s.readiness.clone(),
            proxy: s.proxy.as_ref().map(ProxyView::from),
        }
    }
}

/// What a deploy or rollback will do (`--dry-run`), and what a rollback did it by.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub kind: &'static str,
    pub environment: String,
    pub from: Option<Release>,
    pub to: Release,
    pub scope: &'static str,
    pub steps: Vec<PlanStep>,
    pub notes: Vec<String>,
    pub confirm: Vec<String>,
    pub migrations: Vec<Verdict>,
    pub sql: Option<String>,
    /// What a real run would refuse; a preview lists it instead of failing.
    pub refusals: Vec<PlanRefusal>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanStep {
    pub name: &'static str,
    /// The release the step acts on, when it names one.
    pub release: Option<u64>,
    /// `local`, or the hosts it acts on (labels joined with `,`).
    pub host: String,
    /// What the step does, in the runtime's own words.
    pub description: String,
}

/// What a real run of a plan would refuse, and the flag that consents to it.
#[derive(Debug, Clone, Serialize)]
pub struct PlanRefusal {
    pub reason: String,
    pub consent: Option<&'static str>,
}

impl From<&PlanView> for Plan {
    fn from(p: &PlanView) -> Self {
        Self {
            kind: p.kind.as_str(),
            environment: p.environment.clone(),
            from: p.from.as_ref().map(Release::from),
            to: (&p.to).into(),
            scope: p.scope.as_str(),
            steps: p
                .steps
                .iter()
                .map(|s| PlanStep {
                    name: s.step.name(),
                    release: s.step.release().map(|r| r.0),
                    host: s.host.clone(),
                    description: s.description.clone(),
                })
                .collect(),
            notes: p.notes.clone(),
            confirm: p.confirm.clone(),
            migrations: p.migrations.clone(),
            sql: p.sql.clone(),
            refusals: p.refusals.iter().map(|r| PlanRefusal { reason: r.to_string(), consent: r.consent() }).collect(),
        }
    }
}

/// What a deploy, rollback or resume did (SPEC: operation, kind, from, to, outcome,
/// steps), or that a rollback had nothing to do (`operation` null).
#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    pub operation: Option<u64>,
    pub kind: &'static str,
    pub environment: String,
    pub from: Option<Release>,
    pub to: Release,
    pub outcome: &'static str,
    pub error: Option<String>,
    /// The release serving when the operation ended.
    pub current: Option<u64>,
    pub steps: Vec<Step>,
    pub checks: Vec<CheckOutcome>,
    /// The plan a rollback ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

/// One step of an operation as it ran.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub phase: &'static str,
    pub host: String,
    pub state: &'static str,
    pub duration_ms: Option<i64>,
    pub detail: Option<String>,
}

impl From<&StepRecord> for Step {
    fn from(s: &StepRecord) -> Self {
        Self {
            name: s.step.name(),
            phase: s.phase.as_str(),
            host: s.host.clone(),
            state: s.state.as_str(),
            duration_ms: s.duration_ms,
            detail: s.detail.clone(),
        }
    }
}

impl Operation {
    /// What an operation did, with the plan it ran when there is one to show.
    pub fn new(r: &Report, plan: Option<&PlanView>) -> Self {
        Self {
            operation: Some(r.operation),
            kind: r.kind.as_str(),
            environment: r.environment.clone(),
            from: r.from.as_ref().map(Release::from),
            to: (&r.to).into(),
            outcome: r.outcome.as_str(),
            error: r.error.clone(),
            current: r.current.map(|c| c.0),
            steps: r.steps.iter().map(Step::from).collect(),
            checks: r.checks.clone(),
            plan: plan.map(Plan::from),
        }
    }

    /// A rollback whose target is already in place: no operation ran.
    pub fn nothing_to_do(plan: &PlanView) -> Self {
        Self {
            operation: None,
            kind: plan.kind.as_str(),
            environment: plan.environment.clone(),
            from: plan.from.as_ref().map(Release::from),
            to: (&plan.to).into(),
            outcome: "nothing_to_do",
            error: None,
            current: plan.from.as_ref().map(|f| f.id.0),
            steps: Vec::new(),
            checks: Vec::new(),
            plan: None,
        }
    }
}

/// `resume` with nothing interrupted.
#[derive(Debug, Clone, Serialize)]
pub struct NothingToResume {
    pub operation: Option<u64>,
    pub outcome: &'static str,
}

impl Default for NothingToResume {
    fn default() -> Self {
        Self { operation: None, outcome: "nothing_to_resume" }
    }
}

/// `verify`: the current release's checks, run now.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub environment: String,
    pub release: Release,
    pub passed: bool,
    pub checks: Vec<CheckOutcome>,
}

impl Verification {
    pub fn new(environment: &str, release: &ledger::Release, checks: &[CheckOutcome]) -> Self {
        Self {
            environment: environment.to_owned(),
            release: release.into(),
            passed: checks.iter().all(|c| c.passed),
            checks: checks.to_vec(),
        }
    }
}

/// `lock`: the lock just taken by hand.
#[derive(Debug, Clone, Serialize)]
pub struct Locked {
    pub environment: String,
    pub holder: String,
    pub reason: Option<String>,
    pub acquired_at: String,
    /// The grant's fencing epoch (`unlock --epoch N` names it).
    pub epoch: i64,
}

impl Locked {
    pub fn new(environment: &str, l: &LockInfo) -> Self {
        Self {
            environment: environment.to_owned(),
            holder: l.holder.clone(),
            reason: l.reason.clone(),
            acquired_at: rfc3339(l.acquired_at),
            epoch: l.epoch,
        }
    }
}

/// `unlock`: whose lock was freed (null when there was none).
#[derive(Debug, Clone, Serialize)]
pub struct Unlocked {
    pub environment: String,
    pub released: Option<String>,
}

impl Unlocked {
    pub fn new(environment: &str, freed: Option<&LockInfo>) -> Self {
        Self { environment: environment.to_owned(), released: freed.map(|l| l.holder.clone()) }
    }
}

/// `audit verify`: the chain's length, or the first event that breaks it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditChain {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_event: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

impl From<&AuditCheck> for AuditChain {
    fn from(r: &AuditCheck) -> Self {
        match r {
            AuditCheck::Intact { events } => {
                Self { ok: true, events: Some(*events), first_bad_event: None, event: None }
            }
            AuditCheck::Broken { id, event } => {
                Self { ok: false, events: None, first_bad_event: Some(*id), event: Some(event.clone()) }
            }
        }
    }
}

/// `db status`: where the schema is, and each migration's state.
#[derive(Debug, Clone, Serialize)]
pub struct DbStatus {
    /// The database, as its URL with the password masked.
    pub database: String,
    pub current: Option<Revision>,
    pub applied: usize,
    pub pending: usize,
    pub migrations: Vec<MigrationState>,
}

/// A schema revision: the migration's version and its full name.
#[derive(Debug, Clone, Serialize)]
pub struct Revision {
    pub version: String,
    pub name: String,
}

impl DbStatus {
    pub fn new(database: String, st: &crate::database::migrator::Status) -> Self {
        Self {
            database,
            current: st
                .current
                .as_ref()
                .map(|(version, name)| Revision { version: version.clone(), name: name.clone() }),
            applied: st.applied,
            pending: st.pending,
            migrations: st.migrations.clone(),
        }
    }
}

/// `db history`: the migrations applied, newest first, from the database's bookkeeping;
/// with Alembic, its whole history, each revision marked applied or not.
#[derive(Debug, Clone, Serialize)]
pub struct DbHistory {
    pub database: String,
    pub migrations: crate::database::tool::ToolHistory,
}

/// `db down --sql`: the plan, its SQL, and what a real run would refuse.
#[derive(Debug, Clone, Serialize)]
pub struct DbPreview<'a> {
    #[serde(flatten)]
    pub plan: &'a DbPlan,
    pub refusals: Vec<PlanRefusal>,
}

impl<'a> DbPreview<'a> {
    pub fn new(plan: &'a DbPlan, refusals: &[crate::refusal::Refusal]) -> Self {
        Self {
            plan,
            refusals: refusals.iter().map(|r| PlanRefusal { reason: r.to_string(), consent: r.consent() }).collect(),
        }
    }
}

/// A recorded backup (`db backup`, `db backups`).
#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    pub id: u64,
    pub taken_at: String,
    pub created_by: String,
    /// `pg_dump`, `template` (a copy on the server) or `sqlite`.
    pub method: &'static str,
    /// The file, or for a template copy the database's name on the server.
    pub location: std::path::PathBuf,
    pub bytes: u64,
    pub sha256: String,
    /// The operation that took it (None: `lastgood db backup` by hand).
    pub operation: Option<u64>,
    pub schema_revision: Option<String>,
    /// Its data is gone (removed by hand or by `backup_keep`, a copy dropped).
    pub missing: bool,
    /// Where its data lives: `machine:path` (the host of an environment with hosts, else
    /// the machine that took it), or the database server for a template copy. Listed by
    /// `db backups`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
}

impl Backup {
    pub fn new(b: &BackupRecord, missing: bool) -> Self {
        Self {
            id: b.id,
            taken_at: rfc3339(b.created_at),
            created_by: b.created_by.clone(),
            method: match b.file.kind {
                ledger::BackupKind::PgDump => "pg_dump",
                ledger::BackupKind::PgTemplate => "template",
                ledger::BackupKind::Sqlite => "sqlite",
            },
            location: b.file.path.clone(),
            bytes: b.file.bytes,
            sha256: b.file.sha256.clone(),
            operation: b.operation,
            schema_revision: b.schema_revision.clone(),
            missing,
            place: None,
        }
    }
}

impl From<&crate::engine::db::ListedBackup> for Backup {
    fn from(b: &crate::engine::db::ListedBackup) -> Self {
        Self { place: Some(b.place.clone()), ..Self::new(&b.record, b.missing) }
    }
}

// Records made to be shown, which serialize in their published shape as they are.
pub use crate::database::rehearse::Rehearsal;
pub use crate::engine::db::{DbPlan, DbRun, LintEntry};
pub use crate::engine::diagnose::{Comparison, Diagnosis};
pub use crate::report::IncidentReport;
