//! What differs between two releases: version, commits, config files and schema.
//!
//! Shared by the incident record and `lastgood diagnose`/`diff`, which compare any two
//! releases. [`Diff::between`] never fails: a part that cannot be worked out (the
//! repository moved, a snapshot is missing, the release directory is gone) says so in
//! its note, and the rest still stands. Commits come from the source repository; the
//! config part is `config_diff.rs`.

use serde::Serialize;

use super::config_diff::{ConfigChange, config_changes};
use crate::config::{Adapter, Environment};
use crate::context::rfc3339;
use crate::database::migration_files::{compare_versions, discover, names};
use crate::git::{self, Commit};
use crate::ledger::{Ledger, Release};
use crate::model::Scope;
use crate::runtime::{self, Site};
use std::cmp::Ordering::Greater;

/// How many commits a report lists in each direction.
const COMMIT_LIMIT: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseSummary {
    pub id: u64,
    pub version: String,
    pub commit: Option<String>,
    pub state: String,
    pub schema_revision: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub reason: Option<String>,
}

impl ReleaseSummary {
    pub fn of(r: &Release) -> Self {
        Self {
            id: r.id.0,
            version: r.version.clone(),
            commit: r.commit.as_ref().map(|c| c.to_string()),
            state: r.state.as_str().to_owned(),
            schema_revision: r.schema_revision.clone(),
            created_at: rfc3339(r.created_at),
            created_by: r.created_by.clone(),
            reason: r.reason.clone(),
        }
    }
}

