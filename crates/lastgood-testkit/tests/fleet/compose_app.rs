//! The docker-compose app fixture works by hand, without lastgood: the runbook's own
//! commands build each release from a checkout, migrate the database with Alembic inside
//! the app's container (`DATABASE_URL` in the environment, never in argv), serve healthy,
//! or visibly not on the wrong schema or when broken, and leave nothing on the engine.

use std::path::Path;
use std::process::{Command, Stdio};

use lastgood_testkit::compose_app::{ComposeApp, Release, alembic_version, columns, project_leftovers};
use lastgood_testkit::{PgDb, TestEnv};

/// A workspace whose binaries are the workspace's own build (`cargo build --workspace
/// --bins` first, as for every integration test: its config names the sample app).
fn env() -> TestEnv {
    let deps = std::env::current_exe().unwrap();
    let bin = deps.parent().and_then(|d| d.parent()).unwrap().join("lastgood");
    TestEnv::new(bin.to_str().unwrap())
}

const UPGRADE: &[&str] = &["run", "--rm", "--no-deps", "app", "alembic", "upgrade", "head"];

/// `build`, then the runbook's `run --rm --no-deps app alembic upgrade head`, for `release`.
fn build_and_migrate(app: &ComposeApp, dir: &Path, release: Release, url: &str) {
    app.compose_ok(dir, Some(release.tag()), Some(url), &["build"]);
    let out = app.compose_ok(dir, Some(release.tag()), Some(url), UPGRADE);
    assert!(out.contains(&format!("-> {}", release.revision())), "{out}");
}

fn is_compose_v1(app: &ComposeApp) -> bool {
    app.cli() == ["docker-compose"]
}

#[test]
fn compose_app_releases_build_migrate_in_their_container_and_serve_by_the_runbook() {
    let mut env = env();
    let app = ComposeApp::new(&env);
    let project = app.project().to_owned();
    app.commit_all(&mut env);
    let db = PgDb::new("compose_app");
    let url = db.url.as_str();
    let v = |r: Release| Some(r.tag());

    // v1: build, migrate inside the app's container, up, healthy.
    let v1 = app.checkout(&env, "v1");
    let dir = v1.path();
    assert_eq!(std::fs::read_to_string(dir.join("VERSION")).unwrap(), "v1\n");
    assert_eq!(alembic_version(&db), None);
    build_and_migrate(&app, dir, Release::V1, url);
    assert_eq!(alembic_version(&db).as_deref(), Some(Release::V1.revision()));
    assert_eq!(columns(&db, "items"), Release::V1.columns());
    app.compose_ok(dir, v(Release::V1), Some(url), &["up", "-d"]);
    let c = app.wait_health("healthy");
    assert_eq!(c.image, app.image("v1"));
    assert_eq!(c.state, "running");
    assert_eq!(app.get("/health"), Some((200, "ok v1\n".into())));
    assert_eq!(app.get("/version"), Some((200, "v1\n".into())));
    assert_eq!(env.get("/version").as_deref(), Some("v1\n"), "the app listens on the TestEnv's port");

    // `alembic current` in the running container. Beside it, compose v1 refuses `run`:
    // it links the one-off container to the running app, and host networking has no links.
    let current = app.compose_ok(dir, v(Release::V1), Some(url), &["exec", "-T", "app", "alembic", "current"]);
    assert!(current.contains(&format!("{} (head)", Release::V1.revision())), "{current}");
    let beside =
        app.compose(dir, v(Release::V1), Some(url), &["run", "--rm", "--no-deps", "app", "alembic", "current"]);
    if is_compose_v1(&app) {
        let stderr = String::from_utf8_lossy(&beside.stderr);
        assert!(!beside.status.success(), "compose v1 ran a one-off container beside the host-networked app");
        assert!(stderr.contains("host type networking can't be used with links"), "{stderr}");
    }

    // By hand in the checkout, without -p or lastgood's variables: .env names the project.
    let cli = app.cli();
    let ps = Command::new(&cli[0])
        .args(&cli[1..])
        .args(["-f", "docker-compose.prod.yml", "ps"])
        .current_dir(dir)
        .env_remove("LASTGOOD_VERSION")
        .env_remove("DATABASE_URL")
        .env_remove("COMPOSE_PROJECT_NAME")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(ps.contains(&project) && ps.contains("healthy"), "{ps}");

    app.compose_ok(dir, v(Release::V1), Some(url), &["down"]);
    assert_eq!(app.containers(), Vec::new());
    // With the app down, the runbook's `run` works again.
    let current =
        app.compose_ok(dir, v(Release::V1), Some(url), &["run", "--rm", "--no-deps", "app", "alembic", "current"]);
    assert!(current.contains(&format!("{} (head)", Release::V1.revision())), "{current}");

    // v2, in the runbook's order (the app is down): migrate, up, healthy on its column.
    let v2 = app.checkout(&env, "v2");
    let dir = v2.path();
    build_and_migrate(&app, dir, Release::V2, url);
    assert_eq!(alembic_version(&db).as_deref(), Some(Release::V2.revision()));
    assert_eq!(columns(&db, "items"), Release::V2.columns());
    app.compose_ok(dir, v(Release::V2), Some(url), &["up", "-d"]);
    assert_eq!(app.wait_health("healthy").image, app.image("v2"));
    assert_eq!(app.get("/health"), Some((200, "ok v2\n".into())));

    // Its downgrade drops the column: v2 on v1's schema is visibly unhealthy.
    app.compose_ok(dir, v(Release::V2), Some(url), &["down"]);
    let out = app.compose_ok(
        dir,
        v(Release::V2),
        Some(url),
        &["run", "--rm", "--no-deps", "app", "alembic", "downgrade", "-1"],
    );
    assert!(out.contains(&format!("{} -> {}", Release::V2.revision(), Release::V1.revision())), "{out}");
    assert_eq!(alembic_version(&db).as_deref(), Some(Release::V1.revision()));
    assert_eq!(columns(&db, "items"), Release::V1.columns());
    app.compose_ok(dir, v(Release::V2), Some(url), &["up", "-d"]);
    app.wait_health("unhealthy");
    assert_eq!(app.get("/health"), Some((500, "unhealthy v2: schema: no column items.price\n".into())));
    app.compose_ok(dir, v(Release::V2), Some(url), &["down"]);

    // v3 migrates (two revisions up) but is broken: /health answers 500.
    let v3 = app.checkout(&env, "v3");
    let dir = v3.path();
    build_and_migrate(&app, dir, Release::V3, url);
    assert_eq!(alembic_version(&db).as_deref(), Some(Release::V3.revision()));
    assert_eq!(columns(&db, "items"), Release::V3.columns());
    app.compose_ok(dir, v(Release::V3), Some(url), &["up", "-d"]);
    let c = app.wait_health("unhealthy");
    assert_eq!(app.get("/health"), Some((500, "unhealthy v3: not configured: PAYMENTS_URL\n".into())));
    assert_eq!(app.get("/version"), Some((200, "v3\n".into())));

    // One image per release, each its own build; the container runs v3's.
    let images = app.images();
    let refs: Vec<&str> = images.iter().map(|i| i.reference.as_str()).collect();
    assert_eq!(refs, [app.image("v1"), app.image("v2"), app.image("v3")]);
    let ids: std::collections::BTreeSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{images:?}");
    assert_eq!(c.image_id, images[2].id);
    assert!(!format!("{:?}", app.containers()).contains(&db.password()));

    drop(app);
    assert_eq!(project_leftovers(&project), Vec::<String>::new());
}

