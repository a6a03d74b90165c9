//! `/api/v1/operations/ID/events`: an operation as server-sent events.
//!
//! Two kinds of event: `audit`, each audit event of the operation, with `id:` its
//! place in the audit chain (so a reconnecting `EventSource` sends `Last-Event-ID` and
//! gets only what it missed); and `steps`, the operation's outcome and every step's
//! state, sent whenever they change. When the operation has ended the stream sends
//! `end` and closes: a finished operation replays its events and closes at once. An
//! interrupted operation (recorded as running, its lock gone) ends the stream too,
//! with `"interrupted": true`: `lastgood resume` is what finishes it.
//! The ledger is read four times a second; a stream lasts at most an hour.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use lastgood_core::engine::Engine;
use lastgood_core::view;

use crate::App;
use crate::api;
use crate::http::{Body, Request, Response};

const POLL: Duration = Duration::from_millis(250);
const MAX_STREAM: Duration = Duration::from_secs(3600);
const KEEPALIVE: Duration = Duration::from_secs(15);

pub fn stream(app: &App, id: u64, request: &Request) -> Response {
    match app.engine().and_then(|e| e.ledger().operation(id)) {
        Ok(Some(_)) => {}
        Ok(None) => return api::error(404, &format!("no operation {id}")),
        Err(e) => return api::error(500, &e.to_string()),
    }
    let resume_after: i64 = request.header("last-event-id").and_then(|v| v.parse().ok()).unwrap_or(0);
    let (config, ctx) = (app.config.clone(), app.ctx.clone());
    let write = move |w: &mut dyn Write| -> io::Result<()> {
        let engine = Engine::open(config, ctx).map_err(io::Error::other)?;
        follow(&engine, id, resume_after, w)
    };
    Response {
        status: 200,
        headers: vec![("content-type", "text/event-stream".into())],
        body: Body::Stream(Box::new(write)),
    }
}

fn follow(engine: &Engine, id: u64, mut seen: i64, w: &mut dyn Write) -> io::Result<()> {
    let started = Instant::now();
    let mut last_steps = String::new();
    let mut last_write = Instant::now();
    write!(w, "retry: 1000\n\n")?;
    loop {
        let ledger = engine.ledger();
        let op = ledger.operation(id).map_err(io::Error::other)?.ok_or_else(|| io::Error::other("operation gone"))?;
        for row in ledger.audit_events(id).map_err(io::Error::other)? {
            if row.id <= seen {
                continue;
            }
            seen = row.id;
            let data = serde_json::json!({
                "id": row.id, "at": row.event.at, "actor": row.event.actor,
                "event": row.event.event, "detail": row.event.detail,
            });
            write!(w, "id: {}\nevent: audit\ndata: {}\n\n", row.id, data)?;
            last_write = Instant::now();
        }
        let steps: Vec<view::Step> = ledger.steps(id).map_err(io::Error::other)?.iter().map(view::Step::from).collect();
        let outcome = op.outcome.as_str();
        let now = serde_json::json!({ "operation": id, "outcome": outcome, "steps": steps }).to_string();
        if now != last_steps {
            write!(w, "event: steps\ndata: {now}\n\n")?;
            last_steps = now;
            last_write = Instant::now();
        }
        if outcome != "running" {
            write!(w, "event: end\ndata: {}\n\n", serde_json::json!({ "operation": id, "outcome": outcome }))?;
            return w.flush();
        }
        if interrupted(engine, &op)? {
            let end = serde_json::json!({ "operation": id, "outcome": "running", "interrupted": true });
            write!(w, "event: end\ndata: {end}\n\n")?;
            return w.flush();
        }
        if last_write.elapsed() >= KEEPALIVE {
            // A comment line: it keeps proxies from closing the stream and tells us
            // when the client has gone.
            w.write_all(b": waiting\n\n")?;
            last_write = Instant::now();
        }
        w.flush()?;
        if started.elapsed() > MAX_STREAM {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

/// The operation is recorded as running but nothing runs it: `status` says its
/// holder is gone (the lock's process died, or its lease expired).
fn interrupted(engine: &Engine, op: &lastgood_core::ledger::Operation) -> io::Result<bool> {
    let status = engine.status(op.env.as_str()).map_err(io::Error::other)?;
    Ok(status.interrupted.is_some_and(|i| i.operation == op.id && !i.holder_alive))
}
