//! What a step does where it runs, as data: an [`Action`], performed at a
//! [`Site`] by [`perform`].
//!
//! The journal decides, once per step, which action the step takes and which ledger
//! changes record it; only the action is dispatched (see [`crate::executor`]): on this
//! machine it is performed in-process, on a fleet it travels as JSON to each host's
//! agent, which calls this same [`perform`]. So a release directory, a supervised
//! process or a container runtime behaves the same on a host as here, and there is no
//! second implementation of any step for fleets.
//!
//! Every action is idempotent and first looks whether its effect is already there
//! (the release directory, `readlink current`, the running pid, the file's hash): that
//! is what makes `resume` safe after a crash at any point.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::ReleaseId;
use crate::proxy::{Proxy, ProxyError, Reuse};
use crate::refusal::Refusal;
use crate::runtime::{self, Activation, ReleaseFacts, Site, releases, tree};
use crate::supervise::{SuperviseError, Supervisor};
use crate::toolcache;

/// One effect at one site.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Unpack the release's tree (the tar stream that follows the action) as its
    /// artifact.
    Export { release: ReleaseId, commit: String },
    /// Run a program in the release's working directory (a build, the user's own
    /// restart); its output goes to `log` in the state directory.
    Run { release: ReleaseId, argv: Vec<String>, vars: Vec<(String, String)>, log: String },
    /// Make the release the one that serves (the runtime's switch).
    Activate(Activation),
    /// Remove what serves (undoing a first deploy).
    Deactivate,
    /// Start the supervised app on the release, stopping whatever runs first: always
    /// a real restart, since a config-only change needs the app to read its files again.
    Start { release: ReleaseId, argv: Vec<String>, vars: Vec<(String, String)> },
    /// Behind the proxy: start the release's process beside whatever serves, on a
    /// port of its own (`{port}`), or keep the one running unless `fresh`.
    StartBeside { release: ReleaseId, argv: Vec<String>, vars: Vec<(String, String)>, fresh: bool },
    /// Send the proxy's new connections to the release's process.
    Route { release: ReleaseId },
    /// Drain, then stop, every release process the proxy does not route to
    /// (`release` is the one that serves).
    Retire { release: ReleaseId },
    /// Restart what the runtime itself runs for the release (compose services), one
    /// service when named; bring it back first if it is gone.
    Restart { activation: Activation, service: Option<String> },
    /// Stop the supervised app.
    Stop,
    /// Stop what the runtime runs for the release (compose services), except `keep`
    /// (the database's own service).
    Halt { activation: Activation, keep: Option<String> },
    /// Delete artifacts retention no longer keeps.
    Remove { releases: Vec<ReleaseId> },
    /// Put files in place where their content differs (config file snapshots).
    Write { files: Vec<FileContent> },
}

/// A file an action writes, with the digest that says whether it is already there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileContent {
    /// As the config names it, for the record.
    pub name: String,
    /// Where it goes: where lastgood.toml names it, or, for a site that shares its
    /// config files, `<deploy_to>/shared/<name>`.
    pub path: PathBuf,
    #[serde(default)]
    pub shared: bool,
    pub sha256: String,
    pub content: Vec<u8>,
}

