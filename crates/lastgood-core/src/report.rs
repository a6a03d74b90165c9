//! The incident record of one operation: what ran, what changed, what the runbook's
//! checklist says was done, and room for the follow-up.
//!
//! It is not the short [`crate::engine::Report`] a deploy or rollback prints when it
//! ends; it is the document someone pastes into an incident ticket afterwards. So it
//! is built only from what was recorded (the ledger, and the source repository for
//! commit authors and subjects) and never from what is running now: the same ledger
//! always gives the same bytes, with a stable order and every time in UTC. Step start
//! times come from the real clock even when `LASTGOOD_NOW` pins the rest, so each step
//! also carries its offset from the first step, which reads better in a timeline.
//!
//! The checklist is the runbook's (issue type identified, last good state found,
//! services stopped, reverted, restarted, verified, team informed, incident
//! documented). Each item is ticked only by evidence from the operation's own steps
//! and audit events, and says which; an item with no evidence stays open, because a
//! record that claims more than happened is worse than none.
//!
//! Markdown is rendered here rather than in the CLI because it is the record itself,
//! not a view of it: the dashboard offers the same document. JSON is the same struct.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::{Adapter, Config, Environment};
use crate::context::rfc3339;
use crate::error::{Error, Result};
use crate::git::{self, Commit};
use crate::ledger::{Ledger, Operation, Release, StepRecord, StepState};
use crate::model::{EnvName, OperationKind, Outcome, ReleaseId, Scope};
use crate::plan::{Phase, Step};
use crate::runtime::releases;

/// How many commits a report lists in each direction.
const COMMIT_LIMIT: usize = 100;

/// A config key whose name contains one of these (any case) has its values masked.
const SECRET_WORDS: [&str; 7] = ["PASSWORD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PRIVATE", "AUTH"];

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
    pub diff: Diff,
    pub plan: Vec<PlannedStep>,
    pub timeline: Vec<TimelineEntry>,
    pub hosts: Vec<HostResult>,
    pub verification: Verification,
    pub checklist: Vec<ChecklistItem>,
    pub follow_up: FollowUp,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseSummary {
    pub id: u64,
    pub version: String,
    pub commit: Option<String>,
    pub state: String,
    pub schema_revision: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub reason: Option<String>,
}

