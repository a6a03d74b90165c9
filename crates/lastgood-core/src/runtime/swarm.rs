//! The `swarm` runtime: a Docker Swarm service whose image tag is the version. The
//! service's repository is the one its spec names now; the version replaces the tag.
//!
//! Activating a release updates the service's image through the DockerApi API, then reads
//! the service's `UpdateStatus` and its tasks until the update is `completed` and every
//! task meant to run does, on the release's image. The CLI's exit code is never the
//! judge: `docker service update` exits 0 after Swarm rolled an update back by itself.
//! `paused` and `rollback_*` states, or tasks that never run the new image, are a
//! failed activation. Swarm may have replaced some tasks by then, so the switch is not
//! atomic: the journal returns to the last good release with its own steps and checks.
//!
//! lastgood keeps its own history ([`docker::Records`]); Swarm's single `PreviousSpec`
//! is never used: a rollback is an ordinary update to the recorded image.

use std::path::PathBuf;
use std::time::Instant;

use super::api::{
    Activation, NotReady, Observed, Refusal, ReleaseFacts, Runtime, Site, StepFacts, generic, unusable, usable_dir,
};
use super::docker::{self, DockerApi, Image, Record, Records, Reference};
use crate::error::{Error, Result};
use crate::model::ReleaseId;
use crate::plan::Step;

pub struct Swarm<'a> {
    pub site: &'a Site,
    pub service: &'a str,
}

fn step(e: impl std::fmt::Display) -> Error {
    Error::Step { message: e.to_string() }
}

/// An image reference without its `@sha256:...` pin, as the CLI adds it.
fn unpinned(image: &str) -> &str {
    image.split_once('@').map(|(r, _)| r).unwrap_or(image)
}

impl Swarm<'_> {
    fn records(&self) -> Records {
        Records { dir: self.site.state_dir().join("images") }
    }

    fn service(&self, engine: &DockerApi) -> Result<docker::SwarmService> {
        engine.service(self.service).map_err(step)?.ok_or_else(|| {
            step(format!(
                "Swarm service `{}` does not exist; create it first (docker service create --name {} ...): lastgood changes its image",
                self.service, self.service
            ))
        })
    }

    /// `repo:version`, with the repository the service runs now.
    fn reference(&self, engine: &DockerApi, version: &str) -> Result<String> {
        let s = self.service(engine)?;
        let now = Reference::parse(&s.image)
            .map_err(|e| step(format!("service {} runs an image lastgood cannot read: {e}", self.service)))?;
        Ok(format!("{}:{version}", now.repo))
    }

    fn resolve(&self, engine: &DockerApi, release: u64, version: &str) -> Result<Record> {
        let reference = self.reference(engine, version)?;
        let Some((id, repo_digests)) = engine.image(&reference).map_err(step)? else {
            return Err(step(format!(
                "image {reference} is not on the Docker engine; build or load it first (lastgood never pulls)"
            )));
        };
        Ok(Record {
            release,
            version: version.to_owned(),
            images: vec![Image { service: self.service.to_owned(), reference, id, repo_digests }],
            healthy: false,
            protected: false,
        })
    }

    /// Ok(true): the service runs the image and has settled; Ok(false): not yet;
    /// Err: it failed, with what Swarm says.
    fn look(&self, engine: &DockerApi, image: &str, since: Option<&str>) -> Result<std::result::Result<bool, String>> {
        let s = self.service(engine)?;
        let ours = s.update_started.as_deref() != since;
        let state = s.update_state.as_deref().unwrap_or("");
        let message = s.update_message.clone().unwrap_or_default();
        if ours && matches!(state, "paused" | "rollback_started" | "rollback_paused" | "rollback_completed") {
            return Ok(Err(format!("Swarm reports the update {state}: {message}")));
        }
        if unpinned(&s.image) != image || matches!(state, "updating" | "rollback_started") {
            return Ok(Ok(false));
        }
        if ours && state != "completed" {
            return Ok(Ok(false));
        }
        let tasks = engine.tasks(&s.id).map_err(step)?;
        let live: Vec<_> = tasks.iter().filter(|t| t.desired == "running").collect();
        let running = live.iter().filter(|t| unpinned(&t.image) == image && t.state == "running").count();
        let wanted = s.replicas.unwrap_or(live.len().max(1) as u64) as usize;
        if running < wanted || !live.iter().all(|t| unpinned(&t.image) == image) {
            return Ok(Ok(false));
        }
        // Swarm calls a task running before its healthcheck has spoken: ask the engine.
        for t in &live {
            let Some(container) = &t.container else { continue };
            match engine.health(container).map_err(step)? {
                Some((h, _)) if h == "starting" => return Ok(Ok(false)),
                Some((h, output)) if h == "unhealthy" => {
                    return Ok(Err(format!(
                        "a task on {image} is unhealthy{}",
                        output.map(|o| format!(": {o}")).unwrap_or_default()
                    )));
                }
                _ => {}
            }
        }
        Ok(Ok(true))
    }

    /// Why the service's tasks are not running, from the newest failed one.
    fn task_trouble(&self, engine: &DockerApi, image: &str) -> String {
        let Ok(tasks) = engine.tasks(self.service) else { return String::new() };
        tasks
            .iter()
            .filter(|t| unpinned(&t.image) == image && matches!(t.state.as_str(), "failed" | "rejected" | "shutdown"))
            .find_map(|t| {
                let why = t.err.clone().unwrap_or_else(|| t.message.clone());
                (!why.is_empty()).then(|| format!("; a task on {image} ended {}: {why}", t.state))
            })
            .unwrap_or_default()
    }

    /// Updates the service to the record's image and waits until it has settled on it.
    fn roll(
        &self,
        engine: &DockerApi,
        rec: &Record,
        notes: &mut Vec<String>,
    ) -> Result<std::result::Result<(), String>> {
        notes.extend(engine.restore_tags(rec)?);
        let image = rec.images[0].reference.as_str();
        let since = self.service(engine)?.update_started;
        engine.set_service_image(self.service, image).map_err(step)?;
        let start = Instant::now();
        loop {
            match self.look(engine, image, since.as_deref())? {
                Ok(true) => return Ok(Ok(())),
                Err(why) => return Ok(Err(format!("{why}{}", self.task_trouble(engine, image)))),
                Ok(false) if start.elapsed() > docker::SETTLE_TIMEOUT => {
                    return Ok(Err(format!(
                        "the service had not settled on {image} after {:?}{}",
                        docker::SETTLE_TIMEOUT,
                        self.task_trouble(engine, image)
                    )));
                }
                Ok(false) => std::thread::sleep(docker::POLL),
            }
        }
    }
}

