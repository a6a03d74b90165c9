//! The bake window: a release that passes its checks and goes bad a few seconds later
//! is caught by the signals that watch it (its log, a command, its process) and rolled
//! back; a clean one ends good; `promote` and a preempting `rollback` end a window from
//! another process; a crash during a window is resumed. Windows are seconds long.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use lastgood_testkit::{Config, Run, TestEnv};

use crate::{deploy_ok, env_with_versions};

/// A window of `window` measured every second, regressions after two fails, and
/// `signals` (raw TOML) after it.
fn baking(window: &str, signals: &str) -> Config {
    Config::new().table(&format!(
        "[environments.production.monitor]\nduration = \"{window}\"\ninterval = \"1s\"\nfailures = 2\n{signals}"
    ))
}

const LOG_ERRORS: &str = "\n[[environments.production.monitor.signals]]\nlog = \"app\"\nmatch = [\"ERROR\"]\n";

/// v1 deployed and good, v2 tagged; `config` in place.
fn v1_good_then(config: Config) -> TestEnv {
    let mut env = env_with_versions(1);
    env.configure(&config);
    env.test().args(["deploy", "production", "v1", "--reason", "first", "--no-monitor"]).run();
    env.commit_version("v2", &[]);
    env
}

fn spawn(env: &TestEnv, args: &[&str]) -> Child {
    env.cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn lastgood")
}

fn finish(child: Child) -> Run {
    Run::from(child.wait_with_output().expect("wait for lastgood"))
}

