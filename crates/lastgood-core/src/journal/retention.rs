//! Retention: which artifacts the cleanup step removes. The current release, the
//! release whose config files are in place, this operation's release and the newest
//! `keep_releases` good ones keep theirs, because a rollback needs them; failed and bad
//! releases among the newest few stay a while for inspection but are never protected.

use std::collections::BTreeSet;

use super::Journal;
use crate::error::Result;
use crate::ledger::Change;
use crate::model::{ReleaseId, ReleaseState};

impl Journal<'_> {
    /// The releases retention removes now, and the ledger changes that record it.
    pub(super) fn retention(&self) -> Result<(Vec<ReleaseId>, Vec<Change>)> {
        let env = self.env;
        let state = self.ledger.env_state(&env.name)?;
        let with_dirs = self.ledger.releases_with_artifacts(&env.name)?;
        let mut keep: BTreeSet<ReleaseId> =
            [state.current, state.config_release, Some(self.op.to), self.ledger.schema_ahead_release(&env.name)?]
                .into_iter()
                .flatten()
                .collect();
        // Cleanup runs after the deploy's checks passed, so its release is about to be
        // good: it counts among the `keep_releases` newest good ones.
        let good = with_dirs.iter().filter(|r| r.state == ReleaseState::Good || r.id == self.op.to).map(|r| r.id);
        keep.extend(good.take(env.keep_releases));
        // Failed and bad releases among the newest few stay a while for inspection;
        // they are never what a rollback needs, so they do not count as protected.
        keep.extend(with_dirs.iter().map(|r| r.id).take(env.keep_releases));
        let remove: Vec<ReleaseId> = with_dirs
            .iter()
            .filter(|r| !keep.contains(&r.id) && r.state != ReleaseState::Pending)
            .map(|r| r.id)
            .collect();
        let changes = remove.iter().map(|id| Change::SetArtifact { release: *id, present: false }).collect();
        Ok((remove, changes))
    }
}
