//! The signals a window measures, each as a [`Probe`]: the environment's checks run
//! again (one attempt each), the supervised process still alive, a Prometheus query, a
//! log's matching lines, a command's exit status.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::logs::LogWatch;
use super::prometheus::{self, Answer};
use super::{Probe, Verdict, since_text};
use crate::supervise::Supervisor;
use crate::verify::CheckOutcome;

/// The environment's checks, once each, wherever the caller runs them.
pub struct Checks<'a> {
    pub run: Box<dyn FnMut() -> std::result::Result<Vec<CheckOutcome>, String> + 'a>,
}

impl Probe for Checks<'_> {
    fn name(&self) -> &str {
        "checks"
    }
    fn threshold(&self) -> String {
        "every check passes".into()
    }
    fn measure(&mut self, _: Duration) -> (Verdict, Option<f64>, String) {
        match (self.run)() {
            Err(e) => (Verdict::Error, None, e),
            Ok(outcomes) => {
                let failed: Vec<String> =
                    outcomes.iter().filter(|o| !o.passed).map(|o| format!("{}: {}", o.check, o.detail)).collect();
                let passed = outcomes.len() - failed.len();
                let value = Some(passed as f64);
                if failed.is_empty() {
                    (Verdict::Pass, value, format!("{passed}/{} checks passed", outcomes.len()))
                } else {
                    (Verdict::Fail, value, format!("{passed}/{} checks passed; {}", outcomes.len(), failed.join("; ")))
                }
            }
        }
    }
}

/// The process lastgood supervises (`run`) for the release: a crash is a regression
/// at once.
pub struct Process {
    pub supervisor: Supervisor,
    pub release: u64,
}

impl Probe for Process {
    fn name(&self) -> &str {
        "process"
    }
    fn threshold(&self) -> String {
        format!("the process of release #{} is alive", self.release)
    }
    fn failures(&self, _: u32) -> u32 {
        1
    }
    fn measure(&mut self, _: Duration) -> (Verdict, Option<f64>, String) {
        match self.supervisor.running() {
            Err(e) => (Verdict::Error, None, e.to_string()),
            Ok(Some(r)) if r.release == self.release => (Verdict::Pass, None, format!("pid {} alive", r.pid)),
            Ok(Some(r)) => {
                (Verdict::Fail, None, format!("the process running is release #{}'s (pid {})", r.release, r.pid))
            }
            Ok(None) => (Verdict::Fail, None, "the process is gone (it exited or was killed)".into()),
        }
    }
}

/// What a host's agent says its supervised app runs: the release (None: nothing), or
/// why it could not say.
pub type HostApp = (String, std::result::Result<Option<u64>, String>);

/// The processes lastgood supervises for the release on every host of a fleet, as the
/// hosts' agents see them: a host whose process is gone or runs another release is a
/// regression at once; a host that does not answer is a source error, not a failure.
pub struct HostProcesses<'a> {
    pub release: u64,
    pub observe: Box<dyn FnMut() -> Vec<HostApp> + 'a>,
}

impl Probe for HostProcesses<'_> {
    fn name(&self) -> &str {
        "process"
    }
    fn threshold(&self) -> String {
        format!("the process of release #{} is alive on every host", self.release)
    }
    fn failures(&self, _: u32) -> u32 {
        1
    }
    fn measure(&mut self, _: Duration) -> (Verdict, Option<f64>, String) {
        let seen = (self.observe)();
        let mut gone = Vec::new();
        let mut unknown = Vec::new();
        let mut alive = 0;
        for (host, app) in &seen {
            match app {
                Ok(Some(r)) if *r == self.release => alive += 1,
                Ok(Some(r)) => gone.push(format!("{host}: the process running is release #{r}'s")),
                Ok(None) => gone.push(format!("{host}: the process is gone (it exited or was killed)")),
                Err(e) => unknown.push(format!("{host}: {e}")),
            }
        }
        let value = Some(f64::from(alive));
        if !gone.is_empty() {
            (Verdict::Fail, value, gone.join("; "))
        } else if !unknown.is_empty() {
            (Verdict::Error, value, unknown.join("; "))
        } else {
            (Verdict::Pass, value, format!("alive on {alive} host(s)"))
        }
    }
}

