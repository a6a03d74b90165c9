//! Watching a release after its switch: the bake window, and the alert-only watch
//! after a rollback.
//!
//! A window measures each signal every `interval` until `duration` has passed. A
//! measurement is one of four verdicts: pass, fail, no data, or a source error. Only
//! fails count, and only `failures` of them in a row of one signal make a regression
//! (one for the supervised process: a crash is a regression at once). No data and source
//! errors never do: a metrics server that is down, slow, or answers NaN, `+Inf`, an
//! empty vector or an error says nothing about the release, and treating it as a fail
//! is how other tools rolled back good releases (see docs/bake-window.md). They are
//! reported instead.
//!
//! A signal that was already failing before the switch (its baseline: a Prometheus
//! query evaluated at the switch's time, the log of the release before) is reported as
//! pre-existing and not blamed on the release.
//!
//! This module knows nothing of the ledger or the journal: [`Window::run`] takes the
//! probes and two callbacks, one that says whether someone asked the window to end
//! (`promote`, a preempting `rollback`), one that records what was measured. The bake
//! step of the journal ([`crate::journal`]) and the watch after a rollback wire them.
//!
//! - [`probe`]: the signals as probes (checks, process, Prometheus, logs, command).
//! - [`prometheus`]: the instant-query client and its traps.
//! - [`logs`]: counting matching lines in a release's section of a log.

pub mod logs;
pub mod probe;
pub mod prometheus;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// How often a window looks for a request to end it, between measurements.
pub const POLL: Duration = Duration::from_millis(500);

/// What one measurement of one signal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
    /// The source answered without a usable value (an empty vector, NaN, +Inf).
    NoData,
    /// The source could not be asked (down, slow, an error status, a bad answer).
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::NoData => "no-data",
            Self::Error => "error",
        }
    }
}

/// One measurement, as recorded in the ledger and shown by `status` and the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub signal: String,
    pub verdict: Verdict,
    /// The number measured, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// What a pass needs, in words (`<= 5`, `exit 0`, `alive`).
    pub threshold: String,
    /// What was seen, for people.
    pub detail: String,
    /// Milliseconds since the window started.
    pub at_ms: u64,
    /// The signal was already failing before the switch: its fails are not counted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pre_existing: bool,
}

impl Measurement {
    pub fn line(&self) -> String {
        let pre = if self.pre_existing { ", pre-existing" } else { "" };
        format!("{} {} ({}; threshold {}{pre})", self.signal, self.verdict.as_str(), self.detail, self.threshold)
    }
}

/// A signal measured by a window.
pub trait Probe {
    fn name(&self) -> &str;
    /// What a pass needs, in words.
    fn threshold(&self) -> String;
    /// Consecutive fails that make a regression (the process: 1).
    fn failures(&self, configured: u32) -> u32 {
        configured
    }
    /// Whether the signal was already failing before the switch, when the source can
    /// tell (None: it cannot).
    fn baseline(&mut self) -> Option<(Verdict, String)> {
        None
    }
    /// One measurement now: its verdict, value and what was seen.
    fn measure(&mut self, since_switch: Duration) -> (Verdict, Option<f64>, String);
}

/// Why a window ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// The whole duration passed without a regression that acts.
    Passed,
    /// Someone promoted the release before the end.
    Promoted { by: String, reason: String },
    /// A regression, and the window acts on it (rollback).
    Regressed(Regression),
    /// Someone asked for a rollback while the window ran.
    Stopped { by: String, reason: String },
}

/// A regression: which signal, what it measured, against what threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regression {
    pub signal: String,
    pub threshold: String,
    /// The failed measurements that made it, oldest first.
    pub values: Vec<String>,
    pub at_ms: u64,
}

impl std::fmt::Display for Regression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "regression of signal `{}`: {} failed measurement(s) in a row ({}); threshold {}",
            self.signal,
            self.values.len(),
            self.values.join("; "),
            self.threshold
        )
    }
}

/// A request to end a window, read from outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Promote { by: String, reason: String },
    Rollback { by: String, reason: String },
}

/// What a window reports as it runs.
pub trait Watcher {
    /// A request to end the window, if someone made one.
    fn request(&mut self) -> Result<Option<Request>>;
    /// One round of measurements (one per signal).
    fn measured(&mut self, round: &[Measurement]) -> Result<()>;
    /// A regression: with `acts` the window ends on it; else (alert) it goes on.
    fn regressed(&mut self, regression: &Regression, acts: bool) -> Result<()>;
}

