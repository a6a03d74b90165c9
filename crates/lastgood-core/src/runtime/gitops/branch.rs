//! Branch mode (`gitops` without `version_file`): the branch's commits are the
//! releases, as on a release branch that CI merges into and a pipeline deploys from.
//!
//! VERSION is a commit or tag of the repository. A deploy records it when the branch
//! already points at it (CI merged it), else pushes it when that fast-forwards the
//! branch; anything else is refused before it is recorded. A rollback in revert mode
//! commits, on top of the tip, the target's tree: the result of `git revert --no-edit`
//! of every commit after the target, newest first, as one commit (which cannot
//! conflict, and also works when the target left the branch's history). Its message
//! names the commits and the reason. A resumed rollback finds the tree in place and
//! makes no second commit. Reset mode moves the branch with `--force-with-lease` and
//! never drops a commit that no release of the environment deployed.

use super::{GitOps, Pushed, short, step};
use crate::config::GitopsMode;
use crate::error::{Error, Result};
use crate::model::Version;
use crate::refusal::Refusal;
use crate::runtime::api::Activation;

impl GitOps<'_> {
    /// The commit a version (a commit or a tag) names in the repository, after a fetch.
    fn commit_of(&self, version: &str) -> Result<String> {
        Version::parse(version)?;
        self.init()?;
        self.fresh_tip()?;
        let spec = format!("{version}^{{commit}}");
        let out = self.run(&["rev-parse", "--verify", "--quiet", "--end-of-options", &spec], None)?;
        if !out.status.success() {
            return Err(Error::UnknownVersion {
                version: version.to_owned(),
                source_dir: self.cfg.repo.clone().into(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn is_ancestor(&self, older: &str, newer: &str) -> Result<bool> {
        let out = self.run(&["merge-base", "--is-ancestor", "--end-of-options", older, newer], None)?;
        Ok(out.status.success())
    }

    /// Whether two commits hold the same tree; None when `b` is not in the clone.
    fn same_tree(&self, a: &str, b: &str) -> Result<Option<bool>> {
        let (ta, tb) = (format!("{a}^{{tree}}"), format!("{b}^{{tree}}"));
        // Without --verify, rev-parse echoes `--end-of-options` itself: only the last two
        // lines are the trees.
        let out = self.run(&["rev-parse", "--end-of-options", &ta, &tb], None)?;
        if !out.status.success() {
            return Ok(None);
        }
        let out = String::from_utf8_lossy(&out.stdout);
        let mut trees = out.lines().rev();
        Ok(Some(trees.next() == trees.next()))
    }

    /// A deploy must find the branch at VERSION or be able to fast-forward it there.
    pub(super) fn branch_check(&self, version: &str) -> Result<()> {
        let commit = self.commit_of(version)?;
        let tip = self.tip()?;
        if tip == commit || self.is_ancestor(&tip, &commit)? {
            return Ok(());
        }
        let detail = format!(
            "{version} ({}) does not fast-forward {} (at {}): lastgood pushes a release only when the branch's history \
             leads to it. Merge it into {} first, or go back to an older release with `lastgood rollback {} --to {version}`",
            short(&commit),
            self.cfg.branch,
            short(&tip),
            self.cfg.branch,
            self.site.env
        );
        Err(Error::refused(
            self.site.env.to_string(),
            "deploy",
            Refusal::Version { version: version.to_owned(), detail },
        ))
    }

    /// VERSION's commit and the subjects of the commits since `since`, newest first.
    pub(super) fn branch_resolve(&self, version: &str, since: Option<&str>) -> Result<(String, Vec<String>)> {
        let commit = self.commit_of(version)?;
        let range = match since {
            Some(s) if self.is_ancestor(s, &commit).unwrap_or(false) => format!("{s}..{commit}"),
            _ => commit.clone(),
        };
        let text = self.ok(&["log", "-z", "--format=%s", "--max-count=50", "--end-of-options", &range], "git log")?;
        let features = text.split('\0').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        Ok((commit, features))
    }

    /// One attempt at putting the branch where `a.release` needs it; None when it is.
    pub(super) fn branch_attempt(&self, a: &Activation, tip: &str) -> Result<Option<Pushed>> {
        let (env, id, version) = (&self.site.env, a.release.id, a.release.version.as_str());
        let Some(target) = a.release.commit.as_deref() else {
            return Err(step(format!("{id} ({version}) names no commit; branch mode needs one")));
        };
        let gone = || {
            step(format!(
                "commit {} of {id} is no longer in {}: its history was rewritten; deploy a commit the branch has",
                short(target),
                self.cfg.repo
            ))
        };
        if !a.back {
            if tip == target {
                return Ok(None);
            }
            if !self.is_ancestor(tip, target)? {
                return Err(step(format!(
                    "{version} ({}) does not fast-forward {} (now at {}); nothing was pushed",
                    short(target),
                    self.cfg.branch,
                    short(tip)
                )));
            }
            return self.push(target, None).map(Some);
        }
        // One read gives the commits after the target (with their trees and parents) and
        // the boundary, the target itself when it is in the tip's history.
        let range = format!("{target}..{tip}");
        let out = self.run(&["log", "--boundary", "--format=%m%H %T %P", "--end-of-options", &range], None)?;
        if !out.status.success() {
            return Err(gone());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let rows: Vec<(bool, Vec<&str>)> =
            text.lines().filter_map(|l| Some((l.starts_with('-'), l.get(1..)?.split(' ').collect()))).collect();
        let tree_of =
            |sha: &str| rows.iter().find(|(_, f)| f.first() == Some(&sha)).and_then(|(_, f)| f.get(1).copied());
        let reverted: Vec<String> = rows.iter().filter(|(b, _)| !b).map(|(_, f)| f[0].to_owned()).collect();
        let in_history = rows.iter().any(|(b, f)| *b && f.first() == Some(&target));
        let same = match (tree_of(tip), tree_of(target)) {
            (Some(x), Some(y)) => Some(x == y),
            // The target is not in the tip's history, or is the tip or after it.
            _ => self.same_tree(tip, target)?,
        };
        match same {
            None => return Err(gone()),
            Some(true) => return Ok(None),
            Some(false) => {}
        }
        if self.cfg.mode == GitopsMode::Reset {
            if let Some(other) = self.foreign_since(target, tip, &a.known)? {
                return Err(step(self.would_drop(&other)));
            }
            return self.push(target, Some(tip)).map(Some);
        }
        let names: Vec<&str> = reverted.iter().map(|s| short(s)).collect();
        let mut body = format!(
            "This reverts commit{} {} (newest first), restoring the tree of {}.",
            if names.len() == 1 { "" } else { "s" },
            names.join(", "),
            short(target)
        );
        if !in_history {
            body.push_str(&format!(
                " {} is no longer in {}'s history (it was rewritten): its tree is committed on top of the tip.",
                short(target),
                self.cfg.branch
            ));
        }
        let title = format!("lastgood: roll back {env} to {id} ({version})");
        let msg = self.message(a, "rollback", title, Some(body));
        let tree = format!("{target}^{{tree}}");
        let out =
            self.run_as(&["commit-tree", "-p", tip, "-F", "-", "--end-of-options", &tree], Some(&msg), &a.actor)?;
        if !out.status.success() {
            return Err(step(format!("git commit-tree: {}", super::said(&out))));
        }
        let sha = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        crate::failpoint::hit("mid:switch");
        self.push(&sha, None).map(Some)
    }
}
