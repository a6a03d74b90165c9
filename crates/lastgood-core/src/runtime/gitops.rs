//! The `gitops` runtime: the desired version is a file in a git repository that a
//! controller (Argo CD, Flux, a cron job) applies. Deploying is writing the version
//! into `version_file`, committing and pushing; rolling back is reverting lastgood's
//! own commits since the target release and pushing (history kept), or with
//! `mode = "reset"` moving the branch back to the target's commit with
//! `--force-with-lease`.
//!
//! Rules that keep other people's work safe:
//! - lastgood works in its own clone (`<state>/gitops`), fetched before every attempt;
//! - it writes only when `version_file` holds the version lastgood believes serves
//!   (the one it deployed last): if someone else changed the desired version, it
//!   stops and names their commit instead of overwriting it;
//! - a push rejected because the branch moved is retried on top of the new tip (a
//!   few times), never forced; `reset` refuses when the commits it would drop are
//!   not all lastgood's own.
//!
//! Each commit carries trailers (`Lastgood-Environment`, `Lastgood-Release`,
//! `Lastgood-Version`, `Lastgood-Kind`, `Lastgood-Operation`), so the repository's
//! history says what lastgood did and rollback can find the commits to revert.
//! Every git call is an argv; messages travel on stdin; the repository, branch,
//! file and version were validated when the config and the version were read.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::api::{
    Activation, NotReady, Observed, Placement, Refusal, ReleaseFacts, Runtime, Site, StepFacts, ensure_dir, generic,
    unusable, usable_dir,
};
use crate::config::{Gitops, GitopsMode};
use crate::error::{Error, Result};
use crate::model::ReleaseId;
use crate::plan::Step;

/// Attempts when the branch keeps moving under lastgood.
const ATTEMPTS: usize = 5;

pub struct GitOps<'a> {
    pub site: &'a Site,
    pub cfg: &'a Gitops,
}

/// One of lastgood's own commits, read back from the repository.
#[derive(Debug, Clone)]
struct Stamped {
    sha: String,
    trailers: BTreeMap<String, String>,
}

enum Pushed {
    Done(String),
    /// The branch moved between fetch and push.
    Moved,
}

fn step(message: String) -> Error {
    Error::Step { message }
}