/// A window: its probes and its rules.
pub struct Window<'p> {
    pub probes: Vec<Box<dyn Probe + 'p>>,
    pub duration: Duration,
    pub interval: Duration,
    pub failures: u32,
    /// A regression ends the window (rollback); otherwise it is an alert.
    pub acts: bool,
    /// When the release switched, as far as this window knows (for `{since}`).
    pub switched: Instant,
}

/// Per signal: its fails in a row, whether it was failing before the switch, and
/// whether an alert already went out (one per signal and window: no alert storms).
#[derive(Default, Clone)]
struct Track {
    streak: Vec<String>,
    pre_existing: bool,
    alerted: bool,
}

impl Window<'_> {
    /// Runs the window to its end. Measurements at most once per `interval` (never
    /// more than once a second, which the config enforces); requests are looked for
    /// every [`POLL`] in between.
    pub fn run(mut self, watcher: &mut dyn Watcher) -> Result<(End, Vec<Regression>)> {
        let started = Instant::now();
        let mut tracks = vec![Track::default(); self.probes.len()];
        let mut first: Vec<Measurement> = Vec::new();
        for (probe, track) in self.probes.iter_mut().zip(tracks.iter_mut()) {
            if let Some((Verdict::Fail, seen)) = probe.baseline() {
                track.pre_existing = true;
                first.push(Measurement {
                    signal: probe.name().to_owned(),
                    verdict: Verdict::Fail,
                    value: None,
                    threshold: probe.threshold(),
                    detail: format!("before the switch: {seen}"),
                    at_ms: 0,
                    pre_existing: true,
                });
            }
        }
        if !first.is_empty() {
            watcher.measured(&first)?;
        }
        let mut alerts = Vec::new();
        let mut next = started;
        loop {
            if let Some(req) = watcher.request()? {
                return Ok((
                    match req {
                        Request::Promote { by, reason } => End::Promoted { by, reason },
                        Request::Rollback { by, reason } => End::Stopped { by, reason },
                    },
                    alerts,
                ));
            }
            let now = Instant::now();
            if now.duration_since(started) >= self.duration {
                return Ok((End::Passed, alerts));
            }
            if now < next {
                std::thread::sleep(POLL.min(next - now).min(self.duration.saturating_sub(now - started)));
                continue;
            }
            next = now + self.interval;
            let at_ms = started.elapsed().as_millis() as u64;
            let since = self.switched.elapsed();
            let mut round = Vec::with_capacity(self.probes.len());
            let mut regression = None;
            for (probe, track) in self.probes.iter_mut().zip(tracks.iter_mut()) {
                let (verdict, value, detail) = probe.measure(since);
                let m = Measurement {
                    signal: probe.name().to_owned(),
                    verdict,
                    value,
                    threshold: probe.threshold(),
                    detail,
                    at_ms,
                    pre_existing: track.pre_existing,
                };
                match verdict {
                    Verdict::Fail if !track.pre_existing => track.streak.push(m.detail.clone()),
                    Verdict::Fail => {}
                    // A pass ends a streak; no data and errors neither add nor reset:
                    // a metrics outage in the middle of a failing streak hides nothing.
                    Verdict::Pass => track.streak.clear(),
                    Verdict::NoData | Verdict::Error => {}
                }
                if track.streak.len() as u32 >= probe.failures(self.failures) && regression.is_none() {
                    let r = Regression {
                        signal: probe.name().to_owned(),
                        threshold: probe.threshold(),
                        values: std::mem::take(&mut track.streak),
                        at_ms,
                    };
                    if self.acts {
                        regression = Some(r);
                    } else if !track.alerted {
                        track.alerted = true;
                        watcher.regressed(&r, false)?;
                        alerts.push(r);
                    }
                }
                round.push(m);
            }
            watcher.measured(&round)?;
            if let Some(r) = regression {
                watcher.regressed(&r, true)?;
                return Ok((End::Regressed(r), alerts));
            }
        }
    }
}

/// `{since}` in a query: the seconds since the switch, as a PromQL duration.
pub fn since_text(since: Duration) -> String {
    format!("{}s", since.as_secs().max(1))
}