#[test]
fn a_migrate_service_migrates_beside_the_running_app() {
    let mut env = env();
    let app = ComposeApp::new(&env).with_migrate_service();
    let project = app.project().to_owned();
    app.commit(&mut env, Release::V1);
    app.commit(&mut env, Release::V2);
    let db = PgDb::new("compose_migrate");
    let url = Some(db.url.as_str());

    let v1 = app.checkout(&env, "v1");
    app.compose_ok(v1.path(), Some("v1"), url, &["build"]);
    app.compose_ok(v1.path(), Some("v1"), url, &["run", "--rm", "migrate"]);
    assert_eq!(alembic_version(&db).as_deref(), Some(Release::V1.revision()));
    app.compose_ok(v1.path(), Some("v1"), url, &["up", "-d"]);
    app.wait_health("healthy");
    let services: Vec<String> = app.containers().into_iter().map(|c| c.service).collect();
    assert_eq!(services, ["app"], "up leaves the migrate service (profile tools) alone");

    // v2's migration while v1 serves; v1 stays healthy on the wider schema.
    let v2 = app.checkout(&env, "v2");
    app.compose_ok(v2.path(), Some("v2"), url, &["build"]);
    app.compose_ok(v2.path(), Some("v2"), url, &["run", "--rm", "migrate"]);
    assert_eq!(alembic_version(&db).as_deref(), Some(Release::V2.revision()));
    assert_eq!(app.get("/health"), Some((200, "ok v1\n".into())));
    app.compose_ok(v2.path(), Some("v2"), url, &["up", "-d"]);
    assert_eq!(app.wait_health("healthy").image, app.image("v2"));
    let current = app.compose_ok(v2.path(), Some("v2"), url, &["run", "--rm", "migrate", "alembic", "current"]);
    assert!(current.contains(&format!("{} (head)", Release::V2.revision())), "{current}");

    // Downgraded beside it, v2 goes unhealthy.
    app.compose_ok(v2.path(), Some("v2"), url, &["run", "--rm", "migrate", "alembic", "downgrade", "-1"]);
    assert_eq!(alembic_version(&db).as_deref(), Some(Release::V1.revision()));
    app.wait_health("unhealthy");

    drop(app);
    assert_eq!(project_leftovers(&project), Vec::<String>::new());
}

#[test]
fn a_failing_compose_app_test_leaves_nothing_behind() {
    let mut project = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut env = env();
        let app = ComposeApp::new(&env);
        project = Some(app.project().to_owned());
        app.commit(&mut env, Release::V1);
        let v1 = app.checkout(&env, "v1");
        app.compose_ok(v1.path(), Some("v1"), None, &["up", "-d", "--build"]);
        assert_eq!(app.app_container().map(|c| c.image), Some(app.image("v1")));
        assert!(!project_leftovers(app.project()).is_empty());
        panic!("the test fails here");
    }));
    assert!(result.is_err());
    let project = project.expect("the app was made");
    assert_eq!(project_leftovers(&project), Vec::<String>::new());
}
