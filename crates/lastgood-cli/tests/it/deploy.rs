use lastgood_testkit::{Check, Config};
use serde_json::json;

use crate::{BIN, deploy_ok, env_with_versions};

#[test]
fn a_deploy_exports_switches_starts_and_verifies() {
    let env = env_with_versions(1);
    let report = env.test().args(["deploy", "production", "v1", "--reason", "first", "--format", "json"]).run().json();
    assert_eq!(report["outcome"], "succeeded");
    assert_eq!(report["kind"], "deploy");
    assert_eq!(report["to"]["version"], "v1");
    let names: Vec<_> =
        report["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["export", "switch", "restart", "verify", "cleanup"]);
    assert!(report["steps"].as_array().unwrap().iter().all(|s| s["state"] == "done" && s["host"] == "local"));

    assert_eq!(env.serving().as_deref(), Some("v1"));
    assert_eq!(env.current_link(), Some(1));
    let status = env.status();
    assert_eq!(status["current"]["id"], 1);
    assert_eq!(status["current"]["state"], "good");
    assert_eq!(status["last_good"], json!(null));
    assert_eq!(status["lock"], json!(null));
    assert!(env.deploy_to().join("releases/1/VERSION").exists());
}

#[test]
fn history_lists_releases_newest_first_with_their_features() {
    let mut env = env_with_versions(1);
    deploy_ok(&env, "v1");
    env.commit_version("v2", &[("feature.txt", "x")]);
    env.commit_version("v3", &[("more.txt", "more")]);
    deploy_ok(&env, "v3");
    let h = env.history();
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["id"], 2);
    assert_eq!(h[0]["version"], "v3");
    assert_eq!(h[0]["features"], json!(["Release v3", "Release v2"]));
    assert_eq!(h[1]["features"], json!(["Release v1"]));
    assert!(h[0]["created_by"].as_str().unwrap().starts_with("tester@"), "{}", h[0]);
    assert!(h[0]["commit"].as_str().unwrap().len() == 40);
    for key in ["id", "version", "commit", "state", "schema_revision", "created_at", "created_by", "features"] {
        assert!(h[0].get(key).is_some(), "history lacks {key}");
    }
    env.test().args(["history", "production", "--limit", "1"]).stdout_has("v3").stdout_lacks(" v1 ").run();
}

