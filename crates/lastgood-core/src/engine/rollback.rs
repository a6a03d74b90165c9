//! Rollback: name a target (the last good release by default), plan the way back
//! (stop, back up, migrate down, switch, restore config, restart, verify, as far as
//! the scope reaches), then run it under the lock. A rollback creates no release: it
//! makes an existing one current again, and nothing is rebuilt.

use super::Engine;
use super::preview::{self, PlanView};
use super::run::Report;
use crate::config::Environment;
use crate::database::environment::{self, EnvDatabase};
use crate::error::{Error, Result};
use crate::journal::{self, Progress};
use crate::ledger::{EnvState, Release};
use crate::model::{OperationKind, ReleaseId, ReleaseState, Scope, Target};
use crate::plan::{self, Phase, Step, placement};
use crate::refusal::Refusal;
use crate::runtime::{self, ReleaseFacts, Site};
use crate::safety::{self, Consent, Stage, Way};
use crate::toolsite;

#[derive(Debug, Clone)]
pub struct RollbackOptions {
    pub target: Target,
    pub scope: Scope,
    pub reason: Option<String>,
    /// Consent to destructive down migrations (a backup is taken first).
    pub allow_data_loss: bool,
    /// Consent to lowering the major version.
    pub allow_major: bool,
}

impl Engine {
    /// Plans a rollback; changes nothing and never refuses: what a real run would
    /// refuse is in the plan's `refusals`.
    pub fn plan_rollback(&self, env_name: &str, opts: &RollbackOptions) -> Result<PlanView> {
        let env = self.env(env_name)?;
        env.check_programs()?;
        if opts.scope == Scope::Db && !env.database.as_ref().is_some_and(EnvDatabase::has_migrations) {
            return Err(Error::Usage {
                what: format!("--scope db: environment `{}` has no [database] with migrations", env.name),
            });
        }
        let state = self.ledger.env_state(&env.name)?;
        self.mark_state(&env, &state);
        let from = state.current.map(|c| self.must_release(&env.name, c)).transpose()?;
        // A schema left ahead of the code (by an automatic rollback that would have had
        // to destroy data) is what `--scope db` reverts by default: back to the current
        // release's own revision, only the migrations that are ahead.
        let target = match (opts.scope, &opts.target, state.current) {
            (Scope::Db, Target::LastGood, Some(current)) if state.schema_ahead > 0 => Target::Id(current),
            (_, t, _) => t.clone(),
        };
        let to = self.resolve_target(&env, &target, state.current)?;
        let mut refusals = Vec::new();
        let mut drift = false;
        if opts.scope.includes_code() {
            match self.fleet(&env) {
                Some(fleet) => match self.preflight_fleet(&fleet, "rollback", Some(&to)) {
                    Ok(hosts) => drift = hosts.iter().any(|(_, current)| *current != Some(to.id.0)),
                    Err(Error::Refused { refusal, .. }) => refusals.push(*refusal),
                    Err(e) => return Err(e),
                },
                None => {
                    let site = Site::local(&env);
                    let rt = runtime::of(&site);
                    let facts = ReleaseFacts::of(&to);
                    if let Err(why) = rt.ready(&facts) {
                        let what = format!("release {} ({})", to.id, to.version);
                        refusals.push(Refusal::NotReady(self.elsewhere(&env, what, &to.created_by).unwrap_or(why)));
                    }
                    if state.current != Some(to.id) {
                        if let Err(refusal) = rt.check_back(&facts, &self.known_commits(&env.name)?) {
                            refusals.push(refusal);
                        }
                    }
                }
            }
            if state.current != Some(to.id) {
                self.guards(&env, from.as_ref(), &to.version, opts.allow_major, &mut refusals);
            }
        }
        let mut confirm = Vec::new();
        if opts.target != Target::LastGood {
            if matches!(to.state, ReleaseState::Bad | ReleaseState::Failed) {
                confirm.push(format!("{} ({}) is marked {}", to.id, to.version, to.state));
            }
            if let Some(f) = &from {
                if to.id > f.id {
                    confirm.push(format!("{} is newer than the current release {}", to.id, f.id));
                }
            }
        }
        if !confirm.is_empty() {
            refusals.push(Refusal::Unconfirmed { reasons: confirm.clone() });
        }
        let mut notes = Vec::new();
        if env.checks.is_empty() {
            notes.push("no health checks are configured: the rollback is not verified".into());
        }
        let schema = self.plan_schema(&env, &state, from.as_ref(), &to, opts, &mut notes, &mut refusals)?;
        if let Some(dest) = self.backup_destination(&env).filter(|_| schema.change.backup) {
            notes.push(format!("the backup before the migration is written to {dest}"));
        }
        // A host that runs something else than the ledger says is switched too.
        let current = if drift { None } else { state.current };
        let shape = journal::shape(&env, true);
        let placed = placement::place(
            &env,
            plan::rollback(shape, current, to.id, opts.scope, schema.change),
            Phase::Forward,
            OperationKind::Rollback,
        );
        // Files edited by hand since the target's config was written are not in place.
        let edited =
            opts.scope.includes_config() && !super::in_place::edited(&env, &to, self.fleet(&env).as_deref()).is_empty();
        let in_place = !drift && !edited && in_place(&state, &to, opts.scope, &placed);
        if in_place {
            notes.push(format!("{} is already in place for scope {}: nothing to do", to.id, opts.scope));
        }
        let versions = [Some(&to), from.as_ref()];
        let version_of = |s: &Step| {
            let id = s.release()?;
            versions.iter().flatten().find(|r| r.id == id).map(|r| r.version.clone())
        };
        let site = Site::local(&env);
        let rt = runtime::of(&site);
        let steps = preview::describe(rt.as_ref(), placed, version_of, true);
        Ok(PlanView {
            kind: OperationKind::Rollback,
            environment: env.name.to_string(),
            from,
            to,
            scope: opts.scope,
            steps,
            notes,
            confirm,
            migrations: schema.migrations,
            sql: schema.sql,
            in_place,
            runtime: env.runtime.name(),
            refusals,
        })
    }

