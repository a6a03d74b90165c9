//! Preflight: what must hold before an operation changes anything. The runtime can
//! act here (or every host of a fleet can), the database answers. A failure refuses
//! the whole operation (exit 4) and names what to fix; nothing was changed.

use super::Engine;
use crate::config::Environment;
use crate::database::environment::EnvDatabase;
use crate::error::{Error, Result};
use crate::fleet::{Fleet, HostReleases};
use crate::ledger::Release;
use crate::refusal::Refusal;
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