#[test]
fn a_failed_deploy_returns_to_the_last_good_release_by_itself() {
    let mut env = env_with_versions(1);
    deploy_ok(&env, "v1");
    env.commit_version("v2", &[]);
    env.write("app.env", "HEALTH=fail\n");
    let r = env.test().args(["deploy", "production", "v2", "--format", "json"]).status(1).run().json();
    assert_eq!(r["outcome"], "rolled_back");
    assert_eq!(r["current"], 1);
    let phases: Vec<_> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!("{}:{}:{}", s["phase"].as_str().unwrap(), s["name"].as_str().unwrap(), s["state"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        phases,
        [
            "forward:export:done",
            "forward:switch:done",
            "forward:restart:done",
            "forward:verify:failed",
            "forward:cleanup:skipped",
            "rollback:switch:done",
            "rollback:config:done",
            "rollback:restart:done",
            "rollback:verify:done",
        ]
    );
    assert_eq!(env.serving().as_deref(), Some("v1"));
    assert_eq!(env.current_link(), Some(1));
    assert_eq!(env.state_of(2), "failed");
    assert_eq!(env.state_of(1), "good");
    // The config file that broke it is back to what v1 ran with.
    assert_eq!(std::fs::read_to_string(env.path().join("app.env")).unwrap(), "HEALTH=ok\n");
    let status = env.status();
    assert_eq!(status["lock"], json!(null));
    assert_eq!(status["interrupted"], json!(null));
}

#[test]
fn no_auto_rollback_leaves_the_failed_release_current() {
    let mut env = env_with_versions(1);
    deploy_ok(&env, "v1");
    env.commit_version("v2", &[]);
    env.write("app.env", "HEALTH=fail\n");
    env.test().args(["deploy", "production", "v2", "--no-auto-rollback"]).status(1).run();
    assert_eq!(env.current_link(), Some(2));
    assert_eq!(env.status()["current"]["state"], "failed");
    // The way back is then an explicit rollback, which skips the failed release.
    env.test().args(["rollback", "production", "--reason", "v2 broken"]).run();
    assert_eq!(env.serving().as_deref(), Some("v1"));
    assert_eq!(env.state_of(2), "failed");
}

#[test]
fn a_first_deploy_that_fails_has_nothing_to_return_to() {
    let env = env_with_versions(1);
    env.write("app.env", "HEALTH=fail\n");
    env.test().args(["deploy", "production", "v1"]).status(1).stderr_has("no good release to return to").run();
    assert_eq!(env.state_of(1), "failed");
    assert_eq!(env.status()["lock"], json!(null));
}

#[test]
fn a_failed_build_changes_nothing_that_serves() {
    let mut env = env_with_versions(1);
    env.configure(&Config::new().build(["sh", "-c", "test -e BUILD_OK || { echo build broke >&2; exit 3; }"]));
    env.write("repo/BUILD_OK", "");
    env.commit_version("v1b", &[]);
    deploy_ok(&env, "v1b");
    env.git(&["rm", "-q", "BUILD_OK"], &env.repo());
    env.commit_version("v2", &[]);
    let out = env.test().args(["deploy", "production", "v2"]).status(1).run();
    assert!(out.stdout.contains("build broke") || out.stderr.contains("build broke"), "{}{}", out.stdout, out.stderr);
    assert_eq!(env.current_link(), Some(1));
    assert_eq!(env.serving().as_deref(), Some("v1b"));
    assert_eq!(env.state_of(2), "failed");
}

#[test]
fn the_build_runs_in_the_release_with_lastgood_variables() {
    let env = env_with_versions(1);
    env.configure(&Config::new().build([
        "sh",
        "-c",
        "echo \"$LASTGOOD_VERSION $LASTGOOD_RELEASE $LASTGOOD_ENV $LASTGOOD_HOST\" > built.txt",
    ]));
    deploy_ok(&env, "v1");
    let built = std::fs::read_to_string(env.deploy_to().join("releases/1/built.txt")).unwrap();
    assert_eq!(built, "v1 1 production 127.0.0.1\n");
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let env = env_with_versions(1);
    env.test().args(["deploy", "production", "v1", "--dry-run"]).stdout_has("export").stdout_has("verify").run();
    assert!(!env.deploy_to().exists());
    assert_eq!(env.history(), json!([]));
}

#[test]
fn retention_keeps_the_current_and_the_last_good_releases() {
    let mut env = env_with_versions(1);
    env.configure(&Config::new().key("keep_releases", 2));
    deploy_ok(&env, "v1");
    for i in 2..=5 {
        env.commit_version(&format!("v{i}"), &[]);
        deploy_ok(&env, &format!("v{i}"));
    }
    let dirs: Vec<u64> = {
        let mut d: Vec<u64> = std::fs::read_dir(env.deploy_to().join("releases"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        d.sort();
        d
    };
    assert_eq!(dirs, [4, 5]);
    let h = env.history();
    let artifacts: Vec<bool> = h.as_array().unwrap().iter().map(|r| r["artifact"].as_bool().unwrap()).collect();
    assert_eq!(artifacts, [true, true, false, false, false]);
    // A release whose directory is gone cannot be a rollback target: refused, exit 4.
    env.test().args(["rollback", "production", "--to", "2", "--yes"]).status(4).stderr_has("is gone").run();
    assert_eq!(env.serving().as_deref(), Some("v5"));
}

#[test]
fn init_writes_a_config_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lastgood.toml");
    let run = |args: &[&str]| {
        std::process::Command::new(BIN).args(["--config", path.to_str().unwrap()]).args(args).output().unwrap()
    };
    assert!(run(&["init"]).status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("[environments.production]") && text.contains("# "), "{text}");
    let status = run(&["status", "production"]);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let again = run(&["init"]);
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn verify_and_mark() {
    let mut env = env_with_versions(1);
    deploy_ok(&env, "v1");
    env.commit_version("v2", &[]);
    deploy_ok(&env, "v2");
    env.test().args(["verify", "production"]).run();
    let out = env.test().args(["verify", "production", "--format", "json"]).run();
    assert_eq!(out.json()["passed"], true);
    env.test().args(["mark", "production", "1", "bad", "--reason", "data bug"]).run();
    assert_eq!(env.state_of(1), "bad");
    // last-good never picks a bad release.
    env.test().args(["rollback", "production"]).status(2).stderr_has("candidate").run();
    env.test().args(["mark", "production", "#1", "good"]).run();
    assert_eq!(env.state_of(1), "good");
    env.test().args(["mark", "production", "9", "good"]).status(2).run();
}

#[test]
fn a_release_whose_app_dies_at_start_is_rolled_back() {
    let mut env = env_with_versions(1);
    deploy_ok(&env, "v1");
    // v2 loses its VERSION file: the sample app exits at once.
    env.commit_version("v2", &[]);
    env.git(&["rm", "-q", "VERSION"], &env.repo());
    env.git(&["commit", "-q", "-m", "Lose VERSION"], &env.repo());
    env.git(&["tag", "v2-broken"], &env.repo());
    let r = env.test().args(["deploy", "production", "v2-broken", "--format", "json"]).status(1).run().json();
    assert_eq!(r["outcome"], "rolled_back");
    let restart = r["steps"].as_array().unwrap().iter().find(|s| s["name"] == "restart").unwrap();
    assert_eq!(restart["state"], "failed");
    assert!(restart["detail"].as_str().unwrap().contains("VERSION"), "{restart}");
    assert_eq!(env.serving().as_deref(), Some("v1"));
    assert_eq!(env.state_of(2), "failed");
}

#[test]
fn tcp_and_command_checks_gate_a_release() {
    let mut env = env_with_versions(1);
    env.configure(
        &Config::new().check(Check::tcp().key("retries", 20).key("interval", "50ms")).check(
            Check::command(["sh", "-c", "grep -qx \"$LASTGOOD_VERSION\" VERSION && test ! -e FAIL"])
                .key("retries", 2)
                .key("interval", "50ms"),
        ),
    );
    deploy_ok(&env, "v1");
    let out = env.test().args(["verify", "production", "--format", "json"]).run();
    assert_eq!(out.json()["checks"].as_array().unwrap().len(), 3);
    env.commit_version("v2", &[("FAIL", "")]);
    env.test().args(["deploy", "production", "v2"]).status(1).stdout_has("FAIL command").run();
    assert_eq!(env.serving().as_deref(), Some("v1"));
}

#[test]
fn restart_restarts_the_app_of_the_current_release_and_checks_it() {
    let env = crate::env_with_versions(1);
    crate::deploy_ok(&env, "v1");
    let pid = env.status()["app"]["pid"].as_u64().unwrap();
    let plan = env.run(&["restart", "production", "--dry-run"]);
    plan.expect(0);
    assert!(plan.stdout.contains("Plan: restart `production`"), "{}", plan.stdout);
    env.run(&["restart", "production"]).expect(2);
    let out = env.run(&["restart", "production", "--reason", "reload its config", "--format", "json"]);
    out.expect(0);
    let r = out.json();
    let names: Vec<&str> = r["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!((r["kind"].as_str(), names), (Some("restart"), vec!["restart", "verify"]));
    assert_ne!(env.status()["app"]["pid"].as_u64().unwrap(), pid);
    assert_eq!(env.state_of(1), "good");
    let report = env.run(&["report", &r["operation"].to_string()]);
    report.expect(0);
    assert!(report.stdout.contains("restart"), "{}", report.stdout);
}
