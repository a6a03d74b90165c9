//! Readiness: `status` says whether the way back to the last good release is proven
//! (its artifact, a clean rehearsal of the schema's down path, a backup when that path
//! is destructive) and `deploy --require-ready` refuses when it is not.

use serde_json::json;

use lastgood_testkit::{Config, Database, TestEnv};

use crate::{BIN, deploy_ok, env_with_versions};

#[test]
fn a_removed_release_directory_makes_the_way_back_not_ready_and_require_ready_refuses() {
    let mut env = env_with_versions(2);
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v2");
    let s = env.status();
    assert_eq!(s["readiness"], json!({ "target": 1, "ready": true, "reasons": [] }));
    assert_eq!(s["rollback_ready"], true);

    std::fs::remove_dir_all(env.deploy_to().join("releases/1")).unwrap();
    let s = env.status();
    assert_eq!(s["readiness"]["target"], 1);
    assert_eq!(s["readiness"]["ready"], false);
    assert!(s["readiness"]["reasons"][0].as_str().unwrap().contains("release directory of #1"), "{s}");
    assert_eq!(s["rollback_ready"], false);

    env.commit_version("v3", &[]);
    // v2 serves but is marked bad: a failed v3 would return to #1, which is gone.
    env.run(&["mark", "production", "2", "bad", "--reason", "slow"]).expect(0);
    env.test()
        .args(["deploy", "production", "v3", "--reason", "careful", "--require-ready"])
        .status(4)
        .stderr_has("the way back is not ready (to #1)")
        .stderr_has("release directory of #1")
        .stderr_has("nothing was changed")
        .run();
    assert_eq!(env.history().as_array().unwrap().len(), 2, "nothing was recorded");
    assert!(!env.deploy_to().join("releases/3").exists(), "nothing was exported");
    assert_eq!(env.serving().as_deref(), Some("v2"));
    // Without the flag the deploy goes ahead (and says nothing changed about readiness).
    deploy_ok(&env, "v3");
}

/// v1 adds a table, v2 an index whose down script is broken.
fn broken_down_env() -> TestEnv {
    let mut env = TestEnv::new(BIN);
    env.commit_version(
        "v1",
        &[
            ("migrations/2024-01-01-000000_users/up.sql", "CREATE TABLE users (id integer PRIMARY KEY, name text);\n"),
            ("migrations/2024-01-01-000000_users/down.sql", "DROP TABLE users;\n"),
        ],
    );
    env.commit_version(
        "v2",
        &[
            ("migrations/2024-02-01-000000_name/up.sql", "CREATE INDEX users_name ON users (name);\n"),
            ("migrations/2024-02-01-000000_name/down.sql", "DROP INDEX no_such_index;\n"),
        ],
    );
    env.commit_version("v3", &[("migrations/2024-02-01-000000_name/down.sql", "DROP INDEX users_name;\n")]);
    env.configure(
        &Config::new().database(Database::sqlite("app.db").migrations("migrations").key("rehearse", "deploy")),
    );
    env
}

#[test]
fn a_failed_rehearsal_at_deploy_time_refuses_a_deploy_that_requires_readiness() {
    let env = broken_down_env();
    deploy_ok(&env, "v1");
    env.test()
        .args(["deploy", "production", "v2", "--reason", "index", "--require-ready"])
        .status(4)
        .stderr_has("rehearsed the way back of v2 on a scratch database")
        .stderr_has("FAILED")
        .stderr_has("failed its rehearsal")
        .run();
    assert_eq!(env.status()["current"]["id"], 1, "nothing was changed");
    // v3 fixes the down script: its rehearsal is clean, recorded, and status says ready.
    env.test()
        .args(["deploy", "production", "v3", "--reason", "index, fixed", "--require-ready"])
        .stderr_has("2024-02-01-000000 down to 2024-01-01-000000 clean")
        .run();
    let s = env.status();
    assert_eq!(s["readiness"], json!({ "target": 1, "ready": true, "reasons": [] }), "{s}");
}

#[test]
fn a_schema_change_never_rehearsed_is_not_ready_until_db_rehearse_proves_it() {
    let env = broken_down_env();
    env.configure(&Config::new().database(Database::sqlite("app.db").migrations("migrations")));
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v3");
    let s = env.status();
    assert_eq!(s["readiness"]["ready"], false, "{s}");
    assert!(s["readiness"]["reasons"][0].as_str().unwrap().contains("never rehearsed"), "{s}");
    env.run(&["db", "rehearse", "production"]).expect(0);
    assert_eq!(env.status()["readiness"]["ready"], true);
    env.test().args(["status", "production"]).stdout_has("rollback:  ready").run();
}

#[test]
fn a_destructive_way_back_is_ready_only_with_a_backup_of_the_schema_it_undoes() {
    let mut env = TestEnv::new(BIN);
    env.commit_version(
        "v1",
        &[
            ("migrations/2024-01-01-000000_users/up.sql", "CREATE TABLE users (id integer PRIMARY KEY);\n"),
            ("migrations/2024-01-01-000000_users/down.sql", "DROP TABLE users;\n"),
        ],
    );
    env.commit_version(
        "v2",
        &[
            ("migrations/2024-02-01-000000_audit/up.sql", "CREATE TABLE audit (id integer PRIMARY KEY, what text);\n"),
            ("migrations/2024-02-01-000000_audit/down.sql", "DROP TABLE audit;\n"),
        ],
    );
    env.configure(
        &Config::new().database(Database::sqlite("app.db").migrations("migrations").key("rehearse", "deploy")),
    );
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v2");
    let s = env.status();
    assert_eq!(s["readiness"]["ready"], false, "{s}");
    let reason = s["readiness"]["reasons"][0].as_str().unwrap();
    assert!(reason.contains("is destructive (2024-02-01-000000_audit)"), "{reason}");
    assert!(reason.contains("lastgood db backup production"), "{reason}");
    env.run(&["db", "backup", "production"]).expect(0);
    assert_eq!(env.status()["readiness"], json!({ "target": 1, "ready": true, "reasons": [] }));
}