/// An instant query against a threshold.
pub struct Prometheus {
    pub name: String,
    pub url: String,
    pub query: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub timeout: Duration,
    /// The switch, in unix seconds: the baseline is the query evaluated then.
    pub switched_at: f64,
    /// `{since}` in the baseline query: the window's interval.
    pub interval: Duration,
}

impl Prometheus {
    fn judge(&self, answer: Answer) -> (Verdict, Option<f64>, String) {
        match answer {
            Answer::Value(v) => (prometheus::judge(v, self.min, self.max), Some(v), format!("value {v}")),
            Answer::NoData(why) => (Verdict::NoData, None, why),
            Answer::Error(why) => (Verdict::Error, None, why),
        }
    }
}

impl Probe for Prometheus {
    fn name(&self) -> &str {
        &self.name
    }
    fn threshold(&self) -> String {
        prometheus::threshold(self.min, self.max)
    }
    fn baseline(&mut self) -> Option<(Verdict, String)> {
        let q = self.query.replace("{since}", &since_text(self.interval));
        let (verdict, _, seen) = self.judge(prometheus::query(&self.url, &q, Some(self.switched_at), self.timeout));
        Some((verdict, seen))
    }
    fn measure(&mut self, since: Duration) -> (Verdict, Option<f64>, String) {
        let q = self.query.replace("{since}", &since_text(since));
        self.judge(prometheus::query(&self.url, &q, None, self.timeout))
    }
}

/// Matching lines of a log.
pub struct Log {
    pub name: String,
    pub watch: LogWatch,
}

impl Probe for Log {
    fn name(&self) -> &str {
        &self.name
    }
    fn threshold(&self) -> String {
        self.watch.threshold()
    }
    fn baseline(&mut self) -> Option<(Verdict, String)> {
        self.watch.baseline()
    }
    fn measure(&mut self, _: Duration) -> (Verdict, Option<f64>, String) {
        self.watch.measure()
    }
}

/// A program: exit 0 passes, 1 fails, anything else (or no exit in time) is the
/// source's error. It runs in its own process group, killed whole on timeout.
pub struct Program {
    pub name: String,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub vars: Vec<(String, String)>,
    pub timeout: Duration,
}

impl Probe for Program {
    fn name(&self) -> &str {
        &self.name
    }
    fn threshold(&self) -> String {
        "exit 0".into()
    }
    fn measure(&mut self, _: Duration) -> (Verdict, Option<f64>, String) {
        let argv = crate::placeholder::argv(&self.argv, &self.vars);
        let Some((program, args)) = argv.split_first() else {
            return (Verdict::Error, None, "empty command".into());
        };
        let spawned = Command::new(crate::supervise::resolve_program(program, &self.cwd))
            .args(args)
            .current_dir(&self.cwd)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => return (Verdict::Error, None, format!("cannot run {program:?}: {e}")),
        };
        let deadline = Instant::now() + self.timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    return match status.code() {
                        Some(0) => (Verdict::Pass, Some(0.0), "exit 0".into()),
                        Some(1) => (Verdict::Fail, Some(1.0), "exit 1".into()),
                        Some(c) => {
                            (Verdict::Error, Some(c as f64), format!("exit {c} (only 0 and 1 judge the release)"))
                        }
                        None => (Verdict::Error, None, format!("killed by a signal ({status})")),
                    };
                }
                Ok(None) if Instant::now() >= deadline => {
                    // SAFETY (of the call): kill(2) on the child's own process group.
                    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                    let _ = child.wait();
                    return (
                        Verdict::Error,
                        None,
                        format!("no exit within {}", humantime::format_duration(self.timeout)),
                    );
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return (Verdict::Error, None, format!("waiting for {program:?}: {e}")),
            }
        }
    }
}
