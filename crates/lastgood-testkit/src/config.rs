//! A typed `lastgood.toml` for one test environment: what a test means ("the sample
//! app with a build step and a SQLite database") instead of TOML strings appended to a
//! table.
//!
//! [`Config::new`] is the config every integration test starts from: the `releases`
//! runtime deploying `repo/` into `srv/`, running the sample app on the workspace's
//! port with `app.env`, and one HTTP check that expects the release's version. Each
//! method changes one part; [`Config::render`] writes the TOML for a [`TestEnv`], which
//! knows the paths and the port. What has no method yet goes in as a key
//! ([`Config::key`]) or as raw TOML ([`Config::extra`], [`Config::table`]), so no test
//! has to fall back to editing the rendered text.

use std::fmt::Write as _;

use crate::{TestEnv, sample_app};

/// A TOML value of a key (strings are quoted and escaped when rendered).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
}

impl Value {
    fn render(&self) -> String {
        match self {
            Self::Str(s) => quote(s),
            Self::Int(n) => n.to_string(),
            Self::Bool(b) => b.to_string(),
            Self::List(items) => format!("[{}]", items.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ")),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}
impl<const N: usize> From<[&str; N]> for Value {
    fn from(items: [&str; N]) -> Self {
        Self::List(items.iter().map(|s| (*s).to_owned()).collect())
    }
}
impl From<Vec<String>> for Value {
    fn from(items: Vec<String>) -> Self {
        Self::List(items)
    }
}

/// The keys of one table, in the order they were first set; setting a key again
/// replaces its value in place.
#[derive(Debug, Clone, Default, PartialEq)]
struct Keys(Vec<(String, Value)>);

impl Keys {
    fn set(&mut self, name: &str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }
    fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| k != name);
    }
    fn render(&self, t: &mut String) {
        for (k, v) in &self.0 {
            let _ = writeln!(t, "{k} = {}", v.render());
        }
    }
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{:04X}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// What serves a release.
#[derive(Debug, Clone, PartialEq)]
pub enum Process {
    /// `run`: the sample app on the workspace's port, with `app.env` (the default).
    SampleApp,
    /// `run = [argv]`: lastgood supervises this process.
    Run(Vec<String>),
    /// `restart = [argv]`: the team's own supervisor restarts the app.
    Restart(Vec<String>),
    /// Neither (runtimes that switch by themselves).
    Nothing,
}

/// One `[[environments.ENV.checks]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    kind: CheckKind,
    keys: Keys,
}

#[derive(Debug, Clone, PartialEq)]
enum CheckKind {
    /// A path on the sample app's port.
    Http(String),
    /// The sample app's port.
    Tcp,
    Command(Vec<String>),
}

impl Check {
    /// `http = "http://127.0.0.1:<port><path>"`, on the workspace's port.
    pub fn http(path: &str) -> Self {
        Self { kind: CheckKind::Http(path.to_owned()), keys: Keys::default() }
    }
    /// `tcp = "127.0.0.1:<port>"`.
    pub fn tcp() -> Self {
        Self { kind: CheckKind::Tcp, keys: Keys::default() }
    }
    /// `command = [argv]`.
    pub fn command<const N: usize>(argv: [&str; N]) -> Self {
        Self { kind: CheckKind::Command(argv.iter().map(|s| (*s).to_owned()).collect()), keys: Keys::default() }
    }
    /// The check every test environment has: the sample app's `/health` answering the
    /// release's version, polled quickly.
    pub fn health() -> Self {
        Self::http("/health")
            .key("expect_body", "{version}")
            .key("interval", "50ms")
            .key("timeout", "1s")
            .key("retries", 8)
    }
    /// Any key of the check (`expect_status`, `retries`, `interval`...).
    pub fn key(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.keys.set(name, value.into());
        self
    }
    /// Drops a key (the default check without `expect_body`, say).
    pub fn without(mut self, name: &str) -> Self {
        self.keys.remove(name);
        self
    }
}

/// `[environments.ENV.database]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Database {
    keys: Keys,
}

impl Database {
    /// `url = URL` (PostgreSQL, or `sqlite://file`).
    pub fn url(url: &str) -> Self {
        Self { keys: Keys::default() }.key("url", url)
    }
    /// `url_env = VAR`: the URL is read from the environment variable when used.
    pub fn url_env(var: &str) -> Self {
        Self { keys: Keys::default() }.key("url_env", var)
    }
    /// `url = "sqlite://FILE"`, relative to the config's folder.
    pub fn sqlite(file: &str) -> Self {
        Self::url(&format!("sqlite://{file}"))
    }
    /// `migrations = DIR`, relative to the release.
    pub fn migrations(self, dir: &str) -> Self {
        self.key("migrations", dir)
    }
    /// `adapter = "builtin" | "alembic" | "command"`.
    pub fn adapter(self, adapter: &str) -> Self {
        self.key("adapter", adapter)
    }
    /// Any other key of the section.
    pub fn key(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.keys.set(name, value.into());
        self
    }
}

/// One environment's `lastgood.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    env: String,
    runtime: Option<String>,
    hosts: Vec<String>,
    source: Option<String>,
    deploy_to: Option<String>,
    build: Option<Vec<String>>,
    process: Process,
    config_files: Vec<String>,
    keys: Keys,
    extra: Vec<String>,
    database: Option<Database>,
    checks: Vec<Check>,
    tables: Vec<String>,
    /// `[ENV.proxy]`: `listen` is the workspace's port; the app and the checks use `{port}`.
    proxy: Option<Keys>,
    /// The sample app's `--warmup` in milliseconds.
    warmup_ms: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl Config {
    /// `production`, deploying `repo/` to `srv/` with the sample app and its health check.
    pub fn new() -> Self {
        Self {
            env: "production".into(),
            runtime: None,
            hosts: Vec::new(),
            source: Some("repo".into()),
            deploy_to: Some("srv".into()),
            build: None,
            process: Process::SampleApp,
            config_files: vec!["app.env".into()],
            keys: Keys(vec![("stop_timeout".into(), "2s".into())]),
            extra: Vec::new(),
            database: None,
            checks: vec![Check::health()],
            tables: Vec::new(),
            proxy: None,
            warmup_ms: None,
        }
    }

    /// `[ENV.proxy]` with `listen` on the workspace's port (what [`TestEnv::get`]
    /// reaches) and `drain = "5s"`: the sample app and the port checks move to `{port}`.
    pub fn proxy(mut self) -> Self {
        self.proxy = Some(Keys(vec![("drain".into(), "5s".into())]));
        self
    }
    /// Any key of `[ENV.proxy]` (`drain`, `ports`); turns the proxy on.
    pub fn proxy_key(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.proxy.get_or_insert_with(Keys::default).set(name, value.into());
        self
    }
    /// The sample app waits this long before it listens (`--warmup`).
    pub fn warmup_ms(mut self, ms: u64) -> Self {
        self.warmup_ms = Some(ms);
        self
    }

    /// The environment's name (default `production`).
    pub fn environment(mut self, name: &str) -> Self {
        self.env = name.to_owned();
        self
    }
    /// `runtime = NAME` (default: not written, which means `releases`).
    pub fn runtime(mut self, runtime: &str) -> Self {
        self.runtime = Some(runtime.to_owned());
        self
    }
    /// `hosts = [...]`.
    pub fn hosts<const N: usize>(mut self, hosts: [&str; N]) -> Self {
        self.hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
        self
    }
    /// `source = DIR`, or none.
    pub fn source(mut self, dir: Option<&str>) -> Self {
        self.source = dir.map(str::to_owned);
        self
    }
    /// `deploy_to = DIR`, or none.
    pub fn deploy_to(mut self, dir: Option<&str>) -> Self {
        self.deploy_to = dir.map(str::to_owned);
        self
    }
    /// `build = [argv]`.
    pub fn build<const N: usize>(mut self, argv: [&str; N]) -> Self {
        self.build = Some(argv.iter().map(|s| (*s).to_owned()).collect());
        self
    }
    /// `run = [argv]` instead of the sample app.
    pub fn run<const N: usize>(mut self, argv: [&str; N]) -> Self {
        self.process = Process::Run(argv.iter().map(|s| (*s).to_owned()).collect());
        self
    }
    /// `restart = [argv]` instead of `run`.
    pub fn restart<const N: usize>(mut self, argv: [&str; N]) -> Self {
        self.process = Process::Restart(argv.iter().map(|s| (*s).to_owned()).collect());
        self
    }
    /// Neither `run` nor `restart`.
    pub fn no_process(mut self) -> Self {
        self.process = Process::Nothing;
        self
    }
    /// `config_files = [...]` (default `["app.env"]`).
    pub fn config_files<const N: usize>(mut self, files: [&str; N]) -> Self {
        self.config_files = files.iter().map(|f| (*f).to_owned()).collect();
        self
    }
    /// Any other key of the environment table (`keep_releases`, `lease`...); a key set
    /// twice keeps the last value.
    pub fn key(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.keys.set(name, value.into());
        self
    }
    /// Raw TOML lines at the end of the environment table.
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push(toml.to_owned());
        self
    }
    /// `[environments.ENV.database]`.
    pub fn database(mut self, db: Database) -> Self {
        self.database = Some(db);
        self
    }
    /// Replaces the checks (none: `checks(vec![])`).
    pub fn checks(mut self, checks: Vec<Check>) -> Self {
        self.checks = checks;
        self
    }
    /// Adds a check after the others.
    pub fn check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }
    /// Raw TOML appended after everything else (`[environments.ENV.notify]`, `[ledger]`).
    pub fn table(mut self, toml: &str) -> Self {
        self.tables.push(toml.to_owned());
        self
    }

    /// The port the sample app listens on and its checks reach: the workspace's, or
    /// with a proxy the one lastgood gives each release.
    fn app_port(&self, env: &TestEnv) -> String {
        if self.proxy.is_some() { "{port}".into() } else { env.port.to_string() }
    }

    /// The TOML for `env`'s workspace (its sample app, port and `app.env`).
    pub fn render(&self, env: &TestEnv) -> String {
        let table = format!("environments.{}", self.env);
        let mut t = format!("[{table}]\n");
        let mut line = |k: &str, v: Value| {
            let _ = writeln!(t, "{k} = {}", v.render());
        };
        if let Some(r) = &self.runtime {
            line("runtime", r.as_str().into());
        }
        if !self.hosts.is_empty() {
            line("hosts", self.hosts.clone().into());
        }
        if let Some(s) = &self.source {
            line("source", s.as_str().into());
        }
        if let Some(d) = &self.deploy_to {
            line("deploy_to", d.as_str().into());
        }
        if let Some(b) = &self.build {
            line("build", b.clone().into());
        }
        match &self.process {
            Process::SampleApp => {
                let app = sample_app(&env.bin).display().to_string();
                let listen = format!("127.0.0.1:{}", self.app_port(env));
                let config = env.path().join("app.env").display().to_string();
                let mut argv: Vec<String> =
                    [app.as_str(), "--listen", listen.as_str(), "--config", config.as_str()].map(str::to_owned).into();
                if let Some(ms) = self.warmup_ms {
                    argv.extend(["--warmup".to_owned(), ms.to_string()]);
                }
                line("run", argv.into());
            }
            Process::Run(argv) => line("run", argv.clone().into()),
            Process::Restart(argv) => line("restart", argv.clone().into()),
            Process::Nothing => {}
        }
        if !self.config_files.is_empty() {
            line("config_files", self.config_files.clone().into());
        }
        self.keys.render(&mut t);
        for raw in &self.extra {
            t.push_str(raw.trim_end());
            t.push('\n');
        }
        if let Some(db) = &self.database {
            let _ = writeln!(t, "\n[{table}.database]");
            db.keys.render(&mut t);
        }
        if let Some(proxy) = &self.proxy {
            let _ = writeln!(t, "\n[{table}.proxy]\nlisten = {}", quote(&format!("127.0.0.1:{}", env.port)));
            proxy.render(&mut t);
        }
        for c in &self.checks {
            let _ = writeln!(t, "\n[[{table}.checks]]");
            let _ = match &c.kind {
                CheckKind::Http(path) => {
                    writeln!(t, "http = {}", quote(&format!("http://127.0.0.1:{}{path}", self.app_port(env))))
                }
                CheckKind::Tcp => writeln!(t, "tcp = {}", quote(&format!("127.0.0.1:{}", self.app_port(env)))),
                CheckKind::Command(argv) => writeln!(t, "command = {}", Value::List(argv.clone()).render()),
            };
            c.keys.render(&mut t);
        }
        for raw in &self.tables {
            t.push('\n');
            t.push_str(raw.trim_end());
            t.push('\n');
        }
        if env.ledger_db.is_some() && !self.tables.iter().any(|r| r.trim_start().starts_with("[ledger]")) {
            let _ = writeln!(t, "\n[ledger]\nurl_env = {}", quote(crate::LEDGER_URL_VAR));
        }
        t
    }
}
