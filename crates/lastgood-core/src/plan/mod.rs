//! Plans: the ordered steps an operation will take, computed before anything changes.
//!
//! A plan is a pure function of what the ledger knows (current release, target,
//! scope) and what the environment is configured to do (build? start how? check?).
//! No I/O happens here, which is why `--dry-run` can print exactly what a real run
//! would do, and why the planner is property-tested.
//!
//! A rollback is the same kind of plan as a deploy, pointed backwards: it reuses the
//! release directory that is already there, so it never contains `export` or `build`.
//! [`placement`] then gives each step the hosts it acts on (a fleet's waves).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{CommitId, ReleaseId, Scope};

pub mod placement;

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
    /// Back up the database (recorded in the ledger, tied to this operation).
    Backup { release: ReleaseId },
    /// Apply the release's pending migrations (backing up first when the linter finds
    /// a destructive one and the policy is `auto`).
    MigrateUp { release: ReleaseId },
    /// Revert migrations down to the release's schema revision.
    MigrateDown { release: ReleaseId },
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
            Self::Backup { .. } => "backup",
            Self::MigrateUp { .. } => "migrate-up",
            Self::MigrateDown { .. } => "migrate-down",
        }
    }
}

impl Step {
    /// The release the step names, if it names one.
    pub fn release(&self) -> Option<ReleaseId> {
        match self {
            Self::Export { release, .. }
            | Self::Build { release }
            | Self::Switch { release }
            | Self::RestoreConfig { release }
            | Self::Restart { release }
            | Self::Verify { release }
            | Self::Backup { release }
            | Self::MigrateUp { release }
            | Self::MigrateDown { release } => Some(*release),
            Self::Stop | Self::Unlink | Self::Cleanup => None,
        }
    }
}

impl Step {
    /// The step in words every runtime shares, naming the release's version when
    /// known; plans use the runtime's own words ([`crate::runtime::Runtime::describe`])
    /// for the steps a runtime does its own way.
    pub fn words(&self, version: Option<&str>) -> String {
        let of = |id: &ReleaseId| match version {
            Some(v) => format!("{id} ({v})"),
            None => id.to_string(),
        };
        match self {
            Self::Export { release, commit } => format!("export {} for {}", commit.short(), of(release)),
            Self::Build { release } => format!("build {}", of(release)),
            Self::Switch { release } => format!("make {} serve", of(release)),
            Self::RestoreConfig { release } => format!("restore config files of {}", of(release)),
            Self::Restart { release } => format!("restart the app on {}", of(release)),
            Self::Verify { release } => format!("run the health checks against {}", of(release)),
            Self::Stop => "stop the app".into(),
            Self::Unlink => "remove what serves".into(),
            Self::Cleanup => "remove artifacts retention no longer keeps".into(),
            Self::Backup { .. } => "back up the database".into(),
            Self::MigrateUp { release } => format!("apply the pending migrations of {}", of(release)),
            Self::MigrateDown { release } => format!("revert migrations to the schema of {}", of(release)),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words(None))
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
    /// The runtime ships files of its own (export and cleanup steps).
    pub artifacts: bool,
    /// The runtime can remove what serves (undoing a first deploy).
    pub unlink: bool,
    pub build: bool,
    /// `run` or `restart` is configured.
    pub start: bool,
    pub config_files: bool,
    /// Health checks will run (configured and not skipped with `--no-verify`).
    pub verify: bool,
    /// A database with migrations is configured.
    pub migrations: bool,
    /// The app is lastgood's own process, which can be stopped before migrating down.
    pub stoppable: bool,
    /// `backup = "always"`.
    pub backup_always: bool,
}

/// What a rollback does to the database, decided from the ledger and the linter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchemaChange {
    /// Migrations must be reverted to reach the target's schema revision.
    pub migrate_down: bool,
    /// A backup is taken first (a destructive down, or `backup = "always"`).
    pub backup: bool,
}

