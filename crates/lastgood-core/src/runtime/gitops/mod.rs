//! The `gitops` runtime: what should run is what a branch of a git repository says,
//! and a controller (Argo CD, Flux, a pipeline) applies it. Two ways of saying it:
//!
//! - [`file`]: a `version_file` holds the version. Deploying is writing it, committing
//!   and pushing; rolling back is reverting lastgood's own commits since the target
//!   (history kept), or with `mode = "reset"` moving the branch back to the target's
//!   commit with `--force-with-lease`.
//! - [`branch`] (no `version_file`): the branch's commits are the releases, as on a
//!   release branch CI merges into. Deploying records a commit the branch already
//!   points at, or fast-forwards the branch to it; rolling back commits, on top of the
//!   tip, the target's tree (`git revert` of every commit after it, in one commit), or
//!   with `mode = "reset"` moves the branch back.
//!
//! Either way, `trigger` (optional) then starts the pipeline, once per push: a marker
//! written before it runs keeps a resumed operation from starting it twice.
//!
//! Rules that keep other people's work safe:
//! - lastgood works in its own clone (`<state>/gitops`), fetched before every attempt;
//! - a change by someone else to the desired version is found before anything is
//!   recorded ([`super::Runtime::desired`]) and refused; a push rejected because the
//!   branch moved is rebuilt on the new tip and retried, never forced;
//! - `reset` refuses when a commit it would drop is neither lastgood's own nor one a
//!   release of the environment names.
//!
//! Each commit lastgood makes carries trailers (`Lastgood-Environment`,
//! `Lastgood-Release`, `Lastgood-Version`, `Lastgood-Kind`, `Lastgood-Operation`), so
//! the repository's history says what lastgood did. Every git call is an argv with
//! `--end-of-options` before revisions; messages travel on stdin; prompts are off.

mod branch;
mod file;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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
/// How long `status` waits for a fetch before it reports what it last saw.
const STATUS_FETCH: Duration = Duration::from_secs(10);
/// How old a fetch made earlier in this command may be for a later step to use it.
const REUSE_FETCH: Duration = Duration::from_secs(10);

/// The clone this process last fetched, and when.
fn fetched() -> &'static std::sync::Mutex<Option<(PathBuf, Instant)>> {
    static FETCHED: std::sync::Mutex<Option<(PathBuf, Instant)>> = std::sync::Mutex::new(None);
    &FETCHED
}

pub struct GitOps<'a> {
    pub site: &'a Site,
    pub cfg: &'a Gitops,
}

