//! The Docker Engine API, through `bollard`, plus one raw request over the socket.
//!
//! The Engine API answers what the world holds (image ids, container state and health,
//! a Swarm service's `UpdateStatus` and tasks); lastgood never trusts an exit code alone.
//! The client negotiates the API version, since engines differ (20.10 stops at 1.41).
//! Calls are blocking from the caller's side: one small current-thread tokio runtime
//! per [`DockerApi`], each request `block_on`'d. (It was called `Engine`, a name
//! `engine::Engine` already holds.)
//!
//! **Why a raw request too.** Updating a Swarm service's image is the one call that
//! bypasses bollard: its models name the container spec's healthcheck `HealthCheck`
//! where the engine says `Healthcheck`, so a spec read and written back through them
//! silently loses the service's healthcheck (and any field the models do not know).
//! [`DockerApi::set_service_image`] sends the engine's own JSON back with only the image
//! changed, over the socket, and reads the answer with [`crate::http1`], the parser the
//! health checks use.

use std::collections::HashMap;
use std::io::{self, BufReader, Write};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ServiceSpec, TaskState};
use bollard::query_parameters::{
    InspectServiceOptions, ListContainersOptions, ListImagesOptions, ListTasksOptions, RemoveImageOptions,
    TagImageOptions,
};

use crate::error::Error;
use crate::http1;
use crate::model::{ContainerName, InvalidName};

/// How long lastgood waits for containers or a service to settle after a change.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(180);
/// How often it looks while waiting.
pub const POLL: Duration = Duration::from_millis(50);

/// How long the engine may take to answer a raw request.
const RAW_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest answer a raw request reads (a service's spec is a few KiB).
const RAW_MAX_BODY: usize = 16 * 1024 * 1024;
/// How many times a service update is retried when another update got in between.
const UPDATE_ATTEMPTS: usize = 5;

/// A Docker engine call that failed, with what it was about.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot start an I/O runtime for the Docker client: {source}")]
    Runtime {
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot reach the Docker engine at {socket}: {source}; start dockerd, or set DOCKER_HOST to its unix socket"
    )]
    Connect {
        socket: String,
        #[source]
        source: Box<BollardError>,
    },
    #[error("cannot inspect image {reference}: {source}")]
    InspectImage {
        reference: String,
        #[source]
        source: Box<BollardError>,
    },
    #[error("cannot tag {id} as {repo}:{tag}: {source}")]
    Tag {
        id: String,
        repo: String,
        tag: String,
        #[source]
        source: Box<BollardError>,
    },
    #[error("cannot remove tag {reference}: {source}")]
    Untag {
        reference: String,
        #[source]
        source: Box<BollardError>,
    },
    #[error("cannot list images: {source}")]
    ListImages {
        #[source]
        source: Box<BollardError>,
    },
    #[error("cannot list the containers of project {project}: {source}")]
    ListContainers {
        project: String,
        #[source]
        source: Box<BollardError>,
    },
    #[error("cannot inspect container {id}: {source}")]
    InspectContainer {
        id: String,
        #[source]
        source: Box<BollardError>,
    },
    #[error("cannot inspect service {name}: {source}")]
    InspectService {
        name: String,
        #[source]
        source: Box<BollardError>,
    },
    #[error("cannot list the tasks of service {service}: {source}")]
    ListTasks {
        service: String,
        #[source]
        source: Box<BollardError>,
    },
    #[error(transparent)]
    Name(#[from] InvalidName),
    #[error("service {name} does not exist")]
    NoService { name: String },
    #[error("cannot inspect service {name}: HTTP {status}: {body}")]
    ServiceStatus { name: String, status: u16, body: String },
    #[error("cannot read service {name}: {source}")]
    ServiceJson {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("service {name} has no container spec (a plugin service?)")]
    NoContainerSpec { name: String },
    #[error("cannot update service {name} to {image}: HTTP {status}: {body}")]
    UpdateService { name: String, image: String, status: u16, body: String },
    #[error("cannot update service {name} to {image}: it kept changing under lastgood ({last})")]
    KeptChanging { name: String, image: String, last: String },
    #[error("DOCKER_HOST={socket} is not a unix socket")]
    NotUnixSocket { socket: String },
    #[error("cannot reach the Docker engine at {socket}: {source}")]
    Socket {
        socket: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot talk to the Docker engine: {source}")]
    Send {
        #[source]
        source: io::Error,
    },
    #[error("cannot read the Docker engine's answer: {source}")]
    Answer {
        #[source]
        source: http1::ResponseError,
    },
    #[error(
        "the image {id} ({reference}) that release #{release} ran is gone from the engine: rebuild or load it, then retry"
    )]
    ImageGone { id: String, reference: String, release: u64 },
    #[error(
        "the image {id} ({reference} of service {service}) that release #{release} ran is no longer on the Docker engine; load or rebuild it (docker load, docker build) and tag it {reference}"
    )]
    ImageMissing { id: String, reference: String, service: String, release: u64 },
}

