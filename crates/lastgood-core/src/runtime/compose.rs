//! The `compose` runtime: a Docker Compose project whose image tags are the version
//! (`image: app:${LASTGOOD_VERSION}` in the compose file).
//!
//! Compose keeps no history and has no rollback: activating a release is `up -d` with
//! that release's images, then watching the containers through the Engine API until
//! each runs the release's image and its healthcheck (if it has one) says `healthy`.
//! `up`'s exit code is not trusted: an unhealthy container after `up` is a failed
//! activation.
//!
//! **A failed activation is undone here.** When the containers of a new release do not
//! come up healthy, the runtime brings the release that served before back up (and
//! waits for it to be healthy) before reporting the failure, so an unhealthy container
//! is never left serving and the ledger (which still names the old release current)
//! matches the world. Checks that fail later, with the containers up, are the
//! journal's business: it rolls back as for any runtime.
//!
//! The first activation of a release renders the compose file (`config`) with its
//! `LASTGOOD_VERSION`, resolves each service's image to its id and writes that down
//! ([`docker::Records`]); every later activation (a rollback, a resume) uses the
//! record, pointing a tag that moved back at the recorded image first. That is also
//! why a rollback does not need to render the compose file again.

use std::path::PathBuf;
use std::time::Instant;

use super::docker::{self, ComposeCli, DockerApi as Engine, Image, Record, Records, Reference};
use crate::config::{self, Environment};
use crate::error::{Error, Result};
use crate::model::ReleaseId;

pub struct Compose<'a> {
    pub env: &'a Environment,
    pub cfg: &'a config::Compose,
}

fn step(message: String) -> Error {
    Error::Step { message }
}

/// What the containers of a release look like right now.
enum Seen {
    Ready,
    Waiting(String),
    Failed(String),
}

