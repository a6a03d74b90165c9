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

pub use crate::database::restore::Source;

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
    Restart {
        release: ReleaseId,
        /// One service of the release (a compose service), else all of it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
    },
    /// Run the health checks against the release.
    Verify { release: ReleaseId },
    /// Watch the release for a while after its switch (the bake window): a regression
    /// fails this step, which returns to the last good release. Old releases a
    /// zero-downtime switch keeps running are stopped only after it.
    Bake { release: ReleaseId, window_ms: u64 },
    /// Send the proxy's new connections to the release's process (zero-downtime switch).
    Route { release: ReleaseId },
    /// Let open connections to every other release's process finish (up to `drain`),
    /// then stop those processes; `release` keeps serving. A step of its own so that a
    /// bake window can keep the old release running until it ends.
    Retire { release: ReleaseId },
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
    /// Put a backup's or a dump's data in place of the database (loaded beside it,
    /// then swapped in; the database it replaces is kept aside).
    RestoreDatabase { source: Source },
    /// Drop the database a verified restore replaced.
    FinishRestore,
    /// Put back the database a restore replaced (`resume --abort`).
    UndoRestore,
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
            Self::Bake { .. } => "bake",
            Self::Route { .. } => "route",
            Self::Retire { .. } => "retire",
            Self::Stop => "stop",
            Self::Unlink => "unlink",
            Self::Cleanup => "cleanup",
            Self::Backup { .. } => "backup",
            Self::MigrateUp { .. } => "migrate-up",
            Self::MigrateDown { .. } => "migrate-down",
            Self::RestoreDatabase { .. } => "restore-db",
            Self::FinishRestore => "drop-aside",
            Self::UndoRestore => "undo-restore",
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
            | Self::Restart { release, .. }
            | Self::Verify { release }
            | Self::Bake { release, .. }
            | Self::Route { release }
            | Self::Retire { release }
            | Self::Backup { release }
            | Self::MigrateUp { release }
            | Self::MigrateDown { release } => Some(*release),
            Self::Stop
            | Self::Unlink
            | Self::Cleanup
            | Self::RestoreDatabase { .. }
            | Self::FinishRestore
            | Self::UndoRestore => None,
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
            Self::Restart { release, service: None } => format!("restart the app on {}", of(release)),
            Self::Restart { release, service: Some(s) } => format!("restart service {s} of {}", of(release)),
            Self::Verify { release } => format!("run the health checks against {}", of(release)),
            Self::Bake { release, window_ms } => format!(
                "watch {} for {} (bake window; a regression returns to the last good release)",
                of(release),
                humantime::format_duration(std::time::Duration::from_millis(*window_ms))
            ),
            Self::Route { release } => format!("send the proxy's new connections to {}", of(release)),
            Self::Retire { release } => {
                format!("drain and stop the processes of releases other than {}", of(release))
            }
            Self::Stop => "stop the app".into(),
            Self::Unlink => "remove what serves".into(),
            Self::Cleanup => "remove artifacts retention no longer keeps".into(),
            Self::Backup { .. } => "back up the database".into(),
            Self::MigrateUp { release } => format!("apply the pending migrations of {}", of(release)),
            Self::MigrateDown { release } => format!("revert migrations to the schema of {}", of(release)),
            Self::RestoreDatabase { source } => format!("restore the database from {}", source.location()),
            Self::FinishRestore => "drop the database the restore replaced (kept aside until it was verified)".into(),
            Self::UndoRestore => "put back the database the restore replaced".into(),
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
    /// The runtime keeps release directories (what serves can be removed: unlink).
    pub artifacts: bool,
    /// A deploy exports the release's tree from its commit (a release directory, or the
    /// tree its migrations run from), and retention cleans the old ones up.
    pub export: bool,
    /// The runtime can remove what serves (undoing a first deploy).
    pub unlink: bool,
    pub build: bool,
    /// `run` or `restart` is configured.
    pub start: bool,
    pub config_files: bool,
    /// Config files are written by lastgood on the hosts (`<deploy_to>/shared/`), so a
    /// deploy puts the new release's snapshot in place before it builds.
    pub ship_config: bool,
    /// The switch itself starts the app (compose, swarm): config files go back before
    /// it, and when the code does not move, the runtime's own restart brings the app
    /// back after a stop or a config change.
    pub switch_starts: bool,
    /// Health checks will run (configured and not skipped with `--no-verify`).
    pub verify: bool,
    /// A database with migrations is configured.
    pub migrations: bool,
    /// The app can be stopped before migrating down: lastgood's own process, a `stop`
    /// program, or the compose services other than the database's.
    pub stoppable: bool,
    /// `backup = "always"`.
    pub backup_always: bool,
    /// `[proxy]`: the target starts beside what serves, then the proxy switches to it
    /// and the old process is drained and stopped (route, retire).
    pub proxy: bool,
}

