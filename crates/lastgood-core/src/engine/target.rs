//! Naming a release the way a runbook names it: `#3`, `3`, `version:41`, `v1.4.2`, a
//! build number, an image tag, or a commit (a prefix of at least 7 hex digits, or the
//! whole hash) of the release's source or of the GitOps commit that deployed it.
//!
//! The rule that matters is that a name never silently picks the wrong release. A bare
//! number is tried as a release id, a version and a commit prefix at once, and when
//! those name different releases the answer is an error that lists them and says how
//! to be precise (`#N`, `version:N`). A miss lists the recent releases with their ids,
//! versions and commits, the columns of `history` a person picks from.

use super::Engine;
use crate::config::Environment;
use crate::error::{Error, Result};
use crate::ledger::Release;
use crate::model::{EnvName, ReleaseId, Target, commit_prefix};

impl Engine {
    /// The release a target names; an error listing the candidates when none does, or
    /// naming them when more than one does.
    pub(crate) fn resolve_target(
        &self,
        env: &Environment,
        target: &Target,
        current: Option<ReleaseId>,
    ) -> Result<Release> {
        let name = &env.name;
        let mut found: Vec<(Release, &'static str)> = Vec::new();
        match target {
            Target::LastGood => found.extend(self.ledger.last_good(name, current)?.map(|r| (r, "last good"))),
            Target::Previous => {
                if let Some(c) = current {
                    found.extend(self.ledger.release_before(name, c)?.map(|r| (r, "previous")));
                }
            }
            Target::Id(id) => found.extend(self.ledger.release(name, *id)?.map(|r| (r, "release id"))),
            Target::ExactVersion(v) => found.extend(self.ledger.release_by_version(name, v)?.map(|r| (r, "version"))),
            Target::Number(n) => {
                if let Ok(id) = n.parse::<u64>() {
                    found.extend(self.ledger.release(name, ReleaseId(id))?.map(|r| (r, "release id")));
                }
                found.extend(self.ledger.release_by_version(name, n)?.map(|r| (r, "version")));
                found.extend(self.by_commit(name, n)?);
            }
            Target::Version(v) => match self.ledger.release_by_version(name, v)? {
                Some(r) => found.push((r, "version")),
                None => found.extend(self.by_commit(name, v)?),
            },
        }
        // The same release found several ways is one answer.
        let mut distinct: Vec<(Release, Vec<&'static str>)> = Vec::new();
        for (r, how) in found {
            match distinct.iter_mut().find(|(d, _)| d.id == r.id) {
                Some((_, hows)) => hows.push(how),
                None => distinct.push((r, vec![how])),
            }
        }
        match distinct.len() {
            0 => Err(match self.candidates(name) {
                Ok(candidates) => Error::UnknownTarget { env: name.to_string(), target: target.text(), candidates },
                Err(e) => e,
            }),
            1 => Ok(distinct.remove(0).0),
            _ => Err(Error::AmbiguousTarget {
                env: name.to_string(),
                target: target.text(),
                matches: distinct.iter().map(|(r, how)| format!("{} (by {})", describe(r), how.join(", "))).collect(),
            }),
        }
    }

    /// Releases a commit prefix names. Releases of one commit and one version (the same
    /// commit deployed again) are one answer: the newest.
    fn by_commit(&self, env: &EnvName, text: &str) -> Result<Vec<(Release, &'static str)>> {
        let Some(prefix) = commit_prefix(text) else { return Ok(Vec::new()) };
        let mut out: Vec<(Release, &'static str)> = Vec::new();
        for r in self.ledger.releases_by_commit(env, &prefix)? {
            let how = if r.commit.as_ref().is_some_and(|c| c.as_str().starts_with(&prefix)) {
                "commit"
            } else {
                "deploy commit"
            };
            let same = |o: &Release| o.version == r.version && o.commit == r.commit;
            if !out.iter().any(|(o, _)| same(o)) {
                out.push((r, how));
            }
        }
        Ok(out)
    }

    pub(crate) fn candidates(&self, env: &EnvName) -> Result<Vec<String>> {
        Ok(self.ledger.releases(env, 10)?.iter().map(describe).collect())
    }
}

/// A release as a candidate list shows it: id, version, state, commits.
fn describe(r: &Release) -> String {
    let mut s = format!("{} {} ({}{})", r.id, r.version, r.state, if r.artifact { "" } else { ", directory removed" });
    if let Some(c) = &r.commit {
        s.push_str(&format!(" commit {}", c.short()));
    }
    if let Some(c) = &r.deploy_commit {
        s.push_str(&format!(" deploy commit {}", c.short()));
    }
    s
}
