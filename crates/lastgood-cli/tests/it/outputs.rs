//! The main commands' whole outputs, text and JSON, as people and scripts read them:
//! the user-facing contract (SPEC.md), pinned as snapshots. A change here is a change
//! users see; review the `.snap` diff as such.

use lastgood_testkit::{Config, Database, TestEnv};

use crate::{deploy_ok, pinned_env_with_versions};

/// v1, v2, v3 deployed and good; v3 current; clock and machine pinned.
fn three_good() -> TestEnv {
    crate::three_good(pinned_env_with_versions(3))
}

#[test]
fn deploy_text_json_and_dry_run() {
    let env = pinned_env_with_versions(2);
    let out = env.test().args(["deploy", "production", "v1", "--dry-run"]).run();
    snapshot!("deploy_dry_run", env, out);
    let out = env.test().args(["deploy", "production", "v1", "--dry-run", "--format", "json"]).run();
    snapshot!("deploy_dry_run_json", env, out);
    let out = env.test().args(["deploy", "production", "v1", "--reason", "first"]).run();
    snapshot!("deploy", env, out);
    let out = env.test().args(["deploy", "production", "v2", "--reason", "second", "--format", "json"]).run();
    snapshot!("deploy_json", env, out);
}

#[test]
fn a_failed_deploy_its_automatic_rollback_and_its_report() {
    let mut env = pinned_env_with_versions(1);
    deploy_ok(&env, "v1");
    env.commit_version("v2", &[]);
    env.commit_version("v3", &[]);
    env.write("app.env", "HEALTH=fail\n");
    let out = env.test().args(["deploy", "production", "v2", "--reason", "ship v2"]).status(1).run();
    snapshot!("deploy_failed_rolled_back", env, out);
    env.write("app.env", "HEALTH=fail\n");
    let out = env.test().args(["deploy", "production", "v3", "--format", "json"]).status(1).run();
    snapshot!("deploy_failed_rolled_back_json", env, out);
    let out = env.test().args(["report", "2"]).run();
    snapshot!("report_md", env, out);
    let out = env.test().args(["report", "2", "--format", "json"]).run();
    snapshot!("report_json", env, out);
}

#[test]
fn rollback_plan_run_and_nothing_to_do() {
    let env = three_good();
    let out = env.test().args(["rollback", "production", "--dry-run"]).run();
    snapshot!("rollback_dry_run", env, out);
    let out = env.test().args(["rollback", "production", "--dry-run", "--format", "json"]).run();
    snapshot!("rollback_dry_run_json", env, out);
    let out = env.test().args(["rollback", "production", "--reason", "v3 is slow"]).run();
    snapshot!("rollback", env, out);
    let out = env.test().args(["rollback", "production", "--reason", "v2 too", "--format", "json"]).run();
    snapshot!("rollback_json", env, out);
    let out = env.test().args(["rollback", "production", "--to", "1"]).run();
    snapshot!("rollback_nothing_to_do", env, out);
    let out = env.test().args(["rollback", "production", "--to", "1", "--format", "json"]).run();
    snapshot!("rollback_nothing_to_do_json", env, out);
}

#[test]
fn status_history_verify_lock_and_unlock() {
    let env = three_good();
    for (name, args) in [
        ("status", &["status", "production"][..]),
        ("status_json", &["status", "production", "--format", "json"]),
        ("history", &["history", "production"]),
        ("history_json", &["history", "production", "--format", "json"]),
        ("verify", &["verify", "production"]),
        ("verify_json", &["verify", "production", "--format", "json"]),
        ("lock", &["lock", "production", "--reason", "incident 42"]),
        ("status_locked", &["status", "production"]),
        ("status_locked_json", &["status", "production", "--format", "json"]),
        ("unlock", &["unlock", "production"]),
        ("unlock_not_locked", &["unlock", "production"]),
        ("lock_json", &["lock", "production", "--reason", "incident 43", "--format", "json"]),
        ("unlock_json", &["unlock", "production", "--format", "json"]),
    ] {
        let out = env.test().args(args).run();
        snapshot!(name, env, out);
    }
}

#[test]
fn mark_resume_and_audit_verify() {
    let env = pinned_env_with_versions(1);
    deploy_ok(&env, "v1");
    for (name, args) in [
        ("mark", &["mark", "production", "1", "bad", "--reason", "data bug"][..]),
        ("mark_json", &["mark", "production", "#1", "good", "--format", "json"]),
        ("resume_nothing", &["resume", "production"]),
        ("resume_nothing_json", &["resume", "production", "--format", "json"]),
        ("audit_verify", &["audit", "verify"]),
        ("audit_verify_json", &["audit", "verify", "--format", "json"]),
    ] {
        let out = env.test().args(args).run();
        snapshot!(name, env, out);
    }
}

/// v1 has one migration; v2 changes code, a config key, a secret and the schema.
#[test]
fn diff_diagnose_and_db_status() {
    let mut env = TestEnv::new(crate::BIN);
    env.pin_context();
    env.commit_version(
        "v1",
        &[("migrations/1_t/up.sql", "CREATE TABLE t (a int);\n"), ("migrations/1_t/down.sql", "DROP TABLE t;\n")],
    );
    env.configure(&Config::new().database(Database::sqlite("app.db").migrations("migrations")));
    env.write("app.env", "HEALTH=ok\nGREETING=hi\nAPI_TOKEN=s3cret-one\n");
    deploy_ok(&env, "v1");
    env.commit_version(
        "v2",
        &[
            ("src/app.txt", "new code"),
            ("migrations/2_i/up.sql", "CREATE INDEX t_a ON t (a);\n"),
            ("migrations/2_i/down.sql", "DROP INDEX t_a;\n"),
        ],
    );
    env.write("app.env", "HEALTH=ok\nGREETING=hey\nAPI_TOKEN=s3cret-two\n");
    deploy_ok(&env, "v2");
    for (name, args) in [
        ("diff", &["diff", "production", "1", "2"][..]),
        ("diff_json", &["diff", "production", "1", "2", "--format", "json"]),
        ("diagnose", &["diagnose", "production"]),
        ("diagnose_json", &["diagnose", "production", "--format", "json"]),
        ("db_status", &["db", "status", "production"]),
        ("db_status_json", &["db", "status", "production", "--format", "json"]),
        ("db_history_json", &["db", "history", "production", "--format", "json"]),
    ] {
        let out = env.test().args(args).stdout_lacks("s3cret").run();
        snapshot!(name, env, out);
    }
}
