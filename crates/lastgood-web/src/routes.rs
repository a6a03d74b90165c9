//! Which request goes where, who may make it, and the headers every response carries.
//!
//! The order of checks is the security model, read top to bottom: the `Host` header
//! (421), the few routes that need no login (the login itself, the style sheet and
//! script, `/metrics` on loopback), then a session cookie or the bearer token for
//! everything else (401), and for a write the server's mode, the CSRF token and the
//! origin (403, in `rollback`).

use lastgood_core::Error;

use crate::guard::{self, Session};
use crate::http::{Request, Response};
use crate::{App, api, metrics, pages, rollback};

/// Every response: no framing, no sniffing, no caching of pages that show the state
/// of production, and no referrer to other sites (the login URL carries the token).
/// `same-origin` rather than `no-referrer`: under `no-referrer` Chromium sends
/// `Origin: null` with the page's own form posts, which the origin check refuses.
const CSP: &str = "default-src 'self'; frame-ancestors 'none'";

pub fn handle(app: &App, request: &Request) -> Response {
    let mut r = route(app, request);
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        r.headers.push((name, value.to_owned()));
    }
    r
}

/// Who is asking: a browser session (with its CSRF token), or a program with the token.
pub enum Caller {
    Browser(Session),
    Bearer,
}

impl Caller {
    /// The name recorded as `web:<user>`; a bearer caller is the user running `serve`.
    pub fn user(&self, app: &App) -> String {
        match self {
            Caller::Browser(s) => s.user.clone(),
            Caller::Bearer => app.ctx.user.clone(),
        }
    }
}

fn caller(app: &App, request: &Request) -> Option<Caller> {
    if guard::bearer_ok(request, &app.token) {
        return Some(Caller::Bearer);
    }
    app.sessions.of(request).map(Caller::Browser)
}

fn route(app: &App, request: &Request) -> Response {
    if !app.hosts.ok(request) {
        return Response::text(421, "this server does not answer to that Host (see --host)\n");
    }
    let method = request.method.as_str();
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", ["static", "style.css"]) => {
            return Response::new(200, "text/css; charset=utf-8", include_str!("../static/style.css"));
        }
        ("GET", ["static", "live.js"]) => {
            return Response::new(200, "text/javascript; charset=utf-8", include_str!("../static/live.js"));
        }
        ("GET", ["login"]) => return login(app, request),
        ("GET", ["metrics"]) => {
            if !app.loopback() && caller(app, request).is_none() {
                return unauthorized(request);
            }
            return metrics::metrics(app);
        }
        _ => {}
    }
    let Some(who) = caller(app, request) else {
        return unauthorized(request);
    };
    if let ["api", "v1", rest @ ..] = segments.as_slice() {
        return api::route(app, request, &who, method, rest);
    }
    match (method, segments.as_slice()) {
        ("GET", [""]) => pages::home::page(app, &who),
        ("GET", ["env", env]) => pages::timeline::page(app, &who, env, request),
        ("GET", ["env", env, "release", id]) => pages::release::page(app, &who, env, id),
        ("POST", ["env", env, "rollback"]) => rollback::form(app, &who, env, request),
        ("GET", ["operation", id]) => pages::operation::page(app, &who, id),
        ("GET", ["audit"]) => pages::audit::page(app, &who, request),
        (_, [""] | ["env", _] | ["env", _, "release", _] | ["operation", _] | ["audit"] | ["env", _, "rollback"]) => {
            pages::error(405, "Method not allowed", "This address does not take that method.").header("allow", "GET")
        }
        _ => pages::error(404, "Not found", "There is nothing at this address."),
    }
}

fn unauthorized(request: &Request) -> Response {
    if request.path.starts_with("/api/") || request.path == "/metrics" {
        return Response::new(401, "application/json", r#"{"error":"unauthorized: send Authorization: Bearer TOKEN"}"#)
            .header("www-authenticate", "Bearer");
    }
    pages::error(
        401,
        "Log in first",
        "Open the login URL that `lastgood serve` printed when it started (it carries the token).",
    )
    .header("www-authenticate", "Bearer")
}

/// `/login?token=TOKEN[&user=NAME]`: a session cookie, and a page that continues to
/// `/` by itself (a link opened from a chat is a cross-site navigation, and a Strict
/// cookie set there would not be sent on a redirect that follows at once).
fn login(app: &App, request: &Request) -> Response {
    let given = request.param("token").unwrap_or_default();
    if !guard::same_secret(&given, &app.token) {
        return pages::error(401, "Wrong token", "The login URL's token is not this server's.");
    }
    let user = match request.param("user") {
        Some(u) if !guard::valid_user(&u) => {
            return pages::error(422, "Bad user name", "user: letters, digits, `.`, `_`, `-` and `@`, at most 64.");
        }
        Some(u) => u,
        None => app.ctx.user.clone(),
    };
    match app.sessions.open(&user) {
        Ok(id) => pages::logged_in(&user).header("set-cookie", guard::session_cookie(&id)),
        Err(e) => pages::error(500, "No session", &format!("reading /dev/urandom: {e}")),
    }
}

/// The status a library error answers with.
pub fn status_of(e: &Error) -> u16 {
    match e {
        Error::UnknownEnvironment { .. }
        | Error::UnknownTarget { .. }
        | Error::ReleaseMissing { .. }
        | Error::OperationMissing { .. } => 404,
        Error::Locked { .. } | Error::Interrupted { .. } => 409,
        Error::Refused { .. } | Error::Usage { .. } | Error::Invalid(_) => 422,
        _ => 500,
    }
}