    /// What a rollback does to the database: the downs to the target's revision, their
    /// SQL and verdicts, and what the data-safety gate says about them.
    #[allow(clippy::too_many_arguments)]
    fn plan_schema(
        &self,
        env: &Environment,
        state: &EnvState,
        from: Option<&Release>,
        to: &Release,
        opts: &RollbackOptions,
        notes: &mut Vec<String>,
        refusals: &mut Vec<Refusal>,
    ) -> Result<SchemaPlan> {
        let mut out = SchemaPlan::default();
        let schema_moves = from.is_some_and(|f| f.schema_revision != to.schema_revision) || state.schema_ahead > 0;
        if !(journal::shape(env, true).migrations && opts.scope.includes_db() && schema_moves) {
            return Ok(out);
        }
        let Some(db) = EnvDatabase::of(env)? else { return Ok(out) };
        // The newest release's files know every revision (and how to undo its own): one
        // whose migrations stay applied ahead of the code, else the newer of the two.
        let mut releases: Vec<ReleaseId> = [self.ledger().schema_ahead_release(&env.name)?, state.current, Some(to.id)]
            .into_iter()
            .flatten()
            .collect();
        releases.sort_unstable_by(|a, b| b.cmp(a));
        releases.dedup();
        let mut tool = if toolsite::placed(env) {
            // On the first host or in a container: the first of them that is there.
            let candidates = releases
                .iter()
                .map(|r| self.must_release(&env.name, *r).map(|r| ReleaseFacts::of(&r)))
                .collect::<Result<_>>()?;
            toolsite::tool(&db, self.fleet(env), candidates, None, &self.ctx.actor())
        } else {
            let site = Site::local(env);
            let rt = runtime::of(&site);
            let root = releases.iter().filter_map(|r| rt.tree(*r)).find(|d| d.is_dir());
            db.tool(root.as_deref(), &self.ctx.actor())
        }
        .map_err(|e| self.unreachable(env, e))?;
        let downs = tool.plan_to(to.schema_revision.as_deref()).map_err(|e| self.unreachable(env, e))?;
        let way = Way::from(downs.direction);
        let destructive = environment::destructive(&downs.verdicts);
        out.change.migrate_down = way == Way::Down && !downs.is_empty();
        out.change.migrate_up = way == Way::Up && !downs.is_empty();
        let moves = !downs.is_empty();
        let m = safety::Migrations { way, count: downs.count, destructive: &destructive };
        match safety::gate(m, Consent::of(opts.allow_data_loss), db.config.backup, Stage::Plan) {
            Ok(clearance) => {
                out.change.backup = moves && clearance.backup_first;
                if !destructive.is_empty() {
                    notes.push(format!("destructive, with your consent: {} (backed up first)", destructive.join(", ")));
                }
            }
            Err(refusal) => {
                // Shown with its backup step, as it would run once consented to.
                out.change.backup = moves;
                refusals.push(refusal.into());
            }
        }
        out.migrations = downs.verdicts.clone();
        out.sql = downs.sql.clone();
        Ok(out)
    }

