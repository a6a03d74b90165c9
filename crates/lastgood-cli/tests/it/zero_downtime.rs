//! Zero-downtime switches behind lastgood's proxy (issue 18): a real sample app that
//! warms up before it listens and finishes its requests on SIGTERM, a bounded load
//! generator on loopback hitting the proxy's address while deploys, failed deploys,
//! rollbacks and restarts run, and `kill -9` of the proxy and of lastgood itself.
//!
//! Each load counts every answer: zero failed requests is asserted on hundreds of
//! requests spread before, during and after the switch, and the versions the load saw
//! say which releases received traffic.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;

use crate::{BIN, deploy_ok};
use lastgood_testkit::load::{Load, Tally};
use lastgood_testkit::{Check, Config, TestEnv};

/// Client threads of every load: few, since the machine has two cores.
const THREADS: usize = 3;
/// Answers each load must see before and after the operation.
const AROUND: u64 = 150;
const LIMIT: Duration = Duration::from_secs(120);

fn proxied(versions: u32, warmup_ms: u64) -> TestEnv {
    let mut env = TestEnv::new(BIN);
    for i in 1..=versions {
        env.commit_version(&format!("v{i}"), &[]);
    }
    env.configure(&config(warmup_ms));
    env
}

/// The proxy on the workspace's port; the health check on `{port}`, patient enough
/// for the warm-up.
fn config(warmup_ms: u64) -> Config {
    Config::new().proxy().warmup_ms(warmup_ms).checks(vec![Check::health().key("retries", 100)])
}

fn addr(env: &TestEnv) -> SocketAddr {
    ([127, 0, 0, 1], env.port).into()
}

/// Runs `op` under load on the proxy's address; what the load saw.
fn under_load(env: &TestEnv, op: impl FnOnce()) -> Tally {
    let load = Load::start(addr(env), "/version", THREADS, LIMIT);
    assert!(load.wait_for(AROUND, Duration::from_secs(30)), "the load got no answers before the operation");
    op();
    assert!(load.wait_for(AROUND, Duration::from_secs(30)), "the load got no answers after the operation");
    load.stop()
}

#[track_caller]
fn assert_no_failure(t: &Tally, what: &str) {
    assert_eq!(t.failed, 0, "{what}: {} of {} requests failed: {:?}", t.failed, t.ok + t.failed, t.errors);
    assert!(t.ok >= 2 * AROUND, "{what}: only {} requests", t.ok);
}

/// Exactly one release process runs, the proxy routes to it, and it is the ledger's
/// current release.
#[track_caller]
fn assert_one_serving(env: &TestEnv, release: u64) {
    let st = env.status();
    assert_eq!(st["current"]["id"], json!(release), "{st}");
    assert_eq!(st["proxy"]["release"], json!(release), "{st}");
    assert_eq!(st["proxy"]["running"], json!(true), "{st}");
    assert_eq!(st["app"]["release"], json!(release), "{st}");
    let instances = std::fs::read_dir(env.deploy_to().join(".lastgood/instances")).unwrap().count();
    // The proxy and one release.
    assert_eq!(env.supervised_pids().len(), 2, "{st}\ninstances: {instances}");
    assert_eq!(env.serving(), st["current"]["version"].as_str().map(str::to_owned), "{st}");
}

#[test]
fn a_deploy_behind_the_proxy_fails_no_request() {
    let env = proxied(2, 500);
    deploy_ok(&env, "v1");
    assert_one_serving(&env, 1);
    let t = under_load(&env, || deploy_ok(&env, "v2"));
    assert_no_failure(&t, "deploy");
    assert!(t.bodies.contains_key("v1") && t.bodies.contains_key("v2"), "{:?}", t.bodies);
    assert_one_serving(&env, 2);
}

#[test]
fn a_failed_deploy_is_never_seen_by_users_and_costs_them_nothing() {
    let env = proxied(2, 500);
    deploy_ok(&env, "v1");
    // v1 read its config when it started; v2 starts unhealthy.
    env.write("app.env", "HEALTH=fail\n");
    let t = under_load(&env, || {
        env.test().args(["deploy", "production", "v2", "--reason", "t"]).status(1).run();
    });
    assert_no_failure(&t, "failed deploy");
    assert_eq!(t.bodies.keys().collect::<Vec<_>>(), ["v1"], "the failed release got traffic: {:?}", t.bodies);
    assert_eq!(env.state_of(2), "failed");
    assert_one_serving(&env, 1);
}

