//! How code is switched: one trait, one module per runtime.
//!
//! The journal asks a [`Runtime`] to make a release the one that serves
//! ([`Runtime::activate`]); everything else (the plan, the lock, the ledger, checks,
//! automatic rollback) is the same for all of them. `activate` must be idempotent: it
//! first looks whether the release is already in place and does nothing if so, which
//! is what lets `resume` re-run an interrupted switch.

pub mod command;
pub mod compose;
pub mod docker;
pub mod gitops;
pub mod releases;
pub mod swarm;

use std::path::{Path, PathBuf};

use crate::config::{Environment, Runtime as Kind};
use crate::error::Result;
use crate::ledger::Release;
use crate::model::{CommitId, EnvName, OperationKind, ReleaseId};

/// Why a release is being activated, for runtimes that write it down (gitops commit
/// messages) or hand it to the user's program.
pub struct Activation<'a> {
    pub env: &'a EnvName,
    pub release: &'a Release,
    /// The version lastgood believes serves now; a runtime that can see what the
    /// world holds refuses to overwrite anything else.
    pub expected: Option<&'a str>,
    pub operation: u64,
    pub kind: OperationKind,
    /// Returning to an older release (a rollback, an automatic rollback, an abort)
    /// rather than shipping a new one.
    pub back: bool,
    /// The operation may return to the release before by itself (`--no-auto-rollback`
    /// is not set). Runtimes whose switch is not atomic use it to put back what
    /// served when the new release never came up.
    pub auto_rollback: bool,
    pub actor: &'a str,
    pub reason: Option<&'a str>,
    /// `LASTGOOD_VERSION` and the other variables programs get.
    pub vars: &'a [(String, String)],
}

pub trait Runtime {
    /// Checks, before the lock is taken, that the runtime can act: folders writable,
    /// repositories reachable. Changes nothing that matters.
    fn prepare(&self) -> Result<()>;

    /// Checks a version a deploy was asked for, before anything is recorded: its form
    /// (a usage error) and whether the runtime has what it names (a refusal: for the
    /// container runtimes, the image must be on the engine).
    fn check_version(&self, _version: &str) -> Result<()> {
        Ok(())
    }

    /// Whether a deploy ships files of its own (export, build, cleanup steps).
    fn artifacts(&self) -> bool {
        false
    }

    /// Writes the commit's tree as release `id`; false when it was already there.
    fn export(&self, _commit: &CommitId, _id: ReleaseId) -> Result<bool> {
        Ok(false)
    }

    /// Makes the release the one that serves. Returns a line for the record; the
    /// line says so when it was already in place.
    fn activate(&self, a: &Activation<'_>) -> Result<String>;

    /// Removes the serving release (undoing a first deploy), where that means something.
    fn deactivate(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// Whether a rollback to this release can run; the reason when not.
    fn ready(&self, release: &Release) -> std::result::Result<(), String>;

    /// The folder the release's programs (build, restart, command checks) run in.
    fn workdir(&self, id: ReleaseId) -> PathBuf;

    /// Deletes a release's artifact (retention).
    fn remove(&self, _id: ReleaseId) -> Result<()> {
        Ok(())
    }

    /// The version the world says serves now, for `status` (None: unknown or n/a).
    fn observe(&self) -> Option<String> {
        None
    }
}

pub fn of(env: &Environment) -> Box<dyn Runtime + '_> {
    match &env.runtime {
        Kind::Releases => Box::new(releases::Releases { env }),
        Kind::Command { switch, current } => Box::new(command::Command { env, switch, current: current.as_deref() }),
        Kind::Gitops(g) => Box::new(gitops::GitOps { env, cfg: g }),
        Kind::Compose(c) => Box::new(compose::Compose { env, cfg: c }),
        Kind::Swarm { service } => Box::new(swarm::Swarm { env, service }),
    }
}

/// Where lastgood keeps logs, pid files and working copies for an environment.
pub fn state_dir(env: &Environment) -> PathBuf {
    releases::state_dir(&env.deploy_to)
}

pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(crate::error::Error::io("create", dir))
}