/// Performs `action` here. `payload` is what follows the action on the wire (the
/// release's tar stream for [`Action::Export`]; empty otherwise). Returns a line for
/// the record.
pub fn perform(site: &Site, action: &Action, payload: &mut dyn Read) -> Result<String> {
    let rt = runtime::of(site);
    let with_host = |vars: &[(String, String)]| {
        let mut v = vars.to_vec();
        v.push(("LASTGOOD_HOST".into(), site.host.clone()));
        v
    };
    match action {
        Action::Export { release, commit } => Ok(if rt.export(*release, commit, payload)? {
            let into = rt.tree(*release).map(|t| {
                let t = t.strip_prefix(&site.deploy_to).map(|p| p.to_path_buf()).unwrap_or(t);
                format!(" into {}", t.display())
            });
            format!("exported {}{}", &commit[..commit.len().min(12)], into.unwrap_or_default())
        } else {
            "already exported".into()
        }),
        Action::Run { release, argv, vars, log } => {
            let log = site.state_dir().join(log);
            let mut vars = with_host(vars);
            vars.extend(rt.program_env());
            crate::exec::run_logged(argv, &rt.workdir(*release), &vars, &log)
                .map_err(|e| Error::Step { message: e.to_string() })?;
            Ok(format!("ran {} (log: {})", argv.first().map(String::as_str).unwrap_or(""), log.display()))
        }
        Action::Activate(a) => {
            let mut a = a.clone();
            a.vars = with_host(&a.vars);
            rt.activate(&a)
        }
        Action::Deactivate => Ok(rt.deactivate()?.unwrap_or_else(|| "nothing to remove here".into())),
        Action::Start { release, argv, vars } => {
            // An environment whose [proxy] was removed: what it fronted goes first.
            let torn = crate::proxy::teardown(&site.state_dir(), stop_timeout(site)).map_err(step)?;
            let sup = Supervisor::new(&site.state_dir());
            let stopped = sup.stop(stop_timeout(site))?;
            let started = sup
                .start(argv, &rt.workdir(*release), &with_host(vars), release.0, Duration::from_millis(50))
                .map_err(|e| match &e {
                    // The app's own last words say why; put them in the record.
                    SuperviseError::ExitedAtStart { log_tail, .. } => {
                        let tail: Vec<&str> = log_tail.lines().rev().take(5).collect();
                        let tail: Vec<&str> = tail.into_iter().rev().collect();
                        Error::Step { message: format!("{e}; its log ends:\n{}", tail.join("\n")) }
                    }
                    _ => Error::Supervise(e),
                })?;
            let detail = match stopped {
                Some(old) => {
                    format!("stopped pid {} ({}), started pid {}", old.pid, ReleaseId(old.release), started.pid)
                }
                None => format!("started pid {}", started.pid),
            };
            Ok(if torn.is_empty() { detail } else { format!("{}; {detail}", torn.join("; ")) })
        }
        Action::StartBeside { release, argv, vars, fresh } => {
            let proxy = proxy_of(site)?;
            let reuse = if *fresh { Reuse::Staged } else { Reuse::Any };
            proxy.start(release.0, argv, &rt.workdir(*release), &with_host(vars), reuse).map_err(step)
        }
        Action::Route { release } => proxy_of(site)?.route(release.0).map_err(step),
        Action::Retire { release } => {
            let proxy = proxy_of(site)?;
            // Never retire the release that should serve: if it is not what the proxy
            // routes to, the route step did not run here.
            let routed = proxy.observe().release;
            if routed != Some(release.0) {
                return Err(Error::Step {
                    message: format!(
                        "the proxy here routes to {} rather than {release}: nothing was stopped; `lastgood resume` routes it first",
                        routed.map(|r| ReleaseId(r).to_string()).unwrap_or_else(|| "nothing".into())
                    ),
                });
            }
            proxy.retire().map_err(step)
        }
        Action::Restart { activation, service } => {
            let mut a = activation.clone();
            a.vars = with_host(&a.vars);
            Ok(rt.restart(&a, service.as_deref())?.unwrap_or_else(|| "nothing to restart".into()))
        }
        Action::Halt { activation, keep } => {
            let mut a = activation.clone();
            a.vars = with_host(&a.vars);
            Ok(rt.stop(&a, keep.as_deref())?.unwrap_or_else(|| "nothing to stop".into()))
        }
        Action::Stop => match site.proxy() {
            Some(proxy) => proxy.stop_all().map_err(step),
            None => {
                let mut lines = crate::proxy::teardown(&site.state_dir(), stop_timeout(site)).map_err(step)?;
                if let Some(old) = Supervisor::new(&site.state_dir()).stop(stop_timeout(site))? {
                    lines.push(format!("stopped pid {}", old.pid));
                }
                Ok(if lines.is_empty() { "nothing was running".into() } else { lines.join("; ") })
            }
        },
        Action::Remove { releases } => {
            for id in releases {
                rt.remove(*id)?;
                toolcache::remove(&site.state_dir(), *id);
            }
            Ok(if releases.is_empty() {
                "nothing to remove".into()
            } else {
                format!("removed {}", releases.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
            })
        }
        Action::Write { files } => {
            let mut written = Vec::new();
            for f in files {
                let path = if f.shared { site.shared(&f.name) } else { f.path.clone() };
                if f.shared {
                    // An edit in place (`sed -i`) can replace a release's link with a
                    // file of its own: the snapshot is what every release reads again.
                    written.extend(releases::relink(site, &f.name, &path)?);
                }
                let now = std::fs::read(&path).ok().map(|b| crate::digest::sha256_hex(&b));
                if now.as_deref() == Some(f.sha256.as_str()) {
                    continue;
                }
                if f.shared && !path.exists() {
                    // Config files hold secrets: one lastgood creates is its owner's only
                    // (the replacement below keeps the permissions it finds).
                    tree::create_private(&path)?;
                }
                releases::write_atomic(&path, &f.content)?;
                written.push(f.name.clone());
            }
            Ok(if written.is_empty() {
                "config files already matched".into()
            } else {
                format!("restored {}", written.join(", "))
            })
        }
    }
}

fn proxy_of(site: &Site) -> Result<Proxy> {
    site.proxy().ok_or_else(|| Error::Step {
        message: "this step switches traffic through a proxy, and the environment has no [proxy] now; put it back to \
                  finish, or run `lastgood resume --abort`"
            .into(),
    })
}

fn step(e: ProxyError) -> Error {
    Error::Step { message: e.to_string() }
}

fn stop_timeout(site: &Site) -> Duration {
    Duration::from_millis(site.stop_timeout_ms)
}

/// Runs a schema tool's program here for the first of `candidates` that can (see
/// [`crate::runtime::Runtime::exec`]). `keep`: the command reads only the release's
/// files, so what the preferred release printed for it before answers, and what it
/// prints now is kept ([`crate::toolcache`]).
pub fn exec(
    site: &Site,
    candidates: &[ReleaseFacts],
    service: Option<&str>,
    argv: &[String],
    env: &[(String, String)],
    keep: bool,
) -> Result<(ReleaseId, runtime::api::Ran)> {
    let state = site.state_dir();
    if let Some(hit) = keep.then(|| toolcache::get(&state, candidates, service, argv, env)).flatten() {
        return Ok(hit);
    }
    let mut with_host = env.to_vec();
    with_host.push(("LASTGOOD_HOST".into(), site.host.clone()));
    let (by, ran) = runtime::of(site).exec(candidates, service, argv, &with_host)?;
    if keep {
        toolcache::put(&state, candidates, service, argv, env, by, &ran);
    }
    Ok((by, ran))
}

/// What a host answers a preflight with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Preflighted {
    /// The release its `current` names.
    pub current: Option<ReleaseId>,
    pub free_mb: Option<u64>,
}

