//! The bake step: the window that watches a release after its switch, under the
//! deploy's lock, with the release still `pending`.
//!
//! The step builds the window's probes from `[monitor]` ([`crate::monitor`] measures),
//! records what it measures in the ledger as audit events of the operation (bounded:
//! [`MAX_ROUNDS`] rounds, then only rounds whose verdicts changed), and looks there for
//! requests to end it early: `lastgood promote` (the window passes) and a preempting
//! `lastgood rollback` (the window fails). A regression that acts fails the step, and
//! the journal's failure policy returns to the last good release like any failed step
//! after a switch. After a crash, `resume` runs the step again: the window restarts
//! (a promotion recorded before the crash still counts).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Journal;
use crate::config::Start;
use crate::config::monitor::{LogFile, OnRegression, Source};
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::fleet::Fleet;
use crate::ledger::{AuditEvent, Change, Release, StepRecord};
use crate::model::ReleaseId;
use crate::monitor::logs::LogWatch;
use crate::monitor::{End, Measurement, Probe, Regression, Request, Verdict, Watcher, Window, probe};
use crate::plan::Step;
use crate::plan::placement::{LOCAL, everywhere};
use crate::runtime::{self, Site};
use crate::supervise::Supervisor;

/// Rounds of measurements recorded per window before only changes are.
pub const MAX_ROUNDS: usize = 240;
/// How often the ledger is asked for a request to end the window.
const REQUEST_POLL: Duration = Duration::from_secs(1);

/// The audit events of a window.
pub const STARTED: &str = "bake.started";
pub const MEASURED: &str = "bake.measurement";
pub const REGRESSION: &str = "bake.regression";
pub const ENDED: &str = "bake.ended";
/// Written by `lastgood promote` and by a preempting `lastgood rollback`.
pub const PROMOTE: &str = "bake.promote";
pub const PREEMPT: &str = "operation.preempt";

