//! Docker, wrapped once: the Engine API through `bollard`, the compose CLI, image
//! references, and lastgood's own record of which image each release ran.
//!
//! The Engine API answers what the world holds (image ids, container state and health,
//! a Swarm service's `UpdateStatus` and tasks); lastgood never trusts an exit code alone.
//! The client negotiates the API version, since engines differ (20.10 stops at 1.41).
//! Calls are blocking from the caller's side: one small current-thread tokio runtime
//! per [`Engine`], each request `block_on`'d.
//!
//! The compose CLI (`docker compose`, v2, else `docker-compose`, v1) is only used for
//! what the API has no notion of: rendering a compose file and `up`. It gets an argv,
//! never a shell string; the version reaches the compose file through the
//! `LASTGOOD_VERSION` variable, never through the command line.
//!
//! **Digests.** Tags move. Each release's record (`<state>/images/<release>.json`)
//! holds, per service, the reference and the image id (`sha256:...`, the content
//! digest of the image's config; registry digests too when the image has any) that it
//! ran. Returning to a release whose tag has since moved points the tag back at the
//! recorded id first. **Protection.** The image of every release lastgood may return
//! to carries an extra tag `lastgood-keep/<name>:r<release>-<n>`, so it is never
//! dangling and `docker image prune` keeps it; the tag goes when retention no longer
//! keeps the release (the newest `keep_releases` releases that came up healthy).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ServiceSpec, TaskState};
use bollard::query_parameters::{
    InspectServiceOptions, ListContainersOptions, ListTasksOptions, RemoveImageOptions, TagImageOptions,
};
use serde::{Deserialize, Serialize};

use super::api::NotReady;
use crate::error::{Error, Result};

/// How long lastgood waits for containers or a service to settle after a change.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(180);
/// How often it looks while waiting.
pub const POLL: Duration = Duration::from_millis(50);

fn step(message: String) -> Error {
    Error::Step { message }
}

/// Whether every image a release ran is still on the engine: what a rollback to it
/// needs, since lastgood never pulls.
pub fn present(rec: &Record) -> std::result::Result<(), NotReady> {
    let engine =
        Engine::connect().map_err(|detail| NotReady::Unreachable { what: "the Docker engine".into(), detail })?;
    for img in &rec.images {
        let found = engine
            .image(&img.id)
            .map_err(|detail| NotReady::Unreachable { what: "the Docker engine".into(), detail })?;
        if found.is_none() {
            return Err(NotReady::ImageMissing {
                release: crate::model::ReleaseId(rec.release),
                service: img.service.clone(),
                image: img.reference.clone(),
                id: img.id.clone(),
            });
        }
    }
    Ok(())
}

// ---- names and references ----------------------------------------------------------

/// A compose project, compose service or Swarm service name.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid name: use at most 63 letters, digits, `_`, `-` or `.`, starting with a letter or digit",
            name.escape_debug()
        ))
    }
}

/// A version for the container runtimes: a Docker tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
pub fn check_tag(tag: &str) -> std::result::Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid image tag: the version is the tag, at most 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`",
            tag.escape_debug()
        ))
    }
}

/// A parsed image reference: `[registry[:port]/]path[:tag][@sha256:hex]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry and path, without tag or digest.
    pub repo: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and validates a reference as Docker's grammar defines it.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let bad = |why: &str| format!("`{}` is not a valid image reference: {why}", text.escape_debug());
        if text.is_empty() || text.len() > 512 {
            return Err(bad("empty or too long"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => {
                let hex = d.strip_prefix("sha256:").ok_or_else(|| bad("the digest must be sha256:<64 hex digits>"))?;
                if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
                    return Err(bad("the digest must be sha256:<64 hex digits>"));
                }
                (r, Some(d.to_owned()))
            }
            None => (text, None),
        };
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (repo, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            check_tag(t).map_err(|_| bad("the tag holds characters a tag cannot"))?;
        }
        let mut parts: Vec<&str> = repo.split('/').collect();
        if parts.len() > 1 && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost") {
            let host = parts.remove(0);
            let (name, port) = host.split_once(':').unwrap_or((host, ""));
            let host_ok = !name.is_empty()
                && name.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                })
                && port.chars().all(|c| c.is_ascii_digit());
            if !host_ok || (host.contains(':') && port.is_empty()) {
                return Err(bad("the registry host is malformed"));
            }
        }
        if parts.is_empty() || !parts.iter().all(|p| path_component(p)) {
            return Err(bad(
                "each path component must be lowercase letters and digits, separated by `.`, `_`, `__` or dashes",
            ));
        }
        Ok(Self { repo: repo.to_owned(), tag: tag.map(str::to_owned), digest })
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn path_component(p: &str) -> bool {
    let b = p.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    if p.chars().any(|c| c.is_ascii_uppercase()) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let sep = &p[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-');
        if !ok {
            return false;
        }
    }
    true
}

