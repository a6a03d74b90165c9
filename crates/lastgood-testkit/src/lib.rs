//! Test fixtures for lastgood's integration tests: a temporary workspace with a real
//! git repository of tagged versions, a `lastgood.toml`, the built `lastgood` binary
//! and the sample app it deploys, on a free loopback port.
//!
//! Nothing here fakes lastgood's parts: the repository is driven with `git`, the app
//! is a real HTTP server that lastgood starts, and every command is the real binary.
//!
//! A test describes its config with [`Config`], runs commands with [`Test`]
//! (`env.test().args([..]).status(2).stderr_has(..).run()`), and snapshots whole
//! outputs with the filters of [`snapshot`].
//!
//! [`fleet`] starts real ssh hosts on loopback addresses, and [`compose_app`] writes a
//! team's docker-compose app (built from source, its schema migrated by Alembic inside
//! its container) into the repository as tagged releases.

pub mod compose_app;
pub mod config;
pub mod fleet;
pub mod pgbouncer;
pub mod prometheus;
pub mod serve;
pub mod snapshot;
pub mod test;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

pub use config::{Check, Config, Database};
/// The load generator the zero-downtime tests run against the proxy.
pub use lastgood_sample_app::load;
pub use pgbouncer::PgBouncer;
pub use snapshot::{PINNED_HOST, PINNED_NOW};
pub use tempfile::TempDir;
pub use test::Test;

