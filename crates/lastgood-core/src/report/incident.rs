//! The incident record of one operation, built from what the ledger recorded.
//!
//! [`IncidentReport::build`] reads the operation, its releases, steps and audit events,
//! and assembles the summary, the diff, the plan, the timeline, the verification and the
//! checklist. It reads nothing that is running now, so the same ledger always gives the
//! same record. Rendering it is `markdown.rs`'s job; JSON is this struct serialized.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::checklist::{ChecklistItem, checklist};
use super::diff::{Diff, ReleaseSummary};
use super::note::{NOTE_EVENT, Note};
use crate::config::Config;
use crate::context::rfc3339;
use crate::error::{Error, Result};
use crate::ledger::{Ledger, Operation, Release, StepRecord, StepState};
use crate::model::{EnvName, OperationKind, Outcome, ReleaseId, Scope};
use crate::plan::{Phase, Step};

#[derive(Debug, Clone, Serialize)]
pub struct IncidentReport {
    pub operation: u64,
    pub kind: OperationKind,
    pub environment: String,
    pub outcome: Outcome,
    pub scope: Scope,
    pub reason: Option<String>,
    pub actor: String,
    pub host: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    pub auto_rollback: bool,
    pub allow_data_loss: bool,
    pub from: Option<ReleaseSummary>,
    pub to: ReleaseSummary,
    /// Where a failed deploy's automatic rollback (or `resume --abort`) returned to.
    pub returned_to: Option<ReleaseSummary>,
    /// Migrations the automatic rollback left applied because reverting them would have
    /// destroyed data (0 when none): the schema is ahead of the code it returned to.
    pub schema_ahead: u32,
    pub diff: Diff,
    pub plan: Vec<PlannedStep>,
    pub timeline: Vec<TimelineEntry>,
    pub hosts: Vec<HostResult>,
    pub verification: Verification,
    pub checklist: Vec<ChecklistItem>,
    /// The bake window and the watch after a rollback, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<super::bake::Watching>,
    pub follow_up: FollowUp,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub seq: u32,
    pub step: &'static str,
    pub description: String,
    pub phase: Phase,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub seq: u32,
    pub step: &'static str,
    pub phase: Phase,
    pub host: String,
    pub state: StepState,
    /// UTC, with milliseconds.
    pub started_at: Option<String>,
    /// Milliseconds since the operation's first step started.
    pub offset_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostResult {
    pub host: String,
    pub done: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Planned or intended: not finished (an interrupted operation).
    pub open: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub steps: Vec<VerifyStep>,
    /// Every check run, in order, as the operation's finish event recorded them.
    pub checks: Vec<CheckResult>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyStep {
    pub seq: u32,
    pub phase: Phase,
    pub release: Option<u64>,
    pub state: StepState,
    pub detail: Option<String>,
}

/// A check's outcome as the `<kind>.finish` audit event stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    pub check: String,
    pub passed: bool,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub duration_ms: u64,
}

/// Left for people to write: the root cause and prevention stay empty in a generated
/// report; `notes` are what people added with `lastgood report OPERATION --note TEXT`.
#[derive(Debug, Clone, Serialize)]
pub struct FollowUp {
    pub root_cause: Option<String>,
    pub prevention: Option<String>,
    /// Oldest first.
    pub notes: Vec<Note>,
}

impl IncidentReport {
    /// The record of operation `id`. An unknown id is a usage error (exit 2) that lists
    /// the newest operations the ledger holds.
    pub fn build(ledger: &dyn Ledger, config: &Config, id: u64) -> Result<Self> {
        let Some(op) = ledger.operation(id)? else {
            return Err(unknown_operation(ledger, config, id));
        };
        let release = |rid: ReleaseId| -> Result<Release> {
            ledger.release(&op.env, rid)?.ok_or_else(|| Error::Ledger {
                path: ledger.describe(),
                message: format!("release {rid} of `{}` is missing from the ledger", op.env),
            })
        };
        let from = op.from.map(release).transpose()?;
        let to = release(op.to)?;
        let steps = ledger.steps(op.id)?;
        let audit = ledger.audit_events(op.id)?;
        let returned_to = returned_to(&steps).map(release).transpose()?;
        let env = config.environment(op.env.as_str()).ok();

        let site = env.map(crate::runtime::Site::local);
        let rt = site.as_ref().map(crate::runtime::of);
        let mut diff = Diff::between(ledger, env, from.as_ref(), &to);
        let finish = format!("{}.finish", op.kind.as_str());
        let finish = audit.iter().find(|a| a.event.event == finish);
        let checks: Vec<CheckResult> = finish
            .and_then(|a| a.event.detail.get("checks"))
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default();
        let notified: Vec<String> = audit
            .iter()
            .filter(|a| a.event.event == "notify.delivered")
            .map(|a| a.event.detail.get("event").and_then(|e| e.as_str()).unwrap_or("a notification").to_owned())
            .collect();
        let verification = Verification {
            steps: steps
                .iter()
                .filter(|s| matches!(s.step, Step::Verify { .. }))
                .map(|s| VerifyStep {
                    seq: s.seq,
                    phase: s.phase,
                    release: step_release(&s.step).map(|r| r.0),
                    state: s.state,
                    detail: s.detail.clone(),
                })
                .collect(),
            checks,
            note: match (finish, op.outcome) {
                (None, Outcome::Running) => {
                    Some("the operation has not finished: check results are not recorded yet".into())
                }
                (None, _) => Some("no finish event was recorded: check results are unknown".into()),
                _ => None,
            },
        };
        let notes: Vec<Note> = audit
            .iter()
            .filter(|a| a.event.event == NOTE_EVENT)
            .map(|a| Note {
                at: rfc3339(a.event.at),
                actor: a.event.actor.clone(),
                text: a.event.detail.get("text").and_then(|t| t.as_str()).unwrap_or("").to_owned(),
            })
            .collect();
        let monitoring = super::bake::Watching::of(&audit);
        let mut checklist = checklist(&op, &steps, from.as_ref(), &to, returned_to.as_ref(), &notified, &notes);
        let monitored = super::bake::Watching::evidence(monitoring.as_ref());
        checklist.insert(
            checklist.len().saturating_sub(2),
            ChecklistItem {
                item: "monitored",
                label: "Monitored",
                done: monitored.is_ok(),
                evidence: monitored.unwrap_or_else(|e| e),
            },
        );
        if op.kind == OperationKind::Rollback {
            diff.narrow(op.scope, from.as_ref(), &to, &restored_files(&steps, &to));
        }
        let schema_ahead = audit
            .iter()
            .filter(|a| a.event.event == "schema.left_ahead")
            .filter_map(|a| a.event.detail.get("count").and_then(|c| c.as_u64()))
            .next_back()
            .unwrap_or(0) as u32;
        Ok(Self {
            operation: op.id,
            kind: op.kind,
            environment: op.env.to_string(),
            outcome: op.outcome,
            scope: op.scope,
            reason: op.reason.clone(),
            actor: op.actor.clone(),
            host: op.host.clone(),
            started_at: rfc3339(op.started_at),
            finished_at: op.finished_at.map(rfc3339),
            error: op.error.clone(),
            auto_rollback: op.auto_rollback,
            allow_data_loss: op.allow_data_loss,
            from: from.as_ref().map(ReleaseSummary::of),
            to: ReleaseSummary::of(&to),
            returned_to: returned_to.as_ref().map(ReleaseSummary::of),
            schema_ahead,
            diff,
            plan: steps
                .iter()
                .map(|s| PlannedStep {
                    seq: s.seq,
                    step: s.step.name(),
                    description: match &rt {
                        Some(rt) => {
                            let facts = crate::runtime::StepFacts {
                                version: None,
                                back: s.phase != crate::plan::Phase::Forward || op.kind != OperationKind::Deploy,
                            };
                            rt.describe(&s.step, &facts)
                        }
                        None => s.step.to_string(),
                    },
                    phase: s.phase,
                })
                .collect(),
            timeline: timeline(&steps),
            hosts: hosts(&steps),
            verification,
            checklist,
            monitoring,
            follow_up: FollowUp { root_cause: None, prevention: None, notes },
        })
    }
}

fn timeline(steps: &[StepRecord]) -> Vec<TimelineEntry> {
    let base = steps.iter().filter_map(|s| s.started_at_ms).min();
    steps
        .iter()
        .map(|s| TimelineEntry {
            seq: s.seq,
            step: s.step.name(),
            phase: s.phase,
            host: s.host.clone(),
            state: s.state,
            started_at: s.started_at_ms.map(utc_millis),
            offset_ms: s.started_at_ms.zip(base).map(|(t, b)| t - b),
            duration_ms: s.duration_ms,
            detail: s.detail.clone(),
        })
        .collect()
}

fn hosts(steps: &[StepRecord]) -> Vec<HostResult> {
    let mut by_host: BTreeMap<&str, HostResult> = BTreeMap::new();
    for s in steps {
        let h = by_host.entry(&s.host).or_insert_with(|| HostResult {
            host: s.host.clone(),
            done: 0,
            failed: 0,
            skipped: 0,
            open: 0,
        });
        match s.state {
            StepState::Done => h.done += 1,
            StepState::Failed => h.failed += 1,
            StepState::Skipped => h.skipped += 1,
            StepState::Planned | StepState::Intended => h.open += 1,
        }
    }
    by_host.into_values().collect()
}

/// The config files a rollback's `config` steps wrote (their detail reads `restored
/// a.env, b.env`; files that already matched are not written), among `to`'s snapshot.
fn restored_files(steps: &[StepRecord], to: &Release) -> Vec<String> {
    let words: Vec<&str> = steps
        .iter()
        .filter(|s| s.state == StepState::Done && matches!(s.step, Step::RestoreConfig { .. }))
        .filter_map(|s| s.detail.as_deref())
        .filter(|d| d.contains("restored"))
        .flat_map(|d| d.split([' ', ',', ';', '\n']))
        .collect();
    to.config.keys().filter(|name| words.contains(&name.as_str())).cloned().collect()
}

fn step_release(step: &Step) -> Option<ReleaseId> {
    step.release()
}

/// The release an automatic rollback or an abort went back to: the target of its
/// first step that names one (`switch`, `config`, `migrate-down`...). None for an
/// abort of a first deploy, which only stops the app and removes `current`.
fn returned_to(steps: &[StepRecord]) -> Option<ReleaseId> {
    steps.iter().filter(|s| s.phase != Phase::Forward).find_map(|s| step_release(&s.step))
}

/// The error for an operation id the ledger does not hold, with the newest ones it does.
pub fn unknown_operation(ledger: &dyn Ledger, config: &Config, id: u64) -> Error {
    let mut what = format!("no operation {id} in the ledger {}", ledger.describe());
    match recent_operations(ledger, config, 10) {
        Ok(ops) if ops.is_empty() => what.push_str(": it holds no operations yet"),
        Ok(ops) => {
            for o in ops {
                let _ = write!(
                    what,
                    "\n  candidate: {} {} of `{}` to #{} ({}, {})",
                    o.id,
                    o.kind.as_str(),
                    o.env,
                    o.to.0,
                    o.outcome.as_str(),
                    rfc3339(o.started_at)
                );
            }
        }
        Err(e) => {
            let _ = write!(what, " (and the ledger could not list others: {e})");
        }
    }
    Error::Usage { what }
}

/// The newest operations, newest first. The ledger has no listing of operations, but
/// their ids are one sequence across environments and every deploy names its
/// operation on its release, so the newest deploy's id is a floor to walk up from.
pub fn recent_operations(ledger: &dyn Ledger, config: &Config, limit: usize) -> Result<Vec<Operation>> {
    let envs: Vec<&EnvName> = config.environments.keys().collect();
    let mut newest = 0;
    for env in &envs {
        let releases = ledger.releases(env, 1)?;
        newest = releases.iter().filter_map(|r| r.operation).chain([newest]).max().unwrap_or(newest);
        if let Some(l) = ledger.lock_info(env)? {
            newest = newest.max(l.operation.unwrap_or(0));
        }
    }
    // Rollbacks after the newest deploy; bounded, in case of gaps.
    let mut misses = 0;
    let mut probe = newest + 1;
    while misses < 20 {
        if ledger.operation(probe)?.is_some() {
            newest = probe;
            misses = 0;
        } else {
            misses += 1;
        }
        probe += 1;
    }
    let mut out = Vec::new();
    let mut id = newest;
    while id > 0 && out.len() < limit {
        if let Some(op) = ledger.operation(id)? {
            out.push(op);
        }
        id -= 1;
    }
    Ok(out)
}

fn utc_millis(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)).to_string()
}