// ---- the Engine API ----------------------------------------------------------------

/// A connection to the Docker engine, with a runtime to drive its requests.
pub struct Engine {
    rt: tokio::runtime::Runtime,
    api: Docker,
}

/// One container of a compose project, as the engine describes it.
#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub service: String,
    /// The image id it runs (`sha256:...`).
    pub image_id: String,
    /// `running`, `exited`, `restarting`, ...
    pub status: String,
    pub exit_code: i64,
    /// `starting`, `healthy` or `unhealthy`; None without a healthcheck.
    pub health: Option<String>,
    /// The last healthcheck's output, for messages.
    pub health_output: Option<String>,
}

/// A Swarm service, as the engine describes it.
#[derive(Debug, Clone)]
pub struct SwarmService {
    pub id: String,
    pub version: u64,
    pub image: String,
    pub spec: ServiceSpec,
    /// `updating`, `paused`, `completed`, `rollback_started`, `rollback_paused`, `rollback_completed`.
    pub update_state: Option<String>,
    /// Tells one update from the next (the engine's timestamp, as text).
    pub update_started: Option<String>,
    pub update_message: Option<String>,
    /// Desired replicas (None for a global service).
    pub replicas: Option<u64>,
}

/// One task of a Swarm service.
#[derive(Debug, Clone)]
pub struct SwarmTask {
    pub image: String,
    /// The task's container (on this node, the engine can say whether it is healthy).
    pub container: Option<String>,
    pub state: String,
    pub desired: String,
    pub message: String,
    pub err: Option<String>,
}

fn socket() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

