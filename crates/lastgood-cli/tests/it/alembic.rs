//! `adapter = "alembic"` on par with the builtin engine, against the real Alembic from
//! PyPI and a real PostgreSQL server: `db status|history|up|down|lint|rehearse`, the
//! data-safety gate, rolling forward with `upgrade`, and Alembic's own error lines.

use lastgood_testkit::{Config, Database, PgDb, TestEnv};

use crate::{BIN, deploy_ok};

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

/// A revision file: `message` is its docstring (Alembic's `-m`); None for none. Each
/// `; `-separated statement is its own `op.execute` (SQLite runs one at a time).
pub fn alembic_revision(rev: &str, down: Option<&str>, message: Option<&str>, up_sql: &str, down_sql: &str) -> String {
    let body = |sql: &str| sql.split("; ").map(|s| format!("    op.execute({s:?})\n")).collect::<String>();
    format!(
        "{}revision = {rev:?}\ndown_revision = {}\nbranch_labels = None\ndepends_on = None\n\nfrom alembic import op\n\n\ndef upgrade():\n{}\n\ndef downgrade():\n{}",
        message.map(|m| format!("\"\"\"{m}\n\nRevision ID: {rev}\n\"\"\"\n")).unwrap_or_default(),
        down.map(|d| format!("{d:?}")).unwrap_or_else(|| "None".into()),
        body(up_sql),
        body(down_sql),
    )
}

/// v1: users (with a row); v2: an index on name; v3: an email column, whose down drops
/// it (destructive); v4 (with `broken`): a table whose down fails.
fn alembic_env(url: &str, broken: bool) -> TestEnv {
    let mut env = TestEnv::new(BIN);
    let mut versions = vec![
        (
            "v1",
            "0001_users.py",
            alembic_revision(
                "0001",
                None,
                Some("users table"),
                "CREATE TABLE users (id integer PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'ada')",
                "DROP TABLE users",
            ),
        ),
        (
            "v2",
            "0002_name.py",
            alembic_revision(
                "0002",
                Some("0001"),
                Some("name index"),
                "CREATE INDEX users_name ON users (name)",
                "DROP INDEX users_name",
            ),
        ),
        (
            "v3",
            "0003_email.py",
            alembic_revision(
                "0003",
                Some("0002"),
                Some("email column"),
                "ALTER TABLE users ADD COLUMN email text",
                "ALTER TABLE users DROP COLUMN email",
            ),
        ),
    ];
    if broken {
        versions.push((
            "v4",
            "0004_audit.py",
            alembic_revision(
                "0004",
                Some("0003"),
                Some("audit log"),
                "CREATE TABLE audit_log (id integer PRIMARY KEY)",
                "DROP TABLE audit_log_typo",
            ),
        ));
    }
    commit_alembic_versions(&mut env, &versions);
    env.configure(&config(url));
    env
}

/// Tags each `(tag, file, revision)` as a version adding that revision file; the first
/// also adds alembic.ini and env.py.
pub fn commit_alembic_versions(env: &mut TestEnv, versions: &[(&str, &str, String)]) {
    commit_alembic_versions_with(env, versions, ALEMBIC_ENV);
}

/// [`commit_alembic_versions`] with another env.py.
fn commit_alembic_versions_with(env: &mut TestEnv, versions: &[(&str, &str, String)], env_py: &str) {
    for (i, (tag, file, text)) in versions.iter().enumerate() {
        let path = format!("alembic/versions/{file}");
        let mut extra: Vec<(&str, &str)> = vec![(&path, text)];
        if i == 0 {
            extra.push(("alembic.ini", ALEMBIC_INI));
            extra.push(("alembic/env.py", env_py));
        }
        env.commit_version(tag, &extra);
    }
}

fn config(url: &str) -> Config {
    Config::new().database(Database::url(url).adapter("alembic"))
}

/// SQLAlchemy names the driver in the scheme; lastgood passes the URL on as written.
fn sqlalchemy_url(db: &PgDb) -> String {
    db.url.replacen("postgres://", "postgresql+psycopg2://", 1)
}

fn version(db: &PgDb) -> String {
    db.sql("SELECT version_num FROM alembic_version")
}

fn status(env: &TestEnv) -> serde_json::Value {
    env.test().args(["db", "status", "production", "--format", "json"]).run().json()
}

