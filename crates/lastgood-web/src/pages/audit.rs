//! `/audit`: the audit trail, newest first, a page at a time, with what
//! `lastgood audit verify` says of its hash chain.

use lastgood_core::engine::Engine;
use lastgood_core::ledger::{AuditCheck, AuditRow};
use maud::{Markup, html};

use super::{failed, parse_id, when};
use crate::App;
use crate::http::{Request, Response};
use crate::routes::Caller;

const PER_PAGE: usize = 100;

pub fn page(app: &App, who: &Caller, request: &Request) -> Response {
    let before = request.param("before").and_then(|b| parse_id(&b)).map(|b| b.min(i64::MAX as u64) as i64);
    let load = |e: Engine| -> lastgood_core::Result<(AuditCheck, Vec<AuditRow>)> {
        Ok((e.ledger().verify_audit()?, e.ledger().audit_page(before, PER_PAGE + 1)?))
    };
    match app.engine().and_then(load) {
        Ok((check, rows)) => super::page(app, who, 200, "Audit", body(&check, rows, before.is_some())),
        Err(e) => failed(app, who, &e),
    }
}

fn body(check: &AuditCheck, mut rows: Vec<AuditRow>, paged: bool) -> Markup {
    let more = rows.len() > PER_PAGE;
    rows.truncate(PER_PAGE);
    html! {
        h1 { "Audit trail" }
        @match check {
            AuditCheck::Intact { events } => div.note.chain-ok { "Hash chain verified: " (events) " events, intact." },
            AuditCheck::Broken { id, event } => div.alert.chain-broken {
                strong { "Hash chain BROKEN" } " at event " (id) " (" (event) "): the trail was changed outside lastgood."
            },
        }
        table {
            thead { tr { th { "#" } th { "When" } th { "Who" } th { "Environment" } th { "Operation" } th { "Event" } th { "Detail" } } }
            tbody {
                @for r in &rows {
                    tr {
                        td { (r.id) }
                        td { (when(r.event.at)) }
                        td { (r.event.actor) }
                        td { @if let Some(e) = &r.event.env { a href={ "/env/" (e) } { (e) } } }
                        td { @if let Some(o) = r.event.operation { a href={ "/operation/" (o) } { "#" (o) } } }
                        td { code { (r.event.event) } }
                        td { code { (r.event.detail.to_string()) } }
                    }
                }
            }
        }
        p.paging {
            @if paged { a href="/audit" { "← Newest" } }
            @if more { @if let Some(last) = rows.last() { a href={ "/audit?before=" (last.id) } { "Older events →" } } }
        }
    }
}
