//! The operations users run, as library calls: the CLI and the dashboard call these
//! and only render what they return. One file per kind of operation:
//!
//! - [`deploy`]: planning and running a deploy.
//! - [`bake`]: ending a running deploy from another process: promote, preempt.
//! - [`rollback`]: naming a target, planning and running a rollback.
//! - [`resume`]: finishing or undoing an interrupted operation.
//! - [`run`]: what deploy, rollback and resume share: recording the operation, running
//!   its journal, the report.
//! - [`preflight`]: the checks that refuse an operation before anything changes.
//! - [`readiness`]: whether the way back to a release is proven (artifact, rehearsal,
//!   backup).
//! - [`preview`]: a plan as shown before anything runs, with what would be refused.
//! - [`inspect`]: status, history, verify, mark, lock and unlock, and notes on an
//!   operation's record.
//! - [`db`]: `lastgood db ...`, the database on its own.
//! - [`restore`]: `lastgood db restore`, the emergency restore as one operation.
//! - [`restart`]: `lastgood restart`, what serves restarted and checked.
//! - [`watch`]: the alert-only watch after a rollback.
//! - [`team`]: `lastgood ledger init` and `status`, the ledger itself.
//! - [`diagnose`]: `diff` and `diagnose`, knowing what to roll back; [`decision`] is
//!   the runbook's decision it ends with, a command checked against a rollback plan;
//!   `in_place` compares the config files here with a release's snapshot.
//!
//! Every state-changing call follows the same shape: validate input, preflight
//! (nothing changes if it fails), take the environment's lock (a guard that frees it
//! on every way out), refuse to run over an interrupted operation, record the
//! operation and its plan, run the journal.

pub mod bake;
pub mod db;
pub mod decision;
pub mod deploy;
pub mod diagnose;
pub mod guard;
mod in_place;
pub mod inspect;
pub mod preflight;
pub mod preview;
pub mod readiness;
mod ready_deploy;
pub mod restart;
pub mod restore;
pub mod resume;
pub mod rollback;
pub mod run;
mod target;
pub mod team;
pub mod watch;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use crate::config::{Config, Environment, LedgerUrl, TeamLedger};
use crate::context::Context;
use crate::database::url::{DbUrl, PgUrl};
use crate::error::{Error, Result};
use crate::fleet::{Fleet, HostReleases};
use crate::journal::Progress;
use crate::ledger::{
    Acquired, AuditEvent, Change, EnvState, Fence, Ledger, LockRequest, PgLedger, Release, SqliteLedger, StepState,
};
use crate::lock::{self, Heartbeat, LockGuard};
use crate::model::{EnvName, ReleaseId};

pub struct Engine {
    pub config: Config,
    pub ctx: Context,
    ledger: Box<dyn Ledger>,
    /// A fleet's preflight answers, per environment and target, for this process: a
    /// command plans a rollback up to three times (to print it, before the lock, under
    /// it), and the hosts are asked once.
    preflights: RefCell<BTreeMap<(String, Option<u64>), HostReleases>>,
    /// Each fleet's hosts and their agent sessions, kept for the whole command.
    fleets: RefCell<BTreeMap<String, Rc<Fleet>>>,
    /// The environment and its lock epoch when a plan began reading the database with
    /// nothing read before it ([`Engine::mark_state`]).
    state_mark: RefCell<Option<(String, i64)>>,
}

impl Engine {
    pub fn open(config: Config, ctx: Context) -> Result<Self> {
        refuse_app_database(&config)?;
        let ledger = open_ledger(&config.ledger)?;
        Ok(Self {
            config,
            ctx,
            ledger,
            preflights: Default::default(),
            fleets: Default::default(),
            state_mark: Default::default(),
        })
    }

    pub fn ledger(&self) -> &dyn Ledger {
        self.ledger.as_ref()
    }

    /// The environment's fleet (None for `local`), shared by every step of the command.
    pub(crate) fn fleet(&self, env: &Environment) -> Option<Rc<Fleet>> {
        let mut fleets = self.fleets.borrow_mut();
        if let Some(f) = fleets.get(env.name.as_str()) {
            return Some(f.clone());
        }
        let f = Rc::new(Fleet::of(env)?);
        fleets.insert(env.name.to_string(), f.clone());
        Some(f)
    }

    fn env(&self, name: &str) -> Result<Environment> {
        self.config.environment(name).cloned()
    }

    pub(crate) fn audit(
        &self,
        env: &EnvName,
        operation: Option<u64>,
        event: &str,
        detail: serde_json::Value,
    ) -> Change {
        Change::Audit(AuditEvent::by(&self.ctx, env.as_str(), operation, event, detail))
    }

    /// A release the ledger must have (one it named itself).
    pub(crate) fn must_release(&self, env: &EnvName, id: ReleaseId) -> Result<Release> {
        self.ledger.release(env, id)?.ok_or_else(|| Error::ReleaseMissing { env: env.to_string(), release: id })
    }

    // ---- the lock -------------------------------------------------------------------

