//! `/env/ENV/release/ID`: one release, what differs between it and what runs now,
//! and the rollback plan to it with its exact SQL and anything a real run would refuse,
//! before anyone clicks; then the form that runs it (with `--allow-writes`).

use lastgood_core::engine::Engine;
use lastgood_core::engine::diagnose::Comparison;
use lastgood_core::engine::preview::PlanView;
use lastgood_core::engine::rollback::RollbackOptions;
use lastgood_core::ledger::Release;
use lastgood_core::model::{ReleaseId, Scope, Target};
use lastgood_core::report::diff_markdown;
use maud::{Markup, html};

use super::{failed, linked_text, parse_id, state_badge, when};
use crate::App;
use crate::http::Response;
use crate::routes::Caller;

struct Details {
    release: Release,
    current: Option<ReleaseId>,
    diff: Option<Comparison>,
    plan: PlanView,
}

fn load(engine: &Engine, env: &str, id: u64) -> lastgood_core::Result<Details> {
    let e = engine.config.environment(env)?;
    let release = engine
        .ledger()
        .release(&e.name, ReleaseId(id))?
        .ok_or_else(|| lastgood_core::Error::ReleaseMissing { env: env.to_owned(), release: ReleaseId(id) })?;
    let current = engine.ledger().env_state(&e.name)?.current;
    let diff = match current {
        Some(c) if c != release.id => Some(engine.diff(env, &c.0.to_string(), &id.to_string())?),
        _ => None,
    };
    let opts = RollbackOptions {
        target: Target::Id(release.id),
        scope: Scope::Full,
        reason: None,
        allow_data_loss: false,
        allow_major: false,
    };
    let plan = engine.plan_rollback(env, &opts)?;
    Ok(Details { release, current, diff, plan })
}

pub fn page(app: &App, who: &Caller, env: &str, id: &str) -> Response {
    let Some(id) = parse_id(id) else {
        return super::error(404, "Not found", "A release id is a number.");
    };
    match app.engine().and_then(|e| load(&e, env, id)) {
        Ok(d) => super::page(app, who, 200, &format!("{env} #{id}"), body(app, who, env, &d)),
        Err(e) => failed(app, who, &e),
    }
}

fn body(app: &App, who: &Caller, env: &str, d: &Details) -> Markup {
    let r = &d.release;
    html! {
        p { a href={ "/env/" (env) } { "← " (env) } }
        h1 { "Release #" (r.id.0) " " (r.version) " " (state_badge(r.state.as_str()))
            @if d.current == Some(r.id) { " " span.badge.mark { "current" } } }
        table {
            tbody {
                tr { th { "Commit" } td { @if let Some(c) = &r.commit { code { (c.as_str()) } } } }
                tr { th { "Schema" } td { @if let Some(s) = &r.schema_revision { code { (s) } } @else { span.muted { "none" } } } }
                tr { th { "Deployed" } td { (when(r.created_at)) " by " (r.created_by) } }
                tr { th { "Why" } td { (r.reason.clone().unwrap_or_default()) } }
                tr { th { "Artifact" } td { @if r.artifact { "kept" } @else { span.not-ready { "removed by retention" } } } }
                tr { th { "Config files" } td { @for (name, _) in &r.config { code { (name) } " " } } }
                tr { th { "Features" } td { @for f in &r.features { (linked_text(f)) br; } } }
            }
        }
        @if let Some(c) = &d.diff {
            h2 { "What differs from the current release (#" (c.from.id) " → #" (c.to.id) ")" }
            pre.diff { (diff_markdown(&c.diff, Some(&c.from), &c.to)) }
        }
        h2 { "Rollback plan to #" (r.id.0) }
        (plan_markup(&d.plan))
        (rollback_form(app, who, env, &d.plan, r.id.0, ""))
    }
}

/// The plan as the CLI's `--dry-run --sql` shows it: steps, notes, what to confirm,
/// the migrations with their verdicts, the SQL, and the refusals.
pub fn plan_markup(plan: &PlanView) -> Markup {
    html! {
        @if plan.in_place {
            div.note { "#" (plan.to.id.0) " is already in place: a rollback to it has nothing to do." }
        } @else {
            table.plan {
                thead { tr { th { "Step" } th { "Host" } th { "What it does" } } }
                tbody { @for s in &plan.steps { tr { td { code { (s.step.name()) } } td { (s.host) } td { (s.description) } } } }
            }
        }
        @for n in &plan.notes { div.note { (n) } }
        @for c in &plan.confirm { div.alert { "Needs confirming: " (c) } }
        @if !plan.migrations.is_empty() {
            h2 { "Migrations" }
            table { tbody { @for m in &plan.migrations {
                tr { td { code { (m.name) } } td { (label(&m.direction)) } td { (label(&m.lint.class)) } }
            } } }
        }
        h2 { "SQL" }
        @match &plan.sql {
            Some(sql) => pre.sql { (sql) },
            None => p.muted { "The plan runs no SQL." },
        }
        @for r in &plan.refusals {
            div.alert.refusal {
                strong { "A real run would refuse: " } (r.to_string())
                @if let Some(c) = r.consent() { br; "Consent it needs: " code { (c) } }
            }
        }
    }
}

/// A serialized enum's name (`down`, `destructive`).
fn label(v: &impl serde::Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// The form of SPEC.md: `csrf`, `to`, `confirm_env`, `reason`, and a checkbox for each
/// consent the plan needs. Shown only to a browser session of a server that takes
/// writes; otherwise it says how to get one. `reason` fills the reason in again after
/// a refusal.
pub fn rollback_form(app: &App, who: &Caller, env: &str, plan: &PlanView, to: u64, reason: &str) -> Markup {
    let session = match who {
        Caller::Browser(s) => Some(s),
        Caller::Bearer => None,
    };
    let consents: Vec<&str> = plan.refusals.iter().filter_map(|r| r.consent()).collect();
    html! {
        @if !app.writes {
            p.muted.read-only { "This dashboard is read-only (start " code { "lastgood serve --allow-writes" } " to roll back from here). From a terminal: "
                code { "lastgood rollback " (env) " --to " (to) " --reason '...'" } }
        } @else if plan.in_place {
        } @else if let Some(s) = session {
            form.rollback method="post" action={ "/env/" (env) "/rollback" } {
                input type="hidden" name="csrf" value=(s.csrf);
                input type="hidden" name="to" value=(to);
                @if consents.contains(&"--allow-data-loss") {
                    label { input type="checkbox" name="allow_data_loss" value="1"; " I consent to data loss: revert the destructive migrations above (a backup is taken first)" }
                }
                @if consents.contains(&"--allow-major") {
                    label { input type="checkbox" name="allow_major" value="1"; " I consent to crossing a major version" }
                }
                @if consents.contains(&"--yes") {
                    label { input type="checkbox" name="yes" value="1"; " I confirm this target (" (plan.confirm.join("; ")) ")" }
                }
                label { "Reason (recorded in the audit log) " input type="text" name="reason" maxlength="500" value=(reason) required; }
                label { "Type " code { (env) } " to confirm " input type="text" name="confirm_env" autocomplete="off" required; }
                button type="submit" { "Roll back " (env) " to #" (to) }
            }
        } @else {
            p.muted { "Log in through the browser to roll back from this page; programs use " code { "POST /api/v1/environments/" (env) "/rollback" } "." }
        }
    }
}
