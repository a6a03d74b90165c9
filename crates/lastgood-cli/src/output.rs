//! Everything lastgood prints. Data (tables, plans, reports, `--format json`) goes to
//! stdout; progress, notes and errors go to stderr. `-q` silences stderr except for
//! errors; `--no-progress` silences step progress only. A closed pipe ends the
//! program quietly rather than panicking.

use std::io::{IsTerminal, Write};

use lastgood_core::context::rfc3339;
use lastgood_core::engine::inspect::{History, Status};
use lastgood_core::engine::preview::PlanView;
use lastgood_core::engine::run::Report;
use lastgood_core::journal::Progress;
use lastgood_core::ledger::{Release, StepRecord, StepState};
use lastgood_core::verify::CheckOutcome;
use serde::Serialize;

use crate::args::Global;

pub fn ignore_sigpipe() {
    // SAFETY: restoring the default disposition of SIGPIPE so that writing to a closed
    // pipe ends the process like any other Unix tool, instead of a panic in println!.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The notes the library kept where no progress reached (`lastgood_core::notice`: a
/// password file ignored, say), once each, on stderr; `-q` silences them too.
pub fn library_notes(g: &Global) {
    for n in lastgood_core::notice::take() {
        if !g.quiet {
            eprintln!("note: {n}");
        }
    }
}

pub fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// One JSON document on stdout: the `Serialize` of a view (`lastgood_core::view`).
/// It goes through `serde_json::Value`, whose maps sort their keys, so a document's key
/// order never depends on a struct's field order.
pub fn json<V: Serialize + ?Sized>(view: &V) {
    // Invariant: views are plain data with string keys, which always serialize.
    let value = serde_json::to_value(view).expect("a view serializes");
    out(&format!("{}\n", serde_json::to_string_pretty(&value).unwrap_or_default()));
}

/// Progress on stderr, one line a step.
pub struct StderrProgress {
    pub quiet: bool,
    pub steps: bool,
    /// A line that opens the progress ("deploying v2 to `production`"), printed with the
    /// first thing the operation reports: an error found before it starts (an unknown
    /// environment, a bad version, a lock) is then the only thing said.
    header: Option<String>,
}

impl StderrProgress {
    pub fn new(g: &Global) -> Self {
        Self { quiet: g.quiet, steps: !g.quiet && !g.no_progress, header: None }
    }

    pub fn with_header(g: &Global, header: String) -> Self {
        Self { header: Some(header), ..Self::new(g) }
    }

    fn begin(&mut self) {
        if let Some(h) = self.header.take() {
            if !self.quiet {
                eprintln!("{h}");
            }
        }
    }
}

impl Progress for StderrProgress {
    fn step_started(&mut self, s: &StepRecord) {
        self.begin();
        if self.steps && std::io::stderr().is_terminal() {
            eprintln!("  {:>2}. {:<12} {} ...", s.seq, s.step.name(), s.step);
        }
    }
    fn step_finished(&mut self, s: &StepRecord) {
        self.begin();
        if self.steps {
            let mark = if s.state == StepState::Done { "ok" } else { "FAILED" };
            eprintln!(
                "  {:>2}. {:<12} {:<6} {:>6}ms  {}",
                s.seq,
                s.step.name(),
                mark,
                s.duration_ms.unwrap_or(0),
                s.detail.as_deref().unwrap_or("")
            );
        }
    }
    fn note(&mut self, text: &str) {
        self.begin();
        if !self.quiet {
            eprintln!("note: {text}");
        }
    }
}

pub fn release_line(r: &Release) -> String {
    let commit = r.commit.as_ref().map(|c| c.short()).unwrap_or("-");
    format!("{} {} ({}, {})", r.id, r.version, commit, r.state)
}

pub fn plan_text(p: &PlanView) -> String {
    use lastgood_core::model::OperationKind;
    let mut s = match p.kind {
        OperationKind::Restore => {
            format!("Plan: restore the database of `{}`, under {}\n", p.environment, release_line(&p.to))
        }
        OperationKind::Restart => format!("Plan: restart `{}` on {}\n", p.environment, release_line(&p.to)),
        kind => format!(
            "Plan: {} `{}` from {} to {}{}\n",
            kind.as_str(),
            p.environment,
            p.from.as_ref().map(release_line).unwrap_or_else(|| "nothing".into()),
            release_line(&p.to),
            if kind == OperationKind::Rollback { format!(", scope {}", p.scope) } else { String::new() },
        ),
    };
    for (i, step) in p.steps.iter().enumerate() {
        let on = match step.host.as_str() {
            "local" => String::new(),
            h => format!("  [on {}]", h.replace(',', ", ")),
        };
        s.push_str(&format!("  {:>2}. {:<12} {}{on}\n", i + 1, step.step.name(), step.description));
    }
    if p.steps.is_empty() {
        s.push_str("  (no steps)\n");
    }
    for v in &p.migrations {
        s.push_str(
            &format!("  migration: {:?} {} ({})\n", v.direction, v.name, lint_class(v.lint.class)).to_lowercase(),
        );
        for d in &v.lint.data_changes {
            s.push_str(&format!("    changes data (line {}): {} ({})\n", d.line, d.statement, d.reason));
        }
    }
    for n in &p.notes {
        s.push_str(&format!("  note: {n}\n"));
    }
    for c in &p.confirm {
        s.push_str(&format!("  confirm: {c}\n"));
    }
    for r in &p.refusals {
        if let lastgood_core::refusal::Refusal::Unconfirmed { .. } = r {
            continue; // listed under confirm
        }
        match r.consent() {
            Some(flag) => s.push_str(&format!("  refused without {flag}: {r}\n")),
            None => s.push_str(&format!("  REFUSED: {r}\n")),
        }
    }
    s
}

pub fn report_text(r: &Report) -> String {
    let outcome = match r.outcome {
        lastgood_core::model::Outcome::Succeeded => "succeeded".to_owned(),
        lastgood_core::model::Outcome::RolledBack => "FAILED and was rolled back".to_owned(),
        lastgood_core::model::Outcome::Failed => "FAILED".to_owned(),
        lastgood_core::model::Outcome::Aborted => "was aborted".to_owned(),
        lastgood_core::model::Outcome::Running => "is still running".to_owned(),
    };
    let mut s =
        format!("{} {} of `{}` to {} {outcome}.\n", r.kind.as_str(), r.operation, r.environment, release_line(&r.to));
    if let Some(e) = &r.error {
        s.push_str(&format!("  cause: {e}\n"));
    }
    match r.current {
        Some(c) => s.push_str(&format!("  current release: {c}\n")),
        None => s.push_str("  current release: none\n"),
    }
    s
}

pub fn checks_text(outcomes: &[CheckOutcome]) -> String {
    let mut s = String::new();
    for o in outcomes {
        s.push_str(&format!(
            "  {} {}  ({} attempt{}, {}ms) {}\n",
            if o.passed { "pass" } else { "FAIL" },
            o.check,
            o.attempts,
            if o.attempts == 1 { "" } else { "s" },
            o.duration_ms,
            o.detail
        ));
    }
    if outcomes.is_empty() {
        s.push_str("  no health checks are configured\n");
    }
    s
}

pub fn status_text(s: &Status) -> String {
    let mut t = format!("{}\n", s.environment);
    t.push_str(&format!(
        "  current:   {}\n",
        s.current.as_ref().map(release_line).unwrap_or_else(|| "nothing deployed".into())
    ));
    t.push_str(&format!("  last good: {}\n", s.last_good.as_ref().map(release_line).unwrap_or_else(|| "none".into())));
    match s.rollback_ready {
        Some(true) if s.release_dirs => {
            t.push_str("  rollback:  ready (the last good release's directory is in place)\n")
        }
        Some(true) => t.push_str("  rollback:  ready\n"),
        Some(false) => t.push_str(&format!(
            "  rollback:  NOT READY: {}\n",
            s.rollback_not_ready.as_deref().unwrap_or("the last good release cannot be returned to")
        )),
        None => {}
    }
    if let Some(b) = &s.bake {
        let elapsed = (now_secs() - b.started_at).max(0) as u64;
        t.push_str(&format!(
            "  baking:    {}s of {}s{}\n",
            elapsed.min(b.window_ms / 1000),
            b.window_ms / 1000,
            b.ended.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
        ));
        for m in b.signals.values() {
            t.push_str(&format!("    {}\n", m.line()));
        }
    }
    if s.schema_ahead > 0 {
        t.push_str(&format!(
            "  schema:    ahead of code by {} migration(s); `lastgood rollback {} --scope db --allow-data-loss` reverts them\n",
            s.schema_ahead, s.environment
        ));
    }
    if !s.release_dirs {
        let seen = s.runtime_version.as_deref().unwrap_or("unknown");
        t.push_str(&format!("  runtime:   {} (reports {seen})\n", s.runtime));
        if let (Some(c), Some(v)) = (&s.current, &s.runtime_version) {
            if &c.version != v {
                t.push_str(&format!(
                    "  WARNING:   the runtime reports {v}, the ledger says {} ({})\n",
                    c.version, c.id
                ));
            }
        }
    }
    if let (Some(c), Some(cfg)) = (&s.current, s.config_release) {
        if c.id != cfg {
            t.push_str(&format!("  config:    from {cfg}\n"));
        }
    }
    let fleet = !s.hosts.is_empty();
    match &s.app {
        Some(a) => t.push_str(&format!("  app:       pid {} running #{}\n", a.pid, a.release)),
        None if s.supervised && !fleet => t.push_str("  app:       not running under lastgood\n"),
        None => {}
    }
    if let Some(p) = &s.proxy {
        t.push_str(&proxy_line(&lastgood_core::view::ProxyView::from(p), &s.environment));
    }
    let expected = s.current.as_ref().map(|c| c.id.0);
    for h in &s.hosts {
        let show = |r: Option<u64>| r.map(|r| format!("#{r}")).unwrap_or_else(|| "nothing".into());
        let line = match &h.error {
            Some(e) => format!("UNREACHABLE: {e}"),
            // Images (compose, swarm): what the host's engine runs, by version.
            None if !s.release_dirs => {
                let want = s.current.as_ref().map(|c| c.version.as_str());
                format!(
                    "runs {}{}",
                    h.version.as_deref().unwrap_or("nothing lastgood recorded"),
                    if h.version.as_deref() != want { "  <- DIFFERS from the ledger" } else { "" }
                )
            }
            None => format!(
                "current {}, app {}{}",
                show(h.current),
                h.app.map(|r| format!("runs #{r}")).unwrap_or_else(|| "not running".into()),
                if h.current != expected { "  <- DIFFERS from the ledger" } else { "" }
            ),
        };
        t.push_str(&format!("  host:      {:<22} {line}\n", h.host));
        if let Some(p) = &h.proxy {
            t.push_str(&proxy_line(&lastgood_core::view::ProxyView::from(p), &s.environment));
        }
    }
    if s.release_dirs && !fleet && s.current_link != s.current.as_ref().map(|c| c.id) {
        t.push_str(&format!(
            "  WARNING:   `current` on disk points at {}, the ledger says {}\n",
            s.current_link.map(|c| c.to_string()).unwrap_or_else(|| "nothing".into()),
            s.current.as_ref().map(|c| c.id.to_string()).unwrap_or_else(|| "nothing".into())
        ));
    }
    match &s.lock {
        Some(l) => t.push_str(&format!(
            "  lock:      held by {}{}{}{}\n",
            l.holder,
            l.operation.map(|o| format!(", operation {o}")).unwrap_or_default(),
            l.reason.as_ref().map(|r| format!(", reason: {r}")).unwrap_or_default(),
            if s.lock_holder_gone { " (its process is gone)" } else { "" },
        )),
        None => t.push_str("  lock:      free\n"),
    }
    if let Some(i) = &s.interrupted {
        t.push_str(&format!(
            "  {}: {} operation {}{}\n",
            if i.holder_alive { "running" } else { "INTERRUPTED" },
            i.kind.as_str(),
            i.operation,
            i.step.as_ref().map(|s| format!(" at step `{s}`")).unwrap_or_default()
        ));
        if !i.holder_alive {
            t.push_str(&format!("             run `lastgood resume {}` (or `--abort`)\n", s.environment));
        }
    }
    t
}

/// The proxy's lines of `status`: where it listens, where new connections go, and
/// whether traffic is or was down.
fn proxy_line(p: &lastgood_core::view::ProxyView, env: &str) -> String {
    let target = match (p.release, p.port) {
        (Some(r), Some(port)) => format!("#{r} (port {port})"),
        _ => "nothing".into(),
    };
    let mut t = match p.pid {
        Some(pid) if p.running => format!("  proxy:     {} -> {target}, pid {pid}\n", p.listen),
        _ => format!(
            "  proxy:     NOT RUNNING: traffic to {} is down; `lastgood restart {env}` starts it again\n",
            p.listen
        ),
    };
    if let Some(o) = &p.last_outage {
        let at = rfc3339((o.found_at_ms / 1000) as i64);
        t.push_str(&format!("             found not running at {at} and started again: traffic was down until then\n"));
    }
    t
}

pub fn history_text(h: &History) -> String {
    // The GitOps commit that set each release, when any release has one: the hash a
    // GitOps runbook picks from.
    let deployed = h.releases.iter().any(|r| r.deploy_commit.is_some());
    let gitops = |c: &str| if deployed { format!("{c:<12} ") } else { String::new() };
    let mut t = format!(
        "{:<6} {:<16} {:<12} {}{:<7} {:<18} {:<20} {:<16} {}\n",
        "ID",
        "VERSION",
        "COMMIT",
        gitops("DEPLOYED"),
        "STATE",
        "SCHEMA",
        "WHEN",
        "WHO",
        "FEATURES"
    );
    for r in &h.releases {
        let features = if r.features.is_empty() { "-".to_owned() } else { r.features.join("; ") };
        let current = h.current == Some(r.id);
        t.push_str(&format!(
            "{:<6} {:<16} {:<12} {}{:<7} {:<18} {:<20} {:<16} {}\n",
            format!("{}{}", r.id, if current { "*" } else { "" }),
            r.version,
            r.commit.as_ref().map(|c| c.short()).unwrap_or("-"),
            gitops(r.deploy_commit.as_ref().map(|c| c.short()).unwrap_or("-")),
            r.state.as_str(),
            r.schema_revision.as_deref().unwrap_or("-"),
            rfc3339(r.created_at),
            r.created_by,
            features
        ));
    }
    if h.current.is_some() {
        t.push_str("* serves now\n");
    }
    if h.schema_ahead > 0 {
        t.push_str(&format!(
            "schema ahead of code by {} migration(s); `lastgood rollback {} --scope db --allow-data-loss` reverts them\n",
            h.schema_ahead, h.environment
        ));
    }
    t
}

pub fn lint_class(c: lastgood_core::database::lint::Class) -> &'static str {
    use lastgood_core::database::lint::Class;
    match c {
        Class::Safe => "safe",
        Class::Blocking => "blocking",
        Class::Destructive => "destructive",
    }
}

/// Unix seconds now (for how far a window has come).
fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
