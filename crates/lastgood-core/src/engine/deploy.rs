//! Deploy: resolve the version, snapshot the config files, plan, then ship the new
//! release under the lock (export, build, migrate up, switch, restart, verify, clean
//! up). When verification fails, the journal returns to the last good release by
//! itself.

use std::collections::BTreeMap;

use super::Engine;
use super::preview::{self, PlanView};
use super::run::Report;
use crate::error::{Error, Result};
use crate::journal::{self, Progress};
use crate::ledger::{NewOperation, NewRelease, Release};
use crate::model::{CommitId, OperationKind, ReleaseState, Scope, Version};
use crate::plan::{self, Phase, placement};
use crate::runtime::{self, Site};

#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub reason: Option<String>,
    pub verify: bool,
    pub auto_rollback: bool,
    /// Preview the migrations the deploy would apply, with their exact SQL (reads the
    /// database; a plan without it does not).
    pub sql: bool,
    /// Consent to lowering the major version.
    pub allow_major: bool,
    /// `--yes`: overwrite a pipeline parameter someone changed by hand.
    pub yes: bool,
    /// `--monitor DURATION` / `--no-monitor` (zero): the bake window's length instead of
    /// `[monitor] duration`.
    pub monitor: Option<std::time::Duration>,
    /// `--require-ready`: refuse when the release a failure would return to is not ready.
    pub require_ready: bool,
}

impl Engine {
    /// Plans a deploy: resolves the version, snapshots config files, reads what
    /// serves now. Changes nothing.
    pub fn plan_deploy(&self, env_name: &str, version: &str, opts: &DeployOptions) -> Result<(PlanView, NewRelease)> {
        let env = self.env(env_name)?;
        env.check_programs()?;
        let (version, commit) = if env.versions_in_source {
            let version = Version::parse(version)?;
            let commit = crate::git::resolve(&env.source, &version)?;
            (version, Some(commit))
        } else {
            (Version::opaque(version)?, None)
        };
        let site = Site::local(&env);
        let rt = runtime::of(&site);
        // What the runtime refuses (an image not on the engine, a commit that does not
        // fast-forward a GitOps branch) is listed in a preview and refused by a run.
        let mut refused = Vec::new();
        match rt.check_version(version.as_str()) {
            Ok(()) => {}
            Err(Error::Refused { refusal, .. }) => refused.push(*refusal),
            Err(other) => return Err(other),
        }
        let mut config = BTreeMap::new();
        let mut blobs = Vec::new();
        for f in &env.config_files {
            let content = std::fs::read(&f.path).map_err(|source| Error::ConfigFile {
                name: f.name.clone(),
                path: f.path.clone(),
                source,
            })?;
            let sha = crate::digest::sha256_hex(&content);
            config.insert(f.name.clone(), sha.clone());
            blobs.push((sha, content));
        }
        let id = self.ledger.next_release_id(&env.name)?;
        let before = self.ledger.release_before(&env.name, id)?;
        let (commit, features) = match &commit {
            Some(c) => (
                commit.clone(),
                crate::git::subjects(&env.source, before.as_ref().and_then(|r| r.commit.as_ref()), c, 50)?,
            ),
            // A runtime that resolves versions itself (GitOps branch mode) names the commit.
            None => match rt
                .resolve(version.as_str(), before.as_ref().and_then(|r| r.commit.as_ref()).map(|c| c.as_str()))?
            {
                Some((c, features)) => (Some(CommitId::parse(&c)?), features),
                None => (None, Vec::new()),
            },
        };
        let state = self.ledger.env_state(&env.name)?;
        let from = state.current.map(|c| self.must_release(&env.name, c)).transpose()?;
        let release = NewRelease { id, version: version.to_string(), commit: commit.clone(), features, config, blobs };
        let to = Release {
            id,
            version: release.version.clone(),
            commit: commit.clone(),
            state: ReleaseState::Pending,
            schema_revision: None,
            created_at: self.ctx.now(),
            created_by: self.ctx.actor(),
            reason: opts.reason.clone(),
            operation: None,
            features: release.features.clone(),
            config: release.config.clone(),
            artifact: false,
            deploy_commit: None,
        };
        let placed = placement::place(
            &env,
            plan::with_bake(
                plan::deploy(journal::shape(&env, opts.verify), id, commit.clone()),
                id,
                opts.monitor.unwrap_or(env.monitor.duration),
            ),
            Phase::Forward,
            OperationKind::Deploy,
        );
        let new_version = to.version.clone();
        let steps = preview::describe(rt.as_ref(), placed, |s| s.release().map(|_| new_version.clone()), false);
        let mut notes = Vec::new();
        if env.checks.is_empty() {
            notes.push("no health checks are configured: the release will count as good once it starts".into());
        } else if !opts.verify {
            notes.push("--no-verify: health checks are skipped and the release will count as good".into());
        }
        if !opts.auto_rollback {
            notes.push("--no-auto-rollback: a failed release stays current".into());
        }
        let backs_up = env.database.as_ref().is_some_and(|d| d.backup != crate::config::BackupPolicy::Never);
        if let Some(dest) = self.backup_destination(&env).filter(|_| backs_up) {
            notes.push(format!("a backup taken before migrations that need one is written to {dest}"));
        }
        let (migrations, sql, mut refusals) = match (&commit, opts.sql && env.versions_in_source) {
            (Some(commit), true) => self.preview_ups(&env, commit)?,
            _ => (vec![], None, vec![]),
        };
        refusals.extend(refused);
        self.guards(&env, from.as_ref(), &to.version, opts.allow_major, &mut refusals);
        let view = PlanView {
            kind: OperationKind::Deploy,
            environment: env.name.to_string(),
            from,
            to,
            scope: Scope::Full,
            steps,
            notes,
            confirm: vec![],
            migrations,
            sql,
            in_place: false,
            runtime: env.runtime.name(),
            refusals,
        };
        Ok((view, release))
    }

