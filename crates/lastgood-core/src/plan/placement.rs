//! Where each step of a plan acts: on this machine (`local`), or on the hosts of a
//! fleet, recorded in the step's `host` column.
//!
//! For a fleet, the steps that change hosts (export, config, build, switch, restart,
//! verify, route, retire, stop, unlink, cleanup) act on every host; database steps run once, from the
//! controller (their schema tool and backups then run on the first host). A fleet deploy with `canary` or `batch` repeats switch, restart and
//! verify once per wave, canary hosts first; every later wave starts only after the
//! one before passed its checks. Runtimes that switch from the controller (a pipeline,
//! a repository) have no fleet, so all their steps are `local`.

use super::{Phase, Step};
use crate::config::Environment;
use crate::model::{OperationKind, SshHost};

/// The `host` column of steps that run on the controller.
pub const LOCAL: &str = "local";

/// Gives each planned step the hosts it acts on, expanding waves for a fleet deploy.
pub fn place(env: &Environment, steps: Vec<Step>, phase: Phase, kind: OperationKind) -> Vec<(Step, Phase, String)> {
    if env.hosts.is_empty() {
        return steps.into_iter().map(|s| (s, phase, LOCAL.to_owned())).collect();
    }
    let all = labels(&env.hosts);
    let on_hosts = |s: &Step| {
        matches!(
            s,
            Step::Export { .. }
                | Step::RestoreConfig { .. }
                | Step::Build { .. }
                | Step::Switch { .. }
                | Step::Restart { .. }
                | Step::Verify { .. }
                | Step::Route { .. }
                | Step::Retire { .. }
                | Step::Stop
                | Step::Unlink
                | Step::Cleanup
        )
    };
    let waves = waves(env);
    let rolling = kind == OperationKind::Deploy && phase == Phase::Forward && waves.len() > 1;
    if !rolling {
        return steps
            .into_iter()
            .map(|s| {
                let h = if on_hosts(&s) { all.clone() } else { LOCAL.to_owned() };
                (s, phase, h)
            })
            .collect();
    }
    // Switch, restart and verify once per wave; everything else once for all.
    let in_wave = |s: &Step| {
        matches!(
            s,
            Step::Switch { .. } | Step::Restart { .. } | Step::Verify { .. } | Step::Route { .. } | Step::Retire { .. }
        )
    };
    let first = steps.iter().position(in_wave).unwrap_or(steps.len());
    let last = steps.iter().rposition(in_wave).map(|i| i + 1).unwrap_or(first);
    let mut out = Vec::new();
    for s in &steps[..first] {
        out.push((s.clone(), phase, if on_hosts(s) { all.clone() } else { LOCAL.to_owned() }));
    }
    for wave in &waves {
        let label = labels(wave);
        for s in &steps[first..last] {
            out.push((s.clone(), phase, label.clone()));
        }
    }
    for s in &steps[last..] {
        out.push((s.clone(), phase, if on_hosts(s) { all.clone() } else { LOCAL.to_owned() }));
    }
    out
}

/// The rollout's waves: the canary hosts, then batches of the rest.
pub fn waves(env: &Environment) -> Vec<Vec<SshHost>> {
    let hosts = &env.hosts;
    let mut out = Vec::new();
    let canary = env.rollout.canary.min(hosts.len());
    if canary > 0 {
        out.push(hosts[..canary].to_vec());
    }
    let rest = &hosts[canary..];
    let size = env.rollout.batch.unwrap_or(rest.len()).max(1);
    for chunk in rest.chunks(size) {
        out.push(chunk.to_vec());
    }
    out
}

/// The `host` column naming every host of the environment (`local` without hosts).
pub fn everywhere(env: &Environment) -> String {
    if env.hosts.is_empty() { LOCAL.to_owned() } else { labels(&env.hosts) }
}

fn labels(hosts: &[SshHost]) -> String {
    hosts.iter().map(SshHost::label).collect::<Vec<_>>().join(",")
}