/// What differs between the `from` and `to` releases.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// The version (a tag, an image reference, a build number), when it differs.
    pub version: Option<VersionChange>,
    /// In `to` but not in `from`: what the operation brought in.
    pub commits_added: Vec<Commit>,
    /// In `from` but not in `to`: what the operation took out.
    pub commits_removed: Vec<Commit>,
    /// Why the commit lists are empty or incomplete, when they are.
    pub commits_note: Option<String>,
    /// Only files that differ, by name.
    pub config: Vec<ConfigChange>,
    pub schema: SchemaDiff,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionChange {
    pub from: Option<String>,
    pub to: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigChange {
    pub file: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    pub from_sha256: Option<String>,
    pub to_sha256: Option<String>,
    /// Key by key, for `KEY=VALUE` files; empty for other formats (see `note`).
    pub keys: Vec<KeyChange>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyChange {
    pub key: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    /// `***` when the key looks secret.
    pub from: Option<String>,
    pub to: Option<String>,
    pub masked: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SchemaDiff {
    pub from: Option<String>,
    pub to: Option<String>,
    /// `applied` or `reverted` when the revisions differ, else `unchanged`.
    pub direction: &'static str,
    /// The migrations between the two revisions, oldest first, when known.
    pub migrations: Vec<String>,
    pub note: Option<String>,
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

#[derive(Debug, Clone, Serialize)]
pub struct ChecklistItem {
    /// A stable key: `issue_type_identified`, `last_good_state_found`, ...
    pub item: &'static str,
    pub label: &'static str,
    pub done: bool,
    /// What ticked it, or why it is open.
    pub evidence: String,
}

/// Left for people to write; always empty in a generated report.
#[derive(Debug, Clone, Serialize)]
pub struct FollowUp {
    pub root_cause: Option<String>,
    pub prevention: Option<String>,
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
        let diff = Diff::between(ledger, env, from.as_ref(), &to);
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
        let checklist = checklist(&op, &steps, from.as_ref(), &to, returned_to.as_ref(), &notified);
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
            follow_up: FollowUp { root_cause: None, prevention: None },
        })
    }

    /// The record as Markdown: the `md` format of `lastgood report`.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail; the results of writeln! are ignored below.
        let _ = writeln!(s, "# Incident record: {} {} of {}\n", self.kind.as_str(), self.operation, self.environment);
        s.push_str(&self.summary_md());
        s.push_str("\n## What changed\n\n");
        s.push_str(&self.diff_md());
        s.push_str("\n## Plan\n\n");
        s.push_str(&self.plan_md());
        s.push_str("\n## Timeline\n\n");
        s.push_str(&self.timeline_md());
        s.push_str("\n## Verification\n\n");
        s.push_str(&self.verification_md());
        s.push_str("\n## Checklist\n\n");
        for c in &self.checklist {
            let _ = writeln!(s, "- [{}] {}: {}", if c.done { "x" } else { " " }, c.label, c.evidence);
        }
        s.push_str("\n## Follow-up\n\n");
        let _ = writeln!(s, "- Root cause: {}", self.follow_up.root_cause.as_deref().unwrap_or("_to fill in_"));
        let _ = writeln!(s, "- Prevention: {}", self.follow_up.prevention.as_deref().unwrap_or("_to fill in_"));
        s
    }

    fn summary_md(&self) -> String {
        let mut rows: Vec<(&str, String)> = vec![
            ("Environment", code(&self.environment)),
            ("Operation", format!("{} {} (scope {})", self.kind.as_str(), self.operation, self.scope)),
            ("Outcome", self.outcome.as_str().to_owned()),
            ("From", self.from.as_ref().map(ReleaseSummary::line).unwrap_or_else(|| "nothing deployed".into())),
            ("To", self.to.line()),
        ];
        if let Some(r) = &self.returned_to {
            let how = if self.kind == OperationKind::Deploy { "returned to by itself" } else { "returned to" };
            rows.push(("Returned to", format!("{} ({how})", r.line())));
        }
        rows.push(("Reason", self.reason.clone().unwrap_or_else(|| "none given".into())));
        rows.push(("Actor", format!("{} on {}", self.actor, self.host)));
        rows.push(("Started (UTC)", self.started_at.clone()));
        rows.push(("Finished (UTC)", self.finished_at.clone().unwrap_or_else(|| "not finished".into())));
        if let Some(e) = &self.error {
            rows.push(("Error", e.clone()));
        }
        if self.allow_data_loss {
            rows.push(("Data loss", "allowed (--allow-data-loss)".into()));
        }
        let mut s = String::from("| | |\n|---|---|\n");
        for (k, v) in rows {
            let _ = writeln!(s, "| {k} | {} |", cell(&v));
        }
        s
    }

    fn diff_md(&self) -> String {
        diff_markdown(&self.diff, self.from.as_ref(), &self.to)
    }

    fn plan_md(&self) -> String {
        let mut s = String::new();
        let mut phase = Phase::Forward;
        for p in &self.plan {
            if p.phase != phase {
                phase = p.phase;
                let why = match phase {
                    Phase::Rollback => "Added after the failure, to return to the last good release:",
                    Phase::Abort => "Added by `resume --abort`, to return to where the operation started:",
                    Phase::Forward => "Then:",
                };
                let _ = writeln!(s, "\n{why}\n");
            }
            let _ = writeln!(s, "{}. {} {}", p.seq, code(p.step), p.description);
        }
        if self.plan.is_empty() {
            s.push_str("No steps were planned.\n");
        }
        s
    }

    fn timeline_md(&self) -> String {
        let mut s = String::from(
            "| # | Step | Phase | Host | State | Started (UTC) | Offset | Duration | Detail |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        for t in &self.timeline {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                t.seq,
                t.step,
                t.phase.as_str(),
                cell(&t.host),
                t.state.as_str(),
                t.started_at.as_deref().unwrap_or("-"),
                t.offset_ms.map(|o| format!("+{}", seconds(o))).unwrap_or_else(|| "-".into()),
                t.duration_ms.map(seconds).unwrap_or_else(|| "-".into()),
                cell(t.detail.as_deref().unwrap_or("")),
            );
        }
        s.push_str("\nPer host:\n\n");
        for h in &self.hosts {
            let _ = write!(s, "- {}: {} done, {} failed, {} skipped", code(&h.host), h.done, h.failed, h.skipped);
            if h.open > 0 {
                let _ = write!(s, ", {} not finished", h.open);
            }
            s.push('\n');
        }
        if self.hosts.is_empty() {
            s.push_str("- no steps ran\n");
        }
        s
    }

    fn verification_md(&self) -> String {
        let v = &self.verification;
        let mut s = String::new();
        if v.steps.is_empty() {
            s.push_str("The plan had no verify step.\n");
        }
        for st in &v.steps {
            let release = st.release.map(|r| format!(" of #{r}")).unwrap_or_default();
            let detail = st.detail.as_deref().map(|d| format!(": {}", one_line(d))).unwrap_or_default();
            let _ = writeln!(s, "- step {} ({}){release}: {}{detail}", st.seq, st.phase.as_str(), st.state.as_str());
        }
        if !v.checks.is_empty() {
            s.push_str("\n| Check | Result | Attempts | Duration | Detail |\n|---|---|---|---|---|\n");
            for c in &v.checks {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} |",
                    cell(&c.check),
                    if c.passed { "passed" } else { "FAILED" },
                    c.attempts,
                    seconds(c.duration_ms as i64),
                    cell(&c.detail)
                );
            }
        }
        if let Some(n) = &v.note {
            let _ = writeln!(s, "\nNote: {n}");
        }
        s
    }
}

