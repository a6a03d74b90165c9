//! The agent: lastgood's own binary, run on a fleet host as `lastgood __agent`.
//!
//! The controller copies its binary to `<deploy_to>/.lastgood/bin/` on each host (once
//! per build) and then keeps one ssh session per host open for the whole command, in
//! which the agent serves one request after another: each request is one line of JSON
//! on stdin (a [`Frame`]; for an export, the release's tar stream follows it, its
//! length given), each answer one line of JSON on stdout. So versions, argv and
//! environment values never pass through a shell on either side, and the host runs
//! exactly the code a local step runs: [`crate::action::perform`] on a
//! [`crate::runtime::Site`] (release directories that appear only complete, `current`
//! switched by an atomic rename with an fsync, the same supervisor with pid and
//! start-time checks, started in its own session so it outlives the ssh connection,
//! or any other runtime the site names).
//!
//! Fencing: every request that changes something carries the operation's lock epoch.
//! The host keeps the highest epoch it has seen in `.lastgood/epoch` and refuses a
//! request from an older one (its answer says `fenced`): an operation whose lease was taken over cannot
//! touch a host after its successor has. The check and the change happen under an
//! exclusive `flock` on `.lastgood/agent.lock`, so two requests on one host never
//! interleave.

use std::io::{BufRead, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::action::{self, Action};
use crate::database::backup::PgMethod;
use crate::database::url::DbUrl;
use crate::database::work::{self, DbWork};
use crate::model::ReleaseId;
use crate::runtime::api::Ran;
use crate::runtime::{ReleaseFacts, Site, releases};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Can this host take an operation? Creates `deploy_to` if needed; for a
    /// rollback, checks the release it returns to is ready here.
    Preflight { site: Site, release: Option<ReleaseFacts>, min_free_mb: u64 },
    /// Performs one step's action (see [`crate::action`]); refused from an old epoch.
    Perform { site: Site, action: Action, epoch: i64 },
    /// What the host runs.
    Current { site: Site },
    /// The port of the release's process behind the host's proxy (`value`: the port,
    /// or null when it does not run there).
    Port { site: Site, release: ReleaseId },
    /// Runs a schema tool's program for the first of `candidates` that can here (its
    /// tree, or a service's container of its images); `env` holds `DATABASE_URL`.
    /// Fenced when it runs for an operation (`epoch`).
    Exec {
        site: Site,
        candidates: Vec<ReleaseFacts>,
        service: Option<String>,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        epoch: Option<i64>,
        /// The command reads only the release's files: answer with what the preferred
        /// release printed before, keep what it prints now (`crate::toolcache`).
        #[serde(default)]
        keep: bool,
    },
    /// Database work where the database can be reached (see
    /// [`crate::database::work`]): `url` as configured, completed from this host's
    /// environment; backups in `<deploy_to>/backups/`.
    Db { site: Site, url: String, method: PgMethod, work: DbWork, epoch: Option<i64> },
    /// The shared config files as they are on this host (`value`: name -> bytes, or
    /// null when the file is not there).
    ConfigFiles { site: Site },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Answer {
    pub ok: bool,
    #[serde(default)]
    pub detail: String,
    /// The release `current` points at.
    #[serde(default)]
    pub current: Option<u64>,
    /// The release the supervised app runs, if it runs.
    #[serde(default)]
    pub app: Option<u64>,
    /// The version the runtime there reports (an image tag), for [`Request::Current`].
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub free_mb: Option<u64>,
    #[serde(default)]
    pub fenced: bool,
    /// What an [`Request::Exec`] ran (in release `current`).
    #[serde(default)]
    pub ran: Option<Box<Ran>>,
    /// What a [`Request::Db`] answered.
    #[serde(default)]
    pub value: Option<serde_json::Value>,
}

fn fail(detail: String) -> Answer {
    Answer { ok: false, detail, ..Answer::default() }
}

fn done(detail: impl Into<String>) -> Answer {
    Answer { ok: true, detail: detail.into(), ..Answer::default() }
}

/// One request as it travels: a JSON line, then `len` bytes of payload (the tar stream
/// of an export).
#[derive(Debug, Serialize, Deserialize)]
pub struct Frame {
    pub len: u64,
    pub request: Request,
}

/// Serves requests from `input` until it ends, one answer line each on `output`: the
/// controller keeps one session per host for a whole command. Returns the exit code.
pub fn serve(input: &mut dyn BufRead, output: &mut dyn std::io::Write) -> i32 {
    loop {
        let mut line = String::new();
        match input.read_line(&mut line) {
            Ok(0) => return 0,
            Ok(_) => {}
            Err(_) => return 1,
        }
        let answer = match serde_json::from_str::<Frame>(&line) {
            Ok(frame) => {
                let mut payload = input.take(frame.len);
                let answer = handle(frame.request, &mut payload);
                // What the request did not read must not be taken for the next one.
                if std::io::copy(&mut payload, &mut std::io::sink()).is_err() {
                    return 1;
                }
                answer
            }
            Err(e) => fail(format!("the agent cannot read its request: {e}")),
        };
        let text = serde_json::to_string(&answer).unwrap_or_else(|_| "{\"ok\":false}".into());
        if writeln!(output, "{text}").and_then(|_| output.flush()).is_err() {
            return 1;
        }
    }
}

fn handle(req: Request, input: &mut dyn Read) -> Answer {
    match req {
        Request::Preflight { site, release, min_free_mb } => {
            match action::preflight(&site, release.as_ref(), min_free_mb) {
                Ok(p) => {
                    let mut a = done("ready");
                    a.current = p.current.map(|r| r.0);
                    a.free_mb = p.free_mb;
                    a
                }
                Err(why) => fail(why.to_string()),
            }
        }
        Request::Current { site } => {
            let (current, app, version) = action::observe(&site);
            let mut a = done("");
            a.current = current.map(|r: ReleaseId| r.0);
            a.app = app;
            a.version = version;
            a.value = site.proxy().and_then(|p| serde_json::to_value(p.observe()).ok());
            a
        }
        Request::Port { site, release } => Answer {
            ok: true,
            value: Some(site.proxy().and_then(|p| p.port_of(release.0)).map_or(serde_json::Value::Null, Into::into)),
            ..Answer::default()
        },
        Request::Exec { site, candidates, service, argv, env, epoch, keep } => {
            let _guard = match epoch.map(|e| fence(&site.deploy_to, e)).transpose() {
                Ok(g) => g,
                Err(a) => return *a,
            };
            match action::exec(&site, &candidates, service.as_deref(), &argv, &env, keep) {
                Ok((release, ran)) => {
                    Answer { ok: true, current: Some(release.0), ran: Some(Box::new(ran)), ..Answer::default() }
                }
                Err(e) => fail(e.to_string()),
            }
        }
        Request::Db { site, url, method, work, epoch } => {
            let _guard = match epoch.map(|e| fence(&site.deploy_to, e)).transpose() {
                Ok(g) => g,
                Err(a) => return *a,
            };
            let url = match DbUrl::parse(&url, &site.deploy_to) {
                Ok(u) => u,
                Err(e) => return fail(format!("the database URL: {e}")),
            };
            match work::perform(&url, &site.deploy_to.join("backups"), method, &work) {
                Ok(value) => Answer { ok: true, value: Some(value), ..Answer::default() },
                Err(e) => fail(e),
            }
        }
        Request::ConfigFiles { site } => {
            let files: std::collections::BTreeMap<String, Option<Vec<u8>>> =
                site.shared_files.iter().map(|n| (n.clone(), std::fs::read(site.shared(n)).ok())).collect();
            match serde_json::to_value(files) {
                Ok(value) => Answer { ok: true, value: Some(value), ..Answer::default() },
                Err(e) => fail(e.to_string()),
            }
        }
        Request::Perform { site, action, epoch } => {
            let _guard = match fence(&site.deploy_to, epoch) {
                Ok(g) => g,
                Err(a) => return *a,
            };
            match action::perform(&site, &action, input) {
                Ok(detail) => done(detail),
                Err(e) => fail(e.to_string()),
            }
        }
    }
}

/// Takes the host's lock and checks (then records) the epoch.
/// A refusal is boxed: an [`Answer`] is large and the lock is the common case.
fn fence(deploy_to: &Path, epoch: i64) -> Result<std::fs::File, Box<Answer>> {
    let fail = |detail: String| Box::new(fail(detail));
    let state = releases::state_dir(deploy_to);
    std::fs::create_dir_all(&state).map_err(|e| fail(format!("create {}: {e}", state.display())))?;
    let lock_path = state.join("agent.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| fail(format!("open {}: {e}", lock_path.display())))?;
    // SAFETY: flock on a file descriptor we own; blocks until the lock is ours.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return Err(fail(format!("lock {}: {}", lock_path.display(), std::io::Error::last_os_error())));
    }
    let epoch_file = state.join("epoch");
    let seen: i64 = std::fs::read_to_string(&epoch_file).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
    if seen > epoch {
        return Err(Box::new(Answer {
            ok: false,
            fenced: true,
            detail: format!(
                "refused: this host has seen lock epoch {seen}, and this request is from epoch {epoch} (its operation lost its lock)"
            ),
            ..Answer::default()
        }));
    }
    if seen < epoch {
        releases::write_atomic(&epoch_file, format!("{epoch}\n").as_bytes()).map_err(|e| fail(e.to_string()))?;
    }
    Ok(lock)
}
