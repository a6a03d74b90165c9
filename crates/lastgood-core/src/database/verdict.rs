//! The linter's verdict on each migration of a plan, and the destructive ones among them.
//!
//! A verdict names a migration, the direction it would run in and what [`super::lint`]
//! found in its SQL. It is not the lint itself (that judges a script's text), nor the
//! decision to go ahead: the data-safety gate takes the verdicts together with the
//! operator's consent and the backups taken, and decides.
//!
//! It is a leaf of its own because both sides of the schema tool make verdicts: the
//! environment's database ([`super::environment`]) for the builtin engine's plans and
//! [`super::tool`] for Alembic's and plain commands'. Defined in either, it made the
//! two import each other.

use serde::Serialize;

use super::dialect::Dialect;
use super::lint::{self, Class, Lint};
use super::migrator::{Direction, Planned};

/// The linter's verdict on one migration of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub name: String,
    pub direction: Direction,
    pub lint: Lint,
}

/// The verdict on each migration of `plan`, in plan order, from the migration's own SQL
/// (bookkeeping left out).
pub fn of_plan(plan: &[Planned], dialect: Dialect) -> Vec<Verdict> {
    plan.iter()
        .map(|p| Verdict { name: p.name.clone(), direction: p.direction, lint: lint::classify(&p.script, dialect) })
        .collect()
}

/// The destructive migrations among the verdicts, for messages.
pub fn destructive(verdicts: &[Verdict]) -> Vec<String> {
    verdicts
        .iter()
        .filter(|v| v.lint.class == Class::Destructive)
        .map(|v| {
            let why = v
                .lint
                .findings
                .iter()
                .find(|f| f.class == Class::Destructive)
                .map(|f| f.reason.clone())
                .unwrap_or_default();
            format!("{} ({why})", v.name)
        })
        .collect()
}