/// Stopping the old process failed after the new release took the traffic and passed
/// its checks: the deploy exits 1 and says so, but the release that serves is good and
/// current (not "failed"), and a restart stops the process left over.
#[test]
fn a_failed_retire_leaves_the_new_release_good_and_current() {
    let env = proxied(2, 0);
    deploy_ok(&env, "v1");
    let out = env.run_crashing("err:retire", &["deploy", "production", "v2", "--reason", "t"]);
    out.expect(1);
    assert!(out.stdout.contains("cause: step `retire` failed"), "{out:?}");
    assert!(out.stdout.contains("#2 serves and passed its checks, and stays current"), "{out:?}");
    assert_eq!(env.state_of(2), "good");
    let st = env.status();
    assert_eq!((st["current"]["id"].clone(), st["proxy"]["release"].clone()), (json!(2), json!(2)), "{st}");
    assert_eq!(env.supervised_pids().len(), 3, "the proxy, v2 and v1 left over: {st}");
    env.run(&["restart", "production", "--reason", "stop the leftover"]).expect(0);
    assert_one_serving(&env, 2);
}

#[test]
fn a_release_in_a_crash_loop_never_gets_traffic() {
    let env = proxied(2, 0);
    deploy_ok(&env, "v1");
    // The sample app refuses to start with a bad config value: it exits at once.
    env.write("app.env", "HEALTH=maybe\n");
    let t = under_load(&env, || {
        let out = env.test().args(["deploy", "production", "v2", "--reason", "t"]).status(1).run();
        assert!(out.stderr.contains("exited right after it was started"), "{}", out.stderr);
    });
    assert_no_failure(&t, "crash loop");
    assert_eq!(t.bodies.keys().collect::<Vec<_>>(), ["v1"], "{:?}", t.bodies);
    assert_one_serving(&env, 1);
}

#[test]
fn a_rollback_and_a_restart_fail_no_request() {
    let env = proxied(2, 500);
    deploy_ok(&env, "v1");
    deploy_ok(&env, "v2");
    let t = under_load(&env, || {
        env.test().args(["rollback", "production", "--reason", "t"]).run();
    });
    assert_no_failure(&t, "rollback");
    assert!(t.bodies.contains_key("v1") && t.bodies.contains_key("v2"), "{:?}", t.bodies);
    assert_one_serving(&env, 1);

    let before = env.status()["app"]["pid"].clone();
    let t = under_load(&env, || {
        env.test().args(["restart", "production", "--reason", "t"]).run();
    });
    assert_no_failure(&t, "restart");
    assert_eq!(t.bodies.keys().collect::<Vec<_>>(), ["v1"], "{:?}", t.bodies);
    assert_one_serving(&env, 1);
    assert_ne!(env.status()["app"]["pid"], before, "restart started a new process");
}

#[test]
fn open_connections_to_the_old_release_finish_before_it_stops() {
    let env = proxied(2, 0);
    deploy_ok(&env, "v1");
    // A request in flight on v1 when the switch happens.
    let slow = std::thread::spawn({
        let addr = addr(&env);
        move || lastgood_testkit::load::request(addr, "/slow?ms=1500")
    });
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    deploy_ok(&env, "v2");
    assert_eq!(slow.join().unwrap().as_deref(), Ok("v1"), "the request in flight was cut");
    // The deploy waited for it (drain), not the full drain time.
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
    assert_one_serving(&env, 2);
}