fn counts(st: &serde_json::Value) -> (&str, u64, u64) {
    (
        st["current"]["version"].as_str().unwrap_or("none"),
        st["applied"].as_u64().unwrap(),
        st["pending"].as_u64().unwrap(),
    )
}

fn step_names(report: &serde_json::Value) -> Vec<String> {
    report["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn db_status_and_history_show_alembic_s_revisions_and_a_return_to_a_newer_release_upgrades() {
    let db = PgDb::new("alembic_status");
    let env = alembic_env(&sqlalchemy_url(&db), false);

    deploy_ok(&env, "v1");
    let st = status(&env);
    assert_eq!(counts(&st), ("0001", 1, 2), "the source tree has all three revisions: {st}");
    assert_eq!(st["current"]["name"], "0001 (users table)");
    assert_eq!(st["migrations"][0]["state"], "applied");
    assert_eq!(st["migrations"][2]["state"], "pending");
    deploy_ok(&env, "v2");
    assert_eq!(counts(&status(&env)), ("0002", 2, 1));
    env.test()
        .args(["db", "status", "production"])
        .stdout_has("current: 0002 (name index)")
        .stdout_has("applied: 2, pending: 1")
        .stdout_has("pending                0003 (email column)")
        .run();

    let h = env.test().args(["db", "history", "production", "--format", "json"]).run().json();
    let revs: Vec<(&str, bool)> = h["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["version"].as_str().unwrap(), r["applied"].as_bool().unwrap()))
        .collect();
    assert_eq!(revs, [("0003", false), ("0002", true), ("0001", true)], "newest first: {h}");
    env.test()
        .args(["db", "history", "production"])
        .stdout_has("pending  0002 -> 0003 (head), email column")
        .stdout_has("applied  <base> -> 0001, users table")
        .run();

    // Back to v1: a downgrade. Then forward again to v2: an upgrade, never a downgrade.
    env.test().args(["rollback", "production", "--to", "1", "--reason", "t"]).run();
    assert_eq!(version(&db), "0001");
    let plan = env
        .test()
        .args(["rollback", "production", "--to", "2", "--dry-run", "--format", "json"])
        .stdout_lacks("downgrade")
        .run()
        .json();
    let steps: Vec<&str> = plan["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(steps.contains(&"migrate-up") && !steps.contains(&"migrate-down"), "{plan}");
    assert!(
        plan["sql"].as_str().is_some_and(|s| s.contains("-- Running upgrade 0001 -> 0002")),
        "the preview is Alembic's upgrade SQL: {plan}"
    );
    assert_eq!(version(&db), "0001", "a dry run runs no migration");
    let r = env
        .test()
        .args(["rollback", "production", "--to", "2", "--yes", "--reason", "forward", "--format", "json"])
        .run()
        .json();
    assert_eq!(step_names(&r), ["migrate-up", "switch", "config", "restart", "verify"], "{r}");
    assert_eq!(version(&db), "0002");
    assert_eq!(env.serving().as_deref(), Some("v2"));

    deploy_ok(&env, "v3");
    assert_eq!(counts(&status(&env)), ("0003", 3, 0));
    assert_eq!(env.history()[0]["schema_revision"], "0003");
}

/// lastgood reads where the schema is from `alembic_version` instead of starting
/// Alembic, but only when Alembic's own SQL for the move starts from that very row of
/// that very table. Here env.py keeps its revisions in `shop_versions` and a stale
/// `alembic_version` (left by an older setup) says 0002 while the schema is at 0003:
/// the plan must start from 0003, as `alembic current` says.
#[test]
fn a_version_table_of_another_name_is_read_by_alembic_not_from_a_stale_alembic_version() {
    let db = PgDb::new("alembic_vtable");
    let mut env = TestEnv::new(BIN);
    let versions = [
        (
            "v1",
            "0001_users.py",
            alembic_revision("0001", None, None, "CREATE TABLE users (id integer)", "DROP TABLE users"),
        ),
        (
            "v2",
            "0002_a.py",
            alembic_revision("0002", Some("0001"), None, "CREATE TABLE a (id integer)", "DROP TABLE a"),
        ),
        (
            "v3",
            "0003_b.py",
            alembic_revision("0003", Some("0002"), None, "CREATE TABLE b (id integer)", "DROP TABLE b"),
        ),
    ];
    let env_py =
        ALEMBIC_ENV.replace("literal_binds=True)", "literal_binds=True, version_table=\"shop_versions\")").replace(
            "context.configure(connection=connection)",
            "context.configure(connection=connection, version_table=\"shop_versions\")",
        );
    commit_alembic_versions_with(&mut env, &versions, &env_py);
    env.configure(&config(&sqlalchemy_url(&db)));
    for v in ["v1", "v2", "v3"] {
        deploy_ok(&env, v);
    }
    assert_eq!(db.sql("SELECT version_num FROM shop_versions"), "0003");
    db.sql("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); INSERT INTO alembic_version VALUES ('0002')");

    let plan = env.test().args(["rollback", "production", "--to", "1", "--dry-run", "--format", "json"]).run().json();
    let sql = plan["sql"].as_str().unwrap_or_default();
    assert!(
        sql.contains("-- Running downgrade 0003 -> 0002") && sql.contains("-- Running downgrade 0002 -> 0001"),
        "{plan}"
    );
    let r = env
        .test()
        .args([
            "rollback",
            "production",
            "--to",
            "1",
            "--allow-data-loss",
            "--yes",
            "--reason",
            "t",
            "--format",
            "json",
        ])
        .run()
        .json();
    let down = r["steps"].as_array().unwrap().iter().find(|s| s["name"] == "migrate-down").unwrap().clone();
    assert!(down["detail"].as_str().unwrap().contains("reverted 2 migration(s)"), "{down}");
    assert_eq!(db.sql("SELECT version_num FROM shop_versions"), "0001");
    assert_eq!(db.sql("SELECT count(*) FROM pg_tables WHERE tablename IN ('a', 'b')"), "0");
}

#[test]
fn db_down_previews_alembic_s_sql_and_a_destructive_down_needs_consent() {
    let db = PgDb::new("alembic_down");
    let env = alembic_env(&sqlalchemy_url(&db), false);
    env.test().args(["db", "up", "production"]).stdout_has("applied 3 migration(s); schema now at 0003").run();

    // `alembic downgrade -1 --sql` is refused by Alembic; lastgood resolves -1 first.
    env.test()
        .args(["db", "down", "production", "--steps", "1", "--sql"])
        .stdout_has("-- Running downgrade 0003 -> 0002")
        .stdout_has("ALTER TABLE users DROP COLUMN email;")
        .stdout_lacks("0002 -> 0001")
        .run();
    assert_eq!(version(&db), "0003", "--sql runs nothing");

    env.test()
        .args(["db", "down", "production", "--to", "0002"])
        .status(4)
        .stderr_has("0003 (email column)")
        .stderr_has("--allow-data-loss")
        .stderr_has("lastgood db down production --to 0002 --sql")
        .run();
    assert_eq!(version(&db), "0003", "nothing changed");
    assert_eq!(db.sql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'email'"), "1");

    env.test()
        .args(["db", "down", "production", "--to", "0002", "--allow-data-loss"])
        .stdout_has("reverted 1 migration(s) after backup 1")
        .stdout_has("schema now at 0002")
        .run();
    assert_eq!(version(&db), "0002");
    let backups = env.test().args(["db", "backups", "production", "--format", "json"]).run().json();
    assert_eq!(backups.as_array().unwrap().len(), 1, "{backups}");

    // Bad input: exit 2, naming the revisions there are, and nothing changes.
    env.test()
        .args(["db", "down", "production", "--to", "nope"])
        .status(2)
        .stderr_has("Alembic has no revision `nope`")
        .stderr_has("0003, 0002, 0001")
        .run();
    env.test().args(["db", "up", "production", "--to", "nope", "--sql"]).status(2).stderr_has("`nope`").run();
    env.test()
        .args(["db", "down", "production", "--to", "0003"])
        .status(2)
        .stderr_has("0003 is not applied")
        .stderr_has("`lastgood db up --to 0003` applies it")
        .run();
    assert_eq!(version(&db), "0002");

    env.test().args(["db", "down", "production", "--steps", "1"]).stdout_has("schema now at 0001").run();
    env.test().args(["db", "up", "production", "--to", "0002"]).stdout_has("schema now at 0002").run();
    assert_eq!(version(&db), "0002");
}

#[test]
fn db_lint_judges_each_revision_and_db_rehearse_names_the_broken_down() {
    let db = PgDb::new("alembic_rehearse");
    let env = alembic_env(&sqlalchemy_url(&db), true);
    env.test().args(["db", "up", "production", "--to", "0003"]).run();

    let lint = env.test().args(["db", "lint", "production", "--format", "json"]).run().json();
    let classes: Vec<(&str, &str, &str)> = lint
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (e["version"].as_str().unwrap(), e["up"]["class"].as_str().unwrap(), e["down"]["class"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        classes,
        [
            ("0001", "safe", "destructive"),
            ("0002", "blocking", "blocking"),
            ("0003", "safe", "destructive"),
            ("0004", "safe", "destructive")
        ],
        "oldest first, without Alembic's bookkeeping: {lint}"
    );
    env.test()
        .args(["db", "lint", "production"])
        .stdout_has("0003 (email column)")
        .stdout_has("down:1 destructive: DROP TABLE deletes the table and every row in it (DROP TABLE audit_log_typo)")
        .stdout_lacks("alembic_version")
        .run();

    // A clean way back.
    env.test()
        .args(["db", "rehearse", "production", "--to", "0001"])
        .stdout_has("rehearsed 0003 -> 0001 on scratch databases: the way back works")
        .stdout_has("reverted: 0003 (email column), 0002 (name index)")
        .stdout_has("the rolled-back schema equals a fresh apply of the target")
        .run();

    // A broken one: 0004's downgrade fails; the rehearsal goes on and names it.
    env.test().args(["db", "up", "production"]).run();
    let out = env
        .test()
        .args(["db", "rehearse", "production", "--to", "0002"])
        .status(1)
        .stdout_has("the way back is BROKEN")
        .stdout_has("FAILED down of 0004 (audit log)")
        .stdout_has("audit_log_typo")
        .stdout_has("reverted: 0003 (email column)")
        .run();
    assert!(!out.stdout.contains("SEMANTIC"), "rebuilt below the failure, the rest compares equal: {}", out.stdout);
    assert_eq!(version(&db), "0004", "the real database is never touched");
    assert_eq!(db.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'lastgood_rehearse_%'"), "0");
}

#[test]
fn alembic_on_sqlite_counts_and_rehearses_with_scratch_files() {
    let env = alembic_env("sqlite://app.db", false);
    env.test().args(["db", "up", "production", "--to", "0002"]).run();
    assert_eq!(counts(&status(&env)), ("0002", 2, 1));
    env.test()
        .args(["db", "rehearse", "production", "--to", "0"])
        .stdout_has("rehearsed 0002 -> none on scratch databases: the way back works")
        .run();
    assert_eq!(counts(&status(&env)), ("0002", 2, 1), "the real file is never touched");
}

#[test]
fn alembic_s_own_error_lines_reach_the_user_and_no_reason_is_blank() {
    let db = PgDb::new("alembic_errors");
    let env = alembic_env(&sqlalchemy_url(&db), false);
    deploy_ok(&env, "v2");
    deploy_ok(&env, "v3");

    // Alembic prints `FAILED: ...` on stdout and exits 255.
    db.sql("UPDATE alembic_version SET version_num = 'ffff'");
    env.test()
        .args(["db", "status", "production"])
        .status(1)
        .stderr_has("`alembic current` exited with exit status 255")
        .stderr_has("FAILED: Can't locate revision identified by 'ffff'")
        .run();
    let out = env.test().args(["rollback", "production", "--to", "1", "--dry-run"]).status(1).run();
    assert!(out.stderr.contains("FAILED: Can't locate revision"), "{}", out.stderr);

    // No alembic.ini where it runs: what is missing and what to do.
    let empty = env.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    env.test()
        .args(["db", "status", "production", "--migrations", empty.to_str().unwrap()])
        .status(2)
        .stderr_has("there is no alembic.ini in")
        .stderr_has("--migrations DIR")
        .run();

    // An unreachable database: the driver's own words, the password masked.
    let unreachable = "postgresql+psycopg2://nobody:canary-unreachable@127.0.0.1:1/nothing";
    let out = env
        .test()
        .config(config(unreachable))
        .args(["db", "status", "production"])
        .status(1)
        .stderr_has("`alembic current` exited with exit status 1")
        .stderr_has("last lines of stderr:")
        .stderr_lacks("canary-unreachable")
        .run();
    assert!(out.stderr.contains("Connection refused") || out.stderr.contains("connection"), "{}", out.stderr);
}
