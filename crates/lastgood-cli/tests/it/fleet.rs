//! Fleets over ssh, against real `sshd` hosts: each on its own loopback address with
//! its own private view of `deploy_to` (lastgood_testkit::fleet), the sample app bound
//! to each host's address, and health checks that reach every host through `{host}`.

use lastgood_testkit::TestEnv;
use lastgood_testkit::fleet::Fleet;

use crate::BIN;

/// A repository with v1 (healthy), v2 (healthy) and v3, which is unhealthy on the
/// hosts listed in its `fail-on` file; and a config for the fleet.
fn setup(hosts: usize, fail_on: &[usize], extra: &str) -> (TestEnv, Fleet) {
    let fleet = Fleet::start(hosts);
    let mut env = TestEnv::new(BIN);
    env.commit_version("v1", &[]);
    env.commit_version("v2", &[]);
    let failing: Vec<String> = fail_on.iter().map(|&i| fleet.hosts()[i].addr.clone()).collect();
    env.commit_version("v3", &[("fail-on", &format!("{}\n", failing.join("\n"))), ("bad.env", "HEALTH=fail\n")]);
    write_config(&env, &fleet, extra);
    (env, fleet)
}

fn write_config(env: &TestEnv, fleet: &Fleet, extra: &str) {
    let app = lastgood_testkit::sample_app(&env.bin);
    let hosts: Vec<String> = fleet.urls().iter().map(|u| format!("\"{u}\"")).collect();
    // The app is unhealthy on a host named in the release's `fail-on` file.
    let run = format!(
        "if grep -qx \"$LASTGOOD_HOST\" fail-on 2>/dev/null; then exec {app} --listen :{port} --config bad.env; else exec {app} --listen :{port}; fi",
        app = app.display(),
        port = env.port
    );
    env.write(
        "lastgood.toml",
        &format!(
            r#"[environments.production]
hosts = [{hosts}]
ssh_config = "{cfg}"
source = "repo"
deploy_to = "{deploy_to}"
run = ["sh", "-c", {run:?}]
stop_timeout = "2s"
{extra}

[[environments.production.checks]]
http = "http://{{host}}:{port}/health"
expect_body = "{{version}}"
interval = "50ms"
timeout = "1s"
retries = 10
"#,
            hosts = hosts.join(", "),
            cfg = fleet.ssh_config().display(),
            deploy_to = fleet.deploy_to().display(),
            port = env.port,
        ),
    );
}

/// The release each host's `current` names.
fn currents(fleet: &Fleet) -> Vec<Option<u64>> {
    (0..fleet.hosts().len())
        .map(|i| fleet.read_link(i, "current").and_then(|p| p.strip_prefix("releases").ok()?.to_str()?.parse().ok()))
        .collect()
}

