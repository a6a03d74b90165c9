//! `diff` and `diagnose` on releases that changed code only, config only (between
//! releases, or edited in place), the schema only, several of them, nothing, or what
//! cannot be told; each recommended command is then run as printed, by a shell.

use std::process::{Command, Stdio};

use crate::{BIN, deploy_ok};
use lastgood_testkit::{Check, Config, Database, Run, TestEnv, sqlite};

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

/// `diagnose` in text: its last line is the command, which a shell then runs exactly as
/// printed (with `lastgood` on PATH, in the same folder), and which must exit 0.
fn run_the_recommendation(env: &TestEnv) -> (String, Run) {
    let text = env.test().args(["diagnose", "production"]).run().stdout;
    let lines: Vec<&str> = text.lines().collect();
    let (decision, command) = (lines[lines.len() - 2], lines[lines.len() - 1]);
    assert!(decision.starts_with("decision: "), "the decision comes before the command:\n{text}");
    assert!(command.starts_with("lastgood "), "the last line is the command:\n{text}");
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("sh")
        .args(["-c", command])
        .current_dir(env.path())
        .env("PATH", path)
        .env("LASTGOOD_USER", "tester")
        .env_remove("LASTGOOD_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("sh");
    let run = Run::from(out);
    assert_eq!(run.code, Some(0), "`{command}` exited {:?}:\n{}\n{}", run.code, run.stdout, run.stderr);
    (command.to_owned(), run)
}

#[test]
fn code_only() {
    let mut env = base();
    env.commit_version("v2", &[("src/app.txt", "new code")]);
    deploy_ok(&env, "v2");
    let d = diagnose(&env);
    assert_eq!(verdict(&d), (true, false, false, "code".into()), "{d}");
    assert_eq!(d["issue"], "code");
    assert_eq!(d["target"], 1);
    assert!(d["command"].as_str().unwrap().contains("--scope code"));
    env.test()
        .args(["diagnose", "production"])
        .stdout_has("code:      CHANGED")
        .stdout_has("decision: code -> roll back the code to #1 (v1)\n")
        .run();
    let (command, _) = run_the_recommendation(&env);
    assert!(command.contains(" --reason \"diagnose: code changed since"), "{command}");
    assert!(!command.contains("--to"), "the last good release is the default target: {command}");
    assert_eq!(env.serving().as_deref(), Some("v1"));
    assert_eq!((env.state_of(1).as_str(), env.state_of(2).as_str()), ("good", "bad"));
}

#[test]
fn config_between_releases() {
    let env = base();
    env.write("app.env", "HEALTH=ok\nGREETING=howdy\nAPI_TOKEN=s3cret-value\n");
    deploy_ok(&env, "v1");
    let d = diagnose(&env);
    assert_eq!(verdict(&d), (false, true, false, "config".into()), "{d}");
    assert_eq!((d["issue"].as_str(), d["config_between_releases"].as_bool()), (Some("configuration"), Some(true)));
    let keys = d["diff"]["config"][0]["keys"].as_array().unwrap();
    assert!(keys.iter().any(|k| k["key"] == "API_TOKEN" && k["masked"] == true), "{d}");
    assert!(!d.to_string().contains("s3cret-value"));
    env.test()
        .args(["diagnose", "production"])
        .stdout_has("  config:    CHANGED (between #1 and #2)\n")
        .stdout_has("- `app.env` changed")
        .stdout_lacks("s3cret")
        .run();

    let (command, _) = run_the_recommendation(&env);
    assert!(command.contains(" --scope config ") && !command.contains("--to"), "{command}");
    assert_eq!(std::fs::read_to_string(env.path().join("app.env")).unwrap(), "HEALTH=ok\n", "#1's config is back");
    assert_eq!(env.get("/").as_deref(), Some("hello from v1"), "and the app restarted on it");
    assert_eq!((env.state_of(1).as_str(), env.state_of(2).as_str()), ("good", "good"), "no code moved");
}

#[test]
fn config_edited_in_place_agrees_with_its_section_and_restores_the_current_release() {
    let env = base();
    env.write("app.env", "HEALTH=ok\nGREETING=hi\nAPI_TOKEN=s3cret-value\n");
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v1");
    let d = diagnose(&env);
    assert_eq!(d["issue"], "none", "#2 and #3 are the same: {d}");
    env.write("app.env", "HEALTH=ok\nGREETING=changed by hand\nAPI_TOKEN=s3cret-other\n");
    let d = diagnose(&env);
    assert_eq!(verdict(&d), (false, true, false, "config".into()), "{d}");
    assert_eq!(d["config_between_releases"], false);
    assert_eq!(d["config_edited_since_deploy"], serde_json::json!(["app.env"]));
    let keys = d["config_in_place"][0]["keys"].as_array().unwrap();
    assert!(keys.iter().any(|k| k["key"] == "GREETING" && k["from"] == "hi" && k["to"] == "changed by hand"), "{d}");
    assert_eq!(d["target"], 3, "the current release's own snapshot");
    // The verdict and the config section say the same thing.
    env.test()
        .args(["diagnose", "production"])
        .stdout_has("  config:    CHANGED (edited in place since #3 was deployed: app.env)\n")
        .stdout_has("#3 as deployed is the last good state: only the edits below differ from it.\n")
        .stdout_has("Edited in place since #3 was deployed")
        .stdout_has("  - `GREETING`: `hi` -> `changed by hand`\n")
        .stdout_has("decision: configuration -> put back the config files of #3 (v1) and restart")
        .stdout_lacks("s3cret")
        .run();

    let pid = env.app_pid();
    let (command, _) = run_the_recommendation(&env);
    assert!(command.contains(" --to 3 --scope config "), "{command}");
    assert_eq!(
        std::fs::read_to_string(env.path().join("app.env")).unwrap(),
        "HEALTH=ok\nGREETING=hi\nAPI_TOKEN=s3cret-value\n"
    );
    assert_ne!(env.app_pid(), pid, "the app was restarted");
    assert_eq!(env.get("/").as_deref(), Some("hi from v1"));
    assert_eq!(
        [env.state_of(1), env.state_of(2), env.state_of(3)],
        ["good", "good", "good"],
        "no release changes state"
    );
    assert_eq!(diagnose(&env)["issue"], "none");
}

/// A current release marked bad by hand: putting its config back means confirming it.
#[test]
fn a_target_that_needs_confirming_gets_yes() {
    let env = base();
    deploy_ok(&env, "v1");
    env.test().args(["mark", "production", "2", "bad", "--reason", "t"]).run();
    env.write("app.env", "HEALTH=ok\nGREETING=by hand\n");
    let d = diagnose(&env);
    assert_eq!((d["issue"].as_str(), d["target"].as_u64()), (Some("configuration"), Some(2)), "{d}");
    assert!(d["explanation"].as_str().unwrap().contains("--yes confirms"), "{d}");
    assert_eq!(d["refusals"][0]["consent"], "--yes");
    let (command, _) = run_the_recommendation(&env);
    assert!(command.ends_with(" --yes"), "{command}");
    assert_eq!(std::fs::read_to_string(env.path().join("app.env")).unwrap(), "HEALTH=ok\n");
}

#[test]
fn schema_only() {
    let mut env = base();
    env.commit_version(
        "v2",
        &[("migrations/2_i/up.sql", "CREATE INDEX t_a ON t (a);\n"), ("migrations/2_i/down.sql", "DROP INDEX t_a;\n")],
    );
    only_migrations_differ(&mut env);
    deploy_ok(&env, "v2b");
    let d = diagnose(&env);
    assert_eq!(verdict(&d), (false, false, true, "db".into()), "{d}");
    assert_eq!(d["diff"]["schema"]["to"], "2");
    let (command, _) = run_the_recommendation(&env);
    assert!(command.contains(" --scope db ") && !command.contains("--allow-data-loss"), "{command}");
    assert!(!sqlite(&env.path().join("app.db"), ".indexes t").contains("t_a"), "the index is gone");
    assert_eq!(env.serving().as_deref(), Some("v1"));
}

/// A down that destroys data: the command consents, and the explanation says why.
#[test]
fn schema_only_with_a_destructive_down_consents_to_data_loss() {
    let mut env = base();
    env.commit_version(
        "v2",
        &[
            ("migrations/2_b/up.sql", "ALTER TABLE t ADD COLUMN b int;\n"),
            ("migrations/2_b/down.sql", "ALTER TABLE t DROP COLUMN b;\n"),
        ],
    );
    only_migrations_differ(&mut env);
    deploy_ok(&env, "v2b");
    let d = diagnose(&env);
    assert_eq!(verdict(&d), (false, false, true, "db".into()), "{d}");
    assert!(d["explanation"].as_str().unwrap().contains("destroys data: --allow-data-loss consents"), "{d}");
    assert_eq!(d["refusals"][0]["consent"], "--allow-data-loss");
    let (command, _) = run_the_recommendation(&env);
    assert!(command.contains(" --scope db ") && command.ends_with(" --allow-data-loss"), "{command}");
    assert!(!sqlite(&env.path().join("app.db"), "PRAGMA table_info(t)").contains("|b|"), "the column is gone");
}

/// Tags `v2b`: v2's migrations with v1's VERSION file, so that only migrations differ
/// from v1; the app still says v1, so the check does not expect the tag's name.
fn only_migrations_differ(env: &mut TestEnv) {
    env.write("repo/VERSION", "v1\n");
    env.git(&["commit", "-qam", "Back to the v1 VERSION file: only a migration differs"], &env.repo());
    env.git(&["tag", "v2b"], &env.repo());
    env.configure(&config().checks(vec![Check::health().without("expect_body")]));
}

#[test]
fn several_mean_a_full_rollback_and_diff_between_any_two_releases() {
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
    assert_eq!(d["issue"], "several");

    env.test().args(["diff", "production", "1", "#2"]).stdout_has("Release v2").stdout_has("`GREETING`").run();
    let j = env.test().args(["diff", "production", "v1", "v2", "--format", "json"]).run().json();
    assert_eq!(j["from"]["id"], 1);
    assert_eq!(j["diff"]["commits_added"].as_array().unwrap().len(), 1);
    env.test().args(["diff", "production", "1", "9"]).status(2).run();

    let (command, _) = run_the_recommendation(&env);
    assert!(command.contains(" --scope full "), "{command}");
    assert_eq!(env.serving().as_deref(), Some("v1"));
}

/// The source repository moved away: what changed cannot be told, so the whole way back.
#[test]
fn unknown_means_a_full_rollback() {
    let mut env = base();
    env.commit_version("v2", &[("src/app.txt", "x")]);
    deploy_ok(&env, "v2");
    std::fs::rename(env.repo().join(".git"), env.path().join("git-moved")).unwrap();
    let d = diagnose(&env);
    assert_eq!((d["issue"].as_str(), d["scope"].as_str()), (Some("unknown"), Some("full")), "{d}");
    assert!(d["unknown"][0].as_str().unwrap().contains("cannot compare the commits"), "{d}");
    let (command, _) = run_the_recommendation(&env);
    assert!(command.contains(" --scope full "), "{command}");
    assert_eq!(env.serving().as_deref(), Some("v1"));
}

#[test]
fn nothing_changed_recommends_no_rollback() {
    let env = base();
    deploy_ok(&env, "v1");
    let d = diagnose(&env);
    assert_eq!((d["issue"].as_str(), d["scope"].is_null(), d["command"].is_null()), (Some("none"), true, true));
    let out = env.test().args(["diagnose", "production"]).run();
    assert!(
        out.stdout.ends_with(
            "decision: nothing to roll back: nothing lastgood deploys changed since the last good release #1 (v1)\n"
        ),
        "{}",
        out.stdout
    );
}

#[test]
fn nothing_to_diagnose_without_a_last_good_release() {
    let env = base();
    env.test().args(["diagnose", "production"]).status(2).stderr_has("no good release").run();
}

/// A release that adds only an Alembic revision is a database change: Alembic's scripts
/// are where its alembic.ini says, not in a `migrations` folder.
#[test]
fn a_release_that_only_adds_an_alembic_revision_is_a_database_change() {
    use crate::alembic::{alembic_revision, commit_alembic_versions};
    let mut env = TestEnv::new(BIN);
    let first = alembic_revision("0001", None, Some("t"), "CREATE TABLE t (a integer)", "DROP TABLE t");
    commit_alembic_versions(&mut env, &[("v1", "0001_t.py", first)]);
    env.configure(
        &Config::new()
            .database(Database::url("sqlite://app.db").adapter("alembic"))
            .checks(vec![Check::health().without("expect_body")]),
    );
    deploy_ok(&env, "v1");
    let second = alembic_revision("0002", Some("0001"), Some("i"), "CREATE INDEX t_a ON t (a)", "DROP INDEX t_a");
    env.write("repo/alembic/versions/0002_i.py", &second);
    env.git(&["add", "-A"], &env.repo());
    env.git(&["commit", "-qm", "An index"], &env.repo());
    env.git(&["tag", "v2"], &env.repo());
    deploy_ok(&env, "v2");
    let d = diagnose(&env);
    assert_eq!(verdict(&d), (false, false, true, "db".into()), "{d}");
    let (command, _) = run_the_recommendation(&env);
    assert!(command.contains(" --scope db "), "{command}");
}