/// A Docker call that fails fails the step that made it (the library's error has no
/// Docker variant of its own).
impl From<DockerError> for Error {
    fn from(e: DockerError) -> Error {
        Error::Step { message: e.to_string() }
    }
}

/// A connection to the Docker engine, with a runtime to drive its requests.
pub struct DockerApi {
    rt: tokio::runtime::Runtime,
    api: Docker,
}

/// One container of a compose project, as the engine describes it.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
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
    /// How it was created, for a one-off container that must look the same.
    pub setup: Setup,
    /// Its healthcheck's test as the engine runs it, and how long a run may take.
    pub probe: Option<(Vec<String>, Duration)>,
}

/// What a one-off container copies from a service's container: its network, mounts,
/// environment, working folder and user.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// `host`, `bridge`, a network's name, `container:<id>`.
    pub network_mode: String,
    /// As `docker run -v` takes them: `SOURCE:DEST[:ro]` (a bind's path or a volume's name).
    pub mounts: Vec<String>,
    /// `KEY=VALUE`, as the container has them.
    pub env: Vec<String>,
    pub workdir: String,
    pub user: String,
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

fn not_found(e: &BollardError) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code: 404, .. })
}

impl DockerApi {
    /// Connects to the engine named by `DOCKER_HOST` (a unix socket) or the default
    /// socket, and agrees on an API version both sides speak.
    pub fn connect() -> Result<Self, DockerError> {
        let unreachable = |e: BollardError| DockerError::Connect { socket: socket(), source: Box::new(e) };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| DockerError::Runtime { source })?;
        let api = Docker::connect_with_local_defaults().map_err(unreachable)?;
        let api = rt.block_on(api.negotiate_version()).map_err(unreachable)?;
        Ok(Self { rt, api })
    }

    /// The id (`sha256:...`) and registry digests of an image; None when the engine does not have it.
    pub fn image(&self, reference: &str) -> Result<Option<(String, Vec<String>)>, DockerError> {
        match self.rt.block_on(self.api.inspect_image(reference)) {
            Ok(i) => Ok(i.id.map(|id| (id, i.repo_digests.unwrap_or_default()))),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(DockerError::InspectImage { reference: reference.to_owned(), source: Box::new(e) }),
        }
    }

    /// Points `repo:tag` at the image `id`.
    pub fn tag(&self, id: &str, repo: &str, tag: &str) -> Result<(), DockerError> {
        let opts = TagImageOptions { repo: Some(repo.to_owned()), tag: Some(tag.to_owned()) };
        self.rt.block_on(self.api.tag_image(id, Some(opts))).map_err(|e| DockerError::Tag {
            id: id.to_owned(),
            repo: repo.to_owned(),
            tag: tag.to_owned(),
            source: Box::new(e),
        })
    }

    /// Removes a tag; the image itself goes only when nothing else names or uses it.
    pub fn untag(&self, reference: &str) -> Result<(), DockerError> {
        let opts = RemoveImageOptions { force: false, noprune: true, platforms: None };
        match self.rt.block_on(self.api.remove_image(reference, Some(opts), None)) {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(DockerError::Untag { reference: reference.to_owned(), source: Box::new(e) }),
        }
    }

    /// Tags whose repository is `repo` (like `lastgood-keep/web`), with their image ids.
    pub fn tags_of(&self, repo: &str) -> Result<Vec<(String, String)>, DockerError> {
        let filters = HashMap::from([("reference".to_owned(), vec![format!("{repo}:*")])]);
        let opts = ListImagesOptions { filters: Some(filters), ..Default::default() };
        let images = self
            .rt
            .block_on(self.api.list_images(Some(opts)))
            .map_err(|e| DockerError::ListImages { source: Box::new(e) })?;
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
    pub fn containers(&self, project: &str) -> Result<Vec<Container>, DockerError> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("com.docker.compose.project={project}")])]);
        let opts = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let list = self
            .rt
            .block_on(self.api.list_containers(Some(opts)))
            .map_err(|e| DockerError::ListContainers { project: project.to_owned(), source: Box::new(e) })?;
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
                Err(e) => return Err(DockerError::InspectContainer { id, source: Box::new(e) }),
            };
            let config = inspect.config.unwrap_or_default();
            let probe = probe_of(&config);
            let setup = Setup {
                network_mode: inspect.host_config.and_then(|h| h.network_mode).unwrap_or_default(),
                mounts: inspect
                    .mounts
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|m| {
                        let from = match m.typ.map(|t| t.to_string()).as_deref() {
                            Some("volume") => m.name?,
                            _ => m.source?,
                        };
                        let ro = if m.rw == Some(false) { ":ro" } else { "" };
                        Some(format!("{from}:{}{ro}", m.destination?))
                    })
                    .collect(),
                env: config.env.unwrap_or_default(),
                workdir: config.working_dir.unwrap_or_default(),
                user: config.user.unwrap_or_default(),
            };
            let state = inspect.state.unwrap_or_default();
            let health = state.health.as_ref();
            out.push(Container {
                id: id.clone(),
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
                setup,
                probe,
            });
        }
        Ok(out)
    }

    /// A container's health (`starting`, `healthy`, `unhealthy`) and its last check's
    /// output; None without a healthcheck or when this engine does not have it.
    pub fn health(&self, id: &str) -> Result<Option<(String, Option<String>)>, DockerError> {
        let inspect = match self.rt.block_on(self.api.inspect_container(id, None)) {
            Ok(i) => i,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(DockerError::InspectContainer { id: id.to_owned(), source: Box::new(e) }),
        };
        let Some(h) = inspect.state.and_then(|s| s.health) else { return Ok(None) };
        let status = h.status.map(|s| s.to_string()).filter(|s| !s.is_empty() && s != "none");
        let output = h.log.as_ref().and_then(|l| l.last()).and_then(|r| r.output.clone()).map(|o| o.trim().to_owned());
        Ok(status.map(|s| (s, output)))
    }

    /// Runs a container's healthcheck test (`argv`, as the engine runs it) in it now and
    /// waits for it, up to `timeout`: whether it exited 0. The engine's own first check
    /// comes only an `interval` after the start. Any failure to run it is a "no".
    pub fn probe(&self, id: &str, argv: &[String], timeout: Duration) -> bool {
        use bollard::exec::{CreateExecOptions, StartExecOptions};
        let opts = CreateExecOptions { cmd: Some(argv.to_vec()), ..Default::default() };
        let Ok(exec) = self.rt.block_on(self.api.create_exec(id, opts)) else { return false };
        let detached = StartExecOptions { detach: true, ..Default::default() };
        if self.rt.block_on(self.api.start_exec(&exec.id, Some(detached))).is_err() {
            return false;
        }
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            let Ok(run) = self.rt.block_on(self.api.inspect_exec(&exec.id)) else { return false };
            // Not running with no exit code yet: not started.
            if run.running != Some(true) && run.exit_code.is_some() {
                return run.exit_code == Some(0);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A Swarm service; None when there is no such service.
    pub fn service(&self, name: &str) -> Result<Option<SwarmService>, DockerError> {
        let s = match self.rt.block_on(self.api.inspect_service(name, None::<InspectServiceOptions>)) {
            Ok(s) => s,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(DockerError::InspectService { name: name.to_owned(), source: Box::new(e) }),
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

    /// Sets the service's image, retrying when another update got in between. Goes
    /// around bollard (see the module's doc): the spec travels as the engine's own JSON,
    /// with only the image changed.
    pub fn set_service_image(&self, name: &str, image: &str) -> Result<(), DockerError> {
        // The name goes into a URL path: it must be a name and nothing more.
        let name = ContainerName::parse(name).map_err(DockerError::from)?;
        let mut last = String::new();
        for _ in 0..UPDATE_ATTEMPTS {
            let (status, body) = self.raw("GET", &format!("/services/{name}"), None)?;
            if status == 404 {
                return Err(DockerError::NoService { name: name.into_string() });
            }
            if status != 200 {
                let body = body.trim().to_owned();
                return Err(DockerError::ServiceStatus { name: name.into_string(), status, body });
            }
            let mut service: serde_json::Value = serde_json::from_str(&body)
                .map_err(|source| DockerError::ServiceJson { name: name.to_string(), source })?;
            let version = service["Version"]["Index"].as_u64().unwrap_or(0);
            let mut spec = service["Spec"].take();
            let Some(container) = spec.pointer_mut("/TaskTemplate/ContainerSpec").and_then(|c| c.as_object_mut())
            else {
                return Err(DockerError::NoContainerSpec { name: name.into_string() });
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
                _ => {
                    let (name, image, body) = (name.into_string(), image.to_owned(), body.trim().to_owned());
                    return Err(DockerError::UpdateService { name, image, status, body });
                }
            }
        }
        Err(DockerError::KeptChanging { name: name.into_string(), image: image.to_owned(), last })
    }

    /// One request over the engine's unix socket, at the negotiated API version.
    fn raw(&self, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String), DockerError> {
        let version = self.api.client_version();
        let path = format!("/v{}.{}{path}", version.major_version, version.minor_version);
        request(&socket(), method, &path, body)
    }

    /// The service's tasks (old ones included; the engine keeps a few).
    pub fn tasks(&self, service: &str) -> Result<Vec<SwarmTask>, DockerError> {
        let filters = HashMap::from([("service".to_owned(), vec![service.to_owned()])]);
        let opts = ListTasksOptions { filters: Some(filters) };
        let tasks = self
            .rt
            .block_on(self.api.list_tasks(Some(opts)))
            .map_err(|e| DockerError::ListTasks { service: service.to_owned(), source: Box::new(e) })?;
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

/// A container's healthcheck as the engine runs it (`CMD` as given, `CMD-SHELL` through
/// the container's shell), and its timeout (30 s unless set); None without one.
fn probe_of(config: &bollard::models::ContainerConfig) -> Option<(Vec<String>, Duration)> {
    let check = config.healthcheck.as_ref()?;
    let test = check.test.as_ref()?;
    let argv = match test.split_first() {
        Some((kind, args)) if kind == "CMD" => args.to_vec(),
        Some((kind, [script])) if kind == "CMD-SHELL" => {
            let mut shell =
                config.shell.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            shell.push(script.clone());
            shell
        }
        _ => return None,
    };
    let timeout = check.timeout.filter(|t| *t > 0).map(|ns| Duration::from_nanos(ns as u64));
    (!argv.is_empty()).then(|| (argv, timeout.unwrap_or(Duration::from_secs(30))))
}

/// One HTTP/1.1 request to the engine at `socket` (`unix://PATH`) with
/// `Connection: close`: the status and body, read by [`http1`].
fn request(socket: &str, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String), DockerError> {
    let Some(file) = socket.strip_prefix("unix://") else {
        return Err(DockerError::NotUnixSocket { socket: socket.to_owned() });
    };
    let mut s = std::os::unix::net::UnixStream::connect(file)
        .and_then(|s| s.set_read_timeout(Some(RAW_TIMEOUT)).map(|()| s))
        .map_err(|source| DockerError::Socket { socket: socket.to_owned(), source })?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).map_err(|source| DockerError::Send { source })?;
    let mut reader = BufReader::new(s);
    let answer = |source| DockerError::Answer { source };
    let head = http1::read_head(&mut reader).map_err(answer)?;
    let body = http1::read_body(&mut reader, &head, RAW_MAX_BODY).map_err(answer)?;
    Ok((head.status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, Read};
    use std::os::unix::net::UnixListener;

    use super::*;

    /// A fake engine on a unix socket: answers one request with `response` and hands
    /// back the request it read.
    fn engine(response: &'static str) -> (tempfile::TempDir, String, std::thread::JoinHandle<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let served = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map(|n| n.trim().parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            reader.get_mut().write_all(response.as_bytes()).unwrap();
            head + &String::from_utf8(body).unwrap()
        });
        (dir, format!("unix://{}", path.display()), served)
    }

    #[test]
    fn chunked_answers_from_the_engine_are_decoded() {
        let (_dir, socket, served) =
            engine("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n");
        let answer = request(&socket, "POST", "/v1.41/services/web/update?version=3", Some("{}")).unwrap();
        assert_eq!(answer, (200, "hello, world".to_owned()));
        let sent = served.join().unwrap();
        assert!(sent.starts_with("POST /v1.41/services/web/update?version=3 HTTP/1.1\r\n"), "{sent}");
        assert!(sent.contains("Connection: close\r\n") && sent.ends_with("\r\n\r\n{}"), "{sent}");
    }

    #[test]
    fn only_a_unix_socket_is_spoken_to() {
        let err = request("tcp://127.0.0.1:2375", "GET", "/v1.41/version", None).unwrap_err();
        assert_eq!(err.to_string(), "DOCKER_HOST=tcp://127.0.0.1:2375 is not a unix socket");
    }
}
