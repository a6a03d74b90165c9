//! [`Test`]: one run of `lastgood` in a [`TestEnv`], with the config it runs under, its
//! arguments, and what it must exit with and print, in the spirit of just's
//! `tests/test.rs`.
//!
//! The expectations are declared before the run and all checked after it, so a failure
//! names every mismatch and shows the whole output once:
//!
//! ```ignore
//! env.test()
//!     .config(Config::new().key("lease", "3s"))
//!     .args(["rollback", "production", "--to", "1", "--reason", "t"])
//!     .status(3)
//!     .stderr_has("locked by tester@")
//!     .run();
//! ```
//!
//! The expected exit code is 0 unless [`Test::status`] says otherwise, as in just: a
//! test that forgets to say what it expects still fails on an error. [`Test::run`]
//! returns the [`Run`] for what a pattern cannot say (JSON fields, the app's state).

use crate::config::Config;
use crate::{Run, TestEnv};

#[derive(Debug, Clone)]
enum Expect {
    Is(String),
    Has(String),
    Lacks(String),
}

impl Expect {
    fn mismatch(&self, stream: &str, text: &str) -> Option<String> {
        match self {
            Self::Is(want) if text != want => Some(format!("{stream} is not exactly:\n{want}")),
            Self::Has(part) if !text.contains(part.as_str()) => Some(format!("{stream} lacks {part:?}")),
            Self::Lacks(part) if text.contains(part.as_str()) => Some(format!("{stream} contains {part:?}")),
            _ => None,
        }
    }
}

#[must_use = "a Test does nothing until .run()"]
pub struct Test<'a> {
    env: &'a TestEnv,
    config: Option<Config>,
    args: Vec<String>,
    vars: Vec<(String, String)>,
    status: i32,
    stdout: Vec<Expect>,
    stderr: Vec<Expect>,
}

impl<'a> Test<'a> {
    pub fn new(env: &'a TestEnv) -> Self {
        Self {
            env,
            config: None,
            args: Vec::new(),
            vars: Vec::new(),
            status: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// The config to write to `lastgood.toml` before the run (it stays for later runs).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// An environment variable for this run only.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.vars.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The exit code expected (default 0).
    pub fn status(mut self, code: i32) -> Self {
        self.status = code;
        self
    }

    /// Stdout must be exactly `text`.
    pub fn stdout(mut self, text: &str) -> Self {
        self.stdout.push(Expect::Is(text.to_owned()));
        self
    }
    /// Stdout must contain `part` (may be given several times).
    pub fn stdout_has(mut self, part: &str) -> Self {
        self.stdout.push(Expect::Has(part.to_owned()));
        self
    }
    /// Stdout must not contain `part`.
    pub fn stdout_lacks(mut self, part: &str) -> Self {
        self.stdout.push(Expect::Lacks(part.to_owned()));
        self
    }
    /// Stderr must be exactly `text`.
    pub fn stderr(mut self, text: &str) -> Self {
        self.stderr.push(Expect::Is(text.to_owned()));
        self
    }
    /// Stderr must contain `part` (may be given several times).
    pub fn stderr_has(mut self, part: &str) -> Self {
        self.stderr.push(Expect::Has(part.to_owned()));
        self
    }
    /// Stderr must not contain `part`.
    pub fn stderr_lacks(mut self, part: &str) -> Self {
        self.stderr.push(Expect::Lacks(part.to_owned()));
        self
    }

    /// Writes the config (if given), runs `lastgood`, and checks every expectation.
    #[track_caller]
    pub fn run(self) -> Run {
        if let Some(c) = &self.config {
            self.env.configure(c);
        }
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut cmd = self.env.cmd(&args);
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        let run = Run::from(cmd.output().expect("run lastgood"));
        let mut problems = Vec::new();
        if run.code != Some(self.status) {
            problems.push(format!("exit code {:?} (signal {:?}), expected {}", run.code, run.signal, self.status));
        }
        problems.extend(self.stdout.iter().filter_map(|e| e.mismatch("stdout", &run.stdout)));
        problems.extend(self.stderr.iter().filter_map(|e| e.mismatch("stderr", &run.stderr)));
        assert!(
            problems.is_empty(),
            "lastgood {args:?}:\n- {}\n----- stdout -----\n{}\n----- stderr -----\n{}",
            problems.join("\n- "),
            run.stdout,
            run.stderr
        );
        run
    }
}