impl Runtime for Swarm<'_> {
    fn starts_on_switch(&self) -> bool {
        true
    }

    fn prepare(&self) -> std::result::Result<(), Refusal> {
        usable_dir("lastgood's state folder", &self.site.state_dir())?;
        let engine = DockerApi::connect().map_err(|e| unusable("the Docker engine", e))?;
        self.service(&engine).map(drop).map_err(|e| unusable(format!("Swarm service `{}`", self.service), e))
    }

    fn check_version(&self, version: &str) -> Result<()> {
        docker::check_tag(version).map_err(|e| Error::Usage { what: e.to_string() })?;
        let refused = |detail: String| {
            Error::refused(&self.site.env, "deploy", Refusal::Version { version: version.to_owned(), detail })
        };
        let engine = DockerApi::connect().map_err(|e| refused(e.to_string()))?;
        self.resolve(&engine, 0, version).map(drop).map_err(|e| refused(e.to_string()))
    }

    fn activate(&self, a: &Activation) -> Result<String> {
        let engine = DockerApi::connect().map_err(step)?;
        let id = a.release.id.0;
        let records = self.records();
        let mut rec = match records.load(id) {
            Some(r) => r,
            None => {
                let r = self.resolve(&engine, id, &a.release.version)?;
                records.save(&r)?;
                r
            }
        };
        let keep = self.site.keep_releases;
        let image = rec.images[0].reference.clone();
        let current = engine.image(&image).map_err(step)?.map(|(i, _)| i);
        let since = self.service(&engine)?.update_started;
        if current.as_deref() == Some(rec.images[0].id.as_str())
            && self.look(&engine, &image, since.as_deref())? == Ok(true)
        {
            rec.healthy = true;
            records.save(&rec)?;
            let _ = engine.protect(&records, self.service, keep, &[id]);
            return Ok(format!("service {} already runs {image}", self.service));
        }
        let mut notes = Vec::new();
        if let Err(why) = self.roll(&engine, &rec, &mut notes)? {
            return Err(step(format!("service {} did not settle on {image}: {why}", self.service)));
        }
        rec.healthy = true;
        records.save(&rec)?;
        notes.extend(engine.protect(&records, self.service, keep, &[id]));
        let mut detail = format!(
            "service {} updated to {image} ({}); update completed, tasks running",
            self.service,
            docker::short(&rec.images[0].id)
        );
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
        self.site.deploy_to.clone()
    }

    fn observe(&self) -> Observed {
        let version = (|| {
            let engine = DockerApi::connect().ok()?;
            let s = engine.service(self.service).ok()??;
            Reference::parse(unpinned(&s.image)).ok()?.tag
        })();
        Observed { release: None, version }
    }

    fn describe(&self, step: &Step, facts: &StepFacts) -> String {
        match (step, self.records().load(step_release(step)), &facts.version) {
            (Step::Switch { .. }, Some(rec), _) => {
                format!(
                    "update service {} to {} ({})",
                    self.service,
                    rec.images[0].reference,
                    docker::short(&rec.images[0].id)
                )
            }
            (Step::Switch { .. }, None, Some(v)) => format!("update service {} to the image tagged {v}", self.service),
            (Step::Unlink, _, _) => "nothing to remove: the service keeps running".into(),
            (other, _, _) => generic(other, facts),
        }
    }
}

/// The release a step names (0 for none: no record has it).
fn step_release(step: &Step) -> u64 {
    step.release().map(|r| r.0).unwrap_or(0)
}