impl Engine {
    /// Connects to the engine named by `DOCKER_HOST` (a unix socket) or the default
    /// socket, and agrees on an API version both sides speak.
    pub fn connect() -> std::result::Result<Self, String> {
        let unreachable = |e: &dyn std::fmt::Display| {
            format!(
                "cannot reach the Docker engine at {}: {e}; start dockerd, or set DOCKER_HOST to its unix socket",
                socket()
            )
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start an I/O runtime for the Docker client: {e}"))?;
        let api = Docker::connect_with_local_defaults().map_err(|e| unreachable(&e))?;
        let api = rt.block_on(api.negotiate_version()).map_err(|e| unreachable(&e))?;
        Ok(Self { rt, api })
    }

    /// The id (`sha256:...`) and registry digests of an image; None when the engine does not have it.
    pub fn image(&self, reference: &str) -> std::result::Result<Option<(String, Vec<String>)>, String> {
        match self.rt.block_on(self.api.inspect_image(reference)) {
            Ok(i) => Ok(i.id.map(|id| (id, i.repo_digests.unwrap_or_default()))),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(format!("cannot inspect image {reference}: {e}")),
        }
    }

    /// Points `repo:tag` at the image `id`.
    pub fn tag(&self, id: &str, repo: &str, tag: &str) -> std::result::Result<(), String> {
        let opts = TagImageOptions { repo: Some(repo.to_owned()), tag: Some(tag.to_owned()) };
        self.rt
            .block_on(self.api.tag_image(id, Some(opts)))
            .map_err(|e| format!("cannot tag {id} as {repo}:{tag}: {e}"))
    }

    /// Removes a tag; the image itself goes only when nothing else names or uses it.
    pub fn untag(&self, reference: &str) -> std::result::Result<(), String> {
        let opts = RemoveImageOptions { force: false, noprune: true, platforms: None };
        match self.rt.block_on(self.api.remove_image(reference, Some(opts), None)) {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(format!("cannot remove tag {reference}: {e}")),
        }
    }

    /// Tags whose repository is `repo` (like `lastgood-keep/web`), with their image ids.
    pub fn tags_of(&self, repo: &str) -> std::result::Result<Vec<(String, String)>, String> {
        let filters = HashMap::from([("reference".to_owned(), vec![format!("{repo}:*")])]);
        let opts = bollard::query_parameters::ListImagesOptions { filters: Some(filters), ..Default::default() };
        let images =
            self.rt.block_on(self.api.list_images(Some(opts))).map_err(|e| format!("cannot list images: {e}"))?;
        let mut out = Vec::new();
        for i in images {
            for t in i.repo_tags {
                if t.starts_with(&format!("{repo}:")) {
                    out.push((t, i.id.clone()));
                }
            }
        }
        Ok(out)
    }

    /// The containers of a compose project (one-off `run` containers left out).
    pub fn containers(&self, project: &str) -> std::result::Result<Vec<Container>, String> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("com.docker.compose.project={project}")])]);
        let opts = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let list = self
            .rt
            .block_on(self.api.list_containers(Some(opts)))
            .map_err(|e| format!("cannot list the containers of project {project}: {e}"))?;
        let mut out = Vec::new();
        for c in list {
            let labels = c.labels.unwrap_or_default();
            if labels.get("com.docker.compose.oneoff").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
                continue;
            }
            let Some(id) = c.id else { continue };
            let inspect = match self.rt.block_on(self.api.inspect_container(&id, None)) {
                Ok(i) => i,
                // Removed between the list and the inspect (compose recreating it).
                Err(e) if not_found(&e) => continue,
                Err(e) => return Err(format!("cannot inspect container {id}: {e}")),
            };
            let state = inspect.state.unwrap_or_default();
            let health = state.health.as_ref();
            out.push(Container {
                name: inspect.name.unwrap_or(id).trim_start_matches('/').to_owned(),
                service: labels.get("com.docker.compose.service").cloned().unwrap_or_default(),
                image_id: inspect.image.unwrap_or_default(),
                status: state.status.map(|s| s.to_string()).unwrap_or_default(),
                exit_code: state.exit_code.unwrap_or(0),
                health: health.and_then(|h| h.status).map(|s| s.to_string()).filter(|s| !s.is_empty() && s != "none"),
                health_output: health
                    .and_then(|h| h.log.as_ref())
                    .and_then(|l| l.last())
                    .and_then(|r| r.output.clone())
                    .map(|o| o.trim().to_owned()),
            });
        }
        Ok(out)
    }

    /// A container's health (`starting`, `healthy`, `unhealthy`) and its last check's
    /// output; None without a healthcheck or when this engine does not have it.
    pub fn health(&self, id: &str) -> std::result::Result<Option<(String, Option<String>)>, String> {
        let inspect = match self.rt.block_on(self.api.inspect_container(id, None)) {
            Ok(i) => i,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(format!("cannot inspect container {id}: {e}")),
        };
        let Some(h) = inspect.state.and_then(|s| s.health) else { return Ok(None) };
        let status = h.status.map(|s| s.to_string()).filter(|s| !s.is_empty() && s != "none");
        let output = h.log.as_ref().and_then(|l| l.last()).and_then(|r| r.output.clone()).map(|o| o.trim().to_owned());
        Ok(status.map(|s| (s, output)))
    }

    /// A Swarm service; None when there is no such service.
    pub fn service(&self, name: &str) -> std::result::Result<Option<SwarmService>, String> {
        let s = match self.rt.block_on(self.api.inspect_service(name, None::<InspectServiceOptions>)) {
            Ok(s) => s,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(format!("cannot inspect service {name}: {e}")),
        };
        let spec = s.spec.unwrap_or_default();
        let image = spec
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let replicas = spec.mode.as_ref().and_then(|m| m.replicated.as_ref()).and_then(|r| r.replicas);
        let status = s.update_status.unwrap_or_default();
        Ok(Some(SwarmService {
            id: s.id.unwrap_or_default(),
            version: s.version.and_then(|v| v.index).unwrap_or(0),
            image,
            spec,
            update_state: status.state.map(|s| s.to_string()).filter(|s| !s.is_empty()),
            update_started: status.started_at.map(|t| format!("{t:?}")),
            update_message: status.message,
            replicas: replicas.map(|r| r.max(0) as u64),
        }))
    }

    /// Sets the service's image, retrying when another update got in between.
    ///
    /// This one call bypasses bollard's models: they name the container spec's
    /// healthcheck `HealthCheck` where the engine says `Healthcheck`, so a spec read and
    /// written back through them silently loses the service's healthcheck (and any field
    /// the models do not know). The spec travels as the engine's own JSON instead, with
    /// only the image changed.
    pub fn set_service_image(&self, name: &str, image: &str) -> std::result::Result<(), String> {
        let mut last = String::new();
        for _ in 0..5 {
            let (status, body) = self.raw("GET", &format!("/services/{name}"), None)?;
            if status == 404 {
                return Err(format!("service {name} does not exist"));
            }
            if status != 200 {
                return Err(format!("cannot inspect service {name}: HTTP {status}: {}", body.trim()));
            }
            let mut service: serde_json::Value =
                serde_json::from_str(&body).map_err(|e| format!("cannot read service {name}: {e}"))?;
            let version = service["Version"]["Index"].as_u64().unwrap_or(0);
            let mut spec = service["Spec"].take();
            let Some(container) = spec.pointer_mut("/TaskTemplate/ContainerSpec").and_then(|c| c.as_object_mut())
            else {
                return Err(format!("service {name} has no container spec (a plugin service?)"));
            };
            container.insert("Image".into(), serde_json::Value::String(image.to_owned()));
            let (status, body) =
                self.raw("POST", &format!("/services/{name}/update?version={version}"), Some(&spec.to_string()))?;
            match status {
                200 => return Ok(()),
                _ if body.contains("out of sequence") => {
                    last = body.trim().to_owned();
                    std::thread::sleep(POLL);
                }
                _ => return Err(format!("cannot update service {name} to {image}: HTTP {status}: {}", body.trim())),
            }
        }
        Err(format!("cannot update service {name} to {image}: it kept changing under lastgood ({last})"))
    }

    /// One request over the engine's unix socket, at the negotiated API version: the
    /// status and body. HTTP/1.1 with `Connection: close`; chunked bodies are decoded.
    fn raw(&self, method: &str, path: &str, body: Option<&str>) -> std::result::Result<(u16, String), String> {
        use std::io::{Read, Write};
        let sock = socket();
        let file = sock.strip_prefix("unix://").ok_or_else(|| format!("DOCKER_HOST={sock} is not a unix socket"))?;
        let mut s = std::os::unix::net::UnixStream::connect(file)
            .map_err(|e| format!("cannot reach the Docker engine at {sock}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(120))).map_err(|e| e.to_string())?;
        let version = self.api.client_version();
        let body = body.unwrap_or("");
        let request = format!(
            "{method} /v{}.{}{path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            version.major_version,
            version.minor_version,
            body.len()
        );
        s.write_all(request.as_bytes()).map_err(|e| format!("cannot talk to the Docker engine: {e}"))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(|e| format!("cannot read the Docker engine's answer: {e}"))?;
        let text = String::from_utf8_lossy(&raw);
        let (head, rest) = text.split_once("\r\n\r\n").ok_or("the Docker engine's answer has no header")?;
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or("malformed HTTP status")?;
        let chunked = head.lines().any(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("transfer-encoding:") && l.contains("chunked")
        });
        Ok((status, if chunked { dechunk(rest) } else { rest.to_owned() }))
    }

    /// The service's tasks (old ones included; the engine keeps a few).
    pub fn tasks(&self, service: &str) -> std::result::Result<Vec<SwarmTask>, String> {
        let filters = HashMap::from([("service".to_owned(), vec![service.to_owned()])]);
        let opts = ListTasksOptions { filters: Some(filters) };
        let tasks = self
            .rt
            .block_on(self.api.list_tasks(Some(opts)))
            .map_err(|e| format!("cannot list the tasks of service {service}: {e}"))?;
        let state = |s: Option<TaskState>| s.map(|s| s.to_string()).unwrap_or_default();
        Ok(tasks
            .into_iter()
            .map(|t| {
                let status = t.status.unwrap_or_default();
                SwarmTask {
                    image: t.spec.and_then(|s| s.container_spec).and_then(|c| c.image).unwrap_or_default(),
                    container: status.container_status.as_ref().and_then(|c| c.container_id.clone()),
                    state: state(status.state),
                    desired: state(t.desired_state),
                    message: status.message.unwrap_or_default(),
                    err: status.err,
                }
            })
            .collect())
    }
}

