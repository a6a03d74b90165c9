//! deploy, rollback and resume: the commands that change what serves.

use std::io::{BufRead, IsTerminal, Write};

use lastgood_core::Result;
use lastgood_core::engine::Engine;
use lastgood_core::engine::deploy::DeployOptions;
use lastgood_core::engine::preview::PlanView;
use lastgood_core::engine::restart::RestartOptions;
use lastgood_core::engine::restore::RestoreOptions;
use lastgood_core::engine::rollback::RollbackOptions;
use lastgood_core::engine::run::Report;
use lastgood_core::model::{Outcome, Scope};
use lastgood_core::refusal::Refusal;
use lastgood_core::view;

use crate::args::{Cli, Format, ScopeArg};
use crate::output::{self, StderrProgress};

pub fn deploy(cli: &Cli, engine: &Engine, env: &str, version: &str, opts: DeployOptions, dry_run: bool) -> Result<i32> {
    if dry_run {
        let (plan, _) = engine.plan_deploy(env, version, &opts)?;
        match cli.global.format {
            Format::Json => output::json(&view::Plan::from(&plan)),
            Format::Text => {
                output::out(&output::plan_text(&plan));
                if opts.sql {
                    output::out(plan.sql.as_deref().unwrap_or("-- the plan runs no SQL\n"));
                }
            }
        }
        return Ok(0);
    }
    let mut progress = StderrProgress::with_header(&cli.global, format!("deploying {version} to `{env}`"));
    let report = engine.deploy(env, version, &opts, &mut progress)?;
    Ok(finish(cli, &report, None))
}

pub struct RollbackFlags {
    pub dry_run: bool,
    pub sql: bool,
    pub allow_data_loss: bool,
    pub allow_major: bool,
    /// A deploy running in ENV is asked to stop and return (else: exit 3).
    pub preempt: bool,
}

pub fn rollback(
    cli: &Cli,
    engine: &Engine,
    env: &str,
    to: &str,
    scope: ScopeArg,
    reason: Option<String>,
    flags: RollbackFlags,
) -> Result<i32> {
    let dry_run = flags.dry_run || flags.sql;
    engine.config.environment(env)?.parse_target(to)?;
    if !dry_run && flags.preempt && engine.running_deploy(env)?.is_some() {
        let reason = match reason.clone().filter(|r| !r.trim().is_empty()) {
            Some(r) => r,
            None => ask_reason("Reason for this rollback: ").ok_or_else(|| lastgood_core::Error::Usage {
                what: "a rollback needs --reason TEXT: why it happens goes into the audit log and the incident record"
                    .into(),
            })?,
        };
        let mut progress = StderrProgress::new(&cli.global);
        if let Some(stopped) = engine.preempt(env, Some(reason.clone()), &mut progress)? {
            let code = preempted(cli, engine, &stopped)?;
            // The deploy returned to the last good release itself. Another target, or a
            // deploy that could not return (`--no-auto-rollback`), is a rollback of its
            // own, now that the lock is free.
            if to == "last-good" && code == 0 {
                return Ok(0);
            }
            return rollback(cli, engine, env, to, scope, Some(reason), RollbackFlags { preempt: false, ..flags });
        }
    }
    let scope = match scope {
        ScopeArg::Full => Scope::Full,
        ScopeArg::Code => Scope::Code,
        ScopeArg::Config => Scope::Config,
        ScopeArg::Db => Scope::Db,
    };
    let target = engine.config.environment(env)?.parse_target(to)?;
    let opts = RollbackOptions {
        target,
        scope,
        reason,
        allow_data_loss: flags.allow_data_loss,
        allow_major: flags.allow_major,
    };
    let plan = engine.plan_rollback(env, &opts)?;
    // A plan whose target is already in place would list steps that never run.
    if cli.global.format == Format::Text && (dry_run || !plan.in_place) {
        output::out(&output::plan_text(&plan));
        if flags.sql {
            output::out(plan.sql.as_deref().unwrap_or("-- the plan runs no SQL\n"));
        }
    }
    if dry_run {
        if cli.global.format == Format::Json {
            output::json(&view::Plan::from(&plan));
        }
        return Ok(0);
    }
    // A refusal nobody can answer here ends it before anything is asked; confirming
    // a target comes after the reason.
    let answerable = |r: &Refusal| {
        matches!(r, Refusal::Unconfirmed { .. })
            || lastgood_core::engine::guard::consented(r, cli.global.yes, flags.allow_major)
    };
    if let Some(refused) = plan.refused(answerable) {
        return Err(refused);
    }
    // Why a rollback happened is the first question of every incident review: it is
    // required, asked for on a terminal, and recorded in the audit log.
    let mut opts = opts;
    if opts.reason.as_deref().is_none_or(|r| r.trim().is_empty()) && !plan.in_place {
        opts.reason = Some(ask_reason("Reason for this rollback: ").ok_or_else(|| lastgood_core::Error::Usage {
            what:
                "a rollback needs --reason TEXT: why it happens goes into the audit log and the incident record".into(),
        })?);
    }
    let confirmed =
        cli.global.yes || plan.confirm.is_empty() || ask(&format!("{}. Roll back anyway?", plan.confirm.join("; ")));
    let mut progress = StderrProgress::new(&cli.global);
    match engine.rollback_planned(env, &opts, &plan, confirmed, &mut progress)? {
        Some(report) => Ok(finish(cli, &report, Some(&plan))),
        None => {
            match cli.global.format {
                Format::Json => output::json(&view::Operation::nothing_to_do(&plan)),
                Format::Text => output::out(&format!(
                    "{} is already in place for scope {}: nothing to do.\n",
                    output::release_line(&plan.to),
                    plan.scope
                )),
            }
            Ok(0)
        }
    }
}

