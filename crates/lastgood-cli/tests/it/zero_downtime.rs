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
