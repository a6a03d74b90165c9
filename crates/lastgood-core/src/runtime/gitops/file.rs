//! Version-file mode: `version_file` holds the version and a newline. A deploy
//! commits the new version; a rollback reverts lastgood's own commits since the
//! target's deploy commit (or writes the version directly when that commit is gone
//! from the history), or in reset mode moves the branch back to that commit.

use super::{GitOps, Pushed, short, step};
use crate::config::GitopsMode;
use crate::error::{Error, Result};
use crate::model::ReleaseId;
use crate::runtime::api::{Activation, ensure_dir};

impl GitOps<'_> {
    /// The version file's content at a commit (trimmed); None when it is not there.
    pub(super) fn version_at(&self, file: &str, commit: &str) -> Result<Option<String>> {
        let spec = format!("{commit}:{file}");
        let out = self.run(&["show", "--end-of-options", &spec], None)?;
        if !out.status.success() {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()))
    }

    /// The commit that deployed `release` on this branch, if it is in its history.
    pub(super) fn deploy_commit_of(&self, tip: &str, release: ReleaseId) -> Result<Option<String>> {
        let id = release.0.to_string();
        let grep = [format!("Lastgood-Environment: {}", self.site.env), format!("Lastgood-Release: {id}")];
        Ok(self
            .log(tip, &grep)?
            .into_iter()
            .find(|c| {
                self.ours(c)
                    && c.trailers.get("Lastgood-Kind").map(String::as_str) == Some("deploy")
                    && c.trailers.get("Lastgood-Release") == Some(&id)
            })
            .map(|c| c.sha))
    }

    /// Who last changed the version file up to `tip`, for messages.
    pub(super) fn last_change(&self, file: &str, tip: &str) -> String {
        let out = self.run(&["log", "-1", "--format=%h %an: %s", "--end-of-options", tip, "--", file], None);
        match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            _ => "an unknown commit".into(),
        }
    }

    /// The message of a reset refused because it would drop `other`.
    pub(super) fn would_drop(&self, other: &str) -> String {
        format!(
            "mode = \"reset\" would drop commit {} on {}, which neither lastgood nor a release of this environment made; \
             nothing was pushed. Use mode = \"revert\", or move that commit first",
            short(other),
            self.cfg.branch
        )
    }

    pub(super) fn checkout(&self, tip: &str) -> Result<()> {
        // A revert cut short by a crash leaves its sequencer state behind.
        let git_dir = self.wc().join(".git");
        if git_dir.join("sequencer").exists() || git_dir.join("REVERT_HEAD").exists() {
            let _ = self.run(&["revert", "--quit"], None);
        }
        // Tracked files are reset; lastgood only ever stages the version file.
        self.ok(&["checkout", "--quiet", "--force", "--detach", tip], "git checkout")?;
        Ok(())
    }

    fn write_version(&self, file: &str, version: &str) -> Result<()> {
        let path = self.wc().join(file);
        if let Some(dir) = path.parent() {
            ensure_dir(dir)?;
        }
        std::fs::write(&path, format!("{version}\n")).map_err(Error::io("write", &path))?;
        self.ok(&["add", "--", file], "git add")?;
        Ok(())
    }

    fn commit(&self, message: &str, actor: &str) -> Result<String> {
        let out = self.run_as(&["commit", "--quiet", "--no-verify", "-F", "-"], Some(message), actor)?;
        if !out.status.success() {
            return Err(step(format!("git commit: {}", super::said(&out))));
        }
        // Detached: HEAD holds the new commit's id.
        let head = self.wc().join(".git/HEAD");
        let sha = std::fs::read_to_string(&head).map_err(Error::io("read", &head))?;
        Ok(sha.trim().to_owned())
    }

    /// One attempt at making the branch say `a.release`'s version; None when it does.
    pub(super) fn file_attempt(&self, file: &str, a: &Activation, tip: &str) -> Result<Option<Pushed>> {
        let version = a.release.version.as_str();
        let (env, id) = (&self.site.env, a.release.id);
        let now = self.version_at(file, tip)?;
        if now.as_deref() == Some(version) {
            return Ok(None);
        }
        // Checked before anything was recorded too; this is the race since then.
        if let Some(now) = now.as_deref() {
            if !a.expected.is_empty() && !a.expected.iter().any(|e| e == now) {
                let expected = a.expected.join(" or ");
                return Err(step(format!(
                    "{file} on {} says {now}, but lastgood last set {expected}: someone else changed the desired version ({}); \
                     lastgood does not overwrite it. Decide which version should run, then deploy it",
                    self.cfg.branch,
                    self.last_change(file, tip)
                )));
            }
        }
        let pushed = match (a.back, self.cfg.mode) {
            (true, GitopsMode::Reset) => {
                let Some(target) = self.deploy_commit_of(tip, id)? else {
                    return Err(step(format!(
                        "mode = \"reset\" needs the commit that deployed {id}, and {} has none (trailer Lastgood-Release: {}); \
                         use mode = \"revert\", or deploy {version} again",
                        self.cfg.branch, id.0
                    )));
                };
                if let Some(other) = self.foreign_since(&target, tip, &a.known)? {
                    return Err(step(self.would_drop(&other)));
                }
                if self.version_at(file, &target)?.as_deref() != Some(version) {
                    return Err(step(format!("the commit that deployed {id} does not set {version}")));
                }
                self.push(&target, Some(tip))?
            }
            (true, GitopsMode::Revert) => {
                self.checkout(tip)?;
                let mut reverted = Vec::new();
                if let Some(target) = self.deploy_commit_of(tip, id)? {
                    let since: Vec<String> = self
                        .log(&format!("{target}..{tip}"), &[])?
                        .into_iter()
                        .filter(|c| self.ours(c))
                        .map(|c| c.sha)
                        .collect();
                    if !since.is_empty() {
                        let mut args = vec!["revert", "--no-commit", "--end-of-options"];
                        args.extend(since.iter().map(String::as_str));
                        let out = self.run(&args, None)?;
                        if !out.status.success() {
                            let _ = self.run(&["revert", "--abort"], None);
                            return Err(step(format!(
                                "reverting lastgood's commits since {id} on {} conflicts ({}); someone else changed {file} meanwhile ({}); nothing was pushed",
                                self.cfg.branch,
                                super::said(&out),
                                self.last_change(file, tip)
                            )));
                        }
                        reverted = since;
                    }
                }
                // The reverts restore the target's content; if its deploy commit is no
                // longer in the history, the file is written directly instead.
                let now = std::fs::read_to_string(self.wc().join(file)).unwrap_or_default();
                let direct = now.trim() != version;
                if direct {
                    self.write_version(file, version)?;
                }
                let shorts: Vec<&str> = reverted.iter().map(|s| short(s)).collect();
                let body = if reverted.is_empty() {
                    format!(
                        "The commit that deployed {id} is not in this branch's history; the version was written directly."
                    )
                } else {
                    format!(
                        "This reverts commit{} {}.{}",
                        if shorts.len() == 1 { "" } else { "s" },
                        shorts.join(", "),
                        if direct { " The version was then written directly." } else { "" }
                    )
                };
                let title = format!("lastgood: roll back {env} to {id} ({version})");
                let msg = self.message(a, "rollback", title, Some(body));
                let sha = self.commit(&msg, &a.actor)?;
                self.push(&sha, None)?
            }
            (false, _) => {
                self.checkout(tip)?;
                self.write_version(file, version)?;
                let title = format!("lastgood: deploy {version} to {env} as {id}");
                let msg = self.message(a, "deploy", title, None);
                let sha = self.commit(&msg, &a.actor)?;
                self.push(&sha, None)?
            }
        };
        Ok(Some(pushed))
    }
}
