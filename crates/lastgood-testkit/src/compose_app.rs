//! A team's docker-compose app, built from source, whose schema Alembic migrates inside
//! the app's own container: the fixture for "the docker-compose server runbook, whole".
//!
//! [`ComposeApp::commit`] writes a release of the app into a [`TestEnv`]'s repository
//! and tags it, each one a realistic commit of a team's repository:
//!
//! - `Dockerfile`: `FROM` [`BASE_IMAGE`] (Debian bookworm, Python 3.11 and a venv with
//!   Alembic, SQLAlchemy and psycopg2 that `scripts/services.sh` builds with no
//!   registry), the tree copied to `/app` (`.dockerignore` leaves out `.git` and the
//!   compose files), `CMD ["python", "app.py"]`, labelled
//!   `org.opencontainers.image.title=<project>`.
//! - [`COMPOSE_FILE`]: service `app` with `build: .`,
//!   `image: <project>-app:${LASTGOOD_VERSION:-latest}`, host networking, `DATABASE_URL`
//!   passed from the environment, and a healthcheck on `/health`; `.env` names the
//!   compose project, so `docker-compose ps|logs|restart` work in any checkout or
//!   release folder without lastgood's variables.
//! - `app.py` (stdlib `http.server`) on 127.0.0.1:[`ComposeApp::port`]: `/version`
//!   answers the tree's `VERSION`; `/health` answers 200 `ok <version>` only when
//!   `DATABASE_URL` answers and has the table and column the release reads, and 500
//!   `unhealthy <version>: <reason>` otherwise.
//! - `alembic.ini` and `alembic/env.py`: the URL is `DATABASE_URL` (never a file), its
//!   `postgres://` or `postgresql://` read as `postgresql+psycopg2://`, since SQLAlchemy
//!   2.1's default PostgreSQL driver is psycopg 3, which the image does not have.
//!
//! The releases ([`Release`]): v1 creates the table `items`; v2 adds `items.price` (its
//! downgrade drops it) and reads it, so v2 on v1's schema is unhealthy; v3 adds
//! `items.sku` and is broken: it needs a setting (`PAYMENTS_URL`) its compose file never
//! gives, so its `/health` always answers 500.
//!
//! Compose v1 (1.29) cannot `run` a one-off container of a service that has a running
//! container when the service uses host networking: `run` links the one-off container
//! to the running ones and the engine refuses links with host networking ("conflicting
//! options: host type networking can't be used with links"). The runbook's
//! `docker-compose run --rm --no-deps app alembic ...` therefore works only while the
//! app is down (or with `docker-compose exec app alembic ...` in the running
//! container). [`ComposeApp::with_migrate_service`] adds the usual way around it: a
//! service `migrate` (same image, profile `tools`, so `up` leaves it alone) for
//! `docker-compose run --rm migrate alembic ...` beside the running app. lastgood's
//! compose runtime then needs `services = ["app"]`, since `migrate` never runs.
//!
//! Every compose project, image and container is the machine's Docker engine's, shared
//! with the ssh test fleet's hosts ([`crate::fleet`]), so each [`ComposeApp`] has its
//! own project name and removes, when dropped (also when a test panics), every
//! container, network and volume of its project and every image built for it: those
//! labelled with the project and those of its repository `<project>-app`. The engine
//! reads no file from a fleet host's private deploy folder (it is not in the engine's
//! mount namespace), so the app has no bind mounts: builds send their context.
//!
//! Needs the Docker engine, a compose CLI (`docker-compose` v1 is preferred, as in the
//! runbook; `docker compose` otherwise) and [`BASE_IMAGE`]; [`ComposeApp::new`] panics,
//! saying to run `scripts/services.sh`, when one is missing: tests fail, never skip.
//! The database is a [`PgDb`]: the containers reach its `127.0.0.1` through host
//! networking, and [`alembic_version`] and [`columns`] read what Alembic did.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{PgDb, TestEnv};

/// The image every release's Dockerfile starts `FROM` (built by `scripts/services.sh`).
pub const BASE_IMAGE: &str = "lastgood-test/python-alembic:1";
/// The value of the label `lastgood.test.rev` that [`BASE_IMAGE`] must carry.
const BASE_REV: &str = "1";
/// The compose file of every release.
pub const COMPOSE_FILE: &str = "docker-compose.prod.yml";
/// The label of every image built for a project (the Dockerfile's `LABEL`).
const PROJECT_LABEL: &str = "org.opencontainers.image.title";
/// How long [`ComposeApp::wait_health`] waits.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(90);