impl Compose<'_> {
    fn records(&self) -> Records {
        Records { dir: super::state_dir(self.env).join("images") }
    }

    fn log(&self, id: u64) -> PathBuf {
        super::state_dir(self.env).join(format!("compose-{id}.log"))
    }

    fn wanted(&self, service: &str) -> bool {
        self.cfg.services.is_empty() || self.cfg.services.iter().any(|s| s == service)
    }

    fn vars_for(vars: &[(String, String)], version: &str) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = vars.iter().filter(|(k, _)| k != "LASTGOOD_VERSION").cloned().collect();
        v.push(("LASTGOOD_VERSION".into(), version.to_owned()));
        v
    }

    /// The services' image references with the version filled in, validated.
    fn render(&self, cli: &ComposeCli, version: &str, vars: &[(String, String)]) -> Result<Vec<(String, String)>> {
        let vars = Self::vars_for(vars, version);
        let all = cli.images(&self.cfg.file, &self.cfg.project, &vars).map_err(step)?;
        let images: Vec<(String, String)> = all.into_iter().filter(|(s, _)| self.wanted(s)).collect();
        if let Some(missing) = self.cfg.services.iter().find(|s| !images.iter().any(|(i, _)| i == *s)) {
            return Err(step(format!(
                "service `{missing}` (from `services`) has no `image:` in {}",
                self.cfg.file.display()
            )));
        }
        if images.is_empty() {
            return Err(step(format!("no service in {} names an `image:`", self.cfg.file.display())));
        }
        for (service, reference) in &images {
            Reference::parse(reference).map_err(|e| step(format!("service {service}: {e}")))?;
        }
        Ok(images)
    }

    /// Resolves a version's images to their ids; an error names the first one missing.
    fn resolve(
        &self,
        engine: &Engine,
        cli: &ComposeCli,
        release: u64,
        version: &str,
        vars: &[(String, String)],
    ) -> Result<Record> {
        let mut images = Vec::new();
        for (service, reference) in self.render(cli, version, vars)? {
            let Some((id, repo_digests)) = engine.image(&reference).map_err(step)? else {
                return Err(step(format!(
                    "image {reference} (service {service}) is not on the Docker engine; build or load it first (lastgood never pulls)"
                )));
            };
            images.push(Image { service, reference, id, repo_digests });
        }
        Ok(Record { release, version: version.to_owned(), images, healthy: false, protected: false })
    }

    /// The record of a release, written now if this is its first activation.
    fn record(
        &self,
        engine: &Engine,
        cli: &ComposeCli,
        release: u64,
        version: &str,
        vars: &[(String, String)],
    ) -> Result<Record> {
        let records = self.records();
        if let Some(r) = records.load(release) {
            return Ok(r);
        }
        let r = self.resolve(engine, cli, release, version, vars)?;
        records.save(&r)?;
        Ok(r)
    }

    fn look(&self, engine: &Engine, rec: &Record) -> Result<Seen> {
        let containers = engine.containers(&self.cfg.project).map_err(step)?;
        let mut waiting = None;
        for img in &rec.images {
            let mine: Vec<_> = containers.iter().filter(|c| c.service == img.service).collect();
            if mine.is_empty() {
                waiting.get_or_insert_with(|| format!("service {} has no container", img.service));
            }
            for c in mine {
                if c.image_id != img.id {
                    waiting.get_or_insert_with(|| format!("{} still runs {}", c.name, docker::short(&c.image_id)));
                    continue;
                }
                match (c.status.as_str(), c.health.as_deref()) {
                    ("running", Some("unhealthy")) => {
                        return Ok(Seen::Failed(format!(
                            "{} ({}) is unhealthy{}",
                            c.name,
                            img.reference,
                            c.health_output.as_ref().map(|o| format!(": {o}")).unwrap_or_default()
                        )));
                    }
                    ("running", Some("starting")) => {
                        waiting.get_or_insert_with(|| format!("{} is starting", c.name));
                    }
                    ("running", _) => {}
                    ("created", _) => {
                        waiting.get_or_insert_with(|| format!("{} is created, not started", c.name));
                    }
                    (status, _) => {
                        return Ok(Seen::Failed(format!(
                            "{} ({}) is {status} (exit code {})",
                            c.name, img.reference, c.exit_code
                        )));
                    }
                }
            }
        }
        Ok(waiting.map(Seen::Waiting).unwrap_or(Seen::Ready))
    }

    /// Waits until the release's containers run and are healthy; why not, when not.
    fn settle(&self, engine: &Engine, rec: &Record) -> Result<std::result::Result<(), String>> {
        let start = Instant::now();
        loop {
            match self.look(engine, rec)? {
                Seen::Ready => return Ok(Ok(())),
                Seen::Failed(why) => return Ok(Err(why)),
                Seen::Waiting(why) if start.elapsed() > docker::SETTLE_TIMEOUT => {
                    return Ok(Err(format!("not ready after {:?}: {why}", docker::SETTLE_TIMEOUT)));
                }
                Seen::Waiting(_) => std::thread::sleep(docker::POLL),
            }
        }
    }

    /// `up -d` with the record's images, then waits for them. Err: why they are not up.
    fn bring_up(
        &self,
        engine: &Engine,
        cli: &ComposeCli,
        rec: &Record,
        vars: &[(String, String)],
        notes: &mut Vec<String>,
    ) -> Result<std::result::Result<(), String>> {
        notes.extend(engine.restore_tags(rec)?);
        let mut args = vec!["up", "--detach", "--no-build"];
        if cli.is_v2() {
            args.extend(["--pull", "never"]);
        }
        if !self.cfg.services.is_empty() {
            args.push("--no-deps");
            args.extend(self.cfg.services.iter().map(String::as_str));
        }
        let vars = Self::vars_for(vars, &rec.version);
        let log = self.log(rec.release);
        if let Err(why) = cli.run(&self.cfg.file, &self.cfg.project, &vars, &args, Some(&log)) {
            // `up` may have replaced some containers before failing: look at what runs.
            return Ok(Err(format!("{why} (log: {})", log.display())));
        }
        self.settle(engine, rec)
    }

    fn keep(&self, engine: &Engine, also: &[u64]) -> Vec<String> {
        engine.protect(&self.records(), &self.cfg.project, self.env.keep_releases, also)
    }

    fn describe(rec: &Record) -> String {
        rec.images
            .iter()
            .map(|i| format!("{} {} ({})", i.service, i.reference, docker::short(&i.id)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl super::Runtime for Compose<'_> {
    fn prepare(&self) -> Result<()> {
        super::ensure_dir(&super::state_dir(self.env))?;
        if !self.cfg.file.is_file() {
            return Err(step(format!("the compose file {} does not exist", self.cfg.file.display())));
        }
        ComposeCli::detect().map_err(step)?;
        Engine::connect().map_err(step)?;
        Ok(())
    }

    fn check_version(&self, version: &str) -> Result<()> {
        docker::check_tag(version).map_err(|what| Error::Usage { what })?;
        let refused = |why: String| Error::Refused { env: self.env.name.to_string(), what: "deploy".into(), why };
        let engine = Engine::connect().map_err(refused)?;
        let cli = ComposeCli::detect().map_err(refused)?;
        match self.resolve(&engine, &cli, 0, version, &[]) {
            Ok(_) => Ok(()),
            Err(e) => Err(refused(e.to_string())),
        }
    }

    fn activate(&self, a: &super::Activation<'_>) -> Result<String> {
        let engine = Engine::connect().map_err(step)?;
        let cli = ComposeCli::detect().map_err(step)?;
        let id = a.release.id.0;
        let rec = self.record(&engine, &cli, id, &a.release.version, a.vars)?;
        if let Seen::Ready = self.look(&engine, &rec)? {
            let mut rec = rec;
            if !rec.healthy {
                rec.healthy = true;
                self.records().save(&rec)?;
            }
            let _ = self.keep(&engine, &[id]);
            return Ok(format!("{} already runs healthy: {}", a.release.version, Self::describe(&rec)));
        }
        let mut notes = Vec::new();
        let log = self.log(id);
        match self.bring_up(&engine, &cli, &rec, a.vars, &mut notes)? {
            Ok(()) => {
                let mut rec = rec;
                rec.healthy = true;
                self.records().save(&rec)?;
                notes.extend(self.keep(&engine, &[id]));
                let mut detail = format!("up with {}: {} healthy", a.release.version, Self::describe(&rec));
                for n in notes {
                    detail.push_str("; ");
                    detail.push_str(&n);
                }
                Ok(detail)
            }
            Err(why) => {
                let failed = format!("{} did not come up: {why}", a.release.version);
                // Not with --no-auto-rollback: then the failed release stays, as it says.
                let (Some(before), false, true) = (a.expected, a.back, a.auto_rollback) else {
                    return Err(step(format!("{failed} (log: {})", log.display())));
                };
                // Never leave a failed release serving: bring back what served before.
                let prev = match self.records().by_version(before, id) {
                    Some(r) => r,
                    None => self.resolve(&engine, &cli, 0, before, a.vars)?,
                };
                let back = match self.bring_up(&engine, &cli, &prev, a.vars, &mut notes)? {
                    Ok(()) => format!("brought {before} back up: healthy"),
                    Err(e) => format!("bringing {before} back up failed too: {e}"),
                };
                Err(step(format!("{failed}; {back} (log: {})", log.display())))
            }
        }
    }

    fn ready(&self, release: &crate::ledger::Release) -> std::result::Result<(), String> {
        let Some(rec) = self.records().load(release.id.0) else {
            return Err(format!(
                "lastgood has no record of the images release {} ({}) ran: it never reached its switch step",
                release.id, release.version
            ));
        };
        Engine::connect()?.present(&rec)
    }

    fn workdir(&self, _id: ReleaseId) -> PathBuf {
        self.cfg.file.parent().map(PathBuf::from).unwrap_or_else(|| self.env.deploy_to.clone())
    }

    fn observe(&self) -> Option<String> {
        let engine = Engine::connect().ok()?;
        let containers = engine.containers(&self.cfg.project).ok()?;
        let running: Vec<_> = containers.iter().filter(|c| c.status == "running" && self.wanted(&c.service)).collect();
        if running.is_empty() {
            return None;
        }
        self.records()
            .all()
            .into_iter()
            .find(|r| {
                running.iter().all(|c| r.images.iter().any(|i| i.service == c.service && i.id == c.image_id))
                    && r.images.iter().all(|i| running.iter().any(|c| c.service == i.service))
            })
            .map(|r| r.version)
    }
}