    /// Takes the environment's lock for an operation; the guard frees it on drop.
    fn take_lock(&self, env: &Environment, reason: Option<&str>, progress: &mut dyn Progress) -> Result<LockGuard<'_>> {
        let now = self.ctx.now();
        let req = LockRequest {
            env: env.name.clone(),
            holder: self.ctx.actor(),
            host: self.ctx.host.clone(),
            pid: Some(self.ctx.pid),
            pid_start: lock::process_start_time(self.ctx.pid),
            reason: reason.map(str::to_owned),
            now,
            lease: Some(env.lease),
            machine: self.ctx.machine.clone(),
        };
        let ctx = self.ctx.clone();
        let asked = std::time::Instant::now();
        let Acquired { epoch, took_over } = self.ledger.acquire(&req, &|l| lock::is_stale(&ctx, l, now))?;
        if let Some(old) = &took_over {
            progress.note(&format!(
                "took over the lock of `{}` from {} (its process is gone or its lease expired)",
                env.name, old.holder
            ));
        }
        let fence = Fence { env: env.name.clone(), epoch };
        // What was read of the database before the lock may have moved since, unless
        // nobody held the lock in between: every move lastgood makes (an operation, a
        // `lastgood db` command) holds it, and a tool that reads where the database is
        // costs a container start where it runs in one.
        let unmoved =
            took_over.is_none() && self.state_mark.borrow_mut().take() == Some((env.name.to_string(), epoch - 1));
        if !unmoved {
            crate::database::program::forget_state();
        }
        let url = self.config.ledger.clone();
        let heartbeat =
            Heartbeat::start(Box::new(move || open_ledger(&url)), fence.clone(), env.lease, asked, self.ctx.clone());
        Ok(LockGuard::new(self.ledger.as_ref(), fence, heartbeat))
    }

    /// Notes the environment's lock epoch before a plan reads the database, when this
    /// process has read nothing of it yet and nobody holds the lock: taking the lock at
    /// the next epoch then proves nobody held it since, and keeps what the plan read
    /// ([`Engine::take_lock`]). A lock held at the mark (a running deploy this command
    /// may preempt) may still move the database under its own epoch: no mark.
    fn mark_state(&self, env: &Environment, state: &EnvState) {
        // Only a program (Alembic, the team's commands) is read through that cache: the
        // builtin engine asks its own connection, and needs no ledger read for it.
        let program = env.database.as_ref().is_some_and(|d| !matches!(d.adapter, crate::config::Adapter::Builtin));
        if program && crate::database::program::state_unread() && matches!(self.ledger.lock_info(&env.name), Ok(None)) {
            *self.state_mark.borrow_mut() = Some((env.name.to_string(), state.epoch));
        }
    }

    /// The lock for a command that is not a recorded operation (`lastgood db ...`),
    /// refused over an interrupted operation.
    pub(crate) fn lock_for(&self, env: &Environment, what: &str, progress: &mut dyn Progress) -> Result<LockGuard<'_>> {
        let held = self.take_lock(env, Some(what), progress)?;
        self.refuse_interrupted(env)?;
        Ok(held)
    }

    /// Refuses to start over an operation that did not finish.
    fn refuse_interrupted(&self, env: &Environment) -> Result<()> {
        match self.ledger.running_operation(&env.name)? {
            None => Ok(()),
            Some(op) => Err(Error::Interrupted {
                env: env.name.to_string(),
                operation: op.id,
                kind: op.kind.as_str().into(),
                step: self.pending_step(op.id)?,
            }),
        }
    }

    fn pending_step(&self, op: u64) -> Result<Option<String>> {
        Ok(self
            .ledger
            .steps(op)?
            .into_iter()
            .find(|s| matches!(s.state, StepState::Intended | StepState::Planned))
            .map(|s| s.step.name().to_owned()))
    }
}

pub fn open_ledger(url: &LedgerUrl) -> Result<Box<dyn Ledger>> {
    match url {
        LedgerUrl::Sqlite(path) => Ok(Box::new(SqliteLedger::open(path)?)),
        LedgerUrl::Postgres(team) => {
            let mut ledger = PgLedger::open(&team_url(team)?, &team.schema)?;
            if !team.allow_superuser {
                ledger.refuse_superuser_writes();
            }
            Ok(Box::new(ledger))
        }
    }
}

/// The team ledger's connection, completed from this process's environment.
pub fn team_url(team: &TeamLedger) -> Result<PgUrl> {
    match team.url.resolve().map_err(|e| match e {
        Error::Usage { what } => Error::Usage { what: format!("ledger: {what}") },
        other => other,
    })? {
        DbUrl::Postgres(pg) => Ok(pg),
        DbUrl::Sqlite(_) => Err(Error::Usage { what: "ledger url_env: expected a postgres:// URL".into() }),
    }
}

/// The ledger may not live in an environment's application database: restoring that
/// database (or cloning it as a template) would roll the ledger's history and its
/// fence epochs back with it (exit 2). Environments whose URL cannot be completed here
/// (`url_env` unset on this machine) are not compared.
fn refuse_app_database(config: &Config) -> Result<()> {
    let LedgerUrl::Postgres(team) = &config.ledger else { return Ok(()) };
    let ledger = team_url(team)?;
    for env in config.environments.values() {
        let Some(db) = &env.database else { continue };
        if let Ok(DbUrl::Postgres(app)) = db.url.resolve() {
            if app.same_database(&ledger) {
                return Err(Error::Usage {
                    what: format!(
                        "ledger: the ledger {ledger} is the application database of `{}`; a restore of that database would roll the ledger back with it: put the ledger in a database of its own",
                        env.name
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Where a relative ledger path ends up, for messages.
pub fn ledger_path(url: &LedgerUrl) -> Option<PathBuf> {
    match url {
        LedgerUrl::Sqlite(p) => Some(p.clone()),
        LedgerUrl::Postgres(_) => None,
    }
}
