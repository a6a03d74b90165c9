//! Where a schema tool runs when it does not run in a folder of this machine: in a
//! release's tree on the environment's first ssh host, or in a compose service's
//! container of a release's images (`[database] run_in`), here or on that host.
//!
//! The tool's programs go through a [`Runner`]: the request names the releases that
//! may run it, newest first (the newest release that may have migrated the database
//! knows how to undo its own revisions; one whose build failed has no images and is
//! passed over), and the host's runtime picks the first that can
//! ([`crate::runtime::Runtime::exec`]). `DATABASE_URL` and the release's variables
//! travel in the request's environment, never in argv.
//!
//! The database's own work (the connection check, backups, restores) is done on the
//! first host too ([`database`]), where the database can be reached.

use std::rc::Rc;

use crate::action;
use crate::agent::Request;
use crate::config::Environment;
use crate::database::environment::EnvDatabase;
use crate::database::program::{Ran, Runner};
use crate::database::tool::Tool;
use crate::database::work::{DbWork, DbWorker};
use crate::error::Result;
use crate::fleet::Fleet;
use crate::model::SshHost;
use crate::runtime::{ReleaseFacts, Site};

/// Whether an environment's schema tool runs on a host or in a container.
pub fn placed(env: &Environment) -> bool {
    !env.hosts.is_empty() || env.schema_tool_service().is_some()
}

/// The environment's schema tool, run by the first of `candidates` (newest first) that
/// can: on the first host when the environment has hosts (`fleet`), else here; in the
/// `run_in` service's container when there is one. `epoch` fences it on the host.
pub fn tool(
    db: &EnvDatabase,
    fleet: Option<Rc<Fleet>>,
    candidates: Vec<ReleaseFacts>,
    epoch: Option<i64>,
    actor: &str,
) -> Result<Tool> {
    let env = db.env;
    let at = match (fleet, env.hosts.first()) {
        (Some(fleet), Some(host)) => At::Host(fleet, host.clone()),
        _ => At::Here(Site::local(env)),
    };
    let runner = Placed { at, candidates, service: env.schema_tool_service().map(str::to_owned), epoch };
    let mut tool = db.tool(None, actor)?;
    tool.set_runner(Rc::new(runner));
    Ok(tool)
}

enum At {
    Here(Site),
    Host(Rc<Fleet>, SshHost),
}

struct Placed {
    at: At,
    candidates: Vec<ReleaseFacts>,
    service: Option<String>,
    epoch: Option<i64>,
}

impl std::fmt::Debug for Placed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.place())
    }
}

impl Runner for Placed {
    fn run(&self, argv: &[String], env: &[(String, String)]) -> std::io::Result<(u64, Ran)> {
        self.exec(argv, env, false)
    }

    fn run_kept(&self, argv: &[String], env: &[(String, String)]) -> std::io::Result<(u64, Ran)> {
        self.exec(argv, env, true)
    }

    fn preferred(&self) -> Option<u64> {
        self.candidates.first().map(|c| c.id.0)
    }

    fn place(&self) -> String {
        let releases: Vec<String> = self.candidates.iter().map(|c| c.id.to_string()).collect();
        let releases = match releases.as_slice() {
            [] => "no release".to_owned(),
            [one] => format!("release {one}"),
            [newest, rest @ ..] => format!("release {newest} (else {})", rest.join(", ")),
        };
        let what = match &self.service {
            Some(s) => format!("the `{s}` container of {releases}"),
            None => format!("the folder of {releases}"),
        };
        match &self.at {
            At::Here(_) => what,
            At::Host(_, host) => format!("{what} on {}", host.label()),
        }
    }
}

impl Placed {
    /// `keep`: see [`Runner::run_kept`].
    fn exec(&self, argv: &[String], env: &[(String, String)], keep: bool) -> std::io::Result<(u64, Ran)> {
        match &self.at {
            At::Here(site) => action::exec(site, &self.candidates, self.service.as_deref(), argv, env, keep)
                .map(|(release, ran)| (release.0, ran))
                .map_err(std::io::Error::other),
            At::Host(fleet, host) => {
                let req = Request::Exec {
                    site: fleet.site(host),
                    candidates: self.candidates.clone(),
                    service: self.service.clone(),
                    argv: argv.to_vec(),
                    env: env.to_vec(),
                    epoch: self.epoch,
                    keep,
                };
                let answer = fleet
                    .call(host, &req, &[])
                    .map_err(|e| std::io::Error::other(format!("on {}: {e}", host.label())))?;
                match (answer.current, answer.ran) {
                    (Some(release), Some(ran)) => Ok((release, *ran)),
                    _ => Err(std::io::Error::other(format!(
                        "lastgood's agent on {} ran nothing (an older agent?)",
                        host.label()
                    ))),
                }
            }
        }
    }
}

/// The environment's database, its backups, restores and connection check done on the
/// first host when it has hosts (`fleet`); `epoch` fences them there.
pub fn database<'a>(
    env: &'a Environment,
    fleet: Option<Rc<Fleet>>,
    epoch: Option<i64>,
) -> Result<Option<EnvDatabase<'a>>> {
    let Some(db) = EnvDatabase::of(env)? else { return Ok(None) };
    let (Some(fleet), Some(host), Some(config)) = (fleet, env.hosts.first(), env.database.as_ref()) else {
        return Ok(Some(db));
    };
    let url = config.url.text()?;
    Ok(Some(db.worked_by(Rc::new(HostDb { fleet, host: host.clone(), url, epoch }))))
}

/// Database work done by the agent of a host.
struct HostDb {
    fleet: Rc<Fleet>,
    host: SshHost,
    /// The URL as configured (or read from `url_env` here).
    url: crate::secret::Secret<String>,
    epoch: Option<i64>,
}

impl std::fmt::Debug for HostDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.place())
    }
}

impl DbWorker for HostDb {
    fn work(&self, work: &DbWork) -> std::result::Result<serde_json::Value, String> {
        let config = self.fleet.env.database.as_ref().ok_or("the environment has no [database]")?;
        let req = Request::Db {
            site: self.fleet.site(&self.host),
            url: self.url.expose().clone(),
            method: config.backup_method,
            work: work.clone(),
            epoch: self.epoch,
        };
        let answer = self.fleet.call(&self.host, &req, &[]).map_err(|e| e.to_string())?;
        Ok(answer.value.unwrap_or(serde_json::Value::Null))
    }

    fn place(&self) -> String {
        self.host.label()
    }
}