/// With a proxy, what follows a release's start and checks: the switch of traffic,
/// then the end of every other release's process.
fn route(shape: Shape, steps: &mut Vec<Step>, release: ReleaseId) {
    if shape.proxy {
        steps.push(Step::Route { release });
        steps.push(Step::Retire { release });
    }
}

/// What a rollback does to the database, decided from the ledger and the linter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchemaChange {
    /// Migrations must be reverted to reach the target's schema revision.
    pub migrate_down: bool,
    /// Migrations must be applied to reach it instead (the target is newer than the
    /// schema: a return "forward" to a release the operator rolled back from).
    pub migrate_up: bool,
    /// A backup is taken first (a destructive down, or `backup = "always"`).
    pub backup: bool,
}

/// A deploy of a new release: export, build, switch, start, verify, clean up.
pub fn deploy(shape: Shape, release: ReleaseId, commit: Option<CommitId>) -> Vec<Step> {
    let mut steps = Vec::new();
    if let (true, Some(commit)) = (shape.export, commit) {
        steps.push(Step::Export { release, commit });
    }
    if shape.ship_config {
        steps.push(Step::RestoreConfig { release });
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
        steps.push(Step::Restart { release, service: None });
    }
    if shape.verify {
        steps.push(Step::Verify { release });
    }
    if shape.start {
        route(shape, &mut steps, release);
    }
    if shape.export {
        steps.push(Step::Cleanup);
    }
    steps
}

/// A deploy's steps with a bake window of `window` after its checks (none when zero):
/// after the switch, restart, verify and (with a proxy) the route of traffic to it,
/// before cleanup and before the retire step that stops the old release still running
/// beside it: a regression during the window returns to a process that still runs.
pub fn with_bake(mut steps: Vec<Step>, release: ReleaseId, window: std::time::Duration) -> Vec<Step> {
    if window.is_zero() {
        return steps;
    }
    let after = steps
        .iter()
        .rposition(|s| {
            matches!(s, Step::Switch { .. } | Step::Restart { .. } | Step::Verify { .. } | Step::Route { .. })
        })
        .map_or(steps.len(), |i| i + 1);
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    steps.insert(after, Step::Bake { release, window_ms });
    steps
}

/// A return to `target`: schema, code and config as the scope says, then start and
/// verify. With schema changes the order is stop, back up, migrate down, switch, start,
/// verify: the newer code never runs against the older schema. A return to a newer
/// release migrates up before the switch, as its deploy did.
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
    let mut stopped = false;
    if scope.includes_db() && schema.migrate_down {
        if shape.stoppable {
            steps.push(Step::Stop);
            stopped = true;
        }
        if schema.backup {
            steps.push(Step::Backup { release: target });
        }
        steps.push(Step::MigrateDown { release: target });
    } else if scope.includes_db() && schema.migrate_up {
        // As a deploy does: the older code runs on while the schema moves ahead (that
        // is what an up migration must allow), then the code follows.
        if schema.backup {
            steps.push(Step::Backup { release: target });
        }
        steps.push(Step::MigrateUp { release: target });
    }
    let code_moves = scope.includes_code() && current != Some(target);
    let config = scope.includes_config() && shape.config_files;
    if config && shape.switch_starts {
        steps.push(Step::RestoreConfig { release: target });
    }
    if code_moves {
        steps.push(Step::Switch { release: target });
    }
    if config && !shape.switch_starts {
        steps.push(Step::RestoreConfig { release: target });
    }
    let serving = if scope.includes_code() { Some(target) } else { current };
    if let Some(serving) = serving {
        // A runtime whose switch starts the app restarts it itself only when no switch
        // did: after a stop, or to read restored config files.
        let own = shape.switch_starts && !code_moves && (stopped || config);
        let restarts = (shape.start && !steps.is_empty()) || own;
        if restarts {
            steps.push(Step::Restart { release: serving, service: None });
        }
        if shape.verify {
            steps.push(Step::Verify { release: serving });
        }
        if restarts && shape.start {
            route(shape, &mut steps, serving);
        }
    }
    steps
}

