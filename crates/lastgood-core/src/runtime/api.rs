//! What every runtime is: the [`Runtime`] trait, the [`Site`] it acts at, and the
//! [`Activation`] it is asked to perform.
//!
//! A runtime is how code is switched: release directories and a symlink, a Compose
//! project, a Swarm service, the user's pipeline, a GitOps repository. Everything else
//! (the plan, the lock, the ledger, checks, automatic rollback) is the same for all of
//! them and lives in the journal. So a runtime answers three kinds of question and no
//! more: *can you act* ([`Runtime::prepare`], [`Runtime::check_version`],
//! [`Runtime::ready`]), *act* ([`Runtime::activate`], idempotent: it first looks
//! whether the release is already in place, which is what lets `resume` re-run an
//! interrupted switch), and *say what you do*, in your own words, for plans
//! ([`Runtime::describe`]).
//!
//! A runtime is built from a [`Site`], plain data: the same runtime runs on this machine
//! or, sent over ssh, on the agent of a fleet host. That is why nothing here borrows the
//! environment's whole configuration: checks, database URLs and webhooks never travel.
//!
//! What a runtime never does is decide policy: when its switch fails half way, it
//! reports the failure; whether and how to return to the last good release is the
//! journal's call (see [`Runtime::atomic`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Environment, Runtime as Kind};
pub use crate::database::program::Ran;
use crate::error::{Error, Result};
use crate::model::{EnvName, OperationKind, ReleaseId};
use crate::plan::Step;
use crate::proxy::Proxy;
use crate::proxy::settings::ProxySettings;
pub use crate::refusal::{NotReady, Refusal};

/// Where a runtime acts, as data that can travel to a host's agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Site {
    pub env: EnvName,
    pub runtime: Kind,
    pub deploy_to: PathBuf,
    pub keep_releases: usize,
    pub stop_timeout_ms: u64,
    /// The address `{host}` and `LASTGOOD_HOST` name at this site (`127.0.0.1` here).
    pub host: String,
    /// Config files kept in `<deploy_to>/shared/` and linked into each release's folder
    /// (their paths as written; empty when they stay where lastgood.toml names them).
    #[serde(default)]
    pub shared_files: Vec<String>,
    /// `[proxy]`: releases run beside each other behind lastgood's proxy.
    #[serde(default)]
    pub proxy: Option<ProxySettings>,
}

/// The address `{host}` and `LASTGOOD_HOST` name on this machine.
pub const LOCAL_HOST: &str = "127.0.0.1";

impl Site {
    /// The environment's site on this machine.
    pub fn local(env: &Environment) -> Self {
        Self::on(env, LOCAL_HOST)
    }

    /// The environment's site on a host reached at `host`.
    pub fn on(env: &Environment, host: &str) -> Self {
        Self {
            env: env.name.clone(),
            runtime: env.runtime.clone(),
            deploy_to: env.deploy_to.clone(),
            keep_releases: env.keep_releases,
            stop_timeout_ms: env.stop_timeout.as_millis() as u64,
            host: host.to_owned(),
            shared_files: if env.config_files_shared() {
                env.config_files.iter().map(|f| f.name.clone()).collect()
            } else {
                Vec::new()
            },
            proxy: env.proxy.clone(),
        }
    }

    /// Where a shared config file lives here.
    pub fn shared(&self, name: &str) -> PathBuf {
        self.deploy_to.join("shared").join(name)
    }

    /// The proxy of this site, when the environment has one.
    pub fn proxy(&self) -> Option<Proxy> {
        self.proxy.as_ref().map(|settings| Proxy {
            state: self.state_dir(),
            host: self.host.clone(),
            settings: settings.at(&self.host),
            stop_grace: std::time::Duration::from_millis(self.stop_timeout_ms),
        })
    }

    /// Where lastgood keeps logs, pid files, records and working copies here.
    pub fn state_dir(&self) -> PathBuf {
        state_dir(&self.deploy_to)
    }
}

/// Where a runtime without release directories keeps a release's source tree (exported
/// from its commit) for its migrations: `<deploy_to>/.lastgood/trees/<id>/`.
pub fn trees_dir(site: &Site) -> PathBuf {
    site.state_dir().join("trees")
}

/// `<deploy_to>/.lastgood`: logs, the pid file, image records, working copies.
pub fn state_dir(deploy_to: &Path) -> PathBuf {
    deploy_to.join(".lastgood")
}

pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io("create", dir))
}

/// A folder the runtime needs, or the refusal that says it cannot have it.
pub(crate) fn usable_dir(what: &str, dir: &Path) -> std::result::Result<(), Refusal> {
    ensure_dir(dir).map_err(|e| unusable(what, e))
}

/// A refusal for something the runtime needs and cannot use.
pub(crate) fn unusable(what: impl Into<String>, detail: impl std::fmt::Display) -> Refusal {
    Refusal::Unusable { what: what.into(), detail: detail.to_string() }
}