impl GitOps<'_> {
    fn wc(&self) -> PathBuf {
        self.site.state_dir().join("gitops")
    }

    fn remote_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.cfg.branch)
    }

    fn command(&self, dir: &Path, actor: &str) -> Command {
        let mut c = Command::new("git");
        c.current_dir(dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .env("GIT_AUTHOR_NAME", actor)
            .env("GIT_AUTHOR_EMAIL", "lastgood@localhost")
            .env("GIT_COMMITTER_NAME", actor)
            .env("GIT_COMMITTER_EMAIL", "lastgood@localhost")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str], input: Option<&str>) -> Result<Output> {
        self.run_as(args, input, "lastgood")
    }

    fn run_as(&self, args: &[&str], input: Option<&str>, actor: &str) -> Result<Output> {
        let wc = self.wc();
        let mut c = self.command(&wc, actor);
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        if input.is_some() {
            c.stdin(Stdio::piped());
        }
        let mut child =
            c.spawn().map_err(|e| Error::Git { dir: wc.clone(), message: format!("cannot run git: {e}") })?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            let _ = stdin.write_all(text.as_bytes());
        }
        child.wait_with_output().map_err(|e| Error::Git { dir: wc, message: e.to_string() })
    }

    /// Runs git; its stdout, or an error with what git said.
    fn ok(&self, args: &[&str], what: &str) -> Result<String> {
        let out = self.run(args, None)?;
        if !out.status.success() {
            return Err(step(format!("{what}: {}", said(&out))));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates lastgood's clone (once) and points it at the configured repository.
    fn init(&self) -> Result<()> {
        let wc = self.wc();
        if !wc.join(".git").is_dir() {
            ensure_dir(&wc)?;
            self.ok(&["init", "--quiet"], "git init")?;
        }
        // The remote is (re)configured only when the config changed since last time.
        let marker = wc.join(".git/lastgood-remote");
        let want = format!("{}\n{}\n", self.cfg.repo, self.cfg.branch);
        if std::fs::read_to_string(&marker).ok().as_deref() != Some(want.as_str()) {
            self.ok(&["config", "remote.origin.url", &self.cfg.repo], "git config")?;
            let refspec = format!("+refs/heads/{}:{}", self.cfg.branch, self.remote_ref());
            self.ok(&["config", "remote.origin.fetch", &refspec], "git config")?;
            // lastgood's clone is small and short-lived work: no background gc on its time.
            self.ok(&["config", "maintenance.auto", "false"], "git config")?;
            self.ok(&["config", "gc.auto", "0"], "git config")?;
            std::fs::write(&marker, want).map_err(Error::io("write", &marker))?;
        }
        Ok(())
    }

    /// Fetches the branch; its tip.
    fn fetch(&self) -> Result<String> {
        self.ok(
            &["fetch", "--quiet", "--no-tags", "origin"],
            &format!("cannot fetch {} from {}", self.cfg.branch, self.cfg.repo),
        )?;
        let tip = self.ok(&["rev-parse", "--verify", "--end-of-options", &self.remote_ref()], "rev-parse")?;
        Ok(tip.trim().to_owned())
    }

    /// The version file's content at a commit (trimmed); None when it is not there.
    fn version_at(&self, commit: &str) -> Result<Option<String>> {
        let spec = format!("{commit}:{}", self.cfg.version_file);
        let out = self.run(&["show", "--end-of-options", &spec], None)?;
        if !out.status.success() {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()))
    }

    /// Commits in `range`, newest first, with the trailers of their last paragraph;
    /// `grep` narrows the search to messages holding all of those lines.
    fn log(&self, range: &str, grep: &[String]) -> Result<Vec<Stamped>> {
        let mut args = vec!["log".to_owned(), "-z".into(), "--format=%H%n%B".into()];
        if !grep.is_empty() {
            args.extend(["--fixed-strings".into(), "--all-match".into()]);
            args.extend(grep.iter().map(|g| format!("--grep={g}")));
        }
        args.extend(["--end-of-options".into(), range.to_owned()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let text = self.ok(&args, "git log")?;
        Ok(text
            .split('\0')
            .filter_map(|entry| {
                let entry = entry.trim_start_matches('\n');
                let (sha, body) = entry.split_once('\n').unwrap_or((entry, ""));
                if sha.len() < 40 {
                    return None;
                }
                let last = body.trim_end().rsplit("\n\n").next().unwrap_or("");
                let trailers = last
                    .lines()
                    .filter_map(|l| l.split_once(": "))
                    .filter(|(k, _)| k.starts_with("Lastgood-"))
                    .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
                    .collect();
                Some(Stamped { sha: sha.to_owned(), trailers })
            })
            .collect())
    }

    fn ours(&self, c: &Stamped) -> bool {
        c.trailers.get("Lastgood-Environment").map(String::as_str) == Some(self.site.env.as_str())
    }

    /// The commit that deployed `release` on this branch, if it is in its history.
    fn deploy_commit(&self, tip: &str, release: ReleaseId) -> Result<Option<String>> {
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
    fn last_change(&self, tip: &str) -> String {
        let out = self
            .run(&["log", "-1", "--format=%h %an: %s", "--end-of-options", tip, "--", &self.cfg.version_file], None);
        match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            _ => "an unknown commit".into(),
        }
    }

    fn message(&self, a: &Activation, kind: &str, title: String, body: Option<String>) -> String {
        let clean = |s: &str| s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
        let mut m = title;
        m.push_str("\n\n");
        if let Some(reason) = &a.reason {
            m.push_str(&format!("Reason: {}\n\n", clean(reason)));
        }
        if let Some(b) = body {
            m.push_str(&b);
            m.push_str("\n\n");
        }
        m.push_str(&format!(
            "Lastgood-Environment: {}\nLastgood-Release: {}\nLastgood-Version: {}\nLastgood-Kind: {kind}\nLastgood-Operation: {}\nLastgood-Actor: {}\n",
            self.site.env,
            a.release.id.0,
            a.release.version,
            a.operation,
            clean(&a.actor)
        ));
        m
    }

    fn checkout(&self, tip: &str) -> Result<()> {
        // A revert cut short by a crash leaves its sequencer state behind.
        let git_dir = self.wc().join(".git");
        if git_dir.join("sequencer").exists() || git_dir.join("REVERT_HEAD").exists() {
            let _ = self.run(&["revert", "--quit"], None);
        }
        // Tracked files are reset; lastgood only ever stages the version file.
        self.ok(&["checkout", "--quiet", "--force", "--detach", tip], "git checkout")?;
        Ok(())
    }

    fn write_version(&self, version: &str) -> Result<()> {
        let path = self.wc().join(&self.cfg.version_file);
        if let Some(dir) = path.parent() {
            ensure_dir(dir)?;
        }
        std::fs::write(&path, format!("{version}\n")).map_err(Error::io("write", &path))?;
        self.ok(&["add", "--", &self.cfg.version_file], "git add")?;
        Ok(())
    }

    fn commit(&self, message: &str, actor: &str) -> Result<String> {
        let out = self.run_as(&["commit", "--quiet", "--no-verify", "-F", "-"], Some(message), actor)?;
        if !out.status.success() {
            return Err(step(format!("git commit: {}", said(&out))));
        }
        // Detached: HEAD holds the new commit's id.
        let head = self.wc().join(".git/HEAD");
        let sha = std::fs::read_to_string(&head).map_err(Error::io("read", &head))?;
        Ok(sha.trim().to_owned())
    }

    fn push(&self, source: &str, lease: Option<&str>) -> Result<Pushed> {
        let dest = format!("{source}:refs/heads/{}", self.cfg.branch);
        let lease = lease.map(|l| format!("--force-with-lease=refs/heads/{}:{l}", self.cfg.branch));
        let mut args = vec!["push", "--quiet", "--no-verify"];
        if let Some(l) = &lease {
            args.push(l);
        }
        args.extend(["origin", dest.as_str()]);
        let out = self.run(&args, None)?;
        if out.status.success() {
            return Ok(Pushed::Done(source.to_owned()));
        }
        let text = String::from_utf8_lossy(&out.stderr);
        if ["non-fast-forward", "fetch first", "stale info", "rejected", "cannot lock ref"]
            .iter()
            .any(|m| text.contains(m))
        {
            return Ok(Pushed::Moved);
        }
        Err(step(format!("cannot push to {} {}: {}", self.cfg.repo, self.cfg.branch, said(&out))))
    }

    /// One attempt at making the branch say `version`.
    fn attempt(&self, a: &Activation, back: bool, tip: &str) -> Result<Pushed> {
        let version = a.release.version.as_str();
        let (env, id) = (&self.site.env, a.release.id);
        match (back, self.cfg.mode) {
            (true, GitopsMode::Reset) => {
                let Some(target) = self.deploy_commit(tip, id)? else {
                    return Err(step(format!(
                        "mode = \"reset\" needs the commit that deployed {id}, and {} has none (trailer Lastgood-Release: {}); \
                         use mode = \"revert\", or deploy {version} again",
                        self.cfg.branch, id.0
                    )));
                };
                let dropped = self.log(&format!("{target}..{tip}"), &[])?;
                if let Some(other) = dropped.iter().find(|c| !self.ours(c)) {
                    return Err(step(format!(
                        "mode = \"reset\" would drop commit {} on {}, which lastgood did not make; \
                         nothing was pushed. Use mode = \"revert\", or move that commit first",
                        &other.sha[..12],
                        self.cfg.branch
                    )));
                }
                if self.version_at(&target)?.as_deref() != Some(version) {
                    return Err(step(format!("the commit that deployed {id} does not set {version}")));
                }
                self.push(&target, Some(tip))
            }
            (true, GitopsMode::Revert) => {
                self.checkout(tip)?;
                let mut reverted = Vec::new();
                if let Some(target) = self.deploy_commit(tip, id)? {
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
                                "reverting lastgood's commits since {id} on {} conflicts ({}); someone else changed {} meanwhile ({}); nothing was pushed",
                                self.cfg.branch,
                                said(&out),
                                self.cfg.version_file,
                                self.last_change(tip)
                            )));
                        }
                        reverted = since;
                    }
                }
                // The reverts restore the target's content; if its deploy commit is no
                // longer in the history, the file is written directly instead.
                let now = std::fs::read_to_string(self.wc().join(&self.cfg.version_file)).unwrap_or_default();
                let direct = now.trim() != version;
                if direct {
                    self.write_version(version)?;
                }
                let short: Vec<&str> = reverted.iter().map(|s| &s[..12]).collect();
                let body = if reverted.is_empty() {
                    format!(
                        "The commit that deployed {id} is not in this branch's history; the version was written directly."
                    )
                } else {
                    format!(
                        "This reverts commit{} {}.{}",
                        if short.len() == 1 { "" } else { "s" },
                        short.join(", "),
                        if direct { " The version was then written directly." } else { "" }
                    )
                };
                let title = format!("lastgood: roll back {env} to {id} ({version})");
                let msg = self.message(a, "rollback", title, Some(body));
                let sha = self.commit(&msg, &a.actor)?;
                self.push(&sha, None)
            }
            (false, _) => {
                self.checkout(tip)?;
                self.write_version(version)?;
                let title = format!("lastgood: deploy {version} to {env} as {id}");
                let msg = self.message(a, "deploy", title, None);
                let sha = self.commit(&msg, &a.actor)?;
                self.push(&sha, None)
            }
        }
    }
}