/// The version the app on host i serves.
fn serving(env: &TestEnv, fleet: &Fleet, i: usize) -> Option<String> {
    use std::io::{Read, Write};
    let addr = format!("{}:{}", fleet.hosts()[i].addr, env.port);
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(2))).ok()?;
    write!(s, "GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

fn all_serve(env: &TestEnv, fleet: &Fleet, version: &str) {
    for i in 0..fleet.hosts().len() {
        assert_eq!(serving(env, fleet, i).as_deref(), Some(version), "host {i}");
    }
}

#[test]
fn a_fleet_deploys_rolls_back_and_reports_every_host() {
    let (env, fleet) = setup(3, &[], "");
    env.run(&["deploy", "production", "v1", "--reason", "t"]).expect(0);
    let run = env.run(&["deploy", "production", "v2", "--reason", "t", "--format", "json"]);
    run.expect(0);
    assert_eq!(currents(&fleet), vec![Some(2); 3]);
    all_serve(&env, &fleet, "v2");
    // One record per step, naming every host.
    let report = run.json();
    let switch = report["steps"].as_array().unwrap().iter().find(|s| s["name"] == "switch").unwrap().clone();
    for h in fleet.hosts() {
        assert!(switch["host"].as_str().unwrap().contains(&h.addr), "{switch}");
    }
    let status = env.status();
    assert_eq!(status["hosts"].as_array().unwrap().len(), 3);
    assert!(status["hosts"].as_array().unwrap().iter().all(|h| h["current"] == 2 && h["app"] == 2), "{status}");

    env.run(&["rollback", "production", "--reason", "t"]).expect(0);
    assert_eq!(currents(&fleet), vec![Some(1); 3]);
    all_serve(&env, &fleet, "v1");
    // The apps outlived the ssh sessions that started them.
    assert_eq!(env.status()["hosts"][2]["app"], 1);
}

#[test]
fn a_failure_on_one_host_returns_every_host_to_the_good_release() {
    let (env, fleet) = setup(3, &[2], "");
    env.run(&["deploy", "production", "v1", "--reason", "t"]).expect(0);
    let run = env.run(&["deploy", "production", "v3", "--reason", "t"]);
    run.expect(1);
    assert!(run.stderr.contains("1 of 3 host(s) failed"), "{}", run.stderr);
    assert_eq!(currents(&fleet), vec![Some(1); 3]);
    all_serve(&env, &fleet, "v1");
    let status = env.status();
    assert_eq!(status["current"]["id"], 1);
    assert_eq!(env.state_of(2), "failed");
}

#[test]
fn a_failing_canary_keeps_the_rest_of_the_fleet_untouched() {
    let (env, fleet) = setup(3, &[0], "canary = 1\nbatch = 1");
    env.run(&["deploy", "production", "v1", "--reason", "t"]).expect(0);
    let plan = env.run(&["deploy", "production", "v3", "--dry-run"]).expect(0).stdout.clone();
    assert_eq!(plan.matches("switch").count(), 3, "{plan}");
    let run = env.run(&["deploy", "production", "v3", "--reason", "t", "--format", "json"]);
    run.expect(1);
    // The canary failed its checks: the other hosts were never switched to v3.
    let report = run.json();
    let forward: Vec<&serde_json::Value> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == "switch" && s["phase"] == "forward")
        .collect();
    assert_eq!(forward.len(), 3, "{report}");
    assert_eq!(forward[0]["state"], "done");
    assert_eq!(forward[0]["host"], fleet.hosts()[0].addr.clone() + ":" + &fleet.hosts()[0].port.to_string());
    assert!(forward[1..].iter().all(|s| s["state"] == "skipped"), "{report}");
    assert_eq!(currents(&fleet), vec![Some(1); 3]);
    all_serve(&env, &fleet, "v1");
}

#[test]
fn preflight_refuses_when_one_host_is_unreachable_or_its_key_is_wrong() {
    let (env, fleet) = setup(3, &[], "");
    env.run(&["deploy", "production", "v1", "--reason", "t"]).expect(0);
    fleet.stop(1);
    let run = env.run(&["deploy", "production", "v2", "--reason", "t"]);
    run.expect(4);
    assert!(run.stderr.contains(&fleet.hosts()[1].addr) && run.stderr.contains("cannot connect"), "{}", run.stderr);
    assert_eq!(env.history().as_array().unwrap().len(), 1, "a refused deploy recorded a release");
    fleet.start_again(1);

    // The host is reinstalled with a new key (its multiplexed connection goes with it).
    fleet.stop(2);
    fleet.start_again(2);
    fleet.wrong_key(2);
    let run = env.run(&["deploy", "production", "v2", "--reason", "t"]);
    run.expect(4);
    assert!(run.stderr.contains("HOST KEY") && run.stderr.contains("HAS CHANGED"), "{}", run.stderr);
    fleet.trust(2);
    fleet.stop(0);
    fleet.start_again(0);
    fleet.forget(0);
    let run = env.run(&["deploy", "production", "v2", "--reason", "t"]);
    run.expect(4);
    assert!(run.stderr.contains("is not known") && run.stderr.contains("ssh-keyscan"), "{}", run.stderr);
    assert_eq!(currents(&fleet), vec![Some(1); 3]);
}