const DOCKERFILE: &str = include_str!("compose_app/Dockerfile");
const COMPOSE: &str = include_str!("compose_app/docker-compose.prod.yml");
const COMPOSE_MIGRATE: &str = include_str!("compose_app/migrate-service.yml");
const DOTENV: &str = include_str!("compose_app/env");
const DOCKERIGNORE: &str = include_str!("compose_app/dockerignore");
const APP_PY: &str = include_str!("compose_app/app.py");
const ALEMBIC_INI: &str = include_str!("compose_app/alembic.ini");
const ENV_PY: &str = include_str!("compose_app/alembic/env.py");
const SCRIPT_MAKO: &str = include_str!("compose_app/alembic/script.py.mako");
/// Alembic's revisions, oldest first: (file under `alembic/versions/`, id, text).
const REVISIONS: [(&str, &str, &str); 3] = [
    (
        "3f1c9a2b7d10_create_items.py",
        "3f1c9a2b7d10",
        include_str!("compose_app/alembic/versions/3f1c9a2b7d10_create_items.py"),
    ),
    (
        "8b4e6d0c2a91_add_items_price.py",
        "8b4e6d0c2a91",
        include_str!("compose_app/alembic/versions/8b4e6d0c2a91_add_items_price.py"),
    ),
    (
        "c71a5f3e9d42_add_items_sku.py",
        "c71a5f3e9d42",
        include_str!("compose_app/alembic/versions/c71a5f3e9d42_add_items_sku.py"),
    ),
];

/// A release of the app, committed and tagged by [`ComposeApp::commit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Release {
    /// Creates `items`; healthy once it exists.
    V1,
    /// Adds `items.price` and reads it; unhealthy on v1's schema.
    V2,
    /// Adds `items.sku`; broken: `/health` always answers 500.
    V3,
}

impl Release {
    pub const ALL: [Release; 3] = [Release::V1, Release::V2, Release::V3];

    /// The git tag, the `VERSION` file and the image tag lastgood gives it: `v1`...
    pub fn tag(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
            Self::V3 => "v3",
        }
    }

    /// Alembic's head in this release.
    pub fn revision(self) -> &'static str {
        REVISIONS[self.index()].1
    }

    /// Whether the release can be healthy (on its own schema). v3 never is.
    pub fn can_be_healthy(self) -> bool {
        self != Self::V3
    }

    /// The columns of `items` once this release's migrations ran.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Self::V1 => &["id", "name", "created_at"],
            Self::V2 => &["id", "name", "created_at", "price"],
            Self::V3 => &["id", "name", "created_at", "price", "sku"],
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// `app.py` of this release: the column it reads, the settings it needs.
    fn app_py(self) -> String {
        let (column, settings) = match self {
            Self::V1 => ("None", ""),
            Self::V2 => ("\"price\"", ""),
            Self::V3 => ("\"sku\"", "\"PAYMENTS_URL\""),
        };
        APP_PY.replace("@COLUMN@", column).replace("@SETTINGS@", settings)
    }
}

/// A container of a compose project, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    /// Without the leading `/`: `<project>_app_1`.
    pub name: String,
    pub service: String,
    /// `sha256:...` of the image it runs.
    pub image_id: String,
    /// The reference it was created from: `<project>-app:v1`.
    pub image: String,
    /// `running`, `exited`, ...
    pub state: String,
    /// `starting`, `healthy`, `unhealthy`, or empty without a healthcheck.
    pub health: String,
    /// `com.docker.compose.oneoff=True`: a `docker-compose run` container.
    pub one_off: bool,
}

/// An image built for a compose project, by one of its references.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Image {
    /// `repository:tag`.
    pub reference: String,
    /// `sha256:...`
    pub id: String,
}

/// The docker-compose app of one test: its own project name, port and images.
#[derive(Debug)]
pub struct ComposeApp {
    project: String,
    port: u16,
    migrate_service: bool,
    cli: Vec<String>,
}

static APPS: AtomicU32 = AtomicU32::new(0);

/// Runs `docker args`; stdout, trimmed, or None when docker fails.
fn docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker").args(args).stdin(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs `docker args`, for cleanup: failures (already gone) are fine.
fn docker_quiet(args: &[&str]) {
    let _ = Command::new("docker").args(args).stdin(Stdio::null()).output();
}

fn words(text: Option<String>) -> Vec<String> {
    text.map(|t| t.split_whitespace().map(str::to_owned).collect()).unwrap_or_default()
}