    /// The migrations a deploy of `commit` would apply and their exact SQL, read from
    /// the commit's tree exported to a temporary folder (nothing is deployed). A
    /// database that cannot be reached is a refusal in the preview, not an error.
    #[allow(clippy::type_complexity)]
    pub(crate) fn preview_ups(
        &self,
        env: &crate::config::Environment,
        commit: &crate::model::CommitId,
    ) -> Result<(Vec<crate::database::environment::Verdict>, Option<String>, Vec<crate::refusal::Refusal>)> {
        let Some(db) = crate::database::environment::EnvDatabase::of(env)? else { return Ok((vec![], None, vec![])) };
        // A tool that runs on a host or in the release's container has no release to
        // run in before the deploy builds it: its migrations are planned when they run.
        if !crate::database::environment::EnvDatabase::has_migrations(db.config) || crate::toolsite::placed(env) {
            return Ok((vec![], None, vec![]));
        }
        let tmp = crate::git::unpack_to_temp(&env.source, commit)?;
        let plan = db.tool(Some(tmp.path()), &self.ctx.actor()).and_then(|mut t| t.plan_up(None));
        match plan {
            Ok(p) => Ok((p.verdicts, p.sql, vec![])),
            Err(e) => match self.unreachable(env, e) {
                Error::Refused { refusal, .. } => Ok((vec![], None, vec![*refusal])),
                other => Err(other),
            },
        }
    }

    pub fn deploy(
        &self,
        env_name: &str,
        version: &str,
        opts: &DeployOptions,
        progress: &mut dyn Progress,
    ) -> Result<Report> {
        let env = self.env(env_name)?;
        // Preflight before the lock: a bad version or unreadable config is a usage error,
        // a guard's refusal changes nothing.
        let (view, _) = self.plan_deploy(env_name, version, opts)?;
        if let Some(refused) = view.refused(|r| super::guard::consented(r, opts.yes, opts.allow_major)) {
            return Err(refused);
        }
        self.preflight_database(&env)?;
        self.preflight_runtime(&env, "deploy")?;
        let rehearsal = self.rehearse_at_deploy(&env, &view, progress)?;
        if opts.require_ready {
            self.require_ready(&env, &view, rehearsal.as_ref())?;
        }
        let held = self.take_lock(&env, opts.reason.as_deref(), progress)?;
        crate::failpoint::hit("locked");
        self.refuse_interrupted(&env)?;
        // Plan again under the lock: the release id and `from` must not race.
        let (view, release) = self.plan_deploy(env_name, version, opts)?;
        if let Some(refused) = view.refused(|r| super::guard::consented(r, opts.yes, opts.allow_major)) {
            return Err(refused);
        }
        let new = NewOperation {
            to: release.id,
            auto_rollback: opts.auto_rollback,
            release: Some(release),
            ..self.new_operation(&view, opts.reason.clone(), false)
        };
        self.execute_with(&env, held, new, rehearsal.into_iter().collect(), progress)
    }
}
