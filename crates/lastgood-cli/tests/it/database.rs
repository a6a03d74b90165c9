//! Deploys and rollbacks that carry the schema, and `lastgood db`, against SQLite and
//! a real PostgreSQL server.

use serde_json::json;

use crate::alembic::{alembic_revision, commit_alembic_versions};
use crate::{BIN, deploy_ok};
use lastgood_testkit::{Config, Database, PgDb, TestEnv, sqlite};

const USERS: (&str, &str, &str) = (
    "2024-01-01-000000_users",
    "CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL);\nINSERT INTO users VALUES (1, 'ada');\n",
    "DROP TABLE users;\n",
);
const INDEX: (&str, &str, &str) =
    ("2024-02-01-000000_users_name", "CREATE INDEX users_name ON users (name);\n", "DROP INDEX users_name;\n");
const AUDIT: (&str, &str, &str) = (
    "2024-03-01-000000_audit",
    "CREATE TABLE audit_log (id integer PRIMARY KEY, what text);\n",
    "DROP TABLE audit_log;\n",
);

/// A repository whose v1, v2, v3 each add one migration (diesel layout), and a config
/// whose database is `url`.
fn env_with_migrations(url: &str) -> TestEnv {
    let mut env = TestEnv::new(BIN);
    for (tag, (name, up, down)) in [("v1", USERS), ("v2", INDEX), ("v3", AUDIT)] {
        let up_path = format!("migrations/{name}/up.sql");
        let down_path = format!("migrations/{name}/down.sql");
        env.commit_version(tag, &[(&up_path, up), (&down_path, down)]);
    }
    env.configure(&Config::new().database(Database::url(url).migrations("migrations")));
    env
}

fn sqlite_env() -> TestEnv {
    env_with_migrations("sqlite://app.db")
}

fn tables(env: &TestEnv) -> String {
    sqlite(
        &env.path().join("app.db"),
        "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name)",
    )
}

