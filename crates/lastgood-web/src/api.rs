//! The JSON API under `/api/v1/`: the documents of the CLI's `--format json` (the
//! Serialize of `lastgood_core::view`'s types), and the rollback as a POST.
//!
//! Reads take the bearer token or a browser session (the operation page's
//! `EventSource` sends the cookie); the POST takes the bearer token only, so no page
//! of any site can make a browser send it.

use lastgood_core::engine::inspect::History;
use lastgood_core::model::ReleaseId;
use lastgood_core::report::IncidentReport;
use lastgood_core::view;
use serde::Deserialize;
use serde::Serialize;

use crate::App;
use crate::events;
use crate::http::{Request, Response};
use crate::pages::parse_id;
use crate::rollback::{self, Ask, Started};
use crate::routes::{Caller, status_of};

pub fn json(status: u16, value: &impl Serialize) -> Response {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => Response::new(status, "application/json", body),
        Err(e) => error(500, &format!("serializing: {e}")),
    }
}

pub fn error(status: u16, message: &str) -> Response {
    json_plain(status, &serde_json::json!({ "error": message }))
}

fn json_plain(status: u16, value: &serde_json::Value) -> Response {
    Response::new(status, "application/json", value.to_string())
}

fn failed(e: &lastgood_core::Error) -> Response {
    error(status_of(e), &e.to_string())
}

/// The most releases one request returns.
const MAX_LIMIT: usize = 500;

pub fn route(app: &App, request: &Request, who: &Caller, method: &str, rest: &[&str]) -> Response {
    match (method, rest) {
        ("GET", ["environments"]) => environments(app),
        ("GET", ["environments", env]) => environment(app, env),
        ("GET", ["environments", env, "releases"]) => releases(app, env, request),
        ("GET", ["operations", id]) => operation(app, id),
        ("GET", ["operations", id, "events"]) => match parse_id(id) {
            Some(id) => events::stream(app, id, request),
            None => error(404, "an operation id is a number"),
        },
        ("POST", ["environments", env, "rollback"]) => post_rollback(app, who, env, request),
        (_, ["environments"] | ["environments", _] | ["environments", _, "releases"])
        | (_, ["operations", _] | ["operations", _, "events"]) => {
            error(405, "method not allowed").header("allow", "GET")
        }
        (_, ["environments", _, "rollback"]) => error(405, "method not allowed").header("allow", "POST"),
        _ => error(404, "no such API path"),
    }
}

fn environments(app: &App) -> Response {
    let all = app.engine().and_then(|e| {
        e.config
            .environments
            .keys()
            .map(|n| e.status(n.as_str()).map(|s| view::Status::from(&s)))
            .collect::<Result<Vec<_>, _>>()
    });
    match all {
        Ok(list) => json(200, &list),
        Err(e) => failed(&e),
    }
}

fn environment(app: &App, env: &str) -> Response {
    match app.engine().and_then(|e| e.status(env)) {
        Ok(s) => json(200, &view::Status::from(&s)),
        Err(e) => failed(&e),
    }
}

/// `history --format json`, a page at a time: `?limit=N` (default 50, at most 500) and
/// `?before=ID` (releases older than ID).
fn releases(app: &App, env: &str, request: &Request) -> Response {
    let limit = match request.param("limit").map(|l| l.parse::<usize>()) {
        None => 50,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return error(400, "limit: a number from 1 to 500"),
    };
    let before = match request.param("before").map(|b| parse_id(&b)) {
        None => None,
        Some(Some(b)) => Some(ReleaseId(b)),
        Some(None) => return error(400, "before: a release id"),
    };
    let history = app.engine().and_then(|e| {
        let name = e.config.environment(env)?.name.clone();
        let state = e.ledger().env_state(&name)?;
        Ok(History {
            environment: name.to_string(),
            releases: e.ledger().releases_page(&name, before, limit)?,
            current: state.current,
            schema_ahead: state.schema_ahead,
        })
    });
    match history {
        Ok(h) => json(200, &view::HistoryEntry::list(&h)),
        Err(e) => failed(&e),
    }
}

fn operation(app: &App, id: &str) -> Response {
    let Some(id) = parse_id(id) else {
        return error(404, "an operation id is a number");
    };
    let report = app.engine().and_then(|e| match e.ledger().operation(id)? {
        Some(_) => IncidentReport::build(e.ledger(), &app.config, id).map(Some),
        None => Ok(None),
    });
    match report {
        Ok(Some(r)) => json(200, &r),
        Ok(None) => error(404, &format!("no operation {id}")),
        Err(e) => failed(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    #[serde(default)]
    to: Option<serde_json::Value>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    allow_data_loss: bool,
    #[serde(default)]
    allow_major: bool,
    #[serde(default)]
    yes: bool,
}

fn post_rollback(app: &App, who: &Caller, env: &str, request: &Request) -> Response {
    if !matches!(who, Caller::Bearer) {
        return error(403, "the API's POST takes Authorization: Bearer TOKEN; the page has its own form");
    }
    if !app.writes {
        return error(403, "this server is read-only: start it with --allow-writes");
    }
    let is_json = request
        .header("content-type")
        .is_some_and(|c| c.split(';').next().is_some_and(|t| t.trim() == "application/json"));
    if !is_json {
        return error(415, "send the body as application/json");
    }
    let body: RollbackBody = match serde_json::from_slice(&request.body) {
        Ok(b) => b,
        Err(e) => return error(400, &format!("body: {e}")),
    };
    let to = match body.to {
        None => "last-good".to_owned(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::String(s)) => s,
        Some(_) => return error(400, "to: a release id, a version, `previous` or `last-good`"),
    };
    let ask = Ask {
        env: env.to_owned(),
        to,
        reason: body.reason.unwrap_or_default(),
        allow_data_loss: body.allow_data_loss,
        allow_major: body.allow_major,
        yes: body.yes,
    };
    match rollback::start(app, &who.user(app), &ask) {
        Ok(Started::Operation(op)) => json_plain(202, &serde_json::json!({ "operation": op }))
            .header("location", format!("/api/v1/operations/{op}")),
        Ok(Started::NothingToDo) => {
            json_plain(200, &serde_json::json!({ "operation": null, "outcome": "nothing_to_do" }))
        }
        Err(r) => error(r.status, &r.message),
    }
}
