//! A plan as it is shown before anything runs (`--dry-run`, `--sql`, the dashboard),
//! and as it is recorded when it does.
//!
//! A preview never refuses: what a real run would refuse (destructive migrations
//! without consent, a target that needs confirming) is part of the plan, in
//! [`PlanView::refusals`], with the flag that consents to it. Running the plan is what
//! turns a refusal into an error.

use serde::Serialize;

use crate::database::environment::Verdict;
use crate::error::Error;
use crate::ledger::Release;
use crate::model::{OperationKind, Scope};
use crate::plan::{Phase, Step};
use crate::refusal::Refusal;
use crate::runtime::{Runtime, StepFacts};

/// One step of a plan, where it runs, and what it does in the runtime's own words.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    #[serde(flatten)]
    pub step: Step,
    /// `local`, or the host labels the step acts on, joined with `,`.
    pub host: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    pub kind: OperationKind,
    pub environment: String,
    pub from: Option<Release>,
    pub to: Release,
    pub scope: Scope,
    pub steps: Vec<PlannedStep>,
    /// Facts worth reading before going on.
    pub notes: Vec<String>,
    /// Reasons the user must confirm (a bad target, a newer target).
    pub confirm: Vec<String>,
    /// The migrations the plan runs, with the linter's verdict on each.
    pub migrations: Vec<Verdict>,
    /// Exactly the SQL the migration steps would run (bookkeeping included).
    pub sql: Option<String>,
    /// The target is already in place: running the plan would change nothing.
    pub in_place: bool,
    pub runtime: &'static str,
    /// What a real run would refuse (exit 4), and the flag that consents to each.
    pub refusals: Vec<Refusal>,
}

impl PlanView {
    /// The steps as the journal records them.
    pub(crate) fn forward(&self) -> Vec<(Step, Phase, String)> {
        self.steps.iter().map(|p| (p.step.clone(), Phase::Forward, p.host.clone())).collect()
    }

    /// The first refusal a real run meets, as the error it is; consents given count.
    pub fn refused(&self, consented: impl Fn(&Refusal) -> bool) -> Option<Error> {
        self.refusals
            .iter()
            .find(|r| !consented(r))
            .map(|r| Error::refused(self.environment.clone(), self.kind.as_str(), r.clone()))
    }
}

/// Describes placed steps in the runtime's words. `version_of` finds the version of a
/// release a step names; `back` says whether the plan returns to an older release.
pub(crate) fn describe(
    rt: &dyn Runtime,
    placed: Vec<(Step, Phase, String)>,
    version_of: impl Fn(&Step) -> Option<String>,
    back: bool,
) -> Vec<PlannedStep> {
    placed
        .into_iter()
        .map(|(step, _, host)| {
            let facts = StepFacts { version: version_of(&step), back };
            PlannedStep { description: rt.describe(&step, &facts), step, host }
        })
        .collect()
}
