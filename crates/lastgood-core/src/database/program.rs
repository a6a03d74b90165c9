//! Running a team's own schema tool (Alembic, or its `current`/`up`/`down_to`
//! commands): one argv in one folder, `DATABASE_URL` in the environment, and what went
//! wrong as typed facts.
//!
//! The URL travels in the environment exactly as written in the config, never in argv
//! (any user can read argv in `/proc`), and any password in it is masked in what the
//! tool printed before that reaches a message. A failure keeps the last lines of BOTH
//! streams: Alembic prints its `FAILED: ...` line on stdout and its tracebacks and logs
//! on stderr, so a message built from either alone can come out blank.
//!
//! This is not where a tool's output is understood ([`super::alembic`] parses
//! Alembic's): it only runs programs and says how they failed. It is a leaf, so the
//! crate's error type can carry [`ToolError`] without an import cycle.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;

use serde::{Deserialize, Serialize};

/// How many lines of each stream a failure keeps.
const TAIL: usize = 8;

/// Why a schema tool could not answer or act.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("cannot start `{program}` in {}: {source}", cwd.display())]
    Spawn { program: String, cwd: PathBuf, source: std::io::Error },

    #[error("`{command}` exited with {status} in {}{}", cwd.display(), tails(stdout, stderr))]
    Failed { command: String, status: String, cwd: PathBuf, stdout: Vec<String>, stderr: Vec<String> },

    /// A file the tool needs is not where it runs.
    #[error("there is no {file} in {}: {what}", dir.display())]
    Missing { file: &'static str, dir: PathBuf, what: String },

    #[error("{tool} has no revision `{rev}` in {}; its revisions are: {}", dir.display(), if known.is_empty() { "none".to_owned() } else { known.join(", ") })]
    UnknownRevision { tool: &'static str, rev: String, dir: PathBuf, known: Vec<String> },

    /// A revision that exists but is on the wrong side of the current one.
    #[error("{what}")]
    Direction { what: String },

    /// A `lastgood db` command this adapter cannot serve.
    #[error("`lastgood db {command}` does not work with adapter = {adapter}: {why}")]
    Unsupported { command: &'static str, adapter: &'static str, why: &'static str },
}

impl ToolError {
    /// SPEC.md exit codes: bad input or config (a missing program or file, an unknown
    /// revision) is 2; a tool that ran and failed is 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Failed { .. } => 1,
            Self::Spawn { source, .. } if source.kind() != std::io::ErrorKind::NotFound => 1,
            Self::Spawn { .. }
            | Self::Missing { .. }
            | Self::UnknownRevision { .. }
            | Self::Direction { .. }
            | Self::Unsupported { .. } => 2,
        }
    }
}

fn tails(stdout: &[String], stderr: &[String]) -> String {
    let mut out = String::new();
    for (name, lines) in [("stdout", stdout), ("stderr", stderr)] {
        if !lines.is_empty() {
            out.push_str(&format!("\n  last lines of {name}:"));
            for l in lines {
                out.push_str(&format!("\n    {l}"));
            }
        }
    }
    if out.is_empty() { ", printing nothing".to_owned() } else { out }
}

