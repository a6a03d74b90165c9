//! The runbook's checklist, ticked from evidence.
//!
//! The items are the runbook's (issue type identified, last good state found, services
//! stopped, reverted, restarted, verified, team informed, incident documented). Each is
//! ticked only by evidence from the operation's own steps and audit events, and says
//! which; an item with no evidence stays open, because a record that claims more than
//! happened is worse than none. "Services stopped" means stopped before anything
//! changed (a restart after the switch is not it); "incident documented" is ticked by a
//! note on the follow-up; "reverted" says what a narrower rollback left alone.

use serde::Serialize;

use super::note::Note;
use crate::ledger::{Operation, Release, StepRecord, StepState};
use crate::model::{OperationKind, Outcome, Scope};
use crate::plan::{Phase, Step};

#[derive(Debug, Clone, Serialize)]
pub struct ChecklistItem {
    /// A stable key: `issue_type_identified`, `last_good_state_found`, ...
    pub item: &'static str,
    pub label: &'static str,
    pub done: bool,
    /// What ticked it, or why it is open.
    pub evidence: String,
}

pub(super) fn checklist(
    op: &Operation,
    steps: &[StepRecord],
    from: Option<&Release>,
    to: &Release,
    returned_to: Option<&Release>,
    notified: &[String],
    notes: &[Note],
) -> Vec<ChecklistItem> {
    let done = |names: &[&str], reverting: bool| -> Vec<String> {
        steps
            .iter()
            .filter(|s| s.state == StepState::Done && names.contains(&s.step.name()))
            // A deploy's forward steps move ahead; every other operation's (a rollback, a
            // restore's return of the data) go back.
            .filter(|s| !reverting || op.kind != OperationKind::Deploy || s.phase != Phase::Forward)
            .map(|s| {
                // A config step says which files it put back.
                let what = match (&s.step, &s.detail) {
                    (Step::RestoreConfig { .. }, Some(d)) => format!(": {}", one_line(d)),
                    _ => String::new(),
                };
                format!("step {} `{}` ({}){what}", s.seq, s.step.name(), s.phase.as_str())
            })
            .collect()
    };
    let item = |item, label, evidence: std::result::Result<String, String>| match evidence {
        Ok(e) => ChecklistItem { item, label, done: true, evidence: e },
        Err(e) => ChecklistItem { item, label, done: false, evidence: e },
    };
    let listed =
        |found: Vec<String>, none: &str| if found.is_empty() { Err(none.to_owned()) } else { Ok(found.join(", ")) };

    let issue = match (&op.reason, op.scope) {
        (Some(r), Scope::Full) => Ok(format!("reason given: \"{r}\"")),
        (Some(r), s) => Ok(format!("reason given: \"{r}\"; scope narrowed to {s}")),
        (None, Scope::Full) => Err("no reason was given and the scope was full".to_owned()),
        (None, s) => Ok(format!("scope narrowed to {s}")),
    };
    let last_good = match (op.kind, returned_to) {
        // The automatic rollback only ever chooses the newest good release.
        (OperationKind::Deploy, Some(r)) if steps.iter().any(|s| s.phase == Phase::Rollback) => {
            Ok(format!("returned by itself to the last good release #{} {}", r.id.0, r.version))
        }
        (_, Some(r)) if r.state == crate::model::ReleaseState::Good => {
            Ok(format!("returned to #{} {}, which is good", r.id.0, r.version))
        }
        (OperationKind::Deploy, _) if op.outcome == Outcome::Succeeded => {
            Ok(format!("#{} {} passed and is the last good state", to.id.0, to.version))
        }
        (OperationKind::Restore, _) if op.outcome == Outcome::Succeeded => {
            Ok(format!("#{} {} serves on the restored database and passed its checks", to.id.0, to.version))
        }
        (OperationKind::Restore, _) => Err(format!("the restore {}", op.outcome.as_str())),
        (OperationKind::Restart, _) if op.outcome == Outcome::Succeeded => {
            Ok(format!("#{} {} was restarted and passed its checks", to.id.0, to.version))
        }
        (OperationKind::Restart, _) => Err(format!("the restart {}", op.outcome.as_str())),
        (OperationKind::Rollback, _) if to.state == crate::model::ReleaseState::Good && op.scope == Scope::Config => {
            Ok(format!("put back the configuration of #{} {}, which is good", to.id.0, to.version))
        }
        (OperationKind::Rollback, _) if to.state == crate::model::ReleaseState::Good => {
            Ok(format!("rolled back to #{} {}, which is good", to.id.0, to.version))
        }
        (OperationKind::Rollback, _) => {
            Err(format!("the target #{} {} is {}, not good", to.id.0, to.version, to.state))
        }
        (OperationKind::Deploy, _) => Err(format!(
            "the deploy {} and no good release was returned to{}",
            op.outcome.as_str(),
            from.map(|f| format!(" (it started from #{})", f.id.0)).unwrap_or_default()
        )),
    };
    // Every verify step that ran, in order: a pass after a failure still says it failed.
    let ran: Vec<&StepRecord> = steps
        .iter()
        .filter(|s| matches!(s.step, Step::Verify { .. }) && matches!(s.state, StepState::Done | StepState::Failed))
        .collect();
    let said = ran
        .iter()
        .map(|s| match s.state {
            StepState::Done => format!("step {} passed", s.seq),
            _ => format!("step {} failed ({})", s.seq, one_line(s.detail.as_deref().unwrap_or(""))),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let verified = match (ran.is_empty(), ran.iter().any(|s| s.state == StepState::Done)) {
        (true, _) => Err("no verify step ran".to_owned()),
        (false, true) => Ok(said),
        (false, false) => Err(said),
    };
    vec![
        item("issue_type_identified", "Issue type identified", issue),
        item("last_good_state_found", "Last good state found", last_good),
        item("services_stopped", "Services stopped", stopped(steps)),
        item(
            "reverted",
            "Reverted",
            reverted(op, listed(done(&REVERTING, true), "nothing was reverted by this operation")),
        ),
        item("restarted", "Restarted", listed(done(&["restart"], false), "no restart step ran")),
        item("verified", "Verified", verified),
        item(
            "team_informed",
            "Team informed",
            if !notified.is_empty() {
                Ok(format!("{} notification(s) delivered: {}", notified.len(), notified.join(", ")))
            } else {
                Err("no notification was delivered for this operation".to_owned())
            },
        ),
        item("incident_documented", "Incident documented", documented(op, notes)),
    ]
}

/// Steps that change what serves or what it runs on.
const CHANGING: [&str; 6] = ["switch", "config", "migrate-down", "migrate-up", "restore-db", "undo-restore"];
/// Steps that take something back: code, schema or configuration to a release's state
/// (on a rollback's own path, or on the way back from a failed deploy), or the data to
/// a dump (a restore: the runbook's revert of a corrupted database).
const REVERTING: [&str; 5] = ["switch", "migrate-down", "migrate-up", "config", "restore-db"];

/// The runbook stops the services before it changes anything: only a `stop` step done
/// before the first step that changed something counts (a restart afterwards does not).
fn stopped(steps: &[StepRecord]) -> Result<String, String> {
    let done = |s: &&StepRecord| s.state == StepState::Done;
    let Some(change) = steps.iter().filter(done).find(|s| CHANGING.contains(&s.step.name())) else {
        return Err("nothing was changed by this operation".to_owned());
    };
    let name = |s: &StepRecord| format!("step {} `{}` ({})", s.seq, s.step.name(), s.phase.as_str());
    match steps.iter().filter(done).find(|s| s.seq < change.seq && matches!(s.step, Step::Stop)) {
        Some(stop) => Ok(format!("{} ran before {} changed anything", name(stop), name(change))),
        None => Err(format!("no stop step ran before {}: the services kept running through the change", name(change))),
    }
}

/// What was reverted, said for the scope: a config rollback reverts configuration only.
fn reverted(op: &Operation, evidence: Result<String, String>) -> Result<String, String> {
    let what = match op.scope {
        _ if op.kind != OperationKind::Rollback => return evidence,
        Scope::Full => return evidence,
        Scope::Config => "the configuration only (scope config; code and schema untouched)",
        Scope::Code => "the code only (scope code; configuration and schema untouched)",
        Scope::Db => "the schema only (scope db; code and configuration untouched)",
    };
    evidence.map(|e| format!("{what}: {e}"))
}

fn documented(op: &Operation, notes: &[Note]) -> Result<String, String> {
    match notes.last() {
        Some(last) => {
            Ok(format!("{} note(s) in the follow-up, the latest by {} at {}", notes.len(), last.actor, last.at))
        }
        None => Err(format!("fill in the follow-up below, or add a note: `lastgood report {} --note TEXT`", op.id)),
    }
}

/// A detail on one line: its non-empty lines joined with ` / `.
pub(super) fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" / ")
}