/// The "what changed" part of a record, for any two releases (`lastgood diff` too).
pub fn diff_markdown(d: &Diff, from: Option<&ReleaseSummary>, to: &ReleaseSummary) -> String {
    let mut s = String::new();
    if let Some(v) = &d.version {
        s.push_str(&format!("### Version\n\n`{}` -> `{}`\n\n", v.from.as_deref().unwrap_or("nothing"), v.to));
    }
    s.push_str("### Commits\n\n");
    let from = from.map(|r| format!("#{}", r.id)).unwrap_or_else(|| "nothing".into());
    let to = format!("#{}", to.id);
    if d.commits_added.is_empty() && d.commits_removed.is_empty() {
        s.push_str("No commits differ.\n");
    }
    for (list, what) in [(&d.commits_added, "brings in"), (&d.commits_removed, "takes out")] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(s, "From {from} to {to} {what} {} commit(s):\n", list.len());
        for c in list {
            let _ = writeln!(s, "- {} {} ({})", code(c.id.short()), c.subject, c.author);
        }
        s.push('\n');
    }
    if let Some(n) = &d.commits_note {
        let _ = writeln!(s, "Note: {n}\n");
    }
    let mut s = s.trim_end().to_owned();
    s.push_str("\n\n### Config\n\n");
    if d.config.is_empty() {
        s.push_str("No config file changed.\n");
    }
    for c in &d.config {
        let _ = writeln!(s, "- {} {}", code(&c.file), c.change);
        for k in &c.keys {
            let value = |v: &Option<String>| v.as_deref().map(code).unwrap_or_default();
            let line = match k.change {
                "added" => format!("{} added: {}", code(&k.key), value(&k.to)),
                "removed" => format!("{} removed (was {})", code(&k.key), value(&k.from)),
                _ => format!("{}: {} -> {}", code(&k.key), value(&k.from), value(&k.to)),
            };
            let _ = writeln!(s, "  - {line}{}", if k.masked { " (masked)" } else { "" });
        }
        if let Some(n) = &c.note {
            let _ = writeln!(s, "  - {n}");
        }
    }
    s.push_str("\n### Migrations\n\n");
    let sd = &d.schema;
    let rev = |r: &Option<String>| r.as_deref().map(code).unwrap_or_else(|| "none".into());
    if sd.direction == "unchanged" {
        let _ = writeln!(s, "Schema revision unchanged ({}).", rev(&sd.to));
    } else {
        let _ = writeln!(s, "Schema revision {} -> {} ({}).", rev(&sd.from), rev(&sd.to), sd.direction);
        if !sd.migrations.is_empty() {
            s.push('\n');
        }
        for m in &sd.migrations {
            let _ = writeln!(s, "- {}", code(m));
        }
    }
    if let Some(n) = &sd.note {
        let _ = writeln!(s, "\nNote: {n}");
    }
    s
}