/// Whether this site can take an operation: the runtime can act, there is room, and
/// the release a rollback returns to is ready here. Changes nothing that matters.
pub fn preflight(site: &Site, release: Option<&ReleaseFacts>, min_free_mb: u64) -> Result<Preflighted, Refusal> {
    let rt = runtime::of(site);
    rt.prepare()?;
    let free_mb = free_mb(&site.deploy_to);
    if let Some(free) = free_mb {
        if free < min_free_mb {
            return Err(Refusal::Unusable {
                what: site.deploy_to.display().to_string(),
                detail: format!("only {free} MB free (at least {min_free_mb} MB needed)"),
            });
        }
    }
    if let Some(r) = release {
        rt.ready(r)?;
    }
    Ok(Preflighted { current: rt.observe().release, free_mb })
}

/// What a site runs now: the release its runtime names, the one its supervised app
/// runs, and the version its runtime reports (an image tag, ...).
pub fn observe(site: &Site) -> (Option<ReleaseId>, Option<u64>, Option<String>) {
    let seen = runtime::of(site).observe();
    let current = seen.release;
    let app = match site.proxy() {
        // Behind a proxy, the app that serves is the process it routes to.
        Some(proxy) => {
            let seen = proxy.observe();
            seen.release.filter(|r| seen.instances.iter().any(|(i, p)| i == r && Some(*p) == seen.port))
        }
        None => Supervisor::new(&site.state_dir()).running().ok().flatten().map(|r| r.release),
    };
    (current, app, seen.version)
}

fn free_mb(dir: &std::path::Path) -> Option<u64> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs fills the struct it is given and reads a NUL-terminated path.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some((s.f_bavail as u64).saturating_mul(s.f_frsize as u64) / (1024 * 1024))
}