impl Journal<'_> {
    /// Whether someone asked this deploy to stop (a preempting `lastgood rollback`):
    /// checked at each step boundary of its own path; the step is then failed unrun, and
    /// the failure policy returns to the last good release if anything moved.
    pub(super) fn preempted(&self, rec: &StepRecord) -> Result<Option<String>> {
        if self.op.kind != crate::model::OperationKind::Deploy || rec.phase != crate::plan::Phase::Forward {
            return Ok(None);
        }
        // The bake step looks for the request itself, between measurements.
        if matches!(rec.step, crate::plan::Step::Bake { .. }) {
            return Ok(None);
        }
        Ok(match request_of(self.ledger, self.op.id)? {
            Some((crate::monitor::Request::Rollback { by, reason }, _)) => {
                Some(format!("not run: {by} asked for a rollback (reason: {reason})"))
            }
            _ => None,
        })
    }

    pub(super) fn bake(
        &mut self,
        rec: &StepRecord,
        release: ReleaseId,
        window_ms: u64,
    ) -> Result<(String, Vec<Change>)> {
        let env = self.env;
        let m = &env.monitor;
        let r = self.release(release)?;
        let switched_ms = self
            .ledger
            .steps(self.op.id)?
            .iter()
            .filter(|s| matches!(s.step, Step::Switch { .. }) && s.phase == rec.phase)
            .filter_map(|s| Some(s.started_at_ms? + s.duration_ms.unwrap_or(0)))
            .max()
            .unwrap_or_else(crate::context::now_ms);
        let column = everywhere(env);
        let executor: &dyn Executor = if column == LOCAL {
            &self.local
        } else {
            match &self.fleet {
                Some(f) => f.as_ref(),
                None => &self.local,
            }
        };
        let probes = probes(env, &r, executor, self.fleet.as_deref(), switched_ms);
        let window = Duration::from_millis(window_ms);
        let names: Vec<String> = probes.iter().map(|p| p.name().to_owned()).collect();
        let acts = m.on_regression == OnRegression::Rollback;
        self.ledger.apply(
            &self.fence,
            vec![self.audit(
                STARTED,
                serde_json::json!({
                    "release": release, "window_ms": window_ms, "interval_ms": m.interval.as_millis() as u64,
                    "failures": m.failures, "signals": names, "on_regression": if acts { "rollback" } else { "alert" },
                }),
            )],
        )?;
        self.progress.note(&format!(
            "baking {} for {}: measuring {} every {}",
            release,
            humantime::format_duration(window),
            if names.is_empty() { "nothing (no signal applies)".to_owned() } else { names.join(", ") },
            humantime::format_duration(m.interval)
        ));
        let back = Duration::from_millis(crate::context::now_ms().saturating_sub(switched_ms).max(0) as u64);
        let w = Window {
            probes,
            duration: window,
            interval: m.interval,
            failures: m.failures,
            acts,
            switched: Instant::now().checked_sub(back).unwrap_or_else(Instant::now),
        };
        let mut watch = BakeWatch {
            ledger: self.ledger,
            fence: &self.fence,
            lease: self.lease.as_ref(),
            ctx: self.ctx,
            env: env.name.as_str(),
            op: self.op.id,
            progress: &mut *self.progress,
            notifier: self.notifier.as_ref(),
            rounds: 0,
            last: BTreeMap::new(),
            polled: None,
        };
        let (end, alerts) = w.run(&mut watch)?;
        let ended = |what: &str, extra: serde_json::Value| {
            Change::Audit(AuditEvent::by(
                self.ctx,
                env.name.as_str(),
                Some(self.op.id),
                ENDED,
                serde_json::json!({ "end": what, "detail": extra }),
            ))
        };
        let alerts_text = if alerts.is_empty() {
            String::new()
        } else {
            format!("; regressions alerted: {}", alerts.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" | "))
        };
        match end {
            End::Passed => Ok((
                format!("window of {} passed{alerts_text}", humantime::format_duration(window)),
                vec![ended("passed", serde_json::json!({}))],
            )),
            End::Promoted { by, reason } => Ok((
                format!("promoted by {by} before the window ended (reason: {reason}){alerts_text}"),
                vec![ended("promoted", serde_json::json!({ "by": by, "reason": reason }))],
            )),
            End::Regressed(reg) => {
                self.ledger
                    .apply(&self.fence, vec![ended("regressed", serde_json::to_value(&reg).unwrap_or_default())])?;
                Err(Error::Step { message: reg.to_string() })
            }
            End::Stopped { by, reason } => {
                self.ledger
                    .apply(&self.fence, vec![ended("stopped", serde_json::json!({ "by": by, "reason": reason }))])?;
                Err(Error::Step { message: format!("stopped: {by} asked for a rollback (reason: {reason})") })
            }
        }
    }
}

