//! `[environments.X.monitor]`: the bake window that watches a release after its switch,
//! and the alert-only watch after a rollback.
//!
//! This file holds the typed values and the check that builds them; what a window does
//! with them is [`crate::monitor`]'s business. The rules checked here are the ones a
//! window could not recover from at run time: an interval under one second (the window
//! is bounded to one measurement per second), a signal with two sources or none, a
//! threshold that can never be crossed (`min` above `max`), a pattern list that is empty.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawMonitor, RawSignal};
use super::value::{Fail, parse_duration, resolve};

/// The shortest interval between two measurements of a window.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// What a regression does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRegression {
    /// Return to the last good release (the deploy fails, exit 1).
    Rollback,
    /// Notify and record; the window goes on and the release ends good.
    Alert,
}

/// The monitor section, with its defaults (a window of `0s`: off).
#[derive(Debug, Clone)]
pub struct Monitor {
    pub duration: Duration,
    pub interval: Duration,
    /// Consecutive failed measurements of one signal that make a regression.
    pub failures: u32,
    pub on_regression: OnRegression,
    /// How long the alert-only watch after a rollback lasts (zero: off).
    pub after_rollback: Duration,
    /// The environment's checks are measured again (default true when it has any).
    pub checks: bool,
    /// The supervised process must stay alive (`run` only; default true).
    pub process: bool,
    pub signals: Vec<Signal>,
}

impl Default for Monitor {
    fn default() -> Self {
        Self {
            duration: Duration::ZERO,
            interval: Duration::from_secs(30),
            failures: 2,
            on_regression: OnRegression::Rollback,
            after_rollback: Duration::ZERO,
            checks: true,
            process: true,
            signals: Vec::new(),
        }
    }
}