/// An emergency restore: stop the app, put the data in place, start it, verify, and
/// only then drop the database the restore replaced. `current` is the release serving
/// (its app is restarted and checked).
pub fn restore(shape: Shape, current: Option<ReleaseId>, source: Source) -> Vec<Step> {
    let mut steps = Vec::new();
    if shape.stoppable {
        steps.push(Step::Stop);
    }
    steps.push(Step::RestoreDatabase { source });
    if let Some(current) = current {
        if shape.start || shape.switch_starts {
            steps.push(Step::Restart { release: current, service: None });
        }
        if shape.verify {
            steps.push(Step::Verify { release: current });
        }
        if shape.start {
            route(shape, &mut steps, current);
        }
        if shape.verify {
            steps.push(Step::FinishRestore);
        }
    }
    steps
}

/// `lastgood restart`: what serves the current release is restarted (all of it, or
/// one service), then checked. Nothing else moves.
pub fn restart(shape: Shape, current: ReleaseId, service: Option<String>) -> Vec<Step> {
    let mut steps = vec![Step::Restart { release: current, service }];
    if shape.verify {
        steps.push(Step::Verify { release: current });
    }
    if shape.start {
        route(shape, &mut steps, current);
    }
    steps
}

/// Undoing an interrupted restore: the database it replaced goes back, the app is
/// started on it and checked.
pub fn undo_restore(shape: Shape, current: Option<ReleaseId>) -> Vec<Step> {
    let mut steps = Vec::new();
    if shape.stoppable {
        steps.push(Step::Stop);
    }
    steps.push(Step::UndoRestore);
    if let Some(current) = current {
        if shape.start || shape.switch_starts {
            steps.push(Step::Restart { release: current, service: None });
        }
        if shape.verify {
            steps.push(Step::Verify { release: current });
        }
        if shape.start {
            route(shape, &mut steps, current);
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
            if shape.config_files && shape.switch_starts {
                steps.push(Step::RestoreConfig { release: from });
            }
            steps.push(Step::Switch { release: from });
            if shape.config_files && !shape.switch_starts {
                steps.push(Step::RestoreConfig { release: from });
            }
            if shape.start {
                steps.push(Step::Restart { release: from, service: None });
            }
            if shape.verify {
                steps.push(Step::Verify { release: from });
            }
            if shape.start {
                route(shape, &mut steps, from);
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
            (any::<bool>(), any::<bool>()),
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
                |(
                    (releases, compose),
                    build,
                    start,
                    config_files,
                    ship,
                    verify,
                    migrations,
                    stoppable,
                    backup_always,
                )| Shape {
                    // Only the releases runtime has artifacts, builds, migrations and an unlink.
                    artifacts: releases,
                    export: releases,
                    unlink: releases,
                    build: build && releases,
                    // A compose stack starts on its switch, with no `run` or `restart`.
                    start: !compose && (start || stoppable),
                    config_files,
                    ship_config: config_files && ship,
                    switch_starts: compose,
                    verify,
                    migrations: migrations && releases,
                    stoppable,
                    backup_always,
                    proxy: false,
                },
            )
    }
    fn schemas() -> impl Strategy<Value = SchemaChange> {
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(moves, up, backup)| SchemaChange {
            migrate_down: moves && !up,
            migrate_up: moves && up,
            backup,
        })
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
            if !scope.includes_db() { prop_assert!(pos(&steps, "migrate-down").is_none() && pos(&steps, "migrate-up").is_none()); }
            if !scope.includes_code() { prop_assert!(pos(&steps, "switch").is_none()); }
            if !scope.includes_config() { prop_assert!(pos(&steps, "config").is_none()); }
            // The switch comes first, after the config files when the switch starts the app.
            let config_first = usize::from(shape.switch_starts && shape.config_files && scope.includes_config());
            if scope.includes_code() && cur != t && !((db.migrate_down || db.migrate_up) && scope.includes_db()) { prop_assert_eq!(pos(&steps, "switch"), Some(config_first)); }
        }

        #[test]
        fn restart_follows_every_change_and_verify_comes_last(shape in shapes(), cur in proptest::option::of(1u64..50), t in 1u64..50, scope in scopes(), db in schemas()) {
            let steps = rollback(shape, cur.map(ReleaseId), ReleaseId(t), scope, db);
            if let (Some(r), Some(m)) = (pos(&steps, "restart"), pos(&steps, "migrate-down")) { prop_assert!(m < r); }
            if let (Some(r), Some(s)) = (pos(&steps, "restart"), pos(&steps, "switch")) { prop_assert!(s < r); }
            if let (Some(r), Some(c)) = (pos(&steps, "restart"), pos(&steps, "config")) { prop_assert!(c < r); }
            if let Some(v) = pos(&steps, "verify") { prop_assert_eq!(v, steps.len() - 1); }
            // The app never starts on the old code with config it has not read yet.
            if let (true, Some(c), Some(s)) = (shape.switch_starts, pos(&steps, "config"), pos(&steps, "switch")) { prop_assert!(c < s); }
            // Restored config files are read: by a restart, or by the switch that starts the app.
            if pos(&steps, "config").is_some() && cur.is_some() {
                let read = pos(&steps, "restart").is_some() || pos(&steps, "switch").is_some() || !(shape.start || shape.switch_starts);
                prop_assert!(read, "{:?}", steps);
            }
        }

        #[test]
        fn a_deploy_builds_before_it_switches_and_switches_before_it_starts(shape in shapes(), id in 1u64..1000) {
            let steps = deploy(shape, ReleaseId(id), Some(commit()));
            prop_assert_eq!(pos(&steps, "export"), shape.export.then_some(0));
            let switch = pos(&steps, "switch").unwrap();
            if let Some(c) = pos(&steps, "config") { prop_assert!(c < switch && shape.ship_config); }
            if let (Some(c), Some(b)) = (pos(&steps, "config"), pos(&steps, "build")) { prop_assert!(c < b); }
            if let Some(b) = pos(&steps, "build") { prop_assert!(b < switch); }
            if let Some(r) = pos(&steps, "restart") { prop_assert!(switch < r); }
            if let (Some(r), Some(v)) = (pos(&steps, "restart"), pos(&steps, "verify")) { prop_assert!(r < v); }
            prop_assert_eq!(steps.last() == Some(&Step::Cleanup), shape.export);
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
                // What was stopped comes back: a restart, or a switch that starts it.
                if shape.stoppable {
                    let started = pos(&steps, "restart").is_some() || (shape.switch_starts && pos(&steps, "switch").is_some());
                    prop_assert!(started, "{:?}", steps);
                }
            }
        }

        #[test]
        fn a_return_to_a_newer_schema_migrates_up_before_the_code_moves_and_never_down(shape in shapes(), cur in 1u64..50, t in 1u64..50, scope in scopes(), db in schemas()) {
            let steps = rollback(shape, Some(ReleaseId(cur)), ReleaseId(t), scope, db);
            let up = pos(&steps, "migrate-up");
            prop_assert_eq!(up.is_some(), db.migrate_up && scope.includes_db());
            if let Some(up) = up {
                prop_assert!(pos(&steps, "migrate-down").is_none() && pos(&steps, "stop").is_none());
                if let Some(sw) = pos(&steps, "switch") { prop_assert!(up < sw); }
                if let Some(b) = pos(&steps, "backup") { prop_assert!(b < up); }
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

    proptest! {
        /// Behind a proxy, traffic moves only to a release that was started and
        /// checked, and the old release's process stops only after the route moved.
        #[test]
        fn behind_a_proxy_route_follows_the_checks_and_retire_follows_the_route(shape in shapes(), cur in proptest::option::of(1u64..50), t in 1u64..50, scope in scopes(), db in schemas()) {
            let shape = Shape { proxy: shape.start && shape.artifacts, ..shape };
            for steps in [rollback(shape, cur.map(ReleaseId), ReleaseId(t), scope, db), deploy(shape, ReleaseId(t), Some(commit())), undo(shape, cur.map(ReleaseId))] {
                let (route, retire) = (pos(&steps, "route"), pos(&steps, "retire"));
                prop_assert_eq!(route.is_some(), retire.is_some(), "{:?}", steps);
                if let Some(r) = route {
                    prop_assert!(shape.proxy);
                    prop_assert_eq!(retire, Some(r + 1));
                    let restart = pos(&steps, "restart").unwrap();
                    prop_assert!(restart < r, "{:?}", steps);
                    if let Some(v) = steps.iter().rposition(|s| s.name() == "verify") { prop_assert!(v < r, "{:?}", steps); }
                    prop_assert_eq!(steps[r].release(), steps[restart].release());
                }
                if shape.proxy && pos(&steps, "restart").is_some() { prop_assert!(route.is_some(), "{:?}", steps); }
            }
        }
    }

    #[test]
    fn rolling_back_to_current_with_code_scope_does_nothing_to_code() {
        let shape = Shape {
            artifacts: true,
            export: true,
            unlink: true,
            build: true,
            start: true,
            config_files: false,
            ship_config: false,
            switch_starts: false,
            verify: true,
            migrations: false,
            stoppable: true,
            backup_always: false,
            proxy: false,
        };
        let steps = rollback(shape, Some(ReleaseId(3)), ReleaseId(3), Scope::Code, SchemaChange::default());
        assert_eq!(steps, vec![Step::Verify { release: ReleaseId(3) }]);
    }
}
