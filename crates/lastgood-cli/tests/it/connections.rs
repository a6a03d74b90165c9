//! Connecting the way every PostgreSQL tool does: URLs with a Unix-socket host and
//! peer authentication, `key=value` strings, the parts left out taken from `PG*`
//! variables and the password file; bad input refused with exit 2 before anything
//! changes; and migrations through PgBouncer in transaction mode.

use crate::BIN;
use lastgood_testkit::{Config, Database, PgBouncer, PgDb, SOCKET_DIR, TestEnv};

const TABLE: (&str, &str) = ("CREATE TABLE t (a int);\nSELECT pg_sleep(0.2);\n", "DROP TABLE t;\n");
const INDEX: (&str, &str) = (
    "-- no-transaction\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n",
    "-- no-transaction\nDROP INDEX CONCURRENTLY t_a;\n",
);
const VIEW: (&str, &str) = ("CREATE VIEW v AS SELECT a FROM t;\n", "DROP VIEW v;\n");

/// A workspace whose v1 carries a table, an index built outside a transaction and a
/// view (diesel layout), with `db` as its database.
fn env_with(db: Database) -> TestEnv {
    let mut env = TestEnv::new(BIN);
    let mut files = Vec::new();
    for (name, (up, down)) in [("1_t", TABLE), ("2_idx", INDEX), ("3_v", VIEW)] {
        files.push((format!("migrations/{name}/up.sql"), up));
        files.push((format!("migrations/{name}/down.sql"), down));
    }
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    env.commit_version("v1", &files);
    env.configure(&Config::new().database(db.migrations("migrations")));
    env
}

/// The test server's port and the test role's password, from `LASTGOOD_TEST_PG`.
fn server() -> (String, String) {
    let url = std::env::var("LASTGOOD_TEST_PG").expect("LASTGOOD_TEST_PG");
    let rest = url.split_once("://").unwrap().1;
    let (userinfo, hostport) = rest.split('/').next().unwrap().rsplit_once('@').unwrap();
    let port = hostport.rsplit_once(':').map(|(_, p)| p).unwrap_or("5432");
    (port.to_owned(), userinfo.split_once(':').unwrap().1.to_owned())
}

fn applied(db: &PgDb) -> String {
    db.sql("SELECT coalesce(string_agg(version, ',' ORDER BY version), '') FROM lastgood.migrations")
}

#[test]
fn unix_socket_urls_with_peer_authentication_in_every_form() {
    let db = PgDb::over_socket("socket");
    let (port, _) = server();
    let (colon_port, port_pair) =
        if port == "5432" { (String::new(), String::new()) } else { (format!(":{port}"), format!(" port={port}")) };
    let encoded = SOCKET_DIR.replace('/', "%2F");
    for url in [
        db.url.replacen("postgresql://", "postgres://", 1),
        format!("postgresql://root@{encoded}{colon_port}/{}", db.name),
        format!("host={SOCKET_DIR} dbname={}{port_pair}", db.name),
    ] {
        let env = env_with(Database::url(&url));
        env.test().args(["db", "up", "production"]).stdout_has("schema now at 3").run();
        env.test().args(["db", "status", "production"]).stdout_has(&url).stdout_has("applied: 3, pending: 0").run();
        assert_eq!(applied(&db), "1,2,3", "{url}");
        env.test().args(["db", "down", "production", "--steps", "2"]).run();
        assert_eq!(applied(&db), "1", "{url}");
    }
}

#[test]
fn pg_dump_backs_up_and_restores_over_the_socket() {
    let db = PgDb::over_socket("dump");
    let env = env_with(Database::url(&db.url).key("backup_method", "pg_dump"));
    // A restore is an operation on what serves: a release must be deployed.
    env.test().args(["deploy", "production", "v1", "--reason", "first"]).run();
    db.sql("INSERT INTO t SELECT generate_series(1, 100)");
    env.test().args(["db", "backup", "production"]).stdout_has(".dump").run();
    db.sql("DELETE FROM t WHERE a > 10");
    env.test().args(["db", "restore", "production", "--reason", "rows lost", "--yes"]).run();
    assert_eq!(db.sql("SELECT count(*) FROM t"), "100");
}

