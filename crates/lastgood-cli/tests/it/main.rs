//! lastgood's integration tests: the built binary against real git repositories,
//! a real HTTP app it starts and stops, and real processes killed mid-operation.
//! One test binary with a module per area, so linking stays cheap.

mod containers;
mod crash;
mod database;
mod deploy;
mod diagnose;
mod fleet;
mod input;
mod lock;
mod record;
mod report;
mod rollback;
mod runtimes;

use lastgood_testkit::TestEnv;

pub const BIN: &str = env!("CARGO_BIN_EXE_lastgood");

/// A workspace with versions v1..=v`n` tagged (all healthy).
pub fn env_with_versions(n: u32) -> TestEnv {
    let mut env = TestEnv::new(BIN);
    for i in 1..=n {
        env.commit_version(&format!("v{i}"), &[]);
    }
    env
}

/// Deploys and expects success.
pub fn deploy_ok(env: &TestEnv, version: &str) {
    env.run(&["deploy", "production", version, "--reason", "test"]).expect(0);
}