#[test]
fn a_killed_proxy_is_started_again_and_status_says_traffic_was_down() {
    let env = proxied(1, 0);
    deploy_ok(&env, "v1");
    let pid = env.status()["proxy"]["pid"].as_i64().unwrap();
    std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(env.serving(), None, "nothing answers without the proxy");
    let st = env.status();
    assert_eq!(st["proxy"]["running"], json!(false), "{st}");
    assert_eq!(st["proxy"]["pid"], json!(null), "{st}");
    let out = env.test().args(["status", "production"]).run();
    assert!(out.stdout.contains("proxy:     NOT RUNNING: traffic to 127.0.0.1:"), "{}", out.stdout);
    // verify checks the release on its port (passes) and through the proxy (fails).
    let out = env.test().args(["verify", "production"]).status(1).run();
    assert!(out.stdout.contains("through the proxy on 127.0.0.1:"), "{}", out.stdout);

    let out = env.test().args(["restart", "production", "--reason", "proxy died"]).run();
    assert!(out.stderr.contains("the proxy was not running (traffic to 127.0.0.1:"), "{}", out.stderr);
    let st = env.status();
    assert_eq!(st["proxy"]["running"], json!(true), "{st}");
    assert_ne!(st["proxy"]["pid"], json!(pid), "{st}");
    assert!(st["proxy"]["last_outage"]["found_at_ms"].as_u64().is_some(), "{st}");
    assert_eq!(st["proxy"]["last_outage"]["pid"], json!(pid), "{st}");
    let out = env.test().args(["status", "production"]).run();
    assert!(out.stdout.contains("found not running at"), "{}", out.stdout);
    env.test().args(["verify", "production"]).run();
    assert_one_serving(&env, 1);
}