impl ReleaseSummary {
    pub fn of(r: &Release) -> Self {
        Self {
            id: r.id.0,
            version: r.version.clone(),
            commit: r.commit.as_ref().map(|c| c.to_string()),
            state: r.state.as_str().to_owned(),
            schema_revision: r.schema_revision.clone(),
            created_at: rfc3339(r.created_at),
            created_by: r.created_by.clone(),
            reason: r.reason.clone(),
        }
    }

    pub fn line(&self) -> String {
        let commit = self.commit.as_deref().map(|c| format!("commit {}", code(&c[..c.len().min(12)])));
        let mut parts = vec![commit.unwrap_or_else(|| "no commit".into()), format!("now {}", self.state)];
        if let Some(r) = &self.schema_revision {
            parts.push(format!("schema {}", code(r)));
        }
        parts.push(format!("created {} by {}", self.created_at, self.created_by));
        format!("#{} {} ({})", self.id, self.version, parts.join(", "))
    }
}

impl Diff {
    /// Never fails: a part that cannot be worked out (the repository moved, a snapshot
    /// is missing) says so in its note, and the rest of the record still stands.
    pub fn between(ledger: &dyn Ledger, env: Option<&Environment>, from: Option<&Release>, to: &Release) -> Self {
        let (commits_added, commits_removed, commits_note) = commits(env, from, to);
        let version = (from.map(|f| &f.version) != Some(&to.version))
            .then(|| VersionChange { from: from.map(|f| f.version.clone()), to: to.version.clone() });
        Self {
            version,
            commits_added,
            commits_removed,
            commits_note,
            config: config_changes(ledger, from, to),
            schema: schema(env, from, to),
        }
    }
}

fn commits(
    env: Option<&Environment>,
    from: Option<&Release>,
    to: &Release,
) -> (Vec<Commit>, Vec<Commit>, Option<String>) {
    let Some(env) = env else {
        return (
            vec![],
            vec![],
            Some("the environment is no longer configured: its source repository is unknown".into()),
        );
    };
    let Some(to_commit) = to.commit.as_ref() else {
        let why = if env.versions_in_source {
            format!("release #{} has no recorded commit", to.id.0)
        } else {
            format!(
                "versions of runtime {} are opaque (image tags, build numbers): set `source` to resolve them in git and list commits",
                env.runtime.name()
            )
        };
        return (vec![], vec![], Some(why));
    };
    let from_commit = from.and_then(|f| f.commit.as_ref());
    let added = git::commits(&env.source, from_commit, to_commit, COMMIT_LIMIT);
    let removed = match from_commit {
        Some(f) => git::commits(&env.source, Some(to_commit), f, COMMIT_LIMIT),
        None => Ok(vec![]),
    };
    match (added, removed) {
        (Ok(a), Ok(r)) => {
            let full = a.len() >= COMMIT_LIMIT || r.len() >= COMMIT_LIMIT;
            let note = full.then(|| format!("at most {COMMIT_LIMIT} commits are listed in each direction"));
            (a, r, note)
        }
        (Err(e), _) | (_, Err(e)) => (vec![], vec![], Some(format!("cannot list commits: {e}"))),
    }
}