/// Decodes an HTTP/1.1 chunked body.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else { break };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].strip_prefix("\r\n").unwrap_or(&after[n..]);
    }
    out
}

// ---- the compose CLI ---------------------------------------------------------------

/// `docker compose` (v2) or `docker-compose` (v1), whichever this machine has.
pub struct ComposeCli {
    argv: Vec<String>,
    v2: bool,
}

impl ComposeCli {
    /// Finds the compose CLI: `docker compose version` first, then `docker-compose` on PATH.
    pub fn detect() -> std::result::Result<Self, String> {
        let v2 = Command::new("docker")
            .args(["compose", "version"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if v2 {
            return Ok(Self { argv: vec!["docker".into(), "compose".into()], v2: true });
        }
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join("docker-compose").is_file()))
            .unwrap_or(false);
        if on_path {
            return Ok(Self { argv: vec!["docker-compose".into()], v2: false });
        }
        Err("neither `docker compose` (v2) nor `docker-compose` (v1) is installed; install one of them".into())
    }

    pub fn is_v2(&self) -> bool {
        self.v2
    }

    pub fn name(&self) -> String {
        self.argv.join(" ")
    }

    fn command(&self, file: &Path, project: &str, vars: &[(String, String)]) -> Command {
        let mut c = Command::new(&self.argv[0]);
        c.args(&self.argv[1..]).arg("--file").arg(file).args(["--project-name", project]);
        if let Some(dir) = file.parent() {
            c.current_dir(dir);
        }
        c.envs(vars.iter().map(|(k, v)| (k, v))).stdin(Stdio::null());
        c
    }