/// What a runtime needs to know of a release to make it serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseFacts {
    pub id: ReleaseId,
    pub version: String,
    pub commit: Option<String>,
}

impl ReleaseFacts {
    pub fn of(r: &crate::ledger::Release) -> Self {
        Self { id: r.id, version: r.version.clone(), commit: r.commit.as_ref().map(|c| c.to_string()) }
    }
}

/// One request to make a release serve, with why, for runtimes that write it down
/// (gitops commit messages) or hand it to the user's program.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Activation {
    pub release: ReleaseFacts,
    /// The versions lastgood may have left serving (the one it believes serves; after a
    /// switch that failed half way, also the one it was switching to). A runtime that
    /// can see what the world holds refuses to overwrite anything else. Empty: nothing
    /// is known to serve.
    pub expected: Vec<String>,
    pub operation: u64,
    pub kind: OperationKind,
    /// Returning to an older release (a rollback, an automatic rollback, an abort)
    /// rather than shipping a new one.
    pub back: bool,
    pub actor: String,
    pub reason: Option<String>,
    /// `LASTGOOD_VERSION` and the other variables programs get (without
    /// `LASTGOOD_HOST`, which the site adds).
    pub vars: Vec<(String, String)>,
    /// Releases whose artifacts (images) stay protected whatever retention says: one
    /// whose migrations stay applied ahead of the code, until they are reverted.
    #[serde(default)]
    pub protect: Vec<ReleaseId>,
    /// Every commit a release of this environment names (its commit, its GitOps deploy
    /// commit): a reset may drop those, and nothing else that is not lastgood's own.
    #[serde(default)]
    pub known: Vec<String>,
    /// The ledger already calls this release current (an abort before anything moved).
    #[serde(default)]
    pub current: bool,
}

/// Where a runtime's switch happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On every host of the environment (its files, processes or containers).
    Hosts,
    /// From the controller, on a system outside the hosts (a pipeline, a repository).
    Controller,
}

/// How a runtime tells what an observer sees serving.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The release a `current` link names (runtimes with release directories).
    pub release: Option<ReleaseId>,
    /// The version the world says runs (a pipeline's `current`, a branch's file, the
    /// images running), for runtimes without release directories.
    pub version: Option<String>,
}

pub trait Runtime {
    /// Checks, before the lock is taken, that the runtime can act: folders writable,
    /// repositories reachable, the engine answering. Changes nothing that matters.
    fn prepare(&self) -> std::result::Result<(), Refusal>;

    /// Checks a version a deploy was asked for, before anything is recorded: its form
    /// (a usage error) and whether the runtime has what it names (a refusal: for the
    /// container runtimes, the image must be on the engine).
    fn check_version(&self, _version: &str) -> Result<()> {
        Ok(())
    }

    /// The commit a version names, for a runtime that resolves versions itself (GitOps
    /// branch mode: a commit or tag of its repository), with the subjects of the commits
    /// since `since` (the release before), newest first: the release's features. None:
    /// versions are not commits here.
    fn resolve(&self, _version: &str, _since: Option<&str>) -> Result<Option<(String, Vec<String>)>> {
        Ok(None)
    }

    /// The version the outside world says should serve, read fresh (a pipeline's
    /// `current`, a version file after a fetch), with what said it, for the check that
    /// nobody changed it by hand since lastgood last set it. None: this runtime cannot
    /// tell.
    fn desired(&self) -> std::result::Result<Option<(String, String)>, Refusal> {
        Ok(None)
    }

    /// Who changed the desired version, for the refusal's message (a commit).
    fn changed_by(&self) -> Option<String> {
        None
    }

    /// Whether `--yes` may overrule a desired version changed by hand: a pipeline's
    /// parameter may be overwritten on purpose; a commit in a GitOps repository is never
    /// overwritten (decide, then deploy).
    fn drift_consent(&self) -> bool {
        false
    }

    /// Whether a rollback to `to` can run, checked before anything is recorded (GitOps
    /// reset mode: no commit it would drop may be someone else's). `known`: the commits
    /// the environment's releases name.
    fn check_back(&self, _to: &ReleaseFacts, _known: &[String]) -> std::result::Result<(), Refusal> {
        Ok(())
    }

    /// After a switch: the commit the runtime left its repository's branch at for the
    /// release (GitOps), recorded as the release's deploy commit. None: no such commit.
    fn deploy_commit(&self, _back: bool) -> Option<String> {
        None
    }

    /// What serves, after refreshing what the runtime reads (GitOps: a fetch, bounded
    /// in time); `status` uses it.
    fn observe_fresh(&self) -> Observed {
        self.observe()
    }

    /// Whether a deploy ships release directories (export, cleanup and unlink steps).
    fn artifacts(&self) -> bool {
        false
    }

    /// Whether a failed activation leaves the release before it serving, untouched.
    /// When not (containers half replaced, a pipeline that may have run, a push that
    /// may have landed), the journal treats a failed switch as maybe switched and
    /// returns to the last good release with its own steps and checks.
    fn atomic(&self) -> bool {
        false
    }