fn config_changes(ledger: &dyn Ledger, from: Option<&Release>, to: &Release) -> Vec<ConfigChange> {
    let empty = BTreeMap::new();
    let old = from.map(|f| &f.config).unwrap_or(&empty);
    let names: BTreeSet<&String> = old.keys().chain(to.config.keys()).collect();
    let mut out = Vec::new();
    for name in names {
        let (a, b) = (old.get(name), to.config.get(name));
        if a == b {
            continue;
        }
        let change = match (a, b) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        };
        let load = |sha: Option<&String>| -> std::result::Result<Option<Vec<u8>>, String> {
            match sha {
                None => Ok(None),
                Some(sha) => match ledger.blob(sha) {
                    Ok(Some(b)) => Ok(Some(b)),
                    Ok(None) => Err(format!("the snapshot {} is missing from the ledger", short_sha(sha))),
                    Err(e) => Err(format!("cannot read the snapshot {}: {e}", short_sha(sha))),
                },
            }
        };
        let mut c = ConfigChange {
            file: name.clone(),
            change,
            from_sha256: a.cloned(),
            to_sha256: b.cloned(),
            keys: vec![],
            note: None,
        };
        let parsed = match (load(a), load(b)) {
            (Ok(x), Ok(y)) => {
                let parse = |blob: &Option<Vec<u8>>| match blob {
                    None => Some(BTreeMap::new()),
                    Some(bytes) => key_values(bytes),
                };
                parse(&x).zip(parse(&y)).ok_or_else(|| "not a KEY=VALUE file".to_owned())
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        match parsed {
            Ok((x, y)) => c.keys = key_changes(&x, &y),
            Err(why) => {
                let sha = |s: Option<&String>| s.map(|s| short_sha(s).to_owned()).unwrap_or_else(|| "none".into());
                c.note = Some(format!("{why}: sha256 {} -> {}", sha(a), sha(b)));
            }
        }
        out.push(c);
    }
    out
}

/// A `KEY=VALUE` file (blank lines, `#` comments and `export ` allowed); None for any
/// other format, which is then only reported as changed.
fn key_values(bytes: &[u8]) -> Option<BTreeMap<String, String>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line.split_once('=')?;
        let key = key.trim();
        let plain = key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if key.is_empty() || !plain {
            return None;
        }
        // The last assignment wins, as when a shell or dotenv reads the file.
        map.insert(key.to_owned(), value.trim().to_owned());
    }
    Some(map)
}

fn key_changes(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<KeyChange> {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (old.get(k), new.get(k));
            let change = match (a, b) {
                (x, y) if x == y => return None,
                (None, _) => "added",
                (_, None) => "removed",
                _ => "changed",
            };
            let masked = is_secret(k);
            let show = |v: Option<&String>| v.map(|v| if masked { "***".to_owned() } else { v.clone() });
            Some(KeyChange { key: k.clone(), change, from: show(a), to: show(b), masked })
        })
        .collect()
}

pub fn is_secret(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
}