/// What a program did: its exit code (None: killed by a signal) and both streams.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn of(out: std::process::Output) -> Self {
        Self {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Somewhere else a schema tool runs: a release's tree on an ssh host, or a compose
/// service's container of a release (see `crate::toolsite`). The environment holds
/// `DATABASE_URL` and the release's variables; it never becomes argv.
pub trait Runner: std::fmt::Debug {
    /// Runs `argv`: the release whose tree or image ran it, and what it did.
    fn run(&self, argv: &[String], env: &[(String, String)]) -> std::io::Result<(u64, Ran)>;
    /// [`Runner::run`] for a command whose output depends only on the release's files:
    /// the place may answer with what the preferred release printed before, and keeps
    /// what it prints now (see `crate::toolcache`).
    fn run_kept(&self, argv: &[String], env: &[(String, String)]) -> std::io::Result<(u64, Ran)> {
        self.run(argv, env)
    }
    /// Where, in words, for messages (`the app container of release 3 on deploy@web1`).
    fn place(&self) -> String;
    /// The release that runs a program whenever it can (the newest candidate).
    fn preferred(&self) -> Option<u64>;
}

thread_local! {
    /// What commands that read only the project's files printed ([`Program::run_pure`]).
    static PURE: std::cell::RefCell<std::collections::HashMap<String, String>> = Default::default();
    /// What commands that read the database's position printed ([`Program::run_state`]).
    static STATE: std::cell::RefCell<std::collections::HashMap<String, String>> = Default::default();
}

/// Whether this process has read nothing of where the database is (or forgot it).
pub fn state_unread() -> bool {
    STATE.with(|c| c.borrow().is_empty())
}

/// Forgets where the database was read to be: an operation that took its lock reads
/// it again (someone may have moved it before), then trusts it until it moves it.
pub fn forget_state() {
    STATE.with(|c| c.borrow_mut().clear());
}

/// One program of a schema tool, ready to run in a folder against a database.
#[derive(Debug, Clone)]
pub struct Program {
    pub cwd: PathBuf,
    /// `DATABASE_URL`, exactly as the tool must see it.
    database_url: String,
    /// Masked in whatever the tool printed (the password of the URL).
    secret: Option<String>,
    /// `LASTGOOD_VERSION`, `LASTGOOD_RELEASE`, `LASTGOOD_COMMIT`, `LASTGOOD_TARGET_REVISION`
    /// and the others, when the tool runs for a release (a deploy, a rollback).
    vars: Vec<(String, String)>,
    /// Where it runs when not in `cwd` on this machine.
    runner: Option<Rc<dyn Runner>>,
}

impl Program {
    pub fn new(cwd: &Path, database_url: String, secret: Option<String>) -> Self {
        Self {
            cwd: cwd.to_path_buf(),
            database_url,
            secret: secret.filter(|s| !s.is_empty()),
            vars: Vec::new(),
            runner: None,
        }
    }

    /// Runs the tool through `runner` (on a host, in a container) from now on; `cwd`
    /// then names that place in messages.
    pub fn set_runner(&mut self, runner: Rc<dyn Runner>) {
        self.cwd = PathBuf::from(runner.place());
        self.runner = Some(runner);
    }

    /// Whether the tool runs somewhere else than `cwd` on this machine (whose files
    /// lastgood cannot look at).
    pub fn elsewhere(&self) -> bool {
        self.runner.is_some()
    }

    /// The variables the tool gets besides `DATABASE_URL` (never in argv).
    pub fn set_vars(&mut self, vars: Vec<(String, String)>) {
        self.vars = vars;
    }

    /// The same tool against another database (a scratch copy).
    pub fn against(&self, database_url: String) -> Self {
        Self { database_url, ..self.clone() }
    }

    /// Runs `argv` in the folder; its stdout when it exits 0.
    pub fn run(&self, argv: &[String], extra: &[(String, String)]) -> Result<String, ToolError> {
        // Whatever it is, it may move the database.
        forget_state();
        self.run_by(argv, extra, false).map(|(_, out)| out)
    }

    /// [`Program::run`], and whether the place that ran it is the one it always runs
    /// in (here, or the runner's preferred release).
    /// `kept`: the command reads only the release's files ([`Runner::run_kept`]).
    fn run_by(&self, argv: &[String], extra: &[(String, String)], kept: bool) -> Result<(bool, String), ToolError> {
        let first = argv.first().cloned().unwrap_or_default();
        let spawn = |source| ToolError::Spawn { program: first.clone(), cwd: self.cwd.clone(), source };
        let ran = match &self.runner {
            Some(runner) => {
                let mut env = vec![("DATABASE_URL".to_owned(), self.database_url.clone())];
                env.extend(self.vars.iter().cloned());
                env.extend(extra.iter().cloned());
                let (by, ran) =
                    if kept { runner.run_kept(argv, &env) } else { runner.run(argv, &env) }.map_err(spawn)?;
                (runner.preferred() == Some(by), ran)
            }
            None => (
                true,
                Ran::of(
                    Command::new(crate::exec::program_path(&first, &self.cwd))
                        .args(argv.iter().skip(1))
                        .current_dir(&self.cwd)
                        .env("DATABASE_URL", &self.database_url)
                        .envs(self.vars.iter().map(|(k, v)| (k, v)))
                        .envs(extra.iter().map(|(k, v)| (k, v)))
                        .stdin(Stdio::null())
                        .output()
                        .map_err(spawn)?,
                ),
            ),
        };
        let (settled, ran) = ran;
        let stdout = self.mask(&ran.stdout);
        if ran.code == Some(0) {
            return Ok((settled, stdout));
        }
        let stderr = self.mask(&ran.stderr);
        let status = match ran.code {
            Some(c) => format!("exit status {c}"),
            None => "a signal".to_owned(),
        };
        Err(ToolError::Failed {
            command: argv.join(" "),
            status,
            cwd: self.cwd.clone(),
            stdout: tail(&stdout),
            stderr: tail(&stderr),
        })
    }

    /// [`Program::run`] for a command whose output depends only on the project's files
    /// (`alembic history --verbose`, offline `--sql`): each such command runs once per
    /// process and place. A tool in a container costs a container start and an
    /// interpreter per run; a rollback plans before it takes the lock and again in its
    /// step, and both need the same history and SQL. Failures are not kept, nor what
    /// an older release ran because the preferred one could not (yet: a deploy plans
    /// before its release is built). The release's variables (`LASTGOOD_*`) are not part
    /// of the key: they say what lastgood is moving to, not what the files hold. Where a
    /// runner runs it (a host, a container), the place keeps it too, beside the release,
    /// for the next process ([`Runner::run_kept`]).
    pub fn run_pure(&self, argv: &[String]) -> Result<String, ToolError> {
        let key = self.key(argv);
        if let Some(out) = PURE.with(|c| c.borrow().get(&key).cloned()) {
            return Ok(out);
        }
        let (settled, out) = self.run_by(argv, &[], true)?;
        if settled {
            PURE.with(|c| c.borrow_mut().insert(key, out.clone()));
        }
        Ok(out)
    }

    /// [`Program::run`] for a command that reads where the database is (`alembic
    /// current`): asked again only after [`forget_state`] (an operation takes its lock)
    /// or after this process ran anything else through a program (a migration).
    pub fn run_state(&self, argv: &[String]) -> Result<String, ToolError> {
        let key = self.key(argv);
        if let Some(out) = STATE.with(|c| c.borrow().get(&key).cloned()) {
            return Ok(out);
        }
        let (_, out) = self.run_by(argv, &[], false)?;
        STATE.with(|c| c.borrow_mut().insert(key, out.clone()));
        Ok(out)
    }

    /// What [`Program::run_state`] answers for `argv` until the database moves: where
    /// it was read to be by other means.
    pub fn remember_state(&self, argv: &[String], out: String) {
        let key = self.key(argv);
        STATE.with(|c| c.borrow_mut().insert(key, out));
    }

    fn key(&self, argv: &[String]) -> String {
        let place = self.runner.as_ref().map(|r| r.place()).unwrap_or_default();
        [self.cwd.display().to_string(), place, self.database_url.clone(), argv.join("\0")].join("\u{1}")
    }

    fn mask(&self, text: &str) -> String {
        match &self.secret {
            Some(s) => text.replace(s.as_str(), "***"),
            None => text.to_owned(),
        }
    }
}

/// The last non-blank lines of a stream.
fn tail(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(TAIL)..].iter().map(|l| (*l).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn a_failure_keeps_the_last_lines_of_both_streams_with_the_password_masked() {
        let d = tempfile::tempdir().unwrap();
        let p = Program::new(d.path(), "postgres://u:hunter22@h/d".into(), Some("hunter22".into()));
        let err = p.run(&sh("echo \"FAILED: no luck with $DATABASE_URL\"; echo trace >&2; exit 3"), &[]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("exit status 3"), "{text}");
        assert!(text.contains("FAILED: no luck with postgres://u:***@h/d"), "{text}");
        assert!(text.contains("last lines of stderr:\n    trace"), "{text}");
        assert!(!text.contains("hunter22"), "{text}");
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn a_silent_failure_says_so_and_a_missing_program_is_bad_config() {
        let d = tempfile::tempdir().unwrap();
        let p = Program::new(d.path(), "sqlite:////x.db".into(), None);
        let text = p.run(&sh("exit 1"), &[]).unwrap_err().to_string();
        assert!(text.ends_with(&format!("exit status 1 in {}, printing nothing", d.path().display())), "{text}");
        let err = p.run(&["./no-such-tool".into()], &[]).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        assert!(err.to_string().contains("no-such-tool"), "{err}");
    }
}
