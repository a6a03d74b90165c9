//! The agent: lastgood's own binary, run on a fleet host as `lastgood __agent`.
//!
//! The controller copies its binary to `<deploy_to>/.lastgood/bin/` on each host (once
//! per build) and then keeps one ssh session per host open for the whole command, in
//! which the agent serves one request after another: each request is one line of JSON
//! on stdin (a [`Frame`]; for `export`, the release's tar stream follows it, its length
//! given), each answer one line of JSON on stdout. So versions, argv and environment values never pass
//! through a shell on either side, and the host runs the same code as a local deploy:
//! release directories that appear only complete, `current` switched by an atomic
//! rename with an fsync, the same supervisor with pid and start-time checks, started
//! in its own session so it outlives the ssh connection.
//!
//! Fencing: every request that changes something carries the operation's lock epoch.
//! The host keeps the highest epoch it has seen in `.lastgood/epoch` and refuses a
//! request from an older one (its answer says `fenced`): an operation whose lease was taken over cannot
//! touch a host after its successor has. The check and the change happen under an
//! exclusive `flock` on `.lastgood/agent.lock`, so two requests on one host never
//! interleave.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::ReleaseId;
use crate::runtime::releases;
use crate::supervise::Supervisor;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Can this host take an operation? Creates `deploy_to` if needed.
    Preflight {
        deploy_to: PathBuf,
        release: Option<u64>,
        commit: Option<String>,
        min_free_mb: u64,
    },
    /// Unpacks the tar stream that follows into `releases/<release>/`.
    Export {
        deploy_to: PathBuf,
        release: u64,
        commit: String,
        epoch: i64,
    },
    /// Runs `argv` in the release directory (build, or the user's restart).
    Exec {
        deploy_to: PathBuf,
        release: u64,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        log: String,
        epoch: i64,
    },
    Switch {
        deploy_to: PathBuf,
        release: u64,
        epoch: i64,
    },
    Unlink {
        deploy_to: PathBuf,
        epoch: i64,
    },
    /// Makes the supervised app run `release`: a no-op when it already does.
    Start {
        deploy_to: PathBuf,
        release: u64,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        stop_timeout_ms: u64,
        epoch: i64,
    },
    Stop {
        deploy_to: PathBuf,
        stop_timeout_ms: u64,
        epoch: i64,
    },
    Remove {
        deploy_to: PathBuf,
        releases: Vec<u64>,
        epoch: i64,
    },
    /// What the host runs.
    Current {
        deploy_to: PathBuf,
    },
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
    #[serde(default)]
    pub free_mb: Option<u64>,
    #[serde(default)]
    pub fenced: bool,
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
        Request::Preflight { deploy_to, release, commit, min_free_mb } => {
            preflight(&deploy_to, release, commit, min_free_mb)
        }
        Request::Current { deploy_to } => {
            let mut a = done("");
            a.current = releases::current(&deploy_to).map(|r| r.0);
            a.app = Supervisor::new(&releases::state_dir(&deploy_to)).running().ok().flatten().map(|r| r.release);
            a
        }
        Request::Export { ref deploy_to, .. }
        | Request::Exec { ref deploy_to, .. }
        | Request::Switch { ref deploy_to, .. }
        | Request::Unlink { ref deploy_to, .. }
        | Request::Start { ref deploy_to, .. }
        | Request::Stop { ref deploy_to, .. }
        | Request::Remove { ref deploy_to, .. } => {
            let deploy_to = deploy_to.clone();
            let epoch = match &req {
                Request::Export { epoch, .. }
                | Request::Exec { epoch, .. }
                | Request::Switch { epoch, .. }
                | Request::Unlink { epoch, .. }
                | Request::Start { epoch, .. }
                | Request::Stop { epoch, .. }
                | Request::Remove { epoch, .. } => *epoch,
                _ => 0,
            };
            let _guard = match fence(&deploy_to, epoch) {
                Ok(g) => g,
                Err(a) => return a,
            };
            change(req, input).unwrap_or_else(fail)
        }
    }
}

fn preflight(deploy_to: &Path, release: Option<u64>, commit: Option<String>, min_free_mb: u64) -> Answer {
    if let Err(e) = releases::prepare(deploy_to) {
        return fail(format!("deploy_to is not usable: {e}"));
    }
    let free_mb = free_mb(deploy_to);
    if let Some(free) = free_mb {
        if free < min_free_mb {
            return fail(format!("only {free} MB free in {} (at least {min_free_mb} MB needed)", deploy_to.display()));
        }
    }
    if let Some(id) = release {
        if !releases::present(deploy_to, ReleaseId(id)) {
            return fail(format!(
                "release directory {} is missing",
                releases::release_dir(deploy_to, ReleaseId(id)).display()
            ));
        }
        if let Some(c) = commit {
            let marker = marker(deploy_to, id);
            match std::fs::read_to_string(&marker) {
                Ok(m) if m.trim() == c => {}
                Ok(m) => return fail(format!("release {id} on this host holds commit {}, not {c}", m.trim())),
                Err(_) => {
                    return fail(format!(
                        "release {id} on this host has no record of its commit ({})",
                        marker.display()
                    ));
                }
            }
        }
    }
    let mut a = done("ready");
    a.current = releases::current(deploy_to).map(|r| r.0);
    a.free_mb = free_mb;
    a
}