#[test]
fn missing_parts_come_from_pg_variables_and_the_url_may_come_from_the_environment() {
    let db = PgDb::new("pgvars");
    let (port, password) = server();
    let vars = [
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", port.as_str()),
        ("PGUSER", "lastgood_test"),
        ("PGPASSWORD", password.as_str()),
        ("PGDATABASE", db.name.as_str()),
        ("PGSSLMODE", "disable"),
    ];
    let url_env = Database::url_env("APP_DATABASE_URL");
    for (database, app_url) in [
        (Database::url("postgres://"), None),
        (Database::url("sslmode=require"), None),
        (url_env.clone(), Some(format!("postgresql:///{}", db.name))),
        (url_env, Some(format!("dbname={}", db.name))),
    ] {
        let env = env_with(database.clone());
        let mut up = env.test().args(["db", "up", "production"]);
        for (k, v) in vars {
            up = up.env(k, v);
        }
        if let Some(u) = &app_url {
            up = up.env("APP_DATABASE_URL", u);
        }
        up.stdout_lacks(&password).stderr_lacks(&password).run();
        assert_eq!(applied(&db), "1,2,3", "{database:?} {app_url:?}");
        db.sql("DROP SCHEMA lastgood CASCADE; DROP VIEW v; DROP TABLE t;");
    }
}

#[test]
fn the_password_file_fills_in_the_password_and_one_others_can_read_is_ignored_with_a_note() {
    use std::os::unix::fs::PermissionsExt;
    let db = PgDb::new("pgpass");
    let (port, password) = server();
    let env = env_with(Database::url(&format!("postgres://lastgood_test@127.0.0.1:{port}/{}", db.name)));
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join(".pgpass");
    std::fs::write(&file, format!("# lastgood's tests\n127.0.0.1:{port}:{}:lastgood_test:{password}\n", db.name))
        .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let passfile = file.display().to_string();
    let home_dir = home.path().display().to_string();

    env.test().args(["db", "up", "production"]).env("PGPASSFILE", &passfile).stderr_lacks(&password).run();
    assert_eq!(applied(&db), "1,2,3");
    // ~/.pgpass when PGPASSFILE is not set.
    env.test().args(["db", "status", "production"]).env("HOME", &home_dir).stdout_has("applied: 3").run();

    // Others may read it: ignored, as libpq ignores it, and said so.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    env.test()
        .args(["db", "status", "production"])
        .env("PGPASSFILE", &passfile)
        .status(1)
        .stderr_has(&format!("note: password file {passfile} has group or world access (mode 0644)"))
        .stderr_has("chmod 0600")
        .stderr_lacks(&password)
        .run();
}

