//! The dashboard's one write: a rollback, from the page's form or the API.
//!
//! Both make the same library call as `lastgood rollback` (`Engine::rollback`, under
//! the environment's lock, the actor `web:<user>`), on a thread of its own: the request
//! waits only until the operation is recorded (the journal's `operation_started`), then
//! answers with where to follow it. Whatever the library refuses (the lock, a consent,
//! an interrupted operation) comes back as the status SPEC.md gives it, with the
//! library's own words: the lock's holder and reason, the refusal and its consent.

use std::sync::mpsc;
use std::time::Duration;

use lastgood_core::Error;
use lastgood_core::context::Context;
use lastgood_core::engine::Engine;
use lastgood_core::engine::rollback::RollbackOptions;
use lastgood_core::journal::Progress;
use lastgood_core::model::Scope;
use maud::html;

use crate::App;
use crate::guard;
use crate::http::{Request, Response};
use crate::pages::{self, release::plan_markup, release::rollback_form};
use crate::routes::{Caller, status_of};

/// A rollback as asked for, by the form or the API.
pub struct Ask {
    pub env: String,
    pub to: String,
    pub reason: String,
    pub allow_data_loss: bool,
    pub allow_major: bool,
    pub yes: bool,
}

pub enum Started {
    Operation(u64),
    /// The target was already in place.
    NothingToDo,
}

/// Why a rollback did not start: the status and what to tell the user.
pub struct Rejected {
    pub status: u16,
    pub message: String,
}

fn rejected(status: u16, message: impl Into<String>) -> Rejected {
    Rejected { status, message: message.into() }
}

fn from_error(e: &Error) -> Rejected {
    let mut message = e.to_string();
    match e {
        Error::Locked { reason: Some(r), .. } => message.push_str(&format!(" (reason: {r})")),
        Error::UnknownTarget { candidates, .. } => {
            for c in candidates {
                message.push_str(&format!("\n  candidate: {c}"));
            }
        }
        _ => {}
    }
    rejected(status_of(e), message)
}

/// What the journal says, sent to the request that waits.
enum News {
    Started(u64),
    Done(Result<Option<u64>, Rejected>),
}

struct Tell(mpsc::Sender<News>);

impl Progress for Tell {
    fn operation_started(&mut self, operation: u64) {
        let _ = self.0.send(News::Started(operation));
    }
}

/// How long a request waits for the operation to be recorded (a fleet's preflight
/// asks every host first).
const START_WAIT: Duration = Duration::from_secs(120);

/// Checks what the page can check (the reason, the consents the plan needs), then
/// starts the rollback and returns once it is recorded.
pub fn start(app: &App, user: &str, ask: &Ask) -> Result<Started, Rejected> {
    let engine = app.engine_for(user).map_err(|e| from_error(&e))?;
    let env = engine.config.environment(&ask.env).map_err(|e| from_error(&e))?;
    let target = env.parse_target(&ask.to).map_err(|e| from_error(&e))?;
    let reason = ask.reason.trim();
    if reason.is_empty() {
        return Err(rejected(422, "a rollback needs a reason: it goes into the audit log and the incident record"));
    }
    if reason.len() > 500 {
        return Err(rejected(422, "the reason is longer than 500 characters"));
    }
    let opts = RollbackOptions {
        target,
        scope: Scope::Full,
        reason: Some(reason.to_owned()),
        allow_data_loss: ask.allow_data_loss,
        allow_major: ask.allow_major,
    };
    let plan = engine.plan_rollback(&ask.env, &opts).map_err(|e| from_error(&e))?;
    for r in &plan.refusals {
        let consented = match r.consent() {
            Some("--yes") => ask.yes,
            Some("--allow-data-loss") => ask.allow_data_loss,
            Some("--allow-major") => ask.allow_major,
            _ => false,
        };
        if !consented {
            let needs = r.consent().map(|c| format!(" (consent it needs: {c})")).unwrap_or_default();
            return Err(rejected(422, format!("refused: {r}{needs}")));
        }
    }
    drop(engine);
    let (tx, rx) = mpsc::channel();
    let (config, mut ctx, env_name, confirmed): (_, Context, _, _) =
        (app.config.clone(), app.ctx.clone(), ask.env.clone(), ask.yes);
    ctx.user = format!("web:{user}");
    std::thread::Builder::new()
        .name("lastgood-rollback".into())
        .spawn(move || {
            let mut tell = Tell(tx.clone());
            let done = Engine::open(config, ctx)
                .and_then(|e| e.rollback(&env_name, &opts, confirmed, &mut tell))
                .map(|r| r.map(|report| report.operation))
                .map_err(|e| from_error(&e));
            let _ = tx.send(News::Done(done));
        })
        .map_err(|e| rejected(500, format!("starting the rollback: {e}")))?;
    match rx.recv_timeout(START_WAIT) {
        Ok(News::Started(op)) | Ok(News::Done(Ok(Some(op)))) => Ok(Started::Operation(op)),
        Ok(News::Done(Ok(None))) => Ok(Started::NothingToDo),
        Ok(News::Done(Err(r))) => Err(r),
        Err(_) => Err(rejected(504, "the rollback did not start in time; see the environment's page")),
    }
}