fn step_names(report: &serde_json::Value) -> Vec<String> {
    report["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn releases_record_their_schema_and_a_rollback_reverts_it_before_the_code_moves() {
    let env = sqlite_env();
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v2");
    let h = env.history();
    assert_eq!(h[0]["schema_revision"], "2024-02-01-000000");
    assert_eq!(h[1]["schema_revision"], "2024-01-01-000000");
    assert!(tables(&env).contains("users_name"));

    let out = env.run(&["rollback", "production", "--reason", "slow queries", "--format", "json"]);
    out.expect(0);
    let r = out.json();
    assert_eq!(step_names(&r), ["stop", "migrate-down", "switch", "config", "restart", "verify"]);
    assert!(!tables(&env).contains("users_name"), "{}", tables(&env));
    assert!(tables(&env).contains("users"));
    assert_eq!(env.serving().as_deref(), Some("v1"));
    assert_eq!(env.state_of(2), "bad");
    let st = env.run(&["db", "status", "production", "--format", "json"]).expect(0).json();
    assert_eq!(st["current"]["version"], "2024-01-01-000000");
    assert_eq!(st["applied"], 1);
    assert_eq!(st["pending"], 2, "the source tree has all three migrations: {st}");
}

#[test]
fn a_rollback_to_a_newer_release_applies_its_migrations_instead_of_reverting() {
    let env = sqlite_env();
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v2");
    env.test().args(["rollback", "production", "--reason", "t"]).run();
    assert!(!tables(&env).contains("users_name"));
    let r = env
        .test()
        .args(["rollback", "production", "--to", "2", "--yes", "--reason", "forward", "--format", "json"])
        .run()
        .json();
    assert_eq!(step_names(&r), ["migrate-up", "switch", "config", "restart", "verify"], "{r}");
    assert!(tables(&env).contains("users_name"), "{}", tables(&env));
    let st = env.test().args(["db", "status", "production", "--format", "json"]).run().json();
    assert_eq!(st["current"]["version"], "2024-02-01-000000");
}

#[test]
fn a_destructive_down_needs_consent_and_runs_after_a_backup_in_the_same_operation() {
    let env = sqlite_env();
    for v in ["v1", "v2", "v3"] {
        deploy_ok(&env, v);
    }
    let out = env.run(&["rollback", "production", "--to", "2", "--yes", "--reason", "t"]);
    out.expect(4);
    assert!(
        out.stderr.contains("2024-03-01-000000_audit") && out.stderr.contains("--allow-data-loss"),
        "{}",
        out.stderr
    );
    assert!(tables(&env).contains("audit_log"), "nothing changed");
    assert_eq!(env.serving().as_deref(), Some("v3"));

    let sql = env.run(&["rollback", "production", "--to", "2", "--sql", "--allow-data-loss"]);
    sql.expect(0);
    assert!(
        sql.stdout.contains("DROP TABLE audit_log;") && sql.stdout.contains("DELETE FROM lastgood_migrations"),
        "{}",
        sql.stdout
    );

    let out = env.run(&[
        "rollback",
        "production",
        "--to",
        "2",
        "--yes",
        "--allow-data-loss",
        "--reason",
        "t",
        "--format",
        "json",
    ]);
    out.expect(0);
    let r = out.json();
    assert_eq!(step_names(&r), ["stop", "backup", "migrate-down", "switch", "config", "restart", "verify"]);
    assert!(!tables(&env).contains("audit_log"));
    let backups = env.run(&["db", "backups", "production", "--format", "json"]).expect(0).json();
    assert_eq!(backups[0]["operation"], r["operation"]);
    assert!(std::path::Path::new(backups[0]["location"].as_str().unwrap()).exists());
    assert_eq!(backups[0]["missing"], false);
}

#[test]
fn a_failed_deploy_reverts_its_migrations_when_they_are_safe_to_revert() {
    let env = sqlite_env();
    deploy_ok(&env, "v1");
    env.write("app.env", "HEALTH=fail\n");
    let out = env.run(&["deploy", "production", "v2", "--format", "json"]);
    out.expect(1);
    let r = out.json();
    assert_eq!(r["outcome"], "rolled_back");
    assert!(step_names(&r).contains(&"migrate-down".to_owned()));
    assert!(!tables(&env).contains("users_name"));
    assert_eq!(env.serving().as_deref(), Some("v1"));
}

#[test]
fn a_failed_deploy_whose_downs_are_destructive_returns_code_and_config_and_leaves_the_schema_ahead() {
    let env = sqlite_env();
    deploy_ok(&env, "v1");
    env.write("app.env", "HEALTH=fail\n");
    let out = env.run(&["deploy", "production", "v3", "--format", "json"]);
    out.expect(1);
    // Never a known-broken release left serving: the code and config went back...
    assert_eq!(out.json()["outcome"], "rolled_back", "{}", out.stdout);
    assert!(out.stderr.contains("with code and config only"), "{}", out.stderr);
    assert!(out.stderr.contains("--scope db --allow-data-loss"), "{}", out.stderr);
    assert_eq!(env.status()["current"]["id"], 1);
    assert_eq!(env.serving().as_deref(), Some("v1"));
    assert_eq!(env.state_of(2), "failed");
    // ...and no data was destroyed by itself: v3's migrations stay, and every view says so.
    assert!(tables(&env).contains("audit_log"), "the data is still there: {}", tables(&env));
    assert_eq!(env.status()["schema_ahead"], 2);
    let text = env.run(&["status", "production"]);
    text.expect(0);
    assert!(text.stdout.contains("schema:    ahead of code by 2 migration(s)"), "{}", text.stdout);
    let h = env.history();
    assert_eq!(
        (h[1]["id"].as_u64(), h[1]["current"].as_bool(), h[1]["schema_ahead"].as_u64()),
        (Some(1), Some(true), Some(2))
    );
    let op = out.json()["operation"].as_u64().unwrap().to_string();
    let report = env.run(&["report", &op, "--format", "json"]).expect(0).json();
    assert_eq!(report["schema_ahead"], 2);
    let md = env.run(&["report", &op]);
    md.expect(0);
    assert!(md.stdout.contains("ahead of code by 2 migration(s)"), "{}", md.stdout);

    // Reverting what is ahead needs consent; the preview shows it and refuses nothing.
    let refused = env.run(&["rollback", "production", "--scope", "db", "--reason", "revert v3's schema"]);
    refused.expect(4);
    assert!(refused.stderr.contains("--allow-data-loss"), "{}", refused.stderr);
    let preview = env.run(&["rollback", "production", "--scope", "db", "--dry-run", "--sql"]);
    preview.expect(0);
    assert!(preview.stdout.contains("DROP TABLE audit_log"), "{}", preview.stdout);
    assert!(preview.stdout.contains("refused without --allow-data-loss"), "{}", preview.stdout);
    assert!(tables(&env).contains("audit_log"), "a preview changed nothing");
    let db_preview = env.run(&["db", "down", "production", "--steps", "1", "--sql"]);
    db_preview.expect(0);
    assert!(db_preview.stdout.contains("DROP TABLE audit_log"), "{}", db_preview.stdout);
    assert!(
        db_preview.stdout.contains("-- a real run would be refused without --allow-data-loss"),
        "{}",
        db_preview.stdout
    );
    let done = env.run(&[
        "rollback",
        "production",
        "--scope",
        "db",
        "--allow-data-loss",
        "--reason",
        "revert v3's schema",
        "--format",
        "json",
    ]);
    done.expect(0);
    assert_eq!(step_names(&done.json()), ["stop", "backup", "migrate-down", "restart", "verify"]);
    let t = tables(&env);
    assert!(!t.contains("audit_log") && !t.contains("users_name") && t.contains("users"), "{t}");
    assert_eq!(env.status()["schema_ahead"], 0);
    assert_eq!(env.status()["current"]["id"], 1);
    assert_eq!(env.state_of(1), "good");
}

#[test]
fn a_deploy_killed_inside_a_migration_is_finished_by_resume() {
    let env = sqlite_env();
    deploy_ok(&env, "v1");
    // Statement 2 of v2's up: after BEGIN and the bookkeeping insert, before CREATE INDEX.
    let out = env.run_crashing("migrate:2024-02-01-000000:2", &["deploy", "production", "v2"]);
    assert_eq!(out.signal, Some(9), "{out:?}");
    let st = env.run(&["db", "status", "production", "--format", "json"]).expect(0).json();
    assert_eq!(st["current"]["version"], "2024-01-01-000000", "the killed migration left nothing behind");
    env.run(&["resume", "production"]).expect(0);
    assert!(tables(&env).contains("users_name"));
    assert_eq!(env.serving().as_deref(), Some("v2"));
    assert_eq!(env.history()[0]["schema_revision"], "2024-02-01-000000");
}

#[test]
fn db_commands_preview_exact_sql_and_use_stored_downs_once_the_files_are_gone() {
    let env = sqlite_env();
    let out = env.run(&["db", "up", "production", "--to", "2024-02-01-000000", "--sql"]);
    out.expect(0);
    assert!(out.stdout.contains("BEGIN IMMEDIATE;\nINSERT INTO lastgood_migrations"), "{}", out.stdout);
    assert!(out.stdout.contains("CREATE INDEX users_name ON users (name);"));
    assert!(!out.stdout.contains("audit_log"));
    assert!(!env.path().join("app.db").exists() || !tables(&env).contains("users"), "--sql ran nothing");

    env.run(&["db", "up", "production"]).expect(0);
    let st = env.run(&["db", "status", "production", "--format", "json"]).expect(0).json();
    for key in ["current", "applied", "pending", "migrations"] {
        assert!(st.get(key).is_some(), "db status lacks {key}");
    }
    assert_eq!((st["applied"].clone(), st["pending"].clone()), (json!(3), json!(0)));

    // The working tree loses the migration files; the stored down SQL still works.
    std::fs::remove_dir_all(env.repo().join("migrations/2024-02-01-000000_users_name")).unwrap();
    std::fs::remove_dir_all(env.repo().join("migrations/2024-03-01-000000_audit")).unwrap();
    let out = env.run(&["db", "down", "production", "--steps", "2"]);
    out.expect(4);
    assert!(out.stderr.contains("--allow-data-loss"), "{}", out.stderr);
    let out = env.run(&["db", "down", "production", "--steps", "2", "--allow-data-loss"]);
    out.expect(0);
    assert!(out.stdout.contains("reverted 2") && out.stdout.contains("after backup"), "{}", out.stdout);
    assert_eq!(tables(&env), "lastgood_migrations,users");
    let h = env.run(&["db", "history", "production", "--format", "json"]).expect(0).json();
    assert_eq!(h["migrations"].as_array().unwrap().len(), 1);

    let lint = env.run(&["db", "lint", "production"]);
    lint.expect(0);
    assert!(
        lint.stdout.contains("2024-01-01-000000_users") && lint.stdout.contains("down: destructive"),
        "{}",
        lint.stdout
    );
    env.run(&["db", "down", "production", "--to", "nope"]).expect(2);
}

#[test]
fn postgres_deploys_roll_back_and_restore_without_ever_showing_the_password() {
    let db = PgDb::new("deploy");
    let env = env_with_migrations(&db.url);
    let mut outputs = String::new();
    for v in ["v1", "v2", "v3"] {
        let out = env.run(&["-v", "deploy", "production", v]);
        out.expect(0);
        outputs += &out.stdout;
        outputs += &out.stderr;
    }
    assert_eq!(db.sql("SELECT count(*) FROM lastgood.migrations"), "3");
    let out = env.run(&["rollback", "production", "--to", "1", "--yes", "--allow-data-loss", "--reason", "t"]);
    out.expect(0);
    outputs += &out.stdout;
    outputs += &out.stderr;
    assert_eq!(db.sql("SELECT string_agg(version, ',') FROM lastgood.migrations"), "2024-01-01-000000");
    assert_eq!(db.sql("SELECT to_regclass('audit_log') IS NULL"), "t");

    // The backup taken by the rollback brings the v3 schema back.
    let listed = env.run(&["db", "backups", "production"]);
    listed.expect(0);
    outputs += &listed.stdout;
    // The newest backup, under the lock, with the app stopped and started again.
    let restored = env.run(&["db", "restore", "production", "--yes", "--reason", "bring v3 back"]);
    restored.expect(0);
    outputs += &restored.stdout;
    outputs += &restored.stderr;
    assert_eq!(db.sql("SELECT to_regclass('audit_log') IS NOT NULL"), "t");
    assert_eq!(db.sql("SELECT count(*) FROM lastgood.migrations"), "3");

    for args in [&["status", "production"][..], &["db", "status", "production"], &["history", "production"]] {
        let out = env.run(args);
        outputs += &out.stdout;
        outputs += &out.stderr;
    }
    let password = db.password();
    assert!(!password.is_empty());
    assert!(!outputs.contains(&password), "the password appeared in output");
    let ledger = std::fs::read(env.path().join(".lastgood/ledger.db")).unwrap();
    assert!(!String::from_utf8_lossy(&ledger).contains(&format!(":{password}@")), "the password is in the ledger");
}

#[test]
fn an_unreachable_database_refuses_the_deploy_before_anything_changes() {
    let env = env_with_migrations("postgres://nobody:pw@127.0.0.1:1/nothing");
    let out = env.run(&["deploy", "production", "v1"]);
    out.expect(4);
    assert!(out.stderr.contains("cannot connect") && !out.stderr.contains(":pw@"), "{}", out.stderr);
    assert!(!env.deploy_to().join("releases/1").exists());
}

/// The real Alembic, through the adapter: deploys record Alembic revisions, a failed
/// deploy is rolled back with `alembic downgrade` run from the newer release, and an
/// explicit rollback goes further back.
#[test]
fn the_alembic_adapter_drives_the_real_alembic() {
    let db = PgDb::new("alembic");
    let mut env = TestEnv::new(BIN);
    // SQLAlchemy names the driver in the scheme; lastgood passes the URL on as written.
    let url = db.url.replacen("postgres://", "postgresql+psycopg2://", 1);
    let files = [
        (
            "v1",
            "0001_users.py",
            alembic_revision(
                "0001",
                None,
                None,
                "CREATE TABLE users (id integer PRIMARY KEY, name text)",
                "DROP TABLE users",
            ),
        ),
        (
            "v2",
            "0002_name.py",
            alembic_revision(
                "0002",
                Some("0001"),
                None,
                "CREATE INDEX users_name ON users (name)",
                "DROP INDEX users_name",
            ),
        ),
        (
            "v3",
            "0003_id_name.py",
            alembic_revision(
                "0003",
                Some("0002"),
                None,
                "CREATE INDEX users_id_name ON users (id, name)",
                "DROP INDEX users_id_name",
            ),
        ),
    ];
    commit_alembic_versions(&mut env, &files);
    env.configure(&Config::new().database(Database::url(&url).adapter("alembic")));
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v2");
    assert_eq!(db.sql("SELECT version_num FROM alembic_version"), "0002");
    assert_eq!(env.history()[0]["schema_revision"], "0002");

    env.write("app.env", "HEALTH=fail\n");
    let out = env.run(&["deploy", "production", "v3", "--format", "json"]);
    out.expect(1);
    assert_eq!(out.json()["outcome"], "rolled_back", "{}", out.stderr);
    assert_eq!(db.sql("SELECT version_num FROM alembic_version"), "0002");
    assert_eq!(db.sql("SELECT to_regclass('users_id_name') IS NULL"), "t");

    env.write("app.env", "HEALTH=ok\n");
    let out = env.run(&["rollback", "production", "--to", "1", "--sql"]);
    out.expect(0);
    assert!(out.stdout.contains("DROP INDEX users_name"), "alembic's offline SQL is the preview: {}", out.stdout);
    env.run(&["rollback", "production", "--to", "1", "--reason", "t"]).expect(0);
    assert_eq!(db.sql("SELECT version_num FROM alembic_version"), "0001");
    let st = env.run(&["db", "status", "production", "--format", "json"]).expect(0).json();
    assert_eq!(st["current"]["version"], "0001", "db status reports Alembic's own revision");
    // `db down` drives Alembic too, through the same data-safety gate.
    let out = env.run(&["db", "down", "production", "--steps", "1"]);
    out.expect(4);
    assert!(out.stderr.contains("0001") && out.stderr.contains("--allow-data-loss"), "{}", out.stderr);
    assert_eq!(db.sql("SELECT version_num FROM alembic_version"), "0001");
    assert_eq!(env.serving().as_deref(), Some("v1"));
}

fn rehearse_names_every_broken_down(url: &str, check_real: &dyn Fn(&TestEnv) -> String) {
    let env = env_with_migrations(url);
    for v in ["v1", "v2", "v3"] {
        deploy_ok(&env, v);
    }
    // The last good release is #2: the default rehearsal reverts v3's migration.
    let out = env.run(&["db", "rehearse", "production", "--format", "json"]);
    out.expect(0);
    let r = out.json();
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["reverted"], json!(["2024-03-01-000000_audit"]));

    // Break two down scripts in the working tree: one fails, one forgets its index.
    env.write("repo/migrations/2024-03-01-000000_audit/down.sql", "DROP TABLE audit_logg;\n");
    env.write("repo/migrations/2024-02-01-000000_users_name/down.sql", "SELECT 1;\n");
    let before = check_real(&env);
    let out = env.run(&["db", "rehearse", "production", "--to", "2024-01-01-000000"]);
    out.expect(1);
    assert!(out.stdout.contains("BROKEN"), "{}", out.stdout);
    assert!(
        out.stdout.contains("FAILED down of 2024-03-01-000000_audit") && out.stdout.contains("audit_logg"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("2024-03-01-000000_audit/down.sql:1"), "{}", out.stdout);
    assert!(out.stdout.contains("SEMANTIC difference, index"), "the forgotten index: {}", out.stdout);
    assert_eq!(check_real(&env), before, "the real database is untouched");
}

#[test]
fn rehearse_proves_the_way_back_on_sqlite() {
    rehearse_names_every_broken_down("sqlite://app.db", &|env: &TestEnv| tables(env));
}

#[test]
fn rehearse_proves_the_way_back_on_postgres() {
    let db = PgDb::new("rehearse");
    let check = |_: &TestEnv| db.sql("SELECT string_agg(version, ',' ORDER BY version) FROM lastgood.migrations");
    rehearse_names_every_broken_down(&db.url, &check);
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'lastgood_rehearse_%'"),
        "0",
        "scratch databases are dropped"
    );
}