/// The probes of a window watching release `r` (switched to at `switched_ms`), with the
/// environment's checks run through `executor`, and the processes of a fleet's hosts
/// asked of their agents (`fleet`).
pub(crate) fn probes<'e>(
    env: &'e crate::config::Environment,
    r: &Release,
    executor: &'e dyn Executor,
    fleet: Option<&'e Fleet>,
    switched_ms: i64,
) -> Vec<Box<dyn Probe + 'e>> {
    let m = &env.monitor;
    let site = Site::local(env);
    let mut probes: Vec<Box<dyn Probe + 'e>> = Vec::new();
    let vars = super::program_env(&env.name, r, crate::runtime::api::LOCAL_HOST);
    if m.checks && !env.checks.is_empty() {
        let column = everywhere(env);
        let mut once = env.clone();
        for c in &mut once.checks {
            c.retries = 1;
        }
        let r2 = r.clone();
        let release = r.id;
        probes.push(Box::new(probe::Checks {
            run: Box::new(move || {
                let run = |host: &str, cwd: &std::path::Path, port: Option<u16>| {
                    super::check_release(&once, &r2, host, cwd, port)
                };
                executor
                    .check(&column, release, &run)
                    .map(|per_host| per_host.into_iter().flat_map(|(_, o)| o).collect())
                    .map_err(|e| e.to_string())
            }),
        }));
    }
    // The process lastgood supervises: here, or on every host through its agent.
    if m.process && matches!(env.start, Start::Run(_)) {
        match fleet.filter(|_| !env.hosts.is_empty()) {
            Some(fleet) => probes.push(Box::new(probe::HostProcesses {
                release: r.id.0,
                observe: Box::new(move || {
                    fleet
                        .observe()
                        .into_iter()
                        .map(|h| (h.host, if h.reachable { Ok(h.app) } else { Err(h.error.unwrap_or_default()) }))
                        .collect()
                }),
            })),
            None if env.hosts.is_empty() => {
                // Behind a proxy, the release's own process (its pid file is named after
                // its port), not the single app of an environment without one.
                let state = site.state_dir();
                let supervisor = match site.proxy() {
                    Some(_) => crate::proxy::instances::of_release(&state, r.id.0)
                        .map(|i| crate::proxy::instances::supervisor(&state, i.port))
                        .unwrap_or_else(|| Supervisor::new(&state)),
                    None => Supervisor::new(&state),
                };
                probes.push(Box::new(probe::Process { supervisor, release: r.id.0 }));
            }
            None => {}
        }
    }
    let cwd = runtime::of(&site).tree(r.id).filter(|d| d.is_dir()).unwrap_or_else(|| env.source.clone());
    for s in &m.signals {
        match &s.source {
            Source::Prometheus { url, query, max, min } => probes.push(Box::new(probe::Prometheus {
                name: s.name.clone(),
                url: url.clone(),
                query: query.clone(),
                min: *min,
                max: *max,
                timeout: s.timeout,
                switched_at: switched_ms as f64 / 1000.0,
                interval: m.interval,
            })),
            Source::Log { log, patterns, max_per_minute } => {
                let (path, marker) = match log {
                    LogFile::App => (Supervisor::new(&site.state_dir()).log_file().to_path_buf(), Some(r.id.0)),
                    LogFile::File(p) => (p.clone(), None),
                };
                probes.push(Box::new(probe::Log {
                    name: s.name.clone(),
                    watch: LogWatch::new(path, patterns.clone(), *max_per_minute, marker),
                }));
            }
            Source::Command { argv } => probes.push(Box::new(probe::Program {
                name: s.name.clone(),
                argv: argv.clone(),
                cwd: cwd.clone(),
                vars: vars.clone(),
                timeout: s.timeout,
            })),
        }
    }
    probes
}

/// What a running window reports to, and asks of, the ledger.
struct BakeWatch<'a> {
    ledger: &'a dyn crate::ledger::Ledger,
    fence: &'a crate::ledger::Fence,
    lease: Option<&'a crate::lock::Lease>,
    ctx: &'a crate::context::Context,
    env: &'a str,
    op: u64,
    progress: &'a mut dyn super::Progress,
    notifier: Option<&'a crate::notify::Notifier>,
    rounds: usize,
    last: BTreeMap<String, Verdict>,
    polled: Option<Instant>,
}

impl BakeWatch<'_> {
    fn audit(&self, event: &str, detail: serde_json::Value) -> Change {
        Change::Audit(AuditEvent::by(self.ctx, self.env, Some(self.op), event, detail))
    }
}