    /// Runs a compose command; its stdout, or what it said when it failed. Its output
    /// is appended to `log` when given.
    pub fn run(
        &self,
        file: &Path,
        project: &str,
        vars: &[(String, String)],
        args: &[&str],
        log: Option<&Path>,
    ) -> std::result::Result<String, String> {
        let what = format!("{} {}", self.name(), args.join(" "));
        let out =
            self.command(file, project, vars).args(args).output().map_err(|e| format!("cannot run {what}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if let Some(log) = log {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
                let _ = writeln!(f, "$ {what}\n{stdout}{stderr}");
            }
        }
        if out.status.success() {
            Ok(stdout)
        } else {
            let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = tail[tail.len().saturating_sub(5)..].join("\n");
            Err(format!("{what} failed ({}): {tail}", out.status))
        }
    }

    /// Each service's image once the file is rendered with `vars` (`LASTGOOD_VERSION`).
    pub fn images(
        &self,
        file: &Path,
        project: &str,
        vars: &[(String, String)],
    ) -> std::result::Result<Vec<(String, String)>, String> {
        if self.v2 {
            let json = self.run(file, project, vars, &["config", "--format", "json"], None)?;
            let doc: serde_json::Value =
                serde_json::from_str(&json).map_err(|e| format!("cannot read the rendered compose file: {e}"))?;
            let mut out = Vec::new();
            if let Some(services) = doc.get("services").and_then(|s| s.as_object()) {
                for (name, s) in services {
                    if let Some(image) = s.get("image").and_then(|i| i.as_str()) {
                        out.push((name.clone(), image.to_owned()));
                    }
                }
            }
            Ok(out)
        } else {
            let yaml = self.run(file, project, vars, &["config"], None)?;
            Ok(rendered_images(&yaml))
        }
    }
}

