//! The watching an operation had: its bake window (how it ended, its regressions, the
//! measurements recorded) and the alert-only watch after a rollback, read from the
//! operation's audit events, for the record and the checklist's "monitored" item.

use serde::Serialize;

use crate::journal::bake::{ENDED, MEASURED, REGRESSION, STARTED};
use crate::ledger::AuditRow;
use crate::monitor::{Measurement, Regression};

/// Rounds of measurements the record shows (the latest ones; the ledger keeps more).
const SHOWN_ROUNDS: usize = 30;

/// The audit events of the watch after a rollback.
pub const WATCH_STARTED: &str = "watch.started";
pub const WATCH_REGRESSION: &str = "watch.regression";
pub const WATCH_ENDED: &str = "watch.ended";

#[derive(Debug, Clone, Serialize)]
pub struct Watching {
    /// The bake window's length (a deploy).
    pub window_ms: Option<u64>,
    /// passed, promoted, regressed, stopped; None when it did not end (a crash).
    pub end: Option<String>,
    pub regressions: Vec<Regression>,
    /// The latest rounds of measurements, oldest first.
    pub measurements: Vec<Vec<Measurement>>,
    /// Rounds recorded in all.
    pub rounds: usize,
    /// The watch after a rollback: its length, and how it ended.
    pub after_rollback: Option<String>,
}

impl Watching {
    pub fn of(audit: &[AuditRow]) -> Option<Self> {
        let mut w = Self {
            window_ms: None,
            end: None,
            regressions: vec![],
            measurements: vec![],
            rounds: 0,
            after_rollback: None,
        };
        let mut seen = false;
        for row in audit {
            let d = &row.event.detail;
            match row.event.event.as_str() {
                STARTED => {
                    seen = true;
                    w.window_ms = d["window_ms"].as_u64();
                }
                MEASURED => {
                    if let Ok(round) = serde_json::from_value::<Vec<Measurement>>(d["round"].clone()) {
                        w.rounds += 1;
                        w.measurements.push(round);
                        if w.measurements.len() > SHOWN_ROUNDS {
                            w.measurements.remove(0);
                        }
                    }
                }
                REGRESSION | WATCH_REGRESSION => {
                    if let Ok(r) = serde_json::from_value::<Regression>(d["regression"].clone()) {
                        w.regressions.push(r);
                    }
                }
                ENDED => w.end = d["end"].as_str().map(str::to_owned),
                WATCH_STARTED => {
                    seen = true;
                    w.after_rollback = Some(format!("watching for {} ms (alert only)", d["window_ms"]));
                }
                WATCH_ENDED => {
                    w.after_rollback = Some(format!(
                        "watched for {} ms after the rollback (alert only): {} regression(s) alerted",
                        d["window_ms"], d["regressions"]
                    ));
                }
                _ => {}
            }
        }
        seen.then_some(w)
    }

    /// The checklist's evidence for "monitored".
    pub fn evidence(w: Option<&Self>) -> Result<String, String> {
        let Some(w) = w else {
            return Err("no bake window or watch after a rollback ran (see [monitor] in lastgood.toml)".into());
        };
        let mut said = Vec::new();
        if let Some(ms) = w.window_ms {
            said.push(format!(
                "bake window of {}s {} after {} round(s) of measurements",
                ms / 1000,
                w.end.as_deref().unwrap_or("did not end (interrupted)"),
                w.rounds
            ));
        }
        if let Some(a) = &w.after_rollback {
            said.push(a.clone());
        }
        Ok(said.join("; "))
    }

    pub fn markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        if let Some(ms) = self.window_ms {
            let _ = writeln!(
                s,
                "Bake window of {}s: {} ({} round(s) of measurements recorded).\n",
                ms / 1000,
                self.end.as_deref().unwrap_or("did not end"),
                self.rounds
            );
        }
        if let Some(a) = &self.after_rollback {
            let _ = writeln!(s, "After the rollback: {a}.\n");
        }
        for r in &self.regressions {
            let _ = writeln!(s, "- {r}");
        }
        if !self.regressions.is_empty() {
            s.push('\n');
        }
        if !self.measurements.is_empty() {
            s.push_str("| At | Signal | Verdict | Value | Threshold | Detail |\n|---|---|---|---|---|---|\n");
            for round in &self.measurements {
                for m in round {
                    let _ = writeln!(
                        s,
                        "| +{:.1}s | {} | {}{} | {} | {} | {} |",
                        m.at_ms as f64 / 1000.0,
                        m.signal,
                        m.verdict.as_str(),
                        if m.pre_existing { " (pre-existing)" } else { "" },
                        m.value.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                        m.threshold.replace('|', "\\|"),
                        m.detail.replace('|', "\\|")
                    );
                }
            }
        }
        s
    }
}
