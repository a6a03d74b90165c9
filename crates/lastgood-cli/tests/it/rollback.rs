use serde_json::json;

use crate::{deploy_ok, env_with_versions};

fn three_good() -> lastgood_testkit::TestEnv {
    crate::three_good(env_with_versions(3))
}

#[test]
fn rollback_to_last_good_prints_the_plan_and_marks_the_release_moved_away_from_bad() {
    let env = three_good();
    let out = env.test().args(["rollback", "production", "--reason", "v3 is slow"]).stdout_has("to #2 v2").run();
    assert!(out.stdout.starts_with("Plan: rollback `production` from #3 v3"), "{}", out.stdout);
    assert_eq!(env.serving().as_deref(), Some("v2"));
    assert_eq!(env.current_link(), Some(2));
    assert_eq!(env.state_of(3), "bad");
    assert_eq!(env.state_of(2), "good");
    // last-good now skips the bad #3 and the current #2.
    let r = env.test().args(["rollback", "production", "--format", "json", "--reason", "again"]).run().json();
    assert_eq!(r["to"]["id"], 1);
    assert_eq!(r["from"]["id"], 2);
    assert_eq!(r["kind"], "rollback");
    assert_eq!(r["outcome"], "succeeded");
    assert!(r["operation"].as_u64().is_some());
    assert_eq!(env.serving().as_deref(), Some("v1"));
}

#[test]
fn status_says_whether_the_way_back_is_ready() {
    let env = three_good();
    let st = env.status();
    assert_eq!(st["last_good"]["id"], 2);
    assert_eq!(st["rollback_ready"], true);
    env.test().args(["status", "production"]).stdout_has("rollback:  ready").run();
    std::fs::remove_dir_all(env.deploy_to().join("releases/2")).unwrap();
    assert_eq!(env.status()["rollback_ready"], false);
    env.test().args(["status", "production"]).stdout_has("NOT READY").run();
    env.test().args(["rollback", "production", "--reason", "t"]).status(4).run();
}

#[test]
fn rollback_targets_previous_id_hash_id_and_version() {
    let env = three_good();
    env.test().args(["rollback", "production", "--to", "previous", "--reason", "t"]).run();
    assert_eq!(env.serving().as_deref(), Some("v2"));
    env.test().args(["rollback", "production", "--to", "1", "--reason", "t"]).run();
    assert_eq!(env.serving().as_deref(), Some("v1"));
    // #3 is bad now (moved away from) and newer: needs confirmation.
    env.test().args(["rollback", "production", "--to", "#3", "--reason", "t"]).status(4).stderr_has("--yes").run();
    assert_eq!(env.serving().as_deref(), Some("v1"));
    env.test().args(["rollback", "production", "--to", "#3", "--yes", "--reason", "t"]).run();
    assert_eq!(env.serving().as_deref(), Some("v3"));
    assert_eq!(env.state_of(3), "good", "a release whose checks pass again is good");
    env.test().args(["rollback", "production", "--to", "v2", "--yes", "--reason", "t"]).run();
    assert_eq!(env.serving().as_deref(), Some("v2"));
}

#[test]
fn unknown_targets_list_the_candidates_and_change_nothing() {
    let env = three_good();
    for t in ["9", "#9", "v9", "nope"] {
        env.test().args(["rollback", "production", "--to", t]).status(2).stderr_has("candidate: #3 v3 (good)").run();
    }
    env.test().args(["rollback", "production", "--to", "--upload-pack=x"]).status(2).run();
    assert_eq!(env.serving().as_deref(), Some("v3"));
}

#[test]
fn a_rollback_needs_a_reason() {
    let env = three_good();
    env.test().args(["rollback", "production"]).status(2).stderr_has("--reason").run();
    assert_eq!(env.serving().as_deref(), Some("v3"), "nothing changed");
    env.test().args(["rollback", "production", "--reason", "  "]).status(2).run();
}

#[test]
fn rollback_to_the_current_release_does_nothing() {
    let env = three_good();
    env.test().args(["rollback", "production", "--to", "3"]).stdout_has("nothing to do").run();
    assert_eq!(env.state_of(3), "good");
}

#[test]
fn dry_run_changes_nothing() {
    let env = three_good();
    let plan = env.test().args(["rollback", "production", "--dry-run", "--format", "json"]).run().json();
    assert_eq!(plan["to"]["id"], 2);
    let steps: Vec<_> = plan["steps"].as_array().unwrap().iter().map(|s| s["name"].clone()).collect();
    assert_eq!(steps, [json!("switch"), json!("config"), json!("restart"), json!("verify")]);
    assert_eq!(env.serving().as_deref(), Some("v3"));
    assert_eq!(env.state_of(3), "good");
}

