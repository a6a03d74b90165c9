//! The runbook's decision tree, as `diagnose` ends with it: is the issue code,
//! database, configuration, or unknown, and which rollback answers it.
//!
//! code -> `rollback --scope code`; database -> `rollback --scope db`; configuration
//! edited in place -> `rollback --scope config` of the release whose files those are
//! (it restores their snapshot and restarts, and changes no release's state); config
//! that differs between releases -> `--scope config` to the last good release; several
//! of them, or unknown -> a full rollback.
//!
//! The command is not guessed: it is planned with the engine's own rollback planner,
//! so what a real run would refuse is known, and each flag that consents to a refusal
//! (`--allow-data-loss`, `--yes`) is part of the command, with the reason for it in the
//! explanation. A rollback needs a reason, so the command carries one. A refusal that no
//! flag answers (the target's artifact is gone) leaves no command: the decision says
//! what stands in the way. The command runs as printed in the shell `diagnose` ran in.

use serde::Serialize;

use super::Engine;
use super::rollback::RollbackOptions;
use crate::config::Environment;
use crate::ledger::Release;
use crate::model::{Scope, Target};
use crate::refusal::{DataLoss, Refusal};

/// The runbook's branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Issue {
    /// Nothing lastgood deploys changed: look outside it.
    None,
    Code,
    Database,
    Configuration,
    /// More than one of code, configuration and database.
    Several,
    /// What changed could not be worked out.
    Unknown,
}

/// What `diagnose` found, as the decision needs it.
pub(super) struct Findings<'a> {
    pub env: &'a Environment,
    pub current: &'a Release,
    pub good: &'a Release,
    /// The release whose config files were written last (the current one, unless a
    /// config rollback wrote another's).
    pub config_of: &'a Release,
    pub code: bool,
    pub config_between: bool,
    /// Config files edited in place since `config_of` wrote them.
    pub edited: &'a [String],
    pub database: bool,
    pub schema_ahead: u32,
    /// Parts that could not be compared, with why.
    pub unknown: &'a [String],
}

/// The branch taken, before it is checked against a plan.
struct Choice {
    issue: Issue,
    scope: Scope,
    target: Target,
    /// What the command passes as `--reason`.
    reason: String,
    /// The explanation so far.
    why: String,
    /// The decision in words.
    what: String,
}

/// A refusal the recommended rollback would meet without its flags, and the flag that
/// consents to it (none: the command cannot be run until it is dealt with).
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRefusal {
    pub reason: String,
    pub consent: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub issue: Issue,
    /// The narrowest scope that undoes what changed; None when nothing did.
    pub scope: Option<Scope>,
    /// The release the recommended rollback returns to.
    pub target: Option<u64>,
    /// The recommended rollback, as a command that runs as printed; None when nothing
    /// is to be rolled back, or a refusal no flag consents to stands in the way.
    pub command: Option<String>,
    /// The command's arguments after `lastgood` (empty without a command).
    pub argv: Vec<String>,
    /// What a run without the command's flags would refuse.
    pub refusals: Vec<DecisionRefusal>,
    pub explanation: String,
    /// The decision in one line (what the text output ends with, before the command).
    pub decision: String,
}

