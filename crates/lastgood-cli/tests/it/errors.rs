//! One error of each kind, whole: the message, what caused it, the hint and the exit
//! code (SPEC.md), as a newcomer meets them. Each one is also a promise that nothing
//! was changed where the exit code says so.

use lastgood_testkit::{Config, Database, TestEnv};

use crate::{deploy_ok, pinned_env_with_versions};

#[test]
fn config_not_found() {
    let env = pinned_env_with_versions(0);
    std::fs::remove_file(env.path().join("lastgood.toml")).unwrap();
    let out = env.test().args(["status"]).status(2).run();
    snapshot!("config_not_found", env, out);
}

#[test]
fn config_error_names_file_line_and_column() {
    let env = pinned_env_with_versions(1);
    env.write("lastgood.toml", "[environments.production]\ndeploy_to = \"srv\"\nkeep_releases = \"five\"\n");
    let out = env.test().args(["deploy", "production", "v1"]).status(2).run();
    snapshot!("config_error", env, out);
}

#[test]
fn unknown_environment() {
    let env = pinned_env_with_versions(1);
    let out = env.test().args(["deploy", "staging", "v1"]).status(2).run();
    snapshot!("unknown_environment", env, out);
}

#[test]
fn unknown_and_invalid_versions() {
    let env = pinned_env_with_versions(1);
    let out = env.test().args(["deploy", "production", "v9"]).status(2).run();
    snapshot!("unknown_version", env, out);
    let out = env.test().args(["deploy", "--", "production", "--upload-pack=x"]).status(2).run();
    snapshot!("invalid_version", env, out);
    assert!(!env.deploy_to().exists(), "nothing was changed");
}

#[test]
fn unknown_target_lists_the_candidates() {
    let env = pinned_env_with_versions(2);
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v2");
    let out = env.test().args(["rollback", "production", "--to", "v9", "--reason", "t"]).status(2).run();
    snapshot!("unknown_target", env, out);
    let out = env.test().args(["rollback", "production", "--to=--upload-pack=x", "--reason", "t"]).status(2).run();
    snapshot!("invalid_target", env, out);
    let out = env.test().args(["rollback", "production"]).status(2).run();
    snapshot!("rollback_without_a_reason", env, out);
}

#[test]
fn locked_by_hand() {
    let env = pinned_env_with_versions(2);
    deploy_ok(&env, "v1");
    env.test().args(["lock", "production", "--reason", "incident 42"]).run();
    let out = env.test().args(["deploy", "production", "v2"]).status(3).run();
    snapshot!("locked", env, out);
}

#[test]
fn refused_bad_target_without_yes() {
    let env = pinned_env_with_versions(2);
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v2");
    env.test().args(["mark", "production", "1", "bad"]).run();
    let out = env.test().args(["rollback", "production", "--to", "1", "--reason", "t"]).status(4).run();
    snapshot!("refused_unconfirmed_target", env, out);
}

#[test]
fn refused_missing_release_directory() {
    let env = pinned_env_with_versions(2);
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v2");
    std::fs::remove_dir_all(env.deploy_to().join("releases/1")).unwrap();
    let out = env.test().args(["rollback", "production", "--reason", "t"]).status(4).run();
    snapshot!("refused_missing_release_directory", env, out);
}

#[test]
fn refused_destructive_down_without_consent() {
    let mut env = TestEnv::new(crate::BIN);
    env.pin_context();
    env.commit_version("v1", &[]);
    env.commit_version(
        "v2",
        &[
            ("migrations/1_audit/up.sql", "CREATE TABLE audit_log (id integer PRIMARY KEY);\n"),
            ("migrations/1_audit/down.sql", "DROP TABLE audit_log;\n"),
        ],
    );
    env.configure(&Config::new().database(Database::sqlite("app.db").migrations("migrations")));
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v2");
    let out = env.test().args(["rollback", "production", "--reason", "t"]).status(4).run();
    snapshot!("refused_destructive_down", env, out);
}

#[test]
fn interrupted_operation_needs_resume() {
    let env = pinned_env_with_versions(2);
    deploy_ok(&env, "v1");
    let crashed = env.run_crashing("intent:restart", &["deploy", "production", "v2"]);
    assert_eq!(crashed.signal, Some(9), "{crashed:?}");
    let out = env.test().args(["rollback", "production", "--reason", "t"]).status(5).run();
    snapshot!("interrupted", env, out);
}

#[test]
fn a_first_deploy_that_fails_has_nothing_to_return_to() {
    let env = pinned_env_with_versions(1);
    env.write("app.env", "HEALTH=fail\n");
    let out = env.test().args(["deploy", "production", "v1"]).status(1).run();
    snapshot!("first_deploy_failed", env, out);
}
