//! Library errors, explained: a message, what caused it, a hint, and the exit code.

use lastgood_core::Error;
use lastgood_core::database::driver::DbError;
use lastgood_core::database::migrator::MigrateError;
use lastgood_core::database::program::ToolError;
use lastgood_core::refusal::{DataLoss, Refusal};

use crate::args::Cli;

pub fn report(e: &Error, cli: &Cli) -> i32 {
    let mut text = format!("error: {e}\n");
    // The chain of causes, where a cause adds something the message did not say.
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let said = c.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(&format!("  caused by: {said}\n"));
        }
        cause = c.source();
    }
    for (label, line) in details(e) {
        text.push_str(&format!("  {label}: {line}\n"));
    }
    if let Some(h) = hint(e, cli) {
        text.push_str(&format!("\nhint: {h}\n"));
    }
    eprint!("{text}");
    e.exit_code()
}

fn details(e: &Error) -> Vec<(&'static str, String)> {
    match e {
        Error::UnknownEnvironment { known, .. } => {
            vec![("configured", if known.is_empty() { "none".into() } else { known.join(", ") })]
        }
        Error::UnknownTarget { candidates, .. } => {
            if candidates.is_empty() {
                vec![("releases", "none yet".into())]
            } else {
                candidates.iter().map(|c| ("candidate", c.clone())).collect()
            }
        }
        Error::AmbiguousTarget { matches, .. } => matches.iter().map(|m| ("matches", m.clone())).collect(),
        Error::Locked { reason, expires_at, .. } => {
            let mut d = Vec::new();
            if let Some(r) = reason {
                d.push(("reason", r.clone()));
            }
            d.push((
                "lease",
                expires_at.as_ref().map(|e| format!("expires at {e}")).unwrap_or_else(|| "held until unlocked".into()),
            ));
            d
        }
        _ => vec![],
    }
}

fn hint(e: &Error, cli: &Cli) -> Option<String> {
    let env = env_of(cli);
    Some(match e {
        Error::ConfigNotFound { .. } => "run `lastgood init` to write one, or pass --config PATH".into(),
        Error::Config { .. } => "fix the file and run the command again; nothing was changed".into(),
        Error::UnknownEnvironment { .. } => "use one of the environments configured in lastgood.toml".into(),
        Error::UnknownVersion { .. } => {
            "versions are tags, branches or commits of the source repository; fetch or tag it first".into()
        }
        Error::UnknownTarget { .. } => {
            format!(
                "use last-good, previous, a release id (#N), a version or a commit (7+ hex digits) from `lastgood history {env}`"
            )
        }
        Error::AmbiguousTarget { target, .. } => format!(
            "say which: `#{target}` is the release id, `version:{target}` the version, and a longer commit prefix names one commit; nothing was changed"
        ),
        Error::Invalid(_) => "nothing was changed".into(),
        Error::Locked { operation: Some(_), .. } => format!(
            "wait for it to finish; if its holder is gone on another machine, the lock frees itself when the lease expires, or run `lastgood unlock {env} --force`"
        ),
        Error::Locked { .. } => {
            format!("it was locked by hand; `lastgood unlock {env}` frees it when the environment may change again")
        }
        Error::Halted { .. } => format!(
            "fix the host, then `lastgood resume {env}` retries the step, or `lastgood resume {env} --abort` returns every host to where it started"
        ),
        Error::Interrupted { .. } => format!(
            "run `lastgood resume {env}` to finish it, or `lastgood resume {env} --abort` to return to where it started"
        ),
        Error::Fenced { .. } => {
            format!("another process took over this environment's lock; see `lastgood status {env}`")
        }
        Error::Refused { refusal, .. } => refusal_hint(refusal, cli, &env),
        Error::Tool(t) => tool_hint(t, cli, &env)?,
        Error::Migrate(m) if matches!(**m, MigrateError::Db(DbError::Connect { .. })) => format!(
            "check `url` in [environments.{env}.database]: for PostgreSQL the host, port, database, user and password (or the PG* variables and ~/.pgpass) and that the server is up; for SQLite that the file's folder exists; nothing was changed"
        ),
        Error::ReleaseMissing { .. } | Error::OperationMissing { .. } => {
            "the ledger is damaged or was edited by hand; `lastgood audit verify` checks its audit trail".into()
        }
        Error::ConfigFile { .. } => "create the file, or remove it from config_files; nothing was changed".into(),
        Error::Step { .. } | Error::Supervise(_) | Error::Io { .. } => {
            format!(
                "see `lastgood status {env}`; if an operation was left running, `lastgood resume {env}` finishes it"
            )
        }
        _ => return None,
    })
}