/// What a preempted deploy did: exit 0 when the environment serves a good release.
fn preempted(cli: &Cli, engine: &Engine, stopped: &Report) -> Result<i32> {
    let serving = match stopped.current {
        Some(id) => engine.ledger().release(&lastgood_core::model::EnvName::parse(&stopped.environment)?, id)?,
        None => None,
    };
    let good = serving.as_ref().is_some_and(|r| r.state == lastgood_core::model::ReleaseState::Good);
    match cli.global.format {
        Format::Json => output::json(&serde_json::json!({
            "preempted": view::Operation::new(stopped, None),
            "current": serving.as_ref().map(|r| r.id),
            "outcome": if good { "succeeded" } else { "failed" },
        })),
        Format::Text => output::out(&format!(
            "stopped deploy {} of {}: it ended {}{}; {}\n",
            stopped.operation,
            output::release_line(&stopped.to),
            stopped.outcome.as_str(),
            stopped.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default(),
            match &serving {
                Some(r) => format!("{} serves", output::release_line(r)),
                None => "nothing serves".into(),
            }
        )),
    }
    Ok(if good { 0 } else { 1 })
}

/// `lastgood promote`: ends the running bake window as passed.
pub fn promote(cli: &Cli, engine: &Engine, env: &str, reason: Option<String>) -> Result<i32> {
    use lastgood_core::engine::bake::Promoted;
    let done = engine.promote(env, reason)?;
    match cli.global.format {
        Format::Json => output::json(&done),
        Format::Text => output::out(&match &done {
            Promoted::Promoted { operation, release } => format!(
                "promoted #{release}: the bake window of operation {operation} ends as passed within a second\n"
            ),
            Promoted::NoWindow { running: None } => {
                format!("no bake window is running on `{env}`: nothing to promote\n")
            }
            Promoted::NoWindow { running: Some(at) } => {
                format!("no bake window is running on `{env}` ({at}): nothing to promote\n")
            }
        }),
    }
    Ok(0)
}

/// `lastgood restart`: the plan, a reason, then the operation.
pub fn restart(cli: &Cli, engine: &Engine, env: &str, opts: RestartOptions, dry_run: bool) -> Result<i32> {
    let plan = engine.plan_restart(env, &opts)?;
    if dry_run {
        match cli.global.format {
            Format::Json => output::json(&view::Plan::from(&plan)),
            Format::Text => output::out(&output::plan_text(&plan)),
        }
        return Ok(0);
    }
    let mut opts = opts;
    if opts.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        opts.reason = Some(ask_reason("Reason for this restart: ").ok_or_else(|| lastgood_core::Error::Usage {
            what:
                "a restart needs --reason TEXT: why it happens goes into the audit log and the incident record".into(),
        })?);
    }
    let mut progress = StderrProgress::new(&cli.global);
    let report = engine.restart(env, &opts, &mut progress)?;
    Ok(finish(cli, &report, None))
}

/// `lastgood db restore`: the plan, then (unless `--dry-run`) a reason and a yes, then
/// the operation.
pub fn restore(cli: &Cli, engine: &Engine, env: &str, opts: RestoreOptions, dry_run: bool) -> Result<i32> {
    let plan = engine.plan_restore(env, &opts)?;
    match cli.global.format {
        Format::Text => output::out(&output::plan_text(&plan)),
        Format::Json if dry_run => output::json(&view::Plan::from(&plan)),
        Format::Json => {}
    }
    if dry_run {
        return Ok(0);
    }
    if let Some(refused) = plan.refused(|r| matches!(r, Refusal::Unconfirmed { .. })) {
        return Err(refused);
    }
    let mut opts = opts;
    if opts.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        opts.reason = Some(ask_reason("Reason for this restore: ").ok_or_else(|| lastgood_core::Error::Usage {
            what:
                "a restore needs --reason TEXT: why it happens goes into the audit log and the incident record".into(),
        })?);
    }
    let confirmed = cli.global.yes || ask(&format!("{}. Restore anyway?", plan.confirm.join("; ")));
    let mut progress = StderrProgress::new(&cli.global);
    let report = engine.restore(env, &opts, confirmed, &mut progress)?;
    Ok(finish(cli, &report, None))
}

pub fn resume(cli: &Cli, engine: &Engine, env: &str, abort: bool) -> Result<i32> {
    let mut progress = StderrProgress::new(&cli.global);
    match engine.resume(env, abort, &mut progress)? {
        Some(report) => Ok(finish(cli, &report, None)),
        None => {
            match cli.global.format {
                Format::Json => output::json(&view::NothingToResume::default()),
                Format::Text => output::out(&format!("nothing to resume: no operation on `{env}` was interrupted\n")),
            }
            Ok(0)
        }
    }
}

/// Prints the report; the exit code follows SPEC.md (1 for anything that failed,
/// a deploy rolled back automatically included).
fn finish(cli: &Cli, report: &Report, plan: Option<&PlanView>) -> i32 {
    match cli.global.format {
        Format::Json => output::json(&view::Operation::new(report, plan)),
        Format::Text => {
            output::out(&output::report_text(report));
            if !report.checks.is_empty() && (cli.global.verbose > 0 || report.outcome != Outcome::Succeeded) {
                output::out(&output::checks_text(&report.checks));
            }
        }
    }
    match report.outcome {
        Outcome::Succeeded | Outcome::Aborted => 0,
        Outcome::Failed | Outcome::RolledBack => 1,
        Outcome::Running => 5,
    }
}

/// Asks for a reason on a terminal; None elsewhere or when the answer is empty.
fn ask_reason(question: &str) -> Option<String> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return None;
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    let line = line.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

/// Asks on a terminal; anywhere else the answer is no (use --yes).
fn ask(question: &str) -> bool {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return false;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes")
}
