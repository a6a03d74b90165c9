//! `lastgood diff` and `lastgood diagnose`: knowing what to roll back.
//!
//! Before any rollback someone must decide whether the problem is code, configuration
//! or the database. `diagnose` compares the release serving now with the last good one
//! on each of the three, and also the config files in place with the snapshot they
//! were written from (an edit made after the deploy is a prime suspect that no release
//! comparison shows); the verdict on configuration says which of the two it is, and the
//! config section lists both. It then ends with the runbook's decision and a command
//! checked against the rollback planner ([`super::decision`]).
//!
//! "Code" is the source tree outside the schema's migrations (for Alembic, where its
//! `alembic.ini` puts the scripts), so a release that only adds migrations is a
//! database change. "Database" is the recorded schema revisions; for releases built
//! from source whose schema tool recorded none, the migrations in their commits.

use serde::Serialize;

use super::Engine;
use super::decision::{Decision, Findings};
use super::in_place;
use crate::config::{Adapter, Environment};
use crate::database::alembic;
use crate::database::environment::EnvDatabase;
use crate::error::{Error, Result};
use crate::ledger::Release;
use crate::model::{CommitId, ReleaseState};
use crate::report::{ConfigChange, Diff, ReleaseSummary, in_place_changes};

/// `lastgood diff ENV FROM TO`.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub environment: String,
    pub from: ReleaseSummary,
    pub to: ReleaseSummary,
    pub diff: Diff,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub environment: String,
    pub current: ReleaseSummary,
    pub last_good: ReleaseSummary,
    /// What differs between the last good release and the current one (the code
    /// outside the migrations folder).
    pub code: bool,
    /// Configuration changed: between the releases, or edited in place since the deploy.
    pub config: bool,
    pub database: bool,
    /// The config files in effect (those of the release that wrote them last, the
    /// current one unless a config rollback wrote another's) differ from the last good
    /// release's: what `diff.config` lists.
    pub config_between_releases: bool,
    /// Config files whose content in place differs from the snapshot they were written from.
    pub config_edited_since_deploy: Vec<String>,
    /// Those edits, key by key (secrets masked), from the snapshot to what is in place.
    pub config_in_place: Vec<ConfigChange>,
    /// The release whose config files are in place (`config_in_place` compares with its snapshot).
    pub config_release: u64,
    /// Migrations applied ahead of the current release's code (0 when none).
    pub schema_ahead: u32,
    /// What could not be compared, and why; the issue is then unknown.
    pub unknown: Vec<String>,
    #[serde(flatten)]
    pub decision: Decision,
    pub diff: Diff,
}

impl Engine {
    pub fn diff(&self, env_name: &str, from: &str, to: &str) -> Result<Comparison> {
        let env = self.config.environment(env_name)?.clone();
        let current = self.ledger().env_state(&env.name)?.current;
        let from = self.resolve_target(&env, &env.parse_target(from)?, current)?;
        let to = self.resolve_target(&env, &env.parse_target(to)?, current)?;
        Ok(Comparison {
            environment: env.name.to_string(),
            diff: Diff::between(self.ledger(), Some(&env), Some(&from), &to),
            from: ReleaseSummary::of(&from),
            to: ReleaseSummary::of(&to),
        })
    }

