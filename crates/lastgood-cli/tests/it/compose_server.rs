//! The docker-compose server runbook, with lastgood instead: a compose app built from
//! source on an ssh host (a real sshd on a loopback address, the machine's Docker
//! engine), Alembic run inside the release's own container, `.env` shipped as a config
//! file, health checks on the app. Each test has its own compose project, database and
//! host.

use lastgood_testkit::compose_app::{ComposeApp, Release, alembic_version, columns};
use lastgood_testkit::fleet::Fleet;
use lastgood_testkit::{PgDb, TestEnv};

use crate::BIN;

struct Server {
    env: TestEnv,
    fleet: Fleet,
    app: ComposeApp,
    db: PgDb,
}

/// v1, v2 and v3 of the app committed; `.env` (the project and `DATABASE_URL`) on the
/// controller; the config of the runbook's server with `extra` lines in the
/// environment's section.
fn server(name: &str, extra: &str) -> Server {
    server_with(name, extra, |_| {})
}

/// [`server`], each release's compose file changed by `edit` first.
fn server_with(name: &str, extra: &str, edit: impl Fn(&mut String)) -> Server {
    let fleet = Fleet::start(1);
    let mut env = TestEnv::new(BIN);
    let app = ComposeApp::new(&env);
    for release in Release::ALL {
        let mut files = app.files(release);
        for (path, text) in files.iter_mut() {
            if path == lastgood_testkit::compose_app::COMPOSE_FILE {
                edit(text);
            }
        }
        let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        env.commit_version(release.tag(), &refs);
    }
    let db = PgDb::new(name);
    env.write(".env", &format!("COMPOSE_PROJECT_NAME={}\nDATABASE_URL={}\n", app.project(), db.url));
    let mut build: Vec<String> = app.cli().to_vec();
    build.extend(["-f", "docker-compose.prod.yml", "build", "app"].map(String::from));
    env.write(
        "lastgood.toml",
        &format!(
            r#"[environments.production]
runtime = "compose"
hosts = ["{host}"]
ssh_config = "{cfg}"
source = "repo"
deploy_to = "{deploy_to}"
compose_file = "docker-compose.prod.yml"
project = "{project}"
build = {build:?}
config_files = [".env"]
{extra}

[environments.production.database]
url = "{url}"
adapter = "alembic"
run_in = "app"

[[environments.production.checks]]
http = "http://127.0.0.1:{port}/health"
expect_body = "ok {{version}}"
interval = "200ms"
timeout = "2s"
retries = 25
"#,
            host = fleet.url(0),
            cfg = fleet.ssh_config().display(),
            deploy_to = fleet.deploy_to().display(),
            project = app.project(),
            url = db.url,
            port = env.port,
        ),
    );
    Server { env, fleet, app, db }
}

impl Server {
    fn current(&self) -> Option<String> {
        self.fleet.read_link(0, "current").map(|p| p.display().to_string())
    }

    fn serves(&self, version: &str) {
        assert_eq!(self.app.get("/version"), Some((200, format!("{version}\n"))), "{}", self.app.diagnose());
    }

    /// `deploy production VERSION`, which must succeed. Once, and only for it, a build
    /// that the Docker engine itself broke off ("Error processing tar file(signal:
    /// killed)": its untar helper killed while the machine runs several builds at once)
    /// is deployed again; lastgood recorded that release as failed, as it should.
    fn deploy(&self, version: &str) {
        let args = ["deploy", "production", version, "--reason", "t"];
        let first = self.env.run(&args);
        if first.code != Some(0) && first.stdout.contains("Error processing tar file") {
            self.env.run(&args).expect(0);
        } else {
            first.expect(0);
        }
    }

    fn app_image(&self) -> String {
        self.app.app_container().expect("the app has a container").image_id
    }
}

