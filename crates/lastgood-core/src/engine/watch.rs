//! The watch after a rollback (`[monitor] after_rollback`): the release a rollback
//! returned to is measured by the same signals as a bake window, for a while, by a
//! detached `lastgood watch` process. It only alerts (audit events and notifications,
//! one per signal): it never acts, so a rollback can never start a loop of rollbacks.
//! It takes no lock and ends early when another operation starts or something else
//! serves.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Engine;
use super::run::Report;
use crate::config::Environment;
use crate::error::{Error, Result};
use crate::executor::{Executor, Local};
use crate::model::{OperationKind, Outcome};
use crate::monitor::{Measurement, Regression, Request, Watcher, Window};
use crate::report::{WATCH_ENDED, WATCH_REGRESSION, WATCH_STARTED};
use crate::runtime::Site;

/// How often the watch looks whether another operation started.
const POLL: Duration = Duration::from_secs(1);

impl Engine {
    /// Starts the detached watch after an operation that returned to a release, when
    /// the environment asks for one. A watch that cannot start is a note, never a
    /// failure of the rollback that already happened.
    pub(crate) fn spawn_watch(&self, env: &Environment, report: &Report) -> Option<String> {
        let returned = matches!(
            (report.kind, report.outcome),
            (OperationKind::Rollback, Outcome::Succeeded) | (OperationKind::Deploy, Outcome::RolledBack)
        );
        if !returned || env.monitor.after_rollback.is_zero() {
            return None;
        }
        let exe = match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => return Some(format!("the watch after the rollback did not start: {e}")),
        };
        let log = Site::local(env).state_dir().join("watch.log");
        let stderr = std::fs::create_dir_all(Site::local(env).state_dir())
            .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(&log))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let spawned = Command::new(exe)
            .arg("--config")
            .arg(&self.config.path)
            .args(["watch", env.name.as_str(), "--operation", &report.operation.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0)
            .spawn();
        Some(match spawned {
            Ok(child) => format!(
                "watching {} for {} after the rollback (alert only; pid {}, log {})",
                report.current.map(|c| c.to_string()).unwrap_or_default(),
                humantime::format_duration(env.monitor.after_rollback),
                child.id(),
                log.display()
            ),
            Err(e) => format!("the watch after the rollback did not start: {e}"),
        })
    }

    /// `lastgood watch ENV --operation N`: the alert-only watch of what operation N
    /// returned to (run by [`Engine::spawn_watch`], detached).
    pub fn watch_after_rollback(&self, env_name: &str, operation: u64) -> Result<usize> {
        let env = self.env(env_name)?;
        let op = self.operation(operation)?;
        let watched = self.ledger.env_state(&env.name)?.current.ok_or_else(|| Error::Usage {
            what: format!("nothing serves in `{}`: there is nothing to watch", env.name),
        })?;
        let release = self.must_release(&env.name, watched)?;
        let window = env.monitor.after_rollback;
        let started = self.audit(
            &env.name,
            Some(op.id),
            WATCH_STARTED,
            serde_json::json!({ "release": watched, "window_ms": window.as_millis() as u64 }),
        );
        self.ledger.apply_unfenced(&env.name, vec![started])?;
        let local = Local { site: Site::local(&env) };
        let fleet = self.fleet(&env);
        let executor: &dyn Executor = match &fleet {
            Some(f) => f.as_ref(),
            None => &local,
        };
        let probes = crate::journal::bake::probes(&env, &release, executor, fleet.as_deref(), crate::context::now_ms());
        let w = Window {
            probes,
            duration: window,
            interval: env.monitor.interval,
            failures: env.monitor.failures,
            acts: false,
            switched: Instant::now(),
        };
        let mut watcher = WatchAfter { engine: self, env: &env, op: op.id, watched, polled: None };
        let (_, alerts) = w.run(&mut watcher)?;
        let ended = self.audit(
            &env.name,
            Some(op.id),
            WATCH_ENDED,
            serde_json::json!({ "release": watched, "window_ms": window.as_millis() as u64, "regressions": alerts.len() }),
        );
        self.ledger.apply_unfenced(&env.name, vec![ended])?;
        Ok(alerts.len())
    }
}

struct WatchAfter<'a> {
    engine: &'a Engine,
    env: &'a Environment,
    op: u64,
    watched: crate::model::ReleaseId,
    polled: Option<Instant>,
}

impl Watcher for WatchAfter<'_> {
    fn request(&mut self) -> Result<Option<Request>> {
        if self.polled.is_some_and(|t| t.elapsed() < POLL) {
            return Ok(None);
        }
        self.polled = Some(Instant::now());
        let ledger = self.engine.ledger();
        let moved = ledger.env_state(&self.env.name)?.current != Some(self.watched);
        let busy = ledger.running_operation(&self.env.name)?.is_some();
        Ok((moved || busy).then(|| Request::Promote {
            by: "lastgood".into(),
            reason: "another operation started, or another release serves".into(),
        }))
    }

    fn measured(&mut self, round: &[Measurement]) -> Result<()> {
        let line: Vec<String> = round.iter().map(Measurement::line).collect();
        eprintln!("watch: {}", line.join("; "));
        Ok(())
    }

    fn regressed(&mut self, r: &Regression, _acts: bool) -> Result<()> {
        let e = self.engine;
        let event = e.audit(&self.env.name, Some(self.op), WATCH_REGRESSION, serde_json::json!({ "regression": r }));
        e.ledger().apply_unfenced(&self.env.name, vec![event])?;
        if let Some(n) = e.notifier(self.env) {
            let text = format!(
                "lastgood: after rollback {} of {}, {} still shows a problem: {r} (alert only: lastgood does not act again by itself)",
                self.op, self.env.name, self.watched
            );
            if let Err(why) = n.send(
                self.env.name.as_str(),
                self.op,
                "regression_after_rollback",
                text,
                serde_json::json!({ "regression": r }),
            ) {
                eprintln!("watch: the notification failed: {why}");
            }
        }
        Ok(())
    }
}
