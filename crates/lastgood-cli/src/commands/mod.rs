//! One function a command: load what it needs, call the engine, render.

mod admin;
mod db;
mod inspect;
mod operate;
mod report;
mod serve;

use lastgood_core::config::Config;
use lastgood_core::context::Context;
use lastgood_core::engine::Engine;
use lastgood_core::engine::deploy::DeployOptions;
use lastgood_core::engine::restart::RestartOptions;
use lastgood_core::{Error, Result};

use crate::args::{Cli, Command, LedgerCommand};

pub fn run(cli: &Cli) -> Result<i32> {
    match &cli.command {
        Command::Init { force, runtime } => admin::init(cli, *force, *runtime),
        Command::Restart { env, service, reason, dry_run } => {
            let opts = RestartOptions { service: service.clone(), reason: reason.clone() };
            operate::restart(cli, &engine(cli)?, env, opts, *dry_run)
        }
        Command::Deploy {
            env,
            version,
            reason,
            no_verify,
            no_auto_rollback,
            dry_run,
            sql,
            allow_major,
            monitor,
            no_monitor,
            require_ready,
        } => {
            let opts = DeployOptions {
                monitor: if *no_monitor { Some(std::time::Duration::ZERO) } else { *monitor },
                require_ready: *require_ready,
                reason: reason.clone(),
                verify: !no_verify,
                auto_rollback: !no_auto_rollback,
                sql: *sql,
                allow_major: *allow_major,
                yes: cli.global.yes,
            };
            operate::deploy(cli, &engine(cli)?, env, version, opts, *dry_run || *sql)
        }
        Command::Watch { env, operation } => {
            let alerts = engine(cli)?.watch_after_rollback(env, *operation)?;
            eprintln!("watch: ended with {alerts} regression(s) alerted");
            Ok(0)
        }
        Command::Promote { env, reason } => operate::promote(cli, &engine(cli)?, env, reason.clone()),
        Command::Rollback { env, to, scope, reason, dry_run, sql, allow_data_loss, allow_major, no_preempt } => {
            operate::rollback(
                cli,
                &engine(cli)?,
                env,
                to,
                *scope,
                reason.clone(),
                operate::RollbackFlags {
                    dry_run: *dry_run,
                    sql: *sql,
                    allow_data_loss: *allow_data_loss,
                    allow_major: *allow_major,
                    preempt: !no_preempt,
                },
            )
        }
        Command::Db { command } => db::run(cli, &engine(cli)?, command),
        Command::Deliver { file } => admin::deliver(&engine(cli)?, file),
        // No config on a host: the request says everything.
        Command::Proxy { state, worker: true } => Ok(lastgood_core::proxy::server::serve(state)),
        Command::Proxy { state, worker: false } => Ok(lastgood_core::proxy::keeper::keep(state)),
        Command::Agent => Ok(lastgood_core::agent::serve(&mut std::io::stdin().lock(), &mut std::io::stdout().lock())),
        Command::Resume { env, abort } => operate::resume(cli, &engine(cli)?, env, *abort),
        Command::Status { env } => inspect::status(cli, &engine(cli)?, env.as_deref()),
        Command::History { env, limit } => inspect::history(cli, &engine(cli)?, env, *limit),
        Command::Verify { env } => inspect::verify(cli, &engine(cli)?, env),
        Command::Diff { env, from, to } => inspect::diff(cli, &engine(cli)?, env, from, to),
        Command::Diagnose { env } => inspect::diagnose(cli, &engine(cli)?, env),
        Command::Mark { env, release, state, reason } => {
            admin::mark(cli, &engine(cli)?, env, release, *state, reason.as_deref())
        }
        Command::Lock { env, reason } => admin::lock(cli, &engine(cli)?, env, reason),
        Command::Unlock { env, force, epoch } => admin::unlock(cli, &engine(cli)?, env, *force, *epoch),
        Command::Ledger { command: LedgerCommand::Init } => admin::ledger_init(cli, &config(cli)?),
        Command::Ledger { command: LedgerCommand::Status } => admin::ledger_status(cli, &engine(cli)?),
        Command::Ledger { command: LedgerCommand::Migrate { to } } => admin::ledger_migrate(cli, &config(cli)?, to),
        Command::Report { operation, note } => report::report(cli, &engine(cli)?, *operation, note.as_deref()),
        Command::Audit { command: crate::args::AuditCommand::Verify } => admin::audit_verify(cli, &engine(cli)?),
        Command::Serve { listen, host, allow_writes } => serve::serve(cli, listen, host.as_deref(), *allow_writes),
    }
}

fn engine(cli: &Cli) -> Result<Engine> {
    Engine::open(config(cli)?, Context::from_env())
}

fn config(cli: &Cli) -> Result<Config> {
    Config::load(&Config::locate(cli.global.config.as_deref()))
}

fn usage(what: impl Into<String>) -> Error {
    Error::Usage { what: what.into() }
}
