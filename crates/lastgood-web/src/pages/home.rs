//! `/`: every environment on one screen: what runs, the way back and whether it is
//! ready, who holds the lock and why, and the last operation. An interrupted
//! operation is the first thing on the page.

use lastgood_core::engine::Engine;
use lastgood_core::engine::inspect::Status;
use lastgood_core::ledger::Operation;
use maud::{Markup, html};

use super::{duration, failed, operation_kind, release_line, state_badge, when};
use crate::App;
use crate::http::Response;
use crate::routes::Caller;

/// One environment as the overview shows it.
struct Row {
    status: Status,
    last_op: Option<Operation>,
}

fn rows(engine: &Engine) -> lastgood_core::Result<Vec<Row>> {
    let mut out = Vec::new();
    for name in engine.config.environments.keys() {
        let status = engine.status(name.as_str())?;
        let last_op = engine.ledger().operations(Some(name), None, 1)?.into_iter().next();
        out.push(Row { status, last_op });
    }
    Ok(out)
}

fn page_body(rows: &[Row]) -> Markup {
    html! {
        h1 { "Environments" }
        @for r in rows {
            @if let Some(i) = &r.status.interrupted {
                div.alert {
                    strong { "Interrupted: " }
                    (i.kind.as_str()) " #" (i.operation) " on " code { (r.status.environment) }
                    @if let Some(s) = &i.step { " stopped at step " code { (s) } }
                    @if !i.holder_alive { ". Run " code { "lastgood resume " (r.status.environment) } " to finish it, or add " code { "--abort" } "." }
                    " " a href={ "/operation/" (i.operation) } { "Open the operation" }
                }
            }
        }
        table {
            thead { tr {
                th { "Environment" } th { "Runtime" } th { "Current" } th { "Last good" }
                th { "Rollback" } th { "Lock" } th { "Last operation" }
            } }
            tbody {
                @for r in rows {
                    @let s = &r.status;
                    tr {
                        td { a href={ "/env/" (s.environment) } { strong { (s.environment) } } }
                        td { (s.runtime) }
                        td {
                            @match &s.current {
                                Some(c) => { (release_line(c)) " " (state_badge(c.state.as_str())) }
                                None => span.muted { "nothing deployed" },
                            }
                            @if s.schema_ahead > 0 { br; span.not-ready { "schema ahead by " (s.schema_ahead) } }
                        }
                        td {
                            @match &s.last_good {
                                Some(g) => a href={ "/env/" (s.environment) "/release/" (g.id.0) } { (release_line(g)) },
                                None => span.muted { "none" },
                            }
                        }
                        td {
                            @match s.rollback_ready {
                                Some(true) => span.ready { "ready" },
                                Some(false) => { span.not-ready { "NOT READY" } br; span.muted { (s.rollback_not_ready.clone().unwrap_or_default()) } },
                                None => span.muted { "no last good release" },
                            }
                        }
                        td {
                            @match &s.lock {
                                Some(l) => { "held by " strong { (l.holder) } @if let Some(why) = &l.reason { br; span.muted { (why) } } }
                                None => span.muted { "free" },
                            }
                        }
                        td {
                            @match &r.last_op {
                                Some(op) => {
                                    a href={ "/operation/" (op.id) } { "#" (op.id) " " (operation_kind(op)) }
                                    " " (state_badge(op.outcome.as_str())) br;
                                    span.muted { (when(op.started_at)) " · " (duration(op)) " · " (op.actor) }
                                }
                                None => span.muted { "none" },
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn page(app: &App, who: &Caller) -> Response {
    match app.engine().and_then(|e| rows(&e)) {
        Ok(rows) => super::page(app, who, 200, "Environments", page_body(&rows)),
        Err(e) => failed(app, who, &e),
    }
}