#[test]
fn bad_connection_input_is_refused_with_exit_2_and_changes_nothing() {
    let db = PgDb::new("badinput");
    let (_, password) = server();
    let untouched = || assert_eq!(db.sql("SELECT to_regclass('lastgood.migrations') IS NULL"), "t", "nothing changed");
    let no_password = db.url.replacen(&format!(":{password}@"), "@", 1);

    // The string itself: refused when the config is loaded.
    for (url, names) in [
        (format!("postgres://lastgood_test:{password}@127.0.0.1:port/{}", db.name), "`port`"),
        (format!("{}?sslmode=maybe", db.url), "sslmode `maybe`"),
        (format!("{}?colour=blue", db.url), "`colour`"),
        (format!("host={SOCKET_DIR} dbname={} colour=blue", db.name), "`colour`"),
        (format!("host=127.0.0.1 password='{password}"), "not closed"),
        ("mysql://x/y".to_owned(), "expected postgres://"),
    ] {
        let env = env_with(Database::url(&url));
        env.test().args(["db", "up", "production"]).status(2).stderr_has(names).stderr_lacks(&password).run();
    }
    untouched();

    // Values of PG* variables: refused when the database is about to be used.
    let deploys = env_with(Database::url(&no_password));
    for (var, value) in [("PGSSLMODE", "bogus"), ("PGCONNECT_TIMEOUT", "soon")] {
        for args in [&["db", "up", "production"][..], &["deploy", "production", "v1"]] {
            deploys
                .test()
                .args(args)
                .env(var, value)
                .env("PGPASSWORD", &password)
                .status(2)
                .stderr_has(&format!("{var}=`{value}` is not valid"))
                .stderr_lacks(&password)
                .run();
        }
    }
    let env = env_with(Database::url(&format!("postgresql:///{}?host=127.0.0.1", db.name)));
    env.test()
        .args(["db", "up", "production"])
        .env("PGPORT", "abc")
        .status(2)
        .stderr_has("PGPORT=`abc` is not valid: expected a port number")
        .run();
    // url_env whose value is not a URL.
    let env = env_with(Database::url_env("APP_DATABASE_URL"));
    env.test()
        .args(["db", "up", "production"])
        .env("APP_DATABASE_URL", &format!("postgres://lastgood_test:{password}@127.0.0.1:99999/x"))
        .status(2)
        .stderr_has("APP_DATABASE_URL")
        .stderr_lacks(&password)
        .run();
    untouched();
    assert!(deploys.history().as_array().is_some_and(|h| h.is_empty()), "no release was recorded");
}

/// Two controllers (two workspaces, two ledgers) migrate one database through a pooler
/// in transaction mode, at once and one after the other. Nothing lastgood relies on may
/// outlive a transaction there: a session's advisory lock, `SET` or prepared statement
/// stays with a server connection that the next transaction may not get.
#[test]
fn migrations_run_through_pgbouncer_in_transaction_mode() {
    let bouncer = PgBouncer::start();
    let db = PgDb::new("pooler");
    let url = bouncer.url(&db.name);
    let a = env_with(Database::url(&url));
    let b = env_with(Database::url(&url));

    a.test().args(["db", "up", "production"]).stdout_has("applied 3 migration(s)").run();
    assert_eq!(applied(&db), "1,2,3");
    a.test().args(["db", "status", "production"]).stdout_has("applied: 3, pending: 0").run();
    a.test().args(["db", "history", "production"]).stdout_has("2_idx").run();
    // Down, through the index built outside a transaction.
    b.test().args(["db", "down", "production", "--steps", "2"]).run();
    assert_eq!(applied(&db), "1");
    assert_eq!(db.sql("SELECT count(*) FROM pg_indexes WHERE indexname = 't_a'"), "0");

    // Both at once: each migration runs once, whoever gets to it.
    for _ in 0..3 {
        let runs: Vec<_> = [&a, &b]
            .iter()
            .map(|env| {
                let mut cmd = env.cmd(&["db", "up", "production"]);
                cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap()
            })
            .collect();
        for r in runs {
            let out = r.wait_with_output().unwrap();
            assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), bouncer.log());
        }
        assert_eq!(applied(&db), "1,2,3");
        assert_eq!(db.sql("SELECT count(*) FROM pg_indexes WHERE indexname = 't_a'"), "1");
        b.test().args(["db", "down", "production", "--steps", "2"]).run();
    }
    // No lock stayed behind on a pooled server connection.
    let held = "SELECT coalesce(string_agg(a.application_name || ' ' || a.state, ', '), '') FROM pg_locks l \
                JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.database = \
                (SELECT oid FROM pg_database WHERE datname = current_database())";
    assert_eq!(db.sql(held), "");
    assert!(!bouncer.log().contains("prepared statement"), "{}", bouncer.log());
}