impl Engine {
    pub(super) fn decide(&self, f: &Findings<'_>) -> Decision {
        let config = f.config_between || !f.edited.is_empty();
        let changed: Vec<&str> = [(f.code, "code"), (config, "configuration"), (f.database, "database")]
            .iter()
            .filter(|c| c.0)
            .map(|c| c.1)
            .collect();
        let issue = match (f.unknown.is_empty(), changed.as_slice()) {
            (false, _) => Issue::Unknown,
            (true, []) => Issue::None,
            (true, ["code"]) => Issue::Code,
            (true, ["configuration"]) => Issue::Configuration,
            (true, ["database"]) => Issue::Database,
            (true, _) => Issue::Several,
        };
        let good = format!("#{} ({})", f.good.id.0, f.good.version);
        let since = format!("since the last good release {good}");
        let mut why = match issue {
            Issue::None => {
                let line = format!("nothing to roll back: nothing lastgood deploys changed {since}");
                return Decision {
                    issue,
                    scope: None,
                    target: None,
                    command: None,
                    argv: vec![],
                    refusals: vec![],
                    explanation: format!(
                        "nothing lastgood deploys (code, configuration, database) differs between {} and the last good release {}: look outside (data, infrastructure, dependencies)",
                        f.current.id, f.good.id
                    ),
                    decision: line,
                };
            }
            Issue::Unknown => format!("what changed {since} is unknown ({})", f.unknown.join("; ")),
            _ => format!("{} changed {since}", listed(&changed)),
        };
        let in_place_only = issue == Issue::Configuration && !f.config_between;
        let edited = format!("{} edited in place after {} was deployed", f.edited.join(", "), f.config_of.id);
        if in_place_only {
            why = format!("{edited}; nothing else changed {since}");
        } else if !f.edited.is_empty() {
            why.push_str(&format!(" ({edited})"));
        }
        if f.schema_ahead > 0 {
            why.push_str(&format!(
                "; the schema is {} migration(s) ahead of the code of {}",
                f.schema_ahead, f.current.id
            ));
        }
        let schema_differs = f.current.schema_revision != f.good.schema_revision;
        let (scope, target, what) = match issue {
            Issue::Code => (Scope::Code, Target::LastGood, format!("code -> roll back the code to {good}")),
            // With the schema ahead, `--scope db` alone reverts only what is ahead.
            Issue::Database if f.schema_ahead > 0 && !schema_differs => (
                Scope::Db,
                Target::LastGood,
                format!("database -> revert the migrations ahead of the code of {}", f.current.id),
            ),
            Issue::Database if f.schema_ahead > 0 => {
                (Scope::Db, Target::Id(f.good.id), format!("database -> revert the schema to that of {good}"))
            }
            Issue::Database => {
                (Scope::Db, Target::LastGood, format!("database -> revert the schema to that of {good}"))
            }
            Issue::Configuration if in_place_only => (
                Scope::Config,
                Target::Id(f.config_of.id),
                format!(
                    "configuration -> put back the config files of {} ({}) and restart; no release changes state",
                    f.config_of.id, f.config_of.version
                ),
            ),
            Issue::Configuration => (
                Scope::Config,
                Target::LastGood,
                format!("configuration -> put back the config files of {good} and restart"),
            ),
            _ => (
                Scope::Full,
                Target::LastGood,
                format!(
                    "{} -> full rollback to {good}",
                    if issue == Issue::Unknown { "unknown".to_owned() } else { listed(&changed) }
                ),
            ),
        };
        // `--to` only when it is not the default: the last good release is (except for
        // `--scope db` with the schema ahead, whose default is the current release).
        let target = match target {
            // (When the current release is its own last good state, `last-good` names
            // the one before it: the id stays.)
            Target::Id(id)
                if id == f.good.id && f.good.id != f.current.id && (scope != Scope::Db || f.schema_ahead == 0) =>
            {
                Target::LastGood
            }
            t => t,
        };
        // The reason the rollback records: the finding, without the details.
        let reason = match issue {
            _ if in_place_only => edited,
            Issue::Unknown => format!("what changed {since} is unknown"),
            _ => format!("{} changed {since}", listed(&changed)),
        };
        let choice = Choice { issue, scope, target, reason: format!("diagnose: {reason}"), why, what };
        self.checked(f, choice)
    }

