//! A process killed at every journal boundary, then `resume`: the environment ends
//! consistent (what serves is what the ledger calls current, nothing pending, the
//! lock free, the audit chain intact), and a second `resume` has nothing to do.

use serde_json::json;

use crate::{deploy_ok, env_with_versions};
use lastgood_testkit::{Config, TestEnv};

const STEPS: [&str; 6] = ["export", "build", "switch", "restart", "verify", "cleanup"];

fn boundaries() -> Vec<String> {
    let mut fps = Vec::new();
    for step in STEPS {
        for at in ["intent", "apply", "done"] {
            fps.push(format!("{at}:{step}"));
        }
    }
    fps.push("mid:export".into());
    fps.push("mid:switch".into());
    fps
}

/// v1 deployed and good, v2 committed; builds on.
fn setup() -> TestEnv {
    let env = env_with_versions(2);
    env.configure(&Config::new().build(["sh", "-c", "echo built > built.txt"]));
    deploy_ok(&env, "v1");
    env
}

#[track_caller]
fn assert_consistent(env: &TestEnv) {
    let st = env.status();
    let current = st["current"]["id"].as_u64();
    assert_eq!(env.current_link(), current, "current on disk vs ledger: {st}");
    assert_eq!(env.serving(), st["current"]["version"].as_str().map(str::to_owned), "serving vs ledger: {st}");
    assert_eq!(st["lock"], json!(null), "{st}");
    assert_eq!(st["interrupted"], json!(null), "{st}");
    assert!(env.history().as_array().unwrap().iter().all(|r| r["state"] != "pending"), "{}", env.history());
    env.run(&["audit", "verify"]).expect(0);
    let again = env.run(&["resume", "production"]);
    again.expect(0);
    assert!(again.stdout.contains("nothing to resume"), "{}", again.stdout);
}

#[track_caller]
fn crash(env: &TestEnv, fp: &str, args: &[&str]) {
    let out = env.run_crashing(fp, args);
    assert_eq!(out.signal, Some(9), "failpoint {fp} did not fire: {out:?}");
}

#[test]
fn a_deploy_killed_at_any_step_is_finished_by_resume() {
    for fp in boundaries() {
        let env = setup();
        crash(&env, &fp, &["deploy", "production", "v2"]);
        let st = env.status();
        assert_eq!(st["interrupted"]["holder_alive"], false, "{fp}: {st}");
        // A new operation refuses to run over it and points to resume.
        let out = env.run(&["deploy", "production", "v2"]);
        out.expect(5);
        assert!(out.stderr.contains("lastgood resume production"), "{fp}: {}", out.stderr);
        env.run(&["rollback", "production", "--to", "1", "--reason", "t"]).expect(5);

        let out = env.run(&["resume", "production"]);
        out.expect(0);
        assert_eq!(env.serving().as_deref(), Some("v2"), "{fp}");
        assert_eq!(env.state_of(2), "good", "{fp}");
        assert_eq!(std::fs::read_to_string(env.deploy_to().join("releases/2/built.txt")).unwrap(), "built\n", "{fp}");
        assert_consistent(&env);
    }
}

#[test]
fn a_deploy_killed_at_any_step_can_be_aborted() {
    for fp in boundaries() {
        let env = setup();
        crash(&env, &fp, &["deploy", "production", "v2"]);
        let out = env.run(&["resume", "production", "--abort"]);
        out.expect(0);
        assert_eq!(env.serving().as_deref(), Some("v1"), "{fp}");
        assert_eq!(env.current_link(), Some(1), "{fp}");
        assert_eq!(env.state_of(2), "failed", "{fp}");
        assert_consistent(&env);
    }
}

#[test]
fn a_first_deploy_killed_and_aborted_leaves_nothing_running() {
    let env = env_with_versions(1);
    crash(&env, "done:restart", &["deploy", "production", "v1"]);
    assert_eq!(env.serving().as_deref(), Some("v1"));
    env.run(&["resume", "production", "--abort"]).expect(0);
    assert_eq!(env.serving(), None);
    assert_eq!(env.current_link(), None);
    let st = env.status();
    assert_eq!(st["current"], json!(null));
    assert_eq!(env.state_of(1), "failed");
}

#[test]
fn an_automatic_rollback_killed_midway_is_finished_by_resume() {
    // The second hit of each step name is the automatic rollback's.
    for fp in [
        "intent:switch@2",
        "mid:switch@2",
        "done:switch@2",
        "apply:restart@2",
        "done:restart@2",
        "intent:verify@2",
        "done:verify@1",
    ] {
        let env = setup();
        env.write("app.env", "HEALTH=fail\n");
        crash(&env, fp, &["deploy", "production", "v2"]);
        let out = env.run(&["resume", "production", "--format", "json"]);
        out.expect(1);
        assert_eq!(out.json()["outcome"], "rolled_back", "{fp}");
        assert_eq!(env.serving().as_deref(), Some("v1"), "{fp}");
        assert_eq!(env.state_of(2), "failed", "{fp}");
        assert_consistent(&env);
    }
}

#[test]
fn a_rollback_killed_at_any_step_is_finished_by_resume() {
    for fp in [
        "intent:switch",
        "mid:switch",
        "done:switch",
        "intent:config",
        "done:config",
        "intent:restart",
        "apply:restart",
        "done:restart",
        "done:verify",
    ] {
        let env = setup();
        env.write("app.env", "HEALTH=ok\nGREETING=new\n");
        deploy_ok(&env, "v2");
        crash(&env, fp, &["rollback", "production", "--reason", "crash test"]);
        env.run(&["resume", "production"]).expect(0);
        assert_eq!(env.serving().as_deref(), Some("v1"), "{fp}");
        assert_eq!(env.get("/").as_deref(), Some("hello from v1"), "{fp}: config restored");
        assert_eq!(env.state_of(2), "bad", "{fp}");
        assert_consistent(&env);
    }
}

#[test]
fn a_resume_killed_during_recovery_is_resumed_again() {
    let env = setup();
    crash(&env, "intent:restart", &["deploy", "production", "v2"]);
    crash(&env, "done:restart", &["resume", "production"]);
    env.run(&["resume", "production"]).expect(0);
    assert_eq!(env.serving().as_deref(), Some("v2"));
    assert_consistent(&env);
}