/// What differs between the `from` and `to` releases.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// The version (a tag, an image reference, a build number), when it differs.
    pub version: Option<VersionChange>,
    /// In `to` but not in `from`: what the operation brought in.
    pub commits_added: Vec<Commit>,
    /// In `from` but not in `to`: what the operation took out.
    pub commits_removed: Vec<Commit>,
    /// Why the commit lists are empty or incomplete, when they are.
    pub commits_note: Option<String>,
    /// Only files that differ, by name.
    pub config: Vec<ConfigChange>,
    pub schema: SchemaDiff,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionChange {
    pub from: Option<String>,
    pub to: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SchemaDiff {
    pub from: Option<String>,
    pub to: Option<String>,
    /// `applied` or `reverted` when the revisions differ, else `unchanged`.
    pub direction: &'static str,
    /// The migrations between the two revisions, oldest first, when known.
    pub migrations: Vec<String>,
    pub note: Option<String>,
}

impl Diff {
    /// Never fails: a part that cannot be worked out (the repository moved, a snapshot
    /// is missing) says so in its note, and the rest of the record still stands.
    pub fn between(ledger: &dyn Ledger, env: Option<&Environment>, from: Option<&Release>, to: &Release) -> Self {
        let (commits_added, commits_removed, commits_note) = commits(env, from, to);
        let version = (from.map(|f| &f.version) != Some(&to.version))
            .then(|| VersionChange { from: from.map(|f| f.version.clone()), to: to.version.clone() });
        Self {
            version,
            commits_added,
            commits_removed,
            commits_note,
            config: config_changes(ledger, from, to),
            schema: schema(env, from, to),
        }
    }
}

impl Diff {
    /// What a rollback of a narrower scope changed: what it left alone is no change
    /// (a config rollback takes out no commits, even to an older release), and the
    /// config files its `config` step put back in place (`restored`, named by the step)
    /// are, even when both ends are the same release.
    pub(crate) fn narrow(&mut self, scope: Scope, from: Option<&Release>, to: &Release, restored: &[String]) {
        let kept = from.map(|f| format!(" (#{} {} kept serving)", f.id.0, f.version)).unwrap_or_default();
        if !scope.includes_code() {
            self.version = None;
            self.commits_added.clear();
            self.commits_removed.clear();
            self.commits_note = Some(format!("scope {scope}: the code did not move{kept}"));
        }
        if !scope.includes_config() {
            self.config.clear();
        }
        for file in restored {
            if self.config.iter().any(|c| &c.file == file) {
                continue;
            }
            self.config.push(ConfigChange {
                file: file.clone(),
                change: "restored",
                from_sha256: None,
                to_sha256: to.config.get(file).cloned(),
                keys: vec![],
                note: Some(format!("the file in place differed from the snapshot of #{}, which was put back", to.id.0)),
            });
        }
        if !scope.includes_db() {
            let revision = from.map_or_else(|| to.schema_revision.clone(), |f| f.schema_revision.clone());
            self.schema = SchemaDiff {
                from: revision.clone(),
                to: revision,
                direction: "unchanged",
                migrations: vec![],
                note: Some(format!("scope {scope}: the schema did not move")),
            };
        }
    }
}

fn commits(
    env: Option<&Environment>,
    from: Option<&Release>,
    to: &Release,
) -> (Vec<Commit>, Vec<Commit>, Option<String>) {
    let Some(env) = env else {
        return (
            vec![],
            vec![],
            Some("the environment is no longer configured: its source repository is unknown".into()),
        );
    };
    let Some(to_commit) = to.commit.as_ref() else {
        let why = if env.versions_in_source {
            format!("release #{} has no recorded commit", to.id.0)
        } else {
            format!(
                "versions of runtime {} are opaque (image tags, build numbers): set `source` to resolve them in git and list commits",
                env.runtime.name()
            )
        };
        return (vec![], vec![], Some(why));
    };
    let from_commit = from.and_then(|f| f.commit.as_ref());
    let added = git::commits(&env.source, from_commit, to_commit, COMMIT_LIMIT);
    let removed = match from_commit {
        Some(f) => git::commits(&env.source, Some(to_commit), f, COMMIT_LIMIT),
        None => Ok(vec![]),
    };
    match (added, removed) {
        (Ok(a), Ok(r)) => {
            let full = a.len() >= COMMIT_LIMIT || r.len() >= COMMIT_LIMIT;
            let note = full.then(|| format!("at most {COMMIT_LIMIT} commits are listed in each direction"));
            (a, r, note)
        }
        (Err(e), _) | (_, Err(e)) => (vec![], vec![], Some(format!("cannot list commits: {e}"))),
    }
}

fn schema(env: Option<&Environment>, from: Option<&Release>, to: &Release) -> SchemaDiff {
    let old = from.and_then(|f| f.schema_revision.clone());
    let new = to.schema_revision.clone();
    let mut d =
        SchemaDiff { from: old.clone(), to: new.clone(), direction: "unchanged", migrations: vec![], note: None };
    if old == new {
        return d;
    }
    let forward = from.is_none_or(|f| f.id < to.id);
    d.direction = if forward { "applied" } else { "reverted" };
    // Only the builtin engine's revisions are migration versions that sort; the newer
    // release's own folder (while retention keeps it) names the ones in between.
    let Some(env) = env else { return d };
    let Some(db) = env.database.as_ref() else { return d };
    let (Adapter::Builtin, Some(folder)) = (&db.adapter, db.migrations.as_ref()) else {
        d.note = Some("the migrations in between are known only to the schema tool".into());
        return d;
    };
    let (low, high, newer) = if forward { (&old, &new, to) } else { (&new, &old, from.unwrap_or(to)) };
    // The newer release's folder while it is on this machine; else its commit's files
    // (a fleet host's directory, or one retention removed).
    let site = Site::local(env);
    let dir = runtime::of(&site).tree(newer.id).map(|t| t.join(folder)).filter(|d| d.is_dir());
    let all: Vec<(String, String)> = match (dir, &newer.commit) {
        (Some(dir), _) => match discover(&dir) {
            Ok(all) => all.into_iter().map(|m| (m.version, m.name)).collect(),
            Err(e) => {
                d.note = Some(format!("cannot list the migrations: {e}"));
                return d;
            }
        },
        (None, Some(commit)) => {
            let folder = folder.to_string_lossy();
            match git::files_at(&env.source, commit, &folder) {
                Ok(paths) => names(&paths, &folder),
                Err(e) => {
                    d.note = Some(format!("cannot list the migrations of #{} from its commit: {e}", newer.id.0));
                    return d;
                }
            }
        }
        (None, None) => {
            d.note = Some(format!("the directory of release #{} is gone: its migrations cannot be listed", newer.id.0));
            return d;
        }
    };
    d.migrations = all
        .into_iter()
        .filter(|(v, _)| low.as_deref().is_none_or(|l| compare_versions(v, l) == Greater))
        .filter(|(v, _)| high.as_deref().is_some_and(|h| compare_versions(v, h) != Greater))
        .map(|(_, name)| name)
        .collect();
    d
}
