//! The `compose` runtime: a Docker Compose project whose image tags are the version
//! (`image: app:${LASTGOOD_VERSION}` in the compose file).
//!
//! Compose keeps no history and has no rollback: activating a release is `up -d` with
//! that release's images, then watching the containers through the DockerApi API until
//! each runs the release's image and its healthcheck (if it has one) says `healthy`.
//! `up`'s exit code is not trusted: an unhealthy container after `up` is a failed
//! activation.
//!
//! **A failed activation is reported, not undone here.** `up` may have replaced some
//! containers before the new release proved unhealthy, so the switch is not atomic
//! ([`Runtime::atomic`] is false): the journal treats a failed switch as maybe
//! switched and returns to the last good release with its own steps (this runtime's
//! activation of the older record) and checks, as it does for every runtime.
//!
//! The first activation of a release renders the compose file (`config`) with its
//! `LASTGOOD_VERSION`, resolves each service's image to its id and writes that down
//! ([`docker::Records`]); every later activation (a rollback, a resume) uses the
//! record, pointing a tag that moved back at the recorded image first. That is also
//! why a rollback does not need to render the compose file again.

use std::path::PathBuf;
use std::time::Instant;

use super::api::{
    Activation, NotReady, Observed, Refusal, ReleaseFacts, Runtime, Site, StepFacts, generic, unusable, usable_dir,
};
use super::docker::{self, ComposeCli, DockerApi, Image, Record, Records, Reference};
use crate::config;
use crate::error::{Error, Result};
use crate::model::ReleaseId;
use crate::plan::Step;

pub struct Compose<'a> {
    pub site: &'a Site,
    pub cfg: &'a config::Compose,
}

fn step(e: impl std::fmt::Display) -> Error {
    Error::Step { message: e.to_string() }
}

/// What the containers of a release look like right now.
enum Seen {
    Ready,
    Waiting(String),
    Failed(String),
}

impl Compose<'_> {
    fn records(&self) -> Records {
        Records { dir: self.site.state_dir().join("images") }
    }

    fn log(&self, id: u64) -> PathBuf {
        self.site.state_dir().join(format!("compose-{id}.log"))
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
        engine: &DockerApi,
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
        engine: &DockerApi,
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

    fn look(&self, engine: &DockerApi, rec: &Record) -> Result<Seen> {
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
    fn settle(&self, engine: &DockerApi, rec: &Record) -> Result<std::result::Result<(), String>> {
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
        engine: &DockerApi,
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

    fn keep(&self, engine: &DockerApi, also: &[u64]) -> Vec<String> {
        engine.protect(&self.records(), &self.cfg.project, self.site.keep_releases, also)
    }

    fn summary(rec: &Record) -> String {
        rec.images
            .iter()
            .map(|i| format!("{} {} ({})", i.service, i.reference, docker::short(&i.id)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Runtime for Compose<'_> {
    fn prepare(&self) -> std::result::Result<(), Refusal> {
        usable_dir("lastgood's state folder", &self.site.state_dir())?;
        if !self.cfg.file.is_file() {
            return Err(unusable(format!("the compose file {}", self.cfg.file.display()), "it does not exist"));
        }
        ComposeCli::detect().map_err(|e| unusable("the compose program", e))?;
        DockerApi::connect().map_err(|e| unusable("the Docker engine", e))?;
        Ok(())
    }

    fn check_version(&self, version: &str) -> Result<()> {
        docker::check_tag(version).map_err(|e| Error::Usage { what: e.to_string() })?;
        let refused = |detail: String| {
            Error::refused(&self.site.env, "deploy", Refusal::Version { version: version.to_owned(), detail })
        };
        let engine = DockerApi::connect().map_err(|e| refused(e.to_string()))?;
        let cli = ComposeCli::detect().map_err(|e| refused(e.to_string()))?;
        match self.resolve(&engine, &cli, 0, version, &[]) {
            Ok(_) => Ok(()),
            Err(e) => Err(refused(e.to_string())),
        }
    }

    fn activate(&self, a: &Activation) -> Result<String> {
        let engine = DockerApi::connect().map_err(step)?;
        let cli = ComposeCli::detect().map_err(step)?;
        let id = a.release.id.0;
        let mut rec = self.record(&engine, &cli, id, &a.release.version, &a.vars)?;
        if let Seen::Ready = self.look(&engine, &rec)? {
            if !rec.healthy {
                rec.healthy = true;
                self.records().save(&rec)?;
            }
            let _ = self.keep(&engine, &[id]);
            return Ok(format!("{} already runs healthy: {}", a.release.version, Self::summary(&rec)));
        }
        let mut notes = Vec::new();
        if let Err(why) = self.bring_up(&engine, &cli, &rec, &a.vars, &mut notes)? {
            return Err(step(format!(
                "{} did not come up: {why} (log: {})",
                a.release.version,
                self.log(id).display()
            )));
        }
        rec.healthy = true;
        self.records().save(&rec)?;
        notes.extend(self.keep(&engine, &[id]));
        let mut detail = format!("up with {}: {} healthy", a.release.version, Self::summary(&rec));
        for n in notes {
            detail.push_str("; ");
            detail.push_str(&n);
        }
        Ok(detail)
    }

    fn ready(&self, release: &ReleaseFacts) -> std::result::Result<(), NotReady> {
        let Some(rec) = self.records().load(release.id.0) else {
            return Err(NotReady::NoImageRecord { release: release.id, version: release.version.clone() });
        };
        docker::present(&rec)
    }

    fn workdir(&self, _id: ReleaseId) -> PathBuf {
        self.cfg.file.parent().map(PathBuf::from).unwrap_or_else(|| self.site.deploy_to.clone())
    }

    fn observe(&self) -> Observed {
        let version = (|| {
            let engine = DockerApi::connect().ok()?;
            let containers = engine.containers(&self.cfg.project).ok()?;
            let running: Vec<_> =
                containers.iter().filter(|c| c.status == "running" && self.wanted(&c.service)).collect();
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
        })();
        Observed { release: None, version }
    }

    fn describe(&self, step: &Step, facts: &StepFacts) -> String {
        let project = &self.cfg.project;
        match step {
            Step::Switch { release } => match (self.records().load(release.0), &facts.version) {
                (Some(rec), _) => format!("compose up {project}: {}", Self::summary(&rec)),
                (None, Some(v)) => format!("compose up {project} with LASTGOOD_VERSION={v}"),
                (None, None) => format!("compose up {project} for {release}"),
            },
            Step::Unlink => "nothing to remove: compose keeps the project up".into(),
            other => generic(other, facts),
        }
    }
}
