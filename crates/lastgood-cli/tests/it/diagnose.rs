//! `diff` and `diagnose` on releases that changed code only, config only, the schema
//! only, and all three.

use crate::{BIN, deploy_ok};
use lastgood_testkit::TestEnv;

/// v1 with one migration, deployed and good.
fn base() -> TestEnv {
    let mut env = TestEnv::new(BIN);
    env.commit_version(
        "v1",
        &[("migrations/1_t/up.sql", "CREATE TABLE t (a int);\n"), ("migrations/1_t/down.sql", "DROP TABLE t;\n")],
    );
    env.write_config("[environments.production.database]\nurl = \"sqlite://app.db\"\nmigrations = \"migrations\"\n");
    deploy_ok(&env, "v1");
    env
}

fn diagnose(env: &TestEnv) -> serde_json::Value {
    env.run(&["diagnose", "production", "--format", "json"]).expect(0).json()
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
    let text = env.run(&["diagnose", "production"]).expect(0).stdout.clone();
    assert!(text.contains("code:      CHANGED") && text.contains("recommended scope: code"), "{text}");
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
    let cfg =
        std::fs::read_to_string(env.path().join("lastgood.toml")).unwrap().replace("expect_body = \"{version}\"\n", "");
    env.write("lastgood.toml", &cfg);
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

    let out = env.run(&["diff", "production", "1", "#2"]);
    out.expect(0);
    assert!(out.stdout.contains("Release v2") && out.stdout.contains("`GREETING`"), "{}", out.stdout);
    let j = env.run(&["diff", "production", "v1", "v2", "--format", "json"]).expect(0).json();
    assert_eq!(j["from"]["id"], 1);
    assert_eq!(j["diff"]["commits_added"].as_array().unwrap().len(), 1);
    env.run(&["diff", "production", "1", "9"]).expect(2);
}

#[test]
fn nothing_to_diagnose_without_a_last_good_release() {
    let env = base();
    let out = env.run(&["diagnose", "production"]);
    out.expect(2);
    assert!(out.stderr.contains("no good release"), "{}", out.stderr);
}