/// `docker-compose` (v1, as the runbook) if on PATH, else `docker compose` (v2).
pub fn compose_cli() -> Vec<String> {
    let v1 =
        Command::new("docker-compose").arg("version").stdin(Stdio::null()).output().is_ok_and(|o| o.status.success());
    if v1 { vec!["docker-compose".into()] } else { vec!["docker".into(), "compose".into()] }
}

/// The engine answers, a compose CLI runs and [`BASE_IMAGE`] is built; else a panic that
/// says what to run.
pub fn require_engine() -> Vec<String> {
    match Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "the Docker engine is not reachable: {}; run scripts/services.sh (it installs and starts what the container tests need)",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("docker is not installed ({e}); run scripts/services.sh"),
    }
    let cli = compose_cli();
    let (program, args) = cli.split_first().expect("compose_cli names a program");
    let works = Command::new(program).args(args).arg("version").output().is_ok_and(|o| o.status.success());
    assert!(works, "no compose CLI (docker-compose or `docker compose`); run scripts/services.sh");
    let rev = docker(&["image", "inspect", "-f", "{{index .Config.Labels \"lastgood.test.rev\"}}", BASE_IMAGE]);
    assert_eq!(
        rev.as_deref(),
        Some(BASE_REV),
        "{BASE_IMAGE} (label lastgood.test.rev={BASE_REV}) is not on the engine; run scripts/services.sh"
    );
    cli
}

/// Alembic's revision in `db` (`alembic_version`), None before the first migration.
pub fn alembic_version(db: &PgDb) -> Option<String> {
    let exists = db.sql("SELECT to_regclass('alembic_version') IS NOT NULL");
    if exists != "t" {
        return None;
    }
    let v = db.sql("SELECT string_agg(version_num, ',' ORDER BY version_num) FROM alembic_version");
    (!v.is_empty()).then_some(v)
}

/// The columns of `table` in `db`, in their order; empty when there is no such table.
pub fn columns(db: &PgDb, table: &str) -> Vec<String> {
    let table = table.replace('\'', "''");
    db.sql(&format!(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() \
         AND table_name = '{table}' ORDER BY ordinal_position"
    ))
    .lines()
    .map(str::to_owned)
    .collect()
}

/// What is left of compose project `project` on the engine (containers, networks,
/// volumes, images), one line each; empty once [`ComposeApp`] was dropped.
pub fn project_leftovers(project: &str) -> Vec<String> {
    let label = format!("label=com.docker.compose.project={project}");
    let mut left = Vec::new();
    for id in words(docker(&["ps", "-aq", "--filter", &label])) {
        left.push(format!("container {id}"));
    }
    for id in words(docker(&["network", "ls", "-q", "--filter", &label])) {
        left.push(format!("network {id}"));
    }
    for id in words(docker(&["volume", "ls", "-q", "--filter", &label])) {
        left.push(format!("volume {id}"));
    }
    for id in project_image_ids(project) {
        left.push(format!("image {id}"));
    }
    left
}

/// Every image built for `project`: labelled with it (dangling ones too) or in its
/// repository `<project>-app`.
fn project_image_ids(project: &str) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> =
        words(docker(&["images", "-q", "--no-trunc", "--filter", &format!("label={PROJECT_LABEL}={project}")]))
            .into_iter()
            .collect();
    ids.extend(words(docker(&["images", "-q", "--no-trunc", &format!("{project}-app")])));
    ids
}

impl ComposeApp {
    /// An app for `env`: project `lgapp-<pid>-<n>`, listening on `env.port` (so
    /// [`TestEnv::get`] reaches it too). Panics when the engine, a compose CLI or
    /// [`BASE_IMAGE`] is missing.
    pub fn new(env: &TestEnv) -> Self {
        let cli = require_engine();
        let n = APPS.fetch_add(1, Ordering::SeqCst);
        let project = format!("lgapp-{}-{n}", std::process::id());
        Self { project, port: env.port, migrate_service: false, cli }
    }

    /// Adds the `migrate` service (profile `tools`) to the compose file, for
    /// `docker-compose run --rm migrate alembic ...` while the app runs.
    pub fn with_migrate_service(mut self) -> Self {
        self.migrate_service = true;
        self
    }

    /// The compose project (`-p`, and `COMPOSE_PROJECT_NAME` in the tree's `.env`).
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The loopback port the app listens on (host networking).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The repository of the app's images: `<project>-app`.
    pub fn repository(&self) -> String {
        format!("{}-app", self.project)
    }