    pub fn diagnose(&self, env_name: &str) -> Result<Diagnosis> {
        let env = self.config.environment(env_name)?.clone();
        let state = self.ledger().env_state(&env.name)?;
        let current_id = state.current.ok_or_else(|| Error::Usage {
            what: format!("nothing is deployed to `{}` yet: there is nothing to diagnose", env.name),
        })?;
        let current = self
            .ledger()
            .release(&env.name, current_id)?
            .ok_or_else(|| Error::Usage { what: format!("release {current_id} is missing from the ledger") })?;
        let config_of = match state.config_release {
            Some(c) if c != current.id => self.must_release(&env.name, c)?,
            _ => current.clone(),
        };
        let edited = in_place::edited(&env, &config_of, self.fleet(&env).as_deref());
        // A current release that passed its checks, whose config files were edited by
        // hand since: the last known good state is that release as it was deployed,
        // whatever changed before it.
        let good = if current.state == ReleaseState::Good && config_of.id == current.id && !edited.is_empty() {
            current.clone()
        } else {
            self.ledger().last_good(&env.name, Some(current_id))?.ok_or_else(|| Error::Usage {
                what: format!("`{}` has no good release other than the current one to compare with", env.name),
            })?
        };
        let mut unknown = Vec::new();
        let code = match (&current.commit, &good.commit) {
            (Some(a), Some(b)) if a != b => {
                // A commit that only adds migrations is a database change, not a code change.
                let migrations = migration_paths(&env, a);
                let excluded: Vec<&str> = migrations.iter().map(String::as_str).collect();
                crate::git::differs_outside(&env.source, b, a, &excluded).unwrap_or_else(|e| {
                    unknown.push(format!("the code: cannot compare the commits: {e}"));
                    true
                })
            }
            // Opaque versions (runtimes other than releases, without `source`): the
            // version is what the code is.
            (None, None) => current.version != good.version,
            (a, b) => a != b,
        };
        let database = self.schema_changed(&env, &current, &good, &mut unknown) || state.schema_ahead > 0;
        let live: Vec<(String, Option<Vec<u8>>)> = edited.iter().map(|e| (e.name.clone(), e.content.clone())).collect();
        let edited: Vec<String> = edited.into_iter().map(|e| e.name).collect();
        let config_between = config_of.config != good.config;
        let decision = self.decide(&Findings {
            env: &env,
            current: &current,
            good: &good,
            config_of: &config_of,
            code,
            config_between,
            edited: &edited,
            database,
            schema_ahead: state.schema_ahead,
            unknown: &unknown,
        });
        // The config in effect is what the releases' comparison is about.
        let mut in_effect = current.clone();
        in_effect.config = config_of.config.clone();
        Ok(Diagnosis {
            environment: env.name.to_string(),
            diff: Diff::between(self.ledger(), Some(&env), Some(&good), &in_effect),
            current: ReleaseSummary::of(&current),
            last_good: ReleaseSummary::of(&good),
            code,
            config: config_between || !edited.is_empty(),
            database,
            config_between_releases: config_between,
            config_in_place: in_place_changes(self.ledger(), &config_of, &live),
            config_edited_since_deploy: edited,
            config_release: config_of.id.0,
            schema_ahead: state.schema_ahead,
            unknown,
            decision,
        })
    }

    /// Whether the schema differs between the two releases: their recorded revisions
    /// when both are known; else, for releases built from source, whether their commits
    /// differ in the migrations folder (a release whose schema tool never reported a
    /// revision, as a compose release whose migrations run in its container may be).
    fn schema_changed(&self, env: &Environment, current: &Release, good: &Release, unknown: &mut Vec<String>) -> bool {
        if !env.database.as_ref().is_some_and(EnvDatabase::has_migrations) {
            return current.schema_revision != good.schema_revision;
        }
        match (&current.schema_revision, &good.schema_revision, &current.commit, &good.commit) {
            (Some(a), Some(b), _, _) => a != b,
            (None, None, Some(a), Some(b)) if a != b => {
                let paths = migration_paths(env, a);
                let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
                if paths.is_empty() {
                    unknown.push(
                        "the database: no schema revision was recorded and the migrations folder is unknown".into(),
                    );
                    return false;
                }
                crate::git::differs_within(&env.source, b, a, &paths).unwrap_or_else(|e| {
                    unknown.push(format!("the database: cannot compare the migrations of the two commits: {e}"));
                    false
                })
            }
            (a, b, _, _) => a != b,
        }
    }
}

/// The folders of the source tree (relative to `source`) that hold the schema's
/// migrations at `commit`: a commit that changes only those is a database change, not
/// a code change. For Alembic, its scripts are where its `alembic.ini` says
/// (`script_location`), relative to the folder it runs in (`migrations`, else the
/// release); a `migrations` of "." is the whole tree and is never excluded.
fn migration_paths(env: &Environment, commit: &CommitId) -> Vec<String> {
    let Some(db) = env.database.as_ref() else { return vec![] };
    let folder = db
        .migrations
        .as_ref()
        .map(|m| m.to_string_lossy().trim_start_matches("./").trim_end_matches('/').to_owned())
        .filter(|m| !m.is_empty() && m != ".");
    let Adapter::Alembic(argv) = &db.adapter else { return folder.into_iter().collect() };
    let base = folder.clone().map(|f| format!("{f}/")).unwrap_or_default();
    // `alembic -c path/alembic.ini` names its own file.
    let named = argv.iter().position(|a| a == "-c" || a == "--config").and_then(|i| argv.get(i + 1)).cloned();
    let named = named.or_else(|| argv.iter().find_map(|a| a.strip_prefix("--config=").map(str::to_owned)));
    let ini = format!("{base}{}", named.as_deref().unwrap_or("alembic.ini"));
    let ini_dir = ini.rsplit_once('/').map(|(d, _)| format!("{d}/")).unwrap_or_default();
    match crate::git::file_at(&env.source, commit, &ini) {
        Ok(Some(text)) => match alembic::script_location(&String::from_utf8_lossy(&text)) {
            Some(location) => vec![format!("{ini_dir}{location}")],
            None => vec![],
        },
        // No alembic.ini there: `migrations` names the scripts' folder itself.
        _ => folder.into_iter().collect(),
    }
}
