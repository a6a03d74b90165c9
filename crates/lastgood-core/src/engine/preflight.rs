//! Preflight: what must hold before an operation changes anything. The runtime can
//! act here (or every host of a fleet can), the database answers. A failure refuses
//! the whole operation (exit 4) and names what to fix; nothing was changed.

use super::Engine;
use crate::config::Environment;
use crate::config::tuning::PgMethod;
use crate::database::environment::EnvDatabase;
use crate::error::{Error, Result};
use crate::fleet::{Fleet, HostReleases};
use crate::ledger::{BackupKind, BackupRecord, Release};
use crate::refusal::{NotReady, Refusal};
use crate::runtime::{self, ReleaseFacts, Site};

impl Engine {
    /// A runtime that cannot act (deploy_to not writable, repository unreachable,
    /// engine down) refuses the operation before anything changes.
    pub(crate) fn preflight_runtime(&self, env: &Environment, what: &str) -> Result<()> {
        if let Some(fleet) = self.fleet(env) {
            return self.preflight_fleet(&fleet, what, None).map(drop);
        }
        runtime::of(&Site::local(env)).prepare().map_err(|refusal| Error::refused(env.name.to_string(), what, refusal))
    }

    /// Every host must be ready before any host changes; one that is not refuses the
    /// whole operation and is named. Returns each host's current release.
    pub(crate) fn preflight_fleet(&self, fleet: &Fleet, what: &str, release: Option<&Release>) -> Result<HostReleases> {
        let key = (fleet.env.name.to_string(), release.map(|r| r.id.0));
        if let Some(hosts) = self.preflights.borrow().get(&key) {
            return Ok(hosts.clone());
        }
        let facts = release.map(ReleaseFacts::of);
        let hosts = fleet.preflight(facts.as_ref()).map_err(|failed| {
            let hosts = failed.into_iter().map(|(h, why)| (h.label(), why)).collect();
            Error::refused(&fleet.env.name, what, Refusal::Preflight { hosts, total: fleet.env.hosts.len() })
        })?;
        self.preflights.borrow_mut().insert(key, hosts.clone());
        Ok(hosts)
    }

    /// A database that cannot be reached refuses the operation before anything changes.
    pub(crate) fn preflight_database(&self, env: &Environment) -> Result<()> {
        if !env.hosts.is_empty() {
            // Reached from the first host, where its work is done.
            let Some(db) = crate::toolsite::database(env, self.fleet(env), None)? else { return Ok(()) };
            return db.ping().map_err(|e| {
                let refusal = Refusal::Unusable { what: "the database".into(), detail: e.to_string() };
                Error::refused(&env.name, "the operation", refusal)
            });
        }
        let Some(db) = EnvDatabase::of(env)? else { return Ok(()) };
        db.migrator(None, &self.ctx.actor()).map(drop).map_err(|e| self.unreachable(env, e))
    }

    /// A file of an environment without hosts that `actor` (`user@machine`) wrote on
    /// another machine than this one: why it is not here, as a refusal. None when the
    /// environment has hosts (its files are on them) or the machine is this one.
    pub(crate) fn elsewhere(&self, env: &Environment, what: String, actor: &str) -> Option<NotReady> {
        let machine = machine_of(actor);
        (env.hosts.is_empty() && machine != self.ctx.host).then(|| NotReady::Elsewhere {
            what,
            machine: machine.to_owned(),
            here: self.ctx.host.clone(),
        })
    }

    /// Where a backup's data lives, machine and path: the host whose agent wrote it,
    /// the machine that took it (an environment without hosts), or the database server
    /// (a template copy).
    pub fn backup_place(&self, env: &Environment, b: &BackupRecord) -> String {
        match (b.file.kind, env.hosts.first()) {
            (BackupKind::PgTemplate, _) => format!("the database server (database {})", b.file.path.display()),
            (_, Some(host)) => format!("{}:{}", host.label(), b.file.path.display()),
            (_, None) => format!("{}:{}", machine_of(&b.created_by), b.file.path.display()),
        }
    }

    /// Where a backup the plan takes will be written, in words for the plan's notes.
    pub(crate) fn backup_destination(&self, env: &Environment) -> Option<String> {
        let db = env.database.as_ref()?;
        let dir = match env.hosts.first() {
            Some(host) => format!("{}:{}", host.label(), env.deploy_to.join("backups").display()),
            None => format!("{}:{}", self.ctx.host, db.backup_dir.display()),
        };
        let sqlite = matches!(db.url.resolve(), Ok(crate::database::url::DbUrl::Sqlite(_)));
        Some(match db.backup_method {
            _ if sqlite => dir,
            PgMethod::Template => "a copy on the database server (backup_method = template)".to_owned(),
            PgMethod::PgDump => dir,
            PgMethod::Auto => format!("a copy on the database server when no other session is connected, else {dir}"),
        })
    }

    /// A database connection failure, as the refusal it is.
    pub(crate) fn unreachable(&self, env: &Environment, e: Error) -> Error {
        match e {
            Error::Migrate(m)
                if matches!(
                    *m,
                    crate::database::migrator::MigrateError::Db(crate::database::driver::DbError::Connect { .. })
                ) =>
            {
                let refusal = Refusal::Unusable { what: "the database".into(), detail: m.to_string() };
                Error::refused(&env.name, "the operation", refusal)
            }
            other => other,
        }
    }
}

/// The machine of an actor written `user@machine` (the whole text when it has no `@`).
pub(crate) fn machine_of(actor: &str) -> &str {
    actor.rsplit_once('@').map(|(_, m)| m).unwrap_or(actor)
}