/// Where a host records which commit a release directory holds (outside the tree).
fn marker(deploy_to: &Path, id: u64) -> PathBuf {
    releases::state_dir(deploy_to).join("releases").join(format!("{id}.commit"))
}

fn free_mb(dir: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs fills the struct it is given and reads a NUL-terminated path.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some((s.f_bavail as u64).saturating_mul(s.f_frsize as u64) / (1024 * 1024))
}

/// Takes the host's lock and checks (then records) the epoch.
fn fence(deploy_to: &Path, epoch: i64) -> Result<std::fs::File, Answer> {
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
        return Err(Answer {
            ok: false,
            fenced: true,
            detail: format!(
                "refused: this host has seen lock epoch {seen}, and this request is from epoch {epoch} (its operation lost its lock)"
            ),
            ..Answer::default()
        });
    }
    if seen < epoch {
        releases::write_atomic(&epoch_file, format!("{epoch}\n").as_bytes()).map_err(|e| fail(e.to_string()))?;
    }
    Ok(lock)
}

fn change(req: Request, input: &mut dyn Read) -> Result<Answer, String> {
    match req {
        Request::Export { deploy_to, release, commit, .. } => {
            let id = ReleaseId(release);
            let dest = releases::release_dir(&deploy_to, id);
            if dest.is_dir() {
                // Drain the stream so the controller's writer does not see a broken pipe.
                let _ = std::io::copy(input, &mut std::io::sink());
                return Ok(done("already exported"));
            }
            let dir = releases::releases_dir(&deploy_to);
            let tmp = dir.join(format!(".tmp-{release}"));
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp).map_err(|e| format!("remove {}: {e}", tmp.display()))?;
            }
            std::fs::create_dir_all(&tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
            let mut archive = tar::Archive::new(input);
            archive.set_preserve_permissions(true);
            archive.unpack(&tmp).map_err(|e| format!("unpack into {}: {e}", tmp.display()))?;
            let m = marker(&deploy_to, release);
            releases::write_atomic(&m, format!("{commit}\n").as_bytes()).map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &dest).map_err(|e| format!("rename into {}: {e}", dest.display()))?;
            releases::fsync_dir(&dir).map_err(|e| e.to_string())?;
            Ok(done(format!("exported into releases/{release}")))
        }
        Request::Exec { deploy_to, release, argv, env, log, .. } => {
            let dir = releases::release_dir(&deploy_to, ReleaseId(release));
            let log = releases::state_dir(&deploy_to).join(log);
            crate::exec::run_logged(&argv, &dir, &env, &log).map_err(|e| e.to_string())?;
            Ok(done(format!("ran {}", argv.first().map(String::as_str).unwrap_or(""))))
        }
        Request::Switch { deploy_to, release, .. } => {
            let moved = releases::switch(&deploy_to, ReleaseId(release)).map_err(|e| e.to_string())?;
            Ok(done(if moved { format!("current -> releases/{release}") } else { "already current".into() }))
        }
        Request::Unlink { deploy_to, .. } => {
            releases::unlink(&deploy_to).map_err(|e| e.to_string())?;
            Ok(done("current removed"))
        }
        Request::Start { deploy_to, release, argv, env, stop_timeout_ms, .. } => {
            let sup = Supervisor::new(&releases::state_dir(&deploy_to));
            if let Ok(Some(r)) = sup.running() {
                if r.release == release {
                    return Ok(done(format!("pid {} already runs #{release}", r.pid)));
                }
            }
            let stopped = sup.stop(Duration::from_millis(stop_timeout_ms)).map_err(|e| e.to_string())?;
            let dir = releases::release_dir(&deploy_to, ReleaseId(release));
            let started =
                sup.start(&argv, &dir, &env, release, Duration::from_millis(50)).map_err(|e| e.to_string())?;
            Ok(done(match stopped {
                Some(old) => format!("stopped pid {} (#{}), started pid {}", old.pid, old.release, started.pid),
                None => format!("started pid {}", started.pid),
            }))
        }
        Request::Stop { deploy_to, stop_timeout_ms, .. } => {
            let sup = Supervisor::new(&releases::state_dir(&deploy_to));
            Ok(match sup.stop(Duration::from_millis(stop_timeout_ms)).map_err(|e| e.to_string())? {
                Some(old) => done(format!("stopped pid {}", old.pid)),
                None => done("nothing was running"),
            })
        }
        Request::Remove { deploy_to, releases: ids, .. } => {
            for id in &ids {
                releases::remove(&deploy_to, ReleaseId(*id)).map_err(|e| e.to_string())?;
                let _ = std::fs::remove_file(marker(&deploy_to, *id));
            }
            Ok(done(format!("removed {} release(s)", ids.len())))
        }
        Request::Preflight { .. } | Request::Current { .. } => Err("not a change".into()),
    }
}