/// Waits until `status` shows a bake window running, with at least one measurement.
fn wait_for_window(env: &TestEnv) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = env.status();
        if s["bake"]["signals"].as_object().is_some_and(|m| !m.is_empty()) {
            return s;
        }
        assert!(Instant::now() < deadline, "no bake window started: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_clean_release_bakes_pending_with_its_measurements_shown_then_ends_good() {
    let env = v1_good_then(baking("4s", LOG_ERRORS));
    let child = spawn(&env, &["deploy", "production", "v2", "--reason", "bake", "--format", "json"]);
    let during = wait_for_window(&env);
    assert_eq!(during["current"]["state"], "pending", "{during}");
    assert_eq!(during["bake"]["window_ms"], 4000);
    assert_eq!(during["bake"]["signals"]["log"]["verdict"], "pass", "{during}");
    assert!(during["bake"]["signals"]["process"].is_object(), "the supervised process is a signal: {during}");
    assert!(during["bake"]["signals"]["checks"].is_object(), "the checks are a signal: {during}");
    assert!(during["lock"].is_object(), "the deploy holds the lock while it bakes");
    env.test().args(["status", "production"]).stdout_has("baking:").stdout_has("log pass").run();
    let r = finish(child);
    r.expect(0);
    let r = r.json();
    assert_eq!(r["outcome"], "succeeded");
    let names: Vec<_> = r["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["export", "switch", "restart", "verify", "bake", "cleanup"]);
    assert!(r["steps"][4]["duration_ms"].as_i64().unwrap() >= 3500, "the window lasted: {}", r["steps"][4]);
    assert_eq!(env.state_of(2), "good");
}

#[test]
fn errors_in_the_release_log_are_a_regression_that_returns_to_the_last_good_release() {
    let env = v1_good_then(baking("20s", LOG_ERRORS));
    env.write("app.env", "HEALTH=ok\nFAIL_AFTER=1\n");
    let t = Instant::now();
    let r = env
        .test()
        .args(["deploy", "production", "v2", "--reason", "goes bad"])
        .status(1)
        .stderr_has("regression of signal `log`")
        .stderr_has("threshold <= 0 matching line(s) per minute")
        .run();
    assert!(t.elapsed() < Duration::from_secs(18), "the window did not end at the regression: {}", r.stderr);
    assert_eq!(env.state_of(2), "failed");
    assert_eq!(env.serving().as_deref(), Some("v1"));
    assert_eq!(env.status()["current"]["id"], 1);
    // The evidence is in the record: the measurements, the regression, "monitored".
    let md = env.run(&["report", "2", "--format", "md"]);
    md.expect(0);
    let md = md.stdout;
    assert!(md.contains("## Monitoring"), "{md}");
    assert!(md.contains("Bake window of 20s: regressed"), "{md}");
    assert!(md.contains("- regression of signal `log`"), "{md}");
    assert!(md.contains("| log | fail | "), "{md}");
    assert!(md.contains("- [x] Monitored: bake window of 20s regressed"), "{md}");
}

#[test]
fn a_command_signal_that_exits_1_is_a_regression_and_other_codes_are_source_errors() {
    let env = TestEnv::new(crate::BIN);
    let flag = env.path().join("bad");
    let broken = env.path().join("broken");
    let signals = format!(
        "\n[[environments.production.monitor.signals]]\nname = \"queue\"\ncommand = [\"sh\", \"-c\", \"test -e {} && exit 7; test ! -e {}\"]\n",
        broken.display(),
        flag.display()
    );
    let mut env = env;
    env.commit_version("v1", &[]);
    env.configure(&baking("20s", &signals));
    env.test().args(["deploy", "production", "v1", "--reason", "first", "--no-monitor"]).run();
    env.commit_version("v2", &[]);
    // Exit 7 (the source's own failure) for the first seconds: reported, never counted.
    std::fs::write(&broken, "").unwrap();
    let child = spawn(&env, &["deploy", "production", "v2", "--reason", "cmd"]);
    let during = wait_for_window(&env);
    assert_eq!(during["bake"]["signals"]["queue"]["verdict"], "error", "{during}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(env.status()["current"]["id"], 2, "a source error was counted as a regression");
    std::fs::remove_file(&broken).unwrap();
    std::fs::write(&flag, "").unwrap();
    let r = finish(child);
    r.expect(1);
    assert!(r.stderr.contains("regression of signal `queue`"), "{}", r.stderr);
    assert!(r.stderr.contains("exit 1"), "{}", r.stderr);
    assert_eq!(env.state_of(2), "failed");
    assert_eq!(env.serving().as_deref(), Some("v1"));
}

#[test]
fn a_crashed_process_is_a_regression_at_once() {
    let env = v1_good_then(baking("20s", ""));
    env.write("app.env", "HEALTH=ok\nEXIT_AFTER=2\n");
    let t = Instant::now();
    env.test()
        .args(["deploy", "production", "v2", "--reason", "crashes"])
        .status(1)
        .stderr_has("regression of signal `process`")
        .stderr_has("the process is gone")
        .run();
    assert!(t.elapsed() < Duration::from_secs(15));
    assert_eq!(env.state_of(2), "failed");
    assert_eq!(env.serving().as_deref(), Some("v1"));
}

#[test]
fn promote_from_another_process_ends_the_window_as_passed() {
    let env = v1_good_then(baking("5m", LOG_ERRORS));
    env.test().args(["promote", "production", "--reason", "early"]).stdout_has("no bake window is running").run();
    let child = spawn(&env, &["deploy", "production", "v2", "--reason", "long bake"]);
    wait_for_window(&env);
    let t = Instant::now();
    env.test().args(["promote", "production", "--reason", "looks fine"]).stdout_has("promoted #2").run();
    let r = finish(child);
    r.expect(0);
    assert!(t.elapsed() < Duration::from_secs(10), "promote took {:?}", t.elapsed());
    assert!(r.stderr.contains("promoted by tester@"), "{}", r.stderr);
    assert_eq!(env.state_of(2), "good");
}

#[test]
fn a_signal_failing_before_the_switch_is_pre_existing_and_not_blamed() {
    let mut env = env_with_versions(1);
    env.configure(&baking("4s", LOG_ERRORS));
    // v1 already logs errors.
    env.write("app.env", "HEALTH=ok\nFAIL_AFTER=0\n");
    env.test().args(["deploy", "production", "v1", "--reason", "first", "--no-monitor"]).run();
    std::thread::sleep(Duration::from_millis(800));
    env.commit_version("v2", &[]);
    env.test()
        .args(["deploy", "production", "v2", "--reason", "same errors as before"])
        .stderr_has("pre-existing")
        .run();
    assert_eq!(env.state_of(2), "good");
}

#[test]
fn alert_mode_notifies_and_the_release_ends_good() {
    let env = v1_good_then(
        Config::new()
            .table("[environments.production.monitor]\nduration = \"5s\"\ninterval = \"1s\"\non_regression = \"alert\"")
            .table(LOG_ERRORS.trim_start()),
    );
    env.write("app.env", "HEALTH=ok\nFAIL_AFTER=0.5\n");
    env.test().args(["deploy", "production", "v2", "--reason", "alerts only"]).stderr_has("alert only").run();
    assert_eq!(env.state_of(2), "good");
}

#[test]
fn kill_9_during_a_window_then_resume_bakes_again_and_ends() {
    let env = v1_good_then(baking("4s", LOG_ERRORS));
    let mut child = spawn(&env, &["deploy", "production", "v2", "--reason", "crash"]);
    wait_for_window(&env);
    child.kill().unwrap();
    let _ = child.wait();
    let s = env.status();
    assert_eq!(s["interrupted"]["step"], "bake", "{s}");
    assert_eq!(s["current"]["state"], "pending");
    env.test().args(["resume", "production"]).stderr_has("baking #2").run();
    assert_eq!(env.state_of(2), "good");
    assert_eq!(env.status()["interrupted"], serde_json::Value::Null);
}

#[test]
fn rollback_during_a_window_stops_the_deploy_which_returns_and_fails() {
    let env = v1_good_then(baking("5m", LOG_ERRORS));
    let child = spawn(&env, &["deploy", "production", "v2", "--reason", "long bake"]);
    wait_for_window(&env);
    env.test().args(["rollback", "production", "--reason", "users complain", "--no-preempt"]).status(3).run();
    let t = Instant::now();
    env.test()
        .args(["rollback", "production", "--reason", "users complain"])
        .stderr_has("asked it to stop")
        .stdout_has("stopped deploy")
        .run();
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let r = finish(child);
    r.expect(1);
    assert!(r.stderr.contains("asked for a rollback (reason: users complain)"), "{}", r.stderr);
    assert_eq!(env.state_of(2), "failed");
    assert_eq!(env.serving().as_deref(), Some("v1"));
    let audit = env.ledger_sql("SELECT actor FROM audit_events WHERE event = 'operation.preempt'");
    assert!(audit.starts_with("tester@"), "the request and its author are audited: {audit:?}");
}

#[test]
fn monitor_config_errors_name_the_key_and_exit_2() {
    let env = env_with_versions(1);
    for (toml, says) in [
        ("interval = \"100ms\"", "monitor.interval: must be at least 1s"),
        ("on_regression = \"panic\"", "monitor.on_regression"),
        ("failures = 0", "monitor.failures"),
        ("[[environments.production.monitor.signals]]\nlog = \"app\"", "match: needs at least one"),
        (
            "[[environments.production.monitor.signals]]\nprometheus = \"http://x\"\nquery = \"up\"",
            "needs `max` or `min`",
        ),
        ("[[environments.production.monitor.signals]]\ncommand = [\"true\"]\nlog = \"app\"", "exactly one of"),
    ] {
        env.configure(&Config::new().table(&format!("[environments.production.monitor]\nduration = \"1m\"\n{toml}")));
        env.test().args(["status", "production"]).status(2).stderr_has(says).stderr_has("lastgood.toml:").run();
    }
}

#[test]
fn the_watch_after_a_rollback_alerts_once_and_never_acts() {
    let (hook, received) = crate::record::receiver();
    let mut env = env_with_versions(1);
    let flag = env.path().join("still-bad");
    env.configure(&Config::new().table(&format!(
        "[environments.production.monitor]\nafter_rollback = \"6s\"\ninterval = \"1s\"\nfailures = 2\nchecks = false\n\n[[environments.production.monitor.signals]]\nname = \"queue\"\ncommand = [\"sh\", \"-c\", \"test ! -e {}\"]\n\n[environments.production.notify]\nwebhooks = [\"{hook}\"]\n",
        flag.display()
    )));
    deploy_ok(&env, "v1");
    env.commit_version("v2", &[]);
    deploy_ok(&env, "v2");
    // What broke is not the release: it stays broken after the rollback.
    std::fs::write(&flag, "").unwrap();
    env.test().args(["rollback", "production", "--reason", "queue broken"]).stderr_has("watching #1").run();
    let deadline = Instant::now() + Duration::from_secs(30);
    let alert = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = received.recv_timeout(left).expect("no notification from the watch after the rollback");
        if n["event"] == "regression_after_rollback" {
            break n;
        }
    };
    assert!(alert["text"].as_str().unwrap().contains("regression of signal `queue`"), "{alert}");
    assert_eq!(alert["operation"], 3);
    // The watch ends by itself, never acts, and its record ticks "monitored".
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.ledger_sql("SELECT count(*) FROM audit_events WHERE event = 'watch.ended'") != "1" {
        assert!(Instant::now() < deadline, "the watch did not end");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(env.status()["current"]["id"], 1);
    assert_eq!(env.ledger_sql("SELECT count(*) FROM operations"), "3", "the watch acted");
    assert_eq!(
        env.ledger_sql("SELECT count(*) FROM audit_events WHERE event = 'watch.regression'"),
        "1",
        "one alert per signal"
    );
    let report = env.run(&["report", "3", "--format", "json"]);
    let report = report.json();
    let monitored = report["checklist"].as_array().unwrap().iter().find(|c| c["item"] == "monitored").unwrap().clone();
    assert_eq!(monitored["done"], true, "{monitored}");
}

#[test]
fn rollback_during_a_build_stops_the_deploy_at_its_next_step_boundary() {
    let env = v1_good_then(Config::new().build(["sleep", "3"]));
    let child = spawn(&env, &["deploy", "production", "v2", "--reason", "slow build"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.status()["interrupted"]["step"] != "build" {
        assert!(Instant::now() < deadline, "the deploy never reached its build");
        std::thread::sleep(Duration::from_millis(50));
    }
    env.test()
        .args(["rollback", "production", "--reason", "stop all deployments"])
        .stdout_has("stopped deploy 2")
        .stdout_has("#1 v1")
        .run();
    let r = finish(child);
    r.expect(1);
    assert!(r.stderr.contains("not run: tester@"), "{}", r.stderr);
    assert_eq!(env.state_of(2), "failed");
    assert_eq!(env.current_link(), Some(1), "the switch never ran");
    assert_eq!(env.serving().as_deref(), Some("v1"));
}

#[test]
fn a_deploy_without_automatic_rollback_is_stopped_and_then_rolled_back_by_the_rollback_itself() {
    let env = v1_good_then(baking("5m", LOG_ERRORS));
    let child = spawn(&env, &["deploy", "production", "v2", "--reason", "manual", "--no-auto-rollback"]);
    wait_for_window(&env);
    env.test().args(["rollback", "production", "--reason", "users complain"]).stdout_has("stopped deploy 2").run();
    finish(child).expect(1);
    assert_eq!(env.serving().as_deref(), Some("v1"));
    assert_eq!(env.status()["current"]["id"], 1);
}
