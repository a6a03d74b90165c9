//! `lastgood restart`: the runbook's "configuration problem -> restart" as an
//! operation. What serves the current release is restarted (its `run` process, its
//! `restart` program, or its compose services, all or one), then checked; a release
//! whose containers are gone is brought back first. Under the lock, journaled, audited
//! and reported like any operation; no release changes state.

use super::Engine;
use super::preview::{self, PlanView};
use super::run::Report;
use crate::error::{Error, Result};
use crate::journal::{self, Progress};
use crate::model::{ContainerName, OperationKind, Scope};
use crate::plan::{self, Phase, placement};
use crate::runtime::{self, ReleaseFacts, Site};

#[derive(Debug, Clone)]
pub struct RestartOptions {
    /// One service (compose), else everything that serves.
    pub service: Option<String>,
    pub reason: Option<String>,
}

impl Engine {
    /// Plans a restart of what serves now; changes nothing.
    pub fn plan_restart(&self, env_name: &str, opts: &RestartOptions) -> Result<PlanView> {
        let env = self.env(env_name)?;
        if let Some(s) = &opts.service {
            ContainerName::parse(s).map_err(|e| Error::Usage { what: format!("--service: {e}") })?;
        }
        let state = self.ledger.env_state(&env.name)?;
        let current = state.current.map(|c| self.must_release(&env.name, c)).transpose()?.ok_or_else(|| {
            Error::Usage { what: format!("nothing is deployed to `{}` yet: there is nothing to restart", env.name) }
        })?;
        let site = Site::local(&env);
        let rt = runtime::of(&site);
        if let Some(s) = &opts.service {
            match rt.services(&ReleaseFacts::of(&current)) {
                None => {
                    return Err(Error::Usage {
                        what: format!("--service {s}: runtime `{}` has no services to name", env.runtime.name()),
                    });
                }
                Some(known) if !known.is_empty() && !known.contains(s) => {
                    return Err(Error::Usage {
                        what: format!(
                            "--service {s}: {} runs no service `{s}` (it runs {})",
                            current.id,
                            known.join(", ")
                        ),
                    });
                }
                Some(_) => {}
            }
        }
        let shape = journal::shape(&env, true);
        let placed = placement::place(
            &env,
            plan::restart(shape, current.id, opts.service.clone()),
            Phase::Forward,
            OperationKind::Restart,
        );
        let version = current.version.clone();
        let steps = preview::describe(rt.as_ref(), placed, |s| s.release().map(|_| version.clone()), false);
        let mut notes = Vec::new();
        if env.checks.is_empty() {
            notes.push("no health checks are configured: the restart is not verified".into());
        }
        Ok(PlanView {
            kind: OperationKind::Restart,
            environment: env.name.to_string(),
            from: Some(current.clone()),
            to: current,
            scope: Scope::Full,
            steps,
            notes,
            confirm: vec![],
            migrations: vec![],
            sql: None,
            in_place: false,
            runtime: env.runtime.name(),
            refusals: vec![],
        })
    }

    /// Restarts what serves the current release, then verifies it.
    pub fn restart(&self, env_name: &str, opts: &RestartOptions, progress: &mut dyn Progress) -> Result<Report> {
        let env = self.env(env_name)?;
        self.plan_restart(env_name, opts)?;
        self.preflight_runtime(&env, "restart")?;
        let held = self.take_lock(&env, opts.reason.as_deref(), progress)?;
        self.refuse_interrupted(&env)?;
        let view = self.plan_restart(env_name, opts)?;
        let new = self.new_operation(&view, opts.reason.clone(), false);
        self.execute(&env, held, new, progress)
    }
}
