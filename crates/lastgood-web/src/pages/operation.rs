//! `/operation/ID`: the steps with host, state and duration, updating live while the
//! operation runs (`/static/live.js` follows its server-sent events), then the incident
//! report. Without JavaScript the page shows the state as of its loading.

use lastgood_core::engine::Engine;
use lastgood_core::ledger::{Operation, StepRecord};
use lastgood_core::report::IncidentReport;
use lastgood_core::view;
use maud::{Markup, html};

use super::{duration, failed, operation_kind, parse_id, when};
use crate::App;
use crate::http::Response;
use crate::routes::Caller;

struct Loaded {
    op: Operation,
    /// Recorded as running, but its holder is gone: nothing runs it.
    interrupted: bool,
    steps: Vec<StepRecord>,
    report: Option<String>,
}

fn load(app: &App, engine: &Engine, id: u64) -> lastgood_core::Result<Loaded> {
    let op = engine.ledger().operation(id)?.ok_or(lastgood_core::Error::OperationMissing { operation: id })?;
    let steps = engine.ledger().steps(id)?;
    let report = match op.outcome.as_str() {
        "running" => None,
        _ => Some(IncidentReport::build(engine.ledger(), &app.config, id)?.markdown()),
    };
    let interrupted = report.is_none()
        && engine.status(op.env.as_str())?.interrupted.is_some_and(|i| i.operation == op.id && !i.holder_alive);
    Ok(Loaded { op, interrupted, steps, report })
}

pub fn page(app: &App, who: &Caller, id: &str) -> Response {
    let Some(id) = parse_id(id) else {
        return super::error(404, "Not found", "An operation id is a number.");
    };
    match app.engine().and_then(|e| load(app, &e, id)) {
        Ok(l) => super::page(app, who, 200, &format!("operation #{id}"), body(&l)),
        Err(e) => failed(app, who, &e),
    }
}

fn body(l: &Loaded) -> Markup {
    let op = &l.op;
    let outcome = op.outcome.as_str();
    html! {
        p { a href={ "/env/" (op.env.as_str()) } { "← " (op.env.as_str()) } }
        div #operation data-operation=(op.id) data-outcome=(outcome) {
            h1 { "Operation #" (op.id) ": " (operation_kind(op)) " of " code { (op.env.as_str()) } " "
                span #outcome class={ "badge " (outcome) } { (outcome) } }
            p {
                @if let Some(f) = op.from { "#" (f.0) " → " } "#" (op.to.0)
                " · scope " (op.scope.as_str()) " · by " strong { (op.actor) }
                " · started " (when(op.started_at)) " · " (duration(op))
            }
            @if let Some(r) = &op.reason { p { "Why: " (r) } }
            @if let Some(e) = &op.error { div.alert { (e) } }
            table {
                thead { tr { th { "#" } th { "Step" } th { "Host" } th { "State" } th { "Took" } th { "Detail" } } }
                tbody #steps-body {
                    @for (i, s) in l.steps.iter().enumerate() {
                        @let v = view::Step::from(s);
                        tr {
                            td { (i + 1) }
                            td { (v.name) }
                            td { (v.host) }
                            td { span class={ "badge " (v.state) } { (v.state) } }
                            td { @if let Some(ms) = v.duration_ms { (ms) " ms" } }
                            td { (v.detail.clone().unwrap_or_default()) }
                        }
                    }
                }
            }
            @match &l.report {
                Some(md) => { h2 { "Incident report" } pre.report { (md) } }
                None if l.interrupted => div.alert.interrupted {
                    "Interrupted: nothing runs this operation any more. Run " code { "lastgood resume " (op.env.as_str()) }
                    " to finish it, or add " code { "--abort" } " to return to where it started."
                },
                None => { p.muted.live { "Running: this page follows it live." } script src="/static/live.js" {} }
            }
        }
    }
}
