//! The commented `lastgood.toml` that `lastgood init` writes.
//!
//! It is documentation a user edits, not a serialisation of [`super::Config`]: every
//! key it sets or shows commented out must parse (a test in `mod.rs` parses it), and
//! anything optional stays a comment so the defaults remain visible.
//! [`template_for`] writes the same file for another runtime (`lastgood init
//! --runtime X`): the environment's own keys differ, the rest is shared.

/// The commented file `lastgood init` writes.
pub fn template(source_name: &str) -> String {
    format!(
        r#"# lastgood.toml: how lastgood deploys {source_name} and returns it to its last good state.
# Paths are relative to this file's folder. Unknown keys are errors.

[ledger]
# Where releases, operations and the audit trail are recorded.
url = "sqlite://.lastgood/ledger.db"
# A team shares one ledger on PostgreSQL (docs/team-ledger.md), then `lastgood ledger init`:
# url_env = "LASTGOOD_LEDGER_URL"   # instead of `url`
# schema = "lastgood"

[environments.production]
runtime = "releases"            # release directories and an atomic `current` symlink
hosts = ["local"]
source = "."                    # the git repository versions are resolved in
deploy_to = "/srv/{source_name}"   # <deploy_to>/releases/<id>/ and <deploy_to>/current
# build = ["make", "build"]     # run in the new release directory (never on rollback)
# run = ["./server", "--port", "8080"]            # lastgood starts and stops this process itself
# restart = ["systemctl", "restart", "{source_name}"]   # or: your supervisor restarts the app
keep_releases = 5               # good releases whose directories are never cleaned up
# config_files = ["app.env"]    # snapshotted with each release, restored on rollback
# stop_timeout = "10s"          # SIGTERM, then SIGKILL after this long
# major_guard = false           # allow lowering the major version without --allow-major

# Zero-downtime switch for `run` (docs/zero-downtime.md): lastgood's proxy listens here,
# each release runs beside the last on its own port ({{port}} in `run` and in checks),
# is checked there, then gets the new connections; the old one drains, then stops.
# [environments.production.proxy]
# listen = "0.0.0.0:8080"
# drain = "30s"

# The app's database: migrations travel with releases (docs/database.md).
# [environments.production.database]
# url_env = "DATABASE_URL"        # or url = "postgres://app@127.0.0.1/app" / "sqlite://app.db"
# migrations = "migrations"       # relative to a release; diesel or sqlx layout
# adapter = "builtin"             # builtin | alembic | command
# backup = "auto"                 # auto (before destructive steps) | always | never

# Where to tell people what happens (JSON with a `text` field chat tools show).
# [environments.production.notify]
# webhooks = ["https://chat.example.com/hooks/..."]

# Health checks: a release becomes good only when all of them pass.
# [[environments.production.checks]]
# http = "http://127.0.0.1:8080/health"
# expect_status = 200
# expect_body = "{{version}}"     # substring; {{version}} is the release's version
# interval = "500ms"
# timeout = "2s"
# retries = 20
"#
    )
}

/// The commented file for `runtime` (releases, command, gitops, compose, swarm).
pub fn template_for(source_name: &str, runtime: &str) -> String {
    let full = template(source_name);
    let (head, rest) = full.split_once("[environments.production]\n").unwrap_or((&full, ""));
    // The database, notify and checks sections are the same for every runtime.
    let tail = rest.find("\n# The app's database").map(|i| &rest[i..]).unwrap_or("");
    let body = match runtime {
        "command" => COMMAND.to_owned(),
        "gitops" => GITOPS.to_owned(),
        "compose" => COMPOSE.replace("APP", source_name),
        "swarm" => SWARM.replace("APP", source_name),
        _ => return full,
    };
    format!("{head}[environments.production]\n{body}{tail}")
}

const COMMAND: &str = r#"runtime = "command"             # your pipeline switches versions (a CI job, a parameter store)
# The program that ships VERSION and waits for it; a relative path is relative to this file.
# {version}, {release}, {env}, {commit} and {host} are replaced inside each element (no shell);
# the same values are in LASTGOOD_VERSION, LASTGOOD_RELEASE, LASTGOOD_ENV, ...
switch = ["./ci/deploy.sh", "--tag", "{version}", "--env", "{env}"]
# Optional: prints the version that runs now. A version set by hand since lastgood set it
# refuses deploy and rollback (exit 4) unless --yes.
# current = ["./ci/current.sh"]
# major_guard = false           # allow lowering the major version without --allow-major
"#;

const GITOPS: &str = r#"runtime = "gitops"              # a repository a controller (Argo CD, Flux, a pipeline) applies
repo = "git@git.example.com:ops/deployments.git"   # URL, or a path relative to this file
branch = "main"
# With version_file, a deploy commits the version into that file. Without it ("branch
# mode") the branch's commits are the releases: VERSION is a commit or tag of `repo`.
version_file = "apps/web/version"
mode = "revert"                 # rollback commits reverts; "reset" moves the branch (--force-with-lease)
# Optional: the pipeline to start once the branch is where the release needs it.
# trigger = ["./ci/trigger-deploy.sh", "{commit}"]
# major_guard = false           # allow lowering the major version without --allow-major
"#;

const COMPOSE: &str = r#"runtime = "compose"             # a Docker Compose project; VERSION is the image tag
compose_file = "docker-compose.yml"   # its images use ${LASTGOOD_VERSION} as their tag
# project = "APP"               # default: the environment's name; put the same name in the
#                               # .env as COMPOSE_PROJECT_NAME, so docker-compose by hand sees it
# services = ["web", "worker"]  # default: all of the project's services
# On a server over ssh, built from each release's commit (docs/containers.md):
# hosts = ["ssh://deploy@app.example.com"]   # default: this machine
# source = "."                  # with hosts: the repository; releases/<id>/ on the host
# build = ["docker-compose", "-f", "docker-compose.yml", "build"]
# config_files = [".env"]       # kept in <deploy_to>/shared/, restored on rollback
# major_guard = false           # allow lowering the major version without --allow-major
"#;

const SWARM: &str = r#"runtime = "swarm"               # a Docker Swarm service; VERSION is the image tag
service = "APP_web"
# major_guard = false           # allow lowering the major version without --allow-major
"#;
