//! `/env/ENV`: one environment's timeline, newest first: each release's version,
//! commit, GitOps deploy commit, features, state (current and last good marked), schema, who, when and why;
//! then its operations. A page at a time (`?before=ID`, `?ops_before=ID`), so the
//! page costs the same with 100,000 releases as with 10.

use lastgood_core::engine::Engine;
use lastgood_core::engine::inspect::Status;
use lastgood_core::engine::preview::PlanView;
use lastgood_core::engine::rollback::RollbackOptions;
use lastgood_core::ledger::{Operation, Release};
use lastgood_core::model::{ReleaseId, Scope, Target};
use maud::{Markup, html};

use super::release::rollback_form;
use super::{duration, failed, linked_text, operation_kind, parse_id, release_line, short_commit, state_badge, when};
use crate::App;
use crate::http::{Request, Response};
use crate::routes::Caller;

pub const RELEASES_PER_PAGE: usize = 50;
const OPERATIONS_PER_PAGE: usize = 20;

struct Timeline {
    status: Status,
    releases: Vec<Release>,
    more_releases: bool,
    operations: Vec<Operation>,
    more_operations: bool,
    /// The plan back to the last good release, for the form.
    plan: Option<PlanView>,
    before: Option<u64>,
}

fn load(engine: &Engine, env: &str, before: Option<u64>, ops_before: Option<u64>) -> lastgood_core::Result<Timeline> {
    let status = engine.status(env)?;
    let name = &engine.config.environment(env)?.name;
    let mut releases = engine.ledger().releases_page(name, before.map(ReleaseId), RELEASES_PER_PAGE + 1)?;
    let more_releases = releases.len() > RELEASES_PER_PAGE;
    releases.truncate(RELEASES_PER_PAGE);
    let mut operations = engine.ledger().operations(Some(name), ops_before, OPERATIONS_PER_PAGE + 1)?;
    let more_operations = operations.len() > OPERATIONS_PER_PAGE;
    operations.truncate(OPERATIONS_PER_PAGE);
    let plan = match &status.last_good {
        Some(_) => {
            let opts = RollbackOptions {
                target: Target::LastGood,
                scope: Scope::Full,
                reason: None,
                allow_data_loss: false,
                allow_major: false,
            };
            Some(engine.plan_rollback(env, &opts)?)
        }
        None => None,
    };
    Ok(Timeline { status, releases, more_releases, operations, more_operations, plan, before })
}

pub fn page(app: &App, who: &Caller, env: &str, request: &Request) -> Response {
    let before = request.param("before").and_then(|b| parse_id(&b));
    let ops_before = request.param("ops_before").and_then(|b| parse_id(&b));
    match app.engine().and_then(|e| load(&e, env, before, ops_before)) {
        Ok(t) => super::page(app, who, 200, env, body(app, who, &t)),
        Err(e) => failed(app, who, &e),
    }
}

