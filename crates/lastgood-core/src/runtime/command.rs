//! The `command` runtime: the user's program switches versions. It stands for a CI
//! job triggered with a parameter and waited for, or a parameter store written and a
//! pipeline run ("set desired_version to the old tag, run the pipeline").
//!
//! `switch` runs with `LASTGOOD_VERSION` and the other variables in its environment
//! (the version is never part of a command line). `current`, if configured, prints
//! the version running now; it is read before switching (already there: nothing to
//! do, which makes a resumed switch harmless) and after (a switch that exits 0 while
//! the old version still runs is a failure, not a success).

use std::path::PathBuf;
use std::time::Duration;

use super::api::{
    Activation, NotReady, Observed, Placement, Refusal, ReleaseFacts, Runtime, Site, StepFacts, generic, usable_dir,
};
use crate::error::{Error, Result};
use crate::model::ReleaseId;
use crate::plan::Step;

/// How long `current` may take to answer.
const CURRENT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Command<'a> {
    pub site: &'a Site,
    pub switch: &'a [String],
    pub current: Option<&'a [String]>,
}

impl Command<'_> {
    fn dir(&self) -> PathBuf {
        self.site.deploy_to.clone()
    }

    /// The variables (and placeholders) `current` has outside an operation.
    fn site_vars(&self) -> Vec<(String, String)> {
        vec![("LASTGOOD_ENV".into(), self.site.env.to_string()), ("LASTGOOD_HOST".into(), self.site.host.clone())]
    }

    /// What `current` prints, trimmed; None when it is not configured, fails or prints nothing.
    fn running(&self, vars: &[(String, String)]) -> Option<String> {
        let argv = self.current?;
        let out = crate::exec::output(argv, &self.dir(), vars, CURRENT_TIMEOUT).ok()?;
        let line = out.lines().map(str::trim).find(|l| !l.is_empty())?.to_owned();
        Some(line)
    }
}

impl Runtime for Command<'_> {
    fn prepare(&self) -> std::result::Result<(), Refusal> {
        usable_dir("lastgood's state folder", &self.site.state_dir())
    }

    fn placement(&self) -> Placement {
        Placement::Controller
    }

    /// The release's source tree, for its migrations (exported only when the
    /// environment has some).
    fn export(&self, id: ReleaseId, commit: &str, tree: &mut dyn std::io::Read) -> Result<bool> {
        super::tree::export(self.site, id, commit, tree)
    }

    fn tree(&self, id: ReleaseId) -> Option<PathBuf> {
        Some(super::tree::of(self.site, id))
    }

    fn remove(&self, id: ReleaseId) -> Result<()> {
        super::tree::remove(self.site, id)
    }

    fn activate(&self, a: &Activation) -> Result<String> {
        let version = a.release.version.as_str();
        let mut vars = a.vars.clone();
        vars.push(("LASTGOOD_HOST".into(), self.site.host.clone()));
        let vars = &vars;
        if self.running(vars).as_deref() == Some(version) {
            return Ok(format!("`current` already prints {version}"));
        }
        let log = self.site.state_dir().join(format!("switch-{}.log", a.release.id.0));
        crate::exec::run_logged(self.switch, &self.dir(), vars, &log)
            .map_err(|e| Error::Step { message: format!("switch: {e}") })?;
        match (self.current, self.running(vars)) {
            (None, _) => Ok(format!("switch ran for {version} (log: {})", log.display())),
            (Some(_), Some(now)) if now == version => Ok(format!("switched; `current` prints {version}")),
            (Some(_), Some(now)) => Err(Error::Step {
                message: format!("switch exited 0 but `current` prints {now}, not {version} (log: {})", log.display()),
            }),
            (Some(_), None) => {
                Ok(format!("switch ran for {version}; `current` printed nothing (log: {})", log.display()))
            }
        }
    }

    fn ready(&self, _release: &ReleaseFacts) -> std::result::Result<(), NotReady> {
        // A version is all the switch program needs.
        Ok(())
    }

    /// What `current` prints now: a parameter changed by hand shows here.
    fn desired(&self) -> std::result::Result<Option<(String, String)>, Refusal> {
        let what = format!("`current` ({})", self.current.map(|c| c.join(" ")).unwrap_or_default());
        Ok(self.running(&self.site_vars()).map(|v| (what, v)))
    }

    /// A parameter may be overwritten on purpose: `--yes` says so.
    fn drift_consent(&self) -> bool {
        true
    }

    fn workdir(&self, _id: ReleaseId) -> PathBuf {
        self.dir()
    }

    fn observe(&self) -> Observed {
        Observed { release: None, version: self.running(&self.site_vars()) }
    }

    fn describe(&self, step: &Step, facts: &StepFacts) -> String {
        match (step, facts.version.as_deref()) {
            (Step::Switch { .. }, Some(v)) => {
                let mut vars = self.site_vars();
                vars.push(("LASTGOOD_VERSION".into(), v.to_owned()));
                format!("run {} with LASTGOOD_VERSION={v}", crate::placeholder::argv(self.switch, &vars).join(" "))
            }
            (Step::Switch { release }, None) => format!("run {} for {release}", self.switch.join(" ")),
            (Step::Unlink, _) => "nothing to remove: the pipeline owns what serves".into(),
            (other, _) => generic(other, facts),
        }
    }
}