    /// A runtime that cannot act refuses the rollback before anything changes; then
    /// the plan's refusals do, unless consented to.
    pub fn rollback(
        &self,
        env_name: &str,
        opts: &RollbackOptions,
        confirmed: bool,
        progress: &mut dyn Progress,
    ) -> Result<Option<Report>> {
        let view = self.plan_rollback(env_name, opts)?;
        self.rollback_planned(env_name, opts, &view, confirmed, progress)
    }

    /// [`Engine::rollback`] with the plan the caller already made (and showed) with the
    /// same options: its refusals end it before the lock is taken; under the lock the
    /// plan is made again, since the ledger or the database may have moved meanwhile.
    pub fn rollback_planned(
        &self,
        env_name: &str,
        opts: &RollbackOptions,
        view: &PlanView,
        confirmed: bool,
        progress: &mut dyn Progress,
    ) -> Result<Option<Report>> {
        let env = self.env(env_name)?;
        let consented = |r: &Refusal| super::guard::consented(r, confirmed, opts.allow_major);
        if let Some(refused) = view.refused(consented) {
            return Err(refused);
        }
        if opts.scope.includes_code() && !view.in_place && env.hosts.is_empty() {
            self.preflight_runtime(&env, "rollback")?;
        }
        let held = self.take_lock(&env, opts.reason.as_deref(), progress)?;
        self.refuse_interrupted(&env)?;
        let view = self.plan_rollback(env_name, opts)?;
        if let Some(refused) = view.refused(consented) {
            return Err(refused);
        }
        if view.in_place {
            return Ok(None);
        }
        let new = self.new_operation(&view, opts.reason.clone(), opts.allow_data_loss);
        self.execute(&env, held, new, progress).map(Some)
    }
}

impl Engine {
    /// The commits the environment's recent releases name (source and deploy commits).
    fn known_commits(&self, env: &crate::model::EnvName) -> Result<Vec<String>> {
        Ok(self
            .ledger
            .releases(env, 200)?
            .iter()
            .flat_map(|r| [r.commit.as_ref(), r.deploy_commit.as_ref()])
            .flatten()
            .map(|c| c.as_str().to_owned())
            .collect())
    }
}

/// The database part of a rollback plan.
#[derive(Default)]
struct SchemaPlan {
    change: plan::SchemaChange,
    migrations: Vec<environment::Verdict>,
    sql: Option<String>,
}

/// Whether the target is already in place for this scope: its code current, its config
/// files in place, and no migration to revert.
fn in_place(state: &EnvState, to: &Release, scope: Scope, steps: &[(Step, Phase, String)]) -> bool {
    let code = !scope.includes_code() || state.current == Some(to.id);
    let config = !scope.includes_config() || state.config_release == Some(to.id);
    let schema = !steps.iter().any(|(s, _, _)| matches!(s, Step::MigrateDown { .. } | Step::MigrateUp { .. }));
    code && config && schema
}
