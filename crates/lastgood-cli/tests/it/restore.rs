//! `lastgood db restore`: the emergency restore as one operation under the lock, with
//! the app stopped and started, verified, resumable and undoable, for SQLite and for
//! PostgreSQL from a recorded backup or a team's own plain `pg_dump` file.

use serde_json::json;

use crate::BIN;
use lastgood_testkit::{Config, Database, PgDb, TestEnv, sqlite};

const ORDERS: (&str, &str, &str) = (
    "2024-01-01-000000_orders",
    "CREATE TABLE orders (id integer PRIMARY KEY, what text NOT NULL);\n",
    "DROP TABLE orders;\n",
);

/// v1 with one migration, deployed with its database at `url`.
fn deployed(url: &str) -> TestEnv {
    let mut env = TestEnv::new(BIN);
    let (name, up, down) = ORDERS;
    env.commit_version(
        "v1",
        &[(&format!("migrations/{name}/up.sql"), up), (&format!("migrations/{name}/down.sql"), down)],
    );
    env.configure(&Config::new().database(Database::url(url).migrations("migrations")));
    env.run(&["deploy", "production", "v1", "--reason", "first"]).expect(0);
    env
}

fn orders(env: &TestEnv) -> String {
    sqlite(&env.path().join("app.db"), "SELECT group_concat(what, ',') FROM (SELECT what FROM orders ORDER BY id)")
}

fn app_pid(env: &TestEnv) -> u64 {
    env.status()["app"]["pid"].as_u64().expect("the app runs")
}