/// One configured signal.
#[derive(Debug, Clone)]
pub struct Signal {
    /// What output, reports and notifications call it.
    pub name: String,
    pub source: Source,
    /// How long one measurement may take.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum Source {
    /// An instant query; `{since}` in it is replaced by the seconds since the switch.
    Prometheus { url: String, query: String, max: Option<f64>, min: Option<f64> },
    /// Lines matching any of `patterns` (substrings) per minute, in the release's own
    /// section of the log.
    Log { log: LogFile, patterns: Vec<String>, max_per_minute: u64 },
    /// Exit 0: pass; 1: fail; anything else: the source failed.
    Command { argv: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFile {
    /// The log of the process lastgood supervises (`run`).
    App,
    File(PathBuf),
}

/// A window's length as `deploy --monitor` takes it (`"10m"`, `"30s"`).
pub fn parse_window(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

pub(super) fn check_monitor(raw: Option<&Spanned<RawMonitor>>, dir: &std::path::Path) -> Result<Monitor, Fail> {
    let mut m = Monitor::default();
    let Some(raw) = raw else { return Ok(m) };
    let span = raw.span();
    let raw = raw.get_ref();
    let dur = |v: &Option<Spanned<String>>, key: &str, default: Duration| -> Result<Duration, Fail> {
        match v {
            None => Ok(default),
            Some(s) => parse_duration(s.get_ref()).map_err(|e| (Some(s.span()), format!("monitor.{key}: {e}"))),
        }
    };
    m.duration = dur(&raw.duration, "duration", m.duration)?;
    m.interval = dur(&raw.interval, "interval", m.interval)?;
    if m.interval < MIN_INTERVAL {
        return Err((
            raw.interval.as_ref().map(Spanned::span),
            "monitor.interval: must be at least 1s (a window measures at most once a second)".into(),
        ));
    }
    if let Some(f) = &raw.failures {
        if !(1..=100).contains(f.get_ref()) {
            return Err((
                Some(f.span()),
                "monitor.failures: must be between 1 and 100 (consecutive failed measurements of one signal)".into(),
            ));
        }
        m.failures = *f.get_ref() as u32;
    }
    if let Some(o) = &raw.on_regression {
        m.on_regression = match o.get_ref().as_str() {
            "rollback" => OnRegression::Rollback,
            "alert" => OnRegression::Alert,
            other => {
                return Err((
                    Some(o.span()),
                    format!("monitor.on_regression: expected \"rollback\" or \"alert\", not {other:?}"),
                ));
            }
        };
    }
    if let Some(a) = &raw.after_rollback {
        m.after_rollback = match a.get_ref() {
            toml::Value::Boolean(true) => {
                if m.duration.is_zero() {
                    Duration::from_secs(600)
                } else {
                    m.duration
                }
            }
            toml::Value::Boolean(false) => Duration::ZERO,
            toml::Value::String(s) => {
                parse_duration(s).map_err(|e| (Some(a.span()), format!("monitor.after_rollback: {e}")))?
            }
            _ => {
                return Err((
                    Some(a.span()),
                    "monitor.after_rollback: expected true, false or a duration like \"10m\"".into(),
                ));
            }
        };
    }
    m.checks = raw.checks.unwrap_or(true);
    m.process = raw.process.unwrap_or(true);
    for (i, s) in raw.signals.iter().enumerate() {
        let signal = check_signal(s, i, dir, m.interval, &m.signals)?;
        if m.signals.iter().any(|o: &Signal| o.name == signal.name) {
            return Err((
                Some(s.span()),
                format!("monitor.signals: two signals are named `{}`; give each its own `name`", signal.name),
            ));
        }
        m.signals.push(signal);
    }
    let _ = span;
    Ok(m)
}

fn check_signal(
    s: &Spanned<RawSignal>,
    i: usize,
    dir: &std::path::Path,
    interval: Duration,
    taken: &[Signal],
) -> Result<Signal, Fail> {
    let span = s.span();
    let s = s.get_ref();
    let fail = |m: String| (Some(span.clone()), format!("monitor.signals[{i}]: {m}"));
    let kinds = [s.prometheus.is_some(), s.log.is_some(), s.file.is_some(), s.command.is_some()];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(fail("each signal needs exactly one of `prometheus`, `log`, `file` or `command`".into()));
    }
    // A measurement must end before the next one is due.
    let timeout = match &s.timeout {
        None => interval.min(Duration::from_secs(5)),
        Some(t) => parse_duration(t).map_err(|e| fail(format!("timeout: {e}")))?,
    };
    if timeout.is_zero() || timeout > interval {
        return Err(fail("timeout: must be more than 0s and at most the window's interval".into()));
    }
    let threshold_keys = s.max.is_some() || s.min.is_some();
    let log_keys = s.patterns.is_some() || s.max_per_minute.is_some();
    let (source, default_name) = if let Some(url) = &s.prometheus {
        if !url.starts_with("http://") {
            return Err(fail("prometheus: only http:// URLs are supported (the server's base URL)".into()));
        }
        let Some(query) = s.query.clone().filter(|q| !q.trim().is_empty()) else {
            return Err(fail("prometheus: needs `query` (a PromQL expression that returns one number)".into()));
        };
        if s.max.is_none() && s.min.is_none() {
            return Err(fail("prometheus: needs `max` or `min` (the threshold a measurement must stay within)".into()));
        }
        if let (Some(min), Some(max)) = (s.min, s.max) {
            if min > max {
                return Err(fail(format!("min ({min}) is above max ({max}): no value could pass")));
            }
        }
        if [s.min, s.max].into_iter().flatten().any(|v| !v.is_finite()) {
            return Err(fail("max and min must be finite numbers".into()));
        }
        if log_keys {
            return Err(fail("`match` and `max_per_minute` apply to log signals".into()));
        }
        (Source::Prometheus { url: url.trim_end_matches('/').to_owned(), query, max: s.max, min: s.min }, "prometheus")
    } else if s.log.is_some() || s.file.is_some() {
        let log = match (&s.log, &s.file) {
            (Some(l), None) if l == "app" => LogFile::App,
            (Some(other), None) => {
                return Err(fail(format!(
                    "log: {other:?} is not a log lastgood knows; use log = \"app\" (the supervised app's log) or file = PATH"
                )));
            }
            (None, Some(f)) if !f.is_empty() => LogFile::File(resolve(dir, f)),
            _ => return Err(fail("file: needs a path".into())),
        };
        let patterns = s.patterns.clone().unwrap_or_default();
        if patterns.is_empty() || patterns.iter().any(|p| p.is_empty()) {
            return Err(fail("match: needs at least one non-empty pattern, like match = [\"ERROR\"]".into()));
        }
        let max_per_minute = match s.max_per_minute {
            None => 0,
            Some(n) if n < 0 => return Err(fail("max_per_minute: must be 0 or more".into())),
            Some(n) => n as u64,
        };
        if threshold_keys || s.query.is_some() {
            return Err(fail("`query`, `max` and `min` apply to prometheus signals".into()));
        }
        (Source::Log { log, patterns, max_per_minute }, "log")
    } else {
        let argv = s.command.clone().unwrap_or_default();
        if argv.first().is_none_or(|p| p.is_empty()) {
            return Err(fail("command: needs a program".into()));
        }
        if threshold_keys || log_keys || s.query.is_some() {
            return Err(fail("a command signal passes on exit 0 and fails on exit 1; it takes no thresholds".into()));
        }
        (Source::Command { argv }, "command")
    };
    let name = s.name.clone().unwrap_or_else(|| {
        if taken.iter().any(|t| t.name == default_name) {
            format!("{default_name}-{}", i + 1)
        } else {
            default_name.into()
        }
    });
    if name.is_empty() || name.chars().any(|c| c.is_control()) {
        return Err(fail("name: must be a non-empty line of text".into()));
    }
    Ok(Signal { name, source, timeout })
}