    /// The image of a version: `<project>-app:<version>`.
    pub fn image(&self, version: &str) -> String {
        format!("{}:{version}", self.repository())
    }

    /// The compose CLI this app is driven with (`["docker-compose"]` or `["docker", "compose"]`).
    pub fn cli(&self) -> &[String] {
        &self.cli
    }

    /// The files of `release`'s tree except `VERSION`: (path, content).
    pub fn files(&self, release: Release) -> Vec<(String, String)> {
        let fill = |text: &str| {
            text.replace("@PROJECT@", &self.project)
                .replace("@PORT@", &self.port.to_string())
                .replace("@BASE_IMAGE@", BASE_IMAGE)
        };
        let mut compose = fill(COMPOSE);
        if self.migrate_service {
            compose.push_str(&fill(COMPOSE_MIGRATE));
        }
        let mut files = vec![
            ("Dockerfile".to_owned(), fill(DOCKERFILE)),
            (COMPOSE_FILE.to_owned(), compose),
            (".env".to_owned(), fill(DOTENV)),
            (".dockerignore".to_owned(), DOCKERIGNORE.to_owned()),
            ("app.py".to_owned(), release.app_py()),
            ("alembic.ini".to_owned(), ALEMBIC_INI.to_owned()),
            ("alembic/env.py".to_owned(), ENV_PY.to_owned()),
            ("alembic/script.py.mako".to_owned(), SCRIPT_MAKO.to_owned()),
        ];
        for (file, _, text) in &REVISIONS[..=release.index()] {
            files.push((format!("alembic/versions/{file}"), (*text).to_owned()));
        }
        files
    }

    /// Commits `release` into `env`'s repository (its `VERSION` and every file of its
    /// tree) and tags it ([`Release::tag`]).
    pub fn commit(&self, env: &mut TestEnv, release: Release) {
        let files = self.files(release);
        let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        env.commit_version(release.tag(), &refs);
    }

    /// Commits v1, v2 and v3, in that order.
    pub fn commit_all(&self, env: &mut TestEnv) {
        for release in Release::ALL {
            self.commit(env, release);
        }
    }

    /// A fresh clone of `env`'s repository at tag `tag`, in a temp folder removed when
    /// dropped, as a team checks a release out on its server.
    pub fn checkout(&self, env: &TestEnv, tag: &str) -> TempDir {
        let dir = tempfile::Builder::new().prefix("lastgood-compose-app.").tempdir().expect("temp dir");
        let repo = env.repo();
        let repo = repo.to_str().expect("the repository path is UTF-8");
        let dest = dir.path().to_str().expect("the temp path is UTF-8");
        env.git(&["-c", "advice.detachedHead=false", "clone", "-q", "--branch", tag, repo, dest], env.path());
        dir
    }

    /// Runs `<compose> -f docker-compose.prod.yml -p <project> args` in `dir`, with
    /// `LASTGOOD_VERSION` and `DATABASE_URL` in its environment when given (never in
    /// argv) and removed from it otherwise.
    pub fn compose(&self, dir: &Path, version: Option<&str>, database_url: Option<&str>, args: &[&str]) -> Output {
        let (program, pre) = self.cli.split_first().expect("compose_cli names a program");
        let mut c = Command::new(program);
        c.args(pre).args(["-f", COMPOSE_FILE, "-p", &self.project]).args(args).current_dir(dir).stdin(Stdio::null());
        c.env_remove("COMPOSE_FILE").env_remove("COMPOSE_PROJECT_NAME").env_remove("COMPOSE_PROFILES");
        match version {
            Some(v) => c.env("LASTGOOD_VERSION", v),
            None => c.env_remove("LASTGOOD_VERSION"),
        };
        match database_url {
            Some(url) => c.env("DATABASE_URL", url),
            None => c.env_remove("DATABASE_URL"),
        };
        c.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", self.cli.join(" ")))
    }

    /// [`ComposeApp::compose`] that must succeed; its stdout and stderr together.
    #[track_caller]
    pub fn compose_ok(&self, dir: &Path, version: Option<&str>, database_url: Option<&str>, args: &[&str]) -> String {
        let out = self.compose(dir, version, database_url, args);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{} {args:?} in {} failed:\n{text}", self.cli.join(" "), dir.display());
        text
    }