/// What to do when the schema tool failed or could not be asked.
fn tool_hint(e: &ToolError, cli: &Cli, env: &str) -> Option<String> {
    use crate::args::{Command as C, DbCommand as D};
    Some(match e {
        ToolError::Failed { .. } if matches!(cli.command, C::Db { command: D::Status { .. } }) => {
            "the lines above are the tool's own; run it by hand in that folder (with DATABASE_URL set) for all of it"
                .into()
        }
        ToolError::Failed { .. } => format!(
            "the lines above are the tool's own; run it by hand in that folder (with DATABASE_URL set) for all of it, and `lastgood db status {env}` to see where the schema is"
        ),
        ToolError::UnknownRevision { .. } => {
            format!("`lastgood db history {env}` lists the revisions; nothing was changed")
        }
        ToolError::Direction { .. } | ToolError::Unsupported { .. } => "nothing was changed".into(),
        ToolError::Spawn { .. } | ToolError::Missing { .. } => return None,
    })
}

/// What to do about a refusal; every one of them changed nothing.
fn refusal_hint(refusal: &Refusal, cli: &Cli, env: &str) -> String {
    use crate::args::Command as C;
    let again = "then run the command again; nothing was changed";
    match refusal {
        Refusal::DataLoss(DataLoss::NoConsent { .. }) => {
            let preview = match &cli.command {
                C::Db { command: crate::args::DbCommand::Down { to: Some(rev), .. } } => {
                    format!("`lastgood db down {env} --to {rev} --sql`")
                }
                C::Db { command: crate::args::DbCommand::Down { steps: Some(n), .. } } => {
                    format!("`lastgood db down {env} --steps {n} --sql`")
                }
                _ => format!("`lastgood rollback {env} --dry-run --sql`"),
            };
            format!(
                "read the SQL with {preview}, then run it again with --allow-data-loss (a backup is taken first); nothing was changed"
            )
        }
        Refusal::DataLoss(DataLoss::BackupNever { .. }) => {
            format!("set backup = \"auto\" in [environments.{env}.database] so lastgood can back up first, {again}")
        }
        Refusal::DataLoss(DataLoss::Automatic { .. }) => format!(
            "read the plan with `lastgood rollback {env} --dry-run --sql`, then run it with --allow-data-loss; nothing was changed"
        ),
        Refusal::NotReady(_) => {
            format!("choose a release that can be returned to from `lastgood history {env}`; nothing was changed")
        }
        Refusal::Unconfirmed { .. } => match &cli.command {
            C::Db { command: crate::args::DbCommand::Restore { .. } } => {
                "read the plan with --dry-run, then add --yes to restore (on a terminal lastgood asks); nothing was changed"
                    .into()
            }
            _ => "add --yes if this is the release you mean; nothing was changed".into(),
        },
        Refusal::Preflight { .. } => format!("fix the host(s) named above, {again}"),
        Refusal::Unusable { .. } => format!("fix what is named above, {again}"),
        Refusal::Version { detail, .. } if detail.contains("fast-forward") => {
            format!("see `lastgood history {env}` for the releases a rollback can return to; nothing was changed")
        }
        Refusal::Version { .. } => format!("build or load the image first (lastgood never pulls), {again}"),
        Refusal::Drift { consent: true, .. } => format!(
            "find out who set it and why; to go ahead anyway, run the command again with --yes (`lastgood status {env}` shows both); nothing was changed"
        ),
        Refusal::Drift { .. } => {
            format!("decide which version should run, then `lastgood deploy {env} VERSION`; nothing was changed")
        }
        Refusal::MajorVersion { .. } => format!(
            "involve the developers of this release (their migrations and data upgrades may not go back), then add --allow-major; `major_guard = false` in [environments.{env}] turns the guard off; nothing was changed"
        ),
        Refusal::Repository { .. } => format!("use mode = \"revert\", or move that commit first, {again}"),
        Refusal::WayBack { .. } => format!(
            "do what each reason says (`lastgood status {env}` lists them), then deploy again; or deploy without --require-ready; nothing was changed"
        ),
    }
}

fn env_of(cli: &Cli) -> String {
    use crate::args::Command as C;
    match &cli.command {
        C::Deploy { env, .. }
        | C::Rollback { env, .. }
        | C::History { env, .. }
        | C::Verify { env }
        | C::Mark { env, .. }
        | C::Resume { env, .. }
        | C::Restart { env, .. }
        | C::Lock { env, .. }
        | C::Unlock { env, .. } => env.clone(),
        C::Status { env: Some(env) } => env.clone(),
        C::Db { command } => {
            use crate::args::DbCommand as D;
            match command {
                D::Status { env, .. }
                | D::History { env, .. }
                | D::Up { env, .. }
                | D::Down { env, .. }
                | D::Lint { env, .. }
                | D::Rehearse { env, .. }
                | D::Backup { env }
                | D::Restore { env, .. }
                | D::Backups { env } => env.clone(),
            }
        }
        _ => "ENV".into(),
    }
}
