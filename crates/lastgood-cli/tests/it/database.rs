//! Deploys and rollbacks that carry the schema, and `lastgood db`, against SQLite and
//! a real PostgreSQL server.

use serde_json::json;

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
    assert!(std::path::Path::new(backups[0]["file"]["path"].as_str().unwrap()).exists());
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
fn a_failed_deploy_never_reverts_destructive_migrations_by_itself() {
    let env = sqlite_env();
    deploy_ok(&env, "v1");
    env.write("app.env", "HEALTH=fail\n");
    let out = env.run(&["deploy", "production", "v3", "--format", "json"]);
    out.expect(1);
    assert_eq!(out.json()["outcome"], "failed");
    assert!(out.stderr.contains("not returning") && out.stderr.contains("--allow-data-loss"), "{}", out.stderr);
    assert!(tables(&env).contains("audit_log"), "the data is still there");
    assert_eq!(env.status()["current"]["id"], 2);
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
    env.run(&["db", "restore", "production"]).expect(0);
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

const ALEMBIC_INI: &str = "[alembic]\nscript_location = alembic\n\n[loggers]\nkeys = root\n[handlers]\nkeys = console\n[formatters]\nkeys = generic\n[logger_root]\nlevel = WARN\nhandlers = console\n[handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\nlevel = NOTSET\nformatter = generic\n[formatter_generic]\nformat = %(levelname)s %(message)s\n";
const ALEMBIC_ENV: &str = r#"import os
from alembic import context
from sqlalchemy import create_engine, pool

url = os.environ["DATABASE_URL"]

if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
"#;

fn alembic_revision(rev: &str, down: Option<&str>, up_sql: &str, down_sql: &str) -> String {
    format!(
        "revision = {rev:?}\ndown_revision = {}\nbranch_labels = None\ndepends_on = None\n\nfrom alembic import op\n\n\ndef upgrade():\n    op.execute({up_sql:?})\n\n\ndef downgrade():\n    op.execute({down_sql:?})\n",
        down.map(|d| format!("{d:?}")).unwrap_or_else(|| "None".into())
    )
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
                "CREATE TABLE users (id integer PRIMARY KEY, name text)",
                "DROP TABLE users",
            ),
        ),
        (
            "v2",
            "0002_name.py",
            alembic_revision("0002", Some("0001"), "CREATE INDEX users_name ON users (name)", "DROP INDEX users_name"),
        ),
        (
            "v3",
            "0003_id_name.py",
            alembic_revision(
                "0003",
                Some("0002"),
                "CREATE INDEX users_id_name ON users (id, name)",
                "DROP INDEX users_id_name",
            ),
        ),
    ];
    for (i, (tag, file, text)) in files.iter().enumerate() {
        let path = format!("alembic/versions/{file}");
        let mut extra: Vec<(&str, &str)> = vec![(&path, text)];
        if i == 0 {
            extra.push(("alembic.ini", ALEMBIC_INI));
            extra.push(("alembic/env.py", ALEMBIC_ENV));
        }
        env.commit_version(tag, &extra);
    }
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
    let out = env.run(&["db", "down", "production", "--steps", "1"]);
    out.expect(2);
    assert!(out.stderr.contains("adapter = alembic"), "{}", out.stderr);
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
    let tool = "#!/bin/sh\nset -e\nstate=\"$(dirname \"$0\")/../schema-state\"\ncase \"$1\" in\n  current) cat \"$state\" 2>/dev/null || true ;;\n  up) cat VERSION > \"$state\" ;;\n  down) printf '%s\\n' \"$LASTGOOD_TARGET_REVISION\" > \"$state\" ;;\nesac\n";
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
