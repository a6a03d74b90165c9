//! The one rule for data: when may migrations that destroy data run, and when is a
//! backup taken first.
//!
//! Every path that moves a schema calls [`gate`]: planning a rollback, the journal
//! deciding on an automatic rollback, the journal's migrate steps themselves (the last
//! line of defence, whatever path led there: a plan, a resume, an abort), and
//! `lastgood db up|down`. So the rule is written once and every path refuses with the
//! same typed [`DataLoss`], which the CLI turns into a hint naming the command to run.
//!
//! The rule (DESIGN.md, "Data safety"): a down migration the linter classifies as
//! destructive runs only with a person's consent (`--allow-data-loss`) and a backup
//! taken in the same operation; an automatic rollback never runs one (nobody is there
//! to consent). Ups are never refused, but a destructive up is backed up first under
//! `backup = "auto"`, and every migration run is under `backup = "always"`.

use crate::config::BackupPolicy;
use crate::refusal::DataLoss;

/// Which way the schema moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    Up,
    Down,
}

impl From<crate::database::migrator::Direction> for Way {
    fn from(d: crate::database::migrator::Direction) -> Self {
        match d {
            crate::database::migrator::Direction::Up => Self::Up,
            crate::database::migrator::Direction::Down => Self::Down,
        }
    }
}

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// A person passed `--allow-data-loss`.
    Given,
    /// A person did not.
    Absent,
    /// lastgood itself, with nobody there to consent (an automatic rollback).
    Automatic,
}

impl Consent {
    pub fn of(allow_data_loss: bool) -> Self {
        if allow_data_loss { Self::Given } else { Self::Absent }
    }
}

/// When the question is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Before anything runs: a backup can still be planned (or taken) first.
    Plan,
    /// The migrations run now; this many backups were taken by the operation so far.
    Run { backups_taken: usize },
}

/// What the migrations about to move look like.
#[derive(Debug, Clone, Copy)]
pub struct Migrations<'a> {
    pub way: Way,
    /// How many move (None when the tool cannot say: treated as some).
    pub count: Option<usize>,
    /// The destructive ones, as `name (why)`.
    pub destructive: &'a [String],
}

/// The migrations may run; whether a backup must come first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clearance {
    pub backup_first: bool,
}

/// The rule. Ok says whether to back up first; Err says why the migrations may not run.
pub fn gate(m: Migrations<'_>, consent: Consent, policy: BackupPolicy, stage: Stage) -> Result<Clearance, DataLoss> {
    let any = m.count != Some(0);
    let destructive = !m.destructive.is_empty();
    let migrations = || m.destructive.to_vec();
    if m.way == Way::Down && destructive {
        match consent {
            Consent::Automatic => return Err(DataLoss::Automatic { migrations: migrations() }),
            Consent::Absent => return Err(DataLoss::NoConsent { migrations: migrations() }),
            Consent::Given => {}
        }
        if policy == BackupPolicy::Never {
            return Err(DataLoss::BackupNever { migrations: migrations() });
        }
    }
    let wanted = any
        && match policy {
            BackupPolicy::Always => true,
            BackupPolicy::Auto => destructive,
            // A destructive down never gets here with `never` (refused above).
            BackupPolicy::Never => false,
        };
    match stage {
        Stage::Plan => Ok(Clearance { backup_first: wanted }),
        // A backup this operation already took (a plan's backup step) covers the run.
        Stage::Run { backups_taken } => Ok(Clearance { backup_first: wanted && backups_taken == 0 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m<'a>(way: Way, destructive: &'a [String]) -> Migrations<'a> {
        Migrations { way, count: Some(1), destructive }
    }

    #[test]
    fn a_destructive_down_needs_consent_a_backup_and_a_person() {
        let d = vec!["2_drop (DROP TABLE)".to_owned()];
        let plan = Stage::Plan;
        assert!(matches!(
            gate(m(Way::Down, &d), Consent::Absent, BackupPolicy::Auto, plan),
            Err(DataLoss::NoConsent { .. })
        ));
        assert!(matches!(
            gate(m(Way::Down, &d), Consent::Automatic, BackupPolicy::Auto, plan),
            Err(DataLoss::Automatic { .. })
        ));
        assert!(matches!(
            gate(m(Way::Down, &d), Consent::Given, BackupPolicy::Never, plan),
            Err(DataLoss::BackupNever { .. })
        ));
        assert_eq!(
            gate(m(Way::Down, &d), Consent::Given, BackupPolicy::Auto, plan),
            Ok(Clearance { backup_first: true })
        );
        // Running: the backup this operation took is what makes it safe.
        assert_eq!(
            gate(m(Way::Down, &d), Consent::Given, BackupPolicy::Auto, Stage::Run { backups_taken: 1 }),
            Ok(Clearance { backup_first: false })
        );
        assert_eq!(
            gate(m(Way::Down, &d), Consent::Given, BackupPolicy::Auto, Stage::Run { backups_taken: 0 }),
            Ok(Clearance { backup_first: true })
        );
    }

    #[test]
    fn safe_migrations_pass_and_ups_are_never_refused() {
        let none: Vec<String> = vec![];
        let d = vec!["2_drop (DROP TABLE)".to_owned()];
        for consent in [Consent::Absent, Consent::Automatic, Consent::Given] {
            assert_eq!(
                gate(m(Way::Down, &none), consent, BackupPolicy::Auto, Stage::Plan),
                Ok(Clearance { backup_first: false })
            );
            assert_eq!(
                gate(m(Way::Up, &d), consent, BackupPolicy::Auto, Stage::Plan),
                Ok(Clearance { backup_first: true })
            );
            assert_eq!(
                gate(m(Way::Up, &d), consent, BackupPolicy::Never, Stage::Plan),
                Ok(Clearance { backup_first: false })
            );
        }
        assert_eq!(
            gate(m(Way::Down, &none), Consent::Absent, BackupPolicy::Always, Stage::Plan),
            Ok(Clearance { backup_first: true })
        );
        let nothing = Migrations { way: Way::Down, count: Some(0), destructive: &none };
        assert_eq!(
            gate(nothing, Consent::Absent, BackupPolicy::Always, Stage::Plan),
            Ok(Clearance { backup_first: false })
        );
    }
}
