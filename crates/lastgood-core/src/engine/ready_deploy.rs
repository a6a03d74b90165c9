//! What a deploy does about its own way back before it changes anything:
//! `[database] rehearse = "deploy"` rehearses the new release's down path (its newest
//! migration down to the revision of the release a failure would return to) on a
//! scratch database, and `deploy --require-ready` refuses (exit 4, nothing changed)
//! when that way back is not ready: the release to return to has no artifact, or the
//! schema change the deploy brings has no clean rehearsal.

use super::Engine;
use super::preview::PlanView;
use crate::config::Environment;
use crate::database::environment::EnvDatabase;
use crate::database::rehearse::{self, DownFailure, Rehearsal};
use crate::error::{Error, Result};
use crate::journal::Progress;
use crate::ledger::Release;
use crate::model::ReleaseState;
use crate::refusal::Refusal;

/// A rehearsal and the destructive migrations on its path.
pub type Evidence = (Rehearsal, Vec<String>);

/// The migrations on a rehearsed down path whose down script the linter classifies as
/// destructive (readiness then asks for a backup of the schema they undo).
fn destructive_downs(url: &crate::database::url::DbUrl, dir: &std::path::Path, r: &Rehearsal) -> Vec<String> {
    use crate::database::dialect::Dialect;
    use crate::database::lint::{self, Class};
    let dialect = match url {
        crate::database::url::DbUrl::Postgres(_) => Dialect::Postgres,
        crate::database::url::DbUrl::Sqlite(_) => Dialect::Sqlite,
    };
    let on_path = |name: &str| r.reverted.iter().any(|n| n == name) || r.failures.iter().any(|f| f.migration == name);
    crate::database::migration_files::discover(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|m| on_path(&m.name))
        .filter(|m| m.down.as_deref().is_some_and(|d| lint::classify(d, dialect).class == Class::Destructive))
        .map(|m| m.name)
        .collect()
}

impl Engine {
    /// The release a failed deploy returns to: the current one if good, else the last
    /// good one.
    fn way_back(&self, env: &Environment, view: &PlanView) -> Result<Option<Release>> {
        match &view.from {
            Some(c) if c.state == ReleaseState::Good => Ok(Some(c.clone())),
            from => self.ledger.last_good(&env.name, from.as_ref().map(|f| f.id)),
        }
    }

    /// `rehearse = "deploy"`: the new release's way back, rehearsed on scratch databases.
    pub(crate) fn rehearse_at_deploy(
        &self,
        env: &Environment,
        view: &PlanView,
        progress: &mut dyn Progress,
    ) -> Result<Option<Evidence>> {
        let Some(db) = EnvDatabase::of(env)? else { return Ok(None) };
        let (true, Some(commit)) = (db.config.rehearse_at_deploy, &view.to.commit) else { return Ok(None) };
        let Some(back) = self.way_back(env, view)? else { return Ok(None) };
        let tmp = crate::git::unpack_to_temp(&env.source, commit)?;
        let Some(dir) = db.migrations_in(tmp.path()).filter(|d| d.is_dir()) else { return Ok(None) };
        let target = back.schema_revision.clone();
        let r = rehearse::rehearse_release(&db.url, &dir, &db.config.settings, target.as_deref()).unwrap_or_else(|e| {
            Rehearsal {
                from: None,
                to: target.clone(),
                reverted: vec![],
                failures: vec![DownFailure { migration: "(the rehearsal itself)".into(), error: e.to_string() }],
                differences: vec![],
                ok: false,
            }
        });
        progress.note(&format!(
            "rehearsed the way back of {} on a scratch database: {} down to {} {}",
            view.to.version,
            r.from.as_deref().unwrap_or("none"),
            r.to.as_deref().unwrap_or("none"),
            if r.ok {
                "clean".to_owned()
            } else {
                format!(
                    "FAILED ({})",
                    r.failures.iter().map(|f| format!("{}: {}", f.migration, f.error)).collect::<Vec<_>>().join("; ")
                )
            }
        ));
        let destructive = destructive_downs(&db.url, &dir, &r);
        Ok(Some((r, destructive)))
    }

    /// `deploy --require-ready`: refuses when the way back is not ready.
    pub(crate) fn require_ready(&self, env: &Environment, view: &PlanView, rehearsal: Option<&Evidence>) -> Result<()> {
        let back = self.way_back(env, view)?;
        let hosts = self.fleet(env).map(|f| f.observe()).unwrap_or_default();
        let mut readiness = self.readiness(env, None, back.as_ref(), &hosts)?;
        let migrations = env.database.as_ref().is_some_and(EnvDatabase::has_migrations);
        if let (true, Some(b)) = (migrations, &back) {
            match rehearsal {
                Some((r, _)) if r.ok => {}
                Some((r, _)) => readiness.reasons.push(format!(
                    "the way back of {} to revision {} failed its rehearsal ({} down migration(s) failed or the schema differed): fix its down migrations",
                    view.to.version,
                    r.to.as_deref().unwrap_or("none"),
                    r.failures.len()
                )),
                None => {
                    let brings = match &view.to.commit {
                        Some(c) => self.preview_ups(env, c)?.0.len(),
                        None => 0,
                    };
                    if brings > 0 {
                        readiness.reasons.push(format!(
                            "{} brings {brings} migration(s) whose way back to {} was not rehearsed: set rehearse = \"deploy\" in [environments.{}.database]",
                            view.to.version, b.id, env.name
                        ));
                    }
                }
            }
        }
        if readiness.reasons.is_empty() {
            return Ok(());
        }
        Err(Error::refused(
            view.environment.clone(),
            "deploy",
            Refusal::WayBack { target: readiness.target, reasons: readiness.reasons },
        ))
    }
}