/// The proxy's serving process killed (an OOM kill, a crash): the keeper lastgood
/// recorded as the proxy starts it again within a fraction of a second, with no
/// lastgood command; a failure that repeats is retried with a growing pause.
#[test]
fn a_killed_serving_process_is_restarted_by_the_proxys_keeper_at_once() {
    let env = proxied(1, 0);
    deploy_ok(&env, "v1");
    let keeper = env.status()["proxy"]["pid"].as_i64().unwrap();
    let worker = || {
        let children = std::fs::read_to_string(format!("/proc/{keeper}/task/{keeper}/children")).unwrap_or_default();
        children.split_whitespace().next().map(str::to_owned)
    };
    for round in 0..2 {
        let before = worker().expect("the keeper runs a serving process");
        std::process::Command::new("kill").args(["-9", &before]).status().unwrap();
        let killed = std::time::Instant::now();
        loop {
            if env.serving().as_deref() == Some("v1") && worker().is_some_and(|w| w != before) {
                break;
            }
            assert!(killed.elapsed() < Duration::from_secs(5), "round {round}: no proxy again after 5 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Back in well under a second the first time (100 ms pause), 200 ms the next.
        assert!(killed.elapsed() < Duration::from_secs(2), "round {round}: {:?}", killed.elapsed());
    }
    let st = env.status();
    assert_eq!(st["proxy"]["pid"], json!(keeper), "the same keeper: {st}");
    assert_eq!(st["proxy"]["running"], json!(true), "{st}");
    let log = std::fs::read_to_string(env.deploy_to().join(".lastgood/proxy/proxy.log")).unwrap();
    assert!(log.contains("was killed (signal 9)") && log.contains("restart 2"), "{log}");
    assert_one_serving(&env, 1);
}

/// Every journal boundary of a switch behind the proxy, and inside the route step
/// (the route file written, the proxy not told yet).
fn switch_boundaries() -> Vec<String> {
    let mut fps = vec!["mid:route".to_owned()];
    for step in ["restart", "verify", "route", "retire"] {
        for at in ["intent", "apply", "done"] {
            fps.push(format!("{at}:{step}"));
        }
    }
    fps
}

#[track_caller]
fn crash_deploy(env: &TestEnv, fp: &str) {
    let out = env.run_crashing(fp, &["deploy", "production", "v2", "--reason", "t"]);
    assert_eq!(out.signal, Some(9), "failpoint {fp} did not fire: {out:?}");
}

#[test]
fn lastgood_killed_mid_switch_is_finished_by_resume_with_one_release_serving() {
    for fp in switch_boundaries() {
        let env = proxied(2, 0);
        deploy_ok(&env, "v1");
        crash_deploy(&env, &fp);
        // Whatever the crash left, users are served by one release or the other.
        assert!(matches!(env.serving().as_deref(), Some("v1" | "v2")), "{fp}: {:?}", env.serving());
        env.run(&["resume", "production"]).expect(0);
        assert_eq!(env.state_of(2), "good", "{fp}");
        assert_eq!(env.serving().as_deref(), Some("v2"), "{fp}");
        assert_one_serving(&env, 2);
        env.run(&["resume", "production"]).expect(0);
    }
}

#[test]
fn lastgood_killed_mid_switch_and_aborted_goes_back_with_one_release_serving() {
    for fp in switch_boundaries() {
        let env = proxied(2, 0);
        deploy_ok(&env, "v1");
        crash_deploy(&env, &fp);
        env.run(&["resume", "production", "--abort"]).expect(0);
        assert_eq!(env.state_of(2), "failed", "{fp}");
        assert_eq!(env.serving().as_deref(), Some("v1"), "{fp}");
        assert_one_serving(&env, 1);
    }
}

#[test]
fn port_placeholders_without_a_proxy_and_a_proxy_without_run_are_config_errors() {
    let env = proxied(1, 0);
    // `{port}` in the checks, no proxy.
    env.configure(&Config::new().run(["./app", "--port", "{port}"]));
    let out = env.test().args(["status", "production"]).status(2).run();
    assert!(
        out.stderr.contains("`{port}` is the port lastgood gives each release's process behind its proxy"),
        "{}",
        out.stderr
    );
    env.configure(&Config::new().restart(["true"]).proxy());
    let out = env.test().args(["status", "production"]).status(2).run();
    assert!(
        out.stderr.contains("proxy: the zero-downtime switch fronts a process lastgood runs itself"),
        "{}",
        out.stderr
    );
    env.configure(&Config::new().proxy().proxy_key("ports", "9-3"));
    let out = env.test().args(["status", "production"]).status(2).run();
    assert!(out.stderr.contains("proxy.ports: `9-3` is not a range of ports"), "{}", out.stderr);
}

#[test]
fn a_listen_address_taken_by_someone_else_fails_the_deploy_before_anything_starts() {
    let env = proxied(1, 0);
    let _squatter = std::net::TcpListener::bind(addr(&env)).unwrap();
    let out = env.test().args(["deploy", "production", "v1", "--reason", "t"]).status(1).run();
    assert!(out.stdout.contains("the proxy cannot start on 127.0.0.1:"), "{}", out.stdout);
    assert!(out.stdout.contains("Address already in use"), "{}", out.stdout);
    assert!(out.stdout.contains("stop it or change [proxy] listen"), "{}", out.stdout);
    assert!(env.supervised_pids().is_empty(), "{:?}", env.supervised_pids());
}

#[test]
fn no_free_port_and_a_release_that_never_listens_leave_the_old_release_serving() {
    let mut env = proxied(1, 0);
    // Only one port for releases, and someone else holds it.
    let squatter = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    env.configure(&config(0).proxy_key("ports", format!("{port}-{port}")));
    drop(squatter);
    deploy_ok(&env, "v1");
    env.commit_version("v2", &[]);
    // Another port held by someone else (any free one: a fixed neighbour may be taken).
    let squatter = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let held = squatter.local_addr().unwrap().port();
    env.configure(&config(0).proxy_key("ports", format!("{held}-{held}")));
    let t = under_load(&env, || {
        let out = env.test().args(["deploy", "production", "v2", "--reason", "t"]).status(1).run();
        assert!(out.stdout.contains(&format!("no free port for release #2 in {held}-{held}")), "{}", out.stdout);
        assert!(out.stdout.contains("widen [proxy] ports"), "{}", out.stdout);
    });
    drop(squatter);
    assert_no_failure(&t, "no free port");
    assert_one_serving(&env, 1);

    // A release whose `run` never listens on its port: its checks fail, it is never
    // routed, and the old release keeps serving.
    env.commit_version("v3", &[]);
    env.configure(&Config::new().proxy().run(["sleep", "60"]).checks(vec![Check::health().key("retries", 5)]));
    let t = under_load(&env, || {
        let out = env.test().args(["deploy", "production", "v3", "--reason", "t"]).status(1).run();
        assert!(out.stdout.contains("connection refused"), "{}", out.stdout);
    });
    assert_no_failure(&t, "never listens");
    assert_eq!(t.bodies.keys().collect::<Vec<_>>(), ["v1"], "{:?}", t.bodies);
    assert_one_serving(&env, 1);
}

#[test]
fn each_host_of_a_fleet_has_its_own_proxy_and_switches_without_failing_a_request() {
    let fleet = lastgood_testkit::fleet::Fleet::start(2);
    let mut env = TestEnv::new(BIN);
    env.commit_version("v1", &[]);
    env.commit_version("v2", &[]);
    let hosts: Vec<String> = fleet.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let app = lastgood_testkit::sample_app(&env.bin);
    env.write(
        "lastgood.toml",
        &format!(
            r#"[environments.production]
hosts = [{hosts}]
ssh_config = "{cfg}"
source = "repo"
deploy_to = "{deploy_to}"
run = ["{app}", "--listen", ":{{port}}", "--warmup", "300"]
stop_timeout = "2s"

[environments.production.proxy]
listen = "{{host}}:{port}"
drain = "5s"

[[environments.production.checks]]
http = "http://{{host}}:{{port}}/health"
expect_body = "{{version}}"
interval = "50ms"
retries = 100
"#,
            hosts = hosts.join(", "),
            cfg = fleet.ssh_config().display(),
            deploy_to = fleet.deploy_to().display(),
            app = app.display(),
            port = env.port,
        ),
    );
    deploy_ok(&env, "v1");
    let front: SocketAddr = format!("{}:{}", fleet.hosts()[1].addr, env.port).parse().unwrap();
    let load = Load::start(front, "/version", THREADS, LIMIT);
    assert!(load.wait_for(AROUND, Duration::from_secs(30)));
    deploy_ok(&env, "v2");
    assert!(load.wait_for(AROUND, Duration::from_secs(30)));
    let t = load.stop();
    assert_no_failure(&t, "fleet deploy");
    assert!(t.bodies.contains_key("v1") && t.bodies.contains_key("v2"), "{:?}", t.bodies);
    let st = env.status();
    for h in st["hosts"].as_array().unwrap() {
        assert_eq!(h["proxy"]["release"], json!(2), "{st}");
        assert_eq!(h["proxy"]["running"], json!(true), "{st}");
        assert_eq!(h["proxy"]["instances"].as_array().map(Vec::len), Some(1), "{st}");
        assert_eq!(h["app"], json!(2), "{st}");
    }
    env.test().args(["verify", "production"]).run();
}

#[test]
fn when_drain_ends_the_old_release_gets_sigterm_and_finishes_its_requests() {
    let env = proxied(2, 0);
    // SIGTERM comes when drain ends; the app then has stop_timeout to finish.
    env.configure(&config(0).proxy_key("drain", "100ms").key("stop_timeout", "10s"));
    deploy_ok(&env, "v1");
    // Long enough to outlast the deploy up to its retire step on a loaded machine.
    let slow = std::thread::spawn({
        let addr = addr(&env);
        move || lastgood_testkit::load::request(addr, "/slow?ms=4000")
    });
    std::thread::sleep(Duration::from_millis(300));
    let out = env.test().args(["deploy", "production", "v2", "--reason", "t"]).run();
    assert!(out.stderr.contains("1 connection(s) still open when drain ended"), "{}", out.stderr);
    // Stopped with SIGTERM, the app finished the request before it exited.
    assert_eq!(slow.join().unwrap().as_deref(), Ok("v1"));
    let log = std::fs::read_to_string(env.deploy_to().join(".lastgood/app.log")).unwrap();
    assert!(log.contains("sample-app v1: stopped on SIGTERM"), "{log}");
    assert_one_serving(&env, 2);
}

#[test]
fn an_environment_moved_behind_the_proxy_hands_its_address_over_at_the_switch() {
    let mut env = TestEnv::new(BIN);
    env.commit_version("v1", &[]);
    env.commit_version("v2", &[]);
    // v1 runs without a proxy, on the address the proxy will take.
    env.configure(&Config::new());
    deploy_ok(&env, "v1");
    assert_eq!(env.serving().as_deref(), Some("v1"));
    env.configure(&config(300));
    let out = env.test().args(["deploy", "production", "v2", "--reason", "t"]).run();
    assert!(out.stderr.contains("started before the environment had a proxy"), "{}", out.stderr);
    assert_one_serving(&env, 2);
    assert!(!env.deploy_to().join(".lastgood/app.pid").exists());
}

#[test]
fn a_restart_killed_after_its_new_process_started_ends_with_one_process_either_way() {
    for abort in [false, true] {
        let env = proxied(1, 0);
        deploy_ok(&env, "v1");
        let before = env.status()["app"]["pid"].clone();
        let out = env.run_crashing("done:restart", &["restart", "production", "--reason", "t"]);
        assert_eq!(out.signal, Some(9), "{out:?}");
        assert_eq!(env.serving().as_deref(), Some("v1"), "the old process still serves");
        let state = env.deploy_to().join(".lastgood");
        let staged: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(state.join("proxy/staged.json")).unwrap()).unwrap();
        let pid_file = state.join(format!("instances/{}.pid", staged["port"]));
        let started: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(pid_file).unwrap()).unwrap();
        let args: &[&str] = if abort { &["resume", "production", "--abort"] } else { &["resume", "production"] };
        env.run(args).expect(0);
        assert_one_serving(&env, 1);
        // The process the interrupted restart started was taken, not a third one.
        let now = env.status()["app"]["pid"].clone();
        assert_eq!(now, started["pid"], "abort={abort}");
        assert_ne!(now, before, "abort={abort}");
    }
}