/// `POST /env/ENV/rollback` from the page's form.
pub fn form(app: &App, who: &Caller, env: &str, request: &Request) -> Response {
    let Caller::Browser(session) = who else {
        return pages::error(403, "Forbidden", "The form is for a browser session; programs use the API.");
    };
    if !app.writes {
        return pages::error(403, "Read-only", "This dashboard is read-only: start it with --allow-writes.");
    }
    let form: Vec<(String, String)> =
        form_urlencoded::parse(&request.body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if let Some(why) = guard::post_refused(request, session, field("csrf")) {
        return pages::error(403, "Forbidden", why);
    }
    let is_form = request
        .header("content-type")
        .is_some_and(|c| c.split(';').next().is_some_and(|t| t.trim() == "application/x-www-form-urlencoded"));
    if !is_form {
        return pages::error(415, "Unsupported", "The form is sent as application/x-www-form-urlencoded.");
    }
    let checked = |name: &str| field(name).is_some_and(|v| !v.is_empty());
    let ask = Ask {
        env: env.to_owned(),
        to: field("to").unwrap_or("").to_owned(),
        reason: field("reason").unwrap_or("").to_owned(),
        allow_data_loss: checked("allow_data_loss"),
        allow_major: checked("allow_major"),
        yes: checked("yes"),
    };
    if ask.to.is_empty() {
        return again(app, who, &ask, 422, "the form names no release (`to`)");
    }
    if field("confirm_env") != Some(env) {
        return again(app, who, &ask, 422, &format!("type the environment's name, `{env}`, to confirm"));
    }
    match start(app, &session.user, &ask) {
        Ok(Started::Operation(op)) => {
            Response::new(303, "text/plain; charset=utf-8", format!("started: /operation/{op}\n"))
                .header("location", format!("/operation/{op}"))
        }
        Ok(Started::NothingToDo) => pages::page(
            app,
            who,
            200,
            "Nothing to do",
            html! { h1 { "Nothing to do" } p { "The release is already in place." } p { a href={ "/env/" (env) } { "Back to " (env) } } },
        ),
        Err(r) => again(app, who, &ask, r.status, &r.message),
    }
}

/// The form again, with what was wrong, under the status that says so.
fn again(app: &App, who: &Caller, ask: &Ask, status: u16, message: &str) -> Response {
    let title = match status {
        409 => "Locked",
        403 => "Forbidden",
        _ => "Not rolled back",
    };
    let plan = app.engine().and_then(|e| {
        let target = e.config.environment(&ask.env)?.parse_target(&ask.to)?;
        let opts =
            RollbackOptions { target, scope: Scope::Full, reason: None, allow_data_loss: false, allow_major: false };
        e.plan_rollback(&ask.env, &opts)
    });
    let body = html! {
        p { a href={ "/env/" (ask.env) } { "← " (ask.env) } }
        h1 { (title) }
        div.alert.rejected { (message) }
        @if let Ok(plan) = &plan {
            @if status != 409 {
                (rollback_form(app, who, &ask.env, plan, plan.to.id.0, &ask.reason))
                h2 { "The plan" }
                (plan_markup(plan))
            }
        }
    };
    pages::page(app, who, status, title, body)
}