    /// Whether the switch itself starts the app (containers brought up), rather than
    /// `run` or `restart` after it.
    fn starts_on_switch(&self) -> bool {
        false
    }

    /// Whether [`Runtime::stop`] stops anything.
    fn stops(&self) -> bool {
        false
    }

    /// Stops what serves `a.release`, except the service named `keep` (the database's
    /// own, in a compose stack), before migrations go down. None: nothing of the
    /// runtime's own to stop.
    fn stop(&self, _a: &Activation, _keep: Option<&str>) -> Result<Option<String>> {
        Ok(None)
    }

    /// Runs a schema tool's program (`argv`, with `env`) for the first of `candidates`
    /// (newest first) that can run it here: in its tree, or, with `service`, in that
    /// compose service's container of its images. Which release ran it, and what it did.
    fn exec(
        &self,
        candidates: &[ReleaseFacts],
        service: Option<&str>,
        argv: &[String],
        env: &[(String, String)],
    ) -> Result<(ReleaseId, Ran)> {
        if let Some(service) = service {
            return Err(Error::Usage {
                what: format!("database.run_in: `{service}` names a container, and this runtime runs none"),
            });
        }
        exec_in_tree(self, candidates, argv, env)
    }

    /// Where the switch happens.
    fn placement(&self) -> Placement {
        Placement::Hosts
    }

    /// Writes the commit's tree (a tar stream) as release `id`; false when it was
    /// already there.
    fn export(&self, _id: ReleaseId, _commit: &str, _tree: &mut dyn std::io::Read) -> Result<bool> {
        Ok(false)
    }

    /// Variables the user's programs (`build`, `restart`) get from this runtime
    /// (compose: `COMPOSE_PROJECT_NAME`).
    fn program_env(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Makes the release the one that serves. Returns a line for the record; the
    /// line says so when it was already in place.
    fn activate(&self, a: &Activation) -> Result<String>;

    /// Restarts what serves `a.release` (one service of it, when named), bringing it
    /// back first if it is gone; for runtimes whose app lastgood does not start with
    /// `run` or `restart`. None: there is nothing of the runtime's own to restart.
    fn restart(&self, _a: &Activation, _service: Option<&str>) -> Result<Option<String>> {
        Ok(None)
    }

    /// The services a release runs, for `restart --service` (None: this runtime has no
    /// services to name).
    fn services(&self, _release: &ReleaseFacts) -> Option<Vec<String>> {
        None
    }

    /// Removes the serving release (undoing a first deploy), where that means something.
    fn deactivate(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// Whether a rollback to this release can run here.
    fn ready(&self, release: &ReleaseFacts) -> std::result::Result<(), NotReady>;

    /// The folder the release's programs (build, restart, command checks) run in.
    fn workdir(&self, id: ReleaseId) -> PathBuf;

    /// The release's source tree, where its migrations and its schema tool's files
    /// are (None: this runtime keeps no tree of a release).
    fn tree(&self, _id: ReleaseId) -> Option<PathBuf> {
        None
    }

    /// Deletes a release's artifact (retention).
    fn remove(&self, _id: ReleaseId) -> Result<()> {
        Ok(())
    }

    /// What serves now, as far as this runtime can tell without changing anything.
    fn observe(&self) -> Observed {
        Observed::default()
    }

    /// A step as a plan shows it, in this runtime's words.
    fn describe(&self, step: &Step, facts: &StepFacts) -> String {
        generic(step, facts)
    }
}

/// Runs `argv` in the tree of the first candidate that has one here.
pub fn exec_in_tree<R: Runtime + ?Sized>(
    rt: &R,
    candidates: &[ReleaseFacts],
    argv: &[String],
    env: &[(String, String)],
) -> Result<(ReleaseId, Ran)> {
    let Some((id, dir)) = candidates.iter().find_map(|c| rt.tree(c.id).filter(|d| d.is_dir()).map(|d| (c.id, d)))
    else {
        let names: Vec<String> = candidates.iter().map(|c| c.id.to_string()).collect();
        return Err(Error::Step {
            message: format!("no release directory of {} is here to run the schema tool in", names.join(", ")),
        });
    };
    let first = argv.first().cloned().unwrap_or_default();
    let out = std::process::Command::new(crate::exec::program_path(&first, &dir))
        .args(argv.iter().skip(1))
        .current_dir(&dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(Error::io("run the schema tool in", &dir))?;
    Ok((id, Ran::of(out)))
}

/// What a plan knows about a step beyond the step itself, for its description.
#[derive(Debug, Clone, Default)]
pub struct StepFacts {
    /// The version of the release the step names, when it names one.
    pub version: Option<String>,
    /// The step returns to an older release (a rollback, an automatic rollback, an
    /// abort) rather than shipping a new one.
    pub back: bool,
}

/// The words every runtime shares for the steps that are not its own.
pub fn generic(step: &Step, facts: &StepFacts) -> String {
    step.words(facts.version.as_deref())
}