#[test]
fn scope_db_reverts_only_the_schema() {
    let env = sqlite_env();
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v2");
    let out = env.run(&["rollback", "production", "--scope", "db", "--reason", "slow index", "--format", "json"]);
    out.expect(0);
    assert_eq!(step_names(&out.json()), ["stop", "migrate-down", "restart", "verify"]);
    assert!(!tables(&env).contains("users_name"));
    assert_eq!(env.serving().as_deref(), Some("v2"), "the code stays");
    // Nothing left to revert: the same rollback is a no-op.
    let again = env.run(&["rollback", "production", "--scope", "db"]);
    again.expect(0);
    assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);
}

#[test]
fn a_db_down_killed_midway_leaves_no_dirty_state_and_a_rerun_finishes() {
    let env = sqlite_env();
    env.run(&["db", "up", "production"]).expect(0);
    // Killed inside the second revert (v2's index): v3's revert committed, v2's did not.
    let out = env.run_crashing(
        "migrate:2024-02-01-000000:1",
        &["db", "down", "production", "--to", "2024-01-01-000000", "--allow-data-loss"],
    );
    assert_eq!(out.signal, Some(9), "{out:?}");
    let st = env.run(&["db", "status", "production", "--format", "json"]).expect(0).json();
    assert_eq!(st["current"]["version"], "2024-02-01-000000");
    assert!(tables(&env).contains("users_name"), "the killed revert rolled back whole");
    // The process died holding the environment lock; the next command takes it over.
    env.run(&["db", "down", "production", "--to", "2024-01-01-000000"]).expect(0);
    assert_eq!(tables(&env), "lastgood_migrations,users");
}