#[test]
fn removing_the_proxy_from_the_config_stops_it_and_what_it_fronted() {
    let env = proxied(2, 0);
    deploy_ok(&env, "v1");
    assert_eq!(env.supervised_pids().len(), 2);
    // The app takes the public address itself again.
    env.configure(&Config::new());
    let out = env.test().args(["deploy", "production", "v2", "--reason", "t"]).run();
    assert!(out.stderr.contains("the environment has no [proxy] any more"), "{}", out.stderr);
    assert_eq!(env.serving().as_deref(), Some("v2"));
    assert_eq!(env.supervised_pids().len(), 1, "only the app: {:?}", env.supervised_pids());
    assert!(env.deploy_to().join(".lastgood/app.pid").exists());
    assert_eq!(env.status()["proxy"], json!(null));
}

#[test]
fn the_plan_and_the_config_error_read_as_documented() {
    let mut env = proxied(2, 0);
    env.pin_context();
    deploy_ok(&env, "v1");
    let out = env.test().args(["deploy", "production", "v2", "--dry-run"]).run();
    snapshot!("proxy_deploy_plan", env, out);
    env.configure(&Config::new().check(Check::http("/health").key("expect_body", "{port}")));
    let out = env.test().args(["deploy", "production", "v2"]).status(2).run();
    snapshot!("port_without_proxy", env, out);
}