impl Runtime for GitOps<'_> {
    fn prepare(&self) -> std::result::Result<(), Refusal> {
        usable_dir("lastgood's state folder", &self.site.state_dir())?;
        let branch = format!("refs/heads/{}", self.cfg.branch);
        let repo = format!("the repository {}", self.cfg.repo);
        let out = self
            .command(&self.site.state_dir(), "lastgood")
            .args(["ls-remote", "--end-of-options", &self.cfg.repo, &branch])
            .output()
            .map_err(|e| unusable(&repo, format!("cannot run git: {e}")))?;
        if !out.status.success() {
            return Err(unusable(&repo, format!("it cannot be read: {}", said(&out))));
        }
        if out.stdout.is_empty() {
            return Err(unusable(
                &repo,
                format!("it has no branch {}; create it (with {}) first", self.cfg.branch, self.cfg.version_file),
            ));
        }
        Ok(())
    }

    fn placement(&self) -> Placement {
        Placement::Controller
    }

    /// The release's source tree, for its migrations (exported only when the
    /// environment has some).
    fn export(&self, id: ReleaseId, commit: &str, tree: &mut dyn std::io::Read) -> Result<bool> {
        super::tree::export(self.site, id, commit, tree)
    }

    fn tree(&self, id: ReleaseId) -> Option<PathBuf> {
        Some(super::tree::of(self.site, id))
    }

    fn remove(&self, id: ReleaseId) -> Result<()> {
        super::tree::remove(self.site, id)
    }

    fn activate(&self, a: &Activation) -> Result<String> {
        self.init()?;
        let version = a.release.version.as_str();
        for attempt in 1..=ATTEMPTS {
            let tip = self.fetch()?;
            let now = self.version_at(&tip)?;
            if now.as_deref() == Some(version) {
                return Ok(format!("{} already sets {version} at {}", self.cfg.branch, &tip[..12]));
            }
            if let Some(now) = now.as_deref() {
                if !a.expected.is_empty() && !a.expected.iter().any(|e| e == now) {
                    let expected = a.expected.join(" or ");
                    return Err(step(format!(
                        "{} on {} says {now}, but lastgood last set {expected}: someone else changed the desired version ({}); \
                         lastgood does not overwrite it. Decide which version should run, then deploy it",
                        self.cfg.version_file,
                        self.cfg.branch,
                        self.last_change(&tip)
                    )));
                }
            }
            match self.attempt(a, a.back, &tip)? {
                Pushed::Done(sha) => {
                    let moved =
                        if attempt > 1 { format!(" (the branch moved; attempt {attempt})") } else { String::new() };
                    return Ok(format!(
                        "{} {} now sets {version}: {}{moved}",
                        if a.back && self.cfg.mode == GitopsMode::Reset { "reset" } else { "pushed" },
                        self.cfg.branch,
                        &sha[..12]
                    ));
                }
                Pushed::Moved => continue,
            }
        }
        Err(step(format!(
            "{} in {} moved during each of {ATTEMPTS} attempts to push; nothing of lastgood's was pushed. Try again when it settles",
            self.cfg.branch, self.cfg.repo
        )))
    }

    fn ready(&self, _release: &ReleaseFacts) -> std::result::Result<(), NotReady> {
        Ok(())
    }

    fn workdir(&self, _id: ReleaseId) -> PathBuf {
        self.site.deploy_to.clone()
    }

    /// The version the branch held at the last fetch (read-only: no fetch here).
    fn observe(&self) -> Observed {
        if !self.wc().join(".git").is_dir() {
            return Observed::default();
        }
        Observed { release: None, version: self.version_at(&self.remote_ref()).ok().flatten() }
    }

    fn describe(&self, step: &Step, facts: &StepFacts) -> String {
        let (branch, file) = (&self.cfg.branch, &self.cfg.version_file);
        let version = facts.version.as_deref().unwrap_or("the release's version");
        match step {
            Step::Switch { release } if facts.back && self.cfg.mode == GitopsMode::Reset => format!(
                "move {branch} back to the commit that deployed {release} (sets {version}) with --force-with-lease"
            ),
            Step::Switch { release } if facts.back => {
                format!("revert lastgood's commits on {branch} since {release}, so {file} says {version}; push")
            }
            Step::Switch { .. } => format!("commit {file} = {version} on {branch}; push"),
            Step::Unlink => "nothing to remove: the repository keeps its history".into(),
            other => generic(other, facts),
        }
    }
}

/// The last line git wrote to stderr.
fn said(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    text.trim().lines().last().unwrap_or("failed without a message").to_owned()
}