fn body(app: &App, who: &Caller, t: &Timeline) -> Markup {
    let s = &t.status;
    let env = s.environment.as_str();
    let current = s.current.as_ref().map(|c| c.id);
    let last_good = s.last_good.as_ref().map(|g| g.id);
    html! {
        h1 { "Environment " code { (env) } }
        @if let Some(i) = &s.interrupted {
            div.alert { strong { "Interrupted: " } (i.kind.as_str()) " " a href={ "/operation/" (i.operation) } { "#" (i.operation) }
                @if let Some(step) = &i.step { " at step " code { (step) } } }
        }
        p {
            "Runtime " strong { (s.runtime) } ". Current: "
            @match &s.current { Some(c) => { (release_line(c)) " " (state_badge(c.state.as_str())) }, None => "nothing deployed" }
            ". Last good: "
            @match &s.last_good { Some(g) => (release_line(g)), None => "none" }
            ". Rollback: "
            @match s.rollback_ready {
                Some(true) => span.ready { "ready" },
                Some(false) => span.not-ready { "NOT READY: " (s.rollback_not_ready.clone().unwrap_or_default()) },
                None => span.muted { "no last good release" },
            }
            ". Lock: "
            @match &s.lock { Some(l) => { strong { (l.holder) } @if let Some(r) = &l.reason { " (" (r) ")" } }, None => "free" }
            "."
        }
        @if let Some(b) = &s.bake {
            div.alert {
                strong { "Baking: " } "a window of " (b.window_ms / 1000) "s, started " (when(b.started_at))
                @if let Some(e) = &b.ended { " (" (e) ")" }
                ul { @for m in b.signals.values() { li { code { (m.signal) } " " (m.verdict.as_str()) ": " (m.detail) " (threshold " (m.threshold) ")" @if m.pre_existing { " pre-existing" } } } }
                "End it early with " code { "lastgood promote " (s.environment) " --reason TEXT" } ", or stop it with " code { "lastgood rollback " (s.environment) } "."
            }
        }
        @if s.schema_ahead > 0 {
            div.alert { "The database schema is " strong { (s.schema_ahead) " migration(s) ahead" } " of the current release's code." }
        }
        @if let (Some(plan), Some(g)) = (&t.plan, &s.last_good) {
            details {
                summary { "Roll back to the last good release #" (g.id.0) " " (g.version) }
                (rollback_form(app, who, env, plan, g.id.0, ""))
                p { a href={ "/env/" (env) "/release/" (g.id.0) } { "See the whole plan, its SQL and the diff" } }
            }
        }
        h2 { "Releases" }
        (paging(env, t.before, t.releases.last().map(|r| r.id.0).filter(|_| t.more_releases), "before"))
        table {
            thead { tr { th { "#" } th { "Version" } th { "Commit" } th { "Deployed" } th { "Features" } th { "State" } th { "Schema" } th { "Who" } th { "When" } th { "Why" } } }
            tbody {
                @for r in &t.releases {
                    @let is_current = current == Some(r.id);
                    @let is_good = last_good == Some(r.id);
                    tr class=[is_current.then_some("current").or(is_good.then_some("last-good"))] {
                        td { a href={ "/env/" (env) "/release/" (r.id.0) } { "#" (r.id.0) } }
                        td { strong { (r.version) } }
                        td { @if let Some(c) = &r.commit { code { (short_commit(c.as_str())) } } }
                        td { @if let Some(c) = &r.deploy_commit { code title="the GitOps deploy commit" { (short_commit(c.as_str())) } } }
                        td { @for f in r.features.iter().take(4) { (linked_text(f)) br; } @if r.features.len() > 4 { span.muted { "+" (r.features.len() - 4) " more" } } }
                        td {
                            (state_badge(r.state.as_str()))
                            @if is_current { " " span.badge.mark { "current" } }
                            @if is_good { " " span.badge.mark { "last good" } }
                        }
                        td {
                            @if let Some(rev) = &r.schema_revision { code { (rev) } }
                            @if is_current && s.schema_ahead > 0 { br; span.not-ready { "schema ahead" } }
                        }
                        td { (r.created_by) }
                        td { (when(r.created_at)) }
                        td { (r.reason.clone().unwrap_or_default()) }
                    }
                }
            }
        }
        (paging(env, t.before, t.releases.last().map(|r| r.id.0).filter(|_| t.more_releases), "before"))
        h2 { "Operations" }
        table {
            thead { tr { th { "#" } th { "Kind" } th { "From → to" } th { "Outcome" } th { "Who" } th { "Why" } th { "Started" } th { "Took" } } }
            tbody {
                @for op in &t.operations {
                    tr {
                        td { a href={ "/operation/" (op.id) } { "#" (op.id) } }
                        td { (operation_kind(op)) }
                        td { @if let Some(f) = op.from { "#" (f.0) " → " } "#" (op.to.0) }
                        td { (state_badge(op.outcome.as_str())) }
                        td { (op.actor) }
                        td { (op.reason.clone().unwrap_or_default()) }
                        td { (when(op.started_at)) }
                        td { (duration(op)) }
                    }
                }
            }
        }
        @if t.more_operations {
            @if let Some(last) = t.operations.last() {
                p.paging { a href={ "/env/" (env) "?ops_before=" (last.id) } { "Older operations →" } }
            }
        }
    }
}

fn paging(env: &str, before: Option<u64>, older: Option<u64>, param: &str) -> Markup {
    html! {
        p.paging {
            @if before.is_some() { a href={ "/env/" (env) } { "← Newest" } }
            @if let Some(o) = older { a href={ "/env/" (env) "?" (param) "=" (o) } { "Older releases →" } }
        }
    }
}