/// One commit read back from the repository, with lastgood's trailers if it has them.
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

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
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

    /// The arguments of a fetch: the branch, and in branch mode the tags (a version may
    /// name one).
    fn fetch_args(&self) -> Vec<&'static str> {
        let mut args = vec!["fetch", "--quiet", "origin"];
        args.insert(2, if self.cfg.version_file.is_some() { "--no-tags" } else { "--tags" });
        args
    }

    /// Fetches the branch; its tip.
    fn fetch(&self) -> Result<String> {
        self.ok(&self.fetch_args(), &format!("cannot fetch {} from {}", self.cfg.branch, self.cfg.repo))?;
        self.fetched_now();
        self.tip()
    }

    fn fetched_now(&self) {
        *fetched().lock().unwrap_or_else(|p| p.into_inner()) = Some((self.wc(), Instant::now()));
    }

    /// The tip as of a fetch this process made moments ago, else a fetch. One command
    /// plans, preflights and switches: it talks to the remote once before its push. A
    /// branch that moved since makes the push fail (a plain push, or a lease on the tip
    /// seen), and the next attempt fetches again.
    fn fresh_tip(&self) -> Result<String> {
        let recent = fetched()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|(wc, at)| *wc == self.wc() && at.elapsed() < REUSE_FETCH);
        if recent { self.tip() } else { self.fetch() }
    }

    /// The branch's tip as of the last fetch (or push): its loose ref file when git
    /// left one (fetch and push write them; one process fewer per read), else git.
    fn tip(&self) -> Result<String> {
        let loose = self.wc().join(".git").join(self.remote_ref());
        if let Ok(text) = std::fs::read_to_string(loose) {
            let sha = text.trim();
            if sha.len() >= 40 && sha.chars().all(|c| c.is_ascii_hexdigit()) {
                return Ok(sha.to_owned());
            }
        }
        let tip = self.ok(&["rev-parse", "--verify", "--end-of-options", &self.remote_ref()], "rev-parse")?;
        Ok(tip.trim().to_owned())
    }

    /// A fetch that gives up after `limit` (for `status`, which must answer).
    fn fetch_within(&self, limit: Duration) -> bool {
        if self.init().is_err() {
            return false;
        }
        let mut c = self.command(&self.wc(), "lastgood");
        c.args(self.fetch_args()).stdout(Stdio::null()).stderr(Stdio::null());
        let Ok(mut child) = c.spawn() else { return false };
        let deadline = Instant::now() + limit;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
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

    /// The first commit of `tip`'s history since `target` that a reset would drop and
    /// must not: neither lastgood's own for this environment nor one of `known`.
    fn foreign_since(&self, target: &str, tip: &str, known: &[String]) -> Result<Option<String>> {
        Ok(self
            .log(&format!("{target}..{tip}"), &[])?
            .into_iter()
            .find(|c| !self.ours(c) && !known.iter().any(|k| k == &c.sha))
            .map(|c| c.sha))
    }

    fn message(&self, a: &Activation, kind: &str, title: String, body: Option<String>) -> String {
        let clean = |s: &str| s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
        let mut m = title;
        m.push_str("\n\n");
        // The reason of the operation doing this: a rollback's own, or for a deploy
        // that returns by itself, that it does and why the deploy happened.
        let reason = match (a.back, a.kind, &a.reason) {
            (true, crate::model::OperationKind::Deploy, Some(r)) => {
                Some(format!("automatic rollback of a failed deploy (the deploy's reason: {r})"))
            }
            (true, crate::model::OperationKind::Deploy, None) => Some("automatic rollback of a failed deploy".into()),
            (_, _, r) => r.clone(),
        };
        if let Some(reason) = reason {
            m.push_str(&format!("Reason: {}\n\n", clean(&reason)));
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

    /// Runs `trigger` once for this push: a marker written before it starts keeps a
    /// resumed operation from starting the pipeline a second time for the same tip.
    fn trigger(&self, a: &Activation, tip: &str) -> Result<Option<String>> {
        let Some(argv) = &self.cfg.trigger else { return Ok(None) };
        let dir = self.site.state_dir().join("triggers");
        ensure_dir(&dir)?;
        let marker = dir.join(format!("{}-{}-{}", a.operation, a.release.id.0, short(tip)));
        if marker.exists() {
            return Ok(Some(format!("the trigger already ran for {} (not run again)", short(tip))));
        }
        std::fs::write(&marker, b"started\n").map_err(Error::io("write", &marker))?;
        crate::failpoint::hit("mid:trigger");
        let log = self.site.state_dir().join(format!("trigger-{}.log", a.release.id.0));
        let mut vars = a.vars.clone();
        vars.push(("LASTGOOD_HOST".into(), self.site.host.clone()));
        crate::exec::run_logged(argv, &self.site.deploy_to, &vars, &log).map_err(|e| step(format!("trigger: {e}")))?;
        Ok(Some("the trigger ran".into()))
    }

    /// Pushes (or finds in place) what makes the branch say `a.release`, retrying on a
    /// moving branch; then the trigger. The line for the record.
    fn activate_with(&self, a: &Activation, attempt: impl Fn(&str) -> Result<Option<Pushed>>) -> Result<String> {
        self.init()?;
        let version = a.release.version.as_str();
        for n in 1..=ATTEMPTS {
            let tip = if n == 1 { self.fresh_tip()? } else { self.fetch()? };
            let (line, tip) = match attempt(&tip)? {
                // Nothing moved and the ledger says it serves (an abort before any
                // push): there is nothing for the pipeline to do.
                None if a.current => {
                    return Ok(format!(
                        "{} already sets {version} at {}, which serves: nothing to trigger",
                        self.cfg.branch,
                        short(&tip)
                    ));
                }
                None => (format!("{} already sets {version} at {}", self.cfg.branch, short(&tip)), tip),
                Some(Pushed::Moved) => continue,
                Some(Pushed::Done(sha)) => {
                    crate::failpoint::hit("mid:pushed");
                    let moved = if n > 1 { format!(" (the branch moved; attempt {n})") } else { String::new() };
                    let how = if a.back && self.cfg.mode == GitopsMode::Reset { "reset" } else { "pushed" };
                    (format!("{how} {} now sets {version}: {}{moved}", self.cfg.branch, short(&sha)), sha)
                }
            };
            return Ok(match self.trigger(a, &tip)? {
                Some(t) => format!("{line}; {t}"),
                None => line,
            });
        }
        Err(step(format!(
            "{} in {} moved during each of {ATTEMPTS} attempts to push; nothing of lastgood's was pushed. Try again when it settles",
            self.cfg.branch, self.cfg.repo
        )))
    }
}

impl Runtime for GitOps<'_> {
    /// The repository is readable and has the branch: proved by the fetch the switch
    /// would start with anyway (lastgood's clone is created the first time), so a
    /// rollback talks to the remote once before its push, not twice.
    fn prepare(&self) -> std::result::Result<(), Refusal> {
        usable_dir("lastgood's state folder", &self.site.state_dir())?;
        let repo = format!("the repository {}", self.cfg.repo);
        self.init().map_err(|e| unusable(&repo, e))?;
        let out = self.run(&self.fetch_args(), None).map_err(|e| unusable(&repo, e))?;
        if out.status.success() {
            self.fetched_now();
            return Ok(());
        }
        if String::from_utf8_lossy(&out.stderr).contains("couldn't find remote ref") {
            let with = self.cfg.version_file.as_deref().map(|f| format!(" (with {f})")).unwrap_or_default();
            return Err(unusable(&repo, format!("it has no branch {}; create it{with} first", self.cfg.branch)));
        }
        Err(unusable(&repo, format!("it cannot be read: {}", said(&out))))
    }

    fn placement(&self) -> Placement {
        Placement::Controller
    }

    fn check_version(&self, version: &str) -> Result<()> {
        match &self.cfg.version_file {
            Some(_) => Ok(()),
            None => self.branch_check(version),
        }
    }

    fn resolve(&self, version: &str, since: Option<&str>) -> Result<Option<(String, Vec<String>)>> {
        match &self.cfg.version_file {
            Some(_) => Ok(None),
            None => self.branch_resolve(version, since).map(Some),
        }
    }

    fn desired(&self) -> std::result::Result<Option<(String, String)>, Refusal> {
        let Some(file) = &self.cfg.version_file else { return Ok(None) };
        let fresh = self.init().and_then(|()| self.fresh_tip());
        let tip = fresh.map_err(|e| unusable(format!("the repository {}", self.cfg.repo), e))?;
        let what = format!("{file} on {}", self.cfg.branch);
        Ok(self.version_at(file, &tip).ok().flatten().map(|v| (what, v)))
    }

    fn changed_by(&self) -> Option<String> {
        let file = self.cfg.version_file.as_deref()?;
        Some(self.last_change(file, &self.remote_ref()))
    }

    fn check_back(&self, to: &ReleaseFacts, known: &[String]) -> std::result::Result<(), Refusal> {
        if self.cfg.mode != GitopsMode::Reset {
            return Ok(());
        }
        let repo = || format!("the repository {}", self.cfg.repo);
        let tip = self.init().and_then(|()| self.fresh_tip()).map_err(|e| unusable(repo(), e))?;
        let target = match &self.cfg.version_file {
            Some(_) => self.deploy_commit_of(&tip, to.id).map_err(|e| unusable(repo(), e))?,
            None => to.commit.clone(),
        };
        let Some(target) = target else { return Ok(()) };
        match self.foreign_since(&target, &tip, known) {
            Ok(Some(other)) => Err(Refusal::Repository { detail: self.would_drop(&other) }),
            Ok(None) => Ok(()),
            Err(e) => Err(unusable(repo(), e)),
        }
    }

    fn deploy_commit(&self, back: bool) -> Option<String> {
        // A version-file rollback makes an older deploy commit's content current again;
        // the release keeps the commit that deployed it. In branch mode the release is
        // wherever lastgood left the branch.
        if back && self.cfg.version_file.is_some() {
            return None;
        }
        self.tip().ok()
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
        match &self.cfg.version_file {
            Some(file) => self.activate_with(a, |tip| self.file_attempt(file, a, tip)),
            None => self.activate_with(a, |tip| self.branch_attempt(a, tip)),
        }
    }

    fn ready(&self, _release: &ReleaseFacts) -> std::result::Result<(), NotReady> {
        Ok(())
    }

    fn workdir(&self, _id: ReleaseId) -> PathBuf {
        self.site.deploy_to.clone()
    }

    /// The version the branch held at the last fetch (read-only: no fetch here). In
    /// branch mode a version is a commit or a tag, and the tip is shown as a commit.
    fn observe(&self) -> Observed {
        if !self.wc().join(".git").is_dir() {
            return Observed::default();
        }
        let version = match &self.cfg.version_file {
            Some(file) => self.version_at(file, &self.remote_ref()).ok().flatten(),
            None => None,
        };
        Observed { release: None, version }
    }

    fn observe_fresh(&self) -> Observed {
        self.fetch_within(STATUS_FETCH);
        self.observe()
    }

    fn describe(&self, step: &Step, facts: &StepFacts) -> String {
        let branch = &self.cfg.branch;
        let version = facts.version.as_deref().unwrap_or("the release's version");
        let then = if self.cfg.trigger.is_some() { "; then run the trigger" } else { "" };
        let what = match (step, &self.cfg.version_file) {
            (Step::Switch { release }, _) if facts.back && self.cfg.mode == GitopsMode::Reset => format!(
                "move {branch} back to the commit of {release} ({version}) with --force-with-lease (no commit is made; refused if it would drop a commit no release of this environment deployed)"
            ),
            (Step::Switch { release }, Some(file)) if facts.back => {
                format!(
                    "revert lastgood's commits on {branch} since {release}, so {file} says {version} (written directly if {release}'s deploy commit is no longer in {branch}'s history); push"
                )
            }
            (Step::Switch { release }, None) if facts.back => format!(
                "revert every commit on {branch} after {release} ({version}), newest first, in one commit; push (history kept, nothing forced)"
            ),
            (Step::Switch { .. }, Some(file)) => format!("commit {file} = {version} on {branch}; push"),
            (Step::Switch { .. }, None) => {
                format!("record {version} if {branch} points at it, else push it to {branch} (fast-forward only)")
            }
            (Step::Unlink, _) => return "nothing to remove: the repository keeps its history".into(),
            (other, _) => return generic(other, facts),
        };
        format!("{what}{then}")
    }
}

/// The last line git wrote to stderr.
fn said(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    text.trim().lines().last().unwrap_or("failed without a message").to_owned()
}