#[test]
fn the_compose_runbook_over_ssh_deploys_rolls_back_automatically_and_by_hand_without_rebuilding() {
    let s = server("compose_runbook", "");
    let env = &s.env;

    // v1 and v2: exported, built on the host, migrated in their own container, up.
    let d = env.run(&["deploy", "production", "v1", "--reason", "first"]);
    if d.code != Some(0) {
        let r = env.run(&["report", "1"]);
        panic!("{}\n{}\n{}", r.stdout, r.stderr, s.app.diagnose());
    }
    s.serves("v1");
    assert_eq!(s.current().as_deref(), Some("releases/1"));
    assert_eq!(alembic_version(&s.db).as_deref(), Some(Release::V1.revision()));
    let v1_image = s.app_image();
    let dotenv = std::fs::read_to_string(s.fleet.file(0, "shared/.env")).unwrap();
    assert!(dotenv.contains("DATABASE_URL="), "the .env is written on the host: {dotenv}");
    let v2 = env.run(&["deploy", "production", "v2", "--reason", "prices"]);
    v2.expect(0);
    s.serves("v2");
    // While v2's image was at hand, the deploy asked it for the way back (its history
    // and the downgrade's offline SQL, judged) and the host kept both beside release 2:
    // a rollback plans from them without starting a container.
    assert!(v2.stderr.contains("the way back previewed: 1 revision(s) down, destructive"), "{}", v2.stderr);
    let kept = std::fs::read_dir(s.fleet.file(0, ".lastgood/tool-cache/2")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(kept, 3, "history, the upgrade's and the downgrade's SQL are kept on the host");
    assert_eq!(columns(&s.db, "items"), Release::V2.columns());
    let v2_image = s.app_image();
    assert_ne!(v1_image, v2_image);

    // v3 migrates (adds sku) and never gets healthy: code back to v2 at once; sku's
    // downgrade would drop a column, so the schema stays ahead, said so.
    let failed = env.run(&["deploy", "production", "v3", "--reason", "sku"]);
    failed.expect(1);
    s.serves("v2");
    assert_eq!(s.app_image(), v2_image, "v2's recorded image, not a rebuild");
    assert_eq!(alembic_version(&s.db).as_deref(), Some(Release::V3.revision()));
    let status = env.status();
    assert_eq!(status["current"]["id"], 2, "{status}");
    assert_eq!(status["schema_ahead"], 1, "{status}");
    assert_eq!(env.state_of(3), "failed");

    // The runbook's full rollback to v1: stop the app (not the database), downgrade
    // from the newest image (v3's: only it knows sku's revision), switch, verify.
    let plan = env.run(&["rollback", "production", "--to", "1", "--dry-run"]).expect(0).stdout.clone();
    for step in ["stop", "backup", "migrate-down", "config", "switch", "verify"] {
        assert!(plan.contains(step), "{step}: {plan}");
    }
    let out = env.run(&[
        "rollback",
        "production",
        "--to",
        "1",
        "--allow-data-loss",
        "--reason",
        "prices are wrong",
        "--format",
        "json",
    ]);
    out.expect(0);
    let report = out.json();
    let names: Vec<&str> = report["steps"].as_array().unwrap().iter().map(|st| st["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["stop", "backup", "migrate-down", "config", "switch", "verify"], "{report}");
    let down = &report["steps"][2]["detail"];
    assert!(down.as_str().unwrap().contains("reverted 2 migration(s)"), "{down}");
    assert_eq!(alembic_version(&s.db).as_deref(), Some(Release::V1.revision()));
    assert_eq!(columns(&s.db, "items"), Release::V1.columns());
    s.serves("v1");
    assert_eq!(s.app_image(), v1_image, "the rollback brought up v1's recorded image: no rebuild");
    assert_eq!(s.current().as_deref(), Some("releases/1"));
    let status = env.status();
    assert_eq!(status["schema_ahead"], 0, "{status}");
    // The backup taken before the destructive downgrade, from the host (the app
    // stopped: a template copy on the server), is there.
    let backups = env.run(&["db", "backups", "production", "--format", "json"]).expect(0).json();
    assert_eq!(backups[0]["missing"], false, "{backups}");

    // The report's checklist: stopped before the change, reverted, verified.
    let md = env.run(&["report", &report["operation"].to_string()]).expect(0).stdout.clone();
    assert!(md.contains("- [x] Services stopped"), "{md}");
    assert!(md.contains("- [x] Verified"), "{md}");
}

#[test]
fn restart_config_restore_and_the_database_tools_work_on_the_server() {
    let s = server("compose_restart", "");
    let env = &s.env;
    env.run(&["deploy", "production", "v1", "--reason", "first"]).expect(0);
    env.run(&["deploy", "production", "v2", "--reason", "prices"]).expect(0);

    // `alembic current` and the history, through lastgood, in the serving release's container.
    let status = env.run(&["db", "status", "production"]).expect(0).stdout.clone();
    assert!(status.contains(Release::V2.revision()), "{status}");
    let history = env.run(&["db", "history", "production"]).expect(0).stdout.clone();
    assert!(history.contains(Release::V1.revision()) && history.contains(Release::V2.revision()), "{history}");
    // `downgrade -1 --sql`: the SQL, changing nothing.
    let sql = env.run(&["db", "down", "production", "--steps", "1", "--sql"]).expect(0).stdout.clone();
    assert!(sql.to_lowercase().contains("drop column price"), "{sql}");
    assert_eq!(alembic_version(&s.db).as_deref(), Some(Release::V2.revision()));

    // Restart one service: a new container start, same image, checked.
    let before = s.app.app_container().unwrap();
    let out = env.run(&["restart", "production", "--service", "app", "--reason", "stuck workers", "--format", "json"]);
    out.expect(0);
    assert_eq!(out.json()["kind"], "restart");
    s.serves("v2");
    assert_eq!(s.app.app_container().unwrap().image_id, before.image_id);

    // A hand edit of .env on the server breaks the app; diagnose sees it; the config
    // rollback of the current release restores it and recreates the container.
    let shared = s.fleet.file(0, "shared/.env");
    let good = std::fs::read_to_string(&shared).unwrap();
    let broken = good.replace("DATABASE_URL=", "DATABASE_URL=postgres://nobody@127.0.0.1:1/none?x=");
    s.fleet.ssh(0, &format!("printf '%s' '{broken}' > {}", shared.display()));
    let diagnosis = env.run(&["diagnose", "production"]).expect(0).stdout.clone();
    assert!(diagnosis.contains(".env"), "{diagnosis}");
    let last = diagnosis.trim_end().lines().last().unwrap().to_owned();
    assert!(last.contains("--scope config"), "{diagnosis}");
    env.run(&["rollback", "production", "--to", "2", "--scope", "config", "--reason", "bad edit"]).expect(0);
    assert_eq!(std::fs::read_to_string(&shared).unwrap(), good);
    s.serves("v2");
    assert_eq!(env.state_of(2), "good", "a config rollback marks nothing bad");
}

#[test]
fn a_rollback_killed_after_its_downgrade_is_finished_by_resume() {
    let s = server("compose_crash", "");
    let env = &s.env;
    env.run(&["deploy", "production", "v1", "--reason", "first"]).expect(0);
    env.run(&["deploy", "production", "v2", "--reason", "prices"]).expect(0);
    let args = ["rollback", "production", "--allow-data-loss", "--reason", "t"];
    let out = env.run_crashing("apply:switch", &args);
    assert_eq!(out.signal, Some(9), "{out:?}");
    assert_eq!(alembic_version(&s.db).as_deref(), Some(Release::V1.revision()), "the downgrade ran");
    let status = env.status();
    assert_eq!(status["interrupted"]["holder_alive"], false, "{status}");
    env.run(&["resume", "production"]).expect(0);
    s.serves("v1");
    assert_eq!(s.current().as_deref(), Some("releases/1"));
    let status = env.status();
    assert_eq!(status["current"]["id"], 1, "{status}");
    assert_eq!(status["lock"], serde_json::Value::Null, "{status}");
}

#[test]
fn a_missing_image_is_refused_at_preflight() {
    let s = server("compose_preflight", "");
    let env = &s.env;
    // The .env names another compose project than lastgood drives: the switch says so,
    // and how to make them agree (docker-compose by hand would see an empty project).
    let dotenv = std::fs::read_to_string(env.path().join(".env")).unwrap();
    let project_line = format!("COMPOSE_PROJECT_NAME={}", s.app.project());
    env.write(".env", &dotenv.replace(&project_line, "COMPOSE_PROJECT_NAME=shop"));
    let v1 = env.run(&["deploy", "production", "v1", "--reason", "first"]);
    v1.expect(0);
    let note =
        format!("NOTE: .env sets COMPOSE_PROJECT_NAME=shop, but lastgood drives compose project `{}`", s.app.project());
    assert!(v1.stderr.contains(&note), "{}", v1.stderr);
    env.write(".env", &dotenv);
    let v2 = env.run(&["deploy", "production", "v2", "--reason", "prices"]);
    v2.expect(0);
    assert!(!v2.stderr.contains("NOTE: .env sets"), "the names agree again: {}", v2.stderr);

    // v1's image removed by hand (and its keep tag): a rollback to it is refused on the
    // host, naming it, and nothing changes.
    let v1: Vec<_> = s
        .app
        .images()
        .into_iter()
        .filter(|i| i.reference.ends_with(":v1") || i.reference.contains("lastgood-keep"))
        .collect();
    let v1_id = s.app.images().into_iter().find(|i| i.reference.ends_with(":v1")).unwrap().id;
    for image in v1.iter().filter(|i| i.id == v1_id) {
        let _ = std::process::Command::new("docker").args(["rmi", "--force", &image.reference]).output();
    }
    let refused = env.run(&["rollback", "production", "--reason", "t"]);
    refused.expect(4);
    assert!(refused.stderr.contains(&s.fleet.hosts()[0].addr), "{}", refused.stderr);
    s.serves("v2");
    assert_eq!(s.current().as_deref(), Some("releases/2"));
}

#[test]
fn an_emergency_restore_stops_the_app_restores_a_plain_dump_on_the_server_and_starts_it() {
    let s = server("compose_restore", "");
    let env = &s.env;
    env.run(&["deploy", "production", "v1", "--reason", "first"]).expect(0);
    s.db.sql("INSERT INTO items (name) VALUES ('tea'), ('cake')");
    // The team's own plain dump, on the server.
    let dump = s.fleet.file(0, "backup.sql");
    let out = std::process::Command::new("pg_dump").arg(&s.db.url).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&dump, &out.stdout).unwrap();
    s.db.sql("DELETE FROM items");

    let out = env.run(&[
        "db",
        "restore",
        "production",
        "--from",
        "backup.sql",
        "--reason",
        "rows deleted",
        "--yes",
        "--format",
        "json",
    ]);
    out.expect(0);
    let r = out.json();
    let names: Vec<&str> = r["steps"].as_array().unwrap().iter().map(|st| st["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["stop", "restore-db", "restart", "verify", "drop-aside"], "{r}");
    assert_eq!(s.db.sql("SELECT string_agg(name, ',' ORDER BY name) FROM items"), "cake,tea");
    s.serves("v1");
    // The runbook's checklist: the app stopped before the restore, the data put back.
    let md = env.run(&["report", &r["operation"].to_string()]).expect(0).stdout.clone();
    assert!(md.contains("- [x] Services stopped"), "{md}");
    assert!(md.contains("- [x] Reverted: step 2 `restore-db`"), "{md}");
}

#[test]
fn the_database_service_keeps_running_while_the_app_stops_for_a_downgrade() {
    // The stack's own `db` service (a stand-in: the real database is the test server's).
    let db_service =
        "  db:\n    image: lastgood-test/busybox:1\n    network_mode: host\n    command: [\"sleep\", \"100000\"]\n";
    let s = server_with("compose_db_service", "", |compose| {
        *compose = compose.replacen("services:\n", &format!("services:\n{db_service}"), 1);
    });
    let env = &s.env;
    let toml = std::fs::read_to_string(env.path().join("lastgood.toml")).unwrap();
    env.write("lastgood.toml", &toml.replace("run_in = \"app\"\n", "run_in = \"app\"\nservice = \"db\"\n"));
    s.deploy("v1");
    s.deploy("v2");
    let db_before = s.app.containers().into_iter().find(|c| c.service == "db");
    let db_before = db_before.unwrap_or_else(|| panic!("the db service runs: {:?}", s.app.containers()));
    assert_eq!(db_before.state, "running");

    let since = unix_now();
    let out = env.run(&["rollback", "production", "--allow-data-loss", "--reason", "t", "--format", "json"]);
    out.expect(0);
    // Two containers: the downgrade and v1's app. Where the schema was came from the
    // version table, read by lastgood's agent and confirmed by the offline SQL v2's
    // deploy kept on the host: no `alembic current` container, no `--sql` one.
    let created = created_in(s.app.project(), since, unix_now());
    let app = created.iter().filter(|n| !n.contains("_run_")).count();
    assert_eq!((created.len(), app), (2, 1), "containers created by the rollback: {created:?}");
    let report = out.json();
    let stop = report["steps"].as_array().unwrap().iter().find(|st| st["name"] == "stop").unwrap().clone();
    assert!(stop["detail"].as_str().unwrap().contains("db keeps running"), "{stop}");
    let db_after = s.app.containers().into_iter().find(|c| c.service == "db").unwrap();
    assert_eq!((db_after.id, db_after.state), (db_before.id, "running".to_owned()), "the database was never stopped");
    s.serves("v1");
    assert_eq!(alembic_version(&s.db).as_deref(), Some(Release::V1.revision()));
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The containers of compose project `project` the engine created between two times.
fn created_in(project: &str, since: f64, until: f64) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["events", "--since", &format!("{since:.3}"), "--until", &format!("{until:.3}")])
        .args(["--filter", "type=container", "--filter", "event=create"])
        .args(["--filter", &format!("label=com.docker.compose.project={project}")])
        .args(["--format", "{{.Actor.Attributes.name}}"])
        .output()
        .expect("docker events");
    assert!(out.status.success(), "docker events: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}
