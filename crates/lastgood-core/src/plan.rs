//! Plans: the ordered steps an operation will take, computed before anything changes.
//!
//! A plan is a pure function of what the ledger knows (current release, target,
//! scope) and what the environment is configured to do (build? start how? check?).
//! No I/O happens here, which is why `--dry-run` can print exactly what a real run
//! would do, and why the planner is property-tested.
//!
//! A rollback is the same kind of plan as a deploy, pointed backwards: it reuses the
//! release directory that is already there, so it never contains `export` or `build`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{CommitId, ReleaseId, Scope};

/// One idempotent step. Each can tell whether its effect is already in place, which
/// is what makes `resume` safe after a crash at any point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Write the commit's tree into `releases/<id>/`.
    Export { release: ReleaseId, commit: CommitId },
    /// Run `build` in the release directory.
    Build { release: ReleaseId },
    /// Point `current` at the release (atomic rename).
    Switch { release: ReleaseId },
    /// Put the release's snapshot of each config file back in place.
    RestoreConfig { release: ReleaseId },
    /// Start the app on the release now current (stopping the old process first).
    Restart { release: ReleaseId },
    /// Run the health checks against the release.
    Verify { release: ReleaseId },
    /// Stop the supervised app (undoing a first deploy).
    Stop,
    /// Remove `current` (undoing a first deploy).
    Unlink,
    /// Remove release directories that retention no longer protects.
    Cleanup,
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Export { .. } => "export",
            Self::Build { .. } => "build",
            Self::Switch { .. } => "switch",
            Self::RestoreConfig { .. } => "config",
            Self::Restart { .. } => "restart",
            Self::Verify { .. } => "verify",
            Self::Stop => "stop",
            Self::Unlink => "unlink",
            Self::Cleanup => "cleanup",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Export { release, commit } => {
                write!(f, "export {} into releases/{}", commit.short(), release.0)
            }
            Self::Build { release } => write!(f, "build in releases/{}", release.0),
            Self::Switch { release } => write!(f, "point current at releases/{}", release.0),
            Self::RestoreConfig { release } => write!(f, "restore config files of {release}"),
            Self::Restart { release } => write!(f, "restart the app on {release}"),
            Self::Verify { release } => write!(f, "run the health checks against {release}"),
            Self::Stop => f.write_str("stop the app"),
            Self::Unlink => f.write_str("remove current"),
            Self::Cleanup => f.write_str("remove release directories retention no longer keeps"),
        }
    }
}

/// Why a step is in the journal: the operation's own path, the automatic return to the
/// last good release after a failed deploy, or `resume --abort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Forward,
    Rollback,
    Abort,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forward => "forward",
            Self::Rollback => "rollback",
            Self::Abort => "abort",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "forward" => Self::Forward,
            "rollback" => Self::Rollback,
            "abort" => Self::Abort,
            _ => return None,
        })
    }
}

/// What the environment's configuration makes an operation do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub build: bool,
    /// `run` or `restart` is configured.
    pub start: bool,
    pub config_files: bool,
    /// Health checks will run (configured and not skipped with `--no-verify`).
    pub verify: bool,
}

/// A deploy of a new release: export, build, switch, start, verify, clean up.
pub fn deploy(shape: Shape, release: ReleaseId, commit: CommitId) -> Vec<Step> {
    let mut steps = vec![Step::Export { release, commit }];
    if shape.build {
        steps.push(Step::Build { release });
    }
    steps.push(Step::Switch { release });
    if shape.start {
        steps.push(Step::Restart { release });
    }
    if shape.verify {
        steps.push(Step::Verify { release });
    }
    steps.push(Step::Cleanup);
    steps
}

/// A return to `target`: code and config as the scope says, then start and verify.
///
/// `current` is the release serving now (None when nothing was ever deployed).
/// The app is restarted on whichever release's code serves afterwards.
pub fn rollback(shape: Shape, current: Option<ReleaseId>, target: ReleaseId, scope: Scope) -> Vec<Step> {
    let mut steps = Vec::new();
    let code_moves = scope.includes_code() && current != Some(target);
    if code_moves {
        steps.push(Step::Switch { release: target });
    }
    if scope.includes_config() && shape.config_files {
        steps.push(Step::RestoreConfig { release: target });
    }
    let serving = if scope.includes_code() { Some(target) } else { current };
    if let Some(serving) = serving {
        if shape.start && !steps.is_empty() {
            steps.push(Step::Restart { release: serving });
        }
        if shape.verify {
            steps.push(Step::Verify { release: serving });
        }
    }
    steps
}