fn schema(env: Option<&Environment>, from: Option<&Release>, to: &Release) -> SchemaDiff {
    let old = from.and_then(|f| f.schema_revision.clone());
    let new = to.schema_revision.clone();
    let mut d =
        SchemaDiff { from: old.clone(), to: new.clone(), direction: "unchanged", migrations: vec![], note: None };
    if old == new {
        return d;
    }
    let forward = from.is_none_or(|f| f.id < to.id);
    d.direction = if forward { "applied" } else { "reverted" };
    // Only the builtin engine's revisions are migration versions that sort; the newer
    // release's own folder (while retention keeps it) names the ones in between.
    let Some(env) = env else { return d };
    let Some(db) = env.database.as_ref() else { return d };
    let (Adapter::Builtin, Some(folder)) = (&db.adapter, db.migrations.as_ref()) else {
        d.note = Some("the migrations in between are known only to the schema tool".into());
        return d;
    };
    let (low, high, newer) =
        if forward { (&old, &new, to.id) } else { (&new, &old, from.map(|f| f.id).unwrap_or(to.id)) };
    let dir = releases::release_dir(&env.deploy_to, newer).join(folder);
    if !dir.is_dir() {
        d.note = Some(format!("the directory of release #{} is gone: its migrations cannot be listed", newer.0));
        return d;
    }
    match crate::database::migration_files::discover(&dir) {
        Ok(all) => {
            use crate::database::migration_files::compare_versions;
            use std::cmp::Ordering::Greater;
            d.migrations = all
                .into_iter()
                .filter(|m| low.as_deref().is_none_or(|l| compare_versions(&m.version, l) == Greater))
                .filter(|m| high.as_deref().is_some_and(|h| compare_versions(&m.version, h) != Greater))
                .map(|m| m.name)
                .collect();
        }
        Err(e) => d.note = Some(format!("cannot list the migrations: {e}")),
    }
    d
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

fn step_release(step: &Step) -> Option<ReleaseId> {
    match step {
        Step::Export { release, .. }
        | Step::Build { release }
        | Step::Switch { release }
        | Step::RestoreConfig { release }
        | Step::Restart { release }
        | Step::Verify { release }
        | Step::Backup { release }
        | Step::MigrateUp { release }
        | Step::MigrateDown { release } => Some(*release),
        Step::Stop | Step::Unlink | Step::Cleanup => None,
    }
}

/// The release an automatic rollback or an abort went back to: the target of its
/// first step that names one (`switch`, `config`, `migrate-down`...). None for an
/// abort of a first deploy, which only stops the app and removes `current`.
fn returned_to(steps: &[StepRecord]) -> Option<ReleaseId> {
    steps.iter().filter(|s| s.phase != Phase::Forward).find_map(|s| step_release(&s.step))
}

fn checklist(
    op: &Operation,
    steps: &[StepRecord],
    from: Option<&Release>,
    to: &Release,
    returned_to: Option<&Release>,
    notified: &[String],
) -> Vec<ChecklistItem> {
    let done = |names: &[&str], reverting: bool| -> Vec<String> {
        steps
            .iter()
            .filter(|s| s.state == StepState::Done && names.contains(&s.step.name()))
            .filter(|s| !reverting || op.kind == OperationKind::Rollback || s.phase != Phase::Forward)
            .map(|s| format!("step {} `{}` ({})", s.seq, s.step.name(), s.phase.as_str()))
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
        item(
            "services_stopped",
            "Services stopped",
            listed(done(&["stop", "restart"], false), "no stop or restart step ran"),
        ),
        item(
            "reverted",
            "Reverted",
            listed(done(&["switch", "migrate-down", "config"], true), "nothing was reverted by this operation"),
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
        item("incident_documented", "Incident documented", Err("fill in the follow-up below".to_owned())),
    ]
}

/// The error for an operation id the ledger does not hold, with the newest ones it does.
fn unknown_operation(ledger: &dyn Ledger, config: &Config, id: u64) -> Error {
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

/// Milliseconds as seconds with three decimals: `1.250s`.
fn seconds(ms: i64) -> String {
    format!("{}.{:03}s", ms / 1000, ms.rem_euclid(1000))
}

fn short_sha(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" / ")
}

/// A table cell: pipes escaped, line breaks kept as `<br>`.
fn cell(s: &str) -> String {
    s.trim_end().replace('|', "\\|").replace('\r', "").replace('\n', "<br>")
}

/// An inline code span that survives backticks in the value.
fn code(s: &str) -> String {
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{s}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_keys_are_masked() {
        for k in
            ["API_TOKEN", "db_password", "SecretThing", "AWS_ACCESS_KEY_ID", "private_pem", "AUTH_URL", "CREDENTIALS"]
        {
            assert!(is_secret(k), "{k}");
        }
        for k in ["GREETING", "HEALTH", "PORT"] {
            assert!(!is_secret(k), "{k}");
        }
        let old = key_values(b"A=1\nAPI_TOKEN=abc\nGONE=x\n").unwrap();
        let new = key_values(b"# c\nexport A=2\nAPI_TOKEN=xyz\nNEW=y\n").unwrap();
        let ch = key_changes(&old, &new);
        let shown: Vec<String> = ch.iter().map(|k| format!("{}:{}:{:?}:{:?}", k.key, k.change, k.from, k.to)).collect();
        assert_eq!(
            shown,
            [
                "A:changed:Some(\"1\"):Some(\"2\")",
                "API_TOKEN:changed:Some(\"***\"):Some(\"***\")",
                "GONE:removed:Some(\"x\"):None",
                "NEW:added:None:Some(\"y\")",
            ]
        );
    }

    #[test]
    fn other_formats_are_not_read_key_by_key() {
        assert!(key_values(b"[section]\nkey = 1\n").is_none());
        assert!(key_values(b"{\"a\": 1}").is_none());
        assert!(key_values(&[0xff, 0xfe]).is_none());
        assert_eq!(key_values(b"\n# only a comment\n").unwrap().len(), 0);
    }

    #[test]
    fn markdown_helpers_escape() {
        assert_eq!(cell("a|b\nc"), "a\\|b<br>c");
        assert_eq!(code("x"), "`x`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`a"), "`` `a ``");
        assert_eq!(seconds(1250), "1.250s");
        assert_eq!(seconds(7), "0.007s");
    }
}