/// The `image:` of each service in `docker-compose config`'s output. That output is
/// compose's own normalized YAML (two-space indents, one key per line), not a file a
/// person wrote, so reading these two levels is enough.
fn rendered_images(yaml: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_services = false;
    let mut service: Option<String> = None;
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if indent == 0 {
            in_services = text == "services:";
            service = None;
            continue;
        }
        if !in_services {
            continue;
        }
        if indent == 2 && text.ends_with(':') {
            service = Some(unquote(text.trim_end_matches(':')).to_owned());
        } else if indent == 4 {
            if let (Some(s), Some(image)) = (&service, text.strip_prefix("image:")) {
                out.push((s.clone(), unquote(image.trim()).to_owned()));
            }
        }
    }
    out
}

fn unquote(s: &str) -> &str {
    s.trim_matches(|c| c == '\'' || c == '"')
}

// ---- lastgood's record of images ---------------------------------------------------

/// The image one service of a release ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The compose service, or the Swarm service.
    pub service: String,
    /// As the compose file or the service names it (`app:v3`).
    pub reference: String,
    /// The image id (`sha256:...`): what the release ran, whatever the tag says later.
    pub id: String,
    /// Registry digests (`repo@sha256:...`), when the image came from a registry.
    #[serde(default)]
    pub repo_digests: Vec<String>,
}

/// What a release ran, written when it is first activated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub release: u64,
    pub version: String,
    pub images: Vec<Image>,
    /// It came up healthy at least once (retention protects these).
    #[serde(default)]
    pub healthy: bool,
    /// Its images carry keep tags now.
    #[serde(default)]
    pub protected: bool,
}

/// The records of one environment, in `<state>/images/`.
pub struct Records {
    pub dir: PathBuf,
}

impl Records {
    fn path(&self, release: u64) -> PathBuf {
        self.dir.join(format!("{release}.json"))
    }

    pub fn load(&self, release: u64) -> Option<Record> {
        let text = std::fs::read(self.path(release)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn save(&self, r: &Record) -> Result<()> {
        let text = serde_json::to_vec_pretty(r).map_err(|e| step(format!("cannot encode the image record: {e}")))?;
        super::releases::write_atomic(&self.path(r.release), &text)
    }

    /// Every record, newest release first.
    pub fn all(&self) -> Vec<Record> {
        let mut out: Vec<Record> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json")?.parse::<u64>().ok()
            })
            .filter_map(|id| self.load(id))
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.release));
        out
    }

    /// The newest record of a version older than `before`.
    pub fn by_version(&self, version: &str, before: u64) -> Option<Record> {
        self.all().into_iter().find(|r| r.version == version && r.release < before)
    }
}

/// The repository of keep tags for a project or service (`lastgood-keep/<name>`).
pub fn keep_repo(name: &str) -> String {
    let mut clean: String =
        name.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    clean = clean.trim_matches('-').to_owned();
    if clean.is_empty() {
        clean = "app".into();
    }
    format!("lastgood-keep/{clean}")
}

