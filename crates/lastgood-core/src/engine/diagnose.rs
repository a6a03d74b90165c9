//! `lastgood diff` and `lastgood diagnose`: knowing what to roll back.
//!
//! Before any rollback someone must decide whether the problem is code, configuration
//! or the database. `diagnose` compares the release serving now with the last good one
//! on each of the three, and also the config files in place with the snapshot the
//! current release was deployed with (an edit made after the deploy is a prime
//! suspect that no release comparison shows), then recommends the narrowest rollback
//! scope that undoes everything that changed, with the command to run.

use serde::Serialize;

use super::Engine;
use crate::digest::sha256_hex;
use crate::error::{Error, Result};
use crate::model::Scope;
use crate::report::{Diff, ReleaseSummary};

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
    /// What differs between the last good release and the current one.
    pub code: bool,
    pub config: bool,
    pub database: bool,
    /// Config files whose content in place differs from the current release's snapshot.
    pub config_edited_since_deploy: Vec<String>,
    /// The narrowest scope that undoes what changed; None when nothing did.
    pub scope: Option<Scope>,
    pub command: Option<String>,
    pub explanation: String,
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
        let good = self.ledger().last_good(&env.name, Some(current_id))?.ok_or_else(|| Error::Usage {
            what: format!("`{}` has no good release other than the current one to compare with", env.name),
        })?;
        // A commit that only adds migrations is a database change, not a code change.
        let migrations: Vec<String> = env
            .database
            .as_ref()
            .and_then(|d| d.migrations.as_ref())
            .map(|m| m.to_string_lossy().into_owned())
            .into_iter()
            .collect();
        let code = match (&current.commit, &good.commit) {
            (Some(a), Some(b)) if a != b => {
                let excluded: Vec<&str> = migrations.iter().map(String::as_str).collect();
                crate::git::differs_outside(&env.source, b, a, &excluded).unwrap_or(true)
            }
            // Opaque versions (runtimes other than releases, without `source`): the
            // version is what the code is.
            (None, None) => current.version != good.version,
            (a, b) => a != b,
        };
        let database = current.schema_revision != good.schema_revision;
        let mut edited = Vec::new();
        for f in &env.config_files {
            let live = std::fs::read(&f.path).ok().map(|b| sha256_hex(&b));
            if live.as_ref() != current.config.get(&f.name) {
                edited.push(f.name.clone());
            }
        }
        let config = current.config != good.config || !edited.is_empty();
        let changed: Vec<&str> = [(code, "code"), (config, "configuration"), (database, "database")]
            .iter()
            .filter(|c| c.0)
            .map(|c| c.1)
            .collect();
        let scope = match (code, config, database) {
            (false, false, false) => None,
            (true, false, false) => Some(Scope::Code),
            (false, true, false) => Some(Scope::Config),
            (false, false, true) => Some(Scope::Db),
            _ => Some(Scope::Full),
        };
        let explanation = match scope {
            None => format!(
                "nothing lastgood deploys differs between {} and the last good release {}: look outside (data, infrastructure, dependencies)",
                current.id, good.id
            ),
            Some(s) => {
                let mut e = format!(
                    "{} changed since the last good release {} ({}); a rollback with scope {s} undoes {}",
                    changed.join(" and "),
                    good.id,
                    good.version,
                    if changed.len() > 1 { "all of it" } else { "exactly that" }
                );
                if !edited.is_empty() {
                    e.push_str(&format!("; {} changed in place after {} was deployed", edited.join(", "), current.id));
                }
                e
            }
        };
        let command = scope.map(|s| {
            format!(
                "lastgood rollback {} --to {} --scope {s} --dry-run   # then again without --dry-run, with --reason",
                env.name, good.id.0
            )
        });
        Ok(Diagnosis {
            environment: env.name.to_string(),
            diff: Diff::between(self.ledger(), Some(&env), Some(&good), &current),
            current: ReleaseSummary::of(&current),
            last_good: ReleaseSummary::of(&good),
            code,
            config,
            database,
            config_edited_since_deploy: edited,
            scope,
            command,
            explanation,
        })
    }
}
