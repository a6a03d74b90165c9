//! The record as Markdown: the `md` format of `lastgood report`, and the "what changed"
//! part `lastgood diff` prints.
//!
//! Markdown is rendered in the library rather than in the CLI because it is the record
//! itself, not a view of it: the dashboard offers the same document. Values are escaped
//! for table cells and inline code, so a detail holding `|` or a backtick cannot break
//! the document's structure.

use std::fmt::Write as _;

use super::checklist::one_line;
use super::config_diff::ConfigChange;
use super::diff::{Diff, ReleaseSummary};
use super::incident::IncidentReport;
use crate::model::{OperationKind, Scope};
use crate::plan::Phase;

impl IncidentReport {
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
        if let Some(w) = &self.monitoring {
            s.push_str("\n## Monitoring\n\n");
            s.push_str(&w.markdown());
        }
        s.push_str("\n## Checklist\n\n");
        for c in &self.checklist {
            let _ = writeln!(s, "- [{}] {}: {}", if c.done { "x" } else { " " }, c.label, c.evidence);
        }
        s.push_str("\n## Follow-up\n\n");
        let _ = writeln!(s, "- Root cause: {}", self.follow_up.root_cause.as_deref().unwrap_or("_to fill in_"));
        let _ = writeln!(s, "- Prevention: {}", self.follow_up.prevention.as_deref().unwrap_or("_to fill in_"));
        if !self.follow_up.notes.is_empty() {
            s.push_str("\nNotes:\n\n");
        }
        for n in &self.follow_up.notes {
            // Continuation lines are indented so that a note of several lines stays one item.
            let text = n.text.trim_end().lines().collect::<Vec<_>>().join("\n  ");
            let _ = writeln!(s, "- {} by {}: {text}", n.at, n.actor);
        }
        s
    }

    fn summary_md(&self) -> String {
        let mut rows: Vec<(&str, String)> = vec![
            ("Environment", code(&self.environment)),
            ("Operation", format!("{} {} ({})", self.kind.as_str(), self.operation, self.scope_words())),
            ("Outcome", self.outcome.as_str().to_owned()),
            ("From", self.from.as_ref().map(ReleaseSummary::line).unwrap_or_else(|| "nothing deployed".into())),
            ("To", self.to.line()),
        ];
        if let Some(r) = &self.returned_to {
            let how = if self.kind == OperationKind::Deploy { "returned to by itself" } else { "returned to" };
            rows.push(("Returned to", format!("{} ({how})", r.line())));
        }
        if self.schema_ahead > 0 {
            rows.push((
                "Schema",
                format!(
                    "ahead of code by {} migration(s): reverting them would have destroyed data, so they stay until `lastgood rollback {} --scope db --allow-data-loss`",
                    self.schema_ahead, self.environment
                ),
            ));
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

    /// The scope, and for a narrower rollback what it left alone.
    fn scope_words(&self) -> String {
        let rest = match self.scope {
            _ if self.kind != OperationKind::Rollback => "",
            Scope::Full => "",
            Scope::Config => ": a configuration rollback; code and schema untouched",
            Scope::Code => ": a code rollback; configuration and schema untouched",
            Scope::Db => ": a schema rollback; code and configuration untouched",
        };
        format!("scope {}{rest}", self.scope)
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
    diff_markdown_in_place(d, from, to, "", &[])
}

/// The same, with config files edited in place (`lastgood diagnose`) listed after the
/// files that differ between the releases, under `label`.
pub fn diff_markdown_in_place(
    d: &Diff,
    from: Option<&ReleaseSummary>,
    to: &ReleaseSummary,
    label: &str,
    in_place: &[ConfigChange],
) -> String {
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
    match (d.config.is_empty(), in_place.is_empty()) {
        (true, true) => s.push_str("No config file changed.\n"),
        (true, false) if from == to => {
            let _ = writeln!(s, "{to} as deployed is the last good state: only the edits below differ from it.");
        }
        (true, false) => {
            let _ = writeln!(s, "No config file differs between {from} and {to}.");
        }
        _ => {}
    }
    config_md(&mut s, &d.config);
    if !in_place.is_empty() {
        let _ = writeln!(s, "\n{label}\n");
        config_md(&mut s, in_place);
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

/// Config file changes, key by key.
fn config_md(s: &mut String, changes: &[ConfigChange]) {
    for c in changes {
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
}

impl ReleaseSummary {
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

/// Milliseconds as seconds with three decimals: `1.250s`.
fn seconds(ms: i64) -> String {
    format!("{}.{:03}s", ms / 1000, ms.rem_euclid(1000))
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
    fn markdown_helpers_escape() {
        assert_eq!(cell("a|b\nc"), "a\\|b<br>c");
        assert_eq!(code("x"), "`x`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`a"), "`` `a ``");
        assert_eq!(seconds(1250), "1.250s");
        assert_eq!(seconds(7), "0.007s");
    }
}