/// Undoing a deploy or rollback that was interrupted: back to `from`, or, for a first
/// deploy, back to nothing.
pub fn undo(shape: Shape, from: Option<ReleaseId>) -> Vec<Step> {
    match from {
        Some(from) => {
            let mut steps = vec![Step::Switch { release: from }];
            if shape.config_files {
                steps.push(Step::RestoreConfig { release: from });
            }
            if shape.start {
                steps.push(Step::Restart { release: from });
            }
            if shape.verify {
                steps.push(Step::Verify { release: from });
            }
            steps
        }
        None => {
            let mut steps = Vec::new();
            if shape.start {
                steps.push(Step::Stop);
            }
            steps.push(Step::Unlink);
            steps
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn commit() -> CommitId {
        CommitId::parse(&"a".repeat(40)).unwrap()
    }
    fn shapes() -> impl Strategy<Value = Shape> {
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(build, start, config_files, verify)| Shape { build, start, config_files, verify })
    }
    fn scopes() -> impl Strategy<Value = Scope> {
        prop_oneof![Just(Scope::Full), Just(Scope::Code), Just(Scope::Config)]
    }
    fn pos(steps: &[Step], name: &str) -> Option<usize> {
        steps.iter().position(|s| s.name() == name)
    }

    proptest! {
        #[test]
        fn a_rollback_never_builds_or_exports(shape in shapes(), cur in proptest::option::of(1u64..50), t in 1u64..50, scope in scopes()) {
            let steps = rollback(shape, cur.map(ReleaseId), ReleaseId(t), scope);
            let builds = steps.iter().any(|s| matches!(s, Step::Export { .. } | Step::Build { .. } | Step::Cleanup));
            prop_assert!(!builds, "{:?}", steps);
        }

        #[test]
        fn a_rollback_touches_only_its_scope(shape in shapes(), cur in 1u64..50, t in 1u64..50, scope in scopes()) {
            let steps = rollback(shape, Some(ReleaseId(cur)), ReleaseId(t), scope);
            if !scope.includes_code() { prop_assert!(pos(&steps, "switch").is_none()); }
            if !scope.includes_config() { prop_assert!(pos(&steps, "config").is_none()); }
            if scope.includes_code() && cur != t { prop_assert_eq!(pos(&steps, "switch"), Some(0)); }
        }

        #[test]
        fn restart_follows_every_change_and_verify_comes_last(shape in shapes(), cur in proptest::option::of(1u64..50), t in 1u64..50, scope in scopes()) {
            let steps = rollback(shape, cur.map(ReleaseId), ReleaseId(t), scope);
            if let (Some(r), Some(s)) = (pos(&steps, "restart"), pos(&steps, "switch")) { prop_assert!(s < r); }
            if let (Some(r), Some(c)) = (pos(&steps, "restart"), pos(&steps, "config")) { prop_assert!(c < r); }
            if let Some(v) = pos(&steps, "verify") { prop_assert_eq!(v, steps.len() - 1); }
        }

        #[test]
        fn a_deploy_builds_before_it_switches_and_switches_before_it_starts(shape in shapes(), id in 1u64..1000) {
            let steps = deploy(shape, ReleaseId(id), commit());
            prop_assert_eq!(pos(&steps, "export"), Some(0));
            let switch = pos(&steps, "switch").unwrap();
            if let Some(b) = pos(&steps, "build") { prop_assert!(b < switch); }
            if let Some(r) = pos(&steps, "restart") { prop_assert!(switch < r); }
            if let (Some(r), Some(v)) = (pos(&steps, "restart"), pos(&steps, "verify")) { prop_assert!(r < v); }
            prop_assert_eq!(steps.last(), Some(&Step::Cleanup));
            prop_assert_eq!(pos(&steps, "restart").is_some(), shape.start);
            prop_assert_eq!(pos(&steps, "verify").is_some(), shape.verify);
        }

        #[test]
        fn undo_returns_to_where_it_started(shape in shapes(), from in proptest::option::of(1u64..50)) {
            let steps = undo(shape, from.map(ReleaseId));
            match from {
                Some(f) => prop_assert_eq!(&steps[0], &Step::Switch { release: ReleaseId(f) }),
                None => prop_assert_eq!(steps.last(), Some(&Step::Unlink)),
            }
        }
    }

    #[test]
    fn rolling_back_to_current_with_code_scope_does_nothing_to_code() {
        let shape = Shape { build: true, start: true, config_files: false, verify: true };
        let steps = rollback(shape, Some(ReleaseId(3)), ReleaseId(3), Scope::Code);
        assert_eq!(steps, vec![Step::Verify { release: ReleaseId(3) }]);
    }
}