#[test]
fn a_host_lost_mid_deploy_fails_the_deploy_and_leaves_no_host_switched() {
    let (env, fleet) = setup(3, &[], "build = [\"sleep\", \"3\"]");
    env.run(&["deploy", "production", "v1", "--reason", "t"]).expect(0);
    let child =
        env.cmd(&["deploy", "production", "v2", "--reason", "t"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Lost while it builds: once its build log exists on the host.
    let started = std::time::Instant::now();
    while !fleet.file(1, ".lastgood/build-2.log").exists() {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the build never started on host 1");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    fleet.stop(1);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("build") && stderr.contains("FAILED"), "{stderr}");
    fleet.start_again(1);
    assert_eq!(currents(&fleet), vec![Some(1); 3]);
    all_serve(&env, &fleet, "v1");
    // With the host back, the same version deploys (its half-built release is redone).
    env.run(&["deploy", "production", "v2", "--reason", "t"]).expect(0);
    all_serve(&env, &fleet, "v2");
}

#[test]
fn a_controller_killed_mid_fleet_resumes_to_one_release() {
    let (env, fleet) = setup(3, &[], "batch = 1");
    env.run(&["deploy", "production", "v1", "--reason", "t"]).expect(0);
    // Killed right after the first host switched.
    let run = env.run_crashing("done:switch", &["deploy", "production", "v2", "--reason", "t"]);
    assert_eq!(run.signal, Some(9), "{}", run.stderr);
    assert_eq!(currents(&fleet), vec![Some(2), Some(1), Some(1)]);
    env.run(&["status", "production"]).expect(0);
    env.run(&["deploy", "production", "v2", "--reason", "t"]).expect(5);
    env.run(&["resume", "production"]).expect(0);
    assert_eq!(currents(&fleet), vec![Some(2); 3]);
    all_serve(&env, &fleet, "v2");

    // And killed again, then aborted: every host returns to v2.
    let run = env.run_crashing("done:switch", &["rollback", "production", "--to", "v1", "--reason", "t"]);
    assert_eq!(run.signal, Some(9));
    env.run(&["resume", "production", "--abort"]).expect(0);
    assert_eq!(currents(&fleet), vec![Some(2); 3]);
    all_serve(&env, &fleet, "v2");
}

#[test]
fn a_host_back_with_the_wrong_release_is_shown_and_converged() {
    let (env, fleet) = setup(3, &[], "");
    env.run(&["deploy", "production", "v1", "--reason", "t"]).expect(0);
    env.run(&["deploy", "production", "v2", "--reason", "t"]).expect(0);
    // Host 1 is restored from an old snapshot: its `current` says #1.
    let out = fleet.ssh(1, &format!("cd {} && ln -sfn releases/1 current", fleet.deploy_to().display()));
    assert!(out.status.success());
    let text = env.run(&["status", "production"]).expect(0).stdout.clone();
    assert!(text.contains("DIFFERS"), "{text}");
    // A rollback to the current release is not "in place": host 1 is switched back.
    let run = env.run(&["rollback", "production", "--to", "#2", "--yes", "--reason", "host 1 came back old"]);
    run.expect(0);
    assert_eq!(currents(&fleet), vec![Some(2); 3]);
    all_serve(&env, &fleet, "v2");
}

#[test]
fn a_host_that_saw_a_newer_epoch_refuses_an_older_operation() {
    let (env, fleet) = setup(2, &[], "");
    env.run(&["deploy", "production", "v1", "--reason", "t"]).expect(0);
    // A newer holder (epoch 1000) reached host 1 first.
    std::fs::write(fleet.file(1, ".lastgood/epoch"), "1000\n").unwrap();
    let run = env.run(&["deploy", "production", "v2", "--reason", "t"]);
    run.expect(5);
    assert!(run.stderr.contains("lost its lock"), "{}", run.stderr);
    assert_eq!(fleet.read_link(1, "current").unwrap().to_str(), Some("releases/1"));
}

#[test]
fn halt_stops_where_it_failed_and_abort_returns_every_host() {
    let (env, fleet) = setup(3, &[1], "on_failure = \"halt\"");
    env.run(&["deploy", "production", "v1", "--reason", "t"]).expect(0);
    let run = env.run(&["deploy", "production", "v3", "--reason", "t"]);
    run.expect(5);
    assert!(run.stderr.contains("halted at step `verify`"), "{}", run.stderr);
    assert_eq!(currents(&fleet), vec![Some(2); 3]);
    let status = env.status();
    assert_eq!(status["interrupted"]["step"], "verify", "{status}");
    env.run(&["resume", "production", "--abort"]).expect(0);
    assert_eq!(currents(&fleet), vec![Some(1); 3]);
    all_serve(&env, &fleet, "v1");
}

#[test]
fn hostile_hosts_are_refused_in_the_config() {
    let env = TestEnv::new(BIN);
    for (hosts, expect) in [
        (r#"["ssh://-oProxyCommand=touch${IFS}x"]"#, "hosts:"),
        (r#"["ssh://root@host;id"]"#, "hosts:"),
        (r#"["ssh://$(id)@host"]"#, "the user may hold only"),
        (r#"["local", "ssh://a"]"#, "mix of"),
        (r#"["ssh://a", "ssh://a"]"#, "listed twice"),
        (r#"["ftp://a"]"#, "expected ssh://"),
    ] {
        env.write("lastgood.toml", &format!("[environments.production]\ndeploy_to = \"d\"\nhosts = {hosts}\n"));
        let run = env.run(&["status", "production"]);
        run.expect(2);
        assert!(run.stderr.contains(expect), "{hosts}: {}", run.stderr);
    }
    env.write("lastgood.toml", "[environments.production]\ndeploy_to = \"d\"\ncanary = 1\n");
    env.run(&["status", "production"]).expect(2);
    assert!(!env.path().join("x").exists());
}

/// A bake window on a fleet watches the process lastgood supervises on every host,
/// through the hosts' agents: v3's app exits two seconds after it started on host 1
/// (it passed its checks), which is a regression at once, named with its host, and
/// every host returns to v2.
#[test]
fn a_process_that_dies_on_one_host_during_the_bake_window_returns_the_fleet() {
    let monitor =
        "\n[environments.production.monitor]\nduration = \"20s\"\ninterval = \"1s\"\nfailures = 2\nchecks = false\n";
    let (mut env, fleet) = setup(2, &[], monitor);
    env.run(&["deploy", "production", "v1", "--reason", "t", "--no-monitor"]).expect(0);
    env.run(&["deploy", "production", "v2", "--reason", "t", "--no-monitor"]).expect(0);
    let host1 = fleet.hosts()[1].addr.clone();
    env.commit_version("v4", &[("fail-on", &format!("{host1}\n")), ("bad.env", "HEALTH=ok\nEXIT_AFTER=2\n")]);
    let t = std::time::Instant::now();
    let run = env.run(&["deploy", "production", "v4", "--reason", "t"]);
    run.expect(1);
    assert!(run.stderr.contains("regression of signal `process`"), "{}", run.stderr);
    assert!(run.stderr.contains(&host1) && run.stderr.contains("the process is gone"), "{}", run.stderr);
    assert!(t.elapsed() < std::time::Duration::from_secs(18), "caught before the window ended");
    assert_eq!(env.state_of(3), "failed", "v4 is the third release");
    all_serve(&env, &fleet, "v2");
}