/// A deploy of a new release: export, build, switch, start, verify, clean up.
pub fn deploy(shape: Shape, release: ReleaseId, commit: Option<CommitId>) -> Vec<Step> {
    let mut steps = Vec::new();
    if let (true, Some(commit)) = (shape.artifacts, commit) {
        steps.push(Step::Export { release, commit });
    }
    if shape.build {
        steps.push(Step::Build { release });
    }
    if shape.migrations {
        if shape.backup_always {
            steps.push(Step::Backup { release });
        }
        steps.push(Step::MigrateUp { release });
    }
    steps.push(Step::Switch { release });
    if shape.start {
        steps.push(Step::Restart { release });
    }
    if shape.verify {
        steps.push(Step::Verify { release });
    }
    if shape.artifacts {
        steps.push(Step::Cleanup);
    }
    steps
}

/// A return to `target`: schema, code and config as the scope says, then start and
/// verify. With schema changes the order is stop, back up, migrate down, switch, start,
/// verify: the newer code never runs against the older schema.
///
/// `current` is the release serving now (None when nothing was ever deployed).
/// The app is restarted on whichever release's code serves afterwards.
pub fn rollback(
    shape: Shape,
    current: Option<ReleaseId>,
    target: ReleaseId,
    scope: Scope,
    schema: SchemaChange,
) -> Vec<Step> {
    let mut steps = Vec::new();
    if scope.includes_db() && schema.migrate_down {
        if shape.stoppable {
            steps.push(Step::Stop);
        }
        if schema.backup {
            steps.push(Step::Backup { release: target });
        }
        steps.push(Step::MigrateDown { release: target });
    }
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
            let mut steps = Vec::new();
            if shape.migrations {
                // A no-op when the deploy never migrated; the step itself refuses a
                // destructive down without consent.
                if shape.stoppable {
                    steps.push(Step::Stop);
                }
                steps.push(Step::MigrateDown { release: from });
            }
            steps.push(Step::Switch { release: from });
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
            if shape.unlink {
                steps.push(Step::Unlink);
            }
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
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(releases, build, start, config_files, verify, migrations, stoppable, backup_always)| Shape {
                    // Only the releases runtime has artifacts, builds, migrations and an unlink.
                    artifacts: releases,
                    unlink: releases,
                    build: build && releases,
                    start: start || stoppable,
                    config_files,
                    verify,
                    migrations: migrations && releases,
                    stoppable,
                    backup_always,
                },
            )
    }
    fn schemas() -> impl Strategy<Value = SchemaChange> {
        (any::<bool>(), any::<bool>()).prop_map(|(migrate_down, backup)| SchemaChange { migrate_down, backup })
    }
    fn scopes() -> impl Strategy<Value = Scope> {
        prop_oneof![Just(Scope::Full), Just(Scope::Code), Just(Scope::Config), Just(Scope::Db)]
    }
    fn pos(steps: &[Step], name: &str) -> Option<usize> {
        steps.iter().position(|s| s.name() == name)
    }

    proptest! {
        #[test]
        fn a_rollback_never_builds_or_exports(shape in shapes(), cur in proptest::option::of(1u64..50), t in 1u64..50, scope in scopes(), db in schemas()) {
            let steps = rollback(shape, cur.map(ReleaseId), ReleaseId(t), scope, db);
            let builds = steps.iter().any(|s| matches!(s, Step::Export { .. } | Step::Build { .. } | Step::Cleanup));
            prop_assert!(!builds, "{:?}", steps);
        }

        #[test]
        fn a_rollback_touches_only_its_scope(shape in shapes(), cur in 1u64..50, t in 1u64..50, scope in scopes(), db in schemas()) {
            let steps = rollback(shape, Some(ReleaseId(cur)), ReleaseId(t), scope, db);
            if !scope.includes_db() { prop_assert!(pos(&steps, "migrate-down").is_none()); }
            if !scope.includes_code() { prop_assert!(pos(&steps, "switch").is_none()); }
            if !scope.includes_config() { prop_assert!(pos(&steps, "config").is_none()); }
            if scope.includes_code() && cur != t && !(db.migrate_down && scope.includes_db()) { prop_assert_eq!(pos(&steps, "switch"), Some(0)); }
        }

        #[test]
        fn restart_follows_every_change_and_verify_comes_last(shape in shapes(), cur in proptest::option::of(1u64..50), t in 1u64..50, scope in scopes(), db in schemas()) {
            let steps = rollback(shape, cur.map(ReleaseId), ReleaseId(t), scope, db);
            if let (Some(r), Some(m)) = (pos(&steps, "restart"), pos(&steps, "migrate-down")) { prop_assert!(m < r); }
            if let (Some(r), Some(s)) = (pos(&steps, "restart"), pos(&steps, "switch")) { prop_assert!(s < r); }
            if let (Some(r), Some(c)) = (pos(&steps, "restart"), pos(&steps, "config")) { prop_assert!(c < r); }
            if let Some(v) = pos(&steps, "verify") { prop_assert_eq!(v, steps.len() - 1); }
        }

        #[test]
        fn a_deploy_builds_before_it_switches_and_switches_before_it_starts(shape in shapes(), id in 1u64..1000) {
            let steps = deploy(shape, ReleaseId(id), Some(commit()));
            prop_assert_eq!(pos(&steps, "export"), shape.artifacts.then_some(0));
            let switch = pos(&steps, "switch").unwrap();
            if let Some(b) = pos(&steps, "build") { prop_assert!(b < switch); }
            if let Some(r) = pos(&steps, "restart") { prop_assert!(switch < r); }
            if let (Some(r), Some(v)) = (pos(&steps, "restart"), pos(&steps, "verify")) { prop_assert!(r < v); }
            prop_assert_eq!(steps.last() == Some(&Step::Cleanup), shape.artifacts);
            prop_assert_eq!(pos(&steps, "restart").is_some(), shape.start);
            prop_assert_eq!(pos(&steps, "verify").is_some(), shape.verify);
        }

        /// DESIGN.md: stop -> migrate down -> switch code and config -> start -> verify.
        #[test]
        fn schema_rollbacks_stop_back_up_and_migrate_before_the_code_moves(shape in shapes(), cur in 1u64..50, t in 1u64..50, db in schemas()) {
            let steps = rollback(shape, Some(ReleaseId(cur)), ReleaseId(t), Scope::Full, db);
            let m = pos(&steps, "migrate-down");
            prop_assert_eq!(m.is_some(), db.migrate_down);
            if let Some(m) = m {
                if let Some(sw) = pos(&steps, "switch") { prop_assert!(m < sw); }
                if let Some(c) = pos(&steps, "config") { prop_assert!(m < c); }
                if let Some(b) = pos(&steps, "backup") { prop_assert!(b < m); }
                prop_assert_eq!(pos(&steps, "backup").is_some(), db.backup);
                prop_assert_eq!(pos(&steps, "stop").is_some(), shape.stoppable);
                if shape.stoppable { prop_assert!(pos(&steps, "restart").is_some()); }
            }
        }

        #[test]
        fn a_deploy_migrates_before_it_switches(shape in shapes(), id in 1u64..1000) {
            let steps = deploy(shape, ReleaseId(id), Some(commit()));
            let m = pos(&steps, "migrate-up");
            prop_assert_eq!(m.is_some(), shape.migrations);
            if let Some(m) = m {
                prop_assert!(m < pos(&steps, "switch").unwrap());
                if let Some(b) = pos(&steps, "build") { prop_assert!(b < m); }
            }
        }

        #[test]
        fn undo_returns_to_where_it_started(shape in shapes(), from in proptest::option::of(1u64..50)) {
            let steps = undo(shape, from.map(ReleaseId));
            match from {
                Some(f) => {
                    let back = Step::Switch { release: ReleaseId(f) };
                    prop_assert!(steps.contains(&back), "{:?}", steps);
                }
                None => prop_assert_eq!(steps.last() == Some(&Step::Unlink), shape.unlink),
            }
        }
    }

    #[test]
    fn rolling_back_to_current_with_code_scope_does_nothing_to_code() {
        let shape = Shape {
            artifacts: true,
            unlink: true,
            build: true,
            start: true,
            config_files: false,
            verify: true,
            migrations: false,
            stoppable: true,
            backup_always: false,
        };
        let steps = rollback(shape, Some(ReleaseId(3)), ReleaseId(3), Scope::Code, SchemaChange::default());
        assert_eq!(steps, vec![Step::Verify { release: ReleaseId(3) }]);
    }
}