impl Engine {
    /// Makes every reference of the record name its recorded image again (a tag that
    /// moved is pointed back). The lines say what moved.
    pub fn restore_tags(&self, rec: &Record) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        for img in &rec.images {
            let now = self.image(&img.reference).map_err(step)?.map(|(id, _)| id);
            if now.as_deref() == Some(img.id.as_str()) {
                continue;
            }
            if self.image(&img.id).map_err(step)?.is_none() {
                return Err(step(format!(
                    "the image {} ({}) that release #{} ran is gone from the engine: rebuild or load it, then retry",
                    img.id, img.reference, rec.release
                )));
            }
            let r = Reference::parse(&img.reference).map_err(step)?;
            if r.digest.is_some() {
                // A digest reference cannot move; it names what it names.
                continue;
            }
            self.tag(&img.id, &r.repo, r.tag.as_deref().unwrap_or("latest")).map_err(step)?;
            notes.push(format!(
                "{} had moved to {}; pointed it back at {}",
                img.reference,
                now.as_deref().map(short).unwrap_or("nothing"),
                short(&img.id)
            ));
        }
        Ok(notes)
    }

    /// Whether every image of the record is on the engine; the reason when not.
    /// Keep tags for the newest `keep` healthy records (and `also`); removes the others'.
    pub fn protect(&self, records: &Records, name: &str, keep: usize, also: &[u64]) -> Vec<String> {
        let repo = keep_repo(name);
        let mut notes = Vec::new();
        let mut kept = 0;
        for mut rec in records.all() {
            let wanted = also.contains(&rec.release) || (rec.healthy && kept < keep);
            if rec.healthy && kept < keep {
                kept += 1;
            }
            if wanted {
                for (i, img) in rec.images.iter().enumerate() {
                    if let Err(e) = self.tag(&img.id, &repo, &format!("r{}-{i}", rec.release)) {
                        notes.push(e);
                    }
                }
                if !rec.protected {
                    rec.protected = true;
                    let _ = records.save(&rec);
                }
            } else if rec.protected {
                for i in 0..rec.images.len() {
                    if let Err(e) = self.untag(&format!("{repo}:r{}-{i}", rec.release)) {
                        notes.push(e);
                    }
                }
                rec.protected = false;
                let _ = records.save(&rec);
            }
        }
        notes
    }
}

/// `sha256:0123456789ab` for messages.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(19)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_follow_dockers_grammar() {
        for ok in [
            "app:v1",
            "lastgood-test/app:v1.2-rc_3",
            "registry.example.com:5000/team/app:1",
            "localhost/app",
            "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "a__b/c--d:x",
        ] {
            assert!(Reference::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "App:v1", "app:-v1", "app:v 1", "app;rm -rf /:v1", "app@sha256:xyz", "-app", "app:", "/app"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        let r = Reference::parse("registry:5000/app:v2").unwrap();
        assert_eq!((r.repo.as_str(), r.tag.as_deref()), ("registry:5000/app", Some("v2")));
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(dechunk("5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"), "hello, world");
    }

    #[test]
    fn tags_and_names() {
        assert!(check_tag("v1.2.3-rc_1").is_ok());
        assert!(check_tag("-v1").is_err());
        assert!(check_tag(".v1").is_err());
        assert!(check_tag("v1/evil").is_err());
        assert!(check_tag(&"a".repeat(129)).is_err());
        assert!(check_name("web_1.x").is_ok());
        assert!(check_name("-web").is_err());
        assert!(check_name("we b").is_err());
    }

    #[test]
    fn reads_images_from_compose_v1_config_output() {
        let yaml = "services:\n  web:\n    healthcheck:\n      test:\n      - CMD\n    image: lastgood-test/app:v2\n    network_mode: host\n  'worker':\n    image: 'other:v2'\nversion: '3.8'\n";
        assert_eq!(
            rendered_images(yaml),
            vec![("web".into(), "lastgood-test/app:v2".into()), ("worker".into(), "other:v2".into())]
        );
    }

    #[test]
    fn keep_repos_are_valid_references() {
        assert_eq!(keep_repo("My_Project.1"), "lastgood-keep/my-project-1");
        assert!(Reference::parse(&format!("{}:r3-0", keep_repo("My_Project.1"))).is_ok());
    }
}