#[test]
fn config_files_are_restored_by_full_and_config_scopes_but_not_by_code() {
    let mut env = env_with_versions(1);
    env.write("app.env", "HEALTH=ok\nGREETING=hi\n");
    deploy_ok(&env, "v1");
    env.commit_version("v2", &[]);
    env.write("app.env", "HEALTH=ok\nGREETING=yo\n");
    deploy_ok(&env, "v2");
    assert_eq!(env.get("/").as_deref(), Some("yo from v2"));

    env.test().args(["rollback", "production", "--scope", "code", "--reason", "t"]).run();
    assert_eq!(env.get("/").as_deref(), Some("yo from v1"), "code scope keeps the config in place");

    env.test().args(["rollback", "production", "--to", "2", "--yes", "--reason", "back"]).run();
    assert_eq!(env.get("/").as_deref(), Some("yo from v2"));

    // #1 is bad now (the code rollback away from it): going back to its config needs --yes.
    env.test().args(["rollback", "production", "--to", "1", "--scope", "config", "--reason", "t"]).status(4).run();
    env.test().args(["rollback", "production", "--to", "1", "--scope", "config", "--yes", "--reason", "t"]).run();
    assert_eq!(env.get("/").as_deref(), Some("hi from v2"), "config scope restores v1's config under v2's code");
    assert_eq!(std::fs::read_to_string(env.path().join("app.env")).unwrap(), "HEALTH=ok\nGREETING=hi\n");
    let st = env.status();
    assert_eq!(st["current"]["id"], 2);
    assert_eq!(st["config_release"], 1);

    env.test().args(["rollback", "production", "--to", "2", "--scope", "full", "--yes", "--reason", "t"]).run();
    assert_eq!(env.get("/").as_deref(), Some("yo from v2"));
}

#[test]
fn verify_fails_with_exit_1_when_the_app_is_down() {
    let env = env_with_versions(1);
    deploy_ok(&env, "v1");
    let pid: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.deploy_to().join(".lastgood/app.pid")).unwrap()).unwrap();
    std::process::Command::new("kill").args(["-9", &pid["pid"].to_string()]).status().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    env.test().args(["verify", "production"]).status(1).stdout_has("UNHEALTHY").run();
}

/// The runbook's "configuration" branch: a config file edited by hand on the server.
/// Rolling the current release's config back puts its snapshot in place, restarts and
/// verifies, and judges no release: the code never moved. (It used to be "nothing to
/// do", since only release ids were compared.)
#[test]
fn config_rollback_of_the_current_release_restores_an_edit_in_place_and_changes_no_state() {
    let env = env_with_versions(2);
    env.write("app.env", "HEALTH=ok\nGREETING=hi\n");
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v2");
    env.write("app.env", "HEALTH=ok\nGREETING=edited by hand\n");
    let pid = env.app_pid();

    let out = env
        .test()
        .args(["rollback", "production", "--to", "2", "--scope", "config", "--reason", "hand edit", "--format", "json"])
        .run()
        .json();
    let steps: Vec<_> = out["steps"].as_array().unwrap().iter().map(|s| s["name"].clone()).collect();
    assert_eq!(steps, [json!("config"), json!("restart"), json!("verify")]);
    assert_eq!(std::fs::read_to_string(env.path().join("app.env")).unwrap(), "HEALTH=ok\nGREETING=hi\n");
    assert_ne!(env.app_pid(), pid, "the app was restarted");
    assert_eq!(env.get("/").as_deref(), Some("hi from v2"));
    assert_eq!([env.state_of(1), env.state_of(2)], ["good", "good"], "no release changes state");
    assert_eq!(env.status()["config_release"], 2);

    let md = env.test().args(["report", &out["operation"].to_string()]).run().stdout;
    assert!(
        md.contains("| Operation | rollback 3 (scope config: a configuration rollback; code and schema untouched) |"),
        "{md}"
    );
    assert!(md.contains("Note: scope config: the code did not move (#2 v2 kept serving)"), "{md}");
    assert!(md.contains("- `app.env` restored\n  - the file in place differed from the snapshot of #2"), "{md}");
    assert!(md.contains("Schema revision unchanged"), "{md}");
    assert!(md.contains("1. `config` restore config files of #2"), "{md}");
    assert!(
        md.contains("- [x] Reverted: the configuration only (scope config; code and schema untouched): step 1 `config` (forward): restored app.env"),
        "{md}"
    );
    assert!(md.contains("- [x] Last good state found: put back the configuration of #2 v2, which is good"), "{md}");

    // Now the files match the snapshot: nothing to do, and no reason needed.
    env.test()
        .args(["rollback", "production", "--to", "2", "--scope", "config"])
        .stdout_has("already in place for scope config: nothing to do")
        .run();
}

/// A config-only fix through an older release's snapshot (the trial's `--to 1 --scope
/// config`) marks no release bad, and its record takes out no commits.
#[test]
fn a_config_rollback_to_an_older_release_marks_nothing_bad() {
    let env = env_with_versions(2);
    env.write("app.env", "HEALTH=ok\nGREETING=hi\n");
    deploy_ok(&env, "v1");
    env.write("app.env", "HEALTH=ok\nGREETING=yo\n");
    deploy_ok(&env, "v2");
    let out = env
        .test()
        .args([
            "rollback",
            "production",
            "--to",
            "1",
            "--scope",
            "config",
            "--reason",
            "yo is wrong",
            "--format",
            "json",
        ])
        .run()
        .json();
    assert_eq!(env.get("/").as_deref(), Some("hi from v2"));
    assert_eq!([env.state_of(1), env.state_of(2)], ["good", "good"], "the good code release stays good");
    let md = env.test().args(["report", &out["operation"].to_string()]).run().stdout;
    assert!(md.contains("(scope config: a configuration rollback; code and schema untouched)"), "{md}");
    assert!(!md.contains("takes out"), "no commit was taken out: {md}");
    assert!(md.contains("  - `GREETING`: `yo` -> `hi`"), "{md}");
}