impl Watcher for BakeWatch<'_> {
    fn request(&mut self) -> Result<Option<Request>> {
        if let Some(lease) = self.lease {
            lease.check(self.fence)?;
        }
        if self.polled.is_some_and(|t| t.elapsed() < REQUEST_POLL) {
            return Ok(None);
        }
        self.polled = Some(Instant::now());
        Ok(request_of(self.ledger, self.op)?.map(|(req, _)| req))
    }

    fn measured(&mut self, round: &[Measurement]) -> Result<()> {
        let changed = round.iter().any(|m| self.last.get(&m.signal) != Some(&m.verdict));
        for m in round {
            self.last.insert(m.signal.clone(), m.verdict);
        }
        let unusual = round.iter().any(|m| m.verdict != Verdict::Pass);
        if changed || unusual {
            let line: Vec<String> = round.iter().map(Measurement::line).collect();
            self.progress.note(&format!("bake: {}", line.join("; ")));
        }
        if self.rounds < MAX_ROUNDS || changed {
            self.rounds += 1;
            let event = self.audit(MEASURED, serde_json::json!({ "round": round }));
            self.ledger.apply(self.fence, vec![event])?;
        }
        Ok(())
    }

    fn regressed(&mut self, r: &Regression, acts: bool) -> Result<()> {
        let what = if acts { "returning to the last good release" } else { "alert only (on_regression = \"alert\")" };
        self.progress.note(&format!("bake: {r}: {what}"));
        let event = self.audit(REGRESSION, serde_json::json!({ "regression": r, "acts": acts }));
        self.ledger.apply(self.fence, vec![event])?;
        if let Some(n) = self.notifier {
            let text = format!("lastgood: {} operation {}: {r}; {what}", self.env, self.op);
            if let Err(why) =
                n.send(self.env, self.op, "regression", text, serde_json::json!({ "regression": r, "acts": acts }))
            {
                let failed =
                    self.audit("notify.failed", serde_json::json!({ "event": "regression", "error": why.to_string() }));
                self.ledger.apply(self.fence, vec![failed])?;
            }
        }
        Ok(())
    }
}

/// A request to end operation `op`'s window (or to stop the operation), with the
/// audit row id it came in; the first one made wins.
pub fn request_of(ledger: &dyn crate::ledger::Ledger, op: u64) -> Result<Option<(Request, i64)>> {
    for row in ledger.audit_events(op)? {
        let e = &row.event;
        let reason = e.detail["reason"].as_str().unwrap_or("").to_owned();
        match e.event.as_str() {
            PROMOTE => return Ok(Some((Request::Promote { by: e.actor.clone(), reason }, row.id))),
            PREEMPT => return Ok(Some((Request::Rollback { by: e.actor.clone(), reason }, row.id))),
            _ => {}
        }
    }
    Ok(None)
}

/// The latest measurement of each signal of operation `op`'s window, its start
/// (unix seconds) and length, for `status`.
pub fn progress_of(ledger: &dyn crate::ledger::Ledger, op: u64) -> Result<Option<BakeProgress>> {
    let mut out: Option<BakeProgress> = None;
    for row in ledger.audit_events(op)? {
        let e = &row.event;
        match e.event.as_str() {
            STARTED => {
                out = Some(BakeProgress {
                    started_at: e.at,
                    window_ms: e.detail["window_ms"].as_u64().unwrap_or(0),
                    signals: BTreeMap::new(),
                    regressions: Vec::new(),
                    ended: None,
                })
            }
            MEASURED => {
                if let (Some(p), Ok(round)) =
                    (out.as_mut(), serde_json::from_value::<Vec<Measurement>>(e.detail["round"].clone()))
                {
                    for m in round {
                        p.signals.insert(m.signal.clone(), m);
                    }
                }
            }
            REGRESSION => {
                if let (Some(p), Ok(r)) =
                    (out.as_mut(), serde_json::from_value::<Regression>(e.detail["regression"].clone()))
                {
                    p.regressions.push(r);
                }
            }
            ENDED => {
                if let Some(p) = out.as_mut() {
                    p.ended = e.detail["end"].as_str().map(str::to_owned);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Where a window is, as `status` and the report show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BakeProgress {
    pub started_at: i64,
    pub window_ms: u64,
    /// The latest measurement of each signal.
    pub signals: BTreeMap<String, Measurement>,
    pub regressions: Vec<Regression>,
    /// passed, promoted, regressed, stopped; None while it runs (or after a crash).
    pub ended: Option<String>,
}
