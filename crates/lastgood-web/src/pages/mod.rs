//! Server-rendered pages. maud escapes every value it interpolates, so text from
//! the ledger (reasons, commit subjects, user names) is shown, never run; nothing
//! here builds HTML by hand. Links are this server's own paths; an outside link is
//! rendered only when it is http(s) ([`safe_link`]).
//!
//! One file a page: `home` (every environment), `timeline` (one environment's
//! releases and operations), `release` (a release, its diff and the plan back to it,
//! with the rollback form), `operation` (steps, live, then the report), `audit`.

pub mod audit;
pub mod home;
pub mod operation;
pub mod release;
pub mod timeline;

use lastgood_core::Error;
use lastgood_core::context::rfc3339;
use lastgood_core::ledger::{Operation, Release};
use maud::{DOCTYPE, Markup, html};

use crate::App;
use crate::http::Response;
use crate::routes::{Caller, status_of};

/// A whole page: the bar (environments, audit, who, the server's mode) and `body`.
pub fn layout(app: Option<(&App, &Caller)>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · lastgood" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header {
                    a href="/" { "lastgood" }
                    a href="/audit" { "Audit" }
                    @if let Some((app, who)) = app {
                        span.mode {
                            "signed in as " (match who { Caller::Browser(s) => s.user.clone(), Caller::Bearer => "token".into() })
                            " · " (if app.writes { "rollbacks enabled" } else { "read-only" })
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub fn html_response(status: u16, markup: Markup) -> Response {
    Response::new(status, "text/html; charset=utf-8", markup.into_string())
}

pub fn page(app: &App, who: &Caller, status: u16, title: &str, body: Markup) -> Response {
    html_response(status, layout(Some((app, who)), title, body))
}

/// A page that says what went wrong, with its status.
pub fn error(status: u16, title: &str, text: &str) -> Response {
    html_response(status, layout(None, title, html! { h1 { (title) } p { (text) } }))
}

/// A library error as a page.
pub fn failed(app: &App, who: &Caller, e: &Error) -> Response {
    let status = status_of(e);
    page(app, who, status, "Error", html! { h1 { "Error" } div.alert { pre { (e.to_string()) } } })
}

/// After login: a page that moves on to `/` by itself (and a link, for when it does not).
pub fn logged_in(user: &str) -> Response {
    html_response(
        200,
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta http-equiv="refresh" content="0; url=/";
                    title { "Signed in · lastgood" }
                    link rel="stylesheet" href="/static/style.css";
                }
                body { main { p { "Signed in as " strong { (user) } ". " a href="/" { "Continue to the dashboard" } } } }
            }
        },
    )
}

/// A release's state as a badge.
pub fn state_badge(state: &str) -> Markup {
    html! { span class={ "badge " (state) } { (state) } }
}

/// `#3 v3`, with the first 12 hex digits of its commit.
pub fn release_line(r: &Release) -> Markup {
    html! {
        "#" (r.id.0) " " strong { (r.version) }
        @if let Some(c) = &r.commit { " " code { (short_commit(c.as_str())) } }
    }
}

pub fn short_commit(c: &str) -> &str {
    c.get(..12).unwrap_or(c)
}

pub fn when(unix: i64) -> String {
    rfc3339(unix)
}

/// How long an operation took, or `running`.
pub fn duration(op: &Operation) -> String {
    match op.finished_at {
        Some(f) => {
            let s = (f - op.started_at).max(0);
            if s >= 60 { format!("{}m {}s", s / 60, s % 60) } else { format!("{s}s") }
        }
        None => "running".into(),
    }
}

/// What an operation was, in words: an automatic rollback stands out from a deploy.
pub fn operation_kind(op: &Operation) -> String {
    match (op.kind.as_str(), op.outcome.as_str()) {
        ("deploy", "rolled_back") => "deploy, rolled back automatically".into(),
        (kind, _) => kind.into(),
    }
}

/// Text (a commit subject, a reason) with its http(s) URLs as links; any other
/// scheme (`javascript:`, `data:`) stays text.
pub fn linked_text(text: &str) -> Markup {
    html! {
        @for (i, word) in text.split(' ').enumerate() {
            @if i > 0 { " " }
            (safe_link(word))
        }
    }
}

/// A link only when it is http(s); anything else (`javascript:`, `data:`) is text.
fn safe_link(url: &str) -> Markup {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        html! { a href=(url) rel="noopener noreferrer" { (url) } }
    } else {
        html! { (url) }
    }
}

/// A path segment that must be a number (a release or operation id).
pub fn parse_id(s: &str) -> Option<u64> {
    s.trim_start_matches('#').parse().ok()
}