#[test]
fn the_command_adapter_runs_the_teams_own_commands() {
    let mut env = TestEnv::new(BIN);
    // A "tool" that keeps its revision in a file, standing in for a team's script.
    let tool = "#!/bin/sh\nset -e\nstate=\"$(dirname \"$0\")/../schema-state\"\ncase \"$1\" in\n  current) cat \"$state\" 2>/dev/null || true ;;\n  up) cat VERSION > \"$state\"; echo \"$LASTGOOD_VERSION $LASTGOOD_RELEASE $LASTGOOD_ENV\" > \"$state.env\" ;;\n  down) printf '%s\\n' \"$LASTGOOD_TARGET_REVISION\" > \"$state\" ;;\nesac\n";
    env.write("repo/tool.sh", tool);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(env.repo().join("tool.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    env.commit_version("v1", &[]);
    env.commit_version("v2", &[]);
    env.configure(
        &Config::new().database(
            Database::sqlite("app.db")
                .adapter("command")
                .key("current", ["./tool.sh", "current"])
                .key("up", ["./tool.sh", "up"])
                .key("down_to", ["./tool.sh", "down"]),
        ),
    );
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v2");
    assert_eq!(env.history()[0]["schema_revision"], "v2");
    // The tool learns which release it migrates for, through its environment.
    let seen = std::fs::read_to_string(env.deploy_to().join("releases/schema-state.env")).unwrap();
    assert_eq!(seen.trim(), "v2 2 production");
    // Its downs cannot be previewed, so they count as destructive.
    env.run(&["rollback", "production", "--reason", "t"]).expect(4);
    env.run(&["rollback", "production", "--reason", "t", "--allow-data-loss"]).expect(0);
    let state = std::fs::read_to_string(env.deploy_to().join("releases/schema-state")).unwrap();
    assert_eq!(state.trim(), "v1");
}

#[test]
fn two_processes_migrating_at_once_the_second_is_told_who_holds_the_lock() {
    let db = PgDb::new("race");
    let mut env = TestEnv::new(BIN);
    env.commit_version(
        "v1",
        &[
            ("migrations/1_slow/up.sql", "SELECT pg_sleep(1.5);\nCREATE TABLE slow (id int);\n"),
            ("migrations/1_slow/down.sql", "DROP TABLE slow;\n"),
        ],
    );
    env.configure(&Config::new().database(Database::url(&db.url).migrations("migrations")));
    let first = env.cmd(&["db", "up", "production"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let second = env.run(&["db", "up", "production"]);
    second.expect(3);
    assert!(second.stderr.contains("locked by tester@"), "{}", second.stderr);
    assert!(first.wait_with_output().unwrap().status.success());
    assert_eq!(db.sql("SELECT count(*) FROM lastgood.migrations"), "1", "applied exactly once");
}

#[test]
fn refusals_around_the_schema_say_why() {
    // backup = "never" makes a destructive down impossible, on purpose.
    let env = sqlite_env();
    env.configure(&Config::new().database(Database::sqlite("app.db").migrations("migrations").key("backup", "never")));
    for v in ["v1", "v2", "v3"] {
        deploy_ok(&env, v);
    }
    let out = env.run(&["rollback", "production", "--to", "2", "--yes", "--allow-data-loss", "--reason", "t"]);
    out.expect(4);
    assert!(out.stderr.contains("backup = \"never\""), "{}", out.stderr);
    assert!(tables(&env).contains("audit_log"), "nothing changed");

    // --scope db needs a database with migrations.
    let plain = crate::env_with_versions(2);
    deploy_ok(&plain, "v1");
    deploy_ok(&plain, "v2");
    let out = plain.run(&["rollback", "production", "--scope", "db", "--reason", "t"]);
    out.expect(2);
    assert!(out.stderr.contains("no [database] with migrations"), "{}", out.stderr);
}

/// A pipeline stand-in for the `command` runtime: records the version it was asked for
/// and whether the v2 migration's index existed when it was called, then sets the
/// parameter store that `current` reads.
fn pipeline(env: &TestEnv) -> (String, String) {
    let log = env.path().join("pipeline.log");
    let param = env.path().join("desired_version");
    let db = env.path().join("app.db");
    let script = format!(
        "#!/bin/sh\nset -e\nindex=$(sqlite3 '{}' \"SELECT count(*) FROM sqlite_master WHERE name = 'users_name'\")\n\
         echo \"$LASTGOOD_VERSION index=$index commit=$LASTGOOD_COMMIT\" >> '{}'\nprintf '%s\\n' \"$LASTGOOD_VERSION\" > '{}'\n",
        db.display(),
        log.display(),
        param.display()
    );
    env.write("ci-switch.sh", &script);
    let path = env.path().join("ci-switch.sh");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (path.display().to_string(), param.display().to_string())
}

#[test]
fn a_pipeline_runtime_with_source_runs_migrations_from_the_release_tree_around_its_switch() {
    let env = sqlite_env();
    let (switch, param) = pipeline(&env);
    env.configure(
        &Config::new()
            .runtime("command")
            .deploy_to(None)
            .no_process()
            .config_files([])
            .checks(vec![])
            .key("switch", lastgood_testkit::config::Value::List(vec![switch]))
            .key("current", lastgood_testkit::config::Value::List(vec!["cat".into(), param]))
            .database(Database::url("sqlite://app.db").migrations("migrations")),
    );
    let log = || std::fs::read_to_string(env.path().join("pipeline.log")).unwrap_or_default();
    let out = env.run(&["deploy", "production", "v1", "--reason", "first", "--format", "json"]);
    out.expect(0);
    assert_eq!(step_names(&out.json()), ["export", "migrate-up", "switch", "cleanup"]);
    // v2's migration ran before the pipeline was called, from v2's own tree.
    env.run(&["deploy", "production", "v2", "--reason", "index"]).expect(0);
    let lines: Vec<String> = log().lines().map(str::to_owned).collect();
    assert!(lines[0].starts_with("v1 index=0 commit="), "{lines:?}");
    assert!(lines[1].starts_with("v2 index=1 commit="), "{lines:?}");
    assert_eq!(env.history()[0]["schema_revision"], "2024-02-01-000000");
    let trees = env.path().join(".lastgood/work/production/.lastgood/trees");
    assert!(trees.join("2/migrations/2024-02-01-000000_users_name/up.sql").is_file(), "v2's tree is exported");

    // A rollback reverts the schema before the pipeline switches back.
    let out = env.run(&["rollback", "production", "--reason", "slow", "--format", "json"]);
    out.expect(0);
    assert_eq!(step_names(&out.json()), ["migrate-down", "switch"]);
    let last = log().lines().last().unwrap().to_owned();
    assert!(last.starts_with("v1 index=0"), "the index was gone when the pipeline ran: {last}");
    assert!(!tables(&env).contains("users_name"));
    let plan = env.run(&["rollback", "production", "--to", "2", "--dry-run"]);
    assert!(plan.stdout.contains("run "), "{}", plan.stdout);

    // Without `source`, migrations cannot be run for a pipeline: a config error that says why.
    env.configure(
        &Config::new()
            .runtime("command")
            .source(None)
            .deploy_to(None)
            .no_process()
            .config_files([])
            .checks(vec![])
            .key("switch", lastgood_testkit::config::Value::List(vec!["true".into()]))
            .database(Database::url("sqlite://app.db").migrations("migrations")),
    );
    let out = env.run(&["status", "production"]);
    out.expect(2);
    assert!(out.stderr.contains("set `source`"), "{}", out.stderr);
}

#[test]
fn a_deploy_preview_shows_the_migrations_it_would_apply_and_their_sql() {
    let env = sqlite_env();
    deploy_ok(&env, "v1");
    let out = env.run(&["deploy", "production", "v3", "--dry-run", "--sql"]);
    out.expect(0);
    assert!(out.stdout.contains("migration: up 2024-02-01-000000_users_name"), "{}", out.stdout);
    assert!(out.stdout.contains("CREATE INDEX users_name ON users (name);"), "{}", out.stdout);
    assert!(out.stdout.contains("CREATE TABLE audit_log"), "{}", out.stdout);
    assert!(!tables(&env).contains("audit_log"), "a preview changed nothing");
    assert_eq!(env.history().as_array().unwrap().len(), 1, "and recorded nothing");
    let json = env.run(&["deploy", "production", "v3", "--sql", "--format", "json"]).expect(0).json();
    assert_eq!(json["migrations"].as_array().map(Vec::len), Some(2), "{json}");
    assert!(json["sql"].as_str().unwrap().contains("audit_log"));
}