/// The result of one `lastgood` run.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    /// Set when the process was killed (a failpoint fired).
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Self {
            code: out.status.code(),
            signal: out.status.signal(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "expected exit {code}\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// A free port on 127.0.0.1 (bound and released; good enough for tests on loopback).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("no free loopback port")
}

/// The sample app binary, built next to `lastgood` in the same target folder.
pub fn sample_app(lastgood: &Path) -> PathBuf {
    let p = lastgood.with_file_name("lastgood-sample-app");
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo build --workspace --bins` (scripts/test.sh does)",
        p.display()
    );
    p
}

pub struct TestEnv {
    pub dir: TempDir,
    pub bin: PathBuf,
    pub port: u16,
    versions: u32,
    /// Environment variables every run gets ([`TestEnv::pin_context`]).
    vars: Vec<(String, String)>,
    /// With `LASTGOOD_TEST_LEDGER=postgres`, the team ledger every run of this
    /// workspace records in (its config names it through `url_env`).
    pub ledger_db: Option<PgDb>,
}

/// The variable that holds the team ledger's URL in [`TestEnv`]s run with
/// `LASTGOOD_TEST_LEDGER=postgres`.
pub const LEDGER_URL_VAR: &str = "LASTGOOD_TEST_LEDGER_URL";

/// Whether the suites run with a PostgreSQL ledger (`LASTGOOD_TEST_LEDGER=postgres`).
pub fn pg_ledger() -> bool {
    std::env::var("LASTGOOD_TEST_LEDGER").is_ok_and(|v| v == "postgres")
}

impl TestEnv {
    /// A workspace with an empty repository `repo/`, `app.env` saying HEALTH=ok, and
    /// a config deploying the sample app to `srv/` with an HTTP check.
    pub fn new(bin: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("lastgood-test").tempdir().expect("temp dir");
        let ledger_db = pg_ledger().then(|| PgDb::new("ledger"));
        let env = Self { dir, bin: PathBuf::from(bin), port: free_port(), versions: 0, vars: Vec::new(), ledger_db };
        env.git(&["init", "-q", "-b", "main", "repo"], env.path());
        env.write("app.env", "HEALTH=ok\n");
        env.write_config("");
        if env.ledger_db.is_some() {
            env.run(&["ledger", "init"]).expect(0);
        }
        env
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn repo(&self) -> PathBuf {
        self.path().join("repo")
    }
    pub fn deploy_to(&self) -> PathBuf {
        self.path().join("srv")
    }

    pub fn write(&self, name: &str, content: &str) {
        let p = self.path().join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(p, content).expect("write");
    }

    pub fn git(&self, args: &[&str], cwd: &Path) {
        let out = Command::new("git")
            .args(args)
            .current_dir(cwd)
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Commits a new version of the app (its VERSION file, plus `extra` files) and tags it.
    pub fn commit_version(&mut self, tag: &str, extra: &[(&str, &str)]) {
        self.versions += 1;
        let repo = self.repo();
        std::fs::write(repo.join("VERSION"), format!("{tag}\n")).expect("write VERSION");
        for (name, content) in extra {
            let p = repo.join(name);
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d).expect("mkdir");
            }
            std::fs::write(p, content).expect("write");
        }
        self.git(&["add", "-A"], &repo);
        self.git(&["commit", "-q", "-m", &format!("Release {tag}")], &repo);
        self.git(&["tag", tag], &repo);
    }

    /// The default config plus `extra` TOML appended to the environment table.
    pub fn write_config(&self, extra: &str) {
        self.configure(&Config::new().extra(extra));
    }

    /// Writes `config` as this workspace's `lastgood.toml`.
    pub fn configure(&self, config: &Config) {
        self.write("lastgood.toml", &config.render(self));
    }

    /// A run of `lastgood` in this workspace, to describe and then [`Test::run`].
    pub fn test(&self) -> Test<'_> {
        Test::new(self)
    }

    /// Pins the clock ([`PINNED_NOW`]) and the machine's name ([`PINNED_HOST`]) for
    /// every later run, so that outputs are the same on every run and machine. Leases
    /// never expire under a pinned clock: tests of expiry leave it alone.
    pub fn pin_context(&mut self) {
        self.vars.push(("LASTGOOD_NOW".into(), PINNED_NOW.into()));
        self.vars.push(("LASTGOOD_HOSTNAME".into(), PINNED_HOST.into()));
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(["--config", &self.path().join("lastgood.toml").to_string_lossy()])
            .args(args)
            .current_dir(self.path())
            .env("LASTGOOD_USER", "tester")
            .env_remove("LASTGOOD_FAILPOINT")
            .env_remove("LASTGOOD_CONFIG")
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if let Some(db) = &self.ledger_db {
            c.env(LEDGER_URL_VAR, &db.url);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().expect("run lastgood"))
    }

    /// Runs with `LASTGOOD_FAILPOINT` set, so the process kills itself there.
    pub fn run_crashing(&self, failpoint: &str, args: &[&str]) -> Run {
        Run::from(self.cmd(args).env("LASTGOOD_FAILPOINT", failpoint).output().expect("run lastgood"))
    }

    /// GET a path of the app; None when nothing answers.
    pub fn get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut s =
            std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
    }

    /// The version the app serves now.
    pub fn serving(&self) -> Option<String> {
        self.get("/version")
    }

    /// The release `current` points at on disk.
    pub fn current_link(&self) -> Option<u64> {
        let t = std::fs::read_link(self.deploy_to().join("current")).ok()?;
        t.strip_prefix("releases").ok()?.to_str()?.parse().ok()
    }

    pub fn status(&self) -> serde_json::Value {
        self.run(&["status", "production", "--format", "json"]).expect(0).json()
    }

    pub fn history(&self) -> serde_json::Value {
        self.run(&["history", "production", "--format", "json", "--limit", "100"]).expect(0).json()
    }

    /// `state` of release `id` per `history`.
    pub fn state_of(&self, id: u64) -> String {
        self.history()
            .as_array()
            .and_then(|a| a.iter().find(|r| r["id"] == id))
            .map(|r| r["state"].as_str().unwrap_or("").to_owned())
            .unwrap_or_default()
    }

    /// Runs SQL on this workspace's ledger, whichever it is: `.lastgood/ledger.db`, or
    /// the team ledger's schema `lastgood` with `LASTGOOD_TEST_LEDGER=postgres`.
    pub fn ledger_sql(&self, sql: &str) -> String {
        match &self.ledger_db {
            Some(db) => db.sql(&format!("SET search_path = lastgood; {sql}")),
            None => sqlite(&self.path().join(".lastgood/ledger.db"), sql),
        }
    }

    /// Whether nobody holds the ledger's write lock now: SQLite's lock can be taken at
    /// once; on PostgreSQL no ledger session sits inside a transaction.
    pub fn ledger_writable(&self) -> bool {
        match &self.ledger_db {
            Some(db) => {
                db.sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND application_name = 'lastgood-ledger' AND state LIKE 'idle in transaction%'",
                ) == "0"
            }
            None => Command::new("sqlite3")
                .args(["-cmd", ".timeout 200"])
                .arg(self.path().join(".lastgood/ledger.db"))
                .arg("BEGIN IMMEDIATE; ROLLBACK;")
                .output()
                .is_ok_and(|o| o.status.success()),
        }
    }

    /// The pid of the app lastgood supervises (its pid file), if it runs one.
    pub fn app_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.deploy_to().join(".lastgood/app.pid")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["pid"].as_i64().map(|p| p as i32)
    }
}

/// The pid a supervisor's pid file names.
fn pid_in(file: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(file).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["pid"].as_i64().map(|p| p as i32)
}

impl TestEnv {
    /// Every process lastgood started here and still names in a pid file: the app
    /// (`app.pid`), the releases' processes behind a proxy (`instances/*.pid`), and
    /// the proxy itself (`proxy/proxy.pid`).
    pub fn supervised_pids(&self) -> Vec<i32> {
        let state = self.deploy_to().join(".lastgood");
        let mut files = vec![state.join("app.pid"), state.join("proxy/proxy.pid")];
        if let Ok(entries) = std::fs::read_dir(state.join("instances")) {
            files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "pid")));
        }
        files.iter().filter_map(|f| pid_in(f)).collect()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for pid in self.supervised_pids() {
            if pid > 1 {
                let _ = Command::new("kill").args(["-9", "--", &format!("-{pid}")]).status();
            }
        }
    }
}

/// Debian's directory of the server's Unix socket.
pub const SOCKET_DIR: &str = "/var/run/postgresql";

/// A fresh PostgreSQL database on the test server (`LASTGOOD_TEST_PG`), dropped when
/// this is dropped. Tests that need PostgreSQL fail, never skip, when it is missing.
pub struct PgDb {
    pub name: String,
    /// `postgres://user:password@host:port/<name>`.
    pub url: String,
    admin: String,
}

impl PgDb {
    pub fn new(tag: &str) -> Self {
        let admin = std::env::var("LASTGOOD_TEST_PG").unwrap_or_else(|_| {
            panic!("LASTGOOD_TEST_PG is not set: run `eval \"$(scripts/services.sh)\"` first (scripts/test.sh does)")
        });
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("lg_it_{tag}_{}_{n}", std::process::id());
        let (head, _) = admin.rsplit_once('/').expect("LASTGOOD_TEST_PG ends in /database");
        let url = format!("{head}/{name}");
        let db = Self { name: name.clone(), url, admin };
        db.admin_sql(&format!("DROP DATABASE IF EXISTS {name}"));
        db.admin_sql(&format!("CREATE DATABASE {name}"));
        db
    }

    /// A fresh database that the operating system's user creates, and so owns, over
    /// the server's Unix socket with peer authentication and no password (the tests run
    /// as root; `scripts/services.sh` creates the role `root`). `url` is
    /// `postgresql:///<name>?host=/var/run/postgresql`, plus `&port=` when the server is
    /// not on 5432.
    pub fn over_socket(tag: &str) -> Self {
        let server = std::env::var("LASTGOOD_TEST_PG").unwrap_or_else(|_| {
            panic!("LASTGOOD_TEST_PG is not set: run `eval \"$(scripts/services.sh)\"` first (scripts/test.sh does)")
        });
        let hostport = server.split_once('@').map(|(_, h)| h).unwrap_or("").split('/').next().unwrap_or("");
        let port = hostport.rsplit_once(':').map(|(_, p)| p).unwrap_or("5432");
        let port = if port == "5432" { String::new() } else { format!("&port={port}") };
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("lg_it_{tag}_{}_{n}", std::process::id());
        let at = |db: &str| format!("postgresql:///{db}?host={SOCKET_DIR}{port}");
        let db = Self { name: name.clone(), url: at(&name), admin: at("postgres") };
        db.admin_sql(&format!("DROP DATABASE IF EXISTS {name}"));
        db.admin_sql(&format!("CREATE DATABASE {name}"));
        db
    }

    fn admin_sql(&self, sql: &str) {
        let out = Command::new("psql")
            .args([&self.admin, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
            .output()
            .expect("psql");
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Runs SQL in this database; returns psql's unaligned output.
    /// [`PgDb::url`] with another login (`user:password@`).
    pub fn url_as(&self, user: &str, password: &str) -> String {
        let (scheme, rest) = self.url.split_once("://").expect("a URL");
        let host = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
        format!("{scheme}://{user}:{password}@{host}")
    }

    pub fn sql(&self, sql: &str) -> String {
        let out =
            Command::new("psql").args([&self.url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql]).output().expect("psql");
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The password in the URL (for tests that search output for it).
    pub fn password(&self) -> String {
        let rest = self.url.split_once("://").map(|(_, r)| r).unwrap_or("");
        let userinfo = rest.split_once('@').map(|(u, _)| u).unwrap_or("");
        userinfo.split_once(':').map(|(_, p)| p.to_owned()).unwrap_or_default()
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // The database, lastgood's template backups of it, and what a restore of it
        // keeps aside or was loading.
        let list = format!(
            "SELECT datname FROM pg_database WHERE starts_with(datname, 'lastgood_backup_{0}_') \
             OR (datname ~ '^lastgood_(aside|restore)_[0-9]+_' AND position('{0}' in datname) > 0)",
            self.name
        );
        let copies = Command::new("psql").args([&self.admin, "-qAt", "-c", &list]).output();
        let mut names = vec![self.name.clone()];
        if let Ok(out) = copies {
            names.extend(String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned));
        }
        for name in names {
            let _ = Command::new("psql")
                .args([&self.admin, "-qAt", "-c", &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")])
                .output();
        }
    }
}

/// Runs `sqlite3` on a database file; returns its output.
pub fn sqlite(path: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3").args(["-cmd", ".timeout 10000"]).arg(path).arg(sql).output().expect("sqlite3");
    assert!(out.status.success(), "sqlite3 {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