#[test]
fn a_sqlite_backup_is_restored_with_the_app_stopped_started_and_verified() {
    let env = deployed("sqlite://app.db");
    sqlite(&env.path().join("app.db"), "INSERT INTO orders VALUES (1, 'tea'), (2, 'cake');");
    let backup = env.run(&["db", "backup", "production", "--format", "json"]).expect(0).json();
    let id = backup["id"].as_u64().unwrap().to_string();
    sqlite(&env.path().join("app.db"), "DELETE FROM orders; INSERT INTO orders VALUES (3, 'corrupt');");
    let pid = app_pid(&env);

    // The preview names the backup and what is lost, and changes nothing.
    let preview = env.run(&["db", "restore", "production", "--id", &id, "--dry-run"]);
    preview.expect(0);
    assert!(preview.stdout.contains("Plan: restore the database of `production`"), "{}", preview.stdout);
    assert!(preview.stdout.contains(&format!("restores backup {id} taken")), "{}", preview.stdout);
    assert!(preview.stdout.contains("every write since the backup was taken"), "{}", preview.stdout);
    for step in ["stop", "restore-db", "restart", "verify", "drop-aside"] {
        assert!(preview.stdout.contains(step), "{step}: {}", preview.stdout);
    }
    let json = env.run(&["db", "restore", "production", "--id", &id, "--dry-run", "--format", "json"]).expect(0).json();
    assert_eq!(json["refusals"][0]["consent"], "--yes", "{json}");
    assert_eq!(orders(&env), "corrupt");

    // Without a terminal or --yes it refuses and says how to consent.
    let refused = env.run(&["db", "restore", "production", "--id", &id, "--reason", "corrupted orders"]);
    refused.expect(4);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(orders(&env), "corrupt");

    let out = env.run(&[
        "db",
        "restore",
        "production",
        "--id",
        &id,
        "--reason",
        "corrupted orders",
        "--yes",
        "--format",
        "json",
    ]);
    out.expect(0);
    let r = out.json();
    assert_eq!(r["kind"], "restore");
    assert_eq!(r["outcome"], "succeeded");
    let names: Vec<&str> = r["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["stop", "restore-db", "restart", "verify", "drop-aside"]);
    assert_eq!(orders(&env), "tea,cake");
    assert_ne!(app_pid(&env), pid, "the app was stopped and started again");
    assert_eq!(env.state_of(1), "good", "a restore changes no release's state");
    let leftovers: Vec<String> = std::fs::read_dir(env.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("lastgood-aside"))
        .collect();
    assert!(leftovers.is_empty(), "the aside copy is dropped once verified: {leftovers:?}");
    let report = env.run(&["report", &r["operation"].to_string()]).expect(0).stdout.clone();
    assert!(report.contains("restore"), "{report}");
    let events = sqlite(&env.path().join(".lastgood/ledger.db"), "SELECT group_concat(event, ',') FROM audit_events");
    assert!(events.contains("db.restore"), "{events}");
}

#[test]
fn bad_sources_are_refused_before_anything_changes() {
    let env = deployed("sqlite://app.db");
    let out = env.run(&["db", "restore", "production", "--from", "no-such.sql", "--yes", "--reason", "x"]);
    out.expect(2);
    assert!(out.stderr.contains("no-such.sql"), "{}", out.stderr);
    env.write("notes.txt", "\u{1}\u{2}binary garbage");
    let out = env.run(&["db", "restore", "production", "--from", "notes.txt", "--yes", "--reason", "x"]);
    out.expect(2);
    assert!(out.stderr.contains("not a dump"), "{}", out.stderr);
    env.write("plain.sql", "-- PostgreSQL database dump\nSELECT 1;\n");
    let out = env.run(&["db", "restore", "production", "--from", "plain.sql", "--yes", "--reason", "x"]);
    out.expect(2);
    assert!(out.stderr.contains("cannot be restored there"), "{}", out.stderr);
    env.run(&["db", "restore", "production", "--id", "99", "--yes", "--reason", "x"]).expect(2);

    // A recorded backup whose file was removed is listed as missing and refused.
    let b = env.run(&["db", "backup", "production", "--format", "json"]).expect(0).json();
    std::fs::remove_file(b["location"].as_str().unwrap()).unwrap();
    let list = env.run(&["db", "backups", "production", "--format", "json"]).expect(0).json();
    assert_eq!(list[0]["missing"], json!(true), "{list}");
    let text = env.run(&["db", "backups", "production"]);
    assert!(text.stdout.contains("MISSING"), "{}", text.stdout);
    let out = env.run(&["db", "restore", "production", "--yes", "--reason", "x"]);
    out.expect(4);
    assert!(out.stderr.contains("no longer exists"), "{}", out.stderr);
    assert_eq!(env.status()["interrupted"], json!(null));
}

#[test]
fn a_plain_pg_dump_is_restored_into_postgres_with_the_app_stopped_and_started() {
    let db = PgDb::new("restore");
    let env = deployed(&db.url);
    db.sql("INSERT INTO orders VALUES (1, 'tea'), (2, 'cake')");
    // The team's own dump, the runbook's way.
    let dump = env.path().join("backup.sql");
    let out = std::process::Command::new("pg_dump")
        .args(["--no-owner", "--no-privileges", "--file"])
        .arg(&dump)
        .arg(&db.url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    db.sql("DELETE FROM orders; INSERT INTO orders VALUES (3, 'corrupt')");
    let pid = app_pid(&env);
    let out = env.run(&[
        "db",
        "restore",
        "production",
        "--from",
        "backup.sql",
        "--yes",
        "--reason",
        "corrupted",
        "--format",
        "json",
    ]);
    out.expect(0);
    assert_eq!(out.json()["outcome"], "succeeded", "{}", out.stderr);
    assert_eq!(db.sql("SELECT string_agg(what, ',' ORDER BY id) FROM orders"), "tea,cake");
    assert_ne!(app_pid(&env), pid);
    // lastgood's bookkeeping came back with the dump: the schema is where it was.
    let st = env.run(&["db", "status", "production", "--format", "json"]).expect(0).json();
    assert_eq!(st["current"]["version"], "2024-01-01-000000", "{st}");
    let aside = db.sql(&format!("SELECT count(*) FROM pg_database WHERE datname LIKE 'lastgood_aside_%_{}'", db.name));
    assert_eq!(aside, "0", "the database before the restore is dropped once verified");
    assert!(!out.stdout.contains(&db.password()) && !out.stderr.contains(&db.password()));
}

#[test]
fn a_restore_killed_at_any_step_is_finished_by_resume_or_undone_by_abort() {
    let mut fps: Vec<String> = Vec::new();
    for step in ["stop", "restore-db", "restart", "verify", "drop-aside"] {
        for at in ["intent", "apply", "done"] {
            fps.push(format!("{at}:{step}"));
        }
    }
    fps.push("mid:restore-db".into());
    for fp in fps {
        for abort in [false, true] {
            let env = deployed("sqlite://app.db");
            sqlite(&env.path().join("app.db"), "INSERT INTO orders VALUES (1, 'tea');");
            let b = env.run(&["db", "backup", "production", "--format", "json"]).expect(0).json();
            let id = b["id"].as_u64().unwrap().to_string();
            sqlite(&env.path().join("app.db"), "DELETE FROM orders; INSERT INTO orders VALUES (2, 'after');");
            let out = env.run_crashing(&fp, &["db", "restore", "production", "--id", &id, "--yes", "--reason", "t"]);
            assert_eq!(out.signal, Some(9), "failpoint {fp} did not fire: {out:?}");
            assert_eq!(env.status()["interrupted"]["kind"], "restore", "{fp}");
            let args: &[&str] = if abort { &["resume", "production", "--abort"] } else { &["resume", "production"] };
            let r = env.run(args);
            r.expect(0);
            let expected = match (abort, fp.as_str()) {
                (false, _) => "tea",
                // Once the verified restore dropped the database it replaced, there is
                // nothing to put back: the restore stands.
                (true, "apply:drop-aside" | "done:drop-aside") => "tea",
                // Otherwise an abort puts back what was there before, even after the
                // restored data had been swapped in and verified.
                (true, _) => "after",
            };
            assert_eq!(orders(&env), expected, "{fp} abort={abort}: {}", r.stderr);
            let st = env.status();
            assert_eq!((st["lock"].clone(), st["interrupted"].clone()), (json!(null), json!(null)), "{fp}");
            assert!(st["app"]["pid"].as_u64().is_some(), "{fp} abort={abort}: the app runs again: {st}");
            env.run(&["audit", "verify"]).expect(0);
        }
    }
}

#[test]
fn a_postgres_restore_killed_between_its_renames_is_finished_or_undone() {
    for fp in ["mid:restore-db", "mid:restore-db-swap", "done:restore-db", "intent:drop-aside"] {
        for abort in [false, true] {
            let db = PgDb::new("restorecrash");
            let env = deployed(&db.url);
            db.sql("INSERT INTO orders VALUES (1, 'tea')");
            let b = env.run(&["db", "backup", "production", "--format", "json"]).expect(0).json();
            let id = b["id"].as_u64().unwrap().to_string();
            db.sql("DELETE FROM orders; INSERT INTO orders VALUES (2, 'after')");
            let out = env.run_crashing(fp, &["db", "restore", "production", "--id", &id, "--yes", "--reason", "t"]);
            assert_eq!(out.signal, Some(9), "failpoint {fp} did not fire: {out:?}");
            let args: &[&str] = if abort { &["resume", "production", "--abort"] } else { &["resume", "production"] };
            let r = env.run(args);
            r.expect(0);
            let expected = if abort { "after" } else { "tea" };
            assert_eq!(
                db.sql("SELECT string_agg(what, ',' ORDER BY id) FROM orders"),
                expected,
                "{fp} abort={abort}: {}",
                r.stderr
            );
            let left = db.sql(&format!(
                "SELECT count(*) FROM pg_database WHERE datname ~ '^lastgood_(aside|restore)_' AND position('{}' in datname) > 0",
                db.name
            ));
            assert_eq!(left, "0", "{fp} abort={abort}: nothing of the restore is left on the server");
        }
    }
}
