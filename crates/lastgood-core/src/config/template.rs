//! The commented `lastgood.toml` that `lastgood init` writes.
//!
//! It is documentation a user edits, not a serialisation of [`super::Config`]: every
//! key it sets or shows commented out must parse (a test in `mod.rs` parses it), and
//! anything optional stays a comment so the defaults remain visible.

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
