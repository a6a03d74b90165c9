//! The `compose` runtime: a Docker Compose project whose image tags are the version
//! (`image: app:${LASTGOOD_VERSION}` in the compose file).
//!
//! Compose keeps no history and has no rollback: activating a release is `up -d` with
//! that release's images, then watching the containers through the DockerApi API until
//! each runs the release's image and its healthcheck (if it has one) says `healthy`, or
//! passed when lastgood ran it in the container itself (the engine's first check waits
//! an `interval`; see [`Compose::settle`]). `up`'s exit code is not trusted: an
//! unhealthy container after `up` is a failed activation.
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
//!
//! **Built from source** (`source` set): each release is exported from its commit into
//! `<deploy_to>/releases/<id>/` (config files linked in from `shared/`), `build` runs
//! there, and the compose file is read from there; `current` names the release
//! directory whose images were last brought up, so `docker-compose ps/logs` in
//! `current/` work by hand. A rollback brings up the target's recorded images from its
//! own directory and never builds.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::api::{
    Activation, NotReady, Observed, Ran, Refusal, ReleaseFacts, Runtime, Site, StepFacts, generic, unusable, usable_dir,
};
use super::docker::{self, ComposeCli, DockerApi, Image, Record, Records, Reference};
use super::releases;
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

/// How often lastgood runs a starting container's healthcheck itself.
const PROBE_EVERY: Duration = Duration::from_millis(250);

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

    /// The compose file a release is brought up from: its own directory's when built
    /// from source, else the one lastgood.toml names.
    fn file_for(&self, release: u64) -> PathBuf {
        if self.cfg.from_source {
            releases::release_dir(&self.site.deploy_to, ReleaseId(release)).join(&self.cfg.file)
        } else {
            self.cfg.file.clone()
        }
    }

    /// When the `.env` beside the release's compose file names another project than the
    /// one lastgood drives, what that means and what to do: `docker-compose ps|logs` by
    /// hand in that folder would look at another (empty) project.
    fn project_advice(&self, release: u64) -> Option<String> {
        let file = self.file_for(release);
        let dotenv = std::fs::read_to_string(file.parent()?.join(".env")).ok()?;
        let named = dotenv.lines().find_map(|l| l.trim().strip_prefix("COMPOSE_PROJECT_NAME="))?;
        let named = named.trim().trim_matches(|c| c == '"' || c == '\'');
        (named != self.cfg.project).then(|| {
            format!(
                "NOTE: .env sets COMPOSE_PROJECT_NAME={named}, but lastgood drives compose project `{p}` (`project`, \
                 default: the environment's name), so `docker-compose ps|logs` by hand there sees project {named}; \
                 use `docker-compose -p {p}`, or make them agree: COMPOSE_PROJECT_NAME={p} in .env (keeps what \
                 runs), or project = \"{named}\" in lastgood.toml before the first deploy",
                p = self.cfg.project
            )
        })
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
    fn render(
        &self,
        cli: &ComposeCli,
        release: u64,
        version: &str,
        vars: &[(String, String)],
    ) -> Result<Vec<(String, String)>> {
        let vars = Self::vars_for(vars, version);
        let file = self.file_for(release);
        let all = cli.images(&file, &self.cfg.project, &vars).map_err(step)?;
        let images: Vec<(String, String)> = all.into_iter().filter(|(s, _)| self.wanted(s)).collect();
        if let Some(missing) = self.cfg.services.iter().find(|s| !images.iter().any(|(i, _)| i == *s)) {
            return Err(step(format!(
                "service `{missing}` (from `services`) has no `image:` or `build:` in {}",
                file.display()
            )));
        }
        if images.is_empty() {
            return Err(step(format!("no service in {} names an `image:` or a `build:`", file.display())));
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
        for (service, reference) in self.render(cli, release, version, vars)? {
            let Some((id, repo_digests)) = engine.image(&reference).map_err(step)? else {
                let hint = if self.cfg.from_source {
                    "does `build` build it? (lastgood never pulls)"
                } else {
                    "build or load it first (lastgood never pulls)"
                };
                return Err(step(format!("image {reference} (service {service}) is not on the Docker engine; {hint}")));
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

    /// `early`: whether lastgood's own run of a starting container's healthcheck passed
    /// (see [`Compose::settle`]); such a container counts as healthy.
    fn look(
        &self,
        engine: &DockerApi,
        rec: &Record,
        early: &mut dyn FnMut(&docker::Container) -> bool,
    ) -> Result<Seen> {
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
                    ("running", Some("starting")) if early(c) => {}
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
    ///
    /// The engine runs a healthcheck first an `interval` after the start (often 10 or
    /// 30 s): until then a container that already serves is `starting`. lastgood runs
    /// the same test in it itself, at most every [`PROBE_EVERY`], and a container whose
    /// test passed counts as healthy. A failure counts for nothing (the engine's
    /// `start_period` and `retries` still decide `unhealthy`).
    fn settle(&self, engine: &DockerApi, rec: &Record) -> Result<std::result::Result<(), String>> {
        let start = Instant::now();
        let mut passed: HashSet<String> = HashSet::new();
        let mut tried: HashMap<String, Instant> = HashMap::new();
        let mut early = |c: &docker::Container| {
            if passed.contains(&c.id) {
                return true;
            }
            let Some((argv, timeout)) = &c.probe else { return false };
            if tried.get(&c.id).is_some_and(|t| t.elapsed() < PROBE_EVERY) {
                return false;
            }
            tried.insert(c.id.clone(), Instant::now());
            let ok = engine.probe(&c.id, argv, *timeout);
            if ok {
                passed.insert(c.id.clone());
            }
            ok
        };
        loop {
            match self.look(engine, rec, &mut early)? {
                Seen::Ready => return Ok(Ok(())),
                Seen::Failed(why) => return Ok(Err(why)),
                Seen::Waiting(why) if start.elapsed() > docker::SETTLE_TIMEOUT => {
                    return Ok(Err(format!("not ready after {:?}: {why}", docker::SETTLE_TIMEOUT)));
                }
                Seen::Waiting(_) => std::thread::sleep(docker::POLL),
            }
        }
    }

    /// `up -d` with the record's images (of one service, when named), then waits for
    /// them. Compose recreates a container whose configuration changed (a restored
    /// `.env`) and leaves the others. Err: why they are not up.
    fn bring_up(
        &self,
        engine: &DockerApi,
        cli: &ComposeCli,
        rec: &Record,
        vars: &[(String, String)],
        only: Option<&str>,
        notes: &mut Vec<String>,
    ) -> Result<std::result::Result<(), String>> {
        notes.extend(engine.restore_tags(rec)?);
        let mut args = vec!["up", "--detach", "--no-build"];
        if cli.is_v2() {
            args.extend(["--pull", "never"]);
        }
        if let Some(service) = only {
            args.extend(["--no-deps", service]);
        } else if !self.cfg.services.is_empty() {
            args.push("--no-deps");
            args.extend(self.cfg.services.iter().map(String::as_str));
        }
        let vars = Self::vars_for(vars, &rec.version);
        let log = self.log(rec.release);
        if let Err(why) = cli.run(&self.file_for(rec.release), &self.cfg.project, &vars, &args, Some(&log)) {
            // `up` may have replaced some containers before failing: look at what runs.
            return Ok(Err(format!("{why} (log: {})", log.display())));
        }
        self.settle(engine, rec)
    }

    /// Brings the release's recorded images up (recording them at its first
    /// activation) and waits for them to run healthy.
    fn bring_release_up(&self, a: &Activation) -> Result<String> {
        let engine = DockerApi::connect().map_err(step)?;
        let cli = ComposeCli::detect().map_err(step)?;
        let id = a.release.id.0;
        let mut rec = self.record(&engine, &cli, id, &a.release.version, &a.vars)?;
        if let Seen::Ready = self.look(&engine, &rec, &mut |_| false)? {
            if !rec.healthy {
                rec.healthy = true;
                self.records().save(&rec)?;
            }
            let _ = self.keep(&engine, a, id);
            return Ok(format!("{} already runs healthy: {}", a.release.version, Self::summary(&rec)));
        }
        let mut notes = Vec::new();
        if let Err(why) = self.bring_up(&engine, &cli, &rec, &a.vars, None, &mut notes)? {
            return Err(step(format!(
                "{} did not come up: {why} (log: {})",
                a.release.version,
                self.log(id).display()
            )));
        }
        rec.healthy = true;
        self.records().save(&rec)?;
        notes.extend(self.keep(&engine, a, id));
        notes.extend(self.project_advice(id));
        let mut detail = format!("up with {}: {} healthy", a.release.version, Self::summary(&rec));
        for n in notes {
            detail.push_str("; ");
            detail.push_str(&n);
        }
        Ok(detail)
    }

    /// Runs `argv` in a one-off container of `service` with the record's image:
    /// `compose run --rm --no-deps`, or, where compose v1 refuses that (a running
    /// host-networked container of the service: "host type networking can't be used
    /// with links"), `docker run` with the recorded image and the service container's
    /// network, mounts, environment, folder and user. `env` reaches the container by
    /// name (`-e KEY`), its values through the environment, never argv.
    fn one_off(
        &self,
        engine: &DockerApi,
        cli: &ComposeCli,
        rec: &Record,
        service: &str,
        argv: &[String],
        env: &[(String, String)],
    ) -> Result<Ran> {
        let Some(image) = rec.images.iter().find(|i| i.service == service) else {
            let known: Vec<&str> = rec.images.iter().map(|i| i.service.as_str()).collect();
            return Err(Error::Usage {
                what: format!(
                    "database.run_in: release {} runs no service `{service}` (it runs {})",
                    rec.release,
                    known.join(", ")
                ),
            });
        };
        let containers = engine.containers(&self.cfg.project).map_err(step)?;
        let beside_host =
            containers.iter().find(|c| c.service == service && c.status == "running" && c.setup.network_mode == "host");
        if let (false, Some(running)) = (cli.is_v2(), beside_host) {
            let setup = &running.setup;
            let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "--network".into(), "host".into()];
            let mut vars: Vec<(String, String)> = Vec::new();
            for kv in &setup.env {
                // The image sets PATH itself, and docker must be found on this one.
                match kv.split_once('=') {
                    Some(("PATH" | "HOSTNAME", _)) | None => {}
                    Some((k, v)) => vars.push((k.to_owned(), v.to_owned())),
                }
            }
            vars.extend(env.iter().cloned());
            for m in &setup.mounts {
                args.extend(["--volume".into(), m.clone()]);
            }
            if !setup.workdir.is_empty() {
                args.extend(["--workdir".into(), setup.workdir.clone()]);
            }
            if !setup.user.is_empty() {
                args.extend(["--user".into(), setup.user.clone()]);
            }
            let mut names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            for k in names {
                args.extend(["--env".into(), k.to_owned()]);
            }
            args.push(image.id.clone());
            args.extend(argv.iter().cloned());
            let out = std::process::Command::new("docker")
                .args(&args)
                .envs(vars.iter().map(|(k, v)| (k, v)))
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| step(format!("cannot run docker: {e}")))?;
            return Ok(Ran::of(out));
        }
        // `run` starts the image its tag names: the release's own.
        engine.restore_tags(rec)?;
        // The compose file reads LASTGOOD_VERSION from compose's own environment (this
        // release's image); the tool's LASTGOOD_* (the release it migrates to) go in
        // argv, being no secret; the others (DATABASE_URL) by name only.
        let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "--no-deps".into(), "-T".into()];
        let mut vars = Self::vars_for(&[], &rec.version);
        for (k, v) in env {
            if k.starts_with("LASTGOOD_") {
                args.extend(["-e".into(), format!("{k}={v}")]);
            } else {
                args.extend(["-e".into(), k.clone()]);
                vars.push((k.clone(), v.clone()));
            }
        }
        args.push(service.to_owned());
        args.extend(argv.iter().cloned());
        let out = cli.output(&self.file_for(rec.release), &self.cfg.project, &vars, &args).map_err(step)?;
        Ok(Ran::of(out))
    }

    /// Keep tags on the images retention protects, the release `id` brought up, and
    /// those the activation names (a release whose migrations stay applied).
    fn keep(&self, engine: &DockerApi, a: &Activation, id: u64) -> Vec<String> {
        let mut also: Vec<u64> = a.protect.iter().map(|r| r.0).collect();
        also.push(id);
        engine.protect(&self.records(), &self.cfg.project, self.site.keep_releases, &also)
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
        if self.cfg.from_source {
            // The compose file comes with each release.
            releases::prepare(&self.site.deploy_to).map_err(|e| unusable("deploy_to", e))?;
        } else if !self.cfg.file.is_file() {
            return Err(unusable(format!("the compose file {}", self.cfg.file.display()), "it does not exist"));
        }
        ComposeCli::detect().map_err(|e| unusable("the compose program", e))?;
        DockerApi::connect().map_err(|e| unusable("the Docker engine", e))?;
        Ok(())
    }

    fn check_version(&self, version: &str) -> Result<()> {
        if self.cfg.from_source {
            // A commit of `source`, checked as one; its images are built by the deploy.
            return Ok(());
        }
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

    fn artifacts(&self) -> bool {
        self.cfg.from_source
    }

    fn starts_on_switch(&self) -> bool {
        true
    }

    fn stops(&self) -> bool {
        true
    }

    fn stop(&self, a: &Activation, keep: Option<&str>) -> Result<Option<String>> {
        let engine = DockerApi::connect().map_err(step)?;
        let cli = ComposeCli::detect().map_err(step)?;
        let id = a.release.id.0;
        let rec = self.record(&engine, &cli, id, &a.release.version, &a.vars)?;
        let services: Vec<&str> = rec.images.iter().map(|i| i.service.as_str()).filter(|s| Some(*s) != keep).collect();
        if services.is_empty() {
            return Ok(Some("no service to stop".into()));
        }
        let mut args = vec!["stop"];
        args.extend(services.iter().copied());
        let vars = Self::vars_for(&a.vars, &rec.version);
        let log = self.log(id);
        cli.run(&self.file_for(id), &self.cfg.project, &vars, &args, Some(&log))
            .map_err(|e| step(format!("{e} (log: {})", log.display())))?;
        let kept = keep.map(|k| format!(" ({k} keeps running)")).unwrap_or_default();
        Ok(Some(format!("stopped {}{kept}", services.join(", "))))
    }

    fn export(&self, id: ReleaseId, commit: &str, tree: &mut dyn std::io::Read) -> Result<bool> {
        releases::export(&self.site.deploy_to, id, commit, tree, &super::tree::shared_links(self.site))
    }

    fn program_env(&self) -> Vec<(String, String)> {
        // `build` (docker-compose build) builds the images of this project, whichever
        // release directory it runs in.
        vec![("COMPOSE_PROJECT_NAME".into(), self.cfg.project.clone())]
    }

    fn activate(&self, a: &Activation) -> Result<String> {
        let detail = self.bring_release_up(a)?;
        if self.cfg.from_source && releases::switch(&self.site.deploy_to, a.release.id)? {
            return Ok(format!("{detail}; current -> releases/{}", a.release.id.0));
        }
        Ok(detail)
    }

    fn deactivate(&self) -> Result<Option<String>> {
        if !self.cfg.from_source {
            return Ok(None);
        }
        // The containers stay (compose keeps the project up, and the database may be
        // one of its services); `current` no longer names a release.
        releases::unlink(&self.site.deploy_to)?;
        Ok(Some("current removed (the project's containers are left as they are)".into()))
    }

    fn restart(&self, a: &Activation, service: Option<&str>) -> Result<Option<String>> {
        let engine = DockerApi::connect().map_err(step)?;
        let cli = ComposeCli::detect().map_err(step)?;
        let id = a.release.id.0;
        let rec = self.record(&engine, &cli, id, &a.release.version, &a.vars)?;
        if let Some(s) = service {
            if !rec.images.iter().any(|i| i.service == s) {
                let known: Vec<&str> = rec.images.iter().map(|i| i.service.as_str()).collect();
                return Err(Error::Usage {
                    what: format!(
                        "--service {s}: release {} runs no service `{s}` (it runs {})",
                        a.release.id,
                        known.join(", ")
                    ),
                });
            }
        }
        let mut notes = Vec::new();
        // Containers that are gone (removed by hand, a host rebooted) come back first,
        // and those whose configuration changed (a restored `.env`) are recreated.
        // Up: running the release's images (a healthcheck still `starting` counts).
        let was_up = matches!(self.look(&engine, &rec, &mut |_| true)?, Seen::Ready);
        if let Err(why) = self.bring_up(&engine, &cli, &rec, &a.vars, service, &mut notes)? {
            return Err(step(format!("{} could not be brought back up: {why}", a.release.version)));
        }
        if !was_up {
            notes.push(format!("brought {} back up", a.release.version));
        }
        let mut args = vec!["restart"];
        match service {
            Some(s) => args.push(s),
            None => args.extend(rec.images.iter().map(|i| i.service.as_str())),
        }
        let vars = Self::vars_for(&a.vars, &rec.version);
        let log = self.log(id);
        cli.run(&self.file_for(id), &self.cfg.project, &vars, &args, Some(&log))
            .map_err(|e| step(format!("{e} (log: {})", log.display())))?;
        if let Err(why) = self.settle(&engine, &rec)? {
            return Err(step(format!("after the restart: {why} (log: {})", log.display())));
        }
        notes.insert(0, format!("restarted {}: {} healthy", service.unwrap_or("every service"), Self::summary(&rec)));
        Ok(Some(notes.join("; ")))
    }

    fn exec(
        &self,
        candidates: &[ReleaseFacts],
        service: Option<&str>,
        argv: &[String],
        env: &[(String, String)],
    ) -> Result<(ReleaseId, Ran)> {
        let Some(service) = service else { return super::api::exec_in_tree(self, candidates, argv, env) };
        let engine = DockerApi::connect().map_err(step)?;
        let cli = ComposeCli::detect().map_err(step)?;
        let lastgood: Vec<(String, String)> = env.iter().filter(|(k, _)| k.starts_with("LASTGOOD_")).cloned().collect();
        let mut tried = Vec::new();
        for c in candidates {
            // Its images: recorded when it came up, or, for a release built and not yet
            // up (a deploy's migrations), named by its compose file now.
            let built = self.records().load(c.id.0).is_some()
                || !self.cfg.from_source
                || releases::present(&self.site.deploy_to, c.id);
            let rec = match built.then(|| self.record(&engine, &cli, c.id.0, &c.version, &lastgood)) {
                Some(Ok(rec)) => rec,
                Some(Err(e)) => {
                    tried.push(format!("{}: {e}", c.id));
                    continue;
                }
                None => {
                    tried.push(format!("{}: its release directory is gone", c.id));
                    continue;
                }
            };
            if let Err(e) = docker::present(&rec) {
                tried.push(format!("{}: {e}", c.id));
                continue;
            }
            return Ok((c.id, self.one_off(&engine, &cli, &rec, service, argv, env)?));
        }
        Err(step(format!("no release has the images to run the schema tool in `{service}`: {}", tried.join("; "))))
    }

    fn services(&self, release: &ReleaseFacts) -> Option<Vec<String>> {
        match self.records().load(release.id.0) {
            Some(rec) => Some(rec.images.iter().map(|i| i.service.clone()).collect()),
            None => Some(self.cfg.services.clone()),
        }
    }

    fn ready(&self, release: &ReleaseFacts) -> std::result::Result<(), NotReady> {
        if self.cfg.from_source {
            // Its compose file (and what it mounts) comes from its directory.
            super::releases::Releases { site: self.site }.ready(release)?;
        }
        let Some(rec) = self.records().load(release.id.0) else {
            return Err(NotReady::NoImageRecord { release: release.id, version: release.version.clone() });
        };
        docker::present(&rec)
    }

    fn workdir(&self, id: ReleaseId) -> PathBuf {
        if self.cfg.from_source {
            return releases::release_dir(&self.site.deploy_to, id);
        }
        self.cfg.file.parent().map(PathBuf::from).unwrap_or_else(|| self.site.deploy_to.clone())
    }

    fn tree(&self, id: ReleaseId) -> Option<PathBuf> {
        self.cfg.from_source.then(|| releases::release_dir(&self.site.deploy_to, id))
    }

    fn remove(&self, id: ReleaseId) -> Result<()> {
        if self.cfg.from_source {
            releases::remove(&self.site.deploy_to, id)?;
        }
        Ok(())
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
        let release = if self.cfg.from_source { releases::current(&self.site.deploy_to) } else { None };
        Observed { release, version }
    }

    fn describe(&self, step: &Step, facts: &StepFacts) -> String {
        let project = &self.cfg.project;
        match step {
            Step::Switch { release } => match (self.records().load(release.0), &facts.version) {
                (Some(rec), _) => format!("compose up {project}: {}", Self::summary(&rec)),
                (None, Some(v)) => format!("compose up {project} with LASTGOOD_VERSION={v}"),
                (None, None) => format!("compose up {project} for {release}"),
            },
            Step::Unlink if self.cfg.from_source => "remove current (the project's containers stay)".into(),
            Step::Unlink => "nothing to remove: compose keeps the project up".into(),
            Step::Export { release, commit } => format!("export {} into releases/{}", commit.short(), release.0),
            Step::Build { release } => format!("build {project}'s images in releases/{}", release.0),
            Step::Cleanup => "remove release directories retention no longer keeps".into(),
            other => generic(other, facts),
        }
    }
}