    /// GET `path` of the app: (status, body), None when nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let addr = ([127, 0, 0, 1], self.port).into();
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        let (head, body) = buf.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_owned()))
    }

    /// The containers of the project (also stopped and one-off ones).
    pub fn containers(&self) -> Vec<Container> {
        let label = format!("label=com.docker.compose.project={}", self.project);
        let ids = words(docker(&["ps", "-aq", "--no-trunc", "--filter", &label]));
        if ids.is_empty() {
            return Vec::new();
        }
        let format = "{{.Id}}\t{{.Name}}\t{{index .Config.Labels \"com.docker.compose.service\"}}\t{{.Image}}\t\
                      {{.Config.Image}}\t{{.State.Status}}\t{{with index .State \"Health\"}}{{.Status}}{{end}}\t\
                      {{index .Config.Labels \"com.docker.compose.oneoff\"}}";
        // A container may go between ps and inspect: inspect then fails for that one
        // but still prints the others.
        let out = Command::new("docker").args(["inspect", "--format", format]).args(&ids).stdin(Stdio::null()).output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                let [id, name, service, image_id, image, state, health, one_off] = f[..] else { return None };
                Some(Container {
                    id: id.to_owned(),
                    name: name.trim_start_matches('/').to_owned(),
                    service: service.to_owned(),
                    image_id: image_id.to_owned(),
                    image: image.to_owned(),
                    state: state.to_owned(),
                    health: health.to_owned(),
                    one_off: one_off.eq_ignore_ascii_case("true"),
                })
            })
            .collect()
    }

    /// The `app` service's container (not a one-off), if there is one.
    pub fn app_container(&self) -> Option<Container> {
        self.containers().into_iter().find(|c| c.service == "app" && !c.one_off)
    }

    /// Waits until the app's container's health is `want` (`healthy`, `unhealthy`);
    /// panics after 90 s with its state, its last health checks and its logs.
    #[track_caller]
    pub fn wait_health(&self, want: &str) -> Container {
        let start = Instant::now();
        loop {
            let c = self.app_container();
            if let Some(c) = c.as_ref().filter(|c| c.health == want) {
                return c.clone();
            }
            if start.elapsed() > HEALTH_TIMEOUT {
                panic!("the app's container did not become {want} in {HEALTH_TIMEOUT:?}: {c:?}\n{}", self.diagnose());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The app container's last health checks and logs, for failure messages.
    pub fn diagnose(&self) -> String {
        let mut text = String::new();
        for c in self.containers() {
            let health =
                docker(&["inspect", "--format", "{{with index .State \"Health\"}}{{json .Log}}{{end}}", &c.id]);
            let logs = Command::new("docker").args(["logs", "--tail", "20", &c.id]).output();
            let logs = logs
                .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
                .unwrap_or_default();
            let _ = write!(
                text,
                "container {} ({}, {} {}): health log {}\nlogs:\n{logs}\n",
                c.name,
                c.image,
                c.state,
                c.health,
                health.unwrap_or_default()
            );
        }
        text
    }

    /// The images built for the project, by reference (`<project>-app:v1`, and any
    /// other tag of them, such as lastgood's keep tags), sorted.
    pub fn images(&self) -> Vec<Image> {
        let mut images = Vec::new();
        for id in project_image_ids(&self.project) {
            let tags = docker(&["image", "inspect", "--format", "{{range .RepoTags}}{{.}} {{end}}", &id]);
            for reference in words(tags) {
                images.push(Image { reference, id: id.clone() });
            }
        }
        images.sort();
        images
    }

    /// Removes every container (one-off ones too), network and volume of the project and
    /// every image built for it. Idempotent; [`Drop`] calls it.
    pub fn remove(&self) {
        let label = format!("label=com.docker.compose.project={}", self.project);
        let containers = words(docker(&["ps", "-aq", "--filter", &label]));
        if !containers.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(containers.iter().map(String::as_str));
            docker_quiet(&args);
        }
        for id in words(docker(&["network", "ls", "-q", "--filter", &label])) {
            docker_quiet(&["network", "rm", &id]);
        }
        for id in words(docker(&["volume", "ls", "-q", "--filter", &label])) {
            docker_quiet(&["volume", "rm", "-f", &id]);
        }
        let images = project_image_ids(&self.project);
        if !images.is_empty() {
            // -f: an image may carry several tags (lastgood's keep tags); the untagged
            // build layers under each go with it.
            let mut args = vec!["rmi", "-f"];
            args.extend(images.iter().map(String::as_str));
            docker_quiet(&args);
        }
    }
}

impl Drop for ComposeApp {
    fn drop(&mut self) {
        self.remove();
    }
}
