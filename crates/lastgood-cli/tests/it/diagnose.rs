//! `diff` and `diagnose` on releases that changed code only, config only, the schema
//! only, and all three.

use crate::{BIN, deploy_ok};
use lastgood_testkit::{Check, Config, Database, TestEnv};

/// The default config with a SQLite database migrated from `migrations/`.
fn config() -> Config {
    Config::new().database(Database::sqlite("app.db").migrations("migrations"))
}

/// v1 with one migration, deployed and good.
fn base() -> TestEnv {
    let mut env = TestEnv::new(BIN);
    env.commit_version(
        "v1",
        &[("migrations/1_t/up.sql", "CREATE TABLE t (a int);\n"), ("migrations/1_t/down.sql", "DROP TABLE t;\n")],
    );
    env.configure(&config());
    deploy_ok(&env, "v1");
    env
}

fn diagnose(env: &TestEnv) -> serde_json::Value {
    env.test().args(["diagnose", "production", "--format", "json"]).run().json()
}

fn verdict(d: &serde_json::Value) -> (bool, bool, bool, String) {
    (
        d["code"].as_bool().unwrap(),
        d["config"].as_bool().unwrap(),
        d["database"].as_bool().unwrap(),
        d["scope"].as_str().unwrap_or("none").to_owned(),
    )
}

#[test]
fn code_only() {
    let mut env = base();
    env.commit_version("v2", &[("src/app.txt", "new code")]);
    deploy_ok(&env, "v2");
    let d = diagnose(&env);
    assert_eq!(verdict(&d), (true, false, false, "code".into()), "{d}");
    assert!(d["command"].as_str().unwrap().contains("--scope code"));
    env.test()
        .args(["diagnose", "production"])
        .stdout_has("code:      CHANGED")
        .stdout_has("recommended scope: code")
        .run();
}

#[test]
fn config_only_including_an_edit_after_the_deploy() {
    let env = base();
    env.write("app.env", "HEALTH=ok\nGREETING=howdy\nAPI_TOKEN=s3cret-value\n");
    deploy_ok(&env, "v1");
    let d = diagnose(&env);
    assert_eq!(verdict(&d), (false, true, false, "config".into()), "{d}");
    let keys = d["diff"]["config"][0]["keys"].as_array().unwrap();
    assert!(keys.iter().any(|k| k["key"] == "API_TOKEN" && k["masked"] == true), "{d}");
    assert!(!d.to_string().contains("s3cret-value"));
    // An edit in place after the deploy is a suspect too.
    env.write("app.env", "HEALTH=ok\nGREETING=changed by hand\nAPI_TOKEN=s3cret-value\n");
    let d = diagnose(&env);
    assert_eq!(d["config_edited_since_deploy"], serde_json::json!(["app.env"]));
}

#[test]
fn schema_only() {
    let mut env = base();
    env.commit_version(
        "v2",
        &[("migrations/2_i/up.sql", "CREATE INDEX t_a ON t (a);\n"), ("migrations/2_i/down.sql", "DROP INDEX t_a;\n")],
    );
    env.write("repo/VERSION", "v1\n");
    env.git(&["commit", "-qam", "Back to the v1 VERSION file: only a migration differs"], &env.repo());
    env.git(&["tag", "v2b"], &env.repo());
    // The app still says v1: check health without expecting the tag's name.
    env.configure(&config().checks(vec![Check::health().without("expect_body")]));
    deploy_ok(&env, "v2b");
    let d = diagnose(&env);
    assert_eq!(verdict(&d), (false, false, true, "db".into()), "{d}");
    assert_eq!(d["diff"]["schema"]["to"], "2");
}

#[test]
fn all_three_and_diff_between_any_two_releases() {
    let mut env = base();
    env.commit_version(
        "v2",
        &[
            ("src/app.txt", "x"),
            ("migrations/2_i/up.sql", "CREATE INDEX t_a ON t (a);\n"),
            ("migrations/2_i/down.sql", "DROP INDEX t_a;\n"),
        ],
    );
    env.write("app.env", "HEALTH=ok\nGREETING=hey\n");
    deploy_ok(&env, "v2");
    let d = diagnose(&env);
    assert_eq!(verdict(&d), (true, true, true, "full".into()), "{d}");

    env.test().args(["diff", "production", "1", "#2"]).stdout_has("Release v2").stdout_has("`GREETING`").run();
    let j = env.test().args(["diff", "production", "v1", "v2", "--format", "json"]).run().json();
    assert_eq!(j["from"]["id"], 1);
    assert_eq!(j["diff"]["commits_added"].as_array().unwrap().len(), 1);
    env.test().args(["diff", "production", "1", "9"]).status(2).run();
}

#[test]
fn nothing_to_diagnose_without_a_last_good_release() {
    let env = base();
    env.test().args(["diagnose", "production"]).status(2).stderr_has("no good release").run();
}
