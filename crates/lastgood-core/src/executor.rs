//! Where a step's action runs: on this machine ([`Local`]) or on each host of a fleet
//! ([`crate::fleet::Fleet`]), behind one trait.
//!
//! The journal decides what a step does and what the ledger records about it; the
//! executor only carries the [`Action`] to where it runs and brings back one line per
//! place. A step is done only when it is done everywhere its `host` column names.

use std::path::{Path, PathBuf};

use crate::action::{self, Action};
use crate::error::{Error, Result};
use crate::model::{CommitId, ReleaseId};
use crate::runtime::{self, Site};
use crate::verify::CheckOutcome;

/// What follows an action on the wire.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    None,
    /// The commit's tree, as `git archive` writes it, from the source repository.
    Tree {
        source: &'a Path,
        commit: &'a CommitId,
    },
}

/// Runs health checks against one place: its address (for `{host}`), the folder
/// command checks run in, and with a proxy the port of the release's process there
/// (`{port}`); returns their outcomes.
pub type CheckRun<'a> = dyn Fn(&str, &Path, Option<u16>) -> Vec<CheckOutcome> + Sync + 'a;

pub trait Executor {
    /// Performs the action at every place `column` names (at most `parallel` at once
    /// on a fleet), under the operation's lock `epoch`. Ok only when it succeeded at
    /// every place: the detail, one line per host on a fleet.
    fn perform(&self, column: &str, action: &Action, payload: Payload<'_>, epoch: i64) -> Result<String>;

    /// Runs the checks against the release at every place `column` names; each
    /// place's label and outcomes.
    fn check(&self, column: &str, release: ReleaseId, run: &CheckRun<'_>) -> Result<Vec<(String, Vec<CheckOutcome>)>>;
}

/// This machine: actions are performed in-process.
pub struct Local {
    pub site: Site,
}

impl Executor for Local {
    fn perform(&self, _column: &str, action: &Action, payload: Payload<'_>, _epoch: i64) -> Result<String> {
        match payload {
            Payload::None => action::perform(&self.site, action, &mut std::io::empty()),
            Payload::Tree { source, commit } => {
                crate::git::with_archive(source, commit, |tree| action::perform(&self.site, action, tree))?
            }
        }
    }

    fn check(&self, column: &str, release: ReleaseId, run: &CheckRun<'_>) -> Result<Vec<(String, Vec<CheckOutcome>)>> {
        let cwd: PathBuf = runtime::of(&self.site).workdir(release);
        let port = self.site.proxy().and_then(|p| p.port_of(release.0));
        Ok(vec![(column.to_owned(), run(&self.site.host, &cwd, port))])
    }
}

/// The outcome of a step at each place as one record: `Ok(detail)` when every place
/// succeeded (a single place's detail as it is); otherwise the table, and whether a
/// host refused a stale epoch.
pub fn summarize(results: Vec<(String, std::result::Result<String, Failure>)>) -> Result<String, (String, bool)> {
    if let [(_, r)] = results.as_slice() {
        return match r {
            Ok(detail) => Ok(detail.clone()),
            Err(f) => Err((f.detail.clone(), f.fenced)),
        };
    }
    let mut lines = Vec::new();
    let mut failed = 0;
    let mut fenced = false;
    for (label, r) in &results {
        match r {
            Ok(v) => lines.push(format!("{label}: {v}")),
            Err(f) => {
                failed += 1;
                fenced |= f.fenced;
                lines.push(format!("{label}: FAILED: {}", f.detail));
            }
        }
    }
    let head = if failed == 0 {
        format!("{} host(s) ok", results.len())
    } else {
        format!("{failed} of {} host(s) failed", results.len())
    };
    let text = format!("{head}\n      {}", lines.join("\n      "));
    if failed == 0 { Ok(text) } else { Err((text, fenced)) }
}

/// Why an action failed at one place.
#[derive(Debug, Clone)]
pub struct Failure {
    pub detail: String,
    /// The place has seen a newer lock epoch: the operation lost its lock.
    pub fenced: bool,
}

/// The error a summarized failure becomes.
pub fn into_error(env: &str, epoch: i64, failed: (String, bool)) -> Error {
    match failed {
        (_, true) => Error::Fenced { env: env.to_owned(), epoch },
        (message, false) => Error::Step { message },
    }
}