    /// Plans the rollback, adds the flags that consent to what it would refuse, and
    /// plans again with them to be sure nothing else stands in the way.
    fn checked(&self, f: &Findings<'_>, choice: Choice) -> Decision {
        let Choice { issue, scope, target, reason, mut why, what } = choice;
        let env = f.env.name.as_str();
        let mut opts = RollbackOptions {
            target: target.clone(),
            scope,
            reason: Some(reason.clone()),
            allow_data_loss: false,
            allow_major: false,
        };
        let mut decision = Decision {
            issue,
            scope: Some(scope),
            target: None,
            command: None,
            argv: vec![],
            refusals: vec![],
            explanation: String::new(),
            decision: what,
        };
        let first = match self.plan_rollback(env, &opts) {
            Ok(p) => p,
            Err(e) => {
                decision.explanation = format!("{why}; but the rollback cannot be planned: {e}");
                decision.decision.push_str(&format!(", but the rollback cannot be planned: {e}"));
                return decision;
            }
        };
        decision.target = Some(first.to.id.0);
        decision.refusals =
            first.refusals.iter().map(|r| DecisionRefusal { reason: r.to_string(), consent: r.consent() }).collect();
        let mut flags: Vec<&'static str> = Vec::new();
        for r in &first.refusals {
            match (r, r.consent()) {
                (Refusal::DataLoss(DataLoss::NoConsent { migrations }), Some(flag)) => {
                    why.push_str(&format!(
                        "; reverting {} destroys data: {flag} consents to it (a backup is taken first)",
                        migrations.join(", ")
                    ));
                    flags.push(flag);
                }
                (Refusal::Unconfirmed { reasons }, Some(flag)) => {
                    why.push_str(&format!("; {}: {flag} confirms the target", reasons.join("; ")));
                    flags.push(flag);
                }
                (_, Some(flag)) => flags.push(flag),
                (_, None) => {}
            }
        }
        opts.allow_data_loss = flags.contains(&"--allow-data-loss");
        let plan = if opts.allow_data_loss {
            match self.plan_rollback(env, &opts) {
                Ok(p) => p,
                Err(e) => {
                    decision.explanation = format!("{why}; but the rollback cannot be planned: {e}");
                    return decision;
                }
            }
        } else {
            first
        };
        let blocking: Vec<String> = plan
            .refusals
            .iter()
            .filter(|r| r.consent().is_none_or(|flag| !flags.contains(&flag)))
            .map(ToString::to_string)
            .collect();
        if !blocking.is_empty() {
            let refused = blocking.join("; ");
            decision.explanation = format!("{why}; but a rollback would be refused, and no flag consents: {refused}");
            decision.decision.push_str(&format!(", but it would be refused: {refused}"));
            return decision;
        }
        if plan.in_place {
            why.push_str(&format!(
                "; {} is already in place for scope {scope}: the rollback changes nothing",
                plan.to.id
            ));
        }
        let mut argv = vec!["rollback".to_owned(), env.to_owned()];
        if let Target::Id(id) = target {
            argv.extend(["--to".to_owned(), id.0.to_string()]);
        }
        argv.extend(["--scope".to_owned(), scope.to_string(), "--reason".to_owned(), reason]);
        for flag in [&"--allow-data-loss", &"--yes"] {
            if flags.contains(flag) {
                argv.push((*flag).to_owned());
            }
        }
        why.push_str(&format!(
            "; a rollback with scope {scope} undoes {} (preview it with --dry-run)",
            if issue == Issue::Several || issue == Issue::Unknown { "all of it" } else { "exactly that" }
        ));
        decision.explanation = why;
        decision.command = Some(command_line(&argv));
        decision.argv = argv;
        decision
    }
}

/// `a`, `a and b`, `a, b and c`.
fn listed(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// `lastgood ARGS...` as one shell line: each argument quoted only when it must be.
pub fn command_line(argv: &[String]) -> String {
    let mut line = String::from("lastgood");
    for a in argv {
        line.push(' ');
        line.push_str(&shell_word(a));
    }
    line
}

/// An argument as a POSIX shell reads back exactly: bare when it is plain, in double
/// quotes when nothing inside them is special, else in single quotes.
fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_owned();
    }
    if !s.contains(['"', '$', '`', '\\', '!', '\n']) {
        return format!("\"{s}\"");
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_only_when_they_must_be() {
        assert_eq!(shell_word("production"), "production");
        assert_eq!(shell_word("--scope"), "--scope");
        assert_eq!(shell_word("code changed since #1 (v1)"), "\"code changed since #1 (v1)\"");
        assert_eq!(shell_word("it's $HOME"), "'it'\\''s $HOME'");
        assert_eq!(shell_word(""), "\"\"");
        let argv: Vec<String> = ["rollback", "prod", "--reason", "a b"].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(command_line(&argv), "lastgood rollback prod --reason \"a b\"");
    }
}