/// The bake window (issue 19) behind the proxy: the old release keeps running through
/// the window, so a rollback during it is a route switch to a process that already
/// runs, and users see no failed request either way.
#[test]
fn a_rollback_during_the_bake_window_switches_back_to_the_old_process_still_running() {
    let env = proxied(2, 300);
    env.configure(
        &config(300).table("[environments.production.monitor]\nduration = \"30s\"\ninterval = \"1s\"\nfailures = 2\n"),
    );
    env.test().args(["deploy", "production", "v1", "--reason", "first", "--no-monitor"]).run();
    let v1_pid = env.status()["app"]["pid"].clone();
    let t = under_load(&env, || {
        let child = env
            .cmd(&["deploy", "production", "v2", "--reason", "bake"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until v2 gets the traffic and bakes, with v1 still running beside it.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let baking = loop {
            let st = env.status();
            if st["proxy"]["release"] == json!(2) && st["bake"]["signals"]["process"].is_object() {
                break st;
            }
            assert!(std::time::Instant::now() < deadline, "{st}");
            std::thread::sleep(Duration::from_millis(100));
        };
        // The window watches v2's own process behind the proxy.
        assert_eq!(baking["bake"]["signals"]["process"]["verdict"], "pass", "{baking}");
        assert_eq!(env.supervised_pids().len(), 3, "the proxy, v2, and v1 kept for the window");
        std::thread::sleep(Duration::from_millis(500));
        env.test().args(["rollback", "production", "--reason", "users complain"]).run();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    });
    assert_no_failure(&t, "rollback during the bake window");
    assert!(t.bodies.contains_key("v1") && t.bodies.contains_key("v2"), "{:?}", t.bodies);
    assert_one_serving(&env, 1);
    // The process that served v1 before the deploy serves it again: nothing restarted.
    assert_eq!(env.status()["app"]["pid"], v1_pid);
}
