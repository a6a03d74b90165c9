//! `/metrics`: Prometheus text, computed from the ledger on each scrape (no registry,
//! no background collector). The token is needed unless `serve` listens on loopback.
//!
//! `lastgood_release_state` has one series per release shown: the current one, the
//! last good one and the newest 20; a history of 100,000 releases must not become
//! 100,000 series.

use std::collections::BTreeSet;
use std::fmt::Write;

use lastgood_core::engine::Engine;

use crate::App;
use crate::http::Response;

const RECENT: usize = 20;

/// A label value as the text format wants it.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn render(engine: &Engine) -> lastgood_core::Result<String> {
    let mut current = String::new();
    let mut states = String::new();
    let mut ready = String::new();
    let mut lock = String::new();
    for name in engine.config.environments.keys() {
        let s = engine.status(name.as_str())?;
        let env = label(name.as_str());
        if let Some(c) = &s.current {
            let _ = writeln!(current, "lastgood_current_release{{env=\"{env}\"}} {}", c.id.0);
        }
        let mut shown = BTreeSet::new();
        let recent = engine.ledger().releases_page(name, None, RECENT)?;
        for r in s.current.iter().chain(s.last_good.iter()).chain(recent.iter()) {
            if shown.insert(r.id) {
                let _ = writeln!(
                    states,
                    "lastgood_release_state{{env=\"{env}\",release=\"{}\",version=\"{}\",state=\"{}\"}} 1",
                    r.id.0,
                    label(&r.version),
                    r.state.as_str()
                );
            }
        }
        let _ =
            writeln!(ready, "lastgood_rollback_ready{{env=\"{env}\"}} {}", u8::from(s.rollback_ready == Some(true)));
        let _ = writeln!(lock, "lastgood_lock_held{{env=\"{env}\"}} {}", u8::from(s.lock.is_some()));
    }
    let mut ops = String::new();
    for c in engine.ledger().operation_counts()? {
        let _ = writeln!(
            ops,
            "lastgood_operations_total{{env=\"{}\",kind=\"{}\",outcome=\"{}\"}} {}",
            label(&c.env),
            label(&c.kind),
            label(&c.outcome),
            c.count
        );
    }
    let mut out = String::new();
    for (name, kind, help, body) in [
        ("lastgood_current_release", "gauge", "The id of the release that serves.", current),
        (
            "lastgood_release_state",
            "gauge",
            "A release's state (1), for the current, last good and newest releases.",
            states,
        ),
        (
            "lastgood_rollback_ready",
            "gauge",
            "Whether a rollback to the last good release can run (1) or not (0).",
            ready,
        ),
        ("lastgood_lock_held", "gauge", "Whether the environment's lock is held.", lock),
        ("lastgood_operations_total", "counter", "Operations recorded, by kind and outcome.", ops),
    ] {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{body}");
    }
    Ok(out)
}

pub fn metrics(app: &App) -> Response {
    match app.engine().and_then(|e| render(&e)) {
        Ok(text) => Response::new(200, "text/plain; version=0.0.4; charset=utf-8", text),
        Err(e) => Response::text(500, format!("# error: {e}\n")),
    }
}
