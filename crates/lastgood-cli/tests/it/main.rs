//! lastgood's integration tests: the built binary against real git repositories,
//! a real HTTP app it starts and stops, and real processes killed mid-operation.
//! One test binary with a module per area, so linking stays cheap.
//!
//! `outputs` and `errors` pin the user-facing contract: whole outputs as insta
//! snapshots in `tests/it/snapshots/`, filtered by `TestEnv::filters`. After a change
//! to what lastgood prints, review the new text and accept it with
//! `INSTA_UPDATE=always cargo test -p lastgood-cli --test it -- outputs errors`.

/// Snapshots a run's whole output (exit code, stdout and stderr) as
/// `snapshots/it__<module>__<name>.snap`, with the workspace's paths, port, times,
/// pids and hashes filtered.
macro_rules! snapshot {
    ($name:expr, $env:expr, $run:expr) => {{
        let mut settings = insta::Settings::clone_current();
        for (re, with) in $env.filters() {
            settings.add_filter(&re, with);
        }
        settings.bind(|| insta::assert_snapshot!($name, $run.whole_output()));
    }};
}

mod alembic;
mod bake;
mod bake_prometheus;
mod browser;
mod compose_server;
mod connections;
mod containers;
mod crash;
mod database;
mod deploy;
mod diagnose;
mod errors;
mod fleet;
mod gitops_branch;
mod input;
mod lock;
mod outputs;
mod pipelines;
mod readiness;
mod record;
mod report;
mod restore;
mod rollback;
mod runtimes;
mod serve;
mod team_ledger;
mod zero_downtime;

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

/// The same with the clock and the machine's name pinned, for snapshots.
pub fn pinned_env_with_versions(n: u32) -> TestEnv {
    let mut env = env_with_versions(n);
    env.pin_context();
    env
}

/// v1, v2, v3 deployed and good in `env` (which has them tagged); v3 current.
pub fn three_good(env: TestEnv) -> TestEnv {
    for v in ["v1", "v2", "v3"] {
        deploy_ok(&env, v);
    }
    env
}

/// Deploys and expects success.
pub fn deploy_ok(env: &TestEnv, version: &str) {
    env.test().args(["deploy", "production", version, "--reason", "test"]).run();
}
